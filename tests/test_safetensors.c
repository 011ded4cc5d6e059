/* tests/test_safetensors.c — io/safetensors: round trip, half-precision conversion,
 * and hostile files.
 *
 *   test_safetensors WORKDIR
 *
 * 1. Round trip: F32 tensors of rank 0, 1, 2 and 3, an empty tensor and an I32 tensor
 *    with metadata are written and read back bit for bit; row-range reads match; the
 *    data buffer starts 8-byte aligned; no temporary file is left; a refused write
 *    leaves the previous file untouched.
 * 2. F16 and BF16 tensors with known bit patterns (normal, subnormal, signed zero,
 *    largest finite, infinities, NaN) read as the exact float values.
 * 3. Hostile files built here byte by byte: each must be refused by st_open (or by the
 *    read call, for a dtype that is valid but not readable as float) with a one-line
 *    message containing the file name, the tensor name where there is one, and the
 *    expected phrase.
 * Exit status 0 only if every check passes. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../io/safetensors.h"
#include "check.h"

CHECK_COUNTERS;


static const char *dir;

static void path_of(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", dir, name);
}

/* Writes 8-byte length `hlen`, `hbytes` bytes of header, `data` zero bytes. */
static void write_raw(const char *path, unsigned long long hlen, const char *hdr, size_t hbytes,
                      const void *data, size_t dbytes)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(2);
    }
    unsigned char lb[8];
    for (int i = 0; i < 8; i++) lb[i] = (unsigned char)(hlen >> (8 * i));
    fwrite(lb, 1, 8, f);
    fwrite(hdr, 1, hbytes, f);
    for (size_t i = 0; i < dbytes; i++) fputc(data ? ((const unsigned char *)data)[i] : 0, f);
    if (fclose(f)) {
        perror(path);
        exit(2);
    }
}

