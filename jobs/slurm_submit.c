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
#include "study.h"

int job_slurm(int argc, char **argv);
void job_slurm_usage(FILE *f);

#define SLURM_USAGE                                                                                \
    "usage: lethe slurm STUDY.json [--dir DIR] [--partition P] [--account A] [--time T]\n"         \
    "         [--nodes N] [--ntasks-per-node K] [--nodes-list 1,2,4] [--throttle K]\n"             \
    "         [--launcher srun|mpirun] [--signal-seconds S] [--loopback] [--overcommit]\n"         \
    "         [--serial] [--dry-run]\n"                                                            \
    "       lethe slurm --job KIND CONFIG.json [--name NAME] [--set key=value ...] [options]"

#define MAX_NODES_LIST 64
#define MAX_SETS 64

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
            "  --loopback           multi-node jobs talk TCP over loopback, no shared memory\n"
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

static int fail(int code, const char *fmt, ...) LETHE_PRINTF(2, 3);
static int fail(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_err, sizeof g_err, fmt, ap);
    va_end(ap);
    return code;
}

/* ---- options ------------------------------------------------------------------------- */

typedef struct {
    const char *file, *dir, *partition, *account, *time_limit, *job_kind, *name;
    int nodes, ntasks_per_node, throttle, signal_seconds, loopback, overcommit, dry, serial;
    int nodes_list[MAX_NODES_LIST], n_nodes_list;
    lethe_sbatch_launcher launcher;
    const char *sets[MAX_SETS];
    int nsets;
} slurm_opts;

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
    if (!v) return fail(2, "slurm: %s needs a value (see lethe slurm --help)", opt);               \
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
                return fail(2,
                            "slurm: --time '%s' is not a Slurm time above zero (expected MM, "
                            "MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS)",
                            v);
        } else if (!strcmp(a, "--nodes")) {
            VALUE(a);
            if (parse_int(v, 1, 100000, &o->nodes))
                return fail(2, "slurm: --nodes '%s' is not an integer in 1..100000", v);
        } else if (!strcmp(a, "--ntasks-per-node")) {
            VALUE(a);
            if (parse_int(v, 1, 100000, &o->ntasks_per_node))
                return fail(2, "slurm: --ntasks-per-node '%s' is not an integer in 1..100000", v);
        } else if (!strcmp(a, "--throttle")) {
            VALUE(a);
            if (parse_int(v, 1, 100000, &o->throttle))
                return fail(2, "slurm: --throttle '%s' is not an integer in 1..100000", v);
        } else if (!strcmp(a, "--signal-seconds")) {
            VALUE(a);
            if (parse_int(v, 1, 65535, &o->signal_seconds))
                return fail(2, "slurm: --signal-seconds '%s' is not an integer in 1..65535", v);
        } else if (!strcmp(a, "--launcher")) {
            VALUE(a);
            if (!strcmp(v, "srun"))
                o->launcher = LETHE_LAUNCH_SRUN;
            else if (!strcmp(v, "mpirun"))
                o->launcher = LETHE_LAUNCH_MPIRUN;
            else
                return fail(2, "slurm: --launcher '%s' is not srun or mpirun", v);
        } else if (!strcmp(a, "--nodes-list")) {
            VALUE(a);
            char buf[512];
            snprintf(buf, sizeof buf, "%s", v);
            char *save = NULL;
            o->n_nodes_list = 0;
            for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                int n;
                if (o->n_nodes_list == MAX_NODES_LIST || parse_int(t, 1, 100000, &n))
                    return fail(2,
                                "slurm: --nodes-list '%s': '%s' is not a node count in 1..100000 "
                                "(at most %d counts, comma-separated)",
                                v, t, MAX_NODES_LIST);
                for (int k = 0; k < o->n_nodes_list; k++)
                    if (o->nodes_list[k] == n)
                        return fail(2, "slurm: --nodes-list '%s' names %d twice", v, n);
                o->nodes_list[o->n_nodes_list++] = n;
            }
            if (!o->n_nodes_list) return fail(2, "slurm: --nodes-list '%s' names no node count", v);
        } else if (!strcmp(a, "--job")) {
            VALUE(a);
            o->job_kind = v;
        } else if (!strcmp(a, "--name")) {
            VALUE(a);
            o->name = v;
        } else if (!strcmp(a, "--set")) {
            VALUE(a);
            if (o->nsets == MAX_SETS) return fail(2, "slurm: more than %d --set options", MAX_SETS);
            if (!strchr(v, '=') || v[0] == '=')
                return fail(2, "slurm: --set '%s' is not key=value", v);
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
            return fail(2, "slurm: unknown option '%s' (see lethe slurm --help)", a);
        } else if (!o->file) {
            o->file = a;
        } else {
            return fail(2, "slurm: unexpected argument '%s' (see lethe slurm --help)", a);
        }
#undef VALUE
    }
    if (!o->file)
        return fail(2, "slurm: no %s file given (see lethe slurm --help)",
                    o->job_kind ? "config" : "study");
    if (o->nsets && !o->job_kind) return fail(2, "slurm: --set applies to --job only");
    if (o->name && !o->job_kind) return fail(2, "slurm: --name applies to --job only");
    if (o->nodes && o->ntasks_per_node)
        return fail(2, "slurm: give --nodes or --ntasks-per-node, not both");
    long long lim = o->time_limit ? lethe_slurm_time_seconds(o->time_limit) : -1;
    if (o->signal_seconds > 0 && lim > 0 && o->signal_seconds >= lim)
        return fail(2, "slurm: --signal-seconds %d is not less than --time '%s' (%lld s)",
                    o->signal_seconds, o->time_limit, lim);
    return 0;
}

/* ---- small file helpers -------------------------------------------------------------- */

