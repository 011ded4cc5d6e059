// The reference ids for tests/llama_tok_fixture.sh: encodes a JSON array of strings with
// the npm package's own encoder, without bos/eos (lethe's encode adds neither).
// usage: node llama_tok_ref.mjs llama3|llama2 <package dir> <strings.json> <out.json> [qa.jsonl]
import fs from 'fs';

const [what, pkg, strings, out] = process.argv.slice(2);
const texts = JSON.parse(fs.readFileSync(strings, 'utf-8'));
let encode;
if (what === 'llama3') {
    const tok = (await import(pkg + '/bundle/llama3-tokenizer-with-baked-data.js')).default;
    encode = s => tok.encode(s, {bos: false, eos: false});
} else {
    const tok = (await import(pkg + '/llama-tokenizer.js')).default;
    // add_bos_token false, add_preceding_space true (SentencePiece's dummy prefix)
    encode = s => tok.encode(s, false, true);
}
fs.writeFileSync(out, JSON.stringify(texts.map(s => encode(s) ?? [])));
// with a 5th argument, a JSON-lines qa file: the ids of its first record's prompt (the
// template '[INST] {q} [/INST]') and answer (' ' + answer), for lethe prepare's row 0
if (process.argv[6]) {
    const rec = JSON.parse(fs.readFileSync(process.argv[6], 'utf-8').split('\n')[0]);
    fs.writeFileSync(out.replace(/\.json$/, '-row0.json'), JSON.stringify(
        [encode('[INST] ' + rec.question + ' [/INST]'), encode(' ' + rec.answer)]));
}
