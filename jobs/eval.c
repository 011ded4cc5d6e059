/* jobs/eval.c — `lethe eval`: evaluate a checkpoint on the evaluation splits.
 *
 * Splits by role: forget (eval.forget_split), retain, the utility sets and the
 * membership holdout. Per sample: token-mean NLL, probability, truth ratio from
 * the paraphrased and perturbed candidates, Min-K% score, greedy generation and
 * its ROUGE-L. Aggregates as DESIGN §6 defines them: probability, ROUGE-L
 * recall, truth ratio, model utility (harmonic mean of nine values), forget
 * quality (KS p-value against the reference model's forget-set truth ratios,
 * read from its eval.h5), MUSE-style VerbMem, KnowMem and PrivLeak. Writes
 * eval.h5 (per sample) and summary.json (aggregates, digests, reference) through
 * io/results.h, the one writer of evaluation results. A
 * missing reference is reported in summary.errors and the metrics that need it
 * are null; everything else is still written. A reference eval.h5 that is there but
 * is not a regular file (a FIFO, a device) is refused before any work. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cjson/cJSON.h>

#include "../analysis/metrics.h"
#include "../io/checkpoint.h"
#include "../io/results.h"
#include "../io/safefile.h"
#include "../io/text/tokenizer.h"
#include "../mpi/fatal.h"
#include "evaluate.h"

#define MAX_SPLITS 12

/* The splits to evaluate, by role: 0 forget, 1 retain, 2 utility, 3 membership holdout. */
typedef struct {
    const char *names[MAX_SPLITS];
    int roles[MAX_SPLITS], n;
    char util[256]; /* eval.utility_splits, cut at the commas names[] point into */
} split_plan;

/* Indices of the forget, retain and holdout splits (-1: none) and the summary's
 * figures, NAN until computed. */
typedef struct {
    int fi, ri, hi;
    double mu, fq, lfq, fqt, lfqt, gap, auc, auc_ref;
} eval_figures;

void eval_write_split(results_writer *w, const split_eval *e, const split_buckets *B)
{
    char err[1400];
    double *tr = lethe_malloc(sizeof(double) * (e->n + 1), "eval"),
           *trt = lethe_malloc(sizeof(double) * (e->n + 1), "eval");
    for (int64_t i = 0; i < e->n; i++) tr[i] = trt[i] = NAN;
    if (e->has_cand) {
        eval_truth_ratios(e, 0, tr);
        eval_truth_ratios(e, 1, trt);
    }
    results_column cols[13] = {
        {"nll", RESULTS_F64, e->nll, 0},
        {"prob", RESULTS_F64, e->prob, 0},
        {"nll_para", RESULTS_F64, e->nll_para, 0},
        {"mink", RESULTS_F64, e->mink, 0},
        {"rouge_recall", RESULTS_F64, e->rouge_recall, 0},
        {"rouge_f1", RESULTS_F64, e->rouge_f1, 0},
        {"truth_ratio", RESULTS_F64, tr, 0},
        {"truth_ratio_trained", RESULTS_F64, trt, 0},
        {"sample_id", RESULTS_I64, e->sample_id, 0},
    };
    int nc = 9;
    if (e->k > 0) cols[nc++] = (results_column){"nll_pert", RESULTS_F64, e->nll_pert, e->k};
    cols[nc++] = (results_column){"gen_ids", RESULTS_I32, e->gen, e->gen_cap};
    cols[nc++] = (results_column){"gen_len", RESULTS_I32, e->gen_len, 0};
    if (B->b) cols[nc++] = (results_column){"bucket", RESULTS_I32, B->b, 0};
    if (results_split(w, e->split, e->n, cols, nc, err, sizeof err)) lethe_fatal("%s", err);
    free(tr);
    free(trt);
}

/* eval.h5 (io/results.h: via a temporary name). */
static void write_eval_h5(const lethe_session *S, const split_eval *ev, int ns,
                          const split_buckets *B)
{
    char path[1100], err[1400];
    session_path(S, "eval.h5", path, sizeof path);
    results_writer w;
    if (results_open(&w, path, err, sizeof err)) lethe_fatal("%s", err);
    for (int i = 0; i < ns; i++) eval_write_split(&w, &ev[i], &B[i]);
    if (results_close(&w, err, sizeof err)) lethe_fatal("%s", err);
}

/* The per-split aggregates and the roles into sum; the nine values of model utility
 * into mu_vals (*nmu of them) and the role indices into F. */
