// AUC / UAUC against hand-computed values (ties count ½), against a brute
// force O(n²) pair count, and the counted-user numbers of method.md §7 on the
// real ml-1m labels. Top-K metrics, their ground truth and the bootstrap CI
// against hand-computed cases and the normal approximation.
#include <math.h>
#include <stdint.h>

#include "collm/dataset.h"
#include "collm/error.h"
#include "collm/metrics.h"
#include "core/rng.h"
#include "test.h"

// Reference: fraction of (positive, negative) pairs ordered correctly, ties ½.
static double brute_auc(const float *s, const int8_t *y, int64_t n) {
    double wins = 0.0;
    int64_t pairs = 0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++)
            if (y[i] && !y[j]) {
                pairs++;
                wins += s[i] > s[j] ? 1.0 : s[i] == s[j] ? 0.5 : 0.0;
            }
    return pairs ? wins / (double)pairs : NAN;
}

static void test_auc_by_hand(void) {
    // pairs (pos, neg): 0.35>0.1 ✓, 0.35<0.4 ✗, 0.8>0.1 ✓, 0.8>0.4 ✓ → 3/4
    float s1[] = {0.1f, 0.4f, 0.35f, 0.8f};
    int8_t y1[] = {0, 0, 1, 1};
    CHECK_NEAR(collm_metrics_auc(s1, y1, 4), 0.75, 1e-12);

    // all scores tied → every pair counts ½
    float s2[] = {0.5f, 0.5f, 0.5f, 0.5f};
    int8_t y2[] = {0, 1, 0, 1};
    CHECK_NEAR(collm_metrics_auc(s2, y2, 4), 0.5, 1e-12);

    // pos {0.5, 0.9}, neg {0.2, 0.5}: 1 + ½ + 1 + 1 = 3.5 of 4
    float s3[] = {0.2f, 0.5f, 0.5f, 0.9f};
    int8_t y3[] = {0, 1, 0, 1};
    CHECK_NEAR(collm_metrics_auc(s3, y3, 4), 0.875, 1e-12);

    // pos {1, 2, 3}, neg {2, 3}: (1,2)=0 (1,3)=0 (2,2)=½ (2,3)=0 (3,2)=1 (3,3)=½ → 2/6
    float s4[] = {1, 2, 2, 3, 3};
    int8_t y4[] = {1, 0, 1, 0, 1};
    CHECK_NEAR(collm_metrics_auc(s4, y4, 5), 2.0 / 6.0, 1e-12);

    // perfect and reversed orderings; labels other than 0 count as positive
    float s5[] = {3, 1, 2, 4};
    int8_t y5[] = {1, 0, 0, 1};
    int8_t y5r[] = {0, 1, 1, 0};
    CHECK_NEAR(collm_metrics_auc(s5, y5, 4), 1.0, 0);
    CHECK_NEAR(collm_metrics_auc(s5, y5r, 4), 0.0, 0);
}

static void test_auc_undefined(void) {
    float s[] = {0.1f, 0.2f, 0.3f};
    int8_t all_pos[] = {1, 1, 1}, all_neg[] = {0, 0, 0}, mixed[] = {0, 1, 0};
    CHECK(isnan(collm_metrics_auc(s, all_pos, 3)));
    CHECK(isnan(collm_metrics_auc(s, all_neg, 3)));
    CHECK(isnan(collm_metrics_auc(s, mixed, 0)));
    float s_nan[] = {0.1f, NAN, 0.3f};
    CHECK(isnan(collm_metrics_auc(s_nan, mixed, 3)));
    CHECK(!isnan(collm_metrics_auc(s, mixed, 3)));
}

static void test_auc_vs_brute_force(void) {
    collm_rng rng;
    collm_rng_seed(&rng, 7);
    enum { N = 600 };
    static float s[N];
    static int8_t y[N];
    for (int trial = 0; trial < 5; trial++) {
        for (int i = 0; i < N; i++) {
            s[i] = (float)collm_rng_below(&rng, 20 + trial * 50) / 7.0f; // many ties
            y[i] = collm_rng_uniform(&rng) < 0.3 + 0.1 * trial;
        }
        CHECK_NEAR(collm_metrics_auc(s, y, N), brute_auc(s, y, N), 1e-12);
    }
}

