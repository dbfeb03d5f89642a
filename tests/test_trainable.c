// Trainable pieces outside the transformer: the FECE MLP, LoRA adapters, the
// optimizer and the learning-rate schedule. Gradients are checked against
// central finite differences in the loss L = Σ r ⊙ y (r fixed, random).
#include "collm/error.h"
#include "recommender/fece.h"
#include "llm/lora_internal.h"
#include "core/ops.h"
#include "core/optim.h"
#include "core/rng.h"
#include "test.h"

static void fill(float *x, int64_t n, collm_rng *rng, double scale) {
    for (int64_t i = 0; i < n; i++) x[i] = (float)(collm_rng_normal(rng) * scale);
}

static double weighted_sum(const float *y, const float *r, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)y[i] * r[i];
    return s;
}

// Relative error of an analytic gradient vs a numeric one.
static int grad_close(double analytic, double numeric) {
    double diff = fabs(analytic - numeric);
    return diff <= 2e-3 + 2e-2 * fabs(numeric);
}

static double fece_loss(const collm_fece_mlp *m, const float *x, int B, const float *r) {
    float h[4 * 40], y[4 * 7];
    collm_fece_forward(m, x, B, h, y);
    return weighted_sum(y, r, (int64_t)B * m->d_out);
}

static void test_fece_gradients(void) {
    collm_rng rng;
    collm_rng_seed(&rng, 7);
    collm_fece_mlp m;
    CHECK(collm_fece_init(&m, 4, 10, 7, &rng) == COLLM_OK);
    CHECK(collm_fece_n_params(&m) == 4 * 40 + 40 + 40 * 7 + 7);
    // init bounds: U(±1/sqrt(fan_in))
    int in_bounds = 1;
    for (int i = 0; i < 160; i++) in_bounds &= fabsf(m.w1[i]) <= 0.5f;
    for (int i = 0; i < 280; i++) in_bounds &= fabsf(m.w2[i]) <= 1.0f / sqrtf(40.0f) + 1e-6f;
    CHECK(in_bounds);
    int B = 4;
    float x[16], r[28], h[160], y[28], dx[16] = {0}, scratch[160];
    fill(x, 16, &rng, 1.0);
    fill(r, 28, &rng, 1.0);
    collm_fece_forward(&m, x, B, h, y);
    collm_fece_backward(&m, x, B, h, r, dx, scratch);
    float *params[4] = {m.w1, m.b1, m.w2, m.b2};
    float *grads[4] = {m.dw1, m.db1, m.dw2, m.db2};
    int64_t sizes[4] = {160, 40, 280, 7};
    // small step: a hidden unit close to the ReLU kink must not be crossed
    const float h_step = 1e-3f;
    int bad = 0, checked = 0;
    for (int k = 0; k < 4; k++)
        for (int64_t i = 0; i < sizes[k]; i += 3) {
            float keep = params[k][i];
            params[k][i] = keep + h_step;
            double lp = fece_loss(&m, x, B, r);
            params[k][i] = keep - h_step;
            double lm = fece_loss(&m, x, B, r);
            params[k][i] = keep;
            if (!grad_close(grads[k][i], (lp - lm) / (2 * h_step))) {
                bad++;
                fprintf(stderr, "fece param %d[%ld]: analytic %g numeric %g\n", k, (long)i, grads[k][i],
                        (lp - lm) / (2 * h_step));
            }
            checked++;
        }
    for (int i = 0; i < 16; i++) {
        float keep = x[i];
        x[i] = keep + h_step;
        double lp = fece_loss(&m, x, B, r);
        x[i] = keep - h_step;
        double lm = fece_loss(&m, x, B, r);
        x[i] = keep;
        bad += !grad_close(dx[i], (lp - lm) / (2 * h_step));
        checked++;
    }
    CHECK_MSG(bad == 0, "%d of %d FECE gradients off", bad, checked);
    collm_fece_free(&m);
}

