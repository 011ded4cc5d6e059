/* jobs/relearn.c — `lethe relearn`: the relearning attack, and its sweep.
 *
 * From an unlearned checkpoint (init.checkpoint), fine-tune on n forget samples
 * (drawn by a seeded shuffle of the forget split) with plain NLL at a constant
 * learning rate, and evaluate the forget metrics (forget probability, ROUGE-L
 * recall, truth ratio, forget quality against eval.reference) at step 0 and at
 * every k of relearn.k (default: every relearn.eval_every steps to relearn.steps).
 * A sweep is the grid relearn.sweep_samples x relearn.sweep_lr x
 * relearn.sweep_seeds; the k axis is the checkpoints along one run: each point
 * runs once to the largest k. Each point restarts from the same checkpoint with
 * fresh AdamW moments and writes its own folder n<N>_lr<LR>_seed<S>/:
 *   k<K>.json      the forget metrics at step K (one JSON line), written when reached;
 *   relearn.jsonl  the curve (the k<K>.json lines in step order) and labels.json:
 *                  the point is finished.
 * Points run one at a time; the running one keeps its model and AdamW moments at its
 * last recorded k (or where a SIGUSR1 stopped the job: the scheduler's warning) in
 * output.dir/checkpoint.h5, tagged with the point (n, seed and lr, the named values of
 * its /job group), and removes it when finished; so the Slurm glue sees a preempted
 * relearn job as it sees train and unlearn.
 * Resuming: finished points are skipped; an unfinished one continues from the
 * checkpoint when it is that point's and not past a step still missing, and
 * evaluates only the steps that have no k<K>.json yet. Training is deterministic (one
 * fixed batch, the step number drives AdamW), so a resumed curve equals an
 * uninterrupted one. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cjson/cJSON.h>

#include "../analysis/metrics.h"
#include "../io/checkpoint.h"
#include "../io/safefile.h"
#include "../io/text/tokenizer.h"
#include "../mpi/fatal.h"
#include "evaluate.h"
#include "loop.h"

#define MAX_GRID 64
#define MAX_K 64

static int parse_list(const char *s, double *v, int max, double dflt)
{
    if (!s[0]) {
        v[0] = dflt;
        return 1;
    }
    char buf[128];
    snprintf(buf, sizeof buf, "%s", s);
    int n = 0;
    for (char *t = strtok(buf, ","); t; t = strtok(NULL, ",")) {
        char *end;
        if (n == max) return -1;
        v[n] = strtod(t, &end);
        if (end == t || *end) return -1;
        n++;
    }
    return n;
}

/* The evaluation steps after 0: relearn.k, or every eval_every steps and the last. */
static int eval_steps(const lethe_relearn_config *R, int *ks)
{
    int n = 0;
    if (!R->k[0]) {
        for (int s = R->eval_every; s < R->steps && n < MAX_K - 1; s += R->eval_every) ks[n++] = s;
        ks[n++] = R->steps;
        return n;
    }
    double v[MAX_K];
    n = parse_list(R->k, v, MAX_K, 0);
    for (int i = 0; i < n; i++) {
        if (!(v[i] >= 1 && v[i] <= 1e9 && v[i] == floor(v[i])) || (i && v[i] <= v[i - 1]))
            return -1;
        ks[i] = (int)v[i];
    }
    return n;
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Rank 0: text to path through a temporary name. */
static void write_atomic(const char *path, const char *text)
{
    char err[4800];
    if (safe_write_text(path, text, "", err, sizeof err)) lethe_fatal("%s", err);
}

/* Rank 0: the point's labels: the attacked run's (labels.json beside this job's
 * config, written by the study runner) plus the attack's own settings. */
static void write_labels(const lethe_config *c, const char *dir, int n, double lr, uint64_t seed,
                         int steps)
{
    char pl[1100], lp[1100], *ptxt = NULL;
    snprintf(pl, sizeof pl, "%s/labels.json", c->output.dir);
    struct stat st;
    if (lstat(pl, &st) == 0) {
        char err[1400];
        if (!(ptxt = safe_read(pl, "labels", LETHE_MAX_JSON, NULL, err, sizeof err)))
            lethe_fatal("%s", err);
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
    cJSON_AddNumberToObject(lab, "relearn_lr", lr);
    cJSON_AddNumberToObject(lab, "relearn_seed", (double)seed);
    cJSON_AddNumberToObject(lab, "relearn_steps", steps);
    char *lt = cJSON_Print(lab);
    snprintf(lp, sizeof lp, "%s/labels.json", dir);
    write_atomic(lp, lt);
    free(lt);
    cJSON_Delete(lab);
}

/* The forget metrics of the model now: one curve line (malloc'd, rank 0; NULL elsewhere). */
static char *forget_metrics(lethe_session *S, lethe_generator *gen, const tokenizer *tk,
                            const double *ref_tr, int64_t nref, int step)
{
    const lethe_config *c = &S->cfg;
    split_eval ev;
    eval_split(S, gen, tk, c->eval.forget_split, c->eval.max_rows, c->eval.generate, &ev);
    char *line = NULL;
    if (S->grid.rank == 0) {
        split_aggregate ag;
        eval_aggregate(&ev, 0, &ag);
        double fq = NAN, lfq = NAN;
        if (ref_tr && ev.has_cand) {
            double *tr = lethe_malloc(sizeof(double) * (ev.n + 1), "truth ratios");
            eval_truth_ratios(&ev, 0, tr);
            fq = eval_ks_p(tr, ev.n, ref_tr, nref, &lfq);
            free(tr);
        }
        char v[4][32];
        double vals[4] = {ag.prob, ag.rouge_recall, ag.truth_ratio, fq};
        for (int k = 0; k < 4; k++)
            if (isfinite(vals[k]))
                snprintf(v[k], 32, "%.9g", vals[k]);
            else
                snprintf(v[k], 32, "null");
        line = lethe_malloc(256, "curve line");
        snprintf(line, 256,
                 "{\"step\":%d,\"forget_prob\":%s,\"rouge_recall\":%s,\"truth_ratio\":%s,"
                 "\"forget_quality\":%s}\n",
                 step, v[0], v[1], v[2], v[3]);
    }
    split_eval_free(&ev);
    return line;
}

/* What every point shares, and the point being run. */
typedef struct {
    lethe_session *S;
    lethe_generator gen;
    tokenizer *tk;
    double *ref_tr;
    int64_t nref;
    lethe_batch b;
    int steps[MAX_K + 1], nsteps, kmax; /* the recorded steps: 0 and the ks */
    /* the point */
    lethe_optim_config o;
    char name[128], dir[700], curve[1100], ck[1100], kpath[MAX_K + 1][1100];
    int have[MAX_K + 3]; /* [0] finished, [1] checkpoint, [2 + i] step i recorded */
    double tag[3];       /* the checkpoint's job state: the point (n, seed, lr) */
} relearn_job;

/* The model is at `step`: its forget metrics when the step is recorded and missing;
 * such a step (not 0, not the last) is the point's resume point. */
static int relearn_reached(void *job, int step)
{
    relearn_job *J = job;
    int si = 0;
    while (si < J->nsteps && J->steps[si] < step) si++;
    if (si == J->nsteps || J->steps[si] != step || J->have[2 + si]) return 0;
    const char *phase = session_phase(J->S, "eval");
    char *line = forget_metrics(J->S, &J->gen, J->tk, J->ref_tr, J->nref, step);
    session_phase(J->S, phase);
    if (J->S->grid.rank == 0) {
        write_atomic(J->kpath[si], line);
        printf("relearn %s step %3d: %s", J->name, step, line);
        fflush(stdout);
        free(line);
    }
    J->have[2 + si] = 1;
    return step > 0 && step < J->kmax;
}

static void relearn_step(void *job, int step, int total, step_stats *st, double *values)
{
    (void)values;
    relearn_job *J = job;
    nll_objective_ctx ctx = {1.0 / model_count_targets(&J->S->model, &J->b)};
    lethe_objective obj = {nll_objective_seq, &ctx, NULL};
    model_train_step(&J->S->model, &J->b, &obj, &J->o, &J->S->fault.nan, step, J->kmax, st);
    (void)total;
}

/* The checkpoint's job state names the point it belongs to. */
static const char *const point_keys[3] = {"n", "seed", "lr"};

static int is_point(const lethe_ckpt_meta *meta, const double *tag)
{
    int found = 0;
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < meta->n_job; i++)
            found += !strcmp(meta->job_key[i], point_keys[k]) && meta->job_value[i] == tag[k];
    return found == 3 && meta->n_job == 3;
}

/* The start of a point: the checkpoint when it is this point's and not past a missing
 * step, else the unlearned weights with fresh moments. */
static int point_start(relearn_job *J, int first_missing, int last_missing)
{
    lethe_session *S = J->S;
    lethe_model *m = &S->model;
    char err[1024];
    int start = 0;
    if (J->have[1] && first_missing >= 0) {
        lethe_ckpt_meta meta;
        memset(&meta, 0, sizeof meta);
        char *expect = config_to_json(&S->cfg);
        meta.expect_config = expect;
        int ok = ckpt_load(J->ck, &m->w.params, &S->grid, &meta, 1, err, sizeof err) == 0;
        free(expect);
        lethe_check(S->grid.world, ok, 1, "%s", err);
        int mine = is_point(&meta, J->tag);
        start = mine ? (int)meta.step : 0;
        ckpt_meta_free(&meta);
        ok = !mine || (start > 0 && start <= J->kmax);
        lethe_check(S->grid.world, ok, 1, "relearn: '%s' is at step %d, outside (0, %d]", J->ck,
                    start, J->kmax);
        if (start > first_missing)
            start = 0;
        else if (start > 0 && S->grid.rank == 0)
            printf("relearn %s: resuming from %s at step %d\n", J->name, J->ck, start);
    }
    if (start == 0 && last_missing >= 0) {
        session_load_init(S);
        memset(m->w.params.m, 0, sizeof(float) * m->w.params.total);
        memset(m->w.params.v, 0, sizeof(float) * m->w.params.total);
    }
    return start;
}

/* The attacker's n samples: the first n of a seeded shuffle of the forget split. */
static void point_batch(relearn_job *J, int n, uint64_t seed)
{
    lethe_session *S = J->S;
    const lethe_config *c = &S->cfg;
    lethe_batch *b = &J->b;
    char err[1024];
    loader *ld;
    job_open_loader(S, &ld, c->eval.forget_split, c->eval.batch_size, seed, 1, 0, 1, 0);
    loader_batch *lb;
    int r = loader_next(ld, &lb, err, sizeof err);
    lethe_check(S->grid.world, r > 0, 2, "relearn: %s", r < 0 ? err : "forget split is empty");
    job_fill_batch(b, 0, b->B, lb);
    for (int i = 0; i < b->B; i++)
        if (lb->first + i >= n)
            for (int t = 0; t < b->T; t++) b->targets[(size_t)i * b->T + t] = -1;
    loader_close(ld);
}

/* Rank 0, every step recorded: the curve, then the point is finished. */
static void point_curve(relearn_job *J)
{
    size_t len = 0, capb = 256 * (size_t)J->nsteps;
    char *curve = lethe_malloc(capb + 1, "curve");
    for (int i = 0; i < J->nsteps; i++) {
        char err[1400];
        size_t got = 0;
        char *k = safe_read(J->kpath[i], "relearn point", capb - len, &got, err, sizeof err);
        if (!k) lethe_fatal("%s", err);
        if (got == 0) lethe_fatal("relearn point '%s' is empty", J->kpath[i]);
        memcpy(curve + len, k, got);
        free(k);
        len += got;
    }
    curve[len] = 0;
    write_atomic(J->curve, curve);
    free(curve);
    if (remove(J->ck) && errno != ENOENT)
        lethe_warn("cannot remove '%s': %s", J->ck, strerror(errno));
}

/* Rank 0: whether the recorded k<step>.json at path is what relearn_reached writes: one
 * line holding one JSON object, step equal to the file's, and the four forget metrics
 * as numbers or null, nothing else. 1, or 0 with err naming the first fault. */
static int valid_k_file(const char *path, int step, char *err, size_t len)
{
    static const char *const keys[] = {"forget_prob", "rouge_recall", "truth_ratio",
                                       "forget_quality"};
    size_t n = 0;
    /* a FIFO or device there is refused, never read (safe_read) */
    char *buf = safe_read(path, "relearn point", 1023, &n, err, len);
    if (!buf) return 0;
    const char *end = NULL;
    cJSON *o = cJSON_ParseWithOpts(buf, &end, 0);
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(o, "step");
    int ok = cJSON_IsObject(o) && end && !strcmp(end, "\n") && strlen(buf) == n;
    ok = ok && cJSON_GetArraySize(o) == 5 && cJSON_IsNumber(st) && st->valuedouble == step;
    for (int k = 0; ok && k < 4; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, keys[k]);
        ok = cJSON_IsNull(v) || (cJSON_IsNumber(v) && isfinite(v->valuedouble));
    }
    cJSON_Delete(o);
    free(buf);
    if (!ok)
        snprintf(err, len,
                 "relearn: '%s' is not a recorded step: expected one line {\"step\":%d, "
                 "forget_prob, rouge_recall, truth_ratio, forget_quality: numbers or null}; "
                 "remove it and the step is evaluated again",
                 path, step);
    return ok;
}

