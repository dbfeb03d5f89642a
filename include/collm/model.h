// Llama / Qwen2 transformer forward pass over GGUF models, matching llama.cpp
// (architectures "llama" and "qwen2": pre-norm RMSNorm, RoPE, causal GQA
// attention, SwiGLU FFN, final RMSNorm + LM head).
//
// Memory: every tensor is dequantised to F32 at load, so a model takes
// 4 bytes x n_params of RAM (e.g. 232 MB for the 58 M bench model, ~2 GB
// for Qwen2-0.5B) whatever its file type. A context adds the KV cache,
// 2 x n_layer x n_ctx x n_head_kv x head_dim floats, the cached keys of one
// layer transposed (n_ctx x n_head_kv x head_dim, packed suffixes), scratch for
// n_batch rows (about n_batch x (4 n_embd + 3 n_ff) floats), all allocated
// and touched once at creation: forward calls never allocate.
//
// Typical recommender use: feed a shared prompt prefix once
// (collm_llm_forward ... n_out_rows = 0), then score many candidate suffixes
// against that cached prefix in one packed batch with collm_llm_score_suffixes,
// reading only the "Yes"/"No" vocabulary rows at each suffix's last token.
//
// Threading: a collm_llm_model is read-only once loaded (or initialised):
// any number of threads may run forward passes on it at once, each with its
// own collm_llm_context. A context belongs to one thread at a time (forward
// calls write its KV cache and scratch); use one per concurrent request.
// collm_llm_model_free only when no context of it is in use. Contexts that
// share a collm_pool run their attention jobs one after another (see
// threadpool.h): give each concurrent context its own pool, or NULL.
#ifndef COLLM_MODEL_H
#define COLLM_MODEL_H

#include "collm/version.h"

#include <stdint.h>

#include "collm/gguf.h"
#include "collm/threadpool.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { COLLM_LLM_ARCH_LLAMA = 0, COLLM_LLM_ARCH_QWEN2 = 1 } collm_llm_arch;

typedef struct {
    collm_llm_arch arch;
    int n_vocab;
    int n_ctx_train; // <arch>.context_length (informational)
    int n_embd;      // C
    int n_layer;
    int n_head;
    int n_head_kv;
    int head_dim;    // n_embd / n_head unless attention.key_length says otherwise
    int n_rot;       // rope.dimension_count, default head_dim
    int n_ff;
    float rope_base; // rope.freq_base, default 10000
    float rms_eps;   // attention.layer_norm_rms_epsilon
    int rope_neox;   // 0: NORM pairs (2i, 2i+1) (llama); 1: NEOX pairs (i, i + n_rot/2) (qwen2)
    int has_qkv_bias;// qwen2: attn_q/k/v carry biases
    int tied_output; // no output.weight: the LM head is token_embd
} collm_llm_hparams;

typedef struct collm_llm_model collm_llm_model;     // weights (F32), see src/llm/model_internal.h
typedef struct collm_llm_context collm_llm_context; // KV cache + scratch for one sequence

COLLM_API const char *collm_llm_arch_name(collm_llm_arch arch);
// "llama" / "qwen2" -> arch; COLLM_ERR_ARG for anything else.
COLLM_API int collm_llm_arch_from_name(const char *name, collm_llm_arch *out);

// Loads hyper-parameters and every tensor (shapes checked against the
// hyper-parameters; an error names the tensor) and dequantises to F32.
// NULL + collm_last_error() on failure.
COLLM_API collm_llm_model *collm_llm_model_load(const char *path);
// Flags of collm_llm_model_load_ex. By default a file whose matrices are
// quantised (F16, BF16, Q4_0 ... Q6_K) keeps them in their file type, mapped
// from the file; DEQUANT converts every matrix to F32 instead (the reference
// path, and what full fine-tuning needs).
#define COLLM_LLM_LOAD_DEQUANT 1u
COLLM_API collm_llm_model *collm_llm_model_load_ex(const char *path, unsigned flags);
// Every check collm_llm_model_load makes that the header answers (hyper-
// parameters, each tensor's presence, shape and type, no unknown tensor),
// without reading a weight; path names the file in the message. COLLM_OK
// when the file loads as a model; *hp (may be NULL) gets its hyper-parameters.
COLLM_API int collm_llm_check_file(const collm_gguf_file *f, const char *path, collm_llm_hparams *hp);
// 1 when the model keeps quantised matrices (see collm_llm_model_load_ex).
COLLM_API int collm_llm_model_is_quantised(const collm_llm_model *model);
// Bytes the weights occupy as held (quantised matrices at their file size).
COLLM_API uint64_t collm_llm_model_weight_bytes(const collm_llm_model *model);
COLLM_API void collm_llm_model_free(collm_llm_model *model);
COLLM_API const collm_llm_hparams *collm_llm_model_hparams(const collm_llm_model *model);
COLLM_API int64_t collm_llm_model_n_params(const collm_llm_model *model); // distinct weights (tied head counted once), quantised ones included

// A model with the given hyper-parameters (arch, n_vocab, n_embd, n_layer,
// n_head, n_head_kv, n_ff, rms_eps, rope_base, n_ctx_train, tied_output are
// read; head_dim/n_rot default when 0; rope_neox/has_qkv_bias follow arch).
// Matrices ~ N(0, 0.02^2) drawn from collm_rng(seed) in tensor order, norm
// weights 1, biases 0. Deterministic per seed.
COLLM_API collm_llm_model *collm_llm_model_init_random(const collm_llm_hparams *hp, uint64_t seed);

