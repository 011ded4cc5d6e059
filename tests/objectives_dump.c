/* tests/objectives_dump.c — dumps one unlearning-objective case for tests/torch_objectives.py.
 *
 *   mpirun -n 1 objectives_dump OUTDIR --case NAME
 *
 * A small model (V 97, C 32, L 2, 4 heads over 2 kv heads, untied head, T 16; norm
 * weights drawn around 1 as in tests/parity_dump.c) and one unlearning batch laid out
 * as jobs/unlearn.c lays it out: 4 forget rows first, then 4 retain rows (none for ga,
 * whose job takes no retain batch), synthetic Markov sequences of different lengths
 * with a masked 3-token prompt; forget and retain rows come from different chains.
 * The model first memorises the batch (15 AdamW steps of token-mean NLL, to about 0.09
 * nats per token) so that unlearning starts where it does in practice: at random
 * weights SimNPO's sigmoid weight would be ~1e-6 and its gradient untested. The
 * "initial weights" below are the memorised ones, with fresh optimizer moments.
 * The unlearn_ctx is filled as the job fills it: is_forget, s_ref (NPO: model_forward
 * of the initial weights, or of a perturbed copy of them so that s - s_ref != 0),
 * n_forget = forget rows of the global batch, retain_tokens = target tokens of the
 * retain rows. Then:
 *   - model_forward_backward with unlearn_objective_seq (one micro-batch of 8 rows),
 *   - the same on a second model with two micro-batches (the objective must see the
 *     replica-wide row index: micro-batch 0 is all forget, 1 all retain),
 *   - one optimizer step (model_train_step) and a forward of the batch after it.
 * Writes, with io/safetensors:
 *   weights.safetensors      the initial parameters (HF names, global shapes);
 *                            __metadata__: model config and the case (method, beta,
 *                            gamma, c_f, c_r, n_forget, retain_tokens, reference kind)
 *   ref_weights.safetensors  NPO: the parameters s_ref was computed with
 *   grads.safetensors        gradient of the loss, one micro-batch
 *   grads_mb2.safetensors    gradient of the loss, two micro-batches
 *   grads_forget.safetensors gradient of the forget term alone (c_r = 0), two micro-batches
 *   batch.safetensors        tokens, targets (B, T), is_forget (B) I32
 *   outputs.safetensors      seq_s, seq_n, s_ref, seq_s_after (B) F32; __metadata__ holds
 *                            the scalars at full precision (%.17g): loss, loss_forget,
 *                            loss_retain, sigma_sum, the same for two micro-batches,
 *                            loss_forget_only (the c_r = 0 run),
 *                            the step's loss / grad_norm / clip / lr and loss_after
 *   final.safetensors        the parameters after the optimizer step */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../io/safetensors.h"
#include "../io/synth/markov_stream.h"
#include "../model/objective_pairs.h"
#include "../model/objectives.h"
#include "../model/step.h"
#include "../model/transformer.h"
#include "../model/wagle.h"
#include "../mpi/comm.h"
#include "../mpi/fatal.h"
#include "../mpi/grid.h"
#include "objectives_cases.h"

#define WAGLE_MU 1e-3

#define NF 4 /* forget rows */
#define NP 2 /* pair methods: rows [0, NP) y_l, [NP, 2 NP) y_w */
#define NR 4 /* retain rows */

#define TT 16
#define MEMORISE_STEPS 15

/* Writes the parameter table's `buf` (data or grad) as safetensors at global shapes. */
static void write_params(const char *path, const lethe_model *m, const float *buf, const char *meta)
{
    const lethe_params *t = &m->w.params;
    const char **names = lethe_calloc((size_t)t->n, sizeof(char *), "names");
    int *nd = lethe_calloc((size_t)t->n, sizeof(int), "ndims");
    int64_t *shp = lethe_calloc(2 * (size_t)t->n, sizeof(int64_t), "shapes");
    const int64_t **shapes = lethe_calloc((size_t)t->n, sizeof(int64_t *), "shapes");
    const float **datas = lethe_calloc((size_t)t->n, sizeof(float *), "datas");
    int k = 0;
    for (int i = 0; i < t->n; i++) {
        const lethe_param *p = &t->p[i];
        if (!p->owner) continue;
        /* one rank holds every tensor whole; vocabulary padding rows sit after the real ones */
        if (p->gstart[0] || p->gstart[1] || p->vshape[0] != p->gshape[0] ||
            p->vshape[1] != p->gshape[1] || p->lshape[1] != p->gshape[1])
            lethe_fatal("objectives_dump: parameter '%s' is not whole on this rank", p->name);
        names[k] = p->name;
        nd[k] = p->ndim;
        shp[2 * k] = p->gshape[0];
        shp[2 * k + 1] = p->gshape[1];
        shapes[k] = shp + 2 * k;
        datas[k] = buf + p->off;
        k++;
    }
    char err[1024];
    if (st_write(path, k, names, nd, shapes, datas, meta, err, sizeof err))
        lethe_fatal("objectives_dump: %s", err);
    free(names);
    free(nd);
    free(shp);
    free(shapes);
    free(datas);
}

