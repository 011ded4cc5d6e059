/* io/checkpoint.h — collective checkpoints in one parallel-HDF5 file.
 *
 * Contract
 * - ckpt_save and ckpt_load are collective over g->world: every rank calls them with the
 *   same path and returns the same verdict (0, or -1 with the same one-line message in
 *   err on every rank). Errors the ranks cannot agree on without risking a hang (an HDF5
 *   call failing inside a collective create/write/read) end the job with lethe_fatal,
 *   naming the file and dataset.
 * - Every tensor of the parameter table is stored at its GLOBAL shape (float32), so a
 *   checkpoint written under one (dp, pp, tp) layout loads under any other, on any
 *   number of ranks. Each rank writes/reads only the hyperslab of its piece; only the
 *   dp_rank 0 replica writes, tensors replicated over tp are written by tp_rank 0, and
 *   duplicates (owner 0) are never written but are filled on load.
 * - Nothing is at `path` until the checkpoint is complete: the file is written to
 *   "<path>.tmp", flushed to storage (MPI_File_sync), closed, and only when every rank's
 *   close succeeded does rank 0 rename it over `path` (and sync the directory). A crash
 *   or a failure at any point leaves the previous checkpoint at `path` untouched.
 * - Every tensor carries a layout-independent 64-bit digest of its global contents;
 *   ckpt_load recomputes it from what each replica read and refuses a mismatch.
 *
 * File layout (format "lethe-checkpoint", format_version 2; version 1 files still load)
 *   /                  attributes: format, format_version, lethe_version (strings/int32),
 *                      step, epoch (int64), layout int32[3] = {dp, pp, tp},
 *                      world_size (int32), n_tensors (int64),
 *                      loader_cursor int64[n] (null dataspace when n == 0),
 *                      meta_digest (uint64, ckpt_meta_digest: every field below too)
 *   /job               (only when the job saved state of its own) one float64 scalar
 *                      attribute per named value, e.g. relearn's point: n, seed, lr
 *   /meta/config       scalar fixed-length string: the resolved config JSON (a dataset,
 *                      not an attribute, because attributes are capped at 64 KiB)
 *   /meta/rng          uint64[world_size]: each rank's RNG state, by world rank
 *   /params/<name>     float32, global shape ([rows] or [rows, cols]); attribute `digest`
 *   /adam_m/<name>     AdamW first moments, same shapes; attribute `digest`
 *   /adam_v/<name>     AdamW second moments, same shapes; attribute `digest`
 *   /wagle_mask/<name> only when the table has a WAGLE mask (lethe_params.mask): uint8
 *                      0/1, same shapes; attribute `digest` (of the bytes as float32
 *                      values). An optional kind: readers that do not know it (ckpt_load,
 *                      a lethe from before it) ignore it.
 * Tensor names are the Hugging Face names ("model.layers.3.mlp.up_proj.weight"); they
 * must not contain '/'.
 *
 * Metadata is trusted no more than tensors: ckpt_load refuses a meta_digest that does not
 * match the stored step, epoch, cursor, /job values, config, layout, world size, version
 * and RNG states, a step or epoch outside [0, INT_MAX], a layout whose product is not the
 * world size, a non-finite /job value, a model config that differs from the job's
 * (meta->expect_config) and a non-finite element in any tensor loaded, each in one line
 * naming the field (or dataset and element), its value and the bound.
 *
 * Digest: for a tensor with `cols` columns (1 for 1-D), element (i, j) has the flat index
 * n = i * cols + j and float bits b (uint32). The digest is the sum of every element's term
 * mod 2^64, so it does not depend on which rank holds which element: each rank digests
 * its own piece and MPI_SUM finishes the job.
 * - Format 2 (what ckpt_save writes): with m = n mod 2^32 and 32-bit wrap-around,
 *   A(n) = m * CK_DIGEST_KA + CK_DIGEST_CA, B(n) = m * CK_DIGEST_KB + CK_DIGEST_CB (odd:
 *   KB is even, CB odd); the term is (uint64)(b ^ A(n)) * (uint64)B(n). Changing any one
 *   element always changes the digest (B is odd and the change of b ^ A is below 2^32 in
 *   size); indices 2^32 apart share keys. It runs at memory speed (checkpoint_digest.c).
 * - Format 1: the term is mix(mix(n) ^ b), mix = the splitmix64 finaliser. */
