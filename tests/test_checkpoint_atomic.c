/* tests/test_checkpoint_atomic.c — the --atomic DIR mode of test_checkpoint (serial, no
 * mpirun, registered as checkpoint.atomic): a save killed mid-write (file-size limit, in a
 * child forked before MPI_Init) leaves the previous checkpoint intact and loadable; a save
 * whose temporary file cannot be created (target directory not writable, missing, or the
 * temporary name taken by a directory or a symbolic link) fails with a clean message and
 * leaves the existing checkpoint byte for byte unchanged; a stale temporary file from a
 * crash is overwritten by the next save. */
#define _GNU_SOURCE /* syscall() for capget/capset */
#include "io/checkpoint.h"
#include "model/params.h"
#include "mpi/comm.h"
#include "mpi/grid.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include "check.h"
#include "test_checkpoint.h"

/* ---- atomicity (serial) ---------------------------------------------------------------- */

static int save_one(const char *path, int64_t step, char *err, size_t len)
{
    lethe_grid g;
    if (grid_create(&g, MPI_COMM_WORLD, 1, 1, 1, err, len)) return -1;
    lethe_params t;
    build_for_grid(&t, &base_cfg, &g);
    fill_expected(&t);
    lethe_ckpt_meta m;
    make_meta(&m, step, 0);
    int rc = ckpt_save(path, &t, &g, &m, err, len);
    params_free(&t);
    grid_free(&g);
    return rc;
}

/* Loads and checks path; returns its step, or -1. */
static int64_t load_one(const char *path)
{
    char err[1024];
    lethe_grid g;
    if (grid_create(&g, MPI_COMM_WORLD, 1, 1, 1, err, sizeof err)) return -1;
    lethe_params t, want;
    build_for_grid(&t, &base_cfg, &g);
    build_for_grid(&want, &base_cfg, &g);
    fill_expected(&want);
    fill_garbage(&t);
    lethe_ckpt_meta m;
    memset(&m, 0, sizeof m);
    int rc = ckpt_load(path, &t, &g, &m, 1, err, sizeof err);
    CHECK(rc == 0, "load '%s': %s", path, err);
    int bad = rc == 0 ? compare_buffers(&t, &want, 3, path) : 1;
    int64_t step = rc == 0 && !bad ? m.step : -1;
    ckpt_meta_free(&m);
    params_free(&t);
    params_free(&want);
    grid_free(&g);
    return step;
}

static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)len + 1);
    *n = fread(b, 1, (size_t)len, f);
    fclose(f);
    return b;
}

static int same_bytes(const char *path, const char *ref, size_t nref)
{
    size_t n = 0;
    char *b = slurp(path, &n);
    int same = b && n == nref && !memcmp(b, ref, n);
    free(b);
    return same;
}

/* Root passes permission checks through CAP_DAC_OVERRIDE; dropping it (and its
 * relatives) from the effective set makes a 0555 directory read-only for us too. */
static int set_dac_caps(int on)
{
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    if (syscall(SYS_capget, &hdr, data)) return -1;
    uint32_t bits = (1u << CAP_DAC_OVERRIDE) | (1u << CAP_DAC_READ_SEARCH) | (1u << CAP_FOWNER);
    if (on)
        data[0].effective |= bits & data[0].permitted;
    else
        data[0].effective &= ~bits;
    return (int)syscall(SYS_capset, &hdr, data);
}

