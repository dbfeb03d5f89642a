// `collm info M.gguf`: prints a GGUF file's header, every metadata key
// (type and value; long arrays show their first elements), a tensor table and
// totals. A file that fails validation gives one error line and exit 1.
#include <cjson/cJSON.h>

#include "cli.h"
#include "commands.h"

#include "collm/error.h"
#include "collm/gguf.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define INFO_ARRAY_PREVIEW 8 // array elements shown per key

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
    int rc = cli_parse(n_args, args, opts, "usage: collm info M.gguf [--threads N]\n\nPrints a GGUF file's metadata and tensor table.");
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
    collm_gguf_close(f);
    return 0;
}
