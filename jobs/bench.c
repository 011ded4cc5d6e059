/* jobs/bench.c — `lethe bench`: training-step throughput of a config and layout.
 *
 * Measures, in this process: the sgemm peak (best of 5 n=1024 products with the
 * configured BLAS threads), then `bench.warmup` untimed and `bench.steps` timed
 * training steps on the synthetic stream. Prints one JSON line: median ms per
 * step, tokens/s, model GFLOP/s and its share of the sgemm peak, the split of
 * step time into compute (of the busiest rank), collectives and pipeline waits
 * (the busiest rank's: the bubble), the spread of compute between ranks
 * (imbalance: what lighter stages wait for the heaviest), and the bytes
 * this rank sent per step beside the analytic count for the layout. A benchmark,
 * not a test: nothing here asserts on time. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../io/synth/markov_stream.h"
#include "../io/safefile.h"
#include "../mpi/comm.h"
#include "../mpi/fatal.h"
#include "jobs.h"

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(double), cmp_d);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double sgemm_peak_gflops(int n, int reps)
{
    float *a = lethe_malloc(sizeof(float) * (size_t)n * n, "sgemm bench");
    float *b = lethe_malloc(sizeof(float) * (size_t)n * n, "sgemm bench");
    float *c = lethe_malloc(sizeof(float) * (size_t)n * n, "sgemm bench");
    for (size_t i = 0; i < (size_t)n * n; i++) {
        a[i] = (float)((i * 7) % 13) * 0.01f;
        b[i] = (float)((i * 5) % 11) * 0.01f;
    }
    double best = 1e30;
    for (int r = 0; r < reps + 1; r++) {
        double t0 = MPI_Wtime();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c,
                    n);
        double t = MPI_Wtime() - t0;
        if (r > 0 && t < best) best = t; /* the first call warms caches and threads */
    }
    free(a);
    free(b);
    free(c);
    return 2.0 * n * (double)n * n / best * 1e-9;
}

/* Bytes this rank sends per step for the layout, by the same ring all-reduce
 * volume the accounting uses: a check that the code makes no call the model of
 * the layout does not predict. */
static double analytic_bytes(const lethe_session *S)
{
    const lethe_model *m = &S->model;
    const lethe_grid *g = &S->grid;
    double N = (double)m->shape.Bm * m->shape.T, C = m->shape.C, M = S->cfg.layout.micro_batches;
    double ftp = 2.0 * (g->tp - 1) / g->tp, fdp = 2.0 * (g->dp - 1) / g->dp;
    double tp = m->shape.nl * 4.0 * N * C + (m->shape.first ? N * C : 0) +
                (m->shape.last ? N * C + 3 * N : 0);
    double pp = (m->shape.last ? 0 : N * C) + (m->shape.first ? 0 : N * C);
    double tied = 0;
    if (model_sums_tied(m))
        tied = (double)m->w.params.p[params_find(&m->w.params, "model.embed_tokens.weight")].numel;
    /* the gradient-norm double: over one replica (pp x tp), or over every rank when the
     * replicas split the update (optim.shard_update; the gradient reduce-scatter and the
     * weight all-gather move the bytes of the one all-reduce) */
    double nr = (double)g->pp * g->tp;
    if (g->dp > 1 && S->cfg.optim.shard_update) nr *= g->dp;
    double fnr = 2.0 * (nr - 1) / nr;
    /* the reduce-scatter's check for Inf and NaN returns its finding to the previous rank
     * (8 bytes) unless the tied sum came first and the gradient was checked before it */
    double check = g->dp > 1 && S->cfg.optim.shard_update && tied == 0 ? 8.0 : 0.0;
    return 4.0 * (M * (ftp * tp + pp) + fdp * (double)m->w.params.total + tied) + 8.0 * fnr +
           check;
}

