/* io/config.h — job configuration: JSON (cJSON) -> typed struct with defaults.
 *
 * Every key is declared once in a schema table (io/config_keys.c) with its type,
 * default, range or allowed values; parsing rejects unknown keys, wrong types,
 * out-of-range values and broken cross-field rules with one line naming the
 * key, the value and what was expected. `--set a.b=value` overrides are applied
 * to the JSON tree before validation. The resolved config (defaults filled in,
 * overrides applied) can be written back as JSON. What the model reads (its shape,
 * the optimizer, the unlearning method) lands in the structs and enums of
 * model/model_config.h: a name such as "cosine" is turned into its enum value here,
 * once. No MPI here: callers parse on every rank and agree on the verdict with
 * lethe_check. */
#ifndef LETHE_CONFIG_H
#define LETHE_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "../model/model_config.h"

typedef struct {
    int dp, pp, tp;
    int micro_batches; /* per replica per step; divides batch_size / dp */
} lethe_layout_config;

typedef struct {
    char source[32]; /* "synthetic-markov" (deterministic token stream from a seed) | "hdf5" */
    char path[512];  /* HDF5 token dataset (source "hdf5", and every unlearning job) */
    char split[64];  /* train: the split to fine-tune on */
    char forget_split[64];
    char retain_split[64];
    int prefetch; /* read the next batch ahead in a thread */
    uint64_t seed;
    int prompt_len;           /* tokens masked from the loss at the start of each sequence */
    int min_len;              /* sequences have lengths in [min_len, seq_len] */
    int branching;            /* synthetic Markov chain: successors per token */
    char alternate_split[64]; /* idknll, dpo, idkdpo: y_w per forget row ("": <forget>_idk) */
} lethe_data_config;

typedef struct {
    int steps;
    int batch_size; /* global sequences per step */
    int seq_len;    /* T, <= model.max_seq_len */
    uint64_t seed;
    int log_every;
} lethe_train_config;

typedef struct {
    int warmup; /* steps not timed */
    int steps;  /* timed steps (median reported) */
} lethe_bench_config;

typedef struct {
    char dir[512]; /* output folder */
} lethe_output_config;

typedef struct {
    char preset[32]; /* "none" | "tofu-forget05" | "tofu-forget10" | "tofu-npo" */
    lethe_method method;
    lethe_retain_loss retain_loss;
    float beta, gamma, c_f, c_r;
    float beta2;             /* satimp: exponent of (1 - p) */
    int epochs;              /* passes over the forget split */
    float warmup_epochs;     /* linear warm-up, in epochs of the forget split */
    int batch_size;          /* forget sequences per step (global) */
    int retain_batch_size;   /* retain sequences per step (global; unused by ga) */
    int rmu_layer, rmu_span; /* rmu: the steered block; blocks trained (down_proj), ending there */
    float rmu_steering;      /* rmu: the steering coefficient c */
    /* pdu: the retain constraint L_r <= pdu_eps, the dual step size, the dual
     * variable's start, and the epochs before the dual variable moves */
    float pdu_eps, pdu_dual_lr, pdu_lambda0;
    int pdu_dual_warmup_epochs;
    /* wagle: the kept fraction of the weights (0: off), the retain gradient's 1/mu, and
     * the forget/retain batch pairs whose gradients score the weights */
    float wagle_p, wagle_mu;
    int wagle_batches;
} lethe_unlearn_config;

typedef struct {
    char checkpoint[512]; /* lethe checkpoint to start from ("" = initialise from the seed) */
} lethe_init_config;

typedef struct {
    char forget_split[64];    /* role "forget": forget quality, truth ratio min(R, 1/R) */
    char retain_split[64];    /* role "retain" */
    char utility_splits[256]; /* comma-separated utility sets (never forgotten) */
    char holdout_split[64];   /* non-members for the membership attack ("" = none) */
    char reference[512];      /* eval output folder of the retrained model ("" = none) */
    int max_rows;             /* rows evaluated per split (0: all) */
    int batch_size;           /* rows per forward pass (global) */
    int generate;             /* greedy generations for ROUGE */
    int max_new_tokens;       /* 0: up to the row length */
    float min_k;              /* Min-K% membership score, percent */
    int gen_batch;            /* sequences generated at once per replica */
} lethe_eval_config;

typedef struct {
    int samples;             /* n: forget samples the attacker fine-tunes on */
    int steps;               /* k */
    int eval_every;          /* evaluate the forget metrics every this many steps */
    char k[128];             /* comma-separated evaluation steps ("" = eval_every, steps) */
    char sweep_samples[128]; /* sweep: comma-separated n values ("" = just samples) */
    char sweep_lr[128];      /* sweep: comma-separated learning rates ("" = optim.lr) */
    char sweep_seeds[128];   /* sweep: comma-separated seeds ("" = train.seed) */
} lethe_relearn_config;

