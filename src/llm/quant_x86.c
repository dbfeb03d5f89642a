// SIMD kernels for quantised weights (see llm/quant.h), chosen once at run
// time by CPUID: AVX2 row dots, dequantisers and the tiled product of 16
// rows at a time (end of the file) when the CPU has AVX2, FMA and F16C; the
// tiled product with VNNI when it also has AVX-512 F/BW/VL and VNNI;
// otherwise the scalar reference of llm/quant.c (COLLM_ISA=baseline forces
// it, x86-64-v3 caps at AVX2). Each kernel computes the
// same integer block sums as the reference (weights and activations are
// integers inside a block; only the float combination of the blocks runs in
// another order), which tests/test_quant.c checks type by type.
//
// The building block: a block of unsigned 8-bit weight codes u times signed
// 8-bit activations y, summed in int32 lanes by vpmaddubsw (u·y pairs to
// int16) and vpmaddwd (pairs to int32, optionally weighted by the group
// scales). Signed weights (Q8_0, Q4_0, Q5_0) use |w| and sign(y, w).
#include "llm/quant.h"

#include "collm/error.h"
#include "core/env.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

// 0 scalar, 1 AVX2 (+FMA, F16C), 2 AVX2 and AVX-512 F/BW/VL with VNNI; -1
// until the first call. Pool workers may race to set it: every thread
// computes the same value, so relaxed atomics suffice.
static _Atomic int quant_level = -1;
static _Atomic int quant_max = -1; // what the CPU has (COLLM_ISA applied)

static int detect(void) {
    const int force = collm_env_setting_value(COLLM_ENV_ISA); // core/env.h
    int l = 0;
#if defined(__x86_64__)
    __builtin_cpu_init();
    // F16C (leaf 1, ECX bit 29) and AVX512_VNNI (leaf 7, ECX bit 11) from
    // CPUID: clang 14's __builtin_cpu_supports knows neither name.
    // __builtin_cpu_supports("avx512f") also checks that the OS saves the
    // ZMM state.
    unsigned a, b, c, d;
    int f16c = __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
    int vnni = __get_cpuid_count(7, 0, &a, &b, &c, &d) && (c & (1u << 11));
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c) l = 1;
    if (l == 1 && vnni && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl"))
        l = 2;
#endif
    if (force == COLLM_ENV_ISA_BASELINE) l = 0;
    if ((force == COLLM_ENV_ISA_V3 || force == COLLM_ENV_ISA_AVX2) && l > 1) l = 1;
    return l;
}

static int level(void) {
    int cached = atomic_load_explicit(&quant_level, memory_order_relaxed);
    if (cached >= 0) return cached;
    int l = detect();
    atomic_store_explicit(&quant_max, l, memory_order_relaxed);
    atomic_store_explicit(&quant_level, l, memory_order_relaxed);
    return l;
}

static const char *isa_name(int l) { return l == 2 ? "avx512vnni" : l == 1 ? "avx2" : "scalar"; }

const char *collm_quant_isa(void) { return isa_name(level()); }

const char *collm_quant_set_isa(int l) {
    level();
    int max = atomic_load_explicit(&quant_max, memory_order_relaxed);
    if (l < 0 || l > max) l = max;
    atomic_store_explicit(&quant_level, l, memory_order_relaxed);
    return isa_name(l);
}

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

// Q6_K / the dot kernel's codes of half n (0..63 each), elements 128n + 32i + l
AVX2 static inline void q6_codes(const uint8_t *w, int n, __m256i q[4]) {
    const __m256i m4 = _mm256_set1_epi8(0x0f), m2 = _mm256_set1_epi8(3);
    const uint8_t *ql = w + 64 * n, *qh = w + 128 + 32 * n;
    __m256i l0 = _mm256_loadu_si256((const __m256i *)ql), l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
    __m256i h = _mm256_loadu_si256((const __m256i *)qh);
    q[0] = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_slli_epi16(_mm256_and_si256(h, m2), 4));
    q[1] = _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 2), m2), 4));
    q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                           _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 4), m2), 4));
    q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                           _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 6), m2), 4));
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
        const int8_t *y = (const int8_t *)(x + 4);
        for (int n = 0; n < 2; n++) {
            const int8_t *yn = y + 128 * n, *s = sc + 8 * n;
            __m256i q[4];
            q6_codes(w, n, q);
            for (int i = 0; i < 4; i++)
                acc = _mm256_add_epi32(acc, dot_scaled16(q[i], _mm256_loadu_si256((const __m256i *)(yn + 32 * i)), s[2 * i], s[2 * i + 1]));
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

// --- dequantisation (the sgemm path's tiles): bit for bit the reference's
// x = dl·q − ml (a product then a difference, never fused) --------------------

// 16 signed codes q to y[0..15] = dl·q − ml
AVX2 static inline void emit16(float *y, __m128i q, float dl, float ml) {
    const __m256 d = _mm256_set1_ps(dl), m = _mm256_set1_ps(ml);
    __m256 v0 = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)));
    __m256 v1 = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(q, 8))));
    _mm256_storeu_ps(y, _mm256_sub_ps(v0, m));
    _mm256_storeu_ps(y + 8, _mm256_sub_ps(v1, m));
}

AVX2 static inline void emit32(float *y, __m256i q, float dl, float ml) {
    emit16(y, _mm256_castsi256_si128(q), dl, ml);
    emit16(y + 16, _mm256_extracti128_si256(q, 1), dl, ml);
}

