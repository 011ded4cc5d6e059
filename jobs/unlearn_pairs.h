/* jobs/unlearn_pairs.h — what `lethe unlearn` adds for idknll, dpo and idkdpo: the stream
 * of alternate answers (model/objective_pairs.h), row for row in step with the forget
 * stream, and the pair rows' forward-only sums. jobs/unlearn.c owns the batch; these
 * calls fill its alternate rows and the objective's pair fields. */
#ifndef LETHE_JOBS_UNLEARN_PAIRS_H
#define LETHE_JOBS_UNLEARN_PAIRS_H

#include "../io/loader.h"
#include "../model/objectives.h"
#include "jobs.h"

typedef struct {
    int on;             /* the method takes alternate answers (rows [rf, 2 rf) of the batch) */
    char split[80];     /* their split: data.alternate_split, or <forget_split>_idk */
    loader *la;         /* the same seed, order and batches as the forget loader */
    double *pair_s, *pair_n; /* (rows) dpo, idkdpo: pairs_forward's sums */
} unlearn_alt;

/* Checks the method's alternate split against the forget split (the same rows and
 * length; every refusal one line, exit 2, on every rank) and opens its loader like lf. */
void alt_open(unlearn_alt *A, lethe_session *S, loader *lf, int Bf, uint64_t seed);
/* Buffers for a batch of `rows` rows per replica. */
void alt_buffers(unlearn_alt *A, int rows);
/* The alternate answers of the forget batch fb into rows [r0, r0 + fb's rows) of b: the
 * stream is moved to fb's cursor first (a resumed run), and each row's sample_id must
 * be its forget row's. */
void alt_fill(unlearn_alt *A, lethe_session *S, lethe_batch *b, int r0, const loader_batch *fb);
/* dpo, idkdpo: the forward-only sums of the 2 rf pair rows, into c->pair_s. */
void alt_forward(unlearn_alt *A, lethe_model *m, const lethe_batch *b, int rf, unlearn_ctx *c);
void alt_free(unlearn_alt *A);

#endif
