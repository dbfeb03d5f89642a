// collm synth: determinism per seed, layout invariants (histories of earlier
// positives with the 0 sentinel, time order, not_cold, valid_small sample),
// and learnability: a small SGD matrix factorisation written here (logistic
// loss, biases) reaches a valid AUC well above 0.5 within a second.
#include "collm/dataset.h"
#include "collm/error.h"
#include "collm/fileio.h"
#include "collm/prepare.h"
#include "core/rng.h"
#include "test.h"

// AUC by pairwise counting (ties 1/2): O(P*N), fine for a few thousand rows.
static double pair_auc(const int8_t *y, const double *s, int64_t n) {
    double num = 0, pairs = 0;
    for (int64_t a = 0; a < n; a++) {
        if (!y[a]) continue;
        for (int64_t b = 0; b < n; b++) {
            if (y[b]) continue;
            num += s[a] > s[b] ? 1.0 : s[a] == s[b] ? 0.5 : 0.0;
            pairs += 1;
        }
    }
    return pairs ? num / pairs : 0.5;
}

static double mf_valid_auc(const collm_rec_dataset *ds) {
    enum { D = 8 };
    int32_t U = ds->n_users, I = ds->n_items;
    double *P = calloc((size_t)U * D, sizeof *P), *Q = calloc((size_t)I * D, sizeof *Q);
    double *bu = calloc((size_t)U, sizeof *bu), *bi = calloc((size_t)I, sizeof *bi), b = 0;
    collm_rng rng;
    collm_rng_seed(&rng, 3);
    for (int64_t k = 0; k < (int64_t)U * D; k++) P[k] = 0.1 * collm_rng_normal(&rng);
    for (int64_t k = 0; k < (int64_t)I * D; k++) Q[k] = 0.1 * collm_rng_normal(&rng);
    const collm_rec_split *tr = ds->train;
    int32_t *order = malloc((size_t)tr->n * sizeof *order);
    for (int64_t r = 0; r < tr->n; r++) order[r] = (int32_t)r;
    const double lr = 0.05, wd = 0.02;
    for (int ep = 0; ep < 40; ep++) {
        collm_rng_shuffle_i32(&rng, order, tr->n);
        for (int64_t k = 0; k < tr->n; k++) {
            int64_t r = order[k];
            int32_t u = tr->user[r], i = tr->item[r];
            double *pu = P + (size_t)u * D, *qi = Q + (size_t)i * D, s = b + bu[u] + bi[i];
            for (int c = 0; c < D; c++) s += pu[c] * qi[c];
            double g = 1.0 / (1.0 + exp(-s)) - tr->label[r];
            for (int c = 0; c < D; c++) {
                double p = pu[c];
                pu[c] -= lr * (g * qi[c] + wd * p);
                qi[c] -= lr * (g * p + wd * qi[c]);
            }
            bu[u] -= lr * (g + wd * bu[u]);
            bi[i] -= lr * (g + wd * bi[i]);
            b -= lr * g;
        }
    }
    const collm_rec_split *va = ds->valid;
    double *score = malloc((size_t)va->n * sizeof *score);
    for (int64_t r = 0; r < va->n; r++) {
        int32_t u = va->user[r], i = va->item[r];
        double s = bu[u] + bi[i];
        for (int c = 0; c < D; c++) s += P[(size_t)u * D + c] * Q[(size_t)i * D + c];
        score[r] = s;
    }
    double auc = pair_auc(va->label, score, va->n);
    free(P), free(Q), free(bu), free(bi), free(order), free(score);
    return auc;
}

