#!/usr/bin/python3
"""tests/muse_check.py — `lethe prepare --muse` and MUSE's metrics in `lethe eval`,
against this script's own reading of the MUSE files and its own formulas (json,
hashlib, h5py, numpy; nothing of lethe's code).

    muse_check.py prepare OUT.h5 DIR T
        Every split of the mapping (io/DATASETS.md "MUSE") exists exactly when its file
        does; its rows are the file's records (text splits: the text's UTF-8 bytes + EOS
        in windows of T, windows under 2 tokens dropped); every row's input_ids,
        lengths, answer_start and sample_id equal the bytes computed here (byte
        tokenizer: ids 0-255, pad 256, eos 257) from the reference's prompts: verbmem
        prompt | gt; the few-shot prefix "Question: q\\nAnswer: a\\n\\n" of the ICL file
        then "Question: q\\nAnswer: " | answer; "" | privleak text. Attributes: benchmark,
        source, source_records, source_digest (SHA-256), icl_source, icl_records,
        icl_prompt, the root source_digest over the files in the table's order.
    muse_check.py eval DIR OUT.h5 EVALDIR [REFDIR] [--weights W.safetensors CONFIG.json]
        From eval.h5's generations (gen_ids, gen_len) and Min-K% column and the ORIGINAL
        strings of DIR: per sample, ROUGE-L F1 (rouge_score's tokenizer, no stemming) of
        the decoded generation (KnowMem: cut before "\\n\\n", "\\nQuestion", "Question:")
        against the answer, or the gt's first 128 tokens (VerbMem); their means x 100
        (verbmem_f, knowmem_f, knowmem_r); the forget-vs-holdout AUC (label 1 holdout,
        score = Min-K%, ties 1/2, by enumerating pairs); with REFDIR the retrained model's AUC from its eval.h5 and
        privleak = (auc - auc_r) / auc_r x 100. Each must match summary.json and eval.h5 to
        1e-6 (absolute, on values of order 1..100). With --weights (the evaluated model
        exported by lethe convert, CONFIG.json its lethe config), the privleak rows of
        OUT.h5 go through tests/torch_hf.py's Llama (written from the definition, float64)
        and this script's Min-K% (m = int(0.4 n) lowest log-probabilities of the text's
        tokens, EOS excluded): each must match eval.h5's mink to 2e-5 (lethe runs in
        float32), and the AUC from these scores must equal summary.json's to 1e-6.
Prints one line per check; exit 1 on any difference (all listed)."""
import hashlib
import json
import math
import os
import re
import sys

PAD, EOS = 256, 257
OUT_H5 = None
TOL = 1e-6
bad = []

# file, split, kind (text | priv | verb | know), icl file
MAP = [("raw/forget.json", "forget", "text"), ("raw/retain1.json", "retain1", "text"),
       ("raw/retain2.json", "retain2", "text"), ("raw/holdout.json", "holdout", "text")]
MAP += [(f"{c}/forget_{i}.json", f"{c}/forget_{i}", "text") for c in ("scal", "sust")
        for i in range(1, 5)]
MAP += [("verbmem/forget.json", "eval/verbmem_forget", "verb"),
        ("knowmem/forget_qa.json", "eval/knowmem_forget", "know"),
        ("knowmem/retain_qa.json", "eval/knowmem_retain", "know"),
        ("knowmem/retain2_qa.json", "eval/knowmem_retain", "know"),
        ("privleak/forget.json", "eval/privleak_forget", "priv"),
        ("privleak/retain.json", "eval/privleak_retain", "priv"),
        ("privleak/retain2.json", "eval/privleak_retain", "priv"),
        ("privleak/holdout.json", "eval/privleak_holdout", "priv")]


def records(path):
    """A JSON array of records, or JSON lines (blank lines skipped)."""
    with open(path, encoding="utf-8") as f:
        s = f.read()
    if s.lstrip().startswith("["):
        return json.loads(s)
    return [json.loads(line) for line in s.split("\n") if line.strip()]


def icl_of(path):
    return path[:-len(".json")] + "_icl.json"


def prefix(icl):
    return "".join(f"Question: {r['question']}\nAnswer: {r['answer']}\n\n" for r in records(icl))


def rows_of(path, kind, T):
    """[(ids, answer_start)] as prepare must make them."""
    out = []
    pre = prefix(icl_of(path)) if kind == "know" else ""
    for r in records(path):
        if kind == "text":
            ids = list((r if isinstance(r, str) else r["text"]).encode()) + [EOS]
            out += [(ids[i:i + T], 0) for i in range(0, len(ids), T) if len(ids[i:i + T]) >= 2]
            continue
        if kind == "priv":
            p, a = "", (r if isinstance(r, str) else r["text"])
        elif kind == "verb":
            p, a = r["prompt"], r["gt"]
        else:
            p, a = pre + f"Question: {r['question']}\nAnswer: ", r["answer"]
        ids = (list(p.encode()) + list(a.encode()) + [EOS])[:T]
        out.append((ids, len(p.encode())))
    return out


