/* tests/test_loader.c — the streaming loader under mpirun (1, 2, 4, 8 ranks).
 *
 * Rank 0 writes the fixtures with the dataset writer: a split whose every value is a
 * known function of its row, so each row read can be checked wherever it lands.
 * Asserted:
 *   - dp = 1: an epoch visits every row once; each row's ids, lengths, answer start,
 *     sample id, candidate sets and next-token targets are the row's own;
 *   - for every dp in {1,2,4,8} dividing the rank count, with and without prefetch:
 *     ranks of one replica get identical batches and the replicas' slices, in
 *     replica order, are exactly the dp = 1 global batch, batch after batch;
 *   - the order is a function of (seed, epoch): epochs differ, two loaders agree,
 *     all ranks agree, another seed differs, shuffle off is file order;
 *   - drop_last off: one epoch delivers all N rows, the last batch split evenly;
 *   - a saved cursor resumes exactly (across an epoch boundary, with and without
 *     prefetch on either side);
 *   - a 16 MiB split streams through a 1 MiB budget: the buffers held stay under it
 *     and resident memory grows by less than half the split; a batch over budget
 *     is refused;
 *   - every bad dataset gives its one-line message on every rank (counted).
 *   test_loader bench [ms]  prints read-time figures (prefetch vs collective) around a
 *                           compute of ms per batch (negative: a sleep); not a test. */
#define _POSIX_C_SOURCE 200809L
#include "io/dataset.h"
#include "io/loader.h"
#include "mpi/comm.h"
#include "mpi/fatal.h"

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int rank, size, failures;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            failures++;                                                                            \
            fprintf(stderr, "FAIL rank %d %s:%d: ", rank, __FILE__, __LINE__);                     \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
        }                                                                                          \
    } while (0)

#define V 500 /* vocabulary of the fixtures */

/* The fixture's value functions. */
static int len_of(int64_t i, int t)
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
static int64_t sid_of(int64_t i)
{
    return 100000 + 3 * i;
}
static int plen_of(int64_t i, int k, int t)
{
    return 2 + (int)((i + k) % (t - 2));
}

/* Writes a split "/forget" of n rows (rank 0), with K=2 candidates when cand. */
static void make_file(const char *path, int64_t n, int t, int cand)
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
static int check_rows(const loader_batch *b, int cand)
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

static loader *open_or_die(const char *path, const char *split, const loader_opts *o)
{
    char err[1024];
    loader *ld = NULL;
    if (loader_open(&ld, path, split, o, err, sizeof err)) {
        fprintf(stderr, "FAIL rank %d: loader_open: %s\n", rank, err);
        MPI_Abort(MPI_COMM_WORLD, 3);
    }
    return ld;
}

static int next_or_die(loader *ld, loader_batch **b)
{
    char err[1024];
    int rc = loader_next(ld, b, err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "FAIL rank %d: loader_next: %s\n", rank, err);
        MPI_Abort(MPI_COMM_WORLD, 3);
    }
    return rc;
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 1099511628211ull;
    return h;
}

static uint64_t batch_hash(const loader_batch *b)
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

/* ---- order and dp slices ------------------------------------------------------------------ */

/* Small, because every collective read costs milliseconds on an oversubscribed node. */
#define N_MAIN 240
#define T_MAIN 32
#define B_MAIN 48

