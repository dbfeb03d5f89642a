// HTTP JSON service (see include/collm/serve.h).
#include "collm/serve.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <time.h>
#include <unistd.h>

#include "collm/error.h"

// One generation of what requests are scored with: the model, index, items
// and histories of collm_serve_start or of a collm_serve_reload, with its own
// inference contexts (they are sized for its model). A request takes a
// reference to the current generation for its whole life, so a reload never
// pulls anything from under it; a generation that is no longer current is
// freed (contexts) and handed back (retire) when its last request ends.
typedef struct serve_gen {
    const collm_model *model;
    const collm_retrieval_index *index;
    const collm_rec_items *items;
    const collm_recommend_histories *hist;
    collm_llm_context **ctx; // (n_contexts)
    collm_recommend_prefix_cache *prefix_cache; // per-user prompt prefixes of this model; NULL: none (thread-safe itself)
    int *free_ctx;           // free_ctx[i] = 1 when ctx[i] is idle (guarded by the server's lock)
    int refs;                // requests using it, + 1 while it is current (guarded by the server's lock)
    int number;              // 1 = collm_serve_start's, then + 1 per reload
    void (*retire)(void *owner);
    void *owner;
} serve_gen;

// Request statistics for GET /metrics, by endpoint.
enum { EP_RECOMMEND, EP_SCORE, EP_HEALTH, EP_METRICS, EP_OTHER, N_EP };
static const char *const ep_path[N_EP] = {"/recommend", "/score", "/health", "/metrics", "other"};
static const int stat_status[] = {200, 400, 404, 405, 413, 500, 503};
#define N_STATUS ((int)(sizeof stat_status / sizeof stat_status[0]))
// latency histogram upper bounds in seconds (+Inf is the count)
static const double stat_bucket[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
#define N_BUCKET ((int)(sizeof stat_bucket / sizeof stat_bucket[0]))

typedef struct {
    long requests[N_EP][N_STATUS + 1]; // [.][N_STATUS]: any other status
    long bucket[N_EP][N_BUCKET];       // requests at or under each bound (cumulative when printed)
    long count[N_EP];
    double seconds[N_EP];
} serve_stats;

struct collm_serve_server {
    collm_serve_options opt;
    struct MHD_Daemon *daemon;
    int port;
    char *hold_path; // test hook COLLM_SERVE_TEST_HOLD (see serve.h), NULL when unset
    // Everything below is guarded by `lock`.
    pthread_mutex_t lock;
    pthread_cond_t ctx_freed;    // a context went back to a pool, or stopping
    pthread_cond_t request_done; // in_flight went down (drain waits on it)
    serve_gen *gen;              // the current generation
    int n_busy;                  // contexts in use, over all generations
    int in_flight;               // requests between their first callback and their completion
    int n_connections;           // open connections (MHD connection notifications)
    long reloads;                // successful collm_serve_reload calls
    int draining, drain_called, stopping;
    // statistics (GET /metrics), guarded by stats_lock
    pthread_mutex_t stats_lock;
    serve_stats stats;
    // MHD's own log lines (rejected connections...), at most LOG_PER_SECOND a
    // second, and the access log; guarded by log_lock
    pthread_mutex_t log_lock;
    time_t log_second;
    int log_count;
    long log_suppressed;
    int started; // MHD's messages before the daemon runs are dropped: a failed start is reported as one error
};

#define LOG_PER_SECOND 5

void collm_serve_options_default(collm_serve_options *o) {
    memset(o, 0, sizeof *o);
    o->host = "127.0.0.1";
    o->port = 8080;
    o->n_contexts = 2;
    o->max_body = 64 * 1024;
    o->max_k = 1000;
    o->max_connections = 512;
    o->per_ip_limit = 64;
    o->timeout_s = 30;
    o->context_wait_ms = 1000;
    o->retry_after_s = 1;
    o->drain_timeout_s = 30;
    o->max_batch = 64;
    o->prefix_cache_bytes = 64LL << 20;
}

// A CLOCK_MONOTONIC deadline `ms` from now (the condition variables use that clock).
static struct timespec deadline_ms(long ms) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    t.tv_sec += ms / 1000;
    t.tv_nsec += (ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

// Frees a generation's contexts and hands its parts back (retire). Called
// only when no request holds it and it is not current.
static void gen_free(serve_gen *g, int n_contexts) {
    if (!g) return;
    for (int i = 0; g->ctx && i < n_contexts; i++) collm_llm_context_free(g->ctx[i]);
    free(g->ctx);
    free(g->free_ctx);
    collm_recommend_prefix_cache_free(g->prefix_cache);
    if (g->retire) g->retire(g->owner);
    free(g);
}

// A generation with fresh contexts and an empty prefix cache (cache_bytes,
// 0 = none) for m (refs 1: current once installed).
static serve_gen *gen_new(const collm_model *m, const collm_retrieval_index *index, const collm_rec_items *items,
                          const collm_recommend_histories *hist, int n_contexts, int64_t cache_bytes) {
    serve_gen *g = collm_calloc(1, sizeof *g);
    if (!g) return NULL;
    *g = (serve_gen){m, index, items, hist, NULL, NULL, NULL, 1, 1, NULL, NULL};
    if (cache_bytes > 0 && !(g->prefix_cache = collm_recommend_prefix_cache_create(m, cache_bytes))) {
        gen_free(g, n_contexts);
        return NULL;
    }
    g->ctx = collm_calloc((size_t)n_contexts, sizeof *g->ctx);
    g->free_ctx = collm_calloc((size_t)n_contexts, sizeof *g->free_ctx);
    if (!g->ctx || !g->free_ctx) {
        gen_free(g, n_contexts);
        return NULL;
    }
    for (int i = 0; i < n_contexts; i++) {
        // NULL pool: a request's attention runs on its own thread (pools are not shared between requests)
        if (!(g->ctx[i] = collm_recommend_context_create(m, NULL))) {
            gen_free(g, n_contexts);
            return NULL;
        }
        g->free_ctx[i] = 1;
    }
    return g;
}

// The current generation, held until gen_release.
static serve_gen *gen_acquire(collm_serve_server *s) {
    pthread_mutex_lock(&s->lock);
    serve_gen *g = s->gen;
    g->refs++;
    pthread_mutex_unlock(&s->lock);
    return g;
}

static void gen_release(collm_serve_server *s, serve_gen *g) {
    pthread_mutex_lock(&s->lock);
    int dead = --g->refs == 0; // only a retired generation reaches 0 (the current one holds 1)
    pthread_mutex_unlock(&s->lock);
    if (dead) gen_free(g, s->opt.n_contexts);
}

// Takes an idle context of g, waiting at most opt.context_wait_ms. Returns
// its index, or -1 when none came free in time (or the server is stopping).
static int acquire_ctx(collm_serve_server *s, serve_gen *g) {
    struct timespec until = deadline_ms(s->opt.context_wait_ms);
    pthread_mutex_lock(&s->lock);
    int got = -1, timed_out = 0;
    for (;;) {
        for (int i = 0; i < s->opt.n_contexts && got < 0; i++)
            if (g->free_ctx[i]) got = i;
        if (got >= 0 || timed_out || s->stopping) break;
        // one more look after a timeout: a context may have come free at the deadline
        timed_out = pthread_cond_timedwait(&s->ctx_freed, &s->lock, &until) == ETIMEDOUT;
    }
    if (got >= 0) {
        g->free_ctx[got] = 0;
        s->n_busy++;
    }
    pthread_mutex_unlock(&s->lock);
    return got;
}

static void release_ctx(collm_serve_server *s, serve_gen *g, int i) {
    pthread_mutex_lock(&s->lock);
    g->free_ctx[i] = 1;
    s->n_busy--;
    pthread_cond_broadcast(&s->ctx_freed); // waiters may wait for different generations
    pthread_mutex_unlock(&s->lock);
}

static int is_stopping(collm_serve_server *s) {
    pthread_mutex_lock(&s->lock);
    int v = s->stopping;
    pthread_mutex_unlock(&s->lock);
    return v;
}

// Test hook: while the file named by COLLM_SERVE_TEST_HOLD exists, a scoring
// request keeps its context (tests make "a request in flight" without timing).
static void test_hold(collm_serve_server *s) {
    if (!s->hold_path) return;
    while (access(s->hold_path, F_OK) == 0 && !is_stopping(s)) usleep(10 * 1000);
}

// ---------------------------------------------------------------------------
// Replies and JSON helpers

typedef struct {
    char *body;        // malloc'd JSON text (or the /metrics text)
    int status;        // HTTP status
    const char *allow; // Allow header (405)
    int retry_after;   // Retry-After header in seconds (503), 0 = none
    const char *content_type; // NULL = application/json
    int close;                // 1: "Connection: close" (the connection's next bytes are not a request)
} reply;

// Error code → HTTP status (the message text is never inspected).
static int http_status(int code) {
    switch (code) {
    case COLLM_ERR_ARG:
    case COLLM_ERR_FORMAT:
    case COLLM_ERR_RANGE: return 400;
    case COLLM_ERR_NOT_FOUND: return 404;
    case COLLM_ERR_TOO_LARGE: return 413;
    case COLLM_ERR_BUSY: return 503;
    default: return 500;
    }
}

// Error code → the "code" member of an error body (stable, for clients to branch on).
static const char *code_name(int code) {
    switch (code) {
    case COLLM_ERR_ARG: return "invalid_argument";
    case COLLM_ERR_FORMAT: return "format";
    case COLLM_ERR_RANGE: return "out_of_range";
    case COLLM_ERR_NOT_FOUND: return "not_found";
    case COLLM_ERR_TOO_LARGE: return "too_large";
    case COLLM_ERR_BUSY: return "busy";
    case COLLM_ERR_NOMEM: return "out_of_memory";
    case COLLM_ERR_IO: return "io";
    case COLLM_ERR_UNSUPPORTED: return "unsupported";
    default: return "internal";
    }
}

// Adds name: text as valid UTF-8 (bytes that are not become U+FFFD): item
// titles come from a data file, field names from the request.
static void add_text(cJSON *o, const char *name, const char *text) {
    size_t n = strlen(text);
    if (collm_utf8_valid(text, n)) {
        cJSON_AddStringToObject(o, name, text);
        return;
    }
    char *clean = malloc(3 * n + 1);
    if (!clean) return;
    collm_utf8_sanitize(clean, 3 * n + 1, text, n);
    cJSON_AddStringToObject(o, name, clean);
    free(clean);
}

static char *print_and_free(cJSON *o) {
    char *text = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return text;
}

// An error reply {"error":message,"code":name,"field":field|null}. The
// message is cut at 511 bytes between characters; the echoed field at 127.
static void reply_error(reply *r, int status, const char *name, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void reply_error(reply *r, int status, const char *name, const char *field, const char *fmt, ...) {
    char raw[1024], msg[512], fld[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    // each input byte gives at least one output byte, so the 511-byte cap is
    // reached before a cut at the end of raw could show
    collm_utf8_sanitize(msg, sizeof msg, raw, strlen(raw));
    if (field) collm_utf8_sanitize(fld, sizeof fld, field, strlen(field));
    cJSON *o = cJSON_CreateObject();
    if (o) {
        cJSON_AddStringToObject(o, "error", msg);
        cJSON_AddStringToObject(o, "code", name);
        if (field) cJSON_AddStringToObject(o, "field", fld);
        else cJSON_AddNullToObject(o, "field");
    }
    free(r->body);
    r->body = print_and_free(o);
    r->status = status;
}

// An error reply for a collm error code.
#define fail(r, code, field, ...) reply_error((r), http_status(code), code_name(code), (field), __VA_ARGS__)

// A library call failed: its code gives the status, its field the "field".
static void library_fail(int rc, reply *r) {
    const char *msg = collm_last_error();
    fail(r, rc, collm_last_error_field(), "%s", msg[0] ? msg : collm_strerror(rc));
}

// Reads an integer field in [lo, hi]. 1 found, 0 absent, -1 error (replied).
static int get_int_field(const cJSON *root, const char *name, long lo, long hi, long *v, reply *r) {
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(root, name);
    if (!f) return 0;
    if (!cJSON_IsNumber(f) || f->valuedouble != floor(f->valuedouble) || !isfinite(f->valuedouble)) {
        fail(r, COLLM_ERR_ARG, name, "%s: expected an integer", name);
        return -1;
    }
    if (f->valuedouble < (double)lo || f->valuedouble > (double)hi) {
        fail(r, COLLM_ERR_RANGE, name, "%s: %.0f is out of range [%ld, %ld]", name, f->valuedouble, lo, hi);
        return -1;
    }
    *v = (long)f->valuedouble;
    return 1;
}

// Reads an array of integers >= 0 (at most max_n). 1 found, 0 absent, -1 error.
static int get_id_array(const cJSON *root, const char *name, int max_n, int32_t **ids, int *n, reply *r) {
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(root, name);
    if (!f) return 0;
    if (!cJSON_IsArray(f)) {
        fail(r, COLLM_ERR_ARG, name, "%s: expected an array of item ids", name);
        return -1;
    }
    int count = cJSON_GetArraySize(f);
    if (count < 1 || count > max_n) {
        fail(r, COLLM_ERR_RANGE, name, "%s: needs 1 to %d ids (got %d)", name, max_n, count);
        return -1;
    }
    *ids = malloc((size_t)count * sizeof(int32_t));
    if (!*ids) {
        fail(r, COLLM_ERR_NOMEM, NULL, "out of memory");
        return -1;
    }
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, f) {
        if (!cJSON_IsNumber(e) || e->valuedouble != floor(e->valuedouble) || e->valuedouble < 0 ||
            e->valuedouble > 2147483647.0) {
            fail(r, COLLM_ERR_ARG, name, "%s[%d]: expected an item id (integer >= 0)", name, i);
            free(*ids);
            *ids = NULL;
            return -1;
        }
        (*ids)[i++] = (int32_t)e->valuedouble;
    }
    *n = count;
    return 1;
}

// Rejects members outside `allowed` (NULL-terminated, at most 8) and a
// member given twice (cJSON keeps both; which one wins would be arbitrary).
static int check_fields(const cJSON *root, const char *const *allowed, reply *r) {
    int seen[8] = {0};
    const cJSON *f;
    cJSON_ArrayForEach(f, root) {
        const char *name = f->string ? f->string : "";
        int k = -1;
        for (int i = 0; allowed[i] && k < 0; i++)
            if (strcmp(name, allowed[i]) == 0) k = i;
        if (k < 0) {
            fail(r, COLLM_ERR_ARG, name, "unknown field \"%s\"", name);
            return -1;
        }
        if (seen[k]++) {
            fail(r, COLLM_ERR_ARG, name, "duplicate field \"%s\"", name);
            return -1;
        }
    }
    return 0;
}

// The body as exactly one JSON object: valid UTF-8 (RFC 8259), nothing but
// whitespace after the value. NULL + reply otherwise.
static cJSON *parse_body(const char *body, size_t n, reply *r) {
    if (!body) body = "";
    if (!collm_utf8_valid(body, n)) {
        fail(r, COLLM_ERR_FORMAT, NULL, "body is not valid UTF-8");
        return NULL;
    }
    // a NUL inside a JSON string would end its C string early ("user\u0000"
    // read as "user"); no field takes a string, so none is wanted anywhere
    for (size_t k = 0; k + 6 <= n; k++)
        if (body[k] == '\\' && memcmp(body + k + 1, "u0000", 5) == 0) {
            fail(r, COLLM_ERR_FORMAT, NULL, "body holds a NUL character (\\u0000 at byte %zu)", k);
            return NULL;
        }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(body, n, &end, 0);
    size_t at = end && end >= body ? (size_t)(end - body) : 0;
    if (!root) {
        fail(r, COLLM_ERR_FORMAT, NULL, "body is not valid JSON (error at byte %zu)", at);
        return NULL;
    }
    while (at < n && (body[at] == ' ' || body[at] == '\t' || body[at] == '\n' || body[at] == '\r')) at++;
    if (at < n) {
        cJSON_Delete(root);
        fail(r, COLLM_ERR_FORMAT, NULL, "body is not valid JSON: unexpected text after the value at byte %zu", at);
        return NULL;
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        fail(r, COLLM_ERR_FORMAT, NULL, "body must be a JSON object");
        return NULL;
    }
    return root;
}

static void reply_busy(collm_serve_server *s, reply *r) {
    fail(r, COLLM_ERR_BUSY, NULL, "all %d inference contexts are busy; retry after %d s", s->opt.n_contexts,
         s->opt.retry_after_s);
    r->retry_after = s->opt.retry_after_s;
}

// ---------------------------------------------------------------------------
// endpoints

// Reads a boolean field. 1 found, 0 absent, -1 error (replied).
static int get_bool_field(const cJSON *root, const char *name, int *v, reply *r) {
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(root, name);
    if (!f) return 0;
    if (!cJSON_IsBool(f)) {
        fail(r, COLLM_ERR_ARG, name, "%s: expected true or false", name);
        return -1;
    }
    *v = cJSON_IsTrue(f);
    return 1;
}

// P("Yes") as the model was trained to give it: the sigmoid of the logit (BCE on the logit).
static double probability(double logit) {
    return logit >= 0 ? 1.0 / (1.0 + exp(-logit)) : exp(logit) / (1.0 + exp(logit));
}

#define EXCLUDE_MAX 100000 // ids in one "exclude" list

// One user's top-k as a JSON object.
static cJSON *recommend_json(const serve_gen *g, int has_user, long user, long k, const collm_recommend_item *res,
                             const collm_recommend_info *info) {
    cJSON *o = cJSON_CreateObject();
    if (has_user) cJSON_AddNumberToObject(o, "user", (double)user);
    else cJSON_AddNullToObject(o, "user");
    cJSON_AddNumberToObject(o, "k", (double)k);
    cJSON_AddNumberToObject(o, "candidates", info->n_candidates);
    cJSON_AddBoolToObject(o, "cold_start_query", info->used_mean_query);
    cJSON_AddNumberToObject(o, "rerank_ms", info->rerank_s * 1e3);
    cJSON_AddNumberToObject(o, "fusion_lambda", info->fusion_lambda);
    cJSON *arr = cJSON_AddArrayToObject(o, "items");
    for (int i = 0; i < info->n_results; i++) {
        cJSON *it = cJSON_CreateObject();
        cJSON_AddNumberToObject(it, "rank", i + 1);
        cJSON_AddNumberToObject(it, "item", res[i].item);
        add_text(it, "title", g->items->title[res[i].item]);
        cJSON_AddNumberToObject(it, "llm_score", res[i].llm_score); // the raw "Yes" logit
        cJSON_AddNumberToObject(it, "probability", probability(res[i].llm_score));
        cJSON_AddNumberToObject(it, "retrieval_score", res[i].retrieval_score);
        cJSON_AddNumberToObject(it, "score", res[i].score); // the fused order's key
        cJSON_AddItemToArray(arr, it);
    }
    return o;
}

// The request's fields are copied out of root and root is freed before the
// wait for a context: a parsed tree is tens of times its body, and a queue of
// waiting requests must not hold them (handle_score too).
static void handle_recommend(collm_serve_server *s, serve_gen *g, cJSON *root, reply *r) {
    static const char *const allowed[] = {"user", "users", "history", "k", "candidates", "exclude", "exclude_rated",
                                          NULL};
    long user = -1, k = 10, cand = 100;
    int32_t *history = NULL, *exclude = NULL, *users = NULL;
    int n_history = 0, n_exclude = 0, n_users = 0, exclude_rated = 0;
    int has_user = 0, has_history = 0, has_users = 0;
    collm_recommend_item *res = NULL;
    if (check_fields(root, allowed, r) ||
        (has_user = get_int_field(root, "user", 0, 2147483647L, &user, r)) < 0 ||
        get_int_field(root, "k", 1, s->opt.max_k, &k, r) < 0 ||
        get_int_field(root, "candidates", 1, s->opt.max_k, &cand, r) < 0 ||
        (has_history = get_id_array(root, "history", s->opt.max_k, &history, &n_history, r)) < 0 ||
        get_id_array(root, "exclude", EXCLUDE_MAX, &exclude, &n_exclude, r) < 0 ||
        (has_users = get_id_array(root, "users", s->opt.max_batch, &users, &n_users, r)) < 0 ||
        get_bool_field(root, "exclude_rated", &exclude_rated, r) < 0)
        goto done;
    cJSON_Delete(root);
    root = NULL;
    if (has_users && (has_user || has_history)) {
        fail(r, COLLM_ERR_ARG, "users", "users: a batch takes neither \"user\" nor \"history\"");
        goto done;
    }
    if (!has_user && !has_history && !has_users) {
        fail(r, COLLM_ERR_ARG, "user", "user: missing (give \"user\", \"users\" or \"history\")");
        goto done;
    }
    if (k > cand) {
        fail(r, COLLM_ERR_RANGE, "k", "k: %ld exceeds candidates (%ld)", k, cand);
        goto done;
    }
    collm_recommend_request req;
    collm_recommend_request_default(&req);
    req.user = (int32_t)user;
    req.history = history;
    req.n_history = n_history;
    req.k = (int)k;
    req.n_candidates = (int)cand;
    req.exclude = exclude;
    req.n_exclude = n_exclude;
    req.exclude_rated = exclude_rated;
    collm_recommend_info info;
    res = malloc((size_t)k * sizeof *res);
    int c = res ? acquire_ctx(s, g) : -1;
    if (!res) {
        fail(r, COLLM_ERR_NOMEM, NULL, "out of memory");
    } else if (c < 0) {
        reply_busy(s, r);
    } else if (!has_users) {
        int rc = collm_recommend_for_user_cached(g->model, g->index, g->items, g->hist, &req, g->ctx[c],
                                                 g->prefix_cache, res, &info);
        test_hold(s);
        release_ctx(s, g, c);
        if (rc != COLLM_OK) library_fail(rc, r);
        else r->body = print_and_free(recommend_json(g, has_user, user, k, res, &info)), r->status = 200;
    } else {
        // a batch: one context for all of it, one result (or error object) per user, in order
        cJSON *o = cJSON_CreateObject();
        cJSON *arr = cJSON_AddArrayToObject(o, "results");
        for (int i = 0; i < n_users; i++) {
            req.user = users[i];
            int rc = collm_recommend_for_user_cached(g->model, g->index, g->items, g->hist, &req, g->ctx[c],
                                                     g->prefix_cache, res, &info);
            if (rc == COLLM_OK) {
                cJSON_AddItemToArray(arr, recommend_json(g, 1, users[i], k, res, &info));
            } else {
                cJSON *e = cJSON_CreateObject();
                cJSON_AddNumberToObject(e, "user", users[i]);
                add_text(e, "error", collm_last_error()[0] ? collm_last_error() : collm_strerror(rc));
                cJSON_AddStringToObject(e, "code", code_name(rc));
                cJSON_AddNumberToObject(e, "status", http_status(rc));
                cJSON_AddItemToArray(arr, e);
            }
        }
        test_hold(s);
        release_ctx(s, g, c);
        r->body = print_and_free(o);
        r->status = 200;
    }
done:
    cJSON_Delete(root);
    free(res);
    free(history);
    free(exclude);
    free(users);
}

static void handle_score(collm_serve_server *s, serve_gen *g, cJSON *root, reply *r) {
    static const char *const allowed[] = {"user", "items", "history", NULL};
    long user = -1;
    int32_t *items = NULL, *history = NULL, *his = NULL;
    int n_items = 0, n_history = 0, has_user = 0, has_items = 0, has_history = 0;
    const int bad = check_fields(root, allowed, r) ||
                    (has_user = get_int_field(root, "user", 0, 2147483647L, &user, r)) < 0 ||
                    (has_items = get_id_array(root, "items", s->opt.max_k, &items, &n_items, r)) < 0 ||
                    (has_history = get_id_array(root, "history", s->opt.max_k, &history, &n_history, r)) < 0;
    cJSON_Delete(root);
    if (bad) {
        free(items);
        free(history);
        return;
    }
    if (!has_items) {
        free(history);
        fail(r, COLLM_ERR_ARG, "items", "items: missing (an array of item ids to score)");
        return;
    }
    if (!has_user && !has_history) {
        free(items);
        fail(r, COLLM_ERR_ARG, "user", "user: missing (give \"user\" or \"history\")");
        return;
    }
    int64_t n_his = 0;
    float *scores = malloc((size_t)n_items * sizeof(float));
    int rc = scores ? collm_recommend_resolve_history(g->model, g->items, g->hist, (int32_t)user, history, n_history,
                                                      &his, &n_his)
                    : collm_error(COLLM_ERR_NOMEM, "out of memory");
    int busy = 0;
    if (rc == COLLM_OK) {
        int c = acquire_ctx(s, g);
        if (c < 0) {
            busy = 1;
        } else {
            rc = collm_recommend_score_items_cached(g->model, g->items, (int32_t)user, his, n_his, items, n_items,
                                                    g->ctx[c], g->prefix_cache, scores, NULL);
            test_hold(s);
            release_ctx(s, g, c);
        }
    }
    // the score eval ranks by: the LLM logit plus the checkpoint's fitted fusion
    float *fused = !busy && rc == COLLM_OK ? malloc((size_t)n_items * sizeof(float)) : NULL;
    if (!busy && rc == COLLM_OK)
        rc = fused ? collm_score_fuse_items(g->model, (int32_t)user, his, n_his, items, n_items, scores, fused)
                   : collm_error(COLLM_ERR_NOMEM, "out of memory");
    if (busy) {
        reply_busy(s, r);
    } else if (rc != COLLM_OK) {
        library_fail(rc, r);
    } else {
        cJSON *o = cJSON_CreateObject();
        if (has_user) cJSON_AddNumberToObject(o, "user", (double)user);
        else cJSON_AddNullToObject(o, "user");
        cJSON *arr = cJSON_AddArrayToObject(o, "scores");
        for (int i = 0; i < n_items; i++) {
            cJSON *it = cJSON_CreateObject();
            cJSON_AddNumberToObject(it, "item", items[i]);
            cJSON_AddNumberToObject(it, "llm_score", scores[i]); // the raw "Yes" logit
            cJSON_AddNumberToObject(it, "probability", probability(scores[i]));
            cJSON_AddNumberToObject(it, "score", fused[i]);
            cJSON_AddItemToArray(arr, it);
        }
        r->body = print_and_free(o);
        r->status = 200;
    }
    free(fused);
    free(scores);
    free(items);
    free(history);
    free(his);
}

static void handle_health(collm_serve_server *s, serve_gen *g, reply *r) {
    int32_t n_items = 0, n_users = 0;
    int d = 0;
    collm_cf_items(g->model, &n_items, &d);
    collm_cf_users(g->model, &n_users, &d);
    pthread_mutex_lock(&s->lock);
    int busy = s->n_busy, conns = s->n_connections, draining = s->draining;
    long reloads = s->reloads;
    pthread_mutex_unlock(&s->lock);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", draining ? "draining" : "ok");
    cJSON_AddNumberToObject(o, "items", n_items);
    cJSON_AddNumberToObject(o, "users", n_users);
    cJSON_AddNumberToObject(o, "dim", d);
    cJSON_AddNumberToObject(o, "contexts", s->opt.n_contexts);
    cJSON_AddNumberToObject(o, "busy", busy);
    cJSON_AddNumberToObject(o, "connections", conns);
    cJSON_AddNumberToObject(o, "generation", g->number);
    cJSON_AddNumberToObject(o, "reloads", (double)reloads);
    if (g->prefix_cache) {
        collm_recommend_prefix_stats st;
        collm_recommend_prefix_cache_stats(g->prefix_cache, &st);
        cJSON *pc = cJSON_AddObjectToObject(o, "prefix_cache");
        cJSON_AddNumberToObject(pc, "entries", (double)st.entries);
        cJSON_AddNumberToObject(pc, "bytes", (double)st.bytes);
        cJSON_AddNumberToObject(pc, "max_bytes", (double)st.max_bytes);
        cJSON_AddNumberToObject(pc, "hits", (double)st.hits);
        cJSON_AddNumberToObject(pc, "misses", (double)st.misses);
        cJSON_AddNumberToObject(pc, "evictions", (double)st.evictions);
    } else {
        cJSON_AddNullToObject(o, "prefix_cache");
    }
    r->body = print_and_free(o);
    r->status = 200;
}

// Growable text for /metrics.
typedef struct {
    char *p;
    size_t n, cap;
    int failed;
} text_buf;

static void tb_printf(text_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tb_printf(text_buf *b, const char *fmt, ...) {
    if (b->failed) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = 1;
            return;
        }
        if (b->p && b->n + (size_t)n < b->cap) {
            b->n += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap <= b->n + (size_t)n) cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q) {
            b->failed = 1;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
}

// GET /metrics: Prometheus text exposition format 0.0.4.
static void handle_metrics(collm_serve_server *s, serve_gen *g, reply *r) {
    serve_stats st;
    pthread_mutex_lock(&s->stats_lock);
    st = s->stats;
    pthread_mutex_unlock(&s->stats_lock);
    pthread_mutex_lock(&s->lock);
    int busy = s->n_busy, conns = s->n_connections, in_flight = s->in_flight;
    long reloads = s->reloads;
    pthread_mutex_unlock(&s->lock);
    text_buf b = {0};
    tb_printf(&b, "# HELP collm_requests_total HTTP requests answered, by endpoint and status.\n"
                  "# TYPE collm_requests_total counter\n");
    for (int e = 0; e < N_EP; e++)
        for (int k = 0; k <= N_STATUS; k++)
            if (st.requests[e][k] || (k == 0 && e != EP_OTHER)) {
                if (k < N_STATUS)
                    tb_printf(&b, "collm_requests_total{path=\"%s\",status=\"%d\"} %ld\n", ep_path[e], stat_status[k],
                              st.requests[e][k]);
                else
                    tb_printf(&b, "collm_requests_total{path=\"%s\",status=\"other\"} %ld\n", ep_path[e],
                              st.requests[e][k]);
            }
    tb_printf(&b, "# HELP collm_errors_total HTTP requests answered with a status >= 400, by endpoint.\n"
                  "# TYPE collm_errors_total counter\n");
    for (int e = 0; e < N_EP; e++) {
        long n = st.requests[e][N_STATUS];
        for (int k = 0; k < N_STATUS; k++)
            if (stat_status[k] >= 400) n += st.requests[e][k];
        tb_printf(&b, "collm_errors_total{path=\"%s\"} %ld\n", ep_path[e], n);
    }
    tb_printf(&b, "# HELP collm_request_duration_seconds Time from a request's headers to its response, by endpoint.\n"
                  "# TYPE collm_request_duration_seconds histogram\n");
    for (int e = 0; e < N_EP; e++) {
        long cum = 0;
        for (int k = 0; k < N_BUCKET; k++) {
            cum += st.bucket[e][k];
            tb_printf(&b, "collm_request_duration_seconds_bucket{path=\"%s\",le=\"%g\"} %ld\n", ep_path[e],
                      stat_bucket[k], cum);
        }
        tb_printf(&b, "collm_request_duration_seconds_bucket{path=\"%s\",le=\"+Inf\"} %ld\n", ep_path[e], st.count[e]);
        tb_printf(&b, "collm_request_duration_seconds_sum{path=\"%s\"} %.6f\n", ep_path[e], st.seconds[e]);
        tb_printf(&b, "collm_request_duration_seconds_count{path=\"%s\"} %ld\n", ep_path[e], st.count[e]);
    }
    tb_printf(&b,
              "# HELP collm_contexts_busy Inference contexts in use.\n# TYPE collm_contexts_busy gauge\n"
              "collm_contexts_busy %d\n"
              "# HELP collm_contexts Inference contexts per generation.\n# TYPE collm_contexts gauge\n"
              "collm_contexts %d\n"
              "# HELP collm_requests_in_flight Requests received and not yet completed.\n"
              "# TYPE collm_requests_in_flight gauge\ncollm_requests_in_flight %d\n"
              "# HELP collm_connections_open Open HTTP connections.\n# TYPE collm_connections_open gauge\n"
              "collm_connections_open %d\n"
              "# HELP collm_reloads_total Successful reloads of checkpoint and index (SIGHUP).\n"
              "# TYPE collm_reloads_total counter\ncollm_reloads_total %ld\n"
              "# HELP collm_generation The generation requests are now served with (1 + reloads).\n"
              "# TYPE collm_generation gauge\ncollm_generation %d\n",
              busy, s->opt.n_contexts, in_flight, conns, reloads, g->number);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
    // what the process's requests hold: a queue of waiting requests must not
    // hold their parsed bodies (handle_recommend), and this shows it
    const struct mallinfo2 mi = mallinfo2();
    tb_printf(&b, "# HELP collm_heap_bytes Heap bytes allocated and not yet freed (glibc's mallinfo2).\n"
                  "# TYPE collm_heap_bytes gauge\ncollm_heap_bytes %zu\n",
              mi.uordblks + mi.hblkhd);
#endif
    if (b.failed) {
        free(b.p);
        fail(r, COLLM_ERR_NOMEM, NULL, "out of memory");
        return;
    }
    r->body = b.p;
    r->status = 200;
    r->content_type = "text/plain; version=0.0.4; charset=utf-8";
}

static int endpoint_of(const char *path) {
    for (int e = 0; e < EP_OTHER; e++)
        if (strcmp(path, ep_path[e]) == 0) return e;
    return EP_OTHER;
}

static void handle(collm_serve_server *s, const char *method, const char *path, const char *body, size_t n_body,
                   reply *r) {
    // (HEAD: GET's answer, whose body libmicrohttpd leaves out: a load balancer's probe)
    int is_get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0, is_post = strcmp(method, "POST") == 0;
    int ep = endpoint_of(path);
    if (ep == EP_HEALTH || ep == EP_METRICS) {
        if (!is_get) {
            r->allow = "GET, HEAD";
            reply_error(r, 405, "method_not_allowed", NULL, "method %s not allowed on %s (use GET)", method, path);
            return;
        }
        serve_gen *g = gen_acquire(s);
        if (ep == EP_HEALTH) handle_health(s, g, r);
        else handle_metrics(s, g, r);
        gen_release(s, g);
        return;
    }
    if (ep == EP_OTHER) {
        fail(r, COLLM_ERR_NOT_FOUND, NULL,
             "no such endpoint %s (GET /health, GET /metrics, POST /recommend, POST /score)", path);
        return;
    }
    if (!is_post) {
        r->allow = "POST";
        reply_error(r, 405, "method_not_allowed", NULL, "method %s not allowed on %s (use POST)", method, path);
        return;
    }
    cJSON *root = parse_body(body, n_body, r);
    if (!root) return;
    serve_gen *g = gen_acquire(s); // held to the end: a reload cannot free what this request reads
    if (ep == EP_RECOMMEND) handle_recommend(s, g, root, r); // (each frees root)
    else handle_score(s, g, root, r);
    gen_release(s, g);
}

void collm_serve_handle(collm_serve_server *s, const char *method, const char *path, const char *body, size_t n_body,
                        char **out, int *status, const char **allow) {
    reply r = {NULL, 500, NULL, 0, NULL, 0};
    handle(s, method, path, body, n_body, &r);
    if (!r.body) fail(&r, COLLM_ERR_NOMEM, NULL, "out of memory");
    *out = r.body;
    *status = r.status;
    if (allow) *allow = r.allow;
}

// ---------------------------------------------------------------------------
// HTTP layer

typedef struct {
    char *data;
    size_t n, cap;
    int too_large;
    struct timespec t0; // the request's headers arrived
} upload;

static double seconds_since(const struct timespec *t0) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + 1e-9 * (double)(t.tv_nsec - t0->tv_nsec);
}

static void record_request(collm_serve_server *s, int ep, int status, double secs) {
    int k = 0;
    while (k < N_STATUS && stat_status[k] != status) k++;
    int bkt = 0;
    while (bkt < N_BUCKET && secs > stat_bucket[bkt]) bkt++;
    pthread_mutex_lock(&s->stats_lock);
    s->stats.requests[ep][k]++;
    if (bkt < N_BUCKET) s->stats.bucket[ep][bkt]++;
    s->stats.count[ep]++;
    s->stats.seconds[ep] += secs;
    pthread_mutex_unlock(&s->stats_lock);
}

// One access-log line: time (UTC), client address, method, path (bytes
// outside printable ASCII, '"' and '\' as \xHH), status, response bytes,
// milliseconds.
static void access_log(collm_serve_server *s, struct MHD_Connection *conn, const char *method, const char *url,
                       int status, size_t bytes, double secs) {
    if (!s->opt.access_log) return;
    char addr[INET_ADDRSTRLEN] = "-", path[256], when[32];
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)ci->client_addr)->sin_addr, addr, sizeof addr);
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)(url ? url : ""); *p && o + 5 < sizeof path; p++) {
        if (*p > 0x20 && *p < 0x7f && *p != '"' && *p != '\\') path[o++] = (char)*p;
        else o += (size_t)snprintf(path + o, sizeof path - o, "\\x%02X", *p);
    }
    path[o] = '\0';
    char meth[16];
    snprintf(meth, sizeof meth, "%s", method ? method : "-");
    for (char *p = meth; *p; p++)
        if (*p <= 0x20 || *p >= 0x7f || *p == '"') *p = '?';
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    pthread_mutex_lock(&s->log_lock);
    fprintf(s->opt.access_log, "%s %s \"%s %s\" %d %zu %.1fms\n", when, addr, meth, path, status, bytes, secs * 1e3);
    fflush(s->opt.access_log);
    pthread_mutex_unlock(&s->log_lock);
}

