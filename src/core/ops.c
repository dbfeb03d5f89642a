// Numeric kernels of the transformer: each forward next to its backward
// (llm.c style). Row-major float32; backward functions accumulate (+=) into
// gradient buffers and skip NULL ones. Shapes in comments: T = rows (tokens),
// C = channels, hd = head_dim, L = n_past + T (all keys).
#include "collm/ops.h"

#include <cblas.h>
#include <math.h>
#include <stddef.h>

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
// matmul: y (T, out) = x (T, in) · W^T + bias, W (out, in)

void ops_matmul_forward(float *y, const float *x, const float *w, const float *bias, int T, int in, int out) {
    if (T <= 0 || out <= 0) return;
    if (in <= 0) {
        for (int64_t i = 0; i < (int64_t)T * out; i++) y[i] = 0.0f;
    } else {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, out, in, 1.0f, x, in, w, in, 0.0f, y, out);
    }
    if (bias) {
        for (int t = 0; t < T; t++) {
            float *yt = y + (int64_t)t * out;
            for (int o = 0; o < out; o++) yt[o] += bias[o];
        }
    }
}

void ops_matmul_backward(float *dx, float *dw, float *dbias, const float *dy, const float *x, const float *w, int T,
                         int in, int out) {
    if (T <= 0 || in <= 0 || out <= 0) return;
    // dx (T, in) += dy (T, out) · W (out, in)
    if (dx) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, in, out, 1.0f, dy, out, w, in, 1.0f, dx, in);
    // dW (out, in) += dy^T (out, T) · x (T, in)
    if (dw) cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, T, 1.0f, dy, out, x, in, 1.0f, dw, in);
    // dbias (out) += column sums of dy; rows outer so the inner loop is contiguous
    if (dbias) {
        for (int t = 0; t < T; t++) {
            const float *dyt = dy + (int64_t)t * out;
            for (int o = 0; o < out; o++) dbias[o] += dyt[o];
        }
    }
}

// ---------------------------------------------------------------------------
// RMSNorm: y = x · rstd ⊙ w, rstd = 1/sqrt(mean(x²) + eps). x, y (T, C); w (C); rstd (T)

void ops_rmsnorm_forward(float *y, float *rstd, const float *x, const float *w, int T, int C, float eps) {
    for (int t = 0; t < T; t++) {
        const float *xt = x + (int64_t)t * C;
        float *yt = y + (int64_t)t * C;
        float ss = 0.0f;
        for (int i = 0; i < C; i++) ss += xt[i] * xt[i];
        float r = 1.0f / sqrtf(ss / (float)C + eps);
        if (rstd) rstd[t] = r;
        for (int i = 0; i < C; i++) yt[i] = xt[i] * r * w[i];
    }
}

// With n_i = x_i·r:  dL/dx_i = r·(w_i dy_i) - x_i · r³/C · Σ_j w_j dy_j x_j ;  dL/dw_i = Σ_t dy_i n_i.
void ops_rmsnorm_backward(float *dx, float *dw, const float *dy, const float *x, const float *w, const float *rstd,
                          int T, int C) {
    for (int t = 0; t < T; t++) {
        const float *xt = x + (int64_t)t * C;
        const float *dyt = dy + (int64_t)t * C;
        float r = rstd[t];
        if (dx) {
            float *dxt = dx + (int64_t)t * C;
            float dot = 0.0f; // Σ_j w_j dy_j x_j
            for (int i = 0; i < C; i++) dot += w[i] * dyt[i] * xt[i];
            float c = dot * r * r * r / (float)C;
            for (int i = 0; i < C; i++) dxt[i] += r * w[i] * dyt[i] - c * xt[i];
        }
        if (dw) {
            for (int i = 0; i < C; i++) dw[i] += dyt[i] * xt[i] * r;
        }
    }
}

// ---------------------------------------------------------------------------
// RoPE on x (T, n_head, hd), in place. Pair i (0 <= i < n_rot/2) rotates by
// θ = pos · base^(-2i/n_rot); NORM mode pairs dims (2i, 2i+1), NEOX pairs
// (i, i + n_rot/2); dims >= n_rot pass through. sign = +1 forward, -1 backward
// (the Jacobian of a rotation is the rotation, its transpose rotates back).

