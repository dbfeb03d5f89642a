// SASRec (method.md §4.2; Kang & McAuley 2018, as in the CoLLM authors'
// rec_base_models.py / baseline_train_sasrec.py).
//
// A sample's window w (T = hp.max_len ids, left-padded with 0, newest last)
// becomes rows x (T, d):
//   x0 = (E[w_t] · √d + P[t]) ⊙ dropout, zeroed where w_t = 0 (timeline mask)
// then n_layers blocks, each
//   Q  = LN_a(x)                              (T, d)
//   q = Q Wq^T + bq, k = x Wk^T + bk, v = x Wv^T + bv   (keys/values from x, not Q)
//   A  = softmax(q k^T / √hd + causal mask) per head, with dropout on A
//   x1 = Q + (A v) Wo^T + bo
//   F  = LN_f(x1)
//   x  = (F + drop(W2 relu(drop(W1 F + b1)) + b2)) ⊙ timeline mask
// and a final LN; the user vector is the output at the last position
// (T - 1). score = <user vector, E[item]>; loss = mean BCE with logits over
// (user, item, label) rows. There is no key padding mask (padded positions
// are keys with x = 0, as in the reference). LayerNorm eps 1e-8.
//
// Only the last position feeds the score, so the last block computes its
// queries, attention output, FFN and final LN for that row alone (its keys
// and values still cover every row).
//
// Training groups the rows whose windows are equal (consecutive rows of one
// user between two liked items): one forward per distinct window, the
// score of each row from it. Batches hold up to opt->batch rows of whole
// groups; groups are shuffled every epoch.
//
// Tensors (PyTorch initialisation): sasrec.item_embd (n_items, d) N(0,1) with
// row 0 zero (padding_idx: never updated); sasrec.pos_embd (T, d) N(0,1);
// per block b: sasrec.blk.b.attn_norm.{weight,bias} (1, d), attn_in.weight
// (3d, d) xavier-uniform, attn_in.bias (1, 3d) 0, attn_out.weight (d, d)
// U(±1/√d), attn_out.bias 0, ffn_norm.{weight,bias}, ffn_up / ffn_down
// .weight (d, d) and .bias (1, d) U(±1/√d) (Conv1d k=1); sasrec.out_norm.{weight,bias}.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cf/cf_internal.h"
#include "cf/cf_nn.h"
#include "cf/encoders.h"
#include "collm/dist.h"
#include "collm/error.h"
#include "core/ops.h"

enum { SAS_MAX_BLOCKS = 8 };
#define SAS_LN_EPS 1e-8f

typedef struct {
    int an_w, an_b, in_w, in_b, out_w, out_b, fn_w, fn_b, up_w, up_b, down_w, down_b;
} sas_block_idx;

typedef struct {
    cf_params p;
    int i_item, i_pos, i_onw, i_onb;
    sas_block_idx blk[SAS_MAX_BLOCKS];
} sas_impl;

// Activations of one block for S sequences; nq = query rows per sequence
// (T, or 1 for the last block), Sq = S · nq.
typedef struct {
    float *xin;          // (S·T, d) block input (the previous block's xout)
    float *Q, *Qmu, *Qrs; // (Sq, d), (Sq), (Sq): LN_a at the query rows
    float *q;            // (Sq, d)
    float *kv;           // (S·T, 2d): k | v per row
    float *att, *attm;   // (S, H, nq, T) softmax probabilities; dropout scale (or NULL)
    float *o;            // (Sq, d) attention output (heads concatenated)
    float *x1;           // (Sq, d) Q + out-proj
    float *F, *Fmu, *Frs; // (Sq, d), (Sq), (Sq)
    float *a, *m1;       // (Sq, d) (W1 F + b1) ⊙ m1, and the dropout scale m1
    float *h;            // (Sq, d) relu(a)
    float *m2;           // (Sq, d) dropout scale of the FFN output
    float *xout;         // (Sq, d) block output
} sas_act;

typedef struct {
    int S_cap, T, d, H, nb;
    int dropped;         // the last forward drew dropout masks (the backward applies them)
    sas_act act[SAS_MAX_BLOCKS];
    float *x0, *em;      // (S·T, d) embedding rows before the mask; dropout scale
    float *tm;           // (S·T) timeline mask 0/1
    int32_t *win;        // (S·T) the windows
    float *feat, *fmu, *frs; // (S, d), (S), (S) final LN of the last rows
    // backward scratch
    float *dx;           // (S·T, d) gradient of a block's input
    float *dkv;          // (S·T, 2d)
    float *dq, *dQ, *do_, *dx1, *dF, *dh, *da, *dxo; // (Sq_max, d)
    float *dfeat;        // (S, d)
} sas_ws;

static int sas_nq(const sas_ws *ws, int b) { return b == ws->nb - 1 ? 1 : ws->T; }

static void sas_ws_free(sas_ws *ws) {
    for (int b = 0; b < ws->nb; b++) {
        sas_act *a = &ws->act[b];
        if (b == 0) free(a->xin);
        free(a->Q), free(a->Qmu), free(a->Qrs), free(a->q), free(a->kv), free(a->att), free(a->attm), free(a->o);
        free(a->x1), free(a->F), free(a->Fmu), free(a->Frs), free(a->a), free(a->m1), free(a->h), free(a->m2);
        free(a->xout);
    }
    free(ws->x0), free(ws->em), free(ws->tm), free(ws->win), free(ws->feat), free(ws->fmu), free(ws->frs);
    free(ws->dx), free(ws->dkv), free(ws->dq), free(ws->dQ), free(ws->do_), free(ws->dx1), free(ws->dF), free(ws->dh);
    free(ws->da), free(ws->dxo), free(ws->dfeat);
    memset(ws, 0, sizeof *ws);
}

