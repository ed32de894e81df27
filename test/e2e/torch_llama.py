"""An independent PyTorch LLaMA training step, written from the Hugging Face
LlamaForCausalLM math (not derived from llamac), for parity tests and the
benchmark. Runs on Debian's python3-torch: use /usr/bin/python3.

  make-case:  random HF-named weights (safetensors), config.json, token file
  reference:  N AdamW steps with clipping from those weights on that data;
              optionally compare with llamac's metrics JSONL; --time adds
              each step's wall time (bench/cpu_vs_torch.sh)
"""
import argparse
import json
import math
import os
import struct
import sys
import time

import torch

# ---------------------------------------------------------------- file formats

TOKEN_MAGIC = b"LLAMACTK"


def write_tokens(path, tokens, vocab):
    width = 2 if vocab <= 65536 else 4
    with open(path, "wb") as f:
        f.write(TOKEN_MAGIC + struct.pack("<IIQQ", 1, width, vocab, len(tokens)))
        f.write(struct.pack("<%d%s" % (len(tokens), "H" if width == 2 else "I"), *tokens))


def read_tokens(path):
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == TOKEN_MAGIC, "not a llamac token file"
    _, width, vocab, count = struct.unpack("<IIQQ", data[8:32])
    fmt = "<%d%s" % (count, "H" if width == 2 else "I")
    return list(struct.unpack(fmt, data[32:32 + count * width])), vocab


def save_safetensors(path, tensors):
    """The safetensors layout, written by hand: u64 header size, JSON header,
    little-endian data."""
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        b = t.detach().to(torch.float32).contiguous().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for b in blobs:
            f.write(b)


def load_safetensors(path):
    import numpy as np
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", info["dtype"]
        b, e = info["data_offsets"]
        arr = np.frombuffer(data[base + b:base + e], dtype=np.float32).copy()
        out[name] = torch.from_numpy(arr).reshape(info["shape"])
    return out

# ---------------------------------------------------------------- the model


def param_names(cfg):
    names = ["model.embed_tokens.weight"]
    for l in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % l
        names += [p + "input_layernorm.weight", p + "self_attn.q_proj.weight",
                  p + "self_attn.k_proj.weight", p + "self_attn.v_proj.weight",
                  p + "self_attn.o_proj.weight", p + "post_attention_layernorm.weight",
                  p + "mlp.gate_proj.weight", p + "mlp.up_proj.weight",
                  p + "mlp.down_proj.weight"]
    names.append("model.norm.weight")
    if not cfg.get("tie_word_embeddings", False):
        names.append("lm_head.weight")
    return names