static void rope_apply(float *x, const int32_t *pos, int T, int n_head, int head_dim, int n_rot, float base, int neox,
                       double sign) {
    int half = n_rot / 2;
    for (int t = 0; t < T; t++) {
        for (int i = 0; i < half; i++) {
            // angles in double: positions up to thousands times a small exponent
            double theta = (double)pos[t] * pow((double)base, -2.0 * i / (double)n_rot);
            float c = (float)cos(theta), s = (float)(sign * sin(theta));
            int i0 = neox ? i : 2 * i;
            int i1 = neox ? i + half : 2 * i + 1;
            for (int h = 0; h < n_head; h++) {
                float *xh = x + ((int64_t)t * n_head + h) * head_dim;
                float a = xh[i0], b = xh[i1];
                xh[i0] = a * c - b * s;
                xh[i1] = a * s + b * c;
            }
        }
    }
}

void ops_rope_forward(float *x, const int32_t *pos, int T, int n_head, int head_dim, int n_rot, float base, int neox) {
    rope_apply(x, pos, T, n_head, head_dim, n_rot, base, neox, 1.0);
}

void ops_rope_backward(float *dx, const int32_t *pos, int T, int n_head, int head_dim, int n_rot, float base,
                       int neox) {
    rope_apply(dx, pos, T, n_head, head_dim, n_rot, base, neox, -1.0);
}

// ---------------------------------------------------------------------------
// SwiGLU: h = silu(g) ⊙ u, silu(g) = g·σ(g). All (n).

void ops_swiglu_forward(float *h, const float *g, const float *u, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float s = 1.0f / (1.0f + expf(-g[i]));
        h[i] = g[i] * s * u[i];
    }
}

// d silu/dg = σ + g·σ·(1-σ)
void ops_swiglu_backward(float *dg, float *du, const float *dh, const float *g, const float *u, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float s = 1.0f / (1.0f + expf(-g[i]));
        if (dg) dg[i] += dh[i] * u[i] * (s + g[i] * s * (1.0f - s));
        if (du) du[i] += dh[i] * g[i] * s;
    }
}

// ---------------------------------------------------------------------------
// ReLU (n)

void ops_relu_forward(float *y, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void ops_relu_backward(float *dx, const float *dy, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) dx[i] += x[i] > 0.0f ? dy[i] : 0.0f;
}

// ---------------------------------------------------------------------------
// Causal GQA attention. q (T, n_head, hd); k, v (L, n_head_kv, hd), L = n_past + T;
// query t sits at absolute position n_past + t and sees keys 0..n_past+t.

typedef struct {
    float *out, *att;
    float *dq, *dk, *dv;
    const float *dout, *q, *k, *v;
    const float *att_in;
    int T, n_past, n_head, n_head_kv, hd;
} attention_ctx;

