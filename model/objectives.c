/* model/objectives.c — GA, GradDiff, NPO and SimNPO as per-sequence weights; WGA and
 * SatImp as per-token weights. */
#include "objectives.h"

#include <math.h>

#include "objective_pairs.h"

static const char *const names[] = {"ga",     "graddiff", "npo",    "simnpo", "wga",
                                    "satimp", "ceu",      "undial", "rmu",    "idknll",
                                    "dpo",    "idkdpo",   "pdu"};

const char *method_name(lethe_method m)
{
    return names[m];
}

/* log sigmoid(z), stable for large |z| */
double obj_log_sigmoid(double z)
{
    return z >= 0 ? -log1p(exp(-z)) : z - log1p(exp(z));
}
double obj_sigmoid(double z)
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
        *sigma = obj_sigmoid(x);
        *dlds = 2.0 * *sigma;
        return -(2.0 / beta) * obj_log_sigmoid(-x);
    }
    case METHOD_SIMNPO: {
        double x = beta / len * s + gamma;
        *sigma = obj_sigmoid(x);
        *dlds = 2.0 / len * *sigma;
        return -(2.0 / beta) * obj_log_sigmoid(-x);
    }
    case METHOD_WGA:
    case METHOD_SATIMP:
    case METHOD_CEU:
    case METHOD_UNDIAL:
    case METHOD_RMU: /* hidden states, not log-likelihoods: model/rmu.h */
    case METHOD_IDKNLL:
    case METHOD_DPO:
    case METHOD_IDKDPO: /* pairs_objective_seq (model/objective_pairs.c) */
    case METHOD_PDU:
        break; /* per token (unlearn_objective_tok), or a token-mean (unlearn_objective_seq) */
    }
    *dlds = 0;
    *sigma = 0;
    return 0;
}

double unlearn_objective_seq(const struct lethe_objective *o, int b, double s, double n, double *w)
{
    unlearn_ctx *c = o->ctx;
    if (c->is_forget[b] && (c->method == METHOD_CEU || c->method == METHOD_UNDIAL)) {
        /* s is the soft cross term sum_t sum_j q_j log p_j: a token-mean cross-entropy */
        double scale = c->c_f / (c->forget_tokens > 0 ? c->forget_tokens : 1.0);
        *w = -scale;
        c->loss_forget -= scale * s;
        return -scale * s;
    }
    if (c->is_forget[b]) {
        double dlds, sig;
        double l = forget_loss(c->method, c->beta, c->gamma, s, n, c->s_ref ? c->s_ref[b] : 0.0,
                               &dlds, &sig);
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

void ceu_skip_first_target(int *targets, int T)
{
    for (int t = 0; t < T; t++)
        if (targets[t] >= 0) {
            targets[t] = -1;
            return;
        }
}

int method_weights_tokens(lethe_method m)
{
    return m == METHOD_WGA || m == METHOD_SATIMP;
}

double token_weight(lethe_method m, double beta, double beta2, double logp)
{
    double w = exp(beta * logp);                           /* p^beta */
    if (m == METHOD_SATIMP) w *= pow(-expm1(logp), beta2); /* (1 - p)^beta2 */
    return w;
}

/* Forget rows of the token-weighted methods: sum_t w_t logp_t, scaled by c_f over the
 * global forget-token count; other rows as unlearn_objective_seq. sigma_sum gathers
 * each forget row's mean token weight (the log's "sigma" column). */
static double unlearn_objective_tok(const struct lethe_objective *o, int b, double s, double n,
                                    const float *logp, const int *targets, int T, float *g)
{
    unlearn_ctx *c = o->ctx;
    if (!c->is_forget[b]) {
        double w = 0.0, l = unlearn_objective_seq(o, b, s, n, &w);
        for (int t = 0; t < T; t++) g[t] = targets[t] >= 0 ? (float)w : 0.0f;
        return l;
    }
    double scale = c->c_f / (c->forget_tokens > 0 ? c->forget_tokens : 1.0), l = 0.0, wsum = 0.0;
    for (int t = 0; t < T; t++) {
        g[t] = 0.0f;
        if (targets[t] < 0) continue;
        double w = token_weight(c->method, c->beta, c->beta2, (double)logp[t]);
        l += w * (double)logp[t];
        wsum += w;
        g[t] = (float)(scale * w);
    }
    c->loss_forget += scale * l;
    c->sigma_sum += n > 0 ? wsum / n : 0.0;
    c->forget_logp += n > 0 ? s / n : 0.0;
    return scale * l;
}

lethe_objective unlearn_objective(unlearn_ctx *c)
{
    if (c->method == METHOD_PDU) return pdu_objective(c);
    lethe_objective o = {unlearn_objective_seq, c, NULL};
    if (method_weights_tokens(c->method)) o.tok = unlearn_objective_tok;
    if (method_uses_alternate(c->method)) o.seq = pairs_objective_seq;
    return o;
}
