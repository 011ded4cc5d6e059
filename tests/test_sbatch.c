/* tests/test_sbatch.c — slurm/sbatch: rendered scripts, quoting and every validation
 * error (no Slurm needed).
 *
 * Asserts: three specs (minimal; every option with a batch-shell signal, requeue and
 * Open MPI variables; mpirun with env overrides, Open MPI's session folder among them,
 * and values sbatch must quote) render to exactly the golden scripts below, and each
 * passes `bash -n`; lethe_shell_quote gives the expected words and /bin/sh reads every
 * awkward string (spaces, quotes, $, backticks, backslashes, newlines, globs, empty) back
 * unchanged; lethe_slurm_time_seconds accepts
 * the six Slurm formats with their values and rejects malformed ones; each invalid spec
 * is refused by validate and render with exactly the expected one-line message.
 *
 * usage: test_sbatch                      run the tests
 *        test_sbatch --render STUB OUTPUT -- ARG...
 *            print the script tests/slurm_local.sh submits: 2 nodes, 2 tasks, 5 minutes,
 *            USR1 to the batch shell 60 s before the limit, requeue, srun, with STUB as
 *            the lethe binary and ARG... as its arguments, stdout to OUTPUT. */
#define _POSIX_C_SOURCE 200809L

#include "slurm/sbatch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "check.h"

CHECK_COUNTERS;


/* ---- the three golden cases ---- */

/* A session folder of the job's own for Open MPI. */
#define OMPI_SESSION                                                                               \
    "# Open MPI's session files in a folder of this job's own (jobs that share a node\n"           \
    "# would race on one <tmp>/ompi.<host>.<uid>/); removed at the end.\n"                         \
    "lethe_ompi_in=\"${OMPI_MCA_orte_tmpdir_base:-${TMPDIR:-/tmp}}\"\n"                            \
    "lethe_ompi_tmp=\"$(mkdir -p \"$lethe_ompi_in\" && mktemp -d "                                 \
    "\"$lethe_ompi_in/lethe-ompi.XXXXXX\")\" || {\n"                                               \
    "    echo \"lethe: cannot create a folder for Open MPI's session files in $lethe_ompi_in\" "   \
    ">&2\n"                                                                                        \
    "    exit 1\n"                                                                                 \
    "}\n"                                                                                          \
    "export OMPI_MCA_orte_tmpdir_base=\"$lethe_ompi_tmp\"\n"

static const char golden1[] =
    "#!/bin/bash\n"
    "#SBATCH --job-name=demo\n"
    "#SBATCH --nodes=1\n"
    "#SBATCH --ntasks=2\n"
    "\n"
    "# Environment of the ranks (sbatch passes the submitter's on; these override it).\n"
    "export OPENBLAS_NUM_THREADS=1\n"
    "# A forced OpenBLAS core type halves sgemm speed on newer CPUs: let it detect the CPU.\n"
    "unset OPENBLAS_CORETYPE\n" OMPI_SESSION "\n"
    "srun --mpi=pmix lethe train jobs/configs/demo.json\n"
    "lethe_status=$?\n"
    "rm -rf \"$lethe_ompi_tmp\"\n"
    "exit \"$lethe_status\"\n";

