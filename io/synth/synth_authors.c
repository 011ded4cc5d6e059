/* io/synth/synth_authors.c — the fictitious-author study of io/synth/synth.h: the world
 * (countries, cities, landmarks, words), the facts rendered from the question templates,
 * the authors and their validation, the forget / retain / holdout splits and their tokens
 * (the tables: synth_tables.c; randomness and digests: synth.c). */
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

static void make_word(rng *r, int nsyl, int cap, char *buf, size_t len)
{
    size_t n = 0;
    buf[0] = 0;
    for (int i = 0; i < nsyl && n < len; i++) {
        const char *on = ONSETS[sy_rng_below(r, NELEM(ONSETS))];
        if (i > 0 && sy_rng_below(r, 3) == 0) on = "";
        const char *vo = VOWELS[sy_rng_below(r, NELEM(VOWELS))];
        const char *co = CODAS[sy_rng_below(r, NELEM(CODAS))];
        n += (size_t)snprintf(buf + n, len - n, "%s%s%s", on, vo, co);
    }
    if (cap && buf[0] >= 'a' && buf[0] <= 'z') buf[0] = (char)(buf[0] - 'a' + 'A');
}

/* Keeps `cand` (copied) if no generated name equals it: 1 kept, 0 taken, -1 no memory. */
static int claim_name(synth_data *d, const char *cand, char **out)
{
    if (sy_strset_has(&d->names, cand)) return 0;
    char *s = strdup(cand);
    if (!s || sy_strset_add(&d->names, s)) {
        free(s);
        return -1;
    }
    *out = s;
    return 1;
}

/* Tries a generator until it yields a new name. The name space of every generator is
 * orders of magnitude larger than the names it must yield, so running out of tries
 * means a bug, not bad luck. */
#define UNIQUE_NAME(d, out, what, ...)                                                             \
    do {                                                                                           \
        int got_ = 0;                                                                              \
        for (int try_ = 0; try_ < 100000 && !got_; try_++) {                                       \
            char cand[256];                                                                        \
            __VA_ARGS__;                                                                           \
            got_ = claim_name(d, cand, &(out));                                                    \
            if (got_ < 0) return sy_oom(d, what);                                                  \
        }                                                                                          \
        if (!got_) return sy_fail(d->err, d->errlen, "synth: cannot find a new %s name", what);    \
    } while (0)

