// Shared pieces of the neural collaborative encoders (see cf/cf_nn.h).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cf/cf_nn.h"
#include "collm/dist.h"
#include "collm/error.h"
#include "collm/metrics.h"
#include "core/ops.h"

#if defined(__SSE2__)
#include <immintrin.h>
#endif

unsigned cf_fpmode_enter(void) {
#if defined(__SSE2__)
    unsigned saved = _mm_getcsr();
    _mm_setcsr(saved | 0x8040u); // FTZ (bit 15) | DAZ (bit 6)
    return saved;
#else
    return 0;
#endif
}

void cf_fpmode_leave(unsigned saved) {
#if defined(__SSE2__)
    _mm_setcsr(saved);
#else
    (void)saved;
#endif
}

double cf_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// ---------------------------------------------------------------------------
// parameters

int cf_params_add(cf_params *p, const char *name, int64_t rows, int64_t cols, int trainable) {
    if (p->n >= CF_MAX_TENSORS || rows < 1 || cols < 1 || strlen(name) >= sizeof p->t[0].name)
        return collm_error(COLLM_ERR_ARG, "cf: cannot add tensor %s (%lld x %lld)", name, (long long)rows,
                           (long long)cols);
    cf_tensor *t = &p->t[p->n];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->rows = rows;
    t->cols = cols;
    t->trainable = trainable;
    return p->n++;
}

int cf_params_alloc(cf_params *p) {
    int64_t off = 0;
    for (int pass = 1; pass >= 0; pass--) // trainable first, then buffers
        for (int i = 0; i < p->n; i++)
            if (p->t[i].trainable == pass) {
                p->t[i].offset = off;
                off += p->t[i].rows * p->t[i].cols;
                if (pass) p->n_train = off;
            }
    p->n_total = off;
    p->w = collm_calloc((size_t)(off > 0 ? off : 1), sizeof(float));
    return p->w ? COLLM_OK : COLLM_ERR_NOMEM;
}

int cf_params_alloc_train(cf_params *p) {
    if (p->g) return COLLM_OK;
    size_t n = (size_t)(p->n_train > 0 ? p->n_train : 1);
    // g[n_train]: one spare float after the gradient, where the data-parallel
    // loop (cf_rows.c) puts the batch loss so that one allreduce sums both
    p->g = collm_calloc(n + 1, sizeof(float));
    p->m = collm_calloc(n, sizeof(float));
    p->v = collm_calloc(n, sizeof(float));
    if (!p->g || !p->m || !p->v) return COLLM_ERR_NOMEM;
    return COLLM_OK;
}

void cf_params_free(cf_params *p) {
    free(p->w);
    free(p->g);
    free(p->m);
    free(p->v);
    p->w = p->g = p->m = p->v = NULL;
}

void cf_init_normal(float *w, int64_t n, double std, collm_rng *rng) {
    for (int64_t i = 0; i < n; i++) w[i] = (float)(std * collm_rng_normal(rng));
}

void cf_init_xavier_normal(float *w, int64_t fan_out, int64_t fan_in, collm_rng *rng) {
    cf_init_normal(w, fan_out * fan_in, sqrt(2.0 / (double)(fan_in + fan_out)), rng);
}

void cf_init_uniform(float *w, int64_t n, double bound, collm_rng *rng) {
    for (int64_t i = 0; i < n; i++) w[i] = (float)(bound * (2.0 * collm_rng_uniform(rng) - 1.0));
}

void cf_fill(float *w, int64_t n, float v) {
    for (int64_t i = 0; i < n; i++) w[i] = v;
}

int cf_params_save(const cf_params *p, collm_gguf_writer *w) {
    for (int i = 0; i < p->n; i++) {
        int64_t ne[2] = {p->t[i].cols, p->t[i].rows};
        int rc = collm_gguf_writer_add_tensor_f32(w, p->t[i].name, COLLM_GGML_TYPE_F32, 2, ne, cf_w(p, i));
        if (rc) return rc;
    }
    return COLLM_OK;
}

