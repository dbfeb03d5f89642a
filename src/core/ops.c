// Numeric kernels of the transformer: each forward next to its backward
// (llm.c style). Row-major float32; backward functions accumulate (+=) into
// gradient buffers and skip NULL ones. Shapes in comments: T = rows (tokens),
// C = channels, hd = head_dim, L = n_past + T (all keys).
#include "core/ops.h"

#include "collm/error.h"
#include "collm/threadpool.h"
#include "core/env.h"

#include <cblas.h>
#include <strings.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

// Dot product with 8 independent partial sums: without -ffast-math gcc keeps
// a single float accumulator serial, but 8 lanes map onto one AVX register.
// The summation order is fixed, so results are deterministic.
static inline float dot8(const float *a, const float *b, int64_t n) {
    float acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++) acc[l] += a[i + l] * b[i + l];
    float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

// ---------------------------------------------------------------------------
// SIMD helpers (AVX2/FMA when the build targets it, -march=x86-64-v3; every
// kernel using them has a portable loop in the #else branch).

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define OPS_AVX2 1
#endif

#ifdef OPS_AVX2
// Lane k of the result = the sum of the 8 lanes of ak.
static inline __m256 hsum8x8(__m256 a0, __m256 a1, __m256 a2, __m256 a3, __m256 a4, __m256 a5, __m256 a6,
                             __m256 a7) {
    __m256 t0 = _mm256_hadd_ps(a0, a1), t1 = _mm256_hadd_ps(a2, a3);
    __m256 t2 = _mm256_hadd_ps(a4, a5), t3 = _mm256_hadd_ps(a6, a7);
    __m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3); // 128-bit halves: partial sums
    return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

// Lanes 0..m-1 set (as a maskload/maskstore mask), m in 0..8.
static inline __m256i lane_mask(int64_t m) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)m), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
#endif

// ---------------------------------------------------------------------------
// One vector of floats at the widest width the build targets: VL = 16 lanes
// (AVX-512) or 8 (AVX2). exp, sigmoid, softmax, SwiGLU and AdamW are written
// once on these. Lane by lane they are the same operations at either width
// (the same bits; AdamW's are the scalar loop's: no FMA where it has none,
// as -std=c11 does not contract a·b + c); only the softmax's sum over a row
// runs in VL partial sums. vf_mask: the first m lanes.
#if defined(__AVX512F__)
#define VL 16
typedef __m512 vf;
typedef __mmask16 vf_mask;
#define VF(op) _mm512_##op##_ps // the plain operations, named alike at both widths
static inline vf_mask vf_first(int64_t m) { return (vf_mask)(m < 16 ? (1u << m) - 1 : 0xffffu); }
static inline vf vf_load_n(const float *p, vf_mask k) { return _mm512_maskz_loadu_ps(k, p); }
static inline void vf_store_n(float *p, vf_mask k, vf v) { _mm512_mask_storeu_ps(p, k, v); }
static inline vf vf_round(vf x) { return _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
// 2^n for whole n in [-126, 127], built in the exponent bits
static inline vf vf_pow2(vf n) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23));
}
static inline vf vf_neg_abs(vf x) { // -|x|
    return _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(x), _mm512_set1_epi32(INT32_MIN)));
}
// a >= b (ordered) ? x : y, lane by lane
static inline vf vf_select_ge(vf a, vf b, vf x, vf y) {
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, b, _CMP_GE_OQ), y, x);
}
static inline float vf_hmax(vf v) { return _mm512_reduce_max_ps(v); }
static inline float vf_hsum(vf v) { // halves added pairwise down to one lane
    __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    return hsum8(h);
}
#elif defined(OPS_AVX2)
#define VL 8
typedef __m256 vf;
typedef __m256i vf_mask;
#define VF(op) _mm256_##op##_ps
static inline vf_mask vf_first(int64_t m) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(m < 8 ? m : 8)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
// A full mask (every vector of a loop but its last) loads and stores plainly:
// AMD's Zen microcodes the masked store (vmaskmovps), several times the cost
// of a plain one. SwiGLU's loops mask every vector: on an AVX2 EPYC (Zen 3)
// 96 x 688 elements took 1.31-1.47 ns each forward and 2.00-2.27 backward
// masked, 0.82-1.12 and 1.02-1.48 like this.
static inline int vf_full(vf_mask k) { return _mm256_movemask_ps(_mm256_castsi256_ps(k)) == 0xff; }
static inline vf vf_load_n(const float *p, vf_mask k) { return vf_full(k) ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, k); }
static inline void vf_store_n(float *p, vf_mask k, vf v) {
    if (vf_full(k)) _mm256_storeu_ps(p, v);
    else _mm256_maskstore_ps(p, k, v);
}
static inline vf vf_round(vf x) { return _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
static inline vf vf_pow2(vf n) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23));
}
static inline vf vf_neg_abs(vf x) { return _mm256_or_ps(x, _mm256_set1_ps(-0.0f)); }
static inline vf vf_select_ge(vf a, vf b, vf x, vf y) { return _mm256_blendv_ps(y, x, _mm256_cmp_ps(a, b, _CMP_GE_OQ)); }
static inline float vf_hmax(vf v) {
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    return _mm_cvtss_f32(_mm_max_ss(m4, _mm_movehdup_ps(m4)));
}
static inline float vf_hsum(vf v) { return hsum8(v); }
#endif

#ifdef VL
static inline vf vf_set1(float x) { return VF(set1)(x); }
static inline vf vf_load(const float *p) { return VF(loadu)(p); }
static inline void vf_store(float *p, vf v) { VF(storeu)(p, v); }
static inline vf vf_add(vf a, vf b) { return VF(add)(a, b); }
static inline vf vf_sub(vf a, vf b) { return VF(sub)(a, b); }
static inline vf vf_mul(vf a, vf b) { return VF(mul)(a, b); }
static inline vf vf_div(vf a, vf b) { return VF(div)(a, b); }
static inline vf vf_sqrt(vf a) { return VF(sqrt)(a); }
static inline vf vf_min(vf a, vf b) { return VF(min)(a, b); }
static inline vf vf_max(vf a, vf b) { return VF(max)(a, b); }
static inline vf vf_fmadd(vf a, vf b, vf c) { return VF(fmadd)(a, b, c); }
static inline vf vf_fnmadd(vf a, vf b, vf c) { return VF(fnmadd)(a, b, c); }

// exp(x) for x <= 0 (scores minus their row max); 0 below -87 where expf is
// denormal or 0. x = n·ln2 + r, |r| <= ln2/2 (ln2 split in two for an exact
// n·ln2_hi), exp(r) by its Taylor series to r^7 (remainder < 1.2e-7 relative),
// times 2^n built in the exponent bits. About 1-2 ulp from expf.
static inline vf exp_nonpos(vf x) {
    const vf lo = vf_set1(-87.0f), in = x;
    x = vf_min(vf_max(x, lo), vf_set1(0.0f));
    vf n = vf_round(vf_mul(x, vf_set1(1.44269504088896341f)));
    vf r = vf_fnmadd(n, vf_set1(0.693145751953125f), x);
    r = vf_fnmadd(n, vf_set1(1.428606820309417e-06f), r);
    vf p = vf_set1(1.0f / 5040.0f);
    p = vf_fmadd(p, r, vf_set1(1.0f / 720.0f));
    p = vf_fmadd(p, r, vf_set1(1.0f / 120.0f));
    p = vf_fmadd(p, r, vf_set1(1.0f / 24.0f));
    p = vf_fmadd(p, r, vf_set1(1.0f / 6.0f));
    p = vf_fmadd(p, r, vf_set1(0.5f));
    p = vf_fmadd(p, r, vf_set1(1.0f));
    p = vf_fmadd(p, r, vf_set1(1.0f));
    return vf_select_ge(in, lo, vf_mul(p, vf_pow2(n)), vf_set1(0.0f));
}

// σ(g) = 1 / (1 + exp(-g)) from e = exp(-|g|) <= 1, which cannot overflow:
// σ = 1/(1+e) for g >= 0, e/(1+e) for g < 0.
static inline vf sigmoid_v(vf g) {
    vf e = exp_nonpos(vf_neg_abs(g));
    vf r = vf_div(vf_set1(1.0f), vf_add(vf_set1(1.0f), e));
    return vf_select_ge(g, vf_set1(0.0f), r, vf_mul(e, r));
}
#endif

// ---------------------------------------------------------------------------
// GEMM: C (M, N) = op(A) (M, K) · op(B) (K, N) [+ C], row-major, alpha 1.
//
// Two kernels (collm_gemm_kernel): BLAS (cblas_sgemm) and collm's own packed
// GEMM, BLIS-style: B is packed in (KC, NR) panels, A in (MR, KC) panels, and
// a register-blocked micro-kernel computes one (MR, NR) tile of C over KC:
// AVX-512 12 x 32 (24 zmm accumulators), AVX2 6 x 16 (12 ymm), or a portable
// 4 x 8 loop. Every element of C is summed over k in increasing order, in KC
// blocks, whatever the tile or thread it falls in: results do not depend on
// the thread count. With a pool, C is cut into slabs computed on their own,
// one range of them per thread: rows (collm's kernel: columns when N > M).
// BLAS then runs single-threaded per slab (its own threads would serialise
// on OpenBLAS's lock), so the pool cuts BLAS work only when BLAS has one
// thread (collm_blas_set_threads(1)).

#if defined(__AVX512F__)
#define GEMM_MR 12
#define GEMM_NR 32
#elif defined(OPS_AVX2)
#define GEMM_MR 6
#define GEMM_NR 16
#else
#define GEMM_MR 4
#define GEMM_NR 8
#endif
#define GEMM_KC 256  // a (KC, NR) B panel stays in L1 across the row panels
#define GEMM_MC 120  // rows of A packed at a time (L2); a multiple of every MR
#define GEMM_NC 1024 // columns of B packed at a time

// Ap (MR, kc) k-major: Ap[k·MR + i] = A(i, k) for i < m, zero rows after.
// A(i, k) = A[i·ars + k·acs].
static void gemm_pack_a(float *Ap, const float *A, int64_t ars, int64_t acs, int m, int kc) {
    // the padding rows zeroed in one pass (per k, a two-float fill would
    // compile to rep stos, whose start-up cost dwarfs it)
    if (m < GEMM_MR) memset(Ap, 0, (size_t)kc * GEMM_MR * sizeof(float));
    if (acs == 1) {
        for (int i = 0; i < m; i++) {
            const float *a = A + i * ars;
            for (int k = 0; k < kc; k++) Ap[(int64_t)k * GEMM_MR + i] = a[k];
        }
    } else if (ars == 1 && m == GEMM_MR) { // A^T of a row-major matrix (dy^T·x): MR contiguous floats per k
        for (int k = 0; k < kc; k++) {
            const float *a = A + k * acs;
            float *o = Ap + (int64_t)k * GEMM_MR;
#if defined(__AVX512F__)
            const __mmask16 lanes = (__mmask16)((1u << GEMM_MR) - 1);
            _mm512_mask_storeu_ps(o, lanes, _mm512_maskz_loadu_ps(lanes, a));
#else
            memcpy(o, a, GEMM_MR * sizeof(float));
#endif
        }
    } else {
        for (int k = 0; k < kc; k++) {
            const float *a = A + k * acs;
            float *o = Ap + (int64_t)k * GEMM_MR;
            for (int i = 0; i < m; i++) o[i] = a[i * ars];
        }
    }
}

// Columns [j0, j1) of a panel Bp (kc, NR) from a B whose columns are rows:
// Bp[k·NR + j] = B[(j - j0)·bcs + k·brs]. With brs 1 (B^T row-major: W of
// x·W^T, attention's keys), eight columns at a time through an 8 x 8
// register transpose rather than element by element.
static void gemm_pack_cols(float *Bp, const float *B, int64_t brs, int64_t bcs, int j0, int j1, int kc) {
    int j = j0;
#ifdef OPS_AVX2
    for (; brs == 1 && j + 8 <= j1; j += 8) {
        const float *b = B + (int64_t)(j - j0) * bcs;
        int k = 0;
        for (; k + 8 <= kc; k += 8) {
            __m256 r0 = _mm256_loadu_ps(b + k), r1 = _mm256_loadu_ps(b + bcs + k), r2 = _mm256_loadu_ps(b + 2 * bcs + k),
                   r3 = _mm256_loadu_ps(b + 3 * bcs + k), r4 = _mm256_loadu_ps(b + 4 * bcs + k),
                   r5 = _mm256_loadu_ps(b + 5 * bcs + k), r6 = _mm256_loadu_ps(b + 6 * bcs + k),
                   r7 = _mm256_loadu_ps(b + 7 * bcs + k);
            __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1), t2 = _mm256_unpacklo_ps(r2, r3),
                   t3 = _mm256_unpackhi_ps(r2, r3), t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5),
                   t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
            __m256 s0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0)), s1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2)),
                   s2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0)), s3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2)),
                   s4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0)), s5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2)),
                   s6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0)), s7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
            float *o = Bp + (int64_t)k * GEMM_NR + j; // row k + i of the panel gets element k + i of the 8 columns
            _mm256_storeu_ps(o, _mm256_permute2f128_ps(s0, s4, 0x20));
            _mm256_storeu_ps(o + GEMM_NR, _mm256_permute2f128_ps(s1, s5, 0x20));
            _mm256_storeu_ps(o + 2 * GEMM_NR, _mm256_permute2f128_ps(s2, s6, 0x20));
            _mm256_storeu_ps(o + 3 * GEMM_NR, _mm256_permute2f128_ps(s3, s7, 0x20));
            _mm256_storeu_ps(o + 4 * GEMM_NR, _mm256_permute2f128_ps(s0, s4, 0x31));
            _mm256_storeu_ps(o + 5 * GEMM_NR, _mm256_permute2f128_ps(s1, s5, 0x31));
            _mm256_storeu_ps(o + 6 * GEMM_NR, _mm256_permute2f128_ps(s2, s6, 0x31));
            _mm256_storeu_ps(o + 7 * GEMM_NR, _mm256_permute2f128_ps(s3, s7, 0x31));
        }
        for (; k < kc; k++)
            for (int i = 0; i < 8; i++) Bp[(int64_t)k * GEMM_NR + j + i] = b[i * bcs + k];
    }
