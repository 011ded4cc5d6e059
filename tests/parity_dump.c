/* tests/parity_dump.c — dumps one parity case for tests/torch_ref.py.
 *
 *   mpirun -n 1 parity_dump OUTDIR --case NAME
 *
 * Builds a small model on a 1 x 1 x 1 grid, perturbs its norm weights away from 1 (so
 * their gradients and the weights' role in RMSNorm are exercised), and runs one batch
 * of synthetic Markov sequences of different lengths with a masked prompt
 * (prompt_len 3, lengths in [min_len, T]) through forward and backward with the
 * token-mean NLL objective. Then 10 optimizer steps on 10 batches exactly as a
 * training job takes them (forward/backward, gradient reduction, global norm, clip,
 * learning-rate schedule, AdamW). Writes, with io/safetensors:
 *   weights.safetensors  every parameter by its Hugging Face name at its global shape
 *                        (no vocabulary padding); __metadata__ holds the model config
 *   grads.safetensors    the gradient of the loss for each parameter (same names)
 *   batch.safetensors    tokens, targets (B, T) I32 (target -1: no loss)
 *   outputs.safetensors  logits (B*T, V), loss (), seq_s, seq_n (B), tok_logp (B, T)
 *   steps.safetensors    tokens, targets (S, B, T) I32; loss, grad_norm, clip, lr (S);
 *                        __metadata__ holds the optimizer config
 *   final.safetensors    the parameters after the S steps
 * The run refuses a case whose gradient clip never bites or always bites (both
 * branches of clipping must be compared). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../io/safetensors.h"
#include "../io/synth/markov_stream.h"
#include "../model/optim.h"
#include "../model/step.h"
#include "../model/transformer.h"
#include "../mpi/comm.h"
#include "../mpi/fatal.h"
#include "../mpi/grid.h"

#define NSTEPS 10

typedef struct {
    const char *name;
    int n_kv_heads, tie, T, B;
    float init_std;
    float grad_clip; /* chosen so that clipping bites on some steps and not on others */
} parity_case;

static const parity_case cases[] = {
    {"gqa_untied", 2, 0, 16, 4, 0.2f, 5.0f},
    {"mha_tied", 4, 1, 16, 4, 0.2f, 5.0f},
    {"gqa_tied_long", 2, 1, 32, 4, 0.2f, 3.8f},
    {"mqa_untied", 1, 0, 16, 4, 0.2f, 5.5f},
};

