/* model/model_config.h — what the model reads of a job's configuration: its shape, the
 * optimizer and its schedule, the unlearning objective. Plain numbers and enums, no
 * strings: io/config fills these structs from the JSON (a name such as "cosine" becomes
 * its enum value once, when the config is validated; an unknown name is refused there)
 * and the jobs pass them down. Each enum's values follow the order of its key's allowed
 * names in the config schema (io/config_keys.c), which is how io/config maps them. */
#ifndef LETHE_MODEL_CONFIG_H
#define LETHE_MODEL_CONFIG_H

#include <stdint.h>

/* model.rope_type: "none" (inv_freq[i] = theta^(-2i/hd)) | "llama3" (Llama 3.1's
 * scaling of those frequencies: wavelengths longer than original_max_seq_len /
 * low_freq_factor are divided by factor, shorter than original_max_seq_len /
 * high_freq_factor kept, and the band between interpolated smoothly) */
typedef enum { ROPE_NONE, ROPE_LLAMA3 } lethe_rope_type;

typedef struct {
    lethe_rope_type type;
    float factor; /* llama3: how much longer the context than in pre-training */
    float low_freq_factor, high_freq_factor;
    int original_max_seq_len; /* llama3: the pre-training context length */
} lethe_rope_scaling;

typedef struct {
    int vocab_size;  /* V */
    int dim;         /* C */
    int n_layers;    /* L */
    int n_heads;     /* NH */
    int n_kv_heads;  /* NKV, divides NH */
    int mlp_dim;     /* SwiGLU hidden width */
    int max_seq_len; /* RoPE table length */
    float rope_theta;
    lethe_rope_scaling rope; /* zero: no scaling */
    float norm_eps;
    int tie_embeddings; /* bool */
    float init_std;
    uint64_t init_seed;
} lethe_model_config;

/* optim.schedule: "constant" | "linear" | "cosine" (the decay after the warm-up) */
typedef enum { SCHEDULE_CONSTANT, SCHEDULE_LINEAR, SCHEDULE_COSINE } lethe_schedule;
/* optim.on_nonfinite: "stop" (end the job) | "skip" (drop the step's update) */
typedef enum { NONFINITE_STOP, NONFINITE_SKIP } lethe_on_nonfinite;

typedef struct {
    lethe_schedule schedule;
    float lr;
    float min_lr; /* floor of the decay */
    int warmup_steps;
    float beta1, beta2, eps;
    float weight_decay;
    float grad_clip; /* global-norm clip; 0 disables */
    lethe_on_nonfinite on_nonfinite;
    int shard_update; /* dp > 1: each replica updates its 1/dp share of the weights */
} lethe_optim_config;

/* unlearn.method: "ga" | "graddiff" | "npo" | "simnpo" | "wga" | "satimp" | "ceu" |
 * "undial" | "rmu" | "idknll" | "dpo" | "idkdpo" | "pdu" (model/objectives.h; rmu:
 * model/rmu.h; the pairs: model/objective_pairs.h) */
typedef enum {
    METHOD_GA,
    METHOD_GRADDIFF,
    METHOD_NPO,
    METHOD_SIMNPO,
    METHOD_WGA,
    METHOD_SATIMP,
    METHOD_CEU,
    METHOD_UNDIAL,
    METHOD_RMU,
    METHOD_IDKNLL,
    METHOD_DPO,
    METHOD_IDKDPO,
    METHOD_PDU
} lethe_method;
/* unlearn.retain_loss: "nll" (token-mean NLL) | "kl" (token-mean KL(initial || current)) */
typedef enum { RETAIN_NLL, RETAIN_KL } lethe_retain_loss;

#endif
