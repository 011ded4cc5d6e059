/* tests/test_checkpoint.h — what the three files of test_checkpoint share
 * (test_checkpoint.c: main, fixtures and resharding; test_checkpoint_errors.c: bad inputs;
 * test_checkpoint_atomic.c: the --atomic mode; test_checkpoint_mask.c: WAGLE's mask): the model-shaped table and its fill
 * values, the bitwise comparison, the meta a save stores, and the two entry points the
 * main calls. The CHECK counters are those of tests/check.h, defined in test_checkpoint.c. */
#ifndef LETHE_TEST_CHECKPOINT_H
#define LETHE_TEST_CHECKPOINT_H

#include "io/checkpoint.h"
#include "model/params.h"
#include "mpi/grid.h"

#include <stdint.h>

typedef struct {
    int V, C, KV, I, L, tied;
} shape_cfg;

typedef struct {
    int dp, pp, tp;
} layout;

extern const shape_cfg base_cfg;
extern int wrank; /* rank in MPI_COMM_WORLD (0 in --atomic mode) */

void build_for_grid(lethe_params *t, const shape_cfg *c, const lethe_grid *g);
void fill_expected(lethe_params *t);
void fill_garbage(lethe_params *t);
int compare_buffers(const lethe_params *got, const lethe_params *want, int kinds, const char *what);
void make_meta(lethe_ckpt_meta *m, int64_t step, int rank);

void error_cases(MPI_Comm world, const char *dir, layout A);
/* test_checkpoint_mask.c: WAGLE's mask saved under each L[a], loaded under L[a + 1] */
void mask_cases(MPI_Comm world, const char *dir, const layout *L, int nl);
/* test_checkpoint_digest.c: the digests against their definitions (serial) */
void digest_cases(void);
int run_atomic(const char *base);

#endif
