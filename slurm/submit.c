/* slurm/submit.c — the files `lethe slurm` writes and the programs it runs: small file
 * helpers (over io/study.h's), sbatch and squeue (with the launcher's own variables kept
 * out of the job's environment), and the table and the record (<dir>/slurm_jobs.tsv) of
 * what was submitted. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../io/safefile.h"
#include "plan_impl.h"

/* ---- small file helpers -------------------------------------------------------------- */

/* The whole file, or NULL with "slurm: cannot open WHAT 'path': reason" and code. */
char *sl_read_text(slurm_err *e, int code, const char *path, const char *what)
{
    char err[1100];
    char *t = study_read_text(path, what, err, sizeof err);
    if (!t) slurm_fail(e, code, "slurm: %s", err);
    return t;
}

/* Writes text to path through a temporary name (nothing is half-written). */
int sl_write_text(slurm_err *e, const char *path, const char *text)
{
    char err[PATH_MAX + 300];
    if (study_write_text(path, text, "", err, sizeof err))
        return slurm_fail(e, 1, "slurm: %s", err);
    return 0;
}

int sl_mkdir(slurm_err *e, const char *path)
{
    if (mkdir(path, 0777) && errno != EEXIST)
        return slurm_fail(e, 1, "slurm: cannot create folder '%s': %s", path, strerror(errno));
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
 * out (NUL-terminated, truncated to len). Returns the exit status, or -1 with e set
 * when it could not run or was killed. */
int sl_run_capture(slurm_err *e, const char *const *argv, char *out, size_t len)
{
    char exe[PATH_MAX];
    if (find_exe(argv[0], exe, sizeof exe))
        return slurm_fail(e, -1, "slurm: %s not found on PATH (is Slurm installed?)", argv[0]);
    size_t n = 0;
    while (environ[n]) n++;
    char **env = malloc((n + 1) * sizeof *env);
    if (!env) return slurm_fail(e, -1, "slurm: out of memory");
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!launcher_var(environ[i])) env[k++] = environ[i];
    env[k] = NULL;
    int fd[2];
    if (pipe(fd)) {
        free(env);
        return slurm_fail(e, -1, "slurm: pipe: %s", strerror(errno));
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        free(env);
        close(fd[0]);
        close(fd[1]);
        return slurm_fail(e, -1, "slurm: fork: %s", strerror(errno));
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
            return slurm_fail(e, -1, "slurm: waiting for %s: %s", argv[0], strerror(errno));
    if (WIFEXITED(st)) return WEXITSTATUS(st);
    return slurm_fail(e, -1, "slurm: %s was killed by signal %d", argv[0],
                      WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

/* The last non-empty line of text, as one line for an error message. */
const char *sl_last_line(char *text)
{
    size_t n = strlen(text);
    while (n && (text[n - 1] == '\n' || text[n - 1] == '\r' || text[n - 1] == ' ')) text[--n] = 0;
    char *nl = strrchr(text, '\n');
    return nl ? nl + 1 : (n ? text : "(no output)");
}

int sl_submit(slurm_err *e, unit_t *x)
{
    const char *argv[] = {"sbatch", "--parsable", x->script, NULL};
    char out[65536];
    int r = sl_run_capture(e, argv, out, sizeof out);
    if (r < 0) return 1;
    if (r)
        return slurm_fail(e, 1, "slurm: sbatch %s failed (exit %d): %s", x->script, r,
                          sl_last_line(out));
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
    return slurm_fail(e, 1, "slurm: sbatch %s printed no job id: %s", x->script, sl_last_line(out));
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
    char se[PATH_MAX + 200];
    FILE *f = safe_append(path, se, sizeof se);
    if (!f) return slurm_fail(c->err, 1, "slurm: %s", se);
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
    return ok ? 0 : slurm_fail(c->err, 1, "slurm: cannot append to '%s'", path);
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
