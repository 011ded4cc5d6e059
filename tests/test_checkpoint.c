/* tests/test_checkpoint.c — collective checkpoints (io/checkpoint.h).
 *
 * Default mode (under mpirun, any rank count; registered as checkpoint.reshard):
 *   1. Resharding: a table shaped like the model's (vocab-parallel embedding with padding
 *      rows, and at tp = 8 a rank whose piece is all padding; column- and row-split
 *      projections; replicated norms; layers split contiguously over pp stages; the
 *      tied-embedding duplicate (owner 0) on the last stage) is filled with the
 *      layout-independent params_init_normal values (parameters and both moments), saved
 *      under every layout dp x pp x tp of the world, and loaded under two other layouts.
 *      Every piece, padding and duplicates included, must equal bitwise what
 *      params_init_normal gives for the load layout (the buffers are filled with a 0xFF
 *      pattern before loading, so nothing passes by accident). Also across world sizes
 *      (saved by all ranks, loaded by one; saved by one, loaded by all), and an untied
 *      head. Meta (step, epoch, cursor, config, layout, RNG state) round-trips.
 *   2. The file itself, read serially with plain HDF5 by rank 0, holds the global
 *      tensors, and each stored digest equals the digest of the whole tensor computed on
 *      one piece: the digest does not depend on the layout. ckpt_verify agrees.
 *   3. Bad inputs: missing file, not HDF5, truncated to half, an HDF5 file that is no
 *      checkpoint, missing dataset, missing optimizer state, wrong shape, wrong dtype,
 *      corrupted data (digest), a name with '/', a tensor without owner, ranks that
 *      disagree on the path or on loading the moments. Each returns -1 on every rank with the
 *      same message (agreed), containing the expected text; none hangs.
 * --atomic DIR (serial, registered as checkpoint.atomic):
 *   a save killed mid-write (file-size limit) leaves the previous checkpoint intact and
 *   loadable; a save whose temporary file cannot be created (target directory not
 *   writable, missing, or the temporary name taken by a directory) fails with a clean
 *   message and leaves the existing checkpoint byte for byte unchanged; a stale
 *   temporary file from a crash is overwritten by the next save. */
#define _GNU_SOURCE /* syscall() for capget/capset */
#include "io/checkpoint.h"
#include "model/params.h"
#include "mpi/comm.h"
#include "mpi/fatal.h"
#include "mpi/grid.h"

#include <hdf5.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <math.h>
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

CHECK_COUNTERS;
static int wrank;


/* ---- a table shaped like the model's ---------------------------------------------------- */

typedef struct {
    int V, C, KV, I, L, tied;
} shape_cfg;

static const shape_cfg base_cfg = {49, 32, 16, 48, 4, 1};
static const uint64_t seed_w = 11, seed_m = 22, seed_v = 33;

/* Layers [L*s/pp, L*(s+1)/pp) on stage s, as the model splits them. */
static void build_table(lethe_params *t, const shape_cfg *c, int pp, int s, int tp, int tr)
{
    char nm[LETHE_NAME_MAX];
    params_init(t);
    if (s == 0) params_add(t, "model.embed_tokens.weight", 2, c->V, c->C, 0, tp, tr, 1, 1, 1);
    for (int l = c->L * s / pp; l < c->L * (s + 1) / pp; l++) {
        struct {
            const char *n;
            int nd, r, k, split, decay;
        } w[] = {
            {"input_layernorm.weight", 1, c->C, 1, -1, 0},
            {"self_attn.q_proj.weight", 2, c->C, c->C, 0, 1},
            {"self_attn.k_proj.weight", 2, c->KV, c->C, 0, 1},
            {"self_attn.v_proj.weight", 2, c->KV, c->C, 0, 1},
            {"self_attn.o_proj.weight", 2, c->C, c->C, 1, 1},
            {"post_attention_layernorm.weight", 1, c->C, 1, -1, 0},
            {"mlp.gate_proj.weight", 2, c->I, c->C, 0, 1},
            {"mlp.up_proj.weight", 2, c->I, c->C, 0, 1},
            {"mlp.down_proj.weight", 2, c->C, c->I, 1, 1},
        };
        for (size_t k = 0; k < sizeof w / sizeof w[0]; k++) {
            snprintf(nm, sizeof nm, "model.layers.%d.%s", l, w[k].n);
            params_add(t, nm, w[k].nd, w[k].r, w[k].k, w[k].split, tp, tr, 0, w[k].decay, 1);
        }
    }
    if (s == pp - 1) {
        params_add(t, "model.norm.weight", 1, c->C, 1, -1, tp, tr, 0, 0, 1);
        if (!c->tied)
            params_add(t, "lm_head.weight", 2, c->V, c->C, 0, tp, tr, 1, 1, 1);
        else if (pp > 1)
            params_add(t, "model.embed_tokens.weight", 2, c->V, c->C, 0, tp, tr, 1, 1, 0);
    }
    params_alloc(t);
}

