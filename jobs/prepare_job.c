/* jobs/prepare_job.c — `lethe prepare`: JSON lines -> HDF5 token dataset.
 *
 * Command-line flags only (no config file): every input is SPLIT=PATH[:FORMAT] and
 * becomes one split of the output, or --tofu DIR reads the TOFU benchmark's files
 * (io/text/prepare_tofu.c), or --muse DIR MUSE-News/Books' (io/text/prepare_muse.c). The
 * work (io/text/prepare.h) is serial, so rank 0 runs it whatever the rank count and the
 * others wait for its verdict; a bad flag or a bad input ends every rank with exit status 2
 * and one line on stderr. The output appears only when complete (prepare writes
 * "<OUT>.tmp" and renames it), so a failed run leaves no OUT.h5 and never replaces an
 * existing one. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../io/safefile.h"
#include "../io/text/prepare.h"
#include "../mpi/fatal.h"

int job_prepare(int argc, char **argv);
void job_prepare_help(FILE *f);

void job_prepare_help(FILE *f)
{
    fprintf(
        f,
        "usage: [mpirun -n RANKS] lethe prepare --output OUT.h5 --input SPLIT=PATH[:FORMAT]\n"
        "           [--input ...] [options]\n"
        "       [mpirun -n RANKS] lethe prepare --output OUT.h5 --tofu DIR [options]\n"
        "       [mpirun -n RANKS] lethe prepare --output OUT.h5 --muse DIR [options]\n\n"
        "Tokenises JSON-lines files into an HDF5 token dataset (io/DATASETS.md), one split\n"
        "per input. Serial: rank 0 does the work at any rank count.\n\n"
        "  --output PATH            the HDF5 file written (only when complete)\n"
        "  --input SPLIT=PATH[:FMT] a JSON-lines file for split SPLIT (\"forget\", \"retain\",\n"
        "                           \"eval/utility_a\", ...); FMT is auto (default), qa, text\n"
        "                           or tokens; repeat for each split (at most %d)\n"
        "  --tofu DIR               the TOFU benchmark's files as published (forget05.json,\n"
        "                           forget05_perturbed.json, retain95.json, ..., idk.jsonl)\n"
        "                           mapped onto lethe's splits (io/DATASETS.md \"TOFU\");\n"
        "                           instead of --input\n"
        "  --muse DIR               MUSE-News or MUSE-Books as published (DIR/raw/forget.json,\n"
        "                           knowmem/forget_qa.json + forget_qa_icl.json, verbmem/,\n"
        "                           privleak/, ...) mapped onto lethe's splits\n"
        "                           (io/DATASETS.md \"MUSE\"); instead of --input\n"
        "  --tokenizer NAME         byte (default), word, gpt2 or none\n"
        "  --gpt2-encoder PATH      gpt2: GPT-2's encoder.json\n"
        "  --gpt2-merges PATH       gpt2: GPT-2's vocab.bpe\n"
        "  --tokenizer-dir DIR      the tokenizer of a model directory (tokenizer.json, else\n"
        "                           tokenizer.model; Llama-2/3), instead of --tokenizer\n"
        "  --word-min-count N       word: keep words seen at least N times (default 1)\n"
        "  --word-max-vocab N       word: at most N ids, specials included (0 = all, default)\n"
        "  --vocab-size V           none: the vocabulary size of the token ids given\n"
        "  --pad-id P               none: the padding id, in [0, V)\n"
        "  --eos-id E               none: the end-of-sequence id, in [0, V)\n"
        "  --seq-len T              row length (default 256)\n"
        "  --prompt-template S      qa prompt; {q} is the question (default '[INST] {q} "
        "[/INST]')\n"
        "  --answer-prefix S        put before each qa answer (default ' ')\n"
        "  --template NAME|FILE     qa rows as a model's chat format: llama2-chat, llama3-chat,\n"
        "                           question-answer, or a JSON template file (io/DATASETS.md);\n"
        "                           replaces --prompt-template/--answer-prefix\n"
        "  --system-prompt S        template: its system prompt (llama3-chat: 'You are a\n"
        "                           helpful assistant.')\n"
        "  --date S                 template: its pinned date (llama3-chat: '10 Apr 2025')\n"
        "  --truncate               cut sequences longer than T to T and count them "
        "(default)\n"
        "  --strict                 refuse sequences longer than T instead\n"
        "  --help                   this text\n\n"
        "Errors (bad flags, missing or malformed inputs) print one line and exit with 2.\n",
        PREPARE_MAX_INPUTS);
}

typedef struct {
    prepare_opts o;
    prepare_input in[PREPARE_MAX_INPUTS];
    int tok_given, seq_given, tmpl_given, prefix_given, trunc_given, strict_given;
    int minc_given, maxv_given, vocab_given, pad_given, eos_given;
    int tpl_given, sys_given, date_given;
    const char *tofu; /* --tofu DIR (NULL: the --input files) */
    const char *muse; /* --muse DIR (NULL: the --input files) */
    int help;
} prep_args;

