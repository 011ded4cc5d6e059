/* model/objectives_pdu.c — PDU (primal-dual unlearning): the forget rows' logit-margin
 * flattening loss and the retain rows' Lagrangian term as an objective, and the dual
 * step (see objectives.h). */
#include "objectives.h"

/* Retain rows: lambda L_r, with loss_retain gathering L_r itself for the dual step;
 * forget rows: no cross-entropy term, only their log-likelihood for the log. */
static double pdu_seq(const struct lethe_objective *o, int b, double s, double n, double *w)
{
    unlearn_ctx *c = o->ctx;
    *w = 0.0;
    if (c->is_forget[b]) {
        c->forget_logp += n > 0 ? s / n : 0.0;
        return 0.0;
    }
    if (c->retain_tokens <= 0) return 0.0;
    double lr = ((c->negent ? c->negent[b] : 0.0) - s) / c->retain_tokens;
    c->loss_retain += lr;
    *w = -c->lambda / c->retain_tokens;
    return c->lambda * lr;
}

/* Forget rows: c_f sum_t d_t^2 / (forget tokens of the global batch); d becomes dL/dd. */
double pdu_margin_grad(void *ctx, int b, float *d, const int *targets, int T)
{
    (void)b;
    unlearn_ctx *c = ctx;
    double scale = c->c_f / (c->forget_tokens > 0 ? c->forget_tokens : 1.0), l = 0.0;
    for (int t = 0; t < T; t++) {
        double x = targets[t] >= 0 ? d[t] : 0.0;
        l += x * x;
        d[t] = (float)(2.0 * scale * x);
    }
    c->loss_forget += scale * l;
    return scale * l;
}

lethe_objective pdu_objective(unlearn_ctx *c)
{
    lethe_objective o = {pdu_seq, c, NULL};
    return o;
}

double pdu_dual_update(double lambda, double eta, double retain_loss, double eps)
{
    double next = lambda + eta * (retain_loss - eps);
    return next > 0.0 ? next : 0.0;
}
