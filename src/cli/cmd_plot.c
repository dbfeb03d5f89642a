// collm plot: PNG figures from what collm writes, drawn by gnuplot (Debian
// gnuplot-nox; the data go to it inline as datablocks, no temp files).
//   train  training logs (collm train / train-cf --log: JSON lines with
//          epoch, loss, valid_auc, valid_uauc): loss and valid AUC / UAUC
//          against the epoch, one line per file
//   sweep  bench/sweep.sh's sweep.jsonl (param, value, auc, uauc): AUC and
//          UAUC against the swept value (log x when the values are positive
//          and span >= 10x; one category per run when they are not numbers,
//          or when a 0 sits beside values spanning >= 10x)
//   topk   collm eval-topk --json: one group of bars per metric, one bar per
//          method, with the bootstrap 95 % interval as error bars
// The kind is read from the first file unless --kind says it.
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "collm/error.h"
#include "collm/fileio.h"
#include "commands.h"

#define PLOT_MAX_FILES 16

// A string for a gnuplot single-quoted literal ('' is a quote).
static void gp_quoted(FILE *gp, const char *s) {
    fputc('\'', gp);
    for (; *s; s++) {
        if (*s == '\'') fputc('\'', gp);
        if (*s != '\n' && *s != '\r') fputc(*s, gp);
    }
    fputc('\'', gp);
}