def sha(path):
    with open(path, "rb") as f:
        return f.read()


def attr(obj, name):
    v = obj.attrs[name]
    return v.decode() if isinstance(v, bytes) else (v.item() if hasattr(v, "item") else v)


def check_prepare(h5path, d, T):
    import h5py
    f = h5py.File(h5path, "r")
    whole = hashlib.sha256()
    made = set()
    for file, split, kind in MAP:
        path = os.path.join(d, file)
        if not os.path.exists(path):
            continue
        if split in made:
            bad.append(f"{split}: two files")
            continue
        made.add(split)
        if split not in f:
            bad.append(f"{split}: missing though '{file}' is there")
            continue
        g = f[split]
        want = rows_of(path, kind, T)
        ids, lens, ans, sid = (g["input_ids"][()], g["lengths"][()], g["answer_start"][()],
                               g["sample_id"][()])
        if len(want) != len(lens):
            bad.append(f"{split}: {len(lens)} rows, the file makes {len(want)}")
            continue
        for i, (w, a) in enumerate(want):
            row = list(ids[i][:lens[i]])
            if row != w or ans[i] != a or sid[i] != i or any(ids[i][lens[i]:] != PAD):
                bad.append(f"{split} row {i}: ids/length/answer_start/sample_id differ")
        one = sha(path)
        whole.update(one)
        if attr(g, "source") != path or attr(g, "source_digest") != \
                "sha256:" + hashlib.sha256(one).hexdigest():
            bad.append(f"{split}: source or source_digest")
        if attr(g, "source_records") != len(records(path)):
            bad.append(f"{split}: source_records {attr(g, 'source_records')}")
        if kind == "know":
            icl = icl_of(path)
            whole.update(sha(icl))
            if attr(g, "icl_prompt") != prefix(icl) or attr(g, "icl_source") != icl or \
                    attr(g, "icl_records") != len(records(icl)):
                bad.append(f"{split}: icl_prompt / icl_source / icl_records")
        print(f"muse_check: {split}: {len(want)} rows from {file}")
    for name in f:  # nothing but the mapping's splits
        for sub in ([name] if "input_ids" in f[name] else [f"{name}/{k}" for k in f[name]]):
            if sub not in made:
                bad.append(f"unexpected split {sub}")
    if attr(f, "benchmark") != "muse" or attr(f, "source_digest") != \
            "sha256:" + whole.hexdigest():
        bad.append("root benchmark or source_digest")


# ---- metrics, from the formulas ----------------------------------------------------

def rouge_words(text):
    text = re.sub(r"[^a-z0-9]+", " ", text.lower())
    return [w for w in re.split(r"\s+", text) if re.match(r"^[a-z0-9]+$", w)]


def lcs(a, b):
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l_f1(target, prediction):
    t, p = rouge_words(target), rouge_words(prediction)
    if not t or not p:
        return 0.0
    m = lcs(t, p)
    prec, rec = m / len(p), m / len(t)
    return 0.0 if prec + rec == 0 else 2 * prec * rec / (prec + rec)


def cut(s):
    for w in ["\n\n", "\nQuestion", "Question:"]:
        s = s.split(w)[0]
    return s


def auc(forget, holdout):
    s = sum(1.0 if h > f else 0.5 if h == f else 0.0 for h in holdout for f in forget)
    return s / (len(forget) * len(holdout))


def close(name, got, want):
    ok = (got is None and want is None) or (
        got is not None and want is not None and abs(got - want) <= TOL)
    print(f"muse_check: {name}: lethe {got} reference {want}{'' if ok else '  <-- DIFFERS'}")
    if not ok:
        bad.append(name)


