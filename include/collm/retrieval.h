// Candidate retrieval (design.md "Faiss for retrieval"): a Faiss index over
// collaborative item vectors, searched by inner product with a user's vector
// (or, for a user without one, the mean of their history items), returning
// the top-N items the user has not interacted with yet.
//
// This module takes raw item vectors (n_items, d), row i = item id i, so it
// does not depend on any particular collaborative model. Id 0 is padding: it
// is never put in the index and never returned.
//
// Threading: an index may be searched (collm_retrieval_candidates) by any
// number of threads at once; collm_retrieval_index_set_search_params and
// collm_retrieval_index_free need it to themselves. Faiss's own OpenMP
// thread count is process-wide (collm_retrieval_set_threads).
#ifndef COLLM_RETRIEVAL_H
#define COLLM_RETRIEVAL_H

#include "collm/version.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct collm_retrieval_index collm_retrieval_index;

typedef struct {
    const char *factory; // Faiss factory string: "Flat" (exact), "HNSW32,Flat", "IVF1024,Flat", ...
    int nprobe;          // IVF lists visited per query (<= 0: keep Faiss's default, 1)
    int ef_search;       // HNSW search breadth (<= 0: keep Faiss's default, 16)
    int64_t train_max;   // IVF: train on at most this many items (evenly strided); <= 0: all
    int shards;          // > 1: that many indexes of the factory string, each over a contiguous block of
                         // the items, searched together (Faiss IndexShards); trained once (the first
                         // shard) and copied; saved as PATH.shard0.. plus a manifest at PATH. <= 1: one
} collm_retrieval_build_options;

// factory "Flat", nprobe 32, ef_search 128, train_max 0, shards 1.
COLLM_API void collm_retrieval_build_options_default(collm_retrieval_build_options *opt);

// Builds an index over items 1..n_items-1 of item_vectors (n_items, d), ids =
// item ids. Trains first when the index type needs it (IVF). Returns NULL and
// sets the error on a bad factory string, n_items < 2, d < 1, more shards than
// items (n_items - 1), or too few items to train (IVF needs at least nlist).
COLLM_API collm_retrieval_index *collm_retrieval_index_build(const float *item_vectors, int32_t n_items, int d,
                                       const collm_retrieval_build_options *opt);
COLLM_API void collm_retrieval_index_free(collm_retrieval_index *index);

// Faiss's own file format (atomic write). Load checks the metric (inner
// product) and returns NULL with a message naming the path on any problem.
COLLM_API int collm_retrieval_index_save(const collm_retrieval_index *index, const char *path);
COLLM_API collm_retrieval_index *collm_retrieval_index_load(const char *path);

// An index keeps a record of the item table it was built from (count,
// dimension, a 64-bit hash of the vectors; saved as one line of text after
// the Faiss bytes). check_items returns COLLM_ERR_ARG with a message when
// item_vectors (n_items, d) are not that table: an index of another model of
// the same catalogue, whose candidates would be wrong for this one's
// queries. An index without a record (written by Faiss itself, or by collm
// before 2026-12-05) passes; has_items tells which (1: recorded).
COLLM_API int collm_retrieval_index_check_items(const collm_retrieval_index *index, const float *item_vectors,
                                                int32_t n_items, int d);
COLLM_API int collm_retrieval_index_has_items(const collm_retrieval_index *index);

COLLM_API int collm_retrieval_index_dim(const collm_retrieval_index *index);
COLLM_API int64_t collm_retrieval_index_size(const collm_retrieval_index *index); // vectors stored (n_items - 1 after build)
COLLM_API int collm_retrieval_index_shards(const collm_retrieval_index *index);   // 1 unless sharded
// Search knobs, as in collm_retrieval_build_options (<= 0 leaves one unchanged).
// Not while another thread searches the same index.
COLLM_API int collm_retrieval_index_set_search_params(collm_retrieval_index *index, int nprobe, int ef_search);
// Current knobs; 0 where one does not apply to the index type.
COLLM_API void collm_retrieval_index_search_params(const collm_retrieval_index *index, int *nprobe, int *ef_search);

// The top-n items for one query vector (d, must equal the index dimension),
// best first by inner product, leaving out id 0 and every id in exclude
// (n_exclude ids in any order, duplicates and 0 allowed; e.g. the user's
// history). Writes items (n) and scores (n, may be NULL) and *n_found; fewer
// than n are found only when the index holds fewer eligible items (or an
// approximate index cannot reach more). Searches min(n + n_exclude + 1,
// 2n + 16) and doubles k while filtering leaves too few. Thread-safe for
// concurrent calls.
COLLM_API int collm_retrieval_candidates(const collm_retrieval_index *index, const float *query, int d, const int32_t *exclude,
                         int n_exclude, int n, int32_t *items, float *scores, int *n_found);

// Cold-start query: query (d) = mean of the rows of item_vectors (n_items, d)
// named by history (n_history ids). Id 0 (the padding sentinel that starts
// every history list) is skipped; an id outside [0, n_items) is an error, and
// so is a history with no item other than 0.
COLLM_API int collm_retrieval_mean_query(const float *item_vectors, int32_t n_items, int d, const int32_t *history, int n_history,
                         float *query);

// Threads used by Faiss (OpenMP) for index builds and searches in this
// process (>= 1). Process-wide: call it before concurrent searches start.
COLLM_API void collm_retrieval_set_threads(int n_threads);

#ifdef __cplusplus
}
#endif

#endif
