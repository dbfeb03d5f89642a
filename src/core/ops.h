// Numeric kernels of the transformer, each as a forward/backward pair.
// Row-major float32 throughout. Backward functions ACCUMULATE (+=) into the
// gradient buffers they are given; a NULL gradient pointer is skipped.
// Shapes use T = rows (tokens), C = channels.
#ifndef COLLM_OPS_H
#define COLLM_OPS_H

#include <stdint.h>

#include "collm/threadpool.h"

// GEMM: C (M, N) = op(A) (M, K) · op(B) (K, N), or C += that when
// accumulate != 0; row-major with row strides lda, ldb, ldc; op(X) = X^T
// when trans_x != 0 (then A is stored (K, M), B (N, K)). kernel: one of
// collm_gemm_kernel. With a pool of several threads C is cut into one slab
// per thread (when BLAS runs one thread, or the kernel is COLLM_GEMM_OWN).
// Results do not depend on the thread count.
typedef enum {
    COLLM_GEMM_AUTO = 0, // BLAS, or what COLLM_GEMM=blas|own in the environment asks for
    COLLM_GEMM_BLAS = 1, // cblas_sgemm (OpenBLAS)
    COLLM_GEMM_OWN = 2,  // collm's packed GEMM (AVX-512 12x32, AVX2 6x16 or portable micro-kernels)
    COLLM_GEMM_DOT = 3,  // x·W^T (trans_b, not trans_a) as row dot products, W read once in place; other
                         // forms go to the AUTO choice. AUTO picks it for at most 4 rows
} collm_gemm_kernel;
void collm_ops_gemm(int trans_a, int trans_b, int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                    int accumulate, float *C, int ldc, int kernel, collm_pool *pool);

// y (T, out) = x (T, in) · W^T + bias.  W is (out, in) as GGUF stores it
// (ne = {in, out}); bias (out) may be NULL. collm_ops_gemm on the pool (NULL:
// the calling thread, BLAS with its own threads).
void collm_ops_matmul_forward(float *y, const float *x, const float *w, const float *bias, int T, int in, int out,
                              collm_pool *pool);
// The same on collm's kernel whatever the shapes: a row's result depends on
// that row alone, not on T or on the rows beside it, so a row gives the same
// bits in any batch (BLAS's do not: its row blocks and remainders sum in
// different orders, and AUTO takes row dots for a few rows).
void collm_ops_matmul_forward_rowwise(float *y, const float *x, const float *w, const float *bias, int T, int in,
                                      int out, collm_pool *pool);
// dx (T, in) += dy · W ; dw (out, in) += dy^T · x ; dbias (out) += Σ_t dy.
void collm_ops_matmul_backward(float *dx, float *dw, float *dbias, const float *dy, const float *x, const float *w, int T,
                               int in, int out, collm_pool *pool);
// The same with dx (T, in) = dy · W set, not added to (no zeroing pass
// before it; with out = 0, dx zeroed): the same bits as zeroing dx, then
// collm_ops_matmul_backward, but for the sign of an exact zero.
void collm_ops_matmul_backward_set(float *dx, float *dw, float *dbias, const float *dy, const float *x, const float *w,
                                   int T, int in, int out, collm_pool *pool);

// A weight gradient dW (out, in) += dy^T (out, T) · x (T, in) cut as
// collm_ops_matmul_backward cuts it (parts: one call, or one range of row
// slabs per thread of the pool), to run as items of a larger pool job: each
// part is the same call, so the same bits, whichever thread runs it.
typedef struct {
    float *dw;
    const float *dy, *x;
    int T, in, out, threads, kernel;
    int parts; // 0: nothing to do
} collm_ops_dw;
enum { COLLM_OPS_MAX_DW = 4 }; // extra weight gradients one backward product takes
// Plans d (dw NULL or empty shapes: no parts); returns d->parts.
int collm_ops_dw_plan(collm_ops_dw *d, float *dw, const float *dy, const float *x, int T, int in, int out,
                      collm_pool *pool);
