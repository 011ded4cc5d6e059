/* model/stage.h — internal: one pipeline stage's forward and backward of one
 * micro-batch, used by the schedule in model/pipeline.c. Not for jobs. */
#ifndef LETHE_STAGE_H
#define LETHE_STAGE_H

#include "transformer.h"

/* The gradient of parameter element p (a pointer into m->params.data). */
static inline float *model_grad(const lethe_model *m, const float *p)
{
    return m->params.grad + (p - m->params.data);
}

/* Runs this stage's layers on slot->resid[0] (filled by the caller: received
 * activations, or the embedding on the first stage via stage_embed). On the last
 * stage also the final norm, the head and the vocab-parallel log-probabilities of
 * `targets` (Bm, T) into slot->logp and per-sequence sums into seq_s/seq_n
 * (soft-target sequences per m->soft_seq; mb: the micro-batch's index). */
void stage_embed(lethe_model *m, lethe_slot *s, const int *tokens);
void stage_forward(lethe_model *m, lethe_slot *s, int mb, const int *targets, double *seq_s,
                   double *seq_n);
/* Last stage, after stage_forward of micro-batch mb: its log-softmax shard into
 * out (Bm*T, v_l) and per-sequence negative entropies into negent (Bm). */
void stage_log_softmax(lethe_model *m, const int *targets, float *out, double *negent);
/* Last stage, after stage_forward of micro-batch mb: the gradient of the stage
 * output into m->dx from the loss gradient dlogp (Bm*T): d loss / d logp per token. */
void stage_head_backward(lethe_model *m, lethe_slot *s, int mb, const int *targets,
                         const float *dlogp);
/* Backward of this stage's layers from m->dx (gradient of the stage output),
 * leaving the gradient of the stage input in m->dx. First stage: also the
 * embedding gradient. */
void stage_backward(lethe_model *m, lethe_slot *s, const int *tokens);

#endif
