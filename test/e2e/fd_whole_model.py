"""Finite-difference check of llamac's whole-model gradient, independent of
PyTorch: the only oracle is llamac's own forward loss at perturbed weights.

1. A plan compiled with lr = 0, beta1 = 0, no clipping and no weight decay
   runs one step from a random init and saves a checkpoint: the weights are
   the unchanged theta, and exp_avg = (1 - beta1) * g = g exactly.
2. For each direction d (the whole gradient, and the gradient restricted to
   single tensors: embedding, norms, projections of each kind), llamac runs
   the loss at theta + h d and theta - h d (--init), and the central
   difference (L+ - L-) / 2h must equal g . d = |g_T|.

Step size and tolerance: the central difference has a truncation error
~h^2 (measured: halving h quarters the error) and an fp32 rounding error of
about 1e-6 / (2 h |g_T|) relative, since the loss (~5) is printed from an
fp32 value. h = 3e-3 for directions with |g_T| > 0.1 and h = 1e-2 below
keeps both under ~1e-3; the tolerance is 5e-3, far below what a wrong rule
produces (a missing term or a transposed weight is off by O(1)).

Uses numpy only (no torch). Usage:
  fd_whole_model.py LLAMAC PLAN DATA WORKDIR [--h H] [--rtol R]
"""
import argparse
import json
import os
import struct
import subprocess
import sys

import numpy as np


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", (name, info["dtype"])
        b, e = info["data_offsets"]
        out[name] = np.frombuffer(data[8 + n + b:8 + n + e], dtype="<f4").reshape(info["shape"]).copy()
    return out


def write_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for name, t in tensors.items():
        b = np.ascontiguousarray(t, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def loss_at(a, weights, tag):
    init = os.path.join(a.workdir, "init-%s.safetensors" % tag)
    metrics = os.path.join(a.workdir, "metrics-%s.jsonl" % tag)
    write_safetensors(init, weights)
    subprocess.run([a.llamac, "run", a.plan, "--data", a.data, "--steps", "1",
                    "--init", init, "--metrics", metrics, "-q"], check=True)
    with open(metrics) as f:
        return json.loads(f.readline())["loss"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("llamac")
    ap.add_argument("plan")
    ap.add_argument("data")
    ap.add_argument("workdir")
    ap.add_argument("--rtol", type=float, default=5e-3)
    a = ap.parse_args()

    ckpt = os.path.join(a.workdir, "ckpt")
    subprocess.run([a.llamac, "run", a.plan, "--data", a.data, "--steps", "1",
                    "--save-dir", ckpt, "-q"], check=True)
    step = open(os.path.join(ckpt, "latest")).read().strip()
    theta = read_safetensors(os.path.join(ckpt, step, "model.safetensors"))
    moments = read_safetensors(os.path.join(ckpt, step, "optimizer.safetensors"))
    grad = {n: moments[n + ".exp_avg"].astype(np.float64) for n in theta}

    # Directions: the full gradient, then one tensor of each kind.
    picks = ["model.embed_tokens.weight", "model.norm.weight"]
    for kind in ["input_layernorm", "self_attn.q_proj", "self_attn.k_proj",
                 "self_attn.v_proj", "self_attn.o_proj", "post_attention_layernorm",
                 "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]:
        picks.append("model.layers.0.%s.weight" % kind)
    if "lm_head.weight" in theta:
        picks.append("lm_head.weight")
    directions = [("all", list(theta))] + [(p, [p]) for p in picks]

    failures = 0
    for label, names in directions:
        norm = np.sqrt(sum((grad[n] ** 2).sum() for n in names))
        h = 3e-3 if norm > 0.1 else 1e-2
        d = {n: (grad[n] / norm if n in names else np.zeros_like(grad[n])) for n in theta}
        plus = {n: (theta[n].astype(np.float64) + h * d[n]).astype(np.float32) for n in theta}
        minus = {n: (theta[n].astype(np.float64) - h * d[n]).astype(np.float32) for n in theta}
        fd = (loss_at(a, plus, "p") - loss_at(a, minus, "m")) / (2 * h)
        analytic = norm  # g . d with d = g_T / |g_T|
        err = abs(fd - analytic) / abs(analytic)
        ok = err <= a.rtol
        failures += not ok
        print("%-45s g.d %.6e  finite difference %.6e  rel %.2e %s"
              % (label, analytic, fd, err, "ok" if ok else "FAIL"))
    print("whole-model gradient check: %s" % ("PASS" if not failures else "FAIL"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
