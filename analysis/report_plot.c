/* analysis/report_plot.c — the plots of `lethe report`: gnuplot data, scripts and
 * PNGs (relearning curves, the Markov KL bars, scaling; forget quality against model
 * utility is report_plot_fq.c's) and the gnuplot helpers every plot shares. Runs after the read and
 * group phases of report.c. */
#include "report_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "metrics.h"
#include "../io/safefile.h"

/* ------------------------------------------------------------------------------------ */
/* Plots. */

/* Runs gnuplot in the output folder with args (NULL-terminated, at most 4); its output
 * goes to gnuplot.log there (or nowhere for the probe). Returns the exit status, 127
 * when it could not be started, 128 + N when killed by signal N. */
int rp_run_gnuplot(ctx_t *c, const char *cwd, const char *log, const char *a1, const char *a2,
                   const char *a3)
{
    fflush(NULL); /* the child must not repeat our buffered output */
    pid_t pid = fork();
    if (pid < 0) rp_fail(c, REPORT_EIO, "cannot start gnuplot: fork: %s", strerror(errno));
    if (pid == 0) {
        /* the child: only async-signal-safe calls until exec */
        if (cwd && chdir(cwd)) _exit(126);
        int in = open("/dev/null", O_RDONLY);
        int out = log ? open(log, O_WRONLY | O_APPEND | O_NOFOLLOW) : open("/dev/null", O_WRONLY);
        if (in < 0 || out < 0) _exit(126);
        dup2(in, 0);
        dup2(out, 1);
        dup2(out, 2);
        execlp(c->gnuplot, c->gnuplot, a1, a2, a3, (char *)NULL);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) rp_fail(c, REPORT_EIO, "waiting for gnuplot: %s", strerror(errno));
    if (WIFEXITED(st)) return WEXITSTATUS(st);
    return WIFSIGNALED(st) ? 128 + WTERMSIG(st) : 1;
}

/* gnuplot single-quoted string: ' doubles. */
char *rp_gp_quote(ctx_t *c, const char *s)
{
    char *q = rp_xalloc(c, 2 * strlen(s) + 3), *p = q;
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
void rp_dat_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) fputc(*s == '"' || *s == '\n' ? '\'' : *s, f);
    fputc('"', f);
}

void rp_dat_num(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, " %.10g", v);
    else
        fputs(" ?", f);
}

void rp_gp_preamble(FILE *f, const char *name, const char *what, int w, int h)
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
void rp_draw(ctx_t *c, const char *name)
{
    char *gp = rp_xsprintf(c, "%s.gp", name), *png = rp_xsprintf(c, "%s.png", name);
    char *tmp = rp_xsprintf(c, "%s.png.tmp", name);
    char *set = rp_xsprintf(c, "lethe_out='%s'", tmp);
    char *log = rp_path_join(c, c->out, "gnuplot.log"), err[PATH_MAX + 200];
    /* gnuplot opens its output by name: it must find a fresh regular file of ours there */
    char *tmp_full = rp_path_join(c, c->out, tmp);
    if (safe_temp(tmp_full, err, sizeof err)) rp_fail(c, REPORT_EIO, "%s", err);
    c->tmp_path = tmp_full;
    int rc = rp_run_gnuplot(c, c->out, "gnuplot.log", "-e", set, gp);
    if (rc)
        rp_fail(c, REPORT_EIO, "gnuplot failed on '%s' (exit %d); its messages are in '%s'",
                rp_path_join(c, c->out, gp), rc, log);
    unsigned char magic[8] = {0};
    FILE *f = safe_open_read(c->tmp_path, "plot", MAX_INPUT_BYTES, NULL, err, sizeof err);
    size_t got = f ? fread(magic, 1, 8, f) : 0;
    if (f) fclose(f);
    static const unsigned char PNG[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (got != 8 || memcmp(magic, PNG, 8))
        rp_fail(c, REPORT_EIO, "gnuplot wrote no PNG for '%s' (see '%s')",
                rp_path_join(c, c->out, gp), log);
    char *dst = rp_path_join(c, c->out, png);
    c->tmp_path = NULL; /* safe_commit removes it if it fails */
    if (safe_commit(tmp_full, dst, err, sizeof err)) rp_fail(c, REPORT_EIO, "%s", err);
    rp_note(c, dst);
    add_png(c, png);
}

const int RP_POINT_TYPES[] = {7, 5, 9, 11, 13, 15, 1, 2, 3, 4, 6, 8, 10, 12, 14};
const int RP_NPT = (int)(sizeof RP_POINT_TYPES / sizeof RP_POINT_TYPES[0]);

/* A file-name-safe form of a method name. */
static char *safe_name(ctx_t *c, const char *s)
{
    char *p = rp_xstrdup(c, s);
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
                varies = rp_lv_cmp(&l->v[k].v, rp_lab_get(&c->curves[idx[o]].lab, key)) != 0;
            if (!varies) continue;
            char v[256];
            rp_lv_format(v, sizeof v, &l->v[k].v);
            t = rp_xsprintf(c, "%s%s%s=%s", t, t[0] ? " " : "", key, v);
        }
    return t[0] ? t : rp_xstrdup(c, c->curves[idx[i]].dir);
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
    int d = rp_lv_cmp(rp_lab_get(&x->lab, "seed"), rp_lab_get(&y->lab, "seed"));
    return d ? d : strcmp(x->dir, y->dir);
}

