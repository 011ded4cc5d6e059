/* model/kernels.h — forward and backward kernels of the decoder, fp32.
 *
 * Conventions (llm.c style): outputs first, then inputs, then sizes. Every
 * array's shape is given in the comment. Every *_backward ACCUMULATES (+=)
 * into the gradients of its inputs and parameters; callers zero them first.
 * Weights use the Hugging Face layout: a linear layer's weight is (OC, C) and
 * computes out = inp @ weight^T. No kernel communicates: tensor-parallel
 * reductions are done by the layers that call them (model/tp_linear.h,
 * model/vocab_parallel.h). */
#ifndef LETHE_KERNELS_H
#define LETHE_KERNELS_H

#include <stddef.h>

#include "model_config.h"

/* sum_i x[i]^2 in double, accumulated in float over blocks of 4096 elements in 16
 * independent lanes (vectorisable; a block's error stays at fp32 rounding of 256 terms). */
double sum_squares(const float *x, size_t n);

/* sum_k a[k] b[k] over n elements, in 16 partial sums combined in a fixed order. */
float row_dot(const float *a, const float *b, int n);

/* out (N, OC) = inp (N, C) @ weight (OC, C)^T.  Overwrites out. N <= 8 (a decoding
 * step) reads each weight row once for all N rows instead of calling sgemm, which
 * would pack all of weight; every out[n, o] is then the same for any N. */
void matmul_forward(float *out, const float *inp, const float *weight, int N, int C, int OC);
/* dinp (N, C) += dout (N, OC) @ weight (OC, C);  dweight (OC, C) += dout^T @ inp.
 * dinp or dweight may be NULL to skip that product. */
void matmul_backward(float *dinp, float *dweight, const float *dout, const float *inp,
                     const float *weight, int N, int C, int OC);

/* RMSNorm: rstd[n] = 1/sqrt(mean_c inp[n,c]^2 + eps); out = inp * rstd * weight.
 * out (N, C), rstd (N), inp (N, C), weight (C). */
void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight, int N, int C,
                     float eps);
void rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp,
                      const float *weight, const float *rstd, int N, int C);

/* Rotary tables for head size hd (even), positions 0..T-1, Hugging Face Llama
 * convention (rotate_half: pairs (i, i + hd/2), inv_freq[i] = theta^(-2i/hd)).
 * cos, sin (T, hd/2). */
void rope_tables(float *cos_t, float *sin_t, int T, int hd, float theta);
/* The same with the frequencies rescaled as rs says (NULL or type ROPE_NONE: as
 * rope_tables); see model/model_config.h for llama3. */
void rope_tables_scaled(float *cos_t, float *sin_t, int T, int hd, float theta,
                        const lethe_rope_scaling *rs);
/* In place on x (B, T, nh, hd) viewed with row stride `stride` floats between
 * consecutive (b, t) rows (stride >= nh*hd). */
void rope_forward(float *x, const float *cos_t, const float *sin_t, int B, int T, int nh, int hd,
                  int stride);
/* The transpose of rope_forward (rotation by -angle), in place on the gradient. */
void rope_backward(float *dx, const float *cos_t, const float *sin_t, int B, int T, int nh, int hd,
                   int stride);

/* Causal grouped-query attention.
 * q (B, T, NH, hd), k and v (B, T, NKV, hd), out (B, T, NH, hd), probs (B, NH, T, T)
 * (softmax of q.k/sqrt(hd) over keys <= query position; zeros above the diagonal).
 * Query head h reads kv head h / (NH / NKV). NH % NKV == 0. */
void attention_forward(float *out, float *probs, const float *q, const float *k, const float *v,
                       int B, int T, int NH, int NKV, int hd);
/* dq, dk, dv += gradients. scratch holds T*T floats. */
void attention_backward(float *dq, float *dk, float *dv, float *scratch, const float *dout,
                        const float *probs, const float *q, const float *k, const float *v, int B,
                        int T, int NH, int NKV, int hd);

/* SwiGLU: out = silu(gate) * up;  out, gate, up (N). The backward overwrites dgate and dup
 * (their only source), so they need no zeroing first. */
void swiglu_forward(float *out, const float *gate, const float *up, size_t N);
void swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                     const float *up, size_t N);

/* Embedding lookup of the rows [v0, v0 + nv) of a vocabulary table; tokens outside
 * that range produce zeros (vocab-parallel: the tp ranks' outputs sum to the full lookup).
 * out (N, C), tokens (N), table (nv, C). Overwrites out. */
void embedding_forward(float *out, const int *tokens, const float *table, int N, int C, int v0,
                       int nv);
