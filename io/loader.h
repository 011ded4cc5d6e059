/* io/loader.h — the streaming loader of an HDF5 token split.
 *
 * Order. Epoch e visits the N rows of the split in the order row(e, p), p = 0..N-1:
 * a pseudo-random permutation that depends only on (seed, e) (a Feistel network
 * over the next power of four >= N with cycle walking; no N-sized table), or file
 * order without shuffle. Global batch b of an epoch holds positions
 * [b*B, b*B + B); dp replica r gets the contiguous slice [r*B/dp, (r+1)*B/dp) of
 * it, so the union of the replicas' slices is the dp = 1 batch, for any dp. Ranks
 * of the same replica (its tp and pp ranks) read the same rows.
 *
 * Reading. Every rank of `world` opens the file with the MPI-IO driver and joins
 * one collective H5Dread per dataset per batch, selecting only its replica's rows
 * (a union of hyperslabs over the sorted row indices, then put back in epoch order).
 * With prefetch on, a thread reads the next batch into a second buffer while the
 * caller computes on the current one, with plain pread()s on a separate file
 * descriptor at the datasets' file offsets (HDF5 here is not thread-safe). That
 * needs contiguous, unfiltered, native-endian datasets (what lethe's writer and
 * h5py's defaults produce); otherwise the loader reads collectively without
 * prefetch and loader_prefetch_status says why.
 *
 * Memory. Only batch buffers are held (one or two batches and their scratch);
 * loader_open fails if they exceed the budget. A split is never loaded whole.
 *
 * Errors. loader_open validates the file, the split, every row's length and
 * answer start (on one rank, broadcast), and every batch's token ids as they are
 * read; failures are one line naming the file, the dataset and the sample index,
 * and every rank gets the same verdict and message (-1 everywhere). loader_open,
 * loader_next, loader_seek and loader_close are collective over `world`.
 * MPI is used only on the communicator passed in (duplicated). */
#ifndef LETHE_LOADER_H
#define LETHE_LOADER_H

#include "dataset.h"

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#define LOADER_DEFAULT_BUDGET ((size_t)64 << 20)

typedef struct {
    MPI_Comm world;   /* every rank that reads; collective calls are over it */
    int dp, dp_rank;  /* replica count and this rank's replica */
    int global_batch; /* B: rows per step over all replicas; a multiple of dp */
    uint64_t seed;
    int shuffle;    /* 1: order from (seed, epoch); 0: file order */
    int drop_last;  /* 1: an epoch's last partial batch is skipped */
    int max_epochs; /* loader_next returns 0 after this many epochs (0: endless) */
    int prefetch;   /* 1: read the next batch ahead in a thread */
    int candidates; /* 1: also read the paraphrased/perturbed sets (if present) */
    size_t budget;  /* bytes for the loader's buffers (0: LOADER_DEFAULT_BUDGET) */
} loader_opts;

/* Defaults: dp 1, dp_rank 0, shuffle 1, drop_last 1, prefetch 1, candidates 0,
 * max_epochs 0; world, global_batch and seed are the caller's. */
void loader_opts_defaults(loader_opts *o);

typedef struct {
    int n;             /* rows of this replica in this batch (B/dp except in a last
                          partial batch, where slices differ by at most one row) */
    int t, k;          /* T, and K candidates (0 unless candidates were requested) */
    dataset_rows rows; /* ids (n,T), lengths, answer_start, sample_id; candidates */
    int32_t *targets;  /* (n, T): ids[t+1] where answer_start <= t+1 < length, else -1 */
    int64_t *index;    /* (n) row of each sample in the file */
    int64_t epoch;
    int64_t step;     /* batch index within the epoch */
    int64_t position; /* epoch-order position of the global batch's first row */
    int64_t first;    /* epoch-order position of this replica's first row */
    int64_t global_n; /* rows of the global batch, all replicas */
} loader_batch;

/* Where the next batch starts: loader_next delivers the batch at position `position`
 * of epoch `epoch`. Saved in checkpoints; loader_seek restores it exactly. */
typedef struct {
    int64_t epoch, position;
} loader_cursor;

typedef struct loader loader;

int loader_open(loader **out, const char *path, const char *split, const loader_opts *o, char *err,
                size_t errlen);
/* 1 and *b (valid until the next call), 0 after max_epochs, or -1 with err. */
int loader_next(loader *ld, loader_batch **b, char *err, size_t errlen);
loader_cursor loader_cursor_get(const loader *ld);
int loader_seek(loader *ld, loader_cursor c, char *err, size_t errlen);
void loader_close(loader *ld);

const dataset_info *loader_info(const loader *ld);
int64_t loader_batches_per_epoch(const loader *ld);
size_t loader_mem_bytes(const loader *ld); /* bytes of buffers held */
/* 1 when the read-ahead thread is in use; why holds the reason when it is not. */
int loader_prefetch_status(const loader *ld, const char **why);

/* The row at epoch-order position pos (0 <= pos < n): the permutation itself. */
int64_t loader_order(uint64_t seed, int64_t epoch, int64_t n, int64_t pos, int shuffle);

/* Next-token targets of n sequences of T tokens (the rule of loader_batch.targets). */
void loader_targets(int32_t *targets, const int32_t *ids, const int32_t *lengths,
                    const int32_t *answer_start, int n, int t);

#endif
