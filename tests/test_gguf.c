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
#include <unistd.h>

// Values read by hand from /work/shared/models/X.json.
typedef struct {
    const char *file;
    const char *arch;
    int64_t n_embd, n_layer, n_head, n_head_kv, n_ff, n_ctx;
    int64_t n_tensors;
    int64_t n_vocab;
    const char *tensor0;      // first tensor: name, ne, type
    int64_t tensor0_ne[2];
    collm_ggml_type tensor0_type;
    const char *tensor_last;
    collm_ggml_type tensor_last_type;
} model_expect;

static const model_expect models[] = {
    {"stories260K.gguf", "llama", 64, 5, 8, 4, 172, 2048, 48, 512, "token_embd.weight", {64, 512}, COLLM_GGML_TYPE_F32,
     "blk.4.ffn_norm.weight", COLLM_GGML_TYPE_F32},
    {"llama-2-tiny-random.gguf", "llama", 8, 1, 2, 2, 32, 4096, 12, 32000, "token_embd.weight", {8, 32000}, COLLM_GGML_TYPE_F16,
     "output.weight", COLLM_GGML_TYPE_F16},
    {"tiny-gqa-f32.gguf", "llama", 64, 2, 4, 2, 96, 256, 21, 512, "token_embd.weight", {64, 512}, COLLM_GGML_TYPE_F32,
     "output.weight", COLLM_GGML_TYPE_F32},
    {"qwen2-tiny-random.gguf", "qwen2", 64, 2, 4, 2, 160, 256, 26, 151936, "token_embd.weight", {64, 151936}, COLLM_GGML_TYPE_F16,
     "output_norm.weight", COLLM_GGML_TYPE_F32},
};

static int64_t get_i64_or(const collm_gguf_file *f, const char *key, int64_t def) {
    int64_t v;
    return collm_gguf_get_i64(f, key, &v) == COLLM_OK ? v : def;
}

static void test_models(void) {
    for (size_t m = 0; m < sizeof models / sizeof models[0]; m++) {
        const model_expect *e = &models[m];
        char rel[256];
        snprintf(rel, sizeof rel, "models/%s", e->file);
        collm_gguf_file *f = collm_gguf_open(test_shared_path(rel));
        CHECK_MSG(f != NULL, "%s: %s", e->file, collm_last_error());
        if (!f) continue;
        CHECK(collm_gguf_version(f) == 3 || collm_gguf_version(f) == 2);
        CHECK(collm_gguf_alignment(f) == 32);
        char *arch = collm_gguf_get_str_dup(f, "general.architecture");
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
        CHECK(collm_gguf_get_u32(f, key, &ctx) == COLLM_OK && ctx == e->n_ctx);
        free(arch);
        CHECK(collm_gguf_n_tensors(f) == e->n_tensors);
        int64_t ti = collm_gguf_find_key(f, "tokenizer.ggml.tokens");
        CHECK(ti >= 0 && collm_gguf_kv_type(f, ti) == COLLM_GGUF_TYPE_ARRAY && collm_gguf_arr_type(f, ti) == COLLM_GGUF_TYPE_STRING);
        CHECK((int64_t)collm_gguf_arr_n(f, ti) == e->n_vocab);
        CHECK(collm_gguf_arr_data(f, ti) == NULL);
        const collm_gguf_tensor_info *t0 = collm_gguf_tensor(f, 0);
        CHECK(t0 && strcmp(t0->name, e->tensor0) == 0 && t0->n_dims == 2 && t0->ne[0] == e->tensor0_ne[0] &&
              t0->ne[1] == e->tensor0_ne[1] && t0->type == e->tensor0_type);
        CHECK(collm_gguf_find_tensor(f, e->tensor0) == t0);
        const collm_gguf_tensor_info *tl = collm_gguf_tensor(f, collm_gguf_n_tensors(f) - 1);
        CHECK(tl && strcmp(tl->name, e->tensor_last) == 0 && tl->type == e->tensor_last_type);
        CHECK(collm_gguf_find_tensor(f, "no.such.tensor") == NULL);
        CHECK(collm_gguf_find_key(f, "no.such.key") < 0);
        // every tensor's data lies inside the file, aligned
        int ok = 1;
        for (int64_t i = 0; i < collm_gguf_n_tensors(f); i++) {
            const collm_gguf_tensor_info *t = collm_gguf_tensor(f, i);
            if (t->offset % 32 || t->n_bytes != collm_ggml_type_size_for(t->type, collm_gguf_tensor_n_elements(t))) ok = 0;
        }
        CHECK(ok);
        collm_gguf_close(f);
    }

    // specific values from the jsons
    collm_gguf_file *f = collm_gguf_open(test_shared_path("models/tiny-gqa-f32.gguf"));
    CHECK(f != NULL);
    if (f) {
        float base = 0, eps = 0;
        CHECK(collm_gguf_get_f32(f, "llama.rope.freq_base", &base) == COLLM_OK && base == 500000.0f);
        CHECK(collm_gguf_get_f32(f, "llama.attention.layer_norm_rms_epsilon", &eps) == COLLM_OK && eps == 1e-6f);
        uint32_t sep = 0;
        CHECK(collm_gguf_get_u32(f, "tokenizer.ggml.seperator_token_id", &sep) == COLLM_OK && sep == 4294967295u);
        const collm_gguf_tensor_info *k = collm_gguf_find_tensor(f, "blk.0.attn_k.weight");
        CHECK(k && k->ne[0] == 64 && k->ne[1] == 32 && k->type == COLLM_GGML_TYPE_F32);
        const collm_gguf_tensor_info *d = collm_gguf_find_tensor(f, "blk.1.ffn_down.weight");
        CHECK(d && d->ne[0] == 96 && d->ne[1] == 64);
        // wrong-type getters name the key
        CHECK(collm_gguf_get_u32(f, "general.architecture", &sep) != COLLM_OK && strstr(collm_last_error(), "general.architecture"));
        CHECK(collm_gguf_get_f32(f, "missing.key", &base) != COLLM_OK && strstr(collm_last_error(), "missing.key"));
        uint64_t len;
        const char *s = collm_gguf_arr_str(f, collm_gguf_find_key(f, "tokenizer.ggml.tokens"), 1, &len);
        CHECK(s && len == 3 && memcmp(s, "<s>", 3) == 0);
        collm_gguf_close(f);
    }

    // vocab-only tokenizer files (no tensors)
    const char *vocabs[] = {"testvectors/tokenizer/ggml-vocab-gpt-2.gguf", "testvectors/tokenizer/ggml-vocab-llama-spm.gguf",
                            "testvectors/tokenizer/ggml-vocab-qwen2-rebuilt.gguf"};
    const int64_t vocab_n[] = {50257, 32000, 151936};
    for (int v = 0; v < 3; v++) {
        collm_gguf_file *g = collm_gguf_open(test_shared_path(vocabs[v]));
        CHECK_MSG(g != NULL, "%s: %s", vocabs[v], collm_last_error());
        if (!g) continue;
        CHECK(collm_gguf_n_tensors(g) == 0);
        CHECK((int64_t)collm_gguf_arr_n(g, collm_gguf_find_key(g, "tokenizer.ggml.tokens")) == vocab_n[v]);
        collm_gguf_close(g);
    }
}

static const char *tmp_path(const char *name) {
    static char bufs[4][512];
    static int next;
    char *b = bufs[next++ % 4];
    snprintf(b, sizeof bufs[0], "%s/%s", test_tmp_dir(), name);
    return b;
}

// --- half precision against the compiler's _Float16 (an independent conversion) ---

