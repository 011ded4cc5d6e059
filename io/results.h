/* io/results.h — the one writer of evaluation results: eval.h5 and summary.json.
 *
 * eval.h5 holds one group per evaluated split, named by results_group_name ("/" and the
 * split with every '/' as '_': eval/utility_a -> /eval_utility_a), of named datasets of
 * `rows` values each: 1-D (rows) or 2-D (rows, cols), little-endian float64, int64 or
 * int32, contiguous, no attributes. summary.json holds the aggregates as cJSON prints
 * them, plus a newline. Each file is written under a temporary name (path + ".tmp") and
 * renamed when complete, so a reader (`lethe report`, a relearn or eval that takes the
 * folder as its reference) never sees half a file. Serial: one rank (world rank 0)
 * calls these. Functions return 0, or -1 with a one-line message in err. */
#ifndef LETHE_IO_RESULTS_H
#define LETHE_IO_RESULTS_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

typedef enum { RESULTS_F64, RESULTS_I64, RESULTS_I32 } results_type;

/* One dataset of a split's group. */
typedef struct {
    const char *name;
    results_type type;
    const void *data; /* rows (x cols) values, row-major */
    int64_t cols;     /* 0: 1-D (rows); > 0: 2-D (rows, cols) */
} results_column;

typedef struct {
    hid_t file;
    char path[1100], tmp[1200];
} results_writer;

/* Creates path's temporary file ("cannot create 'path.tmp'"). */
int results_open(results_writer *w, const char *path, char *err, size_t errlen);
/* Writes the group of `split`: ncol datasets of `rows` rows each, in the given order. */
int results_split(results_writer *w, const char *split, int64_t rows, const results_column *col,
                  int ncol, char *err, size_t errlen);
/* Closes the file and renames it to path ("cannot write 'path'"). */
int results_close(results_writer *w, char *err, size_t errlen);

/* The group of a split in eval.h5 ("/" + split, each '/' as '_', at most 70 bytes of it). */
void results_group_name(char *out, size_t len, const char *split);

/* Writes doc to path as cJSON_Print text and a newline, via path.tmp ("cannot write"). */
int results_write_json(const char *path, const cJSON *doc, char *err, size_t errlen);

/* A number, or null when v is not finite (JSON has no NaN). */
cJSON *results_number(double v);

#endif
