/* tests/bench_checkpoint.c — checkpoint bandwidth against a plain sequential write.
 *
 *   mpirun -n 2 bench_checkpoint [MiB of parameters, default 256] [dir, default .] [reps, 5]
 *
 * Builds a table of MiB parameters (half the tensors row-split, half column-split over
 * tp = world size, as projections are), saves it with ckpt_save (parameters + both AdamW
 * moments: the file holds 3x MiB) and loads it with ckpt_load, `reps` times each. The baseline
 * is what `dd bs=4M conv=fsync` does: rank 0 writes the same number of bytes in 4 MiB
 * write()s, fsyncs, and reads them back. Reads are measured twice: with the file in the
 * page cache (just written) and cold (pages dropped with posix_fadvise after the sync).
 * The digest pass is timed on its own, since save and load both pay it, and the same
 * bytes go through MPI-IO without HDF5 (one contiguous share per rank) to show what the
 * HDF5 layer and the per-tensor collectives add. A second raw baseline writes the bytes
 * the checkpoint writes, from the same memory: each rank pwrite()s its own parameter and
 * moment buffers into its share of one file and fsyncs, then preads them back. On a
 * virtual machine whose freed memory goes back to the host, page-cache pages that were
 * just freed are cheap and cold ones are not, so a 4 MiB buffer written again and again
 * (dd) can be several times faster than any write of 768 MiB of distinct memory: the
 * ratios are printed against both baselines. A save starts the write-back of each kind
 * (parameters, m, v) as soon as it is written (sync_file_range), so a third baseline does
 * the same in the raw write: each rank starts the write-back of each buffer after its
 * pwrite(), then fsyncs.
 * Prints figures; asserts nothing. */
#define _GNU_SOURCE /* sync_file_range */
#include "io/checkpoint.h"
#include "mpi/comm.h"
#include "mpi/fatal.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_REPS 64
#define COLS 4096

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* min and median of n timings */
static void stats(const double *t, int n, double *mn, double *med)
{
    double s[64];
    memcpy(s, t, (size_t)n * sizeof(double));
    qsort(s, (size_t)n, sizeof(double), cmp_double);
    *mn = s[0];
    *med = n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}

static void drop_cache(const char *path)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0) return;
    fdatasync(fd);
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    close(fd);
}

/* dd-style: one stream of 4 MiB writes + fsync, then reads back. */
static void plain_io(const char *path, size_t bytes, double *tw, double *tr_warm, double *tr_cold)
{
    const size_t bs = 4u << 20;
    char *buf = lethe_malloc(bs, "bench block");
    memset(buf, 0x5a, bs);
    double t0 = MPI_Wtime();
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) lethe_fatal("bench: cannot create '%s'", path);
    for (size_t done = 0; done < bytes;) {
        size_t n = bytes - done < bs ? bytes - done : bs;
        ssize_t w = write(fd, buf, n);
        if (w <= 0) lethe_fatal("bench: write to '%s' failed", path);
        done += (size_t)w;
    }
    if (fsync(fd) || close(fd)) lethe_fatal("bench: fsync/close of '%s' failed", path);
    *tw = MPI_Wtime() - t0;
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) drop_cache(path);
        t0 = MPI_Wtime();
        fd = open(path, O_RDONLY);
        while (read(fd, buf, bs) > 0) {
        }
        close(fd);
        *(pass == 0 ? tr_warm : tr_cold) = MPI_Wtime() - t0;
    }
    unlink(path);
    free(buf);
}

/* Rank r's three buffers of n bytes at file offset 3 r n, written (write = 1; 2: each
 * buffer's write-back started after its write) or read. */
static void own_buffers_io(int fd, const char *path, int write, float *const *bufs, size_t n,
                           int rank)
{
    for (int k = 0; k < 3; k++) {
        for (size_t done = 0; done < n;) {
            char *at = (char *)bufs[k] + done;
            off_t off = (off_t)((3 * (size_t)rank + k) * n + done);
            ssize_t r = write ? pwrite(fd, at, n - done, off) : pread(fd, at, n - done, off);
            if (r <= 0) lethe_fatal("bench: %s '%s' failed", write ? "write to" : "read of", path);
            done += (size_t)r;
        }
        if (write == 2) sync_file_range(fd, (off_t)((3 * (size_t)rank + k) * n), (off_t)n,
                                        SYNC_FILE_RANGE_WRITE);
    }
}

/* The checkpoint's bytes from the checkpoint's memory, POSIX only: rank r writes its
 * data, m and v buffers one after the other at offset r * share (early: starting each
 * one's write-back after it), all ranks fsync; then (tr not NULL) reads them back. */
