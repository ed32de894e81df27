"""Checks a llamac checkpoint directory against the Hugging Face LLaMA layout
and the independent PyTorch model of torch_llama.py:

  - config.json: a LlamaConfig (model_type "llama", LlamaForCausalLM) with
    the fields of the model the run was compiled from;
  - model.safetensors (or an index and its shards): exactly the HF tensor
    names, F32, with the shapes of modeling_llama's nn.Linear / nn.Embedding
    / LlamaRMSNorm weights (no lm_head.weight when tied), and the "pt" format
    metadata that transformers' loader requires;
  - optimizer.safetensors: "<param>.exp_avg" / "<param>.exp_avg_sq" per
    parameter; trainer_state.json: step and data position;
  - the loss that the PyTorch model computes from these weights (float64) on
    the batch of the next step equals the loss llamac reported for that step
    after resuming from the checkpoint.
Runs on Debian's python3-torch: use /usr/bin/python3.
"""
import argparse
import json
import os
import struct
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_llama import batch, forward_loss, load_safetensors, param_names, read_tokens  # noqa: E402


def header(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(n))


def expected_shapes(cfg):
    """HF LlamaForCausalLM parameter shapes (out_features, in_features)."""
    D, V, I = cfg["hidden_size"], cfg["vocab_size"], cfg["intermediate_size"]
    H = cfg["num_attention_heads"]
    KV = cfg.get("num_key_value_heads", H)
    Q = cfg.get("head_dim", D // H)
    leaf = {"input_layernorm": [D], "post_attention_layernorm": [D],
            "q_proj": [H * Q, D], "k_proj": [KV * Q, D], "v_proj": [KV * Q, D],
            "o_proj": [D, H * Q], "gate_proj": [I, D], "up_proj": [I, D],
            "down_proj": [D, I]}
    shapes = {}
    for name in param_names(cfg):
        if name == "model.embed_tokens.weight" or name == "lm_head.weight":
            shapes[name] = [V, D]
        elif name == "model.norm.weight":
            shapes[name] = [D]
        else:
            shapes[name] = leaf[name.split(".")[-2]]
    return shapes


def weight_headers(ckpt):
    """{name: (header entry, file)} over model.safetensors or the shards."""
    single = os.path.join(ckpt, "model.safetensors")
    files = [single]
    if not os.path.exists(single):
        index = json.load(open(os.path.join(ckpt, "model.safetensors.index.json")))
        files = sorted({os.path.join(ckpt, f) for f in index["weight_map"].values()})
    out = {}
    for path in files:
        h = header(path)
        meta = h.pop("__metadata__", {})
        assert meta.get("format") == "pt", "%s: metadata %r" % (path, meta)
        for name, info in h.items():
            out[name] = (info, path)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("ckpt")
    ap.add_argument("--config", required=True, help="config.json the run was compiled from")
    ap.add_argument("--data", required=True)
    ap.add_argument("--seq-len", type=int, required=True)
    ap.add_argument("--global-batch", type=int, required=True)
    ap.add_argument("--metrics", required=True, help="llamac metrics of the resumed run")
    ap.add_argument("--rtol", type=float, default=1e-5)
    a = ap.parse_args()

    # 1. config.json.
    src = json.load(open(a.config))
    cfg = json.load(open(os.path.join(a.ckpt, "config.json")))
    assert cfg["model_type"] == "llama" and cfg["architectures"] == ["LlamaForCausalLM"], cfg
    for key in ("hidden_size", "intermediate_size", "num_attention_heads",
                "num_key_value_heads", "num_hidden_layers", "vocab_size",
                "rms_norm_eps", "rope_theta", "tie_word_embeddings"):
        assert cfg[key] == src[key], "config.json %s: %r != %r" % (key, cfg[key], src[key])
    print("config.json: LlamaForCausalLM, fields match")

    # 2. Weights: names, dtypes, shapes.
    shapes = expected_shapes(cfg)
    found = weight_headers(a.ckpt)
    assert set(found) == set(shapes), "names: extra %s, missing %s" % (
        sorted(set(found) - set(shapes)), sorted(set(shapes) - set(found)))
    for name, (info, path) in found.items():
        assert info["dtype"] == "F32", (name, info)
        assert info["shape"] == shapes[name], (name, info["shape"], shapes[name])
    print("weights: %d HF tensors, F32, HF shapes%s" % (
        len(found), ", no lm_head.weight (tied)" if cfg["tie_word_embeddings"] else ""))

    # 3. Optimizer and trainer state.
    opt = header(os.path.join(a.ckpt, "optimizer.safetensors"))
    opt.pop("__metadata__", None)
    want = {}
    for name, shape in shapes.items():
        want[name + ".exp_avg"] = shape
        want[name + ".exp_avg_sq"] = shape
    assert {k: v["shape"] for k, v in opt.items()} == want, sorted(opt)
    state = json.load(open(os.path.join(a.ckpt, "trainer_state.json")))
    step = state["step"]
    assert state["data_position"] == step and state["seq_len"] == a.seq_len
    assert state["global_batch_size"] == a.global_batch
    print("optimizer: exp_avg, exp_avg_sq for every parameter; trainer state at step %d" % step)

    # 4. The loss of the next step's batch from the saved weights.
    if os.path.exists(os.path.join(a.ckpt, "model.safetensors")):
        P = load_safetensors(os.path.join(a.ckpt, "model.safetensors"))
    else:
        P = {}
        for path in sorted({p for _, p in found.values()}):
            P.update(load_safetensors(path))
    P = {k: v.to(torch.float64) for k, v in P.items()}
    tokens, _ = read_tokens(a.data)
    x, y = batch(tokens, step, a.global_batch, a.seq_len)
    with torch.no_grad():
        ref = forward_loss(P, cfg, x, y, torch.float64).item()
    rows = {r["step"]: r for r in map(json.loads, open(a.metrics)) if r}
    got = rows[step + 1]["loss"]
    rel = abs(got - ref) / abs(ref)
    ok = rel <= a.rtol
    print("step %d loss: llamac %.8f torch %.8f rel %.2e (tolerance %.0e): %s"
          % (step + 1, got, ref, rel, a.rtol, "PASS" if ok else "FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
