/* io/safetensors_write.c — the safetensors writer (io/safetensors.h): F32, F16, BF16 and
 * I32 tensors, the narrowing of floats to half precision, under the reader's name rules, the JSON header, the data, written to a
 * temporary name and renamed into place. */
#include "safetensors.h"
#include "safetensors_impl.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "../mpi/fatal.h"
#include "safefile.h"

/* ---- writer --------------------------------------------------------------- */

int st_write_typed(const char *path, int n, const char *const *names, const st_dtype *dts,
                   const int *ndims, const int64_t *const *shapes, const void *const *datas,
                   const char *metadata_json, char *err, size_t errlen)
{
    st_ectx e = {path, err, errlen};
    char se[1200];
    cJSON *root = cJSON_CreateObject();
    char *hdr = NULL;
    safe_out w;
    FILE *f = NULL;
    uint64_t *bytes = calloc((size_t)n + 1, sizeof(uint64_t));
    int rc = -1;
    if (!root || !bytes) {
        st_efail(&e, NULL, "out of memory building the header");
        goto done;
    }
    if (metadata_json) {
        cJSON *md = cJSON_Parse(metadata_json);
        int ok = md && cJSON_IsObject(md);
        for (const cJSON *c = ok ? md->child : NULL; c; c = c->next) ok &= cJSON_IsString(c);
        if (!ok) {
            cJSON_Delete(md);
            st_efail(&e, NULL, "metadata is not a JSON object of strings: %.200s", metadata_json);
            goto done;
        }
        cJSON_AddItemToObject(root, "__metadata__", md);
    }
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        char pb[64];
        const char *why = st_name_problem(names[i], pb, sizeof pb);
        if (!why && !strcmp(names[i], "__metadata__")) why = "name is reserved for metadata";
        if (!why && cJSON_GetObjectItemCaseSensitive(root, names[i])) why = "duplicate tensor name";
        if (!why && dts[i] != ST_F32 && dts[i] != ST_I32 && dts[i] != ST_F16 && dts[i] != ST_BF16)
            why = "the writer supports F32, F16, BF16 and I32";
        if (!why && (ndims[i] < 0 || ndims[i] > ST_MAX_DIMS)) why = "too many dimensions";
        int64_t numel = 1;
        for (int d = 0; !why && d < ndims[i]; d++) {
            if (shapes[i][d] < 0)
                why = "negative dimension";
            else if (shapes[i][d] && numel > (INT64_MAX / 8) / shapes[i][d])
                why = "shape overflows";
            else
                numel *= shapes[i][d];
        }
        if (!why && numel && !datas[i]) why = "no data";
        if (why) {
            st_efail(&e, names[i], "cannot write: %s", why);
            goto done;
        }
        bytes[i] = (uint64_t)numel * st_dtype_size(dts[i]);
        cJSON *ent = cJSON_CreateObject(), *sh = cJSON_CreateArray(), *of = cJSON_CreateArray();
        int ok = ent && sh && of;
        if (ok) {
            cJSON_AddItemToObject(ent, "dtype", cJSON_CreateString(st_dtype_name(dts[i])));
            for (int d = 0; d < ndims[i]; d++)
                cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)shapes[i][d]));
            cJSON_AddItemToObject(ent, "shape", sh);
            cJSON_AddItemToArray(of, cJSON_CreateNumber((double)off));
            cJSON_AddItemToArray(of, cJSON_CreateNumber((double)(off + bytes[i])));
            cJSON_AddItemToObject(ent, "data_offsets", of);
            cJSON_AddItemToObject(root, names[i], ent);
        } else {
            cJSON_Delete(ent);
            cJSON_Delete(sh);
            cJSON_Delete(of);
            st_efail(&e, NULL, "out of memory building the header");
            goto done;
        }
        off += bytes[i];
    }
    hdr = cJSON_PrintUnformatted(root);
    if (!hdr) {
        st_efail(&e, NULL, "out of memory printing the header");
        goto done;
    }
    size_t hl = strlen(hdr), padded = (hl + 7) & ~(size_t)7;
    if (safe_create(&w, path, se, sizeof se)) {
        st_efail(&e, NULL, "%s", se);
        goto done;
    }
    f = w.f;
    unsigned char lb[8];
    for (int i = 0; i < 8; i++) lb[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    int ok = fwrite(lb, 1, 8, f) == 8 && fwrite(hdr, 1, hl, f) == hl;
    for (size_t i = hl; ok && i < padded; i++) ok = fputc(' ', f) != EOF;
    for (int i = 0; ok && i < n; i++)
        ok = !bytes[i] || fwrite(datas[i], 1, bytes[i], f) == bytes[i];
    if (!ok) {
        st_efail(&e, NULL, "cannot write '%.400s': %s", w.tmp, strerror(errno));
        safe_abort(&w);
        goto done;
    }
    if (safe_finish(&w, se, sizeof se)) {
        st_efail(&e, NULL, "%s", se);
        goto done;
    }
    rc = 0;
done:
    free(bytes);
    free(hdr);
    cJSON_Delete(root);
    return rc;
}

int st_write(const char *path, int n, const char *const *names, const int *ndims,
             const int64_t *const *shapes, const float *const *datas, const char *metadata_json,
             char *err, size_t errlen)
{
    st_dtype *dts = malloc(sizeof(st_dtype) * ((size_t)n + 1));
    const void **dp = malloc(sizeof(void *) * ((size_t)n + 1));
    if (!dts || !dp) {
        free(dts);
        free(dp);
        st_ectx e = {path, err, errlen};
        st_efail(&e, NULL, "out of memory");
        return -1;
    }
    for (int i = 0; i < n; i++) {
        dts[i] = ST_F32;
        dp[i] = datas[i];
    }
    int rc = st_write_typed(path, n, names, dts, ndims, shapes, (const void *const *)dp,
                            metadata_json, err, errlen);
    free(dts);
    free(dp);
    return rc;
}

uint16_t st_f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u); /* round to nearest, ties to even */
    return (uint16_t)(u >> 16);
}

uint16_t st_f32_to_f16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return sign | 0x7e00u; /* NaN */
    if (a >= 0x477ff000u) return sign | 0x7c00u; /* rounds to or beyond 65520: infinity */
    int e = (int)(a >> 23) - 127;
    uint32_t m = (a & 0x7fffffu) | 0x800000u;
    if (e < -25) return sign; /* below half the smallest subnormal: zero */
    /* the half's units: 2^-24 for subnormals (e < -14), else 2^(e-10) */
    int shift = e < -14 ? 13 + (-14 - e) : 13;
    uint32_t q = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1u))) q++;
    if (e < -14) return sign | (uint16_t)q; /* a carry into 0x400 is the smallest normal */
    return sign | (uint16_t)((((uint32_t)(e + 15)) << 10) + (q - 0x400u));
}
