/* mpi/fatal.h — rank-aware errors that end the whole job.
 *
 * lethe_fatal:   one rank found a problem the others may not know about: print
 *                "lethe: rank R (dpD ppP tpT): message" and MPI_Abort the job.
 * lethe_collective_fail: every rank reached the same verdict (config or layout
 *                validation): the lowest failing rank prints once, all ranks
 *                finalize and exit with `code` (no abort, no hang).
 * lethe_check:   collective form — each rank passes ok (1) or not (0) and its own
 *                message; if any rank failed, the lowest failing rank prints its
 *                message and every rank exits with `code`. */
#ifndef LETHE_FATAL_H
#define LETHE_FATAL_H

#include "grid.h"

#if defined(__GNUC__)
#define LETHE_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define LETHE_NORETURN __attribute__((noreturn))
#else
#define LETHE_PRINTF(a, b)
#define LETHE_NORETURN
#endif

/* The grid used to label messages; NULL before the grid exists (then the world
 * rank alone is printed). */
void fatal_set_grid(const lethe_grid *g);

LETHE_NORETURN void lethe_fatal(const char *fmt, ...) LETHE_PRINTF(1, 2);
LETHE_NORETURN void lethe_fatal_code(int code, const char *fmt, ...) LETHE_PRINTF(2, 3);
void lethe_check(MPI_Comm comm, int ok, int code, const char *fmt, ...) LETHE_PRINTF(4, 5);
/* Non-fatal note from rank 0 of comm. */
void lethe_warn(const char *fmt, ...) LETHE_PRINTF(1, 2);
/* Non-fatal note naming this rank: "lethe: rank R (dpD ppP tpT): warning: message". */
void lethe_warn_rank(const char *fmt, ...) LETHE_PRINTF(1, 2);

/* Checks an MPI return code. */
#define MPI_CHECK(call)                                                                  \
    do {                                                                                 \
        int mpi_rc_ = (call);                                                            \
        if (mpi_rc_ != MPI_SUCCESS) lethe_fatal("MPI call failed: %s (%s:%d)", #call,     \
                                                __FILE__, __LINE__);                     \
    } while (0)

/* Formats one line into err (if err and errlen) and returns -1: the shape of every
 * "0, or -1 with a message in err" function. */
int lethe_errf(char *err, size_t errlen, const char *fmt, ...) LETHE_PRINTF(3, 4);

/* A string from a hostile file as it can stand in a one-line message: control
 * characters and DEL as \xNN (also ' and \ when quotes is set, for names shown between
 * quotes), shortened with "..." to fit len. Returns buf. */
const char *lethe_shown(const char *s, char *buf, size_t len, int quotes);

void *lethe_malloc(size_t n, const char *what);
void *lethe_calloc(size_t n, size_t size, const char *what);

#endif