static void test_order(const char *path)
{
    loader_opts o;
    loader_opts_defaults(&o);
    o.world = MPI_COMM_WORLD;
    o.global_batch = B_MAIN;
    o.seed = 1234;
    o.max_epochs = 2;
    o.prefetch = 1;
    o.candidates = 1;
    loader *ld = open_or_die(path, "forget", &o);
    CHECK(loader_batches_per_epoch(ld) == N_MAIN / B_MAIN, "batches per epoch %lld",
          (long long)loader_batches_per_epoch(ld));
    /* reference order at dp = 1: two epochs */
    int64_t *ref = malloc(2 * N_MAIN * sizeof *ref);
    int64_t got = 0;
    loader_batch *b;
    int checked = 0;
    while (next_or_die(ld, &b) == 1) {
        CHECK(b->n == B_MAIN && b->global_n == B_MAIN, "dp=1 batch of %d rows", b->n);
        CHECK(b->position == (got % N_MAIN) && b->epoch == got / N_MAIN,
              "batch at epoch %lld position %lld, expected %lld %lld", (long long)b->epoch,
              (long long)b->position, (long long)(got / N_MAIN), (long long)(got % N_MAIN));
        checked += check_rows(b, 1);
        for (int i = 0; i < b->n && got < 2 * N_MAIN; i++) ref[got++] = b->index[i];
    }
    CHECK(got == 2 * N_MAIN && checked == 2 * N_MAIN, "two epochs gave %lld rows", (long long)got);
    loader_close(ld);
    /* each epoch is a permutation; epochs differ; the order is loader_order's */
    char *seen = calloc(N_MAIN, 1);
    int perm_ok = 1, same_pos = 0, formula_ok = 1;
    for (int e = 0; e < 2; e++) {
        memset(seen, 0, N_MAIN);
        for (int p = 0; p < N_MAIN; p++) {
            int64_t r = ref[e * N_MAIN + p];
            perm_ok &= r >= 0 && r < N_MAIN && !seen[r];
            if (r >= 0 && r < N_MAIN) seen[r] = 1;
            formula_ok &= r == loader_order(1234, e, N_MAIN, p, 1);
        }
    }
    for (int p = 0; p < N_MAIN; p++) same_pos += ref[p] == ref[N_MAIN + p];
    CHECK(perm_ok, "an epoch is not a permutation of the rows");
    CHECK(formula_ok, "the batches do not follow loader_order");
    /* two random permutations share ~1 position; 20 is far beyond chance */
    CHECK(same_pos < 20, "epochs 0 and 1 agree at %d of %d positions", same_pos, N_MAIN);
    int moved = 0, other_seed = 0;
    for (int p = 0; p < N_MAIN; p++) {
        moved += ref[p] != p;
        other_seed += loader_order(99, 0, N_MAIN, p, 1) == ref[p];
    }
    CHECK(moved > N_MAIN - 20, "the shuffle left %d of %d rows in place", N_MAIN - moved, N_MAIN);
    CHECK(other_seed < 20, "seeds 1234 and 99 agree at %d positions", other_seed);
    for (int p = 0; p < N_MAIN; p++)
        if (loader_order(1234, 3, N_MAIN, p, 0) != p) {
            CHECK(0, "shuffle off is not file order at %d", p);
            break;
        }
    /* the same order on every rank (each rank is its own process) */
    uint64_t h = fnv(1469598103934665603ull, ref, 2 * N_MAIN * sizeof *ref), h0 = h;
    MPI_CHECK(MPI_Bcast(&h0, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD));
    CHECK(h == h0, "rank %d's order differs from rank 0's", rank);
    /* a second loader (fresh state) gives the same order */
    ld = open_or_die(path, "forget", &o);
    for (int64_t q = 0; q < N_MAIN && next_or_die(ld, &b) == 1; q += b->n)
        for (int i = 0; i < b->n; i++)
            if (b->index[i] != ref[q + i]) {
                CHECK(0, "a second loader differs at position %lld", (long long)(q + i));
                q = N_MAIN;
                break;
            }
    loader_close(ld);

    /* every dp dividing the rank count, prefetch on and off; then the candidate sets
     * through the collective path at dp = ranks */
    int64_t *all = malloc((size_t)size * (B_MAIN + 1) * sizeof *all);
    for (int run = 0; run < 9; run++) {
        int dp = run < 8 ? 1 << (run / 2) : size, pf = run < 8 ? run % 2 : 0, cand = run == 8;
        if (size % dp) continue;
        loader_opts od = o;
        od.dp = dp;
        od.dp_rank = rank / (size / dp);
        od.prefetch = pf;
        od.candidates = cand;
        od.max_epochs = 1;
        ld = open_or_die(path, "forget", &od);
        const char *why;
        int th = loader_prefetch_status(ld, &why);
        CHECK(th == pf, "dp %d prefetch %d: read-ahead thread %d (%s)", dp, pf, th, why);
        int64_t pos = 0, mism = 0;
        int cap = B_MAIN / dp;
        while (next_or_die(ld, &b) == 1) {
            check_rows(b, cand);
            int64_t mine[B_MAIN + 1];
            mine[0] = (int64_t)batch_hash(b);
            for (int i = 0; i < cap; i++) mine[1 + i] = i < b->n ? b->index[i] : -1;
            MPI_CHECK(MPI_Allgather(mine, cap + 1, MPI_INT64_T, all, cap + 1, MPI_INT64_T,
                                    MPI_COMM_WORLD));
            int per = size / dp;
            for (int q = 0; q < size; q++) {
                int rep = q / per, lead = rep * per;
                if (memcmp(all + q * (cap + 1), all + lead * (cap + 1), (size_t)(cap + 1) * 8))
                    mism++;
                for (int i = 0; i < cap; i++)
                    if (all[q * (cap + 1) + 1 + i] != ref[pos + rep * cap + i]) mism++;
            }
            pos += B_MAIN;
        }
        CHECK(pos == N_MAIN, "dp %d prefetch %d: %lld rows in an epoch", dp, pf, (long long)pos);
        CHECK(mism == 0,
              "dp %d prefetch %d candidates %d: %lld rows differ from the dp=1 order "
              "or between ranks of one replica",
              dp, pf, cand, (long long)mism);
        loader_close(ld);
    }
    free(all);
    free(seen);
    free(ref);
}

