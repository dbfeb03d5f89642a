// DIN, the Deep Interest Network (method.md §4.2; Zhou et al. 2018, as
// RecEncoder_DIN in the CoLLM authors' rec_base_models.py).
//
// Per-field size e = dim / 3. For a sample (user u, target item i, window
// w of the last L = hp.max_len liked items, left-padded with 0):
//   q = I[i], hs_t = Hs[w_t] (a separate history table), uu = U[u]     (e)
//   attention unit per position t:
//     a_t = [q, hs_t, q - hs_t, q ⊙ hs_t]                             (4e)
//     s_t = W3 (W2 Dice(W1 a_t + b1) + b2) + b3       (4e -> 64 -> 16 -> 1)
//   (W1 a_t is computed as (Wa + Wc) q once per row plus [Wb - Wc | Wd] [hs_t, q ⊙ hs_t]
//   per position: half the work of the 4e-wide product, the same function)
//   masked positions (w_t = 0) get s_t = 0; no softmax
//   pooled = Σ_t s_t hs_t                                               (e)
//   x = [q, pooled, uu]                  (3e: CoLLM-DIN's user-side vector)
//   logit = W6 drop(Dice(W5 drop(Dice(W4 x + b4)) + b5)) + b6  (3e -> 200 -> 80 -> 1)
// loss = mean BCE with logits. The item-side vector is [q, q, q].
// Dice: p = σ(BN(z)), y = z (α + (1 - α) p) (cf_dice_*); its batch
// normalisation runs over the batch rows (the attention's over every
// (row, position) pair, padded positions included, as BatchNorm1d on
// (B, C, T) does) in training, and with the running statistics (momentum
// 0.1, eps 1e-8) in evaluation.
//
// Tensors (xavier-normal weights and embeddings, zero biases, Dice α 0, BN
// γ 1, β 0; running mean 0, var 1): din.user_embd (n_users, e),
// din.item_embd (n_items, e), din.his_embd (n_items, e); din.att1 (64, 4e),
// din.att2 (16, 64), din.att3 (1, 16), din.fc1 (200, 3e), din.fc2 (80, 200),
// din.fc3 (1, 80), each .weight with .bias (1, out); din.att1.dice /
// din.fc1.dice / din.fc2.dice .alpha .gamma .beta (1, C) and the buffers
// .run_mean .run_var (1, C).
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "cf/cf_internal.h"
#include "cf/cf_nn.h"
#include "cf/cf_rows.h"
#include "cf/encoders.h"
#include "collm/error.h"
#include "core/ops.h"

enum { DIN_A1 = 64, DIN_A2 = 16, DIN_F1 = 200, DIN_F2 = 80 };
#define DIN_BN_EPS 1e-8f
#define DIN_BN_MOMENTUM 0.1f

typedef struct {
    int alpha, gamma, beta, run_mean, run_var;
} din_dice_idx;

typedef struct {
    cf_params p;
    int e, L;
    int i_user, i_item, i_his;
    int a1w, a1b, a2w, a2b, a3w, a3b, f1w, f1b, f2w, f2b, f3w, f3b;
    din_dice_idx da1, df1, df2;
} din_impl;

// Activations of B rows (BL = B·L attention rows).
typedef struct {
    int cap;
    const int32_t *win;      // (B, L) the rows' windows (the caller's, set per batch)
    float *q, *uu;           // (B, e)
    float *hs;               // (BL, e)
    float *hin;              // (BL, 2e): [h, q ⊙ h] per position
    float *wq, *wh;          // (64, e) Wa + Wc and (64, 2e) [Wb - Wc | Wd]: W1 regrouped (see din_forward)
    float *zq;               // (B, 64) (Wa + Wc) q + b1
    float *z1, *y1, *xh1, *p1; // (BL, 64): W1 a + b1, Dice, x̂ of its BN, Dice gate
    float *rs1;              // (64)
    float *z2;               // (BL, 16)
    float *s;                // (BL) attention scores (0 where masked)
    float *x;                // (B, 3e) [q, pooled, uu]
    float *f1, *g1, *xf1, *pf1, *m1; // (B, 200): pre-Dice, Dice (then dropout), x̂, gate, dropout scale
    float *rsf1;             // (200)
    float *f2, *g2, *xf2, *pf2, *m2; // (B, 80)
    float *rsf2;             // (80)
    float *logit;            // (B)
    // backward scratch
    float *dlogit, *dg2, *df2, *dg1, *df1, *dx; // (B), (B,80), (B,80), (B,200), (B,200), (B,3e)
    float *ds, *dz2, *dy1, *dz1, *dhin, *dhs;   // (BL), (BL,16), (BL,64), (BL,64), (BL,2e), (BL,e)
    float *dzq, *dwq, *dwh, *dqz; // (B, 64), (64, e), (64, 2e), (B, e)
} din_ws;

