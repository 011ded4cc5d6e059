/* io/checkpoint_load.c — reading a checkpoint under any layout (ckpt_load) and
 * checking one without a model (ckpt_verify): every tensor's shape and digest, the
 * metadata, and the same verdict on every rank. */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint_impl.h"

/* ---- load ---------------------------------------------------------------------------- */

static const char *type_str(hid_t ty, char *buf, size_t len)
{
    H5T_class_t c = H5Tget_class(ty);
    size_t sz = H5Tget_size(ty);
    const char *cn = c == H5T_FLOAT     ? "float"
                     : c == H5T_INTEGER ? "integer"
                     : c == H5T_STRING  ? "string"
                                        : "non-numeric";
    snprintf(buf, len, "%s%zu", cn, sz * 8);
    return buf;
}

/* Opens gname/name and checks type (float32; uint8 in CK_MASK_GROUP) and shape against e
 * (e->ndim == 0: takes a 1-D or 2-D shape from the file into e); reads its digest.
 * Metadata only. Returns the dataset id, or -1 with msg. */
hid_t ck_open_tensor(hid_t fid, const char *gname, ck_entry *e, uint64_t *digest, char *msg)
{
    int mask = !strcmp(gname, CK_MASK_GROUP);
    char dpath[LETHE_NAME_MAX + 16], where[LETHE_NAME_MAX + 32], h5b[256], a[64], b[64];
    snprintf(dpath, sizeof dpath, "%s/%s", gname, e->name);
    snprintf(where, sizeof where, "dataset '%s'", dpath);
    htri_t ex = H5Lexists(fid, dpath, H5P_DEFAULT);
    if (ex == 0) return ck_fail(msg, "dataset '%s' is missing", dpath), -1;
    if (ex < 0) {
        ck_fail(msg, "dataset '%s': cannot look it up: %s", dpath, h5_last_error(h5b, sizeof h5b));
        return -1;
    }
    hid_t ds = H5Dopen2(fid, dpath, H5P_DEFAULT);
    if (ds < 0) {
        ck_fail(msg, "dataset '%s': cannot open: %s", dpath, h5_last_error(h5b, sizeof h5b));
        return -1;
    }
    int ok = 1;
    hid_t ty = H5Dget_type(ds), sp = H5Dget_space(ds);
    if (ty < 0 || sp < 0) {
        ok = ck_fail(msg, "dataset '%s': cannot read its type or shape: %s", dpath,
                     h5_last_error(h5b, sizeof h5b));
    } else if (H5Tget_class(ty) != (mask ? H5T_INTEGER : H5T_FLOAT) ||
               H5Tget_size(ty) != (mask ? 1u : 4u)) {
        ok = ck_fail(msg, "dataset '%s' has type %s, expected %s", dpath,
                     type_str(ty, a, sizeof a), mask ? "uint8" : "float32");
    } else {
        hsize_t dims[H5S_MAX_RANK];
        int nd = H5Sget_simple_extent_ndims(sp);
        int64_t got[2] = {0, 1};
        if (nd >= 1 && nd <= H5S_MAX_RANK && H5Sget_simple_extent_dims(sp, dims, NULL) < 0) nd = -1;
        if (e->ndim == 0 && (nd == 1 || nd == 2)) {
            e->ndim = nd;
            e->gshape[0] = (int64_t)dims[0];
            e->gshape[1] = nd == 2 ? (int64_t)dims[1] : 1;
        }
        int same = nd == e->ndim;
        for (int d = 0; d < nd && d < 2; d++) got[d] = (int64_t)dims[d];
        for (int d = 0; same && d < nd; d++) same = got[d] == e->gshape[d];
        if (!same) {
            if (nd < 1 || nd > 2)
                snprintf(a, sizeof a, "of rank %d", nd);
            else {
                char s[48];
                ck_shape_str(s, sizeof s, nd, got);
                snprintf(a, sizeof a, "%s", s);
            }
            ck_shape_str(b, sizeof b, e->ndim, e->gshape);
            ok = ck_fail(msg, "dataset '%s' has shape %s, expected %s", dpath, a, b);
        } else {
            ok = ck_read_attr(ds, where, "digest", H5T_NATIVE_UINT64, -1, digest, msg);
        }
    }
    if (ty >= 0) H5Tclose(ty);
    if (sp >= 0) H5Sclose(sp);
    if (!ok) {
        H5Dclose(ds);
        return -1;
    }
    return ds;
}

