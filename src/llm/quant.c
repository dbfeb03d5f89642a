// Quantised weights: block geometry, the scalar reference dequantiser and
// dot products, activation quantisation, and the matrix products (see
// llm/quant.h). The SIMD dot products are in llm/quant_x86.c.
#include "llm/quant.h"

#include "collm/error.h"
#include "core/env.h"
#include "core/ops.h"

#include <cblas.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

// ---------------------------------------------------------------------------
// Geometry

int collm_quant_block(collm_ggml_type t, int64_t *blck, size_t *bytes) {
    int64_t b = 0;
    size_t n = 0;
    switch ((int)t) {
    case COLLM_GGML_TYPE_F32: b = 1; n = 4; break;
    case COLLM_GGML_TYPE_F16: b = 1; n = 2; break;
    case COLLM_GGML_TYPE_BF16: b = 1; n = 2; break;
    case COLLM_GGML_TYPE_I32: b = 1; n = 4; break;
    case COLLM_GGML_TYPE_Q4_0: b = 32; n = 18; break;
    case COLLM_GGML_TYPE_Q4_1: b = 32; n = 20; break;
    case COLLM_GGML_TYPE_Q5_0: b = 32; n = 22; break;
    case COLLM_GGML_TYPE_Q5_1: b = 32; n = 24; break;
    case COLLM_GGML_TYPE_Q8_0: b = 32; n = 34; break;
    case 9 /* Q8_1 */: b = 32; n = 36; break;
    case COLLM_GGML_TYPE_Q2_K: b = 256; n = 84; break;
    case COLLM_GGML_TYPE_Q3_K: b = 256; n = 110; break;
    case COLLM_GGML_TYPE_Q4_K: b = 256; n = 144; break;
    case COLLM_GGML_TYPE_Q5_K: b = 256; n = 176; break;
    case COLLM_GGML_TYPE_Q6_K: b = 256; n = 210; break;
    case 15 /* Q8_K */: b = 256; n = 292; break;
    default: return 0;
    }
    if (blck) *blck = b;
    if (bytes) *bytes = n;
    return 1;
}

int collm_quant_weight_type_ok(collm_ggml_type t) {
    switch (t) {
    case COLLM_GGML_TYPE_F32: case COLLM_GGML_TYPE_F16: case COLLM_GGML_TYPE_BF16: case COLLM_GGML_TYPE_Q4_0:
    case COLLM_GGML_TYPE_Q4_1: case COLLM_GGML_TYPE_Q5_0: case COLLM_GGML_TYPE_Q5_1: case COLLM_GGML_TYPE_Q8_0:
    case COLLM_GGML_TYPE_Q2_K: case COLLM_GGML_TYPE_Q3_K: case COLLM_GGML_TYPE_Q4_K: case COLLM_GGML_TYPE_Q5_K:
    case COLLM_GGML_TYPE_Q6_K:
        return 1;
    default: return 0;
    }
}

size_t collm_quant_row_bytes(collm_ggml_type t, int64_t n) {
    int64_t b;
    size_t bytes;
    if (!collm_quant_block(t, &b, &bytes) || n % b) return 0;
    return (size_t)(n / b) * bytes;
}

static float f16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return collm_f16_to_f32(h);
}

// ---------------------------------------------------------------------------
// Decoding one weight block to x = (d · sc[g]) · q − dmin · mn[g], g = j / group.

typedef struct {
    int8_t q[COLLM_QK_K];
    int16_t sc[16], mn[16];
    float d, dmin;
    int n, group; // elements, elements per scale group
} qblock;

