/* jobs/eval_muse.c — `lethe eval` on a MUSE dataset (`prepare --muse`; root attribute
 * benchmark = "muse"): the MUSE reference's metrics (swj0419/muse_bench; io/DATASETS.md
 * "MUSE"), each split through the one distributed evaluation (jobs/evaluate.c):
 *   verbmem_f   VerbMem on the forget set: mean ROUGE-L F1 (rouge_score, no stemming)
 *               of 128 greedy tokens after the verbmem prompt against the true
 *               continuation's first 128 tokens, x 100;
 *   knowmem_f   KnowMem on forget_qa: mean ROUGE-L F1 of the greedy answer (32 tokens
 *               after the few-shot prompt, cut at the stop strings) against the answer,
 *               x 100;
 *   knowmem_r   the same on retain_qa (utility preservation);
 *   auc         the Min-40% membership AUC of forget vs holdout (privleak texts);
 *   auc_retrain the same AUC of the retrained model (eval.reference's eval.h5);
 *   privleak    (auc - auc_retrain) / auc_retrain x 100.
 * Per-sample values go to eval.h5 and these figures to summary.json's "muse" through
 * io/results.h; a missing split or reference makes its figures null, named in errors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hdf5.h>

#include "../analysis/metrics.h"
#include "../analysis/metrics_muse.h"
#include "../io/dataset.h"
#include "../io/results.h"
#include "../io/text/tokenizer.h"
#include "../mpi/fatal.h"
#include "evaluate.h"

/* The splits prepare --muse makes for evaluation, with what each needs: flags (EVAL_*)
 * and the reference's max_new_tokens. */
static const struct {
    const char *split;
    int flags, new_tokens;
} muse_eval[] = {
    {"eval/verbmem_forget", EVAL_GENERATE | EVAL_MUSE_VERB, 128},
    {"eval/knowmem_forget", EVAL_GENERATE | EVAL_MUSE_STOP, 32},
    {"eval/knowmem_retain", EVAL_GENERATE | EVAL_MUSE_STOP, 32},
    {"eval/privleak_forget", EVAL_MUSE_MINK, 0},
    {"eval/privleak_retain", EVAL_MUSE_MINK, 0},
    {"eval/privleak_holdout", EVAL_MUSE_MINK, 0},
};
enum { MV_VERB, MV_KF, MV_KR, MV_PF, MV_PR, MV_PH, MV_N };

int eval_is_muse(const char *path)
{
    return eval_root_attr_is(path, "benchmark", "muse");
}

/* Whether the dataset has group split (the same answer on every rank: a serial read). */
static int has_split(const char *path, const char *split)
{
    h5_quiet q;
    h5_quiet_on(&q);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    int yes =
        f >= 0 && H5Lexists(f, "eval", H5P_DEFAULT) > 0 && H5Lexists(f, split, H5P_DEFAULT) > 0;
    if (f >= 0) H5Fclose(f);
    h5_quiet_off(&q);
    return yes;
}

/* The present splits (present[i]), each checked; their common T, which it returns. */
static int plan(lethe_session *S, int present[MV_N], dataset_info *info)
{
    char err[1024];
    int T = 0, n = 0;
    for (int i = 0; i < MV_N; i++) {
        present[i] = has_split(S->cfg.data.path, muse_eval[i].split);
        if (!present[i]) continue;
        int ok = dataset_inspect(info, S->cfg.data.path, muse_eval[i].split, DATASET_CHECK_META, 0,
                                 err, sizeof err) == 0;
        lethe_check(S->grid.world, ok, 2, "eval: %s", err);
        lethe_check(S->grid.world, n == 0 || info->t == T, 2,
                    "eval: MUSE split '%s' has rows of %d tokens, the others %d",
                    muse_eval[i].split, info->t, T);
        T = info->t;
        n++;
    }
    lethe_check(S->grid.world, n > 0, 2,
                "eval: '%s' is a MUSE dataset without any of its eval/ splits (verbmem_forget, "
                "knowmem_forget, knowmem_retain, privleak_forget, privleak_holdout); make it "
                "with prepare --muse from a folder that has them",
                S->cfg.data.path);
    return T;
}

