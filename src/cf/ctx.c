// Context features ("ctx"): a logistic model over what a row says beyond
// user and item ids, for score fusion (collm fit-score --with ctx.gguf).
//
//   score(row) = b + Σ_f w_f · (x_f(row) - mean_f) / sd_f          NF = 14 features
//
// Why: the ids-only encoders cannot see how a row differs from the training
// period. On ML-1M's ood2 split the valid rows come months after train, and
// their histories hold the liked items of that later period; the period's
// like rate, cold users and items, and a movie's release year and genres
// move the label in ways no encoder trained on train learns (a row of train
// never has a history beyond what train saw). Measured with bench/llm_value.sh's
// held-out protocol: docs/encoders.md, "Context features".
//
// The features of a row (u, i, window W = the last max_len liked history
// items, oldest first, left-padded with 0; len = its non-zero count;
// R = its last CTX_RECENT items):
//   0 log(1 + new), new = max(0, len - liked train rows of u): history beyond train
//   1 new / max(1, len)
//   2 1 if u has no train row
//   3 u's smoothed train like rate (liked + 5 g) / (rows + 5), g = train's rate
//   4 log(1 + train rows of u)
//   5 i's smoothed train like rate (liked + 5 g) / (rows + 5)
//   6 log(1 + train rows of i)
//   7 1 if i has no train row
//   8 mean over i's genres G of u's smoothed like rate in G: (liked + 3 g) / (rows + 3)
//     (g when i has no genre)
//   9 the fraction of R sharing a genre with i (0 when R is empty)
//  10 (year of i - 1990) / 10 (0 when the title has no "(YYYY)")
//  11 (year of i - mean year of R) / 10 (0 when none is known)
//  12 the share of R with no train row: liked items newer than train (0 when R is empty)
//  13 feature 12 when i has no train row, else 0
// Features 12-13 came later (bench/row_features.py, "novelty": +0.0009 AUC
// and +0.0015 UAUC held out on average over the recipe's three seeds, both
// positive in each). A model's dim is
// its feature count: files written before them hold dim 12 and score with
// the first 12 features, as they were fitted.
// The weights are fitted on the evaluation split (default valid_small), not
// on train: the features 0-2, 7, 12 and 13 are 0 on every train row, so
// only rows later than training show what they are worth. Training statistics come
// from the train split, genres from DIR/item_map.tsv (its `genres` column,
// '|'-separated; optional) and years from the titles. Fit: L2-regularised
// logistic regression (λ = --weight-decay, default 1e-2, on the summed BCE)
// by Newton's method (IRLS) in double, to a step below 1e-9 or max_epochs
// iterations. Deterministic; no seed is used.
//
// ctx has no collaborative vectors: it cannot feed CoLLM's slots or
// retrieval (the vector calls refuse it with an error), only score fusion.
//
// Tensors (all buffers, F32): ctx.user (nu, 2) [train rows, liked];
// ctx.item (ni, 3) [train rows, liked, year]; ctx.item_genre (ni, CTX_GENRES)
// 0/1; ctx.user_genre (nu, 2·CTX_GENRES) [rows per genre, liked per genre];
// ctx.fit (3, NF + 1): feature means, sds, then the weights with the bias last
// (NF = the model's dim: 14, or 12 in older files).
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cf/cf_internal.h"
#include "cf/cf_nn.h"
#include "cf/encoders.h"
#include "collm/error.h"
#include "collm/metrics.h"

enum { CTX_NF = 14, CTX_NF_V1 = 12, CTX_GENRES = 24, CTX_RECENT = 30 };
// The ranges of a fit's stored numbers (ctx.fit), checked on load: |mean| and
// |weight| at most CTX_FIT_MAX, sd at least CTX_SD_MIN (the fit floors it at
// 1e-12, then rounds to float).
#define CTX_FIT_MAX 1e6f
#define CTX_SD_MIN 1e-13f

typedef struct {
    cf_params p;
    int i_user, i_item, i_item_genre, i_user_genre, i_fit;
    double g; // train's like rate (ctx_global_rate), kept: every scored row reads it
} ctx_impl;

