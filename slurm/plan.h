/* slurm/plan.h — `lethe slurm`'s planning: a study (io/study.h), a node-count sweep of
 * bench jobs or one job, as Slurm batch jobs.
 *
 * Every job gets a folder <dir>/<name> holding its config (job.json) and its batch
 * script (job.sbatch, rendered by slurm/sbatch.h): `lethe <job> <dir>/<name>/job.json`
 * (the report: `lethe report <dir>`) on layout.dp*pp*tp ranks. Jobs of one array_group
 * and kind (a method's grid points and seeds, or their evals or relearn attacks) become
 * one job array: <dir>/<group>.sbatch picks its folder from line SLURM_ARRAY_TASK_ID+1
 * of <dir>/<group>.tasks. Jobs are submitted in dependency order with `sbatch
 * --parsable`, each waiting (afterok) for the jobs and arrays it depends on; a job that
 * depends on one task of an array waits for the whole array. train, unlearn and relearn
 * jobs get the pre-timeout signal (--signal=B:USR1@S, forwarded to the ranks, which write
 * checkpoint.h5 and exit) and requeue themselves. A script that ends with status 0 marks
 * its job done (<dir>/<name>/.done) unless the job was preempted (signalled, and a
 * checkpoint is left to resume from); a job marked done does not run again, and only the
 * jobs that are neither done nor still queued or running from an earlier submission (the
 * ids in <dir>/slurm_jobs.tsv that squeue still lists; those are waited for instead) are
 * submitted. Every submitted id is appended to <dir>/slurm_jobs.tsv.
 *
 * sbatch hands the submitter's environment to the job; the variables an MPI launcher
 * gives this process (PMIX_*, OMPI_MCA_ess, ...) are not passed on, so the ranks that
 * srun starts do not believe they are a singleton.
 *
 * No MPI: the command's front-end (jobs/slurm.c) parses the options and calls
 * slurm_plan_submit on one rank. Errors travel in a slurm_err the caller owns: one line,
 * and the exit code (2 for a bad command line or input file, 1 when a file cannot be
 * written or sbatch fails). */
#ifndef LETHE_SLURM_PLAN_H
#define LETHE_SLURM_PLAN_H

#include <stddef.h>

#include "sbatch.h"

#define SLURM_MAX_NODES_LIST 64
#define SLURM_MAX_SETS 64

typedef struct {
    const char *file, *dir, *partition, *account, *time_limit, *job_kind, *name;
    int nodes, ntasks_per_node, throttle, signal_seconds, loopback, overcommit, dry, serial;
    int rerun_changed; /* --rerun-changed: io/study.h study_write_configs */
    int nodes_list[SLURM_MAX_NODES_LIST], n_nodes_list;
    lethe_sbatch_launcher launcher;
    const char *sets[SLURM_MAX_SETS]; /* --set key=value of a single job */
    int nsets;
} slurm_opts;

/* The one-line message of a failed step (without the leading "lethe: "). */
typedef struct {
    char msg[2048];
} slurm_err;

#if defined(__GNUC__)
#define SLURM_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define SLURM_PRINTF(a, b)
#endif

/* Sets e's message and returns code. */
int slurm_fail(slurm_err *e, int code, const char *fmt, ...) SLURM_PRINTF(3, 4);

/* s as an integer in lo..hi into *out: 0, or -1 (nothing set). */
int slurm_parse_int(const char *s, int lo, int hi, int *out);

/* Builds the job list of o->file (a study, a sweep, or o->job_kind's one job), writes
 * every folder, config and script, and unless o->dry submits them in dependency order;
 * prints the summary line and the table of jobs (also after a submission that failed
 * part way). 0, or the exit code with e's message. */
int slurm_plan_submit(const slurm_opts *o, slurm_err *e);

#endif