static void build_for_grid(lethe_params *t, const shape_cfg *c, const lethe_grid *g)
{
    build_table(t, c, g->pp, g->pp_rank, g->tp, g->tp_rank);
}

/* Parameters and both moments from params_init_normal (layout-independent). */
static void fill_expected(lethe_params *t)
{
    for (int i = 0; i < t->n; i++) params_init_normal(t, i, seed_m, 1.0f);
    memcpy(t->m, t->data, t->total * sizeof(float));
    for (int i = 0; i < t->n; i++) params_init_normal(t, i, seed_v, 0.5f);
    memcpy(t->v, t->data, t->total * sizeof(float));
    for (int i = 0; i < t->n; i++) params_init_normal(t, i, seed_w, 0.02f);
}

static void fill_garbage(lethe_params *t)
{
    memset(t->data, 0xff, t->total * sizeof(float));
    memset(t->m, 0xff, t->total * sizeof(float));
    memset(t->v, 0xff, t->total * sizeof(float));
}

/* Bitwise comparison piece by piece (the alignment gaps between pieces are not ours). */
static int compare_buffers(const lethe_params *got, const lethe_params *want, int kinds,
                           const char *what)
{
    int bad = 0;
    for (int i = 0; i < got->n; i++) {
        const lethe_param *p = &got->p[i];
        const float *g3[3] = {got->data, got->m, got->v}, *w3[3] = {want->data, want->m, want->v};
        for (int k = 0; k < kinds; k++)
            if (memcmp(g3[k] + p->off, w3[k] + p->off, p->numel * sizeof(float))) {
                CHECK(0, "%s: tensor '%s' (owner %d) buffer %d differs", what, p->name, p->owner,
                      k);
                bad = 1;
            }
    }
    return bad;
}

/* ---- layouts ------------------------------------------------------------------------------ */

typedef struct {
    int dp, pp, tp;
} layout;

/* A few layouts that between them exercise every kind of piece: pure data parallelism,
 * the deepest pipeline the layers allow, the widest tensor parallelism (at tp = 8 the
 * last embedding piece is all padding), and pp x tp together (the tied duplicate split
 * over tp). Loading each under the next keeps the save and load layouts different. */
static int pick_layouts(int n, int max_pp, layout *out)
{
    layout cand[4];
    int nc = 0, k = 0, pp = 1;
    cand[nc++] = (layout){n, 1, 1};
    while (pp * 2 <= max_pp && n % (pp * 2) == 0) pp *= 2;
    cand[nc++] = (layout){n / pp, pp, 1};
    cand[nc++] = (layout){1, 1, n};
    if (n >= 4) cand[nc++] = (layout){n / 4, 2, 2};
    for (int i = 0; i < nc; i++) {
        int dup = 0;
        for (int j = 0; j < k; j++)
            dup |= cand[i].dp == out[j].dp && cand[i].pp == out[j].pp && cand[i].tp == out[j].tp;
        if (!dup) out[k++] = cand[i];
    }
    return k;
}