/* drop_last off, one epoch: all rows once, the last batch split evenly. */
static void test_partial(const char *path)
{
    int dp = size;
    loader_opts o;
    loader_opts_defaults(&o);
    o.world = MPI_COMM_WORLD;
    o.dp = dp;
    o.dp_rank = rank;
    o.global_batch = 56; /* 240 = 4 * 56 + 16 */
    o.seed = 7;
    o.drop_last = 0;
    o.max_epochs = 1;
    loader *ld = open_or_die(path, "forget", &o);
    CHECK(loader_batches_per_epoch(ld) == 5, "batches per epoch %lld, expected 5",
          (long long)loader_batches_per_epoch(ld));
    loader_batch *b;
    int64_t rows = 0, batches = 0, last_n = -1, last_g = -1;
    int64_t sum = 0;
    while (next_or_die(ld, &b) == 1) {
        batches++;
        rows += b->n;
        for (int i = 0; i < b->n; i++) sum += b->index[i];
        last_n = b->n;
        last_g = b->global_n;
        check_rows(b, 0);
    }
    int64_t tot[2] = {rows, sum}, g[2];
    MPI_CHECK(MPI_Allreduce(tot, g, 2, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD));
    CHECK(batches == 5 && g[0] == N_MAIN && g[1] == (int64_t)N_MAIN * (N_MAIN - 1) / 2,
          "drop_last off: %lld batches, %lld rows, row sum %lld", (long long)batches,
          (long long)g[0], (long long)g[1]);
    int64_t want = 16 / dp + (rank < 16 % dp ? 1 : 0);
    CHECK(last_g == 16 && last_n == want, "last batch: global %lld, mine %lld, expected 16, %lld",
          (long long)last_g, (long long)last_n, (long long)want);
    loader_batch *b2;
    CHECK(next_or_die(ld, &b2) == 0, "after max_epochs loader_next must return 0");
    loader_close(ld);
}

