//===- Float16Oracle.cpp - llamac's bf16/fp16 rounding, for PyTorch checks ===//
//
// Reads lines "XBITS BF16BITS HALFBITS" (hex: a float's bit pattern and what
// PyTorch's .to(torch.bfloat16) / .half() make of it, written by
// test/unit/torch_rounding.py) and compares llamac's floatToBf16 /
// floatToHalf with them, NaNs compared as NaN. Prints the mismatches (up to
// 10) and "N values, M mismatches"; exits 1 on any mismatch.
//
//===----------------------------------------------------------------------===//
#include "support/Float16.h"

#include <cinttypes>
#include <cstdio>
#include <cstring>

using namespace llamac;

static bool sameValue(uint16_t got, uint16_t want, bool bf16) {
  if (got == want)
    return true;
  // Any NaN equals any NaN (payloads are not part of the contract).
  float g = bf16 ? bf16ToFloat(got) : halfToFloat(got);
  float w = bf16 ? bf16ToFloat(want) : halfToFloat(want);
  return g != g && w != w;
}

int main() {
  unsigned x = 0, b = 0, h = 0;
  long n = 0, bad = 0;
  while (std::scanf("%x %x %x", &x, &b, &h) == 3) {
    float f;
    uint32_t bits = x;
    std::memcpy(&f, &bits, sizeof f);
    uint16_t gb = floatToBf16(f), gh = floatToHalf(f);
    ++n;
    for (int which = 0; which < 2; ++which) {
      uint16_t got = which ? gh : gb, want = which ? h : b;
      if (!sameValue(got, want, which == 0)) {
        if (++bad <= 10)
          std::printf("MISMATCH %s of %08x (%.9g): llamac %04x, torch %04x\n",
                      which ? "half" : "bf16", x, double(f), got, want);
      }
    }
  }
  std::printf("%ld values, %ld mismatches\n", n, bad);
  return bad ? 1 : 0;
}
