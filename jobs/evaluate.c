/* jobs/evaluate.c — one split through the sharded model, gathered to world rank 0 in file
 * order; its aggregates (DESIGN §6); and the reader of a reference folder's eval.h5. */
#include "evaluate.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hdf5.h>

#include "../analysis/metrics.h"
#include "../analysis/metrics_muse.h"
#include "../io/dataset.h"
#include "../io/safefile.h"
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

/* ROUGE-L of the generation against the reference; stop: the decoded generation cut at
 * KnowMem's stop strings first (MUSE). */
static double rouge_of(const tokenizer *tk, const int32_t *cand, int nc, const int32_t *ref, int nr,
                       int stop, double *f1)
{
    metrics_rouge r;
    int rc;
    if (tk) {
        char *a = tokenizer_decode(tk, cand, nc), *b = tokenizer_decode(tk, ref, nr);
        size_t na = a ? strlen(a) : 0;
        if (a && stop) na = metrics_muse_stop(a, na);
        rc = a && b ? metrics_rouge_l_text(&r, a, na, b, strlen(b)) : -1;
        free(a);
        free(b);
    } else {
        rc = metrics_rouge_l_ids(&r, cand, nc, ref, nr);
    }
    if (rc) lethe_fatal("ROUGE-L failed: %s", metrics_strerror(rc));
    *f1 = r.f1;
    return r.recall;
}

/* One split's evaluation on this rank: sizes, the batch and its scratch, and the rows
 * this replica packs for the gather. A packed row: row_key, NV doubles, K perturbed
 * NLLs, the generation's length (int32) and cap ids. */
typedef struct {
    int Br, T, K, cap, has_cand;
    int64_t N;   /* rows evaluated (max_rows applied) */
    size_t rowb; /* bytes of a packed row */
    char *mine;  /* (N + 1) packed rows */
    int nmine;
    lethe_batch b;             /* (Br, T) */
    double *s, *cnt, *sp, *cp; /* (Br) answer and paraphrase log-likelihood sums, counts */
    double *pert;              /* (K, Br) perturbed token-mean NLLs */
    float *tlp;                /* (Br, T) per-token log-probs of the answer */
    double *lp;                /* (T) the answer tokens' log-probs of one row */
    int32_t *gout;             /* (cap) one row's generation */
    int *prompt, *gint;        /* (Br, T), (Br, cap): the batch's prompts and generations */
    gen_seq *gseq;             /* (Br) the batch's generations, row by row */
} split_run;

static void run_open(split_run *R, const lethe_session *S, const dataset_info *info, int max_rows)
{
    int T = S->model.shape.T, Br = S->cfg.eval.batch_size / S->grid.dp;
    R->Br = Br;
    R->T = T;
    R->K = info->has_pert ? info->k : 0;
    R->has_cand = info->has_para && info->has_pert;
    R->cap = S->cfg.eval.max_new_tokens > 0 ? S->cfg.eval.max_new_tokens : T;
    R->N = info->n;
    if (max_rows > 0 && max_rows < R->N) R->N = max_rows;
    R->rowb =
        sizeof(row_key) + sizeof(double) * (NV + (size_t)R->K) + sizeof(int32_t) * (1 + R->cap);
    R->mine = lethe_malloc(R->rowb * (size_t)(R->N + 1), "evaluation rows");
    R->nmine = 0;
    R->b = (lethe_batch){Br,
                         T,
                         lethe_malloc(sizeof(int) * (size_t)Br * T, "batch"),
                         lethe_malloc(sizeof(int) * (size_t)Br * T, "batch"),
                         NULL,
                         NULL};
    R->s = lethe_malloc(sizeof(double) * Br, "eval");
    R->cnt = lethe_malloc(sizeof(double) * Br, "eval");
    R->sp = lethe_malloc(sizeof(double) * Br, "eval");
    R->cp = lethe_malloc(sizeof(double) * Br, "eval");
    R->pert = lethe_malloc(sizeof(double) * (size_t)Br * (R->K + 1), "eval");
    R->tlp = lethe_malloc(sizeof(float) * (size_t)Br * T, "eval");
    R->lp = lethe_malloc(sizeof(double) * T, "eval");
    R->gout = lethe_malloc(sizeof(int32_t) * (size_t)R->cap, "eval");
    R->prompt = lethe_malloc(sizeof(int) * (size_t)Br * T, "eval");
    R->gint = lethe_malloc(sizeof(int) * (size_t)Br * R->cap, "eval");
    R->gseq = lethe_malloc(sizeof(gen_seq) * Br, "eval");
}

static void run_close(split_run *R)
{
    void *p[] = {R->mine, R->b.tokens, R->b.targets, R->s,    R->cnt,    R->sp,  R->cp,
                 R->pert, R->tlp,      R->lp,        R->gout, R->prompt, R->gint,
                 R->gseq};
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++) free(p[i]);
}