// Writes the model as a GGUF llama.cpp can load: hparam keys, every
// tokenizer.* key copied from vocab_path (whose token list must have n_vocab
// entries; NULL writes no tokenizer), general.name = name, tensors stored as
// `type` (COLLM_GGML_TYPE_F32 or COLLM_GGML_TYPE_F16; norms and biases stay F32).
COLLM_API int collm_llm_model_save(const collm_llm_model *model, const char *path, const char *vocab_path, const char *name, int type);
// The same into an open writer (e.g. a checkpoint that holds more than the
// model): sets the keys, copies vocab's tokenizer.* keys (vocab may be NULL)
// and adds the tensors.
COLLM_API int collm_llm_model_write(const collm_llm_model *model, collm_gguf_writer *w, const collm_gguf_file *vocab, const char *name, int type);

// --- inference ---------------------------------------------------------

// Sizes the KV cache for n_ctx positions and scratch for up to n_batch new
// rows per call. pool (borrowed, may be NULL) parallelises attention; GEMMs
// use BLAS with whatever thread count the caller set (collm_blas_set_threads).
COLLM_API collm_llm_context *collm_llm_context_create(const collm_llm_model *model, int n_ctx, int n_batch, collm_pool *pool);
COLLM_API void collm_llm_context_free(collm_llm_context *ctx);
COLLM_API int collm_llm_context_n_ctx(const collm_llm_context *ctx);
COLLM_API int collm_llm_context_n_batch(const collm_llm_context *ctx);

// Number of positions held in the cache.
COLLM_API int collm_llm_kv_n_past(const collm_llm_context *ctx);
// Forgets every position >= n_past (0 <= n_past <= current): the kept prefix
// is reused as is, so this costs nothing. collm_llm_kv_truncate(ctx, 0) resets.
COLLM_API int collm_llm_kv_truncate(collm_llm_context *ctx, int n_past);
// Copies the first n_past cached positions of src into dst (same model,
// dst->n_ctx >= n_past); dst then holds exactly that prefix.
COLLM_API int collm_llm_kv_copy(collm_llm_context *dst, const collm_llm_context *src, int n_past);
// Floats that n_past cached positions take outside a context:
// 2 x n_layer x n_past x n_head_kv x head_dim.
COLLM_API int64_t collm_llm_kv_floats(const collm_llm_model *model, int n_past);
// Copies the first n_past cached positions out (0 <= n_past <= current):
// out (collm_llm_kv_floats(model, n_past)), laid out (K|V, layer, position, kv).
COLLM_API int collm_llm_kv_export(const collm_llm_context *ctx, int n_past, float *out);
// Makes the cache hold exactly the first n_past positions of in, a buffer
// collm_llm_kv_export wrote for n_stored >= n_past positions of the same
// model (n_past <= n_ctx). Forward calls then continue after them.
COLLM_API int collm_llm_kv_import(collm_llm_context *ctx, const float *in, int n_stored, int n_past);

// Rows of the input that take a given embedding instead of a token's
// (method.md §3.2 "ID slots").
typedef struct {
    int n;                // number of replaced rows
    const int32_t *rows;  // (n) row indices into the T new rows
    const float *values;  // (n, n_embd) the replacement rows
} collm_llm_slot_rows;

// Runs T new rows at positions n_past .. n_past+T-1, appends their K/V to
// the cache and writes logits:
//   tokens    (T) ids; may be NULL only when slots cover every row
//   slots     may be NULL
//   out_rows  (n_out_rows) row indices whose logits are wanted, in that
//             order; out_rows NULL with n_out_rows < 0 means every row;
//             n_out_rows = 0 computes no head at all (prefix fill)
//   vocab_rows (n_vocab_rows) vocabulary ids to compute, or NULL for all
//   logits_out (n_out, n_vocab_rows or n_vocab) row-major
// T <= n_batch and n_past + T <= n_ctx, else COLLM_ERR_ARG.
COLLM_API int collm_llm_forward(collm_llm_context *ctx, const int32_t *tokens, int T, const collm_llm_slot_rows *slots, const int32_t *out_rows,
                int n_out_rows, const int32_t *vocab_rows, int n_vocab_rows, float *logits_out);

// Scores n_seq suffixes, each continuing the cached prefix (the current
// n_past positions) on its own: suffix s attends to the prefix and to its
// own earlier tokens only. They run as one packed batch (sum of lengths <=
// n_batch; n_past + longest <= n_ctx), every projection one GEMM. The cache
// is left holding the prefix only.
//   tokens   (sum seq_len) the suffixes one after another (NULL if slots cover all)
//   seq_len  (n_seq) lengths, each >= 1
//   slots    rows index the packed rows; may be NULL
//   logits_out (n_seq, n_vocab_rows or n_vocab): logits at each suffix's last row
COLLM_API int collm_llm_score_suffixes(collm_llm_context *ctx, int n_seq, const int32_t *tokens, const int32_t *seq_len,
                       const collm_llm_slot_rows *slots, const int32_t *vocab_rows, int n_vocab_rows, float *logits_out);

#ifdef __cplusplus
}
#endif

#endif
