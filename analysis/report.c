/* analysis/report.c — `lethe report` (contract in report.h).
 *
 * Three phases: read (report_read.c: walk the tree, parse and check every result file;
 * all input errors surface here), group (report_group.c: runs into settings, curves onto
 * settings, bench lines into points and series; duplicates are errors), write
 * (report_write.c: tables; report_plot.c: plot data, scripts and PNGs). This file holds
 * the context's arena and errors, the labels, and report_run. Nothing is written before the read and group phases have passed and gnuplot
 * has been found. Errors longjmp back to report_run with one line in the caller's
 * buffer; every allocation lives in an arena that report_run frees, so an error path
 * leaks nothing. */
#include "report_impl.h"

#include <cjson/cJSON.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "metrics.h"
#include "../io/safefile.h"

const rp_metric_name RP_METRIC[NMETRIC] = {
    {"forget_quality", "FQ"},
    {"log10_forget_quality", "log10 FQ"},
    {"forget_quality_trained_wording", "FQ (trained wording)"},
    {"model_utility", "MU"},
    {"forget_prob", "forget prob"},
    {"forget_prob_gap", "gap to retrain"},
    {"retain_prob", "retain prob"},
    {"forget_rouge_recall", "forget ROUGE"},
    {"retain_rouge_recall", "retain ROUGE"},
    {"forget_truth_ratio", "forget TR"},
    {"privleak", "PrivLeak"},
    {"relearn_recovery", "relearn recovery"},
};

const char *const RP_KL_KEY[3] = {"kl_retain", "kl_forget1", "kl_forget2"};
const char *const RP_KL_TITLE[3] = {"retain chain", "forget chain 1", "forget chain 2"};

/* ------------------------------------------------------------------------------------ */
/* Errors and memory. */

RP_NORETURN RP_PRINTF(3, 4) void rp_fail(ctx_t *c, int code, const char *fmt, ...)
{
    if (c->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->err, c->errlen, fmt, ap);
        va_end(ap);
        for (char *p = c->err; *p; p++)
            if (*p == '\n' || *p == '\r') *p = ' '; /* the contract: one line */
    }
    longjmp(c->jmp, code);
}

void *rp_xalloc(ctx_t *c, size_t n)
{
    n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    if (!c->arena || c->arena->cap - c->arena->used < n) {
        size_t cap = n > ARENA_BLOCK ? n : ARENA_BLOCK;
        arena_blk *b = malloc(sizeof *b + cap);
        if (!b) rp_fail(c, REPORT_EIO, "out of memory (%zu bytes)", cap);
        b->next = c->arena;
        b->used = 0;
        b->cap = cap;
        c->arena = b;
    }
    void *p = (char *)c->arena->data + c->arena->used;
    c->arena->used += n;
    memset(p, 0, n);
    return p;
}

/* A larger copy of arr (n elements used): arrays grow by doubling, the old copy stays in
 * the arena until the end. */
void *rp_grow(ctx_t *c, void *arr, int *cap, size_t size, int n)
{
    int nc = *cap ? 2 * *cap : 16;
    void *p = rp_xalloc(c, (size_t)nc * size);
    if (n) memcpy(p, arr, (size_t)n * size);
    *cap = nc;
    return p;
}

char *rp_xstrdup(ctx_t *c, const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = rp_xalloc(c, n);
    memcpy(p, s, n);
    return p;
}

