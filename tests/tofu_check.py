#!/usr/bin/env python3
"""tests/tofu_check.py OUT.h5 DIR T — checks `lethe prepare --tofu DIR --seq-len T`
(byte tokenizer, the default prompt "[INST] {q} [/INST]" and answer prefix " ") against
this script's own reading of the TOFU files in DIR (json, hashlib; the HDF5 file is read
with h5dump, so no h5py is needed).

For every split of the mapping (io/DATASETS.md "TOFU"): the split exists exactly when its
file does; rows = records of the file; every row's input_ids, lengths, answer_start and
sample_id (0..N-1) equal the UTF-8 bytes computed here (ids 0-255 bytes, pad 256, eos
257); eval splits: K and every paraphrased / perturbed candidate (real authors and world
facts: the answer is the paraphrased candidate); IdK splits: the forget questions with
idk[fnv1a64(question) % n] as answers; /idk = the phrases of idk.jsonl (stripped, blank
lines skipped); attributes benchmark, tokenizer, vocab_size, pad_id, eos_id, each
split's source and source_digest, the root source_digest. Prints one line per split and
exits 1 on the first difference list (all differences printed)."""
import hashlib
import json
import os
import re
import subprocess
import sys

MAP = [  # file, split, kind (qa | para | util)
    ("forget01.json", "forget01", "qa"), ("forget05.json", "forget05", "qa"),
    ("forget10.json", "forget10", "qa"), ("retain99.json", "retain99", "qa"),
    ("retain95.json", "retain95", "qa"), ("retain90.json", "retain90", "qa"),
    ("full.json", "full", "qa"), ("holdout01.json", "holdout01", "qa"),
    ("holdout05.json", "holdout05", "qa"), ("holdout10.json", "holdout10", "qa"),
    ("forget01_perturbed.json", "eval/forget01_perturbed", "para"),
    ("forget05_perturbed.json", "eval/forget05_perturbed", "para"),
    ("forget10_perturbed.json", "eval/forget10_perturbed", "para"),
    ("retain_perturbed.json", "eval/retain_perturbed", "para"),
    ("real_authors_perturbed.json", "eval/real_authors", "util"),
    ("world_facts_perturbed.json", "eval/world_facts", "util"),
]
PAD, EOS = 256, 257
bad = []


def h5dump(h5, *args):
    r = subprocess.run(["h5dump", "-y", "-w", "0", *args, h5], capture_output=True)
    if r.returncode != 0:
        return None
    return r.stdout.decode("latin-1")


def ints(h5, ds):
    out = h5dump(h5, "-d", ds)
    if out is None:
        return None
    body = out[out.index("DATA {") + 6:]
    body = body[:body.index("}")]
    return [int(x) for x in re.split(r"[,\s]+", body) if x]


def unescape(s):
    """h5dump's string: \\NNN octal of a sign-extended byte, \\" and \\\\."""
    out, i = bytearray(), 0
    while i < len(s):
        if s[i] == "\\" and s[i + 1].isdigit():
            m = re.match(r"\\(\d+)", s[i:])
            out.append(int(m.group(1), 8) & 0xFF)
            i += len(m.group(0))
        elif s[i] == "\\":
            out.append(ord(s[i + 1]))
            i += 2
        else:
            out += s[i].encode("latin-1")
            i += 1
    return out.decode("utf-8")


def strings(out):
    """The strings after DATA { up to its closing brace (attributes follow it)."""
    body, got = out[out.index("DATA {") + 6:], []
    item = re.compile(r'\s*(?:\(\d+\):\s*)?"((?:[^"\\]|\\.)*)"\s*,?')
    m = item.match(body)
    while m:
        got.append(unescape(m.group(1)))
        body = body[m.end():]
        m = item.match(body)
    return got


def attr(h5, obj, name):
    out = h5dump(h5, "-a", f"{obj}/{name}" if obj != "/" else f"/{name}")
    if out is None:
        return None
    s = strings(out)
    if s:
        return s[0]
    body = out[out.index("DATA {") + 6:]
    return int(re.search(r"-?\d+", body.replace("(0):", "")).group(0))


def records(path):
    text = open(path, encoding="utf-8").read()
    if text.lstrip().startswith("["):
        return json.loads(text)
    return [json.loads(l) for l in text.split("\n") if l.strip()]


def row(q, a, T):
    p = f"[INST] {q} [/INST]".encode()
    seq = (list(p) + list((" " + a).encode()) + [EOS])[:T]
    return seq + [PAD] * (T - len(seq)), len(seq), len(p)


def fnv1a(s):
    h = 1469598103934665603
    for c in s.encode():
        h = ((h ^ c) * 1099511628211) % (1 << 64)
    return h