static void test_half(void) {
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        _Float16 ref;
        uint16_t hh = (uint16_t)h;
        memcpy(&ref, &hh, 2);
        float a = collm_f16_to_f32(hh), b = (float)ref;
        uint32_t ab, bb;
        memcpy(&ab, &a, 4);
        memcpy(&bb, &b, 4);
        int same = isnan(b) ? isnan(a) && signbit(a) == signbit(b) : ab == bb;
        if (!same && bad++ < 5) fprintf(stderr, "f16 %04x: %g vs %g\n", h, (double)a, (double)b);
    }
    CHECK(bad == 0);
    CHECK(collm_f16_to_f32(0x0001) == 0x1p-24f);     // smallest subnormal
    CHECK(collm_f16_to_f32(0x03ff) == 0x3ffp-24f);   // largest subnormal
    CHECK(collm_f16_to_f32(0x7bff) == 65504.0f);
    CHECK(isinf(collm_f16_to_f32(0xfc00)) && collm_f16_to_f32(0xfc00) < 0);
    CHECK(isnan(collm_f16_to_f32(0x7e00)));

    // f32 -> f16: every f16 value, the midpoints between neighbours (ties to
    // even), values just off the midpoints, a seeded random sweep and specials
    bad = 0;
    uint64_t seed = 12345;
    for (uint32_t i = 0; i < 400000; i++) {
        float x;
        if (i < 65536) {
            uint16_t hh = (uint16_t)i;
            x = collm_f16_to_f32(hh);
            if (i & 1) { // midpoint-ish: nudge towards the next value
                float y = collm_f16_to_f32((uint16_t)(hh + 1));
                if (isfinite(x) && isfinite(y)) x = (x + y) * 0.5f;
            }
        } else {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            uint32_t bits = (uint32_t)(seed >> 32);
            // concentrate exponents around the f16 range
            bits = (bits & 0x807fffff) | ((uint32_t)(96 + (bits >> 23) % 48) << 23);
            memcpy(&x, &bits, 4);
        }
        _Float16 ref = (_Float16)x;
        uint16_t rb;
        memcpy(&rb, &ref, 2);
        uint16_t got = collm_f32_to_f16(x);
        int same = isnan(x) ? (got & 0x7c00) == 0x7c00 && (got & 0x3ff) != 0 : got == rb;
        if (!same && bad++ < 5) fprintf(stderr, "f32->f16 %a: %04x vs %04x\n", (double)x, got, rb);
    }
    CHECK(bad == 0);
    CHECK(collm_f32_to_f16(65520.0f) == 0x7c00); // rounds up to inf
    CHECK(collm_f32_to_f16(65519.0f) == 0x7bff);
    CHECK(collm_f32_to_f16(1e-9f) == 0);
    CHECK(collm_f32_to_f16(-0.0f) == 0x8000);
    CHECK(collm_f32_to_f16(0x1p-25f) == 0);        // tie with 0: even
    CHECK(collm_f32_to_f16(0x1.8p-24f) == 0x0002); // tie between 1 and 2 subnormal units: even
    uint16_t hn = collm_f32_to_f16(NAN);
    CHECK((hn & 0x7c00) == 0x7c00 && (hn & 0x3ff) != 0);

    // bf16: reference by comparing the two neighbouring candidates in double
    bad = 0;
    seed = 99;
    for (int i = 0; i < 200000; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        uint32_t bits = (uint32_t)(seed >> 32);
        if (i < 1000) bits = (bits & 0xffff0000u) | 0x8000u; // exact ties
        float x;
        memcpy(&x, &bits, 4);
        if (!isfinite(x)) continue;
        uint32_t lo = bits & 0xffff0000u, hi = lo + 0x10000u;
        float flo, fhi;
        memcpy(&flo, &lo, 4);
        memcpy(&fhi, &hi, 4);
        double dlo = fabs((double)x - (double)flo), dhi = isfinite(fhi) ? fabs((double)fhi - (double)x) : INFINITY;
        if (!isfinite(fhi) && (bits & 0x7fffffff) >= 0x7f7f8000u) dhi = dlo; // rounds to inf at/after the halfway point
        uint16_t want = (uint16_t)((dlo < dhi || (dlo == dhi && ((lo >> 16) & 1) == 0)) ? lo >> 16 : hi >> 16);
        uint16_t got = collm_f32_to_bf16(x);
        if (got != want && bad++ < 5) fprintf(stderr, "bf16 %a: %04x vs %04x\n", (double)x, got, want);
        if (collm_bf16_to_f32(got) != (float)collm_bf16_to_f32(want)) bad++;
    }
    CHECK(bad == 0);
    CHECK(collm_bf16_to_f32(0x3f80) == 1.0f);
    CHECK(isnan(collm_bf16_to_f32(collm_f32_to_bf16(NAN))));
}

// --- block formats, built by hand ---

static void test_blocks(void) {
    // Q8_0: 2 blocks (64 elements), d = 0.5 and -0.25
    unsigned char q8[2 * 34];
    uint16_t d0 = collm_f32_to_f16(0.5f), d1 = collm_f32_to_f16(-0.25f);
    memcpy(q8, &d0, 2);
    memcpy(q8 + 34, &d1, 2);
    for (int j = 0; j < 32; j++) {
        q8[2 + j] = (unsigned char)(int8_t)(j * 8 - 128);
        q8[36 + j] = (unsigned char)(int8_t)(127 - j);
    }
    // Q4_0: 1 block, d = 2; byte j holds element j (low) and j+16 (high)
    unsigned char q4[18];
    uint16_t d4 = collm_f32_to_f16(2.0f);
    memcpy(q4, &d4, 2);
    for (int j = 0; j < 16; j++) q4[2 + j] = (unsigned char)(j | ((15 - j) << 4));

    collm_gguf_writer *w = collm_gguf_writer_create();
    int64_t ne8[2] = {32, 2}, ne4[1] = {32};
    CHECK(collm_gguf_writer_add_tensor(w, "q8", COLLM_GGML_TYPE_Q8_0, 2, ne8, q8) == COLLM_OK);
    CHECK(collm_gguf_writer_add_tensor(w, "q4", COLLM_GGML_TYPE_Q4_0, 1, ne4, q4) == COLLM_OK);
    int64_t bad_ne[1] = {31};
    CHECK(collm_gguf_writer_add_tensor(w, "q4bad", COLLM_GGML_TYPE_Q4_0, 1, bad_ne, q4) != COLLM_OK);
    const char *path = tmp_path("blocks.gguf");
    CHECK(collm_gguf_writer_write(w, path) == COLLM_OK);
    collm_gguf_writer_free(w);
    collm_gguf_file *f = collm_gguf_open(path);
    CHECK_MSG(f != NULL, "%s", collm_last_error());
    if (!f) return;
    float out[64];
    const collm_gguf_tensor_info *t8 = collm_gguf_find_tensor(f, "q8");
    CHECK(t8 && t8->n_bytes == 68 && collm_gguf_tensor_to_f32(t8, out) == COLLM_OK);
    int ok = 1;
    for (int j = 0; j < 32; j++) {
        if (out[j] != (float)(j * 8 - 128) * 0.5f) ok = 0;
        if (out[32 + j] != (float)(127 - j) * -0.25f) ok = 0;
    }
    CHECK(ok);
    const collm_gguf_tensor_info *t4 = collm_gguf_find_tensor(f, "q4");
    CHECK(t4 && t4->n_bytes == 18 && collm_gguf_tensor_to_f32(t4, out) == COLLM_OK);
    ok = 1;
    for (int j = 0; j < 16; j++) {
        if (out[j] != (float)(j - 8) * 2.0f) ok = 0;
        if (out[16 + j] != (float)(15 - j - 8) * 2.0f) ok = 0;
    }
    CHECK(ok);
    CHECK(out[0] == -16.0f && out[16] == 14.0f && out[31] == -16.0f);
    collm_gguf_close(f);
    CHECK(collm_ggml_type_size_for(COLLM_GGML_TYPE_Q8_0, 64) == 68);
    CHECK(collm_ggml_type_size_for(COLLM_GGML_TYPE_Q4_0, 64) == 36);
    CHECK(collm_ggml_type_size_for(COLLM_GGML_TYPE_Q4_0, 33) == 0);
    CHECK(collm_ggml_type_size_for(COLLM_GGML_TYPE_F16, 10) == 20);
    CHECK(collm_ggml_type_size_for((collm_ggml_type)99, 10) == 0);
    CHECK(collm_gguf_tensor_type_supported(COLLM_GGML_TYPE_Q4_0) && collm_gguf_tensor_type_supported(COLLM_GGML_TYPE_Q5_1) &&
          collm_gguf_tensor_type_supported(COLLM_GGML_TYPE_Q6_K) && !collm_gguf_tensor_type_supported((collm_ggml_type)16));
}

// --- F16 tensors decoded against _Float16; F32 model re-encoded as F16 ---

