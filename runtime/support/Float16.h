//===- Float16.h - bf16 and fp16 bit-pattern conversions ---------*- C++ -*-===//
//
// Scalar conversions between float and the 16-bit floating-point storage
// formats. Dependency-free; used by the CPU kernels (mixed-precision
// emulation) and the safetensors reader (F16/BF16 tensors).
//
// Values are held as raw bit patterns (uint16_t): bf16 (1-8-7, the upper half
// of a float) and IEEE binary16 (1-5-10). Narrowing rounds to nearest, ties to
// even, like torch's .to(torch.bfloat16) / .half() and the CUDA __float2bfloat16
// / __float2half intrinsics:
//  - finite values too large for the format become +-inf (fp16: |x| >= 65520,
//    the midpoint above the largest finite value 65504; bf16: above
//    0x7F7F's midpoint);
//  - subnormals of the target are produced exactly (fp16 down to 2^-24; a
//    value at or below 2^-25 becomes a signed zero);
//  - zeros and infinities keep their sign; NaN stays NaN: sign and the top
//    payload bits are kept and the quiet bit is set. (torch returns one
//    canonical NaN instead; only NaN-ness, not the payload, is part of the
//    contract.)
// Widening is exact (every bf16 and fp16 value is a float) and keeps the bits
// of NaNs as they are.
// From double, the narrowing is rounded once, to nearest even, as if the
// double were rounded directly (not double-rounded through float's nearest):
// the double is first rounded to float *to odd* (truncate, then set the last
// bit when inexact), which keeps enough information for the second rounding
// to be correct (Boldo & Melquiond, "Emulation of FMA and correctly rounded
// sums: proved algorithms using rounding to odd", 2008).
// NOTE: independent of the floating-point environment (integer arithmetic
// only); the rounding mode set by fesetround is ignored.
//
//===----------------------------------------------------------------------===//
#ifndef LLAMAC_RUNTIME_SUPPORT_FLOAT16_H
#define LLAMAC_RUNTIME_SUPPORT_FLOAT16_H

#include <cstdint>

namespace llamac {

/// Nearest bf16 of x, ties to even. Equivalent to: __float2bfloat16_rn.
uint16_t floatToBf16(float x);
/// The float whose upper 16 bits are h (exact).
float bf16ToFloat(uint16_t h);
/// Nearest IEEE binary16 of x, ties to even. Equivalent to: __float2half_rn.
uint16_t floatToHalf(float x);
/// The value of the binary16 pattern h (exact).
float halfToFloat(uint16_t h);

/// Nearest bf16 of the double x, ties to even (one rounding; see above).
uint16_t doubleToBf16(double x);
/// Nearest IEEE binary16 of the double x, ties to even (one rounding).
uint16_t doubleToHalf(double x);
/// x rounded to float toward zero, with the last significand bit set when
/// that is inexact ("round to odd"); values beyond the largest finite float
/// give it (with the sign); NaN stays NaN (quiet), inf stays inf. Exposed
/// for tests.
float doubleToFloatRoundOdd(double x);

} // namespace llamac

#endif // LLAMAC_RUNTIME_SUPPORT_FLOAT16_H