static int bad(char *err, size_t len, const char *fmt, ...) LETHE_PRINTF(3, 4);
static int bad(char *err, size_t len, const char *fmt, ...)
{
    char m[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, sizeof m, fmt, ap);
    va_end(ap);
    snprintf(err, len, "prepare: %s (see lethe prepare --help)", m);
    return -1;
}

static int parse_i64(const char *flag, const char *s, int64_t lo, int64_t hi, int64_t *out,
                     char *err, size_t len)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi)
        return bad(err, len, "%s '%s': expected an integer in [%lld, %lld]", flag, s, (long long)lo,
                   (long long)hi);
    *out = v;
    return 0;
}

/* SPLIT=PATH[:FORMAT]. A trailing ":word" is a format only when it names one, so
 * paths with colons still work; a trailing ":word" that looks like a format but is
 * none (no '/' or '.') is refused rather than read as part of the path. */
static int parse_input(prep_args *a, char *spec, char *err, size_t len)
{
    if (a->o.n_inputs == PREPARE_MAX_INPUTS)
        return bad(err, len, "more than %d --input flags", PREPARE_MAX_INPUTS);
    char *eq = strchr(spec, '=');
    if (!eq || eq == spec || !eq[1])
        return bad(err, len, "--input '%s': expected SPLIT=PATH[:FORMAT]", spec);
    *eq = 0;
    prepare_input *in = &a->in[a->o.n_inputs];
    in->split = spec;
    in->path = eq + 1;
    in->format = "auto";
    char *colon = strrchr(eq + 1, ':');
    if (colon) {
        const char *f = colon + 1;
        if (!strcmp(f, "auto") || !strcmp(f, "qa") || !strcmp(f, "text") || !strcmp(f, "tokens")) {
            *colon = 0;
            in->format = f;
        } else if (!strchr(f, '/') && !strchr(f, '.')) {
            *eq = '=';
            return bad(err, len, "--input '%s': format '%s' is not one of auto, qa, text, tokens",
                       spec, f);
        }
    }
    if (!in->path[0]) {
        *eq = '=';
        return bad(err, len, "--input '%s': empty path", spec);
    }
    a->o.n_inputs++;
    return 0;
}

/* One flag of argv at *i: its name ("--flag", into name) and its value (--flag=value or
 * --flag value, advancing *i; NULL for the switches --truncate and --strict). Returns 1
 * for --help, 0, or -1 with one line in err. */
