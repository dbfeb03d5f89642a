// One transformer block, forward and backward (see llm/block.h).
#include "llm/block.h"

#include "collm/error.h"
#include "core/ops.h"

#include <string.h>

int collm_llm_block_layout_ok(const collm_llm_hparams *hp, const collm_llm_layer_weights *w) {
    if (!w->wq) { // quantised: the matrices are separate collm_qmats; biases stay adjacent floats
        for (int k = 0; k < 7; k++)
            if (!w->qw[k].data) return 0;
        const size_t Qb = (size_t)hp->n_head * hp->head_dim, KVb = (size_t)hp->n_head_kv * hp->head_dim;
        return hp->has_qkv_bias ? w->bq && w->bk == w->bq + Qb && w->bv == w->bk + KVb : !w->bq && !w->bk && !w->bv;
    }
    const size_t C = (size_t)hp->n_embd, Q = (size_t)hp->n_head * hp->head_dim,
                 KV = (size_t)hp->n_head_kv * hp->head_dim, F = (size_t)hp->n_ff;
    int qkv = w->wk == w->wq + Q * C && w->wv == w->wk + KV * C;
    int bias = hp->has_qkv_bias ? w->bq && w->bk == w->bq + Q && w->bv == w->bk + KV : !w->bq && !w->bk && !w->bv;
    return qkv && bias && w->w_up == w->w_gate + F * C;
}

// ---------------------------------------------------------------------------
// Row-parallel elementwise work. The ops are single-threaded; each pool
// thread takes a contiguous block of rows. Every kernel below works row by
// row, so results do not depend on the partition, except the RMSNorm weight
// gradient (per-thread partial sums added in thread order: deterministic for
// a given thread count).

typedef enum {
    ROWS_RMSNORM_FWD, // y = rmsnorm(x) ⊙ w
    ROWS_RMSNORM_BWD, // y (dx) += ..., dw_parts[thread] += ... (idx: x and rstd of row t at row idx[t])
    ROWS_SWIGLU_FWD,  // y (T, W) = silu(x[:, :W]) ⊙ x[:, W:], x (T, 2W)
    ROWS_SWIGLU_BWD,  // y (T, 2W) = ∂/∂(g|u) from dy (T, W), x = g|u (idx: row idx[t] of x)
    ROWS_ADD,         // y (T, W) += x rows (idx: x row idx[t])
    ROWS_SPLIT,       // x (T, W = a + b + c) -> y (T, a), y2 (T, b), y3 (T, c); backward: the reverse
                      // (idx, backward only: x row t from split row idx[t])
    ROWS_ZERO,
} rows_kind;

typedef struct {
    rows_kind kind;
    float *y, *y2, *y3, *dw_parts;
    const float *x, *w, *dy, *rstd_in;
    float *rstd;
    const int32_t *idx;
    const float *cs; // RoPE table
    int width, n_head, head_dim, n_rot, neox, backward, split[3];
    float eps;
} rows_job;

static void rows_task(void *ctx, int64_t begin, int64_t end, int thread_index) {
    const rows_job *j = ctx;
    const int64_t n = end - begin, W = j->width;
    switch (j->kind) {
    case ROWS_RMSNORM_FWD:
        collm_ops_rmsnorm_forward(j->y + begin * W, j->rstd + begin, j->x + begin * W, j->w, (int)n, (int)W, j->eps);
        break;
    case ROWS_RMSNORM_BWD:
        if (!j->idx) {
            collm_ops_rmsnorm_backward(j->y + begin * W, j->dw_parts ? j->dw_parts + thread_index * W : NULL,
                                       j->dy + begin * W, j->x + begin * W, j->w, j->rstd_in + begin, (int)n, (int)W);
        } else { // row t's input and rstd are at row idx[t]
            for (int64_t t = begin; t < end; t++)
                collm_ops_rmsnorm_backward(j->y + t * W, j->dw_parts ? j->dw_parts + thread_index * W : NULL,
                                           j->dy + t * W, j->x + j->idx[t] * W, j->w, j->rstd_in + j->idx[t], 1, (int)W);
        }
        break;
    case ROWS_SWIGLU_FWD:
        for (int64_t t = begin; t < end; t++)
            collm_ops_swiglu_forward(j->y + t * W, j->x + t * 2 * W, j->x + t * 2 * W + W, W);
        break;
    case ROWS_SWIGLU_BWD: // y is set, not added to
        for (int64_t t = begin; t < end; t++) {
            const float *gu = j->x + (j->idx ? j->idx[t] : t) * 2 * W;
            collm_ops_swiglu_backward_set(j->y + t * 2 * W, j->y + t * 2 * W + W, j->dy + t * W, gu, gu + W, W);
        }
        break;
    case ROWS_ADD:
        for (int64_t t = begin; t < end; t++) {
            const float *xr = j->x + (j->idx ? j->idx[t] : t) * W;
            float *yr = j->y + t * W;
            for (int64_t c = 0; c < W; c++) yr[c] += xr[c];
        }
        break;
    case ROWS_SPLIT: {
        const int64_t a = j->split[0], b = j->split[1], c = j->split[2];
        float *fused = (float *)j->x; // backward writes it
        for (int64_t t = begin; t < end; t++) {
            float *f = fused + t * W;
            const int64_t u = j->idx ? j->idx[t] : t; // backward: fused row t gathers split row idx[t]
            float *pa = j->y + u * a, *pb = j->y2 + u * b, *pc = j->y3 ? j->y3 + u * c : NULL;
            if (!j->backward) {
                memcpy(pa, f, (size_t)a * sizeof(float));
                memcpy(pb, f + a, (size_t)b * sizeof(float));
                if (pc) memcpy(pc, f + a + b, (size_t)c * sizeof(float));
            } else {
                memcpy(f, pa, (size_t)a * sizeof(float));
                memcpy(f + a, pb, (size_t)b * sizeof(float));
                if (pc) memcpy(f + a + b, pc, (size_t)c * sizeof(float));
            }
        }
        break;
    }
    case ROWS_ZERO: memset(j->y + begin * W, 0, (size_t)(n * W) * sizeof(float)); break;
    }
}

