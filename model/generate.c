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
    /* a whole prompt runs through the blocks at once: every buffer holds max_t tokens */
    size_t n = (size_t)max_t;
    g->x = fbuf(n * C);
    g->ln = fbuf(n * C);
    g->q = fbuf(n * qw);
    g->k = fbuf(n * kw);
    g->v = fbuf(n * kw);
    g->att = fbuf(n * qw);
    g->xmid = fbuf(n * C);
    g->ln2 = fbuf(n * C);
    g->gate = fbuf(n * s->ffn_l);
    g->up = fbuf(n * s->ffn_l);
    g->h = fbuf(n * s->ffn_l);
    g->rstd = fbuf(2 * n);
    /* the block's activations of max_t tokens (no attention probabilities: the cache
     * attention keeps none) */
    g->act = (lethe_layer_act){.ln1 = g->ln,     .rstd1 = g->rstd,     .q = g->q,
                               .k = g->k,        .v = g->v,            .att = g->att,
                               .xmid = g->xmid,  .ln2 = g->ln2,        .rstd2 = g->rstd + n,
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

/* Generation's attention step: the T tokens at pos0.. (a prompt, or one new token) store
 * their keys and values in the cache of layer l, each attending over the cache's
 * positions 0..its own (the same sums, in the same order, as one token at a time). */
static void cached_attention(void *ctx, const lethe_model *m, int l, lethe_layer_act *a, int B,
                             int T, int pos0)
{
    (void)B; /* one sequence */
    lethe_generator *g = ctx;
    const lethe_shape *s = &m->shape;
    int hd = s->hd, kw = s->nkv_l * hd, qw = s->nh_l * hd;
    float *kc = g->kcache + (size_t)l * g->max_t * kw, *vc = g->vcache + (size_t)l * g->max_t * kw;
    int group = s->nh_l / s->nkv_l;
    float scale = 1.0f / sqrtf((float)hd);
    for (int t = 0; t < T; t++) {
        int pos = pos0 + t;
        memcpy(kc + (size_t)pos * kw, a->k + (size_t)t * kw, sizeof(float) * kw);
        memcpy(vc + (size_t)pos * kw, a->v + (size_t)t * kw, sizeof(float) * kw);
        for (int h = 0; h < s->nh_l; h++) {
            const float *qh = a->q + (size_t)t * qw + (size_t)h * hd;
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
            float *oh = a->att + (size_t)t * qw + (size_t)h * hd;
            memset(oh, 0, sizeof(float) * hd);
            for (int u = 0; u <= pos; u++) {
                const float *vu = vc + (size_t)u * kw + (size_t)kvh * hd;
                float p = g->scores[u] / sum;
                for (int i = 0; i < hd; i++) oh[i] += p * vu[i];
            }
        }
    }
}

/* Runs the n tokens tok[0..n) at positions pos.. through the whole replica in one pass
 * (a prompt costs each all-reduce and stage hand-over once, not once per token); when
 * want_next, returns the greedy token after the last one on every rank of the replica. */
static int step(lethe_generator *g, const int *tok, int n, int pos, int want_next)
{
    lethe_model *m = g->m;
    const lethe_shape *s = &m->shape;
    const lethe_grid *G = s->grid;
    int C = s->C;
    if (s->first) {
        vocab_parallel_embedding_forward(g->x, tok, m->w.embed, n, C, &s->vocab);
    } else {
        comm_recv(g->x, (size_t)n * C, G->pp_rank - 1, pos, G->pp_comm, s->comm);
    }
    for (int l = 0; l < s->nl; l++)
        block_forward(m, l, &g->act, g->x, g->x, 1, n, pos, cached_attention, g);
    if (!s->last) {
        MPI_Request r;
        comm_isend(g->x, (size_t)n * C, G->pp_rank + 1, pos, G->pp_comm, &r, s->comm);
        comm_wait(&r, s->comm);
    }
    if (!want_next) return -1;
    int next = 0;
    if (s->last) {
        float rstd;
        rmsnorm_forward(g->ln, &rstd, g->x + (size_t)(n - 1) * C, m->w.norm, 1, C,
                        s->cfg.norm_eps);
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
    int next = step(g, prompt, p, 0, 1), n = 0;
    for (int pos = p; n < max_new; pos++) {
        if (next == eos && eos >= 0) break;
        out[n++] = next;
        if (pos >= g->max_t || n == max_new) break;
        int tok = next;
        next = step(g, &tok, 1, pos, 1);
    }
    return n;
}
