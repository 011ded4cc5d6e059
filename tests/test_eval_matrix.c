/* tests/test_eval_matrix.c — `lethe eval`'s layout contract: the same checkpoint
 * evaluated under every layout dp x pp x tp of the world gives the one-rank values.
 *
 * Run under mpirun at N ranks. Rank 0 generates a small fictitious-author dataset
 * (io/synth, 30 authors x 4 questions, 3 perturbed answers), trains a small model
 * (4 layers, width 64, 8 heads over 4 kv-heads, vocabulary padded by tp) for a few
 * steps on one rank so its generations are confident rather than near-ties, saves
 * the checkpoint, and evaluates it alone (a grid over MPI_COMM_SELF): the one-rank
 * reference. Then, for every layout of N ranks that the model admits, with one
 * micro-batch and with pp micro-batches where they divide the replica's rows, the
 * world loads the same checkpoint and runs the evaluation code of `lethe eval`
 * (eval_split, eval_aggregate, eval_truth_ratios) over a forget split (candidates,
 * generations), a utility split (candidates, generations) and the holdout (no
 * generations). The reference generates one row at a time (eval.gen_batch 1), once
 * more at eval.gen_batch 8 (compared as a layout) and every layout at 8 (capped at
 * the replica's rows). Asserted against the reference, per sample:
 *   - probability exp(-NLL) to 1e-6 relative (the bound);
 *   - token-mean NLL of the answer, the paraphrase and each perturbed answer, the
 *     Min-K% score and the truth ratio to 1e-6 relative;
 *   - greedy generations: the same length and the same token ids; ROUGE-L recall
 *     and F1 (functions of the ids) equal;
 *   - sample ids in the same (file) order;
 * and per split the aggregates of DESIGN §6 (probability, normalised probability,
 * ROUGE-L, truth ratio) to 1e-6 relative. Refused layouts (tp = 8 > 4 kv-heads,
 * pp = 8 > 4 layers) are counted and must be refused. The worst difference per
 * layout is printed. First, the one-rank truth ratios and aggregates are checked
 * against DESIGN §6's formulas computed independently here (check_definitions).
 *
 * The tolerance is the bound. Layouts differ only in fp32 summation order:
 * tp splits the inner products, dp and micro-batches change the row count of each
 * sgemm (and so OpenBLAS's blocking); pp alone changes nothing (measured 0).
 * Measured worst per-sample differences over all 13 layouts of 8 ranks: probability
 * 4.1e-7, truth ratio 5.9e-7 (OpenBLAS Haswell and SkylakeX kernels alike); a
 * missing or doubled reduction gives O(1).
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/checkpoint.h"
#include "io/synth/synth.h"
#include "io/text/tokenizer.h"
#include "jobs/evaluate.h"
#include "mpi/comm.h"
#include "mpi/fatal.h"
#include "tests/layout_list.h"

#define TOL 1e-6
#define EVAL_B 8  /* eval.batch_size: rows per forward pass, every dp divides it */
#define NEW_TOK 8 /* eval.max_new_tokens: short generations keep the test fast */
#define TRAIN_STEPS 40
#define NSPLIT 3

static const char *SPLIT[NSPLIT] = {"forget10", "eval/utility_a", "holdout"};
static const int ROLE[NSPLIT] = {0, 2, 3}, GEN[NSPLIT] = {1, 1, 0};

static int failures, checks;

static void check(int ok, const char *what, const char *fmt, double v)
{
    checks++;
    if (ok) return;
    failures++;
    fprintf(stderr, "FAIL: %s: ", what);
    fprintf(stderr, fmt, v);
    fprintf(stderr, "\n");
}

/* |a - b| / |b|; two NaNs agree (a value the split does not have), one does not */
static double rel(double a, double b)
{
    if (isnan(a) && isnan(b)) return 0;
    if (isnan(a) || isnan(b)) return INFINITY;
    if (a == b) return 0;
    return fabs(a - b) / fabs(b);
}

/* A session of the evaluation code over comm with the given layout: the config of
 * `lethe eval` for this dataset and model, the grid, and a model for eval batches. */
