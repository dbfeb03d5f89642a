// collm train: the two CoLLM training stages (method.md §6).
//   stage 1: text-only (tallrec) prompts, trains LoRA or, with --full, every
//            LLM weight;
//   stage 2: prompts with ID slots (collm), trains the FECE mapping with the
//            rest frozen (--train-llm also fine-tunes the LLM: a joint stage).
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "collm/collm.h"
#include "collm/dist.h"
#include "collm/error.h"
#include "collm/fileio.h"
#include "commands.h"

int cmd_train(int argc, char **argv) {
    cli_option opts[] = {
        {"--stage", "N", "1 (text only: LoRA or --full) or 2 (ID slots: FECE mapping)", NULL},
        {"--base", "FILE", "base LLM GGUF (Llama/Qwen2)", NULL},
        {"--cf", "FILE", "collaborative model GGUF from train-cf (stage 2)", NULL},
        {"--init-from", "FILE", "checkpoint of the previous stage", NULL},
        {"--data", "DIR", "dataset directory (train, valid_small, ...)", NULL},
        {"--out", "FILE", "best checkpoint (GGUF); training state goes to FILE.resume", NULL},
        {"--template", "NAME|FILE", "prompt template: a built-in name or a file (default: tallrec_* for stage 1, "
                                    "collm_* for stage 2, worded with the dataset's item noun); list: print the built-ins", NULL},
        {"--answer", "TEXT", "the answer whose logit is the score: a text the vocabulary holds as one token, "
                             "e.g. \" Yes\" (SPM: ▁Yes) or \"Yes\" (that token exactly) (default: ▁Yes, or a BPE "
                             "vocabulary's first token of Yes); stored in the checkpoint", NULL},
        {"--full", NULL, "stage 1: fine-tune every LLM weight instead of LoRA", NULL},
        {"--train-llm", NULL, "stage 2: also fine-tune every LLM weight (joint stage)", NULL},
        {"--lora-rank", "R", "LoRA rank (default 8; 0 = none)", NULL},
        {"--lora-alpha", "A", "LoRA alpha (default 16)", NULL},
        {"--lora-dropout", "P", "LoRA dropout (default 0.05)", NULL},
        {"--lora-targets", "LIST", "LoRA targets among q,k,v,o,gate,up,down (default q,v)", NULL},
        {"--fece-mid", "M", "FECE hidden size multiple (default 10)", NULL},
        {"--lr", "X", "peak learning rate (default 1e-3)", NULL},
        {"--min-lr", "X", "cosine floor, at most --lr (default 8e-5, or --lr when that is lower)", NULL},
        {"--warmup-lr", "X", "warmup start (default 1e-5)", NULL},
        {"--warmup-steps", "N", "linear warmup steps (default 200)", NULL},
        {"--restart-warmup", NULL, "reproduce the reference code's per-epoch warmup restart", NULL},
        {"--weight-decay", "X", "AdamW weight decay on >=2-D weights (default 1e-3)", NULL},
        {"--clip", "X", "gradient-norm clip (default 1.0; 0 = off)", NULL},
        {"--batch", "N", "prompts per step (default 16)", NULL},
        {"--batch-order", "shuffled|grouped", "shuffled: a plain shuffle (default); grouped: each shuffle brings one "
                                              "user's rows with one history together, so a batch runs their common "
                                              "prompt once (full fine-tuning or LoRA: up to 2x faster; the batches "
                                              "are less varied)", NULL},
        {"--steps-per-epoch", "N", "optimizer steps per epoch (default 50)", NULL},
        {"--max-epochs", "N", "epochs at most (default 200)", NULL},
        {"--patience", "N", "stop after more than N epochs without a better valid AUC (default 20)", NULL},
        {"--eval-split", "NAME|FILE", "model selection split (default valid_small)", NULL},
        {"--eval-rows", "N", "evaluate on the first N rows of that split only (default all)", NULL},
        {"--eval-batch", "N", "prompts per evaluation batch (default 32)", NULL},
        {"--catalogue-negatives", "R", "per positive train row, R label-0 rows of catalogue items the user did not rate "
                                       "(teaches which items a user picks, for top-K; default 0)", NULL},
        {"--negative-alpha", "A", "their draw weight (train rows of the item + 1)^A: 0 uniform, 1 popularity (default 0)", NULL},
        {"--residual", "W", "stage 2: train the LLM on the encoder's residual: the loss and the validation see "
                            "LLM logit + W x the collaborative score, and the checkpoint scores the same (its score "
                            "weight is W; fit-score may refit it) (default 0: off)", NULL},
        {"--residual-folds", "K", "the training rows' collaborative scores out of fold: K encoders of the --cf kind, "
                                  "each trained without one fold (0 or 1: in-sample scores, overconfident on train) "
                                  "(default 5)", NULL},
        CLI_SEED_OPTION,
        {"--resume", NULL, "continue from FILE.resume", NULL},
        {"--epochs-this-run", "N", "stop after N epochs in this invocation (resume later with --resume)", NULL},
        {"--log", "FILE", "per-epoch JSON lines (default FILE.log.jsonl)", NULL},
        {"--quiet", NULL, "no progress output", NULL},
        {"--json", NULL, "print the result as one JSON object (default: one line of text)", NULL},
        CLI_COMMON_OPTIONS,
        {NULL, NULL, NULL, NULL},
    };
    int p = cli_parse(argc, argv, opts,
                      "usage: collm train --stage 1|2 --base M.gguf [--cf mf.gguf] [--init-from S1.gguf] --data DIR "
                      "--out C.gguf [options]");
    if (p) return p > 0 ? 0 : 1;
    if (cli_get(opts, "--template") && strcmp(cli_get(opts, "--template"), "list") == 0)
        return cli_print_templates(cli_has(opts, "--json"));
    const char *data, *out;
    if (cli_require(opts, "--data", &data) || cli_require(opts, "--out", &out)) return 1;
    collm_build_options b;
    collm_build_options_default(&b);
    collm_train_options t;
    collm_train_options_default(&t);
    int64_t budget, stage, rank, mid, batch, steps, epochs, patience, warmup, eval_rows, eval_batch, seed, negatives, folds;
    double alpha, dropout, lr, min_lr, warmup_lr, wd, clip, neg_alpha, residual;
    // every value checked before any file is read
    const int64_t big = 1 << 30;
    if (cli_get_int_range(opts, "--stage", 1, 1, 2, &stage) ||
        cli_get_int_range(opts, "--lora-rank", b.lora_rank, 0, 4096, &rank) ||
        cli_get_int_range(opts, "--fece-mid", b.fece_mid_times, 1, 1024, &mid) ||
        cli_get_int_range(opts, "--batch", t.batch, 1, 1 << 16, &batch) ||
        cli_get_int_range(opts, "--steps-per-epoch", t.steps_per_epoch, 1, big, &steps) ||
        cli_get_int_range(opts, "--max-epochs", t.max_epochs, 1, 1 << 20, &epochs) ||
        cli_get_int_range(opts, "--patience", t.patience, 0, big, &patience) ||
        cli_get_int_range(opts, "--warmup-steps", t.warmup_steps, 0, big, &warmup) ||
        cli_get_int_range(opts, "--eval-rows", 0, 0, big, &eval_rows) ||
        cli_get_int_range(opts, "--eval-batch", t.eval_batch, 1, 1 << 16, &eval_batch) ||
        cli_get_int_range(opts, "--seed", CLI_DEFAULT_SEED, 0, INT64_MAX, &seed) ||
        cli_get_int_range(opts, "--epochs-this-run", 0, 0, big, &budget) ||
        cli_get_int_range(opts, "--catalogue-negatives", 0, 0, 100, &negatives) ||
        cli_get_float_range(opts, "--negative-alpha", 0.0, 0, 4, 0, &neg_alpha) ||
        cli_get_float_range(opts, "--residual", 0.0, 0, COLLM_SCORE_CF_WEIGHT_MAX, 0, &residual) ||
        cli_get_int_range(opts, "--residual-folds", t.residual_folds, 0, 100, &folds) ||
        cli_get_float_range(opts, "--lora-alpha", b.lora_alpha, 0, INFINITY, CLI_OPEN_LO, &alpha) ||
        cli_get_float_range(opts, "--lora-dropout", b.lora_dropout, 0, 1, CLI_OPEN_HI, &dropout) ||
        cli_get_float_range(opts, "--lr", t.lr, 0, INFINITY, CLI_OPEN_LO, &lr) ||
        cli_get_float_range(opts, "--min-lr", t.min_lr, 0, INFINITY, 0, &min_lr) ||
        cli_get_float_range(opts, "--warmup-lr", t.warmup_lr, 0, INFINITY, 0, &warmup_lr) ||
        cli_get_float_range(opts, "--weight-decay", t.weight_decay, 0, INFINITY, 0, &wd) ||
        cli_get_float_range(opts, "--clip", t.clip, 0, INFINITY, 0, &clip))
        return 1;
    // the output folders now, not after the data is encoded
    if (collm_check_output_path(out) || (cli_get(opts, "--log") && collm_check_output_path(cli_get(opts, "--log"))))
        return cli_fail("train");
    // and no output may be an input: --out over --base, or a --log (opened
    // for writing first) over the CF model or a split, lost what the run reads
    const cli_input inputs[] = {{"--base", cli_get(opts, "--base")}, {"--cf", cli_get(opts, "--cf")},
                                {"--init-from", cli_get(opts, "--init-from")}, {"--template", cli_get(opts, "--template")},
                                {"--out", out}};
    if (cli_check_not_input("--out", out, inputs, 4, cli_get(opts, "--data")) ||
        cli_check_not_input("--log", cli_get(opts, "--log"), inputs, 5, cli_get(opts, "--data")))
        return cli_fail("train");
    b.stage = (int)stage;
    b.base_path = cli_get(opts, "--base");
    b.cf_path = cli_get(opts, "--cf");
    b.init_from = cli_get(opts, "--init-from");
    b.template_path = cli_get(opts, "--template");
    b.answer = cli_get(opts, "--answer");
    b.full_finetune = cli_has(opts, "--full");
    b.lora_rank = (int)rank;
    b.lora_alpha = (float)alpha;
    b.lora_dropout = (float)dropout;
    b.fece_mid_times = (int)mid;
    b.seed = (uint64_t)seed;
    if (cli_get(opts, "--lora-targets") && collm_lora_parse_targets(cli_get(opts, "--lora-targets"), &b.lora_targets))
        return cli_fail("train");
    t.batch = (int)batch;
    t.steps_per_epoch = (int)steps;
    t.max_epochs = (int)epochs;
    t.patience = (int)patience;
    t.lr = lr;
    // the default floor follows a --lr set below it (a flat schedule at --lr);
    // a --min-lr given above --lr is the library's error (the rate would rise)
    t.min_lr = !cli_get(opts, "--min-lr") && min_lr > lr ? lr : min_lr;
    t.warmup_lr = warmup_lr;
    t.warmup_steps = (int)warmup;
    t.restart_warmup = cli_has(opts, "--restart-warmup");
    t.weight_decay = wd;
    t.clip = clip;
    t.train_llm = cli_has(opts, "--train-llm");
    if (cli_get(opts, "--eval-split")) t.eval_split = cli_get(opts, "--eval-split");
    t.max_eval_rows = (int)eval_rows;
    t.eval_batch = (int)eval_batch;
    t.out_path = out;
    t.log_path = cli_get(opts, "--log");
    t.resume = cli_has(opts, "--resume");
    t.epoch_budget = (int)budget;
    t.progress = !cli_has(opts, "--quiet");
    t.seed = (uint64_t)seed;
    t.catalogue_negatives = (int)negatives;
    t.negative_alpha = neg_alpha;
    t.residual_weight = residual;
    t.residual_folds = (int)folds;
    const char *order = cli_get(opts, "--batch-order");
    if (order && strcmp(order, "grouped") != 0 && strcmp(order, "shuffled") != 0) {
        fprintf(stderr, "collm train: --batch-order must be grouped or shuffled, not '%s'\n", order);
        return 1;
    }
    t.group_batches = order && strcmp(order, "grouped") == 0;
    if (t.residual_weight > 0 && stage != 2) {
        fprintf(stderr, "collm train: --residual needs --stage 2 (a collaborative model to add the score of)\n");
        return 1;
    }
    // options a run would take and then ignore: say so rather than train
    // something other than what was asked for
    static const char *const stage2_only[] = {"--cf", "--train-llm", "--fece-mid", "--residual-folds"};
    for (size_t i = 0; stage == 1 && i < sizeof stage2_only / sizeof stage2_only[0]; i++)
        if (cli_has(opts, stage2_only[i])) {
            fprintf(stderr, "collm train: %s applies to --stage 2 only (stage 1 trains on text, without ID slots)\n",
                    stage2_only[i]);
            return 1;
        }
    static const char *const lora_opts[] = {"--lora-rank", "--lora-alpha", "--lora-dropout", "--lora-targets"};
    for (size_t i = 0; b.full_finetune && i < sizeof lora_opts / sizeof lora_opts[0]; i++)
        if (cli_get(opts, lora_opts[i])) {
            fprintf(stderr, "collm train: %s with --full: full fine-tuning trains every weight, no LoRA adapter\n",
                    lora_opts[i]);
            return 1;
        }

    int threads = cli_threads(opts);
    // the pool runs the transformer's GEMMs, one slab of C per thread, each
    // through single-threaded BLAS (BLAS's own threads would spin between them)
    collm_blas_set_threads(1);
    collm_pool *pool = collm_pool_create(threads);
    collm_rec_dataset *ds = pool ? collm_rec_dataset_load(data) : NULL;
    collm_model *m = ds ? collm_model_build(&b, ds, pool) : NULL;
    collm_train_result res;
    int rc = m ? collm_train(m, ds, &t, &res) : COLLM_ERR;
    // under mpirun every rank trained; rank 0 reports
    int lead = collm_dist_rank() == 0;
    if (rc == COLLM_OK && !lead) {
    } else if (rc == COLLM_OK && cli_has(opts, "--json")) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddNumberToObject(j, "stage", b.stage);
        cJSON_AddNumberToObject(j, "epochs", res.epochs_run);
        cJSON_AddNumberToObject(j, "best_epoch", res.best_epoch);
        cJSON_AddStringToObject(j, "eval_split", t.eval_split);
        cli_json_number(j, "valid_auc", res.best_auc);
        cli_json_number(j, "valid_uauc", res.best_uauc);
        cJSON_AddNumberToObject(j, "samples_per_second", res.samples_per_second);
        cJSON_AddNumberToObject(j, "seconds", res.seconds);
        cJSON_AddStringToObject(j, "checkpoint", out);
        if (cli_print_json(j)) rc = COLLM_ERR;
    } else if (rc == COLLM_OK) {
        printf("train: stage %d, %d epochs (best %d): %s auc %.4f uauc %.4f; %.1f samples/s, %.1f s; wrote %s\n",
               b.stage, res.epochs_run, res.best_epoch, t.eval_split, res.best_auc, res.best_uauc,
               res.samples_per_second, res.seconds, out);
    } else {
        cli_fail("train");
    }
    collm_model_free(m);
    collm_rec_dataset_free(ds);
    collm_pool_free(pool);
    return rc == COLLM_OK ? 0 : 1;
}
