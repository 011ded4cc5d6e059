/* io/config_keys.c — the schema table (one row per key: type, field, default, range,
 * description), key lookups, the formatting of values and ranges for messages and
 * --help, the defaults, and the presets selected by unlearn.preset. */
#define _POSIX_C_SOURCE 200809L

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_impl.h"

/* ------------------------------------------------------------------------ */
/* The schema: one row per key. */

/* clang-format off */
/* The size test turns a row that points at a field of the wrong width into a
 * compile error (negative array size). */
#define FIELD(f, T)                                                                                \
    offsetof(lethe_config, f) +                                                                    \
        0 * sizeof(char[sizeof(((lethe_config *)0)->f) == sizeof(T) ? 1 : -1]),                    \
        sizeof(((lethe_config *)0)->f)
#define SFIELD(f) offsetof(lethe_config, f), sizeof(((lethe_config *)0)->f)

#define K_INT(k, f, d, lo, hi, desc) {k, T_INT, FIELD(f, int), d, NULL, lo, hi, 0, 0, NULL, desc}
#define K_U64(k, f, d, desc) {k, T_U64, FIELD(f, uint64_t), d, NULL, 0, 0, 0, 0, NULL, desc}
#define K_FLT(k, f, d, lo, lo_open, hi, hi_open, desc)                                             \
    {k, T_FLOAT, FIELD(f, float), d, NULL, lo, hi, lo_open, hi_open, NULL, desc}
#define K_BOOL(k, f, d, desc) {k, T_BOOL, FIELD(f, int), d, NULL, 0, 1, 0, 0, NULL, desc}
#define K_STR(k, f, d, minlen, desc) {k, T_STRING, SFIELD(f), 0, d, minlen, 0, 0, 0, NULL, desc}
#define K_ENUM(k, f, d, choices, desc) {k, T_ENUM, SFIELD(f), 0, d, 0, 0, 0, 0, choices, desc}
#define K_CHOICE(k, f, d, choices, desc)                                                           \
    {k, T_CHOICE, FIELD(f, int), 0, d, 0, 0, 0, 0, choices, desc}

/* clang-format on */

#define CLOSED 0
#define OPEN 1
#define M20 (1 << 20)
#define G9 1e9

