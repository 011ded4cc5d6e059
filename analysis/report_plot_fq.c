/* analysis/report_plot_fq.c — fq_vs_mu: log10 forget quality against model utility, one
 * panel per forget split. In each panel: a point per report-phase run (a point type and
 * colour per method), each method's settings that fed its Pareto front (the selection
 * phase's means, small open circles) with the front drawn as a line, and the dashed
 * τ · MU(origin) threshold when a selected.json gives it. The y axis shows at most
 * REPORT_FQ_DECADES decades below the highest point: a run below that floor is drawn at
 * it with an open triangle (c->nclipped counts them for results.md). */
#include "report_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define REPORT_FQ_DECADES 6

/* The methods' point types: not 6 (open circle: a selection setting) nor 10 and 11
 * (triangles down: a run below the floor). */
static const int FQ_PT[] = {7, 5, 9, 13, 15, 1, 2, 3, 4, 8, 12, 14};
#define FQ_NPT (int)(sizeof FQ_PT / sizeof FQ_PT[0])

static int has_name(const char **v, int n, const char *s)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(v[i], s)) return 1;
    return 0;
}

/* Forget splits and methods in table order. */
static int names(ctx_t *c, const char *key, const char ***out)
{
    const char **v = rp_xalloc(c, sizeof(char *) * (size_t)(c->nrows + 1));
    int n = 0;
    for (int j = 0; j < c->nrows; j++) {
        const char *s = rp_lab_str(c->rows[c->order[j]].lab, key);
        if (!has_name(v, n, s)) v[n++] = s;
    }
    *out = v;
    return n;
}

static int row_in(const ctx_t *c, int j, const char *split, const char *method)
{
    return !strcmp(rp_lab_str(c->rows[j].lab, "split"), split) &&
           !strcmp(rp_lab_str(c->rows[j].lab, "method"), method);
}

/* The floor: ceil(highest) − REPORT_FQ_DECADES, or the lowest point's decade when every
 * point is above that. NaN when nothing is plotted. */
static double fq_floor(ctx_t *c)
{
    double hi = -INFINITY, lo = INFINITY;
    for (int i = 0; i < c->nruns; i++) {
        const run_t *r = &c->runs[i];
        double y = rp_log10_fq(r);
        if (r->phase != PHASE_REPORT || isnan(y) || isnan(r->m[M_MU])) continue;
        hi = fmax(hi, y), lo = fmin(lo, y);
    }
    if (hi == -INFINITY) return NAN;
    double f = ceil(hi) - REPORT_FQ_DECADES;
    return lo >= f ? floor(lo) : f;
}

typedef struct {
    int runs, sel, front; /* block indices, -1: empty */
    int nclip, nfront;
} blocks_t;

static int block_begin(FILE *f, int *block, const char *what)
{
    fprintf(f, "%s# block %d: %s\n", *block ? "\n\n" : "", *block, what);
    return (*block)++;
}

