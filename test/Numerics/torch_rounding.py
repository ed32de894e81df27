"""Writes float32 values and PyTorch's bf16 / fp16 conversions of them, as
hex bit patterns, one value per line: "XBITS BF16BITS HALFBITS". The values
cover every rounding corner (ties to even at both precisions, the largest
finite values and their overflow thresholds, subnormals, signed zeros,
infinities, NaN) plus random patterns across the whole float range.

  torch_rounding.py OUT [--random N]   (run with the interpreter that has torch)
"""
import argparse
import struct

import torch


def bits(f):
    return struct.unpack("<I", struct.pack("<f", f))[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--random", type=int, default=200000)
    a = ap.parse_args()
    corners = []
    for base in (1.0, 3.0, 65504.0, 65520.0, 6.103515625e-05, 5.960464477539063e-08,
                 3.3895313892515355e38, 1.1754943508222875e-38):
        b = bits(base)
        for d in range(-300, 301):
            corners.append((b + d) & 0xFFFFFFFF)
    # Exact ties: bf16 keeps 16 bits (half-way = 0x8000 below), fp16 keeps
    # 13 mantissa bits (half-way = 0x1000).
    for hi in range(0, 0x10000, 97):
        corners.append((hi << 16) | 0x8000)
        corners.append((hi << 16) | 0x7FFF)
        corners.append((hi << 16) | 0x1000)
        corners.append((hi << 16) | 0x3000)
    corners += [0x00000000, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000,
                0x477FEFFF, 0x477FF000, 0x477FF001, 0x33000000, 0x33000001,
                0x337FFFFF]
    gen = torch.Generator().manual_seed(1)
    rnd = torch.randint(0, 2 ** 32, (a.random,), generator=gen, dtype=torch.int64)
    values = corners + [int(v) for v in rnd]
    x = torch.tensor([v - (1 << 32) if v >= (1 << 31) else v for v in values],
                     dtype=torch.int32).view(torch.float32)
    b = x.to(torch.bfloat16).view(torch.int16).to(torch.int32) & 0xFFFF
    h = x.half().view(torch.int16).to(torch.int32) & 0xFFFF
    with open(a.out, "w") as f:
        for v, bb, hh in zip(values, b.tolist(), h.tolist()):
            f.write("%08x %04x %04x\n" % (v, bb, hh))


if __name__ == "__main__":
    main()
