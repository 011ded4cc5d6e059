/* tests/test_generate.c — greedy generation with the KV cache.
 *
 * A small model is trained for 40 steps on the synthetic Markov stream (so its
 * continuations are confident, not near-ties), identically under every layout
 * (the layout contract). Then:
 * 1. at one rank, the cached generation equals the argmax of a full forward pass
 *    over the growing prefix, token by token (the cache is exact);
 * 2. under every layout dp x pp x tp of the world that the model admits, every
 *    replica generates the same tokens as one rank, for 6 prompts. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/synth/markov_stream.h"
#include "model/generate.h"
#include "model/step.h"
#include "mpi/comm.h"
#include "mpi/fatal.h"

#define T 24
#define B 8
#define NPROMPT 6
#define NEW 14

static lethe_model_config cfg(void)
{
    lethe_model_config c = {.vocab_size = 61, .dim = 32, .n_layers = 4, .n_heads = 4,
                            .n_kv_heads = 2, .mlp_dim = 48, .max_seq_len = T,
                            .rope_theta = 10000.0f, .norm_eps = 1e-5f, .tie_embeddings = 0,
                            .init_std = 0.05f, .init_seed = 5};
    return c;
}

static void train(lethe_model *m, const lethe_grid *g)
{
    lethe_optim_config o;
    memset(&o, 0, sizeof o);
    o.schedule = SCHEDULE_CONSTANT;
    o.lr = 3e-3f;
    o.beta1 = 0.9f;
    o.beta2 = 0.95f;
    o.eps = 1e-8f;
    o.grad_clip = 1.0f;
    synth_stream src = {3, 61, 2, 1, T};
    int Br = B / g->dp;
    lethe_batch b = {Br, T, malloc(sizeof(int) * Br * T), malloc(sizeof(int) * Br * T), NULL,
                     NULL};
    for (int s = 0; s < 40; s++) {
        synth_stream_batch(&src, s, (int64_t)g->dp_rank * Br, Br, T, b.tokens, b.targets);
        nll_objective_ctx ctx = {1.0 / model_count_targets(m, &b)};
        lethe_objective obj = {nll_objective_seq, &ctx, NULL};
        step_stats st;
        model_train_step(m, &b, &obj, &o, NULL, s, 40, &st);
    }
    free(b.tokens);
    free(b.targets);
}

static void prompts(int *p, int *plen)
{
    synth_stream src = {3, 61, 2, 1, T};
    int tg[NPROMPT * T];
    synth_stream_batch(&src, 999, 0, NPROMPT, T, p, tg);
    for (int i = 0; i < NPROMPT; i++) plen[i] = 1 + i % 5;
}

int main(int argc, char **argv)
{
    comm_init(&argc, &argv);
    int rank, size, failures = 0;
    MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
    MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size));
    lethe_model_config c = cfg();
    int p[NPROMPT * T], plen[NPROMPT], ref[NPROMPT][NEW], nref[NPROMPT];
    prompts(p, plen);
    char err[256];

    /* one-rank reference on every rank, and the cache check against full forwards */
    lethe_grid g1;
    if (grid_create(&g1, MPI_COMM_SELF, 1, 1, 1, err, sizeof err)) lethe_fatal("%s", err);
    lethe_model m1;
    model_create(&m1, &c, &g1, B, T, 1);
    model_init_weights(&m1);
    train(&m1, &g1);
    lethe_generator gen;
    gen_create(&gen, &m1, T, 1);
    lethe_model mf; /* a forward-only model of batch 1 with the trained weights */
    model_create(&mf, &c, &g1, 1, T, 1);
    memcpy(mf.w.params.data, m1.w.params.data, sizeof(float) * m1.w.params.total);
    int cache_checked = 0;
    for (int i = 0; i < NPROMPT; i++) {
        nref[i] = gen_greedy(&gen, p + i * T, plen[i], NEW, -1, ref[i]);
        if (rank != 0) continue;
        int seq[T], tg[T];
        memcpy(seq, p + i * T, sizeof(int) * plen[i]);
        for (int k = 0; k < nref[i]; k++) {
            int len = plen[i] + k;
            for (int t = 0; t < T; t++) {
                tg[t] = -1;
                if (t >= len) seq[t] = 0;
            }
            tg[len - 1] = 0;
            lethe_batch b = {1, T, seq, tg, NULL, NULL};
            model_forward(&mf, &b, NULL, NULL, NULL);
            const float *row = mf.ws.logits + (size_t)(len - 1) * mf.shape.v_l;
            int best = 0;
            for (int j = 1; j < mf.shape.v_valid; j++)
                if (row[j] > row[best]) best = j;
            if (best != ref[i][k]) {
                fprintf(stderr, "FAIL: prompt %d token %d: cached %d, full forward %d\n", i, k,
                        ref[i][k], best);
                failures++;
            }
            seq[len] = best;
            cache_checked++;
        }
    }
    gen_free(&gen);
    model_free(&mf);
    model_free(&m1);
    grid_free(&g1);

    int layouts = 0;
    for (int tp = 1; tp <= size; tp++)
        for (int pp = 1; pp * tp <= size; pp++) {
            if (size % (tp * pp)) continue;
            int dp = size / (tp * pp);
            if (B % dp || model_check_layout(&c, dp, pp, tp, B, 1, T, err, sizeof err)) continue;
            lethe_grid g;
            if (grid_create(&g, MPI_COMM_WORLD, dp, pp, tp, err, sizeof err)) lethe_fatal("%s", err);
            lethe_model m;
            model_create(&m, &c, &g, B / dp, T, 1);
            model_init_weights(&m);
            train(&m, &g);
            lethe_generator gg;
            gen_create(&gg, &m, T, 1);
            for (int i = 0; i < NPROMPT; i++) {
                int out[NEW];
                int n = gen_greedy(&gg, p + i * T, plen[i], NEW, -1, out);
                if (n != nref[i] || memcmp(out, ref[i], sizeof(int) * n)) {
                    fprintf(stderr, "FAIL: dp%d pp%d tp%d rank %d prompt %d: tokens differ from one rank\n",
                            dp, pp, tp, rank, i);
                    failures++;
                }
            }
            gen_free(&gg);
            model_free(&m);
            grid_free(&g);
            layouts++;
        }
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &failures, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD));
    if (rank == 0) {
        printf("prompt 0 continues with:");
        for (int k = 0; k < nref[0]; k++) printf(" %d", ref[0][k]);
        printf("\n%d ranks: cache == full forward on %d tokens; %d layouts x %d prompts equal to "
               "one rank; %d failures\n",
               size, cache_checked, layouts, NPROMPT, failures);
    }
    MPI_Finalize();
    return failures ? 1 : 0;
}
