// Fuzzes the GGUF reader and everything that loads from a GGUF: the file as
// bytes goes through collm_gguf_open (every key formatted, every string of
// every array read, every tensor of a sane size decoded), the tokenizer
// loader, the LLM loader (and, when a model loads, one forward pass over two
// tokens, so the loader's shape checks are tested by use), the CF model loader
// the checkpoint item-vector reader and the checkpoint loader. Nothing may crash, leak or read
// outside the file; loaders either succeed or set an error message.
#include "collm/cf.h"
#include "collm/collm.h"
#include "collm/error.h"
#include "collm/gguf.h"
#include "collm/model.h"
#include "collm/tokenizer.h"
#include "fuzz_common.h"

#include <math.h>

static fuzz_file file;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    fuzz_file_init(&file, "fuzz.gguf");
    return 0;
}

static void walk_file(const collm_gguf_file *f) {
    char buf[512];
    for (int64_t i = 0; i < collm_gguf_n_kv(f); i++) {
        FUZZ_ASSERT(collm_gguf_key(f, i) != NULL, "key %lld", (long long)i);
        FUZZ_ASSERT(collm_gguf_find_key(f, collm_gguf_key(f, i)) == i, "keys are unique: %s", collm_gguf_key(f, i));
        collm_gguf_format_value(f, i, buf, sizeof buf);
        collm_gguf_format_array_preview(f, i, 8, buf, sizeof buf);
        if (collm_gguf_kv_type(f, i) != COLLM_GGUF_TYPE_ARRAY) continue;
        uint64_t n = collm_gguf_arr_n(f, i);
        if (collm_gguf_arr_type(f, i) == COLLM_GGUF_TYPE_STRING) {
            unsigned sum = 0;
            for (uint64_t j = 0; j < n; j++) {
                uint64_t len = 0;
                const char *s = collm_gguf_arr_str(f, i, j, &len);
                FUZZ_ASSERT(s != NULL, "string %llu of array %s", (unsigned long long)j, collm_gguf_key(f, i));
                for (uint64_t k = 0; k < len; k++) sum += (unsigned char)s[k]; // touch every byte
            }
            (void)sum;
        } else if (n > 0 && collm_gguf_arr_type(f, i) != COLLM_GGUF_TYPE_ARRAY) {
            FUZZ_ASSERT(collm_gguf_arr_data(f, i) != NULL, "numeric array %s has data", collm_gguf_key(f, i));
        }
    }
    for (int64_t i = 0; i < collm_gguf_n_tensors(f); i++) {
        const collm_gguf_tensor_info *t = collm_gguf_tensor(f, i);
        FUZZ_ASSERT(t && collm_gguf_find_tensor(f, t->name) == t, "tensor %lld by name", (long long)i);
        int64_t n = collm_gguf_tensor_n_elements(t);
        FUZZ_ASSERT(n >= 0, "tensor %s: %lld elements", t->name, (long long)n);
        FUZZ_ASSERT(t->offset + t->n_bytes <= collm_gguf_file_size(f) - collm_gguf_data_offset(f),
                    "tensor %s lies inside the file", t->name);
        if (n > (1 << 20) || !collm_gguf_tensor_type_supported(t->type)) continue;
        float *out = malloc((size_t)(n ? n : 1) * sizeof(float));
        if (out && collm_gguf_tensor_to_f32(t, out) == COLLM_OK) {
            for (int64_t k = 0; k < n; k++) fuzz_sink += out[k];
        }
        free(out);
    }
}

static void try_tokenizer(const collm_gguf_file *f) {
    collm_tok_vocab *v = collm_tok_load(f);
    if (!v) return;
    int32_t ids[64];
    static const char text[] = "Hello world, <s> caf\xc3\xa9 \xe2\x96\x81x 12";
    int n = collm_tok_encode(v, text, sizeof text - 1, COLLM_TOK_ADD_BOS | COLLM_TOK_PARSE_SPECIAL, ids, 64);
    if (n > 0) {
        if (n > 64) n = 64;
        for (int i = 0; i < n; i++) FUZZ_ASSERT(ids[i] >= 0 && ids[i] < collm_tok_n_vocab(v), "id %d", ids[i]);
        char out[256];
        collm_tok_decode(v, ids, n, out, sizeof out);
    }
    collm_tok_free(v);
}

