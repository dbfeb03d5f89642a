// Training forward/backward of the transformer (see include/collm/llm_train.h).
// Shapes: R = rows of the packed batch, C = n_embd, Q = n_head·hd,
// KV = n_head_kv·hd, F = n_ff. One function per layer part, forward and
// backward side by side.
#include "llm/llm_train.h"

#include "collm/error.h"
#include "core/ops.h"
#include "llm/model_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

// Activations of one layer kept for backward.
typedef struct {
    float *x;       // (R, C) layer input (residual stream)
    float *xn1;     // (R, C) attn RMSNorm output
    float *rstd1;   // (R)
    float *q;       // (R, Q) after RoPE
    float *k;       // (R, KV) after RoPE
    float *v;       // (R, KV)
    float *att;     // Σ_s n_head·T_s² softmax probabilities, prompt after prompt
    float *attn;    // (R, Q) attention output (input of wo)
    float *x_mid;   // (R, C) residual after attention
    float *xn2;     // (R, C)
    float *rstd2;   // (R)
    float *gate;    // (R, F)
    float *up;      // (R, F)
    float *h;       // (R, F) silu(gate)·up (input of w_down)
    // LoRA inputs after dropout and x·A^T, per target (NULL when not adapted)
    float *lora_x_drop[COLLM_LORA_N_TARGETS];
    float *lora_xa[COLLM_LORA_N_TARGETS];
} layer_acts;

struct collm_llm_trainer {
    collm_llm_model *model;
    collm_lora_adapter *lora;
    int full_finetune;
    int max_rows, max_seq_len;
    collm_pool *pool;
    float *model_grad; // (n_params) when full_finetune

    layer_acts *acts; // (n_layer)
    float *x_final;   // (n_seq, C) output of the last layer, at each prompt's last row
    // The last layer only needs its output at each prompt's last row: keys
    // and values run over every row, queries, attention output and the
    // feed-forward over those n_seq rows only (about a fifth of the FLOPs
    // of a 4-layer model saved, forward and backward).
    float *q_in;      // (n_seq, C) attn RMSNorm output gathered at last rows
    float *d_q_in;    // (n_seq, C)
    float *d_last;    // (n_seq, C) gradient at the last rows of the last layer
    int32_t *last_pos;   // (n_seq) position of each prompt's last row
    int64_t *last_att;   // (n_seq + 1) offsets of the last layer's attention rows
    // per-prompt bookkeeping of the current batch
    int n_seq, n_rows;
    int32_t *seq_len;   // (max_rows) copies
    int64_t *row_start; // (max_rows + 1)
    int64_t *att_start; // (max_rows + 1) offsets into att
    int32_t *pos;       // (R) position of each row inside its prompt
    int32_t *tokens;    // (R)
    int32_t yes_id;
    float *last_norm;   // (n_seq, C) final RMSNorm output at last rows
    float *last_rstd;   // (n_seq)
    int n_slots;
    int32_t *slot_rows; // (max_rows)
    int dropout_used;

    // gradient scratch
    float *d_x;    // (R, C) gradient of the residual stream
    float *d_xn;   // (R, C)
    float *d_q;    // (R, Q)
    float *d_k;    // (R, KV)
    float *d_v;    // (R, KV)
    float *d_attn; // (R, Q)
    float *d_gate; // (R, F)
    float *d_up;   // (R, F)
    float *d_h;    // (R, F)
    float *d_xa;   // (R, rank) LoRA scratch
    float *dw_parts; // (threads, max(C, F)) per-thread RMSNorm weight gradients
    float *att_scratch; // (threads, collm_ops_attention_scratch(max_seq_len)) attention backward rows
    float *storage;
};

float *collm_llm_trainer_model_grad(collm_llm_trainer *tr) { return tr->model_grad; }

float *collm_llm_trainer_grad_of(collm_llm_trainer *tr, const float *weight) {
    if (!tr->model_grad || !weight) return NULL;
    ptrdiff_t off = weight - tr->model->params;
    if (off < 0 || off >= tr->model->n_params) return NULL;
    return tr->model_grad + off;
}

// ---------------------------------------------------------------------------
// allocation