// Part `part` of d on the calling thread.
void collm_ops_dw_run(const collm_ops_dw *d, int part);
// Every part of n_dw of them over the pool.
void collm_ops_dw_run_all(const collm_ops_dw *dws, int n_dw, collm_pool *pool);
// collm_ops_matmul_backward_set, and up to COLLM_OPS_MAX_DW more weight
// gradients (planned, their inputs ready) in the same pool job as its dx
// chunks: a thread done with its part of one weight gradient takes dx
// chunks instead of waiting for the other thread. The same bits as running
// them one after another.
void collm_ops_matmul_backward_set_with(float *dx, float *dw, float *dbias, const float *dy, const float *x,
                                        const float *w, int T, int in, int out, const collm_ops_dw *extra, int n_extra,
                                        collm_pool *pool);

// Forward products x·W^T over row chunks, for callers that run their own row
// loop over a pool (a fused transformer block): W^T packed once for collm's
// kernel, then any rows on any thread, bit for bit what
// collm_ops_matmul_forward (no bias) gives on that pool.
typedef struct {
    float *packed;
    const float *w;
    int in, out;
    int as_is; // 1: y = x · W with W (in, out) (collm_ops_wpack_init_as_is)
} collm_ops_wpack;
// Returns 1 with W (out, in) packed in p (collm_ops_wpack_free), 0 when
// collm_ops_matmul_forward would not use collm's kernel for `rows` rows on
// this pool (call it instead; p holds nothing), or COLLM_ERR_NOMEM.
int collm_ops_wpack_init(collm_ops_wpack *p, const float *w, int out, int in, int rows, collm_pool *pool);
// The same for y (T, out) = x (T, in) · W with W (in, out) row-major as it
// is (a backward's dx = dy · W: in = W's rows): bit for bit collm's kernel
// on that product (collm_ops_gemm with COLLM_GEMM_OWN, trans_b 0).
int collm_ops_wpack_init_as_is(collm_ops_wpack *p, const float *w, int in, int out, int rows, collm_pool *pool);
// 1 when collm_ops_wpack_init (as_is: collm_ops_wpack_init_as_is) packs for
// these shapes (a caller that keeps a packed W from call to call asks before
// reusing it).
int collm_ops_wpack_used(int out, int as_is, int rows, collm_pool *pool);
// y (T, out) = x (T, in) · W^T (as_is: x · W), on the calling thread.
void collm_ops_wpack_forward(const collm_ops_wpack *p, float *y, const float *x, int T);
void collm_ops_wpack_free(collm_ops_wpack *p);

// RMSNorm: y = x · rsqrt(mean(x²) + eps) ⊙ w.  x, y (T, C); w (C); rstd (T) saved.
void collm_ops_rmsnorm_forward(float *y, float *rstd, const float *x, const float *w, int T, int C, float eps);
void collm_ops_rmsnorm_backward(float *dx, float *dw, const float *dy, const float *x, const float *w, const float *rstd,
                          int T, int C);

// RoPE, in place on x (T, n_head, head_dim) with positions pos (T).
// The first n_rot dims of each head rotate by angle pos · base^(-2i/n_rot).
// neox = 0: llama.cpp NORM mode, pairs (2i, 2i+1); neox = 1: pairs (i, i + n_rot/2).
void collm_ops_rope_forward(float *x, const int32_t *pos, int T, int n_head, int head_dim, int n_rot, float base, int neox);
// In place on the gradient (rotation by the opposite angle).
void collm_ops_rope_backward(float *dx, const int32_t *pos, int T, int n_head, int head_dim, int n_rot, float base,
                       int neox);
