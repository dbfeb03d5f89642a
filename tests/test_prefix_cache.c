// The per-user prefix cache of re-ranking (collm_recommend_prefix_cache): a
// second request of the same user and history reuses the cached K/V and
// scores bit for bit as the first (and as independent prompts, to float
// tolerance); another user or history misses; a prefix longer or shorter than
// the cached one reuses only the agreeing positions; the memory bound evicts
// the least recently used entry; a cache of another model is refused; threads
// sharing one cache get the serial scores (run under TSan by `make tsan`).
// Also collm_llm_kv_export / collm_llm_kv_import on their own.
#include <pthread.h>

#include "collm/collm.h"
#include "collm/error.h"
#include "collm/fileio.h"
#include "collm/recommend.h"
#include "collm/threadpool.h"
#include "fixtures.h"
#include "test.h"

static char dir[512], data_dir[600], base_path[600], mf_path[600];

#define NC 24 // candidates per request

static int same_bits(const float *a, const float *b, int n) { return memcmp(a, b, (size_t)n * sizeof(float)) == 0; }

static double max_diff(const float *a, const float *b, int n) {
    double w = 0;
    for (int i = 0; i < n; i++) w = fmax(w, fabs((double)a[i] - b[i]));
    return w;
}

static void stats(collm_recommend_prefix_cache *c, collm_recommend_prefix_stats *st) {
    collm_recommend_prefix_cache_stats(c, st);
}

// export -> import into a fresh context reproduces the next forward's logits exactly
static void test_kv_export_import(collm_model *m) {
    const collm_llm_model *llm = collm_llm(m);
    collm_llm_context *a = collm_llm_context_create(llm, 64, 64, NULL), *b = collm_llm_context_create(llm, 64, 64, NULL);
    CHECK(a && b);
    if (!a || !b) return;
    int32_t toks[12] = {1, 450, 1404, 338, 263, 1243, 310, 3869, 29889, 1939, 29973, 13};
    CHECK(collm_llm_forward(a, toks, 10, NULL, NULL, 0, NULL, 0, NULL) == COLLM_OK);
    int64_t nf = collm_llm_kv_floats(llm, 10);
    const collm_llm_hparams *hp = collm_llm_model_hparams(llm);
    CHECK(nf == 2LL * hp->n_layer * 10 * hp->n_head_kv * hp->head_dim);
    float *kv = malloc((size_t)nf * sizeof(float));
    CHECK(collm_llm_kv_export(a, 10, kv) == COLLM_OK);
    CHECK(collm_llm_kv_export(a, 11, kv) == COLLM_ERR_ARG); // beyond what is cached
    int32_t last = 1, yes = 3869;
    float la, lb, lc;
    CHECK(collm_llm_forward(a, toks + 10, 2, NULL, &last, 1, &yes, 1, &la) == COLLM_OK);
    CHECK(collm_llm_kv_import(b, kv, 10, 10) == COLLM_OK && collm_llm_kv_n_past(b) == 10);
    CHECK(collm_llm_forward(b, toks + 10, 2, NULL, &last, 1, &yes, 1, &lb) == COLLM_OK);
    CHECK_MSG(la == lb, "continued after import: %.9g vs %.9g", la, lb);
    // the first 7 positions only, then the rest forwarded: the same to rounding
    CHECK(collm_llm_kv_import(b, kv, 10, 7) == COLLM_OK && collm_llm_kv_n_past(b) == 7);
    int32_t last4 = 4;
    CHECK(collm_llm_forward(b, toks + 7, 5, NULL, &last4, 1, &yes, 1, &lc) == COLLM_OK);
    CHECK_NEAR(lc, la, 1e-5);
    CHECK(collm_llm_kv_import(b, kv, 10, 11) == COLLM_ERR_ARG);
    free(kv);
    collm_llm_context_free(a);
    collm_llm_context_free(b);
}

