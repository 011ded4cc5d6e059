/* io/text/prepare_tofu.c — `lethe prepare --tofu DIR`: the TOFU benchmark's files as
 * published (locuslab/TOFU: JSON lines, one {"question", "answer", ...} object a line; a
 * JSON array of such objects is read too) mapped onto lethe's splits (the table below,
 * io/DATASETS.md "TOFU"). Each present file is checked record by record and rewritten as a
 * lethe qa JSON-lines file in a private folder next to the output (line numbers kept), so
 * the one qa path of prepare_run (templates, tokenizers, truncation) makes every split;
 * the result is then given the original files' names and digests, the IdK phrases
 * (/idk) and renamed into place. An error names the original file and line (or record
 * index of an array) and leaves nothing at the output. */
#define _POSIX_C_SOURCE 200809L /* strndup */
#include "../../mpi/fatal.h"
#include "../dataset.h"
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

/* What a file's records must hold and what its rows carry (io/DATASETS.md). */
enum {
    TK_QA,   /* question, answer -> the answer row only */
    TK_PARA, /* + paraphrased_answer, perturbed_answer[K]: the truth-ratio candidates */
    TK_UTIL, /* + perturbed_answer[K]; the answer is its own base candidate (TOFU's
              * base_answer_key for real authors and world facts) */
};

typedef struct {
    const char *file, *split;
    int kind;
    int level; /* forget level (0, 1, 2) whose three files go together; -1: none */
} tofu_map;

static const tofu_map tofu_files[] = {
    {"forget01.json", "forget01", TK_QA, 0},
    {"forget05.json", "forget05", TK_QA, 1},
    {"forget10.json", "forget10", TK_QA, 2},
    {"retain99.json", "retain99", TK_QA, 0},
    {"retain95.json", "retain95", TK_QA, 1},
    {"retain90.json", "retain90", TK_QA, 2},
    {"full.json", "full", TK_QA, -1},
    {"holdout01.json", "holdout01", TK_QA, -1},
    {"holdout05.json", "holdout05", TK_QA, -1},
    {"holdout10.json", "holdout10", TK_QA, -1},
    {"forget01_perturbed.json", "eval/forget01_perturbed", TK_PARA, 0},
    {"forget05_perturbed.json", "eval/forget05_perturbed", TK_PARA, 1},
    {"forget10_perturbed.json", "eval/forget10_perturbed", TK_PARA, 2},
    {"retain_perturbed.json", "eval/retain_perturbed", TK_PARA, -1},
    {"real_authors_perturbed.json", "eval/real_authors", TK_UTIL, -1},
    {"world_facts_perturbed.json", "eval/world_facts", TK_UTIL, -1},
};
#define TOFU_NFILES ((int)(sizeof tofu_files / sizeof tofu_files[0]))
#define TOFU_IDK_FILE "idk.jsonl"
#define TOFU_MAX_IDK 100000
static const char *const tofu_idk_split[3] = {"forget01_idk", "forget05_idk", "forget10_idk"};

/* One split on its way: the original file, the rewritten one, how errors are shown. */
typedef struct {
    char orig[4200], tmp[4300], split[64];
    int array; /* the original is a JSON array: its "line" N is record N - 1 */
    long records;
    int idk; /* the forget questions answered with an IdK phrase */
} tofu_part;

typedef struct {
    const prepare_opts *o;
    char dir[4096], tmpdir[4200];
    tofu_part part[PREPARE_MAX_INPUTS];
    int n;
    char **idk; /* (n_idk) the phrases of idk.jsonl */
    int n_idk;
    char idk_path[4200];
    char *err;
    size_t errlen;
} tofu_run;

static int has_file(const char *p)
{
    return access(p, F_OK) == 0;
}

/* FNV-1a (64 bit) of the question's UTF-8 bytes: the IdK phrase of a question is
 * idk[fnv1a(q) % n_idk], so the same question gets the same phrase at every forget
 * level (forget01 is inside forget05 inside forget10). */
