#!/usr/bin/env bash
# tests/tofu_prepare.sh — `lethe prepare --tofu DIR` on a schema-exact TOFU folder
# (tests/tofu_fixture.py: 8 authors x 3 questions, Unicode, every published file, idk.jsonl).
#
# Good runs (byte tokenizer, T=160), each checked by tests/tofu_check.py against its own
# reading of the files (every split and only those, row counts, K, every row's ids,
# lengths and answer_start, candidates, IdK answers, /idk, sources and digests):
#   full     the whole folder at 1 and 2 ranks (the two files dump equal);
#   array    full.json and retain_perturbed.json as JSON arrays (pretty-printed);
#   level    only forget05.json, forget05_perturbed.json, retain95.json (3 splits, no IdK);
#   template --template question-answer: tests/template_ref.py on forget05 and
#            eval/forget05_perturbed (templates work unchanged through --tofu);
#   eval     lethe eval at 2 ranks with io/DATASETS.md's TOFU settings on the full file
#            (roles, rows per split, truth ratios where there are candidates).
# Refusals (a missing file of a forget level, a record without "answer", perturbed lists
# of uneven length, non-JSON lines and arrays, a file cut short, bad UTF-8, a sequence too
# long under --strict, bad flags): exit 2, exactly one stderr line "lethe: ..." with the expected words, an
# existing OUT.h5 left byte for byte as it was, nothing else left in its folder.
# A script of counted cases: PASS lines against the number of cases.
# The case helpers (verdict, prep, good, refuse) are tests/bench_prepare_lib.sh's.
# env: MPIRUN, LETHE_BIN, LETHE_SOURCE_DIR; python3 (json, hashlib), h5dump, h5ls.
set -uo pipefail
: "${MPIRUN:?MPIRUN is not set}"
: "${LETHE_BIN:?LETHE_BIN is not set}"
: "${LETHE_SOURCE_DIR:?LETHE_SOURCE_DIR is not set}"
PY="${LETHE_PYTHON:-python3}"
# shellcheck source=jobs/mpienv.sh
source "$(dirname "${BASH_SOURCE[0]}")/../jobs/mpienv.sh"
S="$LETHE_SOURCE_DIR/tests"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
T=160
BENCH=tofu
# shellcheck source=tests/bench_prepare_lib.sh
source "$S/bench_prepare_lib.sh"
fixture() { # DIR: a fresh copy of the fixture
    rm -rf "$1"
    "$PY" "$S/tofu_fixture.py" "$1"
}
bench_check() { # TAG DIR [args...]: tofu_check.py's reading, when no option changes the rows
    [ $# -eq 2 ] || return 0
    "$PY" "$S/tofu_check.py" "$work/$1/out.h5" "$2" "$T" >"$work/$1.check" ||
        { sed 's/^/    /' "$work/$1.check" | grep -v ' rows' && return 1; }
    tail -n 1 "$work/$1.check"
}

D="$work/tofu"
fixture "$D"
good full.np1 1 "$D"
good full.np2 2 "$D"
if [ -f "$work/full.np1/out.h5" ] && [ -f "$work/full.np2/out.h5" ]; then
    cmp -s <(h5dump "$work/full.np1/out.h5" | sed 1d) <(h5dump "$work/full.np2/out.h5" | sed 1d)
    verdict "full: the 1- and 2-rank files dump equal" $?
fi
# the counts the fixture promises (a check of the check: 19 splits, 24 records in full)
grep -q '^tofu_check: 19 splits, 0 differences$' "$work/full.np1.check" 2>/dev/null
verdict "full: 19 splits" $?
grep -q '^/full: 24 rows, K=0$' "$work/full.np1.check" 2>/dev/null &&
    grep -q '^/eval/forget10_perturbed: 9 rows, K=5$' "$work/full.np1.check" &&
    grep -q '^/eval/world_facts: 4 rows, K=3$' "$work/full.np1.check" &&
    grep -q '^/idk: 7 phrases$' "$work/full.np1.check"
verdict "full: row counts, K and 7 IdK phrases" $?

A="$work/in_array"
fixture "$A"
for f in full retain_perturbed; do
    "$PY" -c 'import json, sys
recs = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8") if l.strip()]
json.dump(recs, open(sys.argv[1], "w", encoding="utf-8"), indent=2, ensure_ascii=False)' "$A/$f.json"
done
good array 1 "$A"

L="$work/in_level"
fixture "$L"
(cd "$L" && rm -f forget01* forget10* retain99.json retain90.json full.json holdout* \
    retain_perturbed.json real_authors_perturbed.json world_facts_perturbed.json idk.jsonl)
good level 1 "$L"
grep -q '^tofu_check: 3 splits, 0 differences$' "$work/level.check" 2>/dev/null
verdict "level: 3 splits" $?

good template 1 "$D" --template question-answer
if [ -f "$work/template/out.h5" ]; then
    "$PY" "$S/template_ref.py" "$work/template/out.h5" question-answer "$T" byte \
        "forget05=$D/forget05.json" "eval/forget05_perturbed=$D/forget05_perturbed.json" \
        >"$work/template.ref" 2>&1
    rc=$?
    [ $rc -ne 0 ] && sed 's/^/    /' "$work/template.ref"
    verdict "template: rows as template_ref.py renders them" $rc
fi

# lethe eval reads the prepared file with io/DATASETS.md's settings (a random 1-layer model):
# the roles, every split's rows, truth ratios wherever the file has candidates
printf '%s\n' '{"model": {"vocab_size": 258, "dim": 32, "n_layers": 1, "n_heads": 2,' \
    "\"n_kv_heads\": 2, \"mlp_dim\": 64, \"max_seq_len\": $T, \"init_seed\": 3}," \
    '"layout": {"dp": 2, "pp": 1, "tp": 1, "micro_batches": 1},' \
    "\"data\": {\"path\": \"$work/full.np1/out.h5\"}," \
    '"eval": {"batch_size": 8, "max_new_tokens": 4},' \
    "\"output\": {\"dir\": \"$work/evalrun\"}}" >"$work/eval.json"
lethe_mpirun "$MPIRUN" --oversubscribe -n 2 "$LETHE_BIN" eval "$work/eval.json" \
    --set eval.forget_split=eval/forget05_perturbed --set eval.retain_split=eval/retain_perturbed \
    --set eval.utility_splits=eval/real_authors,eval/world_facts \
    --set eval.holdout_split=holdout05 >"$work/eval.out" 2>&1 &&
    "$PY" -c 'import json, sys
s = json.load(open(sys.argv[1]))
assert s["roles"] == {"forget": "eval/forget05_perturbed", "retain": "eval/retain_perturbed",
    "holdout": "holdout05", "utility": ["eval/real_authors", "eval/world_facts"]}, s["roles"]
n = {k: v["n"] for k, v in s["splits"].items()}
assert n == {"eval/forget05_perturbed": 6, "eval/retain_perturbed": 6, "eval/real_authors": 3,
    "eval/world_facts": 4, "holdout05": 6}, n
for k in list(n)[:4]:
    assert s["splits"][k]["truth_ratio"] is not None, k' "$work/evalrun/summary.json" >>"$work/eval.out" 2>&1
rc=$?
[ $rc -ne 0 ] && sed 's/^/    /' "$work/eval.out" | tail -n 20
verdict "eval: the prepared file under lethe eval at 2 ranks" $rc

# ---- refusals ---------------------------------------------------------------------------
keep="$work/full.np1/out.h5"
mutate() { # TAG: a fresh fixture at $work/in_TAG, its path in $M
    M="$work/in_$1"
    fixture "$M"
}
mutate missing
rm "$M/retain95.json"
refuse missing 1 "'$M/retain95.json' is missing; 'forget05.json' needs it" "$M"

mutate no_answer
"$PY" -c 'import json, sys
p = sys.argv[1]; lines = open(p, encoding="utf-8").read().split("\n")
r = json.loads(lines[2]); del r["answer"]; lines[2] = json.dumps(r)
open(p, "w", encoding="utf-8").write("\n".join(lines))' "$M/forget05.json"
refuse no_answer 1 "'$M/forget05.json' line 3: key 'answer' is missing" "$M"
refuse no_answer.np2 2 "'$M/forget05.json' line 3: key 'answer' is missing" "$M"

mutate uneven
"$PY" -c 'import json, sys
p = sys.argv[1]; lines = open(p, encoding="utf-8").read().split("\n")
r = json.loads(lines[1]); r["perturbed_answer"].pop(); lines[1] = json.dumps(r)
open(p, "w", encoding="utf-8").write("\n".join(lines))' "$M/forget10_perturbed.json"
refuse uneven 1 "'$M/forget10_perturbed.json' line 2: key 'perturbed_answer' has 4 answers, earlier records have 5" "$M"

mutate no_pert
sed -i '1s/"perturbed_answer"/"perturbed"/' "$M/real_authors_perturbed.json"
refuse no_pert 1 "'$M/real_authors_perturbed.json' line 1: key 'perturbed_answer' is missing" "$M"

mutate not_json
sed -i '3s/^{/{oops /' "$M/world_facts_perturbed.json"
refuse not_json 1 "'$M/world_facts_perturbed.json' line 3: not a JSON object" "$M"

mutate bad_array
"$PY" -c 'import json, sys
recs = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8") if l.strip()]
open(sys.argv[1], "w").write(json.dumps(recs, indent=1)[:-40])' "$M/full.json"
refuse bad_array 1 "'$M/full.json': not JSON" "$M"

mutate array_record
"$PY" -c 'import json, sys
recs = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8") if l.strip()]
del recs[2]["question"]
json.dump(recs, open(sys.argv[1], "w"), indent=1)' "$M/full.json"
refuse array_record 1 "'$M/full.json' record 2: key 'question' is missing" "$M"

mutate bad_utf8 # found by prepare's own reading: the message still names the TOFU file
printf '\n{"question": "Q\xff?", "answer": "A"}' >>"$M/retain90.json"
refuse bad_utf8 1 "'$M/retain90.json' line 16: byte 15: invalid UTF-8 (0xff)" "$M"

mutate too_long # the same, from the qa path: too long for T with --strict
refuse too_long 1 "'$M/forget01.json' line 1: answer: " "$M" --strict --seq-len 40

mutate idk_utf8
printf 'I do not know.\n\xc3(\n' >"$M/idk.jsonl"
refuse idk_utf8 1 "'$M/idk.jsonl' line 2: not UTF-8 text" "$M"

mutate cut_short # a download cut short: forget05_perturbed.json lacks its last record
sed -i '$d' "$M/forget05_perturbed.json"
refuse cut_short 1 "'$M/forget05_perturbed.json' has 5 records, '$M/forget05.json' 6" "$M"

mkdir -p "$work/empty"
refuse empty 1 "'$work/empty' holds none of the TOFU files" "$work/empty"
refuse not_dir 1 "'$D/full.json' is not a folder" "$D/full.json"
refuse with_input 2 "--tofu and --input exclude each other" "$D" --input "forget=$D/forget01.json"
refuse tok_none 2 "--tofu needs a tokenizer" "$D" --tokenizer none --vocab-size 9 --pad-id 0 --eos-id 1

"$LETHE_BIN" prepare --help 2>&1 | grep -q -- '--tofu DIR'
verdict "--help lists --tofu" $?

echo "tofu_prepare: $pass passed, $((cases - pass)) failed of $cases cases"
[ "$pass" -eq "$cases" ] && [ "$cases" -eq 28 ]
