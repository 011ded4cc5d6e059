/* tests/test_select.c — the protocol's selection rule (analysis/select.h) on hand-made
 * settings whose answer is worked out by hand in each case's comment. */
#include <math.h>
#include <stdio.h>

#include "../analysis/select.h"
#include "check.h"

CHECK_COUNTERS;

/* mean_mu, mean_log10_fq, forget_prob_gap */
#define C(mu, fq, gap)                                                                             \
    {                                                                                              \
        mu, fq, gap, -1                                                                            \
    }

int main(void)
{
    int fb = -1;
    /* MU(origin) 0.6, tau 0.95: the bar is 0.57. Settings 0 (0.58) and 2 (0.57, on the
     * bar) are eligible; 1 has the best FQ (-0.5) but 0.50 < 0.57; of 0 (-2.0) and
     * 2 (-1.2) the better FQ is 2. */
    select_candidate a[] = {C(0.58, -2.0, 0.1), C(0.50, -0.5, 0.0), C(0.57, -1.2, 0.3)};
    int k = select_fq_at_mu(a, 3, 0.95, 0.6, &fb);
    CHECK(k == 2 && fb == 0, "case a: chose %d (fallback %d), expected 2 (0)", k, fb);
    CHECK(a[0].eligible && !a[1].eligible && a[2].eligible, "case a: eligibility %d %d %d",
          a[0].eligible, a[1].eligible, a[2].eligible);
    /* equal FQ (-1.0): the smaller gap wins (1: 0.05 < 0: 0.2), whatever the order */
    select_candidate b[] = {C(0.7, -1.0, 0.2), C(0.65, -1.0, 0.05), C(0.9, -3.0, 0.0)};
    k = select_fq_at_mu(b, 3, 0.95, 0.6, &fb);
    CHECK(k == 1 && fb == 0, "case b: chose %d, expected 1 (tie on FQ, smaller gap)", k);
    /* all equal: the lower index */
    select_candidate c[] = {C(0.7, -1.0, 0.1), C(0.7, -1.0, 0.1)};
    k = select_fq_at_mu(c, 2, 0.95, 0.6, &fb);
    CHECK(k == 0, "case c: chose %d, expected 0 (full tie: the lower index)", k);
    /* nothing reaches 0.95 x 0.8 = 0.76: the highest MU (1: 0.75), flagged */
    select_candidate d[] = {C(0.70, -0.1, 0.0), C(0.75, -5.0, 0.5), C(0.40, -0.2, 0.0)};
    k = select_fq_at_mu(d, 3, 0.95, 0.8, &fb);
    CHECK(k == 1 && fb == 1, "case d: chose %d (fallback %d), expected 1 (1)", k, fb);
    CHECK(!d[0].eligible && !d[1].eligible && !d[2].eligible, "case d: none eligible");
    /* a NaN FQ is never eligible even with the best MU; NaN MU never chosen */
    select_candidate e[] = {C(0.9, NAN, 0.0), C(NAN, 0.0, 0.0), C(0.6, -4.0, 0.2)};
    k = select_fq_at_mu(e, 3, 0.5, 0.8, &fb);
    CHECK(k == 2 && fb == 0 && !e[0].eligible && !e[1].eligible, "case e: chose %d (fallback %d)",
          k, fb);
    select_candidate f[] = {C(NAN, -1.0, 0.0), C(0.3, NAN, 0.0)};
    k = select_fq_at_mu(f, 2, 0.95, 0.8, &fb);
    CHECK(k == 1 && fb == 1, "case f: chose %d (fallback %d), expected 1 (1)", k, fb);
    select_candidate g[] = {C(NAN, -1.0, 0.0)};
    k = select_fq_at_mu(g, 1, 0.95, 0.8, &fb);
    CHECK(k == -1 && fb == 1, "case g: chose %d, expected -1 (nothing finite)", k);
    /* tau 0: every finite setting is eligible; log10 FQ -0.30103 (FQ 0.5) beats -1 */
    select_candidate h[] = {C(0.01, -1.0, 0.0), C(0.02, log10(0.5), 0.9)};
    k = select_fq_at_mu(h, 2, 0.0, 0.8, &fb);
    CHECK(k == 1 && fb == 0, "case h: chose %d, expected 1", k);
    /* FQ differing by 1e-9 is not a tie: the gap does not decide */
    select_candidate i[] = {C(0.7, -1.0, 0.9), C(0.7, -1.0 - 1e-9, 0.0)};
    k = select_fq_at_mu(i, 2, 0.95, 0.6, &fb);
    CHECK(k == 0, "case i: chose %d, expected 0 (better FQ by 1e-9)", k);
    printf("select.unit: %d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
