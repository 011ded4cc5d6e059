/* io/dataset.c — the HDF5 token dataset's validation (serial): the attribute helpers,
 * the row checks and dataset_inspect (the writer is dataset_write.c). */
#define _POSIX_C_SOURCE 200809L /* getline, strdup, strndup */
#include "../mpi/fatal.h"
#include "dataset.h"
#include "h5util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- small helpers ---------------------------------------------------------------- */

static void type_name(hid_t t, char *buf, size_t len)
{
    H5T_class_t c = H5Tget_class(t);
    size_t sz = H5Tget_size(t);
    if (c == H5T_INTEGER)
        snprintf(buf, len, "%sint%zu", H5Tget_sign(t) == H5T_SGN_NONE ? "u" : "", sz * 8);
    else if (c == H5T_FLOAT)
        snprintf(buf, len, "float%zu", sz * 8);
    else if (c == H5T_STRING)
        snprintf(buf, len, "string");
    else if (c == H5T_COMPOUND)
        snprintf(buf, len, "compound");
    else
        snprintf(buf, len, "HDF5 class %d", (int)c);
}

static void shape_str(const hsize_t *d, int rank, char *buf, size_t len)
{
    size_t o = 0;
    o += snprintf(buf + o, len - o, "[");
    for (int i = 0; i < rank && o < len; i++)
        o += snprintf(buf + o, len - o, "%s%llu", i ? "," : "", (unsigned long long)d[i]);
    if (o < len) snprintf(buf + o, len - o, "]");
}

int dataset_split_path(char *out, size_t outlen, const char *split, char *err, size_t errlen)
{
    if (!split || !split[0] || strcmp(split, "/") == 0)
        return lethe_errf(err, errlen,
                          "split name is empty (expected e.g. \"forget\" or \"eval/retain\")");
    if (strstr(split, "..") || strstr(split, "//"))
        return lethe_errf(err, errlen, "split name '%s' is not a plain group path", split);
    int n = snprintf(out, outlen, "%s%s", split[0] == '/' ? "" : "/", split);
    if (n < 0 || (size_t)n >= outlen)
        return lethe_errf(err, errlen, "split name '%s' is longer than %zu characters", split,
                          outlen - 1);
    size_t l = strlen(out);
    if (l > 1 && out[l - 1] == '/') out[l - 1] = 0;
    return 0;
}

int h5_attr_read_str(hid_t obj, const char *name, char *buf, size_t len)
{
    buf[0] = 0;
    if (H5Aexists(obj, name) <= 0) return 1;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0) return 1;
    hid_t ft = H5Aget_type(a);
    int rc = 2;
    if (ft >= 0 && H5Tget_class(ft) == H5T_STRING) {
        if (H5Tis_variable_str(ft) > 0) {
            hid_t mt = H5Tcopy(H5T_C_S1);
            H5Tset_size(mt, H5T_VARIABLE);
            H5Tset_cset(mt, H5Tget_cset(ft));
            char *s = NULL;
            if (H5Aread(a, mt, &s) >= 0) {
                snprintf(buf, len, "%s", s ? s : "");
                rc = 0;
            }
            if (s) H5free_memory(s);
            H5Tclose(mt);
        } else {
            size_t sz = H5Tget_size(ft);
            char *tmp = calloc(sz + 1, 1);
            hid_t mt = H5Tcopy(ft);
            if (tmp && H5Aread(a, mt, tmp) >= 0) {
                snprintf(buf, len, "%s", tmp);
                rc = 0;
            }
            free(tmp);
            H5Tclose(mt);
        }
    }
    if (ft >= 0) H5Tclose(ft);
    H5Aclose(a);
    return rc;
}

int h5_attr_read_i64(hid_t obj, const char *name, int64_t *v)
{
    if (H5Aexists(obj, name) <= 0) return 1;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0) return 1;
    hid_t ft = H5Aget_type(a), sp = H5Aget_space(a);
    int rc = 2;
    if (ft >= 0 && sp >= 0 && H5Tget_class(ft) == H5T_INTEGER &&
        H5Sget_simple_extent_npoints(sp) == 1) {
        if (H5Aread(a, H5T_NATIVE_INT64, v) >= 0) rc = 0;
    }
    if (ft >= 0) H5Tclose(ft);
    if (sp >= 0) H5Sclose(sp);
    H5Aclose(a);
    return rc;
}

