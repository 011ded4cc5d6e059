/* tests/fuzz/fuzz_util.h — what the libFuzzer harnesses share.
 *
 * Parsers that take a path get the fuzzer's bytes written to a real file in a private
 * directory (made once per process, removed at exit), so the code under test reads
 * them exactly as it reads a user's file. fuzz_one_line aborts — a finding — when an
 * error message is empty or spans lines, since every user error must be one line. */
#ifndef LETHE_FUZZ_UTIL_H
#define LETHE_FUZZ_UTIL_H
#define _GNU_SOURCE /* mkdtemp */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char fuzz_dir[256];

static void fuzz_cleanup(void)
{
    if (!fuzz_dir[0]) return;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fuzz_dir);
    if (system(cmd)) fprintf(stderr, "fuzz: cannot remove %s\n", fuzz_dir);
}

/* A file of the private directory: "<dir>/<name>". */
static const char *fuzz_path(const char *name)
{
    static char p[4][512];
    static int k;
    if (!fuzz_dir[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(fuzz_dir, sizeof fuzz_dir, "%s/lethe-fuzz-XXXXXX", t && t[0] ? t : "/tmp");
        if (!mkdtemp(fuzz_dir)) {
            perror("fuzz: mkdtemp");
            abort();
        }
        atexit(fuzz_cleanup);
    }
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", fuzz_dir, name);
    return p[k];
}

/* Writes n bytes to the private file name; returns its path. */
static const char *fuzz_write(const char *name, const uint8_t *d, size_t n)
{
    const char *path = fuzz_path(name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(d, 1, n, f) != n || fclose(f)) {
        perror("fuzz: cannot write the input file");
        abort();
    }
    return path;
}

static void fuzz_one_line(const char *what, const char *err)
{
    if (!err[0] || strchr(err, '\n') || strchr(err, '\r')) {
        fprintf(stderr, "fuzz: %s: error message is empty or not one line: \"%s\"\n", what, err);
        abort();
    }
}

/* The i-th NUL-separated part of d[0..n) (parts past the last NUL are empty). */
static const uint8_t *fuzz_part(const uint8_t *d, size_t n, int i, size_t *len)
{
    size_t at = 0;
    for (int k = 0; k < i; k++) {
        const uint8_t *z = at < n ? memchr(d + at, 0, n - at) : NULL;
        if (!z) {
            *len = 0;
            return d + n;
        }
        at = (size_t)(z - d) + 1;
    }
    const uint8_t *z = at < n ? memchr(d + at, 0, n - at) : NULL;
    *len = z ? (size_t)(z - d) - at : n - at;
    return d + at;
}
#endif
