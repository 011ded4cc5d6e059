/* jobs/unlearn.c — `lethe unlearn`: SimNPO and its baselines as a distributed job.
 *
 * Loads the starting model (a lethe checkpoint, any layout), streams forget and
 * retain batches from an HDF5 dataset (each forget batch paired with a retain
 * batch from an independently shuffled, endless retain stream), and runs the
 * objective of model/objectives.h: one forward and one backward per step over
 * the forget and retain rows together. NPO's reference log-likelihoods come from
 * one forward-only pass of the starting model over the forget split, cached by
 * sample id in memory and in the output folder; no second model is held. The KL
 * retain variant keeps a copy of the starting weights (values only) and runs it
 * through the same shard each step for the retain rows' distributions. CE-U runs a
 * forward of the current weights first for its forget rows' target distributions (p
 * without the true token), kept on the last stage. idknll, dpo and idkdpo add the forget
 * questions' alternate answers as rows [rf, 2 rf) of the batch, streamed in step with
 * the forget rows (jobs/unlearn_pairs.c); dpo and idkdpo cache both answers' reference
 * sums as NPO does (dpo_reference.jsonl, dpo_alternate_reference.jsonl). RMU steers hidden states
 * instead of log-likelihoods and takes its own step (jobs/unlearn_rmu.c). The step
 * loop (jobs/loop.c) logs every step to the terminal and to unlearn_log.jsonl and
 * writes checkpoints every checkpoint.every steps and at the end (model.h5). Its cost
 * goes to budget.json (budget_write): tokens, steps, CPU seconds summed over ranks,
 * wall seconds, ranks; a preempted run keeps what it spent in budget.partial.json and
 * the run that resumes it adds that in. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <cjson/cJSON.h>

#include "../io/checkpoint.h"
#include "../io/loader.h"
#include "../io/safefile.h"
#include "../model/objective_pairs.h"
#include "../model/objectives.h"
#include "../mpi/fatal.h"
#include "loop.h"
#include "unlearn_rmu.h"
#include "unlearn_pairs.h"
#include "unlearn_pdu.h"
#include "unlearn_wagle.h"

typedef struct {
    int64_t id;
    double s, n;
} ref_entry;

static int cmp_ref(const void *a, const void *b)
{
    int64_t x = ((const ref_entry *)a)->id, y = ((const ref_entry *)b)->id;
    return (x > y) - (x < y);
}

/* NPO (and DPO, for its forget and alternate splits): s_ref of every sample of `split`
 * under the starting model, sorted by id, also written to output.dir/`file`. */
