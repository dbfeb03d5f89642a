// Shared loading for eval / fit-score and recommend / serve / eval-topk (see rec_setup.h).
#include "rec_setup.h"

#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "collm/error.h"
#include "collm/threadpool.h"

int cli_rec_setup_load(cli_rec_setup *s, const char *command, const char *ckpt, const char *base,
                       const char *index_path, const char *data_dir, int threads) {
    memset(s, 0, sizeof *s);
    if (threads > 0) { // 0: a reload while requests run: leave the process-wide settings alone
        collm_retrieval_set_threads(threads);
        collm_blas_set_threads(threads);
    }
    s->pool = threads > 1 ? collm_pool_create(threads) : NULL;
    s->model = collm_model_load(ckpt, base, s->pool);
    if (!s->model) goto fail;
    s->index = collm_retrieval_index_load(index_path);
    if (!s->index) goto fail;
    s->ds = collm_rec_dataset_load(data_dir);
    if (!s->ds) goto fail;
    s->hist = collm_recommend_histories_build(s->ds);
    if (!s->hist) goto fail;
    int32_t n_items = 0;
    int d = 0;
    if (!collm_cf_items(s->model, &n_items, &d)) {
        collm_error(COLLM_ERR_ARG, "%s holds no collaborative vectors (a stage-1 checkpoint?)", ckpt);
        goto fail;
    }
    if (collm_model_check_dataset(s->model, s->ds, ckpt, NULL, NULL) != COLLM_OK) goto fail;
    if (collm_retrieval_index_dim(s->index) != d) {
        collm_error(COLLM_ERR_ARG, "%s has dimension %d but %s's CF vectors have %d", index_path,
                    collm_retrieval_index_dim(s->index), ckpt, d);
        goto fail;
    }
    // collm index stores every item but the padding id 0: another count is
    // an index of another model (its ids would run past this item table, or
    // leave items that can never be recommended)
    if (collm_retrieval_index_size(s->index) != (int64_t)n_items - 1) {
        collm_error(COLLM_ERR_ARG, "%s holds %lld vectors but %s's item table has %d items (ids 1..%d): an index of "
                                   "another model? (collm index --ckpt %s)",
                    index_path, (long long)collm_retrieval_index_size(s->index), ckpt, (int)n_items, (int)n_items - 1, ckpt);
        goto fail;
    }
    // the same count can still be another model's vectors (one of the same catalogue)
    if (collm_retrieval_index_check_items(s->index, collm_cf_items(s->model, NULL, NULL), n_items, d) != COLLM_OK) {
        collm_error_prefix(COLLM_ERR_ARG, "%s does not match %s (collm index --ckpt %s)", index_path, ckpt, ckpt);
        goto fail;
    }
    if (s->ds->items->n < n_items && collm_rec_items_grow(s->ds->items, n_items) != COLLM_OK) goto fail;
    return 0;
fail:
    cli_fail(command);
    cli_rec_setup_free(s);
    return 1;
}

void cli_rec_setup_free(cli_rec_setup *s) {
    collm_recommend_histories_free(s->hist);
    collm_rec_split_free(s->split);
    collm_rec_dataset_free(s->ds);
    collm_retrieval_index_free(s->index);
    collm_model_free(s->model);
    collm_pool_free(s->pool);
    memset(s, 0, sizeof *s);
}

int cli_rec_setup_load_split(cli_rec_setup *s, const char *command, const char *ckpt, const char *base,
                             const char *data_dir, const char *split, int threads) {
    memset(s, 0, sizeof *s);
    s->pool = collm_pool_create(threads);
    s->ds = s->pool ? collm_rec_dataset_load(data_dir) : NULL;
    s->split = s->ds ? collm_rec_dataset_load_split(s->ds, split) : NULL;
    s->model = s->split ? collm_model_load(ckpt, base, s->pool) : NULL;
    if (s->model && collm_model_check_dataset(s->model, s->ds, ckpt, NULL, NULL) == COLLM_OK) return 0;
    cli_fail(command);
    cli_rec_setup_free(s);
    return 1;
}