#endif
    for (; j < j1; j++) {
        const float *b = B + (int64_t)(j - j0) * bcs;
        for (int k = 0; k < kc; k++) Bp[(int64_t)k * GEMM_NR + j] = b[k * brs];
    }
}

// A row of n <= NR floats (gemm_pack_row: then zeros to NR). A full row is a
// fixed-size copy (two or four vector moves); a variable-length memcpy of
// 64 bytes compiles to rep movs here, whose start-up cost made this copy 1-2 %
// of a training step (attention's V panels).
static inline void gemm_copy_row(float *o, const float *b, int n) {
    if (n == GEMM_NR) memcpy(o, b, GEMM_NR * sizeof(float));
    else memcpy(o, b, (size_t)n * sizeof(float));
}
static inline void gemm_pack_row(float *o, const float *b, int n) {
    gemm_copy_row(o, b, n);
    for (int j = n; j < GEMM_NR; j++) o[j] = 0.0f;
}

// Bp (kc, NR): Bp[k·NR + j] = B(k, j) for j < n, zero columns after.
// B(k, j) = B[k·brs + j·bcs].
static void gemm_pack_b(float *Bp, const float *B, int64_t brs, int64_t bcs, int n, int kc) {
    if (bcs == 1) {
        for (int k = 0; k < kc; k++) gemm_pack_row(Bp + (int64_t)k * GEMM_NR, B + k * brs, n);
    } else {
        gemm_pack_cols(Bp, B, brs, bcs, 0, n, kc);
        for (int k = 0; n < GEMM_NR && k < kc; k++)
            for (int j = n; j < GEMM_NR; j++) Bp[(int64_t)k * GEMM_NR + j] = 0.0f;
    }
}

// One (MR, NR) tile: C = A · Bp over kc (acc: C += ...), C row stride ldc,
// A(i, k) = A[i·ars + k·aks]: a packed panel (ars 1, aks MR) or rows of a
// row-major A read in place (aks 1: no packing). Inlined into both with the
// strides constant where they are; the same arithmetic either way.
static inline __attribute__((always_inline)) void gemm_micro_at(int kc, const float *A, int64_t ars, int64_t aks,
                                                                const float *Bp, float *C, int64_t ldc, int acc) {
    const float *Ap = A;
#if defined(__AVX512F__)
    __m512 c[GEMM_MR][2];
#pragma GCC unroll 12
    for (int i = 0; i < GEMM_MR; i++) c[i][0] = c[i][1] = _mm512_setzero_ps();
    for (int k = 0; k < kc; k++, Ap += aks, Bp += GEMM_NR) {
        __m512 b0 = _mm512_loadu_ps(Bp), b1 = _mm512_loadu_ps(Bp + 16);
#pragma GCC unroll 12
        for (int i = 0; i < GEMM_MR; i++) {
            __m512 a = _mm512_set1_ps(Ap[i * ars]);
            c[i][0] = _mm512_fmadd_ps(a, b0, c[i][0]);
            c[i][1] = _mm512_fmadd_ps(a, b1, c[i][1]);
        }
    }
#pragma GCC unroll 12
    for (int i = 0; i < GEMM_MR; i++) {
        float *ci = C + i * ldc;
        if (acc) {
            c[i][0] = _mm512_add_ps(_mm512_loadu_ps(ci), c[i][0]);
            c[i][1] = _mm512_add_ps(_mm512_loadu_ps(ci + 16), c[i][1]);
        }
        _mm512_storeu_ps(ci, c[i][0]);
        _mm512_storeu_ps(ci + 16, c[i][1]);
    }
#elif defined(OPS_AVX2)
    __m256 c[GEMM_MR][2];
#pragma GCC unroll 6
    for (int i = 0; i < GEMM_MR; i++) c[i][0] = c[i][1] = _mm256_setzero_ps();
    for (int k = 0; k < kc; k++, Ap += aks, Bp += GEMM_NR) {
        __m256 b0 = _mm256_loadu_ps(Bp), b1 = _mm256_loadu_ps(Bp + 8);
#pragma GCC unroll 6
        for (int i = 0; i < GEMM_MR; i++) {
            __m256 a = _mm256_broadcast_ss(Ap + i * ars);
            c[i][0] = _mm256_fmadd_ps(a, b0, c[i][0]);
            c[i][1] = _mm256_fmadd_ps(a, b1, c[i][1]);
        }
    }
#pragma GCC unroll 6
    for (int i = 0; i < GEMM_MR; i++) {
        float *ci = C + i * ldc;
        if (acc) {
            c[i][0] = _mm256_add_ps(_mm256_loadu_ps(ci), c[i][0]);
            c[i][1] = _mm256_add_ps(_mm256_loadu_ps(ci + 8), c[i][1]);
        }
        _mm256_storeu_ps(ci, c[i][0]);
        _mm256_storeu_ps(ci + 8, c[i][1]);
    }
#else
    float c[GEMM_MR][GEMM_NR] = {{0}};
    for (int k = 0; k < kc; k++, Ap += aks, Bp += GEMM_NR)
        for (int i = 0; i < GEMM_MR; i++)
            for (int j = 0; j < GEMM_NR; j++) c[i][j] += Ap[i * ars] * Bp[j];
    for (int i = 0; i < GEMM_MR; i++)
        for (int j = 0; j < GEMM_NR; j++) C[i * ldc + j] = acc ? C[i * ldc + j] + c[i][j] : c[i][j];
#endif
}

static void gemm_micro(int kc, const float *Ap, const float *Bp, float *C, int64_t ldc, int acc) {
    gemm_micro_at(kc, Ap, 1, GEMM_MR, Bp, C, ldc, acc);
}

// The tile with A read in place: row i at A + i·ars, k contiguous.
static void gemm_micro_rows(int kc, const float *A, int64_t ars, const float *Bp, float *C, int64_t ldc, int acc) {
    gemm_micro_at(kc, A, ars, 1, Bp, C, ldc, acc);
}

// The tile with a transposed A read in place: the MR values of step k
// contiguous at A + k·aks.
static void gemm_micro_cols(int kc, const float *A, int64_t aks, const float *Bp, float *C, int64_t ldc, int acc) {
    gemm_micro_at(kc, A, 1, aks, Bp, C, ldc, acc);
}

typedef struct {
    int trans_a, trans_b, M, N, K, accumulate;
    const float *A, *B;
    int lda, ldb, ldc;
    float *C;
    int kernel;  // COLLM_GEMM_BLAS or COLLM_GEMM_OWN
    int split_n; // slabs of columns (1) or rows (0)
    int unit;    // slab boundaries are multiples of this
    // Causal structure (collm's kernel, attention; GEMM_NO_LIMIT: none). For
    // a tile of rows [r0, r1): columns from r1 + col_hi on are not wanted
    // (tiles there are skipped, left unwritten), and A is zero outside
    // k in [r0 - k_lo, r1 + k_hi) (the sum skips those exact zeros).
    int col_hi, k_lo, k_hi;
    // B already packed for the whole of N and K (gemm_pack_b_all; collm's
    // kernel, C cut by rows only), or NULL: each call packs its own
    const float *Bpre;
    // B in two parts (collm's kernel; attention's keys): its rows of K
    // floats (trans_b: the N index; else the K index) from b_split on are
    // at B2, row b_split first. NULL: all at B.
    const float *B2;
    int b_split;
    // A transposed (trans_a) read in place by full-height tiles, not packed:
    // for attention's short products (K = a block's queries), where packing
    // would cost a fair share of the products
    int a_cols_in_place;
} gemm_job;

// gemm_pack_b of block (k0, j0) of the job's B, which may be in two parts
// (B2): the same panel, each row taken from its part.
static void gemm_pack_b_job(const gemm_job *g, float *Bp, int k0, int j0, int n, int kc) {
    const int64_t brs = g->trans_b ? 1 : g->ldb, bcs = g->trans_b ? g->ldb : 1;
    const int first = g->trans_b ? j0 : k0, count = g->trans_b ? n : kc; // the split index's range
    if (!g->B2 || first + count <= g->b_split) {
        gemm_pack_b(Bp, g->B + k0 * brs + j0 * bcs, brs, bcs, n, kc);
    } else if (first >= g->b_split) {
        const float *B2 = g->B2 - (int64_t)g->b_split * g->ldb; // B2's row 0 is row b_split
        gemm_pack_b(Bp, B2 + k0 * brs + j0 * bcs, brs, bcs, n, kc);
    } else if (g->trans_b) { // columns j: B(k, j) = row j of its part, at k
        const int s = g->b_split - j0; // the panel's first column from B2
        gemm_pack_cols(Bp, g->B + (int64_t)j0 * g->ldb + k0, 1, g->ldb, 0, s, kc);
        gemm_pack_cols(Bp, g->B2 + k0, 1, g->ldb, s, n, kc);
        for (int k = 0; n < GEMM_NR && k < kc; k++)
            for (int j = n; j < GEMM_NR; j++) Bp[(int64_t)k * GEMM_NR + j] = 0.0f;
    } else { // rows k: B(k, j) = row k of its part, at j
        for (int k = 0; k < kc; k++) {
            const int kk = k0 + k;
            const float *b = kk < g->b_split ? g->B + (int64_t)kk * g->ldb : g->B2 + (int64_t)(kk - g->b_split) * g->ldb;
            gemm_pack_row(Bp + (int64_t)k * GEMM_NR, b + j0, n);
        }
    }
}

#define GEMM_NO_LIMIT (1 << 29) // an offset that limits nothing (ints stay < 2^31)

// The own kernel on C rows [m0, m1) x columns [n0, n1). Ap, Bp: packing
// buffers of gemm_a_floats and gemm_b_floats.
static int64_t gemm_a_floats(int m, int K) {
    int mc = m < GEMM_MC ? m : GEMM_MC;
    return (int64_t)(mc + GEMM_MR - 1) / GEMM_MR * GEMM_MR * (K < GEMM_KC ? K : GEMM_KC);
}
static int64_t gemm_b_floats(int n, int K) {
    int nc = n < GEMM_NC ? n : GEMM_NC;
    return (int64_t)(nc + GEMM_NR - 1) / GEMM_NR * GEMM_NR * (K < GEMM_KC ? K : GEMM_KC);
}

static void gemm_own(const gemm_job *g, int m0, int m1, int n0, int n1, float *Ap, float *Bp) {
    const int64_t ars = g->trans_a ? 1 : g->lda, acs = g->trans_a ? g->lda : 1;
    // a row-major A (k contiguous) is read in place by full-height tiles:
    // packing it would transpose element by element, as slow as the products
    // for short N; only a partial last tile is packed (its padding rows)
    const int direct = acs == 1, direct_t = !direct && ars == 1 && g->a_cols_in_place;
    float edge[GEMM_MR * GEMM_NR];
    for (int jc = n0; jc < n1; jc += GEMM_NC) {
        const int nc = n1 - jc < GEMM_NC ? n1 - jc : GEMM_NC;
        for (int pc = 0; pc < g->K; pc += GEMM_KC) {
            const int kc = g->K - pc < GEMM_KC ? g->K - pc : GEMM_KC, acc = pc > 0 || g->accumulate;
            if (g->Bpre) // block (jc, pc) of the packed whole (gemm_pack_b_all)
                Bp = (float *)g->Bpre + (int64_t)jc * g->K + (int64_t)pc * ((nc + GEMM_NR - 1) / GEMM_NR * GEMM_NR);
            else
                for (int jr = 0; jr < nc; jr += GEMM_NR)
                    gemm_pack_b_job(g, Bp + (int64_t)jr * kc, pc, jc + jr, nc - jr < GEMM_NR ? nc - jr : GEMM_NR, kc);
            for (int ic = m0; ic < m1; ic += GEMM_MC) {
                const int mc = m1 - ic < GEMM_MC ? m1 - ic : GEMM_MC;
                for (int ir = 0; ir < mc; ir += GEMM_MR)
                    if ((!direct && !direct_t) || mc - ir < GEMM_MR)
                        gemm_pack_a(Ap + (int64_t)ir * kc, g->A + (ic + ir) * ars + pc * acs, ars, acs,
                                    mc - ir < GEMM_MR ? mc - ir : GEMM_MR, kc);
                for (int jr = 0; jr < nc; jr += GEMM_NR) {
                    const int n = nc - jr < GEMM_NR ? nc - jr : GEMM_NR;
                    for (int ir = 0; ir < mc; ir += GEMM_MR) {
                        const int m = mc - ir < GEMM_MR ? mc - ir : GEMM_MR, r0 = ic + ir, r1 = r0 + m;
                        if (jc + jr >= r1 + g->col_hi) continue; // no row of this tile sees these columns
                        // this tile's k range inside the block (causal A: zero outside)
                        int k0 = r0 - g->k_lo - pc, k1 = r1 + g->k_hi - pc;
                        k0 = k0 < 0 ? 0 : k0 > kc ? kc : k0;
                        k1 = k1 > kc ? kc : k1 < k0 ? k0 : k1;
                        float *c = g->C + (int64_t)r0 * g->ldc + jc + jr;
                        const float *ap = Ap + (int64_t)ir * kc + (int64_t)k0 * GEMM_MR;
                        // in place (direct or direct_t, m == MR)
                        const float *ar = g->A + (int64_t)r0 * ars + (int64_t)(pc + k0) * acs;
                        const float *bp = Bp + (int64_t)jr * kc + (int64_t)k0 * GEMM_NR;
                        const int rows = direct && m == GEMM_MR, cols = direct_t && m == GEMM_MR;
                        if (m == GEMM_MR && n == GEMM_NR) {
                            if (rows) gemm_micro_rows(k1 - k0, ar, ars, bp, c, g->ldc, acc);
                            else if (cols) gemm_micro_cols(k1 - k0, ar, acs, bp, c, g->ldc, acc);
                            else gemm_micro(k1 - k0, ap, bp, c, g->ldc, acc);
                        } else { // edge tile: through a full-size copy, the same arithmetic
                            for (int i = 0; acc && i < m; i++) gemm_copy_row(edge + i * GEMM_NR, c + (int64_t)i * g->ldc, n);
                            if (rows) gemm_micro_rows(k1 - k0, ar, ars, bp, edge, GEMM_NR, acc);
                            else if (cols) gemm_micro_cols(k1 - k0, ar, acs, bp, edge, GEMM_NR, acc);
                            else gemm_micro(k1 - k0, ap, bp, edge, GEMM_NR, acc);
                            for (int i = 0; i < m; i++) gemm_copy_row(c + (int64_t)i * g->ldc, edge + i * GEMM_NR, n);
                        }
                    }
                }
            }
        }
    }
}

