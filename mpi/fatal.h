/* mpi/fatal.h — rank-aware errors that end the whole job.
 *
 * lethe_fatal, lethe_fatal_code: one rank found a problem the others may not know
 *                about: print "lethe: rank R (dpD ppP tpT): message" and MPI_Abort the
 *                job (exit code 1, or `code`).
 * MPI_CHECK:     wraps every MPI call; a failure is such a problem, and its line names
 *                the call, the file and line, and MPI_Error_string of the code. MPI
 *                returns errors instead of aborting inside MPI because comm_init and
 *                grid_create set MPI_ERRORS_RETURN (lethe_errors_return).
 * lethe_agree:   collective — each rank passes ok (1) or not (0) and its own message;
 *                every rank learns whether all were ok and, if not, the lowest failing
 *                rank and its message.
 * lethe_check:   lethe_agree that ends the job: if any rank failed, the lowest failing
 *                rank prints its message, every rank finalizes and exits with `code`
 *                (no abort, no hang). For verdicts every rank reaches together (config
 *                or layout validation, an agreed I/O failure). */
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

/* Process set-up (comm_init, after MPI_Init): the key under which MPI_COMM_WORLD
 * carries the grid that labels this rank's messages. */
void fatal_init(void);
/* Label this rank's messages with g's coordinates (an attribute of MPI_COMM_WORLD);
 * NULL removes the label (then the world rank alone is printed). */
void fatal_set_grid(const lethe_grid *g);

LETHE_NORETURN void lethe_fatal(const char *fmt, ...) LETHE_PRINTF(1, 2);
LETHE_NORETURN void lethe_fatal_code(int code, const char *fmt, ...) LETHE_PRINTF(2, 3);

/* Returns 0 when every rank of comm passed ok; otherwise -1, with the lowest failing
 * rank in *first (if first) and its message in msg on every rank ("failed (no message)"
 * if it gave none). msg holds len bytes, the same len on every rank. */
int lethe_agree(MPI_Comm comm, int ok, char *msg, size_t len, int *first);
void lethe_check(MPI_Comm comm, int ok, int code, const char *fmt, ...) LETHE_PRINTF(4, 5);

/* Non-fatal note without a rank, "lethe: warning: message" (callers print it from one
 * rank). */
void lethe_warn(const char *fmt, ...) LETHE_PRINTF(1, 2);
/* Non-fatal note naming this rank: "lethe: rank R (dpD ppP tpT): warning: message". */
void lethe_warn_rank(const char *fmt, ...) LETHE_PRINTF(1, 2);

/* MPI calls on c (a communicator) return their error codes to MPI_CHECK instead of
 * aborting inside MPI without a lethe line. */
void lethe_errors_return(MPI_Comm c);

/* "lethe: rank R (...): MPI call failed: CALL (FILE:LINE): <MPI_Error_string(rc)>", then
 * MPI_Abort. */
LETHE_NORETURN void lethe_mpi_failed(int rc, const char *call, const char *file, int line);
#define MPI_CHECK(call)                                                                            \
    do {                                                                                           \
        int mpi_rc_ = (call);                                                                      \
        if (mpi_rc_ != MPI_SUCCESS) lethe_mpi_failed(mpi_rc_, #call, __FILE__, __LINE__);          \
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