// Every buffer of a workspace for B rows (BL = B·L) with its size in floats:
// the one list that allocation and free both walk. train: the backward's
// (and dropout's) buffers, absent from an evaluation workspace.
typedef struct {
    float **ptr;
    int64_t n;
    int train;
} din_buf;
enum { DIN_WS_BUFS = 44 };

static int din_ws_bufs(din_ws *ws, int64_t B, int64_t L, int64_t e, din_buf *t) {
    const int64_t BL = B * L;
    const din_buf all[] = {
        {&ws->q, B * e, 0},          {&ws->uu, B * e, 0},          {&ws->hs, BL * e, 0},
        {&ws->hin, BL * 2 * e, 0},   {&ws->wq, DIN_A1 * e, 0},     {&ws->wh, DIN_A1 * 2 * e, 0},
        {&ws->zq, B * DIN_A1, 0},    {&ws->z1, BL * DIN_A1, 0},    {&ws->y1, BL * DIN_A1, 0},
        {&ws->xh1, BL * DIN_A1, 0},  {&ws->p1, BL * DIN_A1, 0},    {&ws->rs1, DIN_A1, 0},
        {&ws->z2, BL * DIN_A2, 0},   {&ws->s, BL, 0},              {&ws->x, B * 3 * e, 0},
        {&ws->f1, B * DIN_F1, 0},    {&ws->g1, B * DIN_F1, 0},     {&ws->xf1, B * DIN_F1, 0},
        {&ws->pf1, B * DIN_F1, 0},   {&ws->rsf1, DIN_F1, 0},       {&ws->f2, B * DIN_F2, 0},
        {&ws->g2, B * DIN_F2, 0},    {&ws->xf2, B * DIN_F2, 0},    {&ws->pf2, B * DIN_F2, 0},
        {&ws->rsf2, DIN_F2, 0},      {&ws->logit, B, 0},
        {&ws->m1, B * DIN_F1, 1},    {&ws->m2, B * DIN_F2, 1},     {&ws->dlogit, B, 1},
        {&ws->dg2, B * DIN_F2, 1},   {&ws->df2, B * DIN_F2, 1},    {&ws->dg1, B * DIN_F1, 1},
        {&ws->df1, B * DIN_F1, 1},   {&ws->dx, B * 3 * e, 1},      {&ws->ds, BL, 1},
        {&ws->dz2, BL * DIN_A2, 1},  {&ws->dy1, BL * DIN_A1, 1},   {&ws->dz1, BL * DIN_A1, 1},
        {&ws->dhin, BL * 2 * e, 1},  {&ws->dhs, BL * e, 1},        {&ws->dzq, B * DIN_A1, 1},
        {&ws->dwq, DIN_A1 * e, 1},   {&ws->dwh, DIN_A1 * 2 * e, 1}, {&ws->dqz, B * e, 1},
    };
    _Static_assert(sizeof all / sizeof all[0] == DIN_WS_BUFS, "din_ws: one entry per buffer");
    _Static_assert(sizeof(din_ws) == offsetof(din_ws, q) + DIN_WS_BUFS * sizeof(float *), "din_ws: a buffer not listed");
    memcpy(t, all, sizeof all);
    return DIN_WS_BUFS;
}

static void din_ws_free(din_ws *ws) {
    din_buf t[DIN_WS_BUFS];
    int n = din_ws_bufs(ws, 0, 0, 0, t);
    for (int k = 0; k < n; k++) free(*t[k].ptr);
    memset(ws, 0, sizeof *ws);
}

static int din_ws_alloc(din_ws *ws, const din_impl *w, int cap, int training) {
    memset(ws, 0, sizeof *ws);
    ws->cap = cap;
    din_buf t[DIN_WS_BUFS];
    int n = din_ws_bufs(ws, cap > 0 ? cap : 1, w->L, w->e, t), ok = 1;
    for (int k = 0; k < n; k++)
        if (training || !t[k].train) ok &= (*t[k].ptr = collm_malloc((size_t)(t[k].n > 0 ? t[k].n : 1) * sizeof(float))) != NULL;
    if (!ok) {
        din_ws_free(ws);
        return COLLM_ERR_NOMEM;
    }
    return COLLM_OK;
}