/* A scalar attribute of file type ftype from *value (memory type mtype), replacing any. */
static int attr_write_scalar(hid_t obj, const char *name, hid_t ftype, hid_t mtype,
                             const void *value)
{
    hid_t s = H5Screate(H5S_SCALAR);
    if (H5Aexists(obj, name) > 0) H5Adelete(obj, name);
    hid_t a = H5Acreate2(obj, name, ftype, s, H5P_DEFAULT, H5P_DEFAULT);
    int rc = -1;
    if (a >= 0) {
        rc = H5Awrite(a, mtype, value) < 0 ? -1 : 0;
        H5Aclose(a);
    }
    H5Sclose(s);
    return rc;
}

int h5_attr_write_str(hid_t obj, const char *name, const char *value)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    int rc = attr_write_scalar(obj, name, t, t, &value);
    H5Tclose(t);
    return rc;
}

int h5_attr_write_i64(hid_t obj, const char *name, int64_t value)
{
    return attr_write_scalar(obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &value);
}

/* ---- validation --------------------------------------------------------------------- */

typedef struct {
    char *buf;
    size_t len, used;
    int count;
} split_list;

static herr_t list_cb(hid_t g, const char *name, const H5L_info_t *info, void *data)
{
    (void)g;
    (void)info;
    split_list *l = data;
    const char *leaf = strrchr(name, '/');
    leaf = leaf ? leaf + 1 : name;
    if (strcmp(leaf, "input_ids") != 0) return 0;
    int dl = (int)(leaf - name) - (leaf == name ? 0 : 1);
    if (l->used < l->len) {
        int n =
            snprintf(l->buf + l->used, l->len - l->used, "%s/%.*s", l->count ? ", " : "", dl, name);
        if (n > 0) l->used += (size_t)n;
    }
    l->count++;
    return 0;
}

static void list_splits(hid_t f, char *buf, size_t len)
{
    split_list l = {buf, len, 0, 0};
    buf[0] = 0;
    H5Lvisit(f, H5_INDEX_NAME, H5_ITER_INC, list_cb, &l);
    if (!l.count) snprintf(buf, len, "none");
}

/* Opens `name` in group g and checks it is an integer dataset of `size` bytes with
 * `rank` dimensions; want[i] > 0 pins dimension i. Fills dims. Returns the dataset
 * or -1 with err (missing_ok: returns -2 silently when absent). */
static hid_t open_checked(hid_t g, const char *origin, const char *split, const char *name,
                          size_t size, int rank, const hsize_t *want, hsize_t *dims, int missing_ok,
                          char *err, size_t errlen)
{
    if (H5Lexists(g, name, H5P_DEFAULT) <= 0) {
        if (missing_ok) return -2;
        return lethe_errf(err, errlen, "dataset '%s': '%s/%s' is missing", origin, split, name);
    }
    hid_t d = H5Dopen2(g, name, H5P_DEFAULT);
    if (d < 0)
        return lethe_errf(err, errlen, "dataset '%s': '%s/%s' is not a dataset", origin, split,
                          name);
    hid_t t = H5Dget_type(d), s = H5Dget_space(d);
    char tn[64];
    type_name(t, tn, sizeof tn);
    int ok_type =
        H5Tget_class(t) == H5T_INTEGER && H5Tget_size(t) == size && H5Tget_sign(t) == H5T_SGN_2;
    H5Tclose(t);
    if (!ok_type) {
        H5Sclose(s);
        H5Dclose(d);
        return lethe_errf(err, errlen, "dataset '%s': '%s/%s' has type %s, expected int%zu", origin,
                          split, name, tn, size * 8);
    }
    int r = H5Sget_simple_extent_ndims(s);
    hsize_t got[8] = {0};
    if (r >= 0 && r <= 8) H5Sget_simple_extent_dims(s, got, NULL);
    H5Sclose(s);
    int ok_shape = r == rank;
    for (int i = 0; ok_shape && i < rank; i++)
        if (want[i] > 0 && got[i] != want[i]) ok_shape = 0;
    if (!ok_shape) {
        char gs[96], ws[96];
        shape_str(got, r < 0 ? 0 : r, gs, sizeof gs);
        size_t o = snprintf(ws, sizeof ws, "[");
        for (int i = 0; i < rank; i++) {
            if (want[i] > 0)
                o += snprintf(ws + o, sizeof ws - o, "%s%llu", i ? "," : "",
                              (unsigned long long)want[i]);
            else
                o += snprintf(ws + o, sizeof ws - o, "%s%c", i ? "," : "",
                              "NKT"[i == 0          ? 0
                                    : i == rank - 1 ? 2
                                                    : 1]);
        }
        snprintf(ws + o, sizeof ws - o, "]");
        H5Dclose(d);
        return lethe_errf(err, errlen, "dataset '%s': '%s/%s' has shape %s, expected %s", origin,
                          split, name, gs, ws);
    }
    for (int i = 0; i < rank; i++) dims[i] = got[i];
    return d;
}

