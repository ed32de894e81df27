//===- PrecisionTest.cpp - Tests of the bf16 / fp16 conversions -*- C++ -*-===//
//
// The conversions are checked against:
//  - bit patterns from the IEEE 754 binary16 and bfloat16 definitions (the
//    values torch and CUDA produce), including every rounding corner: ties,
//    overflow, subnormals, signed zeros, infinities, NaN;
//  - exhaustive properties over all 65536 patterns of each format;
//  - a reference written differently, in double arithmetic: the two
//    representable neighbours of x are computed with frexp/ldexp and the
//    nearer (even on a tie) is taken; ~1e6 random floats per format;
//  - the bulk kernels against the scalar functions, across thread counts.
//
//===----------------------------------------------------------------------===//

#include "llamac/runtime/Kernels.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

using namespace llamac::kernels;

namespace {

float fromBits(uint32_t u) {
  float x;
  std::memcpy(&x, &u, sizeof(x));
  return x;
}

uint32_t toBits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof(u));
  return u;
}

bool isHalfNaN(uint16_t h) { return (h & 0x7C00) == 0x7C00 && (h & 0x03FF); }
bool isBf16NaN(uint16_t h) { return (h & 0x7F80) == 0x7F80 && (h & 0x007F); }

/// A binary floating-point format with `precision` significand bits
/// (including the implicit one), minimum normal exponent `minExp` (value
/// 2^minExp) and largest finite value `maxFinite`.
struct Format {
  int precision;
  int minExp;
  double maxFinite;
};

constexpr Format kHalf = {11, -14, 65504.0};
const Format kBf16 = {8, -126, std::ldexp(255.0, 120)}; // (2 - 2^-7) * 2^127

/// The value of `x` rounded to `f` by nearest-even, computed in double, which
/// holds every float and every midpoint between neighbours exactly (and, for
/// a double x, compares it with them exactly: the differences below are
/// exact by Sterbenz's lemma where it matters). Shares no code or bit tricks
/// with the implementation.
double referenceRound(double x, const Format &f) {
  const double ax = std::fabs(x);
  if (std::isnan(x) || std::isinf(x) || ax == 0)
    return x;
  // Spacing of the representable values around |x|.
  int exp2;
  std::frexp(ax, &exp2); // ax in [2^(exp2-1), 2^exp2)
  const int binade = std::max(exp2 - 1, f.minExp); // subnormals: fixed ulp
  const double ulp = std::ldexp(1.0, binade - (f.precision - 1));
  const double k = std::floor(ax / ulp); // exact: a power-of-two scaling
  const double lo = k * ulp, hi = (k + 1) * ulp;
  double r;
  if (ax - lo < hi - ax)
    r = lo;
  else if (ax - lo > hi - ax)
    r = hi;
  else
    r = std::fmod(k, 2.0) == 0 ? lo : hi;
  // Beyond the largest finite value, rounding goes to infinity: r then is
  // 2^(emax + 1), which is not representable.
  if (r > f.maxFinite)
    r = std::numeric_limits<double>::infinity();
  return std::copysign(r, x);
}

/// Random floats that stress the formats: uniform bit patterns (all
/// binades, subnormals, inf, NaN), values near the fp16 range, exact
/// midpoints between neighbours of each format, and midpoints between fp16
/// subnormals.
std::vector<float> stressFloats(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<uint32_t> bits;
  std::vector<float> xs;
  xs.reserve(n);
  while (xs.size() < n) {
    uint32_t u = bits(rng);
    switch (xs.size() % 5) {
    case 0: // any pattern
      break;
    case 1: { // exponents 2^-27 .. 2^17: fp16 subnormals, normals, overflow
      const uint32_t e = 100 + (u >> 8) % 45;
      u = (u & 0x807FFFFFu) | (e << 23);
      break;
    }
    case 2: // fp16 midpoint or near it: low 13 bits 0x1000 +- 0..1
      u = (u & ~0x1FFFu) | (0x1000u + (bits(rng) % 3) - 1);
      break;
    case 3: // bf16 midpoint or near it
      u = (u & ~0xFFFFu) | (0x8000u + (bits(rng) % 3) - 1);
      break;
    case 4: { // (2k + 1) * 2^-25: fp16 subnormal (and first binade) ties
      const float x = std::ldexp(float(2 * (u % 2048) + 1), -25);
      u = toBits(x) | (u & 0x80000000u);
      break;
    }
    }
    xs.push_back(fromBits(u));
  }
  return xs;
}

} // namespace