static void test_round_trip(void)
{
    char path[1024], err[1024];
    path_of(path, sizeof path, "round.safetensors");
    float a[3 * 5], b[7], c = 3.25f, d[2 * 3 * 4];
    int32_t ids[6] = {0, -1, 96, 2147483647, -2147483647 - 1, 5};
    for (int i = 0; i < 15; i++) a[i] = (float)i * 0.5f - 3.0f;
    for (int i = 0; i < 7; i++) b[i] = 1.0f / (float)(i + 1);
    for (int i = 0; i < 24; i++) d[i] = sinf((float)i);
    b[3] = -0.0f;
    int64_t sa[] = {3, 5}, sb[] = {7}, sd[] = {2, 3, 4}, se[] = {0, 4}, si[] = {2, 3};
    const char *names[] = {
        "model.layers.0.mlp.up_proj.weight", "vec", "scalar", "cube", "empty", "ids"};
    st_dtype dts[] = {ST_F32, ST_F32, ST_F32, ST_F32, ST_F32, ST_I32};
    int nd[] = {2, 1, 0, 3, 2, 2};
    const int64_t *shapes[] = {sa, sb, NULL, sd, se, si};
    const void *datas[] = {a, b, &c, d, NULL, ids};
    const char *meta = "{\"format\":\"pt\",\"note\":\"round \\\"trip\\\"\"}";
    int rc = st_write_typed(path, 6, names, dts, nd, shapes, datas, meta, err, sizeof err);
    CHECK(rc == 0, "st_write_typed failed: %s", err);
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    CHECK(access(tmp, F_OK) != 0, "temporary file %s left behind", tmp);

    st_file *st = st_open(path, err, sizeof err);
    CHECK(st != NULL, "st_open of a file just written failed: %s", err);
    if (!st) return;
    CHECK(st->n == 6, "expected 6 tensors, got %d", st->n);
    CHECK(st->data_start % 8 == 0, "data buffer at file byte %llu, not 8-byte aligned",
          (unsigned long long)st->data_start);
    CHECK(st_meta(st, "format") && !strcmp(st_meta(st, "format"), "pt"), "metadata 'format'");
    CHECK(st_meta(st, "note") && !strcmp(st_meta(st, "note"), "round \"trip\""),
          "metadata 'note' = %s", st_meta(st, "note") ? st_meta(st, "note") : "(null)");
    CHECK(st_meta(st, "absent") == NULL, "metadata 'absent' should be NULL");
    CHECK(st_find(st, "nope") == -1, "st_find of a missing name");

    int ia = st_find(st, names[0]);
    CHECK(ia >= 0 && st->t[ia].ndim == 2 && st->t[ia].shape[0] == 3 && st->t[ia].shape[1] == 5 &&
              st->t[ia].dtype == ST_F32,
          "tensor a's entry");
    float ra[15];
    CHECK(ia >= 0 && st_read_f32(st, ia, ra, 15, err, sizeof err) == 0, "read a: %s", err);
    CHECK(!memcmp(ra, a, sizeof a), "tensor a differs after the round trip");
    float rows[10];
    CHECK(ia >= 0 && st_read_f32_rows(st, ia, 1, 2, rows, err, sizeof err) == 0,
          "read rows 1..2 of a: %s", err);
    CHECK(!memcmp(rows, a + 5, sizeof rows), "rows 1..2 of a differ");
    CHECK(ia >= 0 && st_read_f32_rows(st, ia, 2, 2, rows, err, sizeof err) != 0 &&
              strstr(err, "rows [2, 4) requested, the tensor has 3"),
          "rows past the end must be refused, got: %s", err);
    CHECK(ia >= 0 && st_read_f32(st, ia, ra, 14, err, sizeof err) != 0 &&
              strstr(err, "has 15 elements (shape [3,5]), expected 14"),
          "a wrong element count must be refused, got: %s", err);

    int ib = st_find(st, "vec"), ic = st_find(st, "scalar"), id = st_find(st, "cube");
    float rb[7], rc_ = 0, rd[24];
    CHECK(ib >= 0 && st_read_f32(st, ib, rb, 7, err, sizeof err) == 0 && !memcmp(rb, b, sizeof b),
          "vec differs: %s", err);
    CHECK(signbit(rb[3]), "-0.0 lost its sign");
    CHECK(ic >= 0 && st->t[ic].ndim == 0 && st->t[ic].numel == 1 &&
              st_read_f32(st, ic, &rc_, 1, err, sizeof err) == 0 && rc_ == c,
          "scalar differs: %s", err);
    CHECK(id >= 0 && st->t[id].ndim == 3 && st_read_f32(st, id, rd, 24, err, sizeof err) == 0 &&
              !memcmp(rd, d, sizeof d),
          "cube differs: %s", err);
    int ie = st_find(st, "empty");
    CHECK(ie >= 0 && st->t[ie].numel == 0 && st->t[ie].begin == st->t[ie].end &&
              st_read_f32(st, ie, rd, 0, err, sizeof err) == 0,
          "empty tensor: %s", err);
    int ii = st_find(st, "ids");
    int32_t rids[6];
    CHECK(ii >= 0 && st->t[ii].dtype == ST_I32 &&
              st_read_i32(st, ii, rids, 6, err, sizeof err) == 0 && !memcmp(rids, ids, sizeof ids),
          "ids differ: %s", err);
    CHECK(ii >= 0 && st_read_f32(st, ii, rd, 6, err, sizeof err) != 0 &&
              strstr(err, "tensor 'ids': dtype I32 cannot be read as float"),
          "I32 read as float must be refused, got: %s", err);
    CHECK(st_read_i32(st, ia, rids, 15, err, sizeof err) != 0 &&
              strstr(err, "dtype F32, expected I32"),
          "F32 read as I32 must be refused, got: %s", err);
    st_close(st);

    /* a refused write leaves the previous file untouched */
    const char *bad_names[] = {"ok", "../escape"};
    int nd2[] = {1, 1};
    const int64_t *sh2[] = {sb, sb};
    const float *da2[] = {b, b};
    rc = st_write(path, 2, bad_names, nd2, sh2, da2, NULL, err, sizeof err);
    CHECK(rc != 0 && strstr(err, "tensor '../escape': cannot write: name contains '/'"),
          "writing a name with '/' must be refused, got: %s", err);
    const char *dup_names[] = {"w", "w"};
    rc = st_write(path, 2, dup_names, nd2, sh2, da2, NULL, err, sizeof err);
    CHECK(rc != 0 && strstr(err, "tensor 'w': cannot write: duplicate tensor name"),
          "writing a duplicate name must be refused, got: %s", err);
    rc = st_write(path, 1, dup_names, nd2, sh2, da2, "{\"k\": 1}", err, sizeof err);
    CHECK(rc != 0 && strstr(err, "metadata is not a JSON object of strings"),
          "metadata with a number must be refused, got: %s", err);
    st = st_open(path, err, sizeof err);
    CHECK(st && st->n == 6, "the previous file must survive refused writes: %s", st ? "" : err);
    st_close(st);
}

