/* io/loader_fill.c — filling one batch slot of the loader (io/loader.h): the plan of
 * which rows this replica reads, the reads themselves (pread on contiguous datasets or
 * collective HDF5), the checks of what was read, and the read-ahead thread with its
 * job hand-off (the loader's state: loader_impl.h). */
#define _POSIX_C_SOURCE 200809L /* pread */
#include "../mpi/fatal.h"
#include "loader.h"
#include "loader_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- filling a slot -------------------------------------------------------------------------- */

static int cmp_pair(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Rows of this replica for the batch at c, in epoch order and sorted. */
void ld_plan(loader *ld, slot *s, loader_cursor c)
{
    loader_batch *b = &s->b;
    int64_t gn = ld_global_rows(ld, c), dp = ld->o.dp, r = ld->o.dp_rank;
    int64_t base = gn / dp, extra = gn % dp;
    int64_t start = r * base + (r < extra ? r : extra);
    b->n = (int)(base + (r < extra ? 1 : 0));
    b->epoch = c.epoch;
    b->position = c.position;
    b->step = c.position / ld->o.global_batch;
    b->first = c.position + start;
    b->global_n = gn;
    /* sort (row, position) pairs: 2 int64 per row, reusing runs[] as scratch */
    int64_t *pairs = s->runs;
    for (int i = 0; i < b->n; i++) {
        b->index[i] = loader_order(ld->o.seed, c.epoch, ld->n, b->first + i, ld->o.shuffle);
        pairs[2 * i] = b->index[i];
        pairs[2 * i + 1] = i;
    }
    qsort(pairs, (size_t)b->n, 2 * sizeof(int64_t), cmp_pair);
    for (int k = 0; k < b->n; k++) {
        s->sorted[k] = pairs[2 * k];
        s->spos[k] = (int32_t)pairs[2 * k + 1];
        s->src[pairs[2 * k + 1]] = k;
    }
    s->nruns = 0;
    for (int k = 0; k < b->n; k++) {
        if (s->nruns &&
            s->runs[2 * (s->nruns - 1)] + s->runs[2 * (s->nruns - 1) + 1] == s->sorted[k])
            s->runs[2 * (s->nruns - 1) + 1]++;
        else {
            s->runs[2 * s->nruns] = s->sorted[k];
            s->runs[2 * s->nruns + 1] = 1;
            s->nruns++;
        }
    }
    s->bad_key = INT64_MAX;
    s->msg[0] = 0;
}

static void *field_ptr(slot *s, int f)
{
    return ((void **)&s->b.rows)[f];
}

/* Puts rows read in sorted order back in epoch order (cycle-following, one spare row). */
static void unsort(loader *ld, slot *s, int f)
{
    size_t rb = ld->inner[f] * ld->esize[f];
    char *base = field_ptr(s, f);
    int n = s->b.n;
    memset(s->seen, 0, (size_t)n);
    for (int i = 0; i < n; i++) {
        if (s->seen[i]) continue;
        if (s->src[i] == i) {
            s->seen[i] = 1;
            continue;
        }
        memcpy(s->tmp, base + (size_t)i * rb, rb);
        int j = i;
        for (;;) {
            s->seen[j] = 1;
            int from = s->src[j];
            if (from == i) {
                memcpy(base + (size_t)j * rb, s->tmp, rb);
                break;
            }
            memcpy(base + (size_t)j * rb, base + (size_t)from * rb, rb);
            j = from;
        }
    }
}

/* Token ids are checked as they are read; lengths and answer starts were checked at open. */
static void check_slot(loader *ld, slot *s)
{
    loader_batch *b = &s->b;
    for (int i = 0; i < b->n; i++) {
        dataset_rows r = {0};
        r.ids = b->rows.ids + (size_t)i * b->t;
        r.sample_id = b->rows.sample_id + i;
        if (b->rows.para_ids) r.para_ids = b->rows.para_ids + (size_t)i * b->t;
        if (b->rows.pert_ids) r.pert_ids = b->rows.pert_ids + (size_t)i * b->k * b->t;
        dataset_info in = ld->info;
        in.has_para = b->rows.para_ids != NULL;
        in.has_pert = b->rows.pert_ids != NULL;
        int64_t bad;
        char m[ERR_LEN];
        if (dataset_check_rows(&in, ld->path, &r, b->index[i], 1, 1, &bad, m, sizeof m) &&
            b->index[i] < s->bad_key) {
            s->bad_key = b->index[i];
            lethe_errf(s->msg, sizeof s->msg, "%s", m);
        }
    }
}

/* The read-ahead path: plain reads at the contiguous datasets' offsets. */
static void fill_pread(loader *ld, slot *s)
{
    for (int f = 0; f < NF && s->bad_key == INT64_MAX; f++) {
        if (!ld->active[f]) continue;
        size_t rb = ld->inner[f] * ld->esize[f];
        char *dst = field_ptr(s, f);
        for (int k = 0; k < s->b.n;) {
            /* consecutive rows going to consecutive positions: one read */
            int m = 1;
            while (k + m < s->b.n && s->sorted[k + m] == s->sorted[k] + m &&
                   s->spos[k + m] == s->spos[k] + m)
                m++;
            size_t want = (size_t)m * rb, got = 0;
            off_t at = (off_t)(ld->off[f] + s->sorted[k] * (int64_t)rb);
            char *p = dst + (size_t)s->spos[k] * rb;
            while (got < want) {
                ssize_t r = pread(ld->fd, p + got, want - got, at + (off_t)got);
                if (r <= 0) {
                    s->bad_key = -1;
                    lethe_errf(s->msg, sizeof s->msg,
                               "dataset '%s': '%s/%s' rows %lld..%lld: read failed: %s", ld->path,
                               ld->info.split, ld_fname[f], (long long)s->sorted[k],
                               (long long)(s->sorted[k] + m - 1),
                               r < 0 ? strerror(errno) : "unexpected end of file");
                    return;
                }
                got += (size_t)r;
            }
            k += m;
        }
    }
}

/* The collective path: one H5Dread per dataset, every rank of the world joining. */
void ld_fill_hdf5(loader *ld, slot *s)
{
    h5_quiet q;
    h5_quiet_on(&q);
    for (int f = 0; f < NF; f++) {
        if (!ld->active[f]) continue;
        hid_t fs = H5Dget_space(ld->dset[f]);
        int rank = H5Sget_simple_extent_ndims(fs);
        hsize_t dims[3], start[3] = {0, 0, 0}, count[3];
        H5Sget_simple_extent_dims(fs, dims, NULL);
        for (int i = 0; i < rank; i++) count[i] = dims[i];
        hsize_t mdims[3];
        memcpy(mdims, count, sizeof mdims);
        mdims[0] = (hsize_t)(s->b.n ? s->b.n : 1);
        hid_t ms = H5Screate_simple(rank, mdims, NULL);
        if (s->b.n == 0) {
            H5Sselect_none(fs);
            H5Sselect_none(ms);
        } else {
            for (int r = 0; r < s->nruns; r++) {
                start[0] = (hsize_t)s->runs[2 * r];
                count[0] = (hsize_t)s->runs[2 * r + 1];
                H5Sselect_hyperslab(fs, r ? H5S_SELECT_OR : H5S_SELECT_SET, start, NULL, count,
                                    NULL);
            }
        }
        hid_t mt = ld->esize[f] == 8 ? H5T_NATIVE_INT64 : H5T_NATIVE_INT32;
        herr_t rc = H5Dread(ld->dset[f], mt, ms, fs, ld->dxpl, field_ptr(s, f));
        H5Sclose(ms);
        H5Sclose(fs);
        if (rc < 0 && s->bad_key == INT64_MAX) {
            char h5[256];
            h5_last_error(h5, sizeof h5);
            s->bad_key = -1;
            lethe_errf(s->msg, sizeof s->msg,
                       "dataset '%s': '%s/%s': collective read of %d rows "
                       "failed: %s",
                       ld->path, ld->info.split, ld_fname[f], s->b.n, h5);
        }
        if (rc >= 0) unsort(ld, s, f);
    }
    h5_quiet_off(&q);
}

void ld_finish_slot(loader *ld, slot *s)
{
    if (s->bad_key != INT64_MAX) return;
    check_slot(ld, s);
    if (s->bad_key == INT64_MAX)
        loader_targets(s->b.targets, s->b.rows.ids, s->b.rows.lengths, s->b.rows.answer_start,
                       s->b.n, s->b.t);
}

/* ---- the read-ahead thread ----------------------------------------------------------------------
 */

void *ld_reader_main(void *arg)
{
    loader *ld = arg;
    pthread_mutex_lock(&ld->mu);
    for (;;) {
        while (!ld->stop && ld->state != JOB_REQUESTED) pthread_cond_wait(&ld->cv, &ld->mu);
        if (ld->stop) break;
        slot *s = &ld->slots[ld->job_slot];
        loader_cursor c = ld->job;
        pthread_mutex_unlock(&ld->mu);
        ld_plan(ld, s, c);
        fill_pread(ld, s);
        ld_finish_slot(ld, s);
        pthread_mutex_lock(&ld->mu);
        ld->state = JOB_DONE;
        pthread_cond_broadcast(&ld->cv);
    }
    pthread_mutex_unlock(&ld->mu);
    return NULL;
}

void ld_job_start(loader *ld, int slot_index, loader_cursor c)
{
    pthread_mutex_lock(&ld->mu);
    ld->job_slot = slot_index;
    ld->job = c;
    ld->state = JOB_REQUESTED;
    pthread_cond_broadcast(&ld->cv);
    pthread_mutex_unlock(&ld->mu);
}

/* Waits for the pending job; returns its slot, or -1 when none is pending. */
int ld_job_wait(loader *ld)
{
    pthread_mutex_lock(&ld->mu);
    int s = -1;
    if (ld->state != JOB_IDLE) {
        while (ld->state != JOB_DONE) pthread_cond_wait(&ld->cv, &ld->mu);
        s = ld->job_slot;
        ld->state = JOB_IDLE;
    }
    pthread_mutex_unlock(&ld->mu);
    return s;
}
