/* analysis/report.c — `lethe report` (contract in report.h).
 *
 * Three phases: read (walk the tree, parse and check every result file; all input errors
 * surface here), group (runs into settings, curves onto settings, bench lines into
 * points and series; duplicates are errors), write (tables, then plot data, scripts and
 * PNGs). Nothing is written before the read and group phases have passed and gnuplot
 * has been found. Errors longjmp back to report_run with one line in the caller's
 * buffer; every allocation lives in an arena that report_run frees, so an error path
 * leaks nothing. */
#include "report.h"

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

#if defined(__GNUC__)
#define RP_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define RP_NORETURN __attribute__((noreturn))
#else
#define RP_PRINTF(a, b)
#define RP_NORETURN
#endif

/* Result files are kilobytes; the cap stops a wrong file (a checkpoint renamed by
 * mistake) from being read whole. */
#define MAX_INPUT_BYTES (256u << 20)
/* Deeper than any study layout; stops a pathological tree. */
#define MAX_DEPTH 64
#define ARENA_BLOCK (1u << 16)

/* ------------------------------------------------------------------------------------ */
/* Labels: scalar values of labels.json. */

typedef enum { LV_ABSENT = 0, LV_NULL, LV_BOOL, LV_NUM, LV_STR } lv_type;

typedef struct {
    lv_type t;
    double num; /* LV_NUM, LV_BOOL (0 or 1) */
    const char *str;
} lvalue;

typedef struct {
    const char *key;
    lvalue v;
} label;

typedef struct {
    label *v;
    int n;
} labels;

/* ------------------------------------------------------------------------------------ */
/* The metrics of a run, in table order. */

enum {
    M_FQ,
    M_LOG10_FQ,
    M_FQ_TW,
    M_MU,
    M_FPROB,
    M_GAP,
    M_RPROB,
    M_FROUGE,
    M_RROUGE,
    M_FTR,
    M_PRIVLEAK,
    M_RECOVERY,
    NMETRIC
};

static const struct {
    const char *csv, *md;
} METRIC[NMETRIC] = {
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

static const char *const KL_KEY[3] = {"kl_retain", "kl_forget1", "kl_forget2"};
static const char *const KL_TITLE[3] = {"retain chain", "forget chain 1", "forget chain 2"};

typedef struct {
    const char *dir;
    labels lab;
    double m[NMETRIC]; /* NaN: no value (null or absent) */
    int has_markov;
    double kl[3];
    const char **errs;
    int nerr;
    int row;
} run_t;

typedef struct {
    const char *dir;
    labels lab;
    int n;
    double *step, *fprob; /* (n), sorted by step; fprob NaN where null */
    double recovery;      /* NaN unless both ends have a forget_prob */
    int row;              /* -1: no evaluated setting matches */
} curve_t;

typedef struct {
    const char *dir;
    labels lab;
    int line;
    int ranks, dp, pp, tp, mb, threads; /* mb, threads: 0 when absent */
    double params, batch, seq_len;      /* NaN when absent */
    const char *blas;                   /* "" when absent */
    double tps, ms, comm, bubble, gflops, pct_peak;
    double nodes; /* NaN: not in labels.json */
} bench_t;

typedef struct {
    int *runs, nruns, cap;
    const labels *lab; /* the first run's */
    double mean[NMETRIC], sd[NMETRIC];
    int cnt[NMETRIC];
    double kl_mean[3], kl_sd[3];
    int kl_cnt[3];
} row_t;

typedef struct { /* bench lines of one workload, layout and node count, averaged */
    int first;   /* a bench line of it */
    int n;
    double tps, ms, comm, bubble, gflops, pct_peak, eff, x;
    int mask; /* bit 0: dp > 1, bit 1: pp > 1, bit 2: tp > 1 */
} point_t;

typedef struct {
    int *pts, n, cap;
    int mask, workload; /* workload: index of the series' first workload */
} series_t;

typedef struct arena_blk {
    struct arena_blk *next;
    size_t used, cap;
    max_align_t data[];
} arena_blk;

typedef struct {
    const report_options *o;
    char *err;
    size_t errlen;
    jmp_buf jmp;
    arena_blk *arena;
    /* in-flight resources, released by report_run on any exit */
    char *text;
    cJSON *doc;
    FILE *f;
    char *tmp_path;
    DIR *dh;

    const char *dir, *out, *gnuplot;
    struct stat out_st;
    int have_out;
    struct {
        dev_t dev;
        ino_t ino;
    } * visited;
    int nvisited, capvisited;

    run_t *runs;
    int nruns, capruns;
    curve_t *curves;
    int ncurves, capcurves;
    bench_t *bench;
    int nbench, capbench;

    const char **hp; /* label columns other than method, split, seed (sorted) */
    int nhp, caphp;
    int *hp_const; /* (nhp) 1: one value shared by every run */
    row_t *rows;
    int nrows, caprows;
    int *order; /* rows in table order */
    int *best;  /* rows of the best-per-method table, in table order */
    int nbest;
    int nunmatched; /* curves with no evaluated setting */
    point_t *pts;
    int npts, cappts;
    series_t *series;
    int nseries, capseries;
    int x_nodes; /* scaling x axis: 1 nodes, 0 ranks */

    /* plots drawn, for results.md */
    const char **png;
    int npng, cappng;
    const char *no_fq_plot; /* why fq_vs_mu was not drawn, or NULL */
} ctx_t;

/* ------------------------------------------------------------------------------------ */
/* Errors and memory. */

static RP_NORETURN RP_PRINTF(3, 4) void fail(ctx_t *c, int code, const char *fmt, ...)
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

static void *xalloc(ctx_t *c, size_t n)
{
    n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    if (!c->arena || c->arena->cap - c->arena->used < n) {
        size_t cap = n > ARENA_BLOCK ? n : ARENA_BLOCK;
        arena_blk *b = malloc(sizeof *b + cap);
        if (!b) fail(c, REPORT_EIO, "out of memory (%zu bytes)", cap);
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
static void *grow(ctx_t *c, void *arr, int *cap, size_t size, int n)
{
    int nc = *cap ? 2 * *cap : 16;
    void *p = xalloc(c, (size_t)nc * size);
    if (n) memcpy(p, arr, (size_t)n * size);
    *cap = nc;
    return p;
}

#define RESERVE(c, arr, n, cap)                                                                    \
    do {                                                                                           \
        if ((n) == (cap)) (arr) = grow((c), (arr), &(cap), sizeof *(arr), (n));                    \
    } while (0)

static char *xstrdup(ctx_t *c, const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = xalloc(c, n);
    memcpy(p, s, n);
    return p;
}

static RP_PRINTF(2, 3) char *xsprintf(ctx_t *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) fail(c, REPORT_EIO, "internal: cannot format '%s'", fmt);
    char *p = xalloc(c, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

static char *path_join(ctx_t *c, const char *dir, const char *name)
{
    size_t n = strlen(dir);
    return xsprintf(c, "%s%s%s", dir, n && dir[n - 1] == '/' ? "" : "/", name);
}

/* ------------------------------------------------------------------------------------ */
/* Reading JSON. */

static void drop_text(ctx_t *c)
{
    free(c->text);
    c->text = NULL;
}

static void drop_doc(ctx_t *c)
{
    cJSON_Delete(c->doc);
    c->doc = NULL;
}

/* Reads path into c->text (NUL-terminated); *len its length. */
static void read_text(ctx_t *c, const char *path, size_t *len)
{
    drop_text(c);
    c->f = fopen(path, "rb");
    if (!c->f) fail(c, REPORT_EINPUT, "'%s': cannot open: %s", path, strerror(errno));
    size_t cap = 4096, n = 0;
    c->text = malloc(cap);
    if (!c->text) fail(c, REPORT_EIO, "out of memory reading '%s'", path);
    for (;;) {
        if (n + 1 >= cap) {
            if (cap >= MAX_INPUT_BYTES)
                fail(c, REPORT_EINPUT, "'%s': larger than %u MiB, not a result file", path,
                     MAX_INPUT_BYTES >> 20);
            char *t = realloc(c->text, 2 * cap);
            if (!t) fail(c, REPORT_EIO, "out of memory reading '%s'", path);
            c->text = t;
            cap *= 2;
        }
        size_t got = fread(c->text + n, 1, cap - 1 - n, c->f);
        n += got;
        if (got == 0) break;
    }
    int bad = ferror(c->f);
    fclose(c->f);
    c->f = NULL;
    if (bad) fail(c, REPORT_EINPUT, "'%s': read error", path);
    c->text[n] = 0;
    *len = n;
}

static const char *describe(const cJSON *v)
{
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsArray(v)) return "an array";
    if (cJSON_IsObject(v)) return "an object";
    return "invalid";
}

/* Parses text[0..len) into c->doc; `where` names the file (and line) in messages. */
static cJSON *parse_json(ctx_t *c, const char *where, const char *text, size_t len)
{
    drop_doc(c);
    size_t i = 0;
    while (i < len && strchr(" \t\r\n", text[i])) i++;
    if (i == len) fail(c, REPORT_EINPUT, "%s: empty, expected a JSON object", where);
    const char *end = NULL;
    c->doc = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (c->doc) { /* only whitespace may follow the value */
        size_t k = (size_t)(end - text);
        while (k < len && strchr(" \t\r\n", text[k])) k++;
        if (k < len) {
            drop_doc(c);
            end = text + k;
        }
    }
    if (!c->doc) {
        size_t pos = end && end >= text && end <= text + len ? (size_t)(end - text) : 0;
        int line = 1, col = 1;
        for (size_t k = 0; k < pos; k++) {
            if (text[k] == '\n') {
                line++;
                col = 1;
            } else {
                col++;
            }
        }
        fail(c, REPORT_EINPUT, "%s: not valid JSON (line %d, column %d)", where, line, col);
    }
    if (!cJSON_IsObject(c->doc))
        fail(c, REPORT_EINPUT, "%s: is %s, expected a JSON object", where, describe(c->doc));
    return c->doc;
}

static cJSON *load_json(ctx_t *c, const char *path)
{
    size_t len;
    read_text(c, path, &len);
    char *where = xsprintf(c, "'%s'", path);
    cJSON *doc = parse_json(c, where, c->text, len);
    drop_text(c);
    return doc;
}

/* A number, or NaN for null or (when optional) absent. `pre` prefixes the key in
 * messages ("splits.forget05."). */
static double get_num(ctx_t *c, const char *where, const cJSON *obj, const char *pre,
                      const char *key, int required)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v) {
        if (required) fail(c, REPORT_EINPUT, "%s: missing key '%s%s'", where, pre, key);
        return NAN;
    }
    if (cJSON_IsNull(v)) return NAN;
    if (!cJSON_IsNumber(v))
        fail(c, REPORT_EINPUT, "%s: key '%s%s' is %s, expected a number or null", where, pre, key,
             describe(v));
    return v->valuedouble;
}

/* A required positive (or non-negative) finite number. */
static double get_pos(ctx_t *c, const char *where, const cJSON *obj, const char *key,
                      int allow_zero)
{
    double v = get_num(c, where, obj, "", key, 1);
    if (!(isfinite(v) && (v > 0 || (allow_zero && v == 0))))
        fail(c, REPORT_EINPUT, "%s: key '%s' = %.6g, expected a %s number", where, key, v,
             allow_zero ? "finite non-negative" : "finite positive");
    return v;
}

/* An integer in [lo, hi]; absent gives `def` unless required. */
static int get_int(ctx_t *c, const char *where, const cJSON *obj, const char *key, int required,
                   int lo, int hi, int def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v && !required) return def;
    double d = get_num(c, where, obj, "", key, 1);
    if (!(d == floor(d) && d >= lo && d <= hi))
        fail(c, REPORT_EINPUT, "%s: key '%s' = %.6g, expected an integer in [%d, %d]", where, key,
             d, lo, hi);
    return (int)d;
}

