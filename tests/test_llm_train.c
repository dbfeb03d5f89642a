// Training forward/backward of the transformer:
//  - the training forward's scores equal the inference engine's "Yes" logits
//    (one block implementation, llm/block.c, but different attention paths:
//    per-prompt packed attention here, KV cache there; the inference one is
//    checked against llama.cpp);
//  - every gradient (all weights under full fine-tuning, LoRA A/B, slot rows)
//    against central finite differences, for llama (NORM RoPE, GQA) and qwen2
//    (NEOX RoPE, biases, tied head);
//  - with frozen weights (stage 2) the backward from each prompt's first slot
//    on gives the slot gradients of the full backward;
//  - prompts that start alike share their leading rows: same scores and
//    gradients as without sharing;
//  - the forward-only scoring pass gives the forward's scores bit for bit;
//  - the last layer's values folded behind the attention (fold_v) give the
//    plain projection's scores and gradients;
//  - a tiny model whose loss must fall when trained.
#include "collm/error.h"
#include "llm/lora_internal.h"
#include "llm/llm_train.h"
#include "collm/model.h"
#include "core/ops.h"
#include "core/optim.h"
#include "core/rng.h"
#include "llm/model_internal.h"
#include "test.h"

static collm_llm_hparams tiny_hparams(collm_llm_arch arch) {
    collm_llm_hparams hp;
    memset(&hp, 0, sizeof hp);
    hp.arch = arch;
    hp.n_vocab = 37;
    hp.n_ctx_train = 64;
    hp.n_embd = 16;
    hp.n_layer = 2;
    hp.n_head = 4;
    hp.n_head_kv = 2;
    hp.n_ff = 24;
    hp.rope_base = 10000.0f;
    hp.rms_eps = 1e-5f;
    hp.tied_output = arch == COLLM_LLM_ARCH_QWEN2;
    return hp;
}

// The weights of a random model are N(0, 0.02²): too small to make finite
// differences meaningful. Scale them up so every path carries signal.
static void scale_up_weights(collm_llm_model *m, collm_rng *rng) {
    for (int64_t i = 0; i < m->n_params; i++) m->params[i] += (float)(0.3 * collm_rng_normal(rng));
}

enum { N_SEQ = 3 };
static const int32_t seq_len[N_SEQ] = {5, 7, 4};
static const int32_t tokens[16] = {1, 5, 9, 0, 3, 2, 2, 30, 11, 0, 6, 7, 4, 8, 36, 12};
// slots: row 3 of prompt 0 and rows 3 and 5 of prompt 1 (packed rows 3, 8, 10)
static const int32_t slot_rows[3] = {3, 8, 10};

static double batch_loss(collm_llm_trainer *tr, const float *slot_values, const float *weights) {
    collm_llm_slot_rows slots = {3, slot_rows, slot_values};
    float scores[N_SEQ];
    if (collm_llm_trainer_forward(tr, tokens, seq_len, N_SEQ, &slots, 7, scores, NULL) != COLLM_OK) return NAN;
    double loss = 0;
    for (int s = 0; s < N_SEQ; s++) loss += weights[s] * scores[s];
    return loss;
}

static int close_enough(double analytic, double numeric) {
    return fabs(analytic - numeric) <= 3e-3 + 3e-2 * fabs(numeric);
}

// Checks up to `max_checks` entries of (param, grad) spaced through n.
static int check_tensor(collm_llm_trainer *tr, const char *name, float *param, const float *grad, int64_t n,
                        const float *slot_values, const float *weights, int max_checks) {
    int bad = 0;
    int64_t stride = n / max_checks > 1 ? n / max_checks : 1;
    for (int64_t i = 0; i < n; i += stride) {
        float keep = param[i];
        const float h = 1e-2f;
        param[i] = keep + h;
        double lp = batch_loss(tr, slot_values, weights);
        param[i] = keep - h;
        double lm = batch_loss(tr, slot_values, weights);
        param[i] = keep;
        double numeric = (lp - lm) / (2 * h);
        if (!close_enough(grad[i], numeric)) {
            if (bad < 3) fprintf(stderr, "  %s[%ld]: analytic %.6g numeric %.6g\n", name, (long)i, grad[i], numeric);
            bad++;
        }
    }
    return bad;
}

static void test_full_gradients(collm_llm_arch arch) {
    collm_llm_hparams hp = tiny_hparams(arch);
    collm_llm_model *m = collm_llm_model_init_random(&hp, 3);
    CHECK(m != NULL);
    if (!m) return;
    collm_rng rng;
    collm_rng_seed(&rng, 5);
    scale_up_weights(m, &rng);
    collm_llm_trainer *tr = collm_llm_trainer_create(m, NULL, 1, 32, 8, NULL);
    CHECK(tr != NULL);
    float slot_values[3 * 16], dslots[3 * 16] = {0}, weights[N_SEQ] = {0.7f, -1.3f, 0.4f};
    for (int i = 0; i < 48; i++) slot_values[i] = (float)collm_rng_normal(&rng);

    // forward scores equal the inference engine's logits of token 7 at the last rows
    collm_llm_slot_rows slots = {3, slot_rows, slot_values};
    float scores[N_SEQ];
    CHECK(collm_llm_trainer_forward(tr, tokens, seq_len, N_SEQ, &slots, 7, scores, NULL) == COLLM_OK);
    collm_llm_context *ctx = collm_llm_context_create(m, 16, 16, NULL);
    CHECK(ctx != NULL);
    int64_t r0 = 0;
    double worst = 0;
    for (int s = 0; s < N_SEQ && ctx; s++) {
        int32_t rows[3], n = 0;
        float values[3 * 16];
        for (int i = 0; i < 3; i++)
            if (slot_rows[i] >= r0 && slot_rows[i] < r0 + seq_len[s]) {
                rows[n] = slot_rows[i] - (int32_t)r0;
                memcpy(values + n * 16, slot_values + i * 16, sizeof(float) * 16);
                n++;
            }
        collm_llm_slot_rows own = {n, rows, values};
        int32_t last = seq_len[s] - 1, yes = 7;
        float logit;
        collm_llm_kv_truncate(ctx, 0);
        CHECK(collm_llm_forward(ctx, tokens + r0, seq_len[s], &own, &last, 1, &yes, 1, &logit) == COLLM_OK);
        worst = fmax(worst, fabs(logit - scores[s]));
        r0 += seq_len[s];
    }
    CHECK_MSG(worst < 1e-4, "training forward vs inference: max |diff| %g", worst);
    collm_llm_context_free(ctx);

    CHECK(collm_llm_trainer_backward(tr, weights, dslots) == COLLM_OK);
    // copy the analytic gradient: finite differences rerun forward, not backward
    float *grad = malloc((size_t)m->n_params * sizeof(float));
    memcpy(grad, collm_llm_trainer_model_grad(tr), (size_t)m->n_params * sizeof(float));
    int bad = 0;
    collm_llm_tensor_desc desc[64];
    int n_t = collm_llm_model_tensor_list(m, desc);
    for (int t = 0; t < n_t; t++) {
        float *p = *desc[t].data;
        if (!p || (desc[t].optional && p == m->token_embd && strcmp(desc[t].name, "output.weight") == 0)) continue;
        int64_t n = desc[t].ne[0] * (desc[t].n_dims > 1 ? desc[t].ne[1] : 1);
        bad += check_tensor(tr, desc[t].name, p, grad + (p - m->params), n, slot_values, weights, 25);
    }
    // slot rows
    float *dslot_copy = dslots;
    bad += check_tensor(tr, "slots", slot_values, dslot_copy, 48, slot_values, weights, 48);
    CHECK_MSG(bad == 0, "%s: %d gradient entries off", collm_llm_arch_name(arch), bad);
    free(grad);
    collm_llm_trainer_free(tr);
    collm_llm_model_free(m);
}

