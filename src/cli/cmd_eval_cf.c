// collm eval-cf: scores a split with a saved collaborative model and prints
// AUC, UAUC and the warm/cold AUCs (method.md §7), as a table or JSON.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "collm/cf.h"
#include "collm/dataset.h"
#include "collm/error.h"
#include "collm/fileio.h"
#include "collm/metrics.h"
#include "commands.h"

int cmd_eval_cf(int argc, char **argv) {
    cli_option opts[] = {
        {"--cf", "FILE", "collaborative model (.gguf from train-cf)", NULL},
        {"--data", "DIR", "dataset directory (split names are looked up there)", NULL},
        {"--split", "NAME|FILE", "train | valid | valid_small | test | a split file", NULL},
        {"--json", NULL, "print one JSON object instead of a table", NULL},
        {"--scores", "FILE", "also write every row's score as TSV (uid, iid, label, score)", NULL},
        CLI_COMMON_OPTIONS,
        {NULL, NULL, NULL, NULL},
    };
    int p = cli_parse(argc, argv, opts, "usage: collm eval-cf --cf FILE --data DIR --split NAME|FILE [--json]");
    if (p) return p > 0 ? 0 : 1;
    const char *cf_path, *data, *split_name;
    if (cli_require(opts, "--cf", &cf_path) || cli_require(opts, "--data", &data) ||
        cli_require(opts, "--split", &split_name))
        return 1;
    // --scores is written after the run: its folder is checked now
    const char *scores_path = cli_get(opts, "--scores");
    if (scores_path && collm_check_output_path(scores_path)) return cli_fail("eval-cf");

    collm_cf_model *m = collm_cf_model_load(cf_path);
    if (!m) return cli_fail("eval-cf");
    collm_rec_dataset *ds = collm_rec_dataset_load(data);
    if (ds && (collm_cf_model_n_items(m) > ds->n_items ||
               (!collm_cf_model_uses_history(m) && collm_cf_model_n_users(m) > ds->n_users))) {
        collm_error(COLLM_ERR_ARG,
                    "%s was trained with %d items and %d users, but the dataset %s has %d items and %d users: not the "
                    "dataset it was trained on (give the --data it was trained with)",
                    cf_path, collm_cf_model_n_items(m), collm_cf_model_n_users(m), data, ds->n_items, ds->n_users);
        collm_rec_dataset_free(ds);
        ds = NULL;
    }
    collm_rec_split *split = ds ? collm_rec_dataset_load_split(ds, split_name) : NULL;
    // and it must not be a file this run reads (it replaced the model or the split it scored)
    const cli_input inputs[] = {{"--cf", cf_path}, {"--split", split ? split->path : NULL}};
    if (split && cli_check_not_input("--scores", scores_path, inputs, 2, data)) {
        collm_rec_split_free(split);
        split = NULL;
    }
    collm_pool *pool = split ? collm_pool_create(cli_threads(opts)) : NULL;
    collm_blas_set_threads(cli_threads(opts));
    collm_metrics_report r;
    int rc = 1;
    float *scores = pool ? malloc((size_t)(split->n ? split->n : 1) * sizeof(float)) : NULL;
    if (scores && collm_cf_model_score_split(m, split, scores, pool) == COLLM_OK &&
        collm_metrics_evaluate(split, scores, &r) == COLLM_OK) {
        char kind[64];
        snprintf(kind, sizeof kind, "%s, d=%d", collm_cf_model_kind(m), collm_cf_model_dim(m));
        cli_report_info info = {cf_path, cli_has(opts, "--json") ? collm_cf_model_kind(m) : kind,
                                split->path ? split->path : split_name, NAN};
        if (!cli_note_in_sample("eval-cf", cf_path, collm_cf_model_train_split(m), split->path))
            cli_note_fit_rows("eval-cf", cf_path, collm_cf_model_fit_split(m), split->path);
        rc = cli_print_report(&r, &info, cli_has(opts, "--json"));
        if (!rc && scores_path) rc = cli_write_scores(scores_path, split, scores, "eval-cf");
        else if (rc) cli_fail("eval-cf");
    } else {
        cli_fail("eval-cf");
    }
    free(scores);
    collm_pool_free(pool);
    collm_rec_split_free(split);
    collm_rec_dataset_free(ds);
    collm_cf_model_free(m);
    return rc;
}
