/* io/safetensors_impl.h — what the safetensors reader (safetensors.c) and writer
 * (safetensors_write.c) share (internal): the error context and its one-line message,
 * and the rule for tensor names. */
#ifndef LETHE_IO_SAFETENSORS_IMPL_H
#define LETHE_IO_SAFETENSORS_IMPL_H

#include <stddef.h>

typedef struct {
    const char *path;
    char *err;
    size_t errlen;
} st_ectx;

/* "safetensors '<path>': [tensor '<name>': ]<message>" into e->err (if any). */
#if defined(__GNUC__)
void st_efail(const st_ectx *e, const char *tensor, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#else
void st_efail(const st_ectx *e, const char *tensor, const char *fmt, ...);
#endif

/* The reader's and the writer's rule for names: a name becomes a dataset path
 * in checkpoints and may become a file name in tools, so it must not be able to
 * walk a directory tree. Returns NULL or what is wrong. */
const char *st_name_problem(const char *s, char *buf, size_t len);

#endif