int cf_params_load(cf_params *p, const collm_gguf_file *f, const char *path) {
    // every shape first: the sizes come from the file's keys, and only tensors
    // the file really holds may decide an allocation
    for (int i = 0; i < p->n; i++) {
        const cf_tensor *d = &p->t[i];
        const collm_gguf_tensor_info *t = collm_gguf_find_tensor(f, d->name);
        if (!t) return collm_error(COLLM_ERR_FORMAT, "%s: CF model has no tensor %s", path, d->name);
        if (t->n_dims != 2 || t->ne[0] != d->cols || t->ne[1] != d->rows)
            return collm_error(COLLM_ERR_FORMAT, "%s: tensor %s has shape [%lld, %lld] (n_dims %d), expected [%lld, %lld]",
                               path, d->name, (long long)t->ne[0], (long long)t->ne[1], t->n_dims, (long long)d->cols,
                               (long long)d->rows);
    }
    int rc;
    if (!p->w && (rc = cf_params_alloc(p))) return rc;
    for (int i = 0; i < p->n; i++) {
        const cf_tensor *d = &p->t[i];
        const collm_gguf_tensor_info *t = collm_gguf_find_tensor(f, d->name);
        float *out = cf_w(p, i);
        rc = collm_gguf_tensor_to_f32(t, out);
        if (rc) return collm_error_prefix(rc, "%s: tensor %s", path, d->name);
        for (int64_t k = 0; k < d->rows * d->cols; k++)
            if (!isfinite(out[k]))
                return collm_error(COLLM_ERR_FORMAT, "%s: tensor %s: non-finite value at row %lld", path, d->name,
                                   (long long)(k / d->cols));
    }
    return COLLM_OK;
}

int cf_nn_save_tensors(const collm_cf_model *m, collm_gguf_writer *w) { return cf_params_save(m->kind->params(m), w); }

int cf_nn_load_tensors(collm_cf_model *m, const collm_gguf_file *f, const char *path) {
    return cf_params_load(m->kind->params(m), f, path);
}

void cf_nn_free_impl(collm_cf_model *m) {
    cf_params_free(m->kind->params(m));
    free(m->impl);
    m->impl = NULL;
}

void cf_params_zero_grad(cf_params *p) { memset(p->g, 0, (size_t)p->n_train * sizeof(float)); }

typedef struct {
    cf_params *p;
    const collm_cf_train_options *opt;
    int64_t step;
} cf_adam_ctx;

static void cf_adam_task(void *ctx, int64_t begin, int64_t end, int thread_index) {
    (void)thread_index;
    cf_adam_ctx *a = ctx;
    unsigned fp = cf_fpmode_enter();
    const collm_cf_train_options *o = a->opt;
    collm_ops_adam_update(a->p->w + begin, a->p->g + begin, a->p->m + begin, a->p->v + begin, end - begin, (float)o->lr,
                          (float)o->beta1, (float)o->beta2, (float)o->eps, (float)o->weight_decay, 1, a->step);
    cf_fpmode_leave(fp);
}

int cf_grad_allreduce(float *g, int64_t n_g, double *loss, float share) {
    for (int64_t j = 0; j < n_g; j++) g[j] *= share;
    g[n_g] = (float)(*loss * share);
    int rc = collm_dist_allreduce_sum_f32(g, n_g + 1);
    if (!rc) *loss = g[n_g];
    return rc;
}

int cf_params_allreduce(cf_params *p, double *loss, float share) { return cf_grad_allreduce(p->g, p->n_train, loss, share); }

void cf_params_adam(cf_params *p, const collm_cf_train_options *opt, int64_t step, collm_pool *pool) {
    cf_adam_ctx a = {p, opt, step};
    collm_pool_for(pool, p->n_train, 16384, cf_adam_task, &a);
}

// ---------------------------------------------------------------------------
// LayerNorm

void cf_layernorm_forward(float *y, float *mean, float *rstd, const float *x, const float *g, const float *b, int64_t T,
                          int C, float eps) {
    for (int64_t t = 0; t < T; t++) {
        const float *xt = x + t * C;
        float *yt = y + t * C;
        double s = 0, ss = 0;
        for (int c = 0; c < C; c++) s += xt[c];
        double mu = s / C;
        for (int c = 0; c < C; c++) ss += (xt[c] - mu) * (xt[c] - mu);
        float r = (float)(1.0 / sqrt(ss / C + eps));
        for (int c = 0; c < C; c++) yt[c] = ((xt[c] - (float)mu) * r) * g[c] + b[c];
        if (mean) mean[t] = (float)mu;
        if (rstd) rstd[t] = r;
    }
}

