// Private to src/cf: the training loop of an encoder that trains on a split's
// rows one by one (id-only kinds: LightGCN, mfbias; and DIN, whose rows also
// carry their history windows). Each epoch shuffles the rows, cuts batches of
// opt->batch, runs the kind's batch function (forward + backward, gradient
// written into its cf_params), steps Adam, and lets the kind fix up its
// weights after the step; evaluation, patience and the best-weights restore
// are cf_train_loop's (cf/cf_nn.h).
#ifndef COLLM_CF_ROWS_H
#define COLLM_CF_ROWS_H

#include <stdint.h>

#include "cf/cf_nn.h"

// One batch of n rows (under mpirun, this rank's slice of it).
typedef struct {
    int64_t n;
    const int32_t *users, *items; // (n)
    const float *labels;          // (n) 0 / 1
    const int32_t *win;           // (n, window) the rows' history windows; NULL for id-only kinds
    float *logit, *dlogit;        // (n) scratch the loop owns
    double dropout;               // opt->dropout
    collm_rng *rng;               // the epoch's stream, after the shuffle (dropout masks)
} cf_rows_batch;

// Mean BCE of the batch; ctx is cf_rows_kind.ctx.
typedef double (*cf_rows_batch_fn)(collm_cf_model *m, void *ctx, const cf_rows_batch *b, collm_pool *pool);
// After each Adam step, and after each epoch and the final best-weights
// restore: what the kind derives from its weights.
typedef void (*cf_rows_model_fn)(collm_cf_model *m, collm_pool *pool);

typedef struct {
    cf_rows_batch_fn batch;
    cf_rows_model_fn after_step, refresh; // may be NULL
    int window;                           // L > 0: batches carry each row's last L liked items (cf_split_window)
    void *ctx;                            // the kind's own state for batch (DIN: its workspace)
} cf_rows_kind;

int cf_train_rows(collm_cf_model *m, cf_params *p, const collm_rec_split *train, const collm_rec_split *eval,
                  const collm_cf_train_options *opt, collm_pool *pool, collm_cf_progress_fn progress, void *progress_ctx,
                  collm_cf_train_result *result, const cf_rows_kind *kind);

#endif
