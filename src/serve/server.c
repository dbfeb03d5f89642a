// HTTP JSON service (see include/collm/serve.h).
#include "collm/serve.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collm/error.h"

struct collm_serve_server {
    const collm_model *model;
    const collm_retrieval_index *index;
    const collm_rec_items *items;
    const collm_recommend_histories *hist;
    collm_serve_options opt;
    struct MHD_Daemon *daemon;
    int port;
    // the context pool: free[i] = 1 when ctx[i] is idle
    collm_llm_context **ctx;
    int *free_ctx;
    pthread_mutex_t lock;
    pthread_cond_t cond;
};

void collm_serve_options_default(collm_serve_options *o) {
    o->host = "127.0.0.1";
    o->port = 8080;
    o->n_contexts = 2;
    o->max_body = 64 * 1024;
    o->max_k = 1000;
}

static int acquire_ctx(collm_serve_server *s) {
    pthread_mutex_lock(&s->lock);
    int got = -1;
    for (;;) {
        for (int i = 0; i < s->opt.n_contexts && got < 0; i++)
            if (s->free_ctx[i]) got = i;
        if (got >= 0) break;
        pthread_cond_wait(&s->cond, &s->lock);
    }
    s->free_ctx[got] = 0;
    pthread_mutex_unlock(&s->lock);
    return got;
}

