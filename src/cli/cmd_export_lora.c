// collm export-lora: writes a checkpoint's LoRA adapter as a GGUF that
// llama.cpp loads with --lora (general.type=adapter, adapter.type=lora,
// adapter.lora.alpha, blk.N.<proj>.weight.lora_a / lora_b).
#include <stdio.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "collm/collm.h"
#include "collm/error.h"
#include "collm/fileio.h"
#include "commands.h"

int cmd_export_lora(int argc, char **argv) {
    cli_option opts[] = {
        {"--ckpt", "FILE", "checkpoint from collm train (with LoRA)", NULL},
        {"--base", "FILE", "base model (default: the path stored in the checkpoint)", NULL},
        {"--out", "FILE", "adapter GGUF to write", NULL},
        {"--json", NULL, "print what was written as one JSON object", NULL},
        CLI_COMMON_OPTIONS,
        {NULL, NULL, NULL, NULL},
    };
    int p = cli_parse(argc, argv, opts, "usage: collm export-lora --ckpt C.gguf --out adapter.gguf");
    if (p) return p > 0 ? 0 : 1;
    const char *ckpt, *out;
    if (cli_require(opts, "--ckpt", &ckpt) || cli_require(opts, "--out", &out)) return 1;
    if (collm_check_output_path(out)) return cli_fail("export-lora");
    // the adapter replaced the checkpoint (or the base) it was read from
    const cli_input inputs[] = {{"--ckpt", ckpt}, {"--base", cli_get(opts, "--base")}};
    if (cli_check_not_input("--out", out, inputs, 2, NULL)) return cli_fail("export-lora");
    collm_model *m = collm_model_load(ckpt, cli_get(opts, "--base"), NULL);
    int rc = m ? collm_export_lora(m, out) : COLLM_ERR;
    collm_model_free(m);
    if (rc) return cli_fail("export-lora");
    if (cli_has(opts, "--json")) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "out", out);
        return cli_print_json(j);
    }
    printf("wrote %s\n", out);
    return 0;
}
