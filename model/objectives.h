/* model/objectives.h — unlearning objectives as per-sequence weights.
 *
 * Every objective is a function of per-sequence sums s = sum_t log p(y_t | ...)
 * over the answer tokens (and closing EOS), with |y| such tokens. The loss is
 *     L = c_f * mean over forget sequences of l_f(s, |y|) + c_r * L_r,
 *     L_r = token-mean NLL over the retain sequences of the batch, or the
 *           token-mean KL(q || p) to the initial model's distributions q
 *           (soft targets: s = sum_t sum_j q_j log p_j, KL = negent - s),
 * and each sequence contributes w = dL/ds, by which the backward of its
 * cross-entropy is scaled (model_forward_backward). One forward and one
 * backward serve every method under any layout.
 *
 *   method    l_f                                  dl_f/ds
 *   ga        s/|y|                                1/|y|             (no retain term)
 *   graddiff  s/|y|                                1/|y|
 *   npo       -(2/b) log sig(-b (s - s_ref))       2 sig(b (s - s_ref))
 *   simnpo    -(2/b) log sig(-(b/|y|) s - g)       (2/|y|) sig((b/|y|) s + g)
 *
 * Two methods weight tokens instead (open-unlearning's WGA and SatImp): with
 * p_t = exp(logp_t) and a weight w_t computed from p_t and held constant (detached),
 * the forget term is c_f * sum over the forget tokens of the GLOBAL batch of
 * w_t logp_t / (their count), and dL/dlogp_t = c_f w_t / count:
 *   wga       w_t = p_t^b
 *   satimp    w_t = p_t^b (1 - p_t)^b2
 * They run through lethe_objective.tok (unlearn_objective sets it); b = 0 makes WGA
 * gradient ascent with a token-mean over the batch.
 *
 * CE-U (cross-entropy unlearning) has no retain term: each forget row carries soft
 * targets q = p renormalised without the true token (from a forward of the current
 * weights, held constant: vocab_parallel_exclude_targets), its first answer token is
 * not a target (ceu_skip_first_target), s = sum_t sum_j q_j log p_j, and the loss is
 * the token-mean cross-entropy -c_f * sum over forget rows of s / forget tokens.
 * UNDIAL is the same cross-entropy against the STARTING model's distributions with
 * the true token's logit lowered by b, q = softmax(logits0 - b onehot(y)), plus the
 * retain term (c_r) as GradDiff's.
 *
 * IdkNLL, DPO and IdkDPO weigh pairs of rows (an alternate answer per forget question):
 * model/objective_pairs.h, reached through unlearn_objective.
 * PDU (primal-dual unlearning, open-unlearning's PDU) minimises the forget rows'
 * logit-margin flattening loss under the retain constraint L_r <= eps through the
 * Lagrangian c_f L_f + lambda (L_r - eps): L_f = the mean over the forget target
 * positions of the GLOBAL batch of d_t^2, d_t = max_j z_tj - mean_j z_tj over the
 * vocabulary (lethe_margin_term, grad = pdu_margin_grad); the retain rows carry
 * w = -lambda / retain tokens and loss_retain gathers L_r itself (unweighted) for the
 * dual step lambda <- max(0, lambda + eta (L_r - eps)) (pdu_dual_update), which the
 * job takes once per step after the primal one.
 *
 * Objectives know sequences and weights, not communicators: the caller provides
 * the global counts (forget sequences, retain tokens) of the step's batch. */
#ifndef LETHE_OBJECTIVES_H
#define LETHE_OBJECTIVES_H

#include "model_config.h"
#include "transformer.h"

/* The method's name in configs and messages: "ga" | "graddiff" | "npo" | "simnpo" | ... */
const char *method_name(lethe_method m);
/* log sigmoid(z) and sigmoid(z), stable for large |z|. */
double obj_log_sigmoid(double z);
double obj_sigmoid(double z);

typedef struct {
    lethe_method method;
    double beta, gamma, c_f, c_r;
    double beta2; /* satimp: exponent of (1 - p) */
    /* the step's batch (this replica's sequences, B of them) */
    const unsigned char *is_forget; /* (B) 1 forget, 0 retain */
    const double *s_ref;            /* (B) NPO: reference log-likelihood sums of forget seqs */
    const double *negent;           /* (B) KL retain term: sum over the sequence's target positions
                                       of sum_j q_j log q_j under the initial model, or NULL (NLL) */
    double n_forget;                /* forget sequences in the GLOBAL batch */
    double retain_tokens;           /* retain target tokens in the GLOBAL batch */
    double forget_tokens;           /* forget target tokens in the GLOBAL batch (wga, satimp) */
    /* accumulated by the objective over this replica's sequences (for logging) */
    double loss_forget, loss_retain, sigma_sum;
    double forget_logp; /* sum over forget sequences of s/|y| (mean token log-likelihood) */
    /* idknll, dpo, idkdpo (model/objective_pairs.h): rows [0, n_pairs) the forget answers,
     * [n_pairs, 2 n_pairs) the alternate ones; pair_s (2 n_pairs) their sums from
     * pairs_forward (dpo, idkdpo); s_ref then holds both rows' reference sums */
    int n_pairs;
    const double *pair_s;
    double alt_logp; /* accumulated: sum over alternate rows of s/|y| */
    double lambda;   /* pdu: the dual variable, the retain term's weight this step */
} unlearn_ctx;

/* The objective of c: per sequence, and per token for the token-weighted methods. */
lethe_objective unlearn_objective(unlearn_ctx *c);
/* The per-sequence callback for lethe_objective (ctx: unlearn_ctx *). */
double unlearn_objective_seq(const struct lethe_objective *o, int b, double s, double n, double *w);
/* CE-U: the first target of a row (its first answer token) is not one. */
void ceu_skip_first_target(int *targets, int T);
/* 1 for the methods that weight tokens (wga, satimp). */
int method_weights_tokens(lethe_method m);
/* The detached weight w_t of a token with log-probability logp (wga, satimp). */
double token_weight(lethe_method m, double beta, double beta2, double logp);
/* l_f and dl_f/ds of one forget sequence (exposed for tests). sigma: the sigmoid
 * weight of NPO/SimNPO (1 for GA). Not for the token-weighted methods. */
double forget_loss(lethe_method m, double beta, double gamma, double s, double n, double s_ref,
                   double *dlds, double *sigma);

/* PDU's objective (unlearn_objective returns it for METHOD_PDU): per-sequence weights
 * for the retain rows; the forget rows' term is the model's margin term, whose grad is
 * pdu_margin_grad (ctx: the same unlearn_ctx). */
lethe_objective pdu_objective(unlearn_ctx *c);
double pdu_margin_grad(void *ctx, int b, float *d, const int *targets, int T);
/* The dual step: max(0, lambda + eta (retain_loss - eps)). */
double pdu_dual_update(double lambda, double eta, double retain_loss, double eps);

#endif
