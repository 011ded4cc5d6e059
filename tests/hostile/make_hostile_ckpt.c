/* tests/hostile/make_hostile_ckpt.c — plants one hostile value in a real lethe checkpoint
 * (in place) for tests/hostile.sh, keeping its digests valid unless told not to, so that
 * a load must refuse it for the planted value itself and not for a digest mismatch.
 *
 * usage: make_hostile_ckpt FILE step N         root attribute step = N, meta_digest redone
 *        make_hostile_ckpt FILE step-stale N   step = N, meta_digest left as it was
 *        make_hostile_ckpt FILE nan NAME       /params/NAME element 0 = NaN, its digest redone
 * The metadata digest is recomputed by ckpt_meta_digest (io/checkpoint_meta.c) from what
 * the file holds, the way ckpt_save computes it; tensor digests by ckpt_digest_piece. */
#include <hdf5.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/checkpoint.h"

static int rd_attr(hid_t o, const char *name, hid_t mt, void *buf)
{
    hid_t a = H5Aopen(o, name, H5P_DEFAULT);
    int ok = a >= 0 && H5Aread(a, mt, buf) >= 0;
    if (a >= 0) H5Aclose(a);
    return ok;
}

static int wr_attr(hid_t o, const char *name, hid_t mt, const void *buf)
{
    hid_t a = H5Aopen(o, name, H5P_DEFAULT);
    int ok = a >= 0 && H5Awrite(a, mt, buf) >= 0;
    if (a >= 0) H5Aclose(a);
    return ok;
}

static int rd_str_attr(hid_t o, const char *name, char *buf, size_t len)
{
    hid_t a = H5Aopen(o, name, H5P_DEFAULT), ft = a >= 0 ? H5Aget_type(a) : -1;
    size_t sz = ft >= 0 ? H5Tget_size(ft) : 0;
    char *tmp = calloc(sz + 1, 1);
    int ok = tmp && sz && H5Aread(a, ft, tmp) >= 0;
    if (ok) snprintf(buf, len, "%s", tmp);
    free(tmp);
    if (ft >= 0) H5Tclose(ft);
    if (a >= 0) H5Aclose(a);
    return ok;
}

static herr_t job_cb(hid_t loc, const char *name, const H5A_info_t *info, void *data)
{
    (void)info;
    lethe_ckpt_meta *m = data;
    if (m->n_job == LETHE_CKPT_JOB_MAX) return -1;
    snprintf(m->job_key[m->n_job], LETHE_CKPT_JOB_KEY, "%s", name);
    return rd_attr(loc, name, H5T_NATIVE_DOUBLE, &m->job_value[m->n_job++]) ? 0 : -1;
}

