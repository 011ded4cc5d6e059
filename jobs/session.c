/* jobs/session.c — config -> grid -> model: how every job opens. */
#define _GNU_SOURCE /* F_OFD_SETLK */
#include <cblas.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include "../io/checkpoint.h"
#include "../io/provenance.h"
#include "../io/safefile.h"
#include "../mpi/comm.h"
#include "../mpi/fatal.h"
#include "jobs.h"

void openblas_set_num_threads(int);
char *openblas_get_corename(void);

#define MAX_OVERRIDES 256

void blas_core_string(char *buf, size_t len)
{
    const char *forced = getenv("OPENBLAS_CORETYPE");
    snprintf(buf, len, "%s (%s%s)", openblas_get_corename(),
             forced && *forced ? "forced by OPENBLAS_CORETYPE=" : "auto",
             forced && *forced ? forced : "");
}

/* SIMD width of an OpenBLAS core's kernels: 3 AVX-512, 2 AVX2, 1 AVX, 0 older. */
static int blas_core_tier(const char *core)
{
    static const char *const t3[] = {"skylakex", "cooperlake", "sapphirerapids"};
    static const char *const t2[] = {"haswell", "zen", "excavator"};
    static const char *const t1[] = {"sandybridge", "bulldozer", "piledriver", "steamroller"};
    for (int i = 0; i < 4; i++) {
        if (i < 3 && !strcasecmp(core, t3[i])) return 3;
        if (i < 3 && !strcasecmp(core, t2[i])) return 2;
        if (!strcasecmp(core, t1[i])) return 1;
    }
    return 0;
}

/* The widest kernels OpenBLAS picks for this CPU on its own (same tiers). */
static int cpu_tier(void)
{
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq"))
        return 3;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 2;
    if (__builtin_cpu_supports("avx")) return 1;
#endif
    return 0;
}

/* Rank 0 of every model job: the OpenBLAS core and threads in force, and a warning
 * when OPENBLAS_CORETYPE forces narrower kernels than OpenBLAS picks for this CPU
 * (Haswell on an AVX-512 machine halves sgemm speed). */
static void session_report_blas(const lethe_session *s)
{
    if (s->grid.rank != 0) return;
    char core[128];
    blas_core_string(core, sizeof core);
    printf("lethe %s: OpenBLAS core %s, %d BLAS thread%s per rank, %d rank%s\n", s->job, core,
           s->cfg.threads, s->cfg.threads > 1 ? "s" : "", s->grid.size, s->grid.size > 1 ? "s" : "");
    fflush(stdout);
    static const char *const isa[] = {"SSE", "AVX", "AVX2", "AVX-512"};
    const char *forced = getenv("OPENBLAS_CORETYPE");
    int ft = blas_core_tier(openblas_get_corename()), ct = cpu_tier();
    if (forced && *forced && ft < ct)
        lethe_warn("OPENBLAS_CORETYPE=%s forces %s kernels on a CPU with %s, slower than the "
                   "core OpenBLAS detects (Haswell on AVX-512 halves sgemm): unset "
                   "OPENBLAS_CORETYPE",
                   forced, isa[ft], isa[ct]);
}

int job_mkdir_p(const char *path, char *err, size_t errlen)
{
    char tmp[1024];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp) {
        snprintf(err, errlen, "output folder path too long: '%s'", path);
        return -1;
    }
    for (char *p = tmp + 1;; p++) {
        char c = *p;
        if (c == '/' || c == 0) {
            *p = 0;
            /* 0777: the user's umask decides (main adds o-w to it) */
            if (mkdir(tmp, 0777) && errno != EEXIST) {
                snprintf(err, errlen, "cannot create output folder '%.700s': %s", tmp,
                         strerror(errno));
                return -1;
            }
            struct stat st;
            if (stat(tmp, &st) || !S_ISDIR(st.st_mode)) {
                snprintf(err, errlen, "output path '%.700s' exists and is not a folder", tmp);
                return -1;
            }
            *p = c;
        }
        if (!c) break;
    }
    return 0;
}

void session_path(const lethe_session *s, const char *name, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s", s->cfg.output.dir, name);
}

static void fault_parse(job_fault *fault);

/* This process's CPU seconds so far (user + system): every rank of a study runs its jobs
 * in one process, so a job's cost is a difference of two readings. */
static double cpu_now(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru)) return 0;
    return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec +
           (double)ru.ru_stime.tv_sec + 1e-6 * (double)ru.ru_stime.tv_usec;
}