collm_llm_trainer *collm_llm_trainer_create(collm_llm_model *model, collm_lora_adapter *lora, int full_finetune, int max_rows,
                                int max_seq_len, collm_pool *pool) {
    const collm_llm_hparams *hp = &model->hp;
    if (max_rows < 1 || max_seq_len < 1 || max_seq_len > max_rows) {
        collm_error(COLLM_ERR_ARG, "trainer: bad sizes max_rows=%d max_seq_len=%d", max_rows, max_seq_len);
        return NULL;
    }
    if (lora && lora->n_layer != hp->n_layer) {
        collm_error(COLLM_ERR_ARG, "trainer: LoRA has %d layers, model %d", lora->n_layer, hp->n_layer);
        return NULL;
    }
    collm_llm_trainer *tr = collm_calloc(1, sizeof *tr);
    if (!tr) return NULL;
    tr->model = model;
    tr->lora = lora;
    tr->full_finetune = full_finetune;
    tr->max_rows = max_rows;
    tr->max_seq_len = max_seq_len;
    tr->pool = pool;

    int64_t R = max_rows, C = hp->n_embd, Q = (int64_t)hp->n_head * hp->head_dim,
            KV = (int64_t)hp->n_head_kv * hp->head_dim, F = hp->n_ff;
    // attention probabilities: Σ n_head·T_s² <= n_head·max_seq_len·R
    int64_t att_floats = (int64_t)hp->n_head * max_seq_len * R;
    int64_t rank = lora ? lora->rank : 0;
    int64_t lora_floats = 0;
    if (lora)
        for (int t = 0; t < COLLM_LORA_N_TARGETS; t++) {
            collm_lora_pair *p = collm_lora_get(lora, 0, (collm_lora_target)t);
            if (!p) continue;
            lora_floats += R * rank + (lora->dropout > 0 ? R * p->in : 0);
        }
    int64_t per_layer = 4 * R * C + 2 * R + 2 * R * Q + 2 * R * KV + att_floats + 3 * R * F + lora_floats;
    int64_t scratch = R * C /*x_final*/ + 3 * R * C /*q_in, d_q_in, d_last*/ + 2 * R * C + 2 * R * Q + 2 * R * KV + 3 * R * F + R * (rank ? rank : 1) +
                      R * C /*last_norm*/ + R /*last_rstd*/;
    int64_t total = per_layer * hp->n_layer + scratch;
    tr->storage = collm_malloc((size_t)total * sizeof(float));
    tr->acts = collm_calloc((size_t)hp->n_layer, sizeof *tr->acts);
    tr->seq_len = collm_calloc((size_t)R, sizeof(int32_t));
    tr->row_start = collm_calloc((size_t)R + 1, sizeof(int64_t));
    tr->att_start = collm_calloc((size_t)R + 1, sizeof(int64_t));
    tr->pos = collm_calloc((size_t)R, sizeof(int32_t));
    tr->tokens = collm_calloc((size_t)R, sizeof(int32_t));
    tr->slot_rows = collm_calloc((size_t)R, sizeof(int32_t));
    tr->dw_parts = collm_calloc((size_t)collm_pool_size(pool) * (size_t)(C > F ? C : F), sizeof(float));
    tr->last_pos = collm_calloc((size_t)R, sizeof(int32_t));
    tr->last_att = collm_calloc((size_t)R + 1, sizeof(int64_t));
    tr->att_scratch = collm_malloc((size_t)collm_pool_size(pool) * (size_t)collm_ops_attention_scratch(max_seq_len) *
                                   sizeof(float));
    if (full_finetune) tr->model_grad = collm_calloc((size_t)model->n_params, sizeof(float));
    if (!tr->storage || !tr->acts || !tr->seq_len || !tr->row_start || !tr->att_start || !tr->pos || !tr->tokens ||
        !tr->slot_rows || !tr->dw_parts || !tr->last_pos || !tr->last_att || !tr->att_scratch || (full_finetune && !tr->model_grad)) {
        collm_llm_trainer_free(tr);
        collm_error(COLLM_ERR_NOMEM, "trainer: out of memory (%.1f MB of activations)", total * 4.0 / 1e6);
        return NULL;
    }
    // touch everything once now: page faults are expensive, do them up front
    memset(tr->storage, 0, (size_t)total * sizeof(float));
    float *s = tr->storage;
    for (int l = 0; l < hp->n_layer; l++) {
        layer_acts *a = &tr->acts[l];
        a->x = s, s += R * C;
        a->xn1 = s, s += R * C;
        a->rstd1 = s, s += R;
        a->q = s, s += R * Q;
        a->k = s, s += R * KV;
        a->v = s, s += R * KV;
        a->att = s, s += att_floats;
        a->attn = s, s += R * Q;
        a->x_mid = s, s += R * C;
        a->xn2 = s, s += R * C;
        a->rstd2 = s, s += R;
        a->gate = s, s += R * F;
        a->up = s, s += R * F;
        a->h = s, s += R * F;
        if (lora)
            for (int t = 0; t < COLLM_LORA_N_TARGETS; t++) {
                collm_lora_pair *p = collm_lora_get(lora, l, (collm_lora_target)t);
                if (!p) continue;
                a->lora_xa[t] = s, s += R * rank;
                if (lora->dropout > 0) a->lora_x_drop[t] = s, s += R * p->in;
            }
    }
    tr->x_final = s, s += R * C;
    tr->q_in = s, s += R * C;
    tr->d_q_in = s, s += R * C;
    tr->d_last = s, s += R * C;
    tr->d_x = s, s += R * C;
    tr->d_xn = s, s += R * C;
    tr->d_q = s, s += R * Q;
    tr->d_attn = s, s += R * Q;
    tr->d_k = s, s += R * KV;
    tr->d_v = s, s += R * KV;
    tr->d_gate = s, s += R * F;
    tr->d_up = s, s += R * F;
    tr->d_h = s, s += R * F;
    tr->d_xa = s, s += R * (rank ? rank : 1);
    tr->last_norm = s, s += R * C;
    tr->last_rstd = s, s += R;
    return tr;
}

