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
 * through the same shard each step for the retain rows' distributions. Rank 0
 * logs every step to the terminal and to unlearn_log.jsonl; checkpoints are
 * written every checkpoint.every steps and at the end (model.h5). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../io/checkpoint.h"
#include "../io/loader.h"
#include "../model/objectives.h"
#include "../mpi/fatal.h"
#include "jobs.h"

typedef struct {
    int64_t id;
    double s, n;
} ref_entry;

static int cmp_ref(const void *a, const void *b)
{
    int64_t x = ((const ref_entry *)a)->id, y = ((const ref_entry *)b)->id;
    return (x > y) - (x < y);
}

void job_open_loader(lethe_session *S, loader **ld, const char *split, int global_batch,
                     uint64_t seed, int shuffle, int drop_last, int max_epochs, int candidates)
{
    loader_opts o;
    loader_opts_defaults(&o);
    o.world = S->grid.world;
    o.dp = S->grid.dp;
    o.dp_rank = S->grid.dp_rank;
    o.global_batch = global_batch;
    o.seed = seed;
    o.shuffle = shuffle;
    o.drop_last = drop_last;
    o.max_epochs = max_epochs;
    o.candidates = candidates;
    o.prefetch = S->cfg.data.prefetch;
    char err[1024];
    int ok = loader_open(ld, S->cfg.data.path, split, &o, err, sizeof err) == 0;
    lethe_check(S->grid.world, ok, 2, "%s", err);
    const dataset_info *info = loader_info(*ld);
    ok = info->vocab_size <= S->cfg.model.vocab_size;
    lethe_check(S->grid.world, ok, 2,
                "dataset '%s' split '%s': vocabulary of %lld tokens does not fit "
                "model.vocab_size=%d",
                S->cfg.data.path, split, (long long)info->vocab_size, S->cfg.model.vocab_size);
}

/* Copies loader rows into the batch at row offset r0 (rows beyond n are padding
 * with no targets). */
void job_data_report(const lethe_session *S, const char *job, const job_data_clock *c,
                     const loader *ld)
{
    /* the rank that waited most, as a share of its own step time */
    double mine[2] = {c->wait, c->wait + c->compute}, all[2];
    struct {
        double share;
        int rank;
    } in = {mine[1] > 0 ? mine[0] / mine[1] : 0.0, S->grid.rank}, out;
    MPI_CHECK(MPI_Allreduce(&in, &out, 1, MPI_DOUBLE_INT, MPI_MAXLOC, S->grid.world));
    memcpy(all, mine, sizeof all);
    MPI_CHECK(MPI_Bcast(all, 2, MPI_DOUBLE, out.rank, S->grid.world));
    if (S->grid.rank != 0) return;
    const char *why = "";
    int ahead = loader_prefetch_status(ld, &why);
    printf("lethe %s: data stream: %.3f s waiting for batches in %d steps, %.2f%% of step "
           "time (rank %d, the most); %s%s\n",
           job, all[0], c->steps, 100.0 * out.share, out.rank,
           ahead ? "the next batch is read ahead in a thread" : "no read-ahead: ", why);
}

void job_fill_batch(lethe_batch *b, int r0, int rows, const loader_batch *lb)
{
    int T = b->T;
    for (int i = 0; i < rows; i++) {
        int *tok = b->tokens + (size_t)(r0 + i) * T, *tg = b->targets + (size_t)(r0 + i) * T;
        if (lb && i < lb->n) {
            for (int t = 0; t < T; t++) {
                tok[t] = lb->rows.ids[(size_t)i * T + t];
                tg[t] = lb->targets[(size_t)i * T + t];
            }
        } else {
            for (int t = 0; t < T; t++) {
                tok[t] = 0;
                tg[t] = -1;
            }
        }
    }
}

