/* jobs/session.c — config -> grid -> model: how every job opens. */
#include <cblas.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "../io/checkpoint.h"
#include "../io/provenance.h"
#include "../mpi/fatal.h"
#include "jobs.h"

void openblas_set_num_threads(int);
char *openblas_get_corename(void);

#define MAX_OVERRIDES 256

void blas_core_string(char *buf, size_t len)
{
    const char *forced = getenv("OPENBLAS_CORETYPE");
    snprintf(buf, len, "%s (%s%s)", openblas_get_corename(),
             forced && *forced ? "forced by OPENBLAS_CORETYPE=" : "auto",
             forced && *forced ? forced : "");
}

static int mkdir_p(const char *path, char *err, size_t errlen)
{
    char tmp[1024];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp) {
        snprintf(err, errlen, "output folder path too long: '%s'", path);
        return -1;
    }
    for (char *p = tmp + 1;; p++) {
        char c = *p;
        if (c == '/' || c == 0) {
            *p = 0;
            if (mkdir(tmp, 0755) && errno != EEXIST) {
                snprintf(err, errlen, "cannot create output folder '%.700s': %s", tmp,
                         strerror(errno));
                return -1;
            }
            struct stat st;
            if (stat(tmp, &st) || !S_ISDIR(st.st_mode)) {
                snprintf(err, errlen, "output path '%.700s' exists and is not a folder", tmp);
                return -1;
            }
            *p = c;
        }
        if (!c) break;
    }
    return 0;
}

void session_path(const lethe_session *s, const char *name, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s", s->cfg.output.dir, name);
}

void session_open(lethe_session *s, const char *job, int argc, char **argv)
{
    memset(s, 0, sizeof(*s));
    s->job = job;
    char *over[MAX_OVERRIDES];
    int nover = 0, ok = 1;
    char err[1024] = "";
    for (int i = 0; i < argc && ok; i++) {
        if (!strcmp(argv[i], "--set")) {
            if (i + 1 >= argc) {
                snprintf(err, sizeof err, "--set needs key=value");
                ok = 0;
            } else if (nover == MAX_OVERRIDES) {
                snprintf(err, sizeof err, "more than %d --set overrides", MAX_OVERRIDES);
                ok = 0;
            } else {
                over[nover++] = argv[++i];
            }
        } else if (!strncmp(argv[i], "--set=", 6)) {
            if (nover < MAX_OVERRIDES) over[nover++] = argv[i] + 6;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            snprintf(err, sizeof err, "%s: unknown option '%s' (see lethe %s --help)", job,
                     argv[i], job);
            ok = 0;
        } else if (!s->config_path) {
            s->config_path = argv[i];
        } else {
            snprintf(err, sizeof err, "%s: unexpected argument '%s' (one config file only)", job,
                     argv[i]);
            ok = 0;
        }
    }
    if (ok && !s->config_path) {
        snprintf(err, sizeof err, "%s: no config file given (usage: lethe %s CONFIG.json "
                                  "[--set key=value ...])", job, job);
        ok = 0;
    }
    if (ok && config_load(&s->cfg, s->config_path, over, nover, err, sizeof err)) ok = 0;
    lethe_check(MPI_COMM_WORLD, ok, 2, "%s", err);

    const lethe_layout_config *L = &s->cfg.layout;
    ok = grid_create(&s->grid, MPI_COMM_WORLD, L->dp, L->pp, L->tp, err, sizeof err) == 0;
    lethe_check(MPI_COMM_WORLD, ok, 2, "%s", err);
    fatal_set_grid(&s->grid);
    openblas_set_num_threads(s->cfg.threads);
}

void session_output(lethe_session *s)
{
    char err[1024] = "";
    int ok;
    /* output folder and resolved config: rank 0 writes, everyone learns the verdict */
    ok = 1;
    if (s->grid.rank == 0) {
        char path[1100];
        ok = mkdir_p(s->cfg.output.dir, err, sizeof err) == 0;
        if (ok) {
            session_path(s, "config.json", path, sizeof path);
            ok = config_write(&s->cfg, path, err, sizeof err) == 0;
        }
    }
    lethe_check(s->grid.world, ok, 1, "%s", err);
    s->started = (long)time(NULL);
    MPI_CHECK(MPI_Bcast(&s->started, 1, MPI_LONG, 0, s->grid.world));
    char path[1100];
    session_path(s, "provenance.json", path, sizeof path);
    ok = provenance_write(path, s->job, &s->cfg, s->grid.world, (time_t)s->started, 0, "running",
                          err, sizeof err) == 0;
    lethe_check(s->grid.world, ok, 1, "%s", err);
    s->have_output = 1;
}