// y = s · drop(x) A^T B^T (the adapter part only), dropout mask fixed by the seed.
static double lora_loss(const collm_lora_pair *p, float scale, float dropout, const float *x, int T, const float *r,
                        uint64_t seed) {
    float x_drop[3 * 6], xa[3 * 2], y[3 * 5] = {0};
    collm_rng rng;
    collm_rng_seed(&rng, seed);
    collm_lora_forward(p, scale, dropout, x, T, x_drop, xa, y, p->out, dropout > 0 ? &rng : NULL);
    return weighted_sum(y, r, (int64_t)T * p->out);
}

static void test_lora_gradients(float dropout) {
    collm_rng rng;
    collm_rng_seed(&rng, 11);
    int dims_in[COLLM_LORA_N_TARGETS] = {6, 6, 6, 6, 6, 6, 6}, dims_out[COLLM_LORA_N_TARGETS] = {5, 5, 5, 5, 5, 5, 5};
    unsigned mask;
    CHECK(collm_lora_parse_targets("q,v", &mask) == COLLM_OK && mask == ((1u << COLLM_LORA_Q) | (1u << COLLM_LORA_V)));
    CHECK(collm_lora_parse_targets("q,x", &mask) != COLLM_OK);
    collm_lora_adapter lora;
    CHECK(collm_lora_init(&lora, 2, dims_in, dims_out, 2, 4.0f, dropout, (1u << COLLM_LORA_Q) | (1u << COLLM_LORA_V), &rng) == COLLM_OK);
    CHECK(collm_lora_get(&lora, 1, COLLM_LORA_K) == NULL);
    collm_lora_pair *p = collm_lora_get(&lora, 1, COLLM_LORA_V);
    CHECK(p != NULL);
    CHECK(collm_lora_n_params(&lora) == 2 * 2 * 2 * (6 + 5));
    // B starts at zero: the adapter is a no-op until trained; give it values to test gradients
    fill(p->b, 10, &rng, 0.5);
    float scale = collm_lora_scale(&lora);
    CHECK_NEAR(scale, 2.0, 0);
    int T = 3;
    float x[18], r[15], x_drop[18], xa[6], y[15] = {0}, dx[18] = {0}, dxa[6];
    fill(x, 18, &rng, 1.0);
    fill(r, 15, &rng, 1.0);
    collm_rng drop_rng;
    collm_rng_seed(&drop_rng, 99);
    collm_lora_forward(p, scale, dropout, x, T, x_drop, xa, y, p->out, dropout > 0 ? &drop_rng : NULL);
    const float *xd = dropout > 0 ? x_drop : x;
    collm_lora_backward(p, scale, dropout, xd, dropout > 0 ? x_drop : NULL, T, xa, r, p->out, dx, dxa);
    const float h_step = 1e-2f;
    int bad = 0;
    float *params[2] = {p->a, p->b}, *grads[2] = {p->da, p->db};
    int sizes[2] = {12, 10};
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < sizes[k]; i++) {
            float keep = params[k][i];
            params[k][i] = keep + h_step;
            double lp = lora_loss(p, scale, dropout, x, T, r, 99);
            params[k][i] = keep - h_step;
            double lm = lora_loss(p, scale, dropout, x, T, r, 99);
            params[k][i] = keep;
            bad += !grad_close(grads[k][i], (lp - lm) / (2 * h_step));
        }
    for (int i = 0; i < 18; i++) {
        float keep = x[i];
        x[i] = keep + h_step;
        double lp = lora_loss(p, scale, dropout, x, T, r, 99);
        x[i] = keep - h_step;
        double lm = lora_loss(p, scale, dropout, x, T, r, 99);
        x[i] = keep;
        bad += !grad_close(dx[i], (lp - lm) / (2 * h_step));
    }
    CHECK_MSG(bad == 0, "%d LoRA gradients off (dropout %g)", bad, dropout);
    if (dropout == 0) {
        // merging: x·(W + sBA)^T equals x·W^T + adapter
        float w[30], y_base[15], y_merged[15];
        fill(w, 30, &rng, 1.0);
        collm_ops_matmul_forward(y_base, x, w, NULL, T, 6, 5, NULL);
        memset(y, 0, sizeof y);
        collm_lora_forward(p, scale, 0, x, T, NULL, xa, y, p->out, NULL);
        collm_lora_merge(p, scale, w);
        collm_ops_matmul_forward(y_merged, x, w, NULL, T, 6, 5, NULL);
        double worst = 0;
        for (int i = 0; i < 15; i++) worst = fmax(worst, fabs(y_base[i] + y[i] - y_merged[i]));
        CHECK_NEAR(worst, 0, 1e-4);
    }
    collm_lora_free(&lora);
}

