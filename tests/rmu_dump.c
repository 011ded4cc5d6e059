/* tests/rmu_dump.c — dumps one RMU case (model/rmu.h) for tests/torch_rmu.py.
 *
 *   mpirun -n 1 rmu_dump OUTDIR --case NAME
 *
 * A small model (V 97, C 32, L 3, 4 heads over 2 kv heads, untied head, T 16; norm
 * weights around 1) and a batch laid out as jobs/unlearn.c lays it out: 4 forget rows,
 * then 4 retain rows, Markov sequences of mixed lengths with a masked prompt. The
 * starting model is these weights; the current one has the trained down_proj tensors
 * perturbed (so the retain term and its gradient are not zero). Then, as the job does:
 * rmu_frozen_forward, rmu_forward_backward (one micro-batch of 8 rows, and on a second
 * model two micro-batches), and one model_train_step_fb restricted to rmu's tensors.
 * Writes (io/safetensors):
 *   weights.safetensors   the current parameters; __metadata__: config and the case
 *   start.safetensors     the starting parameters (the frozen model)
 *   grads.safetensors     the trained tensors' gradients, one micro-batch
 *   grads_mb2.safetensors the same with two micro-batches
 *   batch.safetensors     tokens, targets (B, T), is_forget (B) I32; target (C) F32 (c u)
 *   final.safetensors     the parameters after the step
 *   __metadata__ of batch: loss_forget, loss_retain, cos_sum (and _mb2), step loss */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../io/safetensors.h"
#include "../io/synth/markov_stream.h"
#include "../model/rmu.h"
#include "../model/step.h"
#include "../model/transformer.h"
#include "../mpi/comm.h"
#include "../mpi/fatal.h"
#include "../mpi/grid.h"

typedef struct {
    const char *name;
    int layer, span;
    double c, c_f, c_r;
} rmu_case;

static const rmu_case cases[] = {
    {"rmu", 1, 3, 6, 1, 1},           /* blocks 0..1 (span clipped at block 0) */
    {"rmu_span1", 2, 1, 3, 0.5, 100}, /* the last block alone, retain-heavy */
};

#define NF 4
#define NR 4
#define TT 16

