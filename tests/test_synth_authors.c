/* tests/test_synth_authors.c — `test_synth authors DIR`: the fictitious-author study. The
 * same seed gives the same token content and another seed other content; the root attributes,
 * the splits and their row counts (forget sizes are ceilings); forget and retain partition the
 * training authors, holdout apart, and train_retainXX is train_full minus exactly the forget
 * authors; a QA pair has the same sample id and tokens in every split; paraphrased and
 * perturbed answers differ from the answer, in text and in tokens; `prepare` on the JSON lines
 * gives the same vocabulary and rows; bad configs are refused naming the key. */
#include "test_synth.h"
#include "io/dataset.h"
#include "io/text/prepare.h"
#include "io/text/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "check.h"

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

void test_authors(void)
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