static cf_dice din_dice(const din_impl *w, const din_dice_idx *d) {
    cf_dice out = {cf_w(&w->p, d->alpha), cf_w(&w->p, d->gamma), cf_w(&w->p, d->beta), cf_w(&w->p, d->run_mean),
                   cf_w(&w->p, d->run_var), DIN_BN_EPS, DIN_BN_MOMENTUM};
    return out;
}

static void din_dropout_mask(float *mask, int64_t n, double p, collm_rng *rng) {
    const float keep = (float)(1.0 / (1.0 - p));
    const uint32_t thresh = (uint32_t)(p * 4294967296.0 < 4294967295.0 ? p * 4294967296.0 : 4294967295.0);
    for (int64_t i = 0; i < n; i += 2) {
        uint64_t r = collm_rng_next(rng);
        mask[i] = (uint32_t)r < thresh ? 0.0f : keep;
        if (i + 1 < n) mask[i + 1] = (uint32_t)(r >> 32) < thresh ? 0.0f : keep;
    }
}

// --- the layers, forward and backward side by side: a linear layer (weight
// iw (out, in), bias ib (1, out)), Dice of layer d, dropout. The backwards
// write dx (zeroed first) and accumulate the weights' gradients into p->g.

// y (rows, out) = x (rows, in) W^T + b
static void din_linear_forward(const din_impl *w, float *y, const float *x, int iw, int ib, int64_t rows, int in, int out) {
    collm_ops_matmul_forward(y, x, cf_w(&w->p, iw), cf_w(&w->p, ib), (int)rows, in, out, NULL);
}

static void din_linear_backward(din_impl *w, float *dx, const float *dy, const float *x, int iw, int ib, int64_t rows,
                                int in, int out) {
    memset(dx, 0, (size_t)(rows * in) * sizeof(float));
    collm_ops_matmul_backward(dx, cf_g(&w->p, iw), cf_g(&w->p, ib), dy, x, cf_w(&w->p, iw), (int)rows, in, out, NULL);
}

// y (T, C) = Dice(x); saves x̂ (T, C), rstd (C) and the gate (T, C) for the backward
static void din_dice_forward(const din_impl *w, const din_dice_idx *d, float *y, float *xhat, float *rstd, float *gate,
                             const float *x, int64_t T, int C, int training, int update_running, collm_pool *pool) {
    cf_dice dice = din_dice(w, d);
    cf_dice_forward(&dice, y, xhat, rstd, gate, x, T, C, training, update_running, pool);
}

static void din_dice_backward(din_impl *w, const din_dice_idx *d, float *dx, const float *dy, const float *x,
                              const float *xhat, const float *rstd, const float *gate, int64_t T, int C, collm_pool *pool) {
    memset(dx, 0, (size_t)(T * C) * sizeof(float));
    cf_dice dice = din_dice(w, d);
    cf_dice_backward(&dice, dx, cf_g(&w->p, d->alpha), cf_g(&w->p, d->gamma), cf_g(&w->p, d->beta), dy, x, xhat, rstd,
                     gate, T, C, pool);
}

// y (n) ⊙= a fresh mask (kept for the backward); dy (n) ⊙= the same mask
static void din_dropout_forward(float *y, float *mask, int64_t n, double p, collm_rng *rng) {
    din_dropout_mask(mask, n, p, rng);
    for (int64_t k = 0; k < n; k++) y[k] *= mask[k];
}

static void din_dropout_backward(float *dy, const float *mask, int64_t n) {
    for (int64_t k = 0; k < n; k++) dy[k] *= mask[k];
}

