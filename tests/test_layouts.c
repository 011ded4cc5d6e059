/* tests/test_layouts.c — the correctness contract of the parallel model.
 *
 * Run under mpirun at N ranks. For every layout dp x pp x tp = N that the model
 * admits, and one or two micro-batch counts: for the same weights and global
 * batch, the loss and every gradient (gathered to global tensors) equal the
 * one-rank values to 1e-5 relative; 10 optimizer steps give the same losses to
 * 1e-5 and the same weights and AdamW moments to 1e-5 — with the dp replicas
 * splitting the update (optim.shard_update, the job default; the moments made whole
 * as a checkpoint save does) and, for dp > 1, once more with every replica updating
 * everything; the same layout run twice gives bitwise identical weights. Layouts the model refuses
 * are checked to be refused with a message naming the numbers. The one-rank reference is computed
 * by every rank on MPI_COMM_SELF, so the verdict does not depend on N. The same holds for the
 * unlearning objectives (test_layouts_unlearn.c: every method; the pair methods IdkNLL, DPO
 * and IdkDPO on a pair batch of 8 questions, so dp 4 and dp 8 hold whole pairs and retain
 * rows), whose per-sequence weights ride through micro-batches and replicas, and for RMU,
 * WAGLE's scores and a WAGLE-masked gradient and AdamW step (test_layouts_extra.c).
 *
 * Tolerance: errors are max|a - b| / max|b| over each tensor. fp32 sums in a
 * different order (tp splits the inner products, dp and micro-batches split the
 * batch sums) give ~1e-7; 1e-5 leaves two orders of margin and still catches a
 * missing or doubled reduction, which gives O(1).
 * Weights after 10 AdamW steps are compared in the L2 norm of each tensor:
 * Adam normalises every element's update, so a single element whose gradient
 * passes through zero during the run can move by a few percent of lr more or
 * less under another summation order (seen: one element of 512, 4.7e-6 at
 * lr 1e-4). That is fp32 behaviour, not a layout error; a missing reduction
 * still moves every element by O(lr) and shows as ~1e-2 in this norm.
 * The learning rate is 1e-4, the order of fine-tuning and unlearning rates. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/synth/markov_stream.h"
#include "model/objective_pairs.h"
#include "model/objectives.h"
#include "model/step.h"
#include "model/transformer.h"
#include "mpi/comm.h"
#include "mpi/fatal.h"
#include "mpi/grid.h"
#include "tests/layout_list.h"
#include "tests/test_layouts.h"

#define TOL 1e-5
#define NSTEPS 10

static int failures, checks;

/* ||a - b||_2 / ||b||_2 */
static double relerr_l2(const float *a, const float *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        num += d * d;
        den += (double)b[i] * b[i];
    }
    if (isnan(num)) return INFINITY;
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static double relerr(const float *a, const float *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d > num || isnan(d)) num = isnan(d) ? INFINITY : d;
        if (fabs(b[i]) > den) den = fabs(b[i]);
    }
    return den > 0 ? num / den : num;
}

typedef struct {
    const char *name;
    lethe_model_config cfg;
    int B, T;
} model_case;

static lethe_optim_config optim_cfg(void)
{
    lethe_optim_config o;
    memset(&o, 0, sizeof o);
    o.schedule = SCHEDULE_COSINE;
    o.lr = 1e-4f;
    o.min_lr = 1e-5f;
    o.warmup_steps = 2;
    o.beta1 = 0.9f;
    o.beta2 = 0.95f;
    o.eps = 1e-8f;
    o.weight_decay = 0.1f;
    o.grad_clip = 0.5f; /* bites on the first steps: clipping goes through the world norm */
    o.shard_update = 1; /* the job default: dp replicas split the update */
    return o;
}

static synth_stream data_for(const model_case *mc)
{
    synth_stream s = {99, mc->cfg.vocab_size, 3, 3, mc->T / 2};
    return s;
}

/* NaN in every tensor's gradient (no kernel writes the padding between them) */
static void poison_grads(lethe_params *t)
{
    for (int i = 0; i < t->n; i++)
        for (size_t k = 0; k < t->p[i].numel; k++) t->grad[t->p[i].off + k] = NAN;
}

