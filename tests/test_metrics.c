/* tests/test_metrics.c — checks of analysis/metrics.h.
 *
 * Without arguments (ctest metrics.unit) it asserts, each with its tolerance:
 *   ROUGE-L   hand-computed LCS/precision/recall/F1 on ids and on text (case folding,
 *             punctuation, non-ASCII, U+212A and U+0130, NUL bytes, empty inputs): exact
 *             for counts, 1e-15 relative for the ratios.
 *   KS        D with ties against a by-definition O(N^2) count at every pooled value (exact
 *             integer); exact p-values for every n1, n2 <= 8 against a brute-force
 *             enumeration of all C(n1+n2, n1) label assignments, on tie-free and tied
 *             data (1e-13 relative, log_p 1e-13 absolute); n1 = n2 = 3000 against the
 *             reflection-principle closed form 2 sum_k (-1)^(k-1) C(2n, n-kc)/C(2n, n)
 *             (lgamma-based: 1e-9 relative / log 1e-9 absolute, down to p ~ 1e-1800);
 *             n1 = 1 against its closed form on both sides of the exact/asymptotic
 *             switch (n2 = 10000 exact, 10001 asymptotic); p(n1, n2) = p(n2, n1) (1e-12);
 *             the Kolmogorov function's two series against each other (1e-12).
 *   AUC       hand cases with ties and infinities; random tied data against pair
 *             counting and against average ranks (exact equality).
 *   means, truth ratio, normalised probability, Min-K%: hand cases (1e-15 relative),
 *             Min-K% rounding m = ceil(k n / 100), limits (R = 0, inf), error codes.
 * With `--dump FILE` it writes random cases and its own results (hex floats) for
 * tests/metrics_ref.py, the independent Python implementation (ctest metrics.python).
 * Exit status 1 if any check failed. */
#include "analysis/metrics.h"

#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_metrics.h"

/* ---------------------------------------------------------------- ROUGE-L */

