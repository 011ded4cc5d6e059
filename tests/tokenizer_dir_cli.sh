#!/bin/sh
# `lethe prepare --tokenizer-dir` with bad model directories: each case must exit 2 and
# print exactly one line on stderr, starting "lethe: " and saying what is wrong.
# usage: tokenizer_dir_cli.sh <lethe> <work dir> <tests/data dir>
set -u
lethe=$1
work=$2/tokenizer-dir-cli
data=$3
rm -rf "$work" && mkdir -p "$work/empty" "$work/nomodel" "$work/cut" || exit 1
echo '{"model": {"vocab": {}}}' >"$work/nomodel/tokenizer.json"
printf '\n\011\n\007<unk' >"$work/cut/tokenizer.model" # a piece cut inside its text
cases=0
passed=0
# check NAME EXPECTED ARGS...
check() {
    name=$1
    want=$2
    shift 2
    cases=$((cases + 1))
    "$lethe" prepare --input "forget=$data/tofu_forget.jsonl" --output "$work/out.h5" "$@" \
        >"$work/out.txt" 2>"$work/err.txt"
    rc=$?
    lines=$(wc -l <"$work/err.txt")
    if [ "$rc" = 2 ] && [ "$lines" = 1 ] && grep -q "^lethe: .*$want" "$work/err.txt"; then
        echo "PASS $name: $(cat "$work/err.txt")"
        passed=$((passed + 1))
    else
        echo "FAIL $name: exit $rc, $lines stderr lines, expected one 'lethe: ...$want':"
        cat "$work/err.txt"
    fi
}
check empty-dir "model directory '$work/empty': neither tokenizer.json nor tokenizer.model" \
    --tokenizer-dir "$work/empty"
check no-model-type "tokenizer file '$work/nomodel/tokenizer.json': model.type is missing" \
    --tokenizer-dir "$work/nomodel"
check truncated-model "tokenizer file '$work/cut/tokenizer.model': not a SentencePiece model: the protobuf is truncated" \
    --tokenizer-dir "$work/cut"
check both-flags "--tokenizer-dir and --tokenizer exclude each other" \
    --tokenizer-dir "$work/empty" --tokenizer gpt2
[ -e "$work/out.h5" ] && { echo "FAIL: an output was written"; exit 1; }
echo "tokenizer_dir_cli: $passed passed, $((cases - passed)) failed"
[ "$passed" = "$cases" ] && [ "$cases" = 4 ]