// Forward items are (head, query) pairs, index = h·T + t: each writes only its
// own out row (t, h) and att row (h, t), so any split is race-free and the
// result does not depend on the thread count.
static void attention_forward_task(void *ctx_, int64_t begin, int64_t end, int thread_index) {
    (void)thread_index;
    const attention_ctx *c = ctx_;
    int T = c->T, hd = c->hd, L = c->n_past + c->T;
    int group = c->n_head / c->n_head_kv;
    float scale = 1.0f / sqrtf((float)hd);
    for (int64_t item = begin; item < end; item++) {
        int h = (int)(item / T), t = (int)(item % T);
        int kvh = h / group;
        int n_keys = c->n_past + t + 1;
        const float *qt = c->q + ((int64_t)t * c->n_head + h) * hd;   // (hd)
        float *ot = c->out + ((int64_t)t * c->n_head + h) * hd;       // (hd)
        const int64_t kv_stride = (int64_t)c->n_head_kv * hd;          // between key rows
        const float *kh = c->k + (int64_t)kvh * hd, *vh = c->v + (int64_t)kvh * hd;
        for (int d = 0; d < hd; d++) ot[d] = 0.0f;
        if (c->att) {
            // two passes with the probabilities stored: backward needs them
            float *row = c->att + ((int64_t)h * T + t) * L; // (L)
            float maxs = -INFINITY;
            for (int j = 0; j < n_keys; j++) {
                const float *kj = kh + j * kv_stride;
                float s = dot8(qt, kj, hd) * scale;
                row[j] = s;
                if (s > maxs) maxs = s;
            }
            float sum = 0.0f;
            for (int j = 0; j < n_keys; j++) {
                row[j] = expf(row[j] - maxs);
                sum += row[j];
            }
            float inv = 1.0f / sum;
            for (int j = 0; j < n_keys; j++) row[j] *= inv;
            for (int j = n_keys; j < L; j++) row[j] = 0.0f; // masked (future) keys
            for (int j = 0; j < n_keys; j++) {
                const float *vj = vh + j * kv_stride;
                float p = row[j];
                for (int d = 0; d < hd; d++) ot[d] += p * vj[d];
            }
        } else {
            // inference: online softmax (running max m and sum l), accumulating
            // into the out row, so no L-sized scratch is needed
            float m = -INFINITY, l = 0.0f;
            for (int j = 0; j < n_keys; j++) {
                const float *kj = kh + j * kv_stride;
                float s = dot8(qt, kj, hd) * scale;
                if (s > m) {
                    float r = expf(m - s); // 0 on the first key (m = -inf)
                    l *= r;
                    for (int d = 0; d < hd; d++) ot[d] *= r;
                    m = s;
                }
                float p = expf(s - m);
                l += p;
                const float *vj = vh + j * kv_stride;
                for (int d = 0; d < hd; d++) ot[d] += p * vj[d];
            }
            float inv = 1.0f / l;
            for (int d = 0; d < hd; d++) ot[d] *= inv;
        }
    }
}

void ops_attention_forward(float *out, float *att, const float *q, const float *k, const float *v, int T, int n_past,
                           int n_head, int n_head_kv, int head_dim, collm_pool *pool) {
    if (T <= 0 || n_head <= 0 || n_head_kv <= 0 || head_dim <= 0) return;
    attention_ctx c = {.out = out, .att = att, .q = q, .k = k, .v = v, .T = T, .n_past = n_past, .n_head = n_head,
                       .n_head_kv = n_head_kv, .hd = head_dim};
    collm_pool_for(pool, (int64_t)n_head * T, 16, attention_forward_task, &c);
}

// Backward per query (t, h), with P = att row, o = Σ_j P_j v_j the output:
//   dv_j += P_j · dout
//   dP_j  = dout · v_j
//   dS_j  = P_j · (dP_j - Σ_i P_i dP_i) = P_j · (dP_j - dout · o)
//   dq   += scale · Σ_j dS_j k_j ;  dk_j += scale · dS_j q
// Items are kv heads: a kv head's dk/dv rows receive from every query head of
// its group, so one task owns one kv head (and the dq of its query heads).
// No two threads write the same memory and the summation order is fixed.
static void attention_backward_task(void *ctx_, int64_t begin, int64_t end, int thread_index) {
    (void)thread_index;
    const attention_ctx *c = ctx_;
    int T = c->T, hd = c->hd, L = c->n_past + c->T;
    int group = c->n_head / c->n_head_kv;
    float scale = 1.0f / sqrtf((float)hd);
    const int64_t kv_stride = (int64_t)c->n_head_kv * hd;
    float o[hd];  // (hd) recomputed forward output of one query
    float dqt[hd]; // (hd) dq of one query, accumulated here then added once
    for (int64_t kvh = begin; kvh < end; kvh++) {
        const float *kh = c->k + kvh * hd, *vh = c->v + kvh * hd;
        float *dkh = c->dk ? c->dk + kvh * hd : NULL, *dvh = c->dv ? c->dv + kvh * hd : NULL;
        for (int h = (int)kvh * group; h < ((int)kvh + 1) * group; h++) {
            for (int t = 0; t < T; t++) {
                int n_keys = c->n_past + t + 1;
                const float *row = c->att_in + ((int64_t)h * T + t) * L; // (L)
                const float *qt = c->q + ((int64_t)t * c->n_head + h) * hd;
                const float *dot = c->dout + ((int64_t)t * c->n_head + h) * hd;
                for (int d = 0; d < hd; d++) o[d] = 0.0f;
                for (int j = 0; j < n_keys; j++) {
                    const float *vj = vh + j * kv_stride;
                    float p = row[j];
                    for (int d = 0; d < hd; d++) o[d] += p * vj[d];
                }
                float dout_o = dot8(dot, o, hd); // Σ_i P_i dP_i
                for (int d = 0; d < hd; d++) dqt[d] = 0.0f;
                for (int j = 0; j < n_keys; j++) {
                    const float *vj = vh + j * kv_stride;
                    const float *kj = kh + j * kv_stride;
                    float p = row[j];
                    float dp = dot8(dot, vj, hd);
                    float ds = p * (dp - dout_o) * scale;
                    for (int d = 0; d < hd; d++) dqt[d] += ds * kj[d];
                    if (dkh) {
                        float *dkj = dkh + j * kv_stride;
                        for (int d = 0; d < hd; d++) dkj[d] += ds * qt[d];
                    }
                    if (dvh) {
                        float *dvj = dvh + j * kv_stride;
                        for (int d = 0; d < hd; d++) dvj[d] += p * dot[d];
                    }
                }
                if (c->dq) {
                    float *dq_t = c->dq + ((int64_t)t * c->n_head + h) * hd;
                    for (int d = 0; d < hd; d++) dq_t[d] += dqt[d];
                }
            }
        }
    }
}