/* Cursor save/restore across an epoch boundary. */
static void test_cursor(const char *path)
{
    for (int pf_a = 0; pf_a <= 1; pf_a++) {
        int pf_b = 1 - pf_a;
        loader_opts o;
        loader_opts_defaults(&o);
        o.world = MPI_COMM_WORLD;
        o.dp = size >= 2 ? 2 : 1;
        o.dp_rank = rank / (size / o.dp);
        o.global_batch = B_MAIN;
        o.seed = 5;
        o.prefetch = pf_a;
        loader *ld = open_or_die(path, "forget", &o);
        loader_batch *b;
        for (int i = 0; i < 3; i++) next_or_die(ld, &b);
        loader_cursor c = loader_cursor_get(ld);
        CHECK(c.epoch == 0 && c.position == 3 * B_MAIN, "cursor (%lld, %lld) after 3 batches",
              (long long)c.epoch, (long long)c.position);
        uint64_t h1[8];
        int64_t ep_end = 0;
        for (int i = 0; i < 8; i++) {
            next_or_die(ld, &b);
            h1[i] = batch_hash(b) ^ (uint64_t)b->epoch * 31 ^ (uint64_t)b->position;
            ep_end |= b->epoch == 1;
        }
        CHECK(ep_end, "the cursor test must cross an epoch boundary");
        loader_cursor after = loader_cursor_get(ld);
        loader_close(ld);

        o.prefetch = pf_b;
        ld = open_or_die(path, "forget", &o);
        next_or_die(ld, &b); /* move away first: seek must discard what was read ahead */
        char err[512];
        CHECK(loader_seek(ld, c, err, sizeof err) == 0, "seek: %s", err);
        int same = 0;
        for (int i = 0; i < 8; i++) {
            next_or_die(ld, &b);
            same += (batch_hash(b) ^ (uint64_t)b->epoch * 31 ^ (uint64_t)b->position) == h1[i];
        }
        CHECK(same == 8, "resume (prefetch %d -> %d): %d of 8 batches identical", pf_a, pf_b, same);
        loader_cursor c2 = loader_cursor_get(ld);
        CHECK(c2.epoch == after.epoch && c2.position == after.position,
              "cursor after resume (%lld, %lld) vs (%lld, %lld)", (long long)c2.epoch,
              (long long)c2.position, (long long)after.epoch, (long long)after.position);
        loader_cursor badc = {0, N_MAIN + 1};
        CHECK(loader_seek(ld, badc, err, sizeof err) != 0 && strstr(err, "outside the split"),
              "a cursor past the split must be refused: '%s'", err);
        loader_close(ld);
    }
}

/* ---- memory budget ----------------------------------------------------------------------------
 */

static long rss_kib(void)
{
    long pages = 0, res = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &res) != 2) res = 0;
        fclose(f);
    }
    return res * (sysconf(_SC_PAGESIZE) / 1024);
}

static void test_budget(const char *path)
{
    const int t = 256;
    const int64_t n = 16384; /* 16 MiB of input_ids */
    make_file(path, n, t, 0);
    loader_opts o;
    loader_opts_defaults(&o);
    o.world = MPI_COMM_WORLD;
    o.dp = size;
    o.dp_rank = rank;
    o.global_batch = 192 * size; /* 2 buffers of 192 rows x 256 fit in 1 MiB */
    o.seed = 11;
    o.max_epochs = 1;
    o.budget = (size_t)1 << 20;
    for (int pf = 1; pf >= 0; pf--) {
        o.prefetch = pf;
        long before = rss_kib();
        loader *ld = open_or_die(path, "forget", &o);
        size_t mem = loader_mem_bytes(ld);
        CHECK(mem > 0 && mem <= o.budget, "prefetch %d: loader holds %zu bytes, budget %zu", pf,
              mem, o.budget);
        loader_batch *b;
        int64_t rows = 0;
        long peak = 0;
        while (next_or_die(ld, &b) == 1) {
            rows += b->n;
            if (b->step % 8 == 0) check_rows(b, 0);
            long r = rss_kib();
            if (r > peak) peak = r;
        }
        int64_t all_rows = 0;
        MPI_CHECK(MPI_Allreduce(&rows, &all_rows, 1, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD));
        int64_t want = n / o.global_batch * o.global_batch;
        CHECK(all_rows == want, "prefetch %d: %lld rows of %lld", pf, (long long)all_rows,
              (long long)want);
        long grew = peak - before;
#if defined(__SANITIZE_ADDRESS__)
        /* AddressSanitizer keeps freed blocks in quarantine, so HDF5's per-read
         * allocations show up as resident growth: only the loader's own count holds */
        (void)grew;
#else
        /* the split is 16 MiB; holding it would grow resident memory by that much */
        CHECK(grew < 8 * 1024,
              "prefetch %d: resident memory grew by %ld KiB while streaming a 16 MiB split", pf,
              grew);
#endif
        if (rank == 0)
            printf("budget: prefetch %d: loader buffers %zu bytes (budget %zu), resident growth "
                   "%ld KiB over a 16 MiB split\n",
                   pf, mem, o.budget, grew);
        loader_close(ld);
    }
    /* a batch that cannot fit */
    o.global_batch = 1024 * size;
    o.prefetch = 1;
    char err[1024];
    loader *ld = NULL;
    int rc = loader_open(&ld, path, "forget", &o, err, sizeof err);
    CHECK(rc != 0 && strstr(err, "over the budget of 1048576 bytes"),
          "a batch over budget must be refused: '%s'", rc ? err : "(opened)");
    if (!rc) loader_close(ld);
}