static void test_reuse(collm_model *m, const collm_rec_dataset *ds, const collm_recommend_histories *h) {
    collm_llm_context *ctx = collm_recommend_context_create(m, NULL);
    collm_recommend_prefix_cache *c = collm_recommend_prefix_cache_create(m, 64 << 20);
    CHECK(ctx && c);
    if (!ctx || !c) return;
    const int32_t *his, *his2;
    int64_t n_his, n_his2;
    CHECK(collm_recommend_user_history(h, 9, &his, &n_his) == COLLM_OK);
    CHECK(collm_recommend_user_history(h, 12, &his2, &n_his2) == COLLM_OK);
    int32_t cands[NC];
    for (int i = 0; i < NC; i++) cands[i] = 2 * i + 1;
    float first[NC], second[NC], indep[NC], plain[NC], other[NC];
    int P1 = 0, P2 = 0;
    CHECK(collm_recommend_score_items(m, ds->items, 9, his, n_his, cands, NC, 0, ctx, indep, NULL) == COLLM_OK);
    CHECK(collm_recommend_score_items(m, ds->items, 9, his, n_his, cands, NC, 1, ctx, plain, NULL) == COLLM_OK);
    CHECK(collm_recommend_score_items_cached(m, ds->items, 9, his, n_his, cands, NC, ctx, c, first, &P1) == COLLM_OK);
    collm_recommend_prefix_stats st;
    stats(c, &st);
    CHECK(st.misses == 1 && st.hits == 0 && st.entries == 1);
    CHECK(st.bytes > 4 * collm_llm_kv_floats(collm_llm(m), P1) && st.bytes <= st.max_bytes);
    CHECK(P1 > 10);
    // a request of another user in between: the context's cache now holds that prefix
    CHECK(collm_recommend_score_items_cached(m, ds->items, 12, his2, n_his2, cands, NC, ctx, c, other, NULL) == COLLM_OK);
    CHECK(collm_recommend_score_items_cached(m, ds->items, 9, his, n_his, cands, NC, ctx, c, second, &P2) == COLLM_OK);
    stats(c, &st);
    CHECK_MSG(st.hits == 1 && st.misses == 2 && st.entries == 2, "hits %lld misses %lld entries %lld",
              (long long)st.hits, (long long)st.misses, (long long)st.entries);
    CHECK(P2 == P1);
    CHECK_MSG(same_bits(first, second, NC), "second request differs from the first: max |d| = %g",
              max_diff(first, second, NC));
    CHECK(same_bits(first, plain, NC)); // the cache changes nothing on a miss either
    CHECK_MSG(max_diff(first, indep, NC) <= 1e-4, "cached vs independent prompts: %g", max_diff(first, indep, NC));
    // the same user with another history (one item fewer) misses
    CHECK(collm_recommend_score_items_cached(m, ds->items, 9, his, n_his - 1, cands, NC, ctx, c, other, NULL) ==
          COLLM_OK);
    stats(c, &st);
    CHECK(st.misses == 3 && st.entries == 3);

    // one candidate: its prefix runs up to the target slot (title included),
    // longer than the cached one: the cached positions, then the rest
    float one, one_indep;
    int P_one = 0;
    CHECK(collm_recommend_score_items_cached(m, ds->items, 9, his, n_his, cands + 5, 1, ctx, c, &one, &P_one) ==
          COLLM_OK);
    CHECK(collm_recommend_score_items(m, ds->items, 9, his, n_his, cands + 5, 1, 0, ctx, &one_indep, NULL) == COLLM_OK);
    stats(c, &st);
    CHECK(P_one > P1 && st.hits == 2);
    CHECK_NEAR(one, one_indep, 1e-4);
    CHECK_NEAR(one, first[5], 1e-4);

    // shorter than cached: a fresh cache filled by the one-candidate request,
    // then the 24 candidates reuse its first P1 positions
    collm_recommend_prefix_cache *c2 = collm_recommend_prefix_cache_create(m, 64 << 20);
    float again[NC];
    CHECK(collm_recommend_score_items_cached(m, ds->items, 9, his, n_his, cands + 5, 1, ctx, c2, &one, NULL) == COLLM_OK);
    CHECK(collm_recommend_score_items_cached(m, ds->items, 9, his, n_his, cands, NC, ctx, c2, again, NULL) == COLLM_OK);
    stats(c2, &st);
    CHECK(st.hits == 1 && st.misses == 1);
    CHECK_MSG(max_diff(again, indep, NC) <= 1e-4, "reusing a longer entry: %g", max_diff(again, indep, NC));
    collm_recommend_prefix_cache_free(c2);

    // through collm_recommend_for_user_cached: the same ranking twice, one hit
    int32_t n_items;
    int d;
    const float *iv = collm_cf_items(m, &n_items, &d);
    collm_retrieval_build_options bo;
    collm_retrieval_build_options_default(&bo);
    collm_retrieval_index *index = collm_retrieval_index_build(iv, n_items, d, &bo);
    CHECK(index != NULL);
    collm_recommend_prefix_cache *c3 = collm_recommend_prefix_cache_create(m, 64 << 20);
    collm_recommend_request req;
    collm_recommend_request_default(&req);
    req.user = 9;
    req.k = 5;
    req.n_candidates = 20;
    collm_recommend_item r1[5], r2[5], r0[5];
    CHECK(index && collm_recommend_for_user_cached(m, index, ds->items, h, &req, ctx, c3, r1, NULL) == COLLM_OK);
    CHECK(index && collm_recommend_for_user_cached(m, index, ds->items, h, &req, ctx, c3, r2, NULL) == COLLM_OK);
    CHECK(index && collm_recommend_for_user(m, index, ds->items, h, &req, ctx, r0, NULL) == COLLM_OK);
    stats(c3, &st);
    CHECK(st.hits == 1 && st.misses == 1);
    CHECK(memcmp(r1, r2, sizeof r1) == 0 && memcmp(r1, r0, sizeof r1) == 0);
    req.share_prefix = 0; // no prefix, no cache use
    CHECK(index && collm_recommend_for_user_cached(m, index, ds->items, h, &req, ctx, c3, r2, NULL) == COLLM_OK);
    stats(c3, &st);
    CHECK(st.hits == 1 && st.misses == 1);
    collm_recommend_prefix_cache_free(c3);
    collm_retrieval_index_free(index);
    collm_recommend_prefix_cache_free(c);
    collm_llm_context_free(ctx);
}

