/* io/provenance.h — the provenance manifest of a job's output folder.
 *
 * provenance.json records what is needed to re-run a job and compare it bit for
 * bit: lethe's version and source commit, the job, a digest of the resolved
 * config, the layout and rank count, the hosts, the Slurm job id and array
 * index, the versions of MPI, HDF5, OpenBLAS (and its core) and cJSON, the
 * seeds, the start and end times and the status, and (when the job ended) what it
 * cost: CPU seconds (user + system, summed over the ranks), wall seconds, and both per
 * phase of the job ("phases": {"start-up": {"cpu_seconds", "wall_seconds"}, ...}).
 * Collective over `world` (the host names are gathered); rank 0 writes, via a temporary
 * name. */
#ifndef LETHE_PROVENANCE_H
#define LETHE_PROVENANCE_H

#include <mpi.h>
#include <stddef.h>
#include <time.h>

#include "config.h"

#define PROVENANCE_MAX_PHASES 6

/* What a job cost, as rank 0 knows it after the reduction: cpu_seconds summed over the
 * ranks, wall_seconds rank 0's; the phases' names in the order they first ran. */
typedef struct {
    double cpu_seconds, wall_seconds;
    int n_phases;
    const char *phase[PROVENANCE_MAX_PHASES];
    double phase_cpu[PROVENANCE_MAX_PHASES], phase_wall[PROVENANCE_MAX_PHASES];
} provenance_cost;

/* cost: NULL while the job runs (no cost keys are written). */
int provenance_write(const char *path, const char *job, const lethe_config *c, MPI_Comm world,
                     time_t started, time_t ended, const char *status,
                     const provenance_cost *cost, char *err, size_t errlen);

#endif
