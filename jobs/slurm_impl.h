/* jobs/slurm_impl.h — what the parts of `lethe slurm` share (internal): the options,
 * the plan of every job, the submission units and the context (slurm_submit.c: options,
 * plan, the job itself; slurm_build.c: the study, sweep or single job and its units;
 * slurm_scripts.c: files, sbatch and squeue, the batch scripts, the table and the
 * record). */
#ifndef LETHE_JOBS_SLURM_IMPL_H
#define LETHE_JOBS_SLURM_IMPL_H

#include <limits.h>
#include <stdio.h>

#include "../mpi/fatal.h"
#include "../slurm/sbatch.h"
#include "study.h"

#define MAX_NODES_LIST 64
#define MAX_SETS 64

typedef struct {
    const char *file, *dir, *partition, *account, *time_limit, *job_kind, *name;
    int nodes, ntasks_per_node, throttle, signal_seconds, loopback, overcommit, dry, serial;
    int nodes_list[MAX_NODES_LIST], n_nodes_list;
    lethe_sbatch_launcher launcher;
    const char *sets[MAX_SETS];
    int nsets;
} slurm_opts;

enum { ST_TODO, ST_DONE, ST_QUEUED };

typedef struct {
    int status;       /* ST_* */
    char prev_id[64]; /* ST_QUEUED: its id from slurm_jobs.tsv ("123" or "123_4") */
    int ranks, nodes, per_node;
    int unit, task; /* ST_TODO: its submission and its index in an array's list */
} job_plan;

typedef struct {
    char name[160];         /* the job's name, or an array's group name */
    const char *kind;       /* lethe subcommand */
    int array;              /* 1: a job array over members[] */
    int *members, nmembers; /* study jobs listed (arrays: the whole group, in order) */
    int ranks, nodes, per_node;
    int *deps, ndeps; /* units this one waits for */
    char **ext;       /* ids of queued jobs (earlier submissions) it waits for */
    int next;
    unsigned long id; /* after submission */
    char script[PATH_MAX];
    int order;
} unit_t;

typedef struct {
    slurm_opts o;
    study s;
    int is_study;     /* a study file (copied to DIR/study.json) */
    int *force_nodes; /* per job: node count fixed by a sweep, 0: derived */
    job_plan *plan;
    unit_t *units;
    int nunits;
    char lethe_bin[PATH_MAX];
} ctx_t;

/* slurm_submit.c */
/* Sets the message of the job's verdict and returns code. */
int sl_fail(int code, const char *fmt, ...) LETHE_PRINTF(2, 3);
int sl_add_unique(int **v, int *n, int x);
int sl_add_ext(unit_t *u, const char *id);
int sl_job_needs_signal(const char *kind);
int sl_job_ranks(const ctx_t *c, const study_job *j, int *ranks);
void sl_job_nodes(const ctx_t *c, int j, int ranks, int *nodes, int *per_node);

/* slurm_build.c */
int sl_build(ctx_t *c);
int sl_make_units(ctx_t *c);

/* slurm_scripts.c */
char *sl_read_text(const char *path, const char *what, char *err, size_t errlen);
int sl_write_text(const char *path, const char *text);
int sl_run_capture(const char *const *argv, char *out, size_t len);
const char *sl_last_line(char *text);
int sl_write_script(ctx_t *c, unit_t *x, const unsigned long *afterok, size_t n_afterok);
int sl_submit(unit_t *x);
int sl_record(ctx_t *c, const unit_t *x);
void sl_print_table(const ctx_t *c);

#endif
