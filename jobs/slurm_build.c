/* jobs/slurm_build.c — `lethe slurm`: what is submitted. A study file, a node-count
 * sweep of bench jobs or one job becomes the study's job list, and its unfinished jobs
 * become units: one sbatch submission each, a plain job or a job array. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../mpi/fatal.h"
#include "jobs.h"
#include "slurm_impl.h"

/* ---- building the study: a study file, a bench sweep, or one job ------------------------ */

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

static int add_plain_job(study *s, const char *name, const char *kind, cJSON *cfg, cJSON *labels,
                         const int *deps, int ndeps)
{
    if (s->njobs == STUDY_MAX_JOBS) return sl_fail(2, "slurm: more than %d jobs", STUDY_MAX_JOBS);
    study_job *j = &s->jobs[s->njobs];
    memset(j, 0, sizeof *j);
    snprintf(j->name, sizeof j->name, "%s", name);
    snprintf(j->job, sizeof j->job, "%s", kind);
    for (int i = 0; i < ndeps && i < STUDY_MAX_DEPS; i++) j->deps[j->ndeps++] = deps[i];
    if (cfg) {
        char out[700];
        snprintf(out, sizeof out, "%s/%s", s->dir, name);
        study_json_set(cfg, "output.dir", cJSON_CreateString(out));
        if (!(j->config_json = cJSON_Print(cfg))) return sl_fail(1, "slurm: out of memory");
    }
    if (labels && !(j->labels_json = cJSON_Print(labels)))
        return sl_fail(1, "slurm: out of memory");
    s->njobs++;
    return 0;
}

/* A node-count sweep of bench jobs:
 *   {"study": NAME, "bench": {a lethe config}, "nodes": [1, 2, 4], "ntasks_per_node": K,
 *    "scaling": ["strong", "weak"], "report": true}
 * For each node count n and each kind, one bench job on n nodes of K ranks each with
 * layout.dp = n*K / (pp*tp). Strong scaling keeps train.batch_size (the global batch);
 * weak scaling grows it with the ranks: train.batch_size at the smallest node count,
 * times n / n_min. Each job's labels.json holds {"nodes": n, "scaling": kind}, which
 * `lethe report` reads beside bench.jsonl for scaling.png. */