// targets: a mask of adapted projections (bit t = collm_lora_target t); without
// v the last layer folds its values (fold_v) with adapters beside it.
static void test_lora_gradients(unsigned targets) {
    collm_llm_hparams hp = tiny_hparams(COLLM_LLM_ARCH_LLAMA);
    collm_llm_model *m = collm_llm_model_init_random(&hp, 4);
    collm_rng rng;
    collm_rng_seed(&rng, 6);
    scale_up_weights(m, &rng);
    int q = hp.n_head * 4, kv = hp.n_head_kv * 4; // head_dim = 16 / 4
    int dims_in[COLLM_LORA_N_TARGETS] = {16, 16, 16, q, 16, 16, hp.n_ff};
    int dims_out[COLLM_LORA_N_TARGETS] = {q, kv, kv, 16, hp.n_ff, hp.n_ff, 16};
    collm_lora_adapter lora;
    CHECK(collm_lora_init(&lora, hp.n_layer, dims_in, dims_out, 2, 4.0f, 0.0f, targets, &rng) == COLLM_OK);
    for (int i = 0; i < hp.n_layer * COLLM_LORA_N_TARGETS; i++) {
        collm_lora_pair *p = &lora.pairs[i];
        for (int j = 0; p->b && j < p->out * p->rank; j++) p->b[j] = (float)(0.3 * collm_rng_normal(&rng));
    }
    collm_llm_trainer *tr = collm_llm_trainer_create(m, &lora, 0, 32, 8, NULL);
    CHECK(tr != NULL && collm_llm_trainer_model_grad(tr) == NULL);
    float slot_values[48], dslots[48] = {0}, weights[N_SEQ] = {1.1f, 0.5f, -0.8f};
    for (int i = 0; i < 48; i++) slot_values[i] = (float)collm_rng_normal(&rng);
    CHECK(!isnan(batch_loss(tr, slot_values, weights)));
    CHECK(collm_llm_trainer_backward(tr, weights, dslots) == COLLM_OK);
    int bad = 0;
    for (int i = 0; i < hp.n_layer * COLLM_LORA_N_TARGETS; i++) {
        collm_lora_pair *p = &lora.pairs[i];
        if (!p->a) continue; // not adapted
        int64_t na = (int64_t)p->rank * p->in, nb = (int64_t)p->out * p->rank;
        float *da = malloc(na * sizeof(float)), *db = malloc(nb * sizeof(float));
        memcpy(da, p->da, na * sizeof(float));
        memcpy(db, p->db, nb * sizeof(float));
        bad += check_tensor(tr, "lora.a", p->a, da, na, slot_values, weights, 8);
        bad += check_tensor(tr, "lora.b", p->b, db, nb, slot_values, weights, 8);
        free(da);
        free(db);
    }
    bad += check_tensor(tr, "slots", slot_values, dslots, 48, slot_values, weights, 16);
    CHECK_MSG(bad == 0, "LoRA (targets 0x%x): %d gradient entries off", targets, bad);
    collm_llm_trainer_free(tr);
    collm_lora_free(&lora);
    collm_llm_model_free(m);
}

// Full fine-tuning of a tiny model on a separable task: the label is whether
// the prompt contains token 5. The BCE loss must fall well below ln 2.
static void test_loss_falls(void) {
    collm_llm_hparams hp = tiny_hparams(COLLM_LLM_ARCH_LLAMA);
    collm_llm_model *m = collm_llm_model_init_random(&hp, 9);
    collm_llm_trainer *tr = collm_llm_trainer_create(m, NULL, 1, 64, 8, NULL);
    collm_optim_state opt;
    collm_optim_init(&opt, 0.9f, 0.999f, 1e-8f, 0.0f);
    collm_optim_add(&opt, "model", m->params, collm_llm_trainer_model_grad(tr), m->n_params, 0);
    collm_rng rng;
    collm_rng_seed(&rng, 1);
    double first = 0, last = 0;
    for (int step = 0; step < 150; step++) {
        int32_t toks[64], lens[8];
        float labels[8], scores[8], dscores[8];
        for (int s = 0; s < 8; s++) {
            lens[s] = 8;
            labels[s] = (float)(s % 2);
            for (int t = 0; t < 8; t++) {
                int32_t id = 10 + (int32_t)collm_rng_below(&rng, 20);
                toks[s * 8 + t] = id;
            }
            if (labels[s] > 0) toks[s * 8 + collm_rng_below(&rng, 8)] = 5;
        }
        collm_llm_trainer_forward(tr, toks, lens, 8, NULL, 3, scores, NULL);
        double loss = collm_ops_bce_with_logits(dscores, scores, labels, 8);
        collm_optim_zero_grad(&opt);
        collm_llm_trainer_backward(tr, dscores, NULL);
        collm_optim_step(&opt, 3e-3f);
        if (step < 10) first += loss / 10;
        if (step >= 140) last += loss / 10;
    }
    CHECK_MSG(first > 0.6 && last < 0.2, "loss %.3f -> %.3f", first, last);
    collm_optim_free(&opt);
    collm_llm_trainer_free(tr);
    collm_llm_model_free(m);
}

// The row-parallel kernels and per-prompt attention tasks give the same
// scores and gradients with a pool as without (up to summation order in the
// RMSNorm weight gradients), and the same bits on a rerun with the pool.
static void test_threads(void) {
    collm_llm_hparams hp = tiny_hparams(COLLM_LLM_ARCH_LLAMA);
    collm_llm_model *m = collm_llm_model_init_random(&hp, 3);
    collm_rng rng;
    collm_rng_seed(&rng, 5);
    scale_up_weights(m, &rng);
    collm_pool *pool = collm_pool_create(3);
    collm_llm_trainer *serial = collm_llm_trainer_create(m, NULL, 1, 32, 8, NULL);
    collm_llm_trainer *parallel = collm_llm_trainer_create(m, NULL, 1, 32, 8, pool);
    float slot_values[48], weights[N_SEQ] = {0.7f, -1.3f, 0.4f}, s1[N_SEQ], s2[N_SEQ], s3[N_SEQ];
    for (int i = 0; i < 48; i++) slot_values[i] = (float)collm_rng_normal(&rng);
    collm_llm_slot_rows slots = {3, slot_rows, slot_values};
    float *g_serial = malloc((size_t)m->n_params * sizeof(float));
    CHECK(collm_llm_trainer_forward(serial, tokens, seq_len, N_SEQ, &slots, 7, s1, NULL) == COLLM_OK);
    CHECK(collm_llm_trainer_backward(serial, weights, NULL) == COLLM_OK);
    memcpy(g_serial, collm_llm_trainer_model_grad(serial), (size_t)m->n_params * sizeof(float));
    CHECK(collm_llm_trainer_forward(parallel, tokens, seq_len, N_SEQ, &slots, 7, s2, NULL) == COLLM_OK);
    CHECK(collm_llm_trainer_backward(parallel, weights, NULL) == COLLM_OK);
    float *g_par = collm_llm_trainer_model_grad(parallel);
    double worst = 0;
    for (int i = 0; i < N_SEQ; i++) worst = fmax(worst, fabs(s1[i] - s2[i]));
    for (int64_t i = 0; i < m->n_params; i++) worst = fmax(worst, fabs(g_serial[i] - g_par[i]));
    CHECK_MSG(worst < 1e-4, "pool vs serial: max |diff| %g", worst);
    float *g_first = malloc((size_t)m->n_params * sizeof(float));
    memcpy(g_first, g_par, (size_t)m->n_params * sizeof(float));
    memset(g_par, 0, (size_t)m->n_params * sizeof(float));
    CHECK(collm_llm_trainer_forward(parallel, tokens, seq_len, N_SEQ, &slots, 7, s3, NULL) == COLLM_OK);
    CHECK(collm_llm_trainer_backward(parallel, weights, NULL) == COLLM_OK);
    CHECK(memcmp(s2, s3, sizeof s2) == 0 && memcmp(g_first, g_par, (size_t)m->n_params * sizeof(float)) == 0);
    free(g_first);
    free(g_serial);
    collm_llm_trainer_free(serial);
    collm_llm_trainer_free(parallel);
    collm_pool_free(pool);
    collm_llm_model_free(m);
}

