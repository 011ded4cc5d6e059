/* analysis/metrics_muse.h — MUSE's definitions where they differ from lethe's defaults
 * (the MUSE reference code, swj0419/muse_bench; facts in io/DATASETS.md "MUSE"):
 *   Min-K% of a text  the mean of the m = int(n * k / 100) lowest per-token
 *                     log-probabilities (Python's int(): truncation, so m can be 0 for
 *                     short texts, which is METRICS_EDOMAIN here; metrics_min_k rounds up);
 *                     MUSE's "Min-40%" value is minus this mean.
 *   MIA AUC           the reference's forget_holdout AUC: label 0 forget, 1 holdout,
 *                     score -Min-K% = the mean above, so AUC = P(s_holdout > s_forget)
 *                     (ties 1/2); a model that memorised the forget set scores near 0.
 *   KnowMem answer    the decoded greedy output cut before the first "\n\n", then before
 *                     the first "\nQuestion", then before the first "Question:" (in that
 *                     order, as the reference's get_prefix_before_words_occur).
 * Pure functions, metrics.h's contract (status codes, no I/O). */
#ifndef LETHE_METRICS_MUSE_H
#define LETHE_METRICS_MUSE_H

#include <stddef.h>
#include <stdint.h>

/* MUSE's Min-K% of logp[0..n); k_percent in (0, 100]. */
int metrics_min_k_muse(double *score, const double *logp, int64_t n, double k_percent);

/* MUSE's forget-vs-holdout AUC from the two sets' metrics_min_k_muse scores. */
int metrics_muse_auc(double *auc, const double *forget, int64_t nf, const double *holdout,
                     int64_t nh);

/* The length of KnowMem's answer in text[0..len): the prefix before the stop strings. */
size_t metrics_muse_stop(const char *text, size_t len);

#endif