const key_def SCHEMA[] = {
    K_INT("model.vocab_size", model.vocab_size, 512, 1, M20, "vocabulary size V"),
    K_INT("model.dim", model.dim, 64, 1, 65536, "model width C"),
    K_INT("model.n_layers", model.n_layers, 2, 1, 1024, "transformer blocks L"),
    K_INT("model.n_heads", model.n_heads, 4, 1, 4096, "attention (query) heads"),
    K_INT("model.n_kv_heads", model.n_kv_heads, 2, 1, 4096,
          "key/value heads (grouped-query attention); divides n_heads"),
    K_INT("model.mlp_dim", model.mlp_dim, 172, 1, M20, "SwiGLU hidden width"),
    K_INT("model.max_seq_len", model.max_seq_len, 64, 1, M20, "RoPE table length"),
    K_FLT("model.rope_theta", model.rope_theta, 10000, 0, OPEN, 1e9, CLOSED, "RoPE base"),
    K_CHOICE("model.rope_type", model.rope.type, "none", "none|llama3",
             "RoPE frequency scaling: none, or Llama 3.1's (the four keys below)"),
    K_FLT("model.rope_factor", model.rope.factor, 8, 1, CLOSED, 1e6, CLOSED,
          "llama3: context extension factor"),
    K_FLT("model.rope_low_freq_factor", model.rope.low_freq_factor, 1, 0, OPEN, 1e6, CLOSED,
          "llama3: wavelengths above original_max_seq_len / this are scaled by 1/factor"),
    K_FLT("model.rope_high_freq_factor", model.rope.high_freq_factor, 4, 0, OPEN, 1e6, CLOSED,
          "llama3: wavelengths below original_max_seq_len / this are kept"),
    K_INT("model.rope_original_max_seq_len", model.rope.original_max_seq_len, 8192, 1, M20 * 64,
          "llama3: the pre-training context length"),
    K_FLT("model.norm_eps", model.norm_eps, 1e-5, 0, OPEN, 1, CLOSED, "RMSNorm epsilon"),
    K_BOOL("model.tie_embeddings", model.tie_embeddings, 0, "LM head shares the token embedding"),
    K_FLT("model.init_std", model.init_std, 0.02, 0, OPEN, 10, CLOSED,
          "standard deviation of the initial weights"),
    K_U64("model.init_seed", model.init_seed, 1234, "seed of the initial weights"),

    K_INT("layout.dp", layout.dp, 1, 1, 4096, "data-parallel replicas"),
    K_INT("layout.pp", layout.pp, 1, 1, 4096, "pipeline stages"),
    K_INT("layout.tp", layout.tp, 1, 1, 4096, "tensor-parallel ranks"),
    K_INT("layout.micro_batches", layout.micro_batches, 1, 1, 65536,
          "micro-batches per replica per step"),

    K_CHOICE("optim.schedule", optim.schedule, "cosine", "constant|linear|cosine",
             "learning-rate schedule after warm-up"),
    K_FLT("optim.lr", optim.lr, 3e-3, 0, OPEN, 10, CLOSED, "peak learning rate"),
    K_FLT("optim.min_lr", optim.min_lr, 3e-4, 0, CLOSED, 10, CLOSED,
          "floor of the decay; <= optim.lr"),
    K_INT("optim.warmup_steps", optim.warmup_steps, 10, 0, G9, "linear warm-up steps"),
    K_FLT("optim.beta1", optim.beta1, 0.9, 0, CLOSED, 1, OPEN, "AdamW first-moment decay"),
    K_FLT("optim.beta2", optim.beta2, 0.95, 0, CLOSED, 1, OPEN, "AdamW second-moment decay"),
    K_FLT("optim.eps", optim.eps, 1e-8, 0, OPEN, 1, CLOSED, "AdamW epsilon"),
    K_FLT("optim.weight_decay", optim.weight_decay, 0.1, 0, CLOSED, 100, CLOSED,
          "decoupled weight decay"),
    K_FLT("optim.grad_clip", optim.grad_clip, 1.0, 0, CLOSED, 1e6, CLOSED,
          "global gradient-norm clip; 0 disables"),
    K_CHOICE("optim.on_nonfinite", optim.on_nonfinite, "stop", "stop|skip",
             "a NaN/Inf loss or gradient: stop the job (last checkpoint kept) or skip the step"),
    K_BOOL("optim.shard_update", optim.shard_update, 1,
           "dp > 1: each replica updates 1/dp of the weights (gradient reduce-scatter, "
           "weight all-gather: the bytes of one all-reduce)"),

    K_ENUM("data.source", data.source, "synthetic-markov", "synthetic-markov|hdf5",
           "token source: deterministic Markov stream from data.seed, or data.path"),
    K_STR("data.path", data.path, "", 0, "HDF5 token dataset (see io/DATASETS.md)"),
    K_STR("data.split", data.split, "retain", 1, "train: split to fine-tune on"),
    K_STR("data.forget_split", data.forget_split, "forget", 1, "unlearn: the forget split"),
    K_STR("data.retain_split", data.retain_split, "retain", 1, "unlearn: the retain split"),
    K_STR("data.alternate_split", data.alternate_split, "", 0,
          "unlearn idknll, dpo, idkdpo: the forget questions' alternate (preferred) answers, "
          "row for row as the forget split (\"\": <forget_split>_idk; dpo needs one)"),
    K_BOOL("data.prefetch", data.prefetch, 1, "read the next batch ahead while computing"),
    K_U64("data.seed", data.seed, 7, "seed of the synthetic data"),
    K_INT("data.prompt_len", data.prompt_len, 4, 0, M20,
          "tokens masked from the loss at the start of each sequence"),
    K_INT("data.min_len", data.min_len, 24, 1, M20, "shortest sequence; <= train.seq_len"),
    K_INT("data.branching", data.branching, 4, 1, M20,
          "successors per token of the synthetic Markov chain"),

    K_INT("train.steps", train.steps, 100, 1, G9, "optimizer steps"),
    K_INT("train.batch_size", train.batch_size, 8, 1, M20, "global sequences per step"),
    K_INT("train.seq_len", train.seq_len, 64, 1, M20, "sequence length T"),
    K_U64("train.seed", train.seed, 42, "seed of batch sampling"),
    K_INT("train.log_every", train.log_every, 10, 1, G9, "steps between log lines"),

    K_INT("bench.warmup", bench.warmup, 2, 0, 1000000, "untimed steps"),
    K_INT("bench.steps", bench.steps, 5, 1, 1000000, "timed steps (median reported)"),

    K_STR("output.dir", output.dir, "runs/train", 1, "output folder"),

    K_ENUM("unlearn.preset", unlearn.preset, "none", "none|tofu-forget05|tofu-forget10|tofu-npo",
           "reference settings (keys given explicitly win)"),
    K_CHOICE("unlearn.method", unlearn.method, "simnpo",
             "ga|graddiff|npo|simnpo|wga|satimp|ceu|undial|rmu|idknll|dpo|idkdpo|pdu",
             "unlearning objective (rmu: hidden states at unlearn.rmu_layer; idknll: NLL on "
             "IdK answers; dpo, idkdpo: preference of data.alternate_split's answer over the "
             "forget answer; pdu: primal-dual, retain constraint unlearn.pdu.eps)"),
    K_CHOICE("unlearn.retain_loss", unlearn.retain_loss, "nll", "nll|kl",
             "retain term: token-mean NLL, or token-mean KL(initial model || current)"),
    K_FLT("unlearn.beta", unlearn.beta, 2.5, 0, OPEN, 1000, CLOSED,
          "inverse temperature (npo, simnpo, dpo, idkdpo); exponent of p in the token weight (wga, "
          "satimp); what the true token's logit loses (undial)"),
    K_FLT("unlearn.beta2", unlearn.beta2, 1, 0, CLOSED, 1000, CLOSED,
          "satimp: exponent of (1 - p) in the token weight"),
    K_FLT("unlearn.gamma", unlearn.gamma, 0, -100, CLOSED, 100, CLOSED,
          "SimNPO margin (nats per token)"),
    K_FLT("unlearn.c_f", unlearn.c_f, 0.1375, 0, CLOSED, 1000, CLOSED, "forget-loss weight"),
    K_FLT("unlearn.c_r", unlearn.c_r, 1, 0, CLOSED, 1000, CLOSED, "retain-loss weight"),
    K_INT("unlearn.epochs", unlearn.epochs, 10, 1, 1000000, "passes over the forget split"),
    K_FLT("unlearn.warmup_epochs", unlearn.warmup_epochs, 1, 0, CLOSED, 1000000, CLOSED,
          "linear warm-up length in epochs"),
    K_INT("unlearn.batch_size", unlearn.batch_size, 32, 1, M20, "forget sequences per step"),
    K_INT("unlearn.retain_batch_size", unlearn.retain_batch_size, 32, 0, M20,
          "retain sequences per step"),
    K_INT("unlearn.rmu_layer", unlearn.rmu_layer, 7, 0, 1023,
          "rmu: the block (0-based, below model.n_layers) whose output h is steered; loss "
          "c_f * MSE(h_forget, c*u) + c_r * MSE(h_retain, h of the starting model)"),
    K_INT("unlearn.rmu_span", unlearn.rmu_span, 3, 1, 1024,
          "rmu: blocks rmu_layer-span+1 .. rmu_layer (from block 0) train mlp.down_proj; "
          "nothing else moves"),
    K_FLT("unlearn.rmu_steering", unlearn.rmu_steering, 20, 0, OPEN, 1e6, CLOSED,
          "rmu: steering coefficient c (u: a fixed random unit vector from train.seed)"),
    K_FLT("unlearn.pdu.eps", unlearn.pdu_eps, 0, 0, CLOSED, 1e6, CLOSED,
          "pdu: the retain constraint L_r <= eps (token-mean retain loss, nats)"),
    K_FLT("unlearn.pdu.dual_lr", unlearn.pdu_dual_lr, 1, 0, CLOSED, 1e6, CLOSED,
          "pdu: dual step size eta, lambda <- max(0, lambda + eta (L_r - eps)) each step"),
    K_FLT("unlearn.pdu.lambda0", unlearn.pdu_lambda0, 1, 0, CLOSED, 1e6, CLOSED,
          "pdu: the dual variable's start (the retain term's first weight)"),
    K_INT("unlearn.pdu.dual_warmup_epochs", unlearn.pdu_dual_warmup_epochs, 0, 0, 1000000,
          "pdu: epochs of the forget split before lambda moves"),
    K_FLT("unlearn.wagle.p", unlearn.wagle_p, 0, 0, CLOSED, 1, OPEN,
          "WAGLE (graddiff, npo, simnpo): fraction of the weights kept by the attribution "
          "mask, the paper's 0.8-0.95 (0: off)"),
    K_FLT("unlearn.wagle.mu", unlearn.wagle_mu, 1e-6, 0, OPEN, 1e6, CLOSED,
          "WAGLE: score |(theta - grad L_r / mu) * grad L_f| (the paper's 1e-6)"),
    K_INT("unlearn.wagle.batches", unlearn.wagle_batches, 1, 1, 1000000,
          "WAGLE: forget and retain batches whose gradients score the weights"),

    K_STR("init.checkpoint", init.checkpoint, "", 0,
          "lethe checkpoint to start from (empty: initialise from model.init_seed)"),
    K_INT("checkpoint.every", checkpoint.every, 0, 0, G9,
          "steps between checkpoints (0: only at the end)"),
    K_BOOL("checkpoint.resume", checkpoint.resume, 1,
           "continue from output.dir/checkpoint.h5 when it exists (requeued jobs)"),

    K_STR("eval.forget_split", eval.forget_split, "forget05", 0, "split evaluated as forget set"),
    K_STR("eval.retain_split", eval.retain_split, "retain95", 0, "split evaluated as retain set"),
    K_STR("eval.utility_splits", eval.utility_splits, "eval/utility_a,eval/utility_b", 0,
          "comma-separated utility sets"),
    K_STR("eval.holdout_split", eval.holdout_split, "holdout", 0,
          "non-member split for the Min-K% membership attack (empty: none)"),
    K_STR("eval.reference", eval.reference, "", 0,
          "eval folder of the retrained model (forget quality, PrivLeak, prob gap)"),
    K_INT("eval.max_rows", eval.max_rows, 0, 0, G9, "rows evaluated per split (0: all)"),
    K_INT("eval.batch_size", eval.batch_size, 16, 1, M20, "rows per forward pass"),
    K_BOOL("eval.generate", eval.generate, 1, "greedy generations for ROUGE-L"),
    K_INT("eval.max_new_tokens", eval.max_new_tokens, 0, 0, M20,
          "generated tokens per row (0: up to the row length)"),
    K_FLT("eval.min_k", eval.min_k, 40, 0, OPEN, 100, CLOSED, "Min-K% score percentage"),
    K_INT("eval.gen_batch", eval.gen_batch, 8, 1, 1024,
          "greedy generations run at once per replica, one row each of every product (at most "
          "eval.batch_size / dp is used; the tokens do not depend on it)"),

    K_INT("relearn.samples", relearn.samples, 8, 1, G9, "forget samples the attack trains on"),
    K_INT("relearn.steps", relearn.steps, 20, 1, G9, "attack fine-tuning steps"),
    K_INT("relearn.eval_every", relearn.eval_every, 5, 1, G9, "steps between evaluations"),
    K_STR("relearn.k", relearn.k, "", 0,
          "comma-separated steps at which the attack is evaluated and recorded (k axis of the "
          "sweep); the run goes to the largest (empty: every relearn.eval_every steps to "
          "relearn.steps)"),
    K_STR("relearn.sweep_samples", relearn.sweep_samples, "", 0,
          "sweep: comma-separated sample counts"),
    K_STR("relearn.sweep_lr", relearn.sweep_lr, "", 0, "sweep: comma-separated learning rates"),
    K_STR("relearn.sweep_seeds", relearn.sweep_seeds, "", 0, "sweep: comma-separated seeds"),

    K_ENUM("synth.kind", synth.kind, "authors", "authors|markov", "built-in data set to generate"),
    K_U64("synth.seed", synth.seed, 2024, "seed of the generated data"),
    K_STR("synth.output", synth.output, "data/authors.h5", 1, "HDF5 dataset to write"),
    K_BOOL("synth.write_jsonl", synth.write_jsonl, 0, "also write TOFU-style JSON lines"),
    K_INT("synth.n_authors", synth.n_authors, 100, 10, 1000000, "fictitious authors N"),
    K_INT("synth.questions", synth.questions, 8, 1, 64, "questions per author Q"),
    K_INT("synth.perturbed", synth.perturbed, 5, 1, 64, "perturbed answers per question K"),
    K_INT("synth.holdout_authors", synth.holdout_authors, 10, 1, 1000000,
          "authors never trained on (membership holdout)"),
    K_INT("synth.utility_facts", synth.utility_facts, 40, 1, 1000000,
          "facts in each of the two utility sets"),
    K_INT("synth.seq_len", synth.seq_len, 48, 8, M20, "tokens per row T"),
    K_INT("synth.markov_retain", synth.markov_retain, 2000, 1, 100000000,
          "markov: sequences per split"),
    K_INT("synth.markov_len_long", synth.markov_len_long, 40, 2, M20,
          "markov: length of retain and forget-1 sequences"),
    K_INT("synth.markov_len_short", synth.markov_len_short, 10, 2, M20,
          "markov: length of forget-2 sequences"),
    K_FLT("synth.markov_leak", synth.markov_leak, 0.2, 0, CLOSED, 1, OPEN,
          "markov: probability of leaving a chain's states"),
    K_BOOL("synth.difficulty", synth.difficulty, 0,
           "authors: answers of mixed length and word rarity, bucket per row"),
    K_INT("synth.tail_short", synth.tail_short, 2, 1, 1000,
          "authors, difficulty: words added to a short answer"),
    K_INT("synth.tail_long", synth.tail_long, 12, 2, 1000,
          "authors, difficulty: words added to a long answer"),
    K_BOOL("synth.idk", synth.idk, 0,
           "authors: also forget01_idk, forget05_idk, forget10_idk, the forget questions "
           "answered \"I don't know\" (idknll, idkdpo)"),

    K_INT("threads", threads, 1, 1, 256, "OpenBLAS threads per rank"),

    K_ENUM("hf.torch_dtype", hf.torch_dtype, "float32", "float32|float16|bfloat16",
           "dtype of the Hugging Face weights imported (convert --to a folder writes it)"),
    K_INT("hf.bos_token_id", hf.bos_token_id, -1, -1, M20 * 64,
          "beginning-of-sequence id (-1: none)"),
    K_STR("hf.eos_token_id", hf.eos_token_id, "", 0,
          "end-of-sequence id(s) as in config.json: an integer or a list (empty: none)"),
    K_INT("hf.pad_token_id", hf.pad_token_id, -1, -1, M20 * 64, "padding id (-1: none)"),
    K_STR("hf.source", hf.source, "", 0,
          "the Hugging Face folder imported (its tokenizer files are copied on export)"),
    K_STR("hf.tensor_dtypes", hf.tensor_dtypes, "", 0,
          "tensors imported in a dtype other than torch_dtype, as name=F32,... (export keeps it)"),
};

