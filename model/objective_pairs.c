/* model/objective_pairs.c — IdkNLL, DPO and IdkDPO as per-sequence weights over pairs of
 * rows (model/objective_pairs.h); the retain rows go to unlearn_objective_seq. */
#include "objective_pairs.h"

#include "objectives.h"

int method_uses_alternate(lethe_method m)
{
    return m == METHOD_IDKNLL || m == METHOD_DPO || m == METHOD_IDKDPO;
}

int method_pairs(lethe_method m) { return m == METHOD_DPO || m == METHOD_IDKDPO; }

double dpo_loss(double beta, double s_w, double r_w, double s_l, double r_l, double *dlds_w,
                double *dlds_l, double *sigma)
{
    double x = beta * ((s_w - r_w) - (s_l - r_l));
    *sigma = obj_sigmoid(-x);
    *dlds_w = -2.0 * *sigma;
    *dlds_l = 2.0 * *sigma;
    return -(2.0 / beta) * obj_log_sigmoid(x);
}

void pairs_forward(lethe_model *m, const lethe_batch *b, int rows, double *s, double *n)
{
    int Bm = m->shape.Bm;
    /* the retain rows that share a micro-batch with the last pair row ride along; their
     * soft targets are not needed here */
    lethe_batch p = {(rows + Bm - 1) / Bm * Bm, b->T, b->tokens, b->targets, NULL, NULL};
    if (p.B > b->B) p.B = b->B;
    model_forward(m, &p, s, n, NULL);
}

double pairs_objective_seq(const struct lethe_objective *o, int b, double s, double n, double *w)
{
    unlearn_ctx *c = o->ctx;
    int np = c->n_pairs;
    if (b >= 2 * np) return unlearn_objective_seq(o, b, s, n, w); /* a retain row */
    int alt = b >= np, q = alt ? b - np : b;
    *(alt ? &c->alt_logp : &c->forget_logp) += n > 0 ? s / n : 0.0;
    if (c->method == METHOD_IDKNLL) { /* token-mean NLL of the IdK answers */
        double scale = c->c_f / (c->forget_tokens > 0 ? c->forget_tokens : 1.0);
        *w = alt ? -scale : 0.0;
        if (alt) c->loss_forget -= scale * s;
        return alt ? -scale * s : 0.0;
    }
    /* dpo, idkdpo: both rows weighted from the pair's forward-only sums */
    double dw, dl, sig, scale = c->c_f / (c->n_forget > 0 ? c->n_forget : 1.0);
    double l = dpo_loss(c->beta, c->pair_s[np + q], c->s_ref[np + q], c->pair_s[q], c->s_ref[q],
                        &dw, &dl, &sig);
    *w = scale * (alt ? dw : dl);
    if (alt) return 0.0; /* the pair's loss is counted once, on its y_l row */
    c->loss_forget += scale * l;
    c->sigma_sum += sig;
    return scale * l;
}
