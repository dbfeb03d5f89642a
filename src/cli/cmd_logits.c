// `collm logits --model M.gguf --tokens "1 2 3" --out F`: runs the forward
// pass over the token ids as one batch and writes the logits of every
// position as raw little-endian float32, T rows x n_vocab (the layout of
// testvectors/logits/*.logits.f32).
#include <cjson/cJSON.h>

#include "cli.h"
#include "commands.h"

#include "collm/collm.h"
#include "collm/error.h"
#include "collm/fileio.h"
#include "collm/model.h"
#include "collm/threadpool.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const float *data;
    size_t n;
} logits_blob;

static int write_blob(FILE *f, void *ctx) {
    const logits_blob *b = ctx;
    return collm_fwrite_all(f, b->data, b->n * sizeof(float));
}

// Parses ids separated by spaces and/or commas into a malloc'd array.
static int parse_tokens(const char *text, int32_t **out, int *n_out) {
    size_t cap = strlen(text) / 2 + 1;
    int32_t *ids = malloc(cap * sizeof *ids);
    if (!ids) return collm_error(COLLM_ERR_NOMEM, "out of memory");
    int n = 0;
    const char *p = text;
    for (;;) {
        while (*p == ' ' || *p == ',' || *p == '\t' || *p == '\n') p++;
        if (!*p) break;
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v > 0x7fffffff || (*end && *end != ' ' && *end != ',' && *end != '\t' && *end != '\n')) {
            free(ids);
            return collm_error(COLLM_ERR_ARG, "--tokens: '%.20s' is not a token id", p);
        }
        ids[n++] = (int32_t)v;
        p = end;
    }
    if (n == 0) {
        free(ids);
        return collm_error(COLLM_ERR_ARG, "--tokens: no token ids given");
    }
    *out = ids;
    *n_out = n;
    return COLLM_OK;
}

int cmd_logits(int argc, char **argv) {
    cli_option opts[] = {
        {"--model", "FILE", "GGUF model (llama or qwen2 architecture)", NULL},
        {"--ckpt", "FILE", "instead of --model: a collm checkpoint; its base model with the checkpoint's LoRA applied", NULL},
        {"--tokens", "IDS", "token ids separated by spaces or commas, e.g. \"1 403 407\"", NULL},
        {"--out", "FILE", "output: raw little-endian float32, T rows x n_vocab", NULL},
        {"--json", NULL, "print what was written as one JSON object", NULL},
        CLI_COMMON_OPTIONS,
        {NULL, NULL, NULL, NULL},
    };
    int rc = cli_parse(argc, argv, opts,
                       "usage: collm logits (--model M.gguf | --ckpt CK.gguf) --tokens \"1 2 3\" --out F [--threads N]\n\n"
                       "Runs the model over the tokens (one batch) and writes every position's logits.");
    if (rc > 0) return 0;
    if (rc < 0) return 1;
    const char *model_path = cli_get(opts, "--model"), *ckpt_path = cli_get(opts, "--ckpt"), *tokens_text, *out_path;
    if (!model_path == !ckpt_path) {
        fprintf(stderr, "collm logits: give one of --model and --ckpt\n");
        return 1;
    }
    if (cli_require(opts, "--tokens", &tokens_text) || cli_require(opts, "--out", &out_path)) return 1;
    // the output before the model is loaded, and never over the model (it replaced it)
    const cli_input inputs[] = {{"--model", model_path}, {"--ckpt", ckpt_path}};
    if (collm_check_output_path(out_path) || cli_check_not_input("--out", out_path, inputs, 2, NULL))
        return cli_fail("logits");
    int n_threads = cli_threads(opts);
    int32_t *tokens = NULL;
    int T = 0;
    if (parse_tokens(tokens_text, &tokens, &T) != COLLM_OK) return cli_fail("logits");

    collm_blas_set_threads(n_threads);
    collm_pool *pool = collm_pool_create(n_threads);
    collm_model *ckpt = ckpt_path && pool ? collm_model_load(ckpt_path, NULL, pool) : NULL;
    collm_llm_model *model = model_path ? collm_llm_model_load(model_path) : NULL;
    if (!model && !ckpt) {
        free(tokens);
        collm_pool_free(pool);
        return cli_fail("logits");
    }
    const collm_llm_model *llm = ckpt ? collm_llm(ckpt) : model;
    const int V = collm_llm_model_hparams(llm)->n_vocab;
    collm_llm_context *ctx = ckpt ? collm_llm_context_with_lora(ckpt, T, T, pool) : collm_llm_context_create(model, T, T, pool);
    float *logits = malloc((size_t)T * V * sizeof(float));
    int status = 1;
    if (!ctx || !pool) {
        cli_fail("logits");
    } else if (!logits) {
        fprintf(stderr, "collm logits: out of memory for %d x %d logits\n", T, V);
    } else if (collm_llm_forward(ctx, tokens, T, NULL, NULL, -1, NULL, 0, logits) != COLLM_OK) {
        cli_fail("logits");
    } else {
        logits_blob blob = {logits, (size_t)T * V};
        if (collm_write_atomic(out_path, write_blob, &blob) != COLLM_OK) {
            cli_fail("logits");
        } else {
            if (cli_has(opts, "--json")) {
                cJSON *j = cJSON_CreateObject();
                cJSON_AddStringToObject(j, "out", out_path);
                cJSON_AddNumberToObject(j, "tokens", T);
                cJSON_AddNumberToObject(j, "n_vocab", V);
                status = cli_print_json(j);
            } else {
                printf("wrote %d x %d logits to %s\n", T, V, out_path);
                status = 0;
            }
        }
    }
    free(logits);
    collm_llm_context_free(ctx);
    collm_llm_model_free(model);
    collm_model_free(ckpt);
    collm_pool_free(pool);
    free(tokens);
    return status;
}