#define SAS_ALLOC(ptr, count)                                                       \
    do {                                                                            \
        (ptr) = collm_malloc((size_t)((count) > 0 ? (count) : 1) * sizeof *(ptr)); \
        if (!(ptr)) ok = 0;                                                         \
    } while (0)

// Workspace for up to S_cap sequences; `training` adds dropout masks and the backward scratch.
static int sas_ws_alloc(sas_ws *ws, const collm_cf_model *m, int S_cap, int training) {
    memset(ws, 0, sizeof *ws);
    const int64_t T = m->hp.max_len, d = m->dim, H = m->hp.n_heads, S = S_cap;
    ws->S_cap = S_cap, ws->T = (int)T, ws->d = (int)d, ws->H = (int)H, ws->nb = m->hp.n_layers;
    int ok = 1;
    for (int b = 0; b < ws->nb; b++) {
        sas_act *a = &ws->act[b];
        int64_t nq = sas_nq(ws, b), Sq = S * nq;
        if (b == 0) SAS_ALLOC(a->xin, S * T * d);
        else a->xin = ws->act[b - 1].xout;
        SAS_ALLOC(a->Q, Sq * d); SAS_ALLOC(a->Qmu, Sq); SAS_ALLOC(a->Qrs, Sq); SAS_ALLOC(a->q, Sq * d);
        SAS_ALLOC(a->kv, S * T * 2 * d); SAS_ALLOC(a->att, S * H * nq * T); SAS_ALLOC(a->o, Sq * d);
        SAS_ALLOC(a->x1, Sq * d); SAS_ALLOC(a->F, Sq * d); SAS_ALLOC(a->Fmu, Sq); SAS_ALLOC(a->Frs, Sq);
        SAS_ALLOC(a->a, Sq * d); SAS_ALLOC(a->h, Sq * d); SAS_ALLOC(a->xout, Sq * d);
        if (training) {
            SAS_ALLOC(a->attm, S * H * nq * T);
            SAS_ALLOC(a->m1, Sq * d);
            SAS_ALLOC(a->m2, Sq * d);
        }
    }
    SAS_ALLOC(ws->x0, S * T * d); SAS_ALLOC(ws->tm, S * T); SAS_ALLOC(ws->win, S * T);
    SAS_ALLOC(ws->feat, S * d); SAS_ALLOC(ws->fmu, S); SAS_ALLOC(ws->frs, S);
    if (training) {
        int64_t Sq = S * T;
        SAS_ALLOC(ws->em, S * T * d); SAS_ALLOC(ws->dx, S * T * d); SAS_ALLOC(ws->dkv, S * T * 2 * d);
        SAS_ALLOC(ws->dq, Sq * d); SAS_ALLOC(ws->dQ, Sq * d); SAS_ALLOC(ws->do_, Sq * d); SAS_ALLOC(ws->dx1, Sq * d);
        SAS_ALLOC(ws->dF, Sq * d); SAS_ALLOC(ws->dh, Sq * d); SAS_ALLOC(ws->da, Sq * d); SAS_ALLOC(ws->dxo, Sq * d);
        SAS_ALLOC(ws->dfeat, S * d);
    }
    if (!ok) {
        sas_ws_free(ws);
        return COLLM_ERR_NOMEM;
    }
    return COLLM_OK;
}

// Dropout scale: 0 with probability p, else 1/(1-p). Two 32-bit draws per
// 64-bit random number (the masks are most of the random numbers drawn).
static void sas_dropout_mask(float *mask, int64_t n, double p, collm_rng *rng) {
    const float keep = (float)(1.0 / (1.0 - p));
    const uint32_t thresh = (uint32_t)(p * 4294967296.0 < 4294967295.0 ? p * 4294967296.0 : 4294967295.0);
    int64_t i = 0;
    for (; i + 1 < n; i += 2) {
        uint64_t x = collm_rng_next(rng);
        mask[i] = (uint32_t)x < thresh ? 0.0f : keep;
        mask[i + 1] = (uint32_t)(x >> 32) < thresh ? 0.0f : keep;
    }
    if (i < n) mask[i] = (uint32_t)collm_rng_next(rng) < thresh ? 0.0f : keep;
}

// --- attention, one sequence per task

typedef struct {
    sas_ws *ws;
    sas_act *a;
    int nq;
    const float *mask; // dropout scale of the probabilities, or NULL
    const float *dout; // backward: d(o) (Sq, d)
    float *dq, *dkv;   // backward outputs (accumulate)
} sas_att_ctx;

// o[s, t] = Σ_{j ≤ t} drop(softmax_j(q[s,t]·k[s,j] / √hd)) v[s,j] per head
static void sas_att_forward_task(void *ctx, int64_t begin, int64_t end, int thread_index) {
    (void)thread_index;
    sas_att_ctx *c = ctx;
    const sas_ws *ws = c->ws;
    const int T = ws->T, d = ws->d, H = ws->H, hd = d / H, nq = c->nq, q0 = T - nq;
    const float scale = 1.0f / sqrtf((float)hd);
    for (int64_t s = begin; s < end; s++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < nq; i++) {
                int t = q0 + i; // absolute position of this query
                const float *q = c->a->q + (s * nq + i) * d + h * hd;
                float *p = c->a->att + ((s * H + h) * nq + i) * T;
                float mx = -INFINITY;
                for (int j = 0; j <= t; j++) {
                    p[j] = collm_ops_dot(q, c->a->kv + (s * T + j) * 2 * d + h * hd, hd) * scale;
                    if (p[j] > mx) mx = p[j];
                }
                float sum = 0;
                for (int j = 0; j <= t; j++) sum += (p[j] = expf(p[j] - mx));
                for (int j = 0; j <= t; j++) p[j] /= sum;
                for (int j = t + 1; j < T; j++) p[j] = 0;
                float *o = c->a->o + (s * nq + i) * d + h * hd;
                memset(o, 0, (size_t)hd * sizeof *o);
                const float *mask = c->mask ? c->mask + ((s * H + h) * nq + i) * T : NULL;
                for (int j = 0; j <= t; j++)
                    collm_ops_axpy(o, mask ? p[j] * mask[j] : p[j], c->a->kv + (s * T + j) * 2 * d + d + h * hd, hd);
            }
}