void cf_layernorm_backward(float *dx, float *dg, float *db, const float *dy, const float *x, const float *mean,
                           const float *rstd, const float *g, int64_t T, int C) {
    for (int64_t t = 0; t < T; t++) {
        const float *xt = x + t * C, *dyt = dy + t * C;
        float mu = mean[t], r = rstd[t];
        // dxhat = dy ⊙ g; dx = r (dxhat - mean(dxhat) - xhat mean(dxhat ⊙ xhat))
        double m1 = 0, m2 = 0;
        for (int c = 0; c < C; c++) {
            float xh = (xt[c] - mu) * r, dxh = dyt[c] * g[c];
            m1 += dxh;
            m2 += dxh * xh;
            if (dg) dg[c] += dyt[c] * xh;
            if (db) db[c] += dyt[c];
        }
        if (!dx) continue;
        float a = (float)(m1 / C), b2 = (float)(m2 / C);
        float *dxt = dx + t * C;
        for (int c = 0; c < C; c++) {
            float xh = (xt[c] - mu) * r;
            dxt[c] += r * (dyt[c] * g[c] - a - xh * b2);
        }
    }
}

// ---------------------------------------------------------------------------
// Dice with batch normalisation

static inline float cf_sigmoid(float z) { return 1.0f / (1.0f + expf(-z)); }

// Both passes split the channels over the pool: every channel is reduced over
// its rows in row order by one thread, so results do not depend on the split.
typedef struct {
    const cf_dice *d;
    float *y, *xhat, *rstd, *pgate, *dx, *dalpha, *dgamma, *dbeta;
    const float *x, *dy, *xhat_in, *rstd_in, *pgate_in;
    int64_t T;
    int C, training, update_running;
} cf_dice_ctx;

static void cf_dice_forward_task(void *ctx, int64_t c0, int64_t c1, int thread_index) {
    (void)thread_index;
    const cf_dice_ctx *k = ctx;
    const cf_dice *d = k->d;
    const int64_t T = k->T, C = k->C, nc = c1 - c0;
    float mu[CF_DICE_MAX_C], rs[CF_DICE_MAX_C];
    double acc[CF_DICE_MAX_C];
    if (k->training && T > 0) {
        // per-channel batch mean and biased variance over the T rows
        for (int64_t c = 0; c < nc; c++) acc[c] = 0;
        for (int64_t t = 0; t < T; t++)
            for (int64_t c = 0; c < nc; c++) acc[c] += k->x[t * C + c0 + c];
        for (int64_t c = 0; c < nc; c++) mu[c] = (float)(acc[c] / (double)T), acc[c] = 0;
        for (int64_t t = 0; t < T; t++)
            for (int64_t c = 0; c < nc; c++) {
                double e = k->x[t * C + c0 + c] - mu[c];
                acc[c] += e * e;
            }
        for (int64_t c = 0; c < nc; c++) {
            double var = acc[c] / (double)T;
            rs[c] = (float)(1.0 / sqrt(var + d->eps));
            if (k->update_running) {
                double unbiased = T > 1 ? var * (double)T / (double)(T - 1) : var;
                d->run_mean[c0 + c] = (1.0f - d->momentum) * d->run_mean[c0 + c] + d->momentum * mu[c];
                d->run_var[c0 + c] = (float)((1.0 - d->momentum) * d->run_var[c0 + c] + d->momentum * unbiased);
            }
        }
    } else {
        for (int64_t c = 0; c < nc; c++) {
            mu[c] = d->run_mean[c0 + c];
            rs[c] = (float)(1.0 / sqrt((double)d->run_var[c0 + c] + d->eps));
        }
    }
    for (int64_t t = 0; t < T; t++)
        for (int64_t c = 0; c < nc; c++) {
            int64_t i = t * C + c0 + c;
            float xv = k->x[i], xh = (xv - mu[c]) * rs[c], a = d->alpha[c0 + c];
            float p = cf_sigmoid(d->gamma[c0 + c] * xh + d->beta[c0 + c]);
            k->y[i] = xv * (a + (1.0f - a) * p);
            if (k->xhat) k->xhat[i] = xh;
            if (k->pgate) k->pgate[i] = p;
        }
    if (k->rstd)
        for (int64_t c = 0; c < nc; c++) k->rstd[c0 + c] = rs[c];
}

void cf_dice_forward(const cf_dice *d, float *y, float *xhat, float *rstd, float *p, const float *x, int64_t T, int C,
                     int training, int update_running, collm_pool *pool) {
    cf_dice_ctx k = {d, y, xhat, rstd, p, NULL, NULL, NULL, NULL, x, NULL, NULL, NULL, NULL, T, C, training, update_running};
    collm_pool_for(pool, C, 8, cf_dice_forward_task, &k);
}

