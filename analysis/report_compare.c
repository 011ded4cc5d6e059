/* analysis/report_compare.c — the honest comparisons of `lethe report`: which setting
 * each method reports on each forget split (selected.json's choice on the selection
 * seeds, or, in a study without phases, its only setting or the best-rule pick on the
 * same seeds), the paired comparison of every two methods on the report seeds (log10
 * forget quality, |forget prob − retrained model's|, relearn recovery after k steps; by
 * analysis/stats.h), each method's Pareto front over its settings, and the unlearning
 * budgets (budget.json beside each eval's checkpoint). Reads selected.json and budget.json;
 * writes nothing (report_compare_md.c and report_plot_fq.c do). */
#include "report_impl.h"

#include <cjson/cJSON.h>

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int is_reference(const char *method)
{
    return !strcmp(method, "origin") || !strcmp(method, "retrain");
}

/* ------------------------------------------------------------------------------------ */
/* Inputs: selected.json and budget.json. */

static double nonneg(ctx_t *c, const char *where, const cJSON *d, const char *key, int allow_null)
{
    double v = rp_get_num(c, where, d, "", key, 1);
    if (isnan(v) && allow_null) return v;
    if (!(v >= 0))
        rp_fail(c, REPORT_EINPUT, "%s: key '%s' = %.6g, expected a number >= 0", where, key, v);
    return v;
}

void rp_load_selected(ctx_t *c, const char *dir)
{
    char *path = rp_path_join(c, dir, "selected.json");
    char *where = rp_xsprintf(c, "'%s'", path);
    const cJSON *d = rp_load_json(c, path);
    selected_t s = {0};
    s.dir = dir;
    s.method = rp_xstrdup(c, rp_get_str(c, where, d, "", "method"));
    s.forget = rp_xstrdup(c, rp_get_str(c, where, d, "", "forget"));
    s.setting = rp_xstrdup(c, rp_get_str(c, where, d, "", "setting"));
    const cJSON *rule = cJSON_GetObjectItemCaseSensitive(d, "rule");
    s.rule = rule && !cJSON_IsNull(rule) ? rp_xstrdup(c, rp_get_str(c, where, d, "", "rule")) : "";
    s.tau = nonneg(c, where, d, "tau", 0);
    s.mu_origin = nonneg(c, where, d, "mu_origin", 1);
    const cJSON *el = cJSON_GetObjectItemCaseSensitive(d, "eligible");
    if (!cJSON_IsBool(el))
        rp_fail(c, REPORT_EINPUT, "%s: key 'eligible' is %s, expected true or false", where,
                el ? rp_describe(el) : "missing");
    s.eligible = cJSON_IsTrue(el);
    const cJSON *cand = cJSON_GetObjectItemCaseSensitive(d, "candidates");
    if (!cJSON_IsArray(cand))
        rp_fail(c, REPORT_EINPUT, "%s: key 'candidates' is %s, expected an array", where,
                cand ? rp_describe(cand) : "missing");
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, cand)
    {
        if (!cJSON_IsObject(e))
            rp_fail(c, REPORT_EINPUT, "%s: candidates[%d] is %s, expected an object", where, i,
                    rp_describe(e));
        rp_get_str(c, where, e, rp_xsprintf(c, "candidates[%d].", i), "setting");
        i++;
    }
    s.ncand = i;
    for (int k = 0; k < c->nsel; k++)
        if (!strcmp(c->sel[k].method, s.method) && !strcmp(c->sel[k].forget, s.forget))
            rp_fail(c, REPORT_EINPUT, "'%s' and '%s' both hold the selection of %s on %s",
                    c->sel[k].dir, dir, s.method, s.forget);
    rp_drop_doc(c);
    RESERVE(c, c->sel, c->nsel, c->capsel);
    c->sel[c->nsel++] = s;
}

/* The budget.json of a run's unlearn job: in the study folder under the name of the
 * checkpoint's folder when there is one (the study's own copy, also after the study was
 * moved or copied), else beside the checkpoint as named. NULL when neither exists. */
static char *budget_path(ctx_t *c, const run_t *r, struct stat *st)
{
    char *folder = rp_xstrdup(c, r->checkpoint);
    char *slash = strrchr(folder, '/');
    if (!slash) return NULL;
    *slash = 0;
    char *base = strrchr(folder, '/');
    char *p = rp_path_join(c, rp_path_join(c, c->dir, base ? base + 1 : folder), "budget.json");
    if (!stat(p, st) && S_ISREG(st->st_mode)) return p;
    p = rp_path_join(c, folder[0] ? folder : "/", "budget.json");
    if (!stat(p, st) && S_ISREG(st->st_mode)) return p;
    return NULL;
}