def torch_mink(h5path, weights, config, k):
    """Min-K% of every row of the privleak forget and holdout splits, by PyTorch."""
    import h5py
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import torch
    from torch_hf import reference, st_read, to_f64
    m = json.load(open(config))["model"]
    hd = m["dim"] // m["n_heads"]
    c = {"num_attention_heads": m["n_heads"], "num_key_value_heads": m["n_kv_heads"],
         "head_dim": hd, "rms_norm_eps": m.get("norm_eps", 1e-5),
         "num_hidden_layers": m["n_layers"], "rope_theta": m.get("rope_theta", 10000.0),
         "rope_scaling": None}
    w = {n: to_f64(*v) for n, v in st_read(weights).items()}
    f = h5py.File(h5path, "r")
    out = {}
    for split in ("eval/privleak_forget", "eval/privleak_holdout"):
        g = f[split]
        ids, lens, ans = g["input_ids"][()], g["lengths"][()], g["answer_start"][()]
        logp = reference(c, w, torch.tensor(ids.astype("int64")))
        logp = logp.reshape(ids.shape[0], ids.shape[1], -1)
        scores = []
        for i in range(ids.shape[0]):
            L = int(lens[i]) - (1 if ids[i][lens[i] - 1] == EOS else 0)
            lp = [float(logp[i, t, ids[i][t + 1]]) for t in range(L - 1) if t + 1 >= ans[i]]
            n = int(len(lp) * (k / 100))
            scores.append(sum(sorted(lp)[:n]) / n)
        out[split] = scores
    return out


def check_eval(d, evaldir, refdir, weights=None, config=None):
    import h5py
    summ = json.load(open(os.path.join(evaldir, "summary.json")))
    e = h5py.File(os.path.join(evaldir, "eval.h5"), "r")
    truth = {"verbmem_f": ("eval_verbmem_forget", [r["gt"] for r in records(
                 os.path.join(d, "verbmem/forget.json"))], False),
             "knowmem_f": ("eval_knowmem_forget", [r["answer"] for r in records(
                 os.path.join(d, "knowmem/forget_qa.json"))], True),
             "knowmem_r": ("eval_knowmem_retain", [r["answer"] for r in records(
                 os.path.join(d, "knowmem/retain_qa.json"))], True)}
    for key, (grp, gts, stop) in truth.items():
        g = e[grp]
        gen, glen = g["gen_ids"][()], g["gen_len"][()]
        f1 = []
        for i, gt in enumerate(gts):
            out = bytes(int(x) for x in gen[i][:glen[i]]).decode("utf-8", errors="replace")
            if not stop:  # VerbMem: the reference's gt_ids[:, :max_new_tokens]
                gt = gt.encode()[:128].decode("utf-8", errors="replace")
            f1.append(rouge_l_f1(gt, cut(out) if stop else out))
            close(f"{grp}[{i}].rouge_f1", float(g["rouge_f1"][i]), f1[-1])
        close(f"muse.{key}", summ["muse"][key], 100.0 * sum(f1) / len(f1))
    mf, mh = e["eval_privleak_forget/mink"][()], e["eval_privleak_holdout/mink"][()]
    a = auc(list(mf), list(mh))
    if weights:
        ref = torch_mink(OUT_H5, weights, config, summ["muse"]["min_k"])
        for split, got in (("eval/privleak_forget", mf), ("eval/privleak_holdout", mh)):
            for i, (x, y) in enumerate(zip(got, ref[split])):
                if abs(x - y) > 2e-5:
                    bad.append(f"{split}[{i}].mink: lethe {x} PyTorch {y}")
            print(f"muse_check: {split}: mink of {len(got)} texts as PyTorch's "
                  f"(max |diff| {max(abs(x - y) for x, y in zip(got, ref[split])):.2e})")
        close("muse.auc (PyTorch Min-K%)", summ["muse"]["auc"],
              auc(ref["eval/privleak_forget"], ref["eval/privleak_holdout"]))
    close("muse.auc", summ["muse"]["auc"], a)
    if refdir:
        r = h5py.File(os.path.join(refdir, "eval.h5"), "r")
        ar = auc(list(r["eval_privleak_forget/mink"][()]), list(r["eval_privleak_holdout/mink"][()]))
        close("muse.auc_retrain", summ["muse"]["auc_retrain"], ar)
        close("muse.privleak", summ["muse"]["privleak"], (a - ar) / ar * 100.0)
    else:
        close("muse.privleak", summ["muse"]["privleak"], None)


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "prepare":
        check_prepare(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif len(sys.argv) >= 5 and sys.argv[1] == "eval":
        global OUT_H5
        args, weights, config = sys.argv[2:], None, None
        if "--weights" in args:
            i = args.index("--weights")
            weights, config = args[i + 1], args[i + 2]
            del args[i:i + 3]
        OUT_H5 = args[1]
        check_eval(args[0], args[2], args[3] if len(args) > 3 and args[3] else None, weights,
                   config)
    else:
        print(__doc__)
        sys.exit(2)
    for b in bad:
        print(f"muse_check: FAIL: {b}")
    print(f"muse_check: {'FAIL' if bad else 'ok'}: {len(bad)} differences")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