/* An object, or NULL when optional and absent or null. */
static const cJSON *get_obj(ctx_t *c, const char *where, const cJSON *obj, const char *pre,
                            const char *key, int required)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || (!required && cJSON_IsNull(v))) {
        if (required) fail(c, REPORT_EINPUT, "%s: missing key '%s%s'", where, pre, key);
        return NULL;
    }
    if (!cJSON_IsObject(v))
        fail(c, REPORT_EINPUT, "%s: key '%s%s' is %s, expected an object%s", where, pre, key,
             describe(v), required ? "" : " or null");
    return v;
}

static const char *get_str(ctx_t *c, const char *where, const cJSON *obj, const char *pre,
                           const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v) fail(c, REPORT_EINPUT, "%s: missing key '%s%s'", where, pre, key);
    if (!cJSON_IsString(v) || !v->valuestring[0])
        fail(c, REPORT_EINPUT, "%s: key '%s%s' is %s, expected a non-empty string", where, pre, key,
             cJSON_IsString(v) ? "empty" : describe(v));
    return v->valuestring;
}

/* ------------------------------------------------------------------------------------ */
/* Labels. */

static const lvalue *lab_get(const labels *l, const char *key)
{
    for (int i = 0; i < l->n; i++)
        if (!strcmp(l->v[i].key, key)) return &l->v[i].v;
    return NULL;
}

static const char *lab_str(const labels *l, const char *key)
{
    const lvalue *v = lab_get(l, key);
    return v && v->t == LV_STR ? v->str : "";
}

/* Order: absent < null < booleans < numbers < strings. */
static int lv_cmp(const lvalue *a, const lvalue *b)
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

static void lv_format(char *buf, size_t n, const lvalue *v)
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

typedef int (*key_filter)(const char *key);

static int ign_none(const char *k)
{
    (void)k;
    return 0;
}
static int ign_seed(const char *k)
{
    return !strcmp(k, "seed");
}
static int ign_bench(const char *k)
{
    return !strcmp(k, "seed") || !strcmp(k, "nodes");
}

/* 1 when a and b agree on every key that neither filter ignores, and have no other. */
static int labels_equal(const labels *a, key_filter fa, const labels *b, key_filter fb)
{
    for (int i = 0; i < a->n; i++) {
        const char *k = a->v[i].key;
        if (fa(k)) continue;
        const lvalue *bv = lab_get(b, k);
        if (!bv || fb(k) || lv_cmp(&a->v[i].v, bv)) return 0;
    }
    for (int i = 0; i < b->n; i++) {
        const char *k = b->v[i].key;
        if (!fb(k) && (fa(k) || !lab_get(a, k))) return 0;
    }
    return 1;
}

/* When every key of a (but those fa ignores) is in b with the same value: the number of
 * such keys; else -1. A relearn curve's labels are its run's plus the attack's own. */
static int labels_within(const labels *a, key_filter fa, const labels *b)
{
    int k = 0;
    for (int i = 0; i < a->n; i++) {
        if (fa(a->v[i].key)) continue;
        const lvalue *bv = lab_get(b, a->v[i].key);
        if (!bv || lv_cmp(&a->v[i].v, bv)) return -1;
        k++;
    }
    return k;
}

/* "method=npo lr=1e-05 seed=1": for messages. */
static char *labels_text(ctx_t *c, const labels *l)
{
    char *s = "";
    for (int i = 0; i < l->n; i++) {
        char v[256];
        lv_format(v, sizeof v, &l->v[i].v);
        s = xsprintf(c, "%s%s%s=%s", s, i ? " " : "", l->v[i].key, v);
    }
    return s;
}

static void read_labels(ctx_t *c, const char *path, labels *out, int need_method)
{
    char *where = xsprintf(c, "'%s'", path);
    const cJSON *doc = load_json(c, path);
    int n = cJSON_GetArraySize(doc);
    out->v = xalloc(c, sizeof(label) * (size_t)(n ? n : 1));
    out->n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, doc)
    {
        if (lab_get(out, it->string))
            fail(c, REPORT_EINPUT, "%s: key '%s' appears twice", where, it->string);
        label *l = &out->v[out->n++];
        l->key = xstrdup(c, it->string);
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
            l->v.str = xstrdup(c, it->valuestring);
        } else {
            fail(c, REPORT_EINPUT, "%s: key '%s' is %s, expected a scalar (labels are scalars)",
                 where, it->string, describe(it));
        }
    }
    if (need_method) {
        get_str(c, where, doc, "", "method");
        get_str(c, where, doc, "", "split");
    }
    drop_doc(c);
}

/* ------------------------------------------------------------------------------------ */
/* The three kinds of result folder. */

static void labels_required(ctx_t *c, const char *dir, const char *what)
{
    struct stat st;
    char *lp = path_join(c, dir, "labels.json");
    if (stat(lp, &st))
        fail(c, REPORT_EINPUT, "'%s': missing (a folder with %s needs its labels.json)", lp, what);
}

static void load_run(ctx_t *c, const char *dir)
{
    labels_required(c, dir, "summary.json");
    RESERVE(c, c->runs, c->nruns, c->capruns);
    run_t *r = &c->runs[c->nruns];
    memset(r, 0, sizeof *r);
    r->dir = dir;
    read_labels(c, path_join(c, dir, "labels.json"), &r->lab, 1);

    char *sp = path_join(c, dir, "summary.json");
    char *where = xsprintf(c, "'%s'", sp);
    const cJSON *s = load_json(c, sp);
    const cJSON *splits = get_obj(c, where, s, "", "splits", 1);
    const cJSON *roles = get_obj(c, where, s, "", "roles", 1);
    /* An evaluation without a forget (or retain) split writes no such role: those
     * metrics then have no value. A role naming a split that is not there is an error. */
    static const char *const ROLE[2] = {"forget", "retain"};
    const cJSON *sp_obj[2] = {NULL, NULL};
    char *pre[2] = {"", ""};
    for (int k = 0; k < 2; k++) {
        const cJSON *rv = cJSON_GetObjectItemCaseSensitive(roles, ROLE[k]);
        if (!rv || cJSON_IsNull(rv)) continue;
        const char *name = get_str(c, where, roles, "roles.", ROLE[k]);
        if (!cJSON_GetObjectItemCaseSensitive(splits, name))
            fail(c, REPORT_EINPUT, "%s: roles.%s = \"%s\" is not a key of splits", where, ROLE[k],
                 name);
        sp_obj[k] = get_obj(c, where, splits, "splits.", name, 1);
        pre[k] = xsprintf(c, "splits.%s.", name);
    }
    for (int m = 0; m < NMETRIC; m++) r->m[m] = NAN;
    r->m[M_FQ] = get_num(c, where, s, "", "forget_quality", 0);
    r->m[M_LOG10_FQ] = get_num(c, where, s, "", "log10_forget_quality", 0);
    r->m[M_FQ_TW] = get_num(c, where, s, "", "forget_quality_trained_wording", 0);
    r->m[M_MU] = get_num(c, where, s, "", "model_utility", 1);
    r->m[M_GAP] = get_num(c, where, s, "", "forget_prob_gap", 0);
    if (sp_obj[0]) {
        r->m[M_FPROB] = get_num(c, where, sp_obj[0], pre[0], "prob", 0);
        r->m[M_FROUGE] = get_num(c, where, sp_obj[0], pre[0], "rouge_recall", 0);
        r->m[M_FTR] = get_num(c, where, sp_obj[0], pre[0], "truth_ratio", 0);
    }
    if (sp_obj[1]) {
        r->m[M_RPROB] = get_num(c, where, sp_obj[1], pre[1], "prob", 0);
        r->m[M_RROUGE] = get_num(c, where, sp_obj[1], pre[1], "rouge_recall", 0);
    }
    const cJSON *muse = get_obj(c, where, s, "", "muse", 0);
    if (muse) r->m[M_PRIVLEAK] = get_num(c, where, muse, "muse.", "privleak", 0);
    const cJSON *markov = get_obj(c, where, s, "", "markov", 0);
    if (markov) {
        r->has_markov = 1;
        for (int k = 0; k < 3; k++) r->kl[k] = get_num(c, where, markov, "markov.", KL_KEY[k], 1);
    }
    const cJSON *errs = cJSON_GetObjectItemCaseSensitive(s, "errors");
    if (errs && !cJSON_IsNull(errs)) {
        if (!cJSON_IsArray(errs))
            fail(c, REPORT_EINPUT, "%s: key 'errors' is %s, expected an array of strings", where,
                 describe(errs));
        int n = cJSON_GetArraySize(errs), i = 0;
        r->errs = xalloc(c, sizeof(char *) * (size_t)(n ? n : 1));
        const cJSON *e;
        cJSON_ArrayForEach(e, errs)
        {
            if (!cJSON_IsString(e))
                fail(c, REPORT_EINPUT, "%s: errors[%d] is %s, expected a string", where, i,
                     describe(e));
            r->errs[i++] = xstrdup(c, e->valuestring);
        }
        r->nerr = n;
    }
    drop_doc(c);
    r->row = -1;
    c->nruns++;
}