static void test_rouge(tally *t)
{
    const int32_t a[] = {'A', 'B', 'C', 'B', 'D', 'A', 'B'}, b[] = {'B', 'D', 'C', 'A', 'B', 'A'};
    int64_t lcs = -1;
    CHECK(t, metrics_lcs(&lcs, a, 7, b, 6) == 0 && lcs == 4, "LCS(ABCBDAB, BDCABA) = %" PRId64,
          lcs);
    CHECK(t, metrics_lcs(&lcs, b, 6, a, 7) == 0 && lcs == 4, "LCS symmetric: %" PRId64, lcs);
    CHECK(t, metrics_lcs(&lcs, a, 7, a, 7) == 0 && lcs == 7, "LCS(a, a) = %" PRId64, lcs);
    CHECK(t, metrics_lcs(&lcs, a, 0, b, 6) == 0 && lcs == 0, "LCS(empty, b) = %" PRId64, lcs);
    CHECK(t, metrics_lcs(&lcs, NULL, 0, NULL, 0) == 0 && lcs == 0, "LCS(NULL, NULL, 0)");
    const int32_t c[] = {-5, 2147483647, -2147483647 - 1}, d[] = {7, 8};
    CHECK(t, metrics_lcs(&lcs, c, 3, d, 2) == 0 && lcs == 0, "disjoint LCS = %" PRId64, lcs);
    CHECK(t, metrics_lcs(&lcs, NULL, 3, d, 2) == METRICS_EINVAL, "NULL with length 3");
    CHECK(t, metrics_lcs(&lcs, c, -1, d, 2) == METRICS_EINVAL, "negative length");

    metrics_rouge r;
    const int32_t cand[] = {1, 2, 3, 4}, ref[] = {1, 3, 5};
    CHECK(t, metrics_rouge_l_ids(&r, cand, 4, ref, 3) == 0, "rouge ids");
    CHECK(t,
          r.lcs == 2 && r.precision == 0.5 && rel_close(r.recall, 2.0 / 3.0, 1e-15) &&
              rel_close(r.f1, 4.0 / 7.0, 1e-15),
          "rouge ids: lcs %" PRId64 " p %.17g r %.17g f %.17g (want 2, 1/2, 2/3, 4/7)", r.lcs,
          r.precision, r.recall, r.f1);
    CHECK(t,
          metrics_rouge_l_ids(&r, cand, 0, ref, 3) == 0 && r.lcs == 0 && r.f1 == 0.0 &&
              r.recall == 0.0 && r.precision == 0.0,
          "rouge with an empty candidate is all zero");

    struct {
        const char *cand, *ref;
        size_t cl, rl; /* 0: strlen */
        int64_t lcs, nc, nr;
    } tc[] = {
        {"The cat sat on the mat.", "the cat is on the mat", 0, 0, 5, 6, 6},
        {"\xe2\x84\xaaing", "KING", 0, 0, 1, 1, 1},            /* U+212A joins: "king" */
        {"\xc4\xb0stanbul", "i stanbul", 0, 0, 2, 2, 2},       /* U+0130: "i" + break */
        {"caf\xc3\xa9-au-lait", "CAF AU LAIT", 0, 0, 3, 3, 3}, /* é separates */
        {"don't stop", "don t STOP", 0, 0, 3, 3, 3},           /* apostrophe separates */
        {"a\0b", "a b", 3, 0, 2, 2, 2},                        /* NUL is a separator */
        {"x\xe2\x84", "x", 0, 0, 1, 1, 1},                     /* truncated UTF-8 */
        {"  ,;!! ", "word", 0, 0, 0, 0, 1},                    /* no words: all zero */
        {"A1b2 C3", "a1B2\tc3\n", 0, 0, 2, 2, 2},              /* digits stay in words */
        {"one two three four", "four three two one", 0, 0, 1, 4, 4},
    };
    for (size_t k = 0; k < sizeof tc / sizeof tc[0]; k++) {
        size_t cl = tc[k].cl ? tc[k].cl : strlen(tc[k].cand);
        size_t rl = tc[k].rl ? tc[k].rl : strlen(tc[k].ref);
        int rc = metrics_rouge_l_text(&r, tc[k].cand, cl, tc[k].ref, rl);
        double p = tc[k].nc ? (double)tc[k].lcs / (double)tc[k].nc : 0.0;
        double rr = tc[k].nr && tc[k].nc ? (double)tc[k].lcs / (double)tc[k].nr : 0.0;
        double f = (p + rr > 0) ? 2 * p * rr / (p + rr) : 0.0;
        CHECK(t, rc == 0 && r.lcs == tc[k].lcs && r.precision == p && r.recall == rr && r.f1 == f,
              "rouge text case %zu: rc %d lcs %" PRId64 " (want %" PRId64 ") p %.17g (%.17g) r "
              "%.17g (%.17g) f %.17g (%.17g)",
              k, rc, r.lcs, tc[k].lcs, r.precision, p, r.recall, rr, r.f1, f);
    }
    CHECK(t, metrics_rouge_l_text(&r, NULL, 0, "", 0) == 0 && r.f1 == 0.0, "empty texts");
    CHECK(t, metrics_rouge_l_text(&r, NULL, 2, "", 0) == METRICS_EINVAL, "NULL text, length 2");
}

/* ---------------------------------------------------------------- AUC */