void collm_llm_trainer_free(collm_llm_trainer *tr) {
    if (!tr) return;
    free(tr->storage);
    free(tr->acts);
    free(tr->seq_len);
    free(tr->row_start);
    free(tr->att_start);
    free(tr->pos);
    free(tr->tokens);
    free(tr->slot_rows);
    free(tr->dw_parts);
    free(tr->last_pos);
    free(tr->last_att);
    free(tr->att_scratch);
    free(tr->model_grad);
    free(tr);
}

// ---------------------------------------------------------------------------
// row-parallel elementwise kernels: the ops are single-threaded; here each
// pool thread takes a contiguous block of rows (fixed partition per thread
// count, so results are deterministic for a given count).

typedef enum { ROWS_RMSNORM_FWD, ROWS_RMSNORM_BWD, ROWS_SWIGLU_FWD, ROWS_SWIGLU_BWD, ROWS_ROPE_FWD, ROWS_ROPE_BWD,
               ROWS_AXPY, ROWS_ZERO } rows_kind;

typedef struct {
    rows_kind kind;
    float *y, *y2, *rstd, *dw_parts; // dw_parts: (threads, width) partial weight gradients
    const float *x, *x2, *w, *dy, *rstd_in;
    const int32_t *pos;
    int width, n_head;
    float eps;
    const collm_llm_hparams *hp;
} rows_job;

static void rows_task(void *ctx, int64_t begin, int64_t end, int thread_index) {
    const rows_job *j = ctx;
    int64_t n = end - begin, W = j->width;
    switch (j->kind) {
    case ROWS_RMSNORM_FWD:
        collm_ops_rmsnorm_forward(j->y + begin * W, j->rstd + begin, j->x + begin * W, j->w, (int)n, (int)W, j->eps);
        break;
    case ROWS_RMSNORM_BWD:
        collm_ops_rmsnorm_backward(j->y + begin * W, j->dw_parts ? j->dw_parts + thread_index * W : NULL, j->dy + begin * W,
                             j->x + begin * W, j->w, j->rstd_in + begin, (int)n, (int)W);
        break;
    case ROWS_SWIGLU_FWD: collm_ops_swiglu_forward(j->y + begin * W, j->x + begin * W, j->x2 + begin * W, n * W); break;
    case ROWS_SWIGLU_BWD:
        collm_ops_swiglu_backward(j->y + begin * W, j->y2 + begin * W, j->dy + begin * W, j->x + begin * W,
                            j->x2 + begin * W, n * W);
        break;
    case ROWS_ROPE_FWD:
        collm_ops_rope_forward(j->y + begin * W, j->pos + begin, (int)n, j->n_head, j->hp->head_dim, j->hp->n_rot,
                         j->hp->rope_base, j->hp->rope_neox);
        break;
    case ROWS_ROPE_BWD:
        collm_ops_rope_backward(j->y + begin * W, j->pos + begin, (int)n, j->n_head, j->hp->head_dim, j->hp->n_rot,
                          j->hp->rope_base, j->hp->rope_neox);
        break;
    case ROWS_AXPY: collm_ops_axpy(j->y + begin * W, 1.0f, j->x + begin * W, n * W); break;
    case ROWS_ZERO: memset(j->y + begin * W, 0, (size_t)(n * W) * sizeof(float)); break;
    }
}

static void run_rows(collm_llm_trainer *tr, rows_job *j, int64_t rows) {
    collm_pool_for(tr->pool, rows, 16, rows_task, j);
}

// y (T, C) = rmsnorm(x) ⊙ w
static void par_rmsnorm_forward(collm_llm_trainer *tr, float *y, float *rstd, const float *x, const float *w, int T, int C) {
    rows_job j = {.kind = ROWS_RMSNORM_FWD, .y = y, .rstd = rstd, .x = x, .w = w, .width = C, .eps = tr->model->hp.rms_eps};
    run_rows(tr, &j, T);
}

// dx (T, C) += ...; dw (C) += Σ over rows, summed per thread then in thread order
static void par_rmsnorm_backward(collm_llm_trainer *tr, float *dx, float *dw, const float *dy, const float *x,
                                 const float *w, const float *rstd, int T, int C) {
    int threads = collm_pool_size(tr->pool);
    if (dw) memset(tr->dw_parts, 0, (size_t)threads * C * sizeof(float));
    rows_job j = {.kind = ROWS_RMSNORM_BWD, .y = dx, .dw_parts = dw ? tr->dw_parts : NULL, .dy = dy, .x = x, .w = w,
                  .rstd_in = rstd, .width = C};
    run_rows(tr, &j, T);
    for (int t = 0; dw && t < threads; t++) collm_ops_axpy(dw, 1.0f, tr->dw_parts + (int64_t)t * C, C);
}

