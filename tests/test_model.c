// Forward pass conformance against llama.cpp's logits (testvectors/logits),
// KV-cache consistency, slot rows, selected vocabulary rows, suffix scoring,
// random init + save round trip, and bad model files.
#include "test.h"

#include "collm/error.h"
#include "collm/fileio.h"
#include "collm/gguf.h"
#include "collm/model.h"
#include "collm/threadpool.h"
#include "llm/model_internal.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <sys/stat.h>

static double max_abs_diff(const float *a, const float *b, size_t n) {
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= worst)) worst = d; // NaN propagates as "worst"
    }
    return worst;
}

// Largest |a - ref| / (atol + rtol |ref|): <= 1 means a matches ref to
// atol absolute plus rtol relative (a few float32 ulps for large logits).
static double worst_tol_ratio(const float *a, const float *ref, size_t n, double atol, double rtol) {
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double r = fabs((double)a[i] - (double)ref[i]) / (atol + rtol * fabs((double)ref[i]));
        if (!(r <= worst)) worst = r;
    }
    return worst;
}

// Every model / prompt of testvectors/logits: all-position logits vs llama.cpp.
// ref names the logits folder (normally = name).
static void test_conformance(const char *name, const char *ref_name, double tol, collm_pool *pool) {
    char rel[256];
    snprintf(rel, sizeof rel, "testvectors/logits/%s/logits.json", ref_name);
    char *json_text = NULL;
    size_t json_size = 0;
    if (collm_read_file(test_shared_path(rel), &json_text, &json_size) != COLLM_OK) {
        CHECK_MSG(0, "%s", collm_last_error());
        return;
    }
    cJSON *root = cJSON_Parse(json_text);
    free(json_text);
    CHECK(root != NULL);
    if (!root) return;
    snprintf(rel, sizeof rel, "models/%s.gguf", name);
    collm_llm_model *model = collm_llm_model_load(test_shared_path(rel));
    CHECK_MSG(model != NULL, "%s: %s", name, collm_last_error());
    if (!model) {
        cJSON_Delete(root);
        return;
    }
    const collm_llm_hparams *hp = collm_llm_model_hparams(model);
    collm_llm_context *ctx = collm_llm_context_create(model, 512, 512, pool);
    CHECK(ctx != NULL);
    double worst = 0;
    int n_prompts = 0;
    const cJSON *prompts = cJSON_GetObjectItem(root, "prompts");
    const cJSON *p;
    cJSON_ArrayForEach(p, prompts) {
        const cJSON *jt = cJSON_GetObjectItem(p, "tokens");
        int T = cJSON_GetArraySize(jt);
        int n_vocab = cJSON_GetObjectItem(p, "n_vocab")->valueint;
        CHECK(n_vocab == hp->n_vocab);
        int32_t *tokens = malloc(sizeof(int32_t) * (size_t)T);
        int i = 0;
        const cJSON *tok;
        cJSON_ArrayForEach(tok, jt) tokens[i++] = tok->valueint;
        snprintf(rel, sizeof rel, "testvectors/logits/%s/%s", ref_name, cJSON_GetObjectItem(p, "logits_file")->valuestring);
        char *ref = NULL;
        size_t ref_size = 0;
        int rc = collm_read_file(test_shared_path(rel), &ref, &ref_size);
        CHECK_MSG(rc == COLLM_OK && ref_size == 4 * (size_t)T * n_vocab, "%s", rel);
        float *logits = malloc(sizeof(float) * (size_t)T * n_vocab);
        collm_llm_kv_truncate(ctx, 0);
        rc = collm_llm_forward(ctx, tokens, T, NULL, NULL, -1, NULL, 0, logits);
        CHECK_MSG(rc == COLLM_OK, "%s", collm_last_error());
        if (rc == COLLM_OK && ref && ref_size == 4 * (size_t)T * n_vocab) {
            double d = max_abs_diff(logits, (const float *)ref, (size_t)T * n_vocab);
            CHECK_MSG(d <= tol, "%s %s: max |diff| %g > %g", name, cJSON_GetObjectItem(p, "id")->valuestring, d, tol);
            if (!(d <= worst)) worst = d;
        }
        n_prompts++;
        free(logits);
        free(ref);
        free(tokens);
    }
    CHECK(n_prompts == 4);
    printf("conformance %-20s worst |diff| vs llama.cpp %s logits over %d prompts: %.3g (tol %g)\n", name, ref_name,
           n_prompts, worst, tol);
    collm_llm_context_free(ctx);
    collm_llm_model_free(model);
    cJSON_Delete(root);
}

