/* io/text/prepare_muse.c — `lethe prepare --muse DIR`: MUSE-News or MUSE-Books as
 * published (muse-bench/MUSE-News, MUSE-Books: one folder per config, one file per
 * split, DIR/<config>/<split>.json, each a JSON array of records or JSON lines as the
 * `datasets` library writes them) mapped onto lethe's splits (the table below,
 * io/DATASETS.md "MUSE"). Raw, scal and sust text becomes text splits (windows of T
 * tokens, for training and unlearning); verbmem, knowmem and privleak become qa rows
 * whose prompt is exactly what the MUSE reference feeds the model: the verbmem prompt;
 * the few-shot prefix of the ICL file ("Question: q\nAnswer: a\n\n" per pair) then
 * "Question: q\nAnswer: "; nothing for a privleak text, which is all answer. Each file
 * is checked record by record and rewritten as lethe JSON lines in a private folder
 * (io/text/prepare_bench.c, shared with --tofu), prepare_run makes the splits with the
 * prompt passed through as is, and the result gets the original files' names, digests
 * and the ICL prompts, and is renamed into place. Errors name the original file and
 * line (record of an array) and leave nothing at the output. */
#define _POSIX_C_SOURCE 200809L /* strdup */
#include "../../mpi/fatal.h"
#include "../h5util.h"
#include "../safefile.h"
#include "prepare.h"
#include "prepare_impl.h"

#include <cjson/cJSON.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* What a file's records hold (io/DATASETS.md "MUSE"). */
enum {
    MK_TEXT, /* {"text"} (or a bare string) -> a text split */
    MK_PRIV, /* {"text"} (or a bare string) -> a qa row with an empty prompt */
    MK_VERB, /* {"prompt", "gt"} -> prompt, continuation */
    MK_KNOW, /* {"question", "answer"} -> few-shot prompt, answer */
    MK_ICL,  /* {"question", "answer"}: the few-shot pairs of the MK_KNOW file before it */
};

typedef struct {
    const char *file, *split;
    int kind;
} muse_map;

/* A knowmem file is followed by its ICL file; a split named twice (retain_qa or its
 * Books name retain2_qa) takes the first present file. */
static const muse_map muse_files[] = {
    {"raw/forget.json", "forget", MK_TEXT},
    {"raw/retain1.json", "retain1", MK_TEXT},
    {"raw/retain2.json", "retain2", MK_TEXT},
    {"raw/holdout.json", "holdout", MK_TEXT},
    {"scal/forget_1.json", "scal/forget_1", MK_TEXT},
    {"scal/forget_2.json", "scal/forget_2", MK_TEXT},
    {"scal/forget_3.json", "scal/forget_3", MK_TEXT},
    {"scal/forget_4.json", "scal/forget_4", MK_TEXT},
    {"sust/forget_1.json", "sust/forget_1", MK_TEXT},
    {"sust/forget_2.json", "sust/forget_2", MK_TEXT},
    {"sust/forget_3.json", "sust/forget_3", MK_TEXT},
    {"sust/forget_4.json", "sust/forget_4", MK_TEXT},
    {"verbmem/forget.json", "eval/verbmem_forget", MK_VERB},
    {"knowmem/forget_qa.json", "eval/knowmem_forget", MK_KNOW},
    {"knowmem/forget_qa_icl.json", NULL, MK_ICL},
    {"knowmem/retain_qa.json", "eval/knowmem_retain", MK_KNOW},
    {"knowmem/retain_qa_icl.json", NULL, MK_ICL},
    {"knowmem/retain2_qa.json", "eval/knowmem_retain", MK_KNOW},
    {"knowmem/retain2_qa_icl.json", NULL, MK_ICL},
    {"privleak/forget.json", "eval/privleak_forget", MK_PRIV},
    {"privleak/retain.json", "eval/privleak_retain", MK_PRIV},
    {"privleak/retain2.json", "eval/privleak_retain", MK_PRIV},
    {"privleak/holdout.json", "eval/privleak_holdout", MK_PRIV},
};
#define MUSE_NFILES ((int)(sizeof muse_files / sizeof muse_files[0]))