/* ---- bad datasets -----------------------------------------------------------------------------
 */

/* Rewrites one dataset of a good file with another type or shape (rank 0). */
static void replace_dataset(const char *path, const char *name, hid_t type, int rank_,
                            hsize_t *dims)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    H5Ldelete(f, name, H5P_DEFAULT);
    hid_t s = H5Screate_simple(rank_, dims, NULL);
    hid_t d = H5Dcreate2(f, name, type, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dclose(d);
    H5Sclose(s);
    H5Fclose(f);
}

/* Sets one element of an int32 dataset (rank 0). */
static void poke(const char *path, const char *name, hsize_t r, hsize_t c, int32_t v, int rank_)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    hid_t fs = H5Dget_space(d);
    hsize_t start[2] = {r, c}, one[2] = {1, 1};
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, one, NULL);
    hid_t ms = H5Screate_simple(rank_, one, NULL);
    H5Dwrite(d, H5T_NATIVE_INT32, ms, fs, H5P_DEFAULT, &v);
    H5Sclose(ms);
    H5Sclose(fs);
    H5Dclose(d);
    H5Fclose(f);
}

static void copy_file(const char *from, const char *to, long keep)
{
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    char buf[1 << 15];
    size_t r;
    long done = 0;
    while (a && b && (r = fread(buf, 1, sizeof buf, a)) > 0) {
        if (keep >= 0 && done + (long)r > keep) r = (size_t)(keep - done);
        fwrite(buf, 1, r, b);
        done += (long)r;
        if (keep >= 0 && done >= keep) break;
    }
    if (a) fclose(a);
    if (b) fclose(b);
}

typedef struct {
    const char *what, *file, *split, *expect;
    int at_next; /* the error shows when the bad batch is read */
} bad_case;

