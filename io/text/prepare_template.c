/* io/text/prepare_template.c — the QA templates of `prepare` (io/text/prepare.h): the
 * built-ins (llama2-chat, llama3-chat, question-answer, as open-unlearning renders TOFU
 * for those models), the JSON template file, their compilation into pieces (text,
 * placeholders, special tokens), the special tokens' ids in a tokenizer, and the tokens
 * of a prompt or of a whole row. */
#define _POSIX_C_SOURCE 200809L /* strdup */
#include "../../mpi/fatal.h"
#include "../safefile.h"
#include "prepare.h"
#include "prepare_impl.h"
#include "tokenizer.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *name, *prompt, *answer, *system, *date;
    const char *special[5];
    int trim;
} builtin;

/* open-unlearning's template_args (configs/model/<model>.yaml): Llama-2-chat wraps the question
 * in [INST] tags with no space before the answer, bos from the tokenizer and eos appended;
 * Llama-3.1-Instruct uses its chat template (system prompt, pinned date, Jinja `| trim`
 * of each message, <|eot_id|> closing each turn); base models "Question: .. Answer: ..",
 * tokenized with add_special_tokens=True (src/data/utils.py, preprocess_chat_instance): the
 * tokenizer's BOS first when it has one ({bos}: <s> on Llama-2, <|begin_of_text|> on
 * Llama-3, nothing for tokenizers without one) and eos appended. */
static const builtin builtins[] = {
    {"llama2-chat", "<s>[INST] {q} [/INST]", "{a}</s>", NULL, NULL, {"<s>", "</s>"}, 0},
    {"llama3-chat",
     "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: "
     "December 2023\nToday Date: {date}\n\n{system}<|eot_id|><|start_header_id|>user<|end_"
     "header_id|>\n\n{q}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
     "{a}<|eot_id|>",
     "You are a helpful assistant.",
     "10 Apr 2025",
     {"<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"},
     1},
    {"question-answer", "{bos}Question: {q}\nAnswer: ", "{a}{eos}", NULL, NULL, {NULL}, 0},
};

static const char *const ph_names[] = {"{q}", "{a}", "{system}", "{date}", "{eos}", "{bos}"};
static const int ph_kinds[] = {PC_Q, PC_A, PC_SYSTEM, PC_DATE, PC_EOS, PC_BOS};

/* The id of a special token: a scan of the vocabulary through tokenizer_token. One
 * place to change to tokenizer_token_id once the tokenizers export it. */
static int64_t special_token_id(const tokenizer *tk, const char *s)
{
    return tokenizer_token_id(tk, s);
}

static int add_piece(pr_template *t, int kind, int special, const char *s, size_t n)
{
    if (kind == PC_TEXT && n == 0) return 0;
    pr_piece *q = realloc(t->pc, (size_t)(t->n_pieces + 1) * sizeof *q);
    if (!q) return -1;
    t->pc = q;
    t->pc[t->n_pieces++] = (pr_piece){kind, special, s, n};
    return 0;
}

/* Splits one template string into pieces: placeholders, then the longest special string
 * that starts at a position, else literal text up to the next of either. */
static int compile(pr_template *t, const char *s)
{
    const char *run = s;
    while (*s) {
        int kind = -1, sp = -1;
        size_t len = 0;
        for (size_t i = 0; i < sizeof ph_names / sizeof *ph_names; i++)
            if (strncmp(s, ph_names[i], strlen(ph_names[i])) == 0) {
                kind = ph_kinds[i];
                len = strlen(ph_names[i]);
            }
        for (int i = 0; kind < 0 && i < t->n_special; i++) {
            size_t l = strlen(t->special[i]);
            if (l > len && strncmp(s, t->special[i], l) == 0) {
                sp = i;
                len = l;
            }
        }
        if (sp >= 0) kind = PC_SPECIAL;
        if (kind < 0) {
            s++;
            continue;
        }
        if (add_piece(t, PC_TEXT, -1, run, (size_t)(s - run)) || add_piece(t, kind, sp, NULL, 0))
            return -1;
        s += len;
        run = s;
    }
    return add_piece(t, PC_TEXT, -1, run, (size_t)(s - run));
}

