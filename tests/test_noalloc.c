/* tests/test_noalloc.c — no allocation inside a training step.
 *
 * Run under mpirun with tests/alloc_count.c preloaded (LD_PRELOAD; the test fails if
 * the interposer is absent). For every layout dp x pp x tp of the world that the model
 * admits, it builds the model (micro-batches of 2 rows, 2 per step, so pipelines run
 * 1F1B with sends both ways; dp > 1 takes the split update and its reduce-scatter),
 * runs one warm-up step, then counts the heap allocations of 10 more steps
 * (model_count_targets and model_train_step, as the jobs' loop calls them). Every
 * allocation is attributed by its return address (dladdr) to the image it came from:
 * lethe's code is linked into this program, so an allocation from this image is
 * lethe's and must not happen; one from MPI, OpenBLAS or the C library is printed
 * with its library and count, and not failed. First a canary: one malloc from this
 * program while counting must be seen and attributed here, or the counter is not
 * working and the test fails. Prints one PASS or FAIL line per case and the count. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/synth/markov_stream.h"
#include "model/step.h"
#include "model/transformer.h"
#include "mpi/comm.h"
#include "mpi/fatal.h"
#include "mpi/grid.h"
#include "tests/layout_list.h"

#define T 16
#define GLOBAL_B 8
#define MICRO 2
#define STEPS 10
#define MAX_LIBS 8

typedef unsigned long (*switch_fn)(int on);
typedef void *(*caller_fn)(unsigned long k);

typedef struct {
    switch_fn on;
    caller_fn caller;
    const void *self; /* the base address of this program's image (lethe's code) */
} counter;

/* Allocations counted in one window, split by image. */
typedef struct {
    unsigned long total, self;
    int nlib;
    char lib[MAX_LIBS][128];
    unsigned long n[MAX_LIBS];
} tally;

static void attribute(const counter *c, unsigned long total, tally *t)
{
    memset(t, 0, sizeof *t);
    t->total = total;
    for (unsigned long k = 0; k < total; k++) {
        void *a = c->caller(k);
        Dl_info info;
        const char *name = "(unknown: beyond the recorded callers)";
        if (a && dladdr(a, &info) && info.dli_fbase == c->self) {
            t->self++;
            continue;
        }
        if (a && dladdr(a, &info) && info.dli_fname) name = info.dli_fname;
        int i = 0;
        while (i < t->nlib && strcmp(t->lib[i], name)) i++;
        if (i == t->nlib && t->nlib < MAX_LIBS) snprintf(t->lib[t->nlib++], 128, "%s", name);
        if (i < MAX_LIBS) t->n[i]++;
    }
}

static lethe_model_config cfg(void)
{
    lethe_model_config c = {.vocab_size = 61, .dim = 32, .n_layers = 4, .n_heads = 4,
                            .n_kv_heads = 2, .mlp_dim = 48, .max_seq_len = T,
                            .rope_theta = 10000.0f, .norm_eps = 1e-5f, .tie_embeddings = 1,
                            .init_std = 0.05f, .init_seed = 11};
    return c;
}

static lethe_optim_config optim(void)
{
    lethe_optim_config o;
    memset(&o, 0, sizeof o);
    o.schedule = SCHEDULE_LINEAR;
    o.lr = 1e-3f;
    o.warmup_steps = 2;
    o.beta1 = 0.9f;
    o.beta2 = 0.95f;
    o.eps = 1e-8f;
    o.weight_decay = 0.01f;
    o.grad_clip = 1.0f;
    o.shard_update = 1;
    return o;
}