static void sas_att_backward_task(void *ctx, int64_t begin, int64_t end, int thread_index) {
    (void)thread_index;
    sas_att_ctx *c = ctx;
    const sas_ws *ws = c->ws;
    const int T = ws->T, d = ws->d, H = ws->H, hd = d / H, nq = c->nq, q0 = T - nq;
    const float scale = 1.0f / sqrtf((float)hd);
    float dp[4096];
    for (int64_t s = begin; s < end; s++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < nq; i++) {
                int t = q0 + i;
                const float *p = c->a->att + ((s * H + h) * nq + i) * T;
                const float *mask = c->mask ? c->mask + ((s * H + h) * nq + i) * T : NULL;
                const float *dout = c->dout + (s * nq + i) * d + h * hd;
                const float *q = c->a->q + (s * nq + i) * d + h * hd;
                float *dq = c->dq + (s * nq + i) * d + h * hd;
                // dv_j += p̃_j dout; dp_j = (dout · v_j) ⊙ mask_j
                float dot = 0;
                for (int j = 0; j <= t; j++) {
                    const float *v = c->a->kv + (s * T + j) * 2 * d + d + h * hd;
                    float pj = mask ? p[j] * mask[j] : p[j];
                    collm_ops_axpy(c->dkv + (s * T + j) * 2 * d + d + h * hd, pj, dout, hd);
                    dp[j] = collm_ops_dot(dout, v, hd) * (mask ? mask[j] : 1.0f);
                    dot += p[j] * dp[j];
                }
                // softmax: ds_j = p_j (dp_j - Σ p dp); scores = q·k_j · scale
                for (int j = 0; j <= t; j++) {
                    float ds = p[j] * (dp[j] - dot) * scale;
                    const float *k = c->a->kv + (s * T + j) * 2 * d + h * hd;
                    collm_ops_axpy(dq, ds, k, hd);
                    collm_ops_axpy(c->dkv + (s * T + j) * 2 * d + h * hd, ds, q, hd);
                }
            }
}

// --- the encoder: windows ws->win (S, T) -> ws->feat (S, d)

static void sas_forward(const collm_cf_model *m, sas_ws *ws, int S, int training, double dropout, collm_rng *rng,
                        collm_pool *pool) {
    const sas_impl *w = m->impl;
    const cf_params *p = &w->p;
    const int T = ws->T, d = ws->d, H = ws->H;
    const int64_t R = (int64_t)S * T;
    const int drop = training && dropout > 0;
    const float sq = sqrtf((float)d);
    const float *E = cf_w(p, w->i_item), *P = cf_w(p, w->i_pos);
    ws->dropped = drop;
    // x0 (R, d) = (E[w] √d + P[t]) ⊙ em ⊙ tm
    float *x = ws->act[0].xin;
    if (drop) sas_dropout_mask(ws->em, R * d, dropout, rng);
    for (int64_t r = 0; r < R; r++) {
        int32_t id = ws->win[r];
        ws->tm[r] = id != 0;
        const float *e = E + (int64_t)id * d, *pt = P + (r % T) * d;
        float *xr = ws->x0 + r * d, *xo = x + r * d;
        for (int j = 0; j < d; j++) {
            xr[j] = e[j] * sq + pt[j];
            xo[j] = id ? (drop ? xr[j] * ws->em[r * d + j] : xr[j]) : 0.0f;
        }
    }
    for (int b = 0; b < ws->nb; b++) {
        const sas_block_idx *bi = &w->blk[b];
        sas_act *a = &ws->act[b];
        const int nq = sas_nq(ws, b), q0 = T - nq;
        const int64_t Sq = (int64_t)S * nq;
        // Q (Sq, d) = LN_a(xin) at the query rows
        if (nq == T) cf_layernorm_forward(a->Q, a->Qmu, a->Qrs, a->xin, cf_w(p, bi->an_w), cf_w(p, bi->an_b), Sq, d, SAS_LN_EPS);
        else
            for (int64_t s = 0; s < S; s++)
                for (int i = 0; i < nq; i++)
                    cf_layernorm_forward(a->Q + (s * nq + i) * d, a->Qmu + s * nq + i, a->Qrs + s * nq + i,
                                         a->xin + (s * T + q0 + i) * d, cf_w(p, bi->an_w), cf_w(p, bi->an_b), 1, d,
                                         SAS_LN_EPS);
        // q (Sq, d) = Q Wq^T + bq;  kv (R, 2d) = xin [Wk; Wv]^T + [bk; bv]
        const float *Win = cf_w(p, bi->in_w), *bin = cf_w(p, bi->in_b);
        collm_ops_matmul_forward(a->q, a->Q, Win, bin, (int)Sq, d, d, NULL);
        collm_ops_matmul_forward(a->kv, a->xin, Win + (int64_t)d * d, bin + d, (int)R, d, 2 * d, NULL);
        // attention (dropout on the probabilities)
        if (drop) sas_dropout_mask(a->attm, (int64_t)S * H * nq * T, dropout, rng);
        sas_att_ctx ac = {ws, a, nq, drop ? a->attm : NULL, NULL, NULL, NULL};
        collm_pool_for(pool, S, 8, sas_att_forward_task, &ac);
        // x1 (Sq, d) = Q + o Wo^T + bo
        collm_ops_matmul_forward(a->x1, a->o, cf_w(p, bi->out_w), cf_w(p, bi->out_b), (int)Sq, d, d, NULL);
        for (int64_t k = 0; k < Sq * d; k++) a->x1[k] += a->Q[k];
        // F = LN_f(x1); a = (F W1^T + b1) ⊙ m1; h = relu(a); xout = (F + (h W2^T + b2) ⊙ m2) ⊙ tm
        cf_layernorm_forward(a->F, a->Fmu, a->Frs, a->x1, cf_w(p, bi->fn_w), cf_w(p, bi->fn_b), Sq, d, SAS_LN_EPS);
        collm_ops_matmul_forward(a->a, a->F, cf_w(p, bi->up_w), cf_w(p, bi->up_b), (int)Sq, d, d, NULL);
        if (drop) {
            sas_dropout_mask(a->m1, Sq * d, dropout, rng);
            for (int64_t k = 0; k < Sq * d; k++) a->a[k] *= a->m1[k];
        }
        for (int64_t k = 0; k < Sq * d; k++) a->h[k] = a->a[k] > 0 ? a->a[k] : 0.0f;
        collm_ops_matmul_forward(a->xout, a->h, cf_w(p, bi->down_w), cf_w(p, bi->down_b), (int)Sq, d, d, NULL);
        if (drop) {
            sas_dropout_mask(a->m2, Sq * d, dropout, rng);
            for (int64_t k = 0; k < Sq * d; k++) a->xout[k] *= a->m2[k];
        }
        for (int64_t s = 0; s < S; s++)
            for (int i = 0; i < nq; i++) {
                float t_m = ws->tm[s * T + q0 + i];
                float *xo = a->xout + (s * nq + i) * d;
                const float *f = a->F + (s * nq + i) * d;
                for (int j = 0; j < d; j++) xo[j] = (xo[j] + f[j]) * t_m;
            }
    }
    // feat (S, d) = LN_out of the last row (the last block has one row per sequence)
    cf_layernorm_forward(ws->feat, ws->fmu, ws->frs, ws->act[ws->nb - 1].xout, cf_w(p, w->i_onw), cf_w(p, w->i_onb), S,
                         d, SAS_LN_EPS);
}

