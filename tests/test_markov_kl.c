/* tests/test_markov_kl.c — checks of analysis/markov_kl.h, the KL-to-truth math of
 * `lethe eval` on a Markov-chain mixture, against a brute-force reference.
 *
 * A random chain (S = 5 states, one transition and one initial probability set to 0)
 * and a random model distribution q over V = 8 tokens (3 of them not states, so mass on
 * them counts as error) at every position of random rows of states and BOS. The
 * library's way, as lethe eval takes it: negentropy of the true distribution minus the
 * cross term sum_v exp(lq_v) log q_v with the soft targets lq of markov_log_targets,
 * built shard by shard (vocabulary columns [0, 3), [3, 8) as two tp ranks would). The
 * reference: sum_j p_j log(p_j / q_j) over the states with p_j > 0, position by
 * position, read straight from the matrix. Per row 1e-6 relative (the soft targets are
 * float: ~6e-8 relative each); the token-mean KL and mean probability of
 * markov_aggregate against sum(kl) / sum(n) and mean(exp(-nll)) to 1e-12; contexts
 * (state, BOS, neither) exactly; a row without positions gives NAN. Exit 1 on failure. */
#include "analysis/markov_kl.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define S 5
#define V 8
#define BOS 6
#define ROWS 7
#define LEN 9

static int checks, failures;

static void check(int ok, const char *what, double got, double want)
{
    checks++;
    if (!ok) {
        failures++;
        fprintf(stderr, "FAIL %s: got %.17g, want %.17g\n", what, got, want);
    }
}

static double unif(uint64_t *s) /* [0, 1) */
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(*s >> 11) * 0x1.0p-53;
}

/* a random distribution of n values, entry `zero` (if >= 0) exactly 0 */
static void random_dist(double *p, int n, int zero, uint64_t *s)
{
    double t = 0;
    for (int j = 0; j < n; j++) t += p[j] = j == zero ? 0.0 : 0.05 + unif(s);
    for (int j = 0; j < n; j++) p[j] /= t;
}

int main(void)
{
    uint64_t seed = 12345;
    double P[S * S], init[S], q[V], logq[V];
    for (int i = 0; i < S; i++) random_dist(P + i * S, S, i == 2 ? 4 : -1, &seed);
    random_dist(init, S, 0, &seed);
    check(markov_context(BOS, S, BOS) == S, "context of BOS", markov_context(BOS, S, BOS), S);
    check(markov_context(3, S, BOS) == 3, "context of a state", markov_context(3, S, BOS), 3);
    check(markov_context(S, S, BOS) == -1, "context of a non-state", markov_context(S, S, BOS), -1);
    check(markov_context(-2, S, BOS) == -1, "context of -2", markov_context(-2, S, BOS), -1);

    markov_row rows[ROWS];
    double kl_sum = 0, n_sum = 0, prob_sum = 0;
    for (int r = 0; r < ROWS; r++) {
        int len = 1 + r % LEN; /* positions of this row */
        double lib = 0, ref = 0;
        for (int t = 0; t < len; t++) {
            int token = t == 0 ? BOS : (int)(unif(&seed) * S);
            int ctx = markov_context(token, S, BOS);
            const double *p = markov_true_dist(P, init, S, ctx);
            random_dist(q, V, -1, &seed);
            for (int v = 0; v < V; v++) logq[v] = log(q[v]);
            float lq[V];
            markov_log_targets(lq, p, S, 0, 3);
            markov_log_targets(lq + 3, p, S, 3, V - 3);
            double cross = 0;
            for (int v = 0; v < V; v++)
                if (lq[v] > -INFINITY) cross += exp((double)lq[v]) * logq[v];
            lib += markov_negentropy(p, S) - cross;
            const double *pr = ctx == S ? init : P + ctx * S;
            for (int j = 0; j < S; j++)
                if (pr[j] > 0) ref += pr[j] * log(pr[j] / q[j]);
        }
        check(fabs(lib - ref) <= 1e-6 * fabs(ref), "row KL", lib, ref);
        rows[r] = (markov_row){r, lib, 0.5 + r, len};
        check(fabs(markov_row_kl(&rows[r]) - lib / len) <= 1e-15 * fabs(lib / len),
              "row KL per token", markov_row_kl(&rows[r]), lib / len);
        kl_sum += lib;
        n_sum += len;
        prob_sum += exp(-(0.5 + r));
    }
    double kl, prob;
    check(markov_aggregate(rows, ROWS, &kl, &prob) == 0, "markov_aggregate status", 0, 0);
    check(fabs(kl - kl_sum / n_sum) <= 1e-12 * fabs(kl_sum / n_sum), "token-mean KL", kl,
          kl_sum / n_sum);
    check(fabs(prob - prob_sum / ROWS) <= 1e-12 * (prob_sum / ROWS), "mean probability", prob,
          prob_sum / ROWS);
    markov_row empty = {0, 0, 1.0, 0};
    check(isnan(markov_row_kl(&empty)), "KL of a row without positions", markov_row_kl(&empty),
          NAN);
    check(markov_aggregate(&empty, 1, &kl, &prob) == 0 && isnan(kl),
          "token-mean KL without positions", kl, NAN);
    printf("metrics.markov_kl: %d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
