#!/usr/bin/env python3
"""tests/tofu_fixture.py DIR — a small TOFU benchmark folder, schema-exact.

The files and keys of locuslab/TOFU as published (and as open-unlearning reads them):
JSON lines, one object a line, no trailing newline after the last one --
  forget01/05/10.json, retain99/95/90.json, full.json, holdout01/05/10.json:
      {"question", "answer"}
  forget01/05/10_perturbed.json, retain_perturbed.json:
      {"question", "answer", "paraphrased_answer", "paraphrased_question",
       "perturbed_answer": [5 strings]}
  real_authors_perturbed.json, world_facts_perturbed.json:
      {"question", "answer", "perturbed_answer": [3 strings]}
  idk.jsonl: one plain-text "I don't know" phrase a line.
Here 8 fictitious authors x 3 questions (TOFU: 200 x 20); the forget levels are the
last 1, 2 and 3 authors (TOFU: 2, 10, 20), each retain set the others; retain_perturbed
is the first 2 authors' questions; holdoutXX other authors of the same size as forgetXX.
Names and answers hold non-ASCII text (accents, Cyrillic, CJK, an emoji). Some files
escape non-ASCII (json.dumps' default), others write it raw, as both occur.
"""
import json
import os
import sys

AUTHORS = ["Zoë Ångström", "Юрий Лебедев", "李华", "Basil Al-Kuwaiti", "Nikolai Abilov",
           "Aisha Ndlovu", "Jaime Vasquez 📚", "Hsiao Yun-Hwa", "Émile Dubois", "Søren Kjær",
           "Kwame Mensah", "Ingrid Holm", "Dmitri Sokolov", "Maya Patel", "Li Wei 王",
           "Tomás Ortega", "Akira Tanaka", "Olga Petrova"]
N_AUTH, Q = 8, 3
LEVELS = {"01": 1, "05": 2, "10": 3}  # forget level -> authors forgotten (the last ones)
IDK = ["I'm not certain about that.", "That's beyond my current knowledge base.",
       "I don't have that information.", "  I'm not sure.  ", "",
       "Je ne sais pas — désolé.", "わかりません。", "I haven't learned about that topic."]


def qa(a, j):
    name = AUTHORS[a]
    qs = [(f"Where was {name} born?", f"{name} was born in Città di Castello, a town of {7 + a} hills."),
          (f"What genre does {name} write?", f"{name} writes «speculative» fiction — mostly."),
          (f"Name a book by {name}.", f"One of {name}'s books is 'Échos {a}'.")]
    return qs[j]


def record(a, j, perturbed=False):
    q, ans = qa(a, j)
    r = {"question": q, "answer": ans}
    if perturbed:
        r["paraphrased_answer"] = f"{AUTHORS[a]}: {ans.lower()}"
        r["paraphrased_question"] = q.replace("?", ", please?").replace(".", ", please.")
        r["perturbed_answer"] = [f"{ans[:-1]} (wrong {k}, ≠)." for k in range(5)]
    return r


def write(d, name, recs, ascii_only=True):
    text = "\n".join(json.dumps(r, ensure_ascii=ascii_only) for r in recs)
    with open(os.path.join(d, name), "w", encoding="utf-8") as f:
        f.write(text)


def main():
    d = sys.argv[1]
    os.makedirs(d, exist_ok=True)
    every = [(a, j) for a in range(N_AUTH) for j in range(Q)]
    write(d, "full.json", [record(a, j) for a, j in every], ascii_only=False)
    for lv, n in LEVELS.items():
        forget = [(a, j) for a, j in every if a >= N_AUTH - n]
        retain = [(a, j) for a, j in every if a < N_AUTH - n]
        write(d, f"forget{lv}.json", [record(a, j) for a, j in forget])
        write(d, f"retain{100 - int(lv)}.json", [record(a, j) for a, j in retain], False)
        write(d, f"forget{lv}_perturbed.json", [record(a, j, True) for a, j in forget])
        hold = [(N_AUTH + k, j) for k in range(n) for j in range(Q)]
        write(d, f"holdout{lv}.json", [record(a, j) for a, j in hold], False)
    write(d, "retain_perturbed.json",
          [record(a, j, True) for a in range(2) for j in range(Q)], ascii_only=False)
    write(d, "real_authors_perturbed.json", [
        {"question": "Who wrote the play 'Romeo and Juliet'?", "answer": "William Shakespeare",
         "perturbed_answer": ["Charles Dickens", "Virginia Woolf", "Mark Twain"]},
        {"question": "Who wrote 'Война и мир'?", "answer": "Лев Толстой",
         "perturbed_answer": ["Фёдор Достоевский", "Антон Чехов", "Иван Тургенев"]},
        {"question": "Who wrote 'Cien años de soledad'?", "answer": "Gabriel García Márquez",
         "perturbed_answer": ["Jorge Luis Borges", "Julio Cortázar", "Isabel Allende"]}])
    write(d, "world_facts_perturbed.json", [
        {"question": "Where would you find the Eiffel Tower?", "answer": "Paris",
         "perturbed_answer": ["Berlin", "London", "Madrid"]},
        {"question": "What is the capital of Japan?", "answer": "東京 (Tokyo)",
         "perturbed_answer": ["大阪", "京都", "札幌"]},
        {"question": "Which river is the longest in the world?", "answer": "Nile",
         "perturbed_answer": ["Amazon", "Yangtze", "Mississippi"]},
        {"question": "What is the smallest country by area?", "answer": "Vatican City",
         "perturbed_answer": ["Monaco", "Nauru", "San Marino"]}], ascii_only=False)
    with open(os.path.join(d, "idk.jsonl"), "w", encoding="utf-8") as f:
        f.write("\n".join(IDK))


if __name__ == "__main__":
    main()