static void test_half(void)
{
    char path[1024], err[1024];
    path_of(path, sizeof path, "half.safetensors");
    /* IEEE binary16 bit patterns and their exact values */
    static const uint16_t h[] = {0x3c00, 0xc000, 0x3555, 0x7bff, 0x0001, 0x03ff,
                                 0x0400, 0x8000, 0x7c00, 0xfc00, 0x7e00};
    const float hv[] = {1.0f,
                        -2.0f,
                        0.333251953125f,
                        65504.0f,
                        5.9604644775390625e-08f,
                        6.0975551605224609375e-05f,
                        6.103515625e-05f,
                        -0.0f,
                        INFINITY,
                        -INFINITY,
                        NAN};
    /* bfloat16: the top half of a float */
    static const uint16_t bf[] = {0x3f80, 0xc0a0, 0x4049, 0x0001, 0x7f7f,
                                  0x8000, 0x7f80, 0xff80, 0x7fc0};
    const float bv[] = {
        1.0f,     -5.0f,     3.140625f, 9.18354961579912e-41f, 3.3895313892515355e+38f, -0.0f,
        INFINITY, -INFINITY, NAN};
    const int nh = 11, nb = 9;
    unsigned char data[40];
    memcpy(data, h, sizeof h);
    memcpy(data + sizeof h, bf, sizeof bf);
    char hdr[256];
    snprintf(hdr, sizeof hdr,
             "{\"h\":{\"dtype\":\"F16\",\"shape\":[%d],\"data_offsets\":[0,%d]},"
             "\"b\":{\"dtype\":\"BF16\",\"shape\":[%d],\"data_offsets\":[%d,%d]}}",
             nh, 2 * nh, nb, 2 * nh, 2 * (nh + nb));
    write_raw(path, strlen(hdr), hdr, strlen(hdr), data, 2 * (size_t)(nh + nb));
    st_file *st = st_open(path, err, sizeof err);
    CHECK(st != NULL, "st_open of the F16/BF16 file failed: %s", err);
    if (!st) return;
    float out[16];
    int ih = st_find(st, "h"), ib = st_find(st, "b");
    CHECK(st_read_f32(st, ih, out, (size_t)nh, err, sizeof err) == 0, "read F16: %s", err);
    for (int i = 0; i < nh; i++) {
        int same =
            isnan(hv[i]) ? isnan(out[i]) : (out[i] == hv[i] && !signbit(out[i]) == !signbit(hv[i]));
        CHECK(same, "F16 0x%04x -> %.10g, expected %.10g", h[i], out[i], hv[i]);
    }
    CHECK(st_read_f32(st, ib, out, (size_t)nb, err, sizeof err) == 0, "read BF16: %s", err);
    for (int i = 0; i < nb; i++) {
        int same =
            isnan(bv[i]) ? isnan(out[i]) : (out[i] == bv[i] && !signbit(out[i]) == !signbit(bv[i]));
        CHECK(same, "BF16 0x%04x -> %.10g, expected %.10g", bf[i], out[i], bv[i]);
    }
    CHECK(st_read_f32_rows(st, ih, 3, 2, out, err, sizeof err) == 0 && out[0] == 65504.0f &&
              out[1] == hv[4],
          "F16 row read: %s", err);
    st_close(st);
}