/* One split on its way: the original file (and ICL file), the rewritten one. */
typedef struct {
    char orig[4200], icl[4200], tmp[4300];
    const muse_map *m;
    int array;
    long records, icl_records;
    char *prefix; /* MK_KNOW: the few-shot prefix of the ICL file */
} muse_part;

typedef struct {
    const prepare_opts *o;
    char dir[4096], tmpdir[4200];
    muse_part part[PREPARE_MAX_INPUTS];
    int n;
    /* the file being read */
    muse_part *cur;
    const char *reading;
    int reading_array;
    FILE *f;    /* the rewritten file (NULL while an ICL file is read) */
    char *text; /* the text being built */
    size_t text_n, text_cap;
    char *err;
    size_t errlen;
} muse_run;

static int rec_err(muse_run *r, long line, const char *what, const char *key)
{
    char m[300];
    snprintf(m, sizeof m, what, key);
    return pr_bench_rec_err(r->err, r->errlen, "muse", r->reading, r->reading_array, line, m);
}

/* The string of key in rec, or NULL + the error naming the record. A MK_TEXT/MK_PRIV
 * record may be a bare string (the reference's privleak files: a JSON list of texts). */
static const char *field(muse_run *r, long line, cJSON *rec, const char *key, int *bad)
{
    int kind = r->cur->m->kind;
    if (cJSON_IsString(rec) && r->f && (kind == MK_TEXT || kind == MK_PRIV))
        return rec->valuestring;
    cJSON *v = cJSON_IsObject(rec) ? cJSON_GetObjectItemCaseSensitive(rec, key) : NULL;
    if (!cJSON_IsObject(rec))
        *bad = rec_err(r, line, "not a JSON object%s", "");
    else if (!v)
        *bad = rec_err(r, line, "key '%s' is missing", key);
    else if (!cJSON_IsString(v))
        *bad = rec_err(r, line, "key '%s': expected a string", key);
    return *bad ? NULL : v->valuestring;
}

/* Appends s to the text being built. */
static int add_text(muse_run *r, const char *s)
{
    size_t n = strlen(s);
    if (r->text_n + n + 1 > r->text_cap) {
        size_t cap = 2 * (r->text_n + n + 1);
        char *b = realloc(r->text, cap);
        if (!b) return lethe_errf(r->err, r->errlen, "prepare: out of memory");
        r->text = b;
        r->text_cap = cap;
    }
    memcpy(r->text + r->text_n, s, n + 1);
    r->text_n += n;
    return 0;
}

/* "Question: q\nAnswer: " and, for an ICL pair, "a\n\n" (the MUSE reference's few-shot
 * prompt) onto the text being built. */
static int add_pair(muse_run *r, const char *q, const char *a)
{
    if (add_text(r, "Question: ") || add_text(r, q) || add_text(r, "\nAnswer: ")) return -1;
    return a ? (add_text(r, a) || add_text(r, "\n\n") ? -1 : 0) : 0;
}

/* One record of an ICL file onto the few-shot prefix. */
static int icl_record(void *ctx, long line, cJSON *rec)
{
    muse_run *r = ctx;
    if (!rec) return 0;
    int bad = 0;
    const char *q = field(r, line, rec, "question", &bad);
    const char *a = bad ? NULL : field(r, line, rec, "answer", &bad);
    return bad ? -1 : add_pair(r, q, a);
}

/* Writes the lethe line of one record: {"text"} for MK_TEXT, {"question", "answer"}
 * (the prompt as the question, passed through unchanged) otherwise. */
