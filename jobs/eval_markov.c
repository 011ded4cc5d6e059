/* jobs/eval_markov.c — `lethe eval` on a mixture of Markov chains (`lethe synth`
 * kind "markov", the SimNPO paper's analysis).
 *
 * The dataset holds the true transition matrices (/chains/<chain>, S x S) and
 * initial distributions (/chains/initial_<chain>). For every held-out row of
 * eval/retain, eval/forget1 and eval/forget2 the model's next-token distribution
 * at each position is compared with the true one (the initial distribution after
 * BOS, row s of the chain's matrix after state s):
 *     KL_t = sum_j p_j log p_j - sum_j p_j log q_j
 * over the S state tokens (the math: analysis/markov_kl.h); mass the model puts on
 * other tokens is not renormalised away, so it counts as error. The cross term comes
 * from the model's own vocab-parallel cross-entropy with the true distributions as
 * soft targets, so it works under any tp x pp layout and the logits are never
 * gathered. Rows are spread over the dp replicas. Also per row: token-mean NLL of the
 * sequence and its probability exp(-NLL).
 *
 * Writes, through io/results.h, eval.h5 (per split: sample_id, kl, nll, prob) and
 * summary.json: splits retain_chain, forget_chain1, forget_chain2 and forget_chains
 * (both forget chains pooled), roles (forget: forget_chains, retain: retain_chain), and
 * markov.{kl_retain, kl_forget1, kl_forget2} (token-mean KL). TOFU's forget quality
 * and model utility have no meaning here: null, with a note in errors. */
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>

#include "../analysis/markov_kl.h"
#include "../io/dataset.h"
#include "../io/safefile.h"
#include "../io/loader.h"
#include "../io/results.h"
#include "../io/synth/synth.h"
#include "../mpi/fatal.h"
#include "evaluate.h"

#define S_ SYNTH_MARKOV_STATES

static const char *const CHAIN[3] = {"retain", "forget1", "forget2"};
static const char *const SPLIT_KEY[3] = {"retain_chain", "forget_chain1", "forget_chain2"};

static int cmp_row(const void *a, const void *b)
{
    int64_t x = ((const markov_row *)a)->id, y = ((const markov_row *)b)->id;
    return (x > y) - (x < y);
}

int eval_is_markov(const char *path)
{
    return eval_root_attr_is(path, "synth_kind", "markov");
}

int eval_root_attr_is(const char *path, const char *attr, const char *value)
{
    char kind[32] = "", e[8];
    if (safe_check_read(path, "", LETHE_MAX_TENSORS, e, sizeof e))
        return 0; /* the loader says why */
    h5_quiet q;
    h5_quiet_on(&q);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f >= 0) {
        if (h5_attr_read_str(f, attr, kind, sizeof kind)) kind[0] = 0;
        H5Fclose(f);
    }
    h5_quiet_off(&q);
    return !strcmp(kind, value);
}

/* The true distributions: P[c] (S, S) then init[c] (S) for the 3 chains, read on
 * world rank 0 and broadcast. */
static void read_chains(lethe_session *S, double *P, double *init)
{
    char err[1024] = "";
    int ok = 1;
    if (S->grid.rank == 0) {
        h5_quiet q;
        h5_quiet_on(&q);
        ok = safe_check_read(S->cfg.data.path, "", LETHE_MAX_TENSORS, err, sizeof err) == 0;
        hid_t f = ok ? H5Fopen(S->cfg.data.path, H5F_ACC_RDONLY, H5P_DEFAULT) : -1;
        if (ok && f < 0) snprintf(err, sizeof err, "cannot open it");
        ok = f >= 0;
        for (int c = 0; c < 3 && ok; c++)
            for (int ini = 0; ini < 2 && ok; ini++) {
                char name[64];
                snprintf(name, sizeof name, "/chains/%s%s", ini ? "initial_" : "", CHAIN[c]);
                hsize_t want[2] = {S_, S_}, dims[2] = {0, 0};
                hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
                hid_t sp = d >= 0 ? H5Dget_space(d) : -1;
                int nd = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
                if (sp >= 0) H5Sget_simple_extent_dims(sp, dims, NULL);
                ok = d >= 0 && nd == (ini ? 1 : 2) && dims[0] == want[0] &&
                     (ini || dims[1] == want[1]);
                if (ok)
                    ok = H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                                 ini ? init + c * S_ : P + c * S_ * S_) >= 0;
                if (!ok)
                    snprintf(err, sizeof err, "dataset '%s' missing or not float64 of shape %s",
                             name, ini ? "[10]" : "[10,10]");
                if (sp >= 0) H5Sclose(sp);
                if (d >= 0) H5Dclose(d);
            }
        if (f >= 0) H5Fclose(f);
        h5_quiet_off(&q);
        for (int k = 0; ok && k < 3 * S_ * S_; k++) ok = isfinite(P[k]) && P[k] >= 0;
        for (int k = 0; ok && k < 3 * S_; k++) ok = isfinite(init[k]) && init[k] >= 0;
        if (ok == 0 && !err[0])
            snprintf(err, sizeof err, "a chain holds a negative or non-finite probability");
    }
    lethe_check(S->grid.world, ok, 2, "eval: markov dataset '%s': %s", S->cfg.data.path, err);
    MPI_CHECK(MPI_Bcast(P, 3 * S_ * S_, MPI_DOUBLE, 0, S->grid.world));
    MPI_CHECK(MPI_Bcast(init, 3 * S_, MPI_DOUBLE, 0, S->grid.world));
}

