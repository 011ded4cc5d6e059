/* tests/test_kernels.c — an independent check of every kernel in model/kernels.h.
 * This file holds the harness and the list of cases; test_kernels_dense.c,
 * test_kernels_sequence.c and test_kernels_nll.c hold the cases.
 *
 * Each fp32 kernel is compared with a double-precision reference written in these files
 * straight from the math (no code shared with model/kernels.c):
 *   forward   |got - ref| <= 1e-5 * max(|ref|, mag), where mag is the sum of the absolute
 *             values of the terms the reference added (so an output that cancels to
 *             nearly zero is judged against the size of what was summed, the accuracy
 *             fp32 can promise); exact (tol 0) where the kernel only copies or selects.
 *             Attention probabilities exp(s - m) are relative to |p| (1 + 2 A), A the
 *             largest sum_i |q_i k_i| / sqrt(hd) of the row: exp turns the score's absolute
 *             error into p's relative error.
 *   backward  L = sum(out * R) for a fixed random R; every analytic gradient entry is
 *             compared with a central difference (h = 1e-5) of the double reference:
 *             |got - fd| <= 1e-4 * max(|fd|, 0.1 * max_j |fd_j|), i.e. 1e-4 relative
 *             with an absolute floor of 1e-5 times the largest entry of that gradient.
 *             The FD error in double is about 1e-10, far below the tolerance.
 *   twice     a backward called twice gives 2x the once-result:
 *             |g2 - 2 g1| <= 1e-6 * max_j |2 g1_j| (accumulation, not overwrite).
 * Sizes are small, non-square, often not multiples of 8; attention runs GQA (NH=4,
 * NKV=2), MQA and NH=NKV at T=1 and T=7. The RNG has a fixed seed. Every failure
 * prints the kernel, the array, the index and both values; the program exits 1 if any
 * check failed and prints the largest error of every check. */
#include "test_kernels.h"
#include "model/kernels.h"
#include "mpi/fatal.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- rng and checks */

static uint64_t rng_state = 0x243f6a8885a308d3ull;

uint64_t rng_u64(void)
{
    /* splitmix64: fixed seed, same numbers on every machine */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static float frand(float lo, float hi)
{
    return lo + (hi - lo) * (float)((rng_u64() >> 40) * (1.0 / 16777216.0));
}

void fill(float *x, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i++) x[i] = frand(lo, hi);
}

void fill_const(float *x, size_t n, float v)
{
    for (size_t i = 0; i < n; i++) x[i] = v;
}

double *to_double(const float *x, size_t n)
{
    double *d = lethe_malloc(n * sizeof *d, "test double copy");
    for (size_t i = 0; i < n; i++) d[i] = x[i];
    return d;
}

float *falloc(size_t n)
{
    return lethe_calloc(n, sizeof(float), "test float array");
}

double *dalloc(size_t n)
{
    return lethe_calloc(n, sizeof(double), "test double array");
}

typedef struct {
    char name[128];
    double tol, max_err;
    long checks, fails;
} record;

static record records[128];
static int nrecords;
long total_fails;
char current_case[160];

static record *find_record(const char *kernel, const char *what, double tol)
{
    char name[128];
    snprintf(name, sizeof name, "%s %s", kernel, what);
    for (int i = 0; i < nrecords; i++)
        if (strcmp(records[i].name, name) == 0) return &records[i];
    if (nrecords == (int)(sizeof records / sizeof records[0]))
        lethe_fatal("test_kernels: more than %d checks", nrecords);
    record *r = &records[nrecords++];
    snprintf(r->name, sizeof r->name, "%s", name);
    r->tol = tol;
    return r;
}