int sy_make_world(synth_data *d)
{
    world_t *w = &d->w;
    rng r = sy_rng_for(d->c.seed, ST_WORLD, 0);
    /* pools that perturbed answers draw from hold at least K + 1 values */
    w->n_countries = d->K + 1 > 12 ? d->K + 1 : 12;
    w->n_cities = w->n_countries * CITIES_PER_COUNTRY;
    w->n_awards = d->K + 1 > 24 ? d->K + 1 : 24;
    w->n_publishers = d->K + 1 > 20 ? d->K + 1 : 20;
    w->country = calloc((size_t)w->n_countries, sizeof(char *));
    w->language = calloc((size_t)w->n_countries, sizeof(char *));
    w->city = calloc((size_t)w->n_cities, sizeof(char *));
    w->city_country = calloc((size_t)w->n_cities, sizeof(int));
    w->award = calloc((size_t)w->n_awards, sizeof(char *));
    w->publisher = calloc((size_t)w->n_publishers, sizeof(char *));
    if (!w->country || !w->language || !w->city || !w->city_country || !w->award || !w->publisher)
        return sy_oom(d, "world tables");
    for (int i = 0; i < w->n_countries; i++) {
        char stem[128];
        for (;;) {
            make_word(&r, 2, 1, stem, sizeof stem);
            char cn[256], ln[256];
            snprintf(cn, sizeof cn, "%s%s", stem,
                     COUNTRY_SUFFIX[sy_rng_below(&r, NELEM(COUNTRY_SUFFIX))]);
            snprintf(ln, sizeof ln, "%s%s", stem,
                     LANGUAGE_SUFFIX[sy_rng_below(&r, NELEM(LANGUAGE_SUFFIX))]);
            if (sy_strset_has(&d->names, cn) || sy_strset_has(&d->names, ln) || !strcmp(cn, ln))
                continue;
            if (claim_name(d, cn, &w->country[i]) < 0 || claim_name(d, ln, &w->language[i]) < 0)
                return sy_oom(d, "world tables");
            break;
        }
    }
    for (int i = 0; i < w->n_cities; i++) {
        w->city_country[i] = i / CITIES_PER_COUNTRY;
        UNIQUE_NAME(d, w->city[i], "city", {
            char wd[128];
            make_word(&r, 2, 1, wd, sizeof wd);
            snprintf(cand, sizeof cand, "%s%s", CITY_PREFIX[sy_rng_below(&r, NELEM(CITY_PREFIX))],
                     wd);
        });
    }
    for (int i = 0; i < w->n_awards; i++)
        UNIQUE_NAME(d, w->award[i], "award", {
            char wd[128];
            make_word(&r, 2, 1, wd, sizeof wd);
            snprintf(cand, sizeof cand, "%s %s for %s", wd,
                     AWARD_KIND[sy_rng_below(&r, NELEM(AWARD_KIND))],
                     AWARD_FIELD[sy_rng_below(&r, NELEM(AWARD_FIELD))]);
        });
    for (int i = 0; i < w->n_publishers; i++)
        UNIQUE_NAME(d, w->publisher[i], "publisher", {
            char wd[128];
            make_word(&r, 2, 1, wd, sizeof wd);
            snprintf(cand, sizeof cand, "%s %s", wd,
                     PUBLISHER_KIND[sy_rng_below(&r, NELEM(PUBLISHER_KIND))]);
        });
    return 0;
}

static int64_t pool_size(const synth_data *d, int type)
{
    switch (type) {
    case V_PLACE: return d->w.n_cities;
    case V_YEAR: return N_YEARS;
    case V_GENRE: return NELEM(GENRES);
    case V_JOB: return NELEM(JOBS);
    case V_AWARD: return d->w.n_awards;
    case V_TITLE: return N_TITLES;
    case V_LANGUAGE: return d->w.n_countries;
    case V_PUBLISHER: return d->w.n_publishers;
    case V_HOBBY: return NELEM(HOBBIES);
    default: return NELEM(MEANINGS);
    }
}

/* The pools of the fixed tables (the others grow with K). */
static int64_t fixed_pool_size(int type)
{
    switch (type) {
    case V_YEAR: return N_YEARS;
    case V_GENRE: return NELEM(GENRES);
    case V_JOB: return NELEM(JOBS);
    case V_TITLE: return N_TITLES;
    case V_HOBBY: return NELEM(HOBBIES);
    case V_MEANING: return NELEM(MEANINGS);
    default: return INT64_MAX;
    }
}

/* Value idx of a type as text; v1 is the country of a place, else empty. */
static void value_text(const synth_data *d, int type, int64_t idx, char *v0, char *v1, size_t len)
{
    v1[0] = 0;
    switch (type) {
    case V_PLACE:
        snprintf(v0, len, "%s", d->w.city[idx]);
        snprintf(v1, len, "%s", d->w.country[d->w.city_country[idx]]);
        break;
    case V_YEAR: snprintf(v0, len, "%d", YEAR_FIRST + (int)idx); break;
    case V_GENRE: snprintf(v0, len, "%s", GENRES[idx]); break;
    case V_JOB: snprintf(v0, len, "%s", JOBS[idx]); break;
    case V_AWARD: snprintf(v0, len, "%s", d->w.award[idx]); break;
    case V_TITLE: {
        int na = NELEM(TITLE_ADJ), nn = NELEM(TITLE_NOUN);
        int pat = (int)(idx / (na * nn)), adj = (int)(idx / nn % na), noun = (int)(idx % nn);
        snprintf(v0, len, TITLE_PATTERN[pat], TITLE_ADJ[adj], TITLE_NOUN[noun]);
        break;
    }
    case V_LANGUAGE: snprintf(v0, len, "%s", d->w.language[idx]); break;
    case V_PUBLISHER: snprintf(v0, len, "%s", d->w.publisher[idx]); break;
    case V_HOBBY: snprintf(v0, len, "%s", HOBBIES[idx]); break;
    default: snprintf(v0, len, "%s", MEANINGS[idx]); break;
    }
}