/* The metadata as ckpt_load reads it, digested as ckpt_save digests it. */
static int redo_meta_digest(hid_t f)
{
    lethe_ckpt_meta m;
    memset(&m, 0, sizeof m);
    int ok = rd_str_attr(f, "lethe_version", m.version, sizeof m.version) &&
             rd_attr(f, "step", H5T_NATIVE_INT64, &m.step) &&
             rd_attr(f, "epoch", H5T_NATIVE_INT64, &m.epoch) &&
             rd_attr(f, "layout", H5T_NATIVE_INT, m.layout) &&
             rd_attr(f, "world_size", H5T_NATIVE_INT, &m.world_size);
    hid_t a = H5Aopen(f, "loader_cursor", H5P_DEFAULT), sp = a >= 0 ? H5Aget_space(a) : -1;
    if (sp >= 0 && H5Sget_simple_extent_type(sp) != H5S_NULL) {
        m.n_cursor = (int)H5Sget_simple_extent_npoints(sp);
        ok = ok && m.n_cursor <= LETHE_CKPT_CURSOR_MAX &&
             H5Aread(a, H5T_NATIVE_INT64, m.cursor) >= 0;
    }
    if (sp >= 0) H5Sclose(sp);
    if (a >= 0) H5Aclose(a);
    if (ok && H5Lexists(f, "/job", H5P_DEFAULT) > 0) {
        hid_t g = H5Gopen2(f, "/job", H5P_DEFAULT);
        ok = H5Aiterate2(g, H5_INDEX_NAME, H5_ITER_INC, NULL, job_cb, &m) >= 0;
        H5Gclose(g);
    }
    hid_t d = H5Dopen2(f, "/meta/config", H5P_DEFAULT), ty = d >= 0 ? H5Dget_type(d) : -1;
    size_t len = ty >= 0 ? H5Tget_size(ty) : 0;
    m.config_json = calloc(len + 1, 1);
    ok = ok && len && H5Dread(d, ty, H5S_ALL, H5S_ALL, H5P_DEFAULT, m.config_json) >= 0;
    if (ty >= 0) H5Tclose(ty);
    if (d >= 0) H5Dclose(d);
    uint64_t *rng = calloc((size_t)(m.world_size > 0 ? m.world_size : 1), sizeof *rng);
    d = H5Dopen2(f, "/meta/rng", H5P_DEFAULT);
    ok = ok && d >= 0 && H5Dread(d, H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, rng) >= 0;
    if (d >= 0) H5Dclose(d);
    uint64_t h = ckpt_meta_digest(&m, rng);
    ok = ok && wr_attr(f, "meta_digest", H5T_NATIVE_UINT64, &h);
    free(rng);
    free(m.config_json);
    return ok;
}

static int plant_nan(hid_t f, const char *name)
{
    char path[600];
    snprintf(path, sizeof path, "/params/%s", name);
    hid_t d = H5Dopen2(f, path, H5P_DEFAULT), sp = d >= 0 ? H5Dget_space(d) : -1;
    hsize_t dims[2] = {1, 1};
    int nd = sp >= 0 ? H5Sget_simple_extent_dims(sp, dims, NULL) : -1;
    int ok = nd == 1 || nd == 2;
    int64_t rows = (int64_t)dims[0], cols = nd == 2 ? (int64_t)dims[1] : 1;
    float *x = ok ? malloc(sizeof(float) * (size_t)(rows * cols)) : NULL;
    ok = ok && x && H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x) >= 0;
    if (ok) {
        x[0] = NAN;
        int ver = 0;
        hid_t a = H5Aopen(f, "format_version", H5P_DEFAULT);
        ok = a >= 0 && H5Aread(a, H5T_NATIVE_INT, &ver) >= 0;
        if (a >= 0) H5Aclose(a);
        uint64_t dg = ckpt_digest_piece(ver, x, rows, cols, cols, 0, 0, cols);
        ok = ok && H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x) >= 0 &&
             wr_attr(d, "digest", H5T_NATIVE_UINT64, &dg);
    }
    free(x);
    if (sp >= 0) H5Sclose(sp);
    if (d >= 0) H5Dclose(d);
    return ok;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: make_hostile_ckpt FILE step|step-stale|nan VALUE\n");
        return 2;
    }
    hid_t f = H5Fopen(argv[1], H5F_ACC_RDWR, H5P_DEFAULT);
    int ok = f >= 0;
    if (ok && !strncmp(argv[2], "step", 4)) {
        int64_t step = strtoll(argv[3], NULL, 10);
        ok = wr_attr(f, "step", H5T_NATIVE_INT64, &step);
        if (ok && !strcmp(argv[2], "step")) ok = redo_meta_digest(f);
    } else if (ok && !strcmp(argv[2], "nan")) {
        ok = plant_nan(f, argv[3]);
    } else {
        ok = 0;
    }
    if (f >= 0 && H5Fclose(f) < 0) ok = 0;
    if (!ok) fprintf(stderr, "make_hostile_ckpt: %s %s %s failed\n", argv[1], argv[2], argv[3]);
    return ok ? 0 : 1;
}
