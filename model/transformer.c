/* model/transformer.c — the Llama-style decoder sharded over (pp, tp).
 *
 * Tensor parallelism (Megatron): q/k/v, gate/up and the head are column-parallel
 * layers, o_proj and down_proj row-parallel ones (model/tp_linear.h); the
 * embedding and the cross-entropy are vocabulary-parallel (model/vocab_parallel.h).
 * Each owns its communication over tp; the residual stream, the norms and their
 * gradients are replicated over tp. */
#include "transformer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../mpi/comm.h"
#include "../mpi/fatal.h"
#include "block.h"
#include "kernels.h"
#include "stage.h"
#include "tp_linear.h"
#include "vocab_parallel.h"

int model_check_layout(const lethe_model_config *cfg, int dp, int pp, int tp, int batch,
                       int micro_batches, int T, char *err, size_t errlen)
{
    if (cfg->n_heads % tp) {
        snprintf(err, errlen, "layout tp=%d does not divide model.n_heads=%d", tp, cfg->n_heads);
        return -1;
    }
    if (cfg->n_kv_heads % tp) {
        snprintf(err, errlen, "layout tp=%d does not divide model.n_kv_heads=%d", tp,
                 cfg->n_kv_heads);
        return -1;
    }
    if (cfg->mlp_dim % tp) {
        snprintf(err, errlen, "layout tp=%d does not divide model.mlp_dim=%d", tp, cfg->mlp_dim);
        return -1;
    }
    if (pp > cfg->n_layers) {
        snprintf(err, errlen, "layout pp=%d exceeds model.n_layers=%d (every stage needs a layer)",
                 pp, cfg->n_layers);
        return -1;
    }
    if (micro_batches < 1 || batch % dp || (batch / dp) % micro_batches) {
        snprintf(err, errlen,
                 "batch size %d is not divisible by layout dp=%d x micro_batches=%d", batch, dp,
                 micro_batches);
        return -1;
    }
    if (T > cfg->max_seq_len) {
        snprintf(err, errlen, "sequence length %d exceeds model.max_seq_len=%d", T,
                 cfg->max_seq_len);
        return -1;
    }
    return 0;
}

int64_t model_num_params(const lethe_model_config *c)
{
    int64_t C = c->dim, hd = c->dim / c->n_heads, I = c->mlp_dim, V = c->vocab_size;
    int64_t per_layer = 2 * C + C * c->n_heads * hd * 2 + 2 * C * c->n_kv_heads * hd + 3 * C * I;
    return V * C * (c->tie_embeddings ? 1 : 2) + C + c->n_layers * per_layer;
}

double model_flops_per_token(const lethe_model_config *c, int T)
{
    /* Matrix products only: 6 flops per weight per token (forward 2, backward 4),
     * plus attention's QK^T and PV over all T keys (we compute the full square). */
    double C = c->dim, hd = (double)c->dim / c->n_heads, I = c->mlp_dim, V = c->vocab_size;
    double w_layer = C * c->n_heads * hd * 2 + 2 * C * c->n_kv_heads * hd + 3 * C * I;
    double attn = 2.0 * 2.0 * T * c->n_heads * hd; /* per token per layer, forward */
    return 6.0 * (c->n_layers * w_layer + V * C) + 3.0 * c->n_layers * attn;
}

/* Relative cost per token (forward + backward) of one block and of what the end
 * stages add: matrix products at 6 flops per weight, attention over the full
 * T x T square, and the cross-entropy's ~4 passes over the V logits (max,
 * sum of exps, gradient), which run at memory speed: one pass of a float costs
 * about as much as 64 sgemm flops (160 GFLOP/s against ~10 GB/s). The embedding
 * does no product: its gather and scatter-add are one pass each over C. */
static void stage_costs(const lethe_model_config *c, double *layer, double *embed, double *head)
{
    double C = c->dim, hd = (double)c->dim / c->n_heads, I = c->mlp_dim, V = c->vocab_size;
    double T = c->max_seq_len;
    double w_layer = C * c->n_heads * hd * 2 + 2 * C * c->n_kv_heads * hd + 3 * C * I;
    *layer = 6.0 * w_layer + 3.0 * 4.0 * T * c->n_heads * hd;
    *embed = 2.0 * 64.0 * C;
    *head = 6.0 * V * C + 4.0 * 64.0 * V;
}