static enum MHD_Result send_reply(collm_serve_server *s, struct MHD_Connection *conn, reply *r, const char *method,
                                  const char *url, const upload *u) {
    static const char nomem[] = "{\"error\":\"out of memory\",\"code\":\"out_of_memory\",\"field\":null}";
    const char *text = r->body ? r->body : nomem;
    int status = r->body ? r->status : 500;
    size_t len = strlen(text);
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, (void *)text, MHD_RESPMEM_MUST_COPY);
    free(r->body);
    r->body = NULL;
    double secs = seconds_since(&u->t0);
    record_request(s, endpoint_of(url ? url : ""), status, secs);
    access_log(s, conn, method, url, status, len, secs);
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", r->content_type ? r->content_type : "application/json");
    if (r->allow) MHD_add_response_header(resp, "Allow", r->allow);
    if (r->retry_after > 0) {
        char secs_text[16];
        snprintf(secs_text, sizeof secs_text, "%d", r->retry_after);
        MHD_add_response_header(resp, "Retry-After", secs_text);
    }
    pthread_mutex_lock(&s->lock);
    int draining = s->draining;
    pthread_mutex_unlock(&s->lock);
    if (draining || r->close) MHD_add_response_header(resp, "Connection", "close"); // no next request on this connection
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return ret;
}

