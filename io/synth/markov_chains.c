/* io/synth/markov_chains.c — the Markov data set of io/synth/synth.h: three chains (retain, forget
 * 1, forget 2) drawn from the seed, their sequences and splits, and the KL helpers that
 * evaluation uses against the true transition matrices. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "synth_impl.h"

/* ---- markov -------------------------------------------------------------------------- */

const char *const CHAIN_NAME[3] = {"retain", "forget1", "forget2"};

static int markov_len(const synth_data *d, int c)
{
    return c == 2 ? d->c.markov_len_short : d->c.markov_len_long;
}

int sy_check_markov(const lethe_synth_config *c, char *err, size_t errlen)
{
    int L = c->markov_len_long > c->markov_len_short ? c->markov_len_long : c->markov_len_short;
    if (c->seq_len < L + 1)
        return sy_fail(err, errlen,
                       "synth.seq_len = %d is too short for a markov row of BOS + %d states "
                       "(synth.markov_len_%s = %d); set synth.seq_len >= %d",
                       c->seq_len, L, L == c->markov_len_long ? "long" : "short", L, L + 1);
    return 0;
}

/* Row s of chain c: (1 - leak) over the chain's own states with random weights in
 * [0.25, 1.25) (so no owned transition is negligible), leak / 7 on every other state. */
void sy_make_chains(synth_data *d)
{
    double leak = d->c.markov_leak, out = leak / (S_ - 3);
    for (int c = 0; c < 3; c++) {
        rng r = sy_rng_for(d->c.seed, ST_CHAINS, (uint64_t)c);
        for (int s = 0; s < S_; s++) {
            double w[3], sum = 0;
            for (int j = 0; j < 3; j++) sum += (w[j] = 0.25 + sy_rng_unit(&r));
            for (int j = 0; j < S_; j++) d->P[c][s * S_ + j] = out;
            for (int j = 0; j < 3; j++) d->P[c][s * S_ + 3 * c + j] = (1 - leak) * w[j] / sum;
        }
        for (int j = 0; j < S_; j++) d->init[c][j] = j / 3 == c ? (1 - leak) / 3 : out;
    }
}

static int sample_from(const double *p, rng *r)
{
    double u = sy_rng_unit(r), acc = 0;
    int last = 0;
    for (int j = 0; j < S_; j++) {
        if (p[j] <= 0) continue;
        acc += p[j];
        last = j;
        if (u < acc) return j;
    }
    return last; /* u beyond the rounded sum */
}

/* Sequence i of chain c, part (0 train, 1 eval): BOS s_1 .. s_L, then pad. Returns length. */
int sy_markov_row(const synth_data *d, int c, int part, int64_t i, int32_t *row, int T)
{
    rng r = sy_rng_for(d->c.seed, ST_MARKOV + (uint64_t)(c * 2 + part), (uint64_t)i);
    int L = markov_len(d, c), s = sample_from(d->init[c], &r);
    row[0] = SYNTH_MARKOV_BOS;
    row[1] = s;
    for (int t = 2; t <= L; t++) row[t] = s = sample_from(&d->P[c][s * S_], &r);
    for (int t = L + 1; t < T; t++) row[t] = SYNTH_MARKOV_EOS;
    return L + 1;
}

void sy_make_markov_splits(synth_data *d)
{
    static const char *const eval[3] = {"eval/retain", "eval/forget1", "eval/forget2"};
    for (int part = 0; part < 2; part++)
        for (int c = 0; c < 3; c++) {
            split_t *s = &d->split[d->n_splits++];
            memset(s, 0, sizeof *s);
            s->name = part ? eval[c] : CHAIN_NAME[c];
            s->nr = 1;
            s->hi[0] = part ? d->m_eval : d->m_train;
            s->ch[0] = c;
            s->pt[0] = part;
        }
    split_t *s = &d->split[d->n_splits++];
    memset(s, 0, sizeof *s);
    s->name = "train_full";
    s->nr = 3;
    for (int c = 0; c < 3; c++) {
        s->hi[c] = d->m_train;
        s->ch[c] = c;
    }
    s = &d->split[d->n_splits++];
    memset(s, 0, sizeof *s);
    s->name = "train_retain";
    s->nr = 1;
    s->hi[0] = d->m_train;
    /* the forget set of an unlearning run: both forget chains (long and short rows) */
    s = &d->split[d->n_splits++];
    memset(s, 0, sizeof *s);
    s->name = "forget";
    s->nr = 2;
    for (int c = 1; c < 3; c++) {
        s->hi[c - 1] = d->m_train;
        s->ch[c - 1] = c;
    }
}

/* Digest of the chains and of every distinct sequence (train_full repeats them). */
void sy_markov_digest(synth_data *d)
{
    uint64_t h = FNV_INIT;
    for (int c = 0; c < 3; c++) {
        h = sy_fnv_f64(h, d->P[c], S_ * S_);
        h = sy_fnv_f64(h, d->init[c], S_);
    }
    int T = d->c.seq_len;
    int32_t *row = malloc(sizeof(int32_t) * (size_t)T);
    for (int part = 0; row && part < 2; part++)
        for (int c = 0; c < 3; c++)
            for (int64_t i = 0; i < (part ? d->m_eval : d->m_train); i++) {
                int len = sy_markov_row(d, c, part, i, row, T);
                h = sy_fnv_i32(h, row, len);
            }
    free(row);
    snprintf(d->sum.source_digest, sizeof d->sum.source_digest, "fnv1a64:%016llx",
             (unsigned long long)h);
}

/* ---- evaluation helper --------------------------------------------------------------------- */

double markov_kl_row(const double *p, const float *logq, int S)
{
    double kl = 0;
    for (int j = 0; j < S; j++)
        if (p[j] > 0) kl += p[j] * (log(p[j]) - (double)logq[j]);
    return kl;
}

double markov_kl_per_token(const double *P_true, const float *logp, int ld, const int32_t *states,
                           int64_t n_pos, int S)
{
    if (n_pos <= 0) return 0;
    double sum = 0;
    for (int64_t t = 0; t < n_pos; t++) {
        if (states[t] < 0 || states[t] >= S) return NAN;
        sum += markov_kl_row(P_true + (size_t)states[t] * S, logp + t * (int64_t)ld, S);
    }
    return sum / (double)n_pos;
}
