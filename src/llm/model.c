// Llama / Qwen2 forward pass (see include/collm/model.h).
//
// One forward call over T new rows (several packed sequences in
// collm_llm_score_suffixes):
//   x (T, C) = token_embd[tokens] (slot rows replaced)
//   per layer: the transformer block of llm/block.c (shared with training),
//              whose attention callback here stores K/V rows in the cache and
//              attends to cache + own rows
//   head, only for the requested rows: rmsnorm(x[rows]) · output[vocab]^T
// Every projection is one GEMM over all T rows (q|k|v and gate|up fused).
#include "collm/model.h"

#include "collm/error.h"
#include "collm/gguf.h"
#include "core/ops.h"
#include "core/rng.h"
#include "llm/block.h"
#include "llm/model_internal.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

const char *collm_llm_arch_name(collm_llm_arch arch) {
    switch (arch) {
    case COLLM_LLM_ARCH_LLAMA: return "llama";
    case COLLM_LLM_ARCH_QWEN2: return "qwen2";
    }
    return "?";
}

int collm_llm_arch_from_name(const char *name, collm_llm_arch *out) {
    if (name && strcmp(name, "llama") == 0) *out = COLLM_LLM_ARCH_LLAMA;
    else if (name && strcmp(name, "qwen2") == 0) *out = COLLM_LLM_ARCH_QWEN2;
    else return collm_error(COLLM_ERR_ARG, "unsupported architecture '%s' (supported: llama, qwen2)", name ? name : "");
    return COLLM_OK;
}

// Fills defaults and checks that the hyper-parameters describe a model we
// can run; `where` prefixes the message (the file path).
static int hparams_finish(collm_llm_hparams *hp, const char *where) {
    if (hp->n_vocab <= 0 || hp->n_embd <= 0 || hp->n_layer <= 0 || hp->n_head <= 0 || hp->n_head_kv <= 0 ||
        hp->n_ff <= 0)
        return collm_error(COLLM_ERR_FORMAT,
                           "%s: bad hyper-parameters (n_vocab %d, n_embd %d, n_layer %d, n_head %d, n_head_kv %d, "
                           "n_ff %d): all must be > 0",
                           where, hp->n_vocab, hp->n_embd, hp->n_layer, hp->n_head, hp->n_head_kv, hp->n_ff);
    if (hp->n_embd > 65536 || hp->n_ff > 262144 || hp->n_layer > 1024 || hp->n_head > 1024 || hp->n_vocab > 4000000)
        return collm_error(COLLM_ERR_FORMAT, "%s: hyper-parameters out of range", where);
    if (hp->n_head % hp->n_head_kv != 0)
        return collm_error(COLLM_ERR_FORMAT, "%s: n_head %d is not a multiple of n_head_kv %d", where, hp->n_head,
                           hp->n_head_kv);
    if (hp->head_dim <= 0) {
        if (hp->n_embd % hp->n_head != 0)
            return collm_error(COLLM_ERR_FORMAT, "%s: n_embd %d is not a multiple of n_head %d", where, hp->n_embd,
                               hp->n_head);
        hp->head_dim = hp->n_embd / hp->n_head;
    }
    if (hp->n_rot <= 0) hp->n_rot = hp->head_dim;
    if (hp->n_rot > hp->head_dim || hp->n_rot % 2 != 0)
        return collm_error(COLLM_ERR_FORMAT, "%s: rope.dimension_count %d must be even and <= head_dim %d", where,
                           hp->n_rot, hp->head_dim);
    // Partial RoPE has no reference here: llama.cpp refuses a llama file with
    // n_rot != head_dim ("invalid n_rot"), and the Qwen2 models rotate whole
    // heads; running it would give logits nothing checks.
    if (hp->n_rot != hp->head_dim)
        return collm_error(COLLM_ERR_FORMAT,
                           "%s: %s needs rope.dimension_count == head_dim (%d != %d): partial RoPE is not supported",
                           where, collm_llm_arch_name(hp->arch), hp->n_rot, hp->head_dim);
    if (!(hp->rope_base > 0)) hp->rope_base = 10000.0f;
    // an infinite epsilon zeroes every normalised row: all logits 0, no error
    if (!(hp->rms_eps > 0) || !isfinite(hp->rms_eps))
        return collm_error(COLLM_ERR_FORMAT, "%s: rms epsilon %g must be finite and > 0", where, (double)hp->rms_eps);
    if (hp->n_ctx_train <= 0) hp->n_ctx_train = 2048;
    hp->rope_neox = hp->arch == COLLM_LLM_ARCH_QWEN2;
    hp->has_qkv_bias = hp->arch == COLLM_LLM_ARCH_QWEN2;
    return COLLM_OK;
}

int collm_llm_model_n_tensors(const collm_llm_hparams *hp) {
    return 1 + hp->n_layer * (hp->has_qkv_bias ? 12 : 9) + 2;
}

static void desc_set(collm_llm_tensor_desc *d, const char *name, float **data, collm_qmat *q, int n_dims, int64_t ne0,
                     int64_t ne1) {
    snprintf(d->name, sizeof d->name, "%s", name);
    d->data = data;
    d->q = q;
    d->n_dims = n_dims;
    d->ne[0] = ne0;
    d->ne[1] = ne1;
    d->optional = 0;
}

int collm_llm_model_tensor_list(collm_llm_model *m, collm_llm_tensor_desc *desc) {
    const collm_llm_hparams *hp = &m->hp;
    const int64_t C = hp->n_embd, q_dim = (int64_t)hp->n_head * hp->head_dim,
                  kv_dim = (int64_t)hp->n_head_kv * hp->head_dim, ff = hp->n_ff;
    int n = 0;
    char name[48];
    desc_set(&desc[n++], "token_embd.weight", &m->token_embd, &m->q_token_embd, 2, C, hp->n_vocab);
    for (int l = 0; l < hp->n_layer; l++) {
        collm_llm_layer_weights *w = &m->layers[l];
#define LAYER_TENSOR(suffix, ptr, q, nd, a, b)                            \
    do {                                                                  \
        snprintf(name, sizeof name, "blk.%d.%s", l, suffix);              \
        desc_set(&desc[n++], name, ptr, q, nd, a, b);                     \
    } while (0)
        LAYER_TENSOR("attn_norm.weight", &w->attn_norm, NULL, 1, C, 1);
        // q, k, v weights adjacent (and their biases): the forward runs them
        // as one GEMM over the stacked (q_dim + 2 kv_dim, C) matrix
        LAYER_TENSOR("attn_q.weight", &w->wq, &w->qw[COLLM_W_Q], 2, C, q_dim);
        LAYER_TENSOR("attn_k.weight", &w->wk, &w->qw[COLLM_W_K], 2, C, kv_dim);
        LAYER_TENSOR("attn_v.weight", &w->wv, &w->qw[COLLM_W_V], 2, C, kv_dim);
        if (hp->has_qkv_bias) {
            LAYER_TENSOR("attn_q.bias", &w->bq, NULL, 1, q_dim, 1);
            LAYER_TENSOR("attn_k.bias", &w->bk, NULL, 1, kv_dim, 1);
            LAYER_TENSOR("attn_v.bias", &w->bv, NULL, 1, kv_dim, 1);
        }
        LAYER_TENSOR("attn_output.weight", &w->wo, &w->qw[COLLM_W_O], 2, q_dim, C);
        LAYER_TENSOR("ffn_norm.weight", &w->ffn_norm, NULL, 1, C, 1);
        LAYER_TENSOR("ffn_gate.weight", &w->w_gate, &w->qw[COLLM_W_GATE], 2, C, ff); // gate and up adjacent: one GEMM
        LAYER_TENSOR("ffn_up.weight", &w->w_up, &w->qw[COLLM_W_UP], 2, C, ff);
        LAYER_TENSOR("ffn_down.weight", &w->w_down, &w->qw[COLLM_W_DOWN], 2, ff, C);
#undef LAYER_TENSOR
    }
    desc_set(&desc[n++], "output_norm.weight", &m->output_norm, NULL, 1, C, 1);
    desc_set(&desc[n], "output.weight", &m->output, &m->q_output, 2, C, hp->n_vocab);
    desc[n++].optional = 1;
    return n;
}