// C rows [m0, m1) x columns [n0, n1) by the job's kernel.
static void gemm_rect(const gemm_job *g, int m0, int m1, int n0, int n1) {
    if (m1 <= m0 || n1 <= n0) return;
    if (g->kernel == COLLM_GEMM_BLAS) {
        const float *a = g->A + (g->trans_a ? m0 : (int64_t)m0 * g->lda);
        const float *b = g->B + (g->trans_b ? (int64_t)n0 * g->ldb : n0);
        cblas_sgemm(CblasRowMajor, g->trans_a ? CblasTrans : CblasNoTrans, g->trans_b ? CblasTrans : CblasNoTrans,
                    m1 - m0, n1 - n0, g->K, 1.0f, a, g->lda, b, g->ldb, g->accumulate ? 1.0f : 0.0f,
                    g->C + (int64_t)m0 * g->ldc + n0, g->ldc);
        return;
    }
    // packing buffers, at most 1.2 MB (AVX-512) a call and thread; freed
    // blocks of this size come back from malloc's free lists, not the kernel
    float *Ap = malloc(sizeof(float) * (size_t)gemm_a_floats(m1 - m0, g->K));
    float *Bp = g->Bpre ? NULL : malloc(sizeof(float) * (size_t)gemm_b_floats(n1 - n0, g->K));
    if (Ap && (Bp || g->Bpre)) {
        gemm_own(g, m0, m1, n0, n1, Ap, Bp);
    } else { // out of memory: BLAS needs no buffers of ours
        gemm_job b = *g;
        b.kernel = COLLM_GEMM_BLAS;
        b.Bpre = NULL;
        gemm_rect(&b, m0, m1, n0, n1);
    }
    free(Ap);
    free(Bp);
}

// Items: slabs of g->unit rows (or columns).
static void gemm_task(void *ctx, int64_t begin, int64_t end, int thread_index) {
    (void)thread_index;
    const gemm_job *g = ctx;
    int lo = (int)begin * g->unit, hi = (int)end * g->unit;
    if (g->split_n) gemm_rect(g, 0, g->M, lo, hi < g->N ? hi : g->N);
    else gemm_rect(g, lo, hi < g->M ? hi : g->M, 0, g->N);
}

// OpenBLAS's results depend on where C is cut when a cut falls inside its
// register blocks (its column and row remainders are summed in another
// order): BLAS slabs are whole multiples of this many rows, never columns.
#define GEMM_BLAS_ROWS 64

#define GEMM_DOT_ROWS 4 // COLLM_GEMM_AUTO: x·W^T with at most this many rows as row dots
#define GEMM_CHUNK_ROWS 96 // collm's kernel on a pool over many rows: chunks of this many rows against B packed once

static int wpack_pack(collm_ops_wpack *p, const float *w, int out, int in, int as_is, collm_pool *pool);

// COLLM_GEMM=blas|own in the environment (core/env.h), read once (0: auto).
static int gemm_forced(void) {
    static int forced = -1;
    if (forced < 0) {
        int v = collm_env_setting_value(COLLM_ENV_GEMM);
        forced = v == COLLM_ENV_GEMM_OWN ? COLLM_GEMM_OWN : v == COLLM_ENV_GEMM_BLAS ? COLLM_GEMM_BLAS : 0;
    }
    return forced;
}

#if defined(__AVX512F__)
// 1 when OpenBLAS runs kernels narrower than this CPU's AVX-512 (read once):
// an OPENBLAS_CORETYPE=Haswell left in the environment, which collm keeps for
// OpenBLAS (a user's choice: it may be there for the same bits on every
// machine of a fleet), or a core OpenBLAS does not know. collm's own kernel
// then takes every product split over the pool (training): a stage-1 step of
// bench/train_speed.sh's model measured 63-76 samples/s with OpenBLAS at
// Haswell, 76-89 with collm's kernel, 88-100 with OpenBLAS at SkylakeX (2
// threads). Not where OpenBLAS runs its own threads (inference's prefill):
// there collm's kernel lost at 64-256 rows (1,018 against 1,757 tokens/s).
static int blas_below_avx512(void) {
    static int below = -1;
    if (below < 0) {
        const char *core = collm_blas_corename(); // ("unknown" when OpenBLAS names none)
        below = !(strncasecmp(core, "skylakex", 8) == 0 || strncasecmp(core, "cooperlake", 10) == 0 ||
                  strncasecmp(core, "sapphirerapids", 14) == 0);
    }
    return below;
}
#endif

// The kernel for a shape when the caller leaves it to collm. Measured with
// bench/gemm_shapes (one thread, CPU time, the training shapes; the README's
// training-speed section). AVX-512: collm's kernel, which reads a row-major A
// in place, ties OpenBLAS (SkylakeX kernels) on the forward products x·W^T
// and writes C once, where OpenBLAS first zeroes it (beta 0) and packs x: a
// few percent of a scoring pass, so the forward goes to collm's kernel on the
// pool, and so does the backward's dy·W over many rows (B packed once,
// chunks of rows: collm_ops_gemm); OpenBLAS stays ahead on the backward's
// dy^T·x. AVX2 (AMD EPYC, OpenBLAS's Zen kernels, 2 threads) the same: one
// thread on one shape, OpenBLAS and collm's kernel swing ±15 % between runs
// and neither wins every shape, but in the step OpenBLAS's per-slab packing
// of W and its zeroing of C cost 9 % of stage 1 (perf), and four alternating
// rounds of bench/train_speed.sh's model (30-step epochs, 512 scoring
// prompts) gave 52.6 against 48.1 samples/s in stage 1, 83.6 against 75.0 in
// stage 2, 160.5 against 132.1 prompts/s scoring (medians) with the forward
// and dy·W on collm's kernel. Elsewhere BLAS, except where BLAS
// cannot use the pool's threads: fewer than two BLAS slabs of rows (a last
// layer's few query rows) while collm's kernel can cut the columns; there
// every thread working beats one faster one.
static int gemm_choose(int kernel, int trans_a, int trans_b, int M, int N, int threads) {
    if (kernel == COLLM_GEMM_DOT && (trans_a || !trans_b)) kernel = COLLM_GEMM_AUTO; // not its form
    if (kernel != COLLM_GEMM_AUTO) return kernel;
    if (gemm_forced()) return gemm_forced();
    // A few rows of x·W^T (a last layer's output rows, the head's one row):
    // every weight is used at most a few times, so the product is a read of W.
    // Packing W for a GEMM kernel (OpenBLAS or ours) reads and writes it
    // again: the head's 32k x 768 for one row takes 7.9 ms through OpenBLAS
    // (2 threads), 2.9 ms as row dots on the pool.
    if (!trans_a && trans_b && M <= GEMM_DOT_ROWS) return COLLM_GEMM_DOT;
    const int pool = threads > 1 && openblas_get_num_threads() == 1;
#if defined(OPS_AVX2) // AVX2 and AVX-512
#if defined(__AVX512F__)
    if (pool && blas_below_avx512()) return COLLM_GEMM_OWN;
#endif
    if (pool && !trans_a && trans_b) return COLLM_GEMM_OWN;
    // dy·W (a backward's dx) over many rows: collm's kernel on B packed once,
    // in chunks (collm_ops_gemm); one thread, 4,800 rows, d 256, n_ff 688:
    // 181-186 GFLOP/s against OpenBLAS's 158-179 on AVX-512 (bench/gemm_shapes, own_chunks)
    if (pool && !trans_a && !trans_b && M >= 2 * GEMM_CHUNK_ROWS) return COLLM_GEMM_OWN;
#else
    (void)trans_a, (void)trans_b;
#endif
    if (pool && M < 2 * GEMM_BLAS_ROWS && N >= threads * GEMM_NR) return COLLM_GEMM_OWN;
    return COLLM_GEMM_BLAS;
}

// COLLM_GEMM_DOT: C(i, j) = [C(i, j) +] A_i · B_j for the columns j of the
// items, all M rows (A_i, B_j rows of K contiguous floats); each element one
// dot8, whatever the thread: the same bits for any pool.
static void gemm_dot_task(void *ctx, int64_t begin, int64_t end, int thread_index) {
    (void)thread_index;
    const gemm_job *g = ctx;
    for (int64_t j = begin; j < end; j++) {
        const float *b = g->B + j * g->ldb;
        for (int i = 0; i < g->M; i++) {
            const float s = dot8(g->A + (int64_t)i * g->lda, b, g->K);
            float *c = g->C + (int64_t)i * g->ldc + j;
            *c = g->accumulate ? *c + s : s;
        }
    }
}

// Items: chunks of GEMM_CHUNK_ROWS rows of C (g->Bpre: B packed whole).
static void gemm_chunk_task(void *ctx, int64_t begin, int64_t end, int thread_index) {
    (void)thread_index;
    const gemm_job *g = ctx;
    for (int64_t c = begin; c < end; c++) {
        int lo = (int)c * GEMM_CHUNK_ROWS, hi = lo + GEMM_CHUNK_ROWS < g->M ? lo + GEMM_CHUNK_ROWS : g->M;
        gemm_rect(g, lo, hi, 0, g->N);
    }
}

// The slabs a job (BLAS or collm's kernel, no packed B) is cut into on a
// pool of `threads`, collm_pool_for's items, one range of them per thread;
// sets g->split_n and g->unit. 0: one call on this thread (no pool, BLAS
// running its own threads, a single slab, or too little work to wake
// threads for: < 2 M multiply-adds each).
static int64_t gemm_slabs(gemm_job *g, int threads) {
    if (g->kernel == COLLM_GEMM_BLAS) { // slabs of whole GEMM_BLAS_ROWS rows
        g->split_n = 0;
        g->unit = GEMM_BLAS_ROWS;
    } else { // collm's kernel: the longer side, in slabs of MC rows or NR columns (finer when few)
        g->split_n = g->N > g->M;
        g->unit = g->split_n ? GEMM_NR : GEMM_MC;
        if ((g->split_n ? g->N : g->M) / g->unit < threads) g->unit = g->split_n ? GEMM_NR : GEMM_MR;
    }
    const int64_t slabs = ((g->split_n ? g->N : g->M) + g->unit - 1) / g->unit;
    if (threads < 2 || (g->kernel == COLLM_GEMM_BLAS && openblas_get_num_threads() > 1) || slabs < 2 ||
        (int64_t)g->M * g->N * g->K < (int64_t)threads * (2 << 20))
        return 0;
    return slabs;
}

// A job collm's kernel runs on a pool as row chunks against B packed whole
// (collm_ops_gemm; a backward's dx beside its weight gradients).
static int gemm_chunked(const gemm_job *g, int threads) {
    return g->kernel == COLLM_GEMM_OWN && !g->trans_a && threads >= 2 && g->M >= 2 * GEMM_CHUNK_ROWS &&
           g->ldb == (g->trans_b ? g->K : g->N) && (int64_t)g->M * g->N * g->K >= (int64_t)threads * (2 << 20);
}

void collm_ops_gemm(int trans_a, int trans_b, int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                    int accumulate, float *C, int ldc, int kernel, collm_pool *pool) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        if (!accumulate)
            for (int i = 0; i < M; i++) memset(C + (int64_t)i * ldc, 0, (size_t)N * sizeof(float));
        return;
    }
    const int threads = collm_pool_size(pool);
    gemm_job g = {.trans_a = trans_a, .trans_b = trans_b, .M = M, .N = N, .K = K, .accumulate = accumulate, .A = A,
                  .B = B, .lda = lda, .ldb = ldb, .ldc = ldc, .C = C, .kernel = gemm_choose(kernel, trans_a, trans_b, M, N, threads),
                  .col_hi = GEMM_NO_LIMIT, .k_lo = GEMM_NO_LIMIT, .k_hi = GEMM_NO_LIMIT};
    if (g.kernel == COLLM_GEMM_DOT) { // columns over the pool when there are >= 256 K multiply-adds a thread
        if (threads < 2 || (int64_t)M * N * K < (int64_t)threads * (1 << 18)) gemm_dot_task(&g, 0, N, 0);
        else collm_pool_for(pool, N, 16, gemm_dot_task, &g);
        return;
    }
    // collm's kernel on a pool over many rows (A read in place): B packed
    // once, over the pool, then chunks of rows handed out one at a time (as
    // a fused block runs its products): no thread packs B again, and a thread
    // the machine slows holds the other up by a chunk at most. Every element
    // is the same sums in the same order as in the slabs below: the same bits.
    if (gemm_chunked(&g, threads)) {
        collm_ops_wpack wp;
        if (wpack_pack(&wp, B, N, K, !trans_b, pool) == 1) {
            g.Bpre = wp.packed;
            collm_pool_for_each(pool, (M + GEMM_CHUNK_ROWS - 1) / GEMM_CHUNK_ROWS, gemm_chunk_task, &g);
            collm_ops_wpack_free(&wp);
            return;
        } // (out of memory: the slabs, which need less)
    }
    const int64_t slabs = gemm_slabs(&g, threads);
    if (slabs == 0) gemm_rect(&g, 0, M, 0, N);
    else collm_pool_for(pool, slabs, 1, gemm_task, &g);
}

// ---------------------------------------------------------------------------
// matmul: y (T, out) = x (T, in) · W^T + bias, W (out, in)

static void matmul_forward(float *y, const float *x, const float *w, const float *bias, int T, int in, int out,
                           int kernel, collm_pool *pool) {
    if (T <= 0 || out <= 0) return;
    collm_ops_gemm(0, 1, T, out, in, x, in, w, in, 0, y, out, kernel, pool);
    if (bias) {
        for (int t = 0; t < T; t++) {
            float *yt = y + (int64_t)t * out;
            for (int o = 0; o < out; o++) yt[o] += bias[o];
        }
    }
}

