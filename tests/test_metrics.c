// AUC / UAUC against hand-computed values (ties count ½), against a brute
// force O(n²) pair count, and the counted-user numbers of method.md §7 on the
// real ml-1m labels.
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
    }
    collm_rec_dataset_free(ds);
}

int main(void) {
    test_auc_by_hand();
    test_auc_undefined();
    test_auc_vs_brute_force();
    test_uauc_by_hand();
    test_evaluate_split();
    test_counted_users_ml1m();
    return test_report();
}
