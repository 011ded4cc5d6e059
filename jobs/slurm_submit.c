/* jobs/slurm_submit.c — `lethe slurm`: a study, a node-count sweep or one job as Slurm
 * batch jobs.
 *
 *   lethe slurm STUDY.json [options]        every unfinished job of a study (jobs/study.h)
 *   lethe slurm SWEEP.json [--nodes-list L]  a node-count sweep of bench jobs (a file with
 *                                            "bench" instead of a study's parts)
 *   lethe slurm --job KIND CONFIG.json [--name NAME] [--set key=value ...] [options]
 *                                            one job
 *
 * Every job gets a folder <dir>/<name> holding its config (job.json) and its batch
 * script (job.sbatch, rendered by slurm/sbatch.h): `lethe <job> <dir>/<name>/job.json`
 * (the report: `lethe report <dir>`) on layout.dp*pp*tp ranks. Jobs of one array_group
 * and kind (a method's grid points and seeds, or their evals or relearn attacks) become
 * one job array: <dir>/<group>.sbatch picks its folder from line SLURM_ARRAY_TASK_ID+1
 * of <dir>/<group>.tasks. Jobs are submitted in dependency order with `sbatch
 * --parsable`, each waiting (afterok) for the jobs and arrays it depends on; a job that
 * depends on one task of an array waits for the whole array. train, unlearn and relearn
 * jobs get the pre-timeout signal (--signal=B:USR1@S, forwarded to the ranks, which write
 * checkpoint.h5 and exit) and requeue themselves. A script that ends with status 0 marks
 * its job done (<dir>/<name>/.done) unless the job was preempted (signalled, and a
 * checkpoint is left to resume from); a job marked done does not run again, and `lethe
 * slurm` submits only the jobs that are neither done nor still queued or running from an
 * earlier submission (the ids in <dir>/slurm_jobs.tsv that squeue still lists; those are
 * waited for instead). Every submitted id is appended to <dir>/slurm_jobs.tsv.
 *
 * sbatch hands the submitter's environment to the job; the variables an MPI launcher
 * gives this process (PMIX_*, OMPI_MCA_ess, ...) are not passed on, so the ranks that
 * srun starts do not believe they are a singleton.
 *
 * This file holds the options, the plan and the job; slurm_build.c builds the job list
 * and the units, slurm_scripts.c writes the files and runs sbatch and squeue (their
 * shared types: slurm_impl.h).
 *
 * Rank 0 does all the work; the other ranks (if any) wait for its verdict: 0, 2 for a bad
 * command line or input file, 1 when a script cannot be written or sbatch fails. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <mpi.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../mpi/fatal.h"
#include "../slurm/sbatch.h"
#include "jobs.h"
#include "slurm_impl.h"
#include "study.h"

int job_slurm(int argc, char **argv);
void job_slurm_usage(FILE *f);

#define SLURM_USAGE                                                                                \
    "usage: lethe slurm STUDY.json [--dir DIR] [--partition P] [--account A] [--time T]\n"         \
    "         [--nodes N] [--ntasks-per-node K] [--nodes-list 1,2,4] [--throttle K]\n"             \
    "         [--launcher srun|mpirun] [--signal-seconds S] [--loopback] [--overcommit]\n"         \
    "         [--serial] [--dry-run]\n"                                                            \
    "       lethe slurm --job KIND CONFIG.json [--name NAME] [--set key=value ...] [options]"

void job_slurm_usage(FILE *f)
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
            "  --job KIND           submit one job (synth, train, unlearn, eval, relearn, bench)\n"
            "                       of CONFIG.json in DIR/NAME (default NAME: KIND)\n"
            "  --set key=value      with --job: overrides passed on to the lethe command\n\n"
            "Writes DIR/<job>/job.json and job.sbatch (arrays: DIR/<group>.sbatch and\n"
            "DIR/<group>.tasks), and appends every submitted id to DIR/slurm_jobs.tsv.\n");
}

/* ---- errors ------------------------------------------------------------------------ */

static char g_err[2048];

