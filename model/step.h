/* model/step.h — one optimizer step of a sharded model: forward and backward of
 * the replica's batch through the pipeline, gradient reduction over dp (and the
 * tied-embedding pair), global-norm clipping, AdamW. Every job that trains
 * (train, unlearn, relearn) and the equivalence tests step through here. */
#ifndef LETHE_STEP_H
#define LETHE_STEP_H

#include "model_config.h"
#include "transformer.h"

typedef struct {
    double loss;      /* global loss: sum over replicas of the objective */
    double grad_norm; /* before clipping */
    float clip;       /* scale applied to the gradients */
    float lr;
    double seconds;   /* this rank's wall time for the step */
    int skipped;      /* 1: a non-finite loss or gradient, update dropped (on_nonfinite skip) */
} step_stats;

/* Fault injection for tests, model_train_step's `fault` argument (NULL or step 0: off;
 * the jobs pass their session's, parsed from LETHE_FAULT=nan-at-step:N[:R[:NAME]]):
 * after the forward/backward of step `step` (counting from 1), world rank `rank` writes
 * NaN into the gradient of `tensor` (its first tensor when empty or not held by that
 * rank), as an overflow in the backward would. */
typedef struct {
    int step, rank;
    char tensor[LETHE_NAME_MAX];
} step_fault;

/* `step` counts from 0; `total` is the schedule's length. A NaN or Inf in the loss or
 * in any gradient on any rank (each rank checks its own gradients before the dp
 * reduction) is agreed on over the world; with o->on_nonfinite NONFINITE_STOP every rank
 * exits with code 1 and the lowest rank holding a non-finite gradient prints one
 * line naming the step and its first such tensor (the loss when no gradient is bad);
 * with NONFINITE_SKIP that rank prints the line as a warning, the weights and AdamW moments
 * are left untouched, and out->skipped is 1. */
void model_train_step(lethe_model *m, const lethe_batch *b, const lethe_objective *obj,
                      const lethe_optim_config *o, const step_fault *fault, int step, int total,
                      step_stats *out);

/* model_train_step with the forward and backward supplied by the caller (RMU,
 * model/rmu.h): fb zeroes and fills the gradients and returns the replica's loss. With
 * trainable (params.n) not NULL only the tensors it marks are updated: the others'
 * gradients are zeroed before the checks (they count neither in the norm nor in the
 * clip) and their weights and AdamW moments are left as they are. */
typedef double (*step_forward_backward)(lethe_model *m, void *ctx);
void model_train_step_fb(lethe_model *m, step_forward_backward fb, void *ctx,
                         const unsigned char *trainable, const lethe_optim_config *o,
                         const step_fault *fault, int step, int total, step_stats *out);

/* Token-mean negative log-likelihood: the objective of pre-training and
 * fine-tuning. inv_tokens = 1 / (target tokens in the GLOBAL batch). */
typedef struct {
    double inv_tokens;
} nll_objective_ctx;
double nll_objective_seq(const struct lethe_objective *o, int b, double s, double n, double *w);

/* Target tokens in the global batch: the replica's count summed over dp. */
double model_count_targets(const lethe_model *m, const lethe_batch *b);

#endif