static void read_tensor(const char *file, hid_t ds, const char *gname, const ck_entry *e,
                        const lethe_param *p, float *buf, hid_t dxpl)
{
    hid_t fs, ms;
    H5C(fs = H5Dget_space(ds), "checkpoint '%s': dataset '%s/%s'", file, gname, e->name);
    H5C(ms = ck_select_piece(fs, e->ndim, p), "checkpoint '%s': dataset '%s/%s'", file, gname,
        e->name);
    H5C(H5Dread(ds, H5T_NATIVE_FLOAT, ms, fs, dxpl, buf), "checkpoint '%s': dataset '%s/%s'", file,
        gname, e->name);
    H5C(H5Sclose(ms), "checkpoint '%s': dataset '%s/%s'", file, gname, e->name);
    H5C(H5Sclose(fs), "checkpoint '%s': dataset '%s/%s'", file, gname, e->name);
}

/* Zeroes what lies outside the valid extent of a piece (vocabulary padding). */
static void zero_padding(const lethe_param *p, float *w)
{
    for (int64_t i = 0; i < p->lshape[0]; i++)
        for (int64_t j = i < p->vshape[0] ? p->vshape[1] : 0; j < p->lshape[1]; j++)
            w[i * p->lshape[1] + j] = 0.0f;
}

/* One value of /job into the meta (an H5Aiterate2 callback, by name). */
static herr_t read_job_value(hid_t loc, const char *name, const H5A_info_t *info, void *data)
{
    (void)info;
    lethe_ckpt_meta *m = data;
    if (m->n_job == LETHE_CKPT_JOB_MAX || strlen(name) >= LETHE_CKPT_JOB_KEY) return -1;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT), sp = a >= 0 ? H5Aget_space(a) : -1;
    int ok = sp >= 0 && H5Sget_simple_extent_type(sp) == H5S_SCALAR &&
             H5Aread(a, H5T_NATIVE_DOUBLE, &m->job_value[m->n_job]) >= 0;
    if (sp >= 0) H5Sclose(sp);
    if (a >= 0) H5Aclose(a);
    if (!ok) return -1;
    snprintf(m->job_key[m->n_job++], LETHE_CKPT_JOB_KEY, "%s", name);
    return 0;
}

/* /job, when the job saved state of its own: its named values. Returns 1, or 0 with msg. */
static int read_job_state(hid_t fid, lethe_ckpt_meta *m, char *msg)
{
    m->n_job = 0;
    if (H5Lexists(fid, "/job", H5P_DEFAULT) <= 0) return 1;
    hid_t grp = H5Gopen2(fid, "/job", H5P_DEFAULT);
    int ok = grp >= 0 && H5Aiterate2(grp, H5_INDEX_NAME, H5_ITER_INC, NULL, read_job_value, m) >= 0;
    if (grp >= 0) H5Gclose(grp);
    if (!ok)
        return ck_fail(msg,
                       "group '/job': its values must be at most %d float64 scalars with "
                       "names shorter than %d characters",
                       LETHE_CKPT_JOB_MAX, LETHE_CKPT_JOB_KEY);
    return 1;
}

/* The file's metadata (everything the meta digest covers but the RNG states), range-checked
 * (ck_check_meta), with /meta/config into m->config_json; *mdig the stored meta_digest.
 * Returns 1, or 0 with msg. */