static cf_params *ctx_params(const collm_cf_model *m) { return &((ctx_impl *)m->impl)->p; }

// train's like rate from the user table (0.5 before any training)
static double ctx_global_rate(const collm_cf_model *m) {
    const ctx_impl *c = m->impl;
    const float *us = cf_w(&c->p, c->i_user);
    double rows = 0, liked = 0;
    for (int32_t u = 0; u < m->n_users; u++) rows += us[2 * u], liked += us[2 * u + 1];
    return rows > 0 ? liked / rows : 0.5;
}

// The raw features x (CTX_NF, all of them whatever the model's dim) of one
// row; win (L) as the file comment says.
static void ctx_features(const collm_cf_model *m, double g, int32_t u, int32_t i, const int32_t *win, int L, double *x) {
    const ctx_impl *c = m->impl;
    const float *us = cf_w(&c->p, c->i_user) + 2 * (int64_t)u;
    const float *is = cf_w(&c->p, c->i_item) + 3 * (int64_t)i;
    const float *ig_all = cf_w(&c->p, c->i_item_genre), *ug = cf_w(&c->p, c->i_user_genre) + 2 * CTX_GENRES * (int64_t)u;
    const float *ig = ig_all + CTX_GENRES * (int64_t)i;
    int len = 0;
    for (int k = 0; k < L; k++) len += win[k] != 0;
    const double new_items = len - us[1] > 0 ? len - us[1] : 0;
    x[0] = log1p(new_items);
    x[1] = new_items / (len > 1 ? len : 1);
    x[2] = us[0] == 0;
    x[3] = (us[1] + 5 * g) / (us[0] + 5);
    x[4] = log1p(us[0]);
    x[5] = (is[1] + 5 * g) / (is[0] + 5);
    x[6] = log1p(is[0]);
    x[7] = is[0] == 0;
    double genre_rate = 0;
    int n_genres = 0;
    for (int k = 0; k < CTX_GENRES; k++)
        if (ig[k] != 0) genre_rate += (ug[CTX_GENRES + k] + 3 * g) / (ug[k] + 3), n_genres++;
    x[8] = n_genres ? genre_rate / n_genres : g;
    // the last CTX_RECENT liked items: genre overlap, mean known year, items newer than train
    int n_recent = 0, n_shared = 0, n_years = 0, n_new = 0;
    double year_sum = 0;
    for (int k = L - 1; k >= 0 && n_recent < CTX_RECENT; k--) {
        const int32_t h = win[k];
        if (h == 0) continue;
        n_recent++;
        const float *hg = ig_all + CTX_GENRES * (int64_t)h;
        int shared = 0;
        for (int q = 0; q < CTX_GENRES && !shared; q++) shared = ig[q] != 0 && hg[q] != 0;
        n_shared += shared;
        const float *hs = cf_w(&c->p, c->i_item) + 3 * (int64_t)h;
        if (hs[2] > 0) year_sum += hs[2], n_years++;
        n_new += hs[0] == 0;
    }
    x[9] = n_recent ? (double)n_shared / n_recent : 0;
    x[10] = is[2] > 0 ? (is[2] - 1990) / 10.0 : 0;
    x[11] = is[2] > 0 && n_years ? (is[2] - year_sum / n_years) / 10.0 : 0;
    x[12] = n_recent ? (double)n_new / n_recent : 0;
    x[13] = x[7] * x[12];
}

int collm_cf_ctx_features(const collm_cf_model *m, int32_t user, int32_t item, const int32_t *win, double *x) {
    if (!m || !win || !x || strcmp(m->kind->name, "ctx") != 0)
        return collm_error(COLLM_ERR_ARG, "collm_cf_ctx_features: not a ctx model");
    if (user < 0 || user >= m->n_users || item < 0 || item >= m->n_items)
        return collm_error(COLLM_ERR_ARG, "collm_cf_ctx_features: id outside the tables");
    ctx_features(m, ((const ctx_impl *)m->impl)->g, user, item, win, m->hp.max_len, x);
    return COLLM_OK;
}