static void test_f16_tensors(void) {
    collm_gguf_file *f = collm_gguf_open(test_shared_path("models/llama-2-tiny-random.gguf"));
    CHECK(f != NULL);
    if (f) {
        const collm_gguf_tensor_info *t = collm_gguf_find_tensor(f, "token_embd.weight");
        int64_t n = collm_gguf_tensor_n_elements(t);
        float *out = malloc((size_t)n * sizeof(float));
        CHECK(collm_gguf_tensor_to_f32(t, out) == COLLM_OK);
        const _Float16 *raw = t->data; // 32-aligned in the mapping
        int bad = 0, nonzero = 0;
        for (int64_t i = 0; i < n; i++) {
            if (out[i] != (float)raw[i]) bad++;
            if (out[i] != 0) nonzero++;
        }
        CHECK(bad == 0);
        CHECK(nonzero > n / 2);
        free(out);
        collm_gguf_close(f);
    }

    // tiny-gqa-f32 written as F16 (and BF16) and read back: within rounding
    collm_gguf_file *src = collm_gguf_open(test_shared_path("models/tiny-gqa-f32.gguf"));
    CHECK(src != NULL);
    if (!src) return;
    collm_gguf_writer *w = collm_gguf_writer_create();
    for (int64_t i = 0; i < collm_gguf_n_kv(src); i++) CHECK(collm_gguf_writer_copy_kv(w, src, i) == COLLM_OK);
    for (int64_t i = 0; i < collm_gguf_n_tensors(src); i++) {
        const collm_gguf_tensor_info *t = collm_gguf_tensor(src, i);
        collm_ggml_type ty = t->n_dims == 2 ? (i % 2 ? COLLM_GGML_TYPE_F16 : COLLM_GGML_TYPE_BF16) : COLLM_GGML_TYPE_F32;
        CHECK(collm_gguf_writer_add_tensor_f32(w, t->name, ty, t->n_dims, t->ne, t->data) == COLLM_OK);
    }
    const char *path = tmp_path("tiny-gqa-half.gguf");
    CHECK(collm_gguf_writer_write(w, path) == COLLM_OK);
    collm_gguf_writer_free(w);
    collm_gguf_file *g = collm_gguf_open(path);
    CHECK_MSG(g != NULL, "%s", collm_last_error());
    if (g) {
        CHECK(collm_gguf_n_tensors(g) == collm_gguf_n_tensors(src));
        double worst_f16 = 0, worst_bf16 = 0;
        for (int64_t i = 0; i < collm_gguf_n_tensors(src); i++) {
            const collm_gguf_tensor_info *a = collm_gguf_tensor(src, i), *b = collm_gguf_tensor(g, i);
            int64_t n = collm_gguf_tensor_n_elements(a);
            float *fb = malloc((size_t)n * sizeof(float));
            CHECK(collm_gguf_tensor_to_f32(b, fb) == COLLM_OK);
            const float *fa = a->data;
            for (int64_t k = 0; k < n; k++) {
                double rel = fabs((double)fa[k] - fb[k]) / (fabs(fa[k]) + 1e-30);
                if (b->type == COLLM_GGML_TYPE_F16 && fabs(fa[k]) > 0x1p-14 && rel > worst_f16) worst_f16 = rel;
                if (b->type == COLLM_GGML_TYPE_BF16 && rel > worst_bf16) worst_bf16 = rel;
                if (b->type == COLLM_GGML_TYPE_F32 && fa[k] != fb[k]) worst_f16 = 1;
            }
            free(fb);
        }
        CHECK(worst_f16 <= 0x1p-11); // half an ulp of an 11-bit significand
        CHECK(worst_f16 > 0);
        CHECK(worst_bf16 <= 0x1p-8);
        collm_gguf_close(g);
    }
    collm_gguf_close(src);
}

// --- write -> read round trip of every metadata type ---

static void test_metadata_roundtrip(void) {
    collm_gguf_writer *w = collm_gguf_writer_create();
    uint8_t u8 = 250;
    int8_t i8 = -100;
    uint16_t u16 = 65000;
    int16_t i16 = -30000;
    int64_t i64 = -((int64_t)1 << 40);
    double f64 = 3.141592653589793;
    CHECK(collm_gguf_writer_set_scalar(w, "t.u8", COLLM_GGUF_TYPE_UINT8, &u8) == COLLM_OK);
    CHECK(collm_gguf_writer_set_scalar(w, "t.i8", COLLM_GGUF_TYPE_INT8, &i8) == COLLM_OK);
    CHECK(collm_gguf_writer_set_scalar(w, "t.u16", COLLM_GGUF_TYPE_UINT16, &u16) == COLLM_OK);
    CHECK(collm_gguf_writer_set_scalar(w, "t.i16", COLLM_GGUF_TYPE_INT16, &i16) == COLLM_OK);
    CHECK(collm_gguf_writer_set_u32(w, "t.u32", 4000000000u) == COLLM_OK);
    CHECK(collm_gguf_writer_set_i32(w, "t.i32", -2000000000) == COLLM_OK);
    CHECK(collm_gguf_writer_set_u64(w, "t.u64", 18000000000000000000ull) == COLLM_OK);
    CHECK(collm_gguf_writer_set_scalar(w, "t.i64", COLLM_GGUF_TYPE_INT64, &i64) == COLLM_OK);
    CHECK(collm_gguf_writer_set_f32(w, "t.f32", 0.1f) == COLLM_OK);
    CHECK(collm_gguf_writer_set_scalar(w, "t.f64", COLLM_GGUF_TYPE_FLOAT64, &f64) == COLLM_OK);
    CHECK(collm_gguf_writer_set_bool(w, "t.bool", 1) == COLLM_OK);
    CHECK(collm_gguf_writer_set_str(w, "t.str", "héllo \"world\"") == COLLM_OK);
    CHECK(collm_gguf_writer_set_str(w, "t.empty", "") == COLLM_OK);
    CHECK(collm_gguf_writer_set_scalar(w, "t.bad", COLLM_GGUF_TYPE_STRING, "x") != COLLM_OK);
    const char *strs[] = {"a", "", "long string with spaces", "\xe2\x96\x81tok"};
    CHECK(collm_gguf_writer_set_arr_str(w, "t.arr_str", strs, 4) == COLLM_OK);
    CHECK(collm_gguf_writer_set_arr_str(w, "t.arr_str_empty", strs, 0) == COLLM_OK);
    uint8_t au8[3] = {1, 2, 255};
    int8_t ai8[3] = {-1, 0, 1};
    uint16_t au16[2] = {1, 65535};
    int16_t ai16[2] = {-32768, 32767};
    uint32_t au32[3] = {7, 8, 4294967295u};
    int32_t ai32[5] = {-5, 0, 5, 6, 7};
    float af32[3] = {1.5f, -2.25f, 1e-30f};
    uint8_t abool[2] = {1, 0};
    uint64_t au64[2] = {0, UINT64_MAX};
    int64_t ai64[2] = {INT64_MIN, INT64_MAX};
    double af64[2] = {1e300, -1e-300};
    struct { const char *key; collm_gguf_type t; const void *d; uint64_t n; size_t es; } arrs[] = {
        {"a.u8", COLLM_GGUF_TYPE_UINT8, au8, 3, 1},    {"a.i8", COLLM_GGUF_TYPE_INT8, ai8, 3, 1},
        {"a.u16", COLLM_GGUF_TYPE_UINT16, au16, 2, 2}, {"a.i16", COLLM_GGUF_TYPE_INT16, ai16, 2, 2},
        {"a.u32", COLLM_GGUF_TYPE_UINT32, au32, 3, 4}, {"a.i32", COLLM_GGUF_TYPE_INT32, ai32, 5, 4},
        {"a.f32", COLLM_GGUF_TYPE_FLOAT32, af32, 3, 4}, {"a.bool", COLLM_GGUF_TYPE_BOOL, abool, 2, 1},
        {"a.u64", COLLM_GGUF_TYPE_UINT64, au64, 2, 8}, {"a.i64", COLLM_GGUF_TYPE_INT64, ai64, 2, 8},
        {"a.f64", COLLM_GGUF_TYPE_FLOAT64, af64, 2, 8},
    };
    int n_arrs = (int)(sizeof arrs / sizeof arrs[0]);
    for (int k = 0; k < n_arrs; k++) CHECK(collm_gguf_writer_set_arr(w, arrs[k].key, arrs[k].t, arrs[k].d, arrs[k].n) == COLLM_OK);
    CHECK(collm_gguf_writer_set_arr(w, "a.bad", COLLM_GGUF_TYPE_STRING, strs, 1) != COLLM_OK);
    // replacing keeps the position and takes the new value and type
    CHECK(collm_gguf_writer_set_u32(w, "t.replace", 1) == COLLM_OK);
    CHECK(collm_gguf_writer_set_str(w, "t.replace", "now a string") == COLLM_OK);
    const char *path = tmp_path("meta.gguf");
    CHECK(collm_gguf_writer_write(w, path) == COLLM_OK);
    collm_gguf_writer_free(w);

    collm_gguf_file *f = collm_gguf_open(path);
    CHECK_MSG(f != NULL, "%s", collm_last_error());
    if (!f) return;
    CHECK(collm_gguf_version(f) == 3 && collm_gguf_n_tensors(f) == 0);
    CHECK(collm_gguf_n_kv(f) == 16 + n_arrs);
    CHECK_STR(collm_gguf_key(f, 0), "t.u8");
    int64_t v = 0;
    uint32_t u = 0;
    float x = 0;
    int b = 0;
    CHECK(collm_gguf_get_i64(f, "t.u8", &v) == COLLM_OK && v == 250);
    CHECK(collm_gguf_get_i64(f, "t.i8", &v) == COLLM_OK && v == -100);
    CHECK(collm_gguf_get_i64(f, "t.u16", &v) == COLLM_OK && v == 65000);
    CHECK(collm_gguf_get_i64(f, "t.i16", &v) == COLLM_OK && v == -30000);
    CHECK(collm_gguf_get_u32(f, "t.u32", &u) == COLLM_OK && u == 4000000000u);
    CHECK(collm_gguf_get_i64(f, "t.i32", &v) == COLLM_OK && v == -2000000000);
    CHECK(collm_gguf_get_u32(f, "t.i32", &u) != COLLM_OK && strstr(collm_last_error(), "t.i32")); // negative: no u32
    CHECK(collm_gguf_get_i64(f, "t.u64", &v) != COLLM_OK); // does not fit
    CHECK(collm_gguf_get_i64(f, "t.i64", &v) == COLLM_OK && v == i64);
    CHECK(collm_gguf_get_f32(f, "t.f32", &x) == COLLM_OK && x == 0.1f);
    CHECK(collm_gguf_get_f32(f, "t.f64", &x) == COLLM_OK && x == (float)f64);
    CHECK(collm_gguf_get_bool(f, "t.bool", &b) == COLLM_OK && b == 1);
    CHECK(collm_gguf_get_bool(f, "t.u8", &b) != COLLM_OK);
    CHECK(collm_gguf_kv_type(f, collm_gguf_find_key(f, "t.u16")) == COLLM_GGUF_TYPE_UINT16);
    CHECK(collm_gguf_kv_type(f, collm_gguf_find_key(f, "t.f64")) == COLLM_GGUF_TYPE_FLOAT64);
    char *s = collm_gguf_get_str_dup(f, "t.str");
    CHECK_STR(s, "héllo \"world\"");
    free(s);
    s = collm_gguf_get_str_dup(f, "t.empty");
    CHECK_STR(s, "");
    free(s);
    s = collm_gguf_get_str_dup(f, "t.replace");
    CHECK_STR(s, "now a string");
    free(s);
    CHECK(collm_gguf_find_key(f, "t.replace") == collm_gguf_n_kv(f) - 1); // added last, replaced in place
    int64_t ki = collm_gguf_find_key(f, "t.arr_str");
    CHECK(collm_gguf_arr_type(f, ki) == COLLM_GGUF_TYPE_STRING && collm_gguf_arr_n(f, ki) == 4);
    int ok = 1;
    for (uint64_t j = 0; j < 4; j++) {
        uint64_t len = 99;
        const char *e = collm_gguf_arr_str(f, ki, j, &len);
        if (!e || len != strlen(strs[j]) || memcmp(e, strs[j], (size_t)len) != 0) ok = 0;
    }
    CHECK(ok);
    uint64_t len;
    CHECK(collm_gguf_arr_str(f, ki, 4, &len) == NULL);
    CHECK(collm_gguf_arr_n(f, collm_gguf_find_key(f, "t.arr_str_empty")) == 0);
    for (int k = 0; k < n_arrs; k++) {
        int64_t i = collm_gguf_find_key(f, arrs[k].key);
        CHECK(collm_gguf_kv_type(f, i) == COLLM_GGUF_TYPE_ARRAY && collm_gguf_arr_type(f, i) == arrs[k].t && collm_gguf_arr_n(f, i) == arrs[k].n);
        const void *d = collm_gguf_arr_data(f, i);
        CHECK_MSG(d && memcmp(d, arrs[k].d, arrs[k].n * arrs[k].es) == 0, "%s", arrs[k].key);
    }
    char buf[256];
    collm_gguf_format_value(f, collm_gguf_find_key(f, "t.i16"), buf, sizeof buf);
    CHECK_STR(buf, "-30000");
    collm_gguf_format_value(f, collm_gguf_find_key(f, "t.str"), buf, sizeof buf);
    CHECK_STR(buf, "\"héllo \\\"world\\\"\"");
    collm_gguf_format_value(f, collm_gguf_find_key(f, "a.i32"), buf, sizeof buf);
    CHECK_STR(buf, "[i32 x 5]");
    collm_gguf_format_array_preview(f, collm_gguf_find_key(f, "a.i32"), 3, buf, sizeof buf);
    CHECK_STR(buf, "[i32 x 5] -5, 0, 5, ...");
    collm_gguf_format_array_preview(f, collm_gguf_find_key(f, "t.arr_str"), 2, buf, sizeof buf);
    CHECK_STR(buf, "[str x 4] \"a\", \"\", ...");
    collm_gguf_format_value(f, collm_gguf_find_key(f, "t.bool"), buf, 3); // truncation stays NUL-terminated
    CHECK(strlen(buf) <= 2);
    collm_gguf_close(f);
}