// Backward from dfeat (S, d) into p->g (accumulates).
static void sas_backward(const collm_cf_model *m, sas_ws *ws, int S, collm_pool *pool) {
    const sas_impl *w = m->impl;
    const cf_params *p = &w->p;
    const int T = ws->T, d = ws->d;
    const int64_t R = (int64_t)S * T;
    const float sq = sqrtf((float)d);
    const int drop = ws->dropped;
    // final LN: dxo (S, d) of the last block's output rows
    memset(ws->dxo, 0, (size_t)S * d * sizeof(float));
    cf_layernorm_backward(ws->dxo, cf_g(p, w->i_onw), cf_g(p, w->i_onb), ws->dfeat, ws->act[ws->nb - 1].xout, ws->fmu,
                          ws->frs, cf_w(p, w->i_onw), S, d);
    // dx (R, d): gradient of the current block's input, built block by block
    float *dx = ws->dx;
    for (int b = ws->nb - 1; b >= 0; b--) {
        const sas_block_idx *bi = &w->blk[b];
        sas_act *a = &ws->act[b];
        const int nq = sas_nq(ws, b), q0 = T - nq;
        const int64_t Sq = (int64_t)S * nq;
        // dxout (Sq, d): from the final LN (last block) or the next block's dx
        float *dxo = ws->dxo;
        if (b != ws->nb - 1) memcpy(dxo, dx, (size_t)Sq * d * sizeof(float));
        // timeline mask; xout = F + drop(h W2^T + b2)
        for (int64_t s = 0; s < S; s++)
            for (int i = 0; i < nq; i++) {
                float t_m = ws->tm[s * T + q0 + i];
                float *g = dxo + (s * nq + i) * d;
                for (int j = 0; j < d; j++) g[j] *= t_m;
            }
        memcpy(ws->dF, dxo, (size_t)Sq * d * sizeof(float)); // residual
        if (drop)
            for (int64_t k = 0; k < Sq * d; k++) dxo[k] *= a->m2[k];
        memset(ws->dh, 0, (size_t)Sq * d * sizeof(float));
        collm_ops_matmul_backward(ws->dh, cf_g(p, bi->down_w), cf_g(p, bi->down_b), dxo, a->h, cf_w(p, bi->down_w),
                                  (int)Sq, d, d, NULL);
        // h = relu(a), a = (F W1^T + b1) ⊙ m1
        for (int64_t k = 0; k < Sq * d; k++) {
            float g = a->a[k] > 0 ? ws->dh[k] : 0.0f;
            ws->da[k] = drop ? g * a->m1[k] : g;
        }
        collm_ops_matmul_backward(ws->dF, cf_g(p, bi->up_w), cf_g(p, bi->up_b), ws->da, a->F, cf_w(p, bi->up_w), (int)Sq,
                                  d, d, NULL);
        // F = LN_f(x1)
        memset(ws->dx1, 0, (size_t)Sq * d * sizeof(float));
        cf_layernorm_backward(ws->dx1, cf_g(p, bi->fn_w), cf_g(p, bi->fn_b), ws->dF, a->x1, a->Fmu, a->Frs,
                              cf_w(p, bi->fn_w), Sq, d);
        // x1 = Q + o Wo^T + bo
        memcpy(ws->dQ, ws->dx1, (size_t)Sq * d * sizeof(float));
        memset(ws->do_, 0, (size_t)Sq * d * sizeof(float));
        collm_ops_matmul_backward(ws->do_, cf_g(p, bi->out_w), cf_g(p, bi->out_b), ws->dx1, a->o, cf_w(p, bi->out_w),
                                  (int)Sq, d, d, NULL);
        // attention
        memset(ws->dq, 0, (size_t)Sq * d * sizeof(float));
        memset(ws->dkv, 0, (size_t)R * 2 * d * sizeof(float));
        sas_att_ctx ac = {ws, a, nq, drop ? a->attm : NULL, ws->do_, ws->dq, ws->dkv};
        collm_pool_for(pool, S, 8, sas_att_backward_task, &ac);
        // q = Q Wq^T + bq; kv = xin [Wk; Wv]^T + [bk; bv]
        const float *Win = cf_w(p, bi->in_w);
        float *gWin = cf_g(p, bi->in_w), *gbin = cf_g(p, bi->in_b);
        collm_ops_matmul_backward(ws->dQ, gWin, gbin, ws->dq, a->Q, Win, (int)Sq, d, d, NULL);
        memset(dx, 0, (size_t)R * d * sizeof(float));
        collm_ops_matmul_backward(dx, gWin + (int64_t)d * d, gbin + d, ws->dkv, a->xin, Win + (int64_t)d * d, (int)R, d,
                                  2 * d, NULL);
        // Q = LN_a(xin) at the query rows
        if (nq == T)
            cf_layernorm_backward(dx, cf_g(p, bi->an_w), cf_g(p, bi->an_b), ws->dQ, a->xin, a->Qmu, a->Qrs,
                                  cf_w(p, bi->an_w), Sq, d);
        else
            for (int64_t s = 0; s < S; s++)
                for (int i = 0; i < nq; i++)
                    cf_layernorm_backward(dx + (s * T + q0 + i) * d, cf_g(p, bi->an_w), cf_g(p, bi->an_b),
                                          ws->dQ + (s * nq + i) * d, a->xin + (s * T + q0 + i) * d, a->Qmu + s * nq + i,
                                          a->Qrs + s * nq + i, cf_w(p, bi->an_w), 1, d);
    }
    // x0 = (E[w] √d + P[t]) ⊙ em ⊙ tm
    float *gE = cf_g(p, w->i_item), *gP = cf_g(p, w->i_pos);
    for (int64_t r = 0; r < R; r++) {
        int32_t id = ws->win[r];
        if (!id) continue; // masked row (and padding id 0 never learns)
        const float *g = dx + r * d, *em = drop ? ws->em + r * d : NULL;
        float *ge = gE + (int64_t)id * d, *gp = gP + (r % T) * d;
        for (int j = 0; j < d; j++) {
            float gj = em ? g[j] * em[j] : g[j];
            ge[j] += gj * sq;
            gp[j] += gj;
        }
    }
}

