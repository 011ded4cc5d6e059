#!/usr/bin/env python3
"""tests/hostile/gen_inputs.py — writes the generated hostile inputs of tests/hostile.sh.

usage: gen_inputs.py DIR
Standard library only. Writes into DIR:
  tiny.json                        a valid tiny model config (output.dir "out") that the
                                   dataset and convert cases start from; tiny_steps3.json
                                   and tiny_dim32.json differ from it in one key
  st_<case>.safetensors            safetensors files wrong in one way each
  jl_<case>.jsonl                  JSON-lines inputs of `lethe prepare` wrong in one way each
                                   (jl_line_100mb.jsonl: one line of 100 MiB)
  enc_good.json, merges_good.txt   a valid GPT-2 encoder.json / vocab.bpe pair, and
  tok_<case>.{json,txt}            pairs wrong in one way each
  report_inf/, report_link/        study folders for `lethe report`: a copy of
                                   tests/data/report_fixture with 1e400 in one summary, and a
                                   folder whose only entry is a link to / (never followed)
"""
import json
import os
import shutil
import struct
import sys

out = sys.argv[1]
os.makedirs(out, exist_ok=True)


def wr(name, data):
    with open(os.path.join(out, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


# ---- a tiny model --------------------------------------------------------------------
tiny = {
    "model": {"vocab_size": 258, "dim": 16, "n_layers": 1, "n_heads": 2, "n_kv_heads": 2,
              "mlp_dim": 32, "max_seq_len": 16},
    "layout": {"dp": 1, "pp": 1, "tp": 1},
    "data": {"source": "hdf5", "split": "forget"},
    "train": {"steps": 2, "batch_size": 4, "seq_len": 16, "log_every": 1},
    "optim": {"warmup_steps": 0},
    "output": {"dir": "out"},
}
wr("tiny.json", json.dumps(tiny))
# the same with one key changed: an MPMD launch giving half the ranks each (class 8)
wr("tiny_steps3.json", json.dumps({**tiny, "train": {**tiny["train"], "steps": 3}}))
wr("tiny_dim32.json", json.dumps({**tiny, "model": {**tiny["model"], "dim": 32}}))

# ---- safetensors -----------------------------------------------------------------------
def st(name, header, data=b"", hlen=None, raw_header=None):
    h = raw_header if raw_header is not None else json.dumps(header).encode()
    h += b" " * ((-len(h)) % 8)
    wr("st_%s.safetensors" % name, struct.pack("<Q", len(h) if hlen is None else hlen) + h + data)


emb = {"dtype": "F32", "shape": [258, 16], "data_offsets": [0, 258 * 16 * 4]}
buf = bytes(258 * 16 * 4)
st("header_beyond_file", {"model.embed_tokens.weight": emb}, buf, hlen=1 << 20)
st("header_len_2_63", {"model.embed_tokens.weight": emb}, buf, hlen=1 << 63)
st("overlap", {"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
               "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}}, bytes(24))
st("offset_past_end", {"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, bytes(8))
st("offset_huge", {"a": {"dtype": "F32", "shape": [4],
                         "data_offsets": [18446744073709551600, 18446744073709551616]}}, bytes(16))
st("shape_overflow", {"a": {"dtype": "F32", "shape": [4294967296, 4294967296, 16],
                            "data_offsets": [0, 16]}}, bytes(16))
st("shape_negative", {"a": {"dtype": "F32", "shape": [-4], "data_offsets": [0, 16]}}, bytes(16))
st("unknown_dtype", {"a": {"dtype": "F128", "shape": [1], "data_offsets": [0, 16]}}, bytes(16))
st("name_slash", {"model/../../etc/passwd": {"dtype": "F32", "shape": [1],
                                             "data_offsets": [0, 4]}}, bytes(4))
st("name_dotdot", {"..": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, bytes(4))
st("not_json", None, bytes(4), raw_header=b"{not json at all")
wr("st_short.safetensors", b"\x08\x00\x00")

# ---- JSON lines ------------------------------------------------------------------------
wr("jl_invalid_utf8.jsonl", b'{"question": "who \xff\xfe wrote it?", "answer": "me"}\n')
wr("jl_overlong_utf8.jsonl", b'{"question": "slash \xc0\xaf", "answer": "x"}\n')
wr("jl_missing_answer.jsonl", '{"question": "q1?", "answer": "a1"}\n{"question": "q2?"}\n')
wr("jl_not_object.jsonl", '["question", "answer"]\n')
wr("jl_nul_byte.jsonl", b'{"question": "q\x00?", "answer": "a"}\n')
wr("jl_deep_nesting.jsonl", '{"text": ' + "[" * 10000 + "]" * 10000 + "}\n")
wr("jl_answer_number.jsonl", '{"question": "q?", "answer": 42}\n')
wr("jl_tokens_out_of_vocab.jsonl", '{"input_ids": [1, 2, 999999], "answer_start": 1}\n')
wr("jl_tokens_negative_start.jsonl", '{"input_ids": [1, 2, 3], "answer_start": -1}\n')
wr("jl_empty.jsonl", "")
wr("jl_blank_lines.jsonl", "\n\n   \n\t\n")
# one record per line: a second record or a stray word after the first is refused, and
# so are lines that end in CR alone (they would be read as one line)
wr("jl_two_on_a_line.jsonl", '{"question": "q1?", "answer": "a1"}\n'
   '{"question": "q2?", "answer": "a2"}{"question": "q3?", "answer": "a3"}\n')
wr("jl_trailing_word.jsonl", '{"question": "q1?", "answer": "a1"} xyz\n')
wr("jl_cr_only.jsonl", '{"question": "q1?", "answer": "a1"}\r{"question": "q2?", "answer": "a2"}\r'
   '{"question": "q3?", "answer": "a3"}\r')
# one line of 100 MiB: a text record whose string never ends
with open(os.path.join(out, "jl_line_100mb.jsonl"), "wb") as f:
    f.write(b'{"text": "')
    chunk = b"a" * (1 << 20)
    for _ in range(100):
        f.write(chunk)
    f.write(b"\n")

# ---- GPT-2 tokenizer files ---------------------------------------------------------------
bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
cs = bs[:]
n = 0
for b in range(256):
    if b not in bs:
        bs.append(b)
        cs.append(256 + n)
        n += 1
byte_tok = [chr(c) for c in cs]
merges = [("Ġ", "t"), ("h", "e"), ("Ġt", "he")]
vocab = {t: i for i, t in enumerate(byte_tok)}
for a, b in merges:
    vocab[a + b] = len(vocab)
vocab["<|endoftext|>"] = len(vocab)
merges_txt = "#version: 0.2\n" + "".join("%s %s\n" % m for m in merges)


def enc(name, v):
    wr("tok_%s.json" % name, json.dumps(v, ensure_ascii=False) if not isinstance(v, str) else v)


wr("enc_good.json", json.dumps(vocab, ensure_ascii=False))
wr("merges_good.txt", merges_txt)
enc("not_object", "[1, 2, 3]")
enc("truncated", json.dumps(vocab, ensure_ascii=False)[:500])
enc("id_out_of_range", dict(vocab, **{"<|endoftext|>": 1 << 40}))
enc("id_fraction", dict(vocab, **{"<|endoftext|>": 2.5}))
enc("id_string", dict(vocab, **{"<|endoftext|>": "262"}))
enc("missing_byte", {k: i for i, k in enumerate(t for t in vocab if t != "Ā")})
enc("no_eos", {k: v for k, v in vocab.items() if k != "<|endoftext|>"})
enc("duplicate_id", dict(vocab, **{"he": vocab["Ġt"]}))
wr("tok_merge_three.txt", merges_txt + "a b c\n")
wr("tok_merge_one.txt", merges_txt + "abc\n")
wr("tok_merge_binary.txt", b"#version: 0.2\n\xff\xfe \x00\x01\n")

# ---- report folders ------------------------------------------------------------------
fixture = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "report_fixture")
shutil.copytree(fixture, os.path.join(out, "report_inf"))
run = os.path.join(out, "report_inf", "study", "unlearn", "npo", "lr2e-05", "seed1", "summary.json")
with open(run) as f:
    summary = f.read()
# the key's value as a JSON number that overflows to inf
head, sep, tail = summary.partition('"model_utility": ')
assert sep, "report_fixture summary lacks model_utility"
k = 0
while tail[k] in "0123456789.eE+-":
    k += 1
wr(os.path.relpath(run, out), head + sep + "1e400" + tail[k:])
os.makedirs(os.path.join(out, "report_link"))
os.symlink("/", os.path.join(out, "report_link", "escape"))
