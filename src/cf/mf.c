// Matrix factorisation (method.md §4.1): nn.Embedding(padding_idx=0) tables
// initialised N(0,1) with row 0 zero, score = <e_u, e_i>, mean
// BCE-with-logits loss, PyTorch Adam with coupled L2 weight decay.
//
// Gradients are dense as in PyTorch: every row (but the padding row) decays
// and has its Adam moments updated on every step, rows absent from the batch
// included. One step:
//   1. logits of the batch rows (parallel over rows), BCE and dlogit;
//   2. a stable counting sort of the batch positions by user and by item;
//   3. gradient rows (parallel over table rows): grad_user[u] = Σ over the
//      batch positions b of user u, in batch order, of dlogit_b · I[item_b]
//      (and symmetrically for items). Each row is summed by one thread in a
//      fixed order, so the result does not depend on the thread count;
//   4. the Adam update over all rows 1.. of both tables (parallel over rows).
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cf/cf_internal.h"
#include "cf/cf_nn.h"
#include "collm/dist.h"
#include "collm/error.h"
#include "collm/metrics.h"
#include "cf/mf.h"
#include "core/ops.h"
#include "core/rng.h"

typedef struct {
    float *user_embd; // (n_users, d)
    float *item_embd; // (n_items, d)
} mf_impl;

// Work space of one batch (capacity cap rows) and the gradients.
typedef struct {
    const float *user_embd, *item_embd;
    int32_t n_users, n_items;
    int dim;
    const int32_t *users, *items; // (n)
    const float *labels;          // (n)
    int64_t n;
    float *logit, *dlogit;        // (cap)
    int64_t *user_start;          // (n_users + 2) batch positions of user u: user_rows[user_start[u] .. user_start[u+1])
    int64_t *user_rows;           // (cap)
    int64_t *item_start;          // (n_items + 2)
    int64_t *item_rows;           // (cap)
    float *grad_user;             // (n_users, d)
    float *grad_item;             // (n_items, d)
} mf_batch;

static void mf_batch_free(mf_batch *b) {
    free(b->logit);
    free(b->dlogit);
    free(b->user_start);
    free(b->user_rows);
    free(b->item_start);
    free(b->item_rows);
}

// Allocates the per-batch arrays (the gradient buffers are the caller's).
static int mf_batch_alloc(mf_batch *b, int32_t n_users, int32_t n_items, int dim, int64_t cap) {
    memset(b, 0, sizeof *b);
    b->n_users = n_users;
    b->n_items = n_items;
    b->dim = dim;
    if (cap < 1) cap = 1;
    b->logit = collm_malloc((size_t)cap * sizeof(float));
    b->dlogit = collm_malloc((size_t)cap * sizeof(float));
    b->user_start = collm_malloc(((size_t)n_users + 2) * sizeof(int64_t));
    b->user_rows = collm_malloc((size_t)cap * sizeof(int64_t));
    b->item_start = collm_malloc(((size_t)n_items + 2) * sizeof(int64_t));
    b->item_rows = collm_malloc((size_t)cap * sizeof(int64_t));
    if (!b->logit || !b->dlogit || !b->user_start || !b->user_rows || !b->item_start || !b->item_rows) {
        mf_batch_free(b);
        return COLLM_ERR_NOMEM;
    }
    return COLLM_OK;
}

static void mf_logits_task(void *ctx, int64_t begin, int64_t end, int thread_index) {
    unsigned fp = cf_fpmode_enter();
    (void)thread_index;
    mf_batch *b = ctx;
    int d = b->dim;
    for (int64_t r = begin; r < end; r++)
        b->logit[r] = collm_ops_dot(b->user_embd + (int64_t)b->users[r] * d, b->item_embd + (int64_t)b->items[r] * d, d);
    cf_fpmode_leave(fp);
}

