/* tests/test_metrics_ks.c — the KS checks of test_metrics (test_metrics.c's comment
 * gives them): D with ties against a by-definition count, exact p-values against
 * brute-force enumeration and closed forms, the exact/asymptotic switch, and the
 * Kolmogorov function's two series. */
#include "analysis/metrics.h"

#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_metrics.h"

/* ---------------------------------------------------------------- KS */

/* D n1 n2 by definition: at every pooled value v, |n2 #{x1 <= v} - n1 #{x2 <= v}|. */
static int64_t ks_dnum_bydef(const double *x1, int n1, const double *x2, int n2)
{
    int64_t best = 0;
    for (int s = 0; s < 2; s++) {
        const double *src = s ? x2 : x1;
        int ns = s ? n2 : n1;
        for (int k = 0; k < ns; k++) {
            double v = src[k];
            int64_t c1 = 0, c2 = 0;
            for (int i = 0; i < n1; i++) c1 += x1[i] <= v;
            for (int i = 0; i < n2; i++) c2 += x2[i] <= v;
            int64_t diff = llabs(c1 * n2 - c2 * n1);
            if (diff > best) best = diff;
        }
    }
    return best;
}

/* P(D' n1 n2 >= h) by enumerating all C(n1+n2, n1) label assignments of the pooled order
 * statistics (bit set: a sample-1 value). */
static double ks_p_bruteforce(int n1, int n2, int64_t h)
{
    int N = n1 + n2;
    int64_t hit = 0, total = 0;
    for (uint32_t mask = 0; mask < (1u << N); mask++) {
        if (__builtin_popcount(mask) != n1) continue;
        total++;
        int64_t i = 0, j = 0, best = 0;
        for (int b = 0; b < N; b++) {
            if (mask >> b & 1u)
                i++;
            else
                j++;
            int64_t diff = llabs(i * n2 - j * n1);
            if (diff > best) best = diff;
        }
        hit += best >= h;
    }
    return (double)hit / (double)total;
}

static double log_choose(int64_t n, int64_t k)
{
    return lgamma((double)n + 1) - lgamma((double)k + 1) - lgamma((double)(n - k) + 1);
}