// Token-by-token and prefix+continuation decoding equal one batch;
// slot rows; selected vocab rows; suffix scoring; cache copy.
static void test_cache_and_slots(const char *model_rel, collm_pool *pool) {
    collm_llm_model *model = collm_llm_model_load(test_shared_path(model_rel));
    CHECK_MSG(model != NULL, "%s", collm_last_error());
    if (!model) return;
    const collm_llm_hparams *hp = collm_llm_model_hparams(model);
    const int V = hp->n_vocab, C = hp->n_embd;
    const int32_t tokens[12] = {1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315};
    const int T = 12;
    collm_llm_context *ctx = collm_llm_context_create(model, 64, 32, pool);
    collm_llm_context *ctx2 = collm_llm_context_create(model, 64, 32, pool);
    float *batch = malloc(sizeof(float) * T * V), *inc = malloc(sizeof(float) * T * V);
    CHECK(collm_llm_forward(ctx, tokens, T, NULL, NULL, -1, NULL, 0, batch) == COLLM_OK);
    CHECK(collm_llm_kv_n_past(ctx) == T);

    // token by token
    CHECK(collm_llm_kv_truncate(ctx, 0) == COLLM_OK);
    int ok = 1;
    for (int t = 0; t < T; t++) {
        int32_t row = 0;
        ok &= collm_llm_forward(ctx, tokens + t, 1, NULL, &row, 1, NULL, 0, inc + (size_t)t * V) == COLLM_OK;
    }
    CHECK(ok);
    // Different T means another summation order (GEMM blocking; one row:
    // row dots of 8 partial sums): allow 2e-5 absolute plus 1e-6 relative
    // (stories260K logits reach ~20, where one float32 ulp is 1.9e-6;
    // llama.cpp itself differs by 1.5e-5).
    double d = max_abs_diff(batch, inc, (size_t)T * V);
    double ratio = worst_tol_ratio(inc, batch, (size_t)T * V, 2e-5, 1e-6);
    CHECK_MSG(ratio <= 1, "token-by-token vs batch %g (ratio %g)", d, ratio);
    printf("%s: token-by-token vs batch max |diff| %.3g\n", model_rel, d);

    // prefix of 5, then the 7 others as one continuation; rows reversed to test out_rows order
    CHECK(collm_llm_kv_truncate(ctx, 0) == COLLM_OK);
    CHECK(collm_llm_forward(ctx, tokens, 5, NULL, NULL, 0, NULL, 0, NULL) == COLLM_OK);
    int32_t rows[7];
    for (int i = 0; i < 7; i++) rows[i] = 6 - i;
    CHECK(collm_llm_forward(ctx, tokens + 5, 7, NULL, rows, 7, NULL, 0, inc) == COLLM_OK);
    ratio = 0;
    for (int i = 0; i < 7; i++) {
        double ri = worst_tol_ratio(inc + (size_t)i * V, batch + (size_t)(5 + rows[i]) * V, (size_t)V, 1e-5, 1e-6);
        if (ri > ratio) ratio = ri;
    }
    CHECK_MSG(ratio <= 1, "prefix+continuation vs batch: ratio %g", ratio);

    // truncate back to 5 and continue again: same result (cache reuse)
    CHECK(collm_llm_kv_truncate(ctx, 5) == COLLM_OK);
    float *again = malloc(sizeof(float) * 7 * V);
    CHECK(collm_llm_forward(ctx, tokens + 5, 7, NULL, rows, 7, NULL, 0, again) == COLLM_OK);
    CHECK(max_abs_diff(again, inc, (size_t)7 * V) == 0);
    // copy the 5-token prefix into another context and continue there
    CHECK(collm_llm_kv_copy(ctx2, ctx, 5) == COLLM_OK);
    CHECK(collm_llm_kv_n_past(ctx2) == 5);
    CHECK(collm_llm_forward(ctx2, tokens + 5, 7, NULL, rows, 7, NULL, 0, again) == COLLM_OK);
    CHECK(max_abs_diff(again, inc, (size_t)7 * V) == 0);
    CHECK(collm_llm_kv_truncate(ctx, 13) != COLLM_OK); // beyond what is cached
    CHECK(collm_llm_kv_copy(ctx2, ctx, 13) != COLLM_OK);

    // slot rows: rows 3 and 7 given as embeddings of tokens 261 and 286 equal feeding those tokens
    {
        const int32_t slot_rows[2] = {3, 7};
        float *values = malloc(sizeof(float) * 2 * C);
        // the replacement rows: those tokens' rows of token_embd, read from the GGUF directly
        collm_gguf_file *f = collm_gguf_open(test_shared_path(model_rel));
        const collm_gguf_tensor_info *te = collm_gguf_find_tensor(f, "token_embd.weight");
        float *embd = malloc(sizeof(float) * (size_t)V * C);
        CHECK(collm_gguf_tensor_to_f32(te, embd) == COLLM_OK);
        memcpy(values, embd + (size_t)261 * C, sizeof(float) * C);
        memcpy(values + C, embd + (size_t)286 * C, sizeof(float) * C);
        int32_t toks[12];
        memcpy(toks, tokens, sizeof toks);
        toks[3] = 0; // ignored: overridden by the slot
        toks[7] = 0;
        collm_llm_slot_rows slots = {2, slot_rows, values};
        CHECK(collm_llm_kv_truncate(ctx, 0) == COLLM_OK);
        CHECK(collm_llm_forward(ctx, toks, T, &slots, NULL, -1, NULL, 0, inc) == COLLM_OK);
        d = max_abs_diff(inc, batch, (size_t)T * V);
        CHECK_MSG(d == 0, "slot rows vs tokens %g", d);
        // a wrong slot value does change the output (the slot is really used)
        values[0] += 1.0f;
        CHECK(collm_llm_kv_truncate(ctx, 0) == COLLM_OK);
        CHECK(collm_llm_forward(ctx, toks, T, &slots, NULL, -1, NULL, 0, inc) == COLLM_OK);
        CHECK(max_abs_diff(inc, batch, (size_t)T * V) > 1e-3);
        // no tokens at all: every row a slot
        int32_t all_rows[12];
        float *all_values = malloc(sizeof(float) * T * C);
        for (int t = 0; t < T; t++) {
            all_rows[t] = t;
            memcpy(all_values + (size_t)t * C, embd + (size_t)tokens[t] * C, sizeof(float) * C);
        }
        collm_llm_slot_rows all = {T, all_rows, all_values};
        CHECK(collm_llm_kv_truncate(ctx, 0) == COLLM_OK);
        CHECK(collm_llm_forward(ctx, NULL, T, &all, NULL, -1, NULL, 0, inc) == COLLM_OK);
        CHECK(max_abs_diff(inc, batch, (size_t)T * V) == 0);
        // bad slot row / missing tokens
        const int32_t bad_row = 12;
        collm_llm_slot_rows bad = {1, &bad_row, values};
        CHECK(collm_llm_kv_truncate(ctx, 0) == COLLM_OK);
        CHECK(collm_llm_forward(ctx, tokens, T, &bad, NULL, -1, NULL, 0, inc) == COLLM_ERR_ARG);
        CHECK(collm_llm_forward(ctx, NULL, T, &slots, NULL, -1, NULL, 0, inc) == COLLM_ERR_ARG);
        free(all_values);
        free(embd);
        collm_gguf_close(f);
        free(values);
    }

    // selected vocabulary rows at chosen positions equal the full logits
    {
        const int32_t vocab[3] = {V - 1, 0, 378};
        const int32_t out_rows[2] = {T - 1, 2};
        float sel[6];
        CHECK(collm_llm_kv_truncate(ctx, 0) == COLLM_OK);
        CHECK(collm_llm_forward(ctx, tokens, T, NULL, out_rows, 2, vocab, 3, sel) == COLLM_OK);
        double ds = 0;
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 3; j++) {
                const float *ref = &batch[(size_t)out_rows[i] * V + vocab[j]];
                double dd = worst_tol_ratio(&sel[i * 3 + j], ref, 1, 1e-5, 1e-6);
                if (dd > ds) ds = dd;
            }
        CHECK_MSG(ds <= 1, "selected rows: ratio %g", ds);
        const int32_t bad_vocab = V;
        CHECK(collm_llm_kv_truncate(ctx, 0) == COLLM_OK);
        CHECK(collm_llm_forward(ctx, tokens, T, NULL, out_rows, 2, &bad_vocab, 1, sel) == COLLM_ERR_ARG);
        const int32_t bad_out = T;
        CHECK(collm_llm_forward(ctx, tokens, T, NULL, &bad_out, 1, NULL, 0, inc) == COLLM_ERR_ARG);
        const int32_t bad_tok[1] = {V};
        CHECK(collm_llm_forward(ctx, bad_tok, 1, NULL, NULL, -1, NULL, 0, inc) == COLLM_ERR_ARG);
        CHECK(collm_llm_forward(ctx, tokens, 33, NULL, NULL, -1, NULL, 0, inc) == COLLM_ERR_ARG); // > n_batch
    }

    // suffix scoring: prefix of 4, three suffixes of lengths 3, 1, 8; each
    // must equal running prefix + that suffix alone.
    {
        const int32_t seq_len[3] = {3, 1, 8};
        const int32_t packed[12] = {261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317};
        const int32_t vocab[2] = {5, 378};
        float scores[6], expect[6];
        int off = 0;
        for (int s = 0; s < 3; s++) {
            int32_t last = seq_len[s] - 1;
            CHECK(collm_llm_kv_truncate(ctx, 0) == COLLM_OK);
            CHECK(collm_llm_forward(ctx, tokens, 4, NULL, NULL, 0, NULL, 0, NULL) == COLLM_OK);
            CHECK(collm_llm_forward(ctx, packed + off, seq_len[s], NULL, &last, 1, vocab, 2, expect + 2 * s) == COLLM_OK);
            off += seq_len[s];
        }
        CHECK(collm_llm_kv_truncate(ctx, 0) == COLLM_OK);
        CHECK(collm_llm_forward(ctx, tokens, 4, NULL, NULL, 0, NULL, 0, NULL) == COLLM_OK);
        CHECK(collm_llm_score_suffixes(ctx, 3, packed, seq_len, NULL, vocab, 2, scores) == COLLM_OK);
        CHECK(collm_llm_kv_n_past(ctx) == 4);
        double ds = worst_tol_ratio(scores, expect, 6, 1e-5, 1e-6);
        CHECK_MSG(ds <= 1, "suffix scoring vs one by one: ratio %g", ds);
        // and again on the same prefix (the cache still holds it)
        CHECK(collm_llm_score_suffixes(ctx, 3, packed, seq_len, NULL, vocab, 2, scores) == COLLM_OK);
        CHECK(worst_tol_ratio(scores, expect, 6, 1e-5, 1e-6) <= 1);
        // many suffixes packed beyond n_ctx rows: n_ctx 16 holds prefix + one suffix, n_batch 64 holds 5 x 12 rows
        collm_llm_context *small = collm_llm_context_create(model, 16, 64, pool);
        int32_t many_len[15], many_tok[60];
        for (int r = 0; r < 5; r++) {
            memcpy(many_len + 3 * r, seq_len, sizeof seq_len);
            memcpy(many_tok + 12 * r, packed, sizeof packed);
        }
        float many[30];
        CHECK(collm_llm_forward(small, tokens, 4, NULL, NULL, 0, NULL, 0, NULL) == COLLM_OK);
        CHECK_MSG(collm_llm_score_suffixes(small, 15, many_tok, many_len, NULL, vocab, 2, many) == COLLM_OK, "%s",
                  collm_last_error());
        for (int r = 0; r < 5; r++) CHECK(worst_tol_ratio(many + 6 * r, expect, 6, 1e-5, 1e-6) <= 1);
        collm_llm_context_free(small);
        const int32_t too_long[2] = {30, 30};
        CHECK(collm_llm_score_suffixes(ctx, 2, packed, too_long, NULL, vocab, 2, scores) == COLLM_ERR_ARG);
    }
    free(again);
    free(batch);
    free(inc);
    collm_llm_context_free(ctx);
    collm_llm_context_free(ctx2);
    collm_llm_model_free(model);
}

