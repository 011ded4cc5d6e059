#!/usr/bin/python3
"""tests/torch_ref.py — an independent PyTorch model that lethe's numbers must match.

    /usr/bin/python3 tests/torch_ref.py DIR [--fd K]

DIR holds what tests/parity_dump.c wrote (weights, grads, batch, outputs, steps,
final .safetensors). This script builds the Llama decoder from its definition, not
from lethe's code:
    x = E[tokens]
    per layer:  h = RMSNorm(x) = x * rsqrt(mean(x^2) + eps) * w
                q, k, v = h Wq^T, h Wk^T, h Wv^T; RoPE on q, k (Hugging Face rotate_half,
                inv_freq = 1 / theta^(arange(0, hd, 2) / hd)); kv heads repeated
                (repeat_interleave) to the query heads; causal softmax(q k^T / sqrt(hd)) v
                x = x + o_proj(attention);  x = x + down(silu(gate(RMSNorm(x))) * up(...))
    logits = RMSNorm_final(x) H^T, H = lm_head.weight or, when the file has none, the
             embedding (tied)
    loss   = -(sum of log_softmax(logits)[target] over targets != -1) / (their count)
Gradients come from autograd; the 10 optimizer steps from torch.optim.AdamW (decay on
2-D tensors, none on norms), torch.nn.utils.clip_grad_norm_ and the warm-up + cosine
schedule computed here from its definition.

Criterion (every compared tensor X, lethe value a, reference b):
    err(X) = max|a - b| / max(max|b|, 1e-30)   must be <= 1e-4
for logits, per-token log-probabilities, per-sequence sums s, every parameter gradient;
|a - b| / |b| <= 1e-4 for the loss and for each of the 10 step losses and gradient
norms; the counts n must be equal; the learning rates must agree to 1e-6 and the
clip scales to 1e-4. The reference runs in float32 (the contract), and again in
float64: lethe must also be within 1e-4 of the float64 model, and the table shows
torch-float32's own distance to float64 beside lethe's, so a reader sees that lethe's
error is float32 rounding. Central finite differences of the float64 loss at K
entries per tensor (the largest-gradient entry and random ones, --fd K, default 2)
check lethe's gradients without autograd, with the same criterion.
The weights after the steps must also agree by err(X) <= 1e-4 per tensor (the steps
move them by about 1e-2 relative, so this sees a wrong decay, bias correction or
schedule that the losses alone might not). The batch must cover what parity is
about: sequences of different lengths (different target counts) and a masked prompt
(no target at the first positions of any sequence).
Exit status 1 (naming every failing tensor) on any failure, also when PyTorch is
missing: the parity suite must not pass without its reference.
"""
import json
import math
import os
import struct
import sys

TOL = 1e-4
TOL_LR = 1e-6

try:
    import numpy as np
    import torch
except ImportError as exc:  # the suite installs python3-torch; its absence is a failure
    print(f"torch_ref.py: FAIL: PyTorch/NumPy not importable by {sys.executable}: {exc} "
          "(install Debian's python3-torch python3-numpy, run with /usr/bin/python3)")
    sys.exit(1)


# ---- safetensors, parsed with json + numpy ------------------------------------------

_DT = {"F32": "<f4", "F16": "<f2", "F64": "<f8", "I32": "<i4", "I64": "<i8", "BF16": "<u2"}


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {})
    buf = memoryview(raw)[8 + n:]
    out = {}
    for name, e in header.items():
        b, end = e["data_offsets"]
        arr = np.frombuffer(buf[b:end], dtype=np.dtype(_DT[e["dtype"]]))
        if e["dtype"] == "BF16":
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        out[name] = arr.reshape(e["shape"]).copy()
    return out, meta


# ---- the model ----------------------------------------------------------------------

