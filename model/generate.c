/* model/generate.c — batched greedy decoding with a KV cache over the sharded model:
 * the slots and their caches, the attention of each row over its own slot's cache at
 * its own position, a step of the live rows through the replica, the next tokens of
 * the rows that predict, and the slots' advance (generate.h). */
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
static int *ibuf(size_t n) { return lethe_calloc(n ? n : 1, sizeof(int), "generation"); }

void gen_create(lethe_generator *g, lethe_model *m, int max_t, int batch)
{
    const lethe_shape *s = &m->shape;
    if (batch < 1) lethe_fatal("generation batch %d: expected at least 1", batch);
    if (max_t < 1 || max_t > s->cfg.max_seq_len)
        lethe_fatal("generation cache of %d positions: expected 1..model.max_seq_len (%d)", max_t,
                    s->cfg.max_seq_len);
    memset(g, 0, sizeof(*g));
    g->m = m;
    g->max_t = max_t;
    g->batch = batch;
    g->rows_cap = batch * GEN_PREFILL;
    size_t B = (size_t)g->rows_cap, kw = (size_t)s->nkv_l * s->hd, qw = (size_t)s->nh_l * s->hd;
    size_t C = (size_t)s->C, F = (size_t)s->ffn_l;
    g->kcache = fbuf((size_t)s->nl * batch * max_t * kw);
    g->vcache = fbuf((size_t)s->nl * batch * max_t * kw);
    g->x = fbuf(B * C);
    g->ln = fbuf(B * C);
    g->q = fbuf(B * qw);
    g->k = fbuf(B * kw);
    g->v = fbuf(B * kw);
    g->att = fbuf(B * qw);
    g->xmid = fbuf(B * C);
    g->ln2 = fbuf(B * C);
    g->gate = fbuf(B * F);
    g->up = fbuf(B * F);
    g->h = fbuf(B * F);
    g->rstd = fbuf(2 * B);
    /* the block's activations of a step's rows (no attention probabilities: the cache
     * attention keeps none) */
    g->act = (lethe_layer_act){.ln1 = g->ln,     .rstd1 = g->rstd,    .q = g->q,
                               .k = g->k,        .v = g->v,           .att = g->att,
                               .xmid = g->xmid,  .ln2 = g->ln2,       .rstd2 = g->rstd + B,
                               .gate = g->gate,  .up = g->up,         .h = g->h};
    g->scores = fbuf((size_t)max_t);
    g->logits = fbuf(s->last ? (size_t)batch * s->v_l : 1);
    int **iv[] = {&g->seq, &g->pos, &g->tok, &g->want, &g->next};
    for (size_t i = 0; i < sizeof iv / sizeof iv[0]; i++) *iv[i] = ibuf((size_t)batch);
    int **rv[] = {&g->row_slot, &g->row_pos, &g->row_tok};
    for (size_t i = 0; i < sizeof rv / sizeof rv[0]; i++) *rv[i] = ibuf(B);
    g->best = lethe_calloc((size_t)batch, sizeof(vocab_best), "generation");
}

void gen_free(lethe_generator *g)
{
    void *b[] = {g->kcache, g->vcache, g->x,      g->ln,       g->q,       g->k,    g->v,
                 g->att,    g->xmid,   g->ln2,    g->gate,     g->up,      g->h,    g->rstd,
                 g->scores, g->logits, g->seq,    g->pos,      g->tok,     g->want, g->next,
                 g->best,   g->row_slot, g->row_pos, g->row_tok};
    for (size_t i = 0; i < sizeof b / sizeof b[0]; i++) free(b[i]);
    memset(g, 0, sizeof(*g));
}

/* Row r of a step: its query and key rotated for its position pos (the block ran at
 * position 0, where the rotation is the identity: cos 1, sin 0), its key and value
 * stored at pos in its slot's cache of layer l, and its attention over the cache's
 * positions 0..pos. A slot's rows come in position order, so a prompt's rows of one
 * step see the keys and values of the rows before them. */