typedef struct {
    char kind[16]; /* "authors" (TOFU-shaped) | "markov" (chain mixture) */
    uint64_t seed;
    char output[512];     /* the HDF5 dataset written */
    int write_jsonl;      /* also write TOFU-style JSON lines beside it */
    int n_authors;        /* authors: N */
    int questions;        /* authors: Q question templates per author */
    int perturbed;        /* authors: K perturbed answers per question */
    int holdout_authors;  /* authors: never trained on (membership holdout) */
    int utility_facts;    /* authors: facts in each of the two utility sets */
    int seq_len;          /* T: rows are padded to this length */
    int markov_retain;    /* markov: sequences per split */
    int markov_len_long;  /* markov: length of forget chain 1 (and retain) sequences */
    int markov_len_short; /* markov: length of forget chain 2 sequences */
    float markov_leak;    /* markov: probability of leaving a chain's states */
    int difficulty;       /* authors: answers of mixed length and word rarity (buckets) */
    int tail_short;       /* authors, difficulty: words added to a short answer */
    int tail_long;        /* authors, difficulty: words added to a long answer */
    int idk;              /* authors: forgetXX_idk splits, IdK answers (io/synth/synth_idk.c) */
} lethe_synth_config;

typedef struct {
    int every;  /* steps between checkpoints (0: only at the end) */
    int resume; /* continue from output.dir/checkpoint.h5 when it exists */
} lethe_checkpoint_config;

/* What a Hugging Face folder says beside the model (convert records it at import and
 * writes it back at export; jobs carry it with the model from a checkpoint). */
typedef struct {
    char torch_dtype[16];   /* "float32" | "float16" | "bfloat16" */
    int bos_token_id;       /* -1: none */
    char eos_token_id[256]; /* JSON text: an integer or a list of integers ("": none) */
    int pad_token_id;       /* -1: none */
    char source[512];       /* the folder imported from ("" if none) */
    char tensor_dtypes[4096]; /* "name=F32,..." tensors whose dtype is not torch_dtype's */
} lethe_hf_config;

typedef struct {
    lethe_model_config model;
    lethe_hf_config hf;
    lethe_layout_config layout;
    lethe_optim_config optim;
    lethe_data_config data;
    lethe_train_config train;
    lethe_bench_config bench;
    lethe_output_config output;
    lethe_unlearn_config unlearn;
    lethe_init_config init;
    lethe_checkpoint_config checkpoint;
    lethe_synth_config synth;
    lethe_eval_config eval;
    lethe_relearn_config relearn;
    int threads; /* OpenBLAS threads per rank */
} lethe_config;

/* Fills every field with its default. */
void config_defaults(lethe_config *c);

/* Parses JSON text (origin names the file in messages) with overrides
 * ("a.b=value", value parsed as JSON if it parses, else as a string).
 * Returns 0, or -1 with one line in err: "config 'f.json': key 'model.dim':
 * expected an integer in [1, 65536], got \"abc\"". */
int config_parse(lethe_config *c, const char *text, const char *origin, char **overrides,
                 int n_overrides, char *err, size_t errlen);
/* Reads the file then config_parse. path NULL or "-" is not allowed. */
int config_load(lethe_config *c, const char *path, char **overrides, int n_overrides, char *err,
                size_t errlen);
/* The same with a base config (JSON text, e.g. a checkpoint's stored config; base_origin
 * names it in messages: "checkpoint 'c.h5'"): its "model" and "hf" keys (not
 * model.init_*) fill the ones the file and overrides leave out, and a key they give that
 * differs from the base is refused naming the key and both values. base NULL: as
 * config_parse / config_load, except that with from_init a non-empty init.checkpoint
 * (after overrides) makes that checkpoint's stored /meta/config the base (read by this
 * rank alone; an unreadable checkpoint is an error naming init.checkpoint): every job
 * that starts from a checkpoint runs the model stored there. config_load_base takes path
 * NULL when base is given (no config file: defaults, overrides and the base). */
int config_parse_base(lethe_config *c, const char *text, const char *origin, char **overrides,
                      int n_overrides, const char *base, const char *base_origin, int from_init,
                      char *err, size_t errlen);
int config_load_base(lethe_config *c, const char *path, char **overrides, int n_overrides,
                     const char *base, const char *base_origin, int from_init, char *err,
                     size_t errlen);
/* Resolved config as JSON text (malloc'd; caller frees). */
char *config_to_json(const lethe_config *c);
/* Writes config_to_json to path via a temporary name and rename. 0 or -1 + err. */
int config_write(const lethe_config *c, const char *path, char *err, size_t errlen);
/* The first dotted key ("optim.lr") where JSON texts a and b differ (b's key order,
 * then keys only in a), with both values printed on one line (or "(absent)"), cut to
 * klen and vlen: 1 when they differ (or either is not JSON), 0 when equal. */
int config_json_diff(const char *a, const char *b, char *key, size_t klen, char *av, char *bv,
                     size_t vlen);
/* A printable one-line copy of a hostile string v (control bytes as '?', "..." when cut)
 * in buf of len bytes, for messages. */
void config_shown(const char *v, char *buf, size_t len);
/* The one wording of a model key that differs between where weights come from (origin: a
 * checkpoint, a Hugging Face config.json) and a job's config, for init.checkpoint, convert
 * and resume alike: "KEY is STORED in ORIGIN but MINE in this job's config; the weights
 * there need STORED". stored and mine are the values as JSON text (NULL: "(missing)"),
 * shown printable and cut. */
void config_model_conflict(char *buf, size_t len, const char *key, const char *stored,
                           const char *mine, const char *origin);
/* Prints every key with its type, default and range (for `lethe <job> --help`). */
void config_print_keys(void *file /* FILE* */);
/* The schema's keys in table order ("model.dim", ...), for tests and tools that
 * walk every key; config_key_name returns NULL outside [0, config_key_count()). */
int config_key_count(void);
const char *config_key_name(int i);

#endif
