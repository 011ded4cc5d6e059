/* io/checkpoint_mask.c — WAGLE's mask (lethe_params.mask, model/wagle.h) as a tensor kind
 * of the checkpoint: /wagle_mask/<name>, uint8 0/1 at the tensor's GLOBAL shape beside
 * /params, so a mask written under one layout reads back under any other. ckpt_save
 * writes it through the hook here (ck_mask_digests before its collective section,
 * ck_mask_write inside it) whenever the table has a mask; ckpt_load_mask reads it back
 * (ckpt_load ignores it: a weights-and-moments load does not need it). The digest of a
 * mask tensor is the digest (checkpoint.h) of the floats its bytes encode, so ckpt_verify
 * checks it by reading the bytes as floats, and a flipped byte is caught like a flipped
 * weight. */
#define _XOPEN_SOURCE 700
#include <stdlib.h>
#include <string.h>

#include "checkpoint_impl.h"

/* The digest of the valid extent of mask piece p (m at its offset), a row at a time
 * through `row` (vshape[1] floats). */
static uint64_t piece_digest(int ver, const lethe_param *p, const unsigned char *m, float *row)
{
    uint64_t d = 0;
    for (int64_t i = 0; i < p->vshape[0]; i++) {
        for (int64_t j = 0; j < p->vshape[1]; j++) row[j] = (float)m[i * p->lshape[1] + j];
        d += ckpt_digest_piece(ver, row, 1, p->vshape[1], p->vshape[1], p->gstart[0] + i,
                               p->gstart[1], p->gshape[1]);
    }
    return d;
}

/* Per union tensor, the digest (format ver) of this replica's mask (summed over mp_comm). */
static uint64_t *replica_digests(int ver, const lethe_params *t, const lethe_grid *g,
                                 const ck_union *U)
{
    uint64_t *d = lethe_calloc((size_t)(U->nu ? U->nu : 1), sizeof(uint64_t), "mask digests");
    int64_t width = 1;
    for (int i = 0; i < t->n; i++)
        if (t->p[i].vshape[1] > width) width = t->p[i].vshape[1];
    float *row = lethe_malloc((size_t)width * sizeof(float), "checkpoint mask row");
    for (int k = 0; k < U->nu; k++) {
        int i = U->prim[k];
        if (i >= 0 && ck_counts_in_replica(&t->p[i], g))
            d[k] = piece_digest(ver, &t->p[i], t->mask + t->p[i].off, row);
    }
    free(row);
    if (U->nu) MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, d, U->nu, MPI_UINT64_T, MPI_SUM, g->mp_comm));
    return d;
}

uint64_t *ck_mask_digests(const lethe_params *t, const lethe_grid *g, const ck_union *U)
{
    uint64_t *d = replica_digests(CK_FORMAT_VERSION, t, g, U);
    if (U->nu) MPI_CHECK(MPI_Bcast(d, U->nu, MPI_UINT64_T, 0, g->dp_comm));
    return d;
}

#define DS_WHAT "checkpoint '%s': dataset '%s/%s'", file, CK_MASK_GROUP, e->name