/* Layers stage s of pp can hold within a cost bound X (in flops per token). */
static long stage_cap(double X, int s, int pp, double c, double e, double h)
{
    double extra = (s == 0 ? e : 0.0) + (s == pp - 1 ? h : 0.0);
    return (long)floor((X - extra) / c * (1.0 + 1e-12));
}

void model_stage_layers(const lethe_model_config *cfg, int pp, int stage, int *layer0, int *nl)
{
    int L = cfg->n_layers;
    double c, e, h;
    stage_costs(cfg, &c, &e, &h);
    /* The smallest bound X on a stage's cost under which stages of >= 1 layer
     * hold all L layers; it is one of the values extra + k c (extra: 0, e, h,
     * or e + h when one stage is both ends). */
    double X = -1.0;
    for (int form = 0; form < 4; form++)
        for (int k = 1; k <= L; k++) {
            double x = (form & 1 ? e : 0.0) + (form & 2 ? h : 0.0) + k * c;
            if (X >= 0.0 && x >= X) continue;
            long total = 0, least = L;
            for (int s = 0; s < pp; s++) {
                long cap = stage_cap(x, s, pp, c, e, h);
                total += cap;
                least = cap < least ? cap : least;
            }
            if (least >= 1 && total >= L) X = x;
        }
    /* Within that bound, spread the layers evenly: the lowest level such that
     * min(cap, level) per stage holds them all, then the surplus is taken off
     * the front stages, which keep the most micro-batches in flight under 1F1B. */
    int level = 1;
    for (;; level++) {
        long total = 0;
        for (int s = 0; s < pp; s++) {
            long cap = stage_cap(X, s, pp, c, e, h);
            total += cap < level ? cap : level;
        }
        if (total >= L) break;
    }
    long surplus = -L;
    for (int s = 0; s < pp; s++) {
        long cap = stage_cap(X, s, pp, c, e, h);
        surplus += cap < level ? cap : level;
    }
    int first = 0;
    for (int s = 0; s <= stage; s++) {
        long cap = stage_cap(X, s, pp, c, e, h);
        int n = (int)(cap < level ? cap : level);
        if (surplus > 0 && n == level && n > 1) {
            n--;
            surplus--;
        }
        if (s == stage) {
            *layer0 = first;
            *nl = n;
        }
        first += n;
    }
}

static float *carve(float **cursor, size_t n)
{
    float *p = *cursor;
    *cursor += (n + 15) & ~(size_t)15;
    return p;
}

static float *alloc_floats(size_t n, const char *what)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, (n ? n : 1) * sizeof(float)))
        lethe_fatal("out of memory allocating %zu floats for %s", n, what);
    memset(p, 0, (n ? n : 1) * sizeof(float));
    return p;
}

#define PTR(m, idx) ((m)->params.data + (m)->params.p[idx].off)

