/* analysis/report_write.c — the tables of `lethe report`: runs.csv, results.csv,
 * results.md and scaling.md, written through temporary files. */
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
/* Writing. */

void rp_mkdirs(ctx_t *c, const char *path)
{
    char *p = rp_xstrdup(c, path);
    for (char *s = p + 1;; s++) {
        if (*s == '/' || *s == 0) {
            char save = *s;
            *s = 0;
            if (mkdir(p, 0777) && errno != EEXIST)
                rp_fail(c, REPORT_EIO, "cannot create folder '%s': %s", p, strerror(errno));
            *s = save;
            if (!save) break;
        }
    }
    struct stat st;
    if (stat(path, &st) || !S_ISDIR(st.st_mode))
        rp_fail(c, REPORT_EIO, "'%s' exists and is not a folder", path);
}

FILE *rp_out_open(ctx_t *c, const char *name)
{
    char *tmp = rp_path_join(c, c->out, rp_xsprintf(c, "%s.tmp", name)), err[PATH_MAX + 200];
    if (safe_temp(tmp, err, sizeof err)) rp_fail(c, REPORT_EIO, "%s", err);
    c->tmp_path = tmp; /* ours now: removed if the report fails */
    if (!(c->f = safe_append(tmp, err, sizeof err))) rp_fail(c, REPORT_EIO, "%s", err);
    return c->f;
}

void rp_note(ctx_t *c, const char *path)
{
    if (!c->o->quiet) printf("lethe report: wrote %s\n", path);
}

void rp_out_close(ctx_t *c, const char *name)
{
    int bad = ferror(c->f) || fflush(c->f) || fsync(fileno(c->f));
    bad |= fclose(c->f) != 0;
    c->f = NULL;
    char *dst = rp_path_join(c, c->out, name), err[PATH_MAX + 200];
    if (bad) rp_fail(c, REPORT_EIO, "cannot write '%s': %s", c->tmp_path, strerror(errno));
    char *tmp = c->tmp_path;
    c->tmp_path = NULL; /* safe_commit removes it if it fails */
    if (safe_commit(tmp, dst, err, sizeof err)) rp_fail(c, REPORT_EIO, "%s", err);
    rp_note(c, dst);
}

void rp_fmt_g(char *buf, size_t n, double v, int digits)
{
    if (isnan(v)) {
        buf[0] = 0;
        return;
    }
    if (v == 0) v = 0; /* no "-0" */
    snprintf(buf, n, "%.*g", digits, v);
}

void rp_csv_field(FILE *f, const char *s, int first)
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

/* Text from labels and folder names into Markdown: '|' escaped, line breaks as spaces,
 * other control characters (an ESC sequence would drive the reader's terminal) as \xNN. */
void rp_md_text(FILE *f, const char *s)
{
    for (; *s; s++) {
        unsigned char u = (unsigned char)*s;
        if (*s == '|') fputc('\\', f);
        if (*s == '\n' || *s == '\r')
            fputc(' ', f);
        else if (u < 0x20 || u == 0x7f)
            fprintf(f, "\\x%02x", u);
        else
            fputc(*s, f);
    }
}

static void csv_header(ctx_t *c, FILE *f)
{
    rp_csv_field(f, "method", 1);
    rp_csv_field(f, "split", 0);
    for (int h = 0; h < c->nhp; h++) rp_csv_field(f, c->hp[h], 0);
    rp_csv_field(f, "seeds", 0);
    for (int m = 0; m < NMETRIC; m++) {
        fprintf(f, ",%s,%s_std,%s_n", RP_METRIC[m].csv, RP_METRIC[m].csv, RP_METRIC[m].csv);
    }
    fputc('\n', f);
}

static void csv_row(ctx_t *c, FILE *f, const row_t *w)
{
    char b[512];
    rp_csv_field(f, rp_lab_str(w->lab, "method"), 1);
    rp_csv_field(f, rp_lab_str(w->lab, "split"), 0);
    for (int h = 0; h < c->nhp; h++) {
        const lvalue *v = rp_lab_get(w->lab, c->hp[h]);
        rp_lv_format(b, sizeof b, v && v->t != LV_NULL ? v : NULL);
        rp_csv_field(f, b, 0);
    }
    fprintf(f, ",%d", w->nruns);
    for (int m = 0; m < NMETRIC; m++) {
        rp_fmt_g(b, sizeof b, w->mean[m], REPORT_CSV_DIGITS);
        fprintf(f, ",%s", b);
        rp_fmt_g(b, sizeof b, w->sd[m], REPORT_CSV_DIGITS);
        fprintf(f, ",%s,%d", b, w->cnt[m]);
    }
    fputc('\n', f);
}