void collm_ops_matmul_forward(float *y, const float *x, const float *w, const float *bias, int T, int in, int out,
                              collm_pool *pool) {
    matmul_forward(y, x, w, bias, T, in, out, COLLM_GEMM_AUTO, pool);
}

void collm_ops_matmul_forward_rowwise(float *y, const float *x, const float *w, const float *bias, int T, int in,
                                      int out, collm_pool *pool) {
    matmul_forward(y, x, w, bias, T, in, out, COLLM_GEMM_OWN, pool);
}

// dW (out, in) += dy^T (out, T) · x (T, in) as collm_ops_gemm cuts it:
// the job, its slabs (0: one call) and the ranges of them (parts).
static gemm_job dw_job(const collm_ops_dw *d, int64_t *slabs) {
    gemm_job g = {.trans_a = 1, .M = d->out, .N = d->in, .K = d->T, .accumulate = 1, .A = d->dy, .B = d->x,
                  .lda = d->out, .ldb = d->in, .ldc = d->in, .C = d->dw, .kernel = d->kernel,
                  .col_hi = GEMM_NO_LIMIT, .k_lo = GEMM_NO_LIMIT, .k_hi = GEMM_NO_LIMIT};
    *slabs = gemm_slabs(&g, d->threads);
    return g;
}

int collm_ops_dw_plan(collm_ops_dw *d, float *dw, const float *dy, const float *x, int T, int in, int out,
                      collm_pool *pool) {
    memset(d, 0, sizeof *d);
    if (!dw || T <= 0 || in <= 0 || out <= 0) return 0;
    *d = (collm_ops_dw){.dw = dw, .dy = dy, .x = x, .T = T, .in = in, .out = out, .threads = collm_pool_size(pool),
                        .kernel = gemm_choose(COLLM_GEMM_AUTO, 1, 0, out, in, collm_pool_size(pool))};
    int64_t slabs;
    (void)dw_job(d, &slabs);
    // collm_pool_for's ranges: one per thread, at most one per slab
    d->parts = slabs == 0 ? 1 : slabs < d->threads ? (int)slabs : d->threads;
    return d->parts;
}

void collm_ops_dw_run(const collm_ops_dw *d, int part) {
    if (part < 0 || part >= d->parts) return;
    int64_t slabs;
    gemm_job g = dw_job(d, &slabs);
    if (slabs == 0) gemm_rect(&g, 0, g.M, 0, g.N);
    else gemm_task(&g, slabs * part / d->parts, slabs * (part + 1) / d->parts, 0);
}

// Items: every part of every weight gradient, then the dx chunks.
typedef struct {
    const collm_ops_dw *dws;
    int64_t dw_items;
    const gemm_job *dx; // chunks against B packed whole (NULL: none)
} backward_job;

static void backward_task(void *ctx, int64_t begin, int64_t end, int thread_index) {
    const backward_job *j = ctx;
    for (int64_t item = begin; item < end; item++) {
        if (item >= j->dw_items) {
            gemm_chunk_task((void *)j->dx, item - j->dw_items, item - j->dw_items + 1, thread_index);
            continue;
        }
        int64_t k = 0, part = item;
        while (part >= j->dws[k].parts) part -= j->dws[k++].parts;
        collm_ops_dw_run(&j->dws[k], (int)part);
    }
}

void collm_ops_dw_run_all(const collm_ops_dw *dws, int n_dw, collm_pool *pool) {
    backward_job j = {.dws = dws};
    for (int k = 0; k < n_dw; k++) j.dw_items += dws[k].parts;
    if (j.dw_items > 0) collm_pool_for_each(pool, j.dw_items, backward_task, &j);
}

static void matmul_backward(float *dx, int accumulate_dx, float *dw, float *dbias, const float *dy, const float *x,
                            const float *w, int T, int in, int out, const collm_ops_dw *extra, int n_extra,
                            collm_pool *pool) {
    if (T <= 0 || in <= 0) {
        collm_ops_dw_run_all(extra, n_extra, pool);
        return;
    }
    // the weight gradients: this product's dW (out, in) += dy^T (out, T) · x (T, in) after the caller's
    collm_ops_dw dws[COLLM_OPS_MAX_DW + 1];
    n_extra = n_extra < COLLM_OPS_MAX_DW ? n_extra : COLLM_OPS_MAX_DW;
    for (int k = 0; k < n_extra; k++) dws[k] = extra[k];
    collm_ops_dw_plan(&dws[n_extra], out > 0 ? dw : NULL, dy, x, T, in, out, pool);
    // dx (T, in) (+)= dy (T, out) · W (out, in); set: no zeroing pass, C neither zeroed nor read.
    // Where collm_ops_gemm would run it as chunks against W packed whole,
    // the chunks and the weight gradients' parts (each the call
    // collm_ops_gemm makes, so the same bits) are one job: the threads take
    // the dW parts first, then chunks, so neither waits for the other to
    // finish its dW part.
    const int threads = collm_pool_size(pool);
    gemm_job g = {.M = T, .N = in, .K = out, .accumulate = accumulate_dx, .A = dy, .B = w, .lda = out, .ldb = in,
                  .ldc = in, .C = dx, .kernel = gemm_choose(COLLM_GEMM_AUTO, 0, 0, T, in, threads),
                  .col_hi = GEMM_NO_LIMIT, .k_lo = GEMM_NO_LIMIT, .k_hi = GEMM_NO_LIMIT};
    collm_ops_wpack wp = {0};
    backward_job j = {.dws = dws};
    for (int k = 0; k <= n_extra; k++) j.dw_items += dws[k].parts;
    if (dx && out > 0 && j.dw_items > 0 && gemm_chunked(&g, threads) && wpack_pack(&wp, w, in, out, 1, pool) == 1) {
        g.Bpre = wp.packed;
        j.dx = &g;
        collm_pool_for_each(pool, j.dw_items + (T + GEMM_CHUNK_ROWS - 1) / GEMM_CHUNK_ROWS, backward_task, &j);
        collm_ops_wpack_free(&wp);
    } else {
        if (dx) collm_ops_gemm(0, 0, T, in, out, dy, out, w, in, accumulate_dx, dx, in, COLLM_GEMM_AUTO, pool);
        collm_ops_dw_run_all(dws, n_extra + 1, pool);
    }
    if (out <= 0) return;
    // dbias (out) += column sums of dy; rows outer so the inner loop is contiguous
    if (dbias) {
        for (int t = 0; t < T; t++) {
            const float *dyt = dy + (int64_t)t * out;
            for (int o = 0; o < out; o++) dbias[o] += dyt[o];
        }
    }
}

void collm_ops_matmul_backward(float *dx, float *dw, float *dbias, const float *dy, const float *x, const float *w, int T,
                               int in, int out, collm_pool *pool) {
    if (out > 0) matmul_backward(dx, 1, dw, dbias, dy, x, w, T, in, out, NULL, 0, pool);
}

void collm_ops_matmul_backward_set(float *dx, float *dw, float *dbias, const float *dy, const float *x, const float *w,
                                   int T, int in, int out, collm_pool *pool) {
    matmul_backward(dx, 0, dw, dbias, dy, x, w, T, in, out, NULL, 0, pool);
}

void collm_ops_matmul_backward_set_with(float *dx, float *dw, float *dbias, const float *dy, const float *x,
                                        const float *w, int T, int in, int out, const collm_ops_dw *extra, int n_extra,
                                        collm_pool *pool) {
    matmul_backward(dx, 0, dw, dbias, dy, x, w, T, in, out, extra, n_extra, pool);
}

// ---------------------------------------------------------------------------
// Forward products over row chunks against W^T packed once (see ops.h)

// Bp: the (jc, pc) blocks of gemm_own in loop order, each its NR-wide panels
// of kc rows: block (jc, pc) at jc·K + pc·roundup(nc, NR). Items: panels.
static void wpack_task(void *ctx, int64_t begin, int64_t end, int thread_index) {
    (void)thread_index;
    const collm_ops_wpack *p = ctx;
    const int K = p->in, N = p->out, per_block = GEMM_NC / GEMM_NR, k_blocks = (K + GEMM_KC - 1) / GEMM_KC;
    for (int64_t item = begin; item < end; item++) {
        const int blk = (int)(item / per_block), jc = blk / k_blocks * GEMM_NC, pc = blk % k_blocks * GEMM_KC;
        const int jr = (int)(item % per_block) * GEMM_NR;
        if (jc + jr >= N) continue;
        const int nc = N - jc < GEMM_NC ? N - jc : GEMM_NC, kc = K - pc < GEMM_KC ? K - pc : GEMM_KC;
        float *bp = p->packed + (int64_t)jc * K + (int64_t)pc * ((nc + GEMM_NR - 1) / GEMM_NR * GEMM_NR) + (int64_t)jr * kc;
        const int n = nc - jr < GEMM_NR ? nc - jr : GEMM_NR;
        if (p->as_is) // B = W (in, out): B(k, j) = w[k·out + j]
            gemm_pack_b(bp, p->w + (int64_t)pc * N + jc + jr, N, 1, n, kc);
        else // B = W^T: B(k, j) = w[j·in + k]
            gemm_pack_b(bp, p->w + (int64_t)(jc + jr) * K + pc, 1, K, n, kc);
    }
}

int collm_ops_wpack_used(int out, int as_is, int rows, collm_pool *pool) {
    return rows > 0 && out > 0 &&
           gemm_choose(COLLM_GEMM_AUTO, 0, !as_is, rows, out, collm_pool_size(pool)) == COLLM_GEMM_OWN;
}

// Packs W for y = x·W^T (as_is: x·W, W (in, out)) over the pool: 1, or COLLM_ERR_NOMEM.
static int wpack_pack(collm_ops_wpack *p, const float *w, int out, int in, int as_is, collm_pool *pool) {
    memset(p, 0, sizeof *p);
    p->w = w;
    p->as_is = as_is;
    p->in = in;
    p->out = out;
    p->packed = malloc(sizeof(float) * (size_t)((out + GEMM_NR - 1) / GEMM_NR * GEMM_NR) * (size_t)in);
    if (!p->packed) return COLLM_ERR_NOMEM;
    const int64_t items = (int64_t)((out + GEMM_NC - 1) / GEMM_NC) * ((in + GEMM_KC - 1) / GEMM_KC) * (GEMM_NC / GEMM_NR);
    collm_pool_for(pool, items, 8, wpack_task, p);
    return 1;
}

static int wpack_init(collm_ops_wpack *p, const float *w, int out, int in, int as_is, int rows, collm_pool *pool) {
    memset(p, 0, sizeof *p);
    if (in <= 0 || !collm_ops_wpack_used(out, as_is, rows, pool)) return 0;
    return wpack_pack(p, w, out, in, as_is, pool);
}

int collm_ops_wpack_init(collm_ops_wpack *p, const float *w, int out, int in, int rows, collm_pool *pool) {
    return wpack_init(p, w, out, in, 0, rows, pool);
}

int collm_ops_wpack_init_as_is(collm_ops_wpack *p, const float *w, int in, int out, int rows, collm_pool *pool) {
    return wpack_init(p, w, out, in, 1, rows, pool);
}

void collm_ops_wpack_forward(const collm_ops_wpack *p, float *y, const float *x, int T) {
    if (T <= 0) return;
    gemm_job g = {.trans_a = 0, .trans_b = !p->as_is, .M = T, .N = p->out, .K = p->in, .A = x, .lda = p->in, .B = p->w,
                  .ldb = p->as_is ? p->out : p->in, .C = y, .ldc = p->out, .kernel = COLLM_GEMM_OWN, .col_hi = GEMM_NO_LIMIT,
                  .k_lo = GEMM_NO_LIMIT, .k_hi = GEMM_NO_LIMIT, .Bpre = p->packed};
    gemm_rect(&g, 0, T, 0, p->out);
}

void collm_ops_wpack_free(collm_ops_wpack *p) {
    free(p->packed);
    p->packed = NULL;
}

// ---------------------------------------------------------------------------
// RMSNorm: y = x · rstd ⊙ w, rstd = 1/sqrt(mean(x²) + eps). x, y (T, C); w (C); rstd (T)

void collm_ops_rmsnorm_forward(float *y, float *rstd, const float *x, const float *w, int T, int C, float eps) {
    for (int t = 0; t < T; t++) {
        const float *xt = x + (int64_t)t * C;
        float *yt = y + (int64_t)t * C;
        // Σ x² over 8 double lanes (fixed order, so deterministic): float
        // squares summed in double as llama.cpp does, and 8 independent
        // chains instead of one serial float chain (which gcc cannot reorder)
        double acc[8] = {0};
        int i = 0;
        for (; i + 8 <= C; i += 8)
            for (int l = 0; l < 8; l++) acc[l] += (double)(xt[i + l] * xt[i + l]);
        double ss = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
        for (; i < C; i++) ss += (double)(xt[i] * xt[i]);
        float r = 1.0f / sqrtf((float)(ss / C) + eps);
        if (rstd) rstd[t] = r;
        i = 0;
#ifdef OPS_AVX2
        // (x·r)·w as below, 8 at a time (y may alias x: each chunk is read first)
        const __m256 vr = _mm256_set1_ps(r);
        for (; i + 8 <= C; i += 8)
            _mm256_storeu_ps(yt + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(xt + i), vr), _mm256_loadu_ps(w + i)));
#endif
        for (; i < C; i++) yt[i] = xt[i] * r * w[i];
    }
}

// Σ_i (a_i·b_i)·c_i over 16 independent partial sums (lane l takes i ≡ l mod
// 16), added pairwise in a fixed order, then the tail: one serial float chain
// would cost an FMA latency per element (gcc keeps it serial without
// -ffast-math); 16 lanes are one AVX-512 register or two AVX2 ones, and every
// build sums in the same order, so the bits do not depend on the ISA.
static inline float dot3_16(const float *a, const float *b, const float *c, int n) {
    float acc[16] = {0};
    int i = 0;
    for (; i + 16 <= n; i += 16)
        for (int l = 0; l < 16; l++) acc[l] += a[i + l] * b[i + l] * c[i + l];
    for (int l = 0; l < 8; l++) acc[l] += acc[l + 8];
    float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; i < n; i++) s += a[i] * b[i] * c[i];
    return s;
}