static void run_rows(collm_pool *pool, rows_job *j, int64_t rows) { collm_pool_for(pool, rows, 16, rows_task, j); }

static void par_zero(collm_pool *pool, float *y, int64_t T, int W) {
    rows_job j = {.kind = ROWS_ZERO, .y = y, .width = W};
    run_rows(pool, &j, T);
}

static void par_rmsnorm_forward(const collm_llm_block *b, float *y, float *rstd, const float *x, const float *w, int T) {
    rows_job j = {.kind = ROWS_RMSNORM_FWD, .y = y, .rstd = rstd, .x = x, .w = w, .width = b->hp->n_embd,
                  .eps = b->hp->rms_eps};
    run_rows(b->pool, &j, T);
}

// dx (T, C) += ...; dw (C) += Σ over rows, summed per thread, then in thread order
static void par_rmsnorm_backward(const collm_llm_block *b, float *dx, float *dw, const float *dy, const float *x,
                                 const float *w, const float *rstd, const int32_t *idx, int T, float *dw_parts) {
    const int C = b->hp->n_embd, threads = collm_pool_size(b->pool);
    if (dw) memset(dw_parts, 0, (size_t)threads * C * sizeof(float));
    rows_job j = {.kind = ROWS_RMSNORM_BWD, .y = dx, .dw_parts = dw ? dw_parts : NULL, .dy = dy, .x = x, .w = w,
                  .rstd_in = rstd, .idx = idx, .width = C};
    run_rows(b->pool, &j, T);
    for (int t = 0; dw && t < threads; t++) collm_ops_axpy(dw, 1.0f, dw_parts + (int64_t)t * C, C);
}

// Rotates x (T, n_head, hd) rows by table rows idx (NULL: row t; each thread
// then starts at its first row's table row), backward the other way.

static void rope_task(void *ctx, int64_t begin, int64_t end, int thread_index) {
    (void)thread_index;
    const rows_job *j = ctx;
    const int64_t W = j->width;
    if (j->idx) {
        collm_ops_rope_rows(j->y + begin * W, j->cs, j->idx + begin, (int)(end - begin), j->n_head, j->head_dim,
                            j->n_rot, j->neox, j->backward);
    } else {
        const int64_t row = 2 * (j->n_rot / 2); // floats per table row
        collm_ops_rope_rows(j->y + begin * W, j->cs + begin * row, NULL, (int)(end - begin), j->n_head, j->head_dim,
                            j->n_rot, j->neox, j->backward);
    }
}

static void par_rope(const collm_llm_block *b, float *x, const int32_t *idx, int T, int n_head, int backward) {
    const collm_llm_hparams *hp = b->hp;
    rows_job j = {.y = x, .cs = b->rope_cs, .idx = idx, .width = n_head * hp->head_dim, .n_head = n_head,
                  .head_dim = hp->head_dim, .n_rot = hp->n_rot, .neox = hp->rope_neox, .backward = backward};
    collm_pool_for(b->pool, T, 16, rope_task, &j);
}

// y (T, W) += x rows (x row idx[t], or row t)
static void par_add(const collm_llm_block *b, float *y, const float *x, const int32_t *idx, int T, int W) {
    rows_job j = {.kind = ROWS_ADD, .y = y, .x = x, .idx = idx, .width = W};
    run_rows(b->pool, &j, T);
}

// fused (T, a + b + c) <-> (T, a), (T, b), (T, c) (c may be 0 with p3 NULL);
// backward with idx: fused row t from split rows idx[t]
static void par_split(const collm_llm_block *b, int backward, float *fused, float *p1, int a, float *p2, int bb,
                      float *p3, int c, const int32_t *idx, int T) {
    rows_job j = {.kind = ROWS_SPLIT, .x = fused, .y = p1, .y2 = p2, .y3 = p3, .width = a + bb + c,
                  .split = {a, bb, c}, .backward = backward, .idx = idx};
    run_rows(b->pool, &j, T);
}

// ---------------------------------------------------------------------------
// LoRA on one target (nothing when the target is not adapted). y (T, out)
// with row stride ldy: a column block of a fused output.

static void lora_forward(const collm_llm_block *b, collm_llm_block_acts *a, collm_lora_target t, const float *x, int T,
                         float *y, int ldy) {
    collm_lora_pair *p = collm_lora_get(b->lora, b->layer, t);
    if (!p) return;
    collm_lora_forward(p, collm_lora_scale(b->lora), b->lora->dropout, x, T, a->lora_x_drop[t], a->lora_xa[t], y, ldy,
                       b->dropout_rng);
}

