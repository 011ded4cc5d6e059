/* tests/test_layouts_unlearn.c — the unlearning objectives of the layout matrix
 * (test_layouts.c): each method's loss and gradients through the parallel model on a
 * fixed batch, and the pair methods' batch, so that every layout can be compared with
 * one rank. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "io/synth/markov_stream.h"
#include "model/objective_pairs.h"
#include "model/objectives.h"
#include "model/step.h"
#include "model/transformer.h"
#include "mpi/comm.h"
#include "mpi/fatal.h"
#include "mpi/grid.h"
#include "tests/layout_list.h"
#include "tests/test_layouts.h"

/* Unlearning objectives (SimNPO, NPO, SimNPO with the KL retain term, GA, GradDiff)
 * through the same pipeline: even global sequences are
 * forget rows, odd ones retain rows; NPO gets fixed reference sums; the KL retain
 * term's reference is the model with every weight scaled by 0.9 (layout-independent),
 * its distributions made by exchanging those weights in for one forward, as the
 * unlearn job does. Returns the global loss; gradients are reduced over dp. */
double unlearn_grads(lethe_model *m, const lethe_grid *g, const lethe_batch *b, int which,
                     double *scale)
{
    int B = b->B, np = which >= UOBJ_PAIRS ? B / 4 : 0;
    unsigned char is_forget[64];
    double s_ref[64], rt = 0, ft = 0, pair_s[64], pair_n[64];
    for (int i = 0; i < B; i++) {
        int gi = g->dp_rank * B + i, q = i % (np ? np : 1);
        is_forget[i] =
            np ? i < 2 * np : gi % 2 == 0; /* pairs: y_l content g np + q, y_w 2 + that */
        s_ref[i] = -0.75 * (np ? (i < np ? 0 : PAIR_Q) + g->dp_rank * np + q + 1 : gi + 1);
        for (int t = 0; t < b->T && (!np || i >= np); t++) /* y_l rows count in neither */
            *(is_forget[i] ? &ft : &rt) += b->targets[i * b->T + t] >= 0;
    }
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &rt, 1, MPI_DOUBLE, MPI_SUM, g->dp_comm));
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &ft, 1, MPI_DOUBLE, MPI_SUM, g->dp_comm));
    unsigned char is_retain[64];
    double negent[64];
    float *lsm = NULL;
    if (which == 2) {
        for (int i = 0; i < B; i++) is_retain[i] = !is_forget[i];
        float *ref = malloc(sizeof(float) * m->w.params.total);
        for (size_t k = 0; k < m->w.params.total; k++) ref[k] = 0.9f * m->w.params.data[k];
        lsm = m->shape.last ? malloc(sizeof(float) * (size_t)B * b->T * m->shape.v_l) : NULL;
        params_swap_data(&m->w.params, ref);
        model_forward_logsoftmax(m, b, lsm, negent, NULL);
        params_swap_data(&m->w.params, ref);
        free(ref);
    }
    lethe_batch bs = *b; /* KL: the retain rows' soft targets travel with the batch */
    if (which == 2) {
        bs.soft_lp = lsm;
        bs.soft_seq = is_retain;
    }
    double *norm = NULL;
    if (which >= 7) { /* CE-U: the forget rows' targets, p without the true token; UNDIAL:
                         the reference's (every weight scaled by 0.9), the true logit - 2.5 */
        size_t N = (size_t)B * b->T;
        lsm = m->shape.last ? malloc(sizeof(float) * N * m->shape.v_l) : NULL;
        norm = m->shape.last ? malloc(sizeof(double) * N) : NULL;
        float *ref = NULL;
        if (which == 8) {
            ref = malloc(sizeof(float) * m->w.params.total);
            for (size_t k = 0; k < m->w.params.total; k++) ref[k] = 0.9f * m->w.params.data[k];
            params_swap_data(&m->w.params, ref);
        }
        model_forward_logsoftmax(m, b, lsm, NULL, NULL);
        if (ref) {
            params_swap_data(&m->w.params, ref);
            free(ref);
        }
        if (m->shape.last)
            vocab_parallel_lower_targets(lsm, norm, b->targets, is_forget,
                                         which == 7 ? INFINITY : 2.5, B, b->T, &m->shape.vocab);
        bs.soft_lp = lsm;
        bs.soft_seq = is_forget;
    }
    static const lethe_method M[N_UOBJ] = {METHOD_SIMNPO,   METHOD_NPO, METHOD_SIMNPO, METHOD_GA,
                                           METHOD_GRADDIFF, METHOD_WGA, METHOD_SATIMP, METHOD_CEU,
                                           METHOD_UNDIAL,   METHOD_PDU, METHOD_IDKNLL, METHOD_DPO,
                                           METHOD_IDKDPO};
    unlearn_ctx ctx = {.method = M[which],
                       .beta = which == 1 ? 2.0 : 2.5,
                       .gamma = which == 0 ? 0.5 : 0.0,
                       .c_f = which == 1 ? 1.0 : 0.3,
                       .c_r = 1.0,
                       .is_forget = is_forget,
                       .s_ref = s_ref,
                       .negent = which == 2 ? negent : NULL,
                       .n_forget = B * g->dp / 2,
                       .retain_tokens = rt,
                       .forget_tokens = ft,
                       .beta2 = 1.0,
                       .lambda = 0.7};
    if (np) { /* PAIR_Q questions over the replicas, then retain rows; dpo at open-unlearning's
                 beta, idkdpo at 0.5 */
        ctx.n_pairs = np;
        ctx.n_forget = PAIR_Q;
        ctx.beta = M[which] == METHOD_IDKDPO ? 0.5 : 0.1;
        pairs_forward(m, b, 2 * np, pair_s, pair_n);
        ctx.pair_s = pair_s;
    }
    lethe_objective obj = unlearn_objective(&ctx);
    /* PDU: the forget rows' logit margins (a term the model carries for the step) */
    float *md = malloc(sizeof(float) * (size_t)B * b->T);
    int *marg = malloc(sizeof(int) * (size_t)B * b->T);
    lethe_margin_term mt = {is_forget, md, marg, pdu_margin_grad, &ctx};
    m->margin = M[which] == METHOD_PDU ? &mt : NULL;
    double loss = model_forward_backward(m, &bs, &obj, NULL, NULL);
    m->margin = NULL;
    free(md);
    free(marg);
    free(lsm);
    free(norm);
    /* the scale a loss error is measured against: the loss itself, or for the KL term
     * (a small difference of two cross-entropies of fp32 logits) the reference's
     * token-mean entropy, the size of the terms that cancel */
    double h = 0.0;
    for (int i = 0; which == 2 && i < B; i++)
        if (is_retain[i]) h -= negent[i];
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &h, 1, MPI_DOUBLE, MPI_SUM, g->dp_comm));
    model_reduce_grads(m);
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &loss, 1, MPI_DOUBLE, MPI_SUM, g->dp_comm));
    *scale = fmax(fabs(loss), h / rt);
    return loss;
}
const char *const UOBJ_NAME[N_UOBJ] = {"simnpo(gamma 0.5)",
                                       "npo",
                                       "simnpo+kl retain",
                                       "ga",
                                       "graddiff",
                                       "wga",
                                       "satimp",
                                       "ceu",
                                       "undial",
                                       "pdu",
                                       "idknll",
                                       "dpo",
                                       "idkdpo"};

