/* io/synth/synth_difficulty.c — forget data of varied difficulty (synth.difficulty, see
 * io/synth/synth.h): the bucket of each author fact, the tail of short or long, common or
 * rare words appended to all its candidates, the root attributes that record the
 * setting and the per-row /<split>/bucket datasets. With the setting off nothing here
 * touches the data, so the datasets stay byte-identical. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../dataset.h"
#include "synth_impl.h"

/* Frequent in any English text, and in every common-bucket tail of the corpus. */
const char *const SYNTH_COMMON_WORDS[SYNTH_N_COMMON_WORDS] = {
    "the", "and",  "of",   "in",   "with", "for",  "its",   "many",
    "all", "very", "more", "some", "most", "each", "other", "same"};

int sy_check_difficulty(const lethe_synth_config *c, char *err, size_t errlen)
{
    if (!c->difficulty) return 0;
    if (strcmp(c->kind, "authors") != 0)
        return sy_fail(err, errlen,
                       "synth.difficulty applies to synth.kind \"authors\", not \"%s\"", c->kind);
    if (c->tail_long <= c->tail_short)
        return sy_fail(err, errlen,
                       "synth.tail_long = %d must exceed synth.tail_short = %d (long answers are "
                       "the longer ones)",
                       c->tail_long, c->tail_short);
    return 0;
}

/* A rare word: three lower-case syllables, invented for one fact. Names are capitalised
 * and the word tokenizer keeps case, so it is no author's or place's name; two rare words
 * agree with odds below 1e-10 a pair. */
static void rare_word(rng *r, char *buf, size_t len)
{
    size_t n = 0;
    buf[0] = 0;
    for (int i = 0; i < 3 && n < len; i++)
        n += (size_t)snprintf(buf + n, len - n, "%s%s%s", ONSETS[sy_rng_below(r, NELEM(ONSETS))],
                              VOWELS[sy_rng_below(r, NELEM(VOWELS))],
                              CODAS[sy_rng_below(r, NELEM(CODAS))]);
    for (size_t i = 0; buf[i]; i++)
        if (buf[i] >= 'A' && buf[i] <= 'Z') buf[i] = (char)(buf[i] - 'A' + 'a');
}

/* s + tail, replacing s (malloc'd). */
static int append(char **s, const char *tail)
{
    size_t a = strlen(*s), b = strlen(tail);
    char *x = realloc(*s, a + b + 1);
    if (!x) return -1;
    memcpy(x + a, tail, b + 1);
    *s = x;
    return 0;
}

int sy_make_difficulty(synth_data *d)
{
    if (!d->c.difficulty) return 0;
    int64_t A = d->N + d->H;
    for (int64_t i = 0; i < d->n_facts; i++) d->facts[i].bucket = -1;
    for (int64_t i = 0; i < A * d->Q; i++) {
        fact_t *f = &d->facts[i];
        f->bucket = (int)((f->owner + f->question) % 4);
        int rare = f->bucket == SYNTH_SHORT_RARE || f->bucket == SYNTH_LONG_RARE;
        int n = f->bucket < SYNTH_LONG_COMMON ? d->c.tail_short : d->c.tail_long;
        rng r = sy_rng_for(d->c.seed, ST_DIFFICULTY, (uint64_t)f->sid);
        size_t cap = (size_t)n * 40 + 4, o = 0;
        if (!(f->tail = malloc(cap))) return sy_oom(d, "answer tails");
        for (int w = 0; w < n; w++) {
            char word[64];
            if (rare)
                rare_word(&r, word, sizeof word);
            else
                snprintf(word, sizeof word, "%s",
                         SYNTH_COMMON_WORDS[sy_rng_below(&r, SYNTH_N_COMMON_WORDS)]);
            o += (size_t)snprintf(f->tail + o, cap - o, " %s", word);
        }
        snprintf(f->tail + o, cap - o, ".");
        int bad = append(&f->a, f->tail) || append(&f->p, f->tail);
        for (int k = 0; k < d->K && !bad; k++) bad = append(&f->pert[k], f->tail);
        if (bad) return sy_oom(d, "answer tails");
    }
    return 0;
}

int sy_difficulty_attrs(const synth_data *d, hid_t file)
{
    if (!d->c.difficulty) return 0;
    return h5_attr_write_i64(file, "synth_difficulty", 1) ||
           h5_attr_write_i64(file, "synth_tail_short", d->c.tail_short) ||
           h5_attr_write_i64(file, "synth_tail_long", d->c.tail_long) ||
           h5_attr_write_str(file, "synth_bucket_names", SYNTH_BUCKET_NAMES);
}

/* /<split>/bucket (int32, one per row) and the split attribute bucket_names, for the QA
 * splits of author facts; nothing for the others or with the setting off. */
int sy_write_buckets(synth_data *d, hid_t group, const split_t *sp)
{
    if (!d->c.difficulty || d->markov || !sp->qa || strncmp(sp->name, "eval/", 5) == 0) return 0;
    int64_t n = sy_split_rows(d, sp), m = 0;
    int32_t *b = malloc(sizeof(int32_t) * (size_t)(n + 1));
    if (!b) return sy_oom(d, "buckets");
    for (int r = 0; r < sp->nr; r++)
        for (int64_t i = sp->lo[r]; i < sp->hi[r]; i++) b[m++] = d->facts[i].bucket;
    hsize_t dims[1] = {(hsize_t)n};
    hid_t s = H5Screate_simple(1, dims, NULL);
    hid_t ds = s < 0 ? -1
                     : H5Dcreate2(group, "bucket", H5T_STD_I32LE, s, H5P_DEFAULT, H5P_DEFAULT,
                                  H5P_DEFAULT);
    int bad = ds < 0 || H5Dwrite(ds, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, b) < 0 ||
              h5_attr_write_str(group, "bucket_names", SYNTH_BUCKET_NAMES);
    if (ds >= 0 && H5Dclose(ds) < 0) bad = 1;
    if (s >= 0) H5Sclose(s);
    free(b);
    return bad ? sy_fail(d->err, d->errlen, "synth: '%s': cannot write /%s/bucket", d->c.output,
                         sp->name)
               : 0;
}
