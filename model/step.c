/* model/step.c — one optimizer step of the sharded model. */
#include "step.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "../mpi/comm.h"
#include "../mpi/fatal.h"
#include "optim.h"
#include "wagle.h"

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
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &n, 1, MPI_DOUBLE, MPI_SUM, m->shape.grid->dp_comm));
    return n;
}

static void inject_fault(lethe_model *m, const step_fault *f, int step)
{
    if (!f || f->step == 0) return;
    int rank;
    MPI_CHECK(MPI_Comm_rank(m->shape.grid->world, &rank));
    if (f->step != step || f->rank != rank || m->w.params.n == 0) return;
    int i = f->tensor[0] ? params_find(&m->w.params, f->tensor) : -1;
    m->w.params.grad[m->w.params.p[i < 0 ? 0 : i].off] = NAN;
}

/* After a non-finite loss or gradient: the lowest failing rank `reporter` (whose message
 * names its tensor) warns (skip) or every rank stops (stop). */
static void report_nonfinite(lethe_model *m, const lethe_optim_config *o, int step, int rank,
                             int reporter, const char *what, double loss, double norm)
{
    int skip = o->on_nonfinite == NONFINITE_SKIP;
    if (skip && rank == reporter)
        lethe_warn_rank("step %d: non-finite %s (loss %g, gradient norm %g); step skipped "
                        "(optim.on_nonfinite = \"skip\")",
                        step + 1, what, loss, norm);
    if (!skip)
        lethe_check(m->shape.grid->world, rank != reporter, 1,
                    "step %d: non-finite %s (loss %g, gradient norm %g); the job stops, "
                    "checkpoints written so far are kept (optim.on_nonfinite = \"skip\" "
                    "skips such steps)",
                    step + 1, what, loss, norm);
}

typedef struct {
    const lethe_batch *b;
    const lethe_objective *obj;
} pipeline_fb;

static double pipeline_forward_backward(lethe_model *m, void *ctx)
{
    const pipeline_fb *p = ctx;
    return model_forward_backward(m, p->b, p->obj, NULL, NULL);
}

void model_train_step(lethe_model *m, const lethe_batch *b, const lethe_objective *obj,
                      const lethe_optim_config *o, const step_fault *fault, int step, int total,
                      step_stats *out)
{
    pipeline_fb p = {b, obj};
    model_train_step_fb(m, pipeline_forward_backward, &p, NULL, o, fault, step, total, out);
}

/* AdamW on [lo, hi), restricted to the tensors marked in trainable when it is given. */
static void update(lethe_params *t, const unsigned char *trainable, const lethe_optim_config *o,
                   float lr, int step, float clip, size_t lo, size_t hi)
{
    if (!trainable) {
        adamw_range(t, o, lr, step, clip, lo, hi);
        return;
    }
    for (int i = 0; i < t->n; i++) {
        size_t a, b;
        if (trainable[i] && params_overlap(&t->p[i], lo, hi, &a, &b))
            adamw_range(t, o, lr, step, clip, a, b);
    }
}

void model_train_step_fb(lethe_model *m, step_forward_backward fb, void *ctx,
                         const unsigned char *trainable, const lethe_optim_config *o,
                         const step_fault *fault, int step, int total, step_stats *out)
{
    double t0 = MPI_Wtime();
    const lethe_grid *g = m->shape.grid;
    lethe_params *t = &m->w.params;
    double loss = fb(m, ctx);
    for (int i = 0; trainable && i < t->n; i++)
        if (!trainable[i]) memset(t->grad + t->p[i].off, 0, sizeof(float) * t->p[i].numel);
    inject_fault(m, fault, step + 1);
    /* With dp > 1 and optim.shard_update each replica sums, clips and applies only its
     * share of the gradient, then the replicas exchange the updated weights: the bytes
     * of the one all-reduce, and 1/dp of the update's passes over the weights and
     * moments. Elsewhere every replica updates everything. */
    int shard = g->dp > 1 && o->shard_update;
    size_t lo = 0, hi = t->total;
    /* bad: the first tensor whose gradient held an Inf or NaN on this rank before the dp
     * sum spread it to every replica, so that the message names the rank where it arose.
     * The reduce-scatter finds it in its own passes; with nothing to sum or mask, the
     * norm's pass does. */
    int bad = -1, in_norm = g->dp == 1 && !t->mask && !model_sums_tied(m); /* not shard */
    if (shard) {
        model_reduce_scatter_grads(m, &lo, &hi, &bad);
    } else if (!in_norm) {
        bad = params_first_nonfinite_grad(t);
        model_reduce_grads(m);
    }
    params_mask_grads(t, lo, hi); /* WAGLE: the norm and clip see the masked gradient */
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &loss, 1, MPI_DOUBLE, MPI_SUM, g->dp_comm));
    double norm =
        shard ? model_grad_norm_share(m, lo, hi) : model_grad_norm(m, in_norm ? &bad : NULL);
    /* loss and norm agree on every rank; the lowest rank with a bad tensor reports it,
     * its message (the tensor's name) reaches every rank */
    char what[LETHE_NAME_MAX + 64] = "";
    if (bad >= 0) snprintf(what, sizeof what, "gradient of tensor '%s'", t->p[bad].name);
    int rank, first;
    MPI_CHECK(MPI_Comm_rank(g->world, &rank));
    int agreed = lethe_agree(g->world, bad < 0, what, sizeof what, &first) == 0;
    int nonfinite = !agreed || !isfinite(loss) || !isfinite(norm);
    out->loss = loss;
    out->grad_norm = norm;
    out->skipped = nonfinite;
    out->clip = 0;
    out->lr = lr_at(o, step, total);
    if (nonfinite) {
        if (agreed) snprintf(what, sizeof what, "loss (every gradient finite)");
        report_nonfinite(m, o, step, rank, agreed ? 0 : first, what, loss, norm);
        out->seconds = MPI_Wtime() - t0;
        return;
    }
    float clip = clip_scale(o, norm);
    update(t, trainable, o, out->lr, step + 1, clip, lo, hi);
    if (shard) {
        comm_allgather_shares(t->data, t->total, g->dp_comm, &m->ws.comm);
        t->moments_sharded = 1;
    }
    out->clip = clip;
    out->seconds = MPI_Wtime() - t0;
}
