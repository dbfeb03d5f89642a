// Collaborative models (method.md §4): an opaque handle over a table of
// kinds. Kinds: "mf" (default), "lightgcn", "sasrec", "din".
//
//  * mf, lightgcn: id-only. A user vector and an item vector of dimension
//    dim; score = their dot product (LightGCN: of the propagated tables).
//  * sasrec, din: the score of a sample depends on the user's history
//    before it (the last hp.max_len liked items). SASRec: user vector =
//    the transformer output at the last position, item vector = the item
//    embedding, score = their dot product. DIN: per-field size e = dim / 3;
//    user vector = [item, attention-pooled history, user] (3e, depends on
//    the target item), item vector = the item embedding repeated 3 times;
//    score = the MLP over the user vector (not a dot product).
//
// Callers use only the functions below; a new kind adds a src/cf/<kind>.c
// and one line in the kind table of src/cf/cf.c.
//
// Id 0 is padding in every table (its vectors are zero for MF). Ids range
// over [0, n_users) and [0, n_items); anything else is an error.
//
// GGUF layout: key "collm.cf.kind" (string) selects the kind on load; keys
// collm.cf.dim, collm.cf.n_users, collm.cf.n_items, collm.cf.n_layers,
// collm.cf.n_heads, collm.cf.max_len, the training record
// (collm.cf.train.*) and each kind's F32 tensors (MF: cf.user_embd
// (n_users, d), cf.item_embd (n_items, d); the others: docs/encoders.md).
//
// Threading: the const functions (vectors, score, score_split, evaluate,
// sample vectors and scores, save) may run on one model from several
// threads at once; collm_cf_model_train writes the tables and needs the
// model to itself.
#ifndef COLLM_CF_H
#define COLLM_CF_H

#include "collm/version.h"

#include <stdint.h>

#include "collm/dataset.h"
#include "collm/gguf.h"
#include "collm/metrics.h"
#include "collm/threadpool.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct collm_cf_model collm_cf_model;

// Model shape. collm_cf_hparams_default(kind) gives each kind's defaults.
typedef struct {
    int dim;      // user / item vector size (DIN: 3 × the per-field size, so divisible by 3)
    int n_layers; // LightGCN: propagation layers K (default 2); SASRec: blocks (default 2)
    int n_heads;  // SASRec: attention heads, dividing dim (default 1)
    int max_len;  // SASRec / DIN: history window, the last max_len liked items (25 / 10)
} collm_cf_hparams;

// Training settings. collm_cf_train_options_default() gives the ML-1M defaults.
typedef struct {
    double lr;           // Adam learning rate
    double weight_decay; // coupled L2 (PyTorch Adam weight_decay)
    double beta1, beta2, eps;
    int batch;           // rows per step (last batch of an epoch may be smaller)
    int max_epochs;
    int patience;        // stop after this many epochs without a strictly better eval AUC (0: never)
    int stall_epochs;    // also stop when epoch > stall_epochs and best AUC < stall_auc (0: off)
    double stall_auc;
    uint64_t seed;       // shuffling (initialisation uses the seed given to collm_cf_model_create)
    const char *eval_split; // "valid", "valid_small", a path, or NULL/"" for no evaluation
    double dropout;      // SASRec / DIN dropout rate in training (ignored by MF, LightGCN)
} collm_cf_train_options;

// One epoch's figures, passed to the progress callback.
typedef struct {
    int epoch;         // 1-based
    double loss;       // mean training BCE over the epoch's rows
    double eval_auc;   // NaN without an eval split
    double eval_uauc;
    double seconds;    // wall time of this epoch (training + evaluation)
    int is_best;       // 1 when this epoch set a new best eval AUC
} collm_cf_epoch_info;

typedef void (*collm_cf_progress_fn)(void *ctx, const collm_cf_epoch_info *info);

// What training did; also stored in the model and written by collm_cf_model_save.
typedef struct {
    int epochs_run;
    int best_epoch;       // 0 when no eval split
    double best_eval_auc; // NaN when no eval split
    double best_eval_uauc;
    double seconds;
    int early_stopped;    // 1: patience or stall rule ended training
} collm_cf_train_result;

// MF defaults (collm_cf_train_options_kind with "mf").
COLLM_API void collm_cf_train_options_default(collm_cf_train_options *opt);
// The defaults tuned for `kind` on ML-1M valid (docs/encoders.md).
// COLLM_ERR_ARG on an unknown kind (opt then holds the MF defaults).
COLLM_API int collm_cf_train_options_kind(const char *kind, collm_cf_train_options *opt);
COLLM_API int collm_cf_hparams_default(const char *kind, collm_cf_hparams *hp);
// 1 when a kind's user side reads the history (sasrec, din), 0 when not, -1
// for an unknown kind (no error set).
COLLM_API int collm_cf_kind_uses_history(const char *kind);

