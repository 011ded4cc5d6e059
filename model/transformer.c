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
#include "parts.h"
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
     * plus attention's QK^T and PV over all T keys (the full square, as the usual
     * MFU count has it; the kernels skip most of the masked half). */
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

/* The shape of this rank's piece: sizes, stage, vocabulary shard, layer roles. */
static void shape_init(lethe_shape *s, const lethe_model_config *cfg, const lethe_grid *g, int Bm,
                       int T, int M, comm_stats *comm)
{
    int tp = g->tp, tr = g->tp_rank, pp = g->pp, pr = g->pp_rank;
    s->cfg = *cfg;
    s->grid = g;
    s->C = cfg->dim;
    s->nh = cfg->n_heads;
    s->nkv = cfg->n_kv_heads;
    s->hd = cfg->dim / cfg->n_heads;
    s->ffn = cfg->mlp_dim;
    s->nh_l = s->nh / tp;
    s->nkv_l = s->nkv / tp;
    s->ffn_l = s->ffn / tp;
    s->V = cfg->vocab_size;
    s->Vpad = (s->V + tp - 1) / tp * tp;
    s->v_l = s->Vpad / tp;
    s->v0 = tr * s->v_l;
    s->v_valid = s->V - s->v0 < 0 ? 0 : (s->V - s->v0 > s->v_l ? s->v_l : s->V - s->v0);
    model_stage_layers(cfg, pp, pr, &s->layer0, &s->nl);
    s->first = pr == 0;
    s->last = pr == pp - 1;
    s->tied_copy = cfg->tie_embeddings && pp > 1 && s->last;
    s->Bm = Bm;
    s->T = T;
    s->M = M;
    s->nslots = pp - pr; /* 1F1B: at most pp - stage forwards in flight */
    s->comm = comm;
    s->vocab = (vocab_shard){s->v_l, s->v_valid, s->v0, g->tp_comm, s->comm};
    s->qkv = (tp_column){3, {s->nh_l * s->hd, s->nkv_l * s->hd, s->nkv_l * s->hd}};
    s->mlp_in = (tp_column){2, {s->ffn_l, s->ffn_l}};
    s->head_l = (tp_column){1, {s->v_l}};
}

void model_create(lethe_model *m, const lethe_model_config *cfg, const lethe_grid *g, int Bm, int T,
                  int M)
{
    memset(m, 0, sizeof(*m));
    if (Bm < 1 || T < 1 || M < 1)
        lethe_fatal("model_create: micro-batches of %d x %d, %d per call: each must be >= 1", Bm, T,
                    M);
    shape_init(&m->shape, cfg, g, Bm, T, M, &m->ws.comm);
    weights_create(&m->w, &m->shape);
    workspace_create(&m->ws, &m->shape);
}

void model_free(lethe_model *m)
{
    workspace_free(&m->ws);
    weights_free(&m->w);
    memset(m, 0, sizeof(*m));
}

/* ---- one stage, one micro-batch ------------------------------------------ */

void stage_embed(lethe_model *m, lethe_slot *s, const int *tokens)
{
    const lethe_shape *sh = &m->shape;
    vocab_parallel_embedding_forward(s->resid[0], tokens, m->w.embed, sh->Bm * sh->T, sh->C,
                                     &sh->vocab);
}

/* Micro-batch mb's rows of the batch: targets, and soft targets when the batch has them. */
typedef struct {
    const int *targets;
    const float *soft_lp;
    const unsigned char *soft_seq;
} mb_rows;

static mb_rows rows_of(const lethe_model *m, const lethe_batch *b, int mb)
{
    size_t n0 = (size_t)mb * m->shape.Bm * m->shape.T;
    mb_rows r = {b->targets + n0, NULL, NULL};
    if (b->soft_seq) {
        r.soft_lp = b->soft_lp + n0 * m->shape.v_l;
        r.soft_seq = b->soft_seq + (size_t)mb * m->shape.Bm;
    }
    return r;
}

