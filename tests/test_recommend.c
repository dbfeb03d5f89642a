// Top-K recommendation on a tiny trained CoLLM: shared-prefix re-ranking
// equals independent scoring of every full prompt (through the packed
// trainer and through the inference engine), history exclusion, retrieval
// scores against hand-computed inner products, the cold-start (history-mean)
// path, the user-history rule and bad input.
#include "collm/cf.h"
#include "collm/collm.h"
#include "collm/error.h"
#include "collm/fileio.h"
#include "collm/prepare.h"
#include "collm/recommend.h"
#include "collm/retrieval.h"
#include "recommender/collm_internal.h"
#include "fixtures.h"
#include "test.h"

static char dir[512], data_dir[600], base_path[600], mf_path[600], ckpt_path[600];


// Stage 2 (FECE + ID slots) trained for a few steps, saved and reloaded.
static int make_checkpoint(const collm_rec_dataset *ds) {
    collm_build_options b;
    collm_build_options_default(&b);
    b.base_path = base_path;
    b.cf_path = mf_path;
    b.stage = 2;
    collm_model *m = collm_model_build(&b, ds, NULL);
    if (!m) return COLLM_ERR;
    collm_train_options t = fixture_train_options(4, 1, 16, ckpt_path);
    t.lr = 1e-2;
    collm_train_result res;
    int rc = collm_train(m, ds, &t, &res);
    collm_model_free(m);
    return rc;
}

static double dot(const float *a, const float *b, int d) {
    double s = 0;
    for (int i = 0; i < d; i++) s += (double)a[i] * b[i];
    return s;
}

// Shared prefix vs (a) every prompt through collm_llm_forward on its own and (b)
// the packed trainer (collm_score_encoded), for one user and n candidates.
static void check_shared_equals_independent(collm_model *m, const collm_rec_items *items, int32_t user, const int32_t *his,
                                            int64_t n_his, const int32_t *cands, int n, collm_llm_context *ctx,
                                            int expect_prefix_slots) {
    float *shared = malloc(sizeof(float) * n), *indep = malloc(sizeof(float) * n), *packed = malloc(sizeof(float) * n);
    int P = -1, P0 = -1;
    CHECK(collm_recommend_score_items(m, items, user, his, n_his, cands, n, 1, ctx, shared, &P) == COLLM_OK);
    CHECK(collm_recommend_score_items(m, items, user, his, n_his, cands, n, 0, ctx, indep, &P0) == COLLM_OK);
    CHECK(P0 == 0);
    collm_encoded *enc = calloc((size_t)n, sizeof *enc);
    int min_len = 1 << 30, prefix_slots = 0;
    for (int i = 0; i < n; i++) {
        CHECK(collm_encode(m, items, user, his, n_his, cands[i], &enc[i]) == COLLM_OK);
        if (enc[i].n_tokens < min_len) min_len = enc[i].n_tokens;
    }
    for (int s = 0; s < enc[0].n_slots; s++) {
        if (enc[0].slot_row[s] < P) prefix_slots++;
        if (s == enc[0].n_slots - 1) CHECK_MSG(enc[0].slot_row[s] >= P, "target slot inside the prefix");
    }
    CHECK_MSG(P > 10 && P < min_len, "prefix %d of prompts >= %d tokens", P, min_len);
    CHECK_MSG(prefix_slots == expect_prefix_slots, "%d slots in the prefix, expected %d", prefix_slots,
              expect_prefix_slots);
    int32_t n_users_cf;
    int du;
    collm_cf_users(m, &n_users_cf, &du);
    int known = user >= 0 && user < n_users_cf; // the packed trainer refuses users outside the CF table
    if (known) CHECK(collm_score_encoded(m, enc, n, 5, packed) == COLLM_OK);
    double worst = 0, worst_packed = 0, spread = 0;
    for (int i = 0; i < n; i++) {
        worst = fmax(worst, fabs(shared[i] - indep[i]));
        if (known) worst_packed = fmax(worst_packed, fabs(shared[i] - packed[i]));
        spread = fmax(spread, fabs(shared[i] - shared[0]));
    }
    CHECK_MSG(worst <= 1e-4, "shared prefix vs collm_llm_forward per prompt: max |d| = %g", worst);
    CHECK_MSG(worst_packed <= 1e-4, "shared prefix vs collm_score_encoded: max |d| = %g", worst_packed);
    if (n > 1) CHECK_MSG(spread > 1e-3, "candidate scores do not differ (%g): the comparison would prove nothing", spread);
    collm_encoded_array_free(enc, n);
    free(shared);
    free(indep);
    free(packed);
}