static const char golden2[] =
    "#!/bin/bash\n"
    "#SBATCH --job-name=unlearn-simnpo\n"
    "#SBATCH --partition=cpu\n"
    "#SBATCH --account=proj42\n"
    "#SBATCH --time=1-02:30:00\n"
    "#SBATCH --nodes=2\n"
    "#SBATCH --ntasks=4\n"
    "#SBATCH --ntasks-per-node=2\n"
    "#SBATCH --cpus-per-task=1\n"
    "#SBATCH --output=runs/%x-%A_%a.out\n"
    "#SBATCH --error=runs/%x-%A_%a.err\n"
    "#SBATCH --dependency=afterok:101:102\n"
    "#SBATCH --kill-on-invalid-dep=yes\n"
    "#SBATCH --array=0-11%4\n"
    "#SBATCH --signal=B:USR1@120\n"
    "#SBATCH --requeue\n"
    "\n"
    "# Environment of the ranks (sbatch passes the submitter's on; these override it).\n"
    "export OPENBLAS_NUM_THREADS=1\n"
    "# A forced OpenBLAS core type halves sgemm speed on newer CPUs: let it detect the CPU.\n"
    "unset OPENBLAS_CORETYPE\n"
    "export OMPI_ALLOW_RUN_AS_ROOT=1\n"
    "export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1\n"
    "# Virtual nodes of one host: Open MPI messages through UCX, which finds the\n"
    "# peers on this host itself (ob1's shared-memory segments would collide).\n"
    "export OMPI_MCA_pml=ucx\n"
    "export OMPI_MCA_pml_ucx_tls=any\n"
    "export OMPI_MCA_pml_ucx_devices=any\n"
    "export OMPI_MCA_btl=self\n" OMPI_SESSION "export LETHE_STUDY='simnpo sweep'\n"
    "\n"
    "# SIGUSR1 reaches this shell only, 120 s before the time limit: pass it on to the\n"
    "# ranks, which write a checkpoint and exit.\n"
    "lethe_signalled=0\n"
    "trap 'lethe_signalled=1; kill -s USR1 \"$lethe_pid\" 2>/dev/null' USR1\n"
    "srun --mpi=pmix --cpus-per-task=1 /opt/lethe/bin/lethe unlearn 'studies/tofu forget05.json' "
    "\\\n"
    "    --set unlearn.beta=2.5 \\\n"
    "    --set 'output.tag=it'\\''s $HOME `date` \"q\"' \\\n"
    "    --set train.lr=1e-5 &\n"
    "lethe_pid=$!\n"
    "# wait returns early when the trap runs; wait again until the ranks are done.\n"
    "while :; do\n"
    "    wait \"$lethe_pid\"\n"
    "    lethe_status=$?\n"
    "    kill -0 \"$lethe_pid\" 2>/dev/null || break\n"
    "done\n"
    "rm -rf \"$lethe_ompi_tmp\"\n"
    "# Back to the queue: the next run resumes from the checkpoint.\n"
    "if [ \"$lethe_signalled\" = 1 ]; then\n"
    "    scontrol requeue \"$SLURM_JOB_ID\"\n"
    "fi\n"
    "exit \"$lethe_status\"\n";

static const char golden3[] =
    "#!/bin/bash\n"
    "#SBATCH --job-name=\"eval \\\"quick\\\" #1\"\n"
    "#SBATCH --time=45\n"
    "#SBATCH --nodes=4\n"
    "#SBATCH --ntasks=8\n"
    "#SBATCH --cpus-per-task=2\n"
    "#SBATCH --output=\"/scratch/my runs/eval-%j.out\"\n"
    "#SBATCH --signal=TERM@60\n"
    "#SBATCH --overcommit\n"
    "\n"
    "# Environment of the ranks (sbatch passes the submitter's on; these override it).\n"
    "export OMPI_ALLOW_RUN_AS_ROOT=1\n"
    "export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1\n"
    "# No mpirun banner after a failed rank's own error line.\n"
    "export OMPI_MCA_orte_execute_quiet=1\n"
    "export OPENBLAS_NUM_THREADS=2\n"
    "export OPENBLAS_CORETYPE=SkylakeX\n"
    "export OMPI_MCA_orte_tmpdir_base=/local/scratch\n"
    "\n"
    "mpirun -n 8 '/home/a b/lethe' eval cfg.json \\\n"
    "    --set 'eval.prompt=a\n"
    "b' \\\n"
    "    --set output.note=\n"
    "lethe_status=$?\n"
    "if [ \"$lethe_status\" -gt 128 ] && [ \"$lethe_status\" -lt 160 ]; then\n"
    "    echo \"lethe: a process of the job was killed by signal $((lethe_status - 128))\" >&2\n"
    "fi\n"
    "exit \"$lethe_status\"\n";