const char *session_phase(lethe_session *s, const char *name)
{
    session_clock *k = &s->clock;
    if (!k->on) return name;
    double c = cpu_now(), w = MPI_Wtime();
    const char *prev = k->name[k->cur];
    k->phase_cpu[k->cur] += c - k->cpu;
    k->phase_wall[k->cur] += w - k->wall;
    k->cpu = c, k->wall = w;
    int i = 0;
    while (i < k->n && strcmp(k->name[i], name)) i++;
    if (i == k->n && k->n < PROVENANCE_MAX_PHASES) k->name[k->n++] = name;
    k->cur = i < k->n ? i : k->n - 1;
    return prev;
}

/* Collective over the session's world: the cost so far, every rank's CPU seconds summed
 * onto rank 0 (the phases by index: every rank changes phase at the same calls). */
static void session_cost(lethe_session *s, provenance_cost *pc)
{
    session_clock *k = &s->clock;
    session_phase(s, k->name[k->cur]); /* the running phase's time so far */
    double v[1 + PROVENANCE_MAX_PHASES] = {k->cpu - k->cpu0};
    for (int i = 0; i < k->n; i++) v[1 + i] = k->phase_cpu[i];
    int root = s->grid.rank == 0;
    MPI_CHECK(MPI_Reduce(root ? MPI_IN_PLACE : v, root ? v : NULL, 1 + PROVENANCE_MAX_PHASES,
                         MPI_DOUBLE, MPI_SUM, 0, s->grid.world));
    memset(pc, 0, sizeof *pc);
    pc->cpu_seconds = v[0];
    pc->wall_seconds = k->wall - k->wall0;
    pc->n_phases = k->n;
    for (int i = 0; i < k->n; i++) {
        pc->phase[i] = k->name[i];
        pc->phase_cpu[i] = v[1 + i];
        pc->phase_wall[i] = k->phase_wall[i];
    }
}

/* session_read_config with a base config whose model and hf keys the job takes (NULL:
 * none); with a base, the config file may be left out. */
static int read_config_base(lethe_session *s, const char *job, int argc, char **argv,
                            const char *base, const char *base_origin, char *err, size_t errlen)
{
    char *over[MAX_OVERRIDES];
    int nover = 0;
    session_clock *k = &s->clock; /* the job's cost counts from here */
    memset(k, 0, sizeof *k);
    k->on = k->n = 1;
    k->name[0] = "start-up";
    k->cpu0 = k->cpu = cpu_now();
    k->wall0 = k->wall = MPI_Wtime();
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--set") || !strncmp(argv[i], "--set=", 6)) {
            char *v = argv[i][5] == '=' ? argv[i] + 6 : (i + 1 < argc ? argv[++i] : NULL);
            if (!v) return lethe_errf(err, errlen, "--set needs key=value");
            if (nover == MAX_OVERRIDES)
                return lethe_errf(err, errlen, "more than %d --set overrides", MAX_OVERRIDES);
            over[nover++] = v;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return lethe_errf(err, errlen, "%s: unknown option '%s' (see lethe %s --help)", job,
                              argv[i], job);
        } else if (!s->config_path) {
            s->config_path = argv[i];
        } else {
            return lethe_errf(err, errlen, "%s: unexpected argument '%s' (one config file only)",
                              job, argv[i]);
        }
    }
    if (!s->config_path && !base)
        return lethe_errf(err, errlen,
                          "%s: no config file given (usage: lethe %s CONFIG.json "
                          "[--set key=value ...])",
                          job, job);
    /* without a base, a job that starts from init.checkpoint runs the model stored there */
    return config_load_base(&s->cfg, s->config_path, over, nover, base, base_origin, !base, err,
                            errlen)
               ? -1
               : 0;
}

int session_read_config(lethe_session *s, const char *job, int argc, char **argv, char *err,
                        size_t errlen)
{
    return read_config_base(s, job, argc, argv, NULL, NULL, err, errlen);
}

void session_open(lethe_session *s, const char *job, int argc, char **argv)
{
    session_open_base(s, job, argc, argv, NULL, NULL);
}

void session_open_base(lethe_session *s, const char *job, int argc, char **argv,
                       const char *base, const char *base_origin)
{
    memset(s, 0, sizeof(*s));
    s->job = job;
    char err[1024] = "";
    int ok = read_config_base(s, job, argc, argv, base, base_origin, err, sizeof err) == 0;
    lethe_check(MPI_COMM_WORLD, ok, 2, "%s", err);
    job_agree_config(&s->cfg, job, MPI_COMM_WORLD); /* an MPMD launch gives each its own */

    const lethe_layout_config *L = &s->cfg.layout;
    ok = grid_create(&s->grid, MPI_COMM_WORLD, L->dp, L->pp, L->tp, err, sizeof err) == 0;
    lethe_check(MPI_COMM_WORLD, ok, 2, "%s", err);
    fatal_set_grid(&s->grid);
    fault_parse(&s->fault);
    openblas_set_num_threads(s->cfg.threads);
}

