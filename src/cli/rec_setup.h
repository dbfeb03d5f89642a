// What recommend, serve and eval-topk load: a CoLLM checkpoint, its Faiss
// item index, a dataset folder and the per-user histories built from it.
#ifndef COLLM_CLI_REC_SETUP_H
#define COLLM_CLI_REC_SETUP_H

#include "collm/collm.h"
#include "collm/recommend.h"
#include "collm/retrieval.h"

typedef struct {
    collm_model *model;
    collm_retrieval_index *index;
    collm_rec_dataset *ds;
    collm_recommend_histories *hist;
    collm_pool *pool;
} cli_rec_setup;

// Loads everything (base may be NULL: the checkpoint's stored base path) and
// checks that the index, the checkpoint's CF tables and the items agree.
// threads 0: no pool, and the BLAS / Faiss thread settings are left as
// they are (a reload while requests run). Returns 0, or prints
// "collm <command>: <error>" and returns 1.
int cli_rec_setup_load(cli_rec_setup *s, const char *command, const char *ckpt, const char *base,
                       const char *index_path, const char *data_dir, int threads);
void cli_rec_setup_free(cli_rec_setup *s);

// What eval and fit-score load: a pool of `threads`, the dataset, one of its
// splits (a name or a file) and a checkpoint checked against the dataset
// (base may be NULL). Returns 0, or prints "collm <command>: <error>" and
// returns 1 with nothing held.
typedef struct {
    collm_pool *pool;
    collm_rec_dataset *ds;
    collm_rec_split *split;
    collm_model *model;
} cli_split_setup;
int cli_split_setup_load(cli_split_setup *s, const char *command, const char *ckpt, const char *base,
                         const char *data_dir, const char *split, int threads);
void cli_split_setup_free(cli_split_setup *s);

#endif