static void cf_dice_backward_task(void *ctx, int64_t c0, int64_t c1, int thread_index) {
    (void)thread_index;
    const cf_dice_ctx *k = ctx;
    const cf_dice *d = k->d;
    const int64_t T = k->T, C = k->C, nc = c1 - c0;
    // pass 1: direct path, dα, dγ, dβ and the sums m1 = Σ dx̂, m2 = Σ dx̂ x̂ (dx̂ = dz γ)
    double m1[CF_DICE_MAX_C], m2[CF_DICE_MAX_C];
    float ga[CF_DICE_MAX_C], gg[CF_DICE_MAX_C], gb[CF_DICE_MAX_C];
    for (int64_t c = 0; c < nc; c++) m1[c] = m2[c] = 0, ga[c] = gg[c] = gb[c] = 0;
    for (int64_t t = 0; t < T; t++)
        for (int64_t c = 0; c < nc; c++) {
            int64_t i = t * C + c0 + c;
            float xv = k->x[i], xh = k->xhat_in[i], a = d->alpha[c0 + c], g = d->gamma[c0 + c];
            float p = k->pgate_in[i];
            // y = x (a + (1-a) p): direct path, alpha, and through p = σ(γ x̂ + β)
            if (k->dx) k->dx[i] += k->dy[i] * (a + (1.0f - a) * p);
            ga[c] += k->dy[i] * xv * (1.0f - p);
            float dz = k->dy[i] * xv * (1.0f - a) * p * (1.0f - p);
            gg[c] += dz * xh;
            gb[c] += dz;
            m1[c] += dz * g;
            m2[c] += (double)(dz * g) * xh;
        }
    for (int64_t c = 0; c < nc; c++) {
        if (k->dalpha) k->dalpha[c0 + c] += ga[c];
        if (k->dgamma) k->dgamma[c0 + c] += gg[c];
        if (k->dbeta) k->dbeta[c0 + c] += gb[c];
    }
    if (!k->dx || T == 0) return;
    // pass 2: through the batch statistics, dx += rstd (dx̂ - mean(dx̂) - x̂ mean(dx̂ x̂))
    for (int64_t t = 0; t < T; t++)
        for (int64_t c = 0; c < nc; c++) {
            int64_t i = t * C + c0 + c;
            float xv = k->x[i], xh = k->xhat_in[i], a = d->alpha[c0 + c], g = d->gamma[c0 + c];
            float p = k->pgate_in[i];
            float dxh = k->dy[i] * xv * (1.0f - a) * p * (1.0f - p) * g;
            k->dx[i] += k->rstd_in[c0 + c] * (dxh - (float)(m1[c] / (double)T) - xh * (float)(m2[c] / (double)T));
        }
}

void cf_dice_backward(const cf_dice *d, float *dx, float *dalpha, float *dgamma, float *dbeta, const float *dy,
                      const float *x, const float *xhat, const float *rstd, const float *p, int64_t T, int C,
                      collm_pool *pool) {
    cf_dice_ctx k = {d, NULL, NULL, NULL, NULL, dx, dalpha, dgamma, dbeta, x, dy, xhat, rstd, p, T, C, 1, 0};
    collm_pool_for(pool, C, 8, cf_dice_backward_task, &k);
}

double cf_bce(float *dlogit, const float *logit, const float *label, int64_t n) {
    double loss = 0;
    for (int64_t i = 0; i < n; i++) {
        double s = logit[i], y = label[i];
        loss += (s > 0 ? s + log1p(exp(-s)) : log1p(exp(s))) - y * s;
        if (dlogit) dlogit[i] = (float)((1.0 / (1.0 + exp(-s)) - y) / (double)n);
    }
    return n > 0 ? loss / (double)n : 0.0;
}

// ---------------------------------------------------------------------------
// histories

void cf_history_window(const int32_t *his, const int8_t *his_label, int64_t n, int L, int32_t *out) {
    int k = L;
    for (int64_t j = n - 1; j >= 0 && k > 0; j--) {
        if (his_label && !his_label[j]) continue;
        out[--k] = his[j];
    }
    while (k > 0) out[--k] = 0;
}

void cf_split_window(const collm_rec_split *s, int64_t r, int L, int32_t *out) {
    if (!s->his_offset) {
        for (int k = 0; k < L; k++) out[k] = 0;
        return;
    }
    int64_t b = s->his_offset[r], e = s->his_offset[r + 1];
    cf_history_window(s->his + b, s->his_label ? s->his_label + b : NULL, e - b, L, out);
}

int32_t *cf_split_windows(const collm_rec_split *s, int L) {
    int32_t *win = collm_malloc((size_t)(s->n * L > 0 ? s->n * L : 1) * sizeof *win);
    for (int64_t r = 0; win && r < s->n; r++) cf_split_window(s, r, L, win + r * L);
    return win;
}

// ---------------------------------------------------------------------------
// training loop