/* A symbolic link at one of the temporary names the jobs write through (NAME.tmp,
 * NAME.tmp.PID, NAME.partial) would be written through, out of the folder: rank 0
 * removes such links (the link, never its target) once the folder is locked. */
static void clear_temp_links(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *n = e->d_name;
        size_t len = strlen(n);
        int temp = strstr(n, ".tmp") != NULL ||
                   (len > 8 && !strcmp(n + len - 8, ".partial"));
        struct stat st;
        if (!temp || fstatat(dirfd(d), n, &st, AT_SYMLINK_NOFOLLOW) || !S_ISLNK(st.st_mode))
            continue;
        if (unlinkat(dirfd(d), n, 0))
            lethe_fatal("cannot remove the link '%s/%s': %s", dir, n, strerror(errno));
        lethe_warn("removed the symbolic link '%s/%s' (a temporary name of lethe's)", dir, n);
    }
    closedir(d);
}

/* The "running" provenance.json text with another status (malloc'd, newline-ended), or
 * NULL. */
static char *with_status(const char *text, const char *status)
{
    cJSON *p = text ? cJSON_Parse(text) : NULL;
    char *out = NULL, *rec = NULL;
    if (p && cJSON_ReplaceItemInObjectCaseSensitive(p, "status", cJSON_CreateString(status)))
        out = cJSON_Print(p);
    cJSON_Delete(p);
    size_t n = out ? strlen(out) : 0;
    if (out && (rec = malloc(n + 2))) memcpy(rec, out, n), memcpy(rec + n, "\n", 2);
    cJSON_free(out);
    return rec;
}

/* Rank 0: the records a job that ends early leaves (jobs/process.c): the "running"
 * provenance.json just written, with "status": "terminated" (a signal) or "failed". */
static void arm_terminated(const char *path)
{
    char err[1200];
    char *text = safe_read(path, "provenance", LETHE_MAX_JSON, NULL, err, sizeof err);
    char *t = with_status(text, "terminated"), *f = with_status(text, "failed");
    free(text);
    if (t && f) {
        job_arm_terminated(path, t, f);
        return;
    }
    free(t), free(f);
    lethe_warn("cannot prepare the record of a job that ends early for '%s'", path);
}

void session_output(lethe_session *s)
{
    char err[1024] = "";
    int ok;
    s->started = (long)time(NULL);
    MPI_CHECK(MPI_Bcast(&s->started, 1, MPI_LONG, 0, s->grid.world));
    /* the folder is ours before anything is written into it */
    job_lock_folder(s->cfg.output.dir, s->job, s->started, s->grid.world);
    s->have_lock = 1;
    if (s->grid.rank == 0) clear_temp_links(s->cfg.output.dir);
    ok = s->grid.rank != 0 || job_claim_folder(s->cfg.output.dir, s->job, err, sizeof err) == 0;
    lethe_check(s->grid.world, ok, 1, "%s", err);
    /* resolved config: rank 0 writes, everyone learns the verdict */
    ok = 1;
    if (s->grid.rank == 0) {
        char path[1100];
        session_path(s, "config.json", path, sizeof path);
        ok = config_write(&s->cfg, path, err, sizeof err) == 0;
    }
    lethe_check(s->grid.world, ok, 1, "%s", err);
    char path[1100];
    session_path(s, "provenance.json", path, sizeof path);
    ok = provenance_write(path, s->job, &s->cfg, s->grid.world, (time_t)s->started, 0, "running",
                          NULL, err, sizeof err) == 0;
    lethe_check(s->grid.world, ok, 1, "%s", err);
    if (s->grid.rank == 0) arm_terminated(path);
    s->have_output = 1;
    if (s->have_model) session_report_blas(s);
    session_phase(s, "run");
}