static void try_model(const char *path) {
    collm_clear_error();
    collm_llm_model *m = collm_llm_model_load(path);
    if (!m) {
        FUZZ_ASSERT(collm_last_error()[0], "a failed load leaves a message");
        return;
    }
    const collm_llm_hparams *hp = collm_llm_model_hparams(m);
    collm_llm_context *ctx = collm_llm_context_create(m, 4, 2, NULL);
    if (ctx) {
        int32_t tokens[2] = {0, hp->n_vocab - 1};
        int32_t vocab_rows[1] = {0};
        float logits[2];
        if (collm_llm_forward(ctx, tokens, 2, NULL, NULL, -1, vocab_rows, 1, logits) == COLLM_OK) {
            fuzz_sink += logits[0] + logits[1];
        }
        collm_llm_context_free(ctx);
    }
    collm_llm_model_free(m);
}

static void try_cf(const char *path) {
    collm_cf_model *cf = collm_cf_model_load(path);
    if (cf) {
        int d = collm_cf_model_dim(cf);
        FUZZ_ASSERT(d >= 1 && collm_cf_model_n_users(cf) >= 1 && collm_cf_model_n_items(cf) >= 1, "cf sizes");
        float *v = malloc((size_t)d * sizeof(float)), s;
        if (v) {
            collm_cf_model_user_vector(cf, collm_cf_model_n_users(cf) - 1, v);
            collm_cf_model_item_vector(cf, collm_cf_model_n_items(cf) - 1, v);
            FUZZ_ASSERT(collm_cf_model_score(cf, collm_cf_model_n_users(cf), 0, &s) != COLLM_OK, "user out of range");
            // one sample through the kind's own path (history-based kinds read it)
            int32_t his[4] = {0, 1, collm_cf_model_n_items(cf) - 1, 1};
            if (collm_cf_model_sample_vectors(cf, 1 % collm_cf_model_n_users(cf), his, 4, collm_cf_model_n_items(cf) - 1, v,
                                              NULL) == COLLM_OK)
                for (int i = 0; i < d; i++) fuzz_sink += v[i];
            if (collm_cf_model_score_sample(cf, 0, his, 4, 0, &s) == COLLM_OK) fuzz_sink += s;
        }
        free(v);
        collm_cf_model_free(cf);
    }
    float *items = NULL;
    int32_t n_items = 0;
    int d = 0;
    if (collm_checkpoint_item_vectors(path, &items, &n_items, &d) == COLLM_OK) {
        for (int64_t i = 0; i < (int64_t)n_items * d; i++) fuzz_sink += items[i];
    }
    free(items);
}

// A CoLLM checkpoint: one that holds the full model loads without a base
// file; then one prompt's slot embeddings go through the loaded FECE.
static void try_checkpoint(const char *path) {
    collm_clear_error();
    collm_model *m = collm_model_load(path, NULL, NULL);
    if (!m) {
        FUZZ_ASSERT(collm_last_error()[0], "a failed load leaves a message");
        return;
    }
    int32_t n_users = 0, n_items = 0;
    int d = 0;
    if (collm_has_slots(m) && collm_cf_users(m, &n_users, &d) && collm_cf_items(m, &n_items, &d)) {
        collm_encoded e;
        memset(&e, 0, sizeof e);
        e.n_slots = 2;
        e.slot_item[0] = -1;
        e.slot_item[1] = n_items - 1;
        e.user = n_users - 1;
        e.item = n_items - 1;
        float *out = malloc(2 * (size_t)collm_llm_model_hparams(collm_llm(m))->n_embd * sizeof(float));
        if (out) collm_slot_embeddings(m, &e, out);
        free(out);
    }
    collm_model_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_file_set(&file, data, size);
    collm_clear_error();
    collm_gguf_file *f = collm_gguf_open(file.path);
    if (!f) {
        FUZZ_ASSERT(collm_last_error()[0], "a failed open leaves a message");
        return 0;
    }
    walk_file(f);
    try_tokenizer(f);
    collm_gguf_close(f);
    try_model(file.path);
    try_cf(file.path);
    try_checkpoint(file.path);
    return 0;
}