// Q4_K / Q5_K: 8 six-bit scales and mins packed into 12 bytes.
static void scale_min_k4(int j, const uint8_t *s, int16_t *sc, int16_t *mn) {
    if (j < 4) {
        *sc = s[j] & 63;
        *mn = s[j + 4] & 63;
    } else {
        *sc = (int16_t)((s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4));
        *mn = (int16_t)((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
    }
}

static void legacy(qblock *b, float d, float m) {
    b->n = b->group = 32;
    b->sc[0] = b->mn[0] = 1;
    b->d = d;
    b->dmin = -m;
}

static void decode_block(collm_ggml_type t, const uint8_t *p, qblock *b) {
    switch ((int)t) {
    case COLLM_GGML_TYPE_Q4_0:
        legacy(b, f16(p), 0.0f);
        for (int j = 0; j < 16; j++) {
            b->q[j] = (int8_t)((p[2 + j] & 0x0f) - 8);
            b->q[j + 16] = (int8_t)((p[2 + j] >> 4) - 8);
        }
        break;
    case COLLM_GGML_TYPE_Q4_1:
        legacy(b, f16(p), f16(p + 2));
        for (int j = 0; j < 16; j++) {
            b->q[j] = (int8_t)(p[4 + j] & 0x0f);
            b->q[j + 16] = (int8_t)(p[4 + j] >> 4);
        }
        break;
    case COLLM_GGML_TYPE_Q5_0: case COLLM_GGML_TYPE_Q5_1: {
        const int one = t == COLLM_GGML_TYPE_Q5_1;
        legacy(b, f16(p), one ? f16(p + 2) : 0.0f);
        uint32_t qh;
        memcpy(&qh, p + 2 + 2 * one, 4);
        const uint8_t *qs = p + 6 + 2 * one;
        for (int j = 0; j < 16; j++) {
            int lo = (qs[j] & 0x0f) | (int)(((qh >> j) << 4) & 0x10);
            int hi = (qs[j] >> 4) | (int)((qh >> (j + 12)) & 0x10);
            b->q[j] = (int8_t)(lo - (one ? 0 : 16));
            b->q[j + 16] = (int8_t)(hi - (one ? 0 : 16));
        }
        break;
    }
    case COLLM_GGML_TYPE_Q8_0:
        legacy(b, f16(p), 0.0f);
        memcpy(b->q, p + 2, 32);
        break;
    case 9: // Q8_1 (d, s, q): s is a sum, not an offset
        legacy(b, f16(p), 0.0f);
        memcpy(b->q, p + 4, 32);
        break;
    case COLLM_GGML_TYPE_Q2_K: { // scales[16] (lo: scale, hi: min), qs[64], d, dmin
        const uint8_t *qs = p + 16;
        b->n = COLLM_QK_K;
        b->group = 16;
        b->d = f16(p + 80);
        b->dmin = f16(p + 82);
        for (int g = 0; g < 16; g++) {
            b->sc[g] = p[g] & 0x0f;
            b->mn[g] = p[g] >> 4;
        }
        for (int n = 0; n < 2; n++)
            for (int j = 0; j < 4; j++)
                for (int l = 0; l < 32; l++) b->q[128 * n + 32 * j + l] = (int8_t)((qs[32 * n + l] >> (2 * j)) & 3);
        break;
    }
    case COLLM_GGML_TYPE_Q3_K: { // hmask[32], qs[64], scales[12] (16 six-bit, biased by 32), d
        const uint8_t *hm = p, *qs = p + 32, *s = p + 96;
        b->n = COLLM_QK_K;
        b->group = 16;
        b->d = f16(p + 108);
        b->dmin = 0.0f;
        for (int g = 0; g < 16; g++) {
            // low 4 bits: byte g % 8 (nibble g / 8); high 2 bits: byte 8 + g % 4, bits 2 (g / 4)
            int lo = (s[g % 8] >> (4 * (g / 8))) & 0x0f;
            int hi = (s[8 + g % 4] >> (2 * (g / 4))) & 3;
            b->sc[g] = (int16_t)((lo | hi << 4) - 32);
            b->mn[g] = 0;
        }
        for (int n = 0; n < 2; n++)
            for (int j = 0; j < 4; j++)
                for (int l = 0; l < 32; l++) {
                    int v = (qs[32 * n + l] >> (2 * j)) & 3;
                    int high = hm[l] & (1 << (4 * n + j));
                    b->q[128 * n + 32 * j + l] = (int8_t)(v - (high ? 0 : 4));
                }
        break;
    }
    case COLLM_GGML_TYPE_Q4_K: case COLLM_GGML_TYPE_Q5_K: { // d, dmin, scales[12], (qh[32]), qs[128]
        const int five = t == COLLM_GGML_TYPE_Q5_K;
        const uint8_t *qh = p + 16, *qs = p + (five ? 48 : 16);
        b->n = COLLM_QK_K;
        b->group = 32;
        b->d = f16(p);
        b->dmin = f16(p + 2);
        for (int g = 0; g < 8; g++) scale_min_k4(g, p + 4, &b->sc[g], &b->mn[g]);
        for (int j = 0; j < 4; j++)
            for (int l = 0; l < 32; l++) {
                int lo = qs[32 * j + l] & 0x0f, hi = qs[32 * j + l] >> 4;
                if (five) {
                    lo += qh[l] & (1 << (2 * j)) ? 16 : 0;
                    hi += qh[l] & (2 << (2 * j)) ? 16 : 0;
                }
                b->q[64 * j + l] = (int8_t)lo;
                b->q[64 * j + 32 + l] = (int8_t)hi;
            }
        break;
    }
    case COLLM_GGML_TYPE_Q6_K: { // ql[128], qh[64], scales[16] (i8), d
        const uint8_t *ql = p, *qh = p + 128;
        b->n = COLLM_QK_K;
        b->group = 16;
        b->d = f16(p + 208);
        b->dmin = 0.0f;
        for (int g = 0; g < 16; g++) {
            b->sc[g] = (int8_t)p[192 + g];
            b->mn[g] = 0;
        }
        for (int n = 0; n < 2; n++)
            for (int l = 0; l < 32; l++) {
                const uint8_t *L = ql + 64 * n, *H = qh + 32 * n;
                int8_t *q = b->q + 128 * n;
                q[l] = (int8_t)(((L[l] & 0x0f) | ((H[l] >> 0 & 3) << 4)) - 32);
                q[l + 32] = (int8_t)(((L[l + 32] & 0x0f) | ((H[l] >> 2 & 3) << 4)) - 32);
                q[l + 64] = (int8_t)(((L[l] >> 4) | ((H[l] >> 4 & 3) << 4)) - 32);
                q[l + 96] = (int8_t)(((L[l + 32] >> 4) | ((H[l] >> 6 & 3) << 4)) - 32);
            }
        break;
    }
    }
}

void collm_quant_dequant_row(collm_ggml_type t, const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    switch ((int)t) {
    case COLLM_GGML_TYPE_F32: memcpy(dst, src, (size_t)n * 4); return;
    case COLLM_GGML_TYPE_F16:
        for (int64_t i = 0; i < n; i++) dst[i] = f16(p + 2 * i);
        return;
    case COLLM_GGML_TYPE_BF16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            dst[i] = collm_bf16_to_f32(h);
        }
        return;
    case 15: // Q8_K: f32 d, q[256]
        for (int64_t i = 0; i < n / COLLM_QK_K; i++) {
            float d;
            memcpy(&d, p + 292 * i, 4);
            for (int j = 0; j < COLLM_QK_K; j++) dst[COLLM_QK_K * i + j] = d * (float)(int8_t)p[292 * i + 4 + j];
        }
        return;
    }
    int64_t blck;
    size_t bytes;
    if (!collm_quant_block(t, &blck, &bytes)) return;
    qblock b;
    for (int64_t i = 0; i < n / blck; i++) {
        decode_block(t, p + (size_t)i * bytes, &b);
        float *y = dst + i * blck;
        for (int g = 0; g < b.n / b.group; g++) {
            // the same two products llama.cpp forms: dl = d·sc, ml = dmin·mn; x = dl·q − ml
            const float dl = b.d * (float)b.sc[g], ml = b.dmin * (float)b.mn[g];
            for (int j = g * b.group; j < (g + 1) * b.group; j++) y[j] = dl * (float)b.q[j] - ml;
        }
    }
}

// ---------------------------------------------------------------------------
// Activations

collm_ggml_type collm_quant_vec_type(collm_ggml_type t) {
    switch (t) {
    case COLLM_GGML_TYPE_F16: return COLLM_GGML_TYPE_F16;
    case COLLM_GGML_TYPE_BF16: return COLLM_GGML_TYPE_BF16;
    case COLLM_GGML_TYPE_Q4_0: case COLLM_GGML_TYPE_Q5_0: case COLLM_GGML_TYPE_Q8_0: return COLLM_GGML_TYPE_Q8_0;
    case COLLM_GGML_TYPE_Q4_1: case COLLM_GGML_TYPE_Q5_1: return COLLM_GGML_TYPE_Q8_1;
    case COLLM_GGML_TYPE_Q2_K: case COLLM_GGML_TYPE_Q3_K: case COLLM_GGML_TYPE_Q4_K: case COLLM_GGML_TYPE_Q5_K:
    case COLLM_GGML_TYPE_Q6_K:
        return COLLM_GGML_TYPE_Q8_K;
    default: return COLLM_GGML_TYPE_F32;
    }
}

void collm_quant_act_row_ref(collm_ggml_type vt, const float *x, void *dst, int64_t n) {
    uint8_t *p = dst;
    switch ((int)vt) {
    case COLLM_GGML_TYPE_F16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h = collm_f32_to_f16(x[i]);
            memcpy(p + 2 * i, &h, 2);
        }
        return;
    case COLLM_GGML_TYPE_BF16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h = collm_f32_to_bf16(x[i]);
            memcpy(p + 2 * i, &h, 2);
        }
        return;
    case COLLM_GGML_TYPE_Q8_0: case 9: { // Q8_0 / Q8_1: d = amax/127, q = round-half-even(x · 127/amax)
        const int one = vt == COLLM_GGML_TYPE_Q8_1;
        const size_t bytes = one ? 36 : 34;
        for (int64_t i = 0; i < n / 32; i++) {
            const float *xb = x + 32 * i;
            uint8_t *b = p + (size_t)i * bytes;
            float amax = 0.0f;
            for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(xb[j]));
            const float d = amax / 127.0f, id = amax != 0.0f ? 127.0f / amax : 0.0f;
            int sum = 0;
            int8_t *q = (int8_t *)(b + (one ? 4 : 2));
            for (int j = 0; j < 32; j++) {
                q[j] = (int8_t)nearbyintf(xb[j] * id);
                sum += q[j];
            }
            uint16_t h = collm_f32_to_f16(d);
            memcpy(b, &h, 2);
            if (one) {
                h = collm_f32_to_f16(d * (float)sum);
                memcpy(b + 2, &h, 2);
            }
        }
        return;
    }
    case 15: { // Q8_K: the signed extreme maps to −127; d = 1/iscale (f32); bsums per 16
        for (int64_t i = 0; i < n / COLLM_QK_K; i++) {
            const float *xb = x + COLLM_QK_K * i;
            uint8_t *b = p + (size_t)i * 292;
            int8_t *q = (int8_t *)(b + 4);
            int16_t bsums[16];
            float max = 0.0f, amax = 0.0f;
            for (int j = 0; j < COLLM_QK_K; j++) {
                float ax = fabsf(xb[j]);
                if (ax > amax) {
                    amax = ax;
                    max = xb[j];
                }
            }
            float d = 0.0f;
            if (amax == 0.0f) {
                memset(q, 0, COLLM_QK_K);
            } else {
                const float iscale = -127.0f / max;
                for (int j = 0; j < COLLM_QK_K; j++) {
                    int v = (int)nearbyintf(iscale * xb[j]);
                    q[j] = (int8_t)(v > 127 ? 127 : v);
                }
                d = 1.0f / iscale;
            }
            for (int g = 0; g < 16; g++) {
                int s = 0;
                for (int j = 0; j < 16; j++) s += q[16 * g + j];
                bsums[g] = (int16_t)s;
            }
            memcpy(b, &d, 4);
            memcpy(b + 4 + COLLM_QK_K, bsums, sizeof bsums);
        }
        return;
    }
    default: memcpy(dst, x, (size_t)n * sizeof(float)); return;
    }
}