static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (const unsigned char *c = (const unsigned char *)s; *c; c++)
        h = (h ^ *c) * 1099511628211ull;
    return h;
}

/* idk.jsonl: one phrase a line (plain text, as open-unlearning reads it), white space
 * around it stripped, blank lines skipped. */
static int read_idk(tofu_run *r)
{
    size_t len = 0;
    char *buf = safe_read(r->idk_path, "prepare: tofu IdK file", LETHE_MAX_JSONL_LINE, &len, r->err,
                          r->errlen);
    if (!buf) return -1;
    int rc = 0;
    long line = 0;
    for (char *s = buf, *end; rc == 0 && s < buf + len; s = end + 1) {
        end = memchr(s, '\n', (size_t)(buf + len - s));
        if (!end) end = buf + len;
        line++;
        char *a = s, *b = end;
        while (a < b && (*a == ' ' || *a == '\t' || *a == '\r')) a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t' || b[-1] == '\r')) b--;
        if (a == b) continue;
        if (pr_utf8_bad_at((const unsigned char *)a, (size_t)(b - a)) < (size_t)(b - a))
            rc = lethe_errf(r->err, r->errlen, "prepare: tofu: '%s' line %ld: not UTF-8 text",
                            r->idk_path, line);
        else if (r->n_idk == TOFU_MAX_IDK)
            rc = lethe_errf(r->err, r->errlen, "prepare: tofu: '%s': more than %d phrases",
                            r->idk_path, TOFU_MAX_IDK);
        else if (!(r->idk[r->n_idk] = strndup(a, (size_t)(b - a))))
            rc = lethe_errf(r->err, r->errlen, "prepare: out of memory");
        else
            r->n_idk++;
    }
    free(buf);
    if (rc == 0 && r->n_idk == 0)
        rc = lethe_errf(r->err, r->errlen, "prepare: tofu: '%s': no phrases", r->idk_path);
    return rc;
}

/* "'<orig>' line N" or, for an array, "'<orig>' record N" (0-based index). */
static int rec_err(tofu_run *r, const tofu_part *p, long line, const char *fmt, const char *a,
                   const char *b)
{
    char m[600];
    snprintf(m, sizeof m, fmt, a, b);
    return pr_bench_rec_err(r->err, r->errlen, "tofu", p->orig, p->array, line, m);
}

static const char *str_key(tofu_run *r, const tofu_part *p, long line, cJSON *rec, const char *key,
                           int *bad)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(rec, key);
    if (!v) {
        *bad = rec_err(r, p, line, "key '%s' is missing%s", key, "");
        return NULL;
    }
    if (!cJSON_IsString(v)) {
        *bad = rec_err(r, p, line, "key '%s': expected a string%s", key, "");
        return NULL;
    }
    return v->valuestring;
}

/* Checks one TOFU record and writes its lethe qa line to f (and the IdK line to fi).
 * *k: the perturbed answers of the first record (every record must have as many). */