static int has_piece(const pr_template *t, int kind, int from, int to)
{
    for (int i = from; i < to; i++)
        if (t->pc[i].kind == kind) return 1;
    return 0;
}

/* A string member of a template file: 0 (absent is fine when !required), -1 + err. */
static int file_str(cJSON *root, const char *key, int required, char **out, const char *path,
                    char *err, size_t errlen)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v) {
        if (required)
            return lethe_errf(err, errlen, "prepare: template file '%s': key '%s' is missing", path,
                              key);
        return 0;
    }
    if (!cJSON_IsString(v))
        return lethe_errf(err, errlen, "prepare: template file '%s': key '%s': expected a string",
                          path, key);
    free(*out);
    *out = strdup(v->valuestring);
    return *out ? 0 : lethe_errf(err, errlen, "prepare: out of memory");
}

static int load_file(pr_template *t, const char *path, char *err, size_t errlen)
{
    char *js = safe_read(path, "template file", LETHE_MAX_JSON, NULL, err, errlen);
    if (!js) {
        char m[900];
        snprintf(m, sizeof m, "%s", err);
        return lethe_errf(err, errlen,
                          "prepare: --template '%s' is not a built-in (llama2-chat, llama3-chat, "
                          "question-answer), nor a file: %s",
                          path, m);
    }
    cJSON *root = cJSON_Parse(js);
    free(js);
    int rc = -1;
    char *name = NULL;
    if (!root || !cJSON_IsObject(root)) {
        lethe_errf(err, errlen, "prepare: template file '%s': not a JSON object", path);
        goto out;
    }
    static const char *const keys[] = {"name", "prompt",        "answer", "special",
                                       "trim", "system_prompt", "date"};
    for (cJSON *e = root->child; e; e = e->next) {
        size_t k = 0;
        while (k < sizeof keys / sizeof *keys && strcmp(e->string, keys[k])) k++;
        if (k == sizeof keys / sizeof *keys) {
            lethe_errf(err, errlen,
                       "prepare: template file '%s': unknown key '%s' (expected name, prompt, "
                       "answer, special, trim, system_prompt, date)",
                       path, lethe_shown(e->string, (char[80]){0}, 80, 0));
            goto out;
        }
    }
    if (file_str(root, "name", 0, &name, path, err, errlen) ||
        file_str(root, "prompt", 1, &t->prompt, path, err, errlen) ||
        file_str(root, "answer", 1, &t->answer, path, err, errlen) ||
        file_str(root, "system_prompt", 0, &t->system, path, err, errlen) ||
        file_str(root, "date", 0, &t->date, path, err, errlen))
        goto out;
    snprintf(t->name, sizeof t->name, "%s", name ? name : path);
    cJSON *trim = cJSON_GetObjectItemCaseSensitive(root, "trim");
    if (trim && !cJSON_IsBool(trim)) {
        lethe_errf(err, errlen, "prepare: template file '%s': key 'trim': expected true or false",
                   path);
        goto out;
    }
    t->trim = trim && cJSON_IsTrue(trim);
    cJSON *sp = cJSON_GetObjectItemCaseSensitive(root, "special");
    if (sp && (!cJSON_IsArray(sp) || cJSON_GetArraySize(sp) > PR_TMPL_MAX_SPECIAL)) {
        lethe_errf(err, errlen,
                   "prepare: template file '%s': key 'special': expected a list of at most %d "
                   "strings",
                   path, PR_TMPL_MAX_SPECIAL);
        goto out;
    }
    for (cJSON *e = sp ? sp->child : NULL; e; e = e->next) {
        if (!cJSON_IsString(e) || !e->valuestring[0]) {
            lethe_errf(err, errlen,
                       "prepare: template file '%s': key 'special' item %d: expected a "
                       "non-empty string",
                       path, t->n_special);
            goto out;
        }
        if (!(t->special[t->n_special++] = strdup(e->valuestring))) {
            lethe_errf(err, errlen, "prepare: out of memory");
            goto out;
        }
    }
    rc = 0;
out:
    free(name);
    cJSON_Delete(root);
    return rc;
}

