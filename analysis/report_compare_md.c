/* analysis/report_compare_md.c — the sections of results.md that report_compare.c's
 * numbers fill: the selection phase and Pareto fronts, the setting each method reports,
 * the verdict table of every two methods per forget split with one verdict line each,
 * the unlearning budgets, "What this shows / what it does not show" (every sentence
 * conditioned on the numbers above it), and the forget split by answer length. */
#include "report_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* "+0.312", "−1.2" (a real minus sign), "–" for NaN. */
static const char *sgn(char *buf, size_t n, double v)
{
    if (isnan(v)) return "–";
    /* a sum of differences that cancel leaves rounding (2e-17): shown as the 0 it is */
    if (fabs(v) < 1e-12) return "0";
    char t[32]; /* "%+.3g" needs at most 11 */
    snprintf(t, sizeof t, "%+.3g", v);
    snprintf(buf, n, "%s%.30s", t[0] == '-' ? "−" : "+", t + 1);
    return buf;
}

/* "−0.3 [−0.9, +0.2]", or the mean alone when there is no interval. */
static void interval_text(FILE *f, const stats_paired *p)
{
    char a[64], b[64], d[64];
    if (p->n == 0) {
        fputs("–", f);
        return;
    }
    fputs(sgn(a, sizeof a, p->mean), f);
    if (p->n >= 2) fprintf(f, " [%s, %s]", sgn(b, sizeof b, p->lo), sgn(d, sizeof d, p->hi));
}

static const char *CMP_AHEAD[NCMP] = {"higher FQ", "closer to retrain", "recovers less"};

/* The same nonzero difference (as sgn prints it) on every one of at least
 * STATS_MIN_SHOWN seeds: one observation. */
static int same_nonzero(const stats_paired *s)
{
    return s->n >= STATS_MIN_SHOWN && s->same && fabs(s->mean) >= 1e-12;
}

static void verdict_text(ctx_t *c, FILE *f, const pair_t *p, int q)
{
    const stats_paired *s = &p->s[q];
    if (s->n == 0)
        fputs("no values on common seeds", f);
    else if (s->n == 1)
        fputs("one seed: no interval", f);
    else if (s->n < STATS_MIN_SHOWN)
        fputs("too few seeds to show a difference", f);
    else if (same_nonzero(s))
        fputs("the same difference on every seed (the seeds did not vary these runs): one "
              "observation, not shown",
              f);
    else if (!stats_shown(s))
        fputs("no difference shown", f);
    else {
        int a_ahead = q == CMP_FQ ? s->mean > 0 : s->mean < 0;
        rp_md_text(f, c->rep[a_ahead ? p->a : p->b].method);
        fprintf(f, " %s: shown", CMP_AHEAD[q]);
    }
}

/* ------------------------------------------------------------------------------------ */

