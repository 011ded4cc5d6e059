/* io/checkpoint.c — collective HDF5 checkpoints (contract and file layout in checkpoint.h).
 *
 * Structure of save and load: local checks, then agreement (every rank learns the first
 * failing rank's message), then the collective HDF5 section. Inside that section every
 * rank makes the same HDF5 calls in the same order: dataset creation, collective
 * metadata and collective raw-data I/O all hang if one rank skips a call, so a rank with
 * nothing to write or read still joins with an empty (H5Sselect_none) selection, and an
 * HDF5 call that fails there ends the job (lethe_fatal) rather than leave the others
 * waiting. Checks that depend only on the file's metadata (missing dataset, wrong shape
 * or type) give the same result on every rank, so they are collected and agreed on.
 *
 * This file holds the helpers and ckpt_save; checkpoint_union.c the union of the ranks'
 * tables and the digests, checkpoint_load.c ckpt_load and ckpt_verify (shared:
 * checkpoint_impl.h). */
#define _XOPEN_SOURCE 700
#include "checkpoint.h"

#include <hdf5.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../mpi/fatal.h"
#include "checkpoint_impl.h"
#include "safefile.h"

#ifndef LETHE_VERSION
#define LETHE_VERSION "unknown"
#endif

const char *const ck_group[CK_KINDS] = {"/params", "/adam_m", "/adam_v"};

/* ---- small helpers --------------------------------------------------------------- */

/* Records the first failure of a phase in msg (CK_MSG bytes); returns 0 (= not ok). */
int ck_result(const char *msg, const char *path, char *err, size_t errlen)
{
    if (!msg[0]) return 0;
    snprintf(err, errlen, "checkpoint '%s': %s", path, msg);
    return -1;
}

LETHE_PRINTF(2, 3) int ck_fail(char *msg, const char *fmt, ...)
{
    if (msg[0]) return 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, CK_MSG, fmt, ap);
    va_end(ap);
    return 0;
}

/* The HDF5 function named in a stringified call: "ds = H5Dcreate2(grp, ...)" -> "H5Dcreate2". */
const char *ck_call_name(const char *call, char *buf, size_t len)
{
    const char *open = strchr(call, '('), *start = open;
    if (!open) return call;
    while (start > call &&
           (start[-1] == '_' || (start[-1] >= '0' && start[-1] <= '9') ||
            (start[-1] >= 'A' && start[-1] <= 'Z') || (start[-1] >= 'a' && start[-1] <= 'z')))
        start--;
    snprintf(buf, len, "%.*s", (int)(open - start), start);
    return buf;
}

uint64_t ck_mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

void ck_shape_str(char *buf, size_t len, int nd, const int64_t *s)
{
    if (nd == 1)
        snprintf(buf, len, "[%lld]", (long long)s[0]);
    else
        snprintf(buf, len, "[%lld,%lld]", (long long)s[0], (long long)s[1]);
}

/* ---- hyperslab selection ------------------------------------------------------------ */

/* Selects piece p (NULL or empty: nothing) in the file space fs and returns a memory
 * space for the piece's buffer with the matching selection. -1 on HDF5 failure. */
hid_t ck_select_piece(hid_t fs, int nd, const lethe_param *p)
{
    hid_t ms;
    if (!p || p->vshape[0] == 0 || p->vshape[1] == 0) {
        hsize_t one = 1;
        if (H5Sselect_none(fs) < 0) return -1;
        if ((ms = H5Screate_simple(1, &one, NULL)) < 0) return -1;
        if (H5Sselect_none(ms) < 0) {
            H5Sclose(ms);
            return -1;
        }
        return ms;
    }
    hsize_t start[2] = {(hsize_t)p->gstart[0], (hsize_t)p->gstart[1]};
    hsize_t count[2] = {(hsize_t)p->vshape[0], (hsize_t)p->vshape[1]};
    hsize_t mdims[2] = {(hsize_t)p->lshape[0], (hsize_t)p->lshape[1]};
    hsize_t zero[2] = {0, 0};
    if (H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) < 0) return -1;
    if ((ms = H5Screate_simple(nd, mdims, NULL)) < 0) return -1;
    if (H5Sselect_hyperslab(ms, H5S_SELECT_SET, zero, NULL, count, NULL) < 0) {
        H5Sclose(ms);
        return -1;
    }
    return ms;
}

