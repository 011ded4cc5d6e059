/* jobs/jobs.h — the jobs behind `lethe <job>` and how every job opens.
 *
 * session_open: parse the config (with --set overrides) on every rank and agree
 * on the verdict (exit 2 with one line on a bad config), build the grid from the
 * layout (exit 2 if it does not match the rank count or the model), set the BLAS
 * threads, build and initialise the model, create the output folder and write
 * the resolved config there. Nothing heavy happens before all checks pass. */
#ifndef LETHE_JOBS_H
#define LETHE_JOBS_H

#include "../io/config.h"
#include "../model/step.h"
#include "../model/transformer.h"
#include "../mpi/grid.h"

typedef struct {
    const char *job;
    const char *config_path;
    lethe_config cfg;
    lethe_grid grid;
    lethe_model model;
    int have_model;
} lethe_session;

/* argv: the arguments after the job name. Parses the config on every rank and
 * builds the grid; exits (code 2) on bad usage, config or layout. */
void session_open(lethe_session *s, const char *job, int argc, char **argv);
/* Creates the output folder and writes the resolved config there. Jobs call it
 * after every check has passed, so a refused job leaves nothing behind. */
void session_output(lethe_session *s);
/* Checks the layout against the model and batch (exit 2 naming the numbers), then
 * creates and initialises this rank's shard. */
void session_build_model(lethe_session *s, int global_batch, int seq_len);
void session_close(lethe_session *s);
/* Path inside the output folder. */
void session_path(const lethe_session *s, const char *name, char *buf, size_t len);
/* The OpenBLAS core in use and whether OPENBLAS_CORETYPE forces it: "Cooperlake (auto)". */
void blas_core_string(char *buf, size_t len);

int job_train(int argc, char **argv);
int job_bench(int argc, char **argv);
int job_unlearn(int argc, char **argv);

#endif
