/* slurm/script.c — the batch script of a unit: the spec handed to the renderer
 * (sbatch.h: the #SBATCH lines, the environment, the launcher line), and the stanza
 * placed after its directives: the job folder (an array task's from its line of the
 * task list), the skip of a finished job and the EXIT trap that marks it done. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plan_impl.h"

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

/* Where the job folder comes from: an array task's line of the task list, or the one
 * folder of a plain job. The number of characters written to b, or -1. */
static int job_dir_stanza(const ctx_t *c, const unit_t *x, const char *tasks_path, char *b,
                          size_t cap)
{
    if (x->array) {
        char *q = lethe_shell_quote(tasks_path);
        if (!q) return -1;
        int n = snprintf(
            b, cap,
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
        return n;
    }
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", c->s.dir, x->name);
    char *q = lethe_shell_quote(path);
    if (!q) return -1;
    int n = snprintf(b, cap, "\n# lethe slurm: the job's folder.\njob_dir=%s\n", q);
    free(q);
    return n;
}

/* The stanza every script runs first: the job folder, the skip of a finished job, and
 * the EXIT trap that marks it done. */
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
    int w = job_dir_stanza(c, x, tasks_path, b + n, cap - n);
    if (w < 0) {
        free(b);
        return NULL;
    }
    n += (size_t)w;
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

/* What an array unit adds: its output pattern, the indices still to run (runs of
 * consecutive ones as N-M) and the task list of the whole group, so a task's index
 * never changes. */
static int array_part(ctx_t *c, const unit_t *x, lethe_sbatch_spec *sp, char *out, char *tasks,
                      char *array, size_t alen)
{
    const study *s = &c->s;
    snprintf(tasks, PATH_MAX, "%s/%s.tasks", s->dir, x->name);
    snprintf(out, PATH_MAX, "%s/%s.logs", s->dir, x->name);
    if (sl_mkdir(c->err, out)) return 1;
    snprintf(out, PATH_MAX, "%s/%s.logs/%%A_%%a.out", s->dir, x->name);
    size_t n = 0;
    array[0] = 0;
    for (int m = 0; m < x->nmembers; m++) {
        if (c->plan[x->members[m]].unit != x - c->units) continue;
        int e = m;
        while (e + 1 < x->nmembers && c->plan[x->members[e + 1]].unit == x - c->units) e++;
        int w = e > m ? snprintf(array + n, alen - n, "%s%d-%d", n ? "," : "", m, e)
                      : snprintf(array + n, alen - n, "%s%d", n ? "," : "", m);
        if (w < 0 || (size_t)w >= alen - n)
            return slurm_fail(c->err, 2, "slurm: job array '%s' has too many tasks", x->name);
        n += (size_t)w;
        m = e;
    }
    sp->array = array;
    sp->array_throttle = c->o.throttle;
    char *list = malloc((size_t)x->nmembers * (strlen(s->dir) + 140) + 1);
    if (!list) return slurm_fail(c->err, 1, "slurm: out of memory");
    size_t k = 0;
    for (int m = 0; m < x->nmembers; m++)
        k += (size_t)sprintf(list + k, "%s/%s\n", s->dir, s->jobs[x->members[m]].name);
    int rc = sl_write_text(c->err, tasks, list);
    free(list);
    return rc;
}

/* The pre-timeout signal of train, unlearn and relearn jobs: --signal-seconds, else 120,
 * or half the time limit when that is shorter than 240 s. */
static void signal_part(const ctx_t *c, const unit_t *x, lethe_sbatch_spec *sp)
{
    if (!sl_job_needs_signal(x->kind)) return;
    long long lim = c->o.time_limit ? lethe_slurm_time_seconds(c->o.time_limit) : -1;
    int sig = c->o.signal_seconds;
    if (sig < 0) sig = lim > 0 && lim < 240 ? (int)(lim / 2 > 0 ? lim / 2 : 1) : 120;
    sp->signal_name = "USR1";
    sp->signal_seconds = sig;
    sp->signal_batch_only = 1;
    sp->requeue = 1;
}

/* The rendered script with its prologue (and an array's job folder in its command). */
static int render(ctx_t *c, unit_t *x, const lethe_sbatch_spec *sp, const char *tasks)
{
    char err[512];
    char *text = lethe_sbatch_render(sp, err, sizeof err);
    if (!text) return slurm_fail(c->err, 2, "slurm: job '%s': %s", x->name, err);
    char *pro = script_prologue(c, x, tasks);
    if (!pro) {
        free(text);
        return slurm_fail(c->err, 1, "slurm: out of memory");
    }
    text = insert_after_directives(text, pro);
    free(pro);
    if (text && x->array) text = replace_once(text, DIR_TOKEN, "\"$job_dir\"");
    if (!text)
        return slurm_fail(c->err, 1, "slurm: job '%s': cannot place the job folder in the script",
                          x->name);
    if (x->array)
        snprintf(x->script, sizeof x->script, "%s/%s.sbatch", c->s.dir, x->name);
    else
        snprintf(x->script, sizeof x->script, "%s/%s/job.sbatch", c->s.dir, x->name);
    int rc = sl_write_text(c->err, x->script, text);
    free(text);
    return rc;
}

int sl_write_script(ctx_t *c, unit_t *x, const unsigned long *afterok, size_t n_afterok)
{
    const study *s = &c->s;
    char cfg[PATH_MAX], out[PATH_MAX], tasks[PATH_MAX], jobname[300], array[8192];
    const char *args[2 + 2 * SLURM_MAX_SETS];
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
    /* a study's --set is in each job's job.json already */
    for (int i = 0; !c->is_study && i < c->o.nsets; i++)
        args[nargs++] = "--set", args[nargs++] = c->o.sets[i];
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
    tasks[0] = 0;
    if (x->array) {
        int rc = array_part(c, x, &sp, out, tasks, array, sizeof array);
        if (rc) return rc;
    } else {
        snprintf(out, sizeof out, "%s/%s/slurm-%%j.out", s->dir, x->name);
    }
    sp.output = out;
    signal_part(c, x, &sp);
    sp.overcommit = c->o.overcommit;
    /* root may start ranks only with these (mpirun refuses otherwise) */
    sp.ompi_allow_root = geteuid() == 0;
    sp.ompi_one_host = c->o.loopback && x->nodes > 1;
    sp.launcher = c->o.launcher;
    sp.lethe_bin = c->lethe_bin;
    sp.args = args;
    sp.n_args = nargs;
    return render(c, x, &sp, tasks);
}