/* The true distribution at each position of b with a target (after BOS the initial
 * one, after state s row s of chain Pc): its negentropy summed per row into ne (Br), and,
 * on the last stage, its log-probabilities over this rank's vocabulary shard as the
 * row's soft targets (soft (Br, T, v_l), from lq (S + 1, v_l)). Returns a token that is
 * neither a state nor BOS, or -1. */
static int fill_truth(const lethe_batch *b, const double *Pc, const double *initc, const float *lq,
                      int v_l, float *soft, double *ne)
{
    int bad = -1, T = b->T;
    for (int i = 0; i < b->B; i++) {
        ne[i] = 0.0;
        for (int t = 0; t < T; t++) {
            size_t k = (size_t)i * T + t;
            if (b->targets[k] < 0) continue;
            int ctx = markov_context(b->tokens[k], S_, SYNTH_MARKOV_BOS);
            if (ctx < 0) {
                bad = b->tokens[k];
                continue;
            }
            ne[i] += markov_negentropy(markov_true_dist(Pc, initc, S_, ctx), S_);
            if (soft) memcpy(soft + k * v_l, lq + (size_t)ctx * v_l, sizeof(float) * v_l);
        }
    }
    return bad;
}

/* Evaluates the rows of chain c's eval split. Returns this replica's results
 * gathered over dp (all rows of the split, sorted by sample id) in *out. */