static int one_record(tofu_run *r, const tofu_part *p, const tofu_map *m, long line, cJSON *rec,
                      int *k, FILE *f, FILE *fi)
{
    if (!cJSON_IsObject(rec)) return rec_err(r, p, line, "not a JSON object%s%s", "", "");
    int bad = 0;
    const char *q = str_key(r, p, line, rec, "question", &bad);
    const char *a = bad ? NULL : str_key(r, p, line, rec, "answer", &bad);
    const char *para =
        bad || m->kind != TK_PARA ? NULL : str_key(r, p, line, rec, "paraphrased_answer", &bad);
    if (bad) return -1;
    cJSON *out = cJSON_CreateObject(), *pert = NULL;
    int rc = 0;
    if (m->kind != TK_QA) {
        pert = cJSON_GetObjectItemCaseSensitive(rec, "perturbed_answer");
        int n = cJSON_IsArray(pert) ? cJSON_GetArraySize(pert) : -1;
        for (int j = 0; j < n && rc == 0; j++)
            if (!cJSON_IsString(cJSON_GetArrayItem(pert, j))) n = -1;
        if (!pert)
            rc = rec_err(r, p, line, "key 'perturbed_answer' is missing%s%s", "", "");
        else if (n < 1)
            rc =
                rec_err(r, p, line,
                        "key 'perturbed_answer': expected a non-empty list of strings%s%s", "", "");
        else if (*k && n != *k) {
            char a1[16], a2[16];
            snprintf(a1, sizeof a1, "%d", n);
            snprintf(a2, sizeof a2, "%d", *k);
            rc = rec_err(r, p, line,
                         "key 'perturbed_answer' has %s answers, earlier records have %s", a1, a2);
        }
        *k = n;
    }
    if (rc == 0 && (!out || !cJSON_AddStringToObject(out, "question", q) ||
                    !cJSON_AddStringToObject(out, "answer", a) ||
                    (m->kind != TK_QA &&
                     (!cJSON_AddStringToObject(out, "paraphrased_answer", para ? para : a) ||
                      !cJSON_AddItemToObject(out, "perturbed_answer", cJSON_Duplicate(pert, 1))))))
        rc = lethe_errf(r->err, r->errlen, "prepare: out of memory");
    char *s = rc ? NULL : cJSON_PrintUnformatted(out);
    if (rc == 0 && (!s || fprintf(f, "%s\n", s) < 0))
        rc = lethe_errf(r->err, r->errlen, "prepare: tofu: cannot write '%s'", p->tmp);
    free(s);
    cJSON_Delete(out);
    if (rc == 0 && fi) { /* the IdK split: the same question, an IdK phrase as the answer */
        cJSON *o2 = cJSON_CreateObject();
        char *s2 = NULL;
        if (o2 && cJSON_AddStringToObject(o2, "question", q) &&
            cJSON_AddStringToObject(o2, "answer", r->idk[fnv1a(q) % (uint64_t)r->n_idk]))
            s2 = cJSON_PrintUnformatted(o2);
        if (!s2 || fprintf(fi, "%s\n", s2) < 0)
            rc = lethe_errf(r->err, r->errlen, "prepare: tofu: cannot write the IdK split");
        free(s2);
        cJSON_Delete(o2);
    }
    return rc;
}

/* One record (or blank line) of rewrite's walk over the original file. */
typedef struct {
    tofu_run *r;
    tofu_part *p;
    const tofu_map *m;
    FILE *f, *fi;
    int k;
} tofu_walk;

static int walk_record(void *ctx, long line, cJSON *rec)
{
    tofu_walk *w = ctx;
    if (!rec) /* blank: kept, so the numbering stays */
        return fputc('\n', w->f) == EOF || (w->fi && fputc('\n', w->fi) == EOF)
                   ? lethe_errf(w->r->err, w->r->errlen, "prepare: tofu: cannot write '%s'",
                                w->p->tmp)
                   : 0;
    return one_record(w->r, w->p, w->m, line, rec, &w->k, w->f, w->fi);
}

/* Rewrites the TOFU file of part p (mapping m) as lethe qa JSON lines at p->tmp, line
 * for line (blank lines kept, so prepare_run's line numbers are the original's), and the
 * IdK split at pi->tmp when pi. */
static int rewrite(tofu_run *r, tofu_part *p, const tofu_map *m, tofu_part *pi)
{
    safe_out o, oi; /* the one writer, in the private folder too */
    if (safe_create(&o, p->tmp, r->err, r->errlen)) return -1;
    if (pi && safe_create(&oi, pi->tmp, r->err, r->errlen)) {
        safe_abort(&o);
        return -1;
    }
    tofu_walk w = {r, p, m, o.f, pi ? oi.f : NULL, 0};
    int rc = pr_json_records(p->orig, "tofu", walk_record, &w, &p->array, &p->records, r->err,
                             r->errlen);
    rc = rc ? rc : safe_finish(&o, r->err, r->errlen);
    if (rc) {
        safe_abort(&o);
        if (pi) safe_abort(&oi);
        return rc;
    }
    return pi ? safe_finish(&oi, r->err, r->errlen) : 0;
}