// 1 when the type has a SIMD dequantiser (the rest go through the reference)
AVX2 static int deq_avx2(collm_ggml_type t, const uint8_t *w, float *y, int64_t n) {
    switch (t) {
    case COLLM_GGML_TYPE_F16: {
        int64_t i = 0;
        for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + 2 * i))));
        for (; i < n; i++) y[i] = f16(w + 2 * i);
        return 1;
    }
    case COLLM_GGML_TYPE_Q8_0:
        for (int64_t b = 0; b < n / 32; b++, w += 34) emit32(y + 32 * b, _mm256_loadu_si256((const __m256i *)(w + 2)), f16(w), -0.0f);
        return 1;
    case COLLM_GGML_TYPE_Q4_0:
        for (int64_t b = 0; b < n / 32; b++, w += 18)
            emit32(y + 32 * b, _mm256_sub_epi8(nibbles32(w + 2), _mm256_set1_epi8(8)), f16(w), -0.0f);
        return 1;
    case COLLM_GGML_TYPE_Q4_K:
        for (int64_t b = 0; b < n / 256; b++, w += 144, y += 256) {
            int sc[8], mn[8];
            k4_scales(w + 4, sc, mn);
            const float d = f16(w), dmin = f16(w + 2);
            for (int j = 0; j < 4; j++) {
                __m256i q = _mm256_loadu_si256((const __m256i *)(w + 16 + 32 * j));
                emit32(y + 64 * j, _mm256_and_si256(q, _mm256_set1_epi8(0x0f)), d * (float)sc[2 * j], dmin * (float)mn[2 * j]);
                emit32(y + 64 * j + 32, _mm256_and_si256(_mm256_srli_epi16(q, 4), _mm256_set1_epi8(0x0f)),
                       d * (float)sc[2 * j + 1], dmin * (float)mn[2 * j + 1]);
            }
        }
        return 1;
    case COLLM_GGML_TYPE_Q6_K:
        for (int64_t b = 0; b < n / 256; b++, w += 210, y += 256) {
            const int8_t *sc = (const int8_t *)(w + 192);
            const float d = f16(w + 208);
            for (int h = 0; h < 2; h++) {
                __m256i q[4];
                q6_codes(w, h, q);
                for (int i = 0; i < 4; i++) { // 32 elements, two scale groups of 16
                    __m256i c = _mm256_sub_epi8(q[i], _mm256_set1_epi8(32));
                    float *yi = y + 128 * h + 32 * i;
                    emit16(yi, _mm256_castsi256_si128(c), d * (float)sc[8 * h + 2 * i], 0.0f);
                    emit16(yi + 16, _mm256_extracti128_si256(c, 1), d * (float)sc[8 * h + 2 * i + 1], 0.0f);
                }
            }
        }
        return 1;
    default: return 0;
    }
}

// --- activation quantisation: the reference's codes byte for byte (the
// same products, round-half-even as nearbyintf, the same extreme) -----------

