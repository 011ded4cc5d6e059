/* tests/hostile/make_hostile_h5.c — writes the bad HDF5 token datasets of tests/hostile.sh.
 *
 * usage: make_hostile_h5 DIR
 * Writes DIR/<case>.h5, each a dataset of io/DATASETS.md (vocab 258, one split "forget"
 * of N = 8 rows of T = 16) that is wrong in exactly one way; good.h5 is right in every
 * way (the driver checks that it trains, so the others fail for their own reason):
 *   oov            input_ids holds 5000, outside [0, vocab_size 258)
 *   negative_id    input_ids holds -7
 *   float_ids      input_ids is float32 instead of int32
 *   ids_1d         input_ids has shape [N*T] instead of [N, T]
 *   short_lengths  lengths has N-1 rows
 *   length_past_t  a length of T + 5
 *   answer_start   an answer_start equal to the row's length
 *   no_vocab       the root attribute vocab_size is missing
 *   vocab_huge     vocab_size is 2^62
 *   pad_out        pad_id is 300, outside [0, vocab_size)
 *   split_scalar   /forget/input_ids is a scalar
 *   dup_sample     sample_id repeats (NPO, which keys its reference by sample_id, refuses it)
 *   lzf            input_ids passes through HDF5 filter 32000 ("lzf"; registered here as a
 *                  pass-through, absent from the library lethe runs on)
 *   sparse         every dataset claims 2^33 rows; only the first 8 are written (chunked,
 *                  the rest unallocated: a file of a few KB)
 * (the truncated file is made by the driver from good.h5). */
#include <hdf5.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define N 8
#define T 16

static int attr_i64(hid_t o, const char *name, int64_t v)
{
    hid_t s = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(o, name, H5T_NATIVE_INT64, s, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = H5Awrite(a, H5T_NATIVE_INT64, &v);
    H5Aclose(a);
    H5Sclose(s);
    return rc < 0 || a < 0;
}

static int attr_str(hid_t o, const char *name, const char *v)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, strlen(v) + 1);
    hid_t s = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(o, name, t, s, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = H5Awrite(a, t, v);
    H5Aclose(a);
    H5Sclose(s);
    H5Tclose(t);
    return rc < 0 || a < 0;
}