/* Calls fn for every non-blank line of path (1-based line numbers). */
static void for_lines(ctx_t *c, const char *path, void (*fn)(ctx_t *, const char *, int, void *),
                      void *arg)
{
    size_t len;
    read_text(c, path, &len);
    char *text = c->text;
    c->text = NULL; /* ours now: freed below or by the arena's owner on error */
    char *copy = xalloc(c, len + 1);
    memcpy(copy, text, len + 1);
    free(text);
    int line = 0;
    for (char *p = copy; p < copy + len;) {
        char *nl = memchr(p, '\n', (size_t)(copy + len - p));
        char *e = nl ? nl : copy + len;
        *e = 0;
        line++;
        char *q = p;
        while (*q && strchr(" \t\r", *q)) q++;
        if (*q) {
            char *where = xsprintf(c, "'%s' line %d", path, line);
            parse_json(c, where, p, (size_t)(e - p));
            fn(c, where, line, arg);
            drop_doc(c);
        }
        p = e + 1;
    }
}

typedef struct {
    double *step, *fprob;
    int n, cap;
} curve_acc;

static void curve_line(ctx_t *c, const char *where, int line, void *arg)
{
    (void)line;
    curve_acc *a = arg;
    double step = get_num(c, where, c->doc, "", "step", 1);
    if (!isfinite(step) || step < 0)
        fail(c, REPORT_EINPUT, "%s: key 'step' = %.6g, expected a step number >= 0", where, step);
    double fp = get_num(c, where, c->doc, "", "forget_prob", 0);
    if (a->n == a->cap) {
        int cap = a->cap;
        a->step = grow(c, a->step, &cap, sizeof(double), a->n);
        a->fprob = grow(c, a->fprob, &a->cap, sizeof(double), a->n);
    }
    a->step[a->n] = step;
    a->fprob[a->n++] = fp;
}

static void load_curve(ctx_t *c, const char *dir)
{
    labels_required(c, dir, "relearn.jsonl");
    labels lab;
    read_labels(c, path_join(c, dir, "labels.json"), &lab, 1);
    char *path = path_join(c, dir, "relearn.jsonl");
    curve_acc a = {0};
    for_lines(c, path, curve_line, &a);
    if (a.n == 0) fail(c, REPORT_EINPUT, "'%s': no lines, expected one JSON object per step", path);
    for (int i = 1; i < a.n; i++) /* insertion sort by step: curves are short */
        for (int j = i; j > 0 && a.step[j - 1] > a.step[j]; j--) {
            double t = a.step[j];
            a.step[j] = a.step[j - 1];
            a.step[j - 1] = t;
            t = a.fprob[j];
            a.fprob[j] = a.fprob[j - 1];
            a.fprob[j - 1] = t;
        }
    for (int i = 1; i < a.n; i++)
        if (a.step[i] == a.step[i - 1])
            fail(c, REPORT_EINPUT, "'%s': step %.10g appears twice", path, a.step[i]);
    RESERVE(c, c->curves, c->ncurves, c->capcurves);
    curve_t *cv = &c->curves[c->ncurves++];
    cv->dir = dir;
    cv->lab = lab;
    cv->n = a.n;
    cv->step = a.step;
    cv->fprob = a.fprob;
    cv->row = -1;
    cv->recovery = a.n >= 2 ? a.fprob[a.n - 1] - a.fprob[0] : NAN; /* NaN if either is null */
}

typedef struct {
    const char *dir;
    labels lab;
    double nodes;
} bench_ctx;

static void bench_line(ctx_t *c, const char *where, int line, void *arg)
{
    const bench_ctx *bc = arg;
    const cJSON *d = c->doc;
    const cJSON *job = cJSON_GetObjectItemCaseSensitive(d, "job");
    if (job && !(cJSON_IsString(job) && !strcmp(job->valuestring, "bench")))
        fail(c, REPORT_EINPUT, "%s: key 'job' is %s%s%s, expected \"bench\"", where,
             cJSON_IsString(job) ? "\"" : describe(job),
             cJSON_IsString(job) ? job->valuestring : "", cJSON_IsString(job) ? "\"" : "");
    RESERVE(c, c->bench, c->nbench, c->capbench);
    bench_t *b = &c->bench[c->nbench];
    memset(b, 0, sizeof *b);
    b->dir = bc->dir;
    b->lab = bc->lab;
    b->nodes = bc->nodes;
    b->line = line;
    b->ranks = get_int(c, where, d, "ranks", 1, 1, 1 << 24, 0);
    b->dp = get_int(c, where, d, "dp", 1, 1, 1 << 24, 0);
    b->pp = get_int(c, where, d, "pp", 1, 1, 1 << 24, 0);
    b->tp = get_int(c, where, d, "tp", 1, 1, 1 << 24, 0);
    if ((long long)b->dp * b->pp * b->tp != b->ranks)
        fail(c, REPORT_EINPUT, "%s: dp*pp*tp = %d*%d*%d is not ranks = %d", where, b->dp, b->pp,
             b->tp, b->ranks);
    b->mb = get_int(c, where, d, "micro_batches", 0, 1, 1 << 24, 0);
    b->threads = get_int(c, where, d, "threads", 0, 1, 1 << 16, 0);
    b->params = get_num(c, where, d, "", "params", 0);
    b->batch = get_num(c, where, d, "", "batch", 0);
    b->seq_len = get_num(c, where, d, "", "seq_len", 0);
    const cJSON *core = cJSON_GetObjectItemCaseSensitive(d, "blas_core");
    if (core && !cJSON_IsString(core))
        fail(c, REPORT_EINPUT, "%s: key 'blas_core' is %s, expected a string", where,
             describe(core));
    b->blas = xstrdup(c, core ? core->valuestring : "");
    b->tps = get_pos(c, where, d, "tokens_per_s", 0);
    b->ms = get_pos(c, where, d, "ms_per_step", 0);
    b->comm = get_pos(c, where, d, "comm_ms", 1);
    b->bubble = get_num(c, where, d, "", "bubble_ms", 0);
    b->gflops = get_num(c, where, d, "", "model_gflops", 0);
    b->pct_peak = get_num(c, where, d, "", "pct_sgemm_peak", 0);
    c->nbench++;
}

static void load_bench(ctx_t *c, const char *dir)
{
    bench_ctx bc = {dir, {NULL, 0}, NAN};
    char *lp = path_join(c, dir, "labels.json");
    struct stat st;
    if (!stat(lp, &st)) {
        read_labels(c, lp, &bc.lab, 0);
        const lvalue *nv = lab_get(&bc.lab, "nodes");
        if (nv) {
            if (!(nv->t == LV_NUM && nv->num >= 1 && nv->num == floor(nv->num)))
                fail(c, REPORT_EINPUT, "'%s': key 'nodes' must be an integer >= 1", lp);
            bc.nodes = nv->num;
        }
    }
    char *path = path_join(c, dir, "bench.jsonl");
    int before = c->nbench;
    for_lines(c, path, bench_line, &bc);
    if (c->nbench == before)
        fail(c, REPORT_EINPUT, "'%s': no lines, expected one JSON object per benchmark", path);
}

/* ------------------------------------------------------------------------------------ */
/* The walk. */

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int visit(ctx_t *c, const struct stat *st)
{
    for (int i = 0; i < c->nvisited; i++)
        if (c->visited[i].dev == st->st_dev && c->visited[i].ino == st->st_ino) return 0;
    RESERVE(c, c->visited, c->nvisited, c->capvisited);
    c->visited[c->nvisited].dev = st->st_dev;
    c->visited[c->nvisited++].ino = st->st_ino;
    return 1;
}

static void walk(ctx_t *c, const char *dir, int depth)
{
    if (depth > MAX_DEPTH)
        fail(c, REPORT_EINPUT, "'%s': folders nested more than %d deep", dir, MAX_DEPTH);
    c->dh = opendir(dir);
    if (!c->dh) fail(c, REPORT_EINPUT, "cannot read folder '%s': %s", dir, strerror(errno));
    char **names = NULL;
    int n = 0, cap = 0;
    for (;;) {
        errno = 0;
        struct dirent *e = readdir(c->dh);
        if (!e) {
            if (errno) fail(c, REPORT_EINPUT, "cannot read folder '%s': %s", dir, strerror(errno));
            break;
        }
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        RESERVE(c, names, n, cap);
        names[n++] = xstrdup(c, e->d_name);
    }
    closedir(c->dh);
    c->dh = NULL;
    if (n > 1) qsort(names, (size_t)n, sizeof *names, name_cmp);

    int has[3] = {0, 0, 0}; /* summary.json, relearn.jsonl, bench.jsonl */
    static const char *const FILES[3] = {"summary.json", "relearn.jsonl", "bench.jsonl"};
    const char **subs = NULL;
    int nsub = 0, capsub = 0;
    for (int i = 0; i < n; i++) {
        char *p = path_join(c, dir, names[i]);
        struct stat st;
        if (stat(p, &st)) {
            if (errno == ENOENT) continue; /* a dangling link: nothing there */
            fail(c, REPORT_EINPUT, "cannot stat '%s': %s", p, strerror(errno));
        }
        if (S_ISDIR(st.st_mode)) {
            if (c->have_out && st.st_dev == c->out_st.st_dev && st.st_ino == c->out_st.st_ino)
                continue; /* our own output: a re-run must not read it */
            if (!visit(c, &st)) continue;
            RESERVE(c, subs, nsub, capsub);
            subs[nsub++] = p;
        } else if (S_ISREG(st.st_mode)) {
            for (int k = 0; k < 3; k++)
                if (!strcmp(names[i], FILES[k])) has[k] = 1;
        }
    }
    if (has[0]) load_run(c, dir);
    if (has[1]) load_curve(c, dir);
    if (has[2]) load_bench(c, dir);
    for (int i = 0; i < nsub; i++) walk(c, subs[i], depth + 1);
}

/* ------------------------------------------------------------------------------------ */
/* Grouping. */

/* Stable insertion sort of idx[0..n) by cmp (tables are at most thousands of rows). */
static void sort_idx(ctx_t *c, int *idx, int n, int (*cmp)(ctx_t *, int, int))
{
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && cmp(c, idx[j - 1], idx[j]) > 0; j--) {
            int t = idx[j];
            idx[j] = idx[j - 1];
            idx[j - 1] = t;
        }
}