void rp_write_csv(ctx_t *c, const char *name, const int *rows, int n)
{
    FILE *f = rp_out_open(c, name);
    csv_header(c, f);
    for (int i = 0; i < n; i++) csv_row(c, f, &c->rows[rows[i]]);
    rp_out_close(c, name);
}

void rp_write_runs_csv(ctx_t *c)
{
    FILE *f = rp_out_open(c, "runs.csv");
    rp_csv_field(f, "folder", 1);
    rp_csv_field(f, "method", 0);
    rp_csv_field(f, "split", 0);
    for (int h = 0; h < c->nhp; h++) rp_csv_field(f, c->hp[h], 0);
    rp_csv_field(f, "seed", 0);
    for (int m = 0; m < NMETRIC - 1; m++) fprintf(f, ",%s", RP_METRIC[m].csv);
    fprintf(f, ",kl_retain,kl_forget1,kl_forget2,errors\n");
    char b[512];
    for (int j = 0; j < c->nrows; j++) {
        const row_t *w = &c->rows[c->order[j]];
        for (int i = 0; i < w->nruns; i++) {
            const run_t *r = &c->runs[w->runs[i]];
            rp_csv_field(f, r->dir, 1);
            rp_csv_field(f, rp_lab_str(&r->lab, "method"), 0);
            rp_csv_field(f, rp_lab_str(&r->lab, "split"), 0);
            for (int h = 0; h < c->nhp; h++) {
                const lvalue *v = rp_lab_get(&r->lab, c->hp[h]);
                rp_lv_format(b, sizeof b, v && v->t != LV_NULL ? v : NULL);
                rp_csv_field(f, b, 0);
            }
            const lvalue *sv = rp_lab_get(&r->lab, "seed");
            rp_lv_format(b, sizeof b, sv && sv->t != LV_NULL ? sv : NULL);
            rp_csv_field(f, b, 0);
            for (int m = 0; m < NMETRIC - 1; m++) {
                rp_fmt_g(b, sizeof b, r->m[m], REPORT_CSV_DIGITS);
                fprintf(f, ",%s", b);
            }
            for (int q = 0; q < 3; q++) {
                rp_fmt_g(b, sizeof b, r->has_markov ? r->kl[q] : NAN, REPORT_CSV_DIGITS);
                fprintf(f, ",%s", b);
            }
            fprintf(f, ",%d\n", r->nerr);
        }
    }
    rp_out_close(c, "runs.csv");
}

/* "0.1234 ± 0.0012", "0.1234" (one value), "–" (none); "(k)" when k values stand
 * behind the cell and k differs from the row's seed count. */
void rp_md_cell(FILE *f, double mean, double sd, int cnt, int nruns)
{
    char a[64], b[64];
    if (cnt == 0) {
        fputs(" – |", f);
        return;
    }
    rp_fmt_g(a, sizeof a, mean, REPORT_MD_DIGITS);
    fprintf(f, " %s", a);
    if (!isnan(sd)) {
        rp_fmt_g(b, sizeof b, sd, REPORT_MD_DIGITS);
        fprintf(f, " ± %s", b);
    }
    if (cnt != nruns) fprintf(f, " (%d)", cnt);
    fputs(" |", f);
}

/* The label columns of the Markdown tables: those that vary across runs. */
void rp_md_label_header(ctx_t *c, FILE *f, int *ncol)
{
    fputs("| method | split |", f);
    *ncol = 2;
    for (int h = 0; h < c->nhp; h++)
        if (!c->hp_const[h]) {
            fputc(' ', f);
            rp_md_text(f, c->hp[h]);
            fputs(" |", f);
            ++*ncol;
        }
    fputs(" seeds |", f);
    ++*ncol;
}

void rp_md_label_cells(ctx_t *c, FILE *f, const row_t *w)
{
    char b[512];
    fputs("| ", f);
    rp_md_text(f, rp_lab_str(w->lab, "method"));
    fputs(" | ", f);
    rp_md_text(f, rp_lab_str(w->lab, "split"));
    fputs(" |", f);
    for (int h = 0; h < c->nhp; h++)
        if (!c->hp_const[h]) {
            const lvalue *v = rp_lab_get(w->lab, c->hp[h]);
            rp_lv_format(b, sizeof b, v);
            fputc(' ', f);
            if (b[0])
                rp_md_text(f, b);
            else
                fputs("–", f);
            fputs(" |", f);
        }
    fprintf(f, " %d |", w->nruns);
}

