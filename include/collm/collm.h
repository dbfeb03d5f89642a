// The CoLLM recommender (method.md §1, §3, §5, §6): a language model that
// answers "would the user enjoy this item?", with two ID slots in its prompt
// filled by the FECE mapping of collaborative vectors. This module puts the
// parts together: the LLM (+ LoRA or fully fine-tuned weights), its
// tokenizer, the prompt template, the frozen CF tables and the FECE MLP; it
// turns samples into token ids with slot rows, scores them, trains the two
// stages, and reads/writes checkpoints.
//
// Checkpoint = one GGUF (written atomically) holding:
//   collm.*             hyper-parameters, stage, template text, answer token,
//                       base model path (relative to the checkpoint) and
//                       XXH3 fingerprint (a mismatched base is refused when
//                       the checkpoint is loaded)
//   cf.user_embd / cf.item_embd   the collaborative tables (frozen; used by
//                       scoring and by the retrieval index)
//   fece.w1 fece.b1 fece.w2 fece.b2   the mapping MLP (stage 2 and later)
//   blk.N.<proj>.weight.lora_a/_b     LoRA (llama.cpp adapter naming)
//   collm.rerank.*      the re-ranking weights fitted by `collm fit-fusion`
//                       (optional; see COLLM_RERANK_LAMBDA_KEY below)
//   the full model (llama.cpp names, arch and tokenizer keys, F32) when the
//                       LLM itself was fine-tuned (--full, --train-llm). The
//                       checkpoint is not a file llama.cpp loads as it is:
//                       llama.cpp refuses a GGUF with tensors its architecture
//                       does not have (the cf.*, fece.* and LoRA ones above);
//                       collm reads it as a base (collm logits --ckpt, or
//                       --init-from / --base of a later stage).
// A resumable training state (optimizer moments, data order, RNG, epoch,
// best score) is written next to it as <out>.resume.
//
// Threading: a loaded collm_model may be shared by threads for the const
// functions (collm_encode, collm_slot_embeddings, the accessors) and for
// recommend.h's scoring, each thread with its own collm_llm_context.
// collm_score_split and collm_train write to the model
// (its lazily built scorer, its weights): one thread at a time, and not while
// others read it. The model's pool is shared by whatever runs on it.
#ifndef COLLM_COLLM_H
#define COLLM_COLLM_H

#include "collm/version.h"

#include <stdint.h>

#include "collm/cf.h"
#include "collm/dataset.h"
#include "collm/lora.h"
#include "collm/metrics.h"
#include "collm/model.h"
#include "collm/prompt.h"
#include "collm/threadpool.h"
#include "collm/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct collm_model collm_model;

// One encoded sample: token ids with the rows that take CF embeddings.
typedef struct {
    int32_t *tokens;      // (n_tokens) slot rows hold the tokenizer's unk id
    int n_tokens;
    int n_slots;
    int32_t slot_row[16]; // row of each slot, in text order
    int32_t slot_item[16];// item id for item slots; -1 for the user slot
    int32_t user;
    int32_t item;
    float *user_vec;      // (cf dim) the user slot's vector when the CF encoder reads the
                          // history (SASRec, DIN: computed per sample); NULL otherwise
} collm_encoded;

typedef struct {
    const char *base_path;     // base LLM GGUF (required unless init_from has the full model)
    const char *cf_path;       // CF model GGUF (stage 2+; optional in stage 1)
    const char *init_from;     // previous stage's checkpoint, or NULL
    const char *template_path; // prompt template file; NULL = default for stage/domain
    int stage;                 // 1: text only (tallrec), 2: with ID slots (collm)
    int full_finetune;         // train every LLM weight (small models)
    int lora_rank;             // 0 = no LoRA
    float lora_alpha, lora_dropout;
    unsigned lora_targets;
    int fece_mid_times;        // m of §5 (10)
    uint64_t seed;
    const char *answer;        // the answer whose logit is the score, e.g. " Yes" (must be one
                               // token); NULL = init_from's, else "Yes" (SPM "▁Yes")
} collm_build_options;

COLLM_API void collm_build_options_default(collm_build_options *o);

// Assembles a model for training or scoring. Returns NULL and sets the error.
COLLM_API collm_model *collm_model_build(const collm_build_options *o, const collm_rec_dataset *ds, collm_pool *pool);
// Loads a checkpoint for scoring. The base model is the stored path (relative
// to the checkpoint's folder; for older checkpoints also the working
// directory), or base_override; its fingerprint must match the checkpoint's.
// A checkpoint holding the whole fine-tuned model takes no base_override (an
// error: it would not be used). NULL + error (saying where it looked).
COLLM_API collm_model *collm_model_load(const char *ckpt_path, const char *base_override, collm_pool *pool);
COLLM_API void collm_model_free(collm_model *m);

