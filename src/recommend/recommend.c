// Top-K recommendation: Faiss retrieval + CoLLM re-ranking with a shared
// prompt prefix (see include/collm/recommend.h for the rules).
#include "collm/recommend.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

#include "collm/error.h"
#include "recommender/collm_internal.h"

#define RECOMMEND_CTX_ROWS 1024 // n_ctx and n_batch of collm_recommend_context_create

struct collm_recommend_histories {
    int32_t n_users;    // users 0 .. n_users-1
    int64_t *offset;    // (n_users + 1) into his
    int8_t *has;        // (n_users) 1 when the dataset has a row of the user
    int32_t *his;       // (offset[n_users])
    int32_t n_items;    // items 0 .. n_items-1
    float *log_pop;     // (n_items) log(1 + train rows of the item)
    int64_t *rated_offset; // (n_users + 1) into rated
    int32_t *rated;     // every item of the user's train and valid rows
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// ---------------------------------------------------------------------------
// histories

collm_recommend_histories *collm_recommend_histories_build(const collm_rec_dataset *ds) {
    if (!ds || !ds->train) {
        collm_error(COLLM_ERR_ARG, "collm_recommend_histories_build: no dataset / train split");
        return NULL;
    }
    const collm_rec_split *splits[2] = {ds->train, ds->valid}; // later split wins ties
    int32_t n_users = ds->n_users;
    for (int s = 0; s < 2; s++)
        if (splits[s] && splits[s]->max_user + 1 > n_users) n_users = splits[s]->max_user + 1;
    collm_recommend_histories *h = collm_calloc(1, sizeof *h);
    int *best_split = collm_malloc((size_t)(n_users > 0 ? n_users : 1) * sizeof(int));
    int64_t *best_row = collm_malloc((size_t)(n_users > 0 ? n_users : 1) * sizeof(int64_t));
    if (h) {
        h->n_users = n_users;
        h->offset = collm_calloc((size_t)n_users + 1, sizeof(int64_t));
        h->has = collm_calloc((size_t)(n_users > 0 ? n_users : 1), 1);
    }
    if (!h || !best_split || !best_row || !h->offset || !h->has) {
        free(best_split);
        free(best_row);
        collm_recommend_histories_free(h);
        return NULL;
    }
    h->n_items = ds->items && ds->items->n > ds->n_items ? ds->items->n : ds->n_items;
    h->log_pop = collm_calloc((size_t)(h->n_items > 0 ? h->n_items : 1), sizeof(float));
    if (!h->log_pop) {
        free(best_split);
        free(best_row);
        collm_recommend_histories_free(h);
        return NULL;
    }
    for (int64_t r = 0; r < ds->train->n; r++)
        if (ds->train->item[r] >= 0 && ds->train->item[r] < h->n_items) h->log_pop[ds->train->item[r]] += 1;
    for (int32_t i = 0; i < h->n_items; i++) h->log_pop[i] = log1pf(h->log_pop[i]);
    for (int32_t u = 0; u < n_users; u++) best_split[u] = -1;
    for (int s = 0; s < 2; s++) {
        const collm_rec_split *sp = splits[s];
        if (!sp) continue;
        for (int64_t r = 0; r < sp->n; r++) {
            int32_t u = sp->user[r];
            if (u < 0 || u >= n_users) continue;
            if (best_split[u] >= 0 && splits[best_split[u]]->timestamp[best_row[u]] > sp->timestamp[r]) continue;
            best_split[u] = s;
            best_row[u] = r;
        }
    }
    int64_t total = 0;
    for (int32_t u = 0; u < n_users; u++) {
        if (best_split[u] >= 0) {
            const collm_rec_split *sp = splits[best_split[u]];
            int64_t r = best_row[u];
            total += sp->his_offset[r + 1] - sp->his_offset[r] + (sp->label[r] ? 1 : 0);
        }
        h->offset[u + 1] = total;
    }
    h->his = collm_malloc((size_t)(total > 0 ? total : 1) * sizeof(int32_t));
    if (!h->his) {
        free(best_split);
        free(best_row);
        collm_recommend_histories_free(h);
        return NULL;
    }
    for (int32_t u = 0; u < n_users; u++) {
        if (best_split[u] < 0) continue;
        const collm_rec_split *sp = splits[best_split[u]];
        int64_t r = best_row[u], n = sp->his_offset[r + 1] - sp->his_offset[r];
        memcpy(h->his + h->offset[u], sp->his + sp->his_offset[r], (size_t)n * sizeof(int32_t));
        if (sp->label[r]) h->his[h->offset[u] + n] = sp->item[r];
        h->has[u] = 1;
    }
    free(best_split);
    free(best_row);
    // the items each user has a row of (any label): counting pass, then fill
    h->rated_offset = collm_calloc((size_t)n_users + 1, sizeof(int64_t));
    if (!h->rated_offset) {
        collm_recommend_histories_free(h);
        return NULL;
    }
    for (int s = 0; s < 2; s++)
        for (int64_t r = 0; splits[s] && r < splits[s]->n; r++)
            if (splits[s]->user[r] >= 0 && splits[s]->user[r] < n_users) h->rated_offset[splits[s]->user[r] + 1]++;
    for (int32_t u = 0; u < n_users; u++) h->rated_offset[u + 1] += h->rated_offset[u];
    int64_t *fill = collm_malloc((size_t)(n_users > 0 ? n_users : 1) * sizeof(int64_t));
    h->rated = collm_malloc((size_t)(h->rated_offset[n_users] > 0 ? h->rated_offset[n_users] : 1) * sizeof(int32_t));
    if (!fill || !h->rated) {
        free(fill);
        collm_recommend_histories_free(h);
        return NULL;
    }
    memcpy(fill, h->rated_offset, (size_t)n_users * sizeof(int64_t));
    for (int s = 0; s < 2; s++)
        for (int64_t r = 0; splits[s] && r < splits[s]->n; r++)
            if (splits[s]->user[r] >= 0 && splits[s]->user[r] < n_users) h->rated[fill[splits[s]->user[r]]++] = splits[s]->item[r];
    free(fill);
    return h;
}

void collm_recommend_user_rated(const collm_recommend_histories *h, int32_t user, const int32_t **items, int64_t *n) {
    *items = NULL;
    *n = 0;
    if (!h || !h->rated_offset || user < 0 || user >= h->n_users) return;
    *items = h->rated + h->rated_offset[user];
    *n = h->rated_offset[user + 1] - h->rated_offset[user];
}

void collm_recommend_histories_free(collm_recommend_histories *h) {
    if (!h) return;
    free(h->offset);
    free(h->has);
    free(h->his);
    free(h->log_pop);
    free(h->rated_offset);
    free(h->rated);
    free(h);
}

const float *collm_recommend_log_popularity(const collm_recommend_histories *h, int32_t *n_items) {
    if (n_items) *n_items = h ? h->n_items : 0;
    return h ? h->log_pop : NULL;
}

int collm_recommend_user_history(const collm_recommend_histories *h, int32_t user, const int32_t **his, int64_t *n_his) {
    if (!h || !his || !n_his) return collm_error(COLLM_ERR_ARG, "collm_recommend_user_history: NULL argument");
    if (user < 0 || user >= h->n_users || !h->has[user])
        return collm_error_field(COLLM_ERR_NOT_FOUND, "user", "user: %d is unknown (no rows in the dataset); give a history",
                                user);
    *his = h->his + h->offset[user];
    *n_his = h->offset[user + 1] - h->offset[user];
    return COLLM_OK;
}

void collm_recommend_request_default(collm_recommend_request *r) {
    memset(r, 0, sizeof *r);
    r->user = -1;
    r->k = 10;
    r->n_candidates = 100;
    r->share_prefix = 1;
    r->fusion_lambda = NAN;
    r->fusion_popularity = NAN;
}

collm_llm_context *collm_recommend_context_create(const collm_model *m, collm_pool *pool) {
    if (!m) {
        collm_error(COLLM_ERR_ARG, "collm_recommend_context_create: no model");
        return NULL;
    }
    return collm_llm_context_create(collm_llm(m), RECOMMEND_CTX_ROWS, RECOMMEND_CTX_ROWS, pool);
}

int collm_recommend_resolve_history(const collm_model *m, const collm_rec_items *items, const collm_recommend_histories *hist,
                              int32_t user, const int32_t *history, int n_history, int32_t **his_out,
                              int64_t *n_out) {
    *his_out = NULL;
    *n_out = 0;
    const int32_t *src;
    int64_t n_src;
    int add_sentinel = 0;
    if (history) {
        if (n_history < 0) return collm_error_field(COLLM_ERR_ARG, "history", "history: negative length %d", n_history);
        src = history;
        n_src = n_history;
        add_sentinel = collm_template(m)->his_has_sentinel && (n_src == 0 || src[0] != 0);
    } else {
        if (user < 0) return collm_error_field(COLLM_ERR_ARG, "user", "user: give a user id or a history");
        int rc = collm_recommend_user_history(hist, user, &src, &n_src);
        if (rc) return rc;
    }
    int32_t n_cf_items = 0;
    int dim = 0;
    collm_cf_items(m, &n_cf_items, &dim);
    for (int64_t i = 0; i < n_src; i++) {
        int32_t id = src[i];
        if (id < 0 || id >= items->n || (m->has_fece && id >= n_cf_items))
            return collm_error_field(COLLM_ERR_RANGE, "history",
                                     "history: item %d (position %lld) is not in the catalogue (ids 1..%d)", id, (long long)i, (m->has_fece && n_cf_items < items->n ? n_cf_items : items->n) - 1);
    }
    int64_t n = n_src + add_sentinel;
    int32_t *his = collm_malloc((size_t)(n > 0 ? n : 1) * sizeof(int32_t));
    if (!his) return COLLM_ERR_NOMEM;
    if (add_sentinel) his[0] = 0;
    if (n_src) memcpy(his + add_sentinel, src, (size_t)n_src * sizeof(int32_t));
    *his_out = his;
    *n_out = n;
    return COLLM_OK;
}

// ---------------------------------------------------------------------------
// per-user prefix cache (recommend.h)

typedef struct prefix_entry {
    struct prefix_entry *prev, *next; // LRU list, most recent first
    uint64_t hash;                    // of (user, history)
    int32_t user;
    int64_t n_his;
    int32_t *his;      // (n_his)
    int P;             // positions held
    int32_t *tokens;   // (P) token ids (slot rows hold the tokenizer's id there)
    int n_slots;       // slot rows below P
    int32_t rows[COLLM_MAX_SLOTS];
    float *slot_vals;  // (n_slots, n_embd) their mapped values
    float *kv;         // (collm_llm_kv_floats(P))
    int64_t bytes;
} prefix_entry;

struct collm_recommend_prefix_cache {
    const collm_model *m;
    int64_t max_bytes;
    pthread_mutex_t lock; // guards everything below
    prefix_entry *head, *tail;
    int64_t bytes, entries, hits, misses, evictions;
};

static uint64_t history_hash(int32_t user, const int32_t *his, int64_t n_his) {
    return XXH3_64bits_withSeed(his, (size_t)n_his * sizeof(int32_t), (uint64_t)(uint32_t)user);
}

static void entry_free(prefix_entry *e) {
    if (!e) return;
    free(e->his);
    free(e->tokens);
    free(e->slot_vals);
    free(e->kv);
    free(e);
}

collm_recommend_prefix_cache *collm_recommend_prefix_cache_create(const collm_model *m, int64_t max_bytes) {
    if (!m || max_bytes < 1) {
        collm_error(COLLM_ERR_ARG, "collm_recommend_prefix_cache_create: need a model and max_bytes >= 1 (got %lld)",
                    (long long)max_bytes);
        return NULL;
    }
    collm_recommend_prefix_cache *c = collm_calloc(1, sizeof *c);
    if (!c) return NULL;
    c->m = m;
    c->max_bytes = max_bytes;
    pthread_mutex_init(&c->lock, NULL);
    return c;
}

void collm_recommend_prefix_cache_free(collm_recommend_prefix_cache *c) {
    if (!c) return;
    for (prefix_entry *e = c->head, *next; e; e = next) {
        next = e->next;
        entry_free(e);
    }
    pthread_mutex_destroy(&c->lock);
    free(c);
}

void collm_recommend_prefix_cache_stats(collm_recommend_prefix_cache *c, collm_recommend_prefix_stats *out) {
    memset(out, 0, sizeof *out);
    if (!c) return;
    pthread_mutex_lock(&c->lock);
    *out = (collm_recommend_prefix_stats){c->hits, c->misses, c->evictions, c->entries, c->bytes, c->max_bytes};
    pthread_mutex_unlock(&c->lock);
}

// LRU list edits (lock held).
static void lru_unlink(collm_recommend_prefix_cache *c, prefix_entry *e) {
    if (e->prev) e->prev->next = e->next;
    else c->head = e->next;
    if (e->next) e->next->prev = e->prev;
    else c->tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push_front(collm_recommend_prefix_cache *c, prefix_entry *e) {
    e->prev = NULL;
    e->next = c->head;
    if (c->head) c->head->prev = e;
    c->head = e;
    if (!c->tail) c->tail = e;
}

// The entry of (user, history), or NULL (lock held).
static prefix_entry *cache_find(collm_recommend_prefix_cache *c, uint64_t hash, int32_t user, const int32_t *his,
                                int64_t n_his) {
    for (prefix_entry *e = c->head; e; e = e->next)
        if (e->hash == hash && e->user == user && e->n_his == n_his &&
            (n_his == 0 || memcmp(e->his, his, (size_t)n_his * sizeof(int32_t)) == 0))
            return e;
    return NULL;
}

// How many leading positions of the entry equal the new prefix (P tokens,
// its slot rows rows/vals below P): tokens agree, and below that length
// every slot row of either is a slot row of the other with the same value.
static int usable_positions(const prefix_entry *e, const int32_t *tokens, int P, const int32_t *rows,
                            const float *vals, int ns, int C) {
    int t = 0, lim = P < e->P ? P : e->P;
    while (t < lim && tokens[t] == e->tokens[t]) t++;
    for (int i = 0; i < ns; i++) {
        if (rows[i] >= t) continue;
        int j = 0;
        while (j < e->n_slots && e->rows[j] != rows[i]) j++;
        if (j == e->n_slots || memcmp(e->slot_vals + (int64_t)j * C, vals + (int64_t)i * C, (size_t)C * sizeof(float)))
            t = rows[i];
    }
    for (int j = 0; j < e->n_slots; j++) {
        if (e->rows[j] >= t) continue;
        int i = 0;
        while (i < ns && rows[i] != e->rows[j]) i++;
        if (i == ns) t = e->rows[j];
    }
    return t;
}

// Looks the prefix up; on a hit imports the usable positions into ctx and
// returns their count (0 on a miss: ctx is left as it was).
static int cache_lookup(collm_recommend_prefix_cache *c, collm_llm_context *ctx, int32_t user, const int32_t *his,
                        int64_t n_his, const int32_t *tokens, int P, const int32_t *rows, const float *vals, int ns,
                        int C) {
    uint64_t hash = history_hash(user, his, n_his);
    int t = 0;
    pthread_mutex_lock(&c->lock);
    prefix_entry *e = cache_find(c, hash, user, his, n_his);
    if (e) t = usable_positions(e, tokens, P, rows, vals, ns, C);
    if (t > 0 && collm_llm_kv_import(ctx, e->kv, e->P, t) == COLLM_OK) {
        c->hits++;
        lru_unlink(c, e);
        lru_push_front(c, e);
    } else {
        t = 0;
        c->misses++;
    }
    pthread_mutex_unlock(&c->lock);
    return t;
}

// Keeps ctx's first P positions as the entry of (user, history), unless one
// is there already (another thread's, or one this request partly reused);
// then evicts from the cold end down to max_bytes. Out of memory only skips
// the insert (the cache is an optimisation).
static void cache_insert(collm_recommend_prefix_cache *c, const collm_llm_context *ctx, int32_t user,
                         const int32_t *his, int64_t n_his, const int32_t *tokens, int P, const int32_t *rows,
                         const float *vals, int ns, int C) {
    int64_t n_kv = collm_llm_kv_floats(collm_llm(c->m), P);
    int64_t bytes = (int64_t)sizeof(prefix_entry) + (n_his + P) * (int64_t)sizeof(int32_t) +
                    ((int64_t)ns * C + n_kv) * (int64_t)sizeof(float);
    if (bytes > c->max_bytes) return;
    prefix_entry *e = calloc(1, sizeof *e); // plain calloc: a failure sets no error message
    if (!e) return;
    e->hash = history_hash(user, his, n_his);
    e->user = user;
    e->n_his = n_his;
    e->P = P;
    e->n_slots = ns;
    e->bytes = bytes;
    e->his = malloc((size_t)(n_his > 0 ? n_his : 1) * sizeof(int32_t));
    e->tokens = malloc((size_t)P * sizeof(int32_t));
    e->slot_vals = malloc((size_t)(ns > 0 ? ns : 1) * C * sizeof(float));
    e->kv = malloc((size_t)n_kv * sizeof(float));
    if (!e->his || !e->tokens || !e->slot_vals || !e->kv || collm_llm_kv_export(ctx, P, e->kv) != COLLM_OK) {
        entry_free(e);
        return;
    }
    if (n_his) memcpy(e->his, his, (size_t)n_his * sizeof(int32_t));
    memcpy(e->tokens, tokens, (size_t)P * sizeof(int32_t));
    memcpy(e->rows, rows, (size_t)ns * sizeof(int32_t));
    if (ns) memcpy(e->slot_vals, vals, (size_t)ns * C * sizeof(float));
    pthread_mutex_lock(&c->lock);
    if (cache_find(c, e->hash, user, his, n_his)) {
        pthread_mutex_unlock(&c->lock);
        entry_free(e);
        return;
    }
    lru_push_front(c, e);
    c->bytes += e->bytes;
    c->entries++;
    while (c->bytes > c->max_bytes && c->tail != e) {
        prefix_entry *old = c->tail;
        lru_unlink(c, old);
        c->bytes -= old->bytes;
        c->entries--;
        c->evictions++;
        entry_free(old);
    }
    pthread_mutex_unlock(&c->lock);
}

// ---------------------------------------------------------------------------
// scoring

// The FECE mapping of every slot of enc (n prompts), in prompt order then
// slot order: out (Σ n_slots, n_embd). A user the CF model does not know
// maps the zero vector.
static int map_slots(const collm_model *m, const collm_encoded *enc, int n, float **out) {
    int64_t total = 0;
    for (int i = 0; i < n; i++) total += enc[i].n_slots;
    *out = NULL;
    if (total == 0) return COLLM_OK;
    int d = m->cf_dim, C = collm_llm(m)->hp.n_embd;
    float *x = collm_calloc((size_t)total * d, sizeof(float));   // (S, d)
    float *h = collm_malloc((size_t)total * m->fece.d_hidden * sizeof(float)); // (S, hidden)
    float *y = collm_malloc((size_t)total * C * sizeof(float));  // (S, C)
    if (!x || !h || !y) {
        free(x);
        free(h);
        free(y);
        return COLLM_ERR_NOMEM;
    }
    int64_t s = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < enc[i].n_slots; j++, s++) {
            const float *v = collm_slot_cf_vector(m, &enc[i], j);
            if (v) memcpy(x + s * d, v, (size_t)d * sizeof(float));
            else if (enc[i].slot_item[j] >= 0) { // items were validated before encoding
                free(x);
                free(h);
                free(y);
                return collm_error(COLLM_ERR_ARG, "item %d is outside the CF item table (%d items)",
                                   enc[i].slot_item[j], m->n_cf_items);
            } // else: unknown user → zero vector (calloc)
        }
    collm_fece_forward(&m->fece, x, (int)total, h, y);
    free(x);
    free(h);
    *out = y;
    return COLLM_OK;
}

// Index of slot of e at `row`, or -1.
static int slot_at(const collm_encoded *e, int row) {
    for (int s = 0; s < e->n_slots; s++)
        if (e->slot_row[s] == row) return s;
    return -1;
}

// Which slot (in text order) is the target item's: the slots are the
// template's <UserID> (1), <TargetItemID> (1) and <ItemIDList> (the history
// window) in the order they appear in the line (as collm_encode lists them).
// -1 when the template has no target slot.
static int target_slot_index(const collm_model *m, int64_t n_his) {
    const collm_prompt_template *tpl = collm_template(m);
    const char *user = strstr(tpl->line, "<UserID>"), *target = strstr(tpl->line, "<TargetItemID>");
    const char *list = strstr(tpl->line, "<ItemIDList>");
    if (!target) return -1;
    int64_t first, n_window;
    collm_prompt_history_window(tpl, n_his, &first, &n_window);
    int idx = 0;
    if (user && user < target) idx++;
    if (list && list < target) idx += (int)n_window;
    return idx;
}

// The shared prefix length over enc (n >= 1), see recommend.h: the longest
// common token prefix, cut before each prompt's last token, before the target
// item's slot and before any slot row that is not the same entity in every
// prompt.
static int shared_prefix_len(const collm_encoded *enc, int n, int target_slot) {
    int P = enc[0].n_tokens - 1;
    for (int i = 1; i < n; i++) {
        int lim = enc[i].n_tokens - 1 < P ? enc[i].n_tokens - 1 : P, t = 0;
        while (t < lim && enc[i].tokens[t] == enc[0].tokens[t]) t++;
        P = t;
    }
    for (int i = 0; i < n; i++) {
        if (target_slot >= 0 && target_slot < enc[i].n_slots && enc[i].slot_row[target_slot] < P)
            P = enc[i].slot_row[target_slot];
        for (int s = 0; s < enc[i].n_slots; s++) {
            int row = enc[i].slot_row[s];
            if (row >= P) continue;
            int s0 = slot_at(&enc[0], row);
            if (s0 < 0 || enc[0].slot_item[s0] != enc[i].slot_item[s]) P = row;
        }
        for (int s = 0; s < enc[0].n_slots; s++) // enc[0]'s slots must be slots in every prompt too
            if (enc[0].slot_row[s] < P && slot_at(&enc[i], enc[0].slot_row[s]) < 0) P = enc[0].slot_row[s];
    }
    return P;
}

static int score_items(const collm_model *m, const collm_rec_items *items, int32_t user, const int32_t *his,
                       int64_t n_his, const int32_t *cands, int n, int share_prefix, collm_llm_context *ctx,
                       collm_recommend_prefix_cache *cache, float *scores, int *prefix_tokens) {
    if (prefix_tokens) *prefix_tokens = 0;
    if (cache && cache->m != m)
        return collm_error(COLLM_ERR_ARG, "the prefix cache belongs to another model");
    if (n < 1) return collm_error_field(COLLM_ERR_ARG, "items", "items: need at least one item to score");
    int32_t n_cf_items = 0;
    int dim = 0;
    collm_cf_items(m, &n_cf_items, &dim);
    for (int i = 0; i < n; i++)
        if (cands[i] <= 0 || cands[i] >= items->n || (m->has_fece && cands[i] >= n_cf_items))
            return collm_error_field(COLLM_ERR_RANGE, "items", "items: item %d (position %d) is not in the catalogue (ids 1..%d)",
                                     cands[i], i, (m->has_fece && n_cf_items < items->n ? n_cf_items : items->n) - 1);
    int own_ctx = ctx == NULL;
    if (own_ctx && !(ctx = collm_recommend_context_create(m, NULL))) return COLLM_ERR;
    int n_ctx = collm_llm_context_n_ctx(ctx), n_batch = collm_llm_context_n_batch(ctx), C = collm_llm(m)->hp.n_embd;
    int32_t yes = collm_yes_token(m);
    collm_encoded *enc = collm_calloc((size_t)n, sizeof *enc);
    int64_t *slot_base = collm_malloc((size_t)n * sizeof(int64_t)); // first mapped slot of prompt i
    float *slot_y = NULL;
    int32_t *pack_tok = NULL, *pack_len = NULL, *pack_rows = NULL;
    float *pack_vals = NULL;
    int rc = enc && slot_base ? COLLM_OK : COLLM_ERR_NOMEM;
    int max_len = 0;
    for (int i = 0; i < n && rc == COLLM_OK; i++) {
        rc = collm_encode(m, items, user, his, n_his, cands[i], &enc[i]);
        if (rc == COLLM_OK && enc[i].n_tokens > max_len) max_len = enc[i].n_tokens;
    }
    if (rc == COLLM_OK && (max_len > n_ctx || max_len > n_batch))
        rc = collm_error(COLLM_ERR_ARG, "prompt of %d tokens does not fit the context (%d rows)", max_len,
                         n_ctx < n_batch ? n_ctx : n_batch);
    if (rc == COLLM_OK) rc = map_slots(m, enc, n, &slot_y);
    if (rc == COLLM_OK) {
        int64_t s = 0;
        for (int i = 0; i < n; i++) {
            slot_base[i] = s;
            s += enc[i].n_slots;
        }
    }
    int P = rc == COLLM_OK && share_prefix ? shared_prefix_len(enc, n, target_slot_index(m, n_his)) : 0;
    if (rc == COLLM_OK && P > 0) {
        // 1. the prefix, once: its slot rows are prompt 0's slots below P
        int32_t rows[COLLM_MAX_SLOTS];
        float *vals = collm_malloc((size_t)COLLM_MAX_SLOTS * C * sizeof(float));
        int ns = 0;
        if (!vals) rc = COLLM_ERR_NOMEM;
        for (int s = 0; rc == COLLM_OK && s < enc[0].n_slots; s++)
            if (enc[0].slot_row[s] < P) {
                rows[ns] = enc[0].slot_row[s];
                memcpy(vals + (int64_t)ns * C, slot_y + (slot_base[0] + s) * C, (size_t)C * sizeof(float));
                ns++;
            }
        // positions a cached entry of this user and history gives, then the rest
        int done = rc == COLLM_OK && cache ? cache_lookup(cache, ctx, user, his, n_his, enc[0].tokens, P, rows, vals, ns, C)
                                           : 0;
        if (rc == COLLM_OK && done < P && (rc = collm_llm_kv_truncate(ctx, done)) == COLLM_OK) {
            int32_t rest_rows[COLLM_MAX_SLOTS];
            int nr = 0, first = 0;
            for (int k = 0; k < ns; k++)
                if (rows[k] >= done) {
                    if (!nr) first = k; // slots are in row order: those >= done are contiguous
                    rest_rows[nr++] = rows[k] - done;
                }
            collm_llm_slot_rows pre = {nr, rest_rows, vals + (int64_t)first * C};
            rc = collm_llm_forward(ctx, enc[0].tokens + done, P - done, nr ? &pre : NULL, NULL, 0, NULL, 0, NULL);
            if (rc == COLLM_OK && cache && done == 0)
                cache_insert(cache, ctx, user, his, n_his, enc[0].tokens, P, rows, vals, ns, C);
        }
        free(vals);
        // 2. the suffixes, packed into batches of at most n_batch rows
        int max_rows = n_batch;
        pack_tok = collm_malloc((size_t)max_rows * sizeof(int32_t));
        pack_len = collm_malloc((size_t)n * sizeof(int32_t));
        pack_rows = collm_malloc((size_t)n * COLLM_MAX_SLOTS * sizeof(int32_t));
        pack_vals = collm_malloc((size_t)n * COLLM_MAX_SLOTS * C * sizeof(float));
        if (rc == COLLM_OK && (!pack_tok || !pack_len || !pack_rows || !pack_vals)) rc = COLLM_ERR_NOMEM;
        int i = 0;
        while (rc == COLLM_OK && i < n) {
            int cnt = 0, rows_used = 0, nslots = 0;
            while (i + cnt < n && rows_used + enc[i + cnt].n_tokens - P <= max_rows) {
                const collm_encoded *e = &enc[i + cnt];
                int len = e->n_tokens - P;
                memcpy(pack_tok + rows_used, e->tokens + P, (size_t)len * sizeof(int32_t));
                for (int s = 0; s < e->n_slots; s++)
                    if (e->slot_row[s] >= P) {
                        pack_rows[nslots] = rows_used + e->slot_row[s] - P;
                        memcpy(pack_vals + (int64_t)nslots * C, slot_y + (slot_base[i + cnt] + s) * C,
                               (size_t)C * sizeof(float));
                        nslots++;
                    }
                pack_len[cnt++] = len;
                rows_used += len;
            }
            collm_llm_slot_rows suf = {nslots, pack_rows, pack_vals};
            rc = collm_llm_score_suffixes(ctx, cnt, pack_tok, pack_len, nslots ? &suf : NULL, &yes, 1, scores + i);
            i += cnt;
        }
        if (prefix_tokens && rc == COLLM_OK) *prefix_tokens = P;
    } else if (rc == COLLM_OK) {
        // every prompt on its own
        for (int i = 0; i < n && rc == COLLM_OK; i++) {
            collm_llm_slot_rows all = {enc[i].n_slots, enc[i].slot_row, slot_y ? slot_y + slot_base[i] * C : NULL};
            int32_t last = enc[i].n_tokens - 1;
            if ((rc = collm_llm_kv_truncate(ctx, 0)) == COLLM_OK)
                rc = collm_llm_forward(ctx, enc[i].tokens, enc[i].n_tokens, enc[i].n_slots ? &all : NULL, &last, 1, &yes,
                                 1, scores + i);
        }
    }
    if (enc) collm_encoded_array_free(enc, n);
    free(slot_base);
    free(slot_y);
    free(pack_tok);
    free(pack_len);
    free(pack_rows);
    free(pack_vals);
    if (own_ctx) collm_llm_context_free(ctx);
    return rc;
}

int collm_recommend_score_items(const collm_model *m, const collm_rec_items *items, int32_t user, const int32_t *his,
                          int64_t n_his, const int32_t *cands, int n, int share_prefix, collm_llm_context *ctx,
                          float *scores, int *prefix_tokens) {
    if (!m || !items || !ctx || !scores || (n > 0 && !cands) || (n_his > 0 && !his))
        return collm_error(COLLM_ERR_ARG, "collm_recommend_score_items: NULL argument");
    return score_items(m, items, user, his, n_his, cands, n, share_prefix, ctx, NULL, scores, prefix_tokens);
}

int collm_recommend_score_items_cached(const collm_model *m, const collm_rec_items *items, int32_t user,
                                       const int32_t *his, int64_t n_his, const int32_t *cands, int n,
                                       collm_llm_context *ctx, collm_recommend_prefix_cache *cache, float *scores,
                                       int *prefix_tokens) {
    return score_items(m, items, user, his, n_his, cands, n, 1, ctx, cache, scores, prefix_tokens);
}

// ---------------------------------------------------------------------------
// retrieve + re-rank

// Standardises x (n) into z (n): (x - mean) / std, population std; 0 when
// the scores are all equal. Sums in double.
static void standardise(const float *x, int n, double *z) {
    double mean = 0, var = 0;
    for (int i = 0; i < n; i++) mean += x[i];
    mean /= n;
    for (int i = 0; i < n; i++) var += ((double)x[i] - mean) * ((double)x[i] - mean);
    double sd = sqrt(var / n);
    for (int i = 0; i < n; i++) z[i] = sd > 0 ? ((double)x[i] - mean) / sd : 0.0;
}

int collm_recommend_fuse(const float *llm, const float *retrieval, const float *log_pop, int n, float lambda,
                         float popularity, float *out) {
    if (n < 0 || (n > 0 && (!llm || !retrieval || !out)))
        return collm_error(COLLM_ERR_ARG, "collm_recommend_fuse: bad arguments");
    if (!(lambda >= 0 && isfinite(lambda)) || !(popularity >= 0 && isfinite(popularity)))
        return collm_error(COLLM_ERR_ARG, "fusion weights: lambda %g, popularity %g (each must be >= 0)", lambda, popularity);
    for (int i = 0; i < n; i++)
        if (!isfinite(llm[i]) || !isfinite(retrieval[i]) || (log_pop && !isfinite(log_pop[i])))
            return collm_error(COLLM_ERR_ARG, "collm_recommend_fuse: score %d is not finite", i);
    if (n == 0) return COLLM_OK;
    double *zl = collm_malloc((size_t)n * sizeof(double)), *zr = collm_malloc((size_t)n * sizeof(double));
    double *zp = collm_calloc((size_t)n, sizeof(double));
    if (!zl || !zr || !zp) {
        free(zl);
        free(zr);
        free(zp);
        return COLLM_ERR_NOMEM;
    }
    standardise(llm, n, zl);
    standardise(retrieval, n, zr);
    if (log_pop) standardise(log_pop, n, zp);
    for (int i = 0; i < n; i++) out[i] = (float)(zl[i] + (double)lambda * zr[i] + (double)popularity * zp[i]);
    free(zl);
    free(zr);
    free(zp);
    return COLLM_OK;
}

// Descending with NaN last: a total order even when a broken model scores
// NaN (x != y was true for NaN against anything, and so was "greater"'s
// negation both ways: qsort's behaviour was undefined).
static int desc_nan_last(float a, float b) {
    int na = isnan(a), nb = isnan(b);
    if (na || nb) return na - nb;
    return (a < b) - (a > b);
}

static int cmp_result(const void *a, const void *b) {
    const collm_recommend_item *x = a, *y = b;
    int c = desc_nan_last(x->score, y->score);
    if (!c) c = desc_nan_last(x->retrieval_score, y->retrieval_score);
    return c ? c : (x->item > y->item) - (x->item < y->item);
}

int collm_recommend_for_user(const collm_model *m, const collm_retrieval_index *index, const collm_rec_items *items,
                       const collm_recommend_histories *hist, const collm_recommend_request *req, collm_llm_context *ctx,
                       collm_recommend_item *out, collm_recommend_info *info) {
    return collm_recommend_for_user_cached(m, index, items, hist, req, ctx, NULL, out, info);
}

int collm_recommend_for_user_cached(const collm_model *m, const collm_retrieval_index *index,
                                    const collm_rec_items *items, const collm_recommend_histories *hist,
                                    const collm_recommend_request *req, collm_llm_context *ctx,
                                    collm_recommend_prefix_cache *cache, collm_recommend_item *out,
                                    collm_recommend_info *info) {
    collm_recommend_info local;
    if (!info) info = &local;
    memset(info, 0, sizeof *info);
    if (!m || !index || !items || !req || !out) return collm_error(COLLM_ERR_ARG, "collm_recommend_for_user: NULL argument");
    if (req->n_candidates < 1)
        return collm_error_field(COLLM_ERR_RANGE, "candidates", "candidates: must be >= 1 (got %d)", req->n_candidates);
    if (req->k < 1) return collm_error_field(COLLM_ERR_RANGE, "k", "k: must be >= 1 (got %d)", req->k);
    if (req->k > req->n_candidates)
        return collm_error_field(COLLM_ERR_RANGE, "k", "k: %d exceeds the number of candidates (%d)", req->k,
                                req->n_candidates);
    int32_t n_cf_items = 0, n_cf_users = 0;
    int d = 0, du = 0;
    const float *item_vecs = collm_cf_items(m, &n_cf_items, &d);
    const float *user_vecs = collm_cf_users(m, &n_cf_users, &du);
    if (!item_vecs) return collm_error(COLLM_ERR_ARG, "the checkpoint holds no collaborative vectors to retrieve with");
    if (collm_retrieval_index_dim(index) != d)
        return collm_error(COLLM_ERR_ARG, "index dimension %d differs from the checkpoint's CF dimension %d",
                           collm_retrieval_index_dim(index), d);
    if (!req->history && req->user < 0)
        return collm_error_field(COLLM_ERR_ARG, "user", "user: give a user id >= 0 or a history");
    float lambda, pop;
    collm_rerank_weights(m, &lambda, &pop, NULL);
    if (!isnan(req->fusion_lambda)) lambda = req->fusion_lambda;
    if (!isnan(req->fusion_popularity)) pop = req->fusion_popularity;
    if (!(lambda >= 0 && isfinite(lambda)))
        return collm_error_field(COLLM_ERR_ARG, "fusion_lambda", "fusion lambda: %g (must be >= 0 and finite)", lambda);
    if (!(pop >= 0 && isfinite(pop)))
        return collm_error_field(COLLM_ERR_ARG, "fusion_popularity", "fusion popularity: %g (must be >= 0 and finite)", pop);
    info->fusion_lambda = lambda;
    info->fusion_popularity = pop;
    int32_t *his = NULL;
    int64_t n_his = 0;
    int rc = collm_recommend_resolve_history(m, items, hist, req->user, req->history, req->n_history, &his, &n_his);
    if (rc) return rc;
    info->n_history = (int)n_his;
    float *query = collm_malloc((size_t)d * sizeof(float));
    int32_t *cand = collm_malloc((size_t)req->n_candidates * sizeof(int32_t));
    float *cand_score = collm_malloc((size_t)req->n_candidates * sizeof(float));
    float *llm = collm_malloc((size_t)req->n_candidates * sizeof(float));
    float *fused = collm_malloc((size_t)req->n_candidates * sizeof(float));
    float *cand_pop = collm_calloc((size_t)req->n_candidates, sizeof(float));
    collm_recommend_item *all = collm_malloc((size_t)req->n_candidates * sizeof *all);
    if (!query || !cand || !cand_score || !llm || !fused || !cand_pop || !all) rc = COLLM_ERR_NOMEM;
    double t0 = now_s();
    if (rc == COLLM_OK) {
        if (req->user >= 0 && req->user < n_cf_users && user_vecs) {
            memcpy(query, user_vecs + (int64_t)req->user * du, (size_t)d * sizeof(float));
        } else if (collm_cf_history_query(m, req->user, his, n_his, query) == 1) {
            // a history encoder's user vector (SASRec, DIN)
        } else {
            info->used_mean_query = 1;
            rc = collm_retrieval_mean_query(item_vecs, n_cf_items, d, his, (int)n_his, query);
            if (rc) { // name the request field the caller can fix
                char why[512];
                snprintf(why, sizeof why, "%s", collm_last_error());
                collm_error_field(rc, "history", "history: %s", why);
            }
        }
    }
    // left out of the candidates: the history, the request's exclude list, the rated items
    const int32_t *rated = NULL;
    int64_t n_rated = 0;
    if (req->exclude_rated && req->user >= 0) collm_recommend_user_rated(hist, req->user, &rated, &n_rated);
    if (req->n_exclude < 0 || (req->n_exclude > 0 && !req->exclude))
        rc = collm_error_field(COLLM_ERR_ARG, "exclude", "exclude: %d ids without a list", req->n_exclude);
    int64_t n_skip = n_his + (req->n_exclude > 0 ? req->n_exclude : 0) + n_rated;
    int32_t *skip = rc == COLLM_OK && n_skip > n_his ? collm_malloc((size_t)n_skip * sizeof(int32_t)) : NULL;
    if (rc == COLLM_OK && n_skip > n_his && !skip) rc = COLLM_ERR_NOMEM;
    if (skip) {
        memcpy(skip, his, (size_t)n_his * sizeof(int32_t));
        if (req->n_exclude > 0) memcpy(skip + n_his, req->exclude, (size_t)req->n_exclude * sizeof(int32_t));
        if (n_rated) memcpy(skip + n_his + req->n_exclude, rated, (size_t)n_rated * sizeof(int32_t));
    }
    if (rc == COLLM_OK && n_skip > INT32_MAX) rc = collm_error_field(COLLM_ERR_RANGE, "exclude", "exclude: too many ids");
    int found = 0;
    if (rc == COLLM_OK)
        rc = collm_retrieval_candidates(index, query, d, skip ? skip : his, (int)n_skip, req->n_candidates, cand,
                                        cand_score, &found);
    free(skip);
    for (int i = 0; rc == COLLM_OK && i < found; i++)
        if (cand[i] <= 0 || cand[i] >= items->n || cand[i] >= n_cf_items)
            rc = collm_error(COLLM_ERR_FORMAT, "the index returned item %d, outside the catalogue (%d items): "
                             "index and checkpoint do not match", cand[i], items->n);
    info->n_candidates = found;
    info->retrieve_s = now_s() - t0;
    t0 = now_s();
    if (rc == COLLM_OK && found > 0)
        rc = score_items(m, items, req->user, his, n_his, cand, found, req->share_prefix, ctx,
                         req->share_prefix ? cache : NULL, llm, &info->prefix_tokens);
    const float *log_pop = hist ? hist->log_pop : NULL; // no dataset: no popularity term
    for (int i = 0; rc == COLLM_OK && log_pop && i < found; i++) cand_pop[i] = cand[i] < hist->n_items ? log_pop[cand[i]] : 0;
    if (rc == COLLM_OK) rc = collm_recommend_fuse(llm, cand_score, log_pop ? cand_pop : NULL, found, lambda, pop, fused);
    info->rerank_s = now_s() - t0;
    if (rc == COLLM_OK) {
        for (int i = 0; i < found; i++) all[i] = (collm_recommend_item){cand[i], llm[i], cand_score[i], fused[i]};
        qsort(all, (size_t)found, sizeof *all, cmp_result);
        info->n_results = found < req->k ? found : req->k;
        memcpy(out, all, (size_t)info->n_results * sizeof *all);
    }
    free(his);
    free(query);
    free(cand);
    free(cand_score);
    free(llm);
    free(fused);
    free(cand_pop);
    free(all);
    return rc;
}
