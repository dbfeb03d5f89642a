// Private to src/cf: the model handle and the per-kind vtable. cf.c does
// everything common (id checks, split scoring, evaluation-split lookup,
// GGUF keys, the training record); a kind supplies only what differs.
#ifndef COLLM_CF_INTERNAL_H
#define COLLM_CF_INTERNAL_H

#include "collm/cf.h"
#include "collm/gguf.h"

typedef struct cf_kind cf_kind;

struct cf_model {
    const cf_kind *kind;
    int dim;
    int32_t n_users, n_items;
    void *impl; // the kind's state (MF: mf_impl)

    // training record, written by cf_model_save (has_train = 0 before any training)
    int has_train;
    cf_train_options train_opt; // train_opt.eval_split points at eval_split below
    cf_train_result train_result;
    char *eval_split;  // owned copy
    char *dataset_dir; // owned copy
};

struct cf_kind {
    const char *name;
    // Allocates m->impl for m->n_users × m->n_items × m->dim; with
    // `initialise`, draws the initial weights from seed (else leaves zeros
    // for load_tensors to fill).
    int (*init)(cf_model *m, uint64_t seed, int initialise);
    void (*free_impl)(cf_model *m);
    // Ids are already range-checked by cf.c.
    void (*user_vector)(const cf_model *m, int32_t user, float *out);
    void (*item_vector)(const cf_model *m, int32_t item, float *out);
    float (*score)(const cf_model *m, int32_t user, int32_t item);
    // eval may be NULL (no evaluation). Ids of ds->train and eval are checked.
    int (*train)(cf_model *m, const rec_split *train, const rec_split *eval, const cf_train_options *opt,
                 collm_pool *pool, cf_progress_fn progress, void *progress_ctx, cf_train_result *result);
    int (*save_tensors)(const cf_model *m, gguf_writer *w);
    int (*load_tensors)(cf_model *m, const gguf_file *f, const char *path);
};

extern const cf_kind cf_kind_mf;

// COLLM_OK when every user / item id of the split (targets; histories are
// not used by the kinds so far) lies inside the model's tables; else an
// error naming the file, the row, its line and the id.
int cf_check_split_ids(const cf_model *m, const rec_split *split);

#endif
