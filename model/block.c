/* model/block.c — one Llama decoder block: RMSNorm, column-parallel q|k|v, RoPE,
 * attention, row-parallel o_proj and the residual; RMSNorm, column-parallel
 * gate|up, SwiGLU, row-parallel down_proj and the residual. See block.h. */
#include "block.h"

#include <string.h>

#include "kernels.h"
#include "stage.h"
#include "tp_linear.h"

void block_full_attention(void *ctx, const lethe_model *m, int l, lethe_layer_act *a, int B, int T,
                          int pos0)
{
    (void)ctx, (void)l, (void)pos0;
    const lethe_shape *s = &m->shape;
    attention_forward(a->att, a->probs, a->q, a->k, a->v, B, T, s->nh_l, s->nkv_l, s->hd);
}

void block_forward(const lethe_model *m, int l, lethe_layer_act *a, const float *x, float *out,
                   int B, int T, int pos0, block_attention attend, void *ctx)
{
    const lethe_shape *s = &m->shape;
    const lethe_layer_w *w = &m->w.layer[l];
    int N = B * T, C = s->C, hd = s->hd, qw = s->nh_l * hd, kw = s->nkv_l * hd, Il = s->ffn_l;
    size_t rot = (size_t)pos0 * (hd / 2); /* rows of the rope tables before pos0 */
    const float *cos_t = m->ws.cos_t + rot, *sin_t = m->ws.sin_t + rot;
    MPI_Comm tp = s->grid->tp_comm;
    rmsnorm_forward(a->ln1, a->rstd1, x, w->ln1, N, C, s->cfg.norm_eps);
    column_parallel_forward((float *[]){a->q, a->k, a->v}, a->ln1,
                            (const float *[]){w->wq, w->wk, w->wv}, &s->qkv, N, C);
    rope_forward(a->q, cos_t, sin_t, B, T, s->nh_l, hd, qw);
    rope_forward(a->k, cos_t, sin_t, B, T, s->nkv_l, hd, kw);
    attend(ctx, m, l, a, B, T, pos0);
    row_parallel_forward(a->xmid, a->att, w->wo, N, qw, C, tp, s->comm);
    add_inplace(a->xmid, x, (size_t)N * C); /* x is read for the last time here: out may be x */
    rmsnorm_forward(a->ln2, a->rstd2, a->xmid, w->ln2, N, C, s->cfg.norm_eps);
    column_parallel_forward((float *[]){a->gate, a->up}, a->ln2, (const float *[]){w->wg, w->wu},
                            &s->mlp_in, N, C);
    swiglu_forward(a->h, a->gate, a->up, (size_t)N * Il);
    row_parallel_forward(out, a->h, w->wd, N, Il, C, tp, s->comm);
    add_inplace(out, a->xmid, (size_t)N * C);
}

void block_backward(lethe_model *m, int l, const lethe_layer_act *a, const float *x)
{
    const lethe_shape *s = &m->shape;
    const lethe_layer_w *w = &m->w.layer[l];
    lethe_workspace *ws = &m->ws;
    int Bm = s->Bm, T = s->T, N = Bm * T, C = s->C, hd = s->hd;
    int qw = s->nh_l * hd, kw = s->nkv_l * hd, Il = s->ffn_l;
    MPI_Comm tp = s->grid->tp_comm;
    float *dx = ws->dx; /* gradient of the block output; becomes that of xmid, then of x */
    /* the kernels accumulate into datt, dq, dk, dv, dh: adjacent in the workspace, they
     * start from zero together (swiglu_backward writes dgate and dup) */
    memset(ws->dacc, 0, sizeof(float) * ws->dacc_n);
    row_parallel_backward(ws->dh, model_grad(m, w->wd), dx, a->h, w->wd, N, Il, C);
    swiglu_backward(ws->dgate, ws->dup, ws->dh, a->gate, a->up, (size_t)N * Il);
    column_parallel_backward(ws->dln, (float *[]){model_grad(m, w->wg), model_grad(m, w->wu)},
                             (const float *[]){ws->dgate, ws->dup}, a->ln2,
                             (const float *[]){w->wg, w->wu}, &s->mlp_in, N, C, tp, s->comm);
    rmsnorm_backward(dx, model_grad(m, w->ln2), ws->dln, a->xmid, w->ln2, a->rstd2, N, C);
    row_parallel_backward(ws->datt, model_grad(m, w->wo), dx, a->att, w->wo, N, qw, C);
    attention_backward(ws->dq, ws->dk, ws->dv, ws->attn_scratch, ws->datt, a->probs, a->q, a->k,
                       a->v, Bm, T, s->nh_l, s->nkv_l, hd);
    rope_backward(ws->dq, ws->cos_t, ws->sin_t, Bm, T, s->nh_l, hd, qw);
    rope_backward(ws->dk, ws->cos_t, ws->sin_t, Bm, T, s->nkv_l, hd, kw);
    column_parallel_backward(
        ws->dln, (float *[]){model_grad(m, w->wq), model_grad(m, w->wk), model_grad(m, w->wv)},
        (const float *[]){ws->dq, ws->dk, ws->dv}, a->ln1, (const float *[]){w->wq, w->wk, w->wv},
        &s->qkv, N, C, tp, s->comm);
    rmsnorm_backward(dx, model_grad(m, w->ln1), ws->dln, x, w->ln1, a->rstd1, N, C);
}
