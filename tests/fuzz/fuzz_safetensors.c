/* tests/fuzz/fuzz_safetensors.c — libFuzzer harness of the safetensors reader
 * (io/safetensors.c): the bytes are a whole .safetensors file. An accepted file must
 * have tensors that read back (F32/F16/BF16 as float, I32 as int32) and that tile the
 * data buffer; a refused one, a one-line error. */
#include "fuzz_util.h"

#include "io/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    const char *path = fuzz_write("in.safetensors", d, n);
    char err[1024];
    st_file *st = st_open(path, err, sizeof err);
    if (!st) {
        fuzz_one_line("st_open", err);
        return 0;
    }
    uint64_t bytes = 0;
    for (int i = 0; i < st->n; i++) {
        const st_tensor *t = &st->t[i];
        size_t sz = st_dtype_size(t->dtype);
        if (t->end - t->begin != (uint64_t)t->numel * sz || t->end > st->data_len) abort();
        bytes += t->end - t->begin;
        if (st_find(st, t->name) != i) abort();
        if (t->numel > (1 << 20)) continue;
        void *buf = malloc((size_t)t->numel * 4 + 4);
        if (!buf) continue;
        int rc;
        if (t->dtype == ST_F32 || t->dtype == ST_F16 || t->dtype == ST_BF16) {
            rc = st_read_f32(st, i, buf, (size_t)t->numel, err, sizeof err);
            if (!rc && t->ndim > 0 && t->shape[0] > 0)
                rc = st_read_f32_rows(st, i, t->shape[0] - 1, 1, buf, err, sizeof err);
        } else if (t->dtype == ST_I32) {
            rc = st_read_i32(st, i, buf, (size_t)t->numel, err, sizeof err);
        } else {
            rc = st_read_f32(st, i, buf, (size_t)t->numel, err, sizeof err);
            if (!rc) abort(); /* other dtypes are refused by name */
            rc = 0;
        }
        if (rc) fuzz_one_line("st_read", err);
        free(buf);
    }
    if (bytes != st->data_len) abort(); /* the buffer is tiled exactly */
    for (int i = 0; i < st->n_meta; i++)
        if (st_meta(st, st->meta_key[i]) == NULL) abort();
    st_close(st);
    return 0;
}