collm_llm_model *collm_llm_model_alloc(const collm_llm_hparams *hp) { return collm_llm_model_alloc_ex(hp, 0); }

// The float pointers of desc into m->params, in list order (the matrices of
// a quantised model and a tied head have none).
static void point_params(collm_llm_model *m, const collm_llm_tensor_desc *desc, int n_desc) {
    int64_t off = 0;
    for (int i = 0; i < n_desc; i++) {
        if ((desc[i].optional && m->hp.tied_output) || (m->quantised && desc[i].q)) continue;
        *desc[i].data = m->params + off;
        off += desc[i].ne[0] * desc[i].ne[1];
    }
    if (m->hp.tied_output) m->output = m->token_embd;
}

collm_llm_model *collm_llm_model_alloc_ex(const collm_llm_hparams *hp_in, int quantised) {
    collm_llm_hparams hp = *hp_in;
    if (hparams_finish(&hp, "model") != COLLM_OK) return NULL;
    collm_llm_model *m = collm_calloc(1, sizeof *m);
    if (!m) return NULL;
    m->hp = hp;
    m->layers = collm_calloc((size_t)hp.n_layer, sizeof *m->layers);
    int n_desc = collm_llm_model_n_tensors(&hp);
    collm_llm_tensor_desc *desc = collm_calloc((size_t)n_desc, sizeof *desc);
    if (!m->layers || !desc) goto fail;
    collm_llm_model_tensor_list(m, desc);
    int64_t total = 0;
    for (int i = 0; i < n_desc; i++) {
        if ((desc[i].optional && hp.tied_output) || (quantised && desc[i].q)) continue;
        total += desc[i].ne[0] * desc[i].ne[1];
    }
    m->params = collm_calloc((size_t)(total ? total : 1), sizeof(float));
    if (!m->params) goto fail;
    m->n_params = total;
    m->quantised = quantised;
    point_params(m, desc, n_desc);
    m->weight_bytes = (uint64_t)total * sizeof(float);
    free(desc);
    return m;
fail:
    free(desc);
    collm_llm_model_free(m);
    return NULL;
}

void collm_llm_model_free(collm_llm_model *m) {
    if (!m) return;
    if (!m->params_mapped) free(m->params);
    if (m->file) collm_gguf_close(m->file);
    free(m->layers);
    free(m);
}

const collm_llm_hparams *collm_llm_model_hparams(const collm_llm_model *m) { return &m->hp; }
int collm_llm_model_is_quantised(const collm_llm_model *m) { return m->quantised; }
uint64_t collm_llm_model_weight_bytes(const collm_llm_model *m) { return m->weight_bytes; }

void collm_llm_embed_row(const collm_llm_model *m, int64_t id, float *out) {
    const int64_t C = m->hp.n_embd;
    if (m->token_embd) memcpy(out, m->token_embd + id * C, (size_t)C * sizeof(float));
    else collm_qmat_row(&m->q_token_embd, id, out); // exact, as llama.cpp's get_rows
}

int collm_llm_matmul(float *y, const float *x, const float *w, const collm_qmat *qw, int n_parts, const float *bias, int T,
                     int in, int out, int exact, collm_pool *pool) {
    if (w || !qw || !qw[0].data) {
        collm_ops_matmul_forward(y, x, w, bias, T, in, out, pool);
        return COLLM_OK;
    }
    int rc = collm_qmm_forward(y, out, x, T, qw, n_parts, exact ? COLLM_QMM_DEQ_SGEMM : COLLM_QMM_AUTO, pool);
    if (rc == COLLM_OK && bias)
        for (int64_t t = 0; t < T; t++) collm_ops_axpy(y + t * out, 1.0f, bias, out);
    return rc;
}

int collm_llm_matmul_backward(float *dx, float *dw, float *dbias, const float *dy, const float *x, const float *w,
                              const collm_qmat *qw, int n_parts, int T, int in, int out, collm_pool *pool) {
    if (w || !qw || !qw[0].data) {
        collm_ops_matmul_backward_set(dx, dw, dbias, dy, x, w, T, in, out, pool);
        return COLLM_OK;
    }
    if (dw || dbias) return collm_error(COLLM_ERR_ARG, "a quantised weight is frozen: it has no gradient");
    if (!dx) return COLLM_OK;
    if (T > 0 && in > 0) memset(dx, 0, (size_t)T * (size_t)in * sizeof(float)); // the parts add into it
    int rc = COLLM_OK;
    for (int k = 0, col = 0; k < n_parts && rc == COLLM_OK; col += (int)qw[k].rows, k++)
        rc = collm_qmm_backward_x(dx, dy + col, out, T, &qw[k], pool);
    return rc;
}
int64_t collm_llm_model_n_params(const collm_llm_model *m) {
    int64_t n = m->n_params; // floats held; a quantised model's matrices count by their elements
    if (!m->quantised) return n;
    n += m->q_token_embd.rows * m->q_token_embd.cols;
    if (!m->hp.tied_output) n += m->q_output.rows * m->q_output.cols;
    for (int l = 0; l < m->hp.n_layer; l++)
        for (int k = 0; k < 7; k++) n += m->layers[l].qw[k].rows * m->layers[l].qw[k].cols;
    return n;
}

// --- loading -------------------------------------------------------------

// Reads "<arch>.<suffix>" as an int; absent -> *out = def (or an error when required).
static int get_arch_int(const collm_gguf_file *f, const char *arch, const char *suffix, int required, int def, int *out,
                        const char *path) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    *out = def;
    if (collm_gguf_find_key(f, key) < 0) {
        if (required) return collm_error(COLLM_ERR_FORMAT, "%s: missing key '%s'", path, key);
        return COLLM_OK;
    }
    int64_t v;
    if (collm_gguf_get_i64(f, key, &v) != COLLM_OK) return COLLM_ERR_FORMAT; // its message names the file
    if (v < 0 || v > 0x7fffffff) return collm_error(COLLM_ERR_FORMAT, "%s: key '%s' = %lld out of range", path, key, (long long)v);
    *out = (int)v;
    return COLLM_OK;
}

static int get_arch_float(const collm_gguf_file *f, const char *arch, const char *suffix, int required, float def,
                          float *out, const char *path) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    *out = def;
    if (collm_gguf_find_key(f, key) < 0) {
        if (required) return collm_error(COLLM_ERR_FORMAT, "%s: missing key '%s'", path, key);
        return COLLM_OK;
    }
    if (collm_gguf_get_f32(f, key, out) != COLLM_OK) return COLLM_ERR_FORMAT; // its message names the file
    return COLLM_OK;
}

