// collm prepare: builds a dataset folder (items.tsv, train/valid/test/
// valid_small.tsv, item_map.tsv) from raw public files or from your own
// CSV / TSV (docs/data.md).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "collm/error.h"
#include "collm/prepare.h"
#include "commands.h"

// --delimiter: one character, or "tab" / "\t".
static int parse_delimiter(const char *s, char *out) {
    if (strcmp(s, "tab") == 0 || strcmp(s, "\\t") == 0) *out = '\t';
    else if (strlen(s) == 1 && s[0] != '"' && s[0] != '\n' && s[0] != '\r') *out = s[0];
    else return collm_error(COLLM_ERR_ARG, "--delimiter '%s': give one character (e.g. , ; |) or tab", s);
    return COLLM_OK;
}

// --fractions A,B,C
static int parse_fractions(const char *s, double f[3]) {
    const char *p = s;
    for (int k = 0; k < 3; k++) {
        char *end;
        f[k] = strtod(p, &end);
        if (end == p || (k < 2 && *end != ',') || (k == 2 && *end)) {
            return collm_error(COLLM_ERR_ARG, "--fractions '%s': give three numbers TRAIN,VALID,TEST, e.g. 0.8,0.1,0.1",
                               s);
        }
        p = end + 1;
    }
    return COLLM_OK;
}

static int prepare_csv(const cli_option *opts, const char *out, int64_t seed, int json) {
    const char *inter, *items;
    if (cli_require(opts, "--interactions", &inter) || cli_require(opts, "--items", &items)) return 1;
    collm_rec_csv_options o;
    collm_rec_csv_options_default(&o);
    o.seed = (uint64_t)seed;
    o.user_col = cli_get(opts, "--user-col");
    o.item_col = cli_get(opts, "--item-col");
    o.rating_col = cli_get(opts, "--rating-col");
    o.label_col = cli_get(opts, "--label-col");
    o.time_col = cli_get(opts, "--time-col");
    o.items_id_col = cli_get(opts, "--items-id-col");
    o.title_col = cli_get(opts, "--title-col");
    o.no_header = cli_has(opts, "--no-header");
    int64_t kcore;
    if (cli_get_float(opts, "--threshold", o.threshold, &o.threshold) || cli_get_int(opts, "--kcore", 0, &kcore) ||
        cli_get_float(opts, "--small-frac", o.small_frac, &o.small_frac))
        return 1;
    if (kcore < 0 || kcore > 1000000) {
        collm_error(COLLM_ERR_ARG, "--kcore must be 0 (off) .. 1000000");
        return cli_fail("prepare");
    }
    o.kcore = (int)kcore;
    const char *d = cli_get(opts, "--delimiter"), *split = cli_get(opts, "--split"), *fr = cli_get(opts, "--fractions");
    const char *vf = cli_get(opts, "--valid-from"), *tf = cli_get(opts, "--test-from");
    if (d && parse_delimiter(d, &o.delimiter)) return cli_fail("prepare");
    if (!split || strcmp(split, "time") == 0) o.split = COLLM_SPLIT_TIME;
    else if (strcmp(split, "ratio") == 0) o.split = COLLM_SPLIT_RATIO;
    else if (strcmp(split, "loo") == 0 || strcmp(split, "leave-one-out") == 0) o.split = COLLM_SPLIT_LOO;
    else {
        collm_error(COLLM_ERR_ARG, "--split '%s': time, ratio or loo", split);
        return cli_fail("prepare");
    }
    if (fr && o.split == COLLM_SPLIT_LOO) {
        collm_error(COLLM_ERR_ARG, "--fractions does not apply to --split loo");
        return cli_fail("prepare");
    }
    if (fr && parse_fractions(fr, o.frac)) return cli_fail("prepare");
    if (vf || tf) {
        if (!vf || !tf || o.split != COLLM_SPLIT_TIME || fr) {
            collm_error(COLLM_ERR_ARG, "--valid-from and --test-from go together, with --split time and without "
                                       "--fractions");
            return cli_fail("prepare");
        }
        if (collm_rec_parse_time(vf, &o.valid_from)) {
            collm_error_prefix(COLLM_ERR_ARG, "--valid-from");
            return cli_fail("prepare");
        }
        if (collm_rec_parse_time(tf, &o.test_from)) {
            collm_error_prefix(COLLM_ERR_ARG, "--test-from");
            return cli_fail("prepare");
        }
        o.use_dates = 1;
    }
    // what the prompts call an item (default "item": a log of anything), checked before any work
    const char *noun = cli_get(opts, "--item-noun") ? cli_get(opts, "--item-noun") : "item";
    if (collm_rec_write_item_noun(NULL, noun) != COLLM_OK) return cli_fail("prepare");
    collm_rec_csv_stats st;
    if (collm_rec_prepare_csv(inter, items, out, &o, &st) != COLLM_OK ||
        collm_rec_write_item_noun(out, noun) != COLLM_OK)
        return cli_fail("prepare");
    if (json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "out", out);
        cJSON_AddNumberToObject(j, "users", st.n_users);
        cJSON_AddNumberToObject(j, "items", st.n_items);
        cJSON_AddNumberToObject(j, "train", (double)st.n_rows[0]);
        cJSON_AddNumberToObject(j, "valid", (double)st.n_rows[1]);
        cJSON_AddNumberToObject(j, "test", (double)st.n_rows[2]);
        cJSON_AddNumberToObject(j, "valid_small", (double)st.n_rows[3]);
        cJSON_AddNumberToObject(j, "positives", (double)st.n_pos);
        cJSON_AddNumberToObject(j, "rows_read", (double)st.n_read);
        cJSON_AddNumberToObject(j, "dropped_unknown_item", (double)st.n_unknown_item);
        cJSON_AddNumberToObject(j, "dropped_kcore", (double)st.n_kcore_dropped);
        return cli_print_json(j);
    }
    int64_t n = st.n_rows[0] + st.n_rows[1] + st.n_rows[2];
    printf("prepare: wrote %s: %d users, %d items; train %lld, valid %lld, test %lld, valid_small %lld rows "
           "(%.1f %% positive)\n",
           out, st.n_users, st.n_items, (long long)st.n_rows[0], (long long)st.n_rows[1], (long long)st.n_rows[2],
           (long long)st.n_rows[3], n ? 100.0 * (double)st.n_pos / (double)n : 0.0);
    printf("prepare: read %lld rows of %s; dropped %lld whose item is not in %s", (long long)st.n_read, inter,
           (long long)st.n_unknown_item, items);
    if (o.kcore) printf(" and %lld by the %d-core filter", (long long)st.n_kcore_dropped, o.kcore);
    printf("\n");
    return 0;
}