// ---------------------------------------------------------------------------
// Reference dot products

float collm_quant_dot_ref(collm_ggml_type wt, const void *w, const void *x, int64_t n) {
    const uint8_t *pw = w, *px = x;
    double sum = 0.0;
    switch ((int)wt) {
    case COLLM_GGML_TYPE_F32: {
        const float *a = w, *b = x;
        for (int64_t i = 0; i < n; i++) sum += (double)(a[i] * b[i]);
        return (float)sum;
    }
    case COLLM_GGML_TYPE_F16:
        for (int64_t i = 0; i < n; i++) sum += (double)(f16(pw + 2 * i) * f16(px + 2 * i));
        return (float)sum;
    case COLLM_GGML_TYPE_BF16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t a, b;
            memcpy(&a, pw + 2 * i, 2);
            memcpy(&b, px + 2 * i, 2);
            sum += (double)(collm_bf16_to_f32(a) * collm_bf16_to_f32(b));
        }
        return (float)sum;
    }
    int64_t blck;
    size_t bytes;
    if (!collm_quant_block(wt, &blck, &bytes)) return 0.0f;
    const collm_ggml_type vt = collm_quant_vec_type(wt);
    qblock b;
    for (int64_t i = 0; i < n / blck; i++) {
        decode_block(wt, pw + (size_t)i * bytes, &b);
        if (blck == 32) {
            // legacy: x_d · y_d · Σ qx qy (+ m · s with Q8_1 activations)
            const uint8_t *y = px + (size_t)i * (vt == COLLM_GGML_TYPE_Q8_1 ? 36 : 34);
            const int8_t *qy = (const int8_t *)(y + (vt == COLLM_GGML_TYPE_Q8_1 ? 4 : 2));
            int isum = 0;
            for (int j = 0; j < 32; j++) isum += b.q[j] * qy[j];
            sum += (double)(b.d * f16(y)) * isum;
            if (vt == COLLM_GGML_TYPE_Q8_1) sum += (double)(-b.dmin * f16(y + 2));
        } else {
            // K-quants with Q8_K: y_d · (d · Σ_g sc_g Σ q qy − dmin · Σ_g mn_g Σ qy)
            const uint8_t *y = px + (size_t)i * 292;
            float yd;
            memcpy(&yd, y, 4);
            const int8_t *qy = (const int8_t *)(y + 4);
            int16_t bsums[16];
            memcpy(bsums, y + 4 + COLLM_QK_K, sizeof bsums);
            int64_t isum = 0, msum = 0;
            for (int g = 0; g < COLLM_QK_K / b.group; g++) {
                int s = 0;
                for (int j = g * b.group; j < (g + 1) * b.group; j++) s += b.q[j] * qy[j];
                isum += (int64_t)b.sc[g] * s;
                int ys = b.group == 16 ? bsums[g] : bsums[2 * g] + bsums[2 * g + 1];
                msum += (int64_t)b.mn[g] * ys;
            }
            sum += (double)yd * ((double)b.d * (double)isum - (double)b.dmin * (double)msum);
        }
    }
    return (float)sum;
}