class Llama:
    def __init__(self, cfg, weights, dtype):
        self.V = int(cfg["vocab_size"])
        self.C = int(cfg["dim"])
        self.L = int(cfg["n_layers"])
        self.NH = int(cfg["n_heads"])
        self.NKV = int(cfg["n_kv_heads"])
        self.hd = self.C // self.NH
        self.theta = float(cfg["rope_theta"])
        self.eps = float(cfg["norm_eps"])
        self.tied = "lm_head.weight" not in weights
        if self.tied != (cfg["tie_embeddings"] == "1"):
            raise SystemExit("torch_ref.py: FAIL: lm_head.weight presence does not match "
                             f"tie_embeddings={cfg['tie_embeddings']}")
        self.dtype = dtype
        self.P = {k: torch.tensor(v, dtype=dtype, requires_grad=True) for k, v in weights.items()}

    def rope(self, T):
        hd = self.hd
        if self.dtype == torch.float32:
            inv_freq = 1.0 / (self.theta ** (torch.arange(0, hd, 2).float() / hd))
        else:
            inv_freq = 1.0 / (self.theta ** (torch.arange(0, hd, 2, dtype=self.dtype) / hd))
        t = torch.arange(T, dtype=inv_freq.dtype)
        freqs = torch.outer(t, inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)  # (T, hd)
        return emb.cos().to(self.dtype), emb.sin().to(self.dtype)

    @staticmethod
    def rotate_half(x):
        x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
        return torch.cat((-x2, x1), dim=-1)

    def rmsnorm(self, x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * w

    def logits(self, tokens):
        x = self.rmsnorm(self.hidden(tokens, self.L), self.P["model.norm.weight"])
        head = self.P["model.embed_tokens.weight"] if self.tied else self.P["lm_head.weight"]
        return x @ head.T  # (B, T, V)

    def hidden(self, tokens, blocks):
        """The residual stream after the first `blocks` blocks (B, T, C)."""
        P, B, T = self.P, tokens.shape[0], tokens.shape[1]
        NH, NKV, hd = self.NH, self.NKV, self.hd
        cos, sin = self.rope(T)
        mask = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
        x = P["model.embed_tokens.weight"][tokens]  # (B, T, C)
        for l in range(blocks):
            pre = f"model.layers.{l}."
            h = self.rmsnorm(x, P[pre + "input_layernorm.weight"])
            q = (h @ P[pre + "self_attn.q_proj.weight"].T).view(B, T, NH, hd).transpose(1, 2)
            k = (h @ P[pre + "self_attn.k_proj.weight"].T).view(B, T, NKV, hd).transpose(1, 2)
            v = (h @ P[pre + "self_attn.v_proj.weight"].T).view(B, T, NKV, hd).transpose(1, 2)
            q = q * cos + self.rotate_half(q) * sin
            k = k * cos + self.rotate_half(k) * sin
            k = k.repeat_interleave(NH // NKV, dim=1)  # query head j reads kv head j // group
            v = v.repeat_interleave(NH // NKV, dim=1)
            att = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
            att = torch.softmax(att.masked_fill(mask, float("-inf")), dim=-1)
            o = (att @ v).transpose(1, 2).reshape(B, T, NH * hd)
            x = x + o @ P[pre + "self_attn.o_proj.weight"].T
            h = self.rmsnorm(x, P[pre + "post_attention_layernorm.weight"])
            g = torch.nn.functional.silu(h @ P[pre + "mlp.gate_proj.weight"].T)
            u = h @ P[pre + "mlp.up_proj.weight"].T
            x = x + (g * u) @ P[pre + "mlp.down_proj.weight"].T
        return x

    def loss(self, tokens, targets):
        """Token-mean NLL; also per-sequence sums s, counts n, per-token log-probs."""
        logits = self.logits(tokens)
        lp = torch.log_softmax(logits, dim=-1)
        valid = targets >= 0
        tok = lp.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        tok = torch.where(valid, tok, torch.zeros_like(tok))
        s = tok.sum(dim=1)
        n = valid.sum(dim=1)
        return -s.sum() / n.sum(), logits, s, n, tok

    def zero_grad(self):
        for p in self.P.values():
            p.grad = None


def lr_at(o, step, total):
    """Linear warm-up from lr/warmup to lr over warmup steps, then cosine decay from lr
    (first step after warm-up) to min_lr (last step)."""
    lr, lo, warm = float(o["lr"]), float(o["min_lr"]), int(o["warmup_steps"])
    if warm > 0 and step < warm:
        return lr * (step + 1) / warm
    assert o["schedule"] == "cosine"
    span = total - warm - 1
    frac = min(max((step - warm) / span, 0.0), 1.0) if span > 0 else 1.0
    return lo + (lr - lo) * 0.5 * (1.0 + math.cos(math.pi * frac))


def train(model, opt_cfg, tokens, targets):
    """The optimizer steps; returns losses, grad norms, clip scales, lrs."""
    decay = [p for p in model.P.values() if p.dim() == 2]
    no_decay = [p for p in model.P.values() if p.dim() != 2]
    wd = float(opt_cfg["weight_decay"])
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}],
        lr=float(opt_cfg["lr"]), betas=(float(opt_cfg["beta1"]), float(opt_cfg["beta2"])),
        eps=float(opt_cfg["eps"]))
    clip = float(opt_cfg["grad_clip"])
    S = int(opt_cfg["steps"])
    out = {"loss": [], "grad_norm": [], "clip": [], "lr": []}
    for s in range(S):
        model.zero_grad()
        loss = model.loss(tokens[s], targets[s])[0]
        loss.backward()
        norm = float(torch.nn.utils.clip_grad_norm_(list(model.P.values()), clip))
        lr = lr_at(opt_cfg, s, S)
        for g in opt.param_groups:
            g["lr"] = lr
        opt.step()
        out["loss"].append(float(loss))
        out["grad_norm"].append(norm)
        out["clip"].append(min(1.0, clip / norm))
        out["lr"].append(lr)
    return {k: np.array(v) for k, v in out.items()}