// The same rotation with cos/sin computed once for many calls (the layers of a
// forward share positions): cs (n, n_rot/2, 2) = cos, sin of the angles of n
// positions (collm_ops_rope_table). collm_ops_rope_rows rotates row t of x by
// table row rows[t] (rows NULL: row t), forward or backward, bit for bit as
// collm_ops_rope_forward / _backward at those positions.
void collm_ops_rope_table(float *cs, const int32_t *pos, int T, int n_rot, float base);
void collm_ops_rope_rows(float *x, const float *cs, const int32_t *rows, int T, int n_head, int head_dim, int n_rot,
                         int neox, int backward);

// SwiGLU: h = silu(g) ⊙ u, elementwise over n.
void collm_ops_swiglu_forward(float *h, const float *g, const float *u, int64_t n);
void collm_ops_swiglu_backward(float *dg, float *du, const float *dh, const float *g, const float *u, int64_t n);
// dg, du (n) = the same gradients, set rather than added to (neither read; both non-NULL).
void collm_ops_swiglu_backward_set(float *dg, float *du, const float *dh, const float *g, const float *u, int64_t n);

// ReLU: y = max(x, 0).
void collm_ops_relu_forward(float *y, const float *x, int64_t n);
void collm_ops_relu_backward(float *dx, const float *dy, const float *x, int64_t n);

// Causal multi-head attention (GQA) for one sequence.
// q (T, n_head, hd): the T new queries at absolute positions n_past..n_past+T-1.
// k, v (n_past + T, n_head_kv, hd): all keys/values (cached prefix, then new).
// Query head h uses kv head h / (n_head / n_head_kv). Scale 1/sqrt(hd).
// out (T, n_head, hd); att (n_head, T, n_past + T) receives the softmax
// probabilities (needed by backward; may be NULL for inference).
// scratch: collm_pool_size(pool) x collm_ops_attention_scratch(n_past + T)
// floats of heap the caller keeps (one per context, sized for its longest
// sequence), or NULL to allocate it per call. Never on the stack: the score
// rows grow with the context length. Returns COLLM_OK, or COLLM_ERR_NOMEM
// only when scratch is NULL and the allocation fails.
int collm_ops_attention_forward(float *out, float *att, const float *q, const float *k, const float *v, int T, int n_past,
                                int n_head, int n_head_kv, int head_dim, collm_pool *pool, float *scratch);
// The same with the keys and values in two parts: rows [0, n_first) at k, v
// and rows [n_first, n_past + T) at k2, v2 (row n_first first; a prompt's
// own rows after the ones it shares), so that nobody copies them together.
// att NULL keeps the probabilities normalised in the scratch, so out has
// the bits it has with att (collm_ops_attention_forward with att NULL
// divides the outputs instead: equal to rounding).
int collm_ops_attention_forward_split(float *out, float *att, const float *q, const float *k, const float *v,
                                      int n_first, const float *k2, const float *v2, int T, int n_past, int n_head,
                                      int n_head_kv, int head_dim, collm_pool *pool, float *scratch);
// dq (T, n_head, hd), dk/dv (n_past + T, n_head_kv, hd) accumulate. scratch
// and the return value as for the forward.
int collm_ops_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *att, const float *q,
                                 const float *k, const float *v, int T, int n_past, int n_head, int n_head_kv,
                                 int head_dim, collm_pool *pool, float *scratch);
// The same with the keys and values in two parts, as in
// collm_ops_attention_forward_split: rows [0, n_first) at k, v, their
// gradients accumulated into dk, dv (n_first, n_head_kv, hd); rows
// [n_first, n_past + T) at k2, v2, into dk2, dv2 (row n_first first). The
// same bits as the one-part call on the rows copied together.
int collm_ops_attention_backward_split(float *dq, float *dk, float *dv, float *dk2, float *dv2, const float *dout,
                                       const float *att, const float *q, const float *k, const float *v, int n_first,
                                       const float *k2, const float *v2, int T, int n_past, int n_head, int n_head_kv,
                                       int head_dim, collm_pool *pool, float *scratch);
