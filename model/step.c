/* model/step.c — one optimizer step of the sharded model. */
#include "step.h"

#include <math.h>

#include "../mpi/fatal.h"
#include "optim.h"

double nll_objective_seq(const struct lethe_objective *o, int b, double s, double n, double *w)
{
    (void)b;
    (void)n;
    const nll_objective_ctx *c = o->ctx;
    *w = -c->inv_tokens;
    return -s * c->inv_tokens;
}

double model_count_targets(const lethe_model *m, const lethe_batch *b)
{
    double n = 0;
    for (size_t i = 0; i < (size_t)b->B * b->T; i++) n += b->targets[i] >= 0;
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &n, 1, MPI_DOUBLE, MPI_SUM, m->grid->dp_comm));
    return n;
}

void model_train_step(lethe_model *m, const lethe_batch *b, const lethe_objective *obj,
                      const lethe_optim_config *o, int step, int total, step_stats *out)
{
    double t0 = MPI_Wtime();
    double loss = model_forward_backward(m, b, obj, NULL, NULL);
    model_reduce_grads(m);
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &loss, 1, MPI_DOUBLE, MPI_SUM, m->grid->dp_comm));
    double norm = model_grad_norm(m);
    if (!isfinite(loss) || !isfinite(norm))
        lethe_fatal("step %d: non-finite %s (loss %g, gradient norm %g)", step + 1,
                    isfinite(loss) ? "gradient" : "loss", loss, norm);
    float lr = lr_at(o, step, total), clip = clip_scale(o, norm);
    adamw_step(&m->params, o, lr, step + 1, clip);
    out->loss = loss;
    out->grad_norm = norm;
    out->clip = clip;
    out->lr = lr;
    out->seconds = MPI_Wtime() - t0;
}