/* ---- agreement helpers ---------------------------------------------------------------- */

static uint64_t str_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

/* Every rank of comm got -1, the same message (unless !same_msg), containing `want`. */
static void expect_error_x(MPI_Comm comm, int rc, const char *err, const char *want,
                           const char *what, int same_msg)
{
    uint64_t h = str_hash(err), in[2] = {h, ~h}, out[2];
    MPI_CHECK(MPI_Allreduce(in, out, 2, MPI_UINT64_T, MPI_MAX, comm));
    int rc_max, rc_min;
    MPI_CHECK(MPI_Allreduce(&rc, &rc_max, 1, MPI_INT, MPI_MAX, comm));
    MPI_CHECK(MPI_Allreduce(&rc, &rc_min, 1, MPI_INT, MPI_MIN, comm));
    CHECK(rc_max == -1 && rc_min == -1, "%s: expected -1 on every rank, got %d..%d", what, rc_min,
          rc_max);
    CHECK(!same_msg || out[0] == ~out[1], "%s: ranks disagree on the message (mine: %s)", what,
          err);
    CHECK(strstr(err, want) != NULL, "%s: message '%s' lacks '%s'", what, err, want);
    if (wrank == 0) printf("  %-28s -> %s\n", what, err);
}

static void expect_error(MPI_Comm comm, int rc, const char *err, const char *want, const char *what)
{
    expect_error_x(comm, rc, err, want, what, 1);
}

/* ---- file helpers (rank 0, plain POSIX / serial HDF5) ----------------------------------- */

static void copy_file(const char *src, const char *dst)
{
    FILE *a = fopen(src, "rb"), *b = fopen(dst, "wb");
    if (!a || !b) lethe_fatal("test: cannot copy '%s' to '%s'", src, dst);
    char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, a)) > 0)
        if (fwrite(buf, 1, n, b) != n) lethe_fatal("test: writing '%s' failed", dst);
    fclose(a);
    if (fclose(b)) lethe_fatal("test: closing '%s' failed", dst);
}

static hid_t open_serial_rw(const char *path)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    if (f < 0) lethe_fatal("test: cannot open '%s' serially", path);
    return f;
}

/* Rank 0 reads every tensor of `path` whole with plain serial HDF5 and compares it with
 * the single-piece table; the stored digest must equal the single-piece digest. */
static void check_file_serial(const char *path, const shape_cfg *c)
{
    lethe_params full;
    build_table(&full, c, 1, 0, 1, 0);
    fill_expected(&full);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    CHECK(f >= 0, "serial open of '%s' failed", path);
    if (f < 0) return;
    const char *groups[3] = {"/params", "/adam_m", "/adam_v"};
    const float *bufs[3] = {full.data, full.m, full.v};
    for (int i = 0; i < full.n; i++) {
        const lethe_param *p = &full.p[i];
        float *x = malloc(p->numel * sizeof(float));
        for (int k = 0; k < 3; k++) {
            char dp[160];
            snprintf(dp, sizeof dp, "%s/%s", groups[k], p->name);
            hid_t ds = H5Dopen2(f, dp, H5P_DEFAULT);
            CHECK(ds >= 0, "'%s' missing", dp);
            if (ds < 0) continue;
            CHECK(H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x) >= 0, "read '%s'",
                  dp);
            CHECK(!memcmp(x, bufs[k] + p->off, p->numel * sizeof(float)),
                  "'%s' differs from the global tensor", dp);
            uint64_t stored = 0;
            hid_t a = H5Aopen(ds, "digest", H5P_DEFAULT);
            CHECK(a >= 0 && H5Aread(a, H5T_NATIVE_UINT64, &stored) >= 0, "digest of '%s'", dp);
            uint64_t d = ckpt_digest_piece(bufs[k] + p->off, p->gshape[0], p->gshape[1],
                                           p->gshape[1], 0, 0, p->gshape[1]);
            CHECK(stored == d, "'%s': stored digest %016llx, single-piece digest %016llx", dp,
                  (unsigned long long)stored, (unsigned long long)d);
            if (a >= 0) H5Aclose(a);
            H5Dclose(ds);
        }
        free(x);
    }
    H5Fclose(f);
    params_free(&full);
}

