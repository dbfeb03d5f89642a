// `collm info M.gguf`: prints a GGUF file's header, every metadata key
// (type and value; long arrays show their first elements), the
// hyper-parameters a collm checkpoint or CF model was trained with (its
// collm.train.*, collm.cf.train.*, collm.lora.* keys, again together), a
// tensor table and totals. A file that fails validation gives one error line and exit 1.
#include <cjson/cJSON.h>

#include "cli.h"
#include "commands.h"

#include "collm/error.h"
#include "collm/gguf.h"
#include "collm/model.h"
#include "collm/tokenizer.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define INFO_ARRAY_PREVIEW 8 // array elements shown per key

// What the file means as a collm base model: architecture, tensor types,
// vocabulary and answer token, and the memory it will take. Filled from the
// header alone (no weights are read).
typedef struct {
    char arch[32];
    int n_layer, n_embd, n_head, n_head_kv, n_ctx, n_vocab;
    uint64_t weight_bytes;  // tensor data as held in memory (every type stays as stored)
    uint64_t kv_per_1k;     // K and V cache bytes per 1024 positions (F32)
    int n_types;
    collm_ggml_type types[16];
    int type_count[16];
    int32_t answer;         // the "Yes" token, -1 if none
    char answer_text[64];
    char why_not[256];      // empty when the file can serve as a base
} base_info;

static int arch_int(const collm_gguf_file *f, const char *arch, const char *suffix, int def) {
    char key[128];
    int64_t v;
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    if (collm_gguf_find_key(f, key) < 0 || collm_gguf_get_i64(f, key, &v) != COLLM_OK || v < 0 || v > 1 << 30) return def;
    return (int)v;
}

static void describe_base(const collm_gguf_file *f, const char *path, base_info *b) {
    memset(b, 0, sizeof *b);
    b->answer = -1;
    const char *a;
    uint64_t len;
    if (collm_gguf_get_str(f, "general.architecture", &a, &len) == COLLM_OK)
        snprintf(b->arch, sizeof b->arch, "%.*s", (int)(len < 31 ? len : 31), a);
    collm_llm_arch arch;
    if (!b->arch[0]) snprintf(b->why_not, sizeof b->why_not, "no general.architecture");
    else if (collm_llm_arch_from_name(b->arch, &arch) != COLLM_OK)
        snprintf(b->why_not, sizeof b->why_not, "architecture '%s' is not supported (llama, qwen2)", b->arch);
    b->n_layer = arch_int(f, b->arch, "block_count", 0);
    b->n_embd = arch_int(f, b->arch, "embedding_length", 0);
    b->n_head = arch_int(f, b->arch, "attention.head_count", 0);
    b->n_head_kv = arch_int(f, b->arch, "attention.head_count_kv", b->n_head);
    b->n_ctx = arch_int(f, b->arch, "context_length", 0);
    int head_dim = arch_int(f, b->arch, "attention.key_length", b->n_head ? b->n_embd / b->n_head : 0);
    b->kv_per_1k = 2ull * 4 * 1024 * (uint64_t)b->n_layer * (uint64_t)b->n_head_kv * (uint64_t)head_dim;
    for (int64_t i = 0; i < collm_gguf_n_tensors(f); i++) {
        const collm_gguf_tensor_info *t = collm_gguf_tensor(f, i);
        b->weight_bytes += t->n_bytes;
        int k = 0;
        while (k < b->n_types && b->types[k] != t->type) k++;
        if (k == b->n_types && k < 16) b->types[b->n_types++] = t->type;
        if (k < 16) b->type_count[k]++;
        if (!b->why_not[0] && !collm_gguf_tensor_type_supported(t->type))
            snprintf(b->why_not, sizeof b->why_not, "tensor '%s' has type %s, which collm does not run", t->name,
                     collm_ggml_type_name(t->type));
    }
    char key[128];
    snprintf(key, sizeof key, "%s.rope.scaling.type", b->arch);
    const char *st;
    if (!b->why_not[0] && collm_gguf_get_str(f, key, &st, &len) == COLLM_OK && !(len == 4 && memcmp(st, "none", 4) == 0))
        snprintf(b->why_not, sizeof b->why_not, "RoPE scaling '%.*s' is not supported", (int)(len < 32 ? len : 32), st);
    // the loader's own checks (hyper-parameters against each other and the
    // tensor shapes): a file it refuses is no base, whatever its keys say
    if (!b->why_not[0] && collm_llm_check_file(f, path, NULL) != COLLM_OK)
        snprintf(b->why_not, sizeof b->why_not, "%s", collm_last_error());
    collm_tok_vocab *v = collm_tok_load(f);
    if (!v) {
        if (!b->why_not[0]) snprintf(b->why_not, sizeof b->why_not, "no usable tokenizer (%s)", collm_last_error());
        return;
    }
    b->n_vocab = collm_tok_n_vocab(v);
    // as the loader: every token id must have an embedding row
    const collm_gguf_tensor_info *embd = collm_gguf_find_tensor(f, "token_embd.weight");
    if (!b->why_not[0] && embd && embd->n_dims >= 2 && b->n_vocab > embd->ne[1])
        snprintf(b->why_not, sizeof b->why_not, "the tokenizer has %d tokens but token_embd.weight only %lld rows", b->n_vocab,
                 (long long)embd->ne[1]);
    // the answer token as the recommender picks it: SPM "▁Yes", else the first token of "Yes"
    b->answer = collm_tok_find(v, "\xe2\x96\x81Yes");
    if (b->answer < 0) {
        int32_t ids[8];
        if (collm_tok_encode(v, "Yes", 3, 0, ids, 8) >= 1) b->answer = ids[0];
    }
    if (b->answer >= 0) snprintf(b->answer_text, sizeof b->answer_text, "%s", collm_tok_token_text(v, b->answer));
    else if (!b->why_not[0]) snprintf(b->why_not, sizeof b->why_not, "the vocabulary has no token for \"Yes\"");
    collm_tok_free(v);
}

