/* jobs/loop.c — the one step loop of train, unlearn and relearn (see loop.h). */
#include "loop.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../mpi/comm.h"
#include "../io/checkpoint.h"
#include "../io/safefile.h"
#include "../mpi/fatal.h"

typedef struct {
    lethe_session *S;
    const loop_spec *spec;
    FILE *log; /* rank 0, when the job logs */
    char path[1100], partial[1200];
    double t_start;
    int first;
} loop_state;

/* Rank 0, resuming: the partial log keeps the lines of the steps up to the checkpoint's
 * and loses the rest (a run that died after its last checkpoint logged steps it runs
 * again). One ftruncate at the end of the last kept line: a crash leaves either the
 * old file or the cut one, never a torn line. */
static void cut_log(loop_state *L)
{
    FILE *f = L->log;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    off_t keep = 0;
    rewind(f);
    while ((n = getline(&line, &cap, f)) > 0) {
        long step;
        if (line[n - 1] != '\n' || sscanf(line, "{\"step\":%ld", &step) != 1 || step > L->first)
            break;
        keep += n;
    }
    free(line);
    if (ferror(f) || fflush(f) || ftruncate(fileno(f), keep) || fseek(f, 0, SEEK_END))
        lethe_fatal("cannot cut '%s' back to step %d: %s", L->partial, L->first, strerror(errno));
}

/* Rank 0: the log's partial file, continued (cut back to the checkpoint) on resume. */
static void open_log(loop_state *L)
{
    if (L->S->grid.rank != 0 || !L->spec->log_name) return;
    session_path(L->S, L->spec->log_name, L->path, sizeof L->path);
    snprintf(L->partial, sizeof L->partial, "%s.partial", L->path);
    char err[2800];
    /* a fresh run starts the partial log anew (a leftover regular file is removed, a link
     * refused); a resumed one continues it, cut back to the checkpoint; never through a
     * link */
    if (!L->first && safe_temp(L->partial, err, sizeof err)) lethe_fatal("%s", err);
    if (!(L->log = safe_append(L->partial, err, sizeof err))) lethe_fatal("%s", err);
    if (L->first) cut_log(L);
}

/* A model at or past the schedule's end has nothing left to run: refused, so a lowered
 * step count never passes a checkpoint off as the final model (or logs NaN losses). */
static void check_first(loop_state *L)
{
    const loop_spec *sp = L->spec;
    char ck[1100];
    session_path(L->S, "checkpoint.h5", ck, sizeof ck);
    int ok = L->first == 0 || L->first < sp->total;
    lethe_check(L->S->grid.world, ok, 2,
                "%s: '%s' is at step %d, not below the %d steps of this run (%s): nothing is "
                "left to run; remove it or raise %s",
                L->S->job, ck, L->first, sp->total, sp->total_key, sp->total_key);
}

/* The checkpoint: the loaders' positions and the job's own values. */
static void save(loop_state *L, const char *name, int step, int64_t epoch)
{
    const loop_spec *sp = L->spec;
    int64_t cur[LETHE_CKPT_CURSOR_MAX] = {0};
    int n = 0;
    for (int i = 0; i < sp->n_loaders; i++) {
        loader_cursor lc = {0, 0};
        if (sp->loaders[i]) lc = loader_cursor_get(sp->loaders[i]);
        cur[n++] = lc.epoch;
        cur[n++] = lc.position;
    }
    session_save(L->S, name, step, epoch, cur, n, sp->state_keys, sp->state, sp->n_state);
}

/* Continues from checkpoint.h5 when there is one: returns its step and moves the
 * loaders to its cursors. */
static int resume(loop_state *L)
{
    const loop_spec *sp = L->spec;
    int64_t cur[LETHE_CKPT_CURSOR_MAX] = {0};
    int first = (int)session_resume(L->S, cur, 2 * sp->n_loaders, sp->state_keys, sp->resume_state,
                                    sp->resume_state ? sp->n_state : 0);
    if (!first) return first;
    char err[1024] = "";
    int ok = 1;
    for (int i = 0; ok && i < sp->n_loaders; i++) {
        loader_cursor lc = {cur[2 * i], cur[2 * i + 1]};
        if (sp->loaders[i]) ok = loader_seek(sp->loaders[i], lc, err, sizeof err) == 0;
    }
    lethe_check(L->S->grid.world, ok, 1, "%s", err);
    return first;
}

static void log_num(FILE *f, const char *key, double v)
{
    char buf[40];
    fprintf(f, ",\"%s\":%s", key, job_json_num(buf, sizeof buf, "%.9g", v));
}

/* Rank 0: the step's JSON line and, every train.log_every steps and at the last, its
 * terminal line. A write error (a full disk) ends the job: a log with a hole must not be
 * renamed as complete. */