//===----------------------------------------------------------------------===//
// Known bit patterns
//===----------------------------------------------------------------------===//

TEST(LowPrecisionTest, Bf16KnownPatterns) {
  EXPECT_EQ(floatToBf16(1.0f), 0x3F80);
  EXPECT_EQ(floatToBf16(-2.0f), 0xC000);
  EXPECT_EQ(floatToBf16(fromBits(0x3F808000)), 0x3F80); // tie, even stays
  EXPECT_EQ(floatToBf16(fromBits(0x3F818000)), 0x3F82); // tie, odd rounds up
  EXPECT_EQ(floatToBf16(fromBits(0x3F808001)), 0x3F81); // above the tie
  EXPECT_EQ(floatToBf16(fromBits(0x3F807FFF)), 0x3F80); // below the tie
  EXPECT_EQ(floatToBf16(fromBits(0xBF818000)), 0xBF82); // sign-symmetric
  // The carry out of the mantissa increments the exponent.
  EXPECT_EQ(floatToBf16(fromBits(0x3FFFC000)), 0x4000);
  // Largest finite float rounds up to inf; the largest bf16 stays.
  EXPECT_EQ(floatToBf16(std::numeric_limits<float>::max()), 0x7F80);
  EXPECT_EQ(floatToBf16(fromBits(0x7F7F7FFF)), 0x7F7F);
  EXPECT_EQ(floatToBf16(fromBits(0x7F7F8000)), 0x7F80); // tie, odd -> inf
  // Float subnormals are bf16 subnormals.
  EXPECT_EQ(floatToBf16(fromBits(0x00010000)), 0x0001);
  EXPECT_EQ(floatToBf16(fromBits(0x00008000)), 0x0000); // tie to even zero
  EXPECT_EQ(floatToBf16(fromBits(0x00018000)), 0x0002);
  EXPECT_EQ(floatToBf16(fromBits(0x80008001)), 0x8001);
  // Zeros, infinities.
  EXPECT_EQ(floatToBf16(0.0f), 0x0000);
  EXPECT_EQ(floatToBf16(-0.0f), 0x8000);
  EXPECT_EQ(floatToBf16(std::numeric_limits<float>::infinity()), 0x7F80);
  EXPECT_EQ(floatToBf16(-std::numeric_limits<float>::infinity()), 0xFF80);
  // NaN stays NaN, quiet, signed, even when only low payload bits are set
  // (truncation would give inf).
  EXPECT_EQ(floatToBf16(std::numeric_limits<float>::quiet_NaN()), 0x7FC0);
  EXPECT_EQ(floatToBf16(fromBits(0x7F800001)), 0x7FC0);
  EXPECT_EQ(floatToBf16(fromBits(0xFF800001)), 0xFFC0);
  EXPECT_EQ(floatToBf16(fromBits(0x7FFFFFFF)), 0x7FFF);

  EXPECT_EQ(toBits(bf16ToFloat(0x3F80)), 0x3F800000u);
  EXPECT_EQ(toBits(bf16ToFloat(0x8000)), 0x80000000u);
  EXPECT_EQ(toBits(bf16ToFloat(0xFF80)), 0xFF800000u);
  EXPECT_EQ(toBits(bf16ToFloat(0x0001)), 0x00010000u);
  EXPECT_TRUE(std::isnan(bf16ToFloat(0x7FC1)));
}

