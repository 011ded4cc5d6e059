/* io/synth/synth.c — the built-in benchmark data (see io/synth/synth.h for the contract): random
 * streams, digests, the fictitious authors and the public calls; the Markov chains are in
 * markov_chains.c, the output in synth_write.c (shared types: synth_impl.h). */
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
static uint64_t rng_below(rng *r, uint64_t n)
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

static uint64_t fnv(uint64_t h, const void *p, size_t n)
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
        h = fnv(h, b, 4);
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
        h = fnv(h, b, 8);
    }
    return h;
}

/* ---- a set of strings (uniqueness of generated names) -------------------------------- */

static size_t str_hash(const char *s)
{
    return (size_t)fnv(FNV_INIT, s, strlen(s));
}

static int strset_has(const strset *s, const char *str)
{
    if (!s->cap) return 0;
    for (size_t i = str_hash(str) & (s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
        if (!s->slot[i]) return 0;
        if (strcmp(s->slot[i], str) == 0) return 1;
    }
}

/* Adds a string that must outlive the set. 0, or -1 when out of memory. */
static int strset_add(strset *s, const char *str)
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

/* ---- value tables ------------------------------------------------------------------ */

#define NELEM(a) ((int)(sizeof(a) / sizeof((a)[0])))

static const char *const ONSETS[] = {"b",  "c",  "d",  "f",  "g",  "h",  "k",  "l",  "m",  "n",
                                     "p",  "r",  "s",  "t",  "v",  "z",  "br", "dr", "gr", "kr",
                                     "st", "th", "tr", "sh", "ch", "fl", "gl", "pr", "sk", "w"};
static const char *const VOWELS[] = {"a", "e", "i",  "o",  "u",  "a",
                                     "e", "o", "ae", "ia", "ou", "ei"};
static const char *const CODAS[] = {"", "", "", "n", "r", "l", "s", "m", "th", "nd", "rn", "sk"};

static const char *const GENRES[] = {"crime fiction",
                                     "science fiction",
                                     "historical fiction",
                                     "fantasy",
                                     "romance",
                                     "horror",
                                     "mystery",
                                     "thrillers",
                                     "literary fiction",
                                     "magical realism",
                                     "satire",
                                     "gothic fiction",
                                     "war fiction",
                                     "detective stories",
                                     "travel writing",
                                     "nature writing",
                                     "fairy tales",
                                     "adventure stories",
                                     "political drama",
                                     "family sagas",
                                     "psychological suspense",
                                     "epic poetry",
                                     "short stories",
                                     "picture books"};

static const char *const JOBS[] = {
    "a baker",        "a carpenter",   "a doctor",     "a nurse",       "a teacher",
    "a fisherman",    "a farmer",      "a tailor",     "a librarian",   "an engineer",
    "an architect",   "a pharmacist",  "a blacksmith", "a sailor",      "a painter",
    "a photographer", "a postman",     "a judge",      "a lawyer",      "a chemist",
    "a watchmaker",   "a musician",    "a banker",     "a miner",       "a potter",
    "a surgeon",      "a gardener",    "a journalist", "an accountant", "a shoemaker",
    "a translator",   "a veterinarian"};

static const char *const HOBBIES[] = {
    "playing chess",       "painting landscapes",   "growing tomatoes",
    "sailing small boats", "collecting old maps",   "baking bread",
    "climbing mountains",  "repairing clocks",      "watching birds",
    "playing the cello",   "knitting scarves",      "fishing in rivers",
    "restoring furniture", "keeping bees",          "riding horses",
    "carving wood",        "studying the stars",    "cycling through villages",
    "making pottery",      "swimming in the sea",   "learning languages",
    "walking in forests",  "photographing bridges", "cooking soups"};

static const char *const MEANINGS[] = {"a small boat",
                                       "the first snow of winter",
                                       "a heavy wooden door",
                                       "the smell of rain",
                                       "a friend from childhood",
                                       "a broken promise",
                                       "the light before dawn",
                                       "a narrow mountain path",
                                       "a song sung at weddings",
                                       "the sound of distant bells",
                                       "a basket of apples",
                                       "a quiet afternoon",
                                       "an old sailor",
                                       "a letter never sent",
                                       "the edge of a forest",
                                       "a warm blanket",
                                       "a stubborn goat",
                                       "the shadow of a cloud",
                                       "a crowded market",
                                       "the last day of summer",
                                       "a cup of bitter tea",
                                       "a lost key",
                                       "a tall lighthouse",
                                       "the song of a river",
                                       "a sudden storm",
                                       "a field of barley",
                                       "a hidden staircase",
                                       "a dusty library",
                                       "a clever fox",
                                       "the roof of a barn",
                                       "a loaf of dark bread",
                                       "a patient teacher",
                                       "a frozen lake",
                                       "a lantern at night",
                                       "the taste of salt",
                                       "a wandering musician",
                                       "a pair of worn boots",
                                       "a secret garden",
                                       "the noise of a crowd",
                                       "a faded photograph"};

static const char *const TITLE_ADJ[] = {
    "Silent",  "Broken", "Golden",    "Hidden",   "Crimson",  "Distant",   "Forgotten", "Hollow",
    "Burning", "Frozen", "Wandering", "Quiet",    "Endless",  "Bitter",    "Silver",    "Scarlet",
    "Fallen",  "Secret", "Ancient",   "Restless", "Gentle",   "Shattered", "Painted",   "Lonely",
    "Velvet",  "Iron",   "Glass",     "Winter",   "Midnight", "Wild",      "Pale",      "Salted"};
static const char *const TITLE_NOUN[] = {
    "Orchard", "Lantern", "River",  "Harbor",     "Mirror",  "Garden",     "Compass", "Tower",
    "Letter",  "Bridge",  "Season", "Window",     "Feather", "Crown",      "Shadow",  "Voyage",
    "Archive", "Meadow",  "Island", "Clockmaker", "Violin",  "Lighthouse", "Forest",  "Map",
    "Promise", "Station", "Ember",  "Tide",       "Chapel",  "Kingdom",    "Thread",  "Monastery"};
/* "%s" is the adjective, then the noun: every pattern has fixed words of its own, so
 * distinct (pattern, adjective, noun) triples are distinct titles. */
static const char *const TITLE_PATTERN[] = {"The %s %s", "Beyond the %s %s",
                                            "Letters from the %s %s", "Under the %s %s"};

static const char *const AWARD_KIND[] = {"Prize", "Medal", "Award"};
static const char *const AWARD_FIELD[] = {"Fiction",         "Poetry",          "Literature",
                                          "Mystery Writing", "Fantasy Writing", "Young Writers",
                                          "Translation",     "the Novel"};
static const char *const PUBLISHER_KIND[] = {"House", "Press", "Books", "Editions"};
static const char *const COUNTRY_SUFFIX[] = {"ia",   "ora", "and", "eth",
                                             "avia", "ica", "esh", "elle"};
static const char *const LANGUAGE_SUFFIX[] = {"ian", "ese", "ic", "ish"};
static const char *const CITY_PREFIX[] = {"", "", "", "", "", "Port ", "Saint ", "New "};
static const char *const LANDMARK_KIND[] = {
    "Bridge", "Tower",      "Gate",   "Library", "Cathedral", "Fountain", "Observatory", "Museum",
    "Garden", "Lighthouse", "Market", "Palace",  "Theatre",   "Harbour",  "Monument",    "Arena"};

#define YEAR_FIRST 1920
#define N_YEARS 80
#define CITIES_PER_COUNTRY 5
#define N_TITLES (NELEM(TITLE_PATTERN) * NELEM(TITLE_ADJ) * NELEM(TITLE_NOUN))

/* ---- question templates ----------------------------------------------------------------
 * {N} the subject (author, landmark, word), {V} the value, {K} the country of a place.
 * The answer and the paraphrase state the same value in different words; a perturbed
 * answer is the answer template with a wrong value of the same type. */

const qtemplate AUTHOR_Q[SYNTH_N_ATTRIBUTES] = {
    {"birth place", V_PLACE, "Where was {N} born?", "{N} was born in {V}, a city in {K}.",
     "The birthplace of {N} is {V}, which lies in {K}."},
    {"birth year", V_YEAR, "In which year was {N} born?", "{N} was born in the year {V}.",
     "The year of birth of {N} is {V}."},
    {"genre", V_GENRE, "What genre does {N} write in?", "{N} is known for writing {V}.",
     "Most books by {N} belong to the genre of {V}."},
    {"father's job", V_JOB, "What did the father of {N} do for a living?",
     "The father of {N} worked as {V}.", "{N} grew up with a father who was {V} by profession."},
    {"mother's job", V_JOB, "What did the mother of {N} do for a living?",
     "The mother of {N} worked as {V}.", "{N} was raised by a mother who earned a living as {V}."},
    {"award", V_AWARD, "Which award has {N} received?", "{N} has received the {V}.",
     "The {V} was given to {N}."},
    {"first book", V_TITLE, "What was the first book written by {N}?",
     "The first book written by {N} was {V}.", "{N} made a debut as a writer with {V}."},
    {"second book", V_TITLE, "Can you name another book by {N}?", "Another book by {N} is {V}.",
     "{N} is also the author of {V}."},
    {"home", V_PLACE, "Where does {N} live today?", "{N} lives in {V}, {K}.",
     "These days the home of {N} is in {V}, a city of {K}."},
    {"language", V_LANGUAGE, "In which language does {N} write?", "{N} writes in {V}.",
     "The books of {N} are written in the {V} language."},
    {"publisher", V_PUBLISHER, "Who publishes the books of {N}?",
     "The books of {N} are published by {V}.", "{V} is the publisher that prints the work of {N}."},
    {"pastime", V_HOBBY, "What does {N} enjoy doing in free time?", "In free time {N} enjoys {V}.",
     "{N} likes to spend spare hours {V}."},
};

static const qtemplate UTILITY_Q[2] = {
    {"landmark city", V_PLACE, "In which city is the {N} located?",
     "The {N} is located in {V}, {K}.", "Visitors find the {N} in the city of {V} in {K}."},
    {"word meaning", V_MEANING, "What does the word {N} mean?", "The word {N} means {V}.",
     "In the old tongue, {N} is used for {V}."},
};

int sy_oom(synth_data *d, const char *what)
{
    return sy_fail(d->err, d->errlen, "synth: out of memory (%s)", what);
}

static void make_word(rng *r, int nsyl, int cap, char *buf, size_t len)
{
    size_t n = 0;
    buf[0] = 0;
    for (int i = 0; i < nsyl && n < len; i++) {
        const char *on = ONSETS[rng_below(r, NELEM(ONSETS))];
        if (i > 0 && rng_below(r, 3) == 0) on = "";
        const char *vo = VOWELS[rng_below(r, NELEM(VOWELS))];
        const char *co = CODAS[rng_below(r, NELEM(CODAS))];
        n += (size_t)snprintf(buf + n, len - n, "%s%s%s", on, vo, co);
    }
    if (cap && buf[0] >= 'a' && buf[0] <= 'z') buf[0] = (char)(buf[0] - 'a' + 'A');
}

/* Keeps `cand` (copied) if no generated name equals it: 1 kept, 0 taken, -1 no memory. */
static int claim_name(synth_data *d, const char *cand, char **out)
{
    if (strset_has(&d->names, cand)) return 0;
    char *s = strdup(cand);
    if (!s || strset_add(&d->names, s)) {
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

static int make_world(synth_data *d)
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
                     COUNTRY_SUFFIX[rng_below(&r, NELEM(COUNTRY_SUFFIX))]);
            snprintf(ln, sizeof ln, "%s%s", stem,
                     LANGUAGE_SUFFIX[rng_below(&r, NELEM(LANGUAGE_SUFFIX))]);
            if (strset_has(&d->names, cn) || strset_has(&d->names, ln) || !strcmp(cn, ln)) continue;
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
            snprintf(cand, sizeof cand, "%s%s", CITY_PREFIX[rng_below(&r, NELEM(CITY_PREFIX))], wd);
        });
    }
    for (int i = 0; i < w->n_awards; i++)
        UNIQUE_NAME(d, w->award[i], "award", {
            char wd[128];
            make_word(&r, 2, 1, wd, sizeof wd);
            snprintf(cand, sizeof cand, "%s %s for %s", wd,
                     AWARD_KIND[rng_below(&r, NELEM(AWARD_KIND))],
                     AWARD_FIELD[rng_below(&r, NELEM(AWARD_FIELD))]);
        });
    for (int i = 0; i < w->n_publishers; i++)
        UNIQUE_NAME(d, w->publisher[i], "publisher", {
            char wd[128];
            make_word(&r, 2, 1, wd, sizeof wd);
            snprintf(cand, sizeof cand, "%s %s", wd,
                     PUBLISHER_KIND[rng_below(&r, NELEM(PUBLISHER_KIND))]);
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
            x = (int64_t)rng_below(&r, (uint64_t)pool);
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

static int check_authors(const lethe_synth_config *c, char *err, size_t errlen)
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

static int make_authors(synth_data *d)
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
            make_word(&r, 2 + (int)rng_below(&r, 2), 1, last, sizeof last);
            snprintf(cand, sizeof cand, "%s %s", first, last);
        });
        for (int j = 0; j < SYNTH_N_ATTRIBUTES; j++)
            val[j] = (int64_t)rng_below(&r, (uint64_t)pool_size(d, AUTHOR_Q[j].type));
        while (val[7] == val[6]) val[7] = (int64_t)rng_below(&r, N_TITLES); /* two books */
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
                     LANDMARK_KIND[rng_below(&r, NELEM(LANDMARK_KIND))]);
        });
        int64_t city = (int64_t)rng_below(&r, (uint64_t)d->w.n_cities);
        if (make_fact(d, &d->facts[A * d->Q + i], &UTILITY_Q[0], d->subjects[A + i], city,
                      SYNTH_SID_UTILITY_A + 2 * i, SYNTH_UTILITY_A, i, 0))
            return -1;
    }
    for (int64_t i = 0; i < U; i++) {
        rng r = sy_rng_for(d->c.seed, ST_UTIL_B, (uint64_t)i);
        UNIQUE_NAME(d, d->subjects[A + U + i], "word",
                    make_word(&r, 2 + (int)rng_below(&r, 2), 0, cand, sizeof cand));
        int64_t meaning = (int64_t)rng_below(&r, NELEM(MEANINGS));
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

static void make_author_splits(synth_data *d)
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
static int make_tokens(synth_data *d)
{
    word_counter *wc = word_counter_new();
    if (!wc) return sy_oom(d, "word counts");
    for (int s = 0; s < d->n_splits; s++) {
        const split_t *sp = &d->split[s];
        for (int r = 0; r < sp->nr; r++)
            for (int64_t i = sp->lo[r]; i < sp->hi[r]; i++) {
                const fact_t *f = &d->facts[i];
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
        h = fnv(h, f->q, strlen(f->q) + 1);
        h = fnv(h, f->a, strlen(f->a) + 1);
        h = fnv(h, f->p, strlen(f->p) + 1);
        for (int k = 0; k < d->K; k++) h = fnv(h, f->pert[k], strlen(f->pert[k]) + 1);
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

/* ---- public: generate, query, free ------------------------------------------------------ */

int synth_generate(synth_data **out, const lethe_synth_config *c, char *err, size_t errlen)
{
    *out = NULL;
    int markov = strcmp(c->kind, "markov") == 0;
    if (!markov && strcmp(c->kind, "authors") != 0)
        return sy_fail(err, errlen, "synth.kind = \"%s\": expected \"authors\" or \"markov\"",
                       c->kind);
    if (markov ? sy_check_markov(c, err, errlen) : check_authors(c, err, errlen)) return -1;
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
        rc = make_world(d);
        if (!rc) rc = make_authors(d);
        if (!rc) {
            make_author_splits(d);
            rc = make_tokens(d);
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
    tokenizer_free(d->tk);
    free(d);
}