/* ---- attributes --------------------------------------------------------------------- */

static void write_attr(const char *file, hid_t obj, const char *name, hid_t ftype, hid_t mtype,
                       int n, const void *buf)
{
    hsize_t dims = (hsize_t)n;
    hid_t sp, a;
    H5C(sp = n < 0    ? H5Screate(H5S_SCALAR)
             : n == 0 ? H5Screate(H5S_NULL)
                      : H5Screate_simple(1, &dims, NULL),
        "checkpoint '%s': attribute '%s'", file, name);
    H5C(a = H5Acreate2(obj, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT),
        "checkpoint '%s': attribute '%s'", file, name);
    if (n != 0) H5C(H5Awrite(a, mtype, buf), "checkpoint '%s': attribute '%s'", file, name);
    H5C(H5Aclose(a), "checkpoint '%s': attribute '%s'", file, name);
    H5C(H5Sclose(sp), "checkpoint '%s': attribute '%s'", file, name);
}

/* A fixed-length string type holding s (with its terminator). */
hid_t ck_str_type(const char *file, const char *what, size_t len)
{
    hid_t ty;
    H5C(ty = H5Tcopy(H5T_C_S1), "checkpoint '%s': %s", file, what);
    H5C(H5Tset_size(ty, len ? len : 1), "checkpoint '%s': %s", file, what);
    H5C(H5Tset_strpad(ty, H5T_STR_NULLTERM), "checkpoint '%s': %s", file, what);
    return ty;
}

static void write_str_attr(const char *file, hid_t obj, const char *name, const char *s)
{
    hid_t ty = ck_str_type(file, name, strlen(s) + 1);
    write_attr(file, obj, name, ty, ty, -1, s);
    H5Tclose(ty);
}

/* Attribute name of obj, open; or -1 with msg set (missing, or HDF5's reason). */
static hid_t open_attr(hid_t obj, const char *where, const char *name, char *msg)
{
    char h5b[256];
    if (H5Aexists(obj, name) <= 0) {
        ck_fail(msg, "%s has no attribute '%s'", where, name);
        return -1;
    }
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0)
        ck_fail(msg, "%s: cannot open attribute '%s': %s", where, name,
                h5_last_error(h5b, sizeof h5b));
    return a;
}

/* Reads attribute `name` of n elements (n < 0: scalar) into buf. Metadata only, so
 * the verdict is the same on every rank. Returns 1, or 0 with msg. */
int ck_read_attr(hid_t obj, const char *where, const char *name, hid_t mtype, int n, void *buf,
                 char *msg)
{
    char h5b[256];
    hid_t a = open_attr(obj, where, name, msg);
    if (a < 0) return 0;
    int ok = 1;
    hid_t sp = H5Aget_space(a);
    hssize_t np = sp >= 0 ? H5Sget_select_npoints(sp) : -1;
    if (np != (n < 0 ? 1 : n))
        ok = ck_fail(msg, "%s: attribute '%s' has %lld elements, expected %d", where, name,
                     (long long)np, n < 0 ? 1 : n);
    else if (H5Aread(a, mtype, buf) < 0)
        ok = ck_fail(msg, "%s: cannot read attribute '%s': %s", where, name,
                     h5_last_error(h5b, sizeof h5b));
    if (sp >= 0) H5Sclose(sp);
    H5Aclose(a);
    return ok;
}

