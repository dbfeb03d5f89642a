// AUC / UAUC (method.md §7). One sort of (user, score) records, then a walk
// over each user's run and over each run of tied scores: the positives'
// average ranks give the Mann-Whitney U statistic, which equals the AUC with
// ties counted ½ (what sklearn's roc_auc_score computes with its trapezoids).
// Then the top-K metrics (Recall, NDCG, HitRate, MRR), the per-user ground
// truth they are computed against, and a bootstrap CI of a mean.
#include "collm/metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "collm/error.h"
#include "core/rng.h"

typedef struct {
    int32_t user;
    float score;
    int8_t positive; // 0/1
} metrics_row;

// Ascending with NaN last: a total order whatever the values (qsort needs one).
static int metrics_asc_nan_last(double a, double b) {
    int na = isnan(a), nb = isnan(b);
    if (na || nb) return na - nb;
    return (a > b) - (a < b);
}

// Orders by user, then by score ascending (NaN scores are refused before the
// sort; the comparator is total anyway).
static int metrics_row_cmp(const void *pa, const void *pb) {
    const metrics_row *a = pa, *b = pb;
    if (a->user != b->user) return a->user < b->user ? -1 : 1;
    return metrics_asc_nan_last(a->score, b->score);
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

// ---------------------------------------------------------------------------
// top-K: ground truth

struct collm_topk_truth {
    int64_t n_users;
    collm_topk_user *users; // (n_users) ascending user id
    int32_t *ids;           // every user's relevant then excluded ids
};

// Sorts v (n) ascending and drops repeats; returns the new length.
static int64_t metrics_sort_unique(int32_t *v, int64_t n) {
    qsort(v, (size_t)n, sizeof *v, metrics_cmp_i32);
    int64_t m = 0;
    for (int64_t i = 0; i < n; i++)
        if (m == 0 || v[i] != v[m - 1]) v[m++] = v[i];
    return m;
}

static int metrics_contains(const int32_t *sorted, int64_t n, int32_t x) {
    return n > 0 && bsearch(&x, sorted, (size_t)n, sizeof x, metrics_cmp_i32) != NULL;
}

// Rows of each user 0..n_users-1 of sp (users outside are ignored) as CSR:
// offset (n_users + 1), rows (offset[n_users]) in file order.
static int metrics_rows_by_user(const collm_rec_split *sp, int32_t n_users, int64_t **offset, int64_t **rows) {
    *offset = collm_calloc((size_t)n_users + 1, sizeof(int64_t));
    *rows = NULL;
    if (!*offset) return COLLM_ERR_NOMEM;
    int64_t *off = *offset;
    for (int64_t r = 0; sp && r < sp->n; r++)
        if (sp->user[r] >= 0 && sp->user[r] < n_users) off[sp->user[r] + 1]++;
    for (int32_t u = 0; u < n_users; u++) off[u + 1] += off[u];
    *rows = collm_malloc((size_t)(off[n_users] > 0 ? off[n_users] : 1) * sizeof(int64_t));
    int64_t *fill = collm_malloc((size_t)(n_users > 0 ? n_users : 1) * sizeof(int64_t));
    if (!*rows || !fill) {
        free(fill);
        return COLLM_ERR_NOMEM;
    }
    memcpy(fill, off, (size_t)n_users * sizeof(int64_t));
    for (int64_t r = 0; sp && r < sp->n; r++)
        if (sp->user[r] >= 0 && sp->user[r] < n_users) (*rows)[fill[sp->user[r]]++] = r;
    free(fill);
    return COLLM_OK;
}

collm_topk_truth *collm_topk_truth_build(const collm_rec_split *split, const collm_rec_split *train, int32_t n_items) {
    if (!split || n_items < 1) {
        collm_error(COLLM_ERR_ARG, "collm_topk_truth_build: no split or no items");
        return NULL;
    }
    int32_t n_users = split->n > 0 ? split->max_user + 1 : 0;
    collm_topk_truth *t = collm_calloc(1, sizeof *t);
    int64_t *s_off = NULL, *s_rows = NULL, *t_off = NULL, *t_rows = NULL;
    int32_t *buf = NULL; // one user's candidate ids: excluded then relevant
    int rc = t ? COLLM_OK : COLLM_ERR_NOMEM;
    if (rc == COLLM_OK) rc = metrics_rows_by_user(split, n_users, &s_off, &s_rows);
    if (rc == COLLM_OK) rc = metrics_rows_by_user(train, n_users, &t_off, &t_rows);
    // upper bound on the ids kept over all users, and on one user's buffer
    int64_t cap = 0, buf_cap = 1;
    for (int32_t u = 0; rc == COLLM_OK && u < n_users; u++) {
        if (s_off[u + 1] == s_off[u]) continue;
        int64_t n = 1 + (t_off[u + 1] - t_off[u]) + (s_off[u + 1] - s_off[u]);
        for (int64_t j = s_off[u]; j < s_off[u + 1]; j++) {
            int64_t r = s_rows[j];
            int64_t nh = split->his_offset[r + 1] - split->his_offset[r];
            n += nh > 0 ? nh : 0; // bound: the first row's history is one of them
        }
        cap += n;
        if (n > buf_cap) buf_cap = n;
    }
    if (rc == COLLM_OK) {
        t->users = collm_malloc((size_t)(n_users > 0 ? n_users : 1) * sizeof *t->users);
        t->ids = collm_malloc((size_t)(cap > 0 ? cap : 1) * sizeof(int32_t));
        buf = collm_malloc((size_t)buf_cap * sizeof(int32_t));
        if (!t->users || !t->ids || !buf) rc = COLLM_ERR_NOMEM;
    }
    int64_t used = 0;
    for (int32_t u = 0; rc == COLLM_OK && u < n_users; u++) {
        if (s_off[u + 1] == s_off[u]) continue;
        // earliest row: smallest timestamp, then first in the file
        int64_t r0 = s_rows[s_off[u]];
        for (int64_t j = s_off[u] + 1; j < s_off[u + 1]; j++)
            if (split->timestamp[s_rows[j]] < split->timestamp[r0]) r0 = s_rows[j];
        const int32_t *his = split->his + split->his_offset[r0];
        int64_t n_his = split->his_offset[r0 + 1] - split->his_offset[r0];
        int64_t ne = 0;
        buf[ne++] = 0;
        for (int64_t j = 0; j < n_his; j++) buf[ne++] = his[j];
        for (int64_t j = t_off[u]; j < t_off[u + 1]; j++) buf[ne++] = train->item[t_rows[j]];
        ne = metrics_sort_unique(buf, ne);
        int32_t *rel = buf + ne;
        int64_t nr = 0;
        for (int64_t j = s_off[u]; j < s_off[u + 1]; j++) {
            int64_t r = s_rows[j];
            int32_t it = split->item[r];
            if (split->label[r] && it > 0 && it < n_items && !metrics_contains(buf, ne, it)) rel[nr++] = it;
        }
        nr = metrics_sort_unique(rel, nr);
        if (nr == 0) continue;
        collm_topk_user *x = &t->users[t->n_users++];
        x->user = u;
        x->history = his;
        x->n_history = n_his;
        memcpy(t->ids + used, rel, (size_t)nr * sizeof(int32_t));
        x->relevant = t->ids + used;
        x->n_relevant = (int)nr;
        used += nr;
        memcpy(t->ids + used, buf, (size_t)ne * sizeof(int32_t));
        x->excluded = t->ids + used;
        x->n_excluded = (int)ne;
        used += ne;
    }
    free(s_off);
    free(s_rows);
    free(t_off);
    free(t_rows);
    free(buf);
    if (rc != COLLM_OK) {
        collm_topk_truth_free(t);
        return NULL;
    }
    return t;
}

void collm_topk_truth_free(collm_topk_truth *t) {
    if (!t) return;
    free(t->users);
    free(t->ids);
    free(t);
}

int64_t collm_topk_truth_n_users(const collm_topk_truth *t) { return t ? t->n_users : 0; }

const collm_topk_user *collm_topk_truth_user(const collm_topk_truth *t, int64_t i) {
    return t && i >= 0 && i < t->n_users ? &t->users[i] : NULL;
}

// ---------------------------------------------------------------------------
// top-K: metrics of one list

typedef struct {
    int32_t item;
    int64_t pos; // position in the input list
} metrics_pos;

static int metrics_pos_cmp(const void *pa, const void *pb) {
    const metrics_pos *a = pa, *b = pb;
    if (a->item != b->item) return a->item < b->item ? -1 : 1;
    return (a->pos > b->pos) - (a->pos < b->pos);
}

int collm_topk_metrics(const int32_t *ranked, int64_t n_ranked, const int32_t *relevant, int n_relevant,
                       const int32_t *excluded, int n_excluded, const int64_t *ks, int n_ks, collm_topk_at *out) {
    if (n_ranked < 0 || n_relevant < 0 || n_excluded < 0 || n_ks < 0 || (n_ranked && !ranked) ||
        (n_relevant && !relevant) || (n_excluded && !excluded) || (n_ks && (!ks || !out)))
        return collm_error(COLLM_ERR_ARG, "collm_topk_metrics: bad arguments");
    for (int j = 0; j < n_ks; j++)
        if (ks[j] < 1) return collm_error(COLLM_ERR_ARG, "collm_topk_metrics: cutoff k = %lld (must be >= 1)", (long long)ks[j]);
    int32_t *excl = collm_malloc((size_t)(n_excluded > 0 ? n_excluded : 1) * sizeof(int32_t));
    int32_t *rel = collm_malloc((size_t)(n_relevant > 0 ? n_relevant : 1) * sizeof(int32_t));
    metrics_pos *byid = collm_malloc((size_t)(n_ranked > 0 ? n_ranked : 1) * sizeof *byid);
    uint8_t *gain = collm_malloc((size_t)(n_ranked > 0 ? n_ranked : 1)); // 0 irrelevant, 1 relevant, 2 dropped
    if (!excl || !rel || !byid || !gain) {
        free(excl);
        free(rel);
        free(byid);
        free(gain);
        return COLLM_ERR_NOMEM;
    }
    if (n_excluded) memcpy(excl, excluded, (size_t)n_excluded * sizeof(int32_t));
    int64_t ne = metrics_sort_unique(excl, n_excluded), nr = 0;
    for (int i = 0; i < n_relevant; i++)
        if (!metrics_contains(excl, ne, relevant[i])) rel[nr++] = relevant[i];
    nr = metrics_sort_unique(rel, nr);
    // repeats: every copy after the first of an id is dropped
    for (int64_t i = 0; i < n_ranked; i++) byid[i] = (metrics_pos){ranked[i], i};
    qsort(byid, (size_t)n_ranked, sizeof *byid, metrics_pos_cmp);
    for (int64_t i = 0; i < n_ranked; i++) {
        int64_t p = byid[i].pos;
        int32_t it = byid[i].item;
        if ((i > 0 && byid[i - 1].item == it) || metrics_contains(excl, ne, it)) gain[p] = 2;
        else gain[p] = (uint8_t)metrics_contains(rel, nr, it);
    }
    for (int j = 0; j < n_ks; j++) {
        if (nr == 0) {
            out[j] = (collm_topk_at){NAN, NAN, NAN, NAN};
            continue;
        }
        int64_t k = ks[j], rank = 0, hits = 0, first = 0;
        double dcg = 0, idcg = 0;
        for (int64_t i = 0; i < n_ranked && rank < k; i++) {
            if (gain[i] == 2) continue;
            rank++;
            if (gain[i] == 1) {
                hits++;
                dcg += 1.0 / log2((double)rank + 1.0);
                if (!first) first = rank;
            }
        }
        for (int64_t r = 1; r <= k && r <= nr; r++) idcg += 1.0 / log2((double)r + 1.0);
        out[j].recall = (double)hits / (double)nr;
        out[j].ndcg = dcg / idcg;
        out[j].hit = hits > 0;
        out[j].rr = first ? 1.0 / (double)first : 0.0;
    }
    free(excl);
    free(rel);
    free(byid);
    free(gain);
    return COLLM_OK;
}

typedef struct {
    int32_t item;
    float score, tiebreak;
} metrics_ranked;

// NaN last; otherwise descending.
static int metrics_desc(float a, float b) {
    int na = isnan(a), nb = isnan(b);
    if (na || nb) return na - nb;
    return a > b ? -1 : a < b ? 1 : 0;
}

static int metrics_ranked_cmp(const void *pa, const void *pb) {
    const metrics_ranked *a = pa, *b = pb;
    int c = metrics_desc(a->score, b->score);
    if (!c) c = metrics_desc(a->tiebreak, b->tiebreak);
    if (!c) c = (a->item > b->item) - (a->item < b->item);
    return c;
}

int collm_topk_rank(const int32_t *items, const float *score, const float *tiebreak, int64_t n, int32_t *ranked) {
    if (n < 0 || (n && (!items || !score || !ranked))) return collm_error(COLLM_ERR_ARG, "collm_topk_rank: bad arguments");
    metrics_ranked *v = collm_malloc((size_t)(n > 0 ? n : 1) * sizeof *v);
    if (!v) return COLLM_ERR_NOMEM;
    for (int64_t i = 0; i < n; i++) v[i] = (metrics_ranked){items[i], score[i], tiebreak ? tiebreak[i] : 0.0f};
    qsort(v, (size_t)n, sizeof *v, metrics_ranked_cmp);
    for (int64_t i = 0; i < n; i++) ranked[i] = v[i].item;
    free(v);
    return COLLM_OK;
}

// ---------------------------------------------------------------------------
// bootstrap

static int metrics_cmp_f64(const void *pa, const void *pb) {
    return metrics_asc_nan_last(*(const double *)pa, *(const double *)pb);
}

// Quantile q in [0, 1] of sorted v (n >= 1), linear interpolation between
// order statistics (numpy's default).
static double metrics_quantile(const double *v, int64_t n, double q) {
    double h = q * (double)(n - 1);
    int64_t i = (int64_t)floor(h);
    if (i >= n - 1) return v[n - 1];
    return v[i] + (h - (double)i) * (v[i + 1] - v[i]);
}

int collm_bootstrap_ci(const double *values, int64_t n, int n_resamples, double level, uint64_t seed, collm_ci *out) {
    if (!out || n < 0 || (n && !values) || n_resamples < 1 || !(level > 0 && level < 1))
        return collm_error(COLLM_ERR_ARG, "collm_bootstrap_ci: bad arguments");
    double *x = collm_malloc((size_t)(n > 0 ? n : 1) * sizeof(double));
    double *means = collm_malloc((size_t)n_resamples * sizeof(double));
    if (!x || !means) {
        free(x);
        free(means);
        return COLLM_ERR_NOMEM;
    }
    int64_t m = 0;
    double sum = 0;
    // undefined values (NaN) are left out, and so are infinities: one of
    // each sign made every resample's mean NaN
    for (int64_t i = 0; i < n; i++)
        if (isfinite(values[i])) sum += (x[m++] = values[i]);
    out->n = m;
    if (m == 0) {
        out->mean = out->lo = out->hi = NAN;
    } else {
        out->mean = sum / (double)m;
        collm_rng rng;
        collm_rng_seed(&rng, seed);
        for (int b = 0; b < n_resamples; b++) {
            double s = 0;
            for (int64_t i = 0; i < m; i++) s += x[collm_rng_below(&rng, (uint64_t)m)];
            means[b] = s / (double)m;
        }
        qsort(means, (size_t)n_resamples, sizeof *means, metrics_cmp_f64);
        out->lo = metrics_quantile(means, n_resamples, 0.5 * (1.0 - level));
        out->hi = metrics_quantile(means, n_resamples, 0.5 * (1.0 + level));
    }
    free(x);
    free(means);
    return COLLM_OK;
}
