/* io/tokenizer.c — byte-level, word-level and GPT-2 BPE tokenizers. */
#define _POSIX_C_SOURCE 200809L /* getline, strdup, strndup */
#include "../mpi/fatal.h"
#include "tokenizer.h"
#include "dataset.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a string -> int32 hash map (open addressing, FNV-1a) ------------------------ */

typedef struct {
    char *key; /* owned, NUL-terminated; NULL = empty slot */
    int32_t len;
    int32_t val;
} hm_slot;

typedef struct {
    hm_slot *slots;
    size_t cap, n; /* cap is a power of two */
} hmap;

static uint64_t fnv1a(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static hm_slot *hm_find(const hmap *m, const char *k, size_t n)
{
    if (!m->cap) return NULL;
    size_t i = fnv1a(k, n) & (m->cap - 1);
    for (;;) {
        hm_slot *s = &m->slots[i];
        if (!s->key || ((size_t)s->len == n && memcmp(s->key, k, n) == 0)) return s;
        i = (i + 1) & (m->cap - 1);
    }
}

static int hm_get(const hmap *m, const char *k, size_t n)
{
    hm_slot *s = hm_find(m, k, n);
    return s && s->key ? s->val : -1;
}

static int hm_grow(hmap *m)
{
    size_t cap = m->cap ? m->cap * 2 : 1024;
    hm_slot *old = m->slots;
    size_t oldcap = m->cap;
    m->slots = calloc(cap, sizeof *m->slots);
    if (!m->slots) {
        m->slots = old;
        return -1;
    }
    m->cap = cap;
    for (size_t i = 0; i < oldcap; i++)
        if (old[i].key) *hm_find(m, old[i].key, (size_t)old[i].len) = old[i];
    free(old);
    return 0;
}

/* Returns the slot of k, inserting it (val = init) when absent; NULL when out of memory. */
static hm_slot *hm_upsert(hmap *m, const char *k, size_t n, int32_t init)
{
    if ((m->n + 1) * 2 > m->cap && hm_grow(m)) return NULL;
    hm_slot *s = hm_find(m, k, n);
    if (!s->key) {
        s->key = malloc(n + 1);
        if (!s->key) return NULL;
        memcpy(s->key, k, n);
        s->key[n] = 0;
        s->len = (int32_t)n;
        s->val = init;
        m->n++;
    }
    return s;
}

static void hm_free(hmap *m)
{
    for (size_t i = 0; i < m->cap; i++) free(m->slots[i].key);
    free(m->slots);
    m->slots = NULL;
    m->cap = m->n = 0;
}

/* ---- ids --------------------------------------------------------------------------- */

void tok_ids_free(tok_ids *v)
{
    free(v->ids);
    v->ids = NULL;
    v->n = v->cap = 0;
}

static int push(tok_ids *v, int32_t id)
{
    if (v->n == v->cap) {
        int cap = v->cap ? v->cap * 2 : 64;
        int32_t *p = realloc(v->ids, (size_t)cap * sizeof *p);
        if (!p) return -1;
        v->ids = p;
        v->cap = cap;
    }
    v->ids[v->n++] = id;
    return 0;
}

/* ---- the tokenizer ----------------------------------------------------------------- */

struct tokenizer {
    tokenizer_kind kind;
    int vocab_size, pad_id, eos_id, unk_id;
    char **tokens; /* (vocab_size) id -> string; word and gpt2 */
    hmap vocab;    /* string -> id */
    hmap ranks;    /* gpt2: "a b" -> merge rank */
    char **merges; /* gpt2: (n_merges) in rank order, kept for saving */
    int n_merges;
    uint16_t byte_cp[256]; /* gpt2: byte -> printable code point */
    int16_t cp_byte[512];  /* gpt2: code point -> byte (-1: none) */
};

static tokenizer *tk_new(tokenizer_kind kind)
{
    tokenizer *t = calloc(1, sizeof *t);
    if (t) t->kind = kind;
    return t;
}

void tokenizer_free(tokenizer *t)
{
    if (!t) return;
    if (t->tokens)
        for (int i = 0; i < t->vocab_size; i++) free(t->tokens[i]);
    free(t->tokens);
    if (t->merges)
        for (int i = 0; i < t->n_merges; i++) free(t->merges[i]);
    free(t->merges);
    hm_free(&t->vocab);
    hm_free(&t->ranks);
    free(t);
}

tokenizer_kind tokenizer_kind_of(const tokenizer *t)
{
    return t->kind;
}
int tokenizer_vocab_size(const tokenizer *t)
{
    return t->vocab_size;
}
int tokenizer_pad_id(const tokenizer *t)
{
    return t->pad_id;
}
int tokenizer_eos_id(const tokenizer *t)
{
    return t->eos_id;
}

const char *tokenizer_name(const tokenizer *t)
{
    return t->kind == TOKENIZER_BYTE ? "byte" : t->kind == TOKENIZER_WORD ? "word" : "gpt2";
}

const char *tokenizer_token(const tokenizer *t, int id)
{
    if (!t->tokens || id < 0 || id >= t->vocab_size) return NULL;
    return t->tokens[id];
}

/* ---- byte ---------------------------------------------------------------------------- */

tokenizer *tokenizer_byte(void)
{
    tokenizer *t = tk_new(TOKENIZER_BYTE);
    if (!t) return NULL;
    t->vocab_size = 258;
    t->pad_id = 256;
    t->eos_id = 257;
    t->unk_id = -1;
    return t;
}

/* ---- word ---------------------------------------------------------------------------- */

static int is_word_byte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c >= 0x80;
}

static int is_space_byte(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Calls fn(piece, len, ctx) for each word-level piece of text; stops on fn != 0. */
static int word_split(const char *s, size_t n, int (*fn)(const char *, size_t, void *), void *ctx)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        if (is_space_byte(c)) {
            i++;
            continue;
        }
        size_t j = i + 1;
        if (is_word_byte(c)) {
            while (j < n && (is_word_byte((unsigned char)s[j]) ||
                             (s[j] == '\'' && j + 1 < n && is_word_byte((unsigned char)s[j + 1]))))
                j++;
        }
        if (fn(s + i, j - i, ctx)) return -1;
        i = j;
    }
    return 0;
}

struct word_counter {
    hmap counts;
    int oom;
};

word_counter *word_counter_new(void)
{
    return calloc(1, sizeof(word_counter));
}

static int count_cb(const char *w, size_t n, void *ctx)
{
    word_counter *wc = ctx;
    hm_slot *s = hm_upsert(&wc->counts, w, n, 0);
    if (!s) {
        wc->oom = 1;
        return -1;
    }
    if (s->val < INT32_MAX) s->val++;
    return 0;
}

void word_counter_add(word_counter *wc, const char *text, size_t len)
{
    if (!wc->oom) word_split(text, len, count_cb, wc);
}

void word_counter_free(word_counter *wc)
{
    if (!wc) return;
    hm_free(&wc->counts);
    free(wc);
}

static const char *const word_specials[3] = {"<pad>", "<eos>", "<unk>"};

int tokenizer_word_from_list(tokenizer **out, char *const *words, int n, char *err, size_t errlen)
{
    *out = NULL;
    if (n < 3)
        return lethe_errf(err, errlen,
                          "word vocabulary has %d entries, expected at least the 3 "
                          "specials",
                          n);
    for (int i = 0; i < 3; i++)
        if (!words[i] || strcmp(words[i], word_specials[i]) != 0)
            return lethe_errf(err, errlen, "word vocabulary entry %d is '%s', expected '%s'", i,
                              words[i] ? lethe_shown(words[i], (char[80]){0}, 80, 0) : "(null)",
                              word_specials[i]);
    tokenizer *t = tk_new(TOKENIZER_WORD);
    if (!t || !(t->tokens = calloc((size_t)n, sizeof(char *)))) {
        tokenizer_free(t);
        return lethe_errf(err, errlen, "out of memory for a word vocabulary of %d entries", n);
    }
    t->vocab_size = n;
    t->pad_id = 0;
    t->eos_id = 1;
    t->unk_id = 2;
    for (int i = 0; i < n; i++) {
        size_t l = words[i] ? strlen(words[i]) : 0;
        if (!l) {
            tokenizer_free(t);
            return lethe_errf(err, errlen, "word vocabulary entry %d is empty", i);
        }
        hm_slot *s = hm_upsert(&t->vocab, words[i], l, i);
        t->tokens[i] = strdup(words[i]);
        if (!s || !t->tokens[i]) {
            tokenizer_free(t);
            return lethe_errf(err, errlen, "out of memory for a word vocabulary of %d entries", n);
        }
        if (s->val != i) {
            int first = s->val;
            tokenizer_free(t);
            return lethe_errf(err, errlen, "word vocabulary entry %d '%s' repeats entry %d", i,
                              lethe_shown(words[i], (char[80]){0}, 80, 0), first);
        }
    }
    *out = t;
    return 0;
}