/* A hostile file: header text (hbytes bytes, or strlen if 0) under declared length hlen
 * (-1: the header's own length), followed by `data` zero bytes. */
typedef struct {
    const char *label;
    const char *header;
    size_t hbytes;
    long long hlen;
    size_t data;
    const char *tensor; /* must be named in the message (NULL: none) */
    const char *expect; /* substring of the message */
} hostile;

#define T1(nm, dt, shape, b, e)                                                                    \
    "\"" nm "\":{\"dtype\":\"" dt "\",\"shape\":" shape ",\"data_offsets\":[" #b "," #e "]}"

static const hostile cases[] = {
    {"empty header", "", 0, -1, 0, NULL, "not valid JSON"},
    {"header length past the file", "{}", 0, 1000, 0, NULL,
     "header length 1000 runs past the end of the file"},
    {"header length above 100 MB", "{}", 0, 200000000LL, 0, NULL,
     "header length 200000000 exceeds the limit of 100000000 bytes"},
    {"truncated JSON", "{\"w\":{\"dtype\":\"F32\"", 0, -1, 0, NULL, "header is not valid JSON"},
    {"bytes after the object", "{} x", 0, -1, 0, NULL, "unexpected bytes after the object"},
    {"NUL byte in the header", "{\"a\0\":1}", 8, -1, 0, NULL, "NUL byte at header byte 3"},
    {"array header", "[1, 2]", 0, -1, 0, NULL, "header is [1,2], not a JSON object"},
    {"entry not an object", "{\"w\": 5}", 0, -1, 0, "w", "entry is 5, expected an object"},
    {"unknown dtype", "{" T1("w", "Q7", "[2]", 0, 8) "}", 0, -1, 8, "w", "unknown dtype 'Q7'"},
    {"dtype not a string", "{\"w\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", 0, -1, 4,
     "w", "dtype is 4, expected a string"},
    {"missing dtype", "{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 0, -1, 4, "w",
     "missing 'dtype'"},
    {"unknown key", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"foo\":1}}", 0,
     -1, 4, "w", "unknown key 'foo'"},
    {"repeated key",
     "{\"w\":{\"dtype\":\"F32\",\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[0,4]}}", 0, -1, 4,
     "w", "key 'dtype' appears twice"},
    {"shape product overflow", "{" T1("w", "F32", "[4294967296,4294967296,16]", 0, 8) "}", 0, -1, 8,
     "w", "overflows"},
    {"byte count overflow", "{" T1("w", "F64", "[1125899906842624,2048]", 0, 8) "}", 0, -1, 8, "w",
     "overflows"},
    {"negative dimension", "{" T1("w", "F32", "[-1]", 0, 4) "}", 0, -1, 4, "w",
     "dimension 0 is -1, expected an integer >= 0"},
    {"fractional dimension", "{" T1("w", "F32", "[2.5]", 0, 10) "}", 0, -1, 10, "w",
     "dimension 0 is 2.5"},
    {"too many dimensions", "{" T1("w", "F32", "[1,1,1,1,1,1,1,1,1]", 0, 4) "}", 0, -1, 4, "w",
     "expected an array of at most 8 integers"},
    {"offsets not matching the shape", "{" T1("w", "F32", "[2,3]", 0, 20) "}", 0, -1, 20, "w",
     "data_offsets [0, 20] hold 20 bytes, but shape [2,3] of F32 needs 24"},
    {"offsets past the buffer", "{" T1("w", "F32", "[6]", 0, 24) "}", 0, -1, 16, "w",
     "data_offsets [0, 24] run past the end of the data buffer (16 bytes)"},
    {"offsets beyond 2^53", "{" T1("w", "F32", "[1]", 0, 18014398509481984) "}", 0, -1, 4, "w",
     "expected [begin, end] with integers >= 0"},
    {"offsets not a pair", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 0, -1,
     4, "w", "expected [begin, end]"},
    {"begin after end", "{" T1("w", "F32", "[0]", 8, 4) "}", 0, -1, 8, "w", "begin > end"},
    {"overlapping tensors", "{" T1("a", "F32", "[4]", 0, 16) "," T1("b", "F32", "[4]", 8, 24) "}",
     0, -1, 24, "b", "overlap tensor 'a'"},
    {"a hole in the buffer", "{" T1("a", "F32", "[2]", 0, 8) "," T1("b", "F32", "[2]", 12, 20) "}",
     0, -1, 20, "b", "bytes [8, 12) of the data buffer before this tensor belong to no tensor"},
    {"unused bytes at the end", "{" T1("a", "F32", "[2]", 0, 8) "}", 0, -1, 16, NULL,
     "bytes [8, 16) at the end of the data buffer belong to no tensor"},
    {"data but no tensors", "{}", 0, -1, 8, NULL, "header lists no tensor"},
    {"name with a slash", "{" T1("model/w", "F32", "[1]", 0, 4) "}", 0, -1, 4, "model/w",
     "name contains '/'"},
    {"name with ..", "{" T1("a..b", "F32", "[1]", 0, 4) "}", 0, -1, 4, "a..b",
     "name contains '..'"},
    {"empty name", "{" T1("", "F32", "[1]", 0, 4) "}", 0, -1, 4, NULL, "empty tensor name"},
    {"name with a newline", "{" T1("a\\nb", "F32", "[1]", 0, 4) "}", 0, -1, 4, "a\\x0ab",
     "control character 0x0a"},
    {"duplicate names", "{" T1("w", "F32", "[1]", 0, 4) "," T1("w", "F32", "[1]", 4, 8) "}", 0, -1,
     8, "w", "duplicate tensor name"},
    {"metadata not an object", "{\"__metadata__\": [1]}", 0, -1, 0, NULL,
     "__metadata__ is [1], expected an object of strings"},
    {"metadata value not a string", "{\"__metadata__\": {\"k\": 5}}", 0, -1, 0, NULL,
     "__metadata__ key 'k' is 5, expected a string"},
    {"metadata twice", "{\"__metadata__\": {}, \"__metadata__\": {}}", 0, -1, 0, NULL,
     "__metadata__ appears twice"},
};