// ---------------------------------------------------------------------------
// Matrix products

// The forced path: -1 until COLLM_QMM has been read. Several threads (serve
// contexts) may call in at once; every reader of the environment computes
// the same value, so relaxed atomics suffice.
static _Atomic int qmm_path = -1;

static collm_qmm_path current_path(void) {
    int p = atomic_load_explicit(&qmm_path, memory_order_relaxed);
    if (p >= 0) return (collm_qmm_path)p;
    switch (collm_env_setting_value(COLLM_ENV_QMM)) { // core/env.h
    case COLLM_ENV_QMM_DOT: p = COLLM_QMM_DOT; break;
    case COLLM_ENV_QMM_ROWS: p = COLLM_QMM_ROWS; break;
    case COLLM_ENV_QMM_SGEMM: p = COLLM_QMM_DEQ_SGEMM; break;
    default: p = COLLM_QMM_AUTO;
    }
    atomic_store_explicit(&qmm_path, p, memory_order_relaxed);
    return (collm_qmm_path)p;
}

collm_qmm_path collm_qmm_set_path(collm_qmm_path p) {
    collm_qmm_path old = current_path();
    atomic_store_explicit(&qmm_path, (int)p, memory_order_relaxed);
    return old;
}

// Input rows at or above which the dequantised-tile sgemm beats the integer
// dots, per weight type. The dot path costs the same per row whatever T is;
// sgemm pays one dequantisation of the matrix per call, then runs at BLAS
// speed. Measured single-threaded (K = 768, 2048 rows, OpenBLAS AVX-512
// sgemm on an AMD EPYC with AVX-512 VNNI, best of 15):
// - the tiled VNNI kernel (Q8_0, Q4_0, Q4_K, Q6_K) wins from T = 4 (Q8_0: 8;
//   below, the AVX2 row dots, which skip the interleaving: 70 against 20
//   GFLOP/s for one Q8_0 row, 2 threads) and never loses to sgemm:
//   Q8_0 223 / 306 / 335 GFLOP/s at T = 16 / 64 / 256 against sgemm's
//   76 / 147 / 190; Q4_K 211 / 333 / 386; Q6_K 170 / 289 / 348;
// - F16: the AVX-512 kernel (16 rows interleaved by element pairs) 155 / 180 /
//   172 GFLOP/s at T = 16 / 64 / 256 against sgemm on SIMD-converted tiles
//   65 / 136 / 180 (the AVX2 row dots: 41); on 2 threads 376 / 384 / 365 at
//   T = 128 / 256 / 512 against 245 / 311 / 337: the kernel at every T;
// - the AVX2 row dots (no VNNI): Q8_0 57 vs 53 GFLOP/s at T = 64, 57 vs 21
//   at 16; Q4_K 27 vs 58 at 64, 29 vs 23 at 16; Q6_K 45 vs 53 at 64;
// - the tiled kernel at AVX2 (COLLM_ISA=x86-64-v3, OPENBLAS_CORETYPE=Haswell;
//   whole prefill, bench/quant_speed.sh, 2 threads, load 5) against the
//   AVX2 row dots and sgemm: Q8_0 2393 -> 4023 tok/s at 512, Q4_K 2616 ->
//   3934, Q6_K 2922 -> 2862 (even), Q4_0 1423 -> 2256 at 64: the kernel.
static int64_t sgemm_min_rows(collm_ggml_type t) {
    if (collm_qtile_ok(t) || (t == COLLM_GGML_TYPE_F16 && collm_qtile_f16_ok())) return INT64_MAX;
    switch (t) {
    case COLLM_GGML_TYPE_F16: return 8;
    case COLLM_GGML_TYPE_Q2_K: case COLLM_GGML_TYPE_Q3_K: case COLLM_GGML_TYPE_Q4_K: case COLLM_GGML_TYPE_Q5_K: return 24;
    default: return 64;
    }
}

