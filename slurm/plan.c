/* slurm/plan.c — the plan of `lethe slurm` and its run: what each job needs (ranks,
 * nodes, the pre-timeout signal), what is done and what is still queued from an earlier
 * submission (<dir>/slurm_jobs.tsv and squeue), and slurm_plan_submit, which builds the
 * job list (plan_build.c), writes the folders, groups the jobs into units
 * (plan_units.c), and writes (script.c) and submits (submit.c) them in order. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "plan_impl.h"

int slurm_fail(slurm_err *e, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return code;
}

int slurm_parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}

/* ---- the jobs: what each needs and how it is submitted ---------------------------------- */

int sl_add_unique(slurm_err *e, int **v, int *n, int x)
{
    for (int i = 0; i < *n; i++)
        if ((*v)[i] == x) return 0;
    int *w = realloc(*v, (size_t)(*n + 1) * sizeof **v);
    if (!w) return slurm_fail(e, 1, "slurm: out of memory");
    *v = w;
    w[(*n)++] = x;
    return 0;
}

int sl_add_ext(slurm_err *e, unit_t *u, const char *id)
{
    char base[64];
    snprintf(base, sizeof base, "%s", id);
    char *us = strchr(base, '_');
    if (us) *us = 0; /* a task of an array: wait for the whole array */
    for (int i = 0; i < u->next; i++)
        if (!strcmp(u->ext[i], base)) return 0;
    char **w = realloc(u->ext, (size_t)(u->next + 1) * sizeof *w);
    if (!w) return slurm_fail(e, 1, "slurm: out of memory");
    u->ext = w;
    if (!(w[u->next] = strdup(base))) return slurm_fail(e, 1, "slurm: out of memory");
    u->next++;
    return 0;
}

int sl_job_needs_signal(const char *kind)
{
    return !strcmp(kind, "train") || !strcmp(kind, "unlearn") || !strcmp(kind, "relearn");
}

/* layout.<key> of a job: its config's, or a --set layout.<key>=N of a single job. */
static int layout_value(const ctx_t *c, const study_job *j, const cJSON *lay, const char *key,
                        double *v)
{
    const cJSON *x = lay ? cJSON_GetObjectItemCaseSensitive(lay, key) : NULL;
    *v = 1;
    if (x) {
        if (!cJSON_IsNumber(x) || x->valuedouble < 1 || x->valuedouble > 4096 ||
            x->valuedouble != floor(x->valuedouble))
            return slurm_fail(c->err, 2, "slurm: job '%s': layout.%s is not an integer in 1..4096",
                              j->name, key);
        *v = x->valuedouble;
    }
    char set[32];
    snprintf(set, sizeof set, "layout.%s=", key);
    for (int i = 0; !c->is_study && i < c->o.nsets; i++) /* a study's are in its configs */
        if (!strncmp(c->o.sets[i], set, strlen(set))) {
            int n;
            if (slurm_parse_int(c->o.sets[i] + strlen(set), 1, 4096, &n))
                return slurm_fail(c->err, 2, "slurm: --set %s: not an integer in 1..4096",
                                  c->o.sets[i]);
            *v = n;
        }
    return 0;
}

/* Ranks of a job: layout.dp * pp * tp of its config (with --set overrides of the layout);
 * 1 for synth (any rank count; it needs one) and the report. */
int sl_job_ranks(const ctx_t *c, const study_job *j, int *ranks)
{
    *ranks = 1;
    if (!j->config_json || !strcmp(j->job, "synth") || !strcmp(j->job, "report")) return 0;
    cJSON *cfg = cJSON_Parse(j->config_json);
    if (!cfg) return slurm_fail(c->err, 2, "slurm: job '%s': its config is not JSON", j->name);
    const cJSON *lay = cJSON_GetObjectItemCaseSensitive(cfg, "layout");
    static const char *const keys[3] = {"dp", "pp", "tp"};
    long long r = 1;
    int rc = 0;
    for (int k = 0; k < 3 && !rc; k++) {
        double v = 1;
        rc = layout_value(c, j, lay, keys[k], &v);
        r *= (long long)v;
    }
    cJSON_Delete(cfg);
    if (!rc && r > 1000000) rc = slurm_fail(c->err, 2, "slurm: job '%s': %lld ranks", j->name, r);
    *ranks = (int)r;
    return rc;
}