static int read_hparams(const collm_gguf_file *f, const char *path, collm_llm_hparams *hp) {
    memset(hp, 0, sizeof *hp);
    char *arch = collm_gguf_get_str_dup(f, "general.architecture");
    if (!arch) return collm_error(COLLM_ERR_FORMAT, "%s: missing key 'general.architecture'", path);
    int rc = collm_llm_arch_from_name(arch, &hp->arch);
    if (rc != COLLM_OK) {
        collm_error_prefix(rc, "%s", path);
        free(arch);
        return rc;
    }
    int key_len = 0, val_len = 0;
    if ((rc = get_arch_int(f, arch, "embedding_length", 1, 0, &hp->n_embd, path)) ||
        (rc = get_arch_int(f, arch, "block_count", 1, 0, &hp->n_layer, path)) ||
        (rc = get_arch_int(f, arch, "feed_forward_length", 1, 0, &hp->n_ff, path)) ||
        (rc = get_arch_int(f, arch, "attention.head_count", 1, 0, &hp->n_head, path)) ||
        (rc = get_arch_int(f, arch, "attention.head_count_kv", 0, 0, &hp->n_head_kv, path)) ||
        (rc = get_arch_int(f, arch, "context_length", 0, 0, &hp->n_ctx_train, path)) ||
        (rc = get_arch_int(f, arch, "rope.dimension_count", 0, 0, &hp->n_rot, path)) ||
        (rc = get_arch_int(f, arch, "attention.key_length", 0, 0, &key_len, path)) ||
        (rc = get_arch_int(f, arch, "attention.value_length", 0, 0, &val_len, path)) ||
        (rc = get_arch_int(f, arch, "vocab_size", 0, 0, &hp->n_vocab, path)) ||
        (rc = get_arch_float(f, arch, "attention.layer_norm_rms_epsilon", 1, 0.0f, &hp->rms_eps, path)) ||
        (rc = get_arch_float(f, arch, "rope.freq_base", 0, 10000.0f, &hp->rope_base, path))) {
        free(arch);
        return rc;
    }
    // RoPE scaling changes every position's angle; llama.cpp applies it, so a
    // file that asks for it is refused rather than run with other logits.
    // llama.cpp's reading: the type defaults to "linear" (a factor with no
    // type key scales), the factor is rope.scaling.factor else the older
    // rope.scale_linear, 0 or 1 means none, and type "none" never scales.
    {
        char key[128];
        snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
        char *type = collm_gguf_get_str_dup(f, key);
        float factor = 0.0f;
        snprintf(key, sizeof key, "%s.rope.scaling.factor", arch);
        if (collm_gguf_find_key(f, key) < 0) snprintf(key, sizeof key, "%s.rope.scale_linear", arch);
        if (collm_gguf_find_key(f, key) >= 0 && collm_gguf_get_f32(f, key, &factor) != COLLM_OK)
            rc = COLLM_ERR_FORMAT; // a factor we cannot read is no factor of 1 (the message names file and key)
        else if (!(type && strcmp(type, "none") == 0) && factor != 0.0f && factor != 1.0f)
            rc = collm_error(COLLM_ERR_FORMAT,
                             "%s: RoPE scaling (%s.rope.scaling.type '%s', factor %g) is not supported: collm would "
                             "compute other logits than llama.cpp",
                             path, arch, type ? type : "linear", (double)factor);
        free(type);
        if (rc != COLLM_OK) {
            free(arch);
            return rc;
        }
    }
    free(arch);
    // hparams_finish puts 10000 in for an unset (0) base, for hand-built
    // hyper-parameters; a file's own value must not be replaced so silently:
    // a NaN, negative or zero base ran as 10000, an infinite one as no RoPE
    if (!(hp->rope_base > 0 && isfinite(hp->rope_base)))
        return collm_error(COLLM_ERR_FORMAT, "%s: %s.rope.freq_base = %g must be finite and > 0", path,
                           collm_llm_arch_name(hp->arch), (double)hp->rope_base);
    if (hp->n_head_kv == 0) hp->n_head_kv = hp->n_head; // llama.cpp's default: no GQA
    if (key_len != val_len)
        return collm_error(COLLM_ERR_FORMAT, "%s: attention.key_length %d != value_length %d (unsupported)", path,
                           key_len, val_len);
    hp->head_dim = key_len;
    if (hp->n_vocab == 0) {
        int64_t ti = collm_gguf_find_key(f, "tokenizer.ggml.tokens");
        if (ti >= 0 && collm_gguf_kv_type(f, ti) == COLLM_GGUF_TYPE_ARRAY) hp->n_vocab = (int)collm_gguf_arr_n(f, ti);
    }
    if (hp->n_vocab == 0) {
        const collm_gguf_tensor_info *t = collm_gguf_find_tensor(f, "token_embd.weight");
        if (t) hp->n_vocab = (int)t->ne[1];
    }
    hp->tied_output = collm_gguf_find_tensor(f, "output.weight") == NULL;
    return hparams_finish(hp, path);
}

// Tensors a collm checkpoint stores beside the model (CF tables, FECE MLP,
// LoRA pairs, optimizer and loader state).
static int is_collm_tensor(const char *name) {
    static const char *prefixes[] = {"cf.", "fece.", "fuse.", "optim.", "train."};
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
        if (strncmp(name, prefixes[i], strlen(prefixes[i])) == 0) return 1;
    size_t n = strlen(name);
    return n > 7 && (strcmp(name + n - 7, ".lora_a") == 0 || strcmp(name + n - 7, ".lora_b") == 0);
}

collm_llm_model *collm_llm_model_load(const char *path) { return collm_llm_model_load_ex(path, 0); }

// 1 when a matrix of the model is stored in another type than F32: the model
// then keeps its matrices in the file mapping (unless asked to dequantise).
static int file_is_quantised(const collm_gguf_file *f, const collm_llm_tensor_desc *desc, int n_desc) {
    for (int i = 0; i < n_desc; i++) {
        const collm_gguf_tensor_info *t = collm_gguf_find_tensor(f, desc[i].name);
        if (t && desc[i].q && t->type != COLLM_GGML_TYPE_F32) return 1;
    }
    return 0;
}

// Drops the whole pages of [p, p + n) from the resident set (a private
// file mapping: they read back from the file if touched again), so that a
// model copied out of its file peaks near one copy, not two.
static void release_pages(const void *p, size_t n) {
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), a = ((uintptr_t)p + page - 1) & ~(page - 1),
                    b = ((uintptr_t)p + n) & ~(page - 1);
    if (b > a) madvise((void *)a, b - a, MADV_DONTNEED);
}

// An F32 file whose tensors lie in the model's own order, back to back (as
// collm writes them, and llama.cpp for 32-byte multiples): m->params can be
// the file mapping itself, made writable copy-on-write (a private mapping:
// training or a LoRA merge copies only the pages it changes, never the
// file). Returns 1 when m now uses the mapping; 0 leaves m as it was.
static int map_params(collm_llm_model *m, collm_gguf_file *f, const collm_llm_tensor_desc *desc, int n_desc) {
    uint8_t *base = NULL;
    int64_t off = 0;
    for (int i = 0; i < n_desc; i++) {
        if (desc[i].optional && m->hp.tied_output) continue;
        const collm_gguf_tensor_info *t = collm_gguf_find_tensor(f, desc[i].name);
        if (!t || t->type != COLLM_GGML_TYPE_F32) return 0;
        if (!base) base = (uint8_t *)t->data;
        if ((uint8_t *)t->data != base + off * (int64_t)sizeof(float)) return 0;
        off += desc[i].ne[0] * desc[i].ne[1];
    }
    if (!base || off != m->n_params || ((uintptr_t)base & (sizeof(float) - 1))) return 0;
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), a = (uintptr_t)base & ~(page - 1);
    if (mprotect((void *)a, (uintptr_t)base + (size_t)off * sizeof(float) - a, PROT_READ | PROT_WRITE) != 0) return 0;
    free(m->params);
    m->params = (float *)base;
    m->params_mapped = 1;
    point_params(m, desc, n_desc);
    return 1;
}