// stories260K greedy continuation of "Once upon a time" (llama.cpp, = llama2.c's sample).
static void test_greedy(collm_pool *pool) {
    char *text = NULL;
    size_t size = 0;
    if (collm_read_file(test_shared_path("testvectors/logits/stories260K/greedy.txt"), &text, &size) != COLLM_OK) {
        CHECK_MSG(0, "%s", collm_last_error());
        return;
    }
    int32_t prompt[16], expect[128];
    int n_prompt = 0, n_expect = 0;
    char *line = strstr(text, "prompt_tokens:");
    char *gen = strstr(text, "generated_tokens:");
    CHECK(line && gen);
    if (!line || !gen) {
        free(text);
        return;
    }
    char *p = line + strlen("prompt_tokens:");
    while (p < gen && n_prompt < 16) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p) break;
        prompt[n_prompt++] = (int32_t)v;
        p = end;
    }
    p = gen + strlen("generated_tokens:");
    while (*p && *p != '\n' && n_expect < 128) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p) break;
        expect[n_expect++] = (int32_t)v;
        p = end;
    }
    free(text);
    collm_llm_model *model = collm_llm_model_load(test_shared_path("models/stories260K.gguf"));
    CHECK(model != NULL);
    if (!model) return;
    const int V = collm_llm_model_hparams(model)->n_vocab;
    collm_llm_context *ctx = collm_llm_context_create(model, 256, 64, pool);
    float *logits = malloc(sizeof(float) * V);
    int32_t last = n_prompt - 1, zero = 0;
    int rc = collm_llm_forward(ctx, prompt, n_prompt, NULL, &last, 1, NULL, 0, logits);
    const int n_check = 40 < n_expect ? 40 : n_expect;
    int matched = 0;
    for (int i = 0; i < n_check && rc == COLLM_OK; i++) {
        int best = 0;
        for (int j = 1; j < V; j++)
            if (logits[j] > logits[best]) best = j;
        if (best != expect[i]) break;
        matched++;
        rc = collm_llm_forward(ctx, &expect[i], 1, NULL, &zero, 1, NULL, 0, logits);
    }
    CHECK_MSG(matched == n_check, "greedy: %d of %d tokens match", matched, n_check);
    printf("stories260K greedy: %d of %d tokens match llama.cpp\n", matched, n_check);
    free(logits);
    collm_llm_context_free(ctx);
    collm_llm_model_free(model);
}