static ref_entry *npo_reference(lethe_session *S, const char *split, const char *file, int capacity,
                                int64_t *n_out)
{
    loader *ld;
    job_open_loader(S, &ld, split, capacity, 0, 0, 0, 1, 0);
    int64_t n = loader_info(ld)->n;
    int Br = capacity / S->grid.dp, T = S->model.shape.T;
    lethe_batch b = {Br,
                     T,
                     lethe_malloc(sizeof(int) * (size_t)Br * T, "batch"),
                     lethe_malloc(sizeof(int) * (size_t)Br * T, "batch"),
                     NULL,
                     NULL};
    double *s = lethe_malloc(sizeof(double) * (size_t)Br, "npo"),
           *cnt = lethe_malloc(sizeof(double) * (size_t)Br, "npo");
    ref_entry *mine = lethe_malloc(sizeof(ref_entry) * (size_t)(n + 1), "npo reference");
    int nmine = 0;
    for (;;) {
        loader_batch *lb = job_next_batch(S, ld, NULL);
        if (!lb) break;
        job_fill_batch(&b, 0, Br, lb);
        model_forward(&S->model, &b, s, cnt, NULL);
        for (int i = 0; i < lb->n; i++)
            mine[nmine++] = (ref_entry){lb->rows.sample_id[i], s[i], cnt[i]};
    }
    loader_close(ld);
    /* every replica needs every sample's reference */
    ref_entry *all =
        job_allgather_sorted(mine, nmine, sizeof(ref_entry), S->grid.dp_comm, cmp_ref, n_out);
    /* the cache is keyed by sample_id: every rank holds the same sorted table, so every
     * rank finds the same repeat */
    int64_t dup = -1;
    for (int64_t i = 1; dup < 0 && i < *n_out; i++)
        if (all[i].id == all[i - 1].id) dup = i;
    lethe_check(S->grid.world, dup < 0, 2,
                "dataset '%s': split '%s' holds sample_id %lld more than once; %s keys its "
                "reference log-likelihoods by sample_id (give every row its own id)",
                S->cfg.data.path, split, (long long)(dup < 0 ? 0 : all[dup].id),
                method_name(S->cfg.unlearn.method));
    free(mine);
    free(s);
    free(cnt);
    free(b.tokens);
    free(b.targets);
    if (S->grid.rank == 0) {
        char path[1100], err[4800];
        session_path(S, file, path, sizeof path);
        safe_out w;
        if (safe_create(&w, path, err, sizeof err)) lethe_fatal("%s", err);
        FILE *f = w.f;
        int ok = 1;
        for (int64_t i = 0; ok && i < *n_out; i++)
            ok = fprintf(f, "{\"sample_id\":%lld,\"s_ref\":%.9g,\"tokens\":%.0f}\n",
                         (long long)all[i].id, all[i].s, all[i].n) > 0;
        if (!ok) safe_abort(&w);
        if (!ok || safe_finish(&w, err, sizeof err))
            lethe_fatal("cannot write '%s'%s%s", path, ok ? ": " : "", ok ? err : "");
    }
    return all;
}

static double lookup_ref(const ref_entry *refs, int64_t n, int64_t id)
{
    ref_entry key = {id, 0, 0};
    const ref_entry *e = bsearch(&key, refs, (size_t)n, sizeof(ref_entry), cmp_ref);
    if (!e) lethe_fatal("reference log-likelihoods: sample id %lld has none", (long long)id);
    return e->s;
}

typedef struct {
    lethe_session *S;
    loader *lf, *lr;
    int Bf, Br, rf, rr, kl;
    ref_entry *refs, *alt_refs; /* alt_refs: dpo, idkdpo, the alternate answers' */
    int64_t nref, nalt_ref;
    unlearn_alt A; /* idknll, dpo, idkdpo: the alternate answers, rows [rf, rf + ra) */
    int ra, G;     /* G: the batch rows of a step over all replicas (the model's batch) */
    lethe_batch b;
    unsigned char *is_forget, *is_retain;
    double *s_ref, *negent;
    /* soft targets: kl_lsm the distributions (last stage), soft_tok their targets'
     * log-probabilities (last stage, CE-U: its log), soft_rows the rows that take them; kl_weights the
     * starting weights (KL retain term, UNDIAL); seq_s, seq_n UNDIAL's forward sums;
     * soft_norm the lowered distributions' normalisers (CE-U, UNDIAL) */
    float *kl_weights, *kl_lsm, *soft_tok;
    double *soft_norm;
    unsigned char *soft_rows;
    double *seq_s, *seq_n;
    int ceu;
    unlearn_rmu *rmu; /* method rmu: its own step (jobs/unlearn_rmu.c) */
    pdu_state pdu;    /* unlearn.method "pdu" */
    double wagle[WAGLE_N_STATE]; /* WAGLE's /job values (n_wagle of them; 0: off) */
    int n_wagle;
} unlearn_job;