static void md_table(ctx_t *c, FILE *f, const int *rows, int n)
{
    int ncol;
    rp_md_label_header(c, f, &ncol);
    for (int m = 0; m < NMETRIC; m++) fprintf(f, " %s |", RP_METRIC[m].md);
    fputs("\n|", f);
    for (int i = 0; i < ncol; i++) fputs(i < ncol - 1 ? "---|" : "--:|", f);
    for (int m = 0; m < NMETRIC; m++) fputs("--:|", f);
    fputc('\n', f);
    for (int i = 0; i < n; i++) {
        const row_t *w = &c->rows[rows[i]];
        rp_md_label_cells(c, f, w);
        for (int m = 0; m < NMETRIC; m++) rp_md_cell(f, w->mean[m], w->sd[m], w->cnt[m], w->nruns);
        fputc('\n', f);
    }
}

/* results.md: the title, the counts and the labels every run shares. */
static void md_intro(ctx_t *c, FILE *f)
{
    fputs("# lethe report: ", f);
    rp_md_text(f, c->dir);
    fputs("\n\n", f);
    fprintf(f, "%d evaluated run%s in %d setting%s; %d relearn curve%s; %d bench line%s%s.\n\n",
            c->nruns, c->nruns == 1 ? "" : "s", c->nrows, c->nrows == 1 ? "" : "s", c->ncurves,
            c->ncurves == 1 ? "" : "s", c->nbench, c->nbench == 1 ? "" : "s",
            c->nbench ? " (tables in scaling.md)" : "");
    if (c->nrep < c->nrows || c->nsel)
        fprintf(f,
                "Phases: %d setting%s evaluated on the selection seeds (to choose), %d on "
                "the report seeds (the results); selection rows appear only under \"Selection "
                "phase and Pareto fronts\".\n\n",
                c->nrows - c->nrep, c->nrows - c->nrep == 1 ? "" : "s", c->nrep);
    int shared = 0;
    for (int h = 0; h < c->nhp; h++)
        if (c->hp_const[h]) {
            char b[512];
            rp_lv_format(b, sizeof b, rp_lab_get(&c->runs[0].lab, c->hp[h]));
            fputs(shared++ ? ", " : "Shared by every run: ", f);
            rp_md_text(f, c->hp[h]);
            fputs(" = ", f);
            rp_md_text(f, b);
        }
    if (shared) fputs(".\n\n", f);
}

/* results.md: every setting, and the best setting per method by the selection rule. */
static void md_settings(ctx_t *c, FILE *f)
{
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
        int phased = c->nrep < c->nrows || c->nsel;
        fputs(phased ? "## Reported results (report seeds)\n\n" : "## All settings\n\n", f);
        md_table(c, f, c->order, c->nrep);
        if (phased) return; /* the reported setting per method: under Comparisons */
        fputs("\n## Best setting per method\n\n", f);
        fputs("Selection rule: for each method and split, rank its settings by mean forget "
              "quality (highest first; equal means by mean log10 forget quality). The top "
              "third are the first ceil(n/3) of the n settings that have a forget quality, "
              "and every setting tied with the last of them. Among those, the setting with "
              "the highest mean model utility is shown (equal utility: the first in the table "
              "above). Settings without a forget quality or a model utility are not "
              "ranked. The rule sees the same seeds this table reports, so the best row is "
              "optimistic (a study with a selection phase chooses on other seeds).\n\n",
              f);
        if (c->nbest)
            md_table(c, f, c->best, c->nbest);
        else
            fputs("No setting has a forget quality.\n", f);
    }
}