// Frozen weights (stage 2): the trainer runs the backward only from each
// prompt's first slot row on. The slot gradients equal those of a full
// fine-tuning trainer (which runs every row) and central differences; slot
// layouts: the shared batch (a prompt without slots), and slots at a
// prompt's first row, at its last row and mid-prompt; with and without a pool.
static double frozen_loss(collm_llm_trainer *tr, const int32_t *rows, const float *values, const float *weights) {
    collm_llm_slot_rows slots = {3, rows, values};
    float scores[N_SEQ];
    if (collm_llm_trainer_forward(tr, tokens, seq_len, N_SEQ, &slots, 7, scores, NULL) != COLLM_OK) return NAN;
    double loss = 0;
    for (int s = 0; s < N_SEQ; s++) loss += weights[s] * scores[s];
    return loss;
}

static void test_frozen_slot_gradients(collm_llm_arch arch) {
    collm_llm_hparams hp = tiny_hparams(arch);
    collm_llm_model *m = collm_llm_model_init_random(&hp, 3);
    collm_rng rng;
    collm_rng_seed(&rng, 8);
    scale_up_weights(m, &rng);
    collm_pool *pool = collm_pool_create(3);
    const int32_t layouts[2][3] = {{3, 8, 10}, {0, 11, 13}}; // rows 0-4 | 5-11 | 12-15
    float values[48], weights[N_SEQ] = {0.9f, -0.6f, 1.2f};
    for (int i = 0; i < 48; i++) values[i] = (float)collm_rng_normal(&rng);
    for (int threaded = 0; threaded < 2; threaded++) {
        collm_pool *p = threaded ? pool : NULL;
        collm_llm_trainer *full = collm_llm_trainer_create(m, NULL, 1, 32, 8, p);
        collm_llm_trainer *frozen = collm_llm_trainer_create(m, NULL, 0, 32, 8, p);
        CHECK(full && frozen && collm_llm_trainer_model_grad(frozen) == NULL);
        for (int li = 0; li < 2 && full && frozen; li++) {
            float d_full[48] = {0}, d_frozen[48] = {0};
            double lf = frozen_loss(full, layouts[li], values, weights);
            CHECK(collm_llm_trainer_backward(full, weights, d_full) == COLLM_OK);
            double lz = frozen_loss(frozen, layouts[li], values, weights);
            CHECK(collm_llm_trainer_backward(frozen, weights, d_frozen) == COLLM_OK);
            double worst = fabs(lf - lz), scale = 0;
            for (int i = 0; i < 48; i++) {
                worst = fmax(worst, fabs(d_full[i] - d_frozen[i]));
                scale = fmax(scale, fabs(d_full[i]));
            }
            CHECK_MSG(scale > 1e-3 && worst <= 1e-5 * (1 + scale), "%s layout %d pool %d: frozen vs full slot grads %g (scale %g)",
                      collm_llm_arch_name(arch), li, threaded, worst, scale);
            int bad = 0;
            for (int i = 0; i < 48; i += 5) {
                float keep = values[i];
                values[i] = keep + 1e-2f;
                double lp = frozen_loss(frozen, layouts[li], values, weights);
                values[i] = keep - 1e-2f;
                double lm = frozen_loss(frozen, layouts[li], values, weights);
                values[i] = keep;
                bad += !close_enough(d_frozen[i], (lp - lm) / 2e-2);
            }
            CHECK_MSG(bad == 0, "%s layout %d: %d slot gradients off finite differences", collm_llm_arch_name(arch), li, bad);
        }
        // no slot gradient asked for: nothing to do, and no error
        CHECK(frozen && collm_llm_trainer_backward(frozen, weights, NULL) == COLLM_OK);
        collm_llm_trainer_free(full);
        collm_llm_trainer_free(frozen);
    }
    collm_pool_free(pool);
    collm_llm_model_free(m);
}

// Prompts that start alike: the shared leading rows run once. Scores equal
// those of the unshared trainer and of the inference engine; every gradient
// (full fine-tuning, LoRA, frozen weights' slots) equals the unshared one.
// Batches: 4 shared tokens (a prompt of 5 tokens shares all but its last),
// and a slot at token 2 of one prompt cutting the share to 2.
enum { SH_ROWS = 19 };
static const int32_t sh_len[N_SEQ] = {6, 8, 5};
static const int32_t sh_tokens[SH_ROWS] = {1, 5, 9, 4, 3, 7, /**/ 1, 5, 9, 4, 8, 2, 2, 6, /**/ 1, 5, 9, 4, 3};

static double shared_loss(collm_llm_trainer *tr, const int32_t *slot_rows_, const float *values, const float *weights,
                          float *scores) {
    collm_llm_slot_rows slots = {2, slot_rows_, values};
    if (collm_llm_trainer_forward(tr, sh_tokens, sh_len, N_SEQ, &slots, 7, scores, NULL) != COLLM_OK) return NAN;
    double loss = 0;
    for (int s = 0; s < N_SEQ; s++) loss += weights[s] * scores[s];
    return loss;
}

// max |a - b| over n, relative to max |b|
static double rel_diff(const float *a, const float *b, int64_t n) {
    double worst = 0, scale = 1e-30;
    for (int64_t i = 0; i < n; i++) {
        worst = fmax(worst, fabs(a[i] - b[i]));
        scale = fmax(scale, fabs(b[i]));
    }
    return worst / scale;
}