int config_key_count(void)
{
    return (int)(sizeof SCHEMA / sizeof SCHEMA[0]);
}

const char *config_key_name(int i)
{
    return i >= 0 && i < N_KEYS ? SCHEMA[i].name : NULL;
}

const key_def *cf_find_key(const char *name)
{
    for (int i = 0; i < N_KEYS; i++)
        if (strcmp(SCHEMA[i].name, name) == 0) return &SCHEMA[i];
    return NULL;
}

/* A section is a proper dotted prefix of some key ("model"). "" is the root. */
int cf_is_section(const char *path)
{
    size_t n = strlen(path);
    if (n == 0) return 1;
    for (int i = 0; i < N_KEYS; i++)
        if (strncmp(SCHEMA[i].name, path, n) == 0 && SCHEMA[i].name[n] == '.') return 1;
    return 0;
}

void *cf_field(lethe_config *c, const key_def *k)
{
    return (char *)c + k->off;
}

const void *cf_cfield(const lethe_config *c, const key_def *k)
{
    return (const char *)c + k->off;
}

/* ------------------------------------------------------------------------ */
/* Formatting helpers. */

/* Shortest "%.*g" that reads back as v. */
void cf_fmt_double(char *buf, size_t n, double v)
{
    if (isnan(v)) {
        snprintf(buf, n, "nan");
        return;
    }
    if (isinf(v)) {
        snprintf(buf, n, v > 0 ? "inf" : "-inf");
        return;
    }
    if (v == floor(v) && fabs(v) < 1e7) {
        snprintf(buf, n, "%.0f", v);
        return;
    }
    for (int p = 1; p <= 17; p++) {
        snprintf(buf, n, "%.*g", p, v);
        if (strtod(buf, NULL) == v) break;
    }
    /* "1e+09" -> "1e9", "1e-05" -> "1e-5": easier to read in ranges and messages. */
    char *e = strchr(buf, 'e');
    if (e) {
        char *d = e + 1, *s = e + 1;
        if (*s == '+')
            s++;
        else if (*s == '-')
            *d++ = *s++;
        while (*s == '0' && s[1]) s++;
        memmove(d, s, strlen(s) + 1);
    }
}

