/* model/objectives.c — GA, GradDiff, NPO and SimNPO as per-sequence weights. */
#include "objectives.h"

#include <math.h>

static const char *const names[] = {"ga", "graddiff", "npo", "simnpo"};

const char *method_name(lethe_method m) { return names[m]; }

/* log sigmoid(z), stable for large |z| */
static double log_sigmoid(double z) { return z >= 0 ? -log1p(exp(-z)) : z - log1p(exp(z)); }
static double sigmoid(double z)
{
    return z >= 0 ? 1.0 / (1.0 + exp(-z)) : exp(z) / (1.0 + exp(z));
}

double forget_loss(lethe_method m, double beta, double gamma, double s, double n, double s_ref,
                   double *dlds, double *sigma)
{
    double len = n > 0 ? n : 1.0;
    switch (m) {
    case METHOD_GA:
    case METHOD_GRADDIFF:
        *dlds = 1.0 / len;
        *sigma = 1.0;
        return s / len;
    case METHOD_NPO: {
        double x = beta * (s - s_ref);
        *sigma = sigmoid(x);
        *dlds = 2.0 * *sigma;
        return -(2.0 / beta) * log_sigmoid(-x);
    }
    case METHOD_SIMNPO: {
        double x = beta / len * s + gamma;
        *sigma = sigmoid(x);
        *dlds = 2.0 / len * *sigma;
        return -(2.0 / beta) * log_sigmoid(-x);
    }
    }
    *dlds = 0;
    *sigma = 0;
    return 0;
}

double unlearn_objective_seq(const struct lethe_objective *o, int b, double s, double n,
                             double *w)
{
    unlearn_ctx *c = o->ctx;
    if (c->is_forget[b]) {
        double dlds, sig;
        double l = forget_loss(c->method, c->beta, c->gamma, s, n,
                               c->s_ref ? c->s_ref[b] : 0.0, &dlds, &sig);
        double scale = c->c_f / (c->n_forget > 0 ? c->n_forget : 1.0);
        *w = scale * dlds;
        c->loss_forget += scale * l;
        c->sigma_sum += sig;
        c->forget_logp += n > 0 ? s / n : 0.0;
        return scale * l;
    }
    if (c->method == METHOD_GA || c->retain_tokens <= 0) {
        *w = 0.0;
        return 0.0;
    }
    double scale = c->c_r / c->retain_tokens;
    double l = ((c->negent ? c->negent[b] : 0.0) - s) * scale;
    *w = -scale;
    c->loss_retain += l;
    return l;
}
