/* analysis/markov_kl.c — the KL-to-truth math of Markov-chain evaluation (markov_kl.h). */
#include "markov_kl.h"

#include <math.h>
#include <stdlib.h>

#include "metrics.h"

int markov_context(int token, int S, int bos)
{
    if (token == bos) return S;
    return token >= 0 && token < S ? token : -1;
}

const double *markov_true_dist(const double *P, const double *init, int S, int ctx)
{
    return ctx < S ? P + (size_t)ctx * S : init;
}

double markov_negentropy(const double *p, int S)
{
    double h = 0.0;
    for (int j = 0; j < S; j++)
        if (p[j] > 0) h += p[j] * log(p[j]);
    return h;
}

void markov_log_targets(float *lq, const double *p, int S, int v0, int vl)
{
    for (int j = 0; j < vl; j++) {
        int v = v0 + j;
        lq[j] = v < S && p[v] > 0 ? (float)log(p[v]) : -INFINITY;
    }
}

double markov_row_kl(const markov_row *r)
{
    return r->n > 0 ? r->kl / r->n : NAN;
}

int markov_aggregate(const markov_row *r, int64_t n, double *kl, double *prob)
{
    double k = 0, t = 0, *p = malloc(sizeof(double) * (size_t)(n + 1));
    if (!p) return -1;
    for (int64_t i = 0; i < n; i++) {
        k += r[i].kl;
        t += r[i].n;
        p[i] = exp(-r[i].nll);
    }
    *kl = t > 0 ? k / t : NAN;
    if (metrics_mean(prob, p, n)) *prob = NAN;
    free(p);
    return 0;
}
