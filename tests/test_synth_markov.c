/* tests/test_synth_markov.c — `test_synth markov DIR`: the Markov-chain mixture. The per-token
 * KL helper against hand-built models (true, half the mass on specials, uniform, no positions,
 * a state out of range); then the same seed gives the same token content and another seed other
 * content; the splits, their rows (BOS, L states, padding) and sample ids, and the concatenated
 * training and forget splits; the stored chains and initial distributions are the generator's,
 * sum to 1 and put leak / 7 on each state off the chain; empirical transitions and leakage agree
 * with the true chains within stated standard errors; KL on held-out rows; a too-short seq_len
 * refused. */
#include "test_synth.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "check.h"

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

void test_kl_helper(void)
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

void test_markov(void)
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

    const char *names[9] = {"retain",      "forget1",      "forget2",
                            "eval/retain", "eval/forget1", "eval/forget2",
                            "train_full",  "train_retain", "forget"};
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