void rp_read_budgets(ctx_t *c)
{
    for (int i = 0; i < c->nruns; i++) {
        run_t *r = &c->runs[i];
        struct stat st;
        char *path;
        if (!r->checkpoint || is_reference(rp_lab_str(&r->lab, "method")) ||
            !(path = budget_path(c, r, &st)))
            continue;
        int k = 0;
        while (k < c->nbudgets &&
               !(c->budgets[k].dev == st.st_dev && c->budgets[k].ino == st.st_ino))
            k++;
        if (k == c->nbudgets) {
            char *where = rp_xsprintf(c, "'%s'", path);
            const cJSON *d = rp_load_json(c, path);
            budget_t b = {
                path, rp_lab_str(&r->lab, "method"), r->phase, 0, 0, 0, 0, 0, st.st_dev, st.st_ino};
            b.tokens = nonneg(c, where, d, "tokens", 0);
            b.steps = nonneg(c, where, d, "steps", 0);
            b.cpu_s = nonneg(c, where, d, "cpu_seconds", 0);
            b.wall_s = nonneg(c, where, d, "wall_seconds", 0);
            b.ranks = nonneg(c, where, d, "ranks", 0);
            rp_drop_doc(c);
            RESERVE(c, c->budgets, c->nbudgets, c->capbudgets);
            c->budgets[c->nbudgets++] = b;
        } else if (strcmp(c->budgets[k].method, rp_lab_str(&r->lab, "method"))) {
            rp_fail(c, REPORT_EINPUT, "'%s' is the budget of runs of two methods (%s, %s)",
                    c->budgets[k].dir, c->budgets[k].method, rp_lab_str(&r->lab, "method"));
        }
        r->budget = k;
    }
}

/* ------------------------------------------------------------------------------------ */
/* Values. */

double rp_log10_fq(const run_t *r)
{
    if (!isnan(r->m[M_LOG10_FQ])) return r->m[M_LOG10_FQ];
    return r->m[M_FQ] > 0 ? log10(r->m[M_FQ]) : NAN;
}

/* The mean over a row's runs of their log10 FQ (not the log of the mean FQ). */
double rp_row_log10_fq(const ctx_t *c, const row_t *w)
{
    double s = 0;
    int k = 0;
    for (int i = 0; i < w->nruns; i++) {
        double v = rp_log10_fq(&c->runs[w->runs[i]]);
        if (!isnan(v)) s += v, k++;
    }
    return k ? s / k : NAN;
}

/* The origin's mean MU on a split (its report row), NaN without one. */
double rp_origin_mu(const ctx_t *c, const char *split)
{
    for (int j = 0; j < c->nrep; j++) {
        const row_t *w = &c->rows[c->order[j]];
        if (!strcmp(rp_lab_str(w->lab, "method"), "origin") &&
            !strcmp(rp_lab_str(w->lab, "split"), split))
            return w->mean[M_MU];
    }
    return NAN;
}

/* τ · MU(origin) on a split: the first selected.json naming it gives τ and MU(origin)
 * (null: the origin's report row); NaN when none names the split. */
double rp_mu_threshold(const ctx_t *c, const char *split, double *tau)
{
    *tau = NAN;
    for (int k = 0; k < c->nsel; k++) {
        if (strcmp(c->sel[k].forget, split)) continue;
        *tau = c->sel[k].tau;
        double mu0 = c->sel[k].mu_origin;
        return *tau * (isnan(mu0) ? rp_origin_mu(c, split) : mu0);
    }
    return NAN;
}

/* ------------------------------------------------------------------------------------ */
/* The reported setting per method and split. */

static int find_sel(const ctx_t *c, const char *method, const char *split)
{
    for (int k = 0; k < c->nsel; k++)
        if (!strcmp(c->sel[k].method, method) && !strcmp(c->sel[k].forget, split)) return k;
    return -1;
}

