/* io/checkpoint.c — collective HDF5 checkpoints (contract and file layout in checkpoint.h).
 *
 * Structure of save and load: local checks, then agreement (every rank learns the first
 * failing rank's message), then the collective HDF5 section. Inside that section every
 * rank makes the same HDF5 calls in the same order: dataset creation, collective
 * metadata and collective raw-data I/O all hang if one rank skips a call, so a rank with
 * nothing to write or read still joins with an empty (H5Sselect_none) selection, and an
 * HDF5 call that fails there ends the job (lethe_fatal) rather than leave the others
 * waiting. Checks that depend only on the file's metadata (missing dataset, wrong shape
 * or type) give the same result on every rank, so they are collected and agreed on. */
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

#ifndef LETHE_VERSION
#define LETHE_VERSION "unknown"
#endif

#define CK_FORMAT "lethe-checkpoint"
#define CK_FORMAT_VERSION 1
#define CK_MSG 1024 /* messages agreed on travel in buffers of this size */
#define CK_KINDS 3

static const char *const ck_group[CK_KINDS] = {"/params", "/adam_m", "/adam_v"};

/* ---- small helpers --------------------------------------------------------------- */

/* Records the first failure of a phase in msg (CK_MSG bytes); returns 0 (= not ok). */
LETHE_PRINTF(2, 3) static int fail(char *msg, const char *fmt, ...)
{
    if (msg[0]) return 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, CK_MSG, fmt, ap);
    va_end(ap);
    return 0;
}

/* Every rank of comm learns whether all were ok; if not, every rank gets the message of
 * the lowest failing rank in msg. Returns 1 if all were ok. */
static int agree(MPI_Comm comm, int ok, char *msg)
{
    int rank, first;
    MPI_CHECK(MPI_Comm_rank(comm, &rank));
    int mine = ok ? INT_MAX : rank;
    MPI_CHECK(MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, comm));
    if (first == INT_MAX) return 1;
    if (rank == first && !msg[0]) snprintf(msg, CK_MSG, "failed (no message)");
    MPI_CHECK(MPI_Bcast(msg, CK_MSG, MPI_CHAR, first, comm));
    msg[CK_MSG - 1] = 0;
    return 0;
}

/* HDF5 reports into its error stack; lethe reports one line. While a checkpoint call
 * runs, automatic printing is off and the innermost entry of the stack (the most
 * specific: "truncated file: eof = ...") goes into our message. */
typedef struct {
    H5E_auto2_t func;
    void *data;
} ck_quiet;

static void quiet_on(ck_quiet *q)
{
    if (H5Eget_auto2(H5E_DEFAULT, &q->func, &q->data) < 0) q->func = NULL, q->data = NULL;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

static void quiet_off(const ck_quiet *q)
{
    H5Eset_auto2(H5E_DEFAULT, q->func, q->data);
}

static herr_t walk_cb(unsigned n, const H5E_error2_t *e, void *data)
{
    if (n == 0 && e->desc) snprintf((char *)data, 256, "%s", e->desc);
    return 0;
}

/* The innermost HDF5 error message (buf: 256 bytes). */
static const char *h5msg(char *buf)
{
    buf[0] = 0;
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walk_cb, buf);
    if (!buf[0]) snprintf(buf, 256, "HDF5 error (no detail)");
    return buf;
}

/* The HDF5 function named in a stringified call: "ds = H5Dcreate2(grp, ...)" -> "H5Dcreate2". */
static const char *call_name(const char *call, char *buf, size_t len)
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