// A bound that holds one entry: each new user evicts the previous one.
static void test_eviction(collm_model *m, const collm_rec_dataset *ds, const collm_recommend_histories *h) {
    collm_llm_context *ctx = collm_recommend_context_create(m, NULL);
    collm_recommend_prefix_cache *probe = collm_recommend_prefix_cache_create(m, 64 << 20);
    int32_t cands[NC];
    for (int i = 0; i < NC; i++) cands[i] = 2 * i + 1;
    float s[NC];
    const int32_t users[3] = {9, 12, 15};
    int64_t biggest = 0;
    for (int k = 0; k < 3; k++) { // entry sizes of the three users
        const int32_t *his;
        int64_t n_his;
        CHECK(collm_recommend_user_history(h, users[k], &his, &n_his) == COLLM_OK);
        collm_recommend_prefix_stats before, after;
        stats(probe, &before);
        CHECK(collm_recommend_score_items_cached(m, ds->items, users[k], his, n_his, cands, NC, ctx, probe, s, NULL) ==
              COLLM_OK);
        stats(probe, &after);
        if (after.bytes - before.bytes > biggest) biggest = after.bytes - before.bytes;
    }
    collm_recommend_prefix_cache_free(probe);
    collm_recommend_prefix_cache *c = collm_recommend_prefix_cache_create(m, biggest + biggest / 2);
    collm_recommend_prefix_stats st;
    for (int round = 0; round < 2; round++)
        for (int k = 0; k < 3; k++) {
            const int32_t *his;
            int64_t n_his;
            CHECK(collm_recommend_user_history(h, users[k], &his, &n_his) == COLLM_OK);
            CHECK(collm_recommend_score_items_cached(m, ds->items, users[k], his, n_his, cands, NC, ctx, c, s, NULL) ==
                  COLLM_OK);
            stats(c, &st);
            CHECK(st.entries == 1 && st.bytes <= st.max_bytes);
        }
    CHECK_MSG(st.misses == 6 && st.hits == 0 && st.evictions == 5, "misses %lld hits %lld evictions %lld",
              (long long)st.misses, (long long)st.hits, (long long)st.evictions);
    // the most recent user is still there
    const int32_t *his;
    int64_t n_his;
    CHECK(collm_recommend_user_history(h, 15, &his, &n_his) == COLLM_OK);
    CHECK(collm_recommend_score_items_cached(m, ds->items, 15, his, n_his, cands, NC, ctx, c, s, NULL) == COLLM_OK);
    stats(c, &st);
    CHECK(st.hits == 1);
    collm_recommend_prefix_cache_free(c);
    // a bound below one entry keeps nothing
    c = collm_recommend_prefix_cache_create(m, 1000);
    CHECK(collm_recommend_score_items_cached(m, ds->items, 15, his, n_his, cands, NC, ctx, c, s, NULL) == COLLM_OK);
    stats(c, &st);
    CHECK(st.entries == 0 && st.bytes == 0 && st.misses == 1);
    collm_recommend_prefix_cache_free(c);
    CHECK(collm_recommend_prefix_cache_create(m, 0) == NULL);
    collm_llm_context_free(ctx);
}

