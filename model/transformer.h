/* model/transformer.h — the Llama-style decoder, sharded over the grid.
 *
 * One model = this rank's piece: the layers of its pipeline stage, its
 * tensor-parallel slice of every projection (heads, kv-heads, MLP width and the
 * padded vocabulary split over tp). Weights follow the Hugging Face names and
 * layouts. A step runs the replica's batch as micro-batches through the 1F1B
 * pipeline schedule (model/pipeline.c); the loss is defined by a per-sequence
 * objective (model/objectives.h), so one forward and one backward serve
 * training, every unlearning method and evaluation.
 *
 * A model has three parts: its shape (the config, the grid and every size this rank
 * works with, fixed at creation), its weights (the parameter table, registered from one
 * static table in model/weights.c, and named views into it) and its workspace (every
 * buffer a step uses, sized and carved from one allocation in model/workspace.c). After
 * model_create nothing in a step allocates. */
#ifndef LETHE_TRANSFORMER_H
#define LETHE_TRANSFORMER_H

#include "../mpi/grid.h"
#include "model_config.h"
#include "params.h"
#include "tp_linear.h"
#include "vocab_parallel.h"

/* The batch one replica processes in one step.
 * tokens (B, T): input ids; targets (B, T): the id that position t must predict,
 * or -1 where no loss is taken (prompt, padding, last position).
 * Soft targets (optional, both NULL for none): sequences b with soft_seq[b] (B) take,
 * at each position with a target, the distribution whose log is row (b*T + t) of
 * soft_lp (B*T, v_l: this rank's vocabulary shard, read on the last stage only)
 * instead of the target id; their s is then sum_t sum_j q_j log p_j. */
typedef struct {
    int B, T;
    int *tokens;
    int *targets;
    const float *soft_lp;
    const unsigned char *soft_seq;
} lethe_batch;

/* Per-sequence objective. For sequence b of the replica's batch, given
 * s = sum of log-probabilities of its target tokens and n = their count, returns
 * its loss contribution and sets *w = dL/ds. The replica's loss is the sum of the
 * contributions (objectives normalise by global counts themselves, so the
 * data-parallel gradient is a plain sum). An objective whose gradient differs from
 * token to token (token-weighted ones: WGA, SatImp) also sets tok, which then replaces
 * seq: given the sequence's per-token log-probabilities logp (T; valid where
 * targets >= 0), it returns the contribution and writes g[t] = dL/dlogp_t (0 at the
 * other positions). */
typedef struct lethe_objective {
    double (*seq)(const struct lethe_objective *o, int b, double s, double n, double *w);
    void *ctx;
    double (*tok)(const struct lethe_objective *o, int b, double s, double n, const float *logp,
                  const int *targets, int T, float *g);
} lethe_objective;

/* ---- shape: what this rank holds and computes, fixed at model_create ----- */
typedef struct {
    lethe_model_config cfg;
    const lethe_grid *grid;
    int C, hd, nh, nkv, ffn; /* global */
    int nh_l, nkv_l, ffn_l;  /* this tp rank's */
    int V, Vpad, v_l, v0,
        v_valid;     /* vocabulary: global, padded, local rows, first row, real rows */
    int layer0, nl;  /* this stage's layers [layer0, layer0 + nl) */
    int first, last; /* stage flags */
    int tied_copy;   /* last stage holds a synchronized copy of the embedding */
    int Bm, T;       /* micro-batch size and sequence length activations are sized for */
    int M;           /* micro-batches per call at most: the replica batch is <= M*Bm */
    int nslots;      /* micro-batches in flight on this stage */
    /* parallel roles: the vocabulary shard (embedding, cross-entropy) and the shapes of
     * the column-parallel layers (q|k|v, gate|up, head) */
    vocab_shard vocab;
    tp_column qkv, mlp_in, head_l;
    comm_stats *comm; /* = &the model's ws.comm: forward passes (const model) count into it */
} lethe_shape;

