/* io/text/prepare_impl.h — what the parts of `prepare` share (internal): the run's
 * state and the helpers each part exports (prepare.c: the run and its one-line errors;
 * prepare_records.c: the records of each format; prepare_sha256.c: SHA-256 of the
 * inputs). */
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
    char *text; /* scratch for templates */
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

/* prepare_records.c: one record of each format; the format a record has */
int pr_do_qa(prep *p, cJSON *rec);
int pr_do_text(prep *p, cJSON *rec);
int pr_do_tokens(prep *p, cJSON *rec);
int pr_detect(prep *p, cJSON *rec, const char *want);

/* prepare_sha256.c */
void pr_sha256_init(sha256_ctx *c);
void pr_sha256_hex(sha256_ctx *c, char hex[65]);
int pr_sha256_file2(const char *path, sha256_ctx *a, sha256_ctx *b, char *err, size_t errlen);

#endif
