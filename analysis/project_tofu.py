#!/usr/bin/python3
"""analysis/project_tofu.py — the published TOFU forget05 protocol of
jobs/studies/tofu-llama.json projected to wall time on a cluster, from one measured
figure (the compute rate of `lethe bench` on the 1B-shaped model) and the README's
communication model ("Performance" -> "Communication volume per layout"; the same
per-rank byte counts as jobs/bench.c's analytic count).

    python3 analysis/project_tofu.py [--pct-peak P] [--core-gflops G] [--cores N]
                                     [--link-gbs B] [--seq-len T] [--nodes 8,32,64]
    python3 analysis/project_tofu.py --check   (the byte model against the README's 7 B
                                                table, the 1B count against lethe bench)

The work, per forget level (TOFU as published: forget05 = 200 questions, retain95 = 3800,
the perturbed eval sets forget05_perturbed and retain_perturbed with 200 rows and 1
paraphrased + 5 perturbed answers each, real_authors 100 rows and world_facts 117 rows
with the answer and 3 perturbed each, holdout05 200 rows), with the study's settings:
  - eval (origin, and each method's model): a forward pass of every row of every
    candidate, then greedy generation of --gen-tokens tokens for the forget, retain and
    the two utility sets (one token per row per step, counted at 2 flops per weight);
  - unlearn, each of the 8 methods: 10 epochs of ceil(200 / 32) = 7 steps, each step a
    forward and backward of 32 forget rows and 32 retain rows (ga and ceu: the forget rows
    only), plus forward passes: NPO its reference log-likelihoods once (200 rows), CE-U one
    more forward of the 32 forget rows a step, UNDIAL one of the start weights a step;
  - relearn: 20 steps of 16 forget rows, and an eval of the forget set at steps 5, 10,
    15, 20 (its 7 candidates, its generations);
  - convert and prepare: I/O, not counted.
Every row is padded to T tokens (--seq-len, the study's 512) and costs T tokens.
Flops per token: jobs/bench.c's model_flops_per_token (6 per weight forward+backward plus
attention over all T keys; 1/3 of it for a forward pass).

A step on n nodes with layout dp x pp x tp (one rank per node, using its --cores cores
through BLAS threads) takes
    compute = flops / (n * node rate) * (M + pp - 1) / M     (the 1F1B bubble)
    comm    = bytes per rank (README's table) / link speed   (no overlap, no latency)
with node rate = cores * core_gflops * pct_peak / 100: the share of the sgemm peak that
`lethe bench` reached on the 1B-shaped model, applied to a node's cores. The best layout
is chosen per job kind among dp | batch rows, pp | layers, tp | kv heads (tp <= 8), state
(16 bytes per parameter of the rank's shard) within --node-gb. Two schedules:
  "all nodes": every job on all n nodes, the jobs one after another;
  "8 + 8": the study's layout dp = 8 (jobs/studies/tofu-llama.json): each job on 8 nodes,
           and `lethe slurm` runs as many of the 8 method chains side by side as the
           n nodes hold (n / 8), the chains queueing for the rest.
The smaller of the two is the projection. Printed: one table row per model and node
count (markdown), and the per-job times behind it with --detail.
"""
import argparse
import math

MODELS = {
    # name: L, C, heads, kv heads, MLP, V, tied
    "Llama-3.2-1B": (16, 2048, 32, 8, 8192, 128256, True),
    "Llama-2-7B": (32, 4096, 32, 32, 11008, 32000, False),
}
FORGET, RETAIN, BATCH, EPOCHS = 200, 3800, 32, 10
EVAL_SETS = [  # rows, candidates per row (answer + paraphrase + perturbed), generated?
    (200, 7, True),   # eval/forget05_perturbed
    (200, 7, True),   # eval/retain_perturbed
    (100, 4, True),   # eval/real_authors
    (117, 4, True),   # eval/world_facts
    (200, 1, False),  # holdout05
]
METHODS = ["ga", "graddiff", "npo", "simnpo", "wga", "satimp", "ceu", "undial"]
RELEARN_STEPS, RELEARN_ROWS, RELEARN_EVALS = 20, 16, 4