// Every check of a model file that its header can answer: hyper-parameters,
// the weights the file holds against those they need (before any allocation
// sized by them), then every tensor's presence, shape and type, and no
// tensor the forward would ignore. The loader and `collm info` share it, so
// info calls a file a base exactly when it loads. *quantised: 1 when a
// matrix is stored in another type than F32.
static int check_file(const collm_gguf_file *f, const char *path, collm_llm_hparams *hp, int *quantised) {
    int rc = read_hparams(f, path, hp);
    if (rc != COLLM_OK) return rc;
    // The header's sizes decide the allocation: check first that the file
    // holds at least that many weights (a vocab-only GGUF or a lying
    // header must fail here, not ask for gigabytes).
    int64_t C = hp->n_embd, Q = (int64_t)hp->n_head * hp->head_dim, KV = (int64_t)hp->n_head_kv * hp->head_dim;
    double need = (double)hp->n_vocab * C + (double)hp->n_layer * (2.0 * Q * C + 2.0 * KV * C + 3.0 * C * hp->n_ff);
    double have = 0;
    for (int64_t i = 0; i < collm_gguf_n_tensors(f); i++) have += (double)collm_gguf_tensor_n_elements(collm_gguf_tensor(f, i));
    if (have < need)
        return collm_error(COLLM_ERR_FORMAT, "%s: holds %.0f weights but its hyper-parameters need at least %.0f (no or missing tensors)",
                           path, have, need);
    // the tensor list needs only the layer array (names and shapes; no weights)
    collm_llm_model probe = {.hp = *hp};
    int n_desc = collm_llm_model_n_tensors(hp);
    probe.layers = collm_calloc((size_t)hp->n_layer, sizeof *probe.layers);
    collm_llm_tensor_desc *desc = collm_calloc((size_t)n_desc, sizeof *desc);
    if (!probe.layers || !desc) {
        free(probe.layers);
        free(desc);
        return COLLM_ERR_NOMEM;
    }
    collm_llm_model_tensor_list(&probe, desc);
    *quantised = file_is_quantised(f, desc, n_desc);
    int n_found = 0;
    for (int i = 0; i < n_desc && rc == COLLM_OK; i++) {
        const collm_gguf_tensor_info *t = collm_gguf_find_tensor(f, desc[i].name);
        if (!t) {
            if (!desc[i].optional) rc = collm_error(COLLM_ERR_FORMAT, "%s: missing tensor '%s'", path, desc[i].name);
            continue;
        }
        n_found++;
        int shape_ok = t->ne[0] == desc[i].ne[0] && t->ne[1] == desc[i].ne[1];
        for (int d = 2; d < COLLM_GGUF_MAX_DIMS; d++) shape_ok = shape_ok && t->ne[d] == 1;
        if (!shape_ok)
            rc = collm_error(COLLM_ERR_FORMAT, "%s: tensor '%s' has shape [%lld, %lld, %lld, %lld], expected [%lld, %lld]",
                             path, desc[i].name, (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2],
                             (long long)t->ne[3], (long long)desc[i].ne[0], (long long)desc[i].ne[1]);
        else if (!collm_gguf_tensor_type_supported(t->type))
            rc = collm_error(COLLM_ERR_FORMAT, "%s: tensor '%s' has unsupported type %s", path, desc[i].name,
                             collm_ggml_type_name(t->type));
    }
    if (rc == COLLM_OK && n_found != collm_gguf_n_tensors(f)) {
        // A tensor we do not know would change the computation (rope_freqs,
        // an attn_output bias ...): refuse rather than silently ignore it.
        // A collm checkpoint (it has collm.stage) also holds the recommender's
        // own tensors next to the model's; those belong to other modules.
        int is_checkpoint = collm_gguf_find_key(f, "collm.stage") >= 0;
        for (int64_t i = 0; i < collm_gguf_n_tensors(f) && rc == COLLM_OK; i++) {
            const char *name = collm_gguf_tensor(f, i)->name;
            int known = 0;
            for (int j = 0; j < n_desc && !known; j++) known = strcmp(desc[j].name, name) == 0;
            if (!known && !(is_checkpoint && is_collm_tensor(name)))
                rc = collm_error(COLLM_ERR_FORMAT, "%s: unexpected tensor '%s' for architecture %s", path, name,
                                 collm_llm_arch_name(hp->arch));
        }
    }
    free(probe.layers);
    free(desc);
    return rc;
}

int collm_llm_check_file(const collm_gguf_file *f, const char *path, collm_llm_hparams *hp) {
    if (!f) return collm_error(COLLM_ERR_ARG, "collm_llm_check_file: no file");
    collm_llm_hparams tmp;
    int quantised;
    return check_file(f, path ? path : "model", hp ? hp : &tmp, &quantised);
}

collm_llm_model *collm_llm_model_load_ex(const char *path, unsigned flags) {
    collm_gguf_file *f = collm_gguf_open(path);
    if (!f) return NULL;
    collm_llm_model *m = NULL;
    collm_llm_tensor_desc *desc = NULL;
    collm_llm_hparams hp;
    int quantised = 0;
    if (check_file(f, path, &hp, &quantised) != COLLM_OK) goto fail;
    if (flags & COLLM_LLM_LOAD_DEQUANT) quantised = 0;
    m = collm_llm_model_alloc_ex(&hp, quantised);
    if (!m) goto fail;
    int n_desc = collm_llm_model_n_tensors(&hp);
    desc = collm_calloc((size_t)n_desc, sizeof *desc);
    if (!desc) goto fail;
    collm_llm_model_tensor_list(m, desc);
    // every float in place in the file: no copy (the calloc'd block is never touched)
    const int mapped = !quantised && map_params(m, f, desc, n_desc);
    for (int i = 0; i < n_desc; i++) {
        const collm_gguf_tensor_info *t = collm_gguf_find_tensor(f, desc[i].name);
        if (!t) continue; // an optional one (checked above)
        if (quantised && desc[i].q) {
            // stays in the mapping, in its file type
            *desc[i].q = (collm_qmat){t->type, t->data, t->ne[1], t->ne[0], collm_quant_row_bytes(t->type, t->ne[0])};
            m->weight_bytes += t->n_bytes;
            continue;
        }
        if (mapped) continue; // checked above: F32, in place
        if (collm_gguf_tensor_to_f32(t, *desc[i].data) != COLLM_OK) {
            collm_error_prefix(COLLM_ERR_FORMAT, "%s: tensor '%s'", path, desc[i].name);
            goto fail;
        }
        release_pages(t->data, t->n_bytes); // copied: the file's pages need not stay resident beside it
    }
    free(desc);
    if (quantised || mapped) {
        if (quantised && m->hp.tied_output) m->q_output = m->q_token_embd;
        m->file = f; // the mapping holds the matrices: closed with the model
    } else {
        collm_gguf_close(f);
    }
    return m;
fail:
    free(desc);
    collm_llm_model_free(m);
    collm_gguf_close(f);
    return NULL;
}

// --- random init and saving ----------------------------------------------

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

