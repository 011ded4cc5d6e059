/* jobs/report.c — `lethe report DIR [--out OUTDIR] [--no-plots]`: the results of a study
 * or sweep as tables and plots (analysis/report.h says what is read and written).
 *
 * The work is serial file reading and plotting, so rank 0 does it all and the other
 * ranks wait for its verdict; every rank returns the same exit code (0, 2 for bad usage
 * or input, 1 for an output that cannot be written). The job needs no grid: it talks to
 * the world communicator only to share that verdict. */
#include <mpi.h>
#include <stdio.h>
#include <string.h>

#include "../analysis/report.h"
#include "../mpi/fatal.h"
#include "jobs.h"

/* The job's own help (DIR and options, not a config's keys), for `lethe report --help`. */
void job_report_usage(FILE *f);

#define REPORT_USAGE "usage: lethe report DIR [--out OUTDIR] [--no-plots]"

void job_report_usage(FILE *f)
{
    fprintf(f, REPORT_USAGE
            "\n\n"
            "Reads every result folder under DIR (any depth): summary.json + labels.json of\n"
            "evaluated runs, relearn.jsonl + labels.json of relearning attacks, bench.jsonl\n"
            "(+ optional labels.json with \"nodes\") of benchmarks, selected.json of a\n"
            "study's selection phase; folders a re-run set aside (<job>.old-N,\n"
            "<name>.previous) are not read. Writes to OUTDIR (default\n"
            "DIR/report): results.md, results.csv, best.csv, runs.csv, comparisons.csv\n"
            "(every two methods per forget split, paired by seed, bootstrap intervals),\n"
            "pareto.csv, budget.csv (from each unlearn job's budget.json); fq_vs_mu.png,\n"
            "relearn_<method>.png, markov_kl.png, scaling.png + scaling.md when their inputs\n"
            "exist, each beside its gnuplot data (.dat) and script (.gp).\n\n"
            "  --out OUTDIR  output folder (created if needed)\n"
            "  --no-plots    tables only; gnuplot is not needed\n\n"
            "gnuplot: $LETHE_GNUPLOT, else gnuplot on PATH (Debian: gnuplot-nox); with\n"
            "neither, the plots are skipped with one line and the tables are written.\n");
}

/* Rank 0's work: parse the arguments, run the report. */
static int report_rank0(int argc, char **argv)
{
    report_options o = {NULL, NULL, 1, NULL, 0};
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            job_report_usage(stdout);
            return 0;
        } else if (!strcmp(a, "--no-plots")) {
            o.plots = 0;
        } else if (!strcmp(a, "--out")) {
            if (i + 1 >= argc || !argv[i + 1][0]) {
                fprintf(stderr, "lethe: report: --out needs a folder (" REPORT_USAGE ")\n");
                return 2;
            }
            o.out = argv[++i];
        } else if (!strncmp(a, "--out=", 6)) {
            o.out = a + 6;
            if (!o.out[0]) {
                fprintf(stderr, "lethe: report: --out needs a folder (" REPORT_USAGE ")\n");
                return 2;
            }
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "lethe: report: unknown option '%s' (" REPORT_USAGE ")\n", a);
            return 2;
        } else if (o.dir) {
            fprintf(stderr, "lethe: report: a second folder '%s' after '%s' (" REPORT_USAGE ")\n",
                    a, o.dir);
            return 2;
        } else {
            o.dir = a;
        }
    }
    if (!o.dir) {
        fprintf(stderr, "lethe: report: no study folder given (" REPORT_USAGE ")\n");
        return 2;
    }
    char err[2048];
    int rc = report_run(&o, err, sizeof err);
    if (rc) fprintf(stderr, "lethe: report: %s\n", err);
    fflush(stdout);
    fflush(stderr);
    return rc;
}

int job_report(int argc, char **argv)
{
    int rank, rc = 0;
    MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
    if (rank == 0) rc = report_rank0(argc, argv);
    MPI_CHECK(MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD));
    return rc;
}
