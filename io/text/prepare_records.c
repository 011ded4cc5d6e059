/* io/text/prepare_records.c — one JSON record of `prepare` (io/text/prepare.h) in each
 * format: qa (question and answer through the templates), text, and pre-tokenized ids;
 * the detection of a record's format, and the shape and row bookkeeping they share
 * (the run's state: prepare_impl.h). */
#define _POSIX_C_SOURCE 200809L /* getline, strdup, strndup */
#include "../../mpi/fatal.h"
#include "prepare.h"
#include "../dataset.h"
#include "tokenizer.h"
#include "prepare_impl.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int pr_encode(prep *p, const char *s, size_t n, tok_ids *out)
{
    if (p->pass == PASS_WORDS) {
        word_counter_add(p->wc, s, n);
        return 0;
    }
    if (!p->tk) /* tokenizer "none": only pre-tokenised records can be read */
        return pr_perr(p, "text needs a tokenizer (byte, word or gpt2); tokenizer 'none' reads "
                          "pre-tokenised records (input_ids, answer_start) only");
    if (tokenizer_encode(p->tk, s, n, out)) return pr_perr(p, "out of memory while tokenising");
    return 0;
}

/* template(q): every "{q}" replaced by the question. */
static int render(prep *p, const char *tmpl, const char *key, const char *val, const char **out,
                  size_t *outn)
{
    size_t kl = strlen(key), vl = strlen(val), n = 0, need = strlen(tmpl) + 1;
    for (const char *s = strstr(tmpl, key); s; s = strstr(s + kl, key)) need += vl;
    if (need > p->text_cap) {
        char *b = realloc(p->text, need);
        if (!b) return pr_perr(p, "out of memory");
        p->text = b;
        p->text_cap = need;
    }
    for (const char *s = tmpl; *s;) {
        if (strncmp(s, key, kl) == 0) {
            memcpy(p->text + n, val, vl);
            n += vl;
            s += kl;
        } else {
            p->text[n++] = *s++;
        }
    }
    p->text[n] = 0;
    *out = p->text;
    *outn = n;
    return 0;
}

/* Fills one sequence (T ids) from prompt ids + answer ids (+ eos); returns length. */
static int fill_seq(prep *p, const tok_ids *prompt, const tok_ids *ans, int add_eos, int32_t *row,
                    int32_t *len, int32_t *as, const char *what)
{
    int64_t full = (int64_t)prompt->n + ans->n + (add_eos ? 1 : 0);
    if (prompt->n >= p->t)
        return pr_perr(p, "%s: the prompt is %d tokens, seq_len %d leaves no room for the answer",
                       what, prompt->n, p->t);
    if (full > p->t) {
        if (!p->o->truncate)
            return pr_perr(p, "%s: %lld tokens > seq_len %d (truncation is off)", what,
                           (long long)full, p->t);
        p->truncated++;
    }
    if (!row) return 0;
    int n = 0;
    for (int i = 0; i < prompt->n && n < p->t; i++) row[n++] = prompt->ids[i];
    for (int i = 0; i < ans->n && n < p->t; i++) row[n++] = ans->ids[i];
    if (add_eos && n < p->t) row[n++] = (int32_t)p->eos;
    *len = n;
    *as = prompt->n;
    for (int i = n; i < p->t; i++) row[i] = (int32_t)p->pad;
    return 0;
}

/* Claims the next row of the block (write pass) and records its sample id. */
static int64_t row_claim(prep *p, int64_t sample_id)
{
    if (p->blk_n == p->blk_cap && pr_blk_flush(p)) return -1;
    int64_t r = p->written + p->blk_n;
    p->ids_seen[2 * r] = sample_id < 0 ? r : sample_id;
    p->ids_seen[2 * r + 1] = p->line;
    p->blk.sample_id[p->blk_n] = p->ids_seen[2 * r];
    return p->blk_n++;
}

/* Shape checks across records: every record of a split has the same K and the same
 * optional sets. */