COLLM_API const collm_llm_model *collm_llm(const collm_model *m);
// An inference context on the checkpoint's LLM with its LoRA applied: folded
// into F32 weights at load, or run beside a quantised base (which cannot
// absorb it). Free with collm_llm_context_free before the model.
COLLM_API collm_llm_context *collm_llm_context_with_lora(const collm_model *m, int n_ctx, int n_batch, collm_pool *pool);
COLLM_API const collm_tok_vocab *collm_vocab(const collm_model *m);
COLLM_API const collm_prompt_template *collm_template(const collm_model *m);
COLLM_API int collm_has_slots(const collm_model *m);
COLLM_API int collm_stage(const collm_model *m);
COLLM_API int32_t collm_yes_token(const collm_model *m);

// Compares the checkpoint's collaborative tables with a dataset: the
// checkpoint was trained with n_items items and n_users users (ids index its
// tables), so a dataset with fewer of either is not the one it was trained on
// (COLLM_ERR_ARG saying both counts). A dataset with more (new items or users
// appended) is accepted: they are cold. *extra_items / *extra_users (may be
// NULL) receive how many more the dataset has. COLLM_OK for a model without
// CF tables.
COLLM_API int collm_model_check_dataset(const collm_model *m, const collm_rec_dataset *ds, const char *ckpt_path,
                                        int32_t *extra_items, int32_t *extra_users);
// The CF tables (NULL when the model has none): (n, dim) row-major. With a
// history encoder (SASRec, DIN) there is no user table (NULL, 0 users): the
// user side is computed per sample from the history (collm_encode).
COLLM_API const float *collm_cf_items(const collm_model *m, int32_t *n_items, int *dim);
COLLM_API const float *collm_cf_users(const collm_model *m, int32_t *n_users, int *dim);
// The retrieval query of a user with this history when the CF model is a
// history encoder (SASRec, DIN: collm_cf_model_history_query): 1 when out
// (dim) was written; 0 when the model has no such encoder or it cannot serve
// this user (an id beyond its table): then use the user table or the mean of
// the history's item vectors.
COLLM_API int collm_cf_history_query(const collm_model *m, int32_t user, const int32_t *his, int64_t n_his, float *out);
// The kind of the collaborative model behind the slots ("mf", "din", ...;
// "" when unknown, as in checkpoints written before the kind was recorded).
COLLM_API const char *collm_cf_kind(const collm_model *m);

// Encodes (history, target) for `user` into e (tokens malloc'd; free with
// collm_encoded_free). history as stored in the split (with the sentinel).
COLLM_API int collm_encode(const collm_model *m, const collm_rec_items *items, int32_t user, const int32_t *his, int64_t n_his,
                 int32_t target, collm_encoded *e);
COLLM_API void collm_encoded_free(collm_encoded *e);

// Scores every row of a split (scores: split->n raw "Yes" logits), batched
// through the packed training forward (no dropout). prompts_per_second may
// be NULL.
COLLM_API int collm_score_split(collm_model *m, const collm_rec_dataset *ds, const collm_rec_split *split, int batch, float *scores,
                      double *prompts_per_second);

// Computes the slot embeddings of an encoded sample: out (n_slots, n_embd).
// A user or item outside the CF tables is an error.
COLLM_API int collm_slot_embeddings(const collm_model *m, const collm_encoded *e, float *out);

