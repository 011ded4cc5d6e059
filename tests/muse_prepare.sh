#!/usr/bin/env bash
# tests/muse_prepare.sh — `lethe prepare --muse DIR` on the schema-exact MUSE folder of
# tests/data/muse (News layout: raw/ and scal/, sust/ as JSON lines of {"text"};
# knowmem/ and verbmem/ as JSON arrays of records; privleak/ as JSON arrays of strings, as
# the reference repository has them; Unicode throughout).
#
# Good runs (byte tokenizer, T=256), each checked by tests/muse_check.py against its own
# reading of the files (every split and only those, rows, every row's ids, lengths and
# answer_start, sources, digests, ICL prompts, record counts):
#   full     the folder at 1 and 2 ranks (the two files dump equal);
#   books    Books/HF names and forms: knowmem/retain2_qa(+_icl), privleak/retain2.json,
#            knowmem and privleak files as JSON lines of objects.
# Refusals (a knowmem file without its ICL file, a record without "gt", a privleak record
# that is no text, a raw line that is no JSON, bad UTF-8, a FIFO and a folder where a file
# belongs, an empty folder, a file for a folder, two files for one split, bad flags): exit
# 2 on every rank (run at 2 ranks), exactly one stderr line "lethe: ..." with the expected
# words, an existing OUT.h5 left byte for byte as it was, nothing else left in its folder.
# A script of counted cases: PASS lines against the number of cases.
# The case helpers (verdict, prep, good, refuse) are tests/bench_prepare_lib.sh's.
# env: MPIRUN, LETHE_BIN, LETHE_SOURCE_DIR; /usr/bin/python3 (json, hashlib, h5py), h5dump.
set -uo pipefail
: "${MPIRUN:?MPIRUN is not set}"
: "${LETHE_BIN:?LETHE_BIN is not set}"
: "${LETHE_SOURCE_DIR:?LETHE_SOURCE_DIR is not set}"
PY="${LETHE_PYTHON:-/usr/bin/python3}"
# shellcheck source=jobs/mpienv.sh
source "$LETHE_SOURCE_DIR/jobs/mpienv.sh"
S="$LETHE_SOURCE_DIR/tests"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
T=256
BENCH=muse
# shellcheck source=tests/bench_prepare_lib.sh
source "$S/bench_prepare_lib.sh"
fixture() { # DIR: a fresh copy of the fixture
    rm -rf "$1"
    cp -r "$S/data/muse" "$1"
}
bench_check() { # TAG DIR: muse_check.py's reading
    "$PY" "$S/muse_check.py" prepare "$work/$1/out.h5" "$2" "$T" >"$work/$1.check" ||
        { sed 's/^/    /' "$work/$1.check" && return 1; }
    tail -n 1 "$work/$1.check"
}

D="$work/muse"
fixture "$D"
good full.np1 1 "$D"
good full.np2 2 "$D"
if [ -f "$work/full.np1/out.h5" ] && [ -f "$work/full.np2/out.h5" ]; then
    cmp -s <(h5dump "$work/full.np1/out.h5" | sed 1d) <(h5dump "$work/full.np2/out.h5" | sed 1d)
    verdict "full: the 1- and 2-rank files dump equal" $?
fi
# the counts the fixture promises (a check of the check): 12 splits, these rows
c="$work/full.np1.check"
[ "$(grep -c ' rows from ' "$c" 2>/dev/null)" = 12 ] &&
    grep -q '^muse_check: eval/knowmem_forget: 4 rows from knowmem/forget_qa.json$' "$c" &&
    grep -q '^muse_check: eval/verbmem_forget: 3 rows from verbmem/forget.json$' "$c" &&
    grep -q '^muse_check: eval/privleak_holdout: 5 rows from privleak/holdout.json$' "$c" &&
    grep -q '^muse_check: forget: 3 rows from raw/forget.json$' "$c"
verdict "full: 12 splits and their row counts" $?

B="$work/in_books"
fixture "$B"
(cd "$B/knowmem" && mv retain_qa.json retain2_qa.json && mv retain_qa_icl.json retain2_qa_icl.json)
mv "$B/privleak/retain.json" "$B/privleak/retain2.json"
"$PY" -c 'import json, sys
for p in sys.argv[1:]:
    recs = json.load(open(p, encoding="utf-8"))
    recs = [{"text": r} if isinstance(r, str) else r for r in recs]
    open(p, "w", encoding="utf-8").write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs))