static void test_optimizer(void) {
    collm_optim_state opt;
    collm_optim_init(&opt, 0.9f, 0.999f, 1e-8f, 0.1f);
    float w[2] = {1.0f, -2.0f}, b[1] = {0.5f};
    CHECK(collm_optim_add(&opt, "w", w, NULL, 2, 1) == 0);
    CHECK(collm_optim_add(&opt, "b", b, NULL, 1, 0) == 1);
    opt.params[0].grad[0] = 3.0f;
    opt.params[0].grad[1] = -4.0f;
    opt.params[1].grad[0] = 0.25f;
    CHECK_NEAR(collm_optim_grad_norm(&opt), sqrt(9 + 16 + 0.0625), 1e-6);
    collm_optim_step(&opt, 0.01f);
    // step 1: m̂ = g, v̂ = g², update = lr · g/|g| = ±lr; decoupled decay lr·wd·p on w only
    CHECK_NEAR(w[0], 1.0 - 0.01 * 0.1 * 1.0 - 0.01, 1e-6);
    CHECK_NEAR(w[1], -2.0 + 0.01 * 0.1 * 2.0 + 0.01, 1e-6);
    CHECK_NEAR(b[0], 0.5 - 0.01, 1e-6);
    // clipping to norm 1
    opt.params[0].grad[0] = 3.0f;
    opt.params[0].grad[1] = 4.0f;
    opt.params[1].grad[0] = 0.0f;
    double before = collm_optim_clip(&opt, 1.0);
    CHECK_NEAR(before, 5.0, 1e-6);
    CHECK_NEAR(collm_optim_grad_norm(&opt), 1.0, 1e-5);
    opt.params[1].frozen = 1;
    CHECK(collm_optim_n_trainable(&opt) == 2);
    collm_optim_free(&opt);
}

// A large tensor split over pool threads: the same bits as without a pool.
static void test_optimizer_pool(void) {
    collm_pool *pool = collm_pool_create(3);
    int64_t n = 100003;
    float *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float));
    collm_rng rng;
    collm_rng_seed(&rng, 3);
    for (int64_t i = 0; i < n; i++) a[i] = b[i] = (float)collm_rng_normal(&rng);
    collm_optim_state x, y;
    collm_optim_init(&x, 0.9f, 0.999f, 1e-8f, 0.01f);
    collm_optim_init(&y, 0.9f, 0.999f, 1e-8f, 0.01f);
    y.pool = pool;
    collm_optim_add(&x, "a", a, NULL, n, 1);
    collm_optim_add(&y, "b", b, NULL, n, 1);
    for (int step = 0; step < 3; step++) {
        for (int64_t i = 0; i < n; i++) x.params[0].grad[i] = y.params[0].grad[i] = (float)collm_rng_normal(&rng);
        double nx = collm_optim_clip(&x, 100.0), ny = collm_optim_clip(&y, 100.0);
        CHECK(nx == ny);
        collm_optim_step(&x, 1e-3f);
        collm_optim_step(&y, 1e-3f);
    }
    CHECK(memcmp(a, b, n * sizeof(float)) == 0);
    collm_optim_free(&x);
    collm_optim_free(&y);
    free(a);
    free(b);
    collm_pool_free(pool);
}

