// Private to src/cf: the model handle and the per-kind vtable. cf.c does
// everything common (id checks, split scoring, evaluation-split lookup,
// GGUF keys, the training record); a kind supplies only what differs.
#ifndef COLLM_CF_INTERNAL_H
#define COLLM_CF_INTERNAL_H

#include "collm/cf.h"
#include "collm/gguf.h"

typedef struct collm_cf_kind collm_cf_kind;
struct cf_params; // cf/cf_nn.h

struct collm_cf_model {
    const collm_cf_kind *kind;
    int dim; // = hp.dim
    int32_t n_users, n_items;
    collm_cf_hparams hp; // checked by the kind's init (only dim matters to MF)
    void *impl; // the kind's state (MF: mf_impl)

    // training record, written by collm_cf_model_save (has_train = 0 before any training)
    int has_train;
    collm_cf_train_options train_opt; // train_opt.eval_split points at eval_split below
    collm_cf_train_result train_result;
    char *eval_split;  // owned copy
    char *dataset_dir; // owned copy
    char *train_split; // owned copy: the rows it trained on (ds->train's path; "a + b" for a refit on joined splits)
    char *fit_split;   // owned copy: the evaluation split's path when the kind fits its weights there (ctx), else NULL
};

// Scores every row of split: under mpirun each rank scores its contiguous
// share of the rows and the scores are gathered on every rank (the same
// figures, and the same early-stopping decision, everywhere); one process
// scores them all.
int cf_score_split_dist(const collm_cf_model *m, const collm_rec_split *split, float *scores, collm_pool *pool);

struct collm_cf_kind {
    const char *name;
    int uses_history; // 1: scores and user vectors depend on the sample's history (SASRec, DIN)
    int fits_on_eval; // 1: the weights are fitted on the evaluation split (ctx), not only chosen there
    // Fills *hp with the kind's defaults (dim, layers, heads, window), and
    // changes the MF training defaults in *opt to the kind's.
    void (*hparams_default)(collm_cf_hparams *hp);
    void (*train_defaults)(collm_cf_train_options *opt);
    // Allocates m->impl for m->n_users × m->n_items × m->hp; with
    // `initialise`, draws the initial weights from seed (else leaves zeros
    // for load_tensors to fill). Rejects hyper-parameters it cannot use.
    int (*init)(collm_cf_model *m, uint64_t seed, int initialise);
    void (*free_impl)(collm_cf_model *m);
    // Ids are already range-checked by cf.c. user_vector and score are NULL
    // for history kinds; item_vector and sample_vectors exist for every kind
    // but ctx, which has no vectors (score fusion only).
    void (*user_vector)(const collm_cf_model *m, int32_t user, float *out);
    void (*item_vector)(const collm_cf_model *m, int32_t item, float *out);
    float (*score)(const collm_cf_model *m, int32_t user, int32_t item);
    // History kinds only: n samples (users, items (n), windows win (n, hp.max_len)
    // left-padded with 0, see cf_history_window). Scores (n); user-side and
    // item-side vectors uvec, ivec (n, dim). Ids are range-checked by cf.c.
    int (*score_samples)(const collm_cf_model *m, int64_t n, const int32_t *users, const int32_t *items,
                         const int32_t *win, float *scores, collm_pool *pool);
    int (*sample_vectors)(const collm_cf_model *m, int64_t n, const int32_t *users, const int32_t *items,
                          const int32_t *win, float *uvec, float *ivec, collm_pool *pool);
    // Optional (ctx): reads what the kind needs of the dataset beyond the
    // splits (titles, DIR/item_map.tsv) before train.
    int (*side_info)(collm_cf_model *m, const collm_rec_dataset *ds);
    // eval may be NULL (no evaluation). Ids of ds->train and eval are checked.
    // Optional (ctx): a refit that is not a training run of from's epoch
    // count: m (fresh, from's kind and shape) takes from's fitted part and
    // what it learns from the train rows alone (collm_cf_model_refit).
    int (*refit)(collm_cf_model *m, const collm_cf_model *from, const collm_rec_split *train);
    int (*train)(collm_cf_model *m, const collm_rec_split *train, const collm_rec_split *eval, const collm_cf_train_options *opt,
                 collm_pool *pool, collm_cf_progress_fn progress, void *progress_ctx, collm_cf_train_result *result);
    // Neural kinds (NULL for MF): their weights and one training-mode
    // loss/gradient evaluation (see cf/encoders.h).
    struct cf_params *(*params)(const collm_cf_model *m);
    double (*loss_grad)(collm_cf_model *m, int64_t n, const int32_t *users, const int32_t *items, const int32_t *win,
                        const float *labels, double dropout, uint64_t seed, collm_pool *pool);
    int (*save_tensors)(const collm_cf_model *m, collm_gguf_writer *w);
    int (*load_tensors)(collm_cf_model *m, const collm_gguf_file *f, const char *path);
};

extern const collm_cf_kind collm_cf_kind_mf;
extern const collm_cf_kind collm_cf_kind_lightgcn;
extern const collm_cf_kind collm_cf_kind_mfbias;
extern const collm_cf_kind collm_cf_kind_sasrec;
extern const collm_cf_kind collm_cf_kind_din;
extern const collm_cf_kind collm_cf_kind_ctx;

// COLLM_OK when every user / item id of the split (targets, and history ids
// for history kinds) lies inside the model's tables; else an error naming
// the file, the row, its line and the id.
int collm_cf_check_split_ids(const collm_cf_model *m, const collm_rec_split *split);

#endif
