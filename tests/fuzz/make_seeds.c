// Writes the seed corpora of the fuzz harnesses (tests/fuzz/corpus/NAME/):
// tiny but complete inputs, so mutations start from files that get past the
// first checks. Run by `make fuzz-seeds`; the output is committed (every file
// is a few KB at most). Usage: make_seeds OUT_DIR
//
//   gguf/       tiny Llama with an SPM vocab (F32), tiny Qwen2 with a BPE vocab
//               (F16), quantised / BF16 tensors with every metadata type, an
//               MF model, a stage-2 CoLLM checkpoint holding the full model
//   dataset/    mode byte + TSV: items (movie, book), splits (ml-1m,
//               bookcrossing layouts), items + split pairs
//   tokenizer/  flags byte + text
//   http/       selector byte + request body
#include "collm/cf.h"
#include "collm/collm.h"
#include "collm/dataset.h"
#include "collm/error.h"
#include "collm/fileio.h"
#include "collm/gguf.h"
#include "collm/model.h"
#include "collm/prepare.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *out_dir;

static int put(const char *sub, const char *name, const void *data, size_t n) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", out_dir, sub);
    if (collm_mkdir_p(path) != COLLM_OK) return COLLM_ERR_IO;
    snprintf(path, sizeof path, "%s/%s/%s", out_dir, sub, name);
    FILE *f = fopen(path, "wb");
    if (!f) return collm_error(COLLM_ERR_IO, "cannot write %s", path);
    int ok = fwrite(data, 1, n, f) == n;
    ok &= fclose(f) == 0;
    return ok ? COLLM_OK : collm_error(COLLM_ERR_IO, "cannot write %s", path);
}

// A seed made of a leading selector byte and a text.
static int put_sel(const char *sub, const char *name, unsigned char sel, const char *text) {
    size_t n = strlen(text);
    char *buf = malloc(n + 1);
    if (!buf) return COLLM_ERR_NOMEM;
    buf[0] = (char)sel;
    memcpy(buf + 1, text, n);
    int rc = put(sub, name, buf, n + 1);
    free(buf);
    return rc;
}

// Copies a file written by the library into the corpus.
static int put_file(const char *sub, const char *name, const char *src) {
    char *data;
    size_t n;
    int rc = collm_read_file(src, &data, &n);
    if (rc) return rc;
    rc = put(sub, name, data, n);
    free(data);
    return rc;
}

// --- tiny vocabularies --------------------------------------------------

#define U2581 "\xe2\x96\x81"
static const char *const spm_tokens[] = {
    "<unk>", "<s>", "</s>", "<0x0A>", "<0x41>", "<0xC3>", "<0xA9>", U2581, U2581 "Yes", U2581 "No", "Yes", "e", "s",
    "Y", "es", U2581 "a", "a", "b", "c", ":", "#", "\"", ",", ".", U2581 "the", "t", "h", "<|user|>",
};
static const int spm_types[] = {2, 3, 3, 6, 6, 6, 6, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 4};

static int spm_vocab(collm_gguf_writer *w, int n_vocab) {
    int n = (int)(sizeof spm_tokens / sizeof spm_tokens[0]);
    if (n != n_vocab) return collm_error(COLLM_ERR_ARG, "spm vocab has %d tokens, model %d", n, n_vocab);
    float scores[64];
    for (int i = 0; i < n; i++) scores[i] = -(float)i;
    int rc;
    if ((rc = collm_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama")) ||
        (rc = collm_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", spm_tokens, (uint64_t)n)) ||
        (rc = collm_gguf_writer_set_arr(w, "tokenizer.ggml.scores", COLLM_GGUF_TYPE_FLOAT32, scores, (uint64_t)n)) ||
        (rc = collm_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", COLLM_GGUF_TYPE_INT32, spm_types, (uint64_t)n)) ||
        (rc = collm_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1)) ||
        (rc = collm_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2)) ||
        (rc = collm_gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 0)))
        return rc;
    return COLLM_OK;
}

