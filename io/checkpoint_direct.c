/* io/checkpoint_direct.c — what a checkpoint does beside HDF5's calls: a load's reads on
 * one node, copied out of a map of the file, and a save's early write-back.
 *
 * On one node each rank reads its own bytes, which the page cache or the local disk
 * serves (checkpoint.c's read hints). There H5Dread makes one pass (a copy into the
 * piece) and the digest a second one over the copy. Instead, a rank maps the rows of a
 * dataset that hold its piece, read-only, and copies the piece out with the digest and
 * the non-finite scan in the same pass (ck_copy_scan). That needs a dataset whose
 * elements lie in the file as one little-endian float32 block: HDF5's contiguous layout,
 * allocated, in this file, every dataset lethe writes. Any other dataset (chunked,
 * compressed, external, big-endian, never written) is read with H5Dread, and so is every
 * dataset when the ranks span nodes (a parallel file system serves one reader per node
 * better: ROMIO's defaults), when the file system cannot map the file, or when
 * LETHE_CKPT_MAP=0.
 *
 * A checkpoint is written under a temporary name and renamed, never rewritten in place,
 * so its bytes do not shrink under the map; a dataset that would reach past the file's
 * end is refused before it is mapped. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../mpi/comm.h"
#include "../mpi/fatal.h"
#include "checkpoint_impl.h"

int ck_one_node(MPI_Comm comm, int *node_rank)
{
    MPI_Comm node;
    int size, nsize;
    MPI_CHECK(MPI_Comm_size(comm, &size));
    MPI_CHECK(MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node));
    MPI_CHECK(MPI_Comm_size(node, &nsize));
    if (node_rank) MPI_CHECK(MPI_Comm_rank(node, node_rank));
    MPI_CHECK(MPI_Comm_free(&node));
    return nsize == size;
}

int ck_direct_open(ck_direct *d, const char *path, MPI_Comm comm)
{
    d->fd = -1;
    d->size = 0;
    const char *env = getenv("LETHE_CKPT_MAP");
    int one = ck_one_node(comm, NULL), want = one && !(env && !strcmp(env, "0"));
    /* the same answer on every rank: the environment may differ between them */
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &want, 1, MPI_INT, MPI_MIN, comm));
    if (!want) return 0;
    struct stat st;
    int ok = (d->fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0 && fstat(d->fd, &st) == 0;
    if (ok) { /* a file system that cannot map files: every dataset through H5Dread */
        d->size = (int64_t)st.st_size;
        void *probe = mmap(NULL, 1, PROT_READ, MAP_SHARED, d->fd, 0);
        ok = probe != MAP_FAILED;
        if (ok) munmap(probe, 1);
    }
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &ok, 1, MPI_INT, MPI_MIN, comm));
    if (!ok) ck_direct_close(d);
    return ok;
}

void ck_direct_close(ck_direct *d)
{
    if (d->fd >= 0) close(d->fd);
    d->fd = -1;
}

int64_t ck_direct_offset(const ck_direct *d, hid_t ds, const ck_entry *e, const char *gname,
                         char *msg)
{
    if (d->fd < 0) return -1;
    hid_t dcpl = H5Dget_create_plist(ds), ty = H5Dget_type(ds);
    int64_t off = -1;
    if (dcpl >= 0 && ty >= 0 && H5Pget_layout(dcpl) == H5D_CONTIGUOUS &&
        H5Pget_external_count(dcpl) == 0 && H5Tequal(ty, H5T_IEEE_F32LE) > 0 &&
        H5Tequal(H5T_NATIVE_FLOAT, H5T_IEEE_F32LE) > 0) {
        haddr_t a = H5Dget_offset(ds);
        if (a != HADDR_UNDEF) off = (int64_t)a;
    }
    if (dcpl >= 0) H5Pclose(dcpl);
    if (ty >= 0) H5Tclose(ty);
    int64_t bytes = 4 * e->gshape[0] * e->gshape[1];
    if (off >= 0 && (off > d->size || bytes > d->size - off)) {
        ck_fail(msg,
                "dataset '%s/%s': its %lld bytes at byte %lld run past the end of the file "
                "(%lld bytes): the file is truncated or corrupt",
                gname, e->name, (long long)bytes, (long long)off, (long long)d->size);
        return -2;
    }
    return off;
}

int ck_direct_read(const ck_direct *d, int64_t off, const lethe_param *p, float *buf, int version,
                   uint64_t *digest, uint32_t *maxbits, const char *gname, char *msg)
{
    *digest = 0;
    if (!p || p->vshape[0] == 0 || p->vshape[1] == 0) return 1;
    const int64_t gc = p->gshape[1], r0 = p->gstart[0], c0 = p->gstart[1];
    int64_t first = off + 4 * (r0 * gc + c0);
    int64_t end = off + 4 * ((r0 + p->vshape[0] - 1) * gc + c0 + p->vshape[1]);
    const int64_t page = (int64_t)sysconf(_SC_PAGESIZE);
    int64_t lo = first - first % page;
    size_t len = (size_t)(end - lo);
    void *map = mmap(NULL, len, PROT_READ, MAP_SHARED, d->fd, (off_t)lo);
    if (map == MAP_FAILED)
        return ck_fail(msg, "dataset '%s/%s': cannot map bytes %lld to %lld of the file: %s", gname,
                       p->name, (long long)first, (long long)end, strerror(errno));
    /* ask for the whole range now: a cold file is read ahead in large requests */
    madvise(map, len, MADV_WILLNEED);
    const unsigned char *src = (const unsigned char *)map + (first - lo);
    if (p->vshape[1] == gc && p->lshape[1] == gc) /* whole rows: one run of elements */
        *digest =
            ck_copy_scan(version, buf, 0, src, 0, 1, p->vshape[0] * gc, 0, r0 * gc, 1, maxbits);
    else
        *digest = ck_copy_scan(version, buf, p->lshape[1], src, gc, p->vshape[0], p->vshape[1], r0,
                               c0, gc, maxbits);
    munmap(map, len);
    return 1;
}

/* ---- a save's early write-back ------------------------------------------------------ */

int ck_writeback_open(const char *tmp, MPI_Comm comm)
{
    int nrank;
    ck_one_node(comm, &nrank);
    /* one rank per node: the pages are the node's, whoever wrote them */
    return nrank == 0 ? open(tmp, O_RDONLY | O_NOFOLLOW | O_CLOEXEC) : -1;
}

void ck_writeback_start(int fd)
{
    /* whole file: the pages of every rank on this node; those already on their way are
     * left alone */
#ifdef SYNC_FILE_RANGE_WRITE
    if (fd >= 0) (void)sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
#else
    (void)fd;
#endif
}

void ck_writeback_close(int fd)
{
    if (fd >= 0) close(fd);
}