static void open_session(lethe_session *S, MPI_Comm comm, const test_layout *L, int M,
                         const lethe_model_config *mc, const char *data, int T)
{
    memset(S, 0, sizeof *S);
    S->job = "eval-matrix";
    config_defaults(&S->cfg);
    S->cfg.model = *mc;
    S->cfg.layout.dp = L->dp;
    S->cfg.layout.pp = L->pp;
    S->cfg.layout.tp = L->tp;
    S->cfg.layout.micro_batches = M;
    snprintf(S->cfg.data.path, sizeof S->cfg.data.path, "%s", data);
    S->cfg.eval.batch_size = EVAL_B;
    S->cfg.eval.max_new_tokens = NEW_TOK;
    char err[512];
    if (grid_create(&S->grid, comm, L->dp, L->pp, L->tp, err, sizeof err)) lethe_fatal("%s", err);
    model_create(&S->model, mc, &S->grid, EVAL_B / L->dp / M, T, M);
    model_init_weights(&S->model);
    S->have_model = 1;
}

static void eval_all(lethe_session *S, const tokenizer *tk, int T, split_eval *ev)
{
    lethe_generator gen;
    gen_create(&gen, &S->model, T, eval_gen_batch(S));
    for (int s = 0; s < NSPLIT; s++) eval_split(S, &gen, tk, SPLIT[s], 0, GEN[s], &ev[s]);
    gen_free(&gen);
}

/* The one-rank model: a few AdamW steps on train_full, saved to ckpt. */
static void train_reference(lethe_session *S, int T, const char *ckpt)
{
    loader *ld;
    job_open_loader(S, &ld, "train_full", EVAL_B, 3, 1, 1, 0, 0);
    lethe_batch b = {EVAL_B, T, lethe_malloc(sizeof(int) * EVAL_B * T, "batch"),
                     lethe_malloc(sizeof(int) * EVAL_B * T, "batch"), NULL, NULL};
    lethe_optim_config o = S->cfg.optim;
    o.schedule = SCHEDULE_CONSTANT;
    o.lr = 3e-3f;
    o.warmup_steps = 0;
    o.weight_decay = 0;
    char err[1024];
    step_stats st;
    for (int step = 0; step < TRAIN_STEPS; step++) {
        loader_batch *lb;
        if (loader_next(ld, &lb, err, sizeof err) <= 0) lethe_fatal("train_full: %s", err);
        job_fill_batch(&b, 0, EVAL_B, lb);
        nll_objective_ctx ctx = {1.0 / model_count_targets(&S->model, &b)};
        lethe_objective obj = {nll_objective_seq, &ctx, NULL};
        model_train_step(&S->model, &b, &obj, &o, NULL, step, TRAIN_STEPS, &st);
    }
    printf("reference model: %d steps on train_full, last loss %.4f\n", TRAIN_STEPS, st.loss);
    loader_close(ld);
    free(b.tokens);
    free(b.targets);
    if (ckpt_save(ckpt, &S->model.w.params, &S->grid, NULL, err, sizeof err))
        lethe_fatal("%s", err);
}

/* Worst differences of one layout against the reference, by kind. */
typedef struct {
    double prob, nll, cand, mink, tr, agg;
    int gens, gens_same;
} worst;

static void upd(double *w, double e)
{
    if (e > *w || isnan(e)) *w = isnan(e) ? INFINITY : e;
}

