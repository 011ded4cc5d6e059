/* io/study_expand.c — a study file's expansion into its DAG of jobs: synth -> origin and
 * retrain -> the evals of the reference models -> unlearn per method x grid point x seed
 * -> eval -> relearn -> report. Each job gets its name (its folder), its config (the
 * base config, the --set overrides and the study's dotted overrides of its part), its
 * labels and its dependencies; every config is then parsed as its job will parse it,
 * so a bad key fails now, not hours later when its job's turn comes. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../mpi/fatal.h"
#include "config.h"
#include "study_impl.h"

static void set_path(cJSON *root, const char *key, const cJSON *v)
{
    study_json_set(root, key, cJSON_Duplicate(v, 1));
}

static void set_str(cJSON *root, const char *key, const char *s)
{
    study_json_set(root, key, cJSON_CreateString(s));
}

/* Study and method names become folder names and are written into batch scripts:
 * a small alphabet keeps them from leaving the study folder or meaning anything to
 * a shell. */
static int check_name(const char *path, const char *what, const char *v, size_t max, char *err,
                      size_t errlen)
{
    size_t n = strlen(v);
    int ok = n > 0 && n <= max && v[0] != '.' && v[0] != '-';
    for (size_t i = 0; ok && i < n; i++)
        ok = (v[i] >= 'a' && v[i] <= 'z') || (v[i] >= 'A' && v[i] <= 'Z') ||
             (v[i] >= '0' && v[i] <= '9') || v[i] == '.' || v[i] == '_' || v[i] == '+' ||
             v[i] == '-';
    if (ok) return 0;
    char b[80];
    return lethe_errf(err, errlen,
                      "study '%s': %s '%s' must be 1 to %zu characters of A-Z a-z 0-9 . _ + - "
                      "(not starting with '.' or '-')",
                      path, what, study_shown(v, b, sizeof b), max);
}

/* The dotted overrides of a part of the study (over: NULL when the part is not given). */
static int apply(expansion *x, cJSON *cfg, const cJSON *over, const char *what)
{
    if (!over) return 0;
    if (!cJSON_IsObject(over))
        return lethe_errf(x->err, x->errlen, "study: '%s' must be an object of dotted keys", what);
    for (const cJSON *i = over->child; i; i = i->next) {
        if (study_bad_key(what, i->string, x->err, x->errlen)) return -1;
        set_path(cfg, i->string, i);
    }
    return 0;
}

/* Adds a job (cfg gets its output.dir); its index, or -1 with err set. */
int study_add_job(expansion *x, const char *name, const char *job, cJSON *cfg, const int *deps,
                  int ndeps, const cJSON *lab, int group)
{
    study *s = x->s;
    if (s->njobs == STUDY_MAX_JOBS)
        return lethe_errf(x->err, x->errlen, "study: more than %d jobs", STUDY_MAX_JOBS);
    study_job *j = &s->jobs[s->njobs];
    memset(j, 0, sizeof *j);
    snprintf(j->name, sizeof j->name, "%s", name);
    snprintf(j->job, sizeof j->job, "%s", job);
    for (int i = 0; i < ndeps && i < STUDY_MAX_DEPS; i++)
        if (deps[i] >= 0) j->deps[j->ndeps++] = deps[i];
    if (cfg) {
        char out[700];
        snprintf(out, sizeof out, "%s/%s", s->dir, name);
        set_str(cfg, "output.dir", out);
        j->config_json = cJSON_Print(cfg);
    }
    if (lab) j->labels_json = cJSON_Print(lab);
    j->array_group = group;
    return s->njobs++;
}

/* A copy of src with key set to the string v. */
static cJSON *with_str(const cJSON *src, const char *key, const char *v)
{
    cJSON *c = cJSON_Duplicate(src, 1);
    set_str(c, key, v);
    return c;
}

/* An eval's labels: phase "selection" or "report", setting "<method>-p<k>" (the
 * reference models' "origin-p0", "retrain-p0"; a report-phase template's is added when
 * its select job materialises it). */
static cJSON *labels(const expansion *x, const char *method, const char *split, const char *phase)
{
    cJSON *lab = cJSON_CreateObject();
    cJSON_AddStringToObject(lab, "study", x->s->name);
    cJSON_AddStringToObject(lab, "method", method);
    cJSON_AddStringToObject(lab, "split", split);
    cJSON_AddStringToObject(lab, "phase", phase);
    return lab;
}

static cJSON *reference_labels(const expansion *x, const char *method, const char *split)
{
    cJSON *lab = labels(x, method, split, "report");
    char set[40];
    snprintf(set, sizeof set, "%s-p0", method);
    cJSON_AddStringToObject(lab, "setting", set);
    return lab;
}

