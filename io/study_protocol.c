/* io/study_protocol.c — a protocol study's jobs for one forget level and method: the
 * selection phase (every setting on every selection seed: unlearn -> eval, phase
 * "selection"), the select job that picks one setting (jobs/select.c, the rule in
 * analysis/select.h), and the report phase (the chosen setting on every report seed:
 * unlearn -> eval -> relearn, phase "report"). The report-phase jobs are not known
 * until the select job has run: their configs and labels here are templates, carried
 * in the select job's own job.json (its spec) with every candidate's overrides and
 * labels; study_materialise writes a candidate's job.json and labels.json for them.
 * The select job's spec holds every template, so a changed report-phase job shows as a
 * changed select job (study.c's check of finished jobs). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../mpi/fatal.h"
#include "study_impl.h"

/* The selection phase: candidate k's entry (setting, overrides, labels, evals) for every
 * setting, and each eval's index in deps after the origin's eval. */
static int add_selection(expansion *x, const level *L, const study_method *m, cJSON *cands,
                         int *deps, int *nd)
{
    int rc = 0;
    x->group++;
    for (int k = 0; k < m->npoints && !rc; k++) {
        cJSON *cand = cJSON_CreateObject(), *over = cJSON_CreateObject(),
              *lab = cJSON_CreateObject();
        study_set_point(m, k, NULL, lab, over);
        cJSON_AddItemToObject(cand, "setting",
                              cJSON_Duplicate(cJSON_GetObjectItem(lab, "setting"), 1));
        cJSON_AddItemToObject(cand, "overrides", over);
        cJSON_AddItemToObject(cand, "labels", lab);
        cJSON *evals = cJSON_AddArrayToObject(cand, "evals");
        cJSON_AddItemToArray(cands, cand);
        for (int si = 0; si < x->nseeds && !rc; si++) {
            int seed = cJSON_GetArrayItem(x->seeds, si)->valueint, je = -1;
            char tag[64], ev[800];
            cJSON *u, *l;
            if (*nd == STUDY_MAX_DEPS)
                return lethe_errf(x->err, x->errlen,
                                  "study '%s': method '%s': more than %d settings x selection "
                                  "seeds (a select job reads at most that many evals)",
                                  x->path, m->name, STUDY_MAX_DEPS - 1);
            rc = study_unlearn_config(x, L, m, k, seed, "selection", &u, &l);
            snprintf(tag, sizeof tag, "p%d-s%d", k, seed);
            if (!rc) rc = study_add_chain(x, L, m, tag, u, l, x->j_origin, 0, &je);
            cJSON_Delete(u);
            cJSON_Delete(l);
            if (rc) break;
            deps[(*nd)++] = je;
            snprintf(ev, sizeof ev, "%s/%s", x->dir, x->s->jobs[je].name);
            cJSON_AddItemToArray(evals, cJSON_CreateString(ev));
        }
    }
    return rc;
}

/* The spec's entry of report-phase job j: its folder, whether the setting's overrides
 * go into its config (the unlearn job's), its config and labels templates. */
static cJSON *job_entry(const expansion *x, int j)
{
    const study_job *J = &x->s->jobs[j];
    cJSON *e = cJSON_CreateObject();
    char dir[700];
    snprintf(dir, sizeof dir, "%s/%s", x->dir, J->name);
    cJSON_AddStringToObject(e, "dir", dir);
    cJSON_AddBoolToObject(e, "tuned", !strcmp(J->job, "unlearn"));
    cJSON_AddItemToObject(e, "config", cJSON_Parse(J->config_json));
    cJSON_AddItemToObject(e, "labels",
                          J->labels_json ? cJSON_Parse(J->labels_json) : cJSON_CreateNull());
    return e;
}

