/* tests/test_safefile.c — io/safefile.c, the one writer and the one reader, on real files
 * in a scratch folder (serial, no MPI): what each refuses, what it leaves behind, and
 * that a link's target never changes. Every refusal is checked for its message (the
 * path, and the kind of file or the bound).
 * usage: test_safefile DIR */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../io/safefile.h"
#include "check.h"

CHECK_COUNTERS;

static char dir[3000];

static const char *at(char *buf, const char *name)
{
    snprintf(buf, 3200, "%s/%s", dir, name);
    return buf;
}

static void put(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb"); /* the test's own fixtures, not lethe's writer */
    if (!f || fputs(text, f) < 0 || fclose(f)) {
        fprintf(stderr, "cannot write fixture '%s'\n", path);
        exit(2);
    }
}

/* the whole file equals text */
static int holds(const char *path, const char *text)
{
    char buf[256] = "";
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) fclose(f);
    buf[n] = 0;
    return f && !strcmp(buf, text);
}

static int is_kind(const char *path, mode_t kind)
{
    struct stat st;
    return lstat(path, &st) == 0 && (st.st_mode & S_IFMT) == kind;
}

static void test_writer(void)
{
    char out[3200], tmp[3200], victim[3200], err[8000];
    at(out, "out.json");
    at(tmp, "out.json.tmp");
    at(victim, "victim.txt");
    put(victim, "victim\n");

    /* a link at the temporary name: refused, named, its target untouched, left in place */
    CHECK(symlink(victim, tmp) == 0, "symlink: %s", strerror(errno));
    int rc = safe_write_text(out, "new\n", NULL, err, sizeof err);
    CHECK(rc == -1 && strstr(err, tmp) && strstr(err, "symbolic link"), "link at tmp: %d '%s'", rc,
          err);
    CHECK(holds(victim, "victim\n"), "the link's target changed");
    CHECK(is_kind(tmp, S_IFLNK) && access(out, F_OK) != 0, "the link was removed or out made");
    unlink(tmp);

    /* a FIFO and a folder at the temporary name: refused (no hang) */
    CHECK(mkfifo(tmp, 0600) == 0, "mkfifo");
    rc = safe_write_text(out, "new\n", NULL, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "FIFO"), "FIFO at tmp: %d '%s'", rc, err);
    unlink(tmp);
    CHECK(mkdir(tmp, 0700) == 0, "mkdir");
    rc = safe_write_text(out, "new\n", NULL, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "folder"), "folder at tmp: %d '%s'", rc, err);
    rmdir(tmp);

    /* a hard link to the victim at the temporary name: refused, the victim untouched */
    CHECK(link(victim, tmp) == 0, "link");
    rc = safe_write_text(out, "new\n", NULL, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "hard links"), "hard link at tmp: %d '%s'", rc, err);
    CHECK(holds(victim, "victim\n"), "the hard link's file changed");
    unlink(tmp);

    /* a crashed run's leftover temporary file is replaced; the final name is complete */
    put(tmp, "leftover partial");
    rc = safe_write_text(out, "{\"a\": 1}", "\n", err, sizeof err);
    CHECK(rc == 0 && holds(out, "{\"a\": 1}\n") && access(tmp, F_OK) != 0, "leftover: %d '%s'", rc,
          err);

    /* a link at the final name is replaced by the file, never written through */
    unlink(out);
    CHECK(symlink(victim, out) == 0, "symlink out");
    rc = safe_write_text(out, "fresh\n", NULL, err, sizeof err);
    CHECK(rc == 0 && is_kind(out, S_IFREG) && holds(out, "fresh\n"), "link at out: %d '%s'", rc,
          err);
    CHECK(holds(victim, "victim\n"), "the final link's target changed");

    /* a folder at the final name: refused before anything is written */
    char d[3200];
    at(d, "d.json");
    mkdir(d, 0700);
    rc = safe_write_text(d, "x", NULL, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "folder") && strstr(err, d), "folder at out: %d '%s'", rc, err);
    at(tmp, "d.json.tmp");
    CHECK(access(tmp, F_OK) != 0, "a temporary was left for a refused write");
    rmdir(d);

    /* abort: the temporary is gone, the final name unchanged */
    safe_out w;
    CHECK(safe_create(&w, out, err, sizeof err) == 0, "create: %s", err);
    fputs("half", w.f);
    safe_abort(&w);
    at(tmp, "out.json.tmp");
    CHECK(access(tmp, F_OK) != 0 && holds(out, "fresh\n"), "abort left something");

    /* h5-style: safe_temp then safe_commit; a temporary swapped for a link is refused */
    CHECK(safe_temp(tmp, err, sizeof err) == 0, "safe_temp: %s", err);
    unlink(tmp);
    CHECK(symlink(victim, tmp) == 0, "symlink");
    rc = safe_commit(tmp, out, err, sizeof err);
    CHECK(rc == -1 && holds(out, "fresh\n") && access(tmp, F_OK) != 0 && holds(victim, "victim\n"),
          "swapped temporary: %d '%s'", rc, err);
}