static int ctx_score_samples(const collm_cf_model *m, int64_t n, const int32_t *users, const int32_t *items,
                             const int32_t *win, float *scores, collm_pool *pool) {
    (void)pool;
    const ctx_impl *c = m->impl;
    const float *fit = cf_w(&c->p, c->i_fit); // (3, NF + 1): mean, sd, weights (bias last)
    const double g = c->g;
    const int L = m->hp.max_len, nf = m->dim;
    for (int64_t r = 0; r < n; r++) {
        double x[CTX_NF], s = fit[2 * (nf + 1) + nf];
        ctx_features(m, g, users[r], items[r], win + r * L, L, x);
        for (int f = 0; f < nf; f++) s += fit[2 * (nf + 1) + f] * (x[f] - fit[f]) / fit[nf + 1 + f];
        scores[r] = (float)s;
    }
    return COLLM_OK;
}

// --- side information: years from the titles, genres from item_map.tsv

// "Title (1995)" -> 1995; 0 when the title does not end in "(YYYY)".
static float ctx_title_year(const char *t) {
    size_t n = strlen(t);
    while (n > 0 && isspace((unsigned char)t[n - 1])) n--;
    if (n < 6 || t[n - 1] != ')' || t[n - 6] != '(') return 0;
    int y = 0;
    for (size_t k = n - 5; k < n - 1; k++) {
        if (!isdigit((unsigned char)t[k])) return 0;
        y = 10 * y + (t[k] - '0');
    }
    return (float)y;
}

// DIR/item_map.tsv's `genres` column (collm_rec_item_genres_load) into
// item_genre (ni, CTX_GENRES). No file or no such column: no genres (none
// left from an earlier training of the same model either).
static int ctx_read_genres(collm_cf_model *m, const char *dir) {
    ctx_impl *c = m->impl;
    float *ig = cf_w(&c->p, c->i_item_genre);
    memset(ig, 0, (size_t)cf_numel(&c->p, c->i_item_genre) * sizeof *ig);
    char path[4096];
    if (snprintf(path, sizeof path, "%s/item_map.tsv", dir) >= (int)sizeof path)
        return collm_error(COLLM_ERR_ARG, "ctx: dataset path too long: %s", dir);
    collm_rec_item_genres *g;
    int rc = collm_rec_item_genres_load(path, m->n_items, &g);
    if (rc || !g) return rc;
    if (g->n_names > CTX_GENRES)
        rc = collm_error(COLLM_ERR_FORMAT, "%s: %d genres ('%s' is the %dth): ctx takes at most %d", path,
                         (int)g->n_names, g->name[CTX_GENRES], CTX_GENRES + 1, CTX_GENRES);
    for (int32_t i = 0; rc == COLLM_OK && i < g->n_items; i++)
        for (int64_t j = g->offset[i]; j < g->offset[i + 1]; j++) ig[(int64_t)CTX_GENRES * i + g->genre[j]] = 1;
    collm_rec_item_genres_free(g);
    return rc;
}

static int ctx_side_info(collm_cf_model *m, const collm_rec_dataset *ds) {
    ctx_impl *c = m->impl;
    float *is = cf_w(&c->p, c->i_item);
    for (int32_t i = 0; i < m->n_items; i++)
        is[3 * i + 2] = ds->items && i < ds->items->n ? ctx_title_year(ds->items->title[i]) : 0;
    return ds->dir ? ctx_read_genres(m, ds->dir) : COLLM_OK;
}

// --- fit

