/* jobs/eval_buckets.c — `lethe eval`'s metrics per difficulty bucket: a split whose group
 * holds a per-row int dataset `bucket` and the attribute `bucket_names` ("a_b,c_d,...";
 * io/DATASETS.md, written by synth.difficulty) is summarised for each bucket and for each
 * '_'-separated part of the names (short_rare counts in short and in rare), with the
 * split's own aggregates (eval_aggregate) over those rows only. Rank 0, serial reads. */
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>

#include "../io/dataset.h"
#include "../io/results.h"
#include "../mpi/fatal.h"
#include "evaluate.h"

/* The names of bucket_names, comma-separated, into B->names. 0, or -1 + err. */
static int parse_names(split_buckets *B, const char *s, const char *split, char *err, size_t errlen)
{
    B->n_names = 0;
    for (const char *p = s; *p;) {
        size_t l = strcspn(p, ",");
        if (!l || l >= sizeof B->names[0] || B->n_names == EVAL_MAX_BUCKETS)
            return lethe_errf(err, errlen,
                              "split '%s': attribute bucket_names '%s' is not at most %d "
                              "comma-separated names of 1..%zu characters",
                              split, s, EVAL_MAX_BUCKETS, sizeof B->names[0] - 1);
        memcpy(B->names[B->n_names], p, l);
        B->names[B->n_names++][l] = 0;
        p += l + (p[l] == ',');
    }
    return 0;
}

int eval_buckets_read(const char *path, const char *split, int64_t n, split_buckets *B, char *err,
                      size_t errlen)
{
    memset(B, 0, sizeof *B);
    char grp[300], names[1024] = "";
    if (dataset_split_path(grp, sizeof grp, split, err, errlen)) return -1;
    h5_quiet q;
    h5_quiet_on(&q);
    int rc = 0;
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t g = f < 0 ? -1 : H5Gopen2(f, grp, H5P_DEFAULT);
    hid_t d =
        g < 0 || H5Lexists(g, "bucket", H5P_DEFAULT) <= 0 ? -1 : H5Dopen2(g, "bucket", H5P_DEFAULT);
    if (d >= 0) {
        hid_t sp = H5Dget_space(d);
        hsize_t dims[1] = {0};
        int ok = H5Sget_simple_extent_ndims(sp) == 1 &&
                 H5Sget_simple_extent_dims(sp, dims, NULL) == 1 && (int64_t)dims[0] >= n &&
                 h5_attr_read_str(g, "bucket_names", names, sizeof names) == 0;
        B->b = malloc(sizeof(int32_t) * (dims[0] + 1));
        ok = ok && B->b && H5Dread(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, B->b) >= 0;
        if (!ok)
            rc = lethe_errf(err, errlen,
                            "split '%s': %s/bucket is not one int per row (%lld rows) with the "
                            "attribute bucket_names",
                            split, grp, (long long)n);
        else
            rc = parse_names(B, names, split, err, errlen);
        for (int64_t i = 0; rc == 0 && i < n; i++)
            if (B->b[i] < 0 || B->b[i] >= B->n_names)
                rc = lethe_errf(err, errlen, "split '%s': row %lld has bucket %d, outside [0, %d)",
                                split, (long long)i, B->b[i], B->n_names);
        H5Sclose(sp);
        H5Dclose(d);
    }
    if (g >= 0) H5Gclose(g);
    if (f >= 0) H5Fclose(f);
    h5_quiet_off(&q);
    if (rc || d < 0) eval_buckets_free(B);
    return rc;
}

void eval_buckets_free(split_buckets *B)
{
    free(B->b);
    memset(B, 0, sizeof *B);
}

/* Whether bucket name `name` belongs to group `g`: the name itself or one of its parts. */
static int in_group(const char *name, const char *g)
{
    size_t l = strlen(g);
    for (const char *p = name; *p;) {
        size_t k = strcspn(p, "_");
        if ((k == l && !strncmp(p, g, l)) || !strcmp(name, g)) return 1;
        p += k + (p[k] == '_');
    }
    return 0;
}

/* The aggregates of the rows of e in group g, as the split's own. */
static void group_object(cJSON *o, const split_eval *e, int role, const split_buckets *B,
                         const char *g)
{
    int64_t m = 0, k = e->k > 0 ? e->k : 0;
    split_eval s = *e;
    s.prob = lethe_malloc(sizeof(double) * (size_t)(e->n + 1), "buckets");
    s.rouge_recall = lethe_malloc(sizeof(double) * (size_t)(e->n + 1), "buckets");
    s.rouge_f1 = lethe_malloc(sizeof(double) * (size_t)(e->n + 1), "buckets");
    s.nll = lethe_malloc(sizeof(double) * (size_t)(e->n + 1), "buckets");
    s.nll_para = lethe_malloc(sizeof(double) * (size_t)(e->n + 1), "buckets");
    s.nll_pert = lethe_malloc(sizeof(double) * (size_t)(e->n * k + 1), "buckets");
    for (int64_t i = 0; i < e->n; i++) {
        if (!in_group(B->names[B->b[i]], g)) continue;
        s.prob[m] = e->prob[i];
        s.rouge_recall[m] = e->rouge_recall[i];
        s.rouge_f1[m] = e->rouge_f1[i];
        s.nll[m] = e->nll[i];
        s.nll_para[m] = e->nll_para ? e->nll_para[i] : NAN;
        if (k) memcpy(s.nll_pert + m * k, e->nll_pert + i * k, sizeof(double) * (size_t)k);
        m++;
    }
    s.n = m;
    split_aggregate a;
    eval_aggregate(&s, role, &a);
    cJSON_AddNumberToObject(o, "n", (double)m);
    cJSON_AddItemToObject(o, "prob", results_number(role == 2 ? a.prob_norm : a.prob));
    cJSON_AddItemToObject(o, "rouge_recall", results_number(a.rouge_recall));
    cJSON_AddItemToObject(o, "rouge_f1", results_number(a.rouge_f1));
    cJSON_AddItemToObject(o, "truth_ratio", results_number(a.truth_ratio));
    free(s.prob);
    free(s.rouge_recall);
    free(s.rouge_f1);
    free(s.nll);
    free(s.nll_para);
    free(s.nll_pert);
}

void eval_buckets_summary(cJSON *split_obj, const split_eval *e, int role, const split_buckets *B)
{
    if (!B->b || e->n == 0) return;
    cJSON *bo = cJSON_AddObjectToObject(split_obj, "buckets");
    for (int i = 0; i < B->n_names; i++)
        group_object(cJSON_AddObjectToObject(bo, B->names[i]), e, role, B, B->names[i]);
    for (int i = 0; i < B->n_names; i++) /* then the parts of the names, each once */
        for (const char *p = B->names[i]; *p;) {
            char part[sizeof B->names[0]];
            size_t k = strcspn(p, "_");
            snprintf(part, sizeof part, "%.*s", (int)k, p);
            p += k + (p[k] == '_');
            if (!cJSON_GetObjectItemCaseSensitive(bo, part))
                group_object(cJSON_AddObjectToObject(bo, part), e, role, B, part);
        }
}