TEST(LowPrecisionTest, HalfKnownPatterns) {
  EXPECT_EQ(floatToHalf(1.0f), 0x3C00);
  EXPECT_EQ(floatToHalf(-2.0f), 0xC000);
  EXPECT_EQ(floatToHalf(0.5f), 0x3800);
  EXPECT_EQ(floatToHalf(0.1f), 0x2E66);
  // Ties around 1: ulp 2^-10.
  EXPECT_EQ(floatToHalf(1.0f + 0x1p-11f), 0x3C00);          // tie, even stays
  EXPECT_EQ(floatToHalf(1.0f + 3 * 0x1p-11f), 0x3C02);      // tie, odd up
  EXPECT_EQ(floatToHalf(fromBits(0x3F801001)), 0x3C01);     // above the tie
  EXPECT_EQ(floatToHalf(fromBits(0x3F800FFF)), 0x3C00);     // below the tie
  EXPECT_EQ(floatToHalf(-(1.0f + 3 * 0x1p-11f)), 0xBC02);
  EXPECT_EQ(floatToHalf(2.0f - 0x1p-12f), 0x4000); // carry into the exponent
  // Overflow.
  EXPECT_EQ(floatToHalf(65504.0f), 0x7BFF);
  EXPECT_EQ(floatToHalf(65519.0f), 0x7BFF);
  EXPECT_EQ(floatToHalf(std::nextafter(65520.0f, 0.0f)), 0x7BFF);
  EXPECT_EQ(floatToHalf(65520.0f), 0x7C00);
  EXPECT_EQ(floatToHalf(-65520.0f), 0xFC00);
  EXPECT_EQ(floatToHalf(1e9f), 0x7C00);
  EXPECT_EQ(floatToHalf(std::numeric_limits<float>::max()), 0x7C00);
  // Normal / subnormal boundary.
  EXPECT_EQ(floatToHalf(0x1p-14f), 0x0400);
  EXPECT_EQ(floatToHalf(0x1p-14f - 0x1p-24f), 0x03FF);
  EXPECT_EQ(floatToHalf(0x1p-14f - 0x1p-25f), 0x0400); // tie, odd up to normal
  // Subnormals: ulp 2^-24.
  EXPECT_EQ(floatToHalf(0x1p-24f), 0x0001);
  EXPECT_EQ(floatToHalf(0x1p-25f), 0x0000); // tie to even zero
  EXPECT_EQ(floatToHalf(std::nextafter(0x1p-25f, 1.0f)), 0x0001);
  EXPECT_EQ(floatToHalf(3 * 0x1p-25f), 0x0002); // tie, odd up
  EXPECT_EQ(floatToHalf(5 * 0x1p-25f), 0x0002); // tie, even stays
  EXPECT_EQ(floatToHalf(-0x1p-24f), 0x8001);
  EXPECT_EQ(floatToHalf(-0x1p-26f), 0x8000); // underflow keeps the sign
  EXPECT_EQ(floatToHalf(std::numeric_limits<float>::denorm_min()), 0x0000);
  // Zeros, infinities, NaN.
  EXPECT_EQ(floatToHalf(0.0f), 0x0000);
  EXPECT_EQ(floatToHalf(-0.0f), 0x8000);
  EXPECT_EQ(floatToHalf(std::numeric_limits<float>::infinity()), 0x7C00);
  EXPECT_EQ(floatToHalf(-std::numeric_limits<float>::infinity()), 0xFC00);
  EXPECT_EQ(floatToHalf(std::numeric_limits<float>::quiet_NaN()), 0x7E00);
  EXPECT_EQ(floatToHalf(fromBits(0x7F800001)), 0x7E00); // payload below 13 bits
  EXPECT_EQ(floatToHalf(fromBits(0xFFFFFFFF)), 0xFFFF);

  EXPECT_EQ(toBits(halfToFloat(0x3C00)), 0x3F800000u);
  EXPECT_EQ(halfToFloat(0x7BFF), 65504.0f);
  EXPECT_EQ(halfToFloat(0x0001), 0x1p-24f);
  EXPECT_EQ(halfToFloat(0x03FF), 0x1p-14f - 0x1p-24f);
  EXPECT_EQ(halfToFloat(0x0400), 0x1p-14f);
  EXPECT_EQ(toBits(halfToFloat(0x8000)), 0x80000000u);
  EXPECT_EQ(toBits(halfToFloat(0x8001)), toBits(-0x1p-24f));
  EXPECT_EQ(toBits(halfToFloat(0x7C00)), 0x7F800000u);
  EXPECT_EQ(toBits(halfToFloat(0xFC00)), 0xFF800000u);
  EXPECT_TRUE(std::isnan(halfToFloat(0x7E00)));
  EXPECT_TRUE(std::isnan(halfToFloat(0x7C01)));
}

