/* model/rmu.h — RMU (representation misdirection for unlearning, WMDP; open-unlearning's
 * RMU with its EMBED_DIFF retain term) on the sharded model.
 *
 * h = the residual stream after block `layer` (the full C-wide stream, after down_proj's
 * row-parallel reduce and the residual add). With u a fixed random unit vector (uniform
 * [0, 1) components from a seed, normalised, as torch.rand / norm) and c the steering
 * coefficient,
 *     L = c_f * mean over forget rows of mse_b(h, c u)
 *       + c_r * mean over retain rows of mse_b(h, h_frozen),
 *     mse_b(a, z) = (1/n_b) sum over the row's answer positions t of (1/C) |a_t - z_t|^2,
 * the answer positions being those of the answer tokens and the closing EOS (input
 * position t with targets[t-1] >= 0: the labels != -100 mask of open-unlearning); a row
 * with none adds nothing. h_frozen is h under the starting weights. Only
 * mlp.down_proj of blocks lo..layer is trained (lo = max(0, layer - span + 1); the
 * reference trains layer-2..layer), so the starting model differs from the current one
 * in those tensors alone: h_frozen is a forward with their starting values swapped in,
 * and only those values are kept (3 C I / tp floats per rank at span 3, on the ranks
 * that hold them).
 *
 * Pipeline: only stages up to the one holding `layer` run; the loss is injected there
 * and the backward stops at block lo. Micro-batches run one after another (forward then
 * backward), through slot 0 of the workspace: no allocation in a step. */
#ifndef LETHE_RMU_H
#define LETHE_RMU_H

#include <stdint.h>

#include "transformer.h"

typedef struct {
    int layer, lo;            /* h after block `layer`; blocks lo..layer train down_proj */
    int stage;                /* the pipeline stage holding block `layer` */
    int n_held, *held;        /* table indices of the trained tensors this rank holds */
    unsigned char *trainable; /* (params.n) 1 for the trained tensors */
    float *start;             /* their starting values, concatenated */
    float *target;            /* (C) c u */
    float *frozen;            /* (B*T, C) on `stage`: h of the starting weights */
} rmu_model;

/* The step's terms: inputs, then what rmu_forward_backward accumulates over this
 * replica's rows (shared over pp on return). */
typedef struct {
    double c_f, c_r;
    const unsigned char *is_forget; /* (B) */
    double n_forget, n_retain;      /* rows of the GLOBAL batch */
    double loss_forget, loss_retain;
    double cos_sum; /* sum over forget rows of the mean cosine of h_t with u */
} rmu_terms;

/* out (C) = c u, u_d = U_d / |U|, U_d uniform in [0, 1) from (seed, d): identical on
 * every rank and layout. */
void rmu_steering_vector(float *out, int C, uint64_t seed, double c);
/* For batches of up to B rows; keeps the trained tensors' current values as the start. */
void rmu_create(rmu_model *r, const lethe_model *m, int layer, int span, double c, uint64_t seed,
                int B);
void rmu_free(rmu_model *r);
/* h_frozen of b (every row) from the starting values of the trained tensors. */
void rmu_frozen_forward(rmu_model *r, lethe_model *m, const lethe_batch *b);
/* Zeroes the gradients, fills those of blocks lo..layer from the loss of t (after
 * rmu_frozen_forward of the same batch when it has retain rows) and returns the
 * replica's loss on every rank of the replica. Other tensors' gradients are not
 * meaningful: the update must leave them (r->trainable). */
double rmu_forward_backward(rmu_model *r, lethe_model *m, const lethe_batch *b, rmu_terms *t);

/* rmu_forward_backward as model_train_step_fb's callback (ctx: rmu_step *). */
typedef struct {
    rmu_model *r;
    const lethe_batch *b;
    rmu_terms *t;
} rmu_step;
double rmu_step_forward_backward(lethe_model *m, void *ctx);

#endif
