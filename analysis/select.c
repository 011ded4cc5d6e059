/* analysis/select.c — the selection rule of a protocol study (see select.h). */
#include "select.h"

#include <math.h>

/* a better than b under the rule: forget quality, then the smaller probability gap */
static int better(const select_candidate *a, const select_candidate *b)
{
    double tol = 1e-12 * fmax(1.0, fabs(b->mean_log10_fq));
    if (a->mean_log10_fq > b->mean_log10_fq + tol) return 1;
    if (a->mean_log10_fq < b->mean_log10_fq - tol) return 0;
    /* a gap that is not finite loses to a finite one */
    if (!isfinite(b->forget_prob_gap)) return isfinite(a->forget_prob_gap);
    return isfinite(a->forget_prob_gap) && a->forget_prob_gap < b->forget_prob_gap;
}

int select_fq_at_mu(select_candidate *c, int n, double tau, double mu_origin, int *fallback)
{
    int best = -1, top_mu = -1;
    for (int i = 0; i < n; i++) {
        c[i].eligible = isfinite(c[i].mean_mu) && isfinite(c[i].mean_log10_fq) &&
                        isfinite(mu_origin) && c[i].mean_mu >= tau * mu_origin;
        if (c[i].eligible && (best < 0 || better(&c[i], &c[best]))) best = i;
        if (isfinite(c[i].mean_mu) && (top_mu < 0 || c[i].mean_mu > c[top_mu].mean_mu)) top_mu = i;
    }
    *fallback = best < 0;
    return best >= 0 ? best : top_mu;
}