//===----------------------------------------------------------------------===//
// Exhaustive properties over the 16-bit formats
//===----------------------------------------------------------------------===//

TEST(LowPrecisionTest, HalfExhaustive) {
  for (uint32_t i = 0; i < 0x10000; ++i) {
    const uint16_t h = uint16_t(i);
    const float x = halfToFloat(h);
    if (isHalfNaN(h)) {
      EXPECT_TRUE(std::isnan(x)) << std::hex << h;
      EXPECT_TRUE(isHalfNaN(floatToHalf(x))) << std::hex << h;
      continue;
    }
    // Widening is exact: the reference value of the pattern, from its fields.
    const int e = (h >> 10) & 0x1F, m = h & 0x3FF;
    const double mag = e == 0x1F ? std::numeric_limits<double>::infinity()
                       : e == 0  ? std::ldexp(m, -24)
                                 : std::ldexp(1024 + m, e - 25);
    EXPECT_EQ(double(x), (h & 0x8000) ? -mag : mag) << std::hex << h;
    EXPECT_EQ(std::signbit(x), bool(h & 0x8000)) << std::hex << h;
    // Representable values are fixed points of the narrowing.
    EXPECT_EQ(floatToHalf(x), h) << std::hex << h;
    EXPECT_EQ(toBits(halfToFloat(floatToHalf(x))), toBits(x)) << std::hex << h;
  }
}

TEST(LowPrecisionTest, Bf16Exhaustive) {
  for (uint32_t i = 0; i < 0x10000; ++i) {
    const uint16_t h = uint16_t(i);
    const float x = bf16ToFloat(h);
    if (isBf16NaN(h)) {
      EXPECT_TRUE(std::isnan(x)) << std::hex << h;
      EXPECT_TRUE(isBf16NaN(floatToBf16(x))) << std::hex << h;
      continue;
    }
    const int e = (h >> 7) & 0xFF, m = h & 0x7F;
    const double mag = e == 0xFF ? std::numeric_limits<double>::infinity()
                       : e == 0  ? std::ldexp(m, -133)
                                 : std::ldexp(128 + m, e - 134);
    EXPECT_EQ(double(x), (h & 0x8000) ? -mag : mag) << std::hex << h;
    EXPECT_EQ(floatToBf16(x), h) << std::hex << h;
    EXPECT_EQ(toBits(bf16ToFloat(floatToBf16(x))), toBits(x)) << std::hex << h;
  }
}

//===----------------------------------------------------------------------===//
// Against an independent reference
//===----------------------------------------------------------------------===//