int sl_fail(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_err, sizeof g_err, fmt, ap);
    va_end(ap);
    return code;
}

/* ---- options ------------------------------------------------------------------------- */

static int parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}

static int parse_opts(int argc, char **argv, slurm_opts *o)
{
    memset(o, 0, sizeof *o);
    o->signal_seconds = -1;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define VALUE(opt)                                                                                 \
    if (!v) return sl_fail(2, "slurm: %s needs a value (see lethe slurm --help)", opt);            \
    i++
        if (!strcmp(a, "--dir")) {
            VALUE(a);
            o->dir = v;
        } else if (!strcmp(a, "--partition")) {
            VALUE(a);
            o->partition = v;
        } else if (!strcmp(a, "--account")) {
            VALUE(a);
            o->account = v;
        } else if (!strcmp(a, "--time")) {
            VALUE(a);
            o->time_limit = v;
            if (lethe_slurm_time_seconds(v) <= 0)
                return sl_fail(2,
                               "slurm: --time '%s' is not a Slurm time above zero (expected MM, "
                               "MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS)",
                               v);
        } else if (!strcmp(a, "--nodes")) {
            VALUE(a);
            if (parse_int(v, 1, 100000, &o->nodes))
                return sl_fail(2, "slurm: --nodes '%s' is not an integer in 1..100000", v);
        } else if (!strcmp(a, "--ntasks-per-node")) {
            VALUE(a);
            if (parse_int(v, 1, 100000, &o->ntasks_per_node))
                return sl_fail(2, "slurm: --ntasks-per-node '%s' is not an integer in 1..100000",
                               v);
        } else if (!strcmp(a, "--throttle")) {
            VALUE(a);
            if (parse_int(v, 1, 100000, &o->throttle))
                return sl_fail(2, "slurm: --throttle '%s' is not an integer in 1..100000", v);
        } else if (!strcmp(a, "--signal-seconds")) {
            VALUE(a);
            if (parse_int(v, 1, 65535, &o->signal_seconds))
                return sl_fail(2, "slurm: --signal-seconds '%s' is not an integer in 1..65535", v);
        } else if (!strcmp(a, "--launcher")) {
            VALUE(a);
            if (!strcmp(v, "srun"))
                o->launcher = LETHE_LAUNCH_SRUN;
            else if (!strcmp(v, "mpirun"))
                o->launcher = LETHE_LAUNCH_MPIRUN;
            else
                return sl_fail(2, "slurm: --launcher '%s' is not srun or mpirun", v);
        } else if (!strcmp(a, "--nodes-list")) {
            VALUE(a);
            char buf[512];
            snprintf(buf, sizeof buf, "%s", v);
            char *save = NULL;
            o->n_nodes_list = 0;
            for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                int n;
                if (o->n_nodes_list == MAX_NODES_LIST || parse_int(t, 1, 100000, &n))
                    return sl_fail(
                        2,
                        "slurm: --nodes-list '%s': '%s' is not a node count in 1..100000 "
                        "(at most %d counts, comma-separated)",
                        v, t, MAX_NODES_LIST);
                for (int k = 0; k < o->n_nodes_list; k++)
                    if (o->nodes_list[k] == n)
                        return sl_fail(2, "slurm: --nodes-list '%s' names %d twice", v, n);
                o->nodes_list[o->n_nodes_list++] = n;
            }
            if (!o->n_nodes_list)
                return sl_fail(2, "slurm: --nodes-list '%s' names no node count", v);
        } else if (!strcmp(a, "--job")) {
            VALUE(a);
            o->job_kind = v;
        } else if (!strcmp(a, "--name")) {
            VALUE(a);
            o->name = v;
        } else if (!strcmp(a, "--set")) {
            VALUE(a);
            if (o->nsets == MAX_SETS)
                return sl_fail(2, "slurm: more than %d --set options", MAX_SETS);
            if (!strchr(v, '=') || v[0] == '=')
                return sl_fail(2, "slurm: --set '%s' is not key=value", v);
            o->sets[o->nsets++] = v;
        } else if (!strcmp(a, "--loopback")) {
            o->loopback = 1;
        } else if (!strcmp(a, "--overcommit")) {
            o->overcommit = 1;
        } else if (!strcmp(a, "--dry-run")) {
            o->dry = 1;
        } else if (!strcmp(a, "--serial")) {
            o->serial = 1;
        } else if (a[0] == '-' && a[1]) {
            return sl_fail(2, "slurm: unknown option '%s' (see lethe slurm --help)", a);
        } else if (!o->file) {
            o->file = a;
        } else {
            return sl_fail(2, "slurm: unexpected argument '%s' (see lethe slurm --help)", a);
        }
