/* io/loader_impl.h — what the parts of the loader share (internal): the fields read,
 * a batch slot, the loader's state, and the helpers each part exports (loader.c: the
 * order, the cursor, open / next / seek / close; loader_fill.c: filling a slot and the
 * read-ahead thread). */
#ifndef LETHE_IO_LOADER_IMPL_H
#define LETHE_IO_LOADER_IMPL_H

#include <pthread.h>
#include <stdint.h>

#include "loader.h"

#define ERR_LEN 1024

enum { F_IDS, F_LEN, F_AS, F_SID, F_PIDS, F_PLEN, F_PAS, F_KIDS, F_KLEN, F_KAS, NF };
extern const char *const ld_fname[NF]; /* the datasets' names */

typedef struct {
    loader_batch b;
    int64_t *sorted; /* (cap) row indices, ascending */
    int32_t *src;    /* (cap) batch position i holds sorted element src[i] */
    int32_t *spos;   /* (cap) batch position of sorted element k */
    int64_t *runs;   /* (2*cap) [start, length] of consecutive sorted rows */
    int nruns;
    unsigned char *seen; /* (cap) */
    char *tmp;           /* one row of the widest dataset */
    int64_t bad_key;     /* INT64_MAX: fine; -1: I/O error; else first bad file row */
    char msg[ERR_LEN];
} slot;

enum { JOB_IDLE, JOB_REQUESTED, JOB_DONE };

struct loader {
    loader_opts o;
    dataset_info info;
    char path[1024];
    MPI_Comm comm;
    int rank, size;
    int64_t n;                   /* rows */
    int cap;                     /* rows per replica per batch (max) */
    int active[NF];              /* fields read */
    size_t inner[NF], esize[NF]; /* elements per row, bytes per element */
    hid_t file, dset[NF], dxpl;
    int fast; /* pread path possible */
    char why[256];
    int fd;
    int64_t off[NF]; /* file offsets of contiguous datasets */
    slot slots[2];
    int nslots;
    size_t mem;
    loader_cursor cur;
    /* prefetch */
    int threaded;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int state, stop, job_slot;
    loader_cursor job;
    int held; /* slot of the batch the caller holds (-1: none); read-ahead goes to the other */
};

/* loader.c */
int64_t ld_global_rows(const loader *ld, loader_cursor c); /* rows of the global batch at c */

/* loader_fill.c */
void ld_plan(loader *ld, slot *s, loader_cursor c);
void ld_fill_hdf5(loader *ld, slot *s);
void ld_finish_slot(loader *ld, slot *s);
void *ld_reader_main(void *arg);
void ld_job_start(loader *ld, int slot_index, loader_cursor c);
int ld_job_wait(loader *ld);

#endif
