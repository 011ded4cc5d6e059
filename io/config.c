/* io/config.c — the schema table and everything it drives: defaults, JSON
 * parsing and validation, --set overrides, cross-field rules, the resolved
 * config as JSON, and the key listing of --help. No MPI here. */
#define _POSIX_C_SOURCE 200809L

#include "config.h"

#include <cjson/cJSON.h>

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A config is a few hundred bytes; 16 MiB stops a wrong path (a dataset, a
 * checkpoint) from being slurped into memory on every rank. */
#define CONFIG_MAX_BYTES (16u << 20)
/* Seeds given as JSON numbers must be below 2^53: every integer there is a
 * double, and any literal from 2^53 + 1 up rounds to >= 2^53, so a seed that
 * the parser silently changed is refused rather than used. Larger seeds are
 * decimal strings. */
#define EXACT_DOUBLE_MAX 9007199254740991.0

#if defined(__GNUC__)
#define CFG_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define CFG_PRINTF(a, b)
#endif

/* ------------------------------------------------------------------------ */
/* The schema: one row per key. */

typedef enum { T_INT, T_U64, T_FLOAT, T_BOOL, T_STRING, T_ENUM } key_type;

typedef struct {
    const char *name; /* dotted path, e.g. "model.dim" */
    key_type type;
    size_t off;           /* offsetof(lethe_config, field) */
    size_t cap;           /* sizeof the field (string buffers: capacity incl. NUL) */
    double def;           /* default of int / uint64 / float / bool keys */
    const char *sdef;     /* default of string / enum keys */
    double lo, hi;        /* int / float range; string: minimum length in lo */
    int lo_open, hi_open; /* float bounds that exclude the endpoint */
    const char *choices;  /* enum: "a|b|c" */
    const char *desc;
} key_def;

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

/* clang-format on */

#define CLOSED 0
#define OPEN 1
#define M20 (1 << 20)
#define G9 1e9