static void test_bad(const char *good, const char *prefix)
{
    char p[16][128];
    for (int i = 0; i < 16; i++) snprintf(p[i], sizeof p[i], "%s_bad%d.h5", prefix, i);
    const int t = 16;
    const int64_t n = 64;
    make_file(good, n, t, 0);
    if (rank == 0) {
        remove(p[0]); /* missing file */
        FILE *f = fopen(p[1], "w");
        fputs("input_ids,lengths\n1,2\n", f); /* not HDF5 */
        fclose(f);
        FILE *g = fopen(good, "rb");
        fseek(g, 0, SEEK_END);
        long sz = ftell(g);
        fclose(g);
        copy_file(good, p[2], sz / 2); /* truncated */
        copy_file(good, p[3], -1);     /* float64 input_ids */
        replace_dataset(p[3], "/forget/input_ids", H5T_IEEE_F64LE, 2, (hsize_t[]){n, t});
        copy_file(good, p[4], -1); /* lengths of the wrong shape */
        replace_dataset(p[4], "/forget/lengths", H5T_STD_I32LE, 1, (hsize_t[]){n - 1});
        copy_file(good, p[5], -1); /* an id >= vocab in row 37 */
        poke(p[5], "/forget/input_ids", 37, 5, V, 2);
        copy_file(good, p[6], -1); /* answer_start == length in row 12 */
        poke(p[6], "/forget/answer_start", 12, 0, len_of(12, t), 1);
        copy_file(good, p[7], -1); /* length > T in row 50 */
        poke(p[7], "/forget/lengths", 50, 0, t + 1, 1);
        copy_file(good, p[8], -1); /* sample_id stored as int32 */
        replace_dataset(p[8], "/forget/sample_id", H5T_STD_I32LE, 1, (hsize_t[]){n});
        copy_file(good, p[9], -1); /* no vocab_size attribute */
        hid_t h = H5Fopen(p[9], H5F_ACC_RDWR, H5P_DEFAULT);
        H5Adelete(h, "vocab_size");
        H5Fclose(h);
        copy_file(good, p[10], -1); /* missing answer_start */
        h = H5Fopen(p[10], H5F_ACC_RDWR, H5P_DEFAULT);
        H5Ldelete(h, "/forget/answer_start", H5P_DEFAULT);
        H5Fclose(h);
    }
    MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
    char e[16][512];
    snprintf(e[0], 512, "dataset '%s': cannot open: No such file or directory", p[0]);
    snprintf(e[1], 512, "dataset '%s': not an HDF5 file", p[1]);
    /* HDF5's own cause follows, e.g. "truncated file: eof = 6656, ..., stored_eof = 13312" */
    snprintf(e[2], 512,
             "dataset '%s': HDF5 cannot open it (truncated or damaged file): truncated file", p[2]);
    snprintf(e[3], 512, "dataset '%s': '/forget/input_ids' has type float64, expected int32", p[3]);
    snprintf(e[4], 512, "dataset '%s': '/forget/lengths' has shape [%d], expected [%d]", p[4],
             (int)n - 1, (int)n);
    snprintf(e[5], 512,
             "dataset '%s': '/forget/input_ids' sample 37 (sample_id %lld) position 5: "
             "id %d outside [0, vocab_size %d)",
             p[5], (long long)sid_of(37), V, V);
    snprintf(e[6], 512,
             "dataset '%s': '/forget/answer_start' sample 12: answer_start %d outside "
             "[0, length %d)",
             p[6], len_of(12, t), len_of(12, t));
    snprintf(e[7], 512, "dataset '%s': '/forget/lengths' sample 50: length %d outside [1, %d]",
             p[7], t + 1, t);
    snprintf(e[8], 512, "dataset '%s': '/forget/sample_id' has type int32, expected int64", p[8]);
    snprintf(e[9], 512, "dataset '%s': root attribute 'vocab_size' is missing", p[9]);
    snprintf(e[10], 512, "dataset '%s': '/forget/answer_start' is missing", p[10]);
    snprintf(e[11], 512, "dataset '%s': split '/nope' not found (splits present: /forget)", good);
    bad_case cases[12];
    for (int i = 0; i < 11; i++) cases[i] = (bad_case){"", p[i], "forget", e[i], i == 5};
    cases[11] = (bad_case){"missing group", good, "nope", e[11], 0};
    int ncases = 12, passed = 0;
    for (int c = 0; c < ncases; c++) {
        for (int pf = 0; pf <= 1; pf++) {
            loader_opts o;
            loader_opts_defaults(&o);
            o.world = MPI_COMM_WORLD;
            o.dp = size;
            o.dp_rank = rank;
            o.global_batch = 8 * size;
            o.seed = 3;
            o.max_epochs = 1;
            o.prefetch = pf;
            char err[1024] = "";
            loader *ld = NULL;
            int rc = loader_open(&ld, cases[c].file, cases[c].split, &o, err, sizeof err);
            if (rc == 0) {
                CHECK(cases[c].at_next, "case %d: opened, expected: %s", c, cases[c].expect);
                loader_batch *b;
                while ((rc = loader_next(ld, &b, err, sizeof err)) == 1) {
                }
                rc = rc < 0 ? -1 : 0;
                loader_close(ld);
            }
            int ok = rc != 0 && (c == 2 ? strncmp(err, cases[c].expect, strlen(cases[c].expect))
                                        : strcmp(err, cases[c].expect)) == 0;
            CHECK(ok, "case %d (prefetch %d): got '%s', expected '%s'", c, pf, err,
                  cases[c].expect);
            passed += ok;
            if (rank == 0 && pf == 0 && ok) printf("bad dataset %2d: %s\n", c, err);
        }
    }
    /* bad options: the same verdict everywhere */
    for (int c = 0; c < 3; c++) {
        loader_opts o;
        loader_opts_defaults(&o);
        o.world = MPI_COMM_WORLD;
        o.dp = 2;
        o.dp_rank = rank % 2;
        o.global_batch = c == 0 ? 7 : 8;
        o.seed = 3;
        const char *want = "loader: global batch 7 is not a positive multiple of dp 2";
        if (c == 1) {
            o.dp_rank = rank == 0 ? 2 : 0; /* one rank out of range */
            want = "loader: dp_rank 2 outside [0, dp 2)";
        } else if (c == 2) {
            if (size == 1) continue; /* one rank cannot disagree with itself */
            o.prefetch = rank == size - 1;
            want = "loader: ranks disagree on option 'prefetch' (0 vs 1)";
        }
        char err[1024] = "";
        loader *ld = NULL;
        int rc = loader_open(&ld, good, "forget", &o, err, sizeof err);
        CHECK(rc != 0 && strcmp(err, want) == 0, "bad options %d: got '%s', expected '%s'", c,
              rc ? err : "(opened)", want);
        if (rc == 0) loader_close(ld);
    }

    int total = 0;
    MPI_CHECK(MPI_Allreduce(&passed, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD));
    CHECK(total == 2 * ncases * size, "bad datasets: %d messages of %d expected over all ranks",
          total, 2 * ncases * size);
    if (rank == 0)
        printf("bad datasets: %d of %d messages on %d ranks\n", total, 2 * ncases * size, size);
    MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
    if (rank == 0)
        for (int i = 0; i < 11; i++) remove(p[i]);
}

