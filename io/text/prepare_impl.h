/* io/text/prepare_impl.h — what the parts of `prepare` share (internal): the run's
 * state and the helpers each part exports (prepare.c: the run and its one-line errors;
 * prepare_records.c: the records of each format; prepare_template.c: the QA templates;
 * prepare_sha256.c: SHA-256 of the inputs). */
#ifndef LETHE_IO_PREPARE_IMPL_H
#define LETHE_IO_PREPARE_IMPL_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "../dataset.h"
#include "prepare.h"
#include "tokenizer.h"

enum { FMT_QA, FMT_TEXT, FMT_TOKENS };
extern const char *const pr_fmt_names[3]; /* by FMT_* */

enum { PASS_WORDS, PASS_COUNT, PASS_WRITE };

#define PR_TMPL_MAX_SPECIAL 16

/* One piece of a compiled template: literal text (s, n), a placeholder, or a special. */
enum { PC_TEXT, PC_Q, PC_A, PC_SYSTEM, PC_DATE, PC_EOS, PC_SPECIAL, PC_BOS };
typedef struct {
    int kind, special; /* special: index into pr_template.special (PC_SPECIAL) */
    const char *s;     /* PC_TEXT: points into pr_template.prompt or .answer */
    size_t n;
} pr_piece;

/* A QA template (io/text/prepare.h), compiled into pieces: [0, n_prompt) render the
 * prompt, [0, n_pieces) the whole row. */
typedef struct {
    char name[256];
    char *prompt, *answer, *system, *date; /* owned; system, date NULL when unused */
    char *special[PR_TMPL_MAX_SPECIAL];
    int n_special, trim;
    int64_t special_id[PR_TMPL_MAX_SPECIAL]; /* by the tokenizer (pr_template_resolve) */
    int64_t eos;
    int64_t bos; /* {bos}: the tokenizer's beginning-of-text id, or -1 (then nothing) */
    pr_piece *pc;
    int n_pieces, n_prompt;
    char *buf; /* the text run being built */
    size_t buf_n, buf_cap;
} pr_template;

typedef struct {
    const prepare_opts *o;
    tokenizer *tk;
    word_counter *wc;
    int64_t vocab, pad, eos;
    int t;
    char *err;
    size_t errlen;
    /* the input being read */
    const char *path;
    int64_t line;
    int pass, fmt;
    /* shape found by the count pass */
    int64_t rows;
    int k, has_para, shape_known;
    int64_t truncated, dropped, records;
    /* the write pass: a block of rows */
    dataset_writer *w;
    dataset_rows blk;
    int64_t blk_cap, blk_n, written;
    int64_t *ids_seen; /* (rows, 2) [sample id, input line], to check uniqueness */
    tok_ids scratch, prompt;
    pr_template *tmpl; /* NULL: the legacy prompt_template/answer_prefix pair */
    int64_t merged;    /* template rows whose answer_start < tokens(prompt) */
    char *text;        /* scratch for templates */
    size_t text_cap;
} prep;

typedef struct {
    uint32_t h[8];
    uint64_t bytes;
    unsigned char buf[64];
    size_t fill;
} sha256_ctx;

/* prepare.c: "prepare: '<path>' line <n>: <message>" into p->err; returns -1 */
int pr_perr(prep *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* prepare.c: writes the block of rows (write pass) */
int pr_blk_flush(prep *p);
/* prepare.c: offset of the first byte of s[0..n) that is not well-formed UTF-8 or is
 * NUL; n when none */
size_t pr_utf8_bad_at(const unsigned char *s, size_t n);

/* prepare_records.c: one record of each format; the format a record has */
int pr_do_qa(prep *p, cJSON *rec);
int pr_do_text(prep *p, cJSON *rec);
int pr_do_tokens(prep *p, cJSON *rec);
int pr_detect(prep *p, cJSON *rec, const char *want);

/* prepare_records.c: appends the ids of text (the word pass: counts its words) */
int pr_encode(prep *p, const char *s, size_t n, tok_ids *out);

/* prepare_template.c: the template o->template_name names, with its overrides; the ids
 * of its specials in tk; tokens of the prompt (whole = 0) or of the whole row for
 * question q and answer a; the template's memory. 0, or -1 + one line. */
int pr_template_load(pr_template *t, const prepare_opts *o, char *err, size_t errlen);
int pr_template_resolve(pr_template *t, const tokenizer *tk, int64_t eos, char *err, size_t errlen);
int pr_template_encode(prep *p, int whole, const char *q, const char *a, tok_ids *out);
void pr_template_free(pr_template *t);

/* prepare_bench.c: the published benchmarks' readers (tofu, muse). pr_json_records
 * calls fn(ctx, line, rec) for every record of path in order (a JSON array's record i
 * as line i + 1; a blank line of JSON lines with rec NULL, so numbering can be kept);
 * *array says which form the file has, *records counts the records; a file that is
 * neither form, or has no records, is refused naming bench and path. pr_bench_tmpdir
 * makes the private folder ".lethe-<bench>-XXXXXX" next to output. pr_bench_rename_err
 * puts orig in place of tmp in err ("line N" of an array becoming "record N - 1");
 * 1 when tmp was named. */
typedef int (*pr_record_fn)(void *ctx, long line, cJSON *rec);
int pr_json_records(const char *path, const char *bench, pr_record_fn fn, void *ctx, int *array,
                    long *records, char *err, size_t errlen);
int pr_bench_tmpdir(char *dir, size_t len, const char *output, const char *bench, char *err,
                    size_t errlen);
int pr_bench_rename_err(char *err, size_t errlen, const char *tmp, const char *orig, int array);
/* "prepare: <bench>: '<orig>' line N: <msg>", or "record N - 1" for an array; -1. */
int pr_bench_rec_err(char *err, size_t errlen, const char *bench, const char *orig, int array,
                     long line, const char *msg);

/* prepare_sha256.c */
void pr_sha256_init(sha256_ctx *c);
void pr_sha256_hex(sha256_ctx *c, char hex[65]);
int pr_sha256_file2(const char *path, sha256_ctx *a, sha256_ctx *b, char *err, size_t errlen);

#endif
