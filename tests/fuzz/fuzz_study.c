/* tests/fuzz/fuzz_study.c — libFuzzer harness of the study parser (io/study.c): the
 * bytes are a study file, expanded by study_load (which writes nothing). A refused
 * study gives one line; an accepted one must be a DAG whose dependencies point at
 * earlier jobs, with unique names that stay inside the study folder. */
#include "fuzz_util.h"

#include "io/study.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    const char *path = fuzz_write("study.json", d, n);
    study s;
    char err[1024];
    if (study_load(&s, path, "/nonexistent/study-dir", err, sizeof err)) {
        fuzz_one_line("study_load", err);
        return 0;
    }
    for (int i = 0; i < s.njobs; i++) {
        const study_job *j = &s.jobs[i];
        if (!j->name[0] || strchr(j->name, '/') || !strcmp(j->name, "..") || !strcmp(j->name, "."))
            abort();
        for (int k = 0; k < j->ndeps; k++)
            if (j->deps[k] < 0 || j->deps[k] >= i) abort();
        for (int k = 0; k < i; k++)
            if (!strcmp(s.jobs[k].name, j->name)) {
                fprintf(stderr, "fuzz: two jobs named '%s'\n", j->name);
                abort();
            }
    }
    study_free(&s);
    return 0;
}