static int method_rank(const char *m)
{
    return !strcmp(m, "origin") ? 0 : !strcmp(m, "retrain") ? 1 : 2;
}

static int row_cmp(ctx_t *c, int a, int b)
{
    const labels *la = c->rows[a].lab, *lb = c->rows[b].lab;
    const char *ma = lab_str(la, "method"), *mb = lab_str(lb, "method");
    int d = method_rank(ma) - method_rank(mb);
    if (d) return d;
    if ((d = strcmp(ma, mb))) return d;
    if ((d = strcmp(lab_str(la, "split"), lab_str(lb, "split")))) return d;
    for (int k = 0; k < c->nhp; k++)
        if ((d = lv_cmp(lab_get(la, c->hp[k]), lab_get(lb, c->hp[k])))) return d;
    return 0;
}

static int run_seed_cmp(ctx_t *c, int a, int b)
{
    return lv_cmp(lab_get(&c->runs[a].lab, "seed"), lab_get(&c->runs[b].lab, "seed"));
}

/* Mean and sample std (n - 1) of the non-NaN values of v[0..n). */
static void stats(const double *v, int n, double *mean, double *sd, int *cnt)
{
    double x[n > 0 ? n : 1];
    int k = 0;
    for (int i = 0; i < n; i++)
        if (!isnan(v[i])) x[k++] = v[i];
    *cnt = k;
    *mean = *sd = NAN;
    if (k == 0 || metrics_mean(mean, x, k) != METRICS_OK) {
        *mean = NAN;
        return;
    }
    if (k >= 2 && isfinite(*mean)) {
        double s = 0;
        for (int i = 0; i < k; i++) s += (x[i] - *mean) * (x[i] - *mean);
        *sd = sqrt(s / (k - 1));
    }
}

static int is_key_column(const char *k)
{
    return strcmp(k, "method") && strcmp(k, "split") && strcmp(k, "seed");
}

static void group_runs(ctx_t *c)
{
    /* label columns */
    for (int i = 0; i < c->nruns; i++)
        for (int j = 0; j < c->runs[i].lab.n; j++) {
            const char *k = c->runs[i].lab.v[j].key;
            int seen = !is_key_column(k);
            for (int h = 0; h < c->nhp && !seen; h++) seen = !strcmp(c->hp[h], k);
            if (seen) continue;
            RESERVE(c, c->hp, c->nhp, c->caphp);
            c->hp[c->nhp++] = k;
        }
    if (c->nhp > 1) qsort(c->hp, (size_t)c->nhp, sizeof *c->hp, name_cmp);
    c->hp_const = xalloc(c, sizeof(int) * (size_t)(c->nhp + 1));
    for (int h = 0; h < c->nhp; h++) {
        c->hp_const[h] = c->nruns > 0;
        const lvalue *v0 = c->nruns ? lab_get(&c->runs[0].lab, c->hp[h]) : NULL;
        for (int i = 0; i < c->nruns; i++) {
            const lvalue *v = lab_get(&c->runs[i].lab, c->hp[h]);
            if (!v || !v0 || lv_cmp(v, v0)) c->hp_const[h] = 0;
        }
    }

    /* settings; duplicates are refused */
    for (int i = 0; i < c->nruns; i++) {
        run_t *r = &c->runs[i];
        int j = 0;
        while (j < c->nrows && !labels_equal(&r->lab, ign_seed, c->rows[j].lab, ign_seed)) j++;
        if (j == c->nrows) {
            RESERVE(c, c->rows, c->nrows, c->caprows);
            memset(&c->rows[j], 0, sizeof c->rows[j]);
            c->rows[j].lab = &r->lab;
            c->nrows++;
        }
        row_t *w = &c->rows[j];
        for (int k = 0; k < w->nruns; k++) {
            const run_t *o = &c->runs[w->runs[k]];
            if (!lv_cmp(lab_get(&o->lab, "seed"), lab_get(&r->lab, "seed")))
                fail(c, REPORT_EINPUT, "'%s' and '%s' hold runs with the same labels (%s)", o->dir,
                     r->dir, labels_text(c, &r->lab));
        }
        RESERVE(c, w->runs, w->nruns, w->cap);
        w->runs[w->nruns++] = i;
        r->row = j;
    }
    for (int j = 0; j < c->nrows; j++) sort_idx(c, c->rows[j].runs, c->rows[j].nruns, run_seed_cmp);

    /* curves onto settings */
    for (int i = 0; i < c->ncurves; i++) {
        curve_t *cv = &c->curves[i];
        for (int k = 0; k < i; k++)
            if (labels_equal(&cv->lab, ign_none, &c->curves[k].lab, ign_none))
                fail(c, REPORT_EINPUT,
                     "'%s' and '%s' hold relearn curves with the same labels (%s)",
                     c->curves[k].dir, cv->dir, labels_text(c, &cv->lab));
        int most = -1;
        for (int j = 0; j < c->nrows; j++) {
            int k = labels_within(c->rows[j].lab, ign_seed, &cv->lab);
            if (k > most) {
                most = k;
                cv->row = j;
            }
        }
        if (cv->row < 0) c->nunmatched++;
    }

    /* aggregates */
    for (int j = 0; j < c->nrows; j++) {
        row_t *w = &c->rows[j];
        int nv = w->nruns > c->ncurves ? w->nruns : c->ncurves;
        double v[nv > 0 ? nv : 1];
        for (int m = 0; m < NMETRIC; m++) {
            int k = 0;
            if (m == M_RECOVERY) {
                for (int i = 0; i < c->ncurves; i++)
                    if (c->curves[i].row == j) v[k++] = c->curves[i].recovery;
            } else {
                for (int i = 0; i < w->nruns; i++) v[k++] = c->runs[w->runs[i]].m[m];
            }
            stats(v, k, &w->mean[m], &w->sd[m], &w->cnt[m]);
        }
        for (int q = 0; q < 3; q++) {
            int k = 0;
            for (int i = 0; i < w->nruns; i++)
                if (c->runs[w->runs[i]].has_markov) v[k++] = c->runs[w->runs[i]].kl[q];
            stats(v, k, &w->kl_mean[q], &w->kl_sd[q], &w->kl_cnt[q]);
        }
    }
    c->order = xalloc(c, sizeof(int) * (size_t)(c->nrows + 1));
    for (int j = 0; j < c->nrows; j++) c->order[j] = j;
    sort_idx(c, c->order, c->nrows, row_cmp);
}

/* Higher forget quality first; equal means fall back to log10 (an underflowed 0). */
static int fq_better(const row_t *a, const row_t *b)
{
    if (a->mean[M_FQ] != b->mean[M_FQ]) return a->mean[M_FQ] > b->mean[M_FQ] ? 1 : -1;
    double la = a->mean[M_LOG10_FQ], lb = b->mean[M_LOG10_FQ];
    if (isnan(la) || isnan(lb) || la == lb) return 0;
    return la > lb ? 1 : -1;
}

static int fq_desc_cmp(ctx_t *c, int a, int b)
{
    return -fq_better(&c->rows[a], &c->rows[b]);
}

static void pick_best(ctx_t *c)
{
    c->best = xalloc(c, sizeof(int) * (size_t)(c->nrows + 1));
    int *cand = xalloc(c, sizeof(int) * (size_t)(c->nrows + 1));
    for (int g = 0; g < c->nrows;) {
        const labels *l0 = c->rows[c->order[g]].lab;
        int e = g;
        while (e < c->nrows &&
               !strcmp(lab_str(c->rows[c->order[e]].lab, "method"), lab_str(l0, "method")) &&
               !strcmp(lab_str(c->rows[c->order[e]].lab, "split"), lab_str(l0, "split")))
            e++;
        int n = 0;
        for (int i = g; i < e; i++)
            if (!isnan(c->rows[c->order[i]].mean[M_FQ])) cand[n++] = c->order[i];
        if (n > 0) {
            sort_idx(c, cand, n, fq_desc_cmp);
            int top = (n + 2) / 3; /* ceil(n / 3), at least one setting */
            const row_t *cut = &c->rows[cand[top - 1]];
            int pick = -1;
            for (int i = g; i < e; i++) { /* table order: ties go to the first row */
                const row_t *w = &c->rows[c->order[i]];
                if (isnan(w->mean[M_FQ]) || fq_better(w, cut) < 0 || isnan(w->mean[M_MU])) continue;
                if (pick < 0 || w->mean[M_MU] > c->rows[pick].mean[M_MU]) pick = c->order[i];
            }
            if (pick >= 0) c->best[c->nbest++] = pick;
        }
        g = e;
    }
}

/* Bench points and series. */

static int same_workload(const bench_t *a, const bench_t *b)
{
#define SAME(x) ((isnan(a->x) && isnan(b->x)) || a->x == b->x)
    return SAME(params) && SAME(batch) && SAME(seq_len) && a->threads == b->threads &&
           !strcmp(a->blas, b->blas) && labels_equal(&a->lab, ign_bench, &b->lab, ign_bench);
#undef SAME
}

static int layout_mask(const bench_t *b)
{
    return (b->dp > 1) | (b->pp > 1) << 1 | (b->tp > 1) << 2;
}

static int pt_cmp(ctx_t *c, int a, int b)
{
    const point_t *p = &c->pts[a], *q = &c->pts[b];
    const bench_t *x = &c->bench[p->first], *y = &c->bench[q->first];
    if (p->x != q->x) return p->x < q->x ? -1 : 1;
    if (x->ranks != y->ranks) return x->ranks - y->ranks;
    if (x->dp != y->dp) return x->dp - y->dp;
    if (x->pp != y->pp) return x->pp - y->pp;
    if (x->tp != y->tp) return x->tp - y->tp;
    return x->mb - y->mb;
}

