/* jobs/train.c — `lethe train`: pre-train or fine-tune with token-mean NLL.
 *
 * Data: the synthetic Markov stream (data.source "synthetic-markov") or a split of
 * an HDF5 token dataset (data.source "hdf5": data.path, data.split), streamed
 * and reshuffled every epoch. Starts from init.checkpoint when given, resumes
 * from output.dir/checkpoint.h5 when it exists (checkpoint.resume), writes
 * checkpoints every checkpoint.every steps and the final model to model.h5.
 * The step loop (jobs/loop.c) logs per-step loss, learning rate, gradient norm,
 * tokens/s and the achieved model GFLOP/s, and the same as JSON lines to
 * train_log.jsonl. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../io/loader.h"
#include "../io/synth/markov_stream.h"
#include "../mpi/comm.h"
#include "../mpi/fatal.h"
#include "loop.h"

typedef struct {
    lethe_session *S;
    loader *ld;
    synth_stream src;
    lethe_batch b;
} train_job;

static void train_batch(void *job, int step, int64_t *epoch)
{
    train_job *J = job;
    lethe_batch *b = &J->b;
    if (!J->ld) {
        synth_stream_batch(&J->src, step, (int64_t)J->S->grid.dp_rank * b->B, b->B, b->T, b->tokens,
                           b->targets);
        return;
    }
    loader_batch *lb = job_next_batch(J->S, J->ld, "data stream ended");
    job_fill_batch(b, 0, b->B, lb);
    *epoch = lb->epoch;
}

static void train_step(void *job, int step, int total, step_stats *st, double *values)
{
    (void)values;
    train_job *J = job;
    nll_objective_ctx ctx = {1.0 / model_count_targets(&J->S->model, &J->b)};
    lethe_objective obj = {nll_objective_seq, &ctx, NULL};
    model_train_step(&J->S->model, &J->b, &obj, &J->S->cfg.optim, &J->S->fault.nan, step, total,
                     st);
}

int job_train(int argc, char **argv)
{
    lethe_session S;
    session_open(&S, "train", argc, argv);
    session_catch_preemption();
    lethe_config *c = &S.cfg;
    train_job J = {.S = &S};
    int B = c->train.batch_size, T = c->train.seq_len;
    if (!strcmp(c->data.source, "hdf5")) {
        int ok = c->data.path[0] != 0;
        lethe_check(S.grid.world, ok, 2, "train: data.source is \"hdf5\" but data.path is empty");
        job_open_loader(&S, &J.ld, c->data.split, B, c->train.seed, 1, 1, 0, 0);
        T = loader_info(J.ld)->t;
    }
    session_build_model(&S, B, T);
    session_load_init(&S); /* checked before anything is written */
    session_output(&S);
    int Br = B / c->layout.dp;
    J.src = (synth_stream){c->data.seed, c->model.vocab_size, c->data.branching, c->data.prompt_len,
                           c->data.min_len};
    J.b = (lethe_batch){Br, T, lethe_malloc(sizeof(int) * (size_t)Br * T, "batch"),
                        lethe_malloc(sizeof(int) * (size_t)Br * T, "batch"), NULL, NULL};
    if (S.grid.rank == 0)
        /* the OpenBLAS core and threads are stated by the session for every job */
        printf("lethe train: %lld parameters, layout dp=%d pp=%d tp=%d (%d ranks), "
               "micro-batches %d, batch %d x %d\n",
               (long long)model_num_params(&c->model), c->layout.dp, c->layout.pp, c->layout.tp,
               S.grid.size, c->layout.micro_batches, B, T);
    loop_spec sp = {.job = &J,
                    .total = c->train.steps,
                    .total_key = "train.steps",
                    .resume = 1,
                    .every = c->checkpoint.every,
                    .loaders = {J.ld},
                    .n_loaders = 1,
                    .final_name = "model.h5",
                    .log_name = "train_log.jsonl",
                    .tokens_per_step = (double)B * T,
                    .flops_per_token = model_flops_per_token(&c->model, T),
                    .batch = train_batch,
                    .step = train_step};
    loop_outcome out;
    if (loop_run(&S, &sp, &out) == LOOP_DONE && S.grid.rank == 0) {
        if (!J.ld)
            printf("lethe train: loss %.4f -> %.4f (chain floor log(%d) = %.4f); model in "
                   "%s/model.h5\n",
                   out.first_loss, out.last_loss, c->data.branching, log((double)c->data.branching),
                   c->output.dir);
        else
            printf("lethe train: loss %.4f -> %.4f; model in %s/model.h5\n", out.first_loss,
                   out.last_loss, c->output.dir);
    }
    if (J.ld) loader_close(J.ld);
    free(J.b.tokens);
    free(J.b.targets);
    session_close(&S);
    return 0;
}