/* An HDF5 call inside a collective section: failure ends the job (see the top). */
#define H5C(call, ...)                                                                             \
    do {                                                                                           \
        if ((call) < 0) {                                                                          \
            char h5b_[256], fn_[64], what_[PATH_MAX + 512];                                        \
            snprintf(what_, sizeof what_, __VA_ARGS__);                                            \
            lethe_fatal("%s: %s failed: %s", what_, call_name(#call, fn_, sizeof fn_),             \
                        h5msg(h5b_));                                                              \
        }                                                                                          \
    } while (0)

static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

uint64_t ckpt_digest_piece(const float *x, int64_t vrows, int64_t vcols, int64_t ld,
                           int64_t gstart0, int64_t gstart1, int64_t gcols)
{
    uint64_t d = 0;
    for (int64_t i = 0; i < vrows; i++) {
        const float *row = x + i * ld;
        uint64_t flat0 = (uint64_t)((gstart0 + i) * gcols + gstart1);
        for (int64_t j = 0; j < vcols; j++) {
            uint32_t bits;
            memcpy(&bits, &row[j], sizeof bits);
            d += mix64(mix64(flat0 + (uint64_t)j) ^ bits);
        }
    }
    return d;
}

static void shape_str(char *buf, size_t len, int nd, const int64_t *s)
{
    if (nd == 1)
        snprintf(buf, len, "[%lld]", (long long)s[0]);
    else
        snprintf(buf, len, "[%lld,%lld]", (long long)s[0], (long long)s[1]);
}

/* ---- the union of all tables ------------------------------------------------------- */

/* What every rank must know of every tensor: dataset creation is collective, so all
 * ranks create all datasets in one order, including those of other pipeline stages. */
typedef struct {
    char name[LETHE_NAME_MAX];
    int32_t ndim, pad_;
    int64_t gshape[2];
} ck_entry;

typedef struct {
    ck_entry *u; /* nu tensors, in order of first appearance by mp rank (pp, then tp) */
    int nu;
    int *ht; /* open-addressing name -> union index; hcap slots, -1 empty */
    int hcap;
    int *prim; /* nu: this rank's table index for the tensor (an owner copy if it has
                  one), or -1 */
    int *uidx; /* t->n: union index of each table entry */
} ck_union;

static int union_find(const ck_union *U, const char *name)
{
    for (size_t h = lethe_hash_str(name) & (size_t)(U->hcap - 1);;
         h = (h + 1) & (size_t)(U->hcap - 1)) {
        int k = U->ht[h];
        if (k < 0) return -1;
        if (!strcmp(U->u[k].name, name)) return k;
    }
}

static void union_insert(ck_union *U, int k)
{
    size_t h = lethe_hash_str(U->u[k].name) & (size_t)(U->hcap - 1);
    while (U->ht[h] >= 0) h = (h + 1) & (size_t)(U->hcap - 1);
    U->ht[h] = k;
}

static void union_free(ck_union *U)
{
    free(U->u);
    free(U->ht);
    free(U->prim);
    free(U->uidx);
    memset(U, 0, sizeof(*U));
}

/* Local sanity of the table, so that nothing later indexes out of bounds. */
static int validate_table(const lethe_params *t, int need_moments, char *msg)
{
    if (t->n > 0 && !t->data) return fail(msg, "the parameter table has no data buffer");
    if (t->n > 0 && need_moments && (!t->m || !t->v))
        return fail(msg, "the parameter table has no AdamW moment buffers");
    for (int i = 0; i < t->n; i++) {
        const lethe_param *p = &t->p[i];
        if (!memchr(p->name, 0, LETHE_NAME_MAX) || !p->name[0])
            return fail(msg, "parameter %d has an empty or unterminated name", i);
        if (strchr(p->name, '/') || !strcmp(p->name, "."))
            return fail(msg, "tensor name '%s' contains '/' (not allowed in a dataset name)",
                        p->name);
        if (p->ndim != 1 && p->ndim != 2)
            return fail(msg, "tensor '%s': ndim %d, expected 1 or 2", p->name, p->ndim);
        if (p->split < -1 || p->split > 1 || (p->ndim == 1 && p->split == 1))
            return fail(msg, "tensor '%s': split %d is invalid for ndim %d", p->name, p->split,
                        p->ndim);
        if (p->gshape[0] < 1 || p->gshape[1] < 1 || (p->ndim == 1 && p->gshape[1] != 1))
            return fail(msg, "tensor '%s': invalid global shape [%lld,%lld]", p->name,
                        (long long)p->gshape[0], (long long)p->gshape[1]);
        for (int d = 0; d < 2; d++)
            if (p->vshape[d] < 0 || p->vshape[d] > p->lshape[d] || p->gstart[d] < 0 ||
                p->gstart[d] + p->vshape[d] > p->gshape[d])
                return fail(msg,
                            "tensor '%s': local piece (start %lld, valid %lld, allocated %lld) "
                            "lies outside the global extent %lld in dimension %d",
                            p->name, (long long)p->gstart[d], (long long)p->vshape[d],
                            (long long)p->lshape[d], (long long)p->gshape[d], d);
        if (p->numel != (size_t)(p->lshape[0] * p->lshape[1]) || p->off + p->numel > t->total)
            return fail(msg,
                        "tensor '%s': piece of %zu floats at offset %zu exceeds the buffer "
                        "of %zu floats",
                        p->name, p->numel, p->off, t->total);
    }
    return 1;
}

/* Allgathers the names and shapes of the replica's tables over mp_comm and builds their
 * union. Collective over g->mp_comm. Returns 1, or 0 with msg. */
static int build_union(const lethe_params *t, const lethe_grid *g, ck_union *U, char *msg)
{
    memset(U, 0, sizeof(*U));
    int np;
    MPI_CHECK(MPI_Comm_size(g->mp_comm, &np));
    int *counts = lethe_malloc((size_t)np * sizeof(int), "checkpoint table counts");
    int *displs = lethe_malloc((size_t)np * sizeof(int), "checkpoint table offsets");
    MPI_CHECK(MPI_Allgather(&t->n, 1, MPI_INT, counts, 1, MPI_INT, g->mp_comm));
    long long total = 0;
    for (int r = 0; r < np; r++) {
        displs[r] = (int)total;
        total += counts[r];
    }
    if (total > INT_MAX / 2) lethe_fatal("checkpoint: %lld table entries are too many", total);
    ck_entry *mine = lethe_calloc((size_t)t->n, sizeof(ck_entry), "checkpoint table");
    ck_entry *all = lethe_calloc((size_t)total, sizeof(ck_entry), "checkpoint tables");
    for (int i = 0; i < t->n; i++) {
        memcpy(mine[i].name, t->p[i].name, LETHE_NAME_MAX);
        mine[i].ndim = t->p[i].ndim;
        mine[i].gshape[0] = t->p[i].gshape[0];
        mine[i].gshape[1] = t->p[i].gshape[1];
    }
    MPI_Datatype ty;
    MPI_CHECK(MPI_Type_contiguous((int)sizeof(ck_entry), MPI_BYTE, &ty));
    MPI_CHECK(MPI_Type_commit(&ty));
    MPI_CHECK(MPI_Allgatherv(mine, t->n, ty, all, counts, displs, ty, g->mp_comm));
    MPI_CHECK(MPI_Type_free(&ty));
    free(mine);
    free(counts);
    free(displs);

    U->hcap = 16;
    while (U->hcap < 2 * total) U->hcap *= 2;
    U->ht = lethe_malloc((size_t)U->hcap * sizeof(int), "checkpoint name index");
    for (int h = 0; h < U->hcap; h++) U->ht[h] = -1;
    U->u = lethe_calloc((size_t)(total ? total : 1), sizeof(ck_entry), "checkpoint tensors");
    int ok = 1;
    for (long long k = 0; k < total; k++) {
        const ck_entry *e = &all[k];
        int f = union_find(U, e->name);
        if (f < 0) {
            U->u[U->nu] = *e;
            union_insert(U, U->nu++);
        } else if (U->u[f].ndim != e->ndim || U->u[f].gshape[0] != e->gshape[0] ||
                   U->u[f].gshape[1] != e->gshape[1]) {
            char a[64], b[64];
            shape_str(a, sizeof a, U->u[f].ndim, U->u[f].gshape);
            shape_str(b, sizeof b, e->ndim, e->gshape);
            ok = fail(msg, "tensor '%s' has global shape %s on one rank and %s on another", e->name,
                      a, b);
        }
    }
    free(all);

    U->prim = lethe_malloc((size_t)(U->nu ? U->nu : 1) * sizeof(int), "checkpoint pieces");
    U->uidx = lethe_malloc((size_t)(t->n ? t->n : 1) * sizeof(int), "checkpoint pieces");
    for (int k = 0; k < U->nu; k++) U->prim[k] = -1;
    for (int i = 0; i < t->n; i++) {
        int k = union_find(U, t->p[i].name);
        U->uidx[i] = k;
        if (U->prim[k] < 0 || (!t->p[U->prim[k]].owner && t->p[i].owner)) U->prim[k] = i;
    }
    /* Several entries of one name on one rank (an owner and a duplicate) are read once
     * and copied, which needs the same piece. */
    for (int i = 0; i < t->n; i++) {
        const lethe_param *p = &t->p[i], *q = &t->p[U->prim[U->uidx[i]]];
        if (p == q) continue;
        if (p->owner && q->owner)
            ok = fail(msg, "tensor '%s' has two owner copies on one rank", p->name);
        for (int d = 0; d < 2; d++)
            if (p->gstart[d] != q->gstart[d] || p->vshape[d] != q->vshape[d] ||
                p->lshape[d] != q->lshape[d])
                ok = fail(msg, "tensor '%s' has two different pieces on one rank", p->name);
    }
    return ok;
}

static uint64_t union_hash(const ck_union *U)
{
    uint64_t h = mix64((uint64_t)U->nu);
    for (int k = 0; k < U->nu; k++) {
        h = mix64(h ^ lethe_hash_str(U->u[k].name));
        h = mix64(h ^ (uint64_t)U->u[k].ndim);
        h = mix64(h ^ (uint64_t)U->u[k].gshape[0]);
        h = mix64(h ^ (uint64_t)U->u[k].gshape[1]);
    }
    return h;
}

/* eq[i] = 1 if all ranks of comm hold the same h[i] (n <= 4): max(h) == min(h), with
 * min(h) = ~max(~h), in one reduction. Arguments that steer the sequence of collective
 * calls (tables, path, flags) must agree, or ranks would part ways and hang. */
static void all_equal(MPI_Comm comm, const uint64_t *h, int n, int *eq)
{
    uint64_t in[8], out[8];
    for (int i = 0; i < n; i++) in[i] = h[i], in[n + i] = ~h[i];
    MPI_CHECK(MPI_Allreduce(in, out, 2 * n, MPI_UINT64_T, MPI_MAX, comm));
    for (int i = 0; i < n; i++) eq[i] = out[i] == ~out[n + i];
}

/* The copy whose elements count in this replica's digest: an owner, and for tensors
 * replicated over tp only tp_rank 0's. */
static int counts_in_replica(const lethe_param *p, const lethe_grid *g)
{
    return p->owner && (p->split >= 0 || g->tp_rank == 0);
}

/* Per tensor and kind, the digest over this replica (summed over mp_comm), and the number
 * of elements the replica's pieces cover: out[kind * nu + k], out[CK_KINDS * nu + k]. */
static uint64_t *replica_digests(const lethe_params *t, const lethe_grid *g, const ck_union *U,
                                 int nkinds)
{
    size_t n = (size_t)(CK_KINDS + 1) * (size_t)U->nu;
    uint64_t *d = lethe_calloc(n ? n : 1, sizeof(uint64_t), "checkpoint digests");
    const float *buf[CK_KINDS] = {t->data, t->m, t->v};
    for (int k = 0; k < U->nu; k++) {
        int i = U->prim[k];
        if (i < 0 || !counts_in_replica(&t->p[i], g)) continue;
        const lethe_param *p = &t->p[i];
        for (int kind = 0; kind < nkinds; kind++)
            d[(size_t)kind * U->nu + k] =
                ckpt_digest_piece(buf[kind] + p->off, p->vshape[0], p->vshape[1], p->lshape[1],
                                  p->gstart[0], p->gstart[1], p->gshape[1]);
        d[(size_t)CK_KINDS * U->nu + k] = (uint64_t)(p->vshape[0] * p->vshape[1]);
    }
    if (n) MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, d, (int)n, MPI_UINT64_T, MPI_SUM, g->mp_comm));
    return d;
}

