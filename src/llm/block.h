// One Llama / Qwen2 transformer block, forward and backward: the one
// implementation behind inference (llm/model.c, KV cache) and training
// (llm/train.c, activations kept for backward).
//
//   xn1   = rmsnorm(x) ⊙ attn_norm                         (R, C)
//   q|k|v = xn1 · [Wq|Wk|Wv]^T (+ b)  one GEMM, + LoRA    (R, Q + 2 KV)
//   q, k  = rope(q), rope(k)
//   attn  = attention(q, k, v)        caller's callback    (n_q, Q)
//           (fold_v: z = attention(q, k, xn1) (n_q, n_head, C), attn = z·Wv^T + bv per head)
//   x_mid = x + attn · Wo^T                                (n_q, C)
//   xn2   = rmsnorm(x_mid) ⊙ ffn_norm
//   g|u   = xn2 · [W_gate|W_up]^T     one GEMM, + LoRA     (n_q, 2F)
//   out   = x_mid + (silu(g) ⊙ u) · W_down^T               (n_q, C)
//
// R rows enter and keys/values are computed for all of them. Queries and
// everything after them run on n_q rows: every row (q_rows NULL, n_q = R), or
// only the rows q_rows (a last layer whose outputs are wanted at a few rows:
// then q|k|v is one k|v GEMM over R rows plus a q GEMM over n_q gathered rows).
//
// The fused GEMMs need Wq, Wk, Wv (and bq, bk, bv) and W_gate, W_up adjacent
// in memory, as collm_llm_model_alloc lays them out (collm_llm_block_layout_ok).
// Shapes: C = n_embd, Q = n_head·hd, KV = n_head_kv·hd, F = n_ff.
#ifndef COLLM_LLM_BLOCK_H
#define COLLM_LLM_BLOCK_H

#include <stdint.h>

#include "collm/threadpool.h"
#include "core/ops.h"
#include "core/rng.h"
#include "llm/lora_internal.h"
#include "llm/model_internal.h"

// The tensors of one block call. Inference passes one scratch set for every
// layer; training one set per layer, kept for backward.
typedef struct {
    float *x;     // (R, C) input, the residual stream
    float *xn1;   // (R, C)
    float *rstd1; // (R)
    float *q_in;  // (n_q, C) xn1 at the query rows; the forward sets it to xn1 when q_rows is NULL
    float *q;     // (n_q, Q) after RoPE
    float *k;     // (R, KV) after RoPE
    float *v;     // (R, KV)
    float *attn;  // (n_q, Q) attention output (input of Wo)
    float *z;     // (n_q, n_head·C) fold_v: each head's probability-weighted sum of xn1 rows
    float *x_mid; // (n_q, C) residual after attention; must not alias x
    float *xn2;   // (n_q, C)
    float *rstd2; // (n_q)
    float *gu;    // (n_q, 2F) gate | up, one row each
    float *h;     // (n_q, F) silu(gate) ⊙ up (input of W_down)
    float *out;   // (n_q, C) block output; may alias x (not in training: backward reads x)
    // LoRA (training): the dropped-out input and x·A^T of each adapted target
    float *lora_x_drop[COLLM_LORA_N_TARGETS];
    float *lora_xa[COLLM_LORA_N_TARGETS];
} collm_llm_block_acts;

// Gradient scratch of a backward call.
typedef struct {
    float *d_xn;     // (R, C)
    float *d_qkv;    // (R, Q + 2 KV)
    float *d_q;      // (n_q, Q)
    float *d_k;      // (R, KV)
    float *d_v;      // (R, KV)
    float *d_z;      // (n_q, n_head·C) fold_v
    float *d_xv;     // (R, C) fold_v: ∂L/∂xn1 through the attention's values
    float *d_attn;   // (n_q, Q)
    float *d_q_in;   // (n_q, C) (q_rows only)
    float *d_gu;     // (n_q, 2F)
    float *d_h;      // (n_q, F)
    float *d_xa;     // (R, rank) LoRA
    float *dw_parts; // (pool threads, C) per-thread RMSNorm weight gradients
} collm_llm_block_grads;

typedef struct collm_llm_block collm_llm_block;

// attn (n_q, Q) from q (n_q, Q) and k, v (R, KV) of the acts. Inference also
// stores k/v in its cache here; training keeps the probabilities. With
// b->fold_v: z (n_q, n_head·C) with xn1 (R, C) as every head's values.
typedef void (*collm_llm_attend_fn)(void *ctx, const collm_llm_block *b, collm_llm_block_acts *a);
// Its backward: d_q (n_q, Q), d_k, d_v (R, KV) += ∂L/∂(q, k, v) from d_attn
// (fold_v: d_v (R, C) += ∂L/∂xn1 from d_attn = d_z (n_q, n_head·C)).
typedef void (*collm_llm_attend_backward_fn)(void *ctx, const collm_llm_block *b, const collm_llm_block_acts *a,
                                             const float *d_attn, float *d_q, float *d_k, float *d_v);