static void write_blocks(ctx_t *c, FILE *f, const char *split, const char *m, blocks_t *b,
                         int *block, double *xr)
{
    b->runs = b->sel = b->front = -1;
    for (int j = 0; j < c->nrows; j++) { /* report-phase runs */
        if (c->rows[j].phase != PHASE_REPORT || !row_in(c, j, split, m)) continue;
        for (int i = 0; i < c->rows[j].nruns; i++) {
            const run_t *r = &c->runs[c->rows[j].runs[i]];
            double y = rp_log10_fq(r);
            if (isnan(y) || isnan(r->m[M_MU])) continue;
            if (b->runs < 0)
                b->runs = block_begin(f, block, rp_xsprintf(c, "%s %s runs", split, m));
            int clip = y < c->fq_floor;
            rp_dat_num(f, r->m[M_MU]);
            rp_dat_num(f, clip ? c->fq_floor : y);
            fprintf(f, " %d ", clip);
            rp_dat_str(f, r->dir);
            fputc('\n', f);
            b->nclip += clip;
            xr[0] = fmin(xr[0], r->m[M_MU]), xr[1] = fmax(xr[1], r->m[M_MU]);
        }
    }
    /* the settings the front is over, then the front sorted by MU */
    int *fr = rp_xalloc(c, sizeof(int) * (size_t)(c->nrows + 1)), nf = 0;
    for (int j = 0; j < c->nrows; j++) {
        if (!row_in(c, j, split, m)) continue;
        double x = c->rows[j].mean[M_MU], y = rp_row_log10_fq(c, &c->rows[j]);
        if (c->on_front[j] == 1) fr[nf++] = j;
        if (c->rows[j].phase != PHASE_SELECTION || isnan(x) || isnan(y)) continue;
        if (b->sel < 0) b->sel = block_begin(f, block, rp_xsprintf(c, "%s %s selection", split, m));
        rp_dat_num(f, x);
        rp_dat_num(f, fmax(y, c->fq_floor));
        fputc('\n', f);
        xr[0] = fmin(xr[0], x), xr[1] = fmax(xr[1], x);
    }
    for (int i = 1; i < nf; i++)
        for (int k = i; k > 0 && c->rows[fr[k - 1]].mean[M_MU] > c->rows[fr[k]].mean[M_MU]; k--) {
            int t = fr[k];
            fr[k] = fr[k - 1], fr[k - 1] = t;
        }
    b->nfront = nf;
    if (nf < 2) return; /* one setting: no line to draw */
    b->front = block_begin(f, block, rp_xsprintf(c, "%s %s Pareto front", split, m));
    for (int i = 0; i < nf; i++) {
        rp_dat_num(f, c->rows[fr[i]].mean[M_MU]);
        rp_dat_num(f, fmax(rp_row_log10_fq(c, &c->rows[fr[i]]), c->fq_floor));
        fputc('\n', f);
    }
}

static void panel(ctx_t *c, FILE *f, const char *split, const char **meth, int nm, blocks_t *bl,
                  const double *xr)
{
    double tau, thr = rp_mu_threshold(c, split, &tau);
    double x0 = fmin(xr[0], isnan(thr) ? xr[0] : thr), x1 = fmax(xr[1], isnan(thr) ? xr[1] : thr);
    double pad = fmax(0.02, 0.05 * (x1 - x0));
    fprintf(f, "unset arrow\nunset label\nset title %s\nset xrange [%.10g:%.10g]\n",
            rp_gp_quote(c, rp_xsprintf(c, "forget split %s", split)), x0 - pad, x1 + pad);
    if (!isnan(thr))
        fprintf(f,
                "set arrow from %.10g, graph 0 to %.10g, graph 1 nohead dt 2 lw 1.5 lc rgb "
                "'gray30'\nset label %s at %.10g, graph 0.5 left offset 0.5,0 font ',9'\n",
                thr, thr, rp_gp_quote(c, rp_xsprintf(c, "tau x MU(origin) = %.3g", thr)), thr);
    if (c->nclipped)
        fprintf(f,
                "set arrow from graph 0, first %.10g to graph 1, first %.10g nohead dt 3 "
                "lc rgb 'gray60'\n",
                c->fq_floor, c->fq_floor);
    fputs("plot ", f);
    int first = 1;
    for (int k = 0; k < nm; k++) {
        const blocks_t *b = &bl[k];
        const char *sep = first ? "" : ", \\\n     ";
        int pt = FQ_PT[k % FQ_NPT], lc = k + 1;
        if (b->runs >= 0) {
            fprintf(f,
                    "%s'fq_vs_mu.dat' index %d using 1:($3==0?$2:1/0) with points pt %d ps 1.4 "
                    "lc %d title %s",
                    sep, b->runs, pt, lc, rp_gp_quote(c, meth[k]));
            sep = ", \\\n     ", first = 0;
            if (b->nclip)
                fprintf(f,
                        "%s'fq_vs_mu.dat' index %d using 1:($3==1?$2:1/0) with points pt 10 "
                        "ps 1.6 lc %d notitle",
                        sep, b->runs, lc);
        }
        if (b->sel >= 0) {
            fprintf(f, "%s'fq_vs_mu.dat' index %d using 1:2 with points pt 6 ps 0.7 lc %d %s", sep,
                    b->sel, lc,
                    b->runs < 0 ? rp_xsprintf(c, "title %s", rp_gp_quote(c, meth[k])) : "notitle");
            sep = ", \\\n     ", first = 0;
        }
        if (b->front >= 0) {
            fprintf(f, "%s'fq_vs_mu.dat' index %d using 1:2 with lines lw 1.5 lc %d notitle", sep,
                    b->front, lc);
            sep = ", \\\n     ", first = 0;
        }
    }
    if (c->nclipped)
        fprintf(f,
                "%sNaN with points pt 10 ps 1.6 lc rgb 'black' title 'below the floor, drawn "
                "at it'",
                first ? "" : ", \\\n     "),
            first = 0;
    fprintf(f, "\n");
}