static int check_coverage(const ck_union *U, const uint64_t *d, char *msg)
{
    for (int k = 0; k < U->nu; k++) {
        uint64_t want = (uint64_t)(U->u[k].gshape[0] * U->u[k].gshape[1]);
        uint64_t got = d[(size_t)CK_KINDS * U->nu + k];
        if (got != want)
            return fail(msg,
                        "tensor '%s': the owner pieces of one replica cover %llu of its %llu "
                        "elements (each element needs exactly one owner)",
                        U->u[k].name, (unsigned long long)got, (unsigned long long)want);
    }
    return 1;
}

/* ---- hyperslab selection ------------------------------------------------------------ */

/* Selects piece p (NULL or empty: nothing) in the file space fs and returns a memory
 * space for the piece's buffer with the matching selection. -1 on HDF5 failure. */
static hid_t select_piece(hid_t fs, int nd, const lethe_param *p)
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
static hid_t str_type(const char *file, const char *what, size_t len)
{
    hid_t ty;
    H5C(ty = H5Tcopy(H5T_C_S1), "checkpoint '%s': %s", file, what);
    H5C(H5Tset_size(ty, len ? len : 1), "checkpoint '%s': %s", file, what);
    H5C(H5Tset_strpad(ty, H5T_STR_NULLTERM), "checkpoint '%s': %s", file, what);
    return ty;
}

static void write_str_attr(const char *file, hid_t obj, const char *name, const char *s)
{
    hid_t ty = str_type(file, name, strlen(s) + 1);
    write_attr(file, obj, name, ty, ty, -1, s);
    H5Tclose(ty);
}

/* Reads attribute `name` of n elements (n < 0: scalar) into buf. Metadata only, so
 * the verdict is the same on every rank. Returns 1, or 0 with msg. */