static void test_shared_prefix(void) {
    collm_llm_hparams hp = tiny_hparams(COLLM_LLM_ARCH_QWEN2); // biases, NEOX RoPE, GQA
    collm_llm_model *m = collm_llm_model_init_random(&hp, 12);
    collm_rng rng;
    collm_rng_seed(&rng, 13);
    scale_up_weights(m, &rng);
    int q = hp.n_head * 4, kv = hp.n_head_kv * 4;
    int dims_in[COLLM_LORA_N_TARGETS] = {16, 16, 16, q, 16, 16, hp.n_ff};
    int dims_out[COLLM_LORA_N_TARGETS] = {q, kv, kv, 16, hp.n_ff, hp.n_ff, 16};
    collm_lora_adapter lora;
    CHECK(collm_lora_init(&lora, hp.n_layer, dims_in, dims_out, 2, 4.0f, 0.0f, 0x7f, &rng) == COLLM_OK);
    for (int i = 0; i < hp.n_layer * COLLM_LORA_N_TARGETS; i++)
        for (int j = 0; j < lora.pairs[i].out * lora.pairs[i].rank; j++) lora.pairs[i].b[j] = (float)(0.3 * collm_rng_normal(&rng));
    const int32_t layouts[2][2] = {{10, 18}, {12, 16}}; // slots: prompt 1 token 4 and prompt 2's last | prompt 1 token 6, prompt 2 token 2
    const int expect_shared[2] = {4, 2};
    float values[32], weights[N_SEQ] = {0.8f, -1.1f, 0.6f};
    for (int i = 0; i < 32; i++) values[i] = (float)collm_rng_normal(&rng);
    collm_pool *pool = collm_pool_create(3);
    collm_llm_context *ctx = collm_llm_context_create(m, 16, 16, NULL);
    for (int kind = 0; kind < 3; kind++) { // full fine-tuning, LoRA, frozen
        for (int threaded = 0; threaded < 2; threaded++) {
            collm_pool *p = threaded ? pool : NULL;
            collm_llm_trainer *a = collm_llm_trainer_create(m, kind == 1 ? &lora : NULL, kind == 0, 32, 8, p);
            collm_llm_trainer *b = collm_llm_trainer_create(m, kind == 1 ? &lora : NULL, kind == 0, 32, 8, p);
            CHECK(a && b);
            if (!a || !b) break;
            collm_llm_trainer_set_prefix_sharing(b, 0);
            for (int li = 0; li < 2; li++) {
                float sa[N_SEQ], sb[N_SEQ], da[32] = {0}, db[32] = {0};
                int64_t nl = kind == 1 ? collm_lora_n_params(&lora) : 0;
                float *ga = NULL, *gb = NULL;
                // b: unshared reference (LoRA gradients live in the adapter: copy them out between runs)
                for (int i = 0; kind == 1 && i < hp.n_layer * COLLM_LORA_N_TARGETS; i++) {
                    collm_lora_pair *pr = &lora.pairs[i];
                    memset(pr->da, 0, (size_t)pr->rank * pr->in * sizeof(float));
                    memset(pr->db, 0, (size_t)pr->out * pr->rank * sizeof(float));
                }
                CHECK(!isnan(shared_loss(b, layouts[li], values, weights, sb)));
                CHECK(collm_llm_trainer_shared_rows(b) == 0);
                CHECK(collm_llm_trainer_backward(b, weights, db) == COLLM_OK);
                if (kind == 0) gb = collm_llm_trainer_model_grad(b);
                float *lora_b = kind == 1 ? malloc(sizeof(float) * (size_t)(nl + 1)) : NULL;
                for (int i = 0, o = 0; kind == 1 && i < hp.n_layer * COLLM_LORA_N_TARGETS; i++) {
                    collm_lora_pair *pr = &lora.pairs[i];
                    memcpy(lora_b + o, pr->da, (size_t)pr->rank * pr->in * sizeof(float)), o += pr->rank * pr->in;
                    memcpy(lora_b + o, pr->db, (size_t)pr->out * pr->rank * sizeof(float)), o += pr->out * pr->rank;
                    memset(pr->da, 0, (size_t)pr->rank * pr->in * sizeof(float));
                    memset(pr->db, 0, (size_t)pr->out * pr->rank * sizeof(float));
                }
                CHECK(!isnan(shared_loss(a, layouts[li], values, weights, sa)));
                CHECK_MSG(collm_llm_trainer_shared_rows(a) == expect_shared[li], "shared rows %d, expected %d",
                          collm_llm_trainer_shared_rows(a), expect_shared[li]);
                CHECK(collm_llm_trainer_backward(a, weights, da) == COLLM_OK);
                if (kind == 0) ga = collm_llm_trainer_model_grad(a);
                CHECK_MSG(rel_diff(sa, sb, N_SEQ) < 1e-6, "kind %d layout %d: scores shared vs not", kind, li);
                CHECK_MSG(rel_diff(da, db, 32) < 1e-5, "kind %d layout %d pool %d: slot grads shared vs not %g", kind,
                          li, threaded, rel_diff(da, db, 32));
                if (kind == 0) {
                    CHECK_MSG(rel_diff(ga, gb, m->n_params) < 1e-5, "layout %d pool %d: weight grads shared vs not %g",
                              li, threaded, rel_diff(ga, gb, m->n_params));
                    memset(ga, 0, (size_t)m->n_params * sizeof(float));
                    memset(gb, 0, (size_t)m->n_params * sizeof(float));
                }
                if (kind == 1) {
                    float *lora_a = malloc(sizeof(float) * (size_t)(nl + 1));
                    for (int i = 0, o = 0; i < hp.n_layer * COLLM_LORA_N_TARGETS; i++) {
                        collm_lora_pair *pr = &lora.pairs[i];
                        memcpy(lora_a + o, pr->da, (size_t)pr->rank * pr->in * sizeof(float)), o += pr->rank * pr->in;
                        memcpy(lora_a + o, pr->db, (size_t)pr->out * pr->rank * sizeof(float)), o += pr->out * pr->rank;
                    }
                    CHECK_MSG(rel_diff(lora_a, lora_b, nl) < 1e-5, "layout %d: LoRA grads shared vs not %g", li,
                              rel_diff(lora_a, lora_b, nl));
                    free(lora_a);
                }
                free(lora_b);
                // the engine, prompt by prompt (full fine-tuning pass only: same weights every kind)
                for (int s = 0, r0 = 0; kind == 0 && !threaded && ctx && s < N_SEQ; r0 += sh_len[s], s++) {
                    int32_t rows[2], n = 0, last = sh_len[s] - 1, yes = 7;
                    float vals[32], logit;
                    for (int i = 0; i < 2; i++)
                        if (layouts[li][i] >= r0 && layouts[li][i] < r0 + sh_len[s]) {
                            rows[n] = layouts[li][i] - r0;
                            memcpy(vals + n * 16, values + i * 16, sizeof(float) * 16);
                            n++;
                        }
                    collm_llm_slot_rows own = {n, rows, vals};
                    collm_llm_kv_truncate(ctx, 0);
                    CHECK(collm_llm_forward(ctx, sh_tokens + r0, sh_len[s], &own, &last, 1, &yes, 1, &logit) == COLLM_OK);
                    CHECK_MSG(fabs(logit - sa[s]) < 1e-4, "layout %d prompt %d: shared trainer %g vs engine %g", li, s,
                              sa[s], logit);
                }
            }
            collm_llm_trainer_free(a);
            collm_llm_trainer_free(b);
        }
    }
    collm_llm_context_free(ctx);
    collm_pool_free(pool);
    collm_lora_free(&lora);
    collm_llm_model_free(m);
}

// The fused block halves (row chunks of RMSNorm, q|k|v, split and RoPE; of
// Wo, RMSNorm, gate|up, SwiGLU and W_down; on one thread each; llm/block.c)
// give the bits of the unfused passes: scores and every weight gradient
// equal, on a pool of 2 with BLAS on one thread (as the CLI runs) and enough
// rows for several chunks on each thread; Llama, and Qwen2 (q|k|v biases,
// NEOX RoPE, GQA). Where collm's kernel is not the forward's (no AVX-512)
// both runs take the unfused path and agree trivially.
// The model of the fused-path tests: C 32, F 40 (several chunks of a
// batch's rows), weights scaled up; rng seeded for the test's data.
static collm_llm_model *fused_model(collm_llm_arch arch, int n_layer, uint64_t seed, collm_rng *rng) {
    collm_llm_hparams hp = tiny_hparams(arch);
    hp.n_embd = 32;
    hp.n_ff = 40;
    hp.n_layer = n_layer;
    collm_llm_model *m = collm_llm_model_init_random(&hp, seed);
    collm_rng_seed(rng, seed + 1);
    scale_up_weights(m, rng);
    return m;
}