/* A fixed-length string attribute into buf (len bytes, truncated, terminated). */
int ck_read_str_attr(hid_t obj, const char *where, const char *name, char *buf, size_t len,
                     char *msg)
{
    char h5b[256];
    buf[0] = 0;
    hid_t a = open_attr(obj, where, name, msg);
    if (a < 0) return 0;
    int ok = 1;
    hid_t ft = H5Aget_type(a);
    size_t sz =
        ft >= 0 && H5Tget_class(ft) == H5T_STRING && !H5Tis_variable_str(ft) ? H5Tget_size(ft) : 0;
    if (!sz) {
        ok = ck_fail(msg, "%s: attribute '%s' is not a fixed-length string", where, name);
    } else {
        char *tmp = lethe_calloc(sz + 1, 1, "checkpoint attribute");
        hid_t mt = H5Tcopy(H5T_C_S1);
        if (mt < 0 || H5Tset_size(mt, sz) < 0 || H5Aread(a, mt, tmp) < 0)
            ok = ck_fail(msg, "%s: cannot read attribute '%s': %s", where, name,
                         h5_last_error(h5b, sizeof h5b));
        else
            snprintf(buf, len, "%s", tmp);
        if (mt >= 0) H5Tclose(mt);
        free(tmp);
    }
    if (ft >= 0) H5Tclose(ft);
    H5Aclose(a);
    return ok;
}

/* ---- opening ------------------------------------------------------------------------- */

/* Reads on one node: ROMIO's collective buffering makes one rank per node read for all
 * and forward the bytes, and its data sieving reads whole extents to pick out a strided
 * piece; on one node both only add copies, so each rank reads its own bytes (the page
 * cache or the local disk serves them either way). Across nodes ROMIO's defaults stay:
 * there one reader per node suits a parallel file system. Collective over comm. */
static MPI_Info read_hints(MPI_Comm comm)
{
    MPI_Info info = MPI_INFO_NULL;
    if (!ck_one_node(comm, NULL)) return info;
    MPI_CHECK(MPI_Info_create(&info));
    MPI_CHECK(MPI_Info_set(info, "romio_cb_read", "disable"));
    MPI_CHECK(MPI_Info_set(info, "romio_ds_read", "disable"));
    return info;
}

static hid_t mpio_fapl(MPI_Comm comm, const char *file, int reading)
{
    hid_t fapl;
    MPI_Info info = reading ? read_hints(comm) : MPI_INFO_NULL;
    H5C(fapl = H5Pcreate(H5P_FILE_ACCESS), "checkpoint '%s'", file);
    H5C(H5Pset_fapl_mpio(fapl, comm, info), "checkpoint '%s'", file);
    if (info != MPI_INFO_NULL) MPI_CHECK(MPI_Info_free(&info));
    /* Metadata read once by rank 0 and broadcast, written collectively: fewer small
     * requests on a parallel file system, and identical metadata verdicts everywhere. */
    H5C(H5Pset_all_coll_metadata_ops(fapl, 1), "checkpoint '%s'", file);
    H5C(H5Pset_coll_metadata_write(fapl, 1), "checkpoint '%s'", file);
    return fapl;
}

/* Opens path read-only over comm. Rank 0 first checks what a user most often gets wrong
 * (no such file, not HDF5) and names it plainly; the open itself catches the rest
 * (truncated, corrupt). Returns the file id, or -1 with msg agreed on every rank. */
