/* slurm/sbatch.h — readable sbatch scripts for lethe jobs, rendered from a struct.
 *
 * Contract: pure (no MPI, no I/O, no global state; reentrant). lethe_sbatch_validate
 * checks a spec and lethe_sbatch_render turns a valid one into the text of a batch
 * script (malloc'd; the caller frees it). On a bad spec both return an error and write
 * one line naming the field, the value and what was expected into err (never longer
 * than errlen - 1 characters); nothing is rendered. Inputs are never modified.
 *
 * The script is, in this order:
 *   #!/bin/bash and one `#SBATCH --option=value` line per field that is set (values
 *   that are not plain words are double-quoted the way sbatch parses them);
 *   the environment of the ranks: `export OPENBLAS_NUM_THREADS=1` unless spec->env sets
 *   it; `unset OPENBLAS_CORETYPE` unless spec->env sets it (sbatch passes the
 *   submitter's environment on, and a forced core type silently halves sgemm speed on
 *   CPUs newer than the forced one); the Open MPI variables only when asked (root may
 *   start ranks; UCX for virtual nodes of one host); unless spec->env sets them, a
 *   session folder of the job's own for Open MPI (`mktemp -d` under
 *   $OMPI_MCA_orte_tmpdir_base, else $TMPDIR, else /tmp, exported as
 *   OMPI_MCA_orte_tmpdir_base: jobs sharing a node would race on one
 *   <tmp>/ompi.<host>.<uid>/; the batch node's copy is removed once the launcher ends,
 *   other nodes keep an empty folder of that name) and, for mpirun,
 *   OMPI_MCA_orte_execute_quiet=1 (no mpirun banner after a rank's own error line; the
 *   script itself names the signal of a killed rank); spec->env in order;
 *   the launcher line: `srun --mpi=pmix [--cpus-per-task=C]` (Slurm 22.05's srun no
 *   longer inherits sbatch's --cpus-per-task) or `mpirun -n NTASKS` inside the
 *   allocation, then the lethe binary and its arguments, each shell-quoted, one
 *   `--option value...` group per continuation line.
 * With a signal sent to the batch shell only (signal_batch_only, `--signal=B:SIG@T`), the
 * launcher runs in the background and a trap forwards the signal to it (srun and mpirun
 * pass it on to the ranks, whose handler writes a checkpoint and exits); with requeue
 * set, a job that received the signal requeues itself (`scontrol requeue`) once the
 * ranks have exited, so the next run resumes from that checkpoint. The script's exit
 * status is the launcher's.
 *
 * Validation: job_name, lethe_bin non-empty; every #SBATCH value free of control
 * characters (a newline would end the directive); time_limit in a Slurm format (MM,
 * MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS; minutes and seconds below 60 wherever
 * they follow another field, hours below 24 after a day count) and above zero;
 * nodes >= 1, ntasks >= nodes, ntasks_per_node and cpus_per_task >= 0 (0: not given),
 * ntasks <= nodes * ntasks_per_node when given; dependency ids >= 1; the array a
 * comma list of N, N-M or N-M:S with N <= M, S >= 1, throttle >= 0; the signal one of
 * the names in lethe_sbatch_signal_names, its lead time 1..65535 s and shorter than
 * the time limit; env names shell identifiers, each at most once. */
#ifndef LETHE_SBATCH_H
#define LETHE_SBATCH_H

#include <stddef.h>

typedef enum {
    LETHE_LAUNCH_SRUN = 0, /* srun --mpi=pmix (this Open MPI speaks PMIx, not PMI-2) */
    LETHE_LAUNCH_MPIRUN,   /* mpirun -n NTASKS inside the allocation (reads it itself) */
} lethe_sbatch_launcher;

typedef struct {
    const char *name;  /* a shell identifier: [A-Za-z_][A-Za-z0-9_]* */
    const char *value; /* any string; shell-quoted */
} lethe_sbatch_env;

typedef struct {
    /* #SBATCH options. A NULL string or a 0 count leaves the option out. */
    const char *job_name;         /* required */
    const char *partition;        /* NULL: the cluster's default partition */
    const char *account;          /* NULL: the user's default account */
    const char *time_limit;       /* NULL: the partition's default */
    int nodes;                    /* >= 1 */
    int ntasks;                   /* >= nodes */
    int ntasks_per_node;          /* 0: not given */
    int cpus_per_task;            /* 0: not given */
    const char *output;           /* stdout path, may hold sbatch's %j %A %a ... patterns */
    const char *error;            /* stderr path; NULL: with stdout */
    const unsigned long *afterok; /* job ids this job waits for (--dependency=afterok:..) */
    size_t n_afterok;
    const char *array;       /* "0-11", "1,3,5-7", "0-20:2"; NULL: no array */
    int array_throttle;      /* at most this many tasks at once ("%4"); 0: no limit */
    const char *signal_name; /* "USR1", ...; NULL: no pre-timeout signal */
    int signal_seconds;      /* lead time before the time limit, 1..65535 */
    int signal_batch_only;   /* 1: signal the batch shell only ("B:"), which forwards it */
    int requeue;             /* 1: --requeue (and requeue after a forwarded signal) */
    int overcommit;          /* 1: --overcommit (more tasks than CPUs on a node) */

    /* Environment of the ranks. */
    const lethe_sbatch_env *env;
    size_t n_env;
    int ompi_allow_root; /* export OMPI_ALLOW_RUN_AS_ROOT(_CONFIRM)=1 */
    int ompi_one_host;   /* nodes are virtual nodes of one host: export OMPI_MCA_pml=ucx
                            OMPI_MCA_pml_ucx_tls=any OMPI_MCA_pml_ucx_devices=any
                            OMPI_MCA_btl=self */

    /* What runs. */
    lethe_sbatch_launcher launcher;
    const char *lethe_bin;   /* path of the lethe binary; required */
    const char *const *args; /* its arguments: job, config, --set key=value, ... */
    size_t n_args;
} lethe_sbatch_spec;

/* The signal names the spec accepts, NULL-terminated. */
extern const char *const lethe_sbatch_signal_names[];

/* 0 if spec is valid; -1 with the one-line reason in err otherwise. */
int lethe_sbatch_validate(const lethe_sbatch_spec *spec, char *err, size_t errlen);

/* The script text (malloc'd, NUL-terminated), or NULL with the reason in err (a bad
 * spec, or "out of memory"). */
char *lethe_sbatch_render(const lethe_sbatch_spec *spec, char *err, size_t errlen);

/* Seconds of a Slurm time limit (the six formats above), or -1 if s is not one. */
long long lethe_slurm_time_seconds(const char *s);

/* s as one shell word: unchanged when it is a plain word (letters, digits and
 * _ . / : = @ % + , -, not empty), else in single quotes with each ' written '\''.
 * malloc'd; NULL when out of memory. */
char *lethe_shell_quote(const char *s);

#endif