static int read_meta(hid_t fid, const char *path, lethe_ckpt_meta *m, uint64_t *mdig, char *msg)
{
    int ok = ck_read_str_attr(fid, "the file", "lethe_version", m->version, sizeof m->version, msg);
    ok = ok && ck_read_attr(fid, "the file", "step", H5T_NATIVE_INT64, -1, &m->step, msg);
    ok = ok && ck_read_attr(fid, "the file", "epoch", H5T_NATIVE_INT64, -1, &m->epoch, msg);
    ok = ok && ck_read_attr(fid, "the file", "layout", H5T_NATIVE_INT, 3, m->layout, msg);
    ok = ok && ck_read_attr(fid, "the file", "world_size", H5T_NATIVE_INT, -1, &m->world_size, msg);
    ok = ok && ck_read_attr(fid, "the file", "meta_digest", H5T_NATIVE_UINT64, -1, mdig, msg);
    if (ok) {
        hid_t a = H5Aopen(fid, "loader_cursor", H5P_DEFAULT), sp = -1;
        hssize_t n = -1;
        if (a >= 0 && (sp = H5Aget_space(a)) >= 0)
            n = H5Sget_simple_extent_type(sp) == H5S_NULL ? 0 : H5Sget_simple_extent_npoints(sp);
        if (n < 0 || n > LETHE_CKPT_CURSOR_MAX)
            ok = ck_fail(msg, "attribute 'loader_cursor' is missing or longer than %d",
                         LETHE_CKPT_CURSOR_MAX);
        else if (n > 0 && H5Aread(a, H5T_NATIVE_INT64, m->cursor) < 0)
            ok = ck_fail(msg, "cannot read attribute 'loader_cursor'");
        m->n_cursor = (int)n;
        if (sp >= 0) H5Sclose(sp);
        if (a >= 0) H5Aclose(a);
    }
    if (ok) ok = read_job_state(fid, m, msg);
    if (ok) ok = ck_check_meta(m, msg);
    /* read before the tensors (every rank on its own: a few KiB), so that a job whose
     * model differs is told which key differs, not which tensor is missing */
    if (ok) ok = ck_read_config(fid, path, &m->config_json, msg);
    return ok;
}

/* The stored meta_digest against the one the metadata read gives. 1, or 0 with msg. */
static int digest_matches(const lethe_ckpt_meta *m, const uint64_t *rngs, uint64_t stored,
                          char *msg)
{
    uint64_t want = ckpt_meta_digest(m, rngs);
    if (want == stored) return 1;
    return ck_fail(msg,
                   "attribute 'meta_digest' is %016llx but the metadata (step, epoch, loader "
                   "cursor, /job, /meta/config, layout, RNG states) gives %016llx: the file is "
                   "corrupt",
                   (unsigned long long)stored, (unsigned long long)want);
}

int ck_agree_table(const char *path, const lethe_params *t, const lethe_grid *g, ck_union *U,
                   int with_optimizer, uint64_t wish, const char *wish_what, char *msg)
{
    if (lethe_agree(g->world, ck_validate_table(t, with_optimizer, msg), msg, CK_MSG, NULL))
        return 0;
    int ok = ck_build_union(t, g, U, msg);
    uint64_t h[3] = {ok ? ck_union_hash(U) : 0, lethe_hash_str(path), wish};
    int eq[3];
    ck_all_equal(g->world, h, 3, eq);
    if (!eq[0]) ok = ck_fail(msg, "the data-parallel replicas hold different parameter tables");
    if (!eq[1]) ok = ck_fail(msg, "the ranks were given different paths");
    if (!eq[2]) ok = ck_fail(msg, "the ranks disagree on %s", wish_what);
    if (lethe_agree(g->world, ok, msg, CK_MSG, NULL)) return 0;
    /* The layout must cover every tensor too, or a digest check could not tell a bad
     * file from a bad table. */
    uint64_t *dg = ck_replica_digests(t, g, U, 0, 0);
    ok = ck_check_coverage(U, dg, msg);
    free(dg);
    return !lethe_agree(g->world, ok, msg, CK_MSG, NULL);
}

