/* io/hfdir.c — a Hugging Face Llama folder's config.json in lethe's terms (and back), and
 * the list of its weight files (model.safetensors or the shards of
 * model.safetensors.index.json). See io/hfdir.h for what is understood and refused. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config_impl.h"
#include "hfdir.h"
#include "safefile.h"

/* Keys that say nothing about the function the weights compute. */
static const char *const bookkeeping[] = {
    "architectures",     "transformers_version", "_name_or_path",        "initializer_range",
    "use_cache",         "pretraining_tp",       "output_attentions",    "output_hidden_states",
    "return_dict",       "torchscript",          "_attn_implementation", "max_length"};

/* The integer shape keys: config.json name -> lethe model key (required unless noted). */
static const struct {
    const char *hf, *lethe;
    int required;
} shape_keys[] = {
    {"vocab_size", "vocab_size", 1},   {"hidden_size", "dim", 1},
    {"num_hidden_layers", "n_layers", 1}, {"num_attention_heads", "n_heads", 1},
    {"num_key_value_heads", "n_kv_heads", 0}, {"intermediate_size", "mlp_dim", 1},
    {"max_position_embeddings", "max_seq_len", 1}};

typedef struct {
    const char *path; /* dir/config.json, for messages */
    char *err;
    size_t errlen;
} hf_ctx;

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static int hf_fail(const hf_ctx *x, const char *fmt, ...)
{
    char msg[700];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(x->err, x->errlen, "Hugging Face config '%s': %s", x->path, msg);
    return -1;
}

/* An integer in [lo, 2^31): 0, or -1 naming the key. */
static int get_int(const hf_ctx *x, const cJSON *v, const char *key, long lo, long *out)
{
    char s[80];
    if (cJSON_IsNumber(v) && v->valuedouble == floor(v->valuedouble) && v->valuedouble >= lo &&
        v->valuedouble < 2147483648.0) {
        *out = (long)v->valuedouble;
        return 0;
    }
    cf_shown_json(s, sizeof s, v);
    return hf_fail(x, "key '%s' is %s, expected an integer >= %ld", key, s, lo);
}

static int get_pos_number(const hf_ctx *x, const cJSON *v, const char *key, double *out)
{
    char s[80];
    if (cJSON_IsNumber(v) && isfinite(v->valuedouble) && v->valuedouble > 0) {
        *out = v->valuedouble;
        return 0;
    }
    cf_shown_json(s, sizeof s, v);
    return hf_fail(x, "key '%s' is %s, expected a positive number", key, s);
}

/* A key whose only value lethe computes is `want` (a JSON text): 0, or -1 naming it. */
static int require_value(const hf_ctx *x, const cJSON *v, const char *key, const char *want,
                         const char *why)
{
    cJSON *w = cJSON_Parse(want);
    int same = w && cJSON_Compare(v, w, 1);
    if (!same && cJSON_IsNumber(v) && cJSON_IsNumber(w)) same = v->valuedouble == w->valuedouble;
    cJSON_Delete(w);
    if (same) return 0;
    char s[80];
    cf_shown_json(s, sizeof s, v);
    return hf_fail(x, "key '%s' is %s: lethe computes only %s (%s)", key, s, want, why);
}

/* rope_scaling: null, {"rope_type": "default"} or llama3 with its four numbers. */
static int read_rope(const hf_ctx *x, const cJSON *rs, cJSON *model)
{
    if (!rs || cJSON_IsNull(rs)) return cJSON_AddStringToObject(model, "rope_type", "none") ? 0 : -1;
    if (!cJSON_IsObject(rs)) return hf_fail(x, "key 'rope_scaling' is not an object or null");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(rs, "rope_type");
    if (!t) t = cJSON_GetObjectItemCaseSensitive(rs, "type");
    const char *type = cJSON_IsString(t) ? t->valuestring : "";
    if (!strcmp(type, "default")) return cJSON_AddStringToObject(model, "rope_type", "none") ? 0 : -1;
    if (strcmp(type, "llama3")) {
        char s[80];
        cf_shown_json(s, sizeof s, t ? t : rs);
        return hf_fail(x, "rope_scaling type %s is not supported (lethe computes none and llama3)",
                       s);
    }
    static const char *const known[] = {"rope_type", "type", "factor", "low_freq_factor",
                                        "high_freq_factor", "original_max_position_embeddings"};
    const cJSON *e;
    cJSON_ArrayForEach(e, rs)
    {
        int ok = 0;
        for (size_t k = 0; k < sizeof known / sizeof *known && !ok; k++)
            ok = !strcmp(e->string, known[k]);
        if (!ok) return hf_fail(x, "key 'rope_scaling.%s' is not understood by lethe", e->string);
    }
    double f = 0, lo = 0, hi = 0;
    long orig = 0;
    char key[64];
    const char *num[] = {"factor", "low_freq_factor", "high_freq_factor"};
    double *dst[] = {&f, &lo, &hi};
    for (int k = 0; k < 3; k++) {
        snprintf(key, sizeof key, "rope_scaling.%s", num[k]);
        if (get_pos_number(x, cJSON_GetObjectItemCaseSensitive(rs, num[k]), key, dst[k])) return -1;
    }
    if (get_int(x, cJSON_GetObjectItemCaseSensitive(rs, "original_max_position_embeddings"),
                "rope_scaling.original_max_position_embeddings", 1, &orig))
        return -1;
    cJSON_AddStringToObject(model, "rope_type", "llama3");
    cJSON_AddNumberToObject(model, "rope_factor", f);
    cJSON_AddNumberToObject(model, "rope_low_freq_factor", lo);
    cJSON_AddNumberToObject(model, "rope_high_freq_factor", hi);
    cJSON_AddNumberToObject(model, "rope_original_max_seq_len", (double)orig);
    return 0;
}