/* The forget rows, then the retain rows, of step `step`. */
static void unlearn_batch(void *job, int step, int64_t *epoch)
{
    (void)step;
    unlearn_job *J = job;
    loader_batch *fb = job_next_batch(J->S, J->lf, "forget stream ended early");
    job_fill_batch(&J->b, 0, J->rf, fb);
    for (int i = 0; J->ceu && i < J->rf; i++)
        ceu_skip_first_target(J->b.targets + (size_t)i * J->b.T, J->b.T);
    for (int i = 0; i < J->rf; i++)
        J->s_ref[i] = J->refs ? lookup_ref(J->refs, J->nref, fb->rows.sample_id[i]) : 0.0;
    if (J->ra) alt_fill(&J->A, J->S, &J->b, J->rf, fb);
    for (int i = 0; J->alt_refs && i < J->ra; i++)
        J->s_ref[J->rf + i] = lookup_ref(J->alt_refs, J->nalt_ref, fb->rows.sample_id[i]);
    *epoch = fb->epoch;
    if (!J->lr) return;
    job_fill_batch(&J->b, J->rf + J->ra, J->rr, job_next_batch(J->S, J->lr, "retain stream ended"));
}

/* Mean target log-probability per forget row, summed over this replica's forget rows. */
static double forget_rows_logp(const unlearn_job *J, const float *tok)
{
    int T = J->b.T;
    double sum = 0.0;
    for (int i = 0; i < J->rf; i++) {
        double s = 0.0, n = 0.0;
        for (int t = 0; t < T; t++)
            if (J->b.targets[(size_t)i * T + t] >= 0) {
                s += tok[(size_t)i * T + t];
                n += 1.0;
            }
        sum += n > 0 ? s / n : 0.0;
    }
    return sum;
}

/* The step's soft targets (set into b) and the forget rows' log-likelihood (the log's
 * forget_logp, summed over this replica's forget rows; from the objective otherwise):
 *   KL retain term: the retain rows take the starting model's distributions;
 *   UNDIAL: the forget rows take the starting model's with the true token's logit
 *     lowered by unlearn.beta (the same forward as the KL term's);
 *   CE-U: the forget rows take the current model's without the true token.
 * The distributions live on the last stage (kl_lsm), the starting weights are
 * exchanged in for their forward. */
static double soft_targets(unlearn_job *J, lethe_batch *b)
{
    lethe_model *m = &J->S->model;
    const lethe_unlearn_config *u = &J->S->cfg.unlearn;
    int undial = u->method == METHOD_UNDIAL, rows = J->rf + J->ra + J->rr;
    double logp = 0.0;
    if (!J->kl && !J->ceu && !undial) return 0.0;
    for (int i = 0; i < rows; i++) J->soft_rows[i] = J->is_retain[i] ? J->kl : (J->ceu || undial);
    if (undial) { /* the current model's forget log-likelihood, for the log */
        model_forward(m, &J->b, J->seq_s, J->seq_n, NULL);
        for (int i = 0; i < J->rf; i++) logp += J->seq_n[i] > 0 ? J->seq_s[i] / J->seq_n[i] : 0.0;
    }
    if (J->kl || undial) params_swap_data(&m->w.params, J->kl_weights);
    model_forward_logsoftmax(m, &J->b, J->kl_lsm, J->negent, J->soft_tok);
    if (J->kl || undial) params_swap_data(&m->w.params, J->kl_weights);
    if (J->ceu && m->shape.last) logp = forget_rows_logp(J, J->soft_tok);
    if ((J->ceu || undial) && m->shape.last)
        vocab_parallel_lower_targets(J->kl_lsm, J->soft_norm, J->b.targets, J->is_forget,
                                     J->ceu ? INFINITY : (double)u->beta, J->b.B, J->b.T,
                                     &m->shape.vocab);
    b->soft_lp = J->kl_lsm;
    b->soft_seq = J->soft_rows;
    return logp;
}