#undef VALUE
    }
    if (!o->file)
        return sl_fail(2, "slurm: no %s file given (see lethe slurm --help)",
                       o->job_kind ? "config" : "study");
    if (o->nsets && !o->job_kind) return sl_fail(2, "slurm: --set applies to --job only");
    if (o->name && !o->job_kind) return sl_fail(2, "slurm: --name applies to --job only");
    if (o->nodes && o->ntasks_per_node)
        return sl_fail(2, "slurm: give --nodes or --ntasks-per-node, not both");
    long long lim = o->time_limit ? lethe_slurm_time_seconds(o->time_limit) : -1;
    if (o->signal_seconds > 0 && lim > 0 && o->signal_seconds >= lim)
        return sl_fail(2, "slurm: --signal-seconds %d is not less than --time '%s' (%lld s)",
                       o->signal_seconds, o->time_limit, lim);
    return 0;
}

/* ---- the jobs: what each needs and how it is submitted ---------------------------------- */

int sl_add_unique(int **v, int *n, int x)
{
    for (int i = 0; i < *n; i++)
        if ((*v)[i] == x) return 0;
    int *w = realloc(*v, (size_t)(*n + 1) * sizeof **v);
    if (!w) return sl_fail(1, "slurm: out of memory");
    *v = w;
    w[(*n)++] = x;
    return 0;
}

int sl_add_ext(unit_t *u, const char *id)
{
    char base[64];
    snprintf(base, sizeof base, "%s", id);
    char *us = strchr(base, '_');
    if (us) *us = 0; /* a task of an array: wait for the whole array */
    for (int i = 0; i < u->next; i++)
        if (!strcmp(u->ext[i], base)) return 0;
    char **w = realloc(u->ext, (size_t)(u->next + 1) * sizeof *w);
    if (!w) return sl_fail(1, "slurm: out of memory");
    u->ext = w;
    if (!(w[u->next] = strdup(base))) return sl_fail(1, "slurm: out of memory");
    u->next++;
    return 0;
}

int sl_job_needs_signal(const char *kind)
{
    return !strcmp(kind, "train") || !strcmp(kind, "unlearn") || !strcmp(kind, "relearn");
}

/* Ranks of a job: layout.dp * pp * tp of its config (with --set overrides of the layout);
 * 1 for synth (any rank count; it needs one) and the report. */
int sl_job_ranks(const ctx_t *c, const study_job *j, int *ranks)
{
    *ranks = 1;
    if (!j->config_json || !strcmp(j->job, "synth") || !strcmp(j->job, "report")) return 0;
    cJSON *cfg = cJSON_Parse(j->config_json);
    if (!cfg) return sl_fail(2, "slurm: job '%s': its config is not JSON", j->name);
    const cJSON *lay = cJSON_GetObjectItemCaseSensitive(cfg, "layout");
    static const char *const keys[3] = {"dp", "pp", "tp"};
    long long r = 1;
    int rc = 0;
    for (int k = 0; k < 3 && !rc; k++) {
        double v = 1;
        const cJSON *x = lay ? cJSON_GetObjectItemCaseSensitive(lay, keys[k]) : NULL;
        if (x) {
            if (!cJSON_IsNumber(x) || x->valuedouble < 1 || x->valuedouble > 4096 ||
                x->valuedouble != floor(x->valuedouble))
                rc = sl_fail(2, "slurm: job '%s': layout.%s is not an integer in 1..4096", j->name,
                             keys[k]);
            else
                v = x->valuedouble;
        }
        /* --set layout.dp=N of a single job overrides the file */
        char key[32];
        snprintf(key, sizeof key, "layout.%s=", keys[k]);
        for (int i = 0; i < c->o.nsets && !rc; i++)
            if (!strncmp(c->o.sets[i], key, strlen(key))) {
                int n;
                if (parse_int(c->o.sets[i] + strlen(key), 1, 4096, &n))
                    rc = sl_fail(2, "slurm: --set %s: not an integer in 1..4096", c->o.sets[i]);
                else
                    v = n;
            }
        r *= (long long)v;
    }
    cJSON_Delete(cfg);
    if (!rc && r > 1000000) rc = sl_fail(2, "slurm: job '%s': %lld ranks", j->name, r);
    *ranks = (int)r;
    return rc;
}

