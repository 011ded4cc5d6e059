/* tests/test_synth_difficulty.c — `test_synth difficulty DIR`: synth.difficulty (io/synth/
 * synth.h). Off, the tail keys change nothing (same rows, no bucket datasets, no
 * attributes). On: the root attributes; every QA author split's /bucket is (author +
 * question) mod 4 of its row's sample id, with the per-bucket counts of a direct count
 * over the split's authors and questions; each fact's tail has tail_short or tail_long
 * words, ends its answer, paraphrase and every perturbed answer; common tails use only
 * the table's words, rare words are lower-case, outside the table and in one fact's tail
 * only; a forget row's answer is exactly tokens(answer without tail) + tokens(tail) + EOS;
 * utility facts have no tail; bad settings are refused naming the key. */
#define _POSIX_C_SOURCE 200809L /* strndup */
#include "test_synth.h"
#include "io/dataset.h"
#include "io/text/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "check.h"

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int is_common(const char *w, size_t n)
{
    for (int i = 0; i < SYNTH_N_COMMON_WORDS; i++)
        if (strlen(SYNTH_COMMON_WORDS[i]) == n && !strncmp(SYNTH_COMMON_WORDS[i], w, n)) return 1;
    return 0;
}

static int ends_with(const char *s, const char *t)
{
    size_t a = strlen(s), b = strlen(t);
    return a >= b && !strcmp(s + a - b, t);
}

/* The words of a tail " w1 w2 ... wn." into words (malloc'd copies, at most cap). */
static int tail_words(const char *tail, char **words, int cap)
{
    int n = 0;
    for (const char *p = tail; *p && *p != '.';) {
        while (*p == ' ') p++;
        size_t l = strcspn(p, " .");
        if (l && n < cap) words[n++] = strndup(p, l);
        p += l;
    }
    return n;
}

/* Every fact's tail: its bucket, word count, word kinds, and that it ends each candidate.
 * Rare words go to rare[] (*nr of them) for the uniqueness check. */
static void check_tails(const synth_data *d, const lethe_synth_config *c, int64_t A, int Q, int K,
                        char **rare, int64_t *nr)
{
    for (int64_t i = 0; i < synth_n_facts(d); i++) {
        synth_fact f;
        synth_get_fact(d, i, &f);
        if (i >= A * Q) {
            CHECK(f.bucket == -1 && !f.tail, "utility fact %lld: bucket %d, tail '%s'",
                  (long long)f.sample_id, f.bucket, f.tail ? f.tail : "");
            continue;
        }
        int want = (int)((f.owner + f.question) % 4);
        CHECK(f.bucket == want && f.tail, "fact %lld: bucket %d, expected %d",
              (long long)f.sample_id, f.bucket, want);
        if (!f.tail) continue;
        char *w[1100];
        int n = tail_words(f.tail, w, 1100);
        int longb = want >= SYNTH_LONG_COMMON, rareb = want % 2;
        CHECK(n == (longb ? c->tail_long : c->tail_short), "fact %lld (bucket %d): %d tail words",
              (long long)f.sample_id, want, n);
        for (int j = 0; j < n; j++) {
            int lower = 1;
            for (const char *p = w[j]; *p; p++) lower &= *p >= 'a' && *p <= 'z';
            if (rareb) {
                CHECK(lower && strlen(w[j]) >= 3 && !is_common(w[j], strlen(w[j])),
                      "fact %lld: rare word '%s'", (long long)f.sample_id, w[j]);
                rare[(*nr)++] = w[j];
            } else {
                CHECK(is_common(w[j], strlen(w[j])), "fact %lld: common word '%s' not in the table",
                      (long long)f.sample_id, w[j]);
                free(w[j]);
            }
        }
        CHECK(ends_with(f.answer, f.tail) && ends_with(f.paraphrase, f.tail),
              "fact %lld: the answer or paraphrase lacks the tail", (long long)f.sample_id);
        for (int k = 0; k < K; k++)
            CHECK(ends_with(f.perturbed[k], f.tail), "fact %lld: perturbed %d lacks the tail",
                  (long long)f.sample_id, k);
    }
}

/* A QA author split: /bucket by sample id, counts against a direct count over
 * authors [a0, a1) and questions [0, Q); forget rows' answer tokens. */