static void pick_reported(ctx_t *c)
{
    for (int g = 0; g < c->nrep;) {
        const labels *l0 = c->rows[c->order[g]].lab;
        const char *m = rp_lab_str(l0, "method"), *sp = rp_lab_str(l0, "split");
        int e = g;
        while (e < c->nrep && !strcmp(rp_lab_str(c->rows[c->order[e]].lab, "method"), m) &&
               !strcmp(rp_lab_str(c->rows[c->order[e]].lab, "split"), sp))
            e++;
        if (!is_reference(m)) {
            reported_t r = {m, sp, -1, find_sel(c, m, sp), 0};
            for (int i = g; i < e; i++) {
                int j = c->order[i];
                if (r.sel >= 0) {
                    if (!strcmp(rp_lab_str(c->rows[j].lab, "setting"), c->sel[r.sel].setting))
                        r.row = j;
                } else if (e - g == 1) {
                    r.row = j;
                } else {
                    for (int b = 0; b < c->nbest; b++)
                        if (c->best[b] == j) r.row = j, r.same_seeds = 1;
                }
            }
            RESERVE(c, c->rep, c->nrepm, c->caprepm);
            c->rep[c->nrepm++] = r;
        }
        g = e;
    }
}

/* ------------------------------------------------------------------------------------ */
/* Paired comparisons. */

static int curve_has(const curve_t *cv, double step, double *fp)
{
    for (int i = 0; i < cv->n; i++)
        if (cv->step[i] == step) {
            *fp = cv->fprob[i];
            return 1;
        }
    return 0;
}

/* The largest step > 0 that every curve of rows a and b has, with step 0; NaN if none. */
static double common_step(const ctx_t *c, int ra, int rb)
{
    const curve_t *first = NULL;
    int has_a = 0, has_b = 0;
    for (int i = 0; i < c->ncurves; i++) {
        has_a |= c->curves[i].row == ra, has_b |= c->curves[i].row == rb;
        if (!first && (c->curves[i].row == ra || c->curves[i].row == rb)) first = &c->curves[i];
    }
    if (!has_a || !has_b) return NAN; /* a method without curves: nothing to pair */
    for (int s = first->n - 1; s >= 0; s--) {
        double k = first->step[s], fp;
        if (k <= 0) break;
        int all = 1;
        for (int i = 0; i < c->ncurves && all; i++)
            if (c->curves[i].row == ra || c->curves[i].row == rb)
                all = curve_has(&c->curves[i], k, &fp) && curve_has(&c->curves[i], 0, &fp);
        if (all) return k;
    }
    return NAN;
}

/* A run's relearn recovery after k steps: forget prob at k minus at 0, the mean over its
 * curves (the curves of its setting with its seed). */
static double run_recovery(const ctx_t *c, const run_t *r, double k)
{
    double s = 0, a, b;
    int n = 0;
    for (int i = 0; i < c->ncurves && !isnan(k); i++) {
        const curve_t *cv = &c->curves[i];
        if (cv->row != r->row ||
            rp_lv_cmp(rp_lab_get(&cv->lab, "seed"), rp_lab_get(&r->lab, "seed")))
            continue;
        if (curve_has(cv, k, &a) && curve_has(cv, 0, &b) && !isnan(a) && !isnan(b)) s += a - b, n++;
    }
    return n ? s / n : NAN;
}

static void compare_pair(ctx_t *c, pair_t *p, double *d, double *work)
{
    const row_t *A = &c->rows[c->rep[p->a].row], *B = &c->rows[c->rep[p->b].row];
    int n = A->nruns;
    double *v = rp_xalloc(c, sizeof(double) * (size_t)(2 * NCMP * n + 1));
    double *va[NCMP], *vb[NCMP];
    for (int q = 0; q < NCMP; q++) va[q] = v + 2 * q * n, vb[q] = va[q] + n;
    p->rec_k = common_step(c, c->rep[p->a].row, c->rep[p->b].row);
    int k = 0;
    for (int i = 0; i < A->nruns; i++) {
        const run_t *ra = &c->runs[A->runs[i]], *rb = NULL;
        for (int j = 0; j < B->nruns && !rb; j++)
            if (!rp_lv_cmp(rp_lab_get(&ra->lab, "seed"),
                           rp_lab_get(&c->runs[B->runs[j]].lab, "seed")))
                rb = &c->runs[B->runs[j]];
        if (!rb) continue;
        va[CMP_FQ][k] = rp_log10_fq(ra), vb[CMP_FQ][k] = rp_log10_fq(rb);
        va[CMP_GAP][k] = fabs(ra->m[M_GAP]), vb[CMP_GAP][k] = fabs(rb->m[M_GAP]);
        va[CMP_REC][k] = run_recovery(c, ra, p->rec_k),
        vb[CMP_REC][k] = run_recovery(c, rb, p->rec_k);
        k++;
    }
    /* higher log10 FQ is better; a smaller gap to the retrained model and a smaller
     * recovery under relearning are better */
    p->nseeds = k;
    for (int q = 0; q < NCMP; q++)
        stats_paired_compare(&p->s[q], va[q], vb[q], k, q == CMP_FQ, d, work);
    /* The runs did not vary with the seed when every quantity's difference is the same
     * on every seed: then none is shown. FQ alone being the same is no sign of it (a
     * KS p-value over a small forget set takes few values): it is then a test as any. */
    int fixed = 1, any = 0;
    for (int q = 0; q < NCMP; q++)
        if (p->s[q].n >= 2) any = 1, fixed &= p->s[q].same;
    for (int q = 0; q < NCMP; q++) p->s[q].same = any && fixed && p->s[q].n >= 2;
}

