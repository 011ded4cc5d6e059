/* analysis/metrics.h — the pure metric functions of lethe's evaluation (DESIGN §6),
 * one header for three files: metrics_text.c (ROUGE-L), metrics_ks.c (the KS test) and
 * metrics.c (AUC, PrivLeak, means, truth ratios, probabilities, Min-K%).
 *
 * Contract: no MPI, no I/O, no global state; every function is reentrant. Inputs are
 * never modified. Each function returns METRICS_OK (0) or a negative metrics_status
 * and writes its outputs only on success. Functions that need scratch memory
 * allocate it with malloc and free it before returning (METRICS_ENOMEM if that fails).
 * Lengths are int64_t; a length below the stated minimum is METRICS_EINVAL, as is a
 * NULL pointer to data that the length says exists (a NULL array with length 0 is
 * accepted where length 0 is).
 *
 * The definitions follow the reference code of the TOFU/MUSE evaluations: ROUGE-L as
 * Google's rouge_score package computes it (default tokenizer, no stemming), the KS
 * test as SciPy's ks_2samp(method='auto', alternative='two-sided'), ROC AUC as
 * scikit-learn's roc_auc_score (= Mann–Whitney U / (n_pos n_neg)). Where lethe
 * deviates (the KS asymptotic branch) the function's comment says so. */
#ifndef LETHE_METRICS_H
#define LETHE_METRICS_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    METRICS_OK = 0,
    METRICS_EINVAL = -1,  /* NULL pointer, length below the minimum, parameter out of range */
    METRICS_EDOMAIN = -2, /* a value outside the function's domain (NaN, negative, ...) */
    METRICS_ENOMEM = -3,  /* scratch allocation failed */
} metrics_status;

/* A static string naming a status ("ok", "invalid argument", ...). */
const char *metrics_strerror(int status);

/* ---- ROUGE-L ----------------------------------------------------------------------
 * For a candidate c (the generated answer) and a reference r (the true answer):
 *     lcs       = length of the longest common subsequence of c and r
 *     precision = lcs / |c|,   recall = lcs / |r|,
 *     f1        = 2 * precision * recall / (precision + recall)  (that expression,
 *                 evaluated left to right, so it is bit-identical to rouge_score's
 *                 scoring.fmeasure), 0 when precision + recall == 0.
 * When c or r is empty every field is 0 (as rouge_score). LCS by dynamic programming:
 * O(|c| |r|) time, O(min(|c|, |r|)) memory. */
typedef struct {
    int64_t lcs;
    double precision, recall, f1;
} metrics_rouge;

/* Length of the longest common subsequence of a[0..na) and b[0..nb); na, nb >= 0. */
int metrics_lcs(int64_t *lcs, const int32_t *a, int64_t na, const int32_t *b, int64_t nb);

/* ROUGE-L on token ids (any int32 values; equality is id equality). */
int metrics_rouge_l_ids(metrics_rouge *out, const int32_t *cand, int64_t ncand, const int32_t *ref,
                        int64_t nref);

/* ROUGE-L on UTF-8 text cand[0..cand_len), ref[0..ref_len) (NUL bytes inside are
 * separators like any other non-alphanumeric byte). Words are those of rouge_score's
 * default tokenizer without stemming: lower-case the text (Python str.lower), replace
 * every run of characters outside [a-z0-9] by a space, split on spaces. Only ASCII
 * letters and digits survive, so a word is a maximal run of [A-Za-z0-9] folded to
 * lower case, plus the two non-ASCII characters whose Python lower-case contains ASCII
 * alphanumerics: U+212A KELVIN SIGN -> "k" (joins its neighbours' word) and U+0130
 * LATIN CAPITAL LETTER I WITH DOT ABOVE -> "i" followed by a break (its lower-case is
 * "i" + U+0307). Every other non-ASCII character, and every byte of invalid UTF-8,
 * separates words. Then ROUGE-L over the word sequences, as above. */
int metrics_rouge_l_text(metrics_rouge *out, const char *cand, size_t cand_len, const char *ref,
                         size_t ref_len);

