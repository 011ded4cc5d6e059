/* tests/bench_generate.c — lethe's side of tests/bench_generate.sh: greedy generation
 * with the KV cache, batched (gen_greedy_batch), timed. Not a test.
 *
 *   mpirun -n TP bench_generate V C L NH NKV F T BATCH PROMPTS NEW
 *
 * A model of vocabulary V, width C, L layers, NH heads over NKV kv-heads, MLP width F
 * and max_seq_len T, initialised from its seed (random weights: every sequence runs to
 * NEW tokens, no eos), on tp = TP ranks. PROMPTS prompts of 8 + (5 i) % 9 tokens (ids
 * from an LCG; tests/bench_generate.py uses the same lengths) run BATCH at a time: one
 * untimed run, then one timed run. Prints one JSON line: generated tokens, seconds (the
 * slowest rank), tokens/s. */
#include <stdio.h>
#include <stdlib.h>

#include "model/generate.h"
#include "mpi/comm.h"
#include "mpi/fatal.h"

int main(int argc, char **argv)
{
    comm_init(&argc, &argv);
    if (argc != 11) lethe_fatal("usage: bench_generate V C L NH NKV F T BATCH PROMPTS NEW");
    int a[10];
    for (int i = 0; i < 10; i++) a[i] = atoi(argv[i + 1]);
    int size, batch = a[7], np = a[8], nnew = a[9], T = a[6];
    MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size));
    lethe_model_config c = {.vocab_size = a[0], .dim = a[1], .n_layers = a[2], .n_heads = a[3],
                            .n_kv_heads = a[4], .mlp_dim = a[5], .max_seq_len = T,
                            .rope_theta = 10000.0f, .norm_eps = 1e-5f, .tie_embeddings = 0,
                            .init_std = 0.02f, .init_seed = 7};
    char err[512];
    if (batch < 1 || np < 1 || nnew < 1 || 16 + nnew > T)
        lethe_fatal("bench_generate: batch, prompts, new >= 1 and 16 + new <= T expected");
    if (model_check_layout(&c, 1, 1, size, 1, 1, T, err, sizeof err)) lethe_fatal("%s", err);
    lethe_grid g;
    if (grid_create(&g, MPI_COMM_WORLD, 1, 1, size, err, sizeof err)) lethe_fatal("%s", err);
    lethe_model m;
    model_create(&m, &c, &g, 1, T, 1);
    model_init_weights(&m);
    lethe_generator gen;
    gen_create(&gen, &m, T, batch);
    int *ids = lethe_malloc(sizeof(int) * (size_t)np * (16 + nnew), "prompts");
    gen_seq *seq = lethe_malloc(sizeof(gen_seq) * np, "prompts");
    unsigned x = 12345;
    for (int i = 0; i < np; i++) {
        int *pr = ids + (size_t)i * (16 + nnew), p = 8 + (5 * i) % 9;
        for (int t = 0; t < p; t++) pr[t] = (int)((x = x * 1103515245u + 12345u) >> 8) % a[0];
        seq[i] = (gen_seq){pr, p, nnew, pr + 16, 0};
    }
    double sec = 0;
    long tokens = 0;
    for (int run = 0; run < 2; run++) {
        MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
        double t0 = MPI_Wtime();
        gen_greedy_batch(&gen, seq, np, -1);
        sec = MPI_Wtime() - t0;
    }
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &sec, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD));
    for (int i = 0; i < np; i++) tokens += seq[i].n;
    if (g.rank == 0)
        printf("{\"side\":\"lethe\",\"tp\":%d,\"batch\":%d,\"tokens\":%ld,\"seconds\":%.6f,"
               "\"tokens_per_s\":%.2f}\n",
               size, batch, tokens, sec, tokens / sec);
    free(ids);
    free(seq);
    gen_free(&gen);
    model_free(&m);
    grid_free(&g);
    MPI_Finalize();
    return 0;
}
