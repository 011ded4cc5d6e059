/* jobs/unlearn_wagle.h — WAGLE in `lethe unlearn` (unlearn.wagle.p > 0): before the first
 * step, the weights are scored at the starting weights from the gradients of the
 * method's forget term and of the retain loss over unlearn.wagle.batches batch pairs of
 * the job's own streams (rewound after), the top p fraction is kept as the mask
 * (model/wagle.h: one global selection over every shard) and written to
 * output.dir/wagle_mask.h5, a lethe checkpoint whose /params hold the mask as 0/1 at the
 * global shapes (with its threshold and counts in /job); a resumed run reads it back
 * under any layout instead of scoring again. */
#ifndef LETHE_UNLEARN_WAGLE_H
#define LETHE_UNLEARN_WAGLE_H

#include "../io/loader.h"
#include "jobs.h"

/* Refuses (exit 2, every rank) WAGLE with a method other than graddiff, npo, simnpo. */
void wagle_check(lethe_session *S);
/* Sets S's model's mask (nothing when unlearn.wagle.p is 0). grads(job, gf, gr) adds the
 * gradients of the streams' next batch pair (forget term, retain loss) to gf and gr;
 * the n_loaders loaders are rewound after. */
void wagle_prepare(lethe_session *S, loader *const *loaders, int n_loaders,
                   void (*grads)(void *job, float *gf, float *gr), void *job);
/* Frees the mask. */
void wagle_free(lethe_session *S);

#endif