static void summary_splits(cJSON *sum, cJSON *splits, const split_eval *ev, const split_plan *P,
                           const split_buckets *B, double *mu_vals, int *nmu, eval_figures *F)
{
    cJSON *roles_j = cJSON_AddObjectToObject(sum, "roles"), *ul = cJSON_CreateArray();
    for (int i = 0; i < P->n; i++) {
        const char *name = P->names[i];
        int role = P->roles[i];
        split_aggregate a;
        eval_aggregate(&ev[i], role, &a);
        cJSON *o = cJSON_AddObjectToObject(splits, name);
        cJSON_AddNumberToObject(o, "n", (double)ev[i].n);
        double prob = role == 2 ? a.prob_norm : a.prob;
        cJSON_AddItemToObject(o, "prob", results_number(prob));
        cJSON_AddItemToObject(o, "rouge_recall", results_number(a.rouge_recall));
        cJSON_AddItemToObject(o, "rouge_f1", results_number(a.rouge_f1));
        cJSON_AddItemToObject(o, "truth_ratio", results_number(a.truth_ratio));
        eval_buckets_summary(o, &ev[i], role, &B[i]);
        if (role == 0) F->fi = i, cJSON_AddStringToObject(roles_j, "forget", name);
        if (role == 1) F->ri = i, cJSON_AddStringToObject(roles_j, "retain", name);
        if (role == 2) cJSON_AddItemToArray(ul, cJSON_CreateString(name));
        if (role == 3) F->hi = i, cJSON_AddStringToObject(roles_j, "holdout", name);
        if ((role == 1 || role == 2) && *nmu <= 6) {
            mu_vals[(*nmu)++] = prob;
            mu_vals[(*nmu)++] = a.rouge_recall;
            mu_vals[(*nmu)++] = a.truth_ratio;
        }
    }
    cJSON_AddItemToObject(roles_j, "utility", ul);
}

/* Model utility: the harmonic mean of the nine values, or NAN (and a line in errs). */
static double model_utility(const double *mu_vals, int nmu, cJSON *errs)
{
    double mu = NAN;
    int mu_ok = nmu == 9;
    for (int i = 0; i < nmu; i++) mu_ok = mu_ok && isfinite(mu_vals[i]) && mu_vals[i] >= 0;
    if (mu_ok && metrics_harmonic_mean(&mu, mu_vals, 9)) mu = NAN;
    if (!mu_ok)
        cJSON_AddItemToArray(errs, cJSON_CreateString("model_utility: needs retain and two utility "
                                                      "sets with candidates and generations"));
    return mu;
}

double *eval_read_ref_col(const char *rpath, const char *split, const char *col, int64_t *n,
                          char *err, size_t errlen)
{
    char grp[80], dset[160];
    results_group_name(grp, sizeof grp, split);
    snprintf(dset, sizeof dset, "%s/%s", grp, col);
    return eval_read_ref(rpath, dset, n, err, errlen);
}

/* The figures against the reference model (eval.reference): forget quality (KS p of
 * the forget set's truth ratios, paraphrased and trained wording), the forget-
 * probability gap and the reference's membership AUC. A missing reference or column
 * goes to errs. */
static void reference_figures(const lethe_eval_config *E, const split_plan *P, const split_eval *ev,
                              eval_figures *F, cJSON *errs)
{
    const split_eval *f = &ev[F->fi];
    char rpath[1100], e2[1024] = "";
    snprintf(rpath, sizeof rpath, "%s/eval.h5", E->reference);
    const char *fname = P->names[F->fi];
    int64_t nr = 0, nrt = 0, np = 0, nm = 0;
    double *rr = eval_read_ref_col(rpath, fname, "truth_ratio", &nr, e2, sizeof e2);
    double *rrt =
        rr ? eval_read_ref_col(rpath, fname, "truth_ratio_trained", &nrt, e2, sizeof e2) : NULL;
    double *rp = rrt ? eval_read_ref_col(rpath, fname, "prob", &np, e2, sizeof e2) : NULL;
    double *rm = rp ? eval_read_ref_col(rpath, fname, "mink", &nm, e2, sizeof e2) : NULL;
    if (rm) {
        double *r = lethe_malloc(sizeof(double) * f->n, "eval"),
               *rt = lethe_malloc(sizeof(double) * f->n, "eval");
        eval_truth_ratios(f, 0, r);
        eval_truth_ratios(f, 1, rt);
        F->fq = eval_ks_p(r, f->n, rr, nr, &F->lfq);
        F->fqt = eval_ks_p(rt, f->n, rrt, nrt, &F->lfqt);
        double pm, pr;
        if (!metrics_mean(&pm, f->prob, f->n) && !metrics_mean(&pr, rp, np)) F->gap = pm - pr;
        if (F->hi >= 0) {
            int64_t nh = 0;
            double *rh = eval_read_ref_col(rpath, E->holdout_split, "mink", &nh, e2, sizeof e2);
            if (rh && metrics_roc_auc(&F->auc_ref, rm, nm, rh, nh)) F->auc_ref = NAN;
            free(rh);
        }
        free(r);
        free(rt);
    } else {
        cJSON_AddItemToArray(errs, cJSON_CreateString(e2));
    }
    free(rr);
    free(rrt);
    free(rp);
    free(rm);
}