/* The double with the shortest decimal form that still converts back to f, so
 * 3e-3f is written "0.003" rather than "0.0030000000260770321". */
double cf_float_to_short_double(float f)
{
    char buf[32];
    for (int p = 1; p <= 9; p++) {
        snprintf(buf, sizeof buf, "%.*g", p, (double)f);
        double d = strtod(buf, NULL);
        if ((float)d == f) return d;
    }
    return (double)f;
}

/* Copies s into dst as a printable single-line excerpt: quotes, backslashes and
 * control bytes escaped, cut after maxc characters with "...". */
void cf_escape(char *dst, size_t n, const char *s, size_t maxc)
{
    size_t o = 0, i = 0;
    if (n == 0) return;
    for (; s[i] && i < maxc; i++) {
        unsigned char ch = (unsigned char)s[i];
        char tmp[8];
        if (ch == '"' || ch == '\\')
            snprintf(tmp, sizeof tmp, "\\%c", ch);
        else if (ch == '\n')
            snprintf(tmp, sizeof tmp, "\\n");
        else if (ch == '\t')
            snprintf(tmp, sizeof tmp, "\\t");
        else if (ch < 0x20 || ch == 0x7f)
            snprintf(tmp, sizeof tmp, "\\x%02x", ch);
        else {
            tmp[0] = (char)ch;
            tmp[1] = 0;
        }
        size_t l = strlen(tmp);
        if (o + l + 4 >= n) break;
        memcpy(dst + o, tmp, l);
        o += l;
    }
    if (s[i] && o + 3 < n) {
        memcpy(dst + o, "...", 3);
        o += 3;
    }
    dst[o] = 0;
}