/* The narrowing of the exporter, against the exact widening: every finite half and
 * bfloat16 pattern comes back from its float; a value between two neighbours rounds to the
 * nearer, a tie to the even pattern (midpoints are exact in float32); 65520 and beyond
 * overflow to infinity, the largest half stays. */
static void test_narrow(void)
{
    int bad16 = 0, badbf = 0;
    for (uint32_t u = 0; u < 0x7c00; u++) { /* positive finite halves, then their negatives */
        for (int sg = 0; sg < 2; sg++) {
            uint16_t h = (uint16_t)(u | (sg ? 0x8000u : 0));
            float f = st_f16_to_f32(h);
            bad16 += st_f32_to_f16(f) != h;
            if (u + 1 < 0x7c00) {
                float g = st_f16_to_f32((uint16_t)(h + 1)), mid = (f + g) / 2;
                uint16_t even = (u & 1) ? (uint16_t)(h + 1) : h;
                bad16 += st_f32_to_f16(mid) != even;
                bad16 += st_f32_to_f16(nextafterf(mid, 0)) != h;
                bad16 += st_f32_to_f16(nextafterf(mid, sg ? -INFINITY : INFINITY)) != (uint16_t)(h + 1);
            }
        }
    }
    for (uint32_t u = 0; u < 0x7f80; u++) {
        uint16_t h = (uint16_t)u;
        float f = st_bf16_to_f32(h);
        badbf += st_f32_to_bf16(f) != h || st_f32_to_bf16(-f) != (uint16_t)(h | 0x8000u);
        if (u + 1 < 0x7f80) {
            float mid = f + (st_bf16_to_f32((uint16_t)(h + 1)) - f) / 2; /* no overflow */
            badbf += st_f32_to_bf16(mid) != ((u & 1) ? h + 1 : h);
        }
    }
    CHECK(bad16 == 0, "float -> half: %d of the exhaustive cases wrong", bad16);
    CHECK(badbf == 0, "float -> bfloat16: %d of the exhaustive cases wrong", badbf);
    CHECK(st_f32_to_f16(65504.0f) == 0x7bff && st_f32_to_f16(65520.0f) == 0x7c00 &&
              st_f32_to_f16(-1e30f) == 0xfc00 && (st_f32_to_f16(NAN) & 0x7fff) > 0x7c00,
          "half overflow or NaN");
    CHECK((st_f32_to_bf16(NAN) & 0x7fff) > 0x7f80 && st_f32_to_bf16(INFINITY) == 0x7f80,
          "bfloat16 infinity or NaN");
}