/* Runs the whole protocol on a model built over grid g with micro-batches M.
 * Outputs (on world rank 0 meaningful): loss0, grads (global, by table order of
 * ref), losses[NSTEPS], final weights. */
typedef struct {
    double loss0;
    double losses[NSTEPS];
} run_result;

static void run(const model_case *mc, const lethe_grid *g, int M, int shard, run_result *res,
                lethe_model *m_out)
{
    int Br = mc->B / g->dp, Bm = Br / M;
    model_create(m_out, &mc->cfg, g, Bm, mc->T, M);
    model_init_weights(m_out);
    synth_stream src = data_for(mc);
    lethe_batch b = {Br,
                     mc->T,
                     malloc(sizeof(int) * (size_t)Br * mc->T),
                     malloc(sizeof(int) * (size_t)Br * mc->T),
                     NULL,
                     NULL};
    lethe_optim_config o = optim_cfg();
    o.shard_update = shard;
    for (int step = 0; step <= NSTEPS; step++) {
        synth_stream_batch(&src, step, (int64_t)g->dp_rank * Br, Br, mc->T, b.tokens, b.targets);
        nll_objective_ctx ctx = {1.0 / model_count_targets(m_out, &b)};
        lethe_objective obj = {nll_objective_seq, &ctx, NULL};
        if (step == 0) {
            /* gradients of step 0 are compared before any update; they start as NaN, so
             * the call must write each one whole */
            poison_grads(&m_out->w.params);
            double loss = model_forward_backward(m_out, &b, &obj, NULL, NULL);
            model_reduce_grads(m_out);
            MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &loss, 1, MPI_DOUBLE, MPI_SUM, g->dp_comm));
            res->loss0 = loss;
            continue;
        }
        step_stats st;
        model_train_step(m_out, &b, &obj, &o, NULL, step - 1, NSTEPS, &st);
        res->losses[step - 1] = st.loss;
    }
    /* what a checkpoint save does first: the moments of a split update made whole */
    params_full_moments(&m_out->w.params, g->dp_comm, NULL);
    free(b.tokens);
    free(b.targets);
}

static void check(int ok, const char *fmt, const char *a, double v)
{
    checks++;
    if (!ok) {
        failures++;
        fprintf(stderr, "FAIL: ");
        fprintf(stderr, fmt, a, v);
        fprintf(stderr, "\n");
    }
}

/* Weights and both AdamW moments of a model after the 10 steps against the one-rank
 * model's, each tensor gathered to world rank 0; returns the worst relative error. */
static double final_state(lethe_model *mm, const lethe_model *ref, const lethe_grid *g,
                          int world_rank, const char *what, const char *how)
{
    static const char *kind[4] = {"weights", "", "AdamW m", "AdamW v"};
    const lethe_params *ft = &ref->w.params;
    double worst = 0;
    for (int which = 0; which < 4; which++) {
        if (which == 1) continue; /* gradients: compared at step 0 */
        const float *rbuf = which == 0 ? ft->data : which == 2 ? ft->m : ft->v;
        for (int i = 0; i < ft->n; i++) {
            const lethe_param *p = &ft->p[i];
            size_t n = (size_t)(p->gshape[0] * p->gshape[1]);
            float *glob = world_rank == 0 ? calloc(n, sizeof(float)) : NULL;
            params_gather(&mm->w.params, g->world, g->dp_rank, p->name, which, p->gshape[0],
                          p->gshape[1], glob, 0);
            if (world_rank == 0) {
                double e = relerr_l2(glob, rbuf + p->off, n);
                if (e > worst) worst = e;
                char nm[400];
                snprintf(nm, sizeof nm, "%s%s: %s after %d steps %s", what, how, kind[which],
                         NSTEPS, p->name);
                check(e <= TOL, "%s: relative error %.3g", nm, e);
            }
            free(glob);
        }
    }
    return worst;
}

/* Reference: the one-rank model, gradients of step 0 and the trajectory. */
typedef struct {
    lethe_grid g;
    lethe_model m0; /* after the gradient of step 0 only: grads kept */
    lethe_model m;  /* after NSTEPS steps */
    run_result r0, r;
    float *ugrad[N_UOBJ]; /* one-rank gradients of the unlearning objectives */
    double uloss[N_UOBJ];
    float *xgrad[N_XOBJ]; /* and of RMU and WAGLE (test_layouts_extra.c) */
    double xloss[N_XOBJ];
} reference;