static void raw_own_io(const char *path, const lethe_params *t, int early, double *tw,
                       double *tr)
{
    int rank;
    MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
    size_t n = t->total * sizeof(float);
    float *bufs[3] = {t->data, t->m, t->v};
    if (rank == 0) close(open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644));
    MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
    double t0 = MPI_Wtime();
    int fd = open(path, O_WRONLY);
    if (fd < 0) lethe_fatal("bench: cannot open '%s'", path);
    own_buffers_io(fd, path, early ? 2 : 1, bufs, n, rank);
    if (fsync(fd) || close(fd)) lethe_fatal("bench: fsync/close of '%s' failed", path);
    MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
    *tw = MPI_Wtime() - t0;
    if (!tr) {
        if (rank == 0) unlink(path);
        return;
    }
    t0 = MPI_Wtime();
    fd = open(path, O_RDONLY);
    own_buffers_io(fd, path, 0, bufs, n, rank);
    close(fd);
    MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
    *tr = MPI_Wtime() - t0;
    if (rank == 0) unlink(path);
}

/* The same bytes through MPI-IO without HDF5: each rank one contiguous share, one
 * collective write, MPI_File_sync (what the HDF5 layer costs on top). */
static void mpiio_io(const char *path, size_t bytes, double *tw, double *tr)
{
    int rank, size;
    MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
    MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size));
    const size_t blk = 1u << 20;
    size_t nblk = bytes / blk / (size_t)size;
    char *buf = lethe_malloc(nblk * blk, "bench share");
    memset(buf, 0x5a, nblk * blk);
    MPI_Datatype mib;
    MPI_CHECK(MPI_Type_contiguous((int)blk, MPI_BYTE, &mib));
    MPI_CHECK(MPI_Type_commit(&mib));
    MPI_File fh;
    MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
    double t0 = MPI_Wtime();
    MPI_CHECK(
        MPI_File_open(MPI_COMM_WORLD, path, MPI_MODE_CREATE | MPI_MODE_WRONLY, MPI_INFO_NULL, &fh));
    MPI_CHECK(MPI_File_write_at_all(fh, (MPI_Offset)(rank * nblk * blk), buf, (int)nblk, mib,
                                    MPI_STATUS_IGNORE));
    MPI_CHECK(MPI_File_sync(fh));
    MPI_CHECK(MPI_File_close(&fh));
    *tw = MPI_Wtime() - t0;
    MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
    t0 = MPI_Wtime();
    MPI_CHECK(MPI_File_open(MPI_COMM_WORLD, path, MPI_MODE_RDONLY, MPI_INFO_NULL, &fh));
    MPI_CHECK(MPI_File_read_at_all(fh, (MPI_Offset)(rank * nblk * blk), buf, (int)nblk, mib,
                                   MPI_STATUS_IGNORE));
    MPI_CHECK(MPI_File_close(&fh));
    *tr = MPI_Wtime() - t0;
    MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
    if (rank == 0) unlink(path);
    MPI_CHECK(MPI_Type_free(&mib));
    free(buf);
}