// --- scoring

// Sequence index of each row: rows whose window equals the previous row's
// share it. Copies the distinct windows into ws->win; returns their count.
static int sas_dedup(const int32_t *win, int64_t n, int T, int32_t *seq_of_row, int32_t *out_win) {
    int S = 0;
    for (int64_t r = 0; r < n; r++) {
        if (r == 0 || memcmp(win + r * T, win + (r - 1) * T, (size_t)T * sizeof *win) != 0) {
            memcpy(out_win + (int64_t)S * T, win + r * T, (size_t)T * sizeof *win);
            S++;
        }
        seq_of_row[r] = S - 1;
    }
    return S;
}

enum { SAS_EVAL_SEQS = 512 };

// Eval-mode user vectors of n samples: uvec (n, d). Rows are cut into runs
// of at most SAS_EVAL_SEQS distinct consecutive windows.
static int sas_user_vectors(const collm_cf_model *m, int64_t n, const int32_t *win, float *uvec, collm_pool *pool) {
    const int T = m->hp.max_len, d = m->dim;
    sas_ws ws;
    int rc = sas_ws_alloc(&ws, m, (int)(n < SAS_EVAL_SEQS ? (n > 0 ? n : 1) : SAS_EVAL_SEQS), 0);
    if (rc) return rc;
    int32_t *seq = collm_malloc((size_t)(n > 0 ? n : 1) * sizeof *seq);
    if (!seq) {
        sas_ws_free(&ws);
        return COLLM_ERR_NOMEM;
    }
    unsigned fp = cf_fpmode_enter();
    for (int64_t off = 0; off < n; off += SAS_EVAL_SEQS) {
        int64_t k = n - off < SAS_EVAL_SEQS ? n - off : SAS_EVAL_SEQS;
        int S = sas_dedup(win + off * T, k, T, seq + off, ws.win);
        sas_forward(m, &ws, S, 0, 0.0, NULL, pool);
        for (int64_t r = 0; r < k; r++) memcpy(uvec + (off + r) * d, ws.feat + (int64_t)seq[off + r] * d, (size_t)d * sizeof(float));
    }
    cf_fpmode_leave(fp);
    free(seq);
    sas_ws_free(&ws);
    return COLLM_OK;
}

static int sas_score_samples(const collm_cf_model *m, int64_t n, const int32_t *users, const int32_t *items,
                             const int32_t *win, float *scores, collm_pool *pool) {
    (void)users;
    const sas_impl *w = m->impl;
    const int d = m->dim;
    float *uvec = collm_malloc((size_t)(n > 0 ? n : 1) * d * sizeof *uvec);
    if (!uvec) return COLLM_ERR_NOMEM;
    int rc = sas_user_vectors(m, n, win, uvec, pool);
    const float *E = cf_w(&w->p, w->i_item);
    for (int64_t r = 0; !rc && r < n; r++) scores[r] = collm_ops_dot(uvec + r * d, E + (int64_t)items[r] * d, d);
    free(uvec);
    return rc;
}

static int sas_sample_vectors(const collm_cf_model *m, int64_t n, const int32_t *users, const int32_t *items,
                              const int32_t *win, float *uvec, float *ivec, collm_pool *pool) {
    (void)users;
    const sas_impl *w = m->impl;
    const int d = m->dim;
    int rc = sas_user_vectors(m, n, win, uvec, pool);
    for (int64_t r = 0; !rc && r < n; r++)
        memcpy(ivec + r * d, cf_w(&w->p, w->i_item) + (int64_t)items[r] * d, (size_t)d * sizeof(float));
    return rc;
}