static void par_swiglu_forward(collm_llm_trainer *tr, float *h, const float *g, const float *u, int T, int F) {
    rows_job j = {.kind = ROWS_SWIGLU_FWD, .y = h, .x = g, .x2 = u, .width = F};
    run_rows(tr, &j, T);
}

static void par_swiglu_backward(collm_llm_trainer *tr, float *dg, float *du, const float *dh, const float *g, const float *u,
                                int T, int F) {
    rows_job j = {.kind = ROWS_SWIGLU_BWD, .y = dg, .y2 = du, .dy = dh, .x = g, .x2 = u, .width = F};
    run_rows(tr, &j, T);
}

static void par_rope(collm_llm_trainer *tr, int backward, float *x, const int32_t *pos, int T, int n_head) {
    const collm_llm_hparams *hp = &tr->model->hp;
    rows_job j = {.kind = backward ? ROWS_ROPE_BWD : ROWS_ROPE_FWD, .y = x, .pos = pos, .n_head = n_head,
                  .width = n_head * hp->head_dim, .hp = hp};
    run_rows(tr, &j, T);
}

static void par_axpy(collm_llm_trainer *tr, float *y, const float *x, int T, int C) {
    rows_job j = {.kind = ROWS_AXPY, .y = y, .x = x, .width = C};
    run_rows(tr, &j, T);
}

static void par_zero(collm_llm_trainer *tr, float *y, int T, int C) {
    rows_job j = {.kind = ROWS_ZERO, .y = y, .width = C};
    run_rows(tr, &j, T);
}

// ---------------------------------------------------------------------------
// projections: y = x·W^T + b (+ LoRA)

static void projection_forward(collm_llm_trainer *tr, int layer, collm_lora_target target, const float *x, int R, int in, int out,
                               const float *w, const float *bias, float *y, collm_rng *dropout_rng) {
    collm_ops_matmul_forward(y, x, w, bias, R, in, out);
    collm_lora_pair *p = collm_lora_get(tr->lora, layer, target);
    if (!p) return;
    layer_acts *a = &tr->acts[layer];
    collm_lora_forward(p, collm_lora_scale(tr->lora), tr->lora->dropout, x, R, a->lora_x_drop[target], a->lora_xa[target], y,
                 dropout_rng);
}

// dx (R, in) += dy·W (+ adapter path); dW, db accumulate when fine-tuning.
static void projection_backward(collm_llm_trainer *tr, int layer, collm_lora_target target, const float *x, int R, int in, int out,
                                const float *w, const float *bias, const float *dy, float *dx) {
    float *dw = collm_llm_trainer_grad_of(tr, w);
    float *db = collm_llm_trainer_grad_of(tr, bias);
    collm_ops_matmul_backward(dx, dw, db, dy, x, w, R, in, out);
    collm_lora_pair *p = collm_lora_get(tr->lora, layer, target);
    if (!p) return;
    layer_acts *a = &tr->acts[layer];
    int dropped = tr->dropout_used && tr->lora->dropout > 0;
    const float *xd = dropped ? a->lora_x_drop[target] : x;
    collm_lora_backward(p, collm_lora_scale(tr->lora), tr->lora->dropout, xd, dropped ? xd : NULL, R, a->lora_xa[target], dy, dx,
                  tr->d_xa);
}

// ---------------------------------------------------------------------------
// attention over the packed prompts, parallel over prompts

typedef struct {
    collm_llm_trainer *tr;
    layer_acts *a;
    const float *d_attn; // backward only
    int last_only;       // the last layer: one query per prompt, its last row
} attention_job;

// Where prompt s's queries live and which keys they see: every row of the
// prompt (causal, n_past 0), or only its last row (n_past = len - 1).
static void attention_geometry(const attention_job *job, int64_t s, int64_t *q_row, int *T, int *n_past,
                               int64_t *att_offset) {
    const collm_llm_trainer *tr = job->tr;
    int len = tr->seq_len[s];
    *q_row = job->last_only ? s : tr->row_start[s];
    *T = job->last_only ? 1 : len;
    *n_past = job->last_only ? len - 1 : 0;
    *att_offset = job->last_only ? tr->last_att[s] : tr->att_start[s];
}

// Attention never fails here: the forward keeps att (no scratch), the backward
// uses the trainer's scratch row of this thread.
static void attention_forward_task(void *ctx_, int64_t begin, int64_t end, int thread_index) {
    (void)thread_index;
    attention_job *job = ctx_;
    collm_llm_trainer *tr = job->tr;
    const collm_llm_hparams *hp = &tr->model->hp;
    int64_t Q = (int64_t)hp->n_head * hp->head_dim, KV = (int64_t)hp->n_head_kv * hp->head_dim;
    for (int64_t s = begin; s < end; s++) {
        int64_t r0 = tr->row_start[s], q_row, att;
        int T, n_past;
        attention_geometry(job, s, &q_row, &T, &n_past, &att);
        collm_ops_attention_forward(job->a->attn + q_row * Q, job->a->att + att, job->a->q + q_row * Q, job->a->k + r0 * KV,
                              job->a->v + r0 * KV, T, n_past, hp->n_head, hp->n_head_kv, hp->head_dim, NULL, NULL);
    }
}