/* The MUSE-style figures: VerbMem, KnowMem on forget and retain, AUC and PrivLeak. */
static void summary_muse(cJSON *sum, const split_eval *ev, const eval_figures *F)
{
    cJSON *muse = cJSON_AddObjectToObject(sum, "muse");
    split_aggregate af = {NAN, NAN, NAN, NAN, NAN}, ar = af;
    if (F->fi >= 0) eval_aggregate(&ev[F->fi], 0, &af);
    if (F->ri >= 0) eval_aggregate(&ev[F->ri], 1, &ar);
    cJSON_AddItemToObject(muse, "verbmem", results_number(af.rouge_f1));
    cJSON_AddItemToObject(muse, "knowmem_forget", results_number(af.rouge_f1));
    cJSON_AddItemToObject(muse, "knowmem_retain", results_number(ar.rouge_f1));
    cJSON_AddItemToObject(muse, "auc", results_number(F->auc));
    double pl = NAN;
    if (isfinite(F->auc) && isfinite(F->auc_ref) && metrics_privleak(&pl, F->auc, F->auc_ref))
        pl = NAN;
    cJSON_AddItemToObject(muse, "privleak", results_number(pl));
}

/* summary.json's document: aggregates per split, model utility, forget quality against
 * the reference, the MUSE figures, and the reasons for every null in errors. */
static cJSON *eval_summary(const lethe_config *c, const char *digest, const split_plan *P,
                           const split_eval *ev, const split_buckets *B, const char *berr,
                           eval_figures *F)
{
    const lethe_eval_config *E = &c->eval;
    cJSON *sum = cJSON_CreateObject(), *splits = cJSON_AddObjectToObject(sum, "splits");
    cJSON *errs = cJSON_CreateArray();
    cJSON_AddStringToObject(sum, "checkpoint", c->init.checkpoint);
    cJSON_AddStringToObject(sum, "dataset", c->data.path);
    cJSON_AddStringToObject(sum, "dataset_digest", digest);
    cJSON_AddItemToObject(sum, "reference",
                          E->reference[0] ? cJSON_CreateString(E->reference) : cJSON_CreateNull());
    double mu_vals[9];
    int nmu = 0;
    summary_splits(sum, splits, ev, P, B, mu_vals, &nmu, F);
    if (berr[0]) cJSON_AddItemToArray(errs, cJSON_CreateString(berr));
    F->mu = model_utility(mu_vals, nmu, errs);
    cJSON_AddItemToObject(sum, "model_utility", results_number(F->mu));
    int fi = F->fi, hi = F->hi;
    if (fi >= 0 && hi >= 0 &&
        metrics_roc_auc(&F->auc, ev[fi].mink, ev[fi].n, ev[hi].mink, ev[hi].n))
        F->auc = NAN;
    if (E->reference[0] && fi >= 0 && ev[fi].has_cand)
        reference_figures(E, P, ev, F, errs);
    else if (fi >= 0)
        cJSON_AddItemToArray(errs, cJSON_CreateString("forget_quality, forget_prob_gap, privleak: "
                                                      "no reference model (eval.reference)"));
    cJSON_AddItemToObject(sum, "forget_quality", results_number(F->fq));
    cJSON_AddItemToObject(sum, "log10_forget_quality", results_number(F->lfq));
    cJSON_AddItemToObject(sum, "forget_quality_trained_wording", results_number(F->fqt));
    cJSON_AddItemToObject(sum, "log10_forget_quality_trained_wording", results_number(F->lfqt));
    cJSON_AddItemToObject(sum, "forget_prob_gap", results_number(F->gap));
    summary_muse(sum, ev, F);
    cJSON_AddItemToObject(sum, "errors", errs);
    return sum;
}