typedef struct {
    collm_model *m;
    const collm_rec_dataset *ds;
    const collm_recommend_histories *h;
    collm_recommend_prefix_cache *c;
    int thread;
    float scores[4][NC]; // the last scores of each user
    int rc;
} worker_arg;

static const int32_t worker_users[4] = {9, 12, 15, 21};

static void *worker(void *arg_) {
    worker_arg *a = arg_;
    collm_llm_context *ctx = collm_recommend_context_create(a->m, NULL);
    if (!ctx) {
        a->rc = COLLM_ERR;
        return NULL;
    }
    int32_t cands[NC];
    for (int i = 0; i < NC; i++) cands[i] = 2 * i + 1;
    static const int order[6] = {0, 0, 1, 2, 3, 3}; // repeats: hits (unless other threads evicted in between)
    for (int it = 0; it < 6 && a->rc == COLLM_OK; it++) {
        int k = (order[it] + a->thread) % 4;
        const int32_t *his;
        int64_t n_his;
        a->rc = collm_recommend_user_history(a->h, worker_users[k], &his, &n_his);
        if (a->rc == COLLM_OK)
            a->rc = collm_recommend_score_items_cached(a->m, a->ds->items, worker_users[k], his, n_his, cands, NC, ctx,
                                                       a->c, a->scores[k], NULL);
    }
    collm_llm_context_free(ctx);
    return NULL;
}