static int build_sweep(ctx_t *c, const cJSON *root, const char *path)
{
    study *s = &c->s;
    static const char *const known[] = {"study",   "bench",  "nodes", "ntasks_per_node",
                                        "scaling", "report", NULL};
    for (const cJSON *i = root->child; i; i = i->next) {
        int ok = 0;
        for (const char *const *k = known; *k; k++) ok |= !strcmp(*k, i->string);
        if (!ok)
            return sl_fail(2,
                           "slurm: sweep '%s': unknown key '%s' (expected study, bench, nodes, "
                           "ntasks_per_node, scaling, report)",
                           path, i->string);
    }
    const cJSON *bench = cJSON_GetObjectItemCaseSensitive(root, "bench");
    const cJSON *nodes = cJSON_GetObjectItemCaseSensitive(root, "nodes");
    const cJSON *tpn = cJSON_GetObjectItemCaseSensitive(root, "ntasks_per_node");
    const cJSON *kinds = cJSON_GetObjectItemCaseSensitive(root, "scaling");
    const cJSON *report = cJSON_GetObjectItemCaseSensitive(root, "report");
    if (!cJSON_IsObject(bench))
        return sl_fail(2, "slurm: sweep '%s': 'bench' must be a lethe config object", path);
    int list[MAX_NODES_LIST], nl = 0;
    if (c->o.n_nodes_list) {
        nl = c->o.n_nodes_list;
        memcpy(list, c->o.nodes_list, sizeof(int) * (size_t)nl);
    } else if (cJSON_IsArray(nodes)) {
        for (const cJSON *x = nodes->child; x; x = x->next) {
            if (!cJSON_IsNumber(x) || x->valuedouble < 1 ||
                x->valuedouble != floor(x->valuedouble) || x->valuedouble > 100000 ||
                nl == MAX_NODES_LIST)
                return sl_fail(2, "slurm: sweep '%s': 'nodes' must be a list of node counts >= 1",
                               path);
            for (int k = 0; k < nl; k++)
                if (list[k] == x->valueint)
                    return sl_fail(2, "slurm: sweep '%s': 'nodes' names %d twice", path,
                                   x->valueint);
            list[nl++] = x->valueint;
        }
    }
    if (!nl)
        return sl_fail(
            2, "slurm: sweep '%s': no node counts (give 'nodes' in the file or --nodes-list)",
            path);
    if (c->o.nodes)
        return sl_fail(2, "slurm: --nodes does not apply to a sweep (use --nodes-list)");
    int K = c->o.ntasks_per_node;
    if (!K && tpn) {
        if (!cJSON_IsNumber(tpn) || tpn->valuedouble < 1 ||
            tpn->valuedouble != floor(tpn->valuedouble))
            return sl_fail(2, "slurm: sweep '%s': 'ntasks_per_node' must be an integer >= 1", path);
        K = tpn->valueint;
    }
    if (!K) K = 1;
    int strong = 0, weak = 0;
    if (!kinds)
        strong = 1;
    else if (cJSON_IsArray(kinds) && kinds->child) {
        for (const cJSON *x = kinds->child; x; x = x->next) {
            if (cJSON_IsString(x) && !strcmp(x->valuestring, "strong"))
                strong = 1;
            else if (cJSON_IsString(x) && !strcmp(x->valuestring, "weak"))
                weak = 1;
            else
                return sl_fail(
                    2, "slurm: sweep '%s': 'scaling' entries must be \"strong\" or \"weak\"", path);
        }
    } else {
        return sl_fail(
            2, "slurm: sweep '%s': 'scaling' must be a list of \"strong\" and/or \"weak\"", path);
    }
    const cJSON *pp = json_get(bench, "layout.pp"), *tp = json_get(bench, "layout.tp");
    const cJSON *bs = json_get(bench, "train.batch_size");
    int P = cJSON_IsNumber(pp) ? pp->valueint : 1, T = cJSON_IsNumber(tp) ? tp->valueint : 1;
    if (P < 1 || T < 1)
        return sl_fail(2, "slurm: sweep '%s': bench layout.pp and layout.tp must be >= 1", path);
    if (!cJSON_IsNumber(bs) || bs->valueint < 1)
        return sl_fail(
            2, "slurm: sweep '%s': bench train.batch_size must be given (the global batch)", path);
    int B = bs->valueint, nmin = list[0];
    for (int k = 1; k < nl; k++) nmin = list[k] < nmin ? list[k] : nmin;
    c->force_nodes = calloc(STUDY_MAX_JOBS, sizeof(int));
    if (!c->force_nodes) return sl_fail(1, "slurm: out of memory");
    int rc = 0;
    for (int mode = 0; mode < 2 && !rc; mode++) {
        if (!(mode ? weak : strong)) continue;
        for (int k = 0; k < nl && !rc; k++) {
            int n = list[k];
            long long ranks = (long long)n * K;
            if (ranks % (P * T))
                return sl_fail(
                    2,
                    "slurm: sweep '%s': %d nodes x %d ranks = %lld ranks is not a multiple "
                    "of layout.pp * layout.tp = %d",
                    path, n, K, ranks, P * T);
            int dp = (int)(ranks / (P * T));
            long long batch = mode ? (long long)B * n / nmin : B;
            if (mode && (long long)B * n % nmin)
                return sl_fail(
                    2, "slurm: sweep '%s': weak scaling batch %d x %d / %d nodes is not an integer",
                    path, B, n, nmin);
            if (batch % dp)
                return sl_fail(
                    2,
                    "slurm: sweep '%s': %s scaling on %d nodes: batch %lld is not divisible "
                    "by layout.dp = %d",
                    path, mode ? "weak" : "strong", n, batch, dp);
            cJSON *cfg = cJSON_Duplicate(bench, 1);
            study_json_set(cfg, "layout.dp", cJSON_CreateNumber(dp));
            study_json_set(cfg, "train.batch_size", cJSON_CreateNumber((double)batch));
            cJSON *lab = cJSON_CreateObject();
            cJSON_AddStringToObject(lab, "study", s->name);
            cJSON_AddNumberToObject(lab, "nodes", n);
            cJSON_AddStringToObject(lab, "scaling", mode ? "weak" : "strong");
            char name[64];
            snprintf(name, sizeof name, "bench-%s-n%d", mode ? "weak" : "strong", n);
            c->force_nodes[s->njobs] = n;
            int prev = s->njobs - 1;
            rc = add_plain_job(s, name, "bench", cfg, lab, &prev, c->o.serial && prev >= 0);
            cJSON_Delete(cfg);
            cJSON_Delete(lab);
        }
    }
    if (!rc && (!report || cJSON_IsTrue(report)))
        rc = add_plain_job(s, "report", "report", NULL, NULL, NULL, 0); /* waits for all */
    return rc;
}

