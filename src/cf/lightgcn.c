// LightGCN (method.md §4.2; He et al. 2020, as in the CoLLM authors'
// rec_base_models.py and baseline_train_lightgcn_ood.py).
//
// Nodes: users 0..nu-1, then items nu..nu+ni-1. E0 (N, d), N = nu + ni, is the
// trainable embedding (users stacked over items), initialised N(0, 0.1²)
// (row 0 of each table is padding and starts at zero: it has no edges and
// is never scored, so it stays zero). The graph Â = D^-1/2 A D^-1/2 of the
// train positives (A symmetric bipartite, a repeated pair counts twice,
// isolated nodes get zero rows). Propagation:
//   E_{k+1} = Â E_k (k < K),   OUT = (E_0 + ... + E_K) / (K + 1)      (N, d)
// score(u, i) = <OUT_u, OUT_{nu+i}>; loss = mean BCE with logits (the
// authors' ML-1M script; its BPR variant is unused there). The full
// propagation runs at every step, as the reference's computer() does.
// Backward: Â is symmetric, so dE_0 = (Σ_k Â^k dOUT) / (K + 1) is the same
// propagation applied to dOUT.
//
// Tensors: lgcn.user_embd (nu, d), lgcn.item_embd (ni, d) (trainable),
// lgcn.user_out (nu, d), lgcn.item_out (ni, d) (the propagated tables,
// saved so that a loaded model scores without the graph; before any graph
// is known they equal the embeddings).
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
    int i_user, i_item, i_uout, i_iout;
    // the normalised graph, CSR over the N nodes (training only)
    int64_t *row_start; // (N + 1)
    int32_t *col;       // (nnz)
    float *val;         // (nnz)
    float *scratch;     // (3, N, d): two propagation buffers and dOUT
} lgcn_impl;

static int64_t lgcn_nodes(const collm_cf_model *m) { return (int64_t)m->n_users + m->n_items; }

static float *lgcn_e0(const lgcn_impl *w) { return cf_w(&w->p, w->i_user); }   // (N, d): user rows, then item rows
static float *lgcn_out(const lgcn_impl *w) { return cf_w(&w->p, w->i_uout); }  // (N, d)

// --- sparse propagation

typedef struct {
    const lgcn_impl *w;
    int d;
    const float *cur; // (N, d)
    float *nxt;       // (N, d) = Â cur
    float *acc;       // (N, d) += nxt; scaled by `scale` when scale != 0
    float scale;
} lgcn_spmm_ctx;

static void lgcn_spmm_task(void *ctx, int64_t begin, int64_t end, int thread_index) {
    (void)thread_index;
    lgcn_spmm_ctx *c = ctx;
    unsigned fp = cf_fpmode_enter();
    const int d = c->d;
    for (int64_t r = begin; r < end; r++) {
        float *y = c->nxt + r * d;
        memset(y, 0, (size_t)d * sizeof *y);
        for (int64_t k = c->w->row_start[r]; k < c->w->row_start[r + 1]; k++)
            collm_ops_axpy(y, c->w->val[k], c->cur + (int64_t)c->w->col[k] * d, d);
        float *a = c->acc + r * d;
        for (int j = 0; j < d; j++) a[j] += y[j];
        if (c->scale != 0.0f)
            for (int j = 0; j < d; j++) a[j] *= c->scale;
    }
    cf_fpmode_leave(fp);
}

// out (N, d) = (in + Â in + ... + Â^K in) / (K + 1); in and out must differ.
// Without a graph, out = in.
static void lgcn_propagate(const collm_cf_model *m, const lgcn_impl *w, const float *in, float *out, collm_pool *pool) {
    const int64_t N = lgcn_nodes(m), d = m->dim;
    const int K = w->row_start ? m->hp.n_layers : 0;
    memcpy(out, in, (size_t)(N * d) * sizeof(float));
    if (K == 0) return;
    float *bufs[2] = {w->scratch, w->scratch + N * d};
    const float *cur = in;
    for (int k = 1; k <= K; k++) {
        lgcn_spmm_ctx c = {w, (int)d, cur, bufs[k & 1], out, k == K ? 1.0f / (float)(K + 1) : 0.0f};
        collm_pool_for(pool, N, 64, lgcn_spmm_task, &c);
        cur = bufs[k & 1];
    }
}

static void lgcn_free_graph(lgcn_impl *w) {
    free(w->row_start);
    free(w->col);
    free(w->val);
    free(w->scratch);
    w->row_start = NULL;
    w->col = NULL;
    w->val = NULL;
    w->scratch = NULL;
}

