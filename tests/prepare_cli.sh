#!/usr/bin/env bash
# tests/prepare_cli.sh — `lethe prepare` through the real command line.
#
# Good runs, each at 1 and 2 ranks (rank 0 does the work; the verdict and the file
# must not depend on the count):
#   byte: tests/data qa (forget, with paraphrases and 3 perturbed answers; retain),
#         text and pre-tokenised inputs at T=60. h5ls: every split's datasets with the
#         row counts the fixtures imply (qa: one row per record; text: one row per
#         window of 48 tokens of UTF-8 bytes + EOS, windows under 2 tokens dropped;
#         tokens: one per record), K=3 for forget; root attributes tokenizer, vocab_size
#         258, pad_id 256, eos_id 257, seq_len 60, prompt_template; split attributes
#         format and source. retain lengths and answer_start equal the byte counts of
#         template(question), " " + answer and EOS. The 1- and 2-rank files dump equal.
#   word: --word-min-count 2: tokenizer "word", /tokenizer/vocab holds vocab_size strings.
#   none: pre-tokenised input with --vocab-size/--pad-id/--eos-id recorded as given.
#   template: --template question-answer (byte) against tests/template_ref.py's rendering
#         (every row, length, answer_start, prompt_merged, root attributes); the other
#         templates need a vocabulary with special tokens: tests/prepare_template.sh.
# Refusals (flag errors at 2 ranks, errors in the files at 1 and 2): exit 2, exactly one stderr line starting 'lethe: '
# with the expected words, and nothing at OUT.h5 or OUT.h5.tmp; a failed run leaves an
# existing OUT.h5 as it was. `lethe prepare --help` lists the flags (exit 0).
#
# Each mpirun goes through lethe_mpirun (jobs/mpienv.sh): a session folder of its own
# (the refusals run at once) and no mpirun banner about a non-zero exit.
# env: MPIRUN, LETHE_BIN, LETHE_SOURCE_DIR; python3 (json only) computes the expected
# counts from the fixtures.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/cases_lib.sh"
: "${MPIRUN:?MPIRUN is not set}"
: "${LETHE_BIN:?LETHE_BIN is not set}"
: "${LETHE_SOURCE_DIR:?LETHE_SOURCE_DIR is not set}"
PY="${LETHE_PYTHON:-python3}"
# shellcheck source=jobs/mpienv.sh
source "$(dirname "${BASH_SOURCE[0]}")/../jobs/mpienv.sh"
D="$LETHE_SOURCE_DIR/tests/data"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
fail=0
FAIL() {
    echo "FAIL: $*"
    fail=1
}
prep() { # prep TAG N args...: lethe prepare on N ranks, output in $work/TAG.{out,err}
    local tag="$1" n="$2"
    shift 2
    lethe_mpirun "$MPIRUN" --oversubscribe -n "$n" "$LETHE_BIN" prepare "$@" \
        >"$work/$tag.out" 2>"$work/$tag.err"
}
attr() { # attr FILE OBJECT NAME: the value of an attribute as h5dump prints it
    h5dump -a "$2/$3" "$1" 2>/dev/null | sed -n 's/^ *(0): //p' | head -n 1
}
rows() { # rows FILE DATASET: the dimensions h5ls reports, "4, 48"
    h5ls "$1$2" 2>/dev/null | sed -n 's/.*Dataset {\(.*\)}.*/\1/p'
}
ints() { # ints FILE DATASET: the values, one per line
    h5dump -d "$2" -y -w 0 "$1" 2>/dev/null | sed -n '/DATA {/,/}/p' | sed '1d;$d' |
        tr ',' '\n' | tr -d ' ' | grep -v '^$'
}

