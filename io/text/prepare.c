/* io/text/prepare.c — JSON lines -> HDF5 token dataset: the options, the run (its passes
 * over the inputs, the block of rows, the tokenizer it builds or loads) and its report;
 * the records of each format are prepare_records.c, the inputs' SHA-256 prepare_sha256.c. */
#define _POSIX_C_SOURCE 200809L /* getline, strdup, strndup */
#include "../../mpi/fatal.h"
#include "prepare.h"
#include "../dataset.h"
#include "../safefile.h"
#include "tokenizer.h"
#include "prepare_impl.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- options ------------------------------------------------------------------------- */

void prepare_opts_defaults(prepare_opts *o)
{
    memset(o, 0, sizeof *o);
    o->tokenizer = "byte";
    o->word_min_count = 1;
    o->seq_len = 256;
    o->prompt_template = "[INST] {q} [/INST]";
    o->answer_prefix = " ";
    o->truncate = 1;
    o->vocab_size = o->pad_id = o->eos_id = -1;
}

/* ---- the run (its state: prepare_impl.h; the records: prepare_records.c) ---------- */

const char *const pr_fmt_names[3] = {"qa", "text", "tokens"};

int pr_perr(prep *p, const char *fmt, ...)
{
    char m[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, sizeof m, fmt, ap);
    va_end(ap);
    return lethe_errf(p->err, p->errlen, "prepare: '%s' line %lld: %s", p->path, (long long)p->line,
                      m);
}

static int blk_alloc(prep *p)
{
    int64_t t = p->t, k = p->k;
    size_t per = 4 * (size_t)t + 16 + (p->has_para ? 4 * (size_t)t + 8 : 0) +
                 (k ? ((size_t)k * (4 * (size_t)t + 8)) : 0);
    int64_t cap = (int64_t)((4u << 20) / per);
    if (cap < 1) cap = 1;
    if (cap > p->rows) cap = p->rows;
    p->blk_cap = cap;
    dataset_rows *b = &p->blk;
    int oom = 0;
#define ALLOC(x, n) oom |= !((x) = malloc((size_t)(n)))
    ALLOC(b->ids, cap * t * 4);
    ALLOC(b->lengths, cap * 4);
    ALLOC(b->answer_start, cap * 4);
    ALLOC(b->sample_id, cap * 8);
    if (p->has_para) {
        ALLOC(b->para_ids, cap * t * 4);
        ALLOC(b->para_lengths, cap * 4);
        ALLOC(b->para_answer_start, cap * 4);
    }
    if (k) {
        ALLOC(b->pert_ids, cap * k * t * 4);
        ALLOC(b->pert_lengths, cap * k * 4);
        ALLOC(b->pert_answer_start, cap * k * 4);
    }
    ALLOC(p->ids_seen, p->rows * 16);
#undef ALLOC
    if (oom)
        return lethe_errf(p->err, p->errlen, "prepare: out of memory for %lld rows",
                          (long long)cap);
    return 0;
}

static void blk_free(prep *p)
{
    void **all = (void **)&p->blk;
    for (size_t i = 0; i < sizeof p->blk / sizeof(void *); i++) free(all[i]);
    memset(&p->blk, 0, sizeof p->blk);
    free(p->ids_seen);
    p->ids_seen = NULL;
}

int pr_blk_flush(prep *p)
{
    if (!p->blk_n) return 0;
    if (dsw_write(p->w, &p->blk, p->written, p->blk_n, p->err, p->errlen)) return -1;
    p->written += p->blk_n;
    p->blk_n = 0;
    return 0;
}

/* Offset of the first byte of s[0..n) that is not well-formed UTF-8 (RFC 3629: no
 * overlong forms, no surrogates, nothing above U+10FFFF) or is NUL; n when none. JSON
 * text is UTF-8, and a NUL would silently cut a string short. */
