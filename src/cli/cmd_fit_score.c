// collm fit-score: fits the weights of the pointwise score
//   score = logit("Yes") + w · cf + Σ_k v_k · extra_k
// (cf: the checkpoint's own encoder; extra_k: further encoders given with
// --with, or those the checkpoint already holds) on a split (valid_small by
// default: never the test split) by AUC, prints the grid of w, and stores
// the weights (and the --with models, copied whole) in the checkpoint, so
// that eval and every other scorer use them without flags.
//
// --keep-weights stores the --with models in place of the checkpoint's own
// extras (the same kinds, in order) and keeps every weight: the encoders of
// a refit (collm train-cf --refit-from) take the place of those the weights
// were fitted with.
//
//   collm fit-score --ckpt C.gguf --data DIR [--with X.gguf[,Y.gguf]] [--split valid_small] [--keep-weights] [--dry-run] [--json]
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "collm/collm.h"
#include "collm/error.h"
#include "collm/metrics.h"
#include "commands.h"
#include "rec_setup.h"

int cmd_fit_score(int argc, char **argv) {
    cli_option opts[] = {
        {"--ckpt", "FILE", "CoLLM checkpoint with CF tables (stage 2); receives collm.score.cf_weight", NULL},
        {"--base", "FILE", "base model (default: the path stored in the checkpoint)", NULL},
        {"--data", "DIR", "dataset directory", NULL},
        {"--split", "NAME|FILE", "split to fit on (default valid_small)", NULL},
        {"--with", "FILE[,FILE]", "further encoders (train-cf models) to fuse; stored in the checkpoint", NULL},
        {"--batch", "N", "prompts per batch (default 32)", NULL},
        {"--keep-weights", NULL, "fit nothing: store the --with models in place of the checkpoint's extras (same kinds, same "
                                 "order; say refits on train and valid) with the weights it holds", NULL},
        {"--dry-run", NULL, "print the grid and the chosen weight, leave the checkpoint as it is", NULL},
        {"--json", NULL, "print one JSON object instead of a table", NULL},
        CLI_COMMON_OPTIONS,
        {NULL, NULL, NULL, NULL},
    };
    int p = cli_parse(argc, argv, opts,
                      "usage: collm fit-score --ckpt C.gguf --data DIR [--with X.gguf[,Y.gguf]] [--split valid_small] [--keep-weights] "
                      "[--dry-run] [--json]");
    if (p) return p > 0 ? 0 : 1;
    // 0 = the LLM alone; large w = the CF order (the LLM breaks its ties)
    static const float grid[] = {0,    0.05f, 0.1f, 0.2f, 0.3f, 0.5f, 0.7f, 1,  1.5f, 2,
                                 3,    4,     6,    8,    12,   16,   24,   32, 64,   COLLM_SCORE_CF_WEIGHT_MAX};
    enum { N_GRID = sizeof grid / sizeof grid[0] };
    const char *ckpt, *data, *split_name = cli_get(opts, "--split") ? cli_get(opts, "--split") : "valid_small";
    int64_t batch;
    if (cli_require(opts, "--ckpt", &ckpt) || cli_require(opts, "--data", &data) || cli_get_int(opts, "--batch", 32, &batch))
        return 1;
    if (batch < 1) {
        fprintf(stderr, "collm fit-score: --batch must be positive\n");
        return 1;
    }
    int threads = cli_threads(opts);
    collm_blas_set_threads(threads);
    cli_rec_setup setup;
    if (cli_rec_setup_load_split(&setup, "fit-score", ckpt, cli_get(opts, "--base"), data, split_name, threads)) return 1;
    collm_model *m = setup.model;
    const collm_rec_dataset *ds = setup.ds;
    const collm_rec_split *split = setup.split;
    collm_pool *pool = setup.pool;
    const size_t n = split->n > 0 ? (size_t)split->n : 1;
    // the further encoders: from --with (loaded here, stored below) or the checkpoint's own
    char *with = cli_get(opts, "--with") ? strdup(cli_get(opts, "--with")) : NULL;
    const char *with_path[COLLM_SCORE_EXTRA_MAX];
    collm_cf_model *with_model[COLLM_SCORE_EXTRA_MAX] = {0};
    float *llm = NULL, *cf = NULL, *s = NULL, *extra = NULL;
    float w = 0, weights[1 + COLLM_SCORE_EXTRA_MAX] = {0};
    const float *parts[1 + COLLM_SCORE_EXTRA_MAX];
    double best_auc = NAN, llm_auc = NAN, llm_uauc = NAN;
    int n_extra = 0, status = 1;
    if (cli_get(opts, "--with") && !with) collm_error(COLLM_ERR_NOMEM, "out of memory");
    for (char *tok = with ? strtok(with, ",") : NULL; tok; tok = strtok(NULL, ",")) {
        if (n_extra == COLLM_SCORE_EXTRA_MAX) {
            fprintf(stderr, "collm fit-score: --with takes at most %d encoders\n", COLLM_SCORE_EXTRA_MAX);
            goto done;
        }
        with_path[n_extra++] = tok;
    }
    if (cli_get(opts, "--with") && n_extra == 0) {
        fprintf(stderr, "collm fit-score: --with needs at least one file\n");
        goto done;
    }
    for (int k = 0; k < n_extra; k++)
        if (!(with_model[k] = collm_cf_model_load(with_path[k]))) {
            cli_fail("fit-score");
            goto done;
        }
    if (!with) n_extra = collm_score_extra_count(m);
    const int keep = cli_has(opts, "--keep-weights");
    if (keep && !with) {
        fprintf(stderr, "collm fit-score: --keep-weights replaces the checkpoint's extras by --with's models; give --with\n");
        goto done;
    }
    if (keep && n_extra != collm_score_extra_count(m)) {
        fprintf(stderr, "collm fit-score: --keep-weights: the checkpoint holds %d extra encoders, --with gives %d\n",
                collm_score_extra_count(m), n_extra);
        goto done;
    }
    for (int k = 0; keep && k < n_extra; k++) {
        if (strcmp(collm_cf_model_kind(with_model[k]), collm_score_extra_kind(m, k)) != 0) {
            fprintf(stderr, "collm fit-score: --keep-weights: --with's model %d (%s) is %s, the checkpoint's extra %d is %s\n",
                    k + 1, with_path[k], collm_cf_model_kind(with_model[k]), k + 1, collm_score_extra_kind(m, k));
            goto done;
        }
        // the weights were fitted for that extra: only a refit of it (same shape, tables and training options) takes its place
        const collm_cf_model *old = collm_score_extra_model(m, k);
        collm_cf_hparams h_new, h_old;
        collm_cf_train_options o_new, o_old;
        collm_cf_model_hparams(with_model[k], &h_new);
        collm_cf_model_hparams(old, &h_old);
        const int rec_new = collm_cf_model_train_record(with_model[k], &o_new, NULL);
        const int rec_old = collm_cf_model_train_record(old, &o_old, NULL);
        if (memcmp(&h_new, &h_old, sizeof h_new) != 0 || collm_cf_model_n_users(with_model[k]) != collm_cf_model_n_users(old) ||
            collm_cf_model_n_items(with_model[k]) != collm_cf_model_n_items(old) || rec_new != rec_old ||
            (rec_new && (o_new.seed != o_old.seed || o_new.lr != o_old.lr || o_new.weight_decay != o_old.weight_decay ||
                         o_new.batch != o_old.batch || (float)o_new.dropout != (float)o_old.dropout))) {
            fprintf(stderr, "collm fit-score: --keep-weights: --with's model %d (%s) is not a refit of the checkpoint's extra "
                            "%d (its shape, tables or training options differ: collm train-cf --refit-from makes one)\n",
                    k + 1, with_path[k], k + 1);
            goto done;
        }
    }
    llm = malloc(n * sizeof *llm), cf = malloc(n * sizeof *cf), s = malloc(n * sizeof *s);
    extra = malloc((size_t)(n_extra ? n_extra : 1) * n * sizeof *extra);
    if (!llm || !cf || !s || !extra) collm_error(COLLM_ERR_NOMEM, "out of memory");
    int ok = llm && cf && s && extra && collm_score_split_parts(m, ds, split, (int)batch, llm, cf, NULL) == COLLM_OK;
    if (ok && !with) ok = collm_score_split_extras(m, split, extra) == COLLM_OK;
    for (int k = 0; ok && with && k < n_extra; k++)
        ok = collm_cf_model_score_split_known(with_model[k], split, extra + (size_t)k * n, pool) == COLLM_OK;
    parts[0] = cf;
    for (int k = 0; k < n_extra; k++) parts[1 + k] = extra + (size_t)k * n;
    if (ok && keep) { // the stored weights, and the AUC they give on the split
        weights[0] = collm_score_cf_weight(m, NULL);
        for (int k = 0; k < n_extra; k++) weights[1 + k] = collm_score_extra_weight(m, k);
        for (int64_t r = 0; r < split->n; r++) {
            s[r] = llm[r];
            for (int k = 0; k < 1 + n_extra; k++) s[r] += weights[k] * parts[k][r];
        }
        best_auc = collm_metrics_auc(s, split->label, split->n);
    }
    if (!ok || (!keep && collm_fit_score_weights(llm, parts, 1 + n_extra, split, grid, N_GRID, weights, &best_auc) != COLLM_OK)) {
        cli_fail("fit-score");
        goto done;
    }
    w = weights[0];
    llm_auc = collm_metrics_auc(llm, split->label, split->n);
    llm_uauc = collm_metrics_uauc(split->user, llm, split->label, split->n, NULL);
    // the extras' weighted sum joins the LLM's score: the grid below varies w alone
    for (int64_t r = 0; r < split->n; r++)
        for (int k = 0; k < n_extra; k++) llm[r] += weights[1 + k] * parts[1 + k][r];
    // the grid, with UAUC beside AUC
    double auc[N_GRID], uauc[N_GRID];
    for (int g = 0; g < N_GRID; g++) {
        for (int64_t r = 0; r < split->n; r++) s[r] = llm[r] + grid[g] * cf[r];
        auc[g] = collm_metrics_auc(s, split->label, split->n);
        uauc[g] = collm_metrics_uauc(split->user, s, split->label, split->n, NULL);
    }
    double cf_auc = collm_metrics_auc(cf, split->label, split->n), cf_uauc = collm_metrics_uauc(split->user, cf, split->label, split->n, NULL);
    int dry = cli_has(opts, "--dry-run");
    if (!dry && collm_checkpoint_set_score_fusion(ckpt, w, n_extra, with ? with_path : NULL, weights + 1) != COLLM_OK) {
        cli_fail("fit-score");
        goto done;
    }
    if (cli_has(opts, "--json")) {
        cJSON *o = cJSON_CreateObject(), *rows = cJSON_CreateArray();
        cJSON_AddStringToObject(o, "checkpoint", ckpt);
        cJSON_AddStringToObject(o, "split", split->path ? split->path : split_name);
        cJSON_AddNumberToObject(o, "cf_weight", w);
        cJSON_AddNumberToObject(o, "auc", best_auc);
        cJSON_AddNumberToObject(o, "llm_auc", llm_auc);
        cJSON_AddNumberToObject(o, "llm_uauc", llm_uauc);
        cJSON *ex = cJSON_CreateArray();
        for (int k = 0; k < n_extra; k++) {
            cJSON *e = cJSON_CreateObject();
            cJSON_AddStringToObject(e, "kind", with ? collm_cf_model_kind(with_model[k]) : collm_score_extra_kind(m, k));
            cJSON_AddNumberToObject(e, "weight", weights[1 + k]);
            cJSON_AddNumberToObject(e, "auc", collm_metrics_auc(parts[1 + k], split->label, split->n));
            cJSON_AddItemToArray(ex, e);
        }
        cJSON_AddItemToObject(o, "extras", ex);
        cJSON_AddNumberToObject(o, "cf_auc", cf_auc);
        cJSON_AddNumberToObject(o, "cf_uauc", cf_uauc);
        cJSON_AddBoolToObject(o, "stored", !dry);
        cJSON_AddBoolToObject(o, "kept_weights", keep);
        for (int g = 0; g < N_GRID; g++) {
            cJSON *row = cJSON_CreateObject();
            cJSON_AddNumberToObject(row, "w", grid[g]);
            cJSON_AddNumberToObject(row, "auc", auc[g]);
            cJSON_AddNumberToObject(row, "uauc", uauc[g]);
            cJSON_AddItemToArray(rows, row);
        }
        cJSON_AddItemToObject(o, "grid", rows);
        char *text = cJSON_PrintUnformatted(o);
        if (text) printf("%s\n", text);
        free(text);
        cJSON_Delete(o);
    } else {
        printf("fit-score %s on %s (%lld rows): score = llm + w * cf, maximising AUC\n", ckpt,
               split->path ? split->path : split_name, (long long)split->n);
        printf("  %8s  %7s  %7s\n", "w", "AUC", "UAUC");
        for (int g = 0; g < N_GRID; g++)
            printf("  %8g  %.4f  %.4f%s\n", grid[g], auc[g], uauc[g], grid[g] == w ? "  *" : "");
        printf("  CF alone: AUC %.4f UAUC %.4f; LLM alone: AUC %.4f UAUC %.4f\n", cf_auc, cf_uauc, llm_auc, llm_uauc);
        for (int k = 0; k < n_extra; k++)
            printf("  + %g x %s (alone: AUC %.4f)\n", weights[1 + k],
                   with ? collm_cf_model_kind(with_model[k]) : collm_score_extra_kind(m, k),
                   collm_metrics_auc(parts[1 + k], split->label, split->n));
        printf("w = %g%s%s\n", w, keep ? " (kept: the checkpoint's weights, --with's models)" : "",
               dry ? " (dry run: checkpoint unchanged)" : ", stored in the checkpoint");
    }
    status = 0;
done:
    free(llm);
    free(cf);
    free(s);
    free(extra);
    free(with);
    for (int k = 0; k < COLLM_SCORE_EXTRA_MAX; k++) collm_cf_model_free(with_model[k]);
    cli_rec_setup_free(&setup);
    return status;
}
