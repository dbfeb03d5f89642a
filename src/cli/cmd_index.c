// collm index: builds a Faiss inner-product index over a collaborative
// model's item vectors (items 1..n_items-1; 0 is padding) and writes it in
// Faiss's file format. Later `recommend` / `serve` load it.
//   collm index --cf mf.gguf --factory Flat --out items.faiss
//   collm index --ckpt collm.gguf --factory Flat --out items.faiss
// (--ckpt: the item table a CoLLM checkpoint carries, cf.item_embd; read
// straight from the GGUF, no base model needed.)
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "collm/cf.h"
#include "collm/error.h"
#include "collm/fileio.h"
#include "collm/collm.h"
#include "collm/retrieval.h"
#include "collm/threadpool.h"
#include "commands.h"

static double index_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

// Item vectors of a CF model file: *items (n_items, d) malloc'd.
static int index_read_cf_items(const char *path, float **items, int32_t *n_items, int *d) {
    collm_cf_model *m = collm_cf_model_load(path);
    if (!m) return COLLM_ERR;
    *d = collm_cf_model_dim(m);
    *n_items = collm_cf_model_n_items(m);
    *items = collm_malloc((size_t)*n_items * (size_t)*d * sizeof(float));
    int rc = *items ? COLLM_OK : COLLM_ERR_NOMEM;
    for (int32_t i = 0; i < *n_items && rc == COLLM_OK; i++) rc = collm_cf_model_item_vector(m, i, *items + (size_t)i * (size_t)*d);
    collm_cf_model_free(m);
    return rc;
}

int cmd_index(int argc, char **argv) {
    cli_option opts[] = {
        {"--cf", "FILE", "collaborative model (.gguf, from train-cf) whose item vectors are indexed", NULL},
        {"--ckpt", "FILE", "or: a CoLLM checkpoint (from train) whose CF item table is indexed", NULL},
        {"--out", "FILE", "output index (Faiss format, e.g. items.faiss), with a record of the item vectors it holds: "
                          "recommend, serve and eval-topk refuse it beside a checkpoint with other ones", NULL},
        {"--factory", "STR", "Faiss index factory string: Flat | HNSW32,Flat | IVF1024,Flat | IVF4096,PQ16 (compressed) | "
                             "OPQ16,IVF4096,PQ16 ... (default Flat)", NULL},
        {"--shards", "K", "K indexes over contiguous blocks of the items, searched together (Faiss IndexShards); "
                          "written as FILE.shard0.. plus a manifest at FILE (default 1)", NULL},
        {"--nprobe", "N", "IVF lists searched per query, saved with the index (default 32)", NULL},
        {"--ef-search", "N", "HNSW search breadth, saved with the index (default 128)", NULL},
        {"--train-max", "N", "IVF: train on at most N items (default all)", NULL},
        {"--json", NULL, "print what was built as one JSON object on stdout", NULL},
        CLI_COMMON_OPTIONS,
        {NULL, NULL, NULL, NULL},
    };
    int p = cli_parse(argc, argv, opts,
                      "usage: collm index (--cf FILE | --ckpt FILE) --out FILE [--factory Flat] [--nprobe 32] [--ef-search 128] "
                      "[--train-max N] [--shards K]");
    if (p) return p > 0 ? 0 : 1;
    const char *cf_path = cli_get(opts, "--cf"), *ckpt_path = cli_get(opts, "--ckpt"), *out;
    if (!cf_path == !ckpt_path) {
        fprintf(stderr, "collm index: give exactly one of --cf FILE or --ckpt FILE\n");
        return 1;
    }
    if (cli_require(opts, "--out", &out)) return 1;
    collm_retrieval_build_options opt;
    collm_retrieval_build_options_default(&opt);
    if (cli_get(opts, "--factory")) opt.factory = cli_get(opts, "--factory");
    if (!*opt.factory) { // (the library reads "" as Flat; the report would name no type)
        fprintf(stderr, "collm index: --factory is empty: give a Faiss factory string such as Flat or HNSW32,Flat\n");
        return 1;
    }
    int64_t nprobe, ef_search, train_max, shards;
    if (cli_get_int(opts, "--nprobe", opt.nprobe, &nprobe) || cli_get_int(opts, "--ef-search", opt.ef_search, &ef_search) ||
        cli_get_int(opts, "--train-max", 0, &train_max) || cli_get_int_range(opts, "--shards", 1, 1, 1024, &shards))
        return 1;
    opt.shards = (int)shards;
    if (nprobe < 1 || nprobe > (1 << 24) || ef_search < 1 || ef_search > (1 << 24) || train_max < 0) {
        fprintf(stderr, "collm index: out-of-range option (need nprobe >= 1, ef-search >= 1, train-max >= 0)\n");
        return 1;
    }
    opt.nprobe = (int)nprobe;
    opt.ef_search = (int)ef_search;
    opt.train_max = train_max;
    if (collm_check_output_path(out)) return cli_fail("index"); // before the index is built
    // the index replaced the model it was built from
    const cli_input inputs[] = {{"--cf", cf_path}, {"--ckpt", ckpt_path}};
    if (cli_check_not_input("--out", out, inputs, 2, NULL)) return cli_fail("index");
    int threads = cli_threads(opts);
    collm_retrieval_set_threads(threads);
    collm_blas_set_threads(threads);

    int d = 0;
    int32_t n_items = 0;
    float *items = NULL; // (n_items, d)
    int rc = ckpt_path ? collm_checkpoint_item_vectors(ckpt_path, &items, &n_items, &d) : index_read_cf_items(cf_path, &items, &n_items, &d);
    if (!cf_path) cf_path = ckpt_path;
    collm_retrieval_index *index = NULL;
    double t0 = index_now_s();
    if (rc == COLLM_OK) {
        index = collm_retrieval_index_build(items, n_items, d, &opt);
        if (!index) rc = COLLM_ERR;
    }
    double build_s = index_now_s() - t0;
    if (rc == COLLM_OK) rc = collm_retrieval_index_save(index, out);
    if (rc == COLLM_OK) {
        fprintf(stderr, "index: %s%s, %lld items of %s (d=%d), built in %.2fs with %d threads; wrote %s\n", opt.factory,
                opt.shards > 1 ? " in shards" : "", (long long)collm_retrieval_index_size(index), cf_path, d, build_s,
                threads, out);
        if (cli_has(opts, "--json")) {
            cJSON *j = cJSON_CreateObject();
            cJSON_AddStringToObject(j, "out", out);
            cJSON_AddStringToObject(j, "factory", opt.factory);
            cJSON_AddNumberToObject(j, "items", (double)collm_retrieval_index_size(index));
            cJSON_AddNumberToObject(j, "dim", d);
            cJSON_AddNumberToObject(j, "shards", collm_retrieval_index_shards(index));
            cJSON_AddNumberToObject(j, "build_seconds", build_s);
            if (cli_print_json(j)) rc = COLLM_ERR_NOMEM;
        }
    } else {
        cli_fail("index");
    }
    collm_retrieval_index_free(index);
    free(items);
    return rc == COLLM_OK ? 0 : 1;
}