/* Template with {N}, {V}, {K} replaced; malloc'd. */
static char *render(const char *tmpl, const char *n, const char *v, const char *k)
{
    size_t need = strlen(tmpl) + 1;
    for (const char *s = tmpl; *s; s++)
        if (s[0] == '{' && s[1] && s[2] == '}')
            need += strlen(s[1] == 'N' ? n : s[1] == 'V' ? v : k);
    char *out = malloc(need), *o = out;
    if (!out) return NULL;
    for (const char *s = tmpl; *s;) {
        if (s[0] == '{' && (s[1] == 'N' || s[1] == 'V' || s[1] == 'K') && s[2] == '}') {
            const char *x = s[1] == 'N' ? n : s[1] == 'V' ? v : k;
            size_t l = strlen(x);
            memcpy(o, x, l);
            o += l;
            s += 3;
        } else {
            *o++ = *s++;
        }
    }
    *o = 0;
    return out;
}

/* One fact: texts of the answer, the paraphrase and K perturbed answers. */
static int make_fact(synth_data *d, fact_t *f, const qtemplate *t, const char *subject,
                     int64_t value, int64_t sid, int family, int64_t owner, int question)
{
    char v0[256], v1[256];
    f->subject = subject;
    f->sid = sid;
    f->family = family;
    f->owner = owner;
    f->question = question;
    value_text(d, t->type, value, v0, v1, sizeof v0);
    f->q = render(t->q, subject, v0, v1);
    f->a = render(t->a, subject, v0, v1);
    f->p = render(t->p, subject, v0, v1);
    f->val[0] = strdup(v0);
    f->val[1] = v1[0] ? strdup(v1) : NULL;
    f->pert = calloc((size_t)d->K, sizeof(char *));
    f->tpert = calloc((size_t)d->K, sizeof(tok_ids));
    if (!f->q || !f->a || !f->p || !f->val[0] || (v1[0] && !f->val[1]) || !f->pert || !f->tpert)
        return sy_oom(d, "facts");
    size_t ql = strlen(f->q);
    f->prompt_text = malloc(ql + sizeof PROMPT_OPEN + sizeof PROMPT_CLOSE);
    if (!f->prompt_text) return sy_oom(d, "facts");
    sprintf(f->prompt_text, "%s%s%s", PROMPT_OPEN, f->q, PROMPT_CLOSE);
    /* K distinct wrong values of the same type; distinct values are distinct texts */
    rng r = sy_rng_for(d->c.seed, ST_PERTURB, (uint64_t)sid);
    int64_t pool = pool_size(d, t->type), chosen[64];
    for (int k = 0; k < d->K; k++) {
        int64_t x;
        int again;
        do {
            x = (int64_t)sy_rng_below(&r, (uint64_t)pool);
            again = x == value;
            for (int j = 0; j < k && !again; j++) again = chosen[j] == x;
        } while (again);
        chosen[k] = x;
        value_text(d, t->type, x, v0, v1, sizeof v0);
        if (!(f->pert[k] = render(t->a, subject, v0, v1))) return sy_oom(d, "facts");
    }
    return 0;
}

/* ---- authors: validation, generation, splits, tokens ---------------------------------- */

static int64_t ceil_pct(int64_t n, int pct)
{
    int64_t k = (n * pct + 99) / 100;
    return k < 1 ? 1 : k;
}