// The demo's data (scripts/demo.sh): titles name how likeable an item is and
// a share of the items is new when valid starts. Checks: new items have no
// train row, the title words are the quality words in b_item order, and a
// scorer that only reads the title word ranks the cold valid rows well
// (what a text model can learn and MF cannot: MF never saw those items).
static void test_text_signal(void) {
    static const char *const Q[8] = {"Dreadful", "Dismal", "Clumsy", "Ordinary", "Pleasant", "Charming", "Superb",
                                     "Brilliant"};
    char dir[512];
    snprintf(dir, sizeof dir, "%s/synth_text", test_tmp_dir());
    collm_rec_synth_options o;
    collm_rec_synth_defaults(&o);
    o.n_users = 300, o.n_items = 400, o.seed = 1, o.new_item_frac = 0.4, o.title_quality = 1;
    o.item_bias_std = 3, o.scale = 1.5;
    CHECK_MSG(collm_rec_synth(&o, dir) == COLLM_OK, "%s", collm_last_error());
    collm_rec_dataset *ds = collm_rec_dataset_load(dir);
    CHECK_MSG(ds != NULL, "%s", collm_last_error());
    if (!ds) return;
    int32_t I = ds->n_items;
    int *word = calloc((size_t)I, sizeof *word), per_word[8] = {0}, ok_words = 1;
    for (int32_t i = 1; i < I; i++) {
        word[i] = -1;
        for (int k = 0; k < 8; k++) {
            char w[40];
            snprintf(w, sizeof w, "The %s ", Q[k]);
            if (strncmp(ds->items->title[i], w, strlen(w)) == 0) word[i] = k;
        }
        ok_words &= word[i] >= 0;
        if (word[i] >= 0) per_word[word[i]]++;
    }
    CHECK(ok_words);
    int ok_octiles = 1; // 400 items: 50 per octile
    for (int k = 0; k < 8; k++) ok_octiles &= per_word[k] == 50;
    CHECK(ok_octiles);
    // Items never in train, and rows of valid whose item is cold.
    uint8_t *in_train = calloc((size_t)I, 1);
    for (int64_t r = 0; r < ds->train->n; r++) in_train[ds->train->item[r]] = 1;
    int32_t n_untrained = 0;
    for (int32_t i = 1; i < I; i++) n_untrained += !in_train[i];
    const collm_rec_split *va = ds->valid;
    int64_t n_cold = 0, pos_hi = 0, n_hi = 0, pos_lo = 0, n_lo = 0;
    int8_t *y = calloc((size_t)va->n + 1, 1);
    double *s = calloc((size_t)va->n + 1, sizeof *s);
    for (int64_t r = 0; r < va->n; r++) {
        int32_t i = va->item[r];
        if (in_train[i]) continue;
        y[n_cold] = va->label[r];
        s[n_cold++] = word[i]; // the title word's rank is the score
        if (word[i] >= 6) pos_hi += va->label[r], n_hi++;
        if (word[i] <= 1) pos_lo += va->label[r], n_lo++;
    }
    double auc = pair_auc(y, s, n_cold);
    printf("synth text signal: %d of %d items never in train; %lld of %lld valid rows with such an item; "
           "positive rate Superb/Brilliant %.2f vs Dreadful/Dismal %.2f; title-word AUC on them %.4f\n",
           n_untrained, I - 1, (long long)n_cold, (long long)va->n, (double)pos_hi / (double)(n_hi ? n_hi : 1),
           (double)pos_lo / (double)(n_lo ? n_lo : 1), auc);
    CHECK(n_untrained >= 120 && n_untrained <= 220); // 40 % new (160 expected) + a few never drawn
    CHECK(n_cold > va->n / 2);
    CHECK(n_hi > 0 && n_lo > 0 && (double)pos_hi / (double)n_hi > (double)pos_lo / (double)n_lo + 0.5);
    CHECK(auc > 0.8);
    free(word), free(in_train), free(y), free(s);
    collm_rec_dataset_free(ds);
}