// dx (T, in) += through the adapter; the adapter's gradients accumulate.
static void lora_backward(const collm_llm_block *b, const collm_llm_block_acts *a, collm_lora_target t, const float *x,
                          int T, const float *dy, int lddy, float *dx, float *d_xa) {
    collm_lora_pair *p = collm_lora_get(b->lora, b->layer, t);
    if (!p) return;
    int dropped = b->dropout_rng && b->lora->dropout > 0;
    const float *xd = dropped ? a->lora_x_drop[t] : x;
    collm_lora_backward(p, collm_lora_scale(b->lora), b->lora->dropout, xd, dropped ? xd : NULL, T, a->lora_xa[t], dy,
                        lddy, dx, d_xa);
}

// ---------------------------------------------------------------------------

// A projection through the layer's matrix `wm` (n_parts of them stacked):
// the float weights of an F32 model or the quantised ones (llm/model.c).
// The only failure is running out of memory for the quantised path's
// scratch; it returns from the calling function. MMB sets dx (T, in), adds
// into dw and db.
#define MM(y, x, wf, wm, n_parts, bias, T, in, out)                                                                    \
    do {                                                                                                               \
        int rc_ = collm_llm_matmul(y, x, wf, &w->qw[wm], n_parts, bias, T, in, out, b->exact, b->pool);                         \
        if (rc_ != COLLM_OK) return rc_;                                                                               \
    } while (0)
#define MMB(dx, dw, db, dy, x, wf, wm, n_parts, T, in, out)                                                            \
    do {                                                                                                               \
        int rc_ = collm_llm_matmul_backward(dx, dw, db, dy, x, wf, &w->qw[wm], n_parts, T, in, out, b->pool);         \
        if (rc_ != COLLM_OK) return rc_;                                                                               \
    } while (0)

// ---------------------------------------------------------------------------
// Both halves of the block fused over row chunks, each chunk's passes back to
// back on one thread while its rows are in cache (q|k|v is (R, Q + 2 KV) and
// gate|up (R, 2F): tens of MB that the unfused passes write and read again):
//   in:  RMSNorm, q|k|v (+ bias), the split into q, k, v, RoPE of q and k;
//   ffn: Wo, the residual, RMSNorm, gate|up, SwiGLU, W_down, the residual.
// Only where collm_ops_matmul_forward would use collm's kernel
// (collm_ops_wpack), whose sums do not depend on where rows are cut: the
// same bits as the unfused passes. Every row's query (no q_rows), F32
// weights, no LoRA.

#define FUSED_CHUNK 96 // rows per chunk: gate|up (96, 2F) and h stay in L2

typedef struct {
    const collm_llm_block *b;
    collm_llm_block_acts *a;
    collm_ops_wpack w[3]; // in: q|k|v; ffn: Wo, gate|up, W_down
} fused_job;

int64_t collm_llm_block_chunk_floats(const collm_llm_hparams *hp) {
    const int64_t C = hp->n_embd, Q = (int64_t)hp->n_head * hp->head_dim, KV = (int64_t)hp->n_head_kv * hp->head_dim;
    const int64_t in = C + 1 + Q + 2 * KV, ffn = 2 * C + 1 + 3 * (int64_t)hp->n_ff; // floats per row of each half
    return FUSED_CHUNK * (in > ffn ? in : ffn);
}

static void fused_in_task(void *ctx, int64_t begin, int64_t end, int thread_index) {
    const fused_job *j = ctx;
    const collm_llm_block *b = j->b;
    collm_llm_block_acts *a = j->a;
    const collm_llm_hparams *hp = b->hp;
    const int64_t C = hp->n_embd, Q = (int64_t)hp->n_head * hp->head_dim, KV = (int64_t)hp->n_head_kv * hp->head_dim;
    const int64_t W = Q + 2 * KV, cs_row = 2 * (hp->n_rot / 2);
    // forward only: this thread's chunk of xn1 (CH, C), rstd1 (CH), q|k|v (CH, W)
    float *mine = b->chunk_scratch ? b->chunk_scratch + thread_index * collm_llm_block_chunk_floats(hp) : NULL;
    for (int64_t ch = begin; ch < end; ch++) {
        const int64_t r0 = ch * FUSED_CHUNK;
        const int n = (int)(b->R - r0 < FUSED_CHUNK ? b->R - r0 : FUSED_CHUNK);
        float *xn = mine ? mine : a->xn1 + r0 * C, *rstd = mine ? mine + FUSED_CHUNK * C : a->rstd1 + r0;
        // q|k|v is split into q, k, v at once: in training too it need not
        // leave the thread's scratch (the backward's slice, unused until then)
        float *qkv = mine ? rstd + FUSED_CHUNK
                     : b->bwd_scratch ? b->bwd_scratch + thread_index * collm_llm_block_chunk_floats(hp)
                                      : b->qkv + r0 * W;
        collm_ops_rmsnorm_forward(xn, rstd, a->x + r0 * C, b->w->attn_norm, n, (int)C, hp->rms_eps);
        collm_ops_wpack_forward(&j->w[0], qkv, xn, n);
        for (int t = 0; t < n; t++) {
            float *f = qkv + t * W;
            if (b->w->bq) // the stacked biases, as collm_ops_matmul_forward adds them
                for (int64_t o = 0; o < W; o++) f[o] += b->w->bq[o];
            memcpy(a->q + (r0 + t) * Q, f, (size_t)Q * sizeof(float));
            memcpy(a->k + (r0 + t) * KV, f + Q, (size_t)KV * sizeof(float));
            memcpy(a->v + (r0 + t) * KV, f + Q + KV, (size_t)KV * sizeof(float));
        }
        const int32_t *rr = b->rope_row ? b->rope_row + r0 : NULL;
        const float *cs = b->rope_row ? b->rope_cs : b->rope_cs + r0 * cs_row;
        collm_ops_rope_rows(a->k + r0 * KV, cs, rr, n, hp->n_head_kv, hp->head_dim, hp->n_rot, hp->rope_neox, 0);
        collm_ops_rope_rows(a->q + r0 * Q, cs, rr, n, hp->n_head, hp->head_dim, hp->n_rot, hp->rope_neox, 0);
    }
}