def rms_norm(x, w, eps):
    var = x.pow(2).mean(-1, keepdim=True)
    return w * (x * torch.rsqrt(var + eps))


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def forward_loss(P, cfg, tokens, targets, dtype):
    H = cfg["num_attention_heads"]
    KV = cfg.get("num_key_value_heads", H)
    D = cfg["hidden_size"]
    Q = cfg.get("head_dim", D // H)
    eps = cfg.get("rms_norm_eps", 1e-6)
    theta = cfg.get("rope_theta", 10000.0)
    B, T = tokens.shape
    inv_freq = 1.0 / (theta ** (torch.arange(0, Q, 2, dtype=torch.float64) / Q))
    freqs = torch.outer(torch.arange(T, dtype=torch.float64), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos().to(dtype)[None, :, None, :], emb.sin().to(dtype)[None, :, None, :]
    mask = torch.full((T, T), float("-inf"), dtype=dtype).triu(1)

    h = P["model.embed_tokens.weight"][tokens]
    for l in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % l
        x = rms_norm(h, P[p + "input_layernorm.weight"], eps)
        q = (x @ P[p + "self_attn.q_proj.weight"].T).view(B, T, H, Q)
        k = (x @ P[p + "self_attn.k_proj.weight"].T).view(B, T, KV, Q)
        v = (x @ P[p + "self_attn.v_proj.weight"].T).view(B, T, KV, Q)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        k = k.repeat_interleave(H // KV, dim=1)  # HF repeat_kv
        v = v.repeat_interleave(H // KV, dim=1)
        s = (q @ k.transpose(-1, -2)) / math.sqrt(Q) + mask
        o = (torch.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(B, T, H * Q)
        h = h + o @ P[p + "self_attn.o_proj.weight"].T
        x = rms_norm(h, P[p + "post_attention_layernorm.weight"], eps)
        g = x @ P[p + "mlp.gate_proj.weight"].T
        u = x @ P[p + "mlp.up_proj.weight"].T
        h = h + (torch.nn.functional.silu(g) * u) @ P[p + "mlp.down_proj.weight"].T
    h = rms_norm(h, P["model.norm.weight"], eps)
    head = P["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings", False) else P["lm_head.weight"]
    logits = h @ head.T
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                             targets.reshape(-1))


def batch(tokens, step, B, T):
    n = (len(tokens) - 1) // T
    xs, ys = [], []
    for i in range(B):
        j = (step * B + i) % n
        seq = tokens[j * T:j * T + T + 1]
        xs.append(seq[:-1])
        ys.append(seq[1:])
    return torch.tensor(xs), torch.tensor(ys)


def lr_at(s, a):
    if a.warmup_steps > 0 and s < a.warmup_steps:
        return a.lr * (s + 1) / a.warmup_steps
    if a.decay_steps == 0:
        return a.lr
    if s >= a.decay_steps:
        return a.min_lr
    r = (s - a.warmup_steps) / (a.decay_steps - a.warmup_steps)
    return a.min_lr + 0.5 * (a.lr - a.min_lr) * (1 + math.cos(math.pi * r))


def reference(a):
    dtype = torch.float64 if a.double else torch.float32
    cfg = json.load(open(a.config))
    weights = load_safetensors(a.init)
    names = param_names(cfg)
    P = {n: weights[n].to(dtype).clone().requires_grad_(True) for n in names}
    decay = [P[n] for n in names if P[n].dim() >= 2]
    no_decay = [P[n] for n in names if P[n].dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=a.lr, betas=(a.beta1, a.beta2), eps=a.eps)
    tokens, _ = read_tokens(a.data)
    rows = []
    for s in range(a.steps):
        start = time.perf_counter()
        for g in opt.param_groups:
            g["lr"] = lr_at(s, a)
        x, y = batch(tokens, s, a.global_batch, a.seq_len)
        opt.zero_grad()
        loss = forward_loss(P, cfg, x, y, dtype)
        loss.backward()
        params = [P[n] for n in names]
        if a.clip_grad_norm > 0:
            norm = torch.nn.utils.clip_grad_norm_(params, a.clip_grad_norm)
        else:
            norm = torch.norm(torch.stack([p.grad.norm() for p in params]))
            if a.clip_grad_value > 0:
                torch.nn.utils.clip_grad_value_(params, a.clip_grad_value)
        opt.step()
        row = {"step": s, "loss": loss.item(), "grad_norm": norm.item(),
               "lr": lr_at(s, a)}
        if getattr(a, "time", False):
            # Batch assembly through the optimizer step, like llamac's
            # tokens_per_s (data loading + one run of the step program).
            row["seconds"] = time.perf_counter() - start
        rows.append(row)
    return rows


def compare(rows, metrics_path, rtol):
    got = [json.loads(l) for l in open(metrics_path) if l.strip()]
    if len(got) != len(rows):
        print("FAIL: llamac wrote %d steps, reference has %d" % (len(got), len(rows)))
        return 1
    worst = 0.0
    bad = 0
    for r, g in zip(rows, got):
        for key in ("loss", "grad_norm", "lr"):
            ref, val = r[key], g[key]
            err = abs(val - ref) / max(abs(ref), 1e-12)
            worst = max(worst, err)
            flag = "" if err <= rtol else "  <-- exceeds %.0e" % rtol
            bad += err > rtol
            print("step %d %-9s llamac %.8f torch %.8f rel %.2e%s"
                  % (r["step"], key, val, ref, err, flag))
    print("max relative error %.3e (tolerance %.0e): %s"
          % (worst, rtol, "PASS" if not bad else "FAIL"))
    return 1 if bad else 0


def make_case(a):
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama",
           "hidden_size": a.hidden, "intermediate_size": a.intermediate,
           "num_attention_heads": a.heads, "num_key_value_heads": a.kv_heads,
           "num_hidden_layers": a.layers, "vocab_size": a.vocab,
           "rms_norm_eps": 1e-5, "rope_theta": a.rope_theta,
           "max_position_embeddings": 1024, "tie_word_embeddings": a.tied,
           "initializer_range": 0.02, "hidden_act": "silu"}
    os.makedirs(a.out, exist_ok=True)
    json.dump(cfg, open(os.path.join(a.out, "config.json"), "w"), indent=2)
    g = torch.Generator().manual_seed(a.seed)
    weights = {}
    for n in param_names(cfg):
        shape = {"model.embed_tokens.weight": (a.vocab, a.hidden),
                 "lm_head.weight": (a.vocab, a.hidden)}.get(n)
        if shape is None:
            hq = a.heads * (a.hidden // a.heads)
            hk = a.kv_heads * (a.hidden // a.heads)
            leaf = n.split(".")[-2]
            shape = {"input_layernorm": (a.hidden,), "post_attention_layernorm": (a.hidden,),
                     "norm": (a.hidden,), "q_proj": (hq, a.hidden), "k_proj": (hk, a.hidden),
                     "v_proj": (hk, a.hidden), "o_proj": (a.hidden, hq),
                     "gate_proj": (a.intermediate, a.hidden), "up_proj": (a.intermediate, a.hidden),
                     "down_proj": (a.hidden, a.intermediate)}[leaf]
        if len(shape) == 1:  # norms: around 1, not exactly 1, so they matter
            weights[n] = 1.0 + 0.1 * torch.randn(shape, generator=g)
        else:
            weights[n] = 0.02 * torch.randn(shape, generator=g)
    save_safetensors(os.path.join(a.out, "init.safetensors"), weights)
    # Structured tokens (a noisy repeating pattern) so the loss can fall.
    toks = [(i * 7 + (i // 13)) % a.vocab if torch.rand(1, generator=g).item() > 0.2
            else int(torch.randint(a.vocab, (1,), generator=g)) for i in range(a.num_tokens)]
    write_tokens(os.path.join(a.out, "data.tok"), toks, a.vocab)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make-case")
    m.add_argument("--out", required=True)
    m.add_argument("--hidden", type=int, default=64)
    m.add_argument("--intermediate", type=int, default=176)
    m.add_argument("--heads", type=int, default=4)
    m.add_argument("--kv-heads", type=int, default=2)
    m.add_argument("--layers", type=int, default=2)
    m.add_argument("--vocab", type=int, default=128)
    m.add_argument("--rope-theta", type=float, default=10000.0)
    m.add_argument("--tied", action="store_true")
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--num-tokens", type=int, default=4096)
    r = sub.add_parser("reference")
    for flag, typ, default in [("--config", str, None), ("--init", str, None), ("--data", str, None),
                               ("--steps", int, 5), ("--seq-len", int, 16), ("--global-batch", int, 4),
                               ("--lr", float, 1e-3), ("--min-lr", float, 0.0),
                               ("--warmup-steps", int, 0), ("--decay-steps", int, 0),
                               ("--beta1", float, 0.9), ("--beta2", float, 0.95), ("--eps", float, 1e-8),
                               ("--weight-decay", float, 0.1), ("--clip-grad-norm", float, 1.0),
                               ("--clip-grad-value", float, 0.0), ("--compare", str, None),
                               ("--rtol", float, 1e-4), ("--threads", int, 1)]:
        r.add_argument(flag, type=typ, default=default)
    r.add_argument("--double", action="store_true",
                   help="compute the reference in float64 (the exact math)")
    r.add_argument("--time", action="store_true",
                   help="add each step's wall time in seconds to its row")
    a = ap.parse_args()
    if a.cmd == "make-case":
        make_case(a)
        return 0
    torch.set_num_threads(a.threads)
    rows = reference(a)
    if a.compare:
        return compare(rows, a.compare, a.rtol)
    for row in rows:
        print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
