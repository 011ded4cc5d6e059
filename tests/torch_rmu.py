#!/usr/bin/python3
"""tests/torch_rmu.py — RMU (model/rmu.h) against PyTorch autograd of its formula.

    /usr/bin/python3 tests/torch_rmu.py DIR

DIR holds what tests/rmu_dump.c wrote. The decoder blocks are those of tests/torch_ref.py
(Llama.hidden); the loss is written here from its definition
(WMDP's RMU with open-unlearning's answer mask):
    h      = residual stream after block `layer` (B, T, C)
    mask   = position t holds an answer token: targets[t - 1] >= 0 (labels != -100)
    mse_b(z) = sum over masked t of mean_d (h - z)^2 / (masked count of row b)
    L = c_f * mean over forget rows of mse_b(c u) + c_r * mean over retain rows of
        mse_b(h of the starting weights, detached)
Trained: mlp.down_proj of blocks max(0, layer - span + 1) .. layer.
Criterion, against the reference in float32 and float64: the loss and its two terms
relative 1e-5; the trained tensors' gradients (one and two micro-batches) max|a-b|/max|b|
<= 1e-5; |c u| = c (1e-6), u >= 0 (uniform components, as torch.rand); after lethe's step
every other tensor is bitwise unchanged, the trained ones moved, and the loss at the new
weights is lower. Exit 1 naming every failure; also when PyTorch is missing.
"""
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
try:
    import numpy as np
    import torch
    from torch_ref import Llama, read_safetensors, rel_err
except ImportError as exc:
    print(f"torch_rmu.py: FAIL: cannot import PyTorch/NumPy/torch_ref: {exc}")
    sys.exit(1)

TOL = 1e-5


def hidden(mdl, tokens, layer):
    """h: the residual stream after block `layer` (torch_ref's blocks)."""
    return mdl.hidden(tokens, layer + 1)


def act_loss(h, z, mask):
    """open-unlearning's compute_activation_loss: per row, sum over masked positions of
    the mean over C of the squared difference, over the masked count; mean over rows."""
    sq = ((h - z) ** 2).mean(-1) * mask
    return (sq.sum(1) / mask.sum(1)).mean()


def main():
    d = sys.argv[1]
    weights, case = read_safetensors(os.path.join(d, "weights.safetensors"))
    start, _ = read_safetensors(os.path.join(d, "start.safetensors"))
    final, _ = read_safetensors(os.path.join(d, "final.safetensors"))
    grads = {k: read_safetensors(os.path.join(d, f"{k}.safetensors"))[0]
             for k in ("grads", "grads_mb2")}
    batch, sc = read_safetensors(os.path.join(d, "batch.safetensors"))
    sc = {k: float(v) for k, v in sc.items()}
    layer, span = int(case["layer"]), int(case["span"])
    c, c_f, c_r = float(case["c"]), float(case["c_f"]), float(case["c_r"])
    trained = {f"model.layers.{l}.mlp.down_proj.weight" for l in range(max(0, layer - span + 1), layer + 1)}
    tokens = torch.tensor(batch["tokens"], dtype=torch.long)
    targets = batch["targets"]
    isf = torch.tensor(batch["is_forget"] != 0)
    mask_np = np.zeros_like(targets, dtype=np.float64)
    mask_np[:, 1:] = targets[:, :-1] >= 0
    target = batch["target"].astype(np.float64)
    print(f"torch_rmu.py: case {case['case']}: layer {layer} span {span} c {c} c_f {c_f} c_r {c_r}; "
          f"trained {sorted(trained)}; masked positions per row {mask_np.sum(1).astype(int).tolist()}")
    failures = []
    if set(grads["grads"]) != trained:
        failures.append("trained set")
        print(f"torch_rmu.py: FAIL: lethe's trained tensors {sorted(grads['grads'])}")
    norm = float(np.linalg.norm(target))
    if abs(norm - c) > 1e-6 * c or target.min() < 0:
        failures.append("steering vector")
        print(f"torch_rmu.py: FAIL: |c u| = {norm} (c = {c}), min component {target.min()}")
    for dt in (torch.float32, torch.float64):
        mdl = Llama(case, weights, dt)
        with torch.no_grad():
            hz = hidden(Llama(case, start, dt), tokens, layer)
        h = hidden(mdl, tokens, layer)
        mask = torch.tensor(mask_np, dtype=dt)
        u = torch.tensor(target, dtype=dt).expand_as(h)
        lf = c_f * act_loss(h[isf], u[isf], mask[isf])
        lr = c_r * act_loss(h[~isf], hz[~isf], mask[~isf])
        loss = lf + lr
        names = sorted(trained)
        g = torch.autograd.grad(loss, [mdl.P[k] for k in names])
        for label, a, b in (("loss", sc["loss"], loss), ("loss_forget", sc["loss_forget"], lf),
                            ("loss_retain", sc["loss_retain"], lr), ("loss_mb2", sc["loss_mb2"], loss),
                            ("loss_forget_mb2", sc["loss_forget_mb2"], lf)):
            e = abs(a - float(b)) / max(abs(float(b)), 1e-30)
            ok = e <= TOL
            print(f"torch_rmu.py: {'ok  ' if ok else 'FAIL'} {str(dt)[6:]} {label}: lethe {a:.9g} torch {float(b):.9g} rel {e:.2e}")
            if not ok:
                failures.append(f"{label} {dt}")
        for key in ("grads", "grads_mb2"):
            for k, gk in zip(names, g):
                e = rel_err(grads[key][k], gk.detach().numpy())
                ok = e <= TOL
                if not ok:
                    failures.append(f"{key} {k} {dt}")
                print(f"torch_rmu.py: {'ok  ' if ok else 'FAIL'} {str(dt)[6:]} {key} {k}: rel {e:.2e}")
    moved = [k for k in weights if not np.array_equal(weights[k], final[k])]
    if set(moved) != trained:
        failures.append("step moved")
        print(f"torch_rmu.py: FAIL: the step moved {sorted(moved)}")
    with torch.no_grad():
        m64 = Llama(case, final, torch.float64)
        hz = hidden(Llama(case, start, torch.float64), tokens, layer)
        h = hidden(m64, tokens, layer)
        mask = torch.tensor(mask_np, dtype=torch.float64)
        u = torch.tensor(target, dtype=torch.float64).expand_as(h)
        after = float(c_f * act_loss(h[isf], u[isf], mask[isf]) + c_r * act_loss(h[~isf], hz[~isf], mask[~isf]))
    ok = after < sc["step_loss"]
    print(f"torch_rmu.py: {'ok  ' if ok else 'FAIL'} the step goes downhill: {sc['step_loss']:.9g} -> {after:.9g}")
    if not ok:
        failures.append("downhill")
    if failures:
        print(f"torch_rmu.py: FAIL: case {case['case']}: {', '.join(failures)}")
        return 1
    print(f"torch_rmu.py: PASS: case {case['case']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