/* Gathers um's gradient of every tensor of rt (those extra_compared for x >= 0) and
 * checks it against refg (one rank, rt's offsets) to TOL; returns the worst error. The
 * WAGLE step leaves the weights after it there: Adam's first update is g / (|g| + eps),
 * so an element whose gradient is near eps moves by a visibly different fraction of lr
 * under another summation order (seen: 1.3e-3 of the largest change, tp 2) and the
 * change itself holds an ulp of the weight (1.5e-5 of it); compared in the L2 norm, a
 * weight updated against the mask or left out of it (lr 1e-3 on one element) still
 * shows as >= 1.7e-4 (the embedding, 101 x 32 at std 0.1). */
static double compare_grads(const lethe_model *um, const lethe_grid *g, const lethe_params *rt,
                            const float *refg, const char *what, const char *obj, int x,
                            int world_rank)
{
    double worst = 0;
    for (int i = 0; i < rt->n; i++) {
        const lethe_param *p = &rt->p[i];
        if (x >= 0 && !extra_compared(&um->shape.cfg, x, p->name)) continue;
        size_t n = (size_t)(p->gshape[0] * p->gshape[1]);
        float *glob = world_rank == 0 ? calloc(n, sizeof(float)) : NULL;
        params_gather(&um->w.params, g->world, g->dp_rank, p->name, 1, p->gshape[0],
                      p->gshape[1], glob, 0);
        if (world_rank == 0) {
            /* the weights after a step: in the L2 norm, as the 10-step weights below */
            double e = x == N_XOBJ - 1 ? relerr_l2(glob, refg + p->off, n)
                                       : relerr(glob, refg + p->off, n);
            if (e > worst) worst = e;
            char nm[400];
            snprintf(nm, sizeof nm, "%s: %s %s %s", what, obj,
                     x == N_XOBJ - 1 ? "weights" : "gradient", p->name);
            check(e <= TOL, "%s: relative error %.3g", nm, e);
        }
        free(glob);
    }
    return worst;
}