// --- tensors of every type, 1..4 dims, with a non-default alignment ---

static void test_tensor_roundtrip(void) {
    for (int pass = 0; pass < 2; pass++) {
        uint32_t align = pass ? 64 : 32;
        collm_gguf_writer *w = collm_gguf_writer_create();
        if (pass) CHECK(collm_gguf_writer_set_u32(w, "general.alignment", align) == COLLM_OK);
        unsigned char bytes[4096];
        for (int i = 0; i < 4096; i++) bytes[i] = (unsigned char)(i * 7 + 3);
        struct { const char *name; collm_ggml_type t; int nd; int64_t ne[4]; } ts[] = {
            {"f32.1d", COLLM_GGML_TYPE_F32, 1, {5, 1, 1, 1}},      {"f16.2d", COLLM_GGML_TYPE_F16, 2, {3, 7, 1, 1}},
            {"bf16.3d", COLLM_GGML_TYPE_BF16, 3, {2, 3, 4, 1}},    {"q8.4d", COLLM_GGML_TYPE_Q8_0, 4, {32, 2, 1, 3}},
            {"q4.2d", COLLM_GGML_TYPE_Q4_0, 2, {64, 3, 1, 1}},      {"i32.1d", COLLM_GGML_TYPE_I32, 1, {9, 1, 1, 1}},
            {"q4_1.1d", COLLM_GGML_TYPE_Q4_1, 1, {32, 1, 1, 1}},
        };
        int nt = (int)(sizeof ts / sizeof ts[0]);
        for (int k = 0; k < nt; k++) CHECK(collm_gguf_writer_add_tensor(w, ts[k].name, ts[k].t, ts[k].nd, ts[k].ne, bytes) == COLLM_OK);
        CHECK(collm_gguf_writer_add_tensor(w, "f32.1d", COLLM_GGML_TYPE_F32, 1, ts[0].ne, bytes) != COLLM_OK); // duplicate
        CHECK(collm_gguf_writer_add_tensor(w, "0123456789012345678901234567890123456789012345678901234567890123", COLLM_GGML_TYPE_F32, 1,
                                     ts[0].ne, bytes) != COLLM_OK); // 64-byte name
        int64_t zero[1] = {0};
        CHECK(collm_gguf_writer_add_tensor(w, "zero", COLLM_GGML_TYPE_F32, 1, zero, bytes) != COLLM_OK);
        CHECK(collm_gguf_writer_add_tensor(w, "dims", COLLM_GGML_TYPE_F32, 5, ts[0].ne, bytes) != COLLM_OK);
        const char *path = tmp_path("tensors.gguf");
        CHECK(collm_gguf_writer_write(w, path) == COLLM_OK);
        collm_gguf_writer_free(w);
        collm_gguf_file *f = collm_gguf_open(path);
        CHECK_MSG(f != NULL, "%s", collm_last_error());
        if (!f) continue;
        CHECK(collm_gguf_alignment(f) == align);
        CHECK(collm_gguf_data_offset(f) % align == 0);
        CHECK(collm_gguf_n_tensors(f) == nt);
        size_t end = 0;
        for (int k = 0; k < nt; k++) {
            const collm_gguf_tensor_info *t = collm_gguf_tensor(f, k);
            CHECK_STR(t->name, ts[k].name);
            int same = t->type == ts[k].t && t->n_dims == ts[k].nd;
            for (int d = 0; d < 4; d++) same = same && t->ne[d] == ts[k].ne[d];
            CHECK(same);
            CHECK(t->offset % align == 0 && ((uintptr_t)t->data - (uintptr_t)collm_gguf_tensor(f, 0)->data) == t->offset);
            CHECK(memcmp(t->data, bytes, t->n_bytes) == 0);
            end = collm_gguf_data_offset(f) + t->offset + t->n_bytes;
        }
        CHECK(collm_gguf_file_size(f) >= end && collm_gguf_file_size(f) % align == 0); // ends padded, like ggml
        float out[40];
        CHECK(collm_gguf_tensor_to_f32(collm_gguf_find_tensor(f, "i32.1d"), out) != COLLM_OK); // not decodable
        collm_gguf_close(f);
    }
    // bad alignment is refused at write time
    collm_gguf_writer *w = collm_gguf_writer_create();
    CHECK(collm_gguf_writer_set_u32(w, "general.alignment", 48) == COLLM_OK);
    CHECK(collm_gguf_writer_write(w, tmp_path("badalign.gguf")) != COLLM_OK && strstr(collm_last_error(), "general.alignment"));
    collm_gguf_writer_free(w);
}