def rel_err(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return float("inf")
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))) if b.size else 0.0, 1e-30))


def main():
    args = sys.argv[1:]
    fd_k = 2
    if "--fd" in args:
        i = args.index("--fd")
        fd_k = int(args[i + 1])
        del args[i:i + 2]
    if len(args) != 1:
        print("usage: torch_ref.py DIR [--fd K]")
        return 2
    d = args[0]
    torch.manual_seed(0)
    weights, cfg = read_safetensors(os.path.join(d, "weights.safetensors"))
    grads, _ = read_safetensors(os.path.join(d, "grads.safetensors"))
    batch, _ = read_safetensors(os.path.join(d, "batch.safetensors"))
    outs, _ = read_safetensors(os.path.join(d, "outputs.safetensors"))
    steps, opt_cfg = read_safetensors(os.path.join(d, "steps.safetensors"))
    final, _ = read_safetensors(os.path.join(d, "final.safetensors"))
    tokens = torch.tensor(batch["tokens"], dtype=torch.long)
    targets = torch.tensor(batch["targets"], dtype=torch.long)
    B, T = tokens.shape
    V = int(cfg["vocab_size"])
    print(f"torch_ref.py: case {cfg['case']}: V {V} C {cfg['dim']} L {cfg['n_layers']} "
          f"heads {cfg['n_heads']}/{cfg['n_kv_heads']} mlp {cfg['mlp_dim']} "
          f"{'tied' if cfg['tie_embeddings'] == '1' else 'untied'}, batch {B} x {T}, "
          f"targets per sequence {(batch['targets'] >= 0).sum(1).tolist()}, "
          f"torch {torch.__version__}")
    counts = (batch["targets"] >= 0).sum(1)
    masked = int(np.argmax((batch["targets"] >= 0).any(0)))  # first position with a target
    if len(set(counts.tolist())) < 2 or masked < 1:
        print(f"torch_ref.py: FAIL: the batch must mix lengths and mask a prompt (target "
              f"counts {counts.tolist()}, first target at position {masked})")
        return 1
    C, I, L = int(cfg["dim"]), int(cfg["mlp_dim"]), int(cfg["n_layers"])
    hd = C // int(cfg["n_heads"])
    qw, kw = int(cfg["n_heads"]) * hd, int(cfg["n_kv_heads"]) * hd
    expect = {"model.embed_tokens.weight": (V, C), "model.norm.weight": (C,)}
    if cfg["tie_embeddings"] != "1":
        expect["lm_head.weight"] = (V, C)
    for l in range(L):
        pre = f"model.layers.{l}."
        expect.update({pre + "input_layernorm.weight": (C,),
                       pre + "self_attn.q_proj.weight": (qw, C),
                       pre + "self_attn.k_proj.weight": (kw, C),
                       pre + "self_attn.v_proj.weight": (kw, C),
                       pre + "self_attn.o_proj.weight": (C, qw),
                       pre + "post_attention_layernorm.weight": (C,),
                       pre + "mlp.gate_proj.weight": (I, C),
                       pre + "mlp.up_proj.weight": (I, C),
                       pre + "mlp.down_proj.weight": (C, I)})
    got = {k: tuple(v.shape) for k, v in weights.items()}
    if got != expect:
        bad = sorted(k for k in set(got) | set(expect) if got.get(k) != expect.get(k))
        print(f"torch_ref.py: FAIL: weights.safetensors does not hold the Llama parameters "
              f"(name: lethe shape / expected shape): "
              f"{', '.join(f'{k}: {got.get(k)} / {expect.get(k)}' for k in bad)}")
        return 1
    if set(grads) != set(weights):
        print(f"torch_ref.py: FAIL: gradient names differ from weight names: "
              f"{sorted(set(grads) ^ set(weights))}")
        return 1

    ref = {}
    for dt in (torch.float32, torch.float64):
        mdl = Llama(cfg, weights, dt)
        loss, logits, s, n, tok = mdl.loss(tokens, targets)
        loss.backward()
        ref[dt] = {"model": mdl, "loss": float(loss), "logits": logits.detach().reshape(B * T, V),
                   "s": s.detach(), "n": n, "tok": tok.detach(),
                   "grads": {k: p.grad.detach().numpy() for k, p in mdl.P.items()}}
    r32, r64 = ref[torch.float32], ref[torch.float64]

    failures = []
    rows = []

    def compare(name, lethe, b32, b64, tol=TOL, scalar=False):
        if scalar:
            e32 = abs(lethe - b32) / max(abs(b32), 1e-30)
            e64 = abs(lethe - b64) / max(abs(b64), 1e-30)
            t64 = abs(b32 - b64) / max(abs(b64), 1e-30)
        else:
            e32, e64, t64 = rel_err(lethe, b32), rel_err(lethe, b64), rel_err(b32, b64)
        ok = e32 <= tol and e64 <= tol
        rows.append((name, e32, e64, t64, ok))
        if not ok:
            failures.append(name)

    compare("logits", outs["logits"], r32["logits"].numpy(), r64["logits"].numpy())
    compare("loss", float(outs["loss"]), r32["loss"], r64["loss"], scalar=True)
    compare("seq_s", outs["seq_s"], r32["s"].numpy(), r64["s"].numpy())
    compare("tok_logp", outs["tok_logp"], r32["tok"].numpy(), r64["tok"].numpy())
    if not np.array_equal(outs["seq_n"], r32["n"].numpy().astype(np.float32)):
        failures.append("seq_n")
        print(f"torch_ref.py: FAIL: seq_n: lethe {outs['seq_n'].tolist()}, "
              f"reference {r32['n'].tolist()}")
    for name in sorted(weights):
        compare("grad " + name, grads[name], r32["grads"][name], r64["grads"][name])

    # finite differences of the float64 loss: lethe's gradient without autograd
    rng = np.random.default_rng(1234)
    fd_rows = []
    if fd_k > 0:
        m64 = Llama(cfg, weights, torch.float64)
        with torch.no_grad():
            for name in sorted(weights):
                p = m64.P[name]
                flat = p.view(-1)
                g = grads[name].reshape(-1)
                picks = [int(np.argmax(np.abs(g)))]
                picks += [int(x) for x in rng.integers(0, flat.numel(), size=fd_k - 1)]
                scale = max(float(np.max(np.abs(r64["grads"][name]))), 1e-30)
                worst = 0.0
                for j in picks:
                    h = 1e-6 * max(1.0, abs(float(flat[j])))
                    old = float(flat[j])
                    flat[j] = old + h
                    lp = float(m64.loss(tokens, targets)[0])
                    flat[j] = old - h
                    lm = float(m64.loss(tokens, targets)[0])
                    flat[j] = old
                    fd = (lp - lm) / (2 * h)
                    worst = max(worst, abs(float(g[j]) - fd) / scale)
                fd_rows.append((name, worst))
                if worst > TOL:
                    failures.append("finite differences of " + name)

    # optimizer steps
    st_ref, st_model = {}, {}
    all_tokens = torch.tensor(steps["tokens"], dtype=torch.long)
    all_targets = torch.tensor(steps["targets"], dtype=torch.long)
    for dt in (torch.float32, torch.float64):
        st_model[dt] = Llama(cfg, weights, dt)
        st_ref[dt] = train(st_model[dt], opt_cfg, all_tokens, all_targets)
    S = int(opt_cfg["steps"])
    for s in range(S):
        compare(f"step {s + 1} loss", float(steps["loss"][s]), st_ref[torch.float32]["loss"][s],
                st_ref[torch.float64]["loss"][s], scalar=True)
    for s in range(S):
        compare(f"step {s + 1} grad norm", float(steps["grad_norm"][s]),
                st_ref[torch.float32]["grad_norm"][s], st_ref[torch.float64]["grad_norm"][s],
                scalar=True)
        compare(f"step {s + 1} clip scale", float(steps["clip"][s]), st_ref[torch.float32]["clip"][s],
                st_ref[torch.float64]["clip"][s], scalar=True)
        compare(f"step {s + 1} lr", float(steps["lr"][s]), st_ref[torch.float32]["lr"][s],
                st_ref[torch.float64]["lr"][s], tol=TOL_LR, scalar=True)
    n_clipped = int(np.sum(st_ref[torch.float64]["clip"] < 1.0))
    if n_clipped == 0 or n_clipped == S:
        failures.append("clipping coverage")
        print(f"torch_ref.py: FAIL: gradient clipping bites on {n_clipped} of {S} steps; the "
              "case must exercise both branches")

    # weights after the steps
    moved = max(rel_err(final[k], weights[k]) for k in weights)
    for name in sorted(weights):
        compare("final " + name, final[name], st_model[torch.float32].P[name].detach().numpy(),
                st_model[torch.float64].P[name].detach().numpy())

    print(f"{'tensor':<52} {'vs torch f32':>13} {'vs torch f64':>13} {'f32 vs f64':>12}")
    for name, e32, e64, t64, ok in rows:
        print(f"{name:<52} {e32:13.3e} {e64:13.3e} {t64:12.3e}{'' if ok else '   FAIL'}")
    if fd_rows:
        print(f"finite differences (float64, {fd_k} entries per tensor), max error "
              "relative to max|g|:")
        for name, worst in fd_rows:
            print(f"  {name:<50} {worst:12.3e}{'' if worst <= TOL else '   FAIL'}")
    print(f"clipping bit on {n_clipped} of {S} steps; the steps moved the weights by up to "
          f"{moved:.3e} relative")
    if failures:
        print(f"torch_ref.py: FAIL: case {cfg['case']}: {len(failures)} comparison(s) above "
              f"tolerance: {', '.join(failures)}")
        return 1
    print(f"torch_ref.py: case {cfg['case']}: PASS ({len(rows)} comparisons <= {TOL:g} relative)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
