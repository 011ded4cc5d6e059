/* jobs/unlearn_pdu.h — PDU's part of `lethe unlearn`: the dual variable lambda (its
 * start, its step after every optimizer step, its place in the checkpoint's /job as
 * "pdu_lambda" so a resumed run continues bitwise) and the batch's logit-margin
 * buffers for the forget rows (model/objectives.h). unlearn.c calls these only when
 * unlearn.method is "pdu". */
#ifndef LETHE_UNLEARN_PDU_H
#define LETHE_UNLEARN_PDU_H

#include "../model/objectives.h"
#include "jobs.h"

typedef struct {
    double lambda;       /* the dual variable of the next step (checkpointed) */
    int64_t warm_steps;  /* steps before lambda moves (unlearn.pdu.dual_warmup_epochs) */
    unsigned char *rows; /* (B) the forget rows take the margin term */
    float *margin;       /* (B*T) d, then dL/dd */
    int *arg;            /* (B*T) the arg-max ids */
    lethe_margin_term term;
} pdu_state;

/* The checkpoint's /job key of lambda. */
extern const char *const pdu_state_keys[1];

/* Refuses a PDU run without retain rows (exit 2, every rank), before any heavy work. */
void pdu_check(lethe_session *S, int retain_batch);
/* lambda = unlearn.pdu.lambda0, and the buffers of a batch of rf forget rows then rr
 * retain rows of T positions; spe: steps per epoch. */
void pdu_open(pdu_state *P, const lethe_unlearn_config *u, int rf, int rr, int T, int64_t spe);
/* Before the step: the margin term attached to m, and ctx's lambda. */
void pdu_begin(pdu_state *P, lethe_model *m, unlearn_ctx *ctx);
/* After step `step` (0-based) with the global retain loss L_r: the loss becomes the
 * Lagrangian (minus lambda eps) and lambda takes its dual step (not on a skipped step,
 * nor within the warm-up); m's margin term is detached. Returns the lambda the step
 * used. */
double pdu_end(pdu_state *P, lethe_model *m, const lethe_unlearn_config *u, int step,
               step_stats *st, double retain_loss);
void pdu_free(pdu_state *P);

#endif