size_t pr_utf8_bad_at(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t k = c < 0x80             ? 0
                   : (c & 0xE0) == 0xC0 ? 1
                   : (c & 0xF0) == 0xE0 ? 2
                   : (c & 0xF8) == 0xF0 ? 3
                                        : 9;
        if (c == 0 || k == 9 || c == 0xC0 || c == 0xC1 || c > 0xF4 || i + k >= n) return i;
        uint32_t cp = k ? c & (0x3F >> k) : c;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xC0) != 0x80) return i;
            cp = cp << 6 | (s[i + j] & 0x3F);
        }
        if ((k == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
            (k == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
            return i;
        i += k + 1;
    }
    return n;
}

/* A carriage return that does not end a CRLF pair (or the file): lines ending in CR
 * alone (old Mac files) would be read as one line, so they are refused, not guessed at. */
static int line_ends_once(prep *p, const char *buf, size_t n)
{
    for (const char *c = memchr(buf, '\r', n); c;
         c = memchr(c + 1, '\r', n - (size_t)(c + 1 - buf)))
        if ((size_t)(c + 1 - buf) < n && c[1] != '\n')
            return pr_perr(p,
                           "byte %zu: a carriage return (CR) that is not followed by a line "
                           "feed; lines must end in LF or CRLF (convert the file, e.g. "
                           "tr '\\r' '\\n')",
                           (size_t)(c - buf) + 1);
    return 0;
}

/* One record per line: anything but blanks after the JSON value (a second record, a
 * stray word) is refused, so that no record is silently dropped. */
static int only_space_after(prep *p, const char *buf, size_t n, size_t at)
{
    for (size_t i = at; i < n; i++) {
        if (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\r' || buf[i] == '\n') continue;
        char shown[24];
        size_t k = 0;
        for (; k < 20 && i + k < n && buf[i + k] != '\n'; k++)
            shown[k] = buf[i + k] < 0x20 || buf[i + k] > 0x7e ? '?' : buf[i + k];
        shown[k] = 0;
        return pr_perr(p, "byte %zu: text after the JSON record ('%s'); one record per line", i + 1,
                       shown);
    }
    return 0;
}

/* One pass over one input file. */
static int run_input(prep *p, const prepare_input *in)
{
    p->path = in->path;
    p->line = 0;
    /* regular files only (never /dev/zero or a FIFO); each line bounded */
    FILE *f = safe_open_read(in->path, "prepare: input", LETHE_MAX_JSONL, NULL, p->err, p->errlen);
    if (!f) return -1;
    char *buf = NULL, lerr[1400];
    size_t cap = 0;
    long n;
    int rc = 0, fmt = -1;
    int64_t records = 0;
    p->records = 0;
    while (rc == 0 && (n = safe_getline(f, &buf, &cap, LETHE_MAX_JSONL_LINE, in->path, p->line + 1,
                                        lerr, sizeof lerr)) > 0) {
        p->line++;
        size_t i = 0;
        while (i < (size_t)n &&
               (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\r' || buf[i] == '\n'))
            i++;
        if (i == (size_t)n) continue;
        size_t bad = pr_utf8_bad_at((const unsigned char *)buf, (size_t)n);
        if (bad < (size_t)n) {
            rc = buf[bad] ? pr_perr(p, "byte %zu: invalid UTF-8 (0x%02x)", bad + 1,
                                    (unsigned char)buf[bad])
                          : pr_perr(p, "byte %zu: NUL byte", bad + 1);
            break;
        }
        rc = line_ends_once(p, buf, (size_t)n);
        if (rc) break;
        const char *end = NULL;
        cJSON *rec = cJSON_ParseWithLengthOpts(buf, (size_t)n, &end, 0);
        if (!rec || !cJSON_IsObject(rec)) {
            rc = pr_perr(p, "not a JSON object");
            cJSON_Delete(rec);
            break;
        }
        rc = only_space_after(p, buf, (size_t)n, (size_t)(end - buf));
        if (rc) {
            cJSON_Delete(rec);
            break;
        }
        records++;
        if (fmt < 0) {
            fmt = pr_detect(p, rec, in->format);
            if (fmt < 0) rc = -1;
            p->fmt = fmt;
        }
        if (rc == 0 && fmt == FMT_TOKENS && p->o->tokenizer &&
            strcmp(p->o->tokenizer, "word") == 0 && p->pass == PASS_WORDS)
            rc = pr_perr(p, "pre-tokenised records cannot be used with the word tokenizer, whose "
                            "vocabulary is built from text");
        if (rc == 0) {
            if (fmt == FMT_QA)
                rc = pr_do_qa(p, rec);
            else if (fmt == FMT_TEXT)
                rc = pr_do_text(p, rec);
            else
                rc = pr_do_tokens(p, rec);
        }
        cJSON_Delete(rec);
    }
    if (rc == 0 && n < 0) rc = lethe_errf(p->err, p->errlen, "prepare: input %s", lerr);
    if (rc == 0 && ferror(f))
        rc = lethe_errf(p->err, p->errlen, "prepare: input '%s': read error", in->path);
    p->records = records;
    if (rc == 0 && records == 0)
        rc = lethe_errf(p->err, p->errlen, "prepare: input '%s': no records", in->path);
    free(buf);
    fclose(f);
    return rc;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static int make_tokenizer(prep *p, char *err, size_t errlen)
{
    const prepare_opts *o = p->o;
    const char *name = o->tokenizer ? o->tokenizer : "byte";
    if (o->tokenizer_dir) {
        if (tokenizer_load_dir(&p->tk, o->tokenizer_dir, err, errlen)) return -1;
    } else if (strcmp(name, "byte") == 0) {
        p->tk = tokenizer_byte();
        if (!p->tk) return lethe_errf(err, errlen, "prepare: out of memory");
    } else if (strcmp(name, "gpt2") == 0) {
        if (!o->gpt2_encoder || !o->gpt2_merges)
            return lethe_errf(err, errlen,
                              "prepare: tokenizer 'gpt2' needs the encoder.json and "
                              "vocab.bpe paths");
        if (tokenizer_gpt2_load(&p->tk, o->gpt2_encoder, o->gpt2_merges, err, errlen)) return -1;
    } else if (strcmp(name, "word") == 0) {
        p->wc = word_counter_new();
        if (!p->wc) return lethe_errf(err, errlen, "prepare: out of memory");
        p->pass = PASS_WORDS;
        for (int i = 0; i < o->n_inputs; i++)
            if (run_input(p, &o->inputs[i])) return -1;
        if (tokenizer_word_build(&p->tk, p->wc, o->word_min_count, o->word_max_vocab, err, errlen))
            return -1;
    } else if (strcmp(name, "none") == 0) {
        if (o->vocab_size < 1 || o->pad_id < 0 || o->pad_id >= o->vocab_size || o->eos_id < 0 ||
            o->eos_id >= o->vocab_size)
            return lethe_errf(err, errlen,
                              "prepare: tokenizer 'none' needs vocab_size >= 1 and pad_id, "
                              "eos_id in [0, vocab_size) (got %lld, %lld, %lld)",
                              (long long)o->vocab_size, (long long)o->pad_id, (long long)o->eos_id);
        p->vocab = o->vocab_size;
        p->pad = o->pad_id;
        p->eos = o->eos_id;
        return 0;
    } else {
        return lethe_errf(err, errlen,
                          "prepare: tokenizer '%s' is not one of byte, word, gpt2, none", name);
    }
    p->vocab = tokenizer_vocab_size(p->tk);
    p->pad = tokenizer_pad_id(p->tk);
    p->eos = tokenizer_eos_id(p->tk);
    return 0;
}

/* How the rows were made: the legacy prompt_template and answer_prefix, or the
 * template's name, system prompt, date ("" when it uses none) and its two strings. */
static int write_root_attrs(const prep *p, hid_t f)
{
    const prepare_opts *o = p->o;
    const pr_template *t = p->tmpl;
    if (!t)
        return h5_attr_write_str(f, "prompt_template", o->prompt_template) ||
               h5_attr_write_str(f, "answer_prefix", o->answer_prefix) ||
               h5_attr_write_i64(f, "seq_len", o->seq_len);
    return h5_attr_write_str(f, "template", t->name) ||
           h5_attr_write_str(f, "system_prompt", t->system ? t->system : "") ||
           h5_attr_write_str(f, "template_date", t->date ? t->date : "") ||
           h5_attr_write_str(f, "prompt_template", t->prompt) ||
           h5_attr_write_str(f, "answer_template", t->answer) ||
           h5_attr_write_i64(f, "seq_len", o->seq_len);
}

int prepare_run(const prepare_opts *o, char *err, size_t errlen)
{
    if (!o->output || !o->output[0]) return lethe_errf(err, errlen, "prepare: no output path");
    if (o->n_inputs < 1 || o->n_inputs > PREPARE_MAX_INPUTS || !o->inputs)
        return lethe_errf(err, errlen, "prepare: %d inputs, expected 1..%d", o->n_inputs,
                          PREPARE_MAX_INPUTS);
    if (o->seq_len < 2 || o->seq_len > (1 << 24))
        return lethe_errf(err, errlen, "prepare: seq_len %d outside [2, %d]", o->seq_len, 1 << 24);
    if (!o->template_name && (!o->prompt_template || !strstr(o->prompt_template, "{q}")))
        return lethe_errf(err, errlen, "prepare: prompt_template '%s' has no {q}",
                          o->prompt_template ? o->prompt_template : "(null)");
    if (!o->template_name && !o->answer_prefix)
        return lethe_errf(err, errlen, "prepare: answer_prefix is NULL");
    char sp[PREPARE_MAX_INPUTS][DATASET_SPLIT_MAX];
    for (int i = 0; i < o->n_inputs; i++) {
        if (!o->inputs[i].path || !o->inputs[i].split)
            return lethe_errf(err, errlen, "prepare: input %d has no path or no split name", i);
        if (dataset_split_path(sp[i], sizeof sp[i], o->inputs[i].split, err, errlen)) {
            char m[512];
            snprintf(m, sizeof m, "%s", err);
            return lethe_errf(err, errlen, "prepare: input '%s': %s", o->inputs[i].path, m);
        }
        if (strcmp(sp[i], "/tokenizer") == 0)
            return lethe_errf(err, errlen,
                              "prepare: input '%s': split name 'tokenizer' is reserved",
                              o->inputs[i].path);
        for (int j = 0; j < i; j++)
            if (strcmp(sp[i], sp[j]) == 0 ||
                (strncmp(sp[i], sp[j], strlen(sp[j])) == 0 && sp[i][strlen(sp[j])] == '/') ||
                (strncmp(sp[j], sp[i], strlen(sp[i])) == 0 && sp[j][strlen(sp[i])] == '/'))
                return lethe_errf(err, errlen,
                                  "prepare: splits '%s' (input '%s') and '%s' (input "
                                  "'%s') collide",
                                  sp[j], o->inputs[j].path, sp[i], o->inputs[i].path);
    }

    prep p = {0};
    p.o = o;
    p.t = o->seq_len;
    p.err = err;
    p.errlen = errlen;
    dataset_writer w = {.file = -1, .group = -1};
    pr_template tmpl;
    memset(&tmpl, 0, sizeof tmpl);
    prepare_report rep;
    memset(&rep, 0, sizeof rep);
    int rc = -1, open = 0;

    /* digests first: cheap, and a missing file is reported before any work */
    sha256_ctx all;
    pr_sha256_init(&all);
    char hex[PREPARE_MAX_INPUTS][65];
    for (int i = 0; i < o->n_inputs; i++) {
        sha256_ctx one;
        pr_sha256_init(&one);
        if (pr_sha256_file2(o->inputs[i].path, &one, &all, err, errlen)) goto out;
        pr_sha256_hex(&one, hex[i]);
    }
    char allhex[65];
    pr_sha256_hex(&all, allhex);
    snprintf(rep.source_digest, sizeof rep.source_digest, "sha256:%s", allhex);

    if (o->template_name) {
        if (pr_template_load(&tmpl, o, err, errlen)) goto out;
        p.tmpl = &tmpl;
    }
    if (make_tokenizer(&p, err, errlen)) goto out;
    if (p.tmpl && p.tk && pr_template_resolve(p.tmpl, p.tk, p.eos, err, errlen)) goto out;
    const char *tk_name = p.tk ? tokenizer_name(p.tk) : o->tokenizer; /* llama3/spm: the kind */
    dataset_attrs a = {tk_name ? tk_name : "byte", p.vocab, p.pad, p.eos, rep.source_digest};
    if (dsw_create(&w, o->output, &a, err, errlen)) goto out;
    open = 1;
    if (write_root_attrs(&p, w.file)) {
        lethe_errf(err, errlen, "prepare: '%s': cannot write root attributes", o->output);
        goto out;
    }
    if (p.tk && tokenizer_save(p.tk, w.file, err, errlen)) goto out;
    p.w = &w;
    for (int i = 0; i < o->n_inputs; i++) {
        p.rows = p.truncated = p.dropped = p.written = p.blk_n = p.merged = 0;
        p.shape_known = p.k = p.has_para = 0;
        p.pass = PASS_COUNT;
        if (run_input(&p, &o->inputs[i])) goto out;
        if (p.rows < 1) {
            lethe_errf(err, errlen,
                       "prepare: input '%s': no rows (every text window was shorter than "
                       "2 tokens)",
                       o->inputs[i].path);
            goto out;
        }
        prepare_split_report *r = &rep.split[rep.n_splits++];
        snprintf(r->split, sizeof r->split, "%s", sp[i]);
        snprintf(r->format, sizeof r->format, "%s", pr_fmt_names[p.fmt]);
        r->rows = p.rows;
        r->k = p.k;
        r->has_para = p.has_para;
        if (dsw_split_begin(&w, sp[i], p.rows, p.t, p.k, p.has_para, p.k > 0, err, errlen) ||
            blk_alloc(&p))
            goto out;
        int64_t rows = p.rows;
        p.truncated = p.dropped = p.merged = 0;
        p.pass = PASS_WRITE;
        if (run_input(&p, &o->inputs[i]) || pr_blk_flush(&p)) goto out;
        if (p.written != rows) {
            lethe_errf(err, errlen,
                       "prepare: input '%s' changed while it was read (%lld rows, then "
                       "%lld)",
                       o->inputs[i].path, (long long)rows, (long long)p.written);
            goto out;
        }
        r->truncated = p.truncated;
        r->dropped_windows = p.dropped;
        /* sample ids must be unique: the NPO reference cache is keyed by them */
        qsort(p.ids_seen, (size_t)rows, 16, cmp_i64);
        for (int64_t j = 1; j < rows; j++)
            if (p.ids_seen[2 * j] == p.ids_seen[2 * j - 2]) {
                int64_t a = p.ids_seen[2 * j - 1], b = p.ids_seen[2 * j + 1];
                lethe_errf(err, errlen,
                           "prepare: '%s' lines %lld and %lld: sample_id %lld appears twice",
                           o->inputs[i].path, (long long)(a < b ? a : b),
                           (long long)(a < b ? b : a), (long long)p.ids_seen[2 * j]);
                goto out;
            }
        r->records = p.records;
        char src[96];
        snprintf(src, sizeof src, "sha256:%.64s", hex[i]);
        if (dsw_split_attr_str(&w, "source", o->inputs[i].path, err, errlen) ||
            dsw_split_attr_str(&w, "source_digest", src, err, errlen) ||
            dsw_split_attr_str(&w, "format", pr_fmt_names[p.fmt], err, errlen) ||
            dsw_split_attr_i64(&w, "truncated", p.truncated, err, errlen) ||
            (p.tmpl && p.fmt == FMT_QA &&
             dsw_split_attr_i64(&w, "prompt_merged", p.merged, err, errlen)) ||
            dsw_split_end(&w, err, errlen))
            goto out;
        blk_free(&p);
        if (o->verbose)
            printf("prepare: %s <- %s (%s): %lld rows, T=%d, K=%d, paraphrased %s, truncated %lld, "
                   "dropped windows %lld\n",
                   sp[i], o->inputs[i].path, pr_fmt_names[p.fmt], (long long)rows, p.t, p.k,
                   p.has_para ? "yes" : "no", (long long)p.truncated, (long long)p.dropped);
        if (o->verbose && p.tmpl && p.fmt == FMT_QA)
            printf("prepare: %s: template %s, %lld rows with the prompt's last token merged into "
                   "the answer's first\n",
                   sp[i], p.tmpl->name, (long long)p.merged);
    }
    if (dsw_close(&w, err, errlen)) {
        open = 0;
        goto out;
    }
    open = 0;
    rep.vocab_size = p.vocab;
    rep.pad_id = p.pad;
    rep.eos_id = p.eos;
    if (o->verbose)
        printf("prepare: wrote '%s': tokenizer %s, vocab %lld, pad %lld, eos %lld, %s\n", o->output,
               a.tokenizer, (long long)p.vocab, (long long)p.pad, (long long)p.eos,
               rep.source_digest);
    if (o->report) *o->report = rep;
    rc = 0;
out:
    if (open) dsw_abort(&w);
    blk_free(&p);
    pr_template_free(&tmpl);
    tok_ids_free(&p.scratch);
    tok_ids_free(&p.prompt);
    free(p.text);
    tokenizer_free(p.tk);
    word_counter_free(p.wc);
    return rc;
}
