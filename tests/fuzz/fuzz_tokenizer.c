/* tests/fuzz/fuzz_tokenizer.c — libFuzzer harness of the GPT-2 BPE tokenizer
 * (io/text/tokenizer.c): loading encoder.json + vocab.bpe, then encoding and decoding.
 *
 * Input: encoder.json, NUL, vocab.bpe, NUL, text to encode (the rest, NULs included).
 * A refused pair of files gives one line; an accepted one must encode the text to ids
 * inside the vocabulary, and decode them. */
#include "fuzz_util.h"

#include "io/text/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    size_t jl, bl, tl;
    const uint8_t *j = fuzz_part(d, n, 0, &jl);
    const uint8_t *b = fuzz_part(d, n, 1, &bl);
    const uint8_t *t = fuzz_part(d, n, 2, &tl);
    if (t < d + n) tl = (size_t)(d + n - t); /* the text keeps its NULs */
    const char *enc = fuzz_write("encoder.json", j, jl);
    const char *bpe = fuzz_write("vocab.bpe", b, bl);
    tokenizer *tk = NULL;
    char err[1024];
    if (tokenizer_gpt2_load(&tk, enc, bpe, err, sizeof err)) {
        fuzz_one_line("tokenizer_gpt2_load", err);
        return 0;
    }
    tok_ids ids = {0};
    if (tokenizer_encode(tk, (const char *)t, tl, &ids) == 0) {
        int v = tokenizer_vocab_size(tk);
        for (int i = 0; i < ids.n; i++)
            if (ids.ids[i] < 0 || ids.ids[i] >= v) {
                fprintf(stderr, "fuzz: id %d outside [0, %d)\n", ids.ids[i], v);
                abort();
            }
        char *back = tokenizer_decode(tk, ids.ids, ids.n);
        free(back);
    }
    tok_ids_free(&ids);
    tokenizer_free(tk);
    return 0;
}
