"""PyTorch side of the TinyLlama-1.1B training benchmark (scripts/gpu-check.sh,
stage `bench`): a self-contained LLaMA in plain torch (embedding, RMSNorm,
RoPE with HF's rotate_half, GQA causal attention through
F.scaled_dot_product_attention, SwiGLU MLP, untied LM head, cross entropy),
AdamW (fused where available) with gradient clipping, the hyperparameters of
llamac's plans (lr 3e-4, betas 0.9/0.95, eps 1e-8, weight decay 0.1 on
matrices only, clip norm 1.0). Timed with CUDA events over --steps steps
after --warmup untimed ones; prints tokens/s and MFU, with FLOPs/token =
6N + 12*L*H*Q*T (N: parameters without the token embedding, as llamac's
`inspect` and metrics count them) over a peak of 989e12 FLOP/s (H100/H200
SXM, bf16 dense).

bf16 (the default) is autocast: fp32 weights, AdamW state and gradients,
bf16 matmuls and attention, which is what llamac's `--precision bf16` plans
do (bf16 compute, fp32 master weights). `--bf16-mode pure` casts the model
to bf16 instead (bf16 weights and AdamW state; less memory, less traffic).

  torch_tinyllama.py [--device cuda] [--batch 8] [--seq-len 2048]
                     [--steps 10] [--warmup 3] [--compile]
                     [--precision bf16|fp32] [--bf16-mode autocast|pure]
                     [--json FILE]
  torch_tinyllama.py --device cpu --tiny          # smoke test, any torch
  torch_tinyllama.py --write-tokens FILE --vocab 32000 --num-tokens N

--compile compiles each decoder layer and the loss head with torch.compile
(one graph serves every layer, which keeps compile time to tens of
seconds); on a torch without torch.compile (1.x) it says so and exits 0.
--write-tokens writes a llamac token file (docs/token-format.md) of a noisy
repeating pattern, for `llamac run --data`, and needs no torch.
"""
import argparse
import inspect
import json
import math
import random
import statistics
import struct
import sys
import time

TINYLLAMA = {"hidden": 2048, "layers": 22, "heads": 32, "kv_heads": 4,
             "intermediate": 5632, "vocab": 32000}
TINY = {"hidden": 64, "layers": 2, "heads": 4, "kv_heads": 2,
        "intermediate": 176, "vocab": 256}
PEAK_FLOPS = 989e12