static int note_shape(prep *p, int has_para, int k)
{
    if (!p->shape_known) {
        p->has_para = has_para;
        p->k = k;
        p->shape_known = 1;
        return 0;
    }
    if (has_para != p->has_para)
        return pr_perr(p, "%s a paraphrased answer but earlier records %s",
                       has_para ? "has" : "lacks", p->has_para ? "have one" : "do not");
    if (k != p->k) return pr_perr(p, "has %d perturbed answers, earlier records have %d", k, p->k);
    return 0;
}

static int get_sample_id(prep *p, cJSON *rec, int64_t *sid)
{
    *sid = -1;
    cJSON *s = cJSON_GetObjectItemCaseSensitive(rec, "sample_id");
    if (!s) return 0;
    if (!cJSON_IsNumber(s) || s->valuedouble < 0 || s->valuedouble > 9.0e15 ||
        s->valuedouble != (double)(int64_t)s->valuedouble)
        return pr_perr(p, "key 'sample_id': expected a non-negative integer");
    *sid = (int64_t)s->valuedouble;
    return 0;
}

static const char *get_str(prep *p, cJSON *rec, const char *key, int required, int *bad)
{
    cJSON *s = cJSON_GetObjectItemCaseSensitive(rec, key);
    if (!s || cJSON_IsNull(s)) {
        if (required) {
            pr_perr(p, "key '%s' is missing", key);
            *bad = 1;
        }
        return NULL;
    }
    if (!cJSON_IsString(s)) {
        pr_perr(p, "key '%s': expected a string", key);
        *bad = 1;
        return NULL;
    }
    return s->valuestring;
}

/* The row, its length and answer_start of candidate j of row r in the block (0: the
 * answer, 1: the paraphrase, 2..: the perturbed answers); NULLs outside the write pass. */
static void qa_slot(prep *p, int64_t r, int j, int32_t **row, int32_t **len, int32_t **as)
{
    const int64_t t = p->t;
    if (p->pass != PASS_WRITE) {
        *row = *len = *as = NULL;
    } else if (j == 0) {
        *row = p->blk.ids + r * t;
        *len = p->blk.lengths + r;
        *as = p->blk.answer_start + r;
    } else if (j == 1) {
        *row = p->blk.para_ids + r * t;
        *len = p->blk.para_lengths + r;
        *as = p->blk.para_answer_start + r;
    } else {
        int64_t c = r * p->k + (j - 2);
        *row = p->blk.pert_ids + c * t;
        *len = p->blk.pert_lengths + c;
        *as = p->blk.pert_answer_start + c;
    }
}

static void qa_what(char *what, size_t n, int j)
{
    snprintf(what, n,
             j == 0   ? "answer"
             : j == 1 ? "paraphrased_answer"
                      : "perturbed_answer %d",
             j - 2);
}

/* A qa record through a template (prepare_template.c): each candidate's row is the
 * tokens of the whole rendering, its answer_start the longest common prefix with the
 * tokens of the prompt alone (io/text/prepare.h). */
static int qa_templated(prep *p, const char *q, const char *a, const char *para, cJSON *pert, int k,
                        int64_t sid)
{
    if (pr_template_encode(p, 0, q, NULL, &p->prompt)) return -1;
    int64_t r = 0;
    if (p->pass == PASS_WRITE && (r = row_claim(p, sid)) < 0) return -1;
    const char *answers[2] = {a, para};
    for (int j = 0; j < 2 + k; j++) {
        const char *ans = j < 2 ? answers[j] : cJSON_GetArrayItem(pert, j - 2)->valuestring;
        if (!ans) continue;
        if (pr_template_encode(p, 1, q, ans, &p->scratch)) return -1;
        if (p->pass == PASS_WORDS) continue;
        int n = 0;
        while (n < p->prompt.n && n < p->scratch.n && p->prompt.ids[n] == p->scratch.ids[n]) n++;
        if (n < p->prompt.n && p->pass == PASS_WRITE) p->merged++;
        tok_ids head = {p->scratch.ids, n, n}, tail = {p->scratch.ids + n, p->scratch.n - n, 0};
        int32_t *row, *len, *as;
        char what[48];
        qa_slot(p, r, j, &row, &len, &as);
        qa_what(what, sizeof what, j);
        if (tail.n == 0) /* nothing to predict: an empty answer and no closing token */
            return pr_perr(p, "%s: template '%s' gives no token after the prompt", what,
                           p->tmpl->name);
        if (fill_seq(p, &head, &tail, 0, row, len, as, what)) return -1;
    }
    if (p->pass == PASS_COUNT) p->rows++;
    return 0;
}