// Creates a freshly initialised model of `kind` ("mf", "lightgcn",
// "sasrec", "din") with the kind's default shape but dimension dim. seed
// drives the initialisation. Returns NULL (and sets the error) on an
// unknown kind or bad size.
COLLM_API collm_cf_model *collm_cf_model_create(const char *kind, int32_t n_users, int32_t n_items, int dim, uint64_t seed);
// The same with every shape parameter given.
COLLM_API collm_cf_model *collm_cf_model_create_hp(const char *kind, int32_t n_users, int32_t n_items,
                                                   const collm_cf_hparams *hp, uint64_t seed);
COLLM_API void collm_cf_model_free(collm_cf_model *m);

COLLM_API const char *collm_cf_model_kind(const collm_cf_model *m);
COLLM_API int collm_cf_model_dim(const collm_cf_model *m);
COLLM_API int32_t collm_cf_model_n_users(const collm_cf_model *m);
COLLM_API int32_t collm_cf_model_n_items(const collm_cf_model *m);
COLLM_API void collm_cf_model_hparams(const collm_cf_model *m, collm_cf_hparams *out);
// 1 for kinds whose user side needs the sample's history (sasrec, din).
COLLM_API int collm_cf_model_uses_history(const collm_cf_model *m);
// The training record (collm.cf.train.*): 1 and *opt / *res filled (either
// may be NULL) when m was trained or loaded with one, else 0. opt->eval_split
// points into m. The strings are "" when unknown: the evaluation split that
// chose the best epoch, and the rows m trained on ("…/train.tsv"; joined
// splits "a + b"; "" for files written before it was recorded).
COLLM_API int collm_cf_model_train_record(const collm_cf_model *m, collm_cf_train_options *opt, collm_cf_train_result *res);
COLLM_API const char *collm_cf_model_eval_split(const collm_cf_model *m);
COLLM_API const char *collm_cf_model_train_split(const collm_cf_model *m);
// The file whose rows fitted m's weights besides its training rows, resolved:
// a ctx model's evaluation split (its figures there are in-sample); "" for
// the other kinds, whose evaluation split only chose the epoch.
COLLM_API const char *collm_cf_model_fit_split(const collm_cf_model *m);

// Id-only vectors, out (dim). COLLM_ERR_ARG on an id out of range;
// collm_cf_model_user_vector and collm_cf_model_score are COLLM_ERR_ARG for
// history kinds (use the sample functions below).
COLLM_API int collm_cf_model_user_vector(const collm_cf_model *m, int32_t user, float *out);
COLLM_API int collm_cf_model_item_vector(const collm_cf_model *m, int32_t item, float *out);
// Preference score (a logit; higher = more likely liked).
COLLM_API int collm_cf_model_score(const collm_cf_model *m, int32_t user, int32_t item, float *out);

// The representation of one sample for any kind (what CoLLM's mapping
// module consumes): user id, history his (n_his ids: the user's liked items
// before the target, oldest first, as a split's `his` column of ml-1m
// stores them; 0 entries are padding and ignored; only the last hp.max_len
// are used; id-only kinds ignore it) and target item.
//  user_out (dim): MF: the user embedding; LightGCN: the propagated user
//    vector; SASRec: the last-position output over the history; DIN: the
//    concatenation [item embedding, attention-pooled history, user
//    embedding] (3 × dim/3), which depends on the target item.
//  item_out (dim): MF: the item embedding; LightGCN: the propagated item
//    vector; SASRec: the item embedding; DIN: the item embedding repeated 3 times.
// Either output may be NULL. Both dims equal collm_cf_model_dim.
COLLM_API int collm_cf_model_sample_vectors(const collm_cf_model *m, int32_t user, const int32_t *his, int64_t n_his,
                                            int32_t item, float *user_out, float *item_out);
// A user vector to retrieve items with by inner product against the item
// vectors, from the user's history (his as above). SASRec: its last-position
// output (the user id is not used). DIN, whose user side depends on the
// target: the user side with the padding item 0 as the target, so
// [I[0], pooled, U[user]] · [q, q, q] = <I[0] + pooled + U[user], q>.
// COLLM_ERR_UNSUPPORTED for id-only kinds (they have collm_cf_model_user_vector).
// out (dim).
COLLM_API int collm_cf_model_history_query(const collm_cf_model *m, int32_t user, const int32_t *his, int64_t n_his,
                                           float *out);
