/* io/hfdir.h — a Hugging Face Llama model folder: config.json and the weight files.
 *
 * hf_read_config turns config.json into lethe's terms: a JSON text
 *   {"model": {vocab_size, dim, n_layers, n_heads, n_kv_heads, mlp_dim, max_seq_len,
 *              rope_theta, rope_type[, rope_factor, rope_low_freq_factor,
 *              rope_high_freq_factor, rope_original_max_seq_len], norm_eps,
 *              tie_embeddings},
 *    "hf":    {torch_dtype, bos_token_id, eos_token_id, pad_token_id, source}}
 * that io/config takes as the base of a job's config (config_load_base), so the schema
 * checks the values' ranges. Every key of config.json is understood, ignored as
 * bookkeeping (architectures, transformers_version, use_cache, ...) or refused by name in
 * one line: a model lethe does not compute (model_type not "llama", hidden_act not
 * "silu", attention or MLP biases, a head_dim other than hidden_size /
 * num_attention_heads, a rope_scaling type other than llama3, quantization, ...) and any
 * key it does not know.
 *
 * hf_read_index lists the weight files: model.safetensors alone, else the shards named by
 * model.safetensors.index.json's weight_map (tensor name -> file name in the folder; a
 * file name with '/' or "..", an entry that is not a string, or no weights at all are
 * refused).
 *
 * hf_config_json writes config.json back from a resolved lethe config (export).
 * No MPI: callers read on every rank and agree on the verdict. 0 / a pointer on success,
 * -1 / NULL with one line in err. */
#ifndef LETHE_IO_HFDIR_H
#define LETHE_IO_HFDIR_H

#include <stddef.h>

#include "config.h"

typedef struct {
    int n_files;  /* weight files, in order of first mention */
    char **files; /* their names in the folder */
    int n;        /* tensors named by the index (0 without one) */
    char **names; /* tensor names */
    int *file;    /* index into files, per tensor */
} hf_index;

int hf_read_config(const char *dir, char **base_json, char *err, size_t errlen);
int hf_read_index(const char *dir, hf_index *ix, char *err, size_t errlen);
void hf_index_free(hf_index *ix);
/* config.json text for the model of c (malloc'd), in c->hf.torch_dtype. */
char *hf_config_json(const lethe_config *c);

#endif