static void compare_layout(const model_case *mc, reference *ref, int dp, int pp, int tp, int M,
                           int world_rank)
{
    lethe_grid g;
    char err[512];
    if (grid_create(&g, MPI_COMM_WORLD, dp, pp, tp, err, sizeof err)) lethe_fatal("grid: %s", err);
    /* gradients at step 0 */
    lethe_model m;
    run_result r;
    /* a model that only computes step-0 gradients: run() with NSTEPS steps keeps the
     * final state; the step-0 gradients are re-computed on a fresh model */
    int Br = mc->B / dp, Bm = Br / M;
    model_create(&m, &mc->cfg, &g, Bm, mc->T, M);
    model_init_weights(&m);
    synth_stream src = data_for(mc);
    lethe_batch b = {Br,
                     mc->T,
                     malloc(sizeof(int) * (size_t)Br * mc->T),
                     malloc(sizeof(int) * (size_t)Br * mc->T),
                     NULL,
                     NULL};
    synth_stream_batch(&src, 0, (int64_t)g.dp_rank * Br, Br, mc->T, b.tokens, b.targets);
    nll_objective_ctx ctx = {1.0 / model_count_targets(&m, &b)};
    lethe_objective obj = {nll_objective_seq, &ctx, NULL};
    poison_grads(&m.w.params);
    double loss = model_forward_backward(&m, &b, &obj, NULL, NULL);
    model_reduce_grads(&m);
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &loss, 1, MPI_DOUBLE, MPI_SUM, g.dp_comm));
    char what[256];
    snprintf(what, sizeof what, "%s dp%d pp%d tp%d mb%d", mc->name, dp, pp, tp, M);
    double worst_grad = 0;
    const lethe_params *rt = &ref->m0.w.params;
    for (int i = 0; i < rt->n; i++) {
        const lethe_param *p = &rt->p[i];
        size_t n = (size_t)(p->gshape[0] * p->gshape[1]);
        float *glob = world_rank == 0 ? calloc(n, sizeof(float)) : NULL;
        params_gather(&m.w.params, g.world, g.dp_rank, p->name, 1, p->gshape[0], p->gshape[1], glob,
                      0);
        if (world_rank == 0) {
            double e = relerr(glob, rt->grad + p->off, n);
            if (e > worst_grad) worst_grad = e;
            char nm[400];
            snprintf(nm, sizeof nm, "%s: gradient %s", what, p->name);
            check(e <= TOL, "%s: relative error %.3g", nm, e);
        }
        free(glob);
    }
    if (world_rank == 0) {
        double e = fabs(loss - ref->r0.loss0) / fabs(ref->r0.loss0);
        check(e <= TOL, "%s: loss relative error %.3g", what, e);
    }
    /* the unlearning objectives give the same loss and gradients under this layout; the
     * pair methods on a model of the pair batch's rows (PAIR_B / dp per replica) */
    double worst_u = 0;
    int Bp = PAIR_B / dp, pairs = Bp % M == 0;
    lethe_batch pb = {Bp,
                      mc->T,
                      malloc(sizeof(int) * (size_t)Bp * mc->T),
                      malloc(sizeof(int) * (size_t)Bp * mc->T),
                      NULL,
                      NULL};
    lethe_model mp;
    if (pairs) {
        model_create(&mp, &mc->cfg, &g, Bp / M, mc->T, M);
        model_init_weights(&mp);
        pair_batch(&src, g.dp_rank, dp, &pb);
    }
    for (int u = 0; u < N_UOBJ; u++) {
        double uscale;
        if (u >= UOBJ_PAIRS && !pairs) continue; /* never within 8 ranks: M | PAIR_B / dp */
        lethe_model *um = u >= UOBJ_PAIRS ? &mp : &m;
        double ul = unlearn_grads(um, &g, u >= UOBJ_PAIRS ? &pb : &b, u, &uscale);
        worst_u = fmax(worst_u, compare_grads(um, &g, rt, ref->ugrad[u], what, UOBJ_NAME[u], -1,
                                              world_rank));
        if (world_rank == 0) {
            double e = fabs(ul - ref->uloss[u]) / uscale;
            if (e > worst_u) worst_u = e;
            check(e <= TOL, "%s: unlearning loss relative error %.3g", UOBJ_NAME[u], e);
        }
    }
    /* RMU, WAGLE's scores, a WAGLE-masked gradient and step (test_layouts_extra.c) */
    double worst_x = 0;
    for (int x = 0; x < N_XOBJ; x++) {
        double xscale;
        long bad;
        double xl = extra_grads(&m, &g, &b, x, &xscale, &bad);
        worst_x =
            fmax(worst_x, compare_grads(&m, &g, rt, ref->xgrad[x], what, XOBJ_NAME[x], x, world_rank));
        if (world_rank == 0) {
            double e = fabs(xl - ref->xloss[x]) / xscale;
            if (e > worst_x) worst_x = e;
            check(e <= TOL, "%s: loss relative error %.3g", XOBJ_NAME[x], e);
            if (x == N_XOBJ - 1)
                check(bad == 0, "%s: weights outside the WAGLE mask changed by the step: %.0f",
                      what, (double)bad);
        }
    }
    if (world_rank == 0)
        printf("%-28s rmu/wagle scores/wagle-masked graddiff gradient and step %.3g\n", what,
               worst_x);
    if (world_rank == 0)
        printf("%-28s ga/graddiff/npo/simnpo/kl/wga/satimp/ceu/undial/pdu%s loss and gradients "
               "%.3g\n",
               what, pairs ? "/idknll/dpo/idkdpo" : "", worst_u);
    if (pairs) model_free(&mp);
    free(pb.tokens);
    free(pb.targets);
    model_free(&m);
    free(b.tokens);
    free(b.targets);

    /* trajectory, twice for bitwise reproducibility; with dp > 1 once more with every
     * replica updating everything (optim.shard_update = false) */
    lethe_model m1, m2, m3;
    run_result r2, r3;
    run(mc, &g, M, 1, &r, &m1);
    run(mc, &g, M, 1, &r2, &m2);
    if (dp > 1) run(mc, &g, M, 0, &r3, &m3);
    int same = m1.w.params.total == m2.w.params.total &&
               !memcmp(m1.w.params.data, m2.w.params.data, sizeof(float) * m1.w.params.total);
    int all_same;
    MPI_CHECK(MPI_Allreduce(&same, &all_same, 1, MPI_INT, MPI_MIN, g.world));
    double worst_loss = 0, worst_w = 0;
    if (world_rank == 0) {
        check(all_same, "%s: same layout twice is not bitwise identical%.0f", what, 0.0);
        for (int s = 0; s < NSTEPS; s++) {
            double e = fabs(r.losses[s] - ref->r.losses[s]) / fabs(ref->r.losses[s]);
            if (e > worst_loss) worst_loss = e;
        }
        check(worst_loss <= TOL, "%s: 10-step losses relative error %.3g", what, worst_loss);
        for (int s = 0; dp > 1 && s < NSTEPS; s++) {
            double e = fabs(r3.losses[s] - ref->r.losses[s]) / fabs(ref->r.losses[s]);
            check(e <= TOL, "%s, unsplit update: 10-step losses relative error %.3g", what, e);
        }
    }
    worst_w = final_state(&m1, &ref->m, &g, world_rank, what, "");
    char unsplit[64];
    double worst_u3 =
        dp > 1 ? final_state(&m3, &ref->m, &g, world_rank, what, ", unsplit update") : 0.0;
    if (world_rank == 0)
        printf("%-28s loss %.3g  grads %.3g  10-step losses %.3g  weights+moments %.3g%s  "
               "bitwise %s\n",
               what, fabs(loss - ref->r0.loss0) / fabs(ref->r0.loss0), worst_grad, worst_loss,
               worst_w,
               dp > 1 ? (snprintf(unsplit, sizeof unsplit, " (unsplit update %.3g)", worst_u3),
                         unsplit)
                      : "",
               all_same ? "yes" : "NO");
    model_free(&m1);
    model_free(&m2);
    if (dp > 1) model_free(&m3);
    grid_free(&g);
}