/* ---- the parts of the file ---------------------------------------------------------- */

#define NEED(cond, ...)                                                                            \
    if (!rc && !(cond)) rc = lethe_errf(x->err, x->errlen, __VA_ARGS__)

static int check_parts(expansion *x)
{
    const cJSON *root = x->root;
    const char *path = x->path;
    const cJSON *jn = cJSON_GetObjectItemCaseSensitive(root, "study");
    const cJSON *forget = cJSON_GetObjectItemCaseSensitive(root, "forget");
    const cJSON *methods = cJSON_GetObjectItemCaseSensitive(root, "methods");
    int rc = 0;
    NEED(cJSON_IsString(jn) && jn->valuestring[0], "study '%s': 'study' must name the study", path);
    NEED(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(root, "base")),
         "study '%s': 'base' must be a lethe config object", path);
    NEED(cJSON_IsArray(forget) && cJSON_GetArraySize(forget) > 0,
         "study '%s': 'forget' must be a list of forget splits such as [\"forget05\"]", path);
    NEED(cJSON_IsObject(methods) && methods->child,
         "study '%s': 'methods' must name at least one method", path);
    const cJSON *report = cJSON_GetObjectItemCaseSensitive(root, "report");
    NEED(!report || cJSON_IsBool(report), "study '%s': 'report' must be true or false", path);
    if (!rc) rc = check_name(path, "study name", jn->valuestring, 100, x->err, x->errlen);
    for (const cJSON *m = methods ? methods->child : NULL; m && !rc; m = m->next)
        rc = check_name(path, "method name", m->string, 64, x->err, x->errlen);
    return rc;
}

/* The base config of every job: the file's, the --set overrides, the data set. */
static int make_base(expansion *x, char **overrides, int noverrides)
{
    const cJSON *synth = cJSON_GetObjectItemCaseSensitive(x->root, "synth");
    const cJSON *kind = synth ? cJSON_GetObjectItemCaseSensitive(synth, "synth.kind") : NULL;
    const cJSON *source = cJSON_GetObjectItemCaseSensitive(x->root, "source");
    if (source && !cJSON_IsObject(source))
        return lethe_errf(x->err, x->errlen, "study '%s': 'source' must be an object", x->path);
    x->source = cJSON_Duplicate(source, 1);
    snprintf(x->data, sizeof x->data, "%s/data/%s.h5", x->dir,
             source                 ? "tofu"
             : cJSON_IsString(kind) ? kind->valuestring
                                    : "authors");
    x->markov = cJSON_IsString(kind) && !strcmp(kind->valuestring, "markov");
    x->base = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(x->root, "base"), 1);
    int rc = 0;
    for (int i = 0; i < noverrides && !rc; i++) {
        /* --set key=value: the base config of every job */
        const char *eq = strchr(overrides[i], '=');
        NEED(eq && eq > overrides[i] && eq - overrides[i] < 120,
             "study '%s': --set '%s': expected key=value", x->path, overrides[i]);
        if (rc) break;
        char key[128];
        snprintf(key, sizeof key, "%.*s", (int)(eq - overrides[i]), overrides[i]);
        if (!strncmp(key, "source.", 7)) { /* the study's inputs, not a job's key */
            rc = study_source_set(x, key + 7, eq + 1);
            continue;
        }
        cJSON *v = cJSON_Parse(eq + 1);
        study_json_set(x->base, key, v ? v : cJSON_CreateString(eq + 1));
    }
    if (!rc && x->source) rc = study_source_check(x);
    set_str(x->base, "data.source", "hdf5");
    set_str(x->base, "data.path", x->data);
    return rc;
}

/* synth, then the origin model (trained on everything). */
static int add_synth_origin(expansion *x)
{
    if (x->source) return study_add_source(x);
    cJSON *c = cJSON_Duplicate(x->base, 1);
    int rc = apply(x, c, cJSON_GetObjectItemCaseSensitive(x->root, "synth"), "synth");
    set_str(c, "synth.output", x->data);
    x->j_synth = rc ? -1 : study_add_job(x, "synth", "synth", c, NULL, 0, NULL, 0);
    cJSON_Delete(c);
    if (x->j_synth < 0) return -1;
    c = with_str(x->base, "data.split", "train_full");
    rc = apply(x, c, cJSON_GetObjectItemCaseSensitive(x->root, "origin"), "origin");
    x->j_origin = rc ? -1 : study_add_job(x, "origin", "train", c, &x->j_synth, 1, NULL, 0);
    cJSON_Delete(c);
    return x->j_origin < 0 ? -1 : 0;
}