/* ---- resharding ---------------------------------------------------------------------- */

static void make_meta(lethe_ckpt_meta *m, int64_t step, int rank)
{
    memset(m, 0, sizeof *m);
    m->step = step;
    m->epoch = step / 7;
    m->n_cursor = 3;
    m->cursor[0] = step * 32;
    m->cursor[1] = -5;
    m->cursor[2] = (int64_t)1 << 40;
    /* the job's named values (loaded back sorted by name) */
    m->n_job = 2;
    snprintf(m->job_key[0], sizeof m->job_key[0], "seed");
    m->job_value[0] = 1e15 + (double)step;
    snprintf(m->job_key[1], sizeof m->job_key[1], "lr");
    m->job_value[1] = 0.1;
    m->config_json = "{\"model\": {\"dim\": 32}, \"note\": \"\\u00e9\"}";
    m->rng = 0xabc0000000000000ULL + (uint64_t)rank;
}

/* Saves under A on comm_a (size_a ranks), loads under B on comm_b (either may be
 * MPI_COMM_NULL on this rank); everyone in `all` takes part in the barrier between.
 * `thorough` adds a weights-only load, ckpt_verify and the serial read of the file
 * (every collective costs much on an oversubscribed machine, so not every time). */
static void roundtrip(MPI_Comm all, const char *path, const shape_cfg *c, MPI_Comm comm_a, layout A,
                      MPI_Comm comm_b, layout B, int64_t step, int thorough, int size_a)
{
    char err[1024], what[160];
    snprintf(what, sizeof what, "save dp%d pp%d tp%d -> load dp%d pp%d tp%d%s", A.dp, A.pp, A.tp,
             B.dp, B.pp, B.tp, c->tied ? "" : " (untied)");
    int size_b = 0;
    if (comm_a != MPI_COMM_NULL) {
        lethe_grid g;
        int rank;
        MPI_CHECK(MPI_Comm_rank(comm_a, &rank));
        if (grid_create(&g, comm_a, A.dp, A.pp, A.tp, err, sizeof err))
            lethe_fatal("test: %s", err);
        lethe_params t;
        build_for_grid(&t, c, &g);
        fill_expected(&t);
        lethe_ckpt_meta m;
        make_meta(&m, step, rank);
        int rc = ckpt_save(path, &t, &g, &m, err, sizeof err);
        CHECK(rc == 0, "%s: save failed: %s", what, err);
        params_free(&t);
        grid_free(&g);
    }
    MPI_CHECK(MPI_Barrier(all));
    if (thorough && wrank == 0) check_file_serial(path, c);
    if (comm_b != MPI_COMM_NULL) {
        lethe_grid g;
        int rank;
        MPI_CHECK(MPI_Comm_size(comm_b, &size_b));
        MPI_CHECK(MPI_Comm_rank(comm_b, &rank));
        if (grid_create(&g, comm_b, B.dp, B.pp, B.tp, err, sizeof err))
            lethe_fatal("test: %s", err);
        lethe_params t, want;
        build_for_grid(&t, c, &g);
        build_for_grid(&want, c, &g);
        fill_expected(&want);

        lethe_ckpt_meta m;
        int rc;
        if (thorough) {
            /* weights only: the moments stay as they were */
            fill_garbage(&t);
            memset(&m, 0, sizeof m);
            rc = ckpt_load(path, &t, &g, &m, 0, err, sizeof err);
            CHECK(rc == 0, "%s: load (weights) failed: %s", what, err);
            compare_buffers(&t, &want, 1, what);
            int untouched = 1;
            for (size_t k = 0; k < t.total; k++) {
                uint32_t b1, b2;
                memcpy(&b1, &t.m[k], 4);
                memcpy(&b2, &t.v[k], 4);
                if (b1 != 0xffffffffu || b2 != 0xffffffffu) untouched = 0;
            }
            CHECK(untouched, "%s: load without optimizer touched the moments", what);
            ckpt_meta_free(&m);
        }

        /* everything */
        fill_garbage(&t);
        memset(&m, 0, sizeof m);
        m.rng = 7;
        rc = ckpt_load(path, &t, &g, &m, 1, err, sizeof err);
        CHECK(rc == 0, "%s: load failed: %s", what, err);
        compare_buffers(&t, &want, 3, what);
        lethe_ckpt_meta e;
        make_meta(&e, step, rank);
        CHECK(m.step == e.step && m.epoch == e.epoch, "%s: step/epoch %lld/%lld", what,
              (long long)m.step, (long long)m.epoch);
        CHECK(m.n_cursor == 3 && !memcmp(m.cursor, e.cursor, sizeof(int64_t) * 3), "%s: cursor",
              what);
        CHECK(m.n_job == 2 && !strcmp(m.job_key[0], "lr") && m.job_value[0] == e.job_value[1] &&
                  !strcmp(m.job_key[1], "seed") && m.job_value[1] == e.job_value[0],
              "%s: job state (%d values)", what, m.n_job);
        CHECK(m.config_json && !strcmp(m.config_json, e.config_json), "%s: config '%s'", what,
              m.config_json ? m.config_json : "(null)");
        CHECK(m.layout[0] == A.dp && m.layout[1] == A.pp && m.layout[2] == A.tp &&
                  m.world_size == size_a,
              "%s: stored layout %d %d %d on %d ranks", what, m.layout[0], m.layout[1], m.layout[2],
              m.world_size);
        CHECK(!strcmp(m.version, LETHE_VERSION), "%s: version '%s'", what, m.version);
        if (size_a == size_b)
            CHECK(m.rng_restored && m.rng == e.rng, "%s: rng %llx restored %d", what,
                  (unsigned long long)m.rng, m.rng_restored);
        else
            CHECK(!m.rng_restored && m.rng == 7, "%s: rng must stay when the rank count changes",
                  what);
        ckpt_meta_free(&m);

        if (thorough) {
            int64_t n_checked = 0;
            rc = ckpt_verify(path, g.world, &n_checked, err, sizeof err);
            int nu = 1 + 9 * c->L + 1 + !c->tied;
            CHECK(rc == 0 && n_checked == 3 * nu, "%s: verify rc %d, %lld datasets (want %d): %s",
                  what, rc, (long long)n_checked, 3 * nu, rc ? err : "");
        }
        params_free(&t);
        params_free(&want);
        grid_free(&g);
    }
    MPI_CHECK(MPI_Barrier(all));
}