static void attend_row(lethe_generator *g, const lethe_model *m, int l, lethe_layer_act *a, int r)
{
    const lethe_shape *s = &m->shape;
    int hd = s->hd, kw = s->nkv_l * hd, qw = s->nh_l * hd, slot = g->row_slot[r];
    int pos = g->row_pos[r];
    float *q = a->q + (size_t)r * qw, *k = a->k + (size_t)r * kw, *v = a->v + (size_t)r * kw;
    size_t rot = (size_t)pos * (hd / 2);
    rope_forward(q, m->ws.cos_t + rot, m->ws.sin_t + rot, 1, 1, s->nh_l, hd, qw);
    rope_forward(k, m->ws.cos_t + rot, m->ws.sin_t + rot, 1, 1, s->nkv_l, hd, kw);
    size_t base = ((size_t)l * g->batch + slot) * g->max_t * kw;
    float *kc = g->kcache + base, *vc = g->vcache + base;
    memcpy(kc + (size_t)pos * kw, k, sizeof(float) * kw);
    memcpy(vc + (size_t)pos * kw, v, sizeof(float) * kw);
    int group = s->nh_l / s->nkv_l;
    float scale = 1.0f / sqrtf((float)hd);
    for (int h = 0; h < s->nh_l; h++) {
        const float *qh = q + (size_t)h * hd;
        int kvh = h / group;
        float mx = -INFINITY, sum = 0.0f;
        for (int u = 0; u <= pos; u++) {
            const float *ku = kc + (size_t)u * kw + (size_t)kvh * hd;
            g->scores[u] = row_dot(qh, ku, hd) * scale;
            mx = g->scores[u] > mx ? g->scores[u] : mx;
        }
        /* libm's expf, not the kernels' fast_expf: generated tokens stay those of the
         * reference decoding */
        for (int u = 0; u <= pos; u++) {
            g->scores[u] = expf(g->scores[u] - mx);
            sum += g->scores[u];
        }
        float *oh = a->att + (size_t)r * qw + (size_t)h * hd;
        memset(oh, 0, sizeof(float) * hd);
        for (int u = 0; u <= pos; u++) {
            const float *vu = vc + (size_t)u * kw + (size_t)kvh * hd;
            float p = g->scores[u] / sum;
            for (int i = 0; i < hd; i++) oh[i] += p * vu[i];
        }
    }
}

/* Generation's attention step: every row of the step (B rows of one token). */
static void cached_attention(void *ctx, const lethe_model *m, int l, lethe_layer_act *a, int B,
                             int T, int pos0)
{
    (void)T, (void)pos0; /* one token per row, each at its own position (row_pos) */
    for (int r = 0; r < B; r++) attend_row(ctx, m, l, a, r);
}

/* The n rows of a step (their tokens in row_tok) through this stage's layers; the
 * hidden states come from the previous stage and go to the next. */
static void forward_rows(lethe_generator *g, int n, int tag)
{
    lethe_model *m = g->m;
    const lethe_shape *s = &m->shape;
    const lethe_grid *G = s->grid;
    size_t C = (size_t)s->C;
    if (s->first)
        vocab_parallel_embedding_forward(g->x, g->row_tok, m->w.embed, n, s->C, &s->vocab);
    else
        comm_recv(g->x, n * C, G->pp_rank - 1, tag, G->pp_comm, s->comm);
    for (int l = 0; l < s->nl; l++)
        block_forward(m, l, &g->act, g->x, g->x, n, 1, 0, cached_attention, g);
    if (!s->last) {
        MPI_Request r;
        comm_isend(g->x, n * C, G->pp_rank + 1, tag, G->pp_comm, &r, s->comm);
        comm_wait(&r, s->comm);
    }
}

/* The next token of the k rows listed in want, into next on every rank of the replica:
 * the final norm and the head on those rows only (packed into xmid, free after the
 * blocks) on the last stage, broadcast over pp. */
static void predict(lethe_generator *g, int k)
{
    lethe_model *m = g->m;
    const lethe_shape *s = &m->shape;
    int C = s->C;
    if (k == 0) return;
    if (s->last) {
        for (int i = 0; i < k; i++)
            memcpy(g->xmid + (size_t)i * C, g->x + (size_t)g->want[i] * C, sizeof(float) * C);
        rmsnorm_forward(g->ln, g->rstd, g->xmid, m->w.norm, k, C, s->cfg.norm_eps);
        column_parallel_forward(&g->logits, g->ln, (const float *const *)&m->w.head, &s->head_l, k,
                                C);
        vocab_parallel_argmax_rows(g->next, g->best, g->logits, k, &s->vocab);
    }
    if (s->grid->pp > 1) MPI_CHECK(MPI_Bcast(g->next, k, MPI_INT, s->grid->pp - 1, s->grid->pp_comm));
}

