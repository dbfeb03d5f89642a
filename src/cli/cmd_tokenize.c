// `collm tokenize --model M.gguf --text "..." [--bos] [--special] [--legacy]`:
// prints the token ids of the text, space-separated, on one line.
// Default is llama.cpp's raw mode (no BOS, special-token text is plain
// text); --bos adds BOS when the vocab asks for one (add_bos_token / the
// llama default); --special parses special-token text such as "<s>";
// --legacy uses CoLLM's transformers-4.28 special-piece semantics.
#include <cjson/cJSON.h>

#include "cli.h"
#include "commands.h"

#include "collm/error.h"
#include "collm/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cmd_tokenize(int argc, char **argv) {
    cli_option opts[] = {
        {"--model", "FILE", "GGUF file with tokenizer.ggml.* metadata (a model or a vocab-only file)", NULL},
        {"--text", "TEXT", "text to tokenize (UTF-8)", NULL},
        {"--bos", NULL, "prepend BOS if the vocab asks for it (llama.cpp add_special)", NULL},
        {"--special", NULL, "parse special-token text such as <s> (llama.cpp parse_special)", NULL},
        {"--legacy", NULL, "CoLLM prompt mode: split at special texts, dummy prefix on every piece", NULL},
        {"--pieces", NULL, "print id:piece pairs (one per line) instead of the id line", NULL},
        {"--json", NULL, "print {\"ids\": [...], \"pieces\": [...]} instead", NULL},
        CLI_COMMON_OPTIONS,
        {NULL, NULL, NULL, NULL},
    };
    int rc = cli_parse(argc, argv, opts,
                       "usage: collm tokenize --model M.gguf --text TEXT [--bos] [--special] [--legacy] [--pieces]\n\n"
                       "Prints the token ids of TEXT, space-separated, on one line.");
    if (rc > 0) return 0;
    if (rc < 0) return 1;
    const char *model, *text;
    if (cli_require(opts, "--model", &model) || cli_require(opts, "--text", &text)) return 1;
    (void)cli_threads(opts); // tokenizing is single-threaded

    collm_tok_vocab *v = collm_tok_load_path(model);
    if (!v) return cli_fail("tokenize");
    int flags = (cli_has(opts, "--bos") ? COLLM_TOK_ADD_BOS : 0) | (cli_has(opts, "--special") ? COLLM_TOK_PARSE_SPECIAL : 0) |
                (cli_has(opts, "--legacy") ? COLLM_TOK_LEGACY_SPECIAL_PIECES : 0);
    size_t len = strlen(text);
    int cap = 256, n = 0;
    int32_t *ids = NULL;
    for (;;) { // collm_tok_encode returns the count it needs: grow and retry once if short
        int32_t *p = realloc(ids, (size_t)cap * sizeof *ids);
        if (!p) {
            n = collm_error(COLLM_ERR_NOMEM, "out of memory for %d ids", cap);
            break;
        }
        ids = p;
        n = collm_tok_encode(v, text, len, flags, ids, cap);
        if (n <= cap) break;
        cap = n;
    }
    if (n < 0) {
        free(ids);
        collm_tok_free(v);
        return cli_fail("tokenize");
    }
    if (cli_has(opts, "--json")) {
        cJSON *j = cJSON_CreateObject(), *a = cJSON_AddArrayToObject(j, "ids"), *b = cJSON_AddArrayToObject(j, "pieces");
        for (int i = 0; i < n && a && b; i++) {
            cJSON_AddItemToArray(a, cJSON_CreateNumber(ids[i]));
            cJSON_AddItemToArray(b, cJSON_CreateString(collm_tok_token_text(v, ids[i])));
        }
        rc = cli_print_json(j);
    } else if (cli_has(opts, "--pieces")) {
        for (int i = 0; i < n; i++) printf("%d:%s\n", ids[i], collm_tok_token_text(v, ids[i]));
    } else {
        for (int i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
        printf("\n");
    }
    free(ids);
    collm_tok_free(v);
    return rc;
}