// --- loss and gradient of a batch of S distinct windows (ws->win) and n rows

static double sas_batch_loss_grad(collm_cf_model *m, sas_ws *ws, int S, int64_t n, const int32_t *seq_of_row,
                                  const int32_t *items, const float *labels, float *logit, float *dlogit,
                                  double dropout, collm_rng *rng, collm_pool *pool) {
    sas_impl *w = m->impl;
    cf_params *p = &w->p;
    const int d = m->dim;
    const float *E = cf_w(p, w->i_item);
    float *gE = cf_g(p, w->i_item);
    sas_forward(m, ws, S, 1, dropout, rng, pool);
    for (int64_t r = 0; r < n; r++) logit[r] = collm_ops_dot(ws->feat + (int64_t)seq_of_row[r] * d, E + (int64_t)items[r] * d, d);
    double loss = cf_bce(dlogit, logit, labels, n);
    cf_params_zero_grad(p);
    memset(ws->dfeat, 0, (size_t)S * d * sizeof(float));
    for (int64_t r = 0; r < n; r++) {
        collm_ops_axpy(ws->dfeat + (int64_t)seq_of_row[r] * d, dlogit[r], E + (int64_t)items[r] * d, d);
        if (items[r]) collm_ops_axpy(gE + (int64_t)items[r] * d, dlogit[r], ws->feat + (int64_t)seq_of_row[r] * d, d);
    }
    sas_backward(m, ws, S, pool);
    return loss;
}

static double sas_loss_grad(collm_cf_model *m, int64_t n, const int32_t *users, const int32_t *items, const int32_t *win,
                            const float *labels, double dropout, uint64_t seed, collm_pool *pool) {
    (void)users;
    sas_impl *w = m->impl;
    const int T = m->hp.max_len;
    if (cf_params_alloc_train(&w->p)) return NAN;
    sas_ws ws;
    if (sas_ws_alloc(&ws, m, (int)(n > 0 ? n : 1), 1)) return NAN;
    int32_t *seq = collm_malloc((size_t)(n > 0 ? n : 1) * sizeof *seq);
    float *logit = collm_malloc((size_t)(n > 0 ? n : 1) * sizeof *logit);
    float *dlogit = collm_malloc((size_t)(n > 0 ? n : 1) * sizeof *dlogit);
    double loss = NAN;
    if (seq && logit && dlogit) {
        collm_rng rng;
        collm_rng_seed(&rng, seed);
        int S = sas_dedup(win, n, T, seq, ws.win);
        loss = sas_batch_loss_grad(m, &ws, S, n, seq, items, labels, logit, dlogit, dropout, &rng, pool);
    }
    free(seq), free(logit), free(dlogit);
    sas_ws_free(&ws);
    return loss;
}

// --- training

typedef struct {
    collm_cf_model *m;
    const collm_rec_split *train;
    const collm_cf_train_options *opt;
    collm_pool *pool;
    sas_ws ws;
    int32_t *win;          // (N, T) windows of every train row
    int64_t *group_start;  // (G + 1) rows of group g: group_start[g] .. group_start[g+1) (file order)
    int32_t *group_order;  // (G) shuffled every epoch
    int64_t n_groups;
    int32_t *seq, *items;  // (batch) per row of a batch
    float *labels, *logit, *dlogit;
    int64_t step;
} sas_train_state;

// Data parallel (mpirun): this rank's part of a batch of n rows (in s->seq,
// grouped by window, windows in order), its gradient, and the sum over
// the ranks (cf_params_allreduce): *loss = the batch's mean loss. A window
// stays whole on one rank: the rank whose near-equal share of the rows
// [lo, hi) holds its first row. Dropout masks come from a stream of this
// rank's own, seeded per step from the shared one (which every rank advances
// alike: the shuffles stay the same on every rank).
static int sas_rank_step(sas_train_state *s, int64_t n, collm_rng *rng, double *loss) {
    const int T = s->m->hp.max_len;
    const int rank = collm_dist_rank();
    int64_t lo, hi;
    collm_dist_slice(n, rank, collm_dist_size(), &lo, &hi);
    // windows [w_lo, w_hi): those whose first row is in [lo, hi); rows [r_lo, r_hi): theirs
    const int w_lo = lo > 0 ? s->seq[lo - 1] + 1 : 0, w_hi = hi > 0 ? s->seq[hi - 1] + 1 : 0;
    int64_t r_lo = 0, r_hi = 0;
    while (r_lo < n && s->seq[r_lo] < w_lo) r_lo++;
    for (r_hi = r_lo; r_hi < n && s->seq[r_hi] < w_hi; r_hi++) s->seq[r_hi] -= w_lo;
    collm_rng local;
    collm_rng_seed(&local, s->opt->dropout > 0 ? collm_rng_next(rng) ^ (0x9e3779b97f4a7c15ULL * (uint64_t)(rank + 1)) : 0);
    double mine = 0;
    if (r_hi > r_lo) {
        memmove(s->ws.win, s->ws.win + (int64_t)w_lo * T, (size_t)(w_hi - w_lo) * T * sizeof(int32_t));
        mine = sas_batch_loss_grad(s->m, &s->ws, w_hi - w_lo, r_hi - r_lo, s->seq + r_lo, s->items + r_lo,
                                   s->labels + r_lo, s->logit + r_lo, s->dlogit + r_lo, s->opt->dropout, &local,
                                   s->pool);
    } else { // every row of the batch went to windows other ranks hold
        cf_params_zero_grad(&((sas_impl *)s->m->impl)->p);
    }
    *loss = mine;
    return cf_params_allreduce(&((sas_impl *)s->m->impl)->p, loss, (float)(r_hi - r_lo) / (float)n);
}

