/* analysis/metrics_impl.h — what the metrics files (metrics.c, metrics_ks.c) share and
 * metrics.h does not promise: the qsort order of doubles, the mean of the m lowest
 * log-probabilities (Min-K% for a given count, metrics.c). Internal to analysis/. */
#ifndef LETHE_METRICS_IMPL_H
#define LETHE_METRICS_IMPL_H

/* qsort comparison of two doubles, ascending (no NaN among them). */
int metrics_cmp_double(const void *a, const void *b);

/* The mean of the m lowest of logp[0..n) (1 <= m <= n; checked by the callers); NaN or
 * +inf among them: METRICS_EDOMAIN. */
#include <stdint.h>
int metrics_min_m(double *score, const double *logp, int64_t n, int64_t m);

#endif
