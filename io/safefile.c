/* io/safefile.c — opening files for writing (a temporary name created exclusively and
 * never through a link, fsync, rename, folder fsync; appends to regular files only) and
 * for reading (regular files only, never blocking on a FIFO, a size bound). The policy
 * is in safefile.h. Plain POSIX: the floors above io (analysis, slurm) use it too. */
#include "safefile.h"

#include "../mpi/fatal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *kind(mode_t m)
{
    return S_ISLNK(m)    ? "a symbolic link"
           : S_ISDIR(m)  ? "a folder"
           : S_ISFIFO(m) ? "a FIFO"
           : S_ISCHR(m)  ? "a character device"
           : S_ISBLK(m)  ? "a block device"
           : S_ISSOCK(m) ? "a socket"
           : S_ISREG(m)  ? "a regular file"
                         : "not a regular file";
}

int safe_check_target(const char *path, char *err, size_t errlen)
{
    struct stat st;
    if (lstat(path, &st) != 0) {
        if (errno == ENOENT) return 0;
        return lethe_errf(err, errlen, "cannot write '%s': %s", path, strerror(errno));
    }
    /* rename replaces a link itself, never its target: a link here is not followed */
    if (!S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode))
        return lethe_errf(err, errlen,
                          "cannot write '%s': it is %s, not a regular file (remove it)", path,
                          kind(st.st_mode));
    return 0;
}

/* The temporary name free for an exclusive create: a leftover regular file of a crashed
 * run is removed; anything else is refused, never followed. */
int safe_temp_clear(const char *tmp, char *err, size_t errlen)
{
    struct stat st;
    if (lstat(tmp, &st) != 0) return 0;
    if (!S_ISREG(st.st_mode) || st.st_nlink != 1)
        return lethe_errf(err, errlen,
                          "cannot create '%s': it is %s (lethe never writes through links or over "
                          "special files at its temporary names; remove it)",
                          tmp,
                          S_ISREG(st.st_mode) ? "a file with other hard links" : kind(st.st_mode));
    if (unlink(tmp) != 0 && errno != ENOENT)
        return lethe_errf(err, errlen, "cannot remove the leftover '%s': %s", tmp, strerror(errno));
    return 0;
}

static int create_excl(const char *tmp, char *err, size_t errlen)
{
    if (safe_temp_clear(tmp, err, errlen)) return -1;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
    if (fd < 0)
        lethe_errf(err, errlen, "cannot create '%s': %s%s", tmp, strerror(errno),
                   errno == EEXIST || errno == ELOOP
                       ? " (something was planted at lethe's temporary "
                         "name; remove it)"
                       : "");
    return fd;
}

int safe_temp(const char *tmp, char *err, size_t errlen)
{
    int fd = create_excl(tmp, err, errlen);
    if (fd < 0) return -1;
    close(fd);
    return 0;
}

static int sync_dir(const char *path, char *err, size_t errlen)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
        dir[1] = 0;
    else
        *slash = 0;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int ok = fd >= 0 && fsync(fd) == 0;
    if (!ok) lethe_errf(err, errlen, "syncing folder '%s' failed: %s", dir, strerror(errno));
    if (fd >= 0) close(fd);
    return ok ? 0 : -1;
}