def write_tokens(path, vocab, count, seed):
    """A llamac token file: magic, u32 version 1, u32 width, u64 vocab, u64
    count, little-endian ids. The pattern of test/e2e/torch_llama.py
    make-case (80% a repeating sequence, 20% random), so losses fall."""
    rng = random.Random(seed)
    toks = [(i * 7 + (i // 13)) % vocab if rng.random() > 0.2 else rng.randrange(vocab)
            for i in range(count)]
    width = 2 if vocab <= 65536 else 4
    with open(path, "wb") as f:
        f.write(b"LLAMACTK" + struct.pack("<IIQQ", 1, width, vocab, count))
        f.write(struct.pack("<%d%s" % (count, "H" if width == 2 else "I"), *toks))


def build(torch, cfg, seq_len, device, dtype):
    nn = torch.nn
    F = torch.nn.functional
    D, H, KV = cfg["hidden"], cfg["heads"], cfg["kv_heads"]
    Q = D // H
    I, V, eps, theta = cfg["intermediate"], cfg["vocab"], 1e-5, 10000.0
    kw = {"device": device, "dtype": dtype}
    sdpa = getattr(F, "scaled_dot_product_attention", None)
    # SDPA's enable_gqa (torch >= 2.5) saves repeating K/V, but only where it
    # keeps the fast kernel: on CUDA, used when the flash-attention backend
    # takes it forward and backward in bf16, else K/V are repeated (as HF's
    # repeat_kv does) and SDPA picks its backend as usual.
    native_gqa = False
    if sdpa is not None:
        try:
            t = dict(device=device, dtype=torch.bfloat16 if device.type == "cuda" else torch.float32)
            q = torch.zeros(1, H, 64, Q, requires_grad=True, **t)
            kv = torch.zeros(1, KV, 64, Q, requires_grad=True, **t)
            if device.type == "cuda":
                from torch.nn.attention import SDPBackend, sdpa_kernel
                with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
                    sdpa(q, kv, kv, is_causal=True, enable_gqa=True).sum().backward()
            else:
                sdpa(q, kv, kv, is_causal=True, enable_gqa=True)
            native_gqa = True
        except (TypeError, RuntimeError, ImportError):
            pass

    def linear(i, o):
        return nn.Linear(i, o, bias=False, **kw)

    class RMSNorm(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(D, **kw))

        def forward(self, x):  # HF LlamaRMSNorm: fp32 statistics
            t = x.dtype
            x = x.float()
            x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
            return self.weight * x.to(t)

    def rotate_half(x):
        h = x.shape[-1] // 2
        return torch.cat((-x[..., h:], x[..., :h]), dim=-1)

    inv_freq = 1.0 / (theta ** (torch.arange(0, Q, 2, dtype=torch.float32, device=device) / Q))
    freqs = torch.outer(torch.arange(seq_len, dtype=torch.float32, device=device), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos_cached, sin_cached = emb.cos(), emb.sin()  # [T, Q]
    causal = torch.full((seq_len, seq_len), float("-inf"), device=device).triu(1)

    def attention(q, k, v):  # [B, H|KV, T, Q]
        if sdpa is not None and native_gqa:
            return sdpa(q, k, v, is_causal=True, enable_gqa=True)
        k = k.repeat_interleave(H // KV, dim=1)  # HF repeat_kv
        v = v.repeat_interleave(H // KV, dim=1)
        if sdpa is not None:
            return sdpa(q, k, v, is_causal=True)
        T = q.shape[2]  # torch 1.x: the math
        s = (q @ k.transpose(-1, -2)) / math.sqrt(Q) + causal[:T, :T].to(q.dtype)
        return torch.softmax(s.float(), dim=-1).to(q.dtype) @ v

    class Layer(nn.Module):
        def __init__(self):
            super().__init__()
            self.input_layernorm = RMSNorm()
            self.q_proj, self.k_proj = linear(D, H * Q), linear(D, KV * Q)
            self.v_proj, self.o_proj = linear(D, KV * Q), linear(H * Q, D)
            self.post_attention_layernorm = RMSNorm()
            self.gate_proj, self.up_proj = linear(D, I), linear(D, I)
            self.down_proj = linear(I, D)

        def forward(self, h):
            B, T, _ = h.shape
            x = self.input_layernorm(h)
            q = self.q_proj(x).view(B, T, H, Q).transpose(1, 2)
            k = self.k_proj(x).view(B, T, KV, Q).transpose(1, 2)
            v = self.v_proj(x).view(B, T, KV, Q).transpose(1, 2)
            cos, sin = cos_cached[:T].to(q.dtype), sin_cached[:T].to(q.dtype)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            o = attention(q, k, v).transpose(1, 2).reshape(B, T, H * Q)
            h = h + self.o_proj(o)
            x = self.post_attention_layernorm(h)
            return h + self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))

    class Head(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm = RMSNorm()
            self.lm_head = linear(D, V)

        def forward(self, h, targets):
            logits = self.lm_head(self.norm(h))
            return F.cross_entropy(logits.float().view(-1, V), targets.reshape(-1))

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed_tokens = nn.Embedding(V, D, **kw)
            self.layers = nn.ModuleList(Layer() for _ in range(cfg["layers"]))
            self.head = Head()

        def forward(self, tokens, targets):
            h = self.embed_tokens(tokens)
            for layer in self.layers:
                h = layer(h)
            return self.head(h, targets)

    model = Model()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                p.normal_(0.0, 0.02)
    return model, ("native GQA" if native_gqa else "repeat_kv") + \
        (" + SDPA" if sdpa is not None else " + math attention (no SDPA in this torch)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true",
                    help="hidden 64, 2 layers, vocab 256 (and seq 64, batch 2 unless given)")
    ap.add_argument("--batch", type=int, help="micro batch (sequences per step; default 8, tiny 2)")
    ap.add_argument("--seq-len", type=int, help="default 2048, tiny 64")
    ap.add_argument("--steps", type=int, default=10, help="timed steps")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    ap.add_argument("--compile", action="store_true", help="torch.compile each layer and the head")
    ap.add_argument("--precision", choices=["bf16", "fp32"], default="bf16")
    ap.add_argument("--bf16-mode", choices=["autocast", "pure"], default="autocast")
    ap.add_argument("--peak-flops", type=float, default=PEAK_FLOPS)
    ap.add_argument("--threads", type=int, help="CPU threads (torch.set_num_threads)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="also write the result as one JSON object here")
    ap.add_argument("--write-tokens", metavar="FILE", help="write a token file and exit")
    ap.add_argument("--vocab", type=int, default=TINYLLAMA["vocab"], help="with --write-tokens")
    ap.add_argument("--num-tokens", type=int, default=1 << 18, help="with --write-tokens")
    a = ap.parse_args()

    if a.write_tokens:
        write_tokens(a.write_tokens, a.vocab, a.num_tokens, a.seed)
        print("wrote %s: %d tokens, vocab %d" % (a.write_tokens, a.num_tokens, a.vocab))
        return 0

    import torch
    cfg = TINY if a.tiny else TINYLLAMA
    B = a.batch or (2 if a.tiny else 8)
    T = a.seq_len or (64 if a.tiny else 2048)
    mode = "compile" if a.compile else "eager"
    result = {"mode": mode, "torch": torch.__version__, "batch": B, "seq_len": T,
              "precision": a.precision, "model": "tiny" if a.tiny else "tinyllama-1.1b"}
    if a.compile and not hasattr(torch, "compile"):
        print("torch %s has no torch.compile: the compiled run is skipped" % torch.__version__)
        result["skipped"] = "no torch.compile in torch %s" % torch.__version__
        if a.json:
            json.dump(result, open(a.json, "w"))
        return 0
    if a.threads:
        torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32
        torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(a.seed)

    pure = a.precision == "bf16" and a.bf16_mode == "pure"
    param_dtype = torch.bfloat16 if pure else torch.float32
    t0 = time.perf_counter()
    model, attn_kind = build(torch, cfg, T, device, param_dtype)
    total = sum(p.numel() for p in model.parameters())
    non_embedding = total - model.embed_tokens.weight.numel()
    L, H = cfg["layers"], cfg["heads"]
    flops_per_token = 6 * non_embedding + 12 * L * H * (cfg["hidden"] // H) * T

    if a.compile:
        # One graph for every layer; raise the recompile limit in case a
        # torch version guards on the module instance.
        dynamo = getattr(torch, "_dynamo", None)
        for knob in ("cache_size_limit", "recompile_limit"):
            if dynamo is not None and hasattr(dynamo.config, knob):
                setattr(dynamo.config, knob, max(64, getattr(dynamo.config, knob)))
        for i, layer in enumerate(model.layers):
            model.layers[i] = torch.compile(layer)
        model.head = torch.compile(model.head)

    matrices = [p for p in model.parameters() if p.dim() >= 2]
    vectors = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": matrices, "weight_decay": 0.1},
              {"params": vectors, "weight_decay": 0.0}]
    opt_kw = {"lr": 3e-4, "betas": (0.9, 0.95), "eps": 1e-8}
    fused = "no"
    if "fused" in inspect.signature(torch.optim.AdamW).parameters:
        try:
            opt = torch.optim.AdamW(groups, fused=True, **opt_kw)
            fused = "fused"
        except (RuntimeError, ValueError):
            opt = None
    else:
        opt = None
    if opt is None:
        foreach = "foreach" in inspect.signature(torch.optim.AdamW).parameters
        opt = torch.optim.AdamW(groups, **(dict(opt_kw, foreach=True) if foreach else opt_kw))
        fused = "foreach" if foreach else "for-loop"
    clip_kw = {"foreach": True} if "foreach" in inspect.signature(
        torch.nn.utils.clip_grad_norm_).parameters else {}
    params = list(model.parameters())

    if a.precision == "bf16" and not pure:
        autocast = lambda: torch.autocast(device.type, dtype=torch.bfloat16)
    else:
        import contextlib
        autocast = contextlib.nullcontext

    g = torch.Generator(device=device).manual_seed(a.seed)
    V = cfg["vocab"]
    data = torch.randint(0, V, (a.warmup + a.steps, B, T + 1), device=device, generator=g)

    def step(s):
        opt.zero_grad(set_to_none=True)
        with autocast():
            loss = model(data[s, :, :-1], data[s, :, 1:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0, **clip_kw)
        opt.step()
        return loss

    dev_name = torch.cuda.get_device_name(device) if cuda else "cpu (%d threads)" % torch.get_num_threads()
    print("torch %s on %s: %s, %s params (%s without the embedding), batch %d x seq %d, "
          "%s%s, AdamW %s, %s, %s" % (
              torch.__version__, dev_name, result["model"], format(total, ","),
              format(non_embedding, ","), B, T, a.precision,
              (" " + a.bf16_mode) if a.precision == "bf16" else "", fused, attn_kind, mode))
    if cuda:
        torch.cuda.synchronize()
    result["init_s"] = time.perf_counter() - t0

    losses = []
    t0 = time.perf_counter()
    for s in range(a.warmup):
        losses.append(step(s).item())
    if cuda:
        torch.cuda.synchronize()
    result["warmup_s"] = time.perf_counter() - t0

    times = []
    if cuda:
        events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
                  for _ in range(a.steps)]
        outs = []
        for i, (start, end) in enumerate(events):
            start.record()
            outs.append(step(a.warmup + i))
            end.record()
        torch.cuda.synchronize()
        times = [start.elapsed_time(end) / 1000.0 for start, end in events]
        losses += [o.item() for o in outs]
    else:
        for i in range(a.steps):
            start = time.perf_counter()
            losses.append(step(a.warmup + i).item())
            times.append(time.perf_counter() - start)

    tokens = B * T
    median = statistics.median(times)
    result.update({
        "device": dev_name, "params": total, "non_embedding_params": non_embedding,
        "flops_per_token": flops_per_token, "steps": a.steps, "warmup": a.warmup,
        "adamw": fused, "attention": attn_kind,
        "bf16_mode": a.bf16_mode if a.precision == "bf16" else None,
        "step_ms_median": 1000 * median,
        "tokens_per_s": tokens / median,
        "tokens_per_s_mean": tokens * len(times) / sum(times),
        "mfu": tokens / median * flops_per_token / a.peak_flops,
        "peak_flops": a.peak_flops, "losses": losses,
        "peak_mem_gib": torch.cuda.max_memory_allocated(device) / 2**30 if cuda else None,
    })
    print("warmup (%d steps%s): %.1f s; step time median %.1f ms over %d steps" % (
        a.warmup, ", compile included" if a.compile else "", result["warmup_s"],
        1000 * median, a.steps))
    print("tokens/s %.0f (median step), %.0f (mean)  MFU %.1f%% (FLOPs/token %.4g, peak %.4g)%s" % (
        result["tokens_per_s"], result["tokens_per_s_mean"], 100 * result["mfu"],
        flops_per_token, a.peak_flops,
        "  peak memory %.1f GiB" % result["peak_mem_gib"] if cuda else ""))
    print("loss: first %.4f, last %.4f" % (losses[0], losses[-1]))
    if not all(math.isfinite(x) for x in losses):
        print("ERROR: non-finite loss")
        return 1
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
