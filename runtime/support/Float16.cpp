//===- Float16.cpp - bf16 and fp16 conversions ----------------------------===//
//
// Conversions between float and the 16-bit storage formats of mixed-precision
// training, bit-exact and in integer arithmetic only, so the result does not
// depend on the rounding mode, the compiler's float flags or the ISA (no F16C
// or AVX512-BF16 instructions). Semantics are documented in Float16.h.
//
// Rounding to nearest even on a bit pattern: to drop the low `k` bits of an
// unsigned magnitude `a`, add (2^(k-1) - 1) plus the lowest kept bit, then
// shift. A remainder above the half carries, one below does not, and an exact
// half carries only when the kept part is odd. Because float and the targets
// order magnitudes like their bit patterns, a carry out of the mantissa
// increments the exponent, and one out of the largest finite value yields
// the infinity pattern.
//
//===----------------------------------------------------------------------===//

#include "support/Float16.h"

#include <cstring>

namespace llamac {

namespace {

inline uint32_t floatBits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof(u));
  return u;
}

inline float bitsFloat(uint32_t u) {
  float x;
  std::memcpy(&x, &u, sizeof(x));
  return x;
}

/// Drops the low `k` bits (1 <= k <= 31) of `a`, rounding to nearest even.
inline uint32_t shiftRoundEven(uint32_t a, int k) {
  const uint32_t lsb = (a >> k) & 1u;
  // a + half - 1 + lsb cannot overflow: a < 2^31 wherever this is used.
  return (a + ((uint32_t(1) << (k - 1)) - 1u) + lsb) >> k;
}

constexpr uint32_t kF32AbsMask = 0x7FFFFFFFu;
constexpr uint32_t kF32Inf = 0x7F800000u;
constexpr uint32_t kF32Quiet = 0x00400000u;

/// float 2^-14, the smallest normal binary16 (biased exponent 113).
constexpr uint32_t kF32HalfMinNormal = 0x38800000u;
/// float 65520: binary16 65504 plus half an ulp (2^4); rounds to infinity.
constexpr uint32_t kF32HalfOverflow = 0x477FF000u;
/// Biased exponent 127 - 15, the rebias from float to binary16.
constexpr uint32_t kRebias = uint32_t(127 - 15) << 23;

} // namespace

uint16_t floatToBf16(float x) {
  const uint32_t u = floatBits(x);
  if ((u & kF32AbsMask) > kF32Inf) // NaN: truncating could yield inf.
    return uint16_t((u | kF32Quiet) >> 16);
  // Finite values at or above the midpoint past 0x7F7F carry into 0x7F80.
  return uint16_t(shiftRoundEven(u & kF32AbsMask, 16) | ((u >> 16) & 0x8000u));
}

float bf16ToFloat(uint16_t h) { return bitsFloat(uint32_t(h) << 16); }

uint16_t floatToHalf(float x) {
  const uint32_t u = floatBits(x);
  const uint32_t sign = (u >> 16) & 0x8000u;
  const uint32_t a = u & kF32AbsMask;
  if (a > kF32Inf) // NaN: top 10 payload bits, quiet.
    return uint16_t(sign | 0x7E00u | ((a >> 13) & 0x03FFu));
  if (a >= kF32HalfOverflow) // Includes inf.
    return uint16_t(sign | 0x7C00u);
  if (a >= kF32HalfMinNormal) // Normal: rebias, then drop 13 bits.
    return uint16_t(sign | shiftRoundEven(a - kRebias, 13));
  // Subnormal binary16 (or zero): the result is |x| / 2^-24 rounded, i.e.
  // the float significand m (with its implicit bit) times 2^(e - 126).
  // Exponents below 102 give |x| < 2^-25, which rounds to zero; so do float
  // subnormals (e = 0), far below that.
  const int e = int(a >> 23);
  if (e < 102)
    return uint16_t(sign);
  const uint32_t m = (a & 0x007FFFFFu) | 0x00800000u;
  // A carry into 0x0400 is the smallest normal, correctly encoded.
  return uint16_t(sign | shiftRoundEven(m, 126 - e));
}

float doubleToFloatRoundOdd(double x) {
  uint64_t u;
  std::memcpy(&u, &x, sizeof(u));
  const uint32_t sign = uint32_t(u >> 32) & 0x80000000u;
  const uint64_t a = u & 0x7FFFFFFFFFFFFFFFull;
  constexpr uint64_t kF64Inf = 0x7FF0000000000000ull;
  if (a > kF64Inf) // NaN: the top 23 payload bits, quiet.
    return bitsFloat(sign | kF32Inf | kF32Quiet |
                     uint32_t((a >> 29) & 0x007FFFFFu));
  if (a == kF64Inf)
    return bitsFloat(sign | kF32Inf);
  const int e = int(a >> 52); // Biased double exponent.
  const uint64_t m = a & 0x000FFFFFFFFFFFFFull;
  if (e == 0) // Zero, or a double subnormal: far below the float range.
    return bitsFloat(sign | (m != 0 ? 1u : 0u));
  const int fe = e - 1023 + 127; // Biased float exponent.
  if (fe >= 255) // Beyond every float: the largest finite one (odd).
    return bitsFloat(sign | 0x7F7FFFFFu);
  if (fe >= 1) { // Normal float: keep 23 of the 52 fraction bits.
    const uint32_t sticky = (m & ((uint64_t(1) << 29) - 1)) != 0;
    return bitsFloat(sign | (uint32_t(fe) << 23) | uint32_t(m >> 29) | sticky);
  }
  // Float subnormal: the 53-bit significand in units of 2^-149.
  const uint64_t sig = m | (uint64_t(1) << 52);
  const int shift = 30 - fe; // >= 30
  if (shift >= 64)
    return bitsFloat(sign | 1u);
  const uint32_t sticky = (sig & ((uint64_t(1) << shift) - 1)) != 0;
  return bitsFloat(sign | uint32_t(sig >> shift) | sticky);
}

uint16_t doubleToBf16(double x) {
  return floatToBf16(doubleToFloatRoundOdd(x));
}

uint16_t doubleToHalf(double x) {
  return floatToHalf(doubleToFloatRoundOdd(x));
}

float halfToFloat(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t e = (h >> 10) & 0x1Fu;
  const uint32_t m = h & 0x03FFu;
  if (e == 0x1F) // inf or NaN, payload kept.
    return bitsFloat(sign | kF32Inf | (m << 13));
  if (e != 0) // Normal.
    return bitsFloat(sign | ((((e << 10) | m) << 13) + kRebias));
  // Zero or subnormal: m * 2^-24, exact in float (m < 2^10).
  const float mag = float(m) * bitsFloat(0x33800000u); // 2^-24
  return bitsFloat(sign | floatBits(mag));
}

} // namespace llamac