/* results.md: the per-chain KL of Markov-chain runs, if any. */
static void md_markov(ctx_t *c, FILE *f)
{
    int nk = 0;
    for (int j = 0; j < c->nrep; j++) nk += c->rows[c->order[j]].kl_cnt[0] > 0;
    if (nk) {
        fputs("\n## Mixture of Markov chains\n\nPer-token KL divergence to the true transition "
              "matrix of each chain, on held-out sequences (lower is closer).\n\n",
              f);
        int ncol;
        rp_md_label_header(c, f, &ncol);
        for (int q = 0; q < 3; q++) fprintf(f, " KL %s |", RP_KL_TITLE[q]);
        fputs("\n|", f);
        for (int i = 0; i < ncol + 3; i++) fputs(i < ncol - 1 ? "---|" : "--:|", f);
        fputc('\n', f);
        for (int j = 0; j < c->nrep; j++) {
            const row_t *w = &c->rows[c->order[j]];
            if (!w->kl_cnt[0] && !w->kl_cnt[1] && !w->kl_cnt[2]) continue;
            rp_md_label_cells(c, f, w);
            for (int q = 0; q < 3; q++)
                rp_md_cell(f, w->kl_mean[q], w->kl_sd[q], w->kl_cnt[q], w->nruns);
            fputc('\n', f);
        }
    }
}

/* results.md: relearn curves that match no evaluated setting. */
static void md_unmatched(ctx_t *c, FILE *f)
{
    if (c->nunmatched) {
        fputs("\n## Relearn curves without an evaluated setting\n\nNo evaluated setting has "
              "all its labels (but the seed) among theirs; they are plotted but not in the "
              "tables.\n\n",
              f);
        for (int i = 0; i < c->ncurves; i++)
            if (c->curves[i].row < 0) {
                fputs("- `", f);
                rp_md_text(f, c->curves[i].dir);
                fputs("`\n", f);
            }
    }
}

/* results.md: every evaluation error, by setting. */
static void md_errors(ctx_t *c, FILE *f)
{
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
                    rp_md_text(f, r->dir);
                    fputs("`: ", f);
                    rp_md_text(f, r->errs[e]);
                    fputc('\n', f);
                }
            }
        }
    }
}

/* results.md: the plots drawn, and why fq_vs_mu.png is not. */
static void md_plots(ctx_t *c, FILE *f)
{
    if (c->npng || c->no_fq_plot) {
        fputs("\n## Plots\n\n", f);
        if (c->no_fq_plot)
            fprintf(f, "fq_vs_mu.png is not drawn: %s.\n\n", c->no_fq_plot);
        else if (c->nrows)
            fprintf(f,
                    "fq_vs_mu.png: a panel per forget split; a point per report-phase run; "
                    "each method's Pareto front over its settings (the selection phase's when "
                    "there is one) as a line; the dashed line is τ · MU(origin) when a "
                    "selected.json gives it; log10 FQ below %.3g is drawn at that floor as an "
                    "open triangle.\n\n",
                    c->fq_floor);
        for (int i = 0; i < c->npng; i++) fprintf(f, "![%s](%s)\n\n", c->png[i], c->png[i]);
    }
}

void rp_write_results_md(ctx_t *c)
{
    FILE *f = rp_out_open(c, "results.md");
    md_intro(c, f);
    md_settings(c, f);
    rp_md_comparisons(c, f);
    rp_md_buckets(c, f);
    rp_md_selection(c, f);
    rp_md_cpu(c, f);
    md_markov(c, f);
    md_unmatched(c, f);
    md_errors(c, f);
    md_plots(c, f);
    rp_out_close(c, "results.md");
}

void rp_write_scaling_md(ctx_t *c)
{
    FILE *f = rp_out_open(c, "scaling.md");
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
        rp_fmt_g(b[0], 64, w->params, 10);
        rp_fmt_g(b[1], 64, w->batch, 10);
        rp_fmt_g(b[2], 64, w->seq_len, 10);
        fprintf(f,
                "\n## Series %d: %s\n\nparams %s, batch %s, seq_len %s, threads %d, BLAS "
                "core %s",
                s + 1, rp_kind_name(S->mask), b[0][0] ? b[0] : "?", b[1][0] ? b[1] : "?",
                b[2][0] ? b[2] : "?", w->threads, w->blas[0] ? w->blas : "?");
        for (int i = 0; i < w->lab.n; i++)
            if (!rp_ign_bench(w->lab.v[i].key)) {
                char v[256];
                rp_lv_format(v, sizeof v, &w->lab.v[i].v);
                fputs(", ", f);
                rp_md_text(f, w->lab.v[i].key);
                fputs(" = ", f);
                rp_md_text(f, v);
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
            double v[8] = {p->tps,          rp_efficiency(c, S, S->pts[i]),
                           p->comm / p->ms, p->bubble / p->ms,
                           p->ms,           p->gflops,
                           p->pct_peak};
            for (int k = 0; k < 7; k++) {
                rp_fmt_g(b[k], 64, v[k], REPORT_MD_DIGITS);
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
    rp_out_close(c, "scaling.md");
}
