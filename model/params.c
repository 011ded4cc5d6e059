/* model/params.c — the parameter table and its layout-independent initialiser. */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS */
#include "params.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "../mpi/comm.h"
#include "../mpi/fatal.h"

void params_init(lethe_params *t) { memset(t, 0, sizeof(*t)); }

int params_add(lethe_params *t, const char *name, int ndim, int64_t rows, int64_t cols, int split,
               int tp_size, int tp_rank, int pad_rows, int decay, int owner)
{
    if (t->data) lethe_fatal("params_add('%s') after params_alloc", name);
    if (strlen(name) >= LETHE_NAME_MAX) lethe_fatal("parameter name too long: '%s'", name);
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 64;
        t->p = realloc(t->p, (size_t)t->cap * sizeof(*t->p));
        if (!t->p) lethe_fatal("out of memory growing the parameter table");
    }
    lethe_param *p = &t->p[t->n];
    memset(p, 0, sizeof(*p));
    strcpy(p->name, name);
    p->ndim = ndim;
    p->gshape[0] = rows;
    p->gshape[1] = ndim == 1 ? 1 : cols;
    p->split = split;
    p->decay = decay;
    p->owner = owner;
    for (int d = 0; d < 2; d++) {
        p->lshape[d] = p->gshape[d];
        p->vshape[d] = p->gshape[d];
        p->gstart[d] = 0;
    }
    if (split >= 0) {
        int64_t n = p->gshape[split];
        if (pad_rows) n = (n + tp_size - 1) / tp_size * tp_size;
        if (n % tp_size)
            lethe_fatal("parameter '%s': dimension %d of size %lld is not divisible by tp=%d", name,
                        split, (long long)p->gshape[split], tp_size);
        int64_t loc = n / tp_size, start = (int64_t)tp_rank * loc;
        int64_t valid = p->gshape[split] - start;
        if (valid < 0) valid = 0;
        if (valid > loc) valid = loc;
        p->lshape[split] = loc;
        p->gstart[split] = start;
        p->vshape[split] = valid;
    }
    p->numel = (size_t)(p->lshape[0] * p->lshape[1]);
    /* 16-float alignment for every tensor keeps vector loads aligned. */
    p->off = t->total;
    t->total += (p->numel + 15) & ~(size_t)15;
    return t->n++;
}

int params_at(const lethe_params *t, size_t k)
{
    for (int i = 0; i < t->n; i++)
        if (k >= t->p[i].off && k < t->p[i].off + t->p[i].numel) return i;
    return -1;
}

int params_first_nonfinite_grad(const lethe_params *t)
{
    for (int i = 0; i < t->n; i++)
        if (comm_first_nonfinite(t->grad + t->p[i].off, t->p[i].numel) < t->p[i].numel)
            return i;
    return -1;
}

/* Anonymous pages: zero and 64-byte aligned (page aligned) as the kernels need, and backed
 * by memory only where written, so a job that never touches a buffer (convert and eval
 * leave the gradients and moments alone) does not pay for it. */