static void write_or_die(const char *path, int n, const char **names, const st_dtype *dts,
                         const int *nd, const int64_t **shapes, const void **datas,
                         const char *meta)
{
    char err[1024];
    if (st_write_typed(path, n, names, dts, nd, shapes, datas, meta, err, sizeof err))
        lethe_fatal("objectives_dump: %s", err);
}

/* The job's context for this batch (jobs/unlearn.c): global counts of a 1-replica batch. */
static const double *kl_negent; /* KL cases: the reference's per-sequence negative entropy */

static double pair_s[NF + NR], pair_n[NF + NR]; /* pairs_forward's sums, per make_ctx */

static unlearn_ctx make_ctx(lethe_model *pm, const obj_case *oc, const lethe_batch *b,
                            const unsigned char *is_forget, const double *s_ref, int nf)
{
    double rt = 0, ft = 0;
    for (int i = 0; i < b->B; i++)
        for (int t = 0; t < b->T; t++)
            *(i < nf ? &ft : &rt) += b->targets[(size_t)i * b->T + t] >= 0;
    unlearn_ctx c = {.method = oc->method,
                     .beta = oc->beta,
                     .gamma = oc->gamma,
                     .c_f = oc->c_f,
                     .c_r = oc->c_r,
                     .beta2 = oc->beta2,
                     .is_forget = is_forget,
                     .s_ref = s_ref,
                     .negent = kl_negent,
                     .n_forget = nf,
                     .retain_tokens = rt,
                     .forget_tokens = ft,
                     .lambda = oc->c_r};
    if (method_uses_alternate(oc->method)) { /* as jobs/unlearn.c and unlearn_pairs.c */
        c.n_pairs = NP;
        c.n_forget = NP;
        c.forget_tokens = 0;
        for (int i = NP; oc->method == METHOD_IDKNLL && i < 2 * NP; i++)
            for (int t = 0; t < b->T; t++) c.forget_tokens += b->targets[(size_t)i * b->T + t] >= 0;
        if (method_pairs(oc->method)) {
            pairs_forward(pm, b, 2 * NP, pair_s, pair_n);
            c.pair_s = pair_s;
        }
    }
    return c;
}

/* PDU: the forget rows' logit-margin term, attached to m for one call with context c
 * (buffers of the whole batch); other methods: none. */
static float pdu_d[(NF + NR) * TT];
static int pdu_arg[(NF + NR) * TT];
static lethe_margin_term pdu_term;

static void attach_margin(lethe_model *m, const obj_case *oc, const unsigned char *is_forget,
                          unlearn_ctx *c)
{
    pdu_term = (lethe_margin_term){is_forget, pdu_d, pdu_arg, pdu_margin_grad, c};
    m->margin = oc->method == METHOD_PDU ? &pdu_term : NULL;
}

/* The log-softmax lsm of batch b lowered by drop at the targets of the forget rows, as
 * jobs/unlearn.c lowers it (CE-U: INFINITY; UNDIAL: beta); the batch then carries it. */
static void lower_soft_targets(lethe_model *m, lethe_batch *b, float *lsm,
                               const unsigned char *is_forget, double drop)
{
    double *norm = lethe_malloc(sizeof(double) * (size_t)b->B * b->T, "soft target normalisers");
    vocab_parallel_lower_targets(lsm, norm, b->targets, is_forget, drop, b->B, b->T,
                                 &m->shape.vocab);
    free(norm);
    b->soft_lp = lsm;
    b->soft_seq = is_forget;
}

