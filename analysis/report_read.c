/* analysis/report_read.c — the read phase of `lethe report`: the walk of the tree, every
 * result file parsed and checked (run folders with labels and metrics, relearning
 * curves, bench lines). All input errors surface here, before anything is written. */
#include "report_impl.h"

#include <cjson/cJSON.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "metrics.h"
#include "../io/safefile.h"

/* ------------------------------------------------------------------------------------ */
/* Reading JSON. */

static void drop_text(ctx_t *c)
{
    free(c->text);
    c->text = NULL;
}

void rp_drop_doc(ctx_t *c)
{
    cJSON_Delete(c->doc);
    c->doc = NULL;
}

/* Reads path into c->text (NUL-terminated); *len its length. */
static void read_text(ctx_t *c, const char *path, size_t *len)
{
    drop_text(c);
    char err[PATH_MAX + 200];
    /* regular files only (a FIFO named labels.json never blocks), at most 256 MiB */
    c->text = safe_read(path, "report input", MAX_INPUT_BYTES, len, err, sizeof err);
    if (!c->text) rp_fail(c, REPORT_EINPUT, "%s", err);
}

const char *rp_describe(const cJSON *v)
{
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsArray(v)) return "an array";
    if (cJSON_IsObject(v)) return "an object";
    return "invalid";
}

/* The first non-finite number under v (cJSON reads 1e400 as inf), its dotted key in
 * key (klen bytes, built on the way out): the number, or NULL when every one is finite. */
static const cJSON *first_nonfinite(const cJSON *v, char *key, size_t klen)
{
    if (cJSON_IsNumber(v)) return isfinite(v->valuedouble) ? NULL : v;
    int i = 0;
    for (const cJSON *e = (cJSON_IsObject(v) || cJSON_IsArray(v)) ? v->child : NULL; e;
         e = e->next, i++) {
        const cJSON *bad = first_nonfinite(e, key, klen);
        if (!bad) continue;
        char tail[256];
        snprintf(tail, sizeof tail, "%.250s", key);
        if (cJSON_IsObject(v))
            snprintf(key, klen, "%.200s%s%.250s", e->string, tail[0] && tail[0] != '[' ? "." : "",
                     tail);
        else
            snprintf(key, klen, "[%d]%s%.250s", i, tail[0] && tail[0] != '[' ? "." : "", tail);
        return bad;
    }
    return NULL;
}

/* A result with a non-finite number is refused, naming the key, so that no table or
 * plot shows an overflow as a value. */
static void check_finite(ctx_t *c, const char *where, const cJSON *doc)
{
    char key[512] = "";
    const cJSON *bad = first_nonfinite(doc, key, sizeof key);
    if (bad)
        rp_fail(c, REPORT_EINPUT, "%s: key '%s' is not a finite number (%g)", where, key,
                bad->valuedouble);
}

/* Parses text[0..len) into c->doc; `where` names the file (and line) in messages. */
static cJSON *parse_json(ctx_t *c, const char *where, const char *text, size_t len)
{
    rp_drop_doc(c);
    size_t i = 0;
    while (i < len && strchr(" \t\r\n", text[i])) i++;
    if (i == len) rp_fail(c, REPORT_EINPUT, "%s: empty, expected a JSON object", where);
    const char *end = NULL;
    c->doc = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (c->doc) { /* only whitespace may follow the value */
        size_t k = (size_t)(end - text);
        while (k < len && strchr(" \t\r\n", text[k])) k++;
        if (k < len) {
            rp_drop_doc(c);
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
        rp_fail(c, REPORT_EINPUT, "%s: not valid JSON (line %d, column %d)", where, line, col);
    }
    if (!cJSON_IsObject(c->doc))
        rp_fail(c, REPORT_EINPUT, "%s: is %s, expected a JSON object", where, rp_describe(c->doc));
    check_finite(c, where, c->doc);
    return c->doc;
}

cJSON *rp_load_json(ctx_t *c, const char *path)
{
    size_t len;
    read_text(c, path, &len);
    char *where = rp_xsprintf(c, "'%s'", path);
    cJSON *doc = parse_json(c, where, c->text, len);
    drop_text(c);
    return doc;
}

/* A number, or NaN for null or (when optional) absent. `pre` prefixes the key in
 * messages ("splits.forget05."). */
double rp_get_num(ctx_t *c, const char *where, const cJSON *obj, const char *pre, const char *key,
                  int required)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v) {
        if (required) rp_fail(c, REPORT_EINPUT, "%s: missing key '%s%s'", where, pre, key);
        return NAN;
    }
    if (cJSON_IsNull(v)) return NAN;
    if (!cJSON_IsNumber(v))
        rp_fail(c, REPORT_EINPUT, "%s: key '%s%s' is %s, expected a number or null", where, pre,
                key, rp_describe(v));
    return v->valuedouble;
}

