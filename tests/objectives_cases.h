/* tests/objectives_cases.h — the unlearning-objective cases tests/objectives_dump.c
 * dumps for tests/torch_objectives.py (one per `objectives.<case>` test in
 * tests/objectives.cmake): the method, its hyper-parameters, the NPO reference and the
 * retain term. Included by objectives_dump.c alone. */
#ifndef LETHE_TESTS_OBJECTIVES_CASES_H
#define LETHE_TESTS_OBJECTIVES_CASES_H

#include "../model/model_config.h"

enum { REF_NONE, REF_INITIAL, REF_PERTURBED };

typedef struct {
    const char *name;
    lethe_method method;
    double beta, gamma, c_f, c_r;
    double beta2; /* satimp */
    int ref;      /* NPO reference (and, with kl, the KL retain term's initial model) */
    int kl;       /* retain term: 0 token-mean NLL, 1 token-mean KL(reference || current) */
} obj_case;

/* DESIGN §3's reference settings: NPO beta 0.1 (and a sharper beta 2), TOFU forget05
 * SimNPO (beta 2.5, c_f 0.1375, gamma 0) and a margin gamma 0.5 at forget10's beta 4.5;
 * SimNPO and NPO with the KL(initial || current) retain term. */
static const obj_case cases[] = {
    {"ga", METHOD_GA, 0, 0, 1, 1, 0, REF_NONE, 0},
    {"ga_retain_rows", METHOD_GA, 0, 0, 1, 1, 0, REF_NONE, 0},
    {"graddiff", METHOD_GRADDIFF, 0, 0, 1, 1, 0, REF_NONE, 0},
    {"npo_beta0.1", METHOD_NPO, 0.1, 0, 1, 1, 0, REF_INITIAL, 0},
    {"npo_beta2", METHOD_NPO, 2, 0, 1, 1, 0, REF_INITIAL, 0},
    {"npo_beta0.1_perturbed_ref", METHOD_NPO, 0.1, 0, 1, 1, 0, REF_PERTURBED, 0},
    {"npo_beta2_perturbed_ref", METHOD_NPO, 2, 0, 1, 1, 0, REF_PERTURBED, 0},
    {"simnpo", METHOD_SIMNPO, 2.5, 0, 0.1375, 1, 0, REF_NONE, 0},
    {"simnpo_gamma0.5", METHOD_SIMNPO, 4.5, 0.5, 0.125, 1, 0, REF_NONE, 0},
    /* the KL retain term against a perturbed copy of the weights (at the initial weights
     * themselves KL and its gradient are zero) */
    {"simnpo_kl", METHOD_SIMNPO, 2.5, 0, 0.1375, 1, 0, REF_PERTURBED, 1},
    {"npo_beta0.1_kl", METHOD_NPO, 0.1, 0, 1, 1, 0, REF_PERTURBED, 1},
    /* token-weighted: open-unlearning's WGA (beta 1) and SatImp (beta1 5, beta2 1) */
    {"wga", METHOD_WGA, 1, 0, 1, 1, 0, REF_NONE, 0},
    {"wga_beta0.5", METHOD_WGA, 0.5, 0, 0.5, 1, 0, REF_NONE, 0},
    {"satimp", METHOD_SATIMP, 5, 0, 1, 0.1, 1, REF_NONE, 0},
    {"satimp_kl", METHOD_SATIMP, 2, 0, 1, 1, 0.5, REF_PERTURBED, 1},
    /* CE-U: forget rows only, as the job batches it */
    {"ceu", METHOD_CEU, 0, 0, 1, 0, 0, REF_NONE, 0},
    {"ceu_cf0.5", METHOD_CEU, 0, 0, 0.5, 0, 0, REF_NONE, 0},
    /* UNDIAL: the starting model's distributions (here a perturbed copy, so that they
     * differ from the current ones) with the true logit lowered by beta */
    {"undial", METHOD_UNDIAL, 10, 0, 1, 1, 0, REF_PERTURBED, 0},
    {"undial_beta2", METHOD_UNDIAL, 2, 0, 1, 0.5, 0, REF_PERTURBED, 0},
    /* pairs (model/objective_pairs.h): forget rows 0-1 are y_l, rows 2-3 the alternate
     * y_w of the same questions (another chain); DPO's reference sums are cached from the
     * initial weights (x = 0: sigma 1/2) or a perturbed copy. open-unlearning's DPO:
     * beta 0.1, c_f 1, c_r 1 */
    {"idknll", METHOD_IDKNLL, 0, 0, 1, 1, 0, REF_NONE, 0},
    {"idknll_kl", METHOD_IDKNLL, 0, 0, 0.5, 1, 0, REF_PERTURBED, 1},
    {"dpo_beta0.1", METHOD_DPO, 0.1, 0, 1, 1, 0, REF_INITIAL, 0},
    {"dpo_beta2_perturbed_ref", METHOD_DPO, 2, 0, 1, 1, 0, REF_PERTURBED, 0},
    {"idkdpo_perturbed_ref", METHOD_IDKDPO, 0.5, 0, 1, 0.5, 0, REF_PERTURBED, 0},
    {"idkdpo_kl", METHOD_IDKDPO, 0.5, 0, 1, 1, 0, REF_PERTURBED, 1},
    /* PDU: c_f the forget weight, c_r the dual variable lambda of the step (open-unlearning's
     * gamma 1 and alpha 1, and a KL retain term with lambda 0.3) */
    {"pdu", METHOD_PDU, 0, 0, 1, 1, 0, REF_NONE, 0},
    {"pdu_kl", METHOD_PDU, 0, 0, 0.5, 0.3, 0, REF_PERTURBED, 1},
    /* WAGLE's scores (model/wagle.c) of GradDiff's forget and retain gradients; mu 1e-3
     * so that theta and grad L_r / mu both matter (at the paper's 1e-6 theta vanishes) */
    {"graddiff_wagle", METHOD_GRADDIFF, 0, 0, 1, 1, 0, REF_NONE, 0},
};

#endif
