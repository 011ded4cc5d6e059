/* model/generate.c — greedy decoding with a KV cache over the sharded model. */
#include "generate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../mpi/comm.h"
#include "../mpi/fatal.h"
#include "block.h"
#include "kernels.h"
#include "tp_linear.h"
#include "vocab_parallel.h"

static float *fbuf(size_t n) { return lethe_calloc(n ? n : 1, sizeof(float), "generation"); }

void gen_create(lethe_generator *g, lethe_model *m, int max_t)
{
    memset(g, 0, sizeof(*g));
    g->m = m;
    g->max_t = max_t;
    const lethe_shape *s = &m->shape;
    size_t kw = (size_t)s->nkv_l * s->hd, qw = (size_t)s->nh_l * s->hd, C = (size_t)s->C;
    g->kcache = fbuf((size_t)s->nl * max_t * kw);
    g->vcache = fbuf((size_t)s->nl * max_t * kw);
    g->x = fbuf(C);
    g->ln = fbuf(C);
    g->q = fbuf(qw);
    g->k = fbuf(kw);
    g->v = fbuf(kw);
    g->att = fbuf(qw);
    g->xmid = fbuf(C);
    g->ln2 = fbuf(C);
    g->gate = fbuf((size_t)s->ffn_l);
    g->up = fbuf((size_t)s->ffn_l);
    g->h = fbuf((size_t)s->ffn_l);
    g->rstd = fbuf(2);
    /* the block's activations of one token (no attention probabilities: the cache
     * attention keeps none) */
    g->act = (lethe_layer_act){.ln1 = g->ln,     .rstd1 = g->rstd,     .q = g->q,
                               .k = g->k,        .v = g->v,            .att = g->att,
                               .xmid = g->xmid,  .ln2 = g->ln2,        .rstd2 = g->rstd + 1,
                               .gate = g->gate,  .up = g->up,          .h = g->h};
    g->scores = fbuf((size_t)max_t);
    g->logits = fbuf(s->last ? (size_t)s->v_l : 1);
}

void gen_free(lethe_generator *g)
{
    float *b[] = {g->kcache, g->vcache, g->x,  g->ln,   g->q,    g->k,     g->v,     g->att,
                  g->xmid,   g->ln2,    g->gate, g->up, g->h, g->rstd, g->scores, g->logits};
    for (size_t i = 0; i < sizeof b / sizeof b[0]; i++) free(b[i]);
    memset(g, 0, sizeof(*g));
}

/* Generation's attention step: the token at pos0 stores its key and value in the
 * cache of layer l and attends over the cache's positions 0..pos0. */
static void cached_attention(void *ctx, const lethe_model *m, int l, lethe_layer_act *a, int B,
                             int T, int pos0)
{
    (void)B, (void)T; /* one token */
    lethe_generator *g = ctx;
    const lethe_shape *s = &m->shape;
    int hd = s->hd, kw = s->nkv_l * hd, pos = pos0;
    float *kc = g->kcache + (size_t)l * g->max_t * kw, *vc = g->vcache + (size_t)l * g->max_t * kw;
    memcpy(kc + (size_t)pos * kw, a->k, sizeof(float) * kw);
    memcpy(vc + (size_t)pos * kw, a->v, sizeof(float) * kw);
    int group = s->nh_l / s->nkv_l;
    float scale = 1.0f / sqrtf((float)hd);
    for (int h = 0; h < s->nh_l; h++) {
        const float *qh = a->q + (size_t)h * hd;
        int kvh = h / group;
        float mx = -INFINITY, sum = 0.0f;
        for (int u = 0; u <= pos; u++) {
            const float *ku = kc + (size_t)u * kw + (size_t)kvh * hd;
            float d = 0.0f;
            for (int i = 0; i < hd; i++) d += qh[i] * ku[i];
            g->scores[u] = d * scale;
            mx = g->scores[u] > mx ? g->scores[u] : mx;
        }
        /* libm's expf, not the kernels' fast_expf: generated tokens stay those of the
         * reference decoding */
        for (int u = 0; u <= pos; u++) {
            g->scores[u] = expf(g->scores[u] - mx);
            sum += g->scores[u];
        }
        float *oh = a->att + (size_t)h * hd;
        memset(oh, 0, sizeof(float) * hd);
        for (int u = 0; u <= pos; u++) {
            const float *vu = vc + (size_t)u * kw + (size_t)kvh * hd;
            float p = g->scores[u] / sum;
            for (int i = 0; i < hd; i++) oh[i] += p * vu[i];
        }
    }
}

/* Runs token `tok` at position pos through the whole replica; when want_next,
 * returns the greedy next token on every rank of the replica. */
static int step(lethe_generator *g, int tok, int pos, int want_next)
{
    lethe_model *m = g->m;
    const lethe_shape *s = &m->shape;
    const lethe_grid *G = s->grid;
    int C = s->C;
    if (s->first) {
        vocab_parallel_embedding_forward(g->x, &tok, m->w.embed, 1, C, &s->vocab);
    } else {
        comm_recv(g->x, (size_t)C, G->pp_rank - 1, pos, G->pp_comm, s->comm);
    }
    for (int l = 0; l < s->nl; l++)
        block_forward(m, l, &g->act, g->x, g->x, 1, 1, pos, cached_attention, g);
    if (!s->last) {
        MPI_Request r;
        comm_isend(g->x, (size_t)C, G->pp_rank + 1, pos, G->pp_comm, &r, s->comm);
        comm_wait(&r, s->comm);
    }
    if (!want_next) return -1;
    int next = 0;
    if (s->last) {
        float rstd;
        rmsnorm_forward(g->ln, &rstd, g->x, m->w.norm, 1, C, s->cfg.norm_eps);
        column_parallel_forward(&g->logits, g->ln, (const float *const *)&m->w.head, &s->head_l, 1,
                                C);
        next = vocab_parallel_argmax(g->logits, &s->vocab);
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
