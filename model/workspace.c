/* model/workspace.c — every buffer a step uses, sized and carved in one pass.
 *
 * ws_layout lists each buffer of the workspace once, with its element count as a
 * function of the shape. It runs twice over the same list: first with no memory, to
 * add up the bytes, then over the one allocation, to point every buffer into it, so
 * the size and the carving cannot disagree. Every buffer starts on a 64-byte boundary
 * (vector loads stay aligned). Nothing in the model allocates after this: the pipeline's
 * per-call results, its send buffers and requests and the dp reduce-scatter's staging
 * are all here. */
#include <stdlib.h>
#include <string.h>

#include "../mpi/comm.h"
#include "../mpi/fatal.h"
#include "kernels.h"
#include "parts.h"

typedef struct {
    char *base; /* NULL: the sizing pass */
    size_t off; /* bytes taken so far */
} ws_plan;

static void *take(ws_plan *p, size_t n, size_t size)
{
    size_t at = p->off;
    p->off += (n * size + 63) & ~(size_t)63;
    return p->base ? p->base + at : NULL;
}
#define TAKE(p, ptr, n) ((ptr) = take((p), (size_t)(n), sizeof *(ptr)))

/* One layer's activations of one micro-batch (N = Bm*T tokens). */
static void layer_act(ws_plan *p, lethe_layer_act *a, const lethe_shape *s)
{
    size_t N = (size_t)s->Bm * s->T, C = s->C, qw = (size_t)s->nh_l * s->hd;
    size_t kw = (size_t)s->nkv_l * s->hd, Il = s->ffn_l;
    TAKE(p, a->ln1, N * C);
    TAKE(p, a->rstd1, N);
    TAKE(p, a->q, N * qw);
    TAKE(p, a->k, N * kw);
    TAKE(p, a->v, N * kw);
    TAKE(p, a->probs, (size_t)s->Bm * s->nh_l * s->T * s->T);
    TAKE(p, a->att, N * qw);
    TAKE(p, a->xmid, N * C);
    TAKE(p, a->ln2, N * C);
    TAKE(p, a->rstd2, N);
    TAKE(p, a->gate, N * Il);
    TAKE(p, a->up, N * Il);
    TAKE(p, a->h, N * Il);
}

/* One micro-batch in flight: the residual stream between layers, each layer's
 * activations and, on the last stage, the final norm and the log-probabilities. */
static void slot(ws_plan *p, lethe_slot *sl, const lethe_shape *s)
{
    size_t N = (size_t)s->Bm * s->T, C = s->C;
    TAKE(p, sl->resid, s->nl + 1);
    TAKE(p, sl->layer, s->nl);
    for (int l = 0; l <= s->nl; l++) {
        float *r = take(p, N * C, sizeof(float));
        if (p->base) sl->resid[l] = r;
    }
    for (int l = 0; l < s->nl; l++) {
        lethe_layer_act a;
        layer_act(p, &a, s);
        if (p->base) sl->layer[l] = a;
    }
    if (s->last) {
        TAKE(p, sl->lnf, N * C);
        TAKE(p, sl->rstdf, N);
        TAKE(p, sl->logp, N);
    }
}

/* The whole list. Buffers a block's backward accumulates into (datt .. dh) are
 * adjacent: block_backward zeroes them with one memset (ws->dacc, ws->dacc_n). */
static void ws_layout(ws_plan *p, lethe_workspace *ws, const lethe_shape *s)
{
    size_t N = (size_t)s->Bm * s->T, C = s->C, qw = (size_t)s->nh_l * s->hd;
    size_t kw = (size_t)s->nkv_l * s->hd, Il = s->ffn_l, B = (size_t)s->M * s->Bm;
    TAKE(p, ws->slots, s->nslots);
    for (int k = 0; k < s->nslots; k++) {
        lethe_slot sl = {0};
        slot(p, &sl, s);
        if (p->base) ws->slots[k] = sl;
    }
    TAKE(p, ws->cos_t, (size_t)s->cfg.max_seq_len * (s->hd / 2));
    TAKE(p, ws->sin_t, (size_t)s->cfg.max_seq_len * (s->hd / 2));
    TAKE(p, ws->dx, N * C);
    TAKE(p, ws->dln, N * C);
    size_t acc0 = p->off;
    TAKE(p, ws->datt, N * qw);
    TAKE(p, ws->dq, N * qw);
    TAKE(p, ws->dk, N * kw);
    TAKE(p, ws->dv, N * kw);
    TAKE(p, ws->dh, N * Il);
    ws->dacc_n = (p->off - acc0) / sizeof(float);
    TAKE(p, ws->dgate, N * Il); /* written, not accumulated into: outside the span */
    TAKE(p, ws->dup, N * Il);
    TAKE(p, ws->attn_scratch, (size_t)s->T * s->T);
    TAKE(p, ws->ce_buf, 4 * N);
    TAKE(p, ws->gcoef, N);
    if (s->last) {
        TAKE(p, ws->logits, N * s->v_l);
        TAKE(p, ws->dlogits, N * s->v_l);
        TAKE(p, ws->negent_h, N);
    }
    TAKE(p, ws->seq_s, B);
    TAKE(p, ws->seq_n, B);
    TAKE(p, ws->results, 2 * B + 1);
    TAKE(p, ws->act_req, s->nslots);
    TAKE(p, ws->grad_req, s->nslots);
    TAKE(p, ws->grad_send, s->nslots);
    for (int k = 0; k < s->nslots && !s->first; k++) {
        float *g = take(p, N * C, sizeof(float));
        if (p->base) ws->grad_send[k] = g;
    }
    if (s->grid->dp > 1) TAKE(p, ws->ring_staging, COMM_PIECE);
}

void workspace_create(lethe_workspace *ws, const lethe_shape *s)
{
    memset(ws, 0, sizeof(*ws));
    ws_plan p = {NULL, 0};
    ws_layout(&p, ws, s);
    ws->bytes = p.off;
    if (posix_memalign(&ws->base, 64, ws->bytes ? ws->bytes : 64))
        lethe_fatal("out of memory allocating the model's workspace (%zu bytes: activations "
                    "of %d micro-batches of %d x %d in flight)",
                    ws->bytes, s->nslots, s->Bm, s->T);
    memset(ws->base, 0, ws->bytes);
    p = (ws_plan){ws->base, 0};
    ws_layout(&p, ws, s);
    ws->dacc = ws->datt;
    for (int k = 0; k < s->nslots; k++) ws->act_req[k] = ws->grad_req[k] = MPI_REQUEST_NULL;
    rope_tables_scaled(ws->cos_t, ws->sin_t, s->cfg.max_seq_len, s->hd, s->cfg.rope_theta,
                       &s->cfg.rope);
}

void workspace_free(lethe_workspace *ws)
{
    free(ws->base);
    memset(ws, 0, sizeof(*ws));
}