// Solves the symmetric positive definite system A x = b (n ≤ CTX_NF + 1) by
// Cholesky, in place (A's lower triangle becomes L, b becomes x).
static int ctx_cholesky_solve(double *A, double *b, int n) {
    for (int j = 0; j < n; j++) {
        double d = A[j * n + j];
        for (int k = 0; k < j; k++) d -= A[j * n + k] * A[j * n + k];
        if (!(d > 0))
            return collm_error(COLLM_ERR, "ctx: the Newton system is not positive definite (a feature constant over "
                                          "the fit rows, or two that move together, with --weight-decay 0: use a "
                                          "positive --weight-decay)");
        A[j * n + j] = sqrt(d);
        for (int i = j + 1; i < n; i++) {
            double s = A[i * n + j];
            for (int k = 0; k < j; k++) s -= A[i * n + k] * A[j * n + k];
            A[i * n + j] = s / A[j * n + j];
        }
    }
    for (int i = 0; i < n; i++) { // L y = b
        for (int k = 0; k < i; k++) b[i] -= A[i * n + k] * b[k];
        b[i] /= A[i * n + i];
    }
    for (int i = n - 1; i >= 0; i--) { // Lᵀ x = y
        for (int k = i + 1; k < n; k++) b[i] -= A[k * n + i] * b[k];
        b[i] /= A[i * n + i];
    }
    return COLLM_OK;
}

// The training statistics of the train rows into m's tables (from zero: a
// second training starts over; the years, from the titles, stay).
static void ctx_tables(collm_cf_model *m, const collm_rec_split *train) {
    ctx_impl *c = m->impl;
    float *us = cf_w(&c->p, c->i_user), *is = cf_w(&c->p, c->i_item);
    float *ig = cf_w(&c->p, c->i_item_genre), *ug = cf_w(&c->p, c->i_user_genre);
    memset(us, 0, (size_t)cf_numel(&c->p, c->i_user) * sizeof *us);
    memset(ug, 0, (size_t)cf_numel(&c->p, c->i_user_genre) * sizeof *ug);
    for (int32_t i = 0; i < m->n_items; i++) is[3 * i] = is[3 * i + 1] = 0;
    for (int64_t r = 0; r < train->n; r++) {
        const int32_t u = train->user[r], i = train->item[r];
        const int y = train->label[r] == 1;
        us[2 * u] += 1, us[2 * u + 1] += y;
        is[3 * i] += 1, is[3 * i + 1] += y;
        for (int k = 0; k < CTX_GENRES; k++)
            if (ig[CTX_GENRES * i + k] != 0) ug[2 * CTX_GENRES * u + k] += 1, ug[2 * CTX_GENRES * u + CTX_GENRES + k] += y;
    }
}

// Refit (collm_cf_model_refit): the statistics of the new train rows (say
// train + valid), from's fitted means, sds and weights. The weights were fitted on rows
// later than from's train; the refit scores rows later than its own, the
// same relation one period on (feature 0, history beyond train, now counts
// what lies beyond train + valid).
static int ctx_refit(collm_cf_model *m, const collm_cf_model *from, const collm_rec_split *train) {
    ctx_impl *c = m->impl;
    const ctx_impl *f = from->impl;
    if (cf_numel(&c->p, c->i_fit) != cf_numel(&f->p, f->i_fit) ||
        cf_numel(&c->p, c->i_item_genre) != cf_numel(&f->p, f->i_item_genre) || m->n_items != from->n_items)
        return collm_error(COLLM_ERR_FORMAT, "ctx refit: the tensors differ in size");
    // from's genres and years (the features its weights were fitted on), then the new rows' counts
    memcpy(cf_w(&c->p, c->i_item_genre), cf_w(&f->p, f->i_item_genre),
           (size_t)cf_numel(&c->p, c->i_item_genre) * sizeof(float));
    const float *fi = cf_w(&f->p, f->i_item);
    float *ci = cf_w(&c->p, c->i_item);
    for (int32_t i = 0; i < m->n_items; i++) ci[3 * i + 2] = fi[3 * i + 2];
    ctx_tables(m, train);
    memcpy(cf_w(&c->p, c->i_fit), cf_w(&f->p, f->i_fit), (size_t)cf_numel(&c->p, c->i_fit) * sizeof(float));
    c->g = ctx_global_rate(m);
    return COLLM_OK;
}