// Forward of B rows (users, items, ws->win set). training: batch
// statistics (moving the running ones when update_running), dropout when p > 0.
// Writes ws->x (the user-side vectors) and ws->logit.
static void din_forward(const din_impl *w, din_ws *ws, int64_t B, const int32_t *users, const int32_t *items, int training,
                        int update_running, double dropout, collm_rng *rng, collm_pool *pool) {
    const cf_params *p = &w->p;
    const int e = w->e, L = w->L;
    const int64_t BL = B * L;
    const float *U = cf_w(p, w->i_user), *I = cf_w(p, w->i_item), *Hs = cf_w(p, w->i_his);
    // embeddings: q, uu (B, e); hs (BL, e); hin (BL, 2e) = [h, q ⊙ h]
    for (int64_t b = 0; b < B; b++) {
        memcpy(ws->q + b * e, I + (int64_t)items[b] * e, (size_t)e * sizeof(float));
        memcpy(ws->uu + b * e, U + (int64_t)users[b] * e, (size_t)e * sizeof(float));
        const float *q = ws->q + b * e;
        for (int t = 0; t < L; t++) {
            int64_t r = b * L + t;
            const float *h = Hs + (int64_t)ws->win[r] * e;
            memcpy(ws->hs + r * e, h, (size_t)e * sizeof(float));
            float *a = ws->hin + r * 2 * e;
            for (int j = 0; j < e; j++) {
                a[j] = h[j];
                a[e + j] = q[j] * h[j];
            }
        }
    }
    // attention unit, first layer: with W1 = [Wa | Wb | Wc | Wd] (64, 4e),
    //   W1 [q, h, q - h, q ⊙ h] + b1 = ((Wa + Wc) q + b1) + [Wb - Wc | Wd] [h, q ⊙ h]
    // the q part once per row, only the 2e-wide part per position.
    const float *W1 = cf_w(p, w->a1w);
    for (int o = 0; o < DIN_A1; o++)
        for (int j = 0; j < e; j++) {
            const float *row = W1 + (int64_t)o * 4 * e;
            ws->wq[o * e + j] = row[j] + row[2 * e + j];
            ws->wh[(int64_t)o * 2 * e + j] = row[e + j] - row[2 * e + j];
            ws->wh[(int64_t)o * 2 * e + e + j] = row[3 * e + j];
        }
    collm_ops_matmul_forward(ws->zq, ws->q, ws->wq, cf_w(p, w->a1b), (int)B, e, DIN_A1, NULL);   // (B, 64)
    collm_ops_matmul_forward(ws->z1, ws->hin, ws->wh, NULL, (int)BL, 2 * e, DIN_A1, NULL);     // (BL, 64)
    for (int64_t r = 0; r < BL; r++) {
        const float *zq = ws->zq + (r / L) * DIN_A1;
        float *z = ws->z1 + r * DIN_A1;
        for (int o = 0; o < DIN_A1; o++) z[o] += zq[o];
    }
    // z1 (BL, 64) -> Dice -> z2 (BL, 16) -> s (BL)
    din_dice_forward(w, &w->da1, ws->y1, ws->xh1, ws->rs1, ws->p1, ws->z1, BL, DIN_A1, training, update_running, pool);
    din_linear_forward(w, ws->z2, ws->y1, w->a2w, w->a2b, BL, DIN_A1, DIN_A2);
    din_linear_forward(w, ws->s, ws->z2, w->a3w, w->a3b, BL, DIN_A2, 1);
    // masked scores to 0; pooled = Σ_t s_t hs_t; x = [q, pooled, uu] (B, 3e)
    for (int64_t b = 0; b < B; b++) {
        float *x = ws->x + b * 3 * e;
        memcpy(x, ws->q + b * e, (size_t)e * sizeof(float));
        memset(x + e, 0, (size_t)e * sizeof(float));
        memcpy(x + 2 * e, ws->uu + b * e, (size_t)e * sizeof(float));
        for (int t = 0; t < L; t++) {
            int64_t r = b * L + t;
            if (!ws->win[r]) ws->s[r] = 0.0f;
            else collm_ops_axpy(x + e, ws->s[r], ws->hs + r * e, e);
        }
    }
    // MLP: f1 (B, 200) -> Dice -> drop -> f2 (B, 80) -> Dice -> drop -> logit (B)
    const int drop = training && dropout > 0;
    din_linear_forward(w, ws->f1, ws->x, w->f1w, w->f1b, B, 3 * e, DIN_F1);
    din_dice_forward(w, &w->df1, ws->g1, ws->xf1, ws->rsf1, ws->pf1, ws->f1, B, DIN_F1, training, update_running, pool);
    if (drop) din_dropout_forward(ws->g1, ws->m1, B * DIN_F1, dropout, rng);
    din_linear_forward(w, ws->f2, ws->g1, w->f2w, w->f2b, B, DIN_F1, DIN_F2);
    din_dice_forward(w, &w->df2, ws->g2, ws->xf2, ws->rsf2, ws->pf2, ws->f2, B, DIN_F2, training, update_running, pool);
    if (drop) din_dropout_forward(ws->g2, ws->m2, B * DIN_F2, dropout, rng);
    din_linear_forward(w, ws->logit, ws->g2, w->f3w, w->f3b, B, DIN_F2, 1);
}