hid_t ck_open_for_read(const char *path, MPI_Comm comm, int *version, char *msg)
{
    int rank, ok = 1;
    char h5b[256];
    MPI_CHECK(MPI_Comm_rank(comm, &rank));
    if (rank == 0) {
        struct stat st;
        if (stat(path, &st) != 0)
            ok = ck_fail(msg, "cannot open: %s", strerror(errno));
        else if (!S_ISREG(st.st_mode))
            ok = ck_fail(msg, "not a regular file");
        else if (access(path, R_OK) != 0)
            ok = ck_fail(msg, "cannot read: %s", strerror(errno));
        else if (H5Fis_hdf5(path) <= 0)
            ok = ck_fail(msg, "not an HDF5 file");
    }
    if (lethe_agree(comm, ok, msg, CK_MSG, NULL)) return -1;
    hid_t fapl = mpio_fapl(comm, path, 1);
    hid_t fid = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    if (fid < 0) ck_fail(msg, "cannot open as HDF5: %s", h5_last_error(h5b, sizeof h5b));
    H5Pclose(fapl);
    int in[2] = {fid >= 0, -(fid >= 0)}, out[2];
    MPI_CHECK(MPI_Allreduce(in, out, 2, MPI_INT, MPI_MAX, comm));
    /* A file open on some ranks only cannot be closed without them: end the job. */
    if (out[0] != -out[1]) lethe_fatal("checkpoint '%s': opened on some ranks only", path);
    if (lethe_agree(comm, fid >= 0, msg, CK_MSG, NULL)) return -1;
    char fmt[64], why[CK_MSG] = "";
    int ver = 0;
    ok = ck_read_str_attr(fid, "the file", "format", fmt, sizeof fmt, why);
    if (ok && strcmp(fmt, CK_FORMAT))
        ok = ck_fail(why, "its format is '%s', expected '%s'", fmt, CK_FORMAT);
    if (ok) ok = ck_read_attr(fid, "the file", "format_version", H5T_NATIVE_INT, -1, &ver, why);
    if (ok && (ver < CK_FORMAT_OLDEST || ver > CK_FORMAT_VERSION))
        ok = ck_fail(why, "format_version %d, this lethe reads %d to %d", ver, CK_FORMAT_OLDEST,
                     CK_FORMAT_VERSION);
    if (!ok) ck_fail(msg, "not a lethe checkpoint (%.900s)", why);
    if (lethe_agree(comm, ok, msg, CK_MSG, NULL)) {
        H5Fclose(fid);
        return -1;
    }
    if (version) *version = ver;
    return fid;
}

/* ---- save ---------------------------------------------------------------------------- */

/* A save's writes of zeros: rows of this rank's pieces in blocks of one zero buffer.
 * Collective writes need the same number of calls on every rank, so calls[k] is the most
 * any rank needs for tensor k (a rank past its rows joins with an empty selection). */
typedef struct {
    const float *zeros; /* CKPT_ZERO_BLOCK floats, or a row's worth if longer */
    int *calls;         /* per union tensor */
} ck_zero;

static int64_t zero_rows_per_call(const lethe_param *p)
{
    int64_t r = CKPT_ZERO_BLOCK / (p->vshape[1] > 0 ? p->vshape[1] : 1);
    return r > 0 ? r : 1;
}

/* Rows [r0, r0 + nr) of piece p selected in fs; a memory space of as many elements. */
static hid_t select_rows(hid_t fs, int nd, const lethe_param *p, int64_t r0, int64_t nr)
{
    if (nr <= 0) return ck_select_piece(fs, nd, NULL);
    hsize_t start[2] = {(hsize_t)(p->gstart[0] + r0), (hsize_t)p->gstart[1]};
    hsize_t count[2] = {(hsize_t)nr, (hsize_t)p->vshape[1]};
    hsize_t n = (hsize_t)(nr * p->vshape[1]);
    if (H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) < 0) return -1;
    return H5Screate_simple(1, &n, NULL);
}

