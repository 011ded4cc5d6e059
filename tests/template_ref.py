#!/usr/bin/env python3
"""tests/template_ref.py — an independent reference for `lethe prepare --template`.

Renders each qa record of the inputs as a string the way the model's own tooling does
(Llama-3: the chat template's rules rendered with jinja2 when installed, else in plain
Python — bos, system header with the
knowledge and pinned dates, `| trim` of each message, <|eot_id|> after each turn;
Llama-2-chat and base models: open-unlearning's template_args strings, bos from the
tokenizer, eos appended), splits the string at the special-token strings, encodes the
plain text with a reference tokenizer (byte: UTF-8 bytes; gpt2: the npm package
gpt-3-encoder, run by node; llama3, llama2: the npm packages llama3-tokenizer-js and
llama-tokenizer-js through tests/template_llama_enc.mjs, eos and pad named by the model
directory's tokenizer_config.json, pad = eos when it names none) and the specials as
their ids in the vocabulary, and takes
answer_start as the longest common prefix of the prompt's ids and the row's. Then reads
the prepared file with h5dump and compares every row (ids with padding, lengths,
answer_start; paraphrased and perturbed candidates) and the attributes template,
system_prompt, template_date and prompt_merged. Text put in by a placeholder (question,
answer, system prompt, date) is plain text even when it holds a special string (lethe's
rule; Hugging Face's tokenizer(rendered string) would make it the special token).

usage: template_ref.py H5 TEMPLATE SEQ_LEN TOKENIZER [--encoder enc.json] [--node-pkg DIR]
                       [--model-dir DIR] [--system S] [--date D] [--show N] SPLIT=JSONL...
TOKENIZER: byte | gpt2 (--encoder, --node-pkg) | llama3, llama2 (--node-pkg: the npm
reference package; --model-dir: the model directory given to lethe, for its
tokenizer_config.json). --show N prints the first N rows' ids of each split.
TEMPLATE: llama2-chat | llama3-chat | question-answer | a template JSON file.
Prints one line per mismatch and exits 1 on any, 0 when every value agrees.
"""
import argparse
import json
import os
import re
import subprocess
import sys

try:
    import jinja2
except ImportError:  # the same rules in plain Python (llama3_plain)
    jinja2 = None

# The Llama-3.1 Instruct chat template's rules for plain (tool-less) chats.
LLAMA3_JINJA = (
    "{{- bos_token }}"
    "{%- if messages[0]['role'] == 'system' %}"
    "{%- set system_message = messages[0]['content']|trim %}{%- set messages = messages[1:] %}"
    "{%- else %}{%- set system_message = '' %}{%- endif %}"
    "{{- '<|start_header_id|>system<|end_header_id|>\\n\\n' }}"
    "{{- 'Cutting Knowledge Date: December 2023\\n' }}"
    "{{- 'Today Date: ' + date_string + '\\n\\n' }}"
    "{{- system_message }}{{- '<|eot_id|>' }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + "
    "message['content'] | trim + '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{%- endif %}"
)


def llama3_plain(messages, bos_token, date_string, add_generation_prompt):
    """LLAMA3_JINJA's rules without jinja2 (str.strip is Jinja's trim)."""
    system = ""
    if messages[0]["role"] == "system":
        system, messages = messages[0]["content"].strip(), messages[1:]
    s = bos_token + "<|start_header_id|>system<|end_header_id|>\n\n"
    s += "Cutting Knowledge Date: December 2023\n" + "Today Date: " + date_string + "\n\n"
    s += system + "<|eot_id|>"
    for m in messages:
        s += "<|start_header_id|>" + m["role"] + "<|end_header_id|>\n\n"
        s += m["content"].strip() + "<|eot_id|>"
    if add_generation_prompt:
        s += "<|start_header_id|>assistant<|end_header_id|>\n\n"
    return s


LLAMA3_SPECIALS = ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
EOS = "\0EOS\0"  # stands for the tokenizer's eos id in a rendered string
# Placeholder text is rendered with '<' as PROTECT so that no special string is met in it;
# pieces() puts the '<' back in the text pieces.
PROTECT = "\ue000"


def protect(s):
    return None if s is None else s.replace("<", PROTECT)


# The BOS that Hugging Face's tokenizer(text, add_special_tokens=True) puts first, by
# tokenizer: Llama-3's post-processor and Llama-2's add_bos_token; GPT-2 and bytes add none.
BOS_OF = {"llama3": "<|begin_of_text|>", "llama2": "<s>"}