/* A required positive (or non-negative) finite number. */
static double get_pos(ctx_t *c, const char *where, const cJSON *obj, const char *key,
                      int allow_zero)
{
    double v = rp_get_num(c, where, obj, "", key, 1);
    if (!(isfinite(v) && (v > 0 || (allow_zero && v == 0))))
        rp_fail(c, REPORT_EINPUT, "%s: key '%s' = %.6g, expected a %s number", where, key, v,
                allow_zero ? "finite non-negative" : "finite positive");
    return v;
}

/* An integer in [lo, hi]; absent gives `def` unless required. */
static int get_int(ctx_t *c, const char *where, const cJSON *obj, const char *key, int required,
                   int lo, int hi, int def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v && !required) return def;
    double d = rp_get_num(c, where, obj, "", key, 1);
    if (!(d == floor(d) && d >= lo && d <= hi))
        rp_fail(c, REPORT_EINPUT, "%s: key '%s' = %.6g, expected an integer in [%d, %d]", where,
                key, d, lo, hi);
    return (int)d;
}

/* An object, or NULL when optional and absent or null. */
const cJSON *rp_get_obj(ctx_t *c, const char *where, const cJSON *obj, const char *pre,
                        const char *key, int required)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || (!required && cJSON_IsNull(v))) {
        if (required) rp_fail(c, REPORT_EINPUT, "%s: missing key '%s%s'", where, pre, key);
        return NULL;
    }
    if (!cJSON_IsObject(v))
        rp_fail(c, REPORT_EINPUT, "%s: key '%s%s' is %s, expected an object%s", where, pre, key,
                rp_describe(v), required ? "" : " or null");
    return v;
}

const char *rp_get_str(ctx_t *c, const char *where, const cJSON *obj, const char *pre,
                       const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v) rp_fail(c, REPORT_EINPUT, "%s: missing key '%s%s'", where, pre, key);
    if (!cJSON_IsString(v) || !v->valuestring[0])
        rp_fail(c, REPORT_EINPUT, "%s: key '%s%s' is %s, expected a non-empty string", where, pre,
                key, cJSON_IsString(v) ? "empty" : rp_describe(v));
    return v->valuestring;
}

/* ------------------------------------------------------------------------------------ */
/* The three kinds of result folder. */

static void labels_required(ctx_t *c, const char *dir, const char *what)
{
    struct stat st;
    char *lp = rp_path_join(c, dir, "labels.json");
    if (stat(lp, &st))
        rp_fail(c, REPORT_EINPUT, "'%s': missing (a folder with %s needs its labels.json)", lp,
                what);
}

/* The forget split's per-bucket metrics, when the evaluation wrote them. */
static void read_buckets(ctx_t *c, const char *where, const cJSON *fs, const char *pre, run_t *r)
{
    static const char *const BUCKET[NBUCKET] = {"short", "long"};
    static const char *const KEY[NBMETRIC] = {"n", "prob", "rouge_recall", "truth_ratio"};
    for (int k = 0; k < NBUCKET; k++)
        for (int m = 0; m < NBMETRIC; m++) r->bucket[k][m] = NAN;
    const cJSON *b = rp_get_obj(c, where, fs, pre, "buckets", 0);
    if (!b) return;
    char *bpre = rp_xsprintf(c, "%sbuckets.", pre);
    for (int k = 0; k < NBUCKET; k++) {
        const cJSON *o = rp_get_obj(c, where, b, bpre, BUCKET[k], 0);
        char *opre = rp_xsprintf(c, "%s%s.", bpre, BUCKET[k]);
        for (int m = 0; o && m < NBMETRIC; m++)
            r->bucket[k][m] = rp_get_num(c, where, o, opre, KEY[m], 0);
    }
}

