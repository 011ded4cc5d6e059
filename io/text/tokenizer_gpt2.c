/* io/text/tokenizer_gpt2.c — byte-level BPE (GPT-2, and Llama-3 read from tokenizer.json):
 * the byte <-> code point map, the BPE merge loop that every BPE kind shares (by rank,
 * or by score for SentencePiece .model files), encoding piece by piece after added
 * pieces are split out (the pieces: tokenizer_gpt2_pretok.c), and loading encoder.json +
 * vocab.bpe with every id and merge checked. */
#define _POSIX_C_SOURCE 200809L
#include <cjson/cJSON.h>
#include <errno.h>
#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../mpi/fatal.h"
#include "../safefile.h"
#include "tokenizer_impl.h"

/* ---- GPT-2 ---------------------------------------------------------------------------- */

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

/* The priority of merging symbols a and b into *prio (lower is better): the rank of
 * "a b", or, for SentencePiece models read from a .model, minus the score of the piece
 * a+b. Returns 0 when there is no such merge. */
static int merge_prio(const tokenizer *t, const char *a, size_t al, const char *b, size_t bl,
                      char *key, double *prio)
{
    memcpy(key, a, al);
    if (t->scores) {
        memcpy(key + al, b, bl);
        int id = tk_hm_get(&t->vocab, key, al + bl);
        if (id < 0 ||
            (t->ptype[id] != TK_NORMAL && t->ptype[id] != TK_ADDED && t->ptype[id] != TK_UNUSED))
            return 0;
        *prio = -(double)t->scores[id];
        return 1;
    }
    key[al] = ' ';
    memcpy(key + al + 1, b, bl);
    int r = tk_hm_get(&t->ranks, key, al + 1 + bl);
    *prio = r;
    return r >= 0;
}

int tk_bpe_reserve(tk_bpe_buf *b, size_t wn)
{
    if (wn + 1 <= b->cap) return 0;
    size_t cap = wn + 64;
    size_t *off = realloc(b->off, cap * sizeof *off);
    if (off) b->off = off;
    size_t *len = off ? realloc(b->len, cap * sizeof *len) : NULL;
    if (len) b->len = len;
    double *prio = len ? realloc(b->prio, cap * sizeof *prio) : NULL;
    if (prio) b->prio = prio;
    char *key = prio ? realloc(b->key, 2 * cap + 2) : NULL;
    if (!key) return -1;
    b->key = key;
    b->cap = cap;
    return 0;
}

void tk_bpe_release(tk_bpe_buf *b)
{
    free(b->off);
    free(b->len);
    free(b->prio);
    free(b->key);
    memset(b, 0, sizeof *b);
}

/* prio[i] of symbols i and i+1 */
static void pair_prio(const tokenizer *t, const char *w, tk_bpe_buf *b, size_t i)
{
    if (!merge_prio(t, w + b->off[i], b->len[i], w + b->off[i + 1], b->len[i + 1], b->key,
                    &b->prio[i]))
        b->prio[i] = DBL_MAX;
}

size_t tk_bpe_merge(const tokenizer *t, const char *w, size_t wn, tk_bpe_buf *b)
{
    size_t m = 0;
    for (size_t i = 0; i < wn;) {
        uint32_t cp;
        size_t l = tk_utf8_next((const unsigned char *)w, wn, i, &cp);
        b->off[m] = i;
        b->len[m++] = l;
        i += l;
    }
    for (size_t i = 0; i + 1 < m; i++) pair_prio(t, w, b, i);
    /* one merge at a time, the best pair first (ties: the leftmost), as Hugging Face's
     * BPE and SentencePiece do; only the merged symbol's two pairs change */
    while (m > 1) {
        size_t bi = 0;
        for (size_t i = 1; i + 1 < m; i++)
            if (b->prio[i] < b->prio[bi]) bi = i;
        if (b->prio[bi] == DBL_MAX) break;
        b->len[bi] += b->len[bi + 1];
        m--;
        memmove(b->off + bi + 1, b->off + bi + 2, (m - bi - 1) * sizeof *b->off);
        memmove(b->len + bi + 1, b->len + bi + 2, (m - bi - 1) * sizeof *b->len);
        if (bi + 1 < m) memmove(b->prio + bi + 1, b->prio + bi + 2, (m - bi - 2) * sizeof *b->prio);
        if (bi > 0) pair_prio(t, w, b, bi - 1);
        if (bi + 1 < m) pair_prio(t, w, b, bi);
    }
    return m;
}

/* Byte-level BPE of one pre-token. w: its bytes mapped to code points (UTF-8). */
static int bytelevel_bpe(const tokenizer *t, const char *w, size_t wn, tk_bpe_buf *b, tok_ids *out)
{
    if (t->ignore_merges) {
        int id = tk_hm_get(&t->vocab, w, wn);
        if (id >= 0) return tk_push(out, id);
    }
    size_t m = tk_bpe_merge(t, w, wn, b);
    for (size_t i = 0; i < m; i++) {
        int id = tk_hm_get(&t->vocab, w + b->off[i], b->len[i]);
        if (id < 0) /* cannot happen: every byte has its token and merges are checked */
            id = t->unk_id >= 0 ? t->unk_id : t->eos_id;
        if (tk_push(out, id)) return -1;
    }
    return 0;
}

