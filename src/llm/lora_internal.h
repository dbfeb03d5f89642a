// LoRA adapter storage and kernels (private to the library): the pair
// matrices, their gradients, and forward/backward/merge. The public part
// (target names and masks) is collm/lora.h.
#ifndef COLLM_LORA_INTERNAL_H
#define COLLM_LORA_INTERNAL_H

#include <stdint.h>

#include "collm/lora.h"
#include "core/rng.h"

typedef struct {
    int in, out, rank;
    float *a, *b;   // (rank, in), (out, rank)
    float *da, *db; // gradients (accumulated)
} collm_lora_pair;

typedef struct {
    int n_layer, rank;
    float alpha, dropout;
    unsigned targets;  // bit t set when target t is adapted
    collm_lora_pair *pairs;  // (n_layer, COLLM_LORA_N_TARGETS); pairs[l*7+t].a == NULL when not adapted
    float *storage;
} collm_lora_adapter;

// dims_in[t] / dims_out[t]: the in/out size of target t's projection.
int collm_lora_init(collm_lora_adapter *lora, int n_layer, const int dims_in[COLLM_LORA_N_TARGETS], const int dims_out[COLLM_LORA_N_TARGETS],
              int rank, float alpha, float dropout, unsigned targets, collm_rng *rng);
void collm_lora_free(collm_lora_adapter *lora);
collm_lora_pair *collm_lora_get(const collm_lora_adapter *lora, int layer, collm_lora_target t); // NULL when not adapted
float collm_lora_scale(const collm_lora_adapter *lora);
int64_t collm_lora_n_params(const collm_lora_adapter *lora);

// y (T, out) += s · xd·A^T·B^T (row stride ldy >= out: y may be a column block
// of a wider fused output), where xd = x (T, in) with dropout applied:
// when dropout > 0 and rng != NULL, xd is written to x_drop (T, in) (each
// element kept with prob 1-p and scaled by 1/(1-p)); otherwise xd = x and
// x_drop is unused. xa (T, rank) receives xd·A^T for backward.
void collm_lora_forward(const collm_lora_pair *p, float scale, float dropout, const float *x, int T, float *x_drop, float *xa,
                  float *y, int ldy, collm_rng *rng);
// Accumulates da, db; dx (T, in) += ∂L/∂x through the adapter (NULL to skip).
// xd is the input the forward used (x_drop or x); dy (T, out) has row stride
// lddy. dxa is scratch (T, rank).
void collm_lora_backward(collm_lora_pair *p, float scale, float dropout, const float *xd, const float *x_drop_or_null, int T,
                   const float *xa, const float *dy, int lddy, float *dx, float *dxa);
// W (out, in) += s · B·A (merging the adapter into the base weight).
void collm_lora_merge(const collm_lora_pair *p, float scale, float *w);

#endif