static void test_fused_block(collm_llm_arch arch) {
    collm_rng rng;
    collm_llm_model *m = fused_model(arch, tiny_hparams(arch).n_layer, 21, &rng);
    const collm_llm_hparams hp = m->hp;
    collm_blas_set_threads(1);
    collm_pool *pool = collm_pool_create(2);
    enum { S = 8, L = 60 };
    int32_t lens[S], toks[S * L];
    for (int s = 0; s < S; s++) lens[s] = L - 3 * s; // 396 rows: 5 chunks of 96 rows or fewer
    for (int i = 0; i < S * L; i++) toks[i] = (int32_t)(collm_rng_next(&rng) % (uint64_t)hp.n_vocab);
    float w[S], s_fused[S], s_plain[S];
    for (int s = 0; s < S; s++) w[s] = (float)collm_rng_normal(&rng);
    collm_llm_trainer *a = collm_llm_trainer_create(m, NULL, 1, S * L, L, pool);
    collm_llm_trainer *b = collm_llm_trainer_create(m, NULL, 1, S * L, L, pool);
    CHECK(a && b);
    if (a && b) {
        collm_llm_trainer_set_fusion(b, 0);
        CHECK(collm_llm_trainer_forward(a, toks, lens, S, NULL, 3, s_fused, NULL) == COLLM_OK);
        CHECK(collm_llm_trainer_backward(a, w, NULL) == COLLM_OK);
        CHECK(collm_llm_trainer_forward(b, toks, lens, S, NULL, 3, s_plain, NULL) == COLLM_OK);
        CHECK(collm_llm_trainer_backward(b, w, NULL) == COLLM_OK);
        CHECK_MSG(memcmp(s_fused, s_plain, sizeof s_fused) == 0, "fused vs unfused scores: %g vs %g", s_fused[0],
                  s_plain[0]);
        CHECK_MSG(memcmp(collm_llm_trainer_model_grad(a), collm_llm_trainer_model_grad(b),
                         (size_t)m->n_params * sizeof(float)) == 0,
                  "fused vs unfused weight gradients differ");
        // and the scores are the model's: an independent single-thread run agrees closely
        collm_llm_trainer *c = collm_llm_trainer_create(m, NULL, 0, S * L, L, NULL);
        float s_serial[S];
        CHECK(c && collm_llm_trainer_forward(c, toks, lens, S, NULL, 3, s_serial, NULL) == COLLM_OK);
        CHECK_MSG(rel_diff(s_fused, s_serial, S) < 1e-5, "fused vs serial scores %g", rel_diff(s_fused, s_serial, S));
        collm_llm_trainer_free(c);
    }
    collm_llm_trainer_free(a);
    collm_llm_trainer_free(b);
    // frozen weights (stage 2): one slot per prompt at its row 10 (then 30),
    // so the backward runs over the rows from there on only (compact rows, gu
    // read at their rows): the slot gradients of the fused and unfused passes
    // agree, step after step with the weights packed once (weights fixed:
    // kept from call to call, whatever the rows of the step)
    a = collm_llm_trainer_create(m, NULL, 0, S * L, L, pool);
    b = collm_llm_trainer_create(m, NULL, 0, S * L, L, pool);
    CHECK(a && b);
    if (a && b) {
        collm_llm_trainer_set_fusion(b, 0);
        CHECK(collm_llm_trainer_set_weights_fixed(a) == COLLM_OK);
        int32_t rows[S];
        float *values = malloc(sizeof(float) * S * hp.n_embd), *d_a = malloc(sizeof(float) * S * hp.n_embd),
              *d_b = malloc(sizeof(float) * S * hp.n_embd);
        for (int i = 0; values && i < S * hp.n_embd; i++) values[i] = (float)collm_rng_normal(&rng);
        collm_llm_slot_rows slots = {S, rows, values};
        CHECK(values && d_a && d_b);
        for (int step = 0; step < 3 && values && d_a && d_b; step++) {
            for (int s = 0, start = 0; s < S; start += lens[s], s++) rows[s] = start + (step == 1 ? 30 : 10);
            memset(d_a, 0, sizeof(float) * S * hp.n_embd);
            memset(d_b, 0, sizeof(float) * S * hp.n_embd);
            CHECK(collm_llm_trainer_forward(a, toks, lens, S, &slots, 3, s_fused, NULL) == COLLM_OK);
            CHECK(collm_llm_trainer_backward(a, w, d_a) == COLLM_OK);
            CHECK(collm_llm_trainer_forward(b, toks, lens, S, &slots, 3, s_plain, NULL) == COLLM_OK);
            CHECK(collm_llm_trainer_backward(b, w, d_b) == COLLM_OK);
            CHECK_MSG(memcmp(s_fused, s_plain, sizeof s_fused) == 0, "frozen step %d: fused vs unfused scores differ",
                      step);
            CHECK_MSG(memcmp(d_a, d_b, sizeof(float) * S * hp.n_embd) == 0,
                      "frozen step %d: fused vs unfused slot gradients differ", step);
            double norm = 0;
            for (int i = 0; i < S * hp.n_embd; i++) norm += fabs(d_a[i]);
            CHECK_MSG(norm > 1e-3, "frozen step %d: slot gradients are all but zero (%g)", step, norm);
        }
        // the copies are kept: a weight changed behind the trainer's back (a
        // broken promise) leaves its fused products as they were, where a
        // trainer that packs per call sees it (where collm's kernel takes the
        // feed-forward: AVX-512; elsewhere nothing is packed)
        m->layers[0].w_down[0] += 1.0f;
        if (values && collm_ops_wpack_used(hp.n_embd, 0, S * L - 3 * S * (S - 1) / 2, pool)) {
            CHECK(collm_llm_trainer_forward(a, toks, lens, S, &slots, 3, s_fused, NULL) == COLLM_OK);
            CHECK(collm_llm_trainer_forward(b, toks, lens, S, &slots, 3, s_plain, NULL) == COLLM_OK);
            CHECK_MSG(memcmp(s_fused, s_plain, sizeof s_fused) != 0, "weights fixed: the packed copies were not kept");
        }
        m->layers[0].w_down[0] -= 1.0f;
        free(values), free(d_a), free(d_b);
    }
    collm_llm_trainer_free(a);
    collm_llm_trainer_free(b);
    // a trainer whose weights train cannot keep them packed
    a = collm_llm_trainer_create(m, NULL, 1, S * L, L, pool);
    CHECK(a && collm_llm_trainer_set_weights_fixed(a) == COLLM_ERR_ARG);
    collm_llm_trainer_free(a);
    collm_pool_free(pool);
    collm_blas_set_threads(2);
    collm_llm_model_free(m);
}

// collm_llm_trainer_score (forward only: row chunks and attention
// probabilities in per-thread scratch, one set of tensors for every layer,
// the shared keys read in place) gives the bits of the training forward:
// 3 layers (the residual stream alternates between two buffers), prompts
// sharing 9 leading tokens, slot rows, on a pool of 2 (fused halves, several
// chunks) and on no pool (unfused); again with the weights it packed (the
// same bits), and afresh after a weight changes (the forward's new bits). A
// backward after it is refused; after the next forward it runs.
static void test_score_forward_only(void) {
    collm_rng rng;
    collm_llm_model *m = fused_model(COLLM_LLM_ARCH_LLAMA, 3, 31, &rng);
    const collm_llm_hparams hp = m->hp;
    collm_blas_set_threads(1);
    collm_pool *pool = collm_pool_create(2);
    enum { S = 8, L = 60, P = 9 };
    int32_t lens[S], toks[S * L], rows[S];
    float slot_values[S * 32], w[S];
    int n = 0;
    for (int s = 0; s < S; s++) {
        lens[s] = L - 3 * s;
        for (int t = 0; t < lens[s]; t++)
            toks[n + t] = t < P ? (int32_t)(t * 3 % hp.n_vocab) : (int32_t)(collm_rng_next(&rng) % (uint64_t)hp.n_vocab);
        rows[s] = n + P + 2 + s; // one slot row per prompt, after the shared tokens
        n += lens[s];
        w[s] = (float)collm_rng_normal(&rng);
    }
    for (int i = 0; i < S * 32; i++) slot_values[i] = (float)collm_rng_normal(&rng);
    collm_llm_slot_rows slots = {S, rows, slot_values};
    for (int pooled = 0; pooled < 2; pooled++) {
        collm_llm_trainer *tr = collm_llm_trainer_create(m, NULL, 1, S * L, L, pooled ? pool : NULL);
        CHECK(tr != NULL);
        if (!tr) continue;
        float s_fwd[S], s_score[S];
        CHECK(collm_llm_trainer_forward(tr, toks, lens, S, &slots, 3, s_fwd, NULL) == COLLM_OK);
        CHECK(collm_llm_trainer_shared_rows(tr) == P);
        CHECK(collm_llm_trainer_score(tr, toks, lens, S, &slots, 3, s_score, 0) == COLLM_OK);
        CHECK_MSG(memcmp(s_fwd, s_score, sizeof s_fwd) == 0, "pool %d: forward-only scores %g vs forward %g", pooled,
                  s_score[0], s_fwd[0]);
        // the packed weights of the last pass again (same weights), then afresh after a change
        float s_again[S], s_new[S], s_new_fwd[S];
        CHECK(collm_llm_trainer_score(tr, toks, lens, S, &slots, 3, s_again, 1) == COLLM_OK);
        CHECK(memcmp(s_again, s_score, sizeof s_again) == 0);
        const float saved = m->layers[0].w_gate[5];
        m->layers[0].w_gate[5] += 1.0f;
        CHECK(collm_llm_trainer_score(tr, toks, lens, S, &slots, 3, s_new, 0) == COLLM_OK);
        CHECK(collm_llm_trainer_forward(tr, toks, lens, S, &slots, 3, s_new_fwd, NULL) == COLLM_OK);
        CHECK_MSG(memcmp(s_new, s_new_fwd, sizeof s_new) == 0 && memcmp(s_new, s_score, sizeof s_new) != 0,
                  "pool %d: scores after a weight change %g, forward %g, before %g", pooled, s_new[0], s_new_fwd[0],
                  s_score[0]);
        m->layers[0].w_gate[5] = saved;
        CHECK(collm_llm_trainer_score(tr, toks, lens, S, &slots, 3, s_again, 0) == COLLM_OK);
        CHECK(memcmp(s_again, s_score, sizeof s_again) == 0);
        CHECK(collm_llm_trainer_backward(tr, w, NULL) == COLLM_ERR_ARG);
        CHECK(strstr(collm_last_error(), "forward-only") != NULL);
        CHECK(collm_llm_trainer_forward(tr, toks, lens, S, &slots, 3, s_fwd, NULL) == COLLM_OK);
        CHECK(memcmp(s_fwd, s_score, sizeof s_fwd) == 0);
        CHECK(collm_llm_trainer_backward(tr, w, NULL) == COLLM_OK);
        collm_llm_trainer_free(tr);
    }
    collm_pool_free(pool);
    collm_blas_set_threads(2);
    collm_llm_model_free(m);
}