int ckpt_load(const char *path, lethe_params *t, const lethe_grid *g, lethe_ckpt_meta *meta,
              int load_optimizer, char *err, size_t errlen)
{
    char msg[CK_MSG] = "";
    ck_union U = {0};
    uint64_t *dg = NULL, *stored = NULL;
    int64_t *offs = NULL;
    ck_direct dir = {-1, 0};
    hid_t *dsets = NULL, fid = -1;
    int nkinds = load_optimizer ? CK_KINDS : 1;
    h5_quiet q;
    h5_quiet_on(&q);

    if (!ck_agree_table(path, t, g, &U, load_optimizer, (uint64_t)nkinds,
                        "loading the optimizer state", msg))
        goto out;
    int ok, ver = 0;
    if ((fid = ck_open_for_read(path, g->world, &ver, msg)) < 0) goto out;

    /* Metadata phase: identical calls and verdicts on every rank. */
    lethe_ckpt_meta mm;
    memset(&mm, 0, sizeof mm);
    uint64_t mdig = 0, *rngs = NULL;
    ok = read_meta(fid, path, &mm, &mdig, msg);
    hid_t rng_ds = -1;
    if (ok) ok = ck_check_model_config(mm.config_json, meta ? meta->expect_config : NULL, msg);
    if (ok) {
        rng_ds = H5Lexists(fid, "/meta/rng", H5P_DEFAULT) > 0
                     ? H5Dopen2(fid, "/meta/rng", H5P_DEFAULT)
                     : -1;
        hid_t sp = rng_ds >= 0 ? H5Dget_space(rng_ds) : -1;
        if (sp < 0 || H5Sget_simple_extent_npoints(sp) != mm.world_size)
            ok = ck_fail(msg, "dataset '/meta/rng' is missing or does not hold %d states",
                         mm.world_size);
        if (sp >= 0) H5Sclose(sp);
    }
    for (int kind = 1; ok && kind < nkinds; kind++)
        if (H5Lexists(fid, ck_group[kind], H5P_DEFAULT) <= 0)
            ok = ck_fail(msg, "holds no optimizer state (group '%s' is missing)", ck_group[kind]);
    if (ok && H5Lexists(fid, ck_group[0], H5P_DEFAULT) <= 0)
        ok = ck_fail(msg, "group '%s' is missing", ck_group[0]);
    size_t nds = (size_t)nkinds * (size_t)U.nu;
    dsets = lethe_malloc((nds ? nds : 1) * sizeof(hid_t), "checkpoint datasets");
    stored = lethe_calloc(nds ? nds : 1, sizeof(uint64_t), "checkpoint digests");
    offs = lethe_malloc((nds ? nds : 1) * sizeof(int64_t), "checkpoint offsets");
    for (size_t k = 0; k < nds; k++) dsets[k] = -1;
    ck_direct_open(&dir, path, g->world);
    for (int kind = 0; ok && kind < nkinds; kind++)
        for (int k = 0; ok && k < U.nu; k++) {
            size_t at = (size_t)kind * U.nu + k;
            dsets[at] = ck_open_tensor(fid, ck_group[kind], &U.u[k], &stored[at], msg);
            if (dsets[at] < 0) ok = 0;
            if (ok) ok = (offs[at] = ck_direct_offset(&dir, dsets[at], &U.u[k], ck_group[kind],
                                                      msg)) != -2;
        }
    if (lethe_agree(g->world, ok, msg, CK_MSG, NULL)) goto close;

    /* Data phase: every rank joins every read; every replica reads its pieces. */
    hid_t dxpl;
    H5C(dxpl = H5Pcreate(H5P_DATASET_XFER), "checkpoint '%s'", path);
    H5C(H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE), "checkpoint '%s'", path);
    float *bufs[CK_KINDS] = {t->data, t->m, t->v};
    /* Each replica checks what it read itself: a piece is digested (and scanned for Inf
     * and NaN) in its copy out of the file's map (checkpoint_direct.c), or else just after
     * its read, while its bytes are still in cache. Whether a dataset is mapped depends
     * only on the file, so every rank joins the same collective reads. */
    dg = lethe_calloc(nds ? nds : 1, sizeof(uint64_t), "checkpoint digests");
    uint32_t maxbits = 0;
    int rok = 1;
    for (int kind = 0; kind < nkinds; kind++)
        for (int k = 0; k < U.nu; k++) {
            int i = U.prim[k];
            const lethe_param *p = i >= 0 ? &t->p[i] : NULL;
            size_t at = (size_t)kind * U.nu + k;
            float *to = p ? bufs[kind] + p->off : bufs[kind];
            int counts = p && ck_counts_in_replica(p, g);
            uint64_t d = 0;
            if (offs[at] >= 0) {
                if (rok) rok = ck_direct_read(&dir, offs[at], p, to, ver, &d, &maxbits,
                                              ck_group[kind], msg);
            } else {
                read_tensor(path, dsets[at], ck_group[kind], &U.u[k], p, to, dxpl);
                if (counts) d = ck_piece_digest(ver, p, to, &maxbits);
            }
            if (counts) dg[at] = d;
        }
    if (nds) MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, dg, (int)nds, MPI_UINT64_T, MPI_SUM, g->mp_comm));
    {
        /* every rank reads every RNG state (world_size of them): the metadata digest
         * covers them all; rank r keeps state r when the rank count is the same */
        hid_t sp;
        H5C(sp = H5Dget_space(rng_ds), "checkpoint '%s': dataset '/meta/rng'", path);
        rngs = lethe_malloc(sizeof(uint64_t) * (size_t)mm.world_size, "checkpoint RNG states");
        H5C(H5Dread(rng_ds, H5T_NATIVE_UINT64, sp, sp, dxpl, rngs),
            "checkpoint '%s': dataset '/meta/rng'", path);
        H5Sclose(sp);
        mm.rng_restored = mm.world_size == g->size;
        mm.rng = mm.rng_restored ? rngs[g->rank] : meta ? meta->rng : 0;
        ok = rok && digest_matches(&mm, rngs, mdig, msg);
    }
    H5Pclose(dxpl);

    /* Duplicates get the primary's piece; padding is zero whatever the file held. */
    for (int i = 0; i < t->n; i++) {
        const lethe_param *p = &t->p[i], *pp = &t->p[U.prim[U.uidx[i]]];
        for (int kind = 0; kind < nkinds; kind++) {
            if (p != pp)
                memcpy(bufs[kind] + p->off, bufs[kind] + pp->off, p->numel * sizeof(float));
            zero_padding(p, bufs[kind] + p->off);
        }
    }

    for (int kind = 0; ok && kind < nkinds; kind++)
        for (int k = 0; ok && k < U.nu; k++) {
            size_t at = (size_t)kind * U.nu + k;
            if (dg[at] != stored[at])
                ok = ck_fail(msg,
                             "dataset '%s/%s': digest mismatch (stored %016llx, read %016llx): "
                             "the file is corrupt",
                             ck_group[kind], U.u[k].name, (unsigned long long)stored[at],
                             (unsigned long long)dg[at]);
        }
    /* A digest proves the file is what was written, not that it is usable. The digested
     * pieces cover every element this rank holds (its other copies are the same bytes),
     * so the scan that names the element runs only when the digests' pass saw one. */
    if (ok && maxbits >= CK_NONFINITE_BITS) ok = ck_check_finite(t, nkinds, msg);
    if (ok && meta) {
        uint64_t keep_rng = meta->rng;
        *meta = mm;
        if (!mm.rng_restored) meta->rng = keep_rng;
        mm.config_json = NULL; /* now owned by meta */
    }

