// SIMD dot products for quantised weights (see llm/quant.h), chosen once at
// run time: AVX2 when the CPU has it (and COLLM_ISA is not "baseline"),
// otherwise the scalar reference of llm/quant.c. Each kernel computes the
// same integer block sums as the reference (weights and activations are
// integers inside a block; only the float combination of the blocks runs in
// another order), which tests/test_quant.c checks type by type.
//
// The building block: a block of unsigned 8-bit weight codes u times signed
// 8-bit activations y, summed in int32 lanes by vpmaddubsw (u·y pairs to
// int16) and vpmaddwd (pairs to int32, optionally weighted by the group
// scales). Signed weights (Q8_0, Q4_0, Q5_0) use |w| and sign(y, w).
#include "llm/quant.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

// 0 scalar, 1 AVX2; -1 until the first call. Pool workers may race to
// set it: every thread computes the same value, so relaxed atomics suffice.
static _Atomic int quant_level = -1;

static int level(void) {
    int cached = atomic_load_explicit(&quant_level, memory_order_relaxed);
    if (cached >= 0) return cached;
    const char *force = getenv("COLLM_ISA");
    int l = 0;
#if defined(__x86_64__)
    __builtin_cpu_init();
    // F16C from CPUID leaf 1 (ECX bit 29): clang 14's __builtin_cpu_supports has no "f16c"
    unsigned a, b, c, d;
    int f16c = __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c) l = 1;
#endif
    if (force && strcmp(force, "baseline") == 0) l = 0;
    atomic_store_explicit(&quant_level, l, memory_order_relaxed);
    return l;
}

const char *collm_quant_isa(void) { return level() == 1 ? "avx2" : "scalar"; }

#if defined(__x86_64__)
#define AVX2 __attribute__((target("avx2,fma,f16c")))

AVX2 static inline float f16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h); // F16C: the same value as collm_f16_to_f32
}

AVX2 static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

AVX2 static inline int hsum_i32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

// u (unsigned bytes) · y (signed bytes): 8 int32 lanes, lane j = Σ of elements 4j..4j+3
AVX2 static inline __m256i dot_u8_i8(__m256i u, __m256i y) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, y), _mm256_set1_epi16(1));
}

// signed · signed
AVX2 static inline __m256i dot_i8_i8(__m256i w, __m256i y) {
    return dot_u8_i8(_mm256_sign_epi8(w, w), _mm256_sign_epi8(y, w));
}

// 32 nibbles of 16 bytes: low nibbles are elements 0..15, high ones 16..31
AVX2 static inline __m256i nibbles32(const uint8_t *p) {
    __m128i b = _mm_loadu_si128((const __m128i *)p);
    __m256i v = _mm256_set_m128i(_mm_srli_epi16(b, 4), b);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x0f));
}

// byte i = 0xff where bit i of the 32-bit word is set
AVX2 static inline __m256i bits32(const uint8_t *p) {
    uint32_t x;
    memcpy(&x, p, 4);
    const __m256i shuf = _mm256_setr_epi64x(0x0000000000000000, 0x0101010101010101, 0x0202020202020202, 0x0303030303030303);
    __m256i b = _mm256_shuffle_epi8(_mm256_set1_epi32((int)x), shuf);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    return _mm256_cmpeq_epi8(_mm256_and_si256(b, bit), bit);
}

// --- legacy blocks of 32 with Q8_0 / Q8_1 activations -----------------------

AVX2 static float dot_q8_0(const uint8_t *w, const uint8_t *x, int64_t nb) {
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++, w += 34, x += 34) {
        __m256i qw = _mm256_loadu_si256((const __m256i *)(w + 2)), qx = _mm256_loadu_si256((const __m256i *)(x + 2));
        __m256 s = _mm256_cvtepi32_ps(dot_i8_i8(qw, qx));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(f16(w) * f16(x)), s, acc);
    }
    return hsum(acc);
}

AVX2 static float dot_q4_0(const uint8_t *w, const uint8_t *x, int64_t nb) {
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++, w += 18, x += 34) {
        __m256i qw = _mm256_sub_epi8(nibbles32(w + 2), _mm256_set1_epi8(8));
        __m256 s = _mm256_cvtepi32_ps(dot_i8_i8(qw, _mm256_loadu_si256((const __m256i *)(x + 2))));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(f16(w) * f16(x)), s, acc);
    }
    return hsum(acc);
}

AVX2 static float dot_q5_0(const uint8_t *w, const uint8_t *x, int64_t nb) {
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++, w += 22, x += 34) {
        // q = (nibble | high bit << 4) - 16: the nibble minus 16 where the bit is clear
        __m256i hi = _mm256_andnot_si256(bits32(w + 2), _mm256_set1_epi8((char)0xf0));
        __m256i qw = _mm256_or_si256(nibbles32(w + 6), hi);
        __m256 s = _mm256_cvtepi32_ps(dot_i8_i8(qw, _mm256_loadu_si256((const __m256i *)(x + 2))));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(f16(w) * f16(x)), s, acc);
    }
    return hsum(acc);
}