/* ---- Two-sample Kolmogorov–Smirnov test (two-sided) ----------------------------------
 * F1, F2 are the right-continuous empirical CDFs of x1 (n1 values) and x2 (n2 values);
 *     D = sup_v |F1(v) - F2(v)|,
 * evaluated at every distinct value v of the pooled sample, so tied values move both
 * CDFs at once. D * n1 * n2 = max_v |n2 #{x1 <= v} - n1 #{x2 <= v}| is an integer and is
 * computed in integer arithmetic (d_num below); d is d_num / (n1 n2) rounded once.
 *
 * p-value (SciPy's method='auto' choice):
 *   max(n1, n2) <= 10000: exact, p = P(D' >= D) where D' is the statistic of the two
 *     samples under H0 for continuous data: all C(n1+n2, n1) orders of the pooled
 *     sample equally likely (as SciPy; with ties in the data this null is the
 *     continuous one, and the p-value is conservative). Computed by
 *     metrics_ks_exact_sf.
 *   otherwise: asymptotic, p = Q_KS(sqrt(en) D) with en = n1 n2 / (n1 + n2) and Q_KS
 *     the Kolmogorov survival function (metrics_kolmogorov_sf). SciPy >= 1.5 uses
 *     instead the one-sample finite-n distribution kstwo.sf(D, round(en)); the two
 *     differ by O(1/sqrt(en)) in the argument. This branch is never reached by the
 *     evaluation sets lethe ships (forget sets hold tens to hundreds of samples).
 * p is clipped to [0, 1]. log_p is ln p computed without forming p, so it stays finite
 * and accurate when p underflows a double. Supported range: the exact branch gives p to
 * ~1e-12 relative for p >= 1e-300 (the double's normal range, 2.2e-308, is the floor:
 * below it p loses digits as a denormal and is 0 under 4.9e-324), and log_p to ~1e-12
 * absolute for every p, tested down to ln p = -4153 (p ~ 1e-1804). The asymptotic
 * branch gives log_p for any argument. Callers that rank or threshold very small
 * p-values should use log_p. */
typedef struct {
    double d;      /* the statistic D */
    int64_t d_num; /* D * n1 * n2, exactly */
    double p;      /* two-sided p-value */
    double log_p;  /* ln p, finite whenever p > 0 mathematically */
    int exact;     /* 1: exact null distribution; 0: asymptotic */
} metrics_ks;

/* n1, n2 >= 1; no NaN (METRICS_EDOMAIN); +-inf are ordinary values. n1 * n2 < 2^62. */
int metrics_ks_2samp(metrics_ks *out, const double *x1, int64_t n1, const double *x2, int64_t n2);

/* The exact null survival function: for sizes n1, n2 >= 1 and h = D n1 n2 (an integer),
 * P(max over the lattice path of |i n2 - j n1| >= h), the path running from (0,0) to
 * (n1,n2) with i, j counting sample-1 and sample-2 values seen, uniform over the
 * C(n1+n2, n1) paths. h <= 0 gives p = 1; h > n1 n2 gives p = 0, log_p = -inf.
 * Cost O(number of inside cells) <= O(n1 n2) time, O(n1 + n2) memory: measured 0.06 s
 * at n1 = n2 = 3000 and under a second at 10000 x 10000 with D near 1 (the worst case).
 * Method: a first-passage decomposition that sums only positive terms (no 1 - x
 * cancellation), with each term's hypergeometric weight carried as mantissa and
 * binary exponent; see metrics_ks.c. Requires n1, n2 < 2^31. */
int metrics_ks_exact_sf(double *p, double *log_p, int64_t n1, int64_t n2, int64_t h);

/* Kolmogorov's limiting survival function Q(x) = 2 sum_{k>=1} (-1)^(k-1) exp(-2 k^2 x^2)
 * (for x >= 0.8; below, 1 - sqrt(2 pi)/x sum_{k>=1} exp(-(2k-1)^2 pi^2 / (8 x^2)), the
 * same function in its rapidly converging form). x <= 0 gives 1. log_p as above. */
