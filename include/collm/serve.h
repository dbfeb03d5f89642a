// HTTP JSON service over the recommender (libmicrohttpd + cJSON).
//
// The full description, with examples: docs/api.md and docs/openapi.yaml.
//   GET  /health     → {"status":"ok","items":N,"users":N,"dim":d,"contexts":n,
//                       "busy":contexts in use,"connections":open connections,
//                       "generation":g,"reloads":r,
//                       "prefix_cache":{"entries","bytes","max_bytes","hits","misses","evictions"}
//                       (null without a cache)}
//   GET  /metrics    → Prometheus text format: requests and errors by endpoint
//                       and status, a latency histogram, contexts busy, reloads
//   POST /recommend  {"user":U,"k":10,"candidates":100} or {"history":[12,7,33],"k":..}
//                    (both user and history: the user's CF vector, that history)
//                    optional "exclude":[ids] never returned, "exclude_rated":true leaves
//                    out every item the user has a row of in the dataset
//                    → {"user":U|null,"k":..,"candidates":n,"cold_start_query":b,"fusion_lambda":λ,
//                       "items":[{"rank","item","title","llm_score","probability",
//                                 "retrieval_score","score"}...]}
//                    (ranked by "score", the fused order of collm_recommend_for_user;
//                    llm_score is the raw "Yes" logit, probability its sigmoid)
//                    A batch: {"users":[U1,U2,..],"k":..} (at most max_batch) →
//                    {"results":[one object as above per user, in order]}; a user that
//                    fails gets {"user":U,"error":..,"code":..,"status":..} in its place
//   POST /score      {"user":U,"items":[..]} (optional "history")
//                    → {"user":U,"scores":[{"item","llm_score","probability"}...]}
//
// Errors answer {"error":"one line","code":"name","field":"name"|null}. The
// status comes from the collm error code (collm/error.h), never from the text:
//   400 invalid_argument / format / out_of_range: a body that is not exactly
//       one JSON object in UTF-8 (trailing text after the value is an error),
//       a duplicate, unknown or missing field, a wrong type, a value out of
//       range, an item id outside the catalogue
//   404 not_found: an unknown user (field "user") or path
//   405 method_not_allowed (with Allow)
//   413 too_large: a body over max_body bytes
//   503 busy (with Retry-After): no inference context came free within
//       context_wait_ms
//   500 anything else.
// Every response is valid UTF-8: invalid bytes in titles (a Latin-1 items
// file), messages or echoed field names become U+FFFD.
//
// Concurrency: one thread per connection (MHD_USE_THREAD_PER_CONNECTION with
// a poll()-based listener, so descriptors above FD_SETSIZE are fine). At most
// max_connections connections are open, at most per_ip_limit from one
// address (more are closed at accept), and a connection without traffic for
// timeout_s is closed. The model, index, items and histories are shared
// read-only; inference scratch comes from a pool of n_contexts llm_contexts
// (a request waits at most context_wait_ms for one, then gets 503), so memory
// stays bounded whatever the connection count. /recommend and /score share
// one prefix cache per generation (collm/recommend.h, at most
// prefix_cache_bytes): a user's next request with the same history reuses the
// K/V of its prompt prefix, with the very scores the first request had.
//
// Reload (collm_serve_reload; `collm serve` calls it on SIGHUP): the model,
// index, items and histories are a *generation*. A request takes a reference
// to the current generation when it starts and keeps it to its end; a reload
// installs a new generation (with its own contexts) under the lock, so
// requests that started before it finish on the old one, later ones use the
// new one, and none is dropped or sees a mix. The old generation is freed
// (its retire callback called) by whichever thread drops its last reference.
//
// Access log: with opt.access_log set, one line per HTTP request:
//   2026-12-01T18:30:00Z 127.0.0.1 "POST /recommend" 200 812 12.3ms
// (UTC time, client, method and path, status, response bytes, time from the
// headers to the response), written whole under a lock.
//
// Threading: collm_serve_handle may be called from any number of threads at
// once (the HTTP threads do); collm_serve_drain and collm_serve_reload from
// any one thread while the server runs (not both at once); collm_serve_stop
// once, after the last collm_serve_handle / drain / reload call of the
// caller's own threads has returned. Locks: `lock` guards the generation
// pointer and reference counts, the context pools and the counters of
// requests and connections; `stats_lock` the /metrics counters; `log_lock`
// the log output; the prefix cache its own mutex (taken only inside the
// collm_recommend_* calls, for a lookup or an insert). No thread holds two of
// them at once, and none but the cache's is held while a request scores.
//
// Test hook: when the environment variable COLLM_SERVE_TEST_HOLD names a
// path at collm_serve_start, a scoring request keeps its context, after
// scoring, for as long as that file exists (tests use it to have a request in
// flight without relying on timing). Unset in production.
#ifndef COLLM_SERVE_H
#define COLLM_SERVE_H

