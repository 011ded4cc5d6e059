/* jobs/study.c — expanding a study file into jobs, and `lethe study`, which runs
 * them in dependency order on the job's own MPI ranks, skipping finished ones. */
#include "study.h"

#include <errno.h>
#include <math.h>
#include <mpi.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../io/config.h"
#include "../mpi/fatal.h"
#include "jobs.h"


/* Takes v: sets the dotted key of root to it (objects are created on the way). */
void study_json_set(cJSON *root, const char *key, cJSON *v)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", key);
    cJSON *node = root;
    char *save = NULL, *tok = strtok_r(buf, ".", &save), *next;
    while ((next = strtok_r(NULL, ".", &save))) {
        cJSON *child = cJSON_GetObjectItemCaseSensitive(node, tok);
        if (!cJSON_IsObject(child)) {
            cJSON_DeleteItemFromObjectCaseSensitive(node, tok);
            child = cJSON_AddObjectToObject(node, tok);
        }
        node = child;
        tok = next;
    }
    cJSON_DeleteItemFromObjectCaseSensitive(node, tok);
    cJSON_AddItemToObject(node, tok, v);
}

static void set_path(cJSON *root, const char *key, const cJSON *v)
{
    study_json_set(root, key, cJSON_Duplicate(v, 1));
}

static void set_str(cJSON *root, const char *key, const char *s)
{
    cJSON *v = cJSON_CreateString(s);
    set_path(root, key, v);
    cJSON_Delete(v);
}

static void set_num(cJSON *root, const char *key, double x)
{
    cJSON *v = cJSON_CreateNumber(x);
    set_path(root, key, v);
    cJSON_Delete(v);
}

/* A printable, one-line copy of a hostile string for messages. */
static const char *shown(const char *v, char *buf, size_t len)
{
    size_t o = 0;
    for (; *v && o + 4 < len; v++) buf[o++] = (unsigned char)*v < 0x20 || *v == 0x7f ? '?' : *v;
    if (*v) buf[o++] = '.', buf[o++] = '.', buf[o++] = '.';
    buf[o] = 0;
    return buf;
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
                      path, what, shown(v, b, sizeof b), max);
}

/* "optim.lr": non-empty parts (the config parser judges the names themselves). */
static int bad_key(const char *what, const char *k, char *err, size_t errlen)
{
    size_t n = strlen(k);
    if (n > 0 && n < 256 && k[0] != '.' && k[n - 1] != '.' && !strstr(k, "..")) return 0;
    char b[80];
    return lethe_errf(err, errlen, "study: '%s': key '%s' is not a dotted config key", what,
                      shown(k, b, sizeof b));
}

static int apply(cJSON *root, const cJSON *over, const char *what, char *err, size_t errlen)
{
    if (!over) return 0;
    if (!cJSON_IsObject(over)) return lethe_errf(err, errlen, "study: '%s' must be an object of dotted keys", what);
    for (const cJSON *i = over->child; i; i = i->next) {
        if (bad_key(what, i->string, err, errlen)) return -1;
        set_path(root, i->string, i);
    }
    return 0;
}

static int add_job(study *s, const char *name, const char *job, cJSON *cfg, const int *deps,
                   int ndeps, cJSON *labels, int group, char *err, size_t errlen)
{
    if (s->njobs == STUDY_MAX_JOBS) return lethe_errf(err, errlen, "study: more than %d jobs", STUDY_MAX_JOBS);
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
    if (labels) j->labels_json = cJSON_Print(labels);
    j->array_group = group;
    return s->njobs++;
}

static int level_pct(const char *forget, int *pct)
{
    /* "forget05" -> 5 */
    if (strncmp(forget, "forget", 6) || !forget[6]) return -1;
    char *end;
    long v = strtol(forget + 6, &end, 10);
    if (*end || v <= 0 || v >= 100) return -1;
    *pct = (int)v;
    return 0;
}

int study_load(study *s, const char *path, const char *dir, char *err, size_t errlen)
{
    return study_load_with(s, path, dir, NULL, 0, err, errlen);
}