void stage_forward(lethe_model *m, lethe_slot *s, const lethe_batch *b, int mb, double *seq_s,
                   double *seq_n)
{
    const lethe_shape *sh = &m->shape;
    for (int l = 0; l < sh->nl; l++)
        block_forward(m, l, &s->layer[l], s->resid[l], s->resid[l + 1], sh->Bm, sh->T, 0,
                      block_full_attention, NULL);
    if (!sh->last) return;
    int N = sh->Bm * sh->T, C = sh->C, T = sh->T;
    mb_rows r = rows_of(m, b, mb);
    rmsnorm_forward(s->lnf, s->rstdf, s->resid[sh->nl], m->w.norm, N, C, sh->cfg.norm_eps);
    column_parallel_forward(&m->ws.logits, s->lnf, (const float *const *)&m->w.head, &sh->head_l, N,
                            C);
    const lethe_margin_term *mt = m->margin;
    m->ws.dlogits_ready = m->ws.nll_fused && !r.soft_lp && !mt;
    /* in place: the gradient overwrites the logits; on one shard row by row while the row
     * is in cache, on several after the all-reduces of the rows' maxima and sums */
    if (m->ws.dlogits_ready && sh->grid->tp == 1)
        ce_fused_nll(s->logp, m->ws.ce_buf, m->ws.logits, m->ws.logits, r.targets, m->ws.nll_w,
                     N, sh->v_l, sh->vocab.nvalid);
    else if (m->ws.dlogits_ready)
        vocab_parallel_nll_fused(s->logp, m->ws.ce_buf, m->ws.logits, r.targets, m->ws.nll_w, N,
                                 &sh->vocab);
    else
        vocab_parallel_ce_forward(s->logp, m->ws.ce_buf, m->ws.logits, r.targets, r.soft_lp,
                                  r.soft_seq, sh->Bm, T, &sh->vocab);
    if (mt) {
        size_t n0 = (size_t)mb * N;
        vocab_parallel_margin_forward(mt->d + n0, mt->arg + n0, m->ws.logits, m->ws.ce_buf,
                                      r.targets, mt->rows + (size_t)mb * sh->Bm, sh->Bm, T,
                                      sh->cfg.vocab_size, &sh->vocab);
    }
    for (int q = 0; q < sh->Bm; q++) {
        double sb = 0.0, nb = 0.0;
        for (int t = 0; t < T; t++) {
            int n = q * T + t;
            if (r.targets[n] >= 0) {
                sb += s->logp[n];
                nb += 1.0;
            }
        }
        seq_s[q] = sb;
        seq_n[q] = nb;
    }
}

void stage_log_softmax(lethe_model *m, const int *targets, float *out, double *negent)
{
    const lethe_shape *sh = &m->shape;
    vocab_parallel_log_softmax(out, negent, m->ws.negent_h, m->ws.logits, m->ws.ce_buf, targets,
                               sh->Bm, sh->T, &sh->vocab);
}

void stage_head_backward(lethe_model *m, lethe_slot *s, const lethe_batch *b, int mb,
                         const float *dlogp)
{
    const lethe_shape *sh = &m->shape;
    lethe_workspace *ws = &m->ws;
    int N = sh->Bm * sh->T, C = sh->C;
    mb_rows r = rows_of(m, b, mb);
    /* when ready, the forward wrote them over the logits (ce_fused_nll) */
    float *dlogits = ws->dlogits_ready ? ws->logits : ws->dlogits;
    if (!ws->dlogits_ready)
        vocab_parallel_ce_backward(ws->dlogits, ws->logits, ws->ce_buf, r.targets, r.soft_lp,
                                   r.soft_seq, dlogp, sh->Bm, sh->T, &sh->vocab);
    ws->dlogits_ready = 0;
    const lethe_margin_term *mt = m->margin;
    if (mt) { /* the loss step left dL/dd in mt->d */
        size_t n0 = (size_t)mb * N;
        vocab_parallel_margin_backward(dlogits, mt->arg + n0, mt->d + n0,
                                       mt->rows + (size_t)mb * sh->Bm, sh->Bm, sh->T,
                                       sh->cfg.vocab_size, &sh->vocab);
    }
    column_parallel_backward(
        ws->dln, (float *[]){model_grad(m, m->w.head)}, (const float *const *)&dlogits, s->lnf,
        (const float *const *)&m->w.head, &sh->head_l, N, C, sh->grid->tp_comm, sh->comm);
    memset(ws->dx, 0, sizeof(float) * (size_t)N * C);
    rmsnorm_backward(ws->dx, model_grad(m, m->w.norm), ws->dln, s->resid[sh->nl], m->w.norm,
                     s->rstdf, N, C);
}