/* err = |got - ref| / max(|ref|, scale); a zero denominator demands equality. */
void check(const char *kernel, const char *what, size_t idx, double got, double ref, double scale,
           double tol)
{
    record *r = find_record(kernel, what, tol);
    double denom = fmax(fabs(ref), scale), err;
    if (got == ref) /* also equal infinities, e.g. the -INF max of an empty shard */
        err = 0.0;
    else if (!isfinite(got) || !isfinite(ref))
        err = INFINITY;
    else if (denom == 0.0)
        err = got == ref ? 0.0 : INFINITY;
    else
        err = fabs(got - ref) / denom;
    r->checks++;
    if (!(err <= r->max_err)) r->max_err = err;
    if (!(err <= tol)) { /* a NaN error fails too */
        r->fails++;
        total_fails++;
        if (r->fails <= 5)
            printf("FAIL %s %s[%zu]: got %.9g expected %.9g (err %.3g > tol %.0e) [%s]\n", kernel,
                   what, idx, got, ref, err, tol, current_case);
    }
}

/* A plain true/false property (a row sum, an untouched pad) reported like a value. */
void check_exact(const char *kernel, const char *what, size_t idx, double got, double ref)
{
    check(kernel, what, idx, got, ref, 0.0, 0.0);
}

/* Compares the analytic gradient g (n entries, the derivative of the context's loss with
 * respect to param) with central differences of the double reference. At most max_entries
 * entries are checked (a random sample when n is larger). */
void check_grad(const char *kernel, const char *what, const float *g, double *param, size_t n,
                loss_fn loss, void *ctx, size_t max_entries)
{
    size_t m = n < max_entries ? n : max_entries;
    size_t *idx = lethe_malloc(m * sizeof *idx, "fd index");
    double *fd = dalloc(m), gmax = 0.0;
    for (size_t j = 0; j < m; j++) {
        size_t i = m == n ? j : (size_t)(rng_u64() % n);
        double save = param[i];
        param[i] = save + FD_H;
        double lp = loss(ctx);
        param[i] = save - FD_H;
        double lm = loss(ctx);
        param[i] = save;
        idx[j] = i;
        fd[j] = (lp - lm) / (2.0 * FD_H);
        gmax = fmax(gmax, fabs(fd[j]));
    }
    char w[48];
    snprintf(w, sizeof w, "%s(FD)", what);
    for (size_t j = 0; j < m; j++) check(kernel, w, idx[j], g[idx[j]], fd[j], 0.1 * gmax, TOL_FD);
    free(idx);
    free(fd);
}

/* g2 (after two backward calls from zero) must be 2 * g1 (after one). */
void check_twice(const char *kernel, const char *what, const float *g1, const float *g2, size_t n)
{
    double gmax = 0.0;
    for (size_t i = 0; i < n; i++) gmax = fmax(gmax, fabs(2.0 * g1[i]));
    char w[48];
    snprintf(w, sizeof w, "%s(2x)", what);
    for (size_t i = 0; i < n; i++) check(kernel, w, i, g2[i], 2.0 * g1[i], gmax, TOL_TWICE);
}

double bits_differing(const float *a, const float *b, size_t n)
{
    size_t d = 0;
    for (size_t i = 0; i < n; i++) d += memcmp(&a[i], &b[i], sizeof(float)) != 0;
    return (double)d;
}

/* ---------------------------------------------------------------- main */

