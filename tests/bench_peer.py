#!/usr/bin/python3
"""tests/bench_peer.py — the PyTorch peer of `lethe bench`, and the summary of a run.

    /usr/bin/python3 tests/bench_peer.py peer CONFIG.json [--threads N] [--setting TEXT]
    /usr/bin/python3 tests/bench_peer.py summary RESULTS.jsonl

`peer` reads a resolved lethe config (the config.json that `lethe bench` writes into
its output folder, so both sides run the same model, batch and sequence length),
builds the Llama of tests/torch_ref.py in float32 with N(0, init_std) weights and
times training steps as `lethe bench` does: `bench.warmup` untimed steps, then
`bench.steps` timed ones, each = forward, token-mean cross-entropy over the
vocabulary, backward, gradient clipping and an AdamW step (decay on 2-D tensors).
It prints one JSON line with the median ms per step, tokens/s and model GFLOP/s
(counted with lethe's own formula, model_flops_per_token). The caller sets the
thread environment (bench_peer.sh: OMP_NUM_THREADS, OMP_WAIT_POLICY=PASSIVE and the
same OPENBLAS_CORETYPE as lethe); --threads also sets torch.set_num_threads; --setting
labels the line (bench_peer.sh --torch-best: "best: ...", the scan's fastest settings).

`summary` reads the JSON lines of both sides, one per round, and prints each round,
the medians and the ratio lethe / PyTorch of the median tokens/s (and against the
"best" PyTorch lines, when there are any). A benchmark:
nothing here asserts on time.
"""
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def flops_per_token(m, T):
    """lethe's model_flops_per_token: matrix products only, 6 flops per weight per
    token, plus attention's QK^T and PV over all T keys."""
    C, NH, NKV, I, V, L = (m["dim"], m["n_heads"], m["n_kv_heads"], m["mlp_dim"],
                           m["vocab_size"], m["n_layers"])
    hd = C / NH
    w_layer = C * NH * hd * 2 + 2 * C * NKV * hd + 3 * C * I
    attn = 2.0 * 2.0 * T * NH * hd
    return 6.0 * (L * w_layer + V * C) + 3.0 * L * attn


def peer(cfg_path, threads, setting="peer"):
    import numpy as np
    import torch
    sys.path.insert(0, HERE)
    from torch_ref import Llama  # the parity tests' model, built from its definition

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    with open(cfg_path) as f:
        cfg = json.load(f)
    m, tr, bench, opt = cfg["model"], cfg["train"], cfg["bench"], cfg["optim"]
    B, T = int(tr["batch_size"]), int(tr["seq_len"])
    V, C, L, I = m["vocab_size"], m["dim"], m["n_layers"], m["mlp_dim"]
    hd = C // m["n_heads"]
    qw, kw = m["n_heads"] * hd, m["n_kv_heads"] * hd
    rng = np.random.default_rng(int(m.get("init_seed", 1234)))
    std = float(m.get("init_std", 0.02))

    def w(*shape):
        return (rng.standard_normal(shape, dtype=np.float32) * std).astype(np.float32)

    weights = {"model.embed_tokens.weight": w(V, C), "model.norm.weight": np.ones(C, np.float32)}
    tied = bool(m.get("tie_embeddings", False))
    if not tied:
        weights["lm_head.weight"] = w(V, C)
    for l in range(L):
        pre = f"model.layers.{l}."
        weights.update({pre + "input_layernorm.weight": np.ones(C, np.float32),
                        pre + "self_attn.q_proj.weight": w(qw, C),
                        pre + "self_attn.k_proj.weight": w(kw, C),
                        pre + "self_attn.v_proj.weight": w(kw, C),
                        pre + "self_attn.o_proj.weight": w(C, qw),
                        pre + "post_attention_layernorm.weight": np.ones(C, np.float32),
                        pre + "mlp.gate_proj.weight": w(I, C),
                        pre + "mlp.up_proj.weight": w(I, C),
                        pre + "mlp.down_proj.weight": w(C, I)})
    mcfg = {"vocab_size": V, "dim": C, "n_layers": L, "n_heads": m["n_heads"],
            "n_kv_heads": m["n_kv_heads"], "rope_theta": m["rope_theta"],
            "norm_eps": m["norm_eps"], "tie_embeddings": "1" if tied else "0"}
    model = Llama(mcfg, weights, torch.float32)
    del weights
    params = list(model.P.values())
    decay = [p for p in params if p.dim() == 2]
    no_decay = [p for p in params if p.dim() != 2]
    kw_opt = {"lr": float(opt["lr"]), "betas": (float(opt["beta1"]), float(opt["beta2"])),
              "eps": float(opt["eps"])}
    groups = [{"params": decay, "weight_decay": float(opt["weight_decay"])},
              {"params": no_decay, "weight_decay": 0.0}]
    try:  # the multi-tensor AdamW where this PyTorch has it: its fastest CPU path
        adamw = torch.optim.AdamW(groups, foreach=True, **kw_opt)
    except TypeError:
        adamw = torch.optim.AdamW(groups, **kw_opt)
    clip = float(opt["grad_clip"])
    prompt = int(cfg.get("data", {}).get("prompt_len", 0))
    g = torch.Generator().manual_seed(7)
    W, K = max(int(bench["warmup"]), 2), int(bench["steps"])
    times = []
    for step in range(W + K):
        seq = torch.randint(0, V, (B, T + 1), generator=g)
        tokens, targets = seq[:, :T], seq[:, 1:].clone()
        targets[:, :prompt] = -1  # a masked prompt, as in lethe's synthetic stream
        t0 = time.perf_counter()
        model.zero_grad()
        logits = model.logits(tokens)
        loss = torch.nn.functional.cross_entropy(logits.reshape(B * T, V), targets.reshape(-1),
                                                 ignore_index=-1)
        loss.backward()
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(params, clip)
        adamw.step()
        dt = time.perf_counter() - t0
        if step >= W:
            times.append(dt)
    ms = statistics.median(times)
    tps = B * T / ms
    gf = tps * flops_per_token(m, T) * 1e-9
    print(json.dumps({"job": "torch-peer", "setting": setting, "torch": torch.__version__,
                      "threads": threads,
                      "batch": B, "seq_len": T, "steps": K, "ms_per_step": round(ms * 1e3, 3),
                      "tokens_per_s": round(tps, 1), "model_gflops": round(gf, 2),
                      "loss": round(float(loss), 4)}))
    return 0