collm_llm_model *collm_llm_model_init_random(const collm_llm_hparams *hp, uint64_t seed) {
    collm_llm_model *m = collm_llm_model_alloc(hp);
    if (!m) return NULL;
    int n_desc = collm_llm_model_n_tensors(&m->hp);
    collm_llm_tensor_desc *desc = collm_calloc((size_t)n_desc, sizeof *desc);
    if (!desc) {
        collm_llm_model_free(m);
        return NULL;
    }
    collm_llm_model_tensor_list(m, desc);
    collm_rng rng;
    collm_rng_seed(&rng, seed);
    for (int i = 0; i < n_desc; i++) {
        if (desc[i].optional && m->hp.tied_output) continue;
        float *p = *desc[i].data;
        int64_t n = desc[i].ne[0] * desc[i].ne[1];
        if (ends_with(desc[i].name, "norm.weight")) {
            for (int64_t j = 0; j < n; j++) p[j] = 1.0f;
        } else if (ends_with(desc[i].name, ".bias")) {
            for (int64_t j = 0; j < n; j++) p[j] = 0.0f;
        } else {
            for (int64_t j = 0; j < n; j++) p[j] = (float)(0.02 * collm_rng_normal(&rng));
        }
    }
    free(desc);
    return m;
}

int collm_llm_model_write(const collm_llm_model *m_const, collm_gguf_writer *w, const collm_gguf_file *vocab, const char *name, int type) {
    if (type != COLLM_GGML_TYPE_F32 && type != COLLM_GGML_TYPE_F16)
        return collm_error(COLLM_ERR_ARG, "collm_llm_model_write: type must be F32 or F16, not %d", type);
    collm_llm_model *m = (collm_llm_model *)m_const; // the tensor list takes addresses; nothing is modified
    const collm_llm_hparams *hp = &m->hp;
    const char *arch = collm_llm_arch_name(hp->arch);
    int rc = COLLM_OK;
    if (vocab) {
        int64_t ti = collm_gguf_find_key(vocab, "tokenizer.ggml.tokens");
        if (ti < 0 || collm_gguf_kv_type(vocab, ti) != COLLM_GGUF_TYPE_ARRAY)
            return collm_error(COLLM_ERR_FORMAT, "vocabulary file has no tokenizer.ggml.tokens array");
        if ((int64_t)collm_gguf_arr_n(vocab, ti) != hp->n_vocab)
            return collm_error(COLLM_ERR_ARG, "vocabulary has %llu tokens, model n_vocab is %d",
                               (unsigned long long)collm_gguf_arr_n(vocab, ti), hp->n_vocab);
    }
    char key[128];
#define KEY(suffix) (snprintf(key, sizeof key, "%s.%s", arch, suffix), key)
    if ((rc = collm_gguf_writer_set_str(w, "general.architecture", arch)) ||
        (rc = collm_gguf_writer_set_str(w, "general.name", name ? name : "collm")) ||
        (rc = collm_gguf_writer_set_u32(w, KEY("context_length"), (uint32_t)hp->n_ctx_train)) ||
        (rc = collm_gguf_writer_set_u32(w, KEY("embedding_length"), (uint32_t)hp->n_embd)) ||
        (rc = collm_gguf_writer_set_u32(w, KEY("block_count"), (uint32_t)hp->n_layer)) ||
        (rc = collm_gguf_writer_set_u32(w, KEY("feed_forward_length"), (uint32_t)hp->n_ff)) ||
        (rc = collm_gguf_writer_set_u32(w, KEY("rope.dimension_count"), (uint32_t)hp->n_rot)) ||
        (rc = collm_gguf_writer_set_u32(w, KEY("attention.head_count"), (uint32_t)hp->n_head)) ||
        (rc = collm_gguf_writer_set_u32(w, KEY("attention.head_count_kv"), (uint32_t)hp->n_head_kv)) ||
        (rc = collm_gguf_writer_set_f32(w, KEY("attention.layer_norm_rms_epsilon"), hp->rms_eps)) ||
        (rc = collm_gguf_writer_set_f32(w, KEY("rope.freq_base"), hp->rope_base)) ||
        (rc = collm_gguf_writer_set_u32(w, KEY("vocab_size"), (uint32_t)hp->n_vocab)) ||
        (rc = collm_gguf_writer_set_u32(w, "general.file_type", type == COLLM_GGML_TYPE_F16 ? 1u : 0u)))
        return rc;
    if (hp->head_dim * hp->n_head != hp->n_embd &&
        ((rc = collm_gguf_writer_set_u32(w, KEY("attention.key_length"), (uint32_t)hp->head_dim)) ||
         (rc = collm_gguf_writer_set_u32(w, KEY("attention.value_length"), (uint32_t)hp->head_dim))))
        return rc;
#undef KEY
    if (vocab)
        for (int64_t i = 0; i < collm_gguf_n_kv(vocab); i++)
            if (strncmp(collm_gguf_key(vocab, i), "tokenizer.", 10) == 0 && (rc = collm_gguf_writer_copy_kv(w, vocab, i)))
                return rc;
    int n_desc = collm_llm_model_n_tensors(hp);
    collm_llm_tensor_desc *desc = collm_calloc((size_t)n_desc, sizeof *desc);
    if (!desc) return COLLM_ERR_NOMEM;
    collm_llm_model_tensor_list(m, desc);
    for (int i = 0; i < n_desc && rc == COLLM_OK; i++) {
        if (desc[i].optional && hp->tied_output) continue;
        // llama.cpp keeps 1-D tensors (norms, biases) in F32 whatever the file type.
        collm_ggml_type t = desc[i].n_dims == 1 ? COLLM_GGML_TYPE_F32 : (collm_ggml_type)type;
        if (*desc[i].data) {
            rc = collm_gguf_writer_add_tensor_f32(w, desc[i].name, t, desc[i].n_dims, desc[i].ne, *desc[i].data);
            continue;
        }
        // a quantised matrix: written dequantised (the exact values it holds)
        const collm_qmat *q = desc[i].q;
        float *tmp = collm_malloc((size_t)(q->rows * q->cols) * sizeof(float));
        if (!tmp) {
            rc = COLLM_ERR_NOMEM;
            break;
        }
        for (int64_t r = 0; r < q->rows; r++) collm_qmat_row(q, r, tmp + r * q->cols);
        rc = collm_gguf_writer_add_tensor_f32(w, desc[i].name, t, desc[i].n_dims, desc[i].ne, tmp);
        free(tmp);
    }
    free(desc);
    return rc;
}

int collm_llm_model_save(const collm_llm_model *m, const char *path, const char *vocab_path, const char *name, int type) {
    collm_gguf_file *vocab = NULL;
    if (vocab_path && !(vocab = collm_gguf_open(vocab_path))) return COLLM_ERR_IO;
    collm_gguf_writer *w = collm_gguf_writer_create();
    int rc = w ? collm_llm_model_write(m, w, vocab, name, type) : COLLM_ERR_NOMEM;
    if (rc != COLLM_OK && vocab_path) collm_error_prefix(rc, "%s", vocab_path);
    if (rc == COLLM_OK) rc = collm_gguf_writer_write(w, path);
    collm_gguf_writer_free(w);
    if (vocab) collm_gguf_close(vocab);
    return rc;
}

// --- context -------------------------------------------------------------