/* Names the point's files and learns what is there already. */
static void point_files(relearn_job *J, int n, double lr, uint64_t seed)
{
    lethe_session *S = J->S;
    snprintf(J->name, sizeof J->name, "n%d_lr%g_seed%llu", n, lr, (unsigned long long)seed);
    snprintf(J->dir, sizeof J->dir, "%s/%s", S->cfg.output.dir, J->name);
    snprintf(J->curve, sizeof J->curve, "%s/relearn.jsonl", J->dir);
    session_path(S, "checkpoint.h5", J->ck, sizeof J->ck);
    J->tag[0] = n;
    J->tag[1] = (double)seed;
    J->tag[2] = lr;
    for (int i = 0; i < J->nsteps; i++)
        snprintf(J->kpath[i], sizeof J->kpath[i], "%s/k%d.json", J->dir, J->steps[i]);
    /* the point's folder is written into by name: a link there (to a folder outside
     * output.dir) would be written through, so anything but a real folder is refused */
    char err[1400] = "";
    struct stat st;
    int ok = S->grid.rank != 0 || lstat(J->dir, &st) != 0 || S_ISDIR(st.st_mode);
    if (!ok)
        snprintf(err, sizeof err,
                 "relearn: the point folder '%s' is %s (lethe never writes through links; "
                 "remove it)",
                 J->dir, S_ISLNK(st.st_mode) ? "a symbolic link, not a folder" : "not a folder");
    lethe_check(S->grid.world, ok, 1, "%s", err);
    if (S->grid.rank == 0) {
        J->have[0] = file_exists(J->curve);
        J->have[1] = S->cfg.checkpoint.resume && file_exists(J->ck);
        for (int i = 0; i < J->nsteps; i++) J->have[2 + i] = file_exists(J->kpath[i]);
    }
    MPI_CHECK(MPI_Bcast(J->have, J->nsteps + 2, MPI_INT, 0, S->grid.world));
    /* a finished point's curve is final; an unfinished one's steps are copied into it */
    for (int i = 0; ok && !J->have[0] && S->grid.rank == 0 && i < J->nsteps; i++)
        if (J->have[2 + i]) ok = valid_k_file(J->kpath[i], J->steps[i], err, sizeof err);
    lethe_check(S->grid.world, ok, 1, "%s", err);
}

