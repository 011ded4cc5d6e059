/* jobs/train.c — `lethe train`: pre-train or fine-tune with token-mean NLL.
 *
 * Data: the synthetic Markov stream (data.source "synthetic-markov") or a split of
 * an HDF5 token dataset (data.source "hdf5": data.path, data.split), streamed
 * and reshuffled every epoch. Starts from init.checkpoint when given, resumes
 * from output.dir/checkpoint.h5 when it exists (checkpoint.resume), writes
 * checkpoints every checkpoint.every steps and the final model to model.h5.
 * Rank 0 prints per-step loss, learning rate, gradient norm, tokens/s and the
 * achieved model GFLOP/s, and writes the same as JSON lines to train_log.jsonl. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../io/loader.h"
#include "../io/synthetic.h"
#include "../mpi/comm.h"
#include "../mpi/fatal.h"
#include "jobs.h"

int job_train(int argc, char **argv)
{
    lethe_session S;
    session_open(&S, "train", argc, argv);
    session_catch_preemption();
    lethe_config *c = &S.cfg;
    int hdf5 = !strcmp(c->data.source, "hdf5");
    loader *ld = NULL;
    int B = c->train.batch_size, T = c->train.seq_len;
    if (hdf5) {
        int ok = c->data.path[0] != 0;
        lethe_check(S.grid.world, ok, 2, "train: data.source is \"hdf5\" but data.path is empty");
        job_open_loader(&S, &ld, c->data.split, B, c->train.seed, 1, 1, 0, 0);
        T = loader_info(ld)->t;
    }
    session_build_model(&S, B, T);
    session_load_init(&S); /* checked before anything is written */
    session_output(&S);
    int64_t cursor[2] = {0, 0};
    int first_step = (int)session_resume(&S, cursor, 2);
    if (ld && first_step) {
        char err[1024];
        loader_cursor lc = {cursor[0], cursor[1]};
        int ok = loader_seek(ld, lc, err, sizeof err) == 0;
        lethe_check(S.grid.world, ok, 1, "%s", err);
    }
    int rank0 = S.grid.rank == 0, Br = B / c->layout.dp;
    synth_markov src = {c->data.seed, c->model.vocab_size, c->data.branching, c->data.prompt_len,
                        c->data.min_len};
    lethe_batch b = {Br, T, lethe_malloc(sizeof(int) * (size_t)Br * T, "batch"),
                     lethe_malloc(sizeof(int) * (size_t)Br * T, "batch")};
    FILE *logf = NULL;
    char logpath[1100], tmppath[1200];
    if (rank0) {
        /* the OpenBLAS core and threads are stated by the session for every job */
        printf("lethe train: %lld parameters, layout dp=%d pp=%d tp=%d (%d ranks), "
               "micro-batches %d, batch %d x %d\n",
               (long long)model_num_params(&c->model), c->layout.dp, c->layout.pp, c->layout.tp,
               S.grid.size, c->layout.micro_batches, B, T);
        session_path(&S, "train_log.jsonl", logpath, sizeof logpath);
        snprintf(tmppath, sizeof tmppath, "%s.partial", logpath);
        /* a resumed run continues the log of the run it resumes */
        logf = fopen(tmppath, first_step ? "a" : "w");
        if (!logf) lethe_fatal("cannot write '%s': %s", tmppath, strerror(errno));
    }
    double flops_tok = model_flops_per_token(&c->model, T), first_loss = NAN, last_loss = NAN;
    int64_t epoch = 0;
    char err[1024];
    job_data_clock clk = {0, 0, 0};
    for (int step = first_step; step < c->train.steps; step++) {
        double t_data = MPI_Wtime();
        if (ld) {
            loader_batch *lb;
            int r = loader_next(ld, &lb, err, sizeof err);
            lethe_check(S.grid.world, r > 0, 1, "%s", r < 0 ? err : "data stream ended");
            job_fill_batch(&b, 0, Br, lb);
            epoch = lb->epoch;
        } else {
            synth_markov_batch(&src, step, (int64_t)S.grid.dp_rank * Br, Br, T, b.tokens,
                               b.targets);
        }
        t_data = MPI_Wtime() - t_data;
        nll_objective_ctx ctx = {1.0 / model_count_targets(&S.model, &b)};
        lethe_objective obj = {nll_objective_seq, &ctx};
        step_stats st;
        model_train_step(&S.model, &b, &obj, &c->optim, step, c->train.steps, &st);
        clk.wait += t_data;
        clk.compute += st.seconds;
        clk.steps++;
        /* the slowest rank sets the pace */
        MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &st.seconds, 1, MPI_DOUBLE, MPI_MAX, S.grid.world));
        if (!st.skipped) {
            if (isnan(first_loss)) first_loss = st.loss;
            last_loss = st.loss;
        }
        if (rank0) {
            double tps = (double)B * T / st.seconds, gf = tps * flops_tok * 1e-9;
            char loss[32], gn[32];
            /* JSON has no NaN: a skipped step logs null */
            job_json_num(loss, sizeof loss, "%.6f", st.loss);
            job_json_num(gn, sizeof gn, "%.6g", st.grad_norm);
            fprintf(logf,
                    "{\"step\":%d,\"epoch\":%lld,\"loss\":%s,\"lr\":%.6g,\"grad_norm\":%s,"
                    "\"seconds\":%.6f,\"data_s\":%.6f,\"tokens_per_s\":%.1f,\"gflops\":%.3f%s}\n",
                    step + 1, (long long)epoch, loss, st.lr, gn, st.seconds, t_data, tps, gf,
                    st.skipped ? ",\"skipped\":true" : "");
            if (step % c->train.log_every == 0 || step == c->train.steps - 1)
                printf("step %5d/%d  loss %.4f  lr %.3e  |g| %.3f  %8.0f tok/s  %6.1f GFLOP/s%s\n",
                       step + 1, c->train.steps, st.loss, st.lr, st.grad_norm, tps, gf,
                       st.skipped ? "  (skipped)" : "");
            fflush(stdout);
            /* a full disk shows here; a log with a hole must not be renamed as complete */
            if (fflush(logf) || ferror(logf))
                lethe_fatal("cannot write '%s': %s", tmppath, strerror(errno));
        }
        int last = step == c->train.steps - 1;
        if (!last && c->checkpoint.every > 0 && (step + 1) % c->checkpoint.every == 0) {
            loader_cursor lc = {0, 0};
            if (ld) lc = loader_cursor_get(ld);
            int64_t cur[2] = {lc.epoch, lc.position};
            session_save(&S, "checkpoint.h5", step + 1, epoch, cur, 2);
        }
        job_fault_point(&S, step + 1);
        if (!last && session_preempted(&S)) {
            loader_cursor lc = {0, 0};
            if (ld) lc = loader_cursor_get(ld);
            int64_t cur[2] = {lc.epoch, lc.position};
            session_save(&S, "checkpoint.h5", step + 1, epoch, cur, 2);
            if (rank0) {
                fclose(logf);
                printf("lethe train: preempted after step %d; checkpoint.h5 written, a new run "
                       "resumes from it\n", step + 1);
            }
            if (ld) loader_close(ld);
            S.status = "preempted";
            session_close(&S);
            return 0;
        }
    }
    int64_t cur[2] = {0, 0};
    if (ld) {
        loader_cursor lc = loader_cursor_get(ld);
        cur[0] = lc.epoch;
        cur[1] = lc.position;
    }
    session_save(&S, "model.h5", c->train.steps, epoch, cur, 2);
    session_finish_checkpoints(&S);
    if (ld) job_data_report(&S, "train", &clk, ld);
    if (rank0) {
        if (fclose(logf) || rename(tmppath, logpath))
            lethe_fatal("cannot write '%s': %s", logpath, strerror(errno));
        if (!ld)
            printf("lethe train: loss %.4f -> %.4f (chain floor log(%d) = %.4f); model in "
                   "%s/model.h5\n",
                   first_loss, last_loss, c->data.branching, log((double)c->data.branching),
                   c->output.dir);
        else
            printf("lethe train: loss %.4f -> %.4f; model in %s/model.h5\n", first_loss,
                   last_loss, c->output.dir);
    }
    if (ld) loader_close(ld);
    free(b.tokens);
    free(b.targets);
    session_close(&S);
    return 0;
}