static void release_ctx(collm_serve_server *s, int i) {
    pthread_mutex_lock(&s->lock);
    s->free_ctx[i] = 1;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

// ---------------------------------------------------------------------------
// JSON helpers

static char *error_body(const char *message, const char *field) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", message);
    if (field) cJSON_AddStringToObject(o, "field", field);
    else cJSON_AddNullToObject(o, "field");
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

// An error response: status + {"error","field"}.
static void fail(char **out, int *status, int code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void fail(char **out, int *status, int code, const char *field, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    *out = error_body(msg, field);
    *status = code;
}

// Reads an integer field in [lo, hi]. 1 found, 0 absent, -1 error (reported).
static int get_int_field(const cJSON *root, const char *name, long lo, long hi, long *v, char **out, int *status) {
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(root, name);
    if (!f) return 0;
    if (!cJSON_IsNumber(f) || f->valuedouble != floor(f->valuedouble) || !isfinite(f->valuedouble)) {
        fail(out, status, 400, name, "%s: expected an integer", name);
        return -1;
    }
    if (f->valuedouble < (double)lo || f->valuedouble > (double)hi) {
        fail(out, status, 400, name, "%s: %.0f is out of range [%ld, %ld]", name, f->valuedouble, lo, hi);
        return -1;
    }
    *v = (long)f->valuedouble;
    return 1;
}

// Reads an array of integers >= 0 (at most max_n). 1 found, 0 absent, -1 error.
static int get_id_array(const cJSON *root, const char *name, int max_n, int32_t **ids, int *n, char **out,
                        int *status) {
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(root, name);
    if (!f) return 0;
    if (!cJSON_IsArray(f)) {
        fail(out, status, 400, name, "%s: expected an array of item ids", name);
        return -1;
    }
    int count = cJSON_GetArraySize(f);
    if (count < 1 || count > max_n) {
        fail(out, status, 400, name, "%s: needs 1 to %d ids (got %d)", name, max_n, count);
        return -1;
    }
    *ids = malloc((size_t)count * sizeof(int32_t));
    if (!*ids) {
        fail(out, status, 500, NULL, "out of memory");
        return -1;
    }
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, f) {
        if (!cJSON_IsNumber(e) || e->valuedouble != floor(e->valuedouble) || e->valuedouble < 0 ||
            e->valuedouble > 2147483647.0) {
            fail(out, status, 400, name, "%s[%d]: expected an item id (integer >= 0)", name, i);
            free(*ids);
            *ids = NULL;
            return -1;
        }
        (*ids)[i++] = (int32_t)e->valuedouble;
    }
    *n = count;
    return 1;
}

// Rejects fields outside `allowed` (NULL-terminated).
static int check_fields(const cJSON *root, const char *const *allowed, char **out, int *status) {
    const cJSON *f;
    cJSON_ArrayForEach(f, root) {
        int ok = 0;
        for (int i = 0; allowed[i] && !ok; i++) ok = f->string && strcmp(f->string, allowed[i]) == 0;
        if (!ok) {
            fail(out, status, 400, f->string ? f->string : "", "unknown field \"%s\"", f->string ? f->string : "");
            return -1;
        }
    }
    return 0;
}

// A library error → status and field from its message ("user: ...", "history: ...").
static void library_fail(int rc, char **out, int *status) {
    const char *msg = collm_last_error();
    const char *fields[] = {"user", "history", "items", "k", "candidates"};
    const char *field = NULL;
    for (size_t i = 0; i < sizeof fields / sizeof fields[0] && !field; i++) {
        size_t n = strlen(fields[i]);
        if (strncmp(msg, fields[i], n) == 0 && msg[n] == ':') field = fields[i];
    }
    int code = rc == COLLM_ERR_ARG ? 400 : 500;
    if (field && strcmp(field, "user") == 0 && strstr(msg, "unknown")) code = 404;
    fail(out, status, code, field, "%s", msg);
}

static char *print_and_free(cJSON *o) {
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

// ---------------------------------------------------------------------------
// endpoints

static void handle_recommend(collm_serve_server *s, const cJSON *root, char **out, int *status) {
    static const char *const allowed[] = {"user", "history", "k", "candidates", NULL};
    if (check_fields(root, allowed, out, status)) return;
    long user = -1, k = 10, cand = 100;
    int32_t *history = NULL;
    int n_history = 0;
    int has_user, has_history;
    if ((has_user = get_int_field(root, "user", 0, 2147483647L, &user, out, status)) < 0) return;
    if (get_int_field(root, "k", 1, s->opt.max_k, &k, out, status) < 0) return;
    if (get_int_field(root, "candidates", 1, s->opt.max_k, &cand, out, status) < 0) return;
    if ((has_history = get_id_array(root, "history", s->opt.max_k, &history, &n_history, out, status)) < 0) return;
    if (!has_user && !has_history) {
        fail(out, status, 400, "user", "user: missing (give \"user\" or \"history\")");
        return;
    }
    if (k > cand) {
        free(history);
        fail(out, status, 400, "k", "k: %ld exceeds candidates (%ld)", k, cand);
        return;
    }
    collm_recommend_request req;
    collm_recommend_request_default(&req);
    req.user = (int32_t)user;
    req.history = history;
    req.n_history = n_history;
    req.k = (int)k;
    req.n_candidates = (int)cand;
    collm_recommend_item *res = malloc((size_t)k * sizeof *res);
    collm_recommend_info info;
    int c = acquire_ctx(s);
    int rc = res ? collm_recommend_for_user(s->model, s->index, s->items, s->hist, &req, s->ctx[c], res, &info)
                 : COLLM_ERR_NOMEM;
    release_ctx(s, c);
    if (rc != COLLM_OK) {
        library_fail(rc, out, status);
    } else {
        cJSON *o = cJSON_CreateObject();
        if (has_user) cJSON_AddNumberToObject(o, "user", (double)user);
        else cJSON_AddNullToObject(o, "user");
        cJSON_AddNumberToObject(o, "k", (double)k);
        cJSON_AddNumberToObject(o, "candidates", info.n_candidates);
        cJSON_AddBoolToObject(o, "cold_start_query", info.used_mean_query);
        cJSON_AddNumberToObject(o, "rerank_ms", info.rerank_s * 1e3);
        cJSON *arr = cJSON_AddArrayToObject(o, "items");
        for (int i = 0; i < info.n_results; i++) {
            cJSON *it = cJSON_CreateObject();
            cJSON_AddNumberToObject(it, "rank", i + 1);
            cJSON_AddNumberToObject(it, "item", res[i].item);
            cJSON_AddStringToObject(it, "title", s->items->title[res[i].item]);
            cJSON_AddNumberToObject(it, "llm_score", res[i].llm_score);
            cJSON_AddNumberToObject(it, "retrieval_score", res[i].retrieval_score);
            cJSON_AddItemToArray(arr, it);
        }
        *out = print_and_free(o);
        *status = 200;
    }
    free(res);
    free(history);
}

static void handle_score(collm_serve_server *s, const cJSON *root, char **out, int *status) {
    static const char *const allowed[] = {"user", "items", "history", NULL};
    if (check_fields(root, allowed, out, status)) return;
    long user = -1;
    int32_t *items = NULL, *history = NULL, *his = NULL;
    int n_items = 0, n_history = 0, has_user, has_items, has_history;
    if ((has_user = get_int_field(root, "user", 0, 2147483647L, &user, out, status)) < 0) return;
    if ((has_items = get_id_array(root, "items", s->opt.max_k, &items, &n_items, out, status)) < 0) return;
    if ((has_history = get_id_array(root, "history", s->opt.max_k, &history, &n_history, out, status)) < 0) {
        free(items);
        return;
    }
    if (!has_items) {
        free(history);
        fail(out, status, 400, "items", "items: missing (an array of item ids to score)");
        return;
    }
    if (!has_user && !has_history) {
        free(items);
        fail(out, status, 400, "user", "user: missing (give \"user\" or \"history\")");
        return;
    }
    int64_t n_his = 0;
    float *scores = malloc((size_t)n_items * sizeof(float));
    int rc = scores ? collm_recommend_resolve_history(s->model, s->items, s->hist, (int32_t)user, history, n_history, &his,
                                                &n_his)
                    : COLLM_ERR_NOMEM;
    if (rc == COLLM_OK) {
        int c = acquire_ctx(s);
        rc = collm_recommend_score_items(s->model, s->items, (int32_t)user, his, n_his, items, n_items, 1, s->ctx[c], scores,
                                   NULL);
        release_ctx(s, c);
    }
    if (rc != COLLM_OK) {
        library_fail(rc, out, status);
    } else {
        cJSON *o = cJSON_CreateObject();
        if (has_user) cJSON_AddNumberToObject(o, "user", (double)user);
        else cJSON_AddNullToObject(o, "user");
        cJSON *arr = cJSON_AddArrayToObject(o, "scores");
        for (int i = 0; i < n_items; i++) {
            cJSON *it = cJSON_CreateObject();
            cJSON_AddNumberToObject(it, "item", items[i]);
            cJSON_AddNumberToObject(it, "llm_score", scores[i]);
            cJSON_AddItemToArray(arr, it);
        }
        *out = print_and_free(o);
        *status = 200;
    }
    free(scores);
    free(items);
    free(history);
    free(his);
}

void collm_serve_handle(collm_serve_server *s, const char *method, const char *path, const char *body, size_t n_body,
                  char **out, int *status, const char **allow) {
    *out = NULL;
    if (allow) *allow = NULL;
    int is_get = strcmp(method, "GET") == 0, is_post = strcmp(method, "POST") == 0;
    if (strcmp(path, "/health") == 0) {
        if (!is_get) {
            if (allow) *allow = "GET";
            fail(out, status, 405, NULL, "method %s not allowed on /health (use GET)", method);
            return;
        }
        int32_t n_items = 0, n_users = 0;
        int d = 0;
        collm_cf_items(s->model, &n_items, &d);
        collm_cf_users(s->model, &n_users, &d);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "status", "ok");
        cJSON_AddNumberToObject(o, "items", n_items);
        cJSON_AddNumberToObject(o, "users", n_users);
        cJSON_AddNumberToObject(o, "dim", d);
        cJSON_AddNumberToObject(o, "contexts", s->opt.n_contexts);
        *out = print_and_free(o);
        *status = 200;
        return;
    }
    int is_rec = strcmp(path, "/recommend") == 0, is_score = strcmp(path, "/score") == 0;
    if (!is_rec && !is_score) {
        fail(out, status, 404, NULL, "no such endpoint %s (GET /health, POST /recommend, POST /score)", path);
        return;
    }
    if (!is_post) {
        if (allow) *allow = "POST";
        fail(out, status, 405, NULL, "method %s not allowed on %s (use POST)", method, path);
        return;
    }
    cJSON *root = cJSON_ParseWithLength(body ? body : "", n_body);
    if (!root) {
        fail(out, status, 400, NULL, "body is not valid JSON");
        return;
    }
    if (!cJSON_IsObject(root)) fail(out, status, 400, NULL, "body must be a JSON object");
    else if (is_rec) handle_recommend(s, root, out, status);
    else handle_score(s, root, out, status);
    cJSON_Delete(root);
    if (!*out) fail(out, status, 500, NULL, "out of memory");
}

// ---------------------------------------------------------------------------
// HTTP layer

typedef struct {
    char *data;
    size_t n, cap;
    int too_large;
} upload;

static enum MHD_Result send_json(struct MHD_Connection *conn, int status, char *body, const char *allow) {
    const char *text = body ? body : "{\"error\":\"out of memory\",\"field\":null}";
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_MUST_COPY);
    free(body);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", "application/json");
    if (allow) MHD_add_response_header(r, "Allow", allow);
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
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
        *con_cls = u;
        const char *len = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (len && strtoull(len, NULL, 10) > s->opt.max_body) u->too_large = 1;
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
    if (u->too_large) {
        char *body = NULL;
        int status;
        fail(&body, &status, 413, NULL, "request body exceeds %zu bytes", s->opt.max_body);
        return send_json(conn, status, body, NULL);
    }
    char *body = NULL;
    int status = 500;
    const char *allow = NULL;
    collm_serve_handle(s, method, url, u->data, u->n, &body, &status, &allow);
    return send_json(conn, status, body, allow);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe) {
    (void)cls;
    (void)conn;
    (void)toe;
    upload *u = *con_cls;
    if (u) {
        free(u->data);
        free(u);
    }
    *con_cls = NULL;
}