int study_load_with(study *s, const char *path, const char *dir, char **overrides,
                    int noverrides, char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    FILE *f = fopen(path, "rb");
    if (!f) return lethe_errf(err, errlen, "study '%s': cannot open: %s", path, strerror(errno));
    char *text = malloc(1 << 20);
    size_t n = text ? fread(text, 1, (1 << 20) - 1, f) : 0;
    int more = text && n == (1 << 20) - 1 && fgetc(f) != EOF;
    fclose(f);
    if (!text) return lethe_errf(err, errlen, "study '%s': out of memory", path);
    if (more) {
        free(text);
        return lethe_errf(err, errlen, "study '%s': larger than 1 MiB", path);
    }
    if (memchr(text, 0, n)) {
        free(text);
        return lethe_errf(err, errlen, "study '%s': not a JSON object (NUL byte)", path);
    }
    text[n] = 0;
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return lethe_errf(err, errlen, "study '%s': not a JSON object (malformed JSON)", path);
    }
    static const char *const known[] = {"study",   "base",    "synth", "forget", "origin",
                                        "retrain", "methods", "grid",  "seeds",  "eval",
                                        "relearn", "report",  NULL};
    for (cJSON *i = root->child; i; i = i->next) {
        int ok = 0;
        for (const char *const *k = known; *k; k++) ok |= !strcmp(*k, i->string);
        if (!ok && !strcmp(i->string, "bench")) {
            /* a node-count sweep of bench jobs, run by `lethe slurm` */
            lethe_errf(err, errlen,
                       "study '%s': unknown key 'bench': this is a bench sweep over node "
                       "counts; run it with 'lethe slurm %s --nodes-list 1,2,4' (known keys "
                       "of a study: study, base, synth, forget, origin, retrain, methods, "
                       "grid, seeds, eval, relearn, report)",
                       path, path);
            cJSON_Delete(root);
            return -1;
        }
        if (!ok) {
            char b[80];
            lethe_errf(err, errlen, "study '%s': unknown key '%s'", path, shown(i->string, b, sizeof b));
            cJSON_Delete(root);
            return -1;
        }
    }
    const cJSON *jn = cJSON_GetObjectItemCaseSensitive(root, "study");
    const cJSON *base = cJSON_GetObjectItemCaseSensitive(root, "base");
    const cJSON *forget = cJSON_GetObjectItemCaseSensitive(root, "forget");
    const cJSON *methods = cJSON_GetObjectItemCaseSensitive(root, "methods");
    const cJSON *grid = cJSON_GetObjectItemCaseSensitive(root, "grid");
    const cJSON *seeds = cJSON_GetObjectItemCaseSensitive(root, "seeds");
    const cJSON *relearn = cJSON_GetObjectItemCaseSensitive(root, "relearn");
    const cJSON *report = cJSON_GetObjectItemCaseSensitive(root, "report");
    int rc = 0;