// --- namespaces: a writer prefix, read back through collm_gguf_open_ns ---

static void test_namespaces(void) {
    collm_gguf_writer *w = collm_gguf_writer_create();
    float a[4] = {1, 2, 3, 4}, b[4] = {5, 6, 7, 8};
    int64_t ne[1] = {4};
    CHECK(collm_gguf_writer_set_u32(w, "k", 1) == COLLM_OK);
    CHECK(collm_gguf_writer_add_tensor(w, "t", COLLM_GGML_TYPE_F32, 1, ne, a) == COLLM_OK);
    CHECK(collm_gguf_writer_set_ns(w, "fuse.0.") == COLLM_OK);
    CHECK(collm_gguf_writer_set_u32(w, "k", 2) == COLLM_OK); // the same short name, another key
    CHECK(collm_gguf_writer_add_tensor(w, "t", COLLM_GGML_TYPE_F32, 1, ne, b) == COLLM_OK);
    CHECK(collm_gguf_writer_set_ns(w, NULL) == COLLM_OK);
    CHECK(collm_gguf_writer_add_tensor(w, "t", COLLM_GGML_TYPE_F32, 1, ne, b) != COLLM_OK); // "t" exists outside
    const char *path = tmp_path("ns.gguf");
    CHECK(collm_gguf_writer_write(w, path) == COLLM_OK);
    collm_gguf_writer_free(w);
    collm_gguf_file *f = collm_gguf_open(path), *g = collm_gguf_open_ns(path, "fuse.0.");
    CHECK(f && g);
    if (f && g) {
        uint32_t v = 0;
        CHECK(collm_gguf_get_u32(f, "k", &v) == COLLM_OK && v == 1);
        CHECK(collm_gguf_get_u32(f, "fuse.0.k", &v) == COLLM_OK && v == 2);
        CHECK(collm_gguf_get_u32(g, "k", &v) == COLLM_OK && v == 2);
        CHECK(collm_gguf_find_key(g, "fuse.0.k") < 0); // names are relative to the namespace
        const collm_gguf_tensor_info *t = collm_gguf_find_tensor(g, "t");
        CHECK(t && memcmp(t->data, b, sizeof b) == 0);
        t = collm_gguf_find_tensor(f, "t");
        CHECK(t && memcmp(t->data, a, sizeof a) == 0);
        CHECK(collm_gguf_n_kv(g) == collm_gguf_n_kv(f) && collm_gguf_n_tensors(g) == 2); // iteration sees all
        // a name longer than the lookup's stack buffer
        char longname[400];
        memset(longname, 'x', sizeof longname - 1);
        longname[sizeof longname - 1] = 0;
        CHECK(collm_gguf_find_key(g, longname) < 0);
    }
    collm_gguf_close(f);
    collm_gguf_close(g);
    CHECK(collm_gguf_open_ns(path, "") == NULL);
}

// --- copy every kv and tensor of stories260K; compare everything ---

static void test_copy_model(void) {
    const char *src_path = test_shared_path("models/stories260K.gguf");
    collm_gguf_file *src = collm_gguf_open(src_path);
    CHECK(src != NULL);
    if (!src) return;
    collm_gguf_writer *w = collm_gguf_writer_create();
    for (int64_t i = 0; i < collm_gguf_n_kv(src); i++) CHECK(collm_gguf_writer_copy_kv(w, src, i) == COLLM_OK);
    for (int64_t i = 0; i < collm_gguf_n_tensors(src); i++) {
        const collm_gguf_tensor_info *t = collm_gguf_tensor(src, i);
        CHECK(collm_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data) == COLLM_OK);
    }
    CHECK(collm_gguf_writer_copy_kv(w, src, collm_gguf_n_kv(src)) != COLLM_OK);
    const char *path = tmp_path("stories-copy.gguf");
    CHECK(collm_gguf_writer_write(w, path) == COLLM_OK);
    collm_gguf_writer_free(w);
    collm_gguf_file *f = collm_gguf_open(path);
    CHECK_MSG(f != NULL, "%s", collm_last_error());
    if (f) {
        CHECK(collm_gguf_n_kv(f) == collm_gguf_n_kv(src) && collm_gguf_n_tensors(f) == collm_gguf_n_tensors(src));
        int ok = 1;
        char a[512], b[512];
        for (int64_t i = 0; i < collm_gguf_n_kv(src); i++) {
            if (strcmp(collm_gguf_key(f, i), collm_gguf_key(src, i)) != 0 || collm_gguf_kv_type(f, i) != collm_gguf_kv_type(src, i)) ok = 0;
            collm_gguf_format_array_preview(f, i, 1000, a, sizeof a);
            collm_gguf_format_array_preview(src, i, 1000, b, sizeof b);
            if (strcmp(a, b) != 0) ok = 0;
            const void *da = collm_gguf_arr_data(f, i), *db = collm_gguf_arr_data(src, i);
            if (da && memcmp(da, db, collm_gguf_arr_n(src, i) * 4) != 0) ok = 0; // scores f32, token types i32
        }
        CHECK(ok);
        ok = 1;
        for (int64_t i = 0; i < collm_gguf_n_tensors(src); i++) {
            const collm_gguf_tensor_info *ta = collm_gguf_tensor(src, i), *tb = collm_gguf_tensor(f, i);
            if (strcmp(ta->name, tb->name) || ta->type != tb->type || ta->n_bytes != tb->n_bytes ||
                memcmp(ta->ne, tb->ne, sizeof ta->ne) || memcmp(ta->data, tb->data, ta->n_bytes))
                ok = 0;
        }
        CHECK(ok);
        // same layout rules as llama.cpp: the copy is byte-identical to the original
        collm_mapped_file ma, mb;
        if (collm_map_file(src_path, &ma) == COLLM_OK && collm_map_file(path, &mb) == COLLM_OK) {
            CHECK(ma.size == mb.size && memcmp(ma.data, mb.data, ma.size) == 0);
            collm_unmap_file(&mb);
            collm_unmap_file(&ma);
        }
        collm_gguf_close(f);
    }
    collm_gguf_close(src);
}

// --- damaged and lying files ---

typedef struct {
    unsigned char b[8192];
    size_t n;
} byte_buf;

static void b_raw(byte_buf *b, const void *p, size_t n) {
    memcpy(b->b + b->n, p, n);
    b->n += n;
}
static void b_u32(byte_buf *b, uint32_t v) { b_raw(b, &v, 4); }
static void b_u64(byte_buf *b, uint64_t v) { b_raw(b, &v, 8); }
static void b_str(byte_buf *b, const char *s) {
    b_u64(b, strlen(s));
    b_raw(b, s, strlen(s));
}
static void b_header(byte_buf *b, uint64_t n_tensors, uint64_t n_kv) {
    b->n = 0;
    b_raw(b, "GGUF", 4);
    b_u32(b, 3);
    b_u64(b, n_tensors);
    b_u64(b, n_kv);
}
static void b_kv_u32(byte_buf *b, const char *key, uint32_t v) {
    b_str(b, key);
    b_u32(b, COLLM_GGUF_TYPE_UINT32);
    b_u32(b, v);
}
static void b_tensor(byte_buf *b, const char *name, uint32_t n_dims, const uint64_t *ne, uint32_t type, uint64_t offset) {
    b_str(b, name);
    b_u32(b, n_dims);
    for (uint32_t d = 0; d < n_dims; d++) b_u64(b, ne[d]);
    b_u32(b, type);
    b_u64(b, offset);
}
static void b_pad(byte_buf *b, size_t align) {
    while (b->n % align) b->b[b->n++] = 0;
}
static void b_zeros(byte_buf *b, size_t n) {
    memset(b->b + b->n, 0, n);
    b->n += n;
}

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *fp = fopen(path, "wb");
    if (!fp) return;
    fwrite(p, 1, n, fp);
    fclose(fp);
}

