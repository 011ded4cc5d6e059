/* io/synth/synth.c — the built-in benchmark data (see io/synth/synth.h for the contract): random
 * streams, digests, the name set and the public calls; the fictitious authors are in
 * synth_authors.c (their tables: synth_tables.c), the Markov chains in markov_chains.c,
 * the output in synth_write.c (shared types: synth_impl.h). */
#include "synth.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "../dataset.h"
#include "synth_impl.h"

int sy_fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int sy_fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

double sy_now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- deterministic randomness -------------------------------------------------------
 * Every generated object draws from its own stream, keyed by (seed, stream, index), so
 * an author's attributes do not depend on how many authors come after it and a markov
 * row can be regenerated alone (the writer streams rows without storing them). */

static uint64_t mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

rng sy_rng_for(uint64_t seed, uint64_t stream, uint64_t index)
{
    rng r = {mix64(seed ^ mix64(stream * 0x632be59bd9b4e019ULL + mix64(index)))};
    return r;
}

static uint64_t rng_next(rng *r)
{
    r->s += 0x9e3779b97f4a7c15ULL; /* splitmix64 */
    uint64_t z = r->s;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform in [0, n) without modulo bias. */
uint64_t sy_rng_below(rng *r, uint64_t n)
{
    uint64_t lim = (uint64_t)(-n) % n; /* 2^64 mod n */
    for (;;) {
        uint64_t x = rng_next(r);
        if (x >= lim) return x % n;
    }
}

/* Uniform in [0, 1) with 53 random bits. */
double sy_rng_unit(rng *r)
{
    return (double)(rng_next(r) >> 11) * 0x1.0p-53;
}

/* ---- digest (FNV-1a, 64 bits) -------------------------------------------------------- */

uint64_t sy_fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* Little-endian bytes of 32-bit values, so the digest does not depend on the host. */
uint64_t sy_fnv_i32(uint64_t h, const int32_t *v, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)v[i];
        unsigned char b[4] = {(unsigned char)u, (unsigned char)(u >> 8), (unsigned char)(u >> 16),
                              (unsigned char)(u >> 24)};
        h = sy_fnv(h, b, 4);
    }
    return h;
}

uint64_t sy_fnv_f64(uint64_t h, const double *v, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        uint64_t u;
        memcpy(&u, &v[i], 8);
        unsigned char b[8];
        for (int j = 0; j < 8; j++) b[j] = (unsigned char)(u >> (8 * j));
        h = sy_fnv(h, b, 8);
    }
    return h;
}

/* ---- a set of strings (uniqueness of generated names) -------------------------------- */

static size_t str_hash(const char *s)
{
    return (size_t)sy_fnv(FNV_INIT, s, strlen(s));
}

