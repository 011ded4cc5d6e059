/* io/text/tokenizer_impl.h — what the parts of the tokenizers share (internal): the string
 * hash map, the tokenizer's state and the helpers each part exports (tokenizer.c: the
 * map, ids, byte and word tokenizers, encode/decode; tokenizer_gpt2.c: GPT-2 BPE;
 * tokenizer_gpt2_pretok.c: its pre-tokenizer; tokenizer_h5.c: saving into and loading
 * from a dataset). */
#ifndef LETHE_IO_TOKENIZER_IMPL_H
#define LETHE_IO_TOKENIZER_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "tokenizer.h"

typedef struct {
    char *key; /* owned, NUL-terminated; NULL = empty slot */
    int32_t len;
    int32_t val;
} hm_slot;

typedef struct {
    hm_slot *slots;
    size_t cap, n; /* cap is a power of two */
} hmap;

struct tokenizer {
    tokenizer_kind kind;
    int vocab_size, pad_id, eos_id, unk_id;
    char **tokens; /* (vocab_size) id -> string; word and gpt2 */
    hmap vocab;    /* string -> id */
    hmap ranks;    /* gpt2: "a b" -> merge rank */
    char **merges; /* gpt2: (n_merges) in rank order, kept for saving */
    int n_merges;
    uint16_t byte_cp[256]; /* gpt2: byte -> printable code point */
    int16_t cp_byte[512];  /* gpt2: code point -> byte (-1: none) */
};

/* tokenizer.c */
int tk_hm_get(const hmap *m, const char *k, size_t n);
hm_slot *tk_hm_upsert(hmap *m, const char *k, size_t n, int32_t init);
int tk_push(tok_ids *v, int32_t id);
tokenizer *tk_new(tokenizer_kind kind);

/* tokenizer_gpt2_pretok.c: one UTF-8 code point; the end of the GPT-2 pre-tokenizer's
 * piece that starts at s[i] */
size_t tk_utf8_next(const unsigned char *s, size_t n, size_t i, uint32_t *cp);
size_t tk_gpt2_piece(const unsigned char *s, size_t n, size_t i);

/* tokenizer_gpt2.c */
int tk_gpt2_encode(const tokenizer *t, const char *text, size_t n, tok_ids *out);
int tk_gpt2_setup(tokenizer *t, char *const *tokens, int nv, char *const *merges, int nm,
                  const char *origin, char *err, size_t errlen);

#endif
