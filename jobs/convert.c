/* jobs/convert.c — `lethe convert`: Hugging Face safetensors <-> lethe checkpoint.
 *
 *   lethe convert CONFIG.json --from PATH --to PATH [--set key=value ...]
 *
 * The direction follows the extensions: .safetensors -> .h5 imports Llama-layout
 * weights (F32, F16 or BF16) into a lethe checkpoint; .h5 -> .safetensors exports a
 * checkpoint's parameters as F32. CONFIG.json gives the model (which must match the
 * file's tensors: every name, every shape) and the layout the ranks take; any layout
 * works, since both formats store global tensors.
 *
 * Import: every rank opens the file and checks its header against the model's
 * tensor list identically (unknown or missing tensors, wrong shapes or dtypes, an
 * lm_head.weight beside tied embeddings: one line, exit 2), then each rank of the
 * first data-parallel replica reads only its own piece (row blocks of the file;
 * column-split tensors are read row block by row block and their columns taken),
 * and ckpt_save writes the checkpoint collectively (step 0, zero AdamW moments).
 * Export: ckpt_load fills the shards, every tensor is gathered to rank 0 in the
 * model's canonical order (the same on every rank and every layout, so the files
 * written under different layouts are byte-identical), and rank 0 writes them.
 * Both writers go through a temporary name and a rename. */
#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../io/checkpoint.h"
#include "../io/safetensors.h"
#include "../mpi/fatal.h"
#include "jobs.h"

int job_convert(int argc, char **argv);
void job_convert_help(FILE *f);

#define MAX_ARGS 1024

void job_convert_help(FILE *f)
{
    fprintf(f, "usage: mpirun -n RANKS lethe convert CONFIG.json --from PATH --to PATH "
               "[--set key.path=value ...]\n\n"
               "Converts weights between Hugging Face Llama safetensors and lethe checkpoints;\n"
               "the extensions choose the direction:\n"
               "  --from W.safetensors --to C.h5   import (F32, F16 or BF16 tensors; names and\n"
               "                                   shapes must match the model in CONFIG.json;\n"
               "                                   with model.tie_embeddings the file has no\n"
               "                                   lm_head.weight)\n"
               "  --from C.h5 --to W.safetensors   export (F32)\n"
               "The layout in CONFIG.json (layout.dp x layout.pp x layout.tp = RANKS) is the one\n"
               "the ranks read and write with; any layout gives the same files.\n"
               "Bad arguments and files that do not match the model exit with 2.\n");
}


static void shape_str(char *buf, size_t len, int nd, const int64_t *s)
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

/* Checks the file's header against the model; the same verdict on every rank, as
 * every rank reads the same header. Returns 0, or -1 with one line in err. */