void ck_mask_write(const char *file, hid_t fid, const lethe_params *t, const lethe_grid *g,
                   const ck_union *U, const uint64_t *digests, hid_t dcpl, hid_t dxpl)
{
    hid_t grp, fs, ds, ms, sp, a;
    H5C(grp = H5Gcreate2(fid, CK_MASK_GROUP, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
        "checkpoint '%s': group '%s'", file, CK_MASK_GROUP);
    for (int k = 0; k < U->nu; k++) {
        const ck_entry *e = &U->u[k];
        int i = U->prim[k];
        /* what ckpt_save writes of /params: replica 0's owner pieces, tp rank 0's copy of a
         * tensor replicated over tp */
        const lethe_param *p =
            i >= 0 && g->dp_rank == 0 && ck_counts_in_replica(&t->p[i], g) ? &t->p[i] : NULL;
        hsize_t dims[2] = {(hsize_t)e->gshape[0], (hsize_t)e->gshape[1]};
        H5C(fs = H5Screate_simple(e->ndim, dims, NULL), DS_WHAT);
        H5C(ds = H5Dcreate2(grp, e->name, H5T_STD_U8LE, fs, H5P_DEFAULT, dcpl, H5P_DEFAULT),
            DS_WHAT);
        H5C(ms = ck_select_piece(fs, e->ndim, p), DS_WHAT);
        H5C(H5Dwrite(ds, H5T_NATIVE_UCHAR, ms, fs, dxpl, p ? t->mask + p->off : t->mask),
            DS_WHAT);
        H5C(H5Sclose(ms), DS_WHAT);
        H5C(sp = H5Screate(H5S_SCALAR), DS_WHAT);
        H5C(a = H5Acreate2(ds, "digest", H5T_STD_U64LE, sp, H5P_DEFAULT, H5P_DEFAULT), DS_WHAT);
        H5C(H5Awrite(a, H5T_NATIVE_UINT64, &digests[k]), DS_WHAT);
        H5C(H5Aclose(a), DS_WHAT);
        H5C(H5Sclose(sp), DS_WHAT);
        H5C(H5Sclose(fs), DS_WHAT);
        H5C(H5Dclose(ds), DS_WHAT);
    }
    H5C(H5Gclose(grp), "checkpoint '%s': group '%s'", file, CK_MASK_GROUP);
}

/* Every rank reads the pieces it holds (every replica), duplicates copy their primary's,
 * padding is 0; then each replica's digests against the stored ones. 1, or 0 with msg. */
static int read_mask(const char *path, int ver, lethe_params *t, const lethe_grid *g,
                     const ck_union *U, const hid_t *dsets, const uint64_t *stored, hid_t dxpl,
                     char *msg)
{
    for (int k = 0; k < U->nu; k++) {
        const ck_entry *e = &U->u[k];
        const char *file = path;
        int i = U->prim[k];
        const lethe_param *p = i >= 0 ? &t->p[i] : NULL;
        hid_t fs, ms;
        H5C(fs = H5Dget_space(dsets[k]), DS_WHAT);
        H5C(ms = ck_select_piece(fs, e->ndim, p), DS_WHAT);
        H5C(H5Dread(dsets[k], H5T_NATIVE_UCHAR, ms, fs, dxpl, p ? t->mask + p->off : t->mask),
            DS_WHAT);
        H5C(H5Sclose(ms), DS_WHAT);
        H5C(H5Sclose(fs), DS_WHAT);
    }
    for (int i = 0; i < t->n; i++) {
        const lethe_param *p = &t->p[i], *pp = &t->p[U->prim[U->uidx[i]]];
        unsigned char *m = t->mask + p->off;
        if (p != pp) memcpy(m, t->mask + pp->off, p->numel);
        for (int64_t r = 0; r < p->lshape[0]; r++)
            for (int64_t c = r < p->vshape[0] ? p->vshape[1] : 0; c < p->lshape[1]; c++)
                m[r * p->lshape[1] + c] = 0;
    }
    uint64_t *dg = replica_digests(ver, t, g, U);
    int ok = 1;
    for (int k = 0; ok && k < U->nu; k++)
        if (dg[k] != stored[k])
            ok = ck_fail(msg,
                         "dataset '%s/%s': digest mismatch (stored %016llx, read %016llx): the "
                         "file is corrupt",
                         CK_MASK_GROUP, U->u[k].name, (unsigned long long)stored[k],
                         (unsigned long long)dg[k]);
    free(dg);
    return ok;
}

int ckpt_load_mask(const char *path, lethe_params *t, const lethe_grid *g, lethe_ckpt_meta *meta,
                   char *err, size_t errlen)
{
    char msg[CK_MSG] = "", h5b[256];
    ck_union U = {0};
    lethe_ckpt_meta mm;
    memset(&mm, 0, sizeof mm);
    hid_t *dsets = NULL, fid = -1, dxpl = -1;
    uint64_t *stored = NULL;
    int has = 0, ok, ver = 0;
    h5_quiet q;
    h5_quiet_on(&q);
    if (!ck_agree_table(path, t, g, &U, 0, (uint64_t)(t->mask != 0), "reading a WAGLE mask", msg) ||
        (fid = ck_open_for_read(path, g->world, &ver, msg)) < 0)
        goto out;
    H5C(dxpl = H5Pcreate(H5P_DATASET_XFER), "checkpoint '%s'", path);
    H5C(H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE), "checkpoint '%s'", path);
    /* metadata only below, so every verdict is the same on every rank */
    ok = ck_verified_meta(fid, path, dxpl, &mm, msg);
    if (ok) ok = ck_check_model_config(mm.config_json, meta ? meta->expect_config : NULL, msg);
    if (ok) has = H5Lexists(fid, CK_MASK_GROUP, H5P_DEFAULT) > 0;
    int read = ok && has && t->mask;
    dsets = lethe_malloc((size_t)(U.nu ? U.nu : 1) * sizeof(hid_t), "checkpoint mask datasets");
    stored = lethe_calloc((size_t)(U.nu ? U.nu : 1), sizeof(uint64_t), "checkpoint mask digests");
    for (int k = 0; k < U.nu; k++) dsets[k] = -1;
    for (int k = 0; read && ok && k < U.nu; k++)
        ok = (dsets[k] = ck_open_tensor(fid, CK_MASK_GROUP, &U.u[k], &stored[k], msg)) >= 0;
    if (!lethe_agree(g->world, ok, msg, CK_MSG, NULL) && read)
        ok = read_mask(path, ver, t, g, &U, dsets, stored, dxpl, msg);
    for (int k = 0; k < U.nu; k++)
        if (dsets[k] >= 0) H5Dclose(dsets[k]);
    H5Pclose(dxpl);
    if (H5Fclose(fid) < 0) ok = ck_fail(msg, "closing failed: %s", h5_last_error(h5b, sizeof h5b));
    if (!lethe_agree(g->world, ok && !msg[0], msg, CK_MSG, NULL) && meta) {
        const char *expect = meta->expect_config;
        *meta = mm;
        meta->expect_config = expect;
        mm.config_json = NULL; /* now owned by meta */
    }
out:
    free(mm.config_json);
    free(dsets);
    free(stored);
    ck_union_free(&U);
    h5_quiet_off(&q);
    return ck_result(msg, path, err, errlen) < 0 ? -1 : has;
}
