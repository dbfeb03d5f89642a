// Printing an evaluation report (collm_metrics_report) as a table or one JSON
// object: shared by eval-cf and eval so both speak the same keys.
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "collm/error.h"
#include "collm/fileio.h"
#include "collm/prepare.h"
#include "collm/prompt.h"

int cli_print_json(cJSON *o) {
    char *text = o ? cJSON_PrintUnformatted(o) : NULL;
    if (text) printf("%s\n", text);
    cJSON_free(text);
    cJSON_Delete(o);
    return text ? 0 : 1;
}

void cli_json_number(cJSON *o, const char *key, double v) {
    if (isnan(v) || isinf(v)) cJSON_AddNullToObject(o, key);
    else cJSON_AddNumberToObject(o, key, v);
}

int cli_print_report(const collm_metrics_report *r, const cli_report_info *info, int json) {
    if (json) {
        cJSON *o = cJSON_CreateObject();
        if (!o) return 1;
        cJSON_AddStringToObject(o, "model", info->model);
        cJSON_AddStringToObject(o, "kind", info->kind);
        cJSON_AddStringToObject(o, "split", info->split);
        cli_json_number(o, "auc", r->auc);
        cli_json_number(o, "uauc", r->uauc);
        cJSON_AddNumberToObject(o, "n", (double)r->n);
        cJSON_AddNumberToObject(o, "n_pos", (double)r->n_pos);
        cJSON_AddNumberToObject(o, "n_users", (double)r->n_users);
        cJSON_AddNumberToObject(o, "n_users_uauc", (double)r->n_users_uauc);
        cli_json_number(o, "auc_warm", r->auc_warm);
        cli_json_number(o, "auc_cold", r->auc_cold);
        cJSON_AddNumberToObject(o, "n_warm", (double)r->n_warm);
        cJSON_AddNumberToObject(o, "n_cold", (double)r->n_cold);
        if (!isnan(info->prompts_per_second)) cli_json_number(o, "prompts_per_second", info->prompts_per_second);
        char *s = cJSON_PrintUnformatted(o);
        int rc = s ? 0 : 1;
        if (s) printf("%s\n", s);
        cJSON_free(s);
        cJSON_Delete(o);
        return rc;
    }
    printf("model  %s (%s)\nsplit  %s\n", info->model, info->kind, info->split);
    printf("%-10s %10s %8s %8s\n", "subset", "rows", "auc", "uauc");
    printf("%-10s %10lld %8.4f %8.4f   (%lld of %lld users counted)\n", "all", (long long)r->n, r->auc, r->uauc,
           (long long)r->n_users_uauc, (long long)r->n_users);
    printf("%-10s %10lld %8.4f %8s\n", "warm", (long long)r->n_warm, r->auc_warm, "-");
    printf("%-10s %10lld %8.4f %8s\n", "cold", (long long)r->n_cold, r->auc_cold, "-");
    if (!isnan(info->prompts_per_second)) printf("speed  %.1f prompts/s\n", info->prompts_per_second);
    return 0;
}

// The built-in templates: name, what it is for, its placeholders, its text.
int cli_print_templates(int json) {
    static const char *const placeholders[] = {"<ItemTitleList>", "<ItemIDList>", "<UserID>", "<TargetItemTitle>",
                                               "<TargetItemID>"};
    cJSON *arr = json ? cJSON_CreateArray() : NULL;
    if (!json)
        printf("Built-in prompt templates (train --template NAME; a FILE's first line works the same way).\n"
               "Default: tallrec_<noun> in stage 1, collm_<noun> in stage 2; for a dataset whose item noun is not\n"
               "movie or book (DIR/item_noun.txt, prepare --item-noun) the movie template is reworded with it.\n"
               "Placeholders: <ItemTitleList> the last liked titles; <ItemIDList> one ID slot per history item;\n"
               "<UserID> the user's ID slot; <TargetItemTitle> (required) and <TargetItemID> the target's title and\n"
               "slot. The score is the logit of the answer token (--answer, default Yes) after the prompt.\n\n");
    for (int i = 0; collm_prompt_builtin_name(i); i++) {
        const char *name = collm_prompt_builtin_name(i), *line = collm_prompt_builtin_line(name);
        char used[128] = "";
        for (size_t k = 0; k < sizeof placeholders / sizeof placeholders[0]; k++)
            if (strstr(line, placeholders[k])) {
                size_t l = strlen(used);
                snprintf(used + l, sizeof used - l, "%s%s", l ? " " : "", placeholders[k]);
            }
        if (json) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "name", name);
            cJSON_AddStringToObject(o, "placeholders", used);
            cJSON_AddStringToObject(o, "text", line);
            cJSON_AddItemToArray(arr, o);
        } else {
            printf("%s  (%s)\n  %s\n\n", name, used, line);
        }
    }
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToObject(o, "templates", arr);
        return cli_print_json(o);
    }
    return 0;
}

typedef struct {
    const collm_rec_split *split;
    const float *scores;
} scores_file;

