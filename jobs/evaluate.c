/* jobs/evaluate.c — one split through the sharded model, gathered in file order. */
#include "evaluate.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hdf5.h>

#include "../analysis/metrics.h"
#include "../io/dataset.h"
#include "../io/text/tokenizer.h"
#include "../mpi/fatal.h"

#define NV 5 /* doubles per row before the candidates: nll, nll_para, mink, rouge r, rouge f1 */

typedef struct {
    int64_t pos, id;
} row_key;

static void targets_of(lethe_batch *b, int r0, int n, const int32_t *ids, const int32_t *len,
                       const int32_t *ans, int stride_rows)
{
    /* rows r0.. of b get ids (n rows, row i at ids + i * stride_rows * T) */
    int T = b->T;
    for (int i = 0; i < n; i++) {
        const int32_t *src = ids + (size_t)i * stride_rows * T;
        int *tok = b->tokens + (size_t)(r0 + i) * T, *tg = b->targets + (size_t)(r0 + i) * T;
        int L = len[(size_t)i * stride_rows], A = ans[(size_t)i * stride_rows];
        for (int t = 0; t < T; t++) {
            tok[t] = src[t];
            tg[t] = (t + 1 < L && t + 1 >= A) ? src[t + 1] : -1;
        }
    }
    for (int i = r0 + n; i < b->B; i++)
        for (int t = 0; t < T; t++) {
            b->tokens[(size_t)i * T + t] = 0;
            b->targets[(size_t)i * T + t] = -1;
        }
}

static double rouge_of(const tokenizer *tk, const int32_t *cand, int nc, const int32_t *ref,
                       int nr, double *f1)
{
    metrics_rouge r;
    int rc;
    if (tk) {
        char *a = tokenizer_decode(tk, cand, nc), *b = tokenizer_decode(tk, ref, nr);
        rc = a && b ? metrics_rouge_l_text(&r, a, strlen(a), b, strlen(b)) : -1;
        free(a);
        free(b);
    } else {
        rc = metrics_rouge_l_ids(&r, cand, nc, ref, nr);
    }
    if (rc) lethe_fatal("ROUGE-L failed: %s", metrics_strerror(rc));
    *f1 = r.f1;
    return r.recall;
}