// The score (a logit) of the same sample; equals what score_split gives its row.
COLLM_API int collm_cf_model_score_sample(const collm_cf_model *m, int32_t user, const int32_t *his, int64_t n_his,
                                          int32_t item, float *out);
// Scores every row of a split into scores (split->n). An id beyond the
// tables is an error naming the file, the row (and its line) and the id.
COLLM_API int collm_cf_model_score_split(const collm_cf_model *m, const collm_rec_split *split, float *scores, collm_pool *pool);
// Scores a split and computes its metrics.
// As collm_cf_model_score_split, but a row whose user, item or history ids
// lie beyond the model's tables scores 0 instead of failing the call (a
// dataset grown since training; the fused score of a checkpoint).
COLLM_API int collm_cf_model_score_split_known(const collm_cf_model *m, const collm_rec_split *split, float *scores,
                                               collm_pool *pool);
COLLM_API int collm_cf_model_evaluate(const collm_cf_model *m, const collm_rec_split *split, collm_metrics_report *out, collm_pool *pool);

// Trains on ds->train, evaluating on opt->eval_split after every epoch and
// keeping the best weights. progress (may be NULL) is called once per epoch.
// result may be NULL. Deterministic for a given seed and thread count; MF
// is also independent of the thread count.
COLLM_API int collm_cf_model_train(collm_cf_model *m, const collm_rec_dataset *ds, const collm_cf_train_options *opt, collm_pool *pool,
                   collm_cf_progress_fn progress, void *progress_ctx, collm_cf_train_result *result);

// Refit: a new model of from's kind, shape and training options (its
// collm.cf.train.* record, as collm_cf_model_load reads it), trained on
// ds->train with no evaluation for exactly the epochs early stopping chose
// for from (its best epoch). The model selection is from's, made on its
// evaluation split; the refit may then train on that split's rows too
// (ds->train = train + valid, collm_rec_split_concat: what `collm train-cf
// --refit-from` does, so the encoders that score the test period have seen
// the period just before it). On from's own train rows and thread count it
// gives from's weights bit for bit (the initial weights are drawn from the
// recorded seed, as collm train-cf draws them; a dropout is read back as the
// shortest decimal of its stored float). ctx keeps from's fitted weights,
// genres and years and rebuilds its training statistics from ds->train. The result records the
// rows it trained on (collm.cf.train.train_split). NULL + error when from
// has no training record or no best epoch, or ds->train holds ids beyond
// from's tables. progress and result as for collm_cf_model_train.
COLLM_API collm_cf_model *collm_cf_model_refit(const collm_cf_model *from, const collm_rec_dataset *ds, collm_pool *pool,
                                               collm_cf_progress_fn progress, void *progress_ctx,
                                               collm_cf_train_result *result);

// Out-of-fold scores of the training rows (what a learner fitted on an
// encoder's residual must train against: in-sample, an encoder's scores on
// its own training rows are far more confident than on new rows; mfbias on
// ML-1M: train AUC 0.94 against valid 0.735). ds->train's rows are dealt at
// random (seed) into `folds` (>= 2) folds of equal size; the rows of fold f
// are scored by a fresh model of `kind` (shape hp, tables n_users ×
// n_items, initialised from seed + 1 + f) trained with opt (NULL: the
// kind's defaults, collm_cf_train_options_kind; its eval split early-stops
// each fold's model, its seed is replaced by seed + 1 + f) on the other
// folds' rows. out (ds->train->n). Ids beyond the tables are an error.
COLLM_API int collm_cf_oof_scores(const char *kind, const collm_cf_hparams *hp, int32_t n_users, int32_t n_items,
                                  const collm_rec_dataset *ds, int folds, const collm_cf_train_options *opt, uint64_t seed,
                                  collm_pool *pool, float *out);

// GGUF, written atomically. collm_cf_model_load dispatches on collm.cf.kind.
COLLM_API int collm_cf_model_save(const collm_cf_model *m, const char *path);
COLLM_API collm_cf_model *collm_cf_model_load(const char *path);
// The same keys and tensors added to / read from a GGUF that holds other
// things too (a CoLLM checkpoint embeds a history encoder this way). path
// only names the file in error messages.
COLLM_API int collm_cf_model_write(const collm_cf_model *m, collm_gguf_writer *w);
COLLM_API collm_cf_model *collm_cf_model_read(const collm_gguf_file *f, const char *path);

#ifdef __cplusplus
}
#endif

#endif
