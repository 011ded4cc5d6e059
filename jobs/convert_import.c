/* jobs/convert_import.c — the weights of an import (one safetensors file or a folder's
 * shards) checked against the model and read piece by piece into a checkpoint, and the
 * gathering of a checkpoint's tensors for the exports.
 *
 * Every rank opens every file (headers only) and checks them against the model's tensor
 * list identically; each rank of the first data-parallel replica then reads only its own
 * piece of each tensor (row blocks of the file; column-split tensors are read row block
 * by row block and their columns taken), so a rank's memory is its shard of the model
 * (the parameters) plus one row block; the zero AdamW moments the checkpoint stores are
 * written from one bounded block of zeros, never from a shard-sized buffer. */
#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "../mpi/fatal.h"
#include "convert_impl.h"

void cv_shape_str(char *buf, size_t len, int nd, const int64_t *s)
{
    size_t o = 0;
    o += (size_t)snprintf(buf + o, len - o, "[");
    for (int d = 0; d < nd && o < len; d++)
        o += (size_t)snprintf(buf + o, len - o, "%s%lld", d ? "," : "", (long long)s[d]);
    if (o < len) snprintf(buf + o, len - o, "]");
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

int cv_open(cv_source *s, const char *what, int n, char *const *paths, char *err, size_t len)
{
    memset(s, 0, sizeof *s);
    s->what = what;
    s->f = lethe_calloc((size_t)n, sizeof(st_file *), "weight files");
    s->names = lethe_calloc((size_t)n, sizeof(char *), "weight files");
    for (int i = 0; i < n; i++) {
        size_t l = strlen(paths[i]) + 1;
        s->names[i] = memcpy(lethe_malloc(l, "weight file path"), paths[i], l);
        s->f[i] = st_open(paths[i], err, len);
        s->n = i + 1;
        if (!s->f[i]) {
            cv_close(s);
            return -1;
        }
    }
    return 0;
}

void cv_close(cv_source *s)
{
    for (int i = 0; i < s->n; i++) {
        if (s->f[i]) st_close(s->f[i]);
        free(s->names[i]);
    }
    free(s->f);
    free(s->names);
    memset(s, 0, sizeof *s);
}

/* The tensor called name: its index in file *fi, or -1. */
static int cv_find(const cv_source *s, const char *name, int *fi)
{
    for (int i = 0; i < s->n; i++) {
        int k = st_find(s->f[i], name);
        if (k >= 0) {
            *fi = i;
            return k;
        }
    }
    return -1;
}

/* One file's tensors: known to the model, not repeated in an earlier file, of a dtype
 * that is read as float. */
static int check_file(const cv_source *s, int fi, const char *config,
                      const lethe_model_config *mc, const ckpt_tensor *mt, int n, char *err,
                      size_t len)
{
    const st_file *st = s->f[fi];
    for (int i = 0; i < st->n; i++) {
        const st_tensor *f = &st->t[i];
        /* older Llama exports carry the RoPE frequencies; lethe derives them */
        if (ends_with(f->name, ".self_attn.rotary_emb.inv_freq")) continue;
        int known = 0, other;
        for (int j = 0; j < n && !known; j++) known = !strcmp(mt[j].name, f->name);
        if (!known && !strcmp(f->name, "lm_head.weight") && mc->tie_embeddings)
            return snprintf(err, len,
                            "convert: safetensors '%s': tensor 'lm_head.weight' is present but "
                            "model.tie_embeddings is true in %s (the head is the embedding; set "
                            "model.tie_embeddings=false for a separate head)",
                            s->names[fi], config),
                   -1;
        if (!known)
            return snprintf(err, len,
                            "convert: safetensors '%s': unknown tensor '%s' (not a parameter of "
                            "the Llama model in %s: model.n_layers=%d, model.tie_embeddings=%s)",
                            s->names[fi], f->name, config, mc->n_layers,
                            mc->tie_embeddings ? "true" : "false"),
                   -1;
        for (int e = 0; e < fi; e++)
            if (st_find(s->f[e], f->name) >= 0 && (other = e, 1))
                return snprintf(err, len,
                                "convert: tensor '%s' is in both '%s' and '%s' (each tensor "
                                "must be in one file)",
                                f->name, s->names[other], s->names[fi]),
                       -1;
        if (f->dtype != ST_F32 && f->dtype != ST_F16 && f->dtype != ST_BF16)
            return snprintf(err, len,
                            "convert: safetensors '%s': tensor '%s' has dtype %s, expected "
                            "F32, F16 or BF16",
                            s->names[fi], f->name, st_dtype_name(f->dtype)),
                   -1;
    }
    return 0;
}

int cv_check_source(const cv_source *s, const char *config, const lethe_model_config *mc,
                    const ckpt_tensor *mt, int n, char *err, size_t len)
{
    for (int fi = 0; fi < s->n; fi++)
        if (check_file(s, fi, config, mc, mt, n, err, len)) return -1;
    for (int j = 0; j < n; j++) {
        char want[64], got[200];
        cv_shape_str(want, sizeof want, mt[j].ndim, mt[j].gshape);
        int fi = 0, idx = cv_find(s, mt[j].name, &fi);
        if (idx < 0)
            return snprintf(err, len,
                            "convert: %s: tensor '%s' is missing (expected shape %s by the model "
                            "in %s)",
                            s->what, mt[j].name, want, config),
                   -1;
        const st_tensor *f = &s->f[fi]->t[idx];
        int same = f->ndim == mt[j].ndim;
        for (int d = 0; d < f->ndim && same; d++) same = f->shape[d] == mt[j].gshape[d];
        if (!same) {
            cv_shape_str(got, sizeof got, f->ndim, f->shape);
            return snprintf(err, len,
                            "convert: safetensors '%s': tensor '%s' has shape %s in the file, "
                            "expected %s by the model in %s",
                            s->names[fi], mt[j].name, got, want, config),
                   -1;
        }
    }
    return 0;
}

/* Reads this rank's piece of tensor p (padding rows stay zero). */
static int read_piece(const cv_source *s, const lethe_param *p, float *dst, char *err, size_t len)
{
    int fi = 0, idx = cv_find(s, p->name, &fi);
    st_file *st = s->f[fi];
    int64_t gcols = p->gshape[1], lc = p->lshape[1];
    if (p->vshape[0] == 0 || p->vshape[1] == 0) return 0;
    if (p->split != 1) /* whole rows: the piece is one contiguous block of the file */
        return st_read_f32_rows(st, idx, p->gstart[0], p->vshape[0], dst, err, len);
    /* column split: read blocks of whole rows (about 16 MiB) and keep our columns */
    int64_t rb = (4 << 20) / gcols;
    if (rb < 1) rb = 1;
    if (rb > p->vshape[0]) rb = p->vshape[0];
    float *buf = lethe_malloc(sizeof(float) * (size_t)(rb * gcols), "convert row block");
    int rc = 0;
    for (int64_t r0 = 0; r0 < p->vshape[0] && !rc; r0 += rb) {
        int64_t nr = p->vshape[0] - r0 < rb ? p->vshape[0] - r0 : rb;
        rc = st_read_f32_rows(st, idx, p->gstart[0] + r0, nr, buf, err, len);
        for (int64_t i = 0; i < nr && !rc; i++)
            memcpy(dst + (r0 + i) * lc, buf + i * gcols + p->gstart[1],
                   sizeof(float) * (size_t)p->vshape[1]);
    }
    free(buf);
    return rc;
}

/* This rank's pieces from the files (first replica only; the others hold nothing that
 * is saved). 1, or 0 with err. */
static int read_pieces(lethe_session *S, const cv_source *src, char *err, size_t len)
{
    lethe_params *t = &S->model.w.params;
    int ok = 1;
    for (int i = 0; i < t->n && ok && S->grid.dp_rank == 0; i++) {
        const lethe_param *p = &t->p[i];
        int64_t r, c;
        if (!p->owner) continue;
        ok = read_piece(src, p, t->data + p->off, err, len) == 0;
        if (ok && ckpt_first_nonfinite(p, t->data + p->off, &r, &c)) {
            float v = t->data[p->off + (size_t)(r - p->gstart[0]) * p->lshape[1] +
                              (size_t)(c - p->gstart[1])];
            snprintf(err, len,
                     "%s: tensor '%s' element [%lld,%lld] is %g: non-finite weights are not "
                     "imported",
                     src->what, p->name, (long long)r, (long long)c, (double)v);
            ok = 0;
        }
    }
    return ok;
}

/* Rank 0 prints the largest peak resident set over the ranks beside the largest shard
 * of parameters (what an import cannot do without). Collective. */
static void report_memory(const lethe_session *S)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    const lethe_params *t = &S->model.w.params;
    double mine[2] = {(double)ru.ru_maxrss / 1024.0, (double)t->total * 4.0 / (1 << 20)}, mx[2];
    MPI_CHECK(MPI_Reduce(mine, mx, 2, MPI_DOUBLE, MPI_MAX, 0, S->grid.world));
    if (S->grid.rank == 0)
        printf("lethe convert: peak resident memory %.1f MiB per rank at most; largest shard of "
               "parameters %.1f MiB\n",
               mx[0], mx[1]);
}