TEST(LowPrecisionTest, MatchesDoubleReference) {
  const std::vector<float> xs = stressFloats(1 << 20, 1234);
  int64_t halfMismatches = 0, bf16Mismatches = 0;
  for (float x : xs) {
    const uint16_t h = floatToHalf(x), b = floatToBf16(x);
    if (std::isnan(x)) {
      halfMismatches += !isHalfNaN(h);
      bf16Mismatches += !isBf16NaN(b);
      continue;
    }
    const float hr = float(referenceRound(x, kHalf));
    const float br = float(referenceRound(x, kBf16));
    if (toBits(halfToFloat(h)) != toBits(hr) && halfMismatches++ < 10)
      ADD_FAILURE() << "fp16 of " << std::hexfloat << x << ": got "
                    << halfToFloat(h) << ", reference " << hr;
    if (toBits(bf16ToFloat(b)) != toBits(br) && bf16Mismatches++ < 10)
      ADD_FAILURE() << "bf16 of " << std::hexfloat << x << ": got "
                    << bf16ToFloat(b) << ", reference " << br;
  }
  EXPECT_EQ(halfMismatches, 0);
  EXPECT_EQ(bf16Mismatches, 0);
}

//===----------------------------------------------------------------------===//
// Bulk kernels
//===----------------------------------------------------------------------===//

TEST(LowPrecisionTest, BulkMatchesScalarAcrossThreadCounts) {
  // Large enough for the parallel path, odd so the split is uneven.
  const std::vector<float> xs = stressFloats(100003, 99);
  const int64_t n = int64_t(xs.size());
  const int saved = omp_get_max_threads();
  std::vector<uint16_t> h(n), b(n);
  std::vector<float> hf(n), bf(n), hrt(n), brt(n);
  for (int threads : {1, 3, 8}) {
    setNumThreads(threads);
    castF32ToF16(xs.data(), h.data(), n);
    castF32ToBf16(xs.data(), b.data(), n);
    castF16ToF32(h.data(), hf.data(), n);
    castBf16ToF32(b.data(), bf.data(), n);
    roundTripF16(xs.data(), hrt.data(), n);
    roundTripBf16(xs.data(), brt.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      ASSERT_EQ(h[i], floatToHalf(xs[i])) << i << " threads " << threads;
      ASSERT_EQ(b[i], floatToBf16(xs[i])) << i << " threads " << threads;
      ASSERT_EQ(toBits(hf[i]), toBits(halfToFloat(h[i]))) << i;
      ASSERT_EQ(toBits(bf[i]), toBits(bf16ToFloat(b[i]))) << i;
      ASSERT_EQ(toBits(hrt[i]), toBits(hf[i])) << i;
      ASSERT_EQ(toBits(brt[i]), toBits(bf[i])) << i;
    }
  }
  setNumThreads(saved);
}

TEST(LowPrecisionTest, RoundTripInPlace) {
  std::vector<float> y = {1.0f + 0x1p-11f, 70000.0f, -0x1p-25f, 0.1f};
  roundTripF16(y.data(), y.data(), int64_t(y.size()));
  EXPECT_EQ(y[0], 1.0f);
  EXPECT_TRUE(std::isinf(y[1]));
  EXPECT_EQ(toBits(y[2]), 0x80000000u);
  EXPECT_EQ(y[3], 0x1.998p-4f);
  std::vector<float> z = {fromBits(0x3F818000), 3.0e38f};
  roundTripBf16(z.data(), z.data(), int64_t(z.size()));
  EXPECT_EQ(toBits(z[0]), 0x3F820000u);
  EXPECT_EQ(toBits(z[1]), 0x7F620000u); // 3e38 = 0x7F61B1E6 rounds up
}

//===----------------------------------------------------------------------===//
// From double: one rounding
//===----------------------------------------------------------------------===//