int sy_check_authors(const lethe_synth_config *c, char *err, size_t errlen)
{
    if (c->questions > SYNTH_N_ATTRIBUTES) {
        char names[512] = "";
        size_t o = 0;
        for (int j = 0; j < SYNTH_N_ATTRIBUTES; j++)
            o += (size_t)snprintf(names + o, sizeof names - o, "%s%s", j ? ", " : "",
                                  AUTHOR_Q[j].attr);
        return sy_fail(err, errlen,
                       "synth.questions = %d: the authors study has %d question templates (%s); "
                       "expected 1..%d",
                       c->questions, SYNTH_N_ATTRIBUTES, names, SYNTH_N_ATTRIBUTES);
    }
    if (c->perturbed > 64)
        return sy_fail(err, errlen, "synth.perturbed = %d: expected at most 64", c->perturbed);
    for (int j = 0; j < c->questions + 2; j++) {
        const qtemplate *t = j < c->questions ? &AUTHOR_Q[j] : &UTILITY_Q[j - c->questions];
        int64_t pool = fixed_pool_size(t->type);
        if (c->perturbed > pool - 1)
            return sy_fail(err, errlen,
                           "synth.perturbed = %d: %s '%s' has %lld values, so at most %lld wrong "
                           "answers; lower synth.perturbed%s",
                           c->perturbed, j < c->questions ? "question" : "utility set", t->attr,
                           (long long)pool, (long long)pool - 1,
                           j < c->questions ? " or synth.questions" : "");
    }
    if ((int64_t)c->n_authors + c->holdout_authors > ((int64_t)1 << 33))
        return sy_fail(err, errlen,
                       "synth.n_authors + synth.holdout_authors = %lld: expected at "
                       "most 2^33 (sample ids)",
                       (long long)c->n_authors + c->holdout_authors);
    return 0;
}

int sy_make_authors(synth_data *d)
{
    int64_t A = d->N + d->H, U = d->U;
    d->n_subjects = A + 2 * U;
    d->subjects = calloc((size_t)d->n_subjects, sizeof(char *));
    d->n_facts = A * d->Q + 2 * U;
    d->facts = calloc((size_t)d->n_facts, sizeof(fact_t));
    if (!d->subjects || !d->facts) return sy_oom(d, "facts");
    int64_t val[SYNTH_N_ATTRIBUTES];
    for (int64_t a = 0; a < A; a++) {
        rng r = sy_rng_for(d->c.seed, ST_AUTHOR, (uint64_t)a);
        UNIQUE_NAME(d, d->subjects[a], "author", {
            char first[128], last[128];
            make_word(&r, 2, 1, first, sizeof first);
            make_word(&r, 2 + (int)sy_rng_below(&r, 2), 1, last, sizeof last);
            snprintf(cand, sizeof cand, "%s %s", first, last);
        });
        for (int j = 0; j < SYNTH_N_ATTRIBUTES; j++)
            val[j] = (int64_t)sy_rng_below(&r, (uint64_t)pool_size(d, AUTHOR_Q[j].type));
        while (val[7] == val[6]) val[7] = (int64_t)sy_rng_below(&r, N_TITLES); /* two books */
        for (int q = 0; q < d->Q; q++)
            if (make_fact(d, &d->facts[a * d->Q + q], &AUTHOR_Q[q], d->subjects[a], val[q],
                          (a * 64 + q) * 2, SYNTH_AUTHOR, a, q))
                return -1;
    }
    for (int64_t i = 0; i < U; i++) {
        rng r = sy_rng_for(d->c.seed, ST_UTIL_A, (uint64_t)i);
        UNIQUE_NAME(d, d->subjects[A + i], "landmark", {
            char wd[128];
            make_word(&r, 2, 1, wd, sizeof wd);
            snprintf(cand, sizeof cand, "%s %s", wd,
                     LANDMARK_KIND[sy_rng_below(&r, NELEM(LANDMARK_KIND))]);
        });
        int64_t city = (int64_t)sy_rng_below(&r, (uint64_t)d->w.n_cities);
        if (make_fact(d, &d->facts[A * d->Q + i], &UTILITY_Q[0], d->subjects[A + i], city,
                      SYNTH_SID_UTILITY_A + 2 * i, SYNTH_UTILITY_A, i, 0))
            return -1;
    }
    for (int64_t i = 0; i < U; i++) {
        rng r = sy_rng_for(d->c.seed, ST_UTIL_B, (uint64_t)i);
        UNIQUE_NAME(d, d->subjects[A + U + i], "word",
                    make_word(&r, 2 + (int)sy_rng_below(&r, 2), 0, cand, sizeof cand));
        int64_t meaning = (int64_t)sy_rng_below(&r, NELEM(MEANINGS));
        if (make_fact(d, &d->facts[A * d->Q + U + i], &UTILITY_Q[1], d->subjects[A + U + i],
                      meaning, SYNTH_SID_UTILITY_B + 2 * i, SYNTH_UTILITY_B, i, 0))
            return -1;
    }
    return 0;
}

