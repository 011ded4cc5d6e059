/* io/checkpoint_impl.h — what the parts of the checkpoint code share (internal): the
 * format constants, the quiet HDF5 error stack, the collective-call check, the union of
 * all ranks' tensor tables with their digests (checkpoint_union.c), the metadata checks
 * (checkpoint_meta.c), WAGLE's mask kind (checkpoint_mask.c), and the helpers of
 * checkpoint.c used by the reader (checkpoint_load.c). */
#ifndef LETHE_IO_CHECKPOINT_IMPL_H
#define LETHE_IO_CHECKPOINT_IMPL_H

#include <hdf5.h>
#include <limits.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>

#include "../mpi/fatal.h"
#include "checkpoint.h"
#include "h5util.h"

#define CK_FORMAT "lethe-checkpoint"
#define CK_FORMAT_VERSION CKPT_FORMAT_VERSION
#define CK_FORMAT_OLDEST 1 /* the oldest version a load reads */
#define CK_MSG 1024 /* messages agreed on travel in buffers of this size */
#define CK_KINDS 3
#define CK_CONFIG_MAX (16 << 20) /* bytes of /meta/config a load reads */
#define CK_MASK_GROUP "/wagle_mask" /* WAGLE's mask, when the table has one (uint8 0/1) */

/* An HDF5 call inside a collective section: failure ends the job (see the top). */
#define H5C(call, ...)                                                                             \
    do {                                                                                           \
        if ((call) < 0) {                                                                          \
            char h5b_[256], fn_[64], what_[PATH_MAX + 512];                                        \
            snprintf(what_, sizeof what_, __VA_ARGS__);                                            \
            lethe_fatal("%s: %s failed: %s", what_, ck_call_name(#call, fn_, sizeof fn_),          \
                        h5_last_error(h5b_, sizeof h5b_));                                         \
        }                                                                                          \
    } while (0)

/* What every rank must know of every tensor: dataset creation is collective, so all
 * ranks create all datasets in one order, including those of other pipeline stages. */
typedef ckpt_tensor ck_entry;

typedef struct {
    ck_entry *u; /* nu tensors, in order of first appearance by mp rank (pp, then tp) */
    int nu;
    int *ht; /* open-addressing name -> union index; hcap slots, -1 empty */
    int hcap;
    int *prim; /* nu: this rank's table index for the tensor (an owner copy if it has
                  one), or -1 */
    int *uidx; /* t->n: union index of each table entry */
} ck_union;

/* The HDF5 groups of the three kinds: parameters, AdamW m, AdamW v (checkpoint.c). */
extern const char *const ck_group[CK_KINDS];

/* checkpoint.c */
/* Records the first failure of a phase in msg (CK_MSG bytes); returns 0 (= not ok). */
LETHE_PRINTF(2, 3) int ck_fail(char *msg, const char *fmt, ...);
/* The checks a load makes before any file access, collective over g->world: a sane
 * table (with its optimizer state when with_optimizer) whose union U covers every
 * tensor, and the same table, path and wish on every rank (wish_what names the wish in
 * the message). 1, or 0 with msg agreed everywhere. */
int ck_agree_table(const char *path, const lethe_params *t, const lethe_grid *g, ck_union *U,
                   int with_optimizer, uint64_t wish, const char *wish_what, char *msg);
/* The end of save, load and verify: 0, or -1 with "checkpoint 'PATH': MSG" in err. */
int ck_result(const char *msg, const char *path, char *err, size_t errlen);
const char *ck_call_name(const char *call, char *buf, size_t len);
uint64_t ck_mix64(uint64_t x);
void ck_shape_str(char *buf, size_t len, int nd, const int64_t *s);
hid_t ck_select_piece(hid_t fs, int nd, const lethe_param *p);
hid_t ck_str_type(const char *file, const char *what, size_t len);
int ck_read_attr(hid_t obj, const char *where, const char *name, hid_t mtype, int n, void *buf,
                 char *msg);
int ck_read_str_attr(hid_t obj, const char *where, const char *name, char *buf, size_t len,
                     char *msg);
/* Opens path read-only over comm; *version (may be NULL) gets its format_version. */
hid_t ck_open_for_read(const char *path, MPI_Comm comm, int *version, char *msg);

/* checkpoint_digest.c */
/* ckpt_digest_piece that also raises *maxbits to the largest |bits| (sign cleared) of the
 * piece's elements: >= CK_NONFINITE_BITS means it holds an Inf or a NaN. */
#define CK_NONFINITE_BITS 0x7f800000u
uint64_t ck_digest_scan(int version, const float *x, int64_t vrows, int64_t vcols, int64_t ld,
                        int64_t gstart0, int64_t gstart1, int64_t gcols, uint32_t *maxbits);
/* ck_digest_scan of the vrows x vcols floats at src (row stride lds floats; any byte
 * alignment) that also copies them to dst (row stride ldd floats), in the same pass. */
uint64_t ck_copy_scan(int version, float *dst, int64_t ldd, const void *src, int64_t lds,
                      int64_t vrows, int64_t vcols, int64_t gstart0, int64_t gstart1,
                      int64_t gcols, uint32_t *maxbits);

/* checkpoint_direct.c: a load's reads on one node, copied out of a map of the file */
typedef struct {
    int fd;       /* the file, read-only; -1: every dataset goes through H5Dread */
    int64_t size; /* its bytes */
} ck_direct;
/* 1 when comm's ranks all run on one node; *node_rank (may be NULL) gets this rank's
 * rank among those on its node. Collective. */
int ck_one_node(MPI_Comm comm, int *node_rank);
/* Opens path for maps when comm is on one node and LETHE_CKPT_MAP is not 0 on any rank:
 * 1 on every rank, or 0 on every rank with d->fd -1. Collective. */
int ck_direct_open(ck_direct *d, const char *path, MPI_Comm comm);
void ck_direct_close(ck_direct *d);
/* The file offset of dataset ds's elements when they can be copied out of a map
 * (contiguous, allocated, little-endian float32, this host's float), else -1; -2 with msg
 * when they would run past the end of the file. The same on every rank (file metadata). */
int64_t ck_direct_offset(const ck_direct *d, hid_t ds, const ck_entry *e, const char *gname,
                         char *msg);
/* Copies piece p (NULL: none) of the dataset at file offset off into buf, its digest of
 * format `version` into *digest in the same pass; raises *maxbits. 1, or 0 with msg. */
int ck_direct_read(const ck_direct *d, int64_t off, const lethe_param *p, float *buf, int version,
                   uint64_t *digest, uint32_t *maxbits, const char *gname, char *msg);

/* A save's early write-back: after each kind's writes the kernel is asked to start
 * writing the file's dirty pages to storage (Linux sync_file_range), so the disk works
 * while the save goes on and its final sync waits for less. A hint: failures are
 * ignored, the sync decides. The fd (read-only, opened on the temporary by one rank per
 * node) or -1. Collective over comm. */
int ck_writeback_open(const char *tmp, MPI_Comm comm);
void ck_writeback_start(int fd);
void ck_writeback_close(int fd);

/* checkpoint_load.c */
/* Opens gname/<e->name>: float32 (uint8 in CK_MASK_GROUP) of e's shape (e->ndim 0: the
 * file's), its digest into *digest. Metadata only. The dataset, or -1 with msg. */
hid_t ck_open_tensor(hid_t fid, const char *gname, ck_entry *e, uint64_t *digest, char *msg);
/* The file's metadata checked against its meta_digest (every rank reads it all); out (may
 * be NULL) receives it, its config_json the caller's. 1, or 0 with msg. */
int ck_verified_meta(hid_t fid, const char *path, hid_t dxpl, lethe_ckpt_meta *out, char *msg);

/* checkpoint_mask.c (ckpt_save's hook for t->mask) */
/* Per union tensor, the digest of the dp_rank 0 replica's mask (as 0/1 floats), on every
 * rank. Collective over g->world. */
uint64_t *ck_mask_digests(const lethe_params *t, const lethe_grid *g, const ck_union *U);
/* Writes CK_MASK_GROUP inside ckpt_save's collective section. */
void ck_mask_write(const char *file, hid_t fid, const lethe_params *t, const lethe_grid *g,
                   const ck_union *U, const uint64_t *digests, hid_t dcpl, hid_t dxpl);

/* checkpoint_meta.c: each returns 1, or 0 with msg */
int ck_check_meta(const lethe_ckpt_meta *m, char *msg);
/* Reads /meta/config of the open file into *out (malloc'd); 1, or 0 with msg set. */
int ck_read_config(hid_t fid, const char *path, char **out, char *msg);
int ck_check_model_config(const char *stored, const char *expect, char *msg);
int ck_check_finite(const lethe_params *t, int nkinds, char *msg);

/* checkpoint_union.c */
void ck_union_free(ck_union *U);
int ck_validate_table(const lethe_params *t, int need_moments, char *msg);
int ck_build_union(const lethe_params *t, const lethe_grid *g, ck_union *U, char *msg);
uint64_t ck_union_hash(const ck_union *U);
void ck_all_equal(MPI_Comm comm, const uint64_t *h, int n, int *eq);
int ck_counts_in_replica(const lethe_param *p, const lethe_grid *g);
/* The digest of the valid extent of piece p (x at its offset; NULL: zeros), of format
 * `version`; raises *maxbits as ck_digest_scan does. */
uint64_t ck_piece_digest(int version, const lethe_param *p, const float *x, uint32_t *maxbits);
uint64_t *ck_replica_digests(const lethe_params *t, const lethe_grid *g, const ck_union *U,
                             int nkinds, unsigned zero_kinds);
int ck_check_coverage(const ck_union *U, const uint64_t *d, char *msg);

#endif
