/* io/synth/markov_stream.h — the "synthetic-markov" token source: a deterministic stream
 * of sequences from a sparse random Markov chain, for training before any
 * dataset exists and for benchmarks.
 *
 * Every token v has `branching` successors chosen by a hash of (seed, v, j);
 * sequence g of step k starts at a hashed token, follows the chain with hashed
 * choices, and has a hashed length in [min_len, T]. Everything is a function of
 * (seed, step, global sequence index), so any replica can generate exactly its
 * slice of the global batch: the data do not depend on the layout. A model that
 * learns the chain reaches a loss of log(branching) nats per token. */
#ifndef LETHE_SYNTH_STREAM_H
#define LETHE_SYNTH_STREAM_H

#include <stdint.h>

typedef struct {
    uint64_t seed;
    int vocab, branching, prompt_len, min_len;
} synth_stream;

/* Fills tokens and targets (B, T) with global sequences [g0, g0 + B) of step
 * `step`. targets[t] = tokens[t+1] when t+1 < length and t+1 >= prompt_len,
 * else -1; tokens past the length are 0. */
void synth_stream_batch(const synth_stream *s, int64_t step, int64_t g0, int B, int T, int *tokens,
                        int *targets);

#endif
