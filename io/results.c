/* io/results.c — the evaluation-results writer (results.h): eval.h5's split groups and
 * summary.json, each via a temporary name. */
#include "results.h"
#include "h5util.h"
#include "safefile.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

void results_group_name(char *out, size_t len, const char *split)
{
    snprintf(out, len, "/%.70s", split);
    for (char *p = out + 1; *p; p++)
        if (*p == '/') *p = '_'; /* one level per split: eval/utility_a -> eval_utility_a */
}

/* A failed write leaves no file behind: the temporary one is closed and removed. */
static int drop(results_writer *w)
{
    if (w->file >= 0) H5Fclose(w->file);
    w->file = -1;
    remove(w->tmp);
    return -1;
}

int results_open(results_writer *w, const char *path, char *err, size_t errlen)
{
    snprintf(w->path, sizeof w->path, "%s", path);
    snprintf(w->tmp, sizeof w->tmp, "%s.tmp", path);
    w->file = -1;
    w->file = h5_create_temp(path, w->tmp, err, errlen);
    if (w->file < 0) return -1;
    return 0;
}

static int write_column(hid_t g, int64_t rows, const results_column *c)
{
    hid_t file = c->type == RESULTS_F64   ? H5T_IEEE_F64LE
                 : c->type == RESULTS_I64 ? H5T_STD_I64LE
                                          : H5T_STD_I32LE;
    hid_t mem = c->type == RESULTS_F64   ? H5T_NATIVE_DOUBLE
                : c->type == RESULTS_I64 ? H5T_NATIVE_INT64
                                         : H5T_NATIVE_INT32;
    hsize_t dims[2] = {(hsize_t)rows, (hsize_t)c->cols};
    hid_t sp = H5Screate_simple(c->cols > 0 ? 2 : 1, dims, NULL);
    hid_t d = H5Dcreate2(g, c->name, file, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int ok = d >= 0 && (rows == 0 || H5Dwrite(d, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, c->data) >= 0);
    if (d >= 0) H5Dclose(d);
    H5Sclose(sp);
    return ok;
}

int results_split(results_writer *w, const char *split, int64_t rows, const results_column *col,
                  int ncol, char *err, size_t errlen)
{
    char grp[80];
    results_group_name(grp, sizeof grp, split);
    hid_t g = H5Gcreate2(w->file, grp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) {
        snprintf(err, errlen, "'%s': cannot create group '%s'", w->tmp, grp);
        return drop(w);
    }
    int ok = 1;
    for (int c = 0; c < ncol && ok; c++) ok = write_column(g, rows, &col[c]);
    H5Gclose(g);
    if (!ok) {
        snprintf(err, errlen, "'%s': cannot write the datasets of group '%s'", w->tmp, grp);
        return drop(w);
    }
    return 0;
}

int results_close(results_writer *w, char *err, size_t errlen)
{
    int bad = H5Fclose(w->file) < 0;
    w->file = -1;
    if (bad) {
        snprintf(err, errlen, "cannot write '%s'", w->path);
        return drop(w);
    }
    return safe_commit(w->tmp, w->path, err, errlen);
}

int results_write_json(const char *path, const cJSON *doc, char *err, size_t errlen)
{
    char *txt = cJSON_Print(doc);
    if (!txt) {
        snprintf(err, errlen, "cannot write '%s': out of memory", path);
        return -1;
    }
    int rc = safe_write_text(path, txt, "\n", err, errlen);
    free(txt);
    return rc;
}

cJSON *results_number(double v)
{
    return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull();
}