// The file's JSON lines (a JSON object per non-blank line) as a cJSON array;
// NULL + error naming file and line.
static cJSON *read_json_lines(const char *path) {
    char *text;
    size_t size;
    if (collm_read_file(path, &text, &size) != COLLM_OK) return NULL;
    cJSON *arr = cJSON_CreateArray();
    char *p = text;
    int line = 0;
    while (arr && p < text + size) {
        char *nl = memchr(p, '\n', (size_t)(text + size - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(text + size - p);
        line++;
        size_t k = 0;
        while (k < n && (p[k] == ' ' || p[k] == '\t' || p[k] == '\r')) k++;
        if (k < n) {
            cJSON *o = cJSON_ParseWithLength(p, n);
            if (!o || !cJSON_IsObject(o)) {
                cJSON_Delete(o);
                cJSON_Delete(arr);
                arr = NULL;
                collm_error(COLLM_ERR_FORMAT, "%s: line %d: not a JSON object", path, line);
                break;
            }
            cJSON_AddItemToArray(arr, o);
        }
        p += n + 1;
    }
    free(text);
    return arr;
}

static double num(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

// The kind of a file: "topk" (one JSON object of objects with metrics),
// "sweep" (lines with "param" and "value"), "train" (lines with "epoch").
static const char *detect_kind(const char *path) {
    char *text;
    size_t size;
    if (collm_read_file(path, &text, &size) != COLLM_OK) return NULL;
    const char *kind = NULL;
    cJSON *whole = cJSON_ParseWithLength(text, size);
    if (whole && cJSON_IsObject(whole) && cJSON_GetObjectItemCaseSensitive(whole, "fused") &&
        cJSON_GetObjectItemCaseSensitive(whole, "retrieval"))
        kind = "topk";
    cJSON_Delete(whole);
    if (!kind) {
        char *nl = memchr(text, '\n', size);
        cJSON *first = cJSON_ParseWithLength(text, nl ? (size_t)(nl - text) : size);
        if (first && cJSON_GetObjectItemCaseSensitive(first, "param") && cJSON_GetObjectItemCaseSensitive(first, "value"))
            kind = "sweep";
        else if (first && cJSON_GetObjectItemCaseSensitive(first, "epoch"))
            kind = "train";
        cJSON_Delete(first);
    }
    free(text);
    if (!kind)
        collm_error(COLLM_ERR_FORMAT,
                    "%s: not a training log (JSON lines with \"epoch\"), a sweep (lines with \"param\" and \"value\") "
                    "or eval-topk --json output; give --kind",
                    path);
    return kind;
}

// The file name for a legend, without the folder and a ".log.jsonl" / ".jsonl" ending.
static const char *base_name(const char *path) {
    static char buf[PLOT_MAX_FILES][256];
    static int next;
    const char *s = strrchr(path, '/');
    char *b = buf[next++ % PLOT_MAX_FILES];
    snprintf(b, sizeof buf[0], "%s", s ? s + 1 : path);
    size_t n = strlen(b);
    if (n > 10 && strcmp(b + n - 10, ".log.jsonl") == 0) b[n - 10] = '\0';
    else if (n > 6 && strcmp(b + n - 6, ".jsonl") == 0) b[n - 6] = '\0';
    return b;
}

static void gp_header(FILE *gp, const char *out, int w, int h) {
    fprintf(gp, "set terminal pngcairo size %d,%d noenhanced font ',10'\nset output ", w, h);
    gp_quoted(gp, out);
    fprintf(gp, "\nset grid\nset datafile missing 'NaN'\n");
}

// Training logs: two panels, loss and valid AUC/UAUC against the epoch.
static int plot_train(FILE *gp, char **files, int n, const char *out, const char *title) {
    cJSON *logs[PLOT_MAX_FILES] = {0};
    int rc = COLLM_OK;
    for (int f = 0; f < n && rc == COLLM_OK; f++) {
        if (!(logs[f] = read_json_lines(files[f]))) rc = COLLM_ERR;
        else if (cJSON_GetArraySize(logs[f]) == 0) rc = collm_error(COLLM_ERR_FORMAT, "%s: no epochs", files[f]);
    }
    double max_epoch = 0;
    if (rc == COLLM_OK) {
        // $dF: epoch loss auc uauc
        for (int f = 0; f < n; f++) {
            fprintf(gp, "$d%d << EOD\n", f);
            const cJSON *o;
            cJSON_ArrayForEach(o, logs[f]) {
                double e = num(o, "epoch");
                if (isnan(e)) continue;
                if (e > max_epoch) max_epoch = e;
                fprintf(gp, "%g %.9g %.9g %.9g\n", e, num(o, "loss"), num(o, "valid_auc"), num(o, "valid_uauc"));
            }
            fprintf(gp, "EOD\n");
        }
        gp_header(gp, out, 900, 700);
        if (max_epoch <= 20) fprintf(gp, "set xtics 1\n"); // whole epochs
        fprintf(gp, "set multiplot layout 2,1 title ");
        gp_quoted(gp, title ? title : "collm training");
        fprintf(gp, "\nset key top right\nset ylabel 'training loss'\nset xlabel 'epoch'\nplot ");
        for (int f = 0; f < n; f++) {
            fprintf(gp, "%s$d%d using 1:2 with linespoints pt 7 ps 0.6 lw 2 title ", f ? ", " : "", f);
            gp_quoted(gp, base_name(files[f]));
        }
        fprintf(gp, "\nset key below\nset ylabel 'valid AUC / UAUC'\nplot ");
        for (int f = 0; f < n; f++) {
            char t[600];
            fprintf(gp, "%s$d%d using 1:3 with linespoints pt 7 ps 0.6 lw 2 lc %d title ", f ? ", " : "", f, f + 1);
            snprintf(t, sizeof t, "%s AUC", base_name(files[f]));
            gp_quoted(gp, t);
            fprintf(gp, ", $d%d using 1:4 with linespoints pt 5 ps 0.6 lw 1 dt 2 lc %d title ", f, f + 1);
            snprintf(t, sizeof t, "%s UAUC", base_name(files[f]));
            gp_quoted(gp, t);
        }
        fprintf(gp, "\nunset multiplot\n");
    }
    for (int f = 0; f < n; f++) cJSON_Delete(logs[f]);
    return rc;
}

// A sweep: AUC and UAUC against the swept value.
static int plot_sweep(FILE *gp, const char *file, const char *out, const char *title) {
    cJSON *lines = read_json_lines(file);
    if (!lines) return COLLM_ERR;
    int n = cJSON_GetArraySize(lines);
    if (n == 0) {
        cJSON_Delete(lines);
        return collm_error(COLLM_ERR_FORMAT, "%s: no runs", file);
    }
    // numeric x (log when positive and spanning >= 10x), else categories
    int numeric = 1, nonpos = 0, pos = 0;
    double lo = INFINITY, hi = -INFINITY;
    const char *param = "value";
    const cJSON *o;
    cJSON_ArrayForEach(o, lines) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "value"), *p = cJSON_GetObjectItemCaseSensitive(o, "param");
        if (cJSON_IsString(p)) param = p->valuestring;
        char *end = NULL;
        double x = cJSON_IsString(v) ? strtod(v->valuestring, &end) : cJSON_IsNumber(v) ? v->valuedouble : NAN;
        if (cJSON_IsString(v) && (end == v->valuestring || *end)) x = NAN;
        if (!isfinite(x)) numeric = 0;
        else if (x <= 0) nonpos = 1;
        else pos++, lo = x < lo ? x : lo, hi = x > hi ? x : hi;
    }
    int logx = numeric && !nonpos && hi >= 10 * lo;
    if (numeric && nonpos && pos > 1 && hi >= 10 * lo) numeric = 0; // a 0 beside a wide span: categories
    // $d: index value auc uauc
    fprintf(gp, "$d << EOD\n");
    int i = 0;
    cJSON_ArrayForEach(o, lines) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "value");
        char label[64];
        if (cJSON_IsString(v)) snprintf(label, sizeof label, "%s", v->valuestring);
        else snprintf(label, sizeof label, "%g", cJSON_IsNumber(v) ? v->valuedouble : (double)i);
        for (char *c = label; *c; c++)
            if (*c == ' ' || *c == '"' || *c == '\'') *c = '_';
        fprintf(gp, "%d %s %.9g %.9g\n", i++, label, num(o, "auc"), num(o, "uauc"));
    }
    fprintf(gp, "EOD\n");
    gp_header(gp, out, 800, 500);
    char t[512];
    snprintf(t, sizeof t, "AUC / UAUC against %s", param);
    fprintf(gp, "set title ");
    gp_quoted(gp, title ? title : t);
    fprintf(gp, "\nset xlabel ");
    gp_quoted(gp, param);
    fprintf(gp, "\nset ylabel 'AUC'\nset key bottom right\n%s", logx ? "set logscale x\n" : "");
    if (numeric)
        fprintf(gp, "plot $d using 2:3 with linespoints lw 2 pt 7 title 'AUC', $d using 2:4 with linespoints lw 2 pt 5 "
                    "title 'UAUC'\n");
    else
        fprintf(gp, "set xrange [-0.5:%d]\nplot $d using 1:3:xtic(2) with linespoints lw 2 pt 7 title 'AUC', $d using "
                    "1:4 with linespoints lw 2 pt 5 title 'UAUC'\n",
                n);
    cJSON_Delete(lines);
    return COLLM_OK;
}