// Counts the request's Content-Length and Transfer-Encoding headers.
typedef struct {
    int content_length, transfer_encoding;
} framing_headers;

static enum MHD_Result count_framing(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
    (void)kind;
    (void)value;
    framing_headers *h = cls;
    if (key && strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) h->content_length++;
    if (key && strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) h->transfer_encoding++;
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
    (void)version;
    collm_serve_server *s = cls;
    upload *u = *con_cls;
    if (!u) { // first call: headers only
        u = calloc(1, sizeof *u);
        if (!u) return MHD_NO;
        clock_gettime(CLOCK_MONOTONIC, &u->t0);
        *con_cls = u;
        pthread_mutex_lock(&s->lock);
        s->in_flight++;
        pthread_mutex_unlock(&s->lock);
        // Where the body ends must not be a matter of opinion: with two
        // Content-Length headers (libmicrohttpd takes the first) or one beside
        // Transfer-Encoding, a proxy in front may read the rest as another
        // request than this server does (request smuggling). Refused before
        // the body, and the connection closed after the answer.
        framing_headers fh = {0, 0};
        MHD_get_connection_values(conn, MHD_HEADER_KIND, count_framing, &fh);
        if (fh.content_length > 1 || (fh.content_length && fh.transfer_encoding) || fh.transfer_encoding > 1) {
            u->too_large = 1; // (the body, if any, is not kept)
            reply r = {NULL, 500, NULL, 0, NULL, 1};
            fail(&r, COLLM_ERR_FORMAT, NULL, "ambiguous request framing: %d Content-Length and %d Transfer-Encoding headers",
                 fh.content_length, fh.transfer_encoding);
            return send_reply(s, conn, &r, method, url, u);
        }
        const char *len = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (len && strtoull(len, NULL, 10) > s->opt.max_body) {
            // answer before the body is read: a client announcing gigabytes costs nothing
            u->too_large = 1;
            reply r = {NULL, 500, NULL, 0, NULL, 0};
            fail(&r, COLLM_ERR_TOO_LARGE, NULL, "request body exceeds %zu bytes", s->opt.max_body);
            return send_reply(s, conn, &r, method, url, u);
        }
        return MHD_YES;
    }
    if (*upload_data_size) { // body chunk
        if (!u->too_large && u->n + *upload_data_size > s->opt.max_body) u->too_large = 1;
        if (!u->too_large) {
            if (u->n + *upload_data_size > u->cap) {
                size_t cap = (u->n + *upload_data_size) * 2;
                char *grown = realloc(u->data, cap);
                if (!grown) return MHD_NO;
                u->data = grown;
                u->cap = cap;
            }
            memcpy(u->data + u->n, upload_data, *upload_data_size);
            u->n += *upload_data_size;
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    reply r = {NULL, 500, NULL, 0, NULL, 0};
    if (u->too_large) fail(&r, COLLM_ERR_TOO_LARGE, NULL, "request body exceeds %zu bytes", s->opt.max_body);
    else handle(s, method, url, u->data, u->n, &r);
    if (!r.body) fail(&r, COLLM_ERR_NOMEM, NULL, "out of memory");
    return send_reply(s, conn, &r, method, url, u);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe) {
    (void)conn;
    (void)toe;
    collm_serve_server *s = cls;
    upload *u = *con_cls;
    if (u) {
        free(u->data);
        free(u);
        pthread_mutex_lock(&s->lock);
        s->in_flight--;
        pthread_cond_broadcast(&s->request_done);
        pthread_mutex_unlock(&s->lock);
    }
    *con_cls = NULL;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe) {
    (void)conn;
    (void)socket_context;
    collm_serve_server *s = cls;
    pthread_mutex_lock(&s->lock);
    s->n_connections += toe == MHD_CONNECTION_NOTIFY_STARTED ? 1 : -1;
    pthread_mutex_unlock(&s->lock);
}

// MHD's messages (a rejected connection, a timeout...) to stderr, at most
// LOG_PER_SECOND a second: an abusive client must not flood the log.
static void on_log(void *cls, const char *fmt, va_list ap) {
    collm_serve_server *s = cls;
    char line[256];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
    time_t now = time(NULL);
    pthread_mutex_lock(&s->log_lock);
    if (!s->started) {
        pthread_mutex_unlock(&s->log_lock);
        return;
    }
    if (now != s->log_second) {
        if (s->log_suppressed) fprintf(stderr, "serve: (%ld more server messages suppressed)\n", s->log_suppressed);
        s->log_second = now;
        s->log_count = 0;
        s->log_suppressed = 0;
    }
    if (s->log_count++ < LOG_PER_SECOND) fprintf(stderr, "serve: %s\n", line);
    else s->log_suppressed++;
    pthread_mutex_unlock(&s->log_lock);
}

static void free_server(collm_serve_server *s) {
    if (!s) return;
    gen_free(s->gen, s->opt.n_contexts);
    free(s->hold_path);
    pthread_mutex_destroy(&s->lock);
    pthread_mutex_destroy(&s->log_lock);
    pthread_mutex_destroy(&s->stats_lock);
    pthread_cond_destroy(&s->ctx_freed);
    pthread_cond_destroy(&s->request_done);
    free(s);
}

static int check_options(const collm_serve_options *o) {
    if (o->n_contexts < 1 || o->n_contexts > 256)
        return collm_error_field(COLLM_ERR_RANGE, "n_contexts", "serve: contexts %d outside [1, 256]", o->n_contexts);
    if (o->port < 0 || o->port > 65535)
        return collm_error_field(COLLM_ERR_RANGE, "port", "serve: port %d outside [0, 65535]", o->port);
    if (o->max_k < 1) return collm_error_field(COLLM_ERR_RANGE, "max_k", "serve: max_k %d must be >= 1", o->max_k);
    if (o->max_connections < 1 || o->max_connections > 65536)
        return collm_error_field(COLLM_ERR_RANGE, "max_connections", "serve: max connections %d outside [1, 65536]",
                                 o->max_connections);
    if (o->per_ip_limit < 0 || o->per_ip_limit > o->max_connections)
        return collm_error_field(COLLM_ERR_RANGE, "per_ip_limit",
                                 "serve: per-IP limit %d outside [0, max connections = %d]", o->per_ip_limit,
                                 o->max_connections);
    if (o->timeout_s < 1 || o->timeout_s > 86400)
        return collm_error_field(COLLM_ERR_RANGE, "timeout_s", "serve: timeout %d s outside [1, 86400]", o->timeout_s);
    if (o->context_wait_ms < 0 || o->context_wait_ms > 600000)
        return collm_error_field(COLLM_ERR_RANGE, "context_wait_ms", "serve: context wait %d ms outside [0, 600000]",
                                 o->context_wait_ms);
    if (o->retry_after_s < 1 || o->retry_after_s > 3600)
        return collm_error_field(COLLM_ERR_RANGE, "retry_after_s", "serve: Retry-After %d s outside [1, 3600]",
                                 o->retry_after_s);
    if (o->drain_timeout_s < 0 || o->drain_timeout_s > 3600)
        return collm_error_field(COLLM_ERR_RANGE, "drain_timeout_s", "serve: drain timeout %d s outside [0, 3600]",
                                 o->drain_timeout_s);
    if (o->prefix_cache_bytes < 0)
        return collm_error_field(COLLM_ERR_RANGE, "prefix_cache_bytes", "serve: prefix cache %lld bytes must be >= 0",
                                 (long long)o->prefix_cache_bytes);
    if (o->max_batch < 1 || o->max_batch > 100000)
        return collm_error_field(COLLM_ERR_RANGE, "max_batch", "serve: max batch %d outside [1, 100000]",
                                 o->max_batch);
    return COLLM_OK;
}

collm_serve_server *collm_serve_start(const collm_model *m, const collm_retrieval_index *index,
                                      const collm_rec_items *items, const collm_recommend_histories *hist,
                                      const collm_serve_options *o) {
    if (check_options(o)) return NULL;
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)o->port);
    const char *host = o->host ? o->host : "127.0.0.1";
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        collm_error_field(COLLM_ERR_ARG, "host", "serve: --host %s is not an IPv4 address", host);
        return NULL;
    }
    collm_serve_server *s = collm_calloc(1, sizeof *s);
    if (!s) return NULL;
    s->opt = *o;
    s->opt.host = NULL; // borrowed string: not kept
    pthread_mutex_init(&s->lock, NULL);
    pthread_mutex_init(&s->log_lock, NULL);
    pthread_mutex_init(&s->stats_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->ctx_freed, &ca);
    pthread_cond_init(&s->request_done, &ca);
    pthread_condattr_destroy(&ca);
    const char *hold = getenv("COLLM_SERVE_TEST_HOLD");
    if (hold && *hold && !(s->hold_path = strdup(hold))) {
        collm_error(COLLM_ERR_NOMEM, "out of memory");
        free_server(s);
        return NULL;
    }
    s->gen = gen_new(m, index, items, hist, s->opt.n_contexts, s->opt.prefix_cache_bytes);
    if (!s->gen) {
        free_server(s);
        return NULL;
    }
    // handed back at the first reload or at stop (NULL: the caller frees them after collm_serve_stop)
    s->gen->retire = o->retire;
    s->gen->owner = o->owner;
    // One thread per connection (a request blocks its thread while it scores,
    // so /health never queues behind inference), poll() rather than select()
    // so descriptors above FD_SETSIZE work, and ITC so the daemon can be
    // quiesced for a drain. Idle connections are bounded by the global and
    // per-IP limits and closed after timeout_s without traffic.
    unsigned flags = MHD_USE_POLL_INTERNAL_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    s->daemon = MHD_start_daemon(flags, (uint16_t)s->opt.port, NULL, NULL, on_request, s,
                                 MHD_OPTION_EXTERNAL_LOGGER, on_log, s, // first, to catch every message
                                 MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                                 MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                                 MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
                                 MHD_OPTION_CONNECTION_LIMIT, (unsigned)s->opt.max_connections,
                                 MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)s->opt.per_ip_limit,
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)s->opt.timeout_s, MHD_OPTION_END);
    if (!s->daemon) {
        collm_error(COLLM_ERR_IO, "serve: cannot listen on %s:%d (port in use?)", host, s->opt.port);
        s->gen->retire = NULL; // a failed start leaves the parts with the caller
        free_server(s);
        return NULL;
    }
    pthread_mutex_lock(&s->log_lock);
    s->started = 1;
    pthread_mutex_unlock(&s->log_lock);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : s->opt.port;
    return s;
}

