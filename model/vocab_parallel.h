/* model/vocab_parallel.h — the vocabulary split over tp: embedding lookup and
 * cross-entropy (Megatron's VocabParallelEmbedding and vocab-parallel CE).
 *
 * Rank r of tp holds rows [v0, v0 + nv) of the vocabulary padded to a multiple of
 * tp; the first nvalid of them are real. The lookup gives zeros for tokens outside
 * the shard and all-reduces the rows over tp; its backward scatters into the shard
 * and needs no communication. The cross-entropy never gathers logits: it
 * all-reduces the row max, then the sums of exps together with the target logit
 * (and, with soft targets, the cross term and the target mass) over tp; its
 * backward is local. */
#ifndef LETHE_VOCAB_PARALLEL_H
#define LETHE_VOCAB_PARALLEL_H

#include <mpi.h>

#include "../mpi/comm.h"

typedef struct {
    int nv;     /* rows held (padded vocabulary / tp) */
    int nvalid; /* real rows among them */
    int v0;     /* first row */
    MPI_Comm tp;
    comm_stats *st; /* the model's traffic account (lethe_workspace.comm) */
} vocab_shard;

/* out (N, C) = table rows of tokens (N), summed over the tp shards. */
void vocab_parallel_embedding_forward(float *out, const int *tokens, const float *table, int N,
                                      int C, const vocab_shard *v);
/* dtable (nv, C) += dout (N, C) scattered by token within the shard. No communication. */
void vocab_parallel_embedding_backward(float *dtable, const float *dout, const int *tokens, int N,
                                       int C, const vocab_shard *v);

/* Log-probabilities of B sequences of T positions from this rank's logits shard
 * (B*T, nv): logp (B*T) = log p(target) at positions with a target (targets >= 0),
 * 0 elsewhere. Sequence b takes soft targets when soft_seq && soft_seq[b]: the
 * distribution whose log is rows b*T.. of soft_lp (B*T, nv), and logp is then
 * sum_j q_j log p_j. stats (4*B*T) keeps the reduced max, sum of exps, target term
 * and soft mass for the backward and for vocab_parallel_log_softmax. */
void vocab_parallel_ce_forward(float *logp, float *stats, const float *logits, const int *targets,
                               const float *soft_lp, const unsigned char *soft_seq, int B, int T,
                               const vocab_shard *v);
/* vocab_parallel_ce_forward and _backward for hard targets and one gradient weight w per
 * target token (the token-mean NLL) in one call: logp (N) and stats as the forward
 * leaves them; the gradient overwrites the logits (N, nv). The exps of the loss's sweep
 * are kept for the gradient, not recomputed. Two all-reduces over tp, as the forward. */
void vocab_parallel_nll_fused(float *logp, float *stats, float *logits, const int *targets, float w,
                              int N, const vocab_shard *v);
/* dlogits (B*T, nv) = the gradient of sum_n g[n] logp[n] (overwritten), from the
 * stats of the forward of the same logits. No communication. */
void vocab_parallel_ce_backward(float *dlogits, const float *logits, const float *stats,
                                const int *targets, const float *soft_lp,
                                const unsigned char *soft_seq, const float *g, int B, int T,
                                const vocab_shard *v);
/* After vocab_parallel_ce_forward: out (B*T, nv) = this shard of log-softmax (padding
 * -INF), and negent (B) = per sequence, sum over positions with a target of
 * sum_j p_j log p_j (all-reduced over tp). h: scratch of B*T doubles. */
void vocab_parallel_log_softmax(float *out, double *negent, double *h, const float *logits,
                                const float *stats, const int *targets, int B, int T,
                                const vocab_shard *v);
/* Target distributions with the true token's logit lowered by `drop` (CE-U: INFINITY,
 * the token excluded; UNDIAL: its strength beta): in rows b with rows[b], at each
 * position with a target y, out (this shard of log p, as vocab_parallel_log_softmax
 * left it) becomes log q, q = softmax(logits - drop * onehot(y)): log p_j - c, and at y
 * also - drop (-INF when excluded), with c = log(sum_{j != y} p_j + p_y e^-drop) summed
 * from out itself (in double, over all shards: one all-reduce of B*T doubles over tp),
 * so q sums to 1 whatever rounding out's common shift carries; c from 1 - p_y would
 * magnify that shift by 1 / (1 - p_y) when the target is memorised (p_y near 1).
 * norm: scratch of B*T doubles. Every tp rank of the stage calls it. */
void vocab_parallel_lower_targets(float *out, double *norm, const int *targets,
                                  const unsigned char *rows, double drop, int B, int T,
                                  const vocab_shard *v);
/* A (value, id) pair of MPI_FLOAT_INT, for MPI_MAXLOC. */
typedef struct {
    float v;
    int i;
} vocab_best;
/* The id of the largest logit of each of k rows (k, nv) over all shards, in one
 * all-reduce (best: k pairs of scratch); ties go to the lowest id, so every layout
 * picks the same token. Same result on every tp rank. */
void vocab_parallel_argmax_rows(int *ids, vocab_best *best, const float *logits, int k,
                                const vocab_shard *v);

/* PDU's logit margins (model/vocab_margin.c): in rows b with rows[b], at each position
 * n with a target, d[n] = max_j z_j - (sum_j z_j) / V over the V real vocabulary
 * entries of all shards, and arg[n] = the id of the largest (ties: the lowest id, so
 * every layout picks the same); d = 0 and arg = -1 elsewhere. gmax (B*T): the row
 * maxima vocab_parallel_ce_forward left in its stats. Two all-reduces over tp. */
void vocab_parallel_margin_forward(float *d, int *arg, const float *logits, const float *gmax,
                                   const int *targets, const unsigned char *rows, int B, int T,
                                   int V, const vocab_shard *v);
/* dlogits (B*T, nv) += the gradient of sum_n gd[n] d[n]: gd[n] (1[j = arg] - 1/V).
 * No communication. */
void vocab_parallel_margin_backward(float *dlogits, const int *arg, const float *gd,
                                    const unsigned char *rows, int B, int T, int V,
                                    const vocab_shard *v);

#endif