// A batch of prompts with runs in common (test_score_shared_runs,
// test_train_shared_runs): every prompt shares RUNS_P = 6 tokens; prompt 1
// shares 40 positions with prompt 0, prompt 2 44 with prompt 1 (a chain:
// 6..40 from prompt 0's rows, 40..44 from prompt 1's), prompt 3 runs like
// prompt 0 for 50 positions, prompt 4 is prompt 0 again, prompt 5 a
// beginning of prompt 0, prompt 6 prompt 0 and more, prompt 7 its own. A
// slot at position slot_pos of every prompt long enough: prompt 0's vector
// in all but prompts 3 and 7. Returns the rows; *n_slots the slots.
enum { RUNS_S = 8, RUNS_L = 60, RUNS_P = 6, RUNS_C = 32 };
static const int runs_lens[RUNS_S] = {50, 45, 52, 50, 50, 25, 60, 40};
static int runs_batch(const collm_llm_hparams *hp, collm_rng *rng, int slot_pos, int32_t *toks, int32_t *seq_len,
                      int32_t *rows, float *values, int *n_slots) {
    const int same_as[RUNS_S] = {-1, 0, 1, 0, 0, 0, 0, -1}, same_len[RUNS_S] = {0, 40, 44, 50, 50, 25, 50, 0};
    int32_t starts[RUNS_S];
    int n = 0;
    *n_slots = 0;
    for (int s = 0; s < RUNS_S; s++) {
        seq_len[s] = runs_lens[s];
        starts[s] = n;
        for (int t = 0; t < runs_lens[s]; t++)
            toks[n + t] = t < RUNS_P ? (int32_t)(t * 5 % hp->n_vocab)
                          : t < same_len[s] ? toks[starts[same_as[s]] + t]
                                            : (int32_t)(collm_rng_next(rng) % (uint64_t)hp->n_vocab);
        if (runs_lens[s] > slot_pos) {
            rows[*n_slots] = n + slot_pos;
            for (int c = 0; c < RUNS_C; c++)
                values[*n_slots * RUNS_C + c] = s == 3 || s == 7 ? (float)collm_rng_normal(rng)
                                                : *n_slots     ? values[c]
                                                               : 0.5f * (float)(c % 7) - 1.0f;
            (*n_slots)++;
        }
        n += runs_lens[s];
    }
    return n;
}

// collm_llm_trainer_score runs a run of leading positions a prompt shares
// with an earlier prompt of the batch once (find_shared_runs): the scores of
// the training forward (which never does), bit for bit where collm's kernel
// takes the products (a pool: a row's bits do not depend on the rows beside
// it), within rounding where BLAS does (its sums depend on the row count),
// and exactly the rows expected. runs_batch with its slot at 20: prompt 3
// stops there (another vector), the others run through it.
static void test_score_shared_runs(void) {
    collm_rng rng;
    collm_llm_model *m = fused_model(COLLM_LLM_ARCH_QWEN2, 3, 41, &rng); // biases, NEOX RoPE, GQA
    const collm_llm_hparams hp = m->hp;
    collm_blas_set_threads(1);
    collm_pool *pool = collm_pool_create(2);
    enum { S = RUNS_S, L = RUNS_L, P = RUNS_P, C = RUNS_C };
    const int *lens = runs_lens;
    const int expect_skip[S] = {P, 40, 44, 20, 49, 24, 50, P};
    int32_t toks[S * L], seq_len[S], rows[S];
    float values[S * C];
    int n_slots;
    const int n = runs_batch(&hp, &rng, 20, toks, seq_len, rows, values, &n_slots);
    collm_llm_slot_rows slots = {n_slots, rows, values};
    int expect_rows = P;
    for (int s = 0; s < S; s++) expect_rows += lens[s] - expect_skip[s];
    for (int pooled = 0; pooled < 2; pooled++) {
        collm_llm_trainer *tr = collm_llm_trainer_create(m, NULL, 0, S * L, L, pooled ? pool : NULL);
        CHECK(tr != NULL);
        if (!tr) continue;
        float s_fwd[S], s_score[S], s_plain[S];
        CHECK(collm_llm_trainer_forward(tr, toks, seq_len, S, &slots, 3, s_fwd, NULL) == COLLM_OK);
        CHECK(collm_llm_trainer_shared_rows(tr) == P && collm_llm_trainer_computed_rows(tr) == n - (S - 1) * P);
        CHECK(collm_llm_trainer_score(tr, toks, seq_len, S, &slots, 3, s_score, 0) == COLLM_OK);
        CHECK_MSG(collm_llm_trainer_computed_rows(tr) == expect_rows, "pool %d: %d rows computed, expected %d", pooled,
                  collm_llm_trainer_computed_rows(tr), expect_rows);
        // collm's kernel takes the products (a pool, an ISA with its kernel): bit for bit
        const int exact = pooled && collm_ops_wpack_used(C, 0, n, pool);
        if (exact)
            CHECK_MSG(memcmp(s_fwd, s_score, sizeof s_fwd) == 0, "shared runs: scores %g %g %g vs forward %g %g %g",
                      s_score[1], s_score[2], s_score[6], s_fwd[1], s_fwd[2], s_fwd[6]);
        else
            CHECK_MSG(rel_diff(s_score, s_fwd, S) < 1e-5, "pool %d: shared runs vs forward %g", pooled,
                      rel_diff(s_score, s_fwd, S));
        // sharing off: every prompt's rows computed, the same scores
        collm_llm_trainer_set_prefix_sharing(tr, 0);
        CHECK(collm_llm_trainer_score(tr, toks, seq_len, S, &slots, 3, s_plain, 1) == COLLM_OK);
        CHECK(collm_llm_trainer_computed_rows(tr) == n);
        CHECK_MSG(rel_diff(s_plain, s_fwd, S) < 1e-5, "pool %d: unshared scores vs forward %g", pooled,
                  rel_diff(s_plain, s_fwd, S));
        collm_llm_trainer_free(tr);
    }
    collm_pool_free(pool);
    collm_blas_set_threads(2);
    collm_llm_model_free(m);
}

