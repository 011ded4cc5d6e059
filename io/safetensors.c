/* io/safetensors.c — the safetensors reader: dtypes, the validating header parser, the
 * tensor reads, and the messages it shares with the writer (safetensors_write.c). See the
 * header. */
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

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "io/safetensors.c and safetensors_write.c read and write tensor data in host order, which must be little-endian"
#endif

static const struct {
    const char *name;
    size_t size;
} dtypes[ST_NDTYPES] = {
    [ST_BOOL] = {"BOOL", 1},       [ST_U8] = {"U8", 1},           [ST_I8] = {"I8", 1},
    [ST_F8_E5M2] = {"F8_E5M2", 1}, [ST_F8_E4M3] = {"F8_E4M3", 1}, [ST_I16] = {"I16", 2},
    [ST_U16] = {"U16", 2},         [ST_F16] = {"F16", 2},         [ST_BF16] = {"BF16", 2},
    [ST_I32] = {"I32", 4},         [ST_U32] = {"U32", 4},         [ST_F32] = {"F32", 4},
    [ST_F64] = {"F64", 8},         [ST_I64] = {"I64", 8},         [ST_U64] = {"U64", 8},
};

/* Offsets and dimensions are JSON numbers, which cJSON holds as doubles: every
 * integer up to 2^53 is exact, and no real file comes near it. */
#define ST_INT_MAX 9007199254740992.0

const char *st_dtype_name(st_dtype d)
{
    return (d >= 0 && d < ST_NDTYPES) ? dtypes[d].name : "?";
}

size_t st_dtype_size(st_dtype d)
{
    return (d >= 0 && d < ST_NDTYPES) ? dtypes[d].size : 0;
}

