/* io/provenance.h — the provenance manifest of a job's output folder.
 *
 * provenance.json records what is needed to re-run a job and compare it bit for
 * bit: lethe's version and source commit, the job, a digest of the resolved
 * config, the layout and rank count, the hosts, the Slurm job id and array
 * index, the versions of MPI, HDF5, OpenBLAS (and its core) and cJSON, the
 * seeds, the start and end times and the status. Collective over `world` (the
 * host names are gathered); rank 0 writes, via a temporary name. */
#ifndef LETHE_PROVENANCE_H
#define LETHE_PROVENANCE_H

#include <mpi.h>
#include <stddef.h>
#include <time.h>

#include "config.h"

int provenance_write(const char *path, const char *job, const lethe_config *c, MPI_Comm world,
                     time_t started, time_t ended, const char *status, char *err, size_t errlen);

#endif