def summary(path):
    rows = {"lethe": [], "torch": [], "best": []}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            r = json.loads(line)
            if r.get("job") == "bench":
                rows["lethe"].append(r)
            else:
                rows["best" if r.get("setting", "peer").startswith("best") else "torch"].append(r)
    if not rows["lethe"] or not rows["torch"]:
        print(f"bench_peer: {path} holds {len(rows['lethe'])} lethe and {len(rows['torch'])} "
              "PyTorch results; need at least one of each")
        return 1
    lt, pt = rows["lethe"], rows["torch"]
    print(f"{'round':>5} {'lethe ms':>10} {'lethe tok/s':>12} {'GFLOP/s':>8} {'% peak':>7} "
          f"{'sgemm':>6} {'torch ms':>10} {'torch tok/s':>12} {'GFLOP/s':>8} {'ratio':>6}")
    for i in range(max(len(lt), len(pt))):
        a = lt[i] if i < len(lt) else None
        b = pt[i] if i < len(pt) else None
        la = (f"{a['ms_per_step']:10.1f} {a['tokens_per_s']:12.1f} {a['model_gflops']:8.1f} "
              f"{a['pct_sgemm_peak']:7.1f} {a['sgemm_gflops']:6.0f}") if a else " " * 47
        lb = (f"{b['ms_per_step']:10.1f} {b['tokens_per_s']:12.1f} {b['model_gflops']:8.1f}"
              if b else " " * 32)
        ratio = f"{a['tokens_per_s'] / b['tokens_per_s']:6.2f}" if a and b else ""
        print(f"{i + 1:5d} {la} {lb} {ratio}")

    def med(rs, k):
        return statistics.median(r[k] for r in rs)

    lt_tps, pt_tps = med(lt, "tokens_per_s"), med(pt, "tokens_per_s")
    print(f"median lethe: {lt_tps:.1f} tokens/s, {med(lt, 'ms_per_step'):.1f} ms/step, "
          f"{med(lt, 'model_gflops'):.1f} GFLOP/s = {med(lt, 'pct_sgemm_peak'):.1f} % of the "
          f"in-process sgemm peak ({med(lt, 'sgemm_gflops'):.0f} GFLOP/s per rank), "
          f"{lt[0]['ranks']} rank(s) dp={lt[0]['dp']} pp={lt[0]['pp']} tp={lt[0]['tp']}, "
          f"OpenBLAS {lt[0]['blas_core']}")
    print(f"median PyTorch {pt[0]['torch']}: {pt_tps:.1f} tokens/s, "
          f"{med(pt, 'ms_per_step'):.1f} ms/step, {med(pt, 'model_gflops'):.1f} GFLOP/s, "
          f"{pt[0]['threads']} thread(s)")
    print(f"ratio lethe/PyTorch (median tokens/s): {lt_tps / pt_tps:.2f}")
    bt = rows["best"]
    if bt:
        bt_tps = med(bt, "tokens_per_s")
        print(f"median PyTorch at its best settings ({bt[0]['setting'][6:]}): {bt_tps:.1f} "
              f"tokens/s, {med(bt, 'ms_per_step'):.1f} ms/step; per round "
              + " ".join(f"{r['tokens_per_s']:.0f}" for r in bt))
        print(f"ratio lethe/PyTorch-best (median tokens/s): {lt_tps / bt_tps:.2f}")
    return 0


def main():
    a = sys.argv[1:]
    if len(a) >= 2 and a[0] == "peer":
        threads, setting = 1, "peer"
        if "--threads" in a:
            threads = int(a[a.index("--threads") + 1])
        if "--setting" in a:
            setting = a[a.index("--setting") + 1]
        return peer(a[1], threads, setting)
    if len(a) == 2 and a[0] == "summary":
        return summary(a[1])
    print(__doc__.split("\n\n")[1])
    return 2


if __name__ == "__main__":
    sys.exit(main())
