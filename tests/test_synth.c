/* tests/test_synth.c — the built-in benchmark data (io/synth/synth.h, jobs/synth.c).
 *
 *   test_synth authors DIR   fictitious authors: determinism by digest, splits and row
 *                            counts, forget/retain/holdout author sets, sample ids shared
 *                            across splits, answer/paraphrase/perturbed texts, ids, the JSON
 *                            lines through `prepare` (same vocabulary, same rows), bad configs
 *                            (test_synth_authors.c)
 *   test_synth difficulty DIR  synth.difficulty: off changes nothing; buckets per row,
 *                            their counts, tails (length, common/rare words), answer
 *                            tokens, refusals (test_synth_difficulty.c)
 *   test_synth markov DIR    chain mixture: determinism, splits, the stored matrices,
 *                            empirical transitions and leakage against the true chains,
 *                            and the per-token KL helper (test_synth_markov.c)
 *   test_synth job DIR       `lethe synth` under mpirun at 1 and 2 ranks ($MPIRUN, $LETHE_BIN)
 *                            writes the same token content as the library, and refuses a bad
 *                            config with exit 2 and no output
 * Serial (the library calls need no MPI); files go to DIR. This file holds what the modes
 * share (reading a split back, the digest of a file's token content, generating, writing and
 * expecting a refusal), the job mode and main. */
#include "test_synth.h"
#include "io/dataset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include "check.h"

CHECK_COUNTERS;

const char *workdir;

/* ---- reading a split back -------------------------------------------------------------- */

/* Reads a whole integer dataset (NULL when it does not exist). */
void *read_all(hid_t g, const char *name, hid_t memtype, size_t elem, int64_t *count)
{
    if (H5Lexists(g, name, H5P_DEFAULT) <= 0) return NULL;
    hid_t d = H5Dopen2(g, name, H5P_DEFAULT);
    hid_t s = H5Dget_space(d);
    hssize_t n = H5Sget_simple_extent_npoints(s);
    void *buf = malloc((size_t)(n > 0 ? n : 1) * elem);
    if (H5Dread(d, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
        free(buf);
        buf = NULL;
    }
    H5Sclose(s);
    H5Dclose(d);
    if (count) *count = (int64_t)n;
    return buf;
}

int read_split(split_data *s, const char *path, const char *split)
{
    memset(s, 0, sizeof *s);
    dataset_info info;
    char err[1024];
    if (dataset_inspect(&info, path, split, DATASET_CHECK_IDS, 0, err, sizeof err)) {
        CHECK(0, "%s: %s", split, err);
        return -1;
    }
    s->n = info.n;
    s->t = info.t;
    s->k = info.k;
    s->has_para = info.has_para;
    s->has_pert = info.has_pert;
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t g = H5Gopen2(f, split, H5P_DEFAULT);
    s->ids = read_all(g, "input_ids", H5T_NATIVE_INT32, 4, NULL);
    s->len = read_all(g, "lengths", H5T_NATIVE_INT32, 4, NULL);
    s->as = read_all(g, "answer_start", H5T_NATIVE_INT32, 4, NULL);
    s->sid = read_all(g, "sample_id", H5T_NATIVE_INT64, 8, NULL);
    s->pids = read_all(g, "paraphrased_ids", H5T_NATIVE_INT32, 4, NULL);
    s->plen = read_all(g, "paraphrased_lengths", H5T_NATIVE_INT32, 4, NULL);
    s->pas = read_all(g, "paraphrased_answer_start", H5T_NATIVE_INT32, 4, NULL);
    s->xids = read_all(g, "perturbed_ids", H5T_NATIVE_INT32, 4, NULL);
    s->xlen = read_all(g, "perturbed_lengths", H5T_NATIVE_INT32, 4, NULL);
    s->xas = read_all(g, "perturbed_answer_start", H5T_NATIVE_INT32, 4, NULL);
    H5Gclose(g);
    H5Fclose(f);
    return 0;
}

void split_free(split_data *s)
{
    free(s->ids);
    free(s->len);
    free(s->as);
    free(s->sid);
    free(s->pids);
    free(s->plen);
    free(s->pas);
    free(s->xids);
    free(s->xlen);
    free(s->xas);
    memset(s, 0, sizeof *s);
}

/* FNV-1a over bytes: an independent digest of what was read back. */
static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* Digest of every integer dataset of every split (the token content of the file). */
uint64_t file_digest(const char *path, const synth_summary *m)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (int i = 0; i < m->n_splits; i++) {
        split_data s;
        if (read_split(&s, path, m->split[i])) return 0;
        size_t nt = (size_t)s.n * (size_t)s.t, k = (size_t)s.k;
        h = fnv(h, m->split[i], strlen(m->split[i]) + 1);
        h = fnv(h, s.ids, 4 * nt);
        h = fnv(h, s.len, 4 * (size_t)s.n);
        h = fnv(h, s.as, 4 * (size_t)s.n);
        h = fnv(h, s.sid, 8 * (size_t)s.n);
        if (s.has_para) {
            h = fnv(h, s.pids, 4 * nt);
            h = fnv(h, s.plen, 4 * (size_t)s.n);
            h = fnv(h, s.pas, 4 * (size_t)s.n);
        }
        if (s.has_pert) {
            h = fnv(h, s.xids, 4 * nt * k);
            h = fnv(h, s.xlen, 4 * (size_t)s.n * k);
            h = fnv(h, s.xas, 4 * (size_t)s.n * k);
        }
        split_free(&s);
    }
    return h;
}