static int sas_epoch(void *state, collm_rng *rng, double *mean_loss) {
    sas_train_state *s = state;
    sas_impl *w = s->m->impl;
    const int T = s->m->hp.max_len;
    const int64_t cap = s->opt->batch;
    collm_rng_shuffle_i32(rng, s->group_order, s->n_groups);
    const int size = collm_dist_size();
    double loss_sum = 0;
    int64_t rows = 0;
    unsigned fp = cf_fpmode_enter();
    for (int64_t g0 = 0; g0 < s->n_groups;) {
        int S = 0;
        int64_t n = 0;
        // whole groups until the batch is full (at least one group; a group larger than the batch is cut)
        while (g0 < s->n_groups && S < s->ws.S_cap) {
            int64_t g = s->group_order[g0], b = s->group_start[g], e = s->group_start[g + 1];
            if (n > 0 && n + (e - b) > cap) break;
            if (e - b > cap) e = b + cap;
            memcpy(s->ws.win + (int64_t)S * T, s->win + b * T, (size_t)T * sizeof(int32_t));
            for (int64_t r = b; r < e; r++) {
                s->seq[n] = S;
                s->items[n] = s->train->item[r];
                s->labels[n] = s->train->label[r] ? 1.0f : 0.0f;
                n++;
            }
            S++;
            g0++;
        }
        double loss;
        if (size > 1) {
            int rc = sas_rank_step(s, n, rng, &loss);
            if (rc) {
                cf_fpmode_leave(fp);
                return rc;
            }
        } else {
            loss = sas_batch_loss_grad(s->m, &s->ws, S, n, s->seq, s->items, s->labels, s->logit, s->dlogit,
                                       s->opt->dropout, rng, s->pool);
        }
        loss_sum += loss * (double)n;
        rows += n;
        cf_params_adam(&w->p, s->opt, ++s->step, s->pool);
    }
    cf_fpmode_leave(fp);
    *mean_loss = loss_sum / (double)(rows > 0 ? rows : 1);
    return COLLM_OK;
}

static int sas_train(collm_cf_model *m, const collm_rec_split *train, const collm_rec_split *eval,
                     const collm_cf_train_options *opt, collm_pool *pool, collm_cf_progress_fn progress,
                     void *progress_ctx, collm_cf_train_result *result) {
    sas_impl *w = m->impl;
    const int64_t N = train->n, T = m->hp.max_len;
    int rc = cf_train_begin(m, &w->p, train);
    if (rc) return rc;
    const int64_t cap = opt->batch < N ? opt->batch : N;
    sas_train_state s;
    memset(&s, 0, sizeof s);
    s.m = m, s.train = train, s.opt = opt, s.pool = pool;
    s.win = cf_split_windows(train, (int)T);
    s.group_start = collm_malloc(((size_t)N + 1) * sizeof *s.group_start);
    s.group_order = collm_malloc((size_t)N * sizeof *s.group_order);
    s.seq = collm_malloc((size_t)cap * sizeof *s.seq);
    s.items = collm_malloc((size_t)cap * sizeof *s.items);
    s.labels = collm_malloc((size_t)cap * sizeof *s.labels);
    s.logit = collm_malloc((size_t)cap * sizeof *s.logit);
    s.dlogit = collm_malloc((size_t)cap * sizeof *s.dlogit);
    if (!s.win || !s.group_start || !s.group_order || !s.seq || !s.items || !s.labels || !s.logit || !s.dlogit)
        rc = COLLM_ERR_NOMEM;
    if (!rc) {
        // groups: consecutive rows of one user with the same window
        for (int64_t r = 0; r < N; r++)
            if (r == 0 || train->user[r] != train->user[r - 1] ||
                memcmp(s.win + r * T, s.win + (r - 1) * T, (size_t)T * sizeof(int32_t)) != 0)
                s.group_start[s.n_groups++] = r;
        s.group_start[s.n_groups] = N;
        for (int64_t g = 0; g < s.n_groups; g++) s.group_order[g] = (int32_t)g;
        rc = sas_ws_alloc(&s.ws, m, (int)cap, 1);
    }
    if (!rc) rc = cf_train_loop(m, cf_params_weights(&w->p), eval, opt, pool, progress, progress_ctx, result, sas_epoch, NULL, &s);
    sas_ws_free(&s.ws);
    free(s.win), free(s.group_start), free(s.group_order), free(s.seq), free(s.items), free(s.labels);
    free(s.logit), free(s.dlogit);
    return rc;
}

// --- vtable

// Tuned on ML-1M valid (2 threads, lr 1e-2, batch 2048). The authors' best
// run (d 64, window 25, wd 1e-2, dropout 0.2) peaks at valid AUC 0.6872
// after 48 epochs here (their log: 0.6902 at epoch 194); wd 1e-4 converges
// in ~14 epochs but overfits (0.6809; wd 1e-3: 0.58). Dropout is the lever:
// 0.5 / 0.6 give 0.6871 / 0.6877, and a window of 10 is as good as 25
// (0.6800 vs 0.6809 at dropout 0.2; 0.6871 vs 0.6876 at 0.5) at a third of
// the cost; 2 heads and lr 5e-3 were no better. d 128 with dropout 0.7
// gives 0.6901 / UAUC 0.6828 (seed 7: 0.6908 / 0.6835; d 256: 0.6901 /
// 0.6919 at 2.7x the cost), and with batch 1024 0.6904 / 0.6908 (best epoch 20).
static void sas_hparams_default(collm_cf_hparams *hp) {
    hp->dim = 128;    // the authors: 64
    hp->n_layers = 2; // blocks
    hp->n_heads = 1;  // their ML-1M search ("sasrec_head1")
    hp->max_len = 10; // the authors: 25
}