void model_create(lethe_model *m, const lethe_model_config *cfg, const lethe_grid *g, int Bm,
                  int T)
{
    memset(m, 0, sizeof(*m));
    m->cfg = *cfg;
    m->grid = g;
    int tp = g->tp, tr = g->tp_rank, pp = g->pp, pr = g->pp_rank;
    m->C = cfg->dim;
    m->nh = cfg->n_heads;
    m->nkv = cfg->n_kv_heads;
    m->hd = cfg->dim / cfg->n_heads;
    m->ffn = cfg->mlp_dim;
    m->nh_l = m->nh / tp;
    m->nkv_l = m->nkv / tp;
    m->ffn_l = m->ffn / tp;
    m->V = cfg->vocab_size;
    m->Vpad = (m->V + tp - 1) / tp * tp;
    m->v_l = m->Vpad / tp;
    m->v0 = tr * m->v_l;
    m->v_valid = m->V - m->v0 < 0 ? 0 : (m->V - m->v0 > m->v_l ? m->v_l : m->V - m->v0);
    model_stage_layers(cfg, pp, pr, &m->layer0, &m->nl);
    m->first = pr == 0;
    m->last = pr == pp - 1;
    m->tied_copy = cfg->tie_embeddings && pp > 1 && m->last;
    m->Bm = Bm;
    m->T = T;
    m->nslots = pp - pr; /* 1F1B: at most pp - stage forwards in flight */
    m->vocab = (vocab_shard){m->v_l, m->v_valid, m->v0, g->tp_comm};
    m->qkv = (tp_column){3, {m->nh_l * m->hd, m->nkv_l * m->hd, m->nkv_l * m->hd}};
    m->mlp_in = (tp_column){2, {m->ffn_l, m->ffn_l}};
    m->head_l = (tp_column){1, {m->v_l}};

    int C = m->C, hd = m->hd;
    lethe_params *t = &m->params;
    params_init(t);
    int i_embed = -1, i_norm = -1, i_head = -1;
    if (m->first)
        i_embed = params_add(t, "model.embed_tokens.weight", 2, m->V, C, 0, tp, tr, 1, 1, 1);
    int *li = lethe_malloc(sizeof(int) * 9 * (size_t)(m->nl ? m->nl : 1), "layer table");
    for (int l = 0; l < m->nl; l++) {
        char nm[LETHE_NAME_MAX];
        int gl = m->layer0 + l, *x = li + 9 * l;
#define ADD(k, suffix, r, c_, split, decay, nd)                                                  \
    snprintf(nm, sizeof nm, "model.layers.%d.%s", gl, suffix);                                  \
    x[k] = params_add(t, nm, nd, r, c_, split, tp, tr, 0, decay, 1)
        ADD(0, "input_layernorm.weight", C, 1, -1, 0, 1);
        ADD(1, "self_attn.q_proj.weight", m->nh * hd, C, 0, 1, 2);
        ADD(2, "self_attn.k_proj.weight", m->nkv * hd, C, 0, 1, 2);
        ADD(3, "self_attn.v_proj.weight", m->nkv * hd, C, 0, 1, 2);
        ADD(4, "self_attn.o_proj.weight", C, m->nh * hd, 1, 1, 2);
        ADD(5, "post_attention_layernorm.weight", C, 1, -1, 0, 1);
        ADD(6, "mlp.gate_proj.weight", m->ffn, C, 0, 1, 2);
        ADD(7, "mlp.up_proj.weight", m->ffn, C, 0, 1, 2);
        ADD(8, "mlp.down_proj.weight", C, m->ffn, 1, 1, 2);
#undef ADD
    }
    if (m->last) {
        i_norm = params_add(t, "model.norm.weight", 1, C, 1, -1, tp, tr, 0, 0, 1);
        if (!cfg->tie_embeddings)
            i_head = params_add(t, "lm_head.weight", 2, m->V, C, 0, tp, tr, 1, 1, 1);
        else if (pp > 1) /* a synchronized copy of the first stage's embedding */
            i_head = params_add(t, "model.embed_tokens.weight", 2, m->V, C, 0, tp, tr, 1, 1, 0);
    }
    params_alloc(t);
    m->w = lethe_calloc((size_t)(m->nl ? m->nl : 1), sizeof(lethe_layer_w), "layer weights");
    for (int l = 0; l < m->nl; l++) {
        int *x = li + 9 * l;
        lethe_layer_w *w = &m->w[l];
        w->ln1 = PTR(m, x[0]);
        w->wq = PTR(m, x[1]);
        w->wk = PTR(m, x[2]);
        w->wv = PTR(m, x[3]);
        w->wo = PTR(m, x[4]);
        w->ln2 = PTR(m, x[5]);
        w->wg = PTR(m, x[6]);
        w->wu = PTR(m, x[7]);
        w->wd = PTR(m, x[8]);
    }
    free(li);
    if (i_embed >= 0) m->embed = PTR(m, i_embed);
    if (i_norm >= 0) m->norm = PTR(m, i_norm);
    if (m->last) m->head = i_head >= 0 ? PTR(m, i_head) : m->embed;

    /* activations: one slot per micro-batch in flight */
    size_t N = (size_t)Bm * T;
    size_t qw = (size_t)m->nh_l * hd, kw = (size_t)m->nkv_l * hd, Il = (size_t)m->ffn_l;
    size_t per_layer = 0;
#define R(n) (((n) + 15) & ~(size_t)15)
    per_layer += 2 * R(N * C) + 2 * R(N) + R(N * qw) * 2 + 2 * R(N * kw) + R(N * C) +
                 R((size_t)Bm * m->nh_l * T * T) + 3 * R(N * Il);
    size_t per_slot = (size_t)(m->nl + 1) * R(N * C) + (size_t)m->nl * per_layer;
    if (m->last) per_slot += R(N * C) + 2 * R(N);
#undef R
    m->slots = lethe_calloc((size_t)m->nslots, sizeof(lethe_slot), "pipeline slots");
    for (int s = 0; s < m->nslots; s++) {
        lethe_slot *sl = &m->slots[s];
        float *cur = alloc_floats(per_slot, "activations");
        sl->resid = lethe_malloc(sizeof(float *) * (size_t)(m->nl + 1), "activations");
        for (int l = 0; l <= m->nl; l++) sl->resid[l] = carve(&cur, N * C);
        sl->layer = lethe_calloc((size_t)(m->nl ? m->nl : 1), sizeof(lethe_layer_act), "acts");
        for (int l = 0; l < m->nl; l++) {
            lethe_layer_act *a = &sl->layer[l];
            a->ln1 = carve(&cur, N * C);
            a->rstd1 = carve(&cur, N);
            a->q = carve(&cur, N * qw);
            a->k = carve(&cur, N * kw);
            a->v = carve(&cur, N * kw);
            a->probs = carve(&cur, (size_t)Bm * m->nh_l * T * T);
            a->att = carve(&cur, N * qw);
            a->xmid = carve(&cur, N * C);
            a->ln2 = carve(&cur, N * C);
            a->rstd2 = carve(&cur, N);
            a->gate = carve(&cur, N * Il);
            a->up = carve(&cur, N * Il);
            a->h = carve(&cur, N * Il);
        }
        if (m->last) {
            sl->lnf = carve(&cur, N * C);
            sl->rstdf = carve(&cur, N);
            sl->logp = carve(&cur, N);
        }
    }
    m->cos_t = alloc_floats((size_t)cfg->max_seq_len * hd / 2, "rope tables");
    m->sin_t = alloc_floats((size_t)cfg->max_seq_len * hd / 2, "rope tables");
    rope_tables(m->cos_t, m->sin_t, cfg->max_seq_len, hd, cfg->rope_theta);
    m->dx = alloc_floats(N * C, "gradients of activations");
    m->dx2 = alloc_floats(N * C, "gradients of activations");
    m->dln = alloc_floats(N * C, "gradients of activations");
    m->dq = alloc_floats(N * qw, "gradients of activations");
    m->datt = alloc_floats(N * qw, "gradients of activations");
    m->dk = alloc_floats(N * kw, "gradients of activations");
    m->dv = alloc_floats(N * kw, "gradients of activations");
    m->dh = alloc_floats(N * Il, "gradients of activations");
    m->dgate = alloc_floats(N * Il, "gradients of activations");
    m->dup = alloc_floats(N * Il, "gradients of activations");
    m->attn_scratch = alloc_floats((size_t)T * T, "attention scratch");
    if (m->last) {
        m->logits = alloc_floats(N * m->v_l, "logits");
        m->dlogits = alloc_floats(N * m->v_l, "logit gradients");
    }
    m->ce_buf = alloc_floats(4 * N, "cross-entropy buffers");
    m->gcoef = alloc_floats(N, "loss coefficients");
    if (m->last) m->negent_h = lethe_calloc(N, sizeof(double), "negative entropies");
    m->act_req = lethe_malloc(sizeof(MPI_Request) * (size_t)m->nslots, "requests");
    m->grad_req = lethe_malloc(sizeof(MPI_Request) * (size_t)m->nslots, "requests");
    m->grad_send = lethe_calloc((size_t)m->nslots, sizeof(float *), "gradient send buffers");
    for (int k = 0; k < m->nslots; k++) {
        m->act_req[k] = m->grad_req[k] = MPI_REQUEST_NULL;
        if (!m->first) m->grad_send[k] = alloc_floats(N * C, "gradient send buffer");
    }
}