// Random init is deterministic, and save -> load reproduces the weights (F32
// exactly, F16 to half precision), for llama and qwen2 (biases, tied head).
static void test_init_save_load(collm_pool *pool) {
    const char *tmp = test_tmp_dir();
    collm_mkdir_p(tmp);
    for (int arch = 0; arch < 2; arch++) {
        collm_llm_hparams hp = {0};
        hp.arch = arch ? COLLM_LLM_ARCH_QWEN2 : COLLM_LLM_ARCH_LLAMA;
        hp.n_vocab = 512;
        hp.n_embd = 32;
        hp.n_layer = 2;
        hp.n_head = 4;
        hp.n_head_kv = 2;
        hp.n_ff = 48;
        hp.rms_eps = 1e-5f;
        hp.rope_base = 10000.0f;
        hp.tied_output = arch; // qwen2 tied
        collm_llm_model *a = collm_llm_model_init_random(&hp, 7), *b = collm_llm_model_init_random(&hp, 7),
                  *c = collm_llm_model_init_random(&hp, 8);
        CHECK(a && b && c);
        if (!a || !b || !c) return;
        const int32_t toks[6] = {1, 5, 9, 200, 3, 511};
        const int V = hp.n_vocab;
        float la[6 * 512], lb[6 * 512];
        collm_llm_context *ca = collm_llm_context_create(a, 16, 16, pool), *cb = collm_llm_context_create(b, 16, 16, pool),
                    *cc = collm_llm_context_create(c, 16, 16, pool);
        CHECK(collm_llm_forward(ca, toks, 6, NULL, NULL, -1, NULL, 0, la) == COLLM_OK);
        CHECK(collm_llm_forward(cb, toks, 6, NULL, NULL, -1, NULL, 0, lb) == COLLM_OK);
        CHECK(max_abs_diff(la, lb, 6 * (size_t)V) == 0);
        CHECK(collm_llm_forward(cc, toks, 6, NULL, NULL, -1, NULL, 0, lb) == COLLM_OK);
        CHECK(max_abs_diff(la, lb, 6 * (size_t)V) > 1e-4);
        // logits must not be degenerate (a model that outputs all-equal logits would pass the above)
        double spread = 0;
        for (int j = 0; j < V; j++) spread = fmax(spread, fabs(la[j] - la[0]));
        CHECK(spread > 1e-3);
        char path[512];
        for (int f16 = 0; f16 < 2; f16++) {
            snprintf(path, sizeof path, "%s/model_rt_%d_%d.gguf", tmp, arch, f16);
            int rc = collm_llm_model_save(a, path, test_shared_path("models/stories260K.gguf"), "rt",
                                    f16 ? COLLM_GGML_TYPE_F16 : COLLM_GGML_TYPE_F32);
            CHECK_MSG(rc == COLLM_OK, "%s", collm_last_error());
            collm_llm_model *r = collm_llm_model_load(path);
            CHECK_MSG(r != NULL, "%s", collm_last_error());
            if (!r) continue;
            const collm_llm_hparams *rh = collm_llm_model_hparams(r);
            CHECK(rh->arch == hp.arch && rh->n_vocab == V && rh->n_head_kv == 2 && rh->tied_output == hp.tied_output &&
                  rh->rope_neox == arch && rh->has_qkv_bias == arch);
            CHECK(collm_llm_model_n_params(r) == collm_llm_model_n_params(a));
            collm_llm_context *cr = collm_llm_context_create(r, 16, 16, pool);
            CHECK(collm_llm_forward(cr, toks, 6, NULL, NULL, -1, NULL, 0, lb) == COLLM_OK);
            double dd = max_abs_diff(la, lb, 6 * (size_t)V);
            CHECK_MSG(f16 ? dd < 1e-3 : dd == 0, "save/load arch %d f16 %d: %g", arch, f16, dd);
            collm_llm_context_free(cr);
            if (!f16) {
                // an F32 file in collm's order is used in place (no copy), copy-on-write:
                // changing a weight (training, a LoRA merge) leaves the file as it was
                CHECK(r->params_mapped && !r->quantised);
                const float w0 = r->params[0], wl = r->params[r->n_params - 1];
                r->params[0] += 1.0f;
                r->params[r->n_params - 1] -= 1.0f;
                collm_llm_model *r2 = collm_llm_model_load(path);
                CHECK(r2 && r2->params_mapped && r2->params[0] == w0 && r2->params[r2->n_params - 1] == wl &&
                      r2->params[0] == a->params[0]);
                collm_llm_model_free(r2);
            }
            collm_llm_model_free(r);
        }
        // vocab of the wrong size is refused
        snprintf(path, sizeof path, "%s/model_rt_bad.gguf", tmp);
        CHECK(collm_llm_model_save(a, path, test_shared_path("testvectors/tokenizer/ggml-vocab-llama-spm.gguf"), "x",
                             COLLM_GGML_TYPE_F32) == COLLM_ERR_ARG);
        collm_llm_context_free(ca);
        collm_llm_context_free(cb);
        collm_llm_context_free(cc);
        collm_llm_model_free(a);
        collm_llm_model_free(b);
        collm_llm_model_free(c);
    }
}