/* ---- the specs behind them ---- */

static const char *const args1[] = {"train", "jobs/configs/demo.json"};

static lethe_sbatch_spec spec1(void)
{
    lethe_sbatch_spec s = {0};
    s.job_name = "demo";
    s.nodes = 1;
    s.ntasks = 2;
    s.lethe_bin = "lethe";
    s.args = args1;
    s.n_args = 2;
    return s;
}

static const unsigned long deps2[] = {101, 102};
static const lethe_sbatch_env env2[] = {{"LETHE_STUDY", "simnpo sweep"}};
static const char *const args2[] = {
    "unlearn", "studies/tofu forget05.json",         "--set", "unlearn.beta=2.5",
    "--set",   "output.tag=it's $HOME `date` \"q\"", "--set", "train.lr=1e-5"};

static lethe_sbatch_spec spec2(void)
{
    lethe_sbatch_spec s = {0};
    s.job_name = "unlearn-simnpo";
    s.partition = "cpu";
    s.account = "proj42";
    s.time_limit = "1-02:30:00";
    s.nodes = 2;
    s.ntasks = 4;
    s.ntasks_per_node = 2;
    s.cpus_per_task = 1;
    s.output = "runs/%x-%A_%a.out";
    s.error = "runs/%x-%A_%a.err";
    s.afterok = deps2;
    s.n_afterok = 2;
    s.array = "0-11";
    s.array_throttle = 4;
    s.signal_name = "USR1";
    s.signal_seconds = 120;
    s.signal_batch_only = 1;
    s.requeue = 1;
    s.env = env2;
    s.n_env = 1;
    s.ompi_allow_root = 1;
    s.ompi_one_host = 1;
    s.launcher = LETHE_LAUNCH_SRUN;
    s.lethe_bin = "/opt/lethe/bin/lethe";
    s.args = args2;
    s.n_args = 8;
    return s;
}

static const lethe_sbatch_env env3[] = {{"OPENBLAS_NUM_THREADS", "2"},
                                        {"OPENBLAS_CORETYPE", "SkylakeX"},
                                        {"OMPI_MCA_orte_tmpdir_base", "/local/scratch"}};
static const char *const args3[] = {"eval",  "cfg.json",    "--set", "eval.prompt=a\nb",
                                    "--set", "output.note="};

static lethe_sbatch_spec spec3(void)
{
    lethe_sbatch_spec s = {0};
    s.job_name = "eval \"quick\" #1";
    s.time_limit = "45";
    s.nodes = 4;
    s.ntasks = 8;
    s.cpus_per_task = 2;
    s.output = "/scratch/my runs/eval-%j.out";
    s.signal_name = "TERM";
    s.signal_seconds = 60;
    s.overcommit = 1;
    s.env = env3;
    s.n_env = 3;
    s.ompi_allow_root = 1;
    s.launcher = LETHE_LAUNCH_MPIRUN;
    s.lethe_bin = "/home/a b/lethe";
    s.args = args3;
    s.n_args = 6;
    return s;
}

/* bash parses the script (syntax only, nothing runs). */
static int bash_accepts(const char *script)
{
    char path[] = "/tmp/lethe-test-sbatch-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) return 0;
    size_t n = strlen(script);
    int ok = write(fd, script, n) == (ssize_t)n;
    close(fd);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "bash -n %s", path);
    ok = ok && system(cmd) == 0;
    unlink(path);
    return ok;
}

