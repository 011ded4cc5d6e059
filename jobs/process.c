/* jobs/process.c — what belongs to the lethe process rather than to one job: the
 * output-folder locks it holds (released at exit, and on SIGTERM or SIGINT, which also
 * leave the running job's provenance.json marked "terminated"; a kill -9 or MPI_Abort
 * leaves the lock to be taken over by the next job) and the preemption signal (it
 * outlives the job it interrupted). These are the only writable
 * file-scope variables of the jobs: a signal handler and an atexit hook can reach
 * nothing else. No job state lives here: a job's locks are dropped at session_close. */
#define _GNU_SOURCE /* F_OFD_SETLK */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../mpi/fatal.h"
#include "jobs.h"

/* ---- the output-folder lock ----------------------------------------------------------
 * output/.lock holds one line naming its holder; rank 0 holds an open-file-description
 * lock (F_OFD_SETLK) on it for the job's lifetime. The kernel (or the file server) drops
 * that lock when the process dies however it dies, so a lock that can be taken belongs
 * to a dead job (a crash, an MPI_Abort, a requeued Slurm job's previous run) and is taken
 * over with a notice. Where the file system has no such locks, the holder's line
 * decides: the same host and a dead pid, or the same Slurm job id (a requeued job runs
 * again under its id), is stale; anything else is refused. An OFD lock belongs to one
 * open, so a job whose folder a study of the same process already holds is refused too. */
#define LOCK_MAX 4
/* Process-wide on purpose: the locks this process holds (a study's own and its running
 * job's), which release_locks, registered with atexit, removes however the process ends
 * (lethe_fatal exits); job_unlock_folder drops a job's at session_close, so none passes
 * from one job of a study to the next. */
static struct {
    int fd;
    char path[1100];
} held_locks[LOCK_MAX];
static int n_held_locks;

static void write_record(int which);

static void release_locks(void)
{
    write_record(1);
    while (n_held_locks > 0) {
        n_held_locks--;
        unlink(held_locks[n_held_locks].path);
        close(held_locks[n_held_locks].fd);
    }
}

/* What a job that ends before session_close leaves behind: its provenance.json with
 * "status": "terminated" (SIGTERM or SIGINT: a scancel, mpirun ending the ranks after
 * another rank failed, Ctrl-C) or "failed" (an error that exits: release_locks), rendered
 * by session_output while the job runs (a handler can only write bytes), and no lock.
 * Process-wide on purpose, like the locks: a handler and an atexit hook read it. */
static struct {
    char path[1100], tmp[1110];
    char *text[2]; /* [0] terminated, [1] failed */
    volatile sig_atomic_t armed;
} term_record;

/* Async-signal-safe: the record under the temporary name (ours, io/safefile.h's PATH.tmp:
 * a link there is removed, never followed; created exclusively), then renamed. */
static void write_record(int which)
{
    if (!term_record.armed) return;
    term_record.armed = 0;
    const char *t = term_record.text[which];
    size_t len = strlen(t);
    unlink(term_record.tmp);
    int fd = open(term_record.tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
    if (fd < 0) return;
    /* no fsync: mpirun's SIGKILL may follow its SIGTERM within milliseconds; the rename
     * alone makes the record whole or absent for any reader */
    int ok = write(fd, t, len) == (ssize_t)len;
    close(fd);
    if (!ok || rename(term_record.tmp, term_record.path)) unlink(term_record.tmp);
}

static void on_terminate(int sig)
{
    int e = errno;
    /* the lock first: the cheapest, and what a next job needs */
    for (int i = 0; i < n_held_locks; i++) unlink(held_locks[i].path);
    write_record(0);
    /* no line of its own: after another rank's error (mpirun's SIGTERM) that rank's line
     * is the one line */
    errno = e;
    signal(sig, SIG_DFL);
    raise(sig);
}

static void catch_termination(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_terminate;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGTERM);
    sigaddset(&sa.sa_mask, SIGINT);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
}

void job_arm_terminated(const char *path, char *terminated, char *failed)
{
    job_disarm_terminated();
    snprintf(term_record.path, sizeof term_record.path, "%s", path);
    snprintf(term_record.tmp, sizeof term_record.tmp, "%s.tmp", path);
    term_record.text[0] = terminated;
    term_record.text[1] = failed;
    term_record.armed = 1;
}

void job_disarm_terminated(void)
{
    term_record.armed = 0;
    for (int i = 0; i < 2; i++) {
        free(term_record.text[i]);
        term_record.text[i] = NULL;
    }
}

/* One lock line: "lethe-lock host=H pid=P job=J started=UNIXTIME slurm_job=ID|-". */
typedef struct {
    char host[256], job[64], slurm[64];
    long pid, started;
} lock_line;

static int lock_parse(const char *line, lock_line *l)
{
    memset(l, 0, sizeof *l);
    snprintf(l->slurm, sizeof l->slurm, "-");
    return sscanf(line, "lethe-lock host=%255s pid=%ld job=%63s started=%ld slurm_job=%63s",
                  l->host, &l->pid, l->job, &l->started, l->slurm) >= 4
               ? 0
               : -1;
}

