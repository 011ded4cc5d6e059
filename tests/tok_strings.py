#!/usr/bin/env python3
"""Writes N varied test strings for the tokenizer reference tests as a JSON array,
deterministically (a fixed seed): Unicode scripts, whitespace runs with \\n \\r \\t,
digit runs, emoji, code, contractions in every case, rare characters (byte fallback),
and with --specials the given special pieces inside the text.

usage: tok_strings.py N OUT.json [--specials A,B,...] [--seed S]
"""
import json
import random
import sys

WORDS = [
    "hello", "world", "The", "quick", "brown", "fox", "jumps", "over", "lazy", "dog",
    "unlearning", "Llama", "tokenizer", "forget", "retain", "café", "naïve", "façade",
    "Straße", "Grüße", "über", "élève", "niño", "São", "Paulo", "Łódź", "Dvořák",
    "Привет", "мир", "Москва", "Ελλάδα", "καλημέρα", "שלום", "עולם", "مرحبا", "العالم",
    "नमस्ते", "हिन्दी", "বাংলা", "தமிழ்", "ไทย", "ภาษา", "中文", "你好世界", "漢字",
    "日本語", "こんにちは", "カタカナ", "한국어", "안녕하세요", "Tiếng", "Việt", "ğüşıöç",
    "Ωmega", "ǅemal", "ﬁne", "ℌilbert", "Ⅻ", "①②", "x²", "½", "٣٤٥", "१२३", "๑๒",
]
CONTRACTIONS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'Ve",
                "'M", "'LL", "'D", "'x", "'", "''", "'rE"]
EMOJI = ["😀", "🙂", "👍🏽", "👨‍👩‍👧‍👦", "🇫🇷", "🇯🇵", "❤️", "🔥", "🤖", "🦙", "✨",
         "🏳️‍🌈", "👩🏿‍💻", "☕", "🎉🎉🎉"]
CODE = ["def f(x):\n    return x**2", "int main(void) { return 0; }", "for (i=0;i<n;i++)",
        "if x != None:", "a->b", "x <= y && y >= z", "{\"key\": [1, 2, 3]}", "<div class=\"a\">",
        "</div>", "#include <stdio.h>", "print('hi')", "λx.x", "$HOME/.bashrc", "C:\\Windows",
        "https://example.org/a?b=c&d=e", "foo_bar_baz", "camelCaseName", "SNAKE_CASE",
        "    indented", "\tTabbed", "a\\nb", "1e-9", "0x1F", "0b1010", "i++;", "//comment",
        "/* block */", "===", "!==", "...", "—", "–", "«guillemets»", "“quotes”", "‘single’"]
SEPS = [" ", "  ", "   ", "    ", "\n", "\n\n", "\r\n", "\t", " \t ", " \n", "\n ", "  \n  ",
        "\u00a0", "\u3000", "\u2003", "", "", "", " ", " ", " ", "\r", "\n\n\n", "\t\t",
        " \r\n ", "\u200b"]
PUNCT = list(".,;:!?-()[]{}<>\"'`~@#$%^&*_+=|/\\") + ["?!", "...", "--", "!!", "%)", "\u00bf"]


def rare_char(rng):
    while True:
        r = rng.random()
        if r < 0.5:
            cp = rng.randrange(0xA0, 0x3000)
        elif r < 0.8:
            cp = rng.randrange(0x3000, 0xFFFE)
        else:
            cp = rng.randrange(0x10000, 0x2FFFF)
        if not 0xD800 <= cp <= 0xDFFF and not 0xFDD0 <= cp <= 0xFDEF:
            return chr(cp)


def number(rng):
    r = rng.random()
    n = str(rng.randrange(10 ** rng.randrange(1, 16)))
    if r < 0.2:
        n += "." + str(rng.randrange(1000))
    elif r < 0.3:
        n = "-" + n
    elif r < 0.4:
        n = "{:,}".format(int(n))
    return n


def fragment(rng, specials):
    r = rng.random()
    if r < 0.30:
        w = rng.choice(WORDS)
        c = rng.random()
        w = w.upper() if c < 0.1 else w.capitalize() if c < 0.2 else w
        if rng.random() < 0.15:
            w += rng.choice(CONTRACTIONS)
        return w
    if r < 0.40:
        return number(rng)
    if r < 0.48:
        return rng.choice(EMOJI)
    if r < 0.58:
        return rng.choice(CODE)
    if r < 0.68:
        return "".join(rng.choice(PUNCT) for _ in range(rng.randrange(1, 4)))
    if r < 0.76:
        return "".join(rare_char(rng) for _ in range(rng.randrange(1, 4)))
    if r < 0.84:
        return rng.choice(["I", "you", "they", "it", "we", "She", "DON", "can"]) + \
            rng.choice(CONTRACTIONS)
    if r < 0.90 and specials:
        return rng.choice(specials)
    if r < 0.95:
        return "".join(rng.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789")
                       for _ in range(rng.randrange(1, 12)))
    return rng.choice(SEPS) * rng.randrange(1, 4)


def main():
    n, out = int(sys.argv[1]), sys.argv[2]
    specials, seed = [], 20261206
    args = sys.argv[3:]
    while args:
        if args[0] == "--specials":
            specials = [s for s in args[1].split(",") if s]
        elif args[0] == "--seed":
            seed = int(args[1])
        else:
            sys.exit("tok_strings.py: unknown argument " + args[0])
        args = args[2:]
    rng = random.Random(seed)
    strings = ["", " ", "Hello world", "Hello world!", "  leading spaces", "trailing  ",
               "\n", "\n\n\n", " \n \n", "a\r\nb", "1234567890", "don't DON'T Don'T",
               "   ", "\t\t\tx", "😀", "ab" * 40]
    while len(strings) < n:
        k = rng.randrange(1, 14)
        parts = []
        for _ in range(k):
            parts.append(fragment(rng, specials))
            parts.append(rng.choice(SEPS))
        s = "".join(parts)
        if rng.random() < 0.3:
            s = s.strip(" ")
        strings.append(s)
    with open(out, "w", encoding="utf-8") as f:
        json.dump(strings[:n], f, ensure_ascii=False)


if __name__ == "__main__":
    main()