/* Rank 0: summary.json and eval.h5, and the one-line verdict. */
static void eval_outputs(lethe_session *S, const char *digest, const split_plan *P,
                         const split_eval *ev, double t0)
{
    const lethe_config *c = &S->cfg;
    eval_figures F = {-1, -1, -1, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN};
    split_buckets B[MAX_SPLITS];
    char berr[1024] = ""; /* a malformed bucket set is reported, not fatal, after the work */
    for (int i = 0; i < P->n; i++)
        if (eval_buckets_read(c->data.path, P->names[i], ev[i].n, &B[i], berr, sizeof berr))
            snprintf(berr + strlen(berr), sizeof berr - strlen(berr), "; no buckets reported");
    cJSON *sum = eval_summary(c, digest, P, ev, B, berr, &F);
    cJSON_AddNumberToObject(sum, "seconds", MPI_Wtime() - t0);
    write_eval_h5(S, ev, P->n, B); /* eval.h5 then summary.json */
    for (int i = 0; i < P->n; i++) eval_buckets_free(&B[i]);
    char path[1100], err[1400], mu[64] = "n/a", fq[64] = "n/a";
    session_path(S, "summary.json", path, sizeof path);
    if (results_write_json(path, sum, err, sizeof err)) lethe_fatal("%s", err);
    split_aggregate af = {NAN, NAN, NAN, NAN, NAN};
    if (F.fi >= 0) eval_aggregate(&ev[F.fi], 0, &af);
    if (isfinite(F.mu)) snprintf(mu, sizeof mu, "%.4f", F.mu);
    if (isfinite(F.fq)) snprintf(fq, sizeof fq, "%.3g", F.fq);
    printf("lethe eval: model utility %s, forget quality %s, forget prob %.4f; %s/summary.json\n",
           mu, fq, F.fi >= 0 ? af.prob : NAN, c->output.dir);
    cJSON_Delete(sum);
}

void eval_check_batch(const lethe_session *S)
{
    const lethe_config *c = &S->cfg;
    int bs = c->eval.batch_size;
    int ok = bs % S->grid.dp == 0 && (bs / S->grid.dp) % c->layout.micro_batches == 0;
    lethe_check(S->grid.world, ok, 2,
                "eval: eval.batch_size=%d must be a multiple of layout.dp x "
                "layout.micro_batches = %d x %d",
                bs, S->grid.dp, c->layout.micro_batches);
}

/* A mixture of Markov chains: KL to the true chains (jobs/eval_markov.c). */
static void run_markov(lethe_session *S)
{
    char err[1024];
    dataset_info info;
    int ok = dataset_inspect(&info, S->cfg.data.path, "eval/retain", DATASET_CHECK_META, 0, err,
                             sizeof err) == 0;
    lethe_check(S->grid.world, ok, 2, "eval: %s", err);
    eval_check_batch(S);
    session_build_model(S, S->cfg.eval.batch_size, info.t);
    session_load_init(S);
    session_output(S);
    eval_markov(S, info.source_digest);
}

/* The splits by role (eval.forget_split, retain_split, utility_splits, holdout_split). */
static void plan_splits(const lethe_eval_config *E, split_plan *P)
{
    P->n = 0;
    snprintf(P->util, sizeof P->util, "%s", E->utility_splits);
    if (E->forget_split[0]) P->names[P->n] = E->forget_split, P->roles[P->n++] = 0;
    if (E->retain_split[0]) P->names[P->n] = E->retain_split, P->roles[P->n++] = 1;
    for (char *t = strtok(P->util, ","); t && P->n < MAX_SPLITS - 1; t = strtok(NULL, ","))
        if (*t) P->names[P->n] = t, P->roles[P->n++] = 2;
    if (E->holdout_split[0]) P->names[P->n] = E->holdout_split, P->roles[P->n++] = 3;
}

/* A split evaluated in two roles (or listed twice) would be written twice into eval.h5
 * after the whole evaluation: refused before any work, naming both keys. */