static void lock_holder_str(const char *line, char *buf, size_t len)
{
    lock_line l;
    if (lock_parse(line, &l)) {
        snprintf(buf, len, "an unreadable lock ('%.100s')", line);
        return;
    }
    char when[64] = "?";
    time_t t = (time_t)l.started;
    struct tm tm;
    if (gmtime_r(&t, &tm)) strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &tm);
    int sj = strcmp(l.slurm, "-") != 0;
    snprintf(buf, len, "lethe %s (host %s, pid %ld, started %s%s%s)", l.job, l.host, l.pid, when,
             sj ? ", Slurm job " : "", sj ? l.slurm : "");
}

/* Without OFD locks: is the holder named by `line` certainly gone? */
static int lock_line_stale(const char *line, const char *myhost)
{
    lock_line l;
    if (lock_parse(line, &l)) return 0;
    const char *me = getenv("SLURM_JOB_ID");
    if (me && *me && !strcmp(me, l.slurm)) return 1;
    return !strcmp(l.host, myhost) && l.pid > 0 && kill((pid_t)l.pid, 0) && errno == ESRCH;
}

static int lock_folder(const char *dir, const char *job, long started, char *err, size_t errlen)
{
    char path[1100], line[512] = "", host[256] = "?", holder[600];
    snprintf(path, sizeof path, "%s/.lock", dir);
    if (n_held_locks == LOCK_MAX) return lethe_errf(err, errlen, "more than %d output locks", LOCK_MAX);
    gethostname(host, sizeof host);
    host[sizeof host - 1] = 0;
    for (int attempt = 0; attempt < 10; attempt++) {
        int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0666);
        if (fd < 0)
            return lethe_errf(err, errlen, "output folder '%s': cannot create the lock '%s': %s",
                              dir, path, strerror(errno));
        ssize_t n = pread(fd, line, sizeof line - 1, 0);
        line[n > 0 ? n : 0] = 0;
        line[strcspn(line, "\n")] = 0;
        struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
        int locked = fcntl(fd, F_OFD_SETLK, &fl) == 0;
        int busy = !locked && (errno == EAGAIN || errno == EACCES);
        if (!locked && !busy && line[0] && !lock_line_stale(line, host)) busy = 1;
        if (busy) {
            close(fd);
            lock_holder_str(line, holder, sizeof holder);
            return lethe_errf(err, errlen, "output folder '%s' is in use by %s; wait for it to "
                              "end or choose another output.dir (lock file '%s')",
                              dir, holder, path);
        }
        /* the file may have been removed (a job ending) between our open and our lock */
        struct stat a, b;
        if (fstat(fd, &a) || stat(path, &b) || a.st_ino != b.st_ino || a.st_dev != b.st_dev) {
            close(fd);
            continue;
        }
        if (line[0]) {
            lock_holder_str(line, holder, sizeof holder);
            lethe_warn("output folder '%s': taking over the lock of %s, which is no longer "
                       "running", dir, holder);
        }
        const char *sj = getenv("SLURM_JOB_ID");
        int len = snprintf(line, sizeof line,
                           "lethe-lock host=%s pid=%ld job=%s started=%ld slurm_job=%s\n", host,
                           (long)getpid(), job, started, sj && *sj ? sj : "-");
        if (ftruncate(fd, 0) || pwrite(fd, line, (size_t)len, 0) != len) {
            int e = errno;
            unlink(path); /* ours while we hold it: an empty lock would name no one */
            close(fd);
            return lethe_errf(err, errlen, "output folder '%s': cannot write the lock '%s': %s",
                              dir, path, strerror(e));
        }
        if (!n_held_locks) atexit(release_locks), catch_termination();
        held_locks[n_held_locks].fd = fd;
        snprintf(held_locks[n_held_locks].path, sizeof held_locks[0].path, "%s", path);
        n_held_locks++;
        return 0;
    }
    return lethe_errf(err, errlen, "output folder '%s': the lock '%s' keeps changing", dir, path);
}

void job_lock_folder(const char *dir, const char *job, long started, MPI_Comm comm)
{
    int rank, ok = 1;
    char err[2048] = "";
    MPI_CHECK(MPI_Comm_rank(comm, &rank));
    if (rank == 0) ok = job_mkdir_p(dir, err, sizeof err) == 0 &&
                        lock_folder(dir, job, started, err, sizeof err) == 0;
    lethe_check(comm, ok, 1, "%s", err);
}

void job_unlock_folder(const char *dir)
{
    char path[1100];
    snprintf(path, sizeof path, "%s/.lock", dir);
    for (int i = n_held_locks - 1; i >= 0; i--) {
        if (strcmp(held_locks[i].path, path)) continue;
        unlink(path);
        close(held_locks[i].fd);
        held_locks[i] = held_locks[--n_held_locks];
        return;
    }
}

/* Slurm sends the warning signal (--signal=B:USR1@N, forwarded to the ranks by
 * the batch script) some time before the limit; the job finishes its step,
 * writes checkpoint.h5 and exits, and the requeued job resumes from it. Process-wide
 * on purpose: the handler can reach only a volatile sig_atomic_t, and the signal is
 * the process's: it outlives the job it interrupted, so that `lethe study` stops
 * before its next job (session_preempt_pending). */
static volatile sig_atomic_t preempt_signal;

static void on_preempt(int sig) { preempt_signal = sig; }

void session_catch_preemption(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_preempt;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
}

int session_preempt_pending(void) { return preempt_signal != 0; }