static int by_count(const void *a, const void *b)
{
    const hm_slot *x = *(const hm_slot *const *)a, *y = *(const hm_slot *const *)b;
    if (x->val != y->val) return x->val > y->val ? -1 : 1;
    size_t n = x->len < y->len ? (size_t)x->len : (size_t)y->len;
    int c = memcmp(x->key, y->key, n);
    if (c) return c;
    return x->len < y->len ? -1 : x->len > y->len;
}

int tokenizer_word_build(tokenizer **out, const word_counter *wc, int min_count, int max_vocab,
                         char *err, size_t errlen)
{
    *out = NULL;
    if (wc->oom) return lethe_errf(err, errlen, "out of memory while counting words");
    if (max_vocab != 0 && max_vocab < 4)
        return lethe_errf(err, errlen,
                          "word vocabulary limit %d is too small (3 specials + 1 word)", max_vocab);
    size_t n = 0;
    hm_slot **v = malloc((wc->counts.n + 1) * sizeof *v);
    if (!v) return lethe_errf(err, errlen, "out of memory sorting %zu words", wc->counts.n);
    for (size_t i = 0; i < wc->counts.cap; i++)
        if (wc->counts.slots[i].key && wc->counts.slots[i].val >= min_count)
            v[n++] = &wc->counts.slots[i];
    qsort(v, n, sizeof *v, by_count);
    if (max_vocab && n > (size_t)max_vocab - 3) n = (size_t)max_vocab - 3;
    if (n + 3 > (size_t)INT32_MAX) n = (size_t)INT32_MAX - 3;
    char **words = malloc((n + 3) * sizeof *words);
    if (!words) {
        free(v);
        return lethe_errf(err, errlen, "out of memory for %zu words", n);
    }
    for (int i = 0; i < 3; i++) words[i] = (char *)word_specials[i];
    for (size_t i = 0; i < n; i++) words[i + 3] = v[i]->key;
    int rc = tokenizer_word_from_list(out, words, (int)(n + 3), err, errlen);
    free(words);
    free(v);
    return rc;
}

typedef struct {
    const tokenizer *t;
    tok_ids *out;
} word_enc;

static int word_enc_cb(const char *w, size_t n, void *ctx)
{
    word_enc *e = ctx;
    int id = hm_get(&e->t->vocab, w, n);
    return push(e->out, id < 0 ? e->t->unk_id : id);
}

/* ---- GPT-2 ---------------------------------------------------------------------------- */

enum { UO = 0, UL = 1, UN = 2, US = 3 }; /* other, letter, number, whitespace */

typedef struct {
    uint32_t lo, hi;
    uint8_t cls;
} uni_range;

/* \p{L} and \p{N} as JavaScript's /u regular expressions see them (Unicode 17.0),
 * generated by testing every code point with node's /^\p{L}$/u and /^\p{N}$/u;
 * sorted, disjoint, searched by bisection. */
