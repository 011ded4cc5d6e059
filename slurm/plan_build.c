/* slurm/plan_build.c — what `lethe slurm` submits: a study file (expanded by
 * io/study.h), a node-count sweep of bench jobs, or one job of a config file becomes the
 * job list of the plan, in the folder given by --dir (default runs/<name>). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plan_impl.h"

static const cJSON *json_get(const cJSON *root, const char *key)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", key);
    const cJSON *node = root;
    char *save = NULL;
    for (char *t = strtok_r(buf, ".", &save); t && node; t = strtok_r(NULL, ".", &save))
        node = cJSON_IsObject(node) ? cJSON_GetObjectItemCaseSensitive(node, t) : NULL;
    return node;
}

static int add_plain_job(ctx_t *c, const char *name, const char *kind, cJSON *cfg, cJSON *labels,
                         const int *deps, int ndeps)
{
    study *s = &c->s;
    if (s->njobs == STUDY_MAX_JOBS)
        return slurm_fail(c->err, 2, "slurm: more than %d jobs", STUDY_MAX_JOBS);
    study_job *j = &s->jobs[s->njobs];
    memset(j, 0, sizeof *j);
    snprintf(j->name, sizeof j->name, "%s", name);
    snprintf(j->job, sizeof j->job, "%s", kind);
    for (int i = 0; i < ndeps && i < STUDY_MAX_DEPS; i++) j->deps[j->ndeps++] = deps[i];
    if (cfg) {
        char out[700];
        snprintf(out, sizeof out, "%s/%s", s->dir, name);
        study_json_set(cfg, "output.dir", cJSON_CreateString(out));
        if (!(j->config_json = cJSON_Print(cfg)))
            return slurm_fail(c->err, 1, "slurm: out of memory");
    }
    if (labels && !(j->labels_json = cJSON_Print(labels)))
        return slurm_fail(c->err, 1, "slurm: out of memory");
    s->njobs++;
    return 0;
}

/* ---- a node-count sweep of bench jobs --------------------------------------------------
 *   {"study": NAME, "bench": {a lethe config}, "nodes": [1, 2, 4], "ntasks_per_node": K,
 *    "scaling": ["strong", "weak"], "report": true}
 * For each node count n and each kind, one bench job on n nodes of K ranks each with
 * layout.dp = n*K / (pp*tp). Strong scaling keeps train.batch_size (the global batch);
 * weak scaling grows it with the ranks: train.batch_size at the smallest node count,
 * times n / n_min. Each job's labels.json holds {"nodes": n, "scaling": kind}, which
 * `lethe report` reads beside bench.jsonl for scaling.png. */

typedef struct {
    const char *path;
    const cJSON *bench;
    int list[SLURM_MAX_NODES_LIST], nl; /* the node counts */
    int K;                              /* ranks per node */
    int strong, weak;
    int P, T, B, nmin; /* layout.pp, layout.tp, the batch, the smallest node count */
} sweep;

static int sweep_keys(ctx_t *c, const cJSON *root, const char *path)
{
    static const char *const known[] = {"study",   "bench",  "nodes", "ntasks_per_node",
                                        "scaling", "report", NULL};
    for (const cJSON *i = root->child; i; i = i->next) {
        int ok = 0;
        for (const char *const *k = known; *k; k++) ok |= !strcmp(*k, i->string);
        if (!ok)
            return slurm_fail(c->err, 2,
                              "slurm: sweep '%s': unknown key '%s' (expected study, bench, nodes, "
                              "ntasks_per_node, scaling, report)",
                              path, i->string);
    }
    if (!cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(root, "bench")))
        return slurm_fail(c->err, 2, "slurm: sweep '%s': 'bench' must be a lethe config object",
                          path);
    return 0;
}