// Q4_1 / Q5_1 with Q8_1: d_w d_y Σ q y + m_w s_y
AVX2 static float dot_q4_1(const uint8_t *w, const uint8_t *x, int64_t nb) {
    __m256 acc = _mm256_setzero_ps();
    float msum = 0.0f;
    for (int64_t i = 0; i < nb; i++, w += 20, x += 36) {
        __m256 s = _mm256_cvtepi32_ps(dot_u8_i8(nibbles32(w + 4), _mm256_loadu_si256((const __m256i *)(x + 4))));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(f16(w) * f16(x)), s, acc);
        msum += f16(w + 2) * f16(x + 2);
    }
    return hsum(acc) + msum;
}

AVX2 static float dot_q5_1(const uint8_t *w, const uint8_t *x, int64_t nb) {
    __m256 acc = _mm256_setzero_ps();
    float msum = 0.0f;
    for (int64_t i = 0; i < nb; i++, w += 24, x += 36) {
        __m256i hi = _mm256_and_si256(bits32(w + 4), _mm256_set1_epi8(0x10));
        __m256i qw = _mm256_or_si256(nibbles32(w + 8), hi);
        __m256 s = _mm256_cvtepi32_ps(dot_u8_i8(qw, _mm256_loadu_si256((const __m256i *)(x + 4))));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(f16(w) * f16(x)), s, acc);
        msum += f16(w + 2) * f16(x + 2);
    }
    return hsum(acc) + msum;
}

// --- K-quants with Q8_K activations (f32 d, q[256], i16 bsums[16]) -----------

// u (32 codes) · y weighted by group scales: lanes 0..3 (elements 0..15) by
// sa, lanes 4..7 (16..31) by sb
AVX2 static inline __m256i dot_scaled16(__m256i u, __m256i y, int sa, int sb) {
    __m256i sc = _mm256_set_m128i(_mm_set1_epi16((short)sb), _mm_set1_epi16((short)sa));
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, y), sc);
}

AVX2 static inline __m256i dot_scaled32(__m256i u, __m256i y, int s) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, y), _mm256_set1_epi16((short)s));
}

static void k4_scales(const uint8_t *s, int sc[8], int mn[8]) {
    for (int j = 0; j < 8; j++) {
        if (j < 4) {
            sc[j] = s[j] & 63;
            mn[j] = s[j + 4] & 63;
        } else {
            sc[j] = (s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4);
            mn[j] = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
        }
    }
}

static float yd_of(const uint8_t *x) {
    float d;
    memcpy(&d, x, 4);
    return d;
}

static void bsums_of(const uint8_t *x, int16_t b[16]) { memcpy(b, x + 4 + 256, 32); }

AVX2 static float dot_q4_k(const uint8_t *w, const uint8_t *x, int64_t nb) {
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++, w += 144, x += 292) {
        int sc[8], mn[8];
        int16_t bs[16];
        k4_scales(w + 4, sc, mn);
        bsums_of(x, bs);
        int msum = 0;
        for (int g = 0; g < 8; g++) msum += mn[g] * (bs[2 * g] + bs[2 * g + 1]);
        __m256i acc = _mm256_setzero_si256();
        const uint8_t *qs = w + 16;
        const int8_t *y = (const int8_t *)(x + 4);
        for (int j = 0; j < 4; j++) {
            __m256i b = _mm256_loadu_si256((const __m256i *)(qs + 32 * j));
            __m256i lo = _mm256_and_si256(b, _mm256_set1_epi8(0x0f));
            __m256i hi = _mm256_and_si256(_mm256_srli_epi16(b, 4), _mm256_set1_epi8(0x0f));
            acc = _mm256_add_epi32(acc, dot_scaled32(lo, _mm256_loadu_si256((const __m256i *)(y + 64 * j)), sc[2 * j]));
            acc = _mm256_add_epi32(acc, dot_scaled32(hi, _mm256_loadu_si256((const __m256i *)(y + 64 * j + 32)), sc[2 * j + 1]));
        }
        sum += yd_of(x) * (f16(w) * (float)hsum_i32(acc) - f16(w + 2) * (float)msum);
    }
    return sum;
}

