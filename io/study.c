/* io/study.c — study files: reading one (at most 1 MiB of JSON, its top-level keys
 * known), the dotted-key setter the expansion and `lethe slurm` share, and the files a
 * study folder holds (each job's job.json and labels.json, the .done markers), written
 * through temporary names. The expansion into jobs is study_expand.c. */
#include "study.h"
#include "safefile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../mpi/fatal.h"
#include "config.h"
#include "study_impl.h"

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

const char *study_shown(const char *v, char *buf, size_t len)
{
    config_shown(v, buf, len);
    return buf;
}

/* The study file as a JSON object: at most 1 MiB, no NUL byte. NULL with err set. */
static cJSON *read_json(const char *path, char *err, size_t errlen)
{
    FILE *f = safe_open_read(path, "study", LETHE_MAX_JSON, NULL, err, errlen);
    if (!f) return NULL;
    char *text = malloc(1 << 20);
    size_t n = text ? fread(text, 1, (1 << 20) - 1, f) : 0;
    int more = text && n == (1 << 20) - 1 && fgetc(f) != EOF;
    fclose(f);
    if (!text) return lethe_errf(err, errlen, "study '%s': out of memory", path), NULL;
    if (more || memchr(text, 0, n)) {
        free(text);
        lethe_errf(err, errlen,
                   more ? "study '%s': larger than 1 MiB"
                        : "study '%s': not a JSON object (NUL byte)",
                   path);
        return NULL;
    }
    text[n] = 0;
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        lethe_errf(err, errlen, "study '%s': not a JSON object (malformed JSON)", path);
        return NULL;
    }
    return root;
}

static int check_keys(const cJSON *root, const char *path, char *err, size_t errlen)
{
    static const char *const known[] = {"study",   "base",    "synth",    "forget", "origin",
                                        "retrain", "methods", "grid",     "seeds",  "eval",
                                        "relearn", "report",  "protocol", "source",
                                        NULL};
    for (const cJSON *i = root->child; i; i = i->next) {
        int ok = 0;
        for (const char *const *k = known; *k; k++) ok |= !strcmp(*k, i->string);
        if (!ok && !strcmp(i->string, "bench")) /* a node-count sweep, run by `lethe slurm` */
            return lethe_errf(err, errlen,
                              "study '%s': unknown key 'bench': this is a bench sweep over node "
                              "counts; run it with 'lethe slurm %s --nodes-list 1,2,4' (known keys "
                              "of a study: study, base, synth, forget, origin, retrain, methods, "
                              "grid, seeds, eval, relearn, report, protocol)",
                              path, path);
        if (!ok) {
            char b[80];
            return lethe_errf(err, errlen, "study '%s': unknown key '%s'", path,
                              study_shown(i->string, b, sizeof b));
        }
    }
    return 0;
}

int study_load(study *s, const char *path, const char *dir, char *err, size_t errlen)
{
    return study_load_with(s, path, dir, NULL, 0, err, errlen);
}

int study_load_with(study *s, const char *path, const char *dir, char **overrides, int noverrides,
                    char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    cJSON *root = read_json(path, err, errlen);
    if (!root) return -1;
    int rc = check_keys(root, path, err, errlen);
    if (!rc) rc = study_expand(s, root, path, dir, overrides, noverrides, err, errlen);
    cJSON_Delete(root);
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

/* ---- the files of a study folder ----------------------------------------------------- */

char *study_read_text(const char *path, const char *what, char *err, size_t errlen)
{
    char *t = safe_read(path, what, LETHE_MAX_JSON, NULL, err, errlen);
    const char *r = t ? NULL : strstr(err, "': cannot open: ");
    if (r) { /* "cannot open WHAT 'path': reason", the line lethe slurm has always printed */
        char reason[256];
        snprintf(reason, sizeof reason, "%s", r + 16);
        if (snprintf(err, errlen, "cannot open %s '%s': %s", what, path, reason) >= (int)errlen)
            err[errlen - 1] = 0; /* a long path is cut short */
    }
    return t;
}

int study_write_text(const char *path, const char *text, const char *tail, char *err, size_t errlen)
{
    return safe_write_text(path, text, tail, err, errlen);
}

/* A job's file (job.json, labels.json, .done) with a closing newline. */
static int write_job_file(const study *s, int j, const char *file, const char *text, char *err,
                          size_t errlen)
{
    char path[1100], e[1200];
    snprintf(path, sizeof path, "%s/%s/%s", s->dir, s->jobs[j].name, file);
    if (study_write_text(path, text, "\n", e, sizeof e))
        return lethe_errf(err, errlen, "study: %s", e);
    return 0;
}

/* ---- finished jobs whose config changed ---------------------------------------------- */

/* text without the keys that do not change a job's results (every layout gives the
 * one-rank numbers, README "Determinism"), as JSON (malloc'd), or NULL: a study resumed
 * under another layout (--set layout.dp=...) keeps its finished jobs. */
static char *without_layout(const char *text)
{
    cJSON *j = cJSON_Parse(text);
    if (!j) return NULL;
    cJSON_DeleteItemFromObjectCaseSensitive(j, "layout");
    cJSON_DeleteItemFromObjectCaseSensitive(j, "threads");
    /* a select job's spec: the report-phase jobs' templates */
    cJSON *e, *jobs = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "select"),
                                                       "jobs");
    cJSON_ArrayForEach(e, jobs)
    {
        cJSON *c = cJSON_GetObjectItemCaseSensitive(e, "config");
        cJSON_DeleteItemFromObjectCaseSensitive(c, "layout");
        cJSON_DeleteItemFromObjectCaseSensitive(c, "threads");
    }
    char *t = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return t;
}

