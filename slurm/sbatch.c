/* slurm/sbatch.c — sbatch scripts from a lethe_sbatch_spec (contract in sbatch.h). */
#include "sbatch.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__)
#define SB_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define SB_PRINTF(a, b)
#endif

const char *const lethe_sbatch_signal_names[] = {"USR1", "USR2", "TERM", "INT",  "HUP",
                                                 "QUIT", "ALRM", "CONT", "XCPU", NULL};

/* ---- a growing text buffer; the first failed allocation makes it sticky-bad ---- */

typedef struct {
    char *p;
    size_t len, cap;
    int oom;
} sbuf;

static void sb_reserve(sbuf *b, size_t extra)
{
    if (b->oom || b->len + extra + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->len + extra + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = 1;
        return;
    }
    b->p = p;
    b->cap = cap;
}

static void sb_put(sbuf *b, const char *s)
{
    size_t n = strlen(s);
    sb_reserve(b, n);
    if (b->oom) return;
    memcpy(b->p + b->len, s, n + 1);
    b->len += n;
}

static void sb_putc(sbuf *b, char c)
{
    sb_reserve(b, 1);
    if (b->oom) return;
    b->p[b->len++] = c;
    b->p[b->len] = '\0';
}

static void sb_printf(sbuf *b, const char *fmt, ...) SB_PRINTF(2, 3);
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->oom = 1;
        return;
    }
    sb_reserve(b, (size_t)n);
    if (b->oom) return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* ---- errors ---- */

static int fail(char *err, size_t errlen, const char *fmt, ...) SB_PRINTF(3, 4);
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
        /* One line, whatever the values held. */
        for (char *c = err; *c; c++)
            if (*c == '\n' || *c == '\r') *c = ' ';
    }
    return -1;
}

/* A value shown inside an error message: at most 60 characters, control characters
 * as '?', so the message stays one readable line. */
static const char *shown(const char *s, char buf[64])
{
    size_t i = 0;
    for (; s[i] && i < 60; i++) buf[i] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? '?' : s[i];
    if (s[i]) {
        buf[57] = buf[58] = buf[59] = '.';
        i = 60;
    }
    buf[i] = '\0';
    return buf;
}

/* ---- shell and sbatch quoting ---- */