// 32 int32 lanes (4 vectors, elements in order) to 32 int8 in order
AVX2 static inline __m256i pack32(__m256i v0, __m256i v1, __m256i v2, __m256i v3) {
    __m256i b = _mm256_packs_epi16(_mm256_packs_epi32(v0, v1), _mm256_packs_epi32(v2, v3));
    return _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

// the largest of 8 magnitudes (once per block: a plain loop)
AVX2 static inline float hmax(__m256 v) {
    float t[8], m = 0.0f;
    _mm256_storeu_ps(t, v);
    for (int i = 0; i < 8; i++) m = t[i] > m ? t[i] : m;
    return m;
}

AVX2 static inline __m256i round_i32(__m256 v) {
    return _mm256_cvtps_epi32(_mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

// 1 when vt has a SIMD quantiser (F16, Q8_0, Q8_K; the rest go through the reference)
AVX2 static int act_avx2(collm_ggml_type vt, const float *x, uint8_t *p, int64_t n) {
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    if (vt == COLLM_GGML_TYPE_Q8_0) {
        for (int64_t i = 0; i < n / 32; i++, x += 32, p += 34) {
            __m256 v[4], m = _mm256_setzero_ps();
            for (int j = 0; j < 4; j++) {
                v[j] = _mm256_loadu_ps(x + 8 * j);
                m = _mm256_max_ps(m, _mm256_and_ps(v[j], abs_mask));
            }
            const float amax = hmax(m), d = amax / 127.0f, id = amax != 0.0f ? 127.0f / amax : 0.0f;
            __m256i q[4];
            for (int j = 0; j < 4; j++) q[j] = round_i32(_mm256_mul_ps(v[j], _mm256_set1_ps(id)));
            _mm256_storeu_si256((__m256i *)(p + 2), pack32(q[0], q[1], q[2], q[3]));
            uint16_t h = collm_f32_to_f16(d);
            memcpy(p, &h, 2);
        }
        return 1;
    }
    if (vt == COLLM_GGML_TYPE_F16) { // F16C rounds to nearest even, as collm_f32_to_f16
        int64_t i = 0;
        for (; i + 8 <= n; i += 8)
            _mm_storeu_si128((__m128i *)(p + 2 * i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
        for (; i < n; i++) {
            uint16_t h = collm_f32_to_f16(x[i]);
            memcpy(p + 2 * i, &h, 2);
        }
        return 1;
    }
    if (vt == COLLM_GGML_TYPE_Q8_K) {
        for (int64_t i = 0; i < n / COLLM_QK_K; i++, x += COLLM_QK_K, p += 292) {
            __m256 m = _mm256_setzero_ps();
            for (int j = 0; j < COLLM_QK_K; j += 8) m = _mm256_max_ps(m, _mm256_and_ps(_mm256_loadu_ps(x + j), abs_mask));
            const float amax = hmax(m);
            int16_t bsums[16] = {0};
            float d = 0.0f;
            if (amax == 0.0f) {
                memset(p + 4, 0, COLLM_QK_K);
            } else {
                int j0 = 0; // the first element of largest magnitude: its sign sets the scale's
                while (fabsf(x[j0]) != amax) j0++;
                const float iscale = -127.0f / x[j0];
                const __m256 is = _mm256_set1_ps(iscale);
                const __m256i cap = _mm256_set1_epi32(127);
                for (int j = 0; j < COLLM_QK_K; j += 32) {
                    __m256i q[4];
                    for (int k = 0; k < 4; k++)
                        q[k] = _mm256_min_epi32(round_i32(_mm256_mul_ps(is, _mm256_loadu_ps(x + j + 8 * k))), cap);
                    _mm256_storeu_si256((__m256i *)(p + 4 + j), pack32(q[0], q[1], q[2], q[3]));
                    bsums[j / 16] = (int16_t)hsum_i32(_mm256_add_epi32(q[0], q[1]));
                    bsums[j / 16 + 1] = (int16_t)hsum_i32(_mm256_add_epi32(q[2], q[3]));
                }
                d = 1.0f / iscale;
            }
            memcpy(p, &d, 4);
            memcpy(p + 4 + COLLM_QK_K, bsums, sizeof bsums);
        }
        return 1;
    }
    return 0;
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
    if (level() >= 1) return dot_avx2(wt, w, x, n);
#endif
    return collm_quant_dot_ref(wt, w, x, n);
}

void collm_quant_dequant(collm_ggml_type t, const void *src, float *dst, int64_t n) {
#if defined(__x86_64__)
    if (level() >= 1 && deq_avx2(t, src, dst, n)) return;
#endif
    collm_quant_dequant_row(t, src, dst, n);
}

// --- the tiled kernel: 16 weight rows x up to 8 activation rows (AVX-512 VNNI)
//
// A row dot product pays, per block, a horizontal sum and a float scaling
// for 32 multiply-adds. Here 16 weight rows are interleaved by 4-byte words
// (64 bytes: word k of rows 0..15), so one vpdpbusd against the same 4
// activation bytes broadcast adds a word to 16 row sums at once, and a
// scale group of G elements costs G/4 vpdpbusd, then one float scaling for
// all 16 rows. The weights are stored unsigned (u = q + offset); the
// integer accumulator starts at −offset · Σy of the group, so it ends at
// Σ q·y exactly, the integer sum of the reference.
//   x·y over a group = yd · s · Σ q·y − m · (yd · Σy)
// s = d·sc, m = dmin·mn (Q4_K, Q5_K), s = d, m = −m_w (Q4_1, Q5_1: the
// block adds m_w·s_y), else m = 0, per weight row and group; yd the
// activation scale of the block (Q8_0, Q8_1) or super-block (Q8_K), and
// yd·Σy the block's stored sum s_y for Q8_1 (F16, as the reference reads it).

typedef struct {
    int G, offset, mins;
} tile_kind;

static int tile_kind_of(collm_ggml_type t, tile_kind *k) {
    switch (t) {
    case COLLM_GGML_TYPE_Q8_0: *k = (tile_kind){32, 128, 0}; return 1;
    case COLLM_GGML_TYPE_Q4_0: *k = (tile_kind){32, 8, 0}; return 1;
    case COLLM_GGML_TYPE_Q5_0: *k = (tile_kind){32, 16, 0}; return 1;
    case COLLM_GGML_TYPE_Q4_1: *k = (tile_kind){32, 0, 1}; return 1;
    case COLLM_GGML_TYPE_Q5_1: *k = (tile_kind){32, 0, 1}; return 1;
    case COLLM_GGML_TYPE_Q4_K: *k = (tile_kind){32, 0, 1}; return 1;
    case COLLM_GGML_TYPE_Q5_K: *k = (tile_kind){32, 0, 1}; return 1;
    case COLLM_GGML_TYPE_Q6_K: *k = (tile_kind){16, 32, 0}; return 1;
    default: return 0;
    }
}

int collm_qtile_ok(collm_ggml_type t) {
    tile_kind k = {32, 0, 0};
    return level() >= 1 && tile_kind_of(t, &k);
}

int collm_qtile_act_alloc(collm_qtile_act *a, collm_ggml_type t, int64_t T, int64_t K) {
    memset(a, 0, sizeof *a);
    tile_kind k = {32, 0, 0};
    if (!tile_kind_of(t, &k)) return collm_error(COLLM_ERR_ARG, "tiled kernel: no kernel for %s", collm_ggml_type_name(t));
    a->T = T;
    a->K = K;
    a->G = k.G;
    a->ng = K / k.G;
    a->codes = malloc((size_t)(T * K));
    a->init = malloc((size_t)(T * a->ng) * sizeof(int32_t));
    a->yd = malloc((size_t)(T * a->ng) * sizeof(float));
    a->yb = malloc((size_t)(T * a->ng) * sizeof(float));
    if (!a->codes || !a->init || !a->yd || !a->yb) {
        collm_qtile_act_free(a);
        return collm_error(COLLM_ERR_NOMEM, "tiled kernel: out of memory for %lld activation rows", (long long)T);
    }
    return COLLM_OK;
}

void collm_qtile_act_free(collm_qtile_act *a) {
    free(a->codes);
    free(a->init);
    free(a->yd);
    free(a->yb);
    memset(a, 0, sizeof *a);
}

void collm_qtile_act_fill(collm_qtile_act *a, collm_ggml_type t, const uint8_t *xq, size_t xrow, int64_t t0, int64_t t1) {
    tile_kind k = {32, 0, 0};
    tile_kind_of(t, &k);
    const int64_t K = a->K, ng = a->ng, G = a->G;
    const collm_ggml_type vt = collm_quant_vec_type(t);
    const int q8k = vt == COLLM_GGML_TYPE_Q8_K, q81 = vt == COLLM_GGML_TYPE_Q8_1;
    for (int64_t r = t0; r < t1; r++) {
        const uint8_t *x = xq + (size_t)r * xrow;
        int8_t *codes = a->codes + r * K;
        for (int64_t g = 0; g < ng; g++) {
            const int64_t e = g * G; // first element of the group
            const uint8_t *blk = q8k ? x + 292 * (e / 256) : x + (q81 ? 36 : 34) * (e / 32);
            const int8_t *q = (const int8_t *)(q8k ? blk + 4 + e % 256 : blk + (q81 ? 4 : 2));
            float yd;
            if (q8k) memcpy(&yd, blk, 4);
            else yd = collm_f16_to_f32((uint16_t)(blk[0] | blk[1] << 8));
            int sum = 0;
            for (int j = 0; j < G; j++) sum += q[j];
            memcpy(codes + e, q, (size_t)G);
            a->init[r * ng + g] = -k.offset * sum;
            a->yd[r * ng + g] = yd;
            a->yb[r * ng + g] = q81 ? collm_f16_to_f32((uint16_t)(blk[2] | blk[3] << 8)) : yd * (float)sum;
        }
    }
}

#if defined(__x86_64__)
#define VNNI __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")))

// Row w (K elements of type t) as unsigned codes u (K bytes) and per group
// the float scale s and min m (see above). AVX2 only: both tiled kernels use it.
AVX2 static void tile_decode_row(collm_ggml_type t, const uint8_t *w, int64_t K, uint8_t *u, float *s, float *m) {
    switch (t) {
    case COLLM_GGML_TYPE_Q8_0:
        for (int64_t b = 0; b < K / 32; b++, w += 34) {
            __m256i q = _mm256_loadu_si256((const __m256i *)(w + 2));
            _mm256_storeu_si256((__m256i *)(u + 32 * b), _mm256_xor_si256(q, _mm256_set1_epi8((char)0x80)));
            s[b] = f16(w);
            m[b] = 0.0f;
        }
        return;
    case COLLM_GGML_TYPE_Q4_0:
        for (int64_t b = 0; b < K / 32; b++, w += 18) {
            _mm256_storeu_si256((__m256i *)(u + 32 * b), nibbles32(w + 2));
            s[b] = f16(w);
            m[b] = 0.0f;
        }
        return;
    case COLLM_GGML_TYPE_Q5_0: // u = q + 16: the nibble, plus 16 where the element's bit of qh is set
        for (int64_t b = 0; b < K / 32; b++, w += 22) {
            __m256i hi = _mm256_and_si256(bits32(w + 2), _mm256_set1_epi8(0x10));
            _mm256_storeu_si256((__m256i *)(u + 32 * b), _mm256_or_si256(nibbles32(w + 6), hi));
            s[b] = f16(w);
            m[b] = 0.0f;
        }
        return;
    case COLLM_GGML_TYPE_Q4_1: // d, m, qs[16]: u = q
        for (int64_t b = 0; b < K / 32; b++, w += 20) {
            _mm256_storeu_si256((__m256i *)(u + 32 * b), nibbles32(w + 4));
            s[b] = f16(w);
            m[b] = -f16(w + 2);
        }
        return;
    case COLLM_GGML_TYPE_Q5_1: // d, m, qh[4], qs[16]: u = q, the nibble plus 16 where the bit is set
        for (int64_t b = 0; b < K / 32; b++, w += 24) {
            __m256i hi = _mm256_and_si256(bits32(w + 4), _mm256_set1_epi8(0x10));
            _mm256_storeu_si256((__m256i *)(u + 32 * b), _mm256_or_si256(nibbles32(w + 8), hi));
            s[b] = f16(w);
            m[b] = -f16(w + 2);
        }
        return;
    case COLLM_GGML_TYPE_Q5_K: // Q4_K's scales and mins, a fifth bit per element from qh
        for (int64_t b = 0; b < K / 256; b++, w += 176, u += 256, s += 8, m += 8) {
            int sc[8], mn[8];
            k4_scales(w + 4, sc, mn);
            const float d = f16(w), dmin = f16(w + 2);
            const __m256i qh = _mm256_loadu_si256((const __m256i *)(w + 16)), one = _mm256_set1_epi8(1);
            for (int j = 0; j < 4; j++) {
                __m256i q = _mm256_loadu_si256((const __m256i *)(w + 48 + 32 * j));
                __m256i hl = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * j), one), 4);
                __m256i hh = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * j + 1), one), 4);
                _mm256_storeu_si256((__m256i *)(u + 64 * j), _mm256_or_si256(_mm256_and_si256(q, _mm256_set1_epi8(0x0f)), hl));
                _mm256_storeu_si256((__m256i *)(u + 64 * j + 32),
                                    _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), _mm256_set1_epi8(0x0f)), hh));
            }
            for (int g = 0; g < 8; g++) {
                s[g] = d * (float)sc[g];
                m[g] = dmin * (float)mn[g];
            }
        }
        return;
    case COLLM_GGML_TYPE_Q4_K:
        for (int64_t b = 0; b < K / 256; b++, w += 144, u += 256, s += 8, m += 8) {
            int sc[8], mn[8];
            k4_scales(w + 4, sc, mn);
            const float d = f16(w), dmin = f16(w + 2);
            for (int j = 0; j < 4; j++) {
                __m256i q = _mm256_loadu_si256((const __m256i *)(w + 16 + 32 * j));
                _mm256_storeu_si256((__m256i *)(u + 64 * j), _mm256_and_si256(q, _mm256_set1_epi8(0x0f)));
                _mm256_storeu_si256((__m256i *)(u + 64 * j + 32),
                                    _mm256_and_si256(_mm256_srli_epi16(q, 4), _mm256_set1_epi8(0x0f)));
            }
            for (int g = 0; g < 8; g++) {
                s[g] = d * (float)sc[g];
                m[g] = dmin * (float)mn[g];
            }
        }
        return;
    case COLLM_GGML_TYPE_Q6_K:
        for (int64_t b = 0; b < K / 256; b++, w += 210, u += 256, s += 16, m += 16) {
            for (int h = 0; h < 2; h++) {
                __m256i q[4];
                q6_codes(w, h, q);
                for (int i = 0; i < 4; i++) _mm256_storeu_si256((__m256i *)(u + 128 * h + 32 * i), q[i]);
            }
            const float d = f16(w + 208);
            for (int g = 0; g < 16; g++) {
                s[g] = d * (float)(int8_t)w[192 + g];
                m[g] = 0.0f;
            }
        }
        return;
    default: return;
    }
}

