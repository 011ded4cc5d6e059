/* jobs/slurm_scripts.c — `lethe slurm`: the files it writes and the programs it runs.
 * Small file helpers, sbatch and squeue (with the launcher's own variables kept out of
 * the job's environment), the batch scripts of units, and the table and the record
 * (<dir>/slurm_jobs.tsv) of what was submitted. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../mpi/fatal.h"
#include "jobs.h"
#include "slurm_impl.h"

/* ---- small file helpers -------------------------------------------------------------- */

/* The whole file, or NULL with "cannot open WHAT 'path': reason" in err. */
char *sl_read_text(const char *path, const char *what, char *err, size_t errlen)
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
int sl_write_text(const char *path, const char *text)
{
    char tmp[PATH_MAX + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return sl_fail(1, "slurm: cannot write '%s': %s", tmp, strerror(errno));
    int ok = fputs(text, f) >= 0;
    if (fclose(f)) ok = 0;
    if (!ok || rename(tmp, path)) {
        remove(tmp);
        return sl_fail(1, "slurm: cannot write '%s'", path);
    }
    return 0;
}

static int mkdir_one(const char *path)
{
    if (mkdir(path, 0777) && errno != EEXIST)
        return sl_fail(1, "slurm: cannot create folder '%s': %s", path, strerror(errno));
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
int sl_run_capture(const char *const *argv, char *out, size_t len)
{
    char exe[PATH_MAX];
    if (find_exe(argv[0], exe, sizeof exe))
        return sl_fail(-1, "slurm: %s not found on PATH (is Slurm installed?)", argv[0]), -1;
    size_t n = 0;
    while (environ[n]) n++;
    char **env = malloc((n + 1) * sizeof *env);
    if (!env) return sl_fail(-1, "slurm: out of memory"), -1;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!launcher_var(environ[i])) env[k++] = environ[i];
    env[k] = NULL;
    int fd[2];
    if (pipe(fd)) {
        free(env);
        return sl_fail(-1, "slurm: pipe: %s", strerror(errno)), -1;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        free(env);
        close(fd[0]);
        close(fd[1]);
        return sl_fail(-1, "slurm: fork: %s", strerror(errno)), -1;
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
            return sl_fail(-1, "slurm: waiting for %s: %s", argv[0], strerror(errno)), -1;
    if (WIFEXITED(st)) return WEXITSTATUS(st);
    return sl_fail(-1, "slurm: %s was killed by signal %d", argv[0],
                   WIFSIGNALED(st) ? WTERMSIG(st) : 0),
           -1;
}

/* The last non-empty line of text, as one line for an error message. */
const char *sl_last_line(char *text)
{
    size_t n = strlen(text);
    while (n && (text[n - 1] == '\n' || text[n - 1] == '\r' || text[n - 1] == ' ')) text[--n] = 0;
    char *nl = strrchr(text, '\n');
    return nl ? nl + 1 : (n ? text : "(no output)");
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

int sl_write_script(ctx_t *c, unit_t *x, const unsigned long *afterok, size_t n_afterok)
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
                return sl_fail(2, "slurm: job array '%s' has too many tasks", x->name);
            n += (size_t)w;
            m = e;
        }
        sp.array = array;
        sp.array_throttle = c->o.throttle;
        /* the whole group, so a task's index never changes */
        char *list = malloc((size_t)x->nmembers * (strlen(s->dir) + 140) + 1);
        if (!list) return sl_fail(1, "slurm: out of memory");
        size_t k = 0;
        for (int m = 0; m < x->nmembers; m++)
            k += (size_t)sprintf(list + k, "%s/%s\n", s->dir, s->jobs[x->members[m]].name);
        int rc = sl_write_text(tasks, list);
        free(list);
        if (rc) return rc;
    } else {
        snprintf(out, sizeof out, "%s/%s/slurm-%%j.out", s->dir, x->name);
    }
    sp.output = out;
    if (sl_job_needs_signal(x->kind)) {
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
    sp.ompi_one_host = c->o.loopback && x->nodes > 1;
    sp.launcher = c->o.launcher;
    sp.lethe_bin = c->lethe_bin;
    sp.args = args;
    sp.n_args = nargs;
    char err[512];
    char *text = lethe_sbatch_render(&sp, err, sizeof err);
    if (!text) return sl_fail(2, "slurm: job '%s': %s", x->name, err);
    char *pro = script_prologue(c, x, tasks);
    if (!pro) {
        free(text);
        return sl_fail(1, "slurm: out of memory");
    }
    text = insert_after_directives(text, pro);
    free(pro);
    if (text && x->array) text = replace_once(text, DIR_TOKEN, "\"$job_dir\"");
    if (!text)
        return sl_fail(1, "slurm: job '%s': cannot place the job folder in the script", x->name);
    if (x->array)
        snprintf(x->script, sizeof x->script, "%s/%s.sbatch", s->dir, x->name);
    else
        snprintf(x->script, sizeof x->script, "%s/%s/job.sbatch", s->dir, x->name);
    int rc = sl_write_text(x->script, text);
    free(text);
    return rc;
}

int sl_submit(unit_t *x)
{
    const char *argv[] = {"sbatch", "--parsable", x->script, NULL};
    char out[65536];
    int r = sl_run_capture(argv, out, sizeof out);
    if (r < 0) return 1;
    if (r)
        return sl_fail(1, "slurm: sbatch %s failed (exit %d): %s", x->script, r, sl_last_line(out));
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
    return sl_fail(1, "slurm: sbatch %s printed no job id: %s", x->script, sl_last_line(out));
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

int sl_record(ctx_t *c, const unit_t *x)
{
    char path[PATH_MAX], deps[4096], when[64];
    snprintf(path, sizeof path, "%s/slurm_jobs.tsv", c->s.dir);
    struct stat st;
    int fresh = stat(path, &st) != 0;
    FILE *f = fopen(path, "a");
    if (!f) return sl_fail(1, "slurm: cannot append to '%s': %s", path, strerror(errno));
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
    return ok ? 0 : sl_fail(1, "slurm: cannot append to '%s'", path);
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

void sl_print_table(const ctx_t *c)
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