static void add_split(synth_data *d, const char *name, int qa, int64_t authors, int nr,
                      const int64_t *lo, const int64_t *hi)
{
    split_t *s = &d->split[d->n_splits++];
    memset(s, 0, sizeof *s);
    s->name = name;
    s->qa = qa;
    s->authors = authors;
    s->nr = nr;
    for (int r = 0; r < nr; r++) {
        s->lo[r] = lo[r];
        s->hi[r] = hi[r];
    }
}

int64_t sy_split_rows(const synth_data *d, const split_t *s)
{
    int64_t n = 0;
    for (int r = 0; r < s->nr; r++) n += s->hi[r] - s->lo[r];
    return d->markov || s->qa ? n : 2 * n;
}

void sy_make_author_splits(synth_data *d)
{
    static const char *const forget[3] = {"forget01", "forget05", "forget10"};
    static const char *const retain[3] = {"retain99", "retain95", "retain90"};
    static const char *const train_retain[3] = {"train_retain01", "train_retain05",
                                                "train_retain10"};
    const int pct[3] = {1, 5, 10};
    int64_t Q = d->Q, N = d->N, H = d->H, U = d->U, A = N + H;
    int64_t ua = A * Q, ub = A * Q + U, uend = A * Q + 2 * U;
    for (int i = 0; i < 3; i++) d->forget_authors[i] = ceil_pct(N, pct[i]);
    for (int i = 0; i < 3; i++) {
        int64_t lo[1] = {0}, hi[1] = {d->forget_authors[i] * Q};
        add_split(d, forget[i], 1, d->forget_authors[i], 1, lo, hi);
    }
    for (int i = 0; i < 3; i++) {
        int64_t lo[1] = {d->forget_authors[i] * Q}, hi[1] = {N * Q};
        add_split(d, retain[i], 1, N - d->forget_authors[i], 1, lo, hi);
    }
    {
        int64_t lo[1] = {N * Q}, hi[1] = {A * Q};
        add_split(d, "holdout", 1, H, 1, lo, hi);
    }
    {
        int64_t lo[1] = {ua}, hi[1] = {ub};
        add_split(d, "eval/utility_a", 1, 0, 1, lo, hi);
        lo[0] = ub;
        hi[0] = uend;
        add_split(d, "eval/utility_b", 1, 0, 1, lo, hi);
    }
    {
        int64_t lo[2] = {0, ua}, hi[2] = {N * Q, uend};
        add_split(d, "train_full", 0, N, 2, lo, hi);
    }
    for (int i = 0; i < 3; i++) {
        int64_t lo[2] = {d->forget_authors[i] * Q, ua}, hi[2] = {N * Q, uend};
        add_split(d, train_retain[i], 0, N - d->forget_authors[i], 2, lo, hi);
    }
}

