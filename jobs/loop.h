/* jobs/loop.h — the one step loop of train, unlearn and relearn.
 *
 * loop_run owns what every training job does around its optimizer step: the step
 * iteration (from the checkpoint's step when resuming), the time waiting for data and
 * the step time, the per-step line (terminal every train.log_every steps, and a JSON
 * line to <log>.partial, renamed to <log> when the job completes; a resumed run cuts it
 * back to the checkpoint's step, then appends, so each step is logged once), a start at
 * or past the last step (refused in one line: nothing is left to run, and the
 * checkpoint's weights are not this config's final model), the checkpoint policy
 * (checkpoint.every, and the final model), preemption (SIGUSR1: the step finishes,
 * checkpoint.h5 is written, the job ends with status "preempted"), write errors and a
 * full disk (checked after every line, for every job), the fault-injection points and
 * the ETA. The non-finite policy (stop or skip) is model_train_step's; a skipped step is
 * logged as such. A job supplies only what differs: how its batch is made, its
 * optimizer step, its extra log fields and what it does when the model reaches a step. */
#ifndef LETHE_LOOP_H
#define LETHE_LOOP_H

#include "jobs.h"

#define LOOP_MAX_FIELDS 8

/* An extra log field of a job: its JSON key, and its terminal label and format (NULL:
 * the JSON line only). Values are written with %.9g, or null when not finite. */
typedef struct {
    const char *key, *label, *fmt;
} loop_field;

typedef struct {
    void *job;  /* passed to every callback */
    int total;  /* the schedule's length: steps run while step < total */
    const char *total_key; /* the setting behind total, named when a start is past it */
    int first;  /* the first step when resume is 0 */
    int resume; /* continue from output.dir/checkpoint.h5 (checkpoint.resume decides) */
    int every;  /* checkpoint every this many steps (0: none) */
    /* the checkpoint's cursors: {epoch, position} of each of n_loaders loaders (a NULL
     * loader counts as {0, 0}); and the job's own named values (its /job group) */
    loader *loaders[2];
    int n_loaders;
    const char *const *state_keys;
    const double *state;
    int n_state;
    double *resume_state;   /* resuming: the checkpoint's values of state_keys land here (the
                               job's own state, e.g. PDU's dual variable; NULL: not read) */
    const char *final_name; /* written after the last step (NULL: nothing) */
    const char *log_name;   /* the JSON-lines log (NULL: no log and no step line) */
    const char *what;       /* named in the preemption line (NULL: nothing) */
    double tokens_per_step; /* global tokens per step, for tokens/s */
    double flops_per_token; /* > 0: gflops is logged too */
    int show_epoch;         /* the terminal line shows the epoch */
    loop_field fields[LOOP_MAX_FIELDS];
    int n_fields;
    /* Makes the batch of `step` (NULL: the job's batch is fixed); *epoch: its data
     * epoch. The time it takes counts as waiting for data. */
    void (*batch)(void *job, int step, int64_t *epoch);
    /* Runs the optimizer step `step` of `total` (model_train_step) and fills st and
     * the values of the extra fields (the same on rank 0 as logged). */
    void (*step)(void *job, int step, int total, step_stats *st, double *values);
    /* The model is at `step`: called for the first step and after every step (NULL:
     * nothing). A non-zero return asks for a checkpoint there. */
    int (*reached)(void *job, int step);
} loop_spec;

typedef enum { LOOP_DONE, LOOP_PREEMPTED } loop_result;

typedef struct {
    double first_loss, last_loss; /* of the steps run and not skipped (NaN: none) */
    int64_t epoch;                /* the last batch's */
    job_data_clock clock;
    double seconds; /* wall time of loop_run */
} loop_outcome;

/* Collective over the session's world. On LOOP_PREEMPTED the session's status is
 * "preempted"; the job only frees what it holds and closes the session. */
loop_result loop_run(lethe_session *S, const loop_spec *spec, loop_outcome *out);

#endif
