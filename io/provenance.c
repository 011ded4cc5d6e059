/* io/provenance.c — provenance.json: versions, layout, hosts, seeds, times, cost. */
#include "provenance.h"

#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cjson/cJSON.h>

#include "../mpi/fatal.h"
#include "safefile.h"

#ifndef LETHE_GIT
#include <lethe_git.h> /* generated at every build: the source's git describe */
#endif

char *openblas_get_config(void);
char *openblas_get_corename(void);

static void iso(char *buf, size_t n, time_t t)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* "cpu_seconds", "wall_seconds" and "phases" of a job that ended (3 decimals: ms). */
static void add_cost(cJSON *p, const provenance_cost *k)
{
    cJSON_AddNumberToObject(p, "cpu_seconds", round(k->cpu_seconds * 1e3) / 1e3);
    cJSON_AddNumberToObject(p, "wall_seconds", round(k->wall_seconds * 1e3) / 1e3);
    cJSON *ph = cJSON_AddObjectToObject(p, "phases");
    for (int i = 0; i < k->n_phases && i < PROVENANCE_MAX_PHASES; i++) {
        cJSON *o = cJSON_AddObjectToObject(ph, k->phase[i]);
        cJSON_AddNumberToObject(o, "cpu_seconds", round(k->phase_cpu[i] * 1e3) / 1e3);
        cJSON_AddNumberToObject(o, "wall_seconds", round(k->phase_wall[i] * 1e3) / 1e3);
    }
}

int provenance_write(const char *path, const char *job, const lethe_config *c, MPI_Comm world,
                     time_t started, time_t ended, const char *status,
                     const provenance_cost *cost, char *err, size_t errlen)
{
    int rank, size;
    MPI_CHECK(MPI_Comm_rank(world, &rank));
    MPI_CHECK(MPI_Comm_size(world, &size));
    char host[MPI_MAX_PROCESSOR_NAME] = "";
    int hl = 0;
    MPI_CHECK(MPI_Get_processor_name(host, &hl));
    char *hosts = rank == 0 ? lethe_calloc((size_t)size, MPI_MAX_PROCESSOR_NAME, "hosts") : NULL;
    MPI_CHECK(MPI_Gather(host, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, hosts, MPI_MAX_PROCESSOR_NAME,
                         MPI_CHAR, 0, world));
    if (rank != 0) return 0;
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "lethe_version", LETHE_VERSION);
    cJSON_AddStringToObject(p, "source_commit", LETHE_GIT);
    cJSON_AddStringToObject(p, "job", job);
    char *cfg = config_to_json(c);
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const char *q = cfg; q && *q; q++) h = (h ^ (unsigned char)*q) * 0x100000001b3ULL;
    free(cfg);
    char dig[40];
    snprintf(dig, sizeof dig, "fnv1a64:%016llx", (unsigned long long)h);
    cJSON_AddStringToObject(p, "config_digest", dig);
    cJSON *lay = cJSON_AddObjectToObject(p, "layout");
    cJSON_AddNumberToObject(lay, "dp", c->layout.dp);
    cJSON_AddNumberToObject(lay, "pp", c->layout.pp);
    cJSON_AddNumberToObject(lay, "tp", c->layout.tp);
    cJSON_AddNumberToObject(lay, "micro_batches", c->layout.micro_batches);
    cJSON_AddNumberToObject(p, "ranks", size);
    cJSON_AddNumberToObject(p, "blas_threads_per_rank", c->threads);
    cJSON *hs = cJSON_AddArrayToObject(p, "hosts");
    for (int r = 0; r < size; r++) {
        const char *nm = hosts + (size_t)r * MPI_MAX_PROCESSOR_NAME;
        int seen = 0;
        for (cJSON *e = hs->child; e; e = e->next) seen |= !strcmp(e->valuestring, nm);
        if (!seen) cJSON_AddItemToArray(hs, cJSON_CreateString(nm));
    }
    free(hosts);
    cJSON *sl = cJSON_AddObjectToObject(p, "slurm");
    const char *env[] = {"SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID",
                         "SLURM_JOB_NODELIST", "SLURM_RESTART_COUNT", NULL};
    for (const char **e = env; *e; e++) {
        const char *v = getenv(*e);
        cJSON_AddItemToObject(sl, *e, v ? cJSON_CreateString(v) : cJSON_CreateNull());
    }
    cJSON *lib = cJSON_AddObjectToObject(p, "libraries");
    char mpiv[MPI_MAX_LIBRARY_VERSION_STRING] = "";
    int ml = 0;
    MPI_CHECK(MPI_Get_library_version(mpiv, &ml));
    char *nl = strchr(mpiv, '\n');
    if (nl) *nl = 0;
    cJSON_AddStringToObject(lib, "mpi", mpiv);
    unsigned maj = 0, min = 0, rel = 0;
    H5get_libversion(&maj, &min, &rel);
    char v[64];
    snprintf(v, sizeof v, "%u.%u.%u (parallel)", maj, min, rel);
    cJSON_AddStringToObject(lib, "hdf5", v);
    cJSON_AddStringToObject(lib, "openblas", openblas_get_config());
    const char *forced = getenv("OPENBLAS_CORETYPE");
    snprintf(v, sizeof v, "%s%s%s", openblas_get_corename(), forced ? " forced by OPENBLAS_CORETYPE=" : " (auto)", forced ? forced : "");
    cJSON_AddStringToObject(lib, "openblas_core", v);
    cJSON_AddStringToObject(lib, "cjson", cJSON_Version());
    cJSON *sd = cJSON_AddObjectToObject(p, "seeds");
    snprintf(v, sizeof v, "%llu", (unsigned long long)c->model.init_seed);
    cJSON_AddStringToObject(sd, "model.init_seed", v);
    snprintf(v, sizeof v, "%llu", (unsigned long long)c->train.seed);
    cJSON_AddStringToObject(sd, "train.seed", v);
    snprintf(v, sizeof v, "%llu", (unsigned long long)c->data.seed);
    cJSON_AddStringToObject(sd, "data.seed", v);
    snprintf(v, sizeof v, "%llu", (unsigned long long)c->synth.seed);
    cJSON_AddStringToObject(sd, "synth.seed", v);
    char t[32];
    iso(t, sizeof t, started);
    cJSON_AddStringToObject(p, "started", t);
    if (ended > 0) {
        iso(t, sizeof t, ended);
        cJSON_AddStringToObject(p, "ended", t);
    } else {
        cJSON_AddNullToObject(p, "ended");
    }
    cJSON_AddStringToObject(p, "status", status);
    if (cost) add_cost(p, cost);
    char *txt = cJSON_Print(p);
    cJSON_Delete(p);
    if (!txt) {
        snprintf(err, errlen, "cannot write '%s': out of memory", path);
        return -1;
    }
    int rc = safe_write_text(path, txt, "\n", err, errlen);
    free(txt);
    if (rc) return -1;
    return 0;
}
