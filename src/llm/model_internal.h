// The weights of an collm_llm_model as plain arrays, for code inside the library
// that reads, updates or differentiates them (training, LoRA merge, save).
// Every float lives in one block (collm_llm_model.params, n_params floats) so an
// optimiser can walk it as one flat vector; the pointers below point into it.
// An F32 file laid out in the model's order is that block itself (mapped
// copy-on-write, no copy at load).
// Matrices are row-major (out, in) as GGUF stores them (ne = {in, out}).
//
// A quantised model (any matrix of the file not F32) keeps its matrices in
// their file type inside the file mapping (the collm_qmat fields); their
// float pointers are NULL and params holds only the 1-D tensors (norms,
// biases). The F32 model is the reference every quantised path is tested
// against.
#ifndef COLLM_MODEL_INTERNAL_H
#define COLLM_MODEL_INTERNAL_H

#include <stdint.h>

#include "collm/gguf.h"
#include "collm/model.h"
#include "llm/lora_internal.h"
#include "llm/quant.h"

typedef enum { COLLM_W_Q, COLLM_W_K, COLLM_W_V, COLLM_W_O, COLLM_W_GATE, COLLM_W_UP, COLLM_W_DOWN } collm_llm_wmat;

typedef struct {
    float *attn_norm; // (C)
    float *wq;        // (n_head * hd, C)
    float *bq;        // (n_head * hd) qwen2 only, else NULL
    float *wk;        // (n_head_kv * hd, C)
    float *bk;        // (n_head_kv * hd) or NULL
    float *wv;        // (n_head_kv * hd, C)
    float *bv;        // (n_head_kv * hd) or NULL
    float *wo;        // (C, n_head * hd)
    float *ffn_norm;  // (C)
    float *w_gate;    // (n_ff, C)
    float *w_up;      // (n_ff, C)
    float *w_down;    // (C, n_ff)
    // quantised model: the matrices in their file type (data NULL otherwise),
    // indexed by collm_llm_wmat (the order of collm_lora_target): q|k|v and
    // gate|up adjacent, so a fused product takes a run of them
    collm_qmat qw[7];
} collm_llm_layer_weights;

struct collm_llm_model {
    collm_llm_hparams hp;
    float *token_embd;         // (n_vocab, C)
    collm_llm_layer_weights *layers; // (n_layer)
    float *output_norm;        // (C)
    float *output;             // (n_vocab, C); == token_embd when hp.tied_output
    float *params;             // the one block every pointer above points into
    int64_t n_params;          // floats in params
    int quantised;             // 1: matrices in the q* fields (float pointers of matrices NULL)
    collm_qmat q_token_embd;   // (n_vocab, C) quantised model
    collm_qmat q_output;       // (n_vocab, C); == q_token_embd when tied
    collm_gguf_file *file;     // the open file whose mapping holds the matrices (quantised) or params (params_mapped)
    int params_mapped;         // 1: params is the F32 file's own mapping (copy-on-write), not malloc'd
    uint64_t weight_bytes;     // bytes of every weight as held (mapping + params)
};

// Runs a LoRA adapter beside the weights in every forward of ctx (a
// quantised base, which cannot absorb the adapter); NULL detaches. The
// adapter must outlive the context. Returns COLLM_ERR_NOMEM or COLLM_OK.
int collm_llm_context_set_lora(collm_llm_context *ctx, const collm_lora_adapter *lora);

// Row `id` of the token embedding as floats (C).
void collm_llm_embed_row(const collm_llm_model *m, int64_t id, float *out);
// y (T, out) = x (T, in) · Wᵀ + bias for a matrix given as a float pointer
// (F32 model) or a collm_qmat (quantised model): the one entry the block and
// the head use.
// qw: n_parts matrices stacked by rows (out in all). exact: a quantised
// product in F32 (dequantised tiles: training, where backward differentiates
// this very function), else by shape as llama.cpp would (quantised activations).
int collm_llm_matmul(float *y, const float *x, const float *w, const collm_qmat *qw, int n_parts, const float *bias, int T,
                     int in, int out, int exact, collm_pool *pool);
// Its backward: dx (T, in) = dy · W (set, not added to: no zeroing before it); dw, dbias (F32 model only;
// NULL when frozen) += as collm_ops_matmul_backward.
int collm_llm_matmul_backward(float *dx, float *dw, float *dbias, const float *dy, const float *x, const float *w,
                              const collm_qmat *qw, int n_parts, int T, int in, int out, collm_pool *pool);

// One named tensor of the model in GGUF terms (what llama.cpp calls it).
typedef struct {
    char name[48];
    float **data;  // address of the pointer in collm_llm_model/collm_llm_layer_weights
    collm_qmat *q; // its quantised form (2-D tensors), or NULL
    int n_dims;    // 1 or 2
    int64_t ne[2]; // ggml order: ne[0] = in (columns), ne[1] = out (rows)
    int optional;  // output.weight when tied: absent from the file
} collm_llm_tensor_desc;

// Fills desc (capacity >= collm_llm_model_n_tensors) with the model's tensors in
// llama.cpp's file order: token_embd, blk.0.* ... blk.N-1.*, output_norm,
// output. Returns the count.
int collm_llm_model_n_tensors(const collm_llm_hparams *hp);
int collm_llm_model_tensor_list(collm_llm_model *model, collm_llm_tensor_desc *desc);

// Allocates a model with zeroed weights for hp (validated); NULL on error.
// quantised: only the 1-D tensors get floats (the matrices come from a file).
collm_llm_model *collm_llm_model_alloc(const collm_llm_hparams *hp);
collm_llm_model *collm_llm_model_alloc_ex(const collm_llm_hparams *hp, int quantised);

#endif