// --- training ---------------------------------------------------------
typedef struct {
    int batch;             // prompts per step
    int steps_per_epoch;   // optimizer steps per "epoch" (method.md §6.3)
    int max_epochs;
    int patience;          // stop after more than this many epochs without a better valid_small AUC
    double lr, warmup_lr, min_lr;
    int warmup_steps;
    int restart_warmup;    // reproduce the reference code's per-epoch warmup restart
    double weight_decay;   // AdamW, on >= 2-D weights
    double clip;           // gradient-norm clip (0 = off)
    int train_llm;         // stage 2: also fine-tune the LLM (joint stage)
    const char *eval_split;// "valid_small" (default)
    int eval_batch;
    int max_eval_rows;     // evaluate on at most this many rows of the split (0 = all)
    const char *out_path;  // best checkpoint; <out>.resume holds the training state
    const char *log_path;  // one JSON line per epoch (NULL = <out>.log.jsonl)
    int resume;            // continue from <out>.resume
    int epoch_budget;      // stop after this many epochs in this invocation (0 = no limit); the
                           // schedule still spans max_epochs, so a later --resume continues it
    int progress;          // print a progress line on stderr
    int catalogue_negatives; // per positive train row, label-0 rows of unrated catalogue items
                             // (collm_rec_split_with_negatives; docs/topk.md); 0 = none
    double negative_alpha;   // their draw weight (train rows + 1)^alpha: 0 uniform, 1 popularity
    // Residual training (stage 2; boosting over the encoder): with
    // residual_weight w > 0 the logit in the loss and in the validation is
    // LLM logit + w · cf(user, item), cf the checkpoint's own collaborative
    // score (as in collm_score_split_parts), so the LLM learns what the
    // encoder misses. Every checkpoint the run writes stores w as its score
    // weight (COLLM_SCORE_CF_WEIGHT_KEY), so eval, recommend and serve score
    // exactly what was trained (fit-score may refit it later). The training
    // rows' cf are out of fold when residual_folds >= 2 (collm_cf_oof_scores:
    // that many encoders of the checkpoint's kind and shape, each with the
    // kind's default settings and without one fold; catalogue negatives,
    // never trained on, take the checkpoint's own scores), else in sample.
    double residual_weight;  // 0 = off (default)
    int residual_folds;      // default 5; 0 or 1 = in-sample scores
    uint64_t seed;
    // 1: after each shuffle the rows of one user with one history (prompts
    // the same up to the target) are brought together where the first of
    // them fell, so that a batch holds them side by side and the trainer runs
    // their common prompt once (docs/speed.md, "Grouped batches": stage 1
    // twice as fast; the batches are less varied). 0 (default): a plain shuffle.
    int group_batches;
} collm_train_options;

COLLM_API void collm_train_options_default(collm_train_options *o);

typedef struct {
    int epochs_run;
    int best_epoch;
    double best_auc, best_uauc; // NaN without an evaluation split
    double samples_per_second;
    double seconds;
    double gemm_share; // unused (0) unless measured
} collm_train_result;

// Trains and writes the best checkpoint to o->out_path (the output folder is
// checked before any work). Fails, rather than returning without a
// checkpoint, when an option is out of range or not finite, when the
// evaluation rows have a single label (AUC undefined), when the training loss
// or the validation AUC stops being finite (diverged), or when a --resume
// state is damaged. Temp files a killed save left beside the outputs are
// removed at the start.
COLLM_API int collm_train(collm_model *m, const collm_rec_dataset *ds, const collm_train_options *o, collm_train_result *res);

// Writes the checkpoint (atomic). Only what the model holds is written.
COLLM_API int collm_model_save(const collm_model *m, const char *path);
// Exports the LoRA adapter in llama.cpp's adapter format.
COLLM_API int collm_export_lora(const collm_model *m, const char *path);

// --- re-ranking weights (see recommend.h) ------------------------------
// Top-K lists are ordered by z(llm) + λ·z(retrieval) + μ·z(log(1 + item
// popularity)) over a user's candidates (z = standardised per user). λ and μ
// are fitted on valid_small by `collm fit-fusion` and stored in the
// checkpoint under these keys.
#define COLLM_RERANK_LAMBDA_KEY "collm.rerank.lambda"
#define COLLM_RERANK_POPULARITY_KEY "collm.rerank.popularity"
#define COLLM_RERANK_LAMBDA_DEFAULT 1.0f     // used when the checkpoint holds no fitted weights
#define COLLM_RERANK_POPULARITY_DEFAULT 0.0f
#define COLLM_RERANK_WEIGHT_MAX 1000.0f      // both weights lie in [0, this]

// The checkpoint's weights, or the defaults; *stored (may be NULL) says
// whether the checkpoint held them. lambda / popularity may be NULL.
COLLM_API void collm_rerank_weights(const collm_model *m, float *lambda, float *popularity, int *stored);
// Writes both weights into the checkpoint file (rewritten atomically,
// everything else unchanged).
COLLM_API int collm_checkpoint_set_rerank(const char *ckpt_path, float lambda, float popularity);

// --- score fusion (pointwise scores: eval, AUC) --------------------------
// A checkpoint may carry a weight w that adds the collaborative model's own
// score to the LLM's:  score = logit("Yes") + w · <cf_user, cf_item>.
// The collaborative score is the inner product of the checkpoint's CF
// tables (for mfbias that is <p_u, q_i> + b_u + b_i; a user or item beyond
// the tables counts 0, as a cold one). w is fitted on valid_small by
// `collm fit-score` (collm_fit_score_weight); without it, scores are the LLM's.
#define COLLM_SCORE_CF_WEIGHT_KEY "collm.score.cf_weight"
#define COLLM_SCORE_CF_WEIGHT_MAX 100.0f

