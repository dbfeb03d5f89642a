// HTTP JSON service over the recommender (libmicrohttpd + cJSON).
//
//   GET  /health     → {"status":"ok","items":N,"users":N,"dim":d,"contexts":n}
//   POST /recommend  {"user":U,"k":10,"candidates":100} or {"history":[12,7,33],"k":..}
//                    (both user and history: the user's CF vector, that history)
//                    → {"user":U|null,"k":..,"candidates":n,"cold_start_query":b,
//                       "items":[{"rank","item","title","llm_score","retrieval_score"}...]}
//   POST /score      {"user":U,"items":[..]} (optional "history") → {"user":U,"scores":[{"item","llm_score"}...]}
//
// Every field is validated: a wrong type, a missing field, an out-of-range
// value or an unknown field answers 400 with {"error":"...","field":"name"};
// an unknown user 404; a body over max_body bytes 413; an unknown path 404; a
// known path with another method 405 (with Allow). Library failures are 500.
//
// Concurrency: one thread per connection (MHD_USE_THREAD_PER_CONNECTION with
// the internal polling thread). The model, index, items and histories are
// shared read-only; inference scratch comes from a pool of n_contexts
// llm_contexts guarded by a mutex + condition variable (a request waits for
// a free context), so memory stays bounded whatever the connection count.
//
// Threading: collm_serve_handle may be called from any number of threads at
// once (the HTTP threads do); collm_serve_stop once, after the last
// collm_serve_handle call of the caller's own threads has returned.
#ifndef COLLM_SERVE_H
#define COLLM_SERVE_H

#include "collm/version.h"

#include <stddef.h>

#include "collm/collm.h"
#include "collm/recommend.h"
#include "collm/retrieval.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    const char *host;     // IPv4 address to bind (default "127.0.0.1": loopback only)
    int port;             // 0 = any free port (see collm_serve_port)
    int n_contexts;       // concurrent inferences (default 2)
    size_t max_body;      // bytes (default 64 KiB)
    int max_k;            // largest k / candidates / items per request (default 1000)
} collm_serve_options;

COLLM_API void collm_serve_options_default(collm_serve_options *o);

typedef struct collm_serve_server collm_serve_server;

// Starts listening (threads run in the background). All pointers are
// borrowed and must outlive the server. NULL + error (e.g. port in use).
COLLM_API collm_serve_server *collm_serve_start(const collm_model *m, const collm_retrieval_index *index, const collm_rec_items *items,
                          const collm_recommend_histories *hist, const collm_serve_options *o);
// The bound port (useful with port 0).
COLLM_API int collm_serve_port(const collm_serve_server *s);
// Stops accepting, waits for running requests, frees everything.
COLLM_API void collm_serve_stop(collm_serve_server *s);

// Handles one request in memory (what the HTTP layer calls): *body_out is a
// malloc'd JSON text (caller frees), *status the HTTP status; *allow (may be
// NULL) receives the Allow header value for a 405.
COLLM_API void collm_serve_handle(collm_serve_server *s, const char *method, const char *path, const char *body, size_t n_body,
                  char **body_out, int *status, const char **allow);

#ifdef __cplusplus
}
#endif

#endif