/* The node counts (--nodes-list, else the file's) and the ranks per node. */
static int sweep_nodes(ctx_t *c, const cJSON *root, sweep *w)
{
    const cJSON *nodes = cJSON_GetObjectItemCaseSensitive(root, "nodes");
    const cJSON *tpn = cJSON_GetObjectItemCaseSensitive(root, "ntasks_per_node");
    if (c->o.n_nodes_list) {
        w->nl = c->o.n_nodes_list;
        memcpy(w->list, c->o.nodes_list, sizeof(int) * (size_t)w->nl);
    } else if (cJSON_IsArray(nodes)) {
        for (const cJSON *x = nodes->child; x; x = x->next) {
            if (!cJSON_IsNumber(x) || x->valuedouble < 1 ||
                x->valuedouble != floor(x->valuedouble) || x->valuedouble > 100000 ||
                w->nl == SLURM_MAX_NODES_LIST)
                return slurm_fail(c->err, 2,
                                  "slurm: sweep '%s': 'nodes' must be a list of node counts >= 1",
                                  w->path);
            for (int k = 0; k < w->nl; k++)
                if (w->list[k] == x->valueint)
                    return slurm_fail(c->err, 2, "slurm: sweep '%s': 'nodes' names %d twice",
                                      w->path, x->valueint);
            w->list[w->nl++] = x->valueint;
        }
    }
    if (!w->nl)
        return slurm_fail(
            c->err, 2,
            "slurm: sweep '%s': no node counts (give 'nodes' in the file or --nodes-list)",
            w->path);
    if (c->o.nodes)
        return slurm_fail(c->err, 2, "slurm: --nodes does not apply to a sweep (use --nodes-list)");
    w->K = c->o.ntasks_per_node;
    if (!w->K && tpn) {
        if (!cJSON_IsNumber(tpn) || tpn->valuedouble < 1 ||
            tpn->valuedouble != floor(tpn->valuedouble))
            return slurm_fail(
                c->err, 2, "slurm: sweep '%s': 'ntasks_per_node' must be an integer >= 1", w->path);
        w->K = tpn->valueint;
    }
    if (!w->K) w->K = 1;
    return 0;
}

/* The kinds of scaling, the bench layout and its global batch. */
static int sweep_shape(ctx_t *c, const cJSON *root, sweep *w)
{
    const cJSON *kinds = cJSON_GetObjectItemCaseSensitive(root, "scaling");
    if (!kinds)
        w->strong = 1;
    else if (cJSON_IsArray(kinds) && kinds->child) {
        for (const cJSON *x = kinds->child; x; x = x->next) {
            if (cJSON_IsString(x) && !strcmp(x->valuestring, "strong"))
                w->strong = 1;
            else if (cJSON_IsString(x) && !strcmp(x->valuestring, "weak"))
                w->weak = 1;
            else
                return slurm_fail(
                    c->err, 2,
                    "slurm: sweep '%s': 'scaling' entries must be \"strong\" or \"weak\"", w->path);
        }
    } else {
        return slurm_fail(
            c->err, 2, "slurm: sweep '%s': 'scaling' must be a list of \"strong\" and/or \"weak\"",
            w->path);
    }
    const cJSON *pp = json_get(w->bench, "layout.pp"), *tp = json_get(w->bench, "layout.tp");
    const cJSON *bs = json_get(w->bench, "train.batch_size");
    w->P = cJSON_IsNumber(pp) ? pp->valueint : 1;
    w->T = cJSON_IsNumber(tp) ? tp->valueint : 1;
    if (w->P < 1 || w->T < 1)
        return slurm_fail(c->err, 2,
                          "slurm: sweep '%s': bench layout.pp and layout.tp must be >= 1", w->path);
    if (!cJSON_IsNumber(bs) || bs->valueint < 1)
        return slurm_fail(
            c->err, 2, "slurm: sweep '%s': bench train.batch_size must be given (the global batch)",
            w->path);
    w->B = bs->valueint;
    w->nmin = w->list[0];
    for (int k = 1; k < w->nl; k++) w->nmin = w->list[k] < w->nmin ? w->list[k] : w->nmin;
    return 0;
}