int collm_serve_port(const collm_serve_server *s) { return s->port; }

int collm_serve_reload(collm_serve_server *s, const collm_model *m, const collm_retrieval_index *index,
                       const collm_rec_items *items, const collm_recommend_histories *hist, void (*retire)(void *owner),
                       void *owner) {
    if (!s || !m || !index || !items) return collm_error(COLLM_ERR_ARG, "collm_serve_reload: NULL argument");
    // the new contexts first, outside the lock: requests go on with the old generation meanwhile
    serve_gen *g = gen_new(m, index, items, hist, s->opt.n_contexts, s->opt.prefix_cache_bytes);
    if (!g) return collm_error_prefix(COLLM_ERR_NOMEM, "serve: reload: creating the inference contexts");
    g->retire = retire;
    g->owner = owner;
    pthread_mutex_lock(&s->lock);
    serve_gen *old = s->gen;
    g->number = old->number + 1;
    s->gen = g;
    s->reloads++;
    int dead = --old->refs == 0; // requests still holding the old one free it when they end
    pthread_mutex_unlock(&s->lock);
    if (dead) gen_free(old, s->opt.n_contexts);
    return COLLM_OK;
}

int collm_serve_generation(collm_serve_server *s) {
    pthread_mutex_lock(&s->lock);
    int n = s->gen->number;
    pthread_mutex_unlock(&s->lock);
    return n;
}