// Writes a copy of src with tensor `skip` left out, or with `reshape`'s
// dims swapped, or with the architecture renamed.
static int write_variant(const char *src, const char *dst, const char *skip, const char *reshape, const char *arch) {
    collm_gguf_file *f = collm_gguf_open(src);
    if (!f) return -1;
    collm_gguf_writer *w = collm_gguf_writer_create();
    int rc = 0;
    for (int64_t i = 0; i < collm_gguf_n_kv(f) && !rc; i++) rc = collm_gguf_writer_copy_kv(w, f, i);
    if (arch && !rc) rc = collm_gguf_writer_set_str(w, "general.architecture", arch);
    for (int64_t i = 0; i < collm_gguf_n_tensors(f) && !rc; i++) {
        const collm_gguf_tensor_info *t = collm_gguf_tensor(f, i);
        if (skip && strcmp(t->name, skip) == 0) continue;
        int64_t ne[COLLM_GGUF_MAX_DIMS];
        memcpy(ne, t->ne, sizeof ne);
        if (reshape && strcmp(t->name, reshape) == 0) {
            int64_t x = ne[0];
            ne[0] = ne[1];
            ne[1] = x;
        }
        rc = collm_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, ne, t->data);
    }
    if (!rc) rc = collm_gguf_writer_write(w, dst);
    collm_gguf_writer_free(w);
    collm_gguf_close(f);
    return rc;
}

