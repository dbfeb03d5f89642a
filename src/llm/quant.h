// Quantised weights (private to the llm layer): ggml's block formats, a
// scalar reference dequantiser for every type, activation quantisation as
// llama.cpp's CPU backend does it, and matrix products on weights that stay
// in their file type.
//
// Block formats (elements per block, bytes per block):
//   F32 1/4, F16 1/2, BF16 1/2,
//   Q4_0 32/18  (f16 d, 16 B nibbles: x = (q - 8) d; low nibbles are elements 0..15)
//   Q4_1 32/20  (f16 d, f16 m, nibbles: x = q d + m)
//   Q5_0 32/22  (f16 d, u32 high bits, nibbles: x = (q - 16) d)
//   Q5_1 32/24  (f16 d, f16 m, u32 high bits, nibbles: x = q d + m)
//   Q8_0 32/34  (f16 d, i8 q[32]: x = q d)
//   Q8_1 32/36  (f16 d, f16 s = d Σq, i8 q[32])           activations only
//   Q2_K 256/84, Q3_K 256/110, Q4_K 256/144, Q5_K 256/176, Q6_K 256/210
//   Q8_K 256/292 (f32 d, i8 q[256], i16 bsums[16])       activations only
// Every weight block decodes to integers q (one per element), an integer
// scale sc and min mn per group, and two floats d, dmin:
//   x = (d · sc) · q − dmin · mn
// (the legacy types use sc = mn = 1 and dmin = −m), which is both the exact
// dequantisation (bit for bit llama.cpp's: same operations in the same order)
// and the form the integer dot products use.
#ifndef COLLM_LLM_QUANT_H
#define COLLM_LLM_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "collm/gguf.h"
#include "collm/threadpool.h"

#define COLLM_QK_K 256

// Activation-only types (ggml numbering).
#define COLLM_GGML_TYPE_Q8_1 ((collm_ggml_type)9)
#define COLLM_GGML_TYPE_Q8_K ((collm_ggml_type)15)

// Elements and bytes per block of t; 0 when collm has no geometry for t.
int collm_quant_block(collm_ggml_type t, int64_t *blck, size_t *bytes);
// 1 for the types a model's weights may have (F32 ... Q6_K).
int collm_quant_weight_type_ok(collm_ggml_type t);
// Bytes of a row of n elements (n a multiple of the block size).
size_t collm_quant_row_bytes(collm_ggml_type t, int64_t n);

// Scalar reference: n elements (a multiple of the block size) of type t at
// src to floats.
void collm_quant_dequant_row(collm_ggml_type t, const void *src, float *dst, int64_t n);

// The type activations are quantised to before a dot product with a weight
// of type t (llama.cpp's vec_dot_type): Q8_0, Q8_1, Q8_K, F16, BF16 or F32.
collm_ggml_type collm_quant_vec_type(collm_ggml_type t);
// x (n floats) -> dst in vec type vt, the way llama.cpp's x86 CPU backend
// rounds (Q8_0/Q8_1: d = amax/127, q = round-half-even(x · 127/amax);
// Q8_K: d = max/−127 by the signed extreme, q = nearest(x/d) capped at 127).
void collm_quant_act_row(collm_ggml_type vt, const float *x, void *dst, int64_t n);
// The scalar reference of collm_quant_act_row (which is SIMD for F16, Q8_0
// and Q8_K when the CPU has AVX2: the same bytes).
void collm_quant_act_row_ref(collm_ggml_type vt, const float *x, void *dst, int64_t n);

// Σ w·x over n elements: w a weight row of type wt, x a row already in
// collm_quant_vec_type(wt). Scalar reference (integer sums per block).
float collm_quant_dot_ref(collm_ggml_type wt, const void *w, const void *x, int64_t n);
// The same through the AVX2 kernels when the CPU has them (and COLLM_ISA is
// not "baseline"); falls back to the reference. COLLM_ISA=x86-64-v3 (or
// avx2) keeps every quantised kernel at AVX2: no tiled kernel.
float collm_quant_dot(collm_ggml_type wt, const void *w, const void *x, int64_t n);
// Which kernels collm_quant_dot and the tiled products use: "scalar", "avx2"
// or "avx512vnni".
const char *collm_quant_isa(void);
// Tests and benchmarks: use the kernels of level l (0 scalar, 1 AVX2, 2
// AVX-512 VNNI; capped at what the CPU has, a negative l: the best).
// Returns the name of the level now in use.
const char *collm_quant_set_isa(int l);
// n elements of type t at src to floats: the reference's values bit for bit
// (SIMD for F16, Q8_0, Q4_0, Q4_K, Q6_K when the CPU has AVX2).
void collm_quant_dequant(collm_ggml_type t, const void *src, float *dst, int64_t n);

