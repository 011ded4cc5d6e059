#!/usr/bin/python3
"""tests/markov_kl_ref.py — lethe eval's per-chain KL on a Markov dataset, recomputed.

    /usr/bin/python3 tests/markov_kl_ref.py MODEL.safetensors DATA.h5 JOB.json SUMMARY.json

MODEL.safetensors: the evaluated checkpoint exported by `lethe convert`; JOB.json the
eval job's lethe config (model.* keys); DATA.h5 the `lethe synth` markov file, read
with the h5dump tool (full precision); SUMMARY.json lethe eval's output.

Independently of lethe: the decoder of tests/torch_ref.py in float64 gives the
next-token distribution q at every position of every held-out row of eval/retain,
eval/forget1 and eval/forget2 (positions 0 .. length-2: BOS and the states that
precede the last one); the true distribution p is the chain's initial distribution
after BOS and row s of its transition matrix after state s;
    KL = sum over positions of sum_j p_j (log p_j - log q_j)  / positions
over the 10 state tokens (mass on other tokens is not renormalised away).
Asserts summary.markov.kl_retain / kl_forget1 / kl_forget2 equal these to 1e-4
relative, and every split's n. Exit 1 naming what differs.
"""
import json
import os
import re
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
try:
    import numpy as np
    import torch
    from torch_ref import Llama, read_safetensors
except ImportError as exc:
    print(f"markov_kl_ref.py: FAIL: cannot import PyTorch/NumPy: {exc}")
    sys.exit(1)

S, BOS, TOL = 10, 10, 1e-4
CHAINS = ("retain", "forget1", "forget2")


def h5(path, dset, dtype):
    """A dataset of the file as a NumPy array, through h5dump's text at full precision."""
    out = subprocess.run(["h5dump", "-y", "-w", "0", "-m", "%.17g", "-d", dset, path],
                         capture_output=True, text=True, check=True).stdout
    shape = [int(x) for x in re.search(r"SIMPLE \{ \( ([0-9, ]+) \)", out).group(1).split(",")]
    body = out[out.index("DATA {") + 6:]
    body = body[:body.index("}")]
    vals = np.array([float(x) for x in body.replace("\n", " ").split(",") if x.strip()])
    return vals.reshape(shape).astype(dtype)


def main():
    if len(sys.argv) != 5:
        print(__doc__)
        return 2
    model_path, data, job, summary = sys.argv[1:]
    cfg = json.load(open(job))["model"]
    mcfg = {k: str(cfg[k]) for k in ("vocab_size", "dim", "n_layers", "n_heads", "n_kv_heads")}
    mcfg["rope_theta"] = str(cfg.get("rope_theta", 10000.0))
    mcfg["norm_eps"] = str(cfg.get("norm_eps", 1e-5))
    mcfg["tie_embeddings"] = "1" if cfg.get("tie_embeddings", False) else "0"
    weights, _ = read_safetensors(model_path)
    model = Llama(mcfg, weights, torch.float64)
    sm = json.load(open(summary))
    keys = {"retain": "retain_chain", "forget1": "forget_chain1", "forget2": "forget_chain2"}
    failures = []
    for c in CHAINS:
        P = h5(data, f"/chains/{c}", np.float64)
        p0 = h5(data, f"/chains/initial_{c}", np.float64)
        ids = h5(data, f"/eval/{c}/input_ids", np.int64)
        lengths = h5(data, f"/eval/{c}/lengths", np.int64)
        with torch.no_grad():
            logq = torch.log_softmax(model.logits(torch.tensor(ids)), dim=-1).numpy()
        kl, pos = 0.0, 0
        for i in range(ids.shape[0]):
            for t in range(int(lengths[i]) - 1):
                cur = ids[i, t]
                p = p0 if cur == BOS else P[cur]
                m = p > 0
                kl += float(np.sum(p[m] * (np.log(p[m]) - logq[i, t, :S][m])))
                pos += 1
        ref = kl / pos
        got = sm["markov"][f"kl_{c}"]
        err = abs(got - ref) / abs(ref)
        n_ok = sm["splits"][keys[c]]["n"] == ids.shape[0]
        print(f"markov_kl_ref.py: {c:8s} rows {ids.shape[0]:4d} positions {pos:6d}  KL lethe "
              f"{got:.8f}  reference {ref:.8f}  relative error {err:.2e}")
        if not err <= TOL:
            failures.append(f"kl_{c} {got} vs {ref}")
        if not n_ok:
            failures.append(f"splits.{keys[c]}.n {sm['splits'][keys[c]]['n']} vs {ids.shape[0]}")
    if failures:
        print("markov_kl_ref.py: FAIL: " + "; ".join(failures))
        return 1
    print(f"markov_kl_ref.py: PASS (3 chains, relative error <= {TOL:g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