static int load_builtin(pr_template *t, const builtin *b)
{
    snprintf(t->name, sizeof t->name, "%s", b->name);
    t->trim = b->trim;
    t->prompt = strdup(b->prompt);
    t->answer = strdup(b->answer);
    t->system = b->system ? strdup(b->system) : NULL;
    t->date = b->date ? strdup(b->date) : NULL;
    int oom = !t->prompt || !t->answer || (b->system && !t->system) || (b->date && !t->date);
    for (int i = 0; i < 5 && b->special[i]; i++)
        oom |= !(t->special[t->n_special++] = strdup(b->special[i]));
    return oom ? -1 : 0;
}

/* Overrides, then the rules: {q} in the prompt, {a} in the answer and nowhere else, a
 * value for each of {system} and {date} used, no override the template cannot use. */
static int check(pr_template *t, const prepare_opts *o, char *err, size_t errlen)
{
    const char *n = t->name;
    const char *ovr[2] = {o->system_prompt, o->date};
    char **dst[2] = {&t->system, &t->date};
    const int kinds[2] = {PC_SYSTEM, PC_DATE};
    const char *flag[2] = {"--system-prompt", "--date"}, *ph[2] = {"{system}", "{date}"};
    for (int i = 0; i < 2; i++) {
        int used = has_piece(t, kinds[i], 0, t->n_pieces);
        if (ovr[i] && !used)
            return lethe_errf(err, errlen, "prepare: %s is given but template '%s' has no %s",
                              flag[i], n, ph[i]);
        if (!used) { /* a file's value for a placeholder it never uses is not recorded */
            free(*dst[i]);
            *dst[i] = NULL;
        }
        if (ovr[i]) {
            free(*dst[i]);
            if (!(*dst[i] = strdup(ovr[i])))
                return lethe_errf(err, errlen, "prepare: out of memory");
        }
        if (used && !*dst[i])
            return lethe_errf(err, errlen,
                              "prepare: template '%s' uses %s but sets no value; give %s", n, ph[i],
                              flag[i]);
    }
    if (!has_piece(t, PC_Q, 0, t->n_prompt) || has_piece(t, PC_Q, t->n_prompt, t->n_pieces))
        return lethe_errf(err, errlen,
                          "prepare: template '%s': {q} must be in the prompt and only there", n);
    if (!has_piece(t, PC_A, t->n_prompt, t->n_pieces) || has_piece(t, PC_A, 0, t->n_prompt))
        return lethe_errf(err, errlen,
                          "prepare: template '%s': {a} must be in the answer and only there", n);
    return 0;
}

int pr_template_load(pr_template *t, const prepare_opts *o, char *err, size_t errlen)
{
    memset(t, 0, sizeof *t);
    t->bos = -1;
    const builtin *b = NULL;
    for (size_t i = 0; i < sizeof builtins / sizeof *builtins; i++)
        if (strcmp(o->template_name, builtins[i].name) == 0) b = &builtins[i];
    if (b ? load_builtin(t, b) : load_file(t, o->template_name, err, errlen))
        return b ? lethe_errf(err, errlen, "prepare: out of memory") : -1;
    if (compile(t, t->prompt)) return lethe_errf(err, errlen, "prepare: out of memory");
    t->n_prompt = t->n_pieces;
    if (compile(t, t->answer)) return lethe_errf(err, errlen, "prepare: out of memory");
    return check(t, o, err, errlen);
}

int pr_template_resolve(pr_template *t, const tokenizer *tk, int64_t eos, char *err, size_t errlen)
{
    t->eos = eos;
    t->bos = tokenizer_bos_id(tk);
    for (int i = 0; i < t->n_special; i++) {
        /* only the specials the template's text holds need an id */
        int used = 0;
        for (int j = 0; j < t->n_pieces; j++)
            used |= t->pc[j].kind == PC_SPECIAL && t->pc[j].special == i;
        if (!used) continue;
        t->special_id[i] = special_token_id(tk, t->special[i]);
        if (t->special_id[i] < 0)
            return lethe_errf(err, errlen,
                              "prepare: template '%s' names the special token '%s', which the %s "
                              "tokenizer's vocabulary lacks",
                              t->name, lethe_shown(t->special[i], (char[80]){0}, 80, 0),
                              tokenizer_name(tk));
    }
    return 0;
}