int pr_do_qa(prep *p, cJSON *rec)
{
    int bad = 0;
    const char *q = get_str(p, rec, "question", 1, &bad);
    const char *a = bad ? NULL : get_str(p, rec, "answer", 1, &bad);
    const char *para = bad ? NULL : get_str(p, rec, "paraphrased_answer", 0, &bad);
    if (bad) return -1;
    cJSON *pert = cJSON_GetObjectItemCaseSensitive(rec, "perturbed_answer");
    int k = 0;
    if (pert && !cJSON_IsNull(pert)) {
        if (!cJSON_IsArray(pert) || cJSON_GetArraySize(pert) < 1)
            return pr_perr(p, "key 'perturbed_answer': expected a non-empty list of strings");
        k = cJSON_GetArraySize(pert);
        for (int j = 0; j < k; j++)
            if (!cJSON_IsString(cJSON_GetArrayItem(pert, j)))
                return pr_perr(p, "key 'perturbed_answer' item %d: expected a string", j);
    }
    int64_t sid;
    if (get_sample_id(p, rec, &sid)) return -1;
    if (p->pass != PASS_WORDS && note_shape(p, para != NULL, k)) return -1;

    if (p->tmpl) return qa_templated(p, q, a, para, pert, k, sid);
    const char *pt = NULL;
    size_t ptn = 0;
    if (render(p, p->o->prompt_template, "{q}", q, &pt, &ptn)) return -1;
    p->prompt.n = 0;
    if (pr_encode(p, pt, ptn, &p->prompt)) return -1;
    const char *answers[2] = {a, para};
    int32_t *row = NULL, *len = NULL, *as = NULL;
    int64_t r = 0;
    if (p->pass == PASS_WRITE && (r = row_claim(p, sid)) < 0) return -1;
    for (int j = 0; j < 2 + k; j++) {
        const char *ans = j < 2 ? answers[j] : cJSON_GetArrayItem(pert, j - 2)->valuestring;
        if (!ans) continue;
        size_t pl = strlen(p->o->answer_prefix), al = strlen(ans), atn = pl + al;
        if (atn + 1 > p->text_cap) {
            char *b = realloc(p->text, atn + 1);
            if (!b) return pr_perr(p, "out of memory");
            p->text = b;
            p->text_cap = atn + 1;
        }
        memcpy(p->text, p->o->answer_prefix, pl);
        memcpy(p->text + pl, ans, al + 1);
        p->scratch.n = 0;
        if (pr_encode(p, p->text, atn, &p->scratch)) return -1;
        if (p->pass == PASS_WORDS) continue;
        qa_slot(p, r, j, &row, &len, &as);
        char what[48];
        qa_what(what, sizeof what, j);
        if (fill_seq(p, &p->prompt, &p->scratch, 1, row, len, as, what)) return -1;
    }
    if (p->pass == PASS_COUNT) p->rows++;
    return 0;
}