namespace {

double fromBits64(uint64_t u) {
  double x;
  std::memcpy(&x, &u, sizeof(x));
  return x;
}

/// Random doubles that stress the narrowing from double: uniform patterns,
/// exact bf16 / fp16 midpoints nudged by far less than a float ulp (where
/// rounding through float's nearest would land on the tie), values beyond
/// the float range, and double subnormals.
std::vector<double> stressDoubles(size_t n, uint32_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<double> xs;
  xs.reserve(n);
  const std::vector<float> mids = stressFloats(n, seed);
  while (xs.size() < n) {
    const uint64_t u = rng();
    double x;
    switch (xs.size() % 4) {
    case 0:
      x = fromBits64(u);
      break;
    case 1: { // a float (often a midpoint) + or - a tiny fraction of its ulp
      const double m = mids[xs.size()];
      const int sign = (u & 1) ? 1 : -1;
      x = m + sign * std::fabs(m) * std::ldexp(1.0, -30 - int(u >> 59));
      if (u & 2)
        x = m; // the exact tie
      break;
    }
    case 2: // exponents around the float range and its subnormals
      x = std::ldexp(double(u >> 11) * 0x1p-53 + 1.0, int(u % 320) - 160);
      break;
    default: // double subnormals and tiny values
      x = fromBits64(u & 0x800FFFFFFFFFFFFFull) * ((u >> 40) & 1 ? 1 : 1e200);
      break;
    }
    xs.push_back(x);
  }
  return xs;
}

} // namespace

TEST(LowPrecisionTest, FromDoubleMatchesReferenceRoundingOnce) {
  // Rounding through float's nearest value would break ties it created
  // itself: 1 + 2^-8 + 2^-40 is above the bf16 midpoint 1 + 2^-8 but its
  // float is that midpoint, which rounds to even (down).
  const double above = 1.0 + 0x1p-8 + 0x1p-40;
  EXPECT_EQ(floatToBf16(float(above)), 0x3F80);
  EXPECT_EQ(doubleToBf16(above), 0x3F81);
  EXPECT_EQ(doubleToBf16(1.0 + 0x1p-8 - 0x1p-40), 0x3F80);
  EXPECT_EQ(doubleToBf16(1.0 + 0x1p-8), 0x3F80); // the exact tie: even
  EXPECT_EQ(doubleToHalf(1.0 + 0x1p-11 + 0x1p-40), 0x3C01);
  EXPECT_EQ(doubleToHalf(65519.99999999), 0x7BFF);
  EXPECT_EQ(doubleToHalf(65520.0), 0x7C00);
  EXPECT_EQ(doubleToBf16(1e300), 0x7F80);
  EXPECT_EQ(doubleToBf16(-1e300), 0xFF80);
  EXPECT_EQ(doubleToBf16(-1e-300), 0x8000);
  EXPECT_EQ(doubleToHalf(0x1p-25 + 0x1p-60), 0x0001); // above half of 2^-24
  EXPECT_EQ(doubleToHalf(0x1p-25), 0x0000);           // the tie: even
  EXPECT_TRUE(isBf16NaN(doubleToBf16(std::nan(""))));
  EXPECT_TRUE(isHalfNaN(doubleToHalf(-std::nan(""))));
  EXPECT_EQ(llamac::doubleToFloatRoundOdd(1e300),
            std::numeric_limits<float>::max());
  EXPECT_EQ(toBits(llamac::doubleToFloatRoundOdd(-1e-300)), 0x80000001u);
  EXPECT_EQ(llamac::doubleToFloatRoundOdd(0.5), 0.5f);

  int halfMismatches = 0, bf16Mismatches = 0;
  for (double x : stressDoubles(400000, 11)) {
    const uint16_t h = doubleToHalf(x), b = doubleToBf16(x);
    if (std::isnan(x)) {
      halfMismatches += !isHalfNaN(h);
      bf16Mismatches += !isBf16NaN(b);
      continue;
    }
    const float hr = float(referenceRound(x, kHalf));
    const float br = float(referenceRound(x, kBf16));
    if (toBits(halfToFloat(h)) != toBits(hr) && halfMismatches++ < 10)
      ADD_FAILURE() << "fp16 of " << std::hexfloat << x << ": got "
                    << halfToFloat(h) << ", reference " << hr;
    if (toBits(bf16ToFloat(b)) != toBits(br) && bf16Mismatches++ < 10)
      ADD_FAILURE() << "bf16 of " << std::hexfloat << x << ": got "
                    << bf16ToFloat(b) << ", reference " << br;
  }
  EXPECT_EQ(halfMismatches, 0);
  EXPECT_EQ(bf16Mismatches, 0);
}

