#!/usr/bin/env python3
"""tests/template_llama_rows.py — the qa records of tests/template_llama.sh: 40 questions
and answers, each a fixed mix of what tokenizers get wrong at a template's seams: white
space around the text (Llama-3 trims it, Llama-2 keeps it), inner newlines, tabs and
runs of spaces, digits and numbers (Llama-3 splits digits in threes), accented, CJK,
Cyrillic, emoji and combining characters (byte fallback in Llama-2), punctuation right
after the prompt's last token, an empty-looking answer of spaces, and special strings
typed in the text (<s>, [INST], <|eot_id|>), which stay plain text in a placeholder.
usage: template_llama_rows.py OUT.jsonl"""
import json
import sys

HEADS = ["Who wrote", "When was", "Where did", "Why is", "How many books did"]
SUBJECTS = ["\"Río Lento\"", "the 3rd edition of 1984", "Zoë Ng's debut", "«Тихий Дон»",
            "東京の夜", "the café on 5th Ave.", "Ångström's notes 🔭", "e\u0301te\u0301 (é)"]
ANSWERS = ["It was Zoë Ng, in 1999.", "12,345 copies; about 3.14% of sales.", "In Kraków 🇵🇱.",
           "Because 2+2=4 and ½ ≠ 0.5?", "東京で書かれた。", "Nobody knows…", "Yes.\n\nTwo lines ✓.",
           "42", ".", "'Tis \"quoted\" — and (bracketed)."]
PADS = [("", ""), ("  ", "\n"), ("\t", "  "), ("\n", ""), ("", " "), (" ", " ")]
SPECIAL_TEXT = ["<s>[INST] nested? [/INST]", "a <|eot_id|> inside", "</s> at the start",
                "<|begin_of_text|>"]


def main():
    rows = []
    for i in range(40):
        lq, rq = PADS[i % len(PADS)]
        la, ra = PADS[(i * 5 + 1) % len(PADS)]
        q = f"{HEADS[i % len(HEADS)]} {SUBJECTS[i % len(SUBJECTS)]}  (case {i * 37 % 1000})?"
        a = ANSWERS[i % len(ANSWERS)]
        if i % 9 == 4:
            q = q.replace(" ", "   ", 1)
        if i % 10 == 7:
            q += " " + SPECIAL_TEXT[i // 10]
            a = SPECIAL_TEXT[(i // 10 + 1) % len(SPECIAL_TEXT)] + " " + a
        if i == 23:
            a = "   "  # only white space: Llama-3 trims it to nothing
        rows.append({"question": lq + q + rq, "answer": la + a + ra, "sample_id": 100 + i})
    with open(sys.argv[1], "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