static void attention_backward_task(void *ctx_, int64_t begin, int64_t end, int thread_index) {
    attention_job *job = ctx_;
    collm_llm_trainer *tr = job->tr;
    const collm_llm_hparams *hp = &tr->model->hp;
    int64_t Q = (int64_t)hp->n_head * hp->head_dim, KV = (int64_t)hp->n_head_kv * hp->head_dim;
    for (int64_t s = begin; s < end; s++) {
        int64_t r0 = tr->row_start[s], q_row, att;
        int T, n_past;
        attention_geometry(job, s, &q_row, &T, &n_past, &att);
        collm_ops_attention_backward(tr->d_q + q_row * Q, tr->d_k + r0 * KV, tr->d_v + r0 * KV, job->d_attn + q_row * Q,
                               job->a->att + att, job->a->q + q_row * Q, job->a->k + r0 * KV, job->a->v + r0 * KV, T,
                               n_past, hp->n_head, hp->n_head_kv, hp->head_dim, NULL,
                               tr->att_scratch + thread_index * collm_ops_attention_scratch(tr->max_seq_len));
    }
}

// ---------------------------------------------------------------------------
// one transformer block

static void block_forward(collm_llm_trainer *tr, int l, float *x_out, collm_rng *dropout_rng) {
    const collm_llm_hparams *hp = &tr->model->hp;
    const collm_llm_layer_weights *w = &tr->model->layers[l];
    layer_acts *a = &tr->acts[l];
    int R = tr->n_rows, C = hp->n_embd, F = hp->n_ff;
    int Q = hp->n_head * hp->head_dim, KV = hp->n_head_kv * hp->head_dim;

    // attention: x_mid = x + wo · attention(rope(q), rope(k), v)
    par_rmsnorm_forward(tr, a->xn1, a->rstd1, a->x, w->attn_norm, R, C);
    projection_forward(tr, l, COLLM_LORA_Q, a->xn1, R, C, Q, w->wq, w->bq, a->q, dropout_rng);
    projection_forward(tr, l, COLLM_LORA_K, a->xn1, R, C, KV, w->wk, w->bk, a->k, dropout_rng);
    projection_forward(tr, l, COLLM_LORA_V, a->xn1, R, C, KV, w->wv, w->bv, a->v, dropout_rng);
    par_rope(tr, 0, a->q, tr->pos, R, hp->n_head);
    par_rope(tr, 0, a->k, tr->pos, R, hp->n_head_kv);
    attention_job job = {tr, a, NULL, 0};
    collm_pool_for(tr->pool, tr->n_seq, 1, attention_forward_task, &job);
    projection_forward(tr, l, COLLM_LORA_O, a->attn, R, Q, C, w->wo, NULL, a->x_mid, dropout_rng);
    par_axpy(tr, a->x_mid, a->x, R, C);

    // feed-forward: x_out = x_mid + w_down · (silu(w_gate·xn2) ⊙ w_up·xn2)
    par_rmsnorm_forward(tr, a->xn2, a->rstd2, a->x_mid, w->ffn_norm, R, C);
    projection_forward(tr, l, COLLM_LORA_GATE, a->xn2, R, C, F, w->w_gate, NULL, a->gate, dropout_rng);
    projection_forward(tr, l, COLLM_LORA_UP, a->xn2, R, C, F, w->w_up, NULL, a->up, dropout_rng);
    par_swiglu_forward(tr, a->h, a->gate, a->up, R, F);
    projection_forward(tr, l, COLLM_LORA_DOWN, a->h, R, F, C, w->w_down, NULL, x_out, dropout_rng);
    par_axpy(tr, x_out, a->x_mid, R, C);
}

