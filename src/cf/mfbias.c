// MF with user and item biases ("mfbias"): the classic biased factorisation
// (Koren et al. 2009) trained with BCE, as a collaborative encoder for CoLLM.
//
//   score(u, i) = <p_u, q_i> + b_u + b_i            p, q (d - 2), b scalars
//
// Why: on ML-1M's ood2 split a large part of what predicts a rating of 4+ is
// how generous the user is and how well liked the item is (a smoothed item
// and user positive rate alone reach valid AUC 0.73); plain MF has to spend
// embedding dimensions (and hundreds of epochs from its N(0, 1) start) to
// express that. Here they are explicit parameters, learned in a few epochs.
//
// The vectors seen by retrieval and by CoLLM's mapping fold the biases in, so
// that an inner product is the score and every downstream consumer is unchanged:
//   user vector (d) = [p_u, b_u, 1]      item vector (d) = [q_i, 1, b_i]
// (the dim of the model is the vector size d; the factors have d - 2).
//
// Tensors: mfb.user_embd (nu, d-2), mfb.item_embd (ni, d-2), mfb.user_bias
// (nu, 1), mfb.item_bias (ni, 1). Init: factors N(0, 0.01²) (small, so the
// first epochs learn the biases before the factors interact), biases 0; row 0
// (padding) is 0 and never moves. Training: mean BCE, Adam with coupled L2
// over every row at every step (dense, as PyTorch), best-valid-AUC weights kept.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cf/cf_internal.h"
#include "cf/cf_nn.h"
#include "cf/cf_rows.h"
#include "cf/encoders.h"
#include "collm/error.h"
#include "core/ops.h"

typedef struct {
    cf_params p;
    int i_user, i_item, i_ubias, i_ibias;
} mfb_impl;

static int mfb_k(const collm_cf_model *m) { return m->dim - 2; } // factor size

// logit of one (user, item) pair
static float mfb_logit(const collm_cf_model *m, const mfb_impl *w, int32_t u, int32_t i) {
    const int k = mfb_k(m);
    return collm_ops_dot(cf_w(&w->p, w->i_user) + (int64_t)u * k, cf_w(&w->p, w->i_item) + (int64_t)i * k, k) +
           cf_w(&w->p, w->i_ubias)[u] + cf_w(&w->p, w->i_ibias)[i];
}

// Forward + backward of a batch: logit (n), dlogit (n); the gradient of every
// tensor is written (zeroed first) into p.g. Rows are summed in batch order,
// so the result does not depend on threads.
static double mfb_loss_grad_impl(collm_cf_model *m, int64_t n, const int32_t *users, const int32_t *items,
                                 const float *labels, float *logit, float *dlogit) {
    mfb_impl *w = m->impl;
    const int k = mfb_k(m);
    for (int64_t r = 0; r < n; r++) logit[r] = mfb_logit(m, w, users[r], items[r]);
    double loss = cf_bce(dlogit, logit, labels, n);
    cf_params_zero_grad(&w->p);
    float *P = cf_w(&w->p, w->i_user), *Q = cf_w(&w->p, w->i_item);
    float *dP = cf_g(&w->p, w->i_user), *dQ = cf_g(&w->p, w->i_item);
    float *dbu = cf_g(&w->p, w->i_ubias), *dbi = cf_g(&w->p, w->i_ibias);
    for (int64_t r = 0; r < n; r++) {
        const int64_t u = users[r], i = items[r];
        if (u == 0 || i == 0) continue; // padding rows never learn
        // d logit / d p_u = q_i, d / d q_i = p_u, d / d b = 1
        collm_ops_axpy(dP + u * k, dlogit[r], Q + i * k, k);
        collm_ops_axpy(dQ + i * k, dlogit[r], P + u * k, k);
        dbu[u] += dlogit[r];
        dbi[i] += dlogit[r];
    }
    return loss;
}

static double mfb_loss_grad(collm_cf_model *m, int64_t n, const int32_t *users, const int32_t *items, const int32_t *win,
                            const float *labels, double dropout, uint64_t seed, collm_pool *pool) {
    (void)win, (void)dropout, (void)seed, (void)pool;
    mfb_impl *w = m->impl;
    if (cf_params_alloc_train(&w->p)) return NAN;
    float *logit = collm_malloc((size_t)(n > 0 ? n : 1) * sizeof *logit);
    float *dlogit = collm_malloc((size_t)(n > 0 ? n : 1) * sizeof *dlogit);
    double loss = logit && dlogit ? mfb_loss_grad_impl(m, n, users, items, labels, logit, dlogit) : NAN;
    free(logit);
    free(dlogit);
    return loss;
}

// --- training

