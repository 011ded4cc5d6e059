/* io/text/prepare_bench.c — what the readers of published benchmarks share
 * (prepare_tofu.c: `--tofu DIR`, prepare_muse.c: `--muse DIR`): the walk over a file's
 * records (JSON lines, or one JSON array of records), the private folder next to the
 * output in which the rewritten lethe files are made, and the mapping of prepare_run's
 * messages from those private files back to the originals (line N of a JSON-lines
 * file, record N - 1 of an array). */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */
#include "../../mpi/fatal.h"
#include "../safefile.h"
#include "prepare_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int pr_json_records(const char *path, const char *bench, pr_record_fn fn, void *ctx, int *array,
                    long *records, char *err, size_t errlen)
{
    size_t len = 0;
    char what[64];
    snprintf(what, sizeof what, "prepare: %s input", bench);
    char *buf = safe_read(path, what, LETHE_MAX_JSONL, &len, err, errlen);
    if (!buf) return -1;
    size_t i = 0;
    while (i < len && (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\r' || buf[i] == '\n')) i++;
    *array = i < len && buf[i] == '[';
    *records = 0;
    int rc = 0;
    if (*array) {
        const char *stop = NULL;
        cJSON *all = cJSON_ParseWithLengthOpts(buf, len, &stop, 0);
        while (all && stop && stop < buf + len && strchr(" \t\r\n", *stop)) stop++;
        if (!cJSON_IsArray(all) || stop != buf + len)
            rc = lethe_errf(err, errlen,
                            "prepare: %s: '%s': not JSON (neither JSON lines nor a JSON array of "
                            "records)",
                            bench, path);
        long line = 1;
        for (cJSON *e = rc ? NULL : all->child; e && rc == 0; e = e->next, line++, (*records)++)
            rc = fn(ctx, line, e);
        cJSON_Delete(all);
    }
    long line = 0;
    for (char *s = buf, *end; rc == 0 && !*array && s < buf + len; s = end + 1) {
        end = memchr(s, '\n', (size_t)(buf + len - s));
        if (!end) end = buf + len;
        line++;
        size_t n = (size_t)(end - s), j = 0;
        while (j < n && (s[j] == ' ' || s[j] == '\t' || s[j] == '\r')) j++;
        if (j == n) { /* blank: the callback keeps the numbering */
            rc = fn(ctx, line, NULL);
            continue;
        }
        const char *stop = NULL;
        cJSON *rec = cJSON_ParseWithLengthOpts(s, n, &stop, 0);
        while (rec && stop && stop < end && (*stop == ' ' || *stop == '\t' || *stop == '\r'))
            stop++;
        if (!rec || stop != end)
            rc = lethe_errf(err, errlen,
                            "prepare: %s: '%s' line %ld: not a JSON object (one record per line)",
                            bench, path, line);
        else
            rc = fn(ctx, line, rec);
        cJSON_Delete(rec);
        (*records)++;
    }
    free(buf);
    if (rc == 0 && *records == 0)
        rc = lethe_errf(err, errlen, "prepare: %s: '%s': no records", bench, path);
    return rc;
}

int pr_bench_tmpdir(char *dir, size_t len, const char *output, const char *bench, char *err,
                    size_t errlen)
{
    const char *slash = strrchr(output, '/');
    if (slash)
        snprintf(dir, len, "%.*s/.lethe-%s-XXXXXX", (int)(slash - output), output, bench);
    else
        snprintf(dir, len, ".lethe-%s-XXXXXX", bench);
    if (!mkdtemp(dir)) {
        dir[0] = 0;
        return lethe_errf(err, errlen, "prepare: %s: cannot create a folder next to '%s'", bench,
                          output);
    }
    return 0;
}

int pr_bench_rename_err(char *err, size_t errlen, const char *tmp, const char *orig, int array)
{
    char *at = strstr(err, tmp);
    if (!at) return 0;
    char rest[1200];
    const char *after = at + strlen(tmp);
    if (array && strncmp(after, "' line ", 7) == 0) {
        long n = strtol(after + 7, (char **)&after, 10);
        snprintf(rest, sizeof rest, "' record %ld%s", n - 1, after);
    } else {
        snprintf(rest, sizeof rest, "%s", after);
    }
    *at = 0;
    char head[1200];
    snprintf(head, sizeof head, "%s", err);
    lethe_errf(err, errlen, "%s%s%s", head, orig, rest);
    return 1;
}

int pr_bench_rec_err(char *err, size_t errlen, const char *bench, const char *orig, int array,
                     long line, const char *msg)
{
    if (array)
        return lethe_errf(err, errlen, "prepare: %s: '%s' record %ld: %s", bench, orig, line - 1,
                          msg);
    return lethe_errf(err, errlen, "prepare: %s: '%s' line %ld: %s", bench, orig, line, msg);
}