typedef struct {
    const collm_qmat *W;
    const float *x;
    float *tile; // (tile rows, K)
    int64_t r0;
} deq_job;

static void deq_task(void *ctx, int64_t begin, int64_t end, int thread_index) {
    (void)thread_index;
    const deq_job *j = ctx;
    for (int64_t r = begin; r < end; r++)
        collm_quant_dequant(j->W->type, (const uint8_t *)j->W->data + (size_t)(j->r0 + r) * j->W->row_bytes,
                                j->tile + r * j->W->cols, j->W->cols);
}

#define DEQ_TILE_ROWS 256

// With BLAS on one thread (collm_blas_set_threads(1), as the CLI's scoring
// and serving run it) each pool thread takes a contiguous run of 16-row
// groups: it dequantises them a tile at a time into its own buffer and runs
// a single-threaded sgemm on that slab of y. No BLAS threads spin between
// calls while the pool works.
typedef struct {
    const collm_qmat *W;
    const float *x;
    float *y; // y[:, col]
    int64_t ldy, T;
    _Atomic int rc;
} deq_slab_job;

static void deq_slab_task(void *ctx, int64_t begin, int64_t end, int thread_index) {
    (void)thread_index;
    deq_slab_job *j = ctx;
    const collm_qmat *W = j->W;
    const int64_t K = W->cols, r_end = 16 * end < W->rows ? 16 * end : W->rows;
    float *tile = malloc((size_t)DEQ_TILE_ROWS * (size_t)K * sizeof(float));
    if (!tile) {
        atomic_store(&j->rc, collm_error(COLLM_ERR_NOMEM, "quantised matmul: out of memory for a %d x %lld tile",
                                         DEQ_TILE_ROWS, (long long)K));
        return;
    }
    for (int64_t r0 = 16 * begin; r0 < r_end; r0 += DEQ_TILE_ROWS) {
        const int64_t nr = r_end - r0 < DEQ_TILE_ROWS ? r_end - r0 : DEQ_TILE_ROWS;
        for (int64_t r = 0; r < nr; r++)
            collm_quant_dequant(W->type, (const uint8_t *)W->data + (size_t)(r0 + r) * W->row_bytes, tile + r * K, K);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)j->T, (int)nr, (int)K, 1.0f, j->x, (int)K, tile, (int)K,
                    0.0f, j->y + r0, (int)j->ldy);
    }
    free(tile);
}