/* Pipeline stages: contiguous, >= 1 layer each, covering every layer; where the
 * head and the cross-entropy outweigh a block the last stage takes fewer layers. */
static void check_stage_splits(const lethe_model_config *cases, int ncases)
{
    lethe_model_config tiny = {.vocab_size = 8192,
                               .dim = 256,
                               .n_layers = 4,
                               .n_heads = 4,
                               .n_kv_heads = 4,
                               .mlp_dim = 688,
                               .max_seq_len = 128};
    lethe_model_config big = {.vocab_size = 32000,
                              .dim = 768,
                              .n_layers = 12,
                              .n_heads = 12,
                              .n_kv_heads = 12,
                              .mlp_dim = 2048,
                              .max_seq_len = 256};
    const lethe_model_config *all[4] = {&tiny, &big, &cases[0], ncases > 1 ? &cases[1] : &tiny};
    for (int c = 0; c < 4; c++)
        for (int pp = 1; pp <= all[c]->n_layers && pp <= 8; pp++) {
            int next = 0, ok = 1;
            for (int s = 0; s < pp; s++) {
                int l0 = -1, nl = -1;
                model_stage_layers(all[c], pp, s, &l0, &nl);
                ok &= l0 == next && nl >= 1;
                next = l0 + nl;
            }
            check(ok && next == all[c]->n_layers, "stages of %s not a cover (pp=%.0f)",
                  c == 0   ? "tiny"
                  : c == 1 ? "100m"
                           : "a test case",
                  pp);
        }
    /* tiny: the head (V x C) weighs ~2.9 blocks, so pp=2 splits 3 + 1 layers;
     * 100m: ~3.3 blocks, 8 + 4; a head lighter than a block keeps equal stages */
    struct {
        const lethe_model_config *cfg;
        int pp, stage, l0, nl;
    } want[] = {{&tiny, 2, 0, 0, 3}, {&tiny, 2, 1, 3, 1},     {&big, 2, 0, 0, 8},
                {&big, 2, 1, 8, 4},  {&cases[0], 2, 1, 4, 4}, {&cases[0], 4, 3, 6, 2}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        int l0 = -1, nl = -1;
        model_stage_layers(want[i].cfg, want[i].pp, want[i].stage, &l0, &nl);
        check(l0 == want[i].l0 && nl == want[i].nl, "stage split %s: got %.0f layers",
              want[i].cfg == &tiny  ? "tiny"
              : want[i].cfg == &big ? "100m"
                                    : "mha-tied",
              nl);
    }
}

