/* tests/test_sbatch.h — what the parts of test_sbatch share: the valid spec of golden case 2
 * (test_sbatch.c), which the validation cases break one field at a time, and the check
 * groups that main runs. */
#ifndef LETHE_TESTS_TEST_SBATCH_H
#define LETHE_TESTS_TEST_SBATCH_H

#include "slurm/sbatch.h"

/* Every option, a batch-shell signal, requeue, Open MPI variables (test_sbatch.c). */
lethe_sbatch_spec spec2(void);

void test_quote(void);      /* test_sbatch_words.c */
void test_times(void);      /* test_sbatch_words.c */
void test_validation(void); /* test_sbatch_validation.c */

#endif