/* What a JSON value is, for "got ..." in messages. */
void cf_describe(char *buf, size_t n, const cJSON *v)
{
    if (cJSON_IsNumber(v)) {
        if (isfinite(v->valuedouble))
            cf_fmt_double(buf, n, v->valuedouble);
        else
            snprintf(buf, n, "a number beyond the range of a double");
    } else if (cJSON_IsString(v)) {
        char e[160];
        cf_escape(e, sizeof e, v->valuestring, 64);
        snprintf(buf, n, "\"%s\"", e);
    } else if (cJSON_IsTrue(v))
        snprintf(buf, n, "true");
    else if (cJSON_IsFalse(v))
        snprintf(buf, n, "false");
    else if (cJSON_IsNull(v))
        snprintf(buf, n, "null");
    else if (cJSON_IsObject(v))
        snprintf(buf, n, "an object");
    else if (cJSON_IsArray(v))
        snprintf(buf, n, "an array");
    else
        snprintf(buf, n, "an invalid value");
}

void cf_fmt_range(char *buf, size_t n, const key_def *k)
{
    char lo[32], hi[32];
    cf_fmt_double(lo, sizeof lo, k->lo);
    cf_fmt_double(hi, sizeof hi, k->hi);
    switch (k->type) {
    case T_INT: snprintf(buf, n, "[%s, %s]", lo, hi); break;
    case T_U64: snprintf(buf, n, "[0, 18446744073709551615]"); break;
    case T_FLOAT:
        snprintf(buf, n, "%c%s, %s%c", k->lo_open ? '(' : '[', lo, hi, k->hi_open ? ')' : ']');
        break;
    case T_BOOL: snprintf(buf, n, "true|false"); break;
    case T_STRING: snprintf(buf, n, "%s to %zu characters", lo, k->cap - 1); break;
    case T_ENUM:
    case T_CHOICE: snprintf(buf, n, "%s", k->choices); break;
    }
}

