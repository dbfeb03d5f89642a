// MF (collm/cf.h kind "mf", collm/mf.h): the loss gradient against double-
// precision finite differences, one Adam step against a hand-written
// reference, learning a synthetic problem, determinism over seeds and thread
// counts, GGUF round trip, and unknown ids.
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "collm/cf.h"
#include "collm/error.h"
#include "collm/fileio.h"
#include "collm/gguf.h"
#include "cf/mf.h"
#include "core/rng.h"
#include "test.h"

// --- independent double-precision reference of the MF objective
static double ref_loss(const double *U, const double *I, int d, const int32_t *u, const int32_t *it, const float *y,
                       int n) {
    double loss = 0.0;
    for (int r = 0; r < n; r++) {
        double s = 0.0;
        for (int k = 0; k < d; k++) s += U[u[r] * d + k] * I[it[r] * d + k];
        // log(1 + e^s) - y s, stable
        loss += (s > 0 ? s + log1p(exp(-s)) : log1p(exp(s))) - y[r] * s;
    }
    return loss / n;
}

static void test_gradient_vs_finite_differences(void) {
    enum { NU = 5, NI = 6, D = 4, N = 14 };
    float U[NU * D], I[NI * D], gU[NU * D], gI[NI * D], gU2[NU * D], gI2[NI * D];
    double Ud[NU * D], Id[NI * D];
    int32_t users[N], items[N];
    float labels[N];
    collm_rng rng;
    collm_rng_seed(&rng, 11);
    for (int k = 0; k < NU * D; k++) U[k] = k < D ? 0.0f : (float)(0.7 * collm_rng_normal(&rng));
    for (int k = 0; k < NI * D; k++) I[k] = k < D ? 0.0f : (float)(0.7 * collm_rng_normal(&rng));
    for (int r = 0; r < N; r++) {
        users[r] = 1 + (int32_t)collm_rng_below(&rng, NU - 1);
        items[r] = 1 + (int32_t)collm_rng_below(&rng, NI - 1);
        labels[r] = (float)(collm_rng_uniform(&rng) < 0.5);
    }
    users[0] = 2, items[0] = 3, users[1] = 2, items[1] = 3; // a repeated pair: gradients must add up
    for (int k = 0; k < NU * D; k++) Ud[k] = U[k];
    for (int k = 0; k < NI * D; k++) Id[k] = I[k];
    memset(gU, 0x7f, sizeof gU); // overwritten, not accumulated
    memset(gI, 0x7f, sizeof gI);
    double loss = collm_mf_loss_grad(U, I, NU, NI, D, users, items, labels, N, gU, gI, NULL);
    CHECK_NEAR(loss, ref_loss(Ud, Id, D, users, items, labels, N), 1e-5);

    const double h = 1e-5;
    double max_err = 0.0;
    for (int k = D; k < NU * D; k++) {
        double keep = Ud[k];
        Ud[k] = keep + h;
        double lp = ref_loss(Ud, Id, D, users, items, labels, N);
        Ud[k] = keep - h;
        double lm = ref_loss(Ud, Id, D, users, items, labels, N);
        Ud[k] = keep;
        double err = fabs((lp - lm) / (2 * h) - gU[k]);
        if (err > max_err) max_err = err;
    }
    for (int k = D; k < NI * D; k++) {
        double keep = Id[k];
        Id[k] = keep + h;
        double lp = ref_loss(Ud, Id, D, users, items, labels, N);
        Id[k] = keep - h;
        double lm = ref_loss(Ud, Id, D, users, items, labels, N);
        Id[k] = keep;
        double err = fabs((lp - lm) / (2 * h) - gI[k]);
        if (err > max_err) max_err = err;
    }
    CHECK_MSG(max_err < 1e-5, "max |fd - grad| = %g", max_err);
    int row0_zero = 1, some_nonzero = 0;
    for (int k = 0; k < D; k++) row0_zero &= gU[k] == 0.0f && gI[k] == 0.0f;
    for (int k = D; k < NU * D; k++) some_nonzero |= gU[k] != 0.0f;
    CHECK(row0_zero);
    CHECK(some_nonzero);

    // a padding-id row contributes to the loss but row 0 gets no gradient
    int32_t u0[] = {0, 1}, i0[] = {2, 0};
    float y0[] = {1, 0};
    collm_mf_loss_grad(U, I, NU, NI, D, u0, i0, y0, 2, gU, gI, NULL);
    row0_zero = 1;
    for (int k = 0; k < D; k++) row0_zero &= gU[k] == 0.0f && gI[k] == 0.0f;
    CHECK(row0_zero);

    // two threads: bitwise the same
    collm_pool *pool = collm_pool_create(2);
    CHECK(pool != NULL);
    collm_mf_loss_grad(U, I, NU, NI, D, users, items, labels, N, gU, gI, NULL);
    double loss2 = collm_mf_loss_grad(U, I, NU, NI, D, users, items, labels, N, gU2, gI2, pool);
    CHECK(loss2 == loss);
    CHECK(memcmp(gU, gU2, sizeof gU) == 0 && memcmp(gI, gI2, sizeof gI) == 0);
    collm_pool_free(pool);
}