static int build_single(ctx_t *c)
{
    study *s = &c->s;
    static const char *const kinds[] = {"synth",   "train", "unlearn", "eval",
                                        "relearn", "bench", NULL};
    int ok = 0;
    for (const char *const *k = kinds; *k; k++) ok |= !strcmp(*k, c->o.job_kind);
    if (!ok)
        return sl_fail(
            2, "slurm: --job '%s' is not one of synth, train, unlearn, eval, relearn, bench",
            c->o.job_kind);
    for (int i = 0; i < c->o.nsets; i++)
        if (!strncmp(c->o.sets[i], "output.dir=", 11))
            return sl_fail(
                2, "slurm: --set %s: the job's output folder is DIR/NAME (use --dir, --name)",
                c->o.sets[i]);
    char err[1100];
    char *text = sl_read_text(c->o.file, "config", err, sizeof err);
    if (!text) return sl_fail(2, "slurm: %s", err);
    cJSON *cfg = cJSON_Parse(text);
    free(text);
    if (!cJSON_IsObject(cfg)) {
        cJSON_Delete(cfg);
        return sl_fail(2, "slurm: config '%s': not a JSON object (malformed JSON)", c->o.file);
    }
    int rc = add_plain_job(s, s->name, c->o.job_kind, cfg, NULL, NULL, 0);
    cJSON_Delete(cfg);
    return rc;
}

static int absolute(const char *p, char *out, size_t len)
{
    char cwd[PATH_MAX];
    if (p[0] == '/') {
        if (snprintf(out, len, "%s", p) >= (int)len)
            return sl_fail(2, "slurm: path too long: '%s'", p);
        return 0;
    }
    if (!getcwd(cwd, sizeof cwd)) return sl_fail(1, "slurm: getcwd: %s", strerror(errno));
    if (snprintf(out, len, "%s/%s", cwd, p) >= (int)len)
        return sl_fail(2, "slurm: path too long: '%s'", p);
    return 0;
}