/* Nodes and ranks per node of a job of `ranks` ranks. */
void sl_job_nodes(const ctx_t *c, int j, int ranks, int *nodes, int *per_node)
{
    int n = c->force_nodes && c->force_nodes[j] ? c->force_nodes[j] : 0;
    if (!n && c->o.nodes) n = c->o.nodes < ranks ? c->o.nodes : ranks;
    if (!n && c->o.ntasks_per_node) n = (ranks + c->o.ntasks_per_node - 1) / c->o.ntasks_per_node;
    if (!n) n = 1;
    *nodes = n;
    /* even spread; not given for a one-node job (the allocation holds every rank) */
    *per_node = n > 1 ? (ranks + n - 1) / n : 0;
}

/* ---- what is done, what is still queued ------------------------------------------------ */

/* The ids of earlier submissions (<dir>/slurm_jobs.tsv) into the plan; 1 if any. */
static int read_record(ctx_t *c, int *any)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/slurm_jobs.tsv", c->s.dir);
    struct stat st;
    *any = 0;
    if (stat(path, &st)) return 0;
    char *text = sl_read_text(c->err, 1, path, "record");
    if (!text) return 1;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#') continue;
        char *tab = strchr(line, '\t');
        if (!tab) continue;
        *tab = 0;
        char *id = tab + 1, *end = strchr(id, '\t');
        if (end) *end = 0;
        for (int j = 0; j < c->s.njobs; j++)
            if (!strcmp(c->s.jobs[j].name, line)) {
                snprintf(c->plan[j].prev_id, sizeof c->plan[j].prev_id, "%s", id);
                *any = 1;
            }
    }
    free(text);
    return 0;
}

static int read_previous(ctx_t *c)
{
    int any = 0;
    if (read_record(c, &any)) return 1;
    if (!any || c->o.dry) return 0;
    /* which of those ids Slurm still holds as queued or running (one line per array task) */
    const size_t cap = (size_t)1 << 20;
    char *out = malloc(cap);
    if (!out) return slurm_fail(c->err, 1, "slurm: out of memory");
    const char *argv[] = {"squeue", "-h", "-r", "-t", "PD,R,CF,CG,RQ,RS,RH,S,SE,SO,ST",
                          "-o",     "%i", NULL};
    int r = sl_run_capture(c->err, argv, out, cap);
    if (r) {
        if (r > 0)
            slurm_fail(c->err, 1, "slurm: squeue failed (exit %d): %s", r, sl_last_line(out));
        free(out);
        return 1;
    }
    for (int j = 0; j < c->s.njobs; j++) {
        job_plan *p = &c->plan[j];
        if (p->status != ST_TODO || !p->prev_id[0]) continue;
        size_t n = strlen(p->prev_id);
        for (const char *l = out; *l;) {
            const char *e = strchr(l, '\n');
            size_t len = e ? (size_t)(e - l) : strlen(l);
            if (len == n && !strncmp(l, p->prev_id, n)) p->status = ST_QUEUED;
            l += len + (e ? 1 : 0);
        }
    }
    free(out);
    return 0;
}

/* ---- the run --------------------------------------------------------------------------- */

static int copy_study_file(const ctx_t *c)
{
    char path[PATH_MAX];
    char *text = sl_read_text(c->err, 2, c->o.file, "study");
    if (!text) return 2;
    snprintf(path, sizeof path, "%s/study.json", c->s.dir);
    int rc = sl_write_text(c->err, path, text);
    free(text);
    return rc;
}