// y[:, col .. col + W.rows) = x · Wᵀ through dequantised tiles (F32 weights: directly).
static int deq_sgemm(float *y, int64_t ldy, int64_t col, const float *x, int64_t T, const collm_qmat *W, collm_pool *pool,
                     float **tile) {
    const int64_t K = W->cols;
    if (W->type == COLLM_GGML_TYPE_F32) {
        collm_ops_gemm(0, 1, (int)T, (int)W->rows, (int)K, x, (int)K, W->data, (int)K, 0, y + col, (int)ldy, COLLM_GEMM_AUTO,
                       pool);
        return COLLM_OK;
    }
    if (collm_pool_size(pool) > 1 && openblas_get_num_threads() == 1) {
        deq_slab_job sj = {W, x, y + col, ldy, T, COLLM_OK};
        collm_pool_for(pool, (W->rows + 15) / 16, 1, deq_slab_task, &sj);
        return atomic_load(&sj.rc);
    }
    if (!*tile && !(*tile = malloc((size_t)DEQ_TILE_ROWS * (size_t)K * sizeof(float))))
        return collm_error(COLLM_ERR_NOMEM, "quantised matmul: out of memory for a %d x %lld tile", DEQ_TILE_ROWS, (long long)K);
    for (int64_t r0 = 0; r0 < W->rows; r0 += DEQ_TILE_ROWS) {
        int64_t nr = W->rows - r0 < DEQ_TILE_ROWS ? W->rows - r0 : DEQ_TILE_ROWS;
        deq_job j = {W, x, *tile, r0};
        collm_pool_for(pool, nr, 8, deq_task, &j);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, (int)nr, (int)K, 1.0f, x, (int)K, *tile, (int)K, 0.0f,
                    y + col + r0, (int)ldy);
    }
    return COLLM_OK;
}

