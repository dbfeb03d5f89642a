// Training forward/backward of the transformer (see llm/llm_train.h): the
// packed batch, its per-prompt attention (probabilities kept), the answer-row
// head and the embeddings. The blocks themselves are llm/block.c, shared with
// inference. Shapes: R = rows of the packed batch, C = n_embd,
// Q = n_head·hd, KV = n_head_kv·hd, F = n_ff.
#include "llm/llm_train.h"

#include "collm/error.h"
#include "core/ops.h"
#include "llm/block.h"
#include "llm/model_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

// Activations of one layer kept for backward: the block's tensors and the
// attention probabilities.
typedef struct {
    collm_llm_block_acts blk;
    float *att; // Σ_s n_head·T_s² softmax probabilities, prompt after prompt
} layer_acts;

#define PACKED_PER_LAYER 6 // collm_llm_trainer.packed

struct collm_llm_trainer {
    collm_llm_model *model;
    collm_lora_adapter *lora;
    int full_finetune;
    int max_rows, max_seq_len;
    collm_pool *pool;
    float *model_grad;              // (n_params) when full_finetune
    collm_llm_layer_weights *grads; // (n_layer) pointers into model_grad (full fine-tuning)
    float *rope_cs;                 // (max_seq_len, n_rot) cos/sin of positions 0..max_seq_len-1, built once

    layer_acts *acts; // (n_layer)
    collm_llm_block *blocks; // (n_layer) the descriptors of the current batch, kept for backward
    float *x_final;   // (n_seq, C) output of the last layer, at each prompt's last row
    // The last layer only needs its output at each prompt's last row: keys
    // run over every row, queries, attention output and the feed-forward
    // over those n_seq rows only (about a fifth of the FLOPs of a 4-layer
    // model saved, forward and backward), and its values are folded behind
    // the attention (fold_v: Wv at those rows, not at every row).
    float *q_in;      // (n_seq, C) attn RMSNorm output gathered at last rows
    float *d_last;    // (n_seq, C) gradient at the last rows of the last layer
    int32_t *last_rows;  // (n_seq) packed row of each prompt's last token
    int32_t *last_pos;   // (n_seq) position of each prompt's last row
    int64_t *last_att;   // (n_seq + 1) offsets of the last layer's attention rows
    int32_t *att_order;  // (max_rows + 1) forward attention tasks, costliest first
    // per-prompt bookkeeping of the current batch. Rows are laid out with
    // the leading tokens every prompt shares (P of them, 0 when none) once,
    // rows [0, P), then each prompt's own rows: prompt s's token t >= P is
    // row row_start[s] + t - P. Its attention sees rows [0, P) and its own.
    int n_seq, n_rows, n_shared;
    int share_prefix;   // 1 (default): detect and share the common leading tokens
    int unfused;        // 1: the block's unfused feed-forward (collm_llm_trainer_set_fusion)
    int forward_only;   // 1: the last forward was collm_llm_trainer_score (nothing kept for backward)
    int32_t *seq_len;   // (max_rows) copies
    int64_t *row_start; // (max_rows + 1) first own row of each prompt; [n_seq] = n_rows
    int64_t *in_start;  // (max_rows + 1) each prompt's first row in the caller's packing
    int64_t *att_start; // (max_rows + 1) offsets into att; [n_seq]: the shared rows' block
    int32_t *pos;       // (R) position of each row inside its prompt
    int32_t *tokens;    // (R)
    int32_t *tokens_in; // (R) the caller's rows: token id, -1 at slot rows
    int32_t *slot_in;   // (R) the caller's rows: slot index at slot rows, -1 elsewhere
    // Prompts sharing more than the P common rows with an earlier prompt of
    // the batch (find_shared_runs): prompt s computes its positions from
    // skip[s] (>= P) on in its own rows; the keys and values of positions
    // [P, skip[s]) are those of prompt parent[s] (-1: none).
    int32_t *skip;      // (max_rows)
    int32_t *parent;    // (max_rows)
    int64_t *dkv_off;   // (max_rows + 1) Σ_{j<s} skip[j]: prompt s's rows of shared_dkv
    int32_t yes_id;
    float *yes_buf;     // (C) the answer row of a quantised head, dequantised (yes_buf_id: which row)
    int32_t yes_buf_id;
    float *last_norm;   // (n_seq, C) final RMSNorm output at last rows
    float *last_rstd;   // (n_seq)
    int n_slots;
    int32_t *slot_rows; // (max_rows)
    // frozen weights: the backward rows (each prompt's from its first slot on)
    int32_t *bwd_rows;  // (max_rows) packed rows, ascending
    int32_t *bwd_q;     // (max_rows) compact row of each prompt's last row, -1 if none
    int32_t *bwd_first; // (max_rows) first backward row of each prompt, relative (seq_len: none)
    int32_t *bwd_start; // (max_rows) its compact index

    float *qkv;              // (R, Q + 2 KV) forward scratch
    float *d_x;              // (R, C) gradient of the residual stream
    collm_llm_block_grads g; // backward scratch
    float *att_scratch;      // (threads, collm_ops_attention_scratch(max_seq_len)) attention backward rows,
                             // forward-only probabilities
    float *shared_dkv;       // (max_rows, KV + VW) each prompt's gradient at the keys/values of its
                             // positions [0, skip) (rows dkv_off[s] on), summed in order into the rows
                             // they were read from (VW = max(KV, C): the last layer's values are xn1
                             // rows with fold_v)
    float *gather_kv;        // (threads, max_seq_len, KV + VW) keys and values of [0, skip) gathered
    // The last layer's values folded (collm_llm_block fold_v; on unless
    // collm_llm_trainer_set_fold_v turns it off): z and d_z (n_seq, n_head·C),
    // grown to the batch's prompts
    int fold_v;
    float *fold;             // z, then d_z
    int64_t fold_cap;        // prompts fold holds
    // forward only (collm_llm_trainer_score): the blocks' row chunks per
    // thread, reused while in cache (the probabilities go to att_scratch)
    float *chunk_scratch;    // (threads, collm_llm_block_chunk_floats)
    // (n_layer, 6) per layer the fused halves' packed weights (4: from one
    // scoring batch to the next), then the feed-forward backward's (2: with
    // weights_fixed, from step to step)
    collm_ops_wpack *packed;
    int weights_fixed; // collm_llm_trainer_set_weights_fixed
    float *storage;
};

float *collm_llm_trainer_model_grad(collm_llm_trainer *tr) { return tr->model_grad; }
void collm_llm_trainer_set_prefix_sharing(collm_llm_trainer *tr, int on) { tr->share_prefix = on != 0; }
void collm_llm_trainer_set_fusion(collm_llm_trainer *tr, int on) { tr->unfused = on == 0; }
void collm_llm_trainer_set_fold_v(collm_llm_trainer *tr, int on) { tr->fold_v = on != 0; }