#define G "\xc4\xa0" // GPT-2's byte-to-unicode image of ' '
static const char *const bpe_tokens[] = {
    "!", "\"", "Y", "e", "s", "a", "b", "N", "o", G, "Ye", "Yes", G "a", G "b", "No", "<|endoftext|>", "<|im_start|>",
    "\xc3\xa9", "1", "2",
};
static const char *const bpe_merges[] = {"Y e", "Ye s", G " a", G " b", "N o"};

static int bpe_vocab(collm_gguf_writer *w, int n_vocab) {
    int n = (int)(sizeof bpe_tokens / sizeof bpe_tokens[0]);
    if (n != n_vocab) return collm_error(COLLM_ERR_ARG, "bpe vocab has %d tokens, model %d", n, n_vocab);
    int32_t types[64];
    for (int i = 0; i < n; i++) types[i] = i >= 15 && i <= 16 ? 3 : 1;
    int rc;
    if ((rc = collm_gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2")) ||
        (rc = collm_gguf_writer_set_str(w, "tokenizer.ggml.pre", "qwen2")) ||
        (rc = collm_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", bpe_tokens, (uint64_t)n)) ||
        (rc = collm_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", COLLM_GGUF_TYPE_INT32, types, (uint64_t)n)) ||
        (rc = collm_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", bpe_merges,
                                            sizeof bpe_merges / sizeof bpe_merges[0])) ||
        (rc = collm_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 15)) ||
        (rc = collm_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", 0)))
        return rc;
    return COLLM_OK;
}

// --- GGUF seeds ---------------------------------------------------------

static collm_llm_model *tiny_model(collm_llm_arch arch, int n_vocab) {
    collm_llm_hparams hp;
    memset(&hp, 0, sizeof hp);
    hp.arch = arch;
    hp.n_vocab = n_vocab;
    hp.n_ctx_train = 64;
    hp.n_embd = 8;
    hp.n_layer = 1;
    hp.n_head = 2;
    hp.n_head_kv = 1;
    hp.n_ff = 12;
    hp.rope_base = 10000;
    hp.rms_eps = 1e-5f;
    hp.tied_output = 1;
    return collm_llm_model_init_random(&hp, 7);
}

static int write_model(const char *path, collm_llm_arch arch, int n_vocab, int type,
                       int (*vocab)(collm_gguf_writer *, int)) {
    collm_llm_model *m = tiny_model(arch, n_vocab);
    collm_gguf_writer *w = collm_gguf_writer_create();
    int rc = m && w ? COLLM_OK : COLLM_ERR;
    if (!rc) rc = collm_llm_model_write(m, w, NULL, "fuzz-seed", type);
    if (!rc) rc = vocab(w, n_vocab);
    if (!rc) rc = collm_gguf_writer_write(w, path);
    collm_gguf_writer_free(w);
    collm_llm_model_free(m);
    return rc;
}

// Every metadata type, a nested array, and tensors of every decodable type.
static int write_types(const char *path) {
    collm_gguf_writer *w = collm_gguf_writer_create();
    if (!w) return COLLM_ERR;
    int rc = COLLM_OK;
    uint8_t u8 = 200;
    int8_t i8 = -5;
    uint16_t u16 = 60000;
    int16_t i16 = -300;
    int32_t i32 = -70000;
    uint64_t u64 = 1ull << 40;
    int64_t i64 = -(1ll << 40);
    double f64 = 0.125;
    rc = rc ? rc : collm_gguf_writer_set_scalar(w, "t.u8", COLLM_GGUF_TYPE_UINT8, &u8);
    rc = rc ? rc : collm_gguf_writer_set_scalar(w, "t.i8", COLLM_GGUF_TYPE_INT8, &i8);
    rc = rc ? rc : collm_gguf_writer_set_scalar(w, "t.u16", COLLM_GGUF_TYPE_UINT16, &u16);
    rc = rc ? rc : collm_gguf_writer_set_scalar(w, "t.i16", COLLM_GGUF_TYPE_INT16, &i16);
    rc = rc ? rc : collm_gguf_writer_set_scalar(w, "t.i32", COLLM_GGUF_TYPE_INT32, &i32);
    rc = rc ? rc : collm_gguf_writer_set_scalar(w, "t.u64", COLLM_GGUF_TYPE_UINT64, &u64);
    rc = rc ? rc : collm_gguf_writer_set_scalar(w, "t.i64", COLLM_GGUF_TYPE_INT64, &i64);
    rc = rc ? rc : collm_gguf_writer_set_scalar(w, "t.f64", COLLM_GGUF_TYPE_FLOAT64, &f64);
    rc = rc ? rc : collm_gguf_writer_set_f32(w, "t.f32", 1.5f);
    rc = rc ? rc : collm_gguf_writer_set_bool(w, "t.bool", 1);
    rc = rc ? rc : collm_gguf_writer_set_str(w, "general.name", "types");
    rc = rc ? rc : collm_gguf_writer_set_u32(w, "general.alignment", 64);
    static const char *const strs[] = {"a", "", "caf\xc3\xa9"};
    rc = rc ? rc : collm_gguf_writer_set_arr_str(w, "t.strs", strs, 3);
    int16_t arr16[3] = {1, -2, 3};
    rc = rc ? rc : collm_gguf_writer_set_arr(w, "t.arr_i16", COLLM_GGUF_TYPE_INT16, arr16, 3);
    // tensors: Q8_0 and Q4_0 blocks (32 elements), F16, BF16, F32
    float v[64];
    for (int i = 0; i < 64; i++) v[i] = (float)(i - 32) / 8.0f;
    int64_t ne1[1] = {64}, ne2[2] = {32, 2};
    rc = rc ? rc : collm_gguf_writer_add_tensor_f32(w, "f32", COLLM_GGML_TYPE_F32, 2, ne2, v);
    rc = rc ? rc : collm_gguf_writer_add_tensor_f32(w, "f16", COLLM_GGML_TYPE_F16, 1, ne1, v);
    rc = rc ? rc : collm_gguf_writer_add_tensor_f32(w, "bf16", COLLM_GGML_TYPE_BF16, 1, ne1, v);
    uint8_t q8[2 * 34], q4[2 * 18];
    for (int b = 0; b < 2; b++) {
        uint16_t d = collm_f32_to_f16(0.25f);
        memcpy(q8 + b * 34, &d, 2);
        memcpy(q4 + b * 18, &d, 2);
        for (int i = 0; i < 32; i++) q8[b * 34 + 2 + i] = (uint8_t)(int8_t)(i - 16);
        for (int i = 0; i < 16; i++) q4[b * 18 + 2 + i] = (uint8_t)(i | ((15 - i) << 4));
    }
    rc = rc ? rc : collm_gguf_writer_add_tensor(w, "q8_0", COLLM_GGML_TYPE_Q8_0, 1, ne1, q8);
    rc = rc ? rc : collm_gguf_writer_add_tensor(w, "q4_0", COLLM_GGML_TYPE_Q4_0, 1, ne1, q4);
    rc = rc ? rc : collm_gguf_writer_write(w, path);
    collm_gguf_writer_free(w);
    return rc;
}

// A stage-2 checkpoint holding the fine-tuned model itself (loadable without
// a base file): synthetic data, MF, tiny Llama with the SPM vocab.
static int write_checkpoint(const char *tmp, const char *base, const char *ckpt) {
    char data[1024], mf[1024];
    snprintf(data, sizeof data, "%s/data", tmp);
    snprintf(mf, sizeof mf, "%s/mf.gguf", tmp);
    collm_rec_synth_options so;
    collm_rec_synth_defaults(&so);
    so.n_users = 5;
    so.n_items = 7;
    so.min_per_user = 3;
    so.max_per_user = 5;
    so.seed = 3;
    int rc = collm_rec_synth(&so, data);
    if (rc) return rc;
    collm_rec_dataset *ds = collm_rec_dataset_load(data);
    if (!ds) return COLLM_ERR;
    collm_cf_model *cf = collm_cf_model_create("mf", ds->n_users, ds->n_items, 2, 1);
    rc = cf ? collm_cf_model_save(cf, mf) : COLLM_ERR;
    collm_cf_model_free(cf);
    collm_model *m = NULL;
    if (!rc) {
        collm_build_options b;
        collm_build_options_default(&b);
        b.base_path = base;
        b.cf_path = mf;
        b.stage = 2;
        b.full_finetune = 1;
        b.lora_rank = 0;
        b.fece_mid_times = 2;
        m = collm_model_build(&b, ds, NULL);
        rc = m ? collm_model_save(m, ckpt) : COLLM_ERR;
    }
    collm_model_free(m);
    collm_rec_dataset_free(ds);
    if (!rc) rc = put_file("gguf", "mf.gguf", mf);
    // the other collaborative kinds, tiny (a kind this build does not have yet is skipped)
    static const char *const kinds[] = {"lightgcn", "sasrec", "din"};
    for (size_t k = 0; !rc && k < sizeof kinds / sizeof kinds[0]; k++) {
        collm_cf_hparams hp;
        if (collm_cf_hparams_default(kinds[k], &hp) != COLLM_OK) continue;
        hp.dim = 6;
        hp.n_layers = 1;
        hp.n_heads = 1;
        hp.max_len = 3;
        collm_cf_model *other = collm_cf_model_create_hp(kinds[k], 4, 5, &hp, 1);
        char p[1024], name[64];
        snprintf(p, sizeof p, "%s/%s.gguf", tmp, kinds[k]);
        snprintf(name, sizeof name, "cf_%s.gguf", kinds[k]);
        rc = other ? collm_cf_model_save(other, p) : COLLM_ERR;
        collm_cf_model_free(other);
        if (!rc) rc = put_file("gguf", name, p);
    }
    return rc;
}

static int gguf_seeds(const char *tmp) {
    char p[1024], base[1024];
    int rc;
    snprintf(base, sizeof base, "%s/llama_spm.gguf", tmp);
    if ((rc = write_model(base, COLLM_LLM_ARCH_LLAMA, (int)(sizeof spm_tokens / sizeof spm_tokens[0]), COLLM_GGML_TYPE_F32,
                          spm_vocab)) ||
        (rc = put_file("gguf", "llama_spm.gguf", base)))
        return rc;
    snprintf(p, sizeof p, "%s/qwen2_bpe.gguf", tmp);
    if ((rc = write_model(p, COLLM_LLM_ARCH_QWEN2, (int)(sizeof bpe_tokens / sizeof bpe_tokens[0]), COLLM_GGML_TYPE_F16,
                          bpe_vocab)) ||
        (rc = put_file("gguf", "qwen2_bpe.gguf", p)))
        return rc;
    snprintf(p, sizeof p, "%s/types.gguf", tmp);
    if ((rc = write_types(p)) || (rc = put_file("gguf", "types.gguf", p))) return rc;
    snprintf(p, sizeof p, "%s/ckpt.gguf", tmp);
    if ((rc = write_checkpoint(tmp, base, p)) || (rc = put_file("gguf", "ckpt_full.gguf", p))) return rc;
    return COLLM_OK;
}

// --- text seeds ---------------------------------------------------------

// Dataset modes (fuzz_dataset.c): 0 items, 1 split, 2 split against a
// 50-row items table, 3 items NUL split, 4 an item_map.tsv's genres.
static int dataset_seeds(void) {
    static const char items_movie[] = "iid\ttitle\n0\t\n1\tToy Story (1995)\n2\tA \\t tab \\\\ and \\n newline\n4\tcaf\xc3\xa9\n";
    static const char items_book[] = "iid\ttitle\tauthor\n0\tDune\tFrank Herbert\n1\t\t\n2\tEmma\tJane Austen\n";
    static const char split_ml[] = "uid\tiid\tlabel\ttimestamp\this\tnot_cold\n1\t2\t1\t978300760\t0\t1\n"
                                   "1\t3\t0\t978300761\t0,2\t0\n2\t4\t1\t978300762\t0,2,3\t1\n";
    static const char split_bx[] = "uid\tiid\tlabel\this\this_label\n3\t1\t1\t2,0\t1,0\n4\t0\t0\t\t\n";
    int rc;
    if ((rc = put_sel("dataset", "items_movie", 0, items_movie)) || (rc = put_sel("dataset", "items_book", 0, items_book)) ||
        (rc = put_sel("dataset", "split_ml1m", 1, split_ml)) || (rc = put_sel("dataset", "split_bx", 1, split_bx)) ||
        (rc = put_sel("dataset", "split_checked", 2, split_ml)) ||
        (rc = put_sel("dataset", "item_genres", 4,
                      "iid\tmovie_id\tgenres\n1\t1\tAnimation|Children's|Comedy\n2\t2\t\n3\t3\tDrama|Drama\n")))
        return rc;
    // mode 3: items, a NUL byte, then the split
    size_t a = sizeof items_movie - 1, b = sizeof split_ml - 1;
    char buf[1024];
    buf[0] = 3;
    memcpy(buf + 1, items_movie, a);
    buf[1 + a] = '\0';
    memcpy(buf + 2 + a, split_ml, b);
    return put("dataset", "items_and_split", buf, 2 + a + b);
}

// Tokenizer: flags byte (bit 0 SPM/BPE, bits 1-3 encode flags) + text.
static int tokenizer_seeds(void) {
    static const struct {
        const char *name;
        unsigned char flags;
        const char *text;
    } seeds[] = {
        {"plain", 0, "Hello world"},
        {"plain_bpe", 1, "Hello world, it's 2024!"},
        {"special", 2 | 4, "<s>Once upon a time</s> <unk>"},
        {"special_bpe", 1 | 4, "<|im_start|>user\nYes or No?<|im_end|>"},
        {"legacy", 8, "#Question: \"Toy Story (1995)\", <unk>. #Answer:"},
        {"unicode", 1, "caf\xc3\xa9 e\xcc\x81 \xe2\x96\x81 \xf0\x9f\x98\x80 \xed\x95\x9c\xea\xb5\xad\xec\x96\xb4"},
        {"spaces", 0, "  a\t\tb\n\n c   "},
        {"malformed", 1, "\xff\xfe\x80 abc \xc3"},
    };
    for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
        int rc = put_sel("tokenizer", seeds[i].name, seeds[i].flags, seeds[i].text);
        if (rc) return rc;
    }
    return COLLM_OK;
}

// HTTP: selector byte (low 2 bits: /recommend, /score, /health, other path;
// bit 2: GET instead of POST) + body.
static int http_seeds(void) {
    static const struct {
        const char *name;
        unsigned char sel;
        const char *body;
    } seeds[] = {
        {"recommend_user", 0, "{\"user\":2,\"k\":3,\"candidates\":5}"},
        {"recommend_history", 0, "{\"history\":[1,2,3],\"k\":2}"},
        {"recommend_both", 0, "{\"user\":1,\"history\":[0,4],\"k\":1,\"candidates\":2}"},
        {"score", 1, "{\"user\":3,\"items\":[1,2,5]}"},
        {"score_history", 1, "{\"history\":[2],\"items\":[4]}"},
        {"health", 2 | 4, ""},
        {"bad_field", 0, "{\"user\":1,\"nope\":true}"},
        {"bad_json", 1, "{\"user\":"},
        {"duplicate_key", 0, "{\"user\":1,\"user\":2}"},
        {"trailing_text", 1, "{\"user\":1,\"items\":[2]} xyz"},
        {"bad_utf8_field", 0, "{\"us\xc3" "er\":1}"},
    };
    for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
        int rc = put_sel("http", seeds[i].name, seeds[i].sel, seeds[i].body);
        if (rc) return rc;
    }
    return COLLM_OK;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: make_seeds OUT_DIR TMP_DIR\n");
        return 2;
    }
    out_dir = argv[1];
    if (collm_mkdir_p(argv[2]) != COLLM_OK || gguf_seeds(argv[2]) || dataset_seeds() || tokenizer_seeds() || http_seeds()) {
        fprintf(stderr, "make_seeds: %s\n", collm_last_error());
        return 1;
    }
    return 0;
}