static void group_bench(ctx_t *c)
{
    if (!c->nbench) return;
    c->x_nodes = 1;
    for (int i = 0; i < c->nbench; i++)
        if (isnan(c->bench[i].nodes)) c->x_nodes = 0;
    for (int i = 0; i < c->nbench; i++) {
        const bench_t *b = &c->bench[i];
        int j = 0;
        for (; j < c->npts; j++) {
            const bench_t *f = &c->bench[c->pts[j].first];
            if (same_workload(b, f) && b->dp == f->dp && b->pp == f->pp && b->tp == f->tp &&
                b->mb == f->mb && ((isnan(b->nodes) && isnan(f->nodes)) || b->nodes == f->nodes))
                break;
        }
        if (j == c->npts) {
            RESERVE(c, c->pts, c->npts, c->cappts);
            memset(&c->pts[j], 0, sizeof c->pts[j]);
            c->pts[j].first = i;
            c->pts[j].mask = layout_mask(b);
            c->pts[j].x = c->x_nodes ? b->nodes : b->ranks;
            c->npts++;
        }
        point_t *p = &c->pts[j];
        p->n++;
        p->tps += b->tps;
        p->ms += b->ms;
        p->comm += b->comm;
        p->bubble += b->bubble; /* NaN stays NaN: no bubble share then */
        p->gflops += b->gflops;
        p->pct_peak += b->pct_peak;
    }
    for (int j = 0; j < c->npts; j++) {
        point_t *p = &c->pts[j];
        p->tps /= p->n;
        p->ms /= p->n;
        p->comm /= p->n;
        p->bubble /= p->n;
        p->gflops /= p->n;
        p->pct_peak /= p->n;
    }
    /* series: a workload and a layout kind; one-rank points join every kind */
    for (int pass = 0; pass < 2; pass++)
        for (int j = 0; j < c->npts; j++) {
            const point_t *p = &c->pts[j];
            const bench_t *b = &c->bench[p->first];
            if ((p->mask != 0) != (pass == 0)) continue;
            int joined = 0;
            for (int s = 0; s < c->nseries; s++) {
                series_t *S = &c->series[s];
                if (!same_workload(b, &c->bench[c->pts[S->pts[0]].first])) continue;
                if (pass == 0 && S->mask != p->mask) continue;
                RESERVE(c, S->pts, S->n, S->cap);
                S->pts[S->n++] = j;
                joined = 1;
                if (pass == 0) break;
            }
            if (!joined) {
                RESERVE(c, c->series, c->nseries, c->capseries);
                series_t *S = &c->series[c->nseries++];
                memset(S, 0, sizeof *S);
                S->mask = p->mask;
                RESERVE(c, S->pts, S->n, S->cap);
                S->pts[S->n++] = j;
            }
        }
    for (int s = 0; s < c->nseries; s++) {
        series_t *S = &c->series[s];
        sort_idx(c, S->pts, S->n, pt_cmp);
        S->workload = s;
        for (int t = 0; t < s; t++)
            if (same_workload(&c->bench[c->pts[c->series[t].pts[0]].first],
                              &c->bench[c->pts[S->pts[0]].first])) {
                S->workload = c->series[t].workload;
                break;
            }
    }
}

/* Efficiency of point j within series S (a point may sit in several series). */
static double efficiency(const ctx_t *c, const series_t *S, int j)
{
    int base = -1;
    for (int i = 0; i < S->n; i++) {
        const point_t *p = &c->pts[S->pts[i]];
        int r = c->bench[p->first].ranks;
        if (base < 0) {
            base = S->pts[i];
            continue;
        }
        int r0 = c->bench[c->pts[base].first].ranks;
        if (r < r0 || (r == r0 && p->tps > c->pts[base].tps)) base = S->pts[i];
    }
    const point_t *p = &c->pts[j], *p0 = &c->pts[base];
    return (p->tps / c->bench[p->first].ranks) / (p0->tps / c->bench[p0->first].ranks);
}

static const char *kind_name(int mask)
{
    static const char *const K[8] = {"1 rank", "dp",    "pp",    "dp+pp",
                                     "tp",     "dp+tp", "pp+tp", "dp+pp+tp"};
    return K[mask & 7];
}

/* ------------------------------------------------------------------------------------ */
/* Writing. */

static void mkdirs(ctx_t *c, const char *path)
{
    char *p = xstrdup(c, path);
    for (char *s = p + 1;; s++) {
        if (*s == '/' || *s == 0) {
            char save = *s;
            *s = 0;
            if (mkdir(p, 0777) && errno != EEXIST)
                fail(c, REPORT_EIO, "cannot create folder '%s': %s", p, strerror(errno));
            *s = save;
            if (!save) break;
        }
    }
    struct stat st;
    if (stat(path, &st) || !S_ISDIR(st.st_mode))
        fail(c, REPORT_EIO, "'%s' exists and is not a folder", path);
}

static FILE *out_open(ctx_t *c, const char *name)
{
    c->tmp_path = path_join(c, c->out, xsprintf(c, "%s.tmp", name));
    c->f = fopen(c->tmp_path, "w");
    if (!c->f) fail(c, REPORT_EIO, "cannot write '%s': %s", c->tmp_path, strerror(errno));
    return c->f;
}

static void note(ctx_t *c, const char *path)
{
    if (!c->o->quiet) printf("lethe report: wrote %s\n", path);
}

static void out_close(ctx_t *c, const char *name)
{
    int bad = ferror(c->f);
    bad |= fclose(c->f) != 0;
    c->f = NULL;
    char *dst = path_join(c, c->out, name);
    if (bad) fail(c, REPORT_EIO, "cannot write '%s': %s", c->tmp_path, strerror(errno));
    if (rename(c->tmp_path, dst))
        fail(c, REPORT_EIO, "cannot rename '%s' to '%s': %s", c->tmp_path, dst, strerror(errno));
    c->tmp_path = NULL;
    note(c, dst);
}

static void fmt_g(char *buf, size_t n, double v, int digits)
{
    if (isnan(v)) {
        buf[0] = 0;
        return;
    }
    if (v == 0) v = 0; /* no "-0" */
    snprintf(buf, n, "%.*g", digits, v);
}

static void csv_field(FILE *f, const char *s, int first)
{
    if (!first) fputc(',', f);
    if (!strpbrk(s, ",\"\n\r")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static void md_text(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '|') fputc('\\', f);
        fputc(*s == '\n' || *s == '\r' ? ' ' : *s, f);
    }
}

static void csv_header(ctx_t *c, FILE *f)
{
    csv_field(f, "method", 1);
    csv_field(f, "split", 0);
    for (int h = 0; h < c->nhp; h++) csv_field(f, c->hp[h], 0);
    csv_field(f, "seeds", 0);
    for (int m = 0; m < NMETRIC; m++) {
        fprintf(f, ",%s,%s_std,%s_n", METRIC[m].csv, METRIC[m].csv, METRIC[m].csv);
    }
    fputc('\n', f);
}

static void csv_row(ctx_t *c, FILE *f, const row_t *w)
{
    char b[512];
    csv_field(f, lab_str(w->lab, "method"), 1);
    csv_field(f, lab_str(w->lab, "split"), 0);
    for (int h = 0; h < c->nhp; h++) {
        const lvalue *v = lab_get(w->lab, c->hp[h]);
        lv_format(b, sizeof b, v && v->t != LV_NULL ? v : NULL);
        csv_field(f, b, 0);
    }
    fprintf(f, ",%d", w->nruns);
    for (int m = 0; m < NMETRIC; m++) {
        fmt_g(b, sizeof b, w->mean[m], REPORT_CSV_DIGITS);
        fprintf(f, ",%s", b);
        fmt_g(b, sizeof b, w->sd[m], REPORT_CSV_DIGITS);
        fprintf(f, ",%s,%d", b, w->cnt[m]);
    }
    fputc('\n', f);
}

static void write_csv(ctx_t *c, const char *name, const int *rows, int n)
{
    FILE *f = out_open(c, name);
    csv_header(c, f);
    for (int i = 0; i < n; i++) csv_row(c, f, &c->rows[rows[i]]);
    out_close(c, name);
}

static void write_runs_csv(ctx_t *c)
{
    FILE *f = out_open(c, "runs.csv");
    csv_field(f, "folder", 1);
    csv_field(f, "method", 0);
    csv_field(f, "split", 0);
    for (int h = 0; h < c->nhp; h++) csv_field(f, c->hp[h], 0);
    csv_field(f, "seed", 0);
    for (int m = 0; m < NMETRIC - 1; m++) fprintf(f, ",%s", METRIC[m].csv);
    fprintf(f, ",kl_retain,kl_forget1,kl_forget2,errors\n");
    char b[512];
    for (int j = 0; j < c->nrows; j++) {
        const row_t *w = &c->rows[c->order[j]];
        for (int i = 0; i < w->nruns; i++) {
            const run_t *r = &c->runs[w->runs[i]];
            csv_field(f, r->dir, 1);
            csv_field(f, lab_str(&r->lab, "method"), 0);
            csv_field(f, lab_str(&r->lab, "split"), 0);
            for (int h = 0; h < c->nhp; h++) {
                const lvalue *v = lab_get(&r->lab, c->hp[h]);
                lv_format(b, sizeof b, v && v->t != LV_NULL ? v : NULL);
                csv_field(f, b, 0);
            }
            const lvalue *sv = lab_get(&r->lab, "seed");
            lv_format(b, sizeof b, sv && sv->t != LV_NULL ? sv : NULL);
            csv_field(f, b, 0);
            for (int m = 0; m < NMETRIC - 1; m++) {
                fmt_g(b, sizeof b, r->m[m], REPORT_CSV_DIGITS);
                fprintf(f, ",%s", b);
            }
            for (int q = 0; q < 3; q++) {
                fmt_g(b, sizeof b, r->has_markov ? r->kl[q] : NAN, REPORT_CSV_DIGITS);
                fprintf(f, ",%s", b);
            }
            fprintf(f, ",%d\n", r->nerr);
        }
    }
    out_close(c, "runs.csv");
}

/* "0.1234 ± 0.0012", "0.1234" (one value), "–" (none); "(k)" when k values stand
 * behind the cell and k differs from the row's seed count. */
static void md_cell(FILE *f, double mean, double sd, int cnt, int nruns)
{
    char a[64], b[64];
    if (cnt == 0) {
        fputs(" – |", f);
        return;
    }
    fmt_g(a, sizeof a, mean, REPORT_MD_DIGITS);
    fprintf(f, " %s", a);
    if (!isnan(sd)) {
        fmt_g(b, sizeof b, sd, REPORT_MD_DIGITS);
        fprintf(f, " ± %s", b);
    }
    if (cnt != nruns) fprintf(f, " (%d)", cnt);
    fputs(" |", f);
}

/* The label columns of the Markdown tables: those that vary across runs. */
static void md_label_header(ctx_t *c, FILE *f, int *ncol)
{
    fputs("| method | split |", f);
    *ncol = 2;
    for (int h = 0; h < c->nhp; h++)
        if (!c->hp_const[h]) {
            fputc(' ', f);
            md_text(f, c->hp[h]);
            fputs(" |", f);
            ++*ncol;
        }
    fputs(" seeds |", f);
    ++*ncol;
}

