/* model/stage.h — internal: one pipeline stage's forward and backward of one
 * micro-batch, used by the schedule in model/pipeline.c. Not for jobs. */
#ifndef LETHE_STAGE_H
#define LETHE_STAGE_H

#include "transformer.h"

/* The gradient of parameter element p (a pointer into m->w.params.data). */
static inline float *model_grad(const lethe_model *m, const float *p)
{
    return m->w.params.grad + (p - m->w.params.data);
}

/* Runs this stage's layers on slot->resid[0] (filled by the caller: received
 * activations, or the embedding on the first stage via stage_embed). On the last
 * stage also the final norm, the head and the vocab-parallel log-probabilities of
 * micro-batch mb of b (its targets, and its soft targets when b has them) into
 * slot->logp and per-sequence sums into seq_s/seq_n (Bm each). */
void stage_embed(lethe_model *m, lethe_slot *s, const int *tokens);
void stage_forward(lethe_model *m, lethe_slot *s, const lethe_batch *b, int mb, double *seq_s,
                   double *seq_n);
/* Last stage, after stage_forward of micro-batch mb: its log-softmax shard into
 * out (Bm*T, v_l) and per-sequence negative entropies into negent (Bm). */
void stage_log_softmax(lethe_model *m, const int *targets, float *out, double *negent);
/* Last stage, after stage_forward of micro-batch mb of b: the gradient of the stage
 * output into m->ws.dx from the loss gradient dlogp (Bm*T): d loss / d logp per token. */
void stage_head_backward(lethe_model *m, lethe_slot *s, const lethe_batch *b, int mb,
                         const float *dlogp);
/* Backward of this stage's layers from m->ws.dx (gradient of the stage output),
 * leaving the gradient of the stage input in m->ws.dx. First stage: also the
 * embedding gradient. */
void stage_backward(lethe_model *m, lethe_slot *s, const int *tokens);

#endif