static const uni_range uni_table[] = {
    {0x30, 0x39, UN},       {0x41, 0x5A, UL},       {0x61, 0x7A, UL},       {0xAA, 0xAA, UL},
    {0xB2, 0xB3, UN},       {0xB5, 0xB5, UL},       {0xB9, 0xB9, UN},       {0xBA, 0xBA, UL},
    {0xBC, 0xBE, UN},       {0xC0, 0xD6, UL},       {0xD8, 0xF6, UL},       {0xF8, 0x2C1, UL},
    {0x2C6, 0x2D1, UL},     {0x2E0, 0x2E4, UL},     {0x2EC, 0x2EC, UL},     {0x2EE, 0x2EE, UL},
    {0x370, 0x374, UL},     {0x376, 0x377, UL},     {0x37A, 0x37D, UL},     {0x37F, 0x37F, UL},
    {0x386, 0x386, UL},     {0x388, 0x38A, UL},     {0x38C, 0x38C, UL},     {0x38E, 0x3A1, UL},
    {0x3A3, 0x3F5, UL},     {0x3F7, 0x481, UL},     {0x48A, 0x52F, UL},     {0x531, 0x556, UL},
    {0x559, 0x559, UL},     {0x560, 0x588, UL},     {0x5D0, 0x5EA, UL},     {0x5EF, 0x5F2, UL},
    {0x620, 0x64A, UL},     {0x660, 0x669, UN},     {0x66E, 0x66F, UL},     {0x671, 0x6D3, UL},
    {0x6D5, 0x6D5, UL},     {0x6E5, 0x6E6, UL},     {0x6EE, 0x6EF, UL},     {0x6F0, 0x6F9, UN},
    {0x6FA, 0x6FC, UL},     {0x6FF, 0x6FF, UL},     {0x710, 0x710, UL},     {0x712, 0x72F, UL},
    {0x74D, 0x7A5, UL},     {0x7B1, 0x7B1, UL},     {0x7C0, 0x7C9, UN},     {0x7CA, 0x7EA, UL},
    {0x7F4, 0x7F5, UL},     {0x7FA, 0x7FA, UL},     {0x800, 0x815, UL},     {0x81A, 0x81A, UL},
    {0x824, 0x824, UL},     {0x828, 0x828, UL},     {0x840, 0x858, UL},     {0x860, 0x86A, UL},
    {0x870, 0x887, UL},     {0x889, 0x88F, UL},     {0x8A0, 0x8C9, UL},     {0x904, 0x939, UL},
    {0x93D, 0x93D, UL},     {0x950, 0x950, UL},     {0x958, 0x961, UL},     {0x966, 0x96F, UN},
    {0x971, 0x980, UL},     {0x985, 0x98C, UL},     {0x98F, 0x990, UL},     {0x993, 0x9A8, UL},
    {0x9AA, 0x9B0, UL},     {0x9B2, 0x9B2, UL},     {0x9B6, 0x9B9, UL},     {0x9BD, 0x9BD, UL},
    {0x9CE, 0x9CE, UL},     {0x9DC, 0x9DD, UL},     {0x9DF, 0x9E1, UL},     {0x9E6, 0x9EF, UN},
    {0x9F0, 0x9F1, UL},     {0x9F4, 0x9F9, UN},     {0x9FC, 0x9FC, UL},     {0xA05, 0xA0A, UL},
    {0xA0F, 0xA10, UL},     {0xA13, 0xA28, UL},     {0xA2A, 0xA30, UL},     {0xA32, 0xA33, UL},
    {0xA35, 0xA36, UL},     {0xA38, 0xA39, UL},     {0xA59, 0xA5C, UL},     {0xA5E, 0xA5E, UL},
    {0xA66, 0xA6F, UN},     {0xA72, 0xA74, UL},     {0xA85, 0xA8D, UL},     {0xA8F, 0xA91, UL},
    {0xA93, 0xAA8, UL},     {0xAAA, 0xAB0, UL},     {0xAB2, 0xAB3, UL},     {0xAB5, 0xAB9, UL},
    {0xABD, 0xABD, UL},     {0xAD0, 0xAD0, UL},     {0xAE0, 0xAE1, UL},     {0xAE6, 0xAEF, UN},
    {0xAF9, 0xAF9, UL},     {0xB05, 0xB0C, UL},     {0xB0F, 0xB10, UL},     {0xB13, 0xB28, UL},
    {0xB2A, 0xB30, UL},     {0xB32, 0xB33, UL},     {0xB35, 0xB39, UL},     {0xB3D, 0xB3D, UL},
    {0xB5C, 0xB5D, UL},     {0xB5F, 0xB61, UL},     {0xB66, 0xB6F, UN},     {0xB71, 0xB71, UL},
    {0xB72, 0xB77, UN},     {0xB83, 0xB83, UL},     {0xB85, 0xB8A, UL},     {0xB8E, 0xB90, UL},
    {0xB92, 0xB95, UL},     {0xB99, 0xB9A, UL},     {0xB9C, 0xB9C, UL},     {0xB9E, 0xB9F, UL},
    {0xBA3, 0xBA4, UL},     {0xBA8, 0xBAA, UL},     {0xBAE, 0xBB9, UL},     {0xBD0, 0xBD0, UL},
    {0xBE6, 0xBF2, UN},     {0xC05, 0xC0C, UL},     {0xC0E, 0xC10, UL},     {0xC12, 0xC28, UL},
    {0xC2A, 0xC39, UL},     {0xC3D, 0xC3D, UL},     {0xC58, 0xC5A, UL},     {0xC5C, 0xC5D, UL},
    {0xC60, 0xC61, UL},     {0xC66, 0xC6F, UN},     {0xC78, 0xC7E, UN},     {0xC80, 0xC80, UL},
    {0xC85, 0xC8C, UL},     {0xC8E, 0xC90, UL},     {0xC92, 0xCA8, UL},     {0xCAA, 0xCB3, UL},
    {0xCB5, 0xCB9, UL},     {0xCBD, 0xCBD, UL},     {0xCDC, 0xCDE, UL},     {0xCE0, 0xCE1, UL},
    {0xCE6, 0xCEF, UN},     {0xCF1, 0xCF2, UL},     {0xD04, 0xD0C, UL},     {0xD0E, 0xD10, UL},
    {0xD12, 0xD3A, UL},     {0xD3D, 0xD3D, UL},     {0xD4E, 0xD4E, UL},     {0xD54, 0xD56, UL},
    {0xD58, 0xD5E, UN},     {0xD5F, 0xD61, UL},     {0xD66, 0xD78, UN},     {0xD7A, 0xD7F, UL},
    {0xD85, 0xD96, UL},     {0xD9A, 0xDB1, UL},     {0xDB3, 0xDBB, UL},     {0xDBD, 0xDBD, UL},
    {0xDC0, 0xDC6, UL},     {0xDE6, 0xDEF, UN},     {0xE01, 0xE30, UL},     {0xE32, 0xE33, UL},
    {0xE40, 0xE46, UL},     {0xE50, 0xE59, UN},     {0xE81, 0xE82, UL},     {0xE84, 0xE84, UL},
    {0xE86, 0xE8A, UL},     {0xE8C, 0xEA3, UL},     {0xEA5, 0xEA5, UL},     {0xEA7, 0xEB0, UL},
    {0xEB2, 0xEB3, UL},     {0xEBD, 0xEBD, UL},     {0xEC0, 0xEC4, UL},     {0xEC6, 0xEC6, UL},
    {0xED0, 0xED9, UN},     {0xEDC, 0xEDF, UL},     {0xF00, 0xF00, UL},     {0xF20, 0xF33, UN},
    {0xF40, 0xF47, UL},     {0xF49, 0xF6C, UL},     {0xF88, 0xF8C, UL},     {0x1000, 0x102A, UL},
    {0x103F, 0x103F, UL},   {0x1040, 0x1049, UN},   {0x1050, 0x1055, UL},   {0x105A, 0x105D, UL},
    {0x1061, 0x1061, UL},   {0x1065, 0x1066, UL},   {0x106E, 0x1070, UL},   {0x1075, 0x1081, UL},
    {0x108E, 0x108E, UL},   {0x1090, 0x1099, UN},   {0x10A0, 0x10C5, UL},   {0x10C7, 0x10C7, UL},
    {0x10CD, 0x10CD, UL},   {0x10D0, 0x10FA, UL},   {0x10FC, 0x1248, UL},   {0x124A, 0x124D, UL},
    {0x1250, 0x1256, UL},   {0x1258, 0x1258, UL},   {0x125A, 0x125D, UL},   {0x1260, 0x1288, UL},
    {0x128A, 0x128D, UL},   {0x1290, 0x12B0, UL},   {0x12B2, 0x12B5, UL},   {0x12B8, 0x12BE, UL},
    {0x12C0, 0x12C0, UL},   {0x12C2, 0x12C5, UL},   {0x12C8, 0x12D6, UL},   {0x12D8, 0x1310, UL},
    {0x1312, 0x1315, UL},   {0x1318, 0x135A, UL},   {0x1369, 0x137C, UN},   {0x1380, 0x138F, UL},
    {0x13A0, 0x13F5, UL},   {0x13F8, 0x13FD, UL},   {0x1401, 0x166C, UL},   {0x166F, 0x167F, UL},
    {0x1681, 0x169A, UL},   {0x16A0, 0x16EA, UL},   {0x16EE, 0x16F0, UN},   {0x16F1, 0x16F8, UL},
    {0x1700, 0x1711, UL},   {0x171F, 0x1731, UL},   {0x1740, 0x1751, UL},   {0x1760, 0x176C, UL},
    {0x176E, 0x1770, UL},   {0x1780, 0x17B3, UL},   {0x17D7, 0x17D7, UL},   {0x17DC, 0x17DC, UL},
    {0x17E0, 0x17E9, UN},   {0x17F0, 0x17F9, UN},   {0x1810, 0x1819, UN},   {0x1820, 0x1878, UL},
    {0x1880, 0x1884, UL},   {0x1887, 0x18A8, UL},   {0x18AA, 0x18AA, UL},   {0x18B0, 0x18F5, UL},
    {0x1900, 0x191E, UL},   {0x1946, 0x194F, UN},   {0x1950, 0x196D, UL},   {0x1970, 0x1974, UL},
    {0x1980, 0x19AB, UL},   {0x19B0, 0x19C9, UL},   {0x19D0, 0x19DA, UN},   {0x1A00, 0x1A16, UL},
    {0x1A20, 0x1A54, UL},   {0x1A80, 0x1A89, UN},   {0x1A90, 0x1A99, UN},   {0x1AA7, 0x1AA7, UL},
    {0x1B05, 0x1B33, UL},   {0x1B45, 0x1B4C, UL},   {0x1B50, 0x1B59, UN},   {0x1B83, 0x1BA0, UL},
    {0x1BAE, 0x1BAF, UL},   {0x1BB0, 0x1BB9, UN},   {0x1BBA, 0x1BE5, UL},   {0x1C00, 0x1C23, UL},
    {0x1C40, 0x1C49, UN},   {0x1C4D, 0x1C4F, UL},   {0x1C50, 0x1C59, UN},   {0x1C5A, 0x1C7D, UL},
    {0x1C80, 0x1C8A, UL},   {0x1C90, 0x1CBA, UL},   {0x1CBD, 0x1CBF, UL},   {0x1CE9, 0x1CEC, UL},
    {0x1CEE, 0x1CF3, UL},   {0x1CF5, 0x1CF6, UL},   {0x1CFA, 0x1CFA, UL},   {0x1D00, 0x1DBF, UL},
    {0x1E00, 0x1F15, UL},   {0x1F18, 0x1F1D, UL},   {0x1F20, 0x1F45, UL},   {0x1F48, 0x1F4D, UL},
    {0x1F50, 0x1F57, UL},   {0x1F59, 0x1F59, UL},   {0x1F5B, 0x1F5B, UL},   {0x1F5D, 0x1F5D, UL},
    {0x1F5F, 0x1F7D, UL},   {0x1F80, 0x1FB4, UL},   {0x1FB6, 0x1FBC, UL},   {0x1FBE, 0x1FBE, UL},
    {0x1FC2, 0x1FC4, UL},   {0x1FC6, 0x1FCC, UL},   {0x1FD0, 0x1FD3, UL},   {0x1FD6, 0x1FDB, UL},
    {0x1FE0, 0x1FEC, UL},   {0x1FF2, 0x1FF4, UL},   {0x1FF6, 0x1FFC, UL},   {0x2070, 0x2070, UN},
    {0x2071, 0x2071, UL},   {0x2074, 0x2079, UN},   {0x207F, 0x207F, UL},   {0x2080, 0x2089, UN},
    {0x2090, 0x209C, UL},   {0x2102, 0x2102, UL},   {0x2107, 0x2107, UL},   {0x210A, 0x2113, UL},
    {0x2115, 0x2115, UL},   {0x2119, 0x211D, UL},   {0x2124, 0x2124, UL},   {0x2126, 0x2126, UL},
    {0x2128, 0x2128, UL},   {0x212A, 0x212D, UL},   {0x212F, 0x2139, UL},   {0x213C, 0x213F, UL},
    {0x2145, 0x2149, UL},   {0x214E, 0x214E, UL},   {0x2150, 0x2182, UN},   {0x2183, 0x2184, UL},
    {0x2185, 0x2189, UN},   {0x2460, 0x249B, UN},   {0x24EA, 0x24FF, UN},   {0x2776, 0x2793, UN},
    {0x2C00, 0x2CE4, UL},   {0x2CEB, 0x2CEE, UL},   {0x2CF2, 0x2CF3, UL},   {0x2CFD, 0x2CFD, UN},
    {0x2D00, 0x2D25, UL},   {0x2D27, 0x2D27, UL},   {0x2D2D, 0x2D2D, UL},   {0x2D30, 0x2D67, UL},
    {0x2D6F, 0x2D6F, UL},   {0x2D80, 0x2D96, UL},   {0x2DA0, 0x2DA6, UL},   {0x2DA8, 0x2DAE, UL},
    {0x2DB0, 0x2DB6, UL},   {0x2DB8, 0x2DBE, UL},   {0x2DC0, 0x2DC6, UL},   {0x2DC8, 0x2DCE, UL},
    {0x2DD0, 0x2DD6, UL},   {0x2DD8, 0x2DDE, UL},   {0x2E2F, 0x2E2F, UL},   {0x3005, 0x3006, UL},
    {0x3007, 0x3007, UN},   {0x3021, 0x3029, UN},   {0x3031, 0x3035, UL},   {0x3038, 0x303A, UN},
    {0x303B, 0x303C, UL},   {0x3041, 0x3096, UL},   {0x309D, 0x309F, UL},   {0x30A1, 0x30FA, UL},
    {0x30FC, 0x30FF, UL},   {0x3105, 0x312F, UL},   {0x3131, 0x318E, UL},   {0x3192, 0x3195, UN},
    {0x31A0, 0x31BF, UL},   {0x31F0, 0x31FF, UL},   {0x3220, 0x3229, UN},   {0x3248, 0x324F, UN},
    {0x3251, 0x325F, UN},   {0x3280, 0x3289, UN},   {0x32B1, 0x32BF, UN},   {0x3400, 0x4DBF, UL},
    {0x4E00, 0xA48C, UL},   {0xA4D0, 0xA4FD, UL},   {0xA500, 0xA60C, UL},   {0xA610, 0xA61F, UL},
    {0xA620, 0xA629, UN},   {0xA62A, 0xA62B, UL},   {0xA640, 0xA66E, UL},   {0xA67F, 0xA69D, UL},
    {0xA6A0, 0xA6E5, UL},   {0xA6E6, 0xA6EF, UN},   {0xA717, 0xA71F, UL},   {0xA722, 0xA788, UL},
    {0xA78B, 0xA7DC, UL},   {0xA7F1, 0xA801, UL},   {0xA803, 0xA805, UL},   {0xA807, 0xA80A, UL},
    {0xA80C, 0xA822, UL},   {0xA830, 0xA835, UN},   {0xA840, 0xA873, UL},   {0xA882, 0xA8B3, UL},
    {0xA8D0, 0xA8D9, UN},   {0xA8F2, 0xA8F7, UL},   {0xA8FB, 0xA8FB, UL},   {0xA8FD, 0xA8FE, UL},
    {0xA900, 0xA909, UN},   {0xA90A, 0xA925, UL},   {0xA930, 0xA946, UL},   {0xA960, 0xA97C, UL},
    {0xA984, 0xA9B2, UL},   {0xA9CF, 0xA9CF, UL},   {0xA9D0, 0xA9D9, UN},   {0xA9E0, 0xA9E4, UL},
    {0xA9E6, 0xA9EF, UL},   {0xA9F0, 0xA9F9, UN},   {0xA9FA, 0xA9FE, UL},   {0xAA00, 0xAA28, UL},
    {0xAA40, 0xAA42, UL},   {0xAA44, 0xAA4B, UL},   {0xAA50, 0xAA59, UN},   {0xAA60, 0xAA76, UL},
    {0xAA7A, 0xAA7A, UL},   {0xAA7E, 0xAAAF, UL},   {0xAAB1, 0xAAB1, UL},   {0xAAB5, 0xAAB6, UL},
    {0xAAB9, 0xAABD, UL},   {0xAAC0, 0xAAC0, UL},   {0xAAC2, 0xAAC2, UL},   {0xAADB, 0xAADD, UL},
    {0xAAE0, 0xAAEA, UL},   {0xAAF2, 0xAAF4, UL},   {0xAB01, 0xAB06, UL},   {0xAB09, 0xAB0E, UL},
    {0xAB11, 0xAB16, UL},   {0xAB20, 0xAB26, UL},   {0xAB28, 0xAB2E, UL},   {0xAB30, 0xAB5A, UL},
    {0xAB5C, 0xAB69, UL},   {0xAB70, 0xABE2, UL},   {0xABF0, 0xABF9, UN},   {0xAC00, 0xD7A3, UL},
    {0xD7B0, 0xD7C6, UL},   {0xD7CB, 0xD7FB, UL},   {0xF900, 0xFA6D, UL},   {0xFA70, 0xFAD9, UL},
    {0xFB00, 0xFB06, UL},   {0xFB13, 0xFB17, UL},   {0xFB1D, 0xFB1D, UL},   {0xFB1F, 0xFB28, UL},
    {0xFB2A, 0xFB36, UL},   {0xFB38, 0xFB3C, UL},   {0xFB3E, 0xFB3E, UL},   {0xFB40, 0xFB41, UL},
    {0xFB43, 0xFB44, UL},   {0xFB46, 0xFBB1, UL},   {0xFBD3, 0xFD3D, UL},   {0xFD50, 0xFD8F, UL},
    {0xFD92, 0xFDC7, UL},   {0xFDF0, 0xFDFB, UL},   {0xFE70, 0xFE74, UL},   {0xFE76, 0xFEFC, UL},
    {0xFF10, 0xFF19, UN},   {0xFF21, 0xFF3A, UL},   {0xFF41, 0xFF5A, UL},   {0xFF66, 0xFFBE, UL},
    {0xFFC2, 0xFFC7, UL},   {0xFFCA, 0xFFCF, UL},   {0xFFD2, 0xFFD7, UL},   {0xFFDA, 0xFFDC, UL},
    {0x10000, 0x1000B, UL}, {0x1000D, 0x10026, UL}, {0x10028, 0x1003A, UL}, {0x1003C, 0x1003D, UL},
    {0x1003F, 0x1004D, UL}, {0x10050, 0x1005D, UL}, {0x10080, 0x100FA, UL}, {0x10107, 0x10133, UN},
    {0x10140, 0x10178, UN}, {0x1018A, 0x1018B, UN}, {0x10280, 0x1029C, UL}, {0x102A0, 0x102D0, UL},
    {0x102E1, 0x102FB, UN}, {0x10300, 0x1031F, UL}, {0x10320, 0x10323, UN}, {0x1032D, 0x10340, UL},
    {0x10341, 0x10341, UN}, {0x10342, 0x10349, UL}, {0x1034A, 0x1034A, UN}, {0x10350, 0x10375, UL},
    {0x10380, 0x1039D, UL}, {0x103A0, 0x103C3, UL}, {0x103C8, 0x103CF, UL}, {0x103D1, 0x103D5, UN},
    {0x10400, 0x1049D, UL}, {0x104A0, 0x104A9, UN}, {0x104B0, 0x104D3, UL}, {0x104D8, 0x104FB, UL},
    {0x10500, 0x10527, UL}, {0x10530, 0x10563, UL}, {0x10570, 0x1057A, UL}, {0x1057C, 0x1058A, UL},
    {0x1058C, 0x10592, UL}, {0x10594, 0x10595, UL}, {0x10597, 0x105A1, UL}, {0x105A3, 0x105B1, UL},
    {0x105B3, 0x105B9, UL}, {0x105BB, 0x105BC, UL}, {0x105C0, 0x105F3, UL}, {0x10600, 0x10736, UL},
    {0x10740, 0x10755, UL}, {0x10760, 0x10767, UL}, {0x10780, 0x10785, UL}, {0x10787, 0x107B0, UL},
    {0x107B2, 0x107BA, UL}, {0x10800, 0x10805, UL}, {0x10808, 0x10808, UL}, {0x1080A, 0x10835, UL},
    {0x10837, 0x10838, UL}, {0x1083C, 0x1083C, UL}, {0x1083F, 0x10855, UL}, {0x10858, 0x1085F, UN},
    {0x10860, 0x10876, UL}, {0x10879, 0x1087F, UN}, {0x10880, 0x1089E, UL}, {0x108A7, 0x108AF, UN},
    {0x108E0, 0x108F2, UL}, {0x108F4, 0x108F5, UL}, {0x108FB, 0x108FF, UN}, {0x10900, 0x10915, UL},
    {0x10916, 0x1091B, UN}, {0x10920, 0x10939, UL}, {0x10940, 0x10959, UL}, {0x10980, 0x109B7, UL},
    {0x109BC, 0x109BD, UN}, {0x109BE, 0x109BF, UL}, {0x109C0, 0x109CF, UN}, {0x109D2, 0x109FF, UN},
    {0x10A00, 0x10A00, UL}, {0x10A10, 0x10A13, UL}, {0x10A15, 0x10A17, UL}, {0x10A19, 0x10A35, UL},
    {0x10A40, 0x10A48, UN}, {0x10A60, 0x10A7C, UL}, {0x10A7D, 0x10A7E, UN}, {0x10A80, 0x10A9C, UL},
    {0x10A9D, 0x10A9F, UN}, {0x10AC0, 0x10AC7, UL}, {0x10AC9, 0x10AE4, UL}, {0x10AEB, 0x10AEF, UN},
    {0x10B00, 0x10B35, UL}, {0x10B40, 0x10B55, UL}, {0x10B58, 0x10B5F, UN}, {0x10B60, 0x10B72, UL},
    {0x10B78, 0x10B7F, UN}, {0x10B80, 0x10B91, UL}, {0x10BA9, 0x10BAF, UN}, {0x10C00, 0x10C48, UL},
    {0x10C80, 0x10CB2, UL}, {0x10CC0, 0x10CF2, UL}, {0x10CFA, 0x10CFF, UN}, {0x10D00, 0x10D23, UL},
    {0x10D30, 0x10D39, UN}, {0x10D40, 0x10D49, UN}, {0x10D4A, 0x10D65, UL}, {0x10D6F, 0x10D85, UL},
    {0x10E60, 0x10E7E, UN}, {0x10E80, 0x10EA9, UL}, {0x10EB0, 0x10EB1, UL}, {0x10EC2, 0x10EC7, UL},
    {0x10F00, 0x10F1C, UL}, {0x10F1D, 0x10F26, UN}, {0x10F27, 0x10F27, UL}, {0x10F30, 0x10F45, UL},
    {0x10F51, 0x10F54, UN}, {0x10F70, 0x10F81, UL}, {0x10FB0, 0x10FC4, UL}, {0x10FC5, 0x10FCB, UN},
    {0x10FE0, 0x10FF6, UL}, {0x11003, 0x11037, UL}, {0x11052, 0x1106F, UN}, {0x11071, 0x11072, UL},
    {0x11075, 0x11075, UL}, {0x11083, 0x110AF, UL}, {0x110D0, 0x110E8, UL}, {0x110F0, 0x110F9, UN},
    {0x11103, 0x11126, UL}, {0x11136, 0x1113F, UN}, {0x11144, 0x11144, UL}, {0x11147, 0x11147, UL},
    {0x11150, 0x11172, UL}, {0x11176, 0x11176, UL}, {0x11183, 0x111B2, UL}, {0x111C1, 0x111C4, UL},
    {0x111D0, 0x111D9, UN}, {0x111DA, 0x111DA, UL}, {0x111DC, 0x111DC, UL}, {0x111E1, 0x111F4, UN},
    {0x11200, 0x11211, UL}, {0x11213, 0x1122B, UL}, {0x1123F, 0x11240, UL}, {0x11280, 0x11286, UL},
    {0x11288, 0x11288, UL}, {0x1128A, 0x1128D, UL}, {0x1128F, 0x1129D, UL}, {0x1129F, 0x112A8, UL},
    {0x112B0, 0x112DE, UL}, {0x112F0, 0x112F9, UN}, {0x11305, 0x1130C, UL}, {0x1130F, 0x11310, UL},
    {0x11313, 0x11328, UL}, {0x1132A, 0x11330, UL}, {0x11332, 0x11333, UL}, {0x11335, 0x11339, UL},
    {0x1133D, 0x1133D, UL}, {0x11350, 0x11350, UL}, {0x1135D, 0x11361, UL}, {0x11380, 0x11389, UL},
    {0x1138B, 0x1138B, UL}, {0x1138E, 0x1138E, UL}, {0x11390, 0x113B5, UL}, {0x113B7, 0x113B7, UL},
    {0x113D1, 0x113D1, UL}, {0x113D3, 0x113D3, UL}, {0x11400, 0x11434, UL}, {0x11447, 0x1144A, UL},
    {0x11450, 0x11459, UN}, {0x1145F, 0x11461, UL}, {0x11480, 0x114AF, UL}, {0x114C4, 0x114C5, UL},
    {0x114C7, 0x114C7, UL}, {0x114D0, 0x114D9, UN}, {0x11580, 0x115AE, UL}, {0x115D8, 0x115DB, UL},
    {0x11600, 0x1162F, UL}, {0x11644, 0x11644, UL}, {0x11650, 0x11659, UN}, {0x11680, 0x116AA, UL},
    {0x116B8, 0x116B8, UL}, {0x116C0, 0x116C9, UN}, {0x116D0, 0x116E3, UN}, {0x11700, 0x1171A, UL},
    {0x11730, 0x1173B, UN}, {0x11740, 0x11746, UL}, {0x11800, 0x1182B, UL}, {0x118A0, 0x118DF, UL},
    {0x118E0, 0x118F2, UN}, {0x118FF, 0x11906, UL}, {0x11909, 0x11909, UL}, {0x1190C, 0x11913, UL},
    {0x11915, 0x11916, UL}, {0x11918, 0x1192F, UL}, {0x1193F, 0x1193F, UL}, {0x11941, 0x11941, UL},
    {0x11950, 0x11959, UN}, {0x119A0, 0x119A7, UL}, {0x119AA, 0x119D0, UL}, {0x119E1, 0x119E1, UL},
    {0x119E3, 0x119E3, UL}, {0x11A00, 0x11A00, UL}, {0x11A0B, 0x11A32, UL}, {0x11A3A, 0x11A3A, UL},
    {0x11A50, 0x11A50, UL}, {0x11A5C, 0x11A89, UL}, {0x11A9D, 0x11A9D, UL}, {0x11AB0, 0x11AF8, UL},
    {0x11BC0, 0x11BE0, UL}, {0x11BF0, 0x11BF9, UN}, {0x11C00, 0x11C08, UL}, {0x11C0A, 0x11C2E, UL},
    {0x11C40, 0x11C40, UL}, {0x11C50, 0x11C6C, UN}, {0x11C72, 0x11C8F, UL}, {0x11D00, 0x11D06, UL},
    {0x11D08, 0x11D09, UL}, {0x11D0B, 0x11D30, UL}, {0x11D46, 0x11D46, UL}, {0x11D50, 0x11D59, UN},
    {0x11D60, 0x11D65, UL}, {0x11D67, 0x11D68, UL}, {0x11D6A, 0x11D89, UL}, {0x11D98, 0x11D98, UL},
    {0x11DA0, 0x11DA9, UN}, {0x11DB0, 0x11DDB, UL}, {0x11DE0, 0x11DE9, UN}, {0x11EE0, 0x11EF2, UL},
    {0x11F02, 0x11F02, UL}, {0x11F04, 0x11F10, UL}, {0x11F12, 0x11F33, UL}, {0x11F50, 0x11F59, UN},
    {0x11FB0, 0x11FB0, UL}, {0x11FC0, 0x11FD4, UN}, {0x12000, 0x12399, UL}, {0x12400, 0x1246E, UN},
    {0x12480, 0x12543, UL}, {0x12F90, 0x12FF0, UL}, {0x13000, 0x1342F, UL}, {0x13441, 0x13446, UL},
    {0x13460, 0x143FA, UL}, {0x14400, 0x14646, UL}, {0x16100, 0x1611D, UL}, {0x16130, 0x16139, UN},
    {0x16800, 0x16A38, UL}, {0x16A40, 0x16A5E, UL}, {0x16A60, 0x16A69, UN}, {0x16A70, 0x16ABE, UL},
    {0x16AC0, 0x16AC9, UN}, {0x16AD0, 0x16AED, UL}, {0x16B00, 0x16B2F, UL}, {0x16B40, 0x16B43, UL},
    {0x16B50, 0x16B59, UN}, {0x16B5B, 0x16B61, UN}, {0x16B63, 0x16B77, UL}, {0x16B7D, 0x16B8F, UL},
    {0x16D40, 0x16D6C, UL}, {0x16D70, 0x16D79, UN}, {0x16E40, 0x16E7F, UL}, {0x16E80, 0x16E96, UN},
    {0x16EA0, 0x16EB8, UL}, {0x16EBB, 0x16ED3, UL}, {0x16F00, 0x16F4A, UL}, {0x16F50, 0x16F50, UL},
    {0x16F93, 0x16F9F, UL}, {0x16FE0, 0x16FE1, UL}, {0x16FE3, 0x16FE3, UL}, {0x16FF2, 0x16FF3, UL},
    {0x16FF4, 0x16FF6, UN}, {0x17000, 0x18CD5, UL}, {0x18CFF, 0x18D1E, UL}, {0x18D80, 0x18DF2, UL},
    {0x1AFF0, 0x1AFF3, UL}, {0x1AFF5, 0x1AFFB, UL}, {0x1AFFD, 0x1AFFE, UL}, {0x1B000, 0x1B122, UL},
    {0x1B132, 0x1B132, UL}, {0x1B150, 0x1B152, UL}, {0x1B155, 0x1B155, UL}, {0x1B164, 0x1B167, UL},
    {0x1B170, 0x1B2FB, UL}, {0x1BC00, 0x1BC6A, UL}, {0x1BC70, 0x1BC7C, UL}, {0x1BC80, 0x1BC88, UL},
    {0x1BC90, 0x1BC99, UL}, {0x1CCF0, 0x1CCF9, UN}, {0x1D2C0, 0x1D2D3, UN}, {0x1D2E0, 0x1D2F3, UN},
    {0x1D360, 0x1D378, UN}, {0x1D400, 0x1D454, UL}, {0x1D456, 0x1D49C, UL}, {0x1D49E, 0x1D49F, UL},
    {0x1D4A2, 0x1D4A2, UL}, {0x1D4A5, 0x1D4A6, UL}, {0x1D4A9, 0x1D4AC, UL}, {0x1D4AE, 0x1D4B9, UL},
    {0x1D4BB, 0x1D4BB, UL}, {0x1D4BD, 0x1D4C3, UL}, {0x1D4C5, 0x1D505, UL}, {0x1D507, 0x1D50A, UL},
    {0x1D50D, 0x1D514, UL}, {0x1D516, 0x1D51C, UL}, {0x1D51E, 0x1D539, UL}, {0x1D53B, 0x1D53E, UL},
    {0x1D540, 0x1D544, UL}, {0x1D546, 0x1D546, UL}, {0x1D54A, 0x1D550, UL}, {0x1D552, 0x1D6A5, UL},
    {0x1D6A8, 0x1D6C0, UL}, {0x1D6C2, 0x1D6DA, UL}, {0x1D6DC, 0x1D6FA, UL}, {0x1D6FC, 0x1D714, UL},
    {0x1D716, 0x1D734, UL}, {0x1D736, 0x1D74E, UL}, {0x1D750, 0x1D76E, UL}, {0x1D770, 0x1D788, UL},
    {0x1D78A, 0x1D7A8, UL}, {0x1D7AA, 0x1D7C2, UL}, {0x1D7C4, 0x1D7CB, UL}, {0x1D7CE, 0x1D7FF, UN},
    {0x1DF00, 0x1DF1E, UL}, {0x1DF25, 0x1DF2A, UL}, {0x1E030, 0x1E06D, UL}, {0x1E100, 0x1E12C, UL},
    {0x1E137, 0x1E13D, UL}, {0x1E140, 0x1E149, UN}, {0x1E14E, 0x1E14E, UL}, {0x1E290, 0x1E2AD, UL},
    {0x1E2C0, 0x1E2EB, UL}, {0x1E2F0, 0x1E2F9, UN}, {0x1E4D0, 0x1E4EB, UL}, {0x1E4F0, 0x1E4F9, UN},
    {0x1E5D0, 0x1E5ED, UL}, {0x1E5F0, 0x1E5F0, UL}, {0x1E5F1, 0x1E5FA, UN}, {0x1E6C0, 0x1E6DE, UL},
    {0x1E6E0, 0x1E6E2, UL}, {0x1E6E4, 0x1E6E5, UL}, {0x1E6E7, 0x1E6ED, UL}, {0x1E6F0, 0x1E6F4, UL},
    {0x1E6FE, 0x1E6FF, UL}, {0x1E7E0, 0x1E7E6, UL}, {0x1E7E8, 0x1E7EB, UL}, {0x1E7ED, 0x1E7EE, UL},
    {0x1E7F0, 0x1E7FE, UL}, {0x1E800, 0x1E8C4, UL}, {0x1E8C7, 0x1E8CF, UN}, {0x1E900, 0x1E943, UL},
    {0x1E94B, 0x1E94B, UL}, {0x1E950, 0x1E959, UN}, {0x1EC71, 0x1ECAB, UN}, {0x1ECAD, 0x1ECAF, UN},
    {0x1ECB1, 0x1ECB4, UN}, {0x1ED01, 0x1ED2D, UN}, {0x1ED2F, 0x1ED3D, UN}, {0x1EE00, 0x1EE03, UL},
    {0x1EE05, 0x1EE1F, UL}, {0x1EE21, 0x1EE22, UL}, {0x1EE24, 0x1EE24, UL}, {0x1EE27, 0x1EE27, UL},
    {0x1EE29, 0x1EE32, UL}, {0x1EE34, 0x1EE37, UL}, {0x1EE39, 0x1EE39, UL}, {0x1EE3B, 0x1EE3B, UL},
    {0x1EE42, 0x1EE42, UL}, {0x1EE47, 0x1EE47, UL}, {0x1EE49, 0x1EE49, UL}, {0x1EE4B, 0x1EE4B, UL},
    {0x1EE4D, 0x1EE4F, UL}, {0x1EE51, 0x1EE52, UL}, {0x1EE54, 0x1EE54, UL}, {0x1EE57, 0x1EE57, UL},
    {0x1EE59, 0x1EE59, UL}, {0x1EE5B, 0x1EE5B, UL}, {0x1EE5D, 0x1EE5D, UL}, {0x1EE5F, 0x1EE5F, UL},
    {0x1EE61, 0x1EE62, UL}, {0x1EE64, 0x1EE64, UL}, {0x1EE67, 0x1EE6A, UL}, {0x1EE6C, 0x1EE72, UL},
    {0x1EE74, 0x1EE77, UL}, {0x1EE79, 0x1EE7C, UL}, {0x1EE7E, 0x1EE7E, UL}, {0x1EE80, 0x1EE89, UL},
    {0x1EE8B, 0x1EE9B, UL}, {0x1EEA1, 0x1EEA3, UL}, {0x1EEA5, 0x1EEA9, UL}, {0x1EEAB, 0x1EEBB, UL},
    {0x1F100, 0x1F10C, UN}, {0x1FBF0, 0x1FBF9, UN}, {0x20000, 0x2A6DF, UL}, {0x2A700, 0x2B81D, UL},
    {0x2B820, 0x2CEAD, UL}, {0x2CEB0, 0x2EBE0, UL}, {0x2EBF0, 0x2EE5D, UL}, {0x2F800, 0x2FA1D, UL},
    {0x30000, 0x3134A, UL}, {0x31350, 0x33479, UL},
};
static const size_t uni_table_len = sizeof uni_table / sizeof uni_table[0];

