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
    attention_forward(a->att, a->probs, a->q, a->k, a->v, B, T, m->nh_l, m->nkv_l, m->hd);
}

void block_forward(const lethe_model *m, int l, lethe_layer_act *a, const float *x, float *out,
                   int B, int T, int pos0, block_attention attend, void *ctx)
{
    const lethe_layer_w *w = &m->w[l];
    int N = B * T, C = m->C, hd = m->hd, qw = m->nh_l * hd, kw = m->nkv_l * hd, Il = m->ffn_l;
    size_t rot = (size_t)pos0 * (hd / 2); /* rows of the rope tables before pos0 */
    MPI_Comm tp = m->grid->tp_comm;
    rmsnorm_forward(a->ln1, a->rstd1, x, w->ln1, N, C, m->cfg.norm_eps);
    column_parallel_forward((float *[]){a->q, a->k, a->v}, a->ln1,
                            (const float *[]){w->wq, w->wk, w->wv}, &m->qkv, N, C);
    rope_forward(a->q, m->cos_t + rot, m->sin_t + rot, B, T, m->nh_l, hd, qw);
    rope_forward(a->k, m->cos_t + rot, m->sin_t + rot, B, T, m->nkv_l, hd, kw);
    attend(ctx, m, l, a, B, T, pos0);
    row_parallel_forward(a->xmid, a->att, w->wo, N, qw, C, tp);
    add_inplace(a->xmid, x, (size_t)N * C); /* x is read for the last time here: out may be x */
    rmsnorm_forward(a->ln2, a->rstd2, a->xmid, w->ln2, N, C, m->cfg.norm_eps);
    column_parallel_forward((float *[]){a->gate, a->up}, a->ln2, (const float *[]){w->wg, w->wu},
                            &m->mlp_in, N, C);
    swiglu_forward(a->h, a->gate, a->up, (size_t)N * Il);
    row_parallel_forward(out, a->h, w->wd, N, Il, C, tp);
    add_inplace(out, a->xmid, (size_t)N * C);
}

void block_backward(lethe_model *m, int l, const lethe_layer_act *a, const float *x)
{
    const lethe_layer_w *w = &m->w[l];
    int Bm = m->Bm, T = m->T, N = Bm * T, C = m->C, hd = m->hd;
    int qw = m->nh_l * hd, kw = m->nkv_l * hd, Il = m->ffn_l;
    MPI_Comm tp = m->grid->tp_comm;
    float *dx = m->dx; /* gradient of the block output; becomes that of xmid, then of x */
    memset(m->dh, 0, sizeof(float) * (size_t)N * Il);
    row_parallel_backward(m->dh, model_grad(m, w->wd), dx, a->h, w->wd, N, Il, C);
    memset(m->dgate, 0, sizeof(float) * (size_t)N * Il);
    memset(m->dup, 0, sizeof(float) * (size_t)N * Il);
    swiglu_backward(m->dgate, m->dup, m->dh, a->gate, a->up, (size_t)N * Il);
    column_parallel_backward(m->dln, (float *[]){model_grad(m, w->wg), model_grad(m, w->wu)},
                             (const float *[]){m->dgate, m->dup}, a->ln2,
                             (const float *[]){w->wg, w->wu}, &m->mlp_in, N, C, tp);
    rmsnorm_backward(dx, model_grad(m, w->ln2), m->dln, a->xmid, w->ln2, a->rstd2, N, C);
    memset(m->datt, 0, sizeof(float) * (size_t)N * qw);
    row_parallel_backward(m->datt, model_grad(m, w->wo), dx, a->att, w->wo, N, qw, C);
    memset(m->dq, 0, sizeof(float) * (size_t)N * qw);
    memset(m->dk, 0, sizeof(float) * (size_t)N * kw);
    memset(m->dv, 0, sizeof(float) * (size_t)N * kw);
    attention_backward(m->dq, m->dk, m->dv, m->attn_scratch, m->datt, a->probs, a->q, a->k, a->v,
                       Bm, T, m->nh_l, m->nkv_l, hd);
    rope_backward(m->dq, m->cos_t, m->sin_t, Bm, T, m->nh_l, hd, qw);
    rope_backward(m->dk, m->cos_t, m->sin_t, Bm, T, m->nkv_l, hd, kw);
    column_parallel_backward(
        m->dln, (float *[]){model_grad(m, w->wq), model_grad(m, w->wk), model_grad(m, w->wv)},
        (const float *[]){m->dq, m->dk, m->dv}, a->ln1, (const float *[]){w->wq, w->wk, w->wv},
        &m->qkv, N, C, tp);
    rmsnorm_backward(dx, model_grad(m, w->ln1), m->dln, x, w->ln1, a->rstd1, N, C);
}