static void fused_ffn_task(void *ctx, int64_t begin, int64_t end, int thread_index) {
    const fused_job *j = ctx;
    const collm_llm_block *b = j->b;
    collm_llm_block_acts *a = j->a;
    const collm_llm_hparams *hp = b->hp;
    const int64_t C = hp->n_embd, F = hp->n_ff, Q = (int64_t)hp->n_head * hp->head_dim;
    // forward only: this thread's chunk of x_mid, xn2 (CH, C), rstd2 (CH), gu (CH, 2F), h (CH, F)
    float *mine = b->chunk_scratch ? b->chunk_scratch + thread_index * collm_llm_block_chunk_floats(hp) : NULL;
    for (int64_t ch = begin; ch < end; ch++) {
        const int64_t r0 = ch * FUSED_CHUNK;
        const int n = (int)(b->n_q - r0 < FUSED_CHUNK ? b->n_q - r0 : FUSED_CHUNK);
        float *x_mid = mine ? mine : a->x_mid + r0 * C, *xn2 = mine ? mine + FUSED_CHUNK * C : a->xn2 + r0 * C;
        float *rstd = mine ? xn2 + FUSED_CHUNK * C : a->rstd2 + r0, *gu = mine ? rstd + FUSED_CHUNK : a->gu + r0 * 2 * F;
        float *h = mine ? gu + FUSED_CHUNK * 2 * F : a->h + r0 * F, *out = a->out + r0 * C;
        const float *x = a->x + r0 * C;
        collm_ops_wpack_forward(&j->w[0], x_mid, a->attn + r0 * Q, n);
        collm_ops_axpy(x_mid, 1.0f, x, n * C); // the residual (1·x exact: the bits of x_mid + x), vectorised
        collm_ops_rmsnorm_forward(xn2, rstd, x_mid, b->w->ffn_norm, n, (int)C, hp->rms_eps);
        collm_ops_wpack_forward(&j->w[1], gu, xn2, n);
        for (int t = 0; t < n; t++) collm_ops_swiglu_forward(h + t * F, gu + t * 2 * F, gu + t * 2 * F + F, F);
        collm_ops_wpack_forward(&j->w[2], out, h, n);
        collm_ops_axpy(out, 1.0f, x_mid, n * C);
    }
}

// W packed for `rows` rows into *dst: the caller's kept one reused when it
// holds these weights in this layout, else packed here (and, with a place
// to keep it, kept there: the caller frees it). 1, 0 (collm's kernel does
// not take these rows: dst holds nothing), or COLLM_ERR_NOMEM.
static int pack_or_reuse(collm_ops_wpack *dst, collm_ops_wpack *kept, const float *w, int out, int in, int as_is,
                         int rows, collm_pool *pool) {
    if (kept && kept->packed && kept->w == w && kept->out == out && kept->in == in && kept->as_is == as_is &&
        collm_ops_wpack_used(out, as_is, rows, pool)) {
        *dst = *kept;
        return 1;
    }
    int rc = as_is ? collm_ops_wpack_init_as_is(dst, w, in, out, rows, pool)
                   : collm_ops_wpack_init(dst, w, out, in, rows, pool);
    if (rc == 1 && kept) {
        collm_ops_wpack_free(kept);
        *kept = *dst;
    }
    return rc;
}

// Runs one half fused over `rows` rows: the weights w[k] (out[k], in[k]),
// n_w of them. 1: done; 0: not this path (the caller runs the unfused
// passes); or an error.
static int run_fused(const collm_llm_block *b, collm_llm_block_acts *a, collm_task_fn task, int rows,
                     const float *const *w, const int *out, const int *in, int n_w, int first) {
    if (b->unfused || b->q_rows || b->lora || collm_pool_size(b->pool) < 2) return 0;
    for (int k = 0; k < n_w; k++)
        if (!w[k]) return 0; // quantised
    fused_job j = {.b = b, .a = a};
    int rc = 1;
    for (int k = 0; k < n_w && rc == 1; k++) // the caller's kept ones: weights first..
        rc = pack_or_reuse(&j.w[k], b->packed ? &b->packed[first + k] : NULL, w[k], out[k], in[k], 0, rows, b->pool);
    // chunks handed out one at a time: a thread the machine slows, or the
    // short last chunk, leaves the other less to wait for (a chunk's bits do
    // not depend on its thread)
    if (rc == 1) collm_pool_for_each(b->pool, (rows + FUSED_CHUNK - 1) / FUSED_CHUNK, task, &j);
    for (int k = 0; k < n_w && !b->packed; k++) collm_ops_wpack_free(&j.w[k]);
    return rc < 0 ? collm_error(rc, "transformer block: out of memory for the packed weights") : rc;
}