// Backward from ws->dlogit (B) into p->g (accumulates). Needs the training forward.
static void din_backward(din_impl *w, din_ws *ws, int64_t B, const int32_t *users, const int32_t *items, int dropped,
                         collm_pool *pool) {
    cf_params *p = &w->p;
    const int e = w->e, L = w->L;
    const int64_t BL = B * L;
    // logit = g2 W6^T + b6; g2 = drop(Dice(f2)): the Dice input was f2 (before the mask)
    din_linear_backward(w, ws->dg2, ws->dlogit, ws->g2, w->f3w, w->f3b, B, DIN_F2, 1);
    if (dropped) din_dropout_backward(ws->dg2, ws->m2, B * DIN_F2);
    din_dice_backward(w, &w->df2, ws->df2, ws->dg2, ws->f2, ws->xf2, ws->rsf2, ws->pf2, B, DIN_F2, pool);
    // f2 = g1 W5^T + b5; g1 = drop(Dice(f1))
    din_linear_backward(w, ws->dg1, ws->df2, ws->g1, w->f2w, w->f2b, B, DIN_F1, DIN_F2);
    if (dropped) din_dropout_backward(ws->dg1, ws->m1, B * DIN_F1);
    din_dice_backward(w, &w->df1, ws->df1, ws->dg1, ws->f1, ws->xf1, ws->rsf1, ws->pf1, B, DIN_F1, pool);
    // f1 = x W4^T + b4
    din_linear_backward(w, ws->dx, ws->df1, ws->x, w->f1w, w->f1b, B, 3 * e, DIN_F1);
    // x = [q, Σ s_t hs_t, uu]: ds_t = dpooled · hs_t (0 where masked); dhs_t = s_t dpooled
    float *gU = cf_g(p, w->i_user), *gI = cf_g(p, w->i_item), *gH = cf_g(p, w->i_his);
    for (int64_t b = 0; b < B; b++) {
        const float *dxb = ws->dx + b * 3 * e;
        for (int t = 0; t < L; t++) {
            int64_t r = b * L + t;
            float *dh = ws->dhs + r * e;
            if (!ws->win[r]) {
                ws->ds[r] = 0.0f;
                memset(dh, 0, (size_t)e * sizeof(float));
                continue;
            }
            ws->ds[r] = collm_ops_dot(dxb + e, ws->hs + r * e, e);
            for (int j = 0; j < e; j++) dh[j] = ws->s[r] * dxb[e + j];
        }
    }
    // s = z2 W3^T + b3; z2 = y1 W2^T + b2; y1 = Dice(z1); z1 = zq[row] + hin Wh^T
    din_linear_backward(w, ws->dz2, ws->ds, ws->z2, w->a3w, w->a3b, BL, DIN_A2, 1);
    din_linear_backward(w, ws->dy1, ws->dz2, ws->y1, w->a2w, w->a2b, BL, DIN_A1, DIN_A2);
    din_dice_backward(w, &w->da1, ws->dz1, ws->dy1, ws->z1, ws->xh1, ws->rs1, ws->p1, BL, DIN_A1, pool);
    // z1 = zq[row] + hin Wh^T: dhin (BL, 2e), dWh (64, 2e); dzq (B, 64) = Σ_t dz1
    memset(ws->dhin, 0, (size_t)(BL * 2 * e) * sizeof(float));
    memset(ws->dwh, 0, (size_t)DIN_A1 * 2 * e * sizeof(float));
    collm_ops_matmul_backward(ws->dhin, ws->dwh, NULL, ws->dz1, ws->hin, ws->wh, (int)BL, 2 * e, DIN_A1, NULL);
    memset(ws->dzq, 0, (size_t)(B * DIN_A1) * sizeof(float));
    for (int64_t r = 0; r < BL; r++) {
        float *dzq = ws->dzq + (r / L) * DIN_A1;
        const float *dz = ws->dz1 + r * DIN_A1;
        for (int o = 0; o < DIN_A1; o++) dzq[o] += dz[o];
    }
    // zq = q Wq^T + b1: dq into dx's first block (it is the item slot of x), dWq, db1
    memset(ws->dwq, 0, (size_t)DIN_A1 * e * sizeof(float));
    float *dq = ws->dqz;
    memset(dq, 0, (size_t)(B * e) * sizeof(float));
    collm_ops_matmul_backward(dq, ws->dwq, cf_g(p, w->a1b), ws->dzq, ws->q, ws->wq, (int)B, e, DIN_A1, NULL);
    // back to W1 = [Wa | Wb | Wc | Wd]: Wq = Wa + Wc, Wh = [Wb - Wc | Wd]
    float *gW1 = cf_g(p, w->a1w);
    for (int o = 0; o < DIN_A1; o++)
        for (int j = 0; j < e; j++) {
            float gq = ws->dwq[o * e + j], gh = ws->dwh[(int64_t)o * 2 * e + j];
            float *row = gW1 + (int64_t)o * 4 * e;
            row[j] += gq;
            row[e + j] += gh;
            row[2 * e + j] += gq - gh;
            row[3 * e + j] += ws->dwh[(int64_t)o * 2 * e + e + j];
        }
    // hin = [h, q ⊙ h] -> dq, dh; scatter into the tables (batch order)
    for (int64_t b = 0; b < B; b++) {
        const float *dxb = ws->dx + b * 3 * e, *q = ws->q + b * e, *dqb = dq + b * e;
        float *gq = gI + (int64_t)items[b] * e, *gu = gU + (int64_t)users[b] * e;
        for (int j = 0; j < e; j++) {
            gq[j] += dxb[j] + dqb[j];
            gu[j] += dxb[2 * e + j];
        }
        for (int t = 0; t < L; t++) {
            int64_t r = b * L + t;
            const float *dh_in = ws->dhin + r * 2 * e, *h = ws->hs + r * e;
            float *dh = ws->dhs + r * e, *gh = gH + (int64_t)ws->win[r] * e;
            for (int j = 0; j < e; j++) {
                gq[j] += dh_in[e + j] * h[j];
                gh[j] += dh[j] + dh_in[j] + dh_in[e + j] * q[j];
            }
        }
    }
}

