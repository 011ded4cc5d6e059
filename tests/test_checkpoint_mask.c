/* tests/test_checkpoint_mask.c — WAGLE's mask as a checkpoint kind (io/checkpoint_mask.c),
 * part of checkpoint.reshard (any rank count). For every save layout A (each loaded under
 * the next layout B): the model-shaped table of test_checkpoint.c carries a mask whose
 * element (i, j) of tensor `name` is a layout-independent hash bit (about 3/4 ones;
 * padding 0), written by ckpt_save beside the weights. Under B, ckpt_load_mask fills a
 * mask poisoned with 0xAA with exactly the bits B's pieces expect (duplicates and padding
 * included), the weights still load (ckpt_load ignores the mask) and a probe (mask NULL)
 * says 1; ckpt_verify checks 4 kinds. A byte flipped in the file (plain serial HDF5 on
 * rank 0) fails ckpt_load_mask and ckpt_verify with a digest mismatch naming the dataset,
 * on every rank; a checkpoint saved without a mask gives 0 and leaves the mask alone. */
#include <hdf5.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "io/checkpoint.h"
#include "model/params.h"
#include "mpi/fatal.h"
#include "mpi/grid.h"
#include "test_checkpoint.h"

static unsigned char bit_of(const char *name, int64_t flat)
{
    return (lethe_hash64(lethe_hash_str(name) ^ (uint64_t)flat) & 3u) != 0;
}

/* t->mask (allocated here) as the hash bits at t's pieces, padding 0. */
static void fill_mask(lethe_params *t)
{
    t->mask = lethe_calloc(t->total ? t->total : 1, 1, "test mask");
    for (int i = 0; i < t->n; i++) {
        const lethe_param *p = &t->p[i];
        for (int64_t r = 0; r < p->vshape[0]; r++)
            for (int64_t c = 0; c < p->vshape[1]; c++)
                t->mask[p->off + r * p->lshape[1] + c] =
                    bit_of(p->name, (p->gstart[0] + r) * p->gshape[1] + p->gstart[1] + c);
    }
}

/* Flips element 0 of /wagle_mask/<name> (rank 0, serial HDF5). */
static void flip_byte(MPI_Comm world, const char *path, const char *name)
{
    MPI_CHECK(MPI_Barrier(world));
    if (wrank == 0) {
        char ds_name[LETHE_NAME_MAX + 16];
        snprintf(ds_name, sizeof ds_name, "/wagle_mask/%s", name);
        hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
        hid_t ds = f >= 0 ? H5Dopen2(f, ds_name, H5P_DEFAULT) : -1;
        hid_t sp = ds >= 0 ? H5Dget_space(ds) : -1;
        hssize_t n = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : 0;
        unsigned char *b = lethe_malloc((size_t)(n > 0 ? n : 1), "test flip");
        int ok = n > 0 && H5Dread(ds, H5T_NATIVE_UCHAR, H5S_ALL, H5S_ALL, H5P_DEFAULT, b) >= 0;
        b[0] ^= 1;
        ok = ok && H5Dwrite(ds, H5T_NATIVE_UCHAR, H5S_ALL, H5S_ALL, H5P_DEFAULT, b) >= 0;
        free(b);
        if (sp >= 0) H5Sclose(sp);
        if (ds >= 0) H5Dclose(ds);
        if (f >= 0) H5Fclose(f);
        CHECK(ok, "mask: cannot flip a byte of '%s' in %s", ds_name, path);
    }
    MPI_CHECK(MPI_Barrier(world));
}

