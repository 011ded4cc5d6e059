#!/usr/bin/python3
"""tests/torch_hf.py — Hugging Face Llama folders and an independent PyTorch Llama for
tests/test_convert_hf.sh.

    torch_hf.py write DIR VARIANT     DIR/hf: config.json, 3 shards and
                                      model.safetensors.index.json of a random Llama-3-shaped
                                      model; DIR/tokens.safetensors (B, T) I32; DIR/ref.safetensors
                                      the reference log-softmax (B*T, V); DIR/bad_*: refused
                                      folders (see BAD below)
    torch_hf.py check REF GOT         max|a - b| / max|b| of "logp" <= 1e-4 (prints it)
    torch_hf.py same A B              folders A and B hold the same tensors (name, dtype, shape,
                                      bytes, over all shards) and config.json says the same
                                      model (every key of A's config.json equal in B's)

Variants (all: 4 layers, hidden 64, 4 heads over 2 kv heads, head_dim 16 given, MLP 96,
vocabulary 101 (odd: padded under tp 2), rope_theta 10000 and rope_scaling llama3 with
factor 8, low 1, high 4, original 32, so that the 8 frequencies fall in all three bands):
    gqa   untied head, F32       tied   tie_word_embeddings, no lm_head.weight, F32
    bf16  untied, torch_dtype bfloat16 and every tensor BF16
    mixed untied, torch_dtype bfloat16, BF16 weights with F32 norms
The reference is written from the Llama definition (Hugging Face conventions), not from
lethe's code, and computed in float64 from the file's values:
    x = E[tokens]; per layer: h = RMSNorm(x) = x / sqrt(mean(x^2) + eps) * w;
    q, k, v = h Wq^T, h Wk^T, h Wv^T; RoPE (rotate_half, the llama3 inverse frequencies);
    kv heads repeated to the query heads; causal softmax(q k^T / sqrt(hd)) v; x += o_proj;
    x += down(silu(gate(RMSNorm(x))) * up(RMSNorm(x)));  logp = log_softmax(RMSNorm(x) H^T)
Llama 3.1's frequencies: inv[i] = theta^(-2i/hd); wavelength w = 2 pi / inv; w < orig/high:
kept; w > orig/low: inv / factor; between: (1 - s) inv / factor + s inv with
s = (orig / w - low) / (high - low).
"""
import json
import math
import os
import shutil
import struct
import sys

import numpy as np
import torch

TOL = 1e-4
DT_NAME = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int32: "I32"}
NP_OF = {"F32": "<f4", "I32": "<i4"}