// 16 rows of codes (row i at u + i·K) to words interleaved by row: 64 bytes
// per 4-byte word index, rows 0..15 in order. Per 16-byte column chunk: four
// 4-row blocks, a 4x4 word transpose inside each 128-bit lane, then a 4x4
// transpose of the lanes.
VNNI static void tile_interleave(const uint8_t *u, int64_t K, uint8_t *out) {
    const __m512i idx = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    for (int64_t j = 0; j < K / 16; j++) {
        __m512i p[4];
        for (int q = 0; q < 4; q++) {
            const uint8_t *r = u + (4 * q) * K + 16 * j;
            __m512i z = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)r));
            z = _mm512_inserti32x4(z, _mm_loadu_si128((const __m128i *)(r + K)), 1);
            z = _mm512_inserti32x4(z, _mm_loadu_si128((const __m128i *)(r + 2 * K)), 2);
            z = _mm512_inserti32x4(z, _mm_loadu_si128((const __m128i *)(r + 3 * K)), 3);
            p[q] = _mm512_permutexvar_epi32(idx, z); // lane k: the 4 rows' word k
        }
        __m512i a = _mm512_shuffle_i32x4(p[0], p[1], _MM_SHUFFLE(1, 0, 1, 0));
        __m512i b = _mm512_shuffle_i32x4(p[0], p[1], _MM_SHUFFLE(3, 2, 3, 2));
        __m512i c = _mm512_shuffle_i32x4(p[2], p[3], _MM_SHUFFLE(1, 0, 1, 0));
        __m512i d = _mm512_shuffle_i32x4(p[2], p[3], _MM_SHUFFLE(3, 2, 3, 2));
        uint8_t *o = out + 256 * j;
        _mm512_storeu_si512(o, _mm512_shuffle_i32x4(a, c, _MM_SHUFFLE(2, 0, 2, 0)));
        _mm512_storeu_si512(o + 64, _mm512_shuffle_i32x4(a, c, _MM_SHUFFLE(3, 1, 3, 1)));
        _mm512_storeu_si512(o + 128, _mm512_shuffle_i32x4(b, d, _MM_SHUFFLE(2, 0, 2, 0)));
        _mm512_storeu_si512(o + 192, _mm512_shuffle_i32x4(b, d, _MM_SHUFFLE(3, 1, 3, 1)));
    }
}

