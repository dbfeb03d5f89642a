// Top-K recommendation (design.md "Shared-prefix re-ranking", "Faiss for
// retrieval"): retrieve N candidates from a Faiss index over the checkpoint's
// collaborative item vectors, then re-rank them by the CoLLM "Yes" logit
// fused with the retrieval score (below).
//
// Query vector: the user's row of the checkpoint's CF user table; a user the
// CF model does not know (id >= its n_users) or a request with only a history
// uses the mean of the history items' vectors (collm_retrieval_mean_query).
// Candidates never include a history item or id 0.
//
// History of a known user (collm_recommend_histories): the most recent row of that
// user over the dataset's loaded splits (train, then valid; larger timestamp
// wins, ties go to the later split / later row), i.e. its stored history
// (ml-1m: [0] + every earlier positive, oldest first) followed by that row's
// item when its label is 1. That is everything the data says the user liked.
//
// Re-ranking with a shared prefix, exact by construction: every candidate's
// full prompt is encoded with collm_encode (the same token ids as scoring one
// prompt on its own); the longest common token prefix over all candidates is
// cut before the first slot row that differs between candidates (the target
// item's slot, or any slot whose entity differs) and before each prompt's
// last token. That prefix (its slot rows: the user slot and any history-item
// slots) runs once with collm_llm_forward; every candidate's remaining tokens are
// scored against the cached prefix as packed batches with collm_llm_score_suffixes
// (slot rows there, the target item's, mapped by FECE as usual). Attention of
// a suffix row sees exactly the rows it would see in the full prompt, so the
// scores equal independent scoring up to float summation order.
//
// Order of the results (docs/topk.md): the fused score
//   score = z(llm) + λ · z(retrieval) + μ · z(log(1 + popularity)),
// z(x) = (x - mean) / std over the user's candidates (population std; a
// constant score gives z = 0), popularity = the item's rows in the dataset's
// train split (collm_recommend_histories; without histories the term is 0).
// λ = μ = 0 is the LLM's order; a large λ the retrieval order. λ and μ are
// the checkpoint's (collm_rerank_weights: fitted on valid_small by `collm
// fit-fusion`, else λ = 1, μ = 0) unless the request sets them. Ties:
// retrieval score, then item id.
//
// The user slot of a user unknown to the CF model (or of an anonymous,
// history-only request) gets the FECE mapping of the zero vector: the model
// has no collaborative information about that user.
//
// The model, index, items and histories are only read: any number of threads
// may call recommend_* at once, each with its own collm_llm_context.
//
// Threading: collm_recommend_histories is read-only once built (share it
// freely); a collm_llm_context passed in belongs to one call at a time, and
// a NULL ctx makes each call create its own.
#ifndef COLLM_RECOMMEND_H
#define COLLM_RECOMMEND_H

#include "collm/version.h"

#include <stdint.h>

#include "collm/collm.h"
#include "collm/dataset.h"
#include "collm/model.h"
#include "collm/retrieval.h"