static int read_attr(hid_t obj, const char *where, const char *name, hid_t mtype, int n, void *buf,
                     char *msg)
{
    char h5b[256];
    htri_t ex = H5Aexists(obj, name);
    if (ex <= 0) return fail(msg, "%s has no attribute '%s'", where, name);
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0) return fail(msg, "%s: cannot open attribute '%s': %s", where, name, h5msg(h5b));
    int ok = 1;
    hid_t sp = H5Aget_space(a);
    hssize_t np = sp >= 0 ? H5Sget_select_npoints(sp) : -1;
    if (np != (n < 0 ? 1 : n))
        ok = fail(msg, "%s: attribute '%s' has %lld elements, expected %d", where, name,
                  (long long)np, n < 0 ? 1 : n);
    else if (H5Aread(a, mtype, buf) < 0)
        ok = fail(msg, "%s: cannot read attribute '%s': %s", where, name, h5msg(h5b));
    if (sp >= 0) H5Sclose(sp);
    H5Aclose(a);
    return ok;
}

/* A fixed-length string attribute into buf (len bytes, truncated, terminated). */
static int read_str_attr(hid_t obj, const char *where, const char *name, char *buf, size_t len,
                         char *msg)
{
    char h5b[256];
    buf[0] = 0;
    if (H5Aexists(obj, name) <= 0) return fail(msg, "%s has no attribute '%s'", where, name);
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0) return fail(msg, "%s: cannot open attribute '%s': %s", where, name, h5msg(h5b));
    int ok = 1;
    hid_t ft = H5Aget_type(a);
    size_t sz =
        ft >= 0 && H5Tget_class(ft) == H5T_STRING && !H5Tis_variable_str(ft) ? H5Tget_size(ft) : 0;
    if (!sz) {
        ok = fail(msg, "%s: attribute '%s' is not a fixed-length string", where, name);
    } else {
        char *tmp = lethe_calloc(sz + 1, 1, "checkpoint attribute");
        hid_t mt = H5Tcopy(H5T_C_S1);
        if (mt < 0 || H5Tset_size(mt, sz) < 0 || H5Aread(a, mt, tmp) < 0)
            ok = fail(msg, "%s: cannot read attribute '%s': %s", where, name, h5msg(h5b));
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

static hid_t mpio_fapl(MPI_Comm comm, const char *file)
{
    hid_t fapl;
    H5C(fapl = H5Pcreate(H5P_FILE_ACCESS), "checkpoint '%s'", file);
    H5C(H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL), "checkpoint '%s'", file);
    /* Metadata read once by rank 0 and broadcast, written collectively: fewer small
     * requests on a parallel file system, and identical metadata verdicts everywhere. */
    H5C(H5Pset_all_coll_metadata_ops(fapl, 1), "checkpoint '%s'", file);
    H5C(H5Pset_coll_metadata_write(fapl, 1), "checkpoint '%s'", file);
    return fapl;
}

/* Opens path read-only over comm. Rank 0 first checks what a user most often gets wrong
 * (no such file, not HDF5) and names it plainly; the open itself catches the rest
 * (truncated, corrupt). Returns the file id, or -1 with msg agreed on every rank. */
static hid_t open_for_read(const char *path, MPI_Comm comm, char *msg)
{
    int rank, ok = 1;
    char h5b[256];
    MPI_CHECK(MPI_Comm_rank(comm, &rank));
    if (rank == 0) {
        struct stat st;
        if (stat(path, &st) != 0)
            ok = fail(msg, "cannot open: %s", strerror(errno));
        else if (!S_ISREG(st.st_mode))
            ok = fail(msg, "not a regular file");
        else if (access(path, R_OK) != 0)
            ok = fail(msg, "cannot read: %s", strerror(errno));
        else if (H5Fis_hdf5(path) <= 0)
            ok = fail(msg, "not an HDF5 file");
    }
    if (!agree(comm, ok, msg)) return -1;
    hid_t fapl = mpio_fapl(comm, path);
    hid_t fid = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    if (fid < 0) fail(msg, "cannot open as HDF5: %s", h5msg(h5b));
    H5Pclose(fapl);
    int in[2] = {fid >= 0, -(fid >= 0)}, out[2];
    MPI_CHECK(MPI_Allreduce(in, out, 2, MPI_INT, MPI_MAX, comm));
    /* A file open on some ranks only cannot be closed without them: end the job. */
    if (out[0] != -out[1]) lethe_fatal("checkpoint '%s': opened on some ranks only", path);
    if (!agree(comm, fid >= 0, msg)) return -1;
    char fmt[64], why[CK_MSG] = "";
    int ver = 0;
    ok = read_str_attr(fid, "the file", "format", fmt, sizeof fmt, why);
    if (ok && strcmp(fmt, CK_FORMAT))
        ok = fail(why, "its format is '%s', expected '%s'", fmt, CK_FORMAT);
    if (ok) ok = read_attr(fid, "the file", "format_version", H5T_NATIVE_INT, -1, &ver, why);
    if (ok && ver != CK_FORMAT_VERSION)
        ok = fail(why, "format_version %d, this lethe reads %d", ver, CK_FORMAT_VERSION);
    if (!ok) fail(msg, "not a lethe checkpoint (%.900s)", why);
    if (!agree(comm, ok, msg)) {
        H5Fclose(fid);
        return -1;
    }
    return fid;
}

/* ---- save ---------------------------------------------------------------------------- */