// eval-topk --json: bars per metric and method, 95 % intervals as error bars.
static int plot_topk(FILE *gp, const char *file, const char *out, const char *title, const char *metrics) {
    char *text;
    size_t size;
    if (collm_read_file(file, &text, &size) != COLLM_OK) return COLLM_ERR;
    cJSON *root = cJSON_ParseWithLength(text, size);
    free(text);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return collm_error(COLLM_ERR_FORMAT, "%s: not one JSON object (collm eval-topk --json)", file);
    }
    // the metrics: --metrics, else every numeric member of the first method but "users" etc.
    char list[32][32];
    int n_metrics = 0;
    const cJSON *first = root->child;
    if (metrics) {
        const char *p = metrics;
        while (*p && n_metrics < 32) {
            const char *c = strchr(p, ',');
            size_t n = c ? (size_t)(c - p) : strlen(p);
            snprintf(list[n_metrics++], sizeof list[0], "%.*s", (int)(n < 31 ? n : 31), p);
            p += n + (c ? 1 : 0);
        }
    } else if (first && cJSON_IsObject(first)) {
        const cJSON *m;
        cJSON_ArrayForEach(m, first) if (cJSON_IsNumber(m) && strcmp(m->string, "users") != 0 &&
                                         strcmp(m->string, "candidates") != 0 && strcmp(m->string, "lambda") != 0 &&
                                         strcmp(m->string, "popularity") != 0 && n_metrics < 32)
            snprintf(list[n_metrics++], sizeof list[0], "%s", m->string);
    }
    int n_methods = 0, rc = COLLM_OK;
    const cJSON *meth;
    cJSON_ArrayForEach(meth, root) if (cJSON_IsObject(meth)) n_methods++;
    if (!n_methods || !n_metrics) rc = collm_error(COLLM_ERR_FORMAT, "%s: no methods or metrics to plot", file);
    for (int k = 0; rc == COLLM_OK && k < n_metrics; k++)
        if (isnan(num(first, list[k])))
            rc = collm_error(COLLM_ERR_ARG, "--metrics: %s is not a metric of %s", list[k], file);
    if (rc == COLLM_OK) {
        // $d: metric, then mean lo hi per method
        fprintf(gp, "$d << EOD\n");
        for (int k = 0; k < n_metrics; k++) {
            fprintf(gp, "%s", list[k]);
            cJSON_ArrayForEach(meth, root) {
                if (!cJSON_IsObject(meth)) continue;
                double mean = num(meth, list[k]), a = mean, b = mean;
                const cJSON *ci = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(meth, "ci95"), list[k]);
                if (cJSON_GetArraySize(ci) == 2) a = cJSON_GetArrayItem(ci, 0)->valuedouble, b = cJSON_GetArrayItem(ci, 1)->valuedouble;
                fprintf(gp, " %.9g %.9g %.9g", mean, a, b);
            }
            fprintf(gp, "\n");
        }
        fprintf(gp, "EOD\n");
        gp_header(gp, out, 900, 500);
        fprintf(gp, "set title ");
        gp_quoted(gp, title ? title : "top-K quality by method (95 % bootstrap intervals)");
        fprintf(gp, "\nset style data histogram\nset style histogram errorbars gap 2 lw 1\nset style fill solid 0.7 "
                    "border -1\nset boxwidth 0.9\nset yrange [0:*]\nset key top left\nset ylabel 'value'\nplot ");
        int m = 0;
        cJSON_ArrayForEach(meth, root) {
            if (!cJSON_IsObject(meth)) continue;
            fprintf(gp, "%s$d using %d:%d:%d%s title ", m ? ", " : "", 2 + 3 * m, 3 + 3 * m, 4 + 3 * m,
                    m ? "" : ":xtic(1)");
            gp_quoted(gp, meth->string);
            m++;
        }
        fprintf(gp, "\n");
    }
    cJSON_Delete(root);
    return rc;
}

