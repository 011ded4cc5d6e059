/* tests/test_synth.h — what the four files of test_synth share (test_synth.c: reading
 * splits back, digests, generation helpers, the `lethe synth` job and main;
 * test_synth_authors.c: the fictitious-author study; test_synth_markov.c: the chain mixture
 * and the KL helper; test_synth_difficulty.c: synth.difficulty): the directory files go to, one
 * split read back, and the helpers that generate, write, digest and refuse a config. */
#ifndef LETHE_TEST_SYNTH_H
#define LETHE_TEST_SYNTH_H

#include "io/config.h"
#include "io/synth/synth.h"

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

extern const char *workdir;

/* One split read back: (n, t) rows, (n) lengths/answer starts/sample ids; the paraphrased
 * (n, t) and perturbed (n, k, t) candidates when the split has them. */
typedef struct {
    int64_t n;
    int t, k, has_para, has_pert;
    int32_t *ids, *len, *as;
    int64_t *sid;
    int32_t *pids, *plen, *pas;
    int32_t *xids, *xlen, *xas;
} split_data;

void *read_all(hid_t g, const char *name, hid_t memtype, size_t elem, int64_t *count);
int read_split(split_data *s, const char *path, const char *split);
void split_free(split_data *s);
uint64_t file_digest(const char *path, const synth_summary *m);
int find_split(const synth_summary *m, const char *name);
synth_data *make(const lethe_synth_config *c, synth_summary *m);
void expect_refusal(const lethe_synth_config *c, const char *key, const char *also);

void test_authors(void);   /* test_synth_authors.c */
void test_kl_helper(void); /* test_synth_markov.c */
void test_markov(void);
void test_difficulty(void); /* test_synth_difficulty.c */
void test_idk(void);        /* test_synth_idk.c */

#endif
