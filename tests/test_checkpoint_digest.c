/* tests/test_checkpoint_digest.c — the tensor digests of checkpoint formats 1 and 2
 * (io/checkpoint_digest.c) against their definitions in checkpoint.h, written out here one
 * element at a time:
 * - a row digested whole (the vector path) equals the sum of its elements' terms, for
 *   every length 0..80 and some long ones, from aligned and unaligned starts, at flat
 *   indices near 0 and across the 2^32 wrap of the keys;
 * - a tensor tiled into blocks in any way sums to the whole-tensor digest;
 * - a piece of zeros (x NULL) digests as explicit zeros;
 * - format 2: flipping any one bit of any element changes the digest;
 * - the pass's non-finite scan sees an Inf or a NaN at any position (vector body and tail)
 *   and nothing in finite data, FLT_MAX included;
 * - the copying pass (ck_copy_scan: a load's copy out of the file's map) gives the same
 *   digest and largest |bits| as the definition and the digest-only pass, from sources at
 *   every byte alignment, copies every byte and writes nothing outside the piece.
 * Serial (rank 0 of test_checkpoint). */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "io/checkpoint.h"
#include "io/checkpoint_impl.h"
#include "test_checkpoint.h"

static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* The term of one element with float bits b at flat index n (checkpoint.h). */
static uint64_t term(int version, uint64_t n, uint32_t b)
{
    if (version == 1) return mix(mix(n) ^ b);
    uint32_t m = (uint32_t)n;
    uint32_t a = m * 0x9E3779B1u + 0x7F4A7C15u, k = m * 0x85EBCA76u + 0xC2B2AE3Du;
    return (uint64_t)(b ^ a) * (uint64_t)k;
}

static uint64_t ref_row(int version, const float *x, int64_t len, uint64_t n0)
{
    uint64_t d = 0;
    for (int64_t j = 0; j < len; j++) {
        uint32_t b = 0;
        if (x) memcpy(&b, &x[j], sizeof b);
        d += term(version, n0 + (uint64_t)j, b);
    }
    return d;
}

static void fill(float *x, int64_t n, uint32_t seed)
{
    for (int64_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = ((float)(seed >> 8) / 16777216.0f - 0.5f) * 3.0f;
    }
}

static void rows_cases(int version, float *x)
{
    const uint64_t starts[] = {0, 7, 4294967296ull - 37, 123456789012ull};
    const int64_t longs[] = {127, 128, 129, 1000, 4097};
    for (int s = 0; s < 4; s++)
        for (int off = 0; off < 2; off++) {
            for (int64_t len = 0; len <= 85; len++) {
                uint64_t got = ckpt_digest_piece(version, x + off, 1, len, len, 0, (int64_t)starts[s],
                                                 (int64_t)starts[s] + len + 1);
                CHECK(got == ref_row(version, x + off, len, starts[s]),
                      "format %d: row of %lld at %llu (offset %d) differs from its terms", version,
                      (long long)len, (unsigned long long)starts[s], off);
            }
            for (int i = 0; i < 5; i++) {
                int64_t len = longs[i];
                uint64_t got = ckpt_digest_piece(version, x + off, 1, len, len, 0, (int64_t)starts[s],
                                                 (int64_t)starts[s] + len);
                CHECK(got == ref_row(version, x + off, len, starts[s]),
                      "format %d: row of %lld at %llu (offset %d) differs from its terms", version,
                      (long long)len, (unsigned long long)starts[s], off);
            }
        }
}

/* A rows x cols tensor as one piece, and tiled into blocks of br x bc (ragged edges). */
static void tiling_cases(int version, const float *x)
{
    const int64_t rows = 37, cols = 301;
    uint64_t whole = ckpt_digest_piece(version, x, rows, cols, cols, 0, 0, cols), ref = 0;
    for (int64_t i = 0; i < rows; i++) ref += ref_row(version, x + i * cols, cols, (uint64_t)(i * cols));
    CHECK(whole == ref, "format %d: a %lldx%lld tensor differs from its terms", version,
          (long long)rows, (long long)cols);
    const int64_t br[] = {1, 5, 37}, bc[] = {1, 33, 150, 301};
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 4; b++) {
            uint64_t sum = 0;
            for (int64_t r0 = 0; r0 < rows; r0 += br[a])
                for (int64_t c0 = 0; c0 < cols; c0 += bc[b]) {
                    int64_t vr = r0 + br[a] < rows ? br[a] : rows - r0;
                    int64_t vc = c0 + bc[b] < cols ? bc[b] : cols - c0;
                    sum += ckpt_digest_piece(version, x + r0 * cols + c0, vr, vc, cols, r0, c0, cols);
                }
            CHECK(sum == whole, "format %d: blocks of %lldx%lld do not sum to the whole", version,
                  (long long)br[a], (long long)bc[b]);
        }
    float *z = calloc((size_t)(rows * cols), sizeof(float));
    CHECK(z && ckpt_digest_piece(version, NULL, rows, cols, cols, 0, 0, cols) ==
                   ckpt_digest_piece(version, z, rows, cols, cols, 0, 0, cols),
          "format %d: a NULL piece is not digested as zeros", version);
    free(z);
}

/* Format 2: any one bit of an element, in the vector body or the tail, changes it. */
static void bitflip_cases(float *x)
{
    const int64_t len = 100, at[] = {0, 17, 63, 64, 99};
    uint64_t base = ckpt_digest_piece(2, x, 1, len, len, 0, 5, len + 5);
    int same = 0;
    for (int i = 0; i < 5; i++)
        for (int bit = 0; bit < 32; bit++) {
            uint32_t b;
            memcpy(&b, &x[at[i]], sizeof b);
            b ^= 1u << bit;
            memcpy(&x[at[i]], &b, sizeof b);
            same += ckpt_digest_piece(2, x, 1, len, len, 0, 5, len + 5) == base;
            b ^= 1u << bit;
            memcpy(&x[at[i]], &b, sizeof b);
        }
    CHECK(same == 0, "format 2: %d of 160 one-bit changes left the digest as it was", same);
}

