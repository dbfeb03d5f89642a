// Private to src/cf: the model handle and the per-kind vtable. cf.c does
// everything common (id checks, split scoring, evaluation-split lookup,
// GGUF keys, the training record); a kind supplies only what differs.
#ifndef COLLM_CF_INTERNAL_H
#define COLLM_CF_INTERNAL_H

#include "collm/cf.h"
#include "collm/gguf.h"

typedef struct collm_cf_kind collm_cf_kind;

struct collm_cf_model {
    const collm_cf_kind *kind;
    int dim;
    int32_t n_users, n_items;
    void *impl; // the kind's state (MF: mf_impl)

    // training record, written by collm_cf_model_save (has_train = 0 before any training)
    int has_train;
    collm_cf_train_options train_opt; // train_opt.eval_split points at eval_split below
    collm_cf_train_result train_result;
    char *eval_split;  // owned copy
    char *dataset_dir; // owned copy
};

struct collm_cf_kind {
    const char *name;
    // Allocates m->impl for m->n_users × m->n_items × m->dim; with
    // `initialise`, draws the initial weights from seed (else leaves zeros
    // for load_tensors to fill).
    int (*init)(collm_cf_model *m, uint64_t seed, int initialise);
    void (*free_impl)(collm_cf_model *m);
    // Ids are already range-checked by cf.c.
    void (*user_vector)(const collm_cf_model *m, int32_t user, float *out);
    void (*item_vector)(const collm_cf_model *m, int32_t item, float *out);
    float (*score)(const collm_cf_model *m, int32_t user, int32_t item);
    // eval may be NULL (no evaluation). Ids of ds->train and eval are checked.
    int (*train)(collm_cf_model *m, const collm_rec_split *train, const collm_rec_split *eval, const collm_cf_train_options *opt,
                 collm_pool *pool, collm_cf_progress_fn progress, void *progress_ctx, collm_cf_train_result *result);
    int (*save_tensors)(const collm_cf_model *m, collm_gguf_writer *w);
    int (*load_tensors)(collm_cf_model *m, const collm_gguf_file *f, const char *path);
};

extern const collm_cf_kind collm_cf_kind_mf;

// COLLM_OK when every user / item id of the split (targets; histories are
// not used by the kinds so far) lies inside the model's tables; else an
// error naming the file, the row, its line and the id.
int collm_cf_check_split_ids(const collm_cf_model *m, const collm_rec_split *split);

#endif