// The fused step (clip + AdamW + zeroing in one pass) gives the same bits
// as the three separate passes, clipping or not, with or without a pool, and
// leaves the gradients zero; frozen tensors are untouched but zeroed.
static void test_optimizer_fused(void) {
    collm_pool *pool = collm_pool_create(3);
    int64_t n = 40001; // three blocks, the last one partial
    collm_rng rng;
    collm_rng_seed(&rng, 11);
    for (int with_pool = 0; with_pool < 2; with_pool++) {
        float *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float)), c[3] = {1, 2, 3}, d[3] = {1, 2, 3};
        for (int64_t i = 0; i < n; i++) a[i] = b[i] = (float)collm_rng_normal(&rng);
        collm_optim_state x, y;
        collm_optim_init(&x, 0.9f, 0.999f, 1e-8f, 0.01f);
        collm_optim_init(&y, 0.9f, 0.999f, 1e-8f, 0.01f);
        y.pool = with_pool ? pool : NULL;
        collm_optim_add(&x, "a", a, NULL, n, 1);
        collm_optim_add(&y, "a", b, NULL, n, 1);
        collm_optim_add(&x, "c", c, NULL, 3, 0);
        collm_optim_add(&y, "c", d, NULL, 3, 0);
        x.params[1].frozen = y.params[1].frozen = 1;
        int same_norm = 1, zeroed = 1;
        for (int step = 0; step < 4; step++) {
            double max_norm = step % 2 ? 1.0 : 1e9; // clips on odd steps only
            collm_optim_zero_grad(&x); // the separate passes: zero first, as the training loop did
            for (int64_t i = 0; i < n; i++) x.params[0].grad[i] = y.params[0].grad[i] = (float)collm_rng_normal(&rng);
            for (int i = 0; i < 3; i++) x.params[1].grad[i] = y.params[1].grad[i] = 5.0f;
            double nx = collm_optim_clip(&x, max_norm);
            collm_optim_step(&x, 1e-3f);
            double ny = collm_optim_step_fused(&y, 1e-3f, max_norm);
            same_norm &= nx == ny;
            for (int64_t i = 0; i < n; i++) zeroed &= y.params[0].grad[i] == 0.0f;
            for (int i = 0; i < 3; i++) zeroed &= y.params[1].grad[i] == 0.0f;
        }
        CHECK_MSG(same_norm && memcmp(a, b, n * sizeof(float)) == 0, "fused step, pool %d: same bits", with_pool);
        CHECK(memcmp(x.params[0].m, y.params[0].m, n * sizeof(float)) == 0 &&
              memcmp(x.params[0].v, y.params[0].v, n * sizeof(float)) == 0);
        CHECK(zeroed && d[0] == 1 && d[2] == 3 && x.step == y.step);
        collm_optim_free(&x);
        collm_optim_free(&y);
        free(a);
        free(b);
    }
    collm_pool_free(pool);
}

