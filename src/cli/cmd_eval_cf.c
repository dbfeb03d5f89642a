// collm eval-cf: scores a split with a saved collaborative model and prints
// AUC, UAUC and the warm/cold AUCs (method.md §7), as a table or JSON.
#include <math.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "collm/cf.h"
#include "collm/dataset.h"
#include "collm/error.h"
#include "collm/metrics.h"
#include "commands.h"

// NaN (undefined metric) becomes JSON null.
static void eval_cf_add_number(cJSON *o, const char *key, double v) {
    if (isnan(v) || isinf(v)) cJSON_AddNullToObject(o, key);
    else cJSON_AddNumberToObject(o, key, v);
}

int cmd_eval_cf(int argc, char **argv) {
    cli_option opts[] = {
        {"--cf", "FILE", "collaborative model (.gguf from train-cf)", NULL},
        {"--data", "DIR", "dataset directory (split names are looked up there)", NULL},
        {"--split", "NAME|FILE", "train | valid | valid_small | test | a split file", NULL},
        {"--json", NULL, "print one JSON object instead of a table", NULL},
        CLI_COMMON_OPTIONS,
        {NULL, NULL, NULL, NULL},
    };
    int p = cli_parse(argc, argv, opts, "usage: collm eval-cf --cf FILE --data DIR --split NAME|FILE [--json]");
    if (p) return p > 0 ? 0 : 1;
    const char *cf_path, *data, *split_name;
    if (cli_require(opts, "--cf", &cf_path) || cli_require(opts, "--data", &data) ||
        cli_require(opts, "--split", &split_name))
        return 1;

    cf_model *m = cf_model_load(cf_path);
    if (!m) return cli_fail("eval-cf");
    rec_dataset *ds = rec_dataset_load(data);
    rec_split *split = ds ? rec_dataset_load_split(ds, split_name) : NULL;
    collm_pool *pool = split ? collm_pool_create(cli_threads(opts)) : NULL;
    metrics_report r;
    int rc = 1;
    if (pool && cf_model_evaluate(m, split, &r, pool) == COLLM_OK) {
        rc = 0;
        if (cli_has(opts, "--json")) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "model", cf_path);
            cJSON_AddStringToObject(o, "kind", cf_model_kind(m));
            cJSON_AddStringToObject(o, "split", split->path ? split->path : split_name);
            eval_cf_add_number(o, "auc", r.auc);
            eval_cf_add_number(o, "uauc", r.uauc);
            cJSON_AddNumberToObject(o, "n", (double)r.n);
            cJSON_AddNumberToObject(o, "n_pos", (double)r.n_pos);
            cJSON_AddNumberToObject(o, "n_users", (double)r.n_users);
            cJSON_AddNumberToObject(o, "n_users_uauc", (double)r.n_users_uauc);
            eval_cf_add_number(o, "auc_warm", r.auc_warm);
            eval_cf_add_number(o, "auc_cold", r.auc_cold);
            cJSON_AddNumberToObject(o, "n_warm", (double)r.n_warm);
            cJSON_AddNumberToObject(o, "n_cold", (double)r.n_cold);
            char *s = cJSON_PrintUnformatted(o);
            if (s) printf("%s\n", s);
            else rc = 1;
            cJSON_free(s);
            cJSON_Delete(o);
        } else {
            printf("model  %s (%s, d=%d)\nsplit  %s\n", cf_path, cf_model_kind(m), cf_model_dim(m),
                   split->path ? split->path : split_name);
            printf("%-10s %10s %8s %8s\n", "subset", "rows", "auc", "uauc");
            printf("%-10s %10lld %8.4f %8.4f   (%lld of %lld users counted)\n", "all", (long long)r.n, r.auc, r.uauc,
                   (long long)r.n_users_uauc, (long long)r.n_users);
            printf("%-10s %10lld %8.4f %8s\n", "warm", (long long)r.n_warm, r.auc_warm, "-");
            printf("%-10s %10lld %8.4f %8s\n", "cold", (long long)r.n_cold, r.auc_cold, "-");
        }
    }
    if (rc) cli_fail("eval-cf");
    collm_pool_free(pool);
    rec_split_free(split);
    rec_dataset_free(ds);
    cf_model_free(m);
    return rc;
}
