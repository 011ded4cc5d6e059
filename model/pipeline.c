/* model/pipeline.c — the 1F1B schedule over pipeline stages.
 *
 * Stage s of P runs min(P - s - 1, M) warm-up forwards, then alternates one
 * forward and one backward, then drains the remaining backwards. Activations
 * go to stage s+1 and their gradients back to s-1 with point-to-point messages
 * (non-blocking sends from per-slot buffers, so neighbours never deadlock).
 * Micro-batch i lives in slot i % (P - s): its backward always runs before
 * micro-batch i + P - s is started. The last stage runs forward(i), asks the
 * objective for the loss gradient of micro-batch i (loss_grad) and runs
 * backward(i) back to back, so it needs a single logits buffer. */
#include <string.h>

#include "../mpi/comm.h"
#include "../mpi/fatal.h"
#include "stage.h"
#include "step.h"

typedef struct {
    lethe_model *m;
    const lethe_batch *b;
    const lethe_objective *obj;
    double *seq_s, *seq_n; /* (B) replica-wide results, filled on the last stage (workspace) */
    float *tok_logp;       /* (B, T) or NULL */
    float *lsm;            /* (B*T, v_l) log-softmax out (model_forward_logsoftmax), or NULL */
    double loss;
} sched;

/* Rows of micro-batch i of a (B, T) array. */
static const int *mb_rows(const int *base, const lethe_shape *s, int i)
{
    return base + (size_t)i * s->Bm * s->T;
}

static void fwd(sched *S, int i)
{
    lethe_model *m = S->m;
    const lethe_shape *sh = &m->shape;
    int k = i % sh->nslots, Bm = sh->Bm, pr = sh->grid->pp_rank;
    lethe_slot *s = &m->ws.slots[k];
    size_t N = (size_t)Bm * sh->T, NC = N * sh->C;
    MPI_Comm pc = sh->grid->pp_comm;
    comm_wait(&m->ws.act_req[k], &m->ws.comm); /* slot's previous send done before reuse */
    if (sh->first)
        stage_embed(m, s, mb_rows(S->b->tokens, sh, i));
    else
        comm_recv(s->resid[0], NC, pr - 1, 2 * i, pc, &m->ws.comm);
    stage_forward(m, s, S->b, i, S->seq_s + (size_t)i * Bm, S->seq_n + (size_t)i * Bm);
    if (!sh->last) {
        comm_isend(s->resid[sh->nl], NC, pr + 1, 2 * i, pc, &m->ws.act_req[k], &m->ws.comm);
        return;
    }
    if (S->tok_logp) memcpy(S->tok_logp + (size_t)i * N, s->logp, sizeof(float) * N);
    if (S->lsm)
        stage_log_softmax(m, mb_rows(S->b->targets, sh, i), S->lsm + (size_t)i * N * sh->v_l,
                          S->seq_s + (size_t)i * Bm);
}

/* Last stage, after fwd(i): the objective turns micro-batch i's per-sequence sums
 * into its loss (added to S->loss) and the per-token gradient d loss / d logp,
 * which it returns for bwd(i). Other stages: NULL (their gradient comes from the
 * next stage). */
static const float *loss_grad(sched *S, int i)
{
    lethe_model *m = S->m;
    const lethe_shape *sh = &m->shape;
    if (!sh->last) return NULL;
    const int *tg = mb_rows(S->b->targets, sh, i);
    const float *logp = m->ws.slots[i % sh->nslots].logp; /* fwd(i)'s, on this stage */
    for (int b = 0; b < sh->Bm; b++) {
        int gb = i * sh->Bm + b;
        size_t r = (size_t)b * sh->T;
        const lethe_margin_term *mt = m->margin;
        if (mt && mt->rows[gb])
            S->loss += mt->grad(mt->ctx, gb, mt->d + (size_t)gb * sh->T, tg + r, sh->T);
        if (S->obj->tok) {
            S->loss += S->obj->tok(S->obj, gb, S->seq_s[gb], S->seq_n[gb], logp + r, tg + r, sh->T,
                                   m->ws.gcoef + r);
            continue;
        }
        double w = 0.0;
        S->loss += S->obj->seq(S->obj, gb, S->seq_s[gb], S->seq_n[gb], &w);
        for (int t = 0; t < sh->T; t++)
            m->ws.gcoef[b * sh->T + t] = tg[b * sh->T + t] >= 0 ? (float)w : 0.0f;
    }
    return m->ws.gcoef;
}

