/* jobs/unlearn_rmu.h — the unlearn job's RMU step (model/rmu.h): its checks, its state
 * and its optimizer step over the job's batch (forget rows, then retain rows). */
#ifndef LETHE_UNLEARN_RMU_H
#define LETHE_UNLEARN_RMU_H

#include "jobs.h"

typedef struct unlearn_rmu unlearn_rmu;

/* Refuses, on every rank in one line, settings RMU cannot run (before any output). */
void unlearn_rmu_check(lethe_session *S);
/* After the starting weights are loaded: keeps what the frozen model needs. B: the
 * replica's rows per step; Bf, Br: forget and retain rows of the global batch. */
unlearn_rmu *unlearn_rmu_open(lethe_session *S, int B, int Bf, int Br);
/* One step on b (rows with is_forget first); values: forget term, retain term, the
 * forget rows' mean cosine of h with u, their mean token log-likelihood. */
void unlearn_rmu_step(unlearn_rmu *R, const lethe_batch *b, const unsigned char *is_forget,
                      int step, int total, step_stats *st, double *values);
void unlearn_rmu_free(unlearn_rmu *R);

#endif