static void check_golden(const char *name, lethe_sbatch_spec s, const char *want)
{
    char err[512] = "";
    CHECK(lethe_sbatch_validate(&s, err, sizeof err) == 0, "%s: validate: %s", name, err);
    char *got = lethe_sbatch_render(&s, err, sizeof err);
    CHECK(got != NULL, "%s: render: %s", name, err);
    if (!got) return;
    if (strcmp(got, want) != 0) {
        size_t i = 0;
        while (got[i] && got[i] == want[i]) i++;
        CHECK(0,
              "%s: rendered script differs from the golden one at byte %zu:\n--- got\n%s--- "
              "expected\n%s---",
              name, i, got, want);
    }
    CHECK(bash_accepts(got), "%s: bash -n rejects the rendered script", name);
    free(got);
}

/* ---- shell quoting ---- */

/* /bin/sh reads the quoted word back as the original string. */
static int sh_roundtrip(const char *s)
{
    char *q = lethe_shell_quote(s);
    if (!q) return 0;
    size_t cap = strlen(q) + 64;
    char *cmd = malloc(cap);
    if (!cmd) {
        free(q);
        return 0;
    }
    snprintf(cmd, cap, "printf '%%s|' %s", q);
    free(q);
    FILE *p = popen(cmd, "r");
    free(cmd);
    if (!p) return 0;
    char buf[512];
    size_t n = fread(buf, 1, sizeof buf - 1, p);
    buf[n] = '\0';
    int rc = pclose(p);
    return rc == 0 && n == strlen(s) + 1 && memcmp(buf, s, n - 1) == 0 && buf[n - 1] == '|';
}

static void test_quote(void)
{
    static const struct {
        const char *in, *out;
    } words[] = {
        {"plain", "plain"},
        {"train.lr=1e-5", "train.lr=1e-5"},
        {"/a/b-c_d.e:f@g%h+i,j", "/a/b-c_d.e:f@g%h+i,j"},
        {"", "''"},
        {"a b", "'a b'"},
        {"it's", "'it'\\''s'"},
        {"$HOME", "'$HOME'"},
        {"`date`", "'`date`'"},
        {"\"dq\"", "'\"dq\"'"},
        {"'", "''\\'''"},
        {"*", "'*'"},
        {"~", "'~'"},
        {"#x", "'#x'"},
    };
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        char *q = lethe_shell_quote(words[i].in);
        CHECK(q && strcmp(q, words[i].out) == 0, "quote(\"%s\") = %s, expected %s", words[i].in,
              q ? q : "(null)", words[i].out);
        free(q);
    }
    static const char *const awkward[] = {
        "a b",
        "it's",
        "$HOME",
        "`date`",
        "$(echo x)",
        "\"dq\"",
        "back\\slash",
        "new\nline",
        "tab\there",
        "",
        "'",
        "''",
        "*",
        "~root",
        "{a,b}",
        "#c",
        "!x",
        "a;b&c|d>e<f",
        "it's $HOME `date` \"q\" \\ \n end",
    };
    for (size_t i = 0; i < sizeof awkward / sizeof awkward[0]; i++)
        CHECK(sh_roundtrip(awkward[i]), "/bin/sh does not read quote(\"%s\") back", awkward[i]);
}

/* ---- Slurm times ---- */

static void test_times(void)
{
    static const struct {
        const char *s;
        long long secs;
    } ok[] = {
        {"45", 45 * 60},
        {"0", 0},
        {"600", 600 * 60},
        {"5:30", 5 * 60 + 30},
        {"90:00", 90 * 60},
        {"2:03:04", 2 * 3600 + 3 * 60 + 4},
        {"48:00:00", 48 * 3600},
        {"1-0", 86400},
        {"2-12", 2 * 86400 + 12 * 3600},
        {"1-02:30", 86400 + 2 * 3600 + 30 * 60},
        {"1-02:30:00", 86400 + 2 * 3600 + 30 * 60},
        {"0-00:00:59", 59},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        long long got = lethe_slurm_time_seconds(ok[i].s);
        CHECK(got == ok[i].secs, "time '%s' = %lld s, expected %lld", ok[i].s, got, ok[i].secs);
    }
    static const char *const bad[] = {
        "",        "x",    "-5",     "1-",       "-1",         "1:2:3:4",   "5:60",     "1:60:00",
        "1:00:60", "1-24", "1-2:60", "1-2:3:60", "1-2-3",      "1:",        ":5",       "1::2",
        " 5",      "5 ",   "+5",     "1.5",      "1234567890", "UNLIMITED", "1-1:1:1:1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(lethe_slurm_time_seconds(bad[i]) == -1, "time '%s' accepted as %lld s", bad[i],
              lethe_slurm_time_seconds(bad[i]));
    CHECK(lethe_slurm_time_seconds(NULL) == -1, "time NULL accepted");
}

