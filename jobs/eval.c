/* jobs/eval.c — `lethe eval`: evaluate a checkpoint on the evaluation splits.
 *
 * Splits by role: forget (eval.forget_split), retain, the utility sets and the
 * membership holdout. Per sample: token-mean NLL, probability, truth ratio from
 * the paraphrased and perturbed candidates, Min-K% score, greedy generation and
 * its ROUGE-L. Aggregates as DESIGN §6 defines them: probability, ROUGE-L
 * recall, truth ratio, model utility (harmonic mean of nine values), forget
 * quality (KS p-value against the reference model's forget-set truth ratios,
 * read from its eval.h5), MUSE-style VerbMem, KnowMem and PrivLeak. Writes
 * eval.h5 (per sample) and summary.json (aggregates, digests, reference). A
 * missing reference is reported in summary.errors and the metrics that need it
 * are null; everything else is still written. */
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>

#include "../analysis/metrics.h"
#include "../io/checkpoint.h"
#include "../io/text/tokenizer.h"
#include "../mpi/fatal.h"
#include "evaluate.h"

#define MAX_SPLITS 12

static int write_h5_split(hid_t f, const split_eval *e, char *err, size_t errlen)
{
    char grp[80];
    snprintf(grp, sizeof grp, "/%.70s", e->split);
    for (char *p = grp + 1; *p; p++)
        if (*p == '/') *p = '_'; /* one level per split: eval/utility_a -> eval_utility_a */
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t g = H5Gcreate2(f, grp, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    H5Pclose(lcpl);
    if (g < 0) {
        snprintf(err, errlen, "cannot create group '%s'", grp);
        return -1;
    }
    int ok = 1;
    hsize_t n = (hsize_t)e->n;
    double *tr = lethe_malloc(sizeof(double) * (e->n + 1), "eval"), *trt = lethe_malloc(sizeof(double) * (e->n + 1), "eval");
    for (int64_t i = 0; i < e->n; i++) tr[i] = trt[i] = NAN;
    if (e->has_cand) {
        eval_truth_ratios(e, 0, tr);
        eval_truth_ratios(e, 1, trt);
    }
    struct {
        const char *name;
        const double *v;
    } cols[] = {{"nll", e->nll},         {"prob", e->prob},          {"nll_para", e->nll_para},
                {"mink", e->mink},       {"rouge_recall", e->rouge_recall},
                {"rouge_f1", e->rouge_f1}, {"truth_ratio", tr},       {"truth_ratio_trained", trt}};
    for (size_t c = 0; c < sizeof cols / sizeof cols[0] && ok; c++) {
        hid_t sp = H5Screate_simple(1, &n, NULL);
        hid_t d = H5Dcreate2(g, cols[c].name, H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        ok = d >= 0 && (n == 0 || H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, cols[c].v) >= 0);
        if (d >= 0) H5Dclose(d);
        H5Sclose(sp);
    }
    if (ok) {
        hid_t sp = H5Screate_simple(1, &n, NULL);
        hid_t d = H5Dcreate2(g, "sample_id", H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        ok = d >= 0 && (n == 0 || H5Dwrite(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, e->sample_id) >= 0);
        if (d >= 0) H5Dclose(d);
        H5Sclose(sp);
    }
    if (ok && e->k > 0) {
        hsize_t dims[2] = {n, (hsize_t)e->k};
        hid_t sp = H5Screate_simple(2, dims, NULL);
        hid_t d = H5Dcreate2(g, "nll_pert", H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        ok = d >= 0 && (n == 0 || H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, e->nll_pert) >= 0);
        if (d >= 0) H5Dclose(d);
        H5Sclose(sp);
    }
    if (ok) {
        hsize_t dims[2] = {n, (hsize_t)e->gen_cap};
        hid_t sp = H5Screate_simple(2, dims, NULL);
        hid_t d = H5Dcreate2(g, "gen_ids", H5T_STD_I32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        ok = d >= 0 && (n == 0 || H5Dwrite(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, e->gen) >= 0);
        if (d >= 0) H5Dclose(d);
        H5Sclose(sp);
        sp = H5Screate_simple(1, &n, NULL);
        d = H5Dcreate2(g, "gen_len", H5T_STD_I32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        ok = ok && d >= 0 && (n == 0 || H5Dwrite(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, e->gen_len) >= 0);
        if (d >= 0) H5Dclose(d);
        H5Sclose(sp);
    }
    free(tr);
    free(trt);
    H5Gclose(g);
    if (!ok) snprintf(err, errlen, "cannot write the datasets of group '%s'", grp);
    return ok ? 0 : -1;
}

static cJSON *num_or_null(double v) { return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull(); }

int job_eval(int argc, char **argv)
{
    lethe_session S;
    session_open(&S, "eval", argc, argv);
    lethe_config *c = &S.cfg;
    const lethe_eval_config *E = &c->eval;
    int ok = c->data.path[0] != 0;
    lethe_check(S.grid.world, ok, 2, "eval: data.path must name an HDF5 token dataset");
    char err[1024];
    dataset_info info;
    if (eval_is_markov(c->data.path)) {
        /* a mixture of Markov chains: KL to the true chains (jobs/eval_markov.c) */
        ok = dataset_inspect(&info, c->data.path, "eval/retain", DATASET_CHECK_META, 0, err,
                             sizeof err) == 0;
        lethe_check(S.grid.world, ok, 2, "eval: %s", err);
        ok = E->batch_size % S.grid.dp == 0 &&
             (E->batch_size / S.grid.dp) % c->layout.micro_batches == 0;
        lethe_check(S.grid.world, ok, 2,
                    "eval: eval.batch_size=%d must be a multiple of layout.dp x "
                    "layout.micro_batches = %d x %d",
                    E->batch_size, S.grid.dp, c->layout.micro_batches);
        session_build_model(&S, E->batch_size, info.t);
        session_load_init(&S);
        session_output(&S);
        eval_markov(&S, info.source_digest);
        session_close(&S);
        return 0;
    }
    ok = E->batch_size % S.grid.dp == 0 && (E->batch_size / S.grid.dp) % c->layout.micro_batches == 0;
    lethe_check(S.grid.world, ok, 2,
                "eval: eval.batch_size=%d must be a multiple of layout.dp x layout.micro_batches = %d x %d",
                E->batch_size, S.grid.dp, c->layout.micro_batches);
    /* the splits and their roles */
    const char *names[MAX_SPLITS];
    int roles[MAX_SPLITS], ns = 0;
    char util[256];
    snprintf(util, sizeof util, "%s", E->utility_splits);
    if (E->forget_split[0]) names[ns] = E->forget_split, roles[ns++] = 0;
    if (E->retain_split[0]) names[ns] = E->retain_split, roles[ns++] = 1;
    for (char *t = strtok(util, ","); t && ns < MAX_SPLITS - 1; t = strtok(NULL, ","))
        if (*t) names[ns] = t, roles[ns++] = 2;
    if (E->holdout_split[0]) names[ns] = E->holdout_split, roles[ns++] = 3;
    int T = 0;
    for (int i = 0; i < ns; i++) {
        ok = dataset_inspect(&info, c->data.path, names[i], DATASET_CHECK_META, 0, err, sizeof err) == 0;
        lethe_check(S.grid.world, ok, 2, "eval: %s", err);
        ok = i == 0 || info.t == T;
        lethe_check(S.grid.world, ok, 2, "eval: split '%s' has rows of %d tokens, '%s' of %d", names[i], info.t, names[0], T);
        T = info.t;
    }
    ok = ns > 0;
    lethe_check(S.grid.world, ok, 2, "eval: no split to evaluate");
    session_build_model(&S, E->batch_size, T);
    session_load_init(&S); /* checked before anything is written */
    session_output(&S);
    tokenizer *tk = NULL;
    if (tokenizer_load(&tk, c->data.path, err, sizeof err)) tk = NULL; /* ROUGE on ids then */
    lethe_generator gen;
    gen_create(&gen, &S.model, T);
    double t0 = MPI_Wtime();
    split_eval ev[MAX_SPLITS];
    for (int i = 0; i < ns; i++) {
        eval_split(&S, &gen, tk, names[i], E->max_rows, E->generate && roles[i] != 3, &ev[i]);
        if (S.grid.rank == 0)
            printf("lethe eval: %-18s %5lld rows  (%.1f s)\n", names[i], (long long)ev[i].n, MPI_Wtime() - t0);
    }
    if (S.grid.rank == 0) {
        cJSON *sum = cJSON_CreateObject(), *splits = cJSON_AddObjectToObject(sum, "splits");
        cJSON *errs = cJSON_CreateArray();
        cJSON_AddStringToObject(sum, "checkpoint", c->init.checkpoint);
        cJSON_AddStringToObject(sum, "dataset", c->data.path);
        cJSON_AddStringToObject(sum, "dataset_digest", info.source_digest);
        cJSON_AddItemToObject(sum, "reference", E->reference[0] ? cJSON_CreateString(E->reference) : cJSON_CreateNull());
        double mu_vals[9];
        int nmu = 0;
        int fi = -1, ri = -1, hi = -1;
        cJSON *roles_j = cJSON_AddObjectToObject(sum, "roles"), *ul = cJSON_CreateArray();
        for (int i = 0; i < ns; i++) {
            split_aggregate a;
            eval_aggregate(&ev[i], roles[i], &a);
            cJSON *o = cJSON_AddObjectToObject(splits, names[i]);
            cJSON_AddNumberToObject(o, "n", (double)ev[i].n);
            double prob = roles[i] == 2 ? a.prob_norm : a.prob;
            cJSON_AddItemToObject(o, "prob", num_or_null(prob));
            cJSON_AddItemToObject(o, "rouge_recall", num_or_null(a.rouge_recall));
            cJSON_AddItemToObject(o, "rouge_f1", num_or_null(a.rouge_f1));
            cJSON_AddItemToObject(o, "truth_ratio", num_or_null(a.truth_ratio));
            if (roles[i] == 0) fi = i;
            if (roles[i] == 1) ri = i;
            if (roles[i] == 3) hi = i;
            if (roles[i] == 0) cJSON_AddStringToObject(roles_j, "forget", names[i]);
            if (roles[i] == 1) cJSON_AddStringToObject(roles_j, "retain", names[i]);
            if (roles[i] == 2) cJSON_AddItemToArray(ul, cJSON_CreateString(names[i]));
            if (roles[i] == 3) cJSON_AddStringToObject(roles_j, "holdout", names[i]);
            if ((roles[i] == 1 || roles[i] == 2) && nmu <= 6) {
                mu_vals[nmu++] = prob;
                mu_vals[nmu++] = a.rouge_recall;
                mu_vals[nmu++] = a.truth_ratio;
            }
        }
        cJSON_AddItemToObject(roles_j, "utility", ul);
        double mu = NAN;
        int mu_ok = nmu == 9;
        for (int i = 0; i < nmu; i++) mu_ok = mu_ok && isfinite(mu_vals[i]) && mu_vals[i] >= 0;
        if (mu_ok && metrics_harmonic_mean(&mu, mu_vals, 9)) mu = NAN;
        if (!mu_ok) cJSON_AddItemToArray(errs, cJSON_CreateString("model_utility: needs retain and two utility sets with candidates and generations"));
        cJSON_AddItemToObject(sum, "model_utility", num_or_null(mu));
        /* forget quality against the reference model's forget-set truth ratios */
        double fq = NAN, lfq = NAN, fqt = NAN, lfqt = NAN, gap = NAN, auc = NAN, auc_ref = NAN;
        if (fi >= 0 && hi >= 0) {
            if (metrics_roc_auc(&auc, ev[fi].mink, ev[fi].n, ev[hi].mink, ev[hi].n)) auc = NAN;
        }
        if (E->reference[0] && fi >= 0 && ev[fi].has_cand) {
            char rpath[1100], dset[160], e2[1024] = "";
            snprintf(rpath, sizeof rpath, "%s/eval.h5", E->reference);
            char grp[80];
            snprintf(grp, sizeof grp, "%s", names[fi]);
            for (char *p = grp; *p; p++)
                if (*p == '/') *p = '_';
            int64_t nr = 0, nrt = 0;
            snprintf(dset, sizeof dset, "/%s/truth_ratio", grp);
            double *rr = eval_read_ref(rpath, dset, &nr, e2, sizeof e2);
            snprintf(dset, sizeof dset, "/%s/truth_ratio_trained", grp);
            double *rrt = rr ? eval_read_ref(rpath, dset, &nrt, e2, sizeof e2) : NULL;
            snprintf(dset, sizeof dset, "/%s/prob", grp);
            int64_t np = 0;
            double *rp = rrt ? eval_read_ref(rpath, dset, &np, e2, sizeof e2) : NULL;
            snprintf(dset, sizeof dset, "/%s/mink", grp);
            int64_t nm = 0;
            double *rm = rp ? eval_read_ref(rpath, dset, &nm, e2, sizeof e2) : NULL;
            if (rm) {
                double *r = lethe_malloc(sizeof(double) * ev[fi].n, "eval"), *rt = lethe_malloc(sizeof(double) * ev[fi].n, "eval");
                eval_truth_ratios(&ev[fi], 0, r);
                eval_truth_ratios(&ev[fi], 1, rt);
                fq = eval_ks_p(r, ev[fi].n, rr, nr, &lfq);
                fqt = eval_ks_p(rt, ev[fi].n, rrt, nrt, &lfqt);
                double pm, pr;
                if (!metrics_mean(&pm, ev[fi].prob, ev[fi].n) && !metrics_mean(&pr, rp, np))
                    gap = pm - pr;
                if (hi >= 0) {
                    snprintf(dset, sizeof dset, "/%s/mink", E->holdout_split);
                    int64_t nh = 0;
                    double *rh = eval_read_ref(rpath, dset, &nh, e2, sizeof e2);
                    if (rh && metrics_roc_auc(&auc_ref, rm, nm, rh, nh)) auc_ref = NAN;
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
        } else if (fi >= 0) {
            cJSON_AddItemToArray(errs, cJSON_CreateString(
                "forget_quality, forget_prob_gap, privleak: no reference model (eval.reference)"));
        }
        cJSON_AddItemToObject(sum, "forget_quality", num_or_null(fq));
        cJSON_AddItemToObject(sum, "log10_forget_quality", num_or_null(lfq));
        cJSON_AddItemToObject(sum, "forget_quality_trained_wording", num_or_null(fqt));
        cJSON_AddItemToObject(sum, "log10_forget_quality_trained_wording", num_or_null(lfqt));
        cJSON_AddItemToObject(sum, "forget_prob_gap", num_or_null(gap));
        cJSON *muse = cJSON_AddObjectToObject(sum, "muse");
        split_aggregate af = {NAN, NAN, NAN, NAN, NAN}, ar = af;
        if (fi >= 0) eval_aggregate(&ev[fi], 0, &af);
        if (ri >= 0) eval_aggregate(&ev[ri], 1, &ar);
        cJSON_AddItemToObject(muse, "verbmem", num_or_null(af.rouge_f1));
        cJSON_AddItemToObject(muse, "knowmem_forget", num_or_null(af.rouge_f1));
        cJSON_AddItemToObject(muse, "knowmem_retain", num_or_null(ar.rouge_f1));
        cJSON_AddItemToObject(muse, "auc", num_or_null(auc));
        double pl = NAN;
        if (isfinite(auc) && isfinite(auc_ref) && metrics_privleak(&pl, auc, auc_ref)) pl = NAN;
        cJSON_AddItemToObject(muse, "privleak", num_or_null(pl));
        cJSON_AddItemToObject(sum, "errors", errs);
        cJSON_AddNumberToObject(sum, "seconds", MPI_Wtime() - t0);
        /* eval.h5 then summary.json, each via a temporary name */
        char path[1100], tmp[1200];
        session_path(&S, "eval.h5", path, sizeof path);
        snprintf(tmp, sizeof tmp, "%s.tmp", path);
        hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
        if (f < 0) lethe_fatal("cannot create '%s'", tmp);
        for (int i = 0; i < ns; i++)
            if (write_h5_split(f, &ev[i], err, sizeof err)) lethe_fatal("'%s': %s", tmp, err);
        if (H5Fclose(f) < 0 || rename(tmp, path)) lethe_fatal("cannot write '%s'", path);
        char *txt = cJSON_Print(sum);
        session_path(&S, "summary.json", path, sizeof path);
        snprintf(tmp, sizeof tmp, "%s.tmp", path);
        FILE *fp = fopen(tmp, "w");
        if (!fp || fputs(txt, fp) < 0 || fputc('\n', fp) < 0 || fclose(fp) || rename(tmp, path))
            lethe_fatal("cannot write '%s'", path);
        printf("lethe eval: model utility %s, forget quality %s, forget prob %.4f; %s/summary.json\n",
               isfinite(mu) ? (snprintf(tmp, 64, "%.4f", mu), tmp) : "n/a",
               isfinite(fq) ? (snprintf(tmp + 64, 64, "%.3g", fq), tmp + 64) : "n/a",
               fi >= 0 ? af.prob : NAN, c->output.dir);
        free(txt);
        cJSON_Delete(sum);
    }
    for (int i = 0; i < ns; i++) split_eval_free(&ev[i]);
    gen_free(&gen);
    if (tk) tokenizer_free(tk);
    session_close(&S);
    return 0;
}
