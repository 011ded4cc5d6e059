/* analysis/report.h — `lethe report`: the result files of a study or sweep, turned into
 * tables and plots.
 *
 * Contract: no MPI (the job in jobs/report.c calls it on one rank). report_run reads
 * every result folder under opts->dir (at any depth, symbolic links followed, each
 * folder once, the output folder skipped), writes the outputs listed below into the
 * output folder (created if needed), and returns REPORT_OK. On failure it returns
 * REPORT_EINPUT (bad usage, a missing or malformed input file, nothing to report, a
 * gnuplot named by opts->gnuplot or $LETHE_GNUPLOT that cannot be run) or REPORT_EIO (an output cannot be written,
 * gnuplot fails), with one line in err (at most errlen - 1 characters, no newline)
 * naming the file, the key and what was expected. Inputs are checked, and gnuplot found,
 * before anything is written; every output is written to a temporary name and renamed
 * when complete, so a failure part-way leaves only complete files.
 *
 * Inputs (all numbers are used as the files give them, never recomputed):
 *   - an evaluated run: a folder with summary.json and labels.json (both required);
 *   - a relearn curve: a folder with relearn.jsonl and labels.json (both required);
 *   - bench results: a folder with bench.jsonl (labels.json optional; its "nodes"
 *     gives the node count).
 *   labels.json is an object of scalars with at least "method" and "split" (strings)
 *   for runs and curves. A run's setting is its labels without "seed"; runs of one
 *   setting are its seeds. A curve's labels are its run's plus the attack's own
 *   (relearn_lr, checkpoint, ...): it belongs to the setting whose labels (but "seed")
 *   are all among its own with the same values, the one with the most labels; its
 *   recovery is forget_prob at its last step minus at its first (step 0), and a
 *   setting's relearn recovery is the mean over its curves. Two runs (or two curves)
 *   with the same labels are an error naming both folders. A summary.json must have
 *   splits, roles and model_utility (a number or null); roles.forget and roles.retain,
 *   when there, name splits; every other metric may be absent or null (no value).
 *   labels.json may carry "phase": "selection" | "report" (absent: report) and "setting";
 *   summary.json may name "checkpoint" (its folder is the unlearn job's: budget.json is
 *   read from the study folder under that folder's name, else from the folder itself)
 *   and splits.<forget>.buckets.{short,long} {n, prob, rouge_recall, truth_ratio};
 *   - a selection: a folder with selected.json {method, forget, setting, rule, tau,
 *     mu_origin (number or null), eligible (bool), candidates (array of objects with a
 *     setting)}; at most one per method and forget split;
 *   - a budget: budget.json {tokens, steps, cpu_seconds, wall_seconds, ranks}, numbers
 *     >= 0.
 *
 * Phases: report-phase rows are the results (the tables, results.csv, best.csv);
 * selection-phase rows appear only under "Selection phase and Pareto fronts". A method's
 * reported setting on a split is the one its selected.json names; without one, its only
 * report-phase setting, else the best-setting rule's pick (on the same seeds: results.md
 * says so). Every two methods (not origin, retrain) on a split are compared on the seeds
 * both have, by analysis/stats.h: log10 FQ (higher is better), |forget_prob_gap|
 * (smaller), relearn recovery after k steps, k the last step all their curves share
 * (smaller); mean difference, bootstrap 95 % interval, wins; a difference is shown only
 * when the interval excludes 0, over at least STATS_MIN_SHOWN (3) seeds.
 *
 * Outputs in the output folder (default <dir>/report):
 *   results.md    header (counts, labels shared by every run, legend), the table of all
 *                 report-phase settings, the best setting per method (the rule is written
 *                 above it; only in a study without phases), the comparisons (reported
 *                 settings, verdict table and lines, budgets, "What this shows / what it
 *                 does not show"), the forget split by answer length, the selection phase,
 *                 the Markov KL table when any run has one, the runs' evaluation errors;
 *                 mean ± sample std (n - 1) over seeds, REPORT_MD_DIGITS significant
 *                 digits, "–" for no value.
 *   results.csv   one row per setting: method, split, one column per other label, seeds,
 *                 then per metric <name>, <name>_std, <name>_n (values behind the mean);
 *                 REPORT_CSV_DIGITS significant digits; empty for no value.
 *   best.csv      the best-per-method rows, same columns.
 *   runs.csv      one row per evaluated run: folder, labels, the metrics as read.
 *   comparisons.csv  one row per compared pair: split, a, b, seeds, then per metric
 *                 (log10_fq, abs_gap, recovery) the mean difference a − b, lo, hi, a's wins,
 *                 ties, n, shown; recovery_k (10 significant digits).
 *   pareto.csv    the settings each method's front is over (its selection-phase ones
 *                 when it has any, else its report-phase ones): means and on_front.
 *   budget.csv    per method: unlearn jobs, tokens and CPU seconds per phase.
 *   plots (unless opts->plots == 0), each as NAME.png beside NAME.dat and NAME.gp
 *   (`gnuplot NAME.gp` in the output folder redraws it):
 *     fq_vs_mu            log10 forget quality against model utility, a panel per forget
 *                         split: a point per report-phase run, each method's Pareto front
 *                         as a line over its settings, the τ · MU(origin) line; at most 6
 *                         decades shown, runs below drawn at the floor (open triangles);
 *     relearn_<method>    forget probability against relearn step, a line per curve;
 *     markov_kl           KL per chain, grouped bars per setting (runs with "markov");
 *     scaling (+ scaling.md, written even without plots) tokens/s, parallel efficiency
 *                         and communication share against ranks (or nodes when every
 *                         bench folder's labels give them), one line per series.
 *   gnuplot.log   what gnuplot printed.
 *
 * Bench series: bench lines of one workload (params, batch, seq_len, threads,
 * blas_core, labels other than nodes and seed) and one layout kind (which of dp, pp, tp
 * exceed 1; a one-rank line joins every series of its workload). Lines with the same
 * workload, layout, micro-batches and node count are repeats and are averaged.
 * Efficiency = (tokens_per_s / ranks) / (tokens_per_s0 / ranks0), the 0 point being the
 * series' smallest rank count (the fastest line there); with ranks0 = 1 that is
 * tokens_per_s / (ranks * tokens_per_s at one rank). Comm share = comm_ms / ms_per_step.
 *
 * gnuplot: opts->gnuplot, else $LETHE_GNUPLOT, else `gnuplot` on PATH; the scripts pick
 * the pngcairo terminal when the gnuplot has it, else png. When neither names one and
 * PATH has none, the plots are skipped with one line on stdout and the tables written. */
#ifndef LETHE_REPORT_H
#define LETHE_REPORT_H

#include <stddef.h>

#define REPORT_MD_DIGITS 4
#define REPORT_CSV_DIGITS 6

enum { REPORT_OK = 0, REPORT_EIO = 1, REPORT_EINPUT = 2 };

typedef struct {
    const char *dir;     /* the study or sweep folder (required) */
    const char *out;     /* output folder; NULL: <dir>/report */
    int plots;           /* 1: draw the PNG plots with gnuplot; 0: tables only */
    const char *gnuplot; /* NULL: $LETHE_GNUPLOT or "gnuplot" */
    int quiet;           /* 0: print one line per output file written to stdout */
} report_options;

int report_run(const report_options *opts, char *err, size_t errlen);

#endif