// --- synthetic datasets built in memory
typedef struct {
    collm_rec_split split;
    int32_t *user, *item;
    int8_t *label, *not_cold;
} owned_split;

static void make_split(owned_split *s, int64_t n, const char *path) {
    memset(s, 0, sizeof *s);
    s->user = calloc((size_t)n, sizeof *s->user);
    s->item = calloc((size_t)n, sizeof *s->item);
    s->label = calloc((size_t)n, sizeof *s->label);
    s->not_cold = calloc((size_t)n, sizeof *s->not_cold);
    s->split.path = (char *)path;
    s->split.n = n;
    s->split.user = s->user;
    s->split.item = s->item;
    s->split.label = s->label;
    s->split.not_cold = s->not_cold;
}

static void free_split(owned_split *s) {
    free(s->user);
    free(s->item);
    free(s->label);
    free(s->not_cold);
}

// Users and items have hidden 3-d vectors; label = 1 iff their dot > 0.
// Train and valid draw distinct random (user, item) pairs.
enum { SYN_USERS = 41, SYN_ITEMS = 61, SYN_TRAIN = 1800, SYN_VALID = 500 };
typedef struct {
    collm_rec_dataset ds;
    owned_split train, valid;
} synthetic;

static void make_synthetic(synthetic *syn) {
    collm_rng rng;
    collm_rng_seed(&rng, 5);
    double hu[SYN_USERS][3], hi[SYN_ITEMS][3];
    for (int u = 0; u < SYN_USERS; u++)
        for (int k = 0; k < 3; k++) hu[u][k] = collm_rng_normal(&rng);
    for (int i = 0; i < SYN_ITEMS; i++)
        for (int k = 0; k < 3; k++) hi[i][k] = collm_rng_normal(&rng);
    static unsigned char used[SYN_USERS][SYN_ITEMS];
    memset(used, 0, sizeof used);
    make_split(&syn->train, SYN_TRAIN, "synthetic/train.tsv");
    make_split(&syn->valid, SYN_VALID, "synthetic/valid.tsv");
    owned_split *parts[2] = {&syn->train, &syn->valid};
    for (int p = 0; p < 2; p++)
        for (int64_t r = 0; r < parts[p]->split.n; r++) {
            int u, i;
            do {
                u = 1 + (int)collm_rng_below(&rng, SYN_USERS - 1);
                i = 1 + (int)collm_rng_below(&rng, SYN_ITEMS - 1);
            } while (used[u][i]);
            used[u][i] = 1;
            double s = hu[u][0] * hi[i][0] + hu[u][1] * hi[i][1] + hu[u][2] * hi[i][2];
            parts[p]->user[r] = u;
            parts[p]->item[r] = i;
            parts[p]->label[r] = s > 0;
            parts[p]->not_cold[r] = 1;
        }
    memset(&syn->ds, 0, sizeof syn->ds);
    syn->ds.dir = "synthetic";
    syn->ds.train = &syn->train.split;
    syn->ds.valid = &syn->valid.split;
    syn->ds.n_users = SYN_USERS;
    syn->ds.n_items = SYN_ITEMS;
}

static void syn_options(collm_cf_train_options *o) {
    collm_cf_train_options_default(o);
    o->lr = 0.03;
    o->weight_decay = 1e-4;
    o->batch = 256;
    o->max_epochs = 60;
    o->patience = 15;
    o->seed = 3;
}

