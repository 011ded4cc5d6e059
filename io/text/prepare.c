/* io/text/prepare.c — JSON lines -> HDF5 token dataset. */
#define _POSIX_C_SOURCE 200809L /* getline, strdup, strndup */
#include "../../mpi/fatal.h"
#include "prepare.h"
#include "../dataset.h"
#include "tokenizer.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* ---- SHA-256 (FIPS 180-4) ---------------------------------------------------------- */

typedef struct {
    uint32_t h[8];
    uint64_t bytes;
    unsigned char buf[64];
    size_t fill;
} sha256_ctx;

static const uint32_t sha_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha256_block(sha256_ctx *c, const unsigned char *p)
{
    uint32_t w[64], s[8];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    memcpy(s, c->h, sizeof s);
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = s[7] + (ROR(s[4], 6) ^ ROR(s[4], 11) ^ ROR(s[4], 25)) +
                      ((s[4] & s[5]) ^ (~s[4] & s[6])) + sha_k[i] + w[i];
        uint32_t t2 = (ROR(s[0], 2) ^ ROR(s[0], 13) ^ ROR(s[0], 22)) +
                      ((s[0] & s[1]) ^ (s[0] & s[2]) ^ (s[1] & s[2]));
        memmove(s + 1, s, 7 * sizeof *s);
        s[4] += t1;
        s[0] = t1 + t2;
    }
    for (int i = 0; i < 8; i++) c->h[i] += s[i];
}

static void sha256_init(sha256_ctx *c)
{
    static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(c->h, h0, sizeof h0);
    c->bytes = 0;
    c->fill = 0;
}

static void sha256_update(sha256_ctx *c, const void *data, size_t n)
{
    const unsigned char *p = data;
    c->bytes += n;
    while (n) {
        size_t take = 64 - c->fill < n ? 64 - c->fill : n;
        memcpy(c->buf + c->fill, p, take);
        c->fill += take;
        p += take;
        n -= take;
        if (c->fill == 64) {
            sha256_block(c, c->buf);
            c->fill = 0;
        }
    }
}

static void sha256_hex(sha256_ctx *c, char hex[65])
{
    uint64_t bits = c->bytes * 8;
    unsigned char pad = 0x80, zero = 0, len[8];
    sha256_update(c, &pad, 1);
    while (c->fill != 56) sha256_update(c, &zero, 1);
    for (int i = 0; i < 8; i++) len[i] = (unsigned char)(bits >> (56 - 8 * i));
    sha256_update(c, len, 8);
    for (int i = 0; i < 8; i++) snprintf(hex + 8 * i, 9, "%08x", c->h[i]);
}

/* Hashes a file into one or two contexts. */
static int sha256_file2(const char *path, sha256_ctx *a, sha256_ctx *b, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) return lethe_errf(err, errlen, "prepare: input '%s': cannot open: %s", path, strerror(errno));
    unsigned char buf[1 << 16];
    size_t r;
    while ((r = fread(buf, 1, sizeof buf, f)) > 0) {
        sha256_update(a, buf, r);
        if (b) sha256_update(b, buf, r);
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) return lethe_errf(err, errlen, "prepare: input '%s': read error", path);
    return 0;
}

int prepare_sha256_file(const char *path, char hex[65], char *err, size_t errlen)
{
    sha256_ctx c;
    sha256_init(&c);
    if (sha256_file2(path, &c, NULL, err, errlen)) return -1;
    sha256_hex(&c, hex);
    return 0;
}

/* ---- options ------------------------------------------------------------------------- */

void prepare_opts_defaults(prepare_opts *o)
{
    memset(o, 0, sizeof *o);
    o->tokenizer = "byte";
    o->word_min_count = 1;
    o->seq_len = 256;
    o->prompt_template = "[INST] {q} [/INST]";
    o->answer_prefix = " ";
    o->truncate = 1;
    o->vocab_size = o->pad_id = o->eos_id = -1;
}

/* ---- the run --------------------------------------------------------------------------- */

enum { FMT_QA, FMT_TEXT, FMT_TOKENS };
static const char *const fmt_names[] = {"qa", "text", "tokens"};

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