struct collm_llm_context {
    const collm_llm_model *model;
    collm_pool *pool;
    int n_ctx, n_batch, n_past;
    float *k_cache; // (n_layer, n_ctx, kv_dim)
    float *v_cache; // (n_layer, n_ctx, kv_dim)
    collm_llm_block_acts acts; // one scratch set of n_batch rows for every layer (llm/block.h); x is the residual stream
    float *qkv;      // (B, q_dim + 2 kv_dim) fused projection output
    float *rope_cs;  // (B, n_rot/2, 2) cos, sin of each row's RoPE angles, shared by all layers
    int32_t *pos;    // (B) absolute positions
    int32_t *rows;   // (B) output row list / seq offsets
    unsigned char *covered; // (B) rows given by slots
    float *att_scratch; // (threads, collm_ops_attention_scratch(n_ctx)) score rows, heap: they grow with n_ctx
    float *att_kt;   // (collm_ops_attention_packed_kt(n_ctx, ...)) cached keys transposed (packed suffixes)
    float *block;    // the one allocation behind every float buffer above
    const collm_lora_adapter *lora; // adapter run beside the weights, or NULL
    float *lora_xa;  // (targets, B, rank) x·Aᵀ of each adapted projection
};

int collm_llm_context_set_lora(collm_llm_context *ctx, const collm_lora_adapter *lora) {
    free(ctx->lora_xa);
    ctx->lora_xa = NULL;
    ctx->lora = NULL;
    memset(ctx->acts.lora_xa, 0, sizeof ctx->acts.lora_xa);
    if (!lora) return COLLM_OK;
    if (lora->n_layer != ctx->model->hp.n_layer)
        return collm_error(COLLM_ERR_ARG, "LoRA adapter of %d layers for a model of %d", lora->n_layer, ctx->model->hp.n_layer);
    size_t per = (size_t)ctx->n_batch * (size_t)lora->rank;
    ctx->lora_xa = malloc((size_t)COLLM_LORA_N_TARGETS * per * sizeof(float));
    if (!ctx->lora_xa) return collm_error(COLLM_ERR_NOMEM, "out of memory for the LoRA activations");
    for (int t = 0; t < COLLM_LORA_N_TARGETS; t++) ctx->acts.lora_xa[t] = ctx->lora_xa + (size_t)t * per;
    ctx->lora = lora;
    return COLLM_OK;
}

collm_llm_context *collm_llm_context_create(const collm_llm_model *model, int n_ctx, int n_batch, collm_pool *pool) {
    if (!model) {
        collm_error(COLLM_ERR_ARG, "collm_llm_context_create: no model");
        return NULL;
    }
    if (n_ctx <= 0 || n_batch <= 0 || n_ctx > (1 << 24) || n_batch > (1 << 20)) {
        collm_error(COLLM_ERR_ARG, "collm_llm_context_create: bad n_ctx %d / n_batch %d", n_ctx, n_batch);
        return NULL;
    }
    const collm_llm_hparams *hp = &model->hp;
    for (int l = 0; l < hp->n_layer; l++)
        if (!collm_llm_block_layout_ok(hp, &model->layers[l])) {
            collm_error(COLLM_ERR_ARG, "collm_llm_context_create: layer %d weights are not in the fused layout", l);
            return NULL;
        }
    // n_batch may exceed n_ctx: collm_llm_score_suffixes packs many short suffixes.
    const size_t C = (size_t)hp->n_embd, q_dim = (size_t)hp->n_head * hp->head_dim,
                 kv_dim = (size_t)hp->n_head_kv * hp->head_dim, ff = (size_t)hp->n_ff, B = (size_t)n_batch;
    size_t cache = (size_t)hp->n_layer * (size_t)n_ctx * kv_dim;
    collm_llm_context *ctx = collm_calloc(1, sizeof *ctx);
    if (!ctx) return NULL;
    collm_llm_block_acts *a = &ctx->acts;
    struct {
        float **buf;
        size_t n;
    } bufs[] = {{&ctx->k_cache, cache}, {&ctx->v_cache, cache}, {&a->x, B * C}, {&a->xn1, B * C}, {&a->rstd1, B},
                {&a->q_in, B * C}, {&a->q, B * q_dim}, {&a->k, B * kv_dim}, {&a->v, B * kv_dim},
                {&a->attn, B * q_dim}, {&a->x_mid, B * C}, {&a->xn2, B * C}, {&a->rstd2, B}, {&a->gu, B * 2 * ff},
                {&a->h, B * ff}, {&ctx->qkv, B * (q_dim + 2 * kv_dim)}, {&ctx->rope_cs, B * (size_t)hp->n_rot},
                {&ctx->att_kt, (size_t)collm_ops_attention_packed_kt(n_ctx, hp->n_head_kv, hp->head_dim)}};
    size_t total = 0;
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) total += (bufs[i].n + 15) & ~(size_t)15;
    ctx->model = model;
    ctx->pool = pool;
    ctx->n_ctx = n_ctx;
    ctx->n_batch = n_batch;
    // calloc of a large block maps fresh zero pages lazily; memset touches
    // them now so no forward call pays page faults.
    ctx->block = malloc(total * sizeof(float));
    ctx->pos = malloc(B * sizeof(int32_t));
    ctx->rows = malloc((B + 1) * sizeof(int32_t));
    ctx->covered = malloc(B);
    ctx->att_scratch = malloc((size_t)collm_pool_size(pool) * (size_t)collm_ops_attention_scratch(n_ctx) * sizeof(float));
    if (!ctx->block || !ctx->pos || !ctx->rows || !ctx->covered || !ctx->att_scratch) {
        collm_error(COLLM_ERR_NOMEM, "collm_llm_context_create: out of memory for %zu floats (n_ctx %d, n_batch %d)", total,
                    n_ctx, n_batch);
        collm_llm_context_free(ctx);
        return NULL;
    }
    memset(ctx->block, 0, total * sizeof(float));
    size_t off = 0;
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
        *bufs[i].buf = ctx->block + off;
        off += (bufs[i].n + 15) & ~(size_t)15;
    }
    a->out = a->x; // each layer's output replaces its input
    return ctx;
}

void collm_llm_context_free(collm_llm_context *ctx) {
    if (!ctx) return;
    free(ctx->block);
    free(ctx->pos);
    free(ctx->rows);
    free(ctx->covered);
    free(ctx->att_scratch);
    free(ctx->lora_xa);
    free(ctx);
}

int collm_llm_context_n_ctx(const collm_llm_context *ctx) { return ctx->n_ctx; }
int collm_llm_context_n_batch(const collm_llm_context *ctx) { return ctx->n_batch; }
int collm_llm_kv_n_past(const collm_llm_context *ctx) { return ctx->n_past; }

int collm_llm_kv_truncate(collm_llm_context *ctx, int n_past) {
    if (n_past < 0 || n_past > ctx->n_past)
        return collm_error(COLLM_ERR_ARG, "collm_llm_kv_truncate: n_past %d outside [0, %d]", n_past, ctx->n_past);
    ctx->n_past = n_past;
    return COLLM_OK;
}

int collm_llm_kv_copy(collm_llm_context *dst, const collm_llm_context *src, int n_past) {
    if (dst->model != src->model) return collm_error(COLLM_ERR_ARG, "collm_llm_kv_copy: contexts of different models");
    if (n_past < 0 || n_past > src->n_past || n_past > dst->n_ctx)
        return collm_error(COLLM_ERR_ARG, "collm_llm_kv_copy: n_past %d outside [0, %d] or over the destination n_ctx %d",
                           n_past, src->n_past, dst->n_ctx);
    const collm_llm_hparams *hp = &src->model->hp;
    const size_t kv_dim = (size_t)hp->n_head_kv * hp->head_dim;
    for (int l = 0; l < hp->n_layer; l++) {
        memcpy(dst->k_cache + (size_t)l * dst->n_ctx * kv_dim, src->k_cache + (size_t)l * src->n_ctx * kv_dim,
               (size_t)n_past * kv_dim * sizeof(float));
        memcpy(dst->v_cache + (size_t)l * dst->n_ctx * kv_dim, src->v_cache + (size_t)l * src->n_ctx * kv_dim,
               (size_t)n_past * kv_dim * sizeof(float));
    }
    dst->n_past = n_past;
    return COLLM_OK;
}