// With n_i = x_i·r:  dL/dx_i = r·(w_i dy_i) - x_i · r³/C · Σ_j w_j dy_j x_j ;  dL/dw_i = Σ_t dy_i n_i.
// The gradients never overlap the inputs (restrict): the loops, in blocks of
// 16 with a scalar tail, then vectorise at -O2 (elementwise: the same bits).
void collm_ops_rmsnorm_backward(float *restrict dx, float *restrict dw, const float *dy, const float *x, const float *w,
                                const float *rstd, int T, int C) {
    for (int t = 0; t < T; t++) {
        const float *xt = x + (int64_t)t * C;
        const float *dyt = dy + (int64_t)t * C;
        float r = rstd[t];
        if (dx) {
            float *restrict dxt = dx + (int64_t)t * C;
            float c = dot3_16(w, dyt, xt, C) * r * r * r / (float)C; // Σ_j w_j dy_j x_j
            int i = 0;
            for (; i + 16 <= C; i += 16)
                for (int l = 0; l < 16; l++) dxt[i + l] += r * w[i + l] * dyt[i + l] - c * xt[i + l];
            for (; i < C; i++) dxt[i] += r * w[i] * dyt[i] - c * xt[i];
        }
        if (dw) {
            int i = 0;
            for (; i + 16 <= C; i += 16)
                for (int l = 0; l < 16; l++) dw[i + l] += dyt[i + l] * xt[i + l] * r;
            for (; i < C; i++) dw[i] += dyt[i] * xt[i] * r;
        }
    }
}

// ---------------------------------------------------------------------------
// RoPE on x (T, n_head, hd), in place. Pair i (0 <= i < n_rot/2) rotates by
// θ = pos · base^(-2i/n_rot); NORM mode pairs dims (2i, 2i+1), NEOX pairs
// (i, i + n_rot/2); dims >= n_rot pass through. backward rotates by -θ (the
// Jacobian of a rotation is the rotation, its transpose rotates back).

// cs (half, 2): cos and sin of pos·freq[i] for one token. Angles in double:
// positions up to thousands times a small exponent.
static void rope_row_table(float *cs, int32_t pos, const double *freq, int half) {
    for (int i = 0; i < half; i++) {
        double theta = (double)pos * freq[i];
        cs[2 * i] = (float)cos(theta);
        cs[2 * i + 1] = (float)sin(theta);
    }
}

static void rope_freqs(double *freq, int half, int n_rot, float base) {
    for (int i = 0; i < half; i++) freq[i] = pow((double)base, -2.0 * i / (double)n_rot);
}

// Rotates the n_head heads of one token xt (n_head, hd) by the table row cs.
// The mode and direction are hoisted out of the pair loop (one loop each,
// same arithmetic), so the loops are branch-free.
static void rope_rotate_row(float *xt, const float *cs, int n_head, int head_dim, int half, int neox, int backward) {
    const float sign = backward ? -1.0f : 1.0f; // exact: flips the sign of s only
    for (int h = 0; h < n_head; h++) {
        float *xh = xt + (int64_t)h * head_dim;
        if (neox) {
            for (int i = 0; i < half; i++) {
                float c = cs[2 * i], s = sign * cs[2 * i + 1];
                float a = xh[i], b = xh[i + half];
                xh[i] = a * c - b * s;
                xh[i + half] = a * s + b * c;
            }
        } else {
            for (int i = 0; i < half; i++) {
                float c = cs[2 * i], s = sign * cs[2 * i + 1];
                float a = xh[2 * i], b = xh[2 * i + 1];
                xh[2 * i] = a * c - b * s;
                xh[2 * i + 1] = a * s + b * c;
            }
        }
    }
}

static void rope_apply(float *x, const int32_t *pos, int T, int n_head, int head_dim, int n_rot, float base, int neox,
                       int backward) {
    int half = n_rot / 2;
    if (half <= 0) return;
    double freq[half]; // (half) base^(-2i/n_rot), once per call instead of per token
    float cs[2 * half]; // (half, 2) one token's table row
    rope_freqs(freq, half, n_rot, base);
    for (int t = 0; t < T; t++) {
        rope_row_table(cs, pos[t], freq, half);
        rope_rotate_row(x + (int64_t)t * n_head * head_dim, cs, n_head, head_dim, half, neox, backward);
    }
}

void collm_ops_rope_table(float *cs, const int32_t *pos, int T, int n_rot, float base) {
    int half = n_rot / 2;
    if (half <= 0) return;
    double freq[half];
    rope_freqs(freq, half, n_rot, base);
    for (int t = 0; t < T; t++) rope_row_table(cs + (int64_t)t * 2 * half, pos[t], freq, half);
}

void collm_ops_rope_rows(float *x, const float *cs, const int32_t *rows, int T, int n_head, int head_dim, int n_rot,
                         int neox, int backward) {
    int half = n_rot / 2;
    if (half <= 0) return;
    for (int t = 0; t < T; t++)
        rope_rotate_row(x + (int64_t)t * n_head * head_dim, cs + (int64_t)(rows ? rows[t] : t) * 2 * half, n_head,
                        head_dim, half, neox, backward);
}

void collm_ops_rope_forward(float *x, const int32_t *pos, int T, int n_head, int head_dim, int n_rot, float base, int neox) {
    rope_apply(x, pos, T, n_head, head_dim, n_rot, base, neox, 0);
}

void collm_ops_rope_backward(float *dx, const int32_t *pos, int T, int n_head, int head_dim, int n_rot, float base,
                       int neox) {
    rope_apply(dx, pos, T, n_head, head_dim, n_rot, base, neox, 1);
}

// ---------------------------------------------------------------------------
// SwiGLU: h = silu(g) ⊙ u, silu(g) = g·σ(g). All (n).

// h may alias g or u (elementwise: each chunk is read before it is written).
void collm_ops_swiglu_forward(float *h, const float *g, const float *u, int64_t n) {
#ifdef VL
    for (int64_t i = 0; i < n; i += VL) {
        vf_mask m = vf_first(n - i); // tail lanes masked off
        vf vg = vf_load_n(g + i, m), vu = vf_load_n(u + i, m);
        vf_store_n(h + i, m, vf_mul(vf_mul(vg, sigmoid_v(vg)), vu));
    }
#else
    for (int64_t i = 0; i < n; i++) {
        float s = 1.0f / (1.0f + expf(-g[i]));
        h[i] = g[i] * s * u[i];
    }
#endif
}

// d silu/dg = σ + g·σ·(1-σ). add: dg, du (either may be NULL) += the
// gradients; otherwise both set, neither read (no zeroing pass before: the
// same bits as zeroing them first, but for an exact zero's sign). Inlined
// into both entry points, so `add` is a constant in each loop.
static inline void swiglu_backward(float *dg, float *du, const float *dh, const float *g, const float *u, int64_t n,
                                   const int add) {
#ifdef VL
    const vf one = vf_set1(1.0f);
    for (int64_t i = 0; i < n; i += VL) {
        vf_mask m = vf_first(n - i);
        vf vg = vf_load_n(g + i, m), vu = vf_load_n(u + i, m), vdh = vf_load_n(dh + i, m), s = sigmoid_v(vg);
        if (dg) {
            vf d = vf_mul(vf_mul(vdh, vu), vf_add(s, vf_mul(vf_mul(vg, s), vf_sub(one, s))));
            vf_store_n(dg + i, m, add ? vf_add(vf_load_n(dg + i, m), d) : d);
        }
        if (du) {
            vf d = vf_mul(vf_mul(vdh, vg), s);
            vf_store_n(du + i, m, add ? vf_add(vf_load_n(du + i, m), d) : d);
        }
    }
#else
    for (int64_t i = 0; i < n; i++) {
        float s = 1.0f / (1.0f + expf(-g[i]));
        float dgi = dh[i] * u[i] * (s + g[i] * s * (1.0f - s)), dui = dh[i] * g[i] * s;
        if (dg) dg[i] = add ? dg[i] + dgi : dgi;
        if (du) du[i] = add ? du[i] + dui : dui;
    }
#endif
}

void collm_ops_swiglu_backward(float *dg, float *du, const float *dh, const float *g, const float *u, int64_t n) {
    swiglu_backward(dg, du, dh, g, u, n, 1);
}

void collm_ops_swiglu_backward_set(float *dg, float *du, const float *dh, const float *g, const float *u, int64_t n) {
    swiglu_backward(dg, du, dh, g, u, n, 0);
}

// ---------------------------------------------------------------------------
// ReLU (n)

void collm_ops_relu_forward(float *y, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void collm_ops_relu_backward(float *dx, const float *dy, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) dx[i] += x[i] > 0.0f ? dy[i] : 0.0f;
}

// ---------------------------------------------------------------------------
// Causal GQA attention. q (T, n_head, hd); k, v (L, n_head_kv, hd), L = n_past + T;
// query t sits at absolute position n_past + t and sees keys 0..n_past+t.
//
// Work is blocked by (head, block of qb queries): the block's scores against
// all its keys form a (qb, nk) matrix, and every product is one GEMM by
// collm's packed kernel (gemm_own, on the calling thread) over the block:
//   S = Q·K^T and dP = dO·V^T                 (nq, nk)
//   O = P·V, dQ += dS·K                       (nq, hd)
//   dK += dS^T·Q, dV += P^T·dO                (nk, hd)
// Each output element is summed in a fixed order whatever the block size,
// so results do not depend on the thread count. Causal masking by tile: in a
// block starting at query t0, block row i sees keys c <= diag + i with
// diag = n_past + t0; micro-tiles of S and dP entirely above that diagonal
// are skipped, and the sums over keys (queries) stop (start) at the last
// (first) one a tile's rows can see: P and dS are exact zeros beyond.

#define ATT_MAX_QB 128         // queries per block
#define ATT_NO_LIMIT GEMM_NO_LIMIT // tile_axpy: a diagonal offset that limits nothing
#define ATT_SCRATCH 16384      // target floats of one thread's scratch, one (qb, L) block
                               // (qb = 1 beyond L = 16384: then L floats)

// C (M, N) = op(A)·op(B) (acc: +=) with collm's kernel on this thread, the
// causal limits of gemm_job (GEMM_NO_LIMIT: none); B's rows from b_split on
// at B2 (gemm_job; NULL: none).
static void att_gemm2(int trans_a, int trans_b, int M, int N, int K, const float *A, int64_t lda, const float *B,
                      const float *B2, int b_split, int64_t ldb, int acc, float *C, int64_t ldc, int col_hi, int k_lo,
                      int k_hi) {
    gemm_job g = {.trans_a = trans_a, .trans_b = trans_b, .M = M, .N = N, .K = K, .accumulate = acc, .A = A, .B = B,
                  .lda = (int)lda, .ldb = (int)ldb, .ldc = (int)ldc, .C = C, .kernel = COLLM_GEMM_OWN,
                  .col_hi = col_hi, .k_lo = k_lo, .k_hi = k_hi, .B2 = B2, .b_split = b_split,
                  .a_cols_in_place = 1};
    gemm_rect(&g, 0, M, 0, N);
}

static void att_gemm(int trans_a, int trans_b, int M, int N, int K, const float *A, int64_t lda, const float *B,
                     int64_t ldb, int acc, float *C, int64_t ldc, int col_hi, int k_lo, int k_hi) {
    att_gemm2(trans_a, trans_b, M, N, K, A, lda, B, NULL, 0, ldb, acc, C, ldc, col_hi, k_lo, k_hi);
}

// O[r·ldo + d] += Σ_c A[r·ars + c·acs] · B[c·ldb + d] for r < nrow, d < n,
// the sum over c in increasing order from 0, then added to O. For rows
// [r0, r1) of a 4-row tile c runs over [max(0, r0 - lo), min(ncol, r1 + hi)):
// the caller guarantees A is zero outside (causal structure), so the skipped
// terms are exact zeros.
#ifdef OPS_AVX2
// One tile: 4 rows (o, a) x 16 columns at d of B/O (8 accumulators, written
// out so they stay in registers), c over [c_begin, c_end); rows >= `rows` are
// padding and not stored.
static void axpy_tile16(float *const o[4], const float *const a[4], int64_t acs, const float *B, int64_t ldb,
                        int c_begin, int c_end, int d, int rows) {
    __m256 x00 = _mm256_setzero_ps(), x01 = x00, x10 = x00, x11 = x00, x20 = x00, x21 = x00, x30 = x00, x31 = x00;
    const float *a0 = a[0], *a1 = a[1], *a2 = a[2], *a3 = a[3];
    for (int c = c_begin; c < c_end; c++) {
        const float *bc = B + (int64_t)c * ldb + d;
        __m256 vb0 = _mm256_loadu_ps(bc), vb1 = _mm256_loadu_ps(bc + 8);
        // Kept in registers: without this GCC folds the loads into all eight
        // FMAs, 12 loads per 8 FMAs, and the loop runs at the load ports' pace.
        __asm__("" : "+x"(vb0), "+x"(vb1));
        int64_t ac = (int64_t)c * acs;
        __m256 va = _mm256_broadcast_ss(a0 + ac);
        x00 = _mm256_fmadd_ps(va, vb0, x00), x01 = _mm256_fmadd_ps(va, vb1, x01);
        va = _mm256_broadcast_ss(a1 + ac);
        x10 = _mm256_fmadd_ps(va, vb0, x10), x11 = _mm256_fmadd_ps(va, vb1, x11);
        va = _mm256_broadcast_ss(a2 + ac);
        x20 = _mm256_fmadd_ps(va, vb0, x20), x21 = _mm256_fmadd_ps(va, vb1, x21);
        va = _mm256_broadcast_ss(a3 + ac);
        x30 = _mm256_fmadd_ps(va, vb0, x30), x31 = _mm256_fmadd_ps(va, vb1, x31);
    }
    __m256 x[4][2] = {{x00, x01}, {x10, x11}, {x20, x21}, {x30, x31}};
    for (int i = 0; i < rows; i++) {
        float *oi = o[i] + d;
        _mm256_storeu_ps(oi, _mm256_add_ps(_mm256_loadu_ps(oi), x[i][0]));
        _mm256_storeu_ps(oi + 8, _mm256_add_ps(_mm256_loadu_ps(oi + 8), x[i][1]));
    }
}

