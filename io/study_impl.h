/* io/study_impl.h — what the parts of the study module share (internal): study.c reads
 * a study file and checks its keys, study_methods.c reads the methods, their grids,
 * the seeds and the protocol, study_expand.c turns the checked JSON into the jobs, and
 * study_protocol.c adds a protocol study's select and report-phase jobs. */
#ifndef LETHE_IO_STUDY_IMPL_H
#define LETHE_IO_STUDY_IMPL_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "study.h"

#define STUDY_MAX_GRID_KEYS 16
#define STUDY_MAX_METHODS 32

/* One method: its fixed keys and its grid (the cartesian product of every key's list). */
typedef struct {
    const char *name;
    const cJSON *fixed; /* dotted keys (an object), or NULL */
    const cJSON *gkeys[STUDY_MAX_GRID_KEYS];
    int glen[STUDY_MAX_GRID_KEYS], gk, npoints;
} study_method;

/* What the expansion of one study carries from step to step. */
typedef struct {
    study *s;
    const cJSON *root;
    const char *path, *dir;
    char *err;
    size_t errlen;
    study_method methods[STUDY_MAX_METHODS];
    int nmethods;
    const cJSON *seeds; /* the seeds of every setting (NULL: the one seed 1); with a
                         * protocol, the selection seeds */
    int nseeds;
    int protocol;              /* a protocol study: selection, select, report phases */
    const cJSON *report_seeds; /* with a protocol */
    int nreport;
    double tau;
    const char *rule;
    int markov;     /* a markov-chain study: its own forget levels */
    cJSON *source;  /* a study from a model folder and the TOFU files (study_source.c):
                     * "source" with its --set source.* overrides; NULL: built-in data */
    cJSON *base;    /* every job's config before its part's overrides */
    char data[700]; /* the synthetic data set */
    int j_synth, j_origin, group;
    int evals[STUDY_MAX_JOBS], nevals; /* what the report reads */
} expansion;

/* The splits and jobs of one forget level. */
typedef struct {
    char fs[32], rs[32], ts[40], lv[16]; /* forget / retain / train split, name tag */
    char efs[48], ers[48];               /* the forget and retain splits evaluated */
    cJSON *eval;                         /* the config every eval of this level shares */
    int j_ref, j_eo;                     /* the retrained and the origin model's evals */
} level;

/* A printable, one-line copy of a hostile string for messages. */
const char *study_shown(const char *v, char *buf, size_t len);

/* Expands root (a study file whose top-level keys are known) into s, in dir, with the
 * --set overrides of the base config. 0, or -1 with one line in err (s is then freed). */
int study_expand(study *s, const cJSON *root, const char *path, const char *dir, char **overrides,
                 int noverrides, char *err, size_t errlen);

/* study_methods.c: the methods (either form), their grids, the seeds and the protocol
 * into x, and the equal-budget check. 0, or -1 with one line in x->err. */
int study_read_methods(expansion *x);
/* "optim.lr": non-empty parts (the config parser judges the names themselves). */
int study_bad_key(const char *what, const char *k, char *err, size_t errlen);
/* Method m's setting k: its grid values set in u (may be NULL) and, by their last key
 * part, in lab (may be NULL), with "setting": "<method>-p<k>"; the overrides of the
 * setting in over (may be NULL). */
void study_set_point(const study_method *m, int k, cJSON *u, cJSON *lab, cJSON *over);

/* study_expand.c, for study_protocol.c */
int study_add_job(expansion *x, const char *name, const char *job, cJSON *cfg, const int *deps,
                  int ndeps, const cJSON *lab, int group);
/* The unlearn config, labels and folder tag of method m at setting k (k < 0: none yet,
 * the report phase's template) with seed; phase "selection" or "report". 0 or -1. */
int study_unlearn_config(expansion *x, const level *L, const study_method *m, int k, int seed,
                         const char *phase, cJSON **u, cJSON **lab);
/* unlearn -> eval (-> relearn with relearn) named <kind>-<lv>-<method>-<tag>; the eval's
 * index in *j_eval. 0 or -1. */
int study_add_chain(expansion *x, const level *L, const study_method *m, const char *tag, cJSON *u,
                    const cJSON *lab, int dep, int with_relearn, int *j_eval);

/* study_source.c: a study from a model folder and the TOFU files ("source": model_dir,
 * tofu_dir, template, seq_len, prepare_args, retrain_dirs). study_source_set: a --set
 * source.KEY=VALUE (0 or -1); study_source_check: the keys and the parts a source study
 * excludes (synth, origin, retrain); study_add_source: the prepare job (the data set) and
 * the convert job that makes the origin model; study_source_level: a TOFU level's splits
 * ("forget05" -> forget05 / retain95, evaluated on eval/forget05_perturbed and
 * eval/retain_perturbed) and its evaluation keys; study_source_retrain: the convert job
 * of the level's retrained model when retrain_dirs names one (*j = -1 when not). */
int study_source_set(expansion *x, const char *key, const char *value);
int study_source_check(expansion *x);
int study_add_source(expansion *x);
int study_source_level(expansion *x, const cJSON *fl, level *L);
void study_source_eval(const expansion *x, const level *L, cJSON *eval);
int study_source_retrain(expansion *x, const level *L, const char *name, int *j);

/* study_protocol.c: a protocol study's method m at level L: its selection phase, its
 * select job and its report phase. 0 or -1. */
int study_add_protocol(expansion *x, const level *L, const study_method *m);

#endif