/* The objective's context of the batch in J->b; its soft targets go into *b. */
static unlearn_ctx step_ctx(unlearn_job *J, lethe_batch *b)
{
    lethe_session *S = J->S;
    const lethe_unlearn_config *u = &S->cfg.unlearn;
    int T = J->b.T, rows = J->rf + J->ra + J->rr;
    double tokens[3] = {0, 0, 0}; /* forget, retain, alternate target tokens, global batch */
    for (int i = 0; i < rows; i++)
        for (int t = 0; t < T; t++)
            tokens[J->is_retain[i] ? 1 : i < J->rf ? 0 : 2] += J->b.targets[(size_t)i * T + t] >= 0;
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, tokens, 3, MPI_DOUBLE, MPI_SUM, S->grid.dp_comm));
    double soft_logp = soft_targets(J, b);
    unlearn_ctx ctx = {.method = u->method,
                       .beta = u->beta,
                       .gamma = u->gamma,
                       .c_f = u->c_f,
                       .c_r = u->c_r,
                       .beta2 = u->beta2,
                       .is_forget = J->is_forget,
                       .s_ref = J->s_ref,
                       .negent = J->negent,
                       .n_forget = J->Bf,
                       .retain_tokens = tokens[1],
                       .forget_tokens = tokens[u->method == METHOD_IDKNLL ? 2 : 0],
                       .forget_logp = soft_logp};
    if (J->ra) alt_forward(&J->A, &S->model, b, J->rf, &ctx);
    return ctx;
}

/* WAGLE: adds the gradients of the forget term (gf) and of the retain loss at weight 1
 * (gr) of the streams' next batch pair, reduced over the replicas. */
static void wagle_grads(void *job, float *gf, float *gr)
{
    unlearn_job *J = job;
    lethe_model *m = &J->S->model;
    int64_t epoch;
    unlearn_batch(J, 0, &epoch);
    for (int which = 0; which < 2; which++) {
        lethe_batch b = J->b;
        unlearn_ctx ctx = step_ctx(J, &b);
        ctx.c_f = which ? 0.0 : ctx.c_f;
        ctx.c_r = which ? 1.0 : 0.0;
        lethe_objective obj = unlearn_objective(&ctx);
        model_forward_backward(m, &b, &obj, NULL, NULL);
        model_reduce_grads(m);
        float *acc = which ? gr : gf;
        for (size_t k = 0; k < m->w.params.total; k++) acc[k] += m->w.params.grad[k];
    }
}

/* One step of the objective; values: forget_loss, retain_loss, sigma (pdu: lambda),
 * forget_logp and, with alternate answers, their alternate_logp. */
static void unlearn_step(void *job, int step, int total, step_stats *st, double *values)
{
    unlearn_job *J = job;
    if (J->rmu) {
        unlearn_rmu_step(J->rmu, &J->b, J->is_forget, step, total, st, values);
        return;
    }
    lethe_session *S = J->S;
    const lethe_unlearn_config *u = &S->cfg.unlearn;
    lethe_batch b = J->b; /* the soft targets travel with this step's batch */
    unlearn_ctx ctx = step_ctx(J, &b);
    int pdu = u->method == METHOD_PDU;
    if (pdu) pdu_begin(&J->pdu, &S->model, &ctx);
    lethe_objective obj = unlearn_objective(&ctx);
    model_train_step(&S->model, &b, &obj, &S->cfg.optim, &S->fault.nan, step, total, st);
    /* the objective ran on the last stage of each replica: sum over replicas and
     * share along the pipeline */
    double parts[5] = {ctx.loss_forget, ctx.loss_retain, ctx.sigma_sum, ctx.forget_logp,
                       ctx.alt_logp};
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, parts, 5, MPI_DOUBLE, MPI_SUM, S->grid.dp_comm));
    MPI_CHECK(MPI_Bcast(parts, 5, MPI_DOUBLE, S->grid.pp - 1, S->grid.pp_comm));
    values[0] = parts[0];
    values[1] = parts[1];
    values[2] = parts[2] / J->Bf;
    values[3] = parts[3] / J->Bf;
    values[4] = parts[4] / J->Bf;
    if (pdu) /* the lambda the step used */
        values[2] = pdu_end(&J->pdu, &S->model, u, step, st, parts[1]);
}