// Every weight of a and b is bitwise equal.
static int same_weights(const collm_cf_model *a, const collm_cf_model *b) {
    int d = collm_cf_model_dim(a);
    if (d != collm_cf_model_dim(b) || collm_cf_model_n_users(a) != collm_cf_model_n_users(b) ||
        collm_cf_model_n_items(a) != collm_cf_model_n_items(b))
        return 0;
    float *va = malloc((size_t)d * sizeof *va), *vb = malloc((size_t)d * sizeof *vb);
    int same = 1;
    for (int32_t u = 0; u < collm_cf_model_n_users(a) && same; u++) {
        collm_cf_model_user_vector(a, u, va);
        collm_cf_model_user_vector(b, u, vb);
        same = memcmp(va, vb, (size_t)d * sizeof *va) == 0;
    }
    for (int32_t i = 0; i < collm_cf_model_n_items(a) && same; i++) {
        collm_cf_model_item_vector(a, i, va);
        collm_cf_model_item_vector(b, i, vb);
        same = memcmp(va, vb, (size_t)d * sizeof *va) == 0;
    }
    free(va);
    free(vb);
    return same;
}

static collm_cf_model *train_synthetic(const synthetic *syn, uint64_t seed, collm_pool *pool, collm_cf_train_result *res) {
    collm_cf_train_options o;
    syn_options(&o);
    o.seed = seed;
    collm_cf_model *m = collm_cf_model_create("mf", SYN_USERS, SYN_ITEMS, 16, seed);
    if (!m) return NULL;
    if (collm_cf_model_train(m, &syn->ds, &o, pool, NULL, NULL, res) != COLLM_OK) {
        fprintf(stderr, "train: %s\n", collm_last_error());
        collm_cf_model_free(m);
        return NULL;
    }
    return m;
}