static int check_header(const st_file *st, const char *path, const char *config,
                        const lethe_model_config *mc, const ckpt_tensor *mt, int n, char *err,
                        size_t len)
{
    for (int i = 0; i < st->n; i++) {
        const st_tensor *f = &st->t[i];
        /* older Llama exports carry the RoPE frequencies; lethe derives them from
         * model.rope_theta */
        if (ends_with(f->name, ".self_attn.rotary_emb.inv_freq")) continue;
        int known = 0;
        for (int j = 0; j < n && !known; j++) known = !strcmp(mt[j].name, f->name);
        if (!known && !strcmp(f->name, "lm_head.weight") && mc->tie_embeddings) {
            snprintf(err, len,
                     "convert: safetensors '%s': tensor 'lm_head.weight' is present but "
                     "model.tie_embeddings is true in '%s' (the head is the embedding; set "
                     "model.tie_embeddings=false for a separate head)",
                     path, config);
            return -1;
        }
        if (!known) {
            snprintf(err, len,
                     "convert: safetensors '%s': unknown tensor '%s' (not a parameter of the "
                     "Llama model in '%s': model.n_layers=%d, model.tie_embeddings=%s)",
                     path, f->name, config, mc->n_layers, mc->tie_embeddings ? "true" : "false");
            return -1;
        }
        if (f->dtype != ST_F32 && f->dtype != ST_F16 && f->dtype != ST_BF16) {
            snprintf(err, len,
                     "convert: safetensors '%s': tensor '%s' has dtype %s, expected F32, F16 "
                     "or BF16",
                     path, f->name, st_dtype_name(f->dtype));
            return -1;
        }
    }
    for (int j = 0; j < n; j++) {
        char want[64], got[200];
        shape_str(want, sizeof want, mt[j].ndim, mt[j].gshape);
        int idx = st_find(st, mt[j].name);
        if (idx < 0) {
            snprintf(err, len,
                     "convert: safetensors '%s': tensor '%s' is missing (expected shape %s by "
                     "the model in '%s')",
                     path, mt[j].name, want, config);
            return -1;
        }
        const st_tensor *f = &st->t[idx];
        int same = f->ndim == mt[j].ndim;
        for (int d = 0; d < f->ndim && same; d++) same = f->shape[d] == mt[j].gshape[d];
        if (!same) {
            shape_str(got, sizeof got, f->ndim, f->shape);
            snprintf(err, len,
                     "convert: safetensors '%s': tensor '%s' has shape %s in the file, expected "
                     "%s by the model in '%s'",
                     path, mt[j].name, got, want, config);
            return -1;
        }
    }
    return 0;
}