int safe_commit(const char *tmp, const char *path, char *err, size_t errlen)
{
    struct stat st;
    if (lstat(tmp, &st) != 0 || !S_ISREG(st.st_mode)) {
        /* swapped for a link while it was written: the link is removed, not followed */
        lethe_errf(err, errlen,
                   "cannot write '%s': its temporary '%s' was replaced while it was "
                   "written",
                   path, tmp);
        unlink(tmp);
        return -1;
    }
    if (safe_check_target(path, err, errlen)) {
        unlink(tmp);
        return -1;
    }
    if (rename(tmp, path) != 0) {
        lethe_errf(err, errlen, "cannot rename '%s' to '%s': %s", tmp, path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return sync_dir(path, err, errlen);
}

int safe_create(safe_out *w, const char *path, char *err, size_t errlen)
{
    memset(w, 0, sizeof *w);
    int n = snprintf(w->path, sizeof w->path, "%s", path);
    if (n < 0 || (size_t)n >= sizeof w->path)
        return lethe_errf(err, errlen, "cannot write '%.200s...': path too long", path);
    snprintf(w->tmp, sizeof w->tmp, "%s.tmp", path);
    if (safe_check_target(path, err, errlen)) return -1;
    int fd = create_excl(w->tmp, err, errlen);
    if (fd < 0) return -1;
    if (!(w->f = fdopen(fd, "wb"))) {
        lethe_errf(err, errlen, "cannot write '%s': %s", w->tmp, strerror(errno));
        close(fd);
        unlink(w->tmp);
        return -1;
    }
    return 0;
}

void safe_abort(safe_out *w)
{
    if (w->f) fclose(w->f);
    w->f = NULL;
    if (w->tmp[0]) unlink(w->tmp);
}

int safe_finish(safe_out *w, char *err, size_t errlen)
{
    if (!w->f) return lethe_errf(err, errlen, "cannot write '%s': not open", w->path);
    const char *what = NULL;
    int e = 0;
    if (ferror(w->f) || fflush(w->f) != 0)
        what = "write", e = errno;
    else if (fsync(fileno(w->f)) != 0)
        what = "fsync", e = errno;
    if (fclose(w->f) != 0 && !what) what = "close", e = errno;
    w->f = NULL;
    if (what) {
        lethe_errf(err, errlen, "cannot write '%s': %s failed: %s", w->tmp, what,
                   e ? strerror(e) : "I/O error");
        unlink(w->tmp);
        return -1;
    }
    return safe_commit(w->tmp, w->path, err, errlen);
}

int safe_write(const char *path, const void *data, size_t len, char *err, size_t errlen)
{
    safe_out w;
    if (safe_create(&w, path, err, errlen)) return -1;
    if (len && fwrite(data, 1, len, w.f) != len) {
        lethe_errf(err, errlen, "cannot write '%s': %s", w.tmp, strerror(errno));
        safe_abort(&w);
        return -1;
    }
    return safe_finish(&w, err, errlen);
}

int safe_write_text(const char *path, const char *text, const char *tail, char *err, size_t errlen)
{
    safe_out w;
    if (safe_create(&w, path, err, errlen)) return -1;
    if (fputs(text, w.f) == EOF || (tail && *tail && fputs(tail, w.f) == EOF)) {
        lethe_errf(err, errlen, "cannot write '%s': %s", w.tmp, strerror(errno));
        safe_abort(&w);
        return -1;
    }
    return safe_finish(&w, err, errlen);
}

int safe_same_file(const char *a, const char *b)
{
    struct stat x, y;
    return stat(a, &x) == 0 && stat(b, &y) == 0 && x.st_dev == y.st_dev && x.st_ino == y.st_ino;
}

FILE *safe_append(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0666);
    struct stat st;
    if (fd < 0) {
        if (errno == ELOOP)
            lethe_errf(err, errlen,
                       "cannot append to '%s': it is a symbolic link (lethe never writes "
                       "through links; remove it)",
                       path);
        else if (errno == ENXIO && lstat(path, &st) == 0) /* a FIFO nobody reads */
            lethe_errf(err, errlen, "cannot append to '%s': it is %s, not a regular file", path,
                       kind(st.st_mode));
        else
            lethe_errf(err, errlen, "cannot append to '%s': %s", path, strerror(errno));
        return NULL;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        lethe_errf(err, errlen, "cannot append to '%s': it is %s, not a regular file", path,
                   kind(st.st_mode));
        close(fd);
        return NULL;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    FILE *f = fdopen(fd, "a+b"); /* readable too: a resumed log is cut back (jobs/loop.c) */
    if (!f) {
        lethe_errf(err, errlen, "cannot append to '%s': %s", path, strerror(errno));
        close(fd);
    }
    return f;
}

/* ---- reading ------------------------------------------------------------------------- */

/* "WHAT 'path': ", the start of each message; "" when the caller names the file itself */
static const char *pfx(char *buf, size_t n, const char *what, const char *path)
{
    buf[0] = 0;
    if (what && *what) snprintf(buf, n, "%s '%s': ", what, path);
    return buf;
}

static int open_regular(const char *path, const char *what, uint64_t max, uint64_t *size, char *err,
                        size_t errlen)
{
    char pre[4200];
    pfx(pre, sizeof pre, what, path);
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return lethe_errf(err, errlen, "%scannot open: %s", pre, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        lethe_errf(err, errlen, "%s%s", pre, strerror(errno));
        close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        lethe_errf(err, errlen, "%sit is %s, not a regular file", pre, kind(st.st_mode));
        close(fd);
        return -1;
    }
    if ((uint64_t)st.st_size > max) {
        lethe_errf(err, errlen, "%s%lld bytes, more than the bound of %llu bytes for this file",
                   pre, (long long)st.st_size, (unsigned long long)max);
        close(fd);
        return -1;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    if (size) *size = (uint64_t)st.st_size;
    return fd;
}

FILE *safe_open_read(const char *path, const char *what, uint64_t max, uint64_t *size, char *err,
                     size_t errlen)
{
    char pre[4200];
    int fd = open_regular(path, what, max, size, err, errlen);
    if (fd < 0) return NULL;
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        lethe_errf(err, errlen, "%s%s", pfx(pre, sizeof pre, what, path), strerror(errno));
        close(fd);
    }
    return f;
}

FILE *safe_open_stream(const char *path, const char *what, char *err, size_t errlen)
{
    char pre[4200];
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    if (fd < 0) {
        lethe_errf(err, errlen, "%scannot open: %s", pfx(pre, sizeof pre, what, path),
                   strerror(errno));
        return NULL;
    }
    if (fstat(fd, &st) != 0 ||
        !(S_ISREG(st.st_mode) || S_ISFIFO(st.st_mode) || S_ISDIR(st.st_mode))) {
        lethe_errf(err, errlen, "%sit is %s, not a regular file", pfx(pre, sizeof pre, what, path),
                   kind(st.st_mode));
        close(fd);
        return NULL;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        lethe_errf(err, errlen, "%s%s", pfx(pre, sizeof pre, what, path), strerror(errno));
        close(fd);
    }
    return f;
}

int safe_check_read(const char *path, const char *what, uint64_t max, char *err, size_t errlen)
{
    int fd = open_regular(path, what, max, NULL, err, errlen);
    if (fd < 0) return -1;
    close(fd);
    return 0;
}

char *safe_read(const char *path, const char *what, uint64_t max, size_t *len, char *err,
                size_t errlen)
{
    char pre[4200];
    uint64_t size = 0;
    int fd = open_regular(path, what, max, &size, err, errlen);
    if (fd < 0) return NULL;
    /* the size at the open bounds the read: a file that grows meanwhile is refused */
    char *t = malloc((size_t)size + 2);
    size_t n = 0;
    int bad = !t;
    while (!bad) {
        ssize_t r = read(fd, t + n, (size_t)size + 1 - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) bad = 1;
        if (r <= 0) break;
        n += (size_t)r;
        if (n > size) break;
    }
    close(fd);
    if (bad || n > size) {
        lethe_errf(err, errlen, "%s%s", pfx(pre, sizeof pre, what, path),
                   !t         ? "out of memory"
                   : n > size ? "it grew while being read"
                              : "read error");
        free(t);
        return NULL;
    }
    t[n] = 0;
    if (len) *len = n;
    return t;
}

long safe_getline(FILE *f, char **buf, size_t *cap, size_t max, const char *path, long line,
                  char *err, size_t errlen)
{
    size_t n = 0;
    int c;
    while ((c = getc_unlocked(f)) != EOF) {
        if (n + 2 > *cap) {
            size_t nc = *cap ? *cap * 2 : 4096;
            char *b = realloc(*buf, nc);
            if (!b) return lethe_errf(err, errlen, "'%s' line %ld: out of memory", path, line);
            *buf = b;
            *cap = nc;
        }
        (*buf)[n++] = (char)c;
        if (c == '\n') break;
        if (n > max)
            return lethe_errf(err, errlen, "'%s' line %ld: longer than the bound of %zu bytes",
                              path, line, max);
    }
    if (ferror(f)) return lethe_errf(err, errlen, "'%s' line %ld: read error", path, line);
    if (!n) return 0;
    (*buf)[n] = 0;
    return (long)n;
}