void session_build_model(lethe_session *s, int global_batch, int seq_len)
{
    const lethe_layout_config *L = &s->cfg.layout;
    char err[512];
    int ok = model_check_layout(&s->cfg.model, L->dp, L->pp, L->tp, global_batch,
                                L->micro_batches, seq_len, err, sizeof err) == 0;
    lethe_check(s->grid.world, ok, 2, "%s", err);
    model_create(&s->model, &s->cfg.model, &s->grid, global_batch / L->dp / L->micro_batches,
                 seq_len, L->micro_batches);
    /* A job that starts from init.checkpoint loads every weight (session_load_init;
     * ckpt_load refuses a file missing one) before it reads any: the random draw would
     * be thrown away (a normal draw per weight). */
    if (!s->cfg.init.checkpoint[0]) model_init_weights(&s->model);
    s->have_model = 1;
}

void session_close(lethe_session *s)
{
    if (s->have_output && s->grid.rank == 0) job_disarm_terminated();
    if (s->have_output) {
        char path[1100], err[1200];
        session_path(s, "provenance.json", path, sizeof path);
        provenance_cost cost;
        session_cost(s, &cost);
        /* a job whose record cannot be completed (a full disk) has not completed */
        int ok = provenance_write(path, s->job, &s->cfg, s->grid.world, (time_t)s->started,
                                  time(NULL), s->status ? s->status : "completed",
                                  s->clock.on ? &cost : NULL, err, sizeof err) == 0;
        lethe_check(s->grid.world, ok, 1, "%s", err);
    }
    if (s->have_model) model_free(&s->model);
    if (s->have_lock && s->grid.rank == 0) job_unlock_folder(s->cfg.output.dir);
    fatal_set_grid(NULL);
    grid_free(&s->grid);
}

void session_save(lethe_session *s, const char *name, int64_t step, int64_t epoch,
                  const int64_t *cursor, int n_cursor, const char *const *keys,
                  const double *values, int n_values)
{
    char path[1100], err[1024];
    session_path(s, name, path, sizeof path);
    lethe_ckpt_meta meta;
    memset(&meta, 0, sizeof meta);
    meta.step = step;
    meta.epoch = epoch;
    meta.n_cursor = n_cursor;
    for (int i = 0; i < n_cursor; i++) meta.cursor[i] = cursor[i];
    meta.n_job = n_values;
    for (int i = 0; i < n_values && i < LETHE_CKPT_JOB_MAX; i++) {
        snprintf(meta.job_key[i], sizeof meta.job_key[i], "%s", keys[i]);
        meta.job_value[i] = values[i];
    }
    meta.config_json = config_to_json(&s->cfg);
    int ok = ckpt_save(path, &s->model.w.params, &s->grid, &meta, err, sizeof err) == 0;
    free(meta.config_json);
    lethe_check(s->grid.world, ok, 1, "%s", err);
}

/* The job's named values of a checkpoint's /job (exit 1 naming a missing one). */
static void resume_values(const lethe_session *s, const char *path, const lethe_ckpt_meta *meta,
                          const char *const *keys, double *values, int n_values)
{
    for (int k = 0; k < n_values; k++) {
        int found = 0;
        for (int i = 0; i < meta->n_job && !found; i++)
            if (!strcmp(meta->job_key[i], keys[k])) {
                values[k] = meta->job_value[i];
                found = 1;
            }
        lethe_check(s->grid.world, found, 1, "checkpoint '%s' has no job value '%s'", path,
                    keys[k]);
    }
}

int64_t session_resume(lethe_session *s, int64_t *cursor, int n_cursor, const char *const *keys,
                       double *values, int n_values)
{
    char path[1100], err[1024];
    session_path(s, "checkpoint.h5", path, sizeof path);
    struct stat st;
    int have = s->cfg.checkpoint.resume && stat(path, &st) == 0;
    MPI_CHECK(MPI_Bcast(&have, 1, MPI_INT, 0, s->grid.world));
    if (!have) return 0;
    const char *phase = session_phase(s, "load");
    lethe_ckpt_meta meta;
    memset(&meta, 0, sizeof meta);
    char *expect = config_to_json(&s->cfg);
    meta.expect_config = expect;
    int ok = ckpt_load(path, &s->model.w.params, &s->grid, &meta, 1, err, sizeof err) == 0;
    free(expect);
    lethe_check(s->grid.world, ok, 1, "%s", err);
    ok = meta.n_cursor == n_cursor;
    lethe_check(s->grid.world, ok, 1, "checkpoint '%s' holds %d loader cursors, expected %d", path,
                meta.n_cursor, n_cursor);
    for (int i = 0; i < n_cursor; i++) cursor[i] = meta.cursor[i];
    resume_values(s, path, &meta, keys, values, n_values);
    ckpt_meta_free(&meta);
    if (s->grid.rank == 0)
        printf("lethe %s: resuming from %s at step %lld\n", s->job, path, (long long)meta.step);
    session_phase(s, phase);
    return meta.step;
}