/* ---- a forget level ----------------------------------------------------------------- */

/* The splits of a forget level, and the tag of its jobs' names:
 * authors "forget05" -> forget05 / retain95 / train_retain05, tag "05";
 * markov "forget" (both forget chains), "forget1" or "forget2" -> that split /
 * retain / train_retain, tag = the level. */
static int level_splits(expansion *x, const cJSON *fl, level *L)
{
    int rc = 0;
    if (x->source) return study_source_level(x, fl, L);
    if (x->markov) {
        NEED(cJSON_IsString(fl) &&
                 (!strcmp(fl->valuestring, "forget") || !strcmp(fl->valuestring, "forget1") ||
                  !strcmp(fl->valuestring, "forget2")),
             "study '%s': a markov study's forget level must be \"forget\", \"forget1\" or "
             "\"forget2\"",
             x->path);
        if (rc) return rc;
        snprintf(L->fs, sizeof L->fs, "%s", fl->valuestring);
        snprintf(L->lv, sizeof L->lv, "%s", fl->valuestring);
        snprintf(L->rs, sizeof L->rs, "retain");
        snprintf(L->ts, sizeof L->ts, "train_retain");
        return 0;
    }
    /* "forget05" -> 5 */
    long pct = 0;
    if (cJSON_IsString(fl) && !strncmp(fl->valuestring, "forget", 6) && fl->valuestring[6]) {
        char *end;
        pct = strtol(fl->valuestring + 6, &end, 10);
        if (*end) pct = 0;
    }
    NEED(pct > 0 && pct < 100, "study '%s': forget level must look like \"forget05\"", x->path);
    if (rc) return rc;
    snprintf(L->fs, sizeof L->fs, "forget%02ld", pct);
    snprintf(L->lv, sizeof L->lv, "%02ld", pct);
    snprintf(L->rs, sizeof L->rs, "retain%02ld", 100 - pct);
    snprintf(L->ts, sizeof L->ts, "train_retain%02ld", pct);
    return 0;
}

/* The splits evaluated: those unlearnt on, unless the level says otherwise (TOFU). */
static int level_eval_splits(expansion *x, const cJSON *fl, level *L)
{
    int rc = level_splits(x, fl, L);
    if (!L->efs[0]) snprintf(L->efs, sizeof L->efs, "%s", L->fs);
    if (!L->ers[0]) snprintf(L->ers, sizeof L->ers, "%s", L->rs);
    return rc;
}

/* An eval of this level's model `model` (its folder's model.h5) named name. */
static int add_eval(expansion *x, const level *L, const char *name, const char *model,
                    const int *deps, const cJSON *lab, int group)
{
    char ck[800];
    snprintf(ck, sizeof ck, "%s/%s/model.h5", x->dir, model);
    cJSON *c = with_str(L->eval, "init.checkpoint", ck);
    int j = study_add_job(x, name, "eval", c, deps, 2, lab, group);
    cJSON_Delete(c);
    if (j >= 0) x->evals[x->nevals++] = j;
    return j;
}

/* The retrained model (the gold standard: trained without the forget authors), its eval
 * and the origin model's eval, which compares with it. */
static int add_references(expansion *x, level *L)
{
    char nm[128], rm[128], refdir[700];
    int j_retrain = -1;
    snprintf(rm, sizeof rm, "retrain-%s", L->lv);
    if (x->source) { /* converted from retrain_dirs, or none */
        if (study_source_retrain(x, L, rm, &j_retrain)) return -1;
    } else {
        cJSON *c = with_str(x->base, "data.split", L->ts);
        int rc = apply(x, c, cJSON_GetObjectItemCaseSensitive(x->root, "retrain"), "retrain");
        j_retrain = rc ? -1 : study_add_job(x, rm, "train", c, &x->j_synth, 1, NULL, 0);
        cJSON_Delete(c);
        if (j_retrain < 0) return -1;
    }
    L->eval = cJSON_Duplicate(x->base, 1);
    if (apply(x, L->eval, cJSON_GetObjectItemCaseSensitive(x->root, "eval"), "eval")) return -1;
    set_str(L->eval, "eval.forget_split", L->efs);
    set_str(L->eval, "eval.retain_split", L->ers);
    if (x->source) study_source_eval(x, L, L->eval);
    cJSON *lab;
    L->j_ref = -1;
    if (j_retrain >= 0) {
        lab = reference_labels(x, "retrain", L->fs);
        snprintf(nm, sizeof nm, "eval-retrain-%s", L->lv);
        int d[2] = {j_retrain, -1};
        L->j_ref = add_eval(x, L, nm, rm, d, lab, 0);
        cJSON_Delete(lab);
        if (L->j_ref < 0) return -1;
        snprintf(refdir, sizeof refdir, "%s/eval-retrain-%s", x->dir, L->lv);
        set_str(L->eval, "eval.reference", refdir);
    }
    lab = reference_labels(x, "origin", L->fs);
    snprintf(nm, sizeof nm, "eval-origin-%s", L->lv);
    int d2[2] = {x->j_origin, L->j_ref};
    L->j_eo = add_eval(x, L, nm, "origin", d2, lab, 0);
    cJSON_Delete(lab);
    return L->j_eo < 0 ? -1 : 0;
}