static void write_tensor(const char *file, hid_t grp, const char *gname, const ck_entry *e,
                         const lethe_param *p, const float *buf, uint64_t digest, hid_t dcpl,
                         hid_t dxpl)
{
    hsize_t dims[2] = {(hsize_t)e->gshape[0], (hsize_t)e->gshape[1]};
    hid_t fs, ds, ms;
    H5C(fs = H5Screate_simple(e->ndim, dims, NULL), "checkpoint '%s': dataset '%s/%s'", file, gname,
        e->name);
    H5C(ds = H5Dcreate2(grp, e->name, H5T_IEEE_F32LE, fs, H5P_DEFAULT, dcpl, H5P_DEFAULT),
        "checkpoint '%s': dataset '%s/%s'", file, gname, e->name);
    H5C(ms = select_piece(fs, e->ndim, p), "checkpoint '%s': dataset '%s/%s'", file, gname,
        e->name);
    H5C(H5Dwrite(ds, H5T_NATIVE_FLOAT, ms, fs, dxpl, buf), "checkpoint '%s': dataset '%s/%s'", file,
        gname, e->name);
    write_attr(file, ds, "digest", H5T_STD_U64LE, H5T_NATIVE_UINT64, -1, &digest);
    H5C(H5Sclose(ms), "checkpoint '%s': dataset '%s/%s'", file, gname, e->name);
    H5C(H5Sclose(fs), "checkpoint '%s': dataset '%s/%s'", file, gname, e->name);
    H5C(H5Dclose(ds), "checkpoint '%s': dataset '%s/%s'", file, gname, e->name);
}

static uint64_t meta_hash(const lethe_ckpt_meta *m)
{
    uint64_t h = mix64((uint64_t)m->step) ^ mix64(mix64((uint64_t)m->epoch));
    h = mix64(h ^ (uint64_t)m->n_cursor);
    for (int i = 0; i < m->n_cursor && i < LETHE_CKPT_CURSOR_MAX; i++)
        h = mix64(h ^ (uint64_t)m->cursor[i]);
    return mix64(h ^ lethe_hash_str(m->config_json ? m->config_json : ""));
}

