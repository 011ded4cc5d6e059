/* io/hfdir_write.c — config.json written back from a resolved lethe config (the export of
 * a checkpoint as a Hugging Face folder): the keys io/hfdir.c reads, with the values the
 * import recorded (rope scaling, tie, torch_dtype, special ids) and those lethe fixes
 * (model_type llama, hidden_act silu, no biases). */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "config_impl.h"
#include "hfdir.h"

static void add_float(cJSON *o, const char *key, float v)
{
    cJSON_AddNumberToObject(o, key, cf_float_to_short_double(v));
}

static void add_id(cJSON *o, const char *key, int id)
{
    if (id < 0)
        cJSON_AddNullToObject(o, key);
    else
        cJSON_AddNumberToObject(o, key, id);
}

char *hf_config_json(const lethe_config *c)
{
    const lethe_model_config *m = &c->model;
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON *arch = cJSON_AddArrayToObject(o, "architectures");
    cJSON_AddItemToArray(arch, cJSON_CreateString("LlamaForCausalLM"));
    cJSON_AddFalseToObject(o, "attention_bias");
    cJSON_AddNumberToObject(o, "attention_dropout", 0.0);
    add_id(o, "bos_token_id", c->hf.bos_token_id);
    cJSON *eos = c->hf.eos_token_id[0] ? cJSON_Parse(c->hf.eos_token_id) : NULL;
    if (eos)
        cJSON_AddItemToObject(o, "eos_token_id", eos);
    else
        cJSON_AddNullToObject(o, "eos_token_id");
    cJSON_AddNumberToObject(o, "head_dim", m->dim / m->n_heads);
    cJSON_AddStringToObject(o, "hidden_act", "silu");
    cJSON_AddNumberToObject(o, "hidden_size", m->dim);
    add_float(o, "initializer_range", m->init_std);
    cJSON_AddNumberToObject(o, "intermediate_size", m->mlp_dim);
    cJSON_AddNumberToObject(o, "max_position_embeddings", m->max_seq_len);
    cJSON_AddFalseToObject(o, "mlp_bias");
    cJSON_AddStringToObject(o, "model_type", "llama");
    cJSON_AddNumberToObject(o, "num_attention_heads", m->n_heads);
    cJSON_AddNumberToObject(o, "num_hidden_layers", m->n_layers);
    cJSON_AddNumberToObject(o, "num_key_value_heads", m->n_kv_heads);
    add_id(o, "pad_token_id", c->hf.pad_token_id);
    add_float(o, "rms_norm_eps", m->norm_eps);
    if (m->rope.type == ROPE_LLAMA3) {
        cJSON *rs = cJSON_AddObjectToObject(o, "rope_scaling");
        add_float(rs, "factor", m->rope.factor);
        add_float(rs, "high_freq_factor", m->rope.high_freq_factor);
        add_float(rs, "low_freq_factor", m->rope.low_freq_factor);
        cJSON_AddNumberToObject(rs, "original_max_position_embeddings",
                                m->rope.original_max_seq_len);
        cJSON_AddStringToObject(rs, "rope_type", "llama3");
    } else
        cJSON_AddNullToObject(o, "rope_scaling");
    add_float(o, "rope_theta", m->rope_theta);
    cJSON_AddBoolToObject(o, "tie_word_embeddings", m->tie_embeddings);
    cJSON_AddStringToObject(o, "torch_dtype", c->hf.torch_dtype);
    cJSON_AddTrueToObject(o, "use_cache");
    cJSON_AddNumberToObject(o, "vocab_size", m->vocab_size);
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    return s;
}
