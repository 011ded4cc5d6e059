/* analysis/report_group.c — the group phase of `lethe report`: runs into settings (mean,
 * deviation, count over seeds), the best setting per method, curves onto settings,
 * bench lines into points and series with their efficiency. */
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

/* ------------------------------------------------------------------------------------ */
/* Grouping. */

/* Stable insertion sort of idx[0..n) by cmp (tables are at most thousands of rows). */
void rp_sort_idx(ctx_t *c, int *idx, int n, int (*cmp)(ctx_t *, int, int))
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
    if (c->rows[a].phase != c->rows[b].phase) return c->rows[a].phase - c->rows[b].phase;
    const char *ma = rp_lab_str(la, "method"), *mb = rp_lab_str(lb, "method");
    int d = method_rank(ma) - method_rank(mb);
    if (d) return d;
    if ((d = strcmp(ma, mb))) return d;
    if ((d = strcmp(rp_lab_str(la, "split"), rp_lab_str(lb, "split")))) return d;
    for (int k = 0; k < c->nhp; k++)
        if ((d = rp_lv_cmp(rp_lab_get(la, c->hp[k]), rp_lab_get(lb, c->hp[k])))) return d;
    return 0;
}

static int run_seed_cmp(ctx_t *c, int a, int b)
{
    return rp_lv_cmp(rp_lab_get(&c->runs[a].lab, "seed"), rp_lab_get(&c->runs[b].lab, "seed"));
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

/* The label columns (every label but method, split and seed) in name order, and which of them every
 * run shares. */
static void label_columns(ctx_t *c)
{
    for (int i = 0; i < c->nruns; i++)
        for (int j = 0; j < c->runs[i].lab.n; j++) {
            const char *k = c->runs[i].lab.v[j].key;
            int seen = !is_key_column(k);
            for (int h = 0; h < c->nhp && !seen; h++) seen = !strcmp(c->hp[h], k);
            if (seen) continue;
            RESERVE(c, c->hp, c->nhp, c->caphp);
            c->hp[c->nhp++] = k;
        }
    if (c->nhp > 1) qsort(c->hp, (size_t)c->nhp, sizeof *c->hp, rp_name_cmp);
    c->hp_const = rp_xalloc(c, sizeof(int) * (size_t)(c->nhp + 1));
    for (int h = 0; h < c->nhp; h++) {
        c->hp_const[h] = c->nruns > 0;
        const lvalue *v0 = c->nruns ? rp_lab_get(&c->runs[0].lab, c->hp[h]) : NULL;
        for (int i = 0; i < c->nruns; i++) {
            const lvalue *v = rp_lab_get(&c->runs[i].lab, c->hp[h]);
            if (!v || !v0 || rp_lv_cmp(v, v0)) c->hp_const[h] = 0;
        }
    }
}

/* Runs into settings (equal labels but the seed); two runs of one setting with one seed are
 * refused. */
static void group_settings(ctx_t *c)
{
    for (int i = 0; i < c->nruns; i++) {
        run_t *r = &c->runs[i];
        int j = 0;
        while (j < c->nrows && !rp_labels_equal(&r->lab, rp_ign_seed, c->rows[j].lab, rp_ign_seed))
            j++;
        if (j == c->nrows) {
            RESERVE(c, c->rows, c->nrows, c->caprows);
            memset(&c->rows[j], 0, sizeof c->rows[j]);
            c->rows[j].lab = &r->lab;
            c->rows[j].phase = r->phase;
            c->nrows++;
        }
        row_t *w = &c->rows[j];
        for (int k = 0; k < w->nruns; k++) {
            const run_t *o = &c->runs[w->runs[k]];
            if (!rp_lv_cmp(rp_lab_get(&o->lab, "seed"), rp_lab_get(&r->lab, "seed")))
                rp_fail(c, REPORT_EINPUT, "'%s' and '%s' hold runs with the same labels (%s)",
                        o->dir, r->dir, rp_labels_text(c, &r->lab));
        }
        RESERVE(c, w->runs, w->nruns, w->cap);
        w->runs[w->nruns++] = i;
        r->row = j;
    }
    for (int j = 0; j < c->nrows; j++)
        rp_sort_idx(c, c->rows[j].runs, c->rows[j].nruns, run_seed_cmp);
}

/* Each relearn curve onto the setting whose labels it holds the most of (or none); duplicate curves
 * are refused. */
static void attach_curves(ctx_t *c)
{
    for (int i = 0; i < c->ncurves; i++) {
        curve_t *cv = &c->curves[i];
        for (int k = 0; k < i; k++)
            if (rp_labels_equal(&cv->lab, rp_ign_none, &c->curves[k].lab, rp_ign_none))
                rp_fail(c, REPORT_EINPUT,
                        "'%s' and '%s' hold relearn curves with the same labels (%s)",
                        c->curves[k].dir, cv->dir, rp_labels_text(c, &cv->lab));
        int most = -1;
        for (int j = 0; j < c->nrows; j++) {
            int k = rp_labels_within(c->rows[j].lab, rp_ign_seed, &cv->lab);
            if (k > most) {
                most = k;
                cv->row = j;
            }
        }
        if (cv->row < 0) c->nunmatched++;
    }
}

/* Per setting: mean, sample sd and count of every metric and of the per-chain KL. */
static void aggregate_rows(ctx_t *c)
{
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
        for (int b = 0; b < NBUCKET; b++)
            for (int q = 0; q < NBMETRIC; q++) {
                double sd;
                for (int i = 0; i < w->nruns; i++) v[i] = c->runs[w->runs[i]].bucket[b][q];
                stats(v, w->nruns, &w->bmean[b][q], &sd, &w->bcnt[b][q]);
            }
    }
}

