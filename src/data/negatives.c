// Catalogue negatives for training (collm_rec_split_with_negatives in
// include/collm/dataset.h): inverse-CDF draws over item weights
// (count + 1)^alpha, rejecting the user's train items and the row's history.
#include "collm/dataset.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "collm/error.h"
#include "core/rng.h"

#define NEG_MAX_TRIES 100

static int neg_cmp_i32(const void *pa, const void *pb) {
    int32_t a = *(const int32_t *)pa, b = *(const int32_t *)pb;
    return (a > b) - (a < b);
}

// First index i with cdf[i] > x (cdf (n) non-decreasing, x < cdf[n-1]).
static int32_t neg_draw(const double *cdf, int32_t n, double x) {
    int32_t lo = 0, hi = n - 1;
    while (lo < hi) {
        int32_t mid = lo + (hi - lo) / 2;
        if (cdf[mid] > x) hi = mid;
        else lo = mid + 1;
    }
    return lo;
}

collm_rec_split *collm_rec_split_with_negatives(const collm_rec_split *train, const collm_rec_items *items,
                                                int32_t n_items, int per_positive, double alpha, uint64_t seed) {
    if (!train || n_items < 2 || per_positive < 0 || !(alpha >= 0 && alpha <= 4)) {
        collm_error(COLLM_ERR_ARG, "catalogue negatives: bad arguments (per positive %d, alpha %g, %d items)", per_positive,
                    alpha, n_items);
        return NULL;
    }
    int64_t n = train->n, n_pos = 0, n_his = train->his_offset[n];
    for (int64_t r = 0; r < n; r++) n_pos += train->label[r] != 0;
    // item weights over the catalogue: (train rows + 1)^alpha, 0 for id 0 and untitled ids
    double *cdf = collm_malloc((size_t)n_items * sizeof(double));
    int64_t *count = collm_calloc((size_t)n_items, sizeof(int64_t));
    // the user's train items, sorted, as CSR over users (rows grouped by user)
    int32_t n_users = train->max_user + 1;
    int64_t *u_off = collm_calloc((size_t)n_users + 1, sizeof(int64_t));
    int32_t *u_items = collm_malloc((size_t)(n > 0 ? n : 1) * sizeof(int32_t));
    int64_t max_new = n_pos * per_positive, n_new = 0;
    int64_t *src_row = collm_malloc((size_t)(max_new > 0 ? max_new : 1) * sizeof(int64_t));
    int32_t *new_item = collm_malloc((size_t)(max_new > 0 ? max_new : 1) * sizeof(int32_t));
    collm_rec_split *out = collm_calloc(1, sizeof *out);
    if (!cdf || !count || !u_off || !u_items || !src_row || !new_item || !out) goto fail;
    for (int64_t r = 0; r < n; r++) {
        if (train->item[r] >= 0 && train->item[r] < n_items) count[train->item[r]]++;
        u_off[train->user[r] + 1]++;
    }
    double total = 0;
    for (int32_t i = 0; i < n_items; i++) {
        int usable = i > 0 && (!items || (i < items->n && items->title[i][0]));
        total += usable ? pow((double)count[i] + 1.0, alpha) : 0.0;
        cdf[i] = total;
    }
    if (!(total > 0)) {
        collm_error(COLLM_ERR_ARG, "catalogue negatives: no item to draw");
        goto fail;
    }
    for (int32_t u = 0; u < n_users; u++) u_off[u + 1] += u_off[u];
    {
        int64_t *fill = collm_malloc((size_t)(n_users > 0 ? n_users : 1) * sizeof(int64_t));
        if (!fill) goto fail;
        memcpy(fill, u_off, (size_t)n_users * sizeof(int64_t));
        for (int64_t r = 0; r < n; r++) u_items[fill[train->user[r]]++] = train->item[r];
        free(fill);
    }
    for (int32_t u = 0; u < n_users; u++)
        qsort(u_items + u_off[u], (size_t)(u_off[u + 1] - u_off[u]), sizeof(int32_t), neg_cmp_i32);
    collm_rng rng;
    collm_rng_seed(&rng, seed);
    for (int64_t r = 0; r < n; r++) {
        if (!train->label[r]) continue;
        int32_t u = train->user[r];
        const int32_t *seen = u_items + u_off[u];
        size_t n_seen = (size_t)(u_off[u + 1] - u_off[u]);
        const int32_t *his = train->his + train->his_offset[r];
        int64_t nh = train->his_offset[r + 1] - train->his_offset[r];
        for (int k = 0; k < per_positive; k++) {
            for (int tries = 0; tries < NEG_MAX_TRIES; tries++) {
                int32_t it = neg_draw(cdf, n_items, collm_rng_uniform(&rng) * total);
                int bad = bsearch(&it, seen, n_seen, sizeof it, neg_cmp_i32) != NULL;
                for (int64_t j = 0; j < nh && !bad; j++) bad = his[j] == it;
                if (bad) continue;
                src_row[n_new] = r;
                new_item[n_new++] = it;
                break;
            }
        }
    }
    // the split: originals, then the new rows
    int64_t m = n + n_new, m_his = n_his;
    for (int64_t k = 0; k < n_new; k++) m_his += train->his_offset[src_row[k] + 1] - train->his_offset[src_row[k]];
    out->n = m;
    out->path = collm_malloc(strlen(train->path ? train->path : "train") + 32);
    out->user = collm_malloc((size_t)(m > 0 ? m : 1) * sizeof(int32_t));
    out->item = collm_malloc((size_t)(m > 0 ? m : 1) * sizeof(int32_t));
    out->label = collm_malloc((size_t)(m > 0 ? m : 1));
    out->timestamp = collm_malloc((size_t)(m > 0 ? m : 1) * sizeof(int64_t));
    out->not_cold = collm_malloc((size_t)(m > 0 ? m : 1));
    out->his_offset = collm_malloc((size_t)(m + 1) * sizeof(int64_t));
    out->his = collm_malloc((size_t)(m_his > 0 ? m_his : 1) * sizeof(int32_t));
    if (train->his_label) out->his_label = collm_malloc((size_t)(m_his > 0 ? m_his : 1));
    if (!out->path || !out->user || !out->item || !out->label || !out->timestamp || !out->not_cold || !out->his_offset ||
        !out->his || (train->his_label && !out->his_label))
        goto fail;
    sprintf(out->path, "%s (+ negatives)", train->path ? train->path : "train");
    memcpy(out->user, train->user, (size_t)n * sizeof(int32_t));
    memcpy(out->item, train->item, (size_t)n * sizeof(int32_t));
    memcpy(out->label, train->label, (size_t)n);
    memcpy(out->timestamp, train->timestamp, (size_t)n * sizeof(int64_t));
    memcpy(out->not_cold, train->not_cold, (size_t)n);
    memcpy(out->his_offset, train->his_offset, (size_t)(n + 1) * sizeof(int64_t));
    memcpy(out->his, train->his, (size_t)n_his * sizeof(int32_t));
    if (train->his_label) memcpy(out->his_label, train->his_label, (size_t)n_his);
    for (int64_t k = 0; k < n_new; k++) {
        int64_t r = src_row[k], i = n + k, h0 = train->his_offset[r], nh = train->his_offset[r + 1] - h0;
        out->user[i] = train->user[r];
        out->item[i] = new_item[k];
        out->label[i] = 0;
        out->timestamp[i] = train->timestamp[r];
        out->not_cold[i] = train->not_cold[r];
        out->his_offset[i + 1] = out->his_offset[i] + nh;
        memcpy(out->his + out->his_offset[i], train->his + h0, (size_t)nh * sizeof(int32_t));
        if (train->his_label) memcpy(out->his_label + out->his_offset[i], train->his_label + h0, (size_t)nh);
    }
    out->max_user = train->max_user;
    out->max_item = train->max_item;
    for (int64_t k = 0; k < n_new; k++)
        if (new_item[k] > out->max_item) out->max_item = new_item[k];
    free(cdf);
    free(count);
    free(u_off);
    free(u_items);
    free(src_row);
    free(new_item);
    return out;
fail:
    free(cdf);
    free(count);
    free(u_off);
    free(u_items);
    free(src_row);
    free(new_item);
    collm_rec_split_free(out);
    return NULL;
}
