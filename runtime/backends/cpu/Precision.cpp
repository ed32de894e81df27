//===- Precision.cpp - bf16 and fp16 storage emulated on float -----------===//
//
// Bulk conversions between float and the 16-bit storage formats, built on
// the bit-exact scalar conversions of support/Float16.h.
//
//===----------------------------------------------------------------------===//

#include "Parallel.h"
#include "llamac/runtime/Kernels.h"

namespace llamac {
namespace kernels {

namespace {
/// y[i] = f(x[i]); elements are independent, so the split does not matter.
template <typename In, typename Out, typename F>
void mapElements(const In *x, Out *y, int64_t n, F f) {
#pragma omp parallel for schedule(static) if (n >= kMinParallelWork)
  for (int64_t i = 0; i < n; ++i)
    y[i] = f(x[i]);
}
} // namespace

void castF32ToBf16(const float *x, uint16_t *y, int64_t n) {
  mapElements(x, y, n, floatToBf16);
}
void castBf16ToF32(const uint16_t *x, float *y, int64_t n) {
  mapElements(x, y, n, bf16ToFloat);
}
void castF32ToF16(const float *x, uint16_t *y, int64_t n) {
  mapElements(x, y, n, floatToHalf);
}
void castF16ToF32(const uint16_t *x, float *y, int64_t n) {
  mapElements(x, y, n, halfToFloat);
}
void roundTripBf16(const float *x, float *y, int64_t n) {
  mapElements(x, y, n, [](float v) { return bf16ToFloat(floatToBf16(v)); });
}
void roundTripF16(const float *x, float *y, int64_t n) {
  mapElements(x, y, n, [](float v) { return halfToFloat(floatToHalf(v)); });
}

} // namespace kernels
} // namespace llamac