/* The phase label: absent (a study from before phases) is the report phase. */
static int run_phase(ctx_t *c, const char *dir, const labels *l)
{
    const lvalue *v = rp_lab_get(l, "phase");
    if (!v) return PHASE_REPORT;
    if (v->t == LV_STR && !strcmp(v->str, "report")) return PHASE_REPORT;
    if (v->t == LV_STR && !strcmp(v->str, "selection")) return PHASE_SELECTION;
    char b[256];
    rp_lv_format(b, sizeof b, v);
    rp_fail(c, REPORT_EINPUT,
            "'%s/labels.json': key 'phase' = %s, expected \"selection\" or "
            "\"report\"",
            dir, b);
}

static void load_run(ctx_t *c, const char *dir)
{
    labels_required(c, dir, "summary.json");
    RESERVE(c, c->runs, c->nruns, c->capruns);
    run_t *r = &c->runs[c->nruns];
    memset(r, 0, sizeof *r);
    r->dir = dir;
    rp_read_labels(c, rp_path_join(c, dir, "labels.json"), &r->lab, 1);
    r->phase = run_phase(c, dir, &r->lab);

    char *sp = rp_path_join(c, dir, "summary.json");
    char *where = rp_xsprintf(c, "'%s'", sp);
    const cJSON *s = rp_load_json(c, sp);
    const cJSON *splits = rp_get_obj(c, where, s, "", "splits", 1);
    const cJSON *roles = rp_get_obj(c, where, s, "", "roles", 1);
    /* An evaluation without a forget (or retain) split writes no such role: those
     * metrics then have no value. A role naming a split that is not there is an error. */
    static const char *const ROLE[2] = {"forget", "retain"};
    const cJSON *sp_obj[2] = {NULL, NULL};
    char *pre[2] = {"", ""};
    for (int k = 0; k < 2; k++) {
        const cJSON *rv = cJSON_GetObjectItemCaseSensitive(roles, ROLE[k]);
        if (!rv || cJSON_IsNull(rv)) continue;
        const char *name = rp_get_str(c, where, roles, "roles.", ROLE[k]);
        if (!cJSON_GetObjectItemCaseSensitive(splits, name))
            rp_fail(c, REPORT_EINPUT, "%s: roles.%s = \"%s\" is not a key of splits", where,
                    ROLE[k], name);
        sp_obj[k] = rp_get_obj(c, where, splits, "splits.", name, 1);
        pre[k] = rp_xsprintf(c, "splits.%s.", name);
    }
    for (int m = 0; m < NMETRIC; m++) r->m[m] = NAN;
    r->m[M_FQ] = rp_get_num(c, where, s, "", "forget_quality", 0);
    r->m[M_LOG10_FQ] = rp_get_num(c, where, s, "", "log10_forget_quality", 0);
    r->m[M_FQ_TW] = rp_get_num(c, where, s, "", "forget_quality_trained_wording", 0);
    r->m[M_MU] = rp_get_num(c, where, s, "", "model_utility", 1);
    r->m[M_GAP] = rp_get_num(c, where, s, "", "forget_prob_gap", 0);
    if (sp_obj[0]) {
        r->m[M_FPROB] = rp_get_num(c, where, sp_obj[0], pre[0], "prob", 0);
        r->m[M_FROUGE] = rp_get_num(c, where, sp_obj[0], pre[0], "rouge_recall", 0);
        r->m[M_FTR] = rp_get_num(c, where, sp_obj[0], pre[0], "truth_ratio", 0);
    }
    if (sp_obj[1]) {
        r->m[M_RPROB] = rp_get_num(c, where, sp_obj[1], pre[1], "prob", 0);
        r->m[M_RROUGE] = rp_get_num(c, where, sp_obj[1], pre[1], "rouge_recall", 0);
    }
    const cJSON *muse = rp_get_obj(c, where, s, "", "muse", 0);
    if (muse) r->m[M_PRIVLEAK] = rp_get_num(c, where, muse, "muse.", "privleak", 0);
    const cJSON *markov = rp_get_obj(c, where, s, "", "markov", 0);
    if (markov) {
        r->has_markov = 1;
        for (int k = 0; k < 3; k++)
            r->kl[k] = rp_get_num(c, where, markov, "markov.", RP_KL_KEY[k], 1);
    }
    if (sp_obj[0]) read_buckets(c, where, sp_obj[0], pre[0], r);
    const cJSON *ck = cJSON_GetObjectItemCaseSensitive(s, "checkpoint");
    if (ck && !cJSON_IsNull(ck))
        r->checkpoint = rp_xstrdup(c, rp_get_str(c, where, s, "", "checkpoint"));
    r->budget = -1;
    const cJSON *errs = cJSON_GetObjectItemCaseSensitive(s, "errors");
    if (errs && !cJSON_IsNull(errs)) {
        if (!cJSON_IsArray(errs))
            rp_fail(c, REPORT_EINPUT, "%s: key 'errors' is %s, expected an array of strings", where,
                    rp_describe(errs));
        int n = cJSON_GetArraySize(errs), i = 0;
        r->errs = rp_xalloc(c, sizeof(char *) * (size_t)(n ? n : 1));
        const cJSON *e;
        cJSON_ArrayForEach(e, errs)
        {
            if (!cJSON_IsString(e))
                rp_fail(c, REPORT_EINPUT, "%s: errors[%d] is %s, expected a string", where, i,
                        rp_describe(e));
            r->errs[i++] = rp_xstrdup(c, e->valuestring);
        }
        r->nerr = n;
    }
    rp_drop_doc(c);
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
    char *copy = rp_xalloc(c, len + 1);
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
            char *where = rp_xsprintf(c, "'%s' line %d", path, line);
            parse_json(c, where, p, (size_t)(e - p));
            fn(c, where, line, arg);
            rp_drop_doc(c);
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
    double step = rp_get_num(c, where, c->doc, "", "step", 1);
    if (!isfinite(step) || step < 0)
        rp_fail(c, REPORT_EINPUT, "%s: key 'step' = %.6g, expected a step number >= 0", where,
                step);
    double fp = rp_get_num(c, where, c->doc, "", "forget_prob", 0);
    if (a->n == a->cap) {
        int cap = a->cap;
        a->step = rp_grow(c, a->step, &cap, sizeof(double), a->n);
        a->fprob = rp_grow(c, a->fprob, &a->cap, sizeof(double), a->n);
    }
    a->step[a->n] = step;
    a->fprob[a->n++] = fp;
}