# ---- expectations from the fixtures ----------------------------------------------------
T=60
TEMPLATE='[INST] {q} [/INST]'
read -r n_forget n_retain n_text n_tok < <("$PY" - "$D" "$T" <<'EOF'
import json, sys
d, T = sys.argv[1], int(sys.argv[2])
def recs(f):
    return [json.loads(l) for l in open(f"{d}/{f}", encoding="utf-8") if l.strip()]
text = 0
for r in recs("muse_text.jsonl"):
    n = len(r["text"].encode()) + 1  # bytes + EOS
    text += sum(1 for s in range(0, n, T) if min(T, n - s) >= 2)
print(len(recs("tofu_forget.jsonl")), len(recs("tofu_retain.jsonl")), text,
      len(recs("pretok.jsonl")))
EOF
)
"$PY" - "$D" "$T" "$TEMPLATE" >"$work/retain_expect.txt" <<'EOF'
import json, sys
d, T, tmpl = sys.argv[1], int(sys.argv[2]), sys.argv[3]
for l in open(f"{d}/tofu_retain.jsonl", encoding="utf-8"):
    if l.strip():
        r = json.loads(l)
        p = len(tmpl.replace("{q}", r["question"]).encode())
        print(min(T, p + len((" " + r["answer"]).encode()) + 1), p)
EOF
[ -n "$n_tok" ] || { echo "FAIL: cannot compute the expected counts with $PY"; exit 1; }

# ---- good runs -------------------------------------------------------------------------
good_inputs=(--input "forget=$D/tofu_forget.jsonl" --input "retain=$D/tofu_retain.jsonl:qa"
    --input "text=$D/muse_text.jsonl:text" --input "eval/pretok=$D/pretok.jsonl:tokens")
