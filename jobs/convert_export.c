/* jobs/convert_export.c — `lethe convert --from C.h5 --to FOLDER`: a checkpoint as a new
 * Hugging Face folder.
 *
 * The model comes from the checkpoint's stored config (CONFIG.json and --set give the
 * layout). Rank 0 writes into FOLDER.tmp.PID: the shards (tensors in canonical order,
 * in the recorded hf.torch_dtype, rounded to nearest even from the checkpoint's float32
 * so that an imported model goes back bit for bit; a new shard when the next tensor would
 * pass --shard-size; one shard is model.safetensors, several are
 * model-0000i-of-0000n.safetensors with model.safetensors.index.json), config.json
 * (io/hfdir_write.c) and the tokenizer files found in --tokenizer-from or the folder the
 * checkpoint was imported from (hf.source); then it renames the folder into place. Every
 * tensor is gathered to rank 0 one shard at a time, so rank 0 holds at most a shard in
 * float32 beside its own piece of the model. An existing FOLDER is refused before any
 * work; on a failure the temporary folder is removed. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../io/hfdir.h"
#include "../io/safefile.h"
#include "../mpi/fatal.h"
#include "convert_impl.h"

static const char *const tokenizer_files[] = {"tokenizer.json", "tokenizer.model",
                                              "tokenizer_config.json", "special_tokens_map.json",
                                              "generation_config.json"};

st_dtype cv_dtype_of(const char *torch_dtype)
{
    return !strcmp(torch_dtype, "bfloat16") ? ST_BF16
           : !strcmp(torch_dtype, "float16") ? ST_F16
                                             : ST_F32;
}

/* Each tensor's dtype: hf.tensor_dtypes names it (an import of a mixed folder), else
 * torch_dtype's. */
static void tensor_dtypes(const lethe_hf_config *hf, const ckpt_tensor *mt, int n, st_dtype *dt)
{
    for (int k = 0; k < n; k++) {
        dt[k] = cv_dtype_of(hf->torch_dtype);
        size_t l = strlen(mt[k].name);
        for (const char *s = hf->tensor_dtypes; (s = strstr(s, mt[k].name)); s += l) {
            if ((s != hf->tensor_dtypes && s[-1] != ',') || s[l] != '=') continue;
            const char *d = s + l + 1;
            dt[k] = !strncmp(d, "BF16", 4) ? ST_BF16 : !strncmp(d, "F16", 3) ? ST_F16 : ST_F32;
            break;
        }
    }
}

/* The shard of each tensor (greedy in canonical order under the byte limit); the count. */
static int plan_shards(const ckpt_tensor *mt, int n, const st_dtype *dt, double mb, int *shard)
{
    double limit = mb * (1 << 20), used = 0;
    int s = 0;
    for (int k = 0; k < n; k++) {
        double bytes = (double)mt[k].gshape[0] * (double)mt[k].gshape[1] *
                       (double)st_dtype_size(dt[k]);
        if (used > 0 && used + bytes > limit) s++, used = 0;
        used += bytes;
        shard[k] = s;
    }
    return s + 1;
}

static void shard_name(char *buf, size_t len, int s, int ns)
{
    if (ns == 1)
        snprintf(buf, len, "model.safetensors");
    else
        snprintf(buf, len, "model-%05d-of-%05d.safetensors", s + 1, ns);
}

/* Tensors [k0, k1) gathered (collective) and written by rank 0 as one shard; *ok stays 0
 * after a failure (the gathers still run, so that every rank takes part). */