static void test_uauc_by_hand(void) {
    // user 1: scores {0.1, 0.5, 0.9} labels {0, 1, 1} → AUC 1
    // user 2: scores {0.3, 0.3} labels {1, 0} → tie, AUC ½
    // user 3: one row → skipped;  user 4: labels {1, 1} → one class, skipped
    // UAUC = (1 + ½) / 2 = 0.75 over 2 users. Rows interleaved on purpose.
    int32_t u[] = {1, 2, 1, 4, 3, 2, 1, 4};
    float s[] = {0.1f, 0.3f, 0.9f, 0.2f, 0.7f, 0.3f, 0.5f, 0.6f};
    int8_t y[] = {0, 1, 1, 1, 0, 0, 1, 1};
    int64_t counted = -1;
    CHECK_NEAR(collm_metrics_uauc(u, s, y, 8, &counted), 0.75, 1e-12);
    CHECK(counted == 2);

    // same-score ties between different users do not interact
    int32_t u2[] = {5, 5, 6, 6};
    float s2[] = {0.5f, 0.5f, 0.5f, 0.9f};
    int8_t y2[] = {1, 0, 0, 1};
    CHECK_NEAR(collm_metrics_uauc(u2, s2, y2, 4, &counted), 0.75, 1e-12); // (½ + 1) / 2
    CHECK(counted == 2);

    // nobody counts → NaN, 0 users
    int32_t u3[] = {1, 2, 2};
    float s3[] = {0.1f, 0.2f, 0.3f};
    int8_t y3[] = {1, 0, 0};
    CHECK(isnan(collm_metrics_uauc(u3, s3, y3, 3, &counted)));
    CHECK(counted == 0);
}

static void test_evaluate_split(void) {
    // a hand-built split: warm rows {0,1,2,3}, cold rows {4,5,6}
    int32_t user[] = {1, 1, 2, 2, 3, 3, 3};
    int32_t item[] = {1, 2, 3, 4, 5, 6, 7};
    int8_t label[] = {1, 0, 0, 1, 1, 1, 0};
    int8_t not_cold[] = {1, 1, 1, 1, 0, 0, 0};
    float scores[] = {0.9f, 0.1f, 0.8f, 0.2f, 0.5f, 0.4f, 0.45f};
    collm_rec_split sp = {0};
    sp.n = 7;
    sp.user = user;
    sp.item = item;
    sp.label = label;
    sp.not_cold = not_cold;
    collm_metrics_report r;
    CHECK(collm_metrics_evaluate(&sp, scores, &r) == COLLM_OK);
    CHECK(r.n == 7 && r.n_pos == 4 && r.n_users == 3 && r.n_warm == 4 && r.n_cold == 3);
    CHECK(r.n_users_uauc == 3);
    // warm: pos {0.9, 0.2}, neg {0.1, 0.8} → 1 + 1 + 1 + 0 = 3/4
    CHECK_NEAR(r.auc_warm, 0.75, 1e-12);
    // cold: pos {0.5, 0.4}, neg {0.45} → 1/2
    CHECK_NEAR(r.auc_cold, 0.5, 1e-12);
    // users: 1 → 1, 2 → 0, 3 → ½; mean ½
    CHECK_NEAR(r.uauc, 0.5, 1e-12);
    CHECK_NEAR(r.auc, brute_auc(scores, label, 7), 1e-12);

    // all warm → cold AUC is NaN with n_cold 0
    int8_t all_warm[] = {1, 1, 1, 1, 1, 1, 1};
    sp.not_cold = all_warm;
    CHECK(collm_metrics_evaluate(&sp, scores, &r) == COLLM_OK);
    CHECK(r.n_cold == 0 && isnan(r.auc_cold));
    CHECK(collm_metrics_evaluate(NULL, scores, &r) == COLLM_ERR_ARG);
}