static void write_tensor(const char *file, hid_t grp, const char *gname, const ck_entry *e,
                         const lethe_param *p, const float *buf, uint64_t digest, hid_t dcpl,
                         hid_t dxpl, const ck_zero *z, int k)
{
    hsize_t dims[2] = {(hsize_t)e->gshape[0], (hsize_t)e->gshape[1]};
    hid_t fs, ds, ms;
    H5C(fs = H5Screate_simple(e->ndim, dims, NULL), "checkpoint '%s': dataset '%s/%s'", file, gname,
        e->name);
    H5C(ds = H5Dcreate2(grp, e->name, H5T_IEEE_F32LE, fs, H5P_DEFAULT, dcpl, H5P_DEFAULT),
        "checkpoint '%s': dataset '%s/%s'", file, gname, e->name);
    if (!buf) { /* zeros, in blocks */
        int64_t rpc = p ? zero_rows_per_call(p) : 0, rows = p ? p->vshape[0] : 0;
        for (int c = 0; c < z->calls[k]; c++) {
            int64_t r0 = c * rpc, nr = rows - r0 < rpc ? rows - r0 : rpc;
            H5C(ms = select_rows(fs, e->ndim, p, r0, nr), "checkpoint '%s': dataset '%s/%s'",
                file, gname, e->name);
            H5C(H5Dwrite(ds, H5T_NATIVE_FLOAT, ms, fs, dxpl, z->zeros),
                "checkpoint '%s': dataset '%s/%s'", file, gname, e->name);
            H5C(H5Sclose(ms), "checkpoint '%s': dataset '%s/%s'", file, gname, e->name);
        }
    } else {
        H5C(ms = ck_select_piece(fs, e->ndim, p), "checkpoint '%s': dataset '%s/%s'", file,
            gname, e->name);
        H5C(H5Dwrite(ds, H5T_NATIVE_FLOAT, ms, fs, dxpl, buf), "checkpoint '%s': dataset '%s/%s'",
            file, gname, e->name);
        H5C(H5Sclose(ms), "checkpoint '%s': dataset '%s/%s'", file, gname, e->name);
    }
    write_attr(file, ds, "digest", H5T_STD_U64LE, H5T_NATIVE_UINT64, -1, &digest);
    H5C(H5Sclose(fs), "checkpoint '%s': dataset '%s/%s'", file, gname, e->name);
    H5C(H5Dclose(ds), "checkpoint '%s': dataset '%s/%s'", file, gname, e->name);
}

/* The zero buffer and the agreed number of calls per tensor (collective over world). */
static void zero_plan(ck_zero *z, const lethe_params *t, const lethe_grid *g, const ck_union *U)
{
    int64_t width = CKPT_ZERO_BLOCK;
    z->calls = lethe_calloc((size_t)(U->nu ? U->nu : 1), sizeof(int), "checkpoint zero plan");
    for (int k = 0; k < U->nu; k++) {
        int i = U->prim[k];
        if (i < 0 || g->dp_rank != 0 || !ck_counts_in_replica(&t->p[i], g)) continue;
        const lethe_param *p = &t->p[i];
        int64_t rpc = zero_rows_per_call(p);
        z->calls[k] = (int)((p->vshape[0] + rpc - 1) / rpc);
        if (p->vshape[1] > width) width = p->vshape[1];
    }
    if (U->nu)
        MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, z->calls, U->nu, MPI_INT, MPI_MAX, g->world));
    z->zeros = lethe_calloc((size_t)width, sizeof(float), "checkpoint zero block");
}

static uint64_t meta_hash(const lethe_ckpt_meta *m)
{
    uint64_t h = ck_mix64((uint64_t)m->step) ^ ck_mix64(ck_mix64((uint64_t)m->epoch));
    h = ck_mix64(h ^ (uint64_t)m->n_cursor);
    for (int i = 0; i < m->n_cursor && i < LETHE_CKPT_CURSOR_MAX; i++)
        h = ck_mix64(h ^ (uint64_t)m->cursor[i]);
    h = ck_mix64(h ^ (uint64_t)m->n_job);
    for (int i = 0; i < m->n_job && i < LETHE_CKPT_JOB_MAX; i++) {
        uint64_t bits;
        memcpy(&bits, &m->job_value[i], sizeof bits);
        h = ck_mix64(h ^ lethe_hash_str(m->job_key[i]) ^ ck_mix64(bits));
    }
    h = ck_mix64(h ^ (uint64_t)(m->moments_zero != 0)); /* steers the writes' calls */
    return ck_mix64(h ^ lethe_hash_str(m->config_json ? m->config_json : ""));
}