static void save_load(MPI_Comm world, const char *path, layout A, layout B)
{
    char err[1024], what[128];
    snprintf(what, sizeof what, "mask dp%d pp%d tp%d -> dp%d pp%d tp%d", A.dp, A.pp, A.tp, B.dp,
             B.pp, B.tp);
    lethe_grid g;
    lethe_params t, want;
    if (grid_create(&g, world, A.dp, A.pp, A.tp, err, sizeof err)) lethe_fatal("test: %s", err);
    build_for_grid(&t, &base_cfg, &g);
    fill_expected(&t);
    fill_mask(&t);
    int rc = ckpt_save(path, &t, &g, NULL, err, sizeof err);
    CHECK(rc == 0, "%s: save failed: %s", what, err);
    free(t.mask);
    t.mask = NULL;
    params_free(&t);
    grid_free(&g);

    if (grid_create(&g, world, B.dp, B.pp, B.tp, err, sizeof err)) lethe_fatal("test: %s", err);
    build_for_grid(&t, &base_cfg, &g);
    build_for_grid(&want, &base_cfg, &g);
    fill_expected(&want);
    fill_mask(&want);
    fill_garbage(&t);
    rc = ckpt_load(path, &t, &g, NULL, 1, err, sizeof err);
    CHECK(rc == 0, "%s: ckpt_load failed: %s", what, err);
    compare_buffers(&t, &want, 3, what);
    rc = ckpt_load_mask(path, &t, &g, NULL, err, sizeof err);
    CHECK(rc == 1, "%s: probe without a mask gave %d: %s", what, rc, rc < 0 ? err : "");
    t.mask = lethe_malloc(t.total ? t.total : 1, "test mask");
    memset(t.mask, 0xaa, t.total);
    rc = ckpt_load_mask(path, &t, &g, NULL, err, sizeof err);
    CHECK(rc == 1, "%s: ckpt_load_mask gave %d: %s", what, rc, rc < 0 ? err : "");
    for (int i = 0; i < t.n; i++) {
        const lethe_param *p = &t.p[i];
        CHECK(!memcmp(t.mask + p->off, want.mask + p->off, p->numel),
              "%s: tensor '%s' (owner %d): the mask read differs", what, p->name, p->owner);
    }
    ckpt_tensor *u = NULL;
    int nu = ckpt_tensor_union(&t, &g, &u, err, sizeof err);
    free(u);
    int64_t n_checked = 0;
    rc = ckpt_verify(path, world, &n_checked, err, sizeof err);
    CHECK(rc == 0 && n_checked == 4 * nu, "%s: verify rc %d, %lld datasets (want %d): %s", what,
          rc, (long long)n_checked, 4 * nu, rc ? err : "");

    flip_byte(world, path, "model.embed_tokens.weight");
    rc = ckpt_load_mask(path, &t, &g, NULL, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "dataset '/wagle_mask/model.embed_tokens.weight': digest "
                                  "mismatch"),
          "%s: a flipped byte: rc %d, '%s'", what, rc, err);
    rc = ckpt_verify(path, world, NULL, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "/wagle_mask/model.embed_tokens.weight': digest mismatch"),
          "%s: verify of a flipped byte: rc %d, '%s'", what, rc, err);
    /* the same verdict everywhere: every rank's message hashes alike */
    uint64_t h[2] = {lethe_hash_str(err), ~lethe_hash_str(err)}, o[2];
    MPI_CHECK(MPI_Allreduce(h, o, 2, MPI_UINT64_T, MPI_MAX, world));
    CHECK(o[0] == ~o[1], "%s: the ranks report the flipped byte differently", what);

    free(t.mask);
    t.mask = NULL;
    free(want.mask);
    want.mask = NULL;
    params_free(&t);
    params_free(&want);
    grid_free(&g);
}

/* Saved without a mask: ckpt_load_mask says 0 and leaves the mask as it was. */
static void no_mask(MPI_Comm world, const char *path, layout A)
{
    char err[1024];
    lethe_grid g;
    lethe_params t;
    if (grid_create(&g, world, A.dp, A.pp, A.tp, err, sizeof err)) lethe_fatal("test: %s", err);
    build_for_grid(&t, &base_cfg, &g);
    fill_expected(&t);
    int rc = ckpt_save(path, &t, &g, NULL, err, sizeof err);
    CHECK(rc == 0, "no mask: save failed: %s", err);
    t.mask = lethe_malloc(t.total ? t.total : 1, "test mask");
    memset(t.mask, 0xaa, t.total);
    rc = ckpt_load_mask(path, &t, &g, NULL, err, sizeof err);
    CHECK(rc == 0, "no mask: ckpt_load_mask gave %d: %s", rc, rc < 0 ? err : "");
    int kept = 1;
    for (size_t k = 0; k < t.total; k++) kept &= t.mask[k] == 0xaa;
    CHECK(kept, "no mask: the mask was written to");
    free(t.mask);
    t.mask = NULL;
    params_free(&t);
    grid_free(&g);
}

void mask_cases(MPI_Comm world, const char *dir, const layout *L, int nl)
{
    char path[1200];
    for (int a = 0; a < nl; a++) {
        snprintf(path, sizeof path, "%s/mask-%d.h5", dir, a);
        save_load(world, path, L[a], L[(a + 1) % nl]);
    }
    snprintf(path, sizeof path, "%s/no-mask.h5", dir);
    no_mask(world, path, L[nl - 1]);
}
