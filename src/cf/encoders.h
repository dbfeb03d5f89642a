// Private to src/cf (and its tests): the training objective of the neural
// encoders, exposed for gradient checks. Every kind keeps its weights in a
// cf_params (cf/cf_nn.h); these functions give tests the tensors and one
// loss/gradient evaluation on a batch.
#ifndef COLLM_CF_ENCODERS_H
#define COLLM_CF_ENCODERS_H

#include <stdint.h>

#include "cf/cf_nn.h"

// The weights of a lightgcn, sasrec or din model (NULL for mf).
cf_params *collm_cf_encoder_params(collm_cf_model *m);

// Mean BCE-with-logits of the model's training-mode scores of n samples
// (users, items (n), windows win (n, hp.max_len), labels (n) 0/1) and its
// gradient, written (not accumulated) into collm_cf_encoder_params(m)->g.
// dropout > 0 draws masks from seed (tests use 0: a deterministic objective).
// DIN's batch normalisation uses the batch statistics (and moves the running
// ones). LightGCN ignores win and needs a graph (collm_lightgcn_set_graph).
// Returns the loss, or NaN on failure (error set).
double collm_cf_encoder_loss_grad(collm_cf_model *m, int64_t n, const int32_t *users, const int32_t *items,
                                  const int32_t *win, const float *labels, double dropout, uint64_t seed,
                                  collm_pool *pool);

// LightGCN: builds the normalised bipartite graph D^-1/2 A D^-1/2 of the
// split's positive rows (label 1; a repeated pair counts twice) and
// recomputes the propagated tables from it.
int collm_lightgcn_set_graph(collm_cf_model *m, const collm_rec_split *train, collm_pool *pool);

// ctx (cf/ctx.c): the raw features x (14) of one row: user, item and its
// history window win (hp.max_len ids, left-padded with 0), as the file
// comment of ctx.c lists them; all 14 whatever the model's dim (a dim-12
// model of an older file scores with the first 12). COLLM_ERR_ARG for a
// model of another kind.
int collm_cf_ctx_features(const collm_cf_model *m, int32_t user, int32_t item, const int32_t *win, double *x);

#endif