int collm_llm_block_can_fold_v(const collm_llm_block *b) {
    return b->q_rows && b->w->wv && !collm_lora_get(b->lora, b->layer, COLLM_LORA_V);
}

// fold_v: attn (n_q, Q) = per query row and head h (kv head g):
// z_h (C) · Wv_g^T (hd, C)^T + bv_g. n_q·n_head·hd·C multiply-adds, a few
// per cent of the value projection it replaces.
static void fold_v_forward(const collm_llm_block *b, collm_llm_block_acts *a) {
    const collm_llm_hparams *hp = b->hp;
    const int64_t C = hp->n_embd, hd = hp->head_dim, H = hp->n_head, Q = H * hd, group = H / hp->n_head_kv;
    const float *wv = b->w->wv, *bv = b->w->bv;
    for (int64_t j = 0; j < b->n_q; j++)
        for (int64_t h = 0; h < H; h++) {
            const float *z = a->z + (j * H + h) * C, *wg = wv + (h / group) * hd * C;
            float *o = a->attn + j * Q + h * hd;
            for (int64_t d = 0; d < hd; d++)
                o[d] = collm_ops_dot(z, wg + d * C, C) + (bv ? bv[(h / group) * hd + d] : 0.0f);
        }
}

// Its backward: d_z (n_q, n_head·C) = d_attn_h · Wv_g (set); dWv_g += d_attn_h^T·z_h
// and dbv_g += Σ d_attn_h (dwv, dbv NULL: frozen).
static void fold_v_backward(const collm_llm_block *b, const collm_llm_block_acts *a, const float *d_attn, float *d_z,
                            float *dwv, float *dbv) {
    const collm_llm_hparams *hp = b->hp;
    const int64_t C = hp->n_embd, hd = hp->head_dim, H = hp->n_head, Q = H * hd, group = H / hp->n_head_kv;
    const float *wv = b->w->wv;
    memset(d_z, 0, (size_t)(b->n_q * H * C) * sizeof(float));
    for (int64_t j = 0; j < b->n_q; j++)
        for (int64_t h = 0; h < H; h++) {
            const int64_t g = h / group;
            const float *da = d_attn + j * Q + h * hd, *z = a->z + (j * H + h) * C;
            float *dz = d_z + (j * H + h) * C;
            for (int64_t d = 0; d < hd; d++) {
                collm_ops_axpy(dz, da[d], wv + (g * hd + d) * C, C);
                if (dwv) collm_ops_axpy(dwv + (g * hd + d) * C, da[d], z, C);
                if (dbv) dbv[g * hd + d] += da[d];
            }
        }
}