' "$B/knowmem/forget_qa.json" "$B/privleak/forget.json" "$B/privleak/retain2.json"
good books 1 "$B"
grep -q '^muse_check: eval/knowmem_retain: 4 rows from knowmem/retain2_qa.json$' "$work/books.check" 2>/dev/null
verdict "books: retain2_qa makes eval/knowmem_retain" $?

# ---- refusals ---------------------------------------------------------------------------
keep="$work/full.np1/out.h5"
mutate() { # TAG: a fresh fixture at $work/in_TAG, its path in $M
    M="$work/in_$1"
    fixture "$M"
}
mutate no_icl
rm "$M/knowmem/retain_qa_icl.json"
refuse no_icl 2 "'$M/knowmem/retain_qa_icl.json' is missing; '$M/knowmem/retain_qa.json' needs it" "$M"

mutate no_gt
"$PY" -c 'import json, sys
recs = json.load(open(sys.argv[1], encoding="utf-8")); del recs[1]["gt"]
json.dump(recs, open(sys.argv[1], "w", encoding="utf-8"), indent=4, ensure_ascii=False)' \
    "$M/verbmem/forget.json"
refuse no_gt 2 "'$M/verbmem/forget.json' record 1: key 'gt' is missing" "$M"

mutate priv_number
"$PY" -c 'import json, sys
recs = json.load(open(sys.argv[1], encoding="utf-8")); recs[2] = 7
json.dump(recs, open(sys.argv[1], "w", encoding="utf-8"), indent=4, ensure_ascii=False)' \
    "$M/privleak/holdout.json"
refuse priv_number 2 "'$M/privleak/holdout.json' record 2: not a JSON object" "$M"

mutate raw_line
sed -i '2s/^{/{oops /' "$M/raw/retain1.json"
refuse raw_line 2 "'$M/raw/retain1.json' line 2: not a JSON object (one record per line)" "$M"

mutate icl_schema # the ICL file is read with the same care, and named
sed -i 's/"answer"/"reply"/' "$M/knowmem/forget_qa_icl.json"
refuse icl_schema 2 "'$M/knowmem/forget_qa_icl.json' record 0: key 'answer' is missing" "$M"

mutate bad_utf8 # found by prepare's own reading: the message still names the MUSE file
printf '{"text": "caf\xe9 au lait"}\n' >>"$M/raw/holdout.json"
refuse bad_utf8 2 "'$M/raw/holdout.json' line 4: byte 13: invalid UTF-8 (0xe9)" "$M"

mutate fifo
rm "$M/privleak/holdout.json" && mkfifo "$M/privleak/holdout.json"
refuse fifo 2 "'$M/privleak/holdout.json': it is a FIFO, not a regular file" "$M"

mutate folder
rm "$M/raw/holdout.json" && mkdir "$M/raw/holdout.json"
refuse folder 2 "'$M/raw/holdout.json': it is a folder, not a regular file" "$M"

mutate two_retain
cp "$M/knowmem/retain_qa.json" "$M/knowmem/retain2_qa.json"
cp "$M/knowmem/retain_qa_icl.json" "$M/knowmem/retain2_qa_icl.json"
refuse two_retain 2 "'$M/knowmem/retain_qa.json' and '$M/knowmem/retain2_qa.json' both make split 'eval/knowmem_retain'" "$M"

mkdir -p "$work/empty"
refuse empty 2 "'$work/empty' holds none of the MUSE files" "$work/empty"
refuse not_dir 2 "'$D/raw/forget.json' is not a folder" "$D/raw/forget.json"
refuse with_input 2 "--muse and --input/--tofu exclude each other" "$D" --input "forget=$D/raw/forget.json"
refuse with_tofu 2 "--muse and --input/--tofu exclude each other" "$D" --tofu "$D"
refuse tok_none 2 "--muse needs a tokenizer" "$D" --tokenizer none --vocab-size 9 --pad-id 0 --eos-id 1

"$LETHE_BIN" prepare --help 2>&1 | grep -q -- '--muse DIR'
verdict "--help lists --muse" $?

echo "muse_prepare: $pass passed, $((cases - pass)) failed of $cases cases"
[ "$pass" -eq "$cases" ] && [ "$cases" -eq 21 ]
