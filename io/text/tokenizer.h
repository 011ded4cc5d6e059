/* io/text/tokenizer.h — the built-in tokenizers: byte-level, word-level, GPT-2 byte-level BPE.
 *
 * byte  ids 0..255 are the UTF-8 bytes of the text; 256 = <pad>, 257 = <eos>
 *       (vocab 258). Lossless, no files needed.
 * word  a vocabulary built from a corpus: a word is a maximal run of ASCII letters,
 *       digits, '_' and bytes >= 0x80 (so UTF-8 letters stay whole), with apostrophes
 *       kept between two word characters ("don't"); every other non-space ASCII
 *       character is a token of its own; whitespace separates and is dropped. Case is
 *       kept. ids: 0 = <pad>, 1 = <eos>, 2 = <unk>, then words by descending corpus
 *       count (ties in byte order). Decoding joins words with one space.
 * gpt2  OpenAI's GPT-2 byte-level BPE read from the standard encoder.json +
 *       vocab.bpe; pre-tokenisation follows GPT-2's regular expression with Unicode
 *       letter/number classes (tables generated from Unicode 17.0). <|endoftext|> is
 *       both eos and pad (padding positions are masked by lengths).
 *
 * A tokenizer is saved inside a dataset (tokenizer_save) so that a dataset is
 * self-contained: the root attribute "tokenizer" names the kind, and the group
 * /tokenizer holds the vocabulary (dataset "vocab", strings in id order) and, for
 * gpt2, the merges (dataset "merges", "a b" strings in rank order). No MPI here. */
#ifndef LETHE_TOKENIZER_H
#define LETHE_TOKENIZER_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { TOKENIZER_BYTE, TOKENIZER_WORD, TOKENIZER_GPT2 } tokenizer_kind;

typedef struct tokenizer tokenizer;

/* A growable id list; encode appends to it. */
typedef struct {
    int32_t *ids;
    int n, cap;
} tok_ids;
void tok_ids_free(tok_ids *v);

tokenizer *tokenizer_byte(void);
int tokenizer_gpt2_load(tokenizer **out, const char *encoder_json, const char *vocab_bpe, char *err,
                        size_t errlen);

/* Word vocabularies are built by counting a corpus. */
typedef struct word_counter word_counter;
word_counter *word_counter_new(void);
void word_counter_add(word_counter *wc, const char *text, size_t len);
void word_counter_free(word_counter *wc);
/* Keeps words seen >= min_count times, at most max_vocab ids in all (0: no limit). */
int tokenizer_word_build(tokenizer **out, const word_counter *wc, int min_count, int max_vocab,
                         char *err, size_t errlen);
/* From an explicit list in id order; words[0..2] must be <pad>, <eos>, <unk>. */
int tokenizer_word_from_list(tokenizer **out, char *const *words, int n, char *err, size_t errlen);

void tokenizer_free(tokenizer *t);

tokenizer_kind tokenizer_kind_of(const tokenizer *t);
const char *tokenizer_name(const tokenizer *t); /* "byte" | "word" | "gpt2" */
int tokenizer_vocab_size(const tokenizer *t);
int tokenizer_pad_id(const tokenizer *t);
int tokenizer_eos_id(const tokenizer *t);
/* The stored string of an id (word and gpt2; NULL for byte or out of range). */
const char *tokenizer_token(const tokenizer *t, int id);

/* Appends the ids of text[0..len) to out. Returns 0, or -1 when out of memory. */
int tokenizer_encode(const tokenizer *t, const char *text, size_t len, tok_ids *out);
/* Text of ids (specials are skipped); malloc'd, NUL-terminated; NULL when out of memory. */
char *tokenizer_decode(const tokenizer *t, const int32_t *ids, int n);

/* Writes the /tokenizer group into an open file (the root attributes tokenizer,
 * vocab_size, pad_id and eos_id are the dataset writer's). */
int tokenizer_save(const tokenizer *t, hid_t file, char *err, size_t errlen);
/* Reads the tokenizer of a dataset file (serial open). */
int tokenizer_load(tokenizer **out, const char *path, char *err, size_t errlen);

#endif