int collm_llm_block_forward(const collm_llm_block *b, collm_llm_block_acts *a) {
    const collm_llm_hparams *hp = b->hp;
    const collm_llm_layer_weights *w = b->w;
    const int R = b->R, N = b->n_q, C = hp->n_embd, F = hp->n_ff;
    const int Q = hp->n_head * hp->head_dim, KV = hp->n_head_kv * hp->head_dim;

    // attention: x_mid = x + Wo · attention(rope(q), rope(k), v)
    const int QKV = Q + 2 * KV;
    int fused = run_fused(b, a, fused_in_task, R, (const float *const[]){w->wq}, &QKV, &C, 1, 0);
    if (fused < 0) return fused;
    if (fused) {
        a->q_in = a->xn1;
        goto attend;
    }
    par_rmsnorm_forward(b, a->xn1, a->rstd1, a->x, w->attn_norm, R);
    if (!b->q_rows) {
        // one GEMM over the stacked q|k|v weights (the input is packed once),
        // then the rows split into q, k, v
        a->q_in = a->xn1;
        MM(b->qkv, a->xn1, w->wq, COLLM_W_Q, 3, w->bq, R, C, Q + 2 * KV); // (R, Q + 2 KV)
        par_split(b, 0, b->qkv, a->q, Q, a->k, KV, a->v, KV, NULL, R);
        lora_forward(b, a, COLLM_LORA_Q, a->xn1, R, a->q, Q);
        lora_forward(b, a, COLLM_LORA_K, a->xn1, R, a->k, KV);
        lora_forward(b, a, COLLM_LORA_V, a->xn1, R, a->v, KV);
    } else {
        // keys and values over every row (one GEMM over stacked k|v; fold_v:
        // keys only, Wv after the attention), queries at the query rows only
        if (b->fold_v) {
            MM(a->k, a->xn1, w->wk, COLLM_W_K, 1, w->bk, R, C, KV); // (R, KV)
        } else {
            MM(b->qkv, a->xn1, w->wk, COLLM_W_K, 2, w->bk, R, C, 2 * KV); // (R, 2 KV)
            par_split(b, 0, b->qkv, a->k, KV, a->v, KV, NULL, 0, NULL, R);
        }
        lora_forward(b, a, COLLM_LORA_K, a->xn1, R, a->k, KV);
        if (!b->fold_v) lora_forward(b, a, COLLM_LORA_V, a->xn1, R, a->v, KV); // (after K: the dropout draws' order)
        for (int j = 0; j < N; j++)
            memcpy(a->q_in + (int64_t)j * C, a->xn1 + (int64_t)b->q_rows[j] * C, (size_t)C * sizeof(float));
        MM(a->q, a->q_in, w->wq, COLLM_W_Q, 1, w->bq, N, C, Q); // (N, Q)
        lora_forward(b, a, COLLM_LORA_Q, a->q_in, N, a->q, Q);
    }
    par_rope(b, a->k, b->rope_row, R, hp->n_head_kv, 0);
    if (N > 0) par_rope(b, a->q, b->rope_row_q, N, hp->n_head, 0);
attend:
    b->attend(b->attend_ctx, b, a);
    if (N == 0) return COLLM_OK; // keys and values were all that was asked for
    if (b->fold_v) fold_v_forward(b, a);
    fused = run_fused(b, a, fused_ffn_task, N, (const float *const[]){w->wo, w->w_gate, w->w_down},
                      (const int[]){C, 2 * F, C}, (const int[]){Q, C, F}, 3, 1);
    if (fused) return fused == 1 ? COLLM_OK : fused;
    MM(a->x_mid, a->attn, w->wo, COLLM_W_O, 1, NULL, N, Q, C); // (N, C)
    lora_forward(b, a, COLLM_LORA_O, a->attn, N, a->x_mid, C);
    par_add(b, a->x_mid, a->x, b->q_rows, N, C);

    // feed-forward: out = x_mid + W_down · (silu(W_gate·xn2) ⊙ W_up·xn2)
    par_rmsnorm_forward(b, a->xn2, a->rstd2, a->x_mid, w->ffn_norm, N);
    MM(a->gu, a->xn2, w->w_gate, COLLM_W_GATE, 2, NULL, N, C, 2 * F); // (N, 2F): one GEMM over gate|up
    lora_forward(b, a, COLLM_LORA_GATE, a->xn2, N, a->gu, 2 * F);
    lora_forward(b, a, COLLM_LORA_UP, a->xn2, N, a->gu + F, 2 * F);
    rows_job sw = {.kind = ROWS_SWIGLU_FWD, .y = a->h, .x = a->gu, .width = F};
    run_rows(b->pool, &sw, N);
    MM(a->out, a->h, w->w_down, COLLM_W_DOWN, 1, NULL, N, F, C); // (N, C)
    lora_forward(b, a, COLLM_LORA_DOWN, a->h, N, a->out, C);
    par_add(b, a->out, a->x_mid, NULL, N, C);
    return COLLM_OK;
}

// The feed-forward's backward fused over row chunks (F32 weights, no LoRA,
// a pool, b->bwd_scratch): per chunk of FUSED_CHUNK rows, d_h = d_out·W_down
// into the thread's scratch, d_gu = SwiGLU' (set), d_xn = d_gu·(W_gate|W_up),
// while the chunk is in cache; d_h never reaches memory. The weights'
// gradients (dy^T·x over all rows) follow as before. Bit for bit the unfused
// passes: the same products on collm's kernel (collm_ops_gemm runs dy·W as
// chunks of the same rows against W packed once).
typedef struct {
    const collm_llm_block *b;
    const collm_llm_block_acts *a;
    const collm_llm_block_grads *s;
    const float *d_out;     // (N, C)
    const int32_t *in_rows; // row t's gu at row in_rows[t] (NULL: t)
    int N;
    collm_ops_wpack w[2]; // W_down (C, F) and gate|up (2F, C), each as it is
    collm_ops_dw dw_down; // W_down's weight gradient: the job's first items, then the chunks
} ffn_bwd_job;

static void ffn_bwd_task(void *ctx, int64_t begin, int64_t end, int thread_index) {
    const ffn_bwd_job *j = ctx;
    const int64_t C = j->b->hp->n_embd, F = j->b->hp->n_ff;
    float *d_h = j->b->bwd_scratch + thread_index * collm_llm_block_chunk_floats(j->b->hp); // (CH, F)
    for (int64_t item = begin; item < end; item++) {
        if (item < j->dw_down.parts) {
            collm_ops_dw_run(&j->dw_down, (int)item);
            continue;
        }
        const int64_t ch = item - j->dw_down.parts;
        const int64_t r0 = ch * FUSED_CHUNK;
        const int n = (int)(j->N - r0 < FUSED_CHUNK ? j->N - r0 : FUSED_CHUNK);
        float *d_gu = j->s->d_gu + r0 * 2 * F; // (n, 2F)
        collm_ops_wpack_forward(&j->w[0], d_h, j->d_out + r0 * C, n);
        for (int t = 0; t < n; t++) {
            const float *gu = j->a->gu + (j->in_rows ? j->in_rows[r0 + t] : r0 + t) * 2 * F;
            collm_ops_swiglu_backward_set(d_gu + t * 2 * F, d_gu + t * 2 * F + F, d_h + t * F, gu, gu + F, F);
        }
        collm_ops_wpack_forward(&j->w[1], j->s->d_xn + r0 * C, d_gu, n);
    }
}

