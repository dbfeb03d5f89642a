// Private to src/cf: the training loop of an id-only encoder (MF-like kinds:
// LightGCN, mfbias) on a split's (user, item, label) rows. Each epoch shuffles
// the rows, cuts batches of opt->batch, runs the kind's batch function
// (forward + backward, gradient written into its cf_params), steps Adam, and
// lets the kind fix up its weights after the step; evaluation, patience and
// the best-weights restore are cf_train_loop's (cf/cf_nn.h).
#ifndef COLLM_CF_ROWS_H
#define COLLM_CF_ROWS_H

#include <stdint.h>

#include "cf/cf_nn.h"

// Mean BCE of the batch (n rows): logit, dlogit (n) are scratch the loop owns.
typedef double (*cf_rows_batch_fn)(collm_cf_model *m, int64_t n, const int32_t *users, const int32_t *items,
                                   const float *labels, float *logit, float *dlogit, collm_pool *pool);
// After each Adam step (may be NULL), and after each epoch and the final
// best-weights restore (may be NULL): what the kind derives from its weights.
typedef void (*cf_rows_model_fn)(collm_cf_model *m, collm_pool *pool);

int cf_train_rows(collm_cf_model *m, cf_params *p, const collm_rec_split *train, const collm_rec_split *eval,
                  const collm_cf_train_options *opt, collm_pool *pool, collm_cf_progress_fn progress, void *progress_ctx,
                  collm_cf_train_result *result, cf_rows_batch_fn batch_fn, cf_rows_model_fn after_step,
                  cf_rows_model_fn refresh);

#endif
