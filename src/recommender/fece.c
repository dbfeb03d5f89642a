// FECE mapping MLP (see include/collm/fece.h).
#include "recommender/fece.h"

#include "collm/error.h"
#include "core/ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int collm_fece_init(collm_fece_mlp *mlp, int d_in, int mid_times, int d_out, collm_rng *rng) {
    memset(mlp, 0, sizeof *mlp);
    // d_hidden = d_in * mid_times and the weight counts must fit their types:
    // the sizes may come from a file
    if (d_in < 1 || mid_times < 1 || d_out < 1 || (int64_t)d_in * mid_times > INT32_MAX ||
        (int64_t)d_in * mid_times * ((int64_t)d_in + d_out) > ((int64_t)1 << 40))
        return collm_error(COLLM_ERR_ARG, "fece: bad sizes d_in=%d mid_times=%d d_out=%d (the hidden layer d_in x mid_times "
                                          "must stay below 2^31 and the weights below 2^40)",
                           d_in, mid_times, d_out);
    mlp->d_in = d_in;
    mlp->d_hidden = d_in * mid_times;
    mlp->d_out = d_out;
    int64_t n = collm_fece_n_params(mlp);
    mlp->storage = collm_calloc((size_t)(2 * n), sizeof(float));
    if (!mlp->storage) return COLLM_ERR_NOMEM;
    float *p = mlp->storage;
    int64_t n_w1 = (int64_t)mlp->d_hidden * d_in, n_w2 = (int64_t)d_out * mlp->d_hidden;
    mlp->w1 = p, p += n_w1;
    mlp->b1 = p, p += mlp->d_hidden;
    mlp->w2 = p, p += n_w2;
    mlp->b2 = p, p += d_out;
    mlp->dw1 = p, p += n_w1;
    mlp->db1 = p, p += mlp->d_hidden;
    mlp->dw2 = p, p += n_w2;
    mlp->db2 = p;
    // kaiming_uniform(a=sqrt(5)) on (out, in) gives bound 1/sqrt(in); bias bound 1/sqrt(in)
    double bound1 = 1.0 / sqrt((double)d_in), bound2 = 1.0 / sqrt((double)mlp->d_hidden);
    for (int64_t i = 0; i < n_w1; i++) mlp->w1[i] = (float)((2 * collm_rng_uniform(rng) - 1) * bound1);
    for (int i = 0; i < mlp->d_hidden; i++) mlp->b1[i] = (float)((2 * collm_rng_uniform(rng) - 1) * bound1);
    for (int64_t i = 0; i < n_w2; i++) mlp->w2[i] = (float)((2 * collm_rng_uniform(rng) - 1) * bound2);
    for (int i = 0; i < d_out; i++) mlp->b2[i] = (float)((2 * collm_rng_uniform(rng) - 1) * bound2);
    return COLLM_OK;
}

void collm_fece_free(collm_fece_mlp *mlp) {
    free(mlp->storage);
    memset(mlp, 0, sizeof *mlp);
}

int64_t collm_fece_n_params(const collm_fece_mlp *mlp) {
    return (int64_t)mlp->d_hidden * mlp->d_in + mlp->d_hidden + (int64_t)mlp->d_out * mlp->d_hidden + mlp->d_out;
}

// Row by row the same bits whatever B (collm_ops_matmul_forward_rowwise): a
// slot's vector does not depend on the slots mapped beside it, so a prompt
// scores the same in any batch, and two prompts of one user in a batch get
// the same user slot, bit for bit (which the scoring forward's sharing of
// leading runs compares).
void collm_fece_forward(const collm_fece_mlp *mlp, const float *x, int B, float *h, float *y) {
    collm_ops_matmul_forward_rowwise(h, x, mlp->w1, mlp->b1, B, mlp->d_in, mlp->d_hidden, NULL); // (B, d_hidden)
    collm_ops_relu_forward(h, h, (int64_t)B * mlp->d_hidden);
    collm_ops_matmul_forward_rowwise(y, h, mlp->w2, mlp->b2, B, mlp->d_hidden, mlp->d_out, NULL); // (B, d_out)
}

void collm_fece_backward(collm_fece_mlp *mlp, const float *x, int B, const float *h, const float *dy, float *dx, float *scratch) {
    float *dh = scratch; // (B, d_hidden)
    memset(dh, 0, (size_t)B * mlp->d_hidden * sizeof(float));
    collm_ops_matmul_backward(dh, mlp->dw2, mlp->db2, dy, h, mlp->w2, B, mlp->d_hidden, mlp->d_out, NULL);
    // ReLU backward: h > 0 exactly where the pre-activation was > 0
    int64_t n = (int64_t)B * mlp->d_hidden;
    for (int64_t i = 0; i < n; i++)
        if (h[i] <= 0.0f) dh[i] = 0.0f;
    collm_ops_matmul_backward(dx, mlp->dw1, mlp->db1, dh, x, mlp->w1, B, mlp->d_in, mlp->d_hidden, NULL);
}