def renderer(name, system, date, kind):
    """(render(q, a or None) -> string, special strings, system, date) for a template;
    the placeholders' text protected (PROTECT)."""
    if name == "llama2-chat":  # bos + user tags, no space before the answer, eos appended
        def r(q, a):
            q, a = protect(q), protect(a)
            return "<s>" + "[INST] " + q + " [/INST]" + ("" if a is None else a + "</s>")
        return r, ["<s>", "</s>"], "", ""
    if name == "llama3-chat":
        system = "You are a helpful assistant." if system is None else system
        date = "10 Apr 2025" if date is None else date
        render_chat = jinja2.Environment().from_string(LLAMA3_JINJA).render if jinja2 else \
            (lambda **kw: llama3_plain(**kw))

        def r(q, a):
            chat = [{"role": "system", "content": system}, {"role": "user", "content": q}]
            if a is not None:
                chat.append({"role": "assistant", "content": a})
            chat = [dict(m, content=protect(m["content"])) for m in chat]
            return render_chat(messages=chat, bos_token="<|begin_of_text|>",
                               date_string=protect(date), add_generation_prompt=a is None)
        return r, LLAMA3_SPECIALS, system, date
    if name == "question-answer":
        # open-unlearning, apply_chat_template False: user_start_tag "Question: ", user_end_tag
        # "\n", asst_start_tag "Answer: ", tokenized with add_special_tokens=True (the
        # tokenizer's BOS first), eos appended
        bos = BOS_OF.get(kind, "")

        def r(q, a):
            q, a = protect(q), protect(a)
            return bos + "Question: " + q + "\n" + "Answer: " + ("" if a is None else a + EOS)
        return r, [bos] if bos else [], "", ""
    spec = json.load(open(name, encoding="utf-8"))
    system = spec.get("system_prompt") if system is None else system
    date = spec.get("date") if date is None else date
    strip = (lambda s: s.strip(" \t\n\r\f\v")) if spec.get("trim") else (lambda s: s)

    def r(q, a):
        q, a = protect(q), protect(a)
        s = spec["prompt"] + ("" if a is None else spec["answer"])
        s = s.replace("{system}", strip(protect(system or ""))).replace("{date}",
                                                                         protect(date or ""))
        s = s.replace("{eos}", EOS).replace("{q}", strip(q))
        return s if a is None else s.replace("{a}", strip(a))
    return r, spec.get("special", []), system or "", date or ""


def config_piece(cfg, key):
    """tokenizer_config.json's "eos_token": "</s>" or {"content": "</s>", ...}; None."""
    v = cfg.get(key)
    return v.get("content") if isinstance(v, dict) else v


class Encoder:
    def __init__(self, kind, encoder_json, node_pkg, model_dir):
        self.kind, self.cache = kind, {}
        self.node_pkg = os.path.abspath(node_pkg) if node_pkg else None
        if kind == "byte":
            self.vocab, self.eos, self.pad = {}, 257, 256
        elif kind == "gpt2":
            self.vocab = json.load(open(encoder_json, encoding="utf-8"))
            self.eos = self.pad = self.vocab["<|endoftext|>"]
        else:  # llama3, llama2: ids of the special strings from the package (prefetch)
            cfg = json.load(open(os.path.join(model_dir, "tokenizer_config.json"),
                                 encoding="utf-8"))
            self.eos_s = config_piece(cfg, "eos_token")
            self.pad_s = config_piece(cfg, "pad_token") or self.eos_s
            self.vocab = {}

    def prefetch(self, texts, specials):
        """Encodes all plain-text pieces in one node run (gpt2, llama3, llama2)."""
        todo = sorted({t for t in texts if t not in self.cache})
        if self.kind == "byte":
            return
        if self.kind == "gpt2":
            js = ("const enc = require(process.argv[1] + '/index.js');"
                  "const t = JSON.parse(require('fs').readFileSync(0, 'utf-8'));"
                  "process.stdout.write(JSON.stringify(t.map(s => enc.encode(s))));")
            out = subprocess.run(["node", "-e", js, self.node_pkg], input=json.dumps(todo),
                                 capture_output=True, text=True, check=True).stdout
            self.cache.update(zip(todo, json.loads(out)))
            return
        mjs = os.path.join(os.path.dirname(os.path.abspath(__file__)), "template_llama_enc.mjs")
        req = {"texts": todo, "specials": sorted(set(specials + [self.eos_s, self.pad_s]))}
        out = json.loads(subprocess.run(["node", mjs, self.kind, self.node_pkg],
                                        input=json.dumps(req), capture_output=True, text=True,
                                        check=True).stdout)
        self.cache.update(zip(todo, out["ids"]))
        self.vocab = out["specials"]
        self.eos, self.pad = self.vocab[self.eos_s], self.vocab[self.pad_s]

    def text(self, s):
        return list(s.encode("utf-8")) if self.kind == "byte" else self.cache[s]


def pieces(s, specials):
    """s split at the special strings and EOS, PROTECT back to '<' in the text pieces."""
    alt = "|".join(re.escape(x) for x in sorted(specials + [EOS], key=len, reverse=True))
    return [p if p == EOS or p in specials else p.replace(PROTECT, "<")
            for p in re.split("(" + alt + ")", s) if p]


def encode(enc, s, specials):
    ids = []
    for p in pieces(s, specials):
        if p == EOS:
            ids.append(enc.eos)
        elif p in specials:
            ids.append(enc.vocab[p])
        else:
            ids += enc.text(p)
    return ids


def first_diff(got, want, width):
    """Where two flat lists of rows of `width` values first differ."""
    if got is None or len(got) != len(want):
        return f"got {None if got is None else len(got)} values, expected {len(want)}"
    i = next(i for i in range(len(want)) if got[i] != want[i])
    r = i // width
    return f"row {r} differs: got {got[r * width:(r + 1) * width]}, " \
           f"expected {want[r * width:(r + 1) * width]}"