/* dlogp: on the last stage, loss_grad(S, i). */
static void bwd(sched *S, int i, const float *dlogp)
{
    lethe_model *m = S->m;
    const lethe_shape *sh = &m->shape;
    int k = i % sh->nslots, pr = sh->grid->pp_rank;
    lethe_slot *s = &m->ws.slots[k];
    size_t NC = (size_t)sh->Bm * sh->T * sh->C;
    MPI_Comm pc = sh->grid->pp_comm;
    if (sh->last)
        stage_head_backward(m, s, S->b, i, dlogp);
    else
        comm_recv(m->ws.dx, NC, pr + 1, 2 * i + 1, pc, &m->ws.comm);
    stage_backward(m, s, mb_rows(S->b->tokens, sh, i));
    if (!sh->first) {
        comm_wait(&m->ws.grad_req[k], &m->ws.comm);
        memcpy(m->ws.grad_send[k], m->ws.dx, sizeof(float) * NC);
        comm_isend(m->ws.grad_send[k], NC, pr - 1, 2 * i + 1, pc, &m->ws.grad_req[k], &m->ws.comm);
    }
}

static void sched_init(sched *S, lethe_model *m, const lethe_batch *b)
{
    const lethe_shape *sh = &m->shape;
    memset(S, 0, sizeof(*S));
    S->m = m;
    S->b = b;
    if (b->T != sh->T || b->B % sh->Bm || b->B > sh->M * sh->Bm)
        lethe_fatal("batch of %d x %d does not fit the model's micro-batches of %d x %d (at most "
                    "%d per call)",
                    b->B, b->T, sh->Bm, sh->T, sh->M);
    S->seq_s = m->ws.seq_s;
    S->seq_n = m->ws.seq_n;
    memset(S->seq_s, 0, sizeof(double) * (size_t)b->B);
    memset(S->seq_n, 0, sizeof(double) * (size_t)b->B);
}

/* Waits for outstanding sends and gives every rank of the replica the results
 * of the last stage. */
static void sched_finish(sched *S, double *seq_s, double *seq_n)
{
    lethe_model *m = S->m;
    for (int k = 0; k < m->shape.nslots; k++) {
        comm_wait(&m->ws.act_req[k], &m->ws.comm);
        comm_wait(&m->ws.grad_req[k], &m->ws.comm);
    }
    size_t B = (size_t)S->b->B;
    int last = m->shape.grid->pp - 1;
    double *buf = m->ws.results; /* (2B + 1) */
    memcpy(buf, S->seq_s, sizeof(double) * B);
    memcpy(buf + B, S->seq_n, sizeof(double) * B);
    buf[2 * B] = S->loss;
    comm_bcast_d(buf, 2 * B + 1, last, m->shape.grid->pp_comm, &m->ws.comm);
    if (seq_s) memcpy(seq_s, buf, sizeof(double) * B);
    if (seq_n) memcpy(seq_n, buf + B, sizeof(double) * B);
    S->loss = buf[2 * B];
}

double model_forward_backward(lethe_model *m, const lethe_batch *b, const lethe_objective *obj,
                              double *seq_s, double *seq_n)
{
    sched S;
    sched_init(&S, m, b);
    S.obj = obj;
    memset(m->w.params.grad, 0, sizeof(float) * m->w.params.total);
    /* the token-mean NLL's gradient weight is known before the forward: the forward writes
     * the logits' gradient in the loss's sweep (model/transformer.c, stage_forward) */
    m->ws.nll_fused = obj->seq == nll_objective_seq && !obj->tok;
    m->ws.nll_w = m->ws.nll_fused ? (float)-((const nll_objective_ctx *)obj->ctx)->inv_tokens : 0;
    int M = b->B / m->shape.Bm, P = m->shape.grid->pp, st = m->shape.grid->pp_rank;
    int warm = P - st - 1 < M ? P - st - 1 : M;
    for (int i = 0; i < warm; i++) fwd(&S, i);
    for (int i = 0; i < M - warm; i++) {
        fwd(&S, warm + i);
        bwd(&S, i, loss_grad(&S, i));
    }
    for (int i = M - warm; i < M; i++) bwd(&S, i, loss_grad(&S, i));
    m->ws.nll_fused = 0;
    sched_finish(&S, seq_s, seq_n);
    return S.loss;
}

void model_forward(lethe_model *m, const lethe_batch *b, double *seq_s, double *seq_n,
                   float *tok_logp)
{
    sched S;
    sched_init(&S, m, b);
    int M = b->B / m->shape.Bm;
    S.tok_logp = tok_logp && m->shape.last ? tok_logp : NULL;
    for (int i = 0; i < M; i++) fwd(&S, i);
    sched_finish(&S, seq_s, seq_n);
    if (tok_logp && m->shape.grid->pp > 1) {
        /* per-token log-probabilities live on the last stage; share them */
        size_t n = (size_t)b->B * b->T;
        MPI_CHECK(
            MPI_Bcast(tok_logp, (int)n, MPI_FLOAT, m->shape.grid->pp - 1, m->shape.grid->pp_comm));
    }
}

void model_forward_logsoftmax(lethe_model *m, const lethe_batch *b, float *out, double *negent,
                              float *tok_logp)
{
    sched S;
    sched_init(&S, m, b);
    S.lsm = m->shape.last ? out : NULL;
    S.tok_logp = m->shape.last ? tok_logp : NULL;
    int M = b->B / m->shape.Bm;
    for (int i = 0; i < M; i++) fwd(&S, i);
    sched_finish(&S, negent, NULL);
}
