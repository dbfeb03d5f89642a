// collm: one binary, one subcommand per pipeline step.
#include "commands.h"

#include <stdio.h>
#include <string.h>

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    // keep in pipeline order: data -> cf -> llm -> training -> evaluation -> retrieval -> serving
    {"version", cmd_version, "print the version"},
};

static void print_help(void) {
    printf("collm: CoLLM-FaissRet, an LLM-based recommender in C\n\nusage: collm <command> [options]   (collm <command> --help for details)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        printf("  %-14s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        print_help();
        return argc < 2 ? 1 : 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "collm: unknown command '%s' (see collm --help)\n", argv[1]);
    return 1;
}

int cmd_version(int argc, char **argv) {
    (void)argc;
    (void)argv;
    printf("collm 0.1.0\n");
    return 0;
}
