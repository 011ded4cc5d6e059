/* io/text/tokenizer.c — the tokenizers' common part: the hash map, ids, added pieces
 * found in text, the byte and word tokenizers and encode/decode here; byte-level BPE
 * (GPT-2, Llama-3) in tokenizer_gpt2.c, SentencePiece BPE in tokenizer_spm.c, the files
 * of Hugging Face model directories in tokenizer_hf*.c, saving and loading in
 * tokenizer_h5.c (shared: tokenizer_impl.h). */
#define _POSIX_C_SOURCE 200809L /* getline, strdup, strndup */
#include "../../mpi/fatal.h"
#include "tokenizer.h"
#include "../dataset.h"
#include "tokenizer_impl.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a string -> int32 hash map (open addressing, FNV-1a) ------------------------ */

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

int tk_hm_get(const hmap *m, const char *k, size_t n)
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
hm_slot *tk_hm_upsert(hmap *m, const char *k, size_t n, int32_t init)
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

int tk_push(tok_ids *v, int32_t id)
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

tokenizer *tk_new(tokenizer_kind kind)
{
    tokenizer *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->kind = kind;
    t->unk_id = t->bos_id = -1;
    for (int b = 0; b < 256; b++) t->byte_id[b] = -1;
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
    free(t->ptype);
    free(t->scores);
    free(t->added);
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

int tokenizer_bos_id(const tokenizer *t)
{
    return t->bos_id;
}

const char *tokenizer_name(const tokenizer *t)
{
    static const char *const names[] = {"byte", "word", "gpt2", "llama3", "spm"};
    return names[t->kind];
}

int tokenizer_token_id(const tokenizer *t, const char *piece)
{
    return piece && t->kind != TOKENIZER_BYTE ? tk_hm_get(&t->vocab, piece, strlen(piece)) : -1;
}

/* ---- added pieces ----------------------------------------------------------------------- */

/* Encodes text[0..n): the added pieces found in it by their ids, each stretch between
 * them (text[a..b)) by the model's segment encoder. */
static int encode_added(const tokenizer *t, const char *text, size_t n, tk_segment_fn seg,
                        tok_ids *out)
{
    size_t a = 0;
    for (size_t i = 0; i < n && t->n_added;) {
        size_t al;
        int id = tk_added_at(t, text, n, i, &al);
        if (id < 0) {
            i++;
            continue;
        }
        if (seg(t, text, n, a, i, out) || tk_push(out, id)) return -1;
        i += al;
        a = i;
    }
    return seg(t, text, n, a, n, out);
}

int tk_set_added(tokenizer *t, int control_too)
{
    free(t->added);
    t->n_added = 0;
    memset(t->added_first, 0, sizeof t->added_first);
    t->added = malloc((size_t)(t->vocab_size ? t->vocab_size : 1) * sizeof *t->added);
    if (!t->added) return -1;
    for (int i = 0; i < t->vocab_size; i++)
        if ((t->ptype[i] == TK_ADDED || (control_too && t->ptype[i] == TK_CONTROL)) &&
            t->tokens[i][0]) {
            unsigned char c = (unsigned char)t->tokens[i][0];
            t->added[t->n_added++] = i;
            t->added_first[c >> 3] |= (uint8_t)(1u << (c & 7));
        }
    return 0;
}

int tk_added_at(const tokenizer *t, const char *s, size_t n, size_t i, size_t *len)
{
    unsigned char c = (unsigned char)s[i];
    if (!(t->added_first[c >> 3] & (1u << (c & 7)))) return -1;
    int best = -1;
    size_t bl = 0;
    for (int k = 0; k < t->n_added; k++) {
        const char *p = t->tokens[t->added[k]];
        size_t l = strlen(p);
        if (l > bl && l <= n - i && memcmp(s + i, p, l) == 0) {
            best = t->added[k];
            bl = l;
        }
    }
    *len = bl;
    return best;
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
    hm_slot *s = tk_hm_upsert(&wc->counts, w, n, 0);
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
        hm_slot *s = tk_hm_upsert(&t->vocab, words[i], l, i);
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
    int id = tk_hm_get(&e->t->vocab, w, n);
    return tk_push(e->out, id < 0 ? e->t->unk_id : id);
}

/* ---- encode / decode -------------------------------------------------------------------- */

/* The ids of text[0..len) with (added != 0) or without its added pieces split out. */
static int encode(const tokenizer *t, const char *text, size_t len, int added, tok_ids *out)
{
    tk_segment_fn seg = t->kind == TOKENIZER_SPM ? tk_spm_segment : tk_bytelevel_segment;
    switch (t->kind) {
    case TOKENIZER_BYTE:
        for (size_t i = 0; i < len; i++)
            if (tk_push(out, (unsigned char)text[i])) return -1;
        return 0;
    case TOKENIZER_WORD: {
        word_enc e = {t, out};
        return word_split(text, len, word_enc_cb, &e);
    }
    case TOKENIZER_GPT2:
    case TOKENIZER_LLAMA3:
    case TOKENIZER_SPM:
        return added ? encode_added(t, text, len, seg, out) : seg(t, text, len, 0, len, out);
    }
    return -1;
}

int tokenizer_encode(const tokenizer *t, const char *text, size_t len, tok_ids *out)
{
    return encode(t, text, len, 1, out);
}

int tokenizer_encode_text(const tokenizer *t, const char *text, size_t len, tok_ids *out)
{
    return encode(t, text, len, 0, out);
}

char *tokenizer_decode(const tokenizer *t, const int32_t *ids, int n)
{
    size_t cap = 16, len = 0;
    int started = 0; /* pieces decoded so far: spm drops the prefix of the first */
    for (int i = 0; i < n; i++) {
        const char *s = tokenizer_token(t, ids[i]);
        cap += s ? strlen(s) + 5 : 1; /* spm: an unknown piece is shown as " ⁇ " */
    }
    char *o = malloc(cap);
    if (!o) return NULL;
    for (int i = 0; i < n; i++) {
        int id = ids[i];
        if (id < 0 || id >= t->vocab_size || id == t->pad_id || id == t->eos_id) continue;
        if (t->ptype && t->ptype[id] == TK_CONTROL) continue;
        started++;
        if (t->kind == TOKENIZER_SPM) {
            len += tk_spm_decode_piece(t, id, started == 1, o + len);
        } else if (t->ptype && t->ptype[id] == TK_ADDED) { /* its text, not byte-mapped */
            size_t l = strlen(t->tokens[id]);
            memcpy(o + len, t->tokens[id], l);
            len += l;
        } else if (t->kind == TOKENIZER_BYTE) {
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
                k += tk_utf8_next(s, sl, k, &cp);
                if (cp < 512 && t->cp_byte[cp] >= 0) o[len++] = (char)t->cp_byte[cp];
            }
        }
    }
    o[len] = 0;
    return o;
}