/* buf's tensors (data or grad; only those with keep[i] when keep is given). */
static void write_params(const char *path, const lethe_model *m, const float *buf,
                         const unsigned char *keep, const char *meta)
{
    const lethe_params *t = &m->w.params;
    const char *names[64];
    int nd[64], k = 0;
    int64_t shp[128];
    const int64_t *shapes[64];
    const float *datas[64];
    for (int i = 0; i < t->n && k < 64; i++) {
        const lethe_param *p = &t->p[i];
        if (keep && !keep[i]) continue;
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
        lethe_fatal("rmu_dump: %s", err);
}

static void build(lethe_model *m, const lethe_model_config *mc, const lethe_grid *g, int micro)
{
    model_create(m, mc, g, (NF + NR) / micro, TT, micro);
    model_init_weights(m);
    for (int i = 0; i < m->w.params.n; i++) {
        const lethe_param *p = &m->w.params.p[i];
        if (p->ndim != 1) continue;
        uint64_t base = lethe_hash64(mc->init_seed ^ lethe_hash_str(p->name) ^ 0x6e6f726dULL);
        for (size_t k = 0; k < p->numel; k++)
            m->w.params.data[p->off + k] =
                1.0f + 0.25f * lethe_normal_from_u64(lethe_hash64(base + k));
    }
}

/* The trained tensors moved away from the start (after rmu_create kept it). */
static void perturb(lethe_model *m, const rmu_model *r)
{
    for (int k = 0; k < r->n_held; k++) {
        const lethe_param *p = &m->w.params.p[r->held[k]];
        for (size_t j = 0; j < p->numel; j++)
            m->w.params.data[p->off + j] += 0.05f * lethe_normal_from_u64(lethe_hash64(j * 31 + k));
    }
}

int main(int argc, char **argv)
{
    comm_init(&argc, &argv);
    if (argc != 4 || strcmp(argv[2], "--case"))
        lethe_fatal("rmu_dump: usage: rmu_dump OUTDIR --case rmu|rmu_span1");
    const rmu_case *rc = NULL;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (!strcmp(cases[i].name, argv[3])) rc = &cases[i];
    if (!rc) lethe_fatal("rmu_dump: unknown case '%s' (rmu, rmu_span1)", argv[3]);
    const char *outdir = argv[1];
    if (mkdir(outdir, 0755) && errno != EEXIST)
        lethe_fatal("rmu_dump: cannot create '%s': %s", outdir, strerror(errno));
    char err[1024];
    lethe_grid g;
    if (grid_create(&g, MPI_COMM_WORLD, 1, 1, 1, err, sizeof err)) lethe_fatal("rmu_dump: %s", err);
    fatal_set_grid(&g);
    lethe_model_config mc = {.vocab_size = 97,
                             .dim = 32,
                             .n_layers = 3,
                             .n_heads = 4,
                             .n_kv_heads = 2,
                             .mlp_dim = 48,
                             .max_seq_len = TT,
                             .rope_theta = 10000.0f,
                             .norm_eps = 1e-5f,
                             .init_std = 0.2f,
                             .init_seed = 20240917ULL};
    const int B = NF + NR, T = TT;
    lethe_model m, m2;
    build(&m, &mc, &g, 1);
    build(&m2, &mc, &g, 2);
    int tok[(NF + NR) * TT], tg[(NF + NR) * TT], isf[NF + NR];
    unsigned char is_forget[NF + NR];
    synth_stream fsrc = {4101, mc.vocab_size, 4, 3, 6}, rsrc = {5303, mc.vocab_size, 4, 3, 6};
    synth_stream_batch(&fsrc, 0, 0, NF, T, tok, tg);
    synth_stream_batch(&rsrc, 0, 0, NR, T, tok + NF * T, tg + NF * T);
    for (int i = 0; i < B; i++) is_forget[i] = (unsigned char)(isf[i] = i < NF);
    lethe_batch b = {B, T, tok, tg, NULL, NULL};

    char path[1200], meta[2048];
    snprintf(path, sizeof path, "%s/start.safetensors", outdir);
    write_params(path, &m, m.w.params.data, NULL, NULL);
    rmu_model r, r2;
    rmu_create(&r, &m, rc->layer, rc->span, rc->c, 42, B);
    rmu_create(&r2, &m2, rc->layer, rc->span, rc->c, 42, B);
    perturb(&m, &r);
    perturb(&m2, &r2);
    rmu_terms t = {rc->c_f, rc->c_r, is_forget, NF, NR, 0, 0, 0}, t2 = t;
    rmu_frozen_forward(&r, &m, &b);
    double loss = rmu_forward_backward(&r, &m, &b, &t);
    rmu_frozen_forward(&r2, &m2, &b);
    double loss2 = rmu_forward_backward(&r2, &m2, &b, &t2);
    snprintf(meta, sizeof meta,
             "{\"case\":\"%s\",\"vocab_size\":\"%d\",\"dim\":\"%d\",\"n_layers\":\"%d\","
             "\"n_heads\":\"%d\",\"n_kv_heads\":\"%d\",\"mlp_dim\":\"%d\",\"rope_theta\":\"%.9g\","
             "\"norm_eps\":\"%.9g\",\"tie_embeddings\":\"0\",\"layer\":\"%d\",\"span\":\"%d\","
             "\"c\":\"%.17g\",\"c_f\":\"%.17g\",\"c_r\":\"%.17g\"}",
             rc->name, mc.vocab_size, mc.dim, mc.n_layers, mc.n_heads, mc.n_kv_heads, mc.mlp_dim,
             (double)mc.rope_theta, (double)mc.norm_eps, rc->layer, rc->span, rc->c, rc->c_f,
             rc->c_r);
    snprintf(path, sizeof path, "%s/weights.safetensors", outdir);
    write_params(path, &m, m.w.params.data, NULL, meta);
    snprintf(path, sizeof path, "%s/grads.safetensors", outdir);
    write_params(path, &m, m.w.params.grad, r.trainable, NULL);
    snprintf(path, sizeof path, "%s/grads_mb2.safetensors", outdir);
    write_params(path, &m2, m2.w.params.grad, r2.trainable, NULL);

    /* one optimizer step, as the job takes it */
    lethe_optim_config o = {.schedule = SCHEDULE_CONSTANT,
                            .lr = 1e-3f,
                            .beta1 = 0.9f,
                            .beta2 = 0.95f,
                            .eps = 1e-8f,
                            .weight_decay = 0.1f};
    step_stats st;
    rmu_frozen_forward(&r, &m, &b);
    rmu_terms t3 = t;
    rmu_step f = {&r, &b, &t3};
    model_train_step_fb(&m, rmu_step_forward_backward, &f, r.trainable, &o, NULL, 0, 1, &st);
    snprintf(path, sizeof path, "%s/final.safetensors", outdir);
    write_params(path, &m, m.w.params.data, NULL, NULL);

    char bmeta[1024];
    snprintf(bmeta, sizeof bmeta,
             "{\"loss\":\"%.17g\",\"loss_forget\":\"%.17g\",\"loss_retain\":\"%.17g\","
             "\"cos_sum\":\"%.17g\",\"loss_mb2\":\"%.17g\",\"loss_forget_mb2\":\"%.17g\","
             "\"loss_retain_mb2\":\"%.17g\",\"step_loss\":\"%.17g\"}",
             loss, t.loss_forget, t.loss_retain, t.cos_sum, loss2, t2.loss_forget, t2.loss_retain,
             st.loss);
    const char *bn[] = {"tokens", "targets", "is_forget", "target"};
    st_dtype dts[] = {ST_I32, ST_I32, ST_I32, ST_F32};
    int bnd[] = {2, 2, 1, 1};
    int64_t s0[] = {B, T}, s1[] = {B}, s2[] = {mc.dim};
    const int64_t *bs[] = {s0, s0, s1, s2};
    const void *bd[] = {tok, tg, isf, r.target};
    snprintf(path, sizeof path, "%s/batch.safetensors", outdir);
    if (st_write_typed(path, 4, bn, dts, bnd, bs, bd, bmeta, err, sizeof err))
        lethe_fatal("rmu_dump: %s", err);
    rmu_free(&r);
    rmu_free(&r2);
    model_free(&m);
    model_free(&m2);
    MPI_Finalize();
    return 0;
}