static int next_flag(int argc, char **argv, int *i, char *name, size_t nlen, char **val, char *err,
                     size_t len)
{
    char *arg = argv[*i];
    *val = NULL;
    if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) return 1;
    if (strncmp(arg, "--", 2) || !arg[2])
        return bad(err, len, "unexpected argument '%s' (prepare takes flags only)", arg);
    char *eq = strchr(arg, '=');
    size_t nl = eq ? (size_t)(eq - arg) : strlen(arg);
    if (nl >= nlen) return bad(err, len, "unknown option '%s'", arg);
    memcpy(name, arg, nl);
    name[nl] = 0;
    int is_switch = !strcmp(name, "--truncate") || !strcmp(name, "--strict");
    if (is_switch) {
        if (eq) return bad(err, len, "%s takes no value (got '%s')", name, arg);
    } else if (eq) {
        *val = eq + 1;
    } else if (*i + 1 < argc) {
        *val = argv[++*i];
    } else {
        return bad(err, len, "%s needs a value", name);
    }
    return 0;
}

/* Applies flag `name` with its value to a; 0, or -1 with one line in err. */
/* An option given twice is refused (inside the option appliers below). */
#define ONCE(flag_)                                                                                \
    do {                                                                                           \
        if (flag_) return bad(err, len, "%s given twice", name);                                   \
        flag_ = 1;                                                                                 \
    } while (0)

/* The numeric options: 1 when name is one (applied), 0 when it is not, -1 on a bad value. */
static int apply_number_flag(prep_args *a, const char *name, const char *val, char *err,
                             size_t len)
{
    int64_t v = 0;
    if (!strcmp(name, "--word-min-count")) {
        ONCE(a->minc_given);
        if (parse_i64(name, val, 1, INT_MAX, &v, err, len)) return -1;
        a->o.word_min_count = (int)v;
    } else if (!strcmp(name, "--word-max-vocab")) {
        ONCE(a->maxv_given);
        if (parse_i64(name, val, 0, INT_MAX, &v, err, len)) return -1;
        a->o.word_max_vocab = (int)v;
    } else if (!strcmp(name, "--vocab-size")) {
        ONCE(a->vocab_given);
        if (parse_i64(name, val, 1, INT32_MAX, &v, err, len)) return -1;
        a->o.vocab_size = v;
    } else if (!strcmp(name, "--pad-id")) {
        ONCE(a->pad_given);
        if (parse_i64(name, val, 0, INT32_MAX, &v, err, len)) return -1;
        a->o.pad_id = v;
    } else if (!strcmp(name, "--eos-id")) {
        ONCE(a->eos_given);
        if (parse_i64(name, val, 0, INT32_MAX, &v, err, len)) return -1;
        a->o.eos_id = v;
    } else {
        return 0;
    }
    return 1;
}

