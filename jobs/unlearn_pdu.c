/* jobs/unlearn_pdu.c — PDU's dual variable and margin buffers in `lethe unlearn` (see
 * unlearn_pdu.h). */
#include "unlearn_pdu.h"

#include <stdlib.h>

#include "../mpi/fatal.h"

const char *const pdu_state_keys[1] = {"pdu_lambda"};

void pdu_check(lethe_session *S, int retain_batch)
{
    lethe_check(S->grid.world, retain_batch > 0, 2,
                "unlearn: unlearn.method=\"pdu\" constrains the retain loss; "
                "unlearn.retain_batch_size=%d must be > 0",
                retain_batch);
}

void pdu_open(pdu_state *P, const lethe_unlearn_config *u, int rf, int rr, int T, int64_t spe)
{
    int rows = rf + rr;
    P->lambda = u->pdu_lambda0;
    P->warm_steps = (int64_t)u->pdu_dual_warmup_epochs * spe;
    P->rows = lethe_calloc((size_t)rows, 1, "batch");
    for (int i = 0; i < rf; i++) P->rows[i] = 1;
    P->margin = lethe_calloc((size_t)rows * T, sizeof(float), "logit margins");
    P->arg = lethe_calloc((size_t)rows * T, sizeof(int), "logit margins");
}

void pdu_begin(pdu_state *P, lethe_model *m, unlearn_ctx *ctx)
{
    P->term = (lethe_margin_term){P->rows, P->margin, P->arg, pdu_margin_grad, ctx};
    m->margin = &P->term;
    ctx->lambda = P->lambda;
}

double pdu_end(pdu_state *P, lethe_model *m, const lethe_unlearn_config *u, int step,
               step_stats *st, double retain_loss)
{
    m->margin = NULL;
    double used = P->lambda;
    st->loss -= used * u->pdu_eps;
    if (!st->skipped && step >= P->warm_steps)
        P->lambda = pdu_dual_update(used, u->pdu_dual_lr, retain_loss, u->pdu_eps);
    return used;
}

void pdu_free(pdu_state *P)
{
    free(P->rows);
    free(P->margin);
    free(P->arg);
}