static void test_auc(tally *t)
{
    double auc = -1;
    const double p1[] = {1, 2, 3}, n1[] = {2, 0};
    CHECK(t, metrics_roc_auc(&auc, p1, 3, n1, 2) == 0 && auc == 0.75,
          "AUC {1,2,3} vs {2,0}: %.17g (want 4.5/6)", auc);
    const double all[] = {5, 5, 5};
    CHECK(t, metrics_roc_auc(&auc, all, 3, all, 2) == 0 && auc == 0.5, "AUC all tied %.17g", auc);
    const double hi[] = {10, 11}, lo[] = {-1, 0, 1};
    CHECK(t, metrics_roc_auc(&auc, hi, 2, lo, 3) == 0 && auc == 1.0, "AUC separated %.17g", auc);
    CHECK(t, metrics_roc_auc(&auc, lo, 3, hi, 2) == 0 && auc == 0.0, "AUC reversed %.17g", auc);
    const double pinf[] = {INFINITY, -INFINITY}, ninf[] = {INFINITY};
    CHECK(t, metrics_roc_auc(&auc, pinf, 2, ninf, 1) == 0 && auc == 0.25,
          "AUC with infinities %.17g (want 0.25)", auc);
    const double pn[] = {NAN};
    CHECK(t, metrics_roc_auc(&auc, pn, 1, lo, 3) == METRICS_EDOMAIN, "AUC NaN -> EDOMAIN");
    CHECK(t, metrics_roc_auc(&auc, lo, 0, hi, 2) == METRICS_EINVAL, "AUC no positives -> EINVAL");

    rng g = {777};
    for (int rep = 0; rep < 200; rep++) {
        int np = (int)rng_int(&g, 1, 40), nn = (int)rng_int(&g, 1, 40);
        double ps[40], ns[40];
        for (int i = 0; i < np; i++) ps[i] = (double)rng_int(&g, 0, 6);
        for (int i = 0; i < nn; i++) ns[i] = (double)rng_int(&g, 0, 6) - 1;
        int64_t gt = 0, eq = 0;
        for (int i = 0; i < np; i++)
            for (int j = 0; j < nn; j++) gt += ps[i] > ns[j], eq += ps[i] == ns[j];
        double want = (double)(2 * gt + eq) / (double)(2 * np * nn);
        /* average ranks over the pooled sample, doubled so they are integers */
        int64_t r2 = 0;
        for (int i = 0; i < np; i++) {
            int64_t less = 0, same = 0;
            for (int j = 0; j < np; j++) less += ps[j] < ps[i], same += ps[j] == ps[i];
            for (int j = 0; j < nn; j++) less += ns[j] < ps[i], same += ns[j] == ps[i];
            r2 += 2 * less + same + 1; /* 2 * (less + (same + 1) / 2) */
        }
        double want_u = (double)(r2 - (int64_t)np * (np + 1)) / (double)(2 * np * nn);
        int rc = metrics_roc_auc(&auc, ps, np, ns, nn);
        CHECK(t, rc == 0 && auc == want && auc == want_u,
              "AUC random %d: %.17g (pairs %.17g, ranks %.17g)", rep, auc, want, want_u);
    }
}

/* ---------------------------------------------------------------- means, TR, Min-K */