int64_t collm_llm_kv_floats(const collm_llm_model *model, int n_past) {
    const collm_llm_hparams *hp = &model->hp;
    return 2 * (int64_t)hp->n_layer * n_past * hp->n_head_kv * hp->head_dim;
}

// (K|V, layer, position, kv) of n_stored positions <-> the cache, n rows.
static void kv_move(collm_llm_context *ctx, float *buf, int n_stored, int n, int out) {
    const collm_llm_hparams *hp = &ctx->model->hp;
    const size_t kv_dim = (size_t)hp->n_head_kv * hp->head_dim;
    for (int kind = 0; kind < 2; kind++)
        for (int l = 0; l < hp->n_layer; l++) {
            float *cache = (kind ? ctx->v_cache : ctx->k_cache) + (size_t)l * ctx->n_ctx * kv_dim;
            float *b = buf + ((size_t)kind * hp->n_layer + (size_t)l) * (size_t)n_stored * kv_dim;
            if (out) memcpy(b, cache, (size_t)n * kv_dim * sizeof(float));
            else memcpy(cache, b, (size_t)n * kv_dim * sizeof(float));
        }
}

int collm_llm_kv_export(const collm_llm_context *ctx, int n_past, float *out) {
    if (!ctx || !out || n_past < 0 || n_past > ctx->n_past)
        return collm_error(COLLM_ERR_ARG, "collm_llm_kv_export: n_past %d outside [0, %d]", n_past, ctx ? ctx->n_past : 0);
    kv_move((collm_llm_context *)ctx, out, n_past, n_past, 1); // reads the cache only
    return COLLM_OK;
}

int collm_llm_kv_import(collm_llm_context *ctx, const float *in, int n_stored, int n_past) {
    if (!ctx || !in || n_past < 0 || n_past > n_stored || n_past > ctx->n_ctx)
        return collm_error(COLLM_ERR_ARG, "collm_llm_kv_import: n_past %d outside [0, %d] or over n_ctx %d", n_past,
                           n_stored, ctx ? ctx->n_ctx : 0);
    kv_move(ctx, (float *)in, n_stored, n_past, 0); // writes the cache only
    ctx->n_past = n_past;
    return COLLM_OK;
}

// --- forward ---------------------------------------------------------------

// Input rows: token embeddings, then slot rows on top. T packed rows.
static int embed_input(collm_llm_context *ctx, const int32_t *tokens, int T, const collm_llm_slot_rows *slots) {
    const collm_llm_model *m = ctx->model;
    const int C = m->hp.n_embd;
    memset(ctx->covered, 0, (size_t)T);
    if (slots && slots->n > 0) {
        if (!slots->rows || !slots->values)
            return collm_error(COLLM_ERR_ARG, "collm_llm_forward: slots with n = %d but no rows/values", slots->n);
        for (int i = 0; i < slots->n; i++) {
            int r = slots->rows[i];
            if (r < 0 || r >= T)
                return collm_error(COLLM_ERR_ARG, "collm_llm_forward: slot %d row %d outside [0, %d)", i, r, T);
            ctx->covered[r] = 1;
        }
    }
    for (int t = 0; t < T; t++) {
        if (ctx->covered[t]) continue;
        if (!tokens) return collm_error(COLLM_ERR_ARG, "collm_llm_forward: no tokens and row %d is not a slot", t);
        int32_t id = tokens[t];
        if (id < 0 || id >= m->hp.n_vocab)
            return collm_error(COLLM_ERR_ARG, "collm_llm_forward: token %d at row %d outside [0, %d)", id, t, m->hp.n_vocab);
        collm_llm_embed_row(m, id, ctx->acts.x + (size_t)t * C);
    }
    if (slots)
        for (int i = 0; i < slots->n; i++)
            memcpy(ctx->acts.x + (size_t)slots->rows[i] * C, slots->values + (size_t)i * C, (size_t)C * sizeof(float));
    return COLLM_OK;
}

// The block's attention callback at inference: a kept sequence's K/V go to
// the cache, then each query attends to the cached prefix and its own
// sequence's rows.
typedef struct {
    collm_llm_context *ctx;
    int keep, n_past;
} infer_attend_ctx;

static void infer_attend(void *c_, const collm_llm_block *b, collm_llm_block_acts *a) {
    const infer_attend_ctx *c = c_;
    collm_llm_context *ctx = c->ctx;
    const collm_llm_hparams *hp = b->hp;
    const size_t kv_dim = (size_t)hp->n_head_kv * hp->head_dim;
    float *k_cache = ctx->k_cache + (size_t)b->layer * ctx->n_ctx * kv_dim; // (n_ctx, kv_dim)
    float *v_cache = ctx->v_cache + (size_t)b->layer * ctx->n_ctx * kv_dim;
    if (c->keep) {
        // one sequence: its K/V go right after the prefix
        memcpy(k_cache + (size_t)c->n_past * kv_dim, a->k, (size_t)b->R * kv_dim * sizeof(float));
        memcpy(v_cache + (size_t)c->n_past * kv_dim, a->v, (size_t)b->R * kv_dim * sizeof(float));
    }
    if (b->n_q == 0) return;
    if (!c->keep || b->q_rows) {
        // Packed suffixes (or the output rows of one sequence): each query
        // sees the cached prefix and its own sequence's rows of k/v; the
        // cache is only read.
        // (with the context's scratch the attention cannot fail)
        (void)collm_ops_attention_packed_forward(a->attn, a->q, b->q_rows, b->n_q, k_cache, v_cache, c->n_past, a->k,
                                                 a->v, ctx->pos, hp->n_head, hp->n_head_kv, hp->head_dim, ctx->pool,
                                                 ctx->att_scratch, ctx->att_kt);
    } else {
        // one sequence, every row: attends to cache[0, n_past + T)
        (void)collm_ops_attention_forward(a->attn, NULL, a->q, k_cache, v_cache, b->R, c->n_past, hp->n_head,
                                          hp->n_head_kv, hp->head_dim, ctx->pool, ctx->att_scratch);
    }
}

// Logits of a few vocab rows of a quantised head: the selected rows of the
// full product, computed alone (the same activation quantisation and dots).
static int head_rows_quantised(collm_llm_context *ctx, const float *hn, int n_out, const int32_t *vocab_rows, int nv,
                               float *logits) {
    const collm_qmat *W = &ctx->model->q_output;
    for (int j = 0; j < nv; j++) {
        collm_qmat row = *W;
        row.data = (const uint8_t *)W->data + (size_t)vocab_rows[j] * W->row_bytes;
        row.rows = 1;
        // column j of logits (n_out, nv)
        int rc = collm_qmm_forward(logits + j, nv, hn, n_out, &row, 1, COLLM_QMM_AUTO, NULL);
        if (rc != COLLM_OK) return rc;
    }
    return COLLM_OK;
}