int cmd_prepare(int argc, char **argv) {
    cli_option opts[] = {
        {"--source", "NAME", "csv | ml-1m | amazon-book | bookcrossing", NULL},
        {"--out", "DIR", "output directory (created)", NULL},
        {"--interactions", "FILE", "csv: user-item interactions (CSV / TSV / ...; one header line)", NULL},
        {"--items", "FILE", "csv: item id and title per row (may be the interactions file)", NULL},
        {"--user-col", "NAME|N", "csv: user column: header name or 1-based index (default: user_id, userId, user, ...)", NULL},
        {"--item-col", "NAME|N", "csv: item column (default: item_id, itemId, item, movieId, asin, ...)", NULL},
        {"--rating-col", "NAME|N", "csv: rating column, label = rating >= --threshold (default: rating, stars, ...)", NULL},
        {"--label-col", "NAME|N", "csv: or a 0/1 (true/false) label column (default: label, liked, click, ...)", NULL},
        {"--time-col", "NAME|N", "csv: unix seconds or YYYY-MM-DD[ HH:MM[:SS]] (default: timestamp, time, date, ...; "
                                 "none: file order)", NULL},
        {"--items-id-col", "NAME|N", "csv: item id column of --items (default: --item-col's name, else detected)", NULL},
        {"--title-col", "NAME|N", "csv: title column of --items (default: title, name, ...)", NULL},
        {"--delimiter", "C", "csv: , ; | tab ... (default: detected per file from its first line)", NULL},
        {"--no-header", NULL, "csv: the files have no header line (columns by index)", NULL},
        {"--threshold", "X", "csv: positive when rating >= X (default 4)", NULL},
        {"--kcore", "K", "csv: keep only users and items with >= K interactions, repeatedly (default 0 = off)", NULL},
        {"--split", "RULE", "csv: time (global timeline) | ratio (per user, oldest first) | loo (leave-one-out) "
                            "(default time)", NULL},
        {"--fractions", "A,B,C", "csv: train,valid,test fractions for time / ratio (default 0.8,0.1,0.1)", NULL},
        {"--valid-from", "DATE", "csv: time split at dates: valid from DATE (with --test-from)", NULL},
        {"--test-from", "DATE", "csv: test from DATE", NULL},
        {"--item-noun", "WORD[,PLURAL]", "what the prompts call an item, e.g. song or person,people (csv default item; "
                                        "written to DIR/item_noun.txt)", NULL},
        {"--small-frac", "X", "csv: valid_small = round(X * valid rows), a seeded sample (default 0.5)", NULL},
        {"--ratings", "FILE", "ml-1m ratings.dat / bookcrossing BX-Book-Ratings.csv", NULL},
        {"--movies", "FILE", "ml-1m movies.dat (Latin-1 or UTF-8)", NULL},
        {"--reviews", "FILE", "amazon-book Books_5.json (JSON lines, uncompressed)", NULL},
        {"--meta", "FILE", "amazon-book meta_Books.json (JSON lines, uncompressed)", NULL},
        {"--books", "FILE", "bookcrossing BX-Books.csv", NULL},
        {"--seed", "N", "seed of valid_small / bookcrossing shuffles (default 2023)", NULL},
        {"--min-count", "N", "amazon-book: keep users and items with more than N ratings (default 20)", NULL},
        {"--targets-per-user", "K", "bookcrossing: samples per user (default 5)", NULL},
        {"--json", NULL, "print one JSON object (what was written) instead of text", NULL},
        CLI_COMMON_OPTIONS,
        {NULL, NULL, NULL, NULL},
    };
    int p = cli_parse(argc, argv, opts,
                      "usage: collm prepare --source csv --interactions ratings.csv --items items.csv --out DIR\n"
                      "                     [--split time|ratio|loo] [--threshold 4] [--kcore K] [--user-col C ...]\n"
                      "       collm prepare --source ml-1m --ratings ratings.dat --movies movies.dat --out DIR\n"
                      "       collm prepare --source amazon-book --reviews Books_5.json --meta meta_Books.json --out DIR\n"
                      "       collm prepare --source bookcrossing --ratings BX-Book-Ratings.csv --books BX-Books.csv --out DIR");
    if (p) return p > 0 ? 0 : 1;
    const char *source, *out, *a, *b;
    int64_t seed, min_count, k;
    if (cli_require(opts, "--source", &source) || cli_require(opts, "--out", &out) ||
        cli_get_int_range(opts, "--seed", CLI_DEFAULT_SEED, 0, INT64_MAX, &seed) ||
        cli_get_int_range(opts, "--min-count", 20, 0, 1000000, &min_count) ||
        cli_get_int_range(opts, "--targets-per-user", 5, 1, 1000000, &k))
        return 1;
    int json = cli_has(opts, "--json");
    // each source's own options: one given to another source was ignored
    // (--threshold or --split with ml-1m built the fixed split without a word)
    static const struct {
        const char *opt, *sources; // space-separated
    } own[] = {{"--interactions", "csv"}, {"--items", "csv"},        {"--user-col", "csv"},     {"--item-col", "csv"},
               {"--rating-col", "csv"},   {"--label-col", "csv"},    {"--time-col", "csv"},     {"--items-id-col", "csv"},
               {"--title-col", "csv"},    {"--delimiter", "csv"},    {"--no-header", "csv"},    {"--threshold", "csv"},
               {"--kcore", "csv"},        {"--split", "csv"},        {"--fractions", "csv"},    {"--valid-from", "csv"},
               {"--test-from", "csv"},    {"--item-noun", "csv"},    {"--small-frac", "csv"},   {"--ratings", "ml-1m bookcrossing"},
               {"--movies", "ml-1m"},     {"--reviews", "amazon-book"}, {"--meta", "amazon-book"},
               {"--min-count", "amazon-book"}, {"--books", "bookcrossing"}, {"--targets-per-user", "bookcrossing"}};
    static const char *const known[] = {"csv", "ml-1m", "amazon-book", "bookcrossing"};
    int is_known = 0;
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) is_known |= strcmp(source, known[i]) == 0;
    for (size_t i = 0; is_known && i < sizeof own / sizeof own[0]; i++) {
        if (!cli_has(opts, own[i].opt)) continue;
        const char *at = strstr(own[i].sources, source);
        const size_t n = strlen(source);
        if (at && (at == own[i].sources || at[-1] == ' ') && (at[n] == ' ' || at[n] == '\0')) continue;
        collm_error(COLLM_ERR_ARG, "%s applies to --source %s, not %s%s", own[i].opt, own[i].sources, source,
                    strcmp(own[i].opt, "--item-noun") == 0 ? " (ml-1m is movies, the others books)" : "");
        return cli_fail("prepare");
    }
    if (strcmp(source, "csv") == 0) return prepare_csv(opts, out, seed, json);
    int rc;
    if (strcmp(source, "ml-1m") == 0) {
        if (cli_require(opts, "--ratings", &a) || cli_require(opts, "--movies", &b)) return 1;
        rc = collm_rec_prepare_ml1m(a, b, out, (uint64_t)seed);
    } else if (strcmp(source, "amazon-book") == 0) {
        if (cli_require(opts, "--reviews", &a) || cli_require(opts, "--meta", &b)) return 1;
        rc = collm_rec_prepare_amazon(a, b, out, (uint64_t)seed, (int)min_count);
    } else if (strcmp(source, "bookcrossing") == 0) {
        if (cli_require(opts, "--ratings", &a) || cli_require(opts, "--books", &b)) return 1;
        if (k < 1 || k > 1000000) {
            collm_error(COLLM_ERR_ARG, "--targets-per-user must be >= 1");
            return cli_fail("prepare");
        }
        collm_rec_bookcrossing_options o = {(int)k, 10};
        rc = collm_rec_prepare_bookcrossing(a, b, out, (uint64_t)seed, &o);
    } else {
        collm_error(COLLM_ERR_ARG, "unknown --source '%s' (csv, ml-1m, amazon-book, bookcrossing)", source);
        return cli_fail("prepare");
    }
    if (rc != COLLM_OK) return cli_fail("prepare");
    if (json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "out", out);
        cJSON_AddStringToObject(j, "source", source);
        return cli_print_json(j);
    }
    printf("prepare: wrote %s\n", out);
    return 0;
}
