/* io/synth/synth_impl.h — what the parts of the built-in data generator share (internal):
 * the random streams, the name set, the generated facts, splits and world, and the
 * generator's state (synth.c: randomness, digests, the name set, the public calls;
 * synth_authors.c: the author study; synth_tables.c: its tables; markov_chains.c: the
 * Markov chains; synth_write.c: the HDF5 and JSON-lines output). */
#ifndef LETHE_IO_SYNTH_IMPL_H
#define LETHE_IO_SYNTH_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include <hdf5.h>

#include "synth.h"
#include "../text/tokenizer.h"

enum {
    ST_WORLD = 1,
    ST_AUTHOR,
    ST_PERTURB,
    ST_UTIL_A,
    ST_UTIL_B,
    ST_CHAINS,
    ST_MARKOV, /* + chain * 2 + part */
    ST_DIFFICULTY = ST_MARKOV + 6,
    ST_IDK = ST_DIFFICULTY + 1
};

typedef struct {
    uint64_t s;
} rng;

#define FNV_INIT 0xcbf29ce484222325ULL

typedef struct {
    const char **slot;
    size_t cap, n;
} strset;

enum {
    V_PLACE,
    V_YEAR,
    V_GENRE,
    V_JOB,
    V_AWARD,
    V_TITLE,
    V_LANGUAGE,
    V_PUBLISHER,
    V_HOBBY,
    V_MEANING
};

typedef struct {
    const char *attr;
    int type;
    const char *q, *a, *p;
} qtemplate;

#define PROMPT_OPEN "[INST] "
#define PROMPT_CLOSE " [/INST]"
#define PROMPT_TEMPLATE "[INST] {q} [/INST]"

/* ---- the generated data ------------------------------------------------------------- */

typedef struct {
    char *prompt_text, *q, *a, *p;
    char **pert;  /* (K) */
    char *val[2]; /* val[1]: country of a place, else NULL */
    const char *subject;
    int64_t sid, owner;
    int family, question;
    int bucket;          /* synth.difficulty: SYNTH_BUCKET_*, else -1 */
    char *tail;          /* synth.difficulty: the words added to every candidate, else NULL */
    tok_ids tp, ta, tpa; /* prompt, answer, paraphrase */
    tok_ids *tpert;      /* (K) */
} fact_t;

/* A split is up to three ranges of rows: fact indices (authors) or sequence indices of
 * chain ch[r], part pt[r] (markov). */
typedef struct {
    const char *name;
    int qa; /* authors: answer rows with candidates (1) or both phrasings, no candidates (0) */
    int nr;
    int64_t lo[3], hi[3];
    int ch[3], pt[3];
    int64_t authors;
    int idk; /* synth.idk: forgetXX's rows answered with an IdK phrase (synth_idk.c) */
} split_t;

typedef struct {
    int n_countries, n_cities, n_awards, n_publishers;
    char **country, **language, **city, **award, **publisher; /* owned */
    int *city_country;
} world_t;

#define S_ SYNTH_MARKOV_STATES
#define SYNTH_N_IDK 8

struct synth_data {
    lethe_synth_config c;
    int markov;
    int K, Q;
    int64_t N, H, U;
    int64_t forget_authors[3]; /* forget01, forget05, forget10 */
    world_t w;
    strset names;    /* every generated proper name and word, for uniqueness */
    char **subjects; /* (N + H + 2U) author names, landmarks, words; owned */
    int64_t n_subjects;
    int64_t n_facts;
    fact_t *facts;
    tokenizer *tk;
    int n_splits;
    split_t split[16];
    double P[3][S_ * S_], init[3][S_];
    int64_t m_train, m_eval;
    synth_summary sum;
    tok_ids idk_tok[SYNTH_N_IDK]; /* synth.idk: the IdK phrases' tokens */
    char *err;
    size_t errlen;
};

/* The question templates of the authors study (synth_tables.c) and the chains' split
 * names (markov_chains.c). */
extern const qtemplate AUTHOR_Q[SYNTH_N_ATTRIBUTES];
extern const char *const CHAIN_NAME[3];

/* synth_tables.c: the author study's tables and the constants derived from them */
#define NELEM(a) ((int)(sizeof(a) / sizeof((a)[0])))
extern const char *const ONSETS[30];
extern const char *const VOWELS[12];
extern const char *const CODAS[12];
extern const char *const GENRES[24];
extern const char *const JOBS[32];
extern const char *const HOBBIES[24];
extern const char *const MEANINGS[40];
extern const char *const TITLE_ADJ[32];
extern const char *const TITLE_NOUN[32];
extern const char *const TITLE_PATTERN[4];
extern const char *const AWARD_KIND[3];
extern const char *const AWARD_FIELD[8];
extern const char *const PUBLISHER_KIND[4];
extern const char *const COUNTRY_SUFFIX[8];
extern const char *const LANGUAGE_SUFFIX[4];
extern const char *const CITY_PREFIX[8];
extern const char *const LANDMARK_KIND[16];
extern const qtemplate UTILITY_Q[2];
#define NELEM(a) ((int)(sizeof(a) / sizeof((a)[0])))
#define YEAR_FIRST 1920
#define N_YEARS 80
#define CITIES_PER_COUNTRY 5
#define N_TITLES (NELEM(TITLE_PATTERN) * NELEM(TITLE_ADJ) * NELEM(TITLE_NOUN))

/* synth.c */
int sy_fail(char *err, size_t errlen, const char *fmt, ...);
double sy_now_seconds(void);
rng sy_rng_for(uint64_t seed, uint64_t stream, uint64_t index);
double sy_rng_unit(rng *r);
uint64_t sy_fnv_i32(uint64_t h, const int32_t *v, int64_t n);
uint64_t sy_fnv_f64(uint64_t h, const double *v, int64_t n);
int sy_oom(synth_data *d, const char *what);
uint64_t sy_rng_below(rng *r, uint64_t n);
uint64_t sy_fnv(uint64_t h, const void *p, size_t n);
int sy_strset_has(const strset *s, const char *str);
int sy_strset_add(strset *s, const char *str);

/* synth_authors.c */
int sy_check_authors(const lethe_synth_config *c, char *err, size_t errlen);
int sy_make_world(synth_data *d);
int sy_make_authors(synth_data *d);
void sy_make_author_splits(synth_data *d);
int sy_make_tokens(synth_data *d);
int64_t sy_split_rows(const synth_data *d, const split_t *s);

/* synth_difficulty.c */
int sy_check_difficulty(const lethe_synth_config *c, char *err, size_t errlen);
int sy_make_difficulty(synth_data *d);
int sy_difficulty_attrs(const synth_data *d, hid_t file);
int sy_write_buckets(synth_data *d, hid_t group, const split_t *sp);

/* synth_idk.c */
int sy_idk_phrase(const synth_data *d, int64_t fact);
const char *sy_idk_text(const synth_data *d, int64_t fact);
const tok_ids *sy_idk_tokens(const synth_data *d, int64_t fact);
void sy_make_idk_splits(synth_data *d);
void sy_count_idk(const synth_data *d, const split_t *sp, int64_t fact, word_counter *wc);
int sy_idk_encode(synth_data *d, uint64_t *digest);
void sy_idk_free(synth_data *d);

/* markov_chains.c */
int sy_check_markov(const lethe_synth_config *c, char *err, size_t errlen);
void sy_make_chains(synth_data *d);
int sy_markov_row(const synth_data *d, int c, int part, int64_t i, int32_t *row, int T);
void sy_make_markov_splits(synth_data *d);
void sy_markov_digest(synth_data *d);

#endif