static void test_histories(const collm_rec_dataset *ds, const collm_recommend_histories *h) {
    // brute force: the row with the largest timestamp, the later split / row on ties
    int checked = 0;
    for (int32_t u = 1; u < ds->n_users && checked < 20; u += 3) {
        const collm_rec_split *best = NULL;
        int64_t best_r = -1;
        const collm_rec_split *sp[2] = {ds->train, ds->valid};
        for (int s = 0; s < 2; s++)
            for (int64_t r = 0; sp[s] && r < sp[s]->n; r++)
                if (sp[s]->user[r] == u && (!best || sp[s]->timestamp[r] >= best->timestamp[best_r])) {
                    best = sp[s];
                    best_r = r;
                }
        const int32_t *his;
        int64_t n;
        int rc = collm_recommend_user_history(h, u, &his, &n);
        if (!best) {
            CHECK(rc == COLLM_ERR_NOT_FOUND);
            continue;
        }
        CHECK(rc == COLLM_OK);
        if (rc) continue;
        int64_t n0 = best->his_offset[best_r + 1] - best->his_offset[best_r];
        CHECK(n == n0 + (best->label[best_r] ? 1 : 0));
        CHECK(memcmp(his, best->his + best->his_offset[best_r], (size_t)n0 * sizeof(int32_t)) == 0);
        if (best->label[best_r]) CHECK(his[n - 1] == best->item[best_r]);
        checked++;
    }
    CHECK(checked >= 10);
    const int32_t *his;
    int64_t n;
    CHECK(collm_recommend_user_history(h, 1 << 20, &his, &n) == COLLM_ERR_NOT_FOUND);
    CHECK(strstr(collm_last_error(), "1048576") != NULL);
    CHECK(collm_last_error_field() && strcmp(collm_last_error_field(), "user") == 0);
}