/* forgetXX_perturbed.json holds forgetXX.json's questions: as many records (a file cut
 * short in a download is found here). */
static int same_questions(tofu_run *r)
{
    for (int i = 0; i < r->n; i++)
        for (int j = 0; j < r->n; j++) {
            const char *a = strrchr(r->part[i].orig, '/') + 1,
                       *b = strrchr(r->part[j].orig, '/') + 1;
            if (r->part[i].idk || r->part[j].idk || strncmp(a, "forget", 6) || strncmp(a, b, 8) ||
                strcmp(b + 8, "_perturbed.json") || strcmp(a + 8, ".json"))
                continue;
            if (r->part[i].records != r->part[j].records)
                return lethe_errf(r->err, r->errlen,
                                  "prepare: tofu: '%s' has %ld records, '%s' %ld; they hold the "
                                  "same questions",
                                  r->part[j].orig, r->part[j].records, r->part[i].orig,
                                  r->part[i].records);
        }
    return 0;
}

/* prepare_run's message with the private files' names replaced by the originals'. */
static void rename_in_err(tofu_run *r)
{
    for (int i = 0; i < r->n; i++)
        if (pr_bench_rename_err(r->err, r->errlen, r->part[i].tmp, r->part[i].orig,
                                r->part[i].array))
            return;
}

/* The parts to make: every present file of the table, then an IdK split per present
 * forget level when idk.jsonl is there; a forget level's three files go together. */
static int plan(tofu_run *r, int *idk_of)
{
    int present[TOFU_NFILES], any = 0;
    char path[4200];
    for (int i = 0; i < TOFU_NFILES; i++) {
        snprintf(path, sizeof path, "%s/%s", r->dir, tofu_files[i].file);
        any |= present[i] = has_file(path);
    }
    if (!any)
        return lethe_errf(r->err, r->errlen,
                          "prepare: tofu: '%s' holds none of the TOFU files (forget01.json, "
                          "retain99.json, full.json, forget01_perturbed.json, ...)",
                          r->dir);
    for (int i = 0; i < TOFU_NFILES; i++) {
        if (present[i] || tofu_files[i].level < 0) continue;
        for (int j = 0; j < TOFU_NFILES; j++)
            if (present[j] && tofu_files[j].level == tofu_files[i].level)
                return lethe_errf(r->err, r->errlen,
                                  "prepare: tofu: '%s/%s' is missing; '%s' needs it (a forget "
                                  "level is forgetXX.json, forgetXX_perturbed.json and "
                                  "retainYY.json: forget01/retain99, forget05/retain95, "
                                  "forget10/retain90)",
                                  r->dir, tofu_files[i].file, tofu_files[j].file);
    }
    snprintf(r->idk_path, sizeof r->idk_path, "%s/%s", r->dir, TOFU_IDK_FILE);
    if (has_file(r->idk_path)) {
        if (!(r->idk = calloc(TOFU_MAX_IDK, sizeof *r->idk)))
            return lethe_errf(r->err, r->errlen, "prepare: out of memory");
        if (read_idk(r)) return -1;
    }
    for (int i = 0; i < TOFU_NFILES; i++) {
        idk_of[i] = -1;
        if (!present[i]) continue;
        tofu_part *p = &r->part[r->n++];
        snprintf(p->orig, sizeof p->orig, "%s/%s", r->dir, tofu_files[i].file);
        snprintf(p->split, sizeof p->split, "%s", tofu_files[i].split);
        snprintf(p->tmp, sizeof p->tmp, "%s/%d.jsonl", r->tmpdir, r->n);
    }
    for (int i = 0, m = 0; i < TOFU_NFILES && r->n_idk; i++) {
        if (!present[i]) continue;
        m++;
        if (strncmp(tofu_files[i].file, "forget", 6) || tofu_files[i].kind != TK_QA) continue;
        tofu_part *p = &r->part[r->n];
        *p = r->part[m - 1];
        p->idk = 1;
        snprintf(p->split, sizeof p->split, "%s", tofu_idk_split[tofu_files[i].level]);
        snprintf(p->tmp, sizeof p->tmp, "%s/%d.jsonl", r->tmpdir, ++r->n);
        idk_of[i] = r->n - 1;
    }
    for (int i = 0; i < r->n; i++)
        if (safe_same_file(r->o->output, r->part[i].orig) ||
            (r->n_idk && safe_same_file(r->o->output, r->idk_path)))
            return lethe_errf(r->err, r->errlen,
                              "prepare: tofu: --output '%s' is one of the TOFU files itself",
                              r->o->output);
    return 0;
}