void cf_fmt_expected(char *buf, size_t n, const key_def *k)
{
    char r[128];
    cf_fmt_range(r, sizeof r, k);
    switch (k->type) {
    case T_INT: snprintf(buf, n, "an integer in %s", r); break;
    case T_U64:
        snprintf(buf, n,
                 "an integer in %s (a JSON number below 2^53 = 9007199254740992, or a decimal "
                 "string)",
                 r);
        break;
    case T_FLOAT: snprintf(buf, n, "a number in %s", r); break;
    case T_BOOL: snprintf(buf, n, "true or false"); break;
    case T_STRING: snprintf(buf, n, "a string of %s, no control characters", r); break;
    case T_ENUM:
    case T_CHOICE: snprintf(buf, n, "one of %s", r); break;
    }
}

void cf_fmt_value(char *buf, size_t n, const lethe_config *c, const key_def *k)
{
    const void *p = cf_cfield(c, k);
    switch (k->type) {
    case T_INT: snprintf(buf, n, "%d", *(const int *)p); break;
    case T_U64: snprintf(buf, n, "%llu", (unsigned long long)*(const uint64_t *)p); break;
    case T_FLOAT: cf_fmt_double(buf, n, cf_float_to_short_double(*(const float *)p)); break;
    case T_BOOL: snprintf(buf, n, "%s", *(const int *)p ? "true" : "false"); break;
    case T_STRING: snprintf(buf, n, "\"%s\"", (const char *)p); break;
    case T_ENUM: snprintf(buf, n, "%s", (const char *)p); break;
    case T_CHOICE: cf_choice_name(buf, n, k->choices, *(const int *)p); break;
    }
}

