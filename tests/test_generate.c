/* tests/test_generate.c — greedy generation with the KV cache.
 *
 * A small model is trained for 40 steps on the synthetic Markov stream (so its
 * continuations are confident, not near-ties), identically under every layout
 * (the layout contract). Then:
 * 1. at one rank, the cached generation equals the argmax of a full forward pass
 *    over the growing prefix, token by token (the cache is exact);
 * 2. under every layout dp x pp x tp of the world that the model admits, every
 *    replica generates the same tokens as one rank, for 6 prompts;
 * 3. batched generation (gen_greedy_batch: ragged prompts of 1..5 tokens, one B-row
 *    product per layer per step, finished slots refilled) gives exactly the tokens of
 *    one-at-a-time generation in three cases — no eos and 14 new tokens; an eos that
 *    the sequences meet and a max_new of 14 - i % 4 per sequence; a cache of 12
 *    positions that ends the longer prompts' generations — at one rank with 4 and 8
 *    slots (fewer and more than the prompts) and under every layout with 4 slots,
 *    the dp replicas taking different prompts (replica d: prompts d, d + dp, ...). */
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

/* The cases of check 3: the cache length, eos, and max_new of prompt i. */
typedef struct {
    int max_t, eos, less; /* max_new = NEW - i % less (less 0: NEW) */
} gen_case;
#define NCASE 3

static int max_new_of(const gen_case *c, int i) { return c->less ? NEW - i % c->less : NEW; }

/* One-at-a-time generations of case c (gen_greedy) into want / nwant. */
static void one_at_a_time(lethe_model *m, const gen_case *c, const int *p, const int *plen,
                          int want[][NEW], int *nwant)
{
    lethe_generator g;
    gen_create(&g, m, c->max_t, 1);
    for (int i = 0; i < NPROMPT; i++)
        nwant[i] = gen_greedy(&g, p + i * T, plen[i], max_new_of(c, i), c->eos, want[i]);
    gen_free(&g);
}

/* Batched generation of case c with `batch` slots over prompts first, first + stride,
 * ... against want / nwant; returns the failures. */
static int batched_equal(lethe_model *m, const gen_case *c, int batch, int first, int stride,
                         const int *p, const int *plen, int want[][NEW], const int *nwant,
                         const char *label)
{
    lethe_generator g;
    gen_create(&g, m, c->max_t, batch);
    gen_seq seq[NPROMPT];
    int out[NPROMPT][NEW], idx[NPROMPT], n = 0, bad = 0;
    for (int i = first; i < NPROMPT; i += stride, n++) {
        idx[n] = i;
        seq[n] = (gen_seq){p + i * T, plen[i], max_new_of(c, i), out[n], -1};
    }
    gen_greedy_batch(&g, seq, n, c->eos);
    for (int j = 0; j < n; j++) {
        int i = idx[j];
        if (seq[j].n == nwant[i] && !memcmp(out[j], want[i], sizeof(int) * nwant[i])) continue;
        fprintf(stderr, "FAIL: %s, %d slots, cache %d, eos %d: prompt %d: %d batched tokens "
                "differ from %d one at a time\n", label, batch, c->max_t, c->eos, i, seq[j].n,
                nwant[i]);
        bad++;
    }
    gen_free(&g);
    return bad;
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
    /* check 3 at one rank: eos is a token prompt 0 meets at its fifth */
    gen_case cases[NCASE] = {{T, -1, 0}, {T, ref[0][4], 4}, {12, -1, 0}};
    static int want[NCASE][NPROMPT][NEW];
    int nwant[NCASE][NPROMPT], early = 0, batched = 0;
    for (int c = 0; c < NCASE; c++) {
        one_at_a_time(&m1, &cases[c], p, plen, want[c], nwant[c]);
        for (int i = 0; i < NPROMPT; i++) early += c > 0 && nwant[c][i] < max_new_of(&cases[c], i);
        for (int b = 4; b <= 8; b += 4, batched += NPROMPT)
            failures += batched_equal(&m1, &cases[c], b, 0, 1, p, plen, want[c], nwant[c],
                                      "one rank");
    }
    for (int i = 0; i < NPROMPT; i++)
        if (nwant[0][i] != nref[i] || memcmp(want[0][i], ref[i], sizeof(int) * nref[i])) {
            fprintf(stderr, "FAIL: prompt %d: a second one-at-a-time run differs\n", i);
            failures++;
        }
    { /* a row without a prompt and nothing to generate (eval's rows without a question) */
        lethe_generator g2;
        gen_create(&g2, &m1, T, 2);
        int out[NEW];
        gen_seq z[2] = {{NULL, 0, 0, NULL, 7}, {p, plen[0], NEW, out, -1}};
        gen_greedy_batch(&g2, z, 2, -1);
        if (z[0].n != 0 || z[1].n != nref[0] || memcmp(out, ref[0], sizeof(int) * nref[0])) {
            fprintf(stderr, "FAIL: an empty row beside prompt 0: %d and %d tokens\n", z[0].n,
                    z[1].n);
            failures++;
        }
        gen_free(&g2);
    }
    if (early < 2) { /* the eos and the cache end must each stop some sequence */
        fprintf(stderr, "FAIL: only %d sequences stopped before their max_new\n", early);
        failures++;
    }
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
            char lay[64];
            snprintf(lay, sizeof lay, "dp%d pp%d tp%d rank %d", dp, pp, tp, rank);
            for (int c = 0; c < NCASE; c++, batched += (NPROMPT + dp - 1 - g.dp_rank) / dp)
                failures += batched_equal(&m, &cases[c], 4, g.dp_rank, dp, p, plen, want[c],
                                          nwant[c], lay);
            model_free(&m);
            grid_free(&g);
            layouts++;
        }
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &failures, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD));
    if (rank == 0) {
        printf("prompt 0 continues with:");
        for (int k = 0; k < nref[0]; k++) printf(" %d", ref[0][k]);
        printf("\n%d ranks: cache == full forward on %d tokens; %d layouts x %d prompts equal to "
               "one rank; %d batched generations (rank 0's) equal to one at a time, %d stopped "
               "early; %d failures\n",
               size, cache_checked, layouts, NPROMPT, batched, early, failures);
    }
    MPI_Finalize();
    return failures ? 1 : 0;
}