void rp_plot_relearn(ctx_t *c)
{
    int *idx = rp_xalloc(c, sizeof(int) * (size_t)(c->ncurves + 1));
    char *done = rp_xalloc(c, (size_t)c->ncurves + 1);
    for (int s = 0; s < c->ncurves; s++) {
        if (done[s]) continue;
        const char *meth = rp_lab_str(&c->curves[s].lab, "method");
        int n = 0;
        for (int i = s; i < c->ncurves; i++)
            if (!done[i] && !strcmp(rp_lab_str(&c->curves[i].lab, "method"), meth)) {
                done[i] = 1;
                int ok = 0;
                for (int k = 0; k < c->curves[i].n; k++) ok |= isfinite(c->curves[i].fprob[k]);
                if (ok) idx[n++] = i; /* a curve with no forget_prob draws nothing */
            }
        if (!n) continue;
        rp_sort_idx(c, idx, n, curve_cmp);
        char *name = rp_xsprintf(c, "relearn_%s", safe_name(c, meth));
        char *dat = rp_xsprintf(c, "%s.dat", name), *gpn = rp_xsprintf(c, "%s.gp", name);
        FILE *f = rp_out_open(c, dat);
        fprintf(f,
                "# %s (lethe report): relearn curves of method %s, one block per curve "
                "(gnuplot: index N).\n# columns: step forget_prob\n",
                dat, meth);
        for (int i = 0; i < n; i++) {
            const curve_t *cv = &c->curves[idx[i]];
            fprintf(f, "%s# block %d: %s\n", i ? "\n\n" : "", i, cv->dir);
            for (int k = 0; k < cv->n; k++) {
                rp_dat_num(f, cv->step[k]);
                rp_dat_num(f, cv->fprob[k]);
                fputc('\n', f);
            }
        }
        rp_out_close(c, dat);
        f = rp_out_open(c, gpn);
        rp_gp_preamble(f, name, "forget probability against relearn step, a line per curve", 900,
                       600);
        fprintf(
            f,
            "set xlabel 'relearn step'\nset ylabel 'forget probability'\n"
            "set key top left\nset title %s\nplot ",
            rp_gp_quote(c, rp_xsprintf(c, "Relearning attack on %s: forget probability", meth)));
        for (int i = 0; i < n; i++)
            fprintf(f, "%s'%s' index %d using 1:2 with linespoints pt %d lc %d title %s",
                    i ? ", \\\n     " : "", dat, i, RP_POINT_TYPES[i % RP_NPT], i + 1,
                    rp_gp_quote(c, curve_title(c, idx, n, i)));
        fputc('\n', f);
        rp_out_close(c, gpn);
        rp_draw(c, name);
    }
}

