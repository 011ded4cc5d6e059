/* tests/test_loader.c — the streaming loader under mpirun (1, 2, 4, 8 ranks): the
 * fixture, the helpers, main and the bench. Rank 0 writes the fixtures with the dataset
 * writer: a split whose every value is a known function of its row, so each row read
 * (ids, lengths, answer start, sample id, candidate sets, next-token targets) can be
 * checked wherever it lands. main runs the order, dp-slice, drop_last and cursor checks of
 * test_loader_order.c and the memory-budget and bad-dataset checks of test_loader_files.c
 * (`test_loader h5py FILE` instead checks the h5py example's file), then reports the
 * failures summed over all ranks and exits non-zero when there are any.
 *   test_loader bench [ms]  prints read-time figures (prefetch vs collective) around a
 *                           compute of ms per batch (negative: a sleep); not a test. */
#define _POSIX_C_SOURCE 200809L
#include "test_loader.h"
#include "mpi/comm.h"
#include "mpi/fatal.h"

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int rank, size, failures;

/* The fixture's value functions. */
int len_of(int64_t i, int t)
{
    return 3 + (int)((i * 7) % (t - 3));
}
static int as_of(int64_t i, int t)
{
    return 1 + (int)(i % (len_of(i, t) - 1));
}
static int32_t id_of(int64_t i, int j)
{
    return (int32_t)((i * 13 + j * 5) % V);
}
int64_t sid_of(int64_t i)
{
    return 100000 + 3 * i;
}
static int plen_of(int64_t i, int k, int t)
{
    return 2 + (int)((i + k) % (t - 2));
}

/* Writes a split "/forget" of n rows (rank 0), with K=2 candidates when cand. */
void make_file(const char *path, int64_t n, int t, int cand)
{
    if (rank == 0) {
        char err[1024];
        dataset_writer w;
        dataset_attrs a = {"byte", V, 0, 1, "sha256:test"};
        int k = cand ? 2 : 0;
        if (dsw_create(&w, path, &a, err, sizeof err) ||
            dsw_split_begin(&w, "forget", n, t, k, cand, cand, err, sizeof err)) {
            fprintf(stderr, "fixture: %s\n", err);
            MPI_Abort(MPI_COMM_WORLD, 2);
        }
        int64_t blk = 4096;
        dataset_rows r = {0};
        r.ids = malloc(blk * t * 4);
        r.lengths = malloc(blk * 4);
        r.answer_start = malloc(blk * 4);
        r.sample_id = malloc(blk * 8);
        if (cand) {
            r.para_ids = malloc(blk * t * 4);
            r.para_lengths = malloc(blk * 4);
            r.para_answer_start = malloc(blk * 4);
            r.pert_ids = malloc(blk * k * t * 4);
            r.pert_lengths = malloc(blk * k * 4);
            r.pert_answer_start = malloc(blk * k * 4);
        }
        for (int64_t r0 = 0; r0 < n; r0 += blk) {
            int64_t m = n - r0 < blk ? n - r0 : blk;
            for (int64_t q = 0; q < m; q++) {
                int64_t i = r0 + q;
                int L = len_of(i, t);
                r.lengths[q] = L;
                r.answer_start[q] = as_of(i, t);
                r.sample_id[q] = sid_of(i);
                for (int j = 0; j < t; j++) r.ids[q * t + j] = j < L ? id_of(i, j) : 0;
                if (!cand) continue;
                r.para_lengths[q] = L;
                r.para_answer_start[q] = as_of(i, t);
                for (int j = 0; j < t; j++)
                    r.para_ids[q * t + j] = j < L ? (int32_t)((i * 17 + j) % V) : 0;
                for (int c = 0; c < k; c++) {
                    int pl = plen_of(i, c, t);
                    r.pert_lengths[q * k + c] = pl;
                    r.pert_answer_start[q * k + c] = 1;
                    for (int j = 0; j < t; j++)
                        r.pert_ids[(q * k + c) * t + j] =
                            j < pl ? (int32_t)((i * 19 + c * 7 + j) % V) : 0;
                }
            }
            if (dsw_write(&w, &r, r0, m, err, sizeof err)) {
                fprintf(stderr, "fixture: %s\n", err);
                MPI_Abort(MPI_COMM_WORLD, 2);
            }
        }
        if (dsw_split_end(&w, err, sizeof err) || dsw_close(&w, err, sizeof err)) {
            fprintf(stderr, "fixture: %s\n", err);
            MPI_Abort(MPI_COMM_WORLD, 2);
        }
        void **p = (void **)&r;
        for (size_t q = 0; q < sizeof r / sizeof(void *); q++) free(p[q]);
    }
    MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
}

