/* tests/test_stats.c — analysis/stats.h: paired comparisons and Pareto fronts.
 *
 * Without arguments: hand-computed cases in C (a planted difference is shown with every
 * seed a win; identical methods give 0 [0, 0], nothing shown; the same difference on
 * every seed is not shown, one differing seed makes it a test; NaN pairs are left out;
 * one pair has no interval; lower-is-better wins; a small Pareto front by hand).
 * With --dump FILE: every case (those and seeded random ones: n = 2..5 for the exact
 * enumeration, n = 200 for the large-sample check, Pareto sets with ties and NaN) as one
 * JSON line with its inputs and lethe's outputs, for tests/stats_ref.py to recompute
 * independently. The first line gives the number of cases that follow. */
#include "analysis/stats.h"
#include "check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

CHECK_COUNTERS;

static double work[STATS_BOOT_N], dbuf[1024];

static void json_array(FILE *f, const char *key, const double *v, int n)
{
    fprintf(f, "\"%s\": [", key);
    for (int i = 0; i < n; i++) {
        if (isnan(v[i]))
            fprintf(f, "%snull", i ? ", " : "");
        else
            fprintf(f, "%s%.17g", i ? ", " : "", v[i]);
    }
    fputs("]", f);
}

static void json_num(FILE *f, const char *key, double v)
{
    if (isnan(v))
        fprintf(f, ", \"%s\": null", key);
    else
        fprintf(f, ", \"%s\": %.17g", key, v);
}

static void dump_paired(FILE *f, const char *name, const double *a, const double *b, int n,
                        int higher)
{
    stats_paired p;
    stats_paired_compare(&p, a, b, n, higher, dbuf, work);
    fprintf(f, "{\"kind\": \"paired\", \"name\": \"%s\", \"higher\": %d, ", name, higher);
    json_array(f, "a", a, n);
    fputs(", ", f);
    json_array(f, "b", b, n);
    fprintf(f, ", \"n\": %d, \"wins\": %d, \"ties\": %d, \"shown\": %d", p.n, p.wins, p.ties,
            stats_shown(&p));
    json_num(f, "mean", p.mean);
    json_num(f, "lo", p.lo);
    json_num(f, "hi", p.hi);
    fprintf(f, ", \"B\": %d, \"seed\": %llu}\n", STATS_BOOT_N, (unsigned long long)STATS_BOOT_SEED);
}

static void dump_pareto(FILE *f, const char *name, const double *x, const double *y, int n)
{
    int front[256];
    int k = stats_pareto(front, x, y, n);
    fprintf(f, "{\"kind\": \"pareto\", \"name\": \"%s\", ", name);
    json_array(f, "x", x, n);
    fputs(", ", f);
    json_array(f, "y", y, n);
    fprintf(f, ", \"count\": %d, \"front\": [", k);
    for (int i = 0; i < n; i++) fprintf(f, "%s%d", i ? ", " : "", front[i]);
    fputs("]}\n", f);
}

/* A uniform in [0, 1) from the test's own generator (not the one under test's seed). */
static double unif(uint64_t *s)
{
    return (double)(stats_rng_next(s) >> 11) * 0x1.0p-53;
}

static double normal(uint64_t *s)
{
    double u = unif(s), v = unif(s);
    return sqrt(-2 * log(1 - u)) * cos(6.283185307179586 * v);
}

#define NCASES 22

static int dump(const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        return 1;
    }
    fprintf(f, "{\"cases\": %d}\n", NCASES);
    uint64_t s = 12345;
    double a[256], b[256], x[256], y[256];
    int cases = 0;
    /* planted: A far ahead on every seed; identical; each with 5 seeds */
    for (int i = 0; i < 5; i++) b[i] = -3 + 0.3 * normal(&s), a[i] = b[i] + 2 + 0.1 * normal(&s);
    dump_paired(f, "planted", a, b, 5, 1), cases++;
    dump_paired(f, "identical", b, b, 5, 1), cases++;
    dump_paired(f, "planted_lower_better", a, b, 5, 0), cases++;
    /* with NaN pairs; one pair; two pairs */
    double an[6] = {1, NAN, 3, 4, 5, 6}, bn[6] = {0.5, 2, NAN, 3.5, 5.5, 5};
    dump_paired(f, "nan_pairs", an, bn, 6, 1), cases++;
    dump_paired(f, "one_pair", an, bn, 1, 1), cases++;
    dump_paired(f, "two_pairs", an + 3, bn + 3, 2, 1), cases++;
    /* the same difference on every seed (to rounding): a point interval, not shown */
    double as[4] = {0.98, 0.98, 0.98 + 1e-12, 0.98}, bs[4] = {0.66, 0.66, 0.66, 0.66};
    dump_paired(f, "same_every_seed", as, bs, 4, 1), cases++;
    bs[1] = 0.6; /* one seed differs: the interval excludes 0 and it is shown */
    dump_paired(f, "one_seed_differs", as, bs, 4, 1), cases++;
    /* random, n = 2..5 (exact enumeration in Python), two per n */
    for (int n = 2; n <= 5; n++)
        for (int r = 0; r < 2; r++) {
            for (int i = 0; i < n; i++) a[i] = normal(&s), b[i] = normal(&s) + 0.5 * r;
            char name[32];
            snprintf(name, sizeof name, "exact_n%d_%d", n, r);
            dump_paired(f, name, a, b, n, 1), cases++;
        }
    /* large sample: the interval near mean ± 1.96 sd / sqrt(n) */
    for (int i = 0; i < 200; i++) a[i] = 1 + normal(&s), b[i] = normal(&s);
    dump_paired(f, "large_n200", a, b, 200, 1), cases++;
    /* Pareto sets: random, with ties and duplicates, with NaN, one point, all equal */
    for (int r = 0; r < 3; r++) {
        int n = 10 + 15 * r;
        for (int i = 0; i < n; i++) {
            x[i] = floor(unif(&s) * (r == 1 ? 5 : 1000)) / 10; /* r = 1: many ties */
            y[i] = floor(unif(&s) * (r == 1 ? 5 : 1000)) / 10;
        }
        if (r == 2) x[3] = NAN, y[7] = NAN;
        char name[32];
        snprintf(name, sizeof name, "pareto_random_%d", r);
        dump_pareto(f, name, x, y, n), cases++;
    }
    x[0] = 0.5, y[0] = -3;
    dump_pareto(f, "pareto_one", x, y, 1), cases++;
    for (int i = 0; i < 4; i++) x[i] = 0.5, y[i] = -2;
    dump_pareto(f, "pareto_equal", x, y, 4), cases++;
    int bad = fclose(f) != 0;
    if (cases != NCASES) {
        fprintf(stderr, "test_stats: %d cases written, NCASES says %d\n", cases, NCASES);
        return 1;
    }
    return bad;
}