/* Per timed step (K of them): the slowest rank's step, collective and point-to-point
 * seconds and the bytes this rank sent; this rank's own compute (mine[0..K)) and
 * point-to-point waits (mine[K..2K)). */
typedef struct {
    double *tstep, *tcomm, *tp2p, *bytes, *mine;
} bench_times;

/* W untimed and K timed training steps on the synthetic stream. */
static void run_steps(lethe_session *S, int W, int K, bench_times *bt)
{
    const lethe_config *c = &S->cfg;
    int T = c->train.seq_len, Br = c->train.batch_size / c->layout.dp;
    synth_stream src = {c->data.seed, c->model.vocab_size, c->data.branching, c->data.prompt_len,
                        c->data.min_len};
    lethe_batch b = {Br,
                     T,
                     lethe_malloc(sizeof(int) * (size_t)Br * T, "batch"),
                     lethe_malloc(sizeof(int) * (size_t)Br * T, "batch"),
                     NULL,
                     NULL};
    for (int step = 0; step < W + K; step++) {
        synth_stream_batch(&src, step, (int64_t)S->grid.dp_rank * Br, Br, T, b.tokens, b.targets);
        nll_objective_ctx ctx = {1.0 / model_count_targets(&S->model, &b)};
        lethe_objective obj = {nll_objective_seq, &ctx, NULL};
        MPI_CHECK(MPI_Barrier(S->grid.world));
        memset(&S->model.ws.comm, 0, sizeof S->model.ws.comm);
        step_stats st;
        model_train_step(&S->model, &b, &obj, &c->optim, &S->fault.nan, step, W + K, &st);
        const comm_stats *cs = &S->model.ws.comm;
        double v[3] = {st.seconds, cs->seconds, cs->p2p_seconds};
        if (step >= W) { /* this rank's own compute and point-to-point waits */
            bt->mine[step - W] = v[0] - v[1] - v[2];
            bt->mine[K + step - W] = v[2];
        }
        MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, v, 3, MPI_DOUBLE, MPI_MAX, S->grid.world));
        if (step >= W) {
            bt->tstep[step - W] = v[0];
            bt->tcomm[step - W] = v[1];
            bt->tp2p[step - W] = v[2];
            bt->bytes[step - W] = cs->bytes;
        }
    }
    free(b.tokens);
    free(b.targets);
}

/* Waiting in point-to-point calls mixes two causes: the schedule's warm-up and
 * cool-down (the bubble) and lighter stages waiting for the heaviest one. The
 * heaviest stage never waits for a slower one, so its waits are the bubble; the
 * spread of compute between ranks is the imbalance. Collective over the world. */
static void busiest_rank(const lethe_session *S, bench_times *bt, int K, double *busy, double *wait,
                         double *imbalance)
{
    double own[2] = {median(bt->mine, K), median(bt->mine + K, K)};
    double *all = lethe_malloc(sizeof(double) * 2 * (size_t)S->grid.size, "bench");
    MPI_CHECK(MPI_Allgather(own, 2, MPI_DOUBLE, all, 2, MPI_DOUBLE, S->grid.world));
    int heavy = 0;
    double lightest = all[0];
    for (int r = 1; r < S->grid.size; r++) {
        if (all[2 * r] > all[2 * heavy]) heavy = r;
        if (all[2 * r] < lightest) lightest = all[2 * r];
    }
    *busy = all[2 * heavy];
    *wait = all[2 * heavy + 1];
    *imbalance = *busy - lightest;
    free(all);
}

/* The figures of the JSON line: sgemm peak (GFLOP/s), times (seconds) and bytes sent
 * per step (the most of any rank, measured and analytic). */
typedef struct {
    double peak, step, comm, busy, wait, imbalance, sent, analytic;
} bench_figures;