// --- scoring (evaluation mode)

enum { DIN_EVAL_ROWS = 2048 };

static int din_eval(const collm_cf_model *m, int64_t n, const int32_t *users, const int32_t *items, const int32_t *win,
                    float *scores, float *uvec, float *ivec, collm_pool *pool) {
    const din_impl *w = m->impl;
    const int e = w->e, L = w->L;
    din_ws ws;
    int rc = din_ws_alloc(&ws, w, (int)(n < DIN_EVAL_ROWS ? n : DIN_EVAL_ROWS), 0);
    if (rc) return rc;
    unsigned fp = cf_fpmode_enter();
    for (int64_t off = 0; off < n; off += DIN_EVAL_ROWS) {
        int64_t B = n - off < DIN_EVAL_ROWS ? n - off : DIN_EVAL_ROWS;
        ws.win = win + off * L;
        din_forward(w, &ws, B, users + off, items + off, 0, 0, 0.0, NULL, pool);
        if (scores) memcpy(scores + off, ws.logit, (size_t)B * sizeof(float));
        if (uvec) memcpy(uvec + off * 3 * e, ws.x, (size_t)(B * 3 * e) * sizeof(float));
        if (ivec)
            for (int64_t b = 0; b < B; b++)
                for (int k = 0; k < 3; k++) memcpy(ivec + ((off + b) * 3 + k) * e, ws.q + b * e, (size_t)e * sizeof(float));
    }
    cf_fpmode_leave(fp);
    din_ws_free(&ws);
    return COLLM_OK;
}

static int din_score_samples(const collm_cf_model *m, int64_t n, const int32_t *users, const int32_t *items,
                             const int32_t *win, float *scores, collm_pool *pool) {
    return din_eval(m, n, users, items, win, scores, NULL, NULL, pool);
}

static int din_sample_vectors(const collm_cf_model *m, int64_t n, const int32_t *users, const int32_t *items,
                              const int32_t *win, float *uvec, float *ivec, collm_pool *pool) {
    return din_eval(m, n, users, items, win, NULL, uvec, ivec, pool);
}

// --- loss and gradient

static double din_batch_loss_grad(din_impl *w, din_ws *ws, int64_t B, const int32_t *users, const int32_t *items,
                                  const float *labels, double dropout, collm_rng *rng, collm_pool *pool) {
    din_forward(w, ws, B, users, items, 1, 1, dropout, rng, pool);
    double loss = cf_bce(ws->dlogit, ws->logit, labels, B);
    cf_params_zero_grad(&w->p);
    din_backward(w, ws, B, users, items, dropout > 0, pool);
    return loss;
}