static int dset(hid_t g, const char *name, hid_t ftype, hid_t mtype, int rank,
                const hsize_t *dims, const void *data)
{
    hid_t s = rank ? H5Screate_simple(rank, dims, NULL) : H5Screate(H5S_SCALAR);
    hid_t d = H5Dcreate2(g, name, ftype, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    H5Dclose(d);
    H5Sclose(s);
    return rc < 0 || d < 0;
}

/* A pass-through filter under lzf's id: the data is written as is, but the file names
 * a filter that a reader without the lzf plugin cannot decode. */
static size_t pass_through(unsigned flags, size_t n, const unsigned cd[], size_t nb, size_t *bs,
                           void **buf)
{
    (void)flags, (void)n, (void)cd, (void)bs, (void)buf;
    return nb;
}

/* A chunked dataset of `rows` rows of which the first N are written from data. */
static int dset_chunked(hid_t g, const char *name, hid_t ftype, hid_t mtype, int rank,
                        hsize_t rows, const void *data, int lzf)
{
    hsize_t dims[2] = {rows, T}, chunk[2] = {N, T}, mem[2] = {N, T}, start[2] = {0, 0};
    hid_t s = H5Screate_simple(rank, dims, NULL), p = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(p, rank, chunk);
    if (lzf) H5Pset_filter(p, 32000, H5Z_FLAG_MANDATORY, 0, NULL);
    hid_t d = H5Dcreate2(g, name, ftype, s, H5P_DEFAULT, p, H5P_DEFAULT);
    hid_t ms = H5Screate_simple(rank, mem, NULL);
    herr_t rc = H5Sselect_hyperslab(s, H5S_SELECT_SET, start, NULL, mem, NULL);
    if (rc >= 0) rc = H5Dwrite(d, mtype, ms, s, H5P_DEFAULT, data);
    H5Sclose(ms);
    H5Dclose(d);
    H5Pclose(p);
    H5Sclose(s);
    return rc < 0 || d < 0;
}

static int write_case(const char *dir, const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.h5", dir, name);
    int32_t ids[N][T], len[N], as[N];
    int64_t sid[N];
    for (int i = 0; i < N; i++) {
        len[i] = 6 + i;
        as[i] = 2;
        sid[i] = i;
        for (int t = 0; t < T; t++) ids[i][t] = t < len[i] ? 'a' + (i + t) % 26 : 256;
        ids[i][len[i] - 1] = 257;
    }
    int64_t vocab = 258, pad = 256;
    int bad = 0;
    if (!strcmp(name, "oov")) ids[3][2] = 5000;
    if (!strcmp(name, "negative_id")) ids[5][1] = -7;
    if (!strcmp(name, "length_past_t")) len[4] = T + 5;
    if (!strcmp(name, "answer_start")) as[2] = len[2];
    if (!strcmp(name, "dup_sample")) sid[6] = 1;
    if (!strcmp(name, "vocab_huge")) vocab = (int64_t)1 << 62;
    if (!strcmp(name, "pad_out")) pad = 300;
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) return 1;
    bad |= attr_str(f, "tokenizer", "byte");
    if (strcmp(name, "no_vocab")) bad |= attr_i64(f, "vocab_size", vocab);
    bad |= attr_i64(f, "pad_id", pad);
    bad |= attr_i64(f, "eos_id", 257);
    hid_t g = H5Gcreate2(f, "forget", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t d2[2] = {N, T}, d1[1] = {N}, dflat[1] = {N * T}, dshort[1] = {N - 1};
    if (!strcmp(name, "float_ids")) {
        float fi[N][T];
        for (int i = 0; i < N; i++)
            for (int t = 0; t < T; t++) fi[i][t] = (float)ids[i][t];
        bad |= dset(g, "input_ids", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, d2, fi);
    } else if (!strcmp(name, "ids_1d")) {
        bad |= dset(g, "input_ids", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, dflat, ids);
    } else if (!strcmp(name, "lzf")) {
        bad |= dset_chunked(g, "input_ids", H5T_STD_I32LE, H5T_NATIVE_INT32, 2, N, ids, 1);
    } else if (!strcmp(name, "sparse")) {
        hsize_t big = (hsize_t)1 << 33;
        bad |= dset_chunked(g, "input_ids", H5T_STD_I32LE, H5T_NATIVE_INT32, 2, big, ids, 0);
        bad |= dset_chunked(g, "lengths", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, big, len, 0);
        bad |= dset_chunked(g, "answer_start", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, big, as, 0);
        bad |= dset_chunked(g, "sample_id", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, big, sid, 0);
        goto done;
    } else if (!strcmp(name, "split_scalar")) {
        bad |= dset(g, "input_ids", H5T_STD_I32LE, H5T_NATIVE_INT32, 0, NULL, ids);
    } else {
        bad |= dset(g, "input_ids", H5T_STD_I32LE, H5T_NATIVE_INT32, 2, d2, ids);
    }
    bad |= dset(g, "lengths", H5T_STD_I32LE, H5T_NATIVE_INT32, 1,
                strcmp(name, "short_lengths") ? d1 : dshort, len);
    bad |= dset(g, "answer_start", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, d1, as);
    bad |= dset(g, "sample_id", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, d1, sid);
done:
    H5Gclose(g);
    if (H5Fclose(f) < 0 || bad) {
        fprintf(stderr, "make_hostile_h5: cannot write %s\n", path);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: make_hostile_h5 DIR\n");
        return 2;
    }
    static const char *cases[] = {"good",         "oov",          "negative_id",   "float_ids",
                                  "ids_1d",       "short_lengths", "length_past_t", "answer_start",
                                  "no_vocab",     "vocab_huge",   "pad_out",       "split_scalar",
                                  "dup_sample",   "lzf",          "sparse"};
    const H5Z_class2_t lzf = {H5Z_CLASS_T_VERS, 32000, 1, 1, "lzf", NULL, NULL, pass_through};
    if (H5Zregister(&lzf) < 0) return 1;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (write_case(argv[1], cases[i])) return 1;
    return 0;
}