static void test_means(tally *t)
{
    double v = -1;
    const double h[] = {1, 2, 4};
    CHECK(t, metrics_harmonic_mean(&v, h, 3) == 0 && rel_close(v, 12.0 / 7.0, 1e-15),
          "hmean {1,2,4} %.17g (want 12/7)", v);
    const double hz[] = {1, 0, 3};
    CHECK(t, metrics_harmonic_mean(&v, hz, 3) == 0 && v == 0.0, "hmean with a 0: %g", v);
    const double hn[] = {1, -2}, hnan[] = {1, NAN}, hinf[] = {INFINITY, INFINITY};
    CHECK(t, metrics_harmonic_mean(&v, hn, 2) == METRICS_EDOMAIN, "hmean negative -> EDOMAIN");
    CHECK(t, metrics_harmonic_mean(&v, hnan, 2) == METRICS_EDOMAIN, "hmean NaN -> EDOMAIN");
    CHECK(t, metrics_harmonic_mean(&v, hinf, 2) == 0 && v == INFINITY, "hmean {inf,inf} = %g", v);
    CHECK(t, metrics_harmonic_mean(&v, h, 0) == METRICS_EINVAL, "hmean k = 0 -> EINVAL");

    const double m[] = {1, 2, 3, 4}, mc[] = {1e16, 1, -1e16};
    CHECK(t, metrics_mean(&v, m, 4) == 0 && v == 2.5, "mean %g", v);
    CHECK(t, metrics_mean(&v, mc, 3) == 0 && rel_close(v, 1.0 / 3.0, 1e-15),
          "mean {1e16, 1, -1e16} = %.17g (compensated: want 1/3)", v);
    const double mi[] = {1, INFINITY}, mii[] = {-INFINITY, INFINITY};
    CHECK(t, metrics_mean(&v, mi, 2) == 0 && v == INFINITY, "mean with inf %g", v);
    CHECK(t, metrics_mean(&v, mii, 2) == METRICS_EDOMAIN, "mean inf - inf -> EDOMAIN");

    /* truth ratio: mean(1.5, 2.5) - 1 = 1, R = e */
    const double para[] = {1.0, 0.0, 0.0}, pert[] = {1.5, 2.5, 1000.0, 1000.0, -1000.0, -1000.0};
    double R[3];
    CHECK(t,
          metrics_truth_ratio(R, para, pert, 3, 2) == 0 && rel_close(R[0], exp(1.0), 1e-15) &&
              R[1] == INFINITY && R[2] == 0.0,
          "truth ratio R = %.17g %g %g (want e, inf, 0)", R[0], R[1], R[2]);
    CHECK(t, metrics_truth_ratio_forget(&v, R, 1) == 0 && rel_close(v, exp(-1.0), 1e-15),
          "TR forget %.17g (want 1/e)", v);
    CHECK(t, metrics_truth_ratio_other(&v, R, 1) == 0 && rel_close(v, 1 - exp(-1.0), 1e-15),
          "TR other %.17g (want 1 - 1/e)", v);
    CHECK(t, metrics_truth_ratio_forget(&v, R + 1, 2) == 0 && v == 0.0, "TR forget {inf, 0} %g", v);
    CHECK(t, metrics_truth_ratio_other(&v, R + 1, 2) == 0 && v == 0.5, "TR other {inf, 0} %g", v);
    const double badl[] = {NAN};
    CHECK(t, metrics_truth_ratio(R, badl, pert, 1, 2) == METRICS_EDOMAIN, "TR NaN -> EDOMAIN");
    const double negr[] = {-1};
    CHECK(t, metrics_truth_ratio_forget(&v, negr, 1) == METRICS_EDOMAIN, "TR R < 0 -> EDOMAIN");

    const double la[] = {1.0, 0.0}, lp[] = {1.0, 1.0, log(2.0), log(2.0)};
    double q[2];
    CHECK(t,
          metrics_prob_normalized(q, la, lp, 2, 2) == 0 && rel_close(q[0], 1.0 / 3.0, 1e-15) &&
              rel_close(q[1], 0.5, 1e-15),
          "normalised probability %.17g %.17g (want 1/3, 1/2)", q[0], q[1]);
    CHECK(t, metrics_privleak(&v, 0.6, 0.5) == 0 && rel_close(v, 20.0, 1e-14), "privleak %g", v);
    CHECK(t, metrics_privleak(&v, 0.6, 0.0) == METRICS_EDOMAIN, "privleak AUC_retrain 0");

    const double lg[] = {-3, -1, -5, -2, -4};
    CHECK(t, metrics_min_k(&v, lg, 5, 40) == 0 && v == -4.5, "min-40%% of 5: %g (want -4.5)", v);
    CHECK(t, metrics_min_k(&v, lg, 5, 50) == 0 && v == -4.0, "min-50%% of 5: %g (ceil 2.5 = 3)", v);
    CHECK(t, metrics_min_k(&v, lg, 5, 1) == 0 && v == -5.0, "min-1%% of 5: %g (one token)", v);
    CHECK(t, metrics_min_k(&v, lg, 5, 100) == 0 && v == -3.0, "min-100%%: %g", v);
    double lg15[15];
    for (int i = 0; i < 15; i++) lg15[i] = -(double)i; /* lowest 6: -14..-9, mean -11.5 */
    CHECK(t, metrics_min_k(&v, lg15, 15, 40) == 0 && v == -11.5,
          "min-40%% of 15: %g (want 6 tokens, -11.5; 0.4 * 15 rounds above 6 in floating point)",
          v);
    const double lgi[] = {-1, -INFINITY, -2};
    CHECK(t, metrics_min_k(&v, lgi, 3, 40) == 0 && v == -INFINITY, "min-k with -inf %g", v);
    CHECK(t, metrics_min_k(&v, lg, 5, 0) == METRICS_EINVAL, "min-k k = 0 -> EINVAL");
    CHECK(t, metrics_min_k(&v, lg, 5, 100.5) == METRICS_EINVAL, "min-k k > 100 -> EINVAL");
    const double lgn[] = {-1, NAN};
    CHECK(t, metrics_min_k(&v, lgn, 2, 40) == METRICS_EDOMAIN, "min-k NaN -> EDOMAIN");
}

/* ---------------------------------------------------------------- --dump for metrics_ref.py */

static void put_hexstr(FILE *f, const char *s, size_t n)
{
    if (n == 0)
        fputs(" -", f);
    else {
        fputc(' ', f);
        for (size_t i = 0; i < n; i++) fprintf(f, "%02x", (unsigned char)s[i]);
    }
}

static void put_doubles(FILE *f, const double *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++) fprintf(f, " %a", x[i]);
}

/* Fails the run when a function refuses valid input: the dump must hold real results. */
static int dump_ok(int rc, const char *what)
{
    if (rc != METRICS_OK)
        fprintf(stderr, "test_metrics --dump: %s returned %s\n", what, metrics_strerror(rc));
    return rc == METRICS_OK;
}

