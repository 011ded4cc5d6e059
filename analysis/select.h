/* analysis/select.h — the selection rule of a protocol study (io/study.h "protocol"):
 * which setting of a method goes on to the report seeds. Pure math, no I/O.
 *
 * Rule "fq_at_mu": among the settings whose mean model utility over the selection seeds
 * is at least tau * MU(origin) (eligible), the one with the best mean forget quality
 * (the mean of log10 FQ over the selection seeds); ties (within 1e-12 relative) go to
 * the smaller mean |forget prob - retrained model's forget prob|, then to the lower
 * setting index. When no setting is eligible, the one with the highest mean utility,
 * flagged. A setting whose mean utility or forget quality is not finite (a seed without
 * a reference, a NaN run) is never eligible, nor chosen by utility when its utility is
 * not finite. */
#ifndef LETHE_ANALYSIS_SELECT_H
#define LETHE_ANALYSIS_SELECT_H

/* One setting's means over its selection seeds. */
typedef struct {
    double mean_mu;         /* mean model utility */
    double mean_log10_fq;   /* mean log10 forget quality */
    double forget_prob_gap; /* mean |forget prob - retrained model's forget prob| */
    int eligible;           /* set by select_fq_at_mu */
} select_candidate;

/* Marks each candidate's eligibility and returns the chosen one's index; *fallback is 1
 * when none was eligible (the highest utility was taken). -1 when no candidate has a
 * finite utility (nothing can be chosen). */
int select_fq_at_mu(select_candidate *c, int n, double tau, double mu_origin, int *fallback);

#endif