static void sas_train_defaults(collm_cf_train_options *opt) {
    opt->lr = 1e-2;
    opt->weight_decay = 1e-4; // the authors: 1e-2
    opt->batch = 1024; // the authors: 2048
    opt->max_epochs = 100;
    opt->patience = 8;
    opt->dropout = 0.7; // the authors: 0.2
}

static int sas_init(collm_cf_model *m, uint64_t seed, int initialise) {
    const collm_cf_hparams *hp = &m->hp;
    if (hp->n_layers < 1 || hp->n_layers > SAS_MAX_BLOCKS || hp->n_heads < 1 || hp->dim % hp->n_heads != 0 ||
        hp->max_len < 1 || hp->max_len > 4096)
        return collm_error(COLLM_ERR_ARG,
                           "sasrec: bad shape: %d blocks (1..%d), %d heads (must divide dim %d), window %d (1..4096)",
                           hp->n_layers, SAS_MAX_BLOCKS, hp->n_heads, hp->dim, hp->max_len);
    sas_impl *w = collm_calloc(1, sizeof *w);
    if (!w) return COLLM_ERR_NOMEM;
    m->impl = w;
    const int64_t d = m->dim;
    cf_params *p = &w->p;
    char name[48];
    int bad = 0;
    w->i_item = cf_params_add(p, "sasrec.item_embd", m->n_items, d, 1);
    w->i_pos = cf_params_add(p, "sasrec.pos_embd", hp->max_len, d, 1);
    for (int b = 0; b < hp->n_layers; b++) {
        sas_block_idx *bi = &w->blk[b];
#define SAS_ADD(field, suffix, rows, cols)                                     \
    snprintf(name, sizeof name, "sasrec.blk.%d.%s", b, suffix);               \
    bad |= (bi->field = cf_params_add(p, name, rows, cols, 1)) < 0
        SAS_ADD(an_w, "attn_norm.weight", 1, d);
        SAS_ADD(an_b, "attn_norm.bias", 1, d);
        SAS_ADD(in_w, "attn_in.weight", 3 * d, d);
        SAS_ADD(in_b, "attn_in.bias", 1, 3 * d);
        SAS_ADD(out_w, "attn_out.weight", d, d);
        SAS_ADD(out_b, "attn_out.bias", 1, d);
        SAS_ADD(fn_w, "ffn_norm.weight", 1, d);
        SAS_ADD(fn_b, "ffn_norm.bias", 1, d);
        SAS_ADD(up_w, "ffn_up.weight", d, d);
        SAS_ADD(up_b, "ffn_up.bias", 1, d);
        SAS_ADD(down_w, "ffn_down.weight", d, d);
        SAS_ADD(down_b, "ffn_down.bias", 1, d);
#undef SAS_ADD
    }
    w->i_onw = cf_params_add(p, "sasrec.out_norm.weight", 1, d, 1);
    w->i_onb = cf_params_add(p, "sasrec.out_norm.bias", 1, d, 1);
    if (bad || w->i_item < 0 || w->i_pos < 0 || w->i_onw < 0 || w->i_onb < 0) return COLLM_ERR_ARG; // error set
    if (!initialise) return COLLM_OK; // cf_params_load allocates once every shape matched
    int rc = cf_params_alloc(p);
    if (rc) return rc;
    // LayerNorm gains 1
    for (int b = 0; b < hp->n_layers; b++) {
        cf_fill(cf_w(p, w->blk[b].an_w), d, 1.0f);
        cf_fill(cf_w(p, w->blk[b].fn_w), d, 1.0f);
    }
    cf_fill(cf_w(p, w->i_onw), d, 1.0f);
    collm_rng rng;
    collm_rng_seed(&rng, seed);
    cf_init_normal(cf_w(p, w->i_item) + d, (m->n_items - 1) * d, 1.0, &rng); // row 0: padding
    cf_init_normal(cf_w(p, w->i_pos), hp->max_len * d, 1.0, &rng);
    const double lin = 1.0 / sqrt((double)d);
    for (int b = 0; b < hp->n_layers; b++) {
        const sas_block_idx *bi = &w->blk[b];
        cf_init_uniform(cf_w(p, bi->in_w), 3 * d * d, sqrt(6.0 / (double)(d + 3 * d)), &rng); // xavier_uniform_
        cf_init_uniform(cf_w(p, bi->out_w), d * d, lin, &rng);
        cf_init_uniform(cf_w(p, bi->up_w), d * d, lin, &rng);
        cf_init_uniform(cf_w(p, bi->up_b), d, lin, &rng);
        cf_init_uniform(cf_w(p, bi->down_w), d * d, lin, &rng);
        cf_init_uniform(cf_w(p, bi->down_b), d, lin, &rng);
    }
    return COLLM_OK;
}

static void sas_item_vector(const collm_cf_model *m, int32_t item, float *out) {
    const sas_impl *w = m->impl;
    memcpy(out, cf_w(&w->p, w->i_item) + (int64_t)item * m->dim, (size_t)m->dim * sizeof(float));
}

static cf_params *sas_params(const collm_cf_model *m) { return &((sas_impl *)m->impl)->p; }

const collm_cf_kind collm_cf_kind_sasrec = {
    .name = "sasrec",
    .uses_history = 1,
    .hparams_default = sas_hparams_default,
    .train_defaults = sas_train_defaults,
    .init = sas_init,
    .free_impl = cf_nn_free_impl,
    .item_vector = sas_item_vector,
    .score_samples = sas_score_samples,
    .sample_vectors = sas_sample_vectors,
    .train = sas_train,
    .params = sas_params,
    .loss_grad = sas_loss_grad,
    .save_tensors = cf_nn_save_tensors,
    .load_tensors = cf_nn_load_tensors,
};
