// Metrics of a binary-labelled split (method.md §7) and top-K ranking
// metrics (issue 10, below).
//
// AUC is sklearn's roc_auc_score: the probability that a random positive
// scores above a random negative, tied scores counting ½ (computed from the
// rank-averaged Mann-Whitney U statistic after one O(n log n) sort).
// UAUC groups the rows by user, skips users with exactly one row and users
// whose rows are all one class, and takes the unweighted mean of the
// per-user AUCs.
//
// Undefined values (an empty set, a single class, a NaN score) are NaN; the
// callers print NaN as "nan" in tables and null in JSON.
#ifndef COLLM_METRICS_H
#define COLLM_METRICS_H

#include "collm/version.h"

#include <stdint.h>

#include "collm/dataset.h"

#ifdef __cplusplus
extern "C" {
#endif

// AUC of scores (n) against labels (n, 0 = negative, anything else =
// positive). NaN when n == 0, when one class is absent or when a score is
// NaN, or when memory runs out (then collm_last_error() says so).
COLLM_API double collm_metrics_auc(const float *scores, const int8_t *labels, int64_t n);

// UAUC over rows grouped by users (n). *n_users_counted (may be NULL)
// receives the number of users whose AUC entered the mean. NaN when no
// user counts (or on NaN scores / out of memory, as collm_metrics_auc).
COLLM_API double collm_metrics_uauc(const int32_t *users, const float *scores, const int8_t *labels, int64_t n,
                    int64_t *n_users_counted);

// Everything eval-cf reports for one split.
// Layout mirrored by the Python binding (python/collm/__init__.py): keep in step.
typedef struct {
    int64_t n;            // rows
    int64_t n_pos;        // rows with label 1
    int64_t n_users;      // distinct users
    int64_t n_users_uauc; // users that entered the UAUC mean
    double auc;
    double uauc;
    int64_t n_warm;       // rows with not_cold = 1
    int64_t n_cold;       // rows with not_cold = 0
    double auc_warm;      // AUC over the warm rows (NaN if empty / one class)
    double auc_cold;      // AUC over the cold rows (NaN if empty / one class)
} collm_metrics_report;

// Fills *out for a split given one score per row (split->n). Returns COLLM_OK
// or an error (NULL arguments, out of memory).
COLLM_API int collm_metrics_evaluate(const collm_rec_split *split, const float *scores, collm_metrics_report *out);

// ---------------------------------------------------------------------------
// Top-K ranking metrics (rules: docs/data.md "Top-K evaluation").
//
// Ground truth of a split, per *valid* user (a user with at least one
// relevant item):
//   history  = the stored history of the user's earliest row in the split
//              (smallest timestamp, then first in the file): what the
//              recommender may know when the split's period begins;
//   excluded = every item of that history and every item of the user's rows
//              in train (any label), plus id 0 (padding): items the user has
//              already seen are never recommended and never counted;
//   relevant = the distinct items of the user's positive rows in the split,
//              minus excluded and minus ids outside 1..n_items-1.
// The split's negative rows stay ordinary (irrelevant) candidates.

typedef struct {
    int32_t user;
    const int32_t *history; // (n_history) as stored (ml-1m: with the 0 sentinel)
    int64_t n_history;
    const int32_t *relevant; // (n_relevant) ascending, distinct
    int n_relevant;
    const int32_t *excluded; // (n_excluded) ascending, distinct
    int n_excluded;
} collm_topk_user;

typedef struct collm_topk_truth collm_topk_truth;

// Builds the ground truth of split (train may be NULL: nothing is excluded
// beyond the history) for items 1..n_items-1. NULL + error on bad arguments
// or out of memory.
COLLM_API collm_topk_truth *collm_topk_truth_build(const collm_rec_split *split, const collm_rec_split *train, int32_t n_items);
COLLM_API void collm_topk_truth_free(collm_topk_truth *t);
// Valid users, in ascending user id.
COLLM_API int64_t collm_topk_truth_n_users(const collm_topk_truth *t);
COLLM_API const collm_topk_user *collm_topk_truth_user(const collm_topk_truth *t, int64_t i);

// Metrics of one ranked list at one cutoff k.
typedef struct {
    double recall; // |top-k ∩ R| / |R|
    double ndcg;   // DCG@k / IDCG@k, binary gains, DCG = Σ 1/log2(rank + 1),
                   // IDCG = the same over ranks 1 .. min(k, |R|)
    double hit;    // 1 when top-k holds a relevant item, else 0
    double rr;     // 1 / rank of the first relevant item when that rank <= k, else 0
                   // (with k >= the list length: the reciprocal rank of MRR)
} collm_topk_at;

// Metrics of ranked (n_ranked item ids, best first) against relevant
// (n_relevant ids) at every cutoff ks[0 .. n_ks) into out (n_ks):
//   * excluded ids (may be NULL) and repeats of an id already listed are
//     removed from the list before ranks are counted (they take no rank);
//   * relevant ids are counted once; excluded ones are not relevant;
//   * a cutoff beyond the list's length sees the whole list, but IDCG and
//     the recall denominator still use |R|: a list too short loses;
//   * no relevant item left (|R| = 0): every value is NaN (the user is not
//     valid; averages skip NaN).
// Inputs need no order. COLLM_OK, COLLM_ERR_ARG (k < 1, negative sizes),
// COLLM_ERR_NOMEM.
COLLM_API int collm_topk_metrics(const int32_t *ranked, int64_t n_ranked, const int32_t *relevant, int n_relevant,
                                 const int32_t *excluded, int n_excluded, const int64_t *ks, int n_ks, collm_topk_at *out);

// Orders items (n) best first into ranked (n): score descending, ties by
// tiebreak descending (may be NULL), then item id ascending; NaN scores
// (and NaN tiebreaks) go last. The same inputs give the same order on any
// platform. COLLM_OK or COLLM_ERR_NOMEM.
COLLM_API int collm_topk_rank(const int32_t *items, const float *score, const float *tiebreak, int64_t n, int32_t *ranked);

// Mean of a per-user metric with a percentile bootstrap confidence interval.
typedef struct {
    int64_t n;   // non-NaN values used
    double mean; // their mean (NaN when n == 0)
    double lo, hi; // the (1-level)/2 and (1+level)/2 quantiles (linear
                   // interpolation) of the resampled means
} collm_ci;

// Resamples the finite values of values (n; NaN and infinities left out) with replacement n_resamples
// times (collm_rng(seed): the same seed and the same n give the same
// resamples, so methods evaluated on the same users are resampled in pairs).
// level in (0, 1), e.g. 0.95; n_resamples >= 1.
COLLM_API int collm_bootstrap_ci(const double *values, int64_t n, int n_resamples, double level, uint64_t seed, collm_ci *out);

#ifdef __cplusplus
}
#endif

#endif