/* The bench job of one kind (weak: 1) on n nodes. */
static int sweep_job(ctx_t *c, const sweep *w, int weak, int n)
{
    long long ranks = (long long)n * w->K;
    const char *path = w->path;
    if (ranks % (w->P * w->T))
        return slurm_fail(c->err, 2,
                          "slurm: sweep '%s': %d nodes x %d ranks = %lld ranks is not a multiple "
                          "of layout.pp * layout.tp = %d",
                          path, n, w->K, ranks, w->P * w->T);
    int dp = (int)(ranks / (w->P * w->T));
    long long batch = weak ? (long long)w->B * n / w->nmin : w->B;
    if (weak && (long long)w->B * n % w->nmin)
        return slurm_fail(
            c->err, 2, "slurm: sweep '%s': weak scaling batch %d x %d / %d nodes is not an integer",
            path, w->B, n, w->nmin);
    if (batch % dp)
        return slurm_fail(c->err, 2,
                          "slurm: sweep '%s': %s scaling on %d nodes: batch %lld is not divisible "
                          "by layout.dp = %d",
                          path, weak ? "weak" : "strong", n, batch, dp);
    cJSON *cfg = cJSON_Duplicate(w->bench, 1);
    study_json_set(cfg, "layout.dp", cJSON_CreateNumber(dp));
    study_json_set(cfg, "train.batch_size", cJSON_CreateNumber((double)batch));
    cJSON *lab = cJSON_CreateObject();
    cJSON_AddStringToObject(lab, "study", c->s.name);
    cJSON_AddNumberToObject(lab, "nodes", n);
    cJSON_AddStringToObject(lab, "scaling", weak ? "weak" : "strong");
    char name[64];
    snprintf(name, sizeof name, "bench-%s-n%d", weak ? "weak" : "strong", n);
    c->force_nodes[c->s.njobs] = n;
    int prev = c->s.njobs - 1;
    int rc = add_plain_job(c, name, "bench", cfg, lab, &prev, c->o.serial && prev >= 0);
    cJSON_Delete(cfg);
    cJSON_Delete(lab);
    return rc;
}

static int build_sweep(ctx_t *c, const cJSON *root, const char *path)
{
    sweep w;
    memset(&w, 0, sizeof w);
    w.path = path;
    w.bench = cJSON_GetObjectItemCaseSensitive(root, "bench");
    int rc = c->o.nsets ? slurm_fail(c->err, 2, "slurm: --set applies to --job or a study") : 0;
    if (!rc) rc = sweep_keys(c, root, path);
    if (!rc) rc = sweep_nodes(c, root, &w);
    if (!rc) rc = sweep_shape(c, root, &w);
    if (rc) return rc;
    c->force_nodes = calloc(STUDY_MAX_JOBS, sizeof(int));
    if (!c->force_nodes) return slurm_fail(c->err, 1, "slurm: out of memory");
    for (int weak = 0; weak < 2 && !rc; weak++) {
        if (!(weak ? w.weak : w.strong)) continue;
        for (int k = 0; k < w.nl && !rc; k++) rc = sweep_job(c, &w, weak, w.list[k]);
    }
    const cJSON *report = cJSON_GetObjectItemCaseSensitive(root, "report");
    if (!rc && (!report || cJSON_IsTrue(report)))
        rc = add_plain_job(c, "report", "report", NULL, NULL, NULL, 0); /* waits for all */
    return rc;
}

/* ---- one job, a study ------------------------------------------------------------------ */

static int build_single(ctx_t *c)
{
    static const char *const kinds[] = {"synth",   "train", "unlearn", "eval",
                                        "relearn", "bench", NULL};
    int ok = 0;
    for (const char *const *k = kinds; *k; k++) ok |= !strcmp(*k, c->o.job_kind);
    if (!ok)
        return slurm_fail(
            c->err, 2,
            "slurm: --job '%s' is not one of synth, train, unlearn, eval, relearn, bench",
            c->o.job_kind);
    for (int i = 0; i < c->o.nsets; i++)
        if (!strncmp(c->o.sets[i], "output.dir=", 11))
            return slurm_fail(
                c->err, 2,
                "slurm: --set %s: the job's output folder is DIR/NAME (use --dir, --name)",
                c->o.sets[i]);
    char *text = sl_read_text(c->err, 2, c->o.file, "config");
    if (!text) return 2;
    cJSON *cfg = cJSON_Parse(text);
    free(text);
    if (!cJSON_IsObject(cfg)) {
        cJSON_Delete(cfg);
        return slurm_fail(c->err, 2, "slurm: config '%s': not a JSON object (malformed JSON)",
                          c->o.file);
    }
    int rc = add_plain_job(c, c->s.name, c->o.job_kind, cfg, NULL, NULL, 0);
    cJSON_Delete(cfg);
    return rc;
}

static int build_study(ctx_t *c, const char *dir)
{
    if (c->o.serial)
        return slurm_fail(c->err, 2,
                          "slurm: --serial applies to a sweep of bench jobs, and '%s' is a study",
                          c->o.file);
    if (c->o.n_nodes_list)
        return slurm_fail(c->err, 2,
                          "slurm: --nodes-list applies to a sweep of bench jobs (a file with "
                          "\"bench\"), and '%s' is a study",
                          c->o.file);
    char err[1024];
    if (study_load_with(&c->s, c->o.file, dir, (char **)c->o.sets, c->o.nsets, err, sizeof err))
        return slurm_fail(c->err, 2, "slurm: %s", err);
    c->is_study = 1;
    return 0;
}