void rp_md_selection(ctx_t *c, FILE *f)
{
    if (c->nrep == c->nrows && !c->nsel) return;
    fputs("\n## Selection phase and Pareto fronts\n\nSettings evaluated on the selection "
          "seeds only; the report seeds above never took part in choosing. A setting is on "
          "its method's Pareto front (per forget split) when no other setting of the method "
          "has a mean MU and a mean log10 FQ both at least as high, one of them higher. "
          "These rows are not results: they are what the choice saw.\n\n",
          f);
    if (c->nrep < c->nrows) {
        int ncol;
        rp_md_label_header(c, f, &ncol);
        fputs(" MU | log10 FQ | gap to retrain | on front | reported |\n|", f);
        for (int i = 0; i < ncol + 5; i++) fputs(i < ncol - 1 ? "---|" : "--:|", f);
        fputc('\n', f);
        for (int j = c->nrep; j < c->nrows; j++) {
            const row_t *w = &c->rows[c->order[j]];
            rp_md_label_cells(c, f, w);
            rp_md_cell(f, w->mean[M_MU], w->sd[M_MU], w->cnt[M_MU], w->nruns);
            rp_md_cell(f, rp_row_log10_fq(c, w), NAN, 1, 1);
            rp_md_cell(f, w->mean[M_GAP], w->sd[M_GAP], w->cnt[M_GAP], w->nruns);
            int chosen = 0;
            for (int k = 0; k < c->nsel; k++)
                chosen |= !strcmp(c->sel[k].method, rp_lab_str(w->lab, "method")) &&
                          !strcmp(c->sel[k].forget, rp_lab_str(w->lab, "split")) &&
                          !strcmp(c->sel[k].setting, rp_lab_str(w->lab, "setting"));
            fprintf(f, " %s | %s |\n", c->on_front[c->order[j]] == 1 ? "yes" : "no",
                    chosen ? "**yes**" : "");
        }
    }
    if (!c->nsel) return;
    fputs("\nThe choice (selected.json): τ · MU(origin) is the utility a setting must reach "
          "to be eligible.\n\n| method | forget | setting | rule | τ | MU(origin) | τ · MU(origin) "
          "| eligible | candidates |\n|---|---|---|---|--:|--:|--:|---|--:|\n",
          f);
    for (int k = 0; k < c->nsel; k++) {
        const selected_t *s = &c->sel[k];
        char a[64], b[64], d[64];
        double mu0 = isnan(s->mu_origin) ? rp_origin_mu(c, s->forget) : s->mu_origin;
        rp_fmt_g(a, sizeof a, s->tau, REPORT_MD_DIGITS);
        rp_fmt_g(b, sizeof b, mu0, REPORT_MD_DIGITS);
        rp_fmt_g(d, sizeof d, s->tau * mu0, REPORT_MD_DIGITS);
        fputs("| ", f);
        rp_md_text(f, s->method);
        fputs(" | ", f);
        rp_md_text(f, s->forget);
        fputs(" | ", f);
        rp_md_text(f, s->setting);
        fputs(" | ", f);
        rp_md_text(f, s->rule[0] ? s->rule : "–");
        fprintf(f, " | %s | %s | %s | %s | %d |\n", a, b[0] ? b : "–", d[0] ? d : "–",
                s->eligible ? "yes" : "**no**", s->ncand);
    }
}

/* ------------------------------------------------------------------------------------ */

static void md_reported(ctx_t *c, FILE *f)
{
    fputs("Reported setting per method and forget split, and how it was chosen:\n\n"
          "| method | split | setting | report seeds | chosen by |\n|---|---|---|--:|---|\n",
          f);
    for (int i = 0; i < c->nrepm; i++) {
        const reported_t *r = &c->rep[i];
        fputs("| ", f);
        rp_md_text(f, r->method);
        fputs(" | ", f);
        rp_md_text(f, r->split);
        fputs(" | ", f);
        const char *st = r->row >= 0 ? rp_lab_str(c->rows[r->row].lab, "setting") : "";
        rp_md_text(f, r->sel >= 0 ? c->sel[r->sel].setting : st[0] ? st : "–");
        fprintf(f, " | %d | ", r->row >= 0 ? c->rows[r->row].nruns : 0);
        if (r->sel >= 0 && r->row < 0)
            fputs("selected.json, but the setting has no report-phase runs: not compared", f);
        else if (r->sel >= 0)
            fprintf(f, "selected.json on the selection seeds%s",
                    c->sel[r->sel].eligible ? "" : " (no setting reached τ · MU(origin))");
        else if (r->same_seeds)
            fputs("the best-setting rule above, **on these same seeds**", f);
        else if (r->row >= 0)
            fputs("its only setting", f);
        else
            fputs("– (no setting has a forget quality and a utility)", f);
        fputs(" |\n", f);
    }
}

