/* analysis/report_compare_csv.c — the machine-readable side of the comparisons:
 * comparisons.csv (every two methods per forget split: paired seeds, per metric the mean
 * difference A − B, its bootstrap interval, wins, count and whether a difference is
 * shown; REPORT_CMP_DIGITS significant digits), pareto.csv (each method's settings that
 * a front was computed over, their means and membership) and budget.csv (per method, its
 * unlearn jobs, tokens and CPU seconds per phase). */
#include "report_impl.h"

#include <math.h>
#include <string.h>

/* More digits than the tables: a reader can recompute an interval and compare. */
#define REPORT_CMP_DIGITS 10

static void num(FILE *f, double v)
{
    char b[64];
    rp_fmt_g(b, sizeof b, v, REPORT_CMP_DIGITS);
    fprintf(f, ",%s", b);
}

static void write_comparisons(ctx_t *c)
{
    static const char *const Q[NCMP] = {"log10_fq", "abs_gap", "recovery"};
    FILE *f = rp_out_open(c, "comparisons.csv");
    fputs("split,a,b,seeds", f);
    for (int q = 0; q < NCMP; q++)
        fprintf(f, ",%s_diff,%s_lo,%s_hi,%s_a_wins,%s_ties,%s_n,%s_shown", Q[q], Q[q], Q[q], Q[q],
                Q[q], Q[q], Q[q]);
    fputs(",recovery_k\n", f);
    for (int i = 0; i < c->npairs; i++) {
        const pair_t *p = &c->pairs[i];
        rp_csv_field(f, c->rep[p->a].split, 1);
        rp_csv_field(f, c->rep[p->a].method, 0);
        rp_csv_field(f, c->rep[p->b].method, 0);
        fprintf(f, ",%d", p->nseeds);
        for (int q = 0; q < NCMP; q++) {
            const stats_paired *s = &p->s[q];
            num(f, s->mean);
            num(f, s->lo);
            num(f, s->hi);
            fprintf(f, ",%d,%d,%d,%d", s->wins, s->ties, s->n, stats_shown(s));
        }
        num(f, p->s[CMP_REC].n ? p->rec_k : NAN);
        fputc('\n', f);
    }
    rp_out_close(c, "comparisons.csv");
}

static void write_pareto(ctx_t *c)
{
    FILE *f = rp_out_open(c, "pareto.csv");
    fputs("method,split,setting,phase,seeds,mean_mu,mean_log10_fq,on_front,labels\n", f);
    for (int j = 0; j < c->nrows; j++) {
        const row_t *w = &c->rows[c->order[j]];
        int on = c->on_front[c->order[j]];
        if (on < 0) continue;
        rp_csv_field(f, rp_lab_str(w->lab, "method"), 1);
        rp_csv_field(f, rp_lab_str(w->lab, "split"), 0);
        rp_csv_field(f, rp_lab_str(w->lab, "setting"), 0);
        fprintf(f, ",%s,%d", w->phase == PHASE_SELECTION ? "selection" : "report", w->nruns);
        num(f, w->mean[M_MU]);
        num(f, rp_row_log10_fq(c, w));
        fprintf(f, ",%d", on);
        labels l = {rp_xalloc(c, sizeof(label) * (size_t)(w->lab->n + 1)), 0};
        for (int k = 0; k < w->lab->n; k++) /* the setting's labels: all but the seed */
            if (strcmp(w->lab->v[k].key, "seed")) l.v[l.n++] = w->lab->v[k];
        rp_csv_field(f, rp_labels_text(c, &l), 0);
        fputc('\n', f);
    }
    rp_out_close(c, "pareto.csv");
}

static void write_budget(ctx_t *c)
{
    FILE *f = rp_out_open(c, "budget.csv");
    fputs("method,jobs_selection,jobs_report,tokens_selection,tokens_report,cpu_seconds_selection,"
          "cpu_seconds_report\n",
          f);
    char *done = rp_xalloc(c, (size_t)c->nbudgets + 1);
    for (int k = 0; k < c->nbudgets; k++) {
        if (done[k]) continue;
        int jobs[2] = {0, 0};
        double tok[2] = {0, 0}, cpu[2] = {0, 0};
        for (int i = k; i < c->nbudgets; i++) {
            const budget_t *b = &c->budgets[i];
            if (strcmp(b->method, c->budgets[k].method)) continue;
            done[i] = 1;
            jobs[b->phase]++, tok[b->phase] += b->tokens, cpu[b->phase] += b->cpu_s;
        }
        rp_csv_field(f, c->budgets[k].method, 1);
        fprintf(f, ",%d,%d", jobs[PHASE_SELECTION], jobs[PHASE_REPORT]);
        num(f, tok[PHASE_SELECTION]);
        num(f, tok[PHASE_REPORT]);
        num(f, cpu[PHASE_SELECTION]);
        num(f, cpu[PHASE_REPORT]);
        fputc('\n', f);
    }
    rp_out_close(c, "budget.csv");
}

void rp_write_compare_csv(ctx_t *c)
{
    if (c->npairs) write_comparisons(c);
    for (int j = 0; j < c->nrows; j++)
        if (c->on_front[j] >= 0) {
            write_pareto(c);
            break;
        }
    if (c->nbudgets) write_budget(c);
}