static int64_t eval_chain(lethe_session *S, int c, const double *P, const double *init,
                          markov_row **out)
{
    const lethe_eval_config *E = &S->cfg.eval;
    lethe_model *m = &S->model;
    char split[32];
    snprintf(split, sizeof split, "eval/%s", CHAIN[c]);
    loader *ld;
    job_open_loader(S, &ld, split, E->batch_size, 0, 0, 0, 1, 0);
    int Br = E->batch_size / S->grid.dp, T = m->shape.T;
    lethe_batch b = {Br,
                     T,
                     lethe_malloc(sizeof(int) * (size_t)Br * T, "batch"),
                     lethe_malloc(sizeof(int) * (size_t)Br * T, "batch"),
                     NULL,
                     NULL};
    double *s_hard = lethe_malloc(sizeof(double) * Br, "eval"),
           *n_hard = lethe_malloc(sizeof(double) * Br, "eval"),
           *s_soft = lethe_malloc(sizeof(double) * Br, "eval");
    unsigned char *all = lethe_malloc((size_t)Br, "eval");
    memset(all, 1, (size_t)Br);
    float *soft = m->shape.last
                      ? lethe_malloc(sizeof(float) * (size_t)Br * T * m->shape.v_l, "soft targets")
                      : NULL;
    /* log p of every token column of this rank's shard, for each of the S + 1 contexts
     * (state s, or BOS) */
    float *lq = lethe_malloc(
        sizeof(float) * (size_t)(S_ + 1) * (m->shape.v_l > 0 ? m->shape.v_l : 1), "soft targets");
    const double *Pc = P + (size_t)c * S_ * S_, *initc = init + c * S_;
    for (int ctx = 0; ctx <= S_; ctx++)
        markov_log_targets(lq + (size_t)ctx * m->shape.v_l, markov_true_dist(Pc, initc, S_, ctx),
                           S_, m->shape.v0, m->shape.v_l);
    markov_row *mine = lethe_malloc(sizeof(markov_row) * (size_t)(loader_info(ld)->n + 1), "eval");
    double *ne = lethe_malloc(sizeof(double) * Br, "eval");
    int64_t nmine = 0;
    for (;;) {
        loader_batch *lb = job_next_batch(S, ld, NULL);
        if (!lb) break;
        job_fill_batch(&b, 0, Br, lb);
        int bad = fill_truth(&b, Pc, initc, lq, m->shape.v_l, soft, ne);
        lethe_check(S->grid.world, bad < 0, 2,
                    "eval: markov dataset '%s' split '%s': token %d in a row is neither a state "
                    "(0..%d) nor BOS (%d)",
                    S->cfg.data.path, split, bad, S_ - 1, SYNTH_MARKOV_BOS);
        model_forward(m, &b, s_hard, n_hard, NULL);
        lethe_batch bs = b; /* the same rows, every one with its soft targets */
        bs.soft_lp = soft;
        bs.soft_seq = all;
        model_forward(m, &bs, s_soft, NULL, NULL);
        for (int i = 0; i < lb->n; i++) {
            double n = n_hard[i] > 0 ? n_hard[i] : 1.0;
            mine[nmine++] =
                (markov_row){lb->rows.sample_id[i], ne[i] - s_soft[i], -s_hard[i] / n, n_hard[i]};
        }
    }
    free(ne);
    loader_close(ld);
    /* every replica's rows, to every rank */
    int64_t n;
    markov_row *res =
        job_allgather_sorted(mine, nmine, sizeof(markov_row), S->grid.dp_comm, cmp_row, &n);
    if (E->max_rows > 0 && n > E->max_rows) n = E->max_rows; /* the first rows by sample id */
    free(mine);
    free(lq);
    free(soft);
    free(all);
    free(s_hard);
    free(n_hard);
    free(s_soft);
    free(b.tokens);
    free(b.targets);
    *out = res;
    return n;
}

/* eval.h5: per chain a group of sample_id, kl (per token), nll, prob (per row). */
static void write_h5(const char *path, markov_row *const *res, const int64_t *n)
{
    char err[1400];
    results_writer w;
    if (results_open(&w, path, err, sizeof err)) lethe_fatal("%s", err);
    for (int c = 0; c < 3; c++) {
        size_t rows = (size_t)(n[c] + 1);
        int64_t *ids = lethe_malloc(sizeof(int64_t) * rows, "eval");
        double *kl = lethe_malloc(sizeof(double) * rows, "eval"),
               *nll = lethe_malloc(sizeof(double) * rows, "eval"),
               *prob = lethe_malloc(sizeof(double) * rows, "eval");
        for (int64_t i = 0; i < n[c]; i++) {
            ids[i] = res[c][i].id;
            kl[i] = markov_row_kl(&res[c][i]);
            nll[i] = res[c][i].nll;
            prob[i] = exp(-res[c][i].nll);
        }
        const results_column cols[] = {{"sample_id", RESULTS_I64, ids, 0},
                                       {"kl", RESULTS_F64, kl, 0},
                                       {"nll", RESULTS_F64, nll, 0},
                                       {"prob", RESULTS_F64, prob, 0}};
        if (results_split(&w, SPLIT_KEY[c], n[c], cols, 4, err, sizeof err)) lethe_fatal("%s", err);
        free(ids);
        free(kl);
        free(nll);
        free(prob);
    }
    if (results_close(&w, err, sizeof err)) lethe_fatal("%s", err);
}

static cJSON *split_json(double n, double prob, double kl)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "n", n);
    cJSON_AddItemToObject(o, "prob", results_number(prob));
    cJSON_AddItemToObject(o, "kl", results_number(kl));
    cJSON_AddItemToObject(o, "rouge_recall", cJSON_CreateNull());
    cJSON_AddItemToObject(o, "rouge_f1", cJSON_CreateNull());
    cJSON_AddItemToObject(o, "truth_ratio", cJSON_CreateNull());
    return o;
}

/* Token-mean KL and mean probability of each chain (kl[c], prob[c], c < 3) and of both
 * forget chains pooled ([3]). */