def h5_ints(h5, path):
    out = subprocess.run(["h5dump", "-d", path, "-y", "-w", "0", h5], capture_output=True,
                         text=True).stdout
    m = re.search(r"DATA \{(.*?)\}", out, re.S)
    return [int(x) for x in re.findall(r"-?\d+", m.group(1))] if m else None


def h5_attr(h5, obj, name):
    out = subprocess.run(["h5dump", "-a", f"{obj}/{name}", h5], capture_output=True,
                         text=True).stdout
    m = re.search(r"\(0\): (.*)", out)
    return m.group(1).strip() if m else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("h5")
    ap.add_argument("template")
    ap.add_argument("seq_len", type=int)
    ap.add_argument("tokenizer", choices=["byte", "gpt2", "llama3", "llama2"])
    ap.add_argument("--encoder")
    ap.add_argument("--node-pkg")
    ap.add_argument("--model-dir")
    ap.add_argument("--show", type=int, default=0)
    ap.add_argument("--prefix", default="", help="ids (comma-separated) every row starts with")
    ap.add_argument("--system")
    ap.add_argument("--date")
    ap.add_argument("splits", nargs="+")
    a = ap.parse_args()
    render, specials, system, date = renderer(a.template, a.system, a.date, a.tokenizer)
    enc = Encoder(a.tokenizer, a.encoder, a.node_pkg, a.model_dir)
    T, bad = a.seq_len, []

    splits = []
    for sp in a.splits:
        name, path = sp.split("=", 1)
        recs = [json.loads(l) for l in open(path, encoding="utf-8") if l.strip()]
        splits.append((name, recs))
    strings = []
    for _, recs in splits:
        for r in recs:
            cands = [r["answer"], r.get("paraphrased_answer")] + r.get("perturbed_answer", [])
            strings += [render(r["question"], None)]
            strings += [render(r["question"], c) for c in cands if c is not None]
    enc.prefetch([p for s in strings for p in pieces(s, specials) if p != EOS and p not in specials],
                 specials)

    for name, recs in splits:
        sets = [("input_ids", "lengths", "answer_start", "answer", 1),
                ("paraphrased_ids", "paraphrased_lengths", "paraphrased_answer_start",
                 "paraphrased_answer", 1),
                ("perturbed_ids", "perturbed_lengths", "perturbed_answer_start",
                 "perturbed_answer", 0)]
        merged = 0
        for ids_ds, len_ds, as_ds, key, single in sets:
            if key not in recs[0]:
                continue
            want_ids, want_len, want_as, oul = [], [], [], []
            for r in recs:
                prompt = encode(enc, render(r["question"], None), specials)
                for c in ([r[key]] if single else r[key]):
                    row = encode(enc, render(r["question"], c), specials)
                    n = 0
                    while n < min(len(prompt), len(row)) and prompt[n] == row[n]:
                        n += 1
                    merged += n < len(prompt)
                    if n < len(prompt):
                        oul.append(f"{len(want_len)}: {n} (open-unlearning {len(prompt)})")
                    row = row[:T]
                    head = [int(x) for x in a.prefix.split(",") if x]
                    if row[:len(head)] != head:
                        bad.append(f"/{name}/{ids_ds} row {len(want_len)}: the reference starts "
                                   f"{row[:len(head)]}, not {head}")
                    want_ids += row + [enc.pad] * (T - len(row))
                    want_len.append(len(row))
                    want_as.append(n)
            for ds, want in ((ids_ds, want_ids), (len_ds, want_len), (as_ds, want_as)):
                got = h5_ints(a.h5, f"/{name}/{ds}")
                if got != want:
                    bad.append(f"/{name}/{ds}: {first_diff(got, want, T if ds == ids_ds else 1)}")
            print(f"{name}/{ids_ds}: {len(want_len)} rows, {sum(want_len)} ids; answer_start "
                  f"below len(tokens(prompt)) in {len(oul)} rows" + (": " if oul else "") +
                  "; ".join(oul[:4]) + (" ..." if len(oul) > 4 else ""))
            for i in range(min(a.show, len(want_len))):
                print(f"  row {i}: length {want_len[i]}, answer_start {want_as[i]}: "
                      f"{want_ids[i * T:i * T + want_len[i]]}")
        got = h5_attr(a.h5, "/" + name, "prompt_merged")
        if got != str(merged):
            bad.append(f"/{name} prompt_merged: got {got}, expected {merged}")
    tname = a.template if "/" not in a.template else json.load(open(a.template)).get("name", a.template)
    for attr, want in (("template", tname), ("system_prompt", system), ("template_date", date)):
        got = h5_attr(a.h5, "/", attr)
        if got != json.dumps(want):
            bad.append(f"root attribute {attr}: got {got}, expected {json.dumps(want)}")
    for b in bad:
        print("FAIL:", b[:2000])
    print(f"template_ref: {a.template} ({a.tokenizer}): {len(bad)} mismatches")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
