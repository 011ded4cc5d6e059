/* jobs/slurm.c — `lethe slurm`'s front-end: its usage and options, then the plan on
 * rank 0 (slurm/plan.h: a study, a node-count sweep or one job as Slurm batch jobs);
 * the other ranks (if any) wait for its verdict: 0, 2 for a bad command line or input
 * file, 1 when a script cannot be written or sbatch fails.
 *
 *   lethe slurm STUDY.json [options]        every unfinished job of a study (io/study.h)
 *   lethe slurm SWEEP.json [--nodes-list L]  a node-count sweep of bench jobs (a file with
 *                                            "bench" instead of a study's parts)
 *   lethe slurm --job KIND CONFIG.json [--name NAME] [--set key=value ...] [options]
 *                                            one job */
#include <mpi.h>
#include <stdio.h>
#include <string.h>

#include "../mpi/fatal.h"
#include "../slurm/plan.h"
#include "jobs.h"

#define SLURM_USAGE                                                                                \
    "usage: lethe slurm STUDY.json [--dir DIR] [--partition P] [--account A] [--time T]\n"         \
    "         [--nodes N] [--ntasks-per-node K] [--nodes-list 1,2,4] [--throttle K]\n"             \
    "         [--launcher srun|mpirun] [--signal-seconds S] [--loopback] [--overcommit]\n"         \
    "         [--serial] [--dry-run] [--rerun-changed] [--set key=value ...]\n"                    \
    "       lethe slurm --job KIND CONFIG.json [--name NAME] [--set key=value ...] [options]"

static void usage(FILE *f)
{
    fprintf(f, SLURM_USAGE
            "\n\n"
            "Writes one sbatch script per job of a study (or of a node-count sweep, or one job)\n"
            "and submits them in dependency order, chained with --dependency=afterok. Jobs of\n"
            "one hyper-parameter group become a job array. Finished jobs (DIR/<job>/.done) are\n"
            "skipped, and so are jobs still queued or running from an earlier submission.\n\n"
            "  --dir DIR            study folder (default runs/<study>)\n"
            "  --partition P        #SBATCH --partition\n"
            "  --account A          #SBATCH --account\n"
            "  --time T             #SBATCH --time (MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, "
            "D-HH:MM:SS)\n"
            "  --nodes N            nodes per job (at most one per rank)\n"
            "  --ntasks-per-node K  ranks per node (nodes = ceil(ranks / K)); a sweep's ranks\n"
            "                       per node\n"
            "  --nodes-list L       node counts of a bench sweep, comma-separated\n"
            "  --throttle K         at most K tasks of a job array at once\n"
            "  --launcher L         srun (srun --mpi=pmix, default) or mpirun\n"
            "  --signal-seconds S   USR1 this long before the time limit to train, unlearn\n"
            "                       and relearn jobs (checkpoint, requeue); default 120, or\n"
            "                       half the time limit when that is shorter than 240 s\n"
            "  --loopback           multi-node jobs message through Open MPI's UCX layer\n"
            "                       (virtual nodes of one host, slurm/local-cluster.sh)\n"
            "  --overcommit         #SBATCH --overcommit (more ranks than CPUs on a node)\n"
            "  --serial             a sweep's bench jobs run one after another (afterok chain)\n"
            "  --dry-run            write the scripts (without dependencies), submit nothing\n"
            "  --rerun-changed      move a finished job whose config or labels changed (and the\n"
            "                       finished jobs depending on it) aside to DIR/<job>.old-N and\n"
            "                       submit it again; without it such a job is refused\n"
            "  --job KIND           submit one job (synth, train, unlearn, eval, relearn, bench)\n"
            "                       of CONFIG.json in DIR/NAME (default NAME: KIND)\n"
            "  --set key=value      with --job: overrides passed on to the lethe command; with a\n"
            "                       study: as lethe study --set (base config, source.*)\n\n"
            "Writes DIR/<job>/job.json and job.sbatch (arrays: DIR/<group>.sbatch and\n"
            "DIR/<group>.tasks), and appends every submitted id to DIR/slurm_jobs.tsv.\n");
}

/* ---- options ------------------------------------------------------------------------- */

static int nodes_list(slurm_opts *o, const char *v, slurm_err *e)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%s", v);
    char *save = NULL;
    o->n_nodes_list = 0;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        int n;
        if (o->n_nodes_list == SLURM_MAX_NODES_LIST || slurm_parse_int(t, 1, 100000, &n))
            return slurm_fail(e, 2,
                              "slurm: --nodes-list '%s': '%s' is not a node count in 1..100000 "
                              "(at most %d counts, comma-separated)",
                              v, t, SLURM_MAX_NODES_LIST);
        for (int k = 0; k < o->n_nodes_list; k++)
            if (o->nodes_list[k] == n)
                return slurm_fail(e, 2, "slurm: --nodes-list '%s' names %d twice", v, n);
        o->nodes_list[o->n_nodes_list++] = n;
    }
    if (!o->n_nodes_list)
        return slurm_fail(e, 2, "slurm: --nodes-list '%s' names no node count", v);
    return 0;
}

/* An integer option's value into *out. */
static int int_value(const char *a, const char *v, int hi, int *out, slurm_err *e)
{
    if (slurm_parse_int(v, 1, hi, out))
        return slurm_fail(e, 2, "slurm: %s '%s' is not an integer in 1..%d", a, v, hi);
    return 0;
}

