// Catalogue negatives (collm_rec_split_with_negatives): the rows kept, the
// new rows' fields, never an item the user has seen or one in the row's
// history, the draw frequencies against (count + 1)^alpha, determinism, and
// bad arguments.
#include <math.h>
#include <stdint.h>

#include "collm/dataset.h"
#include "collm/error.h"
#include "test.h"

// users 1..100: one positive row on item 5 (history [0, 6]); user 101: two
// negative rows on item 2; user 102: eight negative rows on item 3. Item
// counts: 1 → 0, 2 → 2, 3 → 8, 4 → 0, 5 → 100, 6 → 0.
static collm_rec_split *make_train(void) {
    enum { N = 110 };
    collm_rec_split *s = calloc(1, sizeof *s);
    s->n = N;
    s->path = NULL;
    s->user = calloc(N, sizeof(int32_t));
    s->item = calloc(N, sizeof(int32_t));
    s->label = calloc(N, 1);
    s->timestamp = calloc(N, sizeof(int64_t));
    s->not_cold = calloc(N, 1);
    s->his_offset = calloc(N + 1, sizeof(int64_t));
    s->his = calloc(2 * N, sizeof(int32_t));
    for (int r = 0; r < N; r++) {
        if (r < 100) {
            s->user[r] = r + 1;
            s->item[r] = 5;
            s->label[r] = 1;
            s->his[s->his_offset[r]] = 0;
            s->his[s->his_offset[r] + 1] = 6;
            s->his_offset[r + 1] = s->his_offset[r] + 2;
        } else {
            s->user[r] = r < 102 ? 101 : 102;
            s->item[r] = r < 102 ? 2 : 3;
            s->his_offset[r + 1] = s->his_offset[r];
        }
        s->timestamp[r] = 1000 + r;
        s->not_cold[r] = 1;
    }
    s->max_user = 102;
    s->max_item = 6;
    return s;
}

static void check_draws(const collm_rec_split *train, double alpha, const double *expect) {
    collm_rec_split *a = collm_rec_split_with_negatives(train, NULL, 7, 50, alpha, 9);
    CHECK_MSG(a != NULL, "%s", collm_last_error());
    if (!a) return;
    CHECK(a->n == train->n + 100 * 50);
    // originals first, unchanged
    int same = 1;
    for (int64_t r = 0; r < train->n; r++)
        same &= a->user[r] == train->user[r] && a->item[r] == train->item[r] && a->label[r] == train->label[r];
    CHECK(same);
    // new rows: label 0, the source row's user / history / timestamp, never item 5 (seen) or 6 (history) or 0
    int64_t freq[7] = {0};
    int ok = 1;
    for (int64_t i = train->n; i < a->n; i++) {
        int64_t src = (i - train->n) / 50; // row r's 50 draws follow each other
        ok &= a->label[i] == 0 && a->user[i] == train->user[src] && a->timestamp[i] == train->timestamp[src];
        ok &= a->his_offset[i + 1] - a->his_offset[i] == 2 && a->his[a->his_offset[i] + 1] == 6;
        ok &= a->item[i] >= 1 && a->item[i] <= 4;
        freq[a->item[i]]++;
    }
    CHECK(ok);
    // frequencies within 4 binomial standard deviations of the weights
    for (int it = 1; it <= 4; it++) {
        double p = expect[it], n = 5000, sd = sqrt(n * p * (1 - p));
        CHECK_MSG(fabs((double)freq[it] - n * p) < 4 * sd, "alpha %g item %d: %lld draws, expected %.0f", alpha, it,
                  (long long)freq[it], n * p);
    }
    // the same seed gives the same rows
    collm_rec_split *b = collm_rec_split_with_negatives(train, NULL, 7, 50, alpha, 9);
    CHECK(b && b->n == a->n && memcmp(a->item, b->item, (size_t)a->n * sizeof(int32_t)) == 0);
    collm_rec_split_free(b);
    collm_rec_split_free(a);
}

int main(void) {
    collm_rec_split *train = make_train();
    // alpha 0: uniform over the four drawable items; alpha 1: (count + 1) = 1, 3, 9, 1
    const double uniform[] = {0, 0.25, 0.25, 0.25, 0.25}, pop[] = {0, 1 / 14.0, 3 / 14.0, 9 / 14.0, 1 / 14.0};
    check_draws(train, 0.0, uniform);
    check_draws(train, 1.0, pop);
    // untitled items are never drawn
    collm_rec_items items = {0};
    char *titles[7] = {"", "a", "", "c", "d", "e", "f"};
    items.n = 7;
    items.title = titles;
    collm_rec_split *t = collm_rec_split_with_negatives(train, &items, 7, 5, 0.0, 1);
    int no2 = t != NULL;
    for (int64_t i = train->n; t && i < t->n; i++) no2 &= t->item[i] != 2;
    CHECK(no2);
    collm_rec_split_free(t);
    // zero per positive: a copy
    t = collm_rec_split_with_negatives(train, NULL, 7, 0, 0.0, 1);
    CHECK(t && t->n == train->n);
    collm_rec_split_free(t);
    CHECK(collm_rec_split_with_negatives(train, NULL, 7, -1, 0.0, 1) == NULL);
    CHECK(collm_rec_split_with_negatives(train, NULL, 7, 1, -1.0, 1) == NULL);
    CHECK(collm_rec_split_with_negatives(NULL, NULL, 7, 1, 0.0, 1) == NULL);
    CHECK(strstr(collm_last_error(), "negatives") != NULL);
    collm_rec_split_free(train);
    return test_report();
}
