/* model/generate.h — greedy generation with a KV cache, under any layout, batched.
 *
 * A generator holds `batch` sequence slots, each with its own KV cache of max_t
 * positions (allocated at gen_create; a step allocates nothing). gen_greedy_batch
 * runs any number of prompts of different lengths: each step feeds every live slot's
 * next tokens (up to GEN_PREFILL prompt tokens while the slot prefills, its last
 * generated token after) as one matrix multiply per linear layer over all the rows,
 * each row at its own cache position; a slot whose sequence hits eos, its max_new or
 * the cache takes the next waiting prompt. Every rank of the replica (its pp x tp
 * ranks) calls it with the same prompts; dp replicas take different ones. Each tp rank
 * caches the keys and values of its own kv-heads, each pp stage those of its own
 * layers; the live rows' hidden states cross the stages point-to-point, the
 * row-parallel outputs are all-reduced over tp as in training, and the next tokens are
 * the vocab-parallel argmax (MPI_MAXLOC over tp; ties go to the lowest id, so every
 * layout picks the same token) broadcast from the last stage to the others. The
 * tokens are those of one-at-a-time generation (gen_greedy is the batch of one) unless
 * a many-row product rounds differently from a 1-row one and that flips an argmax
 * (tests/test_generate.c checks the built-in models). */
#ifndef LETHE_GENERATE_H
#define LETHE_GENERATE_H

#include "transformer.h"

/* A prefilling slot feeds up to this many prompt tokens in one step. */
#define GEN_PREFILL 32

typedef struct {
    lethe_model *m;
    int max_t;              /* cache length per slot (<= model.max_seq_len) */
    int batch;              /* slots: rows of a step */
    float *kcache, *vcache; /* (nl, batch, max_t, nkv_l * hd) */
    float *x, *ln, *q, *k, *v, *att, *xmid, *ln2, *gate, *up, *h, *rstd; /* (rows_cap, ...) */
    float *scores;          /* (max_t) */
    float *logits;          /* (batch, v_l), last stage */
    int *seq, *pos, *tok;   /* (batch) per slot: sequence (-1 free), position fed, token fed */
    int rows_cap;           /* rows of a step at most: batch * GEN_PREFILL */
    int *row_slot, *row_pos, *row_tok; /* (rows_cap) per row of a step: slot, position, token */
    int *want, *next;            /* (batch) the rows that predict, and their next ids */
    vocab_best *best;            /* (batch) the argmax's (value, id) pairs */
    lethe_layer_act act;    /* the block's activations of a step's rows, pointing into the above */
} lethe_generator;

/* One sequence of gen_greedy_batch: prompt[0..p), at most max_new new tokens into
 * out (room for max_new); n: how many were generated (set by the call). */
typedef struct {
    const int *prompt;
    int p, max_new;
    int *out;
    int n;
} gen_seq;

void gen_create(lethe_generator *g, lethe_model *m, int max_t, int batch);
void gen_free(lethe_generator *g);

/* Greedy continuations of the n sequences, at most g->batch at a time, each stopping
 * after `eos` (not stored; eos < 0 never stops early), at its max_new or at the cache
 * length (a sequence with max_new <= 0 generates nothing and its prompt is not read).
 * Sets seq[i].n and seq[i].out on every rank of the replica. Collective over the
 * replica. */
void gen_greedy_batch(lethe_generator *g, gen_seq *seq, int n, int eos);

/* One sequence: the batch of one. Returns the count of generated ids. */
int gen_greedy(lethe_generator *g, const int *prompt, int p, int max_new, int eos, int *out);

#endif