void model_init_weights(lethe_model *m)
{
    lethe_params *t = &m->params;
    for (int i = 0; i < t->n; i++) {
        if (t->p[i].ndim == 1)
            params_fill(t, i, 1.0f);
        else
            params_init_normal(t, i, m->cfg.init_seed, m->cfg.init_std);
    }
}

void model_free(lethe_model *m)
{
    for (int s = 0; s < m->nslots; s++) {
        free(m->slots[s].resid[0]);
        free(m->slots[s].resid);
        free(m->slots[s].layer);
    }
    free(m->slots);
    free(m->w);
    float *bufs[] = {m->cos_t, m->sin_t, m->dx,    m->dx2,   m->dln,          m->dq,
                     m->datt,  m->dk,    m->dv,    m->dh,    m->dgate,        m->dup,
                     m->attn_scratch,    m->logits, m->dlogits, m->ce_buf,   m->gcoef};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    free(m->negent_h);
    for (int k = 0; k < m->nslots; k++) free(m->grad_send[k]);
    free(m->grad_send);
    free(m->act_req);
    free(m->grad_req);
    free(m->ring_staging);
    params_free(&m->params);
    memset(m, 0, sizeof(*m));
}

/* ---- one stage, one micro-batch ------------------------------------------ */

void stage_embed(lethe_model *m, lethe_slot *s, const int *tokens)
{
    vocab_parallel_embedding_forward(s->resid[0], tokens, m->embed, m->Bm * m->T, m->C, &m->vocab);
}

