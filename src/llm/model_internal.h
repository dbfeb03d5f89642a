// The weights of an collm_llm_model as plain arrays, for code inside the library
// that reads, updates or differentiates them (training, LoRA merge, save).
// Every float lives in one block (collm_llm_model.params, n_params floats) so an
// optimiser can walk it as one flat vector; the pointers below point into it.
// Matrices are row-major (out, in) as GGUF stores them (ne = {in, out}).
#ifndef COLLM_MODEL_INTERNAL_H
#define COLLM_MODEL_INTERNAL_H

#include <stdint.h>

#include "collm/model.h"

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
} collm_llm_layer_weights;

struct collm_llm_model {
    collm_llm_hparams hp;
    float *token_embd;         // (n_vocab, C)
    collm_llm_layer_weights *layers; // (n_layer)
    float *output_norm;        // (C)
    float *output;             // (n_vocab, C); == token_embd when hp.tied_output
    float *params;             // the one block every pointer above points into
    int64_t n_params;          // floats in params
};

// One named tensor of the model in GGUF terms (what llama.cpp calls it).
typedef struct {
    char name[48];
    float **data;  // address of the pointer in collm_llm_model/collm_llm_layer_weights
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
collm_llm_model *collm_llm_model_alloc(const collm_llm_hparams *hp);

#endif