/* ---- the name and the folder ----------------------------------------------------------- */

/* A single job's name (--name, else its kind): a folder name. */
static int single_name(ctx_t *c, const char **name)
{
    *name = c->o.name ? c->o.name : c->o.job_kind;
    /* a control character would end an #SBATCH line (and this message) */
    char shown[160];
    size_t o = 0, ctl = 0;
    for (const char *p = *name; *p && o + 1 < sizeof shown; p++) {
        ctl += (unsigned char)*p < 0x20 || *p == 0x7f;
        shown[o++] = (unsigned char)*p < 0x20 || *p == 0x7f ? '?' : *p;
    }
    shown[o] = 0;
    if (!**name || ctl || strchr(*name, '/') || !strcmp(*name, ".") || !strcmp(*name, ".."))
        return slurm_fail(c->err, 2, "slurm: --name '%s' is not a folder name%s", shown,
                          ctl ? " (it holds a control character)" : "");
    return 0;
}

/* The file as JSON and its study name (no '/': it names the default folder). */
static int file_name(ctx_t *c, cJSON **root, const char **name)
{
    char *text = sl_read_text(c->err, 2, c->o.file, "study");
    if (!text) return 2;
    *root = cJSON_Parse(text);
    free(text);
    if (!cJSON_IsObject(*root))
        return slurm_fail(c->err, 2, "slurm: study '%s': not a JSON object (malformed JSON)",
                          c->o.file);
    const cJSON *jn = cJSON_GetObjectItemCaseSensitive(*root, "study");
    if (!cJSON_IsString(jn) || !jn->valuestring[0] || strchr(jn->valuestring, '/'))
        return slurm_fail(c->err, 2, "slurm: study '%s': 'study' must name the study (no '/')",
                          c->o.file);
    *name = jn->valuestring;
    return 0;
}

static int absolute(ctx_t *c, const char *p, char *out, size_t len)
{
    char cwd[PATH_MAX];
    if (p[0] == '/') {
        if (snprintf(out, len, "%s", p) >= (int)len)
            return slurm_fail(c->err, 2, "slurm: path too long: '%s'", p);
        return 0;
    }
    if (!getcwd(cwd, sizeof cwd))
        return slurm_fail(c->err, 1, "slurm: getcwd: %s", strerror(errno));
    if (snprintf(out, len, "%s/%s", cwd, p) >= (int)len)
        return slurm_fail(c->err, 2, "slurm: path too long: '%s'", p);
    return 0;
}

/* The study folder: --dir, else runs/<name>; absolute, no trailing '/'. */
static int study_dir(ctx_t *c, const char *name, char *dir, size_t len)
{
    int rc;
    if (c->o.dir) {
        rc = absolute(c, c->o.dir, dir, len);
    } else {
        char rel[300];
        snprintf(rel, sizeof rel, "runs/%.200s", name);
        rc = absolute(c, rel, dir, len);
    }
    size_t dl = strlen(dir);
    while (!rc && dl > 1 && dir[dl - 1] == '/') dir[--dl] = 0;
    for (const char *p = dir; !rc && *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            rc = slurm_fail(c->err, 2, "slurm: --dir holds a control character");
    return rc;
}

int sl_build(ctx_t *c)
{
    char dir[512];
    const char *name = NULL;
    cJSON *root = NULL;
    int rc = c->o.job_kind ? single_name(c, &name) : file_name(c, &root, &name);
    if (!rc) rc = study_dir(c, name, dir, sizeof dir);
    if (!rc && (c->o.job_kind || cJSON_GetObjectItemCaseSensitive(root, "bench"))) {
        memset(&c->s, 0, sizeof c->s);
        snprintf(c->s.name, sizeof c->s.name, "%s", name);
        snprintf(c->s.dir, sizeof c->s.dir, "%s", dir);
        c->s.jobs = calloc(STUDY_MAX_JOBS, sizeof(study_job));
        if (!c->s.jobs)
            rc = slurm_fail(c->err, 1, "slurm: out of memory");
        else if (c->o.job_kind)
            rc = build_single(c);
        else
            rc = build_sweep(c, root, c->o.file);
    } else if (!rc) {
        rc = build_study(c, dir);
    }
    cJSON_Delete(root);
    return rc;
}