int ckpt_save(const char *path, const lethe_params *t, const lethe_grid *g,
              const lethe_ckpt_meta *meta_in, char *err, size_t errlen)
{
    lethe_ckpt_meta none;
    memset(&none, 0, sizeof none);
    const lethe_ckpt_meta *meta = meta_in ? meta_in : &none;
    char msg[CK_MSG] = "", tmp[PATH_MAX], h5b[256];
    ck_union U = {0};
    uint64_t *dg = NULL;
    ck_quiet q;
    quiet_on(&q);
    int ok = 1;

    if (strlen(path) + 5 > sizeof tmp) ok = fail(msg, "path too long");
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (ok) ok = validate_table(t, 1, msg);
    if (ok && (meta->n_cursor < 0 || meta->n_cursor > LETHE_CKPT_CURSOR_MAX))
        ok = fail(msg, "loader cursor of %d values, at most %d", meta->n_cursor,
                  LETHE_CKPT_CURSOR_MAX);
    if (!agree(g->world, ok, msg)) goto out;

    ok = build_union(t, g, &U, msg);
    {
        uint64_t h[3] = {ok ? union_hash(&U) : 0, meta_hash(meta), lethe_hash_str(path)};
        int eq[3];
        all_equal(g->world, h, 3, eq);
        if (!eq[0]) ok = fail(msg, "the data-parallel replicas hold different parameter tables");
        if (!eq[1]) ok = fail(msg, "step, epoch, loader cursor or config differ between ranks");
        if (!eq[2]) ok = fail(msg, "the ranks were given different paths");
    }
    if (!agree(g->world, ok, msg)) goto out;

    /* Digests of the dp_rank 0 replica's contents, known on every rank because attribute
     * writes are collective and must carry the same value everywhere. */
    dg = replica_digests(t, g, &U, CK_KINDS);
    MPI_CHECK(MPI_Bcast(dg, (CK_KINDS + 1) * U.nu, MPI_UINT64_T, 0, g->dp_comm));
    if (!agree(g->world, check_coverage(&U, dg, msg), msg)) goto out;

    /* Rank 0 creates the temporary file with plain POSIX first: the errno of a missing
     * or read-only directory says more than MPI-IO's error class. */
    if (g->rank == 0) {
        /* never through a symbolic link planted at the temporary name */
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0666);
        if (fd < 0 && errno == ELOOP)
            ok = fail(msg, "cannot create '%s': it is a symbolic link (remove it)", tmp);
        else if (fd < 0)
            ok = fail(msg, "cannot create '%s': %s", tmp, strerror(errno));
        else
            close(fd);
    }
    if (!agree(g->world, ok, msg)) goto out;

    hid_t fapl = mpio_fapl(g->world, tmp);
    hid_t fid = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    if (fid < 0) fail(msg, "cannot create '%s' as HDF5: %s", tmp, h5msg(h5b));
    H5Pclose(fapl);
    {
        int in[2] = {fid >= 0, -(fid >= 0)}, outv[2];
        MPI_CHECK(MPI_Allreduce(in, outv, 2, MPI_INT, MPI_MAX, g->world));
        if (outv[0] != -outv[1]) lethe_fatal("checkpoint '%s': created on some ranks only", tmp);
    }
    if (!agree(g->world, fid >= 0, msg)) {
        if (g->rank == 0) unlink(tmp);
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
    ty = str_type(tmp, "dataset '/meta/config'", strlen(cfg) + 1);
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
    for (int kind = 0; kind < CK_KINDS; kind++) {
        H5C(grp = H5Gcreate2(fid, ck_group[kind], H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
            "checkpoint '%s': group '%s'", tmp, ck_group[kind]);
        for (int k = 0; k < U.nu; k++) {
            int i = U.prim[k];
            const lethe_param *p = NULL;
            if (i >= 0 && g->dp_rank == 0 && counts_in_replica(&t->p[i], g)) p = &t->p[i];
            write_tensor(tmp, grp, ck_group[kind], &U.u[k], p, p ? bufs[kind] + p->off : bufs[kind],
                         dg[(size_t)kind * U.nu + k], dcpl, dxpl);
        }
        H5C(H5Gclose(grp), "checkpoint '%s': group '%s'", tmp, ck_group[kind]);
    }
    H5C(H5Pclose(dcpl), "checkpoint '%s'", tmp);
    H5C(H5Pclose(dxpl), "checkpoint '%s'", tmp);
    /* MPI_File_sync on every rank: the data is on storage before the rename publishes
     * it (H5Fclose alone does not sync). */
    H5C(H5Fflush(fid, H5F_SCOPE_GLOBAL), "checkpoint '%s'", tmp);
    /* ---- end of the collective section ---- */

    ok = H5Fclose(fid) >= 0;
    if (!ok) fail(msg, "closing '%s' failed: %s", tmp, h5msg(h5b));
    if (!agree(g->world, ok, msg)) {
        if (g->rank == 0) unlink(tmp);
        goto out;
    }
    if (g->rank == 0) {
        if (rename(tmp, path) != 0) {
            ok = fail(msg, "renaming '%s' to '%s' failed: %s", tmp, path, strerror(errno));
            unlink(tmp);
        } else {
            /* The rename itself must survive a crash: sync the directory. */
            char dir[PATH_MAX];
            snprintf(dir, sizeof dir, "%s", path);
            char *slash = strrchr(dir, '/');
            if (!slash)
                snprintf(dir, sizeof dir, ".");
            else if (slash == dir)
                dir[1] = 0;
            else
                *slash = 0;
            int fd = open(dir, O_RDONLY | O_DIRECTORY);
            if (fd < 0 || fsync(fd) != 0)
                ok = fail(msg, "syncing directory '%s' failed: %s", dir, strerror(errno));
            if (fd >= 0) close(fd);
        }
    }
    agree(g->world, ok, msg);

out:
    free(dg);
    union_free(&U);
    quiet_off(&q);
    if (msg[0]) {
        snprintf(err, errlen, "checkpoint '%s': %s", path, msg);
        return -1;
    }
    return 0;
}

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

/* Opens gname/name and checks type and shape against e (e->ndim == 0: takes a 1-D or
 * 2-D shape from the file into e); reads its digest. Metadata only. Returns the dataset
 * id, or -1 with msg. */
static hid_t open_tensor(hid_t fid, const char *gname, ck_entry *e, uint64_t *digest, char *msg)
{
    char dpath[LETHE_NAME_MAX + 16], where[LETHE_NAME_MAX + 32], h5b[256], a[64], b[64];
    snprintf(dpath, sizeof dpath, "%s/%s", gname, e->name);
    snprintf(where, sizeof where, "dataset '%s'", dpath);
    htri_t ex = H5Lexists(fid, dpath, H5P_DEFAULT);
    if (ex == 0) return fail(msg, "dataset '%s' is missing", dpath), -1;
    if (ex < 0) return fail(msg, "dataset '%s': cannot look it up: %s", dpath, h5msg(h5b)), -1;
    hid_t ds = H5Dopen2(fid, dpath, H5P_DEFAULT);
    if (ds < 0) return fail(msg, "dataset '%s': cannot open: %s", dpath, h5msg(h5b)), -1;
    int ok = 1;
    hid_t ty = H5Dget_type(ds), sp = H5Dget_space(ds);
    if (ty < 0 || sp < 0) {
        ok = fail(msg, "dataset '%s': cannot read its type or shape: %s", dpath, h5msg(h5b));
    } else if (H5Tget_class(ty) != H5T_FLOAT || H5Tget_size(ty) != 4) {
        ok = fail(msg, "dataset '%s' has type %s, expected float32", dpath,
                  type_str(ty, a, sizeof a));
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
                shape_str(s, sizeof s, nd, got);
                snprintf(a, sizeof a, "%s", s);
            }
            shape_str(b, sizeof b, e->ndim, e->gshape);
            ok = fail(msg, "dataset '%s' has shape %s, expected %s", dpath, a, b);
        } else {
            ok = read_attr(ds, where, "digest", H5T_NATIVE_UINT64, -1, digest, msg);
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
    H5C(ms = select_piece(fs, e->ndim, p), "checkpoint '%s': dataset '%s/%s'", file, gname,
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

int ckpt_load(const char *path, lethe_params *t, const lethe_grid *g, lethe_ckpt_meta *meta,
              int load_optimizer, char *err, size_t errlen)
{
    char msg[CK_MSG] = "";
    ck_union U = {0};
    uint64_t *dg = NULL, *stored = NULL;
    hid_t *dsets = NULL, fid = -1;
    int nkinds = load_optimizer ? CK_KINDS : 1;
    ck_quiet q;
    quiet_on(&q);

    if (!agree(g->world, validate_table(t, load_optimizer, msg), msg)) goto out;
    int ok = build_union(t, g, &U, msg);
    {
        uint64_t h[3] = {ok ? union_hash(&U) : 0, lethe_hash_str(path), (uint64_t)nkinds};
        int eq[3];
        all_equal(g->world, h, 3, eq);
        if (!eq[0]) ok = fail(msg, "the data-parallel replicas hold different parameter tables");
        if (!eq[1]) ok = fail(msg, "the ranks were given different paths");
        if (!eq[2]) ok = fail(msg, "the ranks disagree on loading the optimizer state");
    }
    if (!agree(g->world, ok, msg)) goto out;
    /* The load layout must cover every tensor too, or the digest check below could not
     * tell a bad file from a bad table. */
    dg = replica_digests(t, g, &U, 0);
    if (!agree(g->world, check_coverage(&U, dg, msg), msg)) goto out;
    free(dg);
    dg = NULL;

    if ((fid = open_for_read(path, g->world, msg)) < 0) goto out;

    /* Metadata phase: identical calls and verdicts on every rank. */
    lethe_ckpt_meta mm;
    memset(&mm, 0, sizeof mm);
    ok = read_str_attr(fid, "the file", "lethe_version", mm.version, sizeof mm.version, msg);
    ok = ok && read_attr(fid, "the file", "step", H5T_NATIVE_INT64, -1, &mm.step, msg);
    ok = ok && read_attr(fid, "the file", "epoch", H5T_NATIVE_INT64, -1, &mm.epoch, msg);
    ok = ok && read_attr(fid, "the file", "layout", H5T_NATIVE_INT, 3, mm.layout, msg);
    ok = ok && read_attr(fid, "the file", "world_size", H5T_NATIVE_INT, -1, &mm.world_size, msg);
    if (ok) {
        hid_t a = H5Aopen(fid, "loader_cursor", H5P_DEFAULT), sp = -1;
        hssize_t n = -1;
        if (a >= 0 && (sp = H5Aget_space(a)) >= 0)
            n = H5Sget_simple_extent_type(sp) == H5S_NULL ? 0 : H5Sget_simple_extent_npoints(sp);
        if (n < 0 || n > LETHE_CKPT_CURSOR_MAX)
            ok = fail(msg, "attribute 'loader_cursor' is missing or longer than %d",
                      LETHE_CKPT_CURSOR_MAX);
        else if (n > 0 && H5Aread(a, H5T_NATIVE_INT64, mm.cursor) < 0)
            ok = fail(msg, "cannot read attribute 'loader_cursor'");
        mm.n_cursor = (int)n;
        if (sp >= 0) H5Sclose(sp);
        if (a >= 0) H5Aclose(a);
    }
    if (ok && mm.world_size < 1) ok = fail(msg, "world_size %d is invalid", mm.world_size);
    hid_t cfg_ds = -1, rng_ds = -1;
    size_t cfg_len = 0;
    if (ok) {
        cfg_ds = H5Lexists(fid, "/meta", H5P_DEFAULT) > 0 &&
                         H5Lexists(fid, "/meta/config", H5P_DEFAULT) > 0
                     ? H5Dopen2(fid, "/meta/config", H5P_DEFAULT)
                     : -1;
        hid_t ty = cfg_ds >= 0 ? H5Dget_type(cfg_ds) : -1;
        if (ty >= 0 && H5Tget_class(ty) == H5T_STRING && !H5Tis_variable_str(ty))
            cfg_len = H5Tget_size(ty);
        if (ty >= 0) H5Tclose(ty);
        if (!cfg_len) ok = fail(msg, "dataset '/meta/config' is missing or not a string");
    }
    if (ok) {
        rng_ds = H5Lexists(fid, "/meta/rng", H5P_DEFAULT) > 0
                     ? H5Dopen2(fid, "/meta/rng", H5P_DEFAULT)
                     : -1;
        hid_t sp = rng_ds >= 0 ? H5Dget_space(rng_ds) : -1;
        if (sp < 0 || H5Sget_simple_extent_npoints(sp) != mm.world_size)
            ok = fail(msg, "dataset '/meta/rng' is missing or does not hold %d states",
                      mm.world_size);
        if (sp >= 0) H5Sclose(sp);
    }
    for (int kind = 1; ok && kind < nkinds; kind++)
        if (H5Lexists(fid, ck_group[kind], H5P_DEFAULT) <= 0)
            ok = fail(msg, "holds no optimizer state (group '%s' is missing)", ck_group[kind]);
    if (ok && H5Lexists(fid, ck_group[0], H5P_DEFAULT) <= 0)
        ok = fail(msg, "group '%s' is missing", ck_group[0]);
    size_t nds = (size_t)nkinds * (size_t)U.nu;
    dsets = lethe_malloc((nds ? nds : 1) * sizeof(hid_t), "checkpoint datasets");
    stored = lethe_calloc(nds ? nds : 1, sizeof(uint64_t), "checkpoint digests");
    for (size_t k = 0; k < nds; k++) dsets[k] = -1;
    for (int kind = 0; ok && kind < nkinds; kind++)
        for (int k = 0; k < U.nu; k++) {
            size_t at = (size_t)kind * U.nu + k;
            dsets[at] = open_tensor(fid, ck_group[kind], &U.u[k], &stored[at], msg);
            if (dsets[at] < 0) ok = 0;
        }
    if (!agree(g->world, ok, msg)) goto close;

    /* Data phase: every rank joins every read; every replica reads its pieces. */
    hid_t dxpl;
    H5C(dxpl = H5Pcreate(H5P_DATASET_XFER), "checkpoint '%s'", path);
    H5C(H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE), "checkpoint '%s'", path);
    float *bufs[CK_KINDS] = {t->data, t->m, t->v};
    for (int kind = 0; kind < nkinds; kind++)
        for (int k = 0; k < U.nu; k++) {
            int i = U.prim[k];
            const lethe_param *p = i >= 0 ? &t->p[i] : NULL;
            read_tensor(path, dsets[(size_t)kind * U.nu + k], ck_group[kind], &U.u[k], p,
                        p ? bufs[kind] + p->off : bufs[kind], dxpl);
        }
    {
        char *cfg = lethe_calloc(cfg_len + 1, 1, "checkpoint config");
        hid_t ty = str_type(path, "dataset '/meta/config'", cfg_len), sp;
        H5C(sp = H5Dget_space(cfg_ds), "checkpoint '%s': dataset '/meta/config'", path);
        H5C(H5Dread(cfg_ds, ty, sp, sp, dxpl, cfg), "checkpoint '%s': dataset '/meta/config'",
            path);
        H5Sclose(sp);
        H5Tclose(ty);
        mm.config_json = cfg;
        /* Per-rank RNG states only mean something for the same number of ranks. */
        hsize_t one = 1, at = (hsize_t)g->rank;
        hid_t ms;
        int same = mm.world_size == g->size;
        H5C(sp = H5Dget_space(rng_ds), "checkpoint '%s': dataset '/meta/rng'", path);
        H5C(ms = H5Screate_simple(1, &one, NULL), "checkpoint '%s': dataset '/meta/rng'", path);
        if (same)
            H5C(H5Sselect_hyperslab(sp, H5S_SELECT_SET, &at, NULL, &one, NULL),
                "checkpoint '%s': dataset '/meta/rng'", path);
        else {
            H5C(H5Sselect_none(sp), "checkpoint '%s': dataset '/meta/rng'", path);
            H5C(H5Sselect_none(ms), "checkpoint '%s': dataset '/meta/rng'", path);
        }
        uint64_t rng = meta ? meta->rng : 0;
        H5C(H5Dread(rng_ds, H5T_NATIVE_UINT64, ms, sp, dxpl, &rng),
            "checkpoint '%s': dataset '/meta/rng'", path);
        H5Sclose(ms);
        H5Sclose(sp);
        mm.rng = rng;
        mm.rng_restored = same;
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

    /* Each replica checks what it read itself. */
    dg = replica_digests(t, g, &U, nkinds);
    for (int kind = 0; ok && kind < nkinds; kind++)
        for (int k = 0; ok && k < U.nu; k++) {
            size_t at = (size_t)kind * U.nu + k;
            if (dg[at] != stored[at])
                ok = fail(msg,
                          "dataset '%s/%s': digest mismatch (stored %016llx, read %016llx): "
                          "the file is corrupt",
                          ck_group[kind], U.u[k].name, (unsigned long long)stored[at],
                          (unsigned long long)dg[at]);
        }
    if (ok && meta) {
        uint64_t keep_rng = meta->rng;
        *meta = mm;
        if (!mm.rng_restored) meta->rng = keep_rng;
        mm.config_json = NULL; /* now owned by meta */
    }
    free(mm.config_json);

close:
    if (dsets)
        for (size_t k = 0; k < nds; k++)
            if (dsets[k] >= 0) H5Dclose(dsets[k]);
    if (cfg_ds >= 0) H5Dclose(cfg_ds);
    if (rng_ds >= 0) H5Dclose(rng_ds);
    {
        char h5b[256];
        int cok = H5Fclose(fid) >= 0;
        if (!cok) fail(msg, "closing failed: %s", h5msg(h5b));
        ok = ok && cok;
    }
    agree(g->world, ok && !msg[0], msg);

out:
    free(dsets);
    free(stored);
    free(dg);
    union_free(&U);
    quiet_off(&q);
    if (msg[0]) {
        snprintf(err, errlen, "checkpoint '%s': %s", path, msg);
        return -1;
    }
    return 0;
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

int ckpt_verify(const char *path, MPI_Comm comm, int64_t *n_checked, char *err, size_t errlen)
{
    char msg[CK_MSG] = "", h5b[256];
    int rank, size, ok = 1;
    int64_t checked = 0;
    MPI_CHECK(MPI_Comm_rank(comm, &rank));
    MPI_CHECK(MPI_Comm_size(comm, &size));
    ck_quiet q;
    quiet_on(&q);
    uint64_t h = lethe_hash_str(path);
    int eq;
    all_equal(comm, &h, 1, &eq);
    hid_t fid = -1;
    if (!agree(comm, eq || fail(msg, "the ranks were given different paths"), msg)) goto out;
    fid = open_for_read(path, comm, msg);
    if (fid < 0) goto out;
    hid_t dxpl;
    H5C(dxpl = H5Pcreate(H5P_DATASET_XFER), "checkpoint '%s'", path);
    H5C(H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE), "checkpoint '%s'", path);
    /* Rows in blocks of about 4 MiB per rank per read, so memory stays small. */
    const int64_t block_floats = 1 << 20;
    float *buf = NULL;
    size_t buf_cap = 0;
    name_list L[CK_KINDS];
    memset(L, 0, sizeof L);
    for (int kind = 0; ok && kind < CK_KINDS; kind++) {
        if (H5Lexists(fid, ck_group[kind], H5P_DEFAULT) <= 0) {
            if (kind == 0) ok = fail(msg, "group '%s' is missing", ck_group[0]);
            continue;
        }
        hid_t grp = H5Gopen2(fid, ck_group[kind], H5P_DEFAULT);
        if (grp < 0 || H5Literate(grp, H5_INDEX_NAME, H5_ITER_INC, NULL, list_cb, &L[kind]) < 0)
            ok = fail(msg, "cannot list group '%s': %s", ck_group[kind], h5msg(h5b));
        if (grp >= 0) H5Gclose(grp);
    }
    int nall = L[0].n + L[1].n + L[2].n;
    uint64_t *stored = lethe_calloc((size_t)(nall ? nall : 1), sizeof(uint64_t), "digests");
    uint64_t *dig = lethe_calloc((size_t)(nall ? nall : 1), sizeof(uint64_t), "digests");
    /* Identical calls on every rank (metadata decides every branch); one reduction at the
     * end for all digests. */
    for (int kind = 0, at = 0; ok && kind < CK_KINDS; kind++)
        for (int k = 0; ok && k < L[kind].n; k++, at++) {
            ck_entry e;
            memset(&e, 0, sizeof e);
            snprintf(e.name, sizeof e.name, "%s", L[kind].names[k]);
            hid_t ds = open_tensor(fid, ck_group[kind], &e, &stored[at], msg);
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
                read_tensor(path, ds, ck_group[kind], &e, &piece, buf, dxpl);
                dig[at] += ckpt_digest_piece(buf, piece.vshape[0], cols, cols, a, 0, cols);
            }
            H5C(H5Dclose(ds), "checkpoint '%s': dataset '%s/%s'", path, ck_group[kind], e.name);
        }
    if (ok && nall) MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, dig, nall, MPI_UINT64_T, MPI_SUM, comm));
    for (int kind = 0, at = 0; ok && kind < CK_KINDS; kind++)
        for (int k = 0; ok && k < L[kind].n; k++, at++) {
            if (dig[at] != stored[at])
                ok = fail(msg,
                          "dataset '%s/%s': digest mismatch (stored %016llx, read %016llx): the "
                          "file is corrupt",
                          ck_group[kind], L[kind].names[k], (unsigned long long)stored[at],
                          (unsigned long long)dig[at]);
            checked++;
        }
    for (int kind = 0; kind < CK_KINDS; kind++) free(L[kind].names);
    free(stored);
    free(dig);
    free(buf);
    H5Pclose(dxpl);
    if (H5Fclose(fid) < 0) ok = fail(msg, "closing failed: %s", h5msg(h5b));
    agree(comm, ok, msg);
out:
    quiet_off(&q);
    if (n_checked) *n_checked = checked;
    if (msg[0]) {
        snprintf(err, errlen, "checkpoint '%s': %s", path, msg);
        return -1;
    }
    return 0;
}
