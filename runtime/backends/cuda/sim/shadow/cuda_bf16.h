// Shadow cuda_bf16.h for the CPU simulator: round-to-nearest-even via llamac's Float16.
#pragma once
#include "support/Float16.h"
#include <cstdint>
struct __nv_bfloat16 {
  uint16_t x;
  __nv_bfloat16() = default;
  __nv_bfloat16(float f) : x(llamac::floatToBf16(f)) {}
  __nv_bfloat16(double d) : x(llamac::doubleToBf16(d)) {}
  operator float() const { return llamac::bf16ToFloat(x); }
};
inline __nv_bfloat16 __float2bfloat16_rn(float f) { __nv_bfloat16 r; r.x = llamac::floatToBf16(f); return r; }
inline __nv_bfloat16 __float2bfloat16(float f) { return __float2bfloat16_rn(f); }
inline __nv_bfloat16 __double2bfloat16(double d) { __nv_bfloat16 r; r.x = llamac::doubleToBf16(d); return r; }
inline float __bfloat162float(__nv_bfloat16 h) { return llamac::bf16ToFloat(h.x); }
