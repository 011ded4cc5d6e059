/* io/dataset.h — the HDF5 token dataset: schema, validation and a serial writer.
 *
 * One file holds several splits; a split is a group ("/forget", "/retain",
 * "/holdout", "/eval/<name>") with
 *     input_ids     int32 (N, T)   prompt + answer + EOS, padded to T
 *     lengths       int32 (N)      1 <= length <= T
 *     answer_start  int32 (N)      0 <= answer_start < length; earlier tokens are prompt
 *     sample_id     int64 (N)      stable id of the sample (unique within the split)
 * optional candidate sets for truth ratios
 *     paraphrased_ids (N, T) + paraphrased_lengths (N) + paraphrased_answer_start (N)
 *     perturbed_ids (N, K, T) + perturbed_lengths (N, K) + perturbed_answer_start (N, K)
 * and root attributes: tokenizer (string), vocab_size, pad_id, eos_id (integers) and
 * source_digest (string, optional). io/DATASETS.md is the user-facing description.
 *
 * dataset_inspect validates a split serially (default HDF5 driver, no MPI) and
 * returns its shape; the loader calls it on one rank and broadcasts the verdict.
 * Every failure is one line naming the file, the dataset and, for row checks,
 * the sample index. The writer creates a file under a temporary name and renames
 * it on dsw_close, so an interrupted write never leaves a half file behind. */
#ifndef LETHE_DATASET_H
#define LETHE_DATASET_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

#include "h5util.h"

#define DATASET_SPLIT_MAX 256

typedef struct {
    char split[DATASET_SPLIT_MAX]; /* normalised group path, e.g. "/eval/retain" */
    int64_t n;                     /* N rows */
    int t;                         /* T tokens per row */
    int k;                         /* K perturbed candidates per row (0: none) */
    int has_para, has_pert;
    int64_t vocab_size, pad_id, eos_id;
    char tokenizer[64];
    char source_digest[128]; /* "" when the file has none */
} dataset_info;

/* Rows of a split (any subset). Arrays that a split lacks are NULL. */
typedef struct {
    int32_t *ids;               /* (n, T) */
    int32_t *lengths;           /* (n) */
    int32_t *answer_start;      /* (n) */
    int64_t *sample_id;         /* (n) */
    int32_t *para_ids;          /* (n, T) */
    int32_t *para_lengths;      /* (n) */
    int32_t *para_answer_start; /* (n) */
    int32_t *pert_ids;          /* (n, K, T) */
    int32_t *pert_lengths;      /* (n, K) */
    int32_t *pert_answer_start; /* (n, K) */
} dataset_rows;

enum {
    DATASET_CHECK_META = 0, /* groups, dtypes, shapes, attributes */
    DATASET_CHECK_ROWS = 1, /* + lengths and answer starts of every row */
    DATASET_CHECK_IDS = 2   /* + every token id < vocab_size (a full pass over the split) */
};

/* Validates `split` of `path` at the given depth, reading rows in blocks of at most
 * `budget` bytes (0: 8 MiB). Returns 0 and fills info, or -1 with one line in err. */
int dataset_inspect(dataset_info *info, const char *path, const char *split, int depth,
                    size_t budget, char *err, size_t errlen);

/* "forget" -> "/forget"; rejects empty names, "..", and names longer than the limit. */
int dataset_split_path(char *out, size_t outlen, const char *split, char *err, size_t errlen);

/* Checks rows [row0, row0+n) already in memory against the split's limits (lengths,
 * answer starts, and ids when check_ids). Returns -1 and the index (row0 + i) of the
 * first bad row in *bad_row with one line in err, else 0. `origin` names the file. */
int dataset_check_rows(const dataset_info *info, const char *origin, const dataset_rows *r,
                       int64_t row0, int64_t n, int check_ids, int64_t *bad_row, char *err,
                       size_t errlen);

/* ---- writer ------------------------------------------------------------------ */

typedef struct {
    const char *tokenizer;
    int64_t vocab_size, pad_id, eos_id;
    const char *source_digest; /* may be NULL */
} dataset_attrs;

typedef struct {
    hid_t file;
    char path[1024], tmp[1040];
    /* the open split */
    hid_t group;
    int64_t n;
    int t, k, has_para, has_pert;
} dataset_writer;

int dsw_create(dataset_writer *w, const char *path, const dataset_attrs *a, char *err,
               size_t errlen);
/* Creates a split's datasets at their full size (contiguous layout, so the loader
 * can prefetch with plain reads). */
int dsw_split_begin(dataset_writer *w, const char *split, int64_t n, int t, int k, int has_para,
                    int has_pert, char *err, size_t errlen);
/* Writes rows [row0, row0+n) of the open split. */
int dsw_write(dataset_writer *w, const dataset_rows *r, int64_t row0, int64_t n, char *err,
              size_t errlen);
int dsw_split_attr_str(dataset_writer *w, const char *name, const char *value, char *err,
                       size_t errlen);
int dsw_split_attr_i64(dataset_writer *w, const char *name, int64_t value, char *err,
                       size_t errlen);
int dsw_split_end(dataset_writer *w, char *err, size_t errlen);
/* Closes and renames the temporary file to its final name. */
int dsw_close(dataset_writer *w, char *err, size_t errlen);
/* Closes and removes the temporary file (after an error). */
void dsw_abort(dataset_writer *w);

/* Attribute helpers shared by the tokenizer, the writer and the loader. Writers
 * return 0 or -1 (strings are variable-length UTF-8, as h5py writes them). Readers
 * return 0, 1 when the attribute is missing, 2 when it has the wrong type; they
 * accept fixed- and variable-length strings and integers of any width. */
int h5_attr_write_str(hid_t obj, const char *name, const char *value);
int h5_attr_write_i64(hid_t obj, const char *name, int64_t value);
int h5_attr_read_str(hid_t obj, const char *name, char *buf, size_t len);
int h5_attr_read_i64(hid_t obj, const char *name, int64_t *v);

#endif
