/* io/h5util.c — HDF5's error stack as one line, the row-range transfer, and the check
 * that a dataset can be decoded and is stored in full (see h5util.h). */
#include "h5util.h"
#include "../mpi/fatal.h"
#include "safefile.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

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
    /* the closes below would clear the error stack that h5_last_error reads */
    hid_t stack = rc < 0 ? H5Eget_current_stack() : -1;
    if (ms >= 0) H5Sclose(ms);
    H5Sclose(fs);
    if (stack >= 0) H5Eset_current_stack(stack);
    return rc < 0 ? -1 : 0;
}

/* tmp as the file HDF5's descriptor h holds: the same device and inode, regular, one link */
static int same_inode(const char *tmp, void *h)
{
    struct stat a, b;
    return h && fstat(*(int *)h, &a) == 0 && lstat(tmp, &b) == 0 && S_ISREG(b.st_mode) &&
           a.st_dev == b.st_dev && a.st_ino == b.st_ino && b.st_nlink == 1;
}

/* The two refusals of an exclusive create: it failed (and what is at tmp now is not
 * ours: never removed), or the file at tmp is not the one created. */
static void create_failed(const char *tmp, char *err, size_t errlen)
{
    char h5[256];
    struct stat st;
    snprintf(err, errlen, "cannot create '%s' as HDF5: %s%s", tmp, h5_last_error(h5, sizeof h5),
             lstat(tmp, &st) == 0 ? " (something was planted at lethe's temporary name; "
                                    "remove it)"
                                  : "");
}

static void create_replaced(const char *tmp, char *err, size_t errlen)
{
    snprintf(err, errlen,
             "cannot create '%s' as HDF5: the file at that name is not the one created (it was "
             "replaced; remove it)",
             tmp);
}

hid_t h5_create_temp(const char *path, const char *tmp, char *err, size_t errlen)
{
    if (safe_check_target(path, err, errlen) || safe_temp_clear(tmp, err, errlen)) return -1;
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS), f = -1;
    if (fapl >= 0 && H5Pset_fapl_sec2(fapl) >= 0)
        f = H5Fcreate(tmp, H5F_ACC_EXCL, H5P_DEFAULT, fapl);
    if (fapl >= 0) H5Pclose(fapl);
    if (f < 0) {
        create_failed(tmp, err, errlen);
        return -1;
    }
    void *h = NULL;
    if (H5Fget_vfd_handle(f, H5P_DEFAULT, &h) < 0 || !same_inode(tmp, h)) {
        H5Fclose(f);
        create_replaced(tmp, err, errlen);
        return -1;
    }
    return f;
}

/* The device, inode and link count of what is at tmp (not followed) when it is a regular
 * file; zeros otherwise. */
static void temp_identity(const char *tmp, uint64_t id[3])
{
    struct stat st;
    id[0] = id[1] = id[2] = 0;
    if (lstat(tmp, &st) == 0 && S_ISREG(st.st_mode))
        id[0] = (uint64_t)st.st_dev, id[1] = (uint64_t)st.st_ino, id[2] = (uint64_t)st.st_nlink;
}

hid_t h5_create_temp_parallel(const char *path, const char *tmp, MPI_Comm comm, hid_t fapl,
                              char *err, size_t errlen)
{
    int rank, ok = 1;
    char msg[1024] = "";
    MPI_CHECK(MPI_Comm_rank(comm, &rank));
    if (rank == 0 && (safe_check_target(path, msg, sizeof msg) || safe_temp(tmp, msg, sizeof msg) ||
                      safe_temp_clear(tmp, msg, sizeof msg)))
        ok = 0;
    if (lethe_agree(comm, ok, msg, sizeof msg, NULL)) {
        snprintf(err, errlen, "%s", msg);
        return -1;
    }
    hid_t f = H5Fcreate(tmp, H5F_ACC_EXCL, H5P_DEFAULT, fapl);
    if (f < 0) create_failed(tmp, msg, sizeof msg);
    {
        int in[2] = {f >= 0, -(f >= 0)}, out[2];
        MPI_CHECK(MPI_Allreduce(in, out, 2, MPI_INT, MPI_MAX, comm));
        /* a file open on some ranks only cannot be closed without them */
        if (out[0] != -out[1]) lethe_fatal("'%s': created on some ranks only", tmp);
    }
    if (lethe_agree(comm, f >= 0, msg, sizeof msg, NULL)) {
        snprintf(err, errlen, "%s", msg); /* not removed: the create was exclusive */
        return -1;
    }
    uint64_t mine[3], first[3];
    temp_identity(tmp, mine);
    memcpy(first, mine, sizeof first);
    MPI_CHECK(MPI_Bcast(first, 3, MPI_UINT64_T, 0, comm));
    ok = mine[1] != 0 && mine[2] == 1 && !memcmp(mine, first, sizeof mine);
    if (!ok) create_replaced(tmp, msg, sizeof msg);
    if (lethe_agree(comm, ok, msg, sizeof msg, NULL)) {
        H5Fclose(f);
        snprintf(err, errlen, "%s", msg);
        return -1;
    }
    return f;
}

int h5_check_storage(hid_t d, int64_t file_bytes, char *why, size_t len)
{
    char name[256] = "?";
    if (H5Iget_name(d, name, sizeof name) <= 0) snprintf(name, sizeof name, "?");
    hid_t dcpl = H5Dget_create_plist(d);
    int nf = dcpl >= 0 ? H5Pget_nfilters(dcpl) : -1, rc = 0;
    if (nf < 0) snprintf(why, len, "'%s': cannot read its storage properties", name), rc = -1;
    for (int i = 0; i < nf && !rc; i++) {
        unsigned flags = 0, conf = 0;
        size_t nel = 0;
        char fname[80] = "";
        H5Z_filter_t id = H5Pget_filter2(dcpl, (unsigned)i, &flags, &nel, NULL, sizeof fname,
                                         fname, &conf);
        for (char *c = fname; *c; c++) *c = (unsigned char)*c < 0x20 ? '?' : *c;
        if (id < 0 || H5Zfilter_avail(id) <= 0)
            rc = -1, snprintf(why, len,
                              "'%s' is stored with HDF5 filter %d ('%s'), which this HDF5 "
                              "library cannot decode; rewrite it without the filter (h5repack "
                              "-f NONE) or with gzip",
                              name, (int)id, fname[0] ? fname : "unnamed");
    }
    if (dcpl >= 0) H5Pclose(dcpl);
    if (rc) return rc;
    /* A dataset whose chunks are mostly unwritten reads as fill values: 2^33 rows in a
     * file of 8 KB would take minutes to check. Unfiltered, every byte is stored; deflate
     * compresses at most about 1032:1. */
    hid_t sp = H5Dget_space(d), t = H5Dget_type(d);
    hssize_t np = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    size_t ts = t >= 0 ? H5Tget_size(t) : 0;
    if (sp >= 0) H5Sclose(sp);
    if (t >= 0) H5Tclose(t);
    double logical = (double)np * (double)ts, stored = (double)H5Dget_storage_size(d);
    if (np < 0 || ts == 0)
        rc = -1, snprintf(why, len, "'%s': cannot read its shape or type", name);
    else if (stored > (double)file_bytes || logical > (nf > 0 ? 1100.0 : 1.0) * stored)
        rc = -1, snprintf(why, len,
                          "'%s' holds %lld values (%.4g bytes) but %.4g bytes of it are stored, "
                          "in a file of %lld bytes: a sparse or damaged dataset (lethe reads "
                          "datasets written in full)",
                          name, (long long)np, logical, stored, (long long)file_bytes);
    return rc;
}