int main(int argc, char **argv)
{
    comm_init(&argc, &argv);
    int rank, size;
    MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
    MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size));
    /* Two models: one admits every layout up to 8 ranks (8 heads, 8 kv-heads,
     * 8 layers, tied, vocabulary 101 so tp pads it), one has grouped-query
     * heads (8 / 4) and an untied head, so tp = 8 and pp > 4 are refused. */
    model_case cases[2];
    memset(cases, 0, sizeof cases);
    lethe_model_config a = {.vocab_size = 101,
                            .dim = 32,
                            .n_layers = 8,
                            .n_heads = 8,
                            .n_kv_heads = 8,
                            .mlp_dim = 48,
                            .max_seq_len = 16,
                            .rope_theta = 10000.0f,
                            .norm_eps = 1e-5f,
                            .tie_embeddings = 1,
                            .init_std = 0.1f,
                            .init_seed = 11};
    lethe_model_config b = a;
    b.n_layers = 4;
    b.n_kv_heads = 4;
    b.tie_embeddings = 0;
    b.vocab_size = 90;
    b.init_seed = 12;
    cases[0] = (model_case){"mha-tied", a, 8, 12};
    cases[1] = (model_case){"gqa-untied", b, 8, 12};
    int layouts_run = 0, refusals = 0;
    for (int c = 0; c < 2; c++) {
        const model_case *mc = &cases[c];
        reference ref;
        char err[512];
        if (grid_create(&ref.g, MPI_COMM_SELF, 1, 1, 1, err, sizeof err)) lethe_fatal("%s", err);
        {
            /* step-0 gradients of the one-rank model */
            lethe_model *m = &ref.m0;
            model_create(m, &mc->cfg, &ref.g, mc->B, mc->T, 1);
            model_init_weights(m);
            synth_stream src = data_for(mc);
            lethe_batch bt = {mc->B,
                              mc->T,
                              malloc(sizeof(int) * mc->B * mc->T),
                              malloc(sizeof(int) * mc->B * mc->T),
                              NULL,
                              NULL};
            synth_stream_batch(&src, 0, 0, mc->B, mc->T, bt.tokens, bt.targets);
            double uscale;
            lethe_batch pb = {PAIR_B,
                              mc->T,
                              malloc(sizeof(int) * PAIR_B * mc->T),
                              malloc(sizeof(int) * PAIR_B * mc->T),
                              NULL,
                              NULL};
            pair_batch(&src, 0, 1, &pb);
            lethe_model mp; /* the pair methods': PAIR_B rows */
            model_create(&mp, &mc->cfg, &ref.g, PAIR_B, mc->T, 1);
            model_init_weights(&mp);
            for (int u = 0; u < N_UOBJ; u++) {
                lethe_model *um = u >= UOBJ_PAIRS ? &mp : m;
                ref.uloss[u] = unlearn_grads(um, &ref.g, u >= UOBJ_PAIRS ? &pb : &bt, u, &uscale);
                ref.ugrad[u] = malloc(sizeof(float) * um->w.params.total);
                memcpy(ref.ugrad[u], um->w.params.grad, sizeof(float) * um->w.params.total);
            }
            model_free(&mp);
            for (int x = 0; x < N_XOBJ; x++) {
                long bad;
                ref.xloss[x] = extra_grads(m, &ref.g, &bt, x, &uscale, &bad);
                ref.xgrad[x] = malloc(sizeof(float) * m->w.params.total);
                memcpy(ref.xgrad[x], m->w.params.grad, sizeof(float) * m->w.params.total);
                if (rank == 0 && x == N_XOBJ - 1)
                    check(bad == 0, "%s one rank: %.0f weights outside the WAGLE mask changed",
                          mc->name, (double)bad);
            }
            nll_objective_ctx ctx = {1.0 / model_count_targets(m, &bt)};
            lethe_objective obj = {nll_objective_seq, &ctx, NULL};
            ref.r0.loss0 = model_forward_backward(m, &bt, &obj, NULL, NULL);
            free(pb.tokens);
            free(pb.targets);
            free(bt.tokens);
            free(bt.targets);
        }
        run(mc, &ref.g, 1, 1, &ref.r, &ref.m);
        test_layout lays[64];
        int nlay = test_layouts_of(size, lays, 64);
        for (int li = 0; li < nlay; li++) {
            int dp = lays[li].dp, pp = lays[li].pp, tp = lays[li].tp;
            if (mc->B % dp) continue;
            char msg[512];
            if (model_check_layout(&mc->cfg, dp, pp, tp, mc->B, 1, mc->T, msg, sizeof msg)) {
                /* refused: the message must name the offending numbers */
                char want[64];
                if (mc->cfg.n_kv_heads % tp)
                    snprintf(want, sizeof want, "tp=%d does not divide model.n_kv_heads=%d", tp,
                             mc->cfg.n_kv_heads);
                else
                    snprintf(want, sizeof want, "pp=%d exceeds model.n_layers=%d", pp,
                             mc->cfg.n_layers);
                if (rank == 0)
                    check(strstr(msg, want) != NULL, "refusal message '%s'%.0f", msg, 0.0);
                refusals++;
                continue;
            }
            int Br = mc->B / dp;
            /* one micro-batch, and as many as the pipeline has stages (1F1B steady state) */
            int mbs[2] = {1, pp}, nm = pp > 1 && Br % pp == 0 ? 2 : 1;
            for (int k = 0; k < nm; k++) {
                compare_layout(mc, &ref, dp, pp, tp, mbs[k], rank);
                layouts_run++;
            }
        }
        model_free(&ref.m0);
        model_free(&ref.m);
        for (int u = 0; u < N_UOBJ; u++) free(ref.ugrad[u]);
        for (int x = 0; x < N_XOBJ; x++) free(ref.xgrad[x]);
        grid_free(&ref.g);
    }
    /* refusals the model must make regardless of the rank count */
    char msg[512];
    if (rank == 0) {
        lethe_model_config cfgs[2] = {cases[0].cfg, cases[1].cfg};
        check_stage_splits(cfgs, 2);
        check(model_check_layout(&cases[1].cfg, 1, 1, 8, 8, 1, 12, msg, sizeof msg) != 0 &&
                  strstr(msg, "tp=8 does not divide model.n_kv_heads=4"),
              "tp=8 with 4 kv-heads not refused: '%s'%.0f", msg, 0.0);
        check(model_check_layout(&cases[0].cfg, 1, 1, 3, 8, 1, 12, msg, sizeof msg) != 0 &&
                  strstr(msg, "tp=3 does not divide model.n_heads=8"),
              "tp=3 not refused: '%s'%.0f", msg, 0.0);
        check(model_check_layout(&cases[1].cfg, 1, 5, 1, 8, 1, 12, msg, sizeof msg) != 0 &&
                  strstr(msg, "pp=5 exceeds model.n_layers=4"),
              "pp=5 > 4 layers not refused: '%s'%.0f", msg, 0.0);
        check(model_check_layout(&cases[0].cfg, 2, 1, 1, 8, 3, 12, msg, sizeof msg) != 0 &&
                  strstr(msg, "batch size 8 is not divisible by layout dp=2 x micro_batches=3"),
              "micro-batches not dividing the batch not refused: '%s'%.0f", msg, 0.0);
        lethe_model_config c3 = cases[0].cfg;
        c3.mlp_dim = 50;
        check(model_check_layout(&c3, 1, 1, 4, 8, 1, 12, msg, sizeof msg) != 0 &&
                  strstr(msg, "tp=4 does not divide model.mlp_dim=50"),
              "tp=4 with mlp_dim 50 not refused: '%s'%.0f", msg, 0.0);
        printf("%d ranks: %d layouts compared, %d refused, %d checks, %d failures\n", size,
               layouts_run, refusals, checks, failures);
    }
    MPI_CHECK(MPI_Bcast(&failures, 1, MPI_INT, 0, MPI_COMM_WORLD));
    MPI_Finalize();
    return failures ? 1 : 0;
}