// method.md §7: users that count on the real labels (scores: any; here a
// hash of the row so that no user is degenerate by ties).
static void test_counted_users_ml1m(void) {
    collm_rec_dataset *ds = collm_rec_dataset_load(test_shared_path("data/ml-1m"));
    CHECK_MSG(ds != NULL, "%s", collm_last_error());
    if (!ds) return;
    const collm_rec_split *splits[] = {ds->valid, ds->valid_small};
    const int64_t expect_counted[] = {282, 239}, expect_users[] = {356, 331}, expect_rows[] = {10401, 5200};
    for (int k = 0; k < 2; k++) {
        const collm_rec_split *sp = splits[k];
        CHECK(sp != NULL);
        if (!sp) continue;
        float *scores = malloc((size_t)sp->n * sizeof *scores);
        for (int64_t i = 0; i < sp->n; i++) scores[i] = (float)((sp->item[i] * 2654435761u) % 1000u);
        collm_metrics_report r;
        CHECK(collm_metrics_evaluate(sp, scores, &r) == COLLM_OK);
        CHECK_MSG(r.n == expect_rows[k], "%lld", (long long)r.n);
        CHECK_MSG(r.n_users == expect_users[k], "%lld", (long long)r.n_users);
        CHECK_MSG(r.n_users_uauc == expect_counted[k], "%lld", (long long)r.n_users_uauc);
        CHECK(r.auc > 0.4 && r.auc < 0.6); // arbitrary scores: near chance
        free(scores);
        // top-K ground truth: valid users and relevant items, counted by an
        // independent Python reading of the same rules (docs/data.md)
        const int64_t expect_valid[] = {321, 289}, expect_rel[] = {5495, 2732};
        collm_topk_truth *t = collm_topk_truth_build(sp, ds->train, ds->items->n);
        CHECK(t != NULL);
        int64_t n_rel = 0;
        for (int64_t i = 0; i < collm_topk_truth_n_users(t); i++) n_rel += collm_topk_truth_user(t, i)->n_relevant;
        CHECK_MSG(collm_topk_truth_n_users(t) == expect_valid[k], "%lld", (long long)collm_topk_truth_n_users(t));
        CHECK_MSG(n_rel == expect_rel[k], "%lld", (long long)n_rel);
        collm_topk_truth_free(t);
    }
    collm_rec_dataset_free(ds);
}


// --- top-K -------------------------------------------------------------

#define D2 (1.0 / log2(3.0)) // discount of rank 2
#define D3 0.5               // 1 / log2(4)
#define D4 (1.0 / log2(5.0))
#define D5 (1.0 / log2(6.0))

static void test_topk_by_hand(void) {
    // ranks: 5 (1), 3 (2, relevant), 8 (3), 1 (4), 9 (5, relevant); R = {3, 9, 7}
    int32_t ranked[] = {5, 3, 8, 1, 9}, rel[] = {7, 9, 3};
    int64_t ks[] = {1, 2, 5, 100};
    collm_topk_at m[4];
    CHECK(collm_topk_metrics(ranked, 5, rel, 3, NULL, 0, ks, 4, m) == COLLM_OK);
    CHECK(m[0].recall == 0 && m[0].ndcg == 0 && m[0].hit == 0 && m[0].rr == 0);
    CHECK_NEAR(m[1].recall, 1.0 / 3, 1e-12);
    CHECK_NEAR(m[1].ndcg, D2 / (1 + D2), 1e-12); // IDCG@2 = two hits
    CHECK(m[1].hit == 1 && m[1].rr == 0.5);
    CHECK_NEAR(m[2].recall, 2.0 / 3, 1e-12);
    CHECK_NEAR(m[2].ndcg, (D2 + D5) / (1 + D2 + D3), 1e-12); // IDCG@5 = |R| = 3 hits
    CHECK(m[2].hit == 1 && m[2].rr == 0.5);
    // k beyond the list: the same list, IDCG over min(k, |R|) = 3
    CHECK_NEAR(m[3].recall, 2.0 / 3, 1e-12);
    CHECK_NEAR(m[3].ndcg, (D2 + D5) / (1 + D2 + D3), 1e-12);

    // a list shorter than k and than R: [1, 2] against R = {1, 2, 3, 4}, k = 10
    int32_t shortl[] = {1, 2}, rel4[] = {4, 3, 2, 1};
    int64_t k10 = 10;
    CHECK(collm_topk_metrics(shortl, 2, rel4, 4, NULL, 0, &k10, 1, m) == COLLM_OK);
    CHECK_NEAR(m[0].recall, 0.5, 1e-12);
    CHECK_NEAR(m[0].ndcg, (1 + D2) / (1 + D2 + D3 + D4), 1e-12);
    CHECK(m[0].hit == 1 && m[0].rr == 1);

    // perfect order: every metric 1 at k = |R|
    int32_t perfect[] = {7, 3, 9, 1};
    int64_t k3 = 3;
    CHECK(collm_topk_metrics(perfect, 4, rel, 3, NULL, 0, &k3, 1, m) == COLLM_OK);
    CHECK_NEAR(m[0].recall, 1, 1e-12);
    CHECK_NEAR(m[0].ndcg, 1, 1e-12);

    // an empty list: zeros, not NaN (the user is valid)
    CHECK(collm_topk_metrics(NULL, 0, rel, 3, NULL, 0, &k3, 1, m) == COLLM_OK);
    CHECK(m[0].recall == 0 && m[0].ndcg == 0 && m[0].hit == 0 && m[0].rr == 0);
}

