/* tests/test_synth.c — the built-in benchmark data (io/synth/synth.h, jobs/synth.c).
 *
 *   test_synth authors DIR   fictitious authors: determinism by digest, splits and row
 *                            counts, forget/retain/holdout author sets, sample ids shared
 *                            across splits, answer/paraphrase/perturbed texts, ids, the JSON
 *                            lines through `prepare` (same vocabulary, same rows), bad configs
 *   test_synth markov DIR    chain mixture: determinism, splits, the stored matrices,
 *                            empirical transitions and leakage against the true chains,
 *                            and the per-token KL helper
 *   test_synth job DIR       `lethe synth` under mpirun at 1 and 2 ranks ($MPIRUN, $LETHE_BIN)
 *                            writes the same token content as the library, and refuses a bad
 *                            config with exit 2 and no output
 * Serial (the library calls need no MPI); files go to DIR. */
#include "io/config.h"
#include "io/dataset.h"
#include "io/text/prepare.h"
#include "io/synth/synth.h"
#include "io/text/tokenizer.h"

#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include "check.h"

CHECK_COUNTERS;


static const char *workdir;

/* ---- reading a split back -------------------------------------------------------------- */

typedef struct {
    int64_t n;
    int t, k, has_para, has_pert;
    int32_t *ids, *len, *as;
    int64_t *sid;
    int32_t *pids, *plen, *pas;
    int32_t *xids, *xlen, *xas;
} split_data;

/* Reads a whole integer dataset (NULL when it does not exist). */
static void *read_all(hid_t g, const char *name, hid_t memtype, size_t elem, int64_t *count)
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

static int read_split(split_data *s, const char *path, const char *split)
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

static void split_free(split_data *s)
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
static uint64_t file_digest(const char *path, const synth_summary *m)
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

static int find_split(const synth_summary *m, const char *name)
{
    for (int i = 0; i < m->n_splits; i++)
        if (strcmp(m->split[i], name) == 0) return i;
    return -1;
}

/* Generates and writes `c`; returns the data (caller frees) or NULL. */
static synth_data *make(const lethe_synth_config *c, synth_summary *m)
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

static void expect_refusal(const lethe_synth_config *c, const char *key, const char *also)
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

/* ---- authors ---------------------------------------------------------------------------- */

static int64_t author_of(int64_t sid)
{
    return sid < SYNTH_SID_UTILITY_A ? sid / 128 : -1;
}

/* Set of authors (bitmap over [0, A)) of a split's rows; utility rows are counted apart. */
static void authors_of(const split_data *s, unsigned char *set, int64_t A, int64_t *utility)
{
    memset(set, 0, (size_t)A);
    *utility = 0;
    for (int64_t i = 0; i < s->n; i++) {
        int64_t a = author_of(s->sid[i]);
        if (a < 0) {
            (*utility)++;
            continue;
        }
        CHECK(a < A, "sample id %lld names author %lld outside [0, %lld)", (long long)s->sid[i],
              (long long)a, (long long)A);
        if (a < A) set[a] = 1;
    }
}

static char *decode_row(const tokenizer *tk, const int32_t *row, int as, int len)
{
    return tokenizer_decode(tk, row + as, len - as);
}