void ops_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *att, const float *q,
                            const float *k, const float *v, int T, int n_past, int n_head, int n_head_kv,
                            int head_dim, collm_pool *pool) {
    if (T <= 0 || n_head <= 0 || n_head_kv <= 0 || head_dim <= 0) return;
    attention_ctx c = {.dq = dq, .dk = dk, .dv = dv, .dout = dout, .att_in = att, .q = q, .k = k, .v = v, .T = T,
                       .n_past = n_past, .n_head = n_head, .n_head_kv = n_head_kv, .hd = head_dim};
    collm_pool_for(pool, n_head_kv, 1, attention_backward_task, &c);
}

// ---------------------------------------------------------------------------
// Mean BCE with logits over n: ℓ = max(s,0) - s·y + log1p(exp(-|s|)), which
// never overflows; dlogit = (σ(s) - y)/n.

double ops_bce_with_logits(float *dlogit, const float *logit, const float *label, int n) {
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

float ops_dot(const float *a, const float *b, int64_t n) {
    return dot8(a, b, n);
}

void ops_axpy(float *y, float a, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += a * x[i];
}

// ---------------------------------------------------------------------------
// Adam / AdamW, PyTorch semantics, step t >= 1 (all arrays (n)):
//   AdamW: p -= lr·wd·p, then the Adam step on g
//   Adam (coupled_l2): g += wd·p, then the Adam step
//   m = β1 m + (1-β1) g ;  v = β2 v + (1-β2) g²
//   p -= (lr / (1-β1^t)) · m / (sqrt(v) / sqrt(1-β2^t) + eps)

void ops_adam_update(float *param, const float *grad, float *m, float *v, int64_t n, float lr, float beta1,
                     float beta2, float eps, float weight_decay, int coupled_l2, int64_t t) {
    if (t < 1) t = 1;
    double bc1 = 1.0 - pow((double)beta1, (double)t);
    double bc2 = 1.0 - pow((double)beta2, (double)t);
    float step_size = (float)(lr / bc1);
    float inv_sqrt_bc2 = (float)(1.0 / sqrt(bc2));
    float decay = coupled_l2 ? 1.0f : 1.0f - lr * weight_decay;
    float l2 = coupled_l2 ? weight_decay : 0.0f;
    for (int64_t i = 0; i < n; i++) {
        float g = grad[i] + l2 * param[i];
        float p = param[i] * decay;
        m[i] = beta1 * m[i] + (1.0f - beta1) * g;
        v[i] = beta2 * v[i] + (1.0f - beta2) * g * g;
        float denom = sqrtf(v[i]) * inv_sqrt_bc2 + eps;
        param[i] = p - step_size * m[i] / denom;
    }
}