// Training with runs (find_shared_runs outside scoring): a prompt computes
// only its positions after the run it shares with an earlier prompt, and
// the gradients its rows send to the keys and values of the run are summed
// into the rows they were read from. Against the same batch with sharing off:
// the scores, every weight gradient (full fine-tuning), the LoRA gradients
// and each slot's gradient, to rounding, with and without a pool, and exactly
// the rows expected. runs_batch with its slot at 46: a run ends at a slot row
// in training (prompts 3, 4 and 6 at 46), so each slot keeps its own
// gradient; the chain (prompt 2 reads prompt 0's and prompt 1's rows) stays.
static void test_train_shared_runs(void) {
    collm_rng rng;
    collm_llm_model *m = fused_model(COLLM_LLM_ARCH_QWEN2, 3, 43, &rng); // biases, NEOX RoPE, GQA
    const collm_llm_hparams hp = m->hp;
    collm_pool *pool = collm_pool_create(3);
    enum { S = RUNS_S, L = RUNS_L, P = RUNS_P, C = RUNS_C };
    const int expect_skip[S] = {P, 40, 44, 46, 46, 24, 46, P};
    int32_t toks[S * L], seq_len[S], rows[S];
    float values[S * C], weights[S];
    int n_slots;
    const int n = runs_batch(&hp, &rng, 46, toks, seq_len, rows, values, &n_slots);
    collm_llm_slot_rows slots = {n_slots, rows, values};
    for (int s = 0; s < S; s++) weights[s] = (float)collm_rng_normal(&rng);
    int expect_rows = P;
    for (int s = 0; s < S; s++) expect_rows += runs_lens[s] - expect_skip[s];
    int q = hp.n_head * hp.head_dim, kv = hp.n_head_kv * hp.head_dim;
    int dims_in[COLLM_LORA_N_TARGETS] = {C, C, C, q, C, C, hp.n_ff};
    int dims_out[COLLM_LORA_N_TARGETS] = {q, kv, kv, C, hp.n_ff, hp.n_ff, C};
    collm_lora_adapter lora;
    CHECK(collm_lora_init(&lora, hp.n_layer, dims_in, dims_out, 2, 4.0f, 0.0f, 0x7f, &rng) == COLLM_OK);
    for (int i = 0; i < hp.n_layer * COLLM_LORA_N_TARGETS; i++)
        for (int j = 0; j < lora.pairs[i].out * lora.pairs[i].rank; j++) lora.pairs[i].b[j] = (float)(0.3 * collm_rng_normal(&rng));
    const int64_t nl = collm_lora_n_params(&lora);
    float *grad[2], *lgrad[2];
    for (int i = 0; i < 2; i++) {
        grad[i] = malloc((size_t)m->n_params * sizeof(float));
        lgrad[i] = malloc((size_t)nl * sizeof(float));
    }
    for (int kind = 0; kind < 2; kind++) // full fine-tuning, LoRA
        for (int pooled = 0; pooled < 2; pooled++) {
            float sc[2][S], ds[2][S * C];
            for (int share = 0; share < 2; share++) {
                collm_llm_trainer *tr = collm_llm_trainer_create(m, kind ? &lora : NULL, !kind, S * L, L,
                                                                 pooled ? pool : NULL);
                CHECK(tr != NULL);
                if (!tr) continue;
                collm_llm_trainer_set_prefix_sharing(tr, share);
                for (int i = 0; kind && i < hp.n_layer * COLLM_LORA_N_TARGETS; i++) {
                    memset(lora.pairs[i].da, 0, (size_t)lora.pairs[i].rank * lora.pairs[i].in * sizeof(float));
                    memset(lora.pairs[i].db, 0, (size_t)lora.pairs[i].out * lora.pairs[i].rank * sizeof(float));
                }
                memset(ds[share], 0, sizeof ds[share]);
                CHECK(collm_llm_trainer_forward(tr, toks, seq_len, S, &slots, 3, sc[share], NULL) == COLLM_OK);
                CHECK_MSG(collm_llm_trainer_computed_rows(tr) == (share ? expect_rows : n),
                          "kind %d pool %d share %d: %d rows computed, expected %d", kind, pooled, share,
                          collm_llm_trainer_computed_rows(tr), share ? expect_rows : n);
                CHECK(collm_llm_trainer_backward(tr, weights, ds[share]) == COLLM_OK);
                if (!kind) memcpy(grad[share], collm_llm_trainer_model_grad(tr), (size_t)m->n_params * sizeof(float));
                for (int i = 0, o = 0; kind && i < hp.n_layer * COLLM_LORA_N_TARGETS; i++) {
                    collm_lora_pair *pr = &lora.pairs[i];
                    memcpy(lgrad[share] + o, pr->da, (size_t)pr->rank * pr->in * sizeof(float)), o += pr->rank * pr->in;
                    memcpy(lgrad[share] + o, pr->db, (size_t)pr->out * pr->rank * sizeof(float)), o += pr->out * pr->rank;
                }
                collm_llm_trainer_free(tr);
            }
            CHECK_MSG(rel_diff(sc[1], sc[0], S) < 1e-5, "kind %d pool %d: scores with runs off by %g", kind, pooled,
                      rel_diff(sc[1], sc[0], S));
            for (int i = 0; i < n_slots; i++)
                CHECK_MSG(rel_diff(ds[1] + i * C, ds[0] + i * C, C) < 1e-4, "kind %d pool %d: slot %d gradient off by %g",
                          kind, pooled, i, rel_diff(ds[1] + i * C, ds[0] + i * C, C));
            if (!kind)
                CHECK_MSG(rel_diff(grad[1], grad[0], m->n_params) < 1e-4, "pool %d: weight gradients with runs off by %g",
                          pooled, rel_diff(grad[1], grad[0], m->n_params));
            else
                CHECK_MSG(rel_diff(lgrad[1], lgrad[0], nl) < 1e-4, "pool %d: LoRA gradients with runs off by %g", pooled,
                          rel_diff(lgrad[1], lgrad[0], nl));
        }
    // forward_flops: the batch without sharing is the sum of its prompts alone,
    // a prompt alone the count bench/train_speed.sh makes (its forward(T)),
    // and the runs take away exactly the rows and keys they skip
    collm_llm_trainer *tr = collm_llm_trainer_create(m, NULL, 1, S * L, L, NULL);
    CHECK(tr != NULL);
    if (tr) {
        float sc[S];
        const double Cd = C, Q = q, KV = kv, F = hp.n_ff, H = hp.n_head, nl1 = hp.n_layer - 1;
        const double Wl = Cd * (Q + 2 * KV) + Q * Cd + 3 * Cd * F;
        double alone = 0, hand = 0, skipped = 0;
        for (int s = 0, r0 = 0; s < S; r0 += seq_len[s], s++) {
            CHECK(collm_llm_trainer_forward(tr, toks + r0, seq_len + s, 1, NULL, 3, sc, NULL) == COLLM_OK);
            alone += collm_llm_trainer_forward_flops(tr);
            const double T = seq_len[s], k = expect_skip[s];
            hand += nl1 * (2 * Wl * T + 2 * Q * T * (T + 1)) + 2 * Cd * KV * T + 2 * Q * T + 2 * H * Cd * T +
                    2 * Q * Cd + 2 * (Cd * Q + Q * Cd + 3 * Cd * F) + 2 * Cd;
            skipped += (nl1 * 2 * Wl + 2 * Cd * KV) * (k - (s ? 0 : P)) + nl1 * 2 * Q * (k * (k + 1) - (s ? 0 : P * (P + 1)));
        }
        collm_llm_trainer_set_prefix_sharing(tr, 0);
        CHECK(collm_llm_trainer_forward(tr, toks, seq_len, S, NULL, 3, sc, NULL) == COLLM_OK);
        const double dense = collm_llm_trainer_forward_flops(tr);
        CHECK_MSG(fabs(dense - alone) <= 1e-12 * alone && fabs(alone - hand) <= 1e-12 * hand,
                  "forward flops: batch %.0f, prompts alone %.0f, by hand %.0f", dense, alone, hand);
        collm_llm_trainer_set_prefix_sharing(tr, 1);
        CHECK(collm_llm_trainer_forward(tr, toks, seq_len, S, &slots, 3, sc, NULL) == COLLM_OK);
        const double shared = collm_llm_trainer_forward_flops(tr);
        CHECK_MSG(fabs(shared - (dense - skipped)) <= 1e-12 * dense, "forward flops with runs %.0f, expected %.0f",
                  shared, dense - skipped);
        collm_llm_trainer_free(tr);
    }
    for (int i = 0; i < 2; i++) free(grad[i]), free(lgrad[i]);
    collm_lora_free(&lora);
    collm_pool_free(pool);
    collm_llm_model_free(m);
}