int collm_llm_trainer_set_weights_fixed(collm_llm_trainer *tr) {
    if (tr->full_finetune || tr->lora)
        return collm_error(COLLM_ERR_ARG, "trainer: the weights train here, their packed copies cannot be kept");
    tr->weights_fixed = 1;
    return COLLM_OK;
}
int collm_llm_trainer_shared_rows(const collm_llm_trainer *tr) { return tr->n_shared; }
int collm_llm_trainer_computed_rows(const collm_llm_trainer *tr) { return tr->n_rows; }

// Every layer but the last: the products at the R computed rows, and
// attention from each computed row at position t to its t + 1 keys (q·k and
// p·v, 4·Q FLOPs a key). The last: keys at the R rows; at each prompt's last
// row its query, attention over all T keys, the output and feed-forward
// products; with the values folded, p·xn1 (n_head·C a key) and z·Wv, else
// the values at the R rows and p·v. Then the answer row's dot product.
double collm_llm_trainer_forward_flops(const collm_llm_trainer *tr) {
    const collm_llm_hparams *hp = &tr->model->hp;
    const double C = hp->n_embd, Q = (double)hp->n_head * hp->head_dim, KV = (double)hp->n_head_kv * hp->head_dim;
    const double F = hp->n_ff, H = hp->n_head, R = tr->n_rows, P = tr->n_shared;
    const double Wl = C * (Q + 2 * KV) + Q * C + 3 * C * F; // a layer's matrix weights
    const int fold = hp->n_layer > 0 && tr->blocks[hp->n_layer - 1].fold_v;
    double keys = P * (P + 1) / 2, last = (2 * C * KV + (fold ? 0 : 2 * C * KV)) * R;
    for (int s = 0; s < tr->n_seq; s++) {
        const double T = tr->seq_len[s], k = tr->skip[s];
        keys += (T * (T + 1) - k * (k + 1)) / 2;
        last += 2 * Q * T + (fold ? 2 * H * C * T + 2 * Q * C : 2 * Q * T) + 2 * (C * Q + Q * C + 3 * C * F) + 2 * C;
    }
    return (hp->n_layer - 1) * (2 * Wl * R + 4 * Q * keys) + last;
}

float *collm_llm_trainer_grad_of(collm_llm_trainer *tr, const float *weight) {
    if (!tr->model_grad || !weight) return NULL;
    ptrdiff_t off = weight - tr->model->params;
    if (off < 0 || off >= tr->model->n_params) return NULL;
    return tr->model_grad + off;
}

// ---------------------------------------------------------------------------
// allocation

// The answer row of the head as floats: in the model (F32) or dequantised
// once into the trainer's buffer (quantised head).
static const float *answer_row(collm_llm_trainer *tr, int32_t id) {
    const collm_llm_model *m = tr->model;
    if (m->output) return m->output + (int64_t)id * m->hp.n_embd;
    if (tr->yes_buf_id != id) {
        collm_qmat_row(&m->q_output, id, tr->yes_buf);
        tr->yes_buf_id = id;
    }
    return tr->yes_buf;
}

// Floats per row of a value slice of shared_dkv: the widest values, KV or
// (fold_v) the C of xn1.
static int64_t value_width_max(const collm_llm_trainer *tr) {
    const collm_llm_hparams *hp = &tr->model->hp;
    const int64_t KV = (int64_t)hp->n_head_kv * hp->head_dim;
    return KV > hp->n_embd ? KV : hp->n_embd;
}