// The scratch of one row group (tile_gemm, tile_gemm_avx2), one block: codes
// u of 16 rows (16·K bytes), their interleaving rep (16·K), per row then per
// group the scales and mins s16, m16, and per group the 16 rows' S and M.
typedef struct {
    uint8_t *u, *rep;
    float *s16, *m16, *S, *M;
    int64_t ng;
} tile_scratch;

static int tile_scratch_alloc(tile_scratch *b, const collm_qmat *W, tile_kind *k) {
    tile_kind_of(W->type, k);
    const int64_t K = W->cols, ng = K / k->G;
    b->u = aligned_alloc(64, (size_t)(32 * K + 64 * 4 * ng + 64));
    if (!b->u) return collm_error(COLLM_ERR_NOMEM, "tiled kernel: out of memory for a %lld-column row group", (long long)K);
    b->rep = b->u + 16 * K;
    b->s16 = (float *)(b->rep + 16 * K);
    b->m16 = b->s16 + 16 * ng;
    b->S = b->m16 + 16 * ng;
    b->M = b->S + 16 * ng;
    b->ng = ng;
    return COLLM_OK;
}

// Rows [r0, r0 + nr) of W (nr <= 16) decoded into b: codes u (16 rows of K
// bytes; rows past the matrix zero, with zero scales), and per group the 16
// rows' scales S and mins M side by side (16 floats per group).
AVX2 static void tile_prepare(const collm_qmat *W, int64_t r0, int64_t nr, tile_scratch *b) {
    const int64_t K = W->cols, ng = b->ng;
    uint8_t *u = b->u;
    float *s16 = b->s16, *m16 = b->m16, *S = b->S, *M = b->M;
    for (int64_t i = 0; i < 16; i++) {
        if (i < nr) {
            tile_decode_row(W->type, (const uint8_t *)W->data + (size_t)(r0 + i) * W->row_bytes, K, u + i * K, s16 + i * ng,
                            m16 + i * ng);
        } else { // rows past the matrix: zero weights
            memset(u + i * K, 0, (size_t)K);
            for (int64_t g = 0; g < ng; g++) s16[i * ng + g] = m16[i * ng + g] = 0.0f;
        }
    }
    for (int64_t g = 0; g < ng; g++)
        for (int i = 0; i < 16; i++) {
            S[16 * g + i] = s16[i * ng + g];
            M[16 * g + i] = m16[i * ng + g];
        }
}