/* Token-mean NLL of each candidate of the batch's n rows: the paraphrase into sp, the
 * perturbed answers into pert; counts come from the targets just built. */
static void forward_candidates(lethe_model *m, split_run *R, const dataset_rows *rows, int n)
{
    lethe_batch *b = &R->b;
    targets_of(b, 0, n, rows->para_ids, rows->para_lengths, rows->para_answer_start, 1);
    model_forward(m, b, R->sp, R->cp, NULL);
    for (int i = 0; i < n; i++) R->sp[i] = R->cp[i] > 0 ? -R->sp[i] / R->cp[i] : NAN;
    for (int j = 0; j < R->K; j++) {
        targets_of(b, 0, n, rows->pert_ids + (size_t)j * R->T, rows->pert_lengths + j,
                   rows->pert_answer_start + j, R->K);
        double *pj = R->pert + (size_t)j * R->Br;
        model_forward(m, b, pj, R->cp, NULL);
        for (int i = 0; i < n; i++) pj[i] = R->cp[i] > 0 ? -pj[i] / R->cp[i] : NAN;
    }
}

/* The greedy generations of the batch's first n rows, gen->batch at a time: row i's
 * prompt is its question (ids before answer_start; a row without one generates
 * nothing), its ids go to R->gint + i * cap and their count to R->gseq[i].n. */
static void generate_rows(lethe_generator *gen, split_run *R, const dataset_rows *rows, int n,
                          int eos)
{
    int T = R->T;
    for (int i = 0; i < n; i++) {
        int A = rows->answer_start[i], *pr = R->prompt + (size_t)i * T;
        for (int t = 0; t < A; t++) pr[t] = rows->ids[(size_t)i * T + t];
        int maxn = A <= 0 ? 0 : R->cap < T - A ? R->cap : T - A;
        R->gseq[i] = (gen_seq){pr, A, maxn, R->gint + (size_t)i * R->cap, 0};
    }
    gen_greedy_batch(gen, R->gseq, n, eos);
}

/* Row i of the batch: Min-K% of its answer tokens, its greedy generation and ROUGE-L
 * (when generating), packed into R->mine when this rank contributes. flags: EVAL_*
 * (evaluate.h). */
static void score_row(const lethe_session *S, const tokenizer *tk,
                      split_run *R, const loader_batch *lb, int i, int flags, int eos,
                      int contributes)
{
    const dataset_rows *rows = &lb->rows;
    int T = R->T;
    const int32_t *ids = rows->ids + (size_t)i * T;
    int L = rows->lengths[i], A = rows->answer_start[i];
    int nt = 0;
    for (int t = 0; t < T; t++)
        if (t + 1 < L && t + 1 >= A) R->lp[nt++] = R->tlp[(size_t)i * T + t];
    double mk = NAN, rr = NAN, rf = NAN;
    if (flags & EVAL_MUSE_MINK) { /* the text's own tokens: not the EOS prepare closed it with */
        if (nt > 0 && L > A && ids[L - 1] == eos) nt--;
        if (nt > 0 && metrics_min_k_muse(&mk, R->lp, nt, S->cfg.eval.min_k)) mk = NAN;
    } else if (nt > 0 && metrics_min_k(&mk, R->lp, nt, S->cfg.eval.min_k)) {
        mk = NAN;
    }
    int ng = 0;
    if ((flags & EVAL_GENERATE) && A > 0) { /* generated by generate_rows */
        ng = R->gseq[i].n;
        for (int k2 = 0; k2 < ng; k2++) R->gout[k2] = R->gint[(size_t)i * R->cap + k2];
        int ref_end = L;
        if (L > A && ids[L - 1] == eos) ref_end = L - 1;
        int nref = ref_end - A; /* VerbMem: the continuation's first cap tokens (MUSE) */
        if ((flags & EVAL_MUSE_VERB) && nref > R->cap) nref = R->cap;
        rr = rouge_of(tk, R->gout, ng, ids + A, nref, flags & EVAL_MUSE_STOP, &rf);
    }
    if (!contributes) return;
    char *row = R->mine + R->rowb * (size_t)R->nmine++;
    row_key key = {lb->first + i, rows->sample_id[i]};
    memcpy(row, &key, sizeof key);
    double v[NV] = {R->cnt[i] > 0 ? -R->s[i] / R->cnt[i] : NAN, R->has_cand ? R->sp[i] : NAN, mk,
                    rr, rf};
    memcpy(row + sizeof key, v, sizeof v);
    for (int j = 0; j < R->K; j++) {
        double x = R->pert[(size_t)j * R->Br + i];
        memcpy(row + sizeof key + sizeof v + sizeof(double) * j, &x, sizeof x);
    }
    int32_t gl = ng;
    char *gp = row + sizeof key + sizeof v + sizeof(double) * R->K;
    memcpy(gp, &gl, sizeof gl);
    memcpy(gp + sizeof gl, R->gout, sizeof(int32_t) * ng);
}

