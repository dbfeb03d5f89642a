// Option parsing shared by every subcommand (see cli.h).
#include "cli.h"

#include "collm/error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void print_usage(const char *usage, const cli_option *opts) {
    printf("%s\n\noptions:\n", usage);
    for (const cli_option *o = opts; o->name; o++) {
        char left[64];
        snprintf(left, sizeof left, "%s%s%s", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
        printf("  %-28s %s\n", left, o->help);
    }
}

int cli_parse(int argc, char **argv, cli_option *opts, const char *usage) {
    for (cli_option *o = opts; o->name; o++) o->value = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            print_usage(usage, opts);
            return 1;
        }
        cli_option *match = NULL;
        for (cli_option *o = opts; o->name; o++)
            if (strcmp(o->name, a) == 0) match = o;
        if (!match) {
            fprintf(stderr, "collm %s: unknown option '%s' (see --help)\n", argv[0], a);
            return -1;
        }
        if (match->arg) {
            if (i + 1 >= argc) {
                fprintf(stderr, "collm %s: option %s needs a value (%s)\n", argv[0], a, match->arg);
                return -1;
            }
            match->value = argv[++i];
        } else {
            match->value = "1";
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
    if (errno || end == v || *end) {
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
    if (errno || end == v || *end) {
        fprintf(stderr, "collm: option %s: '%s' is not a number\n", name, v);
        return -1;
    }
    *out = x;
    return 0;
}

int cli_threads(const cli_option *opts) {
    int64_t n;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (cpus < 1) cpus = 1;
    if (cli_get_int(opts, "--threads", cpus, &n) != 0 || n < 1 || n > 1024) {
        if (cli_get(opts, "--threads")) fprintf(stderr, "collm: --threads must be 1..1024; using %ld\n", cpus);
        return (int)cpus;
    }
    return (int)n;
}

int cli_fail(const char *command) {
    fprintf(stderr, "collm %s: %s\n", command, collm_last_error());
    return 1;
}
