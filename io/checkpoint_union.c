/* io/checkpoint_union.c — the union of every rank's tensor table (names, shapes, which
 * rank holds which piece), its hash for the agreement check, and the per-replica
 * digests that a checkpoint stores and a load verifies. */
#define _XOPEN_SOURCE 700
#include <stdlib.h>
#include <string.h>

#include "checkpoint_impl.h"

/* ---- the union of all tables ------------------------------------------------------- */

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

void ck_union_free(ck_union *U)
{
    free(U->u);
    free(U->ht);
    free(U->prim);
    free(U->uidx);
    memset(U, 0, sizeof(*U));
}

/* Local sanity of the table, so that nothing later indexes out of bounds. */
int ck_validate_table(const lethe_params *t, int need_moments, char *msg)
{
    if (t->n > 0 && !t->data) return ck_fail(msg, "the parameter table has no data buffer");
    if (t->n > 0 && need_moments && (!t->m || !t->v))
        return ck_fail(msg, "the parameter table has no AdamW moment buffers");
    for (int i = 0; i < t->n; i++) {
        const lethe_param *p = &t->p[i];
        if (!memchr(p->name, 0, LETHE_NAME_MAX) || !p->name[0])
            return ck_fail(msg, "parameter %d has an empty or unterminated name", i);
        if (strchr(p->name, '/') || !strcmp(p->name, "."))
            return ck_fail(msg, "tensor name '%s' contains '/' (not allowed in a dataset name)",
                           p->name);
        if (p->ndim != 1 && p->ndim != 2)
            return ck_fail(msg, "tensor '%s': ndim %d, expected 1 or 2", p->name, p->ndim);
        if (p->split < -1 || p->split > 1 || (p->ndim == 1 && p->split == 1))
            return ck_fail(msg, "tensor '%s': split %d is invalid for ndim %d", p->name, p->split,
                           p->ndim);
        if (p->gshape[0] < 1 || p->gshape[1] < 1 || (p->ndim == 1 && p->gshape[1] != 1))
            return ck_fail(msg, "tensor '%s': invalid global shape [%lld,%lld]", p->name,
                           (long long)p->gshape[0], (long long)p->gshape[1]);
        for (int d = 0; d < 2; d++)
            if (p->vshape[d] < 0 || p->vshape[d] > p->lshape[d] || p->gstart[d] < 0 ||
                p->gstart[d] + p->vshape[d] > p->gshape[d])
                return ck_fail(msg,
                               "tensor '%s': local piece (start %lld, valid %lld, allocated %lld) "
                               "lies outside the global extent %lld in dimension %d",
                               p->name, (long long)p->gstart[d], (long long)p->vshape[d],
                               (long long)p->lshape[d], (long long)p->gshape[d], d);
        if (p->numel != (size_t)(p->lshape[0] * p->lshape[1]) || p->off + p->numel > t->total)
            return ck_fail(msg,
                           "tensor '%s': piece of %zu floats at offset %zu exceeds the buffer "
                           "of %zu floats",
                           p->name, p->numel, p->off, t->total);
    }
    return 1;
}

/* Allgathers the names and shapes of the replica's tables over mp_comm and builds their
 * union. Collective over g->mp_comm. Returns 1, or 0 with msg. */
int ck_build_union(const lethe_params *t, const lethe_grid *g, ck_union *U, char *msg)
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
            ck_shape_str(a, sizeof a, U->u[f].ndim, U->u[f].gshape);
            ck_shape_str(b, sizeof b, e->ndim, e->gshape);
            ok = ck_fail(msg, "tensor '%s' has global shape %s on one rank and %s on another",
                         e->name, a, b);
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
            ok = ck_fail(msg, "tensor '%s' has two owner copies on one rank", p->name);
        for (int d = 0; d < 2; d++)
            if (p->gstart[d] != q->gstart[d] || p->vshape[d] != q->vshape[d] ||
                p->lshape[d] != q->lshape[d])
                ok = ck_fail(msg, "tensor '%s' has two different pieces on one rank", p->name);
    }
    return ok;
}