static const char *const text_pieces[] = {"The",
                                          "the",
                                          "cat",
                                          "CAT",
                                          "sat",
                                          "on",
                                          "mat",
                                          "Mat.",
                                          "don't",
                                          "42",
                                          "x9y",
                                          "A1",
                                          "007",
                                          "caf\xc3\xa9",
                                          "na\xc3\xafve",
                                          "\xc3\x9c"
                                          "ber",
                                          "\xe4\xb8\xad\xe6\x96\x87",
                                          "\xe2\x84\xaa"
                                          "elvin",
                                          "\xe2\x84\xaa",
                                          "\xc4\xb0stanbul",
                                          "\xc4\xb0",
                                          "e\xcc\x81t\xc3\xa9",
                                          "\xe2\x80\x94",
                                          ",",
                                          ".",
                                          "!?",
                                          "(",
                                          ")",
                                          "_",
                                          "a_b",
                                          "\xf0\x9f\x98\x80",
                                          "\xef\xac\x81"
                                          "le",
                                          "stra\xc3\x9f"
                                          "e",
                                          "\xce\xa3\xce\xb1",
                                          "0",
                                          "ok"};
static const char *const text_seps[] = {" ", "  ", "\t", "\n", "", "-", ", ", "\xc2\xa0"};
#define NPIECES (int64_t)(sizeof text_pieces / sizeof text_pieces[0])
#define NSEPS (int64_t)(sizeof text_seps / sizeof text_seps[0])

static size_t make_text(char *buf, const int *idx, int n, rng *g)
{
    size_t o = 0;
    for (int i = 0; i < n; i++) {
        const char *p = text_pieces[idx[i]];
        memcpy(buf + o, p, strlen(p));
        o += strlen(p);
        if (i + 1 < n) {
            const char *s = text_seps[rng_int(g, 0, NSEPS - 1)];
            memcpy(buf + o, s, strlen(s));
            o += strlen(s);
        }
    }
    return o;
}

static int dump_ks(FILE *f, rng *g, int64_t n1, int64_t n2, double shift, int mode)
{
    /* mode 0: normal data; 1: rounded to 0.5 (ties); 2: complete separation */
    double *x1 = malloc((size_t)n1 * sizeof *x1), *x2 = malloc((size_t)n2 * sizeof *x2);
    for (int64_t i = 0; i < n1; i++) x1[i] = rng_normal(g);
    for (int64_t i = 0; i < n2; i++) x2[i] = rng_normal(g) + shift;
    if (mode == 1) {
        for (int64_t i = 0; i < n1; i++) x1[i] = round(2 * x1[i]) / 2;
        for (int64_t i = 0; i < n2; i++) x2[i] = round(2 * x2[i]) / 2;
    } else if (mode == 2) {
        for (int64_t i = 0; i < n2; i++) x2[i] = 100.0 + fabs(x2[i]);
    }
    metrics_ks r;
    int ok = dump_ok(metrics_ks_2samp(&r, x1, n1, x2, n2), "metrics_ks_2samp");
    fprintf(f, "ks %" PRId64 " %" PRId64, n1, n2);
    put_doubles(f, x1, n1);
    put_doubles(f, x2, n2);
    fprintf(f, " %" PRId64 " %a %a %a %d\n", r.d_num, r.d, r.p, r.log_p, r.exact);
    free(x1);
    free(x2);
    return ok;
}

