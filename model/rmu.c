/* model/rmu.c — RMU's forward and backward through the stages up to block `layer`:
 * the steering vector, the starting values of the trained down_proj tensors, the
 * frozen forward of the retain rows, the hidden-state MSE and its gradient injected at
 * block `layer`. See rmu.h. */
#include "rmu.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../mpi/comm.h"
#include "../mpi/fatal.h"
#include "block.h"
#include "stage.h"

void rmu_steering_vector(float *out, int C, uint64_t seed, double c)
{
    double ss = 0.0;
    uint64_t base = lethe_hash64(seed ^ lethe_hash_str("rmu.steering"));
    for (int d = 0; d < C; d++) {
        double x = (double)(lethe_hash64(base + (uint64_t)d) >> 11) * 0x1p-53; /* [0, 1) */
        out[d] = (float)x;
        ss += x * x;
    }
    double scale = ss > 0 ? c / sqrt(ss) : 0.0;
    for (int d = 0; d < C; d++) out[d] = (float)(out[d] * scale);
}

void rmu_create(rmu_model *r, const lethe_model *m, int layer, int span, double c, uint64_t seed,
                int B)
{
    const lethe_shape *sh = &m->shape;
    const lethe_params *t = &m->w.params;
    memset(r, 0, sizeof(*r));
    r->layer = layer;
    r->lo = layer - span + 1 < 0 ? 0 : layer - span + 1;
    for (int s = 0; s < sh->grid->pp; s++) {
        int l0, nl;
        model_stage_layers(&sh->cfg, sh->grid->pp, s, &l0, &nl);
        if (layer >= l0 && layer < l0 + nl) r->stage = s;
    }
    r->held = lethe_calloc((size_t)span, sizeof(int), "rmu");
    r->trainable = lethe_calloc((size_t)(t->n > 0 ? t->n : 1), 1, "rmu");
    size_t total = 0;
    for (int l = r->lo; l <= layer; l++) {
        char name[LETHE_NAME_MAX];
        snprintf(name, sizeof name, "model.layers.%d.mlp.down_proj.weight", l);
        int i = params_find(t, name);
        if (i < 0) continue;
        r->held[r->n_held++] = i;
        r->trainable[i] = 1;
        total += t->p[i].numel;
    }
    r->start = lethe_malloc(sizeof(float) * (total ? total : 1), "rmu starting down_proj values");
    size_t off = 0;
    for (int k = 0; k < r->n_held; k++) {
        const lethe_param *p = &t->p[r->held[k]];
        memcpy(r->start + off, t->data + p->off, sizeof(float) * p->numel);
        off += p->numel;
    }
    r->target = lethe_malloc(sizeof(float) * (size_t)sh->C, "rmu steering vector");
    rmu_steering_vector(r->target, sh->C, seed, c);
    if (sh->grid->pp_rank == r->stage)
        r->frozen = lethe_malloc(sizeof(float) * (size_t)B * sh->T * sh->C, "rmu frozen h");
}

void rmu_free(rmu_model *r)
{
    free(r->held);
    free(r->trainable);
    free(r->start);
    free(r->target);
    free(r->frozen);
    memset(r, 0, sizeof(*r));
}

/* Exchanges the trained tensors' values with their starting values. */
static void swap_start(rmu_model *r, lethe_model *m)
{
    lethe_params *t = &m->w.params;
    size_t off = 0;
    for (int k = 0; k < r->n_held; k++) {
        const lethe_param *p = &t->p[r->held[k]];
        float *a = t->data + p->off, *b = r->start + off;
        for (size_t j = 0; j < p->numel; j++) {
            float x = a[j];
            a[j] = b[j];
            b[j] = x;
        }
        off += p->numel;
    }
}

static void send_wait(lethe_model *m, const float *buf, size_t n, int dest, int tag)
{
    MPI_Request q = MPI_REQUEST_NULL;
    comm_isend(buf, n, dest, tag, m->shape.grid->pp_comm, &q, &m->ws.comm);
    comm_wait(&q, &m->ws.comm);
}

/* Forward of micro-batch i through this stage's blocks up to `layer` (slot 0); returns
 * how many of them ran (0 on the stages after `layer`'s). */
static int fwd_mb(const rmu_model *r, lethe_model *m, const lethe_batch *b, int i)
{
    const lethe_shape *sh = &m->shape;
    int pr = sh->grid->pp_rank;
    if (pr > r->stage) return 0;
    lethe_slot *s = &m->ws.slots[0];
    size_t NC = (size_t)sh->Bm * sh->T * sh->C;
    if (sh->first)
        stage_embed(m, s, b->tokens + (size_t)i * sh->Bm * sh->T);
    else
        comm_recv(s->resid[0], NC, pr - 1, 2 * i, sh->grid->pp_comm, &m->ws.comm);
    int top = r->layer - sh->layer0 + 1 < sh->nl ? r->layer - sh->layer0 + 1 : sh->nl;
    for (int l = 0; l < top; l++)
        block_forward(m, l, &s->layer[l], s->resid[l], s->resid[l + 1], sh->Bm, sh->T, 0,
                      block_full_attention, NULL);
    if (pr < r->stage) send_wait(m, s->resid[top], NC, pr + 1, 2 * i);
    return top;
}