static int write_idk(hid_t f, tofu_run *r, const char *digest)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    hsize_t dims[1] = {(hsize_t)r->n_idk};
    hid_t s = H5Screate_simple(1, dims, NULL);
    hid_t d = H5Dcreate2(f, "idk", t, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int rc = d < 0 || H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, r->idk) < 0 ||
             h5_attr_write_str(d, "source", r->idk_path) ||
             h5_attr_write_str(d, "source_digest", digest);
    if (d >= 0) H5Dclose(d);
    H5Sclose(s);
    H5Tclose(t);
    return rc ? -1 : 0;
}

/* The made file gets the original files' names and digests (root source_digest: the
 * SHA-256 of the present TOFU files, in the table's order, then idk.jsonl), the IdK
 * phrases and the benchmark's name. */
static int finish(tofu_run *r, const char *h5)
{
    sha256_ctx all;
    pr_sha256_init(&all);
    char hex[65], dg[PREPARE_MAX_INPUTS][80], idg[80] = "";
    for (int i = 0; i < r->n; i++) {
        sha256_ctx one, none; /* an IdK split's forget file is counted once, as its level */
        pr_sha256_init(&one);
        pr_sha256_init(&none);
        if (pr_sha256_file2(r->part[i].orig, &one, r->part[i].idk ? &none : &all, r->err,
                            r->errlen))
            return -1;
        pr_sha256_hex(&one, hex);
        snprintf(dg[i], sizeof dg[i], "sha256:%s", hex);
    }
    if (r->n_idk) {
        sha256_ctx one;
        pr_sha256_init(&one);
        if (pr_sha256_file2(r->idk_path, &one, &all, r->err, r->errlen)) return -1;
        pr_sha256_hex(&one, hex);
        snprintf(idg, sizeof idg, "sha256:%s", hex);
    }
    pr_sha256_hex(&all, hex);
    char root[80];
    snprintf(root, sizeof root, "sha256:%s", hex);
    h5_quiet q;
    h5_quiet_on(&q);
    hid_t f = H5Fopen(h5, H5F_ACC_RDWR, H5P_DEFAULT);
    int bad = f < 0 || h5_attr_write_str(f, "benchmark", "tofu") ||
              h5_attr_write_str(f, "tofu_dir", r->dir) ||
              h5_attr_write_str(f, "source_digest", root);
    for (int i = 0; i < r->n && !bad; i++) {
        hid_t g = H5Gopen2(f, r->part[i].split, H5P_DEFAULT);
        bad = g < 0 || h5_attr_write_str(g, "source", r->part[i].orig) ||
              h5_attr_write_str(g, "source_digest", dg[i]) ||
              (r->part[i].idk && (h5_attr_write_str(g, "idk_source", r->idk_path) ||
                                  h5_attr_write_str(g, "idk_source_digest", idg)));
        if (g >= 0) H5Gclose(g);
    }
    if (!bad && r->n_idk) bad = write_idk(f, r, idg);
    if (f >= 0 && H5Fclose(f) < 0) bad = 1;
    h5_quiet_off(&q);
    if (bad)
        return lethe_errf(r->err, r->errlen, "prepare: tofu: cannot record the sources in '%s'",
                          h5);
    return 0;
}