/* Free slots take the waiting sequences from *i on (those with nothing to generate
 * are done at once); then the live slots become the step's rows, in slot order: a
 * prefilling slot gives up to GEN_PREFILL rows (its next prompt tokens, in position
 * order), a predicting one the row of its last token. Returns the row count; *k: the
 * rows that predict (a slot's row of its last prompt token or of a generated one). */
static int take_rows(lethe_generator *g, gen_seq *seq, int n, int *i, int *k)
{
    for (int sl = 0; sl < g->batch; sl++) {
        while (*i < n && seq[*i].max_new <= 0) (*i)++;
        if (g->seq[sl] >= 0 || *i == n) continue;
        g->seq[sl] = *i;
        g->pos[sl] = 0;
        g->tok[sl] = seq[*i].prompt[0];
        (*i)++;
    }
    int rows = 0;
    *k = 0;
    for (int sl = 0; sl < g->batch; sl++) {
        if (g->seq[sl] < 0) continue;
        const gen_seq *q = &seq[g->seq[sl]];
        int t = g->pos[sl], last = t;
        if (t < q->p - 1) last = t + GEN_PREFILL - 1 < q->p - 1 ? t + GEN_PREFILL - 1 : q->p - 1;
        for (int u = t; u <= last; u++, rows++) {
            g->row_slot[rows] = sl;
            g->row_pos[rows] = u;
            g->row_tok[rows] = u == t ? g->tok[sl] : q->prompt[u];
        }
        if (last >= q->p - 1) g->want[(*k)++] = rows - 1;
    }
    return rows;
}

/* After a step, per slot (its last row): a prefilling slot feeds its next prompt
 * token; a predicting one stores its token (eos is not stored) and stops at eos, its
 * max_new or the cache end, freeing its slot — gen_greedy's rule, sequence by
 * sequence. */
static void advance(lethe_generator *g, gen_seq *seq, int rows, int eos)
{
    int j = 0;
    for (int r = 0; r < rows; r++) {
        int sl = g->row_slot[r], t = g->row_pos[r];
        if (r + 1 < rows && g->row_slot[r + 1] == sl) continue; /* not the slot's last row */
        gen_seq *q = &seq[g->seq[sl]];
        if (t < q->p - 1) {
            g->pos[sl] = t + 1;
            g->tok[sl] = q->prompt[t + 1];
            continue;
        }
        int nx = g->next[j++];
        if (eos >= 0 && nx == eos) {
            g->seq[sl] = -1;
            continue;
        }
        q->out[q->n++] = nx;
        if (t + 1 >= g->max_t || q->n == q->max_new) {
            g->seq[sl] = -1;
            continue;
        }
        g->pos[sl] = t + 1;
        g->tok[sl] = nx;
    }
}

void gen_greedy_batch(lethe_generator *g, gen_seq *seq, int n, int eos)
{
    for (int i = 0; i < n; i++) {
        seq[i].n = 0;
        if (seq[i].max_new <= 0) continue; /* done at once (take_rows): its prompt unused */
        if (seq[i].p < 1) lethe_fatal("generation needs a prompt of at least one token");
        if (seq[i].p > g->max_t)
            lethe_fatal("prompt of %d tokens exceeds the cache of %d", seq[i].p, g->max_t);
    }
    for (int sl = 0; sl < g->batch; sl++) g->seq[sl] = -1;
    int waiting = 0, k, rows, tag = 0;
    while ((rows = take_rows(g, seq, n, &waiting, &k)) > 0) {
        forward_rows(g, rows, tag);
        tag = (tag + 1) & 0x7fff; /* within every MPI's tag bound; p2p order is kept anyway */
        predict(g, k);
        advance(g, seq, rows, eos);
    }
}

int gen_greedy(lethe_generator *g, const int *prompt, int p, int max_new, int eos, int *out)
{
    gen_seq one = {prompt, p, max_new, out, 0};
    gen_greedy_batch(g, &one, 1, eos);
    return one.n;
}