/* A method's fixed value at level L: a string's "{forget}" becomes the level's forget
 * split ("unlearn.preset": "tofu-{forget}" -> "tofu-forget05"); a new item, or v itself
 * when there is nothing to replace. */
static cJSON *level_value(const cJSON *v, const level *L)
{
    const char *p = cJSON_IsString(v) ? strstr(v->valuestring, "{forget}") : NULL;
    if (!p) return (cJSON *)v;
    char b[300];
    snprintf(b, sizeof b, "%.*s%s%s", (int)(p - v->valuestring), v->valuestring, L->fs, p + 8);
    return cJSON_CreateString(b);
}

int study_unlearn_config(expansion *x, const level *L, const study_method *m, int k, int seed,
                         const char *phase, cJSON **u, cJSON **lab)
{
    char ck[800];
    *u = with_str(x->base, "unlearn.method", m->name);
    *lab = labels(x, m->name, L->fs, phase);
    cJSON_AddNumberToObject(*lab, "seed", seed);
    int rc = apply(x, *u, m->fixed, m->name);
    for (const cJSON *mo = rc || !m->fixed ? NULL : m->fixed->child; mo; mo = mo->next) {
        const char *dot = strrchr(mo->string, '.'), *name = dot ? dot + 1 : mo->string;
        cJSON *v = level_value(mo, L);
        if (v != mo) set_path(*u, mo->string, v);
        /* a short name already taken (the method's own "method" when a fixed key sets
         * unlearn.method, or two fixed keys ending alike) labels by the whole key */
        if (cJSON_GetObjectItemCaseSensitive(*lab, name)) name = mo->string;
        if ((cJSON_IsNumber(mo) || cJSON_IsString(mo)) &&
            !cJSON_GetObjectItemCaseSensitive(*lab, name))
            cJSON_AddItemToObject(*lab, name, cJSON_Duplicate(v, 1));
        if (v != mo) cJSON_Delete(v);
    }
    if (k >= 0) study_set_point(m, k, *u, *lab, NULL);
    snprintf(ck, sizeof ck, "%s/origin/model.h5", x->dir);
    set_str(*u, "data.forget_split", L->fs);
    set_str(*u, "data.retain_split", L->rs);
    set_str(*u, "init.checkpoint", ck);
    study_json_set(*u, "train.seed", cJSON_CreateNumber(seed));
    return rc;
}

int study_add_chain(expansion *x, const level *L, const study_method *m, const char *tag, cJSON *u,
                    const cJSON *lab, int dep, int with_relearn, int *j_eval)
{
    char nm[128], model[128], ck[800];
    snprintf(model, sizeof model, "unlearn-%s-%s-%s", L->lv, m->name, tag);
    int j_u = study_add_job(x, model, "unlearn", u, &dep, 1, NULL, x->group);
    snprintf(nm, sizeof nm, "eval-%s-%s-%s", L->lv, m->name, tag);
    int d[2] = {j_u, L->j_ref};
    int j = j_u < 0 ? -1 : add_eval(x, L, nm, model, d, lab, x->group);
    *j_eval = j;
    const cJSON *relearn = cJSON_GetObjectItemCaseSensitive(x->root, "relearn");
    if (j >= 0 && relearn && with_relearn) {
        /* the attack: fine-tunes the unlearned model, evaluating as it goes */
        snprintf(ck, sizeof ck, "%s/%s/model.h5", x->dir, model);
        cJSON *c = cJSON_Duplicate(L->eval, 1);
        j = apply(x, c, relearn, "relearn");
        set_str(c, "init.checkpoint", ck);
        snprintf(nm, sizeof nm, "relearn-%s-%s-%s", L->lv, m->name, tag);
        if (!j) j = study_add_job(x, nm, "relearn", c, d, 2, lab, x->group);
        cJSON_Delete(c);
        if (j >= 0) x->evals[x->nevals++] = j;
    }
    return j < 0 ? -1 : 0;
}

/* A study without a protocol: method m at setting k with seed number si, phase
 * "report": unlearn -> eval (-> relearn). */