static void test_recommend(collm_model *m, const collm_rec_dataset *ds, const collm_recommend_histories *h,
                           const collm_retrieval_index *index, collm_llm_context *ctx) {
    int32_t n_items_cf, n_users_cf;
    int d, du;
    const float *iv = collm_cf_items(m, &n_items_cf, &d);
    const float *uv = collm_cf_users(m, &n_users_cf, &du);
    CHECK(iv && uv && d == du && n_items_cf == ds->n_items);

    // a known user: shared prefix equals independent scoring, over many candidates
    int32_t user = 5;
    const int32_t *his;
    int64_t n_his;
    CHECK(collm_recommend_user_history(h, user, &his, &n_his) == COLLM_OK);
    int32_t cands[40];
    int nc = 0;
    for (int32_t it = 1; it < ds->n_items && nc < 40; it++) cands[nc++] = it;
    check_shared_equals_independent(m, ds->items, user, his, n_his, cands, nc, ctx, 1);
    check_shared_equals_independent(m, ds->items, user, his, n_his, cands, 1, ctx, 1); // one candidate
    // a context too small for all suffixes in one batch: several packed batches
    collm_llm_context *small = collm_llm_context_create(collm_llm(m), 512, 300, NULL);
    check_shared_equals_independent(m, ds->items, user, his, n_his, cands, nc, small, 1);
    collm_llm_context_free(small);

    collm_recommend_request req;
    collm_recommend_request_default(&req);
    req.user = user;
    req.k = 10;
    req.n_candidates = 30;
    req.fusion_lambda = 0; // the LLM's own order (fusion: test_fusion)
    collm_recommend_item out[30];
    collm_recommend_info info;
    CHECK(collm_recommend_for_user(m, index, ds->items, h, &req, ctx, out, &info) == COLLM_OK);
    CHECK(info.n_results == 10 && info.n_candidates == 30 && !info.used_mean_query && info.prefix_tokens > 0);
    int sorted = 1, excluded = 1;
    for (int i = 0; i < info.n_results; i++) {
        if (i && out[i].llm_score > out[i - 1].llm_score) sorted = 0;
        for (int64_t j = 0; j < n_his; j++)
            if (his[j] == out[i].item) excluded = 0;
        CHECK_NEAR(out[i].retrieval_score, dot(uv + (int64_t)user * d, iv + (int64_t)out[i].item * d, d), 1e-4);
    }
    CHECK(sorted);
    CHECK(excluded);
    // the results' LLM scores equal independent scoring of those items
    int32_t top[10];
    float ref[10];
    for (int i = 0; i < 10; i++) top[i] = out[i].item;
    CHECK(collm_recommend_score_items(m, ds->items, user, his, n_his, top, 10, 0, ctx, ref, NULL) == COLLM_OK);
    double worst = 0;
    for (int i = 0; i < 10; i++) worst = fmax(worst, fabs(ref[i] - out[i].llm_score));
    CHECK_MSG(worst <= 1e-4, "recommend scores vs independent: %g", worst);
    // the re-ranked top-10 is the best 10 of the 30 candidates by LLM score
    req.k = 30;
    collm_recommend_item all[30];
    CHECK(collm_recommend_for_user(m, index, ds->items, h, &req, ctx, all, &info) == COLLM_OK);
    for (int i = 0; i < 10; i++) CHECK(all[i].item == out[i].item);
    // without prefix sharing: the same ranking
    req.share_prefix = 0;
    collm_recommend_item noshare[30];
    CHECK(collm_recommend_for_user(m, index, ds->items, h, &req, ctx, noshare, &info) == COLLM_OK && info.prefix_tokens == 0);
    worst = 0;
    for (int i = 0; i < 30; i++) {
        int32_t it = all[i].item;
        for (int j = 0; j < 30; j++)
            if (noshare[j].item == it) worst = fmax(worst, fabs(noshare[j].llm_score - all[i].llm_score));
    }
    CHECK_MSG(worst <= 1e-4, "share vs no share through collm_recommend_for_user: %g", worst);
    req.share_prefix = 1;

    // explicit history, anonymous user: mean-of-history query, sentinel added
    int32_t explicit_his[3] = {12, 7, 33};
    req.user = -1;
    req.history = explicit_his;
    req.n_history = 3;
    req.k = 5;
    CHECK(collm_recommend_for_user(m, index, ds->items, h, &req, ctx, out, &info) == COLLM_OK);
    CHECK(info.used_mean_query && info.n_results == 5 && info.n_history == 4);
    float mean[64];
    for (int j = 0; j < d; j++)
        mean[j] = (iv[12 * d + j] + iv[7 * d + j] + iv[33 * d + j]) / 3.0f;
    for (int i = 0; i < info.n_results; i++) {
        CHECK(out[i].item != 12 && out[i].item != 7 && out[i].item != 33 && out[i].item != 0);
        CHECK_NEAR(out[i].retrieval_score, dot(mean, iv + (int64_t)out[i].item * d, d), 1e-4);
    }
    // a user unknown to the CF model, with a history: the same mean query
    req.user = n_users_cf + 5;
    collm_recommend_item cold[5];
    CHECK(collm_recommend_for_user(m, index, ds->items, h, &req, ctx, cold, &info) == COLLM_OK && info.used_mean_query);
    for (int i = 0; i < 5; i++) CHECK(cold[i].retrieval_score == out[i].retrieval_score || cold[i].item != out[i].item);
    // ... and its shared-prefix scores still equal independent ones (zero user vector)
    int32_t his3[4] = {0, 12, 7, 33};
    check_shared_equals_independent(m, ds->items, n_users_cf + 5, his3, 4, cands, 20, ctx, 1);

    // bad input → clear errors
    int32_t bad_his[2] = {3, 99999};
    req.user = -1;
    req.history = bad_his;
    req.n_history = 2;
    CHECK(collm_recommend_for_user(m, index, ds->items, h, &req, ctx, out, &info) == COLLM_ERR_RANGE);
    CHECK(strstr(collm_last_error(), "history") && strstr(collm_last_error(), "99999"));
    CHECK(collm_last_error_field() && strcmp(collm_last_error_field(), "history") == 0);
    req.history = explicit_his;
    req.n_history = 3;
    req.k = 0;
    CHECK(collm_recommend_for_user(m, index, ds->items, h, &req, ctx, out, &info) == COLLM_ERR_RANGE);
    CHECK(strstr(collm_last_error(), "k:") != NULL);
    CHECK(collm_last_error_field() && strcmp(collm_last_error_field(), "k") == 0);
    req.k = 31;
    CHECK(collm_recommend_for_user(m, index, ds->items, h, &req, ctx, out, &info) == COLLM_ERR_RANGE);
    CHECK(strstr(collm_last_error(), "exceeds") != NULL);
    req.k = 5;
    req.n_candidates = 0;
    CHECK(collm_recommend_for_user(m, index, ds->items, h, &req, ctx, out, &info) == COLLM_ERR_RANGE);
    CHECK(strstr(collm_last_error(), "candidates") != NULL);
    CHECK(collm_last_error_field() && strcmp(collm_last_error_field(), "candidates") == 0);
    req.n_candidates = 30;
    req.history = NULL;
    req.user = 1 << 20; // neither in the data nor given a history
    CHECK(collm_recommend_for_user(m, index, ds->items, h, &req, ctx, out, &info) == COLLM_ERR_NOT_FOUND);
    CHECK(strstr(collm_last_error(), "unknown") != NULL);
    req.user = -1;
    CHECK(collm_recommend_for_user(m, index, ds->items, h, &req, ctx, out, &info) == COLLM_ERR_ARG);
    int32_t only_sentinel[1] = {0};
    req.history = only_sentinel;
    req.n_history = 1;
    CHECK(collm_recommend_for_user(m, index, ds->items, h, &req, ctx, out, &info) != COLLM_OK); // no item to average
    int32_t bad_items[2] = {4, ds->n_items};
    float sc[2];
    CHECK(collm_recommend_score_items(m, ds->items, user, his, n_his, bad_items, 2, 1, ctx, sc, NULL) == COLLM_ERR_RANGE);
    CHECK(strstr(collm_last_error(), "items") != NULL);
    CHECK(collm_last_error_field() && strcmp(collm_last_error_field(), "items") == 0);
    bad_items[1] = 0;
    CHECK(collm_recommend_score_items(m, ds->items, user, his, n_his, bad_items, 2, 1, ctx, sc, NULL) == COLLM_ERR_RANGE);
    CHECK(collm_recommend_score_items(m, ds->items, user, his, n_his, bad_items, 0, 1, ctx, sc, NULL) == COLLM_ERR_ARG);
}

