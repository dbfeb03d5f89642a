// Artefacts several tests build: a tiny Llama (n_embd 32, n_ff 48, two
// heads) with the real Llama-2 vocabulary, saved as GGUF.
#ifndef COLLM_TEST_FIXTURES_H
#define COLLM_TEST_FIXTURES_H

#include "collm/cf.h"
#include "collm/collm.h"
#include "collm/dataset.h"
#include "collm/error.h"
#include "collm/prepare.h"
#include "collm/gguf.h"
#include "collm/model.h"
#include "test.h"

static inline int fixture_tiny_llama(const char *path, int n_layer, int n_head_kv, uint64_t seed) {
    collm_llm_hparams hp;
    memset(&hp, 0, sizeof hp);
    hp.arch = COLLM_LLM_ARCH_LLAMA;
    hp.n_vocab = 32000;
    hp.n_ctx_train = 512;
    hp.n_embd = 32;
    hp.n_layer = n_layer;
    hp.n_head = 2;
    hp.n_head_kv = n_head_kv;
    hp.n_ff = 48;
    hp.rope_base = 10000;
    hp.rms_eps = 1e-5f;
    collm_llm_model *m = collm_llm_model_init_random(&hp, seed);
    if (!m) return COLLM_ERR;
    int rc = collm_llm_model_save(m, path, test_shared_path("testvectors/tokenizer/ggml-vocab-llama-spm.gguf"), "tiny",
                            COLLM_GGML_TYPE_F32);
    collm_llm_model_free(m);
    return rc;
}

// A synthetic dataset in data_dir and an untrained MF (d=16, seeded) over
// its id ranges in mf_path: enough for the slots to have vectors.
static inline int fixture_synth_and_mf(const char *data_dir, const char *mf_path, int32_t users, int32_t items,
                                       uint64_t seed) {
    collm_rec_synth_options so;
    collm_rec_synth_defaults(&so);
    so.n_users = users;
    so.n_items = items;
    so.seed = seed;
    int rc = collm_rec_synth(&so, data_dir);
    if (rc) return rc;
    collm_rec_dataset *ds = collm_rec_dataset_load(data_dir);
    if (!ds) return COLLM_ERR;
    collm_cf_model *cf = collm_cf_model_create("mf", ds->n_users, ds->n_items, 16, 1);
    rc = cf ? collm_cf_model_save(cf, mf_path) : COLLM_ERR;
    collm_cf_model_free(cf);
    collm_rec_dataset_free(ds);
    return rc;
}

// The training options of the tests' few-step runs: batch 8, no warm-up,
// steps_per_epoch x max_epochs steps, evaluation on the first eval_rows rows,
// the checkpoint written to out_path.
static inline collm_train_options fixture_train_options(int steps_per_epoch, int max_epochs, int eval_rows,
                                                        const char *out_path) {
    collm_train_options t;
    collm_train_options_default(&t);
    t.batch = 8;
    t.steps_per_epoch = steps_per_epoch;
    t.max_epochs = max_epochs;
    t.warmup_steps = 0;
    t.max_eval_rows = eval_rows;
    t.out_path = out_path;
    return t;
}

#endif