// C activation rows from t0 against one interleaved row group: y[t][0..15]
// (masked to the rows that exist). G, C, mins are constants at each call;
// the loops over them unroll so the accumulators stay in registers.
#define UNROLL _Pragma("GCC unroll 8")
VNNI static inline __attribute__((always_inline)) void tile_rows(const uint8_t *rep, const float *S, const float *M,
                                                                 const collm_qtile_act *a, int64_t t0, const int C,
                                                                 const int G, const int mins, float *y, int64_t ldy,
                                                                 __mmask16 mask) {
    const int64_t K = a->K, ng = a->ng;
    __m512 f[8];
    UNROLL for (int c = 0; c < C; c++) f[c] = _mm512_setzero_ps();
    for (int64_t g = 0; g < ng; g++) {
        __m512i acc[8];
        const int32_t *init = a->init + t0 * ng + g;
        UNROLL for (int c = 0; c < C; c++) acc[c] = _mm512_set1_epi32(init[c * ng]);
        const uint8_t *wg = rep + g * G * 16;
        const int8_t *yg = a->codes + t0 * K + g * G;
        UNROLL for (int k = 0; k < G / 4; k++) {
            __m512i w = _mm512_loadu_si512(wg + 64 * k);
            UNROLL for (int c = 0; c < C; c++) {
                int32_t v;
                memcpy(&v, yg + c * K + 4 * k, 4);
                acc[c] = _mm512_dpbusd_epi32(acc[c], w, _mm512_set1_epi32(v));
            }
        }
        const __m512 s = _mm512_loadu_ps(S + 16 * g);
        const float *yd = a->yd + t0 * ng + g, *yb = a->yb + t0 * ng + g;
        // (d_w · d_y) · Σ q·y: the product llama.cpp forms per block
        UNROLL for (int c = 0; c < C; c++)
            f[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[c]), _mm512_mul_ps(s, _mm512_set1_ps(yd[c * ng])), f[c]);
        if (mins) {
            const __m512 m = _mm512_loadu_ps(M + 16 * g);
            UNROLL for (int c = 0; c < C; c++) f[c] = _mm512_fnmadd_ps(m, _mm512_set1_ps(yb[c * ng]), f[c]);
        }
    }
    UNROLL for (int c = 0; c < C; c++) _mm512_mask_storeu_ps(y + (t0 + c) * ldy, mask, f[c]);
}

VNNI static inline __attribute__((always_inline)) void tile_group(const uint8_t *rep, const float *S, const float *M, const collm_qtile_act *a, const int G,
                            const int mins, float *y, int64_t ldy, __mmask16 mask) {
    int64_t t = 0;
    for (; t + 8 <= a->T; t += 8) tile_rows(rep, S, M, a, t, 8, G, mins, y, ldy, mask);
    for (; t < a->T; t++) tile_rows(rep, S, M, a, t, 1, G, mins, y, ldy, mask);
}

VNNI static int tile_gemm(const collm_qmat *W, int64_t g0, int64_t g1, const collm_qtile_act *a, float *y, int64_t ldy) {
    tile_kind k = {32, 0, 0};
    tile_scratch b;
    if (tile_scratch_alloc(&b, W, &k) != COLLM_OK) return COLLM_ERR_NOMEM;
    const int64_t K = W->cols;
    uint8_t *u = b.u, *rep = b.rep;
    const float *S = b.S, *M = b.M;
    for (int64_t grp = g0; grp < g1; grp++) {
        const int64_t r0 = 16 * grp, nr = W->rows - r0 < 16 ? W->rows - r0 : 16;
        tile_prepare(W, r0, nr, &b);
        tile_interleave(u, K, rep);
        const __mmask16 mask = (__mmask16)((1u << nr) - 1);
        float *yg = y + r0;
        if (k.G == 16) tile_group(rep, S, M, a, 16, 0, yg, ldy, mask);
        else if (k.mins) tile_group(rep, S, M, a, 32, 1, yg, ldy, mask);
        else tile_group(rep, S, M, a, 32, 0, yg, ldy, mask);
    }
    free(b.u);
    return COLLM_OK;
}
// --- The tiled product at AVX2 (no AVX-512, no VNNI): the same 16-row
// groups, activations and word interleaving (rows 0..7 and 8..15 of a word
// index in two 256-bit halves), the same float steps (so the same sums as
// the VNNI kernel); vpmaddubsw + vpmaddwd stand in for vpdpbusd. vpmaddubsw
// adds two u·y products in int16: u <= 63 (every type but Q8_0) stays below
// 2·63·128 < 32768, but Q8_0's u = q + 128 would saturate, so its codes go
// back to signed q (u ^ 0x80) and enter as |q| · sign(y, q), the integer
// sum starting at 0 instead of −128·Σy.

// 16 rows of codes (row i at u + i·K) to words interleaved by row, 64 bytes
// per 4-byte word index (tile_interleave's layout), each word xor flip.
static void tile_interleave_words(const uint8_t *u, int64_t K, uint32_t flip, uint8_t *out) {
    for (int64_t j = 0; j < K / 4; j++)
        for (int i = 0; i < 16; i++) {
            uint32_t v;
            memcpy(&v, u + i * K + 4 * j, 4);
            v ^= flip;
            memcpy(out + 64 * j + 4 * i, &v, 4);
        }
}

