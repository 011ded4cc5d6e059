/* mpi/fatal.c — errors that end the whole job, printed once, never a hang. */
#include "fatal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const lethe_grid *fatal_grid;

void fatal_set_grid(const lethe_grid *g)
{
    fatal_grid = g;
}

static void prefix(char *buf, size_t len)
{
    int rank = 0, inited = 0;
    MPI_Initialized(&inited);
    if (inited) MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (fatal_grid) {
        char c[64];
        grid_coords_str(fatal_grid, c, sizeof c);
        snprintf(buf, len, "lethe: rank %d (%s): ", rank, c);
    } else {
        snprintf(buf, len, "lethe: rank %d: ", rank);
    }
}

static void vprint(const char *fmt, va_list ap)
{
    char pre[128], msg[2048];
    prefix(pre, sizeof pre);
    vsnprintf(msg, sizeof msg, fmt, ap);
    /* One write so lines from different ranks do not interleave. */
    fprintf(stderr, "%s%s\n", pre, msg);
    fflush(stderr);
}

void lethe_fatal_code(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprint(fmt, ap);
    va_end(ap);
    int inited = 0, finalized = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    if (inited && !finalized) MPI_Abort(MPI_COMM_WORLD, code);
    exit(code);
}

void lethe_fatal(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprint(fmt, ap);
    va_end(ap);
    int inited = 0, finalized = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    if (inited && !finalized) MPI_Abort(MPI_COMM_WORLD, 1);
    exit(1);
}

void lethe_check(MPI_Comm comm, int ok, int code, const char *fmt, ...)
{
    int rank;
    MPI_Comm_rank(comm, &rank);
    int mine = ok ? 1 << 30 : rank, first;
    MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, comm);
    if (first == 1 << 30) return;
    if (rank == first) {
        va_list ap;
        va_start(ap, fmt);
        vprint(fmt, ap);
        va_end(ap);
    }
    MPI_Barrier(comm);
    MPI_Finalize();
    exit(code);
}

void lethe_warn_rank(const char *fmt, ...)
{
    char pre[128], msg[2048];
    prefix(pre, sizeof pre);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%swarning: %s\n", pre, msg);
    fflush(stderr);
}

void lethe_warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char msg[2048];
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "lethe: warning: %s\n", msg);
}

int lethe_errf(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

const char *lethe_shown(const char *s, char *buf, size_t len, int quotes)
{
    size_t o = 0;
    const unsigned char *p = (const unsigned char *)s;
    for (; *p && o + 8 < len; p++) {
        if (*p < 0x20 || *p == 0x7f || (quotes && (*p == '\'' || *p == '\\')))
            o += (size_t)snprintf(buf + o, len - o, "\\x%02x", *p);
        else
            buf[o++] = (char)*p;
    }
    if (*p && o >= 3) memcpy(buf + o - 3, "...", 3); /* shortened */
    buf[o] = 0;
    return buf;
}

void *lethe_malloc(size_t n, const char *what)
{
    void *p = malloc(n ? n : 1);
    if (!p) lethe_fatal("out of memory allocating %zu bytes for %s", n, what);
    return p;
}

void *lethe_calloc(size_t n, size_t size, const char *what)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) lethe_fatal("out of memory allocating %zu x %zu bytes for %s", n, size, what);
    return p;
}