/* Reads this rank's piece of tensor p from the file (padding rows stay zero). */
static int read_piece(st_file *st, const lethe_param *p, float *dst, char *err, size_t len)
{
    int idx = st_find(st, p->name);
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

static void import_safetensors(lethe_session *S, const char *from, const char *to,
                               const ckpt_tensor *mt, int n)
{
    char err[1024] = "";
    const lethe_grid *g = &S->grid;
    st_file *st = st_open(from, err, sizeof err);
    int ok = st != NULL;
    lethe_check(g->world, ok, 2, "convert: %s", err);
    ok = check_header(st, from, S->config_path, &S->cfg.model, mt, n, err, sizeof err) == 0;
    if (!ok) st_close(st);
    lethe_check(g->world, ok, 2, "%s", err);

    /* the checkpoint is written by the first replica's owners; the others hold nothing
     * that is saved */
    lethe_params *t = &S->model.w.params;
    for (int i = 0; i < t->n && ok && g->dp_rank == 0; i++)
        if (t->p[i].owner) {
            const lethe_param *p = &t->p[i];
            int64_t r, c;
            ok = read_piece(st, p, t->data + p->off, err, sizeof err) == 0;
            if (ok && ckpt_first_nonfinite(p, t->data + p->off, &r, &c)) {
                float v = t->data[p->off + (size_t)(r - p->gstart[0]) * p->lshape[1] +
                                  (size_t)(c - p->gstart[1])];
                snprintf(err, sizeof err,
                         "'%s': tensor '%s' element [%lld,%lld] is %g: non-finite weights are "
                         "not imported",
                         from, p->name, (long long)r, (long long)c, (double)v);
                ok = 0;
            }
        }
    int nf = st->n;
    st_close(st);
    lethe_check(g->world, ok, 1, "convert: %s", err);

    lethe_ckpt_meta meta;
    memset(&meta, 0, sizeof meta);
    meta.config_json = config_to_json(&S->cfg);
    ok = ckpt_save(to, t, g, &meta, err, sizeof err) == 0;
    free(meta.config_json);
    lethe_check(g->world, ok, 1, "convert: %s", err);
    if (g->rank == 0)
        printf("lethe convert: '%s' (%d tensors) -> checkpoint '%s' (%d tensors, layout dp=%d "
               "pp=%d tp=%d)\n",
               from, nf, to, n, g->dp, g->pp, g->tp);
}

static void export_safetensors(lethe_session *S, const char *from, const char *to,
                               const ckpt_tensor *mt, int n)
{
    char err[1024] = "";
    const lethe_grid *g = &S->grid;
    lethe_params *t = &S->model.w.params;
    /* params_gather counts in int: a tensor (with a 4-float header per piece) must fit */
    int ok = 1;
    for (int k = 0; k < n && ok; k++)
        if (mt[k].gshape[0] * mt[k].gshape[1] + 4LL * g->size > INT_MAX) {
            snprintf(err, sizeof err,
                     "convert: tensor '%s' has %lld elements; export gathers at most %d per "
                     "tensor",
                     mt[k].name, (long long)(mt[k].gshape[0] * mt[k].gshape[1]),
                     INT_MAX - 4 * g->size);
            ok = 0;
        }
    lethe_check(g->world, ok, 2, "%s", err);
    lethe_ckpt_meta meta;
    memset(&meta, 0, sizeof meta);
    char *expect = config_to_json(&S->cfg);
    meta.expect_config = expect;
    ok = ckpt_load(from, t, g, &meta, 0, err, sizeof err) == 0;
    free(expect);
    ckpt_meta_free(&meta);
    lethe_check(g->world, ok, 2, "convert: %s", err);

    int root = g->rank == 0;
    float **data = lethe_calloc((size_t)n, sizeof(float *), "convert tensors");
    const char **names = lethe_calloc((size_t)n, sizeof(char *), "convert tensors");
    int *ndims = lethe_calloc((size_t)n, sizeof(int), "convert tensors");
    const int64_t **shapes = lethe_calloc((size_t)n, sizeof(int64_t *), "convert tensors");
    for (int k = 0; k < n; k++) {
        int64_t rows = mt[k].gshape[0], cols = mt[k].gshape[1];
        if (root) data[k] = lethe_malloc(sizeof(float) * (size_t)(rows * cols), mt[k].name);
        /* every rank calls this for every name in the same order */
        params_gather(t, g->world, g->dp_rank, mt[k].name, 0, rows, cols, data[k], 0);
        names[k] = mt[k].name;
        ndims[k] = mt[k].ndim;
        shapes[k] = mt[k].gshape;
    }
    if (root)
        ok = st_write(to, n, names, ndims, shapes, (const float *const *)data,
                      "{\"format\":\"pt\"}", err, sizeof err) == 0;
    lethe_check(g->world, ok, 1, "convert: %s", err);
    if (root)
        printf("lethe convert: checkpoint '%s' -> '%s' (%d tensors, F32, layout dp=%d pp=%d "
               "tp=%d)\n",
               from, to, n, g->dp, g->pp, g->tp);
    for (int k = 0; k < n; k++) free(data[k]);
    free(data);
    free(names);
    free(ndims);
    free(shapes);
}

/* The command line: --from, --to, and what session_open takes (the config file and
 * --set pairs). */
typedef struct {
    const char *from, *to;
    char *rest[MAX_ARGS];
    int nrest, have_config, help;
} cv_args;

/* --from PATH / --from=PATH and the same of --to at argv[*i] (advancing *i): 1 when it
 * is one, 0 when not, -1 with err set. */
static int path_flag(cv_args *c, int argc, char **argv, int *i, char *err, size_t len)
{
    const char *a = argv[*i], **slot = NULL, *val = NULL;
    if (!strcmp(a, "--from") || !strcmp(a, "--to")) {
        slot = a[2] == 'f' ? &c->from : &c->to;
        if (*i + 1 >= argc) {
            snprintf(err, len, "convert: %s needs a path", a);
            return -1;
        }
        val = argv[++*i];
    } else if (!strncmp(a, "--from=", 7)) {
        slot = &c->from;
        val = a + 7;
    } else if (!strncmp(a, "--to=", 5)) {
        slot = &c->to;
        val = a + 5;
    }
    if (!slot) return 0;
    if (*slot) {
        snprintf(err, len, "convert: --%s given twice", slot == &c->from ? "from" : "to");
        return -1;
    }
    *slot = val;
    return 1;
}

/* Parses argv into c; 0, or -1 with one line in err. --set pairs go to session_open;
 * any other option is refused here, before the checks of --from/--to, so a typo is
 * named as such. */
static int parse_args(cv_args *c, int argc, char **argv, char *err, size_t len)
{
    memset(c, 0, sizeof *c);
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            c->help = 1;
            return 0;
        }
        int r = path_flag(c, argc, argv, &i, err, len);
        if (r < 0) return -1;
        if (r > 0) continue;
        int set_pair = !strcmp(a, "--set") && i + 1 < argc;
        if (!set_pair && a[0] == '-' && a[1] && strncmp(a, "--set=", 6) && strcmp(a, "--set")) {
            snprintf(err, len, "convert: unknown option '%s' (see lethe convert --help)", a);
            return -1;
        }
        if (c->nrest + 1 + set_pair > MAX_ARGS) {
            snprintf(err, len, "convert: more than %d arguments", MAX_ARGS);
            return -1;
        }
        if (set_pair)
            c->rest[c->nrest++] = argv[i++];
        else if (a[0] != '-')
            c->have_config = 1;
        c->rest[c->nrest++] = argv[i];
    }
    return 0;
}

