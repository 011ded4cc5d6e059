/* io/text/tokenizer.h — the built-in tokenizers: byte-level, word-level, GPT-2 byte-level
 * BPE, and those of Llama model directories (Llama-3 byte-level BPE, SentencePiece BPE).
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
 * llama3  byte-level BPE of a Llama-3 tokenizer.json: its added tokens (<|eot_id|>, ...)
 *       are split out of the text first (longest match), then Llama-3's pre-tokenizer
 *       regex (GPT-2's classes), then BPE by merge rank; with ignore_merges a
 *       pre-token that is itself in the vocabulary is taken whole. The added pieces'
 *       lstrip/rstrip/single_word flags are not applied (Llama's are all false); the
 *       contractions are matched in ASCII case only ('ſ' is not 's'), as JavaScript's
 *       port of the regex does. Special added pieces are skipped by decode.
 * spm   SentencePiece BPE (Llama-2) from tokenizer.model or tokenizer.json: spaces
 *       become '▁', '▁' is prepended, characters are merged by piece score (.model) or
 *       merge rank (tokenizer.json), and characters left outside the vocabulary become
 *       <0xXX> byte pieces (byte fallback) or <unk>. Only the identity normalizer is
 *       supported. A .model's user-defined pieces, and a tokenizer.json's added tokens,
 *       are split out of the text first; control pieces (<s>) of a .model are not. The
 *       '▁' prefix: a .model prefixes the text (even before a user-defined piece at its
 *       start); a tokenizer.json's Prepend normalizer every stretch between added
 *       tokens, its Metaspace per prepend_scheme (always / first / never). UNUSED
 *       pieces merge like normal ones (SentencePiece re-splits them; Llama has none).
 *
 * A tokenizer is saved inside a dataset (tokenizer_save) so that a dataset is
 * self-contained: the root attribute "tokenizer" names the kind, and the group
 * /tokenizer holds the vocabulary (dataset "vocab", strings in id order) and, for
 * gpt2, llama3 and spm, the merges (dataset "merges", "a b" strings in rank order);
 * llama3 and spm add "types" (uint8 piece types), "scores" (float32, spm from a .model)
 * and the group's integer attributes bos_id, unk_id, ignore_merges, add_prefix,
 * byte_fallback. No MPI here. */
#ifndef LETHE_TOKENIZER_H
#define LETHE_TOKENIZER_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    TOKENIZER_BYTE,
    TOKENIZER_WORD,
    TOKENIZER_GPT2,
    TOKENIZER_LLAMA3,
    TOKENIZER_SPM
} tokenizer_kind;

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

/* A Hugging Face tokenizer.json: model.type BPE, either byte-level with Llama-3's
 * pre-tokenizer (kind llama3) or SentencePiece-style with byte fallback (kind spm). */
int tokenizer_hf_json_load(tokenizer **out, const char *path, char *err, size_t errlen);
/* A SentencePiece tokenizer.model (ModelProto) of a BPE model (kind spm). */
int tokenizer_spm_load(tokenizer **out, const char *path, char *err, size_t errlen);
/* The tokenizer of a model directory: tokenizer.json when present, else tokenizer.model;
 * bos/eos/pad named by tokenizer_config.json, else special_tokens_map.json, else the
 * file's own (pad: eos when none is named). */
int tokenizer_load_dir(tokenizer **out, const char *dir, char *err, size_t errlen);

void tokenizer_free(tokenizer *t);

tokenizer_kind tokenizer_kind_of(const tokenizer *t);
const char *tokenizer_name(const tokenizer *t); /* "byte" | "word" | "gpt2" | "llama3" | "spm" */
int tokenizer_vocab_size(const tokenizer *t);
int tokenizer_pad_id(const tokenizer *t);
int tokenizer_eos_id(const tokenizer *t);
int tokenizer_bos_id(const tokenizer *t); /* -1: none */
/* The id of a piece as stored (e.g. "<|eot_id|>", "▁the", "Ġthe"); -1 when absent. */
int tokenizer_token_id(const tokenizer *t, const char *piece);
/* The stored string of an id (word and gpt2; NULL for byte or out of range). */
const char *tokenizer_token(const tokenizer *t, int id);

/* Appends the ids of text[0..len) to out. Returns 0, or -1 when out of memory. */
int tokenizer_encode(const tokenizer *t, const char *text, size_t len, tok_ids *out);
/* The same, every added piece met in the text encoded as text (not split out by its id):
 * the templates' text, whose specials are their own (io/text/prepare_template.c). */
int tokenizer_encode_text(const tokenizer *t, const char *text, size_t len, tok_ids *out);
/* Text of ids (specials are skipped); malloc'd, NUL-terminated; NULL when out of memory. */
char *tokenizer_decode(const tokenizer *t, const int32_t *ids, int n);

/* Writes the /tokenizer group into an open file (the root attributes tokenizer,
 * vocab_size, pad_id and eos_id are the dataset writer's). */
int tokenizer_save(const tokenizer *t, hid_t file, char *err, size_t errlen);
/* Reads the tokenizer of a dataset file (serial open). */
int tokenizer_load(tokenizer **out, const char *path, char *err, size_t errlen);

#endif