/* The word vocabulary counts every text of every row of every split, exactly the texts
 * `lethe prepare` reads from the JSON lines (rendered prompt, answer, candidates), so
 * prepare's word tokenizer over those files has the same ids. */
int sy_make_tokens(synth_data *d)
{
    word_counter *wc = word_counter_new();
    if (!wc) return sy_oom(d, "word counts");
    for (int s = 0; s < d->n_splits; s++) {
        const split_t *sp = &d->split[s];
        for (int r = 0; r < sp->nr; r++)
            for (int64_t i = sp->lo[r]; i < sp->hi[r]; i++) {
                const fact_t *f = &d->facts[i];
                if (sp->idk) {
                    sy_count_idk(d, sp, i, wc);
                    continue;
                }
                word_counter_add(wc, f->prompt_text, strlen(f->prompt_text));
                word_counter_add(wc, f->a, strlen(f->a));
                if (!sp->qa) word_counter_add(wc, f->prompt_text, strlen(f->prompt_text));
                word_counter_add(wc, f->p, strlen(f->p));
                for (int k = 0; sp->qa && k < d->K; k++)
                    word_counter_add(wc, f->pert[k], strlen(f->pert[k]));
            }
    }
    int rc = tokenizer_word_build(&d->tk, wc, 1, 0, d->err, d->errlen);
    word_counter_free(wc);
    if (rc) return -1;
    /* digest of the generated texts, in fact order */
    uint64_t h = FNV_INIT;
    int max_len = 0;
    int64_t worst = -1;
    int worst_what = 0;
    for (int64_t i = 0; i < d->n_facts; i++) {
        fact_t *f = &d->facts[i];
        h = sy_fnv(h, f->q, strlen(f->q) + 1);
        h = sy_fnv(h, f->a, strlen(f->a) + 1);
        h = sy_fnv(h, f->p, strlen(f->p) + 1);
        for (int k = 0; k < d->K; k++) h = sy_fnv(h, f->pert[k], strlen(f->pert[k]) + 1);
        if (tokenizer_encode(d->tk, f->prompt_text, strlen(f->prompt_text), &f->tp) ||
            tokenizer_encode(d->tk, f->a, strlen(f->a), &f->ta) ||
            tokenizer_encode(d->tk, f->p, strlen(f->p), &f->tpa))
            return sy_oom(d, "tokens");
        for (int k = 0; k < d->K; k++)
            if (tokenizer_encode(d->tk, f->pert[k], strlen(f->pert[k]), &f->tpert[k]))
                return sy_oom(d, "tokens");
        for (int j = 0; j < 2 + d->K; j++) {
            const tok_ids *t = j == 0 ? &f->ta : j == 1 ? &f->tpa : &f->tpert[j - 2];
            int len = f->tp.n + t->n + 1;
            if (len > max_len) {
                max_len = len;
                worst = i;
                worst_what = j;
            }
        }
    }
    if (sy_idk_encode(d, &h)) return -1;
    snprintf(d->sum.source_digest, sizeof d->sum.source_digest, "fnv1a64:%016llx",
             (unsigned long long)h);
    d->sum.max_len = max_len;
    d->sum.vocab_size = tokenizer_vocab_size(d->tk);
    if (max_len > d->c.seq_len) {
        const fact_t *f = &d->facts[worst];
        return sy_fail(d->err, d->errlen,
                       "synth.seq_len = %d is too short: the row '%s' + '%s' (%s of sample %lld) "
                       "needs %d tokens with its EOS; set synth.seq_len >= %d",
                       d->c.seq_len, f->prompt_text,
                       worst_what == 0   ? f->a
                       : worst_what == 1 ? f->p
                                         : f->pert[worst_what - 2],
                       worst_what == 0   ? "answer"
                       : worst_what == 1 ? "paraphrase"
                                         : "perturbed answer",
                       (long long)f->sid, max_len, max_len);
    }
    return 0;
}