int main(void) {
    char d1[512], d2[512], d3[512];
    snprintf(d1, sizeof d1, "%s/synth_a", test_tmp_dir());
    snprintf(d2, sizeof d2, "%s/synth_b", test_tmp_dir());
    snprintf(d3, sizeof d3, "%s/synth_c", test_tmp_dir());
    collm_rec_synth_options o;
    collm_rec_synth_defaults(&o);
    o.seed = 11;
    CHECK(collm_rec_synth(&o, d1) == COLLM_OK);
    CHECK(collm_rec_synth(&o, d2) == COLLM_OK);
    o.seed = 12;
    CHECK(collm_rec_synth(&o, d3) == COLLM_OK);
    const char *files[5] = {"items.tsv", "train.tsv", "valid.tsv", "test.tsv", "valid_small.tsv"};
    int same = 1, differ = 0;
    for (int k = 0; k < 5; k++) {
        char a[600], b[600], c[600];
        snprintf(a, sizeof a, "%s/%s", d1, files[k]);
        snprintf(b, sizeof b, "%s/%s", d2, files[k]);
        snprintf(c, sizeof c, "%s/%s", d3, files[k]);
        char *x, *y, *z;
        size_t nx, ny, nz;
        if (collm_read_file(a, &x, &nx) || collm_read_file(b, &y, &ny) || collm_read_file(c, &z, &nz)) {
            CHECK_MSG(0, "%s", collm_last_error());
            continue;
        }
        same &= nx == ny && memcmp(x, y, nx) == 0;
        differ += nx != nz || memcmp(x, z, nx) != 0;
        free(x), free(y), free(z);
    }
    CHECK(same);       // same seed, same bytes
    CHECK(differ == 5); // another seed, other data

    collm_rec_dataset *ds = collm_rec_dataset_load(d1);
    CHECK_MSG(ds != NULL, "%s", collm_last_error());
    if (!ds) return test_report();
    collm_rec_split *te = collm_rec_dataset_load_split(ds, "test");
    CHECK(te != NULL);
    CHECK(ds->n_items == o.n_items + 1 && ds->n_users <= o.n_users + 1);
    CHECK_STR(ds->items->title[0], "");
    CHECK(strncmp(ds->items->title[1], "The ", 4) == 0 && strstr(ds->items->title[1], " (19"));
    CHECK(ds->train->n > 5000 && ds->valid->n > 1000 && te->n > 500);
    printf("synth rows: train %lld valid %lld valid_small %lld test %lld\n", (long long)ds->train->n,
           (long long)ds->valid->n, (long long)ds->valid_small->n, (long long)te->n);
    // Time order per user, split windows, histories = [0] + earlier positives.
    const collm_rec_split *sp[3] = {ds->train, ds->valid, te};
    int ok_order = 1, ok_his = 1, ok_windows = 1, ok_nc = 1, cold = 0;
    int64_t max_ts[3] = {0}, min_ts[3] = {INT64_MAX, INT64_MAX, INT64_MAX};
    uint8_t *utr = calloc((size_t)ds->n_users + 1, 1), *itr = calloc((size_t)ds->n_items, 1);
    for (int64_t r = 0; r < ds->train->n; r++) utr[ds->train->user[r]] = itr[ds->train->item[r]] = 1;
    for (int k = 0; k < 3; k++) {
        const collm_rec_split *s = sp[k];
        for (int64_t r = 0; r < s->n; r++) {
            if (s->timestamp[r] > max_ts[k]) max_ts[k] = s->timestamp[r];
            if (s->timestamp[r] < min_ts[k]) min_ts[k] = s->timestamp[r];
            if (r > 0 && (s->user[r] < s->user[r - 1] ||
                          (s->user[r] == s->user[r - 1] && s->timestamp[r] < s->timestamp[r - 1])))
                ok_order = 0;
            int nc = utr[s->user[r]] && itr[s->item[r]];
            ok_nc &= s->not_cold[r] == nc;
            cold += !nc;
            ok_his &= s->his[s->his_offset[r]] == 0;
        }
    }
    for (int k = 0; k < 2; k++) ok_windows &= max_ts[k] < min_ts[k + 1];
    // Recompute every history from all rows of a user, in time order.
    for (int k = 0; k < 3 && ok_his; k++) {
        const collm_rec_split *s = sp[k];
        for (int64_t r = 0; r < s->n && ok_his; r++) {
            int64_t expect = 1; // the sentinel
            for (int kk = 0; kk < 3; kk++)
                for (int64_t q = 0; q < sp[kk]->n; q++)
                    if (sp[kk]->user[q] == s->user[r] && sp[kk]->label[q] &&
                        (sp[kk]->timestamp[q] < s->timestamp[r] ||
                         (sp[kk]->timestamp[q] == s->timestamp[r] && sp[kk]->item[q] < s->item[r])))
                        expect++;
            ok_his &= s->his_offset[r + 1] - s->his_offset[r] == expect;
            if (r % 997 != 0) continue; // spot-check the contents too
        }
    }
    CHECK(ok_order);
    CHECK(ok_windows);
    CHECK(ok_nc);
    CHECK(cold > 0); // some valid/test rows are cold
    CHECK(ok_his);
    // valid_small: half of valid, rows identical to valid rows, no repeats.
    collm_rec_split *vs = ds->valid_small;
    CHECK(vs->n == (ds->valid->n + 1) / 2 || vs->n == ds->valid->n / 2);
    int ok_sub = 1;
    uint8_t *seen = calloc((size_t)ds->valid->n, 1);
    for (int64_t j = 0; j < vs->n; j++) {
        int64_t hit = -1;
        for (int64_t r = 0; r < ds->valid->n && hit < 0; r++)
            if (ds->valid->user[r] == vs->user[j] && ds->valid->item[r] == vs->item[j]) hit = r;
        if (hit < 0 || seen[hit] || ds->valid->timestamp[hit] != vs->timestamp[j] ||
            ds->valid->label[hit] != vs->label[j] ||
            vs->his_offset[j + 1] - vs->his_offset[j] != ds->valid->his_offset[hit + 1] - ds->valid->his_offset[hit])
            ok_sub = 0;
        else
            seen[hit] = 1;
    }
    CHECK(ok_sub);
    double pos = 0;
    for (int64_t r = 0; r < ds->train->n; r++) pos += ds->train->label[r];
    pos /= (double)ds->train->n;
    CHECK(pos > 0.3 && pos < 0.7);
    double auc = mf_valid_auc(ds);
    printf("synth: train positive rate %.3f, SGD-MF valid AUC %.4f\n", pos, auc);
    CHECK(auc > 0.65);
    test_text_signal();
    // A run refused for an empty split leaves the folder's dataset as it was:
    // 3 items give every user 1 row, too few for valid_small. (items.tsv was
    // written first: the folder held 3 items under splits of 500.)
    char *before = NULL, *after = NULL;
    size_t n_before = 0, n_after = 0;
    char items_path[600];
    snprintf(items_path, sizeof items_path, "%s/items.tsv", d3);
    CHECK(collm_read_file(items_path, &before, &n_before) == COLLM_OK);
    collm_rec_synth_options tiny = o;
    tiny.n_users = 5, tiny.n_items = 3, tiny.min_per_user = 50, tiny.max_per_user = 60;
    CHECK(collm_rec_synth(&tiny, d3) != COLLM_OK && strstr(collm_last_error(), "would be empty"));
    CHECK(collm_read_file(items_path, &after, &n_after) == COLLM_OK);
    CHECK_MSG(before && after && n_before == n_after && memcmp(before, after, n_before) == 0,
              "a refused synth replaced %s (%zu -> %zu bytes)", items_path, n_before, n_after);
    free(before), free(after);
    // Bad options.
    o.n_items = 1;
    CHECK(collm_rec_synth(&o, d1) != COLLM_OK && strstr(collm_last_error(), "items"));
    free(utr), free(itr), free(seen);
    collm_rec_split_free(te);
    collm_rec_dataset_free(ds);
    return test_report();
}