// collm_recommend_fuse against hand-computed z-scores.
static void test_fuse_by_hand(void) {
    // llm {1, 2, 3}: mean 2, population sd sqrt(2/3) → z = {-1.2247, 0, 1.2247}
    // ret {10, 10, 40}: mean 20, sd sqrt(200) → z = {-0.7071, -0.7071, 1.4142}
    // pop {0, 2, 4}: mean 2, sd sqrt(8/3) → z = {-1.2247, 0, 1.2247}
    float llm[] = {1, 2, 3}, ret[] = {10, 10, 40}, pop[] = {0, 2, 4}, out[3];
    double zl = 1 / sqrt(2.0 / 3), zr = 10 / sqrt(200.0), zp = 2 / sqrt(8.0 / 3);
    CHECK(collm_recommend_fuse(llm, ret, NULL, 3, 2.0f, 5.0f, out) == COLLM_OK); // no popularity: μ unused
    CHECK_NEAR(out[0], -zl - 2 * zr, 1e-6);
    CHECK_NEAR(out[1], 0 - 2 * zr, 1e-6);
    CHECK_NEAR(out[2], zl + 4 * zr, 1e-6);
    CHECK(collm_recommend_fuse(llm, ret, pop, 3, 2.0f, 0.5f, out) == COLLM_OK);
    CHECK_NEAR(out[0], -zl - 2 * zr - 0.5 * zp, 1e-6);
    CHECK_NEAR(out[1], 0 - 2 * zr + 0, 1e-6);
    CHECK_NEAR(out[2], zl + 4 * zr + 0.5 * zp, 1e-6);
    CHECK(collm_recommend_fuse(llm, ret, pop, 3, 0.0f, 0.0f, out) == COLLM_OK);
    CHECK_NEAR(out[0], -zl, 1e-6);
    // constant scores carry no order: z = 0
    float same[] = {5, 5, 5};
    CHECK(collm_recommend_fuse(same, ret, same, 3, 1.0f, 3.0f, out) == COLLM_OK);
    CHECK_NEAR(out[2], 2 * zr, 1e-6);
    CHECK(collm_recommend_fuse(llm, ret, pop, 1, 1.0f, 1.0f, out) == COLLM_OK && out[0] == 0);
    CHECK(collm_recommend_fuse(llm, ret, pop, 3, -1.0f, 0.0f, out) == COLLM_ERR_ARG);
    CHECK(collm_recommend_fuse(llm, ret, pop, 3, 1.0f, -1.0f, out) == COLLM_ERR_ARG);
    CHECK(collm_recommend_fuse(llm, ret, pop, 3, NAN, 0.0f, out) == COLLM_ERR_ARG);
    float bad[] = {1, NAN, 3};
    CHECK(collm_recommend_fuse(bad, ret, pop, 3, 1.0f, 0.0f, out) == COLLM_ERR_ARG);
    CHECK(collm_recommend_fuse(llm, ret, bad, 3, 1.0f, 0.0f, out) == COLLM_ERR_ARG);
}