static void test_authors(void)
{
    lethe_config cfg;
    config_defaults(&cfg);
    lethe_synth_config c = cfg.synth;
    const int N = 20, Q = 8, K = 4, H = 3, U = 6;
    snprintf(c.kind, sizeof c.kind, "authors");
    c.seed = 11;
    c.n_authors = N;
    c.questions = Q;
    c.perturbed = K;
    c.holdout_authors = H;
    c.utility_facts = U;
    c.seq_len = 48;
    c.write_jsonl = 1;
    snprintf(c.output, sizeof c.output, "%s/authors_a.h5", workdir);

    /* determinism: same seed -> same token content; another seed -> other content */
    synth_summary m, m2, m3;
    synth_data *d = make(&c, &m);
    if (!d) return;
    lethe_synth_config c2 = c;
    snprintf(c2.output, sizeof c2.output, "%s/authors_b.h5", workdir);
    c2.write_jsonl = 0;
    synth_data *d2 = make(&c2, &m2);
    lethe_synth_config c3 = c2;
    c3.seed = 12;
    snprintf(c3.output, sizeof c3.output, "%s/authors_c.h5", workdir);
    synth_data *d3 = make(&c3, &m3);
    if (!d2 || !d3) return;
    uint64_t ha = file_digest(c.output, &m), hb = file_digest(c2.output, &m2),
             hc = file_digest(c3.output, &m3);
    CHECK(ha == hb && !strcmp(m.source_digest, m2.source_digest),
          "same seed, different content: %016llx vs %016llx (%s vs %s)", (unsigned long long)ha,
          (unsigned long long)hb, m.source_digest, m2.source_digest);
    CHECK(ha != hc && strcmp(m.source_digest, m3.source_digest),
          "seeds 11 and 12 gave the same content (%016llx, %s)", (unsigned long long)ha,
          m.source_digest);
    printf("authors: seed 11 -> %016llx (%s) twice; seed 12 -> %016llx\n", (unsigned long long)ha,
           m.source_digest, (unsigned long long)hc);
    synth_free(d2);
    synth_free(d3);

    /* root attributes */
    {
        hid_t f = H5Fopen(c.output, H5F_ACC_RDONLY, H5P_DEFAULT);
        char kind[64] = "", tk[64] = "", dg[128] = "";
        int64_t v = -1, seed = -1, n = -1;
        CHECK(h5_attr_read_str(f, "synth_kind", kind, sizeof kind) == 0 && !strcmp(kind, "authors"),
              "root attribute synth_kind '%s'", kind);
        CHECK(h5_attr_read_str(f, "tokenizer", tk, sizeof tk) == 0 && !strcmp(tk, "word"),
              "root attribute tokenizer '%s', expected word", tk);
        CHECK(h5_attr_read_i64(f, "vocab_size", &v) == 0 && v == m.vocab_size,
              "vocab_size %lld, expected %lld", (long long)v, (long long)m.vocab_size);
        CHECK(h5_attr_read_i64(f, "synth_seed", &seed) == 0 && seed == 11, "synth_seed %lld",
              (long long)seed);
        CHECK(h5_attr_read_i64(f, "synth_n_authors", &n) == 0 && n == N, "synth_n_authors %lld",
              (long long)n);
        CHECK(h5_attr_read_str(f, "source_digest", dg, sizeof dg) == 0 &&
                  !strcmp(dg, m.source_digest),
              "source_digest '%s', expected '%s'", dg, m.source_digest);
        H5Fclose(f);
    }

    /* splits and row counts: forget authors ceil(p N / 100), at least 1 */
    const int64_t F[3] = {1, 1, 2}; /* N = 20: ceil(0.2), ceil(1), ceil(2) */
    struct {
        const char *name;
        int64_t rows;
        int cand;
    } want[] = {{"forget01", F[0] * Q, 1},
                {"forget05", F[1] * Q, 1},
                {"forget10", F[2] * Q, 1},
                {"retain99", (N - F[0]) * Q, 1},
                {"retain95", (N - F[1]) * Q, 1},
                {"retain90", (N - F[2]) * Q, 1},
                {"holdout", (int64_t)H * Q, 1},
                {"eval/utility_a", U, 1},
                {"eval/utility_b", U, 1},
                {"train_full", 2 * ((int64_t)N * Q + 2 * U), 0},
                {"train_retain01", 2 * ((N - F[0]) * Q + 2 * U), 0},
                {"train_retain05", 2 * ((N - F[1]) * Q + 2 * U), 0},
                {"train_retain10", 2 * ((N - F[2]) * Q + 2 * U), 0}};
    const int NS = (int)(sizeof want / sizeof want[0]);
    CHECK(m.n_splits == NS, "%d splits, expected %d", m.n_splits, NS);
    split_data S[16];
    memset(S, 0, sizeof S);
    for (int i = 0; i < NS; i++) {
        int j = find_split(&m, want[i].name);
        CHECK(j >= 0, "split '%s' missing", want[i].name);
        if (j < 0 || read_split(&S[i], c.output, want[i].name)) return;
        CHECK(S[i].n == want[i].rows && m.rows[j] == want[i].rows,
              "split '%s': %lld rows (summary %lld), expected %lld", want[i].name,
              (long long)S[i].n, (long long)m.rows[j], (long long)want[i].rows);
        CHECK(S[i].t == 48 && S[i].has_para == want[i].cand && S[i].has_pert == want[i].cand &&
                  S[i].k == (want[i].cand ? K : 0),
              "split '%s': T %d, paraphrased %d, perturbed %d, K %d", want[i].name, S[i].t,
              S[i].has_para, S[i].has_pert, S[i].k);
        /* dataset_inspect (DATASET_CHECK_IDS) passed: ids < vocab, 0 <= answer_start <
         * length <= T; no id is <unk>, since the vocabulary holds every generated word */
        int64_t unk = 0;
        for (int64_t r = 0; r < S[i].n; r++)
            for (int t = 0; t < S[i].len[r]; t++) unk += S[i].ids[r * S[i].t + t] == 2;
        CHECK(unk == 0, "split '%s': %lld <unk> tokens", want[i].name, (long long)unk);
        /* sample ids unique within the split */
        for (int64_t r = 1; r < S[i].n; r++)
            CHECK(S[i].sid[r] != S[i].sid[r - 1], "split '%s': sample id %lld repeats",
                  want[i].name, (long long)S[i].sid[r]);
    }

    /* author sets: forget and retain partition the training authors; holdout apart;
     * train_retainXX = train_full minus exactly the forget authors */
    const int64_t A = N + H;
    unsigned char fs[64], rs[64], hs[64], ts[64], trs[64];
    int64_t ut, ut_full;
    authors_of(&S[6], hs, A, &ut);
    authors_of(&S[9], ts, A, &ut_full);
    CHECK(ut_full == 4 * U, "train_full: %lld utility rows, expected %d", (long long)ut_full,
          4 * U);
    for (int64_t a = 0; a < A; a++) {
        CHECK(hs[a] == (a >= N), "holdout: author %lld %s", (long long)a,
              hs[a] ? "is a training author" : "is missing");
        CHECK(ts[a] == (a < N), "train_full: author %lld %s", (long long)a,
              ts[a] ? "is a holdout author" : "is missing");
    }
    for (int p = 0; p < 3; p++) {
        authors_of(&S[p], fs, A, &ut);
        CHECK(ut == 0, "%s has %lld utility rows", want[p].name, (long long)ut);
        authors_of(&S[3 + p], rs, A, &ut);
        authors_of(&S[10 + p], trs, A, &ut);
        CHECK(ut == 4 * U, "%s: %lld utility rows, expected %d", want[10 + p].name, (long long)ut,
              4 * U);
        int64_t nf = 0;
        for (int64_t a = 0; a < A; a++) {
            nf += fs[a];
            CHECK(!(fs[a] && rs[a]), "%s and %s share author %lld", want[p].name, want[3 + p].name,
                  (long long)a);
            CHECK((fs[a] || rs[a]) == (a < N), "author %lld: forget %d retain %d", (long long)a,
                  fs[a], rs[a]);
            CHECK(trs[a] == (ts[a] && !fs[a]),
                  "%s: author %lld present %d (train_full %d, forget %d)", want[10 + p].name,
                  (long long)a, trs[a], ts[a], fs[a]);
            if (fs[a])
                CHECK(a < F[p], "%s holds author %lld, expected the first %lld", want[p].name,
                      (long long)a, (long long)F[p]);
        }
        CHECK(nf == F[p], "%s: %lld authors, expected %lld", want[p].name, (long long)nf,
              (long long)F[p]);
        /* forget rows hold every question of their authors, answer phrasing */
        for (int64_t r = 0; r < S[p].n; r++)
            CHECK(S[p].sid[r] % 2 == 0, "%s row %lld: sample id %lld is a paraphrase row",
                  want[p].name, (long long)r, (long long)S[p].sid[r]);
    }
    /* train splits hold both phrasings of every fact: ids 2x and 2x+1 */
    for (int64_t r = 0; r + 1 < S[9].n; r += 2)
        CHECK(S[9].sid[r] % 2 == 0 && S[9].sid[r + 1] == S[9].sid[r] + 1,
              "train_full rows %lld, %lld: sample ids %lld, %lld", (long long)r, (long long)r + 1,
              (long long)S[9].sid[r], (long long)S[9].sid[r + 1]);

    /* the same QA pair has the same id and tokens everywhere: each forget10 row is the
     * train_full row with its id, and its paraphrase candidate is the row with id + 1 */
    for (int64_t r = 0; r < S[2].n; r++) {
        int64_t sid = S[2].sid[r], found = 0;
        for (int64_t x = 0; x < S[9].n; x++) {
            const int T = S[9].t;
            if (S[9].sid[x] == sid) {
                found++;
                CHECK(!memcmp(S[9].ids + x * T, S[2].ids + r * T, 4 * (size_t)T) &&
                          S[9].len[x] == S[2].len[r] && S[9].as[x] == S[2].as[r],
                      "sample %lld: forget10 and train_full rows differ", (long long)sid);
            } else if (S[9].sid[x] == sid + 1) {
                found++;
                CHECK(!memcmp(S[9].ids + x * T, S[2].pids + r * T, 4 * (size_t)T) &&
                          S[9].len[x] == S[2].plen[r],
                      "sample %lld: forget10 paraphrase and train_full row %lld differ",
                      (long long)sid, (long long)sid + 1);
            }
        }
        CHECK(found == 2, "sample %lld: %lld matching train_full rows, expected 2", (long long)sid,
              (long long)found);
    }

    /* texts: paraphrase differs from the answer but states the same value; every
     * perturbed answer differs from the answer and from the others */
    const tokenizer *tk = synth_tokenizer(d);
    int64_t nfacts = synth_n_facts(d);
    CHECK(nfacts == A * Q + 2 * U, "%lld facts, expected %lld", (long long)nfacts,
          (long long)(A * Q + 2 * U));
    for (int64_t i = 0; i < nfacts; i++) {
        synth_fact f;
        synth_get_fact(d, i, &f);
        CHECK(strcmp(f.answer, f.paraphrase) != 0, "fact %lld: paraphrase equals the answer",
              (long long)f.sample_id);
        for (int v = 0; v < 2; v++)
            if (f.value[v])
                CHECK(strstr(f.answer, f.value[v]) && strstr(f.paraphrase, f.value[v]),
                      "fact %lld: value '%s' missing from \"%s\" or \"%s\"", (long long)f.sample_id,
                      f.value[v], f.answer, f.paraphrase);
        CHECK(strstr(f.question_text, f.subject) && strstr(f.answer, f.subject),
              "fact %lld: subject '%s' missing", (long long)f.sample_id, f.subject);
        for (int k = 0; k < K; k++) {
            CHECK(strcmp(f.perturbed[k], f.answer) != 0, "fact %lld: perturbed %d is the answer",
                  (long long)f.sample_id, k);
            for (int j = 0; j < k; j++)
                CHECK(strcmp(f.perturbed[k], f.perturbed[j]) != 0,
                      "fact %lld: perturbed %d and %d are equal", (long long)f.sample_id, j, k);
        }
    }
    /* and in tokens: in every QA split, decoded perturbed answers differ from the answer */
    for (int i = 0; i < 9; i++) {
        const split_data *s = &S[i];
        const int T = s->t;
        for (int64_t r = 0; r < s->n; r++) {
            char *a = decode_row(tk, s->ids + r * T, s->as[r], s->len[r]);
            char *p = decode_row(tk, s->pids + r * T, s->pas[r], s->plen[r]);
            CHECK(a && p && strcmp(a, p) != 0, "%s row %lld: paraphrase decodes as the answer",
                  want[i].name, (long long)r);
            CHECK(s->pas[r] == s->as[r] &&
                      !memcmp(s->pids + r * T, s->ids + r * T, 4 * (size_t)s->as[r]),
                  "%s row %lld: the paraphrase row has another prompt", want[i].name, (long long)r);
            for (int k = 0; k < s->k; k++) {
                int64_t x = r * s->k + k;
                char *q = decode_row(tk, s->xids + x * T, s->xas[x], s->xlen[x]);
                CHECK(q && strcmp(q, a) != 0, "%s row %lld: perturbed %d decodes as the answer",
                      want[i].name, (long long)r, k);
                CHECK(s->ids[r * T + s->len[r] - 1] == 1 && s->xids[x * T + s->xlen[x] - 1] == 1,
                      "%s row %lld: a sequence does not end with EOS", want[i].name, (long long)r);
                free(q);
            }
            free(a);
            free(p);
        }
    }

    /* prepare on the JSON lines builds the same vocabulary and the same rows */
    {
        prepare_input in[16];
        char paths[16][1100];
        for (int i = 0; i < NS; i++) {
            synth_jsonl_path(c.output, want[i].name, paths[i], sizeof paths[i]);
            in[i].split = want[i].name;
            in[i].path = paths[i];
            in[i].format = "qa";
        }
        char out[1100], err[1024];
        snprintf(out, sizeof out, "%s/authors_prepared.h5", workdir);
        prepare_opts o;
        prepare_opts_defaults(&o);
        o.output = out;
        o.inputs = in;
        o.n_inputs = NS;
        o.tokenizer = "word";
        o.seq_len = c.seq_len;
        o.truncate = 0;
        int rc = prepare_run(&o, err, sizeof err);
        CHECK(rc == 0, "prepare of the JSON lines: %s", err);
        if (rc == 0) {
            int same = 1;
            for (int i = 0; i < NS; i++) {
                split_data P;
                if (read_split(&P, out, want[i].name)) continue;
                const split_data *s = &S[i];
                size_t nt = (size_t)s->n * (size_t)s->t, k = (size_t)s->k;
                int eq = P.n == s->n && P.t == s->t && P.k == s->k &&
                         !memcmp(P.ids, s->ids, 4 * nt) &&
                         !memcmp(P.len, s->len, 4 * (size_t)s->n) &&
                         !memcmp(P.as, s->as, 4 * (size_t)s->n) &&
                         !memcmp(P.sid, s->sid, 8 * (size_t)s->n);
                if (eq && s->has_para)
                    eq = P.has_para && !memcmp(P.pids, s->pids, 4 * nt) &&
                         !memcmp(P.plen, s->plen, 4 * (size_t)s->n);
                if (eq && s->has_pert)
                    eq = P.has_pert && !memcmp(P.xids, s->xids, 4 * nt * k) &&
                         !memcmp(P.xlen, s->xlen, 4 * (size_t)s->n * k);
                CHECK(eq, "split '%s': prepare's rows differ from synth's", want[i].name);
                same &= eq;
                split_free(&P);
            }
            tokenizer *pt = NULL;
            CHECK(tokenizer_load(&pt, out, err, sizeof err) == 0, "%s", err);
            CHECK(pt && tokenizer_vocab_size(pt) == tokenizer_vocab_size(tk),
                  "prepare's vocabulary has %d words, synth's %d",
                  pt ? tokenizer_vocab_size(pt) : -1, tokenizer_vocab_size(tk));
            for (int i = 0; pt && i < tokenizer_vocab_size(pt) && i < tokenizer_vocab_size(tk); i++)
                if (strcmp(tokenizer_token(pt, i), tokenizer_token(tk, i))) {
                    CHECK(0, "word %d: prepare '%s', synth '%s'", i, tokenizer_token(pt, i),
                          tokenizer_token(tk, i));
                    break;
                }
            tokenizer_free(pt);
            if (same)
                printf("authors: prepare of the %d JSON-lines files gives identical rows\n", NS);
        }
    }
    for (int i = 0; i < NS; i++) split_free(&S[i]);
    printf("authors: N %d Q %d K %d H %d U %d: %lld rows, vocab %lld, longest row %d, %.1f KiB, "
           "generate %.3f s, write %.3f s\n",
           N, Q, K, H, U, (long long)m.total_rows, (long long)m.vocab_size, m.max_len,
           m.file_bytes / 1024.0, m.gen_seconds, m.write_seconds);
    synth_free(d);

    /* forget sizes are ceilings: N = 30 -> 1, 2, 3 authors; N = 101 -> 2, 6, 11 */
    const int Ns[2] = {30, 101};
    const int64_t Fs[2][3] = {{1, 2, 3}, {2, 6, 11}};
    for (int x = 0; x < 2; x++) {
        lethe_synth_config e = c;
        e.n_authors = Ns[x];
        char err[1024];
        synth_data *de = NULL;
        CHECK(synth_generate(&de, &e, err, sizeof err) == 0, "N %d: %s", Ns[x], err);
        if (!de) continue;
        synth_summary me;
        synth_get_summary(de, &me);
        for (int p = 0; p < 3; p++) {
            int j = find_split(&me, want[p].name);
            CHECK(j >= 0 && me.rows[j] == Fs[x][p] * Q, "N %d: %s has %lld rows, expected %lld",
                  Ns[x], want[p].name, j >= 0 ? (long long)me.rows[j] : -1LL,
                  (long long)(Fs[x][p] * Q));
        }
        synth_free(de);
    }

    /* bad configs are refused before any work, naming the key */
    lethe_synth_config b = c;
    b.questions = SYNTH_N_ATTRIBUTES + 1;
    expect_refusal(&b, "synth.questions", "12");
    b = c;
    b.perturbed = 30;
    expect_refusal(&b, "synth.perturbed", "genre");
    b = c;
    b.questions = 2; /* place and year: the meanings table (40) of utility set B limits K */
    b.perturbed = 45;
    expect_refusal(&b, "synth.perturbed", "word meaning");
    b = c;
    b.seq_len = 20;
    expect_refusal(&b, "synth.seq_len", ">=");
    b = c;
    snprintf(b.kind, sizeof b.kind, "tofu");
    expect_refusal(&b, "synth.kind", "authors");
}