int collm_lightgcn_set_graph(collm_cf_model *m, const collm_rec_split *train, collm_pool *pool) {
    if (!m || m->kind != &collm_cf_kind_lightgcn) return collm_error(COLLM_ERR_ARG, "collm_lightgcn_set_graph: not a LightGCN");
    lgcn_impl *w = m->impl;
    lgcn_free_graph(w);
    const int64_t N = lgcn_nodes(m), nu = m->n_users, d = m->dim;
    int64_t n_pos = 0;
    for (int64_t r = 0; r < train->n; r++) n_pos += train->label[r] > 0;
    w->row_start = collm_calloc((size_t)N + 1, sizeof *w->row_start);
    w->col = collm_malloc((size_t)(2 * n_pos + 1) * sizeof *w->col);
    w->val = collm_malloc((size_t)(2 * n_pos + 1) * sizeof *w->val);
    w->scratch = collm_malloc((size_t)(3 * N * d) * sizeof *w->scratch);
    int64_t *fill = collm_malloc((size_t)N * sizeof *fill);
    if (!w->row_start || !w->col || !w->val || !w->scratch || !fill) {
        free(fill);
        lgcn_free_graph(w);
        return COLLM_ERR_NOMEM;
    }
    // degrees, then CSR rows in split order (u -> nu+i and nu+i -> u)
    for (int64_t r = 0; r < train->n; r++)
        if (train->label[r] > 0) {
            w->row_start[train->user[r] + 1]++;
            w->row_start[nu + train->item[r] + 1]++;
        }
    for (int64_t v = 0; v < N; v++) w->row_start[v + 1] += w->row_start[v];
    memcpy(fill, w->row_start, (size_t)N * sizeof *fill);
    for (int64_t r = 0; r < train->n; r++)
        if (train->label[r] > 0) {
            int64_t u = train->user[r], i = nu + train->item[r];
            w->col[fill[u]++] = (int32_t)i;
            w->col[fill[i]++] = (int32_t)u;
        }
    free(fill);
    for (int64_t v = 0; v < N; v++)
        for (int64_t k = w->row_start[v]; k < w->row_start[v + 1]; k++) {
            double dv = (double)(w->row_start[v + 1] - w->row_start[v]);
            double dc = (double)(w->row_start[w->col[k] + 1] - w->row_start[w->col[k]]);
            w->val[k] = (float)(1.0 / sqrt(dv * dc));
        }
    lgcn_propagate(m, w, lgcn_e0(w), lgcn_out(w), pool);
    return COLLM_OK;
}

// --- loss and gradient of one batch

static double lgcn_loss_grad_impl(collm_cf_model *m, int64_t n, const int32_t *users, const int32_t *items,
                                  const float *labels, float *logit, float *dlogit, collm_pool *pool) {
    lgcn_impl *w = m->impl;
    const int64_t N = lgcn_nodes(m), nu = m->n_users, d = m->dim;
    float *out = lgcn_out(w), *dout = w->scratch + 2 * N * d;
    lgcn_propagate(m, w, lgcn_e0(w), out, pool); // OUT (N, d)
    for (int64_t r = 0; r < n; r++)                // logits (n)
        logit[r] = collm_ops_dot(out + (int64_t)users[r] * d, out + (nu + items[r]) * d, d);
    double loss = cf_bce(dlogit, logit, labels, n);
    // dOUT (N, d): rows of the batch's users and items, summed in batch order
    memset(dout, 0, (size_t)(N * d) * sizeof *dout);
    for (int64_t r = 0; r < n; r++) {
        int64_t u = users[r], i = nu + items[r];
        collm_ops_axpy(dout + u * d, dlogit[r], out + i * d, d);
        collm_ops_axpy(dout + i * d, dlogit[r], out + u * d, d);
    }
    // dE0 (N, d) = propagate(dOUT), written into the gradient of E0
    lgcn_propagate(m, w, dout, w->p.g, pool);
    // padding rows never move (they have no edges; a padding id in a batch is not learned)
    memset(w->p.g, 0, (size_t)d * sizeof(float));
    memset(w->p.g + nu * d, 0, (size_t)d * sizeof(float));
    return loss;
}

static double lgcn_loss_grad(collm_cf_model *m, int64_t n, const int32_t *users, const int32_t *items, const int32_t *win,
                             const float *labels, double dropout, uint64_t seed, collm_pool *pool) {
    (void)win, (void)dropout, (void)seed;
    lgcn_impl *w = m->impl;
    if (!w->row_start) {
        collm_error(COLLM_ERR_ARG, "lightgcn: no graph (collm_lightgcn_set_graph)");
        return NAN;
    }
    if (cf_params_alloc_train(&w->p)) return NAN;
    float *logit = collm_malloc((size_t)(n > 0 ? n : 1) * sizeof *logit);
    float *dlogit = collm_malloc((size_t)(n > 0 ? n : 1) * sizeof *dlogit);
    double loss = logit && dlogit ? lgcn_loss_grad_impl(m, n, users, items, labels, logit, dlogit, pool) : NAN;
    free(logit);
    free(dlogit);
    return loss;
}

// --- training

static void lgcn_refresh(collm_cf_model *m, collm_pool *pool) {
    lgcn_impl *w = m->impl;
    lgcn_propagate(m, w, lgcn_e0(w), lgcn_out(w), pool);
}

static double lgcn_batch(collm_cf_model *m, void *ctx, const cf_rows_batch *b, collm_pool *pool) {
    (void)ctx;
    return lgcn_loss_grad_impl(m, b->n, b->users, b->items, b->labels, b->logit, b->dlogit, pool);
}