static void pareto(ctx_t *c)
{
    c->on_front = rp_xalloc(c, sizeof(int) * (size_t)(c->nrows + 1));
    for (int j = 0; j < c->nrows; j++) c->on_front[j] = -1; /* not among a front's settings */
    int *idx = rp_xalloc(c, sizeof(int) * (size_t)(c->nrows + 1));
    int *fr = rp_xalloc(c, sizeof(int) * (size_t)(c->nrows + 1));
    double *x = rp_xalloc(c, sizeof(double) * (size_t)(c->nrows + 1));
    double *y = rp_xalloc(c, sizeof(double) * (size_t)(c->nrows + 1));
    char *done = rp_xalloc(c, (size_t)c->nrows + 1);
    for (int j = 0; j < c->nrows; j++) {
        if (done[j]) continue;
        const char *m = rp_lab_str(c->rows[j].lab, "method"),
                   *sp = rp_lab_str(c->rows[j].lab, "split");
        if (is_reference(m)) continue;
        /* the selection-phase settings when the method has any on the split, else its
         * report-phase ones (a study without phases) */
        int has_sel = 0;
        for (int i = 0; i < c->nrows; i++)
            has_sel |= c->rows[i].phase == PHASE_SELECTION &&
                       !strcmp(rp_lab_str(c->rows[i].lab, "method"), m) &&
                       !strcmp(rp_lab_str(c->rows[i].lab, "split"), sp);
        int n = 0;
        for (int i = 0; i < c->nrows; i++)
            if (!strcmp(rp_lab_str(c->rows[i].lab, "method"), m) &&
                !strcmp(rp_lab_str(c->rows[i].lab, "split"), sp)) {
                done[i] = 1;
                if ((c->rows[i].phase == PHASE_SELECTION) != has_sel) continue;
                idx[n] = i, x[n] = c->rows[i].mean[M_MU], y[n] = rp_row_log10_fq(c, &c->rows[i]);
                n++;
            }
        stats_pareto(fr, x, y, n);
        for (int i = 0; i < n; i++) c->on_front[idx[i]] = fr[i];
    }
}

void rp_compare(ctx_t *c)
{
    rp_read_budgets(c);
    pick_reported(c);
    pareto(c);
    double *work = rp_xalloc(c, sizeof(double) * STATS_BOOT_N);
    double *d = rp_xalloc(c, sizeof(double) * (size_t)(c->nruns + 1));
    for (int a = 0; a < c->nrepm; a++)
        for (int b = a + 1; b < c->nrepm; b++) {
            if (strcmp(c->rep[a].split, c->rep[b].split) || c->rep[a].row < 0 || c->rep[b].row < 0)
                continue;
            RESERVE(c, c->pairs, c->npairs, c->cappairs);
            pair_t *p = &c->pairs[c->npairs++];
            memset(p, 0, sizeof *p);
            p->a = a, p->b = b;
            compare_pair(c, p, d, work);
            if (!p->nseeds) c->npairs--; /* no common seed: nothing compared */
        }
    for (int i = 1; i < c->npairs; i++) /* by split, then table order */
        for (int j = i;
             j > 0 && strcmp(c->rep[c->pairs[j - 1].a].split, c->rep[c->pairs[j].a].split) > 0;
             j--) {
            pair_t t = c->pairs[j];
            c->pairs[j] = c->pairs[j - 1], c->pairs[j - 1] = t;
        }
}