// The hyper-parameters a collm checkpoint or CF model was trained with: the
// keys of these prefixes, shown again together, without the prefix.
static const char *hparam_name(const char *key) {
    static const char *const prefixes[] = {"collm.train.", "collm.cf.train.", "collm.lora.", NULL};
    for (int i = 0; prefixes[i]; i++)
        if (strncmp(key, prefixes[i], strlen(prefixes[i])) == 0)
            return i == 2 ? key + strlen("collm.") : key + strlen(prefixes[i]); // lora.* keeps its prefix
    return NULL;
}

static int info_json(const collm_gguf_file *f, const char *path) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "file", path);
    cJSON_AddNumberToObject(j, "gguf_version", collm_gguf_version(f));
    cJSON_AddNumberToObject(j, "alignment", (double)collm_gguf_alignment(f));
    cJSON_AddNumberToObject(j, "size", (double)collm_gguf_file_size(f));
    cJSON *meta = cJSON_AddObjectToObject(j, "metadata"), *tensors = cJSON_AddArrayToObject(j, "tensors");
    char value[512];
    for (int64_t i = 0; meta && i < collm_gguf_n_kv(f); i++) {
        collm_gguf_format_array_preview(f, i, INFO_ARRAY_PREVIEW, value, sizeof value);
        cJSON *kv = cJSON_AddObjectToObject(meta, collm_gguf_key(f, i));
        cJSON_AddStringToObject(kv, "type", collm_gguf_type_name(collm_gguf_kv_type(f, i)));
        cJSON_AddStringToObject(kv, "value", value);
    }
    cJSON *hp = NULL;
    for (int64_t i = 0; i < collm_gguf_n_kv(f); i++) {
        const char *name = hparam_name(collm_gguf_key(f, i));
        if (!name) continue;
        if (!hp) hp = cJSON_AddObjectToObject(j, "hyperparameters");
        collm_gguf_format_array_preview(f, i, INFO_ARRAY_PREVIEW, value, sizeof value);
        cJSON_AddStringToObject(hp, name, value);
    }
    int64_t total_params = 0;
    for (int64_t i = 0; tensors && i < collm_gguf_n_tensors(f); i++) {
        const collm_gguf_tensor_info *t = collm_gguf_tensor(f, i);
        cJSON *o = cJSON_CreateObject(), *ne = cJSON_AddArrayToObject(o, "ne");
        cJSON_AddStringToObject(o, "name", t->name);
        cJSON_AddStringToObject(o, "type", collm_ggml_type_name(t->type));
        for (int d = 0; ne && d < t->n_dims; d++) cJSON_AddItemToArray(ne, cJSON_CreateNumber((double)t->ne[d]));
        cJSON_AddNumberToObject(o, "bytes", (double)t->n_bytes);
        cJSON_AddNumberToObject(o, "offset", (double)t->offset);
        cJSON_AddItemToArray(tensors, o);
        total_params += collm_gguf_tensor_n_elements(t);
    }
    cJSON_AddNumberToObject(j, "parameters", (double)total_params);
    base_info b;
    describe_base(f, path, &b);
    cJSON *bj = cJSON_AddObjectToObject(j, "base");
    cJSON_AddBoolToObject(bj, "usable", !b.why_not[0]);
    if (b.why_not[0]) cJSON_AddStringToObject(bj, "reason", b.why_not);
    cJSON_AddStringToObject(bj, "architecture", b.arch);
    cJSON_AddNumberToObject(bj, "n_vocab", b.n_vocab);
    cJSON_AddNumberToObject(bj, "answer_token", b.answer);
    cJSON_AddNumberToObject(bj, "weight_bytes", (double)b.weight_bytes);
    cJSON_AddNumberToObject(bj, "kv_bytes_per_1024_positions", (double)b.kv_per_1k);
    return cli_print_json(j);
}

