/* tests/test_sbatch.c — slurm/sbatch: rendered scripts, quoting and every validation
 * error (no Slurm needed); this file holds the golden scripts and main.
 *
 * Asserts: three specs (minimal; every option with a batch-shell signal, requeue and
 * Open MPI variables; mpirun with env overrides, Open MPI's session folder among them,
 * and values sbatch must quote) render to exactly the golden scripts below, and each
 * passes `bash -n`. The quoting and time checks are in test_sbatch_words.c, the
 * validation errors in test_sbatch_validation.c; main runs them all.
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
#include "test_sbatch.h"

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

lethe_sbatch_spec spec2(void)
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