/* CE-U's soft targets at m's current weights: a forward of the batch without soft
 * targets, then p renormalised without the true token. */
static void ceu_soft_targets(lethe_model *m, lethe_batch *b, float *lsm,
                             const unsigned char *is_forget)
{
    lethe_batch plain = *b;
    plain.soft_lp = NULL;
    plain.soft_seq = NULL;
    model_forward_logsoftmax(m, &plain, lsm, NULL, NULL);
    lower_soft_targets(m, b, lsm, is_forget, INFINITY);
}

static void build_model(lethe_model *m, const lethe_model_config *mc, const lethe_grid *g, int B,
                        int micro)
{
    char err[1024];
    if (model_check_layout(mc, 1, 1, 1, B, micro, TT, err, sizeof err))
        lethe_fatal("objectives_dump: %s", err);
    model_create(m, mc, g, B / micro, TT, micro);
    model_init_weights(m);
    /* norm weights drawn around 1 instead of exactly 1 (their gradients then matter) */
    for (int i = 0; i < m->w.params.n; i++) {
        const lethe_param *p = &m->w.params.p[i];
        if (p->ndim != 1) continue;
        uint64_t base = lethe_hash64(mc->init_seed ^ lethe_hash_str(p->name) ^ 0x6e6f726dULL);
        for (size_t k = 0; k < p->numel; k++)
            m->w.params.data[p->off + k] =
                1.0f + 0.25f * lethe_normal_from_u64(lethe_hash64(base + k));
    }
}