// 1: d_gu and d_xn (N, ·) written fused, and W_down's weight gradient
// dw_down (C, F) += d_out^T · h added (NULL: none) in the same job, its
// parts first: a thread done with its part takes chunks instead of waiting;
// 0: not this path; or an error.
static int ffn_backward_fused(const collm_llm_block *b, const collm_llm_block_acts *a, const collm_llm_block_grads *s,
                              const float *d_out, const int32_t *in_rows, int N, float *dw_down) {
    const collm_llm_layer_weights *w = b->w;
    const int C = b->hp->n_embd, F = b->hp->n_ff;
    if (b->unfused || b->lora || !b->bwd_scratch || !w->w_down || !w->w_gate || N <= 0 ||
        collm_pool_size(b->pool) < 2)
        return 0;
    ffn_bwd_job j = {.b = b, .a = a, .s = s, .d_out = d_out, .in_rows = in_rows, .N = N};
    collm_ops_wpack *kept = b->packed_bwd;
    int rc = pack_or_reuse(&j.w[0], kept ? &kept[0] : NULL, w->w_down, F, C, 1, N, b->pool);
    if (rc == 1) rc = pack_or_reuse(&j.w[1], kept ? &kept[1] : NULL, w->w_gate, C, 2 * F, 1, N, b->pool);
    if (rc == 1) {
        collm_ops_dw_plan(&j.dw_down, dw_down, d_out, a->h, N, F, C, b->pool);
        collm_pool_for_each(b->pool, j.dw_down.parts + (N + FUSED_CHUNK - 1) / FUSED_CHUNK, ffn_bwd_task, &j);
    }
    if (!kept) {
        collm_ops_wpack_free(&j.w[0]);
        collm_ops_wpack_free(&j.w[1]);
    }
    return rc < 0 ? collm_error(rc, "transformer block: out of memory for the packed weights") : rc;
}

