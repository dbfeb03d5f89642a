// The public API's loaders, builders, writers and scorers handed NULL where
// a path, model, table or output is required: each returns its error (a code
// or NULL) with a one-line message naming the call, never a crash (a helper's
// review found these dereferencing NULL). A crash fails the whole test run.
#include <string.h>

#include "collm/cf.h"
#include "collm/collm.h"
#include "collm/dataset.h"
#include "collm/error.h"
#include "collm/gguf.h"
#include "collm/model.h"
#include "collm/prompt.h"
#include "collm/recommend.h"
#include "collm/retrieval.h"
#include "collm/tokenizer.h"
#include "test.h"

// got is the call's NULL/error result (1 when it failed as it should); the
// message must be set and, where given, hold `name`
static void expect_refused(const char *what, int got, const char *name) {
    CHECK_MSG(got, "%s: did not fail", what);
    const char *msg = collm_last_error();
    CHECK_MSG(msg && *msg && (!name || strstr(msg, name)) && !strchr(msg, '\n'), "%s: message '%s'", what,
              msg ? msg : "(none)");
    collm_clear_error();
}

int main(void) {
    expect_refused("collm_gguf_open(NULL)", collm_gguf_open(NULL) == NULL, "no path");
    expect_refused("collm_model_load(NULL)", collm_model_load(NULL, NULL, NULL) == NULL, "no path");
    expect_refused("collm_llm_model_load(NULL)", collm_llm_model_load(NULL) == NULL, "no path");
    expect_refused("collm_llm_check_file(NULL)", collm_llm_check_file(NULL, "x.gguf", NULL) != COLLM_OK, "collm_llm_check_file");
    expect_refused("collm_tok_load_path(NULL)", collm_tok_load_path(NULL) == NULL, "no path");
    expect_refused("collm_cf_model_load(NULL)", collm_cf_model_load(NULL) == NULL, "no path");
    expect_refused("collm_rec_dataset_load(NULL)", collm_rec_dataset_load(NULL) == NULL, "no folder");
    expect_refused("collm_rec_split_load(NULL)", collm_rec_split_load(NULL, NULL) == NULL, "no path");
    expect_refused("collm_rec_split_write(path, NULL)", collm_rec_split_write("/nonexistent/x.tsv", NULL) == COLLM_ERR_ARG,
                   "collm_rec_split_write");
    expect_refused("collm_rec_items_write(path, NULL)", collm_rec_items_write("/nonexistent/x.tsv", NULL) == COLLM_ERR_ARG,
                   "collm_rec_items_write");
    expect_refused("collm_rec_items_grow(NULL)", collm_rec_items_grow(NULL, 5) == COLLM_ERR_ARG, "no item table");
    expect_refused("collm_retrieval_index_load(NULL)", collm_retrieval_index_load(NULL) == NULL, "no path");
    expect_refused("collm_retrieval_index_build(NULL vectors)", collm_retrieval_index_build(NULL, 10, 4, NULL) == NULL,
                   "no item vectors");
    const float query[4] = {0};
    int32_t items[4];
    float scores[4];
    int n_found = -1;
    expect_refused("collm_retrieval_candidates(NULL index)",
                   collm_retrieval_candidates(NULL, query, 4, NULL, 0, 4, items, scores, &n_found) == COLLM_ERR_ARG,
                   "collm_retrieval_candidates");
    expect_refused("collm_recommend_context_create(NULL)", collm_recommend_context_create(NULL, NULL) == NULL,
                   "no model");
    const int32_t cands[2] = {1, 2};
    expect_refused("collm_recommend_score_items(NULL model)",
                   collm_recommend_score_items(NULL, NULL, 1, NULL, 0, cands, 2, 1, NULL, scores, NULL) == COLLM_ERR_ARG,
                   "collm_recommend_score_items");
    const int32_t *his = NULL;
    int64_t n_his = 0;
    expect_refused("collm_recommend_user_history(NULL) is an argument error, not an unknown user",
                   collm_recommend_user_history(NULL, 1, &his, &n_his) == COLLM_ERR_ARG, "NULL argument");
    expect_refused("collm_prompt_template_from_string(NULL)", collm_prompt_template_from_string(NULL) == NULL, "no text");
    expect_refused("collm_prompt_template_check(NULL)", collm_prompt_template_check(NULL, NULL) == COLLM_ERR_ARG,
                   "no text");
    char out[64];
    expect_refused("collm_prompt_fill(NULL template)", collm_prompt_fill(NULL, NULL, NULL, 0, 1, out, sizeof out) < 0,
                   "NULL template");
    expect_refused("collm_checkpoint_set_rerank(NULL)", collm_checkpoint_set_rerank(NULL, 0, 0) == COLLM_ERR_ARG,
                   "no path");
    // an item table that cannot be read leaves nothing for the caller to free
    float *vec = (float *)query; // (anything but NULL: the call must reset it)
    int32_t n_vec = 0;
    int dim = 0;
    expect_refused("collm_checkpoint_item_vectors(missing file)",
                   collm_checkpoint_item_vectors("/nonexistent/ckpt.gguf", &vec, &n_vec, &dim) != COLLM_OK && !vec,
                   "/nonexistent/ckpt.gguf");
    vec = (float *)query;
    expect_refused("collm_checkpoint_item_vectors(a GGUF without cf.item_embd)",
                   collm_checkpoint_item_vectors(test_shared_path("models/stories260K.gguf"), &vec, &n_vec, &dim) ==
                           COLLM_ERR_FORMAT && !vec,
                   "cf.item_embd");
    expect_refused("collm_checkpoint_item_vectors(NULL outputs)",
                   collm_checkpoint_item_vectors("/nonexistent/ckpt.gguf", NULL, &n_vec, &dim) == COLLM_ERR_ARG,
                   "NULL argument");
    return test_report();
}
