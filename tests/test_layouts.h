/* tests/test_layouts.h — what test_layouts.c (the layout matrix) takes from
 * test_layouts_unlearn.c (the unlearning objectives through the same pipeline). */
#ifndef LETHE_TEST_LAYOUTS_H
#define LETHE_TEST_LAYOUTS_H

#include "io/synth/markov_stream.h"
#include "model/transformer.h"
#include "mpi/grid.h"

#define N_UOBJ 13
#define UOBJ_PAIRS 10 /* idknll, dpo, idkdpo: the pair batch of pair_batch() */
#define PAIR_Q 8      /* the pair batch's questions: one per replica at dp 8 */
#define PAIR_B 32     /* its global rows: PAIR_Q y_l, PAIR_Q y_w, 2 PAIR_Q retain */

/* Objective `which` (UOBJ_NAME) on batch b: the global loss, gradients reduced over dp,
 * and in *scale the size a loss error is measured against. */
double unlearn_grads(lethe_model *m, const lethe_grid *g, const lethe_batch *b, int which,
                     double *scale);
extern const char *const UOBJ_NAME[N_UOBJ];
/* The pair methods' batch of replica dp_rank of dp (PAIR_B / dp rows, dp <= 8). */
void pair_batch(synth_stream *src, int dp_rank, int dp, lethe_batch *pb);

/* RMU and WAGLE (test_layouts_extra.c): quantity x (XOBJ_NAME) of batch b left in the
 * gradient buffer, its global loss returned (with *scale), the weights reset after;
 * *bad: weights outside the WAGLE mask the step changed (every rank's, summed). */
#define N_XOBJ 4
double extra_grads(lethe_model *m, const lethe_grid *g, const lethe_batch *b, int x,
                   double *scale, long *bad);
extern const char *const XOBJ_NAME[N_XOBJ];
/* Whether tensor `name` is compared for x (RMU: the trained down_proj tensors alone). */
int extra_compared(const lethe_model_config *cfg, int x, const char *name);

#endif