static collm_gguf_file *open_buf(const byte_buf *b, const char *name) {
    const char *path = tmp_path(name);
    write_bytes(path, b->b, b->n);
    return collm_gguf_open(path);
}

// The file must be refused with a message that names the path, says "offset"
// or names the key/tensor, and contains `needle`.
static void expect_fail(const byte_buf *b, const char *name, const char *needle, int line) {
    collm_gguf_file *f = open_buf(b, name);
    const char *msg = collm_last_error();
    int ok = f == NULL && strstr(msg, name) && strstr(msg, needle) && (strstr(msg, "offset") || strstr(msg, "key"));
    if (ok) test_passed_count++;
    else {
        test_failed_count++;
        fprintf(stderr, "FAIL %s:%d: %s: expected failure with '%s', got %s: %s\n", __FILE__, line, name, needle,
                f ? "success" : "failure", msg);
    }
    collm_gguf_close(f);
}
#define EXPECT_FAIL(b, name, needle) expect_fail(b, name, needle, __LINE__)

// A small valid file: one u32 key, one F32 tensor of 8 elements.
static void good_file(byte_buf *b, uint32_t alignment_value, int with_alignment) {
    uint64_t ne[1] = {8};
    b_header(b, 1, with_alignment ? 2 : 1);
    b_kv_u32(b, "x.n", 7);
    if (with_alignment) b_kv_u32(b, "general.alignment", alignment_value);
    b_tensor(b, "w", 1, ne, COLLM_GGML_TYPE_F32, 0);
    b_pad(b, 32);
    for (int i = 0; i < 8; i++) {
        float v = (float)i;
        b_raw(b, &v, 4);
    }
}

