/* jobs/output_guard.c — what a job may do with an output folder that already holds a
 * run's results, decided by that folder's provenance.json (the record every job writes
 * first as "running" and last as "completed"):
 *   - another job's record (any status): refused, with one line naming that job, before
 *     anything is written (its config.json and provenance.json would be replaced);
 *   - this job's completed run, started again (a re-run, not a resume: a completed run
 *     leaves no checkpoint): its final results are renamed NAME.previous first, so a
 *     re-run that fails never leaves the old results beside the new config.json;
 *   - this job's unfinished run (running, preempted, failed): resumed or overwritten as
 *     before.
 * relearn (finished points are kept and skipped), bench (bench.jsonl accumulates) and
 * study (its own .done markers) keep their results on a re-run. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cjson/cJSON.h>

#include "../io/safefile.h"
#include "../mpi/fatal.h"
#include "jobs.h"

/* The final results of a job that a re-run replaces. */
static const struct {
    const char *job, *files[4];
} results[] = {
    {"train", {"model.h5", "train_log.jsonl"}},
    {"unlearn", {"model.h5", "unlearn_log.jsonl", "npo_reference.jsonl"}},
    {"eval", {"eval.h5", "summary.json"}},
    {"synth", {"synth.json"}},
};

static int set_aside(const char *dir, const char *job, char *err, size_t errlen)
{
    for (size_t j = 0; j < sizeof results / sizeof results[0]; j++) {
        if (strcmp(results[j].job, job)) continue;
        for (int i = 0; i < 4 && results[j].files[i]; i++) {
            char from[1200], to[1300];
            snprintf(from, sizeof from, "%s/%s", dir, results[j].files[i]);
            snprintf(to, sizeof to, "%s.previous", from);
            struct stat st;
            if (lstat(from, &st) != 0) continue;
            if (rename(from, to) != 0)
                return lethe_errf(err, errlen,
                                  "output folder '%s': cannot set the previous "
                                  "run's '%s' aside as '%s': %s",
                                  dir, from, to, strerror(errno));
            printf("lethe %s: a new run in '%s': the completed run's %s is kept as %s\n", job, dir,
                   results[j].files[i], to);
        }
    }
    return 0;
}

int job_claim_folder(const char *dir, const char *job, char *err, size_t errlen)
{
    char path[1100], e[1400];
    struct stat st;
    snprintf(path, sizeof path, "%s/provenance.json", dir);
    if (lstat(path, &st) != 0) return 0; /* a fresh folder */
    char *text = safe_read(path, "provenance", LETHE_MAX_JSON, NULL, e, sizeof e);
    if (!text)
        return lethe_errf(err, errlen,
                          "output folder '%s' holds an unreadable record (%s); "
                          "choose another output.dir",
                          dir, e);
    cJSON *p = cJSON_Parse(text);
    free(text);
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(p, "job");
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(p, "status");
    int rc = 0;
    if (!cJSON_IsString(j) || !cJSON_IsString(s)) {
        rc = lethe_errf(err, errlen,
                        "output folder '%s': '%s' is not a lethe record (no job "
                        "and status); choose another output.dir",
                        dir, path);
    } else if (strcmp(j->valuestring, job)) {
        char jb[80], sb[80];
        rc = lethe_errf(err, errlen,
                        "output folder '%s' holds the results of lethe %s (status "
                        "%s in '%s'); a lethe %s there would replace them: choose another "
                        "output.dir",
                        dir, lethe_shown(j->valuestring, jb, sizeof jb, 0),
                        lethe_shown(s->valuestring, sb, sizeof sb, 0), path, job);
    } else if (!strcmp(s->valuestring, "completed")) {
        rc = set_aside(dir, job, err, errlen);
    }
    cJSON_Delete(p);
    return rc;
}