// Keeps the padding rows at zero after every step (no gradient reaches them,
// but coupled L2 and Adam's moments must not move them either).
static void mfb_zero_padding(collm_cf_model *m, collm_pool *pool) {
    (void)pool;
    mfb_impl *w = m->impl;
    memset(cf_w(&w->p, w->i_user), 0, (size_t)mfb_k(m) * sizeof(float));
    memset(cf_w(&w->p, w->i_item), 0, (size_t)mfb_k(m) * sizeof(float));
    cf_w(&w->p, w->i_ubias)[0] = 0.0f;
    cf_w(&w->p, w->i_ibias)[0] = 0.0f;
}

static double mfb_batch(collm_cf_model *m, void *ctx, const cf_rows_batch *b, collm_pool *pool) {
    (void)ctx, (void)pool;
    return mfb_loss_grad_impl(m, b->n, b->users, b->items, b->labels, b->logit, b->dlogit);
}

static int mfb_train(collm_cf_model *m, const collm_rec_split *train, const collm_rec_split *eval,
                     const collm_cf_train_options *opt, collm_pool *pool, collm_cf_progress_fn progress, void *progress_ctx,
                     collm_cf_train_result *result) {
    const cf_rows_kind kind = {mfb_batch, mfb_zero_padding, NULL, 0, NULL};
    return cf_train_rows(m, &((mfb_impl *)m->impl)->p, train, eval, opt, pool, progress, progress_ctx, result, &kind);
}

// --- vtable

static void mfb_hparams_default(collm_cf_hparams *hp) {
    hp->dim = 66; // 64 factors + the two bias coordinates
    hp->n_layers = 0;
    hp->n_heads = 0;
    hp->max_len = 0;
}

static void mfb_train_defaults(collm_cf_train_options *opt) {
    // Chosen on ML-1M valid (docs/encoders.md): the biases are learned in a
    // few epochs at 1e-2; the factors then overfit quickly, so patience is short.
    opt->lr = 1e-2;
    opt->weight_decay = 1e-4;
    opt->batch = 1024;
    opt->max_epochs = 100;
    opt->patience = 5;
}

static int mfb_init(collm_cf_model *m, uint64_t seed, int initialise) {
    if (m->dim < 3) return collm_error(COLLM_ERR_ARG, "mfbias: dim %d (need >= 3: factors + two bias coordinates)", m->dim);
    mfb_impl *w = collm_calloc(1, sizeof *w);
    if (!w) return COLLM_ERR_NOMEM;
    m->impl = w;
    const int64_t k = mfb_k(m);
    w->i_user = cf_params_add(&w->p, "mfb.user_embd", m->n_users, k, 1);
    w->i_item = cf_params_add(&w->p, "mfb.item_embd", m->n_items, k, 1);
    w->i_ubias = cf_params_add(&w->p, "mfb.user_bias", m->n_users, 1, 1);
    w->i_ibias = cf_params_add(&w->p, "mfb.item_bias", m->n_items, 1, 1);
    int rc = cf_params_alloc(&w->p);
    if (rc) return rc;
    if (initialise) { // N(0, 0.01²), users then items; padding rows and biases zero
        collm_rng rng;
        collm_rng_seed(&rng, seed);
        cf_init_normal(cf_w(&w->p, w->i_user) + k, (m->n_users - 1) * k, 0.01, &rng);
        cf_init_normal(cf_w(&w->p, w->i_item) + k, (m->n_items - 1) * k, 0.01, &rng);
    }
    return COLLM_OK;
}

static void mfb_user_vector(const collm_cf_model *m, int32_t user, float *out) { // [p_u, b_u, 1]
    const mfb_impl *w = m->impl;
    const int k = mfb_k(m);
    memcpy(out, cf_w(&w->p, w->i_user) + (int64_t)user * k, (size_t)k * sizeof(float));
    out[k] = cf_w(&w->p, w->i_ubias)[user];
    out[k + 1] = 1.0f;
}

static void mfb_item_vector(const collm_cf_model *m, int32_t item, float *out) { // [q_i, 1, b_i]
    const mfb_impl *w = m->impl;
    const int k = mfb_k(m);
    memcpy(out, cf_w(&w->p, w->i_item) + (int64_t)item * k, (size_t)k * sizeof(float));
    out[k] = 1.0f;
    out[k + 1] = cf_w(&w->p, w->i_ibias)[item];
}

static float mfb_score(const collm_cf_model *m, int32_t user, int32_t item) { return mfb_logit(m, m->impl, user, item); }

static cf_params *mfb_params(const collm_cf_model *m) { return &((mfb_impl *)m->impl)->p; }

const collm_cf_kind collm_cf_kind_mfbias = {
    .name = "mfbias",
    .uses_history = 0,
    .hparams_default = mfb_hparams_default,
    .train_defaults = mfb_train_defaults,
    .init = mfb_init,
    .free_impl = cf_nn_free_impl,
    .user_vector = mfb_user_vector,
    .item_vector = mfb_item_vector,
    .score = mfb_score,
    .train = mfb_train,
    .params = mfb_params,
    .loss_grad = mfb_loss_grad,
    .save_tensors = cf_nn_save_tensors,
    .load_tensors = cf_nn_load_tensors,
};
