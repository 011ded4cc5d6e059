/* jobs/unlearn_wagle.c — WAGLE's mask in `lethe unlearn`: scored and selected once, saved
 * with every checkpoint, or read back from checkpoint.h5 on resume (see unlearn_wagle.h). */
#include "unlearn_wagle.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../io/checkpoint.h"
#include "../io/config.h"
#include "../model/objectives.h"
#include "../model/wagle.h"
#include "../mpi/fatal.h"

const char *const wagle_state_keys[WAGLE_N_STATE] = {
    "wagle_p", "wagle_mu", "wagle_batches", "wagle_kept", "wagle_total", "wagle_threshold"};

void wagle_check(lethe_session *S)
{
    const lethe_unlearn_config *u = &S->cfg.unlearn;
    lethe_method m = u->method;
    int ok = u->wagle_p == 0 || m == METHOD_GRADDIFF || m == METHOD_NPO || m == METHOD_SIMNPO;
    lethe_check(S->grid.world, ok, 2,
                "unlearn: unlearn.wagle.p=%g composes with unlearn.method graddiff, npo or "
                "simnpo, not \"%s\"",
                (double)u->wagle_p, method_name(m));
    ok = u->wagle_p == 0 || u->retain_batch_size > 0;
    lethe_check(S->grid.world, ok, 2,
                "unlearn: unlearn.wagle.p=%g scores weights with the retain gradient; "
                "unlearn.retain_batch_size=0 gives none",
                (double)u->wagle_p);
}

/* A run that will resume from checkpoint.h5 (loop.c's rule), the same on every rank. */
static int resuming(lethe_session *S)
{
    char path[1100];
    session_path(S, "checkpoint.h5", path, sizeof path);
    struct stat st;
    int have = S->cfg.checkpoint.resume && stat(path, &st) == 0;
    MPI_CHECK(MPI_Bcast(&have, 1, MPI_INT, 0, S->grid.world));
    return have;
}

/* Resuming: the mask of checkpoint.h5 into S's table, any layout (with t->mask NULL only
 * whether there is one), and its /job values into state (NAN where missing). Returns 1
 * when the checkpoint holds a mask; 0 when it holds none or the run does not resume. */
static int from_checkpoint(lethe_session *S, const char *path, double *state)
{
    if (!resuming(S)) return 0;
    char err[1024];
    lethe_ckpt_meta meta;
    memset(&meta, 0, sizeof meta);
    char *expect = config_to_json(&S->cfg);
    meta.expect_config = expect;
    int has = ckpt_load_mask(path, &S->model.w.params, &S->grid, &meta, err, sizeof err);
    free(expect);
    lethe_check(S->grid.world, has >= 0, 1, "unlearn: resuming: %s", err);
    for (int k = 0; k < WAGLE_N_STATE; k++) {
        state[k] = NAN;
        for (int i = 0; i < meta.n_job; i++)
            if (!strcmp(meta.job_key[i], wagle_state_keys[k])) state[k] = meta.job_value[i];
    }
    ckpt_meta_free(&meta);
    /* /job is covered by the meta digest: its WAGLE values without the mask they describe
     * mean the group was taken out of the file */
    lethe_check(S->grid.world, has || isnan(state[3]), 1,
                "unlearn: checkpoint '%s': /job holds WAGLE's values (wagle_kept %.0f) but "
                "group '/wagle_mask' is missing: the file is corrupt",
                path, state[3]);
    return has;
}

/* A mask resumed must be the one this run's settings select (exit 2 naming the key), and
 * a run without WAGLE must not continue one that had it: the checkpoint's weights moved
 * inside its mask only, and the rest of the run would move them all. */
static void check_settings(lethe_session *S, const char *path, const double *state)
{
    const lethe_unlearn_config *u = &S->cfg.unlearn;
    double want[3] = {u->wagle_p, u->wagle_mu, u->wagle_batches};
    const char *key[3] = {"unlearn.wagle.p", "unlearn.wagle.mu", "unlearn.wagle.batches"};
    for (int k = 0; k < 3; k++)
        lethe_check(S->grid.world, want[k] == state[k], 2,
                    "unlearn: checkpoint '%s' holds a WAGLE mask selected with %s=%g, this "
                    "run has %s=%g: resume with the settings it was written with, or remove "
                    "it to start over",
                    path, key[k], state[k], key[k], want[k]);
}

/* Scores of the starting weights: |(theta - gr / mu) * gf|, gradients averaged over the
 * batch pairs. Returns the scores (in a buffer the caller frees). */