/* ---- validation errors ---- */

static const unsigned long dep_zero[] = {7, 0};
static const lethe_sbatch_env env_bad_name[] = {{"1X", "v"}};
static const lethe_sbatch_env env_dash[] = {{"A-B", "v"}};
static const lethe_sbatch_env env_empty_name[] = {{"", "v"}};
static const lethe_sbatch_env env_null_value[] = {{"A", NULL}};
static const lethe_sbatch_env env_dup[] = {{"A", "1"}, {"B", "2"}, {"A", "3"}};
static const char *const args_null[] = {"train", NULL};

/* Applies bad case k to a valid spec; returns the expected message, NULL past the end. */
static const char *bad_case(int k, lethe_sbatch_spec *s)
{
    *s = spec2();
    switch (k) {
    case 0: s->job_name = NULL; return "sbatch spec: job_name is missing (required)";
    case 1: s->job_name = ""; return "sbatch spec: job_name is empty (expected a non-empty value)";
    case 2:
        s->job_name = "a\nb";
        return "sbatch spec: job_name 'a?b' contains a newline (not allowed in an #SBATCH line)";
    case 3:
        s->job_name = "a\rb";
        return "sbatch spec: job_name 'a?b' contains a newline (not allowed in an #SBATCH line)";
    case 4:
        s->partition = "cpu\tgpu";
        return "sbatch spec: partition 'cpu?gpu' contains control character 0x09";
    case 5:
        s->account = "x\n";
        return "sbatch spec: account 'x?' contains a newline (not allowed in an #SBATCH line)";
    case 6:
        s->output = "out\n%j";
        return "sbatch spec: output 'out?%j' contains a newline (not allowed in an #SBATCH line)";
    case 7: s->error = ""; return "sbatch spec: error is empty (expected a non-empty value)";
    case 8:
        s->time_limit = "1:2:3:4";
        return "sbatch spec: time_limit '1:2:3:4' is not a Slurm time (expected MM, MM:SS, "
               "HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS)";
    case 9:
        s->time_limit = "1-24:00";
        return "sbatch spec: time_limit '1-24:00' is not a Slurm time (expected MM, MM:SS, "
               "HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS)";
    case 10:
        s->time_limit = "0-00:00";
        return "sbatch spec: time_limit '0-00:00' is zero (expected > 0)";
    case 11:
        s->time_limit = "2 hours";
        return "sbatch spec: time_limit '2 hours' is not a Slurm time (expected MM, MM:SS, "
               "HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS)";
    case 12:
        s->time_limit = "1\n";
        return "sbatch spec: time_limit '1?' contains a newline (not allowed in an #SBATCH line)";
    case 13:
        s->lethe_bin = NULL;
        return "sbatch spec: lethe_bin is missing (expected the path of lethe)";
    case 14:
        s->lethe_bin = "";
        return "sbatch spec: lethe_bin is empty (expected the path of lethe)";
    case 15: s->nodes = 0; return "sbatch spec: nodes = 0 (expected >= 1)";
    case 16: s->nodes = -3; return "sbatch spec: nodes = -3 (expected >= 1)";
    case 17: s->ntasks = 0; return "sbatch spec: ntasks = 0 (expected >= 1)";
    case 18:
        s->nodes = 3;
        s->ntasks = 2;
        s->ntasks_per_node = 0;
        return "sbatch spec: ntasks = 2 is less than nodes = 3 (expected at least one task per "
               "node)";
    case 19:
        s->ntasks_per_node = -1;
        return "sbatch spec: ntasks_per_node = -1 (expected >= 1, or 0 for not given)";
    case 20:
        s->ntasks = 5;
        return "sbatch spec: ntasks = 5 exceeds nodes * ntasks_per_node = 2 * 2";
    case 21:
        s->cpus_per_task = -2;
        return "sbatch spec: cpus_per_task = -2 (expected >= 1, or 0 for not given)";
    case 22: s->afterok = NULL; return "sbatch spec: afterok is NULL but n_afterok = 2";
    case 23: s->afterok = dep_zero; return "sbatch spec: afterok[1] = 0 (expected a job id >= 1)";
    case 24:
        s->array = "5-3";
        return "sbatch spec: array '5-3' is not a Slurm index list (expected N, N-M or N-M:S "
               "items, comma-separated, N <= M, S >= 1)";
    case 25:
        s->array = "0-11:0";
        return "sbatch spec: array '0-11:0' is not a Slurm index list (expected N, N-M or N-M:S "
               "items, comma-separated, N <= M, S >= 1)";
    case 26:
        s->array = "1,,2";
        return "sbatch spec: array '1,,2' is not a Slurm index list (expected N, N-M or N-M:S "
               "items, comma-separated, N <= M, S >= 1)";
    case 27:
        s->array = "0-11%4";
        return "sbatch spec: array '0-11%4' is not a Slurm index list (expected N, N-M or N-M:S "
               "items, comma-separated, N <= M, S >= 1)";
    case 28: s->array = ""; return "sbatch spec: array is empty (expected a non-empty value)";
    case 29:
        s->array_throttle = -1;
        return "sbatch spec: array_throttle = -1 (expected >= 1, or 0 for no limit)";
    case 30: s->array = NULL; return "sbatch spec: array_throttle = 4 without an array";
    case 31:
        s->signal_name = "SIGUSR1";
        return "sbatch spec: signal_name 'SIGUSR1' is not one of USR1 USR2 TERM INT HUP QUIT ALRM "
               "CONT XCPU";
    case 32:
        s->signal_name = "KILL";
        return "sbatch spec: signal_name 'KILL' is not one of USR1 USR2 TERM INT HUP QUIT ALRM "
               "CONT XCPU";
    case 33: s->signal_seconds = 0; return "sbatch spec: signal_seconds = 0 (expected 1..65535)";
    case 34:
        s->signal_seconds = 65536;
        return "sbatch spec: signal_seconds = 65536 (expected 1..65535)";
    case 35:
        s->time_limit = "2";
        return "sbatch spec: signal_seconds = 120 is not less than time_limit '2' (120 s)";
    case 36:
        s->signal_name = NULL;
        return "sbatch spec: signal_seconds = 120 or signal_batch_only = 1 without a signal_name";
    case 37:
        s->launcher = (lethe_sbatch_launcher)7;
        return "sbatch spec: launcher = 7 (expected LETHE_LAUNCH_SRUN or LETHE_LAUNCH_MPIRUN)";
    case 38: s->env = NULL; return "sbatch spec: env is NULL but n_env = 1";
    case 39:
        s->env = env_bad_name;
        return "sbatch spec: env[0] name '1X' is not a shell variable name (expected "
               "[A-Za-z_][A-Za-z0-9_]*)";
    case 40:
        s->env = env_dash;
        return "sbatch spec: env[0] name 'A-B' is not a shell variable name (expected "
               "[A-Za-z_][A-Za-z0-9_]*)";
    case 41:
        s->env = env_empty_name;
        return "sbatch spec: env[0] name '' is not a shell variable name (expected "
               "[A-Za-z_][A-Za-z0-9_]*)";
    case 42: s->env = env_null_value; return "sbatch spec: env[0] A has no value";
    case 43:
        s->env = env_dup;
        s->n_env = 3;
        return "sbatch spec: env[2] A is already set by env[0]";
    case 44: s->args = NULL; return "sbatch spec: args is NULL but n_args = 8";
    case 45:
        s->args = args_null;
        s->n_args = 2;
        return "sbatch spec: args[1] is NULL";
    case 46:
        s->job_name = "a very long job name that goes on and on and on and on and on\nand on";
        return "sbatch spec: job_name 'a very long job name that goes on and on and on and on "
               "an...' contains a newline (not allowed in an #SBATCH line)";
    }
    return NULL;
}