static void check_split(const synth_data *d, const char *path, const char *split, int64_t a0,
                        int64_t a1, int Q)
{
    split_data s;
    if (read_split(&s, path, split)) {
        CHECK(0, "cannot read split '%s'", split);
        return;
    }
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    char grp[80], names[256] = "";
    snprintf(grp, sizeof grp, "/%s", split);
    hid_t g = H5Gopen2(f, grp, H5P_DEFAULT);
    int64_t nb = 0;
    int32_t *b = read_all(g, "bucket", H5T_NATIVE_INT32, 4, &nb);
    CHECK(h5_attr_read_str(g, "bucket_names", names, sizeof names) == 0 &&
              !strcmp(names, "short_common,short_rare,long_common,long_rare"),
          "%s: bucket_names '%s'", split, names);
    H5Gclose(g);
    H5Fclose(f);
    CHECK(b && nb == s.n, "%s: %lld buckets for %lld rows", split, (long long)nb, (long long)s.n);
    int64_t got[4] = {0}, want[4] = {0};
    for (int64_t a = a0; a < a1; a++)
        for (int q = 0; q < Q; q++) want[(a + q) % 4]++;
    const tokenizer *tk = synth_tokenizer(d);
    for (int64_t r = 0; b && r < s.n; r++) {
        int64_t a = s.sid[r] / 128, q = s.sid[r] / 2 % 64;
        CHECK(b[r] == (a + q) % 4, "%s row %lld (author %lld, question %lld): bucket %d", split,
              (long long)r, (long long)a, (long long)q, b[r]);
        if (b[r] >= 0 && b[r] < 4) got[b[r]]++;
        /* the row's answer: tokens(answer without the tail) + tokens(tail) + EOS */
        synth_fact x;
        synth_get_fact(d, a * Q + q, &x);
        size_t base = strlen(x.answer) - strlen(x.tail);
        tok_ids tb = {0}, tt = {0};
        tokenizer_encode(tk, x.answer, base, &tb);
        tokenizer_encode(tk, x.tail, strlen(x.tail), &tt);
        const int32_t *row = s.ids + r * s.t;
        int ok = s.len[r] - s.as[r] == tb.n + tt.n + 1 &&
                 !memcmp(row + s.as[r], tb.ids, 4 * (size_t)tb.n) &&
                 !memcmp(row + s.as[r] + tb.n, tt.ids, 4 * (size_t)tt.n);
        CHECK(ok, "%s row %lld: %d answer tokens, expected %d + %d + EOS", split, (long long)r,
              s.len[r] - s.as[r], tb.n, tt.n);
        tok_ids_free(&tb);
        tok_ids_free(&tt);
    }
    for (int i = 0; i < 4; i++)
        CHECK(got[i] == want[i], "%s: bucket %d has %lld rows, expected %lld", split, i,
              (long long)got[i], (long long)want[i]);
    printf("difficulty: %s buckets %lld/%lld/%lld/%lld\n", split, (long long)got[0],
           (long long)got[1], (long long)got[2], (long long)got[3]);
    free(b);
    split_free(&s);
}

void test_difficulty(void)
{
    lethe_config cfg;
    config_defaults(&cfg);
    lethe_synth_config c = cfg.synth;
    const int N = 20, Q = 8, K = 3, H = 3;
    snprintf(c.kind, sizeof c.kind, "authors");
    c.seed = 5;
    c.n_authors = N;
    c.questions = Q;
    c.perturbed = K;
    c.holdout_authors = H;
    c.utility_facts = 4;
    c.seq_len = 64;

    /* off: the tail keys change nothing */
    synth_summary m0, m1, m;
    snprintf(c.output, sizeof c.output, "%s/off_a.h5", workdir);
    synth_data *d = make(&c, &m0);
    synth_free(d);
    lethe_synth_config c1 = c;
    c1.tail_short = 7;
    c1.tail_long = 30;
    snprintf(c1.output, sizeof c1.output, "%s/off_b.h5", workdir);
    d = make(&c1, &m1);
    synth_free(d);
    CHECK(file_digest(c.output, &m0) == file_digest(c1.output, &m1) &&
              !strcmp(m0.source_digest, m1.source_digest),
          "difficulty off: the tail keys changed the rows");
    hid_t f = H5Fopen(c1.output, H5F_ACC_RDONLY, H5P_DEFAULT);
    CHECK(H5Lexists(f, "/forget10/bucket", H5P_DEFAULT) == 0 &&
              H5Aexists(f, "synth_difficulty") == 0,
          "difficulty off: the file has a bucket dataset or a synth_difficulty attribute");
    H5Fclose(f);

    /* on */
    c.difficulty = 1;
    snprintf(c.output, sizeof c.output, "%s/on.h5", workdir);
    d = make(&c, &m);
    if (!d) return;
    CHECK(strcmp(m.source_digest, m0.source_digest) != 0, "difficulty on: the same texts as off");
    f = H5Fopen(c.output, H5F_ACC_RDONLY, H5P_DEFAULT);
    int64_t on = 0, ts = 0, tl = 0;
    CHECK(h5_attr_read_i64(f, "synth_difficulty", &on) == 0 && on == 1 &&
              h5_attr_read_i64(f, "synth_tail_short", &ts) == 0 && ts == c.tail_short &&
              h5_attr_read_i64(f, "synth_tail_long", &tl) == 0 && tl == c.tail_long,
          "root attributes synth_difficulty %lld, tails %lld/%lld", (long long)on, (long long)ts,
          (long long)tl);
    CHECK(H5Lexists(f, "/train_full/bucket", H5P_DEFAULT) == 0 &&
              H5Lexists(f, "/eval/utility_a/bucket", H5P_DEFAULT) == 0,
          "train or utility splits have a bucket dataset");
    H5Fclose(f);
    int64_t A = N + H, nr = 0;
    char **rare = malloc(sizeof(char *) * (size_t)(A * Q * c.tail_long + 1));
    check_tails(d, &c, A, Q, K, rare, &nr);
    qsort(rare, (size_t)nr, sizeof *rare, cmp_str);
    for (int64_t i = 1; i < nr; i++)
        CHECK(strcmp(rare[i], rare[i - 1]) != 0, "rare word '%s' is in two tails", rare[i]);
    for (int64_t i = 0; i < nr; i++) free(rare[i]);
    free(rare);
    check_split(d, c.output, "forget10", 0, 2, Q); /* N = 20: ceil(2) authors */
    check_split(d, c.output, "retain90", 2, N, Q);
    check_split(d, c.output, "holdout", N, A, Q);
    synth_free(d);

    /* refusals */
    lethe_synth_config bad = c;
    bad.tail_long = bad.tail_short;
    expect_refusal(&bad, "synth.tail_long", "synth.tail_short");
    bad = c;
    snprintf(bad.kind, sizeof bad.kind, "markov");
    expect_refusal(&bad, "synth.difficulty", "authors");
}
