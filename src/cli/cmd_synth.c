// collm synth: writes a synthetic dataset (ml-1m layout) with planted latent
// factors, for tests and demos without the real data (docs/data.md).
#include <stdio.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "collm/error.h"
#include "collm/prepare.h"
#include "commands.h"

int cmd_synth(int argc, char **argv) {
    cli_option opts[] = {
        {"--users", "U", "number of users (default 300)", NULL},
        {"--items", "I", "number of items (default 500)", NULL},
        CLI_SEED_OPTION,
        {"--dim", "D", "latent dimension (default 4)", NULL},
        {"--scale", "X", "logit scale of the planted factors (default 3)", NULL},
        {"--bias", "B", "logit bias (default 0.3)", NULL},
        {"--item-bias", "S", "std of the per-item logit offset, how likeable an item is (default 1)", NULL},
        {"--min-per-user", "N", "fewest interactions per user (default 30)", NULL},
        {"--max-per-user", "N", "most interactions per user (default 100)", NULL},
        {"--new-items", "FRAC", "share of items released when valid starts: cold in valid/test (default 0)", NULL},
        {"--title-quality", NULL, "a title's adjective names how likeable the item is (text a model can read)", NULL},
        {"--out", "DIR", "output directory (created)", NULL},
        {"--json", NULL, "print what was written as one JSON object", NULL},
        CLI_COMMON_OPTIONS,
        {NULL, NULL, NULL, NULL},
    };
    int p = cli_parse(argc, argv, opts, "usage: collm synth --users U --items I --seed S --out DIR");
    if (p) return p > 0 ? 0 : 1;
    collm_rec_synth_options o;
    collm_rec_synth_defaults(&o);
    const char *out;
    int64_t users, items, seed, dim, mn, mx;
    double scale, bias;
    if (cli_require(opts, "--out", &out) || cli_get_int(opts, "--users", o.n_users, &users) ||
        cli_get_int(opts, "--items", o.n_items, &items) || cli_get_int_range(opts, "--seed", CLI_DEFAULT_SEED, 0, INT64_MAX, &seed) ||
        cli_get_int(opts, "--dim", o.dim, &dim) || cli_get_int(opts, "--min-per-user", o.min_per_user, &mn) ||
        cli_get_int(opts, "--max-per-user", o.max_per_user, &mx) || cli_get_float(opts, "--scale", o.scale, &scale) ||
        cli_get_float(opts, "--bias", o.bias, &bias) || cli_get_float(opts, "--new-items", 0, &o.new_item_frac) ||
        cli_get_float(opts, "--item-bias", o.item_bias_std, &o.item_bias_std))
        return 1;
    if (users < 1 || users > 10000000 || items < 2 || items > 10000000 || dim < 3 || dim > 1024 || mn < 1 ||
        mx < mn || mx > 1000000 || !(o.new_item_frac >= 0 && o.new_item_frac < 1) ||
        !(o.item_bias_std >= 0 && o.item_bias_std <= 100)) {
        collm_error(COLLM_ERR_ARG, "bad sizes: need 1 <= users, 2 <= items (<= 1e7), 3 <= dim, 1 <= min <= max, 0 <= new-items < 1, 0 <= item-bias <= 100");
        return cli_fail("synth");
    }
    o.n_users = (int32_t)users;
    o.n_items = (int32_t)items;
    o.seed = (uint64_t)seed;
    o.dim = (int)dim;
    o.min_per_user = (int)mn;
    o.max_per_user = (int)mx;
    o.scale = scale;
    o.bias = bias;
    o.title_quality = cli_has(opts, "--title-quality");
    if (collm_rec_synth(&o, out) != COLLM_OK) return cli_fail("synth");
    if (cli_has(opts, "--json")) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "out", out);
        cJSON_AddNumberToObject(j, "users", o.n_users);
        cJSON_AddNumberToObject(j, "items", o.n_items);
        cJSON_AddNumberToObject(j, "seed", (double)o.seed);
        return cli_print_json(j);
    }
    printf("synth: wrote %s (items.tsv, train/valid/test/valid_small.tsv)\n", out);
    return 0;
}
