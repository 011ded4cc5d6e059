/* model/objective_pairs.h — the objectives on two answers to one forget question: IdkNLL,
 * DPO and IdkDPO.
 *
 * The replica's batch holds, for its n forget questions, rows [0, n): the forget answers
 * y_l; rows [n, 2n): an alternate answer y_w of the same questions in the same order (an
 * "I don't know" answer for idknll and idkdpo); then the retain rows. With s the
 * sequence log-likelihood sums and r their cached values under the starting model:
 *
 *   idknll  l_f = -sum over the y_w rows of s / (their tokens, global batch)   (descent
 *           on the IdK answers; the y_l rows carry no weight and give the log's
 *           forget_logp)
 *   dpo     l_f = mean over questions of -(2/b) log sig(b [(s_w - r_w) - (s_l - r_l)])
 *           dl/ds_w = -2 sig(-x), dl/ds_l = 2 sig(-x), x the bracket times b
 *   idkdpo  dpo with y_w an IdK answer: the two differ only in which split gives y_w
 *
 * plus c_r times the retain term of model/objectives.h. A pair's weights need both of
 * its sums before either backward runs, and the 1F1B schedule runs a micro-batch's
 * backward right after its forward: so pairs_forward runs the micro-batches holding
 * the pair rows forward-only first, every rank of the replica gets the sums, and
 * pairs_objective_seq weights each row from them. The pair therefore only has to be
 * in the same replica (the job's loaders give both streams the same rows), under any
 * tp x pp, micro-batching and 1F1B order. */
#ifndef LETHE_OBJECTIVE_PAIRS_H
#define LETHE_OBJECTIVE_PAIRS_H

#include "model_config.h"
#include "transformer.h"

/* 1 for idknll, dpo, idkdpo: the batch carries an alternate answer per forget row. */
int method_uses_alternate(lethe_method m);
/* 1 for dpo, idkdpo: each row's weight depends on its pair (pairs_forward first). */
int method_pairs(lethe_method m);

/* The DPO term of one question and its derivatives by s_w and s_l; *sigma = sig(-x). */
double dpo_loss(double beta, double s_w, double r_w, double s_l, double r_l, double *dlds_w,
                double *dlds_l, double *sigma);

/* Forward only over the micro-batches that hold rows [0, rows) of b: s, n (as many rows
 * as those micro-batches hold, at most b->B) on every rank of the replica. */
void pairs_forward(lethe_model *m, const lethe_batch *b, int rows, double *s, double *n);

/* The per-sequence callback for these methods (ctx: unlearn_ctx *, model/objectives.h). */
double pairs_objective_seq(const struct lethe_objective *o, int b, double s, double n, double *w);

#endif