/* Checks the batches, opens the forget and retain streams and builds the model. */
static void unlearn_open(lethe_session *S, unlearn_job *J)
{
    const lethe_config *c = &S->cfg;
    const lethe_unlearn_config *u = &c->unlearn;
    J->S = S;
    J->Bf = u->batch_size;
    /* GA and CE-U have no retain term */
    J->Br = u->method == METHOD_GA || u->method == METHOD_CEU ? 0 : u->retain_batch_size;
    int ok = c->data.path[0] != 0;
    lethe_check(S->grid.world, ok, 2, "unlearn: data.path must name an HDF5 token dataset");
    ok = J->Bf % S->grid.dp == 0 && J->Br % S->grid.dp == 0;
    lethe_check(S->grid.world, ok, 2,
                "unlearn: unlearn.batch_size=%d and unlearn.retain_batch_size=%d must be "
                "multiples of layout.dp=%d",
                J->Bf, J->Br, S->grid.dp);
    if (u->method == METHOD_PDU) pdu_check(S, J->Br);
    wagle_check(S);
    job_open_loader(S, &J->lf, c->data.forget_split, J->Bf, c->train.seed, 1, 1, 0, 0);
    if (J->Br)
        job_open_loader(S, &J->lr, c->data.retain_split, J->Br, c->train.seed + 1, 1, 1, 0, 0);
    int T = loader_info(J->lf)->t;
    ok = !J->lr || loader_info(J->lr)->t == T;
    lethe_check(S->grid.world, ok, 2,
                "unlearn: forget and retain splits have different lengths (%d, %d)", T,
                J->lr ? loader_info(J->lr)->t : 0);
    alt_open(&J->A, S, J->lf, J->Bf, c->train.seed);
    J->G = J->Bf * (1 + J->A.on) + J->Br;
    session_build_model(S, J->G, T);
    if (u->method == METHOD_RMU) unlearn_rmu_check(S);
    /* the starting weights are checked before anything is written */
    session_load_init(S);
    session_output(S);
}

/* The batch and its row roles; the KL retain term's frozen copy of the starting
 * weights (parameters only), run through the same shard by exchanging values before
 * and after its forward. */
static void unlearn_buffers(unlearn_job *J)
{
    lethe_model *m = &J->S->model;
    int T = m->shape.T;
    lethe_method meth = J->S->cfg.unlearn.method;
    J->kl = J->Br > 0 && J->S->cfg.unlearn.retain_loss == RETAIN_KL;
    int undial = meth == METHOD_UNDIAL;
    if (J->kl || undial) {
        J->kl_weights = lethe_malloc(sizeof(float) * m->w.params.total, "reference weights");
        memcpy(J->kl_weights, m->w.params.data, sizeof(float) * m->w.params.total);
    }
    J->rf = J->Bf / J->S->grid.dp;
    J->rr = J->Br / J->S->grid.dp;
    J->ra = J->A.on ? J->rf : 0;
    int rows = J->rf + J->ra + J->rr;
    alt_buffers(&J->A, rows);
    J->b = (lethe_batch){rows,
                         T,
                         lethe_malloc(sizeof(int) * (size_t)rows * T, "batch"),
                         lethe_malloc(sizeof(int) * (size_t)rows * T, "batch"),
                         NULL,
                         NULL};
    J->is_forget = lethe_calloc((size_t)rows, 1, "batch");
    J->is_retain = lethe_calloc((size_t)rows, 1, "batch");
    J->s_ref = lethe_calloc((size_t)rows, sizeof(double), "batch");
    for (int i = 0; i < rows; i++) (i < J->rf + J->ra ? J->is_forget : J->is_retain)[i] = 1;
    if (J->kl) J->negent = lethe_calloc((size_t)rows, sizeof(double), "KL reference");
    J->ceu = meth == METHOD_CEU;
    if ((J->kl || J->ceu || undial) && m->shape.last) {
        J->kl_lsm = lethe_malloc(sizeof(float) * (size_t)rows * T * m->shape.v_l,
                                 "soft target distributions");
        if (J->ceu) /* its forget log-likelihood for the log */
            J->soft_tok =
                lethe_malloc(sizeof(float) * (size_t)rows * T, "soft target log-probabilities");
        if (J->ceu || undial)
            J->soft_norm =
                lethe_malloc(sizeof(double) * (size_t)rows * T, "soft target normalisers");
    }
    J->soft_rows = lethe_calloc((size_t)rows, 1, "batch");
    J->seq_s = lethe_calloc((size_t)rows, sizeof(double), "batch");
    J->seq_n = lethe_calloc((size_t)rows, sizeof(double), "batch");
}