static int write_scores_fn(FILE *f, void *ctx) {
    const scores_file *w = ctx;
    // One row per split row, in the split's order: what an ensemble or an
    // external metric script reads back (uid, iid and label as in the split).
    fprintf(f, "uid\tiid\tlabel\tscore\n");
    for (int64_t r = 0; r < w->split->n; r++)
        fprintf(f, "%d\t%d\t%d\t%.9g\n", (int)w->split->user[r], (int)w->split->item[r], (int)w->split->label[r],
                (double)w->scores[r]);
    return COLLM_OK; // collm_write_atomic checks the stream
}

int cli_write_scores(const char *path, const collm_rec_split *split, const float *scores, const char *cmd) {
    // through a temp file: a failed write (a full disk) left a truncated
    // file in place of the one it replaced
    scores_file w = {split, scores};
    if (collm_write_atomic(path, write_scores_fn, &w) != COLLM_OK) {
        fprintf(stderr, "collm %s: cannot write --scores: %s\n", cmd, collm_last_error());
        return 1;
    }
    return 0;
}

// path resolved (symbolic links, "..", relative to the working folder) into
// out (PATH_MAX); as given when it does not resolve
static void resolved(const char *path, size_t len, char *out) {
    char given[PATH_MAX];
    snprintf(given, sizeof given, "%.*s", (int)len, path);
    if (!realpath(given, out)) snprintf(out, PATH_MAX, "%s", given);
}

int cli_rows_within(const char *train_split, const char *split_path) {
    if (!train_split || !*train_split || !split_path) return 0;
    char split[PATH_MAX], part[PATH_MAX];
    resolved(split_path, strlen(split_path), split);
    const char *split_base = strrchr(split, '/') ? strrchr(split, '/') + 1 : split;
    const size_t split_dir = (size_t)(split_base - split);
    for (const char *p = train_split; *p;) {
        const char *end = strstr(p, " + ");
        resolved(p, end ? (size_t)(end - p) : strlen(p), part);
        const char *part_base = strrchr(part, '/') ? strrchr(part, '/') + 1 : part;
        // valid_small.tsv holds rows of valid.tsv in the same folder
        if (strcmp(part, split) == 0 ||
            ((size_t)(part_base - part) == split_dir && memcmp(part, split, split_dir) == 0 &&
             strcmp(part_base, "valid.tsv") == 0 && strcmp(split_base, "valid_small.tsv") == 0))
            return 1;
        if (!end) break;
        p = end + 3;
    }
    return 0;
}

int cli_note_in_sample(const char *cmd, const char *what, const char *train_split, const char *split_path) {
    if (!cli_rows_within(train_split, split_path)) return 0;
    fprintf(stderr, "collm %s: note: %s trained on %s's rows: its figures there are in-sample\n", cmd, what, split_path);
    return 1;
}

// 1 when a and b name the same file: the same device and inode when both
// exist, else the same resolved folder and name.
static int same_file(const char *a, const char *b) {
    struct stat sa, sb;
    if (stat(a, &sa) == 0 && stat(b, &sb) == 0) return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
    char ra[PATH_MAX], rb[PATH_MAX];
    resolved(a, strlen(a), ra);
    resolved(b, strlen(b), rb);
    return strcmp(ra, rb) == 0;
}

int cli_check_not_input(const char *out_opt, const char *out, const cli_input *inputs, int n, const char *data_dir) {
    if (!out) return 0;
    for (int k = 0; k < n; k++)
        if (inputs[k].path && same_file(out, inputs[k].path)) {
            if (strcmp(inputs[k].opt, "--out") == 0)
                collm_error(COLLM_ERR_ARG, "%s %s is also the --out file: the two would overwrite each other (give "
                                           "another path)", out_opt, out);
            else
                collm_error(COLLM_ERR_ARG, "%s %s is the %s file: writing it would destroy what this run reads (give "
                                           "another path)", out_opt, out, inputs[k].opt);
            return 1;
        }
    for (const char *const *f = collm_rec_layout_files(); data_dir && *f; f++) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", data_dir, *f);
        if (same_file(out, path)) {
            collm_error(COLLM_ERR_ARG, "%s %s is the dataset's %s: writing it would destroy what this run reads (give "
                                       "another path)", out_opt, out, *f);
            return 1;
        }
    }
    return 0;
}

int cli_note_fit_rows(const char *cmd, const char *what, const char *fit_split, const char *split_path) {
    if (!fit_split || !*fit_split || !split_path) return 0;
    if (cli_rows_within(fit_split, split_path)) {
        fprintf(stderr, "collm %s: note: %s fitted its weights on %s's rows: its figures there are in-sample\n", cmd,
                what, split_path);
        return 1;
    }
    if (cli_rows_within(split_path, fit_split)) { // the fit rows are part of the split (valid_small in valid)
        fprintf(stderr,
                "collm %s: note: %s fitted its weights on %s, part of %s's rows: its figures there are partly "
                "in-sample\n",
                cmd, what, fit_split, split_path);
        return 1;
    }
    return 0;
}
