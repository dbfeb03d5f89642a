// Out-of-fold encoder scores (collm_cf_oof_scores in collm/cf.h): K models,
// each trained without one fold of the training rows and scoring that fold.
#include <stdlib.h>
#include <string.h>

#include "collm/cf.h"
#include "collm/error.h"
#include "core/rng.h"

int collm_cf_oof_scores(const char *kind, const collm_cf_hparams *hp, int32_t n_users, int32_t n_items,
                        const collm_rec_dataset *ds, int folds, const collm_cf_train_options *opt_in, uint64_t seed,
                        collm_pool *pool, float *out) {
    if (!kind || !hp || !ds || !ds->train || !out)
        return collm_error(COLLM_ERR_ARG, "collm_cf_oof_scores: NULL argument");
    const int64_t n = ds->train->n;
    if (folds < 2 || folds > n)
        return collm_error(COLLM_ERR_ARG, "out-of-fold scores: %d folds of %lld training rows (need 2 <= folds <= rows)",
                           folds, (long long)n);
    collm_cf_train_options opt;
    int rc = opt_in ? (opt = *opt_in, COLLM_OK) : collm_cf_train_options_kind(kind, &opt);
    if (rc) return rc;
    // (n) a random order of the rows; fold f is order[f*n/K .. (f+1)*n/K)
    int32_t *order = malloc((size_t)n * sizeof *order);
    int64_t *rows = malloc((size_t)n * sizeof *rows);
    if (!order || !rows) {
        free(order);
        free(rows);
        return collm_error(COLLM_ERR_NOMEM, "out-of-fold scores: out of memory (%lld rows)", (long long)n);
    }
    for (int64_t i = 0; i < n; i++) order[i] = (int32_t)i;
    collm_rng rng;
    collm_rng_seed(&rng, seed);
    collm_rng_shuffle_i32(&rng, order, n);
    for (int f = 0; rc == COLLM_OK && f < folds; f++) {
        const int64_t lo = (int64_t)f * n / folds, hi = (int64_t)(f + 1) * n / folds;
        // rows[0, n - (hi - lo)): the other folds (trained on); then this fold's (scored)
        int64_t k = 0;
        for (int64_t i = 0; i < n; i++)
            if (i < lo || i >= hi) rows[k++] = order[i];
        for (int64_t i = lo; i < hi; i++) rows[k++] = order[i];
        const int64_t n_fit = n - (hi - lo);
        collm_rec_split *fit = collm_rec_split_select(ds->train, rows, n_fit);
        collm_rec_split *held = collm_rec_split_select(ds->train, rows + n_fit, hi - lo);
        collm_cf_model *m = fit && held ? collm_cf_model_create_hp(kind, n_users, n_items, hp, seed + 1 + (uint64_t)f) : NULL;
        float *s = m ? malloc((size_t)(hi - lo > 0 ? hi - lo : 1) * sizeof *s) : NULL;
        if (!fit || !held || !m) {
            rc = COLLM_ERR; // the failing call set the message
        } else if (!s) {
            rc = collm_error(COLLM_ERR_NOMEM, "out-of-fold scores: out of memory");
        } else {
            collm_rec_dataset view = *ds; // the same dataset, but training on the other folds only
            view.train = fit;
            opt.seed = seed + 1 + (uint64_t)f;
            rc = collm_cf_model_train(m, &view, &opt, pool, NULL, NULL, NULL);
            if (!rc) rc = collm_cf_model_score_split(m, held, s, pool);
            for (int64_t i = 0; !rc && i < hi - lo; i++) out[rows[n_fit + i]] = s[i];
            if (rc) rc = collm_error_prefix(rc, "out-of-fold scores, fold %d of %d", f + 1, folds);
        }
        free(s);
        collm_cf_model_free(m);
        collm_rec_split_free(fit);
        collm_rec_split_free(held);
    }
    free(order);
    free(rows);
    return rc;
}
