#!/usr/bin/env bash
# tests/prepare_template.sh — `lethe prepare --template` against tests/template_ref.py.
#
# The tokenizer is GPT-2's BPE (the npm fixture of tests/gpt2_fixture.sh) with six
# special tokens appended to its vocabulary (<s> </s> <|begin_of_text|>
# <|start_header_id|> <|end_header_id|> <|eot_id|>, ids 50257..50262), so that the
# templates' specials exist. Each case prepares tests/data/tofu_forget.jsonl (answer,
# paraphrase, 3 perturbed) and a file of awkward records (white space around the
# question and answer, inner newlines, non-ASCII text) and template_ref.py compares
# every row, length, answer_start, prompt_merged and the root attributes with its own
# rendering (Llama-3: jinja2, or plain Python without it) tokenised by the reference encoder:
#   llama2-chat, llama3-chat (np1 and np2), question-answer, llama3-chat with
#   --system-prompt/--date, a template file (trim, specials, {eos}), question-answer
#   cut at T=24 (truncation).
# Refusals (exit 2, one 'lethe:' line, no output): llama3-chat with GPT-2's own
# vocabulary (lacks <|begin_of_text|>); llama2-chat's missing '<s>'.
# Skipped (77) when npm, node or the registry is missing.
# env: MPIRUN, LETHE_BIN, LETHE_SOURCE_DIR; $1: the build's tests folder (fixture cache).
set -uo pipefail
: "${MPIRUN:?MPIRUN is not set}"
: "${LETHE_BIN:?LETHE_BIN is not set}"
: "${LETHE_SOURCE_DIR:?LETHE_SOURCE_DIR is not set}"
PY="${LETHE_PYTHON:-python3}"
S="$LETHE_SOURCE_DIR/tests"
# shellcheck source=jobs/mpienv.sh
source "$S/../jobs/mpienv.sh"
source "$S/cases_lib.sh"
sh "$S/gpt2_fixture.sh" --fetch "$1" || exit $?
FX="$1/gpt2-fixture/package"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

"$PY" - "$FX/encoder.json" "$work/enc_plus.json" <<'EOF' || exit 1
import json, sys
e = json.load(open(sys.argv[1], encoding="utf-8"))
n = len(e)
for i, s in enumerate(["<s>", "</s>", "<|begin_of_text|>", "<|start_header_id|>",
                       "<|end_header_id|>", "<|eot_id|>"]):
    assert s not in e
    e[s] = n + i
json.dump(e, open(sys.argv[2], "w", encoding="utf-8"))
EOF
cat >"$work/edge.jsonl" <<'EOF'
{"question": "  Who wrote \"Río Lento\"?\n", "answer": "\tIt was Zoë Ng, in 1999.  ", "sample_id": 7}
{"question": "Line one\nline two?", "answer": "Yes.\n\nTwo paragraphs ✓.", "sample_id": 9}
EOF
cat >"$work/custom.json" <<'EOF'
{"name": "custom-qa", "prompt": "<|start_header_id|>{system} ({date})\n### Q: {q}\n### A:",
 "answer": " {a}<|eot_id|>{eos}", "special": ["<|eot_id|>", "<|start_header_id|>"],
 "trim": true, "system_prompt": "  Be brief. ", "date": "1 Jan 2000"}
EOF

splits=(forget="$S/data/tofu_forget.jsonl" retain="$work/edge.jsonl")
inputs=(--input "forget=$S/data/tofu_forget.jsonl" --input "retain=$work/edge.jsonl")
gpt2=(--tokenizer gpt2 --gpt2-encoder "$work/enc_plus.json" --gpt2-merges "$FX/vocab.bpe")
cases_init "$work/cases"
# good TAG NP TEMPLATE T [extra flags for prepare and the reference...]
good_one() {
    local tag="$1" np="$2" tmpl="$3" t="$4" bad=0
    shift 4
    local out="$work/$tag.h5"
    if ! lethe_mpirun "$MPIRUN" --oversubscribe -n "$np" "$LETHE_BIN" prepare --output "$out" \
        "${inputs[@]}" "${gpt2[@]}" --template "$tmpl" --seq-len "$t" "$@" >"$work/$tag.out" 2>&1; then
        echo "$tag: prepare failed: $(cat "$work/$tag.out")"
        bad=1
    fi
    local ref=()
    while [ $# -gt 0 ]; do
        case "$1" in
        --system-prompt) ref+=(--system "$2") ;;
        --date) ref+=(--date "$2") ;;
        esac
        shift 2
    done
    [ "$bad" = 0 ] && { "$PY" "$S/template_ref.py" "$out" "$tmpl" "$t" gpt2 \
        --encoder "$work/enc_plus.json" --node-pkg "$FX" "${ref[@]}" "${splits[@]}" || bad=1; }
    case_done "$tag" "$bad"
}
refuse_one() { # TAG WANT args...
    local tag="$1" want="$2" out="$work/$1.h5"
    shift 2
    lethe_mpirun "$MPIRUN" --oversubscribe -n 1 "$LETHE_BIN" prepare --output "$out" \
        "${inputs[@]}" "$@" >/dev/null 2>"$work/$tag.err"
    case_refusal "$tag" "prepare $*" "$want" "$out" $? "$work/$tag.err"
}
case_bg llama2 good_one llama2 1 llama2-chat 128
case_bg llama3 good_one llama3 1 llama3-chat 128
case_bg llama3_np2 good_one llama3_np2 2 llama3-chat 128
cases_wait 300
case_bg qa good_one qa 1 question-answer 128
case_bg llama3_set good_one llama3_set 1 llama3-chat 128 --system-prompt " Answer briefly. " \
    --date "26 Jul 2024"
case_bg file good_one file 1 "$work/custom.json" 64
cases_wait 300
case_bg qa_cut good_one qa_cut 1 question-answer 24
case_bg lacks3 refuse_one lacks3 \
    "template 'llama3-chat' names the special token '<|begin_of_text|>', which the gpt2 tokenizer's vocabulary lacks" \
    --tokenizer gpt2 --gpt2-encoder "$FX/encoder.json" --gpt2-merges "$FX/vocab.bpe" \
    --template llama3-chat
case_bg lacks2 refuse_one lacks2 \
    "template 'llama2-chat' names the special token '<s>', which the gpt2 tokenizer's vocabulary lacks" \
    --tokenizer gpt2 --gpt2-encoder "$FX/encoder.json" --gpt2-merges "$FX/vocab.bpe" \
    --template llama2-chat
cases_wait 300
cases_end "prepare_template" 9