// Stable counting sort of positions 0..n-1 by ids[pos]: afterwards the
// positions of id k are rows[start[k] .. start[k+1]) in increasing order.
static void mf_group_by_id(const int32_t *ids, int64_t n, int32_t n_ids, int64_t *start, int64_t *rows) {
    memset(start, 0, ((size_t)n_ids + 2) * sizeof *start);
    for (int64_t r = 0; r < n; r++) start[ids[r] + 2]++;
    for (int64_t k = 2; k < (int64_t)n_ids + 2; k++) start[k] += start[k - 1];
    // now start[k + 1] is where id k begins; filling advances it to where k ends
    for (int64_t r = 0; r < n; r++) rows[start[ids[r] + 1]++] = r;
}

// Gradient rows [begin, end) of the stacked index space: users first, then items.
static void mf_grad_task(void *ctx, int64_t begin, int64_t end, int thread_index) {
    unsigned fp = cf_fpmode_enter();
    (void)thread_index;
    mf_batch *b = ctx;
    int d = b->dim;
    for (int64_t row = begin; row < end; row++) {
        int is_user = row < b->n_users;
        int64_t id = is_user ? row : row - b->n_users;
        float *g = (is_user ? b->grad_user : b->grad_item) + id * d;
        memset(g, 0, (size_t)d * sizeof *g);
        if (id == 0) continue; // padding row: no gradient
        const int64_t *start = is_user ? b->user_start : b->item_start;
        const int64_t *rows = is_user ? b->user_rows : b->item_rows;
        for (int64_t k = start[id]; k < start[id + 1]; k++) {
            int64_t r = rows[k];
            const float *other = is_user ? b->item_embd + (int64_t)b->items[r] * d : b->user_embd + (int64_t)b->users[r] * d;
            collm_ops_axpy(g, b->dlogit[r], other, d);
        }
    }
    cf_fpmode_leave(fp);
}

// Loss and gradients of the batch described in b (see collm_mf_loss_grad).
static double mf_batch_loss_grad(mf_batch *b, collm_pool *pool) {
    collm_pool_for(pool, b->n, 512, mf_logits_task, b);
    double loss = collm_ops_bce_with_logits(b->dlogit, b->logit, b->labels, (int)b->n);
    mf_group_by_id(b->users, b->n, b->n_users, b->user_start, b->user_rows);
    mf_group_by_id(b->items, b->n, b->n_items, b->item_start, b->item_rows);
    collm_pool_for(pool, (int64_t)b->n_users + b->n_items, 64, mf_grad_task, b);
    return loss;
}

double collm_mf_loss_grad(const float *user_embd, const float *item_embd, int32_t n_users, int32_t n_items, int dim,
                    const int32_t *users, const int32_t *items, const float *labels, int64_t n, float *grad_user,
                    float *grad_item, collm_pool *pool) {
    mf_batch b;
    if (mf_batch_alloc(&b, n_users, n_items, dim, n) != COLLM_OK) return NAN;
    b.user_embd = user_embd;
    b.item_embd = item_embd;
    b.users = users;
    b.items = items;
    b.labels = labels;
    b.n = n;
    b.grad_user = grad_user;
    b.grad_item = grad_item;
    double loss = mf_batch_loss_grad(&b, pool);
    mf_batch_free(&b);
    return loss;
}

// --- Adam over both tables, rows 1.. (row 0 is padding: zero weights, zero
// gradient, so PyTorch's update leaves it at zero; skipping it is the same).
typedef struct {
    mf_impl *w;
    mf_batch *b;
    float *m_user, *v_user, *m_item, *v_item;
    const collm_cf_train_options *opt;
    int64_t step;
} mf_adam_task_ctx;