int main(int argc, char **argv)
{
    comm_init(&argc, &argv);
    int rank, size;
    MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
    MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size));
    long mib = argc > 1 ? atol(argv[1]) : 256;
    const char *dir = argc > 2 ? argv[2] : ".";
    int reps = argc > 3 ? atoi(argv[3]) : 5;
    if (reps < 1 || reps > MAX_REPS) reps = 5;
    char err[1024], path[1024], plain[1024];
    snprintf(path, sizeof path, "%s/bench-ckpt.h5", dir);
    snprintf(plain, sizeof plain, "%s/bench-plain.bin", dir);

    lethe_grid g;
    if (grid_create(&g, MPI_COMM_WORLD, 1, 1, size, err, sizeof err)) lethe_fatal("%s", err);
    fatal_set_grid(&g);
    /* Tensors of 1024 x 4096 floats (16 MiB); rows divisible by any tp up to 1024. */
    int ntens = (int)(mib / 16 > 0 ? mib / 16 : 1);
    lethe_params t;
    params_init(&t);
    for (int i = 0; i < ntens; i++) {
        char nm[64];
        snprintf(nm, sizeof nm, "model.layers.%d.proj.weight", i);
        params_add(&t, nm, 2, 1024, COLS, i % 2, size, g.tp_rank, 0, 1, 1);
    }
    params_alloc(&t);
    for (int i = 0; i < t.n; i++) params_init_normal(&t, i, 1, 0.02f);
    memcpy(t.m, t.data, t.total * sizeof(float));
    memcpy(t.v, t.data, t.total * sizeof(float));
    double file_mib = 3.0 * ntens * 16;

    double td;
    {
        double t0 = MPI_Wtime();
        uint64_t d = 0;
        for (int i = 0; i < t.n; i++) {
            const lethe_param *p = &t.p[i];
            d += ckpt_digest_piece(CKPT_FORMAT_VERSION, t.data + p->off, p->vshape[0],
                                   p->vshape[1], p->lshape[1], p->gstart[0], p->gstart[1],
                                   p->gshape[1]);
        }
        td = MPI_Wtime() - t0;
        if (d == 42) printf("(digest %llu)\n", (unsigned long long)d);
        MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &td, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD));
    }
    /* The methods take turns within each repetition, so that a burst of load from other
     * processes on the machine (or the kernel's writeback of an earlier file) does not
     * land on one method only. */
    enum { SAVE, LOAD_WARM, LOAD_COLD, RAW_W, RAW_R, RAW_WB, MPI_W, MPI_R, PLAIN_W, PLAIN_RW,
           PLAIN_RC, NM };
    static const char *label[NM] = {
        "ckpt_save (digest, write, fsync)",   "ckpt_load, page cache warm",
        "ckpt_load, cold (fadvise DONTNEED)", "raw pwrite() of own buffers + fsync",
        "raw pread() into own buffers, warm", "raw pwrite(), early write-back, fsync",
        "MPI-IO write_at_all + sync, no HDF5",
        "MPI-IO read_at_all, warm, no HDF5",  "plain 4 MiB write() + fsync, 1 rank",
        "plain 4 MiB read(), warm, 1 rank",   "plain 4 MiB read(), cold, 1 rank"};
    double tm[NM][MAX_REPS];
    size_t bytes = (size_t)(file_mib * (1 << 20));
    for (int r = 0; r < reps; r++) {
        MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
        double t0 = MPI_Wtime();
        if (ckpt_save(path, &t, &g, NULL, err, sizeof err)) lethe_fatal("%s", err);
        tm[SAVE][r] = MPI_Wtime() - t0;
        for (int pass = 0; pass < 2; pass++) {
            if (pass == 1 && rank == 0) drop_cache(path);
            MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
            t0 = MPI_Wtime();
            if (ckpt_load(path, &t, &g, NULL, 1, err, sizeof err)) lethe_fatal("%s", err);
            tm[pass == 0 ? LOAD_WARM : LOAD_COLD][r] = MPI_Wtime() - t0;
        }
        MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
        if (rank == 0) unlink(path);
        raw_own_io(plain, &t, 0, &tm[RAW_W][r], &tm[RAW_R][r]);
        MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
        raw_own_io(plain, &t, 1, &tm[RAW_WB][r], NULL);
        mpiio_io(plain, bytes, &tm[MPI_W][r], &tm[MPI_R][r]);
        if (rank == 0) plain_io(plain, bytes, &tm[PLAIN_W][r], &tm[PLAIN_RW][r], &tm[PLAIN_RC][r]);
        MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
    }
    if (rank == 0) {
        const char *ct = getenv("OPENBLAS_CORETYPE");
        double la[3] = {0, 0, 0};
        FILE *f = fopen("/proc/loadavg", "r");
        if (f) {
            if (fscanf(f, "%lf %lf %lf", &la[0], &la[1], &la[2]) != 3) la[0] = -1;
            fclose(f);
        }
        printf("checkpoint bench: %d ranks (dp1 pp1 tp%d), %ld MiB of parameters in %d tensors "
               "(half row-, half column-split), file %.0f MiB (parameters + AdamW m, v), dir %s, "
               "%d repetitions, load average %.1f, OPENBLAS_CORETYPE=%s, MPI-IO %s\n",
               size, size, (long)ntens * 16, ntens, file_mib, dir, reps, la[0],
               ct ? ct : "(unset)",
               comm_io_component()[0] ? comm_io_component() : "as the environment chooses");
        printf("  %-38s %9s %9s %10s %10s\n", "", "best s", "median s", "best MiB/s", "med. MiB/s");
        for (int k = 0; k < NM; k++) {
            double mn, med;
            stats(tm[k], reps, &mn, &med);
            printf("  %-38s %9.3f %9.3f %10.0f %10.0f\n", label[k], mn, med, file_mib / mn,
                   file_mib / med);
        }
        double sv[MAX_REPS], ld[MAX_REPS], mn, med[5];
        for (int r = 0; r < reps; r++) sv[r] = tm[RAW_W][r] / tm[SAVE][r];
        stats(sv, reps, &mn, &med[0]);
        for (int r = 0; r < reps; r++) ld[r] = tm[RAW_R][r] / tm[LOAD_WARM][r];
        stats(ld, reps, &mn, &med[1]);
        for (int r = 0; r < reps; r++) sv[r] = tm[PLAIN_W][r] / tm[SAVE][r];
        stats(sv, reps, &mn, &med[2]);
        for (int r = 0; r < reps; r++) ld[r] = tm[PLAIN_RW][r] / tm[LOAD_WARM][r];
        stats(ld, reps, &mn, &med[3]);
        for (int r = 0; r < reps; r++) sv[r] = tm[RAW_WB][r] / tm[SAVE][r];
        stats(sv, reps, &mn, &med[4]);
        printf("  median per-repetition share of raw bandwidth: save %.0f %%, warm load %.0f %% "
               "of the raw own-buffer pwrite/pread; save %.0f %%, warm load %.0f %% of the "
               "plain 4 MiB loop; save %.0f %% of the raw write with early write-back\n",
               100 * med[0], 100 * med[1], 100 * med[2], 100 * med[3], 100 * med[4]);
        printf("  digest of the parameters alone (max over ranks): %.3f s for %.0f MiB per rank "
               "(%.0f MiB/s)\n",
               td, mib / (double)size, mib / (double)size / td);
    }
    params_free(&t);
    grid_free(&g);
    MPI_Finalize();
    return 0;
}
