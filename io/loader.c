/* io/loader.c — collective, shuffled, prefetching reads of an HDF5 token split: the
 * shuffled order, the cursor, and open / next / seek / close (filling a batch and the
 * read-ahead thread are loader_fill.c; the shared state is loader_impl.h). */
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

/* ---- order --------------------------------------------------------------------------- */

static uint64_t mix64(uint64_t x)
{
    /* splitmix64's finaliser: a bijection with full avalanche */
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

#define FEISTEL_ROUNDS 6

int64_t loader_order(uint64_t seed, int64_t epoch, int64_t n, int64_t pos, int shuffle)
{
    if (!shuffle || n <= 1) return pos;
    int bits = 0;
    while (((uint64_t)1 << bits) < (uint64_t)n) bits++;
    bits += bits & 1;
    const int half = bits / 2;
    const uint64_t mask = ((uint64_t)1 << half) - 1;
    uint64_t key[FEISTEL_ROUNDS];
    for (int r = 0; r < FEISTEL_ROUNDS; r++)
        key[r] = mix64(seed ^ mix64((uint64_t)epoch * FEISTEL_ROUNDS + (uint64_t)r + 1));
    /* A Feistel network permutes [0, 4^half); walking the cycle until the value
     * falls below n restricts it to a permutation of [0, n) (at most 4n/n = 4
     * steps expected since 4^half < 4n). */
    uint64_t x = (uint64_t)pos;
    do {
        uint64_t l = x >> half, r = x & mask;
        for (int k = 0; k < FEISTEL_ROUNDS; k++) {
            uint64_t f = mix64(r ^ key[k]) & mask;
            uint64_t nl = r;
            r = l ^ f;
            l = nl;
        }
        x = (l << half) | r;
    } while (x >= (uint64_t)n);
    return (int64_t)x;
}

void loader_targets(int32_t *targets, const int32_t *ids, const int32_t *lengths,
                    const int32_t *answer_start, int n, int t)
{
    for (int b = 0; b < n; b++) {
        const int32_t *x = ids + (size_t)b * t;
        int32_t *y = targets + (size_t)b * t;
        for (int j = 0; j < t; j++)
            y[j] = (j + 1 >= answer_start[b] && j + 1 < lengths[b]) ? x[j + 1] : -1;
    }
}

const char *const ld_fname[NF] = {"input_ids",
                                  "lengths",
                                  "answer_start",
                                  "sample_id",
                                  "paraphrased_ids",
                                  "paraphrased_lengths",
                                  "paraphrased_answer_start",
                                  "perturbed_ids",
                                  "perturbed_lengths",
                                  "perturbed_answer_start"};

void loader_opts_defaults(loader_opts *o)
{
    memset(o, 0, sizeof *o);
    o->world = MPI_COMM_NULL;
    o->dp = 1;
    o->shuffle = 1;
    o->drop_last = 1;
    o->prefetch = 1;
}

const dataset_info *loader_info(const loader *ld)
{
    return &ld->info;
}
size_t loader_mem_bytes(const loader *ld)
{
    return ld->mem;
}
loader_cursor loader_cursor_get(const loader *ld)
{
    return ld->cur;
}

int loader_prefetch_status(const loader *ld, const char **why)
{
    if (why) *why = ld->threaded ? "" : ld->why;
    return ld->threaded;
}

int64_t loader_batches_per_epoch(const loader *ld)
{
    int64_t b = ld->o.global_batch;
    return ld->o.drop_last ? ld->n / b : (ld->n + b - 1) / b;
}

static int cursor_valid(const loader *ld, loader_cursor c)
{
    if (c.position + (ld->o.drop_last ? ld->o.global_batch : 1) > ld->n) return 0;
    return 1;
}

static loader_cursor normalize(const loader *ld, loader_cursor c)
{
    if (!cursor_valid(ld, c)) {
        c.epoch++;
        c.position = 0;
    }
    return c;
}

static int finished(const loader *ld, loader_cursor c)
{
    return ld->o.max_epochs > 0 && c.epoch >= ld->o.max_epochs;
}

int64_t ld_global_rows(const loader *ld, loader_cursor c)
{
    int64_t left = ld->n - c.position;
    return left < ld->o.global_batch ? left : ld->o.global_batch;
}

/* ---- open / next / seek / close
 * ------------------------------------------------------------------- */

static int check_opts(const loader_opts *o, char *err, size_t errlen)
{
    if (o->world == MPI_COMM_NULL) return lethe_errf(err, errlen, "loader: no communicator given");
    if (o->dp < 1 || o->dp_rank < 0 || o->dp_rank >= o->dp)
        return lethe_errf(err, errlen, "loader: dp_rank %d outside [0, dp %d)", o->dp_rank, o->dp);
    if (o->global_batch < 1 || o->global_batch % o->dp != 0)
        return lethe_errf(err, errlen,
                          "loader: global batch %d is not a positive multiple of dp %d",
                          o->global_batch, o->dp);
    if (o->max_epochs < 0)
        return lethe_errf(err, errlen, "loader: max_epochs %d < 0", o->max_epochs);
    return 0;
}

/* Bytes of one slot's buffers. */
static size_t slot_bytes(const loader *ld)
{
    size_t row = 0, widest = 0;
    for (int f = 0; f < NF; f++) {
        if (!ld->active[f]) continue;
        size_t rb = ld->inner[f] * ld->esize[f];
        row += rb;
        if (rb > widest) widest = rb;
    }
    row += (size_t)ld->info.t * 4 /* targets */ + 8 /* index */ + 8 /* sorted */ + 4 +
           4 /* src, spos */ + 16 /* runs */ + 1 /* seen */;
    return row * (size_t)ld->cap + widest;
}

static int slot_alloc(loader *ld, slot *s)
{
    size_t cap = (size_t)ld->cap, widest = 0;
    int oom = 0;
    loader_batch *b = &s->b;
    b->t = ld->info.t;
    b->k = ld->active[F_KIDS] ? ld->info.k : 0;
    for (int f = 0; f < NF; f++) {
        if (!ld->active[f]) continue;
        size_t rb = ld->inner[f] * ld->esize[f];
        if (rb > widest) widest = rb;
        oom |= !(((void **)&b->rows)[f] = malloc(rb * cap));
    }
    oom |= !(b->targets = malloc(cap * (size_t)ld->info.t * 4));
    oom |= !(b->index = malloc(cap * 8));
    oom |= !(s->sorted = malloc(cap * 8));
    oom |= !(s->src = malloc(cap * 4));
    oom |= !(s->spos = malloc(cap * 4));
    oom |= !(s->runs = malloc(cap * 16));
    oom |= !(s->seen = malloc(cap));
    oom |= !(s->tmp = malloc(widest));
    return oom ? -1 : 0;
}

static void slot_free(slot *s)
{
    void **p = (void **)&s->b.rows;
    for (int f = 0; f < NF; f++) free(p[f]);
    free(s->b.targets);
    free(s->b.index);
    free(s->sorted);
    free(s->src);
    free(s->spos);
    free(s->runs);
    free(s->seen);
    free(s->tmp);
}

/* Can the thread read this dataset with pread? */
static int contiguous_native(hid_t d, int64_t *off, size_t esize, const char *name, char *why,
                             size_t whylen)
{
    hid_t p = H5Dget_create_plist(d), t = H5Dget_type(d);
    int ok = 1;
    if (H5Pget_layout(p) != H5D_CONTIGUOUS) {
        snprintf(why, whylen, "'%s' is not contiguous (chunked or compact)", name);
        ok = 0;
    } else if (H5Pget_external_count(p) > 0) {
        snprintf(why, whylen, "'%s' is stored in external files", name);
        ok = 0;
    } else if (H5Tequal(t, esize == 8 ? H5T_NATIVE_INT64 : H5T_NATIVE_INT32) <= 0) {
        snprintf(why, whylen, "'%s' is not in native byte order", name);
        ok = 0;
    } else {
        haddr_t a = H5Dget_offset(d);
        if (a == HADDR_UNDEF) {
            snprintf(why, whylen, "'%s' has no storage allocated", name);
            ok = 0;
        }
        *off = (int64_t)a;
    }
    H5Pclose(p);
    H5Tclose(t);
    return ok;
}

int loader_open(loader **out, const char *path, const char *split, const loader_opts *o, char *err,
                size_t errlen)
{
    *out = NULL;
    char e[ERR_LEN] = "";
    MPI_Comm world = o->world;
    if (world == MPI_COMM_NULL) return lethe_errf(err, errlen, "loader: no communicator given");
    int ok = check_opts(o, e, sizeof e) == 0;
    if (lethe_agree(world, ok, e, sizeof e, NULL)) return lethe_errf(err, errlen, "%s", e);
    /* all options but dp_rank must be the same everywhere: a rank reading ahead while
     * another joins a collective read would hang the job */
    long long mine[9] = {o->dp,
                         o->global_batch,
                         (long long)(o->seed >> 32),
                         (long long)(o->seed & 0xffffffffu),
                         o->shuffle,
                         o->drop_last,
                         o->max_epochs,
                         o->prefetch,
                         o->candidates},
              lo[9], hi[9];
    MPI_CHECK(MPI_Allreduce(mine, lo, 9, MPI_LONG_LONG, MPI_MIN, world));
    MPI_CHECK(MPI_Allreduce(mine, hi, 9, MPI_LONG_LONG, MPI_MAX, world));
    static const char *const optname[9] = {"dp",         "global_batch", "seed",
                                           "seed",       "shuffle",      "drop_last",
                                           "max_epochs", "prefetch",     "candidates"};
    for (int i = 0; i < 9; i++)
        if (lo[i] != hi[i])
            return lethe_errf(err, errlen, "loader: ranks disagree on option '%s' (%lld vs %lld)",
                              optname[i], lo[i], hi[i]);

    loader *ld = calloc(1, sizeof *ld);
    ok = ld != NULL;
    if (!ok) lethe_errf(e, sizeof e, "loader: out of memory");
    if (lethe_agree(world, ok, e, sizeof e, NULL)) {
        free(ld);
        return lethe_errf(err, errlen, "%s", e);
    }
    ld->o = *o;
    if (ld->o.budget == 0) ld->o.budget = LOADER_DEFAULT_BUDGET;
    ld->file = ld->dxpl = -1;
    ld->fd = -1;
    ld->held = -1;
    for (int f = 0; f < NF; f++) ld->dset[f] = -1;
    snprintf(ld->path, sizeof ld->path, "%s", path);
    MPI_CHECK(MPI_Comm_dup(world, &ld->comm));
    lethe_errors_return(ld->comm);
    MPI_CHECK(MPI_Comm_rank(ld->comm, &ld->rank));
    MPI_CHECK(MPI_Comm_size(ld->comm, &ld->size));

    /* one rank validates the file and every row's lengths; all get its verdict */
    int rc = 0;
    if (ld->rank == 0)
        rc = dataset_inspect(&ld->info, path, split, DATASET_CHECK_ROWS, ld->o.budget, e, sizeof e);
    MPI_CHECK(MPI_Bcast(&rc, 1, MPI_INT, 0, ld->comm));
    MPI_CHECK(MPI_Bcast(e, sizeof e, MPI_CHAR, 0, ld->comm));
    MPI_CHECK(MPI_Bcast(&ld->info, sizeof ld->info, MPI_BYTE, 0, ld->comm));
    if (rc) goto fail_all;
    ld->n = ld->info.n;
    ld->cap = ld->o.global_batch / ld->o.dp;
    if (ld->o.drop_last && ld->n < ld->o.global_batch) {
        lethe_errf(e, sizeof e,
                   "dataset '%s': split '%s' has %lld rows, fewer than one global "
                   "batch of %d (drop_last)",
                   path, ld->info.split, (long long)ld->n, ld->o.global_batch);
        goto fail_all;
    }
    for (int f = 0; f < NF; f++) ld->esize[f] = f == F_SID ? 8 : 4;
    const size_t t = (size_t)ld->info.t, k = (size_t)ld->info.k;
    const size_t inner[NF] = {t, 1, 1, 1, t, 1, 1, k * t, k, k};
    memcpy(ld->inner, inner, sizeof inner);
    for (int f = 0; f < NF; f++)
        ld->active[f] = f <= F_SID || (o->candidates && f <= F_PAS && ld->info.has_para) ||
                        (o->candidates && f >= F_KIDS && ld->info.has_pert);
    ld->nslots = o->prefetch ? 2 : 1;
    size_t need = slot_bytes(ld) * (size_t)ld->nslots;
    if (need > ld->o.budget) {
        lethe_errf(e, sizeof e,
                   "loader: '%s' split '%s': %d buffer(s) of %d rows x T=%d need %zu "
                   "bytes, over the budget of %zu bytes (lower the batch or raise the budget)",
                   path, ld->info.split, ld->nslots, ld->cap, ld->info.t, need, ld->o.budget);
        goto fail_all;
    }

    /* every rank opens the file with the MPI-IO driver */
    h5_quiet q;
    h5_quiet_on(&q);
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    /* MPI-IO's own staging buffers count against the budget too: two-phase reads of a
     * shuffled batch span the whole file, and ROMIO's default 16 MiB collective
     * buffer would otherwise be filled with it */
    MPI_Info info;
    MPI_CHECK(MPI_Info_create(&info));
    size_t cb = ld->o.budget / 4;
    cb = cb < ((size_t)64 << 10)   ? (size_t)64 << 10
         : cb > ((size_t)16 << 20) ? (size_t)16 << 20
                                   : cb;
    char cbs[32];
    snprintf(cbs, sizeof cbs, "%zu", cb);
    MPI_CHECK(MPI_Info_set(info, "cb_buffer_size", cbs));
    MPI_CHECK(MPI_Info_set(info, "ind_rd_buffer_size", cbs));
    H5Pset_fapl_mpio(fapl, ld->comm, info);
    MPI_CHECK(MPI_Info_free(&info));
    ld->file = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    H5Pclose(fapl);
    ok = ld->file >= 0;
    if (!ok) {
        char h5[256];
        h5_last_error(h5, sizeof h5);
        lethe_errf(e, sizeof e, "dataset '%s': the MPI-IO open failed: %s", path, h5);
    }
    for (int f = 0; ok && f < NF; f++) {
        if (!ld->active[f]) continue;
        char name[DATASET_SPLIT_MAX + 64];
        snprintf(name, sizeof name, "%s/%s", ld->info.split, ld_fname[f]);
        ld->dset[f] = H5Dopen2(ld->file, name, H5P_DEFAULT);
        if (ld->dset[f] < 0) {
            ok = 0;
            lethe_errf(e, sizeof e, "dataset '%s': '%s' cannot be opened", path, name);
        }
    }
    if (ok) {
        ld->dxpl = H5Pcreate(H5P_DATASET_XFER);
        H5Pset_dxpl_mpio(ld->dxpl, H5FD_MPIO_COLLECTIVE);
        ld->fast = 1;
        for (int f = 0; ld->fast && f < NF; f++)
            if (ld->active[f])
                ld->fast = contiguous_native(ld->dset[f], &ld->off[f], ld->esize[f], ld_fname[f],
                                             ld->why, sizeof ld->why);
    }
    h5_quiet_off(&q);
    if (lethe_agree(ld->comm, ok, e, sizeof e, NULL)) goto fail_all;
    /* the same file gives the same answer everywhere, but a rank must never
     * prefetch alone: the collective path needs every rank */
    int fast = ld->fast;
    MPI_CHECK(MPI_Allreduce(&fast, &ld->fast, 1, MPI_INT, MPI_MIN, ld->comm));
    if (!o->prefetch)
        snprintf(ld->why, sizeof ld->why, "prefetch is off");
    else if (!ld->fast && !ld->why[0])
        snprintf(ld->why, sizeof ld->why, "another rank cannot read ahead");

    ok = 1;
    for (int i = 0; i < ld->nslots && ok; i++) ok = slot_alloc(ld, &ld->slots[i]) == 0;
    if (!ok) lethe_errf(e, sizeof e, "loader: out of memory for the batch buffers");
    ld->mem = slot_bytes(ld) * (size_t)ld->nslots;
    if (ok && o->prefetch && ld->fast) {
        ld->fd = open(path, O_RDONLY);
        if (ld->fd < 0) {
            ok = 0;
            lethe_errf(e, sizeof e, "dataset '%s': cannot open for read-ahead: %s", path,
                       strerror(errno));
        }
    }
    if (lethe_agree(ld->comm, ok, e, sizeof e, NULL)) goto fail_all;
    if (o->prefetch && ld->fast) {
        pthread_mutex_init(&ld->mu, NULL);
        pthread_cond_init(&ld->cv, NULL);
        ok = pthread_create(&ld->thread, NULL, ld_reader_main, ld) == 0;
        if (!ok) lethe_errf(e, sizeof e, "loader: cannot start the read-ahead thread");
        if (lethe_agree(ld->comm, ok, e, sizeof e, NULL)) {
            pthread_mutex_destroy(&ld->mu);
            pthread_cond_destroy(&ld->cv);
            goto fail_all;
        }
        ld->threaded = 1;
    }
    ld->cur = normalize(ld, (loader_cursor){0, 0});
    if (ld->threaded && !finished(ld, ld->cur)) ld_job_start(ld, 0, ld->cur);
    *out = ld;
    return 0;

fail_all:
    lethe_errf(err, errlen, "%s", e);
    ld->threaded = 0;
    loader_close(ld);
    return -1;
}

int loader_next(loader *ld, loader_batch **out, char *err, size_t errlen)
{
    *out = NULL;
    loader_cursor c = ld->cur;
    if (finished(ld, c)) return 0;
    slot *s;
    if (ld->threaded) {
        int si = ld_job_wait(ld);
        if (si < 0) { /* nothing pending: read now */
            ld_job_start(ld, ld->held >= 0 ? 1 - ld->held : 0, c);
            si = ld_job_wait(ld);
        }
        s = &ld->slots[si];
        ld->held = si;
        loader_cursor nx =
            normalize(ld, (loader_cursor){c.epoch, c.position + ld_global_rows(ld, c)});
        if (!finished(ld, nx)) ld_job_start(ld, 1 - si, nx);
    } else {
        s = &ld->slots[0];
        ld_plan(ld, s, c);
        ld_fill_hdf5(ld, s);
        ld_finish_slot(ld, s);
    }
    /* every rank learns the first bad row found anywhere (the same message at any
     * rank count: the lowest file row wins, I/O errors first) */
    long long key = s->bad_key, low;
    MPI_CHECK(MPI_Allreduce(&key, &low, 1, MPI_LONG_LONG, MPI_MIN, ld->comm));
    if (low != INT64_MAX) {
        char e[ERR_LEN];
        lethe_errf(e, sizeof e, "%s", s->msg);
        if (lethe_agree(ld->comm, key != low, e, sizeof e, NULL))
            return lethe_errf(err, errlen, "%s", e);
    }
    ld->cur = normalize(ld, (loader_cursor){c.epoch, c.position + s->b.global_n});
    *out = &s->b;
    return 1;
}

int loader_seek(loader *ld, loader_cursor c, char *err, size_t errlen)
{
    /* every rank is given the same cursor, so the verdict is the same everywhere */
    if (c.epoch < 0 || c.position < 0 || c.position > ld->n)
        return lethe_errf(err, errlen,
                          "loader: cursor (epoch %lld, position %lld) outside the split "
                          "of %lld rows",
                          (long long)c.epoch, (long long)c.position, (long long)ld->n);
    if (ld->threaded) ld_job_wait(ld); /* discard what was read ahead */
    ld->cur = normalize(ld, c);
    if (ld->threaded && !finished(ld, ld->cur))
        ld_job_start(ld, ld->held >= 0 ? 1 - ld->held : 0, ld->cur);
    return 0;
}

void loader_close(loader *ld)
{
    if (!ld) return;
    if (ld->threaded) {
        ld_job_wait(ld);
        pthread_mutex_lock(&ld->mu);
        ld->stop = 1;
        pthread_cond_broadcast(&ld->cv);
        pthread_mutex_unlock(&ld->mu);
        pthread_join(ld->thread, NULL);
        pthread_mutex_destroy(&ld->mu);
        pthread_cond_destroy(&ld->cv);
    }
    if (ld->fd >= 0) close(ld->fd);
    for (int i = 0; i < 2; i++) slot_free(&ld->slots[i]);
    h5_quiet q;
    h5_quiet_on(&q);
    for (int f = 0; f < NF; f++)
        if (ld->dset[f] >= 0) H5Dclose(ld->dset[f]);
    if (ld->dxpl >= 0) H5Pclose(ld->dxpl);
    if (ld->file >= 0) H5Fclose(ld->file);
    h5_quiet_off(&q);
    if (ld->comm != MPI_COMM_NULL) MPI_CHECK(MPI_Comm_free(&ld->comm));
    free(ld);
}
