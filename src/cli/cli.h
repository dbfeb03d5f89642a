// The `collm` command: shared option parsing and the table of subcommands.
// Each subcommand lives in its own cmd_<name>.c and has the signature
// `int cmd_<name>(int argc, char **argv)` (argv[0] is the subcommand name);
// it returns 0 on success, 1 on error (after printing one line to stderr).
#ifndef COLLM_CLI_H
#define COLLM_CLI_H

#include <stdint.h>

#include "collm/metrics.h"

typedef struct {
    const char *name;  // "--model"
    const char *arg;   // value placeholder ("FILE"), or NULL for a flag without value
    const char *help;  // one line
    const char *value; // filled by cli_parse: the value, or "1" for a flag given; NULL if absent
} cli_option;

// Parses argv[1..] against opts (the array ends with an entry whose name is
// NULL). `--help`/-h prints usage to stdout and returns 1. An unknown option,
// a missing value or a stray argument prints one line to stderr and returns -1.
// `--threads N` is accepted by every command and checked here (1..1024; read
// it with cli_threads), so a bad value fails before any work.
// Grammar, the same in every command: `--name VALUE` or `--name=VALUE`; the
// short forms -m (--model, or --ckpt where there is no --model), -t
// (--threads), -o (--out), -h (--help); older spellings kept as aliases
// (--wd = --weight-decay). Lookups use the long name.
int cli_parse(int argc, char **argv, cli_option *opts, const char *usage);

// Value lookups. A missing required option prints an error and returns -1.
const char *cli_get(const cli_option *opts, const char *name);
int cli_require(const cli_option *opts, const char *name, const char **out);
// Parses an integer / float option; default used when absent. -1 on a bad value.
int cli_get_int(const cli_option *opts, const char *name, int64_t def, int64_t *out);
// cli_get_float refuses inf and nan.
int cli_get_float(const cli_option *opts, const char *name, double def, double *out);
// The same with a range: lo <= x <= hi (CLI_OPEN_LO: lo < x; CLI_OPEN_HI:
// x < hi; hi = INFINITY: no upper bound). Out of range prints one line naming
// the option and the range, and returns -1.
#define CLI_OPEN_LO 1
#define CLI_OPEN_HI 2
int cli_get_int_range(const cli_option *opts, const char *name, int64_t def, int64_t lo, int64_t hi, int64_t *out);
int cli_get_float_range(const cli_option *opts, const char *name, double def, double lo, double hi, int flags,
                        double *out);
int cli_has(const cli_option *opts, const char *name);
// Thread count: --threads N (checked by cli_parse), default the online CPUs.
int cli_threads(const cli_option *opts);

// Prints "collm <command>: <collm_last_error()>" to stderr; returns 1.
int cli_fail(const char *command);

// Prints a JSON object on one line to stdout and deletes it. Returns 0, or 1
// when it could not be printed (NULL: out of memory).
struct cJSON;
int cli_print_json(struct cJSON *o);
// Adds a number to a JSON object; NaN / inf (an undefined metric) becomes null.
void cli_json_number(struct cJSON *o, const char *key, double v);

// Evaluation output shared by eval-cf and eval: a table, or one JSON object
// with auc, uauc, n, n_pos, n_users, n_users_uauc, auc_warm, auc_cold,
// n_warm, n_cold (+ prompts_per_second when not NaN). Returns 0 / 1.
typedef struct {
    const char *model, *kind, *split;
    double prompts_per_second; // NaN: not reported
} cli_report_info;
int cli_print_report(const collm_metrics_report *r, const cli_report_info *info, int json);
// 1 when train_split (a split's path, or paths joined by " + " as
// collm_rec_split_concat names them) holds the rows of the split at
// split_path: one of the parts is that file (paths compared resolved), or is
// DIR/valid.tsv and the split DIR/valid_small.tsv (its subset).
int cli_rows_within(const char *train_split, const char *split_path);
// 1 when a model that trained on train_split (a split's path, or paths
// joined by " + " as collm_rec_split_concat names them) saw the rows of the
// split at split_path: one of the parts is that file, or is DIR/valid.tsv
// and the split is DIR/valid_small.tsv (its subset). Then prints to stderr
// "collm <cmd>: note: <what> trained on <split_path>'s rows: its figures
// there are in-sample". What eval and eval-cf say of a refit encoder.
int cli_note_in_sample(const char *cmd, const char *what, const char *train_split, const char *split_path);
// The same for the rows a model fitted its weights on beyond its training
// rows (collm_cf_model_fit_split: ctx's evaluation split): a note when the
// split at split_path lies within them (in-sample) or holds them (partly
// in-sample); 1 when it printed one.
int cli_note_fit_rows(const char *cmd, const char *what, const char *fit_split, const char *split_path);
// An output (out, given as option out_opt) must not be one of the run's
// inputs: (option, path) pairs, NULL paths skipped, compared as files (the
// same file by any path), nor a file of the dataset folder data_dir (may be
// NULL). 1 with the error set when it is (the caller fails before writing
// anything: an output opened for writing would truncate its input first).
typedef struct {
    const char *opt, *path;
} cli_input;
int cli_check_not_input(const char *out_opt, const char *out, const cli_input *inputs, int n, const char *data_dir);
// Writes "uid iid label score" TSV, one line per split row (eval --scores).
int cli_write_scores(const char *path, const collm_rec_split *split, const float *scores, const char *cmd);

// Prints the built-in prompt templates (name, placeholders, text) to stdout
// (`collm help templates`, `collm train --template list`). Returns 0 / 1.
int cli_print_templates(int json);

// Every --seed defaults to this (one default for data, models and training).
#define CLI_DEFAULT_SEED 2023
#define CLI_SEED_OPTION {"--seed", "N", "random seed (default 2023); same seed, same result", NULL}

// Standard entries every command table includes (--threads, --help).
#define CLI_COMMON_OPTIONS                                                        \
    {"--threads", "N", "worker threads (default: all CPUs)", NULL},               \
    {"--help", NULL, "show this help", NULL}

#endif
