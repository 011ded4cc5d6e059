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
 *   and nothing in finite data, FLT_MAX included.
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
    }
    fill(x, 37 * 301, 5);
    bitflip_cases(x);
    free(x);
}