static int write_line(muse_run *r, const char *text, const char *q, const char *a)
{
    cJSON *o = cJSON_CreateObject();
    int ok = o && (text ? cJSON_AddStringToObject(o, "text", text) != NULL
                        : cJSON_AddStringToObject(o, "question", q) &&
                              cJSON_AddStringToObject(o, "answer", a));
    char *s = ok ? cJSON_PrintUnformatted(o) : NULL;
    int rc = 0;
    if (!s)
        rc = lethe_errf(r->err, r->errlen, "prepare: out of memory");
    else if (fprintf(r->f, "%s\n", s) < 0)
        rc = lethe_errf(r->err, r->errlen, "prepare: muse: cannot write '%s'", r->cur->tmp);
    free(s);
    cJSON_Delete(o);
    return rc;
}

/* One record (or blank line, kept so prepare_run's line numbers are the original's). */
static int one_record(void *ctx, long line, cJSON *rec)
{
    muse_run *r = ctx;
    if (!rec)
        return fputc('\n', r->f) == EOF
                   ? lethe_errf(r->err, r->errlen, "prepare: muse: cannot write '%s'", r->cur->tmp)
                   : 0;
    int bad = 0, kind = r->cur->m->kind;
    if (kind == MK_TEXT || kind == MK_PRIV) {
        const char *t = field(r, line, rec, "text", &bad);
        return bad ? -1 : write_line(r, kind == MK_TEXT ? t : NULL, "", t);
    }
    const char *k1 = kind == MK_VERB ? "prompt" : "question",
               *k2 = kind == MK_VERB ? "gt" : "answer";
    const char *q = field(r, line, rec, k1, &bad);
    const char *a = bad ? NULL : field(r, line, rec, k2, &bad);
    if (bad) return -1;
    if (kind == MK_VERB) return write_line(r, NULL, q, a);
    r->text_n = 0;
    if (add_text(r, r->cur->prefix) || add_pair(r, q, NULL)) return -1;
    return write_line(r, NULL, r->text, a);
}

/* Reads part p: its ICL file into p->prefix first (MK_KNOW), then its records into
 * p->tmp. */
static int rewrite(muse_run *r, muse_part *p)
{
    r->cur = p;
    r->f = NULL;
    if (p->m->kind == MK_KNOW) {
        r->text_n = 0;
        r->reading = p->icl;
        if (add_text(r, "") || pr_json_records(p->icl, "muse", icl_record, r, &r->reading_array,
                                               &p->icl_records, r->err, r->errlen))
            return -1;
        if (!(p->prefix = strdup(r->text)))
            return lethe_errf(r->err, r->errlen, "prepare: out of memory");
    }
    safe_out w; /* the one writer, in the private folder too */
    if (safe_create(&w, p->tmp, r->err, r->errlen)) return -1;
    r->f = w.f;
    r->reading = p->orig;
    int rc = pr_json_records(p->orig, "muse", one_record, r, &r->reading_array, &p->records, r->err,
                             r->errlen);
    p->array = r->reading_array;
    r->f = NULL;
    if (rc) safe_abort(&w);
    return rc ? rc : safe_finish(&w, r->err, r->errlen);
}

/* The parts to make: every present file of the table (a knowmem file with its ICL file,
 * one file per split). */