static void test_topk_duplicates_and_exclusion(void) {
    collm_topk_at m[2];
    int64_t ks[] = {2, 3};
    // repeats take no rank: [3, 3, 5, 3, 9] ranks as [3, 5, 9]; R = {9, 9} counts once
    int32_t dup[] = {3, 3, 5, 3, 9}, rel[] = {9, 9};
    CHECK(collm_topk_metrics(dup, 5, rel, 2, NULL, 0, ks, 2, m) == COLLM_OK);
    CHECK(m[0].recall == 0 && m[0].hit == 0 && m[0].rr == 0);
    CHECK_NEAR(m[1].recall, 1, 1e-12); // not ½: 9 is one relevant item
    CHECK_NEAR(m[1].ndcg, D3, 1e-12);
    CHECK_NEAR(m[1].rr, 1.0 / 3, 1e-12);
    // a repeated relevant item gains once: [9, 9, 4] with R = {9, 4}
    int32_t dup2[] = {9, 9, 4}, rel2[] = {4, 9};
    CHECK(collm_topk_metrics(dup2, 3, rel2, 2, NULL, 0, ks, 2, m) == COLLM_OK);
    CHECK_NEAR(m[0].ndcg, 1, 1e-12); // ranks 1 and 2
    CHECK_NEAR(m[0].recall, 1, 1e-12);

    // excluded ids take no rank and are not relevant: [6, 2, 9], excluded {6},
    // R = {2, 6} → list [2, 9], R = {2}
    int32_t l[] = {6, 2, 9}, r[] = {2, 6}, ex[] = {6};
    int64_t k1 = 1;
    CHECK(collm_topk_metrics(l, 3, r, 2, ex, 1, &k1, 1, m) == COLLM_OK);
    CHECK(m[0].recall == 1 && m[0].ndcg == 1 && m[0].hit == 1 && m[0].rr == 1);

    // no relevant item (none given, or all excluded): NaN everywhere
    CHECK(collm_topk_metrics(l, 3, NULL, 0, NULL, 0, &k1, 1, m) == COLLM_OK);
    CHECK(isnan(m[0].recall) && isnan(m[0].ndcg) && isnan(m[0].hit) && isnan(m[0].rr));
    CHECK(collm_topk_metrics(l, 3, ex, 1, ex, 1, &k1, 1, m) == COLLM_OK);
    CHECK(isnan(m[0].ndcg));

    int64_t k0 = 0;
    CHECK(collm_topk_metrics(l, 3, r, 2, NULL, 0, &k0, 1, m) == COLLM_ERR_ARG);
    CHECK(collm_topk_metrics(l, -1, r, 2, NULL, 0, &k1, 1, m) == COLLM_ERR_ARG);
}

static void test_topk_rank_ties(void) {
    int32_t items[] = {4, 2, 9, 7, 5}, out[5];
    float score[] = {0.5f, 0.9f, 0.5f, 0.5f, NAN};
    CHECK(collm_topk_rank(items, score, NULL, 5, out) == COLLM_OK);
    int32_t by_id[] = {2, 4, 7, 9, 5}; // ties by id, NaN last
    CHECK(memcmp(out, by_id, sizeof out) == 0);
    float tb[] = {0.1f, 0.0f, 0.3f, 0.1f, 1.0f};
    CHECK(collm_topk_rank(items, score, tb, 5, out) == COLLM_OK);
    int32_t by_tb[] = {2, 9, 4, 7, 5}; // 9 wins the tie on tiebreak, 4/7 by id
    CHECK(memcmp(out, by_tb, sizeof out) == 0);
    // input order does not matter
    int32_t items2[] = {7, 9, 5, 2, 4};
    float score2[] = {0.5f, 0.5f, NAN, 0.9f, 0.5f}, tb2[] = {0.1f, 0.3f, 1.0f, 0.0f, 0.1f};
    CHECK(collm_topk_rank(items2, score2, tb2, 5, out) == COLLM_OK);
    CHECK(memcmp(out, by_tb, sizeof out) == 0);
}

// A split of hand-made rows (user, item, label, timestamp, history).
typedef struct {
    int32_t u, i;
    int8_t y;
    int64_t ts;
    int32_t his[4];
    int n_his;
} topk_row;

