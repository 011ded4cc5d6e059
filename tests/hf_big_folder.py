#!/usr/bin/python3
"""tests/hf_big_folder.py — a large random Hugging Face Llama folder, for measuring what
`lethe convert --from` costs in memory and time (not a test: the weights are random bits).

    hf_big_folder.py DIR L C H KV F V [--tied] [--shards N] [--dtype BF16|F32|F16]

DIR (must not exist) gets config.json, N shards model-0000k-of-0000N.safetensors (layers
spread evenly; the embedding in the first, the final norm and head in the last) and
model.safetensors.index.json. Every element is finite: BF16/F16 values have a fixed
exponent (|x| in [2^-7, 2^-6)) and random sign and mantissa; F32 likewise. Written one
tensor at a time in row blocks, so this script holds at most one 64 MiB block.
Examples: the 156 M-parameter folder of the README (L8 C1024 H16 KV8 F4096 V32000,
untied) and a Llama-3.2-1B shape (L16 C2048 H32 KV8 F8192 V128256 --tied).
"""
import json
import os
import struct
import sys

import numpy as np

ESIZE = {"BF16": 2, "F16": 2, "F32": 4}


def tensors(L, C, H, KV, F, V, tied):
    hd = C // H
    out = [("model.embed_tokens.weight", [V, C], -1)]
    for l in range(L):
        p = f"model.layers.{l}."
        out += [(p + "input_layernorm.weight", [C], l), (p + "post_attention_layernorm.weight", [C], l),
                (p + "self_attn.q_proj.weight", [H * hd, C], l),
                (p + "self_attn.k_proj.weight", [KV * hd, C], l),
                (p + "self_attn.v_proj.weight", [KV * hd, C], l),
                (p + "self_attn.o_proj.weight", [C, H * hd], l),
                (p + "mlp.gate_proj.weight", [F, C], l), (p + "mlp.up_proj.weight", [F, C], l),
                (p + "mlp.down_proj.weight", [C, F], l)]
    out.append(("model.norm.weight", [C], L))
    if not tied:
        out.append(("lm_head.weight", [V, C], L))
    return out


def random_block(rng, n, dtype):
    if dtype == "F32":
        u = rng.integers(0, 1 << 32, n, dtype=np.uint32)
        return ((u & np.uint32(0x807FFFFF)) | np.uint32(0x3C000000)).astype("<u4").tobytes()
    u = rng.integers(0, 1 << 16, n, dtype=np.uint16)
    if dtype == "BF16":  # exponent 120: 2^-7
        u = (u & np.uint16(0x807F)) | np.uint16(0x3C00)
    else:  # F16, exponent 8: 2^-7
        u = (u & np.uint16(0x83FF)) | np.uint16(0x2000)
    return u.astype("<u2").tobytes()


def write_shard(path, items, dtype, rng):
    hdr, off = {"__metadata__": {"format": "pt"}}, 0
    for name, shape, _ in items:
        nb = int(np.prod(shape)) * ESIZE[dtype]
        hdr[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + nb]}
        off += nb
    h = json.dumps(hdr, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for name, shape, _ in items:
            n = int(np.prod(shape))
            step = (64 << 20) // ESIZE[dtype]
            for s in range(0, n, step):
                f.write(random_block(rng, min(step, n - s), dtype))
    return off


def main(a):
    flags = {k: a[a.index(k) + 1] for k in ("--shards", "--dtype") if k in a}
    tied = "--tied" in a
    pos = [x for i, x in enumerate(a) if not x.startswith("--") and
           (i == 0 or a[i - 1] not in ("--shards", "--dtype"))]
    d, (L, C, H, KV, F, V) = pos[0], map(int, pos[1:7])
    nsh, dtype = int(flags.get("--shards", 4)), flags.get("--dtype", "BF16")
    os.makedirs(d)
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
           "attention_bias": False, "mlp_bias": False, "attention_dropout": 0.0,
           "hidden_size": C, "intermediate_size": F, "num_hidden_layers": L,
           "num_attention_heads": H, "num_key_value_heads": KV, "head_dim": C // H,
           "vocab_size": V, "max_position_embeddings": 2048, "rms_norm_eps": 1e-5,
           "rope_theta": 500000.0, "rope_scaling": None, "tie_word_embeddings": tied,
           "torch_dtype": {"BF16": "bfloat16", "F16": "float16", "F32": "float32"}[dtype],
           "bos_token_id": 1, "eos_token_id": 2, "initializer_range": 0.02,
           "use_cache": True, "transformers_version": "4.45.0"}
    json.dump(cfg, open(os.path.join(d, "config.json"), "w"), indent=2)
    ts = tensors(L, C, H, KV, F, V, tied)
    shard_of = lambda layer: min(nsh - 1, max(0, layer) * nsh // max(L, 1))
    rng, wm, total = np.random.default_rng(7), {}, 0
    for s in range(nsh):
        items = [t for t in ts if shard_of(t[2]) == s]
        f = f"model-{s + 1:05d}-of-{nsh:05d}.safetensors"
        total += write_shard(os.path.join(d, f), items, dtype, rng)
        wm.update({t[0]: f for t in items})
    json.dump({"metadata": {"total_size": total}, "weight_map": dict(sorted(wm.items()))},
              open(os.path.join(d, "model.safetensors.index.json"), "w"), indent=2)
    n = sum(int(np.prod(t[1])) for t in ts)
    print(f"{d}: {n} parameters, {total} bytes of {dtype} in {nsh} shards")


if __name__ == "__main__":
    if len(sys.argv) < 8:
        sys.exit(__doc__)
    main(sys.argv[1:])