/* Rank 0: the JSON line, printed and appended to bench.jsonl. */
static void write_line(const lethe_session *S, const bench_figures *f)
{
    const lethe_config *c = &S->cfg;
    int B = c->train.batch_size, T = c->train.seq_len, K = c->bench.steps;
    double peak = f->peak, ms = f->step;
    double tps = (double)B * T / ms, gf = tps * model_flops_per_token(&c->model, T) * 1e-9;
    double P = c->layout.pp, Mb = c->layout.micro_batches;
    char core[128];
    blas_core_string(core, sizeof core);
    char line[2048];
    snprintf(line, sizeof line,
             "{\"job\":\"bench\",\"ranks\":%d,\"dp\":%d,\"pp\":%d,\"tp\":%d,"
             "\"micro_batches\":%d,\"threads\":%d,\"blas_core\":\"%s\",\"params\":%lld,"
             "\"batch\":%d,\"seq_len\":%d,\"steps\":%d,\"sgemm_gflops\":%.1f,"
             "\"ms_per_step\":%.3f,\"tokens_per_s\":%.1f,\"model_gflops\":%.2f,"
             "\"pct_sgemm_peak\":%.1f,\"compute_ms\":%.3f,\"comm_ms\":%.3f,\"bubble_ms\":%.3f,"
             "\"imbalance_ms\":%.3f,"
             "\"bubble_analytic\":%.3f,\"bytes_sent_per_step\":%.0f,"
             "\"bytes_analytic_per_step\":%.0f}",
             S->grid.size, c->layout.dp, c->layout.pp, c->layout.tp, c->layout.micro_batches,
             c->threads, core, (long long)model_num_params(&c->model), B, T, K, peak, ms * 1e3, tps,
             gf, 100.0 * gf / (peak * S->grid.size), f->busy * 1e3, f->comm * 1e3, f->wait * 1e3,
             f->imbalance * 1e3, (P - 1) / (Mb + P - 1), f->sent, f->analytic);
    printf("%s\n", line);
    char path[1100];
    session_path(S, "bench.jsonl", path, sizeof path);
    char err[1400];
    FILE *fp = safe_append(path, err, sizeof err);
    if (!fp) lethe_fatal("%s", err);
    if (fprintf(fp, "%s\n", line) < 0 || fclose(fp)) lethe_fatal("cannot append to '%s'", path);
}

int job_bench(int argc, char **argv)
{
    lethe_session S;
    session_open(&S, "bench", argc, argv);
    session_build_model(&S, S.cfg.train.batch_size, S.cfg.train.seq_len);
    session_output(&S);
    int W = S.cfg.bench.warmup, K = S.cfg.bench.steps;
    double peak = sgemm_peak_gflops(1024, 5);
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &peak, 1, MPI_DOUBLE, MPI_MIN, S.grid.world));
    bench_times bt = {lethe_calloc((size_t)K, sizeof(double), "bench"),
                      lethe_calloc((size_t)K, sizeof(double), "bench"),
                      lethe_calloc((size_t)K, sizeof(double), "bench"),
                      lethe_calloc((size_t)K, sizeof(double), "bench"),
                      lethe_calloc(2 * (size_t)K, sizeof(double), "bench")};
    run_steps(&S, W, K, &bt);
    double ms = median(bt.tstep, K), comm = median(bt.tcomm, K), busy, wait, imbalance;
    busiest_rank(&S, &bt, K, &busy, &wait, &imbalance);
    double sent = median(bt.bytes, K), ana = analytic_bytes(&S);
    double maxsent = sent, maxana = ana;
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &maxsent, 1, MPI_DOUBLE, MPI_MAX, S.grid.world));
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &maxana, 1, MPI_DOUBLE, MPI_MAX, S.grid.world));
    if (S.grid.rank == 0) {
        bench_figures f = {peak, ms, comm, busy, wait, imbalance, maxsent, maxana};
        write_line(&S, &f);
    }
    free(bt.tstep);
    free(bt.tcomm);
    free(bt.tp2p);
    free(bt.bytes);
    free(bt.mine);
    session_close(&S);
    return 0;
}
