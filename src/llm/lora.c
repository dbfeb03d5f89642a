// LoRA adapters (see include/collm/lora.h).
#include "llm/lora_internal.h"

#include "collm/error.h"
#include "core/ops.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *target_names[COLLM_LORA_N_TARGETS] = {"attn_q", "attn_k", "attn_v", "attn_output",
                                                   "ffn_gate", "ffn_up", "ffn_down"};
static const char *target_short[COLLM_LORA_N_TARGETS] = {"q", "k", "v", "o", "gate", "up", "down"};

const char *collm_lora_target_gguf_name(collm_lora_target t) { return (unsigned)t < COLLM_LORA_N_TARGETS ? target_names[t] : "?"; }

int collm_lora_parse_targets(const char *list, unsigned *mask) {
    *mask = 0;
    const char *p = list;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        int found = -1;
        for (int t = 0; t < COLLM_LORA_N_TARGETS; t++)
            if (strlen(target_short[t]) == len && strncmp(p, target_short[t], len) == 0) found = t;
        if (found < 0)
            return collm_error(COLLM_ERR_ARG, "unknown LoRA target '%.*s' (expected q,k,v,o,gate,up,down)", (int)len, p);
        *mask |= 1u << found;
        p += len;
        if (*p == ',') p++;
    }
    if (!*mask) return collm_error(COLLM_ERR_ARG, "empty LoRA target list");
    return COLLM_OK;
}

int collm_lora_init(collm_lora_adapter *lora, int n_layer, const int dims_in[COLLM_LORA_N_TARGETS], const int dims_out[COLLM_LORA_N_TARGETS],
              int rank, float alpha, float dropout, unsigned targets, collm_rng *rng) {
    memset(lora, 0, sizeof *lora);
    if (rank < 1 || n_layer < 1 || dropout < 0 || dropout >= 1)
        return collm_error(COLLM_ERR_ARG, "lora: bad rank %d / layers %d / dropout %g", rank, n_layer, dropout);
    lora->n_layer = n_layer;
    lora->rank = rank;
    lora->alpha = alpha;
    lora->dropout = dropout;
    lora->targets = targets;
    int64_t per_layer = 0;
    for (int t = 0; t < COLLM_LORA_N_TARGETS; t++)
        if (targets & (1u << t)) per_layer += (int64_t)rank * (dims_in[t] + dims_out[t]);
    lora->pairs = collm_calloc((size_t)n_layer * COLLM_LORA_N_TARGETS, sizeof *lora->pairs);
    lora->storage = collm_calloc((size_t)(2 * per_layer * n_layer), sizeof(float));
    if (!lora->pairs || !lora->storage) {
        collm_lora_free(lora);
        return COLLM_ERR_NOMEM;
    }
    float *s = lora->storage;
    for (int l = 0; l < n_layer; l++)
        for (int t = 0; t < COLLM_LORA_N_TARGETS; t++) {
            if (!(targets & (1u << t))) continue;
            collm_lora_pair *p = &lora->pairs[l * COLLM_LORA_N_TARGETS + t];
            p->in = dims_in[t];
            p->out = dims_out[t];
            p->rank = rank;
            int64_t na = (int64_t)rank * p->in, nb = (int64_t)p->out * rank;
            p->a = s, s += na;
            p->b = s, s += nb;
            p->da = s, s += na;
            p->db = s, s += nb;
            double bound = 1.0 / sqrt((double)p->in);
            for (int64_t i = 0; i < na; i++) p->a[i] = (float)((2 * collm_rng_uniform(rng) - 1) * bound);
        }
    return COLLM_OK;
}

void collm_lora_free(collm_lora_adapter *lora) {
    free(lora->pairs);
    free(lora->storage);
    memset(lora, 0, sizeof *lora);
}

collm_lora_pair *collm_lora_get(const collm_lora_adapter *lora, int layer, collm_lora_target t) {
    if (!lora || !lora->pairs || layer < 0 || layer >= lora->n_layer) return NULL;
    collm_lora_pair *p = &lora->pairs[layer * COLLM_LORA_N_TARGETS + t];
    return p->a ? p : NULL;
}

float collm_lora_scale(const collm_lora_adapter *lora) { return lora->alpha / (float)lora->rank; }

int64_t collm_lora_n_params(const collm_lora_adapter *lora) {
    int64_t n = 0;
    for (int i = 0; lora->pairs && i < lora->n_layer * COLLM_LORA_N_TARGETS; i++)
        if (lora->pairs[i].a) n += (int64_t)lora->pairs[i].rank * (lora->pairs[i].in + lora->pairs[i].out);
    return n;
}

void collm_lora_forward(const collm_lora_pair *p, float scale, float dropout, const float *x, int T, float *x_drop, float *xa,
                  float *y, int ldy, collm_rng *rng) {
    const float *xd = x;
    if (dropout > 0 && rng) {
        float keep_scale = 1.0f / (1.0f - dropout);
        int64_t n = (int64_t)T * p->in;
        for (int64_t i = 0; i < n; i++) x_drop[i] = collm_rng_uniform(rng) < dropout ? 0.0f : x[i] * keep_scale;
        xd = x_drop;
    }
    collm_ops_matmul_forward(xa, xd, p->a, NULL, T, p->in, p->rank, NULL); // (T, r)
    // y (T, out; row stride ldy) += scale · xa · B^T
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, p->out, p->rank, scale, xa, p->rank, p->b, p->rank, 1.0f,
                y, ldy);
}

void collm_lora_backward(collm_lora_pair *p, float scale, float dropout, const float *xd, const float *x_drop_or_null, int T,
                   const float *xa, const float *dy, int lddy, float *dx, float *dxa) {
    // db (out, r) += scale · dy^T · xa
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, p->out, p->rank, T, scale, dy, lddy, xa, p->rank, 1.0f,
                p->db, p->rank);
    // dxa (T, r) = scale · dy · B
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, p->rank, p->out, scale, dy, lddy, p->b, p->rank, 0.0f,
                dxa, p->rank);
    // da (r, in) += dxa^T · xd
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, p->rank, p->in, T, 1.0f, dxa, p->rank, xd, p->in, 1.0f, p->da,
                p->in);
    if (!dx) return;
    if (x_drop_or_null && dropout > 0) {
        // dx += mask/(1-p) ⊙ (dxa · A): the mask is where x_drop != 0 (or x was 0 anyway)
        float keep_scale = 1.0f / (1.0f - dropout);
        for (int t = 0; t < T; t++) {
            float *dxr = dx + (int64_t)t * p->in;
            const float *xdr = x_drop_or_null + (int64_t)t * p->in;
            for (int i = 0; i < p->in; i++) {
                if (xdr[i] == 0.0f) continue;
                float g = 0;
                for (int r = 0; r < p->rank; r++) g += dxa[(int64_t)t * p->rank + r] * p->a[(int64_t)r * p->in + i];
                dxr[i] += g * keep_scale;
            }
        }
    } else {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, p->in, p->rank, 1.0f, dxa, p->rank, p->a, p->in, 1.0f,
                    dx, p->in);
    }
}

void collm_lora_merge(const collm_lora_pair *p, float scale, float *w) {
    // W (out, in) += scale · B (out, r) · A (r, in)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, p->out, p->in, p->rank, scale, p->b, p->rank, p->a, p->in,
                1.0f, w, p->in);
}