int cf_train_begin(const collm_cf_model *m, cf_params *p, const collm_rec_split *train) {
    if (train->n < 1)
        return collm_error(COLLM_ERR_ARG, "%s: the train split %s has no rows", m->kind->name, train->path ? train->path : "");
    if (train->n > INT32_MAX) return collm_error(COLLM_ERR_ARG, "%s: the train split has too many rows", m->kind->name);
    return p ? cf_params_alloc_train(p) : COLLM_OK;
}

void cf_batch_rows(const collm_rec_split *train, const int32_t *perm, int64_t n, int32_t *users, int32_t *items,
                   float *labels, int64_t *lo, int64_t *hi) {
    collm_dist_slice(n, collm_dist_rank(), collm_dist_size(), lo, hi);
    for (int64_t k = *lo; k < *hi; k++) {
        int32_t r = perm[k];
        users[k - *lo] = train->user[r];
        items[k - *lo] = train->item[r];
        labels[k - *lo] = train->label[r] ? 1.0f : 0.0f;
    }
}

// The weights' regions into flat (to_flat) or back from it, region after region.
static void cf_weights_copy(const cf_weights *wt, float *flat, int to_flat) {
    int64_t at = 0;
    for (int k = 0; k < wt->n; k++) {
        if (to_flat) memcpy(flat + at, wt->w[k], (size_t)wt->len[k] * sizeof(float));
        else memcpy(wt->w[k], flat + at, (size_t)wt->len[k] * sizeof(float));
        at += wt->len[k];
    }
}

int cf_train_loop(collm_cf_model *m, cf_weights weights, const collm_rec_split *eval, const collm_cf_train_options *opt,
                  collm_pool *pool, collm_cf_progress_fn progress, void *progress_ctx, collm_cf_train_result *result,
                  cf_epoch_fn epoch_fn, cf_refresh_fn refresh, void *state) {
    int rc = COLLM_OK;
    int64_t n_weights = 0;
    for (int k = 0; k < weights.n; k++) n_weights += weights.len[k];
    float *best = eval ? collm_malloc((size_t)(n_weights > 0 ? n_weights : 1) * sizeof(float)) : NULL;
    float *scores = eval ? collm_malloc((size_t)(eval->n > 0 ? eval->n : 1) * sizeof(float)) : NULL;
    if (eval && (!best || !scores)) {
        free(best);
        free(scores);
        return COLLM_ERR_NOMEM;
    }
    collm_rng rng;
    collm_rng_seed(&rng, opt->seed);
    collm_cf_train_result res = {0};
    res.best_eval_auc = res.best_eval_uauc = NAN;
    double t_start = cf_now();
    for (int epoch = 1; epoch <= opt->max_epochs; epoch++) {
        double t_epoch = cf_now(), loss = NAN;
        if ((rc = epoch_fn(state, &rng, &loss))) goto done;
        if (refresh) refresh(state);
        collm_cf_epoch_info info = {epoch, loss, NAN, NAN, 0.0, 0};
        res.epochs_run = epoch;
        if (eval) {
            if ((rc = cf_score_split_dist(m, eval, scores, pool))) goto done;
            info.eval_auc = collm_metrics_auc(scores, eval->label, eval->n);
            info.eval_uauc = collm_metrics_uauc(eval->user, scores, eval->label, eval->n, NULL);
            if (info.eval_auc > res.best_eval_auc || (isnan(res.best_eval_auc) && !isnan(info.eval_auc))) {
                info.is_best = 1;
                res.best_epoch = epoch;
                res.best_eval_auc = info.eval_auc;
                res.best_eval_uauc = info.eval_uauc;
                cf_weights_copy(&weights, best, 1);
            }
        }
        info.seconds = cf_now() - t_epoch;
        if (progress) progress(progress_ctx, &info);
        if (!isfinite(loss)) {
            rc = collm_error(COLLM_ERR, "%s: the training loss diverged at epoch %d (try a lower --lr)", m->kind->name,
                             epoch);
            goto done;
        }
        if (eval && opt->patience > 0 && epoch - res.best_epoch >= opt->patience) {
            res.early_stopped = 1;
            break;
        }
        if (eval && opt->stall_epochs > 0 && epoch > opt->stall_epochs && !(res.best_eval_auc >= opt->stall_auc)) {
            res.early_stopped = 1;
            break;
        }
    }
    if (eval && res.best_epoch > 0) { // keep the best-eval weights
        cf_weights_copy(&weights, best, 0);
        if (refresh) refresh(state);
    }
    res.seconds = cf_now() - t_start;
    *result = res;
done:
    free(best);
    free(scores);
    return rc;
}