static int ctx_train(collm_cf_model *m, const collm_rec_split *train, const collm_rec_split *eval,
                     const collm_cf_train_options *opt, collm_pool *pool, collm_cf_progress_fn progress, void *progress_ctx,
                     collm_cf_train_result *result) {
    ctx_impl *c = m->impl;
    if (!eval)
        return collm_error(COLLM_ERR_ARG, "ctx fits its weights on the evaluation split (--eval-split valid_small), "
                                          "rows later than train; 'none' leaves it nothing to fit on");
    if (eval == train)
        return collm_error(COLLM_ERR_ARG, "ctx: fitting on the train split teaches nothing (features 0-2, 7, 12 and "
                                          "13 are 0 on every train row); use valid_small");
    if (eval->n < 2) return collm_error(COLLM_ERR_ARG, "ctx: the evaluation split has %lld rows", (long long)eval->n);
    const double t0 = cf_now();
    ctx_tables(m, train);
    // features of every fit row: X (n, NF + 1), the last column 1 (the bias)
    const int64_t n = eval->n;
    const int L = m->hp.max_len, nf = m->dim, D = nf + 1;
    double *X = collm_malloc((size_t)n * D * sizeof *X);
    int32_t *win = collm_malloc((size_t)L * sizeof *win);
    float *scores = collm_malloc((size_t)n * sizeof *scores);
    int rc = X && win && scores ? COLLM_OK : COLLM_ERR_NOMEM;
    const double g = c->g = ctx_global_rate(m);
    double mean[CTX_NF] = {0}, sd[CTX_NF] = {0}, w[CTX_NF + 1] = {0};
    for (int64_t r = 0; !rc && r < n; r++) {
        double x[CTX_NF];
        cf_split_window(eval, r, L, win);
        ctx_features(m, g, eval->user[r], eval->item[r], win, L, x);
        memcpy(X + r * D, x, (size_t)nf * sizeof *x); // the model's first nf features
        X[r * D + nf] = 1;
    }
    // standardise (a constant feature keeps sd 1 and gets weight ~0 from L2;
    // with λ = 0 its column makes the system singular: a clear error below)
    float *fit = cf_w(&c->p, c->i_fit);
    for (int f = 0; !rc && f < nf; f++) {
        double s = 0, s2 = 0;
        for (int64_t r = 0; r < n; r++) s += X[r * D + f];
        mean[f] = s / n;
        for (int64_t r = 0; r < n; r++) s2 += (X[r * D + f] - mean[f]) * (X[r * D + f] - mean[f]);
        sd[f] = sqrt(s2 / n) > 1e-12 ? sqrt(s2 / n) : 1;
        for (int64_t r = 0; r < n; r++) X[r * D + f] = (X[r * D + f] - mean[f]) / sd[f];
    }
    // Newton's method on Σ BCE + λ/2 |w|²: H = Xᵀ diag(p(1-p)) X + λ I, grad = Xᵀ (p - y) + λ w
    const double lambda = opt->weight_decay;
    int iter = 0;
    for (; !rc && iter < (opt->max_epochs > 0 ? opt->max_epochs : 1); iter++) {
        double H[(CTX_NF + 1) * (CTX_NF + 1)] = {0}, grad[CTX_NF + 1] = {0};
        for (int64_t r = 0; r < n; r++) {
            const double *x = X + r * D;
            double z = 0;
            for (int f = 0; f < D; f++) z += w[f] * x[f];
            const double p = 1 / (1 + exp(-z)), e = p - (eval->label[r] == 1);
            for (int f = 0; f < D; f++) {
                grad[f] += e * x[f];
                for (int q = 0; q <= f; q++) H[f * D + q] += p * (1 - p) * x[f] * x[q];
            }
        }
        for (int f = 0; f < D; f++) {
            grad[f] += lambda * w[f];
            H[f * D + f] += lambda;
            for (int q = 0; q < f; q++) H[q * D + f] = H[f * D + q];
        }
        if ((rc = ctx_cholesky_solve(H, grad, D))) break;
        double step = 0;
        for (int f = 0; f < D; f++) w[f] -= grad[f], step = fabs(grad[f]) > step ? fabs(grad[f]) : step;
        if (!isfinite(step)) rc = collm_error(COLLM_ERR, "ctx: the fit diverged (non-finite weights)");
        for (int f = 0; !rc && f < D; f++)
            if (!(fabs(w[f]) <= CTX_FIT_MAX))
                rc = collm_error(COLLM_ERR, "ctx: the fit diverged (weight %d is %g; use a larger --weight-decay)", f,
                                 w[f]);
        if (step < 1e-9) {
            iter++;
            break;
        }
    }
    for (int f = 0; !rc && f < nf; f++) fit[f] = (float)mean[f], fit[D + f] = (float)sd[f];
    fit[nf] = 0, fit[D + nf] = 1;
    for (int f = 0; !rc && f < D; f++) fit[2 * D + f] = (float)w[f];
    if (!rc) rc = collm_cf_model_score_split(m, eval, scores, pool);
    if (!rc) {
        result->epochs_run = iter;
        result->best_epoch = iter;
        result->best_eval_auc = collm_metrics_auc(scores, eval->label, n);
        result->best_eval_uauc = collm_metrics_uauc(eval->user, scores, eval->label, n, NULL);
        result->seconds = cf_now() - t0;
        result->early_stopped = 0;
        if (progress) {
            collm_cf_epoch_info e = {iter, NAN, result->best_eval_auc, result->best_eval_uauc, result->seconds, 1};
            progress(progress_ctx, &e);
        }
    }
    free(X);
    free(win);
    free(scores);
    return rc;
}

