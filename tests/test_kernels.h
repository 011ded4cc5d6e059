/* tests/test_kernels.h — what the three files of test_kernels share: the tolerances and the
 * sentinel, the fixed-seed RNG and the fill/allocation helpers, the recorded checks (a value
 * against a reference, an analytic gradient against finite differences, a backward called
 * twice) and the case functions that main (tests/test_kernels.c) runs. Every case draws its
 * data from the one RNG stream, so main keeps the cases in a fixed order. */
#ifndef LETHE_TESTS_TEST_KERNELS_H
#define LETHE_TESTS_TEST_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#define TOL_FWD 1e-5
#define TOL_FD 1e-4
#define TOL_TWICE 1e-6
#define FD_H 1e-5
/* A value no kernel produces: forward outputs are pre-filled with it to prove that the
 * kernel overwrites every entry it owns, and padding is filled with it to prove that
 * nothing outside the contract is written. */
#define SENTINEL 12345.678f

extern long total_fails;       /* failed checks over all records, plus the NaN-gate checks */
extern char current_case[160]; /* the sizes of the case under test, printed with failures */

uint64_t rng_u64(void);
void fill(float *x, size_t n, float lo, float hi);
void fill_const(float *x, size_t n, float v);
double *to_double(const float *x, size_t n);
float *falloc(size_t n);
double *dalloc(size_t n);

void check(const char *kernel, const char *what, size_t idx, double got, double ref, double scale,
           double tol);
void check_exact(const char *kernel, const char *what, size_t idx, double got, double ref);
typedef double (*loss_fn)(void *ctx);
void check_grad(const char *kernel, const char *what, const float *g, double *param, size_t n,
                loss_fn loss, void *ctx, size_t max_entries);
void check_twice(const char *kernel, const char *what, const float *g1, const float *g2, size_t n);
/* How many of the n floats of a differ from b's in their bits. */
double bits_differing(const float *a, const float *b, size_t n);

/* tests/test_kernels_dense.c: kernels that work on each position alone */
void test_matmul(int N, int C, int OC, size_t fd_entries);
void test_matmul_rows(int C, int OC);
void test_rmsnorm(int N, int C);
void test_swiglu(size_t N);
void test_swiglu_extreme(void);
void test_swiglu_nonfinite(void);
void test_add_inplace(size_t N);
void test_sum_squares(size_t N);

/* tests/test_kernels_sequence.c: kernels that depend on a token's position or id */
void test_rope(int B, int T, int nh, int hd, int stride, float theta);
void test_attention(int B, int T, int NH, int NKV, int hd, float amp);
void test_embedding(int V, int C, int N, int nshards);
void test_ce(int N, int V);
void test_ce_fused(int N, int V, int nv);

/* tests/test_kernels_nll.c: the token-mean NLL on vocabulary shards */
void test_ce_nll_sharded(int N, int V, int nshards, int nv, float w);

#endif