/* Reads rows [row0, row0+n) of a dataset whose first dimension is the row. */
static int read_rows(hid_t d, hid_t memtype, int64_t row0, int64_t n, void *buf)
{
    return h5_rows_io(d, memtype, row0, n, buf, 0);
}

static int check_len(const char *origin, const char *split, const char *lname, const char *aname,
                     int64_t row, int cand, int32_t len, int32_t as, int t, char *err,
                     size_t errlen)
{
    char c[32] = "";
    if (cand >= 0) snprintf(c, sizeof c, " candidate %d", cand);
    if (len < 1 || len > t)
        return lethe_errf(err, errlen,
                          "dataset '%s': '%s/%s' sample %lld%s: length %d outside [1, %d]", origin,
                          split, lname, (long long)row, c, len, t);
    if (as < 0 || as >= len)
        return lethe_errf(
            err, errlen,
            "dataset '%s': '%s/%s' sample %lld%s: answer_start %d outside [0, length %d)", origin,
            split, aname, (long long)row, c, as, len);
    return 0;
}

static int check_ids(const char *origin, const char *split, const char *name, const int32_t *ids,
                     int64_t row, const int64_t *sid, int cand, int t, int64_t v, char *err,
                     size_t errlen)
{
    for (int j = 0; j < t; j++) {
        if (ids[j] >= 0 && ids[j] < v) continue;
        char s[48] = "", c[32] = "";
        if (sid) snprintf(s, sizeof s, " (sample_id %lld)", (long long)*sid);
        if (cand >= 0) snprintf(c, sizeof c, " candidate %d", cand);
        return lethe_errf(err, errlen,
                          "dataset '%s': '%s/%s' sample %lld%s%s position %d: id %d outside [0, "
                          "vocab_size %lld)",
                          origin, split, name, (long long)row, s, c, j, ids[j], (long long)v);
    }
    return 0;
}

int dataset_check_rows(const dataset_info *in, const char *origin, const dataset_rows *r,
                       int64_t row0, int64_t n, int ids, int64_t *bad_row, char *err, size_t errlen)
{
    const int t = in->t, k = in->k;
    for (int64_t i = 0; i < n; i++) {
        int64_t row = row0 + i;
        const int64_t *sid = r->sample_id ? &r->sample_id[i] : NULL;
        *bad_row = row;
        if (r->lengths && check_len(origin, in->split, "lengths", "answer_start", row, -1,
                                    r->lengths[i], r->answer_start[i], t, err, errlen))
            return -1;
        if (ids && r->ids &&
            check_ids(origin, in->split, "input_ids", r->ids + i * t, row, sid, -1, t,
                      in->vocab_size, err, errlen))
            return -1;
        if (in->has_para && r->para_lengths &&
            check_len(origin, in->split, "paraphrased_lengths", "paraphrased_answer_start", row, -1,
                      r->para_lengths[i], r->para_answer_start[i], t, err, errlen))
            return -1;
        if (ids && in->has_para && r->para_ids &&
            check_ids(origin, in->split, "paraphrased_ids", r->para_ids + i * t, row, sid, -1, t,
                      in->vocab_size, err, errlen))
            return -1;
        for (int c = 0; in->has_pert && c < k; c++) {
            if (r->pert_lengths &&
                check_len(origin, in->split, "perturbed_lengths", "perturbed_answer_start", row, c,
                          r->pert_lengths[i * k + c], r->pert_answer_start[i * k + c], t, err,
                          errlen))
                return -1;
            if (ids && r->pert_ids &&
                check_ids(origin, in->split, "perturbed_ids", r->pert_ids + (i * k + c) * t, row,
                          sid, c, t, in->vocab_size, err, errlen))
                return -1;
        }
    }
    *bad_row = -1;
    return 0;
}

