/* tests/test_layouts_extra.c — RMU and WAGLE in the layout matrix (test_layouts.c): the
 * quantities that are not a loss's gradient over every tensor, each left in the model's
 * gradient buffer so that every layout is compared with one rank as the objectives are:
 *   rmu            RMU's loss (model/rmu.h) at block n_layers / 2, span 2 (blocks l-1 and
 *                  l train mlp.down_proj), c 5, the trained tensors scaled by 1.1 after the
 *                  start is kept (so the retain term is not 0), even global rows forget,
 *                  odd ones retain: the loss and the trained tensors' gradients. Under pp
 *                  h_l lives on one stage and the backward crosses into block l-1's.
 *   wagle scores   WAGLE's |(w - g_r / mu) g_f| (model/wagle.h) of every weight, g_f the GA
 *                  gradient, g_r the token-mean NLL gradient, mu 0.01.
 *   wagle graddiff the GradDiff gradient masked by params_mask_grads with a mask fixed per
 *                  global element (a hash of name and position, as params_init_normal, about
 *                  40% kept): a selection that every layout makes alike, so that the test
 *                  is about applying the mask. (The top-p selection's independence of the
 *                  layout is wagle.select's and cli.unlearn_wagle's.)
 *   wagle step     one AdamW step (lr 1e-3, weight decay 0.1, the update split over the dp
 *                  replicas) of the NLL objective under that mask: the weights after it
 *                  (compared in the L2 norm of each tensor, see test_layouts.c), and no
 *                  weight outside the mask changed by a single bit. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/rmu.h"
#include "model/step.h"
#include "model/wagle.h"
#include "mpi/fatal.h"
#include "tests/test_layouts.h"

const char *const XOBJ_NAME[N_XOBJ] = {"rmu", "wagle scores", "wagle graddiff", "wagle step"};

#define RMU_SPAN 2

int extra_compared(const lethe_model_config *cfg, int x, const char *name)
{
    if (x != 0) return 1;
    int layer = cfg->n_layers / 2;
    for (int l = layer - RMU_SPAN + 1; l <= layer; l++) {
        char nm[96];
        snprintf(nm, sizeof nm, "model.layers.%d.mlp.down_proj.weight", l);
        if (!strcmp(nm, name)) return 1;
    }
    return 0;
}

static void forget_rows(const lethe_grid *g, int B, unsigned char *is_forget)
{
    for (int i = 0; i < B; i++) is_forget[i] = (g->dp_rank * B + i) % 2 == 0;
}

static double rmu_loss(lethe_model *m, const lethe_grid *g, const lethe_batch *b)
{
    unsigned char is_forget[64];
    forget_rows(g, b->B, is_forget);
    rmu_model r;
    rmu_create(&r, m, m->shape.cfg.n_layers / 2, RMU_SPAN, 5.0, 42, b->B);
    for (int k = 0; k < r.n_held; k++) {
        const lethe_param *p = &m->w.params.p[r.held[k]];
        for (size_t j = 0; j < p->numel; j++) m->w.params.data[p->off + j] *= 1.1f;
    }
    double rows = (double)b->B * g->dp / 2;
    rmu_terms t = {1.0, 0.5, is_forget, rows, rows, 0, 0, 0};
    rmu_frozen_forward(&r, m, b);
    double loss = rmu_forward_backward(&r, m, b, &t);
    rmu_free(&r);
    return loss;
}

/* The NLL gradient of b (reduced over dp) and its global loss. */
static double nll_grads(lethe_model *m, const lethe_grid *g, const lethe_batch *b)
{
    nll_objective_ctx ctx = {1.0 / model_count_targets(m, b)};
    lethe_objective obj = {nll_objective_seq, &ctx, NULL};
    double loss = model_forward_backward(m, b, &obj, NULL, NULL);
    model_reduce_grads(m);
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &loss, 1, MPI_DOUBLE, MPI_SUM, g->dp_comm));
    return loss;
}

/* The layout-independent mask: a hash normal of (name, row, column) above 0.25. */
static unsigned char *fixed_mask(lethe_params *t)
{
    float *h = malloc(sizeof(float) * t->total);
    unsigned char *mask = malloc(t->total);
    if (!h || !mask) lethe_fatal("test_layouts: out of memory for the WAGLE mask");
    memset(h, 0, sizeof(float) * t->total);
    params_swap_data(t, h);
    for (int i = 0; i < t->n; i++) params_init_normal(t, i, 0x57a61eULL, 1.0f);
    params_swap_data(t, h);
    for (size_t k = 0; k < t->total; k++) mask[k] = h[k] > 0.25f;
    free(h);
    return mask;
}

static double masked_step(lethe_model *m, const lethe_grid *g, const lethe_batch *b, long *bad)
{
    lethe_params *t = &m->w.params;
    float *w0 = malloc(sizeof(float) * t->total);
    if (!w0) lethe_fatal("test_layouts: out of memory for the weights");
    memcpy(w0, t->data, sizeof(float) * t->total);
    lethe_optim_config o = {.schedule = SCHEDULE_CONSTANT,
                            .lr = 1e-3f,
                            .beta1 = 0.9f,
                            .beta2 = 0.95f,
                            .eps = 1e-8f,
                            .weight_decay = 0.1f,
                            .shard_update = 1};
    nll_objective_ctx ctx = {1.0 / model_count_targets(m, b)};
    lethe_objective obj = {nll_objective_seq, &ctx, NULL};
    step_stats st;
    model_train_step(m, b, &obj, &o, NULL, 0, 1, &st);
    long n = 0;
    for (size_t k = 0; k < t->total; k++) {
        n += !t->mask[k] && memcmp(&t->data[k], &w0[k], sizeof(float)) != 0;
        t->grad[k] = t->data[k];
    }
    MPI_CHECK(MPI_Allreduce(&n, bad, 1, MPI_LONG, MPI_SUM, g->world));
    free(w0);
    return st.loss;
}

double extra_grads(lethe_model *m, const lethe_grid *g, const lethe_batch *b, int x,
                   double *scale, long *bad)
{
    lethe_params *t = &m->w.params;
    double loss = 0.0;
    *bad = 0;
    if (x == 0) {
        loss = rmu_loss(m, g, b);
        model_reduce_grads(m);
        MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &loss, 1, MPI_DOUBLE, MPI_SUM, g->dp_comm));
    } else if (x == 1) {
        double s;
        unlearn_grads(m, g, b, 3, &s); /* GA */
        float *gf = malloc(sizeof(float) * t->total);
        if (!gf) lethe_fatal("test_layouts: out of memory for the WAGLE scores");
        memcpy(gf, t->grad, sizeof(float) * t->total);
        loss = nll_grads(m, g, b);
        wagle_scores(t->grad, t->data, gf, t->grad, 0.01, t->total);
        free(gf);
    } else {
        t->mask = fixed_mask(t);
        if (x == 2) {
            loss = unlearn_grads(m, g, b, 4, scale); /* GradDiff */
            params_mask_grads(t, 0, t->total);
        } else {
            loss = masked_step(m, g, b, bad);
        }
        free(t->mask);
        t->mask = NULL;
    }
    model_init_weights(m); /* RMU and the step moved weights: the next one starts afresh */
    if (x != 2) *scale = fabs(loss);
    return loss;
}