static void md_label_cells(ctx_t *c, FILE *f, const row_t *w)
{
    char b[512];
    fputs("| ", f);
    md_text(f, lab_str(w->lab, "method"));
    fputs(" | ", f);
    md_text(f, lab_str(w->lab, "split"));
    fputs(" |", f);
    for (int h = 0; h < c->nhp; h++)
        if (!c->hp_const[h]) {
            const lvalue *v = lab_get(w->lab, c->hp[h]);
            lv_format(b, sizeof b, v);
            fputc(' ', f);
            if (b[0])
                md_text(f, b);
            else
                fputs("–", f);
            fputs(" |", f);
        }
    fprintf(f, " %d |", w->nruns);
}

static void md_table(ctx_t *c, FILE *f, const int *rows, int n)
{
    int ncol;
    md_label_header(c, f, &ncol);
    for (int m = 0; m < NMETRIC; m++) fprintf(f, " %s |", METRIC[m].md);
    fputs("\n|", f);
    for (int i = 0; i < ncol; i++) fputs(i < ncol - 1 ? "---|" : "--:|", f);
    for (int m = 0; m < NMETRIC; m++) fputs("--:|", f);
    fputc('\n', f);
    for (int i = 0; i < n; i++) {
        const row_t *w = &c->rows[rows[i]];
        md_label_cells(c, f, w);
        for (int m = 0; m < NMETRIC; m++) md_cell(f, w->mean[m], w->sd[m], w->cnt[m], w->nruns);
        fputc('\n', f);
    }
}

static void write_results_md(ctx_t *c)
{
    FILE *f = out_open(c, "results.md");
    fprintf(f, "# lethe report: %s\n\n", c->dir);
    fprintf(f, "%d evaluated run%s in %d setting%s; %d relearn curve%s; %d bench line%s%s.\n\n",
            c->nruns, c->nruns == 1 ? "" : "s", c->nrows, c->nrows == 1 ? "" : "s", c->ncurves,
            c->ncurves == 1 ? "" : "s", c->nbench, c->nbench == 1 ? "" : "s",
            c->nbench ? " (tables in scaling.md)" : "");
    int shared = 0;
    for (int h = 0; h < c->nhp; h++)
        if (c->hp_const[h]) {
            char b[512];
            lv_format(b, sizeof b, lab_get(&c->runs[0].lab, c->hp[h]));
            fputs(shared++ ? ", " : "Shared by every run: ", f);
            md_text(f, c->hp[h]);
            fputs(" = ", f);
            md_text(f, b);
        }
    if (shared) fputs(".\n\n", f);
    if (c->nrows) {
        fprintf(f,
                "Each row is a setting (method, split and the other labels but the seed). A "
                "cell is the mean ± the sample standard deviation (n − 1) over the setting's "
                "seeds, one value without ±; \"(k)\" after it means k values stand behind it "
                "where the row has a different number of seeds (a seed without that value; "
                "relearn curves); – is no value. %d significant digits (results.csv: %d).\n\n",
                REPORT_MD_DIGITS, REPORT_CSV_DIGITS);
        fputs("Columns: FQ = forget quality (KS-test p-value of the forget-set truth ratios "
              "against the retrained model) and its log10 as the evaluation wrote it; FQ "
              "(trained wording) = the same on the wording the model was trained on; MU = "
              "model utility; forget/retain prob = mean answer probability; gap to retrain = "
              "forget prob minus the retrained model's; forget/retain ROUGE = ROUGE-L recall; "
              "forget TR = forget truth ratio; PrivLeak = MUSE's privacy leakage (%); relearn "
              "recovery = forget prob at the last relearn step minus at step 0, over the setting's "
              "relearn curves.\n\n",
              f);
        fputs("## All settings\n\n", f);
        md_table(c, f, c->order, c->nrows);
        fputs("\n## Best setting per method\n\n", f);
        fputs("Selection rule: for each method and split, rank its settings by mean forget "
              "quality (highest first; equal means by mean log10 forget quality). The top "
              "third are the first ceil(n/3) of the n settings that have a forget quality, "
              "and every setting tied with the last of them. Among those, the setting with "
              "the highest mean model utility is shown (equal utility: the first in the table "
              "above). Settings without a forget quality or a model utility are not "
              "ranked.\n\n",
              f);
        if (c->nbest)
            md_table(c, f, c->best, c->nbest);
        else
            fputs("No setting has a forget quality.\n", f);
    }
    int nk = 0;
    for (int j = 0; j < c->nrows; j++) nk += c->rows[j].kl_cnt[0] > 0;
    if (nk) {
        fputs("\n## Mixture of Markov chains\n\nPer-token KL divergence to the true transition "
              "matrix of each chain, on held-out sequences (lower is closer).\n\n",
              f);
        int ncol;
        md_label_header(c, f, &ncol);
        for (int q = 0; q < 3; q++) fprintf(f, " KL %s |", KL_TITLE[q]);
        fputs("\n|", f);
        for (int i = 0; i < ncol + 3; i++) fputs(i < ncol - 1 ? "---|" : "--:|", f);
        fputc('\n', f);
        for (int j = 0; j < c->nrows; j++) {
            const row_t *w = &c->rows[c->order[j]];
            if (!w->kl_cnt[0] && !w->kl_cnt[1] && !w->kl_cnt[2]) continue;
            md_label_cells(c, f, w);
            for (int q = 0; q < 3; q++)
                md_cell(f, w->kl_mean[q], w->kl_sd[q], w->kl_cnt[q], w->nruns);
            fputc('\n', f);
        }
    }
    if (c->nunmatched) {
        fputs("\n## Relearn curves without an evaluated setting\n\nNo evaluated setting has "
              "all its labels (but the seed) among theirs; they are plotted but not in the "
              "tables.\n\n",
              f);
        for (int i = 0; i < c->ncurves; i++)
            if (c->curves[i].row < 0) {
                fputs("- `", f);
                md_text(f, c->curves[i].dir);
                fputs("`\n", f);
            }
    }
    int nerr = 0;
    for (int i = 0; i < c->nruns; i++) nerr += c->runs[i].nerr;
    if (nerr) {
        fputs("\n## Evaluation errors\n\nWhat the evaluation could not compute (those cells "
              "are –).\n\n",
              f);
        for (int j = 0; j < c->nrows; j++) {
            const row_t *w = &c->rows[c->order[j]];
            for (int i = 0; i < w->nruns; i++) {
                const run_t *r = &c->runs[w->runs[i]];
                for (int e = 0; e < r->nerr; e++) {
                    fputs("- `", f);
                    md_text(f, r->dir);
                    fputs("`: ", f);
                    md_text(f, r->errs[e]);
                    fputc('\n', f);
                }
            }
        }
    }
    if (c->npng || c->no_fq_plot) {
        fputs("\n## Plots\n\n", f);
        if (c->no_fq_plot) fprintf(f, "fq_vs_mu.png is not drawn: %s.\n\n", c->no_fq_plot);
        for (int i = 0; i < c->npng; i++) fprintf(f, "![%s](%s)\n\n", c->png[i], c->png[i]);
    }
    out_close(c, "results.md");
}

static void write_scaling_md(ctx_t *c)
{
    FILE *f = out_open(c, "scaling.md");
    fprintf(f, "# lethe report: scaling, %s\n\n", c->dir);
    fputs("A series is one workload (params, batch, seq_len, threads, BLAS core, labels) and "
          "one layout kind (which of dp, pp, tp exceed 1; the one-rank line belongs to every "
          "kind). Repeated lines of one layout are averaged (runs). Efficiency = (tokens/s / "
          "ranks) / (tokens/s / ranks at the series' smallest rank count); comm share = "
          "comm_ms / ms_per_step; bubble share = bubble_ms / ms_per_step.\n",
          f);
    char b[12][64];
    for (int s = 0; s < c->nseries; s++) {
        const series_t *S = &c->series[s];
        const bench_t *w = &c->bench[c->pts[S->pts[0]].first];
        fmt_g(b[0], 64, w->params, 10);
        fmt_g(b[1], 64, w->batch, 10);
        fmt_g(b[2], 64, w->seq_len, 10);
        fprintf(f,
                "\n## Series %d: %s\n\nparams %s, batch %s, seq_len %s, threads %d, BLAS "
                "core %s",
                s + 1, kind_name(S->mask), b[0][0] ? b[0] : "?", b[1][0] ? b[1] : "?",
                b[2][0] ? b[2] : "?", w->threads, w->blas[0] ? w->blas : "?");
        for (int i = 0; i < w->lab.n; i++)
            if (!ign_bench(w->lab.v[i].key)) {
                char v[256];
                lv_format(v, sizeof v, &w->lab.v[i].v);
                fputs(", ", f);
                md_text(f, w->lab.v[i].key);
                fputs(" = ", f);
                md_text(f, v);
            }
        fputs(".\n\n", f);
        fputs(c->x_nodes ? "| nodes " : "", f);
        fputs("| ranks | dp | pp | tp | micro-batches | runs | tokens/s | efficiency | comm "
              "share | bubble share | ms/step | model GFLOP/s | % sgemm peak |\n",
              f);
        fputs(c->x_nodes ? "|--:" : "", f);
        fputs("|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n", f);
        for (int i = 0; i < S->n; i++) {
            const point_t *p = &c->pts[S->pts[i]];
            const bench_t *x = &c->bench[p->first];
            double v[8] = {p->tps,          efficiency(c, S, S->pts[i]),
                           p->comm / p->ms, p->bubble / p->ms,
                           p->ms,           p->gflops,
                           p->pct_peak};
            for (int k = 0; k < 7; k++) {
                fmt_g(b[k], 64, v[k], REPORT_MD_DIGITS);
                if (!b[k][0]) snprintf(b[k], 64, "–");
            }
            if (c->x_nodes) fprintf(f, "| %.0f ", x->nodes);
            fprintf(f, "| %d | %d | %d | %d | ", x->ranks, x->dp, x->pp, x->tp);
            if (x->mb)
                fprintf(f, "%d", x->mb);
            else
                fputs("–", f);
            fprintf(f, " | %d | %s | %s | %s | %s | %s | %s | %s |\n", p->n, b[0], b[1], b[2], b[3],
                    b[4], b[5], b[6]);
        }
    }
    out_close(c, "scaling.md");
}

/* ------------------------------------------------------------------------------------ */
/* Plots. */