AVX2 static float dot_q5_k(const uint8_t *w, const uint8_t *x, int64_t nb) {
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++, w += 176, x += 292) {
        int sc[8], mn[8];
        int16_t bs[16];
        k4_scales(w + 4, sc, mn);
        bsums_of(x, bs);
        int msum = 0;
        for (int g = 0; g < 8; g++) msum += mn[g] * (bs[2 * g] + bs[2 * g + 1]);
        __m256i acc = _mm256_setzero_si256();
        const __m256i qh = _mm256_loadu_si256((const __m256i *)(w + 16)), one = _mm256_set1_epi8(1);
        const uint8_t *qs = w + 48;
        const int8_t *y = (const int8_t *)(x + 4);
        for (int j = 0; j < 4; j++) {
            __m256i b = _mm256_loadu_si256((const __m256i *)(qs + 32 * j));
            __m256i hl = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * j), one), 4);
            __m256i hh = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * j + 1), one), 4);
            __m256i lo = _mm256_or_si256(_mm256_and_si256(b, _mm256_set1_epi8(0x0f)), hl);
            __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b, 4), _mm256_set1_epi8(0x0f)), hh);
            acc = _mm256_add_epi32(acc, dot_scaled32(lo, _mm256_loadu_si256((const __m256i *)(y + 64 * j)), sc[2 * j]));
            acc = _mm256_add_epi32(acc, dot_scaled32(hi, _mm256_loadu_si256((const __m256i *)(y + 64 * j + 32)), sc[2 * j + 1]));
        }
        sum += yd_of(x) * (f16(w) * (float)hsum_i32(acc) - f16(w + 2) * (float)msum);
    }
    return sum;
}

AVX2 static float dot_q6_k(const uint8_t *w, const uint8_t *x, int64_t nb) {
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++, w += 210, x += 292) {
        const int8_t *sc = (const int8_t *)(w + 192);
        int16_t bs[16];
        bsums_of(x, bs);
        int off = 0; // the codes are q + 32: subtract 32 Σ_g sc_g Σ y
        for (int g = 0; g < 16; g++) off += sc[g] * bs[g];
        __m256i acc = _mm256_setzero_si256();
        const __m256i m4 = _mm256_set1_epi8(0x0f), m2 = _mm256_set1_epi8(3);
        const int8_t *y = (const int8_t *)(x + 4);
        for (int n = 0; n < 2; n++) {
            const uint8_t *ql = w + 64 * n, *qh = w + 128 + 32 * n;
            const int8_t *yn = y + 128 * n, *s = sc + 8 * n;
            __m256i l0 = _mm256_loadu_si256((const __m256i *)ql), l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
            __m256i h = _mm256_loadu_si256((const __m256i *)qh);
            __m256i q0 = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_slli_epi16(_mm256_and_si256(h, m2), 4));
            __m256i q1 = _mm256_or_si256(_mm256_and_si256(l1, m4),
                                         _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 2), m2), 4));
            __m256i q2 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                                         _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 4), m2), 4));
            __m256i q3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                                         _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 6), m2), 4));
            acc = _mm256_add_epi32(acc, dot_scaled16(q0, _mm256_loadu_si256((const __m256i *)yn), s[0], s[1]));
            acc = _mm256_add_epi32(acc, dot_scaled16(q1, _mm256_loadu_si256((const __m256i *)(yn + 32)), s[2], s[3]));
            acc = _mm256_add_epi32(acc, dot_scaled16(q2, _mm256_loadu_si256((const __m256i *)(yn + 64)), s[4], s[5]));
            acc = _mm256_add_epi32(acc, dot_scaled16(q3, _mm256_loadu_si256((const __m256i *)(yn + 96)), s[6], s[7]));
        }
        sum += yd_of(x) * f16(w + 208) * (float)(hsum_i32(acc) - 32 * off);
    }
    return sum;
}

AVX2 static float dot_q2_k(const uint8_t *w, const uint8_t *x, int64_t nb) {
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++, w += 84, x += 292) {
        int16_t bs[16];
        bsums_of(x, bs);
        int msum = 0;
        for (int g = 0; g < 16; g++) msum += (w[g] >> 4) * bs[g];
        __m256i acc = _mm256_setzero_si256();
        const int8_t *y = (const int8_t *)(x + 4);
        for (int n = 0; n < 2; n++) {
            __m256i b = _mm256_loadu_si256((const __m256i *)(w + 16 + 32 * n));
            for (int j = 0; j < 4; j++) {
                __m256i q = _mm256_and_si256(_mm256_srli_epi16(b, 2 * j), _mm256_set1_epi8(3));
                int g = 8 * n + 2 * j;
                acc = _mm256_add_epi32(acc, dot_scaled16(q, _mm256_loadu_si256((const __m256i *)(y + 128 * n + 32 * j)),
                                                         w[g] & 0x0f, w[g + 1] & 0x0f));
            }
        }
        sum += yd_of(x) * (f16(w + 80) * (float)hsum_i32(acc) - f16(w + 82) * (float)msum);
    }
    return sum;
}

