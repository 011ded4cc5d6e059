/* jobs/study.c — `lethe study`: the front-end that runs a study's jobs (io/study.h
 * expands the file) in dependency order on this job's own MPI ranks, skipping the jobs
 * whose folder holds .done, and stopping (to be resumed by a rerun) when a job was
 * preempted. Every rank must have expanded the same jobs; a finished job whose config
 * changed since is refused (or moved aside with --rerun-changed), never relabelled. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../io/study.h"
#include "../mpi/fatal.h"
#include "jobs.h"

typedef struct {
    const char *file, *dir;
    char *over[64]; /* --set key=value */
    int nover, dry, rerun; /* --rerun-changed */
} study_args;

static void study_usage(void)
{
    printf("usage: mpirun -n RANKS lethe study STUDY.json [--dir DIR] [--dry-run] "
           "[--rerun-changed] [--set key=value ...]\n\n"
           "Runs a study (a DAG of synth, train, unlearn, eval, relearn, select and report "
           "jobs) on these ranks,\nskipping jobs whose folder holds .done; DIR "
           "defaults to runs/<study name>. --set overrides a key\nof the study's "
           "base config for every job (e.g. --set layout.tp=2). A finished job whose config\n"
           "or labels changed since it ran is refused, naming the key; --rerun-changed "
           "moves its folder\n(and those of the finished jobs that depend on it) aside to "
           "<job>.old-N and runs it again.\nA study with \"source\" starts from a Hugging Face "
           "model folder and the TOFU files:\n--set source.model_dir=DIR --set "
           "source.tofu_dir=DIR (jobs/studies/tofu-llama.json). See jobs/studies/.\n");
}

/* 1: parsed, 0: --help, -1: a bad command line (err holds why). */
static int parse_args(int argc, char **argv, study_args *a, char *err, size_t errlen)
{
    memset(a, 0, sizeof *a);
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return 0;
        if (!strcmp(argv[i], "--dir") && i + 1 < argc)
            a->dir = argv[++i];
        else if (!strcmp(argv[i], "--dry-run"))
            a->dry = 1;
        else if (!strcmp(argv[i], "--rerun-changed"))
            a->rerun = 1;
        else if (!strcmp(argv[i], "--set") && i + 1 < argc && a->nover < 64)
            a->over[a->nover++] = argv[++i];
        else if (argv[i][0] == '-')
            return lethe_errf(err, errlen, "study: unknown option '%s'", argv[i]);
        else if (!a->file)
            a->file = argv[i];
        else
            return lethe_errf(err, errlen, "study: unexpected argument '%s'", argv[i]);
    }
    if (!a->file)
        return lethe_errf(err, errlen,
                          "study: no study file given (usage: lethe study "
                          "STUDY.json [--dir DIR] [--dry-run])");
    return 1;
}

/* Every rank expanded the same study into the same folder (an MPMD launch could give
 * each its own file or --set options): the jobs' names, configs and labels agree. */
static void agree(const study *s, const char *adir)
{
    size_t n = strlen(adir) + 2;
    for (int i = 0; i < s->njobs; i++)
        n += strlen(s->jobs[i].name) + strlen(s->jobs[i].job) + 4 +
             (s->jobs[i].config_json ? strlen(s->jobs[i].config_json) : 0) +
             (s->jobs[i].labels_json ? strlen(s->jobs[i].labels_json) : 0);
    char *text = malloc(n);
    int ok = text != NULL;
    lethe_check(MPI_COMM_WORLD, ok, 1, "study: out of memory");
    size_t o = (size_t)snprintf(text, n, "%s\n", adir);
    for (int i = 0; i < s->njobs; i++) {
        const study_job *j = &s->jobs[i];
        o += (size_t)snprintf(text + o, n - o, "%s %s\n%s\n%s\n", j->name, j->job,
                              j->config_json ? j->config_json : "",
                              j->labels_json ? j->labels_json : "");
    }
    job_agree_text("studies (expanded jobs differ)", text, 0, MPI_COMM_WORLD);
    free(text);
}

/* The study in its folder (absolute; default runs/<study name>), on every rank. */
static void load(const study_args *a, study *s, char *adir, size_t len)
{
    char err[1024] = "", cwd[400];
    if (!getcwd(cwd, sizeof cwd)) snprintf(cwd, sizeof cwd, ".");
    if (a->dir)
        snprintf(adir, len, "%s%s%s", a->dir[0] == '/' ? "" : cwd, a->dir[0] == '/' ? "" : "/",
                 a->dir);
    int ok = 1;
    /* the study name gives the default folder: parse once to learn it */
    if (!a->dir) {
        study t;
        ok = study_load_with(&t, a->file, "/", (char **)a->over, a->nover, err, sizeof err) == 0;
        if (ok) snprintf(adir, len, "%s/runs/%.120s", cwd, t.name), study_free(&t);
    }
    if (ok)
        ok = study_load_with(s, a->file, adir, (char **)a->over, a->nover, err, sizeof err) == 0;
    lethe_check(MPI_COMM_WORLD, ok, 2, "%s", err);
    agree(s, adir);
}