// d_x (R, C) holds ∂L/∂x_out on entry and ∂L/∂x (the block input) on exit.
static void block_backward(collm_llm_trainer *tr, int l) {
    const collm_llm_hparams *hp = &tr->model->hp;
    const collm_llm_layer_weights *w = &tr->model->layers[l];
    layer_acts *a = &tr->acts[l];
    int R = tr->n_rows, C = hp->n_embd, F = hp->n_ff;
    int Q = hp->n_head * hp->head_dim, KV = hp->n_head_kv * hp->head_dim;

    // feed-forward (the residual passes d_x through unchanged)
    par_zero(tr, tr->d_h, R, F);
    projection_backward(tr, l, COLLM_LORA_DOWN, a->h, R, F, C, w->w_down, NULL, tr->d_x, tr->d_h);
    par_zero(tr, tr->d_gate, R, F);
    par_zero(tr, tr->d_up, R, F);
    par_swiglu_backward(tr, tr->d_gate, tr->d_up, tr->d_h, a->gate, a->up, R, F);
    par_zero(tr, tr->d_xn, R, C);
    projection_backward(tr, l, COLLM_LORA_GATE, a->xn2, R, C, F, w->w_gate, NULL, tr->d_gate, tr->d_xn);
    projection_backward(tr, l, COLLM_LORA_UP, a->xn2, R, C, F, w->w_up, NULL, tr->d_up, tr->d_xn);
    par_rmsnorm_backward(tr, tr->d_x, collm_llm_trainer_grad_of(tr, w->ffn_norm), tr->d_xn, a->x_mid, w->ffn_norm, a->rstd2,
                         R, C);

    // attention
    par_zero(tr, tr->d_attn, R, Q);
    projection_backward(tr, l, COLLM_LORA_O, a->attn, R, Q, C, w->wo, NULL, tr->d_x, tr->d_attn);
    par_zero(tr, tr->d_q, R, Q);
    par_zero(tr, tr->d_k, R, KV);
    par_zero(tr, tr->d_v, R, KV);
    attention_job job = {tr, a, tr->d_attn, 0};
    collm_pool_for(tr->pool, tr->n_seq, 1, attention_backward_task, &job);
    par_rope(tr, 1, tr->d_q, tr->pos, R, hp->n_head);
    par_rope(tr, 1, tr->d_k, tr->pos, R, hp->n_head_kv);
    par_zero(tr, tr->d_xn, R, C);
    projection_backward(tr, l, COLLM_LORA_Q, a->xn1, R, C, Q, w->wq, w->bq, tr->d_q, tr->d_xn);
    projection_backward(tr, l, COLLM_LORA_K, a->xn1, R, C, KV, w->wk, w->bk, tr->d_k, tr->d_xn);
    projection_backward(tr, l, COLLM_LORA_V, a->xn1, R, C, KV, w->wv, w->bv, tr->d_v, tr->d_xn);
    par_rmsnorm_backward(tr, tr->d_x, collm_llm_trainer_grad_of(tr, w->attn_norm), tr->d_xn, a->x, w->attn_norm, a->rstd1, R,
                         C);
}

// The last block, evaluated at each prompt's last row only (n rows = n_seq);
// writes x_final (n_seq, C). Keys and values still cover every row.
static void last_block_forward(collm_llm_trainer *tr, int l, collm_rng *dropout_rng) {
    const collm_llm_hparams *hp = &tr->model->hp;
    const collm_llm_layer_weights *w = &tr->model->layers[l];
    layer_acts *a = &tr->acts[l];
    int R = tr->n_rows, N = tr->n_seq, C = hp->n_embd, F = hp->n_ff;
    int Q = hp->n_head * hp->head_dim, KV = hp->n_head_kv * hp->head_dim;

    par_rmsnorm_forward(tr, a->xn1, a->rstd1, a->x, w->attn_norm, R, C);
    projection_forward(tr, l, COLLM_LORA_K, a->xn1, R, C, KV, w->wk, w->bk, a->k, dropout_rng);
    projection_forward(tr, l, COLLM_LORA_V, a->xn1, R, C, KV, w->wv, w->bv, a->v, dropout_rng);
    par_rope(tr, 0, a->k, tr->pos, R, hp->n_head_kv);
    for (int s = 0; s < N; s++)
        memcpy(tr->q_in + (int64_t)s * C, a->xn1 + (tr->row_start[s + 1] - 1) * C, (size_t)C * sizeof(float));
    projection_forward(tr, l, COLLM_LORA_Q, tr->q_in, N, C, Q, w->wq, w->bq, a->q, dropout_rng); // (N, Q)
    collm_ops_rope_forward(a->q, tr->last_pos, N, hp->n_head, hp->head_dim, hp->n_rot, hp->rope_base, hp->rope_neox);
    attention_job job = {tr, a, NULL, 1};
    collm_pool_for(tr->pool, N, 1, attention_forward_task, &job);
    projection_forward(tr, l, COLLM_LORA_O, a->attn, N, Q, C, w->wo, NULL, a->x_mid, dropout_rng); // (N, C)
    for (int s = 0; s < N; s++) collm_ops_axpy(a->x_mid + (int64_t)s * C, 1.0f, a->x + (tr->row_start[s + 1] - 1) * C, C);

    collm_ops_rmsnorm_forward(a->xn2, a->rstd2, a->x_mid, w->ffn_norm, N, C, hp->rms_eps);
    projection_forward(tr, l, COLLM_LORA_GATE, a->xn2, N, C, F, w->w_gate, NULL, a->gate, dropout_rng);
    projection_forward(tr, l, COLLM_LORA_UP, a->xn2, N, C, F, w->w_up, NULL, a->up, dropout_rng);
    collm_ops_swiglu_forward(a->h, a->gate, a->up, (int64_t)N * F);
    projection_forward(tr, l, COLLM_LORA_DOWN, a->h, N, F, C, w->w_down, NULL, tr->x_final, dropout_rng);
    collm_ops_axpy(tr->x_final, 1.0f, a->x_mid, (int64_t)N * C);
}