static int shell_plain(const char *s)
{
    if (!*s) return 0;
    for (const char *c = s; *c; c++) {
        unsigned char u = (unsigned char)*c;
        if (!((u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || (u >= '0' && u <= '9') ||
              strchr("_./:=@%+,-", u)))
            return 0;
    }
    return 1;
}

static void sb_shell_word(sbuf *b, const char *s)
{
    if (shell_plain(s)) {
        sb_put(b, s);
        return;
    }
    sb_putc(b, '\'');
    for (const char *c = s; *c; c++) {
        if (*c == '\'')
            sb_put(b, "'\\''");
        else
            sb_putc(b, *c);
    }
    sb_putc(b, '\'');
}

char *lethe_shell_quote(const char *s)
{
    sbuf b = {0};
    sb_shell_word(&b, s ? s : "");
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

/* sbatch reads an #SBATCH value up to white space or an unquoted '#', honouring double
 * or single quotes and backslash escapes: plain values go bare, others in double quotes
 * with \ and " escaped. */
static void sb_sbatch_value(sbuf *b, const char *s)
{
    if (*s && !strpbrk(s, " \t\"'\\#")) {
        sb_put(b, s);
        return;
    }
    sb_putc(b, '"');
    for (const char *c = s; *c; c++) {
        if (*c == '"' || *c == '\\') sb_putc(b, '\\');
        sb_putc(b, *c);
    }
    sb_putc(b, '"');
}

/* ---- validation ---- */

/* Digits only, 1..9 of them (no sign, no overflow). */
static long long parse_field(const char *s, size_t n)
{
    if (n == 0 || n > 9) return -1;
    long long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

long long lethe_slurm_time_seconds(const char *s)
{
    if (!s || !*s) return -1;
    long long days = -1;
    const char *dash = strchr(s, '-');
    if (dash) {
        days = parse_field(s, (size_t)(dash - s));
        if (days < 0) return -1;
        s = dash + 1;
    }
    long long f[3];
    int n = 0;
    for (;;) {
        const char *colon = strchr(s, ':');
        size_t len = colon ? (size_t)(colon - s) : strlen(s);
        if (n == 3) return -1;
        f[n] = parse_field(s, len);
        if (f[n] < 0) return -1;
        n++;
        if (!colon) break;
        s = colon + 1;
    }
    if (days >= 0) { /* D-HH, D-HH:MM, D-HH:MM:SS */
        if (f[0] >= 24) return -1;
        if (n >= 2 && f[1] >= 60) return -1;
        if (n == 3 && f[2] >= 60) return -1;
        return days * 86400 + f[0] * 3600 + (n >= 2 ? f[1] * 60 : 0) + (n == 3 ? f[2] : 0);
    }
    if (n == 1) return f[0] * 60; /* MM */
    if (n == 2) {                 /* MM:SS */
        if (f[1] >= 60) return -1;
        return f[0] * 60 + f[1];
    }
    if (f[1] >= 60 || f[2] >= 60) return -1; /* HH:MM:SS */
    return f[0] * 3600 + f[1] * 60 + f[2];
}

static int check_text(const char *field, const char *v, int required, char *err, size_t errlen)
{
    char sb[64];
    if (!v) {
        if (required) return fail(err, errlen, "sbatch spec: %s is missing (required)", field);
        return 0;
    }
    if (!*v)
        return fail(err, errlen, "sbatch spec: %s is empty (expected a non-empty value)", field);
    for (const char *c = v; *c; c++) {
        unsigned char u = (unsigned char)*c;
        if (u == '\n' || u == '\r')
            return fail(err, errlen,
                        "sbatch spec: %s '%s' contains a newline (not allowed in an "
                        "#SBATCH line)",
                        field, shown(v, sb));
        if (u < 0x20 || u == 0x7f)
            return fail(err, errlen, "sbatch spec: %s '%s' contains control character 0x%02x",
                        field, shown(v, sb), u);
    }
    return 0;
}

/* Array indices: N, N-M or N-M:S items, comma-separated. */
static int array_valid(const char *s)
{
    if (!*s) return 0;
    for (;;) {
        const char *end = strchr(s, ',');
        size_t len = end ? (size_t)(end - s) : strlen(s);
        const char *dash = memchr(s, '-', len);
        if (!dash) {
            if (parse_field(s, len) < 0) return 0;
        } else {
            long long lo = parse_field(s, (size_t)(dash - s));
            const char *hi_s = dash + 1;
            size_t rest = len - (size_t)(hi_s - s);
            const char *colon = memchr(hi_s, ':', rest);
            long long hi = parse_field(hi_s, colon ? (size_t)(colon - hi_s) : rest);
            if (lo < 0 || hi < 0 || lo > hi) return 0;
            if (colon) {
                long long step = parse_field(colon + 1, rest - (size_t)(colon + 1 - hi_s));
                if (step < 1) return 0;
            }
        }
        if (!end) return 1;
        s = end + 1;
    }
}

static int env_name_valid(const char *s)
{
    if (!s || !*s) return 0;
    for (const char *c = s; *c; c++) {
        int alpha = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || *c == '_';
        if (!alpha && !(c != s && *c >= '0' && *c <= '9')) return 0;
    }
    return 1;
}

static int env_has(const lethe_sbatch_spec *s, const char *name)
{
    for (size_t i = 0; i < s->n_env; i++)
        if (s->env[i].name && strcmp(s->env[i].name, name) == 0) return 1;
    return 0;
}

int lethe_sbatch_validate(const lethe_sbatch_spec *s, char *err, size_t errlen)
{
    char sb[64];
    if (!s) return fail(err, errlen, "sbatch spec: no spec given");
    if (check_text("job_name", s->job_name, 1, err, errlen) ||
        check_text("partition", s->partition, 0, err, errlen) ||
        check_text("account", s->account, 0, err, errlen) ||
        check_text("time_limit", s->time_limit, 0, err, errlen) ||
        check_text("output", s->output, 0, err, errlen) ||
        check_text("error", s->error, 0, err, errlen) ||
        check_text("array", s->array, 0, err, errlen) ||
        check_text("signal_name", s->signal_name, 0, err, errlen))
        return -1;
    if (!s->lethe_bin || !*s->lethe_bin)
        return fail(err, errlen, "sbatch spec: lethe_bin is %s (expected the path of lethe)",
                    s->lethe_bin ? "empty" : "missing");

    long long limit = -1;
    if (s->time_limit) {
        limit = lethe_slurm_time_seconds(s->time_limit);
        if (limit < 0)
            return fail(err, errlen,
                        "sbatch spec: time_limit '%s' is not a Slurm time (expected MM, MM:SS, "
                        "HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS)",
                        shown(s->time_limit, sb));
        if (limit == 0)
            return fail(err, errlen, "sbatch spec: time_limit '%s' is zero (expected > 0)",
                        shown(s->time_limit, sb));
    }
    if (s->nodes < 1) return fail(err, errlen, "sbatch spec: nodes = %d (expected >= 1)", s->nodes);
    if (s->ntasks < 1)
        return fail(err, errlen, "sbatch spec: ntasks = %d (expected >= 1)", s->ntasks);
    if (s->ntasks < s->nodes)
        return fail(err, errlen,
                    "sbatch spec: ntasks = %d is less than nodes = %d (expected "
                    "at least one task per node)",
                    s->ntasks, s->nodes);
    if (s->ntasks_per_node < 0)
        return fail(err, errlen,
                    "sbatch spec: ntasks_per_node = %d (expected >= 1, or 0 for "
                    "not given)",
                    s->ntasks_per_node);
    if (s->ntasks_per_node > 0 && (long long)s->nodes * s->ntasks_per_node < s->ntasks)
        return fail(err, errlen,
                    "sbatch spec: ntasks = %d exceeds nodes * ntasks_per_node = "
                    "%d * %d",
                    s->ntasks, s->nodes, s->ntasks_per_node);
    if (s->cpus_per_task < 0)
        return fail(err, errlen,
                    "sbatch spec: cpus_per_task = %d (expected >= 1, or 0 for "
                    "not given)",
                    s->cpus_per_task);
    if (s->n_afterok && !s->afterok)
        return fail(err, errlen, "sbatch spec: afterok is NULL but n_afterok = %zu", s->n_afterok);
    for (size_t i = 0; i < s->n_afterok; i++)
        if (s->afterok[i] == 0)
            return fail(err, errlen, "sbatch spec: afterok[%zu] = 0 (expected a job id >= 1)", i);
    if (s->array && !array_valid(s->array))
        return fail(err, errlen,
                    "sbatch spec: array '%s' is not a Slurm index list (expected "
                    "N, N-M or N-M:S items, comma-separated, N <= M, S >= 1)",
                    shown(s->array, sb));
    if (s->array_throttle < 0)
        return fail(err, errlen,
                    "sbatch spec: array_throttle = %d (expected >= 1, or 0 for "
                    "no limit)",
                    s->array_throttle);
    if (s->array_throttle > 0 && !s->array)
        return fail(err, errlen, "sbatch spec: array_throttle = %d without an array",
                    s->array_throttle);
    if (s->signal_name) {
        int known = 0;
        for (int i = 0; lethe_sbatch_signal_names[i]; i++)
            if (strcmp(s->signal_name, lethe_sbatch_signal_names[i]) == 0) known = 1;
        if (!known)
            return fail(err, errlen,
                        "sbatch spec: signal_name '%s' is not one of USR1 USR2 "
                        "TERM INT HUP QUIT ALRM CONT XCPU",
                        shown(s->signal_name, sb));
        if (s->signal_seconds < 1 || s->signal_seconds > 65535)
            return fail(err, errlen, "sbatch spec: signal_seconds = %d (expected 1..65535)",
                        s->signal_seconds);
        if (limit >= 0 && s->signal_seconds >= limit)
            return fail(err, errlen,
                        "sbatch spec: signal_seconds = %d is not less than "
                        "time_limit '%s' (%lld s)",
                        s->signal_seconds, shown(s->time_limit, sb), limit);
    } else if (s->signal_seconds || s->signal_batch_only) {
        return fail(err, errlen,
                    "sbatch spec: signal_seconds = %d or signal_batch_only = %d "
                    "without a signal_name",
                    s->signal_seconds, s->signal_batch_only);
    }
    if (s->launcher != LETHE_LAUNCH_SRUN && s->launcher != LETHE_LAUNCH_MPIRUN)
        return fail(err, errlen,
                    "sbatch spec: launcher = %d (expected LETHE_LAUNCH_SRUN or "
                    "LETHE_LAUNCH_MPIRUN)",
                    (int)s->launcher);
    if (s->n_env && !s->env)
        return fail(err, errlen, "sbatch spec: env is NULL but n_env = %zu", s->n_env);
    for (size_t i = 0; i < s->n_env; i++) {
        const char *name = s->env[i].name;
        if (!env_name_valid(name))
            return fail(err, errlen,
                        "sbatch spec: env[%zu] name '%s' is not a shell variable "
                        "name (expected [A-Za-z_][A-Za-z0-9_]*)",
                        i, name ? shown(name, sb) : "");
        if (!s->env[i].value)
            return fail(err, errlen, "sbatch spec: env[%zu] %s has no value", i, name);
        for (size_t j = 0; j < i; j++)
            if (strcmp(s->env[j].name, name) == 0)
                return fail(err, errlen, "sbatch spec: env[%zu] %s is already set by env[%zu]", i,
                            shown(name, sb), j);
    }
    if (s->n_args && !s->args)
        return fail(err, errlen, "sbatch spec: args is NULL but n_args = %zu", s->n_args);
    for (size_t i = 0; i < s->n_args; i++)
        if (!s->args[i]) return fail(err, errlen, "sbatch spec: args[%zu] is NULL", i);
    return 0;
}

/* ---- rendering ---- */

static void directive(sbuf *b, const char *opt, const char *value)
{
    sb_printf(b, "#SBATCH --%s=", opt);
    sb_sbatch_value(b, value);
    sb_putc(b, '\n');
}

static void export_var(sbuf *b, const char *name, const char *value)
{
    sb_printf(b, "export %s=", name);
    sb_shell_word(b, value);
    sb_putc(b, '\n');
}

/* The launcher, lethe and its arguments: the words up to the first option on the first
 * line, then one "--option value..." group per continuation line. */
static void command_line(sbuf *b, const lethe_sbatch_spec *s, const char *indent)
{
    sb_put(b, indent);
    if (s->launcher == LETHE_LAUNCH_SRUN) {
        sb_put(b, "srun --mpi=pmix");
        if (s->cpus_per_task > 0) sb_printf(b, " --cpus-per-task=%d", s->cpus_per_task);
    } else {
        sb_printf(b, "mpirun -n %d", s->ntasks);
    }
    sb_putc(b, ' ');
    sb_shell_word(b, s->lethe_bin);
    for (size_t i = 0; i < s->n_args; i++) {
        const char *a = s->args[i];
        if (a[0] == '-' && a[1] != '\0')
            sb_printf(b, " \\\n%s    ", indent);
        else
            sb_putc(b, ' ');
        sb_shell_word(b, a);
    }
}

/* After the launcher, with its status in lethe_status: the signal that killed a rank
 * (a quiet mpirun exits 128 + N without a word), the session folder removed. */
static void job_end(sbuf *b, int quiet, int own_tmp)
{
    if (quiet)
        sb_put(b, "if [ \"$lethe_status\" -gt 128 ] && [ \"$lethe_status\" -lt 160 ]; then\n"
                  "    echo \"lethe: a process of the job was killed by signal "
                  "$((lethe_status - 128))\" >&2\n"
                  "fi\n");
    if (own_tmp) sb_put(b, "rm -rf \"$lethe_ompi_tmp\"\n");
}

char *lethe_sbatch_render(const lethe_sbatch_spec *s, char *err, size_t errlen)
{
    if (lethe_sbatch_validate(s, err, errlen) != 0) return NULL;
    sbuf b = {0};
    sb_put(&b, "#!/bin/bash\n");
    directive(&b, "job-name", s->job_name);
    if (s->partition) directive(&b, "partition", s->partition);
    if (s->account) directive(&b, "account", s->account);
    if (s->time_limit) directive(&b, "time", s->time_limit);
    sb_printf(&b, "#SBATCH --nodes=%d\n#SBATCH --ntasks=%d\n", s->nodes, s->ntasks);
    if (s->ntasks_per_node > 0) sb_printf(&b, "#SBATCH --ntasks-per-node=%d\n", s->ntasks_per_node);
    if (s->cpus_per_task > 0) sb_printf(&b, "#SBATCH --cpus-per-task=%d\n", s->cpus_per_task);
    if (s->output) directive(&b, "output", s->output);
    if (s->error) directive(&b, "error", s->error);
    if (s->n_afterok) {
        sb_put(&b, "#SBATCH --dependency=afterok");
        for (size_t i = 0; i < s->n_afterok; i++) sb_printf(&b, ":%lu", s->afterok[i]);
        /* A failed dependency would otherwise leave this job pending forever. */
        sb_put(&b, "\n#SBATCH --kill-on-invalid-dep=yes\n");
    }
    if (s->array) {
        sb_printf(&b, "#SBATCH --array=%s", s->array);
        if (s->array_throttle > 0) sb_printf(&b, "%%%d", s->array_throttle);
        sb_putc(&b, '\n');
    }
    if (s->signal_name)
        sb_printf(&b, "#SBATCH --signal=%s%s@%d\n", s->signal_batch_only ? "B:" : "",
                  s->signal_name, s->signal_seconds);
    if (s->requeue) sb_put(&b, "#SBATCH --requeue\n");
    if (s->overcommit) sb_put(&b, "#SBATCH --overcommit\n");

    sb_put(&b,
           "\n# Environment of the ranks (sbatch passes the submitter's on; these override it).\n");
    if (!env_has(s, "OPENBLAS_NUM_THREADS")) export_var(&b, "OPENBLAS_NUM_THREADS", "1");
    if (!env_has(s, "OPENBLAS_CORETYPE")) {
        sb_put(&b, "# A forced OpenBLAS core type halves sgemm speed on newer CPUs: let it "
                   "detect the CPU.\nunset OPENBLAS_CORETYPE\n");
    }
    if (s->ompi_allow_root) {
        if (!env_has(s, "OMPI_ALLOW_RUN_AS_ROOT")) export_var(&b, "OMPI_ALLOW_RUN_AS_ROOT", "1");
        if (!env_has(s, "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"))
            export_var(&b, "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
    }
    if (s->ompi_one_host) {
        /* ob1's shared-memory segments are named by host name and local rank, so they
         * collide between virtual nodes of one host; its TCP transport over loopback
         * crashed in 2 of 260 four-rank launches while wiring up peers. UCX finds
         * the peers on the same host itself and names its segments per process. */
        sb_put(&b, "# Virtual nodes of one host: Open MPI messages through UCX, which finds the\n"
                   "# peers on this host itself (ob1's shared-memory segments would collide).\n");
        static const char *const ucx[][2] = {{"OMPI_MCA_pml", "ucx"},
                                             {"OMPI_MCA_pml_ucx_tls", "any"},
                                             {"OMPI_MCA_pml_ucx_devices", "any"},
                                             {"OMPI_MCA_btl", "self"}};
        for (size_t i = 0; i < sizeof ucx / sizeof ucx[0]; i++)
            if (!env_has(s, ucx[i][0])) export_var(&b, ucx[i][0], ucx[i][1]);
    }
    /* Open MPI 4.1 keeps all of a user's jobs on a node under one
     * <tmpdir_base>/ompi.<host>.<uid>/, which a job removes when it finds it empty at its
     * end: a job starting on the node at that moment loses it between two mkdirs and
     * dies (ORTE_ERROR_LOG ... session_dir.c). Slurm packs small jobs onto one node. */
    const int own_tmp = !env_has(s, "OMPI_MCA_orte_tmpdir_base");
    if (own_tmp)
        sb_put(&b, "# Open MPI's session files in a folder of this job's own (jobs that share a "
                   "node\n# would race on one <tmp>/ompi.<host>.<uid>/); removed at the end.\n"
                   "lethe_ompi_in=\"${OMPI_MCA_orte_tmpdir_base:-${TMPDIR:-/tmp}}\"\n"
                   "lethe_ompi_tmp=\"$(mkdir -p \"$lethe_ompi_in\" && "
                   "mktemp -d \"$lethe_ompi_in/lethe-ompi.XXXXXX\")\" || {\n"
                   "    echo \"lethe: cannot create a folder for Open MPI's session files in "
                   "$lethe_ompi_in\" >&2\n"
                   "    exit 1\n"
                   "}\n"
                   "export OMPI_MCA_orte_tmpdir_base=\"$lethe_ompi_tmp\"\n");
    /* mpirun's banners after a failed rank ("Primary job terminated normally, but 1
     * process returned a non-zero exit code", ...) would follow lethe's one error line;
     * quiet, it does not name a killed rank's signal either, so the script does. */
    const int quiet =
        s->launcher == LETHE_LAUNCH_MPIRUN && !env_has(s, "OMPI_MCA_orte_execute_quiet");
    if (quiet)
        sb_put(&b, "# No mpirun banner after a failed rank's own error line.\n"
                   "export OMPI_MCA_orte_execute_quiet=1\n");
    for (size_t i = 0; i < s->n_env; i++) export_var(&b, s->env[i].name, s->env[i].value);
    sb_putc(&b, '\n');

    if (s->signal_name && s->signal_batch_only) {
        sb_printf(&b,
                  "# SIG%s reaches this shell only, %d s before the time limit: pass it on to "
                  "the\n# ranks, which write a checkpoint and exit.\n"
                  "lethe_signalled=0\n"
                  "trap 'lethe_signalled=1; kill -s %s \"$lethe_pid\" 2>/dev/null' %s\n",
                  s->signal_name, s->signal_seconds, s->signal_name, s->signal_name);
        command_line(&b, s, "");
        sb_put(&b, " &\nlethe_pid=$!\n"
                   "# wait returns early when the trap runs; wait again until the ranks are "
                   "done.\n"
                   "while :; do\n"
                   "    wait \"$lethe_pid\"\n"
                   "    lethe_status=$?\n"
                   "    kill -0 \"$lethe_pid\" 2>/dev/null || break\n"
                   "done\n");
        job_end(&b, quiet, own_tmp);
        if (s->requeue)
            sb_put(&b, "# Back to the queue: the next run resumes from the checkpoint.\n"
                       "if [ \"$lethe_signalled\" = 1 ]; then\n"
                       "    scontrol requeue \"$SLURM_JOB_ID\"\n"
                       "fi\n");
        sb_put(&b, "exit \"$lethe_status\"\n");
    } else {
        command_line(&b, s, "");
        sb_putc(&b, '\n');
        if (quiet || own_tmp) {
            sb_put(&b, "lethe_status=$?\n");
            job_end(&b, quiet, own_tmp);
            sb_put(&b, "exit \"$lethe_status\"\n");
        }
    }
    if (b.oom) {
        free(b.p);
        fail(err, errlen, "sbatch: out of memory rendering job '%s'", s->job_name);
        return NULL;
    }
    return b.p;
}