static void check_distinct(const lethe_session *S, const split_plan *P)
{
    static const char *const key[] = {"eval.forget_split", "eval.retain_split",
                                      "eval.utility_splits", "eval.holdout_split"};
    for (int i = 0; i < P->n; i++)
        for (int k = 0; k < i; k++) {
            if (strcmp(P->names[i], P->names[k])) continue;
            char nm[80];
            snprintf(nm, sizeof nm, "%s", P->names[i]);
            for (char *q = nm; *q; q++) *q = (unsigned char)*q < 0x20 ? '?' : *q;
            if (P->roles[i] == P->roles[k])
                lethe_check(S->grid.world, 0, 2, "eval: %s lists split '%s' twice; name each once",
                            key[P->roles[i]], nm);
            lethe_check(S->grid.world, 0, 2,
                        "eval: %s and %s are both '%s'; a split is evaluated in one role only",
                        key[P->roles[k]], key[P->roles[i]], nm);
        }
}

/* Every split is a token dataset with rows of one length, which it returns; *info is
 * the last split's. */
static int check_splits(const lethe_session *S, const split_plan *P, dataset_info *info)
{
    char err[1024];
    int T = 0;
    for (int i = 0; i < P->n; i++) {
        int ok = dataset_inspect(info, S->cfg.data.path, P->names[i], DATASET_CHECK_META, 0, err,
                                 sizeof err) == 0;
        lethe_check(S->grid.world, ok, 2, "eval: %s", err);
        ok = i == 0 || info->t == T;
        lethe_check(S->grid.world, ok, 2, "eval: split '%s' has rows of %d tokens, '%s' of %d",
                    P->names[i], info->t, P->names[0], T);
        T = info->t;
    }
    lethe_check(S->grid.world, P->n > 0, 2, "eval: no split to evaluate");
    return T;
}

/* eval.reference: a folder without eval.h5 is reported in summary.errors (its figures are
 * null); one that is there but is not a readable regular file within the bound (a FIFO, a
 * device, a folder) is refused before any work, since reading it could block or never end. */
static void check_reference(const lethe_session *S)
{
    const char *ref = S->cfg.eval.reference;
    if (!ref[0]) return;
    char rpath[1100], err[1300] = "";
    struct stat st;
    int ok = 1;
    snprintf(rpath, sizeof rpath, "%s/eval.h5", ref);
    if (stat(ref, &st) == 0 && !S_ISDIR(st.st_mode))
        ok = 0, snprintf(err, sizeof err,
                         "eval.reference '%s' is not a folder (it names the "
                         "folder of the reference model's eval.h5)",
                         ref);
    else if (lstat(rpath, &st) == 0 &&
             safe_check_read(rpath, "eval.reference", LETHE_MAX_TENSORS, err, sizeof err))
        ok = 0;
    lethe_check(S->grid.world, ok, 2, "eval: %s", err);
}

int job_eval(int argc, char **argv)
{
    lethe_session S;
    session_open(&S, "eval", argc, argv);
    const lethe_config *c = &S.cfg;
    lethe_check(S.grid.world, c->data.path[0] != 0, 2,
                "eval: data.path must name an HDF5 token dataset");
    if (eval_is_markov(c->data.path)) {
        run_markov(&S);
        session_close(&S);
        return 0;
    }
    if (eval_is_muse(c->data.path)) {
        eval_muse(&S);
        session_close(&S);
        return 0;
    }
    eval_check_batch(&S);
    split_plan P;
    plan_splits(&c->eval, &P);
    check_distinct(&S, &P);
    check_reference(&S);
    dataset_info info;
    int T = check_splits(&S, &P, &info);
    session_build_model(&S, c->eval.batch_size, T);
    session_load_init(&S); /* checked before anything is written */
    session_output(&S);
    char err[1024];
    tokenizer *tk = NULL;
    if (tokenizer_load(&tk, c->data.path, err, sizeof err)) tk = NULL; /* ROUGE on ids then */
    lethe_generator gen;
    gen_create(&gen, &S.model, T, eval_gen_batch(&S));
    double t0 = MPI_Wtime();
    split_eval ev[MAX_SPLITS];
    for (int i = 0; i < P.n; i++) {
        eval_split(&S, &gen, tk, P.names[i], c->eval.max_rows, c->eval.generate && P.roles[i] != 3,
                   &ev[i]);
        if (S.grid.rank == 0)
            printf("lethe eval: %-18s %5lld rows  (%.1f s)\n", P.names[i], (long long)ev[i].n,
                   MPI_Wtime() - t0);
    }
    if (S.grid.rank == 0) eval_outputs(&S, info.source_digest, &P, ev, t0);
    for (int i = 0; i < P.n; i++) split_eval_free(&ev[i]);
    gen_free(&gen);
    if (tk) tokenizer_free(tk);
    session_close(&S);
    return 0;
}