int main(void)
{
    /* (N, C, OC): square, non-square, 1, not multiples of 8, and one large enough for a
     * blocked or BLAS path, whose gradients are checked on a random sample of entries */
    int mm[][3] = {{1, 1, 1}, {5, 7, 3}, {8, 16, 8}, {13, 37, 11}, {3, 64, 40}, {48, 130, 72}};
    for (size_t i = 0; i < sizeof mm / sizeof mm[0]; i++)
        test_matmul(mm[i][0], mm[i][1], mm[i][2], i + 1 < sizeof mm / sizeof mm[0] ? 4096 : 300);

    /* decoding steps: C below, at and above 16 (the skinny path's lanes), with tails */
    int mr[][2] = {{7, 5}, {16, 3}, {300, 24}, {256, 33}};
    for (size_t i = 0; i < sizeof mr / sizeof mr[0]; i++) test_matmul_rows(mr[i][0], mr[i][1]);

    /* C = 1 is left out: there dinp = w R rstd (1 - x^2 rstd^2) ~ eps / x^2 is all
     * cancellation, which fp32 cannot give to 1e-4 */
    int rn[][2] = {{1, 2}, {3, 8}, {5, 37}, {4, 64}};
    for (size_t i = 0; i < sizeof rn / sizeof rn[0]; i++) test_rmsnorm(rn[i][0], rn[i][1]);

    /* (B, T, nh, hd, stride): stride > nh*hd is a row of a fused or padded buffer */
    int rp[][5] = {{1, 1, 1, 2, 2},  {2, 7, 3, 8, 24},   {2, 5, 3, 8, 29},
                   {1, 4, 2, 6, 12}, {1, 9, 2, 64, 131}, {2, 7, 1, 8, 3 * 8 + 16}};
    for (size_t i = 0; i < sizeof rp / sizeof rp[0]; i++) {
        test_rope(rp[i][0], rp[i][1], rp[i][2], rp[i][3], rp[i][4], 10000.0f);
        test_rope(rp[i][0], rp[i][1], rp[i][2], rp[i][3], rp[i][4], 500000.0f);
    }

    /* (B, T, NH, NKV, hd): GQA, NH == NKV, MQA; T = 1 and T = 7 */
    int at[][5] = {{1, 1, 4, 2, 8}, {2, 7, 4, 2, 8},  {2, 7, 4, 4, 8}, {1, 1, 4, 4, 8},
                   {1, 7, 4, 1, 8}, {2, 5, 2, 1, 16}, {1, 12, 6, 2, 8}};
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++)
        test_attention(at[i][0], at[i][1], at[i][2], at[i][3], at[i][4], 1.5f);
    test_attention(2, 7, 4, 2, 8, 12.0f);
    /* T = 150: three query blocks of the causal block skipping (64, 64, 22 rows) */
    test_attention(1, 150, 2, 1, 4, 1.5f);

    size_t sw[] = {1, 8, 37, 100};
    for (size_t i = 0; i < sizeof sw / sizeof sw[0]; i++) test_swiglu(sw[i]);
    test_swiglu_extreme();
    test_swiglu_nonfinite();

    test_embedding(19, 5, 11, 1);
    test_embedding(19, 5, 11, 2);
    test_embedding(19, 5, 11, 3);
    test_embedding(8, 16, 4, 3);

    test_ce(5, 23);
    test_ce(1, 7);
    test_ce(9, 40);
    test_ce_fused(5, 23, 23);
    test_ce_fused(9, 40, 48);
    test_ce_fused(3, 1000, 1003);
    /* one shard (padded), two and three shards, an empty last shard; w < 0 and > 0 */
    test_ce_nll_sharded(5, 23, 1, 24, -0.37f);
    test_ce_nll_sharded(9, 40, 2, 20, -0.37f);
    test_ce_nll_sharded(6, 41, 3, 16, 1.5f);
    test_ce_nll_sharded(4, 30, 3, 16, -1.0f);

    test_add_inplace(1);
    test_add_inplace(37);

    size_t sq[] = {0, 1, 15, 16, 17, 4095, 4096, 4097, 100003};
    for (size_t i = 0; i < sizeof sq / sizeof sq[0]; i++) test_sum_squares(sq[i]);

    printf("%-52s %8s %10s %10s\n", "check", "entries", "max err", "tol");
    for (int i = 0; i < nrecords; i++)
        printf("%-52s %8ld %10.3e %10.0e%s\n", records[i].name, records[i].checks,
               records[i].max_err, records[i].tol, records[i].fails ? "  FAILED" : "");
    if (total_fails) {
        printf("test_kernels: %ld checks failed\n", total_fails);
        return 1;
    }
    printf("test_kernels: all %d checks passed\n", nrecords);
    return 0;
}