const char *cf_type_name(key_type t)
{
    switch (t) {
    case T_INT: return "int";
    case T_U64: return "uint64";
    case T_FLOAT: return "float";
    case T_BOOL: return "bool";
    case T_STRING: return "string";
    case T_ENUM:
    case T_CHOICE: return "enum";
    }
    return "?";
}

/* ------------------------------------------------------------------------ */
/* Defaults. */

void cf_set_string(char *dst, size_t cap, const char *s)
{
    /* Zero the whole buffer so two configs with the same strings compare equal
     * byte for byte. */
    memset(dst, 0, cap);
    size_t l = strlen(s);
    if (l >= cap) l = cap - 1;
    memcpy(dst, s, l);
}

/* The position of name among the '|'-separated names of choices, or -1. */
int cf_choice_index(const char *choices, const char *name)
{
    size_t l = strlen(name);
    for (int i = 0; *choices; i++) {
        size_t cl = strcspn(choices, "|");
        if (cl == l && strncmp(choices, name, l) == 0) return i;
        choices += cl + (choices[cl] == '|');
    }
    return -1;
}

/* The name at position index of choices ("" outside them). */
void cf_choice_name(char *buf, size_t n, const char *choices, int index)
{
    for (int i = 0; i < index && *choices; i++) {
        choices += strcspn(choices, "|");
        choices += *choices == '|';
    }
    snprintf(buf, n, "%.*s", index < 0 ? 0 : (int)strcspn(choices, "|"), choices);
}