// Four threads, one cache (room for three of the four users: evictions race lookups).
static void test_threads(collm_model *m, const collm_rec_dataset *ds, const collm_recommend_histories *h) {
    collm_llm_context *ctx = collm_recommend_context_create(m, NULL);
    float want[4][NC];
    int32_t cands[NC];
    for (int i = 0; i < NC; i++) cands[i] = 2 * i + 1;
    collm_recommend_prefix_cache *probe = collm_recommend_prefix_cache_create(m, 64 << 20);
    for (int k = 0; k < 4; k++) {
        const int32_t *his;
        int64_t n_his;
        CHECK(collm_recommend_user_history(h, worker_users[k], &his, &n_his) == COLLM_OK);
        CHECK(collm_recommend_score_items_cached(m, ds->items, worker_users[k], his, n_his, cands, NC, ctx, probe,
                                                 want[k], NULL) == COLLM_OK);
    }
    collm_recommend_prefix_stats all;
    stats(probe, &all);
    CHECK(all.entries == 4);
    collm_recommend_prefix_cache_free(probe);
    collm_llm_context_free(ctx);
    // one byte short of the four entries: every user is inserted at least once, so at least one eviction
    collm_recommend_prefix_cache *c = collm_recommend_prefix_cache_create(m, all.bytes - 1);
    worker_arg args[4];
    pthread_t th[4];
    for (int t = 0; t < 4; t++) {
        memset(&args[t], 0, sizeof args[t]);
        args[t] = (worker_arg){.m = m, .ds = ds, .h = h, .c = c, .thread = t};
        CHECK(pthread_create(&th[t], NULL, worker, &args[t]) == 0);
    }
    for (int t = 0; t < 4; t++) pthread_join(th[t], NULL);
    for (int t = 0; t < 4; t++) {
        CHECK_MSG(args[t].rc == COLLM_OK, "thread %d: %d", t, args[t].rc);
        for (int k = 0; k < 4; k++) // each thread saw every user at least once in 6 rounds
            CHECK_MSG(same_bits(args[t].scores[k], want[k], NC), "thread %d user %d: max |d| = %g", t, worker_users[k],
                      max_diff(args[t].scores[k], want[k], NC));
    }
    collm_recommend_prefix_stats st;
    stats(c, &st);
    // how many hit depends on the interleaving; the accounting does not
    CHECK_MSG(st.hits + st.misses == 24 && st.bytes <= st.max_bytes && st.entries >= 1 && st.entries <= 3 &&
                  st.evictions >= 1,
              "hits %lld misses %lld entries %lld bytes %lld of %lld", (long long)st.hits, (long long)st.misses,
              (long long)st.entries, (long long)st.bytes, (long long)st.max_bytes);
    collm_recommend_prefix_cache_free(c);
}

int main(void) {
    snprintf(dir, sizeof dir, "%s/prefix_cache", test_tmp_dir());
    snprintf(data_dir, sizeof data_dir, "%s/data", dir);
    snprintf(base_path, sizeof base_path, "%s/base.gguf", dir);
    snprintf(mf_path, sizeof mf_path, "%s/mf.gguf", dir);
    collm_mkdir_p(dir);
    collm_blas_set_threads(1);
    CHECK(fixture_tiny_llama(base_path, 2, 1, 7) == COLLM_OK);
    CHECK_MSG(fixture_synth_and_mf(data_dir, mf_path, 50, 90, 5) == COLLM_OK, "%s", collm_last_error());
    collm_rec_dataset *ds = collm_rec_dataset_load(data_dir);
    collm_recommend_histories *h = ds ? collm_recommend_histories_build(ds) : NULL;
    collm_build_options b;
    collm_build_options_default(&b);
    b.base_path = base_path;
    b.cf_path = mf_path;
    b.stage = 2;
    b.template_path = "prompts/collm_movie_ids.txt"; // user slot and history-item slots in the prefix
    collm_model *m = h ? collm_model_build(&b, ds, NULL) : NULL;
    collm_model *m2 = m ? collm_model_build(&b, ds, NULL) : NULL;
    CHECK_MSG(m && m2, "%s", collm_last_error());
    if (m && m2) {
        test_kv_export_import(m);
        test_reuse(m, ds, h);
        test_eviction(m, ds, h);
        test_threads(m, ds, h);
        // a cache of another model is refused
        collm_recommend_prefix_cache *c = collm_recommend_prefix_cache_create(m2, 1 << 20);
        const int32_t *his;
        int64_t n_his;
        int32_t cand = 3;
        float s;
        CHECK(collm_recommend_user_history(h, 9, &his, &n_his) == COLLM_OK);
        CHECK(collm_recommend_score_items_cached(m, ds->items, 9, his, n_his, &cand, 1, NULL, c, &s, NULL) ==
              COLLM_ERR_ARG);
        CHECK(strstr(collm_last_error(), "another model") != NULL);
        collm_recommend_prefix_cache_free(c);
    }
    collm_model_free(m2);
    collm_model_free(m);
    collm_recommend_histories_free(h);
    collm_rec_dataset_free(ds);
    return test_report();
}
