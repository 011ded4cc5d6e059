/* analysis/metrics_muse.c — MUSE's Min-K% rounding, its forget-vs-holdout AUC and
 * KnowMem's stop strings (metrics_muse.h); the sorting, the AUC and ROUGE-L are
 * metrics.c's and metrics_text.c's. */
#include "metrics_muse.h"

#include <string.h>

#include "metrics.h"
#include "metrics_impl.h"

int metrics_min_k_muse(double *score, const double *logp, int64_t n, double k_percent)
{
    if (!score || !logp || n < 1 || !(k_percent > 0.0) || !(k_percent <= 100.0))
        return METRICS_EINVAL;
    /* int(len(all_prob) * ratio) with ratio the double nearest k / 100 (0.4 for 40) */
    int64_t m = (int64_t)((double)n * (k_percent / 100.0));
    if (m < 1) return METRICS_EDOMAIN;
    return metrics_min_m(score, logp, n, m);
}

int metrics_muse_auc(double *auc, const double *forget, int64_t nf, const double *holdout,
                     int64_t nh)
{
    return metrics_roc_auc(auc, holdout, nh, forget, nf);
}

/* The first occurrence of word in s[0..n), or n. */
static size_t find(const char *s, size_t n, const char *word)
{
    size_t w = strlen(word);
    for (size_t i = 0; i + w <= n; i++)
        if (memcmp(s + i, word, w) == 0) return i;
    return n;
}

size_t metrics_muse_stop(const char *text, size_t len)
{
    static const char *const stop[] = {"\n\n", "\nQuestion", "Question:"};
    for (size_t i = 0; i < sizeof stop / sizeof stop[0]; i++) len = find(text, len, stop[i]);
    return len;
}