// A weight matrix (rows, cols) in its file type: row r at data + r·row_bytes
// (inside the file mapping). cols is the input size.
typedef struct {
    collm_ggml_type type;
    const void *data;
    int64_t rows, cols;
    size_t row_bytes;
} collm_qmat;

// The tiled product (AVX-512 VNNI, else AVX2; Q8_0, Q4_0, Q5_0, Q4_1, Q5_1,
// Q4_K, Q5_K, Q6_K weights): 16
// weight rows against up to 8 activation rows per step, the same integer
// block sums as collm_quant_dot (llm/quant_x86.c). The activations, already
// in the weight's vec type, are unpacked once per product for every row group.
typedef struct {
    int64_t T, K, G, ng; // activation rows, columns, elements per scale group, groups per row
    int8_t *codes;       // (T, K) the activation codes
    int32_t *init;       // (T, ng) −offset · Σ codes of the group (weights are stored as q + offset)
    float *yd, *yb;      // (T, ng) the group's activation scale, and scale · Σ codes
} collm_qtile_act;
// 1 when the CPU runs the tiled kernel for weights of type t (AVX2 at least).
int collm_qtile_ok(collm_ggml_type t);
int collm_qtile_act_alloc(collm_qtile_act *a, collm_ggml_type t, int64_t T, int64_t K);
// Rows [t0, t1) from xq (rows of xrow bytes in collm_quant_vec_type(t)).
void collm_qtile_act_fill(collm_qtile_act *a, collm_ggml_type t, const uint8_t *xq, size_t xrow, int64_t t0, int64_t t1);
void collm_qtile_act_free(collm_qtile_act *a);
// y[t·ldy + r] = Σ W_r · x_t for the rows r of row groups [g0, g1) of W (16
// rows each; the last may be partial) and every activation row t.
// Returns COLLM_OK or COLLM_ERR_NOMEM.
int collm_qtile_gemm(const collm_qmat *W, int64_t g0, int64_t g1, const collm_qtile_act *a, float *y, int64_t ldy);
// F16 weights (AVX-512 at the tiled kernel's level; 16 rows interleaved by
// element pairs against 8 activation rows): 1 when the CPU has the kernel. y[t·ldy + r] = Σ W_r · xh_t
// for rows [r0, r1) of W and every t; xh (T, cols) are the activations
// rounded through F16 (llama.cpp's F16 products), held as floats. Call only
// when collm_qtile_f16_ok().
int collm_qtile_f16_ok(void);
void collm_qtile_f16(const collm_qmat *W, int64_t r0, int64_t r1, const float *xh, int64_t T, float *y, int64_t ldy);

// Matrix-product paths.
typedef enum {
    COLLM_QMM_AUTO = 0,   // by shape: integer dots for short inputs, dequantised tiles + sgemm for long ones
    COLLM_QMM_DOT,        // activations quantised per block (llama.cpp's numbers), integer dot products
    COLLM_QMM_DEQ_SGEMM,  // weights dequantised by tiles, F32 activations, cblas_sgemm (the exact product)
    COLLM_QMM_ROWS,       // as DOT, one weight row at a time, no tiled kernel: llama.cpp's block order
} collm_qmm_path;

// Forces a path for every product (tests, benchmarks); returns the previous one.
// Also set from the environment: COLLM_QMM=dot|rows|sgemm.
collm_qmm_path collm_qmm_set_path(collm_qmm_path p);

// y (T, ldy): columns [off_k, off_k + W_k.rows) = x (T, K) · W_kᵀ for each of
// the n parts (sharing one input, quantised once per vec type); ldy >= the
// widest column used. Row-parallel over the pool (NULL: one thread).
// Returns COLLM_OK or COLLM_ERR_NOMEM.
// path: AUTO (the forced path, else by shape) or one path for this call.
int collm_qmm_forward(float *y, int64_t ldy, const float *x, int64_t T, const collm_qmat *parts, int n_parts,
                      collm_qmm_path path, collm_pool *pool);
// dx (T, K) += dy (T, lddy)[:, off .. off + W.rows) · W, the input gradient
// through a frozen weight (dequantised tiles + sgemm).
int collm_qmm_backward_x(float *dx, const float *dy, int64_t lddy, int64_t T, const collm_qmat *W, collm_pool *pool);
// Row r of W as floats (embedding lookup, the answer row).
void collm_qmat_row(const collm_qmat *W, int64_t r, float *out);

#endif