static void mf_adam_task(void *ctx, int64_t begin, int64_t end, int thread_index) {
    unsigned fp = cf_fpmode_enter();
    (void)thread_index;
    mf_adam_task_ctx *t = ctx;
    const collm_cf_train_options *o = t->opt;
    int64_t d = t->b->dim, nu = t->b->n_users, ni = t->b->n_items;
    // users: stacked rows [1, nu)
    int64_t lo = begin > 1 ? begin : 1, hi = end < nu ? end : nu;
    if (lo < hi)
        collm_ops_adam_update(t->w->user_embd + lo * d, t->b->grad_user + lo * d, t->m_user + lo * d, t->v_user + lo * d,
                        (hi - lo) * d, (float)o->lr, (float)o->beta1, (float)o->beta2, (float)o->eps,
                        (float)o->weight_decay, 1, t->step);
    // items: stacked rows [nu + 1, nu + ni)
    lo = (begin > nu + 1 ? begin : nu + 1) - nu;
    hi = (end < nu + ni ? end : nu + ni) - nu;
    if (lo < hi)
        collm_ops_adam_update(t->w->item_embd + lo * d, t->b->grad_item + lo * d, t->m_item + lo * d, t->v_item + lo * d,
                        (hi - lo) * d, (float)o->lr, (float)o->beta1, (float)o->beta2, (float)o->eps,
                        (float)o->weight_decay, 1, t->step);
    cf_fpmode_leave(fp);
}

// --- training: MF's epoch (its own sparse-row batches and Adam) in the shared loop (cf_train_loop)

typedef struct {
    const collm_rec_split *train;
    collm_pool *pool;
    int64_t cap;
    mf_batch b;
    mf_adam_task_ctx adam;
    int32_t *perm;        // (N)
    int32_t *b_users, *b_items; // (cap)
    float *b_labels;      // (cap)
    float *grad_user;     // ((nu + ni) d + 1): both gradients, then the batch loss (one allreduce under mpirun)
    float *m_user, *v_user, *m_item, *v_item; // Adam moments of both tables
} mf_train_state;

static int mf_epoch(void *state, collm_rng *rng, double *mean_loss) {
    mf_train_state *s = state;
    const int64_t N = s->train->n, cap = s->cap, nu = s->b.n_users, ni = s->b.n_items, d = s->b.dim;
    collm_rng_shuffle_i32(rng, s->perm, N);
    double loss_sum = 0.0; // Σ over batches of mean loss × rows
    for (int64_t off = 0; off < N; off += cap) {
        int64_t n = N - off < cap ? N - off : cap, lo, hi;
        cf_batch_rows(s->train, s->perm + off, n, s->b_users, s->b_items, s->b_labels, &lo, &hi);
        s->b.n = hi - lo;
        double loss = mf_batch_loss_grad(&s->b, s->pool);
        if (collm_dist_size() > 1) { // this rank's share of the batch mean, summed over the ranks
            int rc = cf_grad_allreduce(s->grad_user, (nu + ni) * d, &loss, (float)(hi - lo) / (float)n);
            if (rc) return rc;
        }
        loss_sum += loss * (double)n;
        s->adam.step++;
        collm_pool_for(s->pool, nu + ni, 64, mf_adam_task, &s->adam);
    }
    *mean_loss = loss_sum / (double)N;
    return COLLM_OK;
}

