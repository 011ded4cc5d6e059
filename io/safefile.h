/* io/safefile.h — the one way lethe opens a file it writes, and the one way it opens a
 * file a user named for reading. Plain POSIX, no MPI and no HDF5, so analysis/ and slurm/
 * use it too.
 *
 * Writing (whole files): the data goes to PATH.tmp, created with O_CREAT | O_EXCL |
 * O_NOFOLLOW, so nothing planted at the temporary name is ever written through; it is
 * flushed and fsynced, then renamed over PATH, then PATH's folder is fsynced. Policy at
 * the temporary name: a leftover regular file with one link (a crashed run's) is removed
 * first; a symbolic link, a folder, a FIFO, a device or a file with other hard links is
 * refused with one line naming it (never removed, never followed). The final name is
 * replaced by rename: a symbolic link there is replaced (its target is never written),
 * a folder, FIFO or device there is refused.
 * Appending (logs): O_APPEND | O_NOFOLLOW, and only to a regular file.
 * Reading: O_NONBLOCK (a FIFO never blocks the open) then fstat: regular files only, and
 * no larger than the bound the caller gives; the message names the path and the bound.
 * Every function returns 0 / a pointer, or -1 / NULL with one line in err. */
#ifndef LETHE_IO_SAFEFILE_H
#define LETHE_IO_SAFEFILE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* size bounds of the files users name (bytes) */
#define LETHE_MAX_JSON ((uint64_t)16 << 20)       /* configs, study files, labels, k*.json */
#define LETHE_MAX_TOKENIZER ((uint64_t)256 << 20) /* merges, encoder, tokenizer .h5 */
#define LETHE_MAX_JSONL ((uint64_t)64 << 30)      /* a JSON lines input, whole */
#define LETHE_MAX_JSONL_LINE ((size_t)16 << 20)   /* one of its lines */
#define LETHE_MAX_TENSORS ((uint64_t)1 << 40)     /* safetensors, eval.h5, datasets */
#define LETHE_MAX_TEXT ((uint64_t)256 << 20)      /* logs and tables the report reads */

typedef struct {
    FILE *f; /* open on tmp for writing */
    char path[4096], tmp[4100];
} safe_out;

/* Opens w->f on PATH.tmp (see the policy above). */
int safe_create(safe_out *w, const char *path, char *err, size_t errlen);
/* Checks the stream, flushes, fsyncs, closes, renames over the final name, fsyncs the
 * folder. On any failure the temporary file is removed. */
int safe_finish(safe_out *w, char *err, size_t errlen);
/* Closes and removes the temporary file (nothing under the final name changes). */
void safe_abort(safe_out *w);
/* The whole of data (len bytes) to path, through safe_create / safe_finish. */
int safe_write(const char *path, const void *data, size_t len, char *err, size_t errlen);

/* text then tail (may be "" or NULL) to path, the same way. */
int safe_write_text(const char *path, const char *text, const char *tail, char *err, size_t errlen);

/* For writers that create the file themselves (H5Fcreate): makes tmp an empty regular
 * file of ours (the policy above), then the caller opens it with truncation. */
int safe_temp(const char *tmp, char *err, size_t errlen);
/* The same policy, leaving tmp absent: for a writer that creates it exclusively itself
 * (HDF5's H5F_ACC_EXCL, an O_CREAT | O_EXCL open that never follows a link). */
int safe_temp_clear(const char *tmp, char *err, size_t errlen);
/* After such a writer closed tmp: tmp must still be a regular file (not a link swapped in),
 * the final name absent or regular; rename, fsync the folder. Removes tmp on failure. */
int safe_commit(const char *tmp, const char *path, char *err, size_t errlen);
/* 0 if path is absent, a regular file or a link (which rename replaces), else -1 with the line (for
 * writers whose final name is checked before heavy work, and for the collective checkpoint). */
int safe_check_target(const char *path, char *err, size_t errlen);

/* 1 when a and b both exist and are the same file (device and inode, links followed):
 * an output that would replace one of the job's own inputs. */
int safe_same_file(const char *a, const char *b);

/* A log opened for appending: created if absent, never through a link, regular only. */
FILE *safe_append(const char *path, char *err, size_t errlen);

/* Opens path for reading ("rb") after the checks above; *size (if size) gets its size.
 * what names the file in the message ("config", "tokenizer merges"). */
FILE *safe_open_read(const char *path, const char *what, uint64_t max, uint64_t *size, char *err,
                     size_t errlen);
/* The whole file, NUL-terminated (*len, if len, without the NUL); free() it. */
char *safe_read(const char *path, const char *what, uint64_t max, size_t *len, char *err,
                size_t errlen);
/* For the config, which may come from a pipe (`<(...)`): opens without blocking on a FIFO
 * that has no writer (it then reads as empty), refuses devices and sockets; the caller
 * bounds what it reads. */
FILE *safe_open_stream(const char *path, const char *what, char *err, size_t errlen);
/* The same checks without keeping the file open: for HDF5, which opens by name. */
int safe_check_read(const char *path, const char *what, uint64_t max, char *err, size_t errlen);

/* getline with a bound: one line of f (with its '\n', if any) into *buf (grown as
 * needed, *cap its size, NUL-terminated). Returns its length, 0 at the end, or -1 with
 * the line ("'path' line N: ...") when it is over max bytes or unreadable. */
long safe_getline(FILE *f, char **buf, size_t *cap, size_t max, const char *path, long line,
                  char *err, size_t errlen);

#endif