static void write_shard(lethe_session *S, const ckpt_tensor *mt, int k0, int k1,
                        const st_dtype *tdt, const char *path, int *ok, char *err, size_t len)
{
    int m = k1 - k0;
    float **data = cv_gather(S, mt + k0, m);
    if (S->grid.rank != 0 || !*ok) {
        cv_free_gathered(data, m);
        return;
    }
    const char **names = lethe_calloc((size_t)m, sizeof(char *), "shard");
    int *nd = lethe_calloc((size_t)m, sizeof(int), "shard");
    const int64_t **shp = lethe_calloc((size_t)m, sizeof(int64_t *), "shard");
    st_dtype *dts = lethe_calloc((size_t)m, sizeof(st_dtype), "shard");
    const void **out = lethe_calloc((size_t)m, sizeof(void *), "shard");
    for (int i = 0; i < m; i++) {
        const ckpt_tensor *t = &mt[k0 + i];
        size_t cnt = (size_t)(t->gshape[0] * t->gshape[1]);
        st_dtype dt = tdt[k0 + i];
        names[i] = t->name, nd[i] = t->ndim, shp[i] = t->gshape, dts[i] = dt;
        if (dt == ST_F32) {
            out[i] = data[i];
            continue;
        }
        uint16_t *h = lethe_malloc(2 * (cnt ? cnt : 1), "shard half");
        for (size_t j = 0; j < cnt; j++)
            h[j] = dt == ST_BF16 ? st_f32_to_bf16(data[i][j]) : st_f32_to_f16(data[i][j]);
        out[i] = h;
    }
    *ok = st_write_typed(path, m, names, dts, nd, shp, out, "{\"format\":\"pt\"}", err, len) == 0;
    for (int i = 0; i < m; i++)
        if (dts[i] != ST_F32) free((void *)out[i]);
    free(names), free(nd), free(shp), free(dts), free(out);
    cv_free_gathered(data, m);
}

/* The index of several shards: total bytes and tensor -> shard name. */
static int write_index(const char *dir, const ckpt_tensor *mt, int n, const int *shard, int ns,
                       const st_dtype *dt, char *err, size_t len)
{
    cJSON *o = cJSON_CreateObject(), *meta = cJSON_AddObjectToObject(o, "metadata");
    cJSON *wm = cJSON_AddObjectToObject(o, "weight_map");
    double total = 0;
    char name[64], path[4200];
    for (int k = 0; k < n; k++) {
        total += (double)mt[k].gshape[0] * (double)mt[k].gshape[1] * (double)st_dtype_size(dt[k]);
        shard_name(name, sizeof name, shard[k], ns);
        cJSON_AddStringToObject(wm, mt[k].name, name);
    }
    cJSON_AddNumberToObject(meta, "total_size", total);
    char *text = cJSON_Print(o);
    cJSON_Delete(o);
    snprintf(path, sizeof path, "%.3000s/model.safetensors.index.json", dir);
    int rc = text ? safe_write_text(path, text, "\n", err, len) : -1;
    free(text);
    return rc;
}

/* config.json and the tokenizer files present in tok (may be ""); the count copied. */
static int write_side_files(const lethe_config *c, const char *dir, const char *tok, int *copied,
                            char *err, size_t len)
{
    char path[4200], src[4200];
    char *cj = hf_config_json(c);
    snprintf(path, sizeof path, "%.3000s/config.json", dir);
    int rc = cj ? safe_write_text(path, cj, "\n", err, len) : -1;
    free(cj);
    *copied = 0;
    for (size_t i = 0; !rc && tok[0] && i < sizeof tokenizer_files / sizeof *tokenizer_files; i++) {
        struct stat st;
        snprintf(src, sizeof src, "%.3000s/%s", tok, tokenizer_files[i]);
        if (stat(src, &st) || !S_ISREG(st.st_mode)) continue;
        size_t n = 0;
        char *data = safe_read(src, "tokenizer file", LETHE_MAX_TOKENIZER, &n, err, len);
        snprintf(path, sizeof path, "%.3000s/%s", dir, tokenizer_files[i]);
        rc = data ? safe_write(path, data, n, err, len) : -1;
        free(data);
        *copied += !rc;
    }
    return rc;
}

/* Removes the temporary folder and the files in it (an export writes no subfolders). */
static void remove_tmp(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) unlinkat(dirfd(d), e->d_name, 0);
    if (d) closedir(d);
    rmdir(dir);
}

/* What must hold before any work: no --to yet, a tokenizer folder that is one. */
static int check_targets(const char *to, const char *tok, char *err, size_t len)
{
    struct stat st;
    if (lstat(to, &st) == 0)
        return snprintf(err, len,
                        "convert: --to '%s' exists (an export writes a new Hugging Face folder; "
                        "remove it or choose another name)",
                        to),
               -1;
    if (tok && (stat(tok, &st) || !S_ISDIR(st.st_mode)))
        return snprintf(err, len, "convert: --tokenizer-from '%s' is not a folder", tok), -1;
    return 0;
}

