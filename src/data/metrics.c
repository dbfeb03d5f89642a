// AUC / UAUC (method.md §7). One sort of (user, score) records, then a walk
// over each user's run and over each run of tied scores: the positives'
// average ranks give the Mann-Whitney U statistic, which equals the AUC with
// ties counted ½ (what sklearn's roc_auc_score computes with its trapezoids).
#include "collm/metrics.h"

#include <math.h>
#include <stdlib.h>

#include "collm/error.h"

typedef struct {
    int32_t user;
    float score;
    int8_t positive; // 0/1
} metrics_row;

// Orders by user, then by score ascending (a total order once NaN is excluded).
static int metrics_row_cmp(const void *pa, const void *pb) {
    const metrics_row *a = pa, *b = pb;
    if (a->user != b->user) return a->user < b->user ? -1 : 1;
    if (a->score < b->score) return -1;
    if (a->score > b->score) return 1;
    return 0;
}

// AUC of rows[0..n) already sorted by score; NaN when a class is absent.
static double metrics_auc_sorted(const metrics_row *rows, int64_t n) {
    int64_t n_pos = 0;
    double pos_rank_sum = 0.0; // Σ over positives of their 1-based average rank
    for (int64_t i = 0; i < n;) {
        int64_t j = i, pos_in_group = 0;
        while (j < n && rows[j].score == rows[i].score) pos_in_group += rows[j++].positive;
        // ranks i+1 .. j share their mean (i + 1 + j) / 2
        pos_rank_sum += (double)pos_in_group * 0.5 * (double)(i + 1 + j);
        n_pos += pos_in_group;
        i = j;
    }
    int64_t n_neg = n - n_pos;
    if (n_pos == 0 || n_neg == 0) return NAN;
    double u = pos_rank_sum - 0.5 * (double)n_pos * (double)(n_pos + 1);
    return u / ((double)n_pos * (double)n_neg);
}

// Copies the inputs into records (users may be NULL → all one user) and
// sorts them. Returns NULL on a NaN score (no error) or out of memory.
static metrics_row *metrics_sorted_rows(const int32_t *users, const float *scores, const int8_t *labels, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (isnan(scores[i])) return NULL;
    metrics_row *rows = collm_malloc((size_t)(n > 0 ? n : 1) * sizeof *rows);
    if (!rows) return NULL;
    for (int64_t i = 0; i < n; i++) {
        rows[i].user = users ? users[i] : 0;
        rows[i].score = scores[i];
        rows[i].positive = labels[i] != 0;
    }
    qsort(rows, (size_t)n, sizeof *rows, metrics_row_cmp);
    return rows;
}

double collm_metrics_auc(const float *scores, const int8_t *labels, int64_t n) {
    if (n <= 0 || !scores || !labels) return NAN;
    metrics_row *rows = metrics_sorted_rows(NULL, scores, labels, n);
    if (!rows) return NAN;
    double auc = metrics_auc_sorted(rows, n);
    free(rows);
    return auc;
}

double collm_metrics_uauc(const int32_t *users, const float *scores, const int8_t *labels, int64_t n,
                    int64_t *n_users_counted) {
    if (n_users_counted) *n_users_counted = 0;
    if (n <= 0 || !users || !scores || !labels) return NAN;
    metrics_row *rows = metrics_sorted_rows(users, scores, labels, n);
    if (!rows) return NAN;
    double sum = 0.0;
    int64_t counted = 0;
    for (int64_t i = 0; i < n;) {
        int64_t j = i;
        while (j < n && rows[j].user == rows[i].user) j++;
        if (j - i > 1) { // users with one row are skipped
            double auc = metrics_auc_sorted(rows + i, j - i);
            if (!isnan(auc)) { // single-class users are skipped
                sum += auc;
                counted++;
            }
        }
        i = j;
    }
    free(rows);
    if (n_users_counted) *n_users_counted = counted;
    return counted ? sum / (double)counted : NAN;
}

static int metrics_cmp_i32(const void *pa, const void *pb) {
    int32_t a = *(const int32_t *)pa, b = *(const int32_t *)pb;
    return (a > b) - (a < b);
}

// Number of distinct values in a (n) int32 array.
static int metrics_count_distinct(const int32_t *v, int64_t n, int64_t *out) {
    int32_t *copy = collm_malloc((size_t)(n > 0 ? n : 1) * sizeof *copy);
    if (!copy) return COLLM_ERR_NOMEM;
    for (int64_t i = 0; i < n; i++) copy[i] = v[i];
    qsort(copy, (size_t)n, sizeof *copy, metrics_cmp_i32);
    int64_t distinct = 0;
    for (int64_t i = 0; i < n; i++)
        if (i == 0 || copy[i] != copy[i - 1]) distinct++;
    free(copy);
    *out = distinct;
    return COLLM_OK;
}

// AUC over the rows whose not_cold equals `warm`; counts them in *n_subset.
static int metrics_subset_auc(const collm_rec_split *split, const float *scores, int warm, double *auc, int64_t *n_subset) {
    int64_t n = split->n, m = 0;
    float *sub_scores = collm_malloc((size_t)(n > 0 ? n : 1) * sizeof *sub_scores);
    int8_t *sub_labels = collm_malloc((size_t)(n > 0 ? n : 1) * sizeof *sub_labels);
    if (!sub_scores || !sub_labels) {
        free(sub_scores);
        free(sub_labels);
        return COLLM_ERR_NOMEM;
    }
    for (int64_t i = 0; i < n; i++)
        if ((split->not_cold[i] != 0) == (warm != 0)) {
            sub_scores[m] = scores[i];
            sub_labels[m++] = split->label[i];
        }
    *n_subset = m;
    *auc = collm_metrics_auc(sub_scores, sub_labels, m);
    free(sub_scores);
    free(sub_labels);
    return COLLM_OK;
}

int collm_metrics_evaluate(const collm_rec_split *split, const float *scores, collm_metrics_report *out) {
    if (!split || !scores || !out) return collm_error(COLLM_ERR_ARG, "collm_metrics_evaluate: NULL argument");
    collm_metrics_report r = {0};
    r.n = split->n;
    for (int64_t i = 0; i < split->n; i++) r.n_pos += split->label[i] != 0;
    int rc = metrics_count_distinct(split->user, split->n, &r.n_users);
    if (rc) return rc;
    collm_clear_error();
    r.auc = collm_metrics_auc(scores, split->label, split->n);
    r.uauc = collm_metrics_uauc(split->user, scores, split->label, split->n, &r.n_users_uauc);
    if (*collm_last_error()) return COLLM_ERR_NOMEM; // only allocation failures set a message above
    if ((rc = metrics_subset_auc(split, scores, 1, &r.auc_warm, &r.n_warm))) return rc;
    if ((rc = metrics_subset_auc(split, scores, 0, &r.auc_cold, &r.n_cold))) return rc;
    *out = r;
    return COLLM_OK;
}
