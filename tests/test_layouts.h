/* tests/test_layouts.h — what test_layouts.c (the layout matrix) takes from
 * test_layouts_unlearn.c (the unlearning objectives through the same pipeline). */
#ifndef LETHE_TEST_LAYOUTS_H
#define LETHE_TEST_LAYOUTS_H

#include "io/synth/markov_stream.h"
#include "model/transformer.h"
#include "mpi/grid.h"

#define N_UOBJ 12
#define UOBJ_PAIRS 10 /* idknll, dpo: the pair batch of pair_batch() */

/* Objective `which` (UOBJ_NAME) on batch b: the global loss, gradients reduced over dp,
 * and in *scale the size a loss error is measured against. */
double unlearn_grads(lethe_model *m, const lethe_grid *g, const lethe_batch *b, int which,
                     double *scale);
extern const char *const UOBJ_NAME[N_UOBJ];
/* The pair methods' batch of replica dp_rank of dp (dp <= 2). */
void pair_batch(synth_stream *src, int dp_rank, int dp, lethe_batch *pb);

#endif