int main(int argc, char **argv)
{
    comm_init(&argc, &argv);
    const char *outdir = NULL, *cname = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--case") && i + 1 < argc)
            cname = argv[++i];
        else if (argv[i][0] != '-' && !outdir)
            outdir = argv[i];
        else
            lethe_fatal("objectives_dump: unexpected argument '%s' (usage: objectives_dump "
                        "OUTDIR --case NAME)",
                        argv[i]);
    }
    const obj_case *oc = NULL;
    for (size_t i = 0; cname && i < sizeof cases / sizeof cases[0]; i++)
        if (!strcmp(cases[i].name, cname)) oc = &cases[i];
    if (!outdir || !oc) {
        char known[512] = "";
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
            snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", i ? ", " : "",
                     cases[i].name);
        lethe_fatal("objectives_dump: %s (usage: objectives_dump OUTDIR --case NAME; cases: %s)",
                    !outdir ? "no output folder given" : "unknown or missing --case", known);
    }
    if (mkdir(outdir, 0755) && errno != EEXIST)
        lethe_fatal("objectives_dump: cannot create '%s': %s", outdir, strerror(errno));

    char err[1024];
    lethe_grid g;
    if (grid_create(&g, MPI_COMM_WORLD, 1, 1, 1, err, sizeof err))
        lethe_fatal("objectives_dump runs on 1 rank: %s", err);
    fatal_set_grid(&g);

    /* the unlearn job gives ga no retain batch; ga_retain_rows checks that retain rows in
     * a ga batch carry no weight */
    const int nf = NF, nr = (oc->method == METHOD_GA && strcmp(oc->name, "ga_retain_rows")) ||
                                    oc->method == METHOD_CEU
                                ? 0
                                : NR;
    const int B = nf + nr, T = TT;
    lethe_model_config mc = {0};
    mc.vocab_size = 97; /* prime: padding of the vocabulary is exercised */
    mc.dim = 32;
    mc.n_layers = 2;
    mc.n_heads = 4;
    mc.n_kv_heads = 2;
    mc.mlp_dim = 48;
    mc.max_seq_len = T;
    mc.rope_theta = 10000.0f;
    mc.norm_eps = 1e-5f;
    mc.tie_embeddings = 0;
    mc.init_std = 0.2f;
    mc.init_seed = 20240917ULL;

    lethe_model m, m2;
    build_model(&m, &mc, &g, B, 1);
    build_model(&m2, &mc, &g, B, 2);

    /* ---- the batch: forget rows, then retain rows (from another chain) ---- */
    size_t BT = (size_t)B * T;
    int *tok = lethe_malloc(sizeof(int) * BT, "tokens"),
        *tg = lethe_malloc(sizeof(int) * BT, "targets");
    synth_stream fsrc = {4101, mc.vocab_size, 4, 3, 6}, rsrc = {5303, mc.vocab_size, 4, 3, 6};
    synth_stream_batch(&fsrc, 0, 0, nf, T, tok, tg);
    if (method_uses_alternate(oc->method)) { /* y_w: another chain's rows */
        synth_stream wsrc = {6007, mc.vocab_size, 4, 3, 6};
        synth_stream_batch(&wsrc, 0, 0, NP, T, tok + (size_t)NP * T, tg + (size_t)NP * T);
    }
    if (nr) synth_stream_batch(&rsrc, 0, 0, nr, T, tok + (size_t)nf * T, tg + (size_t)nf * T);
    lethe_batch b = {B, T, tok, tg, NULL, NULL};
    unsigned char is_forget[NF + NR] = {0};
    int is_forget_i[NF + NR] = {0};
    for (int i = 0; i < nf; i++) is_forget[i] = 1, is_forget_i[i] = 1;
    /* what the case is about: forget rows of different answer lengths, a masked prompt */
    {
        int cnt[NF + NR], distinct = 0, first = T;
        for (int i = 0; i < B; i++) {
            cnt[i] = 0;
            for (int t = 0; t < T; t++)
                if (tg[(size_t)i * T + t] >= 0) {
                    cnt[i]++;
                    if (t < first) first = t;
                }
        }
        for (int i = 1; i < nf; i++) distinct += cnt[i] != cnt[0];
        if (!distinct || first < 2)
            lethe_fatal("objectives_dump: case %s: the batch must mix forget lengths and mask a "
                        "prompt (first target at %d)",
                        oc->name, first);
    }

    /* ---- the model to unlearn: one that has memorised the batch ----
     * At random weights every answer token has log-probability near -log V, so SimNPO's
     * sigma((beta/|y|) s + gamma) is about 1e-6 and its forget gradient would vanish
     * under the retain one; unlearning starts from a model that knows its data. */
    {
        lethe_optim_config mo = {0};
        mo.schedule = SCHEDULE_CONSTANT;
        mo.lr = 1e-2f;
        mo.beta1 = 0.9f;
        mo.beta2 = 0.95f;
        mo.eps = 1e-8f;
        mo.grad_clip = 1.0f;
        nll_objective_ctx nc = {1.0 / model_count_targets(&m, &b)};
        lethe_objective no = {nll_objective_seq, &nc, NULL};
        step_stats st;
        for (int s = 0; s < MEMORISE_STEPS; s++)
            model_train_step(&m, &b, &no, &mo, NULL, s, MEMORISE_STEPS, &st);
        /* the unlearn job starts from weights alone (init.checkpoint): fresh moments */
        memset(m.w.params.m, 0, sizeof(float) * m.w.params.total);
        memset(m.w.params.v, 0, sizeof(float) * m.w.params.total);
        printf("objectives_dump %s: memorised the batch in %d steps (token-mean NLL %.4f)\n",
               oc->name, MEMORISE_STEPS, st.loss);
    }

    /* ---- NPO reference: a forward-only pass, as the job caches it ---- */
    double s_ref[NF + NR] = {0}, n_ref[NF + NR] = {0};
    float *ref_w = NULL;
    if (oc->ref != REF_NONE) {
        float *saved = NULL;
        if (oc->ref == REF_PERTURBED) {
            /* a nearby model: every weight moved by 10% of its scale, deterministically */
            saved = lethe_malloc(sizeof(float) * m.w.params.total, "weights");
            memcpy(saved, m.w.params.data, sizeof(float) * m.w.params.total);
            for (int i = 0; i < m.w.params.n; i++) {
                const lethe_param *p = &m.w.params.p[i];
                uint64_t base = lethe_hash64(0x70657274ULL ^ lethe_hash_str(p->name));
                for (size_t k = 0; k < p->numel; k++) {
                    float *x = &m.w.params.data[p->off + k];
                    float sc = p->ndim == 1 ? 1.0f : mc.init_std;
                    *x += 0.1f * sc * lethe_normal_from_u64(lethe_hash64(base + k));
                }
            }
        }
        model_forward(&m, &b, s_ref, n_ref, NULL);
        ref_w = lethe_malloc(sizeof(float) * m.w.params.total, "weights");
        memcpy(ref_w, m.w.params.data, sizeof(float) * m.w.params.total);
        if (saved) {
            memcpy(m.w.params.data, saved, sizeof(float) * m.w.params.total);
            free(saved);
        }
        for (int i = nf; i < B; i++) s_ref[i] = 0.0; /* the job keeps s_ref of forget rows only */
    }
    memcpy(m2.w.params.data, m.w.params.data, sizeof(float) * m.w.params.total);

    /* ---- KL retain term: the reference's distributions, as jobs/unlearn.c makes them
     * (its weights exchanged into the model for one forward). One buffer over the
     * replica batch serves both micro-batchings. */
    float *kl_lsm = NULL;
    double negent[NF + NR] = {0};
    unsigned char is_retain[NF + NR] = {0};
    if (oc->kl) {
        for (int i = nf; i < B; i++) is_retain[i] = 1;
        kl_lsm = lethe_malloc(sizeof(float) * (size_t)B * T * m.shape.v_l, "KL reference");
        params_swap_data(&m.w.params, ref_w);
        model_forward_logsoftmax(&m, &b, kl_lsm, negent, NULL);
        params_swap_data(&m.w.params, ref_w);
        kl_negent = negent;
        b.soft_lp = kl_lsm; /* from here on the batch carries the retain rows' soft targets */
        b.soft_seq = is_retain;
    }
    /* ---- CE-U: the job's batch skips each forget row's first answer token (the original
     * targets are what batch.safetensors records: the reference applies the rule itself)
     * and carries soft targets from a forward of the current weights ---- */
    int *tg_step = tg;
    if (oc->method == METHOD_UNDIAL) {
        kl_lsm = lethe_malloc(sizeof(float) * BT * m.shape.v_l, "UNDIAL targets");
        params_swap_data(&m.w.params, ref_w);
        model_forward_logsoftmax(&m, &b, kl_lsm, NULL, NULL);
        params_swap_data(&m.w.params, ref_w);
        lower_soft_targets(&m, &b, kl_lsm, is_forget, oc->beta);
    }
    if (oc->method == METHOD_CEU) {
        tg_step = lethe_malloc(sizeof(int) * BT, "targets");
        memcpy(tg_step, tg, sizeof(int) * BT);
        for (int i = 0; i < nf; i++) ceu_skip_first_target(tg_step + (size_t)i * T, T);
        b.targets = tg_step;
        kl_lsm = lethe_malloc(sizeof(float) * BT * m.shape.v_l, "CE-U targets");
        ceu_soft_targets(&m, &b, kl_lsm, is_forget);
    }

    /* ---- forward + backward with the job's objective ---- */
    unlearn_ctx ctx = make_ctx(&m, oc, &b, is_forget, oc->ref ? s_ref : NULL, nf);
    lethe_objective obj = unlearn_objective(&ctx);
    double seq_s[NF + NR], seq_n[NF + NR];
    attach_margin(&m, oc, is_forget, &ctx);
    double loss = model_forward_backward(&m, &b, &obj, seq_s, seq_n);
    unlearn_ctx ctx2 = make_ctx(&m2, oc, &b, is_forget, oc->ref ? s_ref : NULL, nf);
    lethe_objective obj2 = unlearn_objective(&ctx2);
    attach_margin(&m2, oc, is_forget, &ctx2);
    double loss2 = model_forward_backward(&m2, &b, &obj2, NULL, NULL);
    float *grad2 = lethe_malloc(sizeof(float) * m2.w.params.total, "gradients");
    memcpy(grad2, m2.w.params.grad, sizeof(float) * m2.w.params.total);
    /* the forget term alone (c_r = 0): its gradient is checked at its own scale, not
     * hidden under the retain term's */
    unlearn_ctx ctxf = make_ctx(&m2, oc, &b, is_forget, oc->ref ? s_ref : NULL, nf);
    ctxf.c_r = 0.0;
    ctxf.lambda = 0.0;
    lethe_objective objf = unlearn_objective(&ctxf);
    attach_margin(&m2, oc, is_forget, &ctxf);
    double loss_f = model_forward_backward(&m2, &b, &objf, NULL, NULL);
    float *wscore = NULL;
    if (strstr(oc->name, "_wagle")) { /* scores of the initial weights, as the job makes them */
        size_t n = m2.w.params.total;
        float *gf = lethe_malloc(sizeof(float) * n, "gradients");
        memcpy(gf, m2.w.params.grad, sizeof(float) * n);
        unlearn_ctx cr = make_ctx(&m2, oc, &b, is_forget, NULL, nf);
        cr.c_f = 0.0;
        cr.c_r = 1.0;
        lethe_objective objr = unlearn_objective(&cr);
        model_forward_backward(&m2, &b, &objr, NULL, NULL);
        wscore = lethe_malloc(sizeof(float) * n, "scores");
        wagle_scores(wscore, m.w.params.data, gf, m2.w.params.grad, WAGLE_MU, n);
        /* grads_forget below stays the forget term's */
        memcpy(m2.w.params.grad, gf, sizeof(float) * n);
        free(gf);
    }

    char meta[2048], path[1200];
    snprintf(
        meta, sizeof meta,
        "{\"case\":\"%s\",\"vocab_size\":\"%d\",\"dim\":\"%d\",\"n_layers\":\"%d\","
        "\"n_heads\":\"%d\",\"n_kv_heads\":\"%d\",\"mlp_dim\":\"%d\",\"rope_theta\":\"%.9g\","
        "\"norm_eps\":\"%.9g\",\"tie_embeddings\":\"%d\",\"batch\":\"%d\",\"seq_len\":\"%d\","
        "\"method\":\"%s\",\"beta\":\"%.17g\",\"gamma\":\"%.17g\",\"c_f\":\"%.17g\","
        "\"c_r\":\"%.17g\",\"beta2\":\"%.17g\",\"n_forget\":\"%.17g\",\"retain_tokens\":\"%.17g\","
        "\"forget_tokens\":\"%.17g\",\"n_pairs\":\"%d\","
        "\"reference\":\"%s\",\"retain_loss\":\"%s\"}",
        oc->name, mc.vocab_size, mc.dim, mc.n_layers, mc.n_heads, mc.n_kv_heads, mc.mlp_dim,
        (double)mc.rope_theta, (double)mc.norm_eps, mc.tie_embeddings, B, T,
        method_name(oc->method), oc->beta, oc->gamma, oc->c_f, oc->c_r, oc->beta2, ctx.n_forget,
        ctx.retain_tokens, ctx.forget_tokens, ctx.n_pairs,
        oc->ref == REF_NONE      ? "none"
        : oc->ref == REF_INITIAL ? "initial"
                                 : "perturbed",
        oc->kl ? "kl" : "nll");
    snprintf(path, sizeof path, "%s/weights.safetensors", outdir);
    write_params(path, &m, m.w.params.data, meta);
    if (ref_w) {
        snprintf(path, sizeof path, "%s/ref_weights.safetensors", outdir);
        write_params(path, &m, ref_w, meta);
    }
    snprintf(path, sizeof path, "%s/grads.safetensors", outdir);
    write_params(path, &m, m.w.params.grad, meta);
    snprintf(path, sizeof path, "%s/grads_mb2.safetensors", outdir);
    write_params(path, &m2, grad2, meta);
    snprintf(path, sizeof path, "%s/grads_forget.safetensors", outdir);
    write_params(path, &m2, m2.w.params.grad, meta);
    if (wscore) {
        char wm[64];
        snprintf(wm, sizeof wm, "{\"mu\":\"%.17g\"}", WAGLE_MU);
        snprintf(path, sizeof path, "%s/wagle_scores.safetensors", outdir);
        write_params(path, &m2, wscore, wm);
        free(wscore);
    }

    /* ---- one optimizer step, as the unlearn job takes it ---- */
    lethe_optim_config opt = {0};
    opt.schedule = SCHEDULE_CONSTANT;
    opt.lr = 1e-3f;
    opt.min_lr = 0.0f;
    opt.warmup_steps = 0;
    opt.beta1 = 0.9f;
    opt.beta2 = 0.95f;
    opt.eps = 1e-8f;
    opt.weight_decay = 0.0f; /* the step's direction is the objective's alone */
    opt.grad_clip = 1.0f;
    unlearn_ctx cs = make_ctx(&m, oc, &b, is_forget, oc->ref ? s_ref : NULL, nf);
    lethe_objective os = unlearn_objective(&cs);
    step_stats st;
    attach_margin(&m, oc, is_forget, &cs);
    model_train_step(&m, &b, &os, &opt, NULL, 0, 1, &st);
    /* the loss after the step, and the per-sequence sums it moved */
    if (oc->method == METHOD_CEU) ceu_soft_targets(&m, &b, kl_lsm, is_forget);
    unlearn_ctx ca = make_ctx(&m, oc, &b, is_forget, oc->ref ? s_ref : NULL, nf);
    lethe_objective oa = unlearn_objective(&ca);
    attach_margin(&m, oc, is_forget, &ca);
    double s_after[NF + NR], n_after[NF + NR];
    double loss_after = model_forward_backward(&m, &b, &oa, s_after, n_after);
    snprintf(path, sizeof path, "%s/final.safetensors", outdir);
    write_params(path, &m, m.w.params.data, meta);

    {
        float sf[NF + NR], nfl[NF + NR], rf[NF + NR], af[NF + NR];
        for (int i = 0; i < B; i++) {
            sf[i] = (float)seq_s[i];
            nfl[i] = (float)seq_n[i];
            rf[i] = (float)s_ref[i];
            af[i] = (float)s_after[i];
        }
        char ometa[2048];
        snprintf(ometa, sizeof ometa,
                 "{\"loss\":\"%.17g\",\"loss_forget\":\"%.17g\",\"loss_retain\":\"%.17g\","
                 "\"sigma_sum\":\"%.17g\",\"loss_mb2\":\"%.17g\",\"loss_forget_mb2\":\"%.17g\","
                 "\"loss_retain_mb2\":\"%.17g\",\"sigma_sum_mb2\":\"%.17g\",\"loss_forget_only\":"
                 "\"%.17g\","
                 "\"step_loss\":\"%.17g\",\"step_grad_norm\":\"%.17g\",\"step_clip\":\"%.9g\","
                 "\"step_lr\":\"%.9g\",\"loss_after\":\"%.17g\",\"loss_forget_after\":\"%.17g\","
                 "\"loss_retain_after\":\"%.17g\"}",
                 loss, ctx.loss_forget, ctx.loss_retain, ctx.sigma_sum, loss2, ctx2.loss_forget,
                 ctx2.loss_retain, ctx2.sigma_sum, loss_f, st.loss, st.grad_norm, (double)st.clip,
                 (double)st.lr, loss_after, ca.loss_forget, ca.loss_retain);
        int64_t s_bt[] = {B, T}, s_b[] = {B};
        const char *bn[] = {"tokens", "targets", "is_forget"};
        st_dtype bd[] = {ST_I32, ST_I32, ST_I32};
        int bnd[] = {2, 2, 1};
        const int64_t *bsh[] = {s_bt, s_bt, s_b};
        const void *bdat[] = {tok, tg, is_forget_i};
        snprintf(path, sizeof path, "%s/batch.safetensors", outdir);
        write_or_die(path, 3, bn, bd, bnd, bsh, bdat, NULL);
        const char *on[] = {"seq_s", "seq_n", "s_ref", "seq_s_after"};
        st_dtype od[] = {ST_F32, ST_F32, ST_F32, ST_F32};
        int ond[] = {1, 1, 1, 1};
        const int64_t *osh[] = {s_b, s_b, s_b, s_b};
        const void *odat[] = {sf, nfl, rf, af};
        snprintf(path, sizeof path, "%s/outputs.safetensors", outdir);
        write_or_die(path, 4, on, od, ond, osh, odat, ometa);
    }
    printf("objectives_dump %s: loss %.6f (forget %.6f, retain %.6f, sigma %.4f), 2 micro-batches "
           "%.6f; one step (|g| %.4f, clip %.3f) -> loss %.6f; wrote %s/\n",
           oc->name, loss, ctx.loss_forget, ctx.loss_retain, ctx.sigma_sum / nf, loss2,
           st.grad_norm, (double)st.clip, loss_after, outdir);
    for (int i = 0; i < nf && oc->ref; i++)
        printf("  forget row %d: |y| %g  s %.5f  s_ref %.5f  beta (s - s_ref) %.4f\n", i, seq_n[i],
               seq_s[i], s_ref[i], oc->beta * (seq_s[i] - s_ref[i]));

    free(tok);
    if (tg_step != tg) free(tg_step);
    free(tg);
    free(ref_w);
    free(kl_lsm);
    free(grad2);
    m.margin = m2.margin = NULL;
    model_free(&m);
    model_free(&m2);
    fatal_set_grid(NULL);
    grid_free(&g);
    MPI_Finalize();
    return 0;
}