int sl_build(ctx_t *c)
{
    char dir[512];
    const char *name = NULL;
    cJSON *root = NULL;
    int rc = 0;
    if (c->o.job_kind) {
        name = c->o.name ? c->o.name : c->o.job_kind;
        /* a control character would end an #SBATCH line (and this message) */
        char shown[160];
        size_t o = 0, ctl = 0;
        for (const char *p = name; *p && o + 1 < sizeof shown; p++) {
            ctl += (unsigned char)*p < 0x20 || *p == 0x7f;
            shown[o++] = (unsigned char)*p < 0x20 || *p == 0x7f ? '?' : *p;
        }
        shown[o] = 0;
        if (!*name || ctl || strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, ".."))
            return sl_fail(2, "slurm: --name '%s' is not a folder name%s", shown,
                           ctl ? " (it holds a control character)" : "");
    } else {
        char err[1100];
        char *text = sl_read_text(c->o.file, "study", err, sizeof err);
        if (!text) return sl_fail(2, "slurm: %s", err);
        root = cJSON_Parse(text);
        free(text);
        if (!cJSON_IsObject(root)) {
            cJSON_Delete(root);
            return sl_fail(2, "slurm: study '%s': not a JSON object (malformed JSON)", c->o.file);
        }
        const cJSON *jn = cJSON_GetObjectItemCaseSensitive(root, "study");
        if (!cJSON_IsString(jn) || !jn->valuestring[0] || strchr(jn->valuestring, '/')) {
            cJSON_Delete(root);
            return sl_fail(2, "slurm: study '%s': 'study' must name the study (no '/')", c->o.file);
        }
        name = jn->valuestring;
    }
    if (c->o.dir) {
        rc = absolute(c->o.dir, dir, sizeof dir);
    } else {
        char rel[300];
        snprintf(rel, sizeof rel, "runs/%.200s", name);
        rc = absolute(rel, dir, sizeof dir);
    }
    size_t dl = strlen(dir);
    while (!rc && dl > 1 && dir[dl - 1] == '/') dir[--dl] = 0;
    for (const char *p = dir; !rc && *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            rc = sl_fail(2, "slurm: --dir holds a control character");
    if (!rc && (c->o.job_kind || cJSON_GetObjectItemCaseSensitive(root, "bench"))) {
        memset(&c->s, 0, sizeof c->s);
        snprintf(c->s.name, sizeof c->s.name, "%s", name);
        snprintf(c->s.dir, sizeof c->s.dir, "%s", dir);
        c->s.jobs = calloc(STUDY_MAX_JOBS, sizeof(study_job));
        if (!c->s.jobs)
            rc = sl_fail(1, "slurm: out of memory");
        else if (c->o.job_kind)
            rc = build_single(c);
        else
            rc = build_sweep(c, root, c->o.file);
    } else if (!rc) {
        if (c->o.serial)
            rc = sl_fail(2, "slurm: --serial applies to a sweep of bench jobs, and '%s' is a study",
                         c->o.file);
        if (!rc && c->o.n_nodes_list)
            rc = sl_fail(2,
                         "slurm: --nodes-list applies to a sweep of bench jobs (a file with "
                         "\"bench\"), and '%s' is a study",
                         c->o.file);
        char err[1024];
        if (!rc && study_load(&c->s, c->o.file, dir, err, sizeof err))
            rc = sl_fail(2, "slurm: %s", err);
        c->is_study = !rc;
    }
    cJSON_Delete(root);
    return rc;
}

/* ---- units: one sbatch submission each ------------------------------------------------- */

static int find_unit_by_group(const ctx_t *c, int group, const char *kind)
{
    for (int u = 0; u < c->nunits; u++) {
        const unit_t *x = &c->units[u];
        if (x->array && !strcmp(x->kind, kind) && c->s.jobs[x->members[0]].array_group == group)
            return u;
    }
    return -1;
}

static int name_taken(const ctx_t *c, const char *name)
{
    for (int j = 0; j < c->s.njobs; j++)
        if (!strcmp(c->s.jobs[j].name, name)) return 1;
    for (int u = 0; u < c->nunits; u++)
        if (c->units[u].array && !strcmp(c->units[u].name, name)) return 1;
    return 0;
}