/* ---- bad inputs ------------------------------------------------------------------------ */

static void error_cases(MPI_Comm world, const char *dir, layout A)
{
    char good[1200], path[1200], err[1024];
    lethe_grid g;
    if (grid_create(&g, world, A.dp, A.pp, A.tp, err, sizeof err)) lethe_fatal("test: %s", err);
    lethe_params t;
    build_for_grid(&t, &base_cfg, &g);
    fill_expected(&t);
    snprintf(good, sizeof good, "%s/good.h5", dir);
    CHECK(ckpt_save(good, &t, &g, NULL, err, sizeof err) == 0, "save good: %s", err);
    int rc;

    snprintf(path, sizeof path, "%s/absent.h5", dir);
    rc = ckpt_load(path, &t, &g, NULL, 1, err, sizeof err);
    expect_error(world, rc, err, "No such file", "missing file");

    snprintf(path, sizeof path, "%s/text.h5", dir);
    if (wrank == 0) {
        FILE *f = fopen(path, "w");
        fputs("{\"not\": \"hdf5\"}\n", f);
        fclose(f);
    }
    MPI_CHECK(MPI_Barrier(world));
    rc = ckpt_load(path, &t, &g, NULL, 1, err, sizeof err);
    expect_error(world, rc, err, "not an HDF5 file", "not HDF5");
    rc = ckpt_verify(path, world, NULL, err, sizeof err);
    expect_error(world, rc, err, "not an HDF5 file", "verify: not HDF5");

    snprintf(path, sizeof path, "%s/truncated.h5", dir);
    if (wrank == 0) {
        copy_file(good, path);
        struct stat st;
        stat(path, &st);
        if (truncate(path, st.st_size / 2)) lethe_fatal("test: truncate failed");
    }
    MPI_CHECK(MPI_Barrier(world));
    rc = ckpt_load(path, &t, &g, NULL, 1, err, sizeof err);
    expect_error(world, rc, err, "truncated file", "truncated to half");
    rc = ckpt_verify(path, world, NULL, err, sizeof err);
    expect_error(world, rc, err, "truncated file", "verify: truncated");

    snprintf(path, sizeof path, "%s/plain.h5", dir);
    if (wrank == 0) {
        hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
        H5Fclose(f);
    }
    MPI_CHECK(MPI_Barrier(world));
    rc = ckpt_load(path, &t, &g, NULL, 1, err, sizeof err);
    expect_error(world, rc, err, "not a lethe checkpoint", "HDF5 but no checkpoint");

    snprintf(path, sizeof path, "%s/nodataset.h5", dir);
    if (wrank == 0) {
        copy_file(good, path);
        hid_t f = open_serial_rw(path);
        if (H5Ldelete(f, "/params/model.layers.1.mlp.up_proj.weight", H5P_DEFAULT) < 0)
            lethe_fatal("test: H5Ldelete failed");
        H5Fclose(f);
    }
    MPI_CHECK(MPI_Barrier(world));
    rc = ckpt_load(path, &t, &g, NULL, 1, err, sizeof err);
    expect_error(world, rc, err, "dataset '/params/model.layers.1.mlp.up_proj.weight' is missing",
                 "missing dataset");

    snprintf(path, sizeof path, "%s/noadam.h5", dir);
    if (wrank == 0) {
        copy_file(good, path);
        hid_t f = open_serial_rw(path);
        if (H5Ldelete(f, "/adam_v", H5P_DEFAULT) < 0) lethe_fatal("test: H5Ldelete failed");
        H5Fclose(f);
    }
    MPI_CHECK(MPI_Barrier(world));
    rc = ckpt_load(path, &t, &g, NULL, 1, err, sizeof err);
    expect_error(world, rc, err, "holds no optimizer state (group '/adam_v' is missing)",
                 "missing optimizer state");
    rc = ckpt_load(path, &t, &g, NULL, 0, err, sizeof err);
    CHECK(rc == 0, "weights-only load of a file without moments: %s", err);

    /* The model changed (MLP twice as wide) since the checkpoint was written. */
    {
        shape_cfg wide = base_cfg;
        wide.I = 2 * base_cfg.I;
        lethe_params w;
        build_for_grid(&w, &wide, &g);
        rc = ckpt_load(good, &w, &g, NULL, 1, err, sizeof err);
        expect_error(world, rc, err,
                     "dataset '/params/model.layers.0.mlp.gate_proj.weight' has shape [48,32], "
                     "expected [96,32]",
                     "wrong shape");
        params_free(&w);
    }

    snprintf(path, sizeof path, "%s/float64.h5", dir);
    if (wrank == 0) {
        copy_file(good, path);
        hid_t f = open_serial_rw(path);
        hsize_t n = (hsize_t)base_cfg.C;
        H5Ldelete(f, "/params/model.norm.weight", H5P_DEFAULT);
        hid_t sp = H5Screate_simple(1, &n, NULL);
        hid_t ds = H5Dcreate2(f, "/params/model.norm.weight", H5T_IEEE_F64LE, sp, H5P_DEFAULT,
                              H5P_DEFAULT, H5P_DEFAULT);
        if (ds < 0) lethe_fatal("test: H5Dcreate2 failed");
        H5Dclose(ds);
        H5Sclose(sp);
        H5Fclose(f);
    }
    MPI_CHECK(MPI_Barrier(world));
    rc = ckpt_load(path, &t, &g, NULL, 1, err, sizeof err);
    expect_error(world, rc, err,
                 "dataset '/params/model.norm.weight' has type float64, expected float32",
                 "wrong dtype");

    /* One element of one moment flipped in place: only the digest can tell. */
    snprintf(path, sizeof path, "%s/corrupt.h5", dir);
    if (wrank == 0) {
        copy_file(good, path);
        hid_t f = open_serial_rw(path);
        hid_t ds = H5Dopen2(f, "/adam_v/model.layers.2.self_attn.o_proj.weight", H5P_DEFAULT);
        hid_t sp = H5Dget_space(ds);
        hsize_t at[2] = {3, 17}, one[2] = {1, 1};
        float x;
        H5Sselect_hyperslab(sp, H5S_SELECT_SET, at, NULL, one, NULL);
        hid_t ms = H5Screate_simple(2, one, NULL);
        if (H5Dread(ds, H5T_NATIVE_FLOAT, ms, sp, H5P_DEFAULT, &x) < 0)
            lethe_fatal("test: read failed");
        x = nextafterf(x, 1e30f);
        if (H5Dwrite(ds, H5T_NATIVE_FLOAT, ms, sp, H5P_DEFAULT, &x) < 0)
            lethe_fatal("test: write failed");
        H5Sclose(ms);
        H5Sclose(sp);
        H5Dclose(ds);
        H5Fclose(f);
    }
    MPI_CHECK(MPI_Barrier(world));
    rc = ckpt_load(path, &t, &g, NULL, 1, err, sizeof err);
    expect_error(world, rc, err,
                 "dataset '/adam_v/model.layers.2.self_attn.o_proj.weight': digest mismatch",
                 "corrupted element");
    rc = ckpt_load(path, &t, &g, NULL, 0, err, sizeof err);
    CHECK(rc == 0, "weights-only load must ignore the corrupt moment: %s", err);
    rc = ckpt_verify(path, world, NULL, err, sizeof err);
    expect_error(world, rc, err,
                 "dataset '/adam_v/model.layers.2.self_attn.o_proj.weight': digest mismatch",
                 "verify: corrupted element");

    /* A name that cannot be a dataset name. */
    {
        lethe_params bad;
        params_init(&bad);
        params_add(&bad, "model/embed", 1, 8, 1, -1, g.tp, g.tp_rank, 0, 0, 1);
        params_alloc(&bad);
        snprintf(path, sizeof path, "%s/slash.h5", dir);
        rc = ckpt_save(path, &bad, &g, NULL, err, sizeof err);
        expect_error(world, rc, err, "contains '/'", "name with '/'");
        params_free(&bad);
        struct stat st;
        CHECK(stat(path, &st) != 0, "a failed save left '%s'", path);
    }
    /* A tensor whose every copy is a duplicate would leave a hole in the file. */
    {
        lethe_params nown;
        build_for_grid(&nown, &base_cfg, &g);
        int i = params_find(&nown, "model.layers.0.self_attn.o_proj.weight");
        if (i >= 0) nown.p[i].owner = 0;
        snprintf(path, sizeof path, "%s/noowner.h5", dir);
        rc = ckpt_save(path, &nown, &g, NULL, err, sizeof err);
        expect_error(world, rc, err,
                     "tensor 'model.layers.0.self_attn.o_proj.weight': the owner pieces of one "
                     "replica cover 0 of its 1024 elements",
                     "tensor without owner");
        params_free(&nown);
    }

    /* Arguments that steer the collective calls must agree (needs two ranks to differ). */
    if (g.size > 1) {
        snprintf(path, sizeof path, "%s/rank%d.h5", dir, wrank);
        rc = ckpt_save(path, &t, &g, NULL, err, sizeof err);
        /* each message names the rank's own path; the rest is the same */
        expect_error_x(world, rc, err, "the ranks were given different paths", "per-rank paths", 0);
        rc = ckpt_load(good, &t, &g, NULL, wrank % 2, err, sizeof err);
        expect_error(world, rc, err, "the ranks disagree on loading the optimizer state",
                     "load_optimizer differs");
    }
    params_free(&t);
    grid_free(&g);
}