static void test_learns_and_is_deterministic(void) {
    synthetic syn;
    make_synthetic(&syn);
    collm_pool *pool2 = collm_pool_create(2);
    collm_cf_train_result r1, r2, r3;
    collm_cf_model *m1 = train_synthetic(&syn, 3, NULL, &r1);
    collm_cf_model *m2 = train_synthetic(&syn, 3, pool2, &r2);
    collm_cf_model *m3 = train_synthetic(&syn, 4, pool2, &r3);
    CHECK(m1 && m2 && m3);
    if (m1 && m2 && m3) {
        collm_metrics_report rep;
        CHECK(collm_cf_model_evaluate(m1, &syn.valid.split, &rep, pool2) == COLLM_OK);
        CHECK_MSG(rep.auc > 0.9, "synthetic valid AUC %.4f", rep.auc);
        CHECK_NEAR(rep.auc, r1.best_eval_auc, 1e-9); // the best weights were kept
        CHECK(r1.best_epoch >= 1 && r1.epochs_run >= r1.best_epoch);
        CHECK(same_weights(m1, m2));  // 1 thread vs 2 threads, same seed
        CHECK(!same_weights(m1, m3)); // another seed
        CHECK(r1.best_eval_auc == r2.best_eval_auc && r1.epochs_run == r2.epochs_run);
        float v[16];
        collm_cf_model_user_vector(m1, 0, v);
        int zero = 1;
        for (int k = 0; k < 16; k++) zero &= v[k] == 0.0f;
        CHECK(zero); // padding row stays zero through training
    }

    // save / load round trip, training record included
    if (m1) {
        char path[512];
        snprintf(path, sizeof path, "%s/test_mf_roundtrip.gguf", test_tmp_dir());
        collm_mkdir_p(test_tmp_dir());
        CHECK_MSG(collm_cf_model_save(m1, path) == COLLM_OK, "%s", collm_last_error());
        collm_cf_model *back = collm_cf_model_load(path);
        CHECK_MSG(back != NULL, "%s", collm_last_error());
        if (back) {
            CHECK_STR(collm_cf_model_kind(back), "mf");
            CHECK(same_weights(m1, back));
            float s1, s2;
            CHECK(collm_cf_model_score(m1, 3, 7, &s1) == COLLM_OK && collm_cf_model_score(back, 3, 7, &s2) == COLLM_OK);
            CHECK(s1 == s2);
            collm_cf_model_free(back);
        }
        collm_gguf_file *f = collm_gguf_open(path);
        CHECK(f != NULL);
        if (f) {
            char *kind = collm_gguf_get_str_dup(f, "collm.cf.kind");
            CHECK_STR(kind, "mf");
            free(kind);
            uint32_t dim = 0;
            float lr = 0, best = 0;
            CHECK(collm_gguf_get_u32(f, "collm.cf.dim", &dim) == COLLM_OK && dim == 16);
            CHECK(collm_gguf_get_f32(f, "collm.cf.train.lr", &lr) == COLLM_OK && fabsf(lr - 0.03f) < 1e-9f);
            CHECK(collm_gguf_get_f32(f, "collm.cf.train.best_eval_auc", &best) == COLLM_OK &&
                  fabs(best - r1.best_eval_auc) < 1e-6);
            const collm_gguf_tensor_info *t = collm_gguf_find_tensor(f, "cf.user_embd");
            CHECK(t && t->n_dims == 2 && t->ne[0] == 16 && t->ne[1] == SYN_USERS && t->type == COLLM_GGML_TYPE_F32);
            collm_gguf_close(f);
        }
        // a GGUF without collm.cf.kind is refused with a clear message
        collm_gguf_writer *w = collm_gguf_writer_create();
        collm_gguf_writer_set_u32(w, "collm.cf.dim", 16);
        char bad[512];
        snprintf(bad, sizeof bad, "%s/test_mf_nokind.gguf", test_tmp_dir());
        CHECK(collm_gguf_writer_write(w, bad) == COLLM_OK);
        collm_gguf_writer_free(w);
        CHECK(collm_cf_model_load(bad) == NULL);
        CHECK(strstr(collm_last_error(), "collm.cf.kind") != NULL);
        CHECK(collm_cf_model_load("build/test-tmp/does-not-exist.gguf") == NULL);
    }

    // unknown ids: scoring a split with a user beyond the table names the row
    if (m1) {
        owned_split bad;
        make_split(&bad, 3, "synthetic/bad.tsv");
        for (int r = 0; r < 3; r++) bad.user[r] = 1, bad.item[r] = 1, bad.label[r] = r & 1;
        bad.user[2] = SYN_USERS; // one past the table
        float scores[3];
        CHECK(collm_cf_model_score_split(m1, &bad.split, scores, NULL) == COLLM_ERR_ARG);
        CHECK_MSG(strstr(collm_last_error(), "row 2 (line 4)") && strstr(collm_last_error(), "user id 41"), "%s",
                  collm_last_error());
        bad.user[2] = 1;
        bad.item[0] = -1;
        collm_metrics_report rep;
        CHECK(collm_cf_model_evaluate(m1, &bad.split, &rep, NULL) == COLLM_ERR_ARG);
        CHECK(strstr(collm_last_error(), "item id -1") != NULL);
        float v[16], s;
        CHECK(collm_cf_model_user_vector(m1, SYN_USERS, v) == COLLM_ERR_ARG);
        CHECK(collm_cf_model_item_vector(m1, -1, v) == COLLM_ERR_ARG);
        CHECK(collm_cf_model_score(m1, 1, SYN_ITEMS, &s) == COLLM_ERR_ARG);
        // training on a dataset whose ids exceed the model is refused too
        collm_cf_model *small = collm_cf_model_create("mf", 10, SYN_ITEMS, 8, 1);
        collm_cf_train_options o;
        syn_options(&o);
        CHECK(collm_cf_model_train(small, &syn.ds, &o, NULL, NULL, NULL, NULL) == COLLM_ERR_ARG);
        CHECK(strstr(collm_last_error(), "synthetic/train.tsv") != NULL);
        collm_cf_model_free(small);
        free_split(&bad);
    }
    CHECK(collm_cf_model_create("lightgcn-not-yet", 5, 5, 4, 1) == NULL);
    CHECK(strstr(collm_last_error(), "unknown model kind") != NULL);

    collm_cf_model_free(m1);
    collm_cf_model_free(m2);
    collm_cf_model_free(m3);
    collm_pool_free(pool2);
    free_split(&syn.train);
    free_split(&syn.valid);
}