static collm_rec_split *topk_make_split(const topk_row *rows, int n) {
    collm_rec_split *sp = calloc(1, sizeof *sp);
    sp->n = n;
    sp->user = calloc((size_t)n, sizeof(int32_t));
    sp->item = calloc((size_t)n, sizeof(int32_t));
    sp->label = calloc((size_t)n, 1);
    sp->timestamp = calloc((size_t)n, sizeof(int64_t));
    sp->not_cold = calloc((size_t)n, 1);
    sp->his_offset = calloc((size_t)n + 1, sizeof(int64_t));
    sp->his = calloc((size_t)n * 4 + 1, sizeof(int32_t));
    for (int r = 0; r < n; r++) {
        sp->user[r] = rows[r].u;
        sp->item[r] = rows[r].i;
        sp->label[r] = rows[r].y;
        sp->timestamp[r] = rows[r].ts;
        sp->his_offset[r + 1] = sp->his_offset[r] + rows[r].n_his;
        memcpy(sp->his + sp->his_offset[r], rows[r].his, (size_t)rows[r].n_his * sizeof(int32_t));
        if (rows[r].u > sp->max_user) sp->max_user = rows[r].u;
    }
    return sp;
}

static void topk_free_split(collm_rec_split *sp) {
    free(sp->user);
    free(sp->item);
    free(sp->label);
    free(sp->timestamp);
    free(sp->not_cold);
    free(sp->his_offset);
    free(sp->his);
    free(sp);
}

static void test_topk_truth(void) {
    topk_row train_rows[] = {
        {1, 10, 0, 1, {0}, 1}, {1, 11, 1, 2, {0}, 1}, {2, 12, 1, 3, {0}, 1},
    };
    topk_row split_rows[] = {
        {1, 13, 1, 200, {0, 11, 15}, 3},
        {2, 16, 0, 100, {0, 12}, 2},     // user 2: negatives only → not valid
        {1, 14, 1, 100, {0, 11, 15}, 3}, // user 1's earliest row (history [0, 11, 15])
        {1, 15, 1, 300, {0, 11}, 2},     // in that history → excluded
        {1, 10, 1, 150, {0, 11}, 2},     // a train item (label 0 there) → excluded
        {1, 13, 1, 250, {0, 11}, 2},     // repeat of 13
        {1, 16, 0, 260, {0, 11}, 2},     // a negative: stays a candidate
        {3, 25, 1, 100, {0}, 1},         // outside the 20 items → not relevant → user 3 not valid
        {4, 12, 1, 50, {0}, 1},          // 12 is user 2's train item, not user 4's
        {4, 17, 1, 50, {0}, 1},          // same timestamp: the first row is the earliest
    };
    collm_rec_split *train = topk_make_split(train_rows, 3), *split = topk_make_split(split_rows, 10);
    collm_topk_truth *t = collm_topk_truth_build(split, train, 20);
    CHECK(t != NULL);
    if (t) {
        CHECK(collm_topk_truth_n_users(t) == 2);
        const collm_topk_user *a = collm_topk_truth_user(t, 0), *b = collm_topk_truth_user(t, 1);
        CHECK(a && a->user == 1 && b && b->user == 4 && collm_topk_truth_user(t, 2) == NULL);
        int32_t rel_a[] = {13, 14}, excl_a[] = {0, 10, 11, 15}, his_a[] = {0, 11, 15};
        CHECK(a->n_relevant == 2 && memcmp(a->relevant, rel_a, sizeof rel_a) == 0);
        CHECK(a->n_excluded == 4 && memcmp(a->excluded, excl_a, sizeof excl_a) == 0);
        CHECK(a->n_history == 3 && memcmp(a->history, his_a, sizeof his_a) == 0);
        int32_t rel_b[] = {12, 17}, excl_b[] = {0};
        CHECK(b->n_relevant == 2 && memcmp(b->relevant, rel_b, sizeof rel_b) == 0);
        CHECK(b->n_excluded == 1 && memcmp(b->excluded, excl_b, sizeof excl_b) == 0);
        CHECK(b->history == split->his + split->his_offset[8]);
    }
    collm_topk_truth_free(t);
    // without train: user 1's 10 becomes relevant
    t = collm_topk_truth_build(split, NULL, 20);
    CHECK(t && collm_topk_truth_n_users(t) == 2 && collm_topk_truth_user(t, 0)->n_relevant == 3);
    collm_topk_truth_free(t);
    CHECK(collm_topk_truth_build(NULL, train, 20) == NULL);
    topk_free_split(train);
    topk_free_split(split);
}

