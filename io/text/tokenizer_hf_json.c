/* io/text/tokenizer_hf_json.c — a Hugging Face tokenizer.json of a BPE model read into
 * one of two kinds: llama3 (byte-level, Llama-3's Split regex then ByteLevel) or spm
 * (SentencePiece-style: byte_fallback, '▁' from a Prepend/Replace normalizer or the
 * Metaspace pre-tokenizer). Vocabulary, added tokens and merges (as "a b" strings or
 * ["a","b"] pairs) are checked; anything else is refused with one line. */
#define _POSIX_C_SOURCE 200809L
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../mpi/fatal.h"
#include "../safefile.h"
#include "tokenizer_impl.h"

static const char LLAMA3_REGEX[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char META[] = "\xE2\x96\x81";

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int jtrue(const cJSON *o, const char *k)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, k));
}

/* The pre-tokenizers or normalizers of o: itself, or the items of a Sequence. */
static const cJSON *seq_items(const cJSON *o, const char *list)
{
    const char *ty = jstr(o, "type");
    if (ty && strcmp(ty, "Sequence") == 0) {
        const cJSON *l = cJSON_GetObjectItemCaseSensitive(o, list);
        return cJSON_IsArray(l) ? l->child : NULL;
    }
    return o;
}

typedef struct {
    const char *path;
    char *err;
    size_t errlen;
    char origin[4200]; /* "tokenizer file '<path>'" */
} src;

static int bad(const src *s, const char *what)
{
    return lethe_errf(s->err, s->errlen, "tokenizer file '%s': %s", s->path, what);
}

/* vocab + added_tokens -> tokens[] (id order) and types. */
static int read_vocab(const src *s, const cJSON *model, const cJSON *added, char ***tokens,
                      uint8_t **types, int *nv)
{
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    if (!cJSON_IsObject(vocab)) return bad(s, "model.vocab is missing or not an object");
    double maxid = -1;
    for (const cJSON *e = vocab->child; e; e = e->next)
        if (cJSON_IsNumber(e) && e->valuedouble > maxid) maxid = e->valuedouble;
    for (const cJSON *a = cJSON_IsArray(added) ? added->child : NULL; a; a = a->next) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(a, "id");
        if (cJSON_IsNumber(id) && id->valuedouble > maxid) maxid = id->valuedouble;
    }
    if (maxid < 0 || maxid >= (1 << 24)) return bad(s, "model.vocab has no ids in [0, 2^24)");
    *nv = (int)maxid + 1;
    *tokens = calloc((size_t)*nv, sizeof **tokens);
    *types = malloc((size_t)*nv);
    if (!*tokens || !*types) return bad(s, "out of memory");
    memset(*types, TK_NORMAL, (size_t)*nv);
    for (const cJSON *e = vocab->child; e; e = e->next) {
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble != (int)e->valuedouble)
            return lethe_errf(s->err, s->errlen,
                              "tokenizer file '%s': model.vocab '%s': expected an id >= 0", s->path,
                              lethe_shown(e->string, (char[80]){0}, 80, 0));
        int id = (int)e->valuedouble;
        if ((*tokens)[id])
            return lethe_errf(s->err, s->errlen, "tokenizer file '%s': id %d is both '%s' and '%s'",
                              s->path, id, lethe_shown((*tokens)[id], (char[80]){0}, 80, 0),
                              lethe_shown(e->string, (char[80]){0}, 80, 0));
        (*tokens)[id] = e->string;
    }
    for (const cJSON *a = cJSON_IsArray(added) ? added->child : NULL; a; a = a->next) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(a, "id");
        const char *c = jstr(a, "content");
        if (!cJSON_IsNumber(id) || id->valuedouble < 0 || !c || !c[0])
            return bad(s, "an added_tokens entry lacks its id or content");
        int i = (int)id->valuedouble;
        if ((*tokens)[i] && strcmp((*tokens)[i], c) != 0)
            return lethe_errf(s->err, s->errlen,
                              "tokenizer file '%s': added token '%s' has id %d of '%s'", s->path,
                              lethe_shown(c, (char[80]){0}, 80, 0), i,
                              lethe_shown((*tokens)[i], (char[80]){0}, 80, 0));
        (*tokens)[i] = (char *)c;
        (*types)[i] = jtrue(a, "special") ? TK_CONTROL : TK_ADDED;
    }
    return 0;
}