int collm_llm_block_backward(const collm_llm_block *b, const collm_llm_block_acts *a, const collm_llm_layer_weights *g,
                              float *d_out, float *d_x, const collm_llm_block_grads *s) {
    const collm_llm_hparams *hp = b->hp;
    const collm_llm_layer_weights *w = b->w;
    const int R = b->R, C = hp->n_embd, F = hp->n_ff;
    const int Q = hp->n_head * hp->head_dim, KV = hp->n_head_kv * hp->head_dim;
    static const collm_llm_layer_weights none;
    if (!g) g = &none;
    // Rows the gradient runs through: every row, or the bwd_rows (compact:
    // row i of d_out, d_x and the scratch is packed row bwd_rows[i]). Query
    // rows of the last layer (q_rows) are always all of them.
    const int32_t *bw = b->bwd_rows;
    const int A = bw ? b->n_bwd : R;
    const int N = b->q_rows ? b->n_q : A;               // rows of the feed-forward and Wo backward
    const int32_t *in_rows = b->q_rows ? NULL : bw;     // where those rows' activations are (NULL: same row)

    // feed-forward (the residual passes d_out through to x_mid: d_out becomes d_mid)
    int fused = ffn_backward_fused(b, a, s, d_out, in_rows, N, g->w_down);
    if (fused < 0) return fused;
    collm_ops_dw gate = {0}; // gate|up's weight gradient, run with Wo's backward product below
    if (fused) { // d_gu and d_xn written, W_down's gradient added
        collm_ops_dw_plan(&gate, g->w_gate, s->d_gu, a->xn2, N, C, 2 * F, b->pool);
    } else {
        MMB(s->d_h, g->w_down, NULL, d_out, a->h, w->w_down, COLLM_W_DOWN, 1, N, F, C);
        lora_backward(b, a, COLLM_LORA_DOWN, a->h, N, d_out, C, s->d_h, s->d_xa);
        rows_job sw = {.kind = ROWS_SWIGLU_BWD, .y = s->d_gu, .dy = s->d_h, .x = a->gu, .idx = in_rows, .width = F};
        run_rows(b->pool, &sw, N);
        MMB(s->d_xn, g->w_gate, NULL, s->d_gu, a->xn2, w->w_gate, COLLM_W_GATE, 2, N, C, 2 * F); // gate|up stacked
        lora_backward(b, a, COLLM_LORA_GATE, a->xn2, N, s->d_gu, 2 * F, s->d_xn, s->d_xa);
        lora_backward(b, a, COLLM_LORA_UP, a->xn2, N, s->d_gu + F, 2 * F, s->d_xn, s->d_xa);
    }
    float *d_mid = d_out;
    par_rmsnorm_backward(b, d_mid, g->ffn_norm, s->d_xn, a->x_mid, w->ffn_norm, a->rstd2, in_rows, N, s->dw_parts);

    // attention (Wo's backward with gate|up's weight gradient in one job, on F32 weights)
    if (gate.parts && w->wo) {
        collm_ops_matmul_backward_set_with(s->d_attn, g->wo, NULL, d_mid, a->attn, w->wo, N, Q, C, &gate, 1, b->pool);
    } else {
        collm_ops_dw_run_all(&gate, 1, b->pool);
        MMB(s->d_attn, g->wo, NULL, d_mid, a->attn, w->wo, COLLM_W_O, 1, N, Q, C);
    }
    lora_backward(b, a, COLLM_LORA_O, a->attn, N, d_mid, C, s->d_attn, s->d_xa);
    const float *d_attn = s->d_attn;
    if (in_rows) {
        // the attention works on packed rows: scatter (d_qkv as (R, Q) scratch, zero elsewhere)
        par_zero(b->pool, s->d_qkv, R, Q);
        for (int i = 0; i < A; i++)
            memcpy(s->d_qkv + (int64_t)bw[i] * Q, s->d_attn + (int64_t)i * Q, (size_t)Q * sizeof(float));
        d_attn = s->d_qkv;
    }
    const int n_q = b->q_rows ? b->n_q : R; // d_q rows (packed)
    par_zero(b->pool, s->d_q, n_q, Q);
    par_zero(b->pool, s->d_k, R, KV);
    if (b->fold_v) { // the values are xn1: their gradient is d_xv (R, C), through d_z
        fold_v_backward(b, a, d_attn, s->d_z, g->wv, g->bv);
        par_zero(b->pool, s->d_xv, R, C);
        b->attend_backward(b->attend_ctx, b, a, s->d_z, s->d_q, s->d_k, s->d_xv);
    } else {
        par_zero(b->pool, s->d_v, R, KV);
        b->attend_backward(b->attend_ctx, b, a, d_attn, s->d_q, s->d_k, s->d_v);
    }
    par_rope(b, s->d_q, b->rope_row_q, n_q, hp->n_head, 1);
    par_rope(b, s->d_k, b->rope_row, R, hp->n_head_kv, 1);
    if (!b->q_rows) { // (the MMB below sets d_xn (A, C))
        // one GEMM over stacked q|k|v: dx = d_qkv · W, dW += d_qkv^T · xn1 (at the backward rows)
        par_split(b, 1, s->d_qkv, s->d_q, Q, s->d_k, KV, s->d_v, KV, bw, A);
        MMB(s->d_xn, g->wq, g->bq, s->d_qkv, a->xn1, w->wq, COLLM_W_Q, 3, A, C, Q + 2 * KV);
        lora_backward(b, a, COLLM_LORA_Q, a->xn1, R, s->d_q, Q, s->d_xn, s->d_xa);
        lora_backward(b, a, COLLM_LORA_K, a->xn1, R, s->d_k, KV, s->d_xn, s->d_xa);
        lora_backward(b, a, COLLM_LORA_V, a->xn1, R, s->d_v, KV, s->d_xn, s->d_xa);
        if (d_x != d_mid) memcpy(d_x, d_mid, (size_t)A * C * sizeof(float)); // the residual
    } else if (b->fold_v) {
        // keys: dx = d_k · Wk, dW += d_k^T · xn1 (at the backward rows); then the values' part
        const float *d_k = s->d_k;
        if (bw) {
            for (int i = 0; i < A; i++)
                memcpy(s->d_qkv + (int64_t)i * KV, s->d_k + (int64_t)bw[i] * KV, (size_t)KV * sizeof(float));
            d_k = s->d_qkv;
        }
        MMB(s->d_xn, g->wk, g->bk, d_k, a->xn1, w->wk, COLLM_W_K, 1, A, C, KV);
        lora_backward(b, a, COLLM_LORA_K, a->xn1, R, s->d_k, KV, s->d_xn, s->d_xa);
        par_add(b, s->d_xn, s->d_xv, bw, A, C);
    } else {
        par_split(b, 1, s->d_qkv, s->d_k, KV, s->d_v, KV, NULL, 0, bw, A);
        MMB(s->d_xn, g->wk, g->bk, s->d_qkv, a->xn1, w->wk, COLLM_W_K, 2, A, C, 2 * KV);
        lora_backward(b, a, COLLM_LORA_K, a->xn1, R, s->d_k, KV, s->d_xn, s->d_xa);
        lora_backward(b, a, COLLM_LORA_V, a->xn1, R, s->d_v, KV, s->d_xn, s->d_xa);
    }
    if (b->q_rows) {
        MMB(s->d_q_in, g->wq, g->bq, s->d_q, a->q_in, w->wq, COLLM_W_Q, 1, N, C, Q);
        lora_backward(b, a, COLLM_LORA_Q, a->q_in, N, s->d_q, Q, s->d_q_in, s->d_xa);
        // back at the query rows: the query path into d_xn, the residual into d_x
        par_zero(b->pool, d_x, A, C);
        for (int j = 0; j < N; j++) {
            int64_t r = bw ? b->bwd_q[j] : b->q_rows[j];
            if (r < 0) continue; // not a backward row: its gradient reaches nothing that trains
            collm_ops_axpy(s->d_xn + r * C, 1.0f, s->d_q_in + (int64_t)j * C, C);
            collm_ops_axpy(d_x + r * C, 1.0f, d_mid + (int64_t)j * C, C);
        }
    }
    par_rmsnorm_backward(b, d_x, g->attn_norm, s->d_xn, a->x, w->attn_norm, a->rstd1, bw, A, s->dw_parts);
    return COLLM_OK;
}