static void unlearn_free(unlearn_job *J)
{
    loader_close(J->lf);
    if (J->lr) loader_close(J->lr);
    free(J->refs);
    free(J->alt_refs);
    alt_free(&J->A);
    free(J->b.tokens);
    free(J->b.targets);
    free(J->is_forget);
    free(J->is_retain);
    free(J->s_ref);
    free(J->negent);
    free(J->kl_lsm);
    free(J->soft_tok);
    free(J->soft_norm);
    free(J->soft_rows);
    free(J->seq_s);
    free(J->seq_n);
    free(J->kl_weights);
    unlearn_rmu_free(J->rmu);
}

/* CPU seconds (user + system) this process has used so far. */
static double cpu_seconds(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru)) return 0;
    return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec +
           (double)ru.ru_stime.tv_sec + 1e-6 * (double)ru.ru_stime.tv_usec;
}

/* A number of dir/budget.partial.json (0 when there is none). */
static double partial_num(const cJSON *p, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(p, key);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

/* What the run cost since cpu0 and t0 (this job, not the study process it may share),
 * CPU summed over ranks, with a preempted earlier run's (budget.partial.json) added when
 * this one resumed it: budget.json when done, else budget.partial.json. */
static void budget_write(lethe_session *S, const loop_spec *sp, const loop_outcome *out,
                         double cpu0, double t0, int done)
{
    double cpu = cpu_seconds() - cpu0, wall = MPI_Wtime() - t0;
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &cpu, 1, MPI_DOUBLE, MPI_SUM, S->grid.world));
    if (S->grid.rank != 0) return;
    char pp[1100], path[1100], err[2400];
    session_path(S, "budget.partial.json", pp, sizeof pp);
    session_path(S, done ? "budget.json" : "budget.partial.json", path, sizeof path);
    int resumed = out->clock.steps < sp->total;
    char *prev = resumed ? safe_read(pp, "budget", LETHE_MAX_JSON, NULL, err, sizeof err) : NULL;
    cJSON *p = prev ? cJSON_Parse(prev) : NULL, *b = cJSON_CreateObject();
    free(prev);
    cpu += partial_num(p, "cpu_seconds");
    wall += partial_num(p, "wall_seconds");
    cJSON_Delete(p);
    cJSON_AddNumberToObject(b, "tokens", (double)sp->total * sp->tokens_per_step);
    cJSON_AddNumberToObject(b, "steps", sp->total);
    cJSON_AddNumberToObject(b, "cpu_seconds", cpu);
    cJSON_AddNumberToObject(b, "wall_seconds", wall);
    cJSON_AddNumberToObject(b, "ranks", S->grid.size);
    char *text = cJSON_Print(b);
    cJSON_Delete(b);
    if (!text || safe_write_text(path, text, "\n", err, sizeof err))
        lethe_fatal("unlearn: %s", text ? err : "out of memory");
    cJSON_free(text);
    if (done) remove(pp);
}

