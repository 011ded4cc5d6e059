/* tests/test_checkpoint_errors.c — every bad checkpoint a user can hand ckpt_load,
 * ckpt_save or ckpt_verify (part of checkpoint.reshard, run under mpirun): missing file,
 * not HDF5, truncated to half, an HDF5 file that is no checkpoint, missing dataset, missing
 * optimizer state, wrong shape, wrong dtype, corrupted data (digest), a name with '/', a
 * tensor without owner, a step edited under a kept meta_digest (load and verify), ranks
 * that disagree on the path or on loading the moments. Each returns -1 on every rank with
 * the same message (agreed), containing the expected text; none hangs. The broken files
 * are made by rank 0 from a good one with plain POSIX and serial HDF5. */
#define _GNU_SOURCE /* truncate() under -std=c11 */
#include "io/checkpoint.h"
#include "model/params.h"
#include "mpi/fatal.h"
#include "mpi/grid.h"

#include <hdf5.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "check.h"
#include "test_checkpoint.h"

/* ---- agreement helpers ---------------------------------------------------------------- */

static uint64_t str_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

/* Every rank of comm got -1, the same message (unless !same_msg), containing `want`. */
static void expect_error_x(MPI_Comm comm, int rc, const char *err, const char *want,
                           const char *what, int same_msg)
{
    uint64_t h = str_hash(err), in[2] = {h, ~h}, out[2];
    MPI_CHECK(MPI_Allreduce(in, out, 2, MPI_UINT64_T, MPI_MAX, comm));
    int rc_max, rc_min;
    MPI_CHECK(MPI_Allreduce(&rc, &rc_max, 1, MPI_INT, MPI_MAX, comm));
    MPI_CHECK(MPI_Allreduce(&rc, &rc_min, 1, MPI_INT, MPI_MIN, comm));
    CHECK(rc_max == -1 && rc_min == -1, "%s: expected -1 on every rank, got %d..%d", what, rc_min,
          rc_max);
    CHECK(!same_msg || out[0] == ~out[1], "%s: ranks disagree on the message (mine: %s)", what,
          err);
    CHECK(strstr(err, want) != NULL, "%s: message '%s' lacks '%s'", what, err, want);
    if (wrank == 0) printf("  %-28s -> %s\n", what, err);
}

static void expect_error(MPI_Comm comm, int rc, const char *err, const char *want, const char *what)
{
    expect_error_x(comm, rc, err, want, what, 1);
}

/* ---- file helpers (rank 0, plain POSIX / serial HDF5) ----------------------------------- */

static void copy_file(const char *src, const char *dst)
{
    FILE *a = fopen(src, "rb"), *b = fopen(dst, "wb");
    if (!a || !b) lethe_fatal("test: cannot copy '%s' to '%s'", src, dst);
    char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, a)) > 0)
        if (fwrite(buf, 1, n, b) != n) lethe_fatal("test: writing '%s' failed", dst);
    fclose(a);
    if (fclose(b)) lethe_fatal("test: closing '%s' failed", dst);
}

static hid_t open_serial_rw(const char *path)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    if (f < 0) lethe_fatal("test: cannot open '%s' serially", path);
    return f;
}

/* ---- bad inputs ------------------------------------------------------------------------ */

