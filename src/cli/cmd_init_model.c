// `collm init-model`: a randomly initialised Llama or Qwen2 model written as
// a GGUF that llama.cpp loads: the vocabulary (every tokenizer.* key) comes
// from another GGUF, weights ~ N(0, 0.02^2) (norms 1, biases 0), drawn
// deterministically from --seed.
#include <cjson/cJSON.h>

#include "cli.h"
#include "commands.h"

#include "collm/error.h"
#include "collm/gguf.h"
#include "collm/model.h"

#include <stdio.h>
#include <string.h>

static int positive(const cli_option *opts, const char *name, int64_t def, int *out) {
    int64_t v;
    if (cli_get_int(opts, name, def, &v) != 0) return -1;
    if (v <= 0 || v > 1000000000) {
        fprintf(stderr, "collm init-model: %s must be a positive integer (got %lld)\n", name, (long long)v);
        return -1;
    }
    *out = (int)v;
    return 0;
}

int cmd_init_model(int argc, char **argv) {
    cli_option opts[] = {
        {"--arch", "NAME", "llama or qwen2 (qwen2: q/k/v biases, NEOX RoPE)", NULL},
        {"--vocab-from", "FILE", "GGUF whose tokenizer.* keys (vocabulary) are copied", NULL},
        {"--n-embd", "N", "embedding width", NULL},
        {"--n-layer", "N", "transformer blocks", NULL},
        {"--n-head", "N", "attention heads", NULL},
        {"--n-head-kv", "N", "key/value heads (default: n-head)", NULL},
        {"--n-ff", "N", "feed-forward width", NULL},
        {"--n-ctx", "N", "context_length key (default 2048)", NULL},
        CLI_SEED_OPTION,
        {"--tie-output", NULL, "no output.weight: the LM head reuses token_embd", NULL},
        {"--type", "T", "f32 (default) or f16 for the matrices", NULL},
        {"--name", "S", "general.name (default collm-random)", NULL},
        {"--out", "FILE", "output GGUF", NULL},
        {"--json", NULL, "print what was written as one JSON object", NULL},
        CLI_COMMON_OPTIONS,
        {NULL, NULL, NULL, NULL},
    };
    int rc = cli_parse(argc, argv, opts,
                       "usage: collm init-model --arch llama --vocab-from V.gguf --n-embd 256 --n-layer 4 --n-head 4\n"
                       "                        [--n-head-kv 4] --n-ff 688 [--seed 2023] [--tie-output] [--type f32|f16]\n"
                       "                        --out M.gguf\n\n"
                       "Writes a randomly initialised model with V.gguf's vocabulary.");
    if (rc > 0) return 0;
    if (rc < 0) return 1;
    const char *arch_name, *vocab_path, *out_path;
    if (cli_require(opts, "--arch", &arch_name) || cli_require(opts, "--vocab-from", &vocab_path) ||
        cli_require(opts, "--out", &out_path))
        return 1;
    (void)cli_threads(opts); // accepted for uniformity; init is single-threaded
    // the model replaced the vocabulary file it copies from
    const cli_input inputs[] = {{"--vocab-from", vocab_path}};
    if (cli_check_not_input("--out", out_path, inputs, 1, NULL)) return cli_fail("init-model");
    collm_llm_hparams hp;
    memset(&hp, 0, sizeof hp);
    if (collm_llm_arch_from_name(arch_name, &hp.arch) != COLLM_OK) return cli_fail("init-model");
    const char *need[] = {"--n-embd", "--n-layer", "--n-head", "--n-ff"};
    for (int i = 0; i < 4; i++)
        if (!cli_has(opts, need[i])) {
            fprintf(stderr, "collm init-model: missing required option %s (see --help)\n", need[i]);
            return 1;
        }
    if (positive(opts, "--n-embd", 0, &hp.n_embd) || positive(opts, "--n-layer", 0, &hp.n_layer) ||
        positive(opts, "--n-head", 0, &hp.n_head) || positive(opts, "--n-ff", 0, &hp.n_ff) ||
        positive(opts, "--n-ctx", 2048, &hp.n_ctx_train))
        return 1;
    if (positive(opts, "--n-head-kv", hp.n_head, &hp.n_head_kv)) return 1;
    int64_t seed;
    if (cli_get_int_range(opts, "--seed", CLI_DEFAULT_SEED, 0, INT64_MAX, &seed) != 0) return 1;
    const char *type_name = cli_get(opts, "--type");
    int type = COLLM_GGML_TYPE_F32;
    if (type_name && strcmp(type_name, "f16") == 0) type = COLLM_GGML_TYPE_F16;
    else if (type_name && strcmp(type_name, "f32") != 0) {
        fprintf(stderr, "collm init-model: --type must be f32 or f16 (got '%s')\n", type_name);
        return 1;
    }
    hp.tied_output = cli_has(opts, "--tie-output");
    hp.rms_eps = 1e-5f;
    hp.rope_base = 10000.0f;

    // the vocabulary size is the vocab file's token count
    collm_gguf_file *vocab = collm_gguf_open(vocab_path);
    if (!vocab) return cli_fail("init-model");
    int64_t ti = collm_gguf_find_key(vocab, "tokenizer.ggml.tokens");
    if (ti < 0 || collm_gguf_kv_type(vocab, ti) != COLLM_GGUF_TYPE_ARRAY) {
        collm_gguf_close(vocab);
        fprintf(stderr, "collm init-model: %s has no tokenizer.ggml.tokens list\n", vocab_path);
        return 1;
    }
    hp.n_vocab = (int)collm_gguf_arr_n(vocab, ti);
    collm_gguf_close(vocab);

    collm_llm_model *model = collm_llm_model_init_random(&hp, (uint64_t)seed);
    if (!model) return cli_fail("init-model");
    const char *name = cli_get(opts, "--name");
    rc = collm_llm_model_save(model, out_path, vocab_path, name ? name : "collm-random", type);
    if (rc == COLLM_OK && cli_has(opts, "--json")) {
        const collm_llm_hparams *h = collm_llm_model_hparams(model);
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "out", out_path);
        cJSON_AddStringToObject(j, "arch", collm_llm_arch_name(h->arch));
        cJSON_AddNumberToObject(j, "parameters", (double)collm_llm_model_n_params(model));
        cJSON_AddNumberToObject(j, "n_vocab", h->n_vocab);
        cJSON_AddNumberToObject(j, "n_embd", h->n_embd);
        cJSON_AddNumberToObject(j, "n_layer", h->n_layer);
        cJSON_AddNumberToObject(j, "n_head", h->n_head);
        cJSON_AddNumberToObject(j, "n_head_kv", h->n_head_kv);
        cJSON_AddNumberToObject(j, "n_ff", h->n_ff);
        cJSON_AddBoolToObject(j, "tied_output", h->tied_output);
        if (cli_print_json(j)) rc = COLLM_ERR_NOMEM;
    } else if (rc == COLLM_OK) {
        const collm_llm_hparams *h = collm_llm_model_hparams(model);
        printf("wrote %s: %s, %lld parameters, n_vocab %d, n_embd %d, n_layer %d, n_head %d/%d, n_ff %d%s\n", out_path,
               collm_llm_arch_name(h->arch), (long long)collm_llm_model_n_params(model), h->n_vocab, h->n_embd, h->n_layer,
               h->n_head, h->n_head_kv, h->n_ff, h->tied_output ? ", tied output" : "");
    }
    collm_llm_model_free(model);
    return rc == COLLM_OK ? 0 : cli_fail("init-model");
}
