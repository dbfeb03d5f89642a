// Candidate retrieval over a Faiss inner-product index of item vectors (see
// include/collm/retrieval.h). All Faiss calls go through faiss_bridge.
#include "collm/retrieval.h"

#include "collm/error.h"
#include "retrieval/faiss_bridge.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct collm_retrieval_index {
    collm_faiss_index *faiss; // ids = item ids (1..n_items-1)
};

void collm_retrieval_build_options_default(collm_retrieval_build_options *opt) {
    opt->factory = "Flat";
    opt->nprobe = 32;
    opt->ef_search = 128;
    opt->train_max = 0;
    opt->shards = 1;
}

// Faiss takes "HNSW0" or "IVF0" and crashes later (a division by zero, an
// assertion): each HNSW needs M >= 2 links, each IVF nlist >= 1 list.
static int factory_counts_ok(const char *factory) {
    for (const char *p = factory; *p;) {
        const char *tok = p;
        while (*p && *p != ',' && *p != '_') p++;
        const size_t len = (size_t)(p - tok);
        if (*p) p++;
        const int hnsw = len > 4 && strncmp(tok, "HNSW", 4) == 0, ivf = len > 3 && strncmp(tok, "IVF", 3) == 0;
        if (!hnsw && !ivf) continue;
        const char *num = tok + (hnsw ? 4 : 3);
        if (!isdigit((unsigned char)*num)) continue;
        const long v = strtol(num, NULL, 10);
        if (hnsw ? v < 2 : v < 1)
            return collm_error(COLLM_ERR_ARG, "retrieval: factory '%s': %.*s needs %s", factory, (int)len, tok,
                               hnsw ? "M >= 2 links (e.g. HNSW32)" : "nlist >= 1 lists (e.g. IVF64)");
    }
    return COLLM_OK;
}

collm_retrieval_index *collm_retrieval_index_build(const float *item_vectors, int32_t n_items, int d,
                                       const collm_retrieval_build_options *opt) {
    collm_retrieval_build_options defaults;
    if (!opt) {
        collm_retrieval_build_options_default(&defaults);
        opt = &defaults;
    }
    if (!item_vectors) {
        collm_error(COLLM_ERR_ARG, "collm_retrieval_index_build: no item vectors");
        return NULL;
    }
    if (n_items < 2) {
        collm_error(COLLM_ERR_ARG, "retrieval: need at least 2 items (id 0 is padding), got %d", (int)n_items);
        return NULL;
    }
    if (d < 1) {
        collm_error(COLLM_ERR_ARG, "retrieval: item vector dimension must be >= 1, got %d", d);
        return NULL;
    }
    const char *factory = opt->factory && *opt->factory ? opt->factory : "Flat";
    if (factory_counts_ok(factory)) return NULL;
    collm_faiss_index *faiss = NULL;
    if (collm_faiss_create_shards(d, factory, opt->shards > 1 ? opt->shards : 1, &faiss) != COLLM_OK) return NULL;

    // rows 1..n_items-1: skip the padding row 0
    int64_t n = (int64_t)n_items - 1;
    const float *rows = item_vectors + (size_t)d;
    int64_t *ids = NULL;
    float *train_rows = NULL;
    if (!collm_faiss_is_trained(faiss)) {
        int64_t n_train = opt->train_max > 0 && opt->train_max < n ? opt->train_max : n;
        const float *train = rows;
        if (n_train < n) {
            // evenly strided subset (Faiss's k-means would sample at random anyway)
            train_rows = collm_malloc((size_t)n_train * (size_t)d * sizeof(float));
            if (!train_rows) goto fail;
            for (int64_t t = 0; t < n_train; t++) {
                int64_t row = t * n / n_train; // (n_train) rows of (n), increasing
                memcpy(train_rows + (size_t)t * (size_t)d, rows + (size_t)row * (size_t)d, (size_t)d * sizeof(float));
            }
            train = train_rows;
        }
        if (collm_faiss_train(faiss, n_train, train) != COLLM_OK) {
            collm_error_prefix(COLLM_ERR_ARG, "retrieval: training \"%s\" on %lld items", factory, (long long)n_train);
            goto fail;
        }
        free(train_rows);
        train_rows = NULL;
    }
    ids = collm_malloc((size_t)n * sizeof(int64_t));
    if (!ids) goto fail;
    for (int64_t i = 0; i < n; i++) ids[i] = i + 1;
    if (collm_faiss_add(faiss, n, rows, ids) != COLLM_OK) goto fail;
    free(ids);
    collm_faiss_set_search_params(faiss, opt->nprobe, opt->ef_search);

    collm_retrieval_index *index = collm_malloc(sizeof *index);
    if (!index) {
        collm_faiss_free(faiss);
        return NULL;
    }
    index->faiss = faiss;
    return index;

fail:
    free(train_rows);
    free(ids);
    collm_faiss_free(faiss);
    return NULL;
}

void collm_retrieval_index_free(collm_retrieval_index *index) {
    if (!index) return;
    collm_faiss_free(index->faiss);
    free(index);
}

int collm_retrieval_index_save(const collm_retrieval_index *index, const char *path) { return collm_faiss_write(index->faiss, path); }

collm_retrieval_index *collm_retrieval_index_load(const char *path) {
    if (!path) {
        collm_error(COLLM_ERR_ARG, "collm_retrieval_index_load: no path");
        return NULL;
    }
    collm_faiss_index *faiss = NULL;
    if (collm_faiss_read(path, &faiss) != COLLM_OK) return NULL;
    collm_retrieval_index *index = collm_malloc(sizeof *index);
    if (!index) {
        collm_faiss_free(faiss);
        return NULL;
    }
    index->faiss = faiss;
    return index;
}