void error_cases(MPI_Comm world, const char *dir, layout A)
{
    char good[1200], path[1200], err[1024];
    lethe_grid g;
    if (grid_create(&g, world, A.dp, A.pp, A.tp, err, sizeof err)) lethe_fatal("test: %s", err);
    lethe_params t;
    build_for_grid(&t, &base_cfg, &g);
    fill_expected(&t);
    snprintf(good, sizeof good, "%s/good.h5", dir);
    CHECK(ckpt_save(good, &t, &g, NULL, err, sizeof err) == 0, "save good: %s", err);
    int rc;

    snprintf(path, sizeof path, "%s/absent.h5", dir);
    rc = ckpt_load(path, &t, &g, NULL, 1, err, sizeof err);
    expect_error(world, rc, err, "No such file", "missing file");

    snprintf(path, sizeof path, "%s/text.h5", dir);
    if (wrank == 0) {
        FILE *f = fopen(path, "w");
        fputs("{\"not\": \"hdf5\"}\n", f);
        fclose(f);
    }
    MPI_CHECK(MPI_Barrier(world));
    rc = ckpt_load(path, &t, &g, NULL, 1, err, sizeof err);
    expect_error(world, rc, err, "not an HDF5 file", "not HDF5");
    rc = ckpt_verify(path, world, NULL, err, sizeof err);
    expect_error(world, rc, err, "not an HDF5 file", "verify: not HDF5");

    snprintf(path, sizeof path, "%s/truncated.h5", dir);
    if (wrank == 0) {
        copy_file(good, path);
        struct stat st;
        stat(path, &st);
        if (truncate(path, st.st_size / 2)) lethe_fatal("test: truncate failed");
    }
    MPI_CHECK(MPI_Barrier(world));
    rc = ckpt_load(path, &t, &g, NULL, 1, err, sizeof err);
    expect_error(world, rc, err, "truncated file", "truncated to half");
    rc = ckpt_verify(path, world, NULL, err, sizeof err);
    expect_error(world, rc, err, "truncated file", "verify: truncated");

    snprintf(path, sizeof path, "%s/plain.h5", dir);
    if (wrank == 0) {
        hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
        H5Fclose(f);
    }
    MPI_CHECK(MPI_Barrier(world));
    rc = ckpt_load(path, &t, &g, NULL, 1, err, sizeof err);
    expect_error(world, rc, err, "not a lethe checkpoint", "HDF5 but no checkpoint");

    snprintf(path, sizeof path, "%s/nodataset.h5", dir);
    if (wrank == 0) {
        copy_file(good, path);
        hid_t f = open_serial_rw(path);
        if (H5Ldelete(f, "/params/model.layers.1.mlp.up_proj.weight", H5P_DEFAULT) < 0)
            lethe_fatal("test: H5Ldelete failed");
        H5Fclose(f);
    }
    MPI_CHECK(MPI_Barrier(world));
    rc = ckpt_load(path, &t, &g, NULL, 1, err, sizeof err);
    expect_error(world, rc, err, "dataset '/params/model.layers.1.mlp.up_proj.weight' is missing",
                 "missing dataset");

    snprintf(path, sizeof path, "%s/noadam.h5", dir);
    if (wrank == 0) {
        copy_file(good, path);
        hid_t f = open_serial_rw(path);
        if (H5Ldelete(f, "/adam_v", H5P_DEFAULT) < 0) lethe_fatal("test: H5Ldelete failed");
        H5Fclose(f);
    }
    MPI_CHECK(MPI_Barrier(world));
    rc = ckpt_load(path, &t, &g, NULL, 1, err, sizeof err);
    expect_error(world, rc, err, "holds no optimizer state (group '/adam_v' is missing)",
                 "missing optimizer state");
    rc = ckpt_load(path, &t, &g, NULL, 0, err, sizeof err);
    CHECK(rc == 0, "weights-only load of a file without moments: %s", err);

    /* The model changed (MLP twice as wide) since the checkpoint was written. */
    {
        shape_cfg wide = base_cfg;
        wide.I = 2 * base_cfg.I;
        lethe_params w;
        build_for_grid(&w, &wide, &g);
        rc = ckpt_load(good, &w, &g, NULL, 1, err, sizeof err);
        expect_error(world, rc, err,
                     "dataset '/params/model.layers.0.mlp.gate_proj.weight' has shape [48,32], "
                     "expected [96,32]",
                     "wrong shape");
        params_free(&w);
    }

    snprintf(path, sizeof path, "%s/float64.h5", dir);
    if (wrank == 0) {
        copy_file(good, path);
        hid_t f = open_serial_rw(path);
        hsize_t n = (hsize_t)base_cfg.C;
        H5Ldelete(f, "/params/model.norm.weight", H5P_DEFAULT);
        hid_t sp = H5Screate_simple(1, &n, NULL);
        hid_t ds = H5Dcreate2(f, "/params/model.norm.weight", H5T_IEEE_F64LE, sp, H5P_DEFAULT,
                              H5P_DEFAULT, H5P_DEFAULT);
        if (ds < 0) lethe_fatal("test: H5Dcreate2 failed");
        H5Dclose(ds);
        H5Sclose(sp);
        H5Fclose(f);
    }
    MPI_CHECK(MPI_Barrier(world));
    rc = ckpt_load(path, &t, &g, NULL, 1, err, sizeof err);
    expect_error(world, rc, err,
                 "dataset '/params/model.norm.weight' has type float64, expected float32",
                 "wrong dtype");

    /* One element of one moment flipped in place: only the digest can tell. */
    snprintf(path, sizeof path, "%s/corrupt.h5", dir);
    if (wrank == 0) {
        copy_file(good, path);
        hid_t f = open_serial_rw(path);
        hid_t ds = H5Dopen2(f, "/adam_v/model.layers.2.self_attn.o_proj.weight", H5P_DEFAULT);
        hid_t sp = H5Dget_space(ds);
        hsize_t at[2] = {3, 17}, one[2] = {1, 1};
        float x;
        H5Sselect_hyperslab(sp, H5S_SELECT_SET, at, NULL, one, NULL);
        hid_t ms = H5Screate_simple(2, one, NULL);
        if (H5Dread(ds, H5T_NATIVE_FLOAT, ms, sp, H5P_DEFAULT, &x) < 0)
            lethe_fatal("test: read failed");
        x = nextafterf(x, 1e30f);
        if (H5Dwrite(ds, H5T_NATIVE_FLOAT, ms, sp, H5P_DEFAULT, &x) < 0)
            lethe_fatal("test: write failed");
        H5Sclose(ms);
        H5Sclose(sp);
        H5Dclose(ds);
        H5Fclose(f);
    }
    MPI_CHECK(MPI_Barrier(world));
    rc = ckpt_load(path, &t, &g, NULL, 1, err, sizeof err);
    expect_error(world, rc, err,
                 "dataset '/adam_v/model.layers.2.self_attn.o_proj.weight': digest mismatch",
                 "corrupted element");
    rc = ckpt_load(path, &t, &g, NULL, 0, err, sizeof err);
    CHECK(rc == 0, "weights-only load must ignore the corrupt moment: %s", err);
    rc = ckpt_verify(path, world, NULL, err, sizeof err);
    expect_error(world, rc, err,
                 "dataset '/adam_v/model.layers.2.self_attn.o_proj.weight': digest mismatch",
                 "verify: corrupted element");

    /* The step attribute changed, meta_digest kept: every tensor digest still holds, so
     * only the metadata digest can tell (ckpt_verify as well as a load). */
    snprintf(path, sizeof path, "%s/stale_meta.h5", dir);
    if (wrank == 0) {
        copy_file(good, path);
        hid_t f = open_serial_rw(path);
        hid_t a = H5Aopen(f, "step", H5P_DEFAULT);
        int64_t step = 7;
        if (a < 0 || H5Awrite(a, H5T_NATIVE_INT64, &step) < 0) lethe_fatal("test: H5Awrite failed");
        H5Aclose(a);
        H5Fclose(f);
    }
    MPI_CHECK(MPI_Barrier(world));
    rc = ckpt_verify(path, world, NULL, err, sizeof err);
    expect_error(world, rc, err, "attribute 'meta_digest' is", "verify: stale meta_digest");
    rc = ckpt_load(path, &t, &g, NULL, 1, err, sizeof err);
    expect_error(world, rc, err, "attribute 'meta_digest' is", "stale meta_digest");

    /* A name that cannot be a dataset name. */
    {
        lethe_params bad;
        params_init(&bad);
        params_add(&bad, "model/embed", 1, 8, 1, -1, g.tp, g.tp_rank, 0, 0, 1);
        params_alloc(&bad);
        snprintf(path, sizeof path, "%s/slash.h5", dir);
        rc = ckpt_save(path, &bad, &g, NULL, err, sizeof err);
        expect_error(world, rc, err, "contains '/'", "name with '/'");
        params_free(&bad);
        struct stat st;
        CHECK(stat(path, &st) != 0, "a failed save left '%s'", path);
    }
    /* A tensor whose every copy is a duplicate would leave a hole in the file. */
    {
        lethe_params nown;
        build_for_grid(&nown, &base_cfg, &g);
        int i = params_find(&nown, "model.layers.0.self_attn.o_proj.weight");
        if (i >= 0) nown.p[i].owner = 0;
        snprintf(path, sizeof path, "%s/noowner.h5", dir);
        rc = ckpt_save(path, &nown, &g, NULL, err, sizeof err);
        expect_error(world, rc, err,
                     "tensor 'model.layers.0.self_attn.o_proj.weight': the owner pieces of one "
                     "replica cover 0 of its 1024 elements",
                     "tensor without owner");
        params_free(&nown);
    }

    /* Links planted at the temporary name (issue 21): refused on every rank, neither
     * followed (the victim keeps its bytes; a dangling link's target is not created) nor
     * removed; a crashed run's regular leftover is removed and the save goes ahead. */
    {
        char tmp[1300], victim[1300];
        snprintf(path, sizeof path, "%s/linked.h5", dir);
        snprintf(tmp, sizeof tmp, "%s.tmp", path);
        for (int dangling = 0; dangling < 2; dangling++) {
            snprintf(victim, sizeof victim, "%s/victim%d", dir, dangling);
            if (wrank == 0) {
                unlink(tmp);
                unlink(victim);
                if (!dangling) {
                    FILE *f = fopen(victim, "w");
                    CHECK(f && fputs("victim\n", f) >= 0 && fclose(f) == 0, "test: victim");
                }
                CHECK(symlink(victim, tmp) == 0, "test: symlink '%s'", tmp);
            }
            MPI_CHECK(MPI_Barrier(world));
            rc = ckpt_save(path, &t, &g, NULL, err, sizeof err);
            expect_error(world, rc, err, "it is a symbolic link",
                         dangling ? "dangling link at .tmp" : "link at .tmp");
            struct stat st;
            CHECK(lstat(tmp, &st) == 0 && S_ISLNK(st.st_mode), "the link at '%s' is gone", tmp);
            CHECK(dangling ? lstat(victim, &st) != 0 : stat(victim, &st) == 0 && st.st_size == 7,
                  "the link's target '%s' was written", victim);
            CHECK(lstat(path, &st) != 0, "a refused save made '%s'", path);
            MPI_CHECK(MPI_Barrier(world));
        }
        if (wrank == 0) {
            unlink(tmp);
            FILE *f = fopen(tmp, "w");
            CHECK(f && fputs("crashed\n", f) >= 0 && fclose(f) == 0, "test: leftover");
        }
        MPI_CHECK(MPI_Barrier(world));
        CHECK(ckpt_save(path, &t, &g, NULL, err, sizeof err) == 0, "save over a leftover: %s", err);
        struct stat st;
        CHECK(lstat(tmp, &st) != 0 && stat(path, &st) == 0, "leftover: '%s' not published", path);
        MPI_CHECK(MPI_Barrier(world));
    }

    /* Arguments that steer the collective calls must agree (needs two ranks to differ). */
    if (g.size > 1) {
        snprintf(path, sizeof path, "%s/rank%d.h5", dir, wrank);
        rc = ckpt_save(path, &t, &g, NULL, err, sizeof err);
        /* each message names the rank's own path; the rest is the same */
        expect_error_x(world, rc, err, "the ranks were given different paths", "per-rank paths", 0);
        rc = ckpt_load(good, &t, &g, NULL, wrank % 2, err, sizeof err);
        expect_error(world, rc, err, "the ranks disagree on loading the optimizer state",
                     "load_optimizer differs");
    }
    params_free(&t);
    grid_free(&g);
}