static void expect_load_error(const char *path, const char *needle) {
    collm_clear_error();
    collm_llm_model *m = collm_llm_model_load(path);
    CHECK(m == NULL);
    collm_llm_model_free(m);
    CHECK_MSG(strstr(collm_last_error(), needle) != NULL, "error '%s' lacks '%s'", collm_last_error(), needle);
}

static void test_bad_models(void) {
    const char *tmp = test_tmp_dir();
    collm_mkdir_p(tmp);
    const char *src = test_shared_path("models/tiny-gqa-f32.gguf");
    char path[512];
    expect_load_error("/nonexistent/model.gguf", "/nonexistent/model.gguf");
    // truncated copy
    char *data = NULL;
    size_t size = 0;
    CHECK(collm_read_file(src, &data, &size) == COLLM_OK);
    snprintf(path, sizeof path, "%s/model_truncated.gguf", tmp);
    FILE *fp = fopen(path, "wb");
    if (fp && data) {
        fwrite(data, 1, size / 2, fp);
        fclose(fp);
        expect_load_error(path, "model_truncated.gguf");
    }
    free(data);
    snprintf(path, sizeof path, "%s/model_missing.gguf", tmp);
    CHECK(write_variant(src, path, "blk.1.ffn_up.weight", NULL, NULL) == 0);
    expect_load_error(path, "blk.1.ffn_up.weight");
    snprintf(path, sizeof path, "%s/model_shape.gguf", tmp);
    CHECK(write_variant(src, path, NULL, "blk.0.attn_k.weight", NULL) == 0);
    expect_load_error(path, "blk.0.attn_k.weight");
    snprintf(path, sizeof path, "%s/model_arch.gguf", tmp);
    CHECK(write_variant(src, path, NULL, NULL, "gpt2") == 0);
    expect_load_error(path, "gpt2");
    // a llama file relabelled qwen2 lacks the q/k/v biases
    snprintf(path, sizeof path, "%s/model_qwen_nobias.gguf", tmp);
    CHECK(write_variant(src, path, NULL, NULL, "qwen2") == 0);
    expect_load_error(path, "qwen2.embedding_length"); // keys are per-architecture
}

