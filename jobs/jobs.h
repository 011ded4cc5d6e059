/* jobs/jobs.h — the jobs behind `lethe <job>` and how every job opens.
 *
 * session_open: parse the config (with --set overrides) on every rank and agree
 * on the verdict (exit 2 with one line on a bad config), build the grid from the
 * layout (exit 2 if it does not match the rank count or the model), set the BLAS
 * threads, build and initialise the model, create the output folder and write
 * the resolved config there. Nothing heavy happens before all checks pass. */
#ifndef LETHE_JOBS_H
#define LETHE_JOBS_H

#include <cjson/cJSON.h>

#include "../io/config.h"
#include "../io/loader.h"
#include "../io/provenance.h"
#include "../model/step.h"
#include "../model/transformer.h"
#include "../mpi/grid.h"

/* Fault injection for tests, from LETHE_FAULT (parsed once by session_open; all zero
 * when unset): see job_fault_point. */
typedef struct {
    enum { FAULT_NONE, FAULT_ABORT, FAULT_KILL } kind; /* the after-step faults */
    int step, rank;
    step_fault nan; /* nan-at-step, handed to model_train_step (step 0: off) */
} job_fault;

/* What a job has spent since its config was read (jobs/session.c): this rank's CPU
 * seconds (getrusage: user + system) and wall seconds, per phase (session_phase). */
typedef struct {
    int on, cur, n;                /* cur: the running phase */
    double cpu0, wall0, cpu, wall; /* at the start and at the last phase change */
    const char *name[PROVENANCE_MAX_PHASES];
    double phase_cpu[PROVENANCE_MAX_PHASES], phase_wall[PROVENANCE_MAX_PHASES];
} session_clock;

typedef struct {
    const char *job;
    const char *config_path;
    lethe_config cfg;
    lethe_grid grid;
    lethe_model model;
    int have_model;
    int have_output; /* provenance.json written at the start; completed at close */
    int have_lock;   /* output.dir/.lock held (by rank 0) until close */
    long started;
    const char *status; /* written into provenance.json at close ("completed" if NULL) */
    job_fault fault;
    session_clock clock; /* cost written into provenance.json at close */
} lethe_session;

/* argv: the arguments after the job name. Parses the config on every rank and
 * builds the grid; exits (code 2) on bad usage, config or layout. */
/* The arguments of a job (CONFIG.json [--set key=value ...]) read into s->config_path and
 * s->cfg on this rank. 0, or -1 with one line in err. */
int session_read_config(lethe_session *s, const char *job, int argc, char **argv, char *err,
                        size_t errlen);
void session_open(lethe_session *s, const char *job, int argc, char **argv);
/* session_open with a base config (JSON text; base_origin names it in messages) whose
 * "model" and "hf" keys the job takes (io/config.h config_load_base): convert's import
 * of a Hugging Face folder. The config file may then be left out. session_open itself
 * takes the model (and hf) keys from init.checkpoint's stored config when one is set: a
 * job config need give no model keys, and one that differs is refused naming the key. */
void session_open_base(lethe_session *s, const char *job, int argc, char **argv,
                       const char *base, const char *base_origin);
/* Every rank of comm must hold the same text (a digest agreed with one all-reduce), or
 * the job ends on every rank (exit 2) with one line: "the ranks were given different
 * WHAT: rank R differs from rank 0 at key 'K' (rank 0: V0, rank R: VR)" when is_json,
 * else naming the digests. job_agree_config: the job's name and its resolved config
 * (session_open and synth's open call it before the grid is built). */
void job_agree_text(const char *what, const char *text, int is_json, MPI_Comm comm);
void job_agree_config(const lethe_config *c, const char *job, MPI_Comm comm);
/* Creates the output folder and writes the resolved config there. Jobs call it
 * after every check has passed, so a refused job leaves nothing behind. */
void session_output(lethe_session *s);
/* Checks the layout against the model and batch (exit 2 naming the numbers), then
 * creates this rank's shard, with the random initial weights unless init.checkpoint
 * names the weights to load. */
void session_build_model(lethe_session *s, int global_batch, int seq_len);
void session_close(lethe_session *s);
/* The phase the job's time is charged to from now on (a name with static storage:
 * "start-up" from session_open, "run" after session_output, "load" inside
 * session_load_init; a job may add its own, e.g. "eval"); returns the phase that was
 * running, so a nested phase can hand back: prev = session_phase(s, "eval"); ...;
 * session_phase(s, prev). At most PROVENANCE_MAX_PHASES names per job (more are
 * charged to the last). Local: no communication. */
const char *session_phase(lethe_session *s, const char *name);
/* Path inside the output folder. */
void session_path(const lethe_session *s, const char *name, char *buf, size_t len);
/* The OpenBLAS core in use and whether OPENBLAS_CORETYPE forces it: "Cooperlake (auto)". */
void blas_core_string(char *buf, size_t len);

/* Writes the model (weights and AdamW moments) with the step, the loader cursors and
 * the job's own named values (n_values of them, in the checkpoint's /job) to
 * output.dir/<name>, collectively, via a temporary file. */
void session_save(lethe_session *s, const char *name, int64_t step, int64_t epoch,
                  const int64_t *cursor, int n_cursor, const char *const *keys,
                  const double *values, int n_values);
/* Loads output.dir/checkpoint.h5 if checkpoint.resume is set and it exists (weights,
 * moments, step, cursors, and the job's named values keys[0..n_values) into values):
 * returns the step to continue from, or 0. */
int64_t session_resume(lethe_session *s, int64_t *cursor, int n_cursor, const char *const *keys,
                       double *values, int n_values);
