/* io/text/tokenizer_hf_dir.c — the tokenizer of a Hugging Face model directory:
 * tokenizer.json when present (tokenizer_hf_json.c), else tokenizer.model
 * (tokenizer_spm_model.c); the bos, eos and pad pieces named by tokenizer_config.json,
 * else by special_tokens_map.json, else the file's own (pad: eos when none is named). */
#define _POSIX_C_SOURCE 200809L
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../../mpi/fatal.h"
#include "../safefile.h"
#include "tokenizer_impl.h"

static int is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* "bos_token": "<s>" or {"content": "<s>", ...}; NULL when absent or null */
static const char *piece_of(const cJSON *cfg, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (cJSON_IsObject(v)) v = cJSON_GetObjectItemCaseSensitive(v, "content");
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Sets bos/eos/pad from one configuration file (absent: nothing to do). */
static int special_ids(tokenizer *t, const char *dir, const char *name, int *named, char *err,
                       size_t errlen)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (!is_file(path)) return 0;
    size_t n;
    char *text = safe_read(path, "tokenizer configuration", LETHE_MAX_TOKENIZER, &n, err, errlen);
    if (!text) return -1;
    cJSON *cfg = cJSON_ParseWithLength(text, n);
    free(text);
    if (!cJSON_IsObject(cfg)) {
        cJSON_Delete(cfg);
        return lethe_errf(err, errlen, "tokenizer configuration '%s': not a JSON object", path);
    }
    static const char *const keys[3] = {"bos_token", "eos_token", "pad_token"};
    int *ids[3] = {&t->bos_id, &t->eos_id, &t->pad_id}, rc = 0;
    for (int k = 0; k < 3 && !rc; k++) {
        const char *p = piece_of(cfg, keys[k]);
        if (!p || named[k]) continue;
        int id = tokenizer_token_id(t, p);
        if (id < 0)
            rc = lethe_errf(err, errlen,
                            "tokenizer configuration '%s': %s '%s' is not in the vocabulary", path,
                            keys[k], lethe_shown(p, (char[80]){0}, 80, 0));
        *ids[k] = id;
        named[k] = 1;
    }
    cJSON_Delete(cfg);
    return rc;
}

int tokenizer_load_dir(tokenizer **out, const char *dir, char *err, size_t errlen)
{
    *out = NULL;
    char json[4200], model[4200];
    snprintf(json, sizeof json, "%s/tokenizer.json", dir);
    snprintf(model, sizeof model, "%s/tokenizer.model", dir);
    tokenizer *t = NULL;
    int rc;
    if (is_file(json))
        rc = tk_hf_json_load(&t, json, 0, err, errlen);
    else if (is_file(model))
        rc = tk_spm_model_load(&t, model, err, errlen);
    else
        return lethe_errf(err, errlen,
                          "model directory '%s': neither tokenizer.json nor tokenizer.model is "
                          "there",
                          dir);
    int named[3] = {0, 0, 0};
    int own_pad = !rc && t->scores && t->pad_id != t->eos_id; /* a .model's pad_id */
    if (!rc) rc = special_ids(t, dir, "tokenizer_config.json", named, err, errlen);
    if (!rc) rc = special_ids(t, dir, "special_tokens_map.json", named, err, errlen);
    if (!rc && !named[2] && !own_pad) t->pad_id = t->eos_id;
    if (!rc && t->eos_id < 0)
        rc = lethe_errf(err, errlen,
                        "model directory '%s': no end-of-text piece: name eos_token in "
                        "tokenizer_config.json",
                        dir);
    if (rc)
        tokenizer_free(t);
    else
        *out = t;
    return rc;
}