static void test_validation(void)
{
    char err[512];
    CHECK(lethe_sbatch_validate(NULL, err, sizeof err) == -1 &&
              strcmp(err, "sbatch spec: no spec given") == 0,
          "NULL spec: %s", err);
    int k = 0;
    lethe_sbatch_spec s;
    for (const char *want; (want = bad_case(k, &s)) != NULL; k++) {
        strcpy(err, "(untouched)");
        int rc = lethe_sbatch_validate(&s, err, sizeof err);
        CHECK(rc == -1, "case %d: validate returned %d, expected -1 (%s)", k, rc, want);
        CHECK(strcmp(err, want) == 0, "case %d: message\n  got      %s\n  expected %s", k, err,
              want);
        CHECK(!strchr(err, '\n'), "case %d: message spans lines", k);
        strcpy(err, "(untouched)");
        char *t = lethe_sbatch_render(&s, err, sizeof err);
        CHECK(t == NULL, "case %d: render produced a script", k);
        free(t);
        CHECK(strcmp(err, want) == 0, "case %d: render message\n  got      %s\n  expected %s", k,
              err, want);
    }
    CHECK(k == 47, "%d bad cases ran, expected 47", k);
    /* A short buffer truncates, still terminated. */
    char small[16];
    bad_case(15, &s);
    CHECK(lethe_sbatch_validate(&s, small, sizeof small) == -1 &&
              strcmp(small, "sbatch spec: no") == 0,
          "truncated message '%s'", small);
}

