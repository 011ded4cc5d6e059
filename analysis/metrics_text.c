/* analysis/metrics_text.c — ROUGE-L of metrics.h: the longest common subsequence, and
 * rouge_score's default tokenizer (no stemming) for text. */
#include "metrics.h"

#include <stdlib.h>
#include <string.h>

/* ---- ROUGE-L ------------------------------------------------------------------------ */

/* LCS with one row over the shorter sequence b (nb <= na). row: (nb + 1) scratch. */
static int64_t lcs_row(const int32_t *a, int64_t na, const int32_t *b, int64_t nb, int64_t *row)
{
    for (int64_t j = 0; j <= nb; j++) row[j] = 0;
    for (int64_t i = 0; i < na; i++) {
        int64_t diag = 0; /* L[i-1][j-1] */
        int32_t ai = a[i];
        for (int64_t j = 1; j <= nb; j++) {
            int64_t up = row[j]; /* L[i-1][j] */
            if (ai == b[j - 1])
                row[j] = diag + 1;
            else if (row[j - 1] > up)
                row[j] = row[j - 1];
            diag = up;
        }
    }
    return row[nb];
}

int metrics_lcs(int64_t *lcs, const int32_t *a, int64_t na, const int32_t *b, int64_t nb)
{
    if (!lcs || na < 0 || nb < 0 || (na > 0 && !a) || (nb > 0 && !b)) return METRICS_EINVAL;
    if (na == 0 || nb == 0) {
        *lcs = 0;
        return METRICS_OK;
    }
    if (nb > na) { /* the row runs over the shorter sequence: O(min) memory */
        const int32_t *t = a;
        a = b;
        b = t;
        int64_t tn = na;
        na = nb;
        nb = tn;
    }
    int64_t *row = malloc((size_t)(nb + 1) * sizeof *row);
    if (!row) return METRICS_ENOMEM;
    *lcs = lcs_row(a, na, b, nb, row);
    free(row);
    return METRICS_OK;
}

static void rouge_from_lcs(metrics_rouge *out, int64_t lcs, int64_t ncand, int64_t nref)
{
    out->lcs = lcs;
    out->precision = out->recall = out->f1 = 0.0;
    if (ncand == 0 || nref == 0) return;
    double p = (double)lcs / (double)ncand, r = (double)lcs / (double)nref;
    out->precision = p;
    out->recall = r;
    /* rouge_score's scoring.fmeasure, operation for operation. */
    out->f1 = (p + r > 0.0) ? 2.0 * p * r / (p + r) : 0.0;
}

int metrics_rouge_l_ids(metrics_rouge *out, const int32_t *cand, int64_t ncand, const int32_t *ref,
                        int64_t nref)
{
    if (!out) return METRICS_EINVAL;
    int64_t lcs;
    int rc = metrics_lcs(&lcs, cand, ncand, ref, nref);
    if (rc != METRICS_OK) return rc;
    rouge_from_lcs(out, lcs, ncand, nref);
    return METRICS_OK;
}

/* rouge_score's normalisation, byte by byte: ASCII letters folded to lower case and
 * digits kept; the two characters whose Python lower() yields ASCII alphanumerics
 * mapped (U+212A -> "k", U+0130 -> "i" + break); everything else becomes a space.
 * out has room for len bytes: no mapping lengthens the text. Returns the length. */
static size_t rouge_normalize(char *out, const char *text, size_t len)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        unsigned char c = s[i];
        if (c >= 'A' && c <= 'Z') {
            out[o++] = (char)(c - 'A' + 'a');
            i++;
        } else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
            out[o++] = (char)c;
            i++;
        } else if (c == 0xE2 && i + 2 < len && s[i + 1] == 0x84 && s[i + 2] == 0xAA) {
            out[o++] = 'k'; /* U+212A KELVIN SIGN: lower() is ASCII 'k' */
            i += 3;
        } else if (c == 0xC4 && i + 1 < len && s[i + 1] == 0xB0) {
            out[o++] = 'i'; /* U+0130: lower() is 'i' + U+0307, a non-alphanumeric */
            out[o++] = ' ';
            i += 2;
        } else {
            out[o++] = ' ';
            i++;
        }
    }
    return o;
}

typedef struct {
    const char *s;
    int32_t len;
    int32_t side; /* 0 candidate, 1 reference */
    int64_t pos;  /* index in its side's word sequence */
} word_ref;

static int cmp_word(const void *a, const void *b)
{
    const word_ref *x = a, *y = b;
    int32_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->s, y->s, (size_t)n);
    if (c != 0) return c;
    return (x->len > y->len) - (x->len < y->len);
}

/* Appends the words of normalised text t[0..n) to w; returns how many. */
static int64_t split_words(word_ref *w, int64_t nw, const char *t, size_t n, int32_t side)
{
    int64_t count = 0;
    size_t i = 0;
    while (i < n) {
        while (i < n && t[i] == ' ') i++;
        size_t start = i;
        while (i < n && t[i] != ' ') i++;
        if (i > start) {
            w[nw + count] = (word_ref){t + start, (int32_t)(i - start), side, count};
            count++;
        }
    }
    return count;
}

int metrics_rouge_l_text(metrics_rouge *out, const char *cand, size_t cand_len, const char *ref,
                         size_t ref_len)
{
    if (!out || (cand_len > 0 && !cand) || (ref_len > 0 && !ref)) return METRICS_EINVAL;
    if (cand_len > INT32_MAX || ref_len > INT32_MAX) return METRICS_EINVAL;
    size_t total = cand_len + ref_len;
    /* a word takes at least one byte plus a separator: at most (len + 1) / 2 words */
    size_t max_words = (cand_len + 1) / 2 + (ref_len + 1) / 2;
    char *norm = malloc(total + 1);
    word_ref *w = malloc((max_words + 1) * sizeof *w);
    int32_t *ids = calloc(max_words + 1, sizeof *ids);
    if (!norm || !w || !ids) {
        free(norm);
        free(w);
        free(ids);
        return METRICS_ENOMEM;
    }
    size_t nc = rouge_normalize(norm, cand, cand_len);
    size_t nr = rouge_normalize(norm + nc, ref, ref_len);
    int64_t wc = split_words(w, 0, norm, nc, 0);
    int64_t wr = split_words(w, wc, norm + nc, nr, 1);

    /* Intern the words: equal strings get equal ids, then ROUGE-L on ids. */
    int32_t *cid = ids, *rid = ids + wc;
    qsort(w, (size_t)(wc + wr), sizeof *w, cmp_word);
    int32_t id = -1;
    for (int64_t i = 0; i < wc + wr; i++) {
        if (i == 0 || cmp_word(&w[i - 1], &w[i]) != 0) id++;
        (w[i].side == 0 ? cid : rid)[w[i].pos] = id;
    }
    int rc = metrics_rouge_l_ids(out, cid, wc, rid, wr);
    free(norm);
    free(w);
    free(ids);
    return rc;
}