/* Whether finished job j's stored FILE (job.json, labels.json) differs from text but for
 * the layout; the first changed key and its values in what (a whole message part). */
static int file_changed(const study *s, int j, const char *file, const char *text, char *what,
                        size_t len)
{
    char path[1100], e[1200], key[300], ov[80], nv[80];
    snprintf(path, sizeof path, "%s/%s/%s", s->dir, s->jobs[j].name, file);
    char *old = study_read_text(path, file, e, sizeof e);
    int changed = 1;
    if (!old)
        snprintf(what, len, "its %s is missing or unreadable", file);
    char *o = old ? without_layout(old) : NULL, *n = o ? without_layout(text) : NULL;
    if (old && (changed = config_json_diff(o && n ? o : old, o && n ? n : text, key, sizeof key,
                                           ov, nv, sizeof ov)))
        snprintf(what, len, "%s key '%s' was %s, now %s", file, key, ov, nv);
    free(old), cJSON_free(o), cJSON_free(n);
    return changed;
}

/* A free name <job>.old-N beside job j's folder (N from 1), or -1. */
static int old_name(const study *s, int j, char *path, size_t len)
{
    struct stat st;
    for (int n = 1; n < 10000; n++) {
        snprintf(path, len, "%s/%s.old-%d", s->dir, s->jobs[j].name, n);
        if (lstat(path, &st) && errno == ENOENT) return 0;
    }
    return -1;
}

/* Whether job j's stored job.json or labels.json differ from what the study expands to
 * now (what names the first key); a report-phase job's files are its select job's
 * choice, their templates in the select job's job.json, checked there. */
static int job_changed(const study *s, int i, char *what, size_t len)
{
    const study_job *j = &s->jobs[i];
    return !j->select &&
           ((j->config_json && file_changed(s, i, "job.json", j->config_json, what, len)) ||
            (j->labels_json && file_changed(s, i, "labels.json", j->labels_json, what, len)));
}

/* Jobs submitted earlier that Slurm may still start (held): a changed one is refused,
 * rerun or not. */
static int check_held(const study *s, const char *const *held, char *err, size_t errlen)
{
    char what[700] = "";
    for (int i = 0; held && i < s->njobs; i++) {
        if (!held[i] || study_job_done(s, i) || !job_changed(s, i, what, sizeof what)) continue;
        return lethe_errf(err, errlen,
                          "study: job '%s' was submitted (Slurm job %s) and may still be queued "
                          "or running, but %.700s; its config would be relabelled: restore the "
                          "study file, or cancel it (scancel %s) and run again",
                          s->jobs[i].name, held[i], what, held[i]);
    }
    return 0;
}

/* Finished jobs whose config or labels changed: refused (the first named), or with
 * rerun moved aside to <job>.old-N with every finished job that depends on one (the
 * report on any), so that they run again and no result is relabelled. */