int find_split(const synth_summary *m, const char *name)
{
    for (int i = 0; i < m->n_splits; i++)
        if (strcmp(m->split[i], name) == 0) return i;
    return -1;
}

/* Generates and writes `c`; returns the data (caller frees) or NULL. */
synth_data *make(const lethe_synth_config *c, synth_summary *m)
{
    char err[1024];
    synth_data *d = NULL;
    if (synth_generate(&d, c, err, sizeof err)) {
        CHECK(0, "synth_generate (%s, seed %llu): %s", c->kind, (unsigned long long)c->seed, err);
        return NULL;
    }
    if (synth_write(d, err, sizeof err)) {
        CHECK(0, "synth_write '%s': %s", c->output, err);
        synth_free(d);
        return NULL;
    }
    synth_get_summary(d, m);
    return d;
}

void expect_refusal(const lethe_synth_config *c, const char *key, const char *also)
{
    char err[1024] = "";
    synth_data *d = NULL;
    int rc = synth_generate(&d, c, err, sizeof err);
    CHECK(rc != 0 && !d && strstr(err, key) && (!also || strstr(err, also)),
          "bad config (%s): rc %d, message \"%s\", expected one naming '%s'%s%s", key, rc, err, key,
          also ? " and " : "", also ? also : "");
    if (rc == 0)
        synth_free(d);
    else
        printf("refused as expected: %s\n", err);
}

/* ---- the job ------------------------------------------------------------------------------ */

