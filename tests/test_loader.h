/* tests/test_loader.h — what the three files of test_loader share (test_loader.c: the
 * fixture, the helpers, main and the bench; test_loader_order.c: order, dp slices, the
 * partial last batch and cursor resume; test_loader_files.c: the memory budget, bad
 * datasets and the h5py example's file): the rank-printing CHECK and its counters, the
 * fixture's sizes and value functions, and the prototypes of the helpers and the tests. */
#ifndef LETHE_TEST_LOADER_H
#define LETHE_TEST_LOADER_H

#include "io/dataset.h"
#include "io/loader.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* this rank, the rank count (set by main) and the failed checks; defined in test_loader.c */
extern int rank, size, failures;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            failures++;                                                                            \
            fprintf(stderr, "FAIL rank %d %s:%d: ", rank, __FILE__, __LINE__);                     \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
        }                                                                                          \
    } while (0)

#define V 500 /* vocabulary of the fixtures */

/* Small, because every collective read costs milliseconds on an oversubscribed node. */
#define N_MAIN 240
#define T_MAIN 32
#define B_MAIN 48

/* The fixture's value functions and helpers (test_loader.c). */
int len_of(int64_t i, int t);
int64_t sid_of(int64_t i);
void make_file(const char *path, int64_t n, int t, int cand);
int check_rows(const loader_batch *b, int cand);
loader *open_or_die(const char *path, const char *split, const loader_opts *o);
int next_or_die(loader *ld, loader_batch **b);
uint64_t fnv(uint64_t h, const void *p, size_t n);
uint64_t batch_hash(const loader_batch *b);

/* test_loader_order.c */
void test_order(const char *path);
void test_partial(const char *path);
void test_cursor(const char *path);

/* test_loader_files.c */
void test_budget(const char *path);
void test_bad(const char *good, const char *prefix);
void test_h5py(const char *path);

#endif