static int check_changed(const study *s, int rerun, char *err, size_t errlen)
{
    char *moved = calloc((size_t)s->njobs + 1, 1), what[700] = "", first[900] = "";
    int nchanged = 0, any = 0, rc = 0;
    if (!moved) return lethe_errf(err, errlen, "study: out of memory");
    for (int i = 0; i < s->njobs; i++) {
        const study_job *j = &s->jobs[i];
        if (!study_job_done(s, i)) continue;
        int stale = j->config_json ? 0 : any; /* the report reads every eval */
        for (int d = 0; d < j->ndeps; d++) stale |= moved[j->deps[d]];
        int ch = job_changed(s, i, what, sizeof what);
        if (ch && !nchanged++)
            snprintf(first, sizeof first, "job '%s' is finished but %.700s", j->name, what);
        moved[i] = (char)(ch || stale);
        any |= moved[i];
    }
    if (nchanged && !rerun)
        rc = lethe_errf(err, errlen,
                        "study: %s (%d finished job%s changed); its results would be relabelled: "
                        "restore the study file, or run again with --rerun-changed to move "
                        "changed finished jobs aside to <job>.old-N and re-run them",
                        first, nchanged, nchanged == 1 ? "" : "s");
    for (int i = 0; i < s->njobs && !rc; i++) {
        char from[1100], to[1100];
        if (!moved[i]) continue;
        snprintf(from, sizeof from, "%s/%s", s->dir, s->jobs[i].name);
        if (old_name(s, i, to, sizeof to) || rename(from, to))
            rc = lethe_errf(err, errlen, "study: cannot move '%s' aside to '%s': %s", from, to,
                            strerror(errno));
        else
            printf("lethe study: job '%s' changed or depends on one that did: moved its finished "
                   "folder to '%s'; it runs again\n",
                   s->jobs[i].name, to);
    }
    free(moved);
    return rc;
}

/* Select job sel is finished: the unfinished report-phase jobs get their files again
 * from its choice (selected.json's index) and its spec as expanded now (another layout
 * reaches them too). Not finished: nothing (it writes them). */
static int rematerialise(const study *s, int sel, char *err, size_t errlen)
{
    if (!study_job_done(s, sel)) return 0;
    char path[1100], e[1200];
    snprintf(path, sizeof path, "%s/%s/selected.json", s->dir, s->jobs[sel].name);
    char *text = study_read_text(path, "selection", e, sizeof e);
    cJSON *chosen = text ? cJSON_Parse(text) : NULL;
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(chosen, "index");
    cJSON *spec = cJSON_Parse(s->jobs[sel].config_json);
    int rc = -1;
    if (text && !cJSON_IsNumber(k))
        snprintf(e, sizeof e, "'%s' has no index", path);
    else if (text)
        rc = study_materialise(spec, k->valueint, e, sizeof e);
    free(text);
    cJSON_Delete(chosen);
    cJSON_Delete(spec);
    if (rc)
        lethe_errf(err, errlen,
                   "study: select job '%s' is finished but its choice cannot be used: %s (remove "
                   "its .done to select again)",
                   s->jobs[sel].name, e);
    return rc;
}

int study_write_configs(const study *s, int rerun_changed, const char *const *held, char *err,
                        size_t errlen)
{
    char path[1100];
    mkdir(s->dir, 0777);
    snprintf(path, sizeof path, "%s/data", s->dir);
    mkdir(path, 0777);
    if (check_held(s, held, err, errlen) || check_changed(s, rerun_changed, err, errlen))
        return -1;
    for (int i = 0; i < s->njobs; i++) {
        const study_job *j = &s->jobs[i];
        snprintf(path, sizeof path, "%s/%s", s->dir, j->name);
        if (mkdir(path, 0777) && errno != EEXIST)
            return lethe_errf(err, errlen, "study: cannot create '%s': %s", path, strerror(errno));
        /* a report-phase job's files are written by its select job, or again from its
         * choice (once for all of that select job's, which follow it) */
        if (j->select) {
            if (s->jobs[i - 1].select != j->select && rematerialise(s, j->select - 1, err, errlen))
                return -1;
            continue;
        }
        /* a finished or held job keeps its files as they are (check_changed, check_held:
         * they are the same) */
        if (study_job_done(s, i) || (held && held[i])) continue;
        if (j->config_json && write_job_file(s, i, "job.json", j->config_json, err, errlen))
            return -1;
        if (j->labels_json && write_job_file(s, i, "labels.json", j->labels_json, err, errlen))
            return -1;
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
    char err[1200];
    if (write_job_file(s, j, ".done", "done", err, sizeof err)) lethe_fatal("%s", err);
}
