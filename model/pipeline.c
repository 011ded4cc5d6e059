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
#include <stdlib.h>
#include <string.h>

#include "../mpi/comm.h"
#include "../mpi/fatal.h"
#include "stage.h"

typedef struct {
    lethe_model *m;
    const lethe_batch *b;
    const lethe_objective *obj;
    double *seq_s, *seq_n; /* (B) replica-wide results, filled on the last stage */
    float *tok_logp;       /* (B, T) or NULL */
    float *lsm;            /* (B*T, v_l) log-softmax out (model_forward_logsoftmax), or NULL */
    double loss;
} sched;

static const int *mb_rows(const int *base, const lethe_model *m, int i)
{
    return base + (size_t)i * m->Bm * m->T;
}

static void fwd(sched *S, int i)
{
    lethe_model *m = S->m;
    lethe_slot *s = &m->slots[i % m->nslots];
    size_t NC = (size_t)m->Bm * m->T * m->C;
    MPI_Comm pc = m->grid->pp_comm;
    int pr = m->grid->pp_rank;
    comm_wait(&m->act_req[i % m->nslots]); /* slot's previous send done before reuse */
    if (m->first)
        stage_embed(m, s, mb_rows(S->b->tokens, m, i));
    else
        comm_recv(s->resid[0], NC, pr - 1, 2 * i, pc);
    const int *tg = mb_rows(S->b->targets, m, i);
    stage_forward(m, s, i, tg, S->seq_s + (size_t)i * m->Bm, S->seq_n + (size_t)i * m->Bm);
    if (!m->last) {
        comm_isend(s->resid[m->nl], NC, pr + 1, 2 * i, pc, &m->act_req[i % m->nslots]);
        return;
    }
    if (S->tok_logp)
        memcpy(S->tok_logp + (size_t)i * m->Bm * m->T, s->logp,
               sizeof(float) * (size_t)m->Bm * m->T);
    if (S->lsm)
        stage_log_softmax(m, tg, S->lsm + (size_t)i * m->Bm * m->T * m->v_l,
                          S->seq_s + (size_t)i * m->Bm);
}

/* Last stage, after fwd(i): the objective turns micro-batch i's per-sequence sums
 * into its loss (added to S->loss) and the per-token gradient d loss / d logp,
 * which it returns for bwd(i). Other stages: NULL (their gradient comes from the
 * next stage). */
static const float *loss_grad(sched *S, int i)
{
    lethe_model *m = S->m;
    if (!m->last) return NULL;
    const int *tg = mb_rows(S->b->targets, m, i);
    for (int b = 0; b < m->Bm; b++) {
        int gb = i * m->Bm + b;
        double w = 0.0;
        S->loss += S->obj->seq(S->obj, gb, S->seq_s[gb], S->seq_n[gb], &w);
        for (int t = 0; t < m->T; t++)
            m->gcoef[b * m->T + t] = tg[b * m->T + t] >= 0 ? (float)w : 0.0f;
    }
    return m->gcoef;
}

/* dlogp: on the last stage, loss_grad(S, i). */
static void bwd(sched *S, int i, const float *dlogp)
{
    lethe_model *m = S->m;
    lethe_slot *s = &m->slots[i % m->nslots];
    size_t NC = (size_t)m->Bm * m->T * m->C;
    MPI_Comm pc = m->grid->pp_comm;
    int pr = m->grid->pp_rank;
    if (m->last)
        stage_head_backward(m, s, i, mb_rows(S->b->targets, m, i), dlogp);
    else
        comm_recv(m->dx, NC, pr + 1, 2 * i + 1, pc);
    stage_backward(m, s, mb_rows(S->b->tokens, m, i));
    if (!m->first) {
        int k = i % m->nslots;
        comm_wait(&m->grad_req[k]);
        memcpy(m->grad_send[k], m->dx, sizeof(float) * NC);
        comm_isend(m->grad_send[k], NC, pr - 1, 2 * i + 1, pc, &m->grad_req[k]);
    }
}

static void sched_init(sched *S, lethe_model *m, const lethe_batch *b)
{
    memset(S, 0, sizeof(*S));
    S->m = m;
    S->b = b;
    if (b->T != m->T || b->B % m->Bm)
        lethe_fatal("batch of %d x %d does not fit the model's micro-batches of %d x %d", b->B,
                    b->T, m->Bm, m->T);
    S->seq_s = lethe_calloc((size_t)b->B, sizeof(double), "sequence sums");
    S->seq_n = lethe_calloc((size_t)b->B, sizeof(double), "sequence sums");
}

/* Waits for outstanding sends and gives every rank of the replica the results
 * of the last stage. */
static void sched_finish(sched *S, double *seq_s, double *seq_n)
{
    lethe_model *m = S->m;
    for (int k = 0; k < m->nslots; k++) {
        comm_wait(&m->act_req[k]);
        comm_wait(&m->grad_req[k]);
    }
    int B = S->b->B, last = m->grid->pp - 1;
    double *buf = lethe_malloc(sizeof(double) * (2 * (size_t)B + 1), "results");
    memcpy(buf, S->seq_s, sizeof(double) * B);
    memcpy(buf + B, S->seq_n, sizeof(double) * B);
    buf[2 * B] = S->loss;
    comm_bcast_d(buf, 2 * (size_t)B + 1, last, m->grid->pp_comm);
    if (seq_s) memcpy(seq_s, buf, sizeof(double) * B);
    if (seq_n) memcpy(seq_n, buf + B, sizeof(double) * B);
    S->loss = buf[2 * B];
    free(buf);
    free(S->seq_s);
    free(S->seq_n);
}

double model_forward_backward(lethe_model *m, const lethe_batch *b, const lethe_objective *obj,
                              double *seq_s, double *seq_n)
{
    sched S;
    sched_init(&S, m, b);
    S.obj = obj;
    memset(m->params.grad, 0, sizeof(float) * m->params.total);
    int M = b->B / m->Bm, P = m->grid->pp, st = m->grid->pp_rank;
    int warm = P - st - 1 < M ? P - st - 1 : M;
    for (int i = 0; i < warm; i++) fwd(&S, i);
    for (int i = 0; i < M - warm; i++) {
        fwd(&S, warm + i);
        bwd(&S, i, loss_grad(&S, i));
    }
    for (int i = M - warm; i < M; i++) bwd(&S, i, loss_grad(&S, i));
    sched_finish(&S, seq_s, seq_n);
    return S.loss;
}

void model_forward(lethe_model *m, const lethe_batch *b, double *seq_s, double *seq_n,
                   float *tok_logp)
{
    sched S;
    sched_init(&S, m, b);
    int M = b->B / m->Bm;
    float *lp = NULL;
    if (tok_logp && m->last) lp = tok_logp;
    S.tok_logp = lp;
    for (int i = 0; i < M; i++) fwd(&S, i);
    sched_finish(&S, seq_s, seq_n);
    if (tok_logp && m->grid->pp > 1) {
        /* per-token log-probabilities live on the last stage; share them */
        size_t n = (size_t)b->B * b->T;
        MPI_CHECK(MPI_Bcast(tok_logp, (int)n, MPI_FLOAT, m->grid->pp - 1, m->grid->pp_comm));
    }
}

void model_forward_logsoftmax(lethe_model *m, const lethe_batch *b, float *out, double *negent)
{
    sched S;
    sched_init(&S, m, b);
    S.lsm = m->last ? out : NULL;
    int M = b->B / m->Bm;
    for (int i = 0; i < M; i++) fwd(&S, i);
    sched_finish(&S, negent, NULL);
}