int sl_make_units(ctx_t *c)
{
    study *s = &c->s;
    c->units = calloc((size_t)s->njobs + 1, sizeof(unit_t));
    if (!c->units) return sl_fail(1, "slurm: out of memory");
    for (int j = 0; j < s->njobs; j++) {
        study_job *J = &s->jobs[j];
        job_plan *p = &c->plan[j];
        int rc = sl_job_ranks(c, J, &p->ranks);
        if (rc) return rc;
        sl_job_nodes(c, j, p->ranks, &p->nodes, &p->per_node);
        p->unit = -1;
        int u = J->array_group > 0 ? find_unit_by_group(c, J->array_group, J->job) : -1;
        if (u < 0) {
            u = c->nunits++;
            unit_t *x = &c->units[u];
            x->kind = J->job;
            x->array = J->array_group > 0;
            x->ranks = p->ranks;
            x->nodes = p->nodes;
            x->per_node = p->per_node;
            snprintf(x->name, sizeof x->name, "%s", J->name);
        }
        unit_t *x = &c->units[u];
        if (x->ranks != p->ranks || x->nodes != p->nodes)
            return sl_fail(
                2,
                "slurm: jobs '%s' and '%s' of one hyper-parameter group need %d ranks on "
                "%d nodes and %d on %d (a job array needs one shape)",
                s->jobs[x->members[0]].name, J->name, x->ranks, x->nodes, p->ranks, p->nodes);
        p->task = x->nmembers;
        if (sl_add_unique(&x->members, &x->nmembers, j)) return 1;
        if (p->status == ST_TODO) p->unit = u;
    }
    /* array names: the members' longest common prefix up to its last '-' */
    for (int u = 0; u < c->nunits; u++) {
        unit_t *x = &c->units[u];
        if (!x->array) continue;
        char pre[160];
        snprintf(pre, sizeof pre, "%s", s->jobs[x->members[0]].name);
        for (int m = 1; m < x->nmembers; m++) {
            const char *n = s->jobs[x->members[m]].name;
            size_t k = 0;
            while (pre[k] && pre[k] == n[k]) k++;
            pre[k] = 0;
        }
        char *dash = strrchr(pre, '-');
        if (dash) *dash = 0;
        x->name[0] = 0;
        if (pre[0] && !name_taken(c, pre))
            snprintf(x->name, sizeof x->name, "%s", pre);
        else
            snprintf(x->name, sizeof x->name, "%s-group%d", x->kind,
                     s->jobs[x->members[0]].array_group);
    }
    /* dependencies of the units that will be submitted */
    for (int j = 0; j < s->njobs; j++) {
        const job_plan *p = &c->plan[j];
        if (p->unit < 0) continue;
        unit_t *x = &c->units[p->unit];
        const study_job *J = &s->jobs[j];
        if (!strcmp(J->job, "report") && !J->config_json) continue; /* below */
        for (int d = 0; d < J->ndeps; d++) {
            const job_plan *q = &c->plan[J->deps[d]];
            if (q->status == ST_DONE) continue;
            if (q->status == ST_QUEUED) {
                if (sl_add_ext(x, q->prev_id)) return 1;
            } else if (q->unit == p->unit) {
                return sl_fail(2, "slurm: job '%s' depends on '%s' of its own job array '%s'",
                               J->name, s->jobs[J->deps[d]].name, x->name);
            } else if (sl_add_unique(&x->deps, &x->ndeps, q->unit)) {
                return 1;
            }
        }
    }
    /* the report reads every result: it waits for everything else (a study job lists at
     * most STUDY_MAX_DEPS direct dependencies), that is for every submission no other one
     * waits for, and for every job still queued from before */
    for (int j = 0; j < s->njobs; j++) {
        const job_plan *p = &c->plan[j];
        if (p->unit < 0 || strcmp(s->jobs[j].job, "report")) continue;
        unit_t *x = &c->units[p->unit];
        for (int k = 0; k < s->njobs; k++) {
            const job_plan *q = &c->plan[k];
            if (k == j) continue;
            if (q->status == ST_QUEUED && sl_add_ext(x, q->prev_id)) return 1;
            if (q->unit < 0 || q->unit == p->unit) continue;
            int waited_for = 0;
            for (int u = 0; u < c->nunits && !waited_for; u++)
                for (int d = 0; u != p->unit && d < c->units[u].ndeps; d++)
                    waited_for |= c->units[u].deps[d] == q->unit;
            if (!waited_for && sl_add_unique(&x->deps, &x->ndeps, q->unit)) return 1;
        }
    }
    /* submission order: dependencies first (Kahn), ties in study order */
    int *done = calloc((size_t)c->nunits + 1, sizeof(int)), next = 0;
    if (!done) return sl_fail(1, "slurm: out of memory");
    for (int u = 0; u < c->nunits; u++) c->units[u].order = -1;
    for (int placed = 1; placed;) {
        placed = 0;
        for (int u = 0; u < c->nunits; u++) {
            unit_t *x = &c->units[u];
            int todo = 0;
            for (int m = 0; m < x->nmembers; m++) todo |= c->plan[x->members[m]].unit == u;
            if (!todo || done[u]) continue;
            int ready = 1;
            for (int d = 0; d < x->ndeps; d++) ready &= done[x->deps[d]];
            if (!ready) continue;
            done[u] = 1;
            x->order = next++;
            placed = 1;
            break; /* restart: keep study order among the ready ones */
        }
    }
    for (int u = 0; u < c->nunits; u++) {
        int todo = 0;
        for (int m = 0; m < c->units[u].nmembers; m++)
            todo |= c->plan[c->units[u].members[m]].unit == u;
        if (todo && !done[u]) {
            free(done);
            return sl_fail(2, "slurm: the jobs' dependencies form a cycle through '%s'",
                           c->units[u].name);
        }
    }
    free(done);
    return 0;
}