/* Soft targets of micro-batch mb: its rows of m->soft_lp and flags of m->soft_seq. */
static const float *soft_lp_of(const lethe_model *m, int mb)
{
    return m->soft_seq ? m->soft_lp + (size_t)mb * m->Bm * m->T * m->v_l : NULL;
}
static const unsigned char *soft_seq_of(const lethe_model *m, int mb)
{
    return m->soft_seq ? m->soft_seq + (size_t)mb * m->Bm : NULL;
}

void stage_forward(lethe_model *m, lethe_slot *s, int mb, const int *targets, double *seq_s,
                   double *seq_n)
{
    for (int l = 0; l < m->nl; l++)
        block_forward(m, l, &s->layer[l], s->resid[l], s->resid[l + 1], m->Bm, m->T, 0,
                      block_full_attention, NULL);
    if (!m->last) return;
    int N = m->Bm * m->T, C = m->C, T = m->T;
    rmsnorm_forward(s->lnf, s->rstdf, s->resid[m->nl], m->norm, N, C, m->cfg.norm_eps);
    column_parallel_forward(&m->logits, s->lnf, (const float *const *)&m->head, &m->head_l, N, C);
    vocab_parallel_ce_forward(s->logp, m->ce_buf, m->logits, targets, soft_lp_of(m, mb),
                              soft_seq_of(m, mb), m->Bm, T, &m->vocab);
    for (int b = 0; b < m->Bm; b++) {
        double sb = 0.0, nb = 0.0;
        for (int t = 0; t < T; t++) {
            int n = b * T + t;
            if (targets[n] >= 0) {
                sb += s->logp[n];
                nb += 1.0;
            }
        }
        seq_s[b] = sb;
        seq_n[b] = nb;
    }
}

void stage_log_softmax(lethe_model *m, const int *targets, float *out, double *negent)
{
    vocab_parallel_log_softmax(out, negent, m->negent_h, m->logits, m->ce_buf, targets, m->Bm,
                               m->T, &m->vocab);
}