/* bos/pad: an id or null -> hf.<key> (-1 for none); eos: an id, a list of ids or null ->
 * its JSON text. */
static int read_ids(const hf_ctx *x, const cJSON *root, cJSON *hf)
{
    const char *one[] = {"bos_token_id", "pad_token_id"};
    for (int k = 0; k < 2; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, one[k]);
        long id = -1;
        if (v && !cJSON_IsNull(v) && get_int(x, v, one[k], 0, &id)) return -1;
        cJSON_AddNumberToObject(hf, one[k], (double)id);
    }
    const cJSON *eos = cJSON_GetObjectItemCaseSensitive(root, "eos_token_id");
    long id;
    if (cJSON_IsArray(eos)) {
        const cJSON *e;
        cJSON_ArrayForEach(e, eos) if (get_int(x, e, "eos_token_id", 0, &id)) return -1;
    } else if (eos && !cJSON_IsNull(eos) && get_int(x, eos, "eos_token_id", 0, &id))
        return -1;
    char *txt = eos && !cJSON_IsNull(eos) ? cJSON_PrintUnformatted(eos) : NULL;
    if (txt && strlen(txt) >= sizeof ((lethe_config *)0)->hf.eos_token_id) {
        cJSON_free(txt);
        return hf_fail(x, "key 'eos_token_id' lists more ids than lethe records");
    }
    cJSON_AddStringToObject(hf, "eos_token_id", txt ? txt : "");
    cJSON_free(txt);
    return 0;
}

static int read_dtype(const hf_ctx *x, const cJSON *root, cJSON *hf)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "torch_dtype");
    if (!v) v = cJSON_GetObjectItemCaseSensitive(root, "dtype");
    const char *d = cJSON_IsString(v) ? v->valuestring : v && !cJSON_IsNull(v) ? "" : "float32";
    if (strcmp(d, "float32") && strcmp(d, "float16") && strcmp(d, "bfloat16")) {
        char s[80];
        cf_shown_json(s, sizeof s, v);
        return hf_fail(x, "key 'torch_dtype' is %s, expected \"float32\", \"float16\" or "
                          "\"bfloat16\"", s);
    }
    cJSON_AddStringToObject(hf, "torch_dtype", d);
    return 0;
}

