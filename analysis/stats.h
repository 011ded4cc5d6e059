/* analysis/stats.h — paired comparisons of two methods over seeds, and Pareto fronts.
 *
 * Contract (pure functions, no MPI, no allocation but what the caller passes):
 *   - stats_paired_compare: a[i] and b[i] are the two methods' values on the same seed i
 *     (i < n; a pair with a NaN on either side is left out). The differences d = a − b
 *     give the mean, a percentile-bootstrap 95 % interval of the mean and the count of
 *     seeds where A beats B (d > 0 when higher is better, d < 0 when lower is).
 *   - The bootstrap is deterministic: STATS_BOOT_N resamples of the n differences, drawn
 *     with replacement by splitmix64 seeded with STATS_BOOT_SEED (index = the generator's
 *     output reduced to [0, n) by rejection, so every index is equally likely). The
 *     interval is [m(k), m(B−1−k)] of the sorted resample means m, k = floor(0.025·B)
 *     (B = 10000: the 251st and the 9750th). Same inputs, same interval, on any machine.
 *   - A difference is "shown" only when the interval excludes 0 (lo > 0 or hi < 0) over
 *     at least STATS_MIN_SHOWN seeds, and the seeds' differences are not all the same
 *     (`same`: max − min ≤ STATS_SAME_REL × the largest |a_i| or |b_i|, rounding apart:
 *     the seeds did not vary the runs, as when a forget set fits in one batch and a
 *     method reads no other data; n such seeds are one observation, and the interval is
 *     a point); with n < 2 there is no interval. With 2 seeds the
 *     percentile interval of the resample means is exactly [min, max] of the two
 *     differences, so it excludes 0 whenever both seeds agree in sign (a coin's 1 in 2):
 *     nothing is shown from 2 seeds either. The percentile bootstrap is too
 *     narrow for few seeds (with n seeds an exact sign-flip test cannot reach p < 0.05
 *     before n = 6: its smallest two-sided p is 2 / 2^n), which the report says.
 *   - stats_pareto: point i is on the front when no other point has x ≥ x_i and y ≥ y_i
 *     with one of them strictly greater (both maximised); points with a NaN are never on
 *     it; equal points are all on it. */
#ifndef LETHE_STATS_H
#define LETHE_STATS_H

#include <stddef.h>
#include <stdint.h>

#define STATS_BOOT_N 10000
#define STATS_BOOT_SEED UINT64_C(0x1e7e5eed)
#define STATS_ALPHA 0.05
#define STATS_MIN_SHOWN 3 /* seeds a shown difference needs at least */
#define STATS_SAME_REL 1e-6 /* differences this close, relative to the values, are the same */

typedef struct {
    int n;          /* pairs with both values */
    double mean;    /* mean of a − b; NaN when n = 0 */
    double lo, hi;  /* bootstrap 95 % interval of the mean; NaN when n < 2 */
    int wins, ties; /* seeds where A beats B; seeds with a − b = 0 */
    int same;       /* n >= 2 and every seed's a − b the same (STATS_SAME_REL) */
} stats_paired;

/* splitmix64: the next value of the generator whose state is *s. */
uint64_t stats_rng_next(uint64_t *s);
/* Uniform in [0, n) (n > 0), by rejection of the generator's last partial block. */
uint64_t stats_rng_below(uint64_t *s, uint64_t n);

/* The bootstrap interval of the mean of d[0..n) (n >= 2, no NaN): B resamples from seed,
 * work holds B doubles. */
void stats_boot_interval(double *lo, double *hi, const double *d, int n, int B, uint64_t seed,
                         double *work);

/* The paired comparison; higher_better says which sign of a − b is a win. d holds n
 * doubles and work STATS_BOOT_N doubles (scratch). */
void stats_paired_compare(stats_paired *out, const double *a, const double *b, int n,
                          int higher_better, double *d, double *work);

/* 1 when the interval excludes 0 over at least STATS_MIN_SHOWN seeds that differ. */
int stats_shown(const stats_paired *p);

/* on_front[i] = 1 for the non-dominated points of (x, y), both maximised; returns their
 * count. */
int stats_pareto(int *on_front, const double *x, const double *y, int n);

#endif
