/* mpi/fatal.c — errors that end the whole job, printed once, never a hang. */
#include "fatal.h"

#include <limits.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The grid that labels this rank's messages is an attribute of MPI_COMM_WORLD (MPI's
 * way to attach a library's data to a communicator), set by the job's session when
 * its grid exists and deleted at session_close, so it never names the grid of a study's
 * previous job. Its value is the rank's three grid coordinates packed into the
 * attribute word itself: nothing to allocate, free or leave dangling. The key is
 * process-wide: created once by fatal_init (comm_init, main's process set-up). */
static int grid_keyval = MPI_KEYVAL_INVALID;

#define COORD_BITS 21 /* per coordinate: up to 2^21 - 1 ranks along one axis */
#define COORD_MASK (((intptr_t)1 << COORD_BITS) - 1)
_Static_assert(sizeof(intptr_t) * 8 >= 3 * COORD_BITS, "three coordinates fit the attribute");

void fatal_init(void)
{
    MPI_CHECK(MPI_Comm_create_keyval(MPI_COMM_NULL_COPY_FN, MPI_COMM_NULL_DELETE_FN,
                                     &grid_keyval, NULL));
}

void fatal_set_grid(const lethe_grid *g)
{
    if (grid_keyval == MPI_KEYVAL_INVALID) return; /* before comm_init: rank alone */
    if (!g) {
        void *v;
        int found = 0;
        MPI_CHECK(MPI_Comm_get_attr(MPI_COMM_WORLD, grid_keyval, &v, &found));
        if (found) MPI_CHECK(MPI_Comm_delete_attr(MPI_COMM_WORLD, grid_keyval));
        return;
    }
    intptr_t v = ((intptr_t)(g->dp_rank & COORD_MASK) << (2 * COORD_BITS)) |
                 ((intptr_t)(g->pp_rank & COORD_MASK) << COORD_BITS) |
                 (intptr_t)(g->tp_rank & COORD_MASK);
    MPI_CHECK(MPI_Comm_set_attr(MPI_COMM_WORLD, grid_keyval, (void *)v));
}

/* 1 with the coordinates of this rank's grid if a session labelled it, else 0. Never
 * fails loudly: it runs while reporting a failure. */
static int grid_label(int *dp, int *pp, int *tp)
{
    int inited = 0, finalized = 0, found = 0;
    void *v = NULL;
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    if (!inited || finalized || grid_keyval == MPI_KEYVAL_INVALID) return 0;
    if (MPI_Comm_get_attr(MPI_COMM_WORLD, grid_keyval, &v, &found) != MPI_SUCCESS || !found)
        return 0;
    intptr_t w = (intptr_t)v;
    *dp = (int)((w >> (2 * COORD_BITS)) & COORD_MASK);
    *pp = (int)((w >> COORD_BITS) & COORD_MASK);
    *tp = (int)(w & COORD_MASK);
    return 1;
}

static void prefix(char *buf, size_t len)
{
    int rank = 0, inited = 0, finalized = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    if (inited && !finalized) MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    int dp, pp, tp;
    if (grid_label(&dp, &pp, &tp))
        snprintf(buf, len, "lethe: rank %d (dp%d pp%d tp%d): ", rank, dp, pp, tp);
    else
        snprintf(buf, len, "lethe: rank %d: ", rank);
}

static void print_line(const char *msg)
{
    char pre[128];
    prefix(pre, sizeof pre);
    /* One write so lines from different ranks do not interleave. */
    fprintf(stderr, "%s%s\n", pre, msg);
    fflush(stderr);
}

LETHE_NORETURN static void vfatal(int code, const char *fmt, va_list ap)
{
    char msg[2048];
    vsnprintf(msg, sizeof msg, fmt, ap);
    print_line(msg);
    int inited = 0, finalized = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    if (inited && !finalized) MPI_Abort(MPI_COMM_WORLD, code);
    exit(code);
}

void lethe_fatal_code(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfatal(code, fmt, ap);
}

void lethe_fatal(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfatal(1, fmt, ap);
}

void lethe_mpi_failed(int rc, const char *call, const char *file, int line)
{
    char why[MPI_MAX_ERROR_STRING + 1] = "";
    int n = 0;
    if (MPI_Error_string(rc, why, &n) != MPI_SUCCESS || n <= 0)
        snprintf(why, sizeof why, "MPI error code %d", rc);
    why[MPI_MAX_ERROR_STRING] = 0;
    lethe_fatal("MPI call failed: %s (%s:%d): %s", call, file, line, why);
}

void lethe_errors_return(MPI_Comm c)
{
    if (c != MPI_COMM_NULL) MPI_CHECK(MPI_Comm_set_errhandler(c, MPI_ERRORS_RETURN));
}

int lethe_agree(MPI_Comm comm, int ok, char *msg, size_t len, int *first)
{
    int rank, low;
    MPI_CHECK(MPI_Comm_rank(comm, &rank));
    int mine = ok ? INT_MAX : rank;
    MPI_CHECK(MPI_Allreduce(&mine, &low, 1, MPI_INT, MPI_MIN, comm));
    if (first) *first = low;
    if (low == INT_MAX) return 0;
    if (rank == low && !msg[0]) snprintf(msg, len, "failed (no message)");
    MPI_CHECK(MPI_Bcast(msg, (int)len, MPI_CHAR, low, comm));
    msg[len - 1] = 0;
    return -1;
}

void lethe_check(MPI_Comm comm, int ok, int code, const char *fmt, ...)
{
    char msg[2048] = "";
    if (!ok) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
    }
    int rank, first;
    if (lethe_agree(comm, ok, msg, sizeof msg, &first) == 0) return;
    MPI_CHECK(MPI_Comm_rank(comm, &rank));
    if (rank == first) print_line(msg);
    MPI_CHECK(MPI_Barrier(comm));
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