/* "at MU ≥ 0.95 × origin", "(settings picked on these same seeds)", or "". */
static void constraint_text(ctx_t *c, FILE *f, const pair_t *p)
{
    const reported_t *A = &c->rep[p->a], *B = &c->rep[p->b];
    if (A->sel >= 0 && B->sel >= 0 && c->sel[A->sel].tau == c->sel[B->sel].tau) {
        fprintf(f, " at MU ≥ %g × origin", c->sel[A->sel].tau);
        for (int k = 0; k < 2; k++) {
            const reported_t *r = k ? B : A;
            if (!c->sel[r->sel].eligible) {
                fputs(" (", f);
                rp_md_text(f, r->method);
                fputs(": no setting reached it)", f);
            }
        }
    } else if (A->same_seeds || B->same_seeds) {
        fputs(" (settings picked on these same seeds)", f);
    }
}

/* "npo vs simnpo", then `on` and the split when `on` is not empty. */
static void pair_name(ctx_t *c, FILE *f, const pair_t *p, const char *on)
{
    rp_md_text(f, c->rep[p->a].method);
    fputs(" vs ", f);
    rp_md_text(f, c->rep[p->b].method);
    if (!on[0]) return;
    fputs(on, f);
    rp_md_text(f, c->rep[p->a].split);
}

static void md_verdicts(ctx_t *c, FILE *f)
{
    fprintf(f,
            "\nEvery two methods on each forget split, paired by seed on the report seeds. "
            "A − B is the mean over seeds of the difference; the interval is a percentile "
            "bootstrap 95 %% interval of that mean (%d resamples of the seeds, fixed seed: the "
            "same numbers on every run). **A difference is shown only when its interval "
            "excludes 0, over at least %d seeds** (from 2 seeds the interval is the two "
            "differences themselves); \"no difference shown\" is not evidence that the "
            "methods are equal. "
            "\"A ahead\" counts the seeds where A is better: higher log10 FQ; smaller |forget "
            "prob − retrained model's|; smaller relearn recovery (forget prob after k relearn "
            "steps minus before, k the last step every curve of both has).\n\n",
            STATS_BOOT_N, STATS_MIN_SHOWN);
    fputs("| split | A vs B | seeds | log10 FQ A − B | A ahead | FQ | \\|gap\\| A − B | A ahead | "
          "gap "
          "| recovery A − B | k | A ahead | recovery |\n"
          "|---|---|--:|--:|--:|---|--:|--:|---|--:|--:|--:|---|\n",
          f);
    for (int i = 0; i < c->npairs; i++) {
        const pair_t *p = &c->pairs[i];
        fputs("| ", f);
        rp_md_text(f, c->rep[p->a].split);
        fputs(" | ", f);
        pair_name(c, f, p, "");
        fprintf(f, " | %d |", p->nseeds);
        for (int q = 0; q < NCMP; q++) {
            fputc(' ', f);
            interval_text(f, &p->s[q]);
            if (q == CMP_REC) {
                char k[64];
                rp_fmt_g(k, sizeof k, p->s[q].n ? p->rec_k : NAN, 6);
                fprintf(f, " | %s", k[0] ? k : "–");
            }
            fprintf(f, " | %d/%d | ", p->s[q].wins, p->s[q].n);
            verdict_text(c, f, p, q);
            fputs(" |", f);
        }
        fputc('\n', f);
    }
    fputs("\nVerdicts:\n\n", f);
    for (int i = 0; i < c->npairs; i++) {
        const pair_t *p = &c->pairs[i];
        fputs("- ", f);
        pair_name(c, f, p, " on ");
        constraint_text(c, f, p);
        if (!p->s[CMP_FQ].n) {
            fprintf(f, ": no log10 FQ on the %d common seed%s\n", p->nseeds,
                    p->nseeds == 1 ? "" : "s");
            continue;
        }
        fputs(": log10 FQ ", f);
        interval_text(f, &p->s[CMP_FQ]);
        fprintf(f, ", %d/%d seeds — ", p->s[CMP_FQ].wins, p->s[CMP_FQ].n);
        verdict_text(c, f, p, CMP_FQ);
        fputs("\n", f);
    }
}

/* ------------------------------------------------------------------------------------ */

typedef struct {
    const char *method;
    int jobs[2];
    double tokens[2], cpu[2];
} method_budget;

