/* jobs/convert.c — `lethe convert`: Hugging Face weights <-> lethe checkpoint; the command
 * line and the single-file directions.
 *
 *   lethe convert [CONFIG.json] --from PATH --to PATH [--set key=value ...]
 *
 * The direction follows the paths: a folder -> .h5 imports a Hugging Face Llama folder
 * (config.json and its weights; convert_hf.c), .h5 -> a new folder exports one;
 * .safetensors -> .h5 imports Llama-layout weights (F32, F16 or BF16) into a lethe
 * checkpoint with the model given by CONFIG.json; .h5 -> .safetensors exports a
 * checkpoint's parameters as F32. Any layout works, since all formats store global
 * tensors; the checking and reading of weights is convert_import.c's.
 *
 * Single-file export: ckpt_load fills the shards, every tensor is gathered to rank 0 in
 * the model's canonical order (the same on every rank and every layout, so the files
 * written under different layouts are byte-identical), and rank 0 writes them through a
 * temporary name and a rename. */
#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/stat.h>

#include "../mpi/fatal.h"
#include "convert_impl.h"

int job_convert(int argc, char **argv);
void job_convert_help(FILE *f);

#define MAX_ARGS 1024

void job_convert_help(FILE *f)
{
    fprintf(f, "usage: mpirun -n RANKS lethe convert [CONFIG.json] --from PATH --to PATH "
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
    cv_help_hf(f);
}


static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

static void import_safetensors(lethe_session *S, const char *from, const char *to,
                               const ckpt_tensor *mt, int n)
{
    char err[1024] = "", cfg[600], what[600];
    cv_source src;
    char *paths[1] = {(char *)from};
    snprintf(what, sizeof what, "safetensors '%.500s'", from);
    int ok = cv_open(&src, what, 1, paths, err, sizeof err) == 0;
    lethe_check(S->grid.world, ok, 2, "convert: %s", err);
    snprintf(cfg, sizeof cfg, "'%.500s'", S->config_path);
    ok = cv_check_source(&src, cfg, &S->cfg.model, mt, n, err, sizeof err) == 0;
    if (!ok) cv_close(&src);
    lethe_check(S->grid.world, ok, 2, "%s", err);
    cv_import(S, &src, to, n);
}

static void export_safetensors(lethe_session *S, const char *from, const char *to,
                               const ckpt_tensor *mt, int n)
{
    char err[1024] = "";
    const lethe_grid *g = &S->grid;
    lethe_params *t = &S->model.w.params;
    int ok;
    lethe_ckpt_meta meta;
    memset(&meta, 0, sizeof meta);
    char *expect = config_to_json(&S->cfg);
    meta.expect_config = expect;
    ok = ckpt_load(from, t, g, &meta, 0, err, sizeof err) == 0;
    free(expect);
    ckpt_meta_free(&meta);
    lethe_check(g->world, ok, 2, "convert: %s", err);

    int root = g->rank == 0;
    float **data = cv_gather(S, mt, n);
    const char **names = lethe_calloc((size_t)n, sizeof(char *), "convert tensors");
    int *ndims = lethe_calloc((size_t)n, sizeof(int), "convert tensors");
    const int64_t **shapes = lethe_calloc((size_t)n, sizeof(int64_t *), "convert tensors");
    for (int k = 0; k < n; k++) {
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
    cv_free_gathered(data, n);
    free(names);
    free(ndims);
    free(shapes);
}

/* The command line: --from, --to, and what session_open takes (the config file and
 * --set pairs). */
typedef struct {
    const char *from, *to, *tokenizer_from, *shard_size;
    char *rest[MAX_ARGS];
    int nrest, have_config, help;
} cv_args;

/* --from PATH / --from=PATH and the same of --to at argv[*i] (advancing *i): 1 when it
 * is one, 0 when not, -1 with err set. */
static int path_flag(cv_args *c, int argc, char **argv, int *i, char *err, size_t len)
{
    static const char *const flags[] = {"--from", "--to", "--tokenizer-from", "--shard-size"};
    const char **slots[] = {&c->from, &c->to, &c->tokenizer_from, &c->shard_size};
    const char *a = argv[*i], **slot = NULL, *val = NULL, *flag = NULL;
    for (int k = 0; k < 4 && !slot; k++) {
        size_t fl = strlen(flags[k]);
        if (!strcmp(a, flags[k])) {
            if (*i + 1 >= argc) {
                snprintf(err, len, "convert: %s needs a value", a);
                return -1;
            }
            slot = slots[k], flag = flags[k], val = argv[++*i];
        } else if (!strncmp(a, flags[k], fl) && a[fl] == '=')
            slot = slots[k], flag = flags[k], val = a + fl + 1;
    }
    if (!slot) return 0;
    if (*slot) {
        snprintf(err, len, "convert: %s given twice", flag);
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

enum { CV_ST_IMPORT, CV_ST_EXPORT, CV_HF_IMPORT, CV_HF_EXPORT };

/* Both paths, and a config unless a Hugging Face folder is one side: *mode says which way
 * (.safetensors -> .h5, .h5 -> .safetensors, folder -> .h5, .h5 -> folder). */
static int check_args(const cv_args *c, int *mode, char *err, size_t len)
{
    const char *usage = "(usage: lethe convert [CONFIG.json] --from PATH --to PATH [--set "
                        "key=value ...])";
    const char *from = c->from, *to = c->to;
    if (!from || !to || !from[0] || !to[0]) {
        snprintf(err, len, "convert: %s %s", !from || !from[0] ? "no --from" : "no --to", usage);
        return -1;
    }
    int fs = ends_with(from, ".safetensors"), fh = ends_with(from, ".h5");
    int ts = ends_with(to, ".safetensors"), th = ends_with(to, ".h5");
    *mode = fs && th             ? CV_ST_IMPORT
            : fh && ts           ? CV_ST_EXPORT
            : !fs && !fh && th   ? CV_HF_IMPORT
            : fh && !ts && !th   ? CV_HF_EXPORT
                                 : -1;
    if (*mode < 0) {
        snprintf(err, len,
                 "convert: --from '%s' --to '%s': expected a .h5 checkpoint on one side and a "
                 ".safetensors file or a Hugging Face folder on the other (the paths choose "
                 "the direction)",
                 from, to);
        return -1;
    }
    if (*mode <= CV_ST_EXPORT && !c->have_config) {
        snprintf(err, len, "convert: no config file given %s", usage);
        return -1;
    }
    if ((c->tokenizer_from || c->shard_size) && *mode != CV_HF_EXPORT) {
        snprintf(err, len, "convert: %s applies only to an export to a Hugging Face folder",
                 c->tokenizer_from ? "--tokenizer-from" : "--shard-size");
        return -1;
    }
    return 0;
}

/* --shard-size MB: a number in [0.001, 1e6] (default 4096, 4 GiB: under Hugging Face's
 * usual 5 GB shards). */
static int shard_mb(const char *v, double *mb, char *err, size_t len)
{
    char *end = NULL;
    *mb = v ? strtod(v, &end) : 4096;
    if (v && (end == v || *end || !(*mb >= 0.001 && *mb <= 1e6))) {
        snprintf(err, len, "convert: --shard-size '%s': expected MiB in [0.001, 1000000]", v);
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
    int mode = 0, ok = parse_args(c, argc, argv, err, sizeof err) == 0;
    if (ok && c->help) {
        if (rank == 0) job_convert_help(stdout);
        return 0;
    }
    double mb = 0;
    ok = ok && check_args(c, &mode, err, sizeof err) == 0 &&
         shard_mb(c->shard_size, &mb, err, sizeof err) == 0;
    lethe_check(MPI_COMM_WORLD, ok, 2, "%s", err);
    if (mode == CV_HF_IMPORT) {
        cv_import_hf(c->from, c->to, c->nrest, c->rest);
        return 0;
    }
    if (mode == CV_HF_EXPORT) {
        cv_export_hf(c->from, c->to, c->tokenizer_from, mb, c->nrest, c->rest);
        return 0;
    }
    lethe_session S;
    session_open(&S, "convert", c->nrest, c->rest);
    ckpt_tensor *mt;
    int n = cv_build_model(&S, &mt);
    if (mode == CV_ST_IMPORT)
        import_safetensors(&S, c->from, c->to, mt, n);
    else
        export_safetensors(&S, c->from, c->to, mt, n);
    free(mt);
    session_close(&S);
    return 0;
}
