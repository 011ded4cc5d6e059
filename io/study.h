/* io/study.h — study files: the format, and its expansion into the DAG of jobs.
 *
 * A study file (JSON) names a base lethe config and the parts of the study:
 *   {"study": "tofu-tiny",
 *    "base":    { a lethe config: model, layout, optim, eval, ... },
 *    "synth":   {"synth.kind": "authors", ...}          dotted overrides of the synth job
 *    "forget":  ["forget05"],                             forget levels studied
 *    "origin":  {"train.steps": 300, ...},                overrides of the origin model's training
 *    "retrain": {...},                                    ... and of the retrained models'
 *    "methods": {"simnpo": {"unlearn.beta": 2.5}, "npo": {...}, "ga": {}, "graddiff": {}},
 *    "grid":    {"optim.lr": [1e-5, 3e-5]},              every method is run at every point
 *    "seeds":   [1, 2, 3],
 *    "eval":    {...},  "relearn": {...} (optional),  "report": true}
 * or, per method, its own fixed keys and grid (the other form; both may be mixed):
 *    "methods": {"simnpo": {"fixed": {"unlearn.beta": 2.5},
 *                           "grid": {"optim.lr": [...], "unlearn.c_f": [0.1375, 1]}}, ...}
 * Instead of "synth", "origin" and "retrain", a study may start from a model folder and
 * the TOFU files (io/study_source.c): "source": {"model_dir", "tofu_dir", "template",
 * "seq_len", "holdout", "prepare_args", "retrain_dirs"}, each also given as --set
 * source.KEY=VALUE; its jobs are prepare --tofu and convert --from, then as above with
 * TOFU's split names. A method's fixed string value may hold "{forget}", replaced by the
 * level ("unlearn.preset": "tofu-{forget}").
 * Every method gets the same budget (settings x seeds), or the study is refused.
 * Setting k of a method ("simnpo-p3") is the k-th point of its grid (last key fastest).
 * With "protocol": {"selection_seeds": [...], "report_seeds": [...], "tau": 0.95,
 * "rule": "fq_at_mu"} (instead of "seeds"), every setting runs on the selection seeds
 * (unlearn -> eval), a `select` job per forget level and method picks one setting
 * (analysis/select.h), and only it runs on the report seeds (unlearn -> eval ->
 * relearn): those report-phase jobs are materialised by the select job (their job.json
 * and labels.json are written by it, from templates it carries in its own job.json).
 * study_expand turns it into jobs (synth -> origin and retrain -> evals of the
 * reference models -> unlearn per method x grid point x seed -> eval -> relearn
 * -> report), each with its own folder, config file and dependencies. The same
 * expansion drives `lethe study` (jobs/study.c, local ranks) and `lethe slurm`
 * (slurm/plan.h, sbatch). This module owns the format and its checks (study.c: reading,
 * the known keys, the files a study writes: job configs, done markers; study_expand.c:
 * the jobs); it runs nothing. */
#ifndef LETHE_IO_STUDY_H
#define LETHE_IO_STUDY_H

#include <cjson/cJSON.h>
#include <stddef.h>

#define STUDY_MAX_JOBS 4096
#define STUDY_MAX_DEPS 64
#define STUDY_REPORT_DEPS 8 /* the report lists its last 8 evals; the runner runs it last */

typedef struct {
    char name[128]; /* unique; also the folder under the study directory */
    char job[16];   /* lethe subcommand: synth, train, unlearn, eval, relearn, select, report */
    int deps[STUDY_MAX_DEPS], ndeps;
    char *config_json; /* the job's config (NULL for report) */
    char *labels_json; /* labels.json written beside an eval's summary (may be NULL) */
    int array_group;   /* jobs with the same group > 0 differ only in hyper-parameters */
    int select;        /* > 0: select job select-1 writes this job's files (config_json and
                        * labels_json are then its templates, before the chosen setting) */
} study_job;

typedef struct {
    char name[128];
    char dir[512]; /* study directory (absolute) */
    study_job *jobs;
    int njobs;
} study;

/* Reads and expands a study file into dir. 0, or -1 with one line in err. */
int study_load(study *s, const char *path, const char *dir, char *err, size_t errlen);
/* The same with "key=value" overrides of the base config (every job's), as `lethe
 * study --set` gives them: value parsed as JSON if it parses, else taken as a string. */
int study_load_with(study *s, const char *path, const char *dir, char **overrides, int noverrides,
                    char *err, size_t errlen);
void study_free(study *s);
/* Writes each job's folder and config file (dir/<name>/job.json, labels.json). A job
 * marked done keeps its files; when its stored job.json or labels.json differs from the
 * expansion's (layout.* and threads aside: they do not change results), -1 with "job 'NAME' is finished but job.json key 'K' was OLD, now NEW"
 * in err and nothing written, or with rerun_changed its folder (and those of the
 * finished jobs depending on it, the report's on any) is renamed to <name>.old-N so
 * that the job runs again: results are never relabelled. A report-phase job (select > 0)
 * gets its folder only: its select job writes its files, or, once that select job is
 * finished, they are written again here from its choice (selected.json's index) for
 * every report-phase job not finished. Its templates are checked through its select
 * job's job.json, and a moved select job moves the finished jobs that depend on it.
 * held (NULL, or one entry per job): a non-NULL held[j] is job j's Slurm id from an earlier
 * submission that may still be queued or running (`lethe slurm`): its files are kept as
 * they are, like a finished job's, and a change to them is refused naming the key, with
 * --rerun-changed too (its folder cannot be moved aside while Slurm may start it). */
int study_write_configs(const study *s, int rerun_changed, const char *const *held, char *err,
                        size_t errlen);
/* Select job sel's spec (its job.json: {"select": {...}}): writes the job.json and
 * labels.json of every report-phase job it lists, with candidate k's overrides and
 * labels. 0, or -1 with one line in err. */
int study_materialise(const cJSON *spec, int k, char *err, size_t errlen);
/* 1 when the job's completion marker exists. */
int study_job_done(const study *s, int j);
void study_mark_done(const study *s, int j);
/* Sets the dotted key ("optim.lr") of root to v, taking v; creates objects on the way. */
void study_json_set(cJSON *root, const char *key, cJSON *v);

/* The files of a study folder. study_read_text: the whole file (malloc'd), or NULL with
 * "cannot open WHAT 'path': reason" or "cannot read WHAT 'path'" in err.
 * study_write_text: text then tail (may be "") written to path through a temporary name
 * (nothing is half-written); 0, or -1 with "cannot write 'path...'" in err. */
char *study_read_text(const char *path, const char *what, char *err, size_t errlen);
int study_write_text(const char *path, const char *text, const char *tail, char *err,
                     size_t errlen);

#endif