static int budget_table(ctx_t *c, method_budget *mb)
{
    int n = 0;
    for (int k = 0; k < c->nbudgets; k++) {
        const budget_t *b = &c->budgets[k];
        int i = 0;
        while (i < n && strcmp(mb[i].method, b->method)) i++;
        if (i == n) memset(&mb[n++], 0, sizeof *mb), mb[i].method = b->method;
        mb[i].jobs[b->phase]++;
        mb[i].tokens[b->phase] += b->tokens;
        mb[i].cpu[b->phase] += b->cpu_s;
    }
    return n;
}

static void md_budget(ctx_t *c, FILE *f, const method_budget *mb, int n)
{
    if (!n) return;
    fputs("\n## Unlearning budget per method\n\nSummed over the method's unlearn jobs (each "
          "job's budget.json, found beside the checkpoint its evaluation names), all forget "
          "splits. Selection-phase jobs are the price of choosing the setting.\n\n"
          "| method | jobs (selection + report) | tokens selection | tokens report | tokens total "
          "| CPU-s selection | CPU-s report | CPU-s total |\n|---|--:|--:|--:|--:|--:|--:|--:|\n",
          f);
    for (int i = 0; i < n; i++) {
        char t[6][64];
        rp_fmt_g(t[0], 64, mb[i].tokens[PHASE_SELECTION], 10);
        rp_fmt_g(t[1], 64, mb[i].tokens[PHASE_REPORT], 10);
        rp_fmt_g(t[2], 64, mb[i].tokens[0] + mb[i].tokens[1], 10);
        rp_fmt_g(t[3], 64, mb[i].cpu[PHASE_SELECTION], REPORT_MD_DIGITS);
        rp_fmt_g(t[4], 64, mb[i].cpu[PHASE_REPORT], REPORT_MD_DIGITS);
        rp_fmt_g(t[5], 64, mb[i].cpu[0] + mb[i].cpu[1], REPORT_MD_DIGITS);
        fputs("| ", f);
        rp_md_text(f, mb[i].method);
        fprintf(f, " | %d + %d | %s | %s | %s | %s | %s | %s |\n", mb[i].jobs[PHASE_SELECTION],
                mb[i].jobs[PHASE_REPORT], t[0], t[1], t[2], t[3], t[4], t[5]);
    }
    int missing = 0;
    for (int i = 0; i < c->nruns; i++)
        missing += c->runs[i].budget < 0 &&
                   strcmp(rp_lab_str(&c->runs[i].lab, "method"), "origin") &&
                   strcmp(rp_lab_str(&c->runs[i].lab, "method"), "retrain");
    if (missing)
        fprintf(f,
                "\n%d evaluated run%s of a method name no budget.json (a checkpoint folder "
                "not found, or from before budgets): not counted.\n",
                missing, missing == 1 ? "" : "s");
}

/* ------------------------------------------------------------------------------------ */
/* What this shows / what it does not show: every sentence depends on the numbers. */

static void list_shown(ctx_t *c, FILE *f, int q, const char *what)
{
    int k = 0, any = 0;
    for (int i = 0; i < c->npairs; i++) any |= c->pairs[i].s[q].n > 0;
    if (!any) {
        fprintf(f, "%s is not compared (no pair has values on a common seed). ",
                q == CMP_REC ? "Relearning robustness" : what);
        return;
    }
    for (int i = 0; i < c->npairs; i++) {
        const pair_t *p = &c->pairs[i];
        if (!stats_shown(&p->s[q])) continue;
        fprintf(f, "%s", k++ ? "; " : rp_xsprintf(c, "A difference in %s is shown for ", what));
        int a_ahead = q == CMP_FQ ? p->s[q].mean > 0 : p->s[q].mean < 0;
        pair_name(c, f, p, " on ");
        fputs(" (", f);
        rp_md_text(f, c->rep[a_ahead ? p->a : p->b].method);
        fprintf(f, " %s)", CMP_AHEAD[q]);
    }
    if (k)
        fputs(". ", f);
    else
        fprintf(f, "No pair shows a difference in %s. ", what);
}