RP_PRINTF(2, 3) char *rp_xsprintf(ctx_t *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) rp_fail(c, REPORT_EIO, "internal: cannot format '%s'", fmt);
    char *p = rp_xalloc(c, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

char *rp_path_join(ctx_t *c, const char *dir, const char *name)
{
    size_t n = strlen(dir);
    return rp_xsprintf(c, "%s%s%s", dir, n && dir[n - 1] == '/' ? "" : "/", name);
}

/* ------------------------------------------------------------------------------------ */
/* Labels. */

const lvalue *rp_lab_get(const labels *l, const char *key)
{
    for (int i = 0; i < l->n; i++)
        if (!strcmp(l->v[i].key, key)) return &l->v[i].v;
    return NULL;
}

const char *rp_lab_str(const labels *l, const char *key)
{
    const lvalue *v = rp_lab_get(l, key);
    return v && v->t == LV_STR ? v->str : "";
}

/* Order: absent < null < booleans < numbers < strings. */
int rp_lv_cmp(const lvalue *a, const lvalue *b)
{
    lv_type ta = a ? a->t : LV_ABSENT, tb = b ? b->t : LV_ABSENT;
    if (ta != tb) return ta < tb ? -1 : 1;
    switch (ta) {
    case LV_BOOL:
    case LV_NUM: return (a->num > b->num) - (a->num < b->num);
    case LV_STR: return strcmp(a->str, b->str);
    default: return 0;
    }
}

void rp_lv_format(char *buf, size_t n, const lvalue *v)
{
    if (!v) {
        buf[0] = 0;
        return;
    }
    switch (v->t) {
    case LV_NULL: snprintf(buf, n, "null"); break;
    case LV_BOOL: snprintf(buf, n, "%s", v->num ? "true" : "false"); break;
    case LV_NUM: snprintf(buf, n, "%.10g", v->num); break;
    case LV_STR: snprintf(buf, n, "%s", v->str); break;
    default: buf[0] = 0;
    }
}

int rp_ign_none(const char *k)
{
    (void)k;
    return 0;
}
int rp_ign_seed(const char *k)
{
    return !strcmp(k, "seed");
}
int rp_ign_bench(const char *k)
{
    return !strcmp(k, "seed") || !strcmp(k, "nodes");
}

/* 1 when a and b agree on every key that neither filter ignores, and have no other. */
int rp_labels_equal(const labels *a, key_filter fa, const labels *b, key_filter fb)
{
    for (int i = 0; i < a->n; i++) {
        const char *k = a->v[i].key;
        if (fa(k)) continue;
        const lvalue *bv = rp_lab_get(b, k);
        if (!bv || fb(k) || rp_lv_cmp(&a->v[i].v, bv)) return 0;
    }
    for (int i = 0; i < b->n; i++) {
        const char *k = b->v[i].key;
        if (!fb(k) && (fa(k) || !rp_lab_get(a, k))) return 0;
    }
    return 1;
}

/* When every key of a (but those fa ignores) is in b with the same value: the number of
 * such keys; else -1. A relearn curve's labels are its run's plus the attack's own. */
int rp_labels_within(const labels *a, key_filter fa, const labels *b)
{
    int k = 0;
    for (int i = 0; i < a->n; i++) {
        if (fa(a->v[i].key)) continue;
        const lvalue *bv = rp_lab_get(b, a->v[i].key);
        if (!bv || rp_lv_cmp(&a->v[i].v, bv)) return -1;
        k++;
    }
    return k;
}

/* "method=npo lr=1e-05 seed=1": for messages. */
char *rp_labels_text(ctx_t *c, const labels *l)
{
    char *s = "";
    for (int i = 0; i < l->n; i++) {
        char v[256];
        rp_lv_format(v, sizeof v, &l->v[i].v);
        s = rp_xsprintf(c, "%s%s%s=%s", s, i ? " " : "", l->v[i].key, v);
    }
    return s;
}

void rp_read_labels(ctx_t *c, const char *path, labels *out, int need_method)
{
    char *where = rp_xsprintf(c, "'%s'", path);
    const cJSON *doc = rp_load_json(c, path);
    int n = cJSON_GetArraySize(doc);
    out->v = rp_xalloc(c, sizeof(label) * (size_t)(n ? n : 1));
    out->n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, doc)
    {
        if (rp_lab_get(out, it->string))
            rp_fail(c, REPORT_EINPUT, "%s: key '%s' appears twice", where, it->string);
        label *l = &out->v[out->n++];
        l->key = rp_xstrdup(c, it->string);
        if (cJSON_IsNull(it)) {
            l->v.t = LV_NULL;
        } else if (cJSON_IsBool(it)) {
            l->v.t = LV_BOOL;
            l->v.num = cJSON_IsTrue(it);
        } else if (cJSON_IsNumber(it)) {
            l->v.t = LV_NUM;
            l->v.num = it->valuedouble;
        } else if (cJSON_IsString(it)) {
            l->v.t = LV_STR;
            l->v.str = rp_xstrdup(c, it->valuestring);
        } else {
            rp_fail(c, REPORT_EINPUT, "%s: key '%s' is %s, expected a scalar (labels are scalars)",
                    where, it->string, rp_describe(it));
        }
    }
    if (need_method) {
        rp_get_str(c, where, doc, "", "method");
        rp_get_str(c, where, doc, "", "split");
    }
    rp_drop_doc(c);
}

/* ------------------------------------------------------------------------------------ */

