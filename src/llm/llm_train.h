// Training-time forward and backward of the transformer for the
// recommender's one question: the logit of one vocabulary row ("Yes") at the
// last position of each prompt (method.md §3.3).
//
// A batch is packed: n_seq prompts of lengths seq_len[] one after another,
// R = Σ seq_len rows, so every projection is one (R, in) x (in, out) GEMM;
// attention runs per prompt with its own causal mask. Slot rows (the CF
// embeddings from the FECE MLP) replace token embeddings and receive
// gradients. What trains:
//   - full fine-tuning: every weight of the model (gradient block parallel
//     to the model's parameter block, same layout);
//   - LoRA: the adapter's A/B (the base stays frozen);
//   - neither: only the slot rows get gradients (CoLLM stage 2).
// All buffers are allocated once, for max_rows rows and prompts of at most
// max_seq_len tokens.
#ifndef COLLM_LLM_TRAIN_H
#define COLLM_LLM_TRAIN_H

#include <stdint.h>

#include "llm/lora_internal.h"
#include "collm/model.h"
#include "core/rng.h"
#include "collm/threadpool.h"

typedef struct collm_llm_trainer collm_llm_trainer;

// full_finetune: allocate and fill gradients for every model weight.
// lora may be NULL. The model and the adapter are borrowed and are updated
// in place by whoever owns the optimizer.
collm_llm_trainer *collm_llm_trainer_create(collm_llm_model *model, collm_lora_adapter *lora, int full_finetune, int max_rows,
                                int max_seq_len, collm_pool *pool);
void collm_llm_trainer_free(collm_llm_trainer *tr);

// Gradient block for full fine-tuning: (n_params) floats in the same layout
// as the model's parameter block (NULL unless full_finetune).
float *collm_llm_trainer_model_grad(collm_llm_trainer *tr);
// The gradient slot for a weight pointer of the model (e.g. layers[l].wq).
float *collm_llm_trainer_grad_of(collm_llm_trainer *tr, const float *weight);

// The leading tokens every prompt of a batch shares (up to the first slot and
// short of each prompt's last token) run once per forward, their gradients
// summed over the prompts: exact, less work. On by default; off for tests
// that compare the two. shared_rows: how many the last forward shared.
// With it on, a prompt's longer leading run shared with an earlier prompt
// of the batch (the same tokens; in scoring also slot rows with the same
// vector) runs only once: its keys and values are read from that prompt's
// rows, and in training (full fine-tuning or LoRA; not with frozen weights)
// the gradients at them are summed into that prompt's rows.
// computed_rows: the rows the last forward computed; forward_flops: the
// floating-point operations of its products and attention (2 per
// multiply-add; elementwise work left out), the work bench/train_speed.sh
// counts as useful.
void collm_llm_trainer_set_prefix_sharing(collm_llm_trainer *tr, int on);
int collm_llm_trainer_shared_rows(const collm_llm_trainer *tr);
int collm_llm_trainer_computed_rows(const collm_llm_trainer *tr);
double collm_llm_trainer_forward_flops(const collm_llm_trainer *tr);
// The feed-forward fused over row chunks (llm/block.c; where collm's GEMM
// kernel runs: the same bits as the unfused passes). On by default; off for
// the test that compares the two.
void collm_llm_trainer_set_fusion(collm_llm_trainer *tr, int on);
// The last layer's value projection folded behind its attention
// (collm_llm_block fold_v: Wv applied to each head's weighted sum of the
// normalised inputs at the last rows, not to every row: the same function,
// rounded differently). On by default where the layer allows it (F32 Wv, no
// LoRA on v); off for the test that compares the two.
void collm_llm_trainer_set_fold_v(collm_llm_trainer *tr, int on);
// The caller's promise that the model's weights stay as they are while the
// trainer lives (stage 2: the LLM frozen, only the slots train): the weights
// packed for collm's GEMM kernel, forward and backward, are then kept from
// call to call instead of packed in every one. COLLM_ERR_ARG for a trainer
// whose weights train (full fine-tuning or LoRA).
int collm_llm_trainer_set_weights_fixed(collm_llm_trainer *tr);

// Forward over a packed batch. tokens (R) may hold anything at slot rows.
// Writes scores (n_seq): the logit of vocabulary row yes_id at each prompt's
// last row. dropout_rng: LoRA dropout draws (NULL = no dropout, inference).
int collm_llm_trainer_forward(collm_llm_trainer *tr, const int32_t *tokens, const int32_t *seq_len, int n_seq,
                        const collm_llm_slot_rows *slots, int32_t yes_id, float *scores, collm_rng *dropout_rng);
// The same scores (bit for bit where collm's kernel takes the products, on a
// pool; within rounding where BLAS does, whose sums depend on the row count
// that shared runs change), without keeping what backward reads (no
// dropout): the blocks' row chunks and the attention probabilities stay in
// per-thread scratch and every layer reuses one set of tensors. A backward
// after it fails (COLLM_ERR_ARG) until the next collm_llm_trainer_forward.
// same_weights: 1 when no weight has changed since the previous
// collm_llm_trainer_score on this trainer (batch after batch of one scoring
// pass): the weights it packed are used again; 0 packs them afresh.
int collm_llm_trainer_score(collm_llm_trainer *tr, const int32_t *tokens, const int32_t *seq_len, int n_seq,
                            const collm_llm_slot_rows *slots, int32_t yes_id, float *scores, int same_weights);
// Backward from dscores (n_seq) = ∂L/∂score. Accumulates into the model
// gradient block (full fine-tuning), the LoRA gradients, and dslots
// (n_slots, n_embd) (may be NULL when slots do not train).
int collm_llm_trainer_backward(collm_llm_trainer *tr, const float *dscores, float *dslots);

#endif