// --- vtable

static void ctx_hparams_default(collm_cf_hparams *hp) {
    hp->dim = CTX_NF;
    hp->n_layers = 0;
    hp->n_heads = 0;
    hp->max_len = 512; // the history's length is a feature: read (nearly) all of it
}

static void ctx_train_defaults(collm_cf_train_options *opt) {
    opt->weight_decay = 1e-2; // λ of the summed loss
    opt->max_epochs = 50;     // Newton iterations (it converges in about 6)
    opt->patience = 0;
    opt->eval_split = "valid_small";
}

static int ctx_init(collm_cf_model *m, uint64_t seed, int initialise) {
    (void)seed, (void)initialise;
    if (m->dim != CTX_NF && m->dim != CTX_NF_V1)
        return collm_error(COLLM_ERR_ARG, "ctx: dim %d (its dim is its number of features: %d, or %d as files before "
                                          "features 12-13 hold)", m->dim, CTX_NF, CTX_NF_V1);
    const int nf = m->dim;
    if (m->hp.max_len < CTX_RECENT)
        return collm_error(COLLM_ERR_ARG, "ctx: max_len %d (need >= %d)", m->hp.max_len, CTX_RECENT);
    ctx_impl *c = collm_calloc(1, sizeof *c);
    if (!c) return COLLM_ERR_NOMEM;
    m->impl = c;
    c->g = 0.5; // no training rows yet
    c->i_user = cf_params_add(&c->p, "ctx.user", m->n_users, 2, 0);
    c->i_item = cf_params_add(&c->p, "ctx.item", m->n_items, 3, 0);
    c->i_item_genre = cf_params_add(&c->p, "ctx.item_genre", m->n_items, CTX_GENRES, 0);
    c->i_user_genre = cf_params_add(&c->p, "ctx.user_genre", m->n_users, 2 * CTX_GENRES, 0);
    c->i_fit = cf_params_add(&c->p, "ctx.fit", 3, nf + 1, 0);
    int rc = initialise ? cf_params_alloc(&c->p) : COLLM_OK;
    if (!rc && initialise)
        for (int f = 0; f <= nf; f++) cf_w(&c->p, c->i_fit)[nf + 1 + f] = 1; // sds 1 until fitted
    return rc;
}

