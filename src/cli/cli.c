// Option parsing shared by every subcommand (see cli.h).
#include "cli.h"

#include "collm/error.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// Short and older spellings, one table for every command, so a name means
// the same thing everywhere. A spelling resolves to the first of its long
// names that the command has (-m is --model, or --ckpt in the commands that
// take a checkpoint and no --model).
static const struct {
    const char *alias;
    const char *target[3];
} aliases[] = {
    {"-m", {"--model", "--ckpt", NULL}},
    {"-t", {"--threads", NULL, NULL}},
    {"-o", {"--out", NULL, NULL}},
    {"-h", {"--help", NULL, NULL}},
    {"--wd", {"--weight-decay", NULL, NULL}},
};
enum { N_ALIASES = sizeof aliases / sizeof aliases[0] };

static cli_option *find_mut(cli_option *opts, const char *name, size_t len) {
    for (cli_option *o = opts; o->name; o++)
        if (strlen(o->name) == len && strncmp(o->name, name, len) == 0) return o;
    return NULL;
}

// The option a spelling (name[0..len)) means in this command, or NULL.
static cli_option *resolve(cli_option *opts, const char *name, size_t len) {
    for (int k = 0; k < N_ALIASES; k++)
        if (strlen(aliases[k].alias) == len && strncmp(aliases[k].alias, name, len) == 0) {
            for (int t = 0; t < 3 && aliases[k].target[t]; t++) {
                cli_option *o = find_mut(opts, aliases[k].target[t], strlen(aliases[k].target[t]));
                if (o) return o;
            }
            return NULL;
        }
    return find_mut(opts, name, len);
}

static void print_usage(const char *usage, cli_option *opts) {
    printf("%s\n\noptions:\n", usage);
    for (cli_option *o = opts; o->name; o++) {
        char left[96], also[64] = "";
        const char *shortform = NULL;
        for (int k = 0; k < N_ALIASES; k++) {
            if (resolve(opts, aliases[k].alias, strlen(aliases[k].alias)) != o) continue;
            if (aliases[k].alias[1] != '-') shortform = aliases[k].alias;
            else snprintf(also, sizeof also, " (also %s)", aliases[k].alias);
        }
        snprintf(left, sizeof left, "%s%s%s%s%s", shortform ? shortform : "", shortform ? ", " : "", o->name,
                 o->arg ? " " : "", o->arg ? o->arg : "");
        printf("  %-28s %s%s\n", left, o->help, also);
    }
    printf("\nValues go as --name VALUE or --name=VALUE.\n");
}

int cli_parse(int argc, char **argv, cli_option *opts, const char *usage) {
    for (cli_option *o = opts; o->name; o++) o->value = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            print_usage(usage, opts);
            return 1;
        }
        // --name=value: the value is everything after the first '='
        const char *eq = strncmp(a, "--", 2) == 0 ? strchr(a, '=') : NULL;
        size_t len = eq ? (size_t)(eq - a) : strlen(a);
        cli_option *match = a[0] == '-' ? resolve(opts, a, len) : NULL;
        if (!match) {
            if (a[0] == '-') fprintf(stderr, "collm %s: unknown option '%.*s' (see --help)\n", argv[0], (int)len, a);
            else fprintf(stderr, "collm %s: unexpected argument '%s' (options start with --; see --help)\n", argv[0], a);
            return -1;
        }
        // the last of two values used to win silently (fit-score --with a.gguf
        // --with b.gguf fused b alone): say which option came twice
        if (match->value) {
            fprintf(stderr, "collm %s: option %s given twice (give it once%s)\n", argv[0], match->name,
                    match->arg ? "; a list goes in one value, comma-separated where the option takes one" : "");
            return -1;
        }
        if (match->arg) {
            if (eq) match->value = eq + 1;
            else if (i + 1 < argc) match->value = argv[++i];
            else {
                fprintf(stderr, "collm %s: option %s needs a value (%s)\n", argv[0], match->name, match->arg);
                return -1;
            }
        } else if (eq) {
            fprintf(stderr, "collm %s: option %s takes no value (got '%s')\n", argv[0], match->name, a);
            return -1;
        } else {
            match->value = "1";
        }
    }
    // every command takes --threads: a bad value is an error before any work
    const char *t = cli_get(opts, "--threads");
    int64_t n;
    if (t) {
        if (cli_get_int(opts, "--threads", 1, &n)) return -1;
        if (n < 1 || n > 1024) {
            fprintf(stderr, "collm %s: --threads must be 1..1024 (got '%s')\n", argv[0], t);
            return -1;
        }
    }
    return 0;
}