static int perr(prep *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int perr(prep *p, const char *fmt, ...)
{
    char m[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, sizeof m, fmt, ap);
    va_end(ap);
    return lethe_errf(p->err, p->errlen, "prepare: '%s' line %lld: %s", p->path, (long long)p->line, m);
}

static int encode(prep *p, const char *s, size_t n, tok_ids *out)
{
    if (p->pass == PASS_WORDS) {
        word_counter_add(p->wc, s, n);
        return 0;
    }
    if (!p->tk) /* tokenizer "none": only pre-tokenised records can be read */
        return perr(p, "text needs a tokenizer (byte, word or gpt2); tokenizer 'none' reads "
                       "pre-tokenised records (input_ids, answer_start) only");
    if (tokenizer_encode(p->tk, s, n, out)) return perr(p, "out of memory while tokenising");
    return 0;
}

/* template(q): every "{q}" replaced by the question. */
static int render(prep *p, const char *tmpl, const char *key, const char *val, const char **out,
                  size_t *outn)
{
    size_t kl = strlen(key), vl = strlen(val), n = 0, need = strlen(tmpl) + 1;
    for (const char *s = strstr(tmpl, key); s; s = strstr(s + kl, key)) need += vl;
    if (need > p->text_cap) {
        char *b = realloc(p->text, need);
        if (!b) return perr(p, "out of memory");
        p->text = b;
        p->text_cap = need;
    }
    for (const char *s = tmpl; *s;) {
        if (strncmp(s, key, kl) == 0) {
            memcpy(p->text + n, val, vl);
            n += vl;
            s += kl;
        } else {
            p->text[n++] = *s++;
        }
    }
    p->text[n] = 0;
    *out = p->text;
    *outn = n;
    return 0;
}

/* Fills one sequence (T ids) from prompt ids + answer ids (+ eos); returns length. */
static int fill_seq(prep *p, const tok_ids *prompt, const tok_ids *ans, int add_eos, int32_t *row,
                    int32_t *len, int32_t *as, const char *what)
{
    int64_t full = (int64_t)prompt->n + ans->n + (add_eos ? 1 : 0);
    if (prompt->n >= p->t)
        return perr(p, "%s: the prompt is %d tokens, seq_len %d leaves no room for the answer",
                    what, prompt->n, p->t);
    if (full > p->t) {
        if (!p->o->truncate)
            return perr(p, "%s: %lld tokens > seq_len %d (truncation is off)", what,
                        (long long)full, p->t);
        p->truncated++;
    }
    if (!row) return 0;
    int n = 0;
    for (int i = 0; i < prompt->n && n < p->t; i++) row[n++] = prompt->ids[i];
    for (int i = 0; i < ans->n && n < p->t; i++) row[n++] = ans->ids[i];
    if (add_eos && n < p->t) row[n++] = (int32_t)p->eos;
    *len = n;
    *as = prompt->n;
    for (int i = n; i < p->t; i++) row[i] = (int32_t)p->pad;
    return 0;
}

static int blk_alloc(prep *p)
{
    int64_t t = p->t, k = p->k;
    size_t per = 4 * (size_t)t + 16 + (p->has_para ? 4 * (size_t)t + 8 : 0) +
                 (k ? ((size_t)k * (4 * (size_t)t + 8)) : 0);
    int64_t cap = (int64_t)((4u << 20) / per);
    if (cap < 1) cap = 1;
    if (cap > p->rows) cap = p->rows;
    p->blk_cap = cap;
    dataset_rows *b = &p->blk;
    int oom = 0;
#define ALLOC(x, n) oom |= !((x) = malloc((size_t)(n)))
    ALLOC(b->ids, cap * t * 4);
    ALLOC(b->lengths, cap * 4);
    ALLOC(b->answer_start, cap * 4);
    ALLOC(b->sample_id, cap * 8);
    if (p->has_para) {
        ALLOC(b->para_ids, cap * t * 4);
        ALLOC(b->para_lengths, cap * 4);
        ALLOC(b->para_answer_start, cap * 4);
    }
    if (k) {
        ALLOC(b->pert_ids, cap * k * t * 4);
        ALLOC(b->pert_lengths, cap * k * 4);
        ALLOC(b->pert_answer_start, cap * k * 4);
    }
    ALLOC(p->ids_seen, p->rows * 16);
#undef ALLOC
    if (oom) return lethe_errf(p->err, p->errlen, "prepare: out of memory for %lld rows", (long long)cap);
    return 0;
}

static void blk_free(prep *p)
{
    void **all = (void **)&p->blk;
    for (size_t i = 0; i < sizeof p->blk / sizeof(void *); i++) free(all[i]);
    memset(&p->blk, 0, sizeof p->blk);
    free(p->ids_seen);
    p->ids_seen = NULL;
}

static int blk_flush(prep *p)
{
    if (!p->blk_n) return 0;
    if (dsw_write(p->w, &p->blk, p->written, p->blk_n, p->err, p->errlen)) return -1;
    p->written += p->blk_n;
    p->blk_n = 0;
    return 0;
}

/* Claims the next row of the block (write pass) and records its sample id. */
static int64_t row_claim(prep *p, int64_t sample_id)
{
    if (p->blk_n == p->blk_cap && blk_flush(p)) return -1;
    int64_t r = p->written + p->blk_n;
    p->ids_seen[2 * r] = sample_id < 0 ? r : sample_id;
    p->ids_seen[2 * r + 1] = p->line;
    p->blk.sample_id[p->blk_n] = p->ids_seen[2 * r];
    return p->blk_n++;
}

/* Shape checks across records: every record of a split has the same K and the same
 * optional sets. */
static int note_shape(prep *p, int has_para, int k)
{
    if (!p->shape_known) {
        p->has_para = has_para;
        p->k = k;
        p->shape_known = 1;
        return 0;
    }
    if (has_para != p->has_para)
        return perr(p, "%s a paraphrased answer but earlier records %s", has_para ? "has" : "lacks",
                    p->has_para ? "have one" : "do not");
    if (k != p->k) return perr(p, "has %d perturbed answers, earlier records have %d", k, p->k);
    return 0;
}

static int get_sample_id(prep *p, cJSON *rec, int64_t *sid)
{
    *sid = -1;
    cJSON *s = cJSON_GetObjectItemCaseSensitive(rec, "sample_id");
    if (!s) return 0;
    if (!cJSON_IsNumber(s) || s->valuedouble < 0 || s->valuedouble > 9.0e15 ||
        s->valuedouble != (double)(int64_t)s->valuedouble)
        return perr(p, "key 'sample_id': expected a non-negative integer");
    *sid = (int64_t)s->valuedouble;
    return 0;
}

static const char *get_str(prep *p, cJSON *rec, const char *key, int required, int *bad)
{
    cJSON *s = cJSON_GetObjectItemCaseSensitive(rec, key);
    if (!s || cJSON_IsNull(s)) {
        if (required) {
            perr(p, "key '%s' is missing", key);
            *bad = 1;
        }
        return NULL;
    }
    if (!cJSON_IsString(s)) {
        perr(p, "key '%s': expected a string", key);
        *bad = 1;
        return NULL;
    }
    return s->valuestring;
}

static int do_qa(prep *p, cJSON *rec)
{
    int bad = 0;
    const char *q = get_str(p, rec, "question", 1, &bad);
    const char *a = bad ? NULL : get_str(p, rec, "answer", 1, &bad);
    const char *para = bad ? NULL : get_str(p, rec, "paraphrased_answer", 0, &bad);
    if (bad) return -1;
    cJSON *pert = cJSON_GetObjectItemCaseSensitive(rec, "perturbed_answer");
    int k = 0;
    if (pert && !cJSON_IsNull(pert)) {
        if (!cJSON_IsArray(pert) || cJSON_GetArraySize(pert) < 1)
            return perr(p, "key 'perturbed_answer': expected a non-empty list of strings");
        k = cJSON_GetArraySize(pert);
        for (int j = 0; j < k; j++)
            if (!cJSON_IsString(cJSON_GetArrayItem(pert, j)))
                return perr(p, "key 'perturbed_answer' item %d: expected a string", j);
    }
    int64_t sid;
    if (get_sample_id(p, rec, &sid)) return -1;
    if (p->pass != PASS_WORDS && note_shape(p, para != NULL, k)) return -1;

    const char *pt = NULL;
    size_t ptn = 0;
    if (render(p, p->o->prompt_template, "{q}", q, &pt, &ptn)) return -1;
    p->prompt.n = 0;
    if (encode(p, pt, ptn, &p->prompt)) return -1;
    const char *answers[2] = {a, para};
    int32_t *row = NULL, *len = NULL, *as = NULL;
    int64_t r = 0;
    if (p->pass == PASS_WRITE && (r = row_claim(p, sid)) < 0) return -1;
    for (int j = 0; j < 2 + k; j++) {
        const char *ans = j < 2 ? answers[j] : cJSON_GetArrayItem(pert, j - 2)->valuestring;
        if (!ans) continue;
        size_t pl = strlen(p->o->answer_prefix), al = strlen(ans), atn = pl + al;
        if (atn + 1 > p->text_cap) {
            char *b = realloc(p->text, atn + 1);
            if (!b) return perr(p, "out of memory");
            p->text = b;
            p->text_cap = atn + 1;
        }
        memcpy(p->text, p->o->answer_prefix, pl);
        memcpy(p->text + pl, ans, al + 1);
        p->scratch.n = 0;
        if (encode(p, p->text, atn, &p->scratch)) return -1;
        if (p->pass == PASS_WORDS) continue;
        const int64_t t = p->t;
        if (p->pass == PASS_WRITE) {
            if (j == 0) {
                row = p->blk.ids + r * t;
                len = p->blk.lengths + r;
                as = p->blk.answer_start + r;
            } else if (j == 1) {
                row = p->blk.para_ids + r * t;
                len = p->blk.para_lengths + r;
                as = p->blk.para_answer_start + r;
            } else {
                int64_t c = r * p->k + (j - 2);
                row = p->blk.pert_ids + c * t;
                len = p->blk.pert_lengths + c;
                as = p->blk.pert_answer_start + c;
            }
        }
        char what[48];
        snprintf(what, sizeof what,
                 j == 0   ? "answer"
                 : j == 1 ? "paraphrased_answer"
                          : "perturbed_answer %d",
                 j - 2);
        if (fill_seq(p, &p->prompt, &p->scratch, 1, row, len, as, what)) return -1;
    }
    if (p->pass == PASS_COUNT) p->rows++;
    return 0;
}

static int do_text(prep *p, cJSON *rec)
{
    int bad = 0;
    const char *s = get_str(p, rec, "text", 1, &bad);
    if (bad) return -1;
    p->scratch.n = 0;
    if (encode(p, s, strlen(s), &p->scratch)) return -1;
    if (p->pass == PASS_WORDS) return 0;
    if (note_shape(p, 0, 0)) return -1;
    tok_ids *v = &p->scratch;
    if (v->n == v->cap) { /* room for the EOS */
        int32_t *q = realloc(v->ids, (size_t)(v->cap + 1) * sizeof *q);
        if (!q) return perr(p, "out of memory");
        v->ids = q;
        v->cap++;
    }
    v->ids[v->n++] = (int32_t)p->eos;
    for (int off = 0; off < v->n; off += p->t) {
        int n = v->n - off < p->t ? v->n - off : p->t;
        if (n < 2) {
            p->dropped++;
            continue;
        }
        if (p->pass == PASS_COUNT) {
            p->rows++;
            continue;
        }
        int64_t r = row_claim(p, -1);
        if (r < 0) return -1;
        int32_t *row = p->blk.ids + r * p->t;
        memcpy(row, v->ids + off, (size_t)n * 4);
        for (int i = n; i < p->t; i++) row[i] = (int32_t)p->pad;
        p->blk.lengths[r] = n;
        p->blk.answer_start[r] = 0;
    }
    return 0;
}

/* Reads a JSON list of ids into out (validated against the vocabulary). */
static int get_ids(prep *p, cJSON *rec, cJSON *arr, const char *key, tok_ids *out)
{
    (void)rec;
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) < 1)
        return perr(p, "key '%s': expected a non-empty list of token ids", key);
    out->n = 0;
    int i = 0;
    for (cJSON *e = arr->child; e; e = e->next, i++) {
        /* the range first: converting a double beyond int64 is undefined */
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble >= (double)p->vocab ||
            e->valuedouble != (double)(int64_t)e->valuedouble)
            return perr(p, "key '%s' item %d: expected a token id in [0, vocab_size %lld)", key, i,
                        (long long)p->vocab);
        if (out->n == out->cap) {
            int cap = out->cap ? out->cap * 2 : 256;
            int32_t *q = realloc(out->ids, (size_t)cap * sizeof *q);
            if (!q) return perr(p, "out of memory");
            out->ids = q;
            out->cap = cap;
        }
        out->ids[out->n++] = (int32_t)e->valuedouble;
    }
    return 0;
}

