/* jobs/batches.c — what the training jobs share about their data: opening a loader
 * over the job's world, copying its rows into a batch, the data-wait report, and
 * gathering every replica's records. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../mpi/fatal.h"
#include "jobs.h"

void job_open_loader(lethe_session *S, loader **ld, const char *split, int global_batch,
                     uint64_t seed, int shuffle, int drop_last, int max_epochs, int candidates)
{
    loader_opts o;
    loader_opts_defaults(&o);
    o.world = S->grid.world;
    o.dp = S->grid.dp;
    o.dp_rank = S->grid.dp_rank;
    o.global_batch = global_batch;
    o.seed = seed;
    o.shuffle = shuffle;
    o.drop_last = drop_last;
    o.max_epochs = max_epochs;
    o.candidates = candidates;
    o.prefetch = S->cfg.data.prefetch;
    char err[1024];
    int ok = loader_open(ld, S->cfg.data.path, split, &o, err, sizeof err) == 0;
    lethe_check(S->grid.world, ok, 2, "%s", err);
    const dataset_info *info = loader_info(*ld);
    ok = info->vocab_size <= S->cfg.model.vocab_size;
    lethe_check(S->grid.world, ok, 2,
                "dataset '%s' split '%s': vocabulary of %lld tokens does not fit "
                "model.vocab_size=%d",
                S->cfg.data.path, split, (long long)info->vocab_size, S->cfg.model.vocab_size);
}

void job_data_report(const lethe_session *S, const char *job, const job_data_clock *c,
                     const loader *ld)
{
    /* the rank that waited most, as a share of its own step time */
    double mine[2] = {c->wait, c->wait + c->compute}, all[2];
    struct {
        double share;
        int rank;
    } in = {mine[1] > 0 ? mine[0] / mine[1] : 0.0, S->grid.rank}, out;
    MPI_CHECK(MPI_Allreduce(&in, &out, 1, MPI_DOUBLE_INT, MPI_MAXLOC, S->grid.world));
    memcpy(all, mine, sizeof all);
    MPI_CHECK(MPI_Bcast(all, 2, MPI_DOUBLE, out.rank, S->grid.world));
    if (S->grid.rank != 0) return;
    const char *why = "";
    int ahead = loader_prefetch_status(ld, &why);
    printf("lethe %s: data stream: %.3f s waiting for batches in %d steps, %.2f%% of step "
           "time (rank %d, the most); %s%s\n",
           job, all[0], c->steps, 100.0 * out.share, out.rank,
           ahead ? "the next batch is read ahead in a thread" : "no read-ahead: ", why);
}

loader_batch *job_next_batch(const lethe_session *S, loader *ld, const char *ended)
{
    char err[1024];
    loader_batch *lb = NULL;
    int r = loader_next(ld, &lb, err, sizeof err);
    lethe_check(S->grid.world, r >= 0, 1, "%s", err);
    lethe_check(S->grid.world, r > 0 || !ended, 1, "%s", ended ? ended : "");
    return r > 0 ? lb : NULL;
}

void job_fill_batch(lethe_batch *b, int r0, int rows, const loader_batch *lb)
{
    int T = b->T;
    for (int i = 0; i < rows; i++) {
        int *tok = b->tokens + (size_t)(r0 + i) * T, *tg = b->targets + (size_t)(r0 + i) * T;
        if (lb && i < lb->n) {
            for (int t = 0; t < T; t++) {
                tok[t] = lb->rows.ids[(size_t)i * T + t];
                tg[t] = lb->targets[(size_t)i * T + t];
            }
        } else {
            for (int t = 0; t < T; t++) {
                tok[t] = 0;
                tg[t] = -1;
            }
        }
    }
}

void *job_allgather_sorted(const void *mine, int64_t n, size_t size, MPI_Comm comm,
                           int (*cmp)(const void *, const void *), int64_t *total)
{
    int np, bytes = (int)(n * (int64_t)size), sum = 0;
    MPI_CHECK(MPI_Comm_size(comm, &np));
    int *counts = lethe_malloc(sizeof(int) * np, "gather"),
        *displs = lethe_malloc(sizeof(int) * np, "gather");
    MPI_CHECK(MPI_Allgather(&bytes, 1, MPI_INT, counts, 1, MPI_INT, comm));
    for (int r = 0; r < np; r++) {
        displs[r] = sum;
        sum += counts[r];
    }
    char *all = lethe_malloc((size_t)sum + size, "gather");
    MPI_CHECK(MPI_Allgatherv(mine, bytes, MPI_BYTE, all, counts, displs, MPI_BYTE, comm));
    *total = sum / (int64_t)size;
    qsort(all, (size_t)*total, size, cmp);
    free(counts);
    free(displs);
    return all;
}