static int uni_class(uint32_t cp)
{
    /* \s of JavaScript: ASCII whitespace, NBSP, the Zs separators, LS, PS, BOM. */
    if ((cp >= 9 && cp <= 13) || cp == 32 || cp == 0xA0 || cp == 0x1680 ||
        (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
        cp == 0x205F || cp == 0x3000 || cp == 0xFEFF)
        return US;
    size_t lo = 0, hi = uni_table_len;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < uni_table[mid].lo)
            hi = mid;
        else if (cp > uni_table[mid].hi)
            lo = mid + 1;
        else
            return uni_table[mid].cls;
    }
    return UO;
}

/* Decodes one UTF-8 code point at s[i]; returns its byte length. Invalid bytes
 * count as one code point of class "other" (cp = 0xFFFFFFFF). */
static size_t utf8_next(const unsigned char *s, size_t n, size_t i, uint32_t *cp)
{
    unsigned char c = s[i];
    size_t len;
    uint32_t v, min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if ((c & 0xE0) == 0xC0) {
        len = 2, v = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        len = 3, v = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        len = 4, v = c & 0x07, min = 0x10000;
    } else {
        *cp = 0xFFFFFFFFu;
        return 1;
    }
    if (i + len > n) {
        *cp = 0xFFFFFFFFu;
        return 1;
    }
    for (size_t k = 1; k < len; k++) {
        if ((s[i + k] & 0xC0) != 0x80) {
            *cp = 0xFFFFFFFFu;
            return 1;
        }
        v = (v << 6) | (s[i + k] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) {
        *cp = 0xFFFFFFFFu;
        return 1;
    }
    *cp = v;
    return len;
}

static int cls_at(const unsigned char *s, size_t n, size_t i, size_t *len)
{
    uint32_t cp;
    *len = utf8_next(s, n, i, &cp);
    return cp == 0xFFFFFFFFu ? UO : uni_class(cp);
}

/* End of the run of class c starting at i. */
static size_t run_end(const unsigned char *s, size_t n, size_t i, int c)
{
    size_t l;
    while (i < n && cls_at(s, n, i, &l) == c) i += l;
    return i;
}

/* GPT-2's pattern 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * at position i: returns the end of the match (every position matches something). */
static size_t gpt2_piece(const unsigned char *s, size_t n, size_t i)
{
    if (s[i] == '\'') {
        static const char *const contr[] = {"s", "t", "re", "ve", "m", "ll", "d"};
        for (int k = 0; k < 7; k++) {
            size_t l = strlen(contr[k]);
            if (i + 1 + l <= n && memcmp(s + i + 1, contr[k], l) == 0) return i + 1 + l;
        }
    }
    size_t l0, l1;
    int c0 = cls_at(s, n, i, &l0);
    /* alternatives 2-4: ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+` */
    static const int alts[3] = {UL, UN, UO};
    for (int a = 0; a < 3; a++) {
        if (c0 == alts[a]) return run_end(s, n, i, alts[a]);
        if (s[i] == ' ' && i + 1 < n && cls_at(s, n, i + 1, &l1) == alts[a])
            return run_end(s, n, i + 1, alts[a]);
    }
    /* whitespace: \s+(?!\S) keeps the last space for the next word; else \s+ */
    size_t j = i, last = i;
    while (j < n && cls_at(s, n, j, &l1) == US) {
        last = j;
        j += l1;
    }
    if (j == n || last == i) return j;
    return last;
}

static void gpt2_byte_map(tokenizer *t)
{
    int n = 0;
    for (int i = 0; i < 512; i++) t->cp_byte[i] = -1;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        t->byte_cp[b] = (uint16_t)(printable ? b : 256 + n++);
        t->cp_byte[t->byte_cp[b]] = (int16_t)b;
    }
}