/* The job list, the lethe binary, the folders and configs, the plan and the units. */
static int prepare(ctx_t *c)
{
    int rc = sl_build(c);
    ssize_t bl = rc ? -1 : readlink("/proc/self/exe", c->lethe_bin, sizeof c->lethe_bin - 1);
    if (!rc && bl <= 0)
        rc = slurm_fail(c->err, 1, "slurm: cannot find the lethe binary (/proc/self/exe)");
    if (!rc) c->lethe_bin[bl] = 0;
    if (!rc && !(c->plan = calloc((size_t)c->s.njobs + 1, sizeof(job_plan))))
        rc = slurm_fail(c->err, 1, "slurm: out of memory");
    /* what is finished and what an earlier submission may still run, before any file
     * is written: those jobs' files are kept, and a change to them refused */
    for (int j = 0; !rc && j < c->s.njobs; j++)
        c->plan[j].status = study_job_done(&c->s, j) ? ST_DONE : ST_TODO;
    if (!rc) rc = read_previous(c);
    const char **held = rc ? NULL : calloc((size_t)c->s.njobs + 1, sizeof(char *));
    if (!rc && !held) rc = slurm_fail(c->err, 1, "slurm: out of memory");
    for (int j = 0; !rc && j < c->s.njobs; j++) {
        /* a dry run does not ask squeue: every job submitted before and not finished */
        const job_plan *p = &c->plan[j];
        if (p->status == ST_QUEUED || (c->o.dry && p->status == ST_TODO && p->prev_id[0]))
            held[j] = p->prev_id;
    }
    if (!rc) {
        char err[1024];
        if (study_write_configs(&c->s, c->o.rerun_changed, held, err, sizeof err))
            rc = slurm_fail(c->err, 1, "slurm: %s", err);
        if (!c->is_study) {
            char data[PATH_MAX];
            snprintf(data, sizeof data, "%s/data", c->s.dir);
            rmdir(data); /* study_write_configs makes it for a study's data; unused here */
        }
    }
    free(held);
    if (!rc && c->is_study) rc = copy_study_file(c);
    /* --rerun-changed may have moved finished jobs aside: they run again */
    for (int j = 0; !rc && j < c->s.njobs; j++)
        if (c->plan[j].status == ST_DONE && !study_job_done(&c->s, j)) c->plan[j].status = ST_TODO;
    if (!rc) rc = sl_make_units(c);
    return rc;
}

/* Writes and (unless a dry run) submits the units in their order; *nsub: how many. */
static int submit_units(ctx_t *c, int *nsub)
{
    int rc = 0;
    for (int k = 0; !rc && k < c->nunits; k++) {
        unit_t *x = NULL;
        for (int u = 0; u < c->nunits; u++)
            if (c->units[u].order == k) x = &c->units[u];
        if (!x) break;
        unsigned long ids[STUDY_MAX_JOBS + 64];
        size_t n = 0;
        if (!c->o.dry) {
            for (int d = 0; d < x->ndeps; d++) ids[n++] = c->units[x->deps[d]].id;
            for (int e = 0; e < x->next && n < sizeof ids / sizeof ids[0]; e++)
                ids[n++] = strtoul(x->ext[e], NULL, 10);
        }
        rc = sl_write_script(c, x, ids, n);
        if (!rc && !c->o.dry) rc = sl_submit(c->err, x);
        if (!rc && !c->o.dry) rc = sl_record(c, x);
        if (!rc) (*nsub)++;
    }
    return rc;
}

static void print_summary(const ctx_t *c, int nsub, int rc)
{
    int todo = 0, done = 0, queued = 0;
    for (int j = 0; j < c->s.njobs; j++) {
        todo += c->plan[j].status == ST_TODO;
        done += c->plan[j].status == ST_DONE;
        queued += c->plan[j].status == ST_QUEUED;
    }
    printf("lethe slurm %s: %d jobs in %s: %d %s as %d submission%s, %d done, %d still "
           "queued%s\n",
           c->s.name, c->s.njobs, c->s.dir, todo, c->o.dry ? "to submit (dry run)" : "submitted",
           nsub, nsub == 1 ? "" : "s", done, queued, rc ? " (then an error)" : "");
    sl_print_table(c);
    fflush(stdout);
}

static void free_ctx(ctx_t *c)
{
    for (int u = 0; u < c->nunits; u++) {
        free(c->units[u].members);
        free(c->units[u].deps);
        for (int e = 0; e < c->units[u].next; e++) free(c->units[u].ext[e]);
        free(c->units[u].ext);
    }
    free(c->units);
    free(c->plan);
    free(c->force_nodes);
    if (c->s.jobs) study_free(&c->s);
}

int slurm_plan_submit(const slurm_opts *o, slurm_err *e)
{
    ctx_t *c = calloc(1, sizeof *c);
    if (!c) return slurm_fail(e, 1, "slurm: out of memory");
    c->o = *o;
    c->err = e;
    int nsub = 0, rc = prepare(c);
    if (!rc) rc = submit_units(c, &nsub);
    if (!rc || nsub) print_summary(c, nsub, rc);
    free_ctx(c);
    free(c);
    return rc;
}