void rp_group_runs(ctx_t *c)
{
    label_columns(c);
    group_settings(c);
    attach_curves(c);
    aggregate_rows(c);
    c->order = rp_xalloc(c, sizeof(int) * (size_t)(c->nrows + 1));
    for (int j = 0; j < c->nrows; j++) c->order[j] = j;
    rp_sort_idx(c, c->order, c->nrows, row_cmp);
    c->nrep = 0;
    while (c->nrep < c->nrows && c->rows[c->order[c->nrep]].phase == PHASE_REPORT) c->nrep++;
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

void rp_pick_best(ctx_t *c)
{
    c->best = rp_xalloc(c, sizeof(int) * (size_t)(c->nrows + 1));
    int *cand = rp_xalloc(c, sizeof(int) * (size_t)(c->nrows + 1));
    for (int g = 0; g < c->nrep;) { /* report-phase rows only */
        const labels *l0 = c->rows[c->order[g]].lab;
        int e = g;
        while (e < c->nrep &&
               !strcmp(rp_lab_str(c->rows[c->order[e]].lab, "method"), rp_lab_str(l0, "method")) &&
               !strcmp(rp_lab_str(c->rows[c->order[e]].lab, "split"), rp_lab_str(l0, "split")))
            e++;
        int n = 0;
        for (int i = g; i < e; i++)
            if (!isnan(c->rows[c->order[i]].mean[M_FQ])) cand[n++] = c->order[i];
        if (n > 0) {
            rp_sort_idx(c, cand, n, fq_desc_cmp);
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
           !strcmp(a->blas, b->blas) &&
           rp_labels_equal(&a->lab, rp_ign_bench, &b->lab, rp_ign_bench);
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

void rp_group_bench(ctx_t *c)
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
        rp_sort_idx(c, S->pts, S->n, pt_cmp);
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
double rp_efficiency(const ctx_t *c, const series_t *S, int j)
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

const char *rp_kind_name(int mask)
{
    static const char *const K[8] = {"1 rank", "dp",    "pp",    "dp+pp",
                                     "tp",     "dp+tp", "pp+tp", "dp+pp+tp"};
    return K[mask & 7];
}
