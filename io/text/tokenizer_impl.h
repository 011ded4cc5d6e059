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

/* Piece types (SentencePiece's, less one): what encoding may produce from text and what
 * decoding shows. */
enum { TK_NORMAL = 1, TK_UNKNOWN = 2, TK_CONTROL = 3, TK_ADDED = 4, TK_UNUSED = 5, TK_BYTE = 6 };

struct tokenizer {
    tokenizer_kind kind;
    int vocab_size, pad_id, eos_id, unk_id, bos_id;
    char **tokens; /* (vocab_size) id -> string; word, gpt2, llama3, spm */
    hmap vocab;    /* string -> id */
    hmap ranks;    /* gpt2, llama3, spm from tokenizer.json: "a b" -> merge rank */
    char **merges; /* (n_merges) in rank order, kept for saving */
    int n_merges;
    uint16_t byte_cp[256]; /* gpt2, llama3: byte -> printable code point */
    int16_t cp_byte[512];  /* gpt2, llama3: code point -> byte (-1: none) */
    /* llama3 and spm */
    uint8_t *ptype;          /* (vocab_size) TK_* */
    float *scores;           /* (vocab_size) spm from a .model: merge by score; NULL: by rank */
    int32_t *added;          /* (n_added) ids split out of the text before the model sees it */
    int n_added;             /*   (TK_CONTROL or TK_ADDED pieces; longest match wins) */
    uint8_t added_first[32]; /* bitmap of the first bytes of added pieces */
    int ignore_merges;       /* llama3: a pre-token that is in the vocabulary is taken whole */
    int add_prefix;          /* spm: 0 never, 1 every text segment, 2 the text's first only,
                              * 3 the text's start (tokenizer_spm.c: prefix_of) */
    int byte_fallback;       /* spm: unknown characters -> <0xXX> pieces */
    int32_t byte_id[256];    /* spm: id of <0xXX> (-1: none) */
    int spm_words;           /* spm: no piece has a non-'▁' character before a '▁', so pieces
                              * never span the start of a '▁' run: encode word by word */
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

size_t tk_llama3_piece(const unsigned char *s, size_t n, size_t i);

/* tokenizer_gpt2.c: the BPE merge loop shared by every BPE kind: w[0..wn) split into
 * UTF-8 characters, merged one pair at a time (best rank, or best score when t->scores;
 * ties: leftmost); the symbols are left in b->off/b->len. Returns the symbol count. */
typedef struct {
    size_t *off, *len; /* (cap) the symbols: offset and length in the word */
    double *prio;      /* (cap) merge priority of symbols i and i+1 (DBL_MAX: none) */
    char *key;         /* (2 cap + 2) a pair's lookup key */
    size_t cap;
} tk_bpe_buf;
int tk_bpe_reserve(tk_bpe_buf *b, size_t wn); /* room for words of wn bytes; 0 or -1 */
void tk_bpe_release(tk_bpe_buf *b);
size_t tk_bpe_merge(const tokenizer *t, const char *w, size_t wn, tk_bpe_buf *b);
/* A model's encoder of text[a..b), a stretch of text[0..n) free of added pieces
 * (tokenizer.c finds those). */
typedef int (*tk_segment_fn)(const tokenizer *t, const char *text, size_t n, size_t a, size_t b,
                             tok_ids *out);
int tk_bytelevel_segment(const tokenizer *t, const char *text, size_t n, size_t a, size_t b,
                         tok_ids *out);
int tk_bytelevel_setup(tokenizer *t, char *const *tokens, int nv, char *const *merges, int nm,
                       const char *origin, char *err, size_t errlen);
int tk_gpt2_setup(tokenizer *t, char *const *tokens, int nv, char *const *merges, int nm,
                  const char *origin, char *err, size_t errlen);
/* the vocabulary (id order; strings copied) and its map */
int tk_set_vocab(tokenizer *t, char *const *tokens, int nv, const char *origin, char *err,
                 size_t errlen);
/* ranks of "a b" merges (strings copied) */
int tk_set_merges(tokenizer *t, char *const *merges, int nm, const char *origin, char *err,
                  size_t errlen);

/* tokenizer.c: the added pieces (t->added) found in text: the longest one starting at i
 * (its id, and its length in *len), or -1 */
int tk_added_at(const tokenizer *t, const char *s, size_t n, size_t i, size_t *len);
/* sets t->added from ptype (TK_CONTROL/TK_ADDED pieces, or only TK_ADDED when
 * control_too is 0) */
int tk_set_added(tokenizer *t, int control_too);

/* tokenizer_spm.c */
int tk_spm_segment(const tokenizer *t, const char *text, size_t n, size_t a, size_t b,
                   tok_ids *out);
int tk_spm_setup(tokenizer *t, const char *origin, char *err, size_t errlen);
size_t tk_spm_decode_piece(const tokenizer *t, int id, int first, char *o);

/* tokenizer_hf_json.c: need_eos 0 leaves eos_id -1 when the file names none of the
 * usual end pieces (tokenizer_load_dir then takes it from the configuration) */
int tk_hf_json_load(tokenizer **out, const char *path, int need_eos, char *err, size_t errlen);
/* tokenizer_spm_model.c */
int tk_spm_model_load(tokenizer **out, const char *path, char *err, size_t errlen);

#endif