// C activation rows from t0 against one interleaved row group (tile_rows at
// AVX2): y[t][0..nr).
AVX2 static inline __attribute__((always_inline)) void tile_rows_avx2(const uint8_t *rep, const float *S, const float *M,
                                                                      const collm_qtile_act *a, int64_t t0, const int C,
                                                                      const int G, const int mins, const int sgn, float *y,
                                                                      int64_t ldy, int64_t nr) {
    const int64_t K = a->K, ng = a->ng;
    const __m256i one = _mm256_set1_epi16(1);
    __m256 f[4][2];
    UNROLL for (int c = 0; c < C; c++) f[c][0] = f[c][1] = _mm256_setzero_ps();
    for (int64_t g = 0; g < ng; g++) {
        __m256i acc[4][2];
        const int32_t *init = a->init + t0 * ng + g;
        UNROLL for (int c = 0; c < C; c++) acc[c][0] = acc[c][1] = sgn ? _mm256_setzero_si256() : _mm256_set1_epi32(init[c * ng]);
        const uint8_t *wg = rep + g * G * 16;
        const int8_t *yg = a->codes + t0 * K + g * G;
        UNROLL for (int k = 0; k < G / 4; k++) {
            __m256i w[2], wa[2];
            UNROLL for (int h = 0; h < 2; h++) {
                w[h] = _mm256_loadu_si256((const __m256i *)(wg + 64 * k + 32 * h));
                wa[h] = sgn ? _mm256_sign_epi8(w[h], w[h]) : w[h]; // |q| (−128 reads as 128 unsigned)
            }
            UNROLL for (int c = 0; c < C; c++) {
                int32_t v;
                memcpy(&v, yg + c * K + 4 * k, 4);
                const __m256i yv = _mm256_set1_epi32(v);
                UNROLL for (int h = 0; h < 2; h++) {
                    __m256i p = _mm256_maddubs_epi16(wa[h], sgn ? _mm256_sign_epi8(yv, w[h]) : yv);
                    acc[c][h] = _mm256_add_epi32(acc[c][h], _mm256_madd_epi16(p, one));
                }
            }
        }
        const float *yd = a->yd + t0 * ng + g, *yb = a->yb + t0 * ng + g;
        UNROLL for (int h = 0; h < 2; h++) {
            const __m256 s = _mm256_loadu_ps(S + 16 * g + 8 * h);
            UNROLL for (int c = 0; c < C; c++)
                f[c][h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[c][h]), _mm256_mul_ps(s, _mm256_set1_ps(yd[c * ng])), f[c][h]);
            if (mins) {
                const __m256 m = _mm256_loadu_ps(M + 16 * g + 8 * h);
                UNROLL for (int c = 0; c < C; c++) f[c][h] = _mm256_fnmadd_ps(m, _mm256_set1_ps(yb[c * ng]), f[c][h]);
            }
        }
    }
    UNROLL for (int c = 0; c < C; c++) {
        float out[16];
        _mm256_storeu_ps(out, f[c][0]);
        _mm256_storeu_ps(out + 8, f[c][1]);
        memcpy(y + (t0 + c) * ldy, out, (size_t)nr * sizeof(float));
    }
}

AVX2 static inline __attribute__((always_inline)) void tile_group_avx2(const uint8_t *rep, const float *S, const float *M,
                                                                       const collm_qtile_act *a, const int G, const int mins,
                                                                       const int sgn, float *y, int64_t ldy, int64_t nr) {
    int64_t t = 0;
    for (; t + 4 <= a->T; t += 4) tile_rows_avx2(rep, S, M, a, t, 4, G, mins, sgn, y, ldy, nr);
    for (; t < a->T; t++) tile_rows_avx2(rep, S, M, a, t, 1, G, mins, sgn, y, ldy, nr);
}

AVX2 static int tile_gemm_avx2(const collm_qmat *W, int64_t g0, int64_t g1, const collm_qtile_act *a, float *y, int64_t ldy) {
    tile_kind k = {32, 0, 0};
    tile_scratch b;
    if (tile_scratch_alloc(&b, W, &k) != COLLM_OK) return COLLM_ERR_NOMEM;
    const int q8 = W->type == COLLM_GGML_TYPE_Q8_0;
    const uint8_t *rep = b.rep;
    const float *S = b.S, *M = b.M;
    for (int64_t grp = g0; grp < g1; grp++) {
        const int64_t r0 = 16 * grp, nr = W->rows - r0 < 16 ? W->rows - r0 : 16;
        tile_prepare(W, r0, nr, &b);
        tile_interleave_words(b.u, W->cols, q8 ? 0x80808080u : 0u, b.rep);
        float *yg = y + r0;
        if (q8) tile_group_avx2(rep, S, M, a, 32, 0, 1, yg, ldy, nr);
        else if (k.G == 16) tile_group_avx2(rep, S, M, a, 16, 0, 0, yg, ldy, nr);
        else if (k.mins) tile_group_avx2(rep, S, M, a, 32, 1, 0, yg, ldy, nr);
        else tile_group_avx2(rep, S, M, a, 32, 0, 0, yg, ldy, nr);
    }
    free(b.u);
    return COLLM_OK;
}

// --- F16 weights (AVX-512, the level of the tiled kernel): F32 FMAs, 16
// rows interleaved by element pairs against 8 activation rows (below); when
// K is not a multiple of 8, 4 rows x 6 activation rows over 16 consecutive
// elements, each sum reduced once per output at the end. The activations come rounded through F16, as
// llama.cpp's F16 dot products take them, and every product is exact in F32
// (11-bit significands), so only the order of the additions differs from
// collm_quant_dot.
VNNI static inline __attribute__((always_inline)) void f16_block(const uint8_t *w, size_t row_bytes, const float *x,
                                                                   int64_t K, const int R, const int C, float *y,
                                                                   int64_t ldy) {
    __m512 acc[4][6];
    UNROLL for (int i = 0; i < R; i++) UNROLL for (int c = 0; c < C; c++) acc[i][c] = _mm512_setzero_ps();
    for (int64_t k = 0; k < K; k += 16) {
        const __mmask16 m = K - k >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (K - k)) - 1);
        __m512 wv[4];
        UNROLL for (int i = 0; i < R; i++)
            wv[i] = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, w + (size_t)i * row_bytes + 2 * k));
        UNROLL for (int c = 0; c < C; c++) {
            const __m512 a = _mm512_maskz_loadu_ps(m, x + c * K + k);
            UNROLL for (int i = 0; i < R; i++) acc[i][c] = _mm512_fmadd_ps(wv[i], a, acc[i][c]);
        }
    }
    UNROLL for (int c = 0; c < C; c++) UNROLL for (int i = 0; i < R; i++) y[c * ldy + i] = _mm512_reduce_add_ps(acc[i][c]);
}