static double din_loss_grad(collm_cf_model *m, int64_t n, const int32_t *users, const int32_t *items, const int32_t *win,
                            const float *labels, double dropout, uint64_t seed, collm_pool *pool) {
    din_impl *w = m->impl;
    if (cf_params_alloc_train(&w->p)) return NAN;
    din_ws ws;
    if (din_ws_alloc(&ws, w, (int)(n > 0 ? n : 1), 1)) return NAN;
    ws.win = win;
    collm_rng rng;
    collm_rng_seed(&rng, seed);
    double loss = din_batch_loss_grad(w, &ws, n, users, items, labels, dropout, &rng, pool);
    din_ws_free(&ws);
    return loss;
}

// --- training: row batches (cf/cf_rows.h) through one workspace of the batch size

static double din_rows_batch(collm_cf_model *m, void *ctx, const cf_rows_batch *b, collm_pool *pool) {
    din_ws *ws = ctx;
    ws->win = b->win;
    return din_batch_loss_grad(m->impl, ws, b->n, b->users, b->items, b->labels, b->dropout, b->rng, pool);
}

static int din_train(collm_cf_model *m, const collm_rec_split *train, const collm_rec_split *eval,
                     const collm_cf_train_options *opt, collm_pool *pool, collm_cf_progress_fn progress,
                     void *progress_ctx, collm_cf_train_result *result) {
    din_impl *w = m->impl;
    din_ws ws;
    int rc = din_ws_alloc(&ws, w, (int)(opt->batch < train->n ? opt->batch : train->n), 1);
    if (rc) return rc;
    const cf_rows_kind kind = {din_rows_batch, NULL, NULL, w->L, &ws};
    rc = cf_train_rows(m, &w->p, train, eval, opt, pool, progress, progress_ctx, result, &kind);
    din_ws_free(&ws);
    return rc;
}

// --- vtable

// Tuned on ML-1M valid (2 threads; the best epoch is always the 2nd, then
// it overfits): the reference's window of 10 ids with lr 1e-3, batch 1024
// gives valid AUC 0.7237 / UAUC 0.6727; windows of 20 / 30 / 50 give 0.7273 /
// 0.7301 / 0.7281; with batch 2048 and lr 2e-3 a window of 30 gives 0.7314 /
// 0.6859 (seed 2023) and 0.7266 / 0.6927 (seed 7). Dropout 0.2-0.3 and
// weight decay 1e-6 were no better.
static void din_hparams_default(collm_cf_hparams *hp) {
    hp->dim = 192; // CoLLM-DIN's embedding_size: 3 fields of 64
    hp->n_layers = 0;
    hp->n_heads = 0;
    hp->max_len = 30; // the reference pools the last 10 ids
}

static void din_train_defaults(collm_cf_train_options *opt) {
    opt->lr = 2e-3;
    opt->weight_decay = 0.0;
    opt->batch = 2048;
    opt->max_epochs = 50;
    opt->patience = 3;
    opt->dropout = 0.0;
}