static void test_bootstrap_ci(void) {
    collm_rng rng;
    collm_rng_seed(&rng, 3);
    enum { BIG = 4000 };
    static double v[BIG];
    for (int i = 0; i < BIG; i++) v[i] = collm_rng_uniform(&rng) < 0.3 ? 1.0 : 0.0; // a hit rate
    collm_ci small, big, again, other;
    CHECK(collm_bootstrap_ci(v, 100, 1000, 0.95, 42, &small) == COLLM_OK);
    CHECK(collm_bootstrap_ci(v, BIG, 1000, 0.95, 42, &big) == COLLM_OK);
    CHECK(small.n == 100 && big.n == BIG);
    CHECK(small.lo <= small.mean && small.mean <= small.hi);
    CHECK(big.lo <= big.mean && big.mean <= big.hi);
    CHECK(big.hi - big.lo < 0.5 * (small.hi - small.lo)); // ~ 1/sqrt(n): 6.3x narrower
    // the normal approximation: half-width 1.96 sd / sqrt(n)
    double mean = 0, var = 0;
    for (int i = 0; i < BIG; i++) mean += v[i] / BIG;
    for (int i = 0; i < BIG; i++) var += (v[i] - mean) * (v[i] - mean) / (BIG - 1);
    CHECK_NEAR(big.mean, mean, 1e-12);
    double half = 1.96 * sqrt(var / BIG);
    CHECK_MSG(fabs(0.5 * (big.hi - big.lo) - half) < 0.15 * half, "half-width %g vs normal %g", 0.5 * (big.hi - big.lo), half);
    // same seed → same interval; another seed → another one
    CHECK(collm_bootstrap_ci(v, BIG, 1000, 0.95, 42, &again) == COLLM_OK);
    CHECK(again.lo == big.lo && again.hi == big.hi);
    CHECK(collm_bootstrap_ci(v, BIG, 1000, 0.95, 43, &other) == COLLM_OK);
    CHECK(other.lo != big.lo || other.hi != big.hi);
    // a lower level is narrower
    CHECK(collm_bootstrap_ci(v, BIG, 1000, 0.5, 42, &other) == COLLM_OK);
    CHECK(other.hi - other.lo < big.hi - big.lo);
    // NaN values are skipped; constants give a zero-width interval
    double w[] = {0.25, NAN, 0.25, 0.25};
    CHECK(collm_bootstrap_ci(w, 4, 100, 0.95, 1, &other) == COLLM_OK);
    CHECK(other.n == 3 && other.mean == 0.25 && other.lo == 0.25 && other.hi == 0.25);
    double nans[] = {NAN};
    CHECK(collm_bootstrap_ci(nans, 1, 100, 0.95, 1, &other) == COLLM_OK);
    CHECK(other.n == 0 && isnan(other.mean));
    // Issue 8: +inf and -inf made resampled means NaN, which the means'
    // comparator ordered inconsistently (undefined for qsort); infinities are
    // left out like NaN: the interval equals the one of the finite values
    double mixed[104], finite[100];
    for (int i = 0; i < 100; i++) finite[i] = mixed[i] = v[i];
    mixed[100] = INFINITY, mixed[101] = -INFINITY, mixed[102] = NAN, mixed[103] = -INFINITY;
    collm_ci with_inf, plain;
    CHECK(collm_bootstrap_ci(finite, 100, 500, 0.9, 7, &plain) == COLLM_OK);
    CHECK(collm_bootstrap_ci(mixed, 104, 500, 0.9, 7, &with_inf) == COLLM_OK);
    CHECK_MSG(with_inf.n == 100 && with_inf.mean == plain.mean && with_inf.lo == plain.lo && with_inf.hi == plain.hi,
              "n %lld mean %g [%g, %g] vs [%g, %g]", (long long)with_inf.n, with_inf.mean, with_inf.lo, with_inf.hi,
              plain.lo, plain.hi);
    CHECK(collm_bootstrap_ci(w, 4, 100, 1.0, 1, &other) == COLLM_ERR_ARG);
    CHECK(collm_bootstrap_ci(w, 4, 0, 0.95, 1, &other) == COLLM_ERR_ARG);
}

int main(void) {
    test_auc_by_hand();
    test_auc_undefined();
    test_auc_vs_brute_force();
    test_uauc_by_hand();
    test_evaluate_split();
    test_counted_users_ml1m();
    test_topk_by_hand();
    test_topk_duplicates_and_exclusion();
    test_topk_rank_ties();
    test_topk_truth();
    test_bootstrap_ci();
    return test_report();
}
