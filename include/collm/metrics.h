// Ranking metrics of a binary-labelled split (method.md §7).
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

#ifdef __cplusplus
}
#endif

#endif