// The split forward and backward with values that are not projected: every
// head reads the same rows x, x2 (L, C) in place of v, v2, so out is
// (T, n_head, C): out_h = Σ_j P_h[j]·x_j. A layer whose outputs are wanted at
// a few rows applies W_v after the attention instead of before
// (Σ_j P_h[j]·(W_v x_j) = W_v Σ_j P_h[j]·x_j, softmax rows summing to 1 for
// the bias): C·KV multiply-adds per key row become C·hd per query and head.
// dout (T, n_head, C); dx, dx2 (L, C) accumulate Σ_h P_h^T·dout_h (the heads
// in order, on one thread). The rest as in the split calls.
int collm_ops_attention_forward_xv(float *out, float *att, const float *q, const float *k, const float *x,
                                   int n_first, const float *k2, const float *x2, int T, int n_past, int n_head,
                                   int n_head_kv, int head_dim, int C, collm_pool *pool, float *scratch);
int collm_ops_attention_backward_xv(float *dq, float *dk, float *dx, float *dk2, float *dx2, const float *dout,
                                    const float *att, const float *q, const float *k, const float *x, int n_first,
                                    const float *k2, const float *x2, int T, int n_past, int n_head, int n_head_kv,
                                    int head_dim, int C, collm_pool *pool, float *scratch);

// Attention of packed rows of several sequences that all continue the same
// cached prefix (inference only). Packed row r, at absolute position
// pos[r] >= n_past, is row i = pos[r] - n_past of its sequence, whose rows are
// r-i..r: it sees the n_past prefix keys k_past/v_past (n_past, n_head_kv, hd)
// and its own sequence's keys k_new/v_new rows r-i..r (packed, n_head_kv, hd).
// Query j < n_q is packed row r = q_rows[j] (q_rows NULL: r = j): q and out
// (n_q, n_head, hd) hold that query's row j. Same result per row as
// collm_ops_attention_forward on that sequence alone (to rounding).
// scratch: collm_pool_size(pool) x collm_ops_attention_scratch(L) floats with
// L > every pos[r], or NULL (allocated per call); kt: the prefix keys
// transposed (collm_ops_attention_packed_kt(n_past, ...) floats, overwritten),
// or NULL (allocated per call); returns as the forward.
int collm_ops_attention_packed_forward(float *out, const float *q, const int32_t *q_rows, int n_q, const float *k_past,
                                       const float *v_past, int n_past, const float *k_new, const float *v_new,
                                       const int32_t *pos, int n_head, int n_head_kv, int head_dim, collm_pool *pool,
                                       float *scratch, float *kt);
// Floats of the kt buffer of collm_ops_attention_packed_forward.
int64_t collm_ops_attention_packed_kt(int n_past, int n_head_kv, int head_dim);
// Floats of scratch one thread of the attention functions needs when queries
// see at most L keys (L >= 1).
int64_t collm_ops_attention_scratch(int L);

// Mean binary cross-entropy with logits over n; dlogit[i] = (σ(s_i) - y_i) / n
// (written, not accumulated; dlogit may be NULL). Numerically stable.
double collm_ops_bce_with_logits(float *dlogit, const float *logit, const float *label, int n);

// Dot product and axpy helpers (vectorisable loops).
float collm_ops_dot(const float *a, const float *b, int64_t n);
double collm_ops_sumsq(const float *x, int64_t n); // Σ x², in double: 8 partial sums in a fixed order
void collm_ops_axpy(float *y, float a, const float *x, int64_t n); // y += a·x

// AdamW step t (1-based) on n parameters: decoupled weight decay
// (param -= lr·wd·param) unless coupled_l2 != 0, in which case wd·param is
// added to the gradient first (PyTorch Adam's weight_decay, used by MF).
void collm_ops_adam_update(float *param, const float *grad, float *m, float *v, int64_t n, float lr, float beta1,
                     float beta2, float eps, float weight_decay, int coupled_l2, int64_t t);

#endif