// Several tensors in one pool job (optim.c numbers their blocks across
// tensors): whole, partial and sub-block tensors and a frozen one between
// them, on 3 threads. Checked against the closed form of a first AdamW step
// (m̂ = g, v̂ = g²: p -= lr·wd·p + lr·g/|g|), a norm summed here in double,
// and the fused step's zeroing, so a block sent to the wrong tensor, or
// twice, or not at all, shows.
static void test_optimizer_many_tensors(void) {
    collm_pool *pool = collm_pool_create(3);
    const int64_t sizes[5] = {40001, 5, 16384, 3, 70000}; // blocks of 16,384: 3, frozen, 1, 1, 5
    const int frozen = 1, decay[5] = {1, 1, 0, 0, 1};
    const float lr = 1e-3f, wd = 0.1f;
    collm_rng rng;
    collm_rng_seed(&rng, 5);
    for (int fused = 0; fused < 2; fused++) {
        collm_optim_state opt;
        collm_optim_init(&opt, 0.9f, 0.999f, 1e-8f, wd);
        opt.pool = pool;
        float *w[5], *w0[5];
        double sumsq = 0;
        for (int t = 0; t < 5; t++) {
            w[t] = malloc((size_t)sizes[t] * sizeof(float));
            w0[t] = malloc((size_t)sizes[t] * sizeof(float));
            for (int64_t i = 0; i < sizes[t]; i++) w[t][i] = w0[t][i] = (float)collm_rng_normal(&rng);
            CHECK(collm_optim_add(&opt, "t", w[t], NULL, sizes[t], decay[t]) == t);
            for (int64_t i = 0; i < sizes[t]; i++) { // |g| in [0.5, 1.5): eps does not matter
                float g = (float)(0.5 + collm_rng_uniform(&rng));
                opt.params[t].grad[i] = collm_rng_uniform(&rng) < 0.5 ? -g : g;
                if (t != frozen) sumsq += (double)opt.params[t].grad[i] * opt.params[t].grad[i];
            }
        }
        opt.params[frozen].frozen = 1;
        double norm = fused ? collm_optim_step_fused(&opt, lr, 0) : collm_optim_grad_norm(&opt);
        if (!fused) collm_optim_step(&opt, lr);
        CHECK_NEAR(norm, sqrt(sumsq), 1e-9 * sqrt(sumsq));
        int64_t wrong = 0, not_zeroed = 0;
        for (int t = 0; t < 5; t++)
            for (int64_t i = 0; i < sizes[t]; i++) {
                double want = w0[t][i];
                if (t != frozen) want -= lr * (decay[t] ? wd : 0.0f) * w0[t][i] + lr * (opt.params[t].m[i] > 0 ? 1 : -1);
                wrong += fabs(w[t][i] - want) > 1e-6;
            }
        CHECK_MSG(wrong == 0, "%s: %lld elements off the first AdamW step", fused ? "fused" : "separate", (long long)wrong);
        if (fused) // every gradient zero afterwards, the frozen tensor's too
            for (int t = 0; t < 5; t++)
                for (int64_t i = 0; i < sizes[t]; i++) not_zeroed += opt.params[t].grad[i] != 0.0f;
        CHECK_MSG(not_zeroed == 0, "%lld gradients left", (long long)not_zeroed);
        collm_optim_free(&opt);
        for (int t = 0; t < 5; t++) {
            free(w[t]);
            free(w0[t]);
        }
    }
    collm_pool_free(pool);
}

static void test_schedule(void) {
    collm_optim_schedule s = {.init_lr = 1e-3, .warmup_lr = 1e-5, .min_lr = 8e-5, .warmup_steps = 200,
                        .total_steps = 1000, .steps_per_epoch = 50, .restart_warmup = 0};
    CHECK_NEAR(collm_optim_schedule_lr(&s, 0), 1e-5, 1e-12);
    CHECK_NEAR(collm_optim_schedule_lr(&s, 100), 1e-5 + (1e-3 - 1e-5) * 0.5, 1e-12);
    // cosine part: g = 500 of 1000 → midpoint
    CHECK_NEAR(collm_optim_schedule_lr(&s, 500), 8e-5 + (1e-3 - 8e-5) * 0.5, 1e-12);
    CHECK_NEAR(collm_optim_schedule_lr(&s, 1000), 8e-5, 1e-12);
    // the reference code's restarting warmup: step 120 is step 20 of its epoch
    s.restart_warmup = 1;
    CHECK_NEAR(collm_optim_schedule_lr(&s, 120), 1e-5 + (1e-3 - 1e-5) * 20 / 200, 1e-12);
}

int main(void) {
    test_fece_gradients();
    test_lora_gradients(0.0f);
    test_lora_gradients(0.3f);
    test_optimizer();
    test_optimizer_pool();
    test_optimizer_fused();
    test_optimizer_many_tensors();
    test_schedule();
    return test_report();
}
