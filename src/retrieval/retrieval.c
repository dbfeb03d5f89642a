// Candidate retrieval over a Faiss inner-product index of item vectors (see
// include/collm/retrieval.h). All Faiss calls go through faiss_bridge.
#include "collm/retrieval.h"

#include "collm/error.h"
#include "retrieval/faiss_bridge.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

struct collm_retrieval_index {
    collm_faiss_index *faiss; // ids = item ids (1..n_items-1)
    // The item table the index was built from (ITEM_RECORD below); has_items
    // 0 for a file written before collm kept it, or by Faiss itself
    int has_items;
    int32_t n_items;
    int d;
    uint64_t items_hash;
};

// The item table an index was built from, kept so that a checkpoint whose
// items have other vectors (another model of the same catalogue: the same
// count and dimension) is refused rather than served with the wrong
// candidates. One 64-byte line of text after the Faiss bytes (after a shard
// manifest's names), which Faiss's reader never reaches:
//     collm-item-table 1 <n_items> <d> <XXH3-64 of rows 1..n_items-1, hex>
// padded with spaces to 63 bytes and a newline.
#define ITEM_RECORD_BYTES 64
static const char ITEM_RECORD_MAGIC[] = "collm-item-table 1 ";

static uint64_t items_hash(const float *item_vectors, int32_t n_items, int d) {
    return XXH3_64bits(item_vectors + (size_t)d, (size_t)(n_items - 1) * (size_t)d * sizeof(float));
}

// 1: *index got the record of path's last line; 0: path has none; < 0: a
// damaged record (error set).
static int item_record_read(const char *path, collm_retrieval_index *index) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0; // (Faiss just read it: gone since; nothing to check against)
    char line[ITEM_RECORD_BYTES + 1] = {0};
    const int got = fseek(f, -ITEM_RECORD_BYTES, SEEK_END) == 0 && fread(line, 1, ITEM_RECORD_BYTES, f) == ITEM_RECORD_BYTES;
    fclose(f);
    if (!got || memcmp(line, ITEM_RECORD_MAGIC, sizeof ITEM_RECORD_MAGIC - 1) != 0) return 0;
    int n = 0, d = 0, used = 0;
    unsigned long long h = 0;
    if (line[ITEM_RECORD_BYTES - 1] != '\n' ||
        sscanf(line + sizeof ITEM_RECORD_MAGIC - 1, "%d %d %16llx%n", &n, &d, &h, &used) != 3 || n < 2 || d < 1)
        return collm_error(COLLM_ERR_FORMAT, "%s: damaged item-table record at the end of the file", path);
    for (int i = (int)sizeof ITEM_RECORD_MAGIC - 1 + used; i < ITEM_RECORD_BYTES - 1; i++)
        if (line[i] != ' ') return collm_error(COLLM_ERR_FORMAT, "%s: damaged item-table record at the end of the file", path);
    index->has_items = 1;
    index->n_items = n;
    index->d = d;
    index->items_hash = h;
    return 1;
}

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
    if (opt->shards > (int64_t)n_items - 1) { // (K files, most of them empty indexes)
        collm_error(COLLM_ERR_ARG, "retrieval: %d shards for %d items: each shard needs at least one item", opt->shards,
                    (int)n_items - 1);
        return NULL;
    }
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
    index->has_items = 1;
    index->n_items = n_items;
    index->d = d;
    index->items_hash = items_hash(item_vectors, n_items, d);
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

int collm_retrieval_index_save(const collm_retrieval_index *index, const char *path) {
    if (!index || !path) return collm_error(COLLM_ERR_ARG, "collm_retrieval_index_save: NULL argument");
    char record[ITEM_RECORD_BYTES + 1];
    if (index->has_items) {
        int len = snprintf(record, sizeof record, "%s%d %d %016llx", ITEM_RECORD_MAGIC, (int)index->n_items, index->d,
                           (unsigned long long)index->items_hash);
        memset(record + len, ' ', (size_t)(ITEM_RECORD_BYTES - 1 - len));
        record[ITEM_RECORD_BYTES - 1] = '\n';
        record[ITEM_RECORD_BYTES] = '\0';
    }
    return collm_faiss_write(index->faiss, path, index->has_items ? record : NULL);
}

int collm_retrieval_index_check_items(const collm_retrieval_index *index, const float *item_vectors, int32_t n_items,
                                      int d) {
    if (!index || !item_vectors) return collm_error(COLLM_ERR_ARG, "collm_retrieval_index_check_items: NULL argument");
    if (n_items < 2 || d < 1)
        return collm_error(COLLM_ERR_ARG, "collm_retrieval_index_check_items: need n_items >= 2 and d >= 1");
    if (!index->has_items) return COLLM_OK; // nothing recorded to check against
    if (index->n_items != n_items || index->d != d)
        return collm_error(COLLM_ERR_ARG, "the index was built from %d items of dimension %d, not %d of %d",
                           (int)index->n_items, index->d, (int)n_items, d);
    if (index->items_hash != items_hash(item_vectors, n_items, d))
        return collm_error(COLLM_ERR_ARG, "the index was built from other item vectors (another model of the same "
                                          "items?): rebuild it from this model");
    return COLLM_OK;
}

int collm_retrieval_index_has_items(const collm_retrieval_index *index) { return index && index->has_items; }

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
    memset(index, 0, sizeof *index);
    index->faiss = faiss;
    if (item_record_read(path, index) < 0) {
        collm_retrieval_index_free(index);
        return NULL;
    }
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
