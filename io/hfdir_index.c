/* io/hfdir_index.c — which files of a Hugging Face folder hold the weights:
 * model.safetensors alone, else the shards model.safetensors.index.json's weight_map
 * names (see io/hfdir.h). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../mpi/fatal.h"
#include "hfdir.h"
#include "safefile.h"

void hf_index_free(hf_index *ix)
{
    for (int i = 0; i < ix->n_files; i++) free(ix->files[i]);
    for (int i = 0; i < ix->n; i++) free(ix->names[i]);
    free(ix->files);
    free(ix->names);
    free(ix->file);
    memset(ix, 0, sizeof *ix);
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(lethe_malloc(n, "weight name"), s, n);
}

static int exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* The file's index in ix->files, added on first mention. */
static int file_slot(hf_index *ix, const char *name)
{
    for (int i = 0; i < ix->n_files; i++)
        if (!strcmp(ix->files[i], name)) return i;
    ix->files[ix->n_files] = dup_str(name);
    return ix->n_files++;
}

static int read_weight_map(const char *dir, const char *path, hf_index *ix, char *err,
                           size_t errlen)
{
    char se[1024];
    char *text = safe_read(path, "Hugging Face index", LETHE_MAX_JSON, NULL, se, sizeof se);
    if (!text) return snprintf(err, errlen, "Hugging Face folder '%s': %s", dir, se), -1;
    cJSON *root = cJSON_Parse(text);
    free(text);
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    int n = cJSON_GetArraySize(wm), rc = 0;
    if (!cJSON_IsObject(wm) || n < 1) {
        cJSON_Delete(root);
        snprintf(err, errlen, "Hugging Face index '%s': no \"weight_map\" object naming tensors",
                 path);
        return -1;
    }
    ix->files = lethe_calloc((size_t)n, sizeof(char *), "weight files");
    ix->names = lethe_calloc((size_t)n, sizeof(char *), "weight names");
    ix->file = lethe_calloc((size_t)n, sizeof(int), "weight files");
    const cJSON *e;
    cJSON_ArrayForEach(e, wm)
    {
        const char *f = cJSON_IsString(e) ? e->valuestring : NULL;
        if (!f || !f[0] || strchr(f, '/') || !strcmp(f, ".") || !strcmp(f, "..")) {
            snprintf(err, errlen,
                     "Hugging Face index '%s': tensor '%.200s' maps to %s, expected the name "
                     "of a file in the folder",
                     path, e->string, f ? "a path" : "no string");
            rc = -1;
            break;
        }
        ix->names[ix->n] = dup_str(e->string);
        ix->file[ix->n++] = file_slot(ix, f);
    }
    cJSON_Delete(root);
    return rc;
}

int hf_read_index(const char *dir, hf_index *ix, char *err, size_t errlen)
{
    memset(ix, 0, sizeof *ix);
    char single[4200], index[4200];
    snprintf(single, sizeof single, "%s/model.safetensors", dir);
    snprintf(index, sizeof index, "%s/model.safetensors.index.json", dir);
    if (exists(single)) { /* as transformers: the single file first */
        ix->files = lethe_calloc(1, sizeof(char *), "weight files");
        ix->files[0] = dup_str("model.safetensors");
        ix->n_files = 1;
        return 0;
    }
    if (!exists(index)) {
        snprintf(err, errlen,
                 "Hugging Face folder '%s': no model.safetensors and no "
                 "model.safetensors.index.json",
                 dir);
        return -1;
    }
    if (read_weight_map(dir, index, ix, err, errlen)) {
        hf_index_free(ix);
        return -1;
    }
    return 0;
}
