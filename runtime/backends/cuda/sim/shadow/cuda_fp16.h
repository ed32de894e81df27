// Shadow cuda_fp16.h for the CPU simulator.
#pragma once
#include "support/Float16.h"
#include <cstdint>
struct __half {
  uint16_t x;
  __half() = default;
  __half(float f) : x(llamac::floatToHalf(f)) {}
  __half(double d) : x(llamac::doubleToHalf(d)) {}
  operator float() const { return llamac::halfToFloat(x); }
};
inline __half __float2half_rn(float f) { __half r; r.x = llamac::floatToHalf(f); return r; }
inline __half __float2half(float f) { return __float2half_rn(f); }
inline __half __double2half(double d) { __half r; r.x = llamac::doubleToHalf(d); return r; }
inline float __half2float(__half h) { return llamac::halfToFloat(h.x); }