static int mf_train(collm_cf_model *m, const collm_rec_split *train, const collm_rec_split *eval, const collm_cf_train_options *opt,
                    collm_pool *pool, collm_cf_progress_fn progress, void *progress_ctx, collm_cf_train_result *result) {
    mf_impl *w = m->impl;
    const int64_t d = m->dim, nu = m->n_users, ni = m->n_items, N = train->n;
    int rc = cf_train_begin(m, NULL, train);
    if (rc) return rc;
    mf_train_state s;
    memset(&s, 0, sizeof s);
    s.train = train, s.pool = pool, s.cap = opt->batch < N ? opt->batch : N;
    if (mf_batch_alloc(&s.b, m->n_users, m->n_items, m->dim, s.cap) != COLLM_OK) return COLLM_ERR_NOMEM;
    s.perm = collm_malloc((size_t)N * sizeof *s.perm);
    s.b_users = collm_malloc((size_t)s.cap * sizeof *s.b_users);
    s.b_items = collm_malloc((size_t)s.cap * sizeof *s.b_items);
    s.b_labels = collm_malloc((size_t)s.cap * sizeof *s.b_labels);
    s.grad_user = collm_malloc((size_t)((nu + ni) * d + 1) * sizeof(float));
    s.m_user = collm_calloc((size_t)(nu * d), sizeof(float));
    s.v_user = collm_calloc((size_t)(nu * d), sizeof(float));
    s.m_item = collm_calloc((size_t)(ni * d), sizeof(float));
    s.v_item = collm_calloc((size_t)(ni * d), sizeof(float));
    if (!s.perm || !s.b_users || !s.b_items || !s.b_labels || !s.grad_user || !s.m_user || !s.v_user ||
        !s.m_item || !s.v_item)
        rc = COLLM_ERR_NOMEM;
    if (!rc) {
        for (int64_t r = 0; r < N; r++) s.perm[r] = (int32_t)r;
        s.b.user_embd = w->user_embd;
        s.b.item_embd = w->item_embd;
        s.b.users = s.b_users;
        s.b.items = s.b_items;
        s.b.labels = s.b_labels;
        s.b.grad_user = s.grad_user;
        s.b.grad_item = s.grad_user + nu * d;
        s.adam = (mf_adam_task_ctx){w, &s.b, s.m_user, s.v_user, s.m_item, s.v_item, opt, 0};
        const cf_weights tables = {2, {w->user_embd, w->item_embd}, {nu * d, ni * d}};
        rc = cf_train_loop(m, tables, eval, opt, pool, progress, progress_ctx, result, mf_epoch, NULL, &s);
    }
    mf_batch_free(&s.b);
    free(s.perm);
    free(s.b_users);
    free(s.b_items);
    free(s.b_labels);
    free(s.grad_user); // (grad_item is its second part)
    free(s.m_user);
    free(s.v_user);
    free(s.m_item);
    free(s.v_item);
    return rc;
}

// --- vtable

static int mf_init(collm_cf_model *m, uint64_t seed, int initialise) {
    mf_impl *w = collm_calloc(1, sizeof *w);
    if (!w) return COLLM_ERR_NOMEM;
    int64_t d = m->dim;
    m->impl = w;
    if (!initialise) return COLLM_OK; // mf_load_tensors allocates once the file's shapes match
    w->user_embd = collm_calloc((size_t)(m->n_users * d), sizeof(float));
    w->item_embd = collm_calloc((size_t)(m->n_items * d), sizeof(float));
    if (!w->user_embd || !w->item_embd) return COLLM_ERR_NOMEM;
    { // N(0, 1), users then items, row by row; row 0 stays zero
        collm_rng rng;
        collm_rng_seed(&rng, seed);
        for (int64_t i = d; i < m->n_users * d; i++) w->user_embd[i] = (float)collm_rng_normal(&rng);
        for (int64_t i = d; i < m->n_items * d; i++) w->item_embd[i] = (float)collm_rng_normal(&rng);
    }
    return COLLM_OK;
}

static void mf_free_impl(collm_cf_model *m) {
    mf_impl *w = m->impl;
    free(w->user_embd);
    free(w->item_embd);
    free(w);
    m->impl = NULL;
}

static void mf_user_vector(const collm_cf_model *m, int32_t user, float *out) {
    const mf_impl *w = m->impl;
    memcpy(out, w->user_embd + (int64_t)user * m->dim, (size_t)m->dim * sizeof(float));
}

static void mf_item_vector(const collm_cf_model *m, int32_t item, float *out) {
    const mf_impl *w = m->impl;
    memcpy(out, w->item_embd + (int64_t)item * m->dim, (size_t)m->dim * sizeof(float));
}