void metrics_kolmogorov_sf(double *p, double *log_p, double x);

/* ---- ROC AUC ---------------------------------------------------------------------------
 * AUC = P(s_pos > s_neg) + 0.5 P(s_pos == s_neg) over all n_pos * n_neg pairs
 *     = (#{pos > neg} + 0.5 #{pos == neg}) / (n_pos n_neg)
 *     = U / (n_pos n_neg), U the Mann–Whitney statistic with average ranks for ties.
 * Pair counts are exact integers and the result is one correctly rounded division
 * (exact for n_pos n_neg < 2^52). O((n_pos + n_neg) log(n_pos + n_neg)).
 * npos, nneg >= 1; NaN scores are METRICS_EDOMAIN; +-inf are ordinary values. */
int metrics_roc_auc(double *auc, const double *pos, int64_t npos, const double *neg, int64_t nneg);

/* MUSE's PrivLeak = (auc - auc_retrain) / auc_retrain * 100; auc_retrain > 0. */
int metrics_privleak(double *out, double auc, double auc_retrain);

/* ---- Means -----------------------------------------------------------------------------
 * Sums use compensated (Neumaier) summation, so results are within a few ulps of the
 * exactly rounded value. */

/* Arithmetic mean of x[0..n), n >= 1. NaN, or both +inf and -inf present:
 * METRICS_EDOMAIN; otherwise an infinite value makes the mean that infinity. */
int metrics_mean(double *out, const double *x, int64_t n);

/* Harmonic mean n / sum_i 1/x_i of x[0..n), n >= 1. Any x_i == 0 gives 0 (the limit,
 * as scipy.stats.hmean); any negative or NaN x_i: METRICS_EDOMAIN. +inf is allowed
 * (contributes 1/inf = 0; all +inf gives +inf). */
int metrics_harmonic_mean(double *out, const double *x, int64_t n);

/* ---- Truth ratio and probabilities (TOFU) ---------------------------------------------
 * Inputs are per-sample token-mean NLLs l (nats, finite; METRICS_EDOMAIN otherwise).
 * l_para: (n) of the paraphrased answer; l_pert: (n, k) row-major, of k perturbed
 * answers per sample. n >= 1, k >= 1. */

/* Per sample R[s] = exp(mean_j l_pert[s][j] - l_para[s]) (may overflow to +inf or
 * underflow to 0: both are meaningful limits for the aggregates). */
int metrics_truth_ratio(double *r, const double *l_para, const double *l_pert, int64_t n,
                        int64_t k);

/* Forget-set aggregate mean_s min(R[s], 1/R[s]); R[s] >= 0 (+inf allowed). */
int metrics_truth_ratio_forget(double *out, const double *r, int64_t n);

/* Aggregate of the other sets: mean_s max(0, 1 - 1/R[s]); R[s] >= 0 (+inf allowed). */
int metrics_truth_ratio_other(double *out, const double *r, int64_t n);

/* Per-sample normalised probability of the utility sets:
 *     q[s] = p(a) / (p(a) + sum_j p(pert_j)),  p = exp(-l),
 * computed as 1 / (1 + sum_j exp(l_ans[s] - l_pert[s][j])) so that nothing underflows.
 * l_ans: (n), l_pert: (n, k) row-major. The set's value is metrics_mean of q. */
int metrics_prob_normalized(double *q, const double *l_ans, const double *l_pert, int64_t n,
                            int64_t k);

/* ---- Min-K% membership score --------------------------------------------------------
 * The mean of the m lowest of the n per-token log-probabilities logp[0..n), where
 *     m = ceil(k_percent * n / 100)   (the product k_percent * n is formed first, so
 *                                      integer k_percent gives exact integer rounding),
 * clamped to 1 <= m <= n. k_percent in (0, 100] (DESIGN default 40), n >= 1. Higher
 * means the sequence looks more like training data. NaN or +inf log-probabilities are
 * METRICS_EDOMAIN; -inf is allowed (a selected -inf makes the score -inf). */
int metrics_min_k(double *score, const double *logp, int64_t n, double k_percent);

#endif
