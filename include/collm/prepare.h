// Building dataset folders in the layout of shared/data (docs/data.md):
// items.tsv, train.tsv, valid.tsv, test.tsv, valid_small.tsv (+ item_map.tsv),
// from raw public sources (method.md §2.2-§2.4) or from a synthetic model.
#ifndef COLLM_PREPARE_H
#define COLLM_PREPARE_H

#include "collm/version.h"

#include "collm/dataset.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// One interaction with final (remapped) ids. split: 0 train, 1 valid, 2 test.
typedef struct {
    int32_t user, item;
    int64_t timestamp;
    int8_t label;
    int8_t split;
} collm_rec_event;

// Writes DIR/{train,valid,test,valid_small}.tsv from events that are already
// in final order: grouped by user, oldest first (the caller's sort and tie
// rule). Each row's his = [0] + every earlier positive item of the user,
// across all splits (§2.2 step 5); not_cold = user and item both occur in
// train; valid_small = the first round(small_frac * n_valid) (half to even) valid rows of a
// seeded shuffle, in that shuffled order (as pandas' sample does, but pandas'
// own random stream is not reproduced).
COLLM_API int collm_rec_write_ood_splits(const char *dir, const collm_rec_event *events, int64_t n, double small_frac,
                         uint64_t small_seed);

// ML-1M "ood2" (§2.2) from GroupLens ratings.dat + movies.dat (Latin-1 or
// UTF-8). Writes items.tsv, item_map.tsv and the splits.
COLLM_API int collm_rec_prepare_ml1m(const char *ratings_path, const char *movies_path, const char *out_dir, uint64_t seed);

// Amazon-Book (§2.3) from Books_5.json (reviews, JSON lines) and
// meta_Books.json (JSON lines with asin and title). Keeps users and items
// with more than min_count 2017 ratings (the paper: 20).
COLLM_API int collm_rec_prepare_amazon(const char *reviews_path, const char *meta_path, const char *out_dir, uint64_t seed,
                       int min_count);

// BookCrossing (§2.4) from BX-Book-Ratings.csv and BX-Books.csv (";"-separated,
// quoted, Latin-1). Seeded; several samples per user (docs/data.md).
typedef struct {
    int max_targets_per_user; // K (default 5)
    int max_history;          // default 10
} collm_rec_bookcrossing_options;
COLLM_API int collm_rec_prepare_bookcrossing(const char *ratings_path, const char *books_path, const char *out_dir, uint64_t seed,
                             const collm_rec_bookcrossing_options *opt);

// Synthetic dataset with planted latent factors (ml-1m layout, docs/data.md).
typedef struct {
    int32_t n_users, n_items;
    uint64_t seed;
    int dim;              // latent dimension (default 4)
    double scale, bias;   // label ~ Bernoulli(sigmoid(scale * <u,v>/sqrt(dim) + bias + b_item))
    double item_bias_std; // b_item ~ N(0, item_bias_std^2) (default 1)
    int min_per_user, max_per_user; // interactions per user (uniform, default 30..100)
} collm_rec_synth_options;
COLLM_API void collm_rec_synth_defaults(collm_rec_synth_options *opt);
COLLM_API int collm_rec_synth(const collm_rec_synth_options *opt, const char *out_dir);

#ifdef __cplusplus
}
#endif

#endif
