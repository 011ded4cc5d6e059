/* tests/test_loader_files.c — the loader against the files it is given: a 16 MiB split
 * streams through a 1 MiB budget (the buffers held stay under it, resident memory grows by
 * less than half the split) and a batch over budget is refused; every bad dataset (missing,
 * not HDF5, truncated, wrong type or shape, ids, lengths or answer starts out of range,
 * missing attribute, dataset or split) and every bad option gives its one-line message on
 * every rank, counted over all ranks; the file written by the h5py example of
 * io/DATASETS.md reads back with its rows' ids, targets and candidates. */
#include "test_loader.h"
#include "mpi/fatal.h"

#include <hdf5.h>
#include <mpi.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

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

void test_budget(const char *path)
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

void test_bad(const char *good, const char *prefix)
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

void test_h5py(const char *path)
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
