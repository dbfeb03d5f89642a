// Internals of the CoLLM recommender shared by collm.c (assembly, scoring,
// checkpoints) and collm_train.c (the training loop).
#ifndef COLLM_COLLM_INTERNAL_H
#define COLLM_COLLM_INTERNAL_H

#include "collm/cf.h"
#include "collm/collm.h"
#include "recommender/fece.h"
#include "collm/gguf.h"
#include "llm/llm_train.h"
#include "llm/model_internal.h"

#define COLLM_MAX_SLOTS 16 // user + target + up to 10 history items, with room

struct collm_model {
    collm_llm_model *llm;
    collm_tok_vocab *vocab;
    collm_prompt_template *tpl;
    collm_lora_adapter lora;
    int has_lora;
    int lora_merged;        // adapter folded into llm weights (frozen)
    int lora_frozen;        // quantised base: the previous stage's adapter cannot be folded into it, so it is
                            // applied beside the frozen base and not trained (what lora_merged means for F32)
    collm_fece_mlp fece;
    int has_fece;
    float *cf_users;        // (n_cf_users, cf_dim); NULL with a history encoder
    float *cf_items;        // (n_cf_items, cf_dim)
    int32_t n_cf_users, n_cf_items;
    int cf_dim;
    collm_cf_model *cf_enc; // the CF model itself when its user side reads the history
                            // (SASRec, DIN): collm_encode asks it for the user slot
    char cf_kind[16];       // collm.cf.kind ("" when unknown)
    int32_t yes_id;
    char answer[64];        // the answer text given (--answer); "" = the default "Yes" rule
    int stage;
    int is_book;
    int full_finetune;      // the LLM's weights train in this run
    int full_model_in_ckpt; // the LLM's weights belong in the checkpoint
    char *base_path;        // absolute when the file was found (resolved at load)
    char *vocab_path;       // the GGUF holding the tokenizer: the base, or a full-model checkpoint
    uint64_t base_checksum; // of kind base_hash_kind, 63 bits
    int base_hash_kind;     // COLLM_BASE_HASH_*
    uint64_t seed;
    float rerank_lambda, rerank_pop; // collm.rerank.* (valid when has_rerank)
    int has_rerank;
    float score_cf_weight;  // collm.score.cf_weight (valid when has_score_cf_weight)
    int has_score_cf_weight;
    // further encoders fused into the score (score_fusion.c): stored whole in
    // the checkpoint under "fuse.K.", weights collm.score.extra.K.weight
    collm_cf_model *score_extra[COLLM_SCORE_EXTRA_MAX];
    float score_extra_weight[COLLM_SCORE_EXTRA_MAX];
    int n_score_extra;
    // the training run's settings, written to the checkpoint as collm.train.*
    // (has_train: set by collm_train; strings owned)
    collm_train_options train_opt;
    char *train_eval_split, *train_data, *train_cf_path, *train_init_from;
    int has_train, train_ranks;
    collm_pool *pool;
    collm_llm_trainer *scorer;    // forward-only trainer used for scoring
    int scorer_rows, scorer_len;
};

// A packed batch of encoded prompts with the mapped slot rows.
typedef struct {
    int32_t *tokens;   // (max_rows)
    int32_t *seq_len;  // (max_prompts)
    int32_t *slot_rows;// (max_prompts · COLLM_MAX_SLOTS) packed row of each slot
    float *slot_x;     // (slots, cf_dim) CF vectors
    float *slot_h;     // (slots, fece hidden) kept for backward
    float *slot_y;     // (slots, n_embd) FECE outputs
    float *slot_dy;    // (slots, n_embd) their gradients
    float *scratch;    // (slots, fece hidden)
    float *labels, *scores, *dscores; // (max_prompts)
    int max_prompts, max_rows;
    int n_prompts, n_rows, n_slots;
} collm_batch;

int collm_batch_init(collm_batch *b, const collm_model *m, int max_prompts, int max_rows);
void collm_batch_free(collm_batch *b);
int collm_batch_pack(collm_batch *b, const collm_model *m, const collm_encoded *enc, const int64_t *which, int n);

int collm_encode_split(const collm_model *m, const collm_rec_dataset *ds, const collm_rec_split *split, collm_encoded **out);
void collm_encoded_array_free(collm_encoded *enc, int64_t n);
int collm_score_encoded(collm_model *m, const collm_encoded *enc, int64_t n, int batch, float *scores);
const float *collm_slot_cf_vector(const collm_model *m, const collm_encoded *e, int slot);

// Fingerprint of the base model file (the key collm.base.checksum, 63 bits;
// its kind in collm.base.checksum_kind): XXH3-64 over the mmapped file; the
// byte-by-byte FNV-1a of checkpoints written before the kind key existed.
enum { COLLM_BASE_HASH_FNV1A = 0, COLLM_BASE_HASH_XXH3 = 1 };
int collm_file_checksum(const char *path, int kind, uint64_t *out);
float *collm_lora_base_weight(collm_llm_model *llm, int layer, collm_lora_target t);
int collm_read_tensor(const collm_gguf_file *f, const char *path, const char *name, float *dst, int64_t n);
// The checkpoint's own collaborative score of every row of split: cf
// (split->n); rows beyond its tables score 0 (see collm_score_split_parts).
int collm_cf_scores(const collm_model *m, const collm_rec_split *split, float *cf);
// The same on the given pool (NULL: the calling thread alone).
int collm_cf_scores_on(const collm_model *m, const collm_rec_split *split, float *cf, collm_pool *pool);
// score_fusion.c: scores (n) = llm + w · cf + Σ_k v_k · extra_k in that order
// (float), in place: scores holds the LLM logits on entry. cf (n) is NULL
// when w is 0; extra (n_score_extra, n) NULL when there are none. The one
// place the fused score is summed: eval's rows and a request's items agree.
void collm_score_combine(const collm_model *m, int64_t n, const float *cf, const float *extra, float *scores);
// score_fusion.c: the fused encoders' keys read / written / freed.
int collm_score_extras_read(collm_model *m, const collm_gguf_file *f, const char *ckpt_path);
int collm_score_extras_write(const collm_model *m, collm_gguf_writer *w);
void collm_score_extras_free(collm_model *m);

// Adds the checkpoint's keys and tensors to w, for a file at ckpt_path (the
// base model's path is stored relative to that file's folder).
int collm_checkpoint_fill(const collm_model *m, collm_gguf_writer *w, const char *ckpt_path);
// A checkpoint's base fingerprint (collm.base.checksum and its kind,
// COLLM_BASE_HASH_*); an error naming path when missing or malformed.
int collm_read_base_checksum(const collm_gguf_file *f, const char *path, int *kind, uint64_t *sum);
int collm_write_lora_tensors(const collm_model *m, collm_gguf_writer *w);

#endif
