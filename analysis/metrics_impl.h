/* analysis/metrics_impl.h — what the metrics files (metrics.c, metrics_ks.c) share and
 * metrics.h does not promise: the qsort order of doubles. Internal to analysis/. */
#ifndef LETHE_METRICS_IMPL_H
#define LETHE_METRICS_IMPL_H

/* qsort comparison of two doubles, ascending (no NaN among them). */
int metrics_cmp_double(const void *a, const void *b);

#endif
