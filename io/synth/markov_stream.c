/* io/synth/markov_stream.c — the deterministic Markov token source. */
#include "markov_stream.h"

#include "../../model/params.h"

static uint64_t h3(uint64_t a, uint64_t b, uint64_t c)
{
    return lethe_hash64(lethe_hash64(lethe_hash64(a) ^ b) ^ c);
}

void synth_stream_batch(const synth_stream *s, int64_t step, int64_t g0, int B, int T, int *tokens,
                        int *targets)
{
    for (int b = 0; b < B; b++) {
        uint64_t sid = h3(s->seed, (uint64_t)step, (uint64_t)(g0 + b));
        int len = s->min_len + (int)(sid % (uint64_t)(T - s->min_len + 1));
        int *tok = tokens + (size_t)b * T, *tg = targets + (size_t)b * T;
        int cur = (int)(lethe_hash64(sid ^ 0x5eedULL) % (uint64_t)s->vocab);
        for (int t = 0; t < T; t++) {
            if (t < len) {
                tok[t] = cur;
                int j = (int)(h3(sid, (uint64_t)t, 0x9e37ULL) % (uint64_t)s->branching);
                cur = (int)(h3(s->seed, (uint64_t)tok[t], (uint64_t)j) % (uint64_t)s->vocab);
            } else {
                tok[t] = 0;
            }
        }
        for (int t = 0; t < T; t++)
            tg[t] = (t + 1 < len && t + 1 >= s->prompt_len) ? tok[t + 1] : -1;
    }
}