def st_write(path, tensors):
    """tensors: list of (name, torch tensor), laid out in order."""
    hdr, off, blobs = {"__metadata__": {"format": "pt"}}, 0, []
    for name, t in tensors:
        t = t.contiguous()
        if t.dtype in (torch.bfloat16, torch.float16):
            b = t.view(torch.int16).numpy().astype("<i2").tobytes()
        else:
            b = t.numpy().astype(NP_OF[DT_NAME[t.dtype]]).tobytes()
        hdr[name] = {"dtype": DT_NAME[t.dtype], "shape": list(t.shape),
                     "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(hdr, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def st_read(path):
    """name -> (dtype, shape, bytes)"""
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    hdr = json.loads(raw[8:8 + n])
    buf = raw[8 + n:]
    return {k: (v["dtype"], v["shape"], buf[v["data_offsets"][0]:v["data_offsets"][1]])
            for k, v in hdr.items() if k != "__metadata__"}


def to_f64(dtype, shape, b):
    if dtype in ("BF16", "F16"):
        t = torch.from_numpy(np.frombuffer(b, dtype="<i2").copy())
        t = t.view(torch.bfloat16 if dtype == "BF16" else torch.float16)
        return t.to(torch.float64).reshape(shape)
    return torch.from_numpy(np.frombuffer(b, dtype=NP_OF[dtype]).copy()).to(torch.float64).reshape(shape)


def read_folder(d):
    """every tensor of a Hugging Face folder: name -> (dtype, shape, bytes)"""
    if os.path.exists(os.path.join(d, "model.safetensors")):
        return st_read(os.path.join(d, "model.safetensors"))
    wm = json.load(open(os.path.join(d, "model.safetensors.index.json")))["weight_map"]
    out = {}
    for f in sorted(set(wm.values())):
        out.update(st_read(os.path.join(d, f)))
    if set(out) != set(wm):
        sys.exit(f"{d}: index and shards disagree: {sorted(set(out) ^ set(wm))}")
    return out


def config_for(variant):
    return {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
        "attention_bias": False, "mlp_bias": False, "attention_dropout": 0.0,
        "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 4,
        "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "vocab_size": 101,
        "max_position_embeddings": 128, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
        "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 32},
        "tie_word_embeddings": variant == "tied",
        "torch_dtype": "bfloat16" if variant in ("bf16", "mixed") else "float32",
        "bos_token_id": 1, "eos_token_id": [2, 3], "pad_token_id": None,
        "initializer_range": 0.02, "use_cache": True, "transformers_version": "4.45.0",
    }


def make_weights(c, seed):
    g = torch.Generator().manual_seed(seed)
    C, I, V, L = c["hidden_size"], c["intermediate_size"], c["vocab_size"], c["num_hidden_layers"]
    NH, NKV, hd = c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"]
    rnd = lambda *s: torch.randn(*s, generator=g) * 0.2
    w = {"model.embed_tokens.weight": torch.randn(V, C, generator=g),
         "model.norm.weight": 1 + 0.1 * torch.randn(C, generator=g)}
    for l in range(L):
        p = f"model.layers.{l}."
        w[p + "input_layernorm.weight"] = 1 + 0.1 * torch.randn(C, generator=g)
        w[p + "post_attention_layernorm.weight"] = 1 + 0.1 * torch.randn(C, generator=g)
        w[p + "self_attn.q_proj.weight"] = rnd(NH * hd, C)
        w[p + "self_attn.k_proj.weight"] = rnd(NKV * hd, C)
        w[p + "self_attn.v_proj.weight"] = rnd(NKV * hd, C)
        w[p + "self_attn.o_proj.weight"] = rnd(C, NH * hd)
        w[p + "mlp.gate_proj.weight"] = rnd(I, C)
        w[p + "mlp.up_proj.weight"] = rnd(I, C)
        w[p + "mlp.down_proj.weight"] = rnd(C, I)
    if not c["tie_word_embeddings"]:
        w["lm_head.weight"] = rnd(V, C)
    dt = {"float32": torch.float32, "bfloat16": torch.bfloat16}[c["torch_dtype"]]
    if c.get("_mixed"):  # BF16 weights, F32 norms (as some exports keep them)
        return {k: v.to(torch.float32 if k.endswith("norm.weight") else dt) for k, v in w.items()}
    return {k: v.to(dt) for k, v in w.items()}


def inv_freq_llama3(c):
    hd, theta = c["head_dim"], c["rope_theta"]
    rs = c["rope_scaling"]
    inv = [theta ** (-(2 * i) / hd) for i in range(hd // 2)]
    if not rs:
        return torch.tensor(inv, dtype=torch.float64)
    f, lo, hi, orig = (rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"],
                       rs["original_max_position_embeddings"])
    out = []
    for x in inv:
        wl = 2 * math.pi / x
        if wl < orig / hi:
            out.append(x)
        elif wl > orig / lo:
            out.append(x / f)
        else:
            s = (orig / wl - lo) / (hi - lo)
            out.append((1 - s) * x / f + s * x)
    return torch.tensor(out, dtype=torch.float64)


def reference(c, w, tokens):
    """log_softmax (B*T, V) in float64"""
    B, T = tokens.shape
    NH, NKV, hd, eps = (c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"],
                        c["rms_norm_eps"])
    W = {k: v.to(torch.float64) for k, v in w.items()}
    rms = lambda x, g: x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * g
    ang = torch.arange(T, dtype=torch.float64)[:, None] * inv_freq_llama3(c)[None, :]
    cos, sin = torch.cat([ang.cos(), ang.cos()], -1), torch.cat([ang.sin(), ang.sin()], -1)
    rot = lambda x: torch.cat([-x[..., hd // 2:], x[..., :hd // 2]], -1)
    rope = lambda x: x * cos[None, None] + rot(x) * sin[None, None]
    mask = torch.full((T, T), float("-inf"), dtype=torch.float64).triu(1)
    x = W["model.embed_tokens.weight"][tokens]
    for l in range(c["num_hidden_layers"]):
        p = f"model.layers.{l}."
        h = rms(x, W[p + "input_layernorm.weight"])
        q = (h @ W[p + "self_attn.q_proj.weight"].T).view(B, T, NH, hd).transpose(1, 2)
        k = (h @ W[p + "self_attn.k_proj.weight"].T).view(B, T, NKV, hd).transpose(1, 2)
        v = (h @ W[p + "self_attn.v_proj.weight"].T).view(B, T, NKV, hd).transpose(1, 2)
        q, k = rope(q), rope(k)
        k = k.repeat_interleave(NH // NKV, dim=1)
        v = v.repeat_interleave(NH // NKV, dim=1)
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd) + mask, -1) @ v
        x = x + a.transpose(1, 2).reshape(B, T, NH * hd) @ W[p + "self_attn.o_proj.weight"].T
        h = rms(x, W[p + "post_attention_layernorm.weight"])
        m = torch.nn.functional.silu(h @ W[p + "mlp.gate_proj.weight"].T) * (
            h @ W[p + "mlp.up_proj.weight"].T)
        x = x + m @ W[p + "mlp.down_proj.weight"].T
    head = W.get("lm_head.weight", W["model.embed_tokens.weight"])
    logits = rms(x, W["model.norm.weight"]) @ head.T
    return torch.log_softmax(logits, -1).reshape(B * T, -1)


def write_folder(d, c, w, shards):
    """config.json, the shards (names sorted within each) and the index"""
    os.makedirs(d)
    json.dump(c, open(os.path.join(d, "config.json"), "w"), indent=2)
    wm = {}
    for i, names in enumerate(shards):
        f = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        st_write(os.path.join(d, f), [(n, w[n]) for n in sorted(names)])
        wm.update({n: f for n in names})
    total = sum(t.numel() * t.element_size() for t in w.values())
    json.dump({"metadata": {"total_size": total}, "weight_map": dict(sorted(wm.items()))},
              open(os.path.join(d, "model.safetensors.index.json"), "w"), indent=2)
    for f in ("tokenizer.json", "tokenizer_config.json"):  # copied on export
        json.dump({"lethe_test": f}, open(os.path.join(d, f), "w"))


# Refused folders: name -> what is wrong (the script names the expected message).
BAD = ["nocfg", "noshard", "badmap", "yarn", "i32", "unknown", "act"]


def write_bad(root, c, w, shards):
    src = os.path.join(root, "hf")
    for b in BAD:
        d = os.path.join(root, "bad_" + b)
        shutil.copytree(src, d)
        cj = os.path.join(d, "config.json")
        ij = os.path.join(d, "model.safetensors.index.json")
        if b == "nocfg":
            os.remove(cj)
        elif b == "noshard":
            os.remove(os.path.join(d, "model-00002-of-00003.safetensors"))
        elif b == "badmap":
            ix = json.load(open(ij))
            ix["weight_map"]["model.layers.9.mlp.up_proj.weight"] = "model-00001-of-00003.safetensors"
            json.dump(ix, open(ij, "w"))
        elif b in ("yarn", "unknown", "act"):
            cc = dict(c)
            if b == "yarn":
                cc["rope_scaling"] = {"rope_type": "yarn", "factor": 4.0,
                                      "original_max_position_embeddings": 32}
            elif b == "unknown":
                cc["sliding_window"] = 4096
            else:
                cc["hidden_act"] = "gelu"
            json.dump(cc, open(cj, "w"))
        elif b == "i32":
            ww = dict(w)
            ww["model.norm.weight"] = torch.ones(c["hidden_size"], dtype=torch.int32)
            f = "model-00003-of-00003.safetensors"
            st_write(os.path.join(d, f), [(n, ww[n]) for n in sorted(shards[2])])


def cmd_write(root, variant):
    c = config_for(variant)
    w = make_weights(dict(c, _mixed=variant == "mixed"), {"gqa": 11, "tied": 12, "bf16": 13,
                                                          "mixed": 14}[variant])
    L = c["num_hidden_layers"]
    layer = lambda l: [n for n in w if n.startswith(f"model.layers.{l}.")]
    shards = [["model.embed_tokens.weight"] + layer(0) + layer(1), layer(2) + layer(3),
              ["model.norm.weight"] + (["lm_head.weight"] if "lm_head.weight" in w else [])]
    assert sum(map(len, shards)) == len(w) and L == 4
    write_folder(os.path.join(root, "hf"), c, w, shards)
    g = torch.Generator().manual_seed(5)
    tokens = torch.randint(0, c["vocab_size"], (3, 24), generator=g, dtype=torch.int32)
    st_write(os.path.join(root, "tokens.safetensors"), [("tokens", tokens)])
    ref = reference(c, w, tokens.long())
    st_write(os.path.join(root, "ref.safetensors"), [("logp", ref.to(torch.float32))])
    np.save(os.path.join(root, "ref64.npy"), ref.numpy())
    write_bad(root, c, w, shards)


def cmd_check(ref_path, got_path):
    ref = np.load(ref_path.replace("ref.safetensors", "ref64.npy"))
    d, s, b = st_read(got_path)["logp"]
    got = to_f64(d, s, b).numpy()
    if got.shape != ref.shape:
        sys.exit(f"FAIL: logp shape {got.shape}, expected {ref.shape}")
    err = np.abs(got - ref).max() / max(np.abs(ref).max(), 1e-30)
    print(f"logp err {err:.3g} (tolerance {TOL:g}) {got_path}")
    sys.exit(0 if err <= TOL else 1)


def cmd_same(a, b):
    ta, tb = read_folder(a), read_folder(b)
    bad = [f"names differ: {sorted(set(ta) ^ set(tb))}"] if set(ta) != set(tb) else []
    for n in sorted(set(ta) & set(tb)):
        if ta[n][:2] != tb[n][:2]:
            bad.append(f"{n}: {ta[n][:2]} vs {tb[n][:2]}")
        elif ta[n][2] != tb[n][2]:
            bad.append(f"{n}: bytes differ")
    ca = json.load(open(os.path.join(a, "config.json")))
    cb = json.load(open(os.path.join(b, "config.json")))
    ignore = {"transformers_version", "initializer_range", "use_cache"}
    for k in sorted(set(ca) - ignore):
        if ca[k] != cb.get(k, "(absent)"):
            bad.append(f"config.json {k}: {ca[k]!r} vs {cb.get(k, '(absent)')!r}")
    for x in bad:
        print("  " + x)
    print(f"same: {len(ta)} tensors, {len(ca)} config keys compared: {'FAIL' if bad else 'equal'}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    if sys.argv[1] == "write":
        cmd_write(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "check":
        cmd_check(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "same":
        cmd_same(sys.argv[2], sys.argv[3])
    else:
        sys.exit(f"unknown command {sys.argv[1]}")