static void load_curve(ctx_t *c, const char *dir)
{
    labels_required(c, dir, "relearn.jsonl");
    labels lab;
    rp_read_labels(c, rp_path_join(c, dir, "labels.json"), &lab, 1);
    char *path = rp_path_join(c, dir, "relearn.jsonl");
    curve_acc a = {0};
    for_lines(c, path, curve_line, &a);
    if (a.n == 0)
        rp_fail(c, REPORT_EINPUT, "'%s': no lines, expected one JSON object per step", path);
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
            rp_fail(c, REPORT_EINPUT, "'%s': step %.10g appears twice", path, a.step[i]);
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
        rp_fail(c, REPORT_EINPUT, "%s: key 'job' is %s%s%s, expected \"bench\"", where,
                cJSON_IsString(job) ? "\"" : rp_describe(job),
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
        rp_fail(c, REPORT_EINPUT, "%s: dp*pp*tp = %d*%d*%d is not ranks = %d", where, b->dp, b->pp,
                b->tp, b->ranks);
    b->mb = get_int(c, where, d, "micro_batches", 0, 1, 1 << 24, 0);
    b->threads = get_int(c, where, d, "threads", 0, 1, 1 << 16, 0);
    b->params = rp_get_num(c, where, d, "", "params", 0);
    b->batch = rp_get_num(c, where, d, "", "batch", 0);
    b->seq_len = rp_get_num(c, where, d, "", "seq_len", 0);
    const cJSON *core = cJSON_GetObjectItemCaseSensitive(d, "blas_core");
    if (core && !cJSON_IsString(core))
        rp_fail(c, REPORT_EINPUT, "%s: key 'blas_core' is %s, expected a string", where,
                rp_describe(core));
    b->blas = rp_xstrdup(c, core ? core->valuestring : "");
    b->tps = get_pos(c, where, d, "tokens_per_s", 0);
    b->ms = get_pos(c, where, d, "ms_per_step", 0);
    b->comm = get_pos(c, where, d, "comm_ms", 1);
    b->bubble = rp_get_num(c, where, d, "", "bubble_ms", 0);
    b->gflops = rp_get_num(c, where, d, "", "model_gflops", 0);
    b->pct_peak = rp_get_num(c, where, d, "", "pct_sgemm_peak", 0);
    c->nbench++;
}

static void load_bench(ctx_t *c, const char *dir)
{
    bench_ctx bc = {dir, {NULL, 0}, NAN};
    char *lp = rp_path_join(c, dir, "labels.json");
    struct stat st;
    if (!stat(lp, &st)) {
        rp_read_labels(c, lp, &bc.lab, 0);
        const lvalue *nv = rp_lab_get(&bc.lab, "nodes");
        if (nv) {
            if (!(nv->t == LV_NUM && nv->num >= 1 && nv->num == floor(nv->num)))
                rp_fail(c, REPORT_EINPUT, "'%s': key 'nodes' must be an integer >= 1", lp);
            bc.nodes = nv->num;
        }
    }
    char *path = rp_path_join(c, dir, "bench.jsonl");
    int before = c->nbench;
    for_lines(c, path, bench_line, &bc);
    if (c->nbench == before)
        rp_fail(c, REPORT_EINPUT, "'%s': no lines, expected one JSON object per benchmark", path);
}

/* ------------------------------------------------------------------------------------ */
/* The walk. */

int rp_name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int rp_visit(ctx_t *c, const struct stat *st)
{
    for (int i = 0; i < c->nvisited; i++)
        if (c->visited[i].dev == st->st_dev && c->visited[i].ino == st->st_ino) return 0;
    RESERVE(c, c->visited, c->nvisited, c->capvisited);
    c->visited[c->nvisited].dev = st->st_dev;
    c->visited[c->nvisited++].ino = st->st_ino;
    return 1;
}

/* A folder a re-run set aside: <job>.old-N (lethe study --rerun-changed) or
 * <name>.previous (a job's own completed results, jobs/output_guard.c). Its results were
 * replaced; reading them would count a run twice. */
static int set_aside(const char *name)
{
    size_t n = strlen(name), k = n;
    while (k > 0 && name[k - 1] >= '0' && name[k - 1] <= '9') k--;
    if (k < n && k >= 5 && !strncmp(name + k - 5, ".old-", 5)) return 1;
    return n > 9 && !strcmp(name + n - 9, ".previous");
}

void rp_walk(ctx_t *c, const char *dir, int depth)
{
    if (depth > MAX_DEPTH)
        rp_fail(c, REPORT_EINPUT, "'%s': folders nested more than %d deep", dir, MAX_DEPTH);
    c->dh = opendir(dir);
    if (!c->dh) rp_fail(c, REPORT_EINPUT, "cannot read folder '%s': %s", dir, strerror(errno));
    char **names = NULL;
    int n = 0, cap = 0;
    for (;;) {
        errno = 0;
        struct dirent *e = readdir(c->dh);
        if (!e) {
            if (errno)
                rp_fail(c, REPORT_EINPUT, "cannot read folder '%s': %s", dir, strerror(errno));
            break;
        }
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        RESERVE(c, names, n, cap);
        names[n++] = rp_xstrdup(c, e->d_name);
    }
    closedir(c->dh);
    c->dh = NULL;
    if (n > 1) qsort(names, (size_t)n, sizeof *names, rp_name_cmp);

    int has[5] = {0}; /* summary.json, relearn.jsonl, bench.jsonl, selected.json, provenance */
    static const char *const FILES[5] = {"summary.json", "relearn.jsonl", "bench.jsonl",
                                         "selected.json", "provenance.json"};
    const char **subs = NULL;
    int nsub = 0, capsub = 0;
    for (int i = 0; i < n; i++) {
        char *p = rp_path_join(c, dir, names[i]);
        struct stat st, lst;
        if (stat(p, &st)) {
            if (errno == ENOENT) continue; /* a dangling link: nothing there */
            rp_fail(c, REPORT_EINPUT, "cannot stat '%s': %s", p, strerror(errno));
        }
        /* a link to a folder may lead out of the study (to /): never followed */
        if (S_ISDIR(st.st_mode) && !lstat(p, &lst) && S_ISLNK(lst.st_mode)) continue;
        if (S_ISDIR(st.st_mode)) {
            if (set_aside(names[i])) continue;
            if (c->have_out && st.st_dev == c->out_st.st_dev && st.st_ino == c->out_st.st_ino)
                continue; /* our own output: a re-run must not read it */
            if (!rp_visit(c, &st)) continue;
            RESERVE(c, subs, nsub, capsub);
            subs[nsub++] = p;
        } else if (S_ISREG(st.st_mode)) {
            for (int k = 0; k < 5; k++)
                if (!strcmp(names[i], FILES[k])) has[k] = 1;
        }
    }
    if (has[0]) load_run(c, dir);
    if (has[1]) load_curve(c, dir);
    if (has[2]) load_bench(c, dir);
    if (has[3]) rp_load_selected(c, dir);
    if (has[4]) rp_load_cost(c, dir);
    for (int i = 0; i < nsub; i++) rp_walk(c, subs[i], depth + 1);
}