static void test_hostile(void)
{
    char path[1024], err[1024];
    int n = (int)(sizeof cases / sizeof cases[0]);
    for (int i = 0; i < n; i++) {
        const hostile *c = &cases[i];
        char fname[64];
        snprintf(fname, sizeof fname, "hostile%02d.safetensors", i);
        path_of(path, sizeof path, fname);
        size_t hb = c->hbytes ? c->hbytes : strlen(c->header);
        write_raw(path, c->hlen < 0 ? hb : (unsigned long long)c->hlen, c->header, hb, NULL,
                  c->data);
        err[0] = 0;
        st_file *st = st_open(path, err, sizeof err);
        CHECK(st == NULL, "hostile file '%s' (%s) was accepted", path, c->label);
        st_close(st);
        if (st) continue;
        char want_t[256] = "";
        if (c->tensor) snprintf(want_t, sizeof want_t, "tensor '%s': ", c->tensor);
        CHECK(strstr(err, path) && strstr(err, c->expect) && strstr(err, want_t) &&
                  !strchr(err, '\n'),
              "%s: message '%s' lacks the file, %s'%s'", c->label, err,
              c->tensor ? "the tensor name or " : "", c->expect);
        printf("refused %-32s %s\n", c->label, err);
    }

    /* shorter than the length field */
    path_of(path, sizeof path, "short.safetensors");
    FILE *f = fopen(path, "wb");
    fwrite("\x02\0\0\0\0", 1, 5, f);
    fclose(f);
    st_file *st = st_open(path, err, sizeof err);
    CHECK(!st && strstr(err, "file is 5 bytes, shorter than the 8-byte header length"),
          "short file: %s", st ? "accepted" : err);
    st_close(st);
    printf("refused %-32s %s\n", "5-byte file", err);

    /* a missing file */
    path_of(path, sizeof path, "does-not-exist.safetensors");
    st = st_open(path, err, sizeof err);
    CHECK(!st && strstr(err, "cannot open: No such file"), "missing file: %s",
          st ? "accepted" : err);
    st_close(st);

    /* a valid F64 tensor opens (the header is sound) but cannot be read as float */
    path_of(path, sizeof path, "f64.safetensors");
    const char *h64 = "{" T1("x", "F64", "[2]", 0, 16) "}";
    write_raw(path, strlen(h64), h64, strlen(h64), NULL, 16);
    st = st_open(path, err, sizeof err);
    CHECK(st != NULL, "a valid F64 file must open: %s", err);
    float out[2];
    if (st)
        CHECK(st_read_f32(st, 0, out, 2, err, sizeof err) != 0 &&
                  strstr(err, "tensor 'x': dtype F64 cannot be read as float"),
              "F64 read as float: %s", err);
    st_close(st);
    printf("refused %-32s %s\n", "F64 read as float", err);
}

int main(int argc, char **argv)
{
    dir = argc > 1 ? argv[1] : ".";
    if (mkdir(dir, 0755) && errno != EEXIST) {
        fprintf(stderr, "test_safetensors: cannot create '%s': %s\n", dir, strerror(errno));
        return 2;
    }
    test_round_trip();
    test_half();
    test_narrow();
    test_hostile();
    printf("test_safetensors: %d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