static int apply_flag(prep_args *a, const char *name, char *val, char *err, size_t len)
{
    int64_t v = 0;
    int rc = apply_number_flag(a, name, val, err, len);
    if (rc) return rc < 0 ? -1 : 0;
    if (!strcmp(name, "--output")) {
        if (a->o.output) return bad(err, len, "--output given twice");
        if (!val[0]) return bad(err, len, "--output is empty");
        a->o.output = val;
    } else if (!strcmp(name, "--input")) {
        if (parse_input(a, val, err, len)) return -1;
    } else if (!strcmp(name, "--tofu")) {
        if (a->tofu) return bad(err, len, "--tofu given twice");
        if (!val[0]) return bad(err, len, "--tofu is empty");
        a->tofu = val;
    } else if (!strcmp(name, "--muse")) {
        if (a->muse) return bad(err, len, "--muse given twice");
        if (!val[0]) return bad(err, len, "--muse is empty");
        a->muse = val;
    } else if (!strcmp(name, "--tokenizer")) {
        ONCE(a->tok_given);
        if (strcmp(val, "byte") && strcmp(val, "word") && strcmp(val, "gpt2") &&
            strcmp(val, "none"))
            return bad(err, len, "--tokenizer '%s' is not one of byte, word, gpt2, none", val);
        a->o.tokenizer = val;
    } else if (!strcmp(name, "--tokenizer-dir")) {
        if (a->o.tokenizer_dir) return bad(err, len, "%s given twice", name);
        a->o.tokenizer_dir = val;
    } else if (!strcmp(name, "--gpt2-encoder")) {
        if (a->o.gpt2_encoder) return bad(err, len, "%s given twice", name);
        a->o.gpt2_encoder = val;
    } else if (!strcmp(name, "--gpt2-merges")) {
        if (a->o.gpt2_merges) return bad(err, len, "%s given twice", name);
        a->o.gpt2_merges = val;
    } else if (!strcmp(name, "--seq-len")) {
        ONCE(a->seq_given);
        if (parse_i64(name, val, 2, 1 << 24, &v, err, len)) return -1;
        a->o.seq_len = (int)v;
    } else if (!strcmp(name, "--prompt-template")) {
        ONCE(a->tmpl_given);
        if (!strstr(val, "{q}"))
            return bad(err, len, "--prompt-template '%s' has no {q} (where the question goes)",
                       val);
        a->o.prompt_template = val;
    } else if (!strcmp(name, "--answer-prefix")) {
        ONCE(a->prefix_given);
        a->o.answer_prefix = val;
    } else if (!strcmp(name, "--template")) {
        ONCE(a->tpl_given);
        if (!val[0]) return bad(err, len, "--template is empty");
        a->o.template_name = val;
    } else if (!strcmp(name, "--system-prompt")) {
        ONCE(a->sys_given);
        a->o.system_prompt = val;
    } else if (!strcmp(name, "--date")) {
        ONCE(a->date_given);
        a->o.date = val;
    } else if (!strcmp(name, "--truncate")) {
        ONCE(a->trunc_given);
        a->o.truncate = 1;
    } else if (!strcmp(name, "--strict")) {
        ONCE(a->strict_given);
        a->o.truncate = 0;
    } else {
        return bad(err, len, "unknown option '%s'", name);
    }
    return 0;
}
#undef ONCE

