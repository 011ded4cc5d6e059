/* slurm/plan_impl.h — what the parts of the planner share (internal): the plan of every
 * job, the submission units and the context (plan.c: the plan and its run; plan_build.c:
 * the study, sweep or single job; plan_units.c: units, their dependencies and order;
 * script.c: the batch scripts; submit.c: sbatch and squeue, the table and the record). */
#ifndef LETHE_SLURM_PLAN_IMPL_H
#define LETHE_SLURM_PLAN_IMPL_H

#include <limits.h>
#include <stdio.h>

#include "../io/study.h"
#include "plan.h"
#include "sbatch.h"

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
    slurm_err *err;
    study s;
    int is_study;     /* a study file (copied to DIR/study.json) */
    int *force_nodes; /* per job: node count fixed by a sweep, 0: derived */
    job_plan *plan;
    unit_t *units;
    int nunits;
    char lethe_bin[PATH_MAX];
} ctx_t;

/* plan.c */
int sl_add_unique(slurm_err *e, int **v, int *n, int x);
int sl_add_ext(slurm_err *e, unit_t *u, const char *id);
int sl_job_needs_signal(const char *kind);
int sl_job_ranks(const ctx_t *c, const study_job *j, int *ranks);
void sl_job_nodes(const ctx_t *c, int j, int ranks, int *nodes, int *per_node);

/* plan_build.c */
int sl_build(ctx_t *c);

/* plan_units.c */
int sl_make_units(ctx_t *c);

/* script.c */
int sl_write_script(ctx_t *c, unit_t *x, const unsigned long *afterok, size_t n_afterok);

/* submit.c */
char *sl_read_text(slurm_err *e, int code, const char *path, const char *what);
int sl_write_text(slurm_err *e, const char *path, const char *text);
int sl_mkdir(slurm_err *e, const char *path);
int sl_run_capture(slurm_err *e, const char *const *argv, char *out, size_t len);
const char *sl_last_line(char *text);
int sl_submit(slurm_err *e, unit_t *x);
int sl_record(ctx_t *c, const unit_t *x);
void sl_print_table(const ctx_t *c);

#endif