void *job_allgather_sorted(const void *mine, int64_t n, size_t size, MPI_Comm comm,
                           int (*cmp)(const void *, const void *), int64_t *total)
{
    int np, bytes = (int)(n * (int64_t)size), sum = 0;
    MPI_CHECK(MPI_Comm_size(comm, &np));
    int *counts = lethe_malloc(sizeof(int) * np, "gather"),
        *displs = lethe_malloc(sizeof(int) * np, "gather");
    MPI_CHECK(MPI_Allgather(&bytes, 1, MPI_INT, counts, 1, MPI_INT, comm));
    for (int r = 0; r < np; r++) {
        displs[r] = sum;
        sum += counts[r];
    }
    char *all = lethe_malloc((size_t)sum + size, "gather");
    MPI_CHECK(MPI_Allgatherv(mine, bytes, MPI_BYTE, all, counts, displs, MPI_BYTE, comm));
    *total = sum / (int64_t)size;
    qsort(all, (size_t)*total, size, cmp);
    free(counts);
    free(displs);
    return all;
}

/* NPO: s_ref of every forget sample under the starting model, sorted by id. */
static ref_entry *npo_reference(lethe_session *S, int capacity, int64_t *n_out)
{
    loader *ld;
    job_open_loader(S, &ld, S->cfg.data.forget_split, capacity, 0, 0, 0, 1, 0);
    int64_t n = loader_info(ld)->n;
    int Br = capacity / S->grid.dp, T = S->model.T;
    lethe_batch b = {Br, T, lethe_malloc(sizeof(int) * (size_t)Br * T, "batch"),
                     lethe_malloc(sizeof(int) * (size_t)Br * T, "batch")};
    double *s = lethe_malloc(sizeof(double) * (size_t)Br, "npo"),
           *cnt = lethe_malloc(sizeof(double) * (size_t)Br, "npo");
    ref_entry *mine = lethe_malloc(sizeof(ref_entry) * (size_t)(n + 1), "npo reference");
    int nmine = 0;
    char err[1024];
    for (;;) {
        loader_batch *lb;
        int r = loader_next(ld, &lb, err, sizeof err);
        lethe_check(S->grid.world, r >= 0, 1, "%s", err);
        if (r == 0) break;
        job_fill_batch(&b, 0, Br, lb);
        model_forward(&S->model, &b, s, cnt, NULL);
        for (int i = 0; i < lb->n; i++) mine[nmine++] = (ref_entry){lb->rows.sample_id[i], s[i], cnt[i]};
    }
    loader_close(ld);
    /* every replica needs every sample's reference */
    ref_entry *all = job_allgather_sorted(mine, nmine, sizeof(ref_entry), S->grid.dp_comm,
                                          cmp_ref, n_out);
    /* the cache is keyed by sample_id: every rank holds the same sorted table, so every
     * rank finds the same repeat */
    int64_t dup = -1;
    for (int64_t i = 1; dup < 0 && i < *n_out; i++)
        if (all[i].id == all[i - 1].id) dup = i;
    lethe_check(S->grid.world, dup < 0, 2,
                "dataset '%s': split '%s' holds sample_id %lld more than once; NPO keys its "
                "reference log-likelihoods by sample_id (give every row its own id)",
                S->cfg.data.path, S->cfg.data.forget_split,
                (long long)(dup < 0 ? 0 : all[dup].id));
    free(mine);
    free(s);
    free(cnt);
    free(b.tokens);
    free(b.targets);
    if (S->grid.rank == 0) {
        char path[1100], tmp[1200];
        session_path(S, "npo_reference.jsonl", path, sizeof path);
        snprintf(tmp, sizeof tmp, "%s.tmp", path);
        FILE *f = fopen(tmp, "w");
        int ok = f != NULL;
        for (int64_t i = 0; ok && i < *n_out; i++)
            ok = fprintf(f, "{\"sample_id\":%lld,\"s_ref\":%.9g,\"tokens\":%.0f}\n",
                         (long long)all[i].id, all[i].s, all[i].n) > 0;
        if (f && fclose(f)) ok = 0;
        if (!ok || rename(tmp, path)) lethe_fatal("cannot write '%s'", path);
    }
    return all;
}

