/* io/text/prepare.h — JSON lines -> HDF5 token dataset (the `prepare` job's work).
 *
 * Each input is one JSON-lines file that becomes one split of the output file.
 * Record formats (`format`, or "auto" to tell by the keys of the first record):
 *   qa      {"question", "answer", optional "paraphrased_answer",
 *            optional "perturbed_answer": [..K strings..], optional "sample_id"}
 *           row = tokens(template(q)) + tokens(answer_prefix + a) + EOS, answer_start =
 *           number of prompt tokens; paraphrased/perturbed rows share the prompt.
 *   text    {"text"}: tokens(text) + EOS cut into windows of T tokens, answer_start 0
 *           (every token after the first is a target); windows shorter than 2 dropped.
 *   tokens  {"input_ids": [...], "answer_start": n, optional "paraphrased_ids" +
 *            "paraphrased_answer_start", "perturbed_ids": [[...]..] +
 *            "perturbed_answer_start": [...], optional "sample_id"}
 * sample_id: the record's integer "sample_id" if present (qa, tokens), else the row
 * index within the split; it must be unique within a split.
 * Templates (`template`, NULL for the legacy prompt_template/answer_prefix pair above):
 *   a built-in name (llama2-chat, llama3-chat, question-answer) or a JSON file
 *     {"name": str, "prompt": str, "answer": str, optional "special": [str..],
 *      optional "trim": bool, optional "system_prompt": str, optional "date": str}
 *   prompt holds {q} and may hold {system}, {date}; answer holds {a} and may hold {eos}
 *   (the tokenizer's eos id); either may hold {bos} (the tokenizer's bos id, nothing when
 *   it has none: what add_special_tokens=True adds; question-answer starts with it). A string of "special" met in the template's own text is
 *   encoded as that token's id (refused when the vocabulary lacks it); text put in by a
 *   placeholder never is. trim strips ASCII white space around q, a and the system
 *   prompt (Llama-3's `| trim`). The row is tokens(prompt + answer) with the text between
 *   specials encoded jointly, as the model saw it in training, so nothing closes the row
 *   but what the answer names (eot or eos); answer_start = the longest common prefix of
 *   tokens(prompt) and the row (open-unlearning masks len(tokens(prompt)); the two differ
 *   only where the prompt's last token merges with the answer's first, counted in the
 *   split attribute prompt_merged). The root attributes template, system_prompt,
 *   template_date, prompt_template and answer_template record what was used.
 * Sequences longer than T are truncated to T (counted and reported) or rejected.
 * Tokenizers: "byte", "word" (vocabulary built from every input, saved in the
 * file), "gpt2" (encoder.json + vocab.bpe, saved in the file), "none" (tokens inputs
 * only; vocab_size, pad_id and eos_id given). Serial, no MPI; the output is written
 * under a temporary name and renamed when complete. */
#ifndef LETHE_PREPARE_H
#define LETHE_PREPARE_H

#include <stddef.h>
#include <stdint.h>

#define PREPARE_MAX_INPUTS 64

typedef struct {
    const char *split;  /* group name: "forget", "retain", "eval/retain_perturbed" */
    const char *path;   /* JSON lines */
    const char *format; /* "auto" (NULL) | "qa" | "text" | "tokens" */
} prepare_input;

typedef struct {
    char split[256];
    char format[8];
    int64_t records, rows;
    int64_t truncated;       /* sequences cut to T (answers, paraphrases, candidates) */
    int64_t dropped_windows; /* text windows of < 2 tokens */
    int k;                   /* perturbed candidates per row (0: none) */
    int has_para;
} prepare_split_report;

typedef struct {
    int n_splits;
    prepare_split_report split[PREPARE_MAX_INPUTS];
    int64_t vocab_size, pad_id, eos_id;
    char source_digest[80]; /* "sha256:<hex>" of the inputs' bytes, concatenated in order */
} prepare_report;

typedef struct {
    const char *output;          /* .h5 path */
    const prepare_input *inputs; /* (n_inputs) */
    int n_inputs;
    const char *tokenizer;       /* "byte" | "word" | "gpt2" | "none" */
    const char *gpt2_encoder;    /* encoder.json (gpt2) */
    const char *gpt2_merges;     /* vocab.bpe (gpt2) */
    const char *tokenizer_dir;   /* a model directory's tokenizer (tokenizer_load_dir);
                                  * when set, tokenizer is not read */
    int word_min_count;          /* word: keep words seen this often (default 1) */
    int word_max_vocab;          /* word: at most this many ids, specials included (0: all) */
    int seq_len;                 /* T */
    const char *prompt_template; /* "{q}" is replaced by the question */
    const char *answer_prefix;   /* put before the answer text (default " ") */
    const char *template_name;   /* NULL (legacy pair above) | built-in name | JSON file */
    const char *system_prompt;   /* template: overrides its system prompt (NULL: keep) */
    const char *date;            /* template: overrides its date (NULL: keep) */
    int truncate;                /* 1: cut long sequences to T and count; 0: error */
    int64_t vocab_size, pad_id, eos_id; /* tokenizer "none" */
    int verbose;                        /* print one summary line per split to stdout */
    prepare_report *report;             /* optional: filled on success */
} prepare_opts;

/* tokenizer "byte", seq_len 256, template "[INST] {q} [/INST]", prefix " ",
 * truncate 1, word_min_count 1; no inputs, no output. */
void prepare_opts_defaults(prepare_opts *o);

/* Returns 0, or -1 with one line in err naming the input file, line and key. */
int prepare_run(const prepare_opts *o, char *err, size_t errlen);

/* The TOFU benchmark's files in folder dir (io/DATASETS.md "TOFU"; io/text/prepare_tofu.c):
 * every present file becomes its split through prepare_run with o's tokenizer, template
 * and sequence options (o->inputs are not read), plus /idk and the IdK splits. */
int prepare_tofu_run(const prepare_opts *o, const char *dir, char *err, size_t errlen);

/* MUSE-News/Books as published in folder dir (io/DATASETS.md "MUSE";
 * io/text/prepare_muse.c): every present file becomes its split through prepare_run with
 * o's tokenizer and sequence options (o->inputs and the template are not read: MUSE's
 * prompts are fed as they are). */
int prepare_muse_run(const prepare_opts *o, const char *dir, char *err, size_t errlen);

/* SHA-256 of a file as 64 hex digits (used for provenance). 0 or -1 + err. */
int prepare_sha256_file(const char *path, char hex[65], char *err, size_t errlen);

#endif