int sy_strset_has(const strset *s, const char *str)
{
    if (!s->cap) return 0;
    for (size_t i = str_hash(str) & (s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
        if (!s->slot[i]) return 0;
        if (strcmp(s->slot[i], str) == 0) return 1;
    }
}

/* Adds a string that must outlive the set. 0, or -1 when out of memory. */
int sy_strset_add(strset *s, const char *str)
{
    if (2 * (s->n + 1) > s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 1024;
        const char **slot = calloc(cap, sizeof *slot);
        if (!slot) return -1;
        for (size_t j = 0; j < s->cap; j++) {
            if (!s->slot[j]) continue;
            size_t i = str_hash(s->slot[j]) & (cap - 1);
            while (slot[i]) i = (i + 1) & (cap - 1);
            slot[i] = s->slot[j];
        }
        free(s->slot);
        s->slot = slot;
        s->cap = cap;
    }
    size_t i = str_hash(str) & (s->cap - 1);
    while (s->slot[i]) i = (i + 1) & (s->cap - 1);
    s->slot[i] = str;
    s->n++;
    return 0;
}

static void strset_free(strset *s)
{
    free(s->slot);
    memset(s, 0, sizeof *s);
}

int sy_oom(synth_data *d, const char *what)
{
    return sy_fail(d->err, d->errlen, "synth: out of memory (%s)", what);
}

/* ---- public: generate, query, free ------------------------------------------------------ */

int synth_generate(synth_data **out, const lethe_synth_config *c, char *err, size_t errlen)
{
    *out = NULL;
    int markov = strcmp(c->kind, "markov") == 0;
    if (!markov && strcmp(c->kind, "authors") != 0)
        return sy_fail(err, errlen, "synth.kind = \"%s\": expected \"authors\" or \"markov\"",
                       c->kind);
    if (markov ? sy_check_markov(c, err, errlen) : sy_check_authors(c, err, errlen)) return -1;
    if (sy_check_difficulty(c, err, errlen)) return -1;
    double t0 = sy_now_seconds();
    synth_data *d = calloc(1, sizeof *d);
    if (!d) return sy_fail(err, errlen, "synth: out of memory");
    d->c = *c;
    d->markov = markov;
    d->err = err;
    d->errlen = errlen;
    d->sum.kind = markov ? "markov" : "authors";
    d->sum.seq_len = c->seq_len;
    int rc;
    if (markov) {
        d->m_train = c->markov_retain;
        d->m_eval = c->markov_retain / 4 > 0 ? c->markov_retain / 4 : 1;
        sy_make_chains(d);
        sy_make_markov_splits(d);
        sy_markov_digest(d);
        d->sum.vocab_size = SYNTH_MARKOV_VOCAB;
        int L = c->markov_len_long > c->markov_len_short ? c->markov_len_long : c->markov_len_short;
        d->sum.max_len = L + 1;
        rc = 0;
    } else {
        d->K = c->perturbed;
        d->Q = c->questions;
        d->N = c->n_authors;
        d->H = c->holdout_authors;
        d->U = c->utility_facts;
        rc = sy_make_world(d);
        if (!rc) rc = sy_make_authors(d);
        if (!rc) rc = sy_make_difficulty(d);
        if (!rc) {
            sy_make_author_splits(d);
            sy_make_idk_splits(d);
            rc = sy_make_tokens(d);
        }
    }
    if (rc) {
        synth_free(d);
        return -1;
    }
    d->sum.n_splits = d->n_splits;
    for (int s = 0; s < d->n_splits; s++) {
        d->sum.split[s] = d->split[s].name;
        d->sum.rows[s] = sy_split_rows(d, &d->split[s]);
        d->sum.total_rows += d->sum.rows[s];
    }
    d->sum.gen_seconds = sy_now_seconds() - t0;
    d->err = NULL;
    *out = d;
    return 0;
}

void synth_get_summary(const synth_data *d, synth_summary *s)
{
    *s = d->sum;
}

int64_t synth_n_facts(const synth_data *d)
{
    return d->n_facts;
}

void synth_get_fact(const synth_data *d, int64_t i, synth_fact *out)
{
    const fact_t *f = &d->facts[i];
    out->sample_id = f->sid;
    out->family = (synth_family)f->family;
    out->owner = f->owner;
    out->question = f->question;
    out->subject = f->subject;
    out->question_text = f->q;
    out->answer = f->a;
    out->paraphrase = f->p;
    out->perturbed = (const char *const *)f->pert;
    out->value[0] = f->val[0];
    out->value[1] = f->val[1];
    out->bucket = f->tail ? f->bucket : -1;
    out->tail = f->tail;
}

const tokenizer *synth_tokenizer(const synth_data *d)
{
    return d->tk;
}

const double *synth_markov_matrix(const synth_data *d, int c)
{
    return d->markov && c >= 0 && c < 3 ? d->P[c] : NULL;
}

const double *synth_markov_initial(const synth_data *d, int c)
{
    return d->markov && c >= 0 && c < 3 ? d->init[c] : NULL;
}

static void free_list(char **v, int64_t n)
{
    for (int64_t i = 0; v && i < n; i++) free(v[i]);
    free(v);
}

void synth_free(synth_data *d)
{
    if (!d) return;
    for (int64_t i = 0; d->facts && i < d->n_facts; i++) {
        fact_t *f = &d->facts[i];
        free(f->prompt_text);
        free(f->q);
        free(f->a);
        free(f->p);
        free(f->val[0]);
        free(f->val[1]);
        free(f->tail);
        free_list(f->pert, f->pert ? d->K : 0);
        tok_ids_free(&f->tp);
        tok_ids_free(&f->ta);
        tok_ids_free(&f->tpa);
        for (int k = 0; f->tpert && k < d->K; k++) tok_ids_free(&f->tpert[k]);
        free(f->tpert);
    }
    free(d->facts);
    free_list(d->subjects, d->n_subjects);
    world_t *w = &d->w;
    free_list(w->country, w->n_countries);
    free_list(w->language, w->n_countries);
    free_list(w->city, w->n_cities);
    free_list(w->award, w->n_awards);
    free_list(w->publisher, w->n_publishers);
    free(w->city_country);
    strset_free(&d->names);
    sy_idk_free(d);
    tokenizer_free(d->tk);
    free(d);
}