static int plan(muse_run *r)
{
    char path[4200];
    for (int i = 0; i < MUSE_NFILES; i++) {
        const muse_map *m = &muse_files[i];
        snprintf(path, sizeof path, "%s/%s", r->dir, m->file);
        int here = access(path, F_OK) == 0;
        if (m->kind == MK_ICL) {
            const muse_map *qa = &muse_files[i - 1];
            int qa_here = r->n > 0 && r->part[r->n - 1].m == qa;
            if (here != qa_here)
                return lethe_errf(r->err, r->errlen,
                                  "prepare: muse: '%s/%s' is missing; '%s/%s' needs it (KnowMem's "
                                  "few-shot prompt is built from the ICL file)",
                                  r->dir, here ? qa->file : m->file, r->dir,
                                  here ? m->file : qa->file);
            if (here) snprintf(r->part[r->n - 1].icl, sizeof r->part[0].icl, "%s", path);
            continue;
        }
        if (!here) continue;
        for (int j = 0; j < r->n; j++)
            if (!strcmp(r->part[j].m->split, m->split))
                return lethe_errf(r->err, r->errlen,
                                  "prepare: muse: '%s' and '%s' both make split '%s'; keep one",
                                  r->part[j].orig, path, m->split);
        muse_part *p = &r->part[r->n++];
        p->m = m;
        snprintf(p->orig, sizeof p->orig, "%s", path);
        snprintf(p->tmp, sizeof p->tmp, "%s/%d.jsonl", r->tmpdir, r->n);
        if (safe_same_file(r->o->output, path))
            return lethe_errf(r->err, r->errlen,
                              "prepare: muse: --output '%s' is one of the MUSE files itself",
                              r->o->output);
    }
    if (r->n == 0)
        return lethe_errf(r->err, r->errlen,
                          "prepare: muse: '%s' holds none of the MUSE files (raw/forget.json, "
                          "knowmem/forget_qa.json, verbmem/forget.json, privleak/forget.json, ...)",
                          r->dir);
    return 0;
}

/* "sha256:<hex>" of path into dg, the bytes also into all. */
static int digest(muse_run *r, const char *path, sha256_ctx *all, char dg[80])
{
    sha256_ctx one;
    char hex[65];
    pr_sha256_init(&one);
    if (pr_sha256_file2(path, &one, all, r->err, r->errlen)) return -1;
    pr_sha256_hex(&one, hex);
    snprintf(dg, 80, "sha256:%s", hex);
    return 0;
}

/* The made file gets the original files' names and digests (root source_digest: the
 * SHA-256 of the present MUSE files in the table's order, each knowmem file followed by
 * its ICL file), each knowmem split its few-shot prefix, and the benchmark's name. */
static int finish(muse_run *r, const char *h5)
{
    sha256_ctx all;
    pr_sha256_init(&all);
    char dg[PREPARE_MAX_INPUTS][80], idg[PREPARE_MAX_INPUTS][80], root[80], hex[65];
    for (int i = 0; i < r->n; i++) {
        if (digest(r, r->part[i].orig, &all, dg[i])) return -1;
        if (r->part[i].prefix && digest(r, r->part[i].icl, &all, idg[i])) return -1;
    }
    pr_sha256_hex(&all, hex);
    snprintf(root, sizeof root, "sha256:%s", hex);
    h5_quiet q;
    h5_quiet_on(&q);
    hid_t f = H5Fopen(h5, H5F_ACC_RDWR, H5P_DEFAULT);
    int bad = f < 0 || h5_attr_write_str(f, "benchmark", "muse") ||
              h5_attr_write_str(f, "muse_dir", r->dir) ||
              h5_attr_write_str(f, "source_digest", root);
    for (int i = 0; i < r->n && !bad; i++) {
        const muse_part *p = &r->part[i];
        hid_t g = H5Gopen2(f, p->m->split, H5P_DEFAULT);
        bad = g < 0 || h5_attr_write_str(g, "source", p->orig) ||
              h5_attr_write_str(g, "source_digest", dg[i]) ||
              h5_attr_write_i64(g, "source_records", p->records) ||
              (p->prefix && (h5_attr_write_str(g, "icl_source", p->icl) ||
                             h5_attr_write_str(g, "icl_source_digest", idg[i]) ||
                             h5_attr_write_i64(g, "icl_records", p->icl_records) ||
                             h5_attr_write_str(g, "icl_prompt", p->prefix)));
        if (g >= 0) H5Gclose(g);
    }
    if (f >= 0 && H5Fclose(f) < 0) bad = 1;
    h5_quiet_off(&q);
    if (bad)
        return lethe_errf(r->err, r->errlen, "prepare: muse: cannot record the sources in '%s'",
                          h5);
    return 0;
}

