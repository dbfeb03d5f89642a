// Fuzzes the service's request handling without a socket: the bytes become
// the body of a request to collm_serve_handle (what the HTTP layer calls),
// on a tiny but complete service (synthetic data, untrained MF, tiny Llama
// with the Llama-2 vocab, stage-2 model, Flat index) built once at start.
// The first byte picks the request: bits 0-1 the path (/recommend, /score,
// /health, an unknown one), bit 2 GET instead of POST, bit 3 PUT.
// Invariants: every answer is a JSON object in valid UTF-8 with a known
// status; an error answer carries "error" and "code"; a 405 names the
// allowed method; no request the client can send makes the server fail (500).
#include "collm/cf.h"
#include "collm/collm.h"
#include "collm/error.h"
#include "collm/prepare.h"
#include "collm/recommend.h"
#include "collm/retrieval.h"
#include "collm/serve.h"
#include "fuzz_common.h"

#include <cjson/cJSON.h>

static collm_rec_dataset *ds;
static collm_model *model;
static collm_retrieval_index *index_;
static collm_recommend_histories *hist;
static collm_serve_server *server;
static int verbose; // $COLLM_FUZZ_VERBOSE: print each answer (for writing seeds)

static void teardown(void) {
    collm_serve_stop(server);
    collm_recommend_histories_free(hist);
    collm_retrieval_index_free(index_);
    collm_model_free(model);
    collm_rec_dataset_free(ds);
    fuzz_tmp_remove();
}

static void setup_failed(const char *what) {
    fprintf(stderr, "fuzz_http: %s: %s\n", what, collm_last_error());
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    verbose = getenv("COLLM_FUZZ_VERBOSE") != NULL;
    char data[600], base[600], mf[600];
    snprintf(data, sizeof data, "%s/data", fuzz_tmp_dir());
    snprintf(base, sizeof base, "%s/base.gguf", fuzz_tmp_dir());
    snprintf(mf, sizeof mf, "%s/mf.gguf", fuzz_tmp_dir());
    atexit(teardown);
    collm_rec_synth_options so;
    collm_rec_synth_defaults(&so);
    so.n_users = 40;
    so.n_items = 60;
    so.min_per_user = 5;
    so.max_per_user = 12;
    so.seed = 5;
    if (collm_rec_synth(&so, data) != COLLM_OK) setup_failed("synth");
    if (!(ds = collm_rec_dataset_load(data))) setup_failed("dataset");
    collm_cf_model *cf = collm_cf_model_create("mf", ds->n_users, ds->n_items, 8, 1);
    if (!cf || collm_cf_model_save(cf, mf) != COLLM_OK) setup_failed("mf");
    collm_cf_model_free(cf);
    collm_llm_hparams hp;
    memset(&hp, 0, sizeof hp);
    hp.arch = COLLM_LLM_ARCH_LLAMA;
    hp.n_vocab = 32000;
    hp.n_ctx_train = 512;
    hp.n_embd = 16;
    hp.n_layer = 1;
    hp.n_head = 2;
    hp.n_head_kv = 2;
    hp.n_ff = 24;
    hp.rope_base = 10000;
    hp.rms_eps = 1e-5f;
    collm_llm_model *llm = collm_llm_model_init_random(&hp, 3);
    if (!llm || collm_llm_model_save(llm, base, fuzz_shared_path("testvectors/tokenizer/ggml-vocab-llama-spm.gguf"), "tiny",
                                     COLLM_GGML_TYPE_F32) != COLLM_OK)
        setup_failed("base model");
    collm_llm_model_free(llm);
    collm_build_options b;
    collm_build_options_default(&b);
    b.base_path = base;
    b.cf_path = mf;
    b.stage = 2;
    b.lora_rank = 0;
    if (!(model = collm_model_build(&b, ds, NULL))) setup_failed("model");
    int32_t n_items = 0;
    int d = 0;
    const float *vectors = collm_cf_items(model, &n_items, &d);
    collm_retrieval_build_options ro;
    collm_retrieval_build_options_default(&ro);
    if (!vectors || !(index_ = collm_retrieval_index_build(vectors, n_items, d, &ro))) setup_failed("index");
    if (!(hist = collm_recommend_histories_build(ds))) setup_failed("histories");
    if (ds->items->n < n_items && collm_rec_items_grow(ds->items, n_items) != COLLM_OK) setup_failed("items");
    collm_serve_options o;
    collm_serve_options_default(&o);
    o.port = 0; // any free loopback port: requests come through collm_serve_handle
    o.n_contexts = 1;
    o.max_k = 20; // keeps a valid request's scoring to a few milliseconds
    if (!(server = collm_serve_start(model, index_, ds->items, hist, &o))) setup_failed("serve");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    static const char *const paths[] = {"/recommend", "/score", "/health", "/nope"};
    const char *path = paths[data[0] & 3];
    const char *method = data[0] & 8 ? "PUT" : data[0] & 4 ? "GET" : "POST";
    char *out = NULL;
    int status = 0;
    const char *allow = NULL;
    collm_serve_handle(server, method, path, (const char *)data + 1, size - 1, &out, &status, &allow);
    FUZZ_ASSERT(out != NULL, "no body (status %d)", status);
    if (verbose) fprintf(stderr, "%s %s -> %d %s\n", method, path, status, out);
    // 500 would be a server failure on a client's request, 503 impossible
    // with one caller (a context is always free)
    FUZZ_ASSERT(status == 200 || status == 400 || status == 404 || status == 405 || status == 413, "status %d: %s",
                status, out);
    FUZZ_ASSERT(collm_utf8_valid(out, strlen(out)), "the answer is valid UTF-8: %s", out);
    cJSON *root = cJSON_Parse(out);
    FUZZ_ASSERT(root && cJSON_IsObject(root), "the answer is a JSON object: %s", out);
    if (status != 200)
        FUZZ_ASSERT(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(root, "error")) &&
                        cJSON_IsString(cJSON_GetObjectItemCaseSensitive(root, "code")),
                    "error text and code: %s", out);
    if (status == 405) FUZZ_ASSERT(allow != NULL, "a 405 names the allowed method");
    cJSON_Delete(root);
    free(out);
    return 0;
}