#ifndef LETHE_CHECKPOINT_H
#define LETHE_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "../model/params.h"
#include "../mpi/grid.h"

/* A tensor as the whole model knows it: its name, rank and global shape. */
typedef struct {
    char name[LETHE_NAME_MAX];
    int32_t ndim, pad_;
    int64_t gshape[2];
} ckpt_tensor;

/* The union of the tensors held by the ranks of one replica (names and global shapes
 * allgathered over g->mp_comm), in order of first appearance by mp rank (pp, then tp).
 * Collective over g->mp_comm; the same verdict on its every rank. Sets *out (malloc'd)
 * and returns the count, or -1 with one line in err when two ranks give one name two
 * shapes. */
int ckpt_tensor_union(const lethe_params *t, const lethe_grid *g, ckpt_tensor **out, char *err,
                      size_t errlen);

#define LETHE_CKPT_CURSOR_MAX 8
#define LETHE_CKPT_JOB_MAX 8
#define LETHE_CKPT_JOB_KEY 32
#define LETHE_CKPT_WORLD_MAX (1 << 20) /* ranks a checkpoint may name */

typedef struct {
    /* Saved as given (identical on every rank, checked); restored by ckpt_load. */
    int64_t step;
    int64_t epoch;
    int n_cursor;                          /* 0..LETHE_CKPT_CURSOR_MAX */
    int64_t cursor[LETHE_CKPT_CURSOR_MAX]; /* the data loader's position */
    /* The job's own state, by name (stored in /job; load: sorted by name). */
    int n_job; /* 0..LETHE_CKPT_JOB_MAX */
    char job_key[LETHE_CKPT_JOB_MAX][LETHE_CKPT_JOB_KEY];
    double job_value[LETHE_CKPT_JOB_MAX];
    char *config_json;                     /* save: resolved config text (NULL = "");
                                              load: malloc'd copy, freed by ckpt_meta_free */
    /* Per rank (may differ between ranks). */
    uint64_t rng;     /* save: this rank's RNG state; load: restored when rng_restored */
    int rng_restored; /* load: 1 if the checkpoint was written by as many ranks as now
                         (rank r gets the state rank r saved); else 0 and rng is left as is */
    /* Load only: how the checkpoint was written. */
    int layout[3]; /* dp, pp, tp */
    int world_size;
    char version[32]; /* lethe version */
    /* Load input (NULL: no check): the job's resolved config JSON; its model keys
     * (model.dim ... model.tie_embeddings, not model.init_*) must equal the stored ones. */
    const char *expect_config;
    /* Save input: 1 when the AdamW moments are all zero (an import). t->m and t->v are then
     * never read (untouched pages cost memory when read); the moments are written from one
     * zero block of at most CKPT_ZERO_BLOCK floats per call. */
    int moments_zero;
} lethe_ckpt_meta;

#define CKPT_ZERO_BLOCK (1 << 20) /* floats of zeros a save writes per call (4 MiB) */

/* Writes the table's parameters and AdamW moments (t->data, t->m, t->v), WAGLE's mask
 * when t->mask is set (on every rank or none), and meta to
 * `path` (via "<path>.tmp" and a rename); meta may be NULL (zeros). Moments left
 * sharded over dp by the last update (t->moments_sharded) are all-gathered first.
 * Collective over g->world. 0, or -1 with err. */
int ckpt_save(const char *path, lethe_params *t, const lethe_grid *g,
              const lethe_ckpt_meta *meta, char *err, size_t errlen);