static void compare(const char *lay, const split_eval *a, const split_eval *r, int role, worst *w)
{
    char what[160];
    snprintf(what, sizeof what, "%.60s split %.64s", lay, r->split);
    check(a->n == r->n, what, "rows %g differ from one rank's", (double)a->n);
    check(a->k == r->k && a->has_cand == r->has_cand, what, "candidates (K %g) differ",
          (double)a->k);
    if (a->n != r->n || a->k != r->k) return;
    double *tra = lethe_malloc(sizeof(double) * (r->n + 1), "tr");
    double *trr = lethe_malloc(sizeof(double) * (r->n + 1), "tr");
    if (r->has_cand) {
        eval_truth_ratios(a, 0, tra);
        eval_truth_ratios(r, 0, trr);
    }
    for (int64_t i = 0; i < r->n; i++) {
        char row[300];
        snprintf(row, sizeof row, "%s row %lld", what, (long long)i);
        check(a->sample_id[i] == r->sample_id[i], row, "sample id %g out of order",
              (double)a->sample_id[i]);
        double e = rel(a->prob[i], r->prob[i]);
        upd(&w->prob, e);
        check(e <= TOL, row, "probability relative difference %.3g", e);
        e = rel(a->nll[i], r->nll[i]);
        upd(&w->nll, e);
        check(e <= TOL, row, "NLL relative difference %.3g", e);
        e = rel(a->nll_para[i], r->nll_para[i]);
        for (int j = 0; j < r->k; j++)
            upd(&e, rel(a->nll_pert[i * r->k + j], r->nll_pert[i * r->k + j]));
        upd(&w->cand, e);
        check(e <= TOL, row, "candidate NLL relative difference %.3g", e);
        e = rel(a->mink[i], r->mink[i]);
        upd(&w->mink, e);
        check(e <= TOL, row, "Min-K%% relative difference %.3g", e);
        if (r->has_cand) {
            e = rel(tra[i], trr[i]);
            upd(&w->tr, e);
            check(e <= TOL, row, "truth ratio relative difference %.3g", e);
        }
        int same = a->gen_len[i] == r->gen_len[i] && a->gen_cap == r->gen_cap &&
                   !memcmp(a->gen + i * a->gen_cap, r->gen + i * r->gen_cap,
                           sizeof(int32_t) * (size_t)r->gen_len[i]);
        if (r->gen_len[i] > 0) {
            w->gens++;
            w->gens_same += same;
        }
        check(same, row, "generation differs from one rank's (length %g)", (double)a->gen_len[i]);
        int rouge_same =
            (isnan(a->rouge_recall[i]) && isnan(r->rouge_recall[i])) ||
            (a->rouge_recall[i] == r->rouge_recall[i] && a->rouge_f1[i] == r->rouge_f1[i]);
        check(rouge_same, row, "ROUGE-L recall %.17g differs", a->rouge_recall[i]);
    }
    split_aggregate ga, gr;
    eval_aggregate(a, role, &ga);
    eval_aggregate(r, role, &gr);
    double e = 0;
    upd(&e, rel(ga.prob, gr.prob));
    upd(&e, rel(ga.prob_norm, gr.prob_norm));
    upd(&e, rel(ga.rouge_recall, gr.rouge_recall));
    upd(&e, rel(ga.rouge_f1, gr.rouge_f1));
    upd(&e, rel(ga.truth_ratio, gr.truth_ratio));
    upd(&w->agg, e);
    check(e <= TOL, what, "aggregates relative difference %.3g", e);
    free(tra);
    free(trr);
}

/* The one-rank values against DESIGN §6's definitions, computed here in long double
 * from the split's own per-sample NLLs (not through analysis/metrics): per sample
 * R = exp(mean_j l(pert_j) - l(para)) and, for the trained wording, with l(answer) in
 * place of l(para), to 1e-12 relative; the split's truth ratio mean min(R, 1/R) on the
 * forget set and mean max(0, 1 - 1/R) elsewhere, its probability mean exp(-l) (utility
 * sets: mean 1 / (1 + sum_j exp(l - l(pert_j)))) and ROUGE-L recall mean over the
 * generated rows, to 1e-12 absolute. So a wrong formula in the code `lethe eval` runs
 * fails here, whatever the layouts agree on. */
static void check_definitions(const split_eval *e, int role)
{
    char what[120];
    snprintf(what, sizeof what, "definitions, split %.64s", e->split);
    double *r = lethe_malloc(sizeof(double) * (e->n + 1), "tr");
    double *rt = lethe_malloc(sizeof(double) * (e->n + 1), "tr");
    if (e->has_cand) {
        eval_truth_ratios(e, 0, r);
        eval_truth_ratios(e, 1, rt);
    }
    long double sp = 0, sq = 0, st = 0, sr = 0;
    double worst = 0;
    int ng = 0;
    for (int64_t i = 0; i < e->n; i++) {
        sp += expl(-(long double)e->nll[i]);
        if (!isnan(e->rouge_recall[i])) sr += e->rouge_recall[i], ng++;
        if (!e->has_cand) continue;
        long double m = 0, d = 1;
        for (int j = 0; j < e->k; j++) {
            m += e->nll_pert[i * e->k + j];
            d += expl((long double)e->nll[i] - e->nll_pert[i * e->k + j]);
        }
        m /= e->k;
        long double R = expl(m - e->nll_para[i]), Rt = expl(m - e->nll[i]);
        upd(&worst, rel(r[i], (double)R));
        upd(&worst, rel(rt[i], (double)Rt));
        st += role == 0 ? (R < 1 ? R : 1 / R) : (R > 1 ? 1 - 1 / R : 0);
        sq += 1 / d;
    }
    check(worst <= 1e-12, what, "per-sample truth ratio relative error %.3g", worst);
    split_aggregate a;
    eval_aggregate(e, role, &a);
    double n = (double)e->n, want_p = (double)(sp / n),
           want_t = e->has_cand ? (double)(st / n) : NAN;
    double want_q = e->has_cand ? (double)(sq / n) : NAN, want_r = ng ? (double)(sr / ng) : NAN;
    double got[4] = {a.prob, a.truth_ratio, a.prob_norm, a.rouge_recall};
    double want[4] = {want_p, want_t, want_q, want_r}, err = 0;
    for (int q = 0; q < 4; q++)
        upd(&err, isnan(got[q]) && isnan(want[q]) ? 0 : fabs(got[q] - want[q]));
    check(err <= 1e-12, what, "aggregate absolute error %.3g", err);
    printf("%-32s truth ratio %.17g (want %.17g), per-sample error %.2g, aggregates %.2g\n", what,
           a.truth_ratio, want_t, worst, err);
    free(r);
    free(rt);
}