static void print_summary(const muse_run *r, const prepare_report *rep)
{
    for (int i = 0; i < rep->n_splits && i < r->n; i++) {
        const prepare_split_report *s = &rep->split[i];
        printf("prepare: %s <- %s%s%s: %lld records, %lld rows, truncated %lld\n", s->split,
               r->part[i].orig, r->part[i].prefix ? " + " : "",
               r->part[i].prefix ? r->part[i].icl : "", (long long)s->records, (long long)s->rows,
               (long long)s->truncated);
    }
    printf("prepare: wrote '%s': MUSE from '%s', %d splits, vocab %lld, pad %lld, eos %lld\n",
           r->o->output, r->dir, rep->n_splits, (long long)rep->vocab_size, (long long)rep->pad_id,
           (long long)rep->eos_id);
}

/* prepare_run over the rewritten files, the prompt passed through as is (MUSE feeds its
 * prompts without a chat template), then the sources and the rename into place. */
static int make(muse_run *r, const char *h5, prepare_report *rep)
{
    prepare_input in[PREPARE_MAX_INPUTS];
    for (int i = 0; i < r->n; i++)
        in[i] = (prepare_input){r->part[i].m->split, r->part[i].tmp,
                                r->part[i].m->kind == MK_TEXT ? "text" : "qa"};
    prepare_opts o2 = *r->o;
    o2.inputs = in;
    o2.n_inputs = r->n;
    o2.output = h5;
    o2.verbose = 0;
    o2.report = rep;
    o2.template_name = NULL;
    o2.prompt_template = "{q}";
    o2.answer_prefix = "";
    if (prepare_run(&o2, r->err, r->errlen)) {
        for (int i = 0; i < r->n; i++)
            if (pr_bench_rename_err(r->err, r->errlen, r->part[i].tmp, r->part[i].orig,
                                    r->part[i].array))
                break;
        return -1;
    }
    if (finish(r, h5)) return -1;
    char se[1024];
    if (safe_commit(h5, r->o->output, se, sizeof se))
        return lethe_errf(r->err, r->errlen, "prepare: muse: %s", se);
    return 0;
}

int prepare_muse_run(const prepare_opts *o, const char *dir, char *err, size_t errlen)
{
    if (!o->output || !o->output[0]) return lethe_errf(err, errlen, "prepare: no output path");
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return lethe_errf(err, errlen, "prepare: muse: '%s' is not a folder", dir);
    muse_run *r = calloc(1, sizeof *r);
    if (!r) return lethe_errf(err, errlen, "prepare: out of memory");
    r->o = o;
    r->err = err;
    r->errlen = errlen;
    snprintf(r->dir, sizeof r->dir, "%s", dir);
    size_t dl = strlen(r->dir);
    while (dl > 1 && r->dir[dl - 1] == '/') r->dir[--dl] = 0;
    int rc = -1;
    char h5[4300] = "";
    prepare_report rep;
    memset(&rep, 0, sizeof rep);
    if (pr_bench_tmpdir(r->tmpdir, sizeof r->tmpdir, o->output, "muse", err, errlen) || plan(r))
        goto out;
    for (int i = 0; i < r->n; i++)
        if (rewrite(r, &r->part[i])) goto out;
    snprintf(h5, sizeof h5, "%s/out.h5", r->tmpdir);
    if (make(r, h5, &rep)) goto out;
    if (o->verbose) print_summary(r, &rep);
    if (o->report) *o->report = rep;
    rc = 0;
out:
    for (int i = 0; i < r->n; i++) {
        remove(r->part[i].tmp);
        free(r->part[i].prefix);
    }
    if (h5[0]) remove(h5);
    if (r->tmpdir[0]) rmdir(r->tmpdir);
    free(r->text);
    free(r);
    return rc;
}