/* Checks every row of a batch against the fixture functions; returns rows checked. */
int check_rows(const loader_batch *b, int cand)
{
    int t = b->t, bad = 0;
    for (int q = 0; q < b->n && bad < 3; q++) {
        int64_t i = b->index[q];
        int L = len_of(i, t), A = as_of(i, t), ok = 1;
        ok &= b->rows.lengths[q] == L && b->rows.answer_start[q] == A &&
              b->rows.sample_id[q] == sid_of(i);
        for (int j = 0; j < t; j++) {
            ok &= b->rows.ids[q * t + j] == (j < L ? id_of(i, j) : 0);
            int32_t want = (j + 1 >= A && j + 1 < L) ? id_of(i, j + 1) : -1;
            ok &= b->targets[q * t + j] == want;
        }
        if (cand) {
            ok &= b->k == 2 && b->rows.para_lengths[q] == L;
            for (int c = 0; c < 2; c++) {
                int pl = plen_of(i, c, t);
                ok &= b->rows.pert_lengths[q * 2 + c] == pl &&
                      b->rows.pert_answer_start[q * 2 + c] == 1;
                for (int j = 0; j < t; j++)
                    ok &= b->rows.pert_ids[(q * 2 + c) * t + j] ==
                          (j < pl ? (int32_t)((i * 19 + c * 7 + j) % V) : 0);
            }
            for (int j = 0; j < t; j++)
                ok &= b->rows.para_ids[q * t + j] == (j < L ? (int32_t)((i * 17 + j) % V) : 0);
        }
        if (!ok) {
            bad++;
            CHECK(0, "batch epoch %lld step %lld row %d (file row %lld) has wrong content",
                  (long long)b->epoch, (long long)b->step, q, (long long)i);
        }
    }
    return b->n;
}

loader *open_or_die(const char *path, const char *split, const loader_opts *o)
{
    char err[1024];
    loader *ld = NULL;
    if (loader_open(&ld, path, split, o, err, sizeof err)) {
        fprintf(stderr, "FAIL rank %d: loader_open: %s\n", rank, err);
        MPI_Abort(MPI_COMM_WORLD, 3);
    }
    return ld;
}

int next_or_die(loader *ld, loader_batch **b)
{
    char err[1024];
    int rc = loader_next(ld, b, err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "FAIL rank %d: loader_next: %s\n", rank, err);
        MPI_Abort(MPI_COMM_WORLD, 3);
    }
    return rc;
}

uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 1099511628211ull;
    return h;
}

uint64_t batch_hash(const loader_batch *b)
{
    uint64_t h = 1469598103934665603ull;
    size_t n = (size_t)b->n, t = (size_t)b->t, k = (size_t)b->k;
    h = fnv(h, b->rows.ids, n * t * 4);
    h = fnv(h, b->targets, n * t * 4);
    h = fnv(h, b->rows.lengths, n * 4);
    h = fnv(h, b->rows.answer_start, n * 4);
    h = fnv(h, b->rows.sample_id, n * 8);
    h = fnv(h, b->index, n * 8);
    if (b->rows.para_ids) h = fnv(h, b->rows.para_ids, n * t * 4);
    if (b->rows.pert_ids) h = fnv(h, b->rows.pert_ids, n * k * t * 4);
    if (b->rows.pert_lengths) h = fnv(h, b->rows.pert_lengths, n * k * 4);
    return h;
}

/* ---- bench: not a test ------------------------------------------------------------------------
 */

static void bench(const char *path, double compute_ms)
{
    make_file(path, 16384, 256, 0);
    for (int pf = 0; pf <= 1; pf++) {
        loader_opts o;
        loader_opts_defaults(&o);
        o.world = MPI_COMM_WORLD;
        o.dp = size;
        o.dp_rank = rank;
        o.global_batch = 64 * size;
        o.seed = 1;
        o.max_epochs = 1;
        o.prefetch = pf;
        loader *ld = open_or_die(path, "forget", &o);
        loader_batch *b;
        double wait = 0, t0 = MPI_Wtime();
        int nb = 0;
        for (;;) {
            double a = MPI_Wtime();
            if (next_or_die(ld, &b) != 1) break;
            wait += MPI_Wtime() - a;
            nb++;
            /* the caller's compute: a spin (compute_ms > 0) or a sleep (< 0, leaves the
             * core free, as a rank waiting on communication would) */
            if (compute_ms < 0) {
                struct timespec ts = {0, (long)(-compute_ms * 1e6)};
                nanosleep(&ts, NULL);
            } else {
                double until = MPI_Wtime() + compute_ms / 1e3;
                while (MPI_Wtime() < until) {
                }
            }
        }
        double total = MPI_Wtime() - t0;
        if (rank == 0)
            printf(
                "bench: %d ranks, prefetch %d: %d batches of %d rows x 256, compute %.1f ms/batch: "
                "total %.3f s, waiting in loader_next %.3f s (%.3f ms/batch)\n",
                size, pf, nb, 64 * size, compute_ms, total, wait, 1e3 * wait / nb);
        loader_close(ld);
    }
}

int main(int argc, char **argv)
{
    comm_init(&argc, &argv);
    MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
    MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size));
    char prefix[64], main_file[96], big[96], good[96];
    snprintf(prefix, sizeof prefix, "test_loader_np%d", size);
    snprintf(main_file, sizeof main_file, "%s_main.h5", prefix);
    snprintf(big, sizeof big, "%s_big.h5", prefix);
    snprintf(good, sizeof good, "%s_good.h5", prefix);
    if (argc == 3 && strcmp(argv[1], "h5py") == 0) {
        test_h5py(argv[2]);
    } else if (argc >= 2 && strcmp(argv[1], "bench") == 0) {
        bench(big, argc >= 3 ? atof(argv[2]) : 1.0);
    } else {
        make_file(main_file, N_MAIN, T_MAIN, 1);
        test_order(main_file);
        test_partial(main_file);
        test_cursor(main_file);
        test_budget(big);
        test_bad(good, prefix);
    }
    MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
    if (rank == 0) {
        remove(main_file);
        remove(big);
        remove(good);
    }
    int all = 0;
    MPI_CHECK(MPI_Allreduce(&failures, &all, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD));
    if (rank == 0)
        printf(all ? "test_loader: %d failure(s)\n" : "test_loader: all checks passed\n", all);
    MPI_Finalize();
    return all ? 1 : 0;
}