close:
    free(mm.config_json);
    if (dsets)
        for (size_t k = 0; k < nds; k++)
            if (dsets[k] >= 0) H5Dclose(dsets[k]);
    if (rng_ds >= 0) H5Dclose(rng_ds);
    ck_direct_close(&dir);
    free(rngs);
    {
        char h5b[256];
        int cok = H5Fclose(fid) >= 0;
        if (!cok) ck_fail(msg, "closing failed: %s", h5_last_error(h5b, sizeof h5b));
        ok = ok && cok;
    }
    lethe_agree(g->world, ok && !msg[0], msg, CK_MSG, NULL);
    if (load_optimizer) t->moments_sharded = 0; /* every rank now holds the whole moments */

out:
    free(dsets);
    free(stored);
    free(offs);
    free(dg);
    ck_union_free(&U);
    h5_quiet_off(&q);
    return ck_result(msg, path, err, errlen);
}

void ckpt_meta_free(lethe_ckpt_meta *meta)
{
    free(meta->config_json);
    meta->config_json = NULL;
}

/* ---- verify --------------------------------------------------------------------------- */

typedef struct {
    char (*names)[LETHE_NAME_MAX];
    int n, cap;
} name_list;

static herr_t list_cb(hid_t grp, const char *name, const H5L_info_t *info, void *data)
{
    (void)grp;
    (void)info;
    name_list *l = data;
    if (strlen(name) >= LETHE_NAME_MAX) return 0;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->names = realloc(l->names, (size_t)l->cap * LETHE_NAME_MAX);
        if (!l->names) lethe_fatal("out of memory listing checkpoint datasets");
    }
    snprintf(l->names[l->n++], LETHE_NAME_MAX, "%s", name);
    return 0;
}