/* ---- markov ----------------------------------------------------------------------------- */

static int read_f64(const char *path, const char *name, double *out, int64_t n)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    int64_t count = 0;
    double *v = read_all(f, name, H5T_NATIVE_DOUBLE, 8, &count);
    H5Fclose(f);
    int ok = v && count == n;
    if (ok) memcpy(out, v, 8 * (size_t)n);
    free(v);
    CHECK(ok, "'%s': dataset '%s' missing or not %lld values", path, name, (long long)n);
    return ok ? 0 : -1;
}

static void test_kl_helper(void)
{
    enum { S = SYNTH_MARKOV_STATES, V = SYNTH_MARKOV_VOCAB };
    /* a row-stochastic matrix with one zero entry per row */
    double P[S * S];
    for (int s = 0; s < S; s++) {
        double sum = 0;
        for (int j = 0; j < S; j++)
            sum += (P[s * S + j] = j == (s + 1) % S ? 0 : 1 + (s * 7 + j * 3) % 5);
        for (int j = 0; j < S; j++) P[s * S + j] /= sum;
    }
    const int32_t states[6] = {0, 3, 9, 9, 5, 1};
    float lp[6 * V];
    /* the true model: KL = 0 up to float rounding of log p (~1e-7 relative) */
    for (int t = 0; t < 6; t++)
        for (int j = 0; j < V; j++)
            lp[t * V + j] =
                j < S ? (float)log(P[states[t] * S + j] > 0 ? P[states[t] * S + j] : 1e-30)
                      : -1e30f;
    double kl = markov_kl_per_token(P, lp, V, states, 6, S);
    CHECK(fabs(kl) < 1e-6, "KL of the true model %.3g, expected 0", kl);
    /* half the mass on specials: exactly log 2 per token */
    for (int t = 0; t < 6; t++)
        for (int j = 0; j < V; j++)
            lp[t * V + j] = j < S ? (float)((double)lp[t * V + j] - log(2.0)) : (float)log(0.25);
    kl = markov_kl_per_token(P, lp, V, states, 6, S);
    CHECK(fabs(kl - log(2.0)) < 1e-6,
          "KL with half the mass on specials %.9f, expected log 2 = %.9f", kl, log(2.0));
    /* the uniform model: KL = log S - H(P[s]) (entropy computed separately) */
    double want = 0;
    for (int t = 0; t < 6; t++) {
        double h = 0;
        for (int j = 0; j < S; j++) {
            double p = P[states[t] * S + j];
            if (p > 0) h -= p * log(p);
        }
        want += (log((double)S) - h) / 6;
        for (int j = 0; j < V; j++) lp[t * V + j] = (float)-log((double)S);
    }
    kl = markov_kl_per_token(P, lp, V, states, 6, S);
    CHECK(fabs(kl - want) < 1e-6, "KL of the uniform model %.9f, expected %.9f", kl, want);
    CHECK(markov_kl_per_token(P, lp, V, states, 0, S) == 0, "KL over no positions is not 0");
    const int32_t bad[1] = {S};
    CHECK(isnan(markov_kl_per_token(P, lp, V, bad, 1, S)),
          "KL of a state outside [0, S) is not NaN");
}

