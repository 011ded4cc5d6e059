/* tests/test_checkpoint.c — collective checkpoints (io/checkpoint.h): the program's main,
 * its shared fixtures and the resharding checks. Default mode (under mpirun, any rank
 * count; registered as checkpoint.reshard): a table shaped like the model's (vocab-parallel
 * embedding with padding rows, and at tp = 8 a rank whose piece is all padding; column- and
 * row-split projections; replicated norms; layers split contiguously over pp stages; the
 * tied-embedding duplicate (owner 0) on the last stage) is filled with the
 * layout-independent params_init_normal values (parameters and both moments), saved under
 * every layout dp x pp x tp of the world, and loaded under two other layouts. Every piece,
 * padding and duplicates included, must equal bitwise what params_init_normal gives for the
 * load layout (the buffers are filled with a 0xFF pattern before loading, so nothing passes
 * by accident). Also across world sizes (saved by all ranks, loaded by one; saved by one,
 * loaded by all), and an untied head. Meta (step, epoch, cursor, config, layout, RNG state)
 * round-trips. The file itself, read serially with plain HDF5 by rank 0, holds the global
 * tensors, and each stored digest equals the digest of the whole tensor computed on one
 * piece: the digest does not depend on the layout; ckpt_verify agrees. An import's save
 * (moments_zero: the moments' buffers are never read, zeros are written in blocks) loads
 * as zeros under another layout. WAGLE's mask kind is in test_checkpoint_mask.c, the bad inputs
 * in test_checkpoint_errors.c, the --atomic mode in test_checkpoint_atomic.c. */
#define _GNU_SOURCE /* mkdtemp() under -std=c11 */
#include "io/checkpoint.h"
#include "model/params.h"
#include "mpi/comm.h"
#include "mpi/fatal.h"
#include "mpi/grid.h"

#include <hdf5.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "check.h"
#include "test_checkpoint.h"

CHECK_COUNTERS;
int wrank;

/* ---- a table shaped like the model's ---------------------------------------------------- */

const shape_cfg base_cfg = {49, 32, 16, 48, 4, 1};
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

void build_for_grid(lethe_params *t, const shape_cfg *c, const lethe_grid *g)
{
    build_table(t, c, g->pp, g->pp_rank, g->tp, g->tp_rank);
}

/* Parameters and both moments from params_init_normal (layout-independent). */
void fill_expected(lethe_params *t)
{
    for (int i = 0; i < t->n; i++) params_init_normal(t, i, seed_m, 1.0f);
    memcpy(t->m, t->data, t->total * sizeof(float));
    for (int i = 0; i < t->n; i++) params_init_normal(t, i, seed_v, 0.5f);
    memcpy(t->v, t->data, t->total * sizeof(float));
    for (int i = 0; i < t->n; i++) params_init_normal(t, i, seed_w, 0.02f);
}

void fill_garbage(lethe_params *t)
{
    memset(t->data, 0xff, t->total * sizeof(float));
    memset(t->m, 0xff, t->total * sizeof(float));
    memset(t->v, 0xff, t->total * sizeof(float));
}

/* Bitwise comparison piece by piece (the alignment gaps between pieces are not ours). */
int compare_buffers(const lethe_params *got, const lethe_params *want, int kinds, const char *what)
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
            uint64_t d = ckpt_digest_piece(CKPT_FORMAT_VERSION, bufs[k] + p->off, p->gshape[0],
                                           p->gshape[1], p->gshape[1], 0, 0, p->gshape[1]);
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

void make_meta(lethe_ckpt_meta *m, int64_t step, int rank)
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

/* An import's save (meta.moments_zero): the moments hold garbage that must never be read,
 * the file must hold zeros with the digests of zeros (the load checks them), at a shape
 * whose embedding (4099 x 512, 8 MiB) takes several blocks of CKPT_ZERO_BLOCK. */
static void zero_moments_case(MPI_Comm world, const char *path, layout A, layout B)
{
    const shape_cfg big = {4099, 512, 64, 96, 4, 1};
    char err[1024];
    lethe_grid g;
    lethe_params t, want;
    if (grid_create(&g, world, A.dp, A.pp, A.tp, err, sizeof err)) lethe_fatal("test: %s", err);
    build_for_grid(&t, &big, &g);
    fill_expected(&t);
    memset(t.m, 0xff, t.total * sizeof(float));
    memset(t.v, 0xff, t.total * sizeof(float));
    lethe_ckpt_meta m;
    memset(&m, 0, sizeof m);
    m.moments_zero = 1;
    int rc = ckpt_save(path, &t, &g, &m, err, sizeof err);
    CHECK(rc == 0, "zero moments: save failed: %s", err);
    params_free(&t);
    grid_free(&g);
    if (grid_create(&g, world, B.dp, B.pp, B.tp, err, sizeof err)) lethe_fatal("test: %s", err);
    build_for_grid(&t, &big, &g);
    build_for_grid(&want, &big, &g);
    fill_expected(&want);
    memset(want.m, 0, want.total * sizeof(float));
    memset(want.v, 0, want.total * sizeof(float));
    fill_garbage(&t);
    rc = ckpt_load(path, &t, &g, NULL, 1, err, sizeof err);
    CHECK(rc == 0, "zero moments: load failed: %s", err);
    compare_buffers(&t, &want, 3, "zero moments");
    params_free(&t);
    params_free(&want);
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
    snprintf(path, sizeof path, "%s/zero-moments.h5", dir);
    zero_moments_case(world, path, E, L[0]);
    if (wrank == 0) printf("  zero moments written in blocks: %d failures so far\n", failures);
    mask_cases(world, dir, L, nl);
    if (wrank == 0) {
        digest_cases();
        printf("  digests of formats 1 and 2 against their terms: %d failures so far\n", failures);
    }
    if (wrank == 0) printf("  WAGLE mask under every layout: %d failures so far\n", failures);

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

int main(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "--atomic")) return run_atomic(argc >= 3 ? argv[2] : ".");
    comm_init(&argc, &argv);
    int rc = run_mpi();
    MPI_Finalize();
    return rc;
}