typedef struct {
    hid_t ids, lengths, answer_start, sample_id;
    hid_t para_ids, para_lengths, para_as;
    hid_t pert_ids, pert_lengths, pert_as;
} split_dsets;

static void close_dsets(split_dsets *s)
{
    hid_t *h = (hid_t *)s;
    for (size_t i = 0; i < sizeof *s / sizeof(hid_t); i++)
        if (h[i] >= 0) H5Dclose(h[i]);
}

static int inspect_rows(const dataset_info *in, const char *origin, split_dsets *s, int depth,
                        size_t budget, char *err, size_t errlen)
{
    const int64_t t = in->t, k = in->k;
    size_t row_bytes = 2 * 4 + 8 + (in->has_para ? 8 : 0) + (in->has_pert ? 8 * k : 0);
    if (depth >= DATASET_CHECK_IDS)
        row_bytes += 4 * t * (1 + (in->has_para ? 1 : 0) + (in->has_pert ? k : 0));
    int64_t block = (int64_t)(budget / row_bytes);
    if (block < 1) block = 1;
    if (block > in->n) block = in->n;
    dataset_rows r = {0};
    int oom = 0;
#define ALLOC(p, bytes) oom |= !((p) = malloc((size_t)(bytes)))
    ALLOC(r.lengths, block * 4);
    ALLOC(r.answer_start, block * 4);
    ALLOC(r.sample_id, block * 8);
    if (in->has_para) {
        ALLOC(r.para_lengths, block * 4);
        ALLOC(r.para_answer_start, block * 4);
    }
    if (in->has_pert) {
        ALLOC(r.pert_lengths, block * k * 4);
        ALLOC(r.pert_answer_start, block * k * 4);
    }
    if (depth >= DATASET_CHECK_IDS) {
        ALLOC(r.ids, block * t * 4);
        if (in->has_para) ALLOC(r.para_ids, block * t * 4);
        if (in->has_pert) ALLOC(r.pert_ids, block * k * t * 4);
    }
#undef ALLOC
    int rc = 0;
    void **all = (void **)&r;
    if (oom)
        rc = lethe_errf(err, errlen, "dataset '%s': out of memory for a block of %lld rows", origin,
                        (long long)block);
    for (int64_t row0 = 0; rc == 0 && row0 < in->n; row0 += block) {
        int64_t n = in->n - row0 < block ? in->n - row0 : block;
        const char *what = NULL;
        if (read_rows(s->lengths, H5T_NATIVE_INT32, row0, n, r.lengths))
            what = "lengths";
        else if (read_rows(s->answer_start, H5T_NATIVE_INT32, row0, n, r.answer_start))
            what = "answer_start";
        else if (read_rows(s->sample_id, H5T_NATIVE_INT64, row0, n, r.sample_id))
            what = "sample_id";
        else if (in->has_para &&
                 read_rows(s->para_lengths, H5T_NATIVE_INT32, row0, n, r.para_lengths))
            what = "paraphrased_lengths";
        else if (in->has_para &&
                 read_rows(s->para_as, H5T_NATIVE_INT32, row0, n, r.para_answer_start))
            what = "paraphrased_answer_start";
        else if (in->has_pert &&
                 read_rows(s->pert_lengths, H5T_NATIVE_INT32, row0, n, r.pert_lengths))
            what = "perturbed_lengths";
        else if (in->has_pert &&
                 read_rows(s->pert_as, H5T_NATIVE_INT32, row0, n, r.pert_answer_start))
            what = "perturbed_answer_start";
        else if (r.ids && read_rows(s->ids, H5T_NATIVE_INT32, row0, n, r.ids))
            what = "input_ids";
        else if (r.para_ids && read_rows(s->para_ids, H5T_NATIVE_INT32, row0, n, r.para_ids))
            what = "paraphrased_ids";
        else if (r.pert_ids && read_rows(s->pert_ids, H5T_NATIVE_INT32, row0, n, r.pert_ids))
            what = "perturbed_ids";
        if (what) {
            char h5[256];
            h5_last_error(h5, sizeof h5);
            rc =
                lethe_errf(err, errlen, "dataset '%s': '%s/%s': reading rows %lld..%lld failed: %s",
                           origin, in->split, what, (long long)row0, (long long)(row0 + n - 1), h5);
            break;
        }
        int64_t bad;
        rc = dataset_check_rows(in, origin, &r, row0, n, depth >= DATASET_CHECK_IDS, &bad, err,
                                errlen);
    }
    for (size_t i = 0; i < sizeof r / sizeof(void *); i++) free(all[i]);
    return rc;
}