static int buf_add(pr_template *t, const char *s, size_t n)
{
    if (t->buf_n + n + 1 > t->buf_cap) {
        size_t cap = 2 * (t->buf_n + n + 1);
        char *b = realloc(t->buf, cap);
        if (!b) return -1;
        t->buf = b;
        t->buf_cap = cap;
    }
    memcpy(t->buf + t->buf_n, s, n);
    t->buf_n += n;
    return 0;
}

/* Encodes the text gathered since the last special: the template's text and what the
 * placeholders put in, jointly, an added piece met in it (a special string typed in a
 * question) as text -- the template's specials are only its own (pr_template_encode). */
static int flush(prep *p, tok_ids *out)
{
    pr_template *t = p->tmpl;
    int rc = 0;
    if (t->buf_n && (p->pass == PASS_WORDS || !p->tk))
        rc = pr_encode(p, t->buf, t->buf_n, out);
    else if (t->buf_n && tokenizer_encode_text(p->tk, t->buf, t->buf_n, out))
        rc = pr_perr(p, "out of memory while tokenising");
    t->buf_n = 0;
    return rc;
}

static int push_id(prep *p, tok_ids *out, int64_t id)
{
    if (p->pass == PASS_WORDS) return 0;
    if (out->n == out->cap) {
        int cap = out->cap ? 2 * out->cap : 256;
        int32_t *q = realloc(out->ids, (size_t)cap * sizeof *q);
        if (!q) return pr_perr(p, "out of memory");
        out->ids = q;
        out->cap = cap;
    }
    out->ids[out->n++] = (int32_t)id;
    return 0;
}

/* s without leading and trailing ASCII white space when the template trims. */
static const char *trimmed(const pr_template *t, const char *s, size_t *n)
{
    *n = strlen(s);
    if (!t->trim) return s;
    const char *ws = " \t\n\r\f\v";
    while (*n && strchr(ws, *s)) s++, (*n)--;
    while (*n && strchr(ws, s[*n - 1])) (*n)--;
    return s;
}

int pr_template_encode(prep *p, int whole, const char *q, const char *a, tok_ids *out)
{
    pr_template *t = p->tmpl;
    out->n = 0;
    t->buf_n = 0;
    int end = whole ? t->n_pieces : t->n_prompt;
    for (int i = 0; i < end; i++) {
        const pr_piece *c = &t->pc[i];
        const char *s = c->s;
        size_t n = c->n;
        int rc = 0;
        switch (c->kind) {
        case PC_Q: s = trimmed(t, q, &n); break;
        case PC_A: s = trimmed(t, a, &n); break;
        case PC_SYSTEM: s = trimmed(t, t->system, &n); break;
        case PC_DATE: s = t->date, n = strlen(t->date); break;
        case PC_EOS: rc = flush(p, out) || push_id(p, out, t->eos); break;
        case PC_BOS: rc = t->bos >= 0 && (flush(p, out) || push_id(p, out, t->bos)); break;
        case PC_SPECIAL: rc = flush(p, out) || push_id(p, out, t->special_id[c->special]); break;
        }
        if (rc) return -1;
        if (c->kind != PC_EOS && c->kind != PC_SPECIAL && c->kind != PC_BOS && buf_add(t, s, n))
            return pr_perr(p, "out of memory");
    }
    return flush(p, out);
}

void pr_template_free(pr_template *t)
{
    if (!t) return;
    free(t->prompt);
    free(t->answer);
    free(t->system);
    free(t->date);
    for (int i = 0; i < t->n_special; i++) free(t->special[i]);
    free(t->pc);
    free(t->buf);
    memset(t, 0, sizeof *t);
}