// The same for 8 columns.
static void axpy_tile8(float *const o[4], const float *const a[4], int64_t acs, const float *B, int64_t ldb,
                       int c_begin, int c_end, int d, int rows) {
    __m256 x0 = _mm256_setzero_ps(), x1 = x0, x2 = x0, x3 = x0;
    const float *a0 = a[0], *a1 = a[1], *a2 = a[2], *a3 = a[3];
    for (int c = c_begin; c < c_end; c++) {
        __m256 vb = _mm256_loadu_ps(B + (int64_t)c * ldb + d);
        __asm__("" : "+x"(vb)); // in a register, as in axpy_tile16
        int64_t ac = (int64_t)c * acs;
        x0 = _mm256_fmadd_ps(_mm256_broadcast_ss(a0 + ac), vb, x0);
        x1 = _mm256_fmadd_ps(_mm256_broadcast_ss(a1 + ac), vb, x1);
        x2 = _mm256_fmadd_ps(_mm256_broadcast_ss(a2 + ac), vb, x2);
        x3 = _mm256_fmadd_ps(_mm256_broadcast_ss(a3 + ac), vb, x3);
    }
    __m256 x[4] = {x0, x1, x2, x3};
    for (int i = 0; i < rows; i++) _mm256_storeu_ps(o[i] + d, _mm256_add_ps(_mm256_loadu_ps(o[i] + d), x[i]));
}
#endif

static void tile_axpy(float *O, int64_t ldo, int nrow, const float *A, int64_t ars, int64_t acs, int ncol,
                      const float *B, int64_t ldb, int n, int lo, int hi) {
    for (int r0 = 0; r0 < nrow; r0 += 4) {
        int r1 = r0 + 4 < nrow ? r0 + 4 : nrow;
        int c_begin = r0 - lo > 0 ? r0 - lo : 0;
        int c_end = r1 + hi < ncol ? r1 + hi : ncol;
        float *o[4];
        const float *a[4];
        for (int i = 0; i < 4; i++) {
            int r = r0 + i < nrow ? r0 + i : nrow - 1; // padding rows repeat the last, never stored
            o[i] = O + (int64_t)r * ldo;
            a[i] = A + (int64_t)r * ars;
        }
        int d = 0;
#ifdef OPS_AVX2
        for (; d + 16 <= n; d += 16) axpy_tile16(o, a, acs, B, ldb, c_begin, c_end, d, r1 - r0);
        for (; d + 8 <= n; d += 8) axpy_tile8(o, a, acs, B, ldb, c_begin, c_end, d, r1 - r0);
#endif
        for (; d < n; d++)
            for (int i = 0; i < r1 - r0; i++) {
                float s = 0.0f;
                for (int c = c_begin; c < c_end; c++) s += a[i][(int64_t)c * acs] * B[(int64_t)c * ldb + d];
                o[i][d] += s;
            }
    }
}

// row[0..n) = exp(scale·row - max scale·row), row[n..end) = 0, n >= 1;
// returns the sum of the exponentials. normalize != 0 also divides the row by
// it (softmax).
static float softmax_row(float *row, int n, int end, int normalize, float scale) {
#ifdef VL
    // the scaling folded into both passes (the same products as scaling first)
    const int nv = n - n % VL;
    const vf vs = vf_set1(scale);
    float tail[VL];
    for (int j = 0; j < VL; j++) tail[j] = nv + j < n ? row[nv + j] * scale : -INFINITY;
    vf vmax = vf_load(tail);
    for (int j = 0; j < nv; j += VL) vmax = vf_max(vmax, vf_mul(vf_load(row + j), vs));
    const vf maxs = vf_set1(vf_hmax(vmax));
    vf vsum = vf_set1(0.0f);
    for (int j = 0; j < nv; j += VL) {
        vf e = exp_nonpos(vf_sub(vf_mul(vf_load(row + j), vs), maxs));
        vf_store(row + j, e);
        vsum = vf_add(vsum, e);
    }
    vf et = exp_nonpos(vf_sub(vf_load(tail), maxs)); // padding: exp(-inf) = 0
    vf_store(tail, et);
    for (int j = nv; j < n; j++) row[j] = tail[j - nv];
    float sum = vf_hsum(vf_add(vsum, et));
    if (normalize) {
        const float inv = 1.0f / sum;
        for (int j = 0; j < nv; j += VL) vf_store(row + j, vf_mul(vf_load(row + j), vf_set1(inv)));
        for (int j = nv; j < n; j++) row[j] *= inv;
    }
#else
    if (scale != 1.0f)
        for (int j = 0; j < n; j++) row[j] *= scale;
    float maxs = -INFINITY;
    for (int j = 0; j < n; j++) maxs = row[j] > maxs ? row[j] : maxs;
    float sum = 0.0f;
    for (int j = 0; j < n; j++) {
        row[j] = expf(row[j] - maxs);
        sum += row[j];
    }
    if (normalize) {
        float inv = 1.0f / sum;
        for (int j = 0; j < n; j++) row[j] *= inv;
    }
#endif
    for (int j = n; j < end; j++) row[j] = 0.0f;
    return sum;
}

// dS from dP in place: ds[j] = p[j]·(ds[j] - p·ds)·scale for j < n (the
// softmax's backward, the attention scale folded in), ds[n..end) = 0. Each
// element the same two products in the same order in SIMD lanes or not.
static void softmax_backward_row(float *ds, const float *p, int n, int end, float scale) {
    const float p_dp = dot8(p, ds, n);
    int j = 0;
#ifdef VL
    const vf vp_dp = vf_set1(p_dp), vs = vf_set1(scale);
    for (; j + VL <= n; j += VL) vf_store(ds + j, vf_mul(vf_mul(vf_load(p + j), vf_sub(vf_load(ds + j), vp_dp)), vs));
#endif
    for (; j < n; j++) ds[j] = p[j] * (ds[j] - p_dp) * scale;
    if (end > n) memset(ds + n, 0, (size_t)(end - n) * sizeof(float));
}

typedef struct {
    float *out, *att;
    float *dq, *dk, *dv;
    const float *dout, *q, *k, *v;
    const float *att_in;
    const float *k2, *v2; // keys/values from n_first on (NULL: all at k, v)
    float *dk2, *dv2;     // backward with k2: the gradients of those rows (row n_first first)
    int n_first;
    int normalize;        // forward without att: probabilities normalised in the scratch, as in att
    int T, n_past, n_head, n_head_kv, hd;
    // Values: vd floats per head, kv head g's at column g·v_off of rows v_stride
    // apart (v_off = hd, v_stride = n_head_kv·hd; or v_off = 0: every head
    // reads the same vd = v_stride columns); out and dout rows (n_head, vd).
    int vd;
    int64_t v_off, v_stride;
    int qb; // queries per block
    float *scratch;      // (threads, scratch_per)
    int64_t scratch_per; // floats per thread
} attention_ctx;

// A (qb, L) score block is at most max(ATT_SCRATCH, L) floats (attention_block);
// a packed row needs n_past + own keys + 8 (a SIMD tail) <= L + 8.
int64_t collm_ops_attention_scratch(int L) {
    return (L > ATT_SCRATCH ? (int64_t)L : ATT_SCRATCH) + 8;
}

// The caller's scratch, or one allocated for this call (*own, to free).
static float *attention_scratch(float *scratch, int L, collm_pool *pool, float **own) {
    *own = NULL;
    if (scratch) return scratch;
    *own = collm_malloc((size_t)collm_pool_size(pool) * (size_t)collm_ops_attention_scratch(L) * sizeof(float));
    return *own;
}

// Queries per block: at most ATT_MAX_QB, and a (qb, L) score block fits the
// scratch. Depends on the shapes only, never on the thread count.
static int attention_block(int T, int L) {
    int qb = ATT_SCRATCH / L;
    if (qb > ATT_MAX_QB) qb = ATT_MAX_QB;
    if (qb >= 4) qb &= ~3;
    if (qb < 1) qb = 1;
    return qb < T ? qb : T;
}

// Items to give each thread at least: ~32k multiply-adds, so short decode
// steps do not pay for waking threads.
static int64_t attention_min_items(int qb, int L, int hd) {
    int64_t work = (int64_t)qb * L * hd;
    return work >= 32768 ? 1 : 32768 / work + 1;
}

// Forward items are (head, query block) pairs, index = h·n_blocks + b: each
// writes only its own out rows and att rows.
static void attention_forward_task(void *ctx_, int64_t begin, int64_t end, int thread_index) {
    const attention_ctx *c = ctx_;
    const int T = c->T, hd = c->hd, L = c->n_past + c->T, qb = c->qb;
    const int n_blocks = (T + qb - 1) / qb, group = c->n_head / c->n_head_kv;
    const float scale = 1.0f / sqrtf((float)hd);
    const int64_t q_stride = (int64_t)c->n_head * hd, kv_stride = (int64_t)c->n_head_kv * hd; // between rows
    const int vd = c->vd;
    const int64_t o_stride = (int64_t)c->n_head * vd;
    float *scratch = c->att ? NULL : c->scratch + thread_index * c->scratch_per; // (nq <= qb, nk <= L) scores
    for (int64_t item = begin; item < end; item++) {
        int h = (int)(item / n_blocks), t0 = (int)(item % n_blocks) * qb;
        int nq = T - t0 < qb ? T - t0 : qb;
        int diag = c->n_past + t0, nk = diag + nq; // block row i sees keys 0..diag+i
        int kvh = h / group;
        const float *qb_rows = c->q + (int64_t)t0 * q_stride + (int64_t)h * hd; // (nq, hd), stride q_stride
        float *ob_rows = c->out + (int64_t)t0 * o_stride + (int64_t)h * vd;
        const float *kh = c->k + (int64_t)kvh * hd, *vh = c->v + kvh * c->v_off;
        const float *kh2 = c->k2 ? c->k2 + (int64_t)kvh * hd : NULL, *vh2 = c->v2 ? c->v2 + kvh * c->v_off : NULL;
        // S (nq, nk): scores, then probabilities, in att's rows or the scratch
        // (the same values, so the same bits in O: rows past nk are zeros the
        // products skip)
        const int norm = c->att || c->normalize;
        float *S = c->att ? c->att + ((int64_t)h * T + t0) * L : scratch;
        int64_t lds = c->att ? L : nk;
        int row_end = c->att ? L : nk; // att rows are zero up to L
        att_gemm2(0, 1, nq, nk, hd, qb_rows, q_stride, kh, kh2, c->n_first, kv_stride, 0, S, lds, diag, GEMM_NO_LIMIT,
                  GEMM_NO_LIMIT); // S = Q·K^T, scaled in the softmax
        // P normalised (att, normalize); otherwise O = (Σ_j e_j v_j) / Σ_j e_j,
        // one division per output instead of per probability
        float inv_sum[ATT_MAX_QB];
        for (int i = 0; i < nq; i++) {
            float sum = softmax_row(S + (int64_t)i * lds, diag + i + 1, row_end, norm, scale);
            inv_sum[i] = norm ? 1.0f : 1.0f / sum;
        }
        att_gemm2(0, 0, nq, vd, nk, S, lds, vh, vh2, c->n_first, c->v_stride, 0, ob_rows, o_stride, GEMM_NO_LIMIT,
                  GEMM_NO_LIMIT, diag); // O = P·V
        if (!norm)
            for (int i = 0; i < nq; i++)
                for (int d = 0; d < vd; d++) ob_rows[(int64_t)i * o_stride + d] *= inv_sum[i];
    }
}

static int attention_forward(float *out, float *att, const float *q, const float *k, const float *v, int n_first,
                             const float *k2, const float *v2, int normalize, int T, int n_past, int n_head,
                             int n_head_kv, int head_dim, int vd, int64_t v_off, int64_t v_stride, collm_pool *pool,
                             float *scratch) {
    if (T <= 0 || n_head <= 0 || n_head_kv <= 0 || head_dim <= 0 || vd <= 0) return COLLM_OK;
    int L = n_past + T, qb = attention_block(T, L);
    float *own = NULL;
    if (!att && !(scratch = attention_scratch(scratch, L, pool, &own))) return COLLM_ERR_NOMEM;
    attention_ctx c = {.out = out, .att = att, .q = q, .k = k, .v = v, .k2 = k2, .v2 = v2, .n_first = n_first,
                       .normalize = normalize, .T = T, .n_past = n_past, .n_head = n_head, .n_head_kv = n_head_kv,
                       .hd = head_dim, .vd = vd, .v_off = v_off, .v_stride = v_stride, .qb = qb,
                       .scratch = scratch, .scratch_per = collm_ops_attention_scratch(L)};
    int64_t n_items = (int64_t)n_head * ((T + qb - 1) / qb);
    collm_pool_for(pool, n_items, attention_min_items(qb, L, head_dim), attention_forward_task, &c);
    free(own);
    return COLLM_OK;
}

int collm_ops_attention_forward(float *out, float *att, const float *q, const float *k, const float *v, int T, int n_past,
                                int n_head, int n_head_kv, int head_dim, collm_pool *pool, float *scratch) {
    return attention_forward(out, att, q, k, v, n_past + T, NULL, NULL, 0, T, n_past, n_head, n_head_kv, head_dim,
                             head_dim, head_dim, (int64_t)n_head_kv * head_dim, pool, scratch);
}

int collm_ops_attention_forward_split(float *out, float *att, const float *q, const float *k, const float *v,
                                      int n_first, const float *k2, const float *v2, int T, int n_past, int n_head,
                                      int n_head_kv, int head_dim, collm_pool *pool, float *scratch) {
    return attention_forward(out, att, q, k, v, n_first, k2, v2, 1, T, n_past, n_head, n_head_kv, head_dim, head_dim,
                             head_dim, (int64_t)n_head_kv * head_dim, pool, scratch);
}

int collm_ops_attention_forward_xv(float *out, float *att, const float *q, const float *k, const float *x,
                                   int n_first, const float *k2, const float *x2, int T, int n_past, int n_head,
                                   int n_head_kv, int head_dim, int C, collm_pool *pool, float *scratch) {
    return attention_forward(out, att, q, k, x, n_first, k2, x2, 1, T, n_past, n_head, n_head_kv, head_dim, C, 0, C,
                             pool, scratch);
}