/* ---- weights: the parameter table and named views into its data buffer ----- */
typedef struct {
    float *ln1, *wq, *wk, *wv, *wo, *ln2, *wg, *wu, *wd;
} lethe_layer_w;

typedef struct {
    lethe_params params;
    float *embed, *norm,
        *head; /* embed on first stage; norm, head on last (head == embed if tied, pp == 1) */
    lethe_layer_w *layer; /* nl */
    int embed_idx; /* table index of the embedding or its tied copy on this rank, or -1 */
} lethe_weights;

/* ---- workspace: every buffer a step uses, carved from one allocation -------- */
typedef struct {
    /* per-layer activations of one micro-batch (N = Bm*T tokens), local widths */
    float *ln1, *rstd1, *q, *k, *v, *probs, *att, *xmid, *ln2, *rstd2, *gate, *up, *h;
} lethe_layer_act;

typedef struct {
    float **resid;          /* nl + 1 buffers (N, C): stage input .. stage output */
    lethe_layer_act *layer; /* nl */
    float *lnf, *rstdf;     /* last stage: final norm (N, C), (N) */
    float *logp;            /* last stage: per-token log-prob of the target (N) */
} lethe_slot;

typedef struct {
    void *base; /* the one allocation; everything below points into it */
    size_t bytes;
    lethe_slot *slots;          /* nslots: one per micro-batch in flight */
    float *cos_t, *sin_t;       /* (max_seq_len, hd/2) */
    float *logits, *dlogits;    /* last stage: (N, v_l) */
    float *dx, *dln;            /* (N, C) gradient of the residual stream, of a norm's output */
    float *datt, *dq, *dk, *dv, *dh; /* (N, local widths) accumulated into */
    float *dgate, *dup;              /* (N, ffn_l) written by swiglu_backward */
    float *dacc;                /* = datt: the span datt .. dh, zeroed at once per block */
    size_t dacc_n;              /* its length in floats */
    float *attn_scratch;        /* (T, T) */
    float *ce_buf;              /* (4N) */
    float *gcoef;               /* (N) last stage: the loss gradient per token of one micro-batch
                                   (model/pipeline.c loss_grad) */
    double *negent_h;           /* (N) last stage: per-token negative entropies (log-softmax) */
    double *seq_s, *seq_n;      /* (M*Bm) per-sequence sums of one call (last stage) */
    double *results;            /* (2*M*Bm + 1) their broadcast over pp, with the loss */
    /* the pipeline's point-to-point sends, per slot: pending requests and the buffers of
     * the gradients sent back (every stage but the first) */
    MPI_Request *act_req, *grad_req;
    float **grad_send;
    float *ring_staging; /* dp > 1: the dp reduce-scatter's (COMM_PIECE floats) */
    int nll_fused;       /* model_forward_backward of the token-mean NLL: the last stage's
                            forward writes the logits' gradient over them from the loss's
                            exps (ce_fused_nll; vocab_parallel_nll_fused with tp > 1), with
                            gradient weight nll_w per target token */
    float nll_w;
    int dlogits_ready;   /* the forward of the micro-batch in flight did so */
    comm_stats comm;     /* the traffic of this model's calls since model_create (or since
                            the caller last zeroed it: lethe bench does, per step) */
} lethe_workspace;

/* A loss term on the logits' margins (PDU's forget term), attached to a model for the
 * steps that take it (lethe_model.margin; NULL: none). Rows b of the replica batch with
 * rows[b] (B) take, at each position with a target, d = max_j z_j - mean_j z_j over the
 * real vocabulary: the forward writes d into d (B*T) and the id of the largest logit
 * into arg (B*T), on the last stage; then grad(ctx, b, d + b*T, targets of row b, T)
 * returns the row's loss contribution and overwrites its d with dL/dd, which the
 * backward applies to the logits. */
typedef struct {
    const unsigned char *rows;
    float *d;
    int *arg;
    double (*grad)(void *ctx, int b, float *d, const int *targets, int T);
    void *ctx;
} lethe_margin_term;