static const cli_option *find(const cli_option *opts, const char *name) {
    for (const cli_option *o = opts; o->name; o++)
        if (strcmp(o->name, name) == 0) return o;
    return NULL;
}

const char *cli_get(const cli_option *opts, const char *name) {
    const cli_option *o = find(opts, name);
    return o ? o->value : NULL;
}

int cli_has(const cli_option *opts, const char *name) { return cli_get(opts, name) != NULL; }

int cli_require(const cli_option *opts, const char *name, const char **out) {
    *out = cli_get(opts, name);
    if (!*out) {
        fprintf(stderr, "collm: missing required option %s (see --help)\n", name);
        return -1;
    }
    return 0;
}

int cli_get_int(const cli_option *opts, const char *name, int64_t def, int64_t *out) {
    const char *v = cli_get(opts, name);
    *out = def;
    if (!v) return 0;
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end || isspace((unsigned char)*v)) { // (strtoll skips leading spaces: " 5" was 5)
        fprintf(stderr, "collm: option %s: '%s' is not an integer\n", name, v);
        return -1;
    }
    *out = x;
    return 0;
}

int cli_get_float(const cli_option *opts, const char *name, double def, double *out) {
    const char *v = cli_get(opts, name);
    *out = def;
    if (!v) return 0;
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end || isspace((unsigned char)*v)) {
        fprintf(stderr, "collm: option %s: '%s' is not a number\n", name, v);
        return -1;
    }
    if (!isfinite(x)) { // no option means anything by inf or nan
        fprintf(stderr, "collm: option %s: '%s' is not a finite number\n", name, v);
        return -1;
    }
    *out = x;
    return 0;
}

int cli_get_int_range(const cli_option *opts, const char *name, int64_t def, int64_t lo, int64_t hi, int64_t *out) {
    if (cli_get_int(opts, name, def, out)) return -1;
    if (*out < lo || *out > hi) {
        fprintf(stderr, "collm: option %s: %s is out of range (%lld..%lld)\n", name, cli_get(opts, name), (long long)lo,
                (long long)hi);
        return -1;
    }
    return 0;
}

int cli_get_float_range(const cli_option *opts, const char *name, double def, double lo, double hi, int flags,
                        double *out) {
    if (cli_get_float(opts, name, def, out)) return -1;
    double x = *out;
    int low_ok = flags & CLI_OPEN_LO ? x > lo : x >= lo, high_ok = flags & CLI_OPEN_HI ? x < hi : x <= hi;
    if (low_ok && high_ok) return 0;
    char range[96];
    if (isinf(hi)) snprintf(range, sizeof range, "%s %g", flags & CLI_OPEN_LO ? ">" : ">=", lo);
    else snprintf(range, sizeof range, "in %c%g, %g%c", flags & CLI_OPEN_LO ? '(' : '[', lo, hi, flags & CLI_OPEN_HI ? ')' : ']');
    fprintf(stderr, "collm: option %s: %s is out of range (must be %s)\n", name, cli_get(opts, name), range);
    return -1;
}

int cli_threads(const cli_option *opts) {
    int64_t n;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (cpus < 1) cpus = 1;
    if (cpus > 1024) cpus = 1024;
    // cli_parse has refused a bad --threads already
    if (cli_get_int(opts, "--threads", cpus, &n) != 0 || n < 1 || n > 1024) return (int)cpus;
    return (int)n;
}

int cli_fail(const char *command) {
    fprintf(stderr, "collm %s: %s\n", command, collm_last_error());
    return 1;
}
