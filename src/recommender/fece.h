// FECE mapping (method.md §5): the MLP that turns a collaborative vector
// into one LLM token embedding: Linear(d_cf → m·d_cf) → ReLU → Linear(→ n_embd).
// The same MLP maps users and items. PyTorch-default init:
// weights and biases U(±1/sqrt(fan_in)).
#ifndef COLLM_FECE_H
#define COLLM_FECE_H

#include "core/rng.h"

typedef struct {
    int d_in, d_hidden, d_out;
    float *w1; // (d_hidden, d_in)
    float *b1; // (d_hidden)
    float *w2; // (d_out, d_hidden)
    float *b2; // (d_out)
    float *dw1, *db1, *dw2, *db2; // gradients, same shapes (accumulated by backward)
    float *storage;               // one allocation for all of the above
} collm_fece_mlp;

// d_hidden = mid_times · d_in. Returns COLLM_OK or an error.
int collm_fece_init(collm_fece_mlp *mlp, int d_in, int mid_times, int d_out, collm_rng *rng);
void collm_fece_free(collm_fece_mlp *mlp);
int64_t collm_fece_n_params(const collm_fece_mlp *mlp);

// x (B, d_in) → y (B, d_out). h (B, d_hidden) receives the post-ReLU hidden
// layer (kept for backward; the pre-activation sign is recoverable from it).
void collm_fece_forward(const collm_fece_mlp *mlp, const float *x, int B, float *h, float *y);
// Accumulates parameter gradients from dy (B, d_out); dx (B, d_in) += ∂L/∂x
// unless NULL. scratch needs B·d_hidden floats.
void collm_fece_backward(collm_fece_mlp *mlp, const float *x, int B, const float *h, const float *dy, float *dx, float *scratch);

#endif