/* Whether the methods' unlearning budgets (tokens, both phases) were comparable. */
static void md_compute(ctx_t *c, FILE *f, const method_budget *mb, int nmb)
{
    if (nmb < 2) return;
    int lo = 0, hi = 0;
    double *t = rp_xalloc(c, sizeof(double) * (size_t)nmb);
    for (int i = 0; i < nmb; i++) {
        t[i] = mb[i].tokens[0] + mb[i].tokens[1];
        if (t[i] < t[lo]) lo = i;
        if (t[i] > t[hi]) hi = i;
    }
    if (t[lo] > 0 && t[hi] > 1.1 * t[lo]) {
        fputs("Unlearning compute was not equal: ", f);
        rp_md_text(f, mb[hi].method);
        fprintf(f, " used %.3g× the tokens of ", t[hi] / t[lo]);
        rp_md_text(f, mb[lo].method);
        fputs(" (selection + report): the comparisons are not at equal compute. ", f);
    } else if (t[lo] > 0) {
        fputs("Unlearning compute was within 10 % across methods (tokens, selection + "
              "report). ",
              f);
    }
}

/* The limits: intervals, seeds, seeds that did not vary the runs, same-seed picks,
 * ineligible methods, the plot's floor. */
static void md_does_not_show(ctx_t *c, FILE *f, double width, int nmax, int shown_any)
{
    fputs("\n\n**Does not show.** ", f);
    int same = 0;
    for (int i = 0; i < c->npairs; i++)
        for (int q = 0; q < NCMP; q++) same += same_nonzero(&c->pairs[i].s[q]);
    if (same)
        fprintf(f,
                "%d verdict%s had the same nonzero difference on every seed: those runs did "
                "not vary with the seed (a forget set that fits in one batch, read in the "
                "same order, by methods that read no retain data), so the seeds are one "
                "observation and nothing is shown from them. ",
                same, same == 1 ? "" : "s");
    if (width > 0)
        fprintf(f,
                "Where no difference is shown, the methods are not shown equal: differences "
                "up to %.2g in log10 FQ fit the intervals. ",
                width);
    if (nmax < 2)
        fputs("With one report seed per pair there is no interval, so no difference can be "
              "shown: the single-seed differences above are anecdotes. ",
              f);
    else if (nmax <= 5)
        fprintf(f,
                "With only %d report seeds the intervals are wide, and at this size the "
                "percentile bootstrap tends to be too narrow: an exact sign-flip test cannot "
                "reach p < 0.05 with fewer than 6 seeds (its smallest two-sided p is 2/2^%d = "
                "%.3g)%s. ",
                nmax, nmax, 2.0 / pow(2, nmax),
                shown_any ? "; treat a difference shown here as a lead to re-test on more seeds"
                          : "");
    for (int i = 0; i < c->nrepm; i++) {
        const reported_t *r = &c->rep[i];
        const char *why = r->same_seeds ? ": its setting was picked on the same seeds it is "
                                          "reported on (no selection phase), which flatters it; "
                                          "its numbers and comparisons are optimistic. "
                          : r->sel >= 0 && !c->sel[r->sel].eligible
                              ? ": no setting reached τ · MU(origin) on the selection seeds, so "
                                "its comparisons are not at equal utility. "
                              : NULL;
        if (!why) continue;
        rp_md_text(f, r->method);
        fputs(" on ", f);
        rp_md_text(f, r->split);
        fputs(why, f);
    }
    if (c->nclipped)
        fprintf(f,
                "%d run%s with log10 FQ below %.3g %s drawn at that floor in fq_vs_mu.png "
                "(open triangles); the tables give their values. ",
                c->nclipped, c->nclipped == 1 ? "" : "s", c->fq_floor,
                c->nclipped == 1 ? "is" : "are");
    fputs("All of it holds for this model, data and budget only; it does not say how the "
          "methods rank at other scales or on other forget sets.\n",
          f);
}

