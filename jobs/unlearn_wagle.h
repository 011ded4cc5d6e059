/* jobs/unlearn_wagle.h — WAGLE in `lethe unlearn` (unlearn.wagle.p > 0): before the first
 * step, the weights are scored at the starting weights from the gradients of the
 * method's forget term and of the retain loss over unlearn.wagle.batches batch pairs of
 * the job's own streams (rewound after), and the top p fraction is kept as the mask
 * (model/wagle.h: one global selection over every shard). The mask is part of every
 * checkpoint the job writes (checkpoint.h5 and model.h5: /wagle_mask, io/checkpoint.h),
 * with its settings and counts in /job (wagle_state_keys); a resumed run reads it back
 * from checkpoint.h5 under any layout instead of scoring again, and scores as before when
 * the checkpoint holds none (one written without WAGLE, or by a lethe that kept the mask
 * in wagle_mask.h5). A checkpoint with a mask is refused (exit 2, one line) by a run whose
 * unlearn.wagle.p, mu or batches differ, including a run without WAGLE. */
#ifndef LETHE_UNLEARN_WAGLE_H
#define LETHE_UNLEARN_WAGLE_H

#include "../io/loader.h"
#include "jobs.h"

/* Refuses (exit 2, every rank) WAGLE with a method other than graddiff, npo, simnpo. */
void wagle_check(lethe_session *S);
#define WAGLE_N_STATE 6
/* The /job names of the values wagle_prepare gives: p, mu, batches, kept, total and the
 * threshold score. */
extern const char *const wagle_state_keys[WAGLE_N_STATE];
/* Sets S's model's mask (nothing when unlearn.wagle.p is 0) and returns how many values
 * of state (WAGLE_N_STATE) the job's checkpoints carry under wagle_state_keys (0 when
 * WAGLE is off). grads(job, gf, gr) adds the gradients of the streams' next batch pair
 * (forget term, retain loss) to gf and gr; the n_loaders loaders are rewound after. */
int wagle_prepare(lethe_session *S, loader *const *loaders, int n_loaders,
                  void (*grads)(void *job, float *gf, float *gr), void *job, double *state);
/* Frees the mask. */
void wagle_free(lethe_session *S);

#endif