collm_llm_trainer *collm_llm_trainer_create(collm_llm_model *model, collm_lora_adapter *lora, int full_finetune, int max_rows,
                                int max_seq_len, collm_pool *pool) {
    const collm_llm_hparams *hp = &model->hp;
    if (full_finetune && model->quantised) {
        collm_error(COLLM_ERR_ARG, "trainer: the base model is quantised and stays frozen: train LoRA on it, or load it "
                                   "dequantised (F32) to fine-tune every weight");
        return NULL;
    }
    if (max_rows < 1 || max_seq_len < 1 || max_seq_len > max_rows) {
        collm_error(COLLM_ERR_ARG, "trainer: bad sizes max_rows=%d max_seq_len=%d", max_rows, max_seq_len);
        return NULL;
    }
    if (lora && lora->n_layer != hp->n_layer) {
        collm_error(COLLM_ERR_ARG, "trainer: LoRA has %d layers, model %d", lora->n_layer, hp->n_layer);
        return NULL;
    }
    for (int l = 0; l < hp->n_layer; l++)
        if (!collm_llm_block_layout_ok(hp, &model->layers[l])) {
            collm_error(COLLM_ERR_ARG, "trainer: layer %d weights are not in the fused layout", l);
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
    int threads = collm_pool_size(pool);
    int64_t per_layer = 4 * R * C + 2 * R + 2 * R * Q + 2 * R * KV + att_floats + 3 * R * F + lora_floats;
    int64_t scratch = R * C /*x_final*/ + 2 * R * C /*q_in, d_last*/ + R * (Q + 2 * KV) /*qkv*/ +
                      2 * R * C /*d_x, d_xn*/ + R * (Q + 2 * KV) /*d_qkv*/ + 2 * R * Q /*d_q, d_attn*/ +
                      2 * R * KV /*d_k, d_v*/ + R * C /*d_xv*/ + R * C /*d_q_in*/ + 3 * R * F /*d_gu, d_h*/ + R * (rank ? rank : 1) +
                      threads * C /*dw_parts*/ + R * C /*last_norm*/ + R /*last_rstd*/ +
                      (int64_t)max_seq_len * hp->n_rot /*rope_cs*/;
    int64_t total = per_layer * hp->n_layer + scratch;
    tr->storage = collm_malloc((size_t)total * sizeof(float));
    tr->acts = collm_calloc((size_t)hp->n_layer, sizeof *tr->acts);
    tr->blocks = collm_calloc((size_t)hp->n_layer, sizeof *tr->blocks);
    tr->grads = collm_calloc((size_t)hp->n_layer, sizeof *tr->grads);
    tr->seq_len = collm_calloc((size_t)R, sizeof(int32_t));
    tr->row_start = collm_calloc((size_t)R + 1, sizeof(int64_t));
    tr->in_start = collm_calloc((size_t)R + 1, sizeof(int64_t));
    tr->tokens_in = collm_calloc((size_t)R, sizeof(int32_t));
    tr->slot_in = collm_calloc((size_t)R, sizeof(int32_t));
    tr->skip = collm_calloc((size_t)R, sizeof(int32_t));
    tr->parent = collm_calloc((size_t)R, sizeof(int32_t));
    tr->dkv_off = collm_calloc((size_t)R + 1, sizeof(int64_t));
    tr->gather_kv = collm_malloc((size_t)threads * (size_t)max_seq_len * (size_t)(KV + value_width_max(tr)) *
                                 sizeof(float));
    tr->shared_dkv = collm_malloc((size_t)R * (size_t)(KV + value_width_max(tr)) * sizeof(float));
    tr->packed = collm_calloc((size_t)hp->n_layer * PACKED_PER_LAYER, sizeof *tr->packed);
    tr->chunk_scratch = collm_malloc((size_t)threads * (size_t)collm_llm_block_chunk_floats(hp) * sizeof(float));
    tr->share_prefix = 1;
    tr->fold_v = 1;
    tr->att_start = collm_calloc((size_t)R + 1, sizeof(int64_t));
    tr->pos = collm_calloc((size_t)R, sizeof(int32_t));
    tr->tokens = collm_calloc((size_t)R, sizeof(int32_t));
    tr->slot_rows = collm_calloc((size_t)R, sizeof(int32_t));
    tr->last_rows = collm_calloc((size_t)R, sizeof(int32_t));
    tr->bwd_rows = collm_calloc((size_t)R, sizeof(int32_t));
    tr->bwd_q = collm_calloc((size_t)R, sizeof(int32_t));
    tr->bwd_first = collm_calloc((size_t)R, sizeof(int32_t));
    tr->bwd_start = collm_calloc((size_t)R, sizeof(int32_t));
    tr->last_pos = collm_calloc((size_t)R, sizeof(int32_t));
    tr->last_att = collm_calloc((size_t)R + 1, sizeof(int64_t));
    tr->att_order = collm_calloc((size_t)R + 1, sizeof(int32_t));
    tr->att_scratch = collm_malloc((size_t)collm_pool_size(pool) * (size_t)collm_ops_attention_scratch(max_seq_len) *
                                   sizeof(float));
    if (full_finetune) tr->model_grad = collm_calloc((size_t)model->n_params, sizeof(float));
    tr->yes_buf = collm_malloc((size_t)C * sizeof(float));
    tr->yes_buf_id = -1;
    if (!tr->storage || !tr->acts || !tr->blocks || !tr->grads || !tr->seq_len || !tr->row_start || !tr->att_start ||
        !tr->in_start || !tr->tokens_in || !tr->slot_in || !tr->skip || !tr->parent || !tr->dkv_off || !tr->gather_kv || !tr->shared_dkv || !tr->chunk_scratch || !tr->packed ||
        !tr->pos || !tr->tokens || !tr->slot_rows || !tr->last_rows || !tr->bwd_rows || !tr->bwd_q || !tr->bwd_first || !tr->bwd_start || !tr->last_pos || !tr->last_att || !tr->att_order || !tr->att_scratch ||
        (full_finetune && !tr->model_grad) || !tr->yes_buf) {
        collm_llm_trainer_free(tr);
        collm_error(COLLM_ERR_NOMEM, "trainer: out of memory (%.1f MB of activations)", total * 4.0 / 1e6);
        return NULL;
    }
    // touch everything once now: page faults are expensive, do them up front
    memset(tr->storage, 0, (size_t)total * sizeof(float));
    float *s = tr->storage;
    for (int l = 0; l < hp->n_layer; l++) {
        layer_acts *la = &tr->acts[l];
        collm_llm_block_acts *a = &la->blk;
        a->x = s, s += R * C;
        a->xn1 = s, s += R * C;
        a->rstd1 = s, s += R;
        a->q = s, s += R * Q;
        a->k = s, s += R * KV;
        a->v = s, s += R * KV;
        la->att = s, s += att_floats;
        a->attn = s, s += R * Q;
        a->x_mid = s, s += R * C;
        a->xn2 = s, s += R * C;
        a->rstd2 = s, s += R;
        a->gu = s, s += 2 * R * F;
        a->h = s, s += R * F;
        if (lora)
            for (int t = 0; t < COLLM_LORA_N_TARGETS; t++) {
                collm_lora_pair *p = collm_lora_get(lora, l, (collm_lora_target)t);
                if (!p) continue;
                a->lora_xa[t] = s, s += R * rank;
                if (lora->dropout > 0) a->lora_x_drop[t] = s, s += R * p->in;
            }
    }
    for (int l = 0; l + 1 < hp->n_layer; l++) tr->acts[l].blk.out = tr->acts[l + 1].blk.x;
    tr->x_final = s, s += R * C;
    tr->acts[hp->n_layer - 1].blk.out = tr->x_final;
    tr->q_in = s, s += R * C;
    tr->d_last = s, s += R * C;
    tr->qkv = s, s += R * (Q + 2 * KV);
    tr->d_x = s, s += R * C;
    collm_llm_block_grads *g = &tr->g;
    g->d_xn = s, s += R * C;
    g->d_qkv = s, s += R * (Q + 2 * KV);
    g->d_q = s, s += R * Q;
    g->d_attn = s, s += R * Q;
    g->d_k = s, s += R * KV;
    g->d_v = s, s += R * KV;
    g->d_xv = s, s += R * C;
    g->d_q_in = s, s += R * C;
    g->d_gu = s, s += 2 * R * F;
    g->d_h = s, s += R * F;
    g->d_xa = s, s += R * (rank ? rank : 1);
    g->dw_parts = s, s += threads * C;
    tr->last_norm = s, s += R * C;
    tr->last_rstd = s, s += R;
    tr->rope_cs = s, s += (int64_t)max_seq_len * hp->n_rot;
    // RoPE angles of every position a prompt can have, once (positions restart at 0 in each prompt)
    for (int i = 0; i < max_seq_len; i++) tr->pos[i] = i;
    collm_ops_rope_table(tr->rope_cs, tr->pos, max_seq_len, hp->n_rot, hp->rope_base);
    if (full_finetune)
        for (int l = 0; l < hp->n_layer; l++) {
            const collm_llm_layer_weights *w = &model->layers[l];
            collm_llm_layer_weights *d = &tr->grads[l];
            d->attn_norm = collm_llm_trainer_grad_of(tr, w->attn_norm);
            d->wq = collm_llm_trainer_grad_of(tr, w->wq);
            d->bq = collm_llm_trainer_grad_of(tr, w->bq);
            d->wk = collm_llm_trainer_grad_of(tr, w->wk);
            d->bk = collm_llm_trainer_grad_of(tr, w->bk);
            d->wv = collm_llm_trainer_grad_of(tr, w->wv);
            d->bv = collm_llm_trainer_grad_of(tr, w->bv);
            d->wo = collm_llm_trainer_grad_of(tr, w->wo);
            d->ffn_norm = collm_llm_trainer_grad_of(tr, w->ffn_norm);
            d->w_gate = collm_llm_trainer_grad_of(tr, w->w_gate);
            d->w_up = collm_llm_trainer_grad_of(tr, w->w_up);
            d->w_down = collm_llm_trainer_grad_of(tr, w->w_down);
        }
    return tr;
}

void collm_llm_trainer_free(collm_llm_trainer *tr) {
    if (!tr) return;
    free(tr->storage);
    free(tr->yes_buf);
    free(tr->acts);
    free(tr->blocks);
    free(tr->grads);
    free(tr->seq_len);
    free(tr->row_start);
    free(tr->in_start);
    free(tr->tokens_in);
    free(tr->slot_in);
    free(tr->skip);
    free(tr->parent);
    free(tr->dkv_off);
    free(tr->gather_kv);
    free(tr->shared_dkv);
    free(tr->fold);
    free(tr->chunk_scratch);
    for (int i = 0; tr->packed && i < tr->model->hp.n_layer * PACKED_PER_LAYER; i++) collm_ops_wpack_free(&tr->packed[i]);
    free(tr->packed);
    free(tr->att_start);
    free(tr->pos);
    free(tr->tokens);
    free(tr->slot_rows);
    free(tr->last_rows);
    free(tr->bwd_rows);
    free(tr->bwd_q);
    free(tr->bwd_first);
    free(tr->bwd_start);
    free(tr->last_pos);
    free(tr->last_att);
    free(tr->att_order);
    free(tr->att_scratch);
    free(tr->model_grad);
    free(tr);
}

// ---------------------------------------------------------------------------
// attention over the packed prompts, parallel over prompts (the block's
// attention callbacks)

typedef struct {
    collm_llm_trainer *tr;
    const collm_llm_block *b;
    const collm_llm_block_acts *a;
    float *att;          // the layer's probabilities
    const float *d_attn; // backward only
    float *d_q, *d_k, *d_v;
} attention_job;

// Task s < n_seq: prompt s's queries (every own row, causal after the P
// shared rows; or only its last row when the block queries the last rows)
// against the shared rows and its own. Task n_seq: the shared rows among
// themselves (not in the last layer: no output row is shared).
typedef struct {
    int64_t q_row;  // first query row (in q / attn / d_q)
    int T, n_past;  // queries, keys before the first query
    int64_t att;    // offset of its probabilities
    int64_t own;    // first own key row (keys: rows [0, P) then [own, own + len - P))
    int len;        // keys: n_past + T
} attention_geometry;

static attention_geometry geometry(const attention_job *job, int64_t s) {
    const collm_llm_trainer *tr = job->tr;
    const int P = tr->n_shared;
    attention_geometry g;
    if (s == tr->n_seq) { // the shared rows
        g = (attention_geometry){.q_row = 0, .T = P, .n_past = 0, .att = tr->att_start[s], .own = 0, .len = P};
        return g;
    }
    int len = tr->seq_len[s], last_only = job->b->q_rows != NULL;
    g.q_row = last_only ? s : tr->row_start[s];
    g.T = last_only ? 1 : len - tr->skip[s];
    g.n_past = last_only ? len - 1 : tr->skip[s];
    g.att = last_only ? tr->last_att[s] : tr->att_start[s];
    g.own = tr->row_start[s];
    g.len = len;
    return g;
}

// The keys (KV floats a row) and values (rows of v, VW floats) of prompt s's
// positions [0, skip[s]) live in other rows: [0, P) in the shared rows, the
// rest in the own rows of the prompts up its parent chain (each holds its
// positions from its own skip on). Gather copies them into kb, vb (skip[s]
// rows each); scatter adds kb, vb (their gradients) back into those rows.
static void shared_kv_walk(const collm_llm_trainer *tr, float *k, float *v, int64_t s, float *kb, float *vb,
                           int64_t KV, int64_t VW, int scatter) {
    const int P = tr->n_shared;
    int hi = tr->skip[s];
    for (int p = tr->parent[s]; hi > P; p = tr->parent[p]) {
        const int lo = tr->skip[p] < hi ? tr->skip[p] : hi; // positions [lo, hi) are own rows of p
        const int64_t r = tr->row_start[p] + lo - tr->skip[p];
        if (scatter) {
            collm_ops_axpy(k + r * KV, 1.0f, kb + lo * KV, (hi - lo) * KV);
            collm_ops_axpy(v + r * VW, 1.0f, vb + lo * VW, (hi - lo) * VW);
        } else {
            memcpy(kb + lo * KV, k + r * KV, (size_t)((hi - lo) * KV) * sizeof(float));
            memcpy(vb + lo * VW, v + r * VW, (size_t)((hi - lo) * VW) * sizeof(float));
        }
        hi = lo;
    }
    if (scatter) {
        collm_ops_axpy(k, 1.0f, kb, P * KV);
        collm_ops_axpy(v, 1.0f, vb, P * VW);
    } else {
        memcpy(kb, k, (size_t)(P * KV) * sizeof(float));
        memcpy(vb, v, (size_t)(P * VW) * sizeof(float));
    }
}

// This thread's gather buffer: max_seq_len key rows, then max_seq_len value rows.
static float *gather_buffer(const collm_llm_trainer *tr, int thread_index, int64_t KV) {
    return tr->gather_kv + (int64_t)thread_index * tr->max_seq_len * (KV + value_width_max(tr));
}

// Attention never fails here: the forward keeps att, or (forward only) the
// probabilities stay in the trainer's scratch row of this thread, as in the
// backward. The keys are read where they are: the shared rows, then the own;
// a prompt with a parent reads its earlier keys gathered (gather_shared_kv).
static void attention_forward_task(void *ctx_, int64_t begin, int64_t end, int thread_index) {
    attention_job *job = ctx_;
    collm_llm_trainer *tr = job->tr;
    const collm_llm_hparams *hp = &tr->model->hp;
    const collm_llm_block_acts *a = job->a;
    int64_t Q = (int64_t)hp->n_head * hp->head_dim, KV = (int64_t)hp->n_head_kv * hp->head_dim, C = hp->n_embd;
    const int fold = job->b->fold_v;
    const int64_t VW = fold ? C : KV; // floats per value row
    float *vals = fold ? a->xn1 : a->v;
    float *scratch = tr->forward_only ? tr->att_scratch + thread_index * collm_ops_attention_scratch(tr->max_seq_len)
                                      : NULL;
    for (int64_t i = begin; i < end; i++) {
        attention_geometry g = geometry(job, tr->att_order[i]);
        if (g.T == 0) continue;
        // keys [0, P) at row 0 and [P, len) at the own rows (or [0, skip) gathered and [skip, len) at the
        // own rows); contiguous (no split) without shared rows or for them
        const int s = tr->att_order[i], gathered = s < tr->n_seq && tr->parent[s] >= 0;
        const int split = gathered || (tr->n_shared > 0 && g.own > 0);
        const int n_first = gathered ? tr->skip[s] : split ? tr->n_shared : g.len;
        const float *k = split ? a->k : a->k + g.own * KV, *v = split ? vals : vals + g.own * VW;
        if (gathered) { // keys [0, skip) gathered into this thread's buffer
            float *kb = gather_buffer(tr, thread_index, KV);
            shared_kv_walk(tr, a->k, vals, s, kb, kb + (int64_t)tr->max_seq_len * KV, KV, VW, 0);
            k = kb;
            v = kb + (int64_t)tr->max_seq_len * KV;
        }
        float *att = tr->forward_only ? NULL : job->att + g.att;
        const float *q = a->q + g.q_row * Q, *k2 = split ? a->k + g.own * KV : NULL;
        const float *v2 = split ? vals + g.own * VW : NULL;
        if (fold) // z (one row per query: n_head·C)
            collm_ops_attention_forward_xv(a->z + g.q_row * hp->n_head * C, att, q, k, v, n_first, k2, v2, g.T,
                                           g.n_past, hp->n_head, hp->n_head_kv, hp->head_dim, (int)C, NULL, scratch);
        else
            collm_ops_attention_forward_split(a->attn + g.q_row * Q, att, q, k, v, n_first, k2, v2, g.T, g.n_past,
                                              hp->n_head, hp->n_head_kv, hp->head_dim, NULL, scratch);
    }
}

// Each task owns its query rows and its own key rows; the gradients at the
// keys of positions [0, skip) (the shared rows, and a parent's rows) go to
// the task's slice of shared_dkv and are summed in prompt order afterwards
// (deterministic for any thread count). Keys, values and their gradients
// are read and written where they are (the shared rows, then the own), or
// gathered as in the forward.
static void attention_backward_one(attention_job *job, int64_t s, int thread_index) {
    collm_llm_trainer *tr = job->tr;
    const collm_llm_hparams *hp = &tr->model->hp;
    const collm_llm_block_acts *a = job->a;
    const int P = tr->n_shared;
    int64_t Q = (int64_t)hp->n_head * hp->head_dim, KV = (int64_t)hp->n_head_kv * hp->head_dim, C = hp->n_embd;
    const int fold = job->b->fold_v;
    const int64_t VW = fold ? C : KV, DO = fold ? hp->n_head * C : Q; // floats per value and d_out row
    float *vals = fold ? a->xn1 : a->v;
    float *att_scratch = tr->att_scratch + thread_index * collm_ops_attention_scratch(tr->max_seq_len);
    attention_geometry g = geometry(job, s);
    if (g.T == 0) return;
    float *dq = job->d_q + g.q_row * Q, *dk = job->d_k + g.own * KV, *dv = job->d_v + g.own * VW;
    const float *dout = job->d_attn + g.q_row * DO, *q = a->q + g.q_row * Q;
    // Keys contiguous (no shared rows, or the shared rows' own task): one part,
    // straight into d_k, d_v. Otherwise the keys [0, skip) (the shared rows,
    // or gathered along the parent chain) into this task's slice (zeroed),
    // the own keys straight into d_k, d_v.
    const int gathered = s < tr->n_seq && tr->parent[s] >= 0;
    const int two = gathered || (P > 0 && g.own > 0);
    const int n_first = two ? tr->skip[s] : g.len; // (one part: every key, as collm_ops_attention_backward takes them)
    float *sk = two ? tr->shared_dkv + tr->dkv_off[s] * (KV + VW) : NULL, *sv = two ? sk + n_first * KV : NULL;
    if (two) memset(sk, 0, (size_t)(n_first * (KV + VW)) * sizeof(float));
    const float *k1 = two ? a->k : a->k + g.own * KV, *v1 = two ? vals : vals + g.own * VW;
    if (gathered) {
        float *kb = gather_buffer(tr, thread_index, KV);
        shared_kv_walk(tr, a->k, vals, s, kb, kb + (int64_t)tr->max_seq_len * KV, KV, VW, 0);
        k1 = kb, v1 = kb + (int64_t)tr->max_seq_len * KV;
    }
    const float *k2 = two ? a->k + g.own * KV : NULL, *v2 = two ? vals + g.own * VW : NULL;
    float *dk1 = two ? sk : dk, *dv1 = two ? sv : dv, *dk2 = two ? dk : NULL, *dv2 = two ? dv : NULL;
    if (fold)
        collm_ops_attention_backward_xv(dq, dk1, dv1, dk2, dv2, dout, job->att + g.att, q, k1, v1, n_first, k2, v2,
                                        g.T, g.n_past, hp->n_head, hp->n_head_kv, hp->head_dim, (int)C, NULL,
                                        att_scratch);
    else
        collm_ops_attention_backward_split(dq, dk1, dv1, dk2, dv2, dout, job->att + g.att, q, k1, v1, n_first, k2,
                                           v2, g.T, g.n_past, hp->n_head, hp->n_head_kv, hp->head_dim, NULL,
                                           att_scratch);
}

static void attention_backward_task(void *ctx_, int64_t begin, int64_t end, int thread_index) {
    attention_job *job = ctx_;
    for (int64_t i = begin; i < end; i++) attention_backward_one(job, job->tr->att_order[i], thread_index);
}

static int by_cost_desc(const void *a, const void *b) {
    const int64_t *x = a, *y = b; // (cost, task)
    return x[0] != y[0] ? (x[0] < y[0] ? 1 : -1) : (x[1] > y[1]) - (x[1] < y[1]);
}

// tr->att_order[0, tasks): the tasks costliest (queries x keys) first. They are
// handed out one at a time in that order, so the last ones are short and the
// threads finish together (each task's bits do not depend on its thread).
static void order_by_cost(collm_llm_trainer *tr, const attention_job *job, int tasks) {
    int64_t stack[2 * 65], *cost = tasks <= 65 ? stack : collm_malloc((size_t)tasks * 2 * sizeof(int64_t));
    for (int s = 0; s < tasks; s++) {
        attention_geometry g = geometry(job, s);
        tr->att_order[s] = s;
        if (cost) cost[2 * s] = (int64_t)g.T * g.len, cost[2 * s + 1] = s;
    }
    if (cost) { // (out of memory: prompt order, the same results)
        qsort(cost, (size_t)tasks, 2 * sizeof(int64_t), by_cost_desc);
        for (int s = 0; s < tasks; s++) tr->att_order[s] = (int32_t)cost[2 * s + 1];
        if (cost != stack) free(cost);
    }
}

static void train_attend(void *ctx, const collm_llm_block *b, collm_llm_block_acts *a) {
    collm_llm_trainer *tr = ctx;
    attention_job job = {.tr = tr, .b = b, .a = a, .att = tr->acts[b->layer].att};
    // tasks: the prompts, and the shared rows' own attention (none in a last-rows layer)
    int tasks = tr->n_seq + (tr->n_shared > 0 && !b->q_rows);
    order_by_cost(tr, &job, tasks);
    collm_pool_for_each(tr->pool, tasks, attention_forward_task, &job);
}

static void train_attend_backward(void *ctx, const collm_llm_block *b, const collm_llm_block_acts *a,
                                  const float *d_attn, float *d_q, float *d_k, float *d_v) {
    collm_llm_trainer *tr = ctx;
    const collm_llm_hparams *hp = &tr->model->hp;
    attention_job job = {.tr = tr, .b = b, .a = a, .att = tr->acts[b->layer].att, .d_attn = d_attn, .d_q = d_q,
                         .d_k = d_k, .d_v = d_v};
    // the prompts (each into its own rows and shared-key slice), costliest first
    order_by_cost(tr, &job, tr->n_seq);
    collm_pool_for_each(tr->pool, tr->n_seq, attention_backward_task, &job);
    const int64_t P = tr->n_shared, KV = (int64_t)hp->n_head_kv * hp->head_dim;
    const int64_t VW = b->fold_v ? hp->n_embd : KV;
    // the gradients at the keys of [0, skip), prompt after prompt, into the
    // rows they were read from; then the shared rows' own attention
    for (int64_t s = 0; s < tr->n_seq; s++)
        if (tr->skip[s] > 0) {
            float *sk = tr->shared_dkv + tr->dkv_off[s] * (KV + VW);
            shared_kv_walk(tr, d_k, d_v, s, sk, sk + tr->skip[s] * KV, KV, VW, 1);
        }
    if (P > 0 && !b->q_rows) attention_backward_one(&job, tr->n_seq, 0);
}

// ---------------------------------------------------------------------------
// the whole model

// Caller rows a and b hold the same input: the same token, or two slot rows
// with the same vector, bit for bit.
static int same_input_row(const collm_llm_trainer *tr, const collm_llm_slot_rows *slots, int64_t a, int64_t b) {
    if (tr->tokens_in[a] != tr->tokens_in[b]) return 0;
    if (tr->tokens_in[a] >= 0) return 1;
    const int64_t C = tr->model->hp.n_embd;
    return memcmp(slots->values + tr->slot_in[a] * C, slots->values + tr->slot_in[b] * C, (size_t)C * sizeof(float)) == 0;
}

// skip[s] and parent[s] (see the trainer): with `on`, for each prompt the
// earlier prompt of the batch it shares the longest run of leading positions
// with, short of its own last row (the rows its score is read at), when that
// run is longer than the P rows every prompt shares. The same inputs at the
// same positions under causal attention give the same rows, so their keys
// and values are read from that prompt instead of computed again: one
// user's history before several targets runs once, and in training the
// gradients its later rows send back to those keys and values are summed
// into that prompt's rows (train_attend_backward). With `stop_at_slots`
// (training) a run ends at a slot row: two slot rows with the same vector
// may still hold different mappings of different inputs, whose gradients
// must stay apart.
static void find_shared_runs(collm_llm_trainer *tr, const collm_llm_slot_rows *slots, int n_seq, int on,
                             int stop_at_slots) {
    const int P = tr->n_shared;
    for (int s = 0; s < n_seq; s++) tr->skip[s] = P, tr->parent[s] = -1;
    for (int s = 1; on && s < n_seq; s++) {
        const int64_t a = tr->in_start[s];
        for (int j = 0; j < s; j++) {
            const int64_t b = tr->in_start[j];
            const int lim = tr->seq_len[s] - 1 < tr->seq_len[j] ? tr->seq_len[s] - 1 : tr->seq_len[j];
            int t = P; // the first P positions are the same in every prompt
            while (t < lim && same_input_row(tr, slots, a + t, b + t) && !(stop_at_slots && tr->tokens_in[a + t] < 0))
                t++;
            if (t > tr->skip[s]) tr->skip[s] = t, tr->parent[s] = j;
        }
    }
    int64_t off = 0;
    for (int s = 0; s < n_seq; s++) tr->dkv_off[s] = off, off += tr->skip[s]; // Σ skip < the batch's rows
    tr->dkv_off[n_seq] = off;
}

// fold holds z and d_z of n_seq prompts: 1, or 0 when it cannot grow (the
// batch then projects its values as every other layer does).
static int fold_buffers(collm_llm_trainer *tr, int n_seq) {
    if (n_seq <= tr->fold_cap) return 1;
    const collm_llm_hparams *hp = &tr->model->hp;
    float *f = collm_malloc((size_t)n_seq * 2 * (size_t)hp->n_head * (size_t)hp->n_embd * sizeof(float));
    if (!f) {
        collm_clear_error(); // not a failure: the unfolded path needs nothing more
        return 0;
    }
    free(tr->fold);
    tr->fold = f;
    tr->fold_cap = n_seq;
    return 1;
}

static int forward(collm_llm_trainer *tr, const int32_t *tokens, const int32_t *seq_len, int n_seq,
                   const collm_llm_slot_rows *slots, int32_t yes_id, float *scores, collm_rng *dropout_rng,
                   int forward_only, int same_weights) {
    const collm_llm_model *m = tr->model;
    const collm_llm_hparams *hp = &m->hp;
    int C = hp->n_embd;
    if (!tr->weights_fixed && (!forward_only || !same_weights)) // the packed weights may be stale
        for (int i = 0; i < hp->n_layer * PACKED_PER_LAYER; i++) collm_ops_wpack_free(&tr->packed[i]);
    if (n_seq < 1) return collm_error(COLLM_ERR_ARG, "trainer: empty batch");
    if (yes_id < 0 || yes_id >= hp->n_vocab) return collm_error(COLLM_ERR_ARG, "trainer: answer token %d out of range", yes_id);
    // the caller's packing: lengths, then token ids (-1 at slot rows), checked
    int64_t rows_in = 0;
    for (int s = 0; s < n_seq; s++) {
        if (seq_len[s] < 1 || seq_len[s] > tr->max_seq_len)
            return collm_error(COLLM_ERR_ARG, "trainer: prompt %d has %d tokens (limit %d)", s, seq_len[s],
                               tr->max_seq_len);
        rows_in += seq_len[s];
        if (rows_in > tr->max_rows)
            return collm_error(COLLM_ERR_ARG, "trainer: batch has more than %d rows", tr->max_rows);
        tr->seq_len[s] = seq_len[s];
        tr->in_start[s] = rows_in - seq_len[s];
    }
    tr->in_start[n_seq] = rows_in;
    tr->n_slots = slots ? slots->n : 0;
    for (int64_t r = 0; r < rows_in; r++) {
        int32_t id = tokens ? tokens[r] : -2;
        tr->tokens_in[r] = id >= 0 && id < hp->n_vocab ? id : -2;
        tr->slot_in[r] = -1;
    }
    for (int i = 0; i < tr->n_slots; i++) {
        int32_t r = slots->rows[i];
        if (r < 0 || r >= rows_in) return collm_error(COLLM_ERR_ARG, "trainer: slot row %d outside the batch", r);
        tr->tokens_in[r] = -1;
        tr->slot_in[r] = i; // (a row given twice takes the last value, as the embedding below)
    }
    for (int64_t r = 0; r < rows_in; r++)
        if (tr->tokens_in[r] == -2)
            return collm_error(COLLM_ERR_ARG, "trainer: row %ld has token id %d (vocabulary has %d)", (long)r,
                               tokens ? tokens[r] : -1, hp->n_vocab);

    // The leading tokens all prompts share (before any slot, and short of
    // every prompt's last row) run once: same tokens at the same positions
    // under causal attention give the same rows in every prompt. Not with
    // LoRA dropout, which draws a separate mask per prompt row.
    int P = 0;
    const int sharing = tr->share_prefix && n_seq > 1 && !(dropout_rng && tr->lora && tr->lora->dropout > 0);
    if (sharing) {
        P = tr->max_seq_len;
        for (int s = 0; s < n_seq; s++) {
            const int32_t *t0 = tr->tokens_in, *ts = tr->tokens_in + tr->in_start[s];
            int lim = seq_len[s] - 1 < P ? seq_len[s] - 1 : P, t = 0;
            while (t < lim && ts[t] == t0[t] && ts[t] >= 0) t++; // a slot row (-1) ends it
            P = t;
        }
    }
    tr->n_shared = P;
    // Runs beyond P: for scoring, and for training where every row runs
    // backward (frozen weights run it from each prompt's first slot on:
    // frozen_backward_rows, which lays out the rows without them).
    const int frozen = !tr->full_finetune && !tr->lora;
    find_shared_runs(tr, slots, n_seq, sharing && (forward_only || !frozen), !forward_only);
    int64_t rows = P, att = 0;
    for (int s = 0; s < n_seq; s++) {
        tr->row_start[s] = rows;
        rows += seq_len[s] - tr->skip[s];
        tr->att_start[s] = att;
        att += (int64_t)hp->n_head * (seq_len[s] - tr->skip[s]) * seq_len[s];
    }
    tr->row_start[n_seq] = rows;
    tr->att_start[n_seq] = att; // the shared rows' block: n_head·P² more
    int64_t last_att = 0;
    for (int s = 0; s < n_seq; s++) {
        tr->last_rows[s] = (int32_t)(tr->row_start[s + 1] - 1);
        tr->last_pos[s] = seq_len[s] - 1;
        tr->last_att[s] = last_att;
        last_att += (int64_t)hp->n_head * seq_len[s];
    }
    tr->last_att[n_seq] = last_att;
    tr->n_seq = n_seq;
    tr->n_rows = (int)rows;
    tr->yes_id = yes_id;
    tr->forward_only = forward_only;
    for (int t = 0; t < P; t++) tr->pos[t] = t;
    for (int s = 0; s < n_seq; s++)
        for (int t = tr->skip[s]; t < seq_len[s]; t++) tr->pos[tr->row_start[s] + t - tr->skip[s]] = t;

    // embeddings (R, C): token rows, then slot rows overwritten. tr->tokens
    // keeps the id of each token row and -1 at slot rows (no embedding
    // gradient there).
    float *x0 = tr->acts[0].blk.x;
    for (int t = 0; t < P; t++) tr->tokens[t] = tr->tokens_in[t];
    for (int s = 0; s < n_seq; s++)
        for (int t = tr->skip[s]; t < seq_len[s]; t++)
            tr->tokens[tr->row_start[s] + t - tr->skip[s]] = tr->tokens_in[tr->in_start[s] + t];
    for (int64_t r = 0; r < rows; r++)
        if (tr->tokens[r] >= 0)
            collm_llm_embed_row(m, tr->tokens[r], x0 + r * C);
    for (int i = 0, s = 0; i < tr->n_slots; i++) {
        int64_t r = slots->rows[i]; // caller's row -> own row of its prompt (slots lie after the P shared rows)
        while (s > 0 && r < tr->in_start[s]) s--;
        while (r >= tr->in_start[s + 1]) s++;
        const int64_t t = r - tr->in_start[s]; // its position; below skip: its parent's row, the same vector
        tr->slot_rows[i] = t < tr->skip[s] ? -1 : (int32_t)(tr->row_start[s] + t - tr->skip[s]);
        if (tr->slot_rows[i] >= 0)
            memcpy(x0 + (int64_t)tr->slot_rows[i] * C, slots->values + (int64_t)i * C, (size_t)C * sizeof(float));
    }

    // the blocks; the last one runs its queries and everything after them at
    // each prompt's last row only. Forward only, every layer works in layer
    // 0's tensors (the residual stream alternating between layers 0's and 1's
    // inputs): a fifth of the memory the kept activations take, more of it in cache.
    for (int l = 0; l < hp->n_layer; l++) {
        int last = l == hp->n_layer - 1;
        collm_llm_block *b = &tr->blocks[l];
        collm_llm_block_acts *acts = &tr->acts[l].blk, fwd;
        if (forward_only) {
            fwd = tr->acts[0].blk;
            fwd.x = tr->acts[l % 2].blk.x;
            fwd.out = last ? tr->x_final : tr->acts[(l + 1) % 2].blk.x;
            acts = &fwd;
        }
        *b = (collm_llm_block){.hp = hp, .w = &m->layers[l], .layer = l, .R = (int)rows, .n_q = last ? n_seq : (int)rows,
                               .q_rows = last ? tr->last_rows : NULL, .rope_cs = tr->rope_cs, .rope_row = tr->pos,
                               .rope_row_q = last ? tr->last_pos : tr->pos, .qkv = tr->qkv, .lora = tr->lora,
                               .dropout_rng = dropout_rng, .pool = tr->pool, .attend = train_attend,
                               .attend_backward = train_attend_backward, .attend_ctx = tr, .exact = 1,
                               .unfused = tr->unfused, .chunk_scratch = forward_only ? tr->chunk_scratch : NULL,
                               .bwd_scratch = forward_only ? NULL : tr->chunk_scratch,
                               .packed = forward_only || tr->weights_fixed ? tr->packed + PACKED_PER_LAYER * l : NULL,
                               .packed_bwd = tr->weights_fixed ? tr->packed + PACKED_PER_LAYER * l + 4 : NULL};
        acts->q_in = last ? tr->q_in : NULL;
        b->fold_v = last && tr->fold_v && collm_llm_block_can_fold_v(b) && fold_buffers(tr, n_seq);
        acts->z = b->fold_v ? tr->fold : NULL;
        tr->g.d_z = b->fold_v ? tr->fold + (int64_t)n_seq * hp->n_head * C : NULL;
        int rc = collm_llm_block_forward(b, acts);
        if (rc != COLLM_OK) return rc;
    }
    // final norm and the answer row, at each prompt's last row only
    const float *yes_row = answer_row(tr, yes_id);
    for (int s = 0; s < n_seq; s++) {
        collm_ops_rmsnorm_forward(tr->last_norm + (int64_t)s * C, tr->last_rstd + s, tr->x_final + (int64_t)s * C,
                            m->output_norm, 1, C, hp->rms_eps);
        scores[s] = collm_ops_dot(tr->last_norm + (int64_t)s * C, yes_row, C);
    }
    return COLLM_OK;
}

int collm_llm_trainer_forward(collm_llm_trainer *tr, const int32_t *tokens, const int32_t *seq_len, int n_seq,
                              const collm_llm_slot_rows *slots, int32_t yes_id, float *scores, collm_rng *dropout_rng) {
    return forward(tr, tokens, seq_len, n_seq, slots, yes_id, scores, dropout_rng, 0, 0);
}

int collm_llm_trainer_score(collm_llm_trainer *tr, const int32_t *tokens, const int32_t *seq_len, int n_seq,
                            const collm_llm_slot_rows *slots, int32_t yes_id, float *scores, int same_weights) {
    return forward(tr, tokens, seq_len, n_seq, slots, yes_id, scores, NULL, 1, same_weights);
}

// With frozen weights only the slot rows' input gradients are wanted, and a
// row's gradient reaches a slot only if the row is at or after the prompt's
// first slot (the rows before it depend on no slot, causal attention): the
// backward runs at those rows alone (compact). Returns their count.
static int frozen_backward_rows(collm_llm_trainer *tr) {
    const int n_seq = tr->n_seq;
    for (int s = 0; s < n_seq; s++) tr->bwd_first[s] = tr->seq_len[s];
    for (int i = 0, s = 0; i < tr->n_slots; i++) {
        int32_t r = tr->slot_rows[i];
        while (s > 0 && r < tr->row_start[s]) s--; // slots are usually in row order: walk from the last prompt
        while (r >= tr->row_start[s + 1]) s++;
        int32_t t = (int32_t)(r - tr->row_start[s]) + tr->n_shared; // position in the prompt
        if (t < tr->bwd_first[s]) tr->bwd_first[s] = t;
    }
    int A = 0;
    for (int s = 0; s < n_seq; s++) {
        tr->bwd_start[s] = A;
        for (int32_t t = tr->bwd_first[s]; t < tr->seq_len[s]; t++)
            tr->bwd_rows[A++] = (int32_t)tr->row_start[s] + t - tr->n_shared;
        tr->bwd_q[s] = tr->bwd_first[s] < tr->seq_len[s] ? A - 1 : -1; // the last row, if it is a backward row
    }
    return A;
}

int collm_llm_trainer_backward(collm_llm_trainer *tr, const float *dscores, float *dslots) {
    const collm_llm_model *m = tr->model;
    const collm_llm_hparams *hp = &m->hp;
    int C = hp->n_embd, R = tr->n_rows;
    if (R == 0) return collm_error(COLLM_ERR_ARG, "trainer: backward before forward");
    if (tr->forward_only)
        return collm_error(COLLM_ERR_ARG, "trainer: backward after a forward-only pass (collm_llm_trainer_score)");
    const int frozen = !tr->full_finetune && !tr->lora;
    if (frozen && !dslots) return COLLM_OK; // nothing trains
    const int A = frozen ? frozen_backward_rows(tr) : R;
    // head: score_s = <rmsnorm(x_final_s), output[yes]>
    memset(tr->d_last, 0, (size_t)tr->n_seq * C * sizeof(float));
    const float *yes_row = answer_row(tr, tr->yes_id);
    float *d_yes_row = collm_llm_trainer_grad_of(tr, yes_row);
    float *d_out_norm = collm_llm_trainer_grad_of(tr, m->output_norm);
    float *d_norm = tr->g.d_xn; // (1, C) scratch
    for (int s = 0; s < tr->n_seq; s++) {
        for (int c = 0; c < C; c++) d_norm[c] = dscores[s] * yes_row[c];
        if (d_yes_row) collm_ops_axpy(d_yes_row, dscores[s], tr->last_norm + (int64_t)s * C, C);
        collm_ops_rmsnorm_backward(tr->d_last + (int64_t)s * C, d_out_norm, d_norm, tr->x_final + (int64_t)s * C,
                             m->output_norm, tr->last_rstd + s, 1, C);
    }
    // the blocks, last to first: d_x holds ∂L/∂(block output) on entry, ∂L/∂(block input) after
    const collm_llm_layer_weights *grads = tr->full_finetune ? tr->grads : NULL;
    for (int l = hp->n_layer - 1; l >= 0; l--) {
        collm_llm_block *b = &tr->blocks[l];
        b->bwd_rows = frozen ? tr->bwd_rows : NULL;
        b->n_bwd = A;
        b->bwd_q = frozen ? tr->bwd_q : NULL;
        int rc = collm_llm_block_backward(b, &tr->acts[l].blk, grads ? &grads[l] : NULL,
                                          l == hp->n_layer - 1 ? tr->d_last : tr->d_x, tr->d_x, &tr->g);
        if (rc != COLLM_OK) return rc;
    }
    // embeddings: slot rows → dslots, token rows → token_embd rows (d_x compact when frozen)
    for (int i = 0, s = 0; dslots && i < tr->n_slots; i++) {
        int64_t r = tr->slot_rows[i];
        if (r < 0) continue; // (a slot inside a run: scoring only, which has no backward)
        if (frozen) {
            while (s > 0 && r < tr->row_start[s]) s--;
            while (r >= tr->row_start[s + 1]) s++;
            r = tr->bwd_start[s] + (r - tr->row_start[s] + tr->n_shared - tr->bwd_first[s]);
        }
        collm_ops_axpy(dslots + (int64_t)i * C, 1.0f, tr->d_x + r * C, C);
    }
    float *d_embd = collm_llm_trainer_grad_of(tr, m->token_embd);
    if (d_embd)
        for (int64_t r = 0; r < R; r++)
            if (tr->tokens[r] >= 0) collm_ops_axpy(d_embd + (int64_t)tr->tokens[r] * C, 1.0f, tr->d_x + r * C, C);
    return COLLM_OK;
}