/* One segment of text free of added pieces, pre-token by pre-token. */
static int bytelevel_segment(const tokenizer *t, const unsigned char *s, size_t n, tok_ids *out)
{
    tk_bpe_buf b = {0};
    char *w = NULL;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0;) {
        size_t j = t->kind == TOKENIZER_LLAMA3 ? tk_llama3_piece(s, n, i) : tk_gpt2_piece(s, n, i);
        size_t wn = 0, cap = b.cap;
        char *nw = tk_bpe_reserve(&b, 2 * (j - i)) ? NULL : b.cap == cap ? w : realloc(w, b.cap);
        if (!nw) {
            rc = -1;
            break;
        }
        w = nw;
        for (size_t k = i; k < j; k++) wn += put_utf8(w + wn, t->byte_cp[s[k]]);
        rc = bytelevel_bpe(t, w, wn, &b, out);
        i = j;
    }
    free(w);
    tk_bpe_release(&b);
    return rc;
}

int tk_bytelevel_segment(const tokenizer *t, const char *text, size_t n, size_t a, size_t b,
                         tok_ids *out)
{
    (void)n;
    return bytelevel_segment(t, (const unsigned char *)text + a, b - a, out);
}

static char *slurp(const char *path, size_t *n, char *err, size_t errlen)
{
    /* regular files only (never /dev/zero or a FIFO), at most 256 MiB */
    return safe_read(path, "tokenizer file", LETHE_MAX_TOKENIZER, n, err, errlen);
}

int tk_set_merges(tokenizer *t, char *const *merges, int nm, const char *origin, char *err,
                  size_t errlen)
{
    for (int i = 0; t->merges && i < t->n_merges; i++) free(t->merges[i]);
    free(t->merges);
    t->n_merges = 0;
    t->merges = calloc((size_t)(nm ? nm : 1), sizeof(char *));
    if (!t->merges) return lethe_errf(err, errlen, "%s: out of memory", origin);
    for (int i = 0; i < nm; i++) {
        const char *sp = strchr(merges[i], ' ');
        if (!sp || sp == merges[i] || !sp[1] || strchr(sp + 1, ' '))
            return lethe_errf(err, errlen,
                              "%s: merge %d '%s' is not two symbols separated by one space", origin,
                              i, lethe_shown(merges[i], (char[80]){0}, 80, 0));
        t->merges[i] = strdup(merges[i]);
        t->n_merges = i + 1;
        hm_slot *s = t->merges[i] ? tk_hm_upsert(&t->ranks, merges[i], strlen(merges[i]), i) : NULL;
        if (!s) return lethe_errf(err, errlen, "%s: out of memory", origin);
    }
    return 0;
}

/* Sets the vocabulary (id order) and merges of a byte-level BPE; takes ownership of
 * neither array's strings. */
int tk_set_vocab(tokenizer *t, char *const *tokens, int nv, const char *origin, char *err,
                 size_t errlen)
{
    t->vocab_size = nv;
    t->tokens = calloc((size_t)(nv ? nv : 1), sizeof(char *));
    if (!t->tokens) return lethe_errf(err, errlen, "%s: out of memory", origin);
    for (int i = 0; i < nv; i++) {
        if (!tokens[i])
            return lethe_errf(err, errlen, "%s: token id %d is missing (ids must be 0..%d)", origin,
                              i, nv - 1);
        t->tokens[i] = strdup(tokens[i]);
        hm_slot *s = t->tokens[i] ? tk_hm_upsert(&t->vocab, tokens[i], strlen(tokens[i]), i) : NULL;
        if (!s) return lethe_errf(err, errlen, "%s: out of memory", origin);
        if (s->val != i)
            return lethe_errf(err, errlen, "%s: token '%s' has two ids (%d and %d)", origin,
                              lethe_shown(tokens[i], (char[80]){0}, 80, 0), s->val, i);
    }
    return 0;
}

int tk_bytelevel_setup(tokenizer *t, char *const *tokens, int nv, char *const *merges, int nm,
                       const char *origin, char *err, size_t errlen)
{
    gpt2_byte_map(t);
    if (tk_set_vocab(t, tokens, nv, origin, err, errlen)) return -1;
    /* every byte must have its one-character token */
    for (int b = 0; b < 256; b++) {
        char u[4];
        size_t l = put_utf8(u, t->byte_cp[b]);
        if (tk_hm_get(&t->vocab, u, l) < 0)
            return lethe_errf(err, errlen,
                              "%s: the byte token of 0x%02x is missing from the vocabulary", origin,
                              b);
    }
    return tk_set_merges(t, merges, nm, origin, err, errlen);
}

int tk_gpt2_setup(tokenizer *t, char *const *tokens, int nv, char *const *merges, int nm,
                  const char *origin, char *err, size_t errlen)
{
    if (tk_bytelevel_setup(t, tokens, nv, merges, nm, origin, err, errlen)) return -1;
    int eos = tk_hm_get(&t->vocab, "<|endoftext|>", 13);
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
    rc = tk_gpt2_setup(t, tokens, nv, merges, nm, origin, err, errlen);
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