/* model.merges as "a b" strings (malloc'd), every part and result in the vocabulary */
static int read_merges(const src *s, const tokenizer *t, const cJSON *model, char ***merges,
                       int *nm)
{
    const cJSON *ml = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (!cJSON_IsArray(ml)) return bad(s, "model.merges is missing or not an array");
    *nm = cJSON_GetArraySize(ml);
    *merges = calloc((size_t)(*nm ? *nm : 1), sizeof **merges);
    if (!*merges) return bad(s, "out of memory");
    int i = 0;
    for (const cJSON *e = ml->child; e; e = e->next, i++) {
        const char *a = NULL, *b = NULL;
        char *m = NULL;
        if (cJSON_IsString(e)) {
            m = strdup(e->valuestring);
            char *sp = m ? strchr(m, ' ') : NULL;
            if (sp) *sp = 0, a = m, b = sp + 1;
        } else if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 && cJSON_IsString(e->child) &&
                   cJSON_IsString(e->child->next)) {
            a = e->child->valuestring, b = e->child->next->valuestring;
            size_t al = strlen(a), bl = strlen(b);
            if ((m = malloc(al + bl + 2)))
                memcpy(m, a, al), m[al] = 0, memcpy(m + al + 1, b, bl + 1);
            if (m) a = m, b = m + al + 1;
        }
        if (!a || !a[0] || !b[0]) {
            free(m);
            return lethe_errf(s->err, s->errlen,
                              "tokenizer file '%s': merge %d is neither \"a b\" nor [\"a\", \"b\"]",
                              s->path, i);
        }
        size_t al = strlen(a), bl = strlen(b);
        char *ab = malloc(al + bl + 1);
        if (ab) memcpy(ab, a, al), memcpy(ab + al, b, bl + 1);
        const char *miss = tk_hm_get(&t->vocab, a, al) < 0               ? a
                           : tk_hm_get(&t->vocab, b, bl) < 0             ? b
                           : ab && tk_hm_get(&t->vocab, ab, al + bl) < 0 ? ab
                                                                         : NULL;
        if (miss) {
            lethe_errf(s->err, s->errlen,
                       "tokenizer file '%s': merge %d '%s %s': '%s' is not in the vocabulary",
                       s->path, i, lethe_shown(a, (char[80]){0}, 80, 0),
                       lethe_shown(b, (char[80]){0}, 80, 0),
                       lethe_shown(miss, (char[80]){0}, 80, 0));
            free(ab);
            free(m);
            return -1;
        }
        free(ab);
        m[al] = ' ';
        (*merges)[i] = m;
    }
    return 0;
}

/* The '▁' handling of a SentencePiece-style file: t->add_prefix, or an error. */
static int spm_spaces(const src *s, tokenizer *t, const cJSON *norm, const cJSON *pre)
{
    int replace = 0, prepend = 0;
    for (const cJSON *n = cJSON_IsObject(norm) ? seq_items(norm, "normalizers") : NULL; n;
         n = n->next) {
        const char *ty = jstr(n, "type");
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(n, "pattern");
        if (ty && !strcmp(ty, "Prepend") && jstr(n, "prepend") && !strcmp(jstr(n, "prepend"), META))
            prepend = 1;
        else if (ty && !strcmp(ty, "Replace") && jstr(pat, "String") &&
                 !strcmp(jstr(pat, "String"), " ") && jstr(n, "content") &&
                 !strcmp(jstr(n, "content"), META))
            replace = 1;
        else
            return lethe_errf(s->err, s->errlen,
                              "tokenizer file '%s': normalizer '%s' is not supported (Prepend "
                              "'▁' and Replace ' ' -> '▁' are)",
                              s->path, ty ? ty : "?");
        if (n == norm) break;
    }
    t->add_prefix = prepend;
    if (cJSON_IsObject(pre)) {
        const char *ty = jstr(pre, "type"), *sch = jstr(pre, "prepend_scheme");
        if (!ty || strcmp(ty, "Metaspace") != 0 || !jstr(pre, "replacement") ||
            strcmp(jstr(pre, "replacement"), META) != 0)
            return lethe_errf(s->err, s->errlen,
                              "tokenizer file '%s': pre_tokenizer '%s' does not fit a "
                              "SentencePiece model (Metaspace with '▁' does)",
                              s->path, ty ? ty : "?");
        replace = 1;
        t->add_prefix = sch ? (!strcmp(sch, "always")  ? 1
                               : !strcmp(sch, "first") ? 2
                                                       : 0)
                            : jtrue(pre, "add_prefix_space");
    }
    if (!replace)
        return bad(s, "a SentencePiece-style model needs spaces replaced by '▁' (a Replace "
                      "normalizer or the Metaspace pre-tokenizer)");
    return 0;
}

/* Llama-3's pre-tokenizer: Split by its regex, then ByteLevel without its own regex. */
static int llama3_pretok(const src *s, const cJSON *pre)
{
    int split = 0, bytelevel = 0;
    for (const cJSON *p = cJSON_IsObject(pre) ? seq_items(pre, "pretokenizers") : NULL; p;
         p = p->next) {
        const char *ty = jstr(p, "type");
        const char *re = jstr(cJSON_GetObjectItemCaseSensitive(p, "pattern"), "Regex");
        if (ty && !strcmp(ty, "Split") && re && !strcmp(re, LLAMA3_REGEX))
            split = 1;
        else if (ty && !strcmp(ty, "ByteLevel") && !jtrue(p, "use_regex"))
            bytelevel = 1;
        else
            break;
        if (p == pre) break;
    }
    if (!split || !bytelevel)
        return bad(s, "pre_tokenizer is not Llama-3's (Split with its regex, then ByteLevel "
                      "with use_regex false)");
    return 0;
}