static void hand_cases(void)
{
    stats_paired p;
    double a[5] = {-1, -1.2, -0.8, -1.1, -0.9}, b[5] = {-5, -6, -5.5, -4.8, -5.2};
    stats_paired_compare(&p, a, b, 5, 1, dbuf, work);
    CHECK(p.n == 5 && p.wins == 5 && p.ties == 0, "planted: n %d wins %d ties %d", p.n, p.wins,
          p.ties);
    CHECK(fabs(p.mean - 4.3) < 1e-12, "planted: mean %.17g, expected 4.3", p.mean);
    /* every resample mean lies within [min d, max d] = [3.9, 4.8] */
    CHECK(p.lo >= 3.9 - 1e-12 && p.hi <= 4.8 + 1e-12 && p.lo < p.hi, "planted: [%g, %g]", p.lo,
          p.hi);
    CHECK(stats_shown(&p), "planted: not shown");
    stats_paired_compare(&p, a, a, 5, 1, dbuf, work);
    CHECK(p.mean == 0 && p.lo == 0 && p.hi == 0 && p.ties == 5 && !stats_shown(&p),
          "identical: %g [%g, %g] ties %d", p.mean, p.lo, p.hi, p.ties);
    stats_paired_compare(&p, a, b, 5, 0, dbuf, work);
    CHECK(p.wins == 0, "lower is better: A wins %d, expected 0", p.wins);
    /* two seeds that agree in sign: the interval is [min, max] of the two differences and
     * excludes 0, yet nothing is shown from two seeds (STATS_MIN_SHOWN) */
    stats_paired_compare(&p, a, b, 2, 1, dbuf, work);
    CHECK(p.n == 2 && p.lo == 4.0 && p.hi == 4.8 && !stats_shown(&p),
          "two seeds: n %d [%g, %g] shown %d", p.n, p.lo, p.hi, stats_shown(&p));
    /* the seeds did not vary the runs (a forget set in one batch): the same difference
     * on 3 seeds is one observation, whose point interval excludes 0 — not shown; one
     * seed that differs makes it a test again */
    double sa[3] = {0.98, 0.98, 0.98}, sb[3] = {0.66, 0.66 + 1e-13, 0.66};
    stats_paired_compare(&p, sa, sb, 3, 1, dbuf, work);
    CHECK(p.n == 3 && p.same && p.lo > 0 && !stats_shown(&p),
          "same on every seed: n %d same %d [%g, %g] shown %d", p.n, p.same, p.lo, p.hi,
          stats_shown(&p));
    sb[1] = 0.5;
    stats_paired_compare(&p, sa, sb, 3, 1, dbuf, work);
    CHECK(!p.same && p.lo > 0 && stats_shown(&p), "one seed differs: same %d [%g, %g] shown %d",
          p.same, p.lo, p.hi, stats_shown(&p));
    double an[3] = {1, NAN, 2}, bn[3] = {0, 1, NAN};
    stats_paired_compare(&p, an, bn, 3, 1, dbuf, work);
    CHECK(p.n == 1 && p.mean == 1 && isnan(p.lo) && !stats_shown(&p),
          "one pair after NaN: n %d mean %g lo %g", p.n, p.mean, p.lo);
    /* determinism: the same call twice */
    double lo1, hi1, lo2, hi2, d[4] = {0.1, -0.3, 0.7, 0.2};
    stats_boot_interval(&lo1, &hi1, d, 4, STATS_BOOT_N, STATS_BOOT_SEED, work);
    stats_boot_interval(&lo2, &hi2, d, 4, STATS_BOOT_N, STATS_BOOT_SEED, work);
    CHECK(lo1 == lo2 && hi1 == hi2, "the bootstrap is not deterministic");
    /* Pareto by hand: (MU, log10 FQ) */
    double x[6] = {0.9, 0.8, 0.7, 0.85, 0.9, NAN}, y[6] = {-3, -1, -0.5, -2, -3, 0};
    int fr[6], want[6] = {1, 1, 1, 1, 1, 0};
    int k = stats_pareto(fr, x, y, 6);
    CHECK(k == 5, "pareto by hand: %d on the front, expected 5", k);
    for (int i = 0; i < 6; i++) CHECK(fr[i] == want[i], "pareto by hand: point %d", i);
    x[3] = 0.8; /* (0.8, -2) is now dominated by (0.8, -1) */
    k = stats_pareto(fr, x, y, 6);
    CHECK(k == 4 && !fr[3], "pareto: a dominated point at equal x stays off (%d)", k);
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "--dump")) return dump(argv[2]);
    hand_cases();
    printf("test_stats: %d checks, %d failures\n", checks, failures);
    return failures != 0;
}