static void test_lying_files(void) {
    byte_buf *b = calloc(1, sizeof *b);
    uint64_t ne1[1] = {8};

    good_file(b, 0, 0);
    collm_gguf_file *f = open_buf(b, "good.gguf");
    CHECK_MSG(f != NULL, "%s", collm_last_error());
    if (f) {
        float out[8];
        CHECK(collm_gguf_tensor_to_f32(collm_gguf_find_tensor(f, "w"), out) == COLLM_OK && out[7] == 7.0f);
        collm_gguf_close(f);
    }
    good_file(b, 16, 1);
    f = open_buf(b, "good16.gguf");
    CHECK(f != NULL && collm_gguf_alignment(f) == 16);
    collm_gguf_close(f);

    b->n = 0;
    EXPECT_FAIL(b, "empty.gguf", "magic");
    good_file(b, 0, 0);
    memcpy(b->b, "GGUG", 4);
    EXPECT_FAIL(b, "magic.gguf", "magic");
    good_file(b, 0, 0);
    b->b[4] = 1;
    EXPECT_FAIL(b, "v1.gguf", "version 1");
    b->b[4] = 4;
    EXPECT_FAIL(b, "v4.gguf", "version 4");
    good_file(b, 0, 0);
    b->b[4] = 2; // v2 has the same layout as v3
    f = open_buf(b, "v2.gguf");
    CHECK(f != NULL && collm_gguf_version(f) == 2);
    collm_gguf_close(f);

    good_file(b, 0, 0);
    uint64_t huge = (uint64_t)1 << 60;
    memcpy(b->b + 16, &huge, 8);
    EXPECT_FAIL(b, "nkv-huge.gguf", "n_kv");
    good_file(b, 0, 0);
    memcpy(b->b + 8, &huge, 8);
    EXPECT_FAIL(b, "ntensors-huge.gguf", "n_tensors");
    good_file(b, 0, 0);
    uint64_t max = UINT64_MAX;
    memcpy(b->b + 16, &max, 8);
    EXPECT_FAIL(b, "nkv-max.gguf", "n_kv");

    // key length past the end
    good_file(b, 0, 0);
    uint64_t big_len = 1000000;
    memcpy(b->b + 24, &big_len, 8);
    EXPECT_FAIL(b, "keylen.gguf", "offset 24");
    memcpy(b->b + 24, &max, 8);
    EXPECT_FAIL(b, "keylen-max.gguf", "offset 24");

    // string value length past the end
    b_header(b, 0, 1);
    b_str(b, "s.key");
    b_u32(b, COLLM_GGUF_TYPE_STRING);
    b_u64(b, 1u << 30);
    b_raw(b, "abc", 3);
    EXPECT_FAIL(b, "strlen.gguf", "s.key");

    // unknown value type, unknown array element type, huge array
    b_header(b, 0, 1);
    b_str(b, "t.key");
    b_u32(b, 13);
    b_u32(b, 0);
    EXPECT_FAIL(b, "valtype.gguf", "t.key");
    b_header(b, 0, 1);
    b_str(b, "a.key");
    b_u32(b, COLLM_GGUF_TYPE_ARRAY);
    b_u32(b, 77);
    b_u64(b, 1);
    b_u32(b, 0);
    EXPECT_FAIL(b, "arrtype.gguf", "a.key");
    b_header(b, 0, 1);
    b_str(b, "a.huge");
    b_u32(b, COLLM_GGUF_TYPE_ARRAY);
    b_u32(b, COLLM_GGUF_TYPE_UINT64);
    b_u64(b, (uint64_t)1 << 62); // * 8 overflows 64 bits
    b_u64(b, 0);
    EXPECT_FAIL(b, "arrhuge.gguf", "a.huge");
    b_header(b, 0, 1);
    b_str(b, "a.strs");
    b_u32(b, COLLM_GGUF_TYPE_ARRAY);
    b_u32(b, COLLM_GGUF_TYPE_STRING);
    b_u64(b, 3);
    b_str(b, "one");
    b_u64(b, 999); // second string runs past the end
    b_raw(b, "xy", 2);
    EXPECT_FAIL(b, "arrstr.gguf", "a.strs");

    // duplicate key, empty key
    b_header(b, 0, 2);
    b_kv_u32(b, "dup.key", 1);
    b_kv_u32(b, "dup.key", 2);
    EXPECT_FAIL(b, "dupkey.gguf", "duplicate");
    b_header(b, 0, 1);
    b_kv_u32(b, "", 1);
    EXPECT_FAIL(b, "emptykey.gguf", "empty");

    // alignment: not a power of two, zero, wrong type
    good_file(b, 3, 1);
    EXPECT_FAIL(b, "align3.gguf", "general.alignment");
    good_file(b, 0, 1);
    EXPECT_FAIL(b, "align0.gguf", "general.alignment");
    b_header(b, 0, 1);
    b_str(b, "general.alignment");
    b_u32(b, COLLM_GGUF_TYPE_UINT64);
    b_u64(b, 32);
    EXPECT_FAIL(b, "align64.gguf", "general.alignment");

    // tensors: offset past the end, misaligned, duplicate name, unknown type,
    // bad n_dims, zero / overflowing ne, name too long, partial Q4_0 block
    b_header(b, 1, 0);
    b_tensor(b, "w.past", 1, ne1, COLLM_GGML_TYPE_F32, 64);
    b_pad(b, 32);
    b_zeros(b, 32);
    EXPECT_FAIL(b, "tpast.gguf", "w.past");
    b_header(b, 1, 0);
    b_tensor(b, "w.huge", 1, ne1, COLLM_GGML_TYPE_F32, UINT64_MAX - 31);
    b_pad(b, 32);
    b_zeros(b, 32);
    EXPECT_FAIL(b, "thuge.gguf", "w.huge");
    b_header(b, 1, 0);
    b_tensor(b, "w.mis", 1, ne1, COLLM_GGML_TYPE_F32, 4);
    b_pad(b, 32);
    b_zeros(b, 64);
    EXPECT_FAIL(b, "tmis.gguf", "w.mis");
    b_header(b, 2, 0);
    b_tensor(b, "w.dup", 1, ne1, COLLM_GGML_TYPE_F32, 0);
    b_tensor(b, "w.dup", 1, ne1, COLLM_GGML_TYPE_F32, 32);
    b_pad(b, 32);
    b_zeros(b, 64);
    EXPECT_FAIL(b, "tdup.gguf", "duplicate");
    b_header(b, 1, 0);
    b_tensor(b, "w.type", 1, ne1, 99, 0);
    b_pad(b, 32);
    b_zeros(b, 32);
    EXPECT_FAIL(b, "ttype.gguf", "w.type");
    b_header(b, 1, 0);
    b_tensor(b, "w.iq2", 1, ne1, 16, 0); // a real ggml type collm does not read (IQ2_XXS): named
    b_pad(b, 32);
    b_zeros(b, 32);
    EXPECT_FAIL(b, "tiq2.gguf", "unsupported tensor type IQ2_XXS (ggml type 16)");
    b_header(b, 1, 0);
    b_tensor(b, "w.dims", 0, ne1, COLLM_GGML_TYPE_F32, 0);
    b_pad(b, 32);
    b_zeros(b, 32);
    EXPECT_FAIL(b, "tdims0.gguf", "n_dims");
    uint64_t ne5[5] = {1, 1, 1, 1, 8};
    b_header(b, 1, 0);
    b_tensor(b, "w.dims5", 5, ne5, COLLM_GGML_TYPE_F32, 0);
    b_pad(b, 32);
    b_zeros(b, 32);
    EXPECT_FAIL(b, "tdims5.gguf", "n_dims");
    uint64_t ne0[2] = {8, 0};
    b_header(b, 1, 0);
    b_tensor(b, "w.ne0", 2, ne0, COLLM_GGML_TYPE_F32, 0);
    b_pad(b, 32);
    EXPECT_FAIL(b, "tne0.gguf", "w.ne0");
    uint64_t neov[3] = {(uint64_t)1 << 32, (uint64_t)1 << 32, 4};
    b_header(b, 1, 0);
    b_tensor(b, "w.ovf", 3, neov, COLLM_GGML_TYPE_F32, 0);
    b_pad(b, 32);
    EXPECT_FAIL(b, "tovf.gguf", "overflow");
    uint64_t nebig[2] = {(uint64_t)1 << 31, (uint64_t)1 << 31}; // 2^62 elements: n_bytes overflows / past end
    b_header(b, 1, 0);
    b_tensor(b, "w.big", 2, nebig, COLLM_GGML_TYPE_F32, 0);
    b_pad(b, 32);
    EXPECT_FAIL(b, "tbig.gguf", "w.big");
    b_header(b, 1, 0);
    b_tensor(b, "0123456789012345678901234567890123456789012345678901234567890123", 1, ne1, COLLM_GGML_TYPE_F32, 0);
    b_pad(b, 32);
    b_zeros(b, 32);
    EXPECT_FAIL(b, "tname.gguf", "name");
    uint64_t ne16[1] = {16};
    b_header(b, 1, 0);
    b_tensor(b, "w.q4", 1, ne16, COLLM_GGML_TYPE_Q4_0, 0);
    b_pad(b, 32);
    b_zeros(b, 32);
    EXPECT_FAIL(b, "tq4.gguf", "block");
    // tensor data overlapping or out of order (issue 8: a 1.8 MB file loaded
    // as a 791 M-parameter model with every tensor at offset 0)
    b_header(b, 2, 0);
    b_tensor(b, "w.a", 1, ne1, COLLM_GGML_TYPE_F32, 0);
    b_tensor(b, "w.same", 1, ne1, COLLM_GGML_TYPE_F32, 0);
    b_pad(b, 32);
    b_zeros(b, 64);
    EXPECT_FAIL(b, "tsame.gguf", "overlap");
    uint64_t ne16f[1] = {16};
    b_header(b, 2, 0);
    b_tensor(b, "w.a", 1, ne16f, COLLM_GGML_TYPE_F32, 0); // bytes 0..64
    b_tensor(b, "w.part", 1, ne1, COLLM_GGML_TYPE_F32, 32);
    b_pad(b, 32);
    b_zeros(b, 128);
    EXPECT_FAIL(b, "tpart.gguf", "w.part");
    b_header(b, 2, 0);
    b_tensor(b, "w.late", 1, ne1, COLLM_GGML_TYPE_F32, 32);
    b_tensor(b, "w.early", 1, ne1, COLLM_GGML_TYPE_F32, 0);
    b_pad(b, 32);
    b_zeros(b, 64);
    EXPECT_FAIL(b, "torder.gguf", "in order");
    b_header(b, 3, 0); // in order with a gap: fine
    b_tensor(b, "w.0", 1, ne1, COLLM_GGML_TYPE_F32, 0);
    b_tensor(b, "w.1", 1, ne1, COLLM_GGML_TYPE_F32, 32);
    b_tensor(b, "w.2", 1, ne1, COLLM_GGML_TYPE_F32, 96);
    b_pad(b, 32);
    b_zeros(b, 128);
    f = open_buf(b, "tgap.gguf");
    CHECK_MSG(f != NULL, "%s", collm_last_error());
    collm_gguf_close(f);
    // data section itself missing
    b_header(b, 1, 0);
    b_tensor(b, "w.nodata", 1, ne1, COLLM_GGML_TYPE_F32, 0);
    EXPECT_FAIL(b, "nodata.gguf", "offset");

    // nested arrays are legal: [[1,2],[3,4,5]] and [["a"],["b","c"]], then a normal key
    b_header(b, 0, 3);
    b_str(b, "n.u32");
    b_u32(b, COLLM_GGUF_TYPE_ARRAY);
    b_u32(b, COLLM_GGUF_TYPE_ARRAY);
    b_u64(b, 2);
    b_u32(b, COLLM_GGUF_TYPE_UINT32);
    b_u64(b, 2);
    b_u32(b, 1);
    b_u32(b, 2);
    b_u32(b, COLLM_GGUF_TYPE_UINT32);
    b_u64(b, 3);
    b_u32(b, 3);
    b_u32(b, 4);
    b_u32(b, 5);
    b_str(b, "n.str");
    b_u32(b, COLLM_GGUF_TYPE_ARRAY);
    b_u32(b, COLLM_GGUF_TYPE_ARRAY);
    b_u64(b, 2);
    b_u32(b, COLLM_GGUF_TYPE_STRING);
    b_u64(b, 1);
    b_str(b, "a");
    b_u32(b, COLLM_GGUF_TYPE_STRING);
    b_u64(b, 2);
    b_str(b, "b");
    b_str(b, "c");
    b_kv_u32(b, "after", 42);
    f = open_buf(b, "nested.gguf");
    CHECK_MSG(f != NULL, "%s", collm_last_error());
    if (f) {
        int64_t i = collm_gguf_find_key(f, "n.u32");
        CHECK(collm_gguf_arr_type(f, i) == COLLM_GGUF_TYPE_ARRAY && collm_gguf_arr_n(f, i) == 2 && collm_gguf_arr_data(f, i) == NULL);
        uint64_t len;
        CHECK(collm_gguf_arr_str(f, collm_gguf_find_key(f, "n.str"), 0, &len) == NULL);
        uint32_t v = 0;
        CHECK(collm_gguf_get_u32(f, "after", &v) == COLLM_OK && v == 42);
        char buf[64];
        collm_gguf_format_array_preview(f, i, 4, buf, sizeof buf);
        CHECK_STR(buf, "[arr x 2]");
        // copy_kv carries nested arrays through the writer unchanged
        collm_gguf_writer *w = collm_gguf_writer_create();
        for (int64_t k = 0; k < collm_gguf_n_kv(f); k++) CHECK(collm_gguf_writer_copy_kv(w, f, k) == COLLM_OK);
        CHECK(collm_gguf_writer_write(w, tmp_path("nested-copy.gguf")) == COLLM_OK);
        collm_gguf_writer_free(w);
        collm_gguf_file *g = collm_gguf_open(tmp_path("nested-copy.gguf"));
        CHECK(g && collm_gguf_n_kv(g) == 3 && collm_gguf_arr_n(g, collm_gguf_find_key(g, "n.str")) == 2 &&
              collm_gguf_get_u32(g, "after", &v) == COLLM_OK && v == 42);
        collm_gguf_close(g);
        collm_gguf_close(f);
    }
    // nesting deeper than the limit
    b_header(b, 0, 1);
    b_str(b, "deep");
    b_u32(b, COLLM_GGUF_TYPE_ARRAY);
    for (int d = 0; d < 20; d++) {
        b_u32(b, COLLM_GGUF_TYPE_ARRAY);
        b_u64(b, 1);
    }
    b_u32(b, COLLM_GGUF_TYPE_UINT8);
    b_u64(b, 0);
    EXPECT_FAIL(b, "deep.gguf", "nested");
    free(b);
}