// ---------------------------------------------------------------------------
// Attention of packed sequences that all continue one cached prefix
// (collm_llm_score_suffixes). Items are (head, block of query rows): the
// block's scores against the prefix and its P·V over the prefix are tile
// products (tile_axpy, 4 rows per pass), the prefix's keys transposed once
// per call so both run over contiguous rows; each row's own keys (its
// sequence) are added row by row, keys in SIMD lanes for Q·K^T and head_dim
// in lanes for P·V. Every sum runs in a fixed order, so results do not
// depend on the thread count or on how rows fall into blocks.

#define ATT_PACKED_ROWS 32 // rows per work item at most (attention_packed_rows)

#ifdef OPS_AVX2
// S[c] = scale · q · K_c for c < nkeys (K rows at stride ldk), hd = n.
// Eight keys per step, one accumulator each over head_dim; a last partial
// group repeats its final key and stores only the valid lanes.
static void dots_row(float *S, const float *q, const float *K, int64_t ldk, int nkeys, int n, float scale) {
    const int n8 = n & ~7;
    const __m256i tail_m = lane_mask(n - n8);
    const __m256 vscale = _mm256_set1_ps(scale);
    for (int c0 = 0; c0 < nkeys; c0 += 8) {
        const float *b[8];
        for (int j = 0; j < 8; j++) b[j] = K + (int64_t)(c0 + j < nkeys ? c0 + j : nkeys - 1) * ldk;
        __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0, s4 = s0, s5 = s0, s6 = s0, s7 = s0;
        for (int d = 0; d < n8; d += 8) {
            __m256 vq = _mm256_loadu_ps(q + d);
            s0 = _mm256_fmadd_ps(vq, _mm256_loadu_ps(b[0] + d), s0);
            s1 = _mm256_fmadd_ps(vq, _mm256_loadu_ps(b[1] + d), s1);
            s2 = _mm256_fmadd_ps(vq, _mm256_loadu_ps(b[2] + d), s2);
            s3 = _mm256_fmadd_ps(vq, _mm256_loadu_ps(b[3] + d), s3);
            s4 = _mm256_fmadd_ps(vq, _mm256_loadu_ps(b[4] + d), s4);
            s5 = _mm256_fmadd_ps(vq, _mm256_loadu_ps(b[5] + d), s5);
            s6 = _mm256_fmadd_ps(vq, _mm256_loadu_ps(b[6] + d), s6);
            s7 = _mm256_fmadd_ps(vq, _mm256_loadu_ps(b[7] + d), s7);
        }
        if (n8 < n) { // head_dim tail: masked loads read nothing past the row
            __m256 vq = _mm256_maskload_ps(q + n8, tail_m);
            s0 = _mm256_fmadd_ps(vq, _mm256_maskload_ps(b[0] + n8, tail_m), s0);
            s1 = _mm256_fmadd_ps(vq, _mm256_maskload_ps(b[1] + n8, tail_m), s1);
            s2 = _mm256_fmadd_ps(vq, _mm256_maskload_ps(b[2] + n8, tail_m), s2);
            s3 = _mm256_fmadd_ps(vq, _mm256_maskload_ps(b[3] + n8, tail_m), s3);
            s4 = _mm256_fmadd_ps(vq, _mm256_maskload_ps(b[4] + n8, tail_m), s4);
            s5 = _mm256_fmadd_ps(vq, _mm256_maskload_ps(b[5] + n8, tail_m), s5);
            s6 = _mm256_fmadd_ps(vq, _mm256_maskload_ps(b[6] + n8, tail_m), s6);
            s7 = _mm256_fmadd_ps(vq, _mm256_maskload_ps(b[7] + n8, tail_m), s7);
        }
        __m256 s = _mm256_mul_ps(hsum8x8(s0, s1, s2, s3, s4, s5, s6, s7), vscale);
        if (c0 + 8 <= nkeys) _mm256_storeu_ps(S + c0, s);
        else _mm256_maskstore_ps(S + c0, lane_mask(nkeys - c0), s);
    }
}

// o[d] += Σ_c P[c] · V_c[d] for d < n (V rows at stride ldv), c in
// increasing order within two interleaved chains (even and odd c), added at
// the end: up to 4 vectors of head_dim per pass.
static void axpy_row(float *o, const float *P, const float *V, int64_t ldv, int nkeys, int n) {
    for (int d0 = 0; d0 < n; d0 += 32) {
        int nv = (n - d0 + 7) / 8 < 4 ? (n - d0 + 7) / 8 : 4; // vectors in this pass, the last maybe partial
        __m256i m[4];
        for (int j = 0; j < 4; j++) m[j] = lane_mask(n - d0 - 8 * j < 8 ? n - d0 - 8 * j : 8);
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
        const float *v = V + d0;
        int c = 0;
        if (nv == 4 && d0 + 32 <= n) {
            for (; c + 2 <= nkeys; c += 2) {
                const float *v0 = v + (int64_t)c * ldv, *v1 = v0 + ldv;
                __m256 p0 = _mm256_broadcast_ss(P + c), p1 = _mm256_broadcast_ss(P + c + 1);
                a0 = _mm256_fmadd_ps(p0, _mm256_loadu_ps(v0), a0);
                a1 = _mm256_fmadd_ps(p0, _mm256_loadu_ps(v0 + 8), a1);
                a2 = _mm256_fmadd_ps(p0, _mm256_loadu_ps(v0 + 16), a2);
                a3 = _mm256_fmadd_ps(p0, _mm256_loadu_ps(v0 + 24), a3);
                b0 = _mm256_fmadd_ps(p1, _mm256_loadu_ps(v1), b0);
                b1 = _mm256_fmadd_ps(p1, _mm256_loadu_ps(v1 + 8), b1);
                b2 = _mm256_fmadd_ps(p1, _mm256_loadu_ps(v1 + 16), b2);
                b3 = _mm256_fmadd_ps(p1, _mm256_loadu_ps(v1 + 24), b3);
            }
        }
        for (; c < nkeys; c++) { // odd key, or a partial pass: masked loads
            const float *v0 = v + (int64_t)c * ldv;
            __m256 p0 = _mm256_broadcast_ss(P + c);
            a0 = _mm256_fmadd_ps(p0, _mm256_maskload_ps(v0, m[0]), a0);
            if (nv > 1) a1 = _mm256_fmadd_ps(p0, _mm256_maskload_ps(v0 + 8, m[1]), a1);
            if (nv > 2) a2 = _mm256_fmadd_ps(p0, _mm256_maskload_ps(v0 + 16, m[2]), a2);
            if (nv > 3) a3 = _mm256_fmadd_ps(p0, _mm256_maskload_ps(v0 + 24, m[3]), a3);
        }
        __m256 acc[4] = {_mm256_add_ps(a0, b0), _mm256_add_ps(a1, b1), _mm256_add_ps(a2, b2), _mm256_add_ps(a3, b3)};
        for (int j = 0; j < nv; j++) {
            float *oj = o + d0 + 8 * j;
            _mm256_maskstore_ps(oj, m[j], _mm256_add_ps(_mm256_maskload_ps(oj, m[j]), acc[j]));
        }
    }
}
#else
static void dots_row(float *S, const float *q, const float *K, int64_t ldk, int nkeys, int n, float scale) {
    for (int c = 0; c < nkeys; c++) S[c] = dot8(q, K + (int64_t)c * ldk, n) * scale;
}

static void axpy_row(float *o, const float *P, const float *V, int64_t ldv, int nkeys, int n) {
    for (int d = 0; d < n; d++) {
        float s = 0.0f;
        for (int c = 0; c < nkeys; c++) s += P[c] * V[(int64_t)c * ldv + d];
        o[d] += s;
    }
}
#endif

typedef struct {
    float *out;
    const float *q, *k_past, *v_past, *k_new, *v_new;
    const float *kt;     // (n_head_kv, hd, n_kt) scale · k_past transposed per kv head, zero-padded
    int n_kt;            // n_past rounded up to 8: the tile kernels' SIMD width, no scalar tail
    const int32_t *q_rows, *pos;
    int n_q, n_past, max_len, n_head, n_head_kv, hd;
    int rows;            // query rows per work item (attention_packed_rows)
    int64_t lds;         // score row stride: n_kt + max_len
    float *scratch;      // (threads, scratch_per)
    int64_t scratch_per; // floats per thread, >= rows · lds
} attention_packed_ctx;

// Query rows per packed work item: up to ATT_PACKED_ROWS, and a (rows, L)
// score block fits the scratch (collm_ops_attention_scratch(L)). Depends on
// the shapes only, never on the thread count.
static int attention_packed_rows(int L) {
    int rows = ATT_SCRATCH / L;
    if (rows > ATT_PACKED_ROWS) rows = ATT_PACKED_ROWS;
    if (rows >= 4) rows &= ~3;
    return rows < 1 ? 1 : rows;
}

// Items: index = h·n_blocks + b, b a block of c->rows queries. The block's
// scores against the prefix are one tile product, S (rows, n_past) = Q_block ·
// (scale K_past)^T with K^T rows contiguous over keys (c->kt), and its output
// starts as one more, O = P_prefix · V_past: every prefix key or value row
// loaded serves 4 queries at once. Each row's own keys (its sequence, i + 1
// rows) are few and row-specific: dots_row / axpy_row.
static void attention_packed_task(void *ctx_, int64_t begin, int64_t end, int thread_index) {
    const attention_packed_ctx *c = ctx_;
    const int n_q = c->n_q, hd = c->hd, n_past = c->n_past, rows = c->rows;
    const int n_blocks = (n_q + rows - 1) / rows, group = c->n_head / c->n_head_kv;
    const float scale = 1.0f / sqrtf((float)hd);
    const int64_t q_stride = (int64_t)c->n_head * hd, kv_stride = (int64_t)c->n_head_kv * hd, lds = c->lds;
    float *S = c->scratch + thread_index * c->scratch_per; // (rows, lds) scores, then exp
    for (int64_t item = begin; item < end; item++) {
        int h = (int)(item / n_blocks), j0 = (int)(item % n_blocks) * rows;
        int nb = j0 + rows < n_q ? rows : n_q - j0;
        int64_t kvo = (int64_t)(h / group) * hd;
        const float *qb = c->q + (int64_t)j0 * q_stride + (int64_t)h * hd; // (nb, hd), stride q_stride
        float *ob = c->out + (int64_t)j0 * q_stride + (int64_t)h * hd;
        float inv[ATT_PACKED_ROWS];
        if (n_past > 0) { // S[:, 0:n_kt) = Q_block · (scale K)^T; columns n_past.. are padding, overwritten below
            for (int j = 0; j < nb; j++) memset(S + j * lds, 0, (size_t)c->n_kt * sizeof(float));
            tile_axpy(S, lds, nb, qb, q_stride, 1, hd, c->kt + (int64_t)(h / group) * hd * c->n_kt, c->n_kt, c->n_kt,
                      ATT_NO_LIMIT, ATT_NO_LIMIT);
        }
        for (int j = 0; j < nb; j++) {
            int r = c->q_rows ? c->q_rows[j0 + j] : j0 + j;
            int i = c->pos[r] - n_past; // row i of its sequence: packed rows r-i..r are its own
            float *Sj = S + j * lds;
            dots_row(Sj + n_past, qb + (int64_t)j * q_stride, c->k_new + (int64_t)(r - i) * kv_stride + kvo, kv_stride,
                     i + 1, hd, scale);
            inv[j] = 1.0f / softmax_row(Sj, n_past + i + 1, n_past + i + 1, 0, 1.0f);
            for (int d = 0; d < hd; d++) ob[(int64_t)j * q_stride + d] = 0.0f;
        }
        if (n_past > 0) tile_axpy(ob, q_stride, nb, S, lds, 1, n_past, c->v_past + kvo, kv_stride, hd, ATT_NO_LIMIT,
                                  ATT_NO_LIMIT); // O = P_prefix · V_past
        for (int j = 0; j < nb; j++) {
            int r = c->q_rows ? c->q_rows[j0 + j] : j0 + j;
            int i = c->pos[r] - n_past;
            float *orow = ob + (int64_t)j * q_stride;
            axpy_row(orow, S + j * lds + n_past, c->v_new + (int64_t)(r - i) * kv_stride + kvo, kv_stride, i + 1, hd);
            for (int d = 0; d < hd; d++) orow[d] *= inv[j];
        }
    }
}

// kt[(g·hd + d)·n_kt + c] = scale · k_past[c·kv_stride + g·hd + d] for c < n_past,
// 0 for n_past <= c < n_kt: items are kv heads.
typedef struct {
    float *kt;
    const float *k_past;
    int n_past, n_kt, n_head_kv, hd;
} kt_ctx;

static void attention_kt_task(void *ctx_, int64_t begin, int64_t end, int thread_index) {
    (void)thread_index;
    const kt_ctx *c = ctx_;
    const float scale = 1.0f / sqrtf((float)c->hd);
    const int64_t kv_stride = (int64_t)c->n_head_kv * c->hd;
    for (int64_t g = begin; g < end; g++)
        for (int c0 = 0; c0 < c->n_past; c0 += 16) // 16 keys at a time: both sides stay in cache lines
            for (int d = 0; d < c->hd; d++) {
                float *dst = c->kt + (g * c->hd + d) * c->n_kt;
                const float *src = c->k_past + g * c->hd + d;
                for (int k = c0; k < c0 + 16 && k < c->n_past; k++) dst[k] = scale * src[(int64_t)k * kv_stride];
                if (c0 + 16 >= c->n_past)
                    for (int k = c->n_past; k < c->n_kt; k++) dst[k] = 0.0f;
            }
}

int64_t collm_ops_attention_packed_kt(int n_past, int n_head_kv, int head_dim) {
    return (int64_t)((n_past + 7) & ~7) * n_head_kv * head_dim;
}