// One full-batch step of PyTorch Adam with coupled L2, written out in double.
static void test_one_adam_step(void) {
    synthetic syn;
    make_synthetic(&syn);
    enum { D = 4 };
    const double lr = 0.01, wd = 0.1, b1 = 0.9, b2 = 0.999, eps = 1e-8;
    collm_cf_model *m = collm_cf_model_create("mf", SYN_USERS, SYN_ITEMS, D, 9);
    CHECK(m != NULL);
    if (!m) return;
    static double U[SYN_USERS * D], I[SYN_ITEMS * D], gU[SYN_USERS * D], gI[SYN_ITEMS * D];
    float v[D];
    for (int u = 0; u < SYN_USERS; u++) {
        collm_cf_model_user_vector(m, u, v);
        for (int k = 0; k < D; k++) U[u * D + k] = v[k];
    }
    for (int i = 0; i < SYN_ITEMS; i++) {
        collm_cf_model_item_vector(m, i, v);
        for (int k = 0; k < D; k++) I[i * D + k] = v[k];
    }
    // analytic gradient of the mean BCE in double
    memset(gU, 0, sizeof gU);
    memset(gI, 0, sizeof gI);
    const collm_rec_split *t = &syn.train.split;
    for (int64_t r = 0; r < t->n; r++) {
        int u = t->user[r], i = t->item[r];
        double s = 0;
        for (int k = 0; k < D; k++) s += U[u * D + k] * I[i * D + k];
        double ds = (1.0 / (1.0 + exp(-s)) - t->label[r]) / (double)t->n;
        for (int k = 0; k < D; k++) {
            gU[u * D + k] += ds * I[i * D + k];
            gI[i * D + k] += ds * U[u * D + k];
        }
    }
    collm_cf_train_options o;
    collm_cf_train_options_default(&o);
    o.lr = lr, o.weight_decay = wd, o.beta1 = b1, o.beta2 = b2, o.eps = eps;
    o.batch = SYN_TRAIN; // one step
    o.max_epochs = 1;
    o.eval_split = "";
    CHECK(collm_cf_model_train(m, &syn.ds, &o, NULL, NULL, NULL, NULL) == COLLM_OK);
    double max_err = 0;
    for (int table = 0; table < 2; table++) {
        int rows = table ? SYN_ITEMS : SYN_USERS;
        double *P = table ? I : U, *G = table ? gI : gU;
        for (int row = 0; row < rows; row++) {
            if (table) collm_cf_model_item_vector(m, row, v);
            else collm_cf_model_user_vector(m, row, v);
            for (int k = 0; k < D; k++) {
                double p = P[row * D + k], expect = 0.0;
                if (row != 0) { // padding row stays 0
                    double g = G[row * D + k] + wd * p;
                    double mm = (1 - b1) * g, vv = (1 - b2) * g * g;
                    expect = p - lr * (mm / (1 - b1)) / (sqrt(vv / (1 - b2)) + eps);
                }
                double err = fabs(v[k] - expect);
                if (err > max_err) max_err = err;
            }
        }
    }
    CHECK_MSG(max_err < 2e-6, "max |param - reference| after one Adam step = %g", max_err);
    collm_cf_model_free(m);
    free_split(&syn.train);
    free_split(&syn.valid);
}

// A CF file whose size keys lie (n_users 2^31 - 1, dim 65536: 512 TB of
// tables) while its tensors are tiny fails on the tensor shapes, before any
// table is allocated (fuzz_gguf found the 8 GB allocation), for each kind.
static void test_lying_size_keys(void) {
    static const char *const kinds[] = {"mf", "lightgcn"};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        char good[600], bad[600];
        snprintf(good, sizeof good, "%s/lying_%s_ok.gguf", test_tmp_dir(), kinds[k]);
        snprintf(bad, sizeof bad, "%s/lying_%s.gguf", test_tmp_dir(), kinds[k]);
        collm_cf_model *m = collm_cf_model_create(kinds[k], 3, 4, 2, 1);
        CHECK(m && collm_cf_model_save(m, good) == COLLM_OK);
        collm_cf_model_free(m);
        collm_gguf_file *f = collm_gguf_open(good);
        collm_gguf_writer *w = collm_gguf_writer_create();
        int rc = f && w ? COLLM_OK : COLLM_ERR;
        for (int64_t i = 0; !rc && f && i < collm_gguf_n_kv(f); i++) {
            const char *key = collm_gguf_key(f, i);
            if (!strcmp(key, "collm.cf.n_users")) rc = collm_gguf_writer_set_u32(w, key, 2147483647u);
            else if (!strcmp(key, "collm.cf.dim")) rc = collm_gguf_writer_set_u32(w, key, 65536);
            else rc = collm_gguf_writer_copy_kv(w, f, i);
        }
        for (int64_t i = 0; !rc && i < collm_gguf_n_tensors(f); i++) {
            const collm_gguf_tensor_info *t = collm_gguf_tensor(f, i);
            rc = collm_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data);
        }
        CHECK(rc == COLLM_OK && collm_gguf_writer_write(w, bad) == COLLM_OK);
        collm_gguf_writer_free(w);
        collm_gguf_close(f);
        m = collm_cf_model_load(bad);
        CHECK_MSG(m == NULL && strstr(collm_last_error(), "shape") && !strstr(collm_last_error(), "out of memory"),
                  "%s: %s", kinds[k], collm_last_error());
        collm_cf_model_free(m);
    }
}

int main(void) {
    test_lying_size_keys();
    test_gradient_vs_finite_differences();
    test_one_adam_step();
    test_learns_and_is_deterministic();
    return test_report();
}