/* The verify path's metadata check: what a load checks before its tensors (read_meta),
 * plus every RNG state, against the stored meta_digest. Every rank reads everything (a
 * few KiB): identical calls and verdicts. 1, or 0 with msg; out (may be NULL) receives
 * the metadata (its config_json then the caller's to free). */
int ck_verified_meta(hid_t fid, const char *path, hid_t dxpl, lethe_ckpt_meta *out, char *msg)
{
    lethe_ckpt_meta mm;
    memset(&mm, 0, sizeof mm);
    uint64_t mdig = 0, *rngs = NULL;
    int ok = read_meta(fid, path, &mm, &mdig, msg);
    hid_t ds = ok && H5Lexists(fid, "/meta/rng", H5P_DEFAULT) > 0
                   ? H5Dopen2(fid, "/meta/rng", H5P_DEFAULT)
                   : -1;
    hid_t sp = ds >= 0 ? H5Dget_space(ds) : -1;
    if (ok && (sp < 0 || H5Sget_simple_extent_npoints(sp) != mm.world_size))
        ok = ck_fail(msg, "dataset '/meta/rng' is missing or does not hold %d states",
                     mm.world_size);
    if (ok) {
        rngs = lethe_malloc(sizeof(uint64_t) * (size_t)mm.world_size, "checkpoint RNG states");
        H5C(H5Dread(ds, H5T_NATIVE_UINT64, sp, sp, dxpl, rngs),
            "checkpoint '%s': dataset '/meta/rng'", path);
        ok = digest_matches(&mm, rngs, mdig, msg);
    }
    if (sp >= 0) H5Sclose(sp);
    if (ds >= 0) H5Dclose(ds);
    free(rngs);
    if (ok && out) {
        *out = mm;
        mm.config_json = NULL;
    }
    free(mm.config_json);
    return ok;
}