int collm_serve_drain(collm_serve_server *s, int timeout_ms) {
    pthread_mutex_lock(&s->lock);
    int first = !s->draining;
    s->draining = s->drain_called = 1;
    pthread_mutex_unlock(&s->lock);
    if (first) { // stop accepting: close the listening socket (new clients get "connection refused")
        MHD_socket fd = MHD_quiesce_daemon(s->daemon);
        if (fd != MHD_INVALID_SOCKET) close(fd);
    }
    struct timespec until = deadline_ms(timeout_ms > 0 ? timeout_ms : 0);
    pthread_mutex_lock(&s->lock);
    while (s->in_flight > 0)
        if (pthread_cond_timedwait(&s->request_done, &s->lock, &until) == ETIMEDOUT) break;
    int left = s->in_flight;
    pthread_mutex_unlock(&s->lock);
    return left;
}

void collm_serve_stop(collm_serve_server *s) {
    if (!s) return;
    if (s->daemon) {
        pthread_mutex_lock(&s->lock);
        int drained = s->drain_called;
        pthread_mutex_unlock(&s->lock);
        if (!drained) collm_serve_drain(s, s->opt.drain_timeout_s * 1000);
        pthread_mutex_lock(&s->lock);
        s->stopping = 1; // waiters for a context give up (503) instead of holding the stop
        pthread_cond_broadcast(&s->ctx_freed);
        pthread_mutex_unlock(&s->lock);
        MHD_stop_daemon(s->daemon); // closes the remaining connections, joins their threads
    }
    free_server(s);
}