static void free_server(collm_serve_server *s) {
    if (!s) return;
    for (int i = 0; s->ctx && i < s->opt.n_contexts; i++) collm_llm_context_free(s->ctx[i]);
    free(s->ctx);
    free(s->free_ctx);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->cond);
    free(s);
}

collm_serve_server *collm_serve_start(const collm_model *m, const collm_retrieval_index *index, const collm_rec_items *items,
                          const collm_recommend_histories *hist, const collm_serve_options *o) {
    collm_serve_server *s = collm_calloc(1, sizeof *s);
    if (!s) return NULL;
    s->model = m;
    s->index = index;
    s->items = items;
    s->hist = hist;
    s->opt = *o;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    if (s->opt.n_contexts < 1 || s->opt.n_contexts > 256 || s->opt.port < 0 || s->opt.port > 65535 || s->opt.max_k < 1) {
        collm_error(COLLM_ERR_ARG, "serve: need 1 <= contexts <= 256, 0 <= port <= 65535, max_k >= 1");
        free_server(s);
        return NULL;
    }
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)s->opt.port);
    if (inet_pton(AF_INET, s->opt.host ? s->opt.host : "127.0.0.1", &addr.sin_addr) != 1) {
        collm_error(COLLM_ERR_ARG, "serve: --host %s is not an IPv4 address", s->opt.host);
        free_server(s);
        return NULL;
    }
    s->ctx = collm_calloc((size_t)s->opt.n_contexts, sizeof *s->ctx);
    s->free_ctx = collm_calloc((size_t)s->opt.n_contexts, sizeof *s->free_ctx);
    if (!s->ctx || !s->free_ctx) {
        free_server(s);
        return NULL;
    }
    for (int i = 0; i < s->opt.n_contexts; i++) {
        // NULL pool: a request's attention runs on its own thread (pools are not shared between requests)
        if (!(s->ctx[i] = collm_recommend_context_create(m, NULL))) {
            free_server(s);
            return NULL;
        }
        s->free_ctx[i] = 1;
    }
    s->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                                     MHD_USE_ERROR_LOG,
                                 (uint16_t)s->opt.port, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR,
                                 (struct sockaddr *)&addr, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30, MHD_OPTION_END);
    if (!s->daemon) {
        collm_error(COLLM_ERR_IO, "serve: cannot listen on %s:%d (port in use?)", s->opt.host, s->opt.port);
        free_server(s);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : s->opt.port;
    return s;
}

int collm_serve_port(const collm_serve_server *s) { return s->port; }

void collm_serve_stop(collm_serve_server *s) {
    if (!s) return;
    if (s->daemon) MHD_stop_daemon(s->daemon);
    free_server(s);
}