static int lgcn_train(collm_cf_model *m, const collm_rec_split *train, const collm_rec_split *eval,
                      const collm_cf_train_options *opt, collm_pool *pool, collm_cf_progress_fn progress,
                      void *progress_ctx, collm_cf_train_result *result) {
    lgcn_impl *w = m->impl;
    int rc = cf_train_begin(m, NULL, train); // before the graph: an empty split has none
    if (!rc) rc = collm_lightgcn_set_graph(m, train, pool);
    if (rc) return rc;
    const cf_rows_kind kind = {lgcn_batch, NULL, lgcn_refresh, 0, NULL};
    return cf_train_rows(m, &w->p, train, eval, opt, pool, progress, progress_ctx, result, &kind);
}

// --- vtable

static void lgcn_hparams_default(collm_cf_hparams *hp) {
    hp->dim = 64;     // the authors' ML-1M LightGCN
    hp->n_layers = 2; // their configs (the script's default is 1)
    hp->n_heads = 0;
    hp->max_len = 0;
}

static void lgcn_train_defaults(collm_cf_train_options *opt) {
    // Tuned on ML-1M valid (2 threads): the authors' saved run (lr 1e-2, wd
    // 1e-4, batch 1024) peaks at valid AUC 0.646 after 36 epochs; lr 3e-3 with
    // wd 3e-5 reaches 0.667 / UAUC 0.634 at epoch 91 (wd 1e-5: 0.642, 3e-4:
    // 0.608, 1e-3: 0.544; 1 or 3 layers and d 128 / 256 were no better).
    opt->lr = 3e-3;
    opt->weight_decay = 3e-5;
    opt->batch = 1024;
    opt->max_epochs = 300;
    opt->patience = 40;
}

static int lgcn_init(collm_cf_model *m, uint64_t seed, int initialise) {
    if (m->hp.n_layers < 0 || m->hp.n_layers > 8)
        return collm_error(COLLM_ERR_ARG, "lightgcn: %d layers (need 0..8)", m->hp.n_layers);
    lgcn_impl *w = collm_calloc(1, sizeof *w);
    if (!w) return COLLM_ERR_NOMEM;
    m->impl = w;
    const int64_t d = m->dim;
    w->i_user = cf_params_add(&w->p, "lgcn.user_embd", m->n_users, d, 1);
    w->i_item = cf_params_add(&w->p, "lgcn.item_embd", m->n_items, d, 1);
    w->i_uout = cf_params_add(&w->p, "lgcn.user_out", m->n_users, d, 0);
    w->i_iout = cf_params_add(&w->p, "lgcn.item_out", m->n_items, d, 0);
    if (!initialise) return COLLM_OK; // cf_params_load allocates once the file's shapes match
    int rc = cf_params_alloc(&w->p);
    if (rc) return rc;
    { // N(0, 0.1²), users then items; padding rows zero
        collm_rng rng;
        collm_rng_seed(&rng, seed);
        cf_init_normal(cf_w(&w->p, w->i_user) + d, (m->n_users - 1) * d, 0.1, &rng);
        cf_init_normal(cf_w(&w->p, w->i_item) + d, (m->n_items - 1) * d, 0.1, &rng);
        lgcn_propagate(m, w, lgcn_e0(w), lgcn_out(w), NULL); // no graph yet: OUT = E0
    }
    return COLLM_OK;
}

static void lgcn_free_impl(collm_cf_model *m) {
    lgcn_free_graph(m->impl);
    cf_nn_free_impl(m);
}

static void lgcn_user_vector(const collm_cf_model *m, int32_t user, float *out) {
    const lgcn_impl *w = m->impl;
    memcpy(out, cf_w(&w->p, w->i_uout) + (int64_t)user * m->dim, (size_t)m->dim * sizeof(float));
}

static void lgcn_item_vector(const collm_cf_model *m, int32_t item, float *out) {
    const lgcn_impl *w = m->impl;
    memcpy(out, cf_w(&w->p, w->i_iout) + (int64_t)item * m->dim, (size_t)m->dim * sizeof(float));
}

static float lgcn_score(const collm_cf_model *m, int32_t user, int32_t item) {
    const lgcn_impl *w = m->impl;
    return collm_ops_dot(cf_w(&w->p, w->i_uout) + (int64_t)user * m->dim, cf_w(&w->p, w->i_iout) + (int64_t)item * m->dim,
                         m->dim);
}

static cf_params *lgcn_params(const collm_cf_model *m) { return &((lgcn_impl *)m->impl)->p; }

const collm_cf_kind collm_cf_kind_lightgcn = {
    .name = "lightgcn",
    .uses_history = 0,
    .hparams_default = lgcn_hparams_default,
    .train_defaults = lgcn_train_defaults,
    .init = lgcn_init,
    .free_impl = lgcn_free_impl,
    .user_vector = lgcn_user_vector,
    .item_vector = lgcn_item_vector,
    .score = lgcn_score,
    .train = lgcn_train,
    .params = lgcn_params,
    .loss_grad = lgcn_loss_grad,
    .save_tensors = cf_nn_save_tensors,
    .load_tensors = cf_nn_load_tensors,
};
