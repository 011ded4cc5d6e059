/* model/block.h — internal: one decoder block of this rank's shard, forward and
 * backward. The same forward serves training (B sequences of T positions, causal
 * attention over them) and KV-cached generation (one position at pos0, attention
 * over the cache): the attention step is the only difference and the caller
 * supplies it. Not for jobs. */
#ifndef LETHE_BLOCK_H
#define LETHE_BLOCK_H

#include "transformer.h"

/* The attention step of block l: from a->q (B*T, nh_l*hd) and a->k, a->v (B*T,
 * nkv_l*hd), rotated for positions pos0.., writes a->att (B*T, nh_l*hd). */
typedef void (*block_attention)(void *ctx, const lethe_model *m, int l, lethe_layer_act *a, int B,
                                int T, int pos0);

/* Training's attention step: causal over the T positions of each sequence, keeping
 * a->probs (B, nh_l, T, T) for the backward (ctx unused). */
void block_full_attention(void *ctx, const lethe_model *m, int l, lethe_layer_act *a, int B, int T,
                          int pos0);

/* out (B*T, C) = block l of x (B*T, C) at positions pos0.. (out may be x), keeping
 * its activations in a. */
void block_forward(const lethe_model *m, int l, lethe_layer_act *a, const float *x, float *out,
                   int B, int T, int pos0, block_attention attend, void *ctx);

/* Backward of block l of a training forward (Bm x T at position 0) from m->ws.dx, the
 * gradient of its output, which becomes that of its input x; weight gradients
 * accumulate. */
void block_backward(lethe_model *m, int l, const lethe_layer_act *a, const float *x);

#endif
