// collm train-cf: trains a collaborative model (MF, LightGCN, SASRec, DIN)
// on a dataset directory, keeps the best-validation weights, and writes
// them as GGUF. Defaults are per kind (collm_cf_train_options_kind,
// collm_cf_hparams_default); every flag overrides them. --train-split joins
// splits into the training rows; --refit-from M repeats M's training
// (options, shape, seed, its best epoch count, no evaluation) on them.
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "collm/cf.h"
#include "collm/dataset.h"
#include "collm/dist.h"
#include "collm/error.h"
#include "collm/fileio.h"
#include "commands.h"

// What the per-epoch callback reports to: stderr (unless --quiet) and the
// log (one JSON line per epoch, the keys of `collm train`'s log).
typedef struct {
    const char *split, *log_path;
    FILE *log;
    int quiet, max_epochs, failed;
    double seconds; // epochs so far
} train_cf_report;

static void train_cf_progress(void *ctx, const collm_cf_epoch_info *e) {
    train_cf_report *r = ctx;
    r->seconds += e->seconds;
    if (!r->quiet) {
        // the whole run at most: the mean epoch so far times the epochs left (early stopping may end it sooner)
        double eta = r->seconds / e->epoch * (r->max_epochs - e->epoch);
        fprintf(stderr, "epoch %4d/%d  loss %.5f  %s auc %.4f uauc %.4f  %.2fs  ETA <= %.0fs%s\n", e->epoch,
                r->max_epochs, e->loss, r->split, e->eval_auc, e->eval_uauc, e->seconds, eta,
                e->is_best ? "  *best" : "");
    }
    if (r->log && !r->failed) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "epoch", e->epoch);
        cli_json_number(o, "loss", e->loss);
        cli_json_number(o, "valid_auc", e->eval_auc);
        cli_json_number(o, "valid_uauc", e->eval_uauc);
        cJSON_AddBoolToObject(o, "best", e->is_best);
        cJSON_AddNumberToObject(o, "seconds", e->seconds);
        char *text = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        if (!text || fprintf(r->log, "%s\n", text) < 0 || fflush(r->log) != 0) r->failed = 1;
        cJSON_free(text);
    }
}