static int add_point(expansion *x, const level *L, const study_method *m, int k, int si)
{
    int seed = x->seeds ? cJSON_GetArrayItem(x->seeds, si)->valueint : 1, j;
    char tag[64];
    cJSON *u, *lab;
    int rc = study_unlearn_config(x, L, m, k, seed, "report", &u, &lab);
    snprintf(tag, sizeof tag, "g%d-s%d", k, seed);
    if (!rc) rc = study_add_chain(x, L, m, tag, u, lab, x->j_origin, 1, &j);
    cJSON_Delete(u);
    cJSON_Delete(lab);
    return rc;
}

static int add_level(expansion *x, const cJSON *fl)
{
    level L;
    memset(&L, 0, sizeof L);
    int rc = level_eval_splits(x, fl, &L);
    if (!rc) rc = add_references(x, &L);
    for (int mi = 0; mi < x->nmethods && !rc; mi++) {
        const study_method *m = &x->methods[mi];
        if (x->protocol) {
            rc = study_add_protocol(x, &L, m);
            continue;
        }
        x->group++;
        for (int k = 0; k < m->npoints && !rc; k++)
            for (int si = 0; si < x->nseeds && !rc; si++) rc = add_point(x, &L, m, k, si);
    }
    cJSON_Delete(L.eval);
    return rc;
}
#undef NEED

/* ---- the whole study ---------------------------------------------------------------- */

/* Every job's config is parsed now, as its job will parse it (a select job's is its
 * spec; the templates it carries are the report-phase jobs' own), and names are unique. */
static int check_jobs(const expansion *x)
{
    const study *s = x->s;
    for (int i = 0; i < s->njobs; i++) {
        const study_job *j = &s->jobs[i];
        for (int k = 0; k < i; k++)
            if (!strcmp(s->jobs[k].name, j->name))
                return lethe_errf(x->err, x->errlen, "study '%s': two jobs are named '%s'", x->path,
                                  j->name);
        lethe_config cfg;
        char e2[700];
        /* a select job's config is its spec; convert's and prepare's are their flags */
        int flags =
            !strcmp(j->job, "select") || !strcmp(j->job, "convert") || !strcmp(j->job, "prepare");
        if (j->config_json && !flags &&
            config_parse(&cfg, j->config_json, j->name, NULL, 0, e2, sizeof e2))
            return lethe_errf(x->err, x->errlen, "study '%s': job '%s': %s", x->path, j->name, e2);
    }
    return 0;
}

int study_expand(study *s, const cJSON *root, const char *path, const char *dir, char **overrides,
                 int noverrides, char *err, size_t errlen)
{
    expansion *x = calloc(1, sizeof *x);
    if (!x) return lethe_errf(err, errlen, "study '%s': out of memory", path);
    *x = (expansion){.s = s, .root = root, .path = path, .dir = dir, .err = err, .errlen = errlen};
    int rc = check_parts(x);
    if (rc) {
        free(x);
        return rc;
    }
    snprintf(s->name, sizeof s->name, "%s",
             cJSON_GetObjectItemCaseSensitive(root, "study")->valuestring);
    snprintf(s->dir, sizeof s->dir, "%s", dir);
    if (!(s->jobs = calloc(STUDY_MAX_JOBS, sizeof(study_job))))
        rc = lethe_errf(err, errlen, "study '%s': out of memory", path);
    if (!rc) rc = study_read_methods(x);
    if (!rc) rc = make_base(x, overrides, noverrides);
    if (!rc) rc = add_synth_origin(x);
    const cJSON *forget = cJSON_GetObjectItemCaseSensitive(root, "forget");
    for (int li = 0; li < cJSON_GetArraySize(forget) && !rc; li++)
        rc = add_level(x, cJSON_GetArrayItem(forget, li));
    const cJSON *report = cJSON_GetObjectItemCaseSensitive(root, "report");
    if (!rc && (!report || cJSON_IsTrue(report))) {
        /* the report depends on everything evaluated (at most STUDY_REPORT_DEPS
         * direct dependencies: the runner runs it last anyway) */
        int d[STUDY_REPORT_DEPS], nd = 0;
        for (int i = x->nevals - 1; i >= 0 && nd < STUDY_REPORT_DEPS; i--) d[nd++] = x->evals[i];
        if (study_add_job(x, "report", "report", NULL, d, nd, NULL, 0) < 0) rc = -1;
    }
    if (!rc) rc = check_jobs(x);
    cJSON_Delete(x->base);
    cJSON_Delete(x->source);
    free(x);
    if (rc) study_free(s);
    return rc;
}