static float *score(lethe_session *S, loader *const *lds, int nld,
                    void (*grads)(void *, float *, float *), void *job)
{
    const lethe_unlearn_config *u = &S->cfg.unlearn;
    lethe_params *t = &S->model.w.params;
    float *gf = lethe_calloc(t->total, sizeof(float), "WAGLE forget gradient");
    float *gr = lethe_calloc(t->total, sizeof(float), "WAGLE retain gradient");
    loader_cursor cur[2];
    for (int i = 0; i < nld; i++) cur[i] = loader_cursor_get(lds[i]);
    for (int b = 0; b < u->wagle_batches; b++) grads(job, gf, gr);
    char err[1024] = "";
    int ok = 1;
    for (int i = 0; ok && i < nld; i++) ok = loader_seek(lds[i], cur[i], err, sizeof err) == 0;
    lethe_check(S->grid.world, ok, 1, "unlearn: rewinding after the WAGLE batches: %s", err);
    float inv = 1.0f / (float)u->wagle_batches;
    for (size_t k = 0; k < t->total; k++) {
        gf[k] *= inv;
        gr[k] *= inv;
    }
    wagle_scores(gf, t->data, gf, gr, u->wagle_mu, t->total);
    free(gr);
    int bad = 0;
    for (size_t k = 0; k < t->total; k++) bad |= !isfinite(gf[k]);
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &bad, 1, MPI_INT, MPI_LOR, S->grid.world));
    lethe_check(S->grid.world, !bad, 1,
                "unlearn: WAGLE scores are not finite (unlearn.wagle.mu=%g; a non-finite "
                "gradient of the starting weights)",
                (double)u->wagle_mu);
    return gf;
}

/* The mask of the starting weights: scores, the global top-p threshold; state gets the
 * settings and the counts. */
static void select_mask(lethe_session *S, loader *const *loaders, int n_loaders,
                        void (*grads)(void *, float *, float *), void *job, double *state)
{
    const lethe_unlearn_config *u = &S->cfg.unlearn;
    lethe_params *t = &S->model.w.params;
    float *s = score(S, loaders, n_loaders, grads, job);
    unsigned char *counted = lethe_malloc(t->total, "WAGLE selection");
    wagle_counted(counted, t, S->grid.dp_rank, S->grid.tp_rank);
    int64_t total, kept;
    uint32_t tau = topp_threshold(s, counted, t->total, u->wagle_p, S->grid.world, &total, &kept);
    topp_mask(t->mask, s, t->total, tau);
    free(counted);
    free(s);
    float thr;
    memcpy(&thr, &tau, sizeof thr);
    double v[WAGLE_N_STATE] = {u->wagle_p,     u->wagle_mu,     u->wagle_batches,
                               (double)kept, (double)total, thr};
    memcpy(state, v, sizeof v);
    if (S->grid.rank == 0)
        printf("lethe unlearn: WAGLE mask keeps %lld of %lld weights (%.2f%%, p %g, mu %g, "
               "threshold score %.4g, %d batch pair%s); saved with every checkpoint\n",
               (long long)kept, (long long)total, 100.0 * (double)kept / (double)total,
               (double)u->wagle_p, (double)u->wagle_mu, (double)thr, u->wagle_batches,
               u->wagle_batches > 1 ? "s" : "");
}

int wagle_prepare(lethe_session *S, loader *const *loaders, int n_loaders,
                  void (*grads)(void *job, float *gf, float *gr), void *job, double *state)
{
    const lethe_unlearn_config *u = &S->cfg.unlearn;
    lethe_params *t = &S->model.w.params;
    char path[1100];
    session_path(S, "checkpoint.h5", path, sizeof path);
    if (u->wagle_p == 0) {
        if (from_checkpoint(S, path, state)) check_settings(S, path, state);
        return 0;
    }
    t->mask = lethe_malloc(t->total, "WAGLE mask");
    if (from_checkpoint(S, path, state)) {
        check_settings(S, path, state);
        if (S->grid.rank == 0)
            printf("lethe unlearn: WAGLE mask read from %s (keeps %.0f of %.0f weights)\n", path,
                   state[3], state[4]);
        return WAGLE_N_STATE;
    }
    if (resuming(S) && S->grid.rank == 0)
        printf("lethe unlearn: %s holds no WAGLE mask: scoring the starting weights\n", path);
    select_mask(S, loaders, n_loaders, grads, job, state);
    return WAGLE_N_STATE;
}

void wagle_free(lethe_session *S)
{
    free(S->model.w.params.mask);
    S->model.w.params.mask = NULL;
}