#define NEED(cond, ...)                                                                          \
    if (!rc && !(cond)) rc = lethe_errf(err, errlen, __VA_ARGS__)
    NEED(cJSON_IsString(jn) && jn->valuestring[0], "study '%s': 'study' must name the study", path);
    NEED(cJSON_IsObject(base), "study '%s': 'base' must be a lethe config object", path);
    NEED(cJSON_IsArray(forget) && cJSON_GetArraySize(forget) > 0,
         "study '%s': 'forget' must be a list of forget splits such as [\"forget05\"]", path);
    NEED(cJSON_IsObject(methods) && methods->child, "study '%s': 'methods' must name at least one method", path);
    NEED(!grid || cJSON_IsObject(grid), "study '%s': 'grid' must be an object of lists", path);
    NEED(!seeds || cJSON_IsArray(seeds), "study '%s': 'seeds' must be a list of integers", path);
    if (!rc) rc = check_name(path, "study name", jn->valuestring, 100, err, errlen);
    for (const cJSON *m = methods ? methods->child : NULL; m && !rc; m = m->next)
        rc = check_name(path, "method name", m->string, 64, err, errlen);
    if (rc) {
        cJSON_Delete(root);
        return rc;
    }
    snprintf(s->name, sizeof s->name, "%s", jn->valuestring);
    snprintf(s->dir, sizeof s->dir, "%s", dir);
    s->jobs = calloc(STUDY_MAX_JOBS, sizeof(study_job));
    /* grid: the cartesian product of every key's list */
    int gk = 0, glen[16], npoints = 1;
    const cJSON *gkeys[16];
    for (const cJSON *g = grid ? grid->child : NULL; g && !rc; g = g->next) {
        char gb[80];
        NEED(cJSON_IsArray(g) && cJSON_GetArraySize(g) > 0 && gk < 16,
             "study '%s': grid key '%s' must be a non-empty list", path,
             shown(g->string, gb, sizeof gb));
        if (!rc) rc = bad_key("grid", g->string, err, errlen);
        NEED(npoints <= STUDY_MAX_JOBS / cJSON_GetArraySize(g),
             "study '%s': the grid has more than %d points", path, STUDY_MAX_JOBS);
        if (rc) break;
        gkeys[gk] = g;
        glen[gk++] = cJSON_GetArraySize(g);
        npoints *= cJSON_GetArraySize(g);
    }
    int nseeds = seeds ? cJSON_GetArraySize(seeds) : 1;
    for (int i = 0; i < nseeds && seeds && !rc; i++) {
        const cJSON *sd = cJSON_GetArrayItem(seeds, i);
        NEED(cJSON_IsNumber(sd) && sd->valuedouble >= 0 && sd->valuedouble <= 1e9 &&
                 sd->valuedouble == floor(sd->valuedouble),
             "study '%s': seeds must be integers in [0, 1000000000]", path);
    }

    char data[700];
    cJSON *synth_over = cJSON_GetObjectItemCaseSensitive(root, "synth");
    const cJSON *kind = synth_over ? cJSON_GetObjectItemCaseSensitive(synth_over, "synth.kind") : NULL;
    snprintf(data, sizeof data, "%s/data/%s.h5", dir, cJSON_IsString(kind) ? kind->valuestring : "authors");
    int markov = cJSON_IsString(kind) && !strcmp(kind->valuestring, "markov");
    cJSON *b = cJSON_Duplicate(base, 1);
    for (int i = 0; i < noverrides && !rc; i++) {
        /* --set key=value: the base config of every job */
        const char *eq = strchr(overrides[i], '=');
        NEED(eq && eq > overrides[i] && eq - overrides[i] < 120,
             "study '%s': --set '%s': expected key=value", path, overrides[i]);
        if (rc) break;
        char key[128];
        snprintf(key, sizeof key, "%.*s", (int)(eq - overrides[i]), overrides[i]);
        cJSON *v = cJSON_Parse(eq + 1);
        study_json_set(b, key, v ? v : cJSON_CreateString(eq + 1));
    }
    set_str(b, "data.source", "hdf5");
    set_str(b, "data.path", data);

    cJSON *c = cJSON_Duplicate(b, 1);
    if (!rc) rc = apply(c, synth_over, "synth", err, errlen);
    set_str(c, "synth.output", data);
    int j_synth = rc ? -1 : add_job(s, "synth", "synth", c, NULL, 0, NULL, 0, err, errlen);
    cJSON_Delete(c);
    if (j_synth < 0) rc = -1;

    char ck[800];
    c = cJSON_Duplicate(b, 1);
    set_str(c, "data.split", "train_full");
    if (!rc) rc = apply(c, cJSON_GetObjectItemCaseSensitive(root, "origin"), "origin", err, errlen);
    int j_origin = rc ? -1 : add_job(s, "origin", "train", c, &j_synth, 1, NULL, 0, err, errlen);
    cJSON_Delete(c);
    if (j_origin < 0) rc = -1;
    const cJSON *eval_over = cJSON_GetObjectItemCaseSensitive(root, "eval");
    int evals[STUDY_MAX_JOBS], nevals = 0, group = 0;
    for (int li = 0; li < cJSON_GetArraySize(forget) && !rc; li++) {
        const cJSON *fl = cJSON_GetArrayItem(forget, li);
        /* the splits of a forget level, and the tag of its jobs' names:
         * authors "forget05" -> forget05 / retain95 / train_retain05, tag "05";
         * markov "forget" (both forget chains), "forget1" or "forget2" -> that split /
         * retain / train_retain, tag = the level */
        char fs[32], rs[32], ts[40], lv[16], nm[128], refdir[700];
        if (markov) {
            NEED(cJSON_IsString(fl) && (!strcmp(fl->valuestring, "forget") ||
                                        !strcmp(fl->valuestring, "forget1") ||
                                        !strcmp(fl->valuestring, "forget2")),
                 "study '%s': a markov study's forget level must be \"forget\", \"forget1\" or "
                 "\"forget2\"", path);
            if (rc) break;
            snprintf(fs, sizeof fs, "%s", fl->valuestring);
            snprintf(lv, sizeof lv, "%s", fl->valuestring);
            snprintf(rs, sizeof rs, "retain");
            snprintf(ts, sizeof ts, "train_retain");
        } else {
            int pct = 0;
            NEED(cJSON_IsString(fl) && level_pct(fl->valuestring, &pct) == 0,
                 "study '%s': forget level must look like \"forget05\"", path);
            if (rc) break;
            snprintf(fs, sizeof fs, "forget%02d", pct);
            snprintf(lv, sizeof lv, "%02d", pct);
            snprintf(rs, sizeof rs, "retain%02d", 100 - pct);
            snprintf(ts, sizeof ts, "train_retain%02d", pct);
        }
        /* the gold standard: trained without the forget authors */
        c = cJSON_Duplicate(b, 1);
        set_str(c, "data.split", ts);
        rc = apply(c, cJSON_GetObjectItemCaseSensitive(root, "retrain"), "retrain", err, errlen);
        snprintf(nm, sizeof nm, "retrain-%s", lv);
        int j_retrain = rc ? -1 : add_job(s, nm, "train", c, &j_synth, 1, NULL, 0, err, errlen);
        cJSON_Delete(c);
        /* evaluation config shared by every eval of this level */
        cJSON *e = cJSON_Duplicate(b, 1);
        if (!rc) rc = apply(e, eval_over, "eval", err, errlen);
        set_str(e, "eval.forget_split", fs);
        set_str(e, "eval.retain_split", rs);
        c = cJSON_Duplicate(e, 1);
        snprintf(ck, sizeof ck, "%s/retrain-%s/model.h5", dir, lv);
        set_str(c, "init.checkpoint", ck);
        cJSON *lab = cJSON_CreateObject();
        cJSON_AddStringToObject(lab, "study", s->name);
        cJSON_AddStringToObject(lab, "method", "retrain");
        cJSON_AddStringToObject(lab, "split", fs);
        snprintf(nm, sizeof nm, "eval-retrain-%s", lv);
        int j_ref = rc ? -1 : add_job(s, nm, "eval", c, &j_retrain, 1, lab, 0, err, errlen);
        cJSON_Delete(c);
        cJSON_Delete(lab);
        if (j_ref >= 0) evals[nevals++] = j_ref;
        snprintf(refdir, sizeof refdir, "%s/eval-retrain-%s", dir, lv);
        set_str(e, "eval.reference", refdir);
        c = cJSON_Duplicate(e, 1);
        snprintf(ck, sizeof ck, "%s/origin/model.h5", dir);
        set_str(c, "init.checkpoint", ck);
        lab = cJSON_CreateObject();
        cJSON_AddStringToObject(lab, "study", s->name);
        cJSON_AddStringToObject(lab, "method", "origin");
        cJSON_AddStringToObject(lab, "split", fs);
        snprintf(nm, sizeof nm, "eval-origin-%s", lv);
        int d2[2] = {j_origin, j_ref};
        int j_eo = rc ? -1 : add_job(s, nm, "eval", c, d2, 2, lab, 0, err, errlen);
        cJSON_Delete(c);
        cJSON_Delete(lab);
        if (j_eo >= 0) evals[nevals++] = j_eo;
        for (const cJSON *m = methods->child; m && !rc; m = m->next) {
            group++;
            for (int gp = 0; gp < npoints && !rc; gp++)
                for (int si = 0; si < nseeds && !rc; si++) {
                    int seed = seeds ? cJSON_GetArrayItem(seeds, si)->valueint : 1;
                    cJSON *u = cJSON_Duplicate(b, 1);
                    cJSON *lab2 = cJSON_CreateObject();
                    cJSON_AddStringToObject(lab2, "study", s->name);
                    cJSON_AddStringToObject(lab2, "method", m->string);
                    cJSON_AddStringToObject(lab2, "split", fs);
                    cJSON_AddNumberToObject(lab2, "seed", seed);
                    set_str(u, "unlearn.method", m->string);
                    rc = apply(u, m, m->string, err, errlen);
                    /* a method that is not an object (apply said so) has no keys */
                    for (const cJSON *mo = rc ? NULL : m->child; mo; mo = mo->next) {
                        const char *dot = strrchr(mo->string, '.');
                        if (cJSON_IsNumber(mo) || cJSON_IsString(mo))
                            cJSON_AddItemToObject(lab2, dot ? dot + 1 : mo->string, cJSON_Duplicate(mo, 1));
                    }
                    char tag[64] = "";
                    int rem = gp;
                    for (int k = gk - 1; k >= 0; k--) {
                        const cJSON *v = cJSON_GetArrayItem(gkeys[k], rem % glen[k]);
                        rem /= glen[k];
                        set_path(u, gkeys[k]->string, v);
                        const char *dot = strrchr(gkeys[k]->string, '.');
                        cJSON_DeleteItemFromObjectCaseSensitive(lab2, dot ? dot + 1 : gkeys[k]->string);
                        cJSON_AddItemToObject(lab2, dot ? dot + 1 : gkeys[k]->string, cJSON_Duplicate(v, 1));
                    }
                    snprintf(tag, sizeof tag, "g%d-s%d", gp, seed);
                    set_str(u, "data.forget_split", fs);
                    set_str(u, "data.retain_split", rs);
                    set_str(u, "init.checkpoint", ck);
                    set_num(u, "train.seed", seed);
                    snprintf(nm, sizeof nm, "unlearn-%s-%s-%s", lv, m->string, tag);
                    int j_u = rc ? -1 : add_job(s, nm, "unlearn", u, &j_origin, 1, NULL, group, err, errlen);
                    cJSON_Delete(u);
                    char uck[800];
                    snprintf(uck, sizeof uck, "%s/%s/model.h5", dir, nm);
                    c = cJSON_Duplicate(e, 1);
                    set_str(c, "init.checkpoint", uck);
                    snprintf(nm, sizeof nm, "eval-%s-%s-%s", lv, m->string, tag);
                    int d3[2] = {j_u, j_ref};
                    int j_e = rc ? -1 : add_job(s, nm, "eval", c, d3, 2, lab2, group, err, errlen);
                    cJSON_Delete(c);
                    if (j_e >= 0) evals[nevals++] = j_e;
                    if (relearn && !rc) {
                        c = cJSON_Duplicate(e, 1);
                        rc = apply(c, relearn, "relearn", err, errlen);
                        set_str(c, "init.checkpoint", uck);
                        snprintf(nm, sizeof nm, "relearn-%s-%s-%s", lv, m->string, tag);
                        int j_r = rc ? -1 : add_job(s, nm, "relearn", c, d3, 2, lab2, group, err, errlen);
                        cJSON_Delete(c);
                        if (j_r >= 0) evals[nevals++] = j_r;
                    }
                    cJSON_Delete(lab2);
                    if (j_u < 0 || j_e < 0) rc = -1;
                }
        }
        cJSON_Delete(e);
        if (j_retrain < 0 || j_ref < 0 || j_eo < 0) rc = -1;
    }
    if (!rc && (!report || cJSON_IsTrue(report))) {
        /* the report depends on everything evaluated (at most STUDY_MAX_DEPS direct
         * dependencies: the runner runs it last anyway) */
        int d[STUDY_MAX_DEPS], nd = 0;
        for (int i = nevals - 1; i >= 0 && nd < STUDY_MAX_DEPS; i--) d[nd++] = evals[i];
        if (add_job(s, "report", "report", NULL, d, nd, NULL, 0, err, errlen) < 0) rc = -1;
    }
    cJSON_Delete(b);
    cJSON_Delete(root);
    /* every job's config is checked now, not when the job's turn comes hours later */
    for (int i = 0; i < s->njobs && !rc; i++) {
        const study_job *j = &s->jobs[i];
        for (int k = 0; k < i && !rc; k++)
            NEED(strcmp(s->jobs[k].name, j->name), "study '%s': two jobs are named '%s'", path,
                 j->name);
        lethe_config cfg;
        char e2[700];
        if (!rc && j->config_json &&
            config_parse(&cfg, j->config_json, j->name, NULL, 0, e2, sizeof e2))
            rc = lethe_errf(err, errlen, "study '%s': job '%s': %s", path, j->name, e2);
    }