/* Fills every piece of the table (owner or duplicate, every dp replica) from `path`,
 * checking that each tensor exists as float32 with the table's global shape and that
 * its digest matches; padding rows are set to zero. With load_optimizer the moments are
 * loaded too (t->m, t->v), otherwise they are left untouched. meta (may be NULL)
 * receives the stored meta. Collective over g->world. 0, or -1 with err (t's contents
 * are then unspecified). */
int ckpt_load(const char *path, lethe_params *t, const lethe_grid *g, lethe_ckpt_meta *meta,
              int load_optimizer, char *err, size_t errlen);

/* WAGLE's mask of a checkpoint (/wagle_mask), under any layout. Collective over g->world.
 * Checks the metadata as a load does (meta_digest, meta->expect_config), then: with
 * t->mask set, fills every piece of it (owner or duplicate, every replica; padding 0) and
 * checks each tensor's digest; with t->mask NULL, only says whether there is one. meta
 * (may be NULL) receives the stored metadata (its /job values). Returns 1 (a mask), 0
 * (none: t->mask untouched), or -1 with err (the same on every rank). */
int ckpt_load_mask(const char *path, lethe_params *t, const lethe_grid *g, lethe_ckpt_meta *meta,
                   char *err, size_t errlen);

/* The resolved config JSON stored in a checkpoint's /meta/config (*json malloc'd), read
 * by every rank of comm (collective; the same verdict everywhere). Jobs take the model
 * from it (init.checkpoint) and convert exports what it says. 0, or -1 with err. */
int ckpt_read_config(const char *path, MPI_Comm comm, char **json, char *err, size_t errlen);
/* Recomputes the digest of every tensor in the file (no model needed: the datasets are
 * read in row blocks spread over the ranks of comm) and compares with the stored ones.
 * Collective over comm (MPI_COMM_SELF for a serial check). *n_checked (may be NULL)
 * receives the number of datasets verified. 0, or -1 with err naming the first bad one. */
int ckpt_verify(const char *path, MPI_Comm comm, int64_t *n_checked, char *err, size_t errlen);

/* The metadata digest of a checkpoint (stored as the root attribute meta_digest): the
 * splitmix64 fold of step, epoch, layout, world_size, the version string's hash, the
 * cursor count and values, the /job count and the sum of its (name, value) mixes, the
 * config string's hash and rng[0 .. world_size) (every rank's state, by world rank). */
uint64_t ckpt_meta_digest(const lethe_ckpt_meta *m, const uint64_t *rng);

/* The first non-finite element of the valid extent of piece p (x at its offset): 1 with
 * its global (row, col), or 0. */
int ckpt_first_nonfinite(const lethe_param *p, const float *x, int64_t *row, int64_t *col);

/* Frees what ckpt_load allocated in meta (config_json). */
void ckpt_meta_free(lethe_ckpt_meta *meta);

/* The format ckpt_save writes; ckpt_load, ckpt_verify and ckpt_load_mask read versions 1
 * to this one. */
#define CKPT_FORMAT_VERSION 2

/* Format 2's digest keys (the definition above). */
#define CK_DIGEST_KA 0x9E3779B1u
#define CK_DIGEST_CA 0x7F4A7C15u
#define CK_DIGEST_KB 0x85EBCA76u
#define CK_DIGEST_CB 0xC2B2AE3Du

/* The digest (of format `version`: 1 or 2) of one piece: elements [0, vshape) of a piece
 * whose (0, 0) is global (gstart0, gstart1) in a tensor of `gcols` columns, stored with row
 * stride `ld` (x NULL: a piece of zeros). Summing the digests of pieces that tile a tensor
 * gives the tensor's digest. */
uint64_t ckpt_digest_piece(int version, const float *x, int64_t vrows, int64_t vcols, int64_t ld,
                           int64_t gstart0, int64_t gstart1, int64_t gcols);

#endif