/* Mean of a split's per-sample values x 100 (MUSE reports percentages), NAN when the
 * split is absent, was not generated, or a value is missing. */
static double percent(const split_eval *e, const double *x)
{
    double m;
    if (!e->n || !x || metrics_mean(&m, x, e->n)) return NAN;
    return 100.0 * m;
}

/* MUSE's forget-vs-holdout AUC from the privleak splits' Min-K% columns. */
static double auc_of(const double *f, int64_t nf, const double *h, int64_t nh)
{
    double a;
    if (nf < 1 || nh < 1 || metrics_muse_auc(&a, f, nf, h, nh)) return NAN;
    return a;
}

/* The retrained model's AUC from eval.reference's eval.h5, or NAN and a line in errs. */
static double auc_retrain(const lethe_eval_config *E, cJSON *errs)
{
    if (!E->reference[0]) {
        cJSON_AddItemToArray(errs, cJSON_CreateString("auc_retrain, privleak: no retrained "
                                                      "model's evaluation (eval.reference)"));
        return NAN;
    }
    char rpath[1100], e2[1024] = "";
    snprintf(rpath, sizeof rpath, "%s/eval.h5", E->reference);
    int64_t nf = 0, nh = 0;
    double *f = eval_read_ref_col(rpath, muse_eval[MV_PF].split, "mink", &nf, e2, sizeof e2);
    double *h =
        f ? eval_read_ref_col(rpath, muse_eval[MV_PH].split, "mink", &nh, e2, sizeof e2) : NULL;
    double a = h ? auc_of(f, nf, h, nh) : NAN;
    if (!h) cJSON_AddItemToArray(errs, cJSON_CreateString(e2));
    free(f);
    free(h);
    return a;
}

/* summary.json's "muse" object (and the per-split aggregates). */
static void muse_figures(cJSON *sum, const lethe_eval_config *E, const split_eval *ev,
                         const int present[MV_N], cJSON *errs)
{
    cJSON *splits = cJSON_AddObjectToObject(sum, "splits");
    for (int i = 0; i < MV_N; i++) {
        if (!present[i]) {
            char m[160];
            snprintf(m, sizeof m, "%s: not in the dataset", muse_eval[i].split);
            cJSON_AddItemToArray(errs, cJSON_CreateString(m));
            continue;
        }
        cJSON *o = cJSON_AddObjectToObject(splits, muse_eval[i].split);
        cJSON_AddNumberToObject(o, "n", (double)ev[i].n);
        double mk = NAN;
        if (ev[i].n && metrics_mean(&mk, ev[i].mink, ev[i].n)) mk = NAN;
        cJSON_AddItemToObject(o, "mink", results_number(mk));
        cJSON_AddItemToObject(o, "rouge_f1", results_number(percent(&ev[i], ev[i].rouge_f1)));
    }
    cJSON *m = cJSON_AddObjectToObject(sum, "muse");
    cJSON_AddItemToObject(m, "verbmem_f",
                          results_number(percent(&ev[MV_VERB], ev[MV_VERB].rouge_f1)));
    cJSON_AddItemToObject(m, "knowmem_f", results_number(percent(&ev[MV_KF], ev[MV_KF].rouge_f1)));
    cJSON_AddItemToObject(m, "knowmem_r", results_number(percent(&ev[MV_KR], ev[MV_KR].rouge_f1)));
    double a = auc_of(ev[MV_PF].mink, ev[MV_PF].n, ev[MV_PH].mink, ev[MV_PH].n);
    double ar = auc_retrain(E, errs), pl = NAN;
    if (isfinite(a) && isfinite(ar) && metrics_privleak(&pl, a, ar)) pl = NAN;
    cJSON_AddItemToObject(m, "auc", results_number(a));
    cJSON_AddItemToObject(m, "auc_retrain", results_number(ar));
    cJSON_AddItemToObject(m, "privleak", results_number(pl));
    cJSON_AddNumberToObject(m, "min_k", E->min_k);
}