int cmd_train_cf(int argc, char **argv) {
    collm_cf_train_options opt;
    collm_cf_hparams hp;
    cli_option opts[] = {
        {"--model", "KIND", "collaborative model kind: mf | lightgcn | mfbias | sasrec | din | ctx (default mf; ctx: context features for fit-score --with, fitted on --eval-split)", NULL},
        {"--data", "DIR", "dataset directory (items.tsv, train.tsv, valid.tsv, ...)", NULL},
        {"--out", "FILE", "output model (.gguf)", NULL},
        {"--dim", "N", "vector dimension (mf 256, lightgcn 64, mfbias 66, sasrec 128, din 192 = 3 x 64, ctx 14 = its features; 12: the first 12, as before features 12-13)", NULL},
        {"--layers", "N", "lightgcn propagation layers / sasrec blocks (default 2)", NULL},
        {"--heads", "N", "sasrec attention heads (default 1)", NULL},
        {"--max-len", "N", "sasrec / din / ctx history window, the last N liked items (default 10 / 30 / 512)", NULL},
        {"--dropout", "X", "sasrec / din dropout rate in training (default 0.7 / 0)", NULL},
        {"--lr", "X", "Adam learning rate (mf 1e-2, lightgcn 3e-3, mfbias 1e-2, sasrec 1e-2, din 2e-3)", NULL},
        {"--weight-decay", "X", "coupled L2 weight decay (mf 1e-4, lightgcn 3e-5, mfbias 1e-4, sasrec 1e-4, din 0; ctx: the L2 of its summed loss, 1e-2)", NULL},
        {"--batch", "N", "batch size (mf 2048, lightgcn 1024, mfbias 1024, sasrec 1024, din 2048)", NULL},
        {"--max-epochs", "N", "epoch limit (mf 300, lightgcn 300, mfbias 100, sasrec 100, din 50; ctx: Newton steps, 50)", NULL},
        {"--patience", "N", "stop after N epochs without a better eval AUC; 0 = never (mf 20, lightgcn 40, mfbias 5, sasrec 8, "
                                "din 3)", NULL},
        CLI_SEED_OPTION,
        {"--eval-split", "NAME", "valid | valid_small | FILE | none (default valid; ctx valid_small, where it fits)", NULL},
        {"--train-split", "LIST", "the rows to train on: split names or files joined by ',' (default train; e.g. train,valid)", NULL},
        {"--refit-from", "FILE", "train M's kind, shape, options and seed for M's best epoch count, with no evaluation, on "
                                 "--train-split (ctx: M's fitted weights, statistics of --train-split); the other model "
                                 "options come from M", NULL},
        {"--log", "FILE", "per-epoch JSON lines: epoch, loss, valid_auc, valid_uauc (default FILE.log.jsonl of --out)", NULL},
        {"--quiet", NULL, "no progress output", NULL},
        {"--json", NULL, "print the result as one JSON object on stdout", NULL},
        CLI_COMMON_OPTIONS,
        {NULL, NULL, NULL, NULL},
    };
    int p = cli_parse(argc, argv, opts,
                      "usage: collm train-cf --model mf|lightgcn|mfbias|sasrec|din|ctx --data DIR --out FILE [--dim N --layers N "
                      "--heads N "
                      "--max-len N --dropout X --lr X --weight-decay X --batch N --max-epochs N --patience N "
                      "--seed 2023 --eval-split valid --train-split train]\n"
                      "       collm train-cf --refit-from M.gguf --data DIR --train-split train,valid --out FILE");
    if (p) return p > 0 ? 0 : 1;
    const char *data, *out;
    if (cli_require(opts, "--data", &data) || cli_require(opts, "--out", &out)) return 1;
    const char *refit_path = cli_get(opts, "--refit-from");
    if (refit_path) {
        static const char *const from_model[] = {"--model", "--dim", "--layers", "--heads", "--max-len", "--dropout", "--lr",
                                                 "--weight-decay", "--batch", "--max-epochs", "--patience", "--seed",
                                                 "--eval-split"};
        for (size_t k = 0; k < sizeof from_model / sizeof from_model[0]; k++)
            if (cli_get(opts, from_model[k])) {
                fprintf(stderr, "collm train-cf: --refit-from takes %s from the model it refits; drop it\n", from_model[k]);
                return 1;
            }
    }
    const char *kind = cli_get(opts, "--model") ? cli_get(opts, "--model") : "mf";
    if (collm_cf_train_options_kind(kind, &opt) || collm_cf_hparams_default(kind, &hp)) return cli_fail("train-cf");
    int64_t dim, layers, heads, max_len, batch, max_epochs, patience, seed;
    if (cli_get_int(opts, "--dim", hp.dim, &dim) || cli_get_int(opts, "--layers", hp.n_layers, &layers) ||
        cli_get_int(opts, "--heads", hp.n_heads, &heads) || cli_get_int(opts, "--max-len", hp.max_len, &max_len) ||
        cli_get_float(opts, "--dropout", opt.dropout, &opt.dropout) || cli_get_float(opts, "--lr", opt.lr, &opt.lr) ||
        cli_get_float(opts, "--weight-decay", opt.weight_decay, &opt.weight_decay) ||
        cli_get_int(opts, "--batch", opt.batch, &batch) || cli_get_int(opts, "--max-epochs", opt.max_epochs, &max_epochs) ||
        cli_get_int(opts, "--patience", opt.patience, &patience) || cli_get_int(opts, "--seed", CLI_DEFAULT_SEED, &seed))
        return 1;
    if (dim < 1 || dim > 65536 || batch < 1 || batch > (1 << 26) || max_epochs < 1 || max_epochs > 1000000 ||
        patience < 0 || patience > 1000000 || !(opt.lr > 0) || !(opt.weight_decay >= 0) || seed < 0 || layers < 0 ||
        layers > 64 || heads < 0 || heads > 4096 || max_len < 0 || max_len > 4096 ||
        !(opt.dropout >= 0 && opt.dropout < 1)) {
        fprintf(stderr, "collm train-cf: out-of-range option (need dim 1..65536, batch >= 1, max-epochs >= 1, "
                        "patience >= 0, lr > 0, weight-decay >= 0, seed >= 0, layers 0..64, heads 0..4096, "
                        "max-len 0..4096, dropout in [0, 1))\n");
        return 1;
    }
    hp.dim = (int)dim;
    hp.n_layers = (int)layers;
    hp.n_heads = (int)heads;
    hp.max_len = (int)max_len;
    opt.batch = (int)batch;
    opt.max_epochs = (int)max_epochs;
    opt.patience = (int)patience;
    opt.seed = (uint64_t)seed;
    const char *eval = cli_get(opts, "--eval-split");
    if (eval) opt.eval_split = strcmp(eval, "none") == 0 ? "" : eval;

    // the output folders before the data is read and the model trained
    char default_log[4096];
    snprintf(default_log, sizeof default_log, "%s.log.jsonl", out);
    const char *log_path = cli_get(opts, "--log") ? cli_get(opts, "--log") : default_log;
    if (collm_check_output_path(out) || collm_check_output_path(log_path)) return cli_fail("train-cf");
    // no output may be an input (the log is opened for writing before anything is read)
    const cli_input inputs[] = {{"--refit-from", refit_path}, {"--out", out}};
    if (cli_check_not_input("--out", out, inputs, 1, data) || cli_check_not_input("--log", log_path, inputs, 2, data))
        return cli_fail("train-cf");
    // under mpirun every rank trains (data parallel); rank 0 alone prints, logs and writes the model
    const int lead = collm_dist_rank() == 0;
    int quiet = cli_has(opts, "--quiet") || !lead;
    collm_rec_dataset *ds = collm_rec_dataset_load(data);
    if (!ds) return cli_fail("train-cf");
    collm_cf_model *from = NULL;
    if (refit_path) {
        collm_cf_train_options from_opt;
        collm_cf_train_result from_res;
        if (!(from = collm_cf_model_load(refit_path))) {
            collm_rec_dataset_free(ds);
            return cli_fail("train-cf");
        }
        kind = collm_cf_model_kind(from);
        collm_cf_model_hparams(from, &hp);
        dim = hp.dim;
        if (collm_cf_model_train_record(from, &from_opt, &from_res)) {
            opt = from_opt;
            opt.eval_split = "";
            opt.max_epochs = from_res.best_epoch;
        }
    }
    if (cli_get(opts, "--train-split") && collm_rec_dataset_set_train(ds, cli_get(opts, "--train-split"))) {
        collm_cf_model_free(from);
        collm_rec_dataset_free(ds);
        return cli_fail("train-cf");
    }
    // early stopping (ctx: its fit) on rows it trains on would select nothing
    if (!from && *opt.eval_split) {
        char eval_path[4096];
        const char *names[] = {"train", "valid", "valid_small", "test"};
        snprintf(eval_path, sizeof eval_path, "%s", opt.eval_split);
        for (size_t k = 0; k < sizeof names / sizeof names[0]; k++)
            if (strcmp(opt.eval_split, names[k]) == 0) snprintf(eval_path, sizeof eval_path, "%s/%s.tsv", ds->dir, names[k]);
        if (strcmp(opt.eval_split, "train") != 0 && cli_rows_within(ds->train->path, eval_path)) {
            fprintf(stderr, "collm train-cf: the evaluation split %s is part of the training rows (%s): give another "
                            "--eval-split, or none\n", opt.eval_split, ds->train->path);
            collm_rec_dataset_free(ds);
            return 1;
        }
    }
    train_cf_report report = {NULL, log_path, lead ? fopen(log_path, "w") : NULL, quiet, opt.max_epochs, 0, 0};
    if (lead && !report.log) {
        collm_error(COLLM_ERR_IO, "%s: cannot open the training log", log_path);
        collm_cf_model_free(from);
        collm_rec_dataset_free(ds);
        return cli_fail("train-cf");
    }
    collm_cf_model *m = from ? NULL : collm_cf_model_create_hp(kind, ds->n_users, ds->n_items, &hp, opt.seed);
    collm_pool *pool = m || from ? collm_pool_create(cli_threads(opts)) : NULL;
    collm_blas_set_threads(cli_threads(opts)); // the encoders' GEMMs
    int rc = 1;
    if ((m || from) && pool) {
        if (!quiet)
            fprintf(stderr, "train-cf: %s%s d=%d on %s: %lld train rows (%s), %d users, %d items; lr %g wd %g batch %d, %d threads\n",
                    from ? "refit of " : "", kind, (int)dim, data, (long long)ds->train->n,
                    ds->train->path ? ds->train->path : "train", (int)ds->n_users, (int)ds->n_items, opt.lr,
                    opt.weight_decay, opt.batch, collm_pool_size(pool));
        if (!quiet && from && strcmp(kind, "ctx") == 0)
            fprintf(stderr, "train-cf: %s's fitted weights, the statistics of the training rows\n", refit_path);
        else if (!quiet && from && opt.max_epochs > 0)
            fprintf(stderr, "train-cf: %s's %d epochs (its best on %s), no evaluation\n", refit_path, opt.max_epochs,
                    collm_cf_model_eval_split(from));
        if (!quiet && collm_dist_size() > 1)
            fprintf(stderr, "train-cf: data parallel over %d ranks (each takes a slice of every batch)\n", collm_dist_size());
        collm_cf_train_result res;
        const char *split_name = *opt.eval_split ? opt.eval_split : "-";
        report.split = split_name;
        int trained;
        if (from) trained = (m = collm_cf_model_refit(from, ds, pool, train_cf_progress, &report, &res)) != NULL;
        else trained = collm_cf_model_train(m, ds, &opt, pool, train_cf_progress, &report, &res) == COLLM_OK;
        if (trained && report.failed) {
            collm_error(COLLM_ERR_IO, "%s: cannot write the training log", log_path);
            trained = 0;
        }
        if (trained && (!lead || collm_cf_model_save(m, out) == COLLM_OK)) {
            if (!quiet)
                fprintf(stderr, "train-cf: %d epochs in %.1fs%s; best epoch %d: %s auc %.4f uauc %.4f; wrote %s\n",
                        res.epochs_run, res.seconds, res.early_stopped ? " (early stop)" : "", res.best_epoch,
                        split_name, res.best_eval_auc, res.best_eval_uauc, out);
            rc = 0;
            if (lead && cli_has(opts, "--json")) {
                cJSON *j = cJSON_CreateObject();
                cJSON_AddStringToObject(j, "model", kind);
                cJSON_AddNumberToObject(j, "epochs", res.epochs_run);
                cJSON_AddNumberToObject(j, "best_epoch", res.best_epoch);
                cJSON_AddStringToObject(j, "eval_split", split_name);
                cJSON_AddStringToObject(j, "train_split", ds->train->path ? ds->train->path : "train");
                if (from) cJSON_AddStringToObject(j, "refit_from", refit_path);
                cli_json_number(j, "eval_auc", res.best_eval_auc);
                cli_json_number(j, "eval_uauc", res.best_eval_uauc);
                cJSON_AddBoolToObject(j, "early_stopped", res.early_stopped);
                cJSON_AddNumberToObject(j, "seconds", res.seconds);
                cJSON_AddStringToObject(j, "out", out);
                rc = cli_print_json(j);
            }
        }
    }
    if (rc) cli_fail("train-cf");
    if (report.log) fclose(report.log);
    collm_pool_free(pool);
    collm_cf_model_free(m);
    collm_cf_model_free(from);
    collm_rec_dataset_free(ds);
    return rc;
}