static int first_id(const tokenizer *t, const char *const *names)
{
    for (; *names; names++) {
        int id = tokenizer_token_id(t, *names);
        if (id >= 0) return id;
    }
    return -1;
}

/* The model's kind, vocabulary, merges and settings; json is the parsed file. */
static int hf_build(const src *s, tokenizer *t, const cJSON *json)
{
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(json, "model");
    const cJSON *norm = cJSON_GetObjectItemCaseSensitive(json, "normalizer");
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(json, "pre_tokenizer");
    const char *ty = jstr(model, "type");
    if (!ty) return bad(s, "model.type is missing");
    if (strcmp(ty, "BPE") != 0)
        return lethe_errf(s->err, s->errlen,
                          "tokenizer file '%s': model.type '%s' is not supported (BPE only)",
                          s->path, ty);
    int is_spm = jtrue(model, "byte_fallback") || (cJSON_IsObject(norm) && !cJSON_IsObject(pre)) ||
                 (jstr(pre, "type") && !strcmp(jstr(pre, "type"), "Metaspace"));
    t->kind = is_spm ? TOKENIZER_SPM : TOKENIZER_LLAMA3;
    char **tokens = NULL, **merges = NULL;
    int nv = 0, nm = 0, rc = -1;
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(json, "added_tokens");
    if (read_vocab(s, model, added, &tokens, &t->ptype, &nv)) goto out;
    if (is_spm) {
        if (spm_spaces(s, t, norm, pre) ||
            tk_set_vocab(t, tokens, nv, s->origin, s->err, s->errlen))
            goto out;
    } else {
        if (llama3_pretok(s, pre)) goto out;
        if (tk_bytelevel_setup(t, tokens, nv, NULL, 0, s->origin, s->err, s->errlen)) goto out;
    }
    if (read_merges(s, t, model, &merges, &nm) ||
        tk_set_merges(t, merges, nm, s->origin, s->err, s->errlen))
        goto out;
    t->ignore_merges = jtrue(model, "ignore_merges");
    t->byte_fallback = jtrue(model, "byte_fallback");
    const char *unk = jstr(model, "unk_token");
    t->unk_id = unk ? tokenizer_token_id(t, unk) : -1;
    if (unk && t->unk_id < 0) {
        bad(s, "model.unk_token is not in the vocabulary");
        goto out;
    }
    if (t->unk_id >= 0) t->ptype[t->unk_id] = TK_UNKNOWN;
    for (int i = 0; is_spm && t->byte_fallback && i < nv; i++)
        if (t->ptype[i] == TK_NORMAL && !strncmp(tokens[i], "<0x", 3) && strlen(tokens[i]) == 6)
            t->ptype[i] = TK_BYTE;
    if (tk_set_added(t, 1)) {
        bad(s, "out of memory");
        goto out;
    }
    rc = is_spm ? tk_spm_setup(t, s->origin, s->err, s->errlen) : 0;
out:
    for (int i = 0; merges && i < nm; i++) free(merges[i]);
    free(merges);
    free(tokens);
    return rc;
}

int tk_hf_json_load(tokenizer **out, const char *path, int need_eos, char *err, size_t errlen)
{
    *out = NULL;
    src s = {path, err, errlen, ""};
    snprintf(s.origin, sizeof s.origin, "tokenizer file '%s'", path);
    size_t n;
    char *text = safe_read(path, "tokenizer file", LETHE_MAX_TOKENIZER, &n, err, errlen);
    if (!text) return -1;
    cJSON *json = cJSON_ParseWithLength(text, n);
    free(text);
    tokenizer *t = tk_new(TOKENIZER_LLAMA3);
    int rc = -1;
    if (!t)
        bad(&s, "out of memory");
    else if (!cJSON_IsObject(json))
        bad(&s, "not a JSON object (truncated?)");
    else
        rc = hf_build(&s, t, json);
    cJSON_Delete(json);
    if (rc == 0) {
        static const char *const bos[] = {"<|begin_of_text|>", "<s>", "<bos>", NULL};
        static const char *const eos[] = {"<|end_of_text|>", "</s>", "<|endoftext|>", "<eos>",
                                          NULL};
        t->bos_id = first_id(t, bos);
        t->eos_id = t->pad_id = first_id(t, eos);
        if (need_eos && t->eos_id < 0)
            rc = bad(&s, "no end-of-text piece (<|end_of_text|>, </s>, <|endoftext|>, <eos>); "
                         "load the model directory so that tokenizer_config.json names it");
    }
    if (rc)
        tokenizer_free(t);
    else
        *out = t;
    return rc;
}

int tokenizer_hf_json_load(tokenizer **out, const char *path, char *err, size_t errlen)
{
    return tk_hf_json_load(out, path, 1, err, errlen);
}
