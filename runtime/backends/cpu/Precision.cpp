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
void castBf16ToF16(const uint16_t *x, uint16_t *y, int64_t n) {
  mapElements(x, y, n, [](uint16_t h) { return floatToHalf(bf16ToFloat(h)); });
}
void castF16ToBf16(const uint16_t *x, uint16_t *y, int64_t n) {
  mapElements(x, y, n, [](uint16_t h) { return floatToBf16(halfToFloat(h)); });
}
void castF64ToF32(const double *x, float *y, int64_t n) {
  mapElements(x, y, n, [](double v) { return static_cast<float>(v); });
}
void castF64ToBf16(const double *x, uint16_t *y, int64_t n) {
  mapElements(x, y, n, doubleToBf16);
}
void castF64ToF16(const double *x, uint16_t *y, int64_t n) {
  mapElements(x, y, n, doubleToHalf);
}
void castF32ToF64(const float *x, double *y, int64_t n) {
  mapElements(x, y, n, [](float v) { return static_cast<double>(v); });
}
void castBf16ToF64(const uint16_t *x, double *y, int64_t n) {
  mapElements(x, y, n,
              [](uint16_t h) { return static_cast<double>(bf16ToFloat(h)); });
}
void castF16ToF64(const uint16_t *x, double *y, int64_t n) {
  mapElements(x, y, n,
              [](uint16_t h) { return static_cast<double>(halfToFloat(h)); });
}

namespace {
/// Whether no element has all exponent bits set (inf or NaN).
bool noneHasExponent(const uint16_t *x, int64_t n, uint16_t mask) {
  // A logical AND is order-independent, so the reduction is exact.
  int ok = 1;
#pragma omp parallel for schedule(static) reduction(&& : ok) \
    if (n >= kMinParallelWork)
  for (int64_t i = 0; i < n; ++i)
    ok = ok && (x[i] & mask) != mask;
  return ok != 0;
}
} // namespace

bool allFiniteBf16(const uint16_t *x, int64_t n) {
  return noneHasExponent(x, n, 0x7F80);
}
bool allFiniteF16(const uint16_t *x, int64_t n) {
  return noneHasExponent(x, n, 0x7C00);
}

void roundTripBf16(const float *x, float *y, int64_t n) {
  mapElements(x, y, n, [](float v) { return bf16ToFloat(floatToBf16(v)); });
}
void roundTripF16(const float *x, float *y, int64_t n) {
  mapElements(x, y, n, [](float v) { return halfToFloat(floatToHalf(v)); });
}

} // namespace kernels
} // namespace llamac