static size_t put_utf8(char *o, uint32_t cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    o[0] = (char)(0xC0 | (cp >> 6));
    o[1] = (char)(0x80 | (cp & 0x3F));
    return 2; /* mapped code points are < 0x800 */
}

/* BPE of one pre-token. w: its bytes mapped to code points (UTF-8); sym: scratch
 * offsets. Appends ids. */
static int gpt2_bpe(const tokenizer *t, const char *w, size_t wn, size_t *off, size_t *len,
                    char *key, tok_ids *out)
{
    size_t m = 0;
    for (size_t i = 0; i < wn;) {
        size_t l = ((unsigned char)w[i] < 0x80) ? 1 : 2;
        off[m] = i;
        len[m++] = l;
        i += l;
    }
    while (m > 1) {
        int best = -1;
        size_t bi = 0;
        for (size_t i = 0; i + 1 < m; i++) {
            memcpy(key, w + off[i], len[i]);
            key[len[i]] = ' ';
            memcpy(key + len[i] + 1, w + off[i + 1], len[i + 1]);
            int r = hm_get(&t->ranks, key, len[i] + 1 + len[i + 1]);
            if (r >= 0 && (best < 0 || r < best)) {
                best = r;
                bi = i;
            }
        }
        if (best < 0) break;
        /* merge every occurrence of the best pair, left to right */
        const char *a = w + off[bi], *b = w + off[bi + 1];
        size_t al = len[bi], bl = len[bi + 1], k = 0;
        for (size_t i = 0; i < m;) {
            if (i + 1 < m && len[i] == al && len[i + 1] == bl && memcmp(w + off[i], a, al) == 0 &&
                memcmp(w + off[i + 1], b, bl) == 0) {
                off[k] = off[i];
                len[k++] = al + bl;
                i += 2;
            } else {
                off[k] = off[i];
                len[k++] = len[i];
                i++;
            }
        }
        m = k;
    }
    for (size_t i = 0; i < m; i++) {
        int id = hm_get(&t->vocab, w + off[i], len[i]);
        if (id < 0)
            id = t->unk_id >= 0 ? t->unk_id : t->eos_id; /* cannot happen with GPT-2's files */
        if (push(out, id)) return -1;
    }
    return 0;
}