int main(int argc, char **argv)
{
    comm_init(&argc, &argv);
    int rank, size;
    MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
    MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size));
    double t0 = MPI_Wtime();
    /* the dataset, written by rank 0 into a fresh folder */
    char dir[256] = "", data[300], ckpt[300], err[1024];
    int64_t vocab = 0;
    int T = 0;
    if (rank == 0) {
        const char *tmp = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/lethe-eval-matrix-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(dir)) lethe_fatal("cannot create a folder from '%s'", dir);
        lethe_config c;
        config_defaults(&c);
        lethe_synth_config *sc = &c.synth;
        snprintf(sc->kind, sizeof sc->kind, "authors");
        sc->n_authors = 30; /* forget10: 3 authors x 4 questions = 12 rows, two eval batches */
        sc->questions = 4;
        sc->perturbed = 3;
        sc->holdout_authors = 2;
        sc->utility_facts = 8;
        sc->seq_len = 40;
        snprintf(sc->output, sizeof sc->output, "%s/authors.h5", dir);
        synth_data *d;
        if (synth_generate(&d, sc, err, sizeof err) || synth_write(d, err, sizeof err))
            lethe_fatal("synth: %s", err);
        synth_summary sm;
        synth_get_summary(d, &sm);
        vocab = sm.vocab_size;
        T = sm.seq_len;
        synth_free(d);
    }
    MPI_CHECK(MPI_Bcast(dir, sizeof dir, MPI_CHAR, 0, MPI_COMM_WORLD));
    MPI_CHECK(MPI_Bcast(&vocab, 1, MPI_INT64_T, 0, MPI_COMM_WORLD));
    MPI_CHECK(MPI_Bcast(&T, 1, MPI_INT, 0, MPI_COMM_WORLD));
    snprintf(data, sizeof data, "%s/authors.h5", dir);
    snprintf(ckpt, sizeof ckpt, "%s/model.h5", dir);
    /* an odd vocabulary, so tp = 2 and 4 pad the vocab-parallel embedding and head;
     * 8 heads over 4 kv-heads (grouped-query): tp 1, 2, 4 admitted, 8 refused;
     * 4 layers: pp 1, 2, 4 admitted, 8 refused */
    lethe_model_config mc = {.vocab_size = (int)(vocab | 1),
                             .dim = 64,
                             .n_layers = 4,
                             .n_heads = 8,
                             .n_kv_heads = 4,
                             .mlp_dim = 96,
                             .max_seq_len = T,
                             .rope_theta = 10000.0f,
                             .norm_eps = 1e-5f,
                             .tie_embeddings = 0,
                             .init_std = 0.05f,
                             .init_seed = 21};
    tokenizer *tk = NULL;
    if (tokenizer_load(&tk, data, err, sizeof err)) lethe_fatal("tokenizer of '%s': %s", data, err);

    /* the one-rank reference, on rank 0 alone */
    split_eval ref[NSPLIT];
    memset(ref, 0, sizeof ref);
    if (rank == 0) {
        lethe_session S;
        test_layout one = {1, 1, 1};
        open_session(&S, MPI_COMM_SELF, &one, 1, &mc, data, T);
        train_reference(&S, T, ckpt);
        S.cfg.eval.gen_batch = 1; /* the reference generates one row at a time */
        eval_all(&S, tk, T, ref);
        printf("one rank: %lld + %lld + %lld rows evaluated (%.1f s)\n", (long long)ref[0].n,
               (long long)ref[1].n, (long long)ref[2].n, MPI_Wtime() - t0);
        /* eval.gen_batch 8 (the default, as in every layout below): the same outputs */
        split_eval b8[NSPLIT];
        S.cfg.eval.gen_batch = 8;
        eval_all(&S, tk, T, b8);
        worst w = {0, 0, 0, 0, 0, 0, 0, 0};
        for (int s = 0; s < NSPLIT; s++) compare("one rank, gen_batch 8", &b8[s], &ref[s], ROLE[s], &w);
        printf("one rank, eval.gen_batch 8 vs 1: prob %.2g  aggregates %.2g  generations %d/%d "
               "identical\n", w.prob, w.agg, w.gens_same, w.gens);
        for (int s = 0; s < NSPLIT; s++) split_eval_free(&b8[s]);
        session_close(&S);
        for (int s = 0; s < NSPLIT; s++) check_definitions(&ref[s], ROLE[s]);
        check(ref[0].n == 12 && ref[0].has_cand && ref[1].has_cand && ref[2].n == 8, "reference",
              "splits not as generated (forget rows %g)", (double)ref[0].n);
        int gl = 0;
        for (int64_t i = 0; i < ref[0].n; i++) gl += ref[0].gen_len[i];
        check(gl > 0, "reference", "no generated tokens (%g)", (double)gl);
    }
    MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));

    test_layout lays[64];
    int nlay = test_layouts_of(size, lays, 64), compared = 0, refused = 0;
    for (int li = 0; li < nlay; li++) {
        const test_layout *L = &lays[li];
        char msg[512];
        if (model_check_layout(&mc, L->dp, L->pp, L->tp, EVAL_B, 1, T, msg, sizeof msg)) {
            /* only the layouts this model cannot take may be refused */
            int expected = mc.n_kv_heads % L->tp != 0 || L->pp > mc.n_layers;
            if (rank == 0) check(expected, msg, "refused%.0s", 0.0);
            refused++;
            continue;
        }
        int Br = EVAL_B / L->dp;
        int mbs[2] = {1, L->pp}, nm = L->pp > 1 && Br % L->pp == 0 ? 2 : 1;
        for (int k = 0; k < nm; k++) {
            double t1 = MPI_Wtime();
            lethe_session S;
            open_session(&S, MPI_COMM_WORLD, L, mbs[k], &mc, data, T);
            int ok = ckpt_load(ckpt, &S.model.w.params, &S.grid, NULL, 0, err, sizeof err) == 0;
            lethe_check(MPI_COMM_WORLD, ok, 1, "%s", err);
            split_eval ev[NSPLIT];
            eval_all(&S, tk, T, ev);
            if (rank == 0) {
                char lay[64];
                snprintf(lay, sizeof lay, "dp%d pp%d tp%d mb%d", L->dp, L->pp, L->tp, mbs[k]);
                worst w = {0, 0, 0, 0, 0, 0, 0, 0};
                for (int s = 0; s < NSPLIT; s++) compare(lay, &ev[s], &ref[s], ROLE[s], &w);
                printf("%-20s prob %.2g  nll %.2g  candidates %.2g  min-k %.2g  truth ratio %.2g  "
                       "aggregates %.2g  generations %d/%d identical  (%.1f s)\n",
                       lay, w.prob, w.nll, w.cand, w.mink, w.tr, w.agg, w.gens_same, w.gens,
                       MPI_Wtime() - t1);
            }
            for (int s = 0; s < NSPLIT; s++) split_eval_free(&ev[s]);
            session_close(&S);
            compared++;
        }
    }
    if (rank == 0) {
        /* at every world size some layout runs: dp = N alone is always admitted */
        check(compared > 0, "layouts", "none compared (%g)", (double)compared);
        printf("%d ranks: %d layouts compared, %d refused, %d checks, %d failures (%.1f s)\n", size,
               compared, refused, checks, failures, MPI_Wtime() - t0);
        for (int s = 0; s < NSPLIT; s++) split_eval_free(&ref[s]);
        char p[400];
        snprintf(p, sizeof p, "%s/model.h5", dir);
        remove(p);
        snprintf(p, sizeof p, "%s/authors.h5", dir);
        remove(p);
        rmdir(dir);
    }
    tokenizer_free(tk);
    MPI_CHECK(MPI_Bcast(&failures, 1, MPI_INT, 0, MPI_COMM_WORLD));
    MPI_Finalize();
    return failures ? 1 : 0;
}