/* The pair methods' batch of replica dp_rank of dp: PAIR_Q questions, y_l the stream's
 * rows [0, PAIR_Q), y_w rows [PAIR_Q, 2 PAIR_Q), retain rows [2 PAIR_Q, PAIR_B); the
 * replica holds questions [dp_rank np, +np) as rows [0, np) y_l and [np, 2 np) y_w, then
 * its retain rows, as the unlearn job lays them (np = PAIR_Q / dp, so dp 8 holds one pair
 * and two retain rows). Without retain rows (a batch of pairs alone), tp 2 differs from
 * one rank by 1.8e-5 on layer 0's q_proj gradient: so does GA weighting every row of the
 * same batch, the same fp32 sensitivity, not the pair code. */
void pair_batch(synth_stream *src, int dp_rank, int dp, lethe_batch *pb)
{
    int np = PAIR_Q / dp, nr = (PAIR_B - 2 * PAIR_Q) / dp;
    for (int i = 0; i < 2 * np + nr; i++)
        synth_stream_batch(src, 0,
                           i < 2 * np ? (i < np ? 0 : PAIR_Q) + dp_rank * np + i % np
                                      : 2 * PAIR_Q + dp_rank * nr + i - 2 * np,
                           1, pb->T, pb->tokens + (size_t)i * pb->T,
                           pb->targets + (size_t)i * pb->T);
}