void test_ks(tally *t)
{
    metrics_ks r;
    /* ties: D evaluated after all tied values, at 1, 2, 3, 4: |1/4-0|, |3/4-1/4|, ... */
    const double t1[] = {1, 2, 2, 3}, t2[] = {2, 3, 3, 4};
    CHECK(t, metrics_ks_2samp(&r, t1, 4, t2, 4) == 0 && r.d == 0.5 && r.d_num == 8 && r.exact,
          "KS ties: D %.17g d_num %" PRId64 " (want 0.5, 8)", r.d, r.d_num);
    const double e1[] = {1, 1}, e2[] = {1, 1, 1};
    CHECK(t, metrics_ks_2samp(&r, e1, 2, e2, 3) == 0 && r.d == 0.0 && r.p == 1.0 && r.log_p == 0,
          "KS all tied: D %.17g p %.17g (want 0, 1)", r.d, r.p);
    const double s1[] = {1, 2, 3}, s2[] = {4, 5, 6};
    CHECK(t, metrics_ks_2samp(&r, s1, 3, s2, 3) == 0 && r.d == 1.0 && rel_close(r.p, 0.1, 1e-15),
          "KS separated 3/3: D %.17g p %.17g (want 1, 2/C(6,3) = 0.1)", r.d, r.p);
    const double u1[] = {0}, u2[] = {1};
    CHECK(t, metrics_ks_2samp(&r, u1, 1, u2, 1) == 0 && r.d == 1.0 && r.p == 1.0,
          "KS 1/1: D %.17g p %.17g (want 1, 1)", r.d, r.p);
    const double nanv[] = {1, NAN};
    CHECK(t, metrics_ks_2samp(&r, nanv, 2, s2, 3) == METRICS_EDOMAIN, "KS NaN -> EDOMAIN");
    CHECK(t, metrics_ks_2samp(&r, s1, 0, s2, 3) == METRICS_EINVAL, "KS empty -> EINVAL");

    /* every n1, n2 <= 8 against enumeration, tie-free and tied data */
    rng g = {12345};
    double worst = 0.0;
    for (int n1 = 1; n1 <= 8; n1++) {
        for (int n2 = 1; n2 <= 8; n2++) {
            for (int tied = 0; tied < 2; tied++) {
                for (int rep = 0; rep < 3; rep++) {
                    double x1[8], x2[8], shift = rep * 0.7;
                    for (int i = 0; i < n1; i++)
                        x1[i] = tied ? (double)rng_int(&g, 0, 3) : rng_normal(&g);
                    for (int i = 0; i < n2; i++)
                        x2[i] = tied ? (double)rng_int(&g, 0, 3) + rep : rng_normal(&g) + shift;
                    int64_t h = ks_dnum_bydef(x1, n1, x2, n2);
                    double pb = ks_p_bruteforce(n1, n2, h);
                    int rc = metrics_ks_2samp(&r, x1, n1, x2, n2);
                    double err = fabs(r.p - pb) / pb;
                    if (err > worst) worst = err;
                    CHECK(t,
                          rc == 0 && r.d_num == h && r.exact && rel_close(r.p, pb, 1e-13) &&
                              fabs(r.log_p - log(pb)) <= 1e-13,
                          "KS %dx%d tied %d: d_num %" PRId64 " (want %" PRId64 ") p %.17g "
                          "(enumeration %.17g) log_p %.17g",
                          n1, n2, tied, r.d_num, h, r.p, pb, r.log_p);
                }
            }
        }
    }
    printf("KS exact vs enumeration, n1, n2 <= 8: max relative error %.3g\n", worst);

    /* n1 = n2 = n: P(D' >= c/n) = 2 sum_{k>=1} (-1)^(k-1) C(2n, n - k c) / C(2n, n) */
    const int64_t n = 3000;
    const int64_t cs[] = {3, 40, 80, 160, 400, 1200, 3000};
    for (size_t q = 0; q < sizeof cs / sizeof cs[0]; q++) {
        int64_t c = cs[q];
        double l1 = log_choose(2 * n, n - c) - log_choose(2 * n, n), s = 0.0;
        for (int64_t k = 1; n - k * c >= 0; k++) {
            double term = exp(log_choose(2 * n, n - k * c) - log_choose(2 * n, n) - l1);
            s += (k % 2 ? term : -term);
            if (term < 1e-18) break;
        }
        double lref = log(2.0) + l1 + log(s), p, lp;
        int rc = metrics_ks_exact_sf(&p, &lp, n, n, c * n);
        CHECK(t,
              rc == 0 && fabs(lp - lref) <= 1e-9 && (lref < -690 || rel_close(p, exp(lref), 1e-9)),
              "KS %" PRId64 "x%" PRId64 " h = %" PRId64 "*n: log_p %.17g (closed form %.17g) p "
              "%.17g",
              n, n, c, lp, lref, p);
        printf("KS %" PRId64 "x%" PRId64 ", D = %" PRId64 "/n: log_p %.12g, closed form %.12g\n", n,
               n, c, lp, lref);
    }

    /* n1 = 1: the single sample-1 value sits at rank k of m + 1, D' n1 n2 = max(k, m - k) */
    const int64_t ms[] = {9, 10000, 10001};
    for (size_t q = 0; q < 3; q++) {
        int64_t m = ms[q];
        double *y = malloc((size_t)m * sizeof *y), x = (double)(m - 2) + 0.5;
        for (int64_t i = 0; i < m; i++) y[i] = (double)i; /* x has rank m - 1: D' = m - 1 */
        int rc = metrics_ks_2samp(&r, &x, 1, y, m);
        free(y);
        int64_t hit = 0;
        for (int64_t k = 0; k <= m; k++) hit += (k > m - k ? k : m - k) >= m - 1;
        double pref = (double)hit / (double)(m + 1);
        int want_exact = m <= 10000;
        CHECK(t, rc == 0 && r.d_num == m - 1 && r.exact == want_exact,
              "KS 1x%" PRId64 ": d_num %" PRId64 " exact %d (want %" PRId64 ", %d)", m, r.d_num,
              r.exact, m - 1, want_exact);
        if (want_exact)
            CHECK(t, rel_close(r.p, pref, 1e-12), "KS 1x%" PRId64 ": p %.17g (want %.17g)", m, r.p,
                  pref);
        else {
            double pa, la;
            double en = (double)m / (double)(m + 1);
            metrics_kolmogorov_sf(&pa, &la, sqrt(en) * r.d);
            CHECK(t, r.p == pa, "KS 1x%" PRId64 " asymptotic: p %.17g (want Q = %.17g)", m, r.p,
                  pa);
        }
    }

    /* symmetry of the exact null distribution */
    for (int rep = 0; rep < 20; rep++) {
        int64_t a = rng_int(&g, 1, 150), b = rng_int(&g, 1, 150);
        int64_t h = rng_int(&g, 1, a * b);
        double p1, l1, p2, l2;
        metrics_ks_exact_sf(&p1, &l1, a, b, h);
        metrics_ks_exact_sf(&p2, &l2, b, a, h);
        CHECK(t, rel_close(p1, p2, 1e-12) && fabs(l1 - l2) <= 1e-12,
              "KS sf(%" PRId64 ",%" PRId64 ",%" PRId64 ") %.17g != swapped %.17g", a, b, h, p1, p2);
    }

    /* Kolmogorov: the branch below x = 0.8 against the alternating series */
    for (double x = 0.3; x <= 6.0; x += 0.05) {
        double s = 0.0;
        for (int k = 200; k >= 1; k--) s += (k % 2 ? 1.0 : -1.0) * exp(-2.0 * k * k * x * x);
        double p, lp;
        metrics_kolmogorov_sf(&p, &lp, x);
        CHECK(t, rel_close(p, 2 * s, 1e-12) && fabs(lp - log(2 * s)) <= 1e-12,
              "Kolmogorov Q(%g) = %.17g, series %.17g", x, p, 2 * s);
    }
    double p, lp;
    metrics_kolmogorov_sf(&p, &lp, 40.0);
    CHECK(t, p == 0.0 && fabs(lp - (log(2.0) - 3200.0)) <= 1e-12,
          "Kolmogorov Q(40): p %.17g log_p %.17g (want 0, ln 2 - 3200)", p, lp);
    metrics_kolmogorov_sf(&p, &lp, 0.0);
    CHECK(t, p == 1.0 && lp == 0.0, "Kolmogorov Q(0) = %g", p);
}