int collm_ops_attention_packed_forward(float *out, const float *q, const int32_t *q_rows, int n_q, const float *k_past,
                                       const float *v_past, int n_past, const float *k_new, const float *v_new,
                                       const int32_t *pos, int n_head, int n_head_kv, int head_dim, collm_pool *pool,
                                       float *scratch, float *kt) {
    if (n_q <= 0 || n_head <= 0 || n_head_kv <= 0 || head_dim <= 0) return COLLM_OK;
    int max_len = 0;
    for (int j = 0; j < n_q; j++) {
        int r = q_rows ? q_rows[j] : j;
        if (pos[r] - n_past + 1 > max_len) max_len = pos[r] - n_past + 1;
    }
    float *own = NULL, *own_kt = NULL;
    if (!(scratch = attention_scratch(scratch, n_past + max_len, pool, &own))) return COLLM_ERR_NOMEM;
    if (!kt && n_past > 0 &&
        !(kt = own_kt = collm_malloc((size_t)collm_ops_attention_packed_kt(n_past, n_head_kv, head_dim) * sizeof(float)))) {
        free(own);
        return COLLM_ERR_NOMEM;
    }
    const int n_kt = (n_past + 7) & ~7;
    if (n_past > 0) {
        kt_ctx t = {kt, k_past, n_past, n_kt, n_head_kv, head_dim};
        collm_pool_for(pool, n_head_kv, (int64_t)n_past * head_dim >= 32768 ? 1 : n_head_kv, attention_kt_task, &t);
    }
    // rows x L fits a thread's scratch, sized for n_past + max_len keys: L is
    // at most 7 more, within its 8-float tail when rows = 1
    int L = n_kt + max_len, rows = attention_packed_rows(L);
    attention_packed_ctx c = {.out = out, .q = q, .k_past = k_past, .v_past = v_past, .k_new = k_new, .v_new = v_new,
                              .kt = kt, .n_kt = n_kt, .q_rows = q_rows, .pos = pos, .n_q = n_q, .n_past = n_past,
                              .max_len = max_len, .n_head = n_head, .n_head_kv = n_head_kv, .hd = head_dim,
                              .rows = rows, .lds = L, .scratch = scratch,
                              .scratch_per = collm_ops_attention_scratch(n_past + max_len)};
    int64_t n_items = (int64_t)n_head * ((n_q + rows - 1) / rows);
    int64_t work = (int64_t)rows * L * head_dim;
    collm_pool_for(pool, n_items, work >= 32768 ? 1 : 32768 / work + 1, attention_packed_task, &c);
    free(own);
    free(own_kt);
    return COLLM_OK;
}

// Backward per query block of head h, with P the block's att rows (nq, nk):
//   dP = dO · V^T                       (nq, nk)
//   dS = P ⊙ (dP - rowsum(P ⊙ dP)) · scale   (rowsum(P ⊙ dP) = dO · o)
//   dq += dS · K ;  dk += dS^T · Q ;  dv += P^T · dO
// (scale folded into dS). Items are kv heads: a kv head's dk/dv rows receive
// from every query head of its group, so one task owns one kv head (and the
// dq of its query heads); blocks and heads run in a fixed order. No two
// threads write the same memory and every sum has a fixed order. Keys in two
// parts (k2): K and V read from both as in the forward; dk/dv's rows below
// n_first go to dk/dv, the rest to dk2/dv2 (two products over the key rows,
// each key summed over the same queries in the same order: the same bits).
static void attention_backward_task(void *ctx_, int64_t begin, int64_t end, int thread_index) {
    const attention_ctx *c = ctx_;
    const int T = c->T, hd = c->hd, L = c->n_past + c->T, qb = c->qb;
    const int group = c->n_head / c->n_head_kv;
    const float scale = 1.0f / sqrtf((float)hd);
    const int64_t q_stride = (int64_t)c->n_head * hd, kv_stride = (int64_t)c->n_head_kv * hd;
    const int n_first = c->k2 ? c->n_first : L; // key rows whose gradients go to dk/dv
    const int vd = c->vd;
    const int64_t o_stride = (int64_t)c->n_head * vd, v_stride = c->v_stride;
    float *dS = c->scratch + thread_index * c->scratch_per; // (nq <= qb, nk <= L) dP, then dS
    for (int64_t kvh = begin; kvh < end; kvh++) {
        const float *kh = c->k + kvh * hd, *vh = c->v + kvh * c->v_off;
        const float *kh2 = c->k2 ? c->k2 + kvh * hd : NULL, *vh2 = c->v2 ? c->v2 + kvh * c->v_off : NULL;
        float *dkh = c->dk ? c->dk + kvh * hd : NULL, *dvh = c->dv ? c->dv + kvh * c->v_off : NULL;
        float *dkh2 = c->dk2 ? c->dk2 + kvh * hd : NULL, *dvh2 = c->dv2 ? c->dv2 + kvh * c->v_off : NULL;
        for (int h = (int)kvh * group; h < ((int)kvh + 1) * group; h++) {
            for (int t0 = 0; t0 < T; t0 += qb) {
                int nq = T - t0 < qb ? T - t0 : qb;
                int diag = c->n_past + t0, nk = diag + nq;
                int n1 = nk < n_first ? nk : n_first; // this block's key rows in the first part
                const float *P = c->att_in + ((int64_t)h * T + t0) * L; // (nq, nk), stride L
                const float *qrows = c->q + (int64_t)t0 * q_stride + (int64_t)h * hd;
                const float *dorows = c->dout + (int64_t)t0 * o_stride + (int64_t)h * vd;
                att_gemm2(0, 1, nq, nk, vd, dorows, o_stride, vh, vh2, n_first, v_stride, 0, dS, nk, diag,
                          GEMM_NO_LIMIT, GEMM_NO_LIMIT); // dP = dO·V^T
                for (int i = 0; i < nq; i++) {
                    const float *p = P + (int64_t)i * L;
                    float *ds = dS + (int64_t)i * nk;
                    int n_keys = diag + i + 1;
                    softmax_backward_row(ds, p, n_keys, nk, scale);
                }
                if (c->dq) // dQ += dS·K
                    att_gemm2(0, 0, nq, hd, nk, dS, nk, kh, kh2, n_first, kv_stride, 1,
                              c->dq + (int64_t)t0 * q_stride + (int64_t)h * hd, q_stride, GEMM_NO_LIMIT,
                              GEMM_NO_LIMIT, diag);
                // dK += dS^T·Q and dV += P^T·dO, key rows [0, n1) then [n1, nk) (n1 = n_first
                // there: row r of the second product is key n1 + r, its first query diag - n1 on)
                if (dkh) att_gemm(1, 0, n1, hd, nq, dS, nk, qrows, q_stride, 1, dkh, kv_stride, GEMM_NO_LIMIT, diag,
                                  GEMM_NO_LIMIT);
                if (dvh) att_gemm(1, 0, n1, vd, nq, P, L, dorows, o_stride, 1, dvh, v_stride, GEMM_NO_LIMIT, diag,
                                  GEMM_NO_LIMIT);
                if (dkh2 && nk > n1)
                    att_gemm(1, 0, nk - n1, hd, nq, dS + n1, nk, qrows, q_stride, 1, dkh2, kv_stride, GEMM_NO_LIMIT, diag - n1, GEMM_NO_LIMIT);
                if (dvh2 && nk > n1)
                    att_gemm(1, 0, nk - n1, vd, nq, P + n1, L, dorows, o_stride, 1, dvh2, v_stride, GEMM_NO_LIMIT, diag - n1, GEMM_NO_LIMIT);
            }
        }
    }
}

static int attention_backward(float *dq, float *dk, float *dv, float *dk2, float *dv2, const float *dout,
                              const float *att, const float *q, const float *k, const float *v, int n_first,
                              const float *k2, const float *v2, int T, int n_past, int n_head, int n_head_kv,
                              int head_dim, int vd, int64_t v_off, int64_t v_stride, collm_pool *pool,
                              float *scratch) {
    if (T <= 0 || n_head <= 0 || n_head_kv <= 0 || head_dim <= 0 || vd <= 0) return COLLM_OK;
    int L = n_past + T;
    float *own = NULL;
    if (!(scratch = attention_scratch(scratch, L, pool, &own))) return COLLM_ERR_NOMEM;
    attention_ctx c = {.dq = dq, .dk = dk, .dv = dv, .dk2 = dk2, .dv2 = dv2, .dout = dout, .att_in = att, .q = q,
                       .k = k, .v = v, .k2 = k2, .v2 = v2, .n_first = n_first, .T = T, .n_past = n_past,
                       .n_head = n_head, .n_head_kv = n_head_kv, .hd = head_dim, .vd = vd, .v_off = v_off,
                       .v_stride = v_stride, .qb = attention_block(T, L), .scratch = scratch,
                       .scratch_per = collm_ops_attention_scratch(L)};
    // items are kv heads; heads that share their values (v_off 0) add into the same dv rows: one thread
    collm_pool_for(v_off ? pool : NULL, n_head_kv, 1, attention_backward_task, &c);
    free(own);
    return COLLM_OK;
}

int collm_ops_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *att, const float *q,
                                 const float *k, const float *v, int T, int n_past, int n_head, int n_head_kv,
                                 int head_dim, collm_pool *pool, float *scratch) {
    return attention_backward(dq, dk, dv, NULL, NULL, dout, att, q, k, v, n_past + T, NULL, NULL, T, n_past, n_head,
                              n_head_kv, head_dim, head_dim, head_dim, (int64_t)n_head_kv * head_dim, pool, scratch);
}

int collm_ops_attention_backward_split(float *dq, float *dk, float *dv, float *dk2, float *dv2, const float *dout,
                                       const float *att, const float *q, const float *k, const float *v, int n_first,
                                       const float *k2, const float *v2, int T, int n_past, int n_head, int n_head_kv,
                                       int head_dim, collm_pool *pool, float *scratch) {
    return attention_backward(dq, dk, dv, dk2, dv2, dout, att, q, k, v, n_first, k2, v2, T, n_past, n_head,
                              n_head_kv, head_dim, head_dim, head_dim, (int64_t)n_head_kv * head_dim, pool, scratch);
}

int collm_ops_attention_backward_xv(float *dq, float *dk, float *dx, float *dk2, float *dx2, const float *dout,
                                    const float *att, const float *q, const float *k, const float *x, int n_first,
                                    const float *k2, const float *x2, int T, int n_past, int n_head, int n_head_kv,
                                    int head_dim, int C, collm_pool *pool, float *scratch) {
    return attention_backward(dq, dk, dx, dk2, dx2, dout, att, q, k, x, n_first, k2, x2, T, n_past, n_head,
                              n_head_kv, head_dim, C, 0, C, pool, scratch);
}

// ---------------------------------------------------------------------------
// Mean BCE with logits over n: ℓ = max(s,0) - s·y + log1p(exp(-|s|)), which
// never overflows; dlogit = (σ(s) - y)/n.

double collm_ops_bce_with_logits(float *dlogit, const float *logit, const float *label, int n) {
    if (n <= 0) return 0.0;
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        double s = logit[i], y = label[i];
        sum += (s > 0.0 ? s : 0.0) - s * y + log1p(exp(-fabs(s)));
        if (dlogit) {
            // σ(s) from exp(-|s|) so neither branch overflows
            double e = exp(-fabs(s));
            double sig = s >= 0.0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
            dlogit[i] = (float)((sig - y) / n);
        }
    }
    return sum / n;
}

// ---------------------------------------------------------------------------
// Vector helpers (n)

// Eight double lanes (one AVX-512 register; the serial chain ran at one add
// latency per element), the same order in every build.
double collm_ops_sumsq(const float *x, int64_t n) {
    double acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++) acc[l] += (double)x[i + l] * x[i + l];
    double s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; i < n; i++) s += (double)x[i] * x[i];
    return s;
}

float collm_ops_dot(const float *a, const float *b, int64_t n) {
    return dot8(a, b, n);
}

void collm_ops_axpy(float *y, float a, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += a * x[i];
}

// ---------------------------------------------------------------------------
// Adam / AdamW, PyTorch semantics, step t >= 1 (all arrays (n)):
//   AdamW: p -= lr·wd·p, then the Adam step on g
//   Adam (coupled_l2): g += wd·p, then the Adam step
//   m = β1 m + (1-β1) g ;  v = β2 v + (1-β2) g²
//   p -= (lr / (1-β1^t)) · m / (sqrt(v) / sqrt(1-β2^t) + eps)

void collm_ops_adam_update(float *param, const float *grad, float *m, float *v, int64_t n, float lr, float beta1,
                     float beta2, float eps, float weight_decay, int coupled_l2, int64_t t) {
    if (t < 1) t = 1;
    double bc1 = 1.0 - pow((double)beta1, (double)t);
    double bc2 = 1.0 - pow((double)beta2, (double)t);
    float step_size = (float)(lr / bc1);
    float inv_sqrt_bc2 = (float)(1.0 / sqrt(bc2));
    float decay = coupled_l2 ? 1.0f : 1.0f - lr * weight_decay;
    float l2 = coupled_l2 ? weight_decay : 0.0f;
    int64_t i = 0;
#ifdef VL
    // the loop below VL elements at a time, operation for operation (a scalar
    // sqrtf and division per element were most of an optimizer step)
    const vf vl2 = vf_set1(l2), vdecay = vf_set1(decay), vb1 = vf_set1(beta1), vb1c = vf_set1(1.0f - beta1);
    const vf vb2 = vf_set1(beta2), vb2c = vf_set1(1.0f - beta2), vinv = vf_set1(inv_sqrt_bc2), veps = vf_set1(eps);
    const vf vstep = vf_set1(step_size);
    for (; i + VL <= n; i += VL) {
        vf pi = vf_load(param + i);
        vf g = vf_add(vf_load(grad + i), vf_mul(vl2, pi));
        vf p = vf_mul(pi, vdecay);
        vf mi = vf_add(vf_mul(vb1, vf_load(m + i)), vf_mul(vb1c, g));
        vf vi = vf_add(vf_mul(vb2, vf_load(v + i)), vf_mul(vf_mul(vb2c, g), g));
        vf_store(m + i, mi);
        vf_store(v + i, vi);
        vf denom = vf_add(vf_mul(vf_sqrt(vi), vinv), veps);
        vf_store(param + i, vf_sub(p, vf_div(vf_mul(vstep, mi), denom)));
    }
#endif
    for (; i < n; i++) {
        float g = grad[i] + l2 * param[i];
        float p = param[i] * decay;
        m[i] = beta1 * m[i] + (1.0f - beta1) * g;
        v[i] = beta2 * v[i] + (1.0f - beta2) * g * g;
        float denom = sqrtf(v[i]) * inv_sqrt_bc2 + eps;
        param[i] = p - step_size * m[i] / denom;
    }
}
