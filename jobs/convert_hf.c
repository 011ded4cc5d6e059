/* jobs/convert_hf.c — `lethe convert` with a Hugging Face Llama folder on one side.
 *
 * Import (--from FOLDER --to C.h5): every rank reads config.json (io/hfdir.c: each key
 * understood, ignored or refused by name) and takes the model from it as the base of its
 * config, so the optional CONFIG.json and --set give only the layout and threads (a model
 * key there must equal config.json's). The weights are model.safetensors or the shards of
 * model.safetensors.index.json; the index and the shards must agree (every tensor the
 * index names is in its shard, every tensor of a shard is named there), then
 * convert_import.c checks them against the model and each rank reads its own pieces. The
 * checkpoint records the full model config and the folder's torch_dtype, special token ids
 * and path (the hf.* keys).
 *
 * The export to a folder is convert_export.c's. */
#define _GNU_SOURCE /* realpath */
#include <errno.h>
#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../io/hfdir.h"
#include "../mpi/fatal.h"
#include "convert_impl.h"

void cv_help_hf(FILE *f)
{
    fprintf(f,
            "Hugging Face folders (config.json, model.safetensors or shards with\n"
            "model.safetensors.index.json); CONFIG.json is then optional and gives only the\n"
            "layout and threads, the model comes from config.json or the checkpoint:\n"
            "  --from FOLDER --to C.h5          import (F32, F16 or BF16; any layout)\n"
            "  --from C.h5 --to FOLDER          export to a new folder, in the recorded\n"
            "                                   torch_dtype, with the tokenizer files\n"
            "    --shard-size MIB               largest shard (default 4096)\n"
            "    --tokenizer-from DIR           where the tokenizer files come from (default:\n"
            "                                   the folder the checkpoint was imported from)\n");
}

/* The index and the shards agree: 0, or -1 with one line in err. */
static int check_index(const cv_source *src, const hf_index *ix, const char *dir, char *err,
                       size_t len)
{
    if (!ix->n) return 0; /* a single model.safetensors has no index */
    for (int i = 0; i < ix->n; i++)
        if (st_find(src->f[ix->file[i]], ix->names[i]) < 0)
            return snprintf(err, len,
                            "convert: Hugging Face index '%s/model.safetensors.index.json': "
                            "tensor '%s' is mapped to '%s', which holds no such tensor",
                            dir, ix->names[i], ix->files[ix->file[i]]),
                   -1;
    for (int fi = 0; fi < src->n; fi++)
        for (int k = 0; k < src->f[fi]->n; k++) {
            const char *name = src->f[fi]->t[k].name;
            int mapped = 0;
            for (int i = 0; i < ix->n && !mapped; i++)
                mapped = ix->file[i] == fi && !strcmp(ix->names[i], name);
            if (!mapped)
                return snprintf(err, len,
                                "convert: Hugging Face folder '%s': tensor '%s' of '%s' is not "
                                "mapped to that file by model.safetensors.index.json",
                                dir, name, ix->files[fi]),
                       -1;
        }
    return 0;
}

/* The folder's weight files opened and checked against the model. */
static void open_weights(lethe_session *S, const char *what, const char *dir, const char *origin,
                         const ckpt_tensor *mt, int n, cv_source *src)
{
    char err[1024] = "";
    hf_index ix;
    int ok = hf_read_index(dir, &ix, err, sizeof err) == 0;
    lethe_check(S->grid.world, ok, 2, "convert: %s", err);
    char **paths = lethe_calloc((size_t)ix.n_files, sizeof(char *), "weight files");
    for (int i = 0; i < ix.n_files; i++) {
        size_t l = strlen(dir) + strlen(ix.files[i]) + 2;
        paths[i] = lethe_malloc(l, "weight file path");
        snprintf(paths[i], l, "%s/%s", dir, ix.files[i]);
    }
    ok = cv_open(src, what, ix.n_files, paths, err, sizeof err) == 0;
    for (int i = 0; i < ix.n_files; i++) free(paths[i]);
    free(paths);
    ok = ok && check_index(src, &ix, dir, err, sizeof err) == 0 &&
         cv_check_source(src, origin, &S->cfg.model, mt, n, err, sizeof err) == 0;
    if (!ok && src->n) cv_close(src);
    hf_index_free(&ix);
    lethe_check(S->grid.world, ok, 2, "%s", err);
}

/* hf.tensor_dtypes: each tensor whose dtype is not torch_dtype's (a mixed folder: BF16
 * weights with F32 norms), so that the export writes every tensor in its own dtype. */
static void record_dtypes(lethe_session *S, const cv_source *src, const char *what)
{
    char *out = S->cfg.hf.tensor_dtypes;
    size_t cap = sizeof S->cfg.hf.tensor_dtypes, len = 0;
    st_dtype base = cv_dtype_of(S->cfg.hf.torch_dtype);
    int ok = 1;
    out[0] = 0;
    for (int fi = 0; fi < src->n && ok; fi++)
        for (int k = 0; k < src->f[fi]->n && ok; k++) {
            const st_tensor *t = &src->f[fi]->t[k];
            if (t->dtype == base) continue;
            int w = snprintf(out + len, cap - len, "%s%s=%s", len ? "," : "", t->name,
                             st_dtype_name(t->dtype));
            ok = w > 0 && (size_t)w < cap - len;
            len += ok ? (size_t)w : 0;
        }
    lethe_check(S->grid.world, ok, 2,
                "convert: %s: too many tensors in a dtype other than torch_dtype '%s' to record "
                "(at most %zu bytes of 'name=DTYPE,...')",
                what, S->cfg.hf.torch_dtype, cap - 1);
}

void cv_import_hf(const char *from, const char *to, int nrest, char **rest)
{
    char err[1024] = "", dir[PATH_MAX], origin[PATH_MAX + 64], what[PATH_MAX + 64];
    char *base = NULL;
    struct stat st;
    int ok = realpath(from, dir) != NULL && stat(dir, &st) == 0;
    if (!ok)
        snprintf(err, sizeof err, "convert: Hugging Face folder '%s': %s", from, strerror(errno));
    else if (!S_ISDIR(st.st_mode))
        snprintf(err, sizeof err, "convert: --from '%s' is not a folder (expected a Hugging Face "
                                  "folder with config.json)", from), ok = 0;
    ok = ok && hf_read_config(dir, &base, err, sizeof err) == 0;
    snprintf(origin, sizeof origin, "Hugging Face config '%s/config.json'", from);
    lethe_session S;
    ckpt_tensor *mt;
    int n = cv_session_from(&S, ok, err, base, origin, nrest, rest, &mt);
    cv_source src;
    snprintf(what, sizeof what, "Hugging Face folder '%s'", from);
    open_weights(&S, what, dir, origin, mt, n, &src);
    record_dtypes(&S, &src, what);
    cv_import(&S, &src, to, n);
    free(mt);
    session_close(&S);
}