typedef struct {
    lethe_shape shape;
    lethe_weights w;
    lethe_workspace ws;
    const lethe_margin_term *margin; /* set by a job around its step, else NULL */
} lethe_model;

/* Checks that the layout admits the model (tp divides heads, kv-heads, MLP width;
 * pp <= layers; micro-batches divide the replica batch). 0, or -1 + err. Pure:
 * every rank reaches the same verdict. */
int model_check_layout(const lethe_model_config *cfg, int dp, int pp, int tp, int batch,
                       int micro_batches, int T, char *err, size_t errlen);

/* The layers [*layer0, *layer0 + *nl) of pipeline stage `stage` of pp: contiguous
 * stages of >= 1 layer each, chosen to minimise the largest stage cost, where
 * the first stage also pays for the embedding and the last for the final norm,
 * the head and the cross-entropy over the vocabulary (model/transformer.c counts
 * them in flops per token). Depends on cfg and pp only (1 <= pp <= n_layers). */
void model_stage_layers(const lethe_model_config *cfg, int pp, int stage, int *layer0, int *nl);

/* Builds this rank's shard: its weights, and a workspace sized for calls of at most
 * M micro-batches of Bm x T (a replica batch of up to M*Bm sequences), allocated here
 * once; no call below allocates. */
void model_create(lethe_model *m, const lethe_model_config *cfg, const lethe_grid *g, int Bm, int T,
                  int M);
/* Layout-independent initialisation from cfg.init_seed. */
void model_init_weights(lethe_model *m);
void model_free(lethe_model *m);

/* Forward and backward of the replica's batch (B = a multiple of Bm, at most M*Bm)
 * through the pipeline. Gradients are zeroed first. On return, every rank of the
 * replica holds: the replica's loss (return value), seq_s/seq_n (B each, may be
 * NULL), and its gradient pieces for the replica's batch (not yet reduced over dp). */
double model_forward_backward(lethe_model *m, const lethe_batch *b, const lethe_objective *obj,
                              double *seq_s, double *seq_n);
/* Forward only: per-sequence sums (B each) and, if tok_logp != NULL, per-token
 * log-probabilities (B, T), valid on every rank of the replica. */
void model_forward(lethe_model *m, const lethe_batch *b, double *seq_s, double *seq_n,
                   float *tok_logp);

/* Forward only, keeping the distributions: on the last stage, out (B*T, v_l) gets
 * this rank's shard of log-softmax at every position (rows without a target too),
 * and tok_logp (B, T; may be NULL) the log-probabilities of the targets; every rank of
 * the replica gets negent (B): per sequence, sum over positions with a target of
 * sum_j p_j log p_j (the negative entropy). */
void model_forward_logsoftmax(lethe_model *m, const lethe_batch *b, float *out, double *negent,
                              float *tok_logp);

/* Whether this rank sums its embedding's gradient with a tied copy on another stage. */
int model_sums_tied(const lethe_model *m);
/* Sums gradients over dp (bucketed) and over the tied-embedding pair. */
void model_reduce_grads(lethe_model *m);
/* Global gradient L2 norm over the whole model (each tensor counted once). With bad, the
 * same pass checks this rank's whole gradient for Inf and NaN: *bad is the first tensor
 * holding one, or -1. */
double model_grad_norm(lethe_model *m, int *bad);
/* The split update over dp replicas: sums the tied-embedding pair, then reduce-scatters
 * the gradients over dp so that only this replica's share [*lo, *hi) of the flat buffer
 * (comm_share) holds the sum. */
void model_reduce_scatter_grads(lethe_model *m, size_t *lo, size_t *hi, int *bad);
/* The global gradient L2 norm from the shares [lo, hi) of every replica. */
double model_grad_norm_share(lethe_model *m, size_t lo, size_t hi);

/* Model FLOPs per trained token (forward + backward), as counted by bench/train. */
double model_flops_per_token(const lethe_model_config *cfg, int T);
/* Total parameter count of the global model. */
int64_t model_num_params(const lethe_model_config *cfg);

#endif
