/* tests/test_metrics.h — what the two files of test_metrics (test_metrics.c: ROUGE-L,
 * AUC, means and the --dump cases; test_metrics_ks.c: the KS test) share: the tally of
 * checks, CHECK, a relative tolerance and a seeded generator (splitmix64). */
#ifndef LETHE_TEST_METRICS_H
#define LETHE_TEST_METRICS_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>

typedef struct {
    int failures, checks;
} tally;

#define CHECK(t, cond, ...)                                                                        \
    do {                                                                                           \
        (t)->checks++;                                                                             \
        if (!(cond)) {                                                                             \
            (t)->failures++;                                                                       \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                   \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

static inline int rel_close(double got, double want, double tol)
{
    if (got == want) return 1;
    return fabs(got - want) <= tol * fabs(want);
}

/* ---------------------------------------------------------------- rng */

typedef struct {
    uint64_t s;
} rng;

static inline uint64_t rng_u64(rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull); /* splitmix64 */
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline double rng_unif(rng *r) /* [0, 1) */
{
    return (double)(rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
}

static inline int64_t rng_int(rng *r, int64_t lo, int64_t hi) /* [lo, hi] */
{
    return lo + (int64_t)(rng_u64(r) % (uint64_t)(hi - lo + 1));
}

static inline double rng_normal(rng *r)
{
    double u = rng_unif(r), v = rng_unif(r);
    return sqrt(-2.0 * log(1.0 - u)) * cos(6.283185307179586 * v);
}

/* The KS checks (test_metrics_ks.c). */
void test_ks(tally *t);

#endif