#undef NEED
    if (rc) study_free(s);
    return rc;
}

void study_free(study *s)
{
    for (int i = 0; s->jobs && i < s->njobs; i++) {
        free(s->jobs[i].config_json);
        free(s->jobs[i].labels_json);
    }
    free(s->jobs);
    memset(s, 0, sizeof *s);
}

static int write_file(const char *path, const char *text)
{
    char tmp[1200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return -1;
    int ok = fputs(text, f) >= 0 && fputc('\n', f) != EOF;
    if (fclose(f)) ok = 0;
    return ok && !rename(tmp, path) ? 0 : -1;
}

int study_write_configs(const study *s, char *err, size_t errlen)
{
    char path[1100];
    mkdir(s->dir, 0777);
    snprintf(path, sizeof path, "%s/data", s->dir);
    mkdir(path, 0777);
    for (int i = 0; i < s->njobs; i++) {
        const study_job *j = &s->jobs[i];
        snprintf(path, sizeof path, "%s/%s", s->dir, j->name);
        if (mkdir(path, 0777) && errno != EEXIST)
            return lethe_errf(err, errlen, "study: cannot create '%s': %s", path, strerror(errno));
        if (j->config_json) {
            snprintf(path, sizeof path, "%s/%s/job.json", s->dir, j->name);
            if (write_file(path, j->config_json)) return lethe_errf(err, errlen, "study: cannot write '%s'", path);
        }
        if (j->labels_json) {
            snprintf(path, sizeof path, "%s/%s/labels.json", s->dir, j->name);
            if (write_file(path, j->labels_json)) return lethe_errf(err, errlen, "study: cannot write '%s'", path);
        }
    }
    return 0;
}

int study_job_done(const study *s, int j)
{
    char path[1100];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s/.done", s->dir, s->jobs[j].name);
    return stat(path, &st) == 0;
}

void study_mark_done(const study *s, int j)
{
    char path[1100];
    snprintf(path, sizeof path, "%s/%s/.done", s->dir, s->jobs[j].name);
    if (write_file(path, "done")) lethe_fatal("study: cannot write '%s'", path);
}

static int run_job(const char *job, int argc, char **argv)
{
    if (!strcmp(job, "synth")) return job_synth(argc, argv);
    if (!strcmp(job, "train")) return job_train(argc, argv);
    if (!strcmp(job, "unlearn")) return job_unlearn(argc, argv);
    if (!strcmp(job, "eval")) return job_eval(argc, argv);
    if (!strcmp(job, "relearn")) return job_relearn(argc, argv);
    if (!strcmp(job, "report")) return job_report(argc, argv);
    lethe_fatal("study: unknown job kind '%s'", job);
}

int job_study(int argc, char **argv)
{
    const char *file = NULL, *dir = NULL;
    char *over[64];
    int dry = 0, rank, nover = 0;
    MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
    char err[1024] = "";
    int ok = 1;
    for (int i = 0; i < argc && ok; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            if (rank == 0)
                printf("usage: mpirun -n RANKS lethe study STUDY.json [--dir DIR] [--dry-run] "
                       "[--set key=value ...]\n\n"
                       "Runs a study (a DAG of synth, train, unlearn, eval, relearn and report "
                       "jobs) on these ranks,\nskipping jobs whose folder holds .done; DIR "
                       "defaults to runs/<study name>. --set overrides a key\nof the study's "
                       "base config for every job (e.g. --set layout.tp=2). See jobs/studies/.\n");
            return 0;
        }
        if (!strcmp(argv[i], "--dir") && i + 1 < argc)
            dir = argv[++i];
        else if (!strcmp(argv[i], "--dry-run"))
            dry = 1;
        else if (!strcmp(argv[i], "--set") && i + 1 < argc && nover < 64)
            over[nover++] = argv[++i];
        else if (argv[i][0] == '-')
            ok = 0, snprintf(err, sizeof err, "study: unknown option '%s'", argv[i]);
        else if (!file)
            file = argv[i];
        else
            ok = 0, snprintf(err, sizeof err, "study: unexpected argument '%s'", argv[i]);
    }
    if (ok && !file) ok = 0, snprintf(err, sizeof err, "study: no study file given (usage: lethe study STUDY.json [--dir DIR] [--dry-run])");
    lethe_check(MPI_COMM_WORLD, ok, 2, "%s", err);
    study s;
    char adir[1024], cwd[400];
    if (!getcwd(cwd, sizeof cwd)) snprintf(cwd, sizeof cwd, ".");
    if (dir)
        snprintf(adir, sizeof adir, "%s%s%s", dir[0] == '/' ? "" : cwd, dir[0] == '/' ? "" : "/", dir);
    ok = 1;
    /* the study name gives the default folder: parse once to learn it */
    if (!dir) {
        study t;
        ok = study_load_with(&t, file, "/", over, nover, err, sizeof err) == 0;
        if (ok) snprintf(adir, sizeof adir, "%s/runs/%.120s", cwd, t.name), study_free(&t);
    }
    if (ok) ok = study_load_with(&s, file, adir, over, nover, err, sizeof err) == 0;
    lethe_check(MPI_COMM_WORLD, ok, 2, "%s", err);
    /* one study per folder (its jobs lock their own sub-folders) */
    job_lock_folder(adir, "study", (long)time(NULL), MPI_COMM_WORLD);
    if (rank == 0) {
        ok = study_write_configs(&s, err, sizeof err) == 0;
        if (ok) {
            char p[1100];
            snprintf(p, sizeof p, "%s/study.json", adir);
            FILE *in = fopen(file, "rb");
            char *buf = malloc(1 << 20);
            size_t n = in && buf ? fread(buf, 1, (1 << 20) - 1, in) : 0;
            if (in) fclose(in);
            if (buf) {
                buf[n] = 0;
                write_file(p, buf);
                free(buf);
            }
        }
    }
    lethe_check(MPI_COMM_WORLD, ok, 1, "%s", err);
    int todo = 0;
    for (int i = 0; i < s.njobs; i++) todo += !study_job_done(&s, i);
    if (rank == 0)
        printf("lethe study %s: %d jobs (%d to run) in %s\n", s.name, s.njobs, todo, adir);
    double t0 = MPI_Wtime();
    for (int i = 0; i < s.njobs && !dry; i++) {
        study_job *j = &s.jobs[i];
        int done = rank == 0 ? study_job_done(&s, i) : 0;
        MPI_CHECK(MPI_Bcast(&done, 1, MPI_INT, 0, MPI_COMM_WORLD));
        if (done) continue;
        char cfg[1100], *args[2];
        if (j->config_json) {
            snprintf(cfg, sizeof cfg, "%.900s/%.120s/job.json", adir, j->name);
            args[0] = cfg;
        } else {
            args[0] = adir;
        }
        args[1] = NULL;
        if (rank == 0) {
            printf("\n==> [%d/%d] %s: lethe %s %s   (%.0f s into the study)\n", i + 1, s.njobs,
                   j->name, j->job, args[0], MPI_Wtime() - t0);
            fflush(stdout);
        }
        int rc = run_job(j->job, 1, args);
        MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &rc, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD));
        lethe_check(MPI_COMM_WORLD, rc == 0, 1, "study: job '%s' failed (exit %d)", j->name, rc);
        /* a job that stopped on the preemption signal wrote its checkpoint and exited 0:
         * it is not done; the study stops here and a rerun resumes that job */
        int pre = session_preempt_pending();
        MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &pre, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD));
        if (pre) {
            if (rank == 0)
                printf("\nlethe study %s: preempted during job '%s'; run the study again to "
                       "resume it from its checkpoint\n", s.name, j->name);
            break;
        }
        if (rank == 0) study_mark_done(&s, i);
    }
    if (rank == 0 && !dry && !session_preempt_pending())
        printf("\nlethe study %s: finished in %.1f s; report in %s/report/results.md\n", s.name,
               MPI_Wtime() - t0, adir);
    if (rank == 0) job_unlock_folder(adir);
    study_free(&s);
    return 0;
}