/* Option a (takes_value) with its value v: 0, or 2 for a bad value. */
static int value_option(slurm_opts *o, const char *a, const char *v, slurm_err *e)
{
    if (!strcmp(a, "--dir"))
        o->dir = v;
    else if (!strcmp(a, "--partition"))
        o->partition = v;
    else if (!strcmp(a, "--account"))
        o->account = v;
    else if (!strcmp(a, "--job"))
        o->job_kind = v;
    else if (!strcmp(a, "--name"))
        o->name = v;
    else if (!strcmp(a, "--time")) {
        o->time_limit = v;
        if (lethe_slurm_time_seconds(v) <= 0)
            return slurm_fail(e, 2,
                              "slurm: --time '%s' is not a Slurm time above zero (expected MM, "
                              "MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS)",
                              v);
    } else if (!strcmp(a, "--nodes"))
        return int_value(a, v, 100000, &o->nodes, e);
    else if (!strcmp(a, "--ntasks-per-node"))
        return int_value(a, v, 100000, &o->ntasks_per_node, e);
    else if (!strcmp(a, "--throttle"))
        return int_value(a, v, 100000, &o->throttle, e);
    else if (!strcmp(a, "--signal-seconds"))
        return int_value(a, v, 65535, &o->signal_seconds, e);
    else if (!strcmp(a, "--nodes-list"))
        return nodes_list(o, v, e);
    else if (!strcmp(a, "--launcher")) {
        if (!strcmp(v, "srun"))
            o->launcher = LETHE_LAUNCH_SRUN;
        else if (!strcmp(v, "mpirun"))
            o->launcher = LETHE_LAUNCH_MPIRUN;
        else
            return slurm_fail(e, 2, "slurm: --launcher '%s' is not srun or mpirun", v);
    } else if (!strcmp(a, "--set")) {
        if (o->nsets == SLURM_MAX_SETS)
            return slurm_fail(e, 2, "slurm: more than %d --set options", SLURM_MAX_SETS);
        if (!strchr(v, '=') || v[0] == '=')
            return slurm_fail(e, 2, "slurm: --set '%s' is not key=value", v);
        o->sets[o->nsets++] = v;
    }
    return 0;
}

/* The options that go together, once all are read. */
static int check_opts(const slurm_opts *o, slurm_err *e)
{
    if (!o->file)
        return slurm_fail(e, 2, "slurm: no %s file given (see lethe slurm --help)",
                          o->job_kind ? "config" : "study");
    if (o->name && !o->job_kind) return slurm_fail(e, 2, "slurm: --name applies to --job only");
    if (o->nodes && o->ntasks_per_node)
        return slurm_fail(e, 2, "slurm: give --nodes or --ntasks-per-node, not both");
    long long lim = o->time_limit ? lethe_slurm_time_seconds(o->time_limit) : -1;
    if (o->signal_seconds > 0 && lim > 0 && o->signal_seconds >= lim)
        return slurm_fail(e, 2, "slurm: --signal-seconds %d is not less than --time '%s' (%lld s)",
                          o->signal_seconds, o->time_limit, lim);
    return 0;
}

static int takes_value(const char *a)
{
    static const char *const with_value[] = {"--dir",      "--partition",
                                             "--account",  "--time",
                                             "--nodes",    "--ntasks-per-node",
                                             "--throttle", "--signal-seconds",
                                             "--launcher", "--nodes-list",
                                             "--job",      "--name",
                                             "--set",      NULL};
    for (const char *const *k = with_value; *k; k++)
        if (!strcmp(a, *k)) return 1;
    return 0;
}

static int parse_opts(int argc, char **argv, slurm_opts *o, slurm_err *e)
{
    memset(o, 0, sizeof *o);
    o->signal_seconds = -1;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (takes_value(a)) {
            if (i + 1 == argc)
                return slurm_fail(e, 2, "slurm: %s needs a value (see lethe slurm --help)", a);
            int rc = value_option(o, a, argv[++i], e);
            if (rc) return rc;
        } else if (!strcmp(a, "--loopback")) {
            o->loopback = 1;
        } else if (!strcmp(a, "--overcommit")) {
            o->overcommit = 1;
        } else if (!strcmp(a, "--dry-run")) {
            o->dry = 1;
        } else if (!strcmp(a, "--rerun-changed")) {
            o->rerun_changed = 1;
        } else if (!strcmp(a, "--serial")) {
            o->serial = 1;
        } else if (a[0] == '-' && a[1]) {
            return slurm_fail(e, 2, "slurm: unknown option '%s' (see lethe slurm --help)", a);
        } else if (!o->file) {
            o->file = a;
        } else {
            return slurm_fail(e, 2, "slurm: unexpected argument '%s' (see lethe slurm --help)", a);
        }
    }
    return check_opts(o, e);
}

/* ---- the job ---------------------------------------------------------------------------- */

int job_slurm(int argc, char **argv)
{
    int rank, rc = 0;
    MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            if (rank == 0) usage(stdout);
            return 0;
        }
    if (rank == 0) {
        slurm_opts o;
        slurm_err e = {""};
        rc = parse_opts(argc, argv, &o, &e);
        if (!rc) rc = slurm_plan_submit(&o, &e);
        if (rc) fprintf(stderr, "lethe: %s\n", e.msg);
    }
    MPI_CHECK(MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD));
    return rc;
}