int collm_retrieval_index_dim(const collm_retrieval_index *index) { return collm_faiss_dim(index->faiss); }
int64_t collm_retrieval_index_size(const collm_retrieval_index *index) { return collm_faiss_ntotal(index->faiss); }
int collm_retrieval_index_shards(const collm_retrieval_index *index) { return collm_faiss_n_shards(index->faiss); }

int collm_retrieval_index_set_search_params(collm_retrieval_index *index, int nprobe, int ef_search) {
    return collm_faiss_set_search_params(index->faiss, nprobe, ef_search);
}

void collm_retrieval_index_search_params(const collm_retrieval_index *index, int *nprobe, int *ef_search) {
    *nprobe = collm_faiss_nprobe(index->faiss);
    *ef_search = collm_faiss_ef_search(index->faiss);
}

static int compare_int32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

int collm_retrieval_candidates(const collm_retrieval_index *index, const float *query, int d, const int32_t *exclude,
                         int n_exclude, int n, int32_t *items, float *scores, int *n_found) {
    if (!index || !query || !items || !n_found || (n_exclude > 0 && !exclude))
        return collm_error(COLLM_ERR_ARG, "collm_retrieval_candidates: NULL argument");
    *n_found = 0;
    int index_d = collm_faiss_dim(index->faiss);
    if (d != index_d)
        return collm_error(COLLM_ERR_ARG, "retrieval: query dimension %d does not match the index dimension %d", d,
                           index_d);
    if (n < 1 || n_exclude < 0)
        return collm_error(COLLM_ERR_ARG, "retrieval: need n >= 1 and n_exclude >= 0 (n=%d, n_exclude=%d)", n,
                           n_exclude);
    int64_t ntotal = collm_faiss_ntotal(index->faiss);
    if (ntotal == 0) return COLLM_OK;

    // sorted copy of the excluded ids, for binary search
    int32_t *excluded = collm_malloc((size_t)n_exclude * sizeof(int32_t));
    if (!excluded) return COLLM_ERR_NOMEM;
    if (n_exclude > 0) memcpy(excluded, exclude, (size_t)n_exclude * sizeof(int32_t));
    qsort(excluded, (size_t)n_exclude, sizeof(int32_t), compare_int32);

    // n + n_exclude + 1 results always suffice (+1: an index from elsewhere may
    // hold padding id 0), but a long history makes that search wide (HNSW's
    // effort grows with k), so start at 2n + 16 and double while too few
    // survive the filter.
    int64_t k = (int64_t)n + n_exclude + 1;
    if (k > 2 * (int64_t)n + 16) k = 2 * (int64_t)n + 16;
    if (k > ntotal) k = ntotal;
    int rc = COLLM_OK;
    float *found_scores = NULL;
    int64_t *found_ids = NULL;
    for (;;) {
        free(found_scores);
        free(found_ids);
        found_scores = collm_malloc((size_t)k * sizeof(float));
        found_ids = collm_malloc((size_t)k * sizeof(int64_t));
        if (!found_scores || !found_ids) {
            rc = COLLM_ERR_NOMEM;
            break;
        }
        rc = collm_faiss_search(index->faiss, 1, query, k, found_scores, found_ids);
        if (rc != COLLM_OK) break;
        int count = 0, reached = 0;
        for (int64_t j = 0; j < k && count < n; j++) {
            int64_t id = found_ids[j];
            if (id < 0) continue; // fewer results than k
            reached++;
            if (id == 0) continue;
            if (id > INT32_MAX) {
                rc = collm_error(COLLM_ERR_FORMAT, "retrieval: index holds id %lld, beyond int32 item ids",
                                 (long long)id);
                break;
            }
            int32_t item = (int32_t)id;
            if (n_exclude > 0 && bsearch(&item, excluded, (size_t)n_exclude, sizeof(int32_t), compare_int32))
                continue;
            items[count] = item;
            if (scores) scores[count] = found_scores[j];
            count++;
        }
        if (rc != COLLM_OK) break;
        *n_found = count;
        // done: enough, or the whole index searched, or the search stopped short of k
        if (count >= n || k >= ntotal || found_ids[k - 1] < 0) break;
        k = k * 2 > ntotal ? ntotal : k * 2;
    }
    if (rc != COLLM_OK) *n_found = 0;
    free(found_scores);
    free(found_ids);
    free(excluded);
    return rc;
}

int collm_retrieval_mean_query(const float *item_vectors, int32_t n_items, int d, const int32_t *history, int n_history,
                         float *query) {
    if (d < 1) return collm_error(COLLM_ERR_ARG, "retrieval: dimension must be >= 1, got %d", d);
    // accumulate in double: histories run to hundreds of items
    double *sum = collm_calloc((size_t)d, sizeof(double));
    if (!sum) return COLLM_ERR_NOMEM;
    int used = 0;
    for (int h = 0; h < n_history; h++) {
        int32_t item = history[h];
        if (item < 0 || item >= n_items) {
            free(sum);
            return collm_error(COLLM_ERR_ARG, "retrieval: history position %d: item id %d outside [0, %d)", h,
                               (int)item, (int)n_items);
        }
        if (item == 0) continue; // padding sentinel
        const float *row = item_vectors + (size_t)item * (size_t)d;
        for (int c = 0; c < d; c++) sum[c] += row[c];
        used++;
    }
    if (used == 0) {
        free(sum);
        return collm_error(COLLM_ERR_ARG, "retrieval: empty history (no item id other than padding 0)");
    }
    for (int c = 0; c < d; c++) query[c] = (float)(sum[c] / used);
    free(sum);
    return COLLM_OK;
}

void collm_retrieval_set_threads(int n_threads) { collm_faiss_set_threads(n_threads); }