int cmd_plot(int argc, char **argv) {
    cli_option opts[] = {
        {"--out", "PNG", "image to write", NULL},
        {"--kind", "K", "train | sweep | topk (default: read from the first file)", NULL},
        {"--title", "TEXT", "title (default per kind)", NULL},
        {"--metrics", "LIST", "topk: metrics to show, e.g. ndcg@10,recall@20 (default all)", NULL},
        {"--json", NULL, "print what was written as one JSON object", NULL},
        CLI_COMMON_OPTIONS,
        {NULL, NULL, NULL, NULL},
    };
    // the input files come as bare arguments: take them out before option parsing
    char *files[PLOT_MAX_FILES], *args[64];
    int n_files = 0, n_args = 0;
    for (int i = 0; i < argc && n_args < 64; i++) {
        const char *prev = i > 0 ? argv[i - 1] : "";
        int is_value = i > 1 && prev[0] == '-' && !strchr(prev, '=') && strcmp(prev, "--help") != 0 &&
                       strcmp(prev, "-h") != 0;
        if (i > 0 && argv[i][0] != '-' && !is_value) {
            if (n_files == PLOT_MAX_FILES) {
                fprintf(stderr, "collm plot: at most %d input files\n", PLOT_MAX_FILES);
                return 1;
            }
            files[n_files++] = argv[i];
        } else {
            args[n_args++] = argv[i];
        }
    }
    int p = cli_parse(n_args, args, opts,
                      "usage: collm plot FILE... --out PNG [--kind train|sweep|topk] [--title T] [--metrics LIST]\n\n"
                      "PNG figures, drawn by gnuplot (Debian gnuplot-nox):\n"
                      "  train  training logs (collm train / train-cf: OUT.log.jsonl): loss and valid AUC / UAUC per "
                      "epoch, a line per file\n"
                      "  sweep  bench/sweep.sh's sweep.jsonl: AUC and UAUC against the swept value\n"
                      "  topk   collm eval-topk --json output: bars per metric and method with 95 % intervals");
    if (p) return p > 0 ? 0 : 1;
    const char *out;
    if (cli_require(opts, "--out", &out)) return 1;
    if (!n_files) {
        fprintf(stderr, "collm plot: no input file (see --help)\n");
        return 1;
    }
    const char *kind = cli_get(opts, "--kind");
    if (kind && strcmp(kind, "train") && strcmp(kind, "sweep") && strcmp(kind, "topk")) {
        fprintf(stderr, "collm plot: --kind '%s': train, sweep or topk\n", kind);
        return 1;
    }
    if (!kind && !(kind = detect_kind(files[0]))) return cli_fail("plot");
    if (strcmp(kind, "train") != 0 && n_files > 1) {
        fprintf(stderr, "collm plot: --kind %s takes one file (got %d)\n", kind, n_files);
        return 1;
    }
    if (collm_check_output_path(out)) return cli_fail("plot");
    // the image is removed before gnuplot runs: an --out that is one of the
    // input files would delete it before it is read
    cli_input inputs[PLOT_MAX_FILES];
    for (int i = 0; i < n_files; i++) inputs[i] = (cli_input){"input", files[i]};
    if (cli_check_not_input("--out", out, inputs, n_files, NULL)) return cli_fail("plot");
    // gnuplot present? (a clear line instead of the shell's "not found")
    if (system("command -v gnuplot >/dev/null 2>&1") != 0) {
        fprintf(stderr, "collm plot: gnuplot not found (Debian: apt-get install gnuplot-nox)\n");
        return 1;
    }
    remove(out); // so a failed run cannot leave an old image looking new
    FILE *gp = popen("gnuplot", "w");
    if (!gp) {
        fprintf(stderr, "collm plot: cannot run gnuplot: %s\n", strerror(errno));
        return 1;
    }
    const char *title = cli_get(opts, "--title");
    int rc;
    if (strcmp(kind, "train") == 0) rc = plot_train(gp, files, n_files, out, title);
    else if (strcmp(kind, "sweep") == 0) rc = plot_sweep(gp, files[0], out, title);
    else rc = plot_topk(gp, files[0], out, title, cli_get(opts, "--metrics"));
    int status = pclose(gp);
    if (rc != COLLM_OK) {
        remove(out);
        return cli_fail("plot");
    }
    struct stat st;
    if (status != 0 || stat(out, &st) != 0 || st.st_size == 0) {
        fprintf(stderr, "collm plot: gnuplot failed (exit %d); nothing written to %s\n",
                WIFEXITED(status) ? WEXITSTATUS(status) : -1, out);
        remove(out);
        return 1;
    }
    if (cli_has(opts, "--json")) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "out", out);
        cJSON_AddStringToObject(j, "kind", kind);
        cJSON_AddNumberToObject(j, "files", n_files);
        cJSON_AddNumberToObject(j, "bytes", (double)st.st_size);
        return cli_print_json(j);
    }
    fprintf(stderr, "plot: wrote %s (%s, %d file%s)\n", out, kind, n_files, n_files > 1 ? "s" : "");
    return 0;
}