void config_defaults(lethe_config *c)
{
    memset(c, 0, sizeof *c);
    for (int i = 0; i < N_KEYS; i++) {
        const key_def *k = &SCHEMA[i];
        void *p = cf_field(c, k);
        switch (k->type) {
        case T_INT:
        case T_BOOL: *(int *)p = (int)k->def; break;
        case T_U64: *(uint64_t *)p = (uint64_t)k->def; break;
        case T_FLOAT: *(float *)p = (float)k->def; break;
        case T_STRING:
        case T_ENUM: cf_set_string(p, k->cap, k->sdef); break;
        case T_CHOICE: *(int *)p = cf_choice_index(k->choices, k->sdef); break;
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Presets: reference settings selected by unlearn.preset. A preset fills only
 * keys the file and the overrides leave unset, so every value stays overridable. */

typedef struct {
    const char *name;
    const char *pairs[16]; /* "key=JSON value", NULL-terminated */
} preset_def;

/* The SimNPO authors' TOFU settings: AdamW lr 1e-5, weight decay 0.01, 10 epochs,
 * one warm-up epoch then linear decay, effective batch 32 (forget and retain). */
#define TOFU_COMMON                                                                                \
    "unlearn.epochs=10", "unlearn.warmup_epochs=1", "unlearn.batch_size=32",                       \
        "unlearn.retain_batch_size=32", "optim.lr=1e-5", "optim.min_lr=0",                         \
        "optim.weight_decay=0.01", "optim.schedule=\"linear\"", "unlearn.c_r=1"
static const preset_def PRESETS[] = {
    {"tofu-forget05",
     {TOFU_COMMON, "unlearn.method=\"simnpo\"", "unlearn.beta=2.5", "unlearn.c_f=0.1375",
      "unlearn.gamma=0", NULL}},
    {"tofu-forget10",
     {TOFU_COMMON, "unlearn.method=\"simnpo\"", "unlearn.beta=4.5", "unlearn.c_f=0.125",
      "unlearn.gamma=0", NULL}},
    {"tofu-npo",
     {TOFU_COMMON, "unlearn.method=\"npo\"", "unlearn.beta=0.1", "unlearn.c_f=1", NULL}},
};

static cJSON *child_object(cJSON *parent, const char *name)
{
    cJSON *o = cJSON_GetObjectItemCaseSensitive(parent, name);
    if (!o) o = cJSON_AddObjectToObject(parent, name);
    return cJSON_IsObject(o) ? o : NULL;
}

int cf_apply_preset(ctx *x, cJSON *root)
{
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(root, "unlearn");
    const cJSON *p = u ? cJSON_GetObjectItemCaseSensitive(u, "preset") : NULL;
    if (!cJSON_IsString(p) || !strcmp(p->valuestring, "none")) return 0;
    for (size_t i = 0; i < sizeof PRESETS / sizeof PRESETS[0]; i++) {
        if (strcmp(PRESETS[i].name, p->valuestring)) continue;
        for (const char *const *kv = PRESETS[i].pairs; *kv; kv++) {
            char key[64];
            const char *eq = strchr(*kv, '=');
            snprintf(key, sizeof key, "%.*s", (int)(eq - *kv), *kv);
            char *dot = strchr(key, '.');
            *dot = 0;
            cJSON *sec = child_object(root, key);
            if (!sec) return 0; /* a non-object section: walk() reports it */
            if (cJSON_GetObjectItemCaseSensitive(sec, dot + 1)) continue;
            cJSON *v = cJSON_Parse(eq + 1);
            if (!v) return cf_fail(x, "internal: preset value '%s' does not parse", *kv);
            cJSON_AddItemToObject(sec, dot + 1, v);
        }
        return 0;
    }
    return 0; /* unknown names are reported by the enum check */
}
