/* io/synth/synth_write.c — writing the generated data: the HDF5 token dataset of
 * io/DATASETS.md (root attributes, chains, every split in blocks) and the TOFU-style
 * JSON-lines files. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../dataset.h"
#include "../safefile.h"
#include "synth_impl.h"

/* ---- writing ----------------------------------------------------------------------------- */

void synth_jsonl_path(const char *output, const char *split, char *buf, size_t len)
{
    size_t n = strlen(output);
    int cut = n > 3 && strcmp(output + n - 3, ".h5") == 0 ? 3 : 0;
    int o = snprintf(buf, len, "%.*s.", (int)(n - (size_t)cut), output);
    for (const char *s = split; *s && o > 0 && (size_t)o + 1 < len; s++)
        buf[o++] = *s == '/' ? '_' : *s;
    if (o > 0 && (size_t)o < len) snprintf(buf + o, len - (size_t)o, ".jsonl");
}

static int attr_num(hid_t obj, const char *name, hid_t ftype, hid_t mtype, const void *v)
{
    hid_t s = H5Screate(H5S_SCALAR);
    if (s < 0) return -1;
    hid_t a = H5Acreate2(obj, name, ftype, s, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = a >= 0 ? H5Awrite(a, mtype, v) : -1;
    if (a >= 0 && H5Aclose(a) < 0) rc = -1;
    H5Sclose(s);
    return rc < 0 ? -1 : 0;
}

/* Root attributes: the kind, the seed and every config value the kind uses. */
static int write_root_attrs(synth_data *d, hid_t f)
{
    const lethe_synth_config *c = &d->c;
    uint64_t seed = c->seed;
    int bad = h5_attr_write_str(f, "synth_kind", c->kind) ||
              attr_num(f, "synth_seed", H5T_STD_U64LE, H5T_NATIVE_UINT64, &seed) ||
              h5_attr_write_i64(f, "synth_seq_len", c->seq_len) ||
              h5_attr_write_i64(f, "seq_len", c->seq_len);
    if (d->markov) {
        double leak = c->markov_leak;
        bad = bad || h5_attr_write_i64(f, "synth_markov_retain", c->markov_retain) ||
              h5_attr_write_i64(f, "synth_markov_len_long", c->markov_len_long) ||
              h5_attr_write_i64(f, "synth_markov_len_short", c->markov_len_short) ||
              attr_num(f, "synth_markov_leak", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &leak) ||
              h5_attr_write_i64(f, "markov_states", S_) ||
              h5_attr_write_i64(f, "bos_id", SYNTH_MARKOV_BOS);
    } else {
        char attrs[512] = "";
        size_t o = 0;
        for (int j = 0; j < d->Q; j++)
            o += (size_t)snprintf(attrs + o, sizeof attrs - o, "%s%s", j ? "," : "",
                                  AUTHOR_Q[j].attr);
        bad = bad || h5_attr_write_i64(f, "synth_n_authors", c->n_authors) ||
              h5_attr_write_i64(f, "synth_questions", c->questions) ||
              h5_attr_write_i64(f, "synth_perturbed", c->perturbed) ||
              h5_attr_write_i64(f, "synth_holdout_authors", c->holdout_authors) ||
              h5_attr_write_i64(f, "synth_utility_facts", c->utility_facts) ||
              h5_attr_write_i64(f, "synth_forget01_authors", d->forget_authors[0]) ||
              h5_attr_write_i64(f, "synth_forget05_authors", d->forget_authors[1]) ||
              h5_attr_write_i64(f, "synth_forget10_authors", d->forget_authors[2]) ||
              h5_attr_write_str(f, "synth_question_attributes", attrs) ||
              h5_attr_write_str(f, "prompt_template", PROMPT_TEMPLATE) ||
              h5_attr_write_str(f, "answer_prefix", " ") || sy_difficulty_attrs(d, f);
    }
    return bad ? sy_fail(d->err, d->errlen, "synth: '%s': cannot write the root attributes",
                         c->output)
               : 0;
}

static int write_chains(synth_data *d, hid_t f)
{
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    int bad = lcpl < 0;
    for (int c = 0; c < 3 && !bad; c++)
        for (int init = 0; init < 2 && !bad; init++) {
            char name[64];
            snprintf(name, sizeof name, "/chains/%s%s", init ? "initial_" : "", CHAIN_NAME[c]);
            hsize_t dims[2] = {S_, S_};
            hid_t s = H5Screate_simple(init ? 1 : 2, dims, NULL);
            hid_t ds =
                s < 0 ? -1 : H5Dcreate2(f, name, H5T_IEEE_F64LE, s, lcpl, H5P_DEFAULT, H5P_DEFAULT);
            bad = ds < 0 || H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                                     init ? d->init[c] : d->P[c]) < 0;
            if (ds >= 0) H5Dclose(ds);
            if (s >= 0) H5Sclose(s);
        }
    if (lcpl >= 0) H5Pclose(lcpl);
    return bad ? sy_fail(d->err, d->errlen, "synth: '%s': cannot write the /chains datasets",
                         d->c.output)
               : 0;
}