#include "collm/version.h"

#include <stddef.h>
#include <stdio.h>

#include "collm/collm.h"
#include "collm/recommend.h"
#include "collm/retrieval.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    const char *host;    // IPv4 address to bind (default "127.0.0.1": loopback only)
    int port;            // 0 = any free port (see collm_serve_port)
    int n_contexts;      // concurrent inferences (default 2, at most 256)
    size_t max_body;     // bytes (default 64 KiB)
    int max_k;           // largest k / candidates / items per request (default 1000)
    int max_connections; // open connections at once (default 512)
    int per_ip_limit;    // open connections from one address (default 64; 0 = no limit)
    int timeout_s;       // close a connection idle this long (default 30)
    int context_wait_ms; // longest wait for a free context before 503 (default 1000)
    int retry_after_s;   // Retry-After of a 503 (default 1)
    int drain_timeout_s; // collm_serve_stop without a prior drain: longest wait for requests in flight (default 30)
    int max_batch;       // most users in one batch request (default 64)
    int64_t prefix_cache_bytes; // per-user prompt-prefix K/V cache (collm_recommend_prefix_cache) bound in bytes,
                                // per generation; 0 = no cache (default 64 MiB)
    FILE *access_log;    // one line per HTTP request (see above), NULL = none (default)
    // Called with owner when the model, index, items and histories given to
    // collm_serve_start are no longer used (after a reload, once the requests
    // using them ended, or in collm_serve_stop). NULL (default): the caller
    // frees them after collm_serve_stop. A failed collm_serve_start does not call it.
    void (*retire)(void *owner);
    void *owner;
} collm_serve_options;

// Fills *o with the defaults above. Always start from it: fields may be added.
COLLM_API void collm_serve_options_default(collm_serve_options *o);

typedef struct collm_serve_server collm_serve_server;

// Starts listening (threads run in the background). All pointers are
// borrowed and must outlive the server (o->host only for the call). NULL +
// error (COLLM_ERR_RANGE naming the option, COLLM_ERR_IO when the port is in use).
COLLM_API collm_serve_server *collm_serve_start(const collm_model *m, const collm_retrieval_index *index,
                                                const collm_rec_items *items, const collm_recommend_histories *hist,
                                                const collm_serve_options *o);
// The bound port (useful with port 0).
COLLM_API int collm_serve_port(const collm_serve_server *s);
// Serves every request that starts from now on with m, index, items and hist
// (a new generation, see above); requests in progress finish with the old
// one. retire(owner) (may be NULL) is called once the new generation is
// itself replaced and unused, or in collm_serve_stop. On failure (out of
// memory) nothing changes and the caller keeps ownership.
COLLM_API int collm_serve_reload(collm_serve_server *s, const collm_model *m, const collm_retrieval_index *index,
                                 const collm_rec_items *items, const collm_recommend_histories *hist,
                                 void (*retire)(void *owner), void *owner);
// The generation now served: 1 after start, + 1 per reload.
COLLM_API int collm_serve_generation(collm_serve_server *s);
// Graceful drain: closes the listening socket (new clients are refused),
// lets the requests in progress finish (their responses say Connection:
// close) and waits up to timeout_ms for them. Returns how many are still in
// flight (0 = drained); call again to wait longer.
COLLM_API int collm_serve_drain(collm_serve_server *s, int timeout_ms);
// Stops and frees everything. Without a prior collm_serve_drain it first
// drains for up to drain_timeout_s; connections still open are then closed.
COLLM_API void collm_serve_stop(collm_serve_server *s);

// Handles one request in memory (what the HTTP layer calls): *body_out is a
// malloc'd JSON text (caller frees), *status the HTTP status; *allow (may be
// NULL) receives the Allow header value for a 405. (A 503 here carries no
// Retry-After header: that is the HTTP layer's.)
COLLM_API void collm_serve_handle(collm_serve_server *s, const char *method, const char *path, const char *body,
                                  size_t n_body, char **body_out, int *status, const char **allow);

#ifdef __cplusplus
}
#endif

#endif
