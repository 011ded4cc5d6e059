/* jobs/agree.c — every rank checks that it was given what rank 0 was given before any
 * work: the digest (FNV-1a, lethe_hash_str) of the job's name and its resolved config
 * (config_to_json: after --set overrides), or of a study's expanded jobs, agreed with
 * one all-reduce. An MPMD launch whose ranks got different configs would otherwise
 * deadlock or fail in a message of the wrong size. On disagreement rank 0's text is
 * broadcast, every rank that differs names the first key where it does, and the lowest
 * such rank's line ends the job on every rank (exit 2). */
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../model/params.h"
#include "../mpi/fatal.h"
#include "jobs.h"

/* Rank 0's text on every rank (malloc'd), or NULL when out of memory (on that rank). */
static char *rank0_text(const char *text, MPI_Comm comm)
{
    int rank;
    long long n = (long long)strlen(text) + 1;
    MPI_CHECK(MPI_Comm_rank(comm, &rank));
    MPI_CHECK(MPI_Bcast(&n, 1, MPI_LONG_LONG, 0, comm));
    char *buf = n < INT32_MAX ? malloc((size_t)n) : NULL;
    int ok = buf != NULL;
    lethe_check(comm, ok, 1, "out of memory while comparing the ranks' configs");
    if (rank == 0) memcpy(buf, text, (size_t)n);
    MPI_CHECK(MPI_Bcast(buf, (int)n, MPI_CHAR, 0, comm));
    buf[n - 1] = 0;
    return buf;
}

void job_agree_text(const char *what, const char *text, int is_json, MPI_Comm comm)
{
    int rank;
    MPI_CHECK(MPI_Comm_rank(comm, &rank));
    uint64_t h = lethe_hash_str(text), mine[2] = {h, ~h}, low[2];
    MPI_CHECK(MPI_Allreduce(mine, low, 2, MPI_UINT64_T, MPI_MIN, comm));
    if (low[0] == ~low[1]) return; /* min == max: every rank has the same digest */
    char *r0 = rank0_text(text, comm), key[300], a[80], b[80], msg[900] = "";
    uint64_t h0 = lethe_hash_str(r0);
    if (h != h0 && is_json && config_json_diff(r0, text, key, sizeof key, a, b, sizeof a))
        snprintf(msg, sizeof msg,
                 "the ranks were given different %s: rank %d differs from rank 0 at key '%s' "
                 "(rank 0: %s, rank %d: %s); give every rank the same command line",
                 what, rank, strncmp(key, "config.", 7) ? key : key + 7, a, rank, b);
    else if (h != h0)
        snprintf(msg, sizeof msg,
                 "the ranks were given different %s: rank %d has digest %016llx, rank 0 %016llx; "
                 "give every rank the same files and options",
                 what, rank, (unsigned long long)h, (unsigned long long)h0);
    free(r0);
    lethe_check(comm, h == h0, 2, "%s", msg);
}

void job_agree_config(const lethe_config *c, const char *job, MPI_Comm comm)
{
    char *json = config_to_json(c);
    int ok = json != NULL;
    lethe_check(comm, ok, 1, "out of memory while writing the config as JSON");
    /* the job's name as a key of its own, so that `lethe train : lethe eval` is named */
    size_t n = strlen(json) + strlen(job) + 32;
    char *text = malloc(n);
    ok = text != NULL;
    lethe_check(comm, ok, 1, "out of memory while writing the config as JSON");
    snprintf(text, n, "{\"lethe job\": \"%s\", \"config\": %s}", job, json);
    free(json);
    job_agree_text("configs", text, 1, comm);
    free(text);
}