/* Rank 0: every job's folder and config (a finished job whose config changed is refused,
 * or moved aside with --rerun-changed), and a copy of the study file (study.json). */
static void write_folder(const study *s, const study_args *a, const char *adir, int rank)
{
    char err[1024] = "";
    int ok = 1;
    if (rank == 0) {
        ok = study_write_configs(s, a->rerun, NULL, err, sizeof err) == 0;
        char *text = ok ? study_read_text(a->file, "study", err, sizeof err) : NULL;
        if (text) {
            char p[1100], e[1200];
            snprintf(p, sizeof p, "%s/study.json", adir);
            study_write_text(p, text, "\n", e, sizeof e); /* a copy for the record only */
            free(text);
        }
    }
    lethe_check(MPI_COMM_WORLD, ok, 1, "%s", err);
}

static int run_job(const char *job, int argc, char **argv)
{
    if (!strcmp(job, "synth")) return job_synth(argc, argv);
    if (!strcmp(job, "train")) return job_train(argc, argv);
    if (!strcmp(job, "unlearn")) return job_unlearn(argc, argv);
    if (!strcmp(job, "eval")) return job_eval(argc, argv);
    if (!strcmp(job, "relearn")) return job_relearn(argc, argv);
    if (!strcmp(job, "report")) return job_report(argc, argv);
    if (!strcmp(job, "select")) return job_select(argc, argv);
    if (!strcmp(job, "convert") || !strcmp(job, "prepare")) { /* their flags in job.json */
        job_argfile af;
        job_argfile_open(&af, job, argc, argv);
        int rc =
            !strcmp(job, "convert") ? job_convert(af.argc, af.argv) : job_prepare(af.argc, af.argv);
        job_argfile_close(&af);
        return rc;
    }
    lethe_fatal("study: unknown job kind '%s'", job);
}

/* Job i on every rank: 0 when it finished, 1 when it stopped on the preemption signal. */
static int run_one(const study *s, int i, const char *adir, int rank, double t0)
{
    const study_job *j = &s->jobs[i];
    char cfg[1100], *args[2];
    if (j->config_json) {
        snprintf(cfg, sizeof cfg, "%.900s/%.120s/job.json", adir, j->name);
        args[0] = cfg;
    } else {
        args[0] = (char *)adir;
    }
    args[1] = NULL;
    if (rank == 0) {
        printf("\n==> [%d/%d] %s: lethe %s %s   (%.0f s into the study)\n", i + 1, s->njobs,
               j->name, j->job, args[0], MPI_Wtime() - t0);
        fflush(stdout);
    }
    int rc = run_job(j->job, 1, args);
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &rc, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD));
    lethe_check(MPI_COMM_WORLD, rc == 0, 1, "study: job '%s' failed (exit %d)", j->name, rc);
    /* a job that stopped on the preemption signal wrote its checkpoint and exited 0:
     * it is not done; the study stops here and a rerun resumes that job */
    int pre = session_preempt_pending();
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &pre, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD));
    if (pre) {
        if (rank == 0)
            printf("\nlethe study %s: preempted during job '%s'; run the study again to "
                   "resume it from its checkpoint\n",
                   s->name, j->name);
        return 1;
    }
    if (rank == 0) study_mark_done(s, i);
    return 0;
}

int job_study(int argc, char **argv)
{
    int rank;
    MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
    study_args a;
    char err[1024] = "";
    int ok = parse_args(argc, argv, &a, err, sizeof err);
    if (ok == 0) {
        if (rank == 0) study_usage();
        return 0;
    }
    lethe_check(MPI_COMM_WORLD, ok > 0, 2, "%s", err);
    study s;
    char adir[1024];
    load(&a, &s, adir, sizeof adir);
    /* one study per folder (its jobs lock their own sub-folders) */
    job_lock_folder(adir, "study", (long)time(NULL), MPI_COMM_WORLD);
    write_folder(&s, &a, adir, rank);
    int todo = 0;
    for (int i = 0; i < s.njobs; i++) todo += !study_job_done(&s, i);
    if (rank == 0)
        printf("lethe study %s: %d jobs (%d to run) in %s\n", s.name, s.njobs, todo, adir);
    double t0 = MPI_Wtime();
    for (int i = 0; i < s.njobs && !a.dry; i++) {
        int done = rank == 0 ? study_job_done(&s, i) : 0;
        MPI_CHECK(MPI_Bcast(&done, 1, MPI_INT, 0, MPI_COMM_WORLD));
        if (!done && run_one(&s, i, adir, rank, t0)) break;
    }
    if (rank == 0 && !a.dry && !session_preempt_pending())
        printf("\nlethe study %s: finished in %.1f s; report in %s/report/results.md\n", s.name,
               MPI_Wtime() - t0, adir);
    if (rank == 0) job_unlock_folder(adir);
    study_free(&s);
    return 0;
}
