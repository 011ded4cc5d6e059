/* analysis/markov_kl.h — KL to the true chains of a Markov-chain mixture (`lethe synth`
 * kind "markov", the SimNPO paper's analysis): the pure math of `lethe eval` on such a
 * dataset, no MPI, no I/O.
 *
 * A chain of S states has a transition matrix P (S, S) and an initial distribution
 * init (S). The true next-state distribution p after a context is init after BOS and
 * row s of P after state s. At a position where the model's next-token distribution is
 * q (over the whole vocabulary),
 *     KL_t = sum_j p_j log p_j - sum_j p_j log q_j  =  negentropy(p) - cross
 * over the S state tokens: mass the model puts on other tokens is not renormalised
 * away, so it counts as error. The cross term is what the model's cross-entropy
 * computes with soft targets whose log-probabilities are markov_log_targets. A row's
 * KL is summed over its positions; a set of rows is reported per token (the sum over
 * rows of KL over the sum of positions). */
#ifndef LETHE_MARKOV_KL_H
#define LETHE_MARKOV_KL_H

#include <stdint.h>

/* One evaluated row. */
typedef struct {
    int64_t id;        /* sample id */
    double kl, nll, n; /* KL summed over the row's positions, NLL per token, positions */
} markov_row;

/* The context of a position whose current token is `token`: the state itself (0..S-1),
 * S after BOS (token == bos), or -1 for a token that is neither. */
int markov_context(int token, int S, int bos);

/* The true next-state distribution (S) after context ctx (0..S; S = BOS) of the chain
 * with transition matrix P (S, S) and initial distribution init (S). */
const double *markov_true_dist(const double *P, const double *init, int S, int ctx);

/* sum_j p_j log p_j of a distribution p (S), terms with p_j = 0 omitted. */
double markov_negentropy(const double *p, int S);

/* Soft-target log-probabilities of the vocabulary columns [v0, v0 + vl) (one tensor-
 * parallel shard): lq[j] = log p[v0 + j] for a state token with p > 0, -inf otherwise. */
void markov_log_targets(float *lq, const double *p, int S, int v0, int vl);

/* A row's KL per token (kl / n), NAN for a row without positions. */
double markov_row_kl(const markov_row *r);

/* Token-mean KL (NAN without positions) and mean probability exp(-nll) (NAN for n = 0)
 * of rows r[0..n). Returns 0, or -1 when scratch memory runs out. */
int markov_aggregate(const markov_row *r, int64_t n, double *kl, double *prob);

#endif
