// collm encode: the prompts of a dataset encoded by collm (token ids and
// slot rows, exactly what training and scoring consume), written as text for
// another implementation to run on the same tokens (bench/train_speed.sh
// feeds them to the PyTorch peer). Three files in --out:
//   s1_train.txt  training rows, stage-1 (text-only) template;
//   s2_train.txt  the same rows, stage-2 template with ID slots (needs --cf);
//   s1_vs.txt     the evaluation split (default valid_small), stage-1 template.
// One line per prompt: `label n_tokens slot_rows | id id ...`, slot_rows
// comma-separated (absent in stage 1).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "collm/collm.h"
#include "collm/error.h"
#include "collm/fileio.h"
#include "commands.h"

typedef struct {
    const collm_model *m;
    const collm_rec_dataset *ds;
    const collm_rec_split *split;
    int64_t n;        // rows written
    int64_t n_tokens; // their tokens, for the summary
} encode_job;

static int write_prompts(FILE *f, void *ctx) {
    encode_job *j = ctx;
    const collm_rec_split *s = j->split;
    for (int64_t r = 0; r < j->n; r++) {
        int64_t h0 = s->his_offset[r], h1 = s->his_offset[r + 1];
        collm_encoded e;
        int rc = collm_encode(j->m, j->ds->items, s->user[r], s->his + h0, h1 - h0, s->item[r], &e);
        if (rc != COLLM_OK) return collm_error_prefix(rc, "%s: row %lld", s->path ? s->path : "split", (long long)r + 1);
        int ok = fprintf(f, "%d %d ", (int)s->label[r], e.n_tokens) > 0;
        for (int i = 0; ok && i < e.n_slots; i++) ok = fprintf(f, i ? ",%d" : "%d", e.slot_row[i]) > 0;
        ok = ok && fputs(e.n_slots ? " |" : "|", f) >= 0;
        for (int t = 0; ok && t < e.n_tokens; t++) ok = fprintf(f, " %d", e.tokens[t]) > 0;
        ok = ok && fputc('\n', f) != EOF;
        j->n_tokens += e.n_tokens;
        collm_encoded_free(&e);
        if (!ok) return collm_error(COLLM_ERR_IO, "write failed");
    }
    return COLLM_OK;
}

// Encodes the first `rows` rows (all when <= 0) of split with model m into
// dir/name; adds a summary entry to json.
static int encode_file(const collm_model *m, const collm_rec_dataset *ds, const collm_rec_split *split, int64_t rows,
                       const char *dir, const char *name, cJSON *json) {
    char path[4096];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
        return collm_error(COLLM_ERR_ARG, "--out path too long");
    encode_job j = {m, ds, split, rows > 0 && rows < split->n ? rows : split->n, 0};
    int rc = collm_write_atomic(path, write_prompts, &j);
    if (rc != COLLM_OK) return rc;
    cJSON *o = cJSON_AddObjectToObject(json, name);
    if (o) {
        cJSON_AddNumberToObject(o, "prompts", (double)j.n);
        cli_json_number(o, "mean_tokens", j.n ? (double)j.n_tokens / (double)j.n : 0);
    }
    return COLLM_OK;
}

static collm_model *build(const char *base, const char *cf, int stage, const collm_rec_dataset *ds) {
    collm_build_options b;
    collm_build_options_default(&b);
    b.base_path = base;
    b.cf_path = cf;
    b.stage = stage;
    b.lora_rank = 0; // nothing trains: no adapter
    return collm_model_build(&b, ds, NULL);
}

int cmd_encode(int argc, char **argv) {
    cli_option opts[] = {
        {"--base", "FILE", "base LLM GGUF (its tokenizer encodes the prompts)", NULL},
        {"--data", "DIR", "dataset directory (train, valid_small, ...)", NULL},
        {"--out", "DIR", "folder for s1_train.txt, s2_train.txt, s1_vs.txt (created)", NULL},
        {"--cf", "FILE", "collaborative model GGUF: also write the stage-2 prompts s2_train.txt", NULL},
        {"--rows", "N", "only the first N training rows (default all)", NULL},
        {"--eval-split", "NAME|FILE", "split for s1_vs.txt (default valid_small)", NULL},
        {"--eval-rows", "N", "only its first N rows (default all)", NULL},
        {"--json", NULL, "print one JSON object (prompts and mean tokens per file)", NULL},
        CLI_COMMON_OPTIONS,
        {NULL, NULL, NULL, NULL},
    };
    int p = cli_parse(argc, argv, opts,
                      "usage: collm encode --base M.gguf --data DIR --out DIR [--cf mf.gguf] [--rows N] "
                      "[--eval-split NAME] [--eval-rows N]");
    if (p) return p > 0 ? 0 : 1;
    const char *base, *data, *out, *cf = cli_get(opts, "--cf");
    const char *eval_name = cli_get(opts, "--eval-split") ? cli_get(opts, "--eval-split") : "valid_small";
    int64_t rows, eval_rows;
    if (cli_require(opts, "--base", &base) || cli_require(opts, "--data", &data) || cli_require(opts, "--out", &out) ||
        cli_get_int_range(opts, "--rows", 0, 0, INT32_MAX, &rows) ||
        cli_get_int_range(opts, "--eval-rows", 0, 0, INT32_MAX, &eval_rows))
        return 1;
    if (rows < 0 || eval_rows < 0) {
        fprintf(stderr, "collm encode: --rows and --eval-rows must be >= 0\n");
        return 1;
    }
    if (collm_mkdir_p(out) != COLLM_OK) return cli_fail("encode");
    collm_rec_dataset *ds = collm_rec_dataset_load(data);
    if (!ds) return cli_fail("encode");
    int rc = COLLM_OK;
    collm_rec_split *eval = NULL;
    collm_model *m = NULL;
    cJSON *json = cJSON_CreateObject();
    if (!json) rc = collm_error(COLLM_ERR_NOMEM, "out of memory");
    if (!rc && !ds->train) rc = collm_error(COLLM_ERR_ARG, "%s has no train split", data);
    if (!rc && !(eval = collm_rec_dataset_load_split(ds, eval_name))) rc = COLLM_ERR;
    if (!rc && !(m = build(base, NULL, 1, ds))) rc = COLLM_ERR;
    if (!rc) rc = encode_file(m, ds, ds->train, rows, out, "s1_train.txt", json);
    if (!rc) rc = encode_file(m, ds, eval, eval_rows, out, "s1_vs.txt", json);
    collm_model_free(m);
    m = NULL;
    if (!rc && cf && !(m = build(base, cf, 2, ds))) rc = COLLM_ERR;
    if (!rc && cf) rc = encode_file(m, ds, ds->train, rows, out, "s2_train.txt", json);
    collm_model_free(m);
    collm_rec_split_free(eval);
    collm_rec_dataset_free(ds);
    if (rc) {
        cJSON_Delete(json);
        return cli_fail("encode");
    }
    if (cli_has(opts, "--json")) return cli_print_json(json);
    for (cJSON *o = json->child; o; o = o->next)
        printf("%s/%s: %.0f prompts, %.1f tokens on average\n", out, o->string,
               cJSON_GetNumberValue(cJSON_GetObjectItem(o, "prompts")),
               cJSON_GetNumberValue(cJSON_GetObjectItem(o, "mean_tokens")));
    cJSON_Delete(json);
    return 0;
}