int pr_do_text(prep *p, cJSON *rec)
{
    int bad = 0;
    const char *s = get_str(p, rec, "text", 1, &bad);
    if (bad) return -1;
    p->scratch.n = 0;
    if (pr_encode(p, s, strlen(s), &p->scratch)) return -1;
    if (p->pass == PASS_WORDS) return 0;
    if (note_shape(p, 0, 0)) return -1;
    tok_ids *v = &p->scratch;
    if (v->n == v->cap) { /* room for the EOS */
        int32_t *q = realloc(v->ids, (size_t)(v->cap + 1) * sizeof *q);
        if (!q) return pr_perr(p, "out of memory");
        v->ids = q;
        v->cap++;
    }
    v->ids[v->n++] = (int32_t)p->eos;
    for (int off = 0; off < v->n; off += p->t) {
        int n = v->n - off < p->t ? v->n - off : p->t;
        if (n < 2) {
            p->dropped++;
            continue;
        }
        if (p->pass == PASS_COUNT) {
            p->rows++;
            continue;
        }
        int64_t r = row_claim(p, -1);
        if (r < 0) return -1;
        int32_t *row = p->blk.ids + r * p->t;
        memcpy(row, v->ids + off, (size_t)n * 4);
        for (int i = n; i < p->t; i++) row[i] = (int32_t)p->pad;
        p->blk.lengths[r] = n;
        p->blk.answer_start[r] = 0;
    }
    return 0;
}

/* Reads a JSON list of ids into out (validated against the vocabulary). */
static int get_ids(prep *p, cJSON *rec, cJSON *arr, const char *key, tok_ids *out)
{
    (void)rec;
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) < 1)
        return pr_perr(p, "key '%s': expected a non-empty list of token ids", key);
    out->n = 0;
    int i = 0;
    for (cJSON *e = arr->child; e; e = e->next, i++) {
        /* the range first: converting a double beyond int64 is undefined */
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble >= (double)p->vocab ||
            e->valuedouble != (double)(int64_t)e->valuedouble)
            return pr_perr(p, "key '%s' item %d: expected a token id in [0, vocab_size %lld)", key,
                           i, (long long)p->vocab);
        if (out->n == out->cap) {
            int cap = out->cap ? out->cap * 2 : 256;
            int32_t *q = realloc(out->ids, (size_t)cap * sizeof *q);
            if (!q) return pr_perr(p, "out of memory");
            out->ids = q;
            out->cap = cap;
        }
        out->ids[out->n++] = (int32_t)e->valuedouble;
    }
    return 0;
}

static int get_int(prep *p, cJSON *v, const char *key, int64_t *out)
{
    if (!cJSON_IsNumber(v) || !(fabs(v->valuedouble) <= 9.0e15) ||
        v->valuedouble != (double)(int64_t)v->valuedouble)
        return pr_perr(p, "key '%s': expected an integer", key);
    *out = (int64_t)v->valuedouble;
    return 0;
}

/* One pre-tokenised sequence: ids with answer_start, truncated to T. */
static int tok_seq(prep *p, const tok_ids *ids, int64_t as, const char *key, int32_t *row,
                   int32_t *len, int32_t *asp)
{
    if (ids->n > p->t) {
        if (!p->o->truncate)
            return pr_perr(p, "key '%s': %d tokens > seq_len %d (truncation is off)", key, ids->n,
                           p->t);
        p->truncated++;
    }
    int n = ids->n < p->t ? ids->n : p->t;
    if (as < 0 || as >= n)
        return pr_perr(p, "key '%s': answer_start %lld outside [0, length %d)", key, (long long)as,
                       n);
    if (!row) return 0;
    memcpy(row, ids->ids, (size_t)n * 4);
    for (int i = n; i < p->t; i++) row[i] = (int32_t)p->pad;
    *len = n;
    *asp = (int32_t)as;
    return 0;
}