def params(m):
    L, C, H, KV, I, V, tied = m
    hd = C // H
    layer = 2 * C * H * hd + 2 * C * KV * hd + 3 * C * I + 2 * C
    return L * layer + V * C * (1 if tied else 2) + C


def flops_per_token(m, T):
    """jobs/bench.c's model_flops_per_token: training (forward + backward)."""
    L, C, H, KV, I, V, _ = m
    hd = C / H
    w_layer = C * H * hd * 2 + 2 * C * KV * hd + 3 * C * I
    return 6.0 * (L * w_layer + V * C) + 3.0 * L * (2.0 * 2.0 * T * H * hd)


def stage_floats(m, pp, tp, s):
    """P_s of the README's table: one rank's parameter floats on stage s (even split)."""
    L, C, H, KV, I, V, tied = m
    hd = C // H
    Ls = L // pp
    p = Ls * ((2 * C * H * hd + 2 * C * KV * hd + 3 * C * I) / tp + 2 * C)
    vt = math.ceil(V / tp) * C
    if s == 0:
        p += vt
    if s == pp - 1:
        p += vt + C  # the head (the tied copy on the last stage when pp > 1) and the norm
    if tied and pp == 1:
        p -= vt  # one matrix serves both ends
    return p


def step_bytes(m, dp, pp, tp, M, rows, T, train):
    """Bytes one rank of the busiest stage sends per step (README's table)."""
    L, C, H, KV, I, V, tied = m
    Bm = rows / (dp * M)
    N = Bm * T
    worst = 0.0
    for s in range(pp):
        first, last = s == 0, s == pp - 1
        Ls = L // pp
        per_layer = 4 if train else 2  # all-reduces of N*C per layer per micro-batch
        tpb = 4 * M * 2 * (tp - 1) / tp * (per_layer * Ls * N * C + first * N * C +
                                          last * (N * C * (1 if train else 0) + 3 * N))
        ppb = 4 * M * N * C * ((not last) + (not first) * (1 if train else 0))
        if not train:
            ppb = 4 * M * N * C * (not last)
        dpb = 4 * 2 * (dp - 1) / dp * stage_floats(m, pp, tp, s) if train else 0
        tie = 4 * math.ceil(V / tp) * C if (train and tied and pp > 1 and (first or last)) else 0
        worst = max(worst, tpb + ppb + dpb + tie)
    return worst