/* The job tests/slurm_local.sh submits. */
static int render_for_slurm(int argc, char **argv)
{
    if (argc < 5 || strcmp(argv[4], "--") != 0) {
        fprintf(stderr, "usage: test_sbatch --render STUB OUTPUT -- ARG...\n");
        return 2;
    }
    lethe_sbatch_spec s = {0};
    s.job_name = "lethe requeue \"test\" #2";
    s.time_limit = "5";
    s.nodes = 2;
    s.ntasks = 2;
    s.ntasks_per_node = 1;
    s.output = argv[3];
    s.signal_name = "USR1";
    s.signal_seconds = 60;
    s.signal_batch_only = 1;
    s.requeue = 1;
    s.launcher = LETHE_LAUNCH_SRUN;
    s.lethe_bin = argv[2];
    s.args = (const char *const *)(argv + 5);
    s.n_args = (size_t)(argc - 5);
    char err[512];
    char *t = lethe_sbatch_render(&s, err, sizeof err);
    if (!t) {
        fprintf(stderr, "test_sbatch: %s\n", err);
        return 1;
    }
    fputs(t, stdout);
    free(t);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--render") == 0) return render_for_slurm(argc, argv);
    check_golden("case 1 (minimal)", spec1(), golden1);
    check_golden("case 2 (every option, batch signal, requeue)", spec2(), golden2);
    check_golden("case 3 (mpirun, env overrides, quoted #SBATCH values)", spec3(), golden3);
    test_quote();
    test_times();
    test_validation();
    if (failures) {
        fprintf(stderr, "test_sbatch: %d check(s) failed\n", failures);
        return 1;
    }
    printf("test_sbatch: 3 golden scripts, quoting, times and 48 validation errors: ok\n");
    return 0;
}