/* Runs gnuplot in the output folder with args (NULL-terminated, at most 4); its output
 * goes to gnuplot.log there (or nowhere for the probe). Returns the exit status, 127
 * when it could not be started, 128 + N when killed by signal N. */
static int run_gnuplot(ctx_t *c, const char *cwd, const char *log, const char *a1, const char *a2,
                       const char *a3)
{
    fflush(NULL); /* the child must not repeat our buffered output */
    pid_t pid = fork();
    if (pid < 0) fail(c, REPORT_EIO, "cannot start gnuplot: fork: %s", strerror(errno));
    if (pid == 0) {
        /* the child: only async-signal-safe calls until exec */
        if (cwd && chdir(cwd)) _exit(126);
        int in = open("/dev/null", O_RDONLY);
        int out =
            log ? open(log, O_WRONLY | O_CREAT | O_APPEND, 0666) : open("/dev/null", O_WRONLY);
        if (in < 0 || out < 0) _exit(126);
        dup2(in, 0);
        dup2(out, 1);
        dup2(out, 2);
        execlp(c->gnuplot, c->gnuplot, a1, a2, a3, (char *)NULL);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) fail(c, REPORT_EIO, "waiting for gnuplot: %s", strerror(errno));
    if (WIFEXITED(st)) return WEXITSTATUS(st);
    return WIFSIGNALED(st) ? 128 + WTERMSIG(st) : 1;
}

/* gnuplot single-quoted string: ' doubles. */
static char *gp_quote(ctx_t *c, const char *s)
{
    char *q = xalloc(c, 2 * strlen(s) + 3), *p = q;
    *p++ = '\'';
    for (; *s; s++) {
        if (*s == '\'') *p++ = '\'';
        *p++ = *s == '\n' ? ' ' : *s;
    }
    *p++ = '\'';
    *p = 0;
    return q;
}

/* A data-file string column: double-quoted, with no double quote inside. */
static void dat_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) fputc(*s == '"' || *s == '\n' ? '\'' : *s, f);
    fputc('"', f);
}

static void dat_num(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, " %.10g", v);
    else
        fputs(" ?", f);
}

static void gp_preamble(FILE *f, const char *name, const char *what, int w, int h)
{
    fprintf(f,
            "# %s.gp (lethe report): %s.\n"
            "# Redraw (in this folder): gnuplot %s.gp  — writes %s.png\n"
            "if (!exists(\"lethe_out\")) lethe_out = '%s.png'\n"
            "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {\n"
            "    set terminal pngcairo size %d,%d noenhanced font ',10'\n"
            "} else {\n"
            "    set terminal png size %d,%d noenhanced\n"
            "}\n"
            "set output lethe_out\n"
            "set datafile missing '?'\n"
            "set grid\n",
            name, what, name, name, name, w, h, w, h);
}

static void add_png(ctx_t *c, const char *png)
{
    RESERVE(c, c->png, c->npng, c->cappng);
    c->png[c->npng++] = png;
}

/* Runs NAME.gp, renames its temporary PNG into place after checking it is one. */
static void draw(ctx_t *c, const char *name)
{
    char *gp = xsprintf(c, "%s.gp", name), *png = xsprintf(c, "%s.png", name);
    char *tmp = xsprintf(c, "%s.png.tmp", name);
    char *set = xsprintf(c, "lethe_out='%s'", tmp);
    c->tmp_path = path_join(c, c->out, tmp);
    char *log = path_join(c, c->out, "gnuplot.log");
    int rc = run_gnuplot(c, c->out, "gnuplot.log", "-e", set, gp);
    if (rc)
        fail(c, REPORT_EIO, "gnuplot failed on '%s' (exit %d); its messages are in '%s'",
             path_join(c, c->out, gp), rc, log);
    unsigned char magic[8] = {0};
    FILE *f = fopen(c->tmp_path, "rb");
    size_t got = f ? fread(magic, 1, 8, f) : 0;
    if (f) fclose(f);
    static const unsigned char PNG[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (got != 8 || memcmp(magic, PNG, 8))
        fail(c, REPORT_EIO, "gnuplot wrote no PNG for '%s' (see '%s')", path_join(c, c->out, gp),
             log);
    char *dst = path_join(c, c->out, png);
    if (rename(c->tmp_path, dst))
        fail(c, REPORT_EIO, "cannot rename '%s' to '%s': %s", c->tmp_path, dst, strerror(errno));
    c->tmp_path = NULL;
    note(c, dst);
    add_png(c, png);
}

static const int POINT_TYPES[] = {7, 5, 9, 11, 13, 15, 1, 2, 3, 4, 6, 8, 10, 12, 14};
#define NPT (int)(sizeof POINT_TYPES / sizeof POINT_TYPES[0])

/* Methods in table order: c->order grouped by method. Returns the count. */
static int methods(ctx_t *c, const char ***out)
{
    const char **m = xalloc(c, sizeof(char *) * (size_t)(c->nrows + c->ncurves + 1));
    int n = 0;
    for (int j = 0; j < c->nrows; j++) {
        const char *s = lab_str(c->rows[c->order[j]].lab, "method");
        if (!n || strcmp(m[n - 1], s)) m[n++] = s;
    }
    *out = m;
    return n;
}

static void plot_fq_vs_mu(ctx_t *c)
{
    const char **meth;
    int nm = methods(c, &meth);
    int *npts = xalloc(c, sizeof(int) * (size_t)(nm + 1));
    int total = 0;
    FILE *f = out_open(c, "fq_vs_mu.dat");
    fputs("# fq_vs_mu.dat (lethe report): one block per method (gnuplot: index N), a line per "
          "evaluated run with a positive forget quality and a model utility.\n"
          "# columns: model_utility forget_quality log10_forget_quality folder\n",
          f);
    int block = 0;
    for (int k = 0; k < nm; k++) {
        for (int j = 0; j < c->nrows; j++) {
            const row_t *w = &c->rows[c->order[j]];
            if (strcmp(lab_str(w->lab, "method"), meth[k])) continue;
            for (int i = 0; i < w->nruns; i++) {
                const run_t *r = &c->runs[w->runs[i]];
                if (!(r->m[M_FQ] > 0 && isfinite(r->m[M_FQ]) && isfinite(r->m[M_MU]))) continue;
                if (!npts[k]) fprintf(f, "%s# block %d: %s\n", block ? "\n\n" : "", block, meth[k]);
                dat_num(f, r->m[M_MU]);
                dat_num(f, r->m[M_FQ]);
                dat_num(f, r->m[M_LOG10_FQ]);
                fputc(' ', f);
                dat_str(f, r->dir);
                fputc('\n', f);
                npts[k]++;
            }
        }
        if (npts[k]) block++;
        total += npts[k];
    }
    out_close(c, "fq_vs_mu.dat");
    if (!total) {
        c->no_fq_plot = "no run has both a positive forget quality and a model utility";
        return;
    }
    f = out_open(c, "fq_vs_mu.gp");
    gp_preamble(f, "fq_vs_mu", "forget quality against model utility, a point per run", 960, 640);
    fputs("set logscale y\nset format y '%.0e'\nset xlabel 'model utility'\n"
          "set ylabel 'forget quality (log scale)'\nset key outside right top\n"
          "set offsets graph 0.05, graph 0.05, graph 0.05, graph 0.05\n"
          "set title 'Forget quality against model utility'\nplot ",
          f);
    block = 0;
    for (int k = 0; k < nm; k++) {
        if (!npts[k]) continue;
        fprintf(f, "%s'fq_vs_mu.dat' index %d using 1:2 with points pt %d ps 1.5 lc %d title %s",
                block ? ", \\\n     " : "", block, POINT_TYPES[k % NPT], k + 1,
                gp_quote(c, meth[k]));
        block++;
    }
    fputc('\n', f);
    out_close(c, "fq_vs_mu.gp");
    draw(c, "fq_vs_mu");
}

/* A file-name-safe form of a method name. */
static char *safe_name(ctx_t *c, const char *s)
{
    char *p = xstrdup(c, s);
    for (char *q = p; *q; q++)
        if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9') ||
              *q == '-' || *q == '_' || *q == '.'))
            *q = '_';
    return p;
}

/* The title of curve i among curves idx[0..n): its labels whose values differ between
 * them ("seed=2"); when none do, its labels other than method, split and study. */
static char *curve_title(ctx_t *c, const int *idx, int n, int i)
{
    const labels *l = &c->curves[idx[i]].lab;
    char *t = "";
    for (int pass = 0; pass < 2 && !t[0]; pass++)
        for (int k = 0; k < l->n; k++) {
            const char *key = l->v[k].key;
            /* paths (a checkpoint's) make poor titles */
            if (l->v[k].v.t == LV_STR && strchr(l->v[k].v.str, '/')) continue;
            if (!strcmp(key, "method") ||
                (pass && (!strcmp(key, "split") || !strcmp(key, "study"))))
                continue;
            int varies = pass;
            for (int o = 0; o < n && !varies; o++)
                varies = lv_cmp(&l->v[k].v, lab_get(&c->curves[idx[o]].lab, key)) != 0;
            if (!varies) continue;
            char v[256];
            lv_format(v, sizeof v, &l->v[k].v);
            t = xsprintf(c, "%s%s%s=%s", t, t[0] ? " " : "", key, v);
        }
    return t[0] ? t : xstrdup(c, c->curves[idx[i]].dir);
}

static int curve_cmp(ctx_t *c, int a, int b)
{
    const curve_t *x = &c->curves[a], *y = &c->curves[b];
    if (x->row >= 0 && y->row >= 0 && x->row != y->row) {
        for (int j = 0; j < c->nrows; j++) { /* table order */
            if (c->order[j] == x->row) return -1;
            if (c->order[j] == y->row) return 1;
        }
    }
    if ((x->row < 0) != (y->row < 0)) return x->row < 0 ? 1 : -1;
    int d = lv_cmp(lab_get(&x->lab, "seed"), lab_get(&y->lab, "seed"));
    return d ? d : strcmp(x->dir, y->dir);
}

