/* jobs/relearn.c — `lethe relearn`: the relearning attack, and its sweep.
 *
 * From an unlearned checkpoint (init.checkpoint), fine-tune on n forget samples
 * (drawn by a seeded shuffle of the forget split) for k steps at a constant
 * learning rate with plain NLL, and evaluate the forget metrics at step 0, every
 * relearn.eval_every steps and at the end: forget probability, ROUGE-L recall,
 * truth ratio, and forget quality against the reference model (eval.reference).
 * A sweep is the grid relearn.sweep_samples x relearn.sweep_lr x
 * relearn.sweep_seeds, walked in one job; each point restarts from the same
 * checkpoint with fresh AdamW moments and writes its own folder
 * (n<N>_lr<LR>_seed<S>/relearn.jsonl + labels.json). Finished points are
 * skipped, so an interrupted sweep resumes where it stopped. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cjson/cJSON.h>

#include "../analysis/metrics.h"
#include "../io/tokenizer.h"
#include "../mpi/fatal.h"
#include "evaluate.h"

#define MAX_GRID 64

static int parse_list(const char *s, double *v, int max, double dflt)
{
    if (!s[0]) {
        v[0] = dflt;
        return 1;
    }
    char buf[128];
    snprintf(buf, sizeof buf, "%s", s);
    int n = 0;
    for (char *t = strtok(buf, ","); t && n < max; t = strtok(NULL, ",")) {
        char *end;
        v[n] = strtod(t, &end);
        if (end == t || *end) return -1;
        n++;
    }
    return n;
}

int job_relearn(int argc, char **argv)
{
    lethe_session S;
    session_open(&S, "relearn", argc, argv);
    lethe_config *c = &S.cfg;
    const lethe_relearn_config *R = &c->relearn;
    double ns[MAX_GRID], lrs[MAX_GRID], seeds[MAX_GRID];
    int nn = parse_list(R->sweep_samples, ns, MAX_GRID, R->samples);
    int nl = parse_list(R->sweep_lr, lrs, MAX_GRID, c->optim.lr);
    int nsd = parse_list(R->sweep_seeds, seeds, MAX_GRID, (double)c->train.seed);
    int ok = nn > 0 && nl > 0 && nsd > 0;
    lethe_check(S.grid.world, ok, 2,
                "relearn: relearn.sweep_samples, sweep_lr and sweep_seeds must be comma-separated "
                "numbers (got '%s', '%s', '%s')",
                R->sweep_samples, R->sweep_lr, R->sweep_seeds);
    ok = c->data.path[0] && c->init.checkpoint[0];
    lethe_check(S.grid.world, ok, 2, "relearn: data.path and init.checkpoint (the unlearned model) are required");
    int cap = c->eval.batch_size;
    for (int i = 0; i < nn; i++) {
        ok = ns[i] >= 1 && ns[i] <= cap && ns[i] == floor(ns[i]);
        lethe_check(S.grid.world, ok, 2,
                    "relearn: %g forget samples: must be a whole number in [1, eval.batch_size=%d]",
                    ns[i], cap);
    }
    for (int i = 0; i < nl; i++) {
        ok = lrs[i] > 0 && lrs[i] <= 10;
        lethe_check(S.grid.world, ok, 2, "relearn: learning rate %g is not in (0, 10]", lrs[i]);
    }
    ok = cap % S.grid.dp == 0 && (cap / S.grid.dp) % c->layout.micro_batches == 0;
    lethe_check(S.grid.world, ok, 2, "relearn: eval.batch_size=%d must be a multiple of layout.dp x layout.micro_batches", cap);
    char err[1024];
    dataset_info info;
    ok = dataset_inspect(&info, c->data.path, c->eval.forget_split, DATASET_CHECK_META, 0, err, sizeof err) == 0;
    lethe_check(S.grid.world, ok, 2, "relearn: %s", err);
    int T = info.t;
    session_build_model(&S, cap, T);
    session_output(&S);
    /* reference truth ratios for forget quality (rank 0) */
    double *ref_tr = NULL;
    int64_t nref = 0;
    if (S.grid.rank == 0 && c->eval.reference[0]) {
        char path[1100], dset[160], grp[80];
        snprintf(path, sizeof path, "%s/eval.h5", c->eval.reference);
        snprintf(grp, sizeof grp, "%s", c->eval.forget_split);
        for (char *p = grp; *p; p++)
            if (*p == '/') *p = '_';
        snprintf(dset, sizeof dset, "/%s/truth_ratio", grp);
        ref_tr = eval_read_ref(path, dset, &nref, err, sizeof err);
        if (!ref_tr) lethe_warn("relearn: forget quality unavailable: %s", err);
    }
    tokenizer *tk = NULL;
    if (tokenizer_load(&tk, c->data.path, err, sizeof err)) tk = NULL;
    lethe_generator gen;
    gen_create(&gen, &S.model, T);
    lethe_model *m = &S.model;
    int Br = cap / S.grid.dp;
    lethe_batch b = {Br, T, lethe_malloc(sizeof(int) * (size_t)Br * T, "batch"),
                     lethe_malloc(sizeof(int) * (size_t)Br * T, "batch")};
    int points = 0, skipped = 0;
    for (int a = 0; a < nn; a++)
        for (int l = 0; l < nl; l++)
            for (int sd = 0; sd < nsd; sd++) {
                int n = (int)ns[a];
                uint64_t seed = (uint64_t)seeds[sd];
                char name[128], dir[700], path[1100], tmp[1200];
                snprintf(name, sizeof name, "n%d_lr%g_seed%llu", n, lrs[l], (unsigned long long)seed);
                snprintf(dir, sizeof dir, "%s/%s", c->output.dir, name);
                snprintf(path, sizeof path, "%s/relearn.jsonl", dir);
                struct stat st;
                int done = stat(path, &st) == 0;
                MPI_CHECK(MPI_Bcast(&done, 1, MPI_INT, 0, S.grid.world));
                if (done) {
                    skipped++;
                    continue;
                }
                FILE *f = NULL;
                if (S.grid.rank == 0) {
                    mkdir(dir, 0755);
                    char lp[1100];
                    snprintf(lp, sizeof lp, "%s/labels.json", dir);
                    FILE *lf = fopen(lp, "w");
                    if (!lf) lethe_fatal("cannot write '%s'", lp);
                    /* the labels of the unlearning run attacked (written beside this job's
                     * config by the study runner), plus the attack's own settings */
                    char pl[1100], *ptxt = NULL;
                    snprintf(pl, sizeof pl, "%s/labels.json", c->output.dir);
                    FILE *pf = fopen(pl, "rb");
                    if (pf) {
                        ptxt = calloc(1, 65536);
                        if (ptxt && fread(ptxt, 1, 65535, pf) == 0) ptxt[0] = 0;
                        fclose(pf);
                    }
                    cJSON *lab = ptxt ? cJSON_Parse(ptxt) : NULL;
                    free(ptxt);
                    if (!cJSON_IsObject(lab)) {
                        cJSON_Delete(lab);
                        lab = cJSON_CreateObject();
                        cJSON_AddStringToObject(lab, "method", "unknown");
                        cJSON_AddStringToObject(lab, "split", c->eval.forget_split);
                    }
                    cJSON_AddNumberToObject(lab, "relearn_samples", n);
                    cJSON_AddNumberToObject(lab, "relearn_lr", lrs[l]);
                    cJSON_AddNumberToObject(lab, "relearn_seed", (double)seed);
                    cJSON_AddNumberToObject(lab, "relearn_steps", R->steps);
                    char *lt = cJSON_Print(lab);
                    if (fputs(lt, lf) < 0 || fclose(lf)) lethe_fatal("cannot write '%s'", lp);
                    free(lt);
                    cJSON_Delete(lab);
                    snprintf(tmp, sizeof tmp, "%s.partial", path);
                    f = fopen(tmp, "w");
                    if (!f) lethe_fatal("cannot write '%s'", tmp);
                }
                /* the same start for every point: the unlearned weights, fresh moments */
                session_load_init(&S);
                memset(m->params.m, 0, sizeof(float) * m->params.total);
                memset(m->params.v, 0, sizeof(float) * m->params.total);
                lethe_optim_config o = c->optim;
                snprintf(o.schedule, sizeof o.schedule, "constant");
                o.lr = (float)lrs[l];
                o.warmup_steps = 0;
                /* the attacker's n samples: the first n of a seeded shuffle of the split */
                loader *ld;
                job_open_loader(&S, &ld, c->eval.forget_split, cap, seed, 1, 0, 1, 0);
                loader_batch *lb;
                int r = loader_next(ld, &lb, err, sizeof err);
                lethe_check(S.grid.world, r > 0, 2, "relearn: %s", r < 0 ? err : "forget split is empty");
                job_fill_batch(&b, 0, Br, lb);
                for (int i = 0; i < Br; i++)
                    if (lb->first + i >= n)
                        for (int t = 0; t < T; t++) b.targets[(size_t)i * T + t] = -1;
                loader_close(ld);
                for (int step = 0; step <= R->steps; step++) {
                    if (step % R->eval_every == 0 || step == R->steps) {
                        split_eval ev;
                        eval_split(&S, &gen, tk, c->eval.forget_split, c->eval.max_rows, c->eval.generate, &ev);
                        if (S.grid.rank == 0) {
                            split_aggregate ag;
                            eval_aggregate(&ev, 0, &ag);
                            double fq = NAN, lfq = NAN;
                            if (ref_tr && ev.has_cand) {
                                double *tr = lethe_malloc(sizeof(double) * (ev.n + 1), "tr");
                                eval_truth_ratios(&ev, 0, tr);
                                fq = eval_ks_p(tr, ev.n, ref_tr, nref, &lfq);
                                free(tr);
                            }
                            char v[4][32];
                            double vals[4] = {ag.prob, ag.rouge_recall, ag.truth_ratio, fq};
                            for (int k = 0; k < 4; k++)
                                if (isfinite(vals[k])) snprintf(v[k], 32, "%.6g", vals[k]);
                                else snprintf(v[k], 32, "null");
                            fprintf(f, "{\"step\":%d,\"forget_prob\":%s,\"rouge_recall\":%s,"
                                       "\"truth_ratio\":%s,\"forget_quality\":%s}\n",
                                    step, v[0], v[1], v[2], v[3]);
                            fflush(f);
                            printf("relearn %s step %3d: forget prob %s  ROUGE %s  truth ratio %s  FQ %s\n",
                                   name, step, v[0], v[1], v[2], v[3]);
                        }
                        split_eval_free(&ev);
                    }
                    if (step == R->steps) break;
                    nll_objective_ctx ctx = {1.0 / model_count_targets(m, &b)};
                    lethe_objective obj = {nll_objective_seq, &ctx};
                    step_stats sst;
                    model_train_step(m, &b, &obj, &o, step, R->steps, &sst);
                }
                if (S.grid.rank == 0 && (fclose(f) || rename(tmp, path)))
                    lethe_fatal("cannot write '%s'", path);
                points++;
            }
    if (S.grid.rank == 0)
        printf("lethe relearn: %d point%s run, %d already done; results under %s/\n", points,
               points == 1 ? "" : "s", skipped, c->output.dir);
    free(ref_tr);
    free(b.tokens);
    free(b.targets);
    gen_free(&gen);
    if (tk) tokenizer_free(tk);
    session_close(&S);
    return 0;
}