static float mf_score(const collm_cf_model *m, int32_t user, int32_t item) {
    const mf_impl *w = m->impl;
    return collm_ops_dot(w->user_embd + (int64_t)user * m->dim, w->item_embd + (int64_t)item * m->dim, m->dim);
}

static int mf_save_tensors(const collm_cf_model *m, collm_gguf_writer *gw) {
    const mf_impl *w = m->impl;
    int64_t ne_user[2] = {m->dim, m->n_users}; // (n_users, d) row-major
    int64_t ne_item[2] = {m->dim, m->n_items};
    int rc = collm_gguf_writer_add_tensor_f32(gw, "cf.user_embd", COLLM_GGML_TYPE_F32, 2, ne_user, w->user_embd);
    if (!rc) rc = collm_gguf_writer_add_tensor_f32(gw, "cf.item_embd", COLLM_GGML_TYPE_F32, 2, ne_item, w->item_embd);
    return rc;
}

// The table's tensor when its shape is (rows, d), else NULL + error.
static const collm_gguf_tensor_info *mf_find_table(const collm_gguf_file *f, const char *path, const char *name,
                                                   int64_t rows, int64_t d) {
    const collm_gguf_tensor_info *t = collm_gguf_find_tensor(f, name);
    if (!t) {
        collm_error(COLLM_ERR_FORMAT, "%s: MF model has no tensor %s", path, name);
        return NULL;
    }
    if (t->n_dims != 2 || t->ne[0] != d || t->ne[1] != rows) {
        collm_error(COLLM_ERR_FORMAT, "%s: tensor %s has shape [%lld, %lld] (n_dims %d), expected [%lld, %lld]", path,
                    name, (long long)t->ne[0], (long long)t->ne[1], t->n_dims, (long long)d, (long long)rows);
        return NULL;
    }
    return t;
}

static int mf_load_table(const collm_gguf_tensor_info *t, const char *path, const char *name, int64_t rows, int64_t d,
                         float *out) {
    int rc = collm_gguf_tensor_to_f32(t, out);
    if (rc) return collm_error_prefix(rc, "%s: tensor %s", path, name);
    for (int64_t i = 0; i < rows * d; i++)
        if (!isfinite(out[i]))
            return collm_error(COLLM_ERR_FORMAT, "%s: tensor %s: non-finite value at row %lld", path, name,
                               (long long)(i / d));
    return COLLM_OK;
}

// Both shapes are checked before the tables are allocated: the sizes come
// from the file's keys, and only tensors the file holds may back them.
static int mf_load_tensors(collm_cf_model *m, const collm_gguf_file *f, const char *path) {
    mf_impl *w = m->impl;
    const collm_gguf_tensor_info *tu = mf_find_table(f, path, "cf.user_embd", m->n_users, m->dim);
    const collm_gguf_tensor_info *ti = tu ? mf_find_table(f, path, "cf.item_embd", m->n_items, m->dim) : NULL;
    if (!ti) return COLLM_ERR_FORMAT;
    w->user_embd = collm_calloc((size_t)m->n_users * (size_t)m->dim, sizeof(float));
    w->item_embd = collm_calloc((size_t)m->n_items * (size_t)m->dim, sizeof(float));
    if (!w->user_embd || !w->item_embd) return COLLM_ERR_NOMEM;
    int rc = mf_load_table(tu, path, "cf.user_embd", m->n_users, m->dim, w->user_embd);
    if (!rc) rc = mf_load_table(ti, path, "cf.item_embd", m->n_items, m->dim, w->item_embd);
    return rc;
}

const collm_cf_kind collm_cf_kind_mf = {
    .name = "mf",
    .init = mf_init,
    .free_impl = mf_free_impl,
    .user_vector = mf_user_vector,
    .item_vector = mf_item_vector,
    .score = mf_score,
    .train = mf_train,
    .save_tensors = mf_save_tensors,
    .load_tensors = mf_load_tensors,
};