/* A block of rows for dsw_write. */
typedef struct {
    dataset_rows r;
    int64_t cap;
} block;

static void block_free(block *b)
{
    void **all = (void **)&b->r;
    for (size_t i = 0; i < sizeof b->r / sizeof(void *); i++) free(all[i]);
    memset(b, 0, sizeof *b);
}

static int block_alloc(block *b, int64_t rows, int T, int K, int cand)
{
    memset(b, 0, sizeof *b);
    size_t per = 4 * (size_t)T + 16 + (cand ? (size_t)(K + 1) * (4 * (size_t)T + 8) : 0);
    int64_t cap = (int64_t)((4u << 20) / per); /* about 4 MiB per write */
    if (cap < 1) cap = 1;
    if (cap > rows) cap = rows;
    b->cap = cap;
    size_t n = (size_t)cap, t = (size_t)T, k = (size_t)K;
    int ok = (b->r.ids = malloc(4 * n * t)) && (b->r.lengths = malloc(4 * n)) &&
             (b->r.answer_start = malloc(4 * n)) && (b->r.sample_id = malloc(8 * n));
    if (ok && cand)
        ok = (b->r.para_ids = malloc(4 * n * t)) && (b->r.para_lengths = malloc(4 * n)) &&
             (b->r.para_answer_start = malloc(4 * n)) && (b->r.pert_ids = malloc(4 * n * k * t)) &&
             (b->r.pert_lengths = malloc(4 * n * k)) &&
             (b->r.pert_answer_start = malloc(4 * n * k));
    if (!ok) block_free(b);
    return ok ? 0 : -1;
}

static void fill_row(int32_t *row, int T, const tok_ids *p, const tok_ids *a, int32_t eos,
                     int32_t pad, int32_t *len, int32_t *as)
{
    int n = 0;
    for (int i = 0; i < p->n; i++) row[n++] = p->ids[i];
    for (int i = 0; i < a->n; i++) row[n++] = a->ids[i];
    row[n++] = eos;
    *len = n;
    *as = p->n;
    for (int i = n; i < T; i++) row[i] = pad;
}

static int jsonl_record(FILE *jl, const fact_t *f, int qa, int phrasing, int K, const char *idk)
{
    cJSON *o = cJSON_CreateObject();
    int ok = o && cJSON_AddStringToObject(o, "question", f->q) &&
             cJSON_AddStringToObject(o, "answer", idk ? idk : phrasing ? f->p : f->a);
    if (ok && qa) {
        cJSON *pert = cJSON_CreateStringArray((const char *const *)f->pert, K);
        ok = cJSON_AddStringToObject(o, "paraphrased_answer", f->p) && pert &&
             cJSON_AddItemToObject(o, "perturbed_answer", pert);
        if (!ok && pert && !cJSON_GetObjectItemCaseSensitive(o, "perturbed_answer"))
            cJSON_Delete(pert);
    }
    ok = ok && cJSON_AddNumberToObject(o, "sample_id", (double)(f->sid + phrasing));
    char *s = ok ? cJSON_PrintUnformatted(o) : NULL;
    ok = s && fputs(s, jl) >= 0 && fputc('\n', jl) != EOF;
    free(s);
    cJSON_Delete(o);
    return ok ? 0 : -1;
}