int dataset_inspect(dataset_info *in, const char *path, const char *split, int depth, size_t budget,
                    char *err, size_t errlen)
{
    memset(in, 0, sizeof *in);
    if (budget == 0) budget = 8u << 20;
    const char *origin = path;
    if (dataset_split_path(in->split, sizeof in->split, split, err, errlen)) {
        char m[512];
        snprintf(m, sizeof m, "%s", err);
        return lethe_errf(err, errlen, "dataset '%s': %s", origin, m);
    }
    struct stat st;
    if (stat(path, &st) != 0)
        return lethe_errf(err, errlen, "dataset '%s': cannot open: %s", origin, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return lethe_errf(err, errlen, "dataset '%s': not a regular file", origin);
    if (access(path, R_OK) != 0)
        return lethe_errf(err, errlen, "dataset '%s': cannot read: %s", origin, strerror(errno));

    h5_quiet q;
    h5_quiet_on(&q);
    int rc = -1;
    hid_t f = -1, g = -1;
    split_dsets s;
    for (size_t i = 0; i < sizeof s / sizeof(hid_t); i++) ((hid_t *)&s)[i] = -1;

    htri_t is = H5Fis_hdf5(path);
    if (is <= 0) {
        lethe_errf(err, errlen, "dataset '%s': not an HDF5 file", origin);
        goto out;
    }
    f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        char h5[256];
        h5_last_error(h5, sizeof h5);
        lethe_errf(err, errlen, "dataset '%s': HDF5 cannot open it (truncated or damaged file): %s",
                   origin, h5);
        goto out;
    }
    /* root attributes */
    int a = h5_attr_read_str(f, "tokenizer", in->tokenizer, sizeof in->tokenizer);
    if (a) {
        lethe_errf(err, errlen, "dataset '%s': root attribute 'tokenizer' is %s", origin,
                   a == 1 ? "missing (expected a string such as \"byte\")" : "not a string");
        goto out;
    }
    const char *iname[3] = {"vocab_size", "pad_id", "eos_id"};
    int64_t *ival[3] = {&in->vocab_size, &in->pad_id, &in->eos_id};
    for (int i = 0; i < 3; i++) {
        a = h5_attr_read_i64(f, iname[i], ival[i]);
        if (a) {
            lethe_errf(err, errlen, "dataset '%s': root attribute '%s' is %s", origin, iname[i],
                       a == 1 ? "missing" : "not a scalar integer");
            goto out;
        }
    }
    if (in->vocab_size < 1 || in->vocab_size > INT32_MAX) {
        lethe_errf(err, errlen,
                   "dataset '%s': root attribute 'vocab_size' is %lld, expected [1, %d]", origin,
                   (long long)in->vocab_size, INT32_MAX);
        goto out;
    }
    for (int i = 1; i < 3; i++) {
        if (*ival[i] < 0 || *ival[i] >= in->vocab_size) {
            lethe_errf(err, errlen, "dataset '%s': root attribute '%s' is %lld, expected [0, %lld)",
                       origin, iname[i], (long long)*ival[i], (long long)in->vocab_size);
            goto out;
        }
    }
    a = h5_attr_read_str(f, "source_digest", in->source_digest, sizeof in->source_digest);
    if (a == 2) {
        lethe_errf(err, errlen, "dataset '%s': root attribute 'source_digest' is not a string",
                   origin);
        goto out;
    }
    /* the split group, one path component at a time (H5Lexists needs the parents) */
    char part[DATASET_SPLIT_MAX];
    for (const char *p = in->split + 1;; p++) {
        if (*p == '/' || *p == 0) {
            snprintf(part, sizeof part, "%.*s", (int)(p - in->split), in->split);
            if (H5Lexists(f, part, H5P_DEFAULT) <= 0) {
                char present[512];
                list_splits(f, present, sizeof present);
                lethe_errf(err, errlen, "dataset '%s': split '%s' not found (splits present: %s)",
                           origin, in->split, present);
                goto out;
            }
            if (*p == 0) break;
        }
    }
    g = H5Gopen2(f, in->split, H5P_DEFAULT);
    if (g < 0) {
        lethe_errf(err, errlen, "dataset '%s': '%s' is not a group", origin, in->split);
        goto out;
    }
    hsize_t any3[3] = {0, 0, 0}, d2[2], d1[1], d3[3];
    s.ids = open_checked(g, origin, in->split, "input_ids", 4, 2, any3, d2, 0, err, errlen);
    if (s.ids < 0) goto out;
    in->n = (int64_t)d2[0];
    in->t = (int)d2[1];
    if (in->n < 1 || d2[1] < 2 || d2[1] > (1u << 24)) {
        lethe_errf(err, errlen,
                   "dataset '%s': '%s/input_ids' has shape [%llu,%llu], expected N >= 1 "
                   "and 2 <= T <= %u",
                   origin, in->split, (unsigned long long)d2[0], (unsigned long long)d2[1],
                   1u << 24);
        goto out;
    }
    hsize_t wn[1] = {(hsize_t)in->n};
    if ((s.lengths = open_checked(g, origin, in->split, "lengths", 4, 1, wn, d1, 0, err, errlen)) <
            0 ||
        (s.answer_start = open_checked(g, origin, in->split, "answer_start", 4, 1, wn, d1, 0, err,
                                       errlen)) < 0 ||
        (s.sample_id =
             open_checked(g, origin, in->split, "sample_id", 8, 1, wn, d1, 0, err, errlen)) < 0)
        goto out;
    hsize_t wnt[2] = {(hsize_t)in->n, (hsize_t)in->t};
    s.para_ids =
        open_checked(g, origin, in->split, "paraphrased_ids", 4, 2, wnt, d2, 1, err, errlen);
    if (s.para_ids == -1) goto out;
    if (s.para_ids >= 0) {
        in->has_para = 1;
        if ((s.para_lengths = open_checked(g, origin, in->split, "paraphrased_lengths", 4, 1, wn,
                                           d1, 0, err, errlen)) < 0 ||
            (s.para_as = open_checked(g, origin, in->split, "paraphrased_answer_start", 4, 1, wn,
                                      d1, 0, err, errlen)) < 0)
            goto out;
    }
    hsize_t wnkt[3] = {(hsize_t)in->n, 0, (hsize_t)in->t};
    s.pert_ids =
        open_checked(g, origin, in->split, "perturbed_ids", 4, 3, wnkt, d3, 1, err, errlen);
    if (s.pert_ids == -1) goto out;
    if (s.pert_ids >= 0) {
        in->has_pert = 1;
        in->k = (int)d3[1];
        if (d3[1] < 1 || d3[1] > 4096) {
            lethe_errf(err, errlen,
                       "dataset '%s': '%s/perturbed_ids' has K = %llu candidates, "
                       "expected [1, 4096]",
                       origin, in->split, (unsigned long long)d3[1]);
            goto out;
        }
        hsize_t wnk[2] = {(hsize_t)in->n, d3[1]};
        if ((s.pert_lengths = open_checked(g, origin, in->split, "perturbed_lengths", 4, 2, wnk, d2,
                                           0, err, errlen)) < 0 ||
            (s.pert_as = open_checked(g, origin, in->split, "perturbed_answer_start", 4, 2, wnk, d2,
                                      0, err, errlen)) < 0)
            goto out;
    }
    for (size_t i = 0; i < sizeof s / sizeof(hid_t); i++) {
        char why[700];
        hid_t d = ((hid_t *)&s)[i];
        if (d >= 0 && h5_check_storage(d, (int64_t)st.st_size, why, sizeof why)) {
            lethe_errf(err, errlen, "dataset '%s': %s", origin, why);
            goto out;
        }
    }
    if (depth >= DATASET_CHECK_ROWS && inspect_rows(in, origin, &s, depth, budget, err, errlen))
        goto out;
    rc = 0;
out:
    for (size_t i = 0; i < sizeof s / sizeof(hid_t); i++)
        if (((hid_t *)&s)[i] < 0) ((hid_t *)&s)[i] = -1;
    close_dsets(&s);
    if (g >= 0) H5Gclose(g);
    if (f >= 0) H5Fclose(f);
    H5Eclear2(H5E_DEFAULT);
    h5_quiet_off(&q);
    return rc;
}