#ifdef __cplusplus
extern "C" {
#endif

// Per-user histories from a dataset (see above).
typedef struct collm_recommend_histories collm_recommend_histories;

COLLM_API collm_recommend_histories *collm_recommend_histories_build(const collm_rec_dataset *ds);
COLLM_API void collm_recommend_histories_free(collm_recommend_histories *h);
// The user's history as described above (*his points into h, n_his >= 1 on
// ml-1m because of the 0 sentinel). COLLM_ERR_NOT_FOUND (field "user") when the
// dataset has no row of that user.
COLLM_API int collm_recommend_user_history(const collm_recommend_histories *h, int32_t user, const int32_t **his, int64_t *n_his);
// Every item the user has a row of in the dataset's train and valid splits
// (liked or not), in row order, possibly repeated (*items points into h).
// *n = 0 for a user without rows (not an error).
COLLM_API void collm_recommend_user_rated(const collm_recommend_histories *h, int32_t user, const int32_t **items, int64_t *n);

// Layout mirrored by the Python binding (python/collm/__init__.py): keep in step.
typedef struct {
    int32_t user;           // user id, or -1 for an anonymous request (history required)
    const int32_t *history; // explicit history (n_history ids, oldest first; a leading 0
                            // sentinel is added when the template expects one), or NULL
                            // for the user's history from collm_recommend_histories
    int n_history;
    int k;                  // results wanted, 1 <= k <= n_candidates
    int n_candidates;       // retrieved before re-ranking (the N of top-N)
    int share_prefix;       // 1: shared prefix + packed suffixes; 0: every prompt on its own
    float fusion_lambda;    // λ of the order above; NaN = the checkpoint's
    float fusion_popularity;// μ of the order above; NaN = the checkpoint's
    const int32_t *exclude; // n_exclude item ids never to return (besides the history), or NULL
    int n_exclude;
    int exclude_rated;      // 1: also leave out every item the user has a row of in the
                            // dataset (train / valid, any label: collm_recommend_user_rated)
} collm_recommend_request;

// user -1, no history, k 10, 100 candidates, share_prefix 1, fusion weights NaN,
// no exclusions.
COLLM_API void collm_recommend_request_default(collm_recommend_request *r);

// Layout mirrored by the Python binding (python/collm/__init__.py): keep in step.
typedef struct {
    int32_t item;
    float llm_score;       // raw "Yes" logit (as collm_score_encoded)
    float retrieval_score; // inner product with the query vector
    float score;           // fused score the results are sorted by
} collm_recommend_item;

// Layout mirrored by the Python binding (python/collm/__init__.py): keep in step.
typedef struct {
    int n_results;       // items written (min(k, candidates found))
    int n_candidates;    // candidates retrieved
    int used_mean_query; // 1: the query was the mean of the history items
    int prefix_tokens;   // shared prefix length (0 when not shared)
    int n_history;       // history ids used (incl. the sentinel)
    float fusion_lambda; // λ and μ the results were ordered with
    float fusion_popularity;
    double retrieve_s, rerank_s;
} collm_recommend_info;

// A context sized for recommendation prompts (n_ctx = n_batch = 1024 rows;
// suffixes are packed into as many batches as that needs). pool may be NULL.
COLLM_API collm_llm_context *collm_recommend_context_create(const collm_model *m, collm_pool *pool);

// Scores items (n) for one user and history with the CoLLM model: scores (n)
// raw "Yes" logits. share_prefix as in collm_recommend_request; *prefix_tokens
// (may be NULL) receives the shared prefix length. ctx may be NULL (one is
// created for the call). Errors name the offending item / user; the error's
// field (collm_last_error_field) is the request field: "user" (NOT_FOUND),
// "history", "items", "k", "candidates" (RANGE or ARG).
COLLM_API int collm_recommend_score_items(const collm_model *m, const collm_rec_items *items, int32_t user, const int32_t *his,
                          int64_t n_his, const int32_t *cands, int n, int share_prefix, collm_llm_context *ctx,
                          float *scores, int *prefix_tokens);

// The fused score of n candidates (see above): out (n) =
// z(llm) + lambda · z(retrieval) + popularity · z(log_pop); log_pop (n) may be
// NULL (no popularity term). Weights >= 0 and finite.
COLLM_API int collm_recommend_fuse(const float *llm, const float *retrieval, const float *log_pop, int n, float lambda,
                                   float popularity, float *out);

// log(1 + train rows of the item) for items 0 .. *n_items-1 of the dataset
// the histories were built from (owned by h).
COLLM_API const float *collm_recommend_log_popularity(const collm_recommend_histories *h, int32_t *n_items);

// --- per-user prefix cache --------------------------------------------------
//
// A bounded LRU of shared prefixes' KV caches (the model's K/V rows of a
// user's prompt prefix, collm_llm_kv_export), so a second request with the same
// user and history skips the prefix forward. Entries are found by user and
// history (compared in full, not only by hash) and checked against the new
// request's prefix before use: token ids and slot rows (rows and mapped
// values, bit for bit) must agree, and only the agreeing positions are reused
// (the rest run as usual). Reused K/V are the bytes the first request
// computed, so a hit scores exactly as that request did.
//
// Memory: each entry holds 4 x collm_llm_kv_floats(prefix) bytes plus its
// tokens, slot rows and history; inserting evicts the least recently used
// entries until the total is <= max_bytes (an entry larger than max_bytes is
// not kept). Lookup is a scan of the entries (a few dozen at the usual sizes).
//
// Threading: any number of threads may use one cache at once (one mutex
// guards the entries, the LRU order and the counters; a hit copies the K/V
// into the caller's context under it, so an entry is never freed while being
// read). Each caller still brings its own collm_llm_context. Free the cache
// only when no call that uses it is running.
typedef struct collm_recommend_prefix_cache collm_recommend_prefix_cache;

typedef struct {
    int64_t hits;      // lookups that reused at least one position
    int64_t misses;    // lookups that found nothing usable
    int64_t evictions; // entries dropped to stay within max_bytes
    int64_t entries;   // entries held now
    int64_t bytes;     // bytes held now
    int64_t max_bytes;
} collm_recommend_prefix_stats;

// A cache for model m (borrowed; its K/V fit only that model) holding at most
// max_bytes (>= 1). NULL + error on bad arguments or out of memory.
COLLM_API collm_recommend_prefix_cache *collm_recommend_prefix_cache_create(const collm_model *m, int64_t max_bytes);
COLLM_API void collm_recommend_prefix_cache_free(collm_recommend_prefix_cache *c);
COLLM_API void collm_recommend_prefix_cache_stats(collm_recommend_prefix_cache *c, collm_recommend_prefix_stats *out);

// collm_recommend_score_items with the shared prefix, reusing and filling
// cache (NULL: none; then the same as collm_recommend_score_items with
// share_prefix 1). COLLM_ERR_ARG when the cache belongs to another model.
COLLM_API int collm_recommend_score_items_cached(const collm_model *m, const collm_rec_items *items, int32_t user,
                                                 const int32_t *his, int64_t n_his, const int32_t *cands, int n,
                                                 collm_llm_context *ctx, collm_recommend_prefix_cache *cache,
                                                 float *scores, int *prefix_tokens);

// Retrieve + re-rank for one request. out (k) receives the results sorted by
// the fused score (best first; ties by retrieval score, then item id); info
// may be NULL. hist may be NULL when req->history is given. ctx may be NULL.
COLLM_API int collm_recommend_for_user(const collm_model *m, const collm_retrieval_index *index, const collm_rec_items *items,
                       const collm_recommend_histories *hist, const collm_recommend_request *req, collm_llm_context *ctx,
                       collm_recommend_item *out, collm_recommend_info *info);
// The same, the re-ranking reusing and filling cache (may be NULL; unused
// when req->share_prefix is 0).
COLLM_API int collm_recommend_for_user_cached(const collm_model *m, const collm_retrieval_index *index,
                                              const collm_rec_items *items, const collm_recommend_histories *hist,
                                              const collm_recommend_request *req, collm_llm_context *ctx,
                                              collm_recommend_prefix_cache *cache, collm_recommend_item *out,
                                              collm_recommend_info *info);

// The history a request resolves to (explicit, with the sentinel rule
// applied, or the user's): malloc'd *his (caller frees), validated against
// the items table and the CF item table. Used by collm_recommend_for_user and the
// /score endpoint.
COLLM_API int collm_recommend_resolve_history(const collm_model *m, const collm_rec_items *items, const collm_recommend_histories *hist,
                              int32_t user, const int32_t *history, int n_history, int32_t **his, int64_t *n_his);

#ifdef __cplusplus
}
#endif

#endif