/* Rank 0: eval.h5, then summary.json, then the one-line verdict. */
static void outputs(lethe_session *S, const char *digest, const split_eval *ev,
                    const int present[MV_N], double t0)
{
    const lethe_config *c = &S->cfg;
    char path[1100], err[1400];
    session_path(S, "eval.h5", path, sizeof path);
    results_writer w;
    split_buckets none = {0};
    if (results_open(&w, path, err, sizeof err)) lethe_fatal("%s", err);
    for (int i = 0; i < MV_N; i++)
        if (present[i]) eval_write_split(&w, &ev[i], &none);
    if (results_close(&w, err, sizeof err)) lethe_fatal("%s", err);
    cJSON *sum = cJSON_CreateObject(), *errs = cJSON_CreateArray();
    cJSON_AddStringToObject(sum, "benchmark", "muse");
    cJSON_AddStringToObject(sum, "checkpoint", c->init.checkpoint);
    cJSON_AddStringToObject(sum, "dataset", c->data.path);
    cJSON_AddStringToObject(sum, "dataset_digest", digest);
    cJSON_AddItemToObject(sum, "reference",
                          c->eval.reference[0] ? cJSON_CreateString(c->eval.reference)
                                               : cJSON_CreateNull());
    muse_figures(sum, &c->eval, ev, present, errs);
    cJSON_AddItemToObject(sum, "errors", errs);
    cJSON_AddNumberToObject(sum, "seconds", MPI_Wtime() - t0);
    session_path(S, "summary.json", path, sizeof path);
    if (results_write_json(path, sum, err, sizeof err)) lethe_fatal("%s", err);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(sum, "muse");
    char v[6][32];
    const char *keys[6] = {"verbmem_f", "knowmem_f", "knowmem_r", "auc", "auc_retrain", "privleak"};
    for (int i = 0; i < 6; i++) {
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(m, keys[i]);
        if (cJSON_IsNumber(x))
            snprintf(v[i], sizeof v[i], "%.4g", x->valuedouble);
        else
            snprintf(v[i], sizeof v[i], "n/a");
    }
    printf("lethe eval: MUSE verbmem_f %s, knowmem_f %s, knowmem_r %s, auc %s, auc_retrain %s, "
           "privleak %s; %s/summary.json\n",
           v[0], v[1], v[2], v[3], v[4], v[5], c->output.dir);
    cJSON_Delete(sum);
}

void eval_muse(lethe_session *S)
{
    int present[MV_N];
    dataset_info info;
    int T = plan(S, present, &info);
    eval_check_batch(S);
    session_build_model(S, S->cfg.eval.batch_size, T);
    session_load_init(S); /* checked before anything is written */
    session_output(S);
    char err[1024];
    tokenizer *tk = NULL;
    if (tokenizer_load(&tk, S->cfg.data.path, err, sizeof err)) tk = NULL; /* ROUGE on ids */
    lethe_generator gen;
    gen_create(&gen, &S->model, T, eval_gen_batch(S));
    double t0 = MPI_Wtime();
    split_eval ev[MV_N];
    memset(ev, 0, sizeof ev);
    int cap = S->cfg.eval.max_new_tokens; /* 0: the reference's, per split */
    for (int i = 0; i < MV_N; i++) {
        if (!present[i]) continue;
        int flags = muse_eval[i].flags;
        if (!S->cfg.eval.generate) flags = EVAL_MUSE_MINK & flags;
        S->cfg.eval.max_new_tokens = cap > 0 ? cap : muse_eval[i].new_tokens;
        eval_split(S, &gen, tk, muse_eval[i].split, S->cfg.eval.max_rows, flags, &ev[i]);
        S->cfg.eval.max_new_tokens = cap;
        if (S->grid.rank == 0)
            printf("lethe eval: %-22s %5lld rows  (%.1f s)\n", muse_eval[i].split,
                   (long long)ev[i].n, MPI_Wtime() - t0);
    }
    if (S->grid.rank == 0) outputs(S, info.source_digest, ev, present, t0);
    for (int i = 0; i < MV_N; i++)
        if (present[i]) split_eval_free(&ev[i]);
    gen_free(&gen);
    if (tk) tokenizer_free(tk);
}