// 16 rows interleaved by pairs of elements (the 4-byte-word interleaving of
// the integer kernel: 64 bytes = elements 2p, 2p+1 of rows 0..15), against
// C activation rows: one load and two conversions feed 2C FMAs, whose lanes
// 2i, 2i+1 hold row i's even and odd terms (rows 8..15 in the second
// vector), added once at the end. No horizontal sum per output.
VNNI static inline __attribute__((always_inline)) void f16_rows16(const uint8_t *rep, const float *x, int64_t K,
                                                                  const int C, float *y, int64_t ldy, __mmask16 mask) {
    __m512 lo[8], hi[8];
    UNROLL for (int c = 0; c < C; c++) lo[c] = hi[c] = _mm512_setzero_ps();
    for (int64_t p = 0; p < K / 2; p++) {
        const __m512i z = _mm512_loadu_si512(rep + 64 * p);
        const __m512 wl = _mm512_cvtph_ps(_mm512_castsi512_si256(z)), wh = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(z, 1));
        UNROLL for (int c = 0; c < C; c++) {
            double pair; // x[c][2p], x[c][2p + 1] in every 64-bit lane
            memcpy(&pair, x + c * K + 2 * p, sizeof pair);
            const __m512 a = _mm512_castpd_ps(_mm512_set1_pd(pair));
            lo[c] = _mm512_fmadd_ps(wl, a, lo[c]);
            hi[c] = _mm512_fmadd_ps(wh, a, hi[c]);
        }
    }
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    UNROLL for (int c = 0; c < C; c++) {
        __m512 l = _mm512_add_ps(lo[c], _mm512_permute_ps(lo[c], 0xb1)), h = _mm512_add_ps(hi[c], _mm512_permute_ps(hi[c], 0xb1));
        _mm512_mask_storeu_ps(y + c * ldy, mask, _mm512_permutex2var_ps(l, even, h));
    }
}

// Activation rows in chunks that stay in L2, rows [r0, r1) of W: 16 at a
// time interleaved when K is a multiple of 8, else in fours.
VNNI static void f16_gemm(const collm_qmat *W, int64_t r0, int64_t r1, const float *x, int64_t T, float *y, int64_t ldy) {
    const int64_t K = W->cols, chunk = 48;
    const uint8_t *base = W->data;
    if (K % 8 == 0) {
        uint8_t *buf = aligned_alloc(64, (size_t)(64 * K)); // 16 rows (a partial group zero-padded), then interleaved
        if (buf) {
            for (int64_t g = r0; g < r1; g += 16) {
                const int64_t nr = r1 - g < 16 ? r1 - g : 16;
                const uint8_t *rows = base + g * W->row_bytes;
                if (nr < 16 || W->row_bytes != (size_t)(2 * K)) {
                    memset(buf, 0, (size_t)(32 * K));
                    for (int64_t i = 0; i < nr; i++) memcpy(buf + i * 2 * K, rows + i * W->row_bytes, (size_t)(2 * K));
                    rows = buf;
                }
                uint8_t *rep = buf + 32 * K;
                tile_interleave(rows, 2 * K, rep);
                const __mmask16 mask = (__mmask16)((1u << nr) - 1);
                int64_t t = 0;
                for (; t + 8 <= T; t += 8) f16_rows16(rep, x + t * K, K, 8, y + t * ldy + g, ldy, mask);
                for (; t < T; t++) f16_rows16(rep, x + t * K, K, 1, y + t * ldy + g, ldy, mask);
            }
            free(buf);
            return;
        }
    }
    for (int64_t t0 = 0; t0 < T; t0 += chunk) {
        const int64_t t1 = T - t0 < chunk ? T : t0 + chunk;
        int64_t r = r0;
        for (; r + 4 <= r1; r += 4) {
            int64_t t = t0;
            for (; t + 6 <= t1; t += 6) f16_block(base + r * W->row_bytes, W->row_bytes, x + t * K, K, 4, 6, y + t * ldy + r, ldy);
            for (; t < t1; t++) f16_block(base + r * W->row_bytes, W->row_bytes, x + t * K, K, 4, 1, y + t * ldy + r, ldy);
        }
        for (; r < r1; r++) {
            int64_t t = t0;
            for (; t + 6 <= t1; t += 6) f16_block(base + r * W->row_bytes, W->row_bytes, x + t * K, K, 1, 6, y + t * ldy + r, ldy);
            for (; t < t1; t++) f16_block(base + r * W->row_bytes, W->row_bytes, x + t * K, K, 1, 1, y + t * ldy + r, ldy);
        }
    }
}
#endif

int collm_qtile_f16_ok(void) { return level() >= 2; }

void collm_qtile_f16(const collm_qmat *W, int64_t r0, int64_t r1, const float *xh, int64_t T, float *y, int64_t ldy) {
#if defined(__x86_64__)
    if (level() >= 2) f16_gemm(W, r0, r1, xh, T, y, ldy);
#else
    (void)W, (void)r0, (void)r1, (void)xh, (void)T, (void)y, (void)ldy;
#endif
}

int collm_qtile_gemm(const collm_qmat *W, int64_t g0, int64_t g1, const collm_qtile_act *a, float *y, int64_t ldy) {
#if defined(__x86_64__)
    if (collm_qtile_ok(W->type)) return level() >= 2 ? tile_gemm(W, g0, g1, a, y, ldy) : tile_gemm_avx2(W, g0, g1, a, y, ldy);
#endif
    (void)g0, (void)g1, (void)a, (void)y, (void)ldy;
    return collm_error(COLLM_ERR_ARG, "tiled kernel: none for %s on this CPU", collm_ggml_type_name(W->type));
}

void collm_quant_act_row(collm_ggml_type vt, const float *x, void *dst, int64_t n) {
#if defined(__x86_64__)
    if (level() >= 1 && act_avx2(vt, x, dst, n)) return;
#endif
    collm_quant_act_row_ref(vt, x, dst, n);
}