int cmd_info(int argc, char **argv) {
    cli_option opts[] = {
        {"--model", "FILE", "GGUF file to describe (or give it as the first argument)", NULL},
        {"--json", NULL, "print one JSON object (metadata values as their printed previews)", NULL},
        CLI_COMMON_OPTIONS,
        {NULL, NULL, NULL, NULL},
    };
    // the file may come as a bare argument: take it out before option parsing
    const char *path = NULL;
    char *args[64];
    int n_args = 0;
    for (int i = 0; i < argc && n_args < 64; i++) {
        int is_value = i > 0 && (strcmp(argv[i - 1], "--model") == 0 || strcmp(argv[i - 1], "--threads") == 0 ||
                                 strcmp(argv[i - 1], "-m") == 0 || strcmp(argv[i - 1], "-t") == 0);
        if (i > 0 && !path && argv[i][0] != '-' && !is_value) path = argv[i];
        else args[n_args++] = argv[i];
    }
    int rc = cli_parse(n_args, args, opts,
                       "usage: collm info M.gguf [--json]\n\nPrints a GGUF file's metadata, the hyper-parameters a collm "
                       "checkpoint or CF model\nwas trained with (collm.train.*, collm.cf.train.*, collm.lora.*) and "
                       "its tensor table.");
    if (rc > 0) return 0;
    if (rc < 0) return 1;
    if (cli_get(opts, "--model")) path = cli_get(opts, "--model");
    if (!path) {
        fprintf(stderr, "collm info: no GGUF file given (see --help)\n");
        return 1;
    }
    (void)cli_threads(opts); // accepted for uniformity; info is single-threaded

    collm_gguf_file *f = collm_gguf_open(path);
    if (!f) return cli_fail("info");
    if (cli_has(opts, "--json")) {
        rc = info_json(f, path);
        collm_gguf_close(f);
        return rc;
    }

    printf("file: %s\n", path);
    printf("gguf version: %u\n", collm_gguf_version(f));
    printf("alignment: %zu\n", collm_gguf_alignment(f));
    printf("size: %zu bytes, data section at offset %zu\n", collm_gguf_file_size(f), collm_gguf_data_offset(f));
    printf("\nmetadata: %" PRId64 " keys\n", collm_gguf_n_kv(f));
    char value[512];
    for (int64_t i = 0; i < collm_gguf_n_kv(f); i++) {
        collm_gguf_format_array_preview(f, i, INFO_ARRAY_PREVIEW, value, sizeof value);
        printf("  %-44s %-4s %s\n", collm_gguf_key(f, i), collm_gguf_type_name(collm_gguf_kv_type(f, i)), value);
    }

    // the training settings together (also listed above), a few per line
    int col = 0;
    for (int64_t i = 0; i < collm_gguf_n_kv(f); i++) {
        const char *name = hparam_name(collm_gguf_key(f, i));
        if (!name) continue;
        if (!col) printf("\ntrained with:\n ");
        collm_gguf_format_array_preview(f, i, INFO_ARRAY_PREVIEW, value, sizeof value);
        int w = printf(" %s=%s", name, value);
        col += w;
        if (col > 90) {
            printf("\n ");
            col = 1;
        }
    }
    if (col) printf("\n");
    printf("\ntensors: %" PRId64 "\n", collm_gguf_n_tensors(f));
    printf("  %-40s %-5s %-28s %12s %12s\n", "name", "type", "ne", "bytes", "offset");
    int64_t total_params = 0;
    uint64_t total_bytes = 0;
    for (int64_t i = 0; i < collm_gguf_n_tensors(f); i++) {
        const collm_gguf_tensor_info *t = collm_gguf_tensor(f, i);
        char ne[128];
        size_t o = 0;
        for (int d = 0; d < t->n_dims; d++)
            o += (size_t)snprintf(ne + o, sizeof ne - o, "%s%" PRId64, d ? ", " : "[", t->ne[d]);
        snprintf(ne + o, sizeof ne - o, "]");
        printf("  %-40s %-5s %-28s %12zu %12" PRIu64 "\n", t->name, collm_ggml_type_name(t->type), ne, t->n_bytes, t->offset);
        total_params += collm_gguf_tensor_n_elements(t);
        total_bytes += t->n_bytes;
    }
    printf("\ntotal: %" PRId64 " parameters (%.3f M), %" PRIu64 " bytes of tensor data (%.2f MiB)\n", total_params,
           (double)total_params / 1e6, total_bytes, (double)total_bytes / (1024.0 * 1024.0));
    base_info b;
    describe_base(f, path, &b);
    printf("\ntensor types:");
    for (int k = 0; k < b.n_types; k++) printf(" %s x %d", collm_ggml_type_name(b.types[k]), b.type_count[k]);
    printf("\nresident size: %.2f MiB of weights, each tensor in its file type, "
           "+ %.2f MiB of K/V cache per 1024 positions\n",
           (double)b.weight_bytes / (1024.0 * 1024.0), (double)b.kv_per_1k / (1024.0 * 1024.0));
    if (b.why_not[0]) {
        printf("base model: no: %s\n", b.why_not);
    } else {
        int ctx = b.n_ctx > 0 && b.n_ctx < 4096 ? b.n_ctx : 4096;
        printf("base model: yes: %s, %d layers, n_embd %d, vocabulary %d tokens, answer token %d \"%s\"; about %.1f MiB "
               "with a %d-position context\n",
               b.arch, b.n_layer, b.n_embd, b.n_vocab, b.answer, b.answer_text,
               ((double)b.weight_bytes + (double)b.kv_per_1k * ctx / 1024.0) / (1024.0 * 1024.0), ctx);
    }
    collm_gguf_close(f);
    return 0;
}