static void log_step(loop_state *L, int step, int64_t epoch, const step_stats *st,
                     const double *val, double t_data)
{
    const loop_spec *sp = L->spec;
    if (!L->log) return;
    int total = sp->total, done = step + 1;
    double tps = sp->tokens_per_step / st->seconds, gf = tps * sp->flops_per_token * 1e-9;
    double eta = (MPI_Wtime() - L->t_start) / (done - L->first) * (total - done);
    FILE *f = L->log;
    fprintf(f, "{\"step\":%d,\"epoch\":%lld", done, (long long)epoch);
    log_num(f, "loss", st->loss);
    for (int i = 0; i < sp->n_fields; i++) log_num(f, sp->fields[i].key, val[i]);
    log_num(f, "grad_norm", st->grad_norm);
    log_num(f, "lr", st->lr);
    log_num(f, "seconds", st->seconds);
    log_num(f, "data_s", t_data);
    log_num(f, "tokens_per_s", tps);
    if (sp->flops_per_token > 0) log_num(f, "gflops", gf);
    log_num(f, "eta_s", eta);
    fprintf(f, "%s}\n", st->skipped ? ",\"skipped\":true" : "");
    if (step % L->S->cfg.train.log_every == 0 || done == total) {
        printf("step %5d/%d", done, total);
        if (sp->show_epoch) printf("  epoch %lld", (long long)epoch);
        printf("  loss %.4f", st->loss);
        for (int i = 0; i < sp->n_fields; i++) {
            if (!sp->fields[i].label) continue;
            printf("  %s ", sp->fields[i].label);
            printf(sp->fields[i].fmt, val[i]);
        }
        printf("  |g| %.3f  lr %.3e  %8.0f tok/s", st->grad_norm, st->lr, tps);
        if (sp->flops_per_token > 0) printf("  %6.1f GFLOP/s", gf);
        printf("  ETA %.0fs%s\n", eta, st->skipped ? "  (skipped)" : "");
    }
    fflush(stdout);
    if (fflush(f) || ferror(f)) lethe_fatal("cannot write '%s': %s", L->partial, strerror(errno));
}

/* After step `done`: the checkpoint policy, the fault point and preemption. Returns 1
 * when the job is preempted. */
static int after_step(loop_state *L, int done, int64_t epoch)
{
    const loop_spec *sp = L->spec;
    lethe_session *S = L->S;
    int last = done == sp->total;
    int want = sp->reached ? sp->reached(sp->job, done) : 0;
    int pre = !last && session_preempted(S);
    if (!last && (want || pre || (sp->every > 0 && done % sp->every == 0)))
        save(L, "checkpoint.h5", done, epoch);
    job_fault_point(S, done);
    if (!pre) return 0;
    if (S->grid.rank == 0) {
        if (L->log) fclose(L->log);
        printf("lethe %s: preempted after step %d%s%s; checkpoint.h5 written, a new run "
               "resumes from it\n",
               S->job, done, sp->what ? " of " : "", sp->what ? sp->what : "");
        fflush(stdout);
    }
    S->status = "preempted";
    return 1;
}

/* The end: the final model, the checkpoint removed, the data report, the log complete. */
static void finish(loop_state *L, int64_t epoch, const job_data_clock *clk)
{
    const loop_spec *sp = L->spec;
    if (sp->final_name) {
        save(L, sp->final_name, sp->total, epoch);
        session_finish_checkpoints(L->S);
    }
    if (sp->n_loaders > 0 && sp->loaders[0]) job_data_report(L->S, L->S->job, clk, sp->loaders[0]);
    if (L->log) {
        char err[2800];
        int bad = fflush(L->log) || fsync(fileno(L->log));
        if (fclose(L->log) || bad)
            lethe_fatal("cannot write '%s': %s", L->partial, strerror(errno));
        if (safe_commit(L->partial, L->path, err, sizeof err)) lethe_fatal("%s", err);
    }
}

loop_result loop_run(lethe_session *S, const loop_spec *sp, loop_outcome *out)
{
    loop_state L = {.S = S, .spec = sp, .first = sp->first};
    memset(out, 0, sizeof *out);
    out->first_loss = out->last_loss = NAN;
    if (sp->resume) L.first = resume(&L);
    check_first(&L);
    open_log(&L);
    L.t_start = MPI_Wtime();
    double val[LOOP_MAX_FIELDS];
    if (sp->reached) sp->reached(sp->job, L.first);
    for (int step = L.first; step < sp->total; step++) {
        double t_data = MPI_Wtime();
        if (sp->batch) sp->batch(sp->job, step, &out->epoch);
        t_data = MPI_Wtime() - t_data;
        step_stats st;
        memset(val, 0, sizeof val);
        sp->step(sp->job, step, sp->total, &st, val);
        out->clock.wait += t_data;
        out->clock.compute += st.seconds;
        out->clock.steps++;
        /* the slowest rank sets the pace */
        MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &st.seconds, 1, MPI_DOUBLE, MPI_MAX, S->grid.world));
        if (!st.skipped) {
            if (isnan(out->first_loss)) out->first_loss = st.loss;
            out->last_loss = st.loss;
        }
        log_step(&L, step, out->epoch, &st, val, t_data);
        if (after_step(&L, step + 1, out->epoch)) {
            out->seconds = MPI_Wtime() - L.t_start;
            return LOOP_PREEMPTED;
        }
    }
    finish(&L, out->epoch, &out->clock);
    out->seconds = MPI_Wtime() - L.t_start;
    return LOOP_DONE;
}