void cv_import(lethe_session *S, cv_source *src, const char *to, int n)
{
    char err[1024] = "";
    const lethe_grid *g = &S->grid;
    lethe_params *t = &S->model.w.params;
    /* the gradients and moments are never touched here, so their pages cost no memory
     * (model/params.c maps them untouched): the save writes the zero moments from one
     * bounded block (meta.moments_zero) instead of reading them */
    int ok = read_pieces(S, src, err, sizeof err);
    int nf = 0;
    for (int i = 0; i < src->n; i++) nf += src->f[i]->n;
    int nfiles = src->n;
    const char *what = src->what;
    cv_close(src);
    lethe_check(g->world, ok, 1, "convert: %s", err);

    lethe_ckpt_meta meta;
    memset(&meta, 0, sizeof meta);
    meta.config_json = config_to_json(&S->cfg);
    meta.moments_zero = 1;
    ok = ckpt_save(to, t, g, &meta, err, sizeof err) == 0;
    free(meta.config_json);
    lethe_check(g->world, ok, 1, "convert: %s", err);
    if (g->rank == 0)
        printf("lethe convert: %s (%d tensors in %d file%s) -> checkpoint '%s' (%d tensors, "
               "layout dp=%d pp=%d tp=%d)\n",
               what, nf, nfiles, nfiles > 1 ? "s" : "", to, n, g->dp, g->pp, g->tp);
    report_memory(S);
}