// Opens a possibly damaged file. Success: touch every value and tensor (ASan
// checks the reads). Failure: the message names the path and an offset or a
// key. Returns 1 if it behaved.
static int open_damaged(const char *path, float *scratch, size_t scratch_n) {
    collm_gguf_file *f = collm_gguf_open(path);
    if (!f) {
        const char *msg = collm_last_error();
        return strstr(msg, path) && (strstr(msg, "offset") || strstr(msg, "key"));
    }
    char buf[256];
    for (int64_t i = 0; i < collm_gguf_n_kv(f); i++) collm_gguf_format_array_preview(f, i, 8, buf, sizeof buf);
    for (int64_t i = 0; i < collm_gguf_n_tensors(f); i++) {
        const collm_gguf_tensor_info *t = collm_gguf_tensor(f, i);
        if (collm_gguf_tensor_type_supported(t->type) && (size_t)collm_gguf_tensor_n_elements(t) <= scratch_n) collm_gguf_tensor_to_f32(t, scratch);
    }
    collm_gguf_close(f);
    return 1;
}

// A small file with every kind of content for the damage tests.
static const char *build_damage_source(void) {
    collm_gguf_writer *w = collm_gguf_writer_create();
    collm_gguf_writer_set_u32(w, "d.u32", 5);
    collm_gguf_writer_set_str(w, "d.str", "hello");
    collm_gguf_writer_set_f32(w, "d.f32", 1.5f);
    const char *strs[] = {"x", "yy", "zzz"};
    collm_gguf_writer_set_arr_str(w, "d.strs", strs, 3);
    int32_t ints[4] = {1, 2, 3, 4};
    collm_gguf_writer_set_arr(w, "d.ints", COLLM_GGUF_TYPE_INT32, ints, 4);
    unsigned char data[256];
    for (int i = 0; i < 256; i++) data[i] = (unsigned char)(i * 13);
    int64_t ne2[2] = {4, 2}, ne32[1] = {32}, ne64[1] = {64};
    collm_gguf_writer_add_tensor(w, "t.f32", COLLM_GGML_TYPE_F32, 2, ne2, data);
    collm_gguf_writer_add_tensor(w, "t.f16", COLLM_GGML_TYPE_F16, 2, ne2, data);
    collm_gguf_writer_add_tensor(w, "t.q8", COLLM_GGML_TYPE_Q8_0, 1, ne32, data);
    collm_gguf_writer_add_tensor(w, "t.q4", COLLM_GGML_TYPE_Q4_0, 1, ne64, data);
    const char *path = tmp_path("damage-src.gguf");
    if (collm_gguf_writer_write(w, path) != COLLM_OK) fprintf(stderr, "%s\n", collm_last_error());
    collm_gguf_writer_free(w);
    return path;
}

static int read_whole(const char *path, unsigned char **data, size_t *n) {
    char *d;
    if (collm_read_file(path, &d, n) != COLLM_OK) return 0;
    *data = (unsigned char *)d;
    return 1;
}

static void test_truncations(void) {
    float *scratch = malloc(1 << 20);
    size_t scratch_n = (1 << 20) / sizeof(float);
    // (file, every offset below, stride above)
    struct { const char *src; int shared; size_t every_below; size_t stride; } cases[] = {
        {NULL, 0, SIZE_MAX, 1},                                             // synthetic: every offset
        {"models/stories260K.gguf", 1, 0, 1009},                            // header: every offset (set below)
        {"testvectors/tokenizer/ggml-vocab-llama-spm.gguf", 1, 4096, 2003}, // vocab only, no tensors
    };
    for (int c = 0; c < 3; c++) {
        const char *src = cases[c].src ? test_shared_path(cases[c].src) : build_damage_source();
        unsigned char *data;
        size_t n;
        if (!read_whole(src, &data, &n)) {
            CHECK(0);
            continue;
        }
        size_t every_below = cases[c].every_below;
        // tensors present: a file cut before the end of the last tensor must fail
        size_t must_fail_below = n;
        collm_gguf_file *orig = collm_gguf_open(src);
        CHECK(orig != NULL);
        if (orig && collm_gguf_n_tensors(orig) > 0) {
            size_t end = 0;
            for (int64_t i = 0; i < collm_gguf_n_tensors(orig); i++) {
                const collm_gguf_tensor_info *t = collm_gguf_tensor(orig, i);
                size_t e = collm_gguf_data_offset(orig) + t->offset + t->n_bytes;
                if (e > end) end = e;
            }
            must_fail_below = end;
            if (every_below == 0) every_below = collm_gguf_data_offset(orig);
        }
        collm_gguf_close(orig);
        char name[64];
        snprintf(name, sizeof name, "trunc-%d.gguf", c);
        const char *path = tmp_path(name);
        write_bytes(path, data, n);
        int behaved = 1, wrongly_ok = 0, tried = 0;
        // go downwards so each step only shrinks the file
        for (size_t k = n; k-- > 0;) {
            if (k >= every_below && k % cases[c].stride != 0) continue;
            if (truncate(path, (off_t)k) != 0) break;
            tried++;
            collm_gguf_file *f = collm_gguf_open(path);
            if (f) {
                if (k < must_fail_below) wrongly_ok++;
                collm_gguf_close(f);
            } else if (!(strstr(collm_last_error(), path) &&
                         (strstr(collm_last_error(), "offset") || strstr(collm_last_error(), "key")))) {
                if (behaved) fprintf(stderr, "truncated at %zu: unexpected message: %s\n", k, collm_last_error());
                behaved = 0;
            }
            (void)scratch_n;
        }
        CHECK_MSG(behaved, "%s", src);
        CHECK_MSG(wrongly_ok == 0, "%s: %d truncated files opened", src, wrongly_ok);
        CHECK(tried > 500);
        free(data);
    }
    free(scratch);
}

static void test_byte_flips(void) {
    float *scratch = malloc(1 << 20);
    size_t scratch_n = (1 << 20) / sizeof(float);
    uint64_t seed = 2024;
    // synthetic file: flips anywhere
    const char *src = build_damage_source();
    unsigned char *data;
    size_t n;
    if (!read_whole(src, &data, &n)) {
        CHECK(0);
        free(scratch);
        return;
    }
    const char *path = tmp_path("flip.gguf");
    int behaved = 1, failed = 0;
    for (int trial = 0; trial < 400; trial++) {
        unsigned char *copy = malloc(n);
        memcpy(copy, data, n);
        int flips = 1 + trial % 3;
        for (int k = 0; k < flips; k++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            size_t pos = (size_t)(seed >> 33) % n;
            copy[pos] ^= (unsigned char)(1u << ((seed >> 20) % 8));
            if (trial % 5 == 0) copy[pos] = 0xff; // saturate: huge lengths / counts
        }
        write_bytes(path, copy, n);
        collm_gguf_file *probe = collm_gguf_open(path);
        if (!probe) failed++;
        collm_gguf_close(probe);
        if (!open_damaged(path, scratch, scratch_n)) {
            if (behaved) fprintf(stderr, "flip trial %d: unexpected message: %s\n", trial, collm_last_error());
            behaved = 0;
        }
        free(copy);
    }
    free(data);
    CHECK(behaved);
    CHECK(failed > 50); // most header flips must be caught
    // stories260K: flips in the header region, in place (restore after each)
    src = test_shared_path("models/stories260K.gguf");
    collm_gguf_file *orig = collm_gguf_open(src);
    size_t header = orig ? collm_gguf_data_offset(orig) : 0;
    collm_gguf_close(orig);
    if (read_whole(src, &data, &n)) {
        path = tmp_path("flip-stories.gguf");
        write_bytes(path, data, n);
        FILE *fp = fopen(path, "r+b");
        behaved = 1;
        for (int trial = 0; fp && trial < 200; trial++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            // half the trials aim at the first 64 bytes (counts, first key)
            size_t pos = (size_t)(seed >> 33) % (trial % 2 ? header : 64);
            unsigned char v = (unsigned char)(data[pos] ^ (1u << ((seed >> 20) % 8)));
            fseek(fp, (long)pos, SEEK_SET);
            fputc(v, fp);
            fflush(fp);
            if (!open_damaged(path, scratch, scratch_n)) {
                if (behaved) fprintf(stderr, "stories flip at %zu: unexpected message: %s\n", pos, collm_last_error());
                behaved = 0;
            }
            fseek(fp, (long)pos, SEEK_SET);
            fputc(data[pos], fp);
            fflush(fp);
        }
        if (fp) fclose(fp);
        CHECK(fp != NULL && behaved && header > 1000);
        free(data);
    }
    free(scratch);
}

int main(void) {
    collm_mkdir_p(test_tmp_dir());
    test_models();
    test_half();
    test_blocks();
    test_f16_tensors();
    test_metadata_roundtrip();
    test_tensor_roundtrip();
    test_namespaces();
    test_copy_model();
    test_lying_files();
    test_truncations();
    test_byte_flips();
    return test_report();
}