static const key_def SCHEMA[] = {
    K_INT("model.vocab_size", model.vocab_size, 512, 1, M20, "vocabulary size V"),
    K_INT("model.dim", model.dim, 64, 1, 65536, "model width C"),
    K_INT("model.n_layers", model.n_layers, 2, 1, 1024, "transformer blocks L"),
    K_INT("model.n_heads", model.n_heads, 4, 1, 4096, "attention (query) heads"),
    K_INT("model.n_kv_heads", model.n_kv_heads, 2, 1, 4096,
          "key/value heads (grouped-query attention); divides n_heads"),
    K_INT("model.mlp_dim", model.mlp_dim, 172, 1, M20, "SwiGLU hidden width"),
    K_INT("model.max_seq_len", model.max_seq_len, 64, 1, M20, "RoPE table length"),
    K_FLT("model.rope_theta", model.rope_theta, 10000, 0, OPEN, 1e9, CLOSED, "RoPE base"),
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

    K_ENUM("optim.schedule", optim.schedule, "cosine", "constant|linear|cosine",
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
    K_ENUM("optim.on_nonfinite", optim.on_nonfinite, "stop", "stop|skip",
           "a NaN/Inf loss or gradient: stop the job (last checkpoint kept) or skip the step"),

    K_ENUM("data.source", data.source, "synthetic-markov", "synthetic-markov|hdf5",
           "token source: deterministic Markov stream from data.seed, or data.path"),
    K_STR("data.path", data.path, "", 0, "HDF5 token dataset (see io/DATASETS.md)"),
    K_STR("data.split", data.split, "retain", 1, "train: split to fine-tune on"),
    K_STR("data.forget_split", data.forget_split, "forget", 1, "unlearn: the forget split"),
    K_STR("data.retain_split", data.retain_split, "retain", 1, "unlearn: the retain split"),
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
    K_ENUM("unlearn.method", unlearn.method, "simnpo", "ga|graddiff|npo|simnpo",
           "unlearning objective"),
    K_ENUM("unlearn.retain_loss", unlearn.retain_loss, "nll", "nll|kl",
           "retain term: token-mean NLL, or token-mean KL(initial model || current)"),
    K_FLT("unlearn.beta", unlearn.beta, 2.5, 0, OPEN, 1000, CLOSED, "inverse temperature"),
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

    K_INT("threads", threads, 1, 1, 256, "OpenBLAS threads per rank"),
};
#define N_KEYS ((int)(sizeof SCHEMA / sizeof SCHEMA[0]))

int config_key_count(void)
{
    return N_KEYS;
}

const char *config_key_name(int i)
{
    return i >= 0 && i < N_KEYS ? SCHEMA[i].name : NULL;
}

static const key_def *find_key(const char *name)
{
    for (int i = 0; i < N_KEYS; i++)
        if (strcmp(SCHEMA[i].name, name) == 0) return &SCHEMA[i];
    return NULL;
}

/* A section is a proper dotted prefix of some key ("model"). "" is the root. */
static int is_section(const char *path)
{
    size_t n = strlen(path);
    if (n == 0) return 1;
    for (int i = 0; i < N_KEYS; i++)
        if (strncmp(SCHEMA[i].name, path, n) == 0 && SCHEMA[i].name[n] == '.') return 1;
    return 0;
}

static void *field(lethe_config *c, const key_def *k)
{
    return (char *)c + k->off;
}

static const void *cfield(const lethe_config *c, const key_def *k)
{
    return (const char *)c + k->off;
}

/* ------------------------------------------------------------------------ */
/* Formatting helpers. */

/* Shortest "%.*g" that reads back as v. */
static void fmt_double(char *buf, size_t n, double v)
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
static double float_to_short_double(float f)
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
static void escape(char *dst, size_t n, const char *s, size_t maxc)
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
static void describe(char *buf, size_t n, const cJSON *v)
{
    if (cJSON_IsNumber(v)) {
        if (isfinite(v->valuedouble))
            fmt_double(buf, n, v->valuedouble);
        else
            snprintf(buf, n, "a number beyond the range of a double");
    } else if (cJSON_IsString(v)) {
        char e[160];
        escape(e, sizeof e, v->valuestring, 64);
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

static void fmt_range(char *buf, size_t n, const key_def *k)
{
    char lo[32], hi[32];
    fmt_double(lo, sizeof lo, k->lo);
    fmt_double(hi, sizeof hi, k->hi);
    switch (k->type) {
    case T_INT: snprintf(buf, n, "[%s, %s]", lo, hi); break;
    case T_U64: snprintf(buf, n, "[0, 18446744073709551615]"); break;
    case T_FLOAT:
        snprintf(buf, n, "%c%s, %s%c", k->lo_open ? '(' : '[', lo, hi, k->hi_open ? ')' : ']');
        break;
    case T_BOOL: snprintf(buf, n, "true|false"); break;
    case T_STRING: snprintf(buf, n, "%s to %zu characters", lo, k->cap - 1); break;
    case T_ENUM: snprintf(buf, n, "%s", k->choices); break;
    }
}

static void fmt_expected(char *buf, size_t n, const key_def *k)
{
    char r[128];
    fmt_range(r, sizeof r, k);
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
    case T_ENUM: snprintf(buf, n, "one of %s", r); break;
    }
}

static void fmt_value(char *buf, size_t n, const lethe_config *c, const key_def *k)
{
    const void *p = cfield(c, k);
    switch (k->type) {
    case T_INT: snprintf(buf, n, "%d", *(const int *)p); break;
    case T_U64: snprintf(buf, n, "%llu", (unsigned long long)*(const uint64_t *)p); break;
    case T_FLOAT: fmt_double(buf, n, float_to_short_double(*(const float *)p)); break;
    case T_BOOL: snprintf(buf, n, "%s", *(const int *)p ? "true" : "false"); break;
    case T_STRING: snprintf(buf, n, "\"%s\"", (const char *)p); break;
    case T_ENUM: snprintf(buf, n, "%s", (const char *)p); break;
    }
}

static const char *type_name(key_type t)
{
    switch (t) {
    case T_INT: return "int";
    case T_U64: return "uint64";
    case T_FLOAT: return "float";
    case T_BOOL: return "bool";
    case T_STRING: return "string";
    case T_ENUM: return "enum";
    }
    return "?";
}

/* ------------------------------------------------------------------------ */
/* Defaults. */

static void set_string(char *dst, size_t cap, const char *s)
{
    /* Zero the whole buffer so two configs with the same strings compare equal
     * byte for byte. */
    memset(dst, 0, cap);
    size_t l = strlen(s);
    if (l >= cap) l = cap - 1;
    memcpy(dst, s, l);
}

void config_defaults(lethe_config *c)
{
    memset(c, 0, sizeof *c);
    for (int i = 0; i < N_KEYS; i++) {
        const key_def *k = &SCHEMA[i];
        void *p = field(c, k);
        switch (k->type) {
        case T_INT:
        case T_BOOL: *(int *)p = (int)k->def; break;
        case T_U64: *(uint64_t *)p = (uint64_t)k->def; break;
        case T_FLOAT: *(float *)p = (float)k->def; break;
        case T_STRING:
        case T_ENUM: set_string(p, k->cap, k->sdef); break;
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Parsing context and error reporting. */

typedef struct {
    char origin[300]; /* escaped file name */
    char **overrides;
    int n_overrides;
    int applied; /* overrides applied so far (only those can be blamed) */
    char *err;
    size_t errlen;
} ctx;

/* The last applied override whose key is `key` or a section holding it: the
 * value under `key` came from there, not from the file. */
static int blame(const ctx *x, const char *key)
{
    size_t kl = strlen(key);
    for (int i = x->applied - 1; i >= 0; i--) {
        const char *o = x->overrides[i];
        const char *eq = strchr(o, '=');
        if (!eq) continue;
        size_t ol = (size_t)(eq - o);
        if (ol <= kl && strncmp(o, key, ol) == 0 && (key[ol] == 0 || key[ol] == '.')) return i;
    }
    return -1;
}

/* Formats "config 'f': [--set 'o': ]message" into err; returns -1. `blame_ovr`
 * is an override index, or -1. */
static int failv(ctx *x, int blame_ovr, const char *fmt, va_list ap)
{
    char msg[1024], pre[400] = "";
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (blame_ovr >= 0) {
        char e[200];
        escape(e, sizeof e, x->overrides[blame_ovr], 120);
        snprintf(pre, sizeof pre, "--set '%s': ", e);
    }
    if (x->err && x->errlen) snprintf(x->err, x->errlen, "config '%s': %s%s", x->origin, pre, msg);
    return -1;
}

static int fail(ctx *x, const char *fmt, ...) CFG_PRINTF(2, 3);
static int fail(ctx *x, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    failv(x, -1, fmt, ap);
    va_end(ap);
    return -1;
}

/* An error about the value at `key`, blamed on the override that set it if any. */
static int fail_key(ctx *x, const char *key, const char *fmt, ...) CFG_PRINTF(3, 4);
static int fail_key(ctx *x, const char *key, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    failv(x, blame(x, key), fmt, ap);
    va_end(ap);
    return -1;
}

static int fail_ovr(ctx *x, int i, const char *fmt, ...) CFG_PRINTF(3, 4);
static int fail_ovr(ctx *x, int i, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    failv(x, i, fmt, ap);
    va_end(ap);
    return -1;
}

/* "vocab_size, dim, ..." — the names one level below section `path`. */
static void known_children(char *buf, size_t n, const char *path)
{
    size_t pl = strlen(path), o = 0;
    buf[0] = 0;
    for (int i = 0; i < N_KEYS; i++) {
        const char *name = SCHEMA[i].name;
        if (pl && (strncmp(name, path, pl) != 0 || name[pl] != '.')) continue;
        const char *child = pl ? name + pl + 1 : name;
        size_t cl = strcspn(child, ".");
        /* Skip names already listed (sections repeat once per key). */
        int seen = 0;
        for (int j = 0; j < i && !seen; j++) {
            const char *prev = SCHEMA[j].name;
            if (pl && (strncmp(prev, path, pl) != 0 || prev[pl] != '.')) continue;
            const char *pc = pl ? prev + pl + 1 : prev;
            seen = strcspn(pc, ".") == cl && strncmp(pc, child, cl) == 0;
        }
        if (seen) continue;
        int w = snprintf(buf + o, n - o, "%s%.*s", o ? ", " : "", (int)cl, child);
        if (w < 0 || (size_t)w >= n - o) break;
        o += (size_t)w;
    }
}

static int fail_unknown(ctx *x, int blame_ovr, const char *key, const char *parent)
{
    char e[200], known[600];
    escape(e, sizeof e, key, 120);
    known_children(known, sizeof known, parent);
    if (parent[0]) {
        const key_def *leaf = find_key(parent);
        if (leaf)
            return fail_ovr(x, blame_ovr, "unknown key '%s' ('%s' is a value, not a section)", e,
                            parent);
        return fail_ovr(x, blame_ovr, "unknown key '%s' (known keys in '%s': %s)", e, parent,
                        known);
    }
    return fail_ovr(x, blame_ovr, "unknown key '%s' (known top-level keys: %s)", e, known);
}

/* ------------------------------------------------------------------------ */
/* Leaves. */

static int parse_u64_string(const char *s, uint64_t *out)
{
    size_t n = strlen(s);
    if (n == 0 || n > 20 || strspn(s, "0123456789") != n) return -1;
    errno = 0;
    unsigned long long v = strtoull(s, NULL, 10);
    if (errno == ERANGE) return -1;
    *out = (uint64_t)v;
    return 0;
}

static int in_float_range(const key_def *k, double v)
{
    if (!isfinite(v)) return 0;
    if (k->lo_open ? !(v > k->lo) : !(v >= k->lo)) return 0;
    if (k->hi_open ? !(v < k->hi) : !(v <= k->hi)) return 0;
    return 1;
}

static int set_leaf(ctx *x, lethe_config *c, const key_def *k, const cJSON *v)
{
    void *p = field(c, k);
    int ok = 0;
    switch (k->type) {
    case T_INT:
        if (cJSON_IsNumber(v)) {
            double d = v->valuedouble;
            ok = isfinite(d) && d == floor(d) && d >= k->lo && d <= k->hi;
            if (ok) *(int *)p = (int)d;
        }
        break;
    case T_U64:
        if (cJSON_IsNumber(v)) {
            double d = v->valuedouble;
            ok = isfinite(d) && d == floor(d) && d >= 0 && d <= EXACT_DOUBLE_MAX;
            if (ok) *(uint64_t *)p = (uint64_t)d;
        } else if (cJSON_IsString(v)) {
            uint64_t u;
            ok = parse_u64_string(v->valuestring, &u) == 0;
            if (ok) *(uint64_t *)p = u;
        }
        break;
    case T_FLOAT:
        if (cJSON_IsNumber(v)) {
            /* Range-check the value as stored, so 1e-50 for a positive float (0
             * once rounded) and 1e39 (inf) are refused. */
            float f = (float)v->valuedouble;
            ok = isfinite(v->valuedouble) && in_float_range(k, (double)f);
            if (ok) *(float *)p = f;
        }
        break;
    case T_BOOL:
        if (cJSON_IsBool(v)) {
            ok = 1;
            *(int *)p = cJSON_IsTrue(v) ? 1 : 0;
        }
        break;
    case T_STRING:
        if (cJSON_IsString(v)) {
            const char *s = v->valuestring;
            size_t l = strlen(s);
            int ctrl = 0;
            for (size_t i = 0; i < l; i++) ctrl |= (unsigned char)s[i] < 0x20;
            ok = !ctrl && l >= (size_t)k->lo && l < k->cap;
            if (ok) set_string(p, k->cap, s);
        }
        break;
    case T_ENUM:
        if (cJSON_IsString(v)) {
            const char *s = v->valuestring, *ch = k->choices;
            size_t l = strlen(s);
            while (*ch && !ok) {
                size_t cl = strcspn(ch, "|");
                ok = cl == l && strncmp(ch, s, l) == 0;
                ch += cl + (ch[cl] == '|');
            }
            ok = ok && l < k->cap;
            if (ok) set_string(p, k->cap, s);
        }
        break;
    }
    if (ok) return 0;
    char exp[256], got[200];
    fmt_expected(exp, sizeof exp, k);
    describe(got, sizeof got, v);
    return fail_key(x, k->name, "key '%s': expected %s, got %s", k->name, exp, got);
}

/* ------------------------------------------------------------------------ */
/* The tree walk. */

/* parent.name into out; returns 1 when it had to be cut (such a path matches no
 * key, so it is reported as unknown, cut). */
static int join(char *out, size_t n, const char *parent, const char *name)
{
    size_t pl = strlen(parent), nl = strlen(name), sep = pl ? 1 : 0;
    int cut = pl + sep + nl >= n;
    if (pl >= n) pl = n - 1;
    memcpy(out, parent, pl);
    if (sep && pl + 1 < n) out[pl++] = '.';
    if (nl > n - 1 - pl) nl = n - 1 - pl;
    memcpy(out + pl, name, nl);
    out[pl + nl] = 0;
    return cut;
}

/* Duplicate names are legal JSON that cJSON keeps silently (lookups find the
 * first), so a second "dim" would be ignored without this check. */
static int check_duplicates(ctx *x, const cJSON *obj, const char *path, int depth)
{
    for (const cJSON *a = obj->child; a; a = a->next) {
        for (const cJSON *b = obj->child; b != a; b = b->next) {
            if (strcmp(a->string, b->string) == 0) {
                char full[256], e[200];
                join(full, sizeof full, path, a->string);
                escape(e, sizeof e, full, 120);
                return fail(x, "key '%s' appears twice", e);
            }
        }
        /* Only the levels the schema has can hold a meaningful duplicate; deeper
         * objects are unknown keys or type errors anyway. */
        if (cJSON_IsObject(a) && depth < 4) {
            char full[256];
            join(full, sizeof full, path, a->string);
            if (check_duplicates(x, a, full, depth + 1)) return -1;
        }
    }
    return 0;
}

static int walk(ctx *x, lethe_config *c, const cJSON *obj, const char *path)
{
    for (const cJSON *item = obj->child; item; item = item->next) {
        char full[256];
        int cut = join(full, sizeof full, path, item->string);
        const key_def *k = cut ? NULL : find_key(full);
        if (k) {
            if (set_leaf(x, c, k, item)) return -1;
        } else if (!cut && is_section(full)) {
            if (!cJSON_IsObject(item)) {
                char got[200];
                describe(got, sizeof got, item);
                return fail_key(x, full, "key '%s': expected an object (a section), got %s", full,
                                got);
            }
            if (walk(x, c, item, full)) return -1;
        } else {
            return fail_unknown(x, blame(x, full), full, path);
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Cross-field rules. */

static int check_rules(ctx *x, const lethe_config *c)
{
    const lethe_model_config *m = &c->model;
    char a[32], b[32];
    if (m->n_heads % m->n_kv_heads != 0)
        return fail(x, "model.n_heads = %d must be a multiple of model.n_kv_heads = %d", m->n_heads,
                    m->n_kv_heads);
    if (m->dim % m->n_heads != 0)
        return fail(x, "model.dim = %d must be a multiple of model.n_heads = %d", m->dim,
                    m->n_heads);
    if ((m->dim / m->n_heads) % 2 != 0)
        return fail(x,
                    "head dimension model.dim / model.n_heads = %d / %d = %d must be even (RoPE "
                    "rotates pairs)",
                    m->dim, m->n_heads, m->dim / m->n_heads);
    /* with a dataset, T comes from the file and the job checks it against the model */
    if (!strcmp(c->data.source, "synthetic-markov") && c->train.seq_len > m->max_seq_len)
        return fail(x, "train.seq_len = %d must be <= model.max_seq_len = %d", c->train.seq_len,
                    m->max_seq_len);
    if (!strcmp(c->data.source, "synthetic-markov") && c->data.min_len > c->train.seq_len)
        return fail(x, "data.min_len = %d must be <= train.seq_len = %d", c->data.min_len,
                    c->train.seq_len);
    if (c->data.prompt_len >= c->data.min_len)
        return fail(x,
                    "data.prompt_len = %d must be < data.min_len = %d (every sequence needs a "
                    "token past the prompt)",
                    c->data.prompt_len, c->data.min_len);
    long long per = (long long)c->layout.dp * c->layout.micro_batches;
    if (c->train.batch_size % per != 0)
        return fail(x,
                    "train.batch_size = %d must be a multiple of layout.dp * layout.micro_batches "
                    "= %d * %d = %lld",
                    c->train.batch_size, c->layout.dp, c->layout.micro_batches, per);
    if (c->optim.min_lr > c->optim.lr) {
        fmt_double(a, sizeof a, float_to_short_double(c->optim.min_lr));
        fmt_double(b, sizeof b, float_to_short_double(c->optim.lr));
        return fail(x, "optim.min_lr = %s must be <= optim.lr = %s", a, b);
    }
    if (c->optim.warmup_steps > c->train.steps)
        return fail(x, "optim.warmup_steps = %d must be <= train.steps = %d", c->optim.warmup_steps,
                    c->train.steps);
    if (c->data.branching > m->vocab_size)
        return fail(x, "data.branching = %d must be <= model.vocab_size = %d", c->data.branching,
                    m->vocab_size);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Overrides. */

/* The value of "key=value": JSON if it parses, else the bare text as a string.
 * Two exceptions keep the command line natural: an integer literal too long for
 * a double to hold exactly stays a string (so --set train.seed=18446744073709551615
 * reaches the uint64 parser intact), and a string key takes any scalar as its
 * text (--set output.dir=2024 is the folder "2024"). */
static cJSON *override_value(const char *text, const key_def *k)
{
    size_t n = strlen(text);
    if (n > 0 && strspn(text, "0123456789") == n && strtod(text, NULL) > EXACT_DOUBLE_MAX)
        return cJSON_CreateString(text);
    cJSON *v = cJSON_ParseWithLengthOpts(text, n + 1, NULL, 1);
    if (v && k && (k->type == T_STRING || k->type == T_ENUM) &&
        (cJSON_IsNumber(v) || cJSON_IsBool(v) || cJSON_IsNull(v))) {
        cJSON_Delete(v);
        v = NULL;
    }
    if (!v) v = cJSON_CreateString(text);
    return v;
}

static int apply_override(ctx *x, cJSON *root, int i)
{
    const char *o = x->overrides[i];
    const char *eq = o ? strchr(o, '=') : NULL;
    if (!o || !eq) return fail_ovr(x, i, "expected key=value (for example model.dim=128)");
    size_t kl = (size_t)(eq - o);
    char key[256];
    if (kl == 0 || kl >= sizeof key) return fail_ovr(x, i, "expected key=value with a dotted key");
    memcpy(key, o, kl);
    key[kl] = 0;

    /* Check every prefix against the schema before touching the tree, so the
     * message names the first unknown component. */
    char path[256] = "";
    cJSON *node = root;
    const char *comp = key;
    for (;;) {
        size_t cl = strcspn(comp, ".");
        char name[256], parent[256], e[200];
        memcpy(name, comp, cl);
        name[cl] = 0;
        if (cl == 0) {
            escape(e, sizeof e, key, 120);
            return fail_ovr(x, i, "key '%s' has an empty component", e);
        }
        snprintf(parent, sizeof parent, "%s", path);
        join(path, sizeof path, parent, name);
        int last = comp[cl] == 0;
        const key_def *k = find_key(path);
        if (!k && !is_section(path)) return fail_unknown(x, i, last ? key : path, parent);
        if (k && !last) return fail_unknown(x, i, key, path);
        cJSON *child = cJSON_GetObjectItemCaseSensitive(node, name);
        if (last) {
            cJSON *v = override_value(eq + 1, k);
            if (!v) return fail_ovr(x, i, "out of memory");
            int ok = child ? cJSON_ReplaceItemInObjectCaseSensitive(node, name, v)
                           : cJSON_AddItemToObject(node, name, v);
            if (!ok) {
                cJSON_Delete(v);
                return fail_ovr(x, i, "out of memory");
            }
            return 0;
        }
        if (!child) {
            child = cJSON_AddObjectToObject(node, name);
            if (!child) return fail_ovr(x, i, "out of memory");
        } else if (!cJSON_IsObject(child)) {
            char got[200];
            describe(got, sizeof got, child);
            return fail_key(x, path, "key '%s': expected an object (a section), got %s", path, got);
        }
        node = child;
        comp += cl + 1;
    }
}

/* ------------------------------------------------------------------------ */
/* Parse and load. */

/* 1-based line and column (in characters, not bytes) of text[pos]. */
static void line_col(const char *text, size_t pos, int *line, int *col)
{
    int l = 1, c = 1;
    for (size_t i = 0; i < pos && text[i]; i++) {
        unsigned char ch = (unsigned char)text[i];
        if (ch == '\n') {
            l++;
            c = 1;
        } else if ((ch & 0xC0) != 0x80) {
            c++;
        }
    }
    *line = l;
    *col = c;
}

/* Bracket depth at text[pos], outside strings: tells a nesting-limit refusal
 * from a syntax error (cJSON reports both as a failed parse). */
static int depth_at(const char *text, size_t pos)
{
    int d = 0, in_str = 0;
    for (size_t i = 0; i < pos && text[i]; i++) {
        char ch = text[i];
        if (in_str) {
            if (ch == '\\' && text[i + 1])
                i++;
            else if (ch == '"')
                in_str = 0;
        } else if (ch == '"')
            in_str = 1;
        else if (ch == '{' || ch == '[')
            d++;
        else if (ch == '}' || ch == ']')
            d--;
    }
    return d;
}

static int parse_error(ctx *x, const char *text, size_t len, size_t pos)
{
    int line, col;
    if (pos > len) pos = len;
    line_col(text, pos, &line, &col);
    if (depth_at(text, pos) >= CJSON_NESTING_LIMIT)
        return fail(x, "JSON nested deeper than %d levels at line %d, column %d",
                    CJSON_NESTING_LIMIT, line, col);
    if (pos >= len)
        return fail(x, "malformed JSON at line %d, column %d: unexpected end of text", line, col);
    char near[128], frag[41];
    size_t fl = strcspn(text + pos, "\r\n");
    if (fl > 24) fl = 24;
    memcpy(frag, text + pos, fl);
    frag[fl] = 0;
    escape(near, sizeof near, frag, 24);
    return fail(x, "malformed JSON at line %d, column %d, near \"%s\"", line, col, near);
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
#define TOFU_COMMON                                                                              \
    "unlearn.epochs=10", "unlearn.warmup_epochs=1", "unlearn.batch_size=32",                     \
        "unlearn.retain_batch_size=32", "optim.lr=1e-5", "optim.min_lr=0",                       \
        "optim.weight_decay=0.01", "optim.schedule=\"linear\"", "unlearn.c_r=1"
static const preset_def PRESETS[] = {
    {"tofu-forget05",
     {TOFU_COMMON, "unlearn.method=\"simnpo\"", "unlearn.beta=2.5", "unlearn.c_f=0.1375",
      "unlearn.gamma=0", NULL}},
    {"tofu-forget10",
     {TOFU_COMMON, "unlearn.method=\"simnpo\"", "unlearn.beta=4.5", "unlearn.c_f=0.125",
      "unlearn.gamma=0", NULL}},
    {"tofu-npo", {TOFU_COMMON, "unlearn.method=\"npo\"", "unlearn.beta=0.1", "unlearn.c_f=1", NULL}},
};

static cJSON *child_object(cJSON *parent, const char *name)
{
    cJSON *o = cJSON_GetObjectItemCaseSensitive(parent, name);
    if (!o) o = cJSON_AddObjectToObject(parent, name);
    return cJSON_IsObject(o) ? o : NULL;
}

static int apply_preset(ctx *x, cJSON *root)
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
            if (!v) return fail(x, "internal: preset value '%s' does not parse", *kv);
            cJSON_AddItemToObject(sec, dot + 1, v);
        }
        return 0;
    }
    return 0; /* unknown names are reported by the enum check */
}

int config_parse(lethe_config *c, const char *text, const char *origin, char **overrides,
                 int n_overrides, char *err, size_t errlen)
{
    ctx x = {.overrides = overrides, .n_overrides = n_overrides, .err = err, .errlen = errlen};
    escape(x.origin, sizeof x.origin, origin ? origin : "(text)", 200);
    if (err && errlen) err[0] = 0;
    if (!text) return fail(&x, "no text");
    /* A UTF-8 byte-order mark is harmless; cJSON does not skip it. */
    if ((unsigned char)text[0] == 0xEF && (unsigned char)text[1] == 0xBB &&
        (unsigned char)text[2] == 0xBF)
        text += 3;
    size_t len = strlen(text);
    if (strspn(text, " \t\r\n") == len) return fail(&x, "file is empty (expected a JSON object)");

    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len + 1, &end, 1);
    if (!root) return parse_error(&x, text, len, end ? (size_t)(end - text) : 0);

    lethe_config tmp;
    config_defaults(&tmp);
    int rc = 0;
    if (!cJSON_IsObject(root)) {
        char got[200];
        describe(got, sizeof got, root);
        rc = fail(&x, "the top level must be a JSON object, got %s", got);
    }
    if (!rc) rc = check_duplicates(&x, root, "", 0);
    for (int i = 0; i < n_overrides && !rc; i++) {
        x.applied = i + 1;
        rc = apply_override(&x, root, i);
    }
    if (!rc) rc = apply_preset(&x, root);
    if (!rc) rc = walk(&x, &tmp, root, "");
    if (!rc) rc = check_rules(&x, &tmp);
    cJSON_Delete(root);
    if (rc) return -1;
    *c = tmp;
    return 0;
}

int config_load(lethe_config *c, const char *path, char **overrides, int n_overrides, char *err,
                size_t errlen)
{
    ctx x = {.err = err, .errlen = errlen};
    if (!path || !path[0] || strcmp(path, "-") == 0) {
        snprintf(x.origin, sizeof x.origin, "%s", path ? path : "(none)");
        return fail(&x, "expected the path of a JSON config file");
    }
    escape(x.origin, sizeof x.origin, path, 200);

    FILE *f = fopen(path, "rb");
    if (!f) return fail(&x, "cannot open: %s", strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        int e = errno;
        fclose(f);
        return fail(&x, "cannot stat: %s", strerror(e));
    }
    if (S_ISDIR(st.st_mode)) {
        fclose(f);
        return fail(&x, "is a directory, expected a JSON file");
    }
    if (S_ISREG(st.st_mode) && (unsigned long long)st.st_size > CONFIG_MAX_BYTES) {
        fclose(f);
        return fail(&x, "file is %llu bytes, more than the %u MiB a config may have",
                    (unsigned long long)st.st_size, CONFIG_MAX_BYTES >> 20);
    }
    /* Read in chunks rather than trusting st_size: pipes (<(...)) have none. */
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    if (!buf) {
        fclose(f);
        return fail(&x, "out of memory");
    }
    for (;;) {
        if (n + 1 >= cap) {
            size_t ncap = cap * 2;
            char *nb = realloc(buf, ncap);
            if (!nb) {
                free(buf);
                fclose(f);
                return fail(&x, "out of memory");
            }
            buf = nb;
            cap = ncap;
        }
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (n > CONFIG_MAX_BYTES) {
            free(buf);
            fclose(f);
            return fail(&x, "file is more than the %u MiB a config may have",
                        CONFIG_MAX_BYTES >> 20);
        }
        if (r == 0) break;
    }
    if (ferror(f)) {
        int e = errno;
        free(buf);
        fclose(f);
        return fail(&x, "read failed: %s", strerror(e));
    }
    if (fclose(f) != 0) {
        free(buf);
        return fail(&x, "close failed: %s", strerror(errno));
    }
    buf[n] = 0;
    const char *nul = memchr(buf, 0, n);
    if (nul) {
        int line, col;
        line_col(buf, (size_t)(nul - buf), &line, &col);
        free(buf);
        return fail(&x, "NUL byte at line %d, column %d (not a JSON text file)", line, col);
    }
    int rc = config_parse(c, buf, path, overrides, n_overrides, err, errlen);
    free(buf);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Output. */

char *config_to_json(const lethe_config *c)
{
    cJSON *root = cJSON_CreateObject();
    if (!root) return NULL;
    for (int i = 0; i < N_KEYS; i++) {
        const key_def *k = &SCHEMA[i];
        cJSON *node = root;
        const char *comp = k->name;
        char name[64];
        size_t cl;
        /* Sections are created on first use, in table order. */
        while (comp[cl = strcspn(comp, ".")] == '.') {
            memcpy(name, comp, cl);
            name[cl] = 0;
            cJSON *child = cJSON_GetObjectItemCaseSensitive(node, name);
            if (!child) child = cJSON_AddObjectToObject(node, name);
            if (!child) goto oom;
            node = child;
            comp += cl + 1;
        }
        const void *p = cfield(c, k);
        cJSON *v = NULL;
        switch (k->type) {
        case T_INT: v = cJSON_CreateNumber(*(const int *)p); break;
        case T_U64: {
            /* Raw digits: cJSON prints doubles with 15 significant digits when
             * that is "close enough", which would change a seed above 1e15. */
            uint64_t u = *(const uint64_t *)p;
            char s[32];
            snprintf(s, sizeof s, "%llu", (unsigned long long)u);
            v = u <= (uint64_t)EXACT_DOUBLE_MAX ? cJSON_CreateRaw(s) : cJSON_CreateString(s);
            break;
        }
        case T_FLOAT: v = cJSON_CreateNumber(float_to_short_double(*(const float *)p)); break;
        case T_BOOL: v = cJSON_CreateBool(*(const int *)p); break;
        case T_STRING:
        case T_ENUM: {
            /* Bounded copy: the struct's buffer may be full without a NUL. */
            char s[1024];
            size_t l = strnlen(p, k->cap);
            if (l >= sizeof s) l = sizeof s - 1;
            memcpy(s, p, l);
            s[l] = 0;
            v = cJSON_CreateString(s);
            break;
        }
        }
        if (!v) goto oom;
        if (!cJSON_AddItemToObject(node, comp, v)) {
            cJSON_Delete(v);
            goto oom;
        }
    }
    char *out = cJSON_Print(root);
    cJSON_Delete(root);
    return out;
oom:
    cJSON_Delete(root);
    return NULL;
}

int config_write(const lethe_config *c, const char *path, char *err, size_t errlen)
{
    char tmp[4096];
    if (err && errlen) err[0] = 0;
    int w = snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    if (w < 0 || (size_t)w >= sizeof tmp) {
        if (err) snprintf(err, errlen, "config '%s': path too long", path);
        return -1;
    }
    char *json = config_to_json(c);
    if (!json) {
        if (err) snprintf(err, errlen, "config '%s': out of memory while formatting", path);
        return -1;
    }
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        if (err) snprintf(err, errlen, "config '%s': cannot create: %s", tmp, strerror(errno));
        free(json);
        return -1;
    }
    size_t len = strlen(json);
    const char *what = NULL;
    int e = 0;
    if (fwrite(json, 1, len, f) != len || fputc('\n', f) == EOF)
        what = "write", e = errno;
    else if (fflush(f) != 0)
        what = "write", e = errno;
    else if (fsync(fileno(f)) != 0)
        what = "fsync", e = errno;
    free(json);
    if (fclose(f) != 0 && !what) what = "close", e = errno;
    if (!what && rename(tmp, path) != 0) {
        e = errno;
        if (err)
            snprintf(err, errlen, "config '%s': rename from '%s' failed: %s", path, tmp,
                     strerror(e));
        unlink(tmp);
        return -1;
    }
    if (what) {
        if (err) snprintf(err, errlen, "config '%s': %s failed: %s", tmp, what, strerror(e));
        unlink(tmp);
        return -1;
    }
    return 0;
}

void config_print_keys(void *file)
{
    FILE *f = file;
    lethe_config d;
    config_defaults(&d);
    int wk = 3, wt = 4, wd = 7, wr = 14;
    char def[600], range[128];
    for (int i = 0; i < N_KEYS; i++) {
        int l;
        if ((l = (int)strlen(SCHEMA[i].name)) > wk) wk = l;
        if ((l = (int)strlen(type_name(SCHEMA[i].type))) > wt) wt = l;
        fmt_value(def, sizeof def, &d, &SCHEMA[i]);
        if ((l = (int)strlen(def)) > wd) wd = l;
        fmt_range(range, sizeof range, &SCHEMA[i]);
        if ((l = (int)strlen(range)) > wr) wr = l;
    }
    fprintf(f, "%-*s  %-*s  %-*s  %-*s  %s\n", wk, "key", wt, "type", wd, "default", wr,
            "range/choices", "description");
    for (int i = 0; i < N_KEYS; i++) {
        const key_def *k = &SCHEMA[i];
        fmt_value(def, sizeof def, &d, k);
        fmt_range(range, sizeof range, k);
        fprintf(f, "%-*s  %-*s  %-*s  %-*s  %s\n", wk, k->name, wt, type_name(k->type), wd, def, wr,
                range, k->desc);
    }
}