/* The whole file, or NULL with "cannot open WHAT 'path': reason" in err. */
static char *read_text(const char *path, const char *what, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot open %s '%s': %s", what, path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *t = malloc(cap);
    for (;;) {
        if (!t) break;
        if (n + 1 >= cap) {
            char *u = realloc(t, cap *= 2);
            if (!u) {
                free(t);
                t = NULL;
                break;
            }
            t = u;
        }
        size_t r = fread(t + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (!t || bad) {
        free(t);
        snprintf(err, errlen, "cannot read %s '%s'", what, path);
        return NULL;
    }
    t[n] = 0;
    return t;
}

/* Writes text to path through a temporary name (nothing is half-written). */
static int write_text(const char *path, const char *text)
{
    char tmp[PATH_MAX + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return fail(1, "slurm: cannot write '%s': %s", tmp, strerror(errno));
    int ok = fputs(text, f) >= 0;
    if (fclose(f)) ok = 0;
    if (!ok || rename(tmp, path)) {
        remove(tmp);
        return fail(1, "slurm: cannot write '%s'", path);
    }
    return 0;
}

static int mkdir_one(const char *path)
{
    if (mkdir(path, 0777) && errno != EEXIST)
        return fail(1, "slurm: cannot create folder '%s': %s", path, strerror(errno));
    return 0;
}

/* ---- running sbatch and squeue --------------------------------------------------------- */

extern char **environ;

/* Variables an MPI launcher (mpirun, or the singleton start of this process) sets for its
 * ranks. Passed on through sbatch they would make the job's ranks believe they are this
 * process's singleton instead of srun's PMIx clients. */
static int launcher_var(const char *kv)
{
    static const char *const prefix[] = {"PMIX_",
                                         "PMI_",
                                         "ORTE_",
                                         "OMPI_COMM_WORLD_",
                                         "OMPI_APP_CTX_",
                                         "OMPI_MCA_ess",
                                         "OMPI_MCA_orte_",
                                         "OMPI_MCA_pmix",
                                         "OMPI_MCA_initial_wdir=",
                                         "OMPI_MCA_shmem_RUNTIME_",
                                         "OMPI_COMMAND=",
                                         "OMPI_ARGV=",
                                         "OMPI_FILE_LOCATION=",
                                         "OMPI_FIRST_RANKS=",
                                         "OMPI_NUM_APP_CTX=",
                                         "OMPI_UNIVERSE_SIZE=",
                                         "HFI_NO_BACKTRACE=",
                                         "IPATH_NO_BACKTRACE=",
                                         NULL};
    for (const char *const *p = prefix; *p; p++)
        if (!strncmp(kv, *p, strlen(*p))) return 1;
    return 0;
}

static int find_exe(const char *name, char *out, size_t len)
{
    const char *path = getenv("PATH");
    if (!path || !*path) path = "/usr/bin:/bin";
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    char *save = NULL;
    for (char *d = strtok_r(buf, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        snprintf(out, len, "%s/%s", *d ? d : ".", name);
        if (access(out, X_OK) == 0) return 0;
    }
    return -1;
}

/* Runs argv[0] (looked up in PATH) with the cleaned environment, stdout and stderr into
 * out (NUL-terminated, truncated to len). Returns the exit status, or -1 with g_err set
 * when it could not run or was killed. */
static int run_capture(const char *const *argv, char *out, size_t len)
{
    char exe[PATH_MAX];
    if (find_exe(argv[0], exe, sizeof exe))
        return fail(-1, "slurm: %s not found on PATH (is Slurm installed?)", argv[0]), -1;
    size_t n = 0;
    while (environ[n]) n++;
    char **env = malloc((n + 1) * sizeof *env);
    if (!env) return fail(-1, "slurm: out of memory"), -1;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!launcher_var(environ[i])) env[k++] = environ[i];
    env[k] = NULL;
    int fd[2];
    if (pipe(fd)) {
        free(env);
        return fail(-1, "slurm: pipe: %s", strerror(errno)), -1;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        free(env);
        close(fd[0]);
        close(fd[1]);
        return fail(-1, "slurm: fork: %s", strerror(errno)), -1;
    }
    if (pid == 0) {
        /* the child: only async-signal-safe calls until exec */
        dup2(fd[1], 1);
        dup2(fd[1], 2);
        close(fd[0]);
        close(fd[1]);
        execve(exe, (char *const *)argv, env);
        _exit(127);
    }
    free(env);
    close(fd[1]);
    size_t got = 0;
    char sink[512];
    for (;;) {
        ssize_t r =
            got + 1 < len ? read(fd[0], out + got, len - got - 1) : read(fd[0], sink, sizeof sink);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        if (got + 1 < len) got += (size_t)r;
    }
    out[got] = 0;
    close(fd[0]);
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return fail(-1, "slurm: waiting for %s: %s", argv[0], strerror(errno)), -1;
    if (WIFEXITED(st)) return WEXITSTATUS(st);
    return fail(-1, "slurm: %s was killed by signal %d", argv[0],
                WIFSIGNALED(st) ? WTERMSIG(st) : 0),
           -1;
}

/* The last non-empty line of text, as one line for an error message. */
static const char *last_line(char *text)
{
    size_t n = strlen(text);
    while (n && (text[n - 1] == '\n' || text[n - 1] == '\r' || text[n - 1] == ' ')) text[--n] = 0;
    char *nl = strrchr(text, '\n');
    return nl ? nl + 1 : (n ? text : "(no output)");
}

/* ---- the jobs: what each needs and how it is submitted ---------------------------------- */

enum { ST_TODO, ST_DONE, ST_QUEUED };

typedef struct {
    int status;       /* ST_* */
    char prev_id[64]; /* ST_QUEUED: its id from slurm_jobs.tsv ("123" or "123_4") */
    int ranks, nodes, per_node;
    int unit, task; /* ST_TODO: its submission and its index in an array's list */
} job_plan;

typedef struct {
    char name[160];         /* the job's name, or an array's group name */
    const char *kind;       /* lethe subcommand */
    int array;              /* 1: a job array over members[] */
    int *members, nmembers; /* study jobs listed (arrays: the whole group, in order) */
    int ranks, nodes, per_node;
    int *deps, ndeps; /* units this one waits for */
    char **ext;       /* ids of queued jobs (earlier submissions) it waits for */
    int next;
    unsigned long id; /* after submission */
    char script[PATH_MAX];
    int order;
} unit_t;

typedef struct {
    slurm_opts o;
    study s;
    int is_study;     /* a study file (copied to DIR/study.json) */
    int *force_nodes; /* per job: node count fixed by a sweep, 0: derived */
    job_plan *plan;
    unit_t *units;
    int nunits;
    char lethe_bin[PATH_MAX];
} ctx_t;

static int add_unique(int **v, int *n, int x)
{
    for (int i = 0; i < *n; i++)
        if ((*v)[i] == x) return 0;
    int *w = realloc(*v, (size_t)(*n + 1) * sizeof **v);
    if (!w) return fail(1, "slurm: out of memory");
    *v = w;
    w[(*n)++] = x;
    return 0;
}

static int add_ext(unit_t *u, const char *id)
{
    char base[64];
    snprintf(base, sizeof base, "%s", id);
    char *us = strchr(base, '_');
    if (us) *us = 0; /* a task of an array: wait for the whole array */
    for (int i = 0; i < u->next; i++)
        if (!strcmp(u->ext[i], base)) return 0;
    char **w = realloc(u->ext, (size_t)(u->next + 1) * sizeof *w);
    if (!w) return fail(1, "slurm: out of memory");
    u->ext = w;
    if (!(w[u->next] = strdup(base))) return fail(1, "slurm: out of memory");
    u->next++;
    return 0;
}

static int job_needs_signal(const char *kind)
{
    return !strcmp(kind, "train") || !strcmp(kind, "unlearn") || !strcmp(kind, "relearn");
}

/* Ranks of a job: layout.dp * pp * tp of its config (with --set overrides of the layout);
 * 1 for synth (any rank count; it needs one) and the report. */
static int job_ranks(const ctx_t *c, const study_job *j, int *ranks)
{
    *ranks = 1;
    if (!j->config_json || !strcmp(j->job, "synth") || !strcmp(j->job, "report")) return 0;
    cJSON *cfg = cJSON_Parse(j->config_json);
    if (!cfg) return fail(2, "slurm: job '%s': its config is not JSON", j->name);
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
                rc = fail(2, "slurm: job '%s': layout.%s is not an integer in 1..4096", j->name,
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
                    rc = fail(2, "slurm: --set %s: not an integer in 1..4096", c->o.sets[i]);
                else
                    v = n;
            }
        r *= (long long)v;
    }
    cJSON_Delete(cfg);
    if (!rc && r > 1000000) rc = fail(2, "slurm: job '%s': %lld ranks", j->name, r);
    *ranks = (int)r;
    return rc;
}

/* Nodes and ranks per node of a job of `ranks` ranks. */
static void job_nodes(const ctx_t *c, int j, int ranks, int *nodes, int *per_node)
{
    int n = c->force_nodes && c->force_nodes[j] ? c->force_nodes[j] : 0;
    if (!n && c->o.nodes) n = c->o.nodes < ranks ? c->o.nodes : ranks;
    if (!n && c->o.ntasks_per_node) n = (ranks + c->o.ntasks_per_node - 1) / c->o.ntasks_per_node;
    if (!n) n = 1;
    *nodes = n;
    /* even spread; not given for a one-node job (the allocation holds every rank) */
    *per_node = n > 1 ? (ranks + n - 1) / n : 0;
}

/* ---- building the study: a study file, a bench sweep, or one job ------------------------ */

static const cJSON *json_get(const cJSON *root, const char *key)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", key);
    const cJSON *node = root;
    char *save = NULL;
    for (char *t = strtok_r(buf, ".", &save); t && node; t = strtok_r(NULL, ".", &save))
        node = cJSON_IsObject(node) ? cJSON_GetObjectItemCaseSensitive(node, t) : NULL;
    return node;
}

static int add_plain_job(study *s, const char *name, const char *kind, cJSON *cfg, cJSON *labels,
                         const int *deps, int ndeps)
{
    if (s->njobs == STUDY_MAX_JOBS) return fail(2, "slurm: more than %d jobs", STUDY_MAX_JOBS);
    study_job *j = &s->jobs[s->njobs];
    memset(j, 0, sizeof *j);
    snprintf(j->name, sizeof j->name, "%s", name);
    snprintf(j->job, sizeof j->job, "%s", kind);
    for (int i = 0; i < ndeps && i < STUDY_MAX_DEPS; i++) j->deps[j->ndeps++] = deps[i];
    if (cfg) {
        char out[700];
        snprintf(out, sizeof out, "%s/%s", s->dir, name);
        study_json_set(cfg, "output.dir", cJSON_CreateString(out));
        if (!(j->config_json = cJSON_Print(cfg))) return fail(1, "slurm: out of memory");
    }
    if (labels && !(j->labels_json = cJSON_Print(labels))) return fail(1, "slurm: out of memory");
    s->njobs++;
    return 0;
}

/* A node-count sweep of bench jobs:
 *   {"study": NAME, "bench": {a lethe config}, "nodes": [1, 2, 4], "ntasks_per_node": K,
 *    "scaling": ["strong", "weak"], "report": true}
 * For each node count n and each kind, one bench job on n nodes of K ranks each with
 * layout.dp = n*K / (pp*tp). Strong scaling keeps train.batch_size (the global batch);
 * weak scaling grows it with the ranks: train.batch_size at the smallest node count,
 * times n / n_min. Each job's labels.json holds {"nodes": n, "scaling": kind}, which
 * `lethe report` reads beside bench.jsonl for scaling.png. */
static int build_sweep(ctx_t *c, const cJSON *root, const char *path)
{
    study *s = &c->s;
    static const char *const known[] = {"study",   "bench",  "nodes", "ntasks_per_node",
                                        "scaling", "report", NULL};
    for (const cJSON *i = root->child; i; i = i->next) {
        int ok = 0;
        for (const char *const *k = known; *k; k++) ok |= !strcmp(*k, i->string);
        if (!ok)
            return fail(2,
                        "slurm: sweep '%s': unknown key '%s' (expected study, bench, nodes, "
                        "ntasks_per_node, scaling, report)",
                        path, i->string);
    }
    const cJSON *bench = cJSON_GetObjectItemCaseSensitive(root, "bench");
    const cJSON *nodes = cJSON_GetObjectItemCaseSensitive(root, "nodes");
    const cJSON *tpn = cJSON_GetObjectItemCaseSensitive(root, "ntasks_per_node");
    const cJSON *kinds = cJSON_GetObjectItemCaseSensitive(root, "scaling");
    const cJSON *report = cJSON_GetObjectItemCaseSensitive(root, "report");
    if (!cJSON_IsObject(bench))
        return fail(2, "slurm: sweep '%s': 'bench' must be a lethe config object", path);
    int list[MAX_NODES_LIST], nl = 0;
    if (c->o.n_nodes_list) {
        nl = c->o.n_nodes_list;
        memcpy(list, c->o.nodes_list, sizeof(int) * (size_t)nl);
    } else if (cJSON_IsArray(nodes)) {
        for (const cJSON *x = nodes->child; x; x = x->next) {
            if (!cJSON_IsNumber(x) || x->valuedouble < 1 ||
                x->valuedouble != floor(x->valuedouble) || x->valuedouble > 100000 ||
                nl == MAX_NODES_LIST)
                return fail(2, "slurm: sweep '%s': 'nodes' must be a list of node counts >= 1",
                            path);
            for (int k = 0; k < nl; k++)
                if (list[k] == x->valueint)
                    return fail(2, "slurm: sweep '%s': 'nodes' names %d twice", path, x->valueint);
            list[nl++] = x->valueint;
        }
    }
    if (!nl)
        return fail(2,
                    "slurm: sweep '%s': no node counts (give 'nodes' in the file or --nodes-list)",
                    path);
    if (c->o.nodes) return fail(2, "slurm: --nodes does not apply to a sweep (use --nodes-list)");
    int K = c->o.ntasks_per_node;
    if (!K && tpn) {
        if (!cJSON_IsNumber(tpn) || tpn->valuedouble < 1 ||
            tpn->valuedouble != floor(tpn->valuedouble))
            return fail(2, "slurm: sweep '%s': 'ntasks_per_node' must be an integer >= 1", path);
        K = tpn->valueint;
    }
    if (!K) K = 1;
    int strong = 0, weak = 0;
    if (!kinds)
        strong = 1;
    else if (cJSON_IsArray(kinds) && kinds->child) {
        for (const cJSON *x = kinds->child; x; x = x->next) {
            if (cJSON_IsString(x) && !strcmp(x->valuestring, "strong"))
                strong = 1;
            else if (cJSON_IsString(x) && !strcmp(x->valuestring, "weak"))
                weak = 1;
            else
                return fail(
                    2, "slurm: sweep '%s': 'scaling' entries must be \"strong\" or \"weak\"", path);
        }
    } else {
        return fail(2, "slurm: sweep '%s': 'scaling' must be a list of \"strong\" and/or \"weak\"",
                    path);
    }
    const cJSON *pp = json_get(bench, "layout.pp"), *tp = json_get(bench, "layout.tp");
    const cJSON *bs = json_get(bench, "train.batch_size");
    int P = cJSON_IsNumber(pp) ? pp->valueint : 1, T = cJSON_IsNumber(tp) ? tp->valueint : 1;
    if (P < 1 || T < 1)
        return fail(2, "slurm: sweep '%s': bench layout.pp and layout.tp must be >= 1", path);
    if (!cJSON_IsNumber(bs) || bs->valueint < 1)
        return fail(2, "slurm: sweep '%s': bench train.batch_size must be given (the global batch)",
                    path);
    int B = bs->valueint, nmin = list[0];
    for (int k = 1; k < nl; k++) nmin = list[k] < nmin ? list[k] : nmin;
    c->force_nodes = calloc(STUDY_MAX_JOBS, sizeof(int));
    if (!c->force_nodes) return fail(1, "slurm: out of memory");
    int rc = 0;
    for (int mode = 0; mode < 2 && !rc; mode++) {
        if (!(mode ? weak : strong)) continue;
        for (int k = 0; k < nl && !rc; k++) {
            int n = list[k];
            long long ranks = (long long)n * K;
            if (ranks % (P * T))
                return fail(2,
                            "slurm: sweep '%s': %d nodes x %d ranks = %lld ranks is not a multiple "
                            "of layout.pp * layout.tp = %d",
                            path, n, K, ranks, P * T);
            int dp = (int)(ranks / (P * T));
            long long batch = mode ? (long long)B * n / nmin : B;
            if (mode && (long long)B * n % nmin)
                return fail(
                    2, "slurm: sweep '%s': weak scaling batch %d x %d / %d nodes is not an integer",
                    path, B, n, nmin);
            if (batch % dp)
                return fail(
                    2,
                    "slurm: sweep '%s': %s scaling on %d nodes: batch %lld is not divisible "
                    "by layout.dp = %d",
                    path, mode ? "weak" : "strong", n, batch, dp);
            cJSON *cfg = cJSON_Duplicate(bench, 1);
            study_json_set(cfg, "layout.dp", cJSON_CreateNumber(dp));
            study_json_set(cfg, "train.batch_size", cJSON_CreateNumber((double)batch));
            cJSON *lab = cJSON_CreateObject();
            cJSON_AddStringToObject(lab, "study", s->name);
            cJSON_AddNumberToObject(lab, "nodes", n);
            cJSON_AddStringToObject(lab, "scaling", mode ? "weak" : "strong");
            char name[64];
            snprintf(name, sizeof name, "bench-%s-n%d", mode ? "weak" : "strong", n);
            c->force_nodes[s->njobs] = n;
            int prev = s->njobs - 1;
            rc = add_plain_job(s, name, "bench", cfg, lab, &prev, c->o.serial && prev >= 0);
            cJSON_Delete(cfg);
            cJSON_Delete(lab);
        }
    }
    if (!rc && (!report || cJSON_IsTrue(report)))
        rc = add_plain_job(s, "report", "report", NULL, NULL, NULL, 0); /* waits for all */
    return rc;
}

static int build_single(ctx_t *c)
{
    study *s = &c->s;
    static const char *const kinds[] = {"synth",   "train", "unlearn", "eval",
                                        "relearn", "bench", NULL};
    int ok = 0;
    for (const char *const *k = kinds; *k; k++) ok |= !strcmp(*k, c->o.job_kind);
    if (!ok)
        return fail(2,
                    "slurm: --job '%s' is not one of synth, train, unlearn, eval, relearn, bench",
                    c->o.job_kind);
    for (int i = 0; i < c->o.nsets; i++)
        if (!strncmp(c->o.sets[i], "output.dir=", 11))
            return fail(2,
                        "slurm: --set %s: the job's output folder is DIR/NAME (use --dir, --name)",
                        c->o.sets[i]);
    char err[1100];
    char *text = read_text(c->o.file, "config", err, sizeof err);
    if (!text) return fail(2, "slurm: %s", err);
    cJSON *cfg = cJSON_Parse(text);
    free(text);
    if (!cJSON_IsObject(cfg)) {
        cJSON_Delete(cfg);
        return fail(2, "slurm: config '%s': not a JSON object (malformed JSON)", c->o.file);
    }
    int rc = add_plain_job(s, s->name, c->o.job_kind, cfg, NULL, NULL, 0);
    cJSON_Delete(cfg);
    return rc;
}

static int absolute(const char *p, char *out, size_t len)
{
    char cwd[PATH_MAX];
    if (p[0] == '/') {
        if (snprintf(out, len, "%s", p) >= (int)len)
            return fail(2, "slurm: path too long: '%s'", p);
        return 0;
    }
    if (!getcwd(cwd, sizeof cwd)) return fail(1, "slurm: getcwd: %s", strerror(errno));
    if (snprintf(out, len, "%s/%s", cwd, p) >= (int)len)
        return fail(2, "slurm: path too long: '%s'", p);
    return 0;
}

static int build(ctx_t *c)
{
    char dir[512];
    const char *name = NULL;
    cJSON *root = NULL;
    int rc = 0;
    if (c->o.job_kind) {
        name = c->o.name ? c->o.name : c->o.job_kind;
        /* a control character would end an #SBATCH line (and this message) */
        char shown[160];
        size_t o = 0, ctl = 0;
        for (const char *p = name; *p && o + 1 < sizeof shown; p++) {
            ctl += (unsigned char)*p < 0x20 || *p == 0x7f;
            shown[o++] = (unsigned char)*p < 0x20 || *p == 0x7f ? '?' : *p;
        }
        shown[o] = 0;
        if (!*name || ctl || strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, ".."))
            return fail(2, "slurm: --name '%s' is not a folder name%s", shown,
                        ctl ? " (it holds a control character)" : "");
    } else {
        char err[1100];
        char *text = read_text(c->o.file, "study", err, sizeof err);
        if (!text) return fail(2, "slurm: %s", err);
        root = cJSON_Parse(text);
        free(text);
        if (!cJSON_IsObject(root)) {
            cJSON_Delete(root);
            return fail(2, "slurm: study '%s': not a JSON object (malformed JSON)", c->o.file);
        }
        const cJSON *jn = cJSON_GetObjectItemCaseSensitive(root, "study");
        if (!cJSON_IsString(jn) || !jn->valuestring[0] || strchr(jn->valuestring, '/')) {
            cJSON_Delete(root);
            return fail(2, "slurm: study '%s': 'study' must name the study (no '/')", c->o.file);
        }
        name = jn->valuestring;
    }
    if (c->o.dir) {
        rc = absolute(c->o.dir, dir, sizeof dir);
    } else {
        char rel[300];
        snprintf(rel, sizeof rel, "runs/%.200s", name);
        rc = absolute(rel, dir, sizeof dir);
    }
    size_t dl = strlen(dir);
    while (!rc && dl > 1 && dir[dl - 1] == '/') dir[--dl] = 0;
    for (const char *p = dir; !rc && *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            rc = fail(2, "slurm: --dir holds a control character");
    if (!rc && (c->o.job_kind || cJSON_GetObjectItemCaseSensitive(root, "bench"))) {
        memset(&c->s, 0, sizeof c->s);
        snprintf(c->s.name, sizeof c->s.name, "%s", name);
        snprintf(c->s.dir, sizeof c->s.dir, "%s", dir);
        c->s.jobs = calloc(STUDY_MAX_JOBS, sizeof(study_job));
        if (!c->s.jobs)
            rc = fail(1, "slurm: out of memory");
        else if (c->o.job_kind)
            rc = build_single(c);
        else
            rc = build_sweep(c, root, c->o.file);
    } else if (!rc) {
        if (c->o.serial)
            rc = fail(2, "slurm: --serial applies to a sweep of bench jobs, and '%s' is a study",
                      c->o.file);
        if (!rc && c->o.n_nodes_list)
            rc = fail(2,
                      "slurm: --nodes-list applies to a sweep of bench jobs (a file with "
                      "\"bench\"), and '%s' is a study",
                      c->o.file);
        char err[1024];
        if (!rc && study_load(&c->s, c->o.file, dir, err, sizeof err))
            rc = fail(2, "slurm: %s", err);
        c->is_study = !rc;
    }
    cJSON_Delete(root);
    return rc;
}

/* ---- what is done, what is still queued ------------------------------------------------ */

static int read_previous(ctx_t *c)
{
    char path[PATH_MAX], err[1100];
    snprintf(path, sizeof path, "%s/slurm_jobs.tsv", c->s.dir);
    struct stat st;
    if (stat(path, &st)) return 0;
    char *text = read_text(path, "record", err, sizeof err);
    if (!text) return fail(1, "slurm: %s", err);
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
    static char out[1 << 20];
    const char *argv[] = {"squeue", "-h", "-r", "-t", "PD,R,CF,CG,RQ,RS,RH,S,SE,SO,ST",
                          "-o",     "%i", NULL};
    int r = run_capture(argv, out, sizeof out);
    if (r < 0) return 1;
    if (r) return fail(1, "slurm: squeue failed (exit %d): %s", r, last_line(out));
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
    return 0;
}

/* ---- units: one sbatch submission each ------------------------------------------------- */

static int find_unit_by_group(const ctx_t *c, int group, const char *kind)
{
    for (int u = 0; u < c->nunits; u++) {
        const unit_t *x = &c->units[u];
        if (x->array && !strcmp(x->kind, kind) && c->s.jobs[x->members[0]].array_group == group)
            return u;
    }
    return -1;
}

static int name_taken(const ctx_t *c, const char *name)
{
    for (int j = 0; j < c->s.njobs; j++)
        if (!strcmp(c->s.jobs[j].name, name)) return 1;
    for (int u = 0; u < c->nunits; u++)
        if (c->units[u].array && !strcmp(c->units[u].name, name)) return 1;
    return 0;
}

static int make_units(ctx_t *c)
{
    study *s = &c->s;
    c->units = calloc((size_t)s->njobs + 1, sizeof(unit_t));
    if (!c->units) return fail(1, "slurm: out of memory");
    for (int j = 0; j < s->njobs; j++) {
        study_job *J = &s->jobs[j];
        job_plan *p = &c->plan[j];
        int rc = job_ranks(c, J, &p->ranks);
        if (rc) return rc;
        job_nodes(c, j, p->ranks, &p->nodes, &p->per_node);
        p->unit = -1;
        int u = J->array_group > 0 ? find_unit_by_group(c, J->array_group, J->job) : -1;
        if (u < 0) {
            u = c->nunits++;
            unit_t *x = &c->units[u];
            x->kind = J->job;
            x->array = J->array_group > 0;
            x->ranks = p->ranks;
            x->nodes = p->nodes;
            x->per_node = p->per_node;
            snprintf(x->name, sizeof x->name, "%s", J->name);
        }
        unit_t *x = &c->units[u];
        if (x->ranks != p->ranks || x->nodes != p->nodes)
            return fail(2,
                        "slurm: jobs '%s' and '%s' of one hyper-parameter group need %d ranks on "
                        "%d nodes and %d on %d (a job array needs one shape)",
                        s->jobs[x->members[0]].name, J->name, x->ranks, x->nodes, p->ranks,
                        p->nodes);
        p->task = x->nmembers;
        if (add_unique(&x->members, &x->nmembers, j)) return 1;
        if (p->status == ST_TODO) p->unit = u;
    }
    /* array names: the members' longest common prefix up to its last '-' */
    for (int u = 0; u < c->nunits; u++) {
        unit_t *x = &c->units[u];
        if (!x->array) continue;
        char pre[160];
        snprintf(pre, sizeof pre, "%s", s->jobs[x->members[0]].name);
        for (int m = 1; m < x->nmembers; m++) {
            const char *n = s->jobs[x->members[m]].name;
            size_t k = 0;
            while (pre[k] && pre[k] == n[k]) k++;
            pre[k] = 0;
        }
        char *dash = strrchr(pre, '-');
        if (dash) *dash = 0;
        x->name[0] = 0;
        if (pre[0] && !name_taken(c, pre))
            snprintf(x->name, sizeof x->name, "%s", pre);
        else
            snprintf(x->name, sizeof x->name, "%s-group%d", x->kind,
                     s->jobs[x->members[0]].array_group);
    }
    /* dependencies of the units that will be submitted */
    for (int j = 0; j < s->njobs; j++) {
        const job_plan *p = &c->plan[j];
        if (p->unit < 0) continue;
        unit_t *x = &c->units[p->unit];
        const study_job *J = &s->jobs[j];
        if (!strcmp(J->job, "report") && !J->config_json) continue; /* below */
        for (int d = 0; d < J->ndeps; d++) {
            const job_plan *q = &c->plan[J->deps[d]];
            if (q->status == ST_DONE) continue;
            if (q->status == ST_QUEUED) {
                if (add_ext(x, q->prev_id)) return 1;
            } else if (q->unit == p->unit) {
                return fail(2, "slurm: job '%s' depends on '%s' of its own job array '%s'", J->name,
                            s->jobs[J->deps[d]].name, x->name);
            } else if (add_unique(&x->deps, &x->ndeps, q->unit)) {
                return 1;
            }
        }
    }
    /* the report reads every result: it waits for everything else (a study job lists at
     * most STUDY_MAX_DEPS direct dependencies), that is for every submission no other one
     * waits for, and for every job still queued from before */
    for (int j = 0; j < s->njobs; j++) {
        const job_plan *p = &c->plan[j];
        if (p->unit < 0 || strcmp(s->jobs[j].job, "report")) continue;
        unit_t *x = &c->units[p->unit];
        for (int k = 0; k < s->njobs; k++) {
            const job_plan *q = &c->plan[k];
            if (k == j) continue;
            if (q->status == ST_QUEUED && add_ext(x, q->prev_id)) return 1;
            if (q->unit < 0 || q->unit == p->unit) continue;
            int waited_for = 0;
            for (int u = 0; u < c->nunits && !waited_for; u++)
                for (int d = 0; u != p->unit && d < c->units[u].ndeps; d++)
                    waited_for |= c->units[u].deps[d] == q->unit;
            if (!waited_for && add_unique(&x->deps, &x->ndeps, q->unit)) return 1;
        }
    }
    /* submission order: dependencies first (Kahn), ties in study order */
    int *done = calloc((size_t)c->nunits + 1, sizeof(int)), next = 0;
    if (!done) return fail(1, "slurm: out of memory");
    for (int u = 0; u < c->nunits; u++) c->units[u].order = -1;
    for (int placed = 1; placed;) {
        placed = 0;
        for (int u = 0; u < c->nunits; u++) {
            unit_t *x = &c->units[u];
            int todo = 0;
            for (int m = 0; m < x->nmembers; m++) todo |= c->plan[x->members[m]].unit == u;
            if (!todo || done[u]) continue;
            int ready = 1;
            for (int d = 0; d < x->ndeps; d++) ready &= done[x->deps[d]];
            if (!ready) continue;
            done[u] = 1;
            x->order = next++;
            placed = 1;
            break; /* restart: keep study order among the ready ones */
        }
    }
    for (int u = 0; u < c->nunits; u++) {
        int todo = 0;
        for (int m = 0; m < c->units[u].nmembers; m++)
            todo |= c->plan[c->units[u].members[m]].unit == u;
        if (todo && !done[u]) {
            free(done);
            return fail(2, "slurm: the jobs' dependencies form a cycle through '%s'",
                        c->units[u].name);
        }
    }
    free(done);
    return 0;
}

/* ---- scripts -------------------------------------------------------------------------- */

/* Inserts ins after the last "#SBATCH" line of script (sbatch reads directives only
 * before the first command). Returns a new string (script is freed), or NULL. */
static char *insert_after_directives(char *script, const char *ins)
{
    char *at = script, *p = script;
    while ((p = strstr(p, "#SBATCH "))) {
        if (p == script || p[-1] == '\n') {
            char *nl = strchr(p, '\n');
            at = nl ? nl + 1 : p + strlen(p);
        }
        p++;
    }
    size_t a = (size_t)(at - script), n = strlen(script), k = strlen(ins);
    char *out = malloc(n + k + 1);
    if (!out) {
        free(script);
        return NULL;
    }
    memcpy(out, script, a);
    memcpy(out + a, ins, k);
    memcpy(out + a + k, script + a, n - a + 1);
    free(script);
    return out;
}

/* Replaces the one occurrence of token in s by rep (NULL if not exactly one). */
static char *replace_once(char *s, const char *token, const char *rep)
{
    char *p = strstr(s, token);
    if (!p || strstr(p + 1, token)) {
        free(s);
        return NULL;
    }
    size_t a = (size_t)(p - s), t = strlen(token), r = strlen(rep), n = strlen(s);
    char *out = malloc(n - t + r + 1);
    if (!out) {
        free(s);
        return NULL;
    }
    memcpy(out, s, a);
    memcpy(out + a, rep, r);
    memcpy(out + a + r, p + t, n - a - t + 1);
    free(s);
    return out;
}

/* The stanza every script runs first: the job folder (an array task's from the task
 * list), the skip of a finished job, and the EXIT trap that marks it done. */
static char *script_prologue(const ctx_t *c, const unit_t *x, const char *tasks_path)
{
    size_t cap = 6000 + 2 * strlen(c->s.dir);
    char *b = malloc(cap);
    if (!b) return NULL;
    /* still a directive: it follows the renderer's; a requeued run appends to the output
     * of the run it resumes instead of replacing it */
    size_t n = (size_t)snprintf(b, cap, "#SBATCH --open-mode=append\n");
    /* a benchmark shares its nodes with no other job */
    if (!strcmp(x->kind, "bench")) n += (size_t)snprintf(b + n, cap - n, "#SBATCH --exclusive\n");
    if (x->array) {
        char *q = lethe_shell_quote(tasks_path);
        if (!q) {
            free(b);
            return NULL;
        }
        n += (size_t)snprintf(
            b + n, cap - n,
            "\n# lethe slurm: this array task's job folder is line SLURM_ARRAY_TASK_ID + 1 of the "
            "task list;\n# its output goes to that folder.\n"
            "lethe_tasks=%s\n"
            "job_dir=\"$(sed -n \"$((SLURM_ARRAY_TASK_ID + 1))p\" \"$lethe_tasks\")\"\n"
            "if [ -z \"$job_dir\" ]; then\n"
            "    echo \"lethe slurm: $lethe_tasks has no line $((SLURM_ARRAY_TASK_ID + 1)) for "
            "array task $SLURM_ARRAY_TASK_ID\" >&2\n"
            "    exit 1\n"
            "fi\n"
            "lethe_log=\"$job_dir/slurm-${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}.out\"\n"
            "echo \"lethe slurm: array task $SLURM_ARRAY_TASK_ID runs $job_dir; output in "
            "$lethe_log\"\n"
            "exec >>\"$lethe_log\" 2>&1\n",
            q);
        free(q);
    } else {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", c->s.dir, x->name);
        char *q = lethe_shell_quote(path);
        if (!q) {
            free(b);
            return NULL;
        }
        n +=
            (size_t)snprintf(b + n, cap - n, "\n# lethe slurm: the job's folder.\njob_dir=%s\n", q);
        free(q);
    }
    snprintf(
        b + n, cap - n,
        "# A job marked done does not run again (a requeue after it finished, a resubmission).\n"
        "if [ -e \"$job_dir/.done\" ]; then\n"
        "    echo \"lethe slurm: $job_dir is done (.done); nothing to run\"\n"
        "    exit 0\n"
        "fi\n"
        "# Mark the job done when the script ends with status 0, unless it was preempted: a\n"
        "# signalled run that left checkpoint.h5 resumes from it in the requeued run.\n"
        "trap 'lethe_rc=$?\n"
        "if [ \"$lethe_rc\" = 0 ] && ! { [ \"${lethe_signalled:-0}\" = 1 ] && "
        "[ -e \"$job_dir/checkpoint.h5\" ]; }; then\n"
        "    touch \"$job_dir/.done\"\n"
        "fi' EXIT\n");
    return b;
}

#define DIR_TOKEN "@LETHE_JOB_DIR@"

static int write_script(ctx_t *c, unit_t *x, const unsigned long *afterok, size_t n_afterok)
{
    const study *s = &c->s;
    char cfg[PATH_MAX], out[PATH_MAX], tasks[PATH_MAX], jobname[300], array[8192];
    const char *args[2 + 2 * MAX_SETS];
    size_t nargs = 0;
    args[nargs++] = x->kind;
    if (!strcmp(x->kind, "report")) {
        args[nargs++] = s->dir;
    } else if (x->array) {
        args[nargs++] = DIR_TOKEN "/job.json";
    } else {
        snprintf(cfg, sizeof cfg, "%s/%s/job.json", s->dir, x->name);
        args[nargs++] = cfg;
    }
    for (int i = 0; i < c->o.nsets; i++) args[nargs++] = "--set", args[nargs++] = c->o.sets[i];
    snprintf(jobname, sizeof jobname, "%s:%s", s->name, x->name);
    lethe_sbatch_spec sp;
    memset(&sp, 0, sizeof sp);
    sp.job_name = jobname;
    sp.partition = c->o.partition;
    sp.account = c->o.account;
    sp.time_limit = c->o.time_limit;
    sp.nodes = x->nodes;
    sp.ntasks = x->ranks;
    sp.ntasks_per_node = x->per_node;
    sp.afterok = afterok;
    sp.n_afterok = n_afterok;
    if (x->array) {
        snprintf(tasks, sizeof tasks, "%s/%s.tasks", s->dir, x->name);
        snprintf(out, sizeof out, "%s/%s.logs", s->dir, x->name);
        if (mkdir_one(out)) return 1;
        snprintf(out, sizeof out, "%s/%s.logs/%%A_%%a.out", s->dir, x->name);
        /* the indices still to run, runs of consecutive ones as N-M */
        size_t n = 0;
        array[0] = 0;
        for (int m = 0; m < x->nmembers; m++) {
            if (c->plan[x->members[m]].unit != x - c->units) continue;
            int e = m;
            while (e + 1 < x->nmembers && c->plan[x->members[e + 1]].unit == x - c->units) e++;
            int w = e > m ? snprintf(array + n, sizeof array - n, "%s%d-%d", n ? "," : "", m, e)
                          : snprintf(array + n, sizeof array - n, "%s%d", n ? "," : "", m);
            if (w < 0 || (size_t)w >= sizeof array - n)
                return fail(2, "slurm: job array '%s' has too many tasks", x->name);
            n += (size_t)w;
            m = e;
        }
        sp.array = array;
        sp.array_throttle = c->o.throttle;
        /* the whole group, so a task's index never changes */
        char *list = malloc((size_t)x->nmembers * (strlen(s->dir) + 140) + 1);
        if (!list) return fail(1, "slurm: out of memory");
        size_t k = 0;
        for (int m = 0; m < x->nmembers; m++)
            k += (size_t)sprintf(list + k, "%s/%s\n", s->dir, s->jobs[x->members[m]].name);
        int rc = write_text(tasks, list);
        free(list);
        if (rc) return rc;
    } else {
        snprintf(out, sizeof out, "%s/%s/slurm-%%j.out", s->dir, x->name);
    }
    sp.output = out;
    if (job_needs_signal(x->kind)) {
        long long lim = c->o.time_limit ? lethe_slurm_time_seconds(c->o.time_limit) : -1;
        int sig = c->o.signal_seconds;
        if (sig < 0) sig = lim > 0 && lim < 240 ? (int)(lim / 2 > 0 ? lim / 2 : 1) : 120;
        sp.signal_name = "USR1";
        sp.signal_seconds = sig;
        sp.signal_batch_only = 1;
        sp.requeue = 1;
    }
    sp.overcommit = c->o.overcommit;
    /* root may start ranks only with these (mpirun refuses otherwise) */
    sp.ompi_allow_root = geteuid() == 0;
    sp.ompi_tcp_loopback = c->o.loopback && x->nodes > 1;
    sp.launcher = c->o.launcher;
    sp.lethe_bin = c->lethe_bin;
    sp.args = args;
    sp.n_args = nargs;
    char err[512];
    char *text = lethe_sbatch_render(&sp, err, sizeof err);
    if (!text) return fail(2, "slurm: job '%s': %s", x->name, err);
    char *pro = script_prologue(c, x, tasks);
    if (!pro) {
        free(text);
        return fail(1, "slurm: out of memory");
    }
    text = insert_after_directives(text, pro);
    free(pro);
    if (text && x->array) text = replace_once(text, DIR_TOKEN, "\"$job_dir\"");
    if (!text)
        return fail(1, "slurm: job '%s': cannot place the job folder in the script", x->name);
    if (x->array)
        snprintf(x->script, sizeof x->script, "%s/%s.sbatch", s->dir, x->name);
    else
        snprintf(x->script, sizeof x->script, "%s/%s/job.sbatch", s->dir, x->name);
    int rc = write_text(x->script, text);
    free(text);
    return rc;
}

static int submit(unit_t *x)
{
    const char *argv[] = {"sbatch", "--parsable", x->script, NULL};
    static char out[65536];
    int r = run_capture(argv, out, sizeof out);
    if (r < 0) return 1;
    if (r) return fail(1, "slurm: sbatch %s failed (exit %d): %s", x->script, r, last_line(out));
    /* --parsable prints "id" or "id;cluster"; warnings may come first */
    for (const char *l = out; *l;) {
        const char *e = strchr(l, '\n');
        size_t len = e ? (size_t)(e - l) : strlen(l);
        char *end;
        unsigned long id = strtoul(l, &end, 10);
        if (end != l && id > 0 && (end == l + len || *end == ';' || *end == '\r')) {
            x->id = id;
            return 0;
        }
        l += len + (e ? 1 : 0);
    }
    return fail(1, "slurm: sbatch %s printed no job id: %s", x->script, last_line(out));
}

/* ---- the table and the record ---------------------------------------------------------- */

static void id_string(const ctx_t *c, int j, char *buf, size_t len)
{
    const job_plan *p = &c->plan[j];
    if (p->status == ST_DONE)
        snprintf(buf, len, "done");
    else if (p->status == ST_QUEUED)
        snprintf(buf, len, "%s (queued before)", p->prev_id);
    else if (c->o.dry)
        snprintf(buf, len, "-");
    else if (c->units[p->unit].array)
        snprintf(buf, len, "%lu_%d", c->units[p->unit].id, p->task);
    else
        snprintf(buf, len, "%lu", c->units[p->unit].id);
}

static void deps_string(const ctx_t *c, const unit_t *x, char *buf, size_t len)
{
    size_t n = 0;
    buf[0] = 0;
    for (int d = 0; d < x->ndeps && n + 1 < len; d++) {
        const unit_t *y = &c->units[x->deps[d]];
        int w = c->o.dry ? snprintf(buf + n, len - n, "%s%s", n ? " " : "", y->name)
                         : snprintf(buf + n, len - n, "%s%lu", n ? ":" : "afterok:", y->id);
        if (w < 0 || (size_t)w >= len - n) break;
        n += (size_t)w;
    }
    for (int e = 0; e < x->next && n + 1 < len; e++) {
        int w = snprintf(buf + n, len - n, "%s%s",
                         n ? (c->o.dry ? " " : ":") : (c->o.dry ? "" : "afterok:"), x->ext[e]);
        if (w < 0 || (size_t)w >= len - n) break;
        n += (size_t)w;
    }
    if (!n) snprintf(buf, len, "-");
}

static int record(ctx_t *c, const unit_t *x)
{
    char path[PATH_MAX], deps[4096], when[64];
    snprintf(path, sizeof path, "%s/slurm_jobs.tsv", c->s.dir);
    struct stat st;
    int fresh = stat(path, &st) != 0;
    FILE *f = fopen(path, "a");
    if (!f) return fail(1, "slurm: cannot append to '%s': %s", path, strerror(errno));
    time_t now = time(NULL);
    struct tm tmv;
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", localtime_r(&now, &tmv));
    deps_string(c, x, deps, sizeof deps);
    int ok = 1;
    if (fresh) ok &= fprintf(f, "# job\tslurm_id\tarray\tdependency\tsubmitted\n") > 0;
    for (int m = 0; m < x->nmembers; m++) {
        int j = x->members[m];
        if (c->plan[j].unit != x - c->units) continue;
        char id[64];
        id_string(c, j, id, sizeof id);
        ok &= fprintf(f, "%s\t%s\t%s\t%s\t%s\n", c->s.jobs[j].name, id, x->array ? x->name : "-",
                      deps, when) > 0;
    }
    if (fclose(f)) ok = 0;
    return ok ? 0 : fail(1, "slurm: cannot append to '%s'", path);
}

static void table_id(const ctx_t *c, int j, char *id, size_t len)
{
    id_string(c, j, id, len);
    const job_plan *p = &c->plan[j];
    if (p->unit >= 0 && c->units[p->unit].array) {
        size_t l = strlen(id);
        snprintf(id + l, len - l, " [%.60s]", c->units[p->unit].name);
    }
}

static void print_table(const ctx_t *c)
{
    int w = 4, wi = 8;
    char id[160], deps[4096];
    for (int j = 0; j < c->s.njobs; j++) {
        int l = (int)strlen(c->s.jobs[j].name);
        w = l > w ? l : w;
        table_id(c, j, id, sizeof id);
        l = (int)strlen(id);
        wi = l > wi ? l : wi;
    }
    printf("%-*s  %-*s  %s\n", w, "job", wi, "slurm id", c->o.dry ? "waits for" : "dependency");
    for (int j = 0; j < c->s.njobs; j++) {
        table_id(c, j, id, sizeof id);
        snprintf(deps, sizeof deps, "-");
        if (c->plan[j].unit >= 0) deps_string(c, &c->units[c->plan[j].unit], deps, sizeof deps);
        printf("%-*s  %-*s  %s\n", w, c->s.jobs[j].name, wi, id, deps);
    }
}

/* ---- the job ---------------------------------------------------------------------------- */

static int copy_study_file(const ctx_t *c)
{
    char err[1100], path[PATH_MAX];
    char *text = read_text(c->o.file, "study", err, sizeof err);
    if (!text) return fail(2, "slurm: %s", err);
    snprintf(path, sizeof path, "%s/study.json", c->s.dir);
    int rc = write_text(path, text);
    free(text);
    return rc;
}

static int slurm_rank0(int argc, char **argv)
{
    ctx_t c;
    memset(&c, 0, sizeof c);
    int rc = parse_opts(argc, argv, &c.o);
    if (!rc) rc = build(&c);
    ssize_t bl = rc ? -1 : readlink("/proc/self/exe", c.lethe_bin, sizeof c.lethe_bin - 1);
    if (!rc && bl <= 0) rc = fail(1, "slurm: cannot find the lethe binary (/proc/self/exe)");
    if (!rc) c.lethe_bin[bl] = 0;
    if (!rc && !(c.plan = calloc((size_t)c.s.njobs + 1, sizeof(job_plan))))
        rc = fail(1, "slurm: out of memory");
    if (!rc) {
        char err[1024];
        if (study_write_configs(&c.s, err, sizeof err)) rc = fail(1, "slurm: %s", err);
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
    if (!rc) rc = make_units(&c);
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
        rc = write_script(&c, x, ids, n);
        if (!rc && !c.o.dry) rc = submit(x);
        if (!rc && !c.o.dry) rc = record(&c, x);
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
        print_table(&c);
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
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            if (rank == 0) job_slurm_usage(stdout);
            return 0;
        }
    if (rank == 0) rc = slurm_rank0(argc, argv);
    MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD);
    return rc;
}