// d_last (n_seq, C) holds ∂L/∂x_final on entry; d_x (R, C) receives ∂L/∂x.
static void last_block_backward(collm_llm_trainer *tr, int l) {
    const collm_llm_hparams *hp = &tr->model->hp;
    const collm_llm_layer_weights *w = &tr->model->layers[l];
    layer_acts *a = &tr->acts[l];
    int R = tr->n_rows, N = tr->n_seq, C = hp->n_embd, F = hp->n_ff;
    int Q = hp->n_head * hp->head_dim, KV = hp->n_head_kv * hp->head_dim;
    size_t nc = (size_t)N * C * sizeof(float), nf = (size_t)N * F * sizeof(float);
    float *d_mid = tr->d_last; // the residual passes the gradient through to x_mid

    memset(tr->d_h, 0, nf);
    projection_backward(tr, l, COLLM_LORA_DOWN, a->h, N, F, C, w->w_down, NULL, d_mid, tr->d_h);
    memset(tr->d_gate, 0, nf);
    memset(tr->d_up, 0, nf);
    collm_ops_swiglu_backward(tr->d_gate, tr->d_up, tr->d_h, a->gate, a->up, (int64_t)N * F);
    memset(tr->d_xn, 0, nc);
    projection_backward(tr, l, COLLM_LORA_GATE, a->xn2, N, C, F, w->w_gate, NULL, tr->d_gate, tr->d_xn);
    projection_backward(tr, l, COLLM_LORA_UP, a->xn2, N, C, F, w->w_up, NULL, tr->d_up, tr->d_xn);
    collm_ops_rmsnorm_backward(d_mid, collm_llm_trainer_grad_of(tr, w->ffn_norm), tr->d_xn, a->x_mid, w->ffn_norm, a->rstd2, N, C);

    memset(tr->d_attn, 0, (size_t)N * Q * sizeof(float));
    projection_backward(tr, l, COLLM_LORA_O, a->attn, N, Q, C, w->wo, NULL, d_mid, tr->d_attn);
    memset(tr->d_q, 0, (size_t)N * Q * sizeof(float));
    par_zero(tr, tr->d_k, R, KV);
    par_zero(tr, tr->d_v, R, KV);
    attention_job job = {tr, a, tr->d_attn, 1};
    collm_pool_for(tr->pool, N, 1, attention_backward_task, &job);
    collm_ops_rope_backward(tr->d_q, tr->last_pos, N, hp->n_head, hp->head_dim, hp->n_rot, hp->rope_base, hp->rope_neox);
    par_rope(tr, 1, tr->d_k, tr->pos, R, hp->n_head_kv);
    memset(tr->d_q_in, 0, nc);
    projection_backward(tr, l, COLLM_LORA_Q, tr->q_in, N, C, Q, w->wq, w->bq, tr->d_q, tr->d_q_in);
    par_zero(tr, tr->d_xn, R, C);
    projection_backward(tr, l, COLLM_LORA_K, a->xn1, R, C, KV, w->wk, w->bk, tr->d_k, tr->d_xn);
    projection_backward(tr, l, COLLM_LORA_V, a->xn1, R, C, KV, w->wv, w->bv, tr->d_v, tr->d_xn);
    // gradients at the last rows: the query path and the residual
    par_zero(tr, tr->d_x, R, C);
    for (int s = 0; s < N; s++) {
        int64_t r = tr->row_start[s + 1] - 1;
        collm_ops_axpy(tr->d_xn + r * C, 1.0f, tr->d_q_in + (int64_t)s * C, C);
        collm_ops_axpy(tr->d_x + r * C, 1.0f, d_mid + (int64_t)s * C, C);
    }
    par_rmsnorm_backward(tr, tr->d_x, collm_llm_trainer_grad_of(tr, w->attn_norm), tr->d_xn, a->x, w->attn_norm, a->rstd1, R,
                         C);
}

// ---------------------------------------------------------------------------
// the whole model