uint64_t ck_union_hash(const ck_union *U)
{
    uint64_t h = ck_mix64((uint64_t)U->nu);
    for (int k = 0; k < U->nu; k++) {
        h = ck_mix64(h ^ lethe_hash_str(U->u[k].name));
        h = ck_mix64(h ^ (uint64_t)U->u[k].ndim);
        h = ck_mix64(h ^ (uint64_t)U->u[k].gshape[0]);
        h = ck_mix64(h ^ (uint64_t)U->u[k].gshape[1]);
    }
    return h;
}

/* eq[i] = 1 if all ranks of comm hold the same h[i] (n <= 4): max(h) == min(h), with
 * min(h) = ~max(~h), in one reduction. Arguments that steer the sequence of collective
 * calls (tables, path, flags) must agree, or ranks would part ways and hang. */
void ck_all_equal(MPI_Comm comm, const uint64_t *h, int n, int *eq)
{
    uint64_t in[8] = {0}, out[8];
    for (int i = 0; i < n; i++) in[i] = h[i], in[n + i] = ~h[i];
    MPI_CHECK(MPI_Allreduce(in, out, 2 * n, MPI_UINT64_T, MPI_MAX, comm));
    for (int i = 0; i < n; i++) eq[i] = out[i] == ~out[n + i];
}

/* The copy whose elements count in this replica's digest: an owner, and for tensors
 * replicated over tp only tp_rank 0's. */
int ck_counts_in_replica(const lethe_param *p, const lethe_grid *g)
{
    return p->owner && (p->split >= 0 || g->tp_rank == 0);
}

uint64_t ck_piece_digest(int version, const lethe_param *p, const float *x, uint32_t *maxbits)
{
    return ck_digest_scan(version, x, p->vshape[0], p->vshape[1], p->lshape[1], p->gstart[0],
                          p->gstart[1], p->gshape[1], maxbits);
}

/* Per tensor and kind, the digest over this replica (summed over mp_comm), and the number
 * of elements the replica's pieces cover: out[kind * nu + k], out[CK_KINDS * nu + k]. The
 * kinds in the bit mask zero_kinds are digested as zeros, without reading their buffer. */
uint64_t *ck_replica_digests(const lethe_params *t, const lethe_grid *g, const ck_union *U,
                             int nkinds, unsigned zero_kinds)
{
    size_t n = (size_t)(CK_KINDS + 1) * (size_t)U->nu;
    uint64_t *d = lethe_calloc(n ? n : 1, sizeof(uint64_t), "checkpoint digests");
    const float *buf[CK_KINDS] = {t->data, t->m, t->v};
    for (int k = 0; k < U->nu; k++) {
        int i = U->prim[k];
        if (i < 0 || !ck_counts_in_replica(&t->p[i], g)) continue;
        const lethe_param *p = &t->p[i];
        uint32_t maxbits = 0;
        for (int kind = 0; kind < nkinds; kind++)
            d[(size_t)kind * U->nu + k] = ck_piece_digest(
                CK_FORMAT_VERSION, p, (zero_kinds >> kind) & 1u ? NULL : buf[kind] + p->off,
                &maxbits);
        d[(size_t)CK_KINDS * U->nu + k] = (uint64_t)(p->vshape[0] * p->vshape[1]);
    }
    if (n) MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, d, (int)n, MPI_UINT64_T, MPI_SUM, g->mp_comm));
    return d;
}

int ck_check_coverage(const ck_union *U, const uint64_t *d, char *msg)
{
    for (int k = 0; k < U->nu; k++) {
        uint64_t want = (uint64_t)(U->u[k].gshape[0] * U->u[k].gshape[1]);
        uint64_t got = d[(size_t)CK_KINDS * U->nu + k];
        if (got != want)
            return ck_fail(msg,
                           "tensor '%s': the owner pieces of one replica cover %llu of its %llu "
                           "elements (each element needs exactly one owner)",
                           U->u[k].name, (unsigned long long)got, (unsigned long long)want);
    }
    return 1;
}

int ckpt_tensor_union(const lethe_params *t, const lethe_grid *g, ckpt_tensor **out, char *err,
                      size_t errlen)
{
    ck_union U;
    char msg[CK_MSG] = "";
    *out = NULL;
    if (!ck_build_union(t, g, &U, msg)) {
        ck_union_free(&U);
        return lethe_errf(err, errlen, "%s", msg);
    }
    int n = U.nu;
    *out = U.u;
    U.u = NULL;
    ck_union_free(&U);
    return n;
}
