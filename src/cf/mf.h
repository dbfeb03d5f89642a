// Matrix factorisation (method.md §4.1), the default collaborative model:
// user table (n_users, d) and item table (n_items, d), score = <e_u, e_i>,
// no biases, row 0 of each table is padding (zero, never updated). It is
// used through collm/cf.h (kind "mf"); this header exposes the objective
// for tests and tools.
#ifndef COLLM_MF_H
#define COLLM_MF_H

#include <stdint.h>

#include "collm/threadpool.h"

// Mean BCE-with-logits of score_r = <U[users[r]], I[items[r]]> against
// labels (n, 0/1) and its dense gradient: grad_user (n_users, d) and
// grad_item (n_items, d) are overwritten (rows no row touches, and row 0,
// get zero). Every id must be in range (not checked here). Deterministic and
// independent of the pool's thread count. Returns the loss, or NaN when
// memory runs out.
double collm_mf_loss_grad(const float *user_embd, const float *item_embd, int32_t n_users, int32_t n_items, int dim,
                    const int32_t *users, const int32_t *items, const float *labels, int64_t n, float *grad_user,
                    float *grad_item, collm_pool *pool);

#endif