/* Nodes and ranks per node of a job of `ranks` ranks. */
void sl_job_nodes(const ctx_t *c, int j, int ranks, int *nodes, int *per_node)
{
    int n = c->force_nodes && c->force_nodes[j] ? c->force_nodes[j] : 0;
    if (!n && c->o.nodes) n = c->o.nodes < ranks ? c->o.nodes : ranks;
    if (!n && c->o.ntasks_per_node) n = (ranks + c->o.ntasks_per_node - 1) / c->o.ntasks_per_node;
    if (!n) n = 1;
    *nodes = n;
    /* even spread; not given for a one-node job (the allocation holds every rank) */
    *per_node = n > 1 ? (ranks + n - 1) / n : 0;
}

/* ---- what is done, what is still queued ------------------------------------------------ */

static int read_previous(ctx_t *c)
{
    char path[PATH_MAX], err[1100];
    snprintf(path, sizeof path, "%s/slurm_jobs.tsv", c->s.dir);
    struct stat st;
    if (stat(path, &st)) return 0;
    char *text = sl_read_text(path, "record", err, sizeof err);
    if (!text) return sl_fail(1, "slurm: %s", err);
    int any = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#') continue;
        char *tab = strchr(line, '\t');
        if (!tab) continue;
        *tab = 0;
        char *id = tab + 1, *end = strchr(id, '\t');
        if (end) *end = 0;
        for (int j = 0; j < c->s.njobs; j++)
            if (!strcmp(c->s.jobs[j].name, line)) {
                snprintf(c->plan[j].prev_id, sizeof c->plan[j].prev_id, "%s", id);
                any = 1;
            }
    }
    free(text);
    if (!any || c->o.dry) return 0;
    /* which of those ids Slurm still holds as queued or running (one line per array task) */
    const size_t cap = (size_t)1 << 20;
    char *out = lethe_malloc(cap, "squeue output");
    const char *argv[] = {"squeue", "-h", "-r", "-t", "PD,R,CF,CG,RQ,RS,RH,S,SE,SO,ST",
                          "-o",     "%i", NULL};
    int r = sl_run_capture(argv, out, cap);
    if (r) {
        if (r > 0) sl_fail(1, "slurm: squeue failed (exit %d): %s", r, sl_last_line(out));
        free(out);
        return 1;
    }
    for (int j = 0; j < c->s.njobs; j++) {
        job_plan *p = &c->plan[j];
        if (p->status != ST_TODO || !p->prev_id[0]) continue;
        size_t n = strlen(p->prev_id);
        for (const char *l = out; *l;) {
            const char *e = strchr(l, '\n');
            size_t len = e ? (size_t)(e - l) : strlen(l);
            if (len == n && !strncmp(l, p->prev_id, n)) p->status = ST_QUEUED;
            l += len + (e ? 1 : 0);
        }
    }
    free(out);
    return 0;
}

/* ---- the job ---------------------------------------------------------------------------- */

static int copy_study_file(const ctx_t *c)
{
    char err[1100], path[PATH_MAX];
    char *text = sl_read_text(c->o.file, "study", err, sizeof err);
    if (!text) return sl_fail(2, "slurm: %s", err);
    snprintf(path, sizeof path, "%s/study.json", c->s.dir);
    int rc = sl_write_text(path, text);
    free(text);
    return rc;
}