static int run_mpi(void)
{
    MPI_Comm world;
    MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &world));
    int size;
    MPI_CHECK(MPI_Comm_rank(world, &wrank));
    MPI_CHECK(MPI_Comm_size(world, &size));

    /* A scratch folder in the current (build) directory, one per run. */
    char dir[512] = "";
    if (wrank == 0) {
        snprintf(dir, sizeof dir, "ckpt-test-np%d-XXXXXX", size);
        if (!mkdtemp(dir)) lethe_fatal("test: mkdtemp failed: %s", strerror(errno));
    }
    MPI_CHECK(MPI_Bcast(dir, sizeof dir, MPI_CHAR, 0, world));

    layout L[8];
    int nl = pick_layouts(size, base_cfg.L, L);
    char path[1200];
    if (wrank == 0) printf("checkpoint.reshard: %d ranks, %d layouts\n", size, nl);
    for (int a = 0; a < nl; a++) {
        layout A = L[a], B = L[(a + 1) % nl];
        snprintf(path, sizeof path, "%s/ckpt-%d.h5", dir, a);
        double t0 = MPI_Wtime();
        roundtrip(world, path, &base_cfg, world, A, world, B, 100 + a, a == 0, size);
        if (wrank == 0)
            printf("  save dp%d pp%d tp%d, load dp%d pp%d tp%d%s: %d failures so far (%.1f s)\n",
                   A.dp, A.pp, A.tp, B.dp, B.pp, B.tp, a == 0 ? " (thorough)" : "", failures,
                   MPI_Wtime() - t0);
    }
    double t0 = MPI_Wtime();
    layout E = L[nl - 1], one = {1, 1, 1};
    shape_cfg untied = base_cfg;
    untied.tied = 0;
    snprintf(path, sizeof path, "%s/untied.h5", dir);
    roundtrip(world, path, &untied, world, E, world, L[0], 5, 0, size);

    /* across world sizes: rank 0 alone on one side */
    MPI_Comm solo;
    MPI_CHECK(MPI_Comm_split(world, wrank == 0 ? 0 : MPI_UNDEFINED, 0, &solo));
    snprintf(path, sizeof path, "%s/all-to-one.h5", dir);
    roundtrip(world, path, &base_cfg, world, E, solo, one, 9, 0, size);
    snprintf(path, sizeof path, "%s/one-to-all.h5", dir);
    roundtrip(world, path, &base_cfg, solo, one, world, E, 10, 0, 1);
    if (solo != MPI_COMM_NULL) MPI_CHECK(MPI_Comm_free(&solo));
    if (wrank == 0)
        printf("  untied head, and across world sizes: %d failures so far (%.1f s)\n", failures,
               MPI_Wtime() - t0);

    if (wrank == 0) printf("bad inputs (layout dp%d pp%d tp%d):\n", E.dp, E.pp, E.tp);
    t0 = MPI_Wtime();
    error_cases(world, dir, E);
    if (wrank == 0) printf("  (%.1f s)\n", MPI_Wtime() - t0);

    int total;
    MPI_CHECK(MPI_Allreduce(&failures, &total, 1, MPI_INT, MPI_SUM, world));
    if (total == 0 && wrank == 0) {
        char cmd[1200];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    }
    if (wrank == 0) printf("checkpoint.reshard: %d failures\n", total);
    MPI_CHECK(MPI_Comm_free(&world));
    return total ? 1 : 0;
}

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

static int run_atomic(const char *base)
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

int main(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "--atomic")) return run_atomic(argc >= 3 ? argv[2] : ".");
    comm_init(&argc, &argv);
    int rc = run_mpi();
    MPI_Finalize();
    return rc;
}