void session_load_init(lethe_session *s)
{
    if (!s->cfg.init.checkpoint[0]) return;
    const char *phase = session_phase(s, "load");
    char err[1024];
    lethe_ckpt_meta meta;
    memset(&meta, 0, sizeof meta);
    char *expect = config_to_json(&s->cfg);
    meta.expect_config = expect;
    int ok = ckpt_load(s->cfg.init.checkpoint, &s->model.w.params, &s->grid, &meta, 0, err,
                       sizeof err) == 0;
    free(expect);
    ckpt_meta_free(&meta);
    lethe_check(s->grid.world, ok, 1, "%s", err);
    session_phase(s, phase);
}

/* LETHE_FAULT, parsed once by session_open on every rank into its session. */
static void fault_parse(job_fault *fault)
{
    const char *f = getenv("LETHE_FAULT");
    memset(fault, 0, sizeof *fault);
    if (!f || !*f) return;
    /* KIND:N[:RANK[:TENSOR]] */
    char kind[32] = "", name[LETHE_NAME_MAX] = "";
    int n = 0, r = 0, size, len = 0, fields = 1, ok;
    MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size));
    ok = sscanf(f, "%31[a-z-]:%d%n", kind, &n, &len) == 2;
    const char *rest = f + len;
    if (ok && *rest) {
        ok = sscanf(rest, ":%d%n", &r, &len) == 1;
        rest += len, fields = 2;
    }
    if (ok && *rest) {
        ok = rest[0] == ':' && rest[1] && strlen(rest + 1) < sizeof name;
        snprintf(name, sizeof name, "%s", rest + 1);
        fields = 3;
    }
    if (!strcmp(kind, "abort-after-step"))
        fault->kind = FAULT_ABORT, ok = ok && fields == 1;
    else if (!strcmp(kind, "kill-after-step"))
        fault->kind = FAULT_KILL, ok = ok && fields <= 2;
    else
        ok = ok && !strcmp(kind, "nan-at-step");
    ok = ok && n > 0 && r >= 0 && r < size;
    lethe_check(MPI_COMM_WORLD, ok, 2,
                "LETHE_FAULT='%s': expected abort-after-step:N, kill-after-step:N[:RANK] or "
                "nan-at-step:N[:RANK[:TENSOR]] (N >= 1, 0 <= RANK < %d ranks)", f, size);
    fault->step = n;
    fault->rank = r;
    if (!strcmp(kind, "nan-at-step")) {
        fault->nan.step = n;
        fault->nan.rank = r;
        snprintf(fault->nan.tensor, sizeof fault->nan.tensor, "%s", name);
    }
}

void job_fault_point(const lethe_session *s, int step)
{
    const job_fault *fault = &s->fault;
    if (fault->kind == FAULT_NONE || fault->step != step) return;
    if (fault->kind == FAULT_KILL) {
        if (s->grid.rank != fault->rank) return;
        fprintf(stderr, "lethe: rank %d: fault injection: SIGKILL after step %d\n", s->grid.rank,
                step);
        fflush(stderr);
        raise(SIGKILL);
    }
    if (s->grid.rank == 0) {
        fprintf(stderr, "lethe: fault injection: aborting after step %d\n", step);
        fflush(stderr);
    }
    MPI_Abort(MPI_COMM_WORLD, 3);
}

void session_finish_checkpoints(lethe_session *s)
{
    MPI_CHECK(MPI_Barrier(s->grid.world));
    if (s->grid.rank != 0) return;
    char path[1100];
    session_path(s, "checkpoint.h5", path, sizeof path);
    /* unlink removes a symbolic link itself, never what it points to; anything that is
     * not a file or a link (a folder someone put there) is left alone */
    struct stat st;
    if (lstat(path, &st)) return;
    if (!S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode))
        lethe_warn("'%s' is not a checkpoint file; left in place", path);
    else if (unlink(path) && errno != ENOENT)
        lethe_warn("cannot remove '%s': %s", path, strerror(errno));
}

int session_preempted(const lethe_session *s)
{
    int f = session_preempt_pending();
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &f, 1, MPI_INT, MPI_MAX, s->grid.world));
    return f;
}

const char *job_json_num(char *buf, size_t len, const char *fmt, double v)
{
    if (isfinite(v))
        snprintf(buf, len, fmt, v);
    else
        snprintf(buf, len, "null");
    return buf;
}