int main(void) {
    collm_pool *pool = collm_pool_create(2);
    collm_blas_set_threads(1);
    test_conformance("stories260K", "stories260K", 1e-4, pool);
    test_conformance("tiny-gqa-f32", "tiny-gqa-f32", 1e-4, pool);
    test_conformance("llama-2-tiny-random", "llama-2-tiny-random", 2e-4, pool);
    test_conformance("qwen2-tiny-random", "qwen2-tiny-random", 5e-4, pool);
    // tiny-gqa-f16's own logits are held back from testvectors (README); when
    // present they are used, else the F16 model (the F32 draws rounded to F16)
    // is compared with the F32 model's llama.cpp logits.
    struct stat st;
    if (stat(test_shared_path("models/tiny-gqa-f16.gguf"), &st) != 0)
        printf("conformance tiny-gqa-f16: model held back from this tree, skipped (F16 covered by llama-2-tiny-random)\n");
    else if (stat(test_shared_path("testvectors/logits/tiny-gqa-f16/logits.json"), &st) == 0)
        test_conformance("tiny-gqa-f16", "tiny-gqa-f16", 1e-2, pool);
    else
        test_conformance("tiny-gqa-f16", "tiny-gqa-f32", 3e-2, pool);
    test_cache_and_slots("models/stories260K.gguf", pool);
    test_cache_and_slots("models/tiny-gqa-f32.gguf", pool);
    test_greedy(pool);
    test_init_save_load(pool);
    test_bad_models();
    collm_pool_free(pool);
    return test_report();
}