/* Writes the parameter table's `buf` (data, grad) as safetensors at global shapes. */
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
        /* one rank holds every tensor whole; only vocabulary padding rows are dropped,
         * and they sit after the real rows */
        if (p->gstart[0] || p->gstart[1] || p->vshape[0] != p->gshape[0] ||
            p->vshape[1] != p->gshape[1] || p->lshape[1] != p->gshape[1])
            lethe_fatal("parity_dump: parameter '%s' is not whole on this rank", p->name);
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
        lethe_fatal("parity_dump: %s", err);
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
        lethe_fatal("parity_dump: %s", err);
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
            lethe_fatal("parity_dump: unexpected argument '%s' (usage: parity_dump OUTDIR "
                        "--case NAME)",
                        argv[i]);
    }
    const parity_case *pc = NULL;
    for (size_t i = 0; cname && i < sizeof cases / sizeof cases[0]; i++)
        if (!strcmp(cases[i].name, cname)) pc = &cases[i];
    if (!outdir || !pc) {
        char known[256] = "";
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
            snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", i ? ", " : "",
                     cases[i].name);
        lethe_fatal("parity_dump: %s (usage: parity_dump OUTDIR --case NAME; cases: %s)",
                    !outdir ? "no output folder given" : "unknown or missing --case", known);
    }
    if (mkdir(outdir, 0755) && errno != EEXIST)
        lethe_fatal("parity_dump: cannot create '%s': %s", outdir, strerror(errno));

    char err[1024];
    lethe_grid g;
    if (grid_create(&g, MPI_COMM_WORLD, 1, 1, 1, err, sizeof err))
        lethe_fatal("parity_dump runs on 1 rank: %s", err);
    fatal_set_grid(&g);

    const int B = pc->B, T = pc->T;
    if (B > 64) lethe_fatal("parity_dump: case %s: batch %d > 64", pc->name, B);
    lethe_model_config mc = {0};
    mc.vocab_size = 97; /* prime: no tp ever divides it, so padding is exercised */
    mc.dim = 32;
    mc.n_layers = 2;
    mc.n_heads = 4;
    mc.n_kv_heads = pc->n_kv_heads;
    mc.mlp_dim = 48;
    mc.max_seq_len = T;
    mc.rope_theta = 10000.0f;
    mc.norm_eps = 1e-5f;
    mc.tie_embeddings = pc->tie;
    mc.init_std = pc->init_std;
    mc.init_seed = 20240601ULL + lethe_hash_str(pc->name) % 1000;
    if (model_check_layout(&mc, 1, 1, 1, B, 1, T, err, sizeof err))
        lethe_fatal("parity_dump: %s", err);

    lethe_model m;
    model_create(&m, &mc, &g, B, T, 1);
    model_init_weights(&m);
    /* norm weights drawn around 1 instead of exactly 1 */
    for (int i = 0; i < m.w.params.n; i++) {
        const lethe_param *p = &m.w.params.p[i];
        if (p->ndim != 1) continue;
        uint64_t base = lethe_hash64(mc.init_seed ^ lethe_hash_str(p->name) ^ 0x6e6f726dULL);
        for (size_t k = 0; k < p->numel; k++)
            m.w.params.data[p->off + k] =
                1.0f + 0.25f * lethe_normal_from_u64(lethe_hash64(base + k));
    }

    char meta[1024], path[1200];
    snprintf(meta, sizeof meta,
             "{\"case\":\"%s\",\"vocab_size\":\"%d\",\"dim\":\"%d\",\"n_layers\":\"%d\","
             "\"n_heads\":\"%d\",\"n_kv_heads\":\"%d\",\"mlp_dim\":\"%d\",\"rope_theta\":\"%.9g\","
             "\"norm_eps\":\"%.9g\",\"tie_embeddings\":\"%d\",\"batch\":\"%d\",\"seq_len\":\"%d\"}",
             pc->name, mc.vocab_size, mc.dim, mc.n_layers, mc.n_heads, mc.n_kv_heads, mc.mlp_dim,
             (double)mc.rope_theta, (double)mc.norm_eps, mc.tie_embeddings, B, T);
    snprintf(path, sizeof path, "%s/weights.safetensors", outdir);
    write_params(path, &m, m.w.params.data, meta);

    /* ---- one batch: forward, backward ---- */
    synth_stream src = {977 + (uint64_t)T, mc.vocab_size, 4, 3, 6};
    size_t BT = (size_t)B * T;
    int *tok_all = lethe_malloc(sizeof(int) * BT * NSTEPS, "tokens");
    int *tg_all = lethe_malloc(sizeof(int) * BT * NSTEPS, "targets");
    for (int s = 0; s < NSTEPS; s++)
        synth_stream_batch(&src, s, 0, B, T, tok_all + s * BT, tg_all + s * BT);
    lethe_batch b = {B, T, tok_all, tg_all, NULL, NULL};
    nll_objective_ctx ctx = {1.0 / model_count_targets(&m, &b)};
    lethe_objective obj = {nll_objective_seq, &ctx, NULL};
    double *seq_s = lethe_calloc((size_t)B, sizeof(double), "seq"),
           *seq_n = lethe_calloc((size_t)B, sizeof(double), "seq");
    double loss = model_forward_backward(&m, &b, &obj, seq_s, seq_n);
    snprintf(path, sizeof path, "%s/grads.safetensors", outdir);
    write_params(path, &m, m.w.params.grad, meta);

    /* logits of the same batch: with one micro-batch m.ws.logits holds all B*T rows */
    float *tok_logp = lethe_malloc(sizeof(float) * BT, "token log-probabilities");
    double *fs = lethe_calloc((size_t)B, sizeof(double), "seq"),
           *fn = lethe_calloc((size_t)B, sizeof(double), "seq");
    model_forward(&m, &b, fs, fn, tok_logp);
    for (int i = 0; i < B; i++)
        if (fs[i] != seq_s[i] || fn[i] != seq_n[i])
            lethe_fatal("parity_dump: sequence %d: forward gives s=%.9g n=%g, forward-backward "
                        "gave s=%.9g n=%g",
                        i, fs[i], fn[i], seq_s[i], seq_n[i]);
    int V = mc.vocab_size;
    float *logits = lethe_malloc(sizeof(float) * BT * V, "logits");
    for (size_t r = 0; r < BT; r++)
        memcpy(logits + r * V, m.ws.logits + r * m.shape.v_l, sizeof(float) * V);
    float lossf = (float)loss, sf[64], nf[64];
    for (int i = 0; i < B; i++) {
        sf[i] = (float)seq_s[i];
        nf[i] = (float)seq_n[i];
    }
    {
        int64_t s_bt[] = {B, T}, s_l[] = {(int64_t)BT, V}, s_b[] = {B};
        const char *names[] = {"tokens", "targets"};
        st_dtype dts[] = {ST_I32, ST_I32, ST_F32, ST_F32, ST_F32, ST_F32, ST_F32};
        int nd[] = {2, 2};
        const int64_t *shapes[] = {s_bt, s_bt};
        const void *datas[] = {tok_all, tg_all};
        snprintf(path, sizeof path, "%s/batch.safetensors", outdir);
        write_or_die(path, 2, names, dts, nd, shapes, datas, NULL);
        const char *on[] = {"logits", "loss", "seq_s", "seq_n", "tok_logp"};
        int ond[] = {2, 0, 1, 1, 2};
        const int64_t *osh[] = {s_l, NULL, s_b, s_b, s_bt};
        const void *od[] = {logits, &lossf, sf, nf, tok_logp};
        snprintf(path, sizeof path, "%s/outputs.safetensors", outdir);
        write_or_die(path, 5, on, dts + 2, ond, osh, od, NULL);
    }

    /* ---- NSTEPS optimizer steps, as a training job takes them ---- */
    lethe_optim_config oc = {0};
    oc.schedule = SCHEDULE_COSINE; /* "cosine" in the meta below */
    oc.lr = 1e-3f;
    oc.min_lr = 1e-4f;
    oc.warmup_steps = 2;
    oc.beta1 = 0.9f;
    oc.beta2 = 0.95f;
    oc.eps = 1e-8f;
    oc.weight_decay = 0.1f;
    oc.grad_clip = pc->grad_clip;
    float losses[NSTEPS], norms[NSTEPS], clips[NSTEPS], lrs[NSTEPS];
    int bit = 0;
    for (int s = 0; s < NSTEPS; s++) {
        lethe_batch bs = {B, T, tok_all + s * BT, tg_all + s * BT, NULL, NULL};
        /* the training jobs' own step: forward/backward, reductions, clip, AdamW */
        nll_objective_ctx cs = {1.0 / model_count_targets(&m, &bs)};
        lethe_objective os = {nll_objective_seq, &cs, NULL};
        step_stats st;
        model_train_step(&m, &bs, &os, &oc, NULL, s, NSTEPS, &st);
        double l = st.loss, norm = st.grad_norm;
        float lr = st.lr, clip = st.clip;
        losses[s] = (float)l;
        norms[s] = (float)norm;
        clips[s] = clip;
        lrs[s] = lr;
        bit += clip < 1.0f;
        printf("parity_dump %s: step %2d loss %.6f |g| %.6f clip %.6f lr %.3e\n", pc->name, s + 1,
               l, norm, (double)clip, (double)lr);
    }
    if (bit == 0 || bit == NSTEPS)
        lethe_fatal("parity_dump: case %s: grad_clip %g %s on all %d steps; choose a value "
                    "inside the range of the gradient norms",
                    pc->name, (double)oc.grad_clip, bit ? "bites" : "never bites", NSTEPS);
    {
        char ometa[512];
        snprintf(ometa, sizeof ometa,
                 "{\"schedule\":\"%s\",\"lr\":\"%.9g\",\"min_lr\":\"%.9g\",\"warmup_steps\":\"%d\","
                 "\"beta1\":\"%.9g\",\"beta2\":\"%.9g\",\"eps\":\"%.9g\",\"weight_decay\":\"%.9g\","
                 "\"grad_clip\":\"%.9g\",\"steps\":\"%d\"}",
                 "cosine", (double)oc.lr, (double)oc.min_lr, oc.warmup_steps, (double)oc.beta1,
                 (double)oc.beta2, (double)oc.eps, (double)oc.weight_decay, (double)oc.grad_clip,
                 NSTEPS);
        int64_t s_sbt[] = {NSTEPS, B, T}, s_s[] = {NSTEPS};
        const char *names[] = {"tokens", "targets", "loss", "grad_norm", "clip", "lr"};
        st_dtype dts[] = {ST_I32, ST_I32, ST_F32, ST_F32, ST_F32, ST_F32};
        int nd[] = {3, 3, 1, 1, 1, 1};
        const int64_t *shapes[] = {s_sbt, s_sbt, s_s, s_s, s_s, s_s};
        const void *datas[] = {tok_all, tg_all, losses, norms, clips, lrs};
        snprintf(path, sizeof path, "%s/steps.safetensors", outdir);
        write_or_die(path, 6, names, dts, nd, shapes, datas, ometa);
    }
    snprintf(path, sizeof path, "%s/final.safetensors", outdir);
    write_params(path, &m, m.w.params.data, meta);
    printf("parity_dump %s: loss %.6f over %g target tokens; wrote %s/\n", pc->name, loss,
           1.0 / ctx.inv_tokens, outdir);

    free(tok_all);
    free(tg_all);
    free(seq_s);
    free(seq_n);
    free(fs);
    free(fn);
    free(tok_logp);
    free(logits);
    model_free(&m);
    fatal_set_grid(NULL);
    grid_free(&g);
    MPI_Finalize();
    return 0;
}