/* A config and both paths, one .safetensors and one .h5: *import says which way. */
static int check_args(const cv_args *c, int *import, char *err, size_t len)
{
    const char *usage = "(usage: lethe convert CONFIG.json --from PATH --to PATH [--set "
                        "key=value ...])";
    const char *from = c->from, *to = c->to;
    if (!c->have_config) {
        snprintf(err, len, "convert: no config file given %s", usage);
        return -1;
    }
    if (!from || !to || !from[0] || !to[0]) {
        snprintf(err, len, "convert: %s %s", !from || !from[0] ? "no --from" : "no --to", usage);
        return -1;
    }
    int fs = ends_with(from, ".safetensors"), fh = ends_with(from, ".h5");
    int ts = ends_with(to, ".safetensors"), th = ends_with(to, ".h5");
    *import = fs && th;
    if (!(*import || (fh && ts))) {
        snprintf(err, len,
                 "convert: --from '%s' --to '%s': expected a .safetensors file and a .h5 "
                 "checkpoint, one each (the extensions choose the direction)",
                 from, to);
        return -1;
    }
    return 0;
}

int job_convert(int argc, char **argv)
{
    int rank;
    MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
    cv_args args, *c = &args;
    char err[1024] = "";
    int import = 0, ok = parse_args(c, argc, argv, err, sizeof err) == 0;
    if (ok && c->help) {
        if (rank == 0) job_convert_help(stdout);
        return 0;
    }
    ok = ok && check_args(c, &import, err, sizeof err) == 0;
    lethe_check(MPI_COMM_WORLD, ok, 2, "%s", err);

    lethe_session S;
    session_open(&S, "convert", c->nrest, c->rest);
    /* The parameter table is all convert needs; activations are sized for one token
     * and the weights are not initialised, as every piece is read from the input. */
    const lethe_layout_config *L = &S.cfg.layout;
    ok = model_check_layout(&S.cfg.model, L->dp, L->pp, L->tp, L->dp * L->micro_batches,
                            L->micro_batches, 1, err, sizeof err) == 0;
    lethe_check(S.grid.world, ok, 2, "%s", err);
    model_create(&S.model, &S.cfg.model, &S.grid, 1, 1, 1);
    S.have_model = 1;

    /* the model's tensors in canonical order (first appearance over the replica's ranks:
     * embedding, layers 0..L-1, final norm, head, at every layout) */
    ckpt_tensor *mt;
    int n = ckpt_tensor_union(&S.model.w.params, &S.grid, &mt, err, sizeof err);
    lethe_check(S.grid.world, n >= 0, 2, "convert: %s", err);
    if (import)
        import_safetensors(&S, c->from, c->to, mt, n);
    else
        export_safetensors(&S, c->from, c->to, mt, n);
    free(mt);
    session_close(&S);
    return 0;
}