def check_rows(h5, g, prefix, want, T, n, k=None):
    """want: list over rows (or over rows x k) of (ids, length, answer_start); prefix ""
    (input_ids, lengths, answer_start), "paraphrased_" or "perturbed_"."""
    ids = ints(h5, f"{g}/{prefix or 'input_'}ids")
    ln, st = ints(h5, f"{g}/{prefix}lengths"), ints(h5, f"{g}/{prefix}answer_start")
    if ids is None or ln is None or st is None:
        bad.append(f"{g}: no {prefix}ids/lengths/answer_start")
        return
    if len(ln) != len(want) or len(ids) != len(want) * T:
        bad.append(f"{g}/{prefix}ids: {len(ln)} sequences, expected {len(want)}")
        return
    for i, (w, wl, ws) in enumerate(want):
        where = f"{g}/{prefix}ids row {i // k if k else i}" + (f" candidate {i % k}" if k else "")
        if ids[i * T:(i + 1) * T] != w:
            bad.append(f"{where}: ids differ")
        if ln[i] != wl or st[i] != ws:
            bad.append(f"{where}: length/answer_start {ln[i]}/{st[i]}, expected {wl}/{ws}")


def check_split(h5, d, split, recs, kind, T, src, digest, idk=None):
    g = "/" + split
    n = len(recs)
    sid = ints(h5, f"{g}/sample_id")
    if sid != list(range(n)):
        bad.append(f"{g}: sample_id {sid}, expected 0..{n - 1}")
        return
    answers = [r["answer"] for r in recs] if idk is None else \
        [idk[fnv1a(r["question"]) % len(idk)] for r in recs]
    check_rows(h5, g, "", [row(r["question"], a, T) for r, a in zip(recs, answers)], T, n)
    k = 0
    if kind != "qa":
        k = len(recs[0]["perturbed_answer"])
        para = [r["paraphrased_answer"] if kind == "para" else r["answer"] for r in recs]
        check_rows(h5, g, "paraphrased_", [row(r["question"], p, T) for r, p in zip(recs, para)],
                   T, n)
        check_rows(h5, g, "perturbed_",
                   [row(r["question"], p, T) for r in recs for p in r["perturbed_answer"]], T, n, k)
    elif h5dump(h5, "-d", f"{g}/perturbed_ids") is not None:
        bad.append(f"{g}: has perturbed_ids, expected none")
    if attr(h5, g, "source") != src:
        bad.append(f"{g}: source {attr(h5, g, 'source')!r}, expected {src!r}")
    if attr(h5, g, "source_digest") != digest:
        bad.append(f"{g}: source_digest differs")
    print(f"{g}: {n} rows, K={k}{' (IdK)' if idk is not None else ''}")


def main():
    h5, d, T = sys.argv[1], sys.argv[2].rstrip("/"), int(sys.argv[3])
    listing = subprocess.run(["h5ls", "-r", h5], capture_output=True, text=True).stdout
    groups = sorted(m for m in re.findall(r"^(\S+)\s+Group", listing, re.M)
                    if m not in ("/", "/eval", "/tokenizer"))
    idk = None
    idk_path = os.path.join(d, "idk.jsonl")
    if os.path.exists(idk_path):
        lines = open(idk_path, encoding="utf-8").read().split("\n")
        idk = [s.strip(" \t\r") for s in lines if s.strip(" \t\r")]
    want_groups, allbytes = [], b""
    forget = {}
    for f, split, kind in MAP:
        p = os.path.join(d, f)
        if not os.path.exists(p):
            continue
        raw = open(p, "rb").read()
        allbytes += raw
        want_groups.append("/" + split)
        recs = records(p)
        digest = "sha256:" + hashlib.sha256(raw).hexdigest()
        check_split(h5, d, split, recs, kind, T, p, digest)
        if split.startswith("forget"):
            forget[split] = (recs, p, digest)
    if idk is not None:
        allbytes += open(idk_path, "rb").read()
        for split, (recs, p, digest) in forget.items():
            want_groups.append(f"/{split}_idk")
            check_split(h5, d, split + "_idk", recs, "qa", T, p, digest, idk)
        got = strings(h5dump(h5, "-d", "/idk") or "DATA {}")
        if got != idk:
            bad.append(f"/idk: {got!r}, expected {idk!r}")
        print(f"/idk: {len(got)} phrases")
    if groups != sorted(want_groups):
        bad.append(f"splits {groups}, expected {sorted(want_groups)}")
    for name, want in [("benchmark", "tofu"), ("tokenizer", "byte"), ("vocab_size", 258),
                       ("pad_id", PAD), ("eos_id", EOS), ("seq_len", T),
                       ("source_digest", "sha256:" + hashlib.sha256(allbytes).hexdigest())]:
        got = attr(h5, "/", name)
        if got != want:
            bad.append(f"root attribute {name}: {got!r}, expected {want!r}")
    for b in bad:
        print("FAIL:", b)
    print(f"tofu_check: {len(want_groups)} splits, {len(bad)} differences")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
