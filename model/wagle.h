/* model/wagle.h — WAGLE's weight attribution (Jia et al., "WAGLE: Strategic Weight
 * Attribution for Effective and Modular Unlearning in Large Language Models", NeurIPS
 * 2024): each weight's score |(theta - grad L_r / mu) * grad L_f| at the starting
 * weights, the GLOBAL top-p selection of the scores over every shard of every tensor
 * (a bisection on the scores' bit patterns with one all-reduce per probe, so every rank
 * gets the same threshold whatever the layout), and the mask it leaves in the parameter
 * table (lethe_params.mask: AdamW and weight decay only where it is 1, gradients zeroed
 * elsewhere before the norm). */
#ifndef LETHE_WAGLE_H
#define LETHE_WAGLE_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "params.h"

/* score (n) = |(w - gr / mu) * gf|. */
void wagle_scores(float *score, const float *w, const float *gf, const float *gr, double mu,
                  size_t n);
/* counted (total) = 1 where an element of t counts once in a global selection: owner
 * copies (not a tied duplicate), the real (unpadded) extent, a tensor replicated over tp
 * on tp rank 0 only, and dp replica 0 only (the replicas hold the same values). */
void wagle_counted(unsigned char *counted, const lethe_params *t, int dp_rank, int tp_rank);
/* The global top-p threshold of non-negative finite scores x (n) over comm: the bit
 * pattern tau of the largest value such that at least ceil(p * N) counted elements of
 * all ranks have x >= tau (N: all counted elements), but never 0: a score of exactly 0
 * (a weight the forget gradient does not touch, e.g. the embedding row of a token absent
 * from the scoring batches) is never kept, so when more than (1 - p) N scores are 0 the
 * mask is every positive score. *total = N, *kept = how many have x >= tau (more than
 * ceil(p N) only on ties, fewer when zeros were cut). Collective; the same on every
 * rank. */
uint32_t topp_threshold(const float *x, const unsigned char *counted, size_t n, double p,
                        MPI_Comm comm, int64_t *total, int64_t *kept);
/* mask (n) = 1 where x >= the value with bit pattern tau. */
void topp_mask(unsigned char *mask, const float *x, size_t n, uint32_t tau);
/* Zeroes the gradients outside t->mask in [lo, hi) (nothing without a mask). */
void params_mask_grads(lethe_params *t, size_t lo, size_t hi);

#endif