for n in 1 2; do
    out="$work/byte$n.h5"
    prep byte$n "$n" --output "$out" "${good_inputs[@]}" --seq-len "$T" \
        --prompt-template "$TEMPLATE" --truncate ||
        { FAIL "byte np$n: exit $?"; cat "$work/byte$n.err"; continue; }
    [ -s "$work/byte$n.err" ] && FAIL "byte np$n: stderr: $(cat "$work/byte$n.err")"
    grep -q "wrote '$out'" "$work/byte$n.out" || FAIL "byte np$n: no summary line on stdout"
    [ "$(grep -c "wrote" "$work/byte$n.out")" -eq 1 ] || FAIL "byte np$n: summary printed twice"
    [ "$(rows "$out" /forget/input_ids)" = "$n_forget, $T" ] ||
        FAIL "byte np$n: /forget/input_ids is {$(rows "$out" /forget/input_ids)}, expected {$n_forget, $T}"
    [ "$(rows "$out" /forget/perturbed_ids)" = "$n_forget, 3, $T" ] ||
        FAIL "byte np$n: /forget/perturbed_ids is {$(rows "$out" /forget/perturbed_ids)}"
    [ "$(rows "$out" /forget/paraphrased_ids)" = "$n_forget, $T" ] ||
        FAIL "byte np$n: /forget/paraphrased_ids is {$(rows "$out" /forget/paraphrased_ids)}"
    [ "$(rows "$out" /retain/input_ids)" = "$n_retain, $T" ] ||
        FAIL "byte np$n: /retain/input_ids is {$(rows "$out" /retain/input_ids)}"
    [ "$(rows "$out" /text/input_ids)" = "$n_text, $T" ] ||
        FAIL "byte np$n: /text/input_ids is {$(rows "$out" /text/input_ids)}, expected {$n_text, $T}"
    [ "$(rows "$out" /eval/pretok/input_ids)" = "$n_tok, $T" ] ||
        FAIL "byte np$n: /eval/pretok/input_ids is {$(rows "$out" /eval/pretok/input_ids)}"
    for ds in lengths answer_start sample_id; do
        [ "$(rows "$out" /retain/$ds)" = "$n_retain" ] || FAIL "byte np$n: /retain/$ds has {$(rows "$out" /retain/$ds)}"
    done
    [ -z "$(rows "$out" /retain/perturbed_ids)" ] || FAIL "byte np$n: /retain has perturbed_ids"
    paste -d ' ' <(ints "$out" /retain/lengths) <(ints "$out" /retain/answer_start) \
        >"$work/retain_got$n.txt"
    cmp -s "$work/retain_got$n.txt" "$work/retain_expect.txt" ||
        FAIL "byte np$n: /retain lengths/answer_start $(tr '\n' ';' <"$work/retain_got$n.txt"), expected $(tr '\n' ';' <"$work/retain_expect.txt")"
    for kv in tokenizer='"byte"' vocab_size=258 pad_id=256 eos_id=257 seq_len=$T \
        prompt_template="\"$TEMPLATE\""; do
        k="${kv%%=*}" v="${kv#*=}"
        [ "$(attr "$out" / "$k")" = "$v" ] || FAIL "byte np$n: attribute /$k is '$(attr "$out" / "$k")', expected '$v'"
    done
    [ "$(attr "$out" /forget format)" = '"qa"' ] || FAIL "byte np$n: /forget format $(attr "$out" /forget format)"
    [ "$(attr "$out" /text format)" = '"text"' ] || FAIL "byte np$n: /text format $(attr "$out" /text format)"
    [ "$(attr "$out" /eval/pretok format)" = '"tokens"' ] || FAIL "byte np$n: /eval/pretok format"
    [ "$(attr "$out" /retain source)" = "\"$D/tofu_retain.jsonl\"" ] || FAIL "byte np$n: /retain source"
    [[ "$(attr "$out" / source_digest)" == '"sha256:'* ]] || FAIL "byte np$n: no source_digest"
    ls "$work"/*.tmp >/dev/null 2>&1 && FAIL "byte np$n: left $(ls "$work"/*.tmp)"
done
if [ -f "$work/byte1.h5" ] && [ -f "$work/byte2.h5" ]; then
    cmp -s <(h5dump "$work/byte1.h5" | sed 1d) <(h5dump "$work/byte2.h5" | sed 1d) ||
        FAIL "the files prepared at 1 and 2 ranks differ"
fi

for n in 1 2; do
    out="$work/word$n.h5"
    if prep word$n "$n" --output "$out" --input "forget=$D/tofu_forget.jsonl" \
        --input "retain=$D/tofu_retain.jsonl" --tokenizer word --word-min-count 2 --seq-len 64; then
        v="$(attr "$out" / vocab_size)"
        [ "$(attr "$out" / tokenizer)" = '"word"' ] || FAIL "word np$n: tokenizer attribute"
        [ "$(rows "$out" /tokenizer/vocab)" = "$v" ] ||
            FAIL "word np$n: /tokenizer/vocab has {$(rows "$out" /tokenizer/vocab)} strings, vocab_size $v"
        [ "$(rows "$out" /retain/input_ids)" = "$n_retain, 64" ] || FAIL "word np$n: /retain rows"
    else
        FAIL "word np$n: exit $?: $(cat "$work/word$n.err")"
    fi
    out="$work/none$n.h5"
    if prep none$n "$n" --output "$out" --input "forget=$D/pretok.jsonl" --tokenizer none \
        --vocab-size 20 --pad-id 0 --eos-id 1 --seq-len=8; then
        [ "$(attr "$out" / tokenizer)/$(attr "$out" / vocab_size)/$(attr "$out" / pad_id)/$(attr "$out" / eos_id)" = '"none"/20/0/1' ] ||
            FAIL "none np$n: attributes $(attr "$out" / tokenizer) $(attr "$out" / vocab_size) $(attr "$out" / pad_id) $(attr "$out" / eos_id)"
        [ "$(rows "$out" /forget/input_ids)" = "$n_tok, 8" ] || FAIL "none np$n: /forget rows"
        [ "$(ints "$out" /forget/sample_id | tr '\n' ' ')" = "9 3 " ] || FAIL "none np$n: sample ids"
    else
        FAIL "none np$n: exit $?: $(cat "$work/none$n.err")"
    fi
done

for n in 1 2; do
    out="$work/tqa$n.h5"
    if prep tqa$n "$n" --output "$out" --input "forget=$D/tofu_forget.jsonl" \
        --input "retain=$D/tofu_retain.jsonl" --template question-answer --seq-len 64; then
        "$PY" "$LETHE_SOURCE_DIR/tests/template_ref.py" "$out" question-answer 64 byte \
            "forget=$D/tofu_forget.jsonl" "retain=$D/tofu_retain.jsonl" >"$work/tqa$n.ref" ||
            FAIL "template np$n: $(cat "$work/tqa$n.ref")"
    else
        FAIL "template np$n: exit $?: $(cat "$work/tqa$n.err")"
    fi
done

# ---- refusals ------------------------------------------------------------------------
# refuse TAG WANT args...: a case of tests/cases_lib.sh at each rank count of $ranks, run
# in the background (the runs spend their time in MPI start-up); collect waits for them
# (at most 120 s each) and prints one verdict line per case. Flag errors are found by
# every rank alike before any work, so they run at 2 ranks (where one line, not two, is
# the point); errors found in the files by rank 0 alone run at 1 and 2.
# shellcheck disable=SC2317 # run by case_bg
refuse_one() { # TAG N WANT args...
    local t="$1.np$2" n="$2" out="$work/$1.np$2.h5" want="$3" a args=()
    shift 3
    for a in "$@"; do args+=("${a//@OUT@/$out}"); done
    prep "$t" "$n" "${args[@]}"
    case_refusal "$t" "lethe prepare ${args[*]}" "$want" "$out" $? "$work/$t.err"
}
refuse() {
    local tag="$1" want="$2" n
    shift 2
    for n in $ranks; do case_bg "$tag.np$n" refuse_one "$tag" "$n" "$want" "$@"; done
}
collect() { cases_wait 120; }
cases_init "$work/cases"
ok_in="forget=$D/tofu_retain.jsonl"
ranks=2
refuse unknown "unknown option '--outptu'" --outptu @OUT@ --input "$ok_in"
refuse positional "unexpected argument 'extra.json'" extra.json --output @OUT@ --input "$ok_in"
refuse no_output "no --output given" --input "$ok_in"
refuse no_input "no --input given" --output @OUT@
collect
refuse input_eq "--input 'forget': expected SPLIT=PATH[:FORMAT]" --output @OUT@ --input forget
refuse input_fmt "format 'qaa' is not one of auto, qa, text, tokens" --output @OUT@ \
    --input "$ok_in:qaa"
refuse seq_small "--seq-len '1': expected an integer in [2, 16777216]" --output @OUT@ \
    --input "$ok_in" --seq-len 1
refuse seq_word "--seq-len 'abc': expected an integer" --output @OUT@ --input "$ok_in" --seq-len abc
collect
refuse no_value "--seq-len needs a value" --output @OUT@ --input "$ok_in" --seq-len
refuse tokenizer "--tokenizer 'sentencepiece' is not one of byte, word, gpt2, none" --output @OUT@ \
    --input "$ok_in" --tokenizer sentencepiece
refuse contradict "--truncate and --strict contradict" --output @OUT@ --input "$ok_in" --truncate --strict
refuse twice "--output given twice" --output @OUT@ --output @OUT@ --input "$ok_in"
collect
refuse gpt2_stray "apply to --tokenizer gpt2, not 'byte'" --output @OUT@ --input "$ok_in" \
    --gpt2-encoder encoder.json
refuse gpt2_half "--tokenizer gpt2 needs --gpt2-encoder encoder.json and --gpt2-merges vocab.bpe" \
    --output @OUT@ --input "$ok_in" --tokenizer gpt2 --gpt2-encoder encoder.json
collect
ranks="1 2"
refuse gpt2_file "tokenizer file '$work/nope.json': cannot open" --output @OUT@ --input "$ok_in" \
    --tokenizer gpt2 --gpt2-encoder "$work/nope.json" --gpt2-merges "$work/nope.bpe"
refuse none_qa "'$D/tofu_retain.jsonl' line 1: key 'answer_start' is missing" --output @OUT@ \
    --input "$ok_in" --tokenizer none --vocab-size 10 --pad-id 0 --eos-id 1
collect
ranks=2
refuse word_stray "apply to --tokenizer word, not 'byte'" --output @OUT@ --input "$ok_in" \
    --word-min-count 2
refuse none_half "--tokenizer none needs --vocab-size, --pad-id and --eos-id" --output @OUT@ \
    --input "$ok_in" --tokenizer none --vocab-size 10
refuse none_pad "--pad-id 10 and --eos-id 1 must be below --vocab-size 10" --output @OUT@ \
    --input "$ok_in" --tokenizer none --vocab-size 10 --pad-id 10 --eos-id 1
collect
ranks="1 2"
refuse missing "input '$work/nope.jsonl': cannot open" --output @OUT@ --input "forget=$work/nope.jsonl"
refuse bad_json "'$D/bad_json.jsonl' line 2:" --output @OUT@ --input "forget=$D/bad_json.jsonl"
collect
refuse bad_missing "'$D/bad_missing.jsonl' line 3: key 'answer' is missing" --output @OUT@ \
    --input "forget=$D/bad_missing.jsonl"
refuse bad_dup "sample_id 4 appears twice" --output @OUT@ --input "forget=$D/bad_dup.jsonl"
collect
refuse strict "'$D/tofu_retain.jsonl' line 1: answer:" --output @OUT@ --input "$ok_in" \
    --strict --seq-len "$T"
refuse no_dir "cannot create '$work/no/such/dir/x.h5.tmp'" --output "$work/no/such/dir/x.h5" \
    --input "$ok_in"
ranks=2
refuse collide "collide" --output @OUT@ --input "$ok_in" --input "forget=$D/tofu_forget.jsonl"
collect
printf '{"prompt": "Q: {q}", "answer": "{a}", "spezial": []}\n' >"$work/tpl_key.json"
printf '{"prompt": "Q: {q} A: ", "answer": "{eos}"}\n' >"$work/tpl_noa.json"
refuse tpl_both "--template replaces --prompt-template and --answer-prefix" --output @OUT@ \
    --input "$ok_in" --template llama2-chat --prompt-template "Q: {q}"
refuse tpl_sys "--system-prompt and --date apply to --template" --output @OUT@ --input "$ok_in" \
    --system-prompt hi
collect
ranks="1 2"
refuse tpl_nosys "--system-prompt is given but template 'llama2-chat' has no {system}" \
    --output @OUT@ --input "$ok_in" --template llama2-chat --system-prompt hi
refuse tpl_lacks "template 'llama3-chat' names the special token '<|begin_of_text|>', which the byte tokenizer's vocabulary lacks" \
    --output @OUT@ --input "$ok_in" --template llama3-chat
collect
refuse tpl_file "--template '$work/nope.json' is not a built-in (llama2-chat, llama3-chat, question-answer), nor a file" \
    --output @OUT@ --input "$ok_in" --template "$work/nope.json"
refuse tpl_key "template file '$work/tpl_key.json': unknown key 'spezial'" --output @OUT@ \
    --input "$ok_in" --template "$work/tpl_key.json"
collect
refuse tpl_noa "template '$work/tpl_noa.json': {a} must be in the answer and only there" \
    --output @OUT@ --input "$ok_in" --template "$work/tpl_noa.json"
printf '{"prompt": "Q: {q} A:", "answer": "{a}"}\n' >"$work/tpl_bare.json"
printf '{"question": "Who?", "answer": ""}\n' >"$work/empty_answer.jsonl"
refuse tpl_empty "'$work/empty_answer.jsonl' line 1: answer: template '$work/tpl_bare.json' gives no token after the prompt" \
    --output @OUT@ --input "forget=$work/empty_answer.jsonl" --template "$work/tpl_bare.json"
collect

# a failed run leaves an existing output as it was (the sample ids clash only after every
# row is written, so this failure happens at the very end of the write)
if [ -f "$work/byte1.h5" ]; then
    cp "$work/byte1.h5" "$work/keep.h5"
    cp "$work/byte1.h5" "$work/keep_orig.h5"
    for n in 1 2; do
        prep keep$n "$n" --output "$work/keep.h5" --input "forget=$D/bad_dup.jsonl"
        rc=$?
        [ "$rc" -eq 2 ] || FAIL "keep np$n: exit $rc, expected 2"
        cmp -s "$work/keep.h5" "$work/keep_orig.h5" || FAIL "keep np$n: a failed run changed the existing output"
        [ -e "$work/keep.h5.tmp" ] && FAIL "keep np$n: left keep.h5.tmp"
    done
fi

# --help needs no MPI and lists the flags
help="$("$LETHE_BIN" prepare --help 2>&1)"
rc=$?
[ "$rc" -eq 0 ] || FAIL "lethe prepare --help: exit $rc"
for flag in --output "--input SPLIT=PATH" --tokenizer --gpt2-encoder --gpt2-merges --seq-len \
    --prompt-template --truncate --strict --word-min-count --word-max-vocab --vocab-size \
    --pad-id --eos-id --template --system-prompt --date; do
    [[ "$help" == *"$flag"* ]] || FAIL "lethe prepare --help does not mention $flag"
done

cases_end "prepare_cli refusals" 48 || fail=1
[ "$fail" -eq 0 ] && echo "prepare_cli: all checks passed"
exit "$fail"