/* Loads init.checkpoint (weights only) when one is configured. */
void session_load_init(lethe_session *s);

/* Opens a loader over the job's world for `split` of data.path (exit 2 with the
 * loader's message when the dataset is bad). */
void job_open_loader(lethe_session *S, loader **ld, const char *split, int global_batch,
                     uint64_t seed, int shuffle, int drop_last, int max_epochs, int candidates);
/* The next batch of ld, the same verdict on every rank of S's world (a loader error
 * exits 1 with its line): NULL at the end of the stream when `ended` is NULL, else the
 * end is an error too, exit 1 with the line `ended`. */
loader_batch *job_next_batch(const lethe_session *S, loader *ld, const char *ended);
/* Copies `rows` rows of a loader batch into b at row r0 (rows past lb->n, or all rows
 * when lb is NULL, become padding with no targets). */
void job_fill_batch(lethe_batch *b, int r0, int rows, const loader_batch *lb);
/* What a job's steps waited for the data stream: `wait` seconds in loader_next (and
 * copying the batch in), `compute` seconds in the optimizer steps, over `steps` steps. */
typedef struct {
    double wait, compute;
    int steps;
} job_data_clock;
/* Rank 0 prints one line: the busiest rank's wait as a share of its step time
 * (wait + compute), and whether the loader `ld` reads ahead (or why not).
 * Collective over the session's world. */
void job_data_report(const lethe_session *S, const char *job, const job_data_clock *c,
                     const loader *ld);
/* Every replica's records (n of `size` bytes each on this rank) to every rank of
 * `comm` (the dp communicator), sorted with cmp; returns a malloc'd array and the
 * total count in *total. Collective over comm. */
void *job_allgather_sorted(const void *mine, int64_t n, size_t size, MPI_Comm comm,
                           int (*cmp)(const void *, const void *), int64_t *total);
/* Fault injection for tests (off unless LETHE_FAULT is set; session_open checks it,
 * exit 2 on a malformed value): "abort-after-step:N" ends the whole job with MPI_Abort
 * right after step N completes, as a crash would; "kill-after-step:N[:RANK]" makes
 * world rank RANK (default 0) SIGKILL itself there, as a node failure would;
 * "nan-at-step:N[:RANK[:TENSOR]]" poisons a gradient at step N (model/step.h). */
void job_fault_point(const lethe_session *s, int step);
/* Removes output.dir/checkpoint.h5 once the final model is written (a symbolic link
 * there is removed itself, never followed). */
void session_finish_checkpoints(lethe_session *s);
/* mkdir -p with mode 0777 (the umask decides); 0, or -1 with err. */
int job_mkdir_p(const char *path, char *err, size_t errlen);
/* Takes the lock of output folder `dir` (created if missing) for `job` started at
 * `started` (Unix time), on rank 0 of comm, collectively: if a running lethe job holds
 * it, every rank exits with code 1 after one line naming that job (host, pid, job,
 * start time, Slurm job id); a lock left by a job that is no longer running is taken
 * over with a warning. Released by job_unlock_folder, and at exit. session_output
 * locks output.dir and session_close unlocks it. */
void job_lock_folder(const char *dir, const char *job, long started, MPI_Comm comm);
/* Rank 0, the folder locked, before anything is written in it: refuses a folder whose
 * provenance.json is another job's; sets a completed run's results of this job aside
 * (NAME.previous) before a re-run (jobs/output_guard.c). 0, or -1 with err. */
int job_claim_folder(const char *dir, const char *job, char *err, size_t errlen);
void job_unlock_folder(const char *dir);
/* Rank 0: while armed, a SIGTERM or SIGINT replaces the file at path (the running job's
 * provenance.json) by terminated, removes the held locks and ends the process by that
 * signal; an exit (an error) writes failed there before the locks go (both malloc'd,
 * now owned here). session_output arms it, session_close disarms it before the job's
 * last record. */
void job_arm_terminated(const char *path, char *terminated, char *failed);
void job_disarm_terminated(void);

/* SIGUSR1 (the scheduler's warning before a time limit or preemption) sets a
 * flag; session_preempted agrees on it over the world at a step boundary. */
void session_catch_preemption(void);
int session_preempted(const lethe_session *s);
/* This rank has received the preemption signal (no communication). */
int session_preempt_pending(void);

/* A number for a JSON-lines log: printf'd with fmt, or "null" when not finite (JSON has
 * no NaN). Returns buf. */
const char *job_json_num(char *buf, size_t len, const char *fmt, double v);

int job_train(int argc, char **argv);
int job_bench(int argc, char **argv);
int job_unlearn(int argc, char **argv);
int job_eval(int argc, char **argv);
int job_synth(int argc, char **argv);
int job_relearn(int argc, char **argv);
int job_study(int argc, char **argv);
int job_report(int argc, char **argv);
int job_select(int argc, char **argv);
int job_prepare(int argc, char **argv);
int job_convert(int argc, char **argv);
int job_slurm(int argc, char **argv);

/* A job that takes flags (convert, prepare) started as `lethe JOB job.json` with a
 * study's {"args": [...], "layout": {...}} file (jobs/job_args.c): argc/argv are the
 * flags to give the job (the command line itself when argv[0] is no such file). Every
 * rank calls it; a malformed file ends the job (exit 2). Close frees what open made. */
typedef struct {
    int argc, owned;
    char **argv, **sets;
    cJSON *json;
} job_argfile;
void job_argfile_open(job_argfile *f, const char *job, int argc, char **argv);
void job_argfile_close(job_argfile *f);

#endif
