/* jobs/unlearn_rmu.c — RMU inside `lethe unlearn`: the check of its keys against the
 * model, the frozen starting values and steering vector (model/rmu.h), and its step:
 * a forward of the batch for the log's forget log-likelihood, the frozen forward of the
 * retain rows, then model_train_step_fb with RMU's forward and backward, updating only
 * the trained down_proj tensors. */
#include "unlearn_rmu.h"

#include <stdlib.h>

#include "../model/rmu.h"
#include "../mpi/fatal.h"

struct unlearn_rmu {
    lethe_session *S;
    rmu_model r;
    int Bf, Br;
    double *seq_s, *seq_n; /* (B) the log's forward */
};

void unlearn_rmu_check(lethe_session *S)
{
    const lethe_unlearn_config *u = &S->cfg.unlearn;
    int L = S->model.shape.cfg.n_layers;
    lethe_check(S->grid.world, u->rmu_layer < L, 2,
                "unlearn: unlearn.rmu_layer=%d is not a block of the model (model.n_layers=%d: "
                "0 .. %d)",
                u->rmu_layer, L, L - 1);
    lethe_check(S->grid.world, u->retain_loss != RETAIN_KL, 2,
                "unlearn: unlearn.retain_loss=\"kl\" does not apply to method rmu (its retain "
                "term is the hidden-state MSE to the starting model)");
}

unlearn_rmu *unlearn_rmu_open(lethe_session *S, int B, int Bf, int Br)
{
    const lethe_unlearn_config *u = &S->cfg.unlearn;
    unlearn_rmu *R = lethe_calloc(1, sizeof(*R), "rmu");
    R->S = S;
    R->Bf = Bf;
    R->Br = Br;
    rmu_create(&R->r, &S->model, u->rmu_layer, u->rmu_span, u->rmu_steering, S->cfg.train.seed, B);
    R->seq_s = lethe_calloc((size_t)B, sizeof(double), "rmu");
    R->seq_n = lethe_calloc((size_t)B, sizeof(double), "rmu");
    return R;
}

void unlearn_rmu_step(unlearn_rmu *R, const lethe_batch *b, const unsigned char *is_forget,
                      int step, int total, step_stats *st, double *values)
{
    lethe_session *S = R->S;
    const lethe_unlearn_config *u = &S->cfg.unlearn;
    /* the log's forget log-likelihood: the loss needs no head, this forward does */
    model_forward(&S->model, b, R->seq_s, R->seq_n, NULL);
    double logp = 0.0;
    for (int i = 0; i < b->B; i++)
        if (is_forget[i] && R->seq_n[i] > 0) logp += R->seq_s[i] / R->seq_n[i];
    if (R->Br > 0) rmu_frozen_forward(&R->r, &S->model, b);
    rmu_terms t = {
        .c_f = u->c_f, .c_r = u->c_r, .is_forget = is_forget, .n_forget = R->Bf, .n_retain = R->Br};
    rmu_step f = {&R->r, b, &t};
    model_train_step_fb(&S->model, rmu_step_forward_backward, &f, R->r.trainable, &S->cfg.optim,
                        &S->fault.nan, step, total, st);
    /* the terms are shared along the pipeline already: sum over replicas */
    double parts[4] = {t.loss_forget, t.loss_retain, t.cos_sum, logp};
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, parts, 4, MPI_DOUBLE, MPI_SUM, S->grid.dp_comm));
    values[0] = parts[0];
    values[1] = parts[1];
    values[2] = parts[2] / R->Bf;
    values[3] = parts[3] / R->Bf;
}

void unlearn_rmu_free(unlearn_rmu *R)
{
    if (!R) return;
    rmu_free(&R->r);
    free(R->seq_s);
    free(R->seq_n);
    free(R);
}
