/* jobs/train.c — `lethe train`: pre-train or fine-tune with token-mean NLL.
 * Rank 0 prints per-step loss, learning rate, gradient norm, tokens/s and the
 * achieved model GFLOP/s, and writes the same as JSON lines to the output folder. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../io/synthetic.h"
#include "../mpi/comm.h"
#include "../mpi/fatal.h"
#include "jobs.h"

int job_train(int argc, char **argv)
{
    lethe_session S;
    session_open(&S, "train", argc, argv);
    session_build_model(&S, S.cfg.train.batch_size, S.cfg.train.seq_len);
    session_output(&S);
    const lethe_config *c = &S.cfg;
    int rank0 = S.grid.rank == 0;
    int B = c->train.batch_size, T = c->train.seq_len, Br = B / c->layout.dp;
    synth_markov src = {c->data.seed, c->model.vocab_size, c->data.branching, c->data.prompt_len,
                        c->data.min_len};
    lethe_batch b = {Br, T, lethe_malloc(sizeof(int) * (size_t)Br * T, "batch"),
                     lethe_malloc(sizeof(int) * (size_t)Br * T, "batch")};
    FILE *logf = NULL;
    char logpath[1100], tmppath[1200];
    if (rank0) {
        char core[128];
        blas_core_string(core, sizeof core);
        printf("lethe train: %lld parameters, layout dp=%d pp=%d tp=%d (%d ranks), "
               "micro-batches %d, batch %d x %d, %d BLAS thread%s per rank, OpenBLAS %s\n",
               (long long)model_num_params(&c->model), c->layout.dp, c->layout.pp, c->layout.tp,
               S.grid.size, c->layout.micro_batches, B, T, c->threads, c->threads > 1 ? "s" : "",
               core);
        session_path(&S, "train_log.jsonl", logpath, sizeof logpath);
        snprintf(tmppath, sizeof tmppath, "%s.partial", logpath);
        logf = fopen(tmppath, "w");
        if (!logf) lethe_fatal("cannot write '%s'", tmppath);
    }
    double flops_tok = model_flops_per_token(&c->model, T), first_loss = 0, last_loss = 0;
    for (int step = 0; step < c->train.steps; step++) {
        synth_markov_batch(&src, step, (int64_t)S.grid.dp_rank * Br, Br, T, b.tokens, b.targets);
        nll_objective_ctx ctx = {1.0 / model_count_targets(&S.model, &b)};
        lethe_objective obj = {nll_objective_seq, &ctx};
        step_stats st;
        model_train_step(&S.model, &b, &obj, &c->optim, step, c->train.steps, &st);
        /* the slowest rank sets the pace */
        MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &st.seconds, 1, MPI_DOUBLE, MPI_MAX, S.grid.world));
        if (step == 0) first_loss = st.loss;
        last_loss = st.loss;
        if (rank0) {
            double tps = (double)B * T / st.seconds, gf = tps * flops_tok * 1e-9;
            fprintf(logf,
                    "{\"step\":%d,\"loss\":%.6f,\"lr\":%.6g,\"grad_norm\":%.6g,\"seconds\":%.6f,"
                    "\"tokens_per_s\":%.1f,\"gflops\":%.3f}\n",
                    step + 1, st.loss, st.lr, st.grad_norm, st.seconds, tps, gf);
            if (step % c->train.log_every == 0 || step == c->train.steps - 1)
                printf("step %5d/%d  loss %.4f  lr %.3e  |g| %.3f  %8.0f tok/s  %6.1f GFLOP/s\n",
                       step + 1, c->train.steps, st.loss, st.lr, st.grad_norm, tps, gf);
            fflush(stdout);
        }
    }
    if (rank0) {
        if (fclose(logf) || rename(tmppath, logpath)) lethe_fatal("cannot write '%s'", logpath);
        printf("lethe train: loss %.4f -> %.4f over %d steps (chain floor log(%d) = %.4f); "
               "outputs in %s/\n",
               first_loss, last_loss, c->train.steps, c->data.branching,
               log((double)c->data.branching), c->output.dir);
    }
    free(b.tokens);
    free(b.targets);
    session_close(&S);
    return 0;
}