void stage_head_backward(lethe_model *m, lethe_slot *s, int mb, const int *targets,
                         const float *dlogp)
{
    int N = m->Bm * m->T, C = m->C;
    vocab_parallel_ce_backward(m->dlogits, m->logits, m->ce_buf, targets, soft_lp_of(m, mb),
                               soft_seq_of(m, mb), dlogp, m->Bm, m->T, &m->vocab);
    column_parallel_backward(m->dln, (float *[]){model_grad(m, m->head)},
                             (const float *const *)&m->dlogits, s->lnf,
                             (const float *const *)&m->head, &m->head_l, N, C,
                             m->grid->tp_comm);
    memset(m->dx, 0, sizeof(float) * (size_t)N * C);
    rmsnorm_backward(m->dx, model_grad(m, m->norm), m->dln, s->resid[m->nl], m->norm, s->rstdf, N,
                     C);
}

void stage_backward(lethe_model *m, lethe_slot *s, const int *tokens)
{
    for (int l = m->nl - 1; l >= 0; l--) block_backward(m, l, &s->layer[l], s->resid[l]);
    if (m->first)
        vocab_parallel_embedding_backward(model_grad(m, m->embed), m->dx, tokens, m->Bm * m->T,
                                          m->C, &m->vocab);
}

/* ---- reductions over replicas -------------------------------------------- */

static void reduce_tied(lethe_model *m)
{
    const lethe_grid *g = m->grid;
    lethe_params *t = &m->params;
    if (m->cfg.tie_embeddings && g->pp > 1 && g->ends_comm != MPI_COMM_NULL) {
        /* the embedding (first stage) and its copy (last stage) get the sum of both uses */
        int i = params_find(t, "model.embed_tokens.weight");
        comm_allreduce_sum(t->grad + t->p[i].off, t->p[i].numel, g->ends_comm);
    }
}

void model_reduce_grads(lethe_model *m)
{
    const lethe_grid *g = m->grid;
    lethe_params *t = &m->params;
    reduce_tied(m);
    /* bucketed all-reduce over replicas: 4 MiB buckets keep each call in the
     * bandwidth regime without a second buffer */
    const size_t bucket = (size_t)1 << 20;
    for (size_t off = 0; off < t->total; off += bucket) {
        size_t n = t->total - off < bucket ? t->total - off : bucket;
        comm_allreduce_sum(t->grad + off, n, g->dp_comm);
    }
}

void model_reduce_scatter_grads(lethe_model *m, size_t *lo, size_t *hi)
{
    reduce_tied(m);
    if (!m->ring_staging)
        m->ring_staging = lethe_malloc(sizeof(float) * COMM_PIECE, "reduce-scatter staging buffer");
    comm_reduce_scatter_sum(m->params.grad, m->params.total, m->grid->dp_comm, m->ring_staging);
    comm_share(m->params.total, m->grid->dp, m->grid->dp_rank, lo, hi);
}

/* Sum of squares of the gradient elements in [lo, hi), each tensor counted once. */
static double grad_ss(const lethe_model *m, size_t lo, size_t hi)
{
    const lethe_params *t = &m->params;
    double ss = 0.0;
    for (int i = 0; i < t->n; i++) {
        const lethe_param *p = &t->p[i];
        if (!p->owner) continue;
        if (p->split < 0 && m->grid->tp_rank != 0) continue; /* replicated over tp: count once */
        size_t a, b;
        if (params_overlap(p, lo, hi, &a, &b)) ss += sum_squares(t->grad + a, b - a);
    }
    return ss;
}

double model_grad_norm(lethe_model *m)
{
    double ss = grad_ss(m, 0, m->params.total);
    comm_allreduce_sum_d(&ss, 1, m->grid->mp_comm);
    return sqrt(ss);
}

double model_grad_norm_share(lethe_model *m, size_t lo, size_t hi)
{
    double ss = grad_ss(m, lo, hi);
    comm_allreduce_sum_d(&ss, 1, m->grid->world);
    return sqrt(ss);
}