static int slurm_rank0(int argc, char **argv)
{
    ctx_t c;
    memset(&c, 0, sizeof c);
    int rc = parse_opts(argc, argv, &c.o);
    if (!rc) rc = sl_build(&c);
    ssize_t bl = rc ? -1 : readlink("/proc/self/exe", c.lethe_bin, sizeof c.lethe_bin - 1);
    if (!rc && bl <= 0) rc = sl_fail(1, "slurm: cannot find the lethe binary (/proc/self/exe)");
    if (!rc) c.lethe_bin[bl] = 0;
    if (!rc && !(c.plan = calloc((size_t)c.s.njobs + 1, sizeof(job_plan))))
        rc = sl_fail(1, "slurm: out of memory");
    if (!rc) {
        char err[1024];
        if (study_write_configs(&c.s, err, sizeof err)) rc = sl_fail(1, "slurm: %s", err);
        if (!c.is_study) {
            char data[PATH_MAX];
            snprintf(data, sizeof data, "%s/data", c.s.dir);
            rmdir(data); /* study_write_configs makes it for a study's data; unused here */
        }
    }
    if (!rc && c.is_study) rc = copy_study_file(&c);
    for (int j = 0; !rc && j < c.s.njobs; j++)
        c.plan[j].status = study_job_done(&c.s, j) ? ST_DONE : ST_TODO;
    if (!rc) rc = read_previous(&c);
    if (!rc) rc = sl_make_units(&c);
    int nsub = 0;
    for (int k = 0; !rc && k < c.nunits; k++) {
        unit_t *x = NULL;
        for (int u = 0; u < c.nunits; u++)
            if (c.units[u].order == k) x = &c.units[u];
        if (!x) break;
        unsigned long ids[STUDY_MAX_JOBS + 64];
        size_t n = 0;
        if (!c.o.dry) {
            for (int d = 0; d < x->ndeps; d++) ids[n++] = c.units[x->deps[d]].id;
            for (int e = 0; e < x->next && n < sizeof ids / sizeof ids[0]; e++)
                ids[n++] = strtoul(x->ext[e], NULL, 10);
        }
        rc = sl_write_script(&c, x, ids, n);
        if (!rc && !c.o.dry) rc = sl_submit(x);
        if (!rc && !c.o.dry) rc = sl_record(&c, x);
        if (!rc) nsub++;
    }
    if (!rc || nsub) {
        int todo = 0, done = 0, queued = 0;
        for (int j = 0; j < c.s.njobs; j++) {
            todo += c.plan[j].status == ST_TODO;
            done += c.plan[j].status == ST_DONE;
            queued += c.plan[j].status == ST_QUEUED;
        }
        printf("lethe slurm %s: %d jobs in %s: %d %s as %d submission%s, %d done, %d still "
               "queued%s\n",
               c.s.name, c.s.njobs, c.s.dir, todo, c.o.dry ? "to submit (dry run)" : "submitted",
               nsub, nsub == 1 ? "" : "s", done, queued, rc ? " (then an error)" : "");
        sl_print_table(&c);
        fflush(stdout);
    }
    for (int u = 0; u < c.nunits; u++) {
        free(c.units[u].members);
        free(c.units[u].deps);
        for (int e = 0; e < c.units[u].next; e++) free(c.units[u].ext[e]);
        free(c.units[u].ext);
    }
    free(c.units);
    free(c.plan);
    free(c.force_nodes);
    if (c.s.jobs) study_free(&c.s);
    if (rc) fprintf(stderr, "lethe: %s\n", g_err);
    return rc;
}

int job_slurm(int argc, char **argv)
{
    int rank, rc = 0;
    MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            if (rank == 0) job_slurm_usage(stdout);
            return 0;
        }
    if (rank == 0) rc = slurm_rank0(argc, argv);
    MPI_CHECK(MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD));
    return rc;
}