static void plot_relearn(ctx_t *c)
{
    int *idx = xalloc(c, sizeof(int) * (size_t)(c->ncurves + 1));
    char *done = xalloc(c, (size_t)c->ncurves + 1);
    for (int s = 0; s < c->ncurves; s++) {
        if (done[s]) continue;
        const char *meth = lab_str(&c->curves[s].lab, "method");
        int n = 0;
        for (int i = s; i < c->ncurves; i++)
            if (!done[i] && !strcmp(lab_str(&c->curves[i].lab, "method"), meth)) {
                done[i] = 1;
                int ok = 0;
                for (int k = 0; k < c->curves[i].n; k++) ok |= isfinite(c->curves[i].fprob[k]);
                if (ok) idx[n++] = i; /* a curve with no forget_prob draws nothing */
            }
        if (!n) continue;
        sort_idx(c, idx, n, curve_cmp);
        char *name = xsprintf(c, "relearn_%s", safe_name(c, meth));
        char *dat = xsprintf(c, "%s.dat", name), *gpn = xsprintf(c, "%s.gp", name);
        FILE *f = out_open(c, dat);
        fprintf(f,
                "# %s (lethe report): relearn curves of method %s, one block per curve "
                "(gnuplot: index N).\n# columns: step forget_prob\n",
                dat, meth);
        for (int i = 0; i < n; i++) {
            const curve_t *cv = &c->curves[idx[i]];
            fprintf(f, "%s# block %d: %s\n", i ? "\n\n" : "", i, cv->dir);
            for (int k = 0; k < cv->n; k++) {
                dat_num(f, cv->step[k]);
                dat_num(f, cv->fprob[k]);
                fputc('\n', f);
            }
        }
        out_close(c, dat);
        f = out_open(c, gpn);
        gp_preamble(f, name, "forget probability against relearn step, a line per curve", 900, 600);
        fprintf(f,
                "set xlabel 'relearn step'\nset ylabel 'forget probability'\n"
                "set key top left\nset title %s\nplot ",
                gp_quote(c, xsprintf(c, "Relearning attack on %s: forget probability", meth)));
        for (int i = 0; i < n; i++)
            fprintf(f, "%s'%s' index %d using 1:2 with linespoints pt %d lc %d title %s",
                    i ? ", \\\n     " : "", dat, i, POINT_TYPES[i % NPT], i + 1,
                    gp_quote(c, curve_title(c, idx, n, i)));
        fputc('\n', f);
        out_close(c, gpn);
        draw(c, name);
    }
}

static void plot_markov(ctx_t *c)
{
    int *rows = xalloc(c, sizeof(int) * (size_t)(c->nrows + 1));
    int n = 0;
    for (int j = 0; j < c->nrows; j++) {
        const row_t *w = &c->rows[c->order[j]];
        if (w->kl_cnt[0] || w->kl_cnt[1] || w->kl_cnt[2]) rows[n++] = c->order[j];
    }
    if (!n) return;
    FILE *f = out_open(c, "markov_kl.dat");
    fputs("# markov_kl.dat (lethe report): mean KL over seeds per setting.\n"
          "# columns: setting kl_retain kl_forget1 kl_forget2\n",
          f);
    for (int i = 0; i < n; i++) {
        const row_t *w = &c->rows[rows[i]];
        /* the setting's name: method, plus the labels that differ among these rows */
        char *t = xstrdup(c, lab_str(w->lab, "method"));
        const char *keys[2] = {"split", NULL};
        for (int h = -1; h < c->nhp; h++) {
            const char *key = h < 0 ? keys[0] : c->hp[h];
            int varies = 0;
            for (int o = 0; o < n && !varies; o++)
                varies = lv_cmp(lab_get(w->lab, key), lab_get(c->rows[rows[o]].lab, key)) != 0;
            if (!varies) continue;
            char v[256];
            lv_format(v, sizeof v, lab_get(w->lab, key));
            t = xsprintf(c, "%s %s=%s", t, key, v[0] ? v : "-");
        }
        dat_str(f, t);
        for (int q = 0; q < 3; q++) dat_num(f, w->kl_mean[q]);
        fputc('\n', f);
    }
    out_close(c, "markov_kl.dat");
    f = out_open(c, "markov_kl.gp");
    gp_preamble(f, "markov_kl", "KL to the true chains, grouped bars per setting", 900, 600);
    fprintf(f,
            "set style data histograms\nset style histogram clustered gap 1\n"
            "set style fill solid 0.85 border -1\nset boxwidth 0.9\nset yrange [0:*]\n"
            "set grid noxtics\nset ylabel 'KL to the true transition matrix (nats/token)'\n"
            "set key outside right top\n%s"
            "set title 'Mixture of Markov chains'\n"
            "plot 'markov_kl.dat' using 2:xtic(1) title %s, '' using 3 title %s, "
            "'' using 4 title %s\n",
            n > 4 ? "set xtics rotate by -30\n" : "", gp_quote(c, KL_TITLE[0]),
            gp_quote(c, KL_TITLE[1]), gp_quote(c, KL_TITLE[2]));
    out_close(c, "markov_kl.gp");
    draw(c, "markov_kl");
}

static void write_scaling_plot(ctx_t *c)
{
    FILE *f = out_open(c, "scaling.dat");
    fprintf(f,
            "# scaling.dat (lethe report): one block per series (gnuplot: index N), see "
            "scaling.md.\n# columns: %s ranks tokens_per_s efficiency comm_share\n",
            c->x_nodes ? "nodes" : "ranks");
    int nwl = 0;
    for (int s = 0; s < c->nseries; s++) nwl += c->series[s].workload == s;
    for (int s = 0; s < c->nseries; s++) {
        const series_t *S = &c->series[s];
        fprintf(f, "%s# block %d: series %d, %s\n", s ? "\n\n" : "", s, s + 1, kind_name(S->mask));
        for (int i = 0; i < S->n; i++) {
            const point_t *p = &c->pts[S->pts[i]];
            dat_num(f, p->x);
            dat_num(f, c->bench[p->first].ranks);
            dat_num(f, p->tps);
            dat_num(f, efficiency(c, S, S->pts[i]));
            dat_num(f, p->comm / p->ms);
            fputc('\n', f);
        }
    }
    out_close(c, "scaling.dat");
    f = out_open(c, "scaling.gp");
    gp_preamble(f, "scaling", "tokens/s, efficiency and communication share against scale", 1500,
                500);
    const char *xl = c->x_nodes ? "nodes" : "ranks";
    fprintf(f,
            "set multiplot layout 1,3 title 'lethe bench: scaling (series: see scaling.md)'\n"
            "set logscale x 2\nset xlabel '%s'\nset offsets graph 0.05, graph 0.05, 0, 0\n"
            "set tmargin 4\n"
            "set key top left\n",
            xl);
    static const struct {
        int col;
        const char *ylabel, *range;
    } P[3] = {{3, "tokens/s", "[0:*]"},
              {4, "parallel efficiency", "[0:*]"},
              {5, "communication share of step time", "[0:1]"}};
    for (int k = 0; k < 3; k++) {
        fprintf(f, "set ylabel '%s'\nset yrange %s\n%splot ", P[k].ylabel, P[k].range,
                k ? "set key off\n" : "");
        for (int s = 0; s < c->nseries; s++) {
            char *title = nwl > 1 ? xsprintf(c, "%d: %s", s + 1, kind_name(c->series[s].mask))
                                  : xstrdup(c, kind_name(c->series[s].mask));
            fprintf(f, "%s'scaling.dat' index %d using 1:%d with linespoints pt %d lc %d title %s",
                    s ? ", \\\n     " : "", s, P[k].col, POINT_TYPES[s % NPT], s + 1,
                    gp_quote(c, title));
        }
        fputc('\n', f);
    }
    fputs("unset multiplot\n", f);
    out_close(c, "scaling.gp");
    draw(c, "scaling");
}

/* ------------------------------------------------------------------------------------ */

static void report_main(ctx_t *c)
{
    const report_options *o = c->o;
    if (!o->dir || !o->dir[0]) fail(c, REPORT_EINPUT, "no study folder given");
    c->dir = o->dir;
    struct stat st;
    if (stat(c->dir, &st)) fail(c, REPORT_EINPUT, "study folder '%s': %s", c->dir, strerror(errno));
    if (!S_ISDIR(st.st_mode)) fail(c, REPORT_EINPUT, "'%s' is not a folder", c->dir);
    c->out = o->out && o->out[0] ? o->out : path_join(c, c->dir, "report");
    if (!stat(c->out, &c->out_st)) {
        if (!S_ISDIR(c->out_st.st_mode))
            fail(c, REPORT_EINPUT, "output '%s' exists and is not a folder", c->out);
        if (c->out_st.st_dev == st.st_dev && c->out_st.st_ino == st.st_ino)
            fail(c, REPORT_EINPUT,
                 "output folder '%s' is the study folder itself; give --out "
                 "a folder of its own",
                 c->out);
        c->have_out = 1;
    }
    const char *env = getenv("LETHE_GNUPLOT");
    c->gnuplot = o->gnuplot && o->gnuplot[0] ? o->gnuplot : env && env[0] ? env : "gnuplot";

    /* read and group: every input error surfaces before anything is written */
    visit(c, &st);
    walk(c, c->dir, 0);
    if (!c->nruns && !c->ncurves && !c->nbench)
        fail(c, REPORT_EINPUT,
             "no results under '%s' (no folder holds summary.json, "
             "relearn.jsonl or bench.jsonl)",
             c->dir);
    group_runs(c);
    pick_best(c);
    group_bench(c);
    if (o->plots) {
        int rc = run_gnuplot(c, NULL, NULL, "--version", NULL, NULL);
        if (rc == 127)
            fail(c, REPORT_EINPUT,
                 "gnuplot '%s' cannot be run (install gnuplot-nox, set "
                 "LETHE_GNUPLOT, or pass --no-plots)",
                 c->gnuplot);
        if (rc) fail(c, REPORT_EINPUT, "'%s --version' exits with %d", c->gnuplot, rc);
    }

    mkdirs(c, c->out);
    if (o->plots) { /* a fresh log for this report */
        char *log = path_join(c, c->out, "gnuplot.log");
        c->f = fopen(log, "w");
        if (!c->f || fclose(c->f)) {
            c->f = NULL;
            fail(c, REPORT_EIO, "cannot write '%s': %s", log, strerror(errno));
        }
        c->f = NULL;
        if (c->nruns) plot_fq_vs_mu(c);
        if (c->ncurves) plot_relearn(c);
        plot_markov(c);
        if (c->nbench) write_scaling_plot(c);
    }
    if (c->nrows) {
        write_csv(c, "results.csv", c->order, c->nrows);
        write_csv(c, "best.csv", c->best, c->nbest);
        write_runs_csv(c);
    }
    if (c->nrows || c->ncurves) write_results_md(c);
    if (c->nbench) write_scaling_md(c);
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