typedef struct {
    collm_ggml_type vt;
    const float *x;
    uint8_t *xq;
    int64_t K;
    size_t row_bytes;
} act_job;

static void act_task(void *ctx, int64_t begin, int64_t end, int thread_index) {
    (void)thread_index;
    const act_job *j = ctx;
    for (int64_t t = begin; t < end; t++) collm_quant_act_row(j->vt, j->x + t * j->K, j->xq + (size_t)t * j->row_bytes, j->K);
}

typedef struct {
    const collm_qmat *W;
    const uint8_t *xq;
    size_t xrow;
    float *y;
    int64_t ldy, col, T;
} dot_job;

static void dot_task(void *ctx, int64_t begin, int64_t end, int thread_index) {
    (void)thread_index;
    const dot_job *j = ctx;
    const collm_qmat *W = j->W;
    for (int64_t r = begin; r < end; r++) {
        const uint8_t *w = (const uint8_t *)W->data + (size_t)r * W->row_bytes;
        for (int64_t t = 0; t < j->T; t++)
            j->y[t * j->ldy + j->col + r] = collm_quant_dot(W->type, w, j->xq + (size_t)t * j->xrow, W->cols);
    }
}

typedef struct {
    const collm_qmat *W;
    const float *xh;
    float *y;
    int64_t ldy, T;
} f16_job;

static void f16_task(void *ctx, int64_t begin, int64_t end, int thread_index) {
    (void)thread_index;
    const f16_job *j = ctx;
    collm_qtile_f16(j->W, 16 * begin, 16 * end < j->W->rows ? 16 * end : j->W->rows, j->xh, j->T, j->y, j->ldy);
}

// x rounded through F16 (llama.cpp's F16 activations), held as floats: rows [begin, end)
static void f16_act_task(void *ctx, int64_t begin, int64_t end, int thread_index) {
    (void)thread_index;
    const act_job *j = ctx;
    uint16_t h[256];
    for (int64_t t = begin; t < end; t++)
        for (int64_t k = 0; k < j->K; k += 256) {
            const int64_t n = j->K - k < 256 ? j->K - k : 256;
            collm_quant_act_row(COLLM_GGML_TYPE_F16, j->x + t * j->K + k, h, n);
            collm_quant_dequant(COLLM_GGML_TYPE_F16, h, (float *)(j->xq + (size_t)t * j->row_bytes) + k, n);
        }
}

typedef struct {
    collm_qtile_act *a;
    collm_ggml_type t;
    const uint8_t *xq;
    size_t xrow;
} tile_act_job;

static void tile_act_task(void *ctx, int64_t begin, int64_t end, int thread_index) {
    (void)thread_index;
    const tile_act_job *j = ctx;
    collm_qtile_act_fill(j->a, j->t, j->xq, j->xrow, begin, end);
}

typedef struct {
    const collm_qmat *W;
    const collm_qtile_act *a;
    float *y;
    int64_t ldy;
    _Atomic int rc;
} tile_job;

static void tile_task(void *ctx, int64_t begin, int64_t end, int thread_index) {
    (void)thread_index;
    tile_job *j = ctx;
    int rc = collm_qtile_gemm(j->W, begin, end, j->a, j->y, j->ldy);
    if (rc != COLLM_OK) atomic_store(&j->rc, rc);
}