void rp_plot_markov(ctx_t *c)
{
    int *rows = rp_xalloc(c, sizeof(int) * (size_t)(c->nrows + 1));
    int n = 0;
    for (int j = 0; j < c->nrep; j++) {
        const row_t *w = &c->rows[c->order[j]];
        if (w->kl_cnt[0] || w->kl_cnt[1] || w->kl_cnt[2]) rows[n++] = c->order[j];
    }
    if (!n) return;
    FILE *f = rp_out_open(c, "markov_kl.dat");
    fputs("# markov_kl.dat (lethe report): mean KL over seeds per setting.\n"
          "# columns: setting kl_retain kl_forget1 kl_forget2\n",
          f);
    for (int i = 0; i < n; i++) {
        const row_t *w = &c->rows[rows[i]];
        /* the setting's name: method, plus the labels that differ among these rows */
        char *t = rp_xstrdup(c, rp_lab_str(w->lab, "method"));
        const char *keys[2] = {"split", NULL};
        for (int h = -1; h < c->nhp; h++) {
            const char *key = h < 0 ? keys[0] : c->hp[h];
            int varies = 0;
            for (int o = 0; o < n && !varies; o++)
                varies =
                    rp_lv_cmp(rp_lab_get(w->lab, key), rp_lab_get(c->rows[rows[o]].lab, key)) != 0;
            if (!varies) continue;
            char v[256];
            rp_lv_format(v, sizeof v, rp_lab_get(w->lab, key));
            t = rp_xsprintf(c, "%s %s=%s", t, key, v[0] ? v : "-");
        }
        rp_dat_str(f, t);
        for (int q = 0; q < 3; q++) rp_dat_num(f, w->kl_mean[q]);
        fputc('\n', f);
    }
    rp_out_close(c, "markov_kl.dat");
    f = rp_out_open(c, "markov_kl.gp");
    rp_gp_preamble(f, "markov_kl", "KL to the true chains, grouped bars per setting", 900, 600);
    fprintf(f,
            "set style data histograms\nset style histogram clustered gap 1\n"
            "set style fill solid 0.85 border -1\nset boxwidth 0.9\nset yrange [0:*]\n"
            "set grid noxtics\nset ylabel 'KL to the true transition matrix (nats/token)'\n"
            "set key outside right top\n%s"
            "set title 'Mixture of Markov chains'\n"
            "plot 'markov_kl.dat' using 2:xtic(1) title %s, '' using 3 title %s, "
            "'' using 4 title %s\n",
            n > 4 ? "set xtics rotate by -30\n" : "", rp_gp_quote(c, RP_KL_TITLE[0]),
            rp_gp_quote(c, RP_KL_TITLE[1]), rp_gp_quote(c, RP_KL_TITLE[2]));
    rp_out_close(c, "markov_kl.gp");
    rp_draw(c, "markov_kl");
}

void rp_write_scaling_plot(ctx_t *c)
{
    FILE *f = rp_out_open(c, "scaling.dat");
    fprintf(f,
            "# scaling.dat (lethe report): one block per series (gnuplot: index N), see "
            "scaling.md.\n# columns: %s ranks tokens_per_s efficiency comm_share\n",
            c->x_nodes ? "nodes" : "ranks");
    int nwl = 0;
    for (int s = 0; s < c->nseries; s++) nwl += c->series[s].workload == s;
    for (int s = 0; s < c->nseries; s++) {
        const series_t *S = &c->series[s];
        fprintf(f, "%s# block %d: series %d, %s\n", s ? "\n\n" : "", s, s + 1,
                rp_kind_name(S->mask));
        for (int i = 0; i < S->n; i++) {
            const point_t *p = &c->pts[S->pts[i]];
            rp_dat_num(f, p->x);
            rp_dat_num(f, c->bench[p->first].ranks);
            rp_dat_num(f, p->tps);
            rp_dat_num(f, rp_efficiency(c, S, S->pts[i]));
            rp_dat_num(f, p->comm / p->ms);
            fputc('\n', f);
        }
    }
    rp_out_close(c, "scaling.dat");
    f = rp_out_open(c, "scaling.gp");
    rp_gp_preamble(f, "scaling", "tokens/s, efficiency and communication share against scale", 1500,
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
            char *title = nwl > 1 ? rp_xsprintf(c, "%d: %s", s + 1, rp_kind_name(c->series[s].mask))
                                  : rp_xstrdup(c, rp_kind_name(c->series[s].mask));
            fprintf(f, "%s'scaling.dat' index %d using 1:%d with linespoints pt %d lc %d title %s",
                    s ? ", \\\n     " : "", s, P[k].col, RP_POINT_TYPES[s % RP_NPT], s + 1,
                    rp_gp_quote(c, title));
        }
        fputc('\n', f);
    }
    fputs("unset multiplot\n", f);
    rp_out_close(c, "scaling.gp");
    rp_draw(c, "scaling");
}
