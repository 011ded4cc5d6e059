#!/usr/bin/env python3
"""The SentencePiece reference of tests/llama_tok_fixture.sh (Debian's
python3-sentencepiece): trains a small Llama-2-style BPE model (byte fallback, identity
normalizer, dummy prefix, whitespace-only pieces, one user-defined piece) on a corpus
made by tests/tok_strings.py with its own seed, writes

  OUT/model/tokenizer.model        the model, and its tokenizer_config.json
  OUT/json/tokenizer.json          the same model as a Hugging Face tokenizer.json: merges
                                   derived as transformers' SentencePieceExtractor does
                                   (the splits of each piece into two pieces, ordered by
                                   the piece's score, then by the parts' ids), Metaspace
                                   with prepend_scheme "first" as SentencePiece prefixes
  OUT/expected.json                sentencepiece's ids of every string of STRINGS

  OUT/expected-row0.json           with QA.jsonl: the ids of its first record's prompt
                                   ('[INST] {q} [/INST]') and answer (' ' + answer)

usage: spm_ref.py OUT STRINGS.json [QA.jsonl]
"""
import json
import os
import random
import sys

import sentencepiece as spm

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tok_strings  # noqa: E402


USER_DEFINED = ["<sep>"]


def corpus(n):
    """Lines of fragments without the rare characters (those the tests then meet as
    byte fallback)."""
    rng = random.Random(11)
    known = set("".join(tok_strings.WORDS + tok_strings.EMOJI + tok_strings.CODE +
                        tok_strings.PUNCT + tok_strings.CONTRACTIONS))
    known |= set(chr(c) for c in range(32, 127))
    lines = []
    while len(lines) < n:
        parts = [tok_strings.fragment(rng, []) for _ in range(rng.randrange(3, 20))]
        parts = [p for p in parts if set(p) <= known | set(" \t\n\r")]
        lines.append(" ".join(parts).replace("\n", " ").replace("\r", " "))
    return lines


def train(model_dir):
    os.makedirs(model_dir, exist_ok=True)
    prefix = os.path.join(model_dir, "tokenizer")
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus(6000)), model_prefix=prefix, model_type="bpe",
        vocab_size=2000, byte_fallback=True, normalization_rule_name="identity",
        remove_extra_whitespaces=False, add_dummy_prefix=True, split_digits=True,
        allow_whitespace_only_pieces=True, character_coverage=0.9995,
        user_defined_symbols=USER_DEFINED, num_threads=1, minloglevel=2)
    os.remove(prefix + ".vocab")
    with open(os.path.join(model_dir, "tokenizer_config.json"), "w") as f:
        json.dump({"bos_token": "<s>", "eos_token": "</s>", "pad_token": None}, f)
    return prefix + ".model"


def to_json(model_path, json_dir):
    sp = spm.SentencePieceProcessor(model_file=model_path)
    n = sp.get_piece_size()
    pieces = [sp.id_to_piece(i) for i in range(n)]
    vocab = {p: i for i, p in enumerate(pieces)}
    special = [i for i in range(n) if sp.is_control(i) or sp.is_unknown(i)]
    normal = [(pieces[i], sp.get_score(i)) for i in range(n)
              if i not in special and not sp.is_byte(i) and pieces[i] not in USER_DEFINED]
    merges = []
    for piece, score in sorted(normal, key=lambda x: -x[1]):
        local = [(piece[:k], piece[k:], score) for k in range(1, len(piece))
                 if piece[:k] in vocab and piece[k:] in vocab]
        merges.extend(sorted(local, key=lambda x: (vocab[x[0]], vocab[x[1]])))
    merges.sort(key=lambda x: -x[2])  # stable: keeps the order within one score
    added = [{"id": i, "content": pieces[i], "single_word": False, "lstrip": False,
              "rstrip": False, "normalized": False, "special": i in special}
             for i in range(n) if i in special or pieces[i] in USER_DEFINED]
    tj = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581",
                          "prepend_scheme": "first", "split": False},
        "post_processor": None, "decoder": None,
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>",
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                  "vocab": vocab, "merges": [[a, b] for a, b, _ in merges]},
    }
    os.makedirs(json_dir, exist_ok=True)
    with open(os.path.join(json_dir, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tj, f, ensure_ascii=False)
    with open(os.path.join(json_dir, "tokenizer_config.json"), "w") as f:
        json.dump({"bos_token": {"content": "<s>"}, "eos_token": "</s>"}, f)


def main():
    out, strings = sys.argv[1], sys.argv[2]
    model = os.path.join(out, "model", "tokenizer.model")
    if not os.path.exists(model):
        train(os.path.join(out, "model"))
    to_json(model, os.path.join(out, "json"))
    sp = spm.SentencePieceProcessor(model_file=model)
    with open(strings, encoding="utf-8") as f:
        texts = json.load(f)
    ids = [sp.encode(s) for s in texts]
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(ids, f)
    # Hugging Face's Metaspace with prepend_scheme "first" prefixes only a first segment
    # that is not an added token: where SentencePiece gives '▁' <sep> ..., it gives
    # <sep> ... (the one documented difference between the two forms)
    meta = sp.piece_to_id("\u2581")
    for s, v in zip(texts, ids):
        if any(s.startswith(u) for u in USER_DEFINED):
            assert v[0] == meta, (s, v)
            del v[0]
    with open(os.path.join(out, "expected-json.json"), "w") as f:
        json.dump(ids, f)
    if len(sys.argv) > 3:
        with open(sys.argv[3], encoding="utf-8") as f:
            rec = json.loads(f.readline())
        with open(os.path.join(out, "expected-row0.json"), "w") as f:
            json.dump([sp.encode("[INST] " + rec["question"] + " [/INST]"),
                       sp.encode(" " + rec["answer"])], f)


if __name__ == "__main__":
    main()