static float *alloc_buf(size_t n, const char *what)
{
    void *ptr = mmap(NULL, (n ? n : 1) * sizeof(float), PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (ptr == MAP_FAILED) lethe_fatal("out of memory allocating %zu floats for %s", n, what);
    return ptr;
}

static void free_buf(float *p, size_t n)
{
    if (p) munmap(p, (n ? n : 1) * sizeof(float));
}

void params_alloc(lethe_params *t)
{
    t->data = alloc_buf(t->total, "parameters");
    t->grad = alloc_buf(t->total, "gradients");
    t->m = alloc_buf(t->total, "AdamW first moments");
    t->v = alloc_buf(t->total, "AdamW second moments");
}

void params_free(lethe_params *t)
{
    free(t->p);
    free_buf(t->data, t->total);
    free_buf(t->grad, t->total);
    free_buf(t->m, t->total);
    free_buf(t->v, t->total);
    memset(t, 0, sizeof(*t));
}

int params_find(const lethe_params *t, const char *name)
{
    for (int i = 0; i < t->n; i++)
        if (!strcmp(t->p[i].name, name)) return i;
    return -1;
}

uint64_t lethe_hash64(uint64_t x)
{
    /* splitmix64 finaliser: a bijection with good avalanche. */
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

uint64_t lethe_hash_str(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a 64 */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return h;
}

float lethe_normal_from_u64(uint64_t h)
{
    /* Box-Muller on two 32-bit uniforms in (0, 1]. */
    double u1 = ((double)(h >> 32) + 1.0) / 4294967296.0;
    double u2 = ((double)(h & 0xffffffffULL) + 0.5) / 4294967296.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

void params_init_normal(lethe_params *t, int idx, uint64_t seed, float std)
{
    lethe_param *p = &t->p[idx];
    float *w = t->data + p->off;
    uint64_t base = lethe_hash64(seed ^ lethe_hash_str(p->name));
    int64_t gcols = p->gshape[1];
    for (int64_t i = 0; i < p->lshape[0]; i++)
        for (int64_t j = 0; j < p->lshape[1]; j++) {
            float val = 0.0f;
            if (i < p->vshape[0] && j < p->vshape[1]) {
                uint64_t gi = (uint64_t)(p->gstart[0] + i), gj = (uint64_t)(p->gstart[1] + j);
                val = std * lethe_normal_from_u64(lethe_hash64(base + gi * (uint64_t)gcols + gj));
            }
            w[i * p->lshape[1] + j] = val;
        }
}

void params_fill(lethe_params *t, int idx, float value)
{
    lethe_param *p = &t->p[idx];
    float *w = t->data + p->off;
    for (int64_t i = 0; i < p->lshape[0]; i++)
        for (int64_t j = 0; j < p->lshape[1]; j++)
            w[i * p->lshape[1] + j] = (i < p->vshape[0] && j < p->vshape[1]) ? value : 0.0f;
}

void params_full_moments(lethe_params *t, MPI_Comm dp_comm, comm_stats *st)
{
    if (!t->moments_sharded) return;
    comm_allgather_shares(t->m, t->total, dp_comm, st);
    comm_allgather_shares(t->v, t->total, dp_comm, st);
    t->moments_sharded = 0;
}

void params_gather(const lethe_params *t, MPI_Comm world, int dp_rank, const char *name,
                   int which, int64_t rows, int64_t cols, float *out, int root)
{
    int rank, size;
    MPI_CHECK(MPI_Comm_rank(world, &rank));
    MPI_CHECK(MPI_Comm_size(world, &size));
    /* this rank's contribution: header (gstart, vshape) then the valid rows */
    int idx = dp_rank == 0 ? params_find(t, name) : -1;
    if (idx >= 0 && !t->p[idx].owner) idx = -1;
    float *mine = NULL;
    int count = 0;
    if (idx >= 0) {
        const lethe_param *p = &t->p[idx];
        const float *bufs[4] = {t->data, t->grad, t->m, t->v};
        const float *src = bufs[which] + p->off;
        /* replicated tensors are identical on every tp rank: the one at gstart 0
         * of a replicated tensor is indistinguishable, so every holder sends and
         * the root keeps the last; cheap at the sizes this is used for */
        count = 4 + (int)(p->vshape[0] * p->vshape[1]);
        mine = lethe_malloc(sizeof(float) * (size_t)count, "gather");
        int32_t hdr[4] = {(int32_t)p->gstart[0], (int32_t)p->gstart[1], (int32_t)p->vshape[0],
                          (int32_t)p->vshape[1]};
        memcpy(mine, hdr, sizeof hdr);
        for (int64_t i = 0; i < p->vshape[0]; i++)
            memcpy(mine + 4 + i * p->vshape[1], src + i * p->lshape[1],
                   sizeof(float) * (size_t)p->vshape[1]);
    }
    int *counts = NULL, *displs = NULL;
    float *all = NULL;
    if (rank == root) {
        counts = lethe_malloc(sizeof(int) * (size_t)size, "gather");
        displs = lethe_malloc(sizeof(int) * (size_t)size, "gather");
    }
    MPI_CHECK(MPI_Gather(&count, 1, MPI_INT, counts, 1, MPI_INT, root, world));
    int total = 0;
    if (rank == root) {
        for (int r = 0; r < size; r++) {
            displs[r] = total;
            total += counts[r];
        }
        all = lethe_malloc(sizeof(float) * (size_t)(total ? total : 1), "gather");
    }
    MPI_CHECK(MPI_Gatherv(mine, count, MPI_FLOAT, all, counts, displs, MPI_FLOAT, root, world));
    if (rank == root) {
        int found = 0;
        for (int r = 0; r < size; r++) {
            if (!counts[r]) continue;
            const float *piece = all + displs[r];
            int32_t hdr[4];
            memcpy(hdr, piece, sizeof hdr);
            for (int64_t i = 0; i < hdr[2]; i++)
                memcpy(out + (hdr[0] + i) * cols + hdr[1], piece + 4 + i * hdr[3],
                       sizeof(float) * (size_t)hdr[3]);
            found = 1;
        }
        if (!found) lethe_fatal("gather: no rank holds tensor '%s'", name);
        (void)rows;
        free(all);
        free(counts);
        free(displs);
    }
    free(mine);
}

void params_swap_data(lethe_params *t, float *other)
{
    for (size_t i = 0; i < t->total; i++) {
        float x = t->data[i];
        t->data[i] = other[i];
        other[i] = x;
    }
}
