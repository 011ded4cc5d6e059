/* model/generate.c — greedy decoding with a KV cache over the sharded model. */
#include "generate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../mpi/comm.h"
#include "../mpi/fatal.h"
#include "kernels.h"
#include "tp_linear.h"
#include "vocab_parallel.h"

static float *fbuf(size_t n) { return lethe_calloc(n ? n : 1, sizeof(float), "generation"); }

void gen_create(lethe_generator *g, lethe_model *m, int max_t)
{
    memset(g, 0, sizeof(*g));
    g->m = m;
    g->max_t = max_t;
    size_t kw = (size_t)m->nkv_l * m->hd, qw = (size_t)m->nh_l * m->hd, C = (size_t)m->C;
    g->kcache = fbuf((size_t)m->nl * max_t * kw);
    g->vcache = fbuf((size_t)m->nl * max_t * kw);
    g->x = fbuf(C);
    g->ln = fbuf(C);
    g->q = fbuf(qw);
    g->k = fbuf(kw);
    g->v = fbuf(kw);
    g->att = fbuf(qw);
    g->o = fbuf(C);
    g->xmid = fbuf(C);
    g->ln2 = fbuf(C);
    g->gate = fbuf((size_t)m->ffn_l);
    g->up = fbuf((size_t)m->ffn_l);
    g->h = fbuf((size_t)m->ffn_l);
    g->scores = fbuf((size_t)max_t);
    g->logits = fbuf(m->last ? (size_t)m->v_l : 1);
}

void gen_free(lethe_generator *g)
{
    float *b[] = {g->kcache, g->vcache, g->x,    g->ln, g->q,  g->k,    g->v,      g->att,
                  g->o,      g->xmid,   g->ln2,  g->gate, g->up, g->h, g->scores, g->logits};
    for (size_t i = 0; i < sizeof b / sizeof b[0]; i++) free(b[i]);
    memset(g, 0, sizeof(*g));
}

/* One layer on the hidden state g->x of the token at position pos. */
static void layer_step(lethe_generator *g, int l, int pos)
{
    lethe_model *m = g->m;
    const lethe_layer_w *w = &m->w[l];
    int C = m->C, hd = m->hd, qw = m->nh_l * hd, kw = m->nkv_l * hd, half = hd / 2;
    MPI_Comm tp = m->grid->tp_comm;
    float rstd;
    rmsnorm_forward(g->ln, &rstd, g->x, w->ln1, 1, C, m->cfg.norm_eps);
    column_parallel_forward((float *[]){g->q, g->k, g->v}, g->ln,
                            (const float *[]){w->wq, w->wk, w->wv}, &m->qkv, 1, C);
    rope_forward(g->q, m->cos_t + (size_t)pos * half, m->sin_t + (size_t)pos * half, 1, 1, m->nh_l,
                 hd, qw);
    rope_forward(g->k, m->cos_t + (size_t)pos * half, m->sin_t + (size_t)pos * half, 1, 1,
                 m->nkv_l, hd, kw);
    float *kc = g->kcache + (size_t)l * g->max_t * kw, *vc = g->vcache + (size_t)l * g->max_t * kw;
    memcpy(kc + (size_t)pos * kw, g->k, sizeof(float) * kw);
    memcpy(vc + (size_t)pos * kw, g->v, sizeof(float) * kw);
    int group = m->nh_l / m->nkv_l;
    float scale = 1.0f / sqrtf((float)hd);
    for (int h = 0; h < m->nh_l; h++) {
        const float *qh = g->q + (size_t)h * hd;
        int kvh = h / group;
        float mx = -INFINITY, sum = 0.0f;
        for (int u = 0; u <= pos; u++) {
            const float *ku = kc + (size_t)u * kw + (size_t)kvh * hd;
            float d = 0.0f;
            for (int i = 0; i < hd; i++) d += qh[i] * ku[i];
            g->scores[u] = d * scale;
            mx = g->scores[u] > mx ? g->scores[u] : mx;
        }
        for (int u = 0; u <= pos; u++) {
            g->scores[u] = expf(g->scores[u] - mx);
            sum += g->scores[u];
        }
        float *oh = g->att + (size_t)h * hd;
        memset(oh, 0, sizeof(float) * hd);
        for (int u = 0; u <= pos; u++) {
            const float *vu = vc + (size_t)u * kw + (size_t)kvh * hd;
            float p = g->scores[u] / sum;
            for (int i = 0; i < hd; i++) oh[i] += p * vu[i];
        }
    }
    row_parallel_forward(g->o, g->att, w->wo, 1, qw, C, tp);
    for (int c = 0; c < C; c++) g->xmid[c] = g->x[c] + g->o[c];
    rmsnorm_forward(g->ln2, &rstd, g->xmid, w->ln2, 1, C, m->cfg.norm_eps);
    column_parallel_forward((float *[]){g->gate, g->up}, g->ln2, (const float *[]){w->wg, w->wu},
                            &m->mlp_in, 1, C);
    swiglu_forward(g->h, g->gate, g->up, (size_t)m->ffn_l);
    row_parallel_forward(g->o, g->h, w->wd, 1, m->ffn_l, C, tp);
    for (int c = 0; c < C; c++) g->x[c] = g->xmid[c] + g->o[c];
}

/* Runs token `tok` at position pos through the whole replica; when want_next,
 * returns the greedy next token on every rank of the replica. */
static int step(lethe_generator *g, int tok, int pos, int want_next)
{
    lethe_model *m = g->m;
    const lethe_grid *G = m->grid;
    int C = m->C;
    if (m->first) {
        vocab_parallel_embedding_forward(g->x, &tok, m->embed, 1, C, &m->vocab);
    } else {
        comm_recv(g->x, (size_t)C, G->pp_rank - 1, pos, G->pp_comm);
    }
    for (int l = 0; l < m->nl; l++) layer_step(g, l, pos);
    if (!m->last) {
        MPI_Request r;
        comm_isend(g->x, (size_t)C, G->pp_rank + 1, pos, G->pp_comm, &r);
        comm_wait(&r);
    }
    if (!want_next) return -1;
    int next = 0;
    if (m->last) {
        float rstd;
        rmsnorm_forward(g->ln, &rstd, g->x, m->norm, 1, C, m->cfg.norm_eps);
        column_parallel_forward(&g->logits, g->ln, (const float *const *)&m->head, &m->head_l, 1,
                                C);
        next = vocab_parallel_argmax(g->logits, &m->vocab);
    }
    if (G->pp > 1) MPI_CHECK(MPI_Bcast(&next, 1, MPI_INT, G->pp - 1, G->pp_comm));
    return next;
}

int gen_greedy(lethe_generator *g, const int *prompt, int p, int max_new, int eos, int *out)
{
    if (p < 1) lethe_fatal("generation needs a prompt of at least one token");
    if (p > g->max_t) lethe_fatal("prompt of %d tokens exceeds the cache of %d", p, g->max_t);
    int next = -1;
    for (int t = 0; t < p; t++) next = step(g, prompt[t], t, t == p - 1);
    int n = 0;
    for (int pos = p; n < max_new; pos++) {
        if (next == eos && eos >= 0) break;
        out[n++] = next;
        if (pos >= g->max_t || n == max_new) break;
        next = step(g, next, pos, 1);
    }
    return n;
}