void eval_split(lethe_session *S, lethe_generator *gen, const void *tokv, const char *split,
                int max_rows, int generate, split_eval *out)
{
    const tokenizer *tk = tokv;
    lethe_model *m = &S->model;
    const lethe_grid *g = &S->grid;
    int Bg = S->cfg.eval.batch_size, Br = Bg / g->dp, T = m->shape.T;
    loader *ld;
    job_open_loader(S, &ld, split, Bg, 0, 0, 0, 1, 1);
    const dataset_info *info = loader_info(ld);
    int K = info->has_pert ? info->k : 0, has_cand = info->has_para && info->has_pert;
    int cap = S->cfg.eval.max_new_tokens > 0 ? S->cfg.eval.max_new_tokens : T;
    int64_t N = info->n;
    if (max_rows > 0 && max_rows < N) N = max_rows;
    size_t rowb = sizeof(row_key) + sizeof(double) * (NV + (size_t)K) + sizeof(int32_t) * (1 + cap);
    char *mine = lethe_malloc(rowb * (size_t)(N + 1), "evaluation rows");
    int nmine = 0;
    lethe_batch b = {Br, T, lethe_malloc(sizeof(int) * (size_t)Br * T, "batch"),
                     lethe_malloc(sizeof(int) * (size_t)Br * T, "batch"), NULL, NULL};
    double *s = lethe_malloc(sizeof(double) * Br, "eval"), *cnt = lethe_malloc(sizeof(double) * Br, "eval");
    double *sp = lethe_malloc(sizeof(double) * Br, "eval"), *cp = lethe_malloc(sizeof(double) * Br, "eval");
    double *pert = lethe_malloc(sizeof(double) * (size_t)Br * (K + 1), "eval");
    float *tlp = lethe_malloc(sizeof(float) * (size_t)Br * T, "eval");
    double *lp = lethe_malloc(sizeof(double) * T, "eval");
    int32_t *gout = lethe_malloc(sizeof(int32_t) * (size_t)cap, "eval");
    int *prompt = lethe_malloc(sizeof(int) * T, "eval"), *gint = lethe_malloc(sizeof(int) * cap, "eval");
    int contributes = g->pp_rank == 0 && g->tp_rank == 0;
    char err[1024];
    for (;;) {
        loader_batch *lb;
        int r = loader_next(ld, &lb, err, sizeof err);
        lethe_check(g->world, r >= 0, 1, "%s", err);
        if (r == 0 || lb->position >= N) break;
        int n = lb->n;
        const dataset_rows *R = &lb->rows;
        targets_of(&b, 0, n, R->ids, R->lengths, R->answer_start, 1);
        model_forward(m, &b, s, cnt, tlp);
        if (has_cand) {
            /* token-mean NLL of each candidate; counts come from the targets just built */
            targets_of(&b, 0, n, R->para_ids, R->para_lengths, R->para_answer_start, 1);
            model_forward(m, &b, sp, cp, NULL);
            for (int i = 0; i < n; i++) sp[i] = cp[i] > 0 ? -sp[i] / cp[i] : NAN;
            for (int j = 0; j < K; j++) {
                targets_of(&b, 0, n, R->pert_ids + (size_t)j * T, R->pert_lengths + j,
                           R->pert_answer_start + j, K);
                double *pj = pert + (size_t)j * Br;
                model_forward(m, &b, pj, cp, NULL);
                for (int i = 0; i < n; i++) pj[i] = cp[i] > 0 ? -pj[i] / cp[i] : NAN;
            }
        }
        for (int i = 0; i < n && lb->first + i < N; i++) {
            const int32_t *ids = R->ids + (size_t)i * T;
            int L = R->lengths[i], A = R->answer_start[i];
            int nt = 0;
            for (int t = 0; t < T; t++)
                if (t + 1 < L && t + 1 >= A) lp[nt++] = tlp[(size_t)i * T + t];
            double mk = NAN, rr = NAN, rf = NAN;
            if (nt > 0 && metrics_min_k(&mk, lp, nt, S->cfg.eval.min_k)) mk = NAN;
            int ng = 0;
            if (generate && A > 0) {
                for (int t = 0; t < A; t++) prompt[t] = ids[t];
                int maxn = cap < T - A ? cap : T - A;
                ng = gen_greedy(gen, prompt, A, maxn, (int)info->eos_id, gint);
                for (int k2 = 0; k2 < ng; k2++) gout[k2] = gint[k2];
                int ref_end = L;
                if (L > A && ids[L - 1] == info->eos_id) ref_end = L - 1;
                rr = rouge_of(tk, gout, ng, ids + A, ref_end - A, &rf);
            }
            if (!contributes) continue;
            char *row = mine + rowb * (size_t)nmine++;
            row_key key = {lb->first + i, R->sample_id[i]};
            memcpy(row, &key, sizeof key);
            double v[NV] = {cnt[i] > 0 ? -s[i] / cnt[i] : NAN, has_cand ? sp[i] : NAN, mk, rr, rf};
            memcpy(row + sizeof key, v, sizeof v);
            for (int j = 0; j < K; j++) {
                double x = pert[(size_t)j * Br + i];
                memcpy(row + sizeof key + sizeof v + sizeof(double) * j, &x, sizeof x);
            }
            int32_t gl = ng;
            char *gp = row + sizeof key + sizeof v + sizeof(double) * K;
            memcpy(gp, &gl, sizeof gl);
            memcpy(gp + sizeof gl, gout, sizeof(int32_t) * ng);
        }
    }
    loader_close(ld);
    /* gather rows to world rank 0 */
    int bytes = (int)(rowb * nmine), *counts = NULL, *displs = NULL, total = 0;
    if (g->rank == 0) {
        counts = lethe_malloc(sizeof(int) * g->size, "gather");
        displs = lethe_malloc(sizeof(int) * g->size, "gather");
    }
    MPI_CHECK(MPI_Gather(&bytes, 1, MPI_INT, counts, 1, MPI_INT, 0, g->world));
    char *all = NULL;
    if (g->rank == 0) {
        for (int r = 0; r < g->size; r++) {
            displs[r] = total;
            total += counts[r];
        }
        all = lethe_malloc((size_t)total + 1, "gather");
    }
    MPI_CHECK(MPI_Gatherv(mine, bytes, MPI_BYTE, all, counts, displs, MPI_BYTE, 0, g->world));
    memset(out, 0, sizeof(*out));
    snprintf(out->split, sizeof out->split, "%s", split);
    if (g->rank == 0) {
        int64_t n = total / (int64_t)rowb;
        /* file order: sort by position (rows are unique positions) */
        char *sorted = lethe_malloc(rowb * (size_t)(n + 1), "gather");
        for (int64_t i = 0; i < n; i++) {
            row_key key;
            memcpy(&key, all + rowb * i, sizeof key);
            if (key.pos < 0 || key.pos >= n) lethe_fatal("evaluation gather: row position %lld", (long long)key.pos);
            memcpy(sorted + rowb * key.pos, all + rowb * i, rowb);
        }
        out->n = n;
        out->has_cand = has_cand;
        out->k = K;
        out->gen_cap = cap;
        out->sample_id = lethe_malloc(sizeof(int64_t) * (n + 1), "eval");
        double **cols[NV] = {&out->nll, &out->nll_para, &out->mink, &out->rouge_recall, &out->rouge_f1};
        for (int c = 0; c < NV; c++) *cols[c] = lethe_malloc(sizeof(double) * (n + 1), "eval");
        out->prob = lethe_malloc(sizeof(double) * (n + 1), "eval");
        out->nll_pert = lethe_malloc(sizeof(double) * (size_t)(n * K + 1), "eval");
        out->gen = lethe_calloc((size_t)(n * cap + 1), sizeof(int32_t), "eval");
        out->gen_len = lethe_malloc(sizeof(int32_t) * (n + 1), "eval");
        for (int64_t i = 0; i < n; i++) {
            const char *row = sorted + rowb * i;
            row_key key;
            memcpy(&key, row, sizeof key);
            out->sample_id[i] = key.id;
            double v[NV];
            memcpy(v, row + sizeof key, sizeof v);
            for (int c = 0; c < NV; c++) (*cols[c])[i] = v[c];
            out->prob[i] = exp(-v[0]);
            memcpy(out->nll_pert + (size_t)i * K, row + sizeof key + sizeof v, sizeof(double) * K);
            const char *gp = row + sizeof key + sizeof v + sizeof(double) * K;
            memcpy(&out->gen_len[i], gp, sizeof(int32_t));
            memcpy(out->gen + (size_t)i * cap, gp + sizeof(int32_t), sizeof(int32_t) * out->gen_len[i]);
        }
        free(sorted);
        free(all);
        free(counts);
        free(displs);
    }
    free(mine);
    free(b.tokens);
    free(b.targets);
    free(s);
    free(cnt);
    free(sp);
    free(cp);
    free(pert);
    free(tlp);
    free(lp);
    free(gout);
    free(prompt);
    free(gint);
}

