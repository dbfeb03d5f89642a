// Optimisation: a list of parameter tensors with their gradients and Adam
// moments, AdamW steps, gradient-norm clipping and the learning-rate
// schedule of method.md §6.3.
#ifndef COLLM_OPTIM_H
#define COLLM_OPTIM_H

#include <stdint.h>

#include "collm/threadpool.h"

typedef struct {
    const char *name; // for checkpoints ("fece.w1", "blk.0.attn_q.weight", ...)
    float *param;     // (n) owned by the model, updated in place
    float *grad;      // (n) accumulated by backward; zeroed by collm_optim_zero_grad
    float *m, *v;     // (n) Adam moments, owned by the optimizer
    int64_t n;
    int decay;        // 1: weight decay applies (tensors with >= 2 dims)
    int frozen;       // 1: skipped by step / clipping
    int owns_grad;    // internal: grad was allocated by collm_optim_add
} collm_optim_param;

typedef struct {
    collm_optim_param *params;
    int n_params, cap_params;
    float beta1, beta2, eps, weight_decay;
    int64_t step; // number of steps taken
    collm_pool *pool; // optional: splits the elementwise work (results do not depend on it)
} collm_optim_state;

void collm_optim_init(collm_optim_state *opt, float beta1, float beta2, float eps, float weight_decay);
// Registers a tensor; allocates its gradient (when grad == NULL) and moments.
// Returns the index or a negative error code.
int collm_optim_add(collm_optim_state *opt, const char *name, float *param, float *grad, int64_t n, int decay);
void collm_optim_free(collm_optim_state *opt);
void collm_optim_zero_grad(collm_optim_state *opt);
// Global L2 norm of all trainable gradients.
double collm_optim_grad_norm(const collm_optim_state *opt);
// Scales gradients so that their global norm is at most max_norm (if > 0); returns the norm before.
double collm_optim_clip(collm_optim_state *opt, double max_norm);
// One AdamW step (decoupled decay on params with decay=1) at learning rate lr.
void collm_optim_step(collm_optim_state *opt, float lr);
// A whole step in two passes over the trainable tensors instead of four: the
// gradient norm (read only), then, block by block while it is in cache, the
// clip scale (max_norm > 0), the AdamW update and the zeroing of the gradient
// for the next backward. Same bits as collm_optim_clip, collm_optim_step and
// collm_optim_zero_grad in a row; returns the norm before clipping. Training
// loops that use it zero the gradients once before the first backward.
double collm_optim_step_fused(collm_optim_state *opt, float lr, double max_norm);
int64_t collm_optim_n_trainable(const collm_optim_state *opt);

// Linear warmup then cosine to a floor, at global step g (0-based):
//   g <  warmup: lr = warmup_lr + (init - warmup_lr) * w / warmup, capped at init,
//                where w = g (fixed) or g mod steps_per_epoch (the reference
//                code's restarting warmup, method.md §6.3, when restart_warmup=1)
//   g >= warmup: lr = min_lr + (init - min_lr) * (1 + cos(pi * g / total)) / 2
typedef struct {
    double init_lr, warmup_lr, min_lr;
    int64_t warmup_steps, total_steps, steps_per_epoch;
    int restart_warmup;
} collm_optim_schedule;

double collm_optim_schedule_lr(const collm_optim_schedule *s, int64_t g);

#endif