static double lookup_ref(const ref_entry *refs, int64_t n, int64_t id)
{
    ref_entry key = {id, 0, 0};
    const ref_entry *e = bsearch(&key, refs, (size_t)n, sizeof(ref_entry), cmp_ref);
    if (!e) lethe_fatal("NPO reference: forget sample id %lld has no reference value", (long long)id);
    return e->s;
}

int job_unlearn(int argc, char **argv)
{
    lethe_session S;
    session_open(&S, "unlearn", argc, argv);
    session_catch_preemption();
    lethe_config *c = &S.cfg;
    const lethe_unlearn_config *u = &c->unlearn;
    lethe_method method = u->method;
    int Bf = u->batch_size, Br = method == METHOD_GA ? 0 : u->retain_batch_size;
    int ok = c->data.path[0] != 0;
    lethe_check(S.grid.world, ok, 2, "unlearn: data.path must name an HDF5 token dataset");
    ok = Bf % S.grid.dp == 0 && Br % S.grid.dp == 0;
    lethe_check(S.grid.world, ok, 2,
                "unlearn: unlearn.batch_size=%d and unlearn.retain_batch_size=%d must be "
                "multiples of layout.dp=%d",
                Bf, Br, S.grid.dp);
    loader *lf = NULL, *lr = NULL;
    job_open_loader(&S, &lf, c->data.forget_split, Bf, c->train.seed, 1, 1, 0, 0);
    if (Br) job_open_loader(&S, &lr, c->data.retain_split, Br, c->train.seed + 1, 1, 1, 0, 0);
    int T = loader_info(lf)->t;
    ok = !lr || loader_info(lr)->t == T;
    lethe_check(S.grid.world, ok, 2, "unlearn: forget and retain splits have different lengths (%d, %d)",
                T, lr ? loader_info(lr)->t : 0);
    session_build_model(&S, Bf + Br, T);
    /* the starting weights are checked before anything is written */
    session_load_init(&S);
    session_output(&S);
    char err[1024];
    int64_t spe = loader_batches_per_epoch(lf);
    ok = spe > 0;
    lethe_check(S.grid.world, ok, 2, "unlearn: forget split '%s' has fewer rows than unlearn.batch_size=%d",
                c->data.forget_split, Bf);
    int total = (int)(spe * u->epochs);
    c->optim.warmup_steps = (int)lround(u->warmup_epochs * (double)spe);
    if (c->optim.warmup_steps >= total) c->optim.warmup_steps = total - 1;

    /* KL retain term: a frozen copy of the starting weights (parameters only), run
     * through the same shard by exchanging values before and after its forward */
    int kl = Br > 0 && u->retain_loss == RETAIN_KL;
    float *kl_weights = NULL;
    if (kl) {
        kl_weights = lethe_malloc(sizeof(float) * S.model.params.total, "KL reference weights");
        memcpy(kl_weights, S.model.params.data, sizeof(float) * S.model.params.total);
    }
    int64_t nref = 0;
    ref_entry *refs = method == METHOD_NPO ? npo_reference(&S, Bf + Br, &nref) : NULL;
    /* a requeued job continues from its checkpoint (after the NPO pass, which must
     * see the starting weights) */
    int64_t rcur[4] = {0, 0, 0, 0};
    int first_step = (int)session_resume(&S, rcur, 4);
    if (first_step) {
        loader_cursor a = {rcur[0], rcur[1]}, bq = {rcur[2], rcur[3]};
        ok = loader_seek(lf, a, err, sizeof err) == 0 && (!lr || loader_seek(lr, bq, err, sizeof err) == 0);
        lethe_check(S.grid.world, ok, 1, "%s", err);
    }

    int rf = Bf / S.grid.dp, rr = Br / S.grid.dp, rows = rf + rr;
    lethe_batch b = {rows, T, lethe_malloc(sizeof(int) * (size_t)rows * T, "batch"),
                     lethe_malloc(sizeof(int) * (size_t)rows * T, "batch")};
    unsigned char *is_forget = lethe_calloc((size_t)rows, 1, "batch");
    double *s_ref = lethe_calloc((size_t)rows, sizeof(double), "batch");
    for (int i = 0; i < rf; i++) is_forget[i] = 1;
    unsigned char *is_retain = lethe_calloc((size_t)rows, 1, "batch");
    for (int i = rf; i < rows; i++) is_retain[i] = 1;
    double *negent = kl ? lethe_calloc((size_t)rows, sizeof(double), "KL reference") : NULL;
    float *kl_lsm = kl && S.model.last ? lethe_malloc(sizeof(float) * (size_t)rows * T * S.model.v_l,
                                                      "KL reference distributions")
                                       : NULL;

    FILE *logf = NULL;
    char logpath[1100], tmppath[1200];
    if (S.grid.rank == 0) {
        session_path(&S, "unlearn_log.jsonl", logpath, sizeof logpath);
        snprintf(tmppath, sizeof tmppath, "%s.partial", logpath);
        logf = fopen(tmppath, first_step ? "a" : "w");
        if (!logf) lethe_fatal("cannot write '%s'", tmppath);
        printf("lethe unlearn: %s (beta %g, gamma %g, c_f %g, c_r %g, retain %s), %d epochs x "
               "%lld steps, forget batch %d + retain batch %d, lr %g, layout dp=%d pp=%d tp=%d\n",
               method_name(method), u->beta, u->gamma, u->c_f, u->c_r, kl ? "kl" : "nll", u->epochs, (long long)spe, Bf, Br,
               c->optim.lr, c->layout.dp, c->layout.pp, c->layout.tp);
    }
    double t_start = MPI_Wtime();
    job_data_clock clk = {0, 0, 0};
    for (int step = first_step; step < total; step++) {
        double t_data = MPI_Wtime();
        loader_batch *fb, *rb = NULL;
        int r = loader_next(lf, &fb, err, sizeof err);
        lethe_check(S.grid.world, r > 0, 1, "%s", r < 0 ? err : "forget stream ended early");
        job_fill_batch(&b, 0, rf, fb);
        for (int i = 0; i < rf; i++)
            s_ref[i] = refs ? lookup_ref(refs, nref, fb->rows.sample_id[i]) : 0.0;
        int64_t epoch = fb->epoch;
        if (lr) {
            r = loader_next(lr, &rb, err, sizeof err);
            lethe_check(S.grid.world, r > 0, 1, "%s", r < 0 ? err : "retain stream ended");
            job_fill_batch(&b, rf, rr, rb);
        }
        t_data = MPI_Wtime() - t_data;
        double rt = 0;
        for (int i = rf; i < rows; i++)
            for (int t = 0; t < T; t++) rt += b.targets[(size_t)i * T + t] >= 0;
        MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &rt, 1, MPI_DOUBLE, MPI_SUM, S.grid.dp_comm));
        if (kl) {
            params_swap_data(&S.model.params, kl_weights);
            model_forward_logsoftmax(&S.model, &b, kl_lsm, negent);
            params_swap_data(&S.model.params, kl_weights);
            S.model.soft_lp = kl_lsm;
            S.model.soft_seq = is_retain;
        }
        unlearn_ctx ctx = {.method = method, .beta = u->beta, .gamma = u->gamma, .c_f = u->c_f,
                           .c_r = u->c_r, .is_forget = is_forget, .s_ref = s_ref,
                           .negent = negent, .n_forget = Bf, .retain_tokens = rt};
        lethe_objective obj = {unlearn_objective_seq, &ctx};
        step_stats st;
        model_train_step(&S.model, &b, &obj, &c->optim, step, total, &st);
        clk.wait += t_data;
        clk.compute += st.seconds;
        clk.steps++;
        S.model.soft_lp = NULL;
        S.model.soft_seq = NULL;
        /* the objective ran on the last stage of each replica: sum over replicas and
         * share along the pipeline */
        double parts[5] = {ctx.loss_forget, ctx.loss_retain, ctx.sigma_sum, ctx.forget_logp,
                           st.seconds};
        MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, parts, 4, MPI_DOUBLE, MPI_SUM, S.grid.dp_comm));
        MPI_CHECK(MPI_Bcast(parts, 4, MPI_DOUBLE, S.grid.pp - 1, S.grid.pp_comm));
        MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &parts[4], 1, MPI_DOUBLE, MPI_MAX, S.grid.world));
        if (S.grid.rank == 0) {
            double tps = (double)(Bf + Br) * T / parts[4];
            double eta = (MPI_Wtime() - t_start) / (step + 1) * (total - step - 1);
            /* a skipped step (optim.on_nonfinite skip) logs null for what is not finite */
            char v[6][32];
            fprintf(logf,
                    "{\"step\":%d,\"epoch\":%lld,\"loss\":%s,\"forget_loss\":%s,"
                    "\"retain_loss\":%s,\"sigma\":%s,\"forget_logp\":%s,\"grad_norm\":%s,"
                    "\"lr\":%.6g,\"tokens_per_s\":%.1f,\"data_s\":%.6f,\"eta_s\":%.1f%s}\n",
                    step + 1, (long long)epoch, job_json_num(v[0], 32, "%.6f", st.loss),
                    job_json_num(v[1], 32, "%.6f", parts[0]), job_json_num(v[2], 32, "%.6f", parts[1]),
                    job_json_num(v[3], 32, "%.6f", parts[2] / Bf),
                    job_json_num(v[4], 32, "%.6f", parts[3] / Bf),
                    job_json_num(v[5], 32, "%.6g", st.grad_norm), st.lr, tps, t_data, eta,
                    st.skipped ? ",\"skipped\":true" : "");
            if (step % c->train.log_every == 0 || step == total - 1)
                printf("step %4d/%d  epoch %lld  loss %.4f  forget %.4f  retain %.4f  sigma %.3f  "
                       "|g| %.3f  lr %.2e  %6.0f tok/s  ETA %.0fs\n",
                       step + 1, total, (long long)epoch, st.loss, parts[0], parts[1],
                       parts[2] / Bf, st.grad_norm, st.lr, tps, eta);
            fflush(stdout);
        }
        int last = step == total - 1;
        int pre = !last && session_preempted(&S);
        if (last || pre || (c->checkpoint.every > 0 && (step + 1) % c->checkpoint.every == 0)) {
            loader_cursor cf = loader_cursor_get(lf), cr = {0, 0};
            if (lr) cr = loader_cursor_get(lr);
            int64_t cur[4] = {cf.epoch, cf.position, cr.epoch, cr.position};
            session_save(&S, last ? "model.h5" : "checkpoint.h5", step + 1, epoch, cur, 4);
        }
        job_fault_point(&S, step + 1);
        if (pre) {
            if (S.grid.rank == 0) {
                fclose(logf);
                printf("lethe unlearn: preempted after step %d; checkpoint.h5 written, a new run "
                       "resumes from it\n", step + 1);
            }
            S.status = "preempted";
            goto out;
        }
    }
    session_finish_checkpoints(&S);
    job_data_report(&S, "unlearn", &clk, lf);
    if (S.grid.rank == 0) {
        if (fclose(logf) || rename(tmppath, logpath)) lethe_fatal("cannot write '%s'", logpath);
        printf("lethe unlearn: done in %.1f s; model in %s/model.h5\n", MPI_Wtime() - t_start,
               c->output.dir);
    }
out:
    loader_close(lf);
    if (lr) loader_close(lr);
    free(refs);
    free(b.tokens);
    free(b.targets);
    free(is_forget);
    free(is_retain);
    free(s_ref);
    free(negent);
    free(kl_lsm);
    free(kl_weights);
    session_close(&S);
    return 0;
}