// The checkpoint's w (0 when it has none); *stored (may be NULL) says whether it had one.
COLLM_API float collm_score_cf_weight(const collm_model *m, int *stored);
// Writes w (0 <= w <= COLLM_SCORE_CF_WEIGHT_MAX) into the checkpoint file
// (rewritten atomically, everything else unchanged).
COLLM_API int collm_checkpoint_set_score_cf_weight(const char *ckpt_path, float w);
// The two parts of every row's score: llm (split->n) the raw "Yes" logits,
// cf (split->n, may be NULL) the collaborative scores (COLLM_ERR_ARG for cf
// when the model holds no CF tables). collm_score_split = llm + w · cf.
COLLM_API int collm_score_split_parts(collm_model *m, const collm_rec_dataset *ds, const collm_rec_split *split, int batch,
                                      float *llm, float *cf, double *prompts_per_second);
// The w in grid (n_grid values, >= 0) that maximises the AUC of llm + w · cf
// over the split's labels (ties: the smaller w); *auc_out (may be NULL) its AUC.
COLLM_API int collm_fit_score_weight(const float *llm, const float *cf, const collm_rec_split *split, const float *grid,
                                     int n_grid, float *w_out, double *auc_out);

// Further encoders fused into the score (issue 9: the encoders disagree on
// cold users, and their sum ranks better than either):
//   score = logit("Yes") + w · cf + Σ_k v_k · extra_k(user, item, history)
// Each extra is a whole collaborative model (any kind) stored in the
// checkpoint under the namespace "fuse.K." (collm_gguf_open_ns), with its
// weight v_k in collm.score.extra.K.weight; collm_score_split adds them.
// Rows whose ids an extra does not know get 0 from it (as for the own CF).
#define COLLM_SCORE_EXTRA_MAX 4
#define COLLM_SCORE_EXTRA_COUNT_KEY "collm.score.extra.count"
COLLM_API int collm_score_extra_count(const collm_model *m);
COLLM_API const char *collm_score_extra_kind(const collm_model *m, int k); // NULL when k is out of range
COLLM_API float collm_score_extra_weight(const collm_model *m, int k);
// The extra encoder k itself (its kind, training record: collm/cf.h), owned by m; NULL when k is out of range.
COLLM_API const collm_cf_model *collm_score_extra_model(const collm_model *m, int k);
// extra (n_extra, split->n): row r's score under extra k at extra[k*n + r].
COLLM_API int collm_score_split_extras(collm_model *m, const collm_rec_split *split, float *extra);
// 1 when the checkpoint's score adds anything to the LLM logit (a CF weight
// w > 0 or fused encoders: collm fit-score), else 0.
COLLM_API int collm_score_has_fusion(const collm_model *m);
// The score collm eval ranks by, for n items of one user and one history
// (his, n_his: as collm_recommend_score_items takes them; user -1 for none):
// out (n) = llm + w · cf + Σ_k v_k · extra_k, summed as collm_score_split
// sums a row, so a request's item and a split row with the same user, history
// and item get the same fused part (a history here has no per-item labels: a
// split with a his_label column, BookCrossing's, can differ there). llm (n) holds the items' "Yes" logits
// (collm_recommend_score_items); out may be llm. Runs on the calling thread
// only (not the model's pool): safe from several threads on one model, as
// the server calls it.
COLLM_API int collm_score_fuse_items(const collm_model *m, int32_t user, const int32_t *his, int64_t n_his,
                                     const int32_t *items, int n, const float *llm, float *out);
// Rewrites the checkpoint (atomically, everything else unchanged) with the
// fusion weights: w for its own CF score, v[k] for extra k. extra_paths NULL
// keeps the extras it holds (n_extra must be their count); otherwise the
// n_extra files (collm train-cf models) replace them, copied whole.
COLLM_API int collm_checkpoint_set_score_fusion(const char *ckpt_path, float w, int n_extra, const char *const *extra_paths,
                                                const float *v);
// The weights (n_parts, each from grid) maximising the AUC of
// llm + Σ_p w[p] · parts[p][r] over the split: coordinate ascent from all
// zeros, each part in turn, until no weight changes (ties: the smaller
// weight). parts[p] is (split->n). *auc_out (may be NULL) the AUC reached.
COLLM_API int collm_fit_score_weights(const float *llm, const float *const *parts, int n_parts, const collm_rec_split *split,
                                      const float *grid, int n_grid, float *w_out, double *auc_out);

// The collaborative item table stored in a checkpoint (cf.item_embd), as a
// malloc'd (n_items, d) row-major array the caller frees: what a retrieval
// index is built from. COLLM_OK or an error naming the file (*items is NULL
// after an error: nothing to free).
COLLM_API int collm_checkpoint_item_vectors(const char *ckpt_path, float **items, int32_t *n_items, int *d);

#ifdef __cplusplus
}
#endif

#endif