int job_unlearn(int argc, char **argv)
{
    double cpu0 = cpu_seconds(), t0 = MPI_Wtime();
    lethe_session S;
    session_open(&S, "unlearn", argc, argv);
    session_catch_preemption();
    lethe_config *c = &S.cfg;
    const lethe_unlearn_config *u = &c->unlearn;
    unlearn_job J = {0};
    unlearn_open(&S, &J);
    int64_t spe = loader_batches_per_epoch(J.lf);
    int ok = spe > 0;
    lethe_check(S.grid.world, ok, 2,
                "unlearn: forget split '%s' has fewer rows than unlearn.batch_size=%d",
                c->data.forget_split, J.Bf);
    int total = (int)(spe * u->epochs);
    c->optim.warmup_steps = (int)lround(u->warmup_epochs * (double)spe);
    if (c->optim.warmup_steps >= total) c->optim.warmup_steps = total - 1;
    unlearn_buffers(&J);
    int pdu = u->method == METHOD_PDU;
    if (pdu) pdu_open(&J.pdu, u, J.rf, J.rr, J.b.T, spe);
    /* NPO's reference pass sees the starting weights: a requeued job resumes after it */
    if (u->method == METHOD_NPO)
        J.refs = npo_reference(&S, c->data.forget_split, "npo_reference.jsonl", J.G, &J.nref);
    if (method_pairs(u->method)) { /* dpo, idkdpo: both answers' references */
        J.refs = npo_reference(&S, c->data.forget_split, "dpo_reference.jsonl", J.G, &J.nref);
        J.alt_refs =
            npo_reference(&S, J.A.split, "dpo_alternate_reference.jsonl", J.G, &J.nalt_ref);
    }
    if (u->method == METHOD_RMU) J.rmu = unlearn_rmu_open(&S, J.b.B, J.Bf, J.Br);
    loader *streams[2] = {J.lf, J.lr};
    J.n_wagle = wagle_prepare(&S, streams, J.lr ? 2 : 1, wagle_grads, &J, J.wagle);
    if (S.grid.rank == 0)
        printf("lethe unlearn: %s (beta %g, gamma %g, c_f %g, c_r %g, retain %s), %d epochs x "
               "%lld steps, forget batch %d + retain batch %d, lr %g, layout dp=%d pp=%d tp=%d\n",
               method_name(u->method), u->beta, u->gamma, u->c_f, u->c_r, J.kl ? "kl" : "nll",
               u->epochs, (long long)spe, J.Bf, J.Br, c->optim.lr, c->layout.dp, c->layout.pp,
               c->layout.tp);
    /* the forget rows' mean sigmoid weight (npo, simnpo), or mean token weight (wga, satimp) */
    int tw = method_weights_tokens(u->method), rmu = u->method == METHOD_RMU;
    const char *third = pdu ? "lambda" : tw ? "token_weight" : rmu ? "forget_cos" : "sigma";
    const char *label = pdu ? third : tw ? "w" : rmu ? "cos" : "sigma";
    loop_spec sp = {.job = &J,
                    .total = total,
                    .total_key = "unlearn.epochs",
                    .resume = 1,
                    .every = c->checkpoint.every,
                    .loaders = {J.lf, J.lr},
                    .n_loaders = 2,
                    .final_name = "model.h5",
                    .log_name = "unlearn_log.jsonl",
                    .tokens_per_step = (double)J.G * J.b.T,
                    .show_epoch = 1,
                    .fields = {{"forget_loss", "forget", "%.4f"},
                               {"retain_loss", "retain", "%.4f"},
                               {third, label, pdu ? "%.4g" : "%.3f"},
                               {"forget_logp", NULL, NULL},
                               {"alternate_logp", "alt_logp", "%.3f"}},
                    .n_fields = 4 + J.A.on,
                    .state_keys = pdu ? pdu_state_keys : J.n_wagle ? wagle_state_keys : NULL,
                    .state = pdu ? &J.pdu.lambda : J.n_wagle ? J.wagle : NULL,
                    .n_state = pdu ? 1 : J.n_wagle,
                    .resume_state = pdu ? &J.pdu.lambda : NULL,
                    .batch = unlearn_batch,
                    .step = unlearn_step};
    loop_outcome out;
    int done = loop_run(&S, &sp, &out) == LOOP_DONE;
    budget_write(&S, &sp, &out, cpu0, t0, done);
    if (done && S.grid.rank == 0)
        printf("lethe unlearn: done in %.1f s; model in %s/model.h5\n", out.seconds, c->output.dir);
    unlearn_free(&J);
    wagle_free(&S);
    session_close(&S);
    return 0;
}
