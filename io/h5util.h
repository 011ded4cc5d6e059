/* io/h5util.h — HDF5's error stack as lethe reports it: one line, not a printed stack.
 *
 * While an HDF5 section runs, h5_quiet_on turns HDF5's automatic printing off (and
 * h5_quiet_off restores what was there); when a call fails, h5_last_error gives the
 * innermost description of the error stack, the most specific one ("truncated file:
 * eof = ..."), to end the caller's one-line message. Also the one row-range
 * transfer (a hyperslab of whole rows) that the dataset reader and writer share. */
#ifndef LETHE_IO_H5UTIL_H
#define LETHE_IO_H5UTIL_H

#include <hdf5.h>
#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    H5E_auto2_t func;
    void *data;
} h5_quiet;
void h5_quiet_on(h5_quiet *q);
void h5_quiet_off(const h5_quiet *q);

/* The innermost non-empty description of the current HDF5 error stack into buf (len
 * bytes), or "HDF5 error (no detail)" if the stack holds none. Returns buf. */
const char *h5_last_error(char *buf, size_t len);

/* Reads (write == 0) or writes rows [row0, row0 + n) of dataset d, whose first
 * dimension is the row (rank <= 3), from or into buf of memory type memtype.
 * 0, or -1 when HDF5 fails. */
int h5_rows_io(hid_t d, hid_t memtype, int64_t row0, int64_t n, void *buf, int write);

/* The serial HDF5 file a writer fills under the temporary name tmp before
 * safe_commit(tmp, path) publishes it (io/safefile.h): path must be absent, regular or a
 * link; a leftover regular tmp is removed, then HDF5 itself creates tmp with
 * H5F_ACC_EXCL (O_CREAT | O_EXCL on the sec2 driver), so there is no window between a
 * check and HDF5's open by name: anything planted at tmp, even after the check, makes
 * the create fail and is never written through; the file HDF5 holds open is then
 * checked (fstat of its descriptor) to be the regular, singly-linked file now at tmp.
 * The file, or -1 with one line in err (tmp then does not exist, or is not lethe's and
 * is left alone). */
hid_t h5_create_temp(const char *path, const char *tmp, char *err, size_t errlen);

/* The same rule for a file created collectively over comm with an MPI-IO file access
 * list fapl (the checkpoint): rank 0 checks path and clears tmp as above (after making
 * and removing it with O_CREAT | O_EXCL | O_NOFOLLOW, so a missing or read-only folder is
 * named with its errno), then every rank calls H5Fcreate(tmp, H5F_ACC_EXCL): MPI-IO's
 * MPI_MODE_EXCL, where rank 0 creates with O_CREAT | O_EXCL, so a link or file planted
 * at tmp makes the create fail on every rank and is never written through. The other
 * ranks then open tmp by name (MPI-IO gives no O_NOFOLLOW and no descriptor to fstat),
 * so afterwards every rank checks that tmp is a regular file with one link, not a
 * symbolic link, of the device and inode rank 0 sees. What this cannot see: a swap of
 * tmp for a link and back again inside the few milliseconds between rank 0's create and
 * the others' opens, by someone who can write to the folder. Collective; the same
 * result and message on every rank: the file, or -1 with one line in err (tmp then does
 * not exist, or is not lethe's and is left alone). */
hid_t h5_create_temp_parallel(const char *path, const char *tmp, MPI_Comm comm, hid_t fapl,
                              char *err, size_t errlen);

/* Whether dataset d can be read in full from a file of file_bytes: every filter of its
 * pipeline is available (an lzf-compressed dataset names the filter), and its values
 * fit in the bytes stored (no sparse chunks standing for 2^33 rows of fill values;
 * filtered data at most 1100:1). 0, or -1 with one message part naming d in why. */
int h5_check_storage(hid_t d, int64_t file_bytes, char *why, size_t len);

#endif