void cv_export_hf(const char *from, const char *to, const char *tokenizer_from, double shard_mb,
                  int nrest, char **rest)
{
    char err[1024] = "", origin[600], tmp[3000];
    char *stored = NULL;
    int ok = check_targets(to, tokenizer_from, err, sizeof err) == 0 &&
             ckpt_read_config(from, MPI_COMM_WORLD, &stored, err, sizeof err) == 0;
    snprintf(origin, sizeof origin, "checkpoint '%.500s'", from);
    lethe_session S;
    ckpt_tensor *mt;
    int n = cv_session_from(&S, ok, err, stored, origin, nrest, rest, &mt);
    lethe_ckpt_meta meta;
    memset(&meta, 0, sizeof meta);
    char *expect = config_to_json(&S.cfg);
    meta.expect_config = expect;
    ok = ckpt_load(from, &S.model.w.params, &S.grid, &meta, 0, err, sizeof err) == 0;
    free(expect);
    ckpt_meta_free(&meta);
    lethe_check(S.grid.world, ok, 2, "convert: %s", err);

    st_dtype *dt = lethe_calloc((size_t)(n ? n : 1), sizeof(st_dtype), "tensor dtypes");
    tensor_dtypes(&S.cfg.hf, mt, n, dt);
    int *shard = lethe_calloc((size_t)n, sizeof(int), "shards");
    int ns = plan_shards(mt, n, dt, shard_mb, shard), copied = 0;
    int root = S.grid.rank == 0;
    long pid = (long)getpid();
    MPI_CHECK(MPI_Bcast(&pid, 1, MPI_LONG, 0, S.grid.world));
    snprintf(tmp, sizeof tmp, "%.2900s.tmp.%ld", to, pid);
    if (root && mkdir(tmp, 0777))
        snprintf(err, sizeof err, "cannot create '%.700s': %s", tmp, strerror(errno)), ok = 0;
    MPI_CHECK(MPI_Bcast(&ok, 1, MPI_INT, 0, S.grid.world));
    lethe_check(S.grid.world, ok, 1, "convert: %s", err);
    for (int k0 = 0, s = 0; k0 < n; s++) {
        int k1 = k0;
        while (k1 < n && shard[k1] == s) k1++;
        char name[64], path[4300];
        shard_name(name, sizeof name, s, ns);
        snprintf(path, sizeof path, "%s/%s", tmp, name);
        write_shard(&S, mt, k0, k1, dt, path, &ok, err, sizeof err);
        k0 = k1;
    }
    if (root && ok && ns > 1)
        ok = write_index(tmp, mt, n, shard, ns, dt, err, sizeof err) == 0;
    const char *tok = tokenizer_from ? tokenizer_from : S.cfg.hf.source;
    if (root && ok) ok = write_side_files(&S.cfg, tmp, tok, &copied, err, sizeof err) == 0;
    if (root && ok && rename(tmp, to))
        snprintf(err, sizeof err, "cannot rename '%.400s' to '%.400s': %s", tmp, to, strerror(errno)),
            ok = 0;
    if (root && !ok) remove_tmp(tmp);
    MPI_CHECK(MPI_Bcast(&ok, 1, MPI_INT, 0, S.grid.world));
    lethe_check(S.grid.world, ok, 1, "convert: %s", err);
    if (root)
        printf("lethe convert: checkpoint '%s' -> Hugging Face folder '%s' (%d tensors, %s, %d "
               "shard%s, %d tokenizer file%s from '%s', layout dp=%d pp=%d tp=%d)\n",
               from, to, n, S.cfg.hf.torch_dtype, ns, ns > 1 ? "s" : "", copied,
               copied == 1 ? "" : "s", tok[0] ? tok : "(none recorded)", S.grid.dp, S.grid.pp,
               S.grid.tp);
    free(shard);
    free(dt);
    free(mt);
    session_close(&S);
}