static void test_markov(void)
{
    enum { S = SYNTH_MARKOV_STATES };
    lethe_config cfg;
    config_defaults(&cfg);
    lethe_synth_config c = cfg.synth;
    const int M = 3000, LL = 30, LS = 8;
    const double leak = 0.2;
    snprintf(c.kind, sizeof c.kind, "markov");
    c.seed = 5;
    c.markov_retain = M;
    c.markov_len_long = LL;
    c.markov_len_short = LS;
    c.markov_leak = (float)leak;
    c.seq_len = 32;
    snprintf(c.output, sizeof c.output, "%s/markov_a.h5", workdir);
    synth_summary m, m2, m3;
    synth_data *d = make(&c, &m);
    lethe_synth_config c2 = c;
    snprintf(c2.output, sizeof c2.output, "%s/markov_b.h5", workdir);
    synth_data *d2 = make(&c2, &m2);
    lethe_synth_config c3 = c2;
    c3.seed = 6;
    snprintf(c3.output, sizeof c3.output, "%s/markov_c.h5", workdir);
    synth_data *d3 = make(&c3, &m3);
    if (!d || !d2 || !d3) return;
    uint64_t ha = file_digest(c.output, &m), hb = file_digest(c2.output, &m2);
    uint64_t hc = file_digest(c3.output, &m3);
    CHECK(ha == hb && !strcmp(m.source_digest, m2.source_digest),
          "markov: same seed, different content");
    CHECK(ha != hc && strcmp(m.source_digest, m3.source_digest), "markov: seeds 5 and 6 agree");
    printf("markov: seed 5 -> %016llx (%s) twice; seed 6 -> %016llx\n", (unsigned long long)ha,
           m.source_digest, (unsigned long long)hc);
    synth_free(d2);
    synth_free(d3);

    const char *names[9] = {"retain",       "forget1",      "forget2",    "eval/retain",
                            "eval/forget1", "eval/forget2", "train_full", "train_retain",
                            "forget"};
    const int64_t rows[9] = {M, M, M, M / 4, M / 4, M / 4, 3 * M, M, 2 * M};
    split_data X[9];
    CHECK(m.n_splits == 9, "markov: %d splits, expected 9", m.n_splits);
    for (int i = 0; i < 9; i++) {
        if (read_split(&X[i], c.output, names[i])) return;
        CHECK(X[i].n == rows[i] && X[i].t == 32 && !X[i].has_para && !X[i].has_pert,
              "markov split '%s': %lld rows, T %d, expected %lld rows, T 32", names[i],
              (long long)X[i].n, X[i].t, (long long)rows[i]);
    }
    /* rows: BOS then L states (L by chain), answer_start 1, padding after */
    for (int i = 0; i < 6; i++) {
        int chain = i % 3, L = chain == 2 ? LS : LL;
        for (int64_t r = 0; r < X[i].n; r++) {
            const int32_t *row = X[i].ids + r * 32;
            int ok = X[i].len[r] == L + 1 && X[i].as[r] == 1 && row[0] == SYNTH_MARKOV_BOS;
            for (int t = 1; t <= L; t++) ok &= row[t] >= 0 && row[t] < S;
            for (int t = L + 1; t < 32; t++) ok &= row[t] == SYNTH_MARKOV_EOS;
            ok &= X[i].sid[r] == ((int64_t)(chain * 2 + i / 3) << 32) + r;
            if (!ok) {
                CHECK(0,
                      "markov '%s' row %lld: length %d, answer_start %d, ids %d %d ..., sample "
                      "id %lld",
                      names[i], (long long)r, X[i].len[r], X[i].as[r], row[0], row[1],
                      (long long)X[i].sid[r]);
                break;
            }
        }
    }
    /* train_full = retain + forget1 + forget2; train_retain = retain */
    for (int c0 = 0; c0 < 3; c0++)
        CHECK(!memcmp(X[6].ids + (int64_t)c0 * M * 32, X[c0].ids, 4 * (size_t)M * 32) &&
                  !memcmp(X[6].sid + (int64_t)c0 * M, X[c0].sid, 8 * (size_t)M),
              "train_full part %d differs from '%s'", c0, names[c0]);
    CHECK(!memcmp(X[7].ids, X[0].ids, 4 * (size_t)M * 32), "train_retain differs from retain");
    /* forget = forget1 + forget2 (the forget set of an unlearning run) */
    for (int c0 = 0; c0 < 2; c0++)
        CHECK(!memcmp(X[8].ids + (int64_t)c0 * M * 32, X[1 + c0].ids, 4 * (size_t)M * 32) &&
                  !memcmp(X[8].sid + (int64_t)c0 * M, X[1 + c0].sid, 8 * (size_t)M),
              "forget part %d differs from '%s'", c0, names[1 + c0]);

    /* the stored chains: rows sum to 1, leak / 7 off the chain, and they are the library's */
    const char *chain_ds[3] = {"/chains/retain", "/chains/forget1", "/chains/forget2"};
    const char *init_ds[3] = {"/chains/initial_retain", "/chains/initial_forget1",
                              "/chains/initial_forget2"};
    double P[3][S * S], I[3][S];
    for (int ch = 0; ch < 3; ch++) {
        if (read_f64(c.output, chain_ds[ch], P[ch], S * S) ||
            read_f64(c.output, init_ds[ch], I[ch], S))
            return;
        CHECK(!memcmp(P[ch], synth_markov_matrix(d, ch), sizeof P[ch]) &&
                  !memcmp(I[ch], synth_markov_initial(d, ch), sizeof I[ch]),
              "%s differs from the generator's matrix", chain_ds[ch]);
        double isum = 0;
        for (int j = 0; j < S; j++) isum += I[ch][j];
        CHECK(fabs(isum - 1) < 1e-12, "%s sums to %.15f", init_ds[ch], isum);
        for (int s = 0; s < S; s++) {
            double sum = 0, own = 0;
            for (int j = 0; j < S; j++) {
                double p = P[ch][s * S + j];
                sum += p;
                if (j / 3 == ch)
                    own += p;
                else
                    CHECK(fabs(p - leak / 7) < 1e-7, "%s[%d][%d] = %.9f, expected leak / 7",
                          chain_ds[ch], s, j, p);
            }
            CHECK(fabs(sum - 1) < 1e-12 && fabs(own - (1 - leak)) < 1e-7,
                  "%s row %d: sum %.15f, own states %.9f", chain_ds[ch], s, sum, own);
        }
    }

    /* empirical transitions of each chain's training split against its matrix. Each
     * count is binomial: z = (phat - p) / sqrt(p (1 - p) / n). With 100 cells per chain,
     * |z| > 3 happens with probability 0.27% per cell, so up to 2 such cells are allowed
     * (P(more) ~ 2e-4) and none beyond 5 standard errors. */
    for (int ch = 0; ch < 3; ch++) {
        static double cnt[S * S], vis[S];
        memset(cnt, 0, sizeof cnt);
        memset(vis, 0, sizeof vis);
        double first_out = 0, moves = 0, moves_out = 0;
        const split_data *s = &X[ch];
        for (int64_t r = 0; r < s->n; r++) {
            const int32_t *row = s->ids + r * 32;
            first_out += row[1] / 3 != ch;
            for (int t = 1; t + 1 < s->len[r]; t++) {
                cnt[row[t] * S + row[t + 1]]++;
                vis[row[t]]++;
                moves++;
                moves_out += row[t + 1] / 3 != ch;
            }
        }
        int over3 = 0;
        double zmax = 0;
        for (int a = 0; a < S; a++)
            for (int b = 0; b < S; b++) {
                double p = P[ch][a * S + b], n = vis[a];
                CHECK(n >= 100, "chain %d: state %d visited %g times", ch, a, n);
                if (n < 1) continue;
                double z = (cnt[a * S + b] / n - p) / sqrt(p * (1 - p) / n);
                over3 += fabs(z) > 3;
                if (fabs(z) > zmax) zmax = fabs(z);
            }
        CHECK(over3 <= 2 && zmax <= 5,
              "chain %s: %d transition frequencies beyond 3 standard errors, largest %.2f",
              names[ch], over3, zmax);
        double se = sqrt(leak * (1 - leak) / moves), lk = moves_out / moves;
        CHECK(fabs(lk - leak) <= 3 * se, "chain %s: leakage %.5f, expected %.2f +- 3 x %.5f",
              names[ch], lk, leak, se);
        double se0 = sqrt(leak * (1 - leak) / (double)s->n), f0 = first_out / (double)s->n;
        CHECK(fabs(f0 - leak) <= 3 * se0,
              "chain %s: first state off the chain %.4f, expected "
              "%.2f +- 3 x %.4f",
              names[ch], f0, leak, se0);
        printf("markov: chain %s: %.0f transitions, leakage %.4f (+- %.4f), %d cells beyond 3 SE, "
               "largest |z| %.2f\n",
               names[ch], moves, lk, se, over3, zmax);
    }

    /* KL helper on held-out rows: the true matrix scores 0, another chain's does not */
    {
        const split_data *e = &X[3];
        float lp[64 * SYNTH_MARKOV_VOCAB];
        const int32_t *row = e->ids;
        int n = e->len[0] - 2; /* positions holding s_1 .. s_{L-1} */
        for (int w = 0; w < 2; w++) {
            const double *Pm = synth_markov_matrix(d, w); /* model = retain, then forget1 */
            double want = 0;
            for (int t = 0; t < n; t++) {
                int s0 = row[1 + t];
                for (int j = 0; j < SYNTH_MARKOV_VOCAB; j++)
                    lp[t * SYNTH_MARKOV_VOCAB + j] = j < S ? (float)log(Pm[s0 * S + j]) : -1e30f;
                for (int j = 0; j < S; j++)
                    want += P[0][s0 * S + j] * log(P[0][s0 * S + j] / Pm[s0 * S + j]) / n;
            }
            double kl = markov_kl_per_token(P[0], lp, SYNTH_MARKOV_VOCAB, row + 1, n, S);
            CHECK(fabs(kl - want) < 1e-6 && (w == 0 ? kl < 1e-6 : kl > 0.1),
                  "KL on eval/retain row 0 against %s: %.6f, expected %.6f", names[w], kl, want);
        }
    }
    for (int i = 0; i < 9; i++) split_free(&X[i]);
    printf("markov: M %d, lengths %d/%d: %lld rows, %.1f KiB, generate %.3f s, write %.3f s\n", M,
           LL, LS, (long long)m.total_rows, m.file_bytes / 1024.0, m.gen_seconds, m.write_seconds);
    synth_free(d);

    lethe_synth_config b = c;
    b.seq_len = LL;
    expect_refusal(&b, "synth.seq_len", "markov_len_long");
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
        fprintf(stderr, "usage: test_synth authors|markov|job DIR [CONFIG]\n");
        return 2;
    }
    workdir = argv[2];
    mkdir(workdir, 0755);
    if (!strcmp(argv[1], "authors")) {
        test_authors();
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