static void report_main(ctx_t *c)
{
    const report_options *o = c->o;
    if (!o->dir || !o->dir[0]) rp_fail(c, REPORT_EINPUT, "no study folder given");
    c->dir = o->dir;
    struct stat st;
    if (stat(c->dir, &st))
        rp_fail(c, REPORT_EINPUT, "study folder '%s': %s", c->dir, strerror(errno));
    if (!S_ISDIR(st.st_mode)) rp_fail(c, REPORT_EINPUT, "'%s' is not a folder", c->dir);
    c->out = o->out && o->out[0] ? o->out : rp_path_join(c, c->dir, "report");
    if (!stat(c->out, &c->out_st)) {
        if (!S_ISDIR(c->out_st.st_mode))
            rp_fail(c, REPORT_EINPUT, "output '%s' exists and is not a folder", c->out);
        if (c->out_st.st_dev == st.st_dev && c->out_st.st_ino == st.st_ino)
            rp_fail(c, REPORT_EINPUT,
                    "output folder '%s' is the study folder itself; give --out "
                    "a folder of its own",
                    c->out);
        c->have_out = 1;
    }
    const char *env = getenv("LETHE_GNUPLOT");
    int explicit_gnuplot = (o->gnuplot && o->gnuplot[0]) || (env && env[0]);
    c->gnuplot = o->gnuplot && o->gnuplot[0] ? o->gnuplot : env && env[0] ? env : "gnuplot";

    /* read and group: every input error surfaces before anything is written */
    rp_visit(c, &st);
    rp_walk(c, c->dir, 0);
    if (!c->nruns && !c->ncurves && !c->nbench)
        rp_fail(c, REPORT_EINPUT,
                "no results under '%s' (no folder holds summary.json, "
                "relearn.jsonl or bench.jsonl)",
                c->dir);
    rp_group_runs(c);
    rp_pick_best(c);
    rp_compare(c);
    rp_group_bench(c);
    int plots = o->plots;
    if (plots) {
        int rc = rp_run_gnuplot(c, NULL, NULL, "--version", NULL, NULL);
        if (rc == 127 && !explicit_gnuplot) {
            /* No gnuplot was asked for by name and none is on PATH: the tables are the
             * result, the pictures an extra (a cluster login without gnuplot). */
            printf("lethe report: plots skipped: no gnuplot on PATH (install gnuplot-nox, "
                   "module load gnuplot, or set LETHE_GNUPLOT); tables only\n");
            plots = 0;
        } else if (rc == 127) {
            rp_fail(c, REPORT_EINPUT,
                    "gnuplot '%s' cannot be run (install gnuplot-nox, set "
                    "LETHE_GNUPLOT, or pass --no-plots)",
                    c->gnuplot);
        } else if (rc) {
            rp_fail(c, REPORT_EINPUT, "'%s --version' exits with %d", c->gnuplot, rc);
        }
    }

    rp_mkdirs(c, c->out);
    if (plots) { /* a fresh log for this report */
        char *log = rp_path_join(c, c->out, "gnuplot.log");
        char err[PATH_MAX + 200];
        /* a fresh empty log; gnuplot's runs append to it, never through a link */
        if (safe_temp(log, err, sizeof err)) rp_fail(c, REPORT_EIO, "%s", err);
        if (c->nruns) rp_plot_fq_vs_mu(c);
        if (c->ncurves) rp_plot_relearn(c);
        rp_plot_markov(c);
        if (c->nbench) rp_write_scaling_plot(c);
    }
    if (c->nrows) {
        rp_write_csv(c, "results.csv", c->order, c->nrep);
        rp_write_csv(c, "best.csv", c->best, c->nbest);
        rp_write_runs_csv(c);
        rp_write_compare_csv(c);
    }
    if (c->nrows || c->ncurves) rp_write_results_md(c);
    if (c->nbench) rp_write_scaling_md(c);
}

int report_run(const report_options *opts, char *err, size_t errlen)
{
    ctx_t *c = calloc(1, sizeof *c);
    if (!c) {
        if (errlen) snprintf(err, errlen, "out of memory");
        return REPORT_EIO;
    }
    c->o = opts;
    c->err = err;
    c->errlen = errlen;
    if (errlen) err[0] = 0;
    int rc = setjmp(c->jmp);
    if (rc == 0) report_main(c);
    if (c->dh) closedir(c->dh);
    if (c->f) fclose(c->f);
    if (c->tmp_path) remove(c->tmp_path); /* a half-written output never takes a name */
    cJSON_Delete(c->doc);
    free(c->text);
    for (arena_blk *b = c->arena, *n; b; b = n) {
        n = b->next;
        free(b);
    }
    free(c);
    return rc;
}