static int write_split(synth_data *d, dataset_writer *w, const split_t *sp, FILE *jl)
{
    int T = d->c.seq_len, K = d->K, cand = !d->markov && sp->qa && !sp->idk;
    int64_t n = sy_split_rows(d, sp);
    if (dsw_split_begin(w, sp->name, n, T, cand ? K : 0, cand, cand, d->err, d->errlen)) return -1;
    block b;
    if (block_alloc(&b, n, T, K, cand)) return sy_oom(d, "row block");
    int32_t eos = (int32_t)(d->markov ? SYNTH_MARKOV_EOS : tokenizer_eos_id(d->tk));
    int32_t pad = (int32_t)(d->markov ? SYNTH_MARKOV_EOS : tokenizer_pad_id(d->tk));
    int64_t row0 = 0, m = 0;
    int rc = 0, phrasings = d->markov || sp->qa ? 1 : 2;
    for (int r = 0; r < sp->nr && !rc; r++)
        for (int64_t i = sp->lo[r]; i < sp->hi[r] && !rc; i++)
            for (int ph = 0; ph < phrasings && !rc; ph++) {
                dataset_rows *x = &b.r;
                if (d->markov) {
                    int c = sp->ch[r], part = sp->pt[r];
                    x->lengths[m] = sy_markov_row(d, c, part, i, x->ids + m * T, T);
                    x->answer_start[m] = 1;
                    x->sample_id[m] = ((int64_t)(c * 2 + part) << 32) + i;
                } else {
                    const fact_t *f = &d->facts[i];
                    fill_row(x->ids + m * T, T, &f->tp,
                             sp->idk ? sy_idk_tokens(d, i) : ph ? &f->tpa : &f->ta, eos, pad,
                             &x->lengths[m], &x->answer_start[m]);
                    x->sample_id[m] = f->sid + ph;
                    if (cand) {
                        fill_row(x->para_ids + m * T, T, &f->tp, &f->tpa, eos, pad,
                                 &x->para_lengths[m], &x->para_answer_start[m]);
                        for (int k = 0; k < K; k++)
                            fill_row(x->pert_ids + (m * K + k) * T, T, &f->tp, &f->tpert[k], eos,
                                     pad, &x->pert_lengths[m * K + k],
                                     &x->pert_answer_start[m * K + k]);
                    }
                    if (jl && jsonl_record(jl, f, cand, ph, K, sp->idk ? sy_idk_text(d, i) : NULL))
                        rc = sy_fail(d->err, d->errlen,
                                     "synth: cannot write the JSON lines of split "
                                     "'%s': %s",
                                     sp->name, strerror(errno));
                }
                if (++m == b.cap) {
                    if (!rc) rc = dsw_write(w, x, row0, m, d->err, d->errlen);
                    row0 += m;
                    m = 0;
                }
            }
    if (!rc && m) rc = dsw_write(w, &b.r, row0, m, d->err, d->errlen);
    block_free(&b);
    if (rc) return -1;
    if (d->markov) {
        char chains[64] = "";
        for (int r = 0; r < sp->nr; r++)
            snprintf(chains + strlen(chains), sizeof chains - strlen(chains), "%s%s", r ? "," : "",
                     CHAIN_NAME[sp->ch[r]]);
        if (dsw_split_attr_str(w, "chains", chains, d->err, d->errlen) ||
            dsw_split_attr_str(w, "part", sp->pt[0] ? "eval" : "train", d->err, d->errlen))
            return -1;
    } else if (dsw_split_attr_str(w, "rows", sp->qa ? "qa" : "train", d->err, d->errlen) ||
               dsw_split_attr_i64(w, "phrasings", phrasings, d->err, d->errlen) ||
               (strncmp(sp->name, "eval/", 5) != 0 &&
                dsw_split_attr_i64(w, "authors", sp->authors, d->err, d->errlen))) {
        return -1;
    }
    if (sy_write_buckets(d, w->group, sp)) return -1;
    return dsw_split_end(w, d->err, d->errlen);
}

int synth_write(synth_data *d, char *err, size_t errlen)
{
    double t0 = sy_now_seconds();
    d->err = err;
    d->errlen = errlen;
    const lethe_synth_config *c = &d->c;
    dataset_attrs a = {d->markov ? "none" : tokenizer_name(d->tk), d->sum.vocab_size,
                       d->markov ? SYNTH_MARKOV_EOS : tokenizer_pad_id(d->tk),
                       d->markov ? SYNTH_MARKOV_EOS : tokenizer_eos_id(d->tk),
                       d->sum.source_digest};
    dataset_writer w;
    if (dsw_create(&w, c->output, &a, err, errlen)) return -1;
    int jsonl = !d->markov && c->write_jsonl;
    safe_out jw[16];
    char se[4800];
    int n_open = 0, rc = 0;
    h5_quiet q;
    h5_quiet_on(&q);
    rc = write_root_attrs(d, w.file);
    h5_quiet_off(&q);
    if (!rc && d->markov) {
        h5_quiet_on(&q);
        rc = write_chains(d, w.file);
        h5_quiet_off(&q);
    }
    if (!rc && !d->markov) rc = tokenizer_save(d->tk, w.file, err, errlen);
    for (int s = 0; s < d->n_splits && !rc; s++) {
        FILE *jl = NULL;
        if (jsonl) {
            char fin[1100];
            synth_jsonl_path(c->output, d->split[s].name, fin, sizeof fin);
            if (safe_create(&jw[n_open], fin, se, sizeof se)) {
                rc = sy_fail(err, errlen, "synth: %s", se);
                break;
            }
            jl = jw[n_open++].f;
        }
        rc = write_split(d, &w, &d->split[s], jl);
    }
    if (rc) {
        dsw_abort(&w);
    } else {
        rc = dsw_close(&w, err, errlen);
    }
    for (int i = 0; i < n_open; i++) {
        if (rc)
            safe_abort(&jw[i]);
        else if (safe_finish(&jw[i], se, sizeof se))
            rc = sy_fail(err, errlen, "synth: %s", se);
    }
    d->err = NULL;
    if (rc) return -1;
    struct stat st;
    d->sum.file_bytes = stat(c->output, &st) == 0 ? (int64_t)st.st_size : 0;
    d->sum.jsonl_files = n_open;
    d->sum.write_seconds = sy_now_seconds() - t0;
    return 0;
}