int pr_do_tokens(prep *p, cJSON *rec)
{
    if (p->pass == PASS_WORDS) return 0;
    cJSON *ids = cJSON_GetObjectItemCaseSensitive(rec, "input_ids");
    cJSON *as = cJSON_GetObjectItemCaseSensitive(rec, "answer_start");
    if (!as) return pr_perr(p, "key 'answer_start' is missing");
    cJSON *pids = cJSON_GetObjectItemCaseSensitive(rec, "paraphrased_ids");
    cJSON *pas = cJSON_GetObjectItemCaseSensitive(rec, "paraphrased_answer_start");
    cJSON *kids = cJSON_GetObjectItemCaseSensitive(rec, "perturbed_ids");
    cJSON *kas = cJSON_GetObjectItemCaseSensitive(rec, "perturbed_answer_start");
    if (!!pids != !!pas)
        return pr_perr(p, "keys 'paraphrased_ids' and 'paraphrased_answer_start' go together");
    if (!!kids != !!kas)
        return pr_perr(p, "keys 'perturbed_ids' and 'perturbed_answer_start' go together");
    int k = 0;
    if (kids) {
        if (!cJSON_IsArray(kids) || (k = cJSON_GetArraySize(kids)) < 1)
            return pr_perr(p, "key 'perturbed_ids': expected a non-empty list of id lists");
        if (!cJSON_IsArray(kas) || cJSON_GetArraySize(kas) != k)
            return pr_perr(p, "key 'perturbed_answer_start': expected a list of %d integers", k);
    }
    int64_t sid;
    if (get_sample_id(p, rec, &sid) || note_shape(p, pids != NULL, k)) return -1;
    int64_t r = 0, t = p->t, a = 0;
    if (p->pass == PASS_WRITE && (r = row_claim(p, sid)) < 0) return -1;
    int w = p->pass == PASS_WRITE;
    if (get_ids(p, rec, ids, "input_ids", &p->scratch) || get_int(p, as, "answer_start", &a) ||
        tok_seq(p, &p->scratch, a, "input_ids", w ? p->blk.ids + r * t : NULL,
                w ? p->blk.lengths + r : NULL, w ? p->blk.answer_start + r : NULL))
        return -1;
    if (pids &&
        (get_ids(p, rec, pids, "paraphrased_ids", &p->scratch) ||
         get_int(p, pas, "paraphrased_answer_start", &a) ||
         tok_seq(p, &p->scratch, a, "paraphrased_ids", w ? p->blk.para_ids + r * t : NULL,
                 w ? p->blk.para_lengths + r : NULL, w ? p->blk.para_answer_start + r : NULL)))
        return -1;
    for (int j = 0; j < k; j++) {
        char key[48];
        snprintf(key, sizeof key, "perturbed_ids[%d]", j);
        int64_t c = r * k + j;
        if (get_ids(p, rec, cJSON_GetArrayItem(kids, j), key, &p->scratch) ||
            get_int(p, cJSON_GetArrayItem(kas, j), "perturbed_answer_start", &a) ||
            tok_seq(p, &p->scratch, a, key, w ? p->blk.pert_ids + c * t : NULL,
                    w ? p->blk.pert_lengths + c : NULL, w ? p->blk.pert_answer_start + c : NULL))
            return -1;
    }
    if (p->pass == PASS_COUNT) p->rows++;
    return 0;
}

int pr_detect(prep *p, cJSON *rec, const char *want)
{
    int f;
    if (want && strcmp(want, "auto") != 0) {
        for (f = 0; f < 3; f++)
            if (strcmp(want, pr_fmt_names[f]) == 0) break;
        if (f == 3)
            return lethe_errf(
                p->err, p->errlen,
                "prepare: input '%s': format '%s' is not one of auto, qa, text, tokens", p->path,
                want);
        return f;
    }
    if (cJSON_GetObjectItemCaseSensitive(rec, "input_ids")) return FMT_TOKENS;
    if (cJSON_GetObjectItemCaseSensitive(rec, "question")) return FMT_QA;
    if (cJSON_GetObjectItemCaseSensitive(rec, "text")) return FMT_TEXT;
    return pr_perr(p, "cannot tell the record format: expected keys question+answer (qa), text "
                      "(text) or input_ids+answer_start (tokens)");
}