def layouts(m, n, rows):
    L, C, H, KV, I, V, tied = m
    for tp in (1, 2, 4, 8):
        if n % tp or KV % tp or H % tp:
            continue
        for pp in (1, 2, 4, 8, 16):
            if (n // tp) % pp or L % pp:
                continue
            dp = n // (tp * pp)
            if rows % dp:
                continue
            M = rows // dp if pp > 1 else 1  # one row per micro-batch: the smallest bubble
            yield dp, pp, tp, M


def job_time(m, n, a, kind, detail=None):
    """Seconds of one job on n nodes, its best layout."""
    T = a.seq_len
    rate = a.cores * a.core_gflops * a.pct_peak / 100 * 1e9  # flops/s per node
    ftr = flops_per_token(m, T)
    ffw = ftr / 3

    def pieces():
        """(rows, train?, repetitions) of the job's steps, then its generated tokens."""
        evals = [(r * k, False, 1) for r, k, _ in EVAL_SETS]
        gen = sum(r for r, _, g in EVAL_SETS if g) * a.gen_tokens
        if kind == "eval":
            return evals, gen
        if kind == "relearn":
            fe = [(EVAL_SETS[0][0] * EVAL_SETS[0][1], False, RELEARN_EVALS)]
            return [(RELEARN_ROWS, True, RELEARN_STEPS)] + fe, EVAL_SETS[0][0] * a.gen_tokens * RELEARN_EVALS
        steps = EPOCHS * math.ceil(FORGET / BATCH)
        rows = BATCH if kind in ("ga", "ceu") else 2 * BATCH
        out = [(rows, True, steps)]
        if kind == "npo":
            out.append((FORGET, False, 1))
        if kind in ("ceu", "undial"):
            out.append((BATCH, False, steps))
        return out, 0

    best = None
    steps, gen = pieces()
    for dp, pp, tp, M in layouts(m, n, BATCH):
        state = 16 * max(stage_floats(m, pp, tp, s) for s in range(pp)) / 1e9
        if state > a.node_gb:
            continue
        t = 0.0
        for rows, train, reps in steps:
            f = rows * T * (ftr if train else ffw)
            Mx = min(M, max(1, rows // dp)) if pp > 1 else 1
            comp = f / (n * rate) * (Mx + pp - 1) / Mx
            comm = step_bytes(m, dp, pp, tp, Mx, rows, T, train) / (a.link_gbs * 1e9)
            # a forward-only pass of many rows runs in batches of BATCH rows
            nb = max(1, math.ceil(rows / BATCH)) if not train else 1
            t += reps * (comp + comm * nb)
        t += gen * 2 * params(m) / (n * rate)  # generation: forward per token, no bubble
        if best is None or t < best[0]:
            best = (t, (dp, pp, tp, M), state)
    if detail is not None:
        detail.append((kind, n, best))
    return best[0]


def study_time(m, N, a, detail=None):
    """(seconds all-nodes, seconds 8+8, chosen) of the forget05 study on N nodes."""
    def chain(n):
        return sum(job_time(m, n, a, k, detail) for k in ("eval", "relearn")) + \
            0  # per method below

    def chains(n):
        return [job_time(m, n, a, meth, detail) + chain(n) for meth in METHODS]

    head_all = job_time(m, N, a, "eval", detail)
    t_all = head_all + sum(chains(N))
    per = 8
    head8 = job_time(m, per, a, "eval")
    c8 = chains(per)
    side = max(1, N // per)
    waves = [c8[i:i + side] for i in range(0, len(c8), side)]
    t_88 = head8 + sum(max(w) for w in waves)
    return t_all, t_88


def protocol(a):
    """The forget05 study's jobs and their token counts (every row T tokens)."""
    T = a.seq_len
    ev = sum(r * k for r, k, _ in EVAL_SETS) * T
    gen = sum(r for r, _, g in EVAL_SETS if g) * a.gen_tokens
    steps = EPOCHS * math.ceil(FORGET / BATCH)
    print(f"\nforget05 protocol, T = {T}: jobs and tokens (forward+backward / forward only / "
          "generated)")
    print("| job | count | trained tokens | forward tokens | generated tokens |")
    print("|---|--:|--:|--:|--:|")
    print(f"| eval (origin + one per method) | 9 | 0 | {ev:,} | {gen:,} |")
    for meth in METHODS:
        rows = BATCH if meth in ("ga", "ceu") else 2 * BATCH
        fw = FORGET * T if meth == "npo" else BATCH * steps * T if meth in ("ceu", "undial") else 0
        print(f"| unlearn {meth} ({steps} steps) | 1 | {rows * steps * T:,} | {fw:,} | 0 |")
    re_fw = EVAL_SETS[0][0] * EVAL_SETS[0][1] * T * RELEARN_EVALS
    print(f"| relearn (one per method, {RELEARN_STEPS} steps) | 8 | "
          f"{RELEARN_ROWS * RELEARN_STEPS * T:,} | {re_fw:,} | "
          f"{EVAL_SETS[0][0] * a.gen_tokens * RELEARN_EVALS:,} |")


def check():
    """The byte counts against the README's 7 B projection (B 64, T 2048: total GB per
    rank per step and parameters per rank, in millions) and the 1B parameter count against
    `lethe bench` (params 1235814400)."""
    m, bad = MODELS["Llama-2-7B"], 0
    rows = [((16, 1, 1, 1), 50.5, 6738), ((4, 4, 1, 16), 11.0, 1750), ((2, 4, 2, 16), 40.0, 875),
            ((1, 4, 4, 16), 108.5, 438), ((8, 4, 2, 8), 15.3, 875)]
    for (dp, pp, tp, M), gb, pm in rows:
        got = step_bytes(m, dp, pp, tp, M, 64, 2048, True) / 1e9
        pr = max(stage_floats(m, pp, tp, s) for s in range(pp)) / 1e6
        ok = round(got, 1) == gb and round(pr) == pm
        bad += not ok
        print(f"{'PASS' if ok else 'FAIL'} 7B dp {dp} pp {pp} tp {tp} M {M}: {got:.2f} GB "
              f"(README {gb}), {pr:.0f} M params per rank (README {pm})")
    got = step_bytes(MODELS["Llama-3.2-1B"], 1, 1, 2, 1, 2, 128, True)
    ok = abs(got - 138415112) <= 8  # the bench counts the gradient norm's 8 bytes too
    bad += not ok
    print(f"{'PASS' if ok else 'FAIL'} Llama-3.2-1B tp 2, B 2, T 128: {got:.0f} bytes per step "
          "(lethe bench: 138415112 measured and analytic)")
    ok = params(MODELS["Llama-3.2-1B"]) == 1235814400
    bad += not ok
    print(f"{'PASS' if ok else 'FAIL'} Llama-3.2-1B: {params(MODELS['Llama-3.2-1B'])} parameters "
          "(lethe bench: 1235814400)")
    return 1 if bad else 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    p.add_argument("--pct-peak", type=float, default=None,
                   help="lethe bench's pct_sgemm_peak on bench-1b.json (default: 43.6, measured)")
    p.add_argument("--core-gflops", type=float, default=190.0,
                   help="sgemm peak of one core, GFLOP/s (README: 190, one AVX-512 core)")
    p.add_argument("--cores", type=int, default=16, help="cores per node (one rank per node)")
    p.add_argument("--link-gbs", type=float, default=12.5, help="GB/s per node (100 Gb/s)")
    p.add_argument("--node-gb", type=float, default=256.0, help="memory per node, GB")
    p.add_argument("--seq-len", type=int, default=512)
    p.add_argument("--gen-tokens", type=int, default=64, help="greedy tokens per eval row")
    p.add_argument("--nodes", default="8,32,64")
    p.add_argument("--detail", action="store_true")
    p.add_argument("--check", action="store_true",
                   help="only check the model against the README's 7 B table and the bench")
    a = p.parse_args()
    if a.check:
        return check()
    if a.pct_peak is None:
        a.pct_peak = DEFAULT_PCT
    nodes = [int(x) for x in a.nodes.split(",")]
    rate = a.cores * a.core_gflops * a.pct_peak / 100
    print(f"node rate {rate / 1000:.2f} TFLOP/s ({a.cores} cores x {a.core_gflops:g} GFLOP/s x "
          f"{a.pct_peak:g} %), link {a.link_gbs:g} GB/s, T {a.seq_len}, "
          f"{a.gen_tokens} generated tokens per eval row")
    protocol(a)
    print("\n| model | params | nodes | all nodes, jobs in turn | 8 nodes per job, chains side by side | projection |")
    print("|---|--:|--:|--:|--:|--:|")
    for name, m in MODELS.items():
        for N in nodes:
            detail = [] if a.detail else None
            ta, t8 = study_time(m, N, a, detail)
            best = min(ta, t8)
            print(f"| {name} | {params(m) / 1e9:.2f} B | {N} | {ta / 3600:.2f} h | {t8 / 3600:.2f} h | "
                  f"**{best / 3600:.2f} h** |")
            if detail:
                seen = set()
                for kind, n, (t, lay, st) in detail:
                    if (kind, n) in seen:
                        continue
                    seen.add((kind, n))
                    print(f"|   {kind} on {n} | | | {t:.0f} s | dp {lay[0]} pp {lay[1]} tp {lay[2]} M {lay[3]} | state {st:.0f} GB |")


# `lethe bench jobs/configs/bench-1b.json --set layout.tp=2` on 2 ranks, 2026-12-06: 43.6 %
# of the sgemm peak measured in the same process (103.7 GFLOP/s), load average 4.7-5.5
# (31.5 % of 24.4 GFLOP/s at load 18-19 earlier; the README's quiet-machine figure for the
# 100 M config is 88.6 %)
DEFAULT_PCT = 43.6

if __name__ == "__main__":
    raise SystemExit(main())