// The results of a request: sorted by score, and score = the fused score of
// their own llm / retrieval / log popularity with the weights of info.
static void check_fused_order(const collm_recommend_item *out, int n, const collm_recommend_histories *h,
                              const collm_recommend_info *info) {
    float llm[64], ret[64], lp[64], fused[64];
    const float *log_pop = collm_recommend_log_popularity(h, NULL);
    for (int i = 0; i < n; i++) {
        llm[i] = out[i].llm_score;
        ret[i] = out[i].retrieval_score;
        lp[i] = log_pop[out[i].item];
    }
    CHECK(collm_recommend_fuse(llm, ret, lp, n, info->fusion_lambda, info->fusion_popularity, fused) == COLLM_OK);
    int sorted = 1;
    double worst = 0;
    for (int i = 0; i < n; i++) {
        worst = fmax(worst, fabs(fused[i] - out[i].score));
        if (i && out[i].score > out[i - 1].score) sorted = 0;
    }
    CHECK(sorted);
    CHECK_MSG(worst < 1e-5, "%g", worst);
}

// The product's order: the checkpoint's weights (defaults without them, the
// stored ones after collm_checkpoint_set_rerank), a request's override, and
// the order of the results = the fused score of the candidates.
static void test_fusion(const collm_rec_dataset *ds, const collm_recommend_histories *h, const collm_retrieval_index *index) {
    // the popularity the histories carry: log(1 + train rows of the item)
    int32_t n_pop = 0;
    const float *log_pop = collm_recommend_log_popularity(h, &n_pop);
    CHECK(log_pop && n_pop == ds->n_items);
    int pop_ok = 1;
    for (int32_t it = 0; it < n_pop; it++) {
        int64_t c = 0;
        for (int64_t r = 0; r < ds->train->n; r++) c += ds->train->item[r] == it;
        pop_ok &= fabs(log_pop[it] - log(1.0 + (double)c)) < 1e-6;
    }
    CHECK(pop_ok);

    collm_model *m = collm_model_load(ckpt_path, NULL, NULL);
    CHECK(m != NULL);
    if (!m) return;
    int stored = -1;
    float lambda = -1, pop = -1;
    collm_rerank_weights(m, &lambda, &pop, &stored);
    CHECK(lambda == COLLM_RERANK_LAMBDA_DEFAULT && pop == COLLM_RERANK_POPULARITY_DEFAULT && stored == 0);
    collm_recommend_request req;
    collm_recommend_request_default(&req);
    CHECK(isnan(req.fusion_lambda) && isnan(req.fusion_popularity));
    req.user = 5;
    req.k = 25;
    req.n_candidates = 25;
    collm_recommend_item out[25];
    collm_recommend_info info;
    CHECK(collm_recommend_for_user(m, index, ds->items, h, &req, NULL, out, &info) == COLLM_OK);
    CHECK(info.fusion_lambda == COLLM_RERANK_LAMBDA_DEFAULT && info.fusion_popularity == COLLM_RERANK_POPULARITY_DEFAULT);
    CHECK(info.n_results == 25);
    check_fused_order(out, 25, h, &info);
    req.fusion_popularity = 3.0f; // a request's weight
    CHECK(collm_recommend_for_user(m, index, ds->items, h, &req, NULL, out, &info) == COLLM_OK);
    CHECK(info.fusion_popularity == 3.0f);
    check_fused_order(out, 25, h, &info);
    req.fusion_popularity = NAN;
    // a huge λ gives the retrieval order: |z(llm)| <= sqrt(n - 1) < 5, so
    // any two items whose z(retrieval) differ by more than 10/λ keep it
    req.fusion_lambda = COLLM_RERANK_WEIGHT_MAX;
    CHECK(collm_recommend_for_user(m, index, ds->items, h, &req, NULL, out, &info) == COLLM_OK);
    double mean = 0, var = 0;
    for (int i = 0; i < 25; i++) mean += out[i].retrieval_score / 25.0;
    for (int i = 0; i < 25; i++) var += (out[i].retrieval_score - mean) * (out[i].retrieval_score - mean) / 25.0;
    int inverted = 0, compared = 0;
    for (int i = 0; i < 25; i++)
        for (int j = i + 1; j < 25; j++)
            if (fabs(out[j].retrieval_score - out[i].retrieval_score) > 10.0 / COLLM_RERANK_WEIGHT_MAX * sqrt(var) * 1.01) {
                compared++;
                inverted += out[j].retrieval_score > out[i].retrieval_score;
            }
    CHECK(inverted == 0 && compared > 250);
    req.fusion_lambda = -1;
    CHECK(collm_recommend_for_user(m, index, ds->items, h, &req, NULL, out, &info) == COLLM_ERR_ARG);
    CHECK(strstr(collm_last_error(), "lambda") != NULL);
    req.fusion_lambda = NAN;
    req.fusion_popularity = INFINITY;
    CHECK(collm_recommend_for_user(m, index, ds->items, h, &req, NULL, out, &info) == COLLM_ERR_ARG);
    CHECK(strstr(collm_last_error(), "popularity") != NULL);
    // without histories (an explicit history): no popularity term
    int32_t his[3] = {12, 7, 33};
    collm_recommend_request_default(&req);
    req.history = his;
    req.n_history = 3;
    req.k = req.n_candidates = 20;
    req.fusion_popularity = 5.0f;
    collm_recommend_item with_h[20], without_h[20];
    CHECK(collm_recommend_for_user(m, index, ds->items, NULL, &req, NULL, without_h, &info) == COLLM_OK);
    req.fusion_popularity = 0.0f;
    CHECK(collm_recommend_for_user(m, index, ds->items, h, &req, NULL, with_h, &info) == COLLM_OK);
    int same = 1;
    for (int i = 0; i < 20; i++) same &= with_h[i].item == without_h[i].item;
    CHECK(same);
    collm_model_free(m);

    // stored weights: read back, used by default, everything else unchanged
    char copy[700];
    snprintf(copy, sizeof copy, "%s/lambda.gguf", dir);
    collm_model *a = collm_model_load(ckpt_path, NULL, NULL);
    CHECK(a && collm_model_save(a, copy) == COLLM_OK);
    collm_model_free(a);
    CHECK(collm_checkpoint_set_rerank(copy, 0.0f, 0.0f) == COLLM_OK);
    CHECK(collm_checkpoint_set_rerank(copy, 2.5f, 0.5f) == COLLM_OK); // replaces, no duplicate key
    CHECK(collm_checkpoint_set_rerank(copy, -1.0f, 0.0f) == COLLM_ERR_ARG);
    CHECK(collm_checkpoint_set_rerank(copy, 1.0f, 2000.0f) == COLLM_ERR_ARG);
    CHECK(collm_checkpoint_set_rerank(base_path, 1.0f, 0.0f) == COLLM_ERR_FORMAT); // not a checkpoint
    m = collm_model_load(copy, NULL, NULL);
    CHECK_MSG(m != NULL, "%s", collm_last_error());
    if (!m) return;
    collm_rerank_weights(m, &lambda, &pop, &stored);
    CHECK(lambda == 2.5f && pop == 0.5f && stored == 1);
    collm_recommend_request_default(&req);
    req.user = 5;
    req.k = 25;
    req.n_candidates = 25;
    CHECK(collm_recommend_for_user(m, index, ds->items, h, &req, NULL, out, &info) == COLLM_OK);
    CHECK(info.fusion_lambda == 2.5f && info.fusion_popularity == 0.5f);
    check_fused_order(out, 25, h, &info);
    // the same scores as the original checkpoint (weights copied byte for byte)
    collm_model *orig = collm_model_load(ckpt_path, NULL, NULL);
    collm_recommend_item ref[25];
    req.fusion_lambda = 2.5f;
    req.fusion_popularity = 0.5f;
    CHECK(orig && collm_recommend_for_user(orig, index, ds->items, h, &req, NULL, ref, &info) == COLLM_OK);
    same = 1;
    for (int i = 0; i < 25; i++) same &= ref[i].item == out[i].item && ref[i].llm_score == out[i].llm_score;
    CHECK(same);
    // a saved model keeps its weights
    char copy2[700];
    snprintf(copy2, sizeof copy2, "%s/lambda2.gguf", dir);
    CHECK(collm_model_save(m, copy2) == COLLM_OK);
    collm_model *b = collm_model_load(copy2, NULL, NULL);
    if (b) collm_rerank_weights(b, &lambda, &pop, &stored);
    CHECK(b && lambda == 2.5f && pop == 0.5f && stored == 1);
    collm_model_free(b);
    collm_model_free(orig);
    collm_model_free(m);
}