int collm_qmm_forward(float *y, int64_t ldy, const float *x, int64_t T, const collm_qmat *parts, int n_parts,
                      collm_qmm_path path, collm_pool *pool) {
    if (T <= 0 || n_parts <= 0) return COLLM_OK;
    const int64_t K = parts[0].cols;
    if (path == COLLM_QMM_AUTO) path = current_path();
    const collm_qmm_path asked = path;
    int rc = COLLM_OK;
    float *tile = NULL;
    // activations quantised once per vec type the parts need (at most 2 here: Q4_K_M mixes Q4_K and Q6_K, both Q8_K),
    // and unpacked for the tiled kernel once per weight type
    collm_ggml_type have_vt = COLLM_GGML_TYPE_F32, have_tt = COLLM_GGML_TYPE_F32;
    uint8_t *xq = NULL;
    size_t xrow = 0;
    float *xh = NULL; // (T, K) x rounded through F16: the F16 kernel's input
    collm_qtile_act ta = {0};
    int64_t col = 0;
    for (int k = 0; k < n_parts && rc == COLLM_OK; k++) {
        const collm_qmat *W = &parts[k];
        path = asked != COLLM_QMM_AUTO ? asked : T >= sgemm_min_rows(W->type) ? COLLM_QMM_DEQ_SGEMM : COLLM_QMM_DOT;
        if (path == COLLM_QMM_DEQ_SGEMM || W->type == COLLM_GGML_TYPE_F32) {
            rc = deq_sgemm(y, ldy, col, x, T, W, pool, &tile);
            col += W->rows;
            continue;
        }
        if (W->type == COLLM_GGML_TYPE_F16 && collm_qtile_f16_ok() && asked != COLLM_QMM_ROWS) { // F32 FMAs on F16-rounded activations
            if (!xh) {
                if (!(xh = malloc((size_t)(T * K) * sizeof(float)))) {
                    rc = collm_error(COLLM_ERR_NOMEM, "quantised matmul: out of memory for %lld activation rows", (long long)T);
                    break;
                }
                act_job aj = {COLLM_GGML_TYPE_F16, x, (uint8_t *)xh, K, (size_t)K * sizeof(float)};
                collm_pool_for(pool, T, 4, f16_act_task, &aj);
            }
            f16_job fj = {W, xh, y + col, ldy, T};
            collm_pool_for(pool, (W->rows + 15) / 16, 1, f16_task, &fj);
            col += W->rows;
            continue;
        }
        collm_ggml_type vt = collm_quant_vec_type(W->type);
        if (!xq || vt != have_vt) {
            free(xq);
            xrow = collm_quant_row_bytes(vt, K);
            xq = malloc(xrow * (size_t)T);
            if (!xq) {
                rc = collm_error(COLLM_ERR_NOMEM, "quantised matmul: out of memory for %lld activation rows", (long long)T);
                break;
            }
            act_job aj = {vt, x, xq, K, xrow};
            collm_pool_for(pool, T, 4, act_task, &aj);
            have_vt = vt;
            have_tt = COLLM_GGML_TYPE_F32;
        }
        if (collm_qtile_ok(W->type) && asked != COLLM_QMM_ROWS && T >= (W->type == COLLM_GGML_TYPE_Q8_0 ? 8 : 4)) {
            if (W->type != have_tt) {
                collm_qtile_act_free(&ta);
                if ((rc = collm_qtile_act_alloc(&ta, W->type, T, K)) != COLLM_OK) break;
                tile_act_job aj = {&ta, W->type, xq, xrow};
                collm_pool_for(pool, T, 4, tile_act_task, &aj);
                have_tt = W->type;
            }
            tile_job tj = {W, &ta, y + col, ldy, COLLM_OK};
            collm_pool_for(pool, (W->rows + 15) / 16, 1, tile_task, &tj);
            rc = atomic_load(&tj.rc);
        } else {
            dot_job dj = {W, xq, xrow, y, ldy, col, T};
            collm_pool_for(pool, W->rows, 4, dot_task, &dj);
        }
        col += W->rows;
    }
    collm_qtile_act_free(&ta);
    free(xh);
    free(xq);
    free(tile);
    return rc;
}

int collm_qmm_backward_x(float *dx, const float *dy, int64_t lddy, int64_t T, const collm_qmat *W, collm_pool *pool) {
    const int64_t K = W->cols;
    if (W->type == COLLM_GGML_TYPE_F32) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)T, (int)K, (int)W->rows, 1.0f, dy, (int)lddy, W->data,
                    (int)K, 1.0f, dx, (int)K);
        return COLLM_OK;
    }
    float *tile = malloc((size_t)DEQ_TILE_ROWS * (size_t)K * sizeof(float));
    if (!tile) return collm_error(COLLM_ERR_NOMEM, "quantised backward: out of memory for a tile");
    // dx += dy[:, r0 .. r0 + nr) · W[r0 .. r0 + nr, :] tile by tile
    for (int64_t r0 = 0; r0 < W->rows; r0 += DEQ_TILE_ROWS) {
        int64_t nr = W->rows - r0 < DEQ_TILE_ROWS ? W->rows - r0 : DEQ_TILE_ROWS;
        deq_job j = {W, NULL, tile, r0};
        collm_pool_for(pool, nr, 8, deq_task, &j);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)T, (int)K, (int)nr, 1.0f, dy + r0, (int)lddy, tile,
                    (int)K, 1.0f, dx, (int)K);
    }
    free(tile);
    return COLLM_OK;
}

void collm_qmat_row(const collm_qmat *W, int64_t r, float *out) {
    collm_quant_dequant(W->type, (const uint8_t *)W->data + (size_t)r * W->row_bytes, out, W->cols);
}
