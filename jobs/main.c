/* jobs/main.c — the `lethe` command: `lethe <job> CONFIG.json [--set key=value ...]`. */
#include <cblas.h>
#include <hdf5.h>
#include <mpi.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <cjson/cJSON.h>

#include "../io/config.h"
#include "../mpi/comm.h"
#include "../mpi/fatal.h"

#ifndef LETHE_GIT
#include <lethe_git.h> /* generated at every build: the source's git describe */
#endif
#include "jobs.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} job_entry;

static const job_entry jobs[] = {
    {"synth", job_synth, "generate the built-in data: fictitious authors or Markov chains"},
    {"prepare", job_prepare, "turn JSON lines (QA, text or token ids) into an HDF5 token dataset"},
    {"train", job_train, "pre-train or fine-tune a model (token-mean NLL)"},
    {"unlearn", job_unlearn, "unlearn a forget split: SimNPO, NPO, GA, RMU, DPO ... (13 methods)"},
    {"eval", job_eval, "evaluate a checkpoint: TOFU- and MUSE-style metrics"},
    {"relearn", job_relearn, "relearning attack: fine-tune on forget samples, track recovery"},
    {"study", job_study, "run a whole study (DAG of jobs) on these ranks, skipping finished jobs"},
    {"select", job_select, "a protocol study's choice of one setting per method (its select job)"},
    {"report", job_report, "tables and plots of a study's results"},
    {"slurm", job_slurm, "write and submit a study as chained sbatch jobs and arrays"},
    {"convert", job_convert, "convert Hugging Face safetensors <-> lethe checkpoints, any layout"},
    {"bench", job_bench, "measure training-step throughput, communication and sgemm peak"},
};
#define NJOBS (int)(sizeof jobs / sizeof jobs[0])

static void usage(FILE *f)
{
    fprintf(f,
            "lethe %s — LLM unlearning studies on CPU clusters\n\n"
            "usage: mpirun -n RANKS lethe <job> CONFIG.json [--set key.path=value ...]\n"
            "       lethe study STUDY.json [--dir DIR] | lethe report DIR\n"
            "       lethe --help | lethe <job> --help\n"
            "       lethe --version (or -V, version): lethe's version and commit, and its "
            "libraries'\n\njobs:\n",
            LETHE_VERSION);
    for (int i = 0; i < NJOBS; i++) fprintf(f, "  %-8s %s\n", jobs[i].name, jobs[i].summary);
    fprintf(f,
            "\nThe layout (layout.dp x layout.pp x layout.tp) must equal the number of ranks.\n");
}

void job_convert_help(FILE *f);

static void job_help(const job_entry *j)
{
    if (!strcmp(j->name, "convert")) job_convert_help(stdout);
    printf("usage: mpirun -n RANKS lethe %s CONFIG.json [--set key.path=value ...]\n\n%s.\n\n"
           "Config keys (JSON sections; unknown keys are errors):\n",
           j->name, j->summary);
    config_print_keys(stdout);
}

char *openblas_get_config(void);

/* `lethe --version`: lethe's version and commit, then Open MPI, OpenBLAS (with the core
 * in use), HDF5 and cJSON, one library a line. No MPI_Init (MPI_Get_library_version
 * may be called before it), so it runs without mpirun. */
static int print_version(void)
{
    char mpi[MPI_MAX_LIBRARY_VERSION_STRING] = "unknown", core[128];
    int len = 0;
    if (MPI_Get_library_version(mpi, &len) != MPI_SUCCESS) snprintf(mpi, sizeof mpi, "unknown");
    mpi[strcspn(mpi, "\r\n")] = 0; /* the first line (MPICH, for one, returns several) */
    unsigned maj = 0, min = 0, rel = 0;
    int h5 = H5get_libversion(&maj, &min, &rel) >= 0;
#ifdef H5_HAVE_PARALLEL
    const char *h5kind = "parallel";
#else
    const char *h5kind = "serial";
#endif
    blas_core_string(core, sizeof core);
    printf("lethe %s (commit %s)\n", LETHE_VERSION, LETHE_GIT);
    printf("MPI: %s\n", mpi);
    printf("OpenBLAS: %s; core %s\n", openblas_get_config(), core);
    if (h5)
        printf("HDF5: %u.%u.%u (%s)\n", maj, min, rel, h5kind);
    else
        printf("HDF5: unknown (%s)\n", h5kind);
    printf("cJSON: %s\n", cJSON_Version());
    return fflush(stdout) ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 &&
        (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V") || !strcmp(argv[1], "version")))
        return print_version();
    /* help needs no MPI */
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const job_entry *job = NULL;
    for (int i = 0; i < NJOBS; i++)
        if (!strcmp(argv[1], jobs[i].name)) job = &jobs[i];
    /* jobs that take no config file parse their own options, --help included */
    int own_args = job && (!strcmp(job->name, "report") || !strcmp(job->name, "study") ||
                           !strcmp(job->name, "select") ||
                           !strcmp(job->name, "slurm") || !strcmp(job->name, "prepare"));
    for (int i = 2; job && !own_args && i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            job_help(job);
            return 0;
        }
    comm_init(&argc, &argv);
    /* outputs follow the user's umask, but are never writable by everyone */
    umask(umask(0) | S_IWOTH);
    /* an MPMD launch (`lethe train A : lethe eval B`) would meet in mismatched collectives:
     * every rank runs the same job, then session_open agrees on its config */
    cJSON *which = cJSON_CreateObject();
    char *text = which && cJSON_AddStringToObject(which, "lethe job", argv[1])
                     ? cJSON_PrintUnformatted(which)
                     : NULL;
    job_agree_text("commands", text ? text : argv[1], text != NULL, MPI_COMM_WORLD);
    cJSON_free(text);
    cJSON_Delete(which);
    if (!job) {
        int rank;
        MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
        if (rank == 0) fprintf(stderr, "lethe: unknown job '%s' (see lethe --help)\n", argv[1]);
        MPI_Finalize();
        return 2;
    }
    job_argfile af; /* convert and prepare from a study's job.json (jobs/job_args.c) */
    job_argfile_open(&af, job->name, argc - 2, argv + 2);
    int rc = job->run(af.argc, af.argv);
    job_argfile_close(&af);
    MPI_Finalize();
    return rc;
}