static int gpt2_encode(const tokenizer *t, const char *text, size_t n, tok_ids *out)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t cap = 0;
    char *w = NULL, *key = NULL;
    size_t *off = NULL, *len = NULL;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0;) {
        size_t j = gpt2_piece(s, n, i), pn = j - i;
        if (pn * 2 + 2 > cap) {
            cap = pn * 2 + 64;
            free(w);
            free(key);
            free(off);
            free(len);
            w = malloc(cap);
            key = malloc(2 * cap + 2);
            off = malloc(cap * sizeof *off);
            len = malloc(cap * sizeof *len);
            if (!w || !key || !off || !len) {
                rc = -1;
                break;
            }
        }
        size_t wn = 0;
        for (size_t k = i; k < j; k++) wn += put_utf8(w + wn, t->byte_cp[s[k]]);
        rc = gpt2_bpe(t, w, wn, off, len, key, out);
        i = j;
    }
    free(w);
    free(key);
    free(off);
    free(len);
    return rc;
}

static char *slurp(const char *path, size_t *n, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        lethe_errf(err, errlen, "tokenizer file '%s': cannot open: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, len = 0;
    char *b = malloc(cap + 1);
    while (b) {
        size_t r = fread(b + len, 1, cap - len, f);
        len += r;
        if (len < cap) break;
        cap *= 2;
        char *nb = realloc(b, cap + 1);
        if (!nb) free(b);
        b = nb;
    }
    int bad = ferror(f);
    fclose(f);
    if (!b || bad) {
        free(b);
        lethe_errf(err, errlen, "tokenizer file '%s': %s", path,
                   bad ? "read error" : "out of memory");
        return NULL;
    }
    b[len] = 0;
    *n = len;
    return b;
}

/* Sets the vocabulary (id order) and merges; takes ownership of neither array's strings. */
static int gpt2_setup(tokenizer *t, char *const *tokens, int nv, char *const *merges, int nm,
                      const char *origin, char *err, size_t errlen)
{
    gpt2_byte_map(t);
    t->vocab_size = nv;
    t->unk_id = -1;
    t->tokens = calloc((size_t)nv, sizeof(char *));
    t->merges = calloc((size_t)(nm ? nm : 1), sizeof(char *));
    if (!t->tokens || !t->merges) return lethe_errf(err, errlen, "%s: out of memory", origin);
    for (int i = 0; i < nv; i++) {
        if (!tokens[i])
            return lethe_errf(err, errlen, "%s: token id %d is missing (ids must be 0..%d)", origin,
                              i, nv - 1);
        t->tokens[i] = strdup(tokens[i]);
        hm_slot *s = t->tokens[i] ? hm_upsert(&t->vocab, tokens[i], strlen(tokens[i]), i) : NULL;
        if (!s) return lethe_errf(err, errlen, "%s: out of memory", origin);
        if (s->val != i)
            return lethe_errf(err, errlen, "%s: token '%s' has two ids (%d and %d)", origin,
                              lethe_shown(tokens[i], (char[80]){0}, 80, 0), s->val, i);
    }
    /* every byte must have its one-character token */
    for (int b = 0; b < 256; b++) {
        char u[4];
        size_t l = put_utf8(u, t->byte_cp[b]);
        if (hm_get(&t->vocab, u, l) < 0)
            return lethe_errf(err, errlen,
                              "%s: the byte token of 0x%02x is missing from the vocabulary", origin,
                              b);
    }
    for (int i = 0; i < nm; i++) {
        const char *sp = strchr(merges[i], ' ');
        if (!sp || sp == merges[i] || !sp[1] || strchr(sp + 1, ' '))
            return lethe_errf(err, errlen,
                              "%s: merge %d '%s' is not two symbols separated by one space", origin,
                              i, lethe_shown(merges[i], (char[80]){0}, 80, 0));
        t->merges[i] = strdup(merges[i]);
        t->n_merges = i + 1;
        hm_slot *s = t->merges[i] ? hm_upsert(&t->ranks, merges[i], strlen(merges[i]), i) : NULL;
        if (!s) return lethe_errf(err, errlen, "%s: out of memory", origin);
    }
    int eos = hm_get(&t->vocab, "<|endoftext|>", 13);
    if (eos < 0)
        return lethe_errf(err, errlen, "%s: the vocabulary has no '<|endoftext|>' token", origin);
    t->eos_id = t->pad_id = eos;
    return 0;
}

int tokenizer_gpt2_load(tokenizer **out, const char *encoder_json, const char *vocab_bpe, char *err,
                        size_t errlen)
{
    *out = NULL;
    size_t jn, bn;
    char *js = slurp(encoder_json, &jn, err, errlen);
    if (!js) return -1;
    char *bpe = slurp(vocab_bpe, &bn, err, errlen);
    if (!bpe) {
        free(js);
        return -1;
    }
    int rc = -1, nv = 0, nm = 0;
    char **tokens = NULL, **merges = NULL;
    tokenizer *t = tk_new(TOKENIZER_GPT2);
    cJSON *root = cJSON_ParseWithLength(js, jn);
    if (!t) {
        lethe_errf(err, errlen, "out of memory");
        goto out;
    }
    if (!root || !cJSON_IsObject(root)) {
        lethe_errf(err, errlen, "tokenizer file '%s': not a JSON object of token -> id",
                   encoder_json);
        goto out;
    }
    nv = cJSON_GetArraySize(root);
    tokens = calloc((size_t)(nv ? nv : 1), sizeof *tokens);
    if (!tokens) {
        lethe_errf(err, errlen, "out of memory");
        goto out;
    }
    for (cJSON *e = root->child; e; e = e->next) {
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble >= nv ||
            e->valuedouble != (double)(int)e->valuedouble) {
            lethe_errf(err, errlen, "tokenizer file '%s': key '%s': expected an id in [0, %d)",
                       encoder_json, lethe_shown(e->string, (char[80]){0}, 80, 0), nv);
            goto out;
        }
        tokens[(int)e->valuedouble] = e->string;
    }
    /* vocab.bpe: "#version: ..." then one "a b" merge per line, in rank order */
    size_t lines = 1;
    for (size_t i = 0; i < bn; i++) lines += bpe[i] == '\n';
    merges = calloc(lines, sizeof *merges);
    if (!merges) {
        lethe_errf(err, errlen, "out of memory");
        goto out;
    }
    char *p = bpe;
    int lineno = 0;
    while (p && *p) {
        char *nl = strchr(p, '\n');
        if (nl) *nl = 0;
        size_t l = strlen(p);
        if (l && p[l - 1] == '\r') p[--l] = 0;
        lineno++;
        if (!(lineno == 1 && strncmp(p, "#version", 8) == 0) && l) merges[nm++] = p;
        p = nl ? nl + 1 : NULL;
    }
    char origin[2100];
    snprintf(origin, sizeof origin, "tokenizer files '%s' + '%s'", encoder_json, vocab_bpe);
    rc = gpt2_setup(t, tokens, nv, merges, nm, origin, err, errlen);
out:
    cJSON_Delete(root);
    free(tokens);
    free(merges);
    free(js);
    free(bpe);
    if (rc)
        tokenizer_free(t);
    else
        *out = t;
    return rc;
}