static int get_int(prep *p, cJSON *v, const char *key, int64_t *out)
{
    if (!cJSON_IsNumber(v) || !(fabs(v->valuedouble) <= 9.0e15) ||
        v->valuedouble != (double)(int64_t)v->valuedouble)
        return perr(p, "key '%s': expected an integer", key);
    *out = (int64_t)v->valuedouble;
    return 0;
}

/* One pre-tokenised sequence: ids with answer_start, truncated to T. */
static int tok_seq(prep *p, const tok_ids *ids, int64_t as, const char *key, int32_t *row,
                   int32_t *len, int32_t *asp)
{
    if (ids->n > p->t) {
        if (!p->o->truncate)
            return perr(p, "key '%s': %d tokens > seq_len %d (truncation is off)", key, ids->n,
                        p->t);
        p->truncated++;
    }
    int n = ids->n < p->t ? ids->n : p->t;
    if (as < 0 || as >= n)
        return perr(p, "key '%s': answer_start %lld outside [0, length %d)", key, (long long)as, n);
    if (!row) return 0;
    memcpy(row, ids->ids, (size_t)n * 4);
    for (int i = n; i < p->t; i++) row[i] = (int32_t)p->pad;
    *len = n;
    *asp = (int32_t)as;
    return 0;
}

static int do_tokens(prep *p, cJSON *rec)
{
    if (p->pass == PASS_WORDS) return 0;
    cJSON *ids = cJSON_GetObjectItemCaseSensitive(rec, "input_ids");
    cJSON *as = cJSON_GetObjectItemCaseSensitive(rec, "answer_start");
    if (!as) return perr(p, "key 'answer_start' is missing");
    cJSON *pids = cJSON_GetObjectItemCaseSensitive(rec, "paraphrased_ids");
    cJSON *pas = cJSON_GetObjectItemCaseSensitive(rec, "paraphrased_answer_start");
    cJSON *kids = cJSON_GetObjectItemCaseSensitive(rec, "perturbed_ids");
    cJSON *kas = cJSON_GetObjectItemCaseSensitive(rec, "perturbed_answer_start");
    if (!!pids != !!pas)
        return perr(p, "keys 'paraphrased_ids' and 'paraphrased_answer_start' go together");
    if (!!kids != !!kas)
        return perr(p, "keys 'perturbed_ids' and 'perturbed_answer_start' go together");
    int k = 0;
    if (kids) {
        if (!cJSON_IsArray(kids) || (k = cJSON_GetArraySize(kids)) < 1)
            return perr(p, "key 'perturbed_ids': expected a non-empty list of id lists");
        if (!cJSON_IsArray(kas) || cJSON_GetArraySize(kas) != k)
            return perr(p, "key 'perturbed_answer_start': expected a list of %d integers", k);
    }
    int64_t sid;
    if (get_sample_id(p, rec, &sid) || note_shape(p, pids != NULL, k)) return -1;
    int64_t r = 0, t = p->t, a = 0;
    if (p->pass == PASS_WRITE && (r = row_claim(p, sid)) < 0) return -1;
    int w = p->pass == PASS_WRITE;
    if (get_ids(p, rec, ids, "input_ids", &p->scratch) || get_int(p, as, "answer_start", &a) ||
        tok_seq(p, &p->scratch, a, "input_ids", w ? p->blk.ids + r * t : NULL,
                w ? p->blk.lengths + r : NULL, w ? p->blk.answer_start + r : NULL))
        return -1;
    if (pids &&
        (get_ids(p, rec, pids, "paraphrased_ids", &p->scratch) ||
         get_int(p, pas, "paraphrased_answer_start", &a) ||
         tok_seq(p, &p->scratch, a, "paraphrased_ids", w ? p->blk.para_ids + r * t : NULL,
                 w ? p->blk.para_lengths + r : NULL, w ? p->blk.para_answer_start + r : NULL)))
        return -1;
    for (int j = 0; j < k; j++) {
        char key[48];
        snprintf(key, sizeof key, "perturbed_ids[%d]", j);
        int64_t c = r * k + j;
        if (get_ids(p, rec, cJSON_GetArrayItem(kids, j), key, &p->scratch) ||
            get_int(p, cJSON_GetArrayItem(kas, j), "perturbed_answer_start", &a) ||
            tok_seq(p, &p->scratch, a, key, w ? p->blk.pert_ids + c * t : NULL,
                    w ? p->blk.pert_lengths + c : NULL, w ? p->blk.pert_answer_start + c : NULL))
            return -1;
    }
    if (p->pass == PASS_COUNT) p->rows++;
    return 0;
}

