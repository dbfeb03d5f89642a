// What the commands that score with a CoLLM checkpoint load: recommend, serve
// and eval-topk the checkpoint, its Faiss item index, a dataset folder and
// the per-user histories built from it; eval and fit-score the checkpoint,
// the dataset and one of its splits. One struct, one free.
#ifndef COLLM_CLI_REC_SETUP_H
#define COLLM_CLI_REC_SETUP_H

#include "collm/collm.h"
#include "collm/recommend.h"
#include "collm/retrieval.h"

typedef struct {
    collm_model *model;
    collm_retrieval_index *index;    // recommend, serve, eval-topk
    collm_rec_dataset *ds;
    collm_recommend_histories *hist; // recommend, serve, eval-topk
    collm_rec_split *split;          // eval, fit-score
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

// eval / fit-score: a pool of `threads`, the dataset, one of its splits (a
// name or a file) and a checkpoint checked against the dataset (base may be
// NULL). Returns 0, or prints "collm <command>: <error>" and returns 1 with
// nothing held.
int cli_rec_setup_load_split(cli_rec_setup *s, const char *command, const char *ckpt, const char *base,
                             const char *data_dir, const char *split, int threads);

#endif