void session_build_model(lethe_session *s, int global_batch, int seq_len)
{
    const lethe_layout_config *L = &s->cfg.layout;
    char err[512];
    int ok = model_check_layout(&s->cfg.model, L->dp, L->pp, L->tp, global_batch,
                                L->micro_batches, seq_len, err, sizeof err) == 0;
    lethe_check(s->grid.world, ok, 2, "%s", err);
    model_create(&s->model, &s->cfg.model, &s->grid, global_batch / L->dp / L->micro_batches,
                 seq_len);
    model_init_weights(&s->model);
    s->have_model = 1;
}

void session_close(lethe_session *s)
{
    if (s->have_output) {
        char path[1100], err[1200];
        session_path(s, "provenance.json", path, sizeof path);
        if (provenance_write(path, s->job, &s->cfg, s->grid.world, (time_t)s->started,
                             time(NULL), s->status ? s->status : "completed", err, sizeof err))
            lethe_warn("%s", err);
    }
    if (s->have_model) model_free(&s->model);
    fatal_set_grid(NULL);
    grid_free(&s->grid);
}

void session_save(lethe_session *s, const char *name, int64_t step, int64_t epoch,
                  const int64_t *cursor, int n_cursor)
{
    char path[1100], err[1024];
    session_path(s, name, path, sizeof path);
    lethe_ckpt_meta meta;
    memset(&meta, 0, sizeof meta);
    meta.step = step;
    meta.epoch = epoch;
    meta.n_cursor = n_cursor;
    for (int i = 0; i < n_cursor; i++) meta.cursor[i] = cursor[i];
    meta.config_json = config_to_json(&s->cfg);
    int ok = ckpt_save(path, &s->model.params, &s->grid, &meta, err, sizeof err) == 0;
    free(meta.config_json);
    lethe_check(s->grid.world, ok, 1, "%s", err);
}

int64_t session_resume(lethe_session *s, int64_t *cursor, int n_cursor)
{
    char path[1100], err[1024];
    session_path(s, "checkpoint.h5", path, sizeof path);
    struct stat st;
    int have = s->cfg.checkpoint.resume && stat(path, &st) == 0;
    MPI_CHECK(MPI_Bcast(&have, 1, MPI_INT, 0, s->grid.world));
    if (!have) return 0;
    lethe_ckpt_meta meta;
    memset(&meta, 0, sizeof meta);
    int ok = ckpt_load(path, &s->model.params, &s->grid, &meta, 1, err, sizeof err) == 0;
    lethe_check(s->grid.world, ok, 1, "%s", err);
    ok = meta.n_cursor == n_cursor;
    lethe_check(s->grid.world, ok, 1, "checkpoint '%s' holds %d loader cursors, expected %d", path,
                meta.n_cursor, n_cursor);
    for (int i = 0; i < n_cursor; i++) cursor[i] = meta.cursor[i];
    ckpt_meta_free(&meta);
    if (s->grid.rank == 0)
        printf("lethe %s: resuming from %s at step %lld\n", s->job, path, (long long)meta.step);
    return meta.step;
}

void session_load_init(lethe_session *s)
{
    if (!s->cfg.init.checkpoint[0]) return;
    char err[1024];
    int ok = ckpt_load(s->cfg.init.checkpoint, &s->model.params, &s->grid, NULL, 0, err,
                       sizeof err) == 0;
    lethe_check(s->grid.world, ok, 1, "%s", err);
}

void job_fault_point(const lethe_session *s, int step)
{
    const char *f = getenv("LETHE_FAULT");
    int n;
    if (!f || sscanf(f, "abort-after-step:%d", &n) != 1 || n != step) return;
    if (s->grid.rank == 0) {
        fprintf(stderr, "lethe: fault injection: aborting after step %d\n", step);
        fflush(stderr);
    }
    MPI_Abort(MPI_COMM_WORLD, 3);
}

void session_finish_checkpoints(lethe_session *s)
{
    MPI_Barrier(s->grid.world);
    if (s->grid.rank != 0) return;
    char path[1100];
    session_path(s, "checkpoint.h5", path, sizeof path);
    if (remove(path) && errno != ENOENT) lethe_warn("cannot remove '%s': %s", path, strerror(errno));
}

/* Slurm sends the warning signal (--signal=B:USR1@N, forwarded to the ranks by
 * the batch script) some time before the limit; the job finishes its step,
 * writes checkpoint.h5 and exits, and the requeued job resumes from it. */
static volatile sig_atomic_t preempt_signal;

static void on_preempt(int sig) { preempt_signal = sig; }

void session_catch_preemption(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_preempt;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
}

int session_preempted(const lethe_session *s)
{
    int f = preempt_signal;
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &f, 1, MPI_INT, MPI_MAX, s->grid.world));
    return f;
}
