/* model/params.h — the parameter table.
 *
 * Per rank, the parameters of its shard live in ONE contiguous buffer; gradients
 * and the two AdamW moments in three more of the same size and layout. The table
 * lists for each tensor its global (Hugging Face) name and shape, which dimension
 * tensor parallelism splits, and where this rank's piece sits both in the global
 * tensor and in the buffers. Checkpoints, safetensors, gradient all-reduce,
 * clipping and weight decay walk this table and need nothing else. */
#ifndef LETHE_PARAMS_H
#define LETHE_PARAMS_H

#include <stddef.h>
#include <stdint.h>

#define LETHE_NAME_MAX 96

typedef struct {
    char name[LETHE_NAME_MAX]; /* "model.layers.3.self_attn.q_proj.weight" */
    int ndim;                  /* 1 or 2 */
    int64_t gshape[2];         /* global shape (ndim 1: gshape[1] == 1) */
    int split;                 /* -1 replicated over tp, 0 rows split, 1 columns split */
    int64_t lshape[2];         /* local allocation (rows may include vocabulary padding) */
    int64_t gstart[2];         /* global index of the local [0][0] */
    int64_t vshape[2];         /* the real (unpadded) extent of the local piece, <= lshape */
    size_t off;                /* offset in floats into data/grad/m/v */
    size_t numel;              /* lshape[0] * lshape[1] */
    int decay;                 /* AdamW weight decay applies (not on norms) */
    int owner;                 /* 1: this copy is written by checkpoints and counted once
                                  in norms; 0: a synchronized duplicate (tied head copy) */
} lethe_param;

typedef struct {
    lethe_param *p;
    int n, cap;
    size_t total; /* floats per buffer */
    float *data, *grad, *m, *v; /* each `total` floats, 64-byte aligned */
    int moments_sharded; /* 1 after an update split over dp replicas: m and v are current
                            only in this rank's dp share (comm_share of total); a
                            checkpoint save completes them first */
    unsigned char *mask; /* WAGLE (model/wagle.h): `total` flags, AdamW and weight decay
                            only where 1; NULL: every weight (owned by whoever sets it) */
} lethe_params;

void params_init(lethe_params *t);
/* Adds a tensor; returns its index. Call before params_alloc. tp_size/tp_rank
 * determine the local piece; `pad_rows` rounds rows of a row-split tensor up to a
 * multiple of tp (vocabulary padding). */
int params_add(lethe_params *t, const char *name, int ndim, int64_t rows, int64_t cols, int split,
               int tp_size, int tp_rank, int pad_rows, int decay, int owner);
/* Allocates the four buffers (zeroed). */
void params_alloc(lethe_params *t);
void params_free(lethe_params *t);
/* The part [*a, *b) of tensor p's elements in the flat buffers that lies inside
 * [lo, hi); 0 when there is none. */
static inline int params_overlap(const lethe_param *p, size_t lo, size_t hi, size_t *a, size_t *b)
{
    *a = p->off > lo ? p->off : lo;
    *b = p->off + p->numel < hi ? p->off + p->numel : hi;
    return *a < *b;
}
/* Index by name, or -1. */
int params_find(const lethe_params *t, const char *name);
/* Index of the tensor whose elements hold flat index k, or -1 (alignment padding, past
 * the end). */
int params_at(const lethe_params *t, size_t k);
/* Index of the first tensor of t whose gradient (every local element, padding
 * included) holds a NaN or an Inf, or -1. */
int params_first_nonfinite_grad(const lethe_params *t);

/* Layout-independent initialisation: element (i, j) of tensor `name` is drawn from
 * N(0, std^2) by a counter-based hash of (seed, name, i, j), so any sharding of
 * the tensor gets the same values. Padding rows are zero. */
void params_init_normal(lethe_params *t, int idx, uint64_t seed, float std);
void params_fill(lethe_params *t, int idx, float value);
/* Exchanges the parameter values (data) with `other` (total floats): run a frozen
 * copy of the weights through the same shard without a second model. */
void params_swap_data(lethe_params *t, float *other);

/* Hash helpers shared by the initialiser and the synthetic data source. */
uint64_t lethe_hash64(uint64_t x);
uint64_t lethe_hash_str(const char *s);
/* Standard normal from a 64-bit counter value. */
float lethe_normal_from_u64(uint64_t h);


/* Gathers the global tensor `name` (rows x cols, from buffer `which`: 0 data,
 * 1 grad, 2 m, 3 v) onto `root` of `world`, from the ranks that hold its pieces
 * (dp replica 0, owners only). Collective over world: every rank calls it with
 * the same name, including ranks that hold no piece. out (rows, cols) on root. */
#include <mpi.h>

#include "../mpi/comm.h"
void params_gather(const lethe_params *t, MPI_Comm world, int dp_rank, const char *name,
                   int which, int64_t rows, int64_t cols, float *out, int root);
/* Completes AdamW moments left sharded over the dp replicas by a split update
 * (t->moments_sharded): all-gathers every replica's share of m and v. Collective over
 * dp_comm; nothing to do otherwise. The traffic is added to st (may be NULL). */
void params_full_moments(lethe_params *t, MPI_Comm dp_comm, comm_stats *st);

#endif