// The transformer over n_seq packed sequences (lengths seq_len, total T),
// each continuing the cached n_past positions. keep = 1 (one sequence only)
// leaves its K/V in the cache; keep = 0 only reads the cache.
// Logits for packed rows out_rows (n_out) and vocab rows vocab_rows (nv; NULL = all).
static int forward_packed(collm_llm_context *ctx, int n_seq, const int32_t *seq_len, int T, const int32_t *tokens,
                          const collm_llm_slot_rows *slots, int keep, const int32_t *out_rows, int n_out,
                          const int32_t *vocab_rows, int n_vocab_rows, float *logits_out) {
    const collm_llm_model *m = ctx->model;
    const collm_llm_hparams *hp = &m->hp;
    const int C = hp->n_embd;
    const int n_past = ctx->n_past;
    int rc = embed_input(ctx, tokens, T, slots);
    if (rc != COLLM_OK) return rc;
    if (vocab_rows)
        for (int j = 0; j < n_vocab_rows; j++)
            if (vocab_rows[j] < 0 || vocab_rows[j] >= hp->n_vocab)
                return collm_error(COLLM_ERR_ARG, "collm_llm_forward: vocab row %d = %d outside [0, %d)", j, vocab_rows[j],
                                   hp->n_vocab);
    for (int i = 0; i < n_out; i++)
        if (out_rows[i] < 0 || out_rows[i] >= T)
            return collm_error(COLLM_ERR_ARG, "collm_llm_forward: output row %d = %d outside [0, %d)", i, out_rows[i], T);
    // positions: each sequence restarts at n_past
    for (int s = 0, r = 0; s < n_seq; s++)
        for (int i = 0; i < seq_len[s]; i++) ctx->pos[r++] = n_past + i;
    collm_ops_rope_table(ctx->rope_cs, ctx->pos, T, hp->n_rot, hp->rope_base); // once, not per layer and q/k

    // After the last layer's K/V only the output rows matter: that layer's
    // queries, attention, output projection and feed-forward run on those
    // rows alone (gathered to rows 0..n_out-1), and not at all when there are none.
    const int sub = n_out < T;
    infer_attend_ctx att = {ctx, keep, n_past};
    for (int l = 0; l < hp->n_layer; l++) {
        const int last_sub = l == hp->n_layer - 1 && sub;
        collm_llm_block b = {.hp = hp, .w = &m->layers[l], .layer = l, .R = T, .n_q = last_sub ? n_out : T,
                             .q_rows = last_sub ? out_rows : NULL, .rope_cs = ctx->rope_cs, .rope_row = NULL,
                             .rope_row_q = last_sub ? out_rows : NULL, .qkv = ctx->qkv, .pool = ctx->pool,
                             .attend = infer_attend, .attend_ctx = &att, .lora = ctx->lora};
        if ((rc = collm_llm_block_forward(&b, &ctx->acts)) != COLLM_OK) return rc;
    }
    if (keep) ctx->n_past = n_past + T;

    if (n_out == 0) return COLLM_OK;
    // head: gather the requested rows, final norm, then only the wanted vocab rows
    float *x = ctx->acts.x, *h = ctx->acts.x_mid, *hn = ctx->acts.xn1; // (n_out, C) scratch
    for (int i = 0; i < n_out; i++)
        memcpy(h + (size_t)i * C, x + (size_t)(sub ? i : out_rows[i]) * C, (size_t)C * sizeof(float));
    collm_ops_rmsnorm_forward(hn, ctx->acts.rstd1, h, m->output_norm, n_out, C, hp->rms_eps); // (n_out, C)
    if (!vocab_rows) {
        rc = collm_llm_matmul(logits_out, hn, m->output, &m->q_output, 1, NULL, n_out, C, hp->n_vocab, 0, ctx->pool); // (n_out, n_vocab)
    } else if (m->quantised) {
        rc = head_rows_quantised(ctx, hn, n_out, vocab_rows, n_vocab_rows, logits_out);
    } else {
        for (int i = 0; i < n_out; i++)
            for (int j = 0; j < n_vocab_rows; j++)
                logits_out[(size_t)i * n_vocab_rows + j] =
                    collm_ops_dot(hn + (size_t)i * C, m->output + (size_t)vocab_rows[j] * C, C);
    }
    return rc;
}

int collm_llm_forward(collm_llm_context *ctx, const int32_t *tokens, int T, const collm_llm_slot_rows *slots, const int32_t *out_rows,
                int n_out_rows, const int32_t *vocab_rows, int n_vocab_rows, float *logits_out) {
    if (!ctx) return collm_error(COLLM_ERR_ARG, "collm_llm_forward: no context");
    if (T <= 0 || T > ctx->n_batch)
        return collm_error(COLLM_ERR_ARG, "collm_llm_forward: T = %d outside [1, n_batch %d]", T, ctx->n_batch);
    if (ctx->n_past + T > ctx->n_ctx)
        return collm_error(COLLM_ERR_ARG, "collm_llm_forward: n_past %d + T %d exceeds n_ctx %d", ctx->n_past, T, ctx->n_ctx);
    if (vocab_rows && n_vocab_rows <= 0)
        return collm_error(COLLM_ERR_ARG, "collm_llm_forward: n_vocab_rows %d must be > 0", n_vocab_rows);
    int n_out = n_out_rows;
    if (n_out_rows < 0) {
        if (out_rows) return collm_error(COLLM_ERR_ARG, "collm_llm_forward: n_out_rows < 0 with an out_rows list");
        for (int i = 0; i < T; i++) ctx->rows[i] = i;
        out_rows = ctx->rows;
        n_out = T;
    } else if (n_out > 0 && !out_rows) {
        return collm_error(COLLM_ERR_ARG, "collm_llm_forward: n_out_rows %d but no out_rows", n_out);
    } else if (n_out > ctx->n_batch) {
        return collm_error(COLLM_ERR_ARG, "collm_llm_forward: n_out_rows %d exceeds n_batch %d", n_out, ctx->n_batch);
    }
    if (n_out > 0 && !logits_out) return collm_error(COLLM_ERR_ARG, "collm_llm_forward: no logits_out");
    int32_t len = T;
    return forward_packed(ctx, 1, &len, T, tokens, slots, 1, out_rows, n_out, vocab_rows, n_vocab_rows, logits_out);
}

int collm_llm_score_suffixes(collm_llm_context *ctx, int n_seq, const int32_t *tokens, const int32_t *seq_len,
                       const collm_llm_slot_rows *slots, const int32_t *vocab_rows, int n_vocab_rows, float *logits_out) {
    if (!ctx) return collm_error(COLLM_ERR_ARG, "collm_llm_score_suffixes: no context");
    if (n_seq <= 0 || !seq_len || !logits_out)
        return collm_error(COLLM_ERR_ARG, "collm_llm_score_suffixes: need n_seq > 0, seq_len and logits_out");
    if (vocab_rows && n_vocab_rows <= 0)
        return collm_error(COLLM_ERR_ARG, "collm_llm_score_suffixes: n_vocab_rows %d must be > 0", n_vocab_rows);
    int64_t T = 0;
    for (int s = 0; s < n_seq; s++) {
        if (seq_len[s] <= 0 || ctx->n_past + seq_len[s] > ctx->n_ctx)
            return collm_error(COLLM_ERR_ARG, "collm_llm_score_suffixes: suffix %d length %d (n_past %d, n_ctx %d)", s,
                               seq_len[s], ctx->n_past, ctx->n_ctx);
        T += seq_len[s];
        if (T > ctx->n_batch) break;
    }
    if (T > ctx->n_batch)
        return collm_error(COLLM_ERR_ARG, "collm_llm_score_suffixes: %d suffixes exceed n_batch %d rows", n_seq,
                           ctx->n_batch);
    for (int s = 0, r = 0; s < n_seq; s++) {
        r += seq_len[s];
        ctx->rows[s] = r - 1; // last row of suffix s
    }
    return forward_packed(ctx, n_seq, seq_len, (int)T, tokens, slots, 0, ctx->rows, n_seq, vocab_rows, n_vocab_rows,
                          logits_out);
}
