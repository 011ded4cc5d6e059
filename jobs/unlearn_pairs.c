/* jobs/unlearn_pairs.c — the alternate answers of idknll, dpo and idkdpo for `lethe
 * unlearn` (jobs/unlearn_pairs.h): their split and its checks, a loader in step with the
 * forget loader (the same seed over the same number of rows gives the same order, so
 * every replica holds both answers of its questions), and the pair rows' forward-only
 * sums (model/objective_pairs.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../model/objective_pairs.h"
#include "../mpi/fatal.h"
#include "unlearn_pairs.h"

void alt_open(unlearn_alt *A, lethe_session *S, loader *lf, int Bf, uint64_t seed)
{
    const lethe_config *c = &S->cfg;
    lethe_method m = c->unlearn.method;
    memset(A, 0, sizeof *A);
    A->on = method_uses_alternate(m);
    if (!A->on) return;
    int given = c->data.alternate_split[0] != 0;
    lethe_check(S->grid.world, given || m != METHOD_DPO, 2,
                "unlearn: unlearn.method \"dpo\" needs data.alternate_split, the preferred "
                "answers row for row as data.forget_split '%s' (idkdpo takes '%s_idk')",
                c->data.forget_split, c->data.forget_split);
    int n = snprintf(A->split, sizeof A->split, "%s%s",
                     given ? c->data.alternate_split : c->data.forget_split, given ? "" : "_idk");
    lethe_check(S->grid.world, n < 64, 2,
                "unlearn: the alternate split name '%s' is longer than 63 characters", A->split);
    lethe_check(S->grid.world, strcmp(A->split, c->data.forget_split) != 0, 2,
                "unlearn: data.alternate_split '%s' is the forget split itself", A->split);
    job_open_loader(S, &A->la, A->split, Bf, seed, 1, 1, 0, 0);
    const dataset_info *fi = loader_info(lf), *ai = loader_info(A->la);
    lethe_check(S->grid.world, fi->n == ai->n && fi->t == ai->t, 2,
                "unlearn: alternate split '%s' has %lld rows of %d tokens, the forget split "
                "'%s' %lld of %d: it must answer the forget questions row for row",
                A->split, (long long)ai->n, ai->t, c->data.forget_split, (long long)fi->n, fi->t);
}

void alt_buffers(unlearn_alt *A, int rows)
{
    if (!A->on) return;
    A->pair_s = lethe_calloc((size_t)rows, sizeof(double), "pair sums");
    A->pair_n = lethe_calloc((size_t)rows, sizeof(double), "pair sums");
}

void alt_fill(unlearn_alt *A, lethe_session *S, lethe_batch *b, int r0, const loader_batch *fb)
{
    loader_cursor want = {fb->epoch, fb->position}, at = loader_cursor_get(A->la);
    if (at.epoch != want.epoch || at.position != want.position) {
        char err[1024];
        int ok = loader_seek(A->la, want, err, sizeof err) == 0;
        lethe_check(S->grid.world, ok, 1, "unlearn: alternate split '%s': %s", A->split, err);
    }
    loader_batch *ab = job_next_batch(S, A->la, "alternate stream ended early");
    int bad = ab->n != fb->n ? 0 : -1;
    for (int i = 0; bad < 0 && i < fb->n; i++)
        if (ab->rows.sample_id[i] != fb->rows.sample_id[i]) bad = i;
    lethe_check(S->grid.world, bad < 0, 1,
                "unlearn: alternate split '%s' row of sample_id %lld is paired with forget "
                "sample_id %lld: the split must hold the forget questions in the forget "
                "split's order",
                A->split, (long long)(bad >= 0 ? ab->rows.sample_id[bad] : 0),
                (long long)(bad >= 0 ? fb->rows.sample_id[bad] : 0));
    job_fill_batch(b, r0, fb->n, ab);
}

void alt_forward(unlearn_alt *A, lethe_model *m, const lethe_batch *b, int rf, unlearn_ctx *c)
{
    c->n_pairs = rf;
    if (!method_pairs(c->method)) return;
    pairs_forward(m, b, 2 * rf, A->pair_s, A->pair_n);
    c->pair_s = A->pair_s;
}

void alt_free(unlearn_alt *A)
{
    if (A->la) loader_close(A->la);
    free(A->pair_s);
    free(A->pair_n);
}
