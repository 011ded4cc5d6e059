/* jobs/convert_impl.h — what the parts of `lethe convert` share (internal): the weights
 * being imported (one safetensors file, or the shards of a Hugging Face folder), their
 * check against the model, the import itself and the two exports' gathering of tensors
 * (convert.c: the command line and the single-file directions; convert_import.c: checking
 * and reading the weights; convert_hf.c: Hugging Face folders). */
#ifndef LETHE_JOBS_CONVERT_IMPL_H
#define LETHE_JOBS_CONVERT_IMPL_H

#include <stdio.h>

#include "../io/checkpoint.h"
#include "../io/safetensors.h"
#include "jobs.h"

/* The weight files of an import, every one open on every rank (headers only). */
typedef struct {
    int n;         /* files */
    st_file **f;   /* n handles */
    char **names;  /* n paths (copies), for messages */
    const char *what; /* the input as the user named it, for messages */
} cv_source;

/* Opens the files (every rank); 0, or -1 with one line in err (nothing left open). */
int cv_open(cv_source *s, const char *what, int n, char *const *paths, char *err, size_t len);
void cv_close(cv_source *s);
/* Checks every file's tensors against the model's list mt (n tensors; config names the
 * model's origin in messages): no unknown, repeated, missing or misshapen tensor, no
 * dtype other than F32/F16/BF16, no lm_head.weight beside tied embeddings. The same
 * verdict on every rank. 0, or -1 with one line in err. */
int cv_check_source(const cv_source *s, const char *config, const lethe_model_config *mc,
                    const ckpt_tensor *mt, int n, char *err, size_t len);
/* Reads this rank's pieces (first replica) of the model's n tensors, refuses non-finite
 * weights, writes the
 * checkpoint `to` collectively with the session's resolved config, and prints one line
 * with the peak resident memory per rank. Ends the job on any error. */
void cv_import(lethe_session *S, cv_source *src, const char *to, int n);
/* Every tensor of mt gathered to world rank 0 (NULL elsewhere; malloc'd per tensor, the
 * array too), in the model's canonical order. Collective. */
float **cv_gather(lethe_session *S, const ckpt_tensor *mt, int n);
void cv_free_gathered(float **data, int n);
/* The parameter table only (activations for one token, weights not initialised), and
 * the model's tensors in canonical order in *mt; returns their count. */
int cv_build_model(lethe_session *S, ckpt_tensor **mt);
/* Ends the job (exit 2, err) unless ok on every rank; else a session whose model (and hf
 * keys) come from base (JSON text, freed here; origin names it), and cv_build_model. */
int cv_session_from(lethe_session *S, int ok, const char *err, char *base, const char *origin,
                    int nrest, char **rest, ckpt_tensor **mt);
/* The shape as "[a,b]". */
void cv_shape_str(char *buf, size_t len, int nd, const int64_t *s);

/* The safetensors dtype of a torch_dtype ("bfloat16" -> BF16, "float16" -> F16, else F32). */
st_dtype cv_dtype_of(const char *torch_dtype);

/* convert_hf.c */
/* Import of a Hugging Face folder `from` (config.json + weights) into checkpoint `to`;
 * rest/nrest: the optional config file (layout, threads) and --set pairs. */
void cv_import_hf(const char *from, const char *to, int nrest, char **rest);
/* Export of checkpoint `from` as a Hugging Face folder `to` (which must not exist);
 * tokenizer_from: where the tokenizer files come from (NULL: the recorded source);
 * shard_mb: the largest shard in MiB. */
void cv_export_hf(const char *from, const char *to, const char *tokenizer_from, double shard_mb,
                  int nrest, char **rest);
void cv_help_hf(FILE *f);

#endif