int study_add_protocol(expansion *x, const level *L, const study_method *m)
{
    int deps[STUDY_MAX_DEPS], nd = 0;
    deps[nd++] = L->j_eo; /* the origin's model utility */
    cJSON *spec = cJSON_CreateObject(), *sel = cJSON_AddObjectToObject(spec, "select");
    char name[128], out[700], eo[700];
    snprintf(name, sizeof name, "select-%s-%s", L->lv, m->name);
    snprintf(out, sizeof out, "%s/%s", x->dir, name);
    snprintf(eo, sizeof eo, "%s/%s", x->dir, x->s->jobs[L->j_eo].name);
    cJSON_AddStringToObject(sel, "study", x->s->name);
    cJSON_AddStringToObject(sel, "method", m->name);
    cJSON_AddStringToObject(sel, "forget", L->fs);
    cJSON_AddStringToObject(sel, "rule", x->rule);
    cJSON_AddNumberToObject(sel, "tau", x->tau);
    cJSON_AddStringToObject(sel, "origin_eval", eo);
    cJSON_AddStringToObject(sel, "output_dir", out);
    cJSON *cands = cJSON_AddArrayToObject(sel, "candidates");
    int rc = add_selection(x, L, m, cands, deps, &nd);
    int j_sel = rc ? -1 : study_add_job(x, name, "select", NULL, deps, nd, NULL, 0);
    /* the report phase: templates, materialised by the select job */
    x->group++;
    for (int si = 0; si < x->nreport && j_sel >= 0 && !rc; si++) {
        int seed = cJSON_GetArrayItem(x->report_seeds, si)->valueint, je;
        char tag[64];
        cJSON *u, *l;
        rc = study_unlearn_config(x, L, m, -1, seed, "report", &u, &l);
        snprintf(tag, sizeof tag, "report-s%d", seed);
        if (!rc) rc = study_add_chain(x, L, m, tag, u, l, j_sel, 1, &je);
        cJSON_Delete(u);
        cJSON_Delete(l);
    }
    if (j_sel < 0) rc = -1;
    cJSON *jobs = rc ? NULL : cJSON_AddArrayToObject(sel, "jobs");
    for (int j = j_sel + 1; !rc && j < x->s->njobs; j++) {
        x->s->jobs[j].select = j_sel + 1;
        cJSON_AddItemToArray(jobs, job_entry(x, j));
    }
    if (!rc && !(x->s->jobs[j_sel].config_json = cJSON_Print(spec)))
        rc = lethe_errf(x->err, x->errlen, "study '%s': out of memory", x->path);
    cJSON_Delete(spec);
    return rc;
}

/* ---- materialising a candidate ------------------------------------------------------ */

static int write_json(const char *dir, const char *file, const cJSON *v, char *err, size_t errlen)
{
    char path[900];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    char *t = cJSON_Print(v);
    int rc = t ? study_write_text(path, t, "\n", err, errlen)
               : lethe_errf(err, errlen, "study: out of memory");
    cJSON_free(t);
    return rc;
}

int study_materialise(const cJSON *spec, int k, char *err, size_t errlen)
{
    const cJSON *sel = cJSON_GetObjectItemCaseSensitive(spec, "select");
    const cJSON *cand = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(sel, "candidates"), k);
    const cJSON *jobs = cJSON_GetObjectItemCaseSensitive(sel, "jobs");
    const cJSON *over = cJSON_GetObjectItemCaseSensitive(cand, "overrides");
    const cJSON *clab = cJSON_GetObjectItemCaseSensitive(cand, "labels");
    if (!cJSON_IsObject(over) || !cJSON_IsObject(clab) || !cJSON_IsArray(jobs))
        return lethe_errf(err, errlen, "select: the spec has no candidate %d, or no jobs", k);
    const cJSON *e;
    cJSON_ArrayForEach(e, jobs)
    {
        const cJSON *dir = cJSON_GetObjectItemCaseSensitive(e, "dir");
        const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(e, "config");
        const cJSON *lab = cJSON_GetObjectItemCaseSensitive(e, "labels");
        if (!cJSON_IsString(dir) || !cJSON_IsObject(cfg))
            return lethe_errf(err, errlen, "select: a job of the spec has no dir or config");
        char done[900];
        struct stat st;
        snprintf(done, sizeof done, "%s/.done", dir->valuestring);
        if (!stat(done, &st)) continue; /* a finished job keeps its files */
        if (mkdir(dir->valuestring, 0777) && errno != EEXIST)
            return lethe_errf(err, errlen, "select: cannot create '%s': %s", dir->valuestring,
                              strerror(errno));
        cJSON *c = cJSON_Duplicate(cfg, 1);
        for (const cJSON *o = over->child; o && cJSON_IsTrue(cJSON_GetObjectItem(e, "tuned"));
             o = o->next)
            study_json_set(c, o->string, cJSON_Duplicate(o, 1));
        int rc = write_json(dir->valuestring, "job.json", c, err, errlen);
        cJSON_Delete(c);
        if (rc) return rc;
        if (!cJSON_IsObject(lab)) continue;
        cJSON *l = cJSON_Duplicate(lab, 1);
        for (const cJSON *o = clab->child; o; o = o->next) {
            cJSON_DeleteItemFromObjectCaseSensitive(l, o->string);
            cJSON_AddItemToObject(l, o->string, cJSON_Duplicate(o, 1));
        }
        rc = write_json(dir->valuestring, "labels.json", l, err, errlen);
        cJSON_Delete(l);
        if (rc) return rc;
    }
    return 0;
}
