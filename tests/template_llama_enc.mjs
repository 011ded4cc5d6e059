// The reference encoder of tests/template_ref.py for the Llama tokenizers (tests/
// template_llama.sh): reads {"texts": [...], "specials": [...]} on stdin and writes
// {"ids": [[...]...], "specials": {"<s>": 1, ...}}, each text encoded as plain text by the
// npm package's own encoder and each special string mapped to its id by the package.
//   llama3  llama3-tokenizer-js: encode(s, {bos: false, eos: false}) with a special-token
//           regex that matches nothing (a special string inside a text is text: the
//           template's specials are split off by the caller); specials by getSpecialTokenId
//   llama2  llama-tokenizer-js: encode(s, false, true) -- no bos, SentencePiece's '▁'
//           prefix on each text (each text follows a special or starts the row, where
//           SentencePiece and Hugging Face's Prepend normalizer both put it); specials by
//           their index in the package's vocabulary
// usage: node template_llama_enc.mjs llama3|llama2 <package dir>
import fs from 'fs';

const [what, pkg] = process.argv.slice(2);
const req = JSON.parse(fs.readFileSync(0, 'utf-8'));
let encode, special;
if (what === 'llama3') {
    const tok = (await import(pkg + '/bundle/llama3-tokenizer-with-baked-data.js')).default;
    encode = s => tok.encode(s, {bos: false, eos: false, specialTokenRegex: /(?!)/g});
    special = s => tok.getSpecialTokenId(s);
} else if (what === 'llama2') {
    const tok = (await import(pkg + '/llama-tokenizer.js')).default;
    encode = s => tok.encode(s, false, true);
    special = s => tok.vocabById.indexOf(s);
} else {
    throw new Error('usage: node template_llama_enc.mjs llama3|llama2 <package dir>');
}
const specials = {};
for (const s of req.specials) {
    const id = special(s);
    if (!(id >= 0)) throw new Error('no id for the special ' + s);
    specials[s] = id;
}
const ids = req.texts.map(s => {
    const t = encode(s);
    if (!Array.isArray(t) || (s.length && !t.length)) throw new Error('cannot encode ' + s);
    return t;
});
process.stdout.write(JSON.stringify({ids, specials}));