/* Backward of micro-batch i from m->ws.dx (set by the loss on `layer`'s stage, received
 * on the others) down to block lo. */
static void bwd_mb(const rmu_model *r, lethe_model *m, int i, int top)
{
    const lethe_shape *sh = &m->shape;
    int pr = sh->grid->pp_rank;
    if (pr > r->stage || r->lo >= sh->layer0 + top) return; /* no trained block here */
    lethe_slot *s = &m->ws.slots[0];
    size_t NC = (size_t)sh->Bm * sh->T * sh->C;
    if (pr < r->stage) comm_recv(m->ws.dx, NC, pr + 1, 2 * i + 1, sh->grid->pp_comm, &m->ws.comm);
    int stop = r->lo - sh->layer0 > 0 ? r->lo - sh->layer0 : 0;
    for (int l = top - 1; l >= stop; l--) block_backward(m, l, &s->layer[l], s->resid[l]);
    if (r->lo < sh->layer0) send_wait(m, m->ws.dx, NC, pr - 1, 2 * i + 1);
}

/* The loss of micro-batch i (rows b0 = i*Bm ..) from h (Bm*T, C) into t, its gradient
 * into dh (Bm*T, C). */
static void loss_mb(const rmu_model *r, const lethe_model *m, const lethe_batch *b, int i,
                    const float *h, float *dh, rmu_terms *t)
{
    const lethe_shape *sh = &m->shape;
    int T = sh->T, C = sh->C, b0 = i * sh->Bm;
    memset(dh, 0, sizeof(float) * (size_t)sh->Bm * T * C);
    double unorm = 0.0;
    for (int d = 0; d < C; d++) unorm += (double)r->target[d] * r->target[d];
    unorm = sqrt(unorm);
    for (int q = 0; q < sh->Bm; q++) {
        int gb = b0 + q, forget = t->is_forget[gb];
        const int *tg = b->targets + (size_t)gb * T;
        double n = 0.0, sum = 0.0, cos = 0.0;
        for (int p = 1; p < T; p++) n += tg[p - 1] >= 0;
        double rows = forget ? t->n_forget : t->n_retain;
        if (n == 0 || rows == 0) continue;
        double scale = (forget ? t->c_f : t->c_r) / (rows * n * C);
        for (int p = 1; p < T; p++) {
            if (tg[p - 1] < 0) continue;
            const float *x = h + ((size_t)q * T + p) * C;
            const float *z = forget ? r->target : r->frozen + ((size_t)gb * T + p) * C;
            float *g = dh + ((size_t)q * T + p) * C;
            double dot = 0.0, xx = 0.0;
            for (int d = 0; d < C; d++) {
                double e = (double)x[d] - z[d];
                sum += e * e;
                g[d] = (float)(2.0 * scale * e);
                dot += (double)x[d] * r->target[d];
                xx += (double)x[d] * x[d];
            }
            cos += xx > 0 && unorm > 0 ? dot / (sqrt(xx) * unorm) : 0.0;
        }
        if (forget) {
            t->loss_forget += scale * sum;
            t->cos_sum += cos / n;
        } else {
            t->loss_retain += scale * sum;
        }
    }
}

void rmu_frozen_forward(rmu_model *r, lethe_model *m, const lethe_batch *b)
{
    const lethe_shape *sh = &m->shape;
    size_t NC = (size_t)sh->Bm * sh->T * sh->C;
    swap_start(r, m);
    for (int i = 0; i < b->B / sh->Bm; i++) {
        int top = fwd_mb(r, m, b, i);
        if (sh->grid->pp_rank == r->stage)
            memcpy(r->frozen + (size_t)i * NC, m->ws.slots[0].resid[top], sizeof(float) * NC);
    }
    swap_start(r, m);
}

double rmu_step_forward_backward(lethe_model *m, void *ctx)
{
    rmu_step *s = ctx;
    return rmu_forward_backward(s->r, m, s->b, s->t);
}

double rmu_forward_backward(rmu_model *r, lethe_model *m, const lethe_batch *b, rmu_terms *t)
{
    const lethe_shape *sh = &m->shape;
    if (b->T != sh->T || b->B % sh->Bm || b->B > sh->M * sh->Bm)
        lethe_fatal("rmu: batch of %d x %d does not fit the model's micro-batches of %d x %d", b->B,
                    b->T, sh->Bm, sh->T);
    memset(m->w.params.grad, 0, sizeof(float) * m->w.params.total);
    t->loss_forget = t->loss_retain = t->cos_sum = 0.0;
    for (int i = 0; i < b->B / sh->Bm; i++) {
        int top = fwd_mb(r, m, b, i);
        if (sh->grid->pp_rank == r->stage)
            loss_mb(r, m, b, i, m->ws.slots[0].resid[top], m->ws.dx, t);
        bwd_mb(r, m, i, top);
    }
    double parts[3] = {t->loss_forget, t->loss_retain, t->cos_sum};
    comm_bcast_d(parts, 3, r->stage, sh->grid->pp_comm, &m->ws.comm);
    t->loss_forget = parts[0];
    t->loss_retain = parts[1];
    t->cos_sum = parts[2];
    return parts[0] + parts[1];
}