static int detect(prep *p, cJSON *rec, const char *want)
{
    int f;
    if (want && strcmp(want, "auto") != 0) {
        for (f = 0; f < 3; f++)
            if (strcmp(want, fmt_names[f]) == 0) break;
        if (f == 3)
            return lethe_errf(p->err, p->errlen,
                        "prepare: input '%s': format '%s' is not one of auto, qa, text, tokens",
                        p->path, want);
        return f;
    }
    if (cJSON_GetObjectItemCaseSensitive(rec, "input_ids")) return FMT_TOKENS;
    if (cJSON_GetObjectItemCaseSensitive(rec, "question")) return FMT_QA;
    if (cJSON_GetObjectItemCaseSensitive(rec, "text")) return FMT_TEXT;
    return perr(p, "cannot tell the record format: expected keys question+answer (qa), text "
                   "(text) or input_ids+answer_start (tokens)");
}

/* Offset of the first byte of s[0..n) that is not well-formed UTF-8 (RFC 3629: no
 * overlong forms, no surrogates, nothing above U+10FFFF) or is NUL; n when none. JSON
 * text is UTF-8, and a NUL would silently cut a string short. */
static size_t utf8_bad_at(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t k = c < 0x80                ? 0
                   : (c & 0xE0) == 0xC0    ? 1
                   : (c & 0xF0) == 0xE0    ? 2
                   : (c & 0xF8) == 0xF0    ? 3
                                           : 9;
        if (c == 0 || k == 9 || c == 0xC0 || c == 0xC1 || c > 0xF4 || i + k >= n) return i;
        uint32_t cp = k ? c & (0x3F >> k) : c;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xC0) != 0x80) return i;
            cp = cp << 6 | (s[i + j] & 0x3F);
        }
        if ((k == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
            (k == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
            return i;
        i += k + 1;
    }
    return n;
}

/* One pass over one input file. */
static int run_input(prep *p, const prepare_input *in)
{
    p->path = in->path;
    p->line = 0;
    FILE *f = fopen(in->path, "rb");
    if (!f)
        return lethe_errf(p->err, p->errlen, "prepare: input '%s': cannot open: %s", in->path,
                    strerror(errno));
    char *buf = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = 0, fmt = -1;
    int64_t records = 0;
    p->records = 0;
    while (rc == 0 && (n = getline(&buf, &cap, f)) >= 0) {
        p->line++;
        size_t i = 0;
        while (i < (size_t)n &&
               (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\r' || buf[i] == '\n'))
            i++;
        if (i == (size_t)n) continue;
        size_t bad = utf8_bad_at((const unsigned char *)buf, (size_t)n);
        if (bad < (size_t)n) {
            rc = buf[bad] ? perr(p, "byte %zu: invalid UTF-8 (0x%02x)", bad + 1, (unsigned char)buf[bad])
                          : perr(p, "byte %zu: NUL byte", bad + 1);
            break;
        }
        cJSON *rec = cJSON_ParseWithLength(buf, (size_t)n);
        if (!rec || !cJSON_IsObject(rec)) {
            rc = perr(p, "not a JSON object");
            cJSON_Delete(rec);
            break;
        }
        records++;
        if (fmt < 0) {
            fmt = detect(p, rec, in->format);
            if (fmt < 0) rc = -1;
            p->fmt = fmt;
        }
        if (rc == 0 && fmt == FMT_TOKENS && p->o->tokenizer &&
            strcmp(p->o->tokenizer, "word") == 0 && p->pass == PASS_WORDS)
            rc = perr(p, "pre-tokenised records cannot be used with the word tokenizer, whose "
                         "vocabulary is built from text");
        if (rc == 0) {
            if (fmt == FMT_QA)
                rc = do_qa(p, rec);
            else if (fmt == FMT_TEXT)
                rc = do_text(p, rec);
            else
                rc = do_tokens(p, rec);
        }
        cJSON_Delete(rec);
    }
    if (rc == 0 && ferror(f))
        rc = lethe_errf(p->err, p->errlen, "prepare: input '%s': read error", in->path);
    p->records = records;
    if (rc == 0 && records == 0)
        rc = lethe_errf(p->err, p->errlen, "prepare: input '%s': no records", in->path);
    free(buf);
    fclose(f);
    return rc;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static int make_tokenizer(prep *p, char *err, size_t errlen)
{
    const prepare_opts *o = p->o;
    const char *name = o->tokenizer ? o->tokenizer : "byte";
    if (strcmp(name, "byte") == 0) {
        p->tk = tokenizer_byte();
        if (!p->tk) return lethe_errf(err, errlen, "prepare: out of memory");
    } else if (strcmp(name, "gpt2") == 0) {
        if (!o->gpt2_encoder || !o->gpt2_merges)
            return lethe_errf(err, errlen,
                        "prepare: tokenizer 'gpt2' needs the encoder.json and "
                        "vocab.bpe paths");
        if (tokenizer_gpt2_load(&p->tk, o->gpt2_encoder, o->gpt2_merges, err, errlen)) return -1;
    } else if (strcmp(name, "word") == 0) {
        p->wc = word_counter_new();
        if (!p->wc) return lethe_errf(err, errlen, "prepare: out of memory");
        p->pass = PASS_WORDS;
        for (int i = 0; i < o->n_inputs; i++)
            if (run_input(p, &o->inputs[i])) return -1;
        if (tokenizer_word_build(&p->tk, p->wc, o->word_min_count, o->word_max_vocab, err, errlen))
            return -1;
    } else if (strcmp(name, "none") == 0) {
        if (o->vocab_size < 1 || o->pad_id < 0 || o->pad_id >= o->vocab_size || o->eos_id < 0 ||
            o->eos_id >= o->vocab_size)
            return lethe_errf(err, errlen,
                        "prepare: tokenizer 'none' needs vocab_size >= 1 and pad_id, "
                        "eos_id in [0, vocab_size) (got %lld, %lld, %lld)",
                        (long long)o->vocab_size, (long long)o->pad_id, (long long)o->eos_id);
        p->vocab = o->vocab_size;
        p->pad = o->pad_id;
        p->eos = o->eos_id;
        return 0;
    } else {
        return lethe_errf(err, errlen, "prepare: tokenizer '%s' is not one of byte, word, gpt2, none",
                    name);
    }
    p->vocab = tokenizer_vocab_size(p->tk);
    p->pad = tokenizer_pad_id(p->tk);
    p->eos = tokenizer_eos_id(p->tk);
    return 0;
}

int prepare_run(const prepare_opts *o, char *err, size_t errlen)
{
    if (!o->output || !o->output[0]) return lethe_errf(err, errlen, "prepare: no output path");
    if (o->n_inputs < 1 || o->n_inputs > PREPARE_MAX_INPUTS || !o->inputs)
        return lethe_errf(err, errlen, "prepare: %d inputs, expected 1..%d", o->n_inputs,
                    PREPARE_MAX_INPUTS);
    if (o->seq_len < 2 || o->seq_len > (1 << 24))
        return lethe_errf(err, errlen, "prepare: seq_len %d outside [2, %d]", o->seq_len, 1 << 24);
    if (!o->prompt_template || !strstr(o->prompt_template, "{q}"))
        return lethe_errf(err, errlen, "prepare: prompt_template '%s' has no {q}",
                    o->prompt_template ? o->prompt_template : "(null)");
    if (!o->answer_prefix) return lethe_errf(err, errlen, "prepare: answer_prefix is NULL");
    char sp[PREPARE_MAX_INPUTS][DATASET_SPLIT_MAX];
    for (int i = 0; i < o->n_inputs; i++) {
        if (!o->inputs[i].path || !o->inputs[i].split)
            return lethe_errf(err, errlen, "prepare: input %d has no path or no split name", i);
        if (dataset_split_path(sp[i], sizeof sp[i], o->inputs[i].split, err, errlen)) {
            char m[512];
            snprintf(m, sizeof m, "%s", err);
            return lethe_errf(err, errlen, "prepare: input '%s': %s", o->inputs[i].path, m);
        }
        if (strcmp(sp[i], "/tokenizer") == 0)
            return lethe_errf(err, errlen, "prepare: input '%s': split name 'tokenizer' is reserved",
                        o->inputs[i].path);
        for (int j = 0; j < i; j++)
            if (strcmp(sp[i], sp[j]) == 0 ||
                (strncmp(sp[i], sp[j], strlen(sp[j])) == 0 && sp[i][strlen(sp[j])] == '/') ||
                (strncmp(sp[j], sp[i], strlen(sp[i])) == 0 && sp[j][strlen(sp[i])] == '/'))
                return lethe_errf(err, errlen,
                            "prepare: splits '%s' (input '%s') and '%s' (input "
                            "'%s') collide",
                            sp[j], o->inputs[j].path, sp[i], o->inputs[i].path);
    }

    prep p = {0};
    p.o = o;
    p.t = o->seq_len;
    p.err = err;
    p.errlen = errlen;
    dataset_writer w = {.file = -1, .group = -1};
    prepare_report rep;
    memset(&rep, 0, sizeof rep);
    int rc = -1, open = 0;

    /* digests first: cheap, and a missing file is reported before any work */
    sha256_ctx all;
    sha256_init(&all);
    char hex[PREPARE_MAX_INPUTS][65];
    for (int i = 0; i < o->n_inputs; i++) {
        sha256_ctx one;
        sha256_init(&one);
        if (sha256_file2(o->inputs[i].path, &one, &all, err, errlen)) goto out;
        sha256_hex(&one, hex[i]);
    }
    char allhex[65];
    sha256_hex(&all, allhex);
    snprintf(rep.source_digest, sizeof rep.source_digest, "sha256:%s", allhex);

    if (make_tokenizer(&p, err, errlen)) goto out;
    dataset_attrs a = {o->tokenizer ? o->tokenizer : "byte", p.vocab, p.pad, p.eos,
                       rep.source_digest};
    if (dsw_create(&w, o->output, &a, err, errlen)) goto out;
    open = 1;
    if (h5_attr_write_str(w.file, "prompt_template", o->prompt_template) ||
        h5_attr_write_str(w.file, "answer_prefix", o->answer_prefix) ||
        h5_attr_write_i64(w.file, "seq_len", o->seq_len)) {
        lethe_errf(err, errlen, "prepare: '%s': cannot write root attributes", o->output);
        goto out;
    }
    if (p.tk && tokenizer_save(p.tk, w.file, err, errlen)) goto out;
    p.w = &w;
    for (int i = 0; i < o->n_inputs; i++) {
        p.rows = p.truncated = p.dropped = p.written = p.blk_n = 0;
        p.shape_known = p.k = p.has_para = 0;
        p.pass = PASS_COUNT;
        if (run_input(&p, &o->inputs[i])) goto out;
        if (p.rows < 1) {
            lethe_errf(err, errlen,
                 "prepare: input '%s': no rows (every text window was shorter than "
                 "2 tokens)",
                 o->inputs[i].path);
            goto out;
        }
        prepare_split_report *r = &rep.split[rep.n_splits++];
        snprintf(r->split, sizeof r->split, "%s", sp[i]);
        snprintf(r->format, sizeof r->format, "%s", fmt_names[p.fmt]);
        r->rows = p.rows;
        r->k = p.k;
        r->has_para = p.has_para;
        if (dsw_split_begin(&w, sp[i], p.rows, p.t, p.k, p.has_para, p.k > 0, err, errlen) ||
            blk_alloc(&p))
            goto out;
        int64_t rows = p.rows;
        p.truncated = p.dropped = 0;
        p.pass = PASS_WRITE;
        if (run_input(&p, &o->inputs[i]) || blk_flush(&p)) goto out;
        if (p.written != rows) {
            lethe_errf(err, errlen,
                 "prepare: input '%s' changed while it was read (%lld rows, then "
                 "%lld)",
                 o->inputs[i].path, (long long)rows, (long long)p.written);
            goto out;
        }
        r->truncated = p.truncated;
        r->dropped_windows = p.dropped;
        /* sample ids must be unique: the NPO reference cache is keyed by them */
        qsort(p.ids_seen, (size_t)rows, 16, cmp_i64);
        for (int64_t j = 1; j < rows; j++)
            if (p.ids_seen[2 * j] == p.ids_seen[2 * j - 2]) {
                int64_t a = p.ids_seen[2 * j - 1], b = p.ids_seen[2 * j + 1];
                lethe_errf(err, errlen, "prepare: '%s' lines %lld and %lld: sample_id %lld appears twice",
                     o->inputs[i].path, (long long)(a < b ? a : b), (long long)(a < b ? b : a),
                     (long long)p.ids_seen[2 * j]);
                goto out;
            }
        r->records = p.records;
        char src[96];
        snprintf(src, sizeof src, "sha256:%.64s", hex[i]);
        if (dsw_split_attr_str(&w, "source", o->inputs[i].path, err, errlen) ||
            dsw_split_attr_str(&w, "source_digest", src, err, errlen) ||
            dsw_split_attr_str(&w, "format", fmt_names[p.fmt], err, errlen) ||
            dsw_split_attr_i64(&w, "truncated", p.truncated, err, errlen) ||
            dsw_split_end(&w, err, errlen))
            goto out;
        blk_free(&p);
        if (o->verbose)
            printf("prepare: %s <- %s (%s): %lld rows, T=%d, K=%d, paraphrased %s, truncated %lld, "
                   "dropped windows %lld\n",
                   sp[i], o->inputs[i].path, fmt_names[p.fmt], (long long)rows, p.t, p.k,
                   p.has_para ? "yes" : "no", (long long)p.truncated, (long long)p.dropped);
    }
    if (dsw_close(&w, err, errlen)) {
        open = 0;
        goto out;
    }
    open = 0;
    rep.vocab_size = p.vocab;
    rep.pad_id = p.pad;
    rep.eos_id = p.eos;
    if (o->verbose)
        printf("prepare: wrote '%s': tokenizer %s, vocab %lld, pad %lld, eos %lld, %s\n", o->output,
               a.tokenizer, (long long)p.vocab, (long long)p.pad, (long long)p.eos,
               rep.source_digest);
    if (o->report) *o->report = rep;
    rc = 0;
out:
    if (open) dsw_abort(&w);
    blk_free(&p);
    tok_ids_free(&p.scratch);
    tok_ids_free(&p.prompt);
    free(p.text);
    tokenizer_free(p.tk);
    word_counter_free(p.wc);
    return rc;
}
