// Quantised weights (src/llm/quant.c): every block format's dequantisation
// against an independent loop-by-loop decoder written from the format
// description; activation quantisation on hand-computed blocks; the integer
// dot products (scalar and SIMD) and both matrix-product paths against plain
// double sums over the dequantised values; the frozen-weight backward; and
// conformance with llama.cpp's logits on every model of testvectors/quant
// (the exact path against llama.cpp on the F32 dequantisation, the
// llama.cpp-style path against llama.cpp on the quantised file).
#include "test.h"

#include <cblas.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collm/error.h"
#include "collm/gguf.h"
#include "collm/model.h"
#include "collm/threadpool.h"
#include "core/rng.h"
#include "llm/llm_train.h"
#include "llm/lora_internal.h"
#include "llm/model_internal.h"
#include "llm/quant.h"

static const collm_ggml_type WEIGHT_TYPES[] = {
    COLLM_GGML_TYPE_F32,  COLLM_GGML_TYPE_F16,  COLLM_GGML_TYPE_BF16, COLLM_GGML_TYPE_Q4_0, COLLM_GGML_TYPE_Q4_1,
    COLLM_GGML_TYPE_Q5_0, COLLM_GGML_TYPE_Q5_1, COLLM_GGML_TYPE_Q8_0, COLLM_GGML_TYPE_Q2_K, COLLM_GGML_TYPE_Q3_K,
    COLLM_GGML_TYPE_Q4_K, COLLM_GGML_TYPE_Q5_K, COLLM_GGML_TYPE_Q6_K,
};
#define N_WEIGHT_TYPES (int)(sizeof WEIGHT_TYPES / sizeof WEIGHT_TYPES[0])

static float h(const uint8_t *p) {
    uint16_t v;
    memcpy(&v, p, 2);
    return collm_f16_to_f32(v);
}

static void put_h(uint8_t *p, float f) {
    uint16_t v = collm_f32_to_f16(f);
    memcpy(p, &v, 2);
}

// Random bytes with finite half-precision scales at the type's scale fields.
static void random_row(collm_ggml_type t, uint8_t *row, int64_t n, collm_rng *rng) {
    int64_t blck;
    size_t bytes;
    collm_quant_block(t, &blck, &bytes);
    size_t total = (size_t)(n / blck) * bytes;
    for (size_t i = 0; i < total; i++) row[i] = (uint8_t)(collm_rng_next(rng) >> 24);
    if (t == COLLM_GGML_TYPE_F32) {
        for (int64_t i = 0; i < n; i++) ((float *)row)[i] = (float)collm_rng_normal(rng);
        return;
    }
    if (t == COLLM_GGML_TYPE_F16 || t == COLLM_GGML_TYPE_BF16) {
        for (int64_t i = 0; i < n; i++) {
            uint16_t v = t == COLLM_GGML_TYPE_F16 ? collm_f32_to_f16((float)collm_rng_normal(rng))
                                                  : collm_f32_to_bf16((float)collm_rng_normal(rng));
            memcpy(row + 2 * i, &v, 2);
        }
        return;
    }
    int f16_at[2] = {-1, -1};
    switch (t) {
    case COLLM_GGML_TYPE_Q4_1: case COLLM_GGML_TYPE_Q5_1: case COLLM_GGML_TYPE_Q4_K: case COLLM_GGML_TYPE_Q5_K:
        f16_at[0] = 0;
        f16_at[1] = 2;
        break;
    case COLLM_GGML_TYPE_Q2_K: f16_at[0] = 80; f16_at[1] = 82; break;
    case COLLM_GGML_TYPE_Q3_K: f16_at[0] = 108; break;
    case COLLM_GGML_TYPE_Q6_K: f16_at[0] = 208; break;
    default: f16_at[0] = 0; break;
    }
    for (int64_t b = 0; b < n / blck; b++)
        for (int k = 0; k < 2; k++)
            if (f16_at[k] >= 0) put_h(row + (size_t)b * bytes + f16_at[k], (float)(0.01 * collm_rng_normal(rng)));
}

// --- independent decoders, one block, written from the format description ----

static void k4_scale_min(int j, const uint8_t *q, uint8_t *d, uint8_t *m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4);
    }
}