static void test_append(void)
{
    char log[3200], victim[3200], fifo[3200], err[8000];
    at(log, "bench.jsonl");
    at(victim, "victim.txt");
    at(fifo, "fifo.jsonl");
    CHECK(symlink(victim, log) == 0, "symlink");
    FILE *f = safe_append(log, err, sizeof err);
    CHECK(!f && strstr(err, "symbolic link") && strstr(err, log), "append through a link: '%s'",
          err);
    CHECK(holds(victim, "victim\n"), "the appended link's target changed");
    unlink(log);
    CHECK(mkfifo(fifo, 0600) == 0, "mkfifo");
    f = safe_append(fifo, err, sizeof err);
    CHECK(!f && strstr(err, "FIFO"), "append to a FIFO: '%s'", err);
    f = safe_append(log, err, sizeof err);
    CHECK(f && fputs("a\n", f) >= 0 && fclose(f) == 0, "append: %s", err);
    f = safe_append(log, err, sizeof err);
    CHECK(f && fputs("b\n", f) >= 0 && fclose(f) == 0, "append again: %s", err);
    CHECK(holds(log, "a\nb\n"), "appends do not add up");
}

static void test_reader(void)
{
    char p[3200], fifo[3200], err[8000];
    at(p, "in.json");
    at(fifo, "fifo.jsonl");
    put(p, "0123456789");
    size_t n = 0;
    char *t = safe_read(p, "config", 10, &n, err, sizeof err);
    CHECK(t && n == 10 && !strcmp(t, "0123456789"), "read at the bound: %s", err);
    free(t);
    t = safe_read(p, "config", 9, &n, err, sizeof err);
    CHECK(!t && strstr(err, "10 bytes") && strstr(err, "bound of 9") && strstr(err, p),
          "over the bound: '%s'", err);
    t = safe_read(fifo, "labels", 100, &n, err, sizeof err); /* must not block */
    CHECK(!t && strstr(err, "FIFO") && strstr(err, "labels '"), "FIFO: '%s'", err);
    t = safe_read("/dev/zero", "tokenizer file", 100, &n, err, sizeof err);
    CHECK(!t && strstr(err, "character device"), "/dev/zero: '%s'", err);
    t = safe_read(dir, "input", 100, &n, err, sizeof err);
    CHECK(!t && strstr(err, "folder"), "folder: '%s'", err);
    CHECK(safe_check_read(fifo, "reference", 100, err, sizeof err) == -1 && strstr(err, "FIFO"),
          "check FIFO: '%s'", err);
    /* the config's stream reader: a FIFO without a writer reads as empty, never blocks */
    FILE *f = safe_open_stream(fifo, "config", err, sizeof err);
    CHECK(f && fgetc(f) == EOF, "config FIFO: %s", err);
    if (f) fclose(f);
    f = safe_open_stream("/dev/zero", "config", err, sizeof err);
    CHECK(!f && strstr(err, "character device"), "config /dev/zero: '%s'", err);

    /* one line over the bound */
    put(p, "short\nlonger line\n");
    f = safe_open_read(p, "input", 100, NULL, err, sizeof err);
    char *buf = NULL;
    size_t cap = 0;
    long l1 = f ? safe_getline(f, &buf, &cap, 8, p, 1, err, sizeof err) : -2;
    long l2 = f ? safe_getline(f, &buf, &cap, 8, p, 2, err, sizeof err) : -2;
    CHECK(l1 == 6 && l2 == -1 && strstr(err, "line 2") && strstr(err, "bound of 8"),
          "line bound: %ld %ld '%s'", l1, l2, err);
    if (f) fclose(f);
    free(buf);

    char q[3200];
    at(q, "in-link.json");
    symlink(p, q);
    CHECK(safe_same_file(p, q) && !safe_same_file(p, fifo), "same file");
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: test_safefile DIR\n");
        return 2;
    }
    snprintf(dir, sizeof dir, "%s/safefile.XXXXXX", argv[1]);
    if (!mkdtemp(dir)) {
        fprintf(stderr, "cannot make a folder under '%s'\n", argv[1]);
        return 2;
    }
    test_writer();
    test_append();
    test_reader();
    char cmd[3200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) fprintf(stderr, "cannot remove '%s'\n", dir);
    printf("safefile: %d/%d checks passed\n", checks - failures, checks);
    return failures ? 1 : 0;
}