/* One point of the sweep: 0 run, 1 already finished, 2 preempted. */
static int run_point(relearn_job *J, int n, double lr, uint64_t seed)
{
    lethe_session *S = J->S;
    point_files(J, n, lr, seed);
    if (J->have[0]) return 1;
    int first_missing = -1, last_missing = -1;
    for (int i = 0; i < J->nsteps; i++)
        if (!J->have[2 + i]) {
            if (first_missing < 0) first_missing = J->steps[i];
            last_missing = J->steps[i];
        }
    if (S->grid.rank == 0) {
        if (mkdir(J->dir, 0777) && errno != EEXIST)
            lethe_fatal("cannot create '%s': %s", J->dir, strerror(errno));
        write_labels(&S->cfg, J->dir, n, lr, seed, J->kmax);
    }
    int start = point_start(J, first_missing, last_missing);
    J->o = S->cfg.optim;
    J->o.schedule = SCHEDULE_CONSTANT;
    J->o.lr = (float)lr;
    J->o.warmup_steps = 0;
    if (last_missing >= 0) {
        point_batch(J, n, seed);
        loop_spec sp = {.job = J,
                        .total = last_missing,
                        .total_key = "relearn.k",
                        .first = start,
                        .state_keys = point_keys,
                        .state = J->tag,
                        .n_state = 3,
                        .what = J->name,
                        .step = relearn_step,
                        .reached = relearn_reached};
        loop_outcome out;
        if (loop_run(S, &sp, &out) == LOOP_PREEMPTED) return 2;
    }
    if (S->grid.rank == 0) point_curve(J);
    return 0;
}