float st_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, ex = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
    uint32_t bits;
    if (ex == 0) {
        /* zero or subnormal: mant * 2^-24, exact in float */
        float v = ldexpf((float)mant, -24);
        return sign ? -v : v;
    } else if (ex == 31) {
        bits = sign | 0x7f800000u | (mant << 13); /* inf, NaN (payload kept) */
    } else {
        bits = sign | ((ex + 112u) << 23) | (mant << 13); /* rebias 15 -> 127 */
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

float st_bf16_to_f32(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* ---- messages (shared with the writer: safetensors_impl.h) ----------------- */

void st_efail(const st_ectx *e, const char *tensor, const char *fmt, ...)
{
    if (!e->err || !e->errlen) return;
    char msg[768], nm[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (tensor)
        snprintf(e->err, e->errlen, "safetensors '%.400s': tensor '%s': %s", e->path,
                 lethe_shown(tensor, nm, sizeof nm, 1), msg);
    else
        snprintf(e->err, e->errlen, "safetensors '%.400s': %s", e->path, msg);
}

const char *st_name_problem(const char *s, char *buf, size_t len)
{
    if (!*s) return "empty tensor name";
    if (strchr(s, '/')) return "name contains '/'";
    if (strstr(s, "..")) return "name contains '..'";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f) {
            snprintf(buf, len, "name contains control character 0x%02x", *p);
            return buf;
        }
    return NULL;
}

static void format_shape(char *buf, size_t len, const int64_t *shape, int ndim)
{
    size_t o = (size_t)snprintf(buf, len, "[");
    for (int d = 0; d < ndim && o < len; d++)
        o += (size_t)snprintf(buf + o, len - o, "%s%lld", d ? "," : "", (long long)shape[d]);
    if (o < len) snprintf(buf + o, len - o, "]");
}

/* ---- reader --------------------------------------------------------------- */

/* A JSON number that is an integer in [0, 2^53], or -1. */
static int json_uint(const cJSON *v, uint64_t *out)
{
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    if (!isfinite(d) || d < 0 || d > ST_INT_MAX || d != floor(d)) return -1;
    *out = (uint64_t)d;
    return 0;
}

/* The JSON text of v for a message, shortened. */
static const char *json_text(const cJSON *v, char *buf, size_t len)
{
    char *s = cJSON_PrintUnformatted(v);
    if (!s) {
        snprintf(buf, len, "?");
        return buf;
    }
    lethe_shown(s, buf, len, 1);
    free(s);
    return buf;
}

static int parse_tensor(const st_ectx *e, const cJSON *entry, st_tensor *t, uint64_t data_len)
{
    const char *nm = entry->string;
    char jb[220];
    if (!cJSON_IsObject(entry)) {
        st_efail(e, nm, "entry is %s, expected an object {dtype, shape, data_offsets}",
                 json_text(entry, jb, sizeof jb));
        return -1;
    }
    const cJSON *dt = NULL, *sh = NULL, *of = NULL;
    for (const cJSON *c = entry->child; c; c = c->next) {
        const cJSON **slot = !strcmp(c->string, "dtype")          ? &dt
                             : !strcmp(c->string, "shape")        ? &sh
                             : !strcmp(c->string, "data_offsets") ? &of
                                                                  : NULL;
        char kb[120];
        if (!slot) {
            st_efail(e, nm, "unknown key '%s' (expected dtype, shape, data_offsets)",
                     lethe_shown(c->string, kb, sizeof kb, 1));
            return -1;
        }
        if (*slot) {
            st_efail(e, nm, "key '%s' appears twice", c->string);
            return -1;
        }
        *slot = c;
    }
    if (!dt || !sh || !of) {
        st_efail(e, nm, "missing '%s'", !dt ? "dtype" : !sh ? "shape" : "data_offsets");
        return -1;
    }
    if (!cJSON_IsString(dt)) {
        st_efail(e, nm, "dtype is %s, expected a string such as \"F32\"",
                 json_text(dt, jb, sizeof jb));
        return -1;
    }
    int d = 0;
    while (d < ST_NDTYPES && strcmp(dtypes[d].name, dt->valuestring)) d++;
    if (d == ST_NDTYPES) {
        char b[120];
        st_efail(e, nm, "unknown dtype '%s' (lethe reads F32, F16, BF16 and I32)",
                 lethe_shown(dt->valuestring, b, sizeof b, 1));
        return -1;
    }
    t->dtype = (st_dtype)d;
    if (!cJSON_IsArray(sh) || cJSON_GetArraySize(sh) > ST_MAX_DIMS) {
        st_efail(e, nm, "shape is %s, expected an array of at most %d integers",
                 json_text(sh, jb, sizeof jb), ST_MAX_DIMS);
        return -1;
    }
    t->ndim = 0;
    t->numel = 1;
    int overflow = 0;
    for (const cJSON *c = sh->child; c; c = c->next) {
        uint64_t v;
        if (json_uint(c, &v)) {
            st_efail(e, nm, "shape %s: dimension %d is %s, expected an integer >= 0",
                     json_text(sh, jb, sizeof jb), t->ndim, json_text(c, jb + 110, 110));
            return -1;
        }
        t->shape[t->ndim++] = (int64_t)v;
        if (v && (uint64_t)t->numel > (uint64_t)INT64_MAX / v) overflow = 1;
        if (!overflow) t->numel *= (int64_t)v;
    }
    size_t esz = dtypes[d].size;
    if (!overflow && t->numel > INT64_MAX / (int64_t)esz) overflow = 1;
    char sb[200];
    format_shape(sb, sizeof sb, t->shape, t->ndim);
    if (overflow) {
        st_efail(e, nm, "shape %s overflows: its byte count does not fit in 64 bits", sb);
        return -1;
    }
    uint64_t off[2];
    if (!cJSON_IsArray(of) || cJSON_GetArraySize(of) != 2 || json_uint(of->child, &off[0]) ||
        json_uint(of->child->next, &off[1])) {
        st_efail(e, nm, "data_offsets is %s, expected [begin, end] with integers >= 0",
                 json_text(of, jb, sizeof jb));
        return -1;
    }
    t->begin = off[0];
    t->end = off[1];
    if (t->begin > t->end) {
        st_efail(e, nm, "data_offsets [%llu, %llu]: begin > end", (unsigned long long)t->begin,
                 (unsigned long long)t->end);
        return -1;
    }
    if (t->end > data_len) {
        st_efail(
            e, nm, "data_offsets [%llu, %llu] run past the end of the data buffer (%llu bytes)",
            (unsigned long long)t->begin, (unsigned long long)t->end, (unsigned long long)data_len);
        return -1;
    }
    uint64_t need = (uint64_t)t->numel * esz;
    if (t->end - t->begin != need) {
        st_efail(e, nm, "data_offsets [%llu, %llu] hold %llu bytes, but shape %s of %s needs %llu",
                 (unsigned long long)t->begin, (unsigned long long)t->end,
                 (unsigned long long)(t->end - t->begin), sb, dtypes[d].name,
                 (unsigned long long)need);
        return -1;
    }
    return 0;
}

/* qsort comparators over pointers into the tensor table (no file-scope sort state). */
static int by_name(const void *a, const void *b)
{
    const st_tensor *x = *(const st_tensor *const *)a, *y = *(const st_tensor *const *)b;
    return strcmp(x->name, y->name);
}
static int by_offset(const void *a, const void *b)
{
    const st_tensor *x = *(const st_tensor *const *)a, *y = *(const st_tensor *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

/* Names unique; the tensors tile [0, data_len) with no overlap and no gap. */
static int check_layout(const st_ectx *e, st_file *st)
{
    if (st->n == 0) {
        if (st->data_len) {
            st_efail(e, NULL, "the data buffer holds %llu bytes but the header lists no tensor",
                     (unsigned long long)st->data_len);
            return -1;
        }
        return 0;
    }
    const st_tensor **ix = malloc(sizeof *ix * (size_t)st->n);
    if (!ix) {
        st_efail(e, NULL, "out of memory sorting %d tensors", st->n);
        return -1;
    }
    for (int i = 0; i < st->n; i++) ix[i] = &st->t[i];
    qsort(ix, (size_t)st->n, sizeof *ix, by_name);
    for (int i = 1; i < st->n; i++)
        if (!strcmp(ix[i]->name, ix[i - 1]->name)) {
            st_efail(e, ix[i]->name, "duplicate tensor name");
            free(ix);
            return -1;
        }
    qsort(ix, (size_t)st->n, sizeof *ix, by_offset);
    uint64_t cursor = 0;
    const st_tensor *prev = NULL;
    char pb[200];
    for (int i = 0; i < st->n; i++) {
        const st_tensor *t = ix[i];
        if (t->begin < cursor) {
            st_efail(e, t->name, "data_offsets [%llu, %llu] overlap tensor '%s' (ends at %llu)",
                     (unsigned long long)t->begin, (unsigned long long)t->end,
                     lethe_shown(prev ? prev->name : "", pb, sizeof pb, 1), (unsigned long long)cursor);
            free(ix);
            return -1;
        }
        if (t->begin > cursor) {
            st_efail(e, t->name,
                     "bytes [%llu, %llu) of the data buffer before this tensor belong to no tensor",
                     (unsigned long long)cursor, (unsigned long long)t->begin);
            free(ix);
            return -1;
        }
        cursor = t->end;
        prev = t;
    }
    free(ix);
    if (cursor != st->data_len) {
        st_efail(e, NULL, "bytes [%llu, %llu) at the end of the data buffer belong to no tensor",
                 (unsigned long long)cursor, (unsigned long long)st->data_len);
        return -1;
    }
    return 0;
}

static int parse_metadata(const st_ectx *e, st_file *st, const cJSON *md)
{
    char jb[220];
    if (!cJSON_IsObject(md)) {
        st_efail(e, NULL, "__metadata__ is %s, expected an object of strings",
                 json_text(md, jb, sizeof jb));
        return -1;
    }
    int n = cJSON_GetArraySize(md);
    st->meta_key = calloc((size_t)n + 1, sizeof(char *));
    st->meta_val = calloc((size_t)n + 1, sizeof(char *));
    if (!st->meta_key || !st->meta_val) {
        st_efail(e, NULL, "out of memory reading __metadata__");
        return -1;
    }
    for (const cJSON *c = md->child; c; c = c->next) {
        if (!cJSON_IsString(c)) {
            char kb[120];
            st_efail(e, NULL, "__metadata__ key '%s' is %s, expected a string",
                     lethe_shown(c->string, kb, sizeof kb, 1), json_text(c, jb, sizeof jb));
            return -1;
        }
        st->meta_key[st->n_meta] = strdup(c->string);
        st->meta_val[st->n_meta] = strdup(c->valuestring);
        if (!st->meta_key[st->n_meta] || !st->meta_val[st->n_meta]) {
            st_efail(e, NULL, "out of memory reading __metadata__");
            st->n_meta++;
            return -1;
        }
        st->n_meta++;
    }
    return 0;
}

void st_close(st_file *st)
{
    if (!st) return;
    if (st->fp) fclose((FILE *)st->fp);
    for (int i = 0; i < st->n; i++) free(st->t[i].name);
    free(st->t);
    for (int i = 0; i < st->n_meta; i++) {
        free(st->meta_key[i]);
        free(st->meta_val[i]);
    }
    free(st->meta_key);
    free(st->meta_val);
    free(st->path);
    free(st);
}

st_file *st_open(const char *path, char *err, size_t errlen)
{
    st_ectx e = {path, err, errlen};
    st_file *st = calloc(1, sizeof(*st));
    char *hdr = NULL;
    cJSON *root = NULL;
    if (!st || !(st->path = strdup(path))) {
        st_efail(&e, NULL, "out of memory");
        free(st);
        return NULL;
    }
    char se[600];
    /* regular files only: a FIFO never blocks, a folder is not a file of 2^63 bytes */
    FILE *f = safe_open_read(path, "", LETHE_MAX_TENSORS, NULL, se, sizeof se);
    if (!f) {
        st_efail(&e, NULL, "%s", se);
        goto fail;
    }
    st->fp = f;
    if (fseeko(f, 0, SEEK_END)) {
        st_efail(&e, NULL, "cannot seek: %s", strerror(errno));
        goto fail;
    }
    off_t fsz = ftello(f);
    if (fsz < 0 || fseeko(f, 0, SEEK_SET)) {
        st_efail(&e, NULL, "cannot determine the file size: %s", strerror(errno));
        goto fail;
    }
    uint64_t size = (uint64_t)fsz;
    unsigned char lb[8];
    if (size < 8 || fread(lb, 1, 8, f) != 8) {
        st_efail(&e, NULL, "file is %llu bytes, shorter than the 8-byte header length",
                 (unsigned long long)size);
        goto fail;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | lb[i];
    if (hlen > ST_HEADER_MAX) {
        st_efail(&e, NULL, "header length %llu exceeds the limit of %llu bytes",
                 (unsigned long long)hlen, (unsigned long long)ST_HEADER_MAX);
        goto fail;
    }
    if (hlen > size - 8) {
        st_efail(&e, NULL, "header length %llu runs past the end of the file (%llu bytes)",
                 (unsigned long long)hlen, (unsigned long long)size);
        goto fail;
    }
    st->data_start = 8 + hlen;
    st->data_len = size - 8 - hlen;
    hdr = malloc(hlen + 1);
    if (!hdr) {
        st_efail(&e, NULL, "out of memory reading a header of %llu bytes",
                 (unsigned long long)hlen);
        goto fail;
    }
    if (fread(hdr, 1, hlen, f) != hlen) {
        st_efail(&e, NULL, "cannot read the %llu-byte header", (unsigned long long)hlen);
        goto fail;
    }
    hdr[hlen] = 0;
    const char *nul = memchr(hdr, 0, hlen);
    if (nul) {
        st_efail(&e, NULL, "header is not valid JSON: NUL byte at header byte %lld",
                 (long long)(nul - hdr));
        goto fail;
    }
    const char *end = NULL;
    root = cJSON_ParseWithLengthOpts(hdr, hlen, &end, 0);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        long long pos = (at && at >= hdr && at <= hdr + hlen) ? (long long)(at - hdr) : -1;
        st_efail(&e, NULL, "header is not valid JSON (error near header byte %lld of %llu)", pos,
                 (unsigned long long)hlen);
        goto fail;
    }
    for (const char *p = end; p && p < hdr + hlen; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            st_efail(&e, NULL,
                     "header is not valid JSON: unexpected bytes after the object at "
                     "header byte %lld",
                     (long long)(p - hdr));
            goto fail;
        }
    if (!cJSON_IsObject(root)) {
        char jb[220];
        st_efail(&e, NULL, "header is %s, not a JSON object", json_text(root, jb, sizeof jb));
        goto fail;
    }
    int cap = cJSON_GetArraySize(root), seen_meta = 0;
    st->t = calloc((size_t)cap + 1, sizeof(st_tensor));
    if (!st->t) {
        st_efail(&e, NULL, "out of memory for %d tensors", cap);
        goto fail;
    }
    for (const cJSON *c = root->child; c; c = c->next) {
        if (!strcmp(c->string, "__metadata__")) {
            if (seen_meta++) {
                st_efail(&e, NULL, "__metadata__ appears twice");
                goto fail;
            }
            if (parse_metadata(&e, st, c)) goto fail;
            continue;
        }
        char pb[64];
        const char *why = st_name_problem(c->string, pb, sizeof pb);
        if (why) {
            st_efail(&e, c->string, "%s", why);
            goto fail;
        }
        st_tensor *t = &st->t[st->n];
        if (!(t->name = strdup(c->string))) {
            st_efail(&e, NULL, "out of memory");
            goto fail;
        }
        st->n++;
        if (parse_tensor(&e, c, t, st->data_len)) goto fail;
    }
    if (check_layout(&e, st)) goto fail;
    cJSON_Delete(root);
    free(hdr);
    return st;
fail:
    cJSON_Delete(root);
    free(hdr);
    st_close(st);
    return NULL;
}

int st_find(const st_file *st, const char *name)
{
    for (int i = 0; i < st->n; i++)
        if (!strcmp(st->t[i].name, name)) return i;
    return -1;
}

const char *st_meta(const st_file *st, const char *key)
{
    for (int i = 0; i < st->n_meta; i++)
        if (!strcmp(st->meta_key[i], key)) return st->meta_val[i];
    return NULL;
}

/* Reads `bytes` bytes at buffer offset `off` into dst. */
static int read_at(st_file *st, const st_ectx *e, const char *name, uint64_t off, void *dst,
                   size_t bytes)
{
    FILE *f = st->fp;
    if (!bytes) return 0;
    if (fseeko(f, (off_t)(st->data_start + off), SEEK_SET)) {
        st_efail(e, name, "cannot seek to byte %llu: %s",
                 (unsigned long long)(st->data_start + off), strerror(errno));
        return -1;
    }
    if (fread(dst, 1, bytes, f) != bytes) {
        st_efail(e, name, "short read of %zu bytes at file byte %llu (%s)", bytes,
                 (unsigned long long)(st->data_start + off),
                 ferror(f) ? strerror(errno) : "the file was truncated after it was opened");
        return -1;
    }
    return 0;
}

int st_read_f32_rows(st_file *st, int idx, int64_t row0, int64_t nrows, float *out, char *err,
                     size_t errlen)
{
    st_ectx e = {st->path, err, errlen};
    if (idx < 0 || idx >= st->n) {
        st_efail(&e, NULL, "no tensor with index %d (the file has %d)", idx, st->n);
        return -1;
    }
    const st_tensor *t = &st->t[idx];
    if (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16) {
        st_efail(&e, t->name, "dtype %s cannot be read as float (lethe reads F32, F16, BF16)",
                 dtypes[t->dtype].name);
        return -1;
    }
    int64_t rows = t->ndim ? t->shape[0] : 1;
    int64_t rowel = rows ? t->numel / rows : 0;
    if (row0 < 0 || nrows < 0 || row0 > rows || nrows > rows - row0) {
        st_efail(&e, t->name, "rows [%lld, %lld) requested, the tensor has %lld", (long long)row0,
                 (long long)(row0 + nrows), (long long)rows);
        return -1;
    }
    size_t n = (size_t)(nrows * rowel), esz = dtypes[t->dtype].size;
    uint64_t off = t->begin + (uint64_t)(row0 * rowel) * esz;
    if (t->dtype == ST_F32) return read_at(st, &e, t->name, off, out, n * esz);
    /* half formats: convert in chunks through a small buffer */
    enum { CH = 1 << 16 };
    uint16_t *buf = malloc(CH * sizeof(uint16_t));
    if (!buf) {
        st_efail(&e, t->name, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i += CH) {
        size_t k = n - i < CH ? n - i : CH;
        if (read_at(st, &e, t->name, off + i * 2, buf, k * 2)) {
            free(buf);
            return -1;
        }
        for (size_t j = 0; j < k; j++)
            out[i + j] = t->dtype == ST_F16 ? st_f16_to_f32(buf[j]) : st_bf16_to_f32(buf[j]);
    }
    free(buf);
    return 0;
}

int st_read_f32(st_file *st, int idx, float *out, size_t count, char *err, size_t errlen)
{
    st_ectx e = {st->path, err, errlen};
    if (idx >= 0 && idx < st->n && (uint64_t)st->t[idx].numel != count) {
        char sb[200];
        format_shape(sb, sizeof sb, st->t[idx].shape, st->t[idx].ndim);
        st_efail(&e, st->t[idx].name, "has %lld elements (shape %s), expected %zu",
                 (long long)st->t[idx].numel, sb, count);
        return -1;
    }
    int64_t rows = (idx >= 0 && idx < st->n && st->t[idx].ndim) ? st->t[idx].shape[0] : 1;
    return st_read_f32_rows(st, idx, 0, rows, out, err, errlen);
}

int st_read_i32(st_file *st, int idx, int32_t *out, size_t count, char *err, size_t errlen)
{
    st_ectx e = {st->path, err, errlen};
    if (idx < 0 || idx >= st->n) {
        st_efail(&e, NULL, "no tensor with index %d (the file has %d)", idx, st->n);
        return -1;
    }
    const st_tensor *t = &st->t[idx];
    if (t->dtype != ST_I32) {
        st_efail(&e, t->name, "dtype %s, expected I32", dtypes[t->dtype].name);
        return -1;
    }
    if ((uint64_t)t->numel != count) {
        st_efail(&e, t->name, "has %lld elements, expected %zu", (long long)t->numel, count);
        return -1;
    }
    return read_at(st, &e, t->name, t->begin, out, count * 4);
}
