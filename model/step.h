/* model/step.h — one optimizer step of a sharded model: forward and backward of
 * the replica's batch through the pipeline, gradient reduction over dp (and the
 * tied-embedding pair), global-norm clipping, AdamW. Every job that trains
 * (train, unlearn, relearn) and the equivalence tests step through here. */
#ifndef LETHE_STEP_H
#define LETHE_STEP_H

#include "../io/config.h"
#include "transformer.h"

typedef struct {
    double loss;      /* global loss: sum over replicas of the objective */
    double grad_norm; /* before clipping */
    float clip;       /* scale applied to the gradients */
    float lr;
    double seconds;   /* this rank's wall time for the step */
} step_stats;

/* `step` counts from 0; `total` is the schedule's length. A non-finite loss or
 * gradient norm ends the job with a message naming the step. */
void model_train_step(lethe_model *m, const lethe_batch *b, const lethe_objective *obj,
                      const lethe_optim_config *o, int step, int total, step_stats *out);

/* Token-mean negative log-likelihood: the objective of pre-training and
 * fine-tuning. inv_tokens = 1 / (target tokens in the GLOBAL batch). */
typedef struct {
    double inv_tokens;
} nll_objective_ctx;
double nll_objective_seq(const struct lethe_objective *o, int b, double s, double n, double *w);

/* Target tokens in the global batch: the replica's count summed over dp. */
double model_count_targets(const lethe_model *m, const lethe_batch *b);

#endif