/* The job's own named values: /job, one float64 attribute each. */
static void write_job_state(const char *file, hid_t fid, const lethe_ckpt_meta *m)
{
    if (m->n_job <= 0) return;
    hid_t grp;
    H5C(grp = H5Gcreate2(fid, "/job", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
        "checkpoint '%s': group '/job'", file);
    for (int i = 0; i < m->n_job; i++)
        write_attr(file, grp, m->job_key[i], H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, -1,
                   &m->job_value[i]);
    H5C(H5Gclose(grp), "checkpoint '%s': group '/job'", file);
}

int ckpt_save(const char *path, lethe_params *t, const lethe_grid *g,
              const lethe_ckpt_meta *meta_in, char *err, size_t errlen)
{
    params_full_moments(t, g->dp_comm, NULL); /* not a step's traffic */
    lethe_ckpt_meta none;
    memset(&none, 0, sizeof none);
    const lethe_ckpt_meta *meta = meta_in ? meta_in : &none;
    char msg[CK_MSG] = "", tmp[PATH_MAX], h5b[256];
    ck_union U = {0};
    uint64_t *dg = NULL, *rngs = NULL, *mdg = NULL;
    ck_zero z = {0};
    h5_quiet q;
    h5_quiet_on(&q);
    int ok = 1;

    if (strlen(path) + 5 > sizeof tmp) ok = ck_fail(msg, "path too long");
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (ok) ok = ck_validate_table(t, 1, msg);
    if (ok && (meta->n_cursor < 0 || meta->n_cursor > LETHE_CKPT_CURSOR_MAX))
        ok = ck_fail(msg, "loader cursor of %d values, at most %d", meta->n_cursor,
                     LETHE_CKPT_CURSOR_MAX);
    if (ok && (meta->n_job < 0 || meta->n_job > LETHE_CKPT_JOB_MAX))
        ok = ck_fail(msg, "job state of %d values, at most %d", meta->n_job, LETHE_CKPT_JOB_MAX);
    for (int i = 0; ok && i < meta->n_job; i++)
        if (!memchr(meta->job_key[i], 0, LETHE_CKPT_JOB_KEY) || !meta->job_key[i][0] ||
            strchr(meta->job_key[i], '/'))
            ok = ck_fail(msg, "job state value %d has no valid name", i);
    /* what the file will say of itself, checked as ckpt_load checks it */
    lethe_ckpt_meta full = *meta;
    full.layout[0] = g->dp, full.layout[1] = g->pp, full.layout[2] = g->tp;
    full.world_size = g->size;
    snprintf(full.version, sizeof full.version, "%s", LETHE_VERSION);
    if (ok) ok = ck_check_meta(&full, msg);
    if (lethe_agree(g->world, ok, msg, CK_MSG, NULL)) goto out;

    ok = ck_build_union(t, g, &U, msg);
    {
        uint64_t h[4] = {ok ? ck_union_hash(&U) : 0, meta_hash(meta), lethe_hash_str(path),
                         t->mask != NULL};
        int eq[4];
        ck_all_equal(g->world, h, 4, eq);
        if (!eq[0]) ok = ck_fail(msg, "the data-parallel replicas hold different parameter tables");
        if (!eq[1]) ok = ck_fail(msg, "step, epoch, loader cursor or config differ between ranks");
        if (!eq[2]) ok = ck_fail(msg, "the ranks were given different paths");
        if (!eq[3]) ok = ck_fail(msg, "the ranks disagree on writing a WAGLE mask");
    }
    if (lethe_agree(g->world, ok, msg, CK_MSG, NULL)) goto out;

    /* Digests of the dp_rank 0 replica's contents, known on every rank because attribute
     * writes are collective and must carry the same value everywhere. */
    unsigned zero_kinds = meta->moments_zero ? 6u : 0u; /* adam_m, adam_v */
    dg = ck_replica_digests(t, g, &U, CK_KINDS, zero_kinds);
    MPI_CHECK(MPI_Bcast(dg, (CK_KINDS + 1) * U.nu, MPI_UINT64_T, 0, g->dp_comm));
    if (t->mask) mdg = ck_mask_digests(t, g, &U); /* WAGLE (checkpoint_mask.c) */
    rngs = lethe_malloc(sizeof(uint64_t) * (size_t)g->size, "checkpoint RNG states");
    MPI_CHECK(MPI_Allgather(&meta->rng, 1, MPI_UINT64_T, rngs, 1, MPI_UINT64_T, g->world));
    uint64_t mdig = ckpt_meta_digest(&full, rngs);
    if (lethe_agree(g->world, ck_check_coverage(&U, dg, msg), msg, CK_MSG, NULL)) goto out;

    /* The one way a checkpoint's temporary is created (io/h5util.h): exclusively, never
     * through anything planted at tmp or a link at path. */
    hid_t fapl = mpio_fapl(g->world, tmp, 0);
    char se[CK_MSG];
    hid_t fid = h5_create_temp_parallel(path, tmp, g->world, fapl, se, sizeof se);
    H5Pclose(fapl);
    if (fid < 0) {
        ck_fail(msg, "%s", se);
        goto out;
    }

    /* ---- collective section: every rank, every call, same order ---- */
    int layout[3] = {g->dp, g->pp, g->tp}, fv = CK_FORMAT_VERSION, ws = g->size;
    int64_t nt = U.nu;
    write_str_attr(tmp, fid, "format", CK_FORMAT);
    write_attr(tmp, fid, "format_version", H5T_STD_I32LE, H5T_NATIVE_INT, -1, &fv);
    write_str_attr(tmp, fid, "lethe_version", LETHE_VERSION);
    write_attr(tmp, fid, "step", H5T_STD_I64LE, H5T_NATIVE_INT64, -1, &meta->step);
    write_attr(tmp, fid, "epoch", H5T_STD_I64LE, H5T_NATIVE_INT64, -1, &meta->epoch);
    write_attr(tmp, fid, "layout", H5T_STD_I32LE, H5T_NATIVE_INT, 3, layout);
    write_attr(tmp, fid, "world_size", H5T_STD_I32LE, H5T_NATIVE_INT, -1, &ws);
    write_attr(tmp, fid, "n_tensors", H5T_STD_I64LE, H5T_NATIVE_INT64, -1, &nt);
    write_attr(tmp, fid, "loader_cursor", H5T_STD_I64LE, H5T_NATIVE_INT64, meta->n_cursor,
               meta->cursor);
    write_job_state(tmp, fid, meta);
    write_attr(tmp, fid, "meta_digest", H5T_STD_U64LE, H5T_NATIVE_UINT64, -1, &mdig);

    hid_t dxpl, dcpl, grp, sp, ds, ty;
    H5C(dxpl = H5Pcreate(H5P_DATASET_XFER), "checkpoint '%s'", tmp);
    H5C(H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE), "checkpoint '%s'", tmp);
    H5C(dcpl = H5Pcreate(H5P_DATASET_CREATE), "checkpoint '%s'", tmp);
    /* Every element is written, so filling datasets first would write them twice. */
    H5C(H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER), "checkpoint '%s'", tmp);

    H5C(grp = H5Gcreate2(fid, "/meta", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
        "checkpoint '%s': group '/meta'", tmp);
    /* config: one scalar string written by rank 0 */
    const char *cfg = meta->config_json ? meta->config_json : "";
    ty = ck_str_type(tmp, "dataset '/meta/config'", strlen(cfg) + 1);
    H5C(sp = H5Screate(H5S_SCALAR), "checkpoint '%s': dataset '/meta/config'", tmp);
    H5C(ds = H5Dcreate2(grp, "config", ty, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
        "checkpoint '%s': dataset '/meta/config'", tmp);
    if (g->rank != 0) H5C(H5Sselect_none(sp), "checkpoint '%s': dataset '/meta/config'", tmp);
    H5C(H5Dwrite(ds, ty, sp, sp, dxpl, cfg), "checkpoint '%s': dataset '/meta/config'", tmp);
    H5C(H5Dclose(ds), "checkpoint '%s': dataset '/meta/config'", tmp);
    H5C(H5Sclose(sp), "checkpoint '%s': dataset '/meta/config'", tmp);
    H5Tclose(ty);
    /* rng: element r written by world rank r */
    {
        hsize_t n = (hsize_t)g->size, one = 1, at = (hsize_t)g->rank;
        hid_t ms;
        H5C(sp = H5Screate_simple(1, &n, NULL), "checkpoint '%s': dataset '/meta/rng'", tmp);
        H5C(ds = H5Dcreate2(grp, "rng", H5T_STD_U64LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
            "checkpoint '%s': dataset '/meta/rng'", tmp);
        H5C(H5Sselect_hyperslab(sp, H5S_SELECT_SET, &at, NULL, &one, NULL),
            "checkpoint '%s': dataset '/meta/rng'", tmp);
        H5C(ms = H5Screate_simple(1, &one, NULL), "checkpoint '%s': dataset '/meta/rng'", tmp);
        H5C(H5Dwrite(ds, H5T_NATIVE_UINT64, ms, sp, dxpl, &meta->rng),
            "checkpoint '%s': dataset '/meta/rng'", tmp);
        H5C(H5Sclose(ms), "checkpoint '%s': dataset '/meta/rng'", tmp);
        H5C(H5Sclose(sp), "checkpoint '%s': dataset '/meta/rng'", tmp);
        H5C(H5Dclose(ds), "checkpoint '%s': dataset '/meta/rng'", tmp);
    }
    H5C(H5Gclose(grp), "checkpoint '%s': group '/meta'", tmp);

    const float *bufs[CK_KINDS] = {t->data, t->m, t->v};
    if (zero_kinds) zero_plan(&z, t, g, &U);
    int wb = ck_writeback_open(tmp, g->world);
    for (int kind = 0; kind < CK_KINDS; kind++) {
        H5C(grp = H5Gcreate2(fid, ck_group[kind], H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
            "checkpoint '%s': group '%s'", tmp, ck_group[kind]);
        for (int k = 0; k < U.nu; k++) {
            int i = U.prim[k];
            const lethe_param *p = NULL;
            if (i >= 0 && g->dp_rank == 0 && ck_counts_in_replica(&t->p[i], g)) p = &t->p[i];
            const float *b = (zero_kinds >> kind) & 1u ? NULL : p ? bufs[kind] + p->off : bufs[kind];
            write_tensor(tmp, grp, ck_group[kind], &U.u[k], p, b, dg[(size_t)kind * U.nu + k],
                         dcpl, dxpl, &z, k);
            ck_writeback_start(wb);
        }
        H5C(H5Gclose(grp), "checkpoint '%s': group '%s'", tmp, ck_group[kind]);
    }
    if (mdg) ck_mask_write(tmp, fid, t, g, &U, mdg, dcpl, dxpl);
    H5C(H5Pclose(dcpl), "checkpoint '%s'", tmp);
    H5C(H5Pclose(dxpl), "checkpoint '%s'", tmp);
    /* MPI_File_sync on every rank: the data is on storage before the rename publishes
     * it (H5Fclose alone does not sync). */
    H5C(H5Fflush(fid, H5F_SCOPE_GLOBAL), "checkpoint '%s'", tmp);
    ck_writeback_close(wb);
    /* ---- end of the collective section ---- */

    ok = H5Fclose(fid) >= 0;
    if (!ok) ck_fail(msg, "closing '%s' failed: %s", tmp, h5_last_error(h5b, sizeof h5b));
    if (lethe_agree(g->world, ok, msg, CK_MSG, NULL)) {
        if (g->rank == 0) unlink(tmp);
        goto out;
    }
    if (g->rank == 0) {
        /* rename, then sync the folder: the rename itself must survive a crash */
        char se[CK_MSG];
        if (safe_commit(tmp, path, se, sizeof se)) ok = ck_fail(msg, "%s", se);
    }
    lethe_agree(g->world, ok, msg, CK_MSG, NULL);

out:
    free(dg), free(mdg), free(rngs);
    free(z.calls);
    free((void *)z.zeros);
    ck_union_free(&U);
    h5_quiet_off(&q);
    return ck_result(msg, path, err, errlen);
}