static void print_summary(const tofu_run *r, const prepare_report *rep)
{
    for (int i = 0; i < rep->n_splits && i < r->n; i++) {
        const prepare_split_report *s = &rep->split[i];
        printf("prepare: %s <- %s%s: %lld rows, K=%d, paraphrased %s, truncated %lld\n", s->split,
               r->part[i].orig, r->part[i].idk ? " + " TOFU_IDK_FILE : "", (long long)s->rows, s->k,
               s->has_para ? "yes" : "no", (long long)s->truncated);
    }
    printf("prepare: wrote '%s': TOFU from '%s', %d splits, %d IdK phrases, vocab %lld, pad %lld, "
           "eos %lld\n",
           r->o->output, r->dir, rep->n_splits, r->n_idk, (long long)rep->vocab_size,
           (long long)rep->pad_id, (long long)rep->eos_id);
}

int prepare_tofu_run(const prepare_opts *o, const char *dir, char *err, size_t errlen)
{
    if (!o->output || !o->output[0]) return lethe_errf(err, errlen, "prepare: no output path");
    tofu_run *r = calloc(1, sizeof *r);
    if (!r) return lethe_errf(err, errlen, "prepare: out of memory");
    r->o = o;
    r->err = err;
    r->errlen = errlen;
    snprintf(r->dir, sizeof r->dir, "%s", dir);
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        free(r);
        return lethe_errf(err, errlen, "prepare: tofu: '%s' is not a folder", dir);
    }
    size_t dl = strlen(r->dir);
    while (dl > 1 && r->dir[dl - 1] == '/') r->dir[--dl] = 0;
    int idk_of[TOFU_NFILES], rc = -1;
    char h5[4300] = "";
    prepare_input in[PREPARE_MAX_INPUTS];
    prepare_report rep;
    memset(&rep, 0, sizeof rep);
    if (pr_bench_tmpdir(r->tmpdir, sizeof r->tmpdir, o->output, "tofu", err, errlen) ||
        plan(r, idk_of))
        goto out;
    for (int i = 0, m = 0; i < TOFU_NFILES; i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", r->dir, tofu_files[i].file);
        if (!has_file(path)) continue;
        if (rewrite(r, &r->part[m++], &tofu_files[i], idk_of[i] >= 0 ? &r->part[idk_of[i]] : NULL))
            goto out;
        if (idk_of[i] >= 0) r->part[idk_of[i]].array = r->part[m - 1].array;
    }
    if (same_questions(r)) goto out;
    for (int i = 0; i < r->n; i++) in[i] = (prepare_input){r->part[i].split, r->part[i].tmp, "qa"};
    prepare_opts o2 = *o;
    o2.inputs = in;
    o2.n_inputs = r->n;
    snprintf(h5, sizeof h5, "%s/out.h5", r->tmpdir);
    o2.output = h5;
    o2.verbose = 0;
    o2.report = &rep;
    if (prepare_run(&o2, err, errlen)) {
        rename_in_err(r);
        goto out;
    }
    if (finish(r, h5)) goto out;
    char se[1024];
    if (safe_commit(h5, o->output, se, sizeof se)) {
        lethe_errf(err, errlen, "prepare: tofu: %s", se);
        goto out;
    }
    if (o->verbose) print_summary(r, &rep);
    if (o->report) *o->report = rep;
    rc = 0;
out:
    for (int i = 0; i < r->n; i++) remove(r->part[i].tmp);
    if (h5[0]) remove(h5);
    if (r->tmpdir[0]) rmdir(r->tmpdir);
    for (int i = 0; i < r->n_idk; i++) free(r->idk[i]);
    free(r->idk);
    free(r);
    return rc;
}