static int run(const char *cmd)
{
    printf("+ %s\n", cmd);
    fflush(stdout);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static void test_job(const char *config)
{
    const char *mpirun = getenv("MPIRUN"), *bin = getenv("LETHE_BIN");
    if (!mpirun || !*mpirun || !bin || !*bin) {
        CHECK(0, "MPIRUN and LETHE_BIN must be set (ctest sets them)");
        return;
    }
    /* the library's own output for the config, then the job's at 1 and 2 ranks */
    lethe_config cfg;
    char err[1024];
    char *over[2] = {"synth.n_authors=20", "synth.write_jsonl=false"};
    if (config_load(&cfg, config, over, 2, err, sizeof err)) {
        CHECK(0, "%s", err);
        return;
    }
    snprintf(cfg.synth.output, sizeof cfg.synth.output, "%s/job_ref.h5", workdir);
    synth_summary ref;
    synth_data *d = make(&cfg.synth, &ref);
    if (!d) return;
    uint64_t want = file_digest(cfg.synth.output, &ref);
    synth_free(d);
    for (int np = 1; np <= 2; np++) {
        char cmd[8192], out[1100], dir[1100], sum[1200];
        snprintf(out, sizeof out, "%s/job_np%d/data/authors.h5", workdir, np);
        snprintf(dir, sizeof dir, "%s/job_np%d/run", workdir, np);
        snprintf(cmd, sizeof cmd,
                 "rm -rf '%s/job_np%d' && '%s' --oversubscribe -n %d '%s' synth '%s' --set "
                 "synth.n_authors=20 --set synth.write_jsonl=false --set synth.output='%s' "
                 "--set output.dir='%s'",
                 workdir, np, mpirun, np, bin, config, out, dir);
        int rc = run(cmd);
        CHECK(rc == 0, "lethe synth at %d ranks exited %d", np, rc);
        if (rc) continue;
        uint64_t got = file_digest(out, &ref);
        CHECK(got == want, "lethe synth at %d ranks: content %016llx, library %016llx", np,
              (unsigned long long)got, (unsigned long long)want);
        struct stat st;
        snprintf(sum, sizeof sum, "%s/synth.json", dir);
        CHECK(stat(sum, &st) == 0, "no '%s'", sum);
        snprintf(sum, sizeof sum, "%s/config.json", dir);
        CHECK(stat(sum, &st) == 0, "no '%s'", sum);
    }
    /* a refused config: exit 2, one line naming the key, nothing written */
    for (int np = 1; np <= 2; np++) {
        char cmd[8192], log[1100], dir[1100], line[1024] = "";
        snprintf(log, sizeof log, "%s/job_bad_np%d.log", workdir, np);
        snprintf(dir, sizeof dir, "%s/job_bad_np%d", workdir, np);
        snprintf(cmd, sizeof cmd,
                 "rm -rf '%s'; '%s' --oversubscribe -n %d '%s' synth '%s' --set synth.questions=13 "
                 "--set synth.output='%s/data/x.h5' --set output.dir='%s/run' 2>'%s'",
                 dir, mpirun, np, bin, config, dir, dir, log);
        int rc = run(cmd);
        FILE *f = fopen(log, "r");
        int lines = 0;
        char buf[1024];
        while (f && fgets(buf, sizeof buf, f))
            if (strncmp(buf, "lethe: ", 7) == 0) {
                lines++;
                snprintf(line, sizeof line, "%s", buf);
            }
        if (f) fclose(f);
        struct stat st;
        CHECK(rc == 2 && lines == 1 && strstr(line, "synth.questions") && stat(dir, &st) != 0,
              "bad config at %d ranks: exit %d, %d 'lethe:' lines (\"%s\"), output %s", np, rc,
              lines, line, stat(dir, &st) == 0 ? "created" : "absent");
        printf("refused at %d ranks: %s", np, line);
    }
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: test_synth authors|difficulty|idk|markov|job DIR [CONFIG]\n");
        return 2;
    }
    workdir = argv[2];
    mkdir(workdir, 0755);
    if (!strcmp(argv[1], "authors")) {
        test_authors();
    } else if (!strcmp(argv[1], "difficulty")) {
        test_difficulty();
    } else if (!strcmp(argv[1], "idk")) {
        test_idk();
    } else if (!strcmp(argv[1], "markov")) {
        test_kl_helper();
        test_markov();
    } else if (!strcmp(argv[1], "job") && argc > 3) {
        test_job(argv[3]);
    } else {
        fprintf(stderr, "test_synth: unknown mode '%s'\n", argv[1]);
        return 2;
    }
    if (failures) {
        fprintf(stderr, "test_synth %s: %d check(s) failed\n", argv[1], failures);
        return 1;
    }
    printf("test_synth %s: all checks passed\n", argv[1]);
    return 0;
}