static void aggregate_chains(markov_row *const *res, const int64_t *n, double *kl, double *prob)
{
    for (int c = 0; c < 3; c++)
        if (markov_aggregate(res[c], n[c], &kl[c], &prob[c])) lethe_fatal("eval: out of memory");
    markov_row *pool = lethe_malloc(sizeof(markov_row) * (size_t)(n[1] + n[2] + 1), "eval");
    memcpy(pool, res[1], sizeof(markov_row) * (size_t)n[1]);
    memcpy(pool + n[1], res[2], sizeof(markov_row) * (size_t)n[2]);
    if (markov_aggregate(pool, n[1] + n[2], &kl[3], &prob[3])) lethe_fatal("eval: out of memory");
    free(pool);
}

/* summary.json's document (see the file's comment). */
static cJSON *markov_summary(const lethe_config *c, const char *digest, const int64_t *n,
                             const double *kl, const double *prob)
{
    cJSON *sum = cJSON_CreateObject(), *splits = cJSON_AddObjectToObject(sum, "splits");
    cJSON_AddStringToObject(sum, "checkpoint", c->init.checkpoint);
    cJSON_AddStringToObject(sum, "dataset", c->data.path);
    cJSON_AddStringToObject(sum, "dataset_digest", digest);
    cJSON_AddItemToObject(sum, "reference", cJSON_CreateNull());
    for (int k = 0; k < 3; k++)
        cJSON_AddItemToObject(splits, SPLIT_KEY[k], split_json((double)n[k], prob[k], kl[k]));
    cJSON_AddItemToObject(splits, "forget_chains",
                          split_json((double)(n[1] + n[2]), prob[3], kl[3]));
    cJSON *roles = cJSON_AddObjectToObject(sum, "roles");
    cJSON_AddStringToObject(roles, "forget", "forget_chains");
    cJSON_AddStringToObject(roles, "retain", "retain_chain");
    cJSON_AddItemToObject(roles, "utility", cJSON_CreateArray());
    static const char *const NULLS[] = {"forget_quality", "log10_forget_quality",
                                        "forget_quality_trained_wording", "model_utility",
                                        "forget_prob_gap"};
    for (size_t k = 0; k < sizeof NULLS / sizeof NULLS[0]; k++)
        cJSON_AddItemToObject(sum, NULLS[k], cJSON_CreateNull());
    cJSON *mk = cJSON_AddObjectToObject(sum, "markov");
    cJSON_AddItemToObject(mk, "kl_retain", results_number(kl[0]));
    cJSON_AddItemToObject(mk, "kl_forget1", results_number(kl[1]));
    cJSON_AddItemToObject(mk, "kl_forget2", results_number(kl[2]));
    cJSON_AddItemToObject(mk, "kl_forget", results_number(kl[3]));
    cJSON *errs = cJSON_AddArrayToObject(sum, "errors");
    cJSON_AddItemToArray(
        errs, cJSON_CreateString("forget_quality, model_utility: TOFU metrics, not defined "
                                 "on Markov chains (see markov.kl_*)"));
    return sum;
}

void eval_markov(lethe_session *S, const char *digest)
{
    double P[3 * S_ * S_], init[3 * S_];
    read_chains(S, P, init);
    double t0 = MPI_Wtime();
    markov_row *res[3];
    int64_t n[3];
    for (int c = 0; c < 3; c++) {
        n[c] = eval_chain(S, c, P, init, &res[c]);
        if (S->grid.rank == 0)
            printf("lethe eval: eval/%-10s %5lld rows  (%.1f s)\n", CHAIN[c], (long long)n[c],
                   MPI_Wtime() - t0);
    }
    if (S->grid.rank == 0) {
        double kl[4], prob[4];
        aggregate_chains(res, n, kl, prob);
        cJSON *sum = markov_summary(&S->cfg, digest, n, kl, prob);
        cJSON_AddNumberToObject(sum, "seconds", MPI_Wtime() - t0);
        char path[1100], err[1400];
        session_path(S, "eval.h5", path, sizeof path);
        write_h5(path, res, n);
        session_path(S, "summary.json", path, sizeof path);
        if (results_write_json(path, sum, err, sizeof err)) lethe_fatal("%s", err);
        printf("lethe eval: KL to the true chains per token: retain %.4f, forget1 (long) %.4f, "
               "forget2 (short) %.4f; %s/summary.json\n",
               kl[0], kl[1], kl[2], S->cfg.output.dir);
        cJSON_Delete(sum);
    }
    for (int c = 0; c < 3; c++) free(res[c]);
}