// A loaded model's statistics and fit must be usable (cf_params_load has
// already rejected non-finite values): counts >= 0 and liked <= rows, per
// user, item and user-genre; genre flags 0 or 1; years 0 (unknown) to 9999;
// means, sds and weights in the ranges a fit writes (CTX_FIT_MAX,
// CTX_SD_MIN), so that no stored number makes a score infinite.
static int ctx_counts_ok(float rows, float liked) { return rows >= 0 && liked >= 0 && liked <= rows; }
static int ctx_load_tensors(collm_cf_model *m, const collm_gguf_file *f, const char *path) {
    int rc = cf_nn_load_tensors(m, f, path);
    if (rc) return rc;
    ctx_impl *c = m->impl;
    const float *us = cf_w(&c->p, c->i_user), *is = cf_w(&c->p, c->i_item), *fit = cf_w(&c->p, c->i_fit);
    const float *ig = cf_w(&c->p, c->i_item_genre), *ug = cf_w(&c->p, c->i_user_genre);
    for (int32_t u = 0; u < m->n_users; u++) {
        if (!ctx_counts_ok(us[2 * u], us[2 * u + 1]))
            return collm_error(COLLM_ERR_FORMAT, "%s: ctx.user row %d holds %g rows and %g liked", path, (int)u,
                               us[2 * u], us[2 * u + 1]);
        const float *row = ug + 2 * CTX_GENRES * (int64_t)u;
        for (int k = 0; k < CTX_GENRES; k++)
            if (!ctx_counts_ok(row[k], row[CTX_GENRES + k]))
                return collm_error(COLLM_ERR_FORMAT, "%s: ctx.user_genre row %d, genre %d holds %g rows and %g liked",
                                   path, (int)u, k, row[k], row[CTX_GENRES + k]);
    }
    for (int32_t i = 0; i < m->n_items; i++) {
        if (!ctx_counts_ok(is[3 * i], is[3 * i + 1]) || !(is[3 * i + 2] >= 0 && is[3 * i + 2] <= 9999))
            return collm_error(COLLM_ERR_FORMAT, "%s: ctx.item row %d holds %g rows, %g liked, year %g", path, (int)i,
                               is[3 * i], is[3 * i + 1], is[3 * i + 2]);
        for (int k = 0; k < CTX_GENRES; k++)
            if (ig[CTX_GENRES * (int64_t)i + k] != 0 && ig[CTX_GENRES * (int64_t)i + k] != 1)
                return collm_error(COLLM_ERR_FORMAT, "%s: ctx.item_genre row %d, genre %d is %g (0 or 1)", path,
                                   (int)i, k, ig[CTX_GENRES * (int64_t)i + k]);
    }
    const int nf = m->dim;
    for (int k = 0; k <= nf; k++) {
        const float mean = fit[k], sd = fit[nf + 1 + k], w = fit[2 * (nf + 1) + k];
        if (!(fabsf(mean) <= CTX_FIT_MAX && sd >= CTX_SD_MIN && sd <= CTX_FIT_MAX && fabsf(w) <= CTX_FIT_MAX))
            return collm_error(COLLM_ERR_FORMAT,
                               "%s: ctx.fit: feature %d has mean %g, sd %g, weight %g (a fit writes |mean|, |weight| "
                               "<= %g and %g <= sd <= %g)",
                               path, k, mean, sd, w, CTX_FIT_MAX, CTX_SD_MIN, CTX_FIT_MAX);
    }
    c->g = ctx_global_rate(m);
    return COLLM_OK;
}

const collm_cf_kind collm_cf_kind_ctx = {
    .name = "ctx",
    .uses_history = 1,
    .fits_on_eval = 1,
    .hparams_default = ctx_hparams_default,
    .train_defaults = ctx_train_defaults,
    .init = ctx_init,
    .free_impl = cf_nn_free_impl,
    .score_samples = ctx_score_samples,
    .side_info = ctx_side_info,
    .refit = ctx_refit,
    .train = ctx_train,
    .params = ctx_params,
    .save_tensors = cf_nn_save_tensors,
    .load_tensors = ctx_load_tensors,
};
