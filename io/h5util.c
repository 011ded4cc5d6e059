/* io/h5util.c — HDF5's error stack as one line (see h5util.h). */
#include "h5util.h"
#include "safefile.h"

#include <stdio.h>

void h5_quiet_on(h5_quiet *q)
{
    if (H5Eget_auto2(H5E_DEFAULT, &q->func, &q->data) < 0) q->func = NULL, q->data = NULL;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

void h5_quiet_off(const h5_quiet *q)
{
    H5Eset_auto2(H5E_DEFAULT, q->func, q->data);
}

typedef struct {
    char *buf;
    size_t len;
} last_err;

static herr_t walk_cb(unsigned n, const H5E_error2_t *e, void *data)
{
    last_err *le = data;
    (void)n;
    /* The walk goes from the API call inward; the last description is the cause. */
    if (e->desc && e->desc[0]) snprintf(le->buf, le->len, "%s", e->desc);
    return 0;
}

const char *h5_last_error(char *buf, size_t len)
{
    if (!len) return buf;
    last_err le = {buf, len};
    buf[0] = 0;
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, walk_cb, &le);
    if (!buf[0]) snprintf(buf, len, "HDF5 error (no detail)");
    return buf;
}

int h5_rows_io(hid_t d, hid_t memtype, int64_t row0, int64_t n, void *buf, int write)
{
    hid_t fs = H5Dget_space(d);
    if (fs < 0) return -1;
    int rank = H5Sget_simple_extent_ndims(fs);
    hsize_t dims[3], start[3] = {0, 0, 0};
    if (rank < 1 || rank > 3 || H5Sget_simple_extent_dims(fs, dims, NULL) < 0) {
        H5Sclose(fs);
        return -1;
    }
    start[0] = (hsize_t)row0;
    dims[0] = (hsize_t)n;
    herr_t rc = H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, dims, NULL);
    hid_t ms = H5Screate_simple(rank, dims, NULL);
    if (rc >= 0 && ms >= 0)
        rc = write ? H5Dwrite(d, memtype, ms, fs, H5P_DEFAULT, buf)
                   : H5Dread(d, memtype, ms, fs, H5P_DEFAULT, buf);
    else
        rc = -1;
    if (ms >= 0) H5Sclose(ms);
    H5Sclose(fs);
    return rc < 0 ? -1 : 0;
}

hid_t h5_create_temp(const char *path, const char *tmp, char *err, size_t errlen)
{
    if (safe_check_target(path, err, errlen) || safe_temp(tmp, err, errlen)) return -1;
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) {
        char h5[256];
        snprintf(err, errlen, "cannot create '%s' as HDF5: %s", tmp, h5_last_error(h5, sizeof h5));
        remove(tmp);
    }
    return f;
}
