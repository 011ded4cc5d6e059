/* model/optim.h — AdamW over the parameter table and the learning-rate schedule.
 *
 * AdamW with bias correction and decoupled weight decay (applied only to tensors
 * whose table entry has decay = 1: matrices and embeddings, not norms). The
 * update is element-wise (with a WAGLE mask, only where the mask is 1), so it runs
 * on each rank's piece with no communication; replicas and tied copies stay bitwise
 * identical because their gradients are. */
#ifndef LETHE_OPTIM_H
#define LETHE_OPTIM_H

#include "model_config.h"
#include "params.h"

/* Learning rate at step `step` (0-based) of `total`: linear warm-up over
 * warmup_steps from lr/warmup to lr, then constant, linear or cosine decay to
 * min_lr at the last step. */
float lr_at(const lethe_optim_config *o, int step, int total);

/* One AdamW step on the elements [lo, hi) of the flat buffers (all of them: 0, total;
 * one dp replica's share when the replicas split the update); `step` counts from 1
 * (bias correction); gradients are multiplied by grad_scale first (global-norm
 * clipping). */
void adamw_range(lethe_params *t, const lethe_optim_config *o, float lr, int step,
                 float grad_scale, size_t lo, size_t hi);

/* Scale that clips a gradient of norm `norm` to o->grad_clip (1 if disabled or below). */
float clip_scale(const lethe_optim_config *o, double norm);

#endif