/* ---- encode / decode -------------------------------------------------------------------- */

int tokenizer_encode(const tokenizer *t, const char *text, size_t len, tok_ids *out)
{
    switch (t->kind) {
    case TOKENIZER_BYTE:
        for (size_t i = 0; i < len; i++)
            if (push(out, (unsigned char)text[i])) return -1;
        return 0;
    case TOKENIZER_WORD: {
        word_enc e = {t, out};
        return word_split(text, len, word_enc_cb, &e);
    }
    case TOKENIZER_GPT2: return gpt2_encode(t, text, len, out);
    }
    return -1;
}

char *tokenizer_decode(const tokenizer *t, const int32_t *ids, int n)
{
    size_t cap = 16, len = 0;
    for (int i = 0; i < n; i++) {
        const char *s = tokenizer_token(t, ids[i]);
        cap += s ? strlen(s) + 1 : 1;
    }
    char *o = malloc(cap);
    if (!o) return NULL;
    for (int i = 0; i < n; i++) {
        int id = ids[i];
        if (id < 0 || id >= t->vocab_size || id == t->pad_id || id == t->eos_id) continue;
        if (t->kind == TOKENIZER_BYTE) {
            o[len++] = (char)id;
        } else if (t->kind == TOKENIZER_WORD) {
            if (len) o[len++] = ' ';
            size_t l = strlen(t->tokens[id]);
            memcpy(o + len, t->tokens[id], l);
            len += l;
        } else {
            const unsigned char *s = (const unsigned char *)t->tokens[id];
            size_t sl = strlen(t->tokens[id]);
            for (size_t k = 0; k < sl;) {
                uint32_t cp;
                k += utf8_next(s, sl, k, &cp);
                if (cp < 512 && t->cp_byte[cp] >= 0) o[len++] = (char)t->cp_byte[cp];
            }
        }
    }
    o[len] = 0;
    return o;
}