int run_atomic(const char *base)
{
    char dir[600], path[1200], tmp[1300], sub[1200], err[1024];
    snprintf(dir, sizeof dir, "%s/ckpt-atomic-XXXXXX", base);
    if (!mkdtemp(dir)) {
        fprintf(stderr, "mkdtemp in %s: %s\n", base, strerror(errno));
        return 1;
    }
    snprintf(path, sizeof path, "%s/ckpt.h5", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);

    /* 1. The previous checkpoint (step 1), then a save killed mid-write: a child whose
     *    file-size limit (100 KiB, the file needs ~400 KiB) makes a data write fail. Both
     *    run before this process initialises MPI (fork after MPI_Init is unsafe). */
    for (int stage = 0; stage < 2; stage++) {
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) {
            comm_init(NULL, NULL);
            if (stage == 1) {
                struct rlimit rl = {100 << 10, 100 << 10};
                signal(SIGXFSZ, SIG_IGN);
                setrlimit(RLIMIT_FSIZE, &rl);
            }
            int rc = save_one(path, stage + 1, err, sizeof err);
            if (rc) fprintf(stderr, "child save returned: %s\n", err);
            MPI_Finalize();
            _exit(rc ? 3 : 0);
        }
        int st = 0;
        waitpid(pid, &st, 0);
        int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        if (stage == 0) CHECK(code == 0, "initial save failed (exit %d)", code);
        if (stage == 1) {
            CHECK(code != 0, "the save under a 100 KiB file-size limit succeeded");
            printf("  save killed mid-write: child exit status %d\n", code);
        }
    }

    comm_init(NULL, NULL);
    int64_t step = load_one(path);
    CHECK(step == 1, "after the failed save, '%s' holds step %lld, expected 1", path,
          (long long)step);
    CHECK(ckpt_verify(path, MPI_COMM_WORLD, NULL, err, sizeof err) == 0, "verify: %s", err);
    size_t nref = 0;
    char *ref = slurp(path, &nref);
    CHECK(ref != NULL, "cannot read '%s'", path);

    /* 2. The temporary name is taken by a directory. */
    unlink(tmp);
    mkdir(tmp, 0755);
    int rc = save_one(path, 2, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "cannot create") && strstr(err, tmp),
          "save with '%s' a directory: rc %d, '%s'", tmp, rc, err);
    printf("  temporary name is a directory -> %s\n", err);
    rmdir(tmp);
    CHECK(same_bytes(path, ref, nref), "'%s' changed", path);

    /* 2b. The temporary name is a symbolic link to another file: refused, the link's
     * target untouched. */
    {
        char victim[1400];
        snprintf(victim, sizeof victim, "%s/victim.txt", dir);
        FILE *vf = fopen(victim, "w");
        CHECK(vf && fputs("keep me\n", vf) >= 0 && fclose(vf) == 0, "cannot write '%s'", victim);
        CHECK(symlink(victim, tmp) == 0, "cannot link '%s'", tmp);
        rc = save_one(path, 2, err, sizeof err);
        CHECK(rc == -1 && strstr(err, "is a symbolic link") && strstr(err, tmp),
              "save with '%s' a symbolic link: rc %d, '%s'", tmp, rc, err);
        printf("  temporary name is a symbolic link -> %s\n", err);
        CHECK(same_bytes(victim, "keep me\n", 8), "the link's target '%s' changed", victim);
        unlink(tmp);
        unlink(victim);
        CHECK(same_bytes(path, ref, nref), "'%s' changed", path);
    }

    /* 3. The target directory is not writable. */
    snprintf(sub, sizeof sub, "%s/ro", dir);
    mkdir(sub, 0755);
    char rpath[1400];
    snprintf(rpath, sizeof rpath, "%s/ckpt.h5", sub);
    CHECK(save_one(rpath, 1, err, sizeof err) == 0, "save into '%s': %s", sub, err);
    size_t nro = 0;
    char *ro = slurp(rpath, &nro);
    chmod(sub, 0555);
    int dropped = geteuid() == 0 ? set_dac_caps(0) == 0 : 1;
    CHECK(dropped, "cannot drop CAP_DAC_OVERRIDE to make '%s' read-only for root", sub);
    if (dropped) {
        rc = save_one(rpath, 2, err, sizeof err);
        CHECK(rc == -1 && strstr(err, "Permission denied"), "save into read-only '%s': rc %d, '%s'",
              sub, rc, err);
        printf("  read-only directory -> %s\n", err);
        if (geteuid() == 0) set_dac_caps(1);
    }
    chmod(sub, 0755);
    CHECK(ro && same_bytes(rpath, ro, nro), "'%s' changed", rpath);
    free(ro);

    /* 4. The target directory does not exist. */
    snprintf(rpath, sizeof rpath, "%s/missing/ckpt.h5", dir);
    rc = save_one(rpath, 2, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "No such file or directory"), "save into a missing folder: '%s'",
          err);
    printf("  missing directory -> %s\n", err);

    /* 5. A stale temporary file from a crash is simply overwritten. */
    FILE *f = fopen(tmp, "w");
    fputs("half a checkpoint", f);
    fclose(f);
    CHECK(load_one(path) == 1, "the stale temporary file disturbed the load");
    CHECK(save_one(path, 3, err, sizeof err) == 0, "save over a stale tmp: %s", err);
    struct stat st;
    CHECK(stat(tmp, &st) != 0, "'%s' still exists after a successful save", tmp);
    CHECK(load_one(path) == 3, "the new checkpoint does not hold step 3");
    free(ref);

    if (!failures) {
        char cmd[1200];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    }
    printf("checkpoint.atomic: %d failures\n", failures);
    MPI_Finalize();
    return failures ? 1 : 0;
}