void rp_plot_fq_vs_mu(ctx_t *c)
{
    const char **split, **meth;
    int ns = names(c, "split", &split), nm = names(c, "method", &meth);
    c->fq_floor = fq_floor(c);
    if (isnan(c->fq_floor)) {
        c->no_fq_plot = "no report-phase run has both a forget quality and a model utility";
        return;
    }
    blocks_t *bl = rp_xalloc(c, sizeof *bl * (size_t)(ns * nm + 1));
    double *xr = rp_xalloc(c, sizeof(double) * (size_t)(2 * ns + 1));
    FILE *f = rp_out_open(c, "fq_vs_mu.dat");
    fprintf(f,
            "# fq_vs_mu.dat (lethe report): per forget split and method, its report-phase "
            "runs (mu log10_fq clipped folder), its selection-phase settings (mu log10_fq, "
            "means over seeds) and its Pareto front (mu log10_fq, by mu); log10_fq below %g "
            "is written as %g with clipped = 1.\n",
            c->fq_floor, c->fq_floor);
    int block = 0;
    for (int s = 0; s < ns; s++) {
        xr[2 * s] = INFINITY, xr[2 * s + 1] = -INFINITY;
        for (int k = 0; k < nm; k++) {
            write_blocks(c, f, split[s], meth[k], &bl[s * nm + k], &block, &xr[2 * s]);
            c->nclipped += bl[s * nm + k].nclip;
        }
    }
    rp_out_close(c, "fq_vs_mu.dat");
    int np = 0; /* the panels: splits with something to draw */
    for (int s = 0; s < ns; s++) {
        int any = 0;
        for (int k = 0; k < nm; k++) any |= bl[s * nm + k].runs >= 0 || bl[s * nm + k].sel >= 0;
        if (!any) continue;
        split[np] = split[s], xr[2 * np] = xr[2 * s], xr[2 * np + 1] = xr[2 * s + 1];
        memmove(&bl[np * nm], &bl[s * nm], sizeof *bl * (size_t)nm);
        np++;
    }
    ns = np;
    int cols = ns < 3 ? ns : 3, rows = (ns + cols - 1) / cols;
    f = rp_out_open(c, "fq_vs_mu.gp");
    rp_gp_preamble(f, "fq_vs_mu",
                   "log10 forget quality against model utility, a panel per "
                   "forget split",
                   40 + 620 * cols, 40 + 560 * rows);
    fprintf(f,
            "set xlabel 'model utility'\nset ylabel 'log10 forget quality'\n"
            "set key outside bottom center horizontal maxcols 4 font ',9'\nset yrange [%.10g:0.3]\n"
            "set multiplot layout %d,%d title 'Forget quality against model utility (lines: "
            "Pareto fronts%s)'\n",
            c->fq_floor - 0.3, rows, cols,
            c->nrep < c->nrows ? "; open circles: selection-phase settings" : "");
    for (int s = 0; s < ns; s++) {
        panel(c, f, split[s], meth, nm, &bl[s * nm], &xr[2 * s]);
    }
    fputs("unset multiplot\n", f);
    rp_out_close(c, "fq_vs_mu.gp");
    rp_draw(c, "fq_vs_mu");
}
