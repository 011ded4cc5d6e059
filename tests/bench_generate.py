"""tests/bench_generate.py — PyTorch's side of tests/bench_generate.sh: batched greedy
generation with a KV cache on the Llama of tests/torch_ref.py (the same layers and
rotary embedding: pre-norm RMSNorm, grouped-query attention, SwiGLU, untied head),
plain torch, no autograd. Not a test.

  python3 bench_generate.py THREADS V C L NH NKV F T BATCH PROMPTS NEW

The prompts have the lengths lethe's side uses (8 + (5 i) % 9 tokens, random ids) and
run BATCH at a time, the way batched generation is done in PyTorch: the batch's
prompts left-padded and prefilled in one forward pass (the padding masked out of the
attention), then one (BATCH, 1) step per token, each writing its keys and values into
caches of (BATCH, NKV, T, hd) allocated before the first step. Random weights: every
sequence runs to NEW tokens (no eos), as on lethe's side. One untimed run, then one
timed run; prints one JSON line like lethe's."""
import json
import math
import sys
import time

import torch


def rope_tables(T, hd, theta):
    inv = 1.0 / (theta ** (torch.arange(0, hd, 2).float() / hd))
    f = torch.outer(torch.arange(T).float(), inv)
    emb = torch.cat((f, f), dim=-1)
    return emb.cos(), emb.sin()  # (T, hd)


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class Model:
    def __init__(self, V, C, L, NH, NKV, F, T):
        g = torch.Generator().manual_seed(7)
        r = lambda *s: torch.randn(*s, generator=g) * 0.02
        self.V, self.C, self.L, self.NH, self.NKV = V, C, L, NH, NKV
        self.hd = C // NH
        self.emb, self.head, self.norm = r(V, C), r(V, C), torch.ones(C)
        hd = self.hd
        self.layers = [dict(ln1=torch.ones(C), ln2=torch.ones(C), wq=r(NH * hd, C),
                            wk=r(NKV * hd, C), wv=r(NKV * hd, C), wo=r(C, NH * hd),
                            wg=r(F, C), wu=r(F, C), wd=r(C, F)) for _ in range(L)]
        self.cos, self.sin = rope_tables(T, hd, 10000.0)

    @staticmethod
    def rmsnorm(x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * w

    def forward(self, tok, pos, c0, kc, vc, keymask):
        """tok, pos (B, S) at cache columns c0..c0+S; keymask (B, c0+S) True where a key
        is real; returns the last position's logits (B, V)."""
        B, S = tok.shape
        NH, NKV, hd = self.NH, self.NKV, self.hd
        grp = NH // NKV
        cos, sin = self.cos[pos].unsqueeze(1), self.sin[pos].unsqueeze(1)  # (B, 1, S, hd)
        n = c0 + S
        causal = torch.ones(S, n, dtype=torch.bool).tril(diagonal=c0)
        own = torch.zeros(S, n, dtype=torch.bool)
        own[torch.arange(S), c0 + torch.arange(S)] = True  # a padding query sees itself: no NaN
        allowed = (causal.unsqueeze(0) & keymask[:, None, :n] | own).view(B, 1, 1, S, n)
        x = self.emb[tok]
        for l, w in enumerate(self.layers):
            h = self.rmsnorm(x, w["ln1"])
            q = (h @ w["wq"].T).view(B, S, NH, hd).transpose(1, 2)
            k = (h @ w["wk"].T).view(B, S, NKV, hd).transpose(1, 2)
            v = (h @ w["wv"].T).view(B, S, NKV, hd).transpose(1, 2)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            kc[l][:, :, c0:n] = k
            vc[l][:, :, c0:n] = v
            qg = q.view(B, NKV, grp, S, hd)  # query head j reads kv head j // grp
            att = (qg @ kc[l][:, :, None, :n].transpose(-1, -2)) / math.sqrt(hd)
            att = torch.softmax(att.masked_fill(~allowed, float("-inf")), dim=-1)
            o = (att @ vc[l][:, :, None, :n]).reshape(B, NH, S, hd).transpose(1, 2)
            x = x + o.reshape(B, S, NH * hd) @ w["wo"].T
            h = self.rmsnorm(x, w["ln2"])
            x = x + (torch.nn.functional.silu(h @ w["wg"].T) * (h @ w["wu"].T)) @ w["wd"].T
        return self.rmsnorm(x[:, -1], self.norm) @ self.head.T


def generate(m, prompts, new, kc, vc):
    B, P = len(prompts), max(len(p) for p in prompts)
    tok = torch.zeros(B, P, dtype=torch.long)
    keymask = torch.zeros(B, P + new, dtype=torch.bool)
    pos = torch.zeros(B, P, dtype=torch.long)
    for b, p in enumerate(prompts):  # left-padded
        tok[b, P - len(p):] = torch.tensor(p)
        keymask[b, P - len(p):] = True
        pos[b, P - len(p):] = torch.arange(len(p))
    lens = torch.tensor([len(p) for p in prompts])
    nxt = m.forward(tok, pos, 0, kc, vc, keymask).argmax(-1)
    out = [nxt]
    for s in range(new - 1):
        nxt = m.forward(nxt[:, None], (lens + s)[:, None], P + s, kc, vc, keymask).argmax(-1)
        out.append(nxt)
    return torch.stack(out, 1)


def main():
    a = [int(v) for v in sys.argv[1:]]
    if len(a) != 11:
        raise SystemExit("usage: bench_generate.py THREADS V C L NH NKV F T BATCH PROMPTS NEW")
    threads, V, C, L, NH, NKV, F, T, batch, nprompt, new = a
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)
    m = Model(V, C, L, NH, NKV, F, T)
    g = torch.Generator().manual_seed(12345)
    prompts = [torch.randint(0, V, (8 + (5 * i) % 9,), generator=g).tolist()
               for i in range(nprompt)]
    hd = C // NH
    kc = [torch.zeros(batch, NKV, T, hd) for _ in range(L)]
    vc = [torch.zeros(batch, NKV, T, hd) for _ in range(L)]
    with torch.inference_mode():
        for run in range(2):
            t0 = time.perf_counter()
            tokens = 0
            for i in range(0, nprompt, batch):
                chunk = prompts[i:i + batch]
                n = len(chunk)
                tokens += generate(m, chunk, new, [k[:n] for k in kc], [v[:n] for v in vc]).numel()
            sec = time.perf_counter() - t0
    print(json.dumps({"side": "pytorch", "threads": threads, "batch": batch, "tokens": tokens,
                      "seconds": round(sec, 6), "tokens_per_s": round(tokens / sec, 2)}))


if __name__ == "__main__":
    main()
