// The context-feature model (cf/ctx.c): its features against values worked
// out by hand on a five-item dataset, its fit against the optimality
// condition of the regularised logistic loss (14 features, and the 12 of
// older files), save/load and a stored number out of what training writes,
// the refit, a second training of the same model, and bad input.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cf/encoders.h"
#include "collm/cf.h"
#include "collm/dataset.h"
#include "collm/error.h"
#include "test.h"

static void write_text(const char *dir, const char *name, const char *text) {
    char path[1024];
    snprintf(path, sizeof path, "%.900s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

#define SPLIT_HEADER "uid\tiid\tlabel\ttimestamp\this\tnot_cold\n"

// Items 1-6 with years 1990, 2000, none, 1980, 1995, 2001 and genres
// {Drama, Comedy}, {Drama}, {Horror}, {Comedy}, {Horror, Drama}, none.
// train: user 1 likes 1 and 3, not 2; user 2 likes 4, not 1 (g = 3/5).
static void make_dataset(const char *dir, const char *item_map) {
    mkdir(dir, 0755);
    write_text(dir, "items.tsv", "iid\ttitle\n0\t\n1\tA (1990)\n2\tB (2000)\n3\tC\n4\tD (1980)\n5\tE (1995)\n6\tF (2001)\n");
    write_text(dir, "item_map.tsv", item_map);
    write_text(dir, "train.tsv",
               SPLIT_HEADER "1\t1\t1\t10\t0\t1\n1\t2\t0\t11\t0,1\t1\n1\t3\t1\t12\t0,1\t1\n2\t1\t0\t10\t0\t1\n2\t4\t1\t11\t0\t1\n");
    // later rows: user 3 is cold, items 5 and 6 are cold (and 5 in some histories: features 12-13);
    // labels mixed so the fit has both
    write_text(dir, "valid_small.tsv",
               SPLIT_HEADER "1\t5\t1\t20\t0,1,3,4,2\t0\n1\t4\t0\t21\t0,1,3\t1\n2\t3\t1\t20\t0,4\t1\n2\t5\t0\t21\t0,4,3\t0\n"
                            "3\t1\t1\t20\t0\t0\n3\t2\t0\t21\t0,1\t0\n3\t4\t1\t22\t0,1\t0\n1\t2\t0\t22\t0,1,3\t1\n"
                            "1\t6\t1\t23\t0,1,3,5\t0\n3\t6\t0\t23\t0,5\t0\n2\t2\t1\t23\t0,4,5\t1\n3\t3\t0\t24\t0,5\t0\n");
    write_text(dir, "valid.tsv", SPLIT_HEADER "1\t5\t1\t20\t0,1,3,4,2\t0\n2\t2\t0\t20\t0,4\t1\n");
}

static const char *GENRES = "iid\tmovie_id\tgenres\n1\t11\tDrama|Comedy\n2\t12\tDrama\n3\t13\tHorror\n4\t14\tComedy\n"
                            "5\t15\tHorror|Drama\n";

// dim: the feature count (14; 12 is the model of files written before features 12-13)
static collm_cf_model *train_ctx_dim(const char *dir, const char *eval_split, int dim) {
    collm_rec_dataset *ds = collm_rec_dataset_load(dir);
    CHECK_MSG(ds != NULL, "%s", collm_last_error());
    if (!ds) return NULL;
    collm_cf_model *m = collm_cf_model_create("ctx", ds->n_users, ds->n_items, dim, 1);
    CHECK_MSG(m != NULL, "%s", collm_last_error());
    collm_cf_train_options o;
    CHECK(collm_cf_train_options_kind("ctx", &o) == COLLM_OK);
    if (eval_split) o.eval_split = eval_split;
    if (m && collm_cf_model_train(m, ds, &o, NULL, NULL, NULL, NULL) != COLLM_OK) {
        collm_cf_model_free(m);
        m = NULL;
    }
    collm_rec_dataset_free(ds);
    return m;
}

static collm_cf_model *train_ctx(const char *dir, const char *eval_split) { return train_ctx_dim(dir, eval_split, 14); }

// The window of a history as the model reads it: hp.max_len ids, left-padded.
static int32_t *window_of(const collm_cf_model *m, const int32_t *his, int n) {
    collm_cf_hparams hp;
    collm_cf_model_hparams(m, &hp);
    int32_t *win = calloc((size_t)hp.max_len, sizeof *win);
    for (int k = 0; k < n; k++) win[hp.max_len - n + k] = his[k];
    return win;
}

static void test_features_by_hand(const char *dir) {
    collm_cf_model *m = train_ctx(dir, NULL);
    if (!m) return;
    // user 1, item 5, history 1, 3, 4, 2 (g = 0.6; user 1: 3 rows, 2 liked)
    const int32_t his[] = {1, 3, 4, 2};
    int32_t *win = window_of(m, his, 4);
    double x[14];
    CHECK(collm_cf_ctx_features(m, 1, 5, win, x) == COLLM_OK);
    const double want[14] = {
        log(3.0),                              // new = 4 - 2
        0.5,                                   // 2 / 4
        0,                                     // user 1 has train rows
        (2 + 5 * 0.6) / (3 + 5),               // user rate
        log(4.0),                              // 3 rows
        (0 + 5 * 0.6) / (0 + 5),               // item 5 has no train row
        0, 1,                                  // log(1 + 0), cold item
        ((1 + 1.8) / (1 + 3) + (1 + 1.8) / (2 + 3)) / 2, // Horror 1/1, Drama 1/2
        0.75,                                  // 1 (Drama), 3 (Horror), 2 (Drama) share; 4 (Comedy) not
        0.5,                                   // 1995
        0.5,                                   // 1995 - mean(1990, 1980, 2000)
        0, 0,                                  // every history item has train rows
    };
    for (int f = 0; f < 14; f++) CHECK_NEAR(x[f], want[f], 1e-12);
    // a history with an item train never saw (5): novelty 1/2, and again for a target new to train (5 itself)
    const int32_t his_new[] = {4, 5};
    int32_t *win_new = window_of(m, his_new, 2);
    CHECK(collm_cf_ctx_features(m, 2, 3, win_new, x) == COLLM_OK);
    CHECK_NEAR(x[12], 0.5, 0);
    CHECK_NEAR(x[13], 0, 0); // item 3 has train rows
    CHECK(collm_cf_ctx_features(m, 2, 5, win_new, x) == COLLM_OK);
    CHECK_NEAR(x[12], 0.5, 0);
    CHECK_NEAR(x[13], 0.5, 0);
    free(win_new);
    // a cold user with an empty history: the genre rate falls back per genre
    memset(win, 0, sizeof(int32_t) * 4);
    int32_t *empty = window_of(m, his, 0);
    CHECK(collm_cf_ctx_features(m, 3, 3, empty, x) == COLLM_OK);
    CHECK_NEAR(x[0], 0, 0);
    CHECK_NEAR(x[2], 1, 0);
    CHECK_NEAR(x[3], 0.6, 1e-12);
    CHECK_NEAR(x[8], (0 + 1.8) / (0 + 3), 1e-12); // (= g: a cold user has no genre rows)
    CHECK_NEAR(x[9], 0, 0);
    CHECK_NEAR(x[10], 0, 0); // item 3 has no year
    CHECK_NEAR(x[11], 0, 0);
    CHECK_NEAR(x[12], 0, 0); // no history
    CHECK_NEAR(x[13], 0, 0);
    // a user's own genre rows: user 2 rated one Drama (item 1, not liked), so Drama's rate is (0 + 1.8) / (1 + 3)
    CHECK(collm_cf_ctx_features(m, 2, 2, empty, x) == COLLM_OK);
    CHECK_NEAR(x[8], 0.45, 1e-12);
    free(win);
    free(empty);
    // R is the last 30 liked items: item 5 (cold, Horror|Drama) just outside or inside it, then item 1
    // (Drama|Comedy) over and over; target 4 (Comedy): 1 shares its genre, 5 does not
    int32_t his_long[32];
    for (int n = 30; n <= 32; n++) {
        his_long[0] = 5;
        for (int k = 1; k < n; k++) his_long[k] = 1;
        int32_t *w = window_of(m, his_long, n);
        CHECK(collm_cf_ctx_features(m, 1, 4, w, x) == COLLM_OK);
        CHECK_NEAR(x[12], n == 30 ? 1.0 / 30 : 0, 1e-15);    // novelty: 5 counts only inside R
        CHECK_NEAR(x[9], n == 30 ? 29.0 / 30 : 1, 1e-15);    // genre share over R
        CHECK_NEAR(x[1], (n - 2.0) / n, 1e-15);              // history beyond train: the whole window, not R
        free(w);
    }
    collm_cf_model_free(m);
}

// At the fitted weights the gradient of Σ BCE + λ/2 |w|² over valid_small
// is zero; computed here from the features and the stored standardisation.
// dim 12 (an older file's model) fits and scores with the first 12 features.
static void test_fit_is_optimal(const char *dir, int nf) {
    collm_cf_model *m = train_ctx_dim(dir, NULL, nf);
    if (!m) return;
    collm_rec_split *vs = NULL;
    char path[1024];
    snprintf(path, sizeof path, "%.900s/valid_small.tsv", dir);
    vs = collm_rec_split_load(path, NULL);
    CHECK(vs != NULL);
    cf_params *p = collm_cf_encoder_params(m);
    const float *fit = NULL;
    for (int t = 0; p && t < p->n; t++)
        if (strcmp(p->t[t].name, "ctx.fit") == 0) fit = cf_w(p, t);
    CHECK(fit != NULL);
    if (!vs || !fit) goto done;
    const int D = nf + 1;
    double grad[15] = {0}, max_w = 0;
    for (int64_t r = 0; r < vs->n; r++) {
        const int n = (int)(vs->his_offset[r + 1] - vs->his_offset[r]);
        int32_t *win = window_of(m, vs->his + vs->his_offset[r], n);
        double x[14], z[15], s = fit[2 * D + nf];
        CHECK(collm_cf_ctx_features(m, vs->user[r], vs->item[r], win, x) == COLLM_OK);
        for (int f = 0; f < nf; f++) z[f] = (x[f] - fit[f]) / fit[D + f], s += fit[2 * D + f] * z[f];
        z[nf] = 1;
        float got;
        CHECK(collm_cf_model_score_sample(m, vs->user[r], vs->his + vs->his_offset[r], n, vs->item[r], &got) == COLLM_OK);
        CHECK_NEAR(got, s, 1e-5); // the model scores what the features say
        const double e = 1 / (1 + exp(-s)) - vs->label[r];
        for (int f = 0; f < D; f++) grad[f] += e * z[f];
        free(win);
    }
    for (int f = 0; f < D; f++) {
        grad[f] += 1e-2 * fit[2 * D + f];
        if (fabs(fit[2 * D + f]) > max_w) max_w = fabs(fit[2 * D + f]);
        CHECK_MSG(fabs(grad[f]) < 1e-4, "dim %d: gradient %d = %g at the fitted weights", nf, f, grad[f]);
    }
    CHECK(max_w > 0.1); // it did fit something
    if (nf == 14) // features 12-13 vary over the fit rows: they take part in the fit
        CHECK_MSG(fabs(fit[2 * D + 12]) > 1e-3 && fabs(fit[2 * D + 13]) > 1e-3, "weights %g %g", fit[2 * D + 12],
                  fit[2 * D + 13]);
done:
    collm_rec_split_free(vs);
    collm_cf_model_free(m);
}

static void test_save_load_and_bad_input(const char *dir) {
    collm_cf_model *m = train_ctx(dir, NULL);
    if (!m) return;
    char path[1024];
    snprintf(path, sizeof path, "%.900s/ctx.gguf", dir);
    CHECK(collm_cf_model_save(m, path) == COLLM_OK);
    collm_cf_model *back = collm_cf_model_load(path);
    CHECK_MSG(back != NULL, "%s", collm_last_error());
    const int32_t his[] = {1, 3};
    float a = 0, b = 1;
    CHECK(collm_cf_model_score_sample(m, 2, his, 2, 5, &a) == COLLM_OK);
    if (back) CHECK(collm_cf_model_score_sample(back, 2, his, 2, 5, &b) == COLLM_OK);
    CHECK(a == b);
    collm_cf_model_free(back);

    // no vectors: a clear error, not a crash
    float v[14];
    CHECK(collm_cf_model_item_vector(m, 1, v) == COLLM_ERR_UNSUPPORTED);
    CHECK(strstr(collm_last_error(), "fit-score --with") != NULL);
    CHECK(collm_cf_model_sample_vectors(m, 1, his, 2, 1, v, NULL) == COLLM_ERR_UNSUPPORTED);

    // a stored statistic that cannot be (more liked than rated rows) is refused on load
    cf_params *p = collm_cf_encoder_params(m);
    for (int t = 0; p && t < p->n; t++)
        if (strcmp(p->t[t].name, "ctx.user") == 0) cf_w(p, t)[2 * 1 + 1] = 99;
    CHECK(collm_cf_model_save(m, path) == COLLM_OK);
    back = collm_cf_model_load(path);
    CHECK(back == NULL);
    CHECK(strstr(collm_last_error(), "ctx.user row 1") != NULL);
    collm_cf_model_free(back);
    collm_cf_model_free(m);
    // every other table and the fit, one number at a time out of what training writes
    static const struct {
        const char *tensor;
        int64_t index;
        float value;
        const char *message;
    } bad[] = {
        {"ctx.item", 3 * 2 + 1, 5, "ctx.item row 2 holds 1 rows, 5 liked"},
        {"ctx.item", 3 * 2 + 2, -1990, "year -1990"},
        {"ctx.item_genre", 24 * 1 + 0, 2, "ctx.item_genre row 1, genre 0 is 2"},
        {"ctx.user_genre", 48 * 2 + 0, -3, "ctx.user_genre row 2, genre 0 holds -3 rows"},
        {"ctx.user_genre", 48 * 2 + 24 + 1, 7, "ctx.user_genre row 2, genre 1 holds"},
        {"ctx.fit", 15 + 3, 1e-20f, "feature 3 has mean"},
        {"ctx.fit", 30 + 5, 3e7f, "weight 3e+07"},
        {"ctx.fit", 2, -2e6f, "feature 2 has mean -2e+06"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        collm_cf_model *t = train_ctx(dir, NULL);
        if (!t) continue;
        cf_params *tp = collm_cf_encoder_params(t);
        for (int q = 0; tp && q < tp->n; q++)
            if (strcmp(tp->t[q].name, bad[k].tensor) == 0) cf_w(tp, q)[bad[k].index] = bad[k].value;
        CHECK(collm_cf_model_save(t, path) == COLLM_OK);
        back = collm_cf_model_load(path);
        CHECK_MSG(back == NULL && strstr(collm_last_error(), bad[k].message) != NULL, "%s[%lld] = %g: %s", bad[k].tensor,
                  (long long)bad[k].index, bad[k].value, back ? "loaded" : collm_last_error());
        collm_cf_model_free(back);
        collm_cf_model_free(t);
    }

    // nothing to fit on, or train itself
    CHECK(train_ctx(dir, "") == NULL);
    CHECK(strstr(collm_last_error(), "valid_small") != NULL);
    CHECK(train_ctx(dir, "train") == NULL);
    // a wrong kind of dimension
    CHECK(collm_cf_model_create("ctx", 4, 6, 8, 1) == NULL);
    CHECK(collm_cf_model_create("ctx", 4, 6, 13, 1) == NULL);
    CHECK(strstr(collm_last_error(), "14, or 12") != NULL);

    // a file of the 12-feature model (written before features 12-13) loads as one and scores as saved
    collm_cf_model *old = train_ctx_dim(dir, NULL, 12);
    CHECK(old != NULL);
    if (old && collm_cf_model_save(old, path) == COLLM_OK) {
        back = collm_cf_model_load(path);
        CHECK_MSG(back != NULL, "%s", collm_last_error());
        collm_cf_hparams hp = {0};
        if (back) collm_cf_model_hparams(back, &hp);
        CHECK(hp.dim == 12);
        a = 0, b = 1;
        CHECK(collm_cf_model_score_sample(old, 2, his, 2, 5, &a) == COLLM_OK);
        if (back) CHECK(collm_cf_model_score_sample(back, 2, his, 2, 5, &b) == COLLM_OK);
        CHECK(a == b);
        collm_cf_model_free(back);
    }
    collm_cf_model_free(old);
}

// A ctx tensor by name (NULL when absent).
static const float *ctx_tensor(collm_cf_model *m, const char *name, int64_t *numel) {
    cf_params *p = collm_cf_encoder_params(m);
    for (int t = 0; p && t < p->n; t++)
        if (strcmp(p->t[t].name, name) == 0) {
            *numel = cf_numel(p, t);
            return cf_w(p, t);
        }
    return NULL;
}

// collm_cf_model_refit: on the same train rows every tensor is the fitted
// model's; on train + valid the fitted weights are kept and the statistics
// count valid's rows too (user 1: 3 train rows, 2 liked, + valid's liked
// row of item 5; user 2: 2 train rows, 1 liked, + valid's disliked row of
// item 2), worked out by hand.
static void test_refit(const char *dir) {
    collm_cf_model *m = train_ctx(dir, NULL);
    collm_rec_dataset *ds = collm_rec_dataset_load(dir);
    CHECK_MSG(m && ds, "%s", collm_last_error());
    if (!m || !ds) goto done;
    static const char *const names[] = {"ctx.user", "ctx.item", "ctx.item_genre", "ctx.user_genre", "ctx.fit"};
    collm_cf_model *same = collm_cf_model_refit(m, ds, NULL, NULL, NULL, NULL);
    CHECK_MSG(same != NULL, "%s", collm_last_error());
    for (int k = 0; same && k < 5; k++) {
        int64_t n1 = -1, n2 = -2;
        const float *a = ctx_tensor(m, names[k], &n1), *b = ctx_tensor(same, names[k], &n2);
        CHECK_MSG(a && b && n1 == n2 && memcmp(a, b, (size_t)n1 * sizeof *a) == 0, "refit on train: %s differs", names[k]);
    }
    collm_cf_model_free(same);
    CHECK_MSG(collm_rec_dataset_set_train(ds, "train,valid") == COLLM_OK && ds->train->n == 7, "%s", collm_last_error());
    collm_cf_model *more = collm_cf_model_refit(m, ds, NULL, NULL, NULL, NULL);
    CHECK_MSG(more != NULL, "%s", collm_last_error());
    if (more) {
        int64_t n1 = 0, n2 = 0;
        const float *a = ctx_tensor(m, "ctx.fit", &n1), *b = ctx_tensor(more, "ctx.fit", &n2);
        CHECK(a && b && n1 == n2 && memcmp(a, b, (size_t)n1 * sizeof *a) == 0);
        const float *us = ctx_tensor(more, "ctx.user", &n1), *is = ctx_tensor(more, "ctx.item", &n2);
        CHECK(us && us[2 * 1] == 4 && us[2 * 1 + 1] == 3 && us[2 * 2] == 3 && us[2 * 2 + 1] == 1);
        CHECK(is && is[3 * 5] == 1 && is[3 * 5 + 1] == 1 && is[3 * 2] == 2 && is[3 * 2 + 1] == 0);
        CHECK(is && is[3 * 5 + 2] == 1995); // the years stay
        CHECK(strstr(collm_cf_model_train_split(more), "train.tsv + ") != NULL);
    }
    collm_cf_model_free(more);
    // a dataset folder whose item_map.tsv has no genres: the refit keeps m's genres and years
    char dir2[1024];
    snprintf(dir2, sizeof dir2, "%.900s-nogenres", dir);
    make_dataset(dir2, "iid\tmovie_id\n1\t11\n");
    collm_rec_dataset *ds2 = collm_rec_dataset_load(dir2);
    collm_cf_model *bare = ds2 ? collm_cf_model_refit(m, ds2, NULL, NULL, NULL, NULL) : NULL;
    CHECK_MSG(bare != NULL, "%s", collm_last_error());
    if (bare) {
        int64_t n1 = 0, n2 = 0;
        const float *a = ctx_tensor(m, "ctx.item_genre", &n1), *b = ctx_tensor(bare, "ctx.item_genre", &n2);
        CHECK(a && b && n1 == n2 && memcmp(a, b, (size_t)n1 * sizeof *a) == 0);
        int any = 0;
        for (int64_t k = 0; a && k < n1; k++) any |= a[k] != 0;
        CHECK(any); // m has genres to keep
    }
    collm_cf_model_free(bare);
    collm_rec_dataset_free(ds2);
done:
    collm_rec_dataset_free(ds);
    collm_cf_model_free(m);
}

// The same model trained again on a folder without genres keeps none of the
// first training's; the fit split (the rows whose labels fitted the weights)
// is valid_small's file, kept by save/load and by a refit, and "" for a kind
// whose evaluation split only chooses the epoch.
static void test_retrain_and_fit_split(const char *dir) {
    collm_cf_model *m = train_ctx(dir, NULL);
    char dir2[1024], path[1024];
    snprintf(dir2, sizeof dir2, "%.900s-nogenres", dir);
    make_dataset(dir2, "iid\tmovie_id\n1\t11\n");
    collm_rec_dataset *ds2 = collm_rec_dataset_load(dir2);
    CHECK_MSG(m && ds2, "%s", collm_last_error());
    if (!m || !ds2) goto done;
    CHECK(strstr(collm_cf_model_fit_split(m), "/valid_small.tsv") != NULL);
    snprintf(path, sizeof path, "%.900s/ctx-fit.gguf", dir);
    CHECK(collm_cf_model_save(m, path) == COLLM_OK);
    collm_cf_model *back = collm_cf_model_load(path);
    CHECK(back && strcmp(collm_cf_model_fit_split(back), collm_cf_model_fit_split(m)) == 0);
    collm_cf_model_free(back);
    collm_cf_model *same = collm_cf_model_refit(m, ds2, NULL, NULL, NULL, NULL);
    CHECK(same && strcmp(collm_cf_model_fit_split(same), collm_cf_model_fit_split(m)) == 0);
    collm_cf_model_free(same);
    collm_cf_train_options o;
    CHECK(collm_cf_train_options_kind("ctx", &o) == COLLM_OK);
    CHECK_MSG(collm_cf_model_train(m, ds2, &o, NULL, NULL, NULL, NULL) == COLLM_OK, "%s", collm_last_error());
    int64_t n = 0;
    const float *ig = ctx_tensor(m, "ctx.item_genre", &n);
    int any = 0;
    for (int64_t k = 0; ig && k < n; k++) any |= ig[k] != 0;
    CHECK(ig && !any);
    CHECK(strstr(collm_cf_model_fit_split(m), "-nogenres/valid_small.tsv") != NULL);
    collm_cf_model *mf = collm_cf_model_create("mf", ds2->n_users, ds2->n_items, 4, 1);
    CHECK(mf && collm_cf_model_train(mf, ds2, NULL, NULL, NULL, NULL, NULL) == COLLM_OK);
    CHECK(mf && strcmp(collm_cf_model_fit_split(mf), "") == 0 && strcmp(collm_cf_model_eval_split(mf), "valid") == 0);
    collm_cf_model_free(mf);
done:
    collm_rec_dataset_free(ds2);
    collm_cf_model_free(m);
}

static void test_bad_item_map(const char *root) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%.900s/ctx-badid", root);
    make_dataset(dir, "iid\tmovie_id\tgenres\n1\t11\tDrama\nx\t12\tDrama\n");
    CHECK(train_ctx(dir, NULL) == NULL);
    CHECK(strstr(collm_last_error(), "item_map.tsv: line 3: column 'iid'") != NULL);
    snprintf(dir, sizeof dir, "%.900s/ctx-genres", root);
    char map[4096] = "iid\tmovie_id\tgenres\n1\t11\t";
    for (int g = 0; g < 25; g++) snprintf(map + strlen(map), sizeof map - strlen(map), "%sG%d", g ? "|" : "", g);
    strcat(map, "\n");
    make_dataset(dir, map);
    CHECK(train_ctx(dir, NULL) == NULL);
    CHECK(strstr(collm_last_error(), "25 genres ('G24' is the 25th): ctx takes at most 24") != NULL);
    // empty fields before the genres column are fields: the same features as
    // with the movie ids filled in
    snprintf(dir, sizeof dir, "%.900s/ctx-emptyfield", root);
    make_dataset(dir, "iid\tmovie_id\tgenres\n1\t\tDrama|Comedy\n2\t\tDrama\n3\t\tHorror\n4\t\tComedy\n"
                      "5\t\tHorror|Drama\n");
    char full[1024];
    snprintf(full, sizeof full, "%.900s/ctx", root);
    collm_cf_model *a = train_ctx(dir, NULL), *b = train_ctx(full, NULL);
    CHECK(a != NULL && b != NULL);
    if (a && b) {
        const int32_t his[] = {1, 3, 4, 2};
        int32_t *win = window_of(a, his, 4);
        double xa[14], xb[14];
        CHECK(collm_cf_ctx_features(a, 1, 5, win, xa) == COLLM_OK);
        CHECK(collm_cf_ctx_features(b, 1, 5, win, xb) == COLLM_OK);
        for (int f = 0; f < 14; f++) CHECK_NEAR(xa[f], xb[f], 0);
        CHECK_NEAR(xa[9], 0.75, 1e-12); // the genres were read
        free(win);
    }
    collm_cf_model_free(a);
    collm_cf_model_free(b);
    // no genres column: trains, genre features constant
    snprintf(dir, sizeof dir, "%.900s/ctx-nogenres", root);
    make_dataset(dir, "iid\tmovie_id\n1\t11\n");
    collm_cf_model *m = train_ctx(dir, NULL);
    CHECK(m != NULL);
    collm_cf_model_free(m);
}

int main(void) {
    char root[1024], dir[1024];
    snprintf(root, sizeof root, "%s", test_tmp_dir());
    mkdir(root, 0755);
    snprintf(dir, sizeof dir, "%.900s/ctx", root);
    make_dataset(dir, GENRES);
    test_features_by_hand(dir);
    test_fit_is_optimal(dir, 14);
    test_fit_is_optimal(dir, 12);
    test_save_load_and_bad_input(dir);
    test_refit(dir);
    test_retrain_and_fit_split(dir);
    test_bad_item_map(root);
    return test_report();
}