/* Every key understood, ignored or refused by name; the shapes into model. */
static int read_keys(const hf_ctx *x, const cJSON *root, cJSON *model)
{
    static const char *const handled[] = {
        "model_type",    "hidden_act",   "attention_bias", "mlp_bias",     "attention_dropout",
        "head_dim",      "rope_theta",   "rope_scaling",   "rms_norm_eps", "tie_word_embeddings",
        "torch_dtype",   "dtype",        "bos_token_id",   "eos_token_id", "pad_token_id"};
    const cJSON *e;
    cJSON_ArrayForEach(e, root)
    {
        int ok = 0;
        for (size_t k = 0; k < sizeof handled / sizeof *handled && !ok; k++)
            ok = !strcmp(e->string, handled[k]);
        for (size_t k = 0; k < sizeof bookkeeping / sizeof *bookkeeping && !ok; k++)
            ok = !strcmp(e->string, bookkeeping[k]);
        for (size_t k = 0; k < sizeof shape_keys / sizeof *shape_keys && !ok; k++)
            ok = !strcmp(e->string, shape_keys[k].hf);
        if (!ok)
            return hf_fail(x, "key '%s' is not understood by lethe (a Llama model it cannot "
                              "compute as described)",
                           e->string);
    }
    long v[sizeof shape_keys / sizeof *shape_keys];
    for (size_t k = 0; k < sizeof shape_keys / sizeof *shape_keys; k++) {
        const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, shape_keys[k].hf);
        if (!it || cJSON_IsNull(it)) {
            if (shape_keys[k].required) return hf_fail(x, "key '%s' is missing", shape_keys[k].hf);
            v[k] = v[3]; /* num_key_value_heads defaults to num_attention_heads */
        } else if (get_int(x, it, shape_keys[k].hf, 1, &v[k]))
            return -1;
        cJSON_AddNumberToObject(model, shape_keys[k].lethe, (double)v[k]);
    }
    const cJSON *hd = cJSON_GetObjectItemCaseSensitive(root, "head_dim");
    long hdv = 0;
    if (hd && !cJSON_IsNull(hd)) {
        if (get_int(x, hd, "head_dim", 1, &hdv)) return -1;
        if (hdv * v[3] != v[1])
            return hf_fail(x, "key 'head_dim' is %ld, but lethe computes only hidden_size / "
                              "num_attention_heads = %ld / %ld",
                           hdv, v[1], v[3]);
    }
    return 0;
}

static int read_model(const hf_ctx *x, const cJSON *root, cJSON *model, cJSON *hf)
{
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    if (!mt) return hf_fail(x, "key 'model_type' is missing (expected \"llama\")");
    if (require_value(x, mt, "model_type", "\"llama\"", "a Llama decoder")) return -1;
    const struct {
        const char *key, *want, *why;
    } fixed[] = {{"hidden_act", "\"silu\"", "SwiGLU"},
                 {"attention_bias", "false", "no biases"},
                 {"mlp_bias", "false", "no biases"},
                 {"attention_dropout", "0", "no dropout"}};
    for (size_t k = 0; k < sizeof fixed / sizeof *fixed; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, fixed[k].key);
        if (v && require_value(x, v, fixed[k].key, fixed[k].want, fixed[k].why)) return -1;
    }
    if (read_keys(x, root, model)) return -1;
    double theta = 10000, eps = 0;
    const cJSON *th = cJSON_GetObjectItemCaseSensitive(root, "rope_theta");
    if (th && get_pos_number(x, th, "rope_theta", &theta)) return -1;
    cJSON_AddNumberToObject(model, "rope_theta", theta);
    if (read_rope(x, cJSON_GetObjectItemCaseSensitive(root, "rope_scaling"), model)) return -1;
    const cJSON *ne = cJSON_GetObjectItemCaseSensitive(root, "rms_norm_eps");
    if (!ne) return hf_fail(x, "key 'rms_norm_eps' is missing");
    if (get_pos_number(x, ne, "rms_norm_eps", &eps)) return -1;
    cJSON_AddNumberToObject(model, "norm_eps", eps);
    const cJSON *tie = cJSON_GetObjectItemCaseSensitive(root, "tie_word_embeddings");
    if (tie && !cJSON_IsBool(tie)) return hf_fail(x, "key 'tie_word_embeddings' is not a boolean");
    cJSON_AddBoolToObject(model, "tie_embeddings", cJSON_IsTrue(tie));
    if (read_dtype(x, root, hf)) return -1;
    return read_ids(x, root, hf);
}

int hf_read_config(const char *dir, char **base_json, char *err, size_t errlen)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    hf_ctx x = {path, err, errlen};
    *base_json = NULL;
    char se[1024];
    char *text = safe_read(path, "Hugging Face config", LETHE_MAX_JSON, NULL, se, sizeof se);
    if (!text) {
        snprintf(err, errlen, "Hugging Face folder '%s': %s", dir, se);
        return -1;
    }
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return hf_fail(&x, "not a JSON object");
    }
    cJSON *base = cJSON_CreateObject();
    cJSON *model = cJSON_AddObjectToObject(base, "model");
    cJSON *hf = cJSON_AddObjectToObject(base, "hf");
    int rc = read_model(&x, root, model, hf);
    if (!rc && !cJSON_AddStringToObject(hf, "source", dir)) rc = hf_fail(&x, "out of memory");
    if (!rc) *base_json = cJSON_PrintUnformatted(base);
    cJSON_Delete(root);
    cJSON_Delete(base);
    return rc ? -1 : 0;
}