/* dtable (nv, C) += scatter of dout (N, C) by token, for tokens in [v0, v0 + nv). */
void embedding_backward(float *dtable, const float *dout, const int *tokens, int N, int C, int v0,
                        int nv);

/* Cross-entropy over a vocabulary shard, in one sweep over the logits, so a
 * tensor-parallel caller can all-reduce after it without gathering logits.
 * logits (N, nv) hold columns [v0, v0 + nv) of the full vocabulary; only the
 * first `nvalid` columns are real (the rest is padding, excluded).
 * 1. ce_local_stats: lmax (N) = max over the shard's valid columns (-INF if none);
 *    sumexp (N) = sum exp(logit - lmax) (0 if none); tlogit (N) = logit of
 *    targets[n] if it is in this shard, else 0.
 * 2. the caller: gmax = all-reduce max of lmax; sumexp *= exp(lmax - gmax) (exactly 1
 *    on one shard); all-reduce the sums.
 * 3. logp[n] = tlogit - gmax - log(gsumexp)   (done by the caller).
 * ce_backward: dlogits (N, nv) = g[n] * (onehot - softmax), i.e. the gradient of
 *    sum_n g[n] * logp[n]. Overwrites dlogits; padding columns get 0. */
void ce_local_stats(float *lmax, float *sumexp, float *tlogit, const float *logits,
                    const int *targets, int N, int nv, int nvalid, int v0);
void ce_backward(float *dlogits, const float *logits, const float *gmax, const float *gsumexp,
                 const int *targets, const float *g, int N, int nv, int nvalid, int v0);
/* The whole vocabulary on one shard and one gradient weight w for every target token
 * (the token-mean NLL): ce_local_stats, the caller's logp and ce_backward with
 * g[n] = targets[n] >= 0 ? w : 0, in one sweep per row while it is in cache. The same
 * floats as those three, bit for bit: stats gets gmax, sumexp, tlogit and zero soft mass
 * (N each), logp (N), dlogits (N, nv; may be logits: the gradient then overwrites them). */
void ce_fused_nll(float *logp, float *stats, float *dlogits, const float *logits,
                  const int *targets, float w, int N, int nv, int nvalid);
/* The same on a vocabulary shard, in two halves around the caller's reduction (steps 2
 * and 3 above). ce_nll_terms: ce_local_stats, with exp(logit - lmax) also stored in
 * dlogits (may be logits) for the rows with a target. ce_nll_grad: from those terms and
 * the reduced gmax and gsumexp, dlogits = w (onehot - softmax) on rows with a target, 0
 * on the others and on padding: ce_backward's gradient without recomputing the exps. On
 * one shard (lmax = gmax) the two give ce_fused_nll's floats, bit for bit. */
void ce_nll_terms(float *lmax, float *sumexp, float *tlogit, float *dlogits, const float *logits,
                  const int *targets, int N, int nv, int nvalid, int v0);
void ce_nll_grad(float *dlogits, const float *lmax, const float *gmax, const float *gsumexp,
                 const int *targets, float w, int N, int nv, int nvalid, int v0);

/* Soft targets: a distribution q over the vocabulary in place of one target id
 * (the KL retain term, per-token KL to known transition matrices). q is given as
 * log q on the shard's columns, soft_lp (N, nv); only valid columns are read.
 * ce_local_cross: cross (N) = sum_j q_j * logit_j and qsum (N) = sum_j q_j over the
 *    shard (the caller all-reduces both with sumexp); then
 *    sum_j q_j log p_j = cross - (gmax + log gsumexp) * gqsum.
 * ce_soft_backward: dlogits (N, nv) = g[n] * (q - gqsum * softmax), the gradient of
 *    sum_n g[n] * sum_j q_j log p_j. Overwrites dlogits; padding columns get 0.
 * log_softmax_rows: out (N, nv) = logits - gmax - log gsumexp on valid columns,
 *    -INF on padding; negent (N) = sum_j p_j log p_j over the shard's valid columns
 *    (partial: the caller sums over the tp shards). */
void ce_local_cross(float *cross, float *qsum, const float *logits, const float *soft_lp, int N,
                    int nv, int nvalid);
void ce_soft_backward(float *dlogits, const float *logits, const float *gmax,
                      const float *gsumexp, const float *soft_lp, const float *gqsum,
                      const float *g, int N, int nv, int nvalid);
void log_softmax_rows(float *out, double *negent, const float *logits, const float *gmax,
                      const float *gsumexp, int N, int nv, int nvalid);

/* sum_k exp(x[k]) over x[0..n), accumulated in double: the mass of a row of
 * log-probabilities (vocab_parallel_lower_targets' normaliser) */
double sumexp_rows_d(const float *x, int n);

/* out (N) += a (N) */
void add_inplace(float *out, const float *a, size_t N);

#endif