static int dump(const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "test_metrics --dump: cannot write '%s'\n", path);
        return 1;
    }
    rng g = {20240607};
    int ok = 1;

    for (int rep = 0; rep < 300; rep++) { /* ROUGE-L on ids */
        int32_t vocab[12], c[60], r[60];
        int nv = (int)rng_int(&g, 1, 12);
        for (int i = 0; i < nv; i++) vocab[i] = (int32_t)(rng_u64(&g) >> 32);
        vocab[0] = rep % 3 == 0 ? INT32_MIN : (rep % 3 == 1 ? INT32_MAX : -1);
        int nc = rep < 10 ? (int)rng_int(&g, 0, 1) : (int)rng_int(&g, 0, 60);
        int nr = (int)rng_int(&g, 0, 60);
        for (int i = 0; i < nc; i++) c[i] = vocab[rng_int(&g, 0, nv - 1)];
        for (int i = 0; i < nr; i++) r[i] = vocab[rng_int(&g, 0, nv - 1)];
        metrics_rouge s;
        ok &= dump_ok(metrics_rouge_l_ids(&s, c, nc, r, nr), "metrics_rouge_l_ids");
        fprintf(f, "rouge_ids %d", nc);
        for (int i = 0; i < nc; i++) fprintf(f, " %" PRId32, c[i]);
        fprintf(f, " %d", nr);
        for (int i = 0; i < nr; i++) fprintf(f, " %" PRId32, r[i]);
        fprintf(f, " %" PRId64 " %a %a %a\n", s.lcs, s.precision, s.recall, s.f1);
    }

    for (int rep = 0; rep < 300; rep++) { /* ROUGE-L on text; candidates mutate references */
        int ri[40], ci[40], nr = (int)rng_int(&g, 0, 40), nc = 0;
        for (int i = 0; i < nr; i++) ri[i] = (int)rng_int(&g, 0, NPIECES - 1);
        for (int i = 0; i < nr && nc < 40; i++) {
            double u = rng_unif(&g);
            if (u < 0.15) continue;
            ci[nc++] = u < 0.3 ? (int)rng_int(&g, 0, NPIECES - 1) : ri[i];
        }
        char cb[40 * 16], rb[40 * 16];
        size_t cl = make_text(cb, ci, nc, &g), rl = make_text(rb, ri, nr, &g);
        metrics_rouge s;
        ok &= dump_ok(metrics_rouge_l_text(&s, cb, cl, rb, rl), "metrics_rouge_l_text");
        fputs("rouge_text", f);
        put_hexstr(f, cb, cl);
        put_hexstr(f, rb, rl);
        fprintf(f, " %" PRId64 " %a %a %a\n", s.lcs, s.precision, s.recall, s.f1);
    }

    for (int rep = 0; rep < 60; rep++) /* KS, small: the reference enumerates */
        ok &= dump_ks(f, &g, rng_int(&g, 1, 8), rng_int(&g, 1, 8), rng_unif(&g) * 2, rep % 2);
    const struct {
        int64_t n1, n2;
        double shift;
        int mode;
    } kc[] = {
        {30, 40, 0.0, 0},   {30, 40, 0.5, 0},     {30, 40, 1.5, 1},        {40, 30, 0.8, 1},
        {50, 50, 0.3, 0},   {37, 100, 0.6, 0},    {100, 37, -0.6, 1},      {200, 300, 0.3, 0},
        {300, 400, 1.0, 1}, {600, 600, 0.0, 2},   {600, 600, 4.0, 0},      {500, 700, 2.5, 0},
        {1, 1, 0.0, 0},     {1, 5000, 0.0, 0},    {12000, 15000, 0.03, 0}, {12000, 15000, 0.12, 1},
        {3, 20000, 1.0, 0}, {10001, 200, 0.2, 0},
    };
    for (size_t q = 0; q < sizeof kc / sizeof kc[0]; q++)
        ok &= dump_ks(f, &g, kc[q].n1, kc[q].n2, kc[q].shift, kc[q].mode);

    /* the exact null distribution directly: squares (closed form in the reference) and
     * random sizes (the reference counts lattice paths with big integers) */
    const int64_t sf[][3] = {{2000, 2000, 20 * 2000},  {2000, 2000, 150 * 2000},
                             {2000, 2000, 700 * 2000}, {2000, 2000, 2000 * 2000},
                             {150, 250, 3100},         {250, 150, 9000},
                             {233, 97, 14000},         {97, 233, 22601}};
    for (size_t q = 0; q < sizeof sf / sizeof sf[0]; q++) {
        double p, lp;
        ok &= dump_ok(metrics_ks_exact_sf(&p, &lp, sf[q][0], sf[q][1], sf[q][2]),
                      "metrics_ks_exact_sf");
        fprintf(f, "ks_sf %" PRId64 " %" PRId64 " %" PRId64 " %a %a\n", sf[q][0], sf[q][1],
                sf[q][2], p, lp);
    }

    const double kx[] = {0.001, 0.01, 0.05, 0.1, 0.2, 0.35,   0.5,    0.7,  0.79,
                         0.8,   0.81, 0.9,  1.0, 1.1, 1.2237, 1.3581, 1.5,  1.75,
                         2.0,   2.5,  3.0,  4.0, 5.0, 8.0,    12.0,   20.0, 27.3};
    for (size_t q = 0; q < sizeof kx / sizeof kx[0]; q++) {
        double p, lp;
        metrics_kolmogorov_sf(&p, &lp, kx[q]);
        fprintf(f, "kolm %a %a %a\n", kx[q], p, lp);
    }

    for (int rep = 0; rep < 150; rep++) { /* AUC */
        int np = (int)rng_int(&g, 1, 60), nn = (int)rng_int(&g, 1, 60);
        double ps[60], ns[60];
        for (int i = 0; i < np; i++)
            ps[i] = rep % 2 ? (double)rng_int(&g, 0, 8) : rng_normal(&g) + 0.5;
        for (int i = 0; i < nn; i++) ns[i] = rep % 2 ? (double)rng_int(&g, 0, 8) : rng_normal(&g);
        if (rep % 10 == 3) ps[0] = INFINITY, ns[0] = INFINITY;
        if (rep % 10 == 7) ps[0] = -INFINITY;
        double auc;
        ok &= dump_ok(metrics_roc_auc(&auc, ps, np, ns, nn), "metrics_roc_auc");
        fprintf(f, "auc %d %d", np, nn);
        put_doubles(f, ps, np);
        put_doubles(f, ns, nn);
        fprintf(f, " %a\n", auc);
    }

    for (int rep = 0; rep < 60; rep++) { /* means */
        int n = (int)rng_int(&g, 1, 50);
        double x[50], m, h;
        for (int i = 0; i < n; i++) x[i] = exp(3 * rng_normal(&g));
        ok &= dump_ok(metrics_mean(&m, x, n), "metrics_mean");
        ok &= dump_ok(metrics_harmonic_mean(&h, x, n), "metrics_harmonic_mean");
        fprintf(f, "means %d", n);
        put_doubles(f, x, n);
        fprintf(f, " %a %a\n", m, h);
    }

    for (int rep = 0; rep < 60; rep++) { /* truth ratio, normalised probability */
        int n = (int)rng_int(&g, 1, 30), k = (int)rng_int(&g, 1, 6);
        double para[30], pert[30 * 6], R[30], q[30], fa, oa, qm;
        for (int i = 0; i < n; i++) para[i] = 0.2 + 6 * rng_unif(&g);
        for (int i = 0; i < n * k; i++) pert[i] = 0.2 + 6 * rng_unif(&g);
        ok &= dump_ok(metrics_truth_ratio(R, para, pert, n, k), "metrics_truth_ratio");
        ok &= dump_ok(metrics_truth_ratio_forget(&fa, R, n), "metrics_truth_ratio_forget");
        ok &= dump_ok(metrics_truth_ratio_other(&oa, R, n), "metrics_truth_ratio_other");
        ok &= dump_ok(metrics_prob_normalized(q, para, pert, n, k), "metrics_prob_normalized");
        ok &= dump_ok(metrics_mean(&qm, q, n), "metrics_mean");
        fprintf(f, "tr %d %d", n, k);
        put_doubles(f, para, n);
        put_doubles(f, pert, (int64_t)n * k);
        put_doubles(f, R, n);
        fprintf(f, " %a %a", fa, oa);
        put_doubles(f, q, n);
        fprintf(f, " %a\n", qm);
    }

    const double ks_pct[] = {10, 20, 40, 50, 100, 33.5, 2.5, 40};
    for (int rep = 0; rep < 120; rep++) { /* Min-K% */
        int n = (int)rng_int(&g, 1, 80);
        double x[80], k = ks_pct[rep % 8], s;
        for (int i = 0; i < n; i++) x[i] = -12 * rng_unif(&g);
        if (rep % 8 == 7) n = 5 * (int)rng_int(&g, 1, 16); /* k n / 100 integral */
        ok &= dump_ok(metrics_min_k(&s, x, n, k), "metrics_min_k");
        fprintf(f, "mink %d %a", n, k);
        put_doubles(f, x, n);
        fprintf(f, " %a\n", s);
    }

    if (fclose(f) != 0) {
        fprintf(stderr, "test_metrics --dump: writing '%s' failed\n", path);
        return 1;
    }
    return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--dump") == 0) return dump(argv[2]);
    if (argc != 1) {
        fprintf(stderr, "usage: test_metrics [--dump FILE]\n");
        return 2;
    }
    tally t = {0, 0};
    test_rouge(&t);
    test_ks(&t);
    test_auc(&t);
    test_means(&t);
    printf("metrics.unit: %d checks, %d failed\n", t.checks, t.failures);
    return t.failures ? 1 : 0;
}