// A template with history-item ID slots: they sit in the shared prefix.
static void test_history_slots(const collm_rec_dataset *ds, const collm_recommend_histories *h) {
    collm_build_options b;
    collm_build_options_default(&b);
    b.base_path = base_path;
    b.cf_path = mf_path;
    b.stage = 2;
    b.template_path = "prompts/collm_movie_ids.txt";
    collm_model *m = collm_model_build(&b, ds, NULL);
    CHECK(m != NULL);
    if (!m) {
        fprintf(stderr, "%s\n", collm_last_error());
        return;
    }
    const int32_t *his;
    int64_t n_his;
    int32_t user = 9;
    CHECK(collm_recommend_user_history(h, user, &his, &n_his) == COLLM_OK);
    int64_t first, n_window;
    collm_prompt_history_window(collm_template(m), n_his, &first, &n_window);
    CHECK(n_window >= 3);
    int32_t cands[25];
    for (int i = 0; i < 25; i++) cands[i] = 2 * i + 1;
    collm_llm_context *ctx = collm_recommend_context_create(m, NULL);
    check_shared_equals_independent(m, ds->items, user, his, n_his, cands, 25, ctx, 1 + (int)n_window);
    collm_llm_context_free(ctx);
    collm_model_free(m);
}

int main(void) {
    snprintf(dir, sizeof dir, "%s/recommend", test_tmp_dir());
    snprintf(data_dir, sizeof data_dir, "%s/data", dir);
    snprintf(base_path, sizeof base_path, "%s/base.gguf", dir);
    snprintf(mf_path, sizeof mf_path, "%s/mf.gguf", dir);
    snprintf(ckpt_path, sizeof ckpt_path, "%s/collm.gguf", dir);
    collm_mkdir_p(dir);
    CHECK(fixture_tiny_llama(base_path, 2, 1, 7) == COLLM_OK);
    CHECK_MSG(fixture_synth_and_mf(data_dir, mf_path, 50, 90, 5) == COLLM_OK, "%s", collm_last_error());
    collm_rec_dataset *ds = collm_rec_dataset_load(data_dir);
    CHECK(ds != NULL);
    if (!ds) return test_report();
    int rc = make_checkpoint(ds);
    CHECK_MSG(rc == COLLM_OK, "%s", collm_last_error());
    collm_model *m = rc == COLLM_OK ? collm_model_load(ckpt_path, NULL, NULL) : NULL;
    collm_recommend_histories *h = collm_recommend_histories_build(ds);
    CHECK_MSG(m != NULL && h != NULL, "%s", collm_last_error());
    if (m && h) {
        test_histories(ds, h);
        test_fuse_by_hand();
        int32_t n_items;
        int d;
        const float *iv = collm_cf_items(m, &n_items, &d);
        collm_retrieval_build_options bo;
        collm_retrieval_build_options_default(&bo);
        collm_retrieval_index *index = collm_retrieval_index_build(iv, n_items, d, &bo);
        CHECK(index != NULL);
        collm_llm_context *ctx = collm_recommend_context_create(m, NULL);
        CHECK(ctx != NULL);
        if (index && ctx) test_recommend(m, ds, h, index, ctx);
        if (index) test_fusion(ds, h, index);
        collm_llm_context_free(ctx);
        collm_retrieval_index_free(index);
        test_history_slots(ds, h);
    }
    collm_recommend_histories_free(h);
    collm_model_free(m);
    collm_rec_dataset_free(ds);
    return test_report();
}
