/* io/dataset_write.c — the serial writer of the HDF5 token dataset (io/dataset.h): it
 * creates the file under a temporary name, writes each split's rows and attributes, and
 * renames it into place on dsw_close (validation and inspection are dataset.c). */
#define _POSIX_C_SOURCE 200809L /* getline, strdup, strndup */
#include "../mpi/fatal.h"
#include "h5util.h"
#include "dataset.h"
#include "safefile.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int dsw_create(dataset_writer *w, const char *path, const dataset_attrs *a, char *err,
               size_t errlen)
{
    memset(w, 0, sizeof *w);
    w->file = w->group = -1;
    if (snprintf(w->path, sizeof w->path, "%s", path) >= (int)sizeof w->path)
        return lethe_errf(err, errlen, "dataset '%s': path too long", path);
    snprintf(w->tmp, sizeof w->tmp, "%s.tmp", path);
    char se[4600];
    h5_quiet q;
    h5_quiet_on(&q);
    w->file = h5_create_temp(path, w->tmp, se, sizeof se);
    int rc = 0;
    if (w->file < 0) {
        w->tmp[0] = 0; /* removed, or not ours: dsw_abort leaves it */
        rc = lethe_errf(err, errlen, "dataset '%s': %s", path, se);
    } else if (h5_attr_write_str(w->file, "tokenizer", a->tokenizer) ||
               h5_attr_write_i64(w->file, "vocab_size", a->vocab_size) ||
               h5_attr_write_i64(w->file, "pad_id", a->pad_id) ||
               h5_attr_write_i64(w->file, "eos_id", a->eos_id) ||
               (a->source_digest &&
                h5_attr_write_str(w->file, "source_digest", a->source_digest))) {
        rc = lethe_errf(err, errlen, "dataset '%s': cannot write root attributes", path);
    }
    h5_quiet_off(&q);
    if (rc) dsw_abort(w);
    return rc;
}