/* ---- the h5py example of io/DATASETS.md ------------------------------------------------------ */

static void test_h5py(const char *path)
{
    loader_opts o;
    loader_opts_defaults(&o);
    o.world = MPI_COMM_WORLD;
    o.global_batch = 2;
    o.shuffle = 0;
    o.max_epochs = 1;
    o.candidates = 1;
    loader *ld = open_or_die(path, "forget", &o);
    const dataset_info *in = loader_info(ld);
    const char *why;
    CHECK(strcmp(in->tokenizer, "mine") == 0 && in->vocab_size == 100 && in->pad_id == 0 &&
              in->eos_id == 1 && in->t == 8 && in->k == 2 && !in->has_para && in->has_pert,
          "h5py file: tokenizer %s vocab %lld T %d K %d", in->tokenizer, (long long)in->vocab_size,
          in->t, in->k);
    CHECK(loader_prefetch_status(ld, &why), "h5py's default layout must allow read-ahead: %s", why);
    loader_batch *b;
    CHECK(next_or_die(ld, &b) == 1 && b->n == 2, "h5py file: no batch of 2");
    /* the example's rows: prompt + answer + EOS (1), padded with 0 */
    const int32_t want[2][8] = {{5, 6, 7, 20, 21, 1, 0, 0}, {5, 8, 30, 31, 32, 1, 0, 0}};
    const int32_t tgt[2][8] = {{-1, -1, 20, 21, 1, -1, -1, -1}, {-1, 30, 31, 32, 1, -1, -1, -1}};
    for (int i = 0; i < 2; i++) {
        CHECK(memcmp(b->rows.ids + 8 * i, want[i], sizeof want[i]) == 0, "h5py row %d ids", i);
        CHECK(memcmp(b->targets + 8 * i, tgt[i], sizeof tgt[i]) == 0, "h5py row %d targets", i);
        CHECK(memcmp(b->rows.pert_ids + 16 * i + 8, want[i], sizeof want[i]) == 0,
              "h5py row %d candidate 1", i);
        CHECK(b->rows.lengths[i] == 6 && b->rows.answer_start[i] == 3 - i &&
                  b->rows.sample_id[i] == i && b->rows.pert_lengths[2 * i + 1] == 6,
              "h5py row %d: length %d answer_start %d", i, b->rows.lengths[i],
              b->rows.answer_start[i]);
    }
    loader_close(ld);
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