/* ---- saving inside a dataset -------------------------------------------------------------- */

static int write_strings(hid_t g, const char *name, char *const *v, int n)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    hsize_t dims[1] = {(hsize_t)n};
    hid_t s = H5Screate_simple(1, dims, NULL);
    hid_t d = H5Dcreate2(g, name, t, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int rc = -1;
    if (d >= 0) {
        rc = H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) < 0 ? -1 : 0;
        H5Dclose(d);
    }
    H5Sclose(s);
    H5Tclose(t);
    return rc;
}

int tokenizer_save(const tokenizer *t, hid_t file, char *err, size_t errlen)
{
    h5_quiet q;
    h5_quiet_on(&q);
    int rc = 0;
    hid_t g = H5Gcreate2(file, "tokenizer", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0 || h5_attr_write_str(g, "kind", tokenizer_name(t)))
        rc = lethe_errf(err, errlen, "cannot create the /tokenizer group");
    if (!rc && t->tokens && write_strings(g, "vocab", t->tokens, t->vocab_size))
        rc = lethe_errf(err, errlen, "cannot write /tokenizer/vocab (%d strings)", t->vocab_size);
    if (!rc && t->kind == TOKENIZER_GPT2 && write_strings(g, "merges", t->merges, t->n_merges))
        rc = lethe_errf(err, errlen, "cannot write /tokenizer/merges (%d strings)", t->n_merges);
    if (g >= 0) H5Gclose(g);
    h5_quiet_off(&q);
    return rc;
}

/* Reads a 1-D string dataset; *out holds n malloc'd strings (caller frees). */
static int read_strings(hid_t g, const char *name, char ***out, int *n)
{
    *out = NULL;
    *n = 0;
    if (H5Lexists(g, name, H5P_DEFAULT) <= 0) return 1;
    hid_t d = H5Dopen2(g, name, H5P_DEFAULT);
    if (d < 0) return 1;
    hid_t ft = H5Dget_type(d), s = H5Dget_space(d);
    int rc = 2;
    hssize_t np = H5Sget_simple_extent_npoints(s);
    if (H5Tget_class(ft) == H5T_STRING && H5Sget_simple_extent_ndims(s) == 1 && np >= 0 &&
        np < INT32_MAX) {
        char **v = calloc((size_t)(np ? np : 1), sizeof *v);
        if (H5Tis_variable_str(ft) > 0) {
            hid_t mt = H5Tcopy(H5T_C_S1);
            H5Tset_size(mt, H5T_VARIABLE);
            H5Tset_cset(mt, H5Tget_cset(ft));
            char **raw = calloc((size_t)(np ? np : 1), sizeof *raw);
            if (v && raw && H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw) >= 0) {
                rc = 0;
                for (hssize_t i = 0; i < np; i++)
                    if (!(v[i] = strdup(raw[i] ? raw[i] : ""))) rc = 3;
#if H5_VERSION_GE(1, 12, 0)
                H5Treclaim(mt, s, H5P_DEFAULT, raw);
#else
                H5Dvlen_reclaim(mt, s, H5P_DEFAULT, raw);
#endif
            }
            free(raw);
            H5Tclose(mt);
        } else {
            size_t sz = H5Tget_size(ft);
            char *raw = calloc((size_t)np * sz + 1, 1);
            if (v && raw && H5Dread(d, ft, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw) >= 0) {
                rc = 0;
                for (hssize_t i = 0; i < np; i++)
                    if (!(v[i] = strndup(raw + i * sz, sz))) rc = 3;
            }
            free(raw);
        }
        if (rc == 0) {
            *out = v;
            *n = (int)np;
        } else if (v) {
            for (hssize_t i = 0; i < np; i++) free(v[i]);
            free(v);
        }
    }
    H5Tclose(ft);
    H5Sclose(s);
    H5Dclose(d);
    return rc;
}

static void free_strings(char **v, int n)
{
    for (int i = 0; v && i < n; i++) free(v[i]);
    free(v);
}

int tokenizer_load(tokenizer **out, const char *path, char *err, size_t errlen)
{
    *out = NULL;
    h5_quiet q;
    h5_quiet_on(&q);
    int rc = -1;
    char kind[64];
    int64_t vocab = 0;
    char **vs = NULL, **ms = NULL;
    int nv = 0, nm = 0;
    hid_t g = -1, f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        lethe_errf(err, errlen, "dataset '%s': cannot open it to read its tokenizer", path);
        goto out;
    }
    if (h5_attr_read_str(f, "tokenizer", kind, sizeof kind) ||
        h5_attr_read_i64(f, "vocab_size", &vocab)) {
        lethe_errf(err, errlen,
                   "dataset '%s': root attributes 'tokenizer' (string) and 'vocab_size' "
                   "(integer) are required",
                   path);
        goto out;
    }
    if (strcmp(kind, "byte") == 0) {
        *out = tokenizer_byte();
        rc = *out ? 0 : lethe_errf(err, errlen, "out of memory");
    } else if (strcmp(kind, "word") == 0 || strcmp(kind, "gpt2") == 0) {
        g = H5Gopen2(f, "tokenizer", H5P_DEFAULT);
        int r = g < 0 ? 1 : read_strings(g, "vocab", &vs, &nv);
        if (r) {
            lethe_errf(err, errlen, "dataset '%s': '/tokenizer/vocab' is %s", path,
                       r == 1   ? "missing"
                       : r == 2 ? "not a 1-D string dataset"
                                : "unreadable");
            goto out;
        }
        if (kind[0] == 'w') {
            rc = tokenizer_word_from_list(out, vs, nv, err, errlen);
        } else {
            r = read_strings(g, "merges", &ms, &nm);
            if (r) {
                lethe_errf(err, errlen, "dataset '%s': '/tokenizer/merges' is %s", path,
                           r == 1   ? "missing"
                           : r == 2 ? "not a 1-D string dataset"
                                    : "unreadable");
                goto out;
            }
            tokenizer *t = tk_new(TOKENIZER_GPT2);
            char origin[1100];
            snprintf(origin, sizeof origin, "dataset '%s': /tokenizer", path);
            rc = t ? gpt2_setup(t, vs, nv, ms, nm, origin, err, errlen)
                   : lethe_errf(err, errlen, "out of memory");
            if (rc)
                tokenizer_free(t);
            else
                *out = t;
        }
        if (rc) {
            char m[512];
            snprintf(m, sizeof m, "%s", err);
            if (strncmp(m, "dataset", 7) != 0) lethe_errf(err, errlen, "dataset '%s': %s", path, m);
        }
    } else {
        lethe_errf(err, errlen, "dataset '%s': tokenizer '%s' is not built in (byte, word, gpt2)",
                   path, kind);
    }
    if (rc == 0 && tokenizer_vocab_size(*out) != vocab) {
        lethe_errf(err, errlen,
                   "dataset '%s': vocab_size attribute %lld differs from the %s "
                   "tokenizer's %d",
                   path, (long long)vocab, kind, tokenizer_vocab_size(*out));
        tokenizer_free(*out);
        *out = NULL;
        rc = -1;
    }
out:
    free_strings(vs, nv);
    free_strings(ms, nm);
    if (g >= 0) H5Gclose(g);
    if (f >= 0) H5Fclose(f);
    H5Eclear2(H5E_DEFAULT);
    h5_quiet_off(&q);
    return rc;
}