void split_eval_free(split_eval *e)
{
    void *p[] = {e->sample_id, e->nll, e->prob, e->nll_para, e->nll_pert, e->mink,
                 e->rouge_recall, e->rouge_f1, e->gen, e->gen_len};
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++) free(p[i]);
    memset(e, 0, sizeof(*e));
}

void eval_truth_ratios(const split_eval *e, int trained, double *r)
{
    /* sample by sample, so that a sample without a value (NAN NLL) is NAN alone */
    const double *l = trained ? e->nll : e->nll_para;
    for (int64_t i = 0; i < e->n; i++)
        if (metrics_truth_ratio(r + i, l + i, e->nll_pert + (size_t)i * e->k, 1, e->k)) r[i] = NAN;
}

/* Mean of the values that are not NAN (samples without a generation have none); NAN
 * when there are none. */
static double mean_of(const double *x, int64_t n)
{
    double *v = lethe_malloc(sizeof(double) * (size_t)(n + 1), "mean"), m;
    int64_t c = 0;
    for (int64_t i = 0; i < n; i++)
        if (!isnan(x[i])) v[c++] = x[i];
    if (c == 0 || metrics_mean(&m, v, c)) m = NAN;
    free(v);
    return m;
}

void eval_aggregate(const split_eval *e, int role, split_aggregate *a)
{
    a->prob = mean_of(e->prob, e->n);
    a->rouge_recall = mean_of(e->rouge_recall, e->n);
    a->rouge_f1 = mean_of(e->rouge_f1, e->n);
    a->truth_ratio = NAN;
    a->prob_norm = NAN;
    if (!e->has_cand || e->n == 0) return;
    double *r = lethe_malloc(sizeof(double) * e->n, "truth ratios");
    eval_truth_ratios(e, 0, r);
    double tr;
    int rc = role == 0 ? metrics_truth_ratio_forget(&tr, r, e->n)
                       : metrics_truth_ratio_other(&tr, r, e->n);
    a->truth_ratio = rc ? NAN : tr;
    double *q = lethe_malloc(sizeof(double) * e->n, "probabilities");
    if (!metrics_prob_normalized(q, e->nll, e->nll_pert, e->n, e->k)) a->prob_norm = mean_of(q, e->n);
    free(q);
    free(r);
}

/* Reads a 1-D double dataset of a reference eval.h5 (malloc'd), or NULL + err. */
double *eval_read_ref(const char *path, const char *dset, int64_t *n, char *err, size_t errlen)
{
    h5_quiet q;
    h5_quiet_on(&q);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    double *v = NULL;
    if (f < 0) {
        snprintf(err, errlen, "reference '%s' cannot be opened as HDF5", path);
    } else {
        hid_t d = H5Dopen2(f, dset, H5P_DEFAULT);
        if (d < 0) {
            snprintf(err, errlen, "reference '%s' has no dataset '%s'", path, dset);
        } else {
            hid_t sp = H5Dget_space(d);
            hsize_t dims[1] = {0};
            if (H5Sget_simple_extent_ndims(sp) == 1) H5Sget_simple_extent_dims(sp, dims, NULL);
            *n = (int64_t)dims[0];
            v = lethe_malloc(sizeof(double) * (dims[0] + 1), "reference");
            if (dims[0] && H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) < 0) {
                snprintf(err, errlen, "reference '%s': cannot read '%s'", path, dset);
                free(v);
                v = NULL;
            }
            H5Sclose(sp);
            H5Dclose(d);
        }
        H5Fclose(f);
    }
    h5_quiet_off(&q);
    return v;
}


double eval_ks_p(const double *a, int64_t na, const double *b, int64_t nb, double *log10p)
{
    metrics_ks ks;
    if (na < 1 || nb < 1 || metrics_ks_2samp(&ks, a, na, b, nb)) {
        *log10p = NAN;
        return NAN;
    }
    *log10p = ks.log_p / log(10.0);
    return ks.p;
}