void stage_backward(lethe_model *m, lethe_slot *s, const int *tokens)
{
    const lethe_shape *sh = &m->shape;
    for (int l = sh->nl - 1; l >= 0; l--) block_backward(m, l, &s->layer[l], s->resid[l]);
    if (sh->first)
        vocab_parallel_embedding_backward(model_grad(m, m->w.embed), m->ws.dx, tokens,
                                          sh->Bm * sh->T, sh->C, &sh->vocab);
}

/* ---- reductions over replicas -------------------------------------------- */

int model_sums_tied(const lethe_model *m)
{
    const lethe_grid *g = m->shape.grid;
    return m->shape.cfg.tie_embeddings && g->pp > 1 && g->ends_comm != MPI_COMM_NULL;
}

/* With bad, the gradient is first checked for Inf and NaN (*bad: the first failing
 * tensor, or -1), when there is a sum to do. Returns whether there was. */
static int reduce_tied(lethe_model *m, int *bad)
{
    const lethe_grid *g = m->shape.grid;
    lethe_params *t = &m->w.params;
    if (model_sums_tied(m)) {
        if (bad) *bad = params_first_nonfinite_grad(t);
        /* the embedding (first stage) and its copy (last stage) get the sum of both uses */
        int i = m->w.embed_idx;
        comm_allreduce_sum(t->grad + t->p[i].off, t->p[i].numel, g->ends_comm, &m->ws.comm);
        return 1;
    }
    return 0;
}

void model_reduce_grads(lethe_model *m)
{
    const lethe_grid *g = m->shape.grid;
    lethe_params *t = &m->w.params;
    reduce_tied(m, NULL);
    /* bucketed all-reduce over replicas: 4 MiB buckets keep each call in the
     * bandwidth regime without a second buffer */
    const size_t bucket = (size_t)1 << 20;
    for (size_t off = 0; off < t->total; off += bucket) {
        size_t n = t->total - off < bucket ? t->total - off : bucket;
        comm_allreduce_sum(t->grad + off, n, g->dp_comm, &m->ws.comm);
    }
}

void model_reduce_scatter_grads(lethe_model *m, size_t *lo, size_t *hi, int *bad)
{
    const lethe_grid *g = m->shape.grid;
    lethe_params *t = &m->w.params;
    /* the tied copies' sum comes first, so they are checked before it */
    int tied = reduce_tied(m, bad);
    size_t k = t->total;
    if (g->dp > 1) /* the workspace holds the staging buffer when dp > 1 */
        comm_reduce_scatter_sum(t->grad, t->total, g->dp_comm, m->ws.ring_staging,
                                tied ? NULL : &k, &m->ws.comm);
    else if (!tied)
        k = comm_first_nonfinite(t->grad, t->total);
    if (!tied) *bad = params_at(t, k);
    comm_share(t->total, g->dp, g->dp_rank, lo, hi);
}

/* Sum of squares of the gradient elements in [lo, hi), each tensor counted once. With
 * other, the tensors not counted here are scanned for Inf and NaN: *other says whether
 * one held any. */
static double grad_ss(const lethe_model *m, size_t lo, size_t hi, int *other)
{
    const lethe_params *t = &m->w.params;
    double ss = 0.0;
    for (int i = 0; i < t->n; i++) {
        const lethe_param *p = &t->p[i];
        size_t a, b;
        if (!params_overlap(p, lo, hi, &a, &b)) continue;
        /* not owned, or replicated over tp and counted on tp rank 0 */
        if (!p->owner || (p->split < 0 && m->shape.grid->tp_rank != 0)) {
            if (other && comm_first_nonfinite(t->grad + a, b - a) < b - a) *other = 1;
            continue;
        }
        ss += sum_squares(t->grad + a, b - a);
    }
    return ss;
}

double model_grad_norm(lethe_model *m, int *bad)
{
    int other = 0;
    double ss = grad_ss(m, 0, m->w.params.total, bad ? &other : NULL);
    /* a sum of squares is finite only when every term is, so the scan that names the
     * tensor runs only when it is not (or a square overflowed: then it finds none) */
    if (bad) *bad = other || !isfinite(ss) ? params_first_nonfinite_grad(&m->w.params) : -1;
    comm_allreduce_sum_d(&ss, 1, m->shape.grid->mp_comm, &m->ws.comm);
    return sqrt(ss);
}

double model_grad_norm_share(lethe_model *m, size_t lo, size_t hi)
{
    double ss = grad_ss(m, lo, hi, NULL);
    comm_allreduce_sum_d(&ss, 1, m->shape.grid->world, &m->ws.comm);
    return sqrt(ss);
}