static int din_init(collm_cf_model *m, uint64_t seed, int initialise) {
    const collm_cf_hparams *hp = &m->hp;
    if (hp->dim % 3 != 0 || hp->max_len < 1 || hp->max_len > 4096)
        return collm_error(COLLM_ERR_ARG, "din: bad shape: dim %d (must be 3 x the per-field size), window %d (1..4096)",
                           hp->dim, hp->max_len);
    din_impl *w = collm_calloc(1, sizeof *w);
    if (!w) return COLLM_ERR_NOMEM;
    m->impl = w;
    const int64_t e = hp->dim / 3;
    w->e = (int)e;
    w->L = hp->max_len;
    cf_params *p = &w->p;
    int bad = 0;
#define DIN_ADD(field, name, rows, cols, train) bad |= (w->field = cf_params_add(p, name, rows, cols, train)) < 0
    DIN_ADD(i_user, "din.user_embd", m->n_users, e, 1);
    DIN_ADD(i_item, "din.item_embd", m->n_items, e, 1);
    DIN_ADD(i_his, "din.his_embd", m->n_items, e, 1);
    DIN_ADD(a1w, "din.att1.weight", DIN_A1, 4 * e, 1);
    DIN_ADD(a1b, "din.att1.bias", 1, DIN_A1, 1);
    DIN_ADD(a2w, "din.att2.weight", DIN_A2, DIN_A1, 1);
    DIN_ADD(a2b, "din.att2.bias", 1, DIN_A2, 1);
    DIN_ADD(a3w, "din.att3.weight", 1, DIN_A2, 1);
    DIN_ADD(a3b, "din.att3.bias", 1, 1, 1);
    DIN_ADD(f1w, "din.fc1.weight", DIN_F1, 3 * e, 1);
    DIN_ADD(f1b, "din.fc1.bias", 1, DIN_F1, 1);
    DIN_ADD(f2w, "din.fc2.weight", DIN_F2, DIN_F1, 1);
    DIN_ADD(f2b, "din.fc2.bias", 1, DIN_F2, 1);
    DIN_ADD(f3w, "din.fc3.weight", 1, DIN_F2, 1);
    DIN_ADD(f3b, "din.fc3.bias", 1, 1, 1);
    struct {
        din_dice_idx *d;
        const char *name;
        int C;
    } dices[3] = {{&w->da1, "din.att1.dice", DIN_A1}, {&w->df1, "din.fc1.dice", DIN_F1}, {&w->df2, "din.fc2.dice", DIN_F2}};
    char name[48];
    for (int k = 0; k < 3; k++) {
        din_dice_idx *d = dices[k].d;
        snprintf(name, sizeof name, "%s.alpha", dices[k].name);
        bad |= (d->alpha = cf_params_add(p, name, 1, dices[k].C, 1)) < 0;
        snprintf(name, sizeof name, "%s.gamma", dices[k].name);
        bad |= (d->gamma = cf_params_add(p, name, 1, dices[k].C, 1)) < 0;
        snprintf(name, sizeof name, "%s.beta", dices[k].name);
        bad |= (d->beta = cf_params_add(p, name, 1, dices[k].C, 1)) < 0;
        snprintf(name, sizeof name, "%s.run_mean", dices[k].name);
        bad |= (d->run_mean = cf_params_add(p, name, 1, dices[k].C, 0)) < 0;
        snprintf(name, sizeof name, "%s.run_var", dices[k].name);
        bad |= (d->run_var = cf_params_add(p, name, 1, dices[k].C, 0)) < 0;
    }
#undef DIN_ADD
    if (bad) return COLLM_ERR_ARG; // error set by cf_params_add
    if (!initialise) return COLLM_OK; // cf_params_load allocates once every shape matched
    int rc = cf_params_alloc(p);
    if (rc) return rc;
    for (int k = 0; k < 3; k++) { // BN γ 1, running variance 1
        cf_fill(cf_w(p, dices[k].d->gamma), dices[k].C, 1.0f);
        cf_fill(cf_w(p, dices[k].d->run_var), dices[k].C, 1.0f);
    }
    collm_rng rng;
    collm_rng_seed(&rng, seed);
    // xavier_normal_ of an Embedding (num, e): fan_in e, fan_out num
    cf_init_xavier_normal(cf_w(p, w->i_user), m->n_users, e, &rng);
    cf_init_xavier_normal(cf_w(p, w->i_item), m->n_items, e, &rng);
    cf_init_xavier_normal(cf_w(p, w->i_his), m->n_items, e, &rng);
    const int lin[6] = {w->a1w, w->a2w, w->a3w, w->f1w, w->f2w, w->f3w};
    for (int k = 0; k < 6; k++) cf_init_xavier_normal(cf_w(p, lin[k]), p->t[lin[k]].rows, p->t[lin[k]].cols, &rng);
    return COLLM_OK;
}

static void din_item_vector(const collm_cf_model *m, int32_t item, float *out) {
    const din_impl *w = m->impl;
    for (int k = 0; k < 3; k++) memcpy(out + k * w->e, cf_w(&w->p, w->i_item) + (int64_t)item * w->e, (size_t)w->e * sizeof(float));
}

static cf_params *din_params(const collm_cf_model *m) { return &((din_impl *)m->impl)->p; }

const collm_cf_kind collm_cf_kind_din = {
    .name = "din",
    .uses_history = 1,
    .hparams_default = din_hparams_default,
    .train_defaults = din_train_defaults,
    .init = din_init,
    .free_impl = cf_nn_free_impl,
    .item_vector = din_item_vector,
    .score_samples = din_score_samples,
    .sample_vectors = din_sample_vectors,
    .train = din_train,
    .params = din_params,
    .loss_grad = din_loss_grad,
    .save_tensors = cf_nn_save_tensors,
    .load_tensors = cf_nn_load_tensors,
};