/* The sweep's axes and recorded steps, checked (exit 2 naming the setting). */
static void relearn_grid(lethe_session *S, double *ns, int *nn, double *lrs, int *nl, double *seeds,
                         int *nsd, relearn_job *J)
{
    const lethe_config *c = &S->cfg;
    const lethe_relearn_config *R = &c->relearn;
    *nn = parse_list(R->sweep_samples, ns, MAX_GRID, R->samples);
    *nl = parse_list(R->sweep_lr, lrs, MAX_GRID, c->optim.lr);
    *nsd = parse_list(R->sweep_seeds, seeds, MAX_GRID, (double)c->train.seed);
    int ok = *nn > 0 && *nl > 0 && *nsd > 0;
    lethe_check(S->grid.world, ok, 2,
                "relearn: relearn.sweep_samples, sweep_lr and sweep_seeds must be comma-separated "
                "numbers, at most %d each (got '%s', '%s', '%s')",
                MAX_GRID, R->sweep_samples, R->sweep_lr, R->sweep_seeds);
    int nk = eval_steps(R, J->steps + 1);
    ok = nk > 0;
    lethe_check(S->grid.world, ok, 2,
                "relearn: relearn.k='%s' must be increasing whole numbers >= 1, comma-separated, "
                "at most %d",
                R->k, MAX_K);
    J->steps[0] = 0;
    J->nsteps = nk + 1;
    J->kmax = J->steps[nk];
    ok = c->data.path[0] && c->init.checkpoint[0];
    lethe_check(S->grid.world, ok, 2,
                "relearn: data.path and init.checkpoint (the unlearned model) are required");
    int cap = c->eval.batch_size;
    for (int i = 0; i < *nn; i++) {
        ok = ns[i] >= 1 && ns[i] <= cap && ns[i] == floor(ns[i]);
        lethe_check(S->grid.world, ok, 2,
                    "relearn: %g forget samples: must be a whole number in [1, eval.batch_size=%d]",
                    ns[i], cap);
    }
    for (int i = 0; i < *nl; i++) {
        ok = lrs[i] > 0 && lrs[i] <= 10;
        lethe_check(S->grid.world, ok, 2, "relearn: learning rate %g is not in (0, 10]", lrs[i]);
    }
    ok = cap % S->grid.dp == 0 && (cap / S->grid.dp) % c->layout.micro_batches == 0;
    lethe_check(
        S->grid.world, ok, 2,
        "relearn: eval.batch_size=%d must be a multiple of layout.dp x layout.micro_batches", cap);
}

