/* jobs/job_args.c — the command line of a job that takes flags rather than a config
 * (convert, prepare), kept in a JSON file: a study writes such a job's job.json as
 * {"args": ["--from", DIR, "--to", FILE, ...], "layout": {"dp": 1, "pp": 1, "tp": 2}},
 * and both runners of a study (`lethe study` on its ranks, `lethe slurm`'s batch
 * scripts) start it as `lethe JOB job.json`, like every other job. The args are the
 * flags after the job's name; each number of "layout" becomes `--set layout.K=V` (it
 * also tells `lethe slurm` how many ranks the job takes); the file's other keys
 * ("output", written by the study) are not read. A file without "args" is left to the
 * job (convert's CONFIG.json). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "../io/safefile.h"
#include "../mpi/fatal.h"
#include "jobs.h"

static int ends_json(const char *s)
{
    size_t n = strlen(s);
    return n > 5 && !strcmp(s + n - 5, ".json");
}

/* The args file's flags into f->argv (then argv[1..] of the command line); 0 when
 * argv[0] is no args file, 1 when it is, -1 with err set when it is malformed. */
static int expand(job_argfile *f, int argc, char **argv, char *err, size_t errlen)
{
    char *text = safe_read(argv[0], "job file", LETHE_MAX_JSON, NULL, err, errlen);
    if (!text) return 0; /* not readable: the job names the argument in its own words */
    f->json = cJSON_Parse(text);
    free(text);
    const cJSON *args = cJSON_GetObjectItemCaseSensitive(f->json, "args");
    if (!args) return 0;
    const cJSON *lay = cJSON_GetObjectItemCaseSensitive(f->json, "layout"), *a;
    int n = cJSON_GetArraySize(args) + 2 * cJSON_GetArraySize(lay) + argc;
    if (!cJSON_IsArray(args) || (lay && !cJSON_IsObject(lay)))
        return lethe_errf(err, errlen,
                          "'%s': \"args\" must be a list of strings and \"layout\" an object",
                          argv[0]);
    f->argv = calloc((size_t)n + 1, sizeof(char *));
    f->sets = calloc((size_t)cJSON_GetArraySize(lay) + 1, sizeof(char *));
    f->owned = 1;
    f->argc = 0;
    if (!f->argv || !f->sets) return lethe_errf(err, errlen, "'%s': out of memory", argv[0]);
    cJSON_ArrayForEach(a, args)
    {
        if (!cJSON_IsString(a))
            return lethe_errf(err, errlen, "'%s': \"args\" must be a list of strings", argv[0]);
        f->argv[f->argc++] = a->valuestring;
    }
    int ns = 0;
    cJSON_ArrayForEach(a, lay)
    {
        char b[160];
        if (!cJSON_IsNumber(a))
            return lethe_errf(err, errlen, "'%s': layout.%s must be a number", argv[0], a->string);
        snprintf(b, sizeof b, "layout.%.100s=%d", a->string, a->valueint);
        if (!(f->sets[ns] = strdup(b))) return lethe_errf(err, errlen, "out of memory");
        f->argv[f->argc++] = "--set";
        f->argv[f->argc++] = f->sets[ns++];
    }
    for (int i = 1; i < argc; i++) f->argv[f->argc++] = argv[i];
    return 1;
}

void job_argfile_open(job_argfile *f, const char *job, int argc, char **argv)
{
    memset(f, 0, sizeof *f);
    f->argc = argc;
    f->argv = argv;
    if (argc < 1 || !ends_json(argv[0]) || (strcmp(job, "convert") && strcmp(job, "prepare")))
        return;
    char err[1200] = "";
    int rc = expand(f, argc, argv, err, sizeof err);
    if (rc <= 0) { /* not an args file: the job reads its arguments as they are */
        job_argfile_close(f);
        f->argc = argc;
        f->argv = argv;
    }
    lethe_check(MPI_COMM_WORLD, rc >= 0, 2, "%s: %s", job, err);
}

void job_argfile_close(job_argfile *f)
{
    for (int i = 0; f->sets && f->sets[i]; i++) free(f->sets[i]);
    free(f->sets);
    if (f->owned) free(f->argv);
    cJSON_Delete(f->json);
    memset(f, 0, sizeof *f);
}