static void md_shows(ctx_t *c, FILE *f, const method_budget *mb, int nmb)
{
    fputs("\n## What this shows / what it does not show\n\n", f);
    if (!c->npairs) {
        fputs("No two methods have report-phase runs on a common forget split: nothing is "
              "compared.\n",
              f);
        return;
    }
    int nmin = 1 << 30, nmax = 0, all_sel = 1, shown_any = 0;
    double width = 0;
    for (int i = 0; i < c->npairs; i++) {
        const pair_t *p = &c->pairs[i];
        int n = p->nseeds;
        nmin = n < nmin ? n : nmin, nmax = n > nmax ? n : nmax;
        all_sel &= c->rep[p->a].sel >= 0 && c->rep[p->b].sel >= 0;
        shown_any |= stats_shown(&p->s[CMP_FQ]);
        if (n >= 2 && !stats_shown(&p->s[CMP_FQ]))
            width = fmax(width, fmax(fabs(p->s[CMP_FQ].lo), fabs(p->s[CMP_FQ].hi)));
    }
    fprintf(f, "**Shows.** %d comparison%s, each over %d", c->npairs, c->npairs == 1 ? "" : "s",
            nmin);
    if (nmax != nmin) fprintf(f, " to %d", nmax);
    fputs(nmax == 1 ? " report seed. " : " report seeds. ", f);
    list_shown(c, f, CMP_FQ, "log10 FQ");
    list_shown(c, f, CMP_GAP, "the forget-prob gap to the retrained model");
    list_shown(c, f, CMP_REC, "relearn recovery");
    if (all_sel)
        fputs("Each method's setting was chosen on the selection seeds and is reported on "
              "other seeds, so the reported numbers carry no selection bias from that choice. ",
              f);
    md_compute(c, f, mb, nmb);
    md_does_not_show(c, f, width, nmax, shown_any);
}

void rp_md_comparisons(ctx_t *c, FILE *f)
{
    method_budget *mb = rp_xalloc(c, sizeof *mb * (size_t)(c->nbudgets + 1));
    int nmb = budget_table(c, mb);
    if (c->nrepm) {
        fputs("\n## Comparisons between methods\n\n", f);
        md_reported(c, f);
        if (c->npairs) md_verdicts(c, f);
    }
    md_budget(c, f, mb, nmb);
    if (c->nrepm) md_shows(c, f, mb, nmb);
}

/* ------------------------------------------------------------------------------------ */

void rp_md_buckets(ctx_t *c, FILE *f)
{
    int any = 0;
    for (int j = 0; j < c->nrep; j++)
        for (int b = 0; b < NBUCKET; b++) any |= c->rows[c->order[j]].bcnt[b][B_PROB] > 0;
    if (!any) return;
    fputs("\n## Forget split by answer length\n\nThe forget metrics per bucket of the forget "
          "split (short and long answers, as the evaluation split them): means over the "
          "seeds that have them; \"(k)\" as above.\n\n",
          f);
    int ncol;
    rp_md_label_header(c, f, &ncol);
    static const char *const T[NBMETRIC] = {"n", "prob", "ROUGE", "TR"};
    for (int b = 0; b < NBUCKET; b++)
        for (int q = 0; q < NBMETRIC; q++) fprintf(f, " %s %s |", b ? "long" : "short", T[q]);
    fputs("\n|", f);
    for (int i = 0; i < ncol + NBUCKET * NBMETRIC; i++) fputs(i < ncol - 1 ? "---|" : "--:|", f);
    fputc('\n', f);
    for (int j = 0; j < c->nrep; j++) {
        const row_t *w = &c->rows[c->order[j]];
        if (!w->bcnt[0][B_PROB] && !w->bcnt[1][B_PROB]) continue;
        rp_md_label_cells(c, f, w);
        for (int b = 0; b < NBUCKET; b++)
            for (int q = 0; q < NBMETRIC; q++)
                rp_md_cell(f, w->bmean[b][q], NAN, w->bcnt[b][q], w->nruns);
        fputc('\n', f);
    }
}