/* Rank 0: the reference truth ratios for forget quality (eval.reference), or NULL. */
static double *reference_truth_ratios(const lethe_config *c, int64_t *nref)
{
    char path[1100], dset[160], grp[80], err[1024];
    snprintf(path, sizeof path, "%s/eval.h5", c->eval.reference);
    snprintf(grp, sizeof grp, "%s", c->eval.forget_split);
    for (char *p = grp; *p; p++)
        if (*p == '/') *p = '_';
    snprintf(dset, sizeof dset, "/%s/truth_ratio", grp);
    double *tr = eval_read_ref(path, dset, nref, err, sizeof err);
    if (!tr) lethe_warn("relearn: forget quality unavailable: %s", err);
    return tr;
}

int job_relearn(int argc, char **argv)
{
    lethe_session S;
    session_open(&S, "relearn", argc, argv);
    session_catch_preemption();
    lethe_config *c = &S.cfg;
    relearn_job *J = lethe_calloc(1, sizeof *J, "relearn job"); /* its paths are large */
    J->S = &S;
    double ns[MAX_GRID], lrs[MAX_GRID], seeds[MAX_GRID];
    int nn, nl, nsd;
    relearn_grid(&S, ns, &nn, lrs, &nl, seeds, &nsd, J);
    char err[1024];
    dataset_info info;
    int ok = dataset_inspect(&info, c->data.path, c->eval.forget_split, DATASET_CHECK_META, 0, err,
                             sizeof err) == 0;
    lethe_check(S.grid.world, ok, 2, "relearn: %s", err);
    int T = info.t, cap = c->eval.batch_size;
    session_build_model(&S, cap, T);
    session_output(&S);
    if (S.grid.rank == 0 && c->eval.reference[0]) J->ref_tr = reference_truth_ratios(c, &J->nref);
    if (tokenizer_load(&J->tk, c->data.path, err, sizeof err)) J->tk = NULL;
    gen_create(&J->gen, &S.model, T, eval_gen_batch(&S));
    int Br = cap / S.grid.dp;
    J->b = (lethe_batch){Br, T, lethe_malloc(sizeof(int) * (size_t)Br * T, "batch"),
                         lethe_malloc(sizeof(int) * (size_t)Br * T, "batch"), NULL, NULL};
    int points = 0, skipped = 0, preempted = 0;
    for (int a = 0; a < nn && !preempted; a++)
        for (int l = 0; l < nl && !preempted; l++)
            for (int sd = 0; sd < nsd && !preempted; sd++) {
                int r = run_point(J, (int)ns[a], lrs[l], (uint64_t)seeds[sd]);
                points += r == 0;
                skipped += r == 1;
                preempted = r == 2;
            }
    if (S.grid.rank == 0 && !preempted)
        printf("lethe relearn: %d point%s run, %d already done; results under %s/\n", points,
               points == 1 ? "" : "s", skipped, c->output.dir);
    free(J->ref_tr);
    free(J->b.tokens);
    free(J->b.targets);
    gen_free(&J->gen);
    if (J->tk) tokenizer_free(J->tk);
    free(J);
    session_close(&S);
    return 0;
}
