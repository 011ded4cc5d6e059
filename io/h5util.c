/* io/h5util.c — HDF5's error stack as one line (see h5util.h). */
#include "h5util.h"

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