/* The cross-flag rules, checked before any file is touched; 0, or -1 with one line. */
static int check_rules(prep_args *a, char *err, size_t len)
{
    if (!a->o.output) return bad(err, len, "no --output given");
    if (a->tofu && a->o.n_inputs)
        return bad(err, len, "--tofu and --input exclude each other (--tofu makes every split)");
    if (a->tofu && !strcmp(a->o.tokenizer, "none"))
        return bad(err, len, "--tofu needs a tokenizer (its files are text); not --tokenizer none");
    if (a->muse && (a->o.n_inputs || a->tofu))
        return bad(err, len,
                   "--muse and --input/--tofu exclude each other (--muse makes every split)");
    if (a->muse && !strcmp(a->o.tokenizer, "none"))
        return bad(err, len, "--muse needs a tokenizer (its files are text); not --tokenizer none");
    if (!a->o.n_inputs && !a->tofu && !a->muse) return bad(err, len, "no --input given");
    /* the output replaces what is at its name: never one of the files this run reads */
    for (int i = 0; i < a->o.n_inputs; i++)
        if (safe_same_file(a->o.output, a->o.inputs[i].path))
            return bad(err, len,
                       "--output '%s' is the input '%s' itself (split '%s'); choose "
                       "another output",
                       a->o.output, a->o.inputs[i].path, a->o.inputs[i].split);
    const char *tf[2] = {a->o.gpt2_encoder, a->o.gpt2_merges};
    for (int i = 0; i < 2; i++)
        if (tf[i] && safe_same_file(a->o.output, tf[i]))
            return bad(err, len, "--output '%s' is the tokenizer file '%s' itself", a->o.output,
                       tf[i]);
    if (a->tpl_given && (a->tmpl_given || a->prefix_given))
        return bad(err, len,
                   "--template replaces --prompt-template and --answer-prefix; give one "
                   "or the other");
    if (!a->tpl_given && (a->sys_given || a->date_given))
        return bad(err, len, "--system-prompt and --date apply to --template");
    if (a->o.template_name && safe_same_file(a->o.output, a->o.template_name))
        return bad(err, len, "--output '%s' is the template file itself", a->o.output);
    if (a->trunc_given && a->strict_given)
        return bad(err, len, "--truncate and --strict contradict each other");
    if (a->tok_given && a->o.tokenizer_dir)
        return bad(err, len, "--tokenizer-dir and --tokenizer exclude each other");
    const char *tk = a->o.tokenizer;
    int gpt2 = !strcmp(tk, "gpt2"), word = !strcmp(tk, "word"), none = !strcmp(tk, "none");
    if (!gpt2 && (a->o.gpt2_encoder || a->o.gpt2_merges))
        return bad(err, len, "--gpt2-encoder/--gpt2-merges apply to --tokenizer gpt2, not '%s'",
                   tk);
    if (gpt2 && (!a->o.gpt2_encoder || !a->o.gpt2_merges))
        return bad(err, len,
                   "--tokenizer gpt2 needs --gpt2-encoder encoder.json and "
                   "--gpt2-merges vocab.bpe");
    if (!word && (a->minc_given || a->maxv_given))
        return bad(err, len,
                   "--word-min-count/--word-max-vocab apply to --tokenizer word, not '%s'", tk);
    if (!none && (a->vocab_given || a->pad_given || a->eos_given))
        return bad(err, len, "--vocab-size/--pad-id/--eos-id apply to --tokenizer none, not '%s'",
                   tk);
    if (none) {
        if (!a->vocab_given || !a->pad_given || !a->eos_given)
            return bad(err, len, "--tokenizer none needs --vocab-size, --pad-id and --eos-id");
        if (a->o.pad_id >= a->o.vocab_size || a->o.eos_id >= a->o.vocab_size)
            return bad(err, len, "--pad-id %lld and --eos-id %lld must be below --vocab-size %lld",
                       (long long)a->o.pad_id, (long long)a->o.eos_id, (long long)a->o.vocab_size);
        /* without a tokenizer only pre-tokenised records can be read, so "auto"
         * means tokens and a text or qa record is refused with its line */
        for (int i = 0; i < a->o.n_inputs; i++) {
            if (strcmp(a->in[i].format, "auto") && strcmp(a->in[i].format, "tokens"))
                return bad(err, len,
                           "--input '%s=%s': format '%s' needs a tokenizer; --tokenizer none "
                           "reads tokens inputs only",
                           a->in[i].split, a->in[i].path, a->in[i].format);
            a->in[i].format = "tokens";
        }
    }
    return 0;
}

/* Parses argv into a; 0, or -1 with one line in err. Pure, so every rank agrees. */
static int parse_args(prep_args *a, int argc, char **argv, char *err, size_t len)
{
    memset(a, 0, sizeof *a);
    prepare_opts_defaults(&a->o);
    a->o.inputs = a->in;
    a->o.verbose = 1;
    for (int i = 0; i < argc; i++) {
        char name[64], *val;
        int r = next_flag(argc, argv, &i, name, sizeof name, &val, err, len);
        if (r < 0) return -1;
        if (r > 0) {
            a->help = 1;
            return 0;
        }
        if (apply_flag(a, name, val, err, len)) return -1;
    }
    return check_rules(a, err, len);
}

int job_prepare(int argc, char **argv)
{
    int rank;
    MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
    prep_args a;
    char err[1024] = "";
    int ok = parse_args(&a, argc, argv, err, sizeof err) == 0;
    lethe_check(MPI_COMM_WORLD, ok, 2, "%s", err);
    if (a.help) {
        if (rank == 0) job_prepare_help(stdout);
        return 0;
    }
    /* serial work on rank 0; the others learn the verdict */
    if (rank == 0) {
        ok = (a.tofu   ? prepare_tofu_run(&a.o, a.tofu, err, sizeof err)
              : a.muse ? prepare_muse_run(&a.o, a.muse, err, sizeof err)
                       : prepare_run(&a.o, err, sizeof err)) == 0;
        fflush(stdout);
    }
    lethe_check(MPI_COMM_WORLD, ok, 2, "%s", err);
    return 0;
}