static void ref_block(collm_ggml_type t, const uint8_t *x, float *y) {
    switch (t) {
    case COLLM_GGML_TYPE_Q4_0:
        for (int j = 0; j < 16; j++) {
            y[j] = (float)((x[2 + j] & 0x0F) - 8) * h(x);
            y[j + 16] = (float)((x[2 + j] >> 4) - 8) * h(x);
        }
        break;
    case COLLM_GGML_TYPE_Q4_1:
        for (int j = 0; j < 16; j++) {
            y[j] = (float)(x[4 + j] & 0x0F) * h(x) + h(x + 2);
            y[j + 16] = (float)(x[4 + j] >> 4) * h(x) + h(x + 2);
        }
        break;
    case COLLM_GGML_TYPE_Q5_0: case COLLM_GGML_TYPE_Q5_1: {
        int one = t == COLLM_GGML_TYPE_Q5_1;
        uint32_t qh;
        memcpy(&qh, x + (one ? 4 : 2), 4);
        const uint8_t *qs = x + (one ? 8 : 6);
        for (int j = 0; j < 16; j++) {
            uint8_t xh0 = (uint8_t)(((qh >> j) << 4) & 0x10), xh1 = (uint8_t)((qh >> (j + 12)) & 0x10);
            int x0 = (qs[j] & 0x0F) | xh0, x1 = (qs[j] >> 4) | xh1;
            if (one) {
                y[j] = (float)x0 * h(x) + h(x + 2);
                y[j + 16] = (float)x1 * h(x) + h(x + 2);
            } else {
                y[j] = (float)(x0 - 16) * h(x);
                y[j + 16] = (float)(x1 - 16) * h(x);
            }
        }
        break;
    }
    case COLLM_GGML_TYPE_Q8_0:
        for (int j = 0; j < 32; j++) y[j] = (float)(int8_t)x[2 + j] * h(x);
        break;
    case COLLM_GGML_TYPE_Q2_K: {
        const uint8_t *sc = x, *q = x + 16;
        float d = h(x + 80), min = h(x + 82);
        int is = 0;
        for (int n = 0; n < 256; n += 128) {
            for (int shift = 0; shift < 8; shift += 2) {
                for (int half = 0; half < 2; half++) {
                    uint8_t s = sc[is++];
                    float dl = d * (float)(s & 0xF), ml = min * (float)(s >> 4);
                    for (int l = 0; l < 16; l++) *y++ = dl * (float)((q[l + 16 * half] >> shift) & 3) - ml;
                }
            }
            q += 32;
        }
        break;
    }
    case COLLM_GGML_TYPE_Q3_K: {
        // the 12 scale bytes unpacked as 4 little-endian words with masks
        uint32_t aux[4];
        memcpy(aux, x + 96, 12);
        uint32_t tmp = aux[2];
        aux[2] = ((aux[0] >> 4) & 0x0f0f0f0f) | (((tmp >> 4) & 0x03030303) << 4);
        aux[3] = ((aux[1] >> 4) & 0x0f0f0f0f) | (((tmp >> 6) & 0x03030303) << 4);
        aux[0] = (aux[0] & 0x0f0f0f0f) | (((tmp >> 0) & 0x03030303) << 4);
        aux[1] = (aux[1] & 0x0f0f0f0f) | (((tmp >> 2) & 0x03030303) << 4);
        int8_t scales[16];
        memcpy(scales, aux, 16);
        const uint8_t *hm = x, *q = x + 32;
        float d = h(x + 108);
        int is = 0;
        uint8_t m = 1;
        for (int n = 0; n < 256; n += 128) {
            for (int shift = 0; shift < 8; shift += 2) {
                for (int half = 0; half < 2; half++) {
                    float dl = d * (float)(scales[is++] - 32);
                    for (int l = 16 * half; l < 16 * half + 16; l++)
                        *y++ = dl * (float)((int8_t)((q[l] >> shift) & 3) - ((hm[l] & m) ? 0 : 4));
                }
                m <<= 1;
            }
            q += 32;
        }
        break;
    }
    case COLLM_GGML_TYPE_Q4_K: case COLLM_GGML_TYPE_Q5_K: {
        int five = t == COLLM_GGML_TYPE_Q5_K;
        const uint8_t *ql = x + (five ? 48 : 16), *qh = x + 16;
        float d = h(x), min = h(x + 2);
        uint8_t u1 = 1, u2 = 2;
        for (int j = 0, is = 0; j < 256; j += 64, is += 2) {
            uint8_t sc, m;
            k4_scale_min(is, x + 4, &sc, &m);
            float d1 = d * sc, m1 = min * m;
            k4_scale_min(is + 1, x + 4, &sc, &m);
            float d2 = d * sc, m2 = min * m;
            for (int l = 0; l < 32; l++) *y++ = d1 * (float)((ql[l] & 0xF) + (five && (qh[l] & u1) ? 16 : 0)) - m1;
            for (int l = 0; l < 32; l++) *y++ = d2 * (float)((ql[l] >> 4) + (five && (qh[l] & u2) ? 16 : 0)) - m2;
            ql += 32;
            u1 <<= 2;
            u2 <<= 2;
        }
        break;
    }
    case COLLM_GGML_TYPE_Q6_K: {
        const uint8_t *ql = x, *qh = x + 128;
        const int8_t *sc = (const int8_t *)(x + 192);
        float d = h(x + 208);
        for (int n = 0; n < 256; n += 128) {
            for (int l = 0; l < 32; l++) {
                int is = l / 16;
                int8_t q1 = (int8_t)((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                int8_t q2 = (int8_t)((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                int8_t q3 = (int8_t)((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                int8_t q4 = (int8_t)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                y[l] = d * sc[is] * q1;
                y[l + 32] = d * sc[is + 2] * q2;
                y[l + 64] = d * sc[is + 4] * q3;
                y[l + 96] = d * sc[is + 6] * q4;
            }
            y += 128;
            ql += 64;
            qh += 32;
            sc += 8;
        }
        break;
    }
    default: break;
    }
}

// The kernel levels this CPU has (0 scalar, 1 AVX2, 2 AVX-512 VNNI): every
// SIMD test runs at each of them against the scalar reference.
static int isa_levels(void) {
    int n = 1;
    while (n <= 2 && strcmp(collm_quant_set_isa(n), collm_quant_set_isa(n - 1)) != 0) n++;
    collm_quant_set_isa(-1);
    return n;
}

static void test_dequant(void) {
    collm_rng rng;
    collm_rng_seed(&rng, 11);
    uint8_t row[4 * 292];
    float got[1024], want[1024];
    for (int i = 3; i < N_WEIGHT_TYPES; i++) { // the block types (F32/F16/BF16 are covered by test_gguf)
        collm_ggml_type t = WEIGHT_TYPES[i];
        int64_t blck;
        size_t bytes;
        CHECK(collm_quant_block(t, &blck, &bytes));
        int64_t n = 4 * blck;
        CHECK(collm_quant_row_bytes(t, n) == 4 * bytes && collm_quant_row_bytes(t, n + 1) == 0);
        random_row(t, row, n, &rng);
        collm_quant_dequant_row(t, row, got, n);
        for (int b = 0; b < 4; b++) ref_block(t, row + b * bytes, want + b * blck);
        int same = 1;
        for (int64_t j = 0; j < n; j++) same &= got[j] == want[j]; // bit for bit (±0 aside)
        CHECK_MSG(same, "dequant %s differs from the reference decoder", collm_ggml_type_name(t));
        // the SIMD dequantiser (the sgemm path's tiles) gives the same floats at every level the CPU has
        for (int l = 0; l < isa_levels(); l++) {
            const char *isa = collm_quant_set_isa(l);
            float fast[1024];
            collm_quant_dequant(t, row, fast, n);
            same = 1;
            for (int64_t j = 0; j < n; j++) same &= fast[j] == got[j];
            CHECK_MSG(same, "dequant %s (%s) differs from the reference", collm_ggml_type_name(t), isa);
        }
        collm_quant_set_isa(-1);
    }
    // F16 rows (odd length: the scalar tail) through the SIMD converter
    uint16_t h16[37];
    float f16got[37];
    for (int j = 0; j < 37; j++) h16[j] = collm_f32_to_f16((float)collm_rng_normal(&rng));
    collm_quant_dequant(COLLM_GGML_TYPE_F16, h16, f16got, 37);
    int same16 = 1;
    for (int j = 0; j < 37; j++) same16 &= f16got[j] == collm_f16_to_f32(h16[j]);
    CHECK(same16);
    // hand-made Q4_0 and Q6_K blocks
    uint8_t q40[18] = {0};
    put_h(q40, 0.5f);
    q40[2] = 0x9F; // element 0: 15 - 8 = 7 -> 3.5; element 16: 9 - 8 = 1 -> 0.5
    collm_quant_dequant_row(COLLM_GGML_TYPE_Q4_0, q40, got, 32);
    CHECK(got[0] == 3.5f && got[16] == 0.5f && got[1] == -4.0f);
    uint8_t q6[210] = {0};
    put_h(q6 + 208, 0.25f);
    q6[192] = 2;       // scale of group 0 (elements 0..15)
    q6[0] = 0x05;      // element 0 low 4 bits 5; element 64 low 4 bits 0
    q6[128] = 0x03;    // element 0 high 2 bits 3 -> q = 5 | 48 = 53 - 32 = 21
    collm_quant_dequant_row(COLLM_GGML_TYPE_Q6_K, q6, got, 256);
    CHECK(got[0] == 0.25f * 2 * 21 && got[1] == 0.25f * 2 * -32 && got[16] == 0.0f);
    // unsupported types: no geometry, not a weight type
    CHECK(!collm_quant_block((collm_ggml_type)16, NULL, NULL) && !collm_quant_weight_type_ok((collm_ggml_type)16));
    CHECK(!collm_quant_weight_type_ok(COLLM_GGML_TYPE_Q8_K) && !collm_quant_weight_type_ok(COLLM_GGML_TYPE_I32));
}

static void test_activation_quant(void) {
    float x[256];
    uint8_t q[292];
    for (int j = 0; j < 32; j++) x[j] = (float)(j - 16); // amax 16: id = 127/16
    collm_quant_act_row(COLLM_GGML_TYPE_Q8_0, x, q, 32);
    const int8_t *qs = (const int8_t *)(q + 2);
    CHECK(h(q) == collm_f16_to_f32(collm_f32_to_f16(16.0f / 127.0f)));
    CHECK(qs[0] == -127 && qs[16] == 0 && qs[17] == 8 && qs[18] == 16 && qs[31] == 119); // 15·7.9375 = 119.06
    collm_quant_act_row(COLLM_GGML_TYPE_Q8_1, x, q, 32);
    int sum = 0;
    for (int j = 0; j < 32; j++) sum += ((const int8_t *)(q + 4))[j];
    CHECK(((const int8_t *)(q + 4))[0] == -127 && h(q + 2) == collm_f16_to_f32(collm_f32_to_f16(16.0f / 127.0f * sum)));
    // Q8_K: the signed extreme (155 at j = 255) maps to -127; d = -155/127
    for (int j = 0; j < 256; j++) x[j] = (float)(j - 100);
    collm_quant_act_row(COLLM_GGML_TYPE_Q8_K, x, q, 256);
    float d;
    memcpy(&d, q, 4);
    qs = (const int8_t *)(q + 4);
    CHECK_NEAR(d, -155.0 / 127.0, 1e-6);
    CHECK(qs[255] == -127 && qs[100] == 0 && qs[0] == 82); // -100 · -127/155 = 81.9
    int16_t bs[16];
    memcpy(bs, q + 4 + 256, sizeof bs);
    int s0 = 0;
    for (int j = 0; j < 16; j++) s0 += qs[j];
    CHECK(bs[0] == s0);
    // the SIMD quantisers: the reference's bytes at every level (ties to even, the signed
    // extreme first in the block, a block of zeros), on long rows of mixed scales
    {
        collm_rng rng;
        collm_rng_seed(&rng, 15);
        static float xs[1024];
        static uint8_t qa[2048], qb[2048]; // the longest: 1024 F16 values
        for (int rep = 0; rep < 6; rep++) {
            for (int j = 0; j < 1024; j++)
                xs[j] = rep == 0 ? (float)(j % 32 - 16) : (float)collm_rng_normal(&rng) * (j % 300 < 20 ? 30.0f : 1.0f);
            if (rep == 1) xs[300] = -500.0f, xs[301] = 500.0f; // equal magnitudes: the first one sets the sign
            if (rep == 2) memset(xs + 256, 0, 256 * sizeof(float));
            for (int l = 0; l < isa_levels(); l++) {
                const char *isa = collm_quant_set_isa(l);
                const collm_ggml_type vts[3] = {COLLM_GGML_TYPE_Q8_0, COLLM_GGML_TYPE_Q8_K, COLLM_GGML_TYPE_F16};
                for (int v = 0; v < 3; v++) {
                    size_t nb = collm_quant_row_bytes(vts[v], 1024);
                    collm_quant_act_row(vts[v], xs, qa, 1024);
                    collm_quant_act_row_ref(vts[v], xs, qb, 1024);
                    CHECK_MSG(memcmp(qa, qb, nb) == 0, "%s activations (%s) differ from the reference, input %d",
                              collm_ggml_type_name(vts[v]), isa, rep);
                }
            }
            collm_quant_set_isa(-1);
        }
    }
    // a zero block stays zero
    memset(x, 0, sizeof x);
    collm_quant_act_row(COLLM_GGML_TYPE_Q8_K, x, q, 256);
    memcpy(&d, q, 4);
    CHECK(d == 0.0f && ((const int8_t *)(q + 4))[7] == 0);
}

// Σ deq(w)·deq(x) in double: the value the integer formulation must reproduce.
static double naive_dot(collm_ggml_type wt, const void *w, const void *xq, int64_t n, float *tw, float *tx) {
    collm_quant_dequant_row(wt, w, tw, n);
    collm_quant_dequant_row(collm_quant_vec_type(wt), xq, tx, n);
    double s = 0;
    for (int64_t j = 0; j < n; j++) s += (double)tw[j] * tx[j];
    return s;
}

static void test_dots(void) {
    collm_rng rng;
    collm_rng_seed(&rng, 12);
    enum { N = 512 };
    static uint8_t w[N * 4], xq[N * 4];
    static float x[N], tw[N], tx[N];
    printf("quant dot kernels: %s\n", collm_quant_isa());
    printf("quant kernel levels tested: %d\n", isa_levels());
    for (int l = 1; l < isa_levels(); l++) {
        const char *isa = collm_quant_set_isa(l);
        for (int i = 0; i < N_WEIGHT_TYPES; i++) {
            collm_ggml_type t = WEIGHT_TYPES[i];
            double worst_ref = 0, worst_simd = 0;
            for (int rep = 0; rep < 20; rep++) {
                random_row(t, w, N, &rng);
                for (int j = 0; j < N; j++) x[j] = (float)collm_rng_normal(&rng) * (rep % 3 == 0 ? 100.0f : 1.0f);
                collm_quant_act_row(collm_quant_vec_type(t), x, xq, N);
                double want = naive_dot(t, w, xq, N, tw, tx), scale = 0;
                for (int j = 0; j < N; j++) scale += fabs((double)tw[j] * tx[j]);
                double ref = collm_quant_dot_ref(t, w, xq, N), simd = collm_quant_dot(t, w, xq, N);
                worst_ref = fmax(worst_ref, fabs(ref - want) / (scale + 1e-30));
                worst_simd = fmax(worst_simd, fabs(simd - ref) / (scale + 1e-30));
            }
            // Q4_1 / Q5_1: llama.cpp keeps the activation block sum s of m·s in F16
            // (Q8_1), so those two carry its rounding (2^-11 of one block's term)
            const int q81 = collm_quant_vec_type(t) == COLLM_GGML_TYPE_Q8_1;
            CHECK_MSG(worst_ref < (q81 ? 5e-5 : 1e-6), "%s: reference dot off the dequantised sum by %g (relative)",
                      collm_ggml_type_name(t), worst_ref);
            CHECK_MSG(worst_simd < 1e-6, "%s: %s dot off the reference by %g (relative)", collm_ggml_type_name(t), isa,
                      worst_simd);
        }
    }
    collm_quant_set_isa(-1);
}

// The tiled kernel (AVX-512 VNNI, where the CPU has it) against the scalar
// reference dot of every (row, activation) pair: a partial last row group
// (37 rows = 16 + 16 + 5), 11 activation rows (a step of 8, then 3 of 1),
// activations of both signs and of very different block scales.
static void test_tiles(void) {
    collm_rng rng;
    collm_rng_seed(&rng, 14);
    enum { K = 512, R = 37, T = 11, LDY = R + 2 };
    static uint8_t w[R * K * 2], xq[T * K * 2];
    static float x[T * K], y[T * LDY];
    const collm_ggml_type types[] = {COLLM_GGML_TYPE_Q8_0, COLLM_GGML_TYPE_Q4_0, COLLM_GGML_TYPE_Q5_0,
                                     COLLM_GGML_TYPE_Q4_1, COLLM_GGML_TYPE_Q5_1, COLLM_GGML_TYPE_Q4_K,
                                     COLLM_GGML_TYPE_Q5_K, COLLM_GGML_TYPE_Q6_K};
    int ran = 0;
    for (int i = 0; i < 8; i++) {
        collm_ggml_type t = types[i], vt = collm_quant_vec_type(t);
        if (!collm_qtile_ok(t)) continue;
        ran++;
        const size_t rb = collm_quant_row_bytes(t, K), xrow = collm_quant_row_bytes(vt, K);
        for (int r = 0; r < R; r++) random_row(t, w + rb * r, K, &rng);
        for (int j = 0; j < T * K; j++) x[j] = (float)collm_rng_normal(&rng) * (j % 97 < 10 ? 50.0f : 1.0f);
        for (int r = 0; r < T; r++) collm_quant_act_row(vt, x + r * K, xq + xrow * r, K);
        for (int j = 0; j < T * LDY; j++) y[j] = 7.0f;
        collm_qmat W = {t, w, R, K, rb};
        collm_qtile_act a;
        CHECK(collm_qtile_act_alloc(&a, t, T, K) == COLLM_OK);
        collm_qtile_act_fill(&a, t, xq, xrow, 0, 4); // in two pieces, as the pool splits it
        collm_qtile_act_fill(&a, t, xq, xrow, 4, T);
        CHECK(collm_qtile_gemm(&W, 0, 1, &a, y, LDY) == COLLM_OK && collm_qtile_gemm(&W, 1, 3, &a, y, LDY) == COLLM_OK);
        collm_qtile_act_free(&a);
        double worst = 0;
        for (int tt = 0; tt < T; tt++)
            for (int r = 0; r < R; r++) {
                double ref = collm_quant_dot_ref(t, w + rb * r, xq + xrow * tt, K);
                float tw[K], tx[K];
                collm_quant_dequant_row(t, w + rb * r, tw, K);
                collm_quant_dequant_row(vt, xq + xrow * tt, tx, K);
                double scale = 0;
                for (int j = 0; j < K; j++) scale += fabs((double)tw[j] * tx[j]);
                worst = fmax(worst, fabs(y[tt * LDY + r] - ref) / (scale + 1e-30));
            }
        CHECK_MSG(worst < 1e-6, "%s tiled kernel off the reference by %g (relative)", collm_ggml_type_name(t), worst);
        CHECK(y[R] == 7.0f && y[(T - 1) * LDY + R + 1] == 7.0f); // columns past the matrix untouched
    }
    // F16: K = 96 (16 rows interleaved by pairs: 37 rows = 16 + 16 + a zero-padded 5, split
    // between two calls at row 16; 11 activation rows = 8 + 3 single) and K = 100 (not a
    // multiple of 8: 4 rows x 6 activation rows, masked tail)
    if (collm_qtile_f16_ok()) {
        ran++;
        enum { KMAX = 100 };
        static uint16_t wh[R * KMAX], xh16[KMAX];
        static float xh[T * KMAX];
        for (int KH = 96; KH <= KMAX; KH += 4) {
            for (int j = 0; j < R * KH; j++) wh[j] = collm_f32_to_f16((float)collm_rng_normal(&rng));
            for (int j = 0; j < T * KH; j++) xh[j] = collm_f16_to_f32(collm_f32_to_f16((float)collm_rng_normal(&rng)));
            for (int j = 0; j < T * LDY; j++) y[j] = 7.0f;
            collm_qmat W = {COLLM_GGML_TYPE_F16, wh, R, KH, 2 * (size_t)KH};
            collm_qtile_f16(&W, 0, 16, xh, T, y, LDY); // in two pieces, as the pool splits it
            collm_qtile_f16(&W, 16, R, xh, T, y, LDY);
            double worst = 0;
            for (int tt = 0; tt < T; tt++) {
                collm_quant_act_row_ref(COLLM_GGML_TYPE_F16, xh + tt * KH, xh16, KH);
                for (int r = 0; r < R; r++) {
                    double ref = collm_quant_dot_ref(COLLM_GGML_TYPE_F16, wh + r * KH, xh16, KH), scale = 0;
                    for (int j = 0; j < KH; j++) scale += fabs((double)collm_f16_to_f32(wh[r * KH + j]) * xh[tt * KH + j]);
                    worst = fmax(worst, fabs(y[tt * LDY + r] - ref) / (scale + 1e-30));
                }
            }
            CHECK_MSG(worst < 1e-6, "F16 kernel (K = %d) off the reference by %g (relative)", KH, worst);
            CHECK(y[R] == 7.0f && y[(T - 1) * LDY + R + 1] == 7.0f);
        }
    }
    printf("tiled kernel: %d types (%s)\n", ran, collm_quant_isa());
}

// Both matrix-product paths and the backward against double loops over the
// dequantised weights: two parts (Q4_K and Q6_K rows stacked, as a Q4_K_M
// q|k|v), an F32 part, on a 2-thread pool.
static void test_qmm(void) {
    collm_rng rng;
    collm_rng_seed(&rng, 13);
    collm_pool *pool = collm_pool_create(2);
    enum { K = 512, T = 5, R0 = 24, R1 = 8, R2 = 4, O = R0 + R1 + R2 };
    const collm_ggml_type types[3] = {COLLM_GGML_TYPE_Q4_K, COLLM_GGML_TYPE_Q6_K, COLLM_GGML_TYPE_F32};
    const int rows[3] = {R0, R1, R2};
    uint8_t *data[3];
    collm_qmat parts[3];
    static float wf[O * K], x[T * K], y[T * (O + 3)], dy[T * O], dx[T * K], dx0[T * K], xdeq[K];
    static uint8_t xq[T * K * 2];
    for (int k = 0, r0 = 0; k < 3; r0 += rows[k], k++) {
        size_t rb = collm_quant_row_bytes(types[k], K);
        data[k] = malloc(rb * (size_t)rows[k]);
        for (int r = 0; r < rows[k]; r++) random_row(types[k], data[k] + rb * (size_t)r, K, &rng);
        parts[k] = (collm_qmat){types[k], data[k], rows[k], K, rb};
        for (int r = 0; r < rows[k]; r++) collm_qmat_row(&parts[k], r, wf + (size_t)(r0 + r) * K);
    }
    for (int i = 0; i < T * K; i++) x[i] = (float)collm_rng_normal(&rng);
    const int ldy = O + 3; // a column block of a wider output
    // every path at every kernel level, then the sgemm path with BLAS on one thread
    // (each pool thread dequantises and multiplies its own slab of rows)
    const int blas_threads = openblas_get_num_threads();
    for (int lp = 0; lp <= 2 * isa_levels(); lp++) {
        const int path = lp % 2 || lp == 2 * isa_levels() ? COLLM_QMM_DEQ_SGEMM : COLLM_QMM_DOT;
        collm_quant_set_isa(lp / 2);
        if (lp == 2 * isa_levels()) collm_blas_set_threads(1);
        for (int i = 0; i < T * ldy; i++) y[i] = 7.0f;
        CHECK(collm_qmm_forward(y, ldy, x, T, parts, 3, (collm_qmm_path)path, pool) == COLLM_OK);
        double worst = 0;
        for (int t = 0; t < T; t++)
            for (int r = 0, k = 0, rk = 0; r < O; r++, rk++) {
                if (rk == rows[k]) k++, rk = 0;
                // the dot path multiplies with the quantised activations, sgemm with x itself
                const float *xr = x + (size_t)t * K;
                if (path == COLLM_QMM_DOT && types[k] != COLLM_GGML_TYPE_F32) {
                    collm_quant_act_row(collm_quant_vec_type(types[k]), xr, xq, K);
                    collm_quant_dequant_row(collm_quant_vec_type(types[k]), xq, xdeq, K);
                    xr = xdeq;
                }
                double s = 0, a = 0;
                for (int j = 0; j < K; j++) s += (double)wf[(size_t)r * K + j] * xr[j], a += fabs((double)wf[(size_t)r * K + j] * xr[j]);
                worst = fmax(worst, fabs(y[t * ldy + r] - s) / (a + 1e-30));
            }
        CHECK_MSG(worst < 1e-5, "qmm path %d: relative error %g", path, worst);
        CHECK(y[ldy - 1] == 7.0f && y[ldy * T - 3] == 7.0f); // columns past the parts untouched
    }
    collm_blas_set_threads(blas_threads);
    collm_quant_set_isa(-1);
    // backward: dx += dy · W, one part at a time (dy's columns at the part's offset)
    for (int i = 0; i < T * O; i++) dy[i] = (float)collm_rng_normal(&rng);
    for (int i = 0; i < T * K; i++) dx[i] = dx0[i] = (float)collm_rng_normal(&rng);
    for (int k = 0, col = 0; k < 3; col += rows[k], k++) CHECK(collm_qmm_backward_x(dx, dy + col, O, T, &parts[k], pool) == COLLM_OK);
    double worst = 0;
    for (int t = 0; t < T; t++)
        for (int j = 0; j < K; j++) {
            double s = dx0[t * K + j];
            for (int r = 0; r < O; r++) s += (double)dy[t * O + r] * wf[(size_t)r * K + j];
            worst = fmax(worst, fabs(dx[t * K + j] - s));
        }
    CHECK_MSG(worst < 1e-4, "qmm backward: %g", worst);
    for (int k = 0; k < 3; k++) free(data[k]);
    collm_pool_free(pool);
}

// --- conformance with llama.cpp -------------------------------------------

static float *read_f32(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    float *v = malloc((size_t)sz);
    *n = (size_t)sz / 4;
    if (v && fread(v, 4, *n, f) != *n) {
        free(v);
        v = NULL;
    }
    fclose(f);
    return v;
}

// llama.cpp's own gap between its quantised and its dequantised logits
// (README of testvectors/quant): the llama.cpp-style path, once an
// activation rounds the other way on a last-bit difference upstream, may
// drift as far as that noise, never further.
static double readme_gap(const char *model) {
    static const struct {
        const char *key;
        double gap;
    } g[] = {{"BF16", 5.2e-3}, {"F16", 6.5e-4}, {"Q8_0", 1.5e-2}, {"Q4_0", 1.7e-2}, {"Q4_1", 2.0e-2}, {"Q5_0", 1.8e-2},
             {"Q5_1", 1.7e-2}, {"Q2_K", 2.3e-2}, {"Q3_K", 2.8e-2}, {"Q4_K_S", 2.3e-2}, {"Q5_K_S", 3.0e-2},
             {"Q6_K", 2.3e-2}, {"llama-256-Q4_K_M", 2.4e-2}, {"Q5_K_M", 2.6e-2}, {"qwen2-256-Q4_K_M", 2.7e-2}};
    for (size_t i = 0; i < sizeof g / sizeof g[0]; i++)
        if (strstr(model, g[i].key)) return g[i].gap;
    return 0;
}

static void test_conformance(void) {
    const char *man_path = test_shared_path("testvectors/quant/manifest.json");
    size_t n;
    FILE *f = fopen(man_path, "rb");
    CHECK_MSG(f != NULL, "no %s", man_path);
    if (!f) return;
    char *text = malloc(1 << 22);
    n = fread(text, 1, (1 << 22) - 1, f);
    fclose(f);
    text[n] = 0;
    cJSON *man = cJSON_Parse(text);
    free(text);
    cJSON *models = cJSON_GetObjectItem(man, "models"), *mj;
    collm_pool *pool = collm_pool_create(2);
    int n_models = 0;
    cJSON_ArrayForEach(mj, models) {
        const char *rel = cJSON_GetObjectItem(mj, "model")->valuestring;
        char path[600];
        snprintf(path, sizeof path, "testvectors/quant/%s", rel);
        collm_llm_model *m = collm_llm_model_load(test_shared_path(path));
        CHECK_MSG(m != NULL, "%s: %s", rel, collm_last_error());
        if (!m) continue;
        n_models++;
        CHECK(collm_llm_model_is_quantised(m));
        const int V = collm_llm_model_hparams(m)->n_vocab;
        double worst_exact = 0, worst_dot = 0, worst_row0 = 0, worst_tile = 0;
        cJSON *pj;
        cJSON_ArrayForEach(pj, cJSON_GetObjectItem(mj, "prompts")) {
            cJSON *tj = cJSON_GetObjectItem(pj, "tokens"), *e;
            int T = cJSON_GetArraySize(tj), i = 0;
            int32_t *toks = malloc((size_t)T * sizeof(int32_t));
            cJSON_ArrayForEach(e, tj) toks[i++] = (int32_t)e->valueint;
            size_t nq, nd;
            snprintf(path, sizeof path, "testvectors/quant/%s", cJSON_GetObjectItem(pj, "logits_quantized")->valuestring);
            float *lq = read_f32(test_shared_path(path), &nq);
            snprintf(path, sizeof path, "testvectors/quant/%s", cJSON_GetObjectItem(pj, "logits_dequantized_f32")->valuestring);
            float *ld = read_f32(test_shared_path(path), &nd);
            float *got = malloc((size_t)T * V * sizeof(float));
            CHECK(lq && ld && nq == (size_t)T * V && nd == nq);
            // three runs: row dots (AVX2 at most: llama.cpp's block order), the tiled kernel
            // (AVX-512 VNNI or AVX2, the best the CPU has: the same integer block sums, another
            // float order), and the exact path
            for (int run = 0; lq && ld && run < 3; run++) {
                if (run == 1 && isa_levels() < 2) continue;
                const collm_qmm_path path_i = run == 2 ? COLLM_QMM_DEQ_SGEMM : run == 0 ? COLLM_QMM_ROWS : COLLM_QMM_DOT;
                collm_qmm_path old = collm_qmm_set_path(path_i);
                collm_quant_set_isa(run == 0 ? 1 : -1);
                collm_llm_context *ctx = collm_llm_context_create(m, T, T, pool);
                CHECK(ctx && collm_llm_forward(ctx, toks, T, NULL, NULL, -1, NULL, 0, got) == COLLM_OK);
                collm_llm_context_free(ctx);
                collm_qmm_set_path(old);
                collm_quant_set_isa(-1);
                const float *ref = path_i != COLLM_QMM_DEQ_SGEMM ? lq : ld;
                for (size_t j = 0; j < (size_t)T * V; j++) {
                    double d = fabs(got[j] - ref[j]);
                    if (run == 0) {
                        worst_dot = fmax(worst_dot, d);
                        if (j < (size_t)V) worst_row0 = fmax(worst_row0, d);
                    } else if (run == 1) {
                        worst_tile = fmax(worst_tile, d);
                    } else {
                        worst_exact = fmax(worst_exact, d);
                    }
                }
            }
            free(toks);
            free(lq);
            free(ld);
            free(got);
        }
        printf("conformance %-34s exact path vs llama.cpp on the F32 dequantisation %.1e (tol 1e-4); "
               "quantised path vs llama.cpp quantised: row 0 %.1e (tol 2e-3), all rows %.1e, tiled %.1e "
               "(llama.cpp's own gap %.1e)\n",
               rel, worst_exact, worst_row0, worst_dot, worst_tile, readme_gap(rel));
        CHECK_MSG(worst_exact <= 1e-4, "%s: exact path %g from llama.cpp's dequantised logits", rel, worst_exact);
        CHECK_MSG(worst_row0 <= 2e-3, "%s: first row %g from llama.cpp's quantised logits", rel, worst_row0);
        CHECK_MSG(worst_dot <= readme_gap(rel), "%s: %g from llama.cpp's quantised logits", rel, worst_dot);
        CHECK_MSG(worst_tile <= readme_gap(rel), "%s: tiled kernel %g from llama.cpp's quantised logits", rel, worst_tile);
        collm_llm_model_free(m);
    }
    CHECK(n_models >= 15);
    // the same file dequantised at load runs the F32 reference path: the
    // same numbers as the exact quantised path
    const char *q4 = test_shared_path("testvectors/quant/models/llama-256-Q4_K_M.gguf");
    collm_llm_model *a = collm_llm_model_load(q4), *b = collm_llm_model_load_ex(q4, COLLM_LLM_LOAD_DEQUANT);
    CHECK(a && b && collm_llm_model_is_quantised(a) && !collm_llm_model_is_quantised(b));
    if (a && b) {
        CHECK(collm_llm_model_n_params(a) == collm_llm_model_n_params(b));
        CHECK(collm_llm_model_weight_bytes(a) * 5 < collm_llm_model_weight_bytes(b)); // 4.5 bits vs 32
        const int32_t toks[5] = {1, 403, 407, 261, 378};
        static float la[5 * 512], lb[5 * 512];
        collm_qmm_path old = collm_qmm_set_path(COLLM_QMM_DEQ_SGEMM);
        collm_llm_context *ca = collm_llm_context_create(a, 8, 8, pool), *cb = collm_llm_context_create(b, 8, 8, pool);
        CHECK(collm_llm_forward(ca, toks, 5, NULL, NULL, -1, NULL, 0, la) == COLLM_OK);
        CHECK(collm_llm_forward(cb, toks, 5, NULL, NULL, -1, NULL, 0, lb) == COLLM_OK);
        double d = 0;
        for (int i = 0; i < 5 * 512; i++) d = fmax(d, fabs(la[i] - lb[i]));
        CHECK_MSG(d < 1e-5, "quantised exact path vs dequantised model: %g", d);
        // selected vocab rows equal the columns of the full head
        int32_t out_row = 4, vrows[2] = {7, 300};
        float sel[2];
        collm_qmm_set_path(COLLM_QMM_DOT);
        CHECK(collm_llm_kv_truncate(ca, 0) == COLLM_OK);
        CHECK(collm_llm_forward(ca, toks, 5, NULL, NULL, -1, NULL, 0, la) == COLLM_OK);
        CHECK(collm_llm_kv_truncate(ca, 0) == COLLM_OK);
        CHECK(collm_llm_forward(ca, toks, 5, NULL, &out_row, 1, vrows, 2, sel) == COLLM_OK);
        CHECK(fabsf(sel[0] - la[4 * 512 + 7]) < 1e-6f && fabsf(sel[1] - la[4 * 512 + 300]) < 1e-6f);
        collm_qmm_set_path(old);
        collm_llm_context_free(ca);
        collm_llm_context_free(cb);
    }
    collm_llm_model_free(a);
    collm_llm_model_free(b);
    collm_pool_free(pool);
    cJSON_Delete(man);
}

// --- LoRA on a frozen quantised base ----------------------------------------

// Q8_0 blocks of x (n a multiple of 32): d = amax/127, q = round(x/d).
static void q8_0_encode(const float *x, uint8_t *out, int64_t n) {
    for (int64_t b = 0; b < n / 32; b++, x += 32, out += 34) {
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
        float d = amax / 127.0f;
        put_h(out, d);
        for (int j = 0; j < 32; j++) out[2 + j] = (uint8_t)(int8_t)(d > 0 ? lrintf(x[j] / d) : 0);
    }
}

enum { LQ_SEQ = 3 };
static const int32_t lq_len[LQ_SEQ] = {5, 7, 4};
static const int32_t lq_tokens[16] = {1, 5, 9, 0, 3, 2, 2, 30, 11, 0, 6, 7, 4, 8, 36, 12};
static const int32_t lq_slot_rows[3] = {3, 8, 10};

static double lq_loss(collm_llm_trainer *tr, const float *slot_values, const float *w, float *scores) {
    collm_llm_slot_rows slots = {3, lq_slot_rows, slot_values};
    float sc[LQ_SEQ];
    if (!scores) scores = sc;
    if (collm_llm_trainer_forward(tr, lq_tokens, lq_len, LQ_SEQ, &slots, 7, scores, NULL) != COLLM_OK) return NAN;
    double loss = 0;
    for (int s = 0; s < LQ_SEQ; s++) loss += w[s] * scores[s];
    return loss;
}

// A Q8_0 model built in memory and its exact F32 dequantisation: the
// trainer's scores and LoRA / slot gradients on the quantised base equal the
// F32 reference's, and match central finite differences of the quantised
// forward itself; inference with the adapter beside the quantised weights
// equals the F32 model with the adapter merged.
static void test_lora_on_quantised(void) {
    collm_llm_hparams hp = {0};
    hp.arch = COLLM_LLM_ARCH_LLAMA;
    hp.n_vocab = 64;
    hp.n_ctx_train = 64;
    hp.n_embd = 32;
    hp.n_layer = 2;
    hp.n_head = 4;
    hp.n_head_kv = 2;
    hp.n_ff = 64;
    hp.rope_base = 10000.0f;
    hp.rms_eps = 1e-5f;
    collm_llm_model *f = collm_llm_model_init_random(&hp, 3), *q = collm_llm_model_alloc_ex(&hp, 1);
    CHECK(f && q && q->quantised && !q->layers[0].wq);
    if (!f || !q) return;
    collm_rng rng;
    collm_rng_seed(&rng, 5);
    for (int64_t i = 0; i < f->n_params; i++) f->params[i] += (float)(0.3 * collm_rng_normal(&rng)); // signal for FD
    collm_llm_tensor_desc df[64], dq[64];
    int n = collm_llm_model_tensor_list(f, df);
    collm_llm_model_tensor_list(q, dq);
    uint8_t *bufs[64] = {0};
    for (int i = 0; i < n; i++) {
        int64_t cnt = df[i].ne[0] * df[i].ne[1];
        if (!dq[i].q) {
            memcpy(*dq[i].data, *df[i].data, (size_t)cnt * sizeof(float)); // norms stay F32
            continue;
        }
        size_t rb = collm_quant_row_bytes(COLLM_GGML_TYPE_Q8_0, df[i].ne[0]);
        bufs[i] = malloc(rb * (size_t)df[i].ne[1]);
        q8_0_encode(*df[i].data, bufs[i], cnt);
        *dq[i].q = (collm_qmat){COLLM_GGML_TYPE_Q8_0, bufs[i], df[i].ne[1], df[i].ne[0], rb};
        collm_quant_dequant_row(COLLM_GGML_TYPE_Q8_0, bufs[i], *df[i].data, cnt); // F32 = the exact dequantisation
    }
    int Qd = hp.n_head * 8, KVd = hp.n_head_kv * 8;
    int din[COLLM_LORA_N_TARGETS] = {32, 32, 32, Qd, 32, 32, 64}, dout[COLLM_LORA_N_TARGETS] = {Qd, KVd, KVd, 32, 64, 64, 32};
    collm_lora_adapter la, lb;
    collm_rng r1, r2;
    collm_rng_seed(&r1, 9);
    collm_rng_seed(&r2, 9);
    CHECK(collm_lora_init(&la, 2, din, dout, 2, 4.0f, 0.0f, 0x7f, &r1) == COLLM_OK);
    CHECK(collm_lora_init(&lb, 2, din, dout, 2, 4.0f, 0.0f, 0x7f, &r2) == COLLM_OK);
    for (int i = 0; i < 2 * COLLM_LORA_N_TARGETS; i++)
        for (int j = 0; j < la.pairs[i].out * la.pairs[i].rank; j++)
            la.pairs[i].b[j] = lb.pairs[i].b[j] = (float)(0.3 * collm_rng_normal(&rng));
    collm_llm_trainer *tf = collm_llm_trainer_create(f, &la, 0, 32, 8, NULL), *tq = collm_llm_trainer_create(q, &lb, 0, 32, 8, NULL);
    CHECK(tf && tq);
    CHECK(collm_llm_trainer_create(q, NULL, 1, 32, 8, NULL) == NULL &&
          strstr(collm_last_error(), "quantised and stays frozen") != NULL); // no full fine-tuning of a quantised base
    float sv[3 * 32], dsf[3 * 32] = {0}, dsq[3 * 32] = {0}, w[LQ_SEQ] = {1.1f, 0.5f, -0.8f}, sf[LQ_SEQ], sq[LQ_SEQ];
    for (int i = 0; i < 3 * 32; i++) sv[i] = (float)collm_rng_normal(&rng);
    lq_loss(tf, sv, w, sf);
    lq_loss(tq, sv, w, sq);
    double ds = 0;
    for (int s = 0; s < LQ_SEQ; s++) ds = fmax(ds, fabs(sf[s] - sq[s]));
    CHECK_MSG(ds < 1e-4, "quantised-base scores vs F32 reference: %g", ds);
    CHECK(collm_llm_trainer_backward(tf, w, dsf) == COLLM_OK && collm_llm_trainer_backward(tq, w, dsq) == COLLM_OK);
    double dg = 0, gmax = 0;
    for (int i = 0; i < 2 * COLLM_LORA_N_TARGETS; i++) {
        const collm_lora_pair *a = &la.pairs[i], *b = &lb.pairs[i];
        for (int j = 0; j < a->rank * a->in; j++) dg = fmax(dg, fabs(a->da[j] - b->da[j])), gmax = fmax(gmax, fabs(a->da[j]));
        for (int j = 0; j < a->out * a->rank; j++) dg = fmax(dg, fabs(a->db[j] - b->db[j])), gmax = fmax(gmax, fabs(a->db[j]));
    }
    for (int i = 0; i < 3 * 32; i++) dg = fmax(dg, fabs(dsf[i] - dsq[i]));
    CHECK_MSG(dg < 1e-4 * (1 + gmax) && gmax > 1e-3, "quantised-base gradients vs F32 reference: %g (largest %g)", dg, gmax);
    // finite differences of the quantised forward
    int bad = 0, checked = 0;
    for (int i = 0; i < 2 * COLLM_LORA_N_TARGETS; i += 3) {
        collm_lora_pair *p = &lb.pairs[i];
        float *params[2] = {p->a, p->b}, *grads[2] = {p->da, p->db};
        int64_t cnt[2] = {(int64_t)p->rank * p->in, (int64_t)p->out * p->rank};
        for (int k = 0; k < 2; k++)
            for (int64_t j = 0; j < cnt[k]; j += cnt[k] / 5 + 1) {
                float keep = params[k][j], hh = 1e-2f;
                params[k][j] = keep + hh;
                double lp = lq_loss(tq, sv, w, NULL);
                params[k][j] = keep - hh;
                double lm = lq_loss(tq, sv, w, NULL);
                params[k][j] = keep;
                double num = (lp - lm) / (2 * hh);
                checked++;
                if (fabs(grads[k][j] - num) > 3e-3 + 3e-2 * fabs(num)) {
                    if (bad < 3) fprintf(stderr, "  lora pair %d %s[%ld]: analytic %g numeric %g\n", i, k ? "b" : "a", (long)j, grads[k][j], num);
                    bad++;
                }
            }
    }
    for (int j = 0; j < 3 * 32; j += 7) {
        float keep = sv[j], hh = 1e-2f;
        sv[j] = keep + hh;
        double lp = lq_loss(tq, sv, w, NULL);
        sv[j] = keep - hh;
        double lm = lq_loss(tq, sv, w, NULL);
        sv[j] = keep;
        double num = (lp - lm) / (2 * hh);
        checked++;
        if (fabs(dsq[j] - num) > 3e-3 + 3e-2 * fabs(num)) bad++;
    }
    CHECK_MSG(bad == 0 && checked > 40, "LoRA on a quantised base: %d of %d gradient entries off finite differences", bad, checked);
    // inference: the adapter beside the quantised weights == merged into the F32 ones
    collm_llm_context *cq = collm_llm_context_create(q, 16, 16, NULL);
    CHECK(cq && collm_llm_context_set_lora(cq, &lb) == COLLM_OK);
    for (int l = 0; l < 2; l++) {
        collm_llm_layer_weights *L = &f->layers[l];
        float *mats[COLLM_LORA_N_TARGETS] = {L->wq, L->wk, L->wv, L->wo, L->w_gate, L->w_up, L->w_down};
        for (int t = 0; t < COLLM_LORA_N_TARGETS; t++) collm_lora_merge(collm_lora_get(&la, l, (collm_lora_target)t), collm_lora_scale(&la), mats[t]);
    }
    collm_llm_context *cf = collm_llm_context_create(f, 16, 16, NULL);
    static float lgq[7 * 64], lgf[7 * 64];
    collm_qmm_path old = collm_qmm_set_path(COLLM_QMM_DEQ_SGEMM);
    CHECK(collm_llm_forward(cq, lq_tokens + 5, 7, NULL, NULL, -1, NULL, 0, lgq) == COLLM_OK);
    CHECK(collm_llm_forward(cf, lq_tokens + 5, 7, NULL, NULL, -1, NULL, 0, lgf) == COLLM_OK);
    collm_qmm_set_path(old);
    double dl = 0, spread = 0;
    for (int i = 0; i < 7 * 64; i++) dl = fmax(dl, fabs(lgq[i] - lgf[i])), spread = fmax(spread, fabs(lgf[i] - lgf[0]));
    CHECK_MSG(dl < 1e-3 && spread > 1e-2, "LoRA beside the quantised base vs merged into F32: %g", dl);
    collm_llm_context_free(cq);
    collm_llm_context_free(cf);
    collm_llm_trainer_free(tf);
    collm_llm_trainer_free(tq);
    collm_lora_free(&la);
    collm_lora_free(&lb);
    collm_llm_model_free(f);
    collm_llm_model_free(q);
    for (int i = 0; i < 64; i++) free(bufs[i]);
}

int main(void) {
    test_dequant();
    test_activation_quant();
    test_dots();
    test_tiles();
    test_qmm();
    test_lora_on_quantised();
    test_conformance();
    return test_report();
}