int ckpt_verify(const char *path, MPI_Comm comm, int64_t *n_checked, char *err, size_t errlen)
{
    char msg[CK_MSG] = "", h5b[256];
    int rank, size, ok = 1;
    int64_t checked = 0;
    MPI_CHECK(MPI_Comm_rank(comm, &rank));
    MPI_CHECK(MPI_Comm_size(comm, &size));
    h5_quiet q;
    h5_quiet_on(&q);
    uint64_t h = lethe_hash_str(path);
    int eq;
    ck_all_equal(comm, &h, 1, &eq);
    hid_t fid = -1;
    if (lethe_agree(comm, eq || ck_fail(msg, "the ranks were given different paths"), msg, CK_MSG,
                    NULL))
        goto out;
    int ver = 0;
    fid = ck_open_for_read(path, comm, &ver, msg);
    if (fid < 0) goto out;
    hid_t dxpl;
    H5C(dxpl = H5Pcreate(H5P_DATASET_XFER), "checkpoint '%s'", path);
    H5C(H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE), "checkpoint '%s'", path);
    ok = ck_verified_meta(fid, path, dxpl, NULL, msg);
    /* Rows in blocks of about 4 MiB per rank per read, so memory stays small. */
    const int64_t block_floats = 1 << 20;
    float *buf = NULL;
    size_t buf_cap = 0;
    /* the three kinds and, when there is one, WAGLE's mask (read as 0/1 floats: its digest) */
    const char *const vg[CK_KINDS + 1] = {ck_group[0], ck_group[1], ck_group[2], CK_MASK_GROUP};
    name_list L[CK_KINDS + 1];
    memset(L, 0, sizeof L);
    for (int kind = 0; ok && kind < CK_KINDS + 1; kind++) {
        if (H5Lexists(fid, vg[kind], H5P_DEFAULT) <= 0) {
            if (kind == 0) ok = ck_fail(msg, "group '%s' is missing", ck_group[0]);
            continue;
        }
        hid_t grp = H5Gopen2(fid, vg[kind], H5P_DEFAULT);
        if (grp < 0 || H5Literate(grp, H5_INDEX_NAME, H5_ITER_INC, NULL, list_cb, &L[kind]) < 0)
            ok = ck_fail(msg, "cannot list group '%s': %s", vg[kind],
                         h5_last_error(h5b, sizeof h5b));
        if (grp >= 0) H5Gclose(grp);
    }
    int nall = L[0].n + L[1].n + L[2].n + L[3].n;
    uint64_t *stored = lethe_calloc((size_t)(nall ? nall : 1), sizeof(uint64_t), "digests");
    uint64_t *dig = lethe_calloc((size_t)(nall ? nall : 1), sizeof(uint64_t), "digests");
    /* Identical calls on every rank (metadata decides every branch); one reduction at the
     * end for all digests. */
    for (int kind = 0, at = 0; ok && kind < CK_KINDS + 1; kind++)
        for (int k = 0; ok && k < L[kind].n; k++, at++) {
            ck_entry e;
            memset(&e, 0, sizeof e);
            snprintf(e.name, sizeof e.name, "%s", L[kind].names[k]);
            hid_t ds = ck_open_tensor(fid, vg[kind], &e, &stored[at], msg);
            if (ds < 0) {
                ok = 0;
                break;
            }
            int64_t rows = e.gshape[0], cols = e.gshape[1];
            int64_t r0 = rows * rank / size, r1 = rows * (rank + 1) / size;
            int64_t brows = block_floats / cols > 0 ? block_floats / cols : 1;
            int64_t maxrows = (rows + size - 1) / size;
            int64_t rounds = (maxrows + brows - 1) / brows;
            if ((size_t)(brows * cols) > buf_cap) {
                free(buf);
                buf_cap = (size_t)(brows * cols);
                buf = lethe_malloc(buf_cap * sizeof(float), "checkpoint verify buffer");
            }
            for (int64_t rd = 0; rd < rounds; rd++) {
                lethe_param piece;
                memset(&piece, 0, sizeof piece);
                int64_t a = r0 + rd * brows, b = a + brows < r1 ? a + brows : r1;
                piece.gstart[0] = a;
                piece.vshape[0] = piece.lshape[0] = b > a ? b - a : 0;
                piece.vshape[1] = piece.lshape[1] = cols;
                if (piece.lshape[0] == 0) piece.lshape[0] = 1;
                read_tensor(path, ds, vg[kind], &e, &piece, buf, dxpl);
                dig[at] += ckpt_digest_piece(ver, buf, piece.vshape[0], cols, cols, a, 0, cols);
            }
            H5C(H5Dclose(ds), "checkpoint '%s': dataset '%s/%s'", path, vg[kind], e.name);
        }
    if (ok && nall) MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, dig, nall, MPI_UINT64_T, MPI_SUM, comm));
    for (int kind = 0, at = 0; ok && kind < CK_KINDS + 1; kind++)
        for (int k = 0; ok && k < L[kind].n; k++, at++) {
            if (dig[at] != stored[at])
                ok = ck_fail(msg,
                             "dataset '%s/%s': digest mismatch (stored %016llx, read %016llx): the "
                             "file is corrupt",
                             vg[kind], L[kind].names[k], (unsigned long long)stored[at],
                             (unsigned long long)dig[at]);
            checked++;
        }
    for (int kind = 0; kind < CK_KINDS + 1; kind++) free(L[kind].names);
    free(stored);
    free(dig);
    free(buf);
    H5Pclose(dxpl);
    if (H5Fclose(fid) < 0) ok = ck_fail(msg, "closing failed: %s", h5_last_error(h5b, sizeof h5b));
    lethe_agree(comm, ok, msg, CK_MSG, NULL);
out:
    h5_quiet_off(&q);
    if (n_checked) *n_checked = checked;
    return ck_result(msg, path, err, errlen);
}