/* One layout: a warm-up step, then STEPS counted ones. The counts of this rank. */
static void run_layout(const counter *c, const test_layout *L, tally *t)
{
    lethe_model_config mc = cfg();
    lethe_optim_config o = optim();
    char err[256];
    lethe_grid g;
    if (grid_create(&g, MPI_COMM_WORLD, L->dp, L->pp, L->tp, err, sizeof err))
        lethe_fatal("%s", err);
    int Br = GLOBAL_B / L->dp;
    lethe_model m;
    model_create(&m, &mc, &g, Br / MICRO, T, MICRO);
    model_init_weights(&m);
    synth_stream src = {3, mc.vocab_size, 2, 2, 4};
    int *tok = malloc(sizeof(int) * (STEPS + 1) * Br * T);
    int *tg = malloc(sizeof(int) * (STEPS + 1) * Br * T);
    lethe_batch b[STEPS + 1];
    for (int s = 0; s <= STEPS; s++) {
        b[s] = (lethe_batch){Br, T, tok + (size_t)s * Br * T, tg + (size_t)s * Br * T, NULL, NULL};
        synth_stream_batch(&src, s, (int64_t)g.dp_rank * Br, Br, T, b[s].tokens, b[s].targets);
    }
    step_stats st;
    unsigned long n = 0;
    for (int s = 0; s <= STEPS; s++) {
        if (s == 1) c->on(1); /* step 0 is the warm-up: MPI sets up its collectives */
        nll_objective_ctx ctx = {1.0 / model_count_targets(&m, &b[s])};
        lethe_objective obj = {nll_objective_seq, &ctx, NULL};
        model_train_step(&m, &b[s], &obj, &o, NULL, s, STEPS + 1, &st);
        if (s == STEPS) n = c->on(0);
    }
    attribute(c, n, t);
    free(tok);
    free(tg);
    model_free(&m);
    grid_free(&g);
}

/* Prints this rank's allocations outside lethe (rank order), and returns the sums over
 * the world of lethe's and of all allocations. */
static void report(const tally *t, int rank, int size, const char *what, unsigned long sums[2])
{
    for (int r = 0; r < size; r++) {
        if (r == rank)
            for (int i = 0; i < t->nlib; i++)
                printf("  %s: rank %d: %lu allocation(s) by %s\n", what, rank, t->n[i],
                       t->lib[i]);
        fflush(stdout);
        MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
    }
    sums[0] = t->self;
    sums[1] = t->total;
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, sums, 2, MPI_UNSIGNED_LONG, MPI_SUM, MPI_COMM_WORLD));
}

/* The counter must see a malloc from this program and attribute it here. */
static int canary(const counter *c, int rank, int size)
{
    c->on(1);
    void *volatile p = malloc(24);
    unsigned long n = c->on(0);
    free(p);
    tally t;
    attribute(c, n, &t);
    unsigned long sums[2];
    report(&t, rank, size, "canary", sums);
    int ok = sums[0] >= (unsigned long)size;
    if (rank == 0)
        printf("%s canary: a malloc in this program counted (%lu on %d rank(s), %lu in all)\n",
               ok ? "PASS" : "FAIL", sums[0], size, sums[1]);
    return ok;
}

int main(int argc, char **argv)
{
    comm_init(&argc, &argv);
    int rank, size;
    MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
    MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size));
    counter c = {(switch_fn)dlsym(RTLD_DEFAULT, "alloc_count_switch"),
                 (caller_fn)dlsym(RTLD_DEFAULT, "alloc_count_caller"), NULL};
    Dl_info self;
    if (!c.on || !c.caller || !dladdr((void *)model_train_step, &self)) {
        if (rank == 0)
            printf("FAIL the allocation counter is not loaded (LD_PRELOAD=liblethe_alloc_count.so)"
                   "\nnoalloc: 0 of 1 cases PASS\n");
        MPI_Finalize();
        return 1;
    }
    c.self = self.dli_fbase;
    int cases = 1, pass = canary(&c, rank, size);
    test_layout L[16];
    int nl = test_layouts_of(size, L, 16);
    lethe_model_config mc = cfg();
    for (int i = 0; i < nl; i++) {
        char err[256];
        if (model_check_layout(&mc, L[i].dp, L[i].pp, L[i].tp, GLOBAL_B, MICRO, T, err, sizeof err))
            continue;
        char what[64];
        snprintf(what, sizeof what, "dp%d pp%d tp%d", L[i].dp, L[i].pp, L[i].tp);
        tally t;
        run_layout(&c, &L[i], &t);
        unsigned long sums[2];
        report(&t, rank, size, what, sums);
        int ok = sums[0] == 0;
        cases++;
        pass += ok;
        if (rank == 0)
            printf("%s %s: %d steps: %lu allocation(s) by lethe, %lu by other libraries "
                   "(all ranks)\n",
                   ok ? "PASS" : "FAIL", what, STEPS, sums[0], sums[1] - sums[0]);
    }
    if (rank == 0) printf("noalloc: %d of %d cases PASS\n", pass, cases);
    fflush(stdout);
    MPI_Finalize();
    return pass == cases && cases > 1 ? 0 : 1;
}