float **cv_gather(lethe_session *S, const ckpt_tensor *mt, int n)
{
    const lethe_grid *g = &S->grid;
    lethe_params *t = &S->model.w.params;
    char err[1024] = "";
    int ok = 1;
    /* params_gather counts in int: a tensor (with a 4-float header per piece) must fit */
    for (int k = 0; k < n && ok; k++)
        if (mt[k].gshape[0] * mt[k].gshape[1] + 4LL * g->size > INT_MAX) {
            snprintf(err, sizeof err,
                     "convert: tensor '%s' has %lld elements; convert gathers at most %d per "
                     "tensor",
                     mt[k].name, (long long)(mt[k].gshape[0] * mt[k].gshape[1]),
                     INT_MAX - 4 * g->size);
            ok = 0;
        }
    lethe_check(g->world, ok, 2, "%s", err);
    float **data = lethe_calloc((size_t)n, sizeof(float *), "convert tensors");
    for (int k = 0; k < n; k++) {
        int64_t rows = mt[k].gshape[0], cols = mt[k].gshape[1];
        if (g->rank == 0) data[k] = lethe_malloc(sizeof(float) * (size_t)(rows * cols), mt[k].name);
        /* every rank calls this for every name in the same order */
        params_gather(t, g->world, g->dp_rank, mt[k].name, 0, rows, cols, data[k], 0);
    }
    return data;
}

void cv_free_gathered(float **data, int n)
{
    for (int k = 0; k < n; k++) free(data[k]);
    free(data);
}

int cv_session_from(lethe_session *S, int ok, const char *err, char *base, const char *origin,
                    int nrest, char **rest, ckpt_tensor **mt)
{
    lethe_check(MPI_COMM_WORLD, ok, 2, "%s%s", strncmp(err, "convert:", 8) ? "convert: " : "", err);
    session_open_base(S, "convert", nrest, rest, base, origin);
    free(base);
    return cv_build_model(S, mt);
}

int cv_build_model(lethe_session *S, ckpt_tensor **mt)
{
    char err[1024] = "";
    const lethe_layout_config *L = &S->cfg.layout;
    int ok = model_check_layout(&S->cfg.model, L->dp, L->pp, L->tp, L->dp * L->micro_batches,
                                L->micro_batches, 1, err, sizeof err) == 0;
    lethe_check(S->grid.world, ok, 2, "%s", err);
    model_create(&S->model, &S->cfg.model, &S->grid, 1, 1, 1);
    S->have_model = 1;
    /* canonical order: first appearance over the replica's ranks (embedding, layers
     * 0..L-1, final norm, head, at every layout) */
    int n = ckpt_tensor_union(&S->model.w.params, &S->grid, mt, err, sizeof err);
    lethe_check(S->grid.world, n >= 0, 2, "convert: %s", err);
    return n;
}