AVX2 static float dot_q3_k(const uint8_t *w, const uint8_t *x, int64_t nb) {
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++, w += 110, x += 292) {
        const uint8_t *s = w + 96;
        int sc[16];
        for (int g = 0; g < 16; g++)
            sc[g] = (((s[g % 8] >> (4 * (g / 8))) & 0x0f) | (((s[8 + g % 4] >> (2 * (g / 4))) & 3) << 4)) - 32;
        int16_t bs[16];
        bsums_of(x, bs);
        int off = 0; // codes are q + 4: subtract 4 Σ_g sc_g Σ y
        for (int g = 0; g < 16; g++) off += sc[g] * bs[g];
        __m256i acc = _mm256_setzero_si256();
        const __m256i hm = _mm256_loadu_si256((const __m256i *)w), one = _mm256_set1_epi8(1);
        const int8_t *y = (const int8_t *)(x + 4);
        for (int n = 0; n < 2; n++) {
            __m256i b = _mm256_loadu_si256((const __m256i *)(w + 32 + 32 * n));
            for (int j = 0; j < 4; j++) {
                __m256i h = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hm, 4 * n + j), one), 2);
                __m256i q = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b, 2 * j), _mm256_set1_epi8(3)), h);
                int g = 8 * n + 2 * j;
                acc = _mm256_add_epi32(acc, dot_scaled16(q, _mm256_loadu_si256((const __m256i *)(y + 128 * n + 32 * j)),
                                                         sc[g], sc[g + 1]));
            }
        }
        sum += yd_of(x) * f16(w + 108) * (float)(hsum_i32(acc) - 4 * off);
    }
    return sum;
}

// --- half precision: F16 · F16, BF16 · BF16 in F32 FMAs ----------------------

AVX2 static float dot_f16(const uint8_t *w, const uint8_t *x, int64_t n) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        a0 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + 2 * i))),
                             _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + 2 * i))), a0);
        a1 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + 2 * i + 16))),
                             _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + 2 * i + 16))), a1);
    }
    float s = hsum(_mm256_add_ps(a0, a1));
    for (; i < n; i++) s += f16(w + 2 * i) * f16(x + 2 * i);
    return s;
}

AVX2 static inline __m256 bf16x8(const uint8_t *p) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}

AVX2 static float dot_bf16(const uint8_t *w, const uint8_t *x, int64_t n) {
    __m256 a0 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(bf16x8(w + 2 * i), bf16x8(x + 2 * i), a0);
    float s = hsum(a0);
    for (; i < n; i++) {
        uint16_t a, b;
        memcpy(&a, w + 2 * i, 2);
        memcpy(&b, x + 2 * i, 2);
        s += collm_bf16_to_f32(a) * collm_bf16_to_f32(b);
    }
    return s;
}

AVX2 static float dot_f32(const float *w, const float *x, int64_t n) {
    __m256 a0 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(x + i), a0);
    float s = hsum(a0);
    for (; i < n; i++) s += w[i] * x[i];
    return s;
}

static float dot_avx2(collm_ggml_type wt, const void *w, const void *x, int64_t n) {
    switch (wt) {
    case COLLM_GGML_TYPE_F32: return dot_f32(w, x, n);
    case COLLM_GGML_TYPE_F16: return dot_f16(w, x, n);
    case COLLM_GGML_TYPE_BF16: return dot_bf16(w, x, n);
    case COLLM_GGML_TYPE_Q8_0: return dot_q8_0(w, x, n / 32);
    case COLLM_GGML_TYPE_Q4_0: return dot_q4_0(w, x, n / 32);
    case COLLM_GGML_TYPE_Q5_0: return dot_q5_0(w, x, n / 32);
    case COLLM_GGML_TYPE_Q4_1: return dot_q4_1(w, x, n / 32);
    case COLLM_GGML_TYPE_Q5_1: return dot_q5_1(w, x, n / 32);
    case COLLM_GGML_TYPE_Q2_K: return dot_q2_k(w, x, n / 256);
    case COLLM_GGML_TYPE_Q3_K: return dot_q3_k(w, x, n / 256);
    case COLLM_GGML_TYPE_Q4_K: return dot_q4_k(w, x, n / 256);
    case COLLM_GGML_TYPE_Q5_K: return dot_q5_k(w, x, n / 256);
    case COLLM_GGML_TYPE_Q6_K: return dot_q6_k(w, x, n / 256);
    default: return collm_quant_dot_ref(wt, w, x, n);
    }
}
#endif

float collm_quant_dot(collm_ggml_type wt, const void *w, const void *x, int64_t n) {
#if defined(__x86_64__)
    if (level() == 1) return dot_avx2(wt, w, x, n);
#endif
    return collm_quant_dot_ref(wt, w, x, n);
}