/* Every rank's packed rows to world rank 0 (malloc'd there, *total bytes; NULL elsewhere). */
static char *gather_rows(const lethe_grid *g, const split_run *R, int *total)
{
    int bytes = (int)(R->rowb * R->nmine), *counts = NULL, *displs = NULL;
    *total = 0;
    if (g->rank == 0) {
        counts = lethe_malloc(sizeof(int) * g->size, "gather");
        displs = lethe_malloc(sizeof(int) * g->size, "gather");
    }
    MPI_CHECK(MPI_Gather(&bytes, 1, MPI_INT, counts, 1, MPI_INT, 0, g->world));
    char *all = NULL;
    if (g->rank == 0) {
        for (int r = 0; r < g->size; r++) {
            displs[r] = *total;
            *total += counts[r];
        }
        all = lethe_malloc((size_t)*total + 1, "gather");
    }
    MPI_CHECK(MPI_Gatherv(R->mine, bytes, MPI_BYTE, all, counts, displs, MPI_BYTE, 0, g->world));
    free(counts);
    free(displs);
    return all;
}

/* Rank 0: the gathered rows (total bytes) in file order into out's columns. */
static void unpack_rows(split_eval *out, const split_run *R, const char *all, int total)
{
    size_t rowb = R->rowb;
    int K = R->K, cap = R->cap;
    int64_t n = total / (int64_t)rowb;
    /* file order: sort by position (rows are unique positions) */
    char *sorted = lethe_malloc(rowb * (size_t)(n + 1), "gather");
    for (int64_t i = 0; i < n; i++) {
        row_key key;
        memcpy(&key, all + rowb * i, sizeof key);
        if (key.pos < 0 || key.pos >= n)
            lethe_fatal("evaluation gather: row position %lld", (long long)key.pos);
        memcpy(sorted + rowb * key.pos, all + rowb * i, rowb);
    }
    out->n = n;
    out->has_cand = R->has_cand;
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
}

void eval_split(lethe_session *S, lethe_generator *gen, const void *tokv, const char *split,
                int max_rows, int flags, split_eval *out)
{
    lethe_model *m = &S->model;
    const lethe_grid *g = &S->grid;
    loader *ld;
    job_open_loader(S, &ld, split, S->cfg.eval.batch_size, 0, 0, 0, 1, 1);
    const dataset_info *info = loader_info(ld);
    split_run R;
    run_open(&R, S, info, max_rows);
    int contributes = g->pp_rank == 0 && g->tp_rank == 0;
    for (;;) {
        loader_batch *lb = job_next_batch(S, ld, NULL);
        if (!lb || lb->position >= R.N) break;
        const dataset_rows *rows = &lb->rows;
        targets_of(&R.b, 0, lb->n, rows->ids, rows->lengths, rows->answer_start, 1);
        model_forward(m, &R.b, R.s, R.cnt, R.tlp);
        if (R.has_cand) forward_candidates(m, &R, rows, lb->n);
        int n = lb->n < R.N - lb->first ? lb->n : (int)(R.N - lb->first);
        if (flags & EVAL_GENERATE) generate_rows(gen, &R, rows, n, (int)info->eos_id);
        for (int i = 0; i < n; i++)
            score_row(S, tokv, &R, lb, i, flags, (int)info->eos_id, contributes);
    }
    loader_close(ld);
    int total;
    char *all = gather_rows(g, &R, &total);
    memset(out, 0, sizeof(*out));
    snprintf(out->split, sizeof out->split, "%s", split);
    if (g->rank == 0) unpack_rows(out, &R, all, total);
    free(all);
    run_close(&R);
}

int eval_gen_batch(const lethe_session *S)
{
    int Br = S->cfg.eval.batch_size / S->grid.dp, b = S->cfg.eval.gen_batch;
    return b < Br ? b : Br > 0 ? Br : 1;
}

void split_eval_free(split_eval *e)
{
    void *p[] = {e->sample_id, e->nll,          e->prob,     e->nll_para, e->nll_pert,
                 e->mink,      e->rouge_recall, e->rouge_f1, e->gen,      e->gen_len};
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
    if (!metrics_prob_normalized(q, e->nll, e->nll_pert, e->n, e->k))
        a->prob_norm = mean_of(q, e->n);
    free(q);
    free(r);
}

/* Reads a 1-D double dataset of a reference eval.h5 (malloc'd), or NULL + err. */
double *eval_read_ref(const char *path, const char *dset, int64_t *n, char *err, size_t errlen)
{
    /* a FIFO or a device never reaches HDF5 (whose open would block on it) */
    if (safe_check_read(path, "reference", LETHE_MAX_TENSORS, err, errlen)) return NULL;
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
