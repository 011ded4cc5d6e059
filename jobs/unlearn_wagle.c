/* jobs/unlearn_wagle.c — WAGLE's mask in `lethe unlearn`: scored, selected and written
 * once, or read back on resume (see unlearn_wagle.h). */
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

static const char *const keys[4] = {"wagle_p", "wagle_kept", "wagle_total", "wagle_threshold"};

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

/* The mask of wagle_mask.h5, through the checkpoint reader (any layout). */
static void load_mask(lethe_session *S, float *buf)
{
    lethe_params *t = &S->model.w.params;
    char path[1100], err[1024];
    session_path(S, "wagle_mask.h5", path, sizeof path);
    lethe_ckpt_meta meta;
    memset(&meta, 0, sizeof meta);
    char *expect = config_to_json(&S->cfg);
    meta.expect_config = expect;
    params_swap_data(t, buf);
    int ok = ckpt_load(path, t, &S->grid, &meta, 0, err, sizeof err) == 0;
    params_swap_data(t, buf);
    free(expect);
    ckpt_meta_free(&meta);
    lethe_check(S->grid.world, ok, 1, "unlearn: the WAGLE mask of the run to resume: %s", err);
    for (size_t k = 0; k < t->total; k++) t->mask[k] = buf[k] != 0.0f;
    if (S->grid.rank == 0) printf("lethe unlearn: WAGLE mask read from %s\n", path);
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

void wagle_prepare(lethe_session *S, loader *const *loaders, int n_loaders,
                   void (*grads)(void *job, float *gf, float *gr), void *job)
{
    const lethe_unlearn_config *u = &S->cfg.unlearn;
    if (u->wagle_p == 0) return;
    lethe_params *t = &S->model.w.params;
    t->mask = lethe_malloc(t->total, "WAGLE mask");
    if (resuming(S)) {
        float *buf = lethe_calloc(t->total, sizeof(float), "WAGLE mask");
        load_mask(S, buf);
        free(buf);
        return;
    }
    float *s = score(S, loaders, n_loaders, grads, job);
    unsigned char *counted = lethe_malloc(t->total, "WAGLE selection");
    wagle_counted(counted, t, S->grid.dp_rank, S->grid.tp_rank);
    int64_t total, kept;
    uint32_t tau = topp_threshold(s, counted, t->total, u->wagle_p, S->grid.world, &total, &kept);
    topp_mask(t->mask, s, t->total, tau);
    free(counted);
    float thr;
    memcpy(&thr, &tau, sizeof thr);
    for (size_t k = 0; k < t->total; k++) s[k] = t->mask[k];
    double vals[4] = {u->wagle_p, (double)kept, (double)total, thr};
    params_swap_data(t, s); /* the mask as 0/1 "weights": written by the checkpoint writer */
    session_save(S, "wagle_mask.h5", 0, 0, NULL, 0, keys, vals, 4);
    params_swap_data(t, s);
    free(s);
    if (S->grid.rank == 0)
        printf("lethe unlearn: WAGLE mask keeps %lld of %lld weights (%.2f%%, p %g, mu %g, "
               "threshold score %.4g, %d batch pair%s); wagle_mask.h5 written\n",
               (long long)kept, (long long)total, 100.0 * (double)kept / (double)total,
               (double)u->wagle_p, (double)u->wagle_mu, (double)thr, u->wagle_batches,
               u->wagle_batches > 1 ? "s" : "");
}

void wagle_free(lethe_session *S)
{
    free(S->model.w.params.mask);
    S->model.w.params.mask = NULL;
}
