/* model/generate.h — greedy generation with a KV cache, under any layout.
 *
 * One sequence at a time per replica: every rank of the replica (its pp x tp
 * ranks) calls gen_greedy with the same prompt. The prompt runs through the blocks
 * in one pass (each all-reduce and stage hand-over once for all its tokens), then
 * one pass per generated token. Each tp rank caches the keys and
 * values of its own kv-heads, each pp stage those of its own layers; a token's
 * hidden state crosses the stages point-to-point, the row-parallel outputs are
 * all-reduced over tp as in training, and the next token is the vocab-parallel
 * argmax (MPI_MAXLOC over tp; ties go to the lowest id, so every layout picks
 * the same token) broadcast from the last stage to the others. */
#ifndef LETHE_GENERATE_H
#define LETHE_GENERATE_H

#include "transformer.h"

typedef struct {
    lethe_model *m;
    int max_t;            /* cache length (<= model.max_seq_len) */
    float *kcache, *vcache; /* (nl, max_t, nkv_l * hd) */
    float *x, *ln, *q, *k, *v, *att, *xmid, *ln2, *gate, *up, *h, *rstd, *scores, *logits;
    lethe_layer_act act;  /* the block's activations of one token, pointing into the above */
} lethe_generator;

void gen_create(lethe_generator *g, lethe_model *m, int max_t);
void gen_free(lethe_generator *g);

/* Greedy continuation of prompt[0..p) for at most max_new tokens, stopping after
 * `eos` (not stored; eos < 0 never stops early) or at the cache length. Writes
 * the generated ids to out (every rank of the replica) and returns their count.
 * Collective over the replica. */
int gen_greedy(lethe_generator *g, const int *prompt, int p, int max_new, int eos, int *out);

#endif
