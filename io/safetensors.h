/* io/safetensors.h — the safetensors format: a serial writer and a validating reader.
 *
 * Format: 8 bytes little-endian u64 N, N bytes of a JSON object (UTF-8, may be
 * padded with spaces), then the data buffer. Each key of the object except
 * "__metadata__" is a tensor name mapping to
 *     {"dtype": "F32", "shape": [d0, d1, ...], "data_offsets": [begin, end]}
 * with offsets in bytes relative to the start of the buffer, row-major,
 * little-endian; "__metadata__" (optional) maps strings to strings.
 *
 * Reader contract (st_open): the whole header is checked before any tensor is
 * read, as a hostile file can get anything wrong. Refused, with one line naming
 * the file and (where there is one) the tensor: a file shorter than 8 bytes; a
 * header length beyond the file or above ST_HEADER_MAX; a header that is not a
 * JSON object or has bytes after it other than spaces; an entry that is not an
 * object, has an unknown or repeated key or lacks dtype/shape/data_offsets; an
 * unknown dtype (named in the message); a dimension or offset that is not an
 * integer in [0, 2^53]; a shape whose element or byte count overflows; offsets
 * with begin > end, past the end of the buffer, or not holding exactly
 * numel * dtype-size bytes; tensors that overlap or leave bytes of the buffer
 * unused (the buffer must be tiled exactly, as the format requires, so no other
 * content can hide in it); empty names, names with '/', "..", or control
 * characters; duplicate names; a "__metadata__" that is not an object of strings.
 * Dtypes: every dtype of the format is recognised for validation; F32, F16 and
 * BF16 are read as float (F16/BF16 converted exactly to F32), I32 as int32; reading
 * any other dtype is an error naming it.
 *
 * Writer contract (st_write*): F32, F16, BF16 and I32; writes "<path>.tmp" and renames it over `path`
 * only when complete and flushed, so a crash leaves any previous file intact.
 * Names are checked with the reader's rules; the header is padded with spaces to
 * a multiple of 8 bytes so the data buffer is aligned; tensors are laid out in
 * the order given. metadata_json (may be NULL) is a JSON object of strings.
 *
 * No MPI here: callers read on one rank (or every rank) and agree on the verdict
 * themselves. Functions return 0 / a handle on success, -1 / NULL with err set. */
#ifndef LETHE_SAFETENSORS_H
#define LETHE_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#define ST_HEADER_MAX 100000000ULL /* bytes of JSON header accepted (as the reference) */
#define ST_MAX_DIMS 8

typedef enum {
    ST_BOOL,
    ST_U8,
    ST_I8,
    ST_F8_E5M2,
    ST_F8_E4M3,
    ST_I16,
    ST_U16,
    ST_F16,
    ST_BF16,
    ST_I32,
    ST_U32,
    ST_F32,
    ST_F64,
    ST_I64,
    ST_U64,
    ST_NDTYPES
} st_dtype;

typedef struct {
    char *name;
    st_dtype dtype;
    int ndim; /* 0 (scalar) .. ST_MAX_DIMS */
    int64_t shape[ST_MAX_DIMS];
    int64_t numel;       /* product of shape (1 for a scalar) */
    uint64_t begin, end; /* byte offsets in the data buffer */
} st_tensor;

typedef struct {
    char *path;
    void *fp;            /* FILE*, open for reading */
    uint64_t data_start; /* file offset of the data buffer: 8 + N */
    uint64_t data_len;   /* bytes in the data buffer */
    int n;               /* tensors, in header order */
    st_tensor *t;
    int n_meta; /* __metadata__ pairs */
    char **meta_key, **meta_val;
} st_file;

/* "F32", "BF16", ... */
const char *st_dtype_name(st_dtype d);
/* Bytes per element. */
size_t st_dtype_size(st_dtype d);

st_file *st_open(const char *path, char *err, size_t errlen);
void st_close(st_file *st);
/* Index of the tensor called name, or -1. */
int st_find(const st_file *st, const char *name);
/* Value of a __metadata__ key, or NULL. */
const char *st_meta(const st_file *st, const char *key);

/* Reads tensor idx (F32, F16 or BF16) as float into out, which holds `count`
 * floats; count must equal the tensor's numel. */
int st_read_f32(st_file *st, int idx, float *out, size_t count, char *err, size_t errlen);
/* Rows [row0, row0 + nrows) of tensor idx (a row = product of shape[1:] elements;
 * a 1-D tensor has rows of one element), for readers of a row-split shard. */
int st_read_f32_rows(st_file *st, int idx, int64_t row0, int64_t nrows, float *out, char *err,
                     size_t errlen);
/* Reads an I32 tensor; count must equal its numel. */
int st_read_i32(st_file *st, int idx, int32_t *out, size_t count, char *err, size_t errlen);

/* Writes n F32 tensors: names[i] with ndims[i] dimensions shapes[i][0..ndims[i]) and
 * data datas[i] (row-major). */
int st_write(const char *path, int n, const char *const *names, const int *ndims,
             const int64_t *const *shapes, const float *const *datas, const char *metadata_json,
             char *err, size_t errlen);
/* The same with a dtype per tensor (ST_F32, ST_F16, ST_BF16 (data as their 16-bit
 * patterns) or ST_I32; data given in that type). */
int st_write_typed(const char *path, int n, const char *const *names, const st_dtype *dtypes,
                   const int *ndims, const int64_t *const *shapes, const void *const *datas,
                   const char *metadata_json, char *err, size_t errlen);

/* IEEE half and bfloat16 bit patterns to float (exact, including subnormals,
 * infinities and NaN). */
float st_f16_to_f32(uint16_t h);
float st_bf16_to_f32(uint16_t h);
/* float to half / bfloat16, rounded to nearest with ties to even (a value read from such
 * a tensor gets its bits back); overflow gives infinity, NaN a quiet NaN. */
uint16_t st_f32_to_f16(float f);
uint16_t st_f32_to_bf16(float f);

#endif