static void nonfinite_cases(int version, float *x)
{
    const int64_t len = 77; /* two vector steps of either width and a tail */
    uint32_t mx = 0;
    x[3] = FLT_MAX;
    x[40] = -FLT_MAX;
    ck_digest_scan(version, x, 1, len, len, 0, 0, len, &mx);
    CHECK(mx < CK_NONFINITE_BITS, "format %d: finite data (FLT_MAX) scanned as non-finite", version);
    const float bad[] = {INFINITY, -INFINITY, NAN};
    int missed = 0;
    for (int64_t at = 0; at < len; at++)
        for (int k = 0; k < 3; k++) {
            float keep = x[at];
            x[at] = bad[k];
            mx = 0;
            ck_digest_scan(version, x, 1, len, len, 0, 0, len, &mx);
            missed += mx < CK_NONFINITE_BITS;
            x[at] = keep;
        }
    CHECK(missed == 0, "format %d: %d of %d planted Inf/NaN not seen", version, missed, 3 * 77);
}

/* ck_copy_scan from src (bytes at offset `shift` of a buffer, any alignment) of a block of
 * rows x len floats with source stride lds, into dst of stride len + 3 (3 guard floats per
 * row, which must stay untouched). 0 when everything agrees. */
static int copy_block(int version, const float *x, int shift, int64_t rows, int64_t len,
                      int64_t lds, uint64_t n0, unsigned char *raw, float *dst)
{
    const int64_t ldd = len + 3;
    memcpy(raw + shift, x, sizeof(float) * (size_t)((rows - 1) * lds + len));
    for (int64_t i = 0; i < rows * ldd; i++) dst[i] = -7.0f;
    uint32_t mx_copy = 0, mx_scan = 0;
    /* gcols = lds: the block's rows are rows of a tensor lds wide, starting at n0 */
    uint64_t got = ck_copy_scan(version, dst, ldd, raw + shift, lds, rows, len, 0, (int64_t)n0,
                                lds, &mx_copy);
    uint64_t scan = ck_digest_scan(version, x, rows, len, lds, 0, (int64_t)n0, lds, &mx_scan);
    uint64_t want = 0;
    int bad = 0;
    for (int64_t i = 0; i < rows; i++) {
        want += ref_row(version, x + i * lds, len, n0 + (uint64_t)(i * lds));
        bad += memcmp(dst + i * ldd, x + i * lds, sizeof(float) * (size_t)len) != 0;
        for (int64_t g = len; g < ldd; g++) bad += dst[i * ldd + g] != -7.0f;
    }
    return bad + (got != want) + (got != scan) + (mx_copy != mx_scan);
}

static void copy_cases(int version, float *x)
{
    const int64_t lens[] = {127, 128, 129, 1000, 4097};
    unsigned char *raw = malloc(sizeof(float) * 37 * 301 + 8);
    float *dst = malloc(sizeof(float) * 37 * 304);
    if (!raw || !dst) {
        CHECK(0, "out of memory");
        free(raw);
        free(dst);
        return;
    }
    int bad = 0, n = 0;
    for (int shift = 0; shift < 4; shift++) {
        for (int64_t len = 0; len <= 85; len++, n++)
            bad += copy_block(version, x + 3, shift, 1, len, len, 5, raw, dst) != 0;
        for (int k = 0; k < 5; k++, n++)
            bad += copy_block(version, x, shift, 1, lens[k], lens[k], 0xfffffff0ull, raw, dst) != 0;
        for (int64_t len = 29; len <= 35; len++, n++) /* a block: 37 rows of a 301-wide tensor */
            bad += copy_block(version, x + 1, shift, 36, len, 301, 17, raw, dst) != 0;
    }
    CHECK(bad == 0, "format %d: %d of %d copying passes differ from the definition, the digest-only "
                    "pass or the source bytes",
          version, bad, n);
    /* an Inf or a NaN is seen by the copying pass too, at any position of body and tail */
    int missed = 0;
    const float bad_vals[] = {INFINITY, -INFINITY, NAN};
    for (int64_t at = 0; at < 77; at++)
        for (int k = 0; k < 3; k++) {
            float keep = x[at];
            x[at] = bad_vals[k];
            uint32_t mx = 0;
            memcpy(raw + 1, x, sizeof(float) * 77);
            ck_copy_scan(version, dst, 77, raw + 1, 77, 1, 77, 0, 0, 77, &mx);
            missed += mx < CK_NONFINITE_BITS;
            x[at] = keep;
        }
    CHECK(missed == 0, "format %d: %d of %d planted Inf/NaN not seen by the copying pass", version,
          missed, 3 * 77);
    free(raw);
    free(dst);
}

void digest_cases(void)
{
    float *x = malloc(sizeof(float) * 37 * 301);
    if (!x) {
        CHECK(0, "out of memory");
        return;
    }
    for (int version = 1; version <= CKPT_FORMAT_VERSION; version++) {
        fill(x, 37 * 301, 11u * (uint32_t)version);
        rows_cases(version, x);
        tiling_cases(version, x);
        nonfinite_cases(version, x);
        copy_cases(version, x);
    }
    fill(x, 37 * 301, 5);
    bitflip_cases(x);
    free(x);
}