TEST(LowPrecisionTest, BulkCastsBetweenEveryFloatPair) {
  const std::vector<float> xs = stressFloats(50001, 5);
  const std::vector<double> ds = stressDoubles(50001, 6);
  const int64_t n = int64_t(xs.size());
  std::vector<uint16_t> b(n), h(n), out16(n);
  std::vector<double> wide(n);
  std::vector<float> narrow(n);
  castF32ToBf16(xs.data(), b.data(), n);
  castF32ToF16(xs.data(), h.data(), n);
  castBf16ToF16(b.data(), out16.data(), n);
  for (int64_t i = 0; i < n; ++i)
    ASSERT_EQ(out16[i], floatToHalf(bf16ToFloat(b[i]))) << i;
  castF16ToBf16(h.data(), out16.data(), n);
  for (int64_t i = 0; i < n; ++i)
    ASSERT_EQ(out16[i], floatToBf16(halfToFloat(h[i]))) << i;
  castBf16ToF64(b.data(), wide.data(), n);
  for (int64_t i = 0; i < n; ++i)
    ASSERT_TRUE(std::isnan(wide[i]) ? isBf16NaN(b[i])
                                    : wide[i] == double(bf16ToFloat(b[i])));
  castF16ToF64(h.data(), wide.data(), n);
  for (int64_t i = 0; i < n; ++i)
    ASSERT_TRUE(std::isnan(wide[i]) ? isHalfNaN(h[i])
                                    : wide[i] == double(halfToFloat(h[i])));
  castF32ToF64(xs.data(), wide.data(), n);
  castF64ToF32(wide.data(), narrow.data(), n);
  for (int64_t i = 0; i < n; ++i)
    ASSERT_TRUE(std::isnan(xs[i]) ? std::isnan(narrow[i])
                                  : toBits(narrow[i]) == toBits(xs[i]))
        << i;
  castF64ToBf16(ds.data(), out16.data(), n);
  for (int64_t i = 0; i < n; ++i)
    ASSERT_EQ(out16[i], doubleToBf16(ds[i])) << i;
  castF64ToF16(ds.data(), out16.data(), n);
  for (int64_t i = 0; i < n; ++i)
    ASSERT_EQ(out16[i], doubleToHalf(ds[i])) << i;
}

TEST(LowPrecisionTest, AllFiniteOnEvery16BitPattern) {
  int finiteB = 0, finiteH = 0;
  for (uint32_t u = 0; u < 0x10000; ++u) {
    const uint16_t x = uint16_t(u);
    EXPECT_EQ(allFiniteBf16(&x, 1), std::isfinite(bf16ToFloat(x))) << u;
    EXPECT_EQ(allFiniteF16(&x, 1), std::isfinite(halfToFloat(x))) << u;
    finiteB += allFiniteBf16(&x, 1);
    finiteH += allFiniteF16(&x, 1);
  }
  EXPECT_EQ(finiteB, 65536 - 2 * 128); // exponent 0xFF, either sign
  EXPECT_EQ(finiteH, 65536 - 2 * 1024);
  // Large (parallel) buffers: one bad element anywhere.
  std::vector<uint16_t> big(200003, floatToBf16(1.5f));
  EXPECT_TRUE(allFiniteBf16(big.data(), int64_t(big.size())));
  big[123457] = 0xFFC1; // a NaN
  EXPECT_FALSE(allFiniteBf16(big.data(), int64_t(big.size())));
  std::vector<uint16_t> halves(200003, floatToHalf(-2.0f));
  EXPECT_TRUE(allFiniteF16(halves.data(), int64_t(halves.size())));
  halves.back() = 0x7C00; // +inf
  EXPECT_FALSE(allFiniteF16(halves.data(), int64_t(halves.size())));
  EXPECT_TRUE(allFiniteF16(halves.data(), 0));
}