static hid_t create_i(hid_t g, const char *name, hid_t type, int rank, const hsize_t *dims)
{
    hid_t s = H5Screate_simple(rank, dims, NULL);
    hid_t d = H5Dcreate2(g, name, type, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Sclose(s);
    if (d >= 0) H5Dclose(d);
    return d < 0 ? -1 : 0;
}

int dsw_split_begin(dataset_writer *w, const char *split, int64_t n, int t, int k, int has_para,
                    int has_pert, char *err, size_t errlen)
{
    char sp[DATASET_SPLIT_MAX];
    if (dataset_split_path(sp, sizeof sp, split, err, errlen)) return -1;
    if (n < 1 || t < 2 || (has_pert && k < 1))
        return lethe_errf(err, errlen, "dataset '%s': split '%s': bad shape N=%lld T=%d K=%d",
                          w->path, sp, (long long)n, t, k);
    h5_quiet q;
    h5_quiet_on(&q);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    w->group = H5Gcreate2(w->file, sp, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    H5Pclose(lcpl);
    int rc = 0;
    if (w->group < 0) {
        char h5[256];
        h5_last_error(h5, sizeof h5);
        rc = lethe_errf(err, errlen, "dataset '%s': cannot create split '%s': %s", w->path, sp, h5);
        goto out;
    }
    w->n = n;
    w->t = t;
    w->k = k;
    w->has_para = has_para;
    w->has_pert = has_pert;
    hsize_t nt[2] = {(hsize_t)n, (hsize_t)t}, n1[1] = {(hsize_t)n};
    hsize_t nkt[3] = {(hsize_t)n, (hsize_t)k, (hsize_t)t}, nk[2] = {(hsize_t)n, (hsize_t)k};
    int bad = create_i(w->group, "input_ids", H5T_STD_I32LE, 2, nt) ||
              create_i(w->group, "lengths", H5T_STD_I32LE, 1, n1) ||
              create_i(w->group, "answer_start", H5T_STD_I32LE, 1, n1) ||
              create_i(w->group, "sample_id", H5T_STD_I64LE, 1, n1);
    if (!bad && has_para)
        bad = create_i(w->group, "paraphrased_ids", H5T_STD_I32LE, 2, nt) ||
              create_i(w->group, "paraphrased_lengths", H5T_STD_I32LE, 1, n1) ||
              create_i(w->group, "paraphrased_answer_start", H5T_STD_I32LE, 1, n1);
    if (!bad && has_pert)
        bad = create_i(w->group, "perturbed_ids", H5T_STD_I32LE, 3, nkt) ||
              create_i(w->group, "perturbed_lengths", H5T_STD_I32LE, 2, nk) ||
              create_i(w->group, "perturbed_answer_start", H5T_STD_I32LE, 2, nk);
    if (bad)
        rc = lethe_errf(err, errlen, "dataset '%s': cannot create the datasets of split '%s'",
                        w->path, sp);
out:
    h5_quiet_off(&q);
    return rc;
}

static int write_rows(hid_t g, const char *name, hid_t memtype, int64_t row0, int64_t n,
                      const void *buf)
{
    hid_t d = H5Dopen2(g, name, H5P_DEFAULT);
    if (d < 0) return -1;
    int rc = h5_rows_io(d, memtype, row0, n, (void *)buf, 1);
    H5Dclose(d);
    return rc;
}

int dsw_write(dataset_writer *w, const dataset_rows *r, int64_t row0, int64_t n, char *err,
              size_t errlen)
{
    if (w->group < 0 || row0 < 0 || n < 0 || row0 + n > w->n)
        return lethe_errf(err, errlen, "dataset '%s': rows %lld..%lld outside the open split",
                          w->path, (long long)row0, (long long)(row0 + n));
    if (n == 0) return 0;
    h5_quiet q;
    h5_quiet_on(&q);
    const char *what = NULL;
    if (write_rows(w->group, "input_ids", H5T_NATIVE_INT32, row0, n, r->ids))
        what = "input_ids";
    else if (write_rows(w->group, "lengths", H5T_NATIVE_INT32, row0, n, r->lengths))
        what = "lengths";
    else if (write_rows(w->group, "answer_start", H5T_NATIVE_INT32, row0, n, r->answer_start))
        what = "answer_start";
    else if (write_rows(w->group, "sample_id", H5T_NATIVE_INT64, row0, n, r->sample_id))
        what = "sample_id";
    else if (w->has_para &&
             write_rows(w->group, "paraphrased_ids", H5T_NATIVE_INT32, row0, n, r->para_ids))
        what = "paraphrased_ids";
    else if (w->has_para && write_rows(w->group, "paraphrased_lengths", H5T_NATIVE_INT32, row0, n,
                                       r->para_lengths))
        what = "paraphrased_lengths";
    else if (w->has_para && write_rows(w->group, "paraphrased_answer_start", H5T_NATIVE_INT32, row0,
                                       n, r->para_answer_start))
        what = "paraphrased_answer_start";
    else if (w->has_pert &&
             write_rows(w->group, "perturbed_ids", H5T_NATIVE_INT32, row0, n, r->pert_ids))
        what = "perturbed_ids";
    else if (w->has_pert &&
             write_rows(w->group, "perturbed_lengths", H5T_NATIVE_INT32, row0, n, r->pert_lengths))
        what = "perturbed_lengths";
    else if (w->has_pert && write_rows(w->group, "perturbed_answer_start", H5T_NATIVE_INT32, row0,
                                       n, r->pert_answer_start))
        what = "perturbed_answer_start";
    int rc = 0;
    if (what) {
        char h5[256];
        h5_last_error(h5, sizeof h5);
        rc = lethe_errf(err, errlen, "dataset '%s': writing '%s' rows %lld..%lld failed: %s",
                        w->tmp, what, (long long)row0, (long long)(row0 + n - 1), h5);
    }
    h5_quiet_off(&q);
    return rc;
}

int dsw_split_attr_str(dataset_writer *w, const char *name, const char *value, char *err,
                       size_t errlen)
{
    if (w->group < 0 || h5_attr_write_str(w->group, name, value))
        return lethe_errf(err, errlen, "dataset '%s': cannot write split attribute '%s'", w->path,
                          name);
    return 0;
}

int dsw_split_attr_i64(dataset_writer *w, const char *name, int64_t value, char *err, size_t errlen)
{
    if (w->group < 0 || h5_attr_write_i64(w->group, name, value))
        return lethe_errf(err, errlen, "dataset '%s': cannot write split attribute '%s'", w->path,
                          name);
    return 0;
}

int dsw_split_end(dataset_writer *w, char *err, size_t errlen)
{
    if (w->group >= 0 && H5Gclose(w->group) < 0) {
        w->group = -1;
        return lethe_errf(err, errlen, "dataset '%s': closing a split failed", w->path);
    }
    w->group = -1;
    return 0;
}

int dsw_close(dataset_writer *w, char *err, size_t errlen)
{
    if (w->group >= 0) H5Gclose(w->group);
    w->group = -1;
    herr_t rc = H5Fclose(w->file);
    w->file = -1;
    if (rc < 0) {
        remove(w->tmp);
        return lethe_errf(err, errlen, "dataset '%s': closing '%s' failed", w->path, w->tmp);
    }
    char se[4600];
    if (safe_commit(w->tmp, w->path, se, sizeof se))
        return lethe_errf(err, errlen, "dataset '%s': %s", w->path, se);
    return 0;
}

void dsw_abort(dataset_writer *w)
{
    if (w->group >= 0) H5Gclose(w->group);
    if (w->file >= 0) H5Fclose(w->file);
    w->group = w->file = -1;
    if (w->tmp[0]) remove(w->tmp);
}