struct collm_llm_block {
    const collm_llm_hparams *hp;
    const collm_llm_layer_weights *w;
    int layer;
    int R;                     // rows entering the block
    int n_q;                   // query rows (R when q_rows is NULL; may be 0: keys and values only)
    const int32_t *q_rows;     // (n_q) rows in [0, R) whose outputs are wanted, or NULL for every row
    // With q_rows (collm_llm_block_can_fold_v): no value projection over the
    // R rows. The attention weighs xn1 itself, z_h = Σ_j P_h[j]·xn1_j, and Wv
    // follows at the n_q query rows (Σ_j P_h[j] = 1 carries the bias): R·C·KV
    // multiply-adds become n_q·n_head·C·(R_s + hd), R_s a query's keys. The
    // caller's attention callbacks must know it (acts z, grads d_z, d_xv).
    int fold_v;
    const float *rope_cs;      // (n, n_rot) cos/sin table (collm_ops_rope_table)
    const int32_t *rope_row;   // (R) table row of each row; NULL: row r uses table row r
    const int32_t *rope_row_q; // (n_q) table row of each query row (== rope_row when q_rows is NULL)
    float *qkv;                // (R, Q + 2 KV) scratch for the fused projection
    const collm_lora_adapter *lora; // adapters added to the projections, or NULL
    collm_rng *dropout_rng;    // LoRA dropout draws (NULL: none); backward must see the same value
    collm_pool *pool;          // row-parallel elementwise work (GEMMs go to BLAS)
    int unfused;               // 1: never the fused feed-forward (tests compare it with the unfused passes)
    // Forward only (scoring; NULL: training keeps every tensor): the fused
    // passes keep each row chunk's xn1, rstd1, q|k|v, x_mid, xn2, rstd2, gu
    // and h here, one slice of collm_llm_block_chunk_floats(hp) per pool
    // thread, reused chunk after chunk while it is in cache, instead of in the
    // acts' (R, ·) tensors that backward reads (those stay unwritten). The
    // same bits in q, k, v, attn and out.
    float *chunk_scratch;
    // Training (NULL: the unfused passes): the fused feed-forward backward's
    // d_h of a row chunk, one slice of collm_llm_block_chunk_floats(hp) per
    // pool thread (the forward's chunk_scratch stays NULL in training).
    float *bwd_scratch;
    // The fused halves' packed weights (q|k|v, Wo, gate|up, W_down), kept by
    // the caller from one call to the next while the weights stay the same
    // (scoring batch after batch): empty ones (packed NULL) are filled here,
    // full ones of this layer's weights reused; the caller frees them.
    // NULL: packed and freed in every call.
    collm_ops_wpack *packed;
    // The same for the fused feed-forward backward's W_down and gate|up as
    // they are (dx = dy·W), 2 of them: for frozen weights (stage 2), kept
    // from step to step. NULL: packed and freed in every call.
    collm_ops_wpack *packed_bwd;
    int exact;                 // quantised weights: products in F32 through dequantised tiles (training: the
                               // function backward differentiates), else activations quantised as llama.cpp does
    collm_llm_attend_fn attend;
    collm_llm_attend_backward_fn attend_backward; // training only
    void *attend_ctx;
    // Backward only at these rows (NULL: every row): when the weights are
    // frozen (no grad, no LoRA) and only some rows' input gradients can reach
    // what trains (stage 2: each prompt's rows from its first slot on; the
    // rows before depend on no slot). d_out and d_x are then compact: row i is
    // packed row bwd_rows[i]; bwd_q[j] is the compact row of query row j
    // (q_rows), or -1 when it is not a backward row.
    const int32_t *bwd_rows; // (n_bwd) ascending
    int n_bwd;
    const int32_t *bwd_q;    // (n_q) with q_rows
};

// 1 when the layer's weights have the fused layout the block needs.
int collm_llm_block_layout_ok(const collm_llm_hparams *hp, const collm_llm_layer_weights *w);

// 1 when the block may run with fold_v: query rows, F32 Wv, no LoRA on v.
int collm_llm_block_can_fold_v(const collm_llm_block *b);

// Floats of one pool thread's slice of chunk_scratch.
int64_t collm_llm_block_chunk_floats(const collm_llm_hparams *hp);

// Returns COLLM_OK, or COLLM_ERR_NOMEM from a quantised projection's scratch.
int collm_llm_block_forward(const collm_llm_block *b, collm_llm_block_acts *a);

// d_out (n_q, C) = ∂L/∂out on entry (overwritten). Writes d_x (R, C) = ∂L/∂x;
// d_x may be d_out when q_rows is NULL. With bwd_rows, d_out is (n_bwd, C)
// unless q_rows is set, and d_x is (n_bwd, C). grad (NULL = frozen weights) points
// into a gradient block laid out like the weights: dW accumulate there; LoRA
// gradients accumulate in the adapter.
int collm_llm_block_backward(const collm_llm_block *b, const collm_llm_block_acts *a, const collm_llm_layer_weights *grad,
                              float *d_out, float *d_x, const collm_llm_block_grads *s);

#endif