int collm_llm_trainer_forward(collm_llm_trainer *tr, const int32_t *tokens, const int32_t *seq_len, int n_seq,
                        const collm_llm_slot_rows *slots, int32_t yes_id, float *scores, collm_rng *dropout_rng) {
    const collm_llm_model *m = tr->model;
    const collm_llm_hparams *hp = &m->hp;
    int C = hp->n_embd;
    if (n_seq < 1) return collm_error(COLLM_ERR_ARG, "trainer: empty batch");
    if (yes_id < 0 || yes_id >= hp->n_vocab) return collm_error(COLLM_ERR_ARG, "trainer: answer token %d out of range", yes_id);
    int64_t rows = 0, att = 0;
    for (int s = 0; s < n_seq; s++) {
        if (seq_len[s] < 1 || seq_len[s] > tr->max_seq_len)
            return collm_error(COLLM_ERR_ARG, "trainer: prompt %d has %d tokens (limit %d)", s, seq_len[s],
                               tr->max_seq_len);
        rows += seq_len[s];
        if (rows > tr->max_rows)
            return collm_error(COLLM_ERR_ARG, "trainer: batch has more than %d rows", tr->max_rows);
        tr->seq_len[s] = seq_len[s];
        tr->row_start[s] = rows - seq_len[s];
        tr->att_start[s] = att;
        att += (int64_t)hp->n_head * seq_len[s] * seq_len[s];
    }
    tr->row_start[n_seq] = rows;
    int64_t last_att = 0;
    for (int s = 0; s < n_seq; s++) {
        tr->last_pos[s] = seq_len[s] - 1;
        tr->last_att[s] = last_att;
        last_att += (int64_t)hp->n_head * seq_len[s];
    }
    tr->last_att[n_seq] = last_att;
    tr->n_seq = n_seq;
    tr->n_rows = (int)rows;
    tr->yes_id = yes_id;
    tr->dropout_used = dropout_rng != NULL;
    for (int s = 0; s < n_seq; s++)
        for (int t = 0; t < seq_len[s]; t++) tr->pos[tr->row_start[s] + t] = t;

    // embeddings (R, C): token rows, then slot rows overwritten. tr->tokens
    // keeps the id of each token row and -1 at slot rows (no embedding
    // gradient there); -2 marks a row with no usable token yet.
    float *x0 = tr->acts[0].x;
    tr->n_slots = slots ? slots->n : 0;
    for (int64_t r = 0; r < rows; r++) {
        int32_t id = tokens ? tokens[r] : -2;
        tr->tokens[r] = id >= 0 && id < hp->n_vocab ? id : -2;
    }
    for (int i = 0; i < tr->n_slots; i++) {
        int32_t r = slots->rows[i];
        if (r < 0 || r >= rows) return collm_error(COLLM_ERR_ARG, "trainer: slot row %d outside the batch", r);
        tr->slot_rows[i] = r;
        tr->tokens[r] = -1;
        memcpy(x0 + (int64_t)r * C, slots->values + (int64_t)i * C, (size_t)C * sizeof(float));
    }
    for (int64_t r = 0; r < rows; r++) {
        if (tr->tokens[r] == -2)
            return collm_error(COLLM_ERR_ARG, "trainer: row %ld has token id %d (vocabulary has %d)", (long)r,
                               tokens ? tokens[r] : -1, hp->n_vocab);
        if (tr->tokens[r] >= 0)
            memcpy(x0 + r * C, m->token_embd + (int64_t)tr->tokens[r] * C, (size_t)C * sizeof(float));
    }

    for (int l = 0; l + 1 < hp->n_layer; l++) block_forward(tr, l, tr->acts[l + 1].x, dropout_rng);
    last_block_forward(tr, hp->n_layer - 1, dropout_rng);
    // final norm and the answer row, at each prompt's last row only
    const float *yes_row = m->output + (int64_t)yes_id * C;
    for (int s = 0; s < n_seq; s++) {
        collm_ops_rmsnorm_forward(tr->last_norm + (int64_t)s * C, tr->last_rstd + s, tr->x_final + (int64_t)s * C,
                            m->output_norm, 1, C, hp->rms_eps);
        scores[s] = collm_ops_dot(tr->last_norm + (int64_t)s * C, yes_row, C);
    }
    return COLLM_OK;
}

int collm_llm_trainer_backward(collm_llm_trainer *tr, const float *dscores, float *dslots) {
    const collm_llm_model *m = tr->model;
    const collm_llm_hparams *hp = &m->hp;
    int C = hp->n_embd, R = tr->n_rows;
    if (R == 0) return collm_error(COLLM_ERR_ARG, "trainer: backward before forward");
    // head: score_s = <rmsnorm(x_final_s), output[yes]>
    memset(tr->d_last, 0, (size_t)tr->n_seq * C * sizeof(float));
    const float *yes_row = m->output + (int64_t)tr->yes_id * C;
    float *d_yes_row = collm_llm_trainer_grad_of(tr, yes_row);
    float *d_out_norm = collm_llm_trainer_grad_of(tr, m->output_norm);
    float *d_norm = tr->d_xn; // (1, C) scratch
    for (int s = 0; s < tr->n_seq; s++) {
        for (int c = 0; c < C; c++) d_norm[c] = dscores[s] * yes_row[c];
        if (d_yes_row) collm_ops_axpy(d_yes_row, dscores[s], tr->last_norm + (int64_t)s * C, C);
        collm_ops_rmsnorm_backward(tr->d_last + (int64_t)s * C, d_out_norm, d_norm, tr->x_final + (int64_t)s * C,
                             m->output_norm, tr->last_rstd + s, 1, C);
    }
    last_block_backward(tr, hp->n_layer - 1);
    for (int l = hp->n_layer - 2; l >= 0; l--) block_backward(tr, l);
    // embeddings: slot rows → dslots, token rows → token_embd rows
    for (int i = 0; dslots && i < tr->n_slots; i++)
        collm_ops_axpy(dslots + (int64_t)i * C, 1.0f, tr->d_x + (int64_t)tr->slot_rows[i] * C, C);
    float *d_embd = collm_llm_trainer_grad_of(tr, m->token_embd);
    if (d_embd)
        for (int64_t r = 0; r < R; r++)
            if (tr->tokens[r] >= 0) collm_ops_axpy(d_embd + (int64_t)tr->tokens[r] * C, 1.0f, tr->d_x + r * C, C);
    return COLLM_OK;
}