// The last layer's value projection folded behind its attention (fold_v,
// the default) against the plain projection: the same scores, weight
// gradients and slot gradients to rounding, for full fine-tuning and frozen
// weights, with and without a pool, with the leading rows shared (sh_tokens)
// and not; and the forward-only pass with runs read from earlier prompts
// (test_score_shared_runs covers it bit for bit against the forward).
static void test_fold_v(collm_llm_arch arch) {
    collm_llm_hparams hp = tiny_hparams(arch); // C 16 > KV 8: xn1's rows are wider than the values
    collm_llm_model *m = collm_llm_model_init_random(&hp, 21);
    collm_rng rng;
    collm_rng_seed(&rng, 22);
    scale_up_weights(m, &rng);
    collm_pool *pool = collm_pool_create(3);
    const int32_t layout[2] = {10, 18};
    float values[32], weights[N_SEQ] = {0.9f, -0.7f, 1.2f};
    for (int i = 0; i < 32; i++) values[i] = (float)collm_rng_normal(&rng);
    float *ga = malloc((size_t)m->n_params * sizeof(float)), *gb = malloc((size_t)m->n_params * sizeof(float));
    for (int kind = 0; kind < 2; kind++) // full fine-tuning, frozen
        for (int threaded = 0; threaded < 2; threaded++)
            for (int share = 0; share < 2; share++) {
                collm_pool *p = threaded ? pool : NULL;
                collm_llm_trainer *a = collm_llm_trainer_create(m, NULL, kind == 0, 32, 8, p);
                collm_llm_trainer *b = collm_llm_trainer_create(m, NULL, kind == 0, 32, 8, p);
                CHECK(a && b);
                if (!a || !b) break;
                collm_llm_trainer_set_fold_v(b, 0);
                collm_llm_trainer_set_prefix_sharing(a, share);
                collm_llm_trainer_set_prefix_sharing(b, share);
                float sa[N_SEQ], sb[N_SEQ], da[32] = {0}, db[32] = {0};
                CHECK(!isnan(shared_loss(a, layout, values, weights, sa)));
                CHECK(!isnan(shared_loss(b, layout, values, weights, sb)));
                CHECK(collm_llm_trainer_shared_rows(a) == (share ? 4 : 0));
                CHECK_MSG(rel_diff(sa, sb, N_SEQ) < 1e-5, "fold_v %s kind %d: scores %g %g %g vs %g %g %g",
                          collm_llm_arch_name(arch), kind, sa[0], sa[1], sa[2], sb[0], sb[1], sb[2]);
                CHECK(collm_llm_trainer_backward(a, weights, da) == COLLM_OK);
                CHECK(collm_llm_trainer_backward(b, weights, db) == COLLM_OK);
                CHECK_MSG(rel_diff(da, db, 32) < 1e-5, "fold_v %s kind %d: slot gradients off by %g",
                          collm_llm_arch_name(arch), kind, rel_diff(da, db, 32));
                if (kind == 0) {
                    memcpy(ga, collm_llm_trainer_model_grad(a), (size_t)m->n_params * sizeof(float));
                    memcpy(gb, collm_llm_trainer_model_grad(b), (size_t)m->n_params * sizeof(float));
                    CHECK_MSG(rel_diff(ga, gb, m->n_params) < 1e-5, "fold_v %s: weight gradients off by %g",
                              collm_llm_arch_name(arch), rel_diff(ga, gb, m->n_params));
                }
                // forward only: the same scores
                float ca[N_SEQ], cb[N_SEQ];
                collm_llm_slot_rows slots = {2, layout, values};
                CHECK(collm_llm_trainer_score(a, sh_tokens, sh_len, N_SEQ, &slots, 7, ca, 0) == COLLM_OK);
                CHECK(collm_llm_trainer_score(b, sh_tokens, sh_len, N_SEQ, &slots, 7, cb, 0) == COLLM_OK);
                CHECK_MSG(rel_diff(ca, cb, N_SEQ) < 1e-5, "fold_v %s: forward-only scores off by %g",
                          collm_llm_arch_name(arch), rel_diff(ca, cb, N_SEQ));
                collm_llm_trainer_free(a);
                collm_llm_trainer_free(b);
            }
    free(ga);
    free(gb);
    collm_pool_free(pool);
    collm_llm_model_free(m);
}

static void test_bad_input(void) {
    collm_llm_hparams hp = tiny_hparams(COLLM_LLM_ARCH_LLAMA);
    collm_llm_model *m = collm_llm_model_init_random(&hp, 1);
    collm_llm_trainer *tr = collm_llm_trainer_create(m, NULL, 0, 16, 8, NULL);
    float scores[2];
    int32_t toks[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, lens[2] = {5, 5}, too_long[1] = {10}, bad_tok[5] = {1, 2, 99, 3, 4};
    CHECK(collm_llm_trainer_forward(tr, toks, too_long, 1, NULL, 3, scores, NULL) == COLLM_ERR_ARG);
    CHECK(strstr(collm_last_error(), "tokens") != NULL);
    CHECK(collm_llm_trainer_forward(tr, bad_tok, lens, 1, NULL, 3, scores, NULL) == COLLM_ERR_ARG);
    CHECK(collm_llm_trainer_forward(tr, toks, lens, 2, NULL, 99, scores, NULL) == COLLM_ERR_ARG);
    CHECK(collm_llm_trainer_forward(tr, toks, lens, 2, NULL, 3, scores, NULL) == COLLM_OK);
    CHECK(collm_llm_trainer_create(m, NULL, 0, 4, 8, NULL) == NULL);
    collm_llm_trainer_free(tr);
    collm_llm_model_free(m);
}

int main(void) {
    test_full_gradients(COLLM_LLM_ARCH_LLAMA);
    test_full_gradients(COLLM_LLM_ARCH_QWEN2);
    test_lora_gradients(0x7f);
    test_lora_gradients(0x7f & ~(1u << COLLM_LORA_V)); // the last layer's values folded
    test_loss_falls();
    test_threads();
    test_fused_block(COLLM_LLM_ARCH_LLAMA);
    test_fused_block(COLLM_LLM_ARCH_QWEN2);
    test_frozen_slot_gradients(COLLM_LLM_ARCH_LLAMA);
    test_frozen_slot_gradients(COLLM_LLM_ARCH_QWEN2);
    test_shared_prefix();
    test_score_forward_only();
    test_score_shared_runs();
    test_train_shared_runs();
    test_fold_v(COLLM_LLM_ARCH_LLAMA);
    test_fold_v(COLLM_LLM_ARCH_QWEN2);
    test_bad_input();
    return test_report();
}
