// collm prepare: builds a dataset folder (items.tsv, train/valid/test/
// valid_small.tsv, item_map.tsv) from raw public files (docs/data.md).
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "collm/error.h"
#include "collm/prepare.h"
#include "commands.h"

int cmd_prepare(int argc, char **argv) {
    cli_option opts[] = {
        {"--source", "NAME", "ml-1m | amazon-book | bookcrossing", NULL},
        {"--ratings", "FILE", "ml-1m ratings.dat / bookcrossing BX-Book-Ratings.csv", NULL},
        {"--movies", "FILE", "ml-1m movies.dat (Latin-1 or UTF-8)", NULL},
        {"--reviews", "FILE", "amazon-book Books_5.json (JSON lines, uncompressed)", NULL},
        {"--meta", "FILE", "amazon-book meta_Books.json (JSON lines, uncompressed)", NULL},
        {"--books", "FILE", "bookcrossing BX-Books.csv", NULL},
        {"--out", "DIR", "output directory (created)", NULL},
        {"--seed", "S", "seed of valid_small / bookcrossing shuffles (default 2023)", NULL},
        {"--min-count", "N", "amazon-book: keep users and items with more than N ratings (default 20)", NULL},
        {"--targets-per-user", "K", "bookcrossing: samples per user (default 5)", NULL},
        CLI_COMMON_OPTIONS,
        {NULL, NULL, NULL, NULL},
    };
    int p = cli_parse(argc, argv, opts,
                      "usage: collm prepare --source ml-1m --ratings ratings.dat --movies movies.dat --out DIR\n"
                      "       collm prepare --source amazon-book --reviews Books_5.json --meta meta_Books.json --out DIR\n"
                      "       collm prepare --source bookcrossing --ratings BX-Book-Ratings.csv --books BX-Books.csv --out DIR");
    if (p) return p > 0 ? 0 : 1;
    const char *source, *out, *a, *b;
    int64_t seed, min_count, k;
    if (cli_require(opts, "--source", &source) || cli_require(opts, "--out", &out) ||
        cli_get_int(opts, "--seed", 2023, &seed) || cli_get_int(opts, "--min-count", 20, &min_count) ||
        cli_get_int(opts, "--targets-per-user", 5, &k))
        return 1;
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
        collm_error(COLLM_ERR_ARG, "unknown --source '%s' (ml-1m, amazon-book, bookcrossing)", source);
        return cli_fail("prepare");
    }
    if (rc != COLLM_OK) return cli_fail("prepare");
    printf("prepare: wrote %s\n", out);
    return 0;
}
