// collm: one binary, one subcommand per pipeline step.
#include "commands.h"

#include <cjson/cJSON.h>

#include "cli.h"
#include "collm/dist.h"
#include "collm/error.h"
#include "collm/threadpool.h"
#include "collm/version.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    // keep in pipeline order: data -> cf -> llm -> training -> evaluation -> retrieval -> serving
    {"version", cmd_version, "print the version"},
    {"prepare", cmd_prepare, "build a dataset folder from raw ML-1M / Amazon-Book / BookCrossing files"},
    {"synth", cmd_synth, "write a synthetic dataset with planted latent factors (ml-1m layout)"},
    {"init-model", cmd_init_model, "write a randomly initialised Llama/Qwen2 GGUF with a given vocabulary"},
    {"logits", cmd_logits, "run a model over token ids, write every position's logits (float32)"},
    {"train-cf", cmd_train_cf, "train a collaborative model (MF, LightGCN, MF with biases, SASRec, DIN) and save it as GGUF; or ctx, the context features score fusion uses"},
    {"eval-cf", cmd_eval_cf, "AUC / UAUC / warm-cold AUC of a collaborative model on a split"},
    {"train", cmd_train, "train CoLLM: stage 1 (LoRA / full, text only) or stage 2 (FECE mapping, ID slots)"},
    {"eval", cmd_eval, "AUC / UAUC / warm-cold AUC of a CoLLM checkpoint on a split"},
    {"encode", cmd_encode, "write a dataset's prompts as collm encodes them (token ids, slot rows) for other implementations"},
    {"export-lora", cmd_export_lora, "write a checkpoint's LoRA adapter in llama.cpp's adapter format"},
    {"index", cmd_index, "build a Faiss index (Flat / HNSW / IVF) over a collaborative model's item vectors"},
    {"tokenize", cmd_tokenize, "print the token ids of a text with a GGUF's tokenizer"},
    {"recommend", cmd_recommend, "top-K items for a user: Faiss candidates re-ranked by the LLM (shared prompt prefix)"},
    {"eval-topk", cmd_eval_topk, "Recall/NDCG/HitRate/MRR of encoder, retrieval, LLM re-rank and fused orders, with bootstrap CIs"},
    {"fit-fusion", cmd_fit_fusion, "Fit the re-ranking weight lambda on valid_small and store it in the checkpoint"},
    {"fit-score", cmd_fit_score, "Fit the weight of the CF score in the pointwise score on valid_small and store it"},
    {"serve", cmd_serve, "HTTP JSON service: POST /recommend, POST /score, GET /health, GET /metrics (docs/api.md)"},
    {"info", cmd_info, "describe a GGUF file: metadata, training hyper-parameters, tensors, totals"},
    {"plot", cmd_plot, "PNG figures (gnuplot) of training logs, sweeps and eval-topk results"},
};

static void print_help(void) {
    printf("collm %s: CoLLM-FaissRet, an LLM-based recommender in C\n\n"
           "usage: collm <command> [options]   (collm help <command> or collm <command> --help for details)\n"
           "       collm help templates         (the built-in prompt templates)\n"
           "       collm --version\n\n"
           "commands:\n",
           collm_version());
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        printf("  %-14s %s\n", commands[i].name, commands[i].summary);
    printf("\nEvery command takes --name VALUE or --name=VALUE, -t/--threads N, -h/--help; -o is --out, -m is\n"
           "--model (or --ckpt); --json prints one JSON object wherever a command reports a result.\n");
}

static const command *find_command(const char *name) {
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(name, commands[i].name) == 0) return &commands[i];
    return NULL;
}

// Libraries read some settings from the environment once, when they load,
// before main() runs: OpenBLAS picks its kernel (0.3.21 does not know this
// CPU generation and falls back to AVX2 kernels at half the AVX-512 speed)
// and libgomp (Faiss) its wait policy (idle threads must sleep, not spin:
// the cores are shared). So when those variables are unset we set them and
// re-execute ourselves once. COLLM_NO_REEXEC=1 disables this.
//
// A user's OPENBLAS_CORETYPE naming kernels this CPU cannot run (SkylakeX
// without AVX-512, say) would end in SIGILL at the first GEMM: it is replaced
// by what the CPU runs, with a warning, and the process re-executed even under
// COLLM_NO_REEXEC (the child sees a corrected value).

// The features the OpenBLAS core type's kernels use, as __builtin_cpu_supports
// names (NULL-terminated); NULL for core types collm does not know (left alone).
static const char *const *coretype_needs(const char *ct) {
    static const char *const avx512[] = {"avx512f", "avx512dq", "avx512bw", "avx512vl", NULL};
    static const char *const avx512bf16[] = {"avx512f", "avx512dq", "avx512bw", "avx512vl", "avx512bf16", NULL};
    static const char *const amx[] = {"avx512f", "avx512bw", "avx512vl", "avx512bf16", "amx-tile", NULL};
    static const char *const avx2[] = {"avx2", "fma", NULL};
    static const char *const avx[] = {"avx", NULL};
    static const struct {
        const char *name;
        const char *const *needs;
    } table[] = {{"skylakex", avx512},  {"cooperlake", avx512bf16}, {"sapphirerapids", amx}, {"haswell", avx2},
                 {"zen", avx2},         {"sandybridge", avx},       {"bulldozer", avx},      {"piledriver", avx},
                 {"steamroller", avx},  {"excavator", avx2}};
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcasecmp(ct, table[i].name) == 0) return table[i].needs;
    return NULL;
}

static int cpu_has(const char *feature) {
    // __builtin_cpu_supports needs literal names: the ones the table uses
    if (strcmp(feature, "avx512f") == 0) return __builtin_cpu_supports("avx512f");
    if (strcmp(feature, "avx512dq") == 0) return __builtin_cpu_supports("avx512dq");
    if (strcmp(feature, "avx512bw") == 0) return __builtin_cpu_supports("avx512bw");
    if (strcmp(feature, "avx512vl") == 0) return __builtin_cpu_supports("avx512vl");
    if (strcmp(feature, "avx512bf16") == 0) return __builtin_cpu_supports("avx512bf16");
    if (strcmp(feature, "amx-tile") == 0) return __builtin_cpu_supports("amx-tile");
    if (strcmp(feature, "avx2") == 0) return __builtin_cpu_supports("avx2");
    if (strcmp(feature, "fma") == 0) return __builtin_cpu_supports("fma");
    if (strcmp(feature, "avx") == 0) return __builtin_cpu_supports("avx");
    return 0;
}

// 1 (and *missing set) when OPENBLAS_CORETYPE names kernels this CPU lacks.
static int coretype_unrunnable(const char *ct, const char **missing) {
    const char *const *needs = ct ? coretype_needs(ct) : NULL;
    for (int i = 0; needs && needs[i]; i++)
        if (!cpu_has(needs[i])) {
            *missing = needs[i];
            return 1;
        }
    return 0;
}

static void reexec_with_library_settings(char **argv) {
    __builtin_cpu_init();
    const char *ct = getenv("OPENBLAS_CORETYPE"), *missing = NULL;
    int changed = 0;
    if (coretype_unrunnable(ct, &missing)) {
        const char *best = cpu_has("avx512f") && cpu_has("avx512dq") && cpu_has("avx512bw") && cpu_has("avx512vl")
                               ? "SkylakeX"
                               : cpu_has("avx2") && cpu_has("fma") ? "Haswell" : NULL;
        fprintf(stderr, "collm: warning: OPENBLAS_CORETYPE=%s needs %s, which this CPU lacks: using %s instead\n", ct,
                missing, best ? best : "OpenBLAS's own choice");
        if (best) setenv("OPENBLAS_CORETYPE", best, 1);
        else unsetenv("OPENBLAS_CORETYPE");
        changed = 1;
    } else if (getenv("COLLM_NO_REEXEC")) {
        return;
    }
    if (!getenv("OMP_WAIT_POLICY")) {
        setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
        changed = 1;
    }
    // OpenBLAS workers spin (sched_yield) for about 2^28 cycles after each
    // GEMM before sleeping; between GEMMs that burns the core our own pool
    // needs for attention and elementwise work. 2^8 cycles: they sleep at once.
    if (!getenv("OPENBLAS_THREAD_TIMEOUT")) {
        setenv("OPENBLAS_THREAD_TIMEOUT", "8", 1);
        changed = 1;
    }
    if (!getenv("OPENBLAS_CORETYPE") && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl")) {
        setenv("OPENBLAS_CORETYPE", "SkylakeX", 1);
        changed = 1;
    }
    if (!changed) return;
    setenv("COLLM_NO_REEXEC", "1", 1);
    execv("/proc/self/exe", argv);
    // exec failed: carry on with the settings the libraries already have
}

// Under an MPI launcher (mpirun -np N collm CMD ...) every rank runs the
// command; the data-parallel ones split their work over the ranks, the others
// would only repeat it N times (and write the same files at once), so they
// are refused. A rank that fails ends the job (collm_dist_abort): its peers
// may be waiting for it in a collective and would otherwise wait forever.
static int run_command(const command *c, int argc, char **argv) {
    static const char *parallel[] = {"train", "train-cf", "eval", "eval-topk"};
    if (collm_check_environment()) { // a mistyped COLLM_ISA/COLLM_GEMM/COLLM_QMM would silently run the default
        fprintf(stderr, "collm %s: %s\n", c->name, collm_last_error());
        return 1;
    }
    if (collm_dist_init(&argc, &argv)) {
        fprintf(stderr, "collm %s: %s\n", c->name, collm_last_error());
        return 1;
    }
    int size = collm_dist_size(), ok = size == 1;
    for (size_t i = 0; !ok && i < sizeof parallel / sizeof parallel[0]; i++) ok = strcmp(c->name, parallel[i]) == 0;
    if (!ok) {
        if (collm_dist_rank() == 0)
            fprintf(stderr, "collm %s: does not run under mpirun (%d ranks); data-parallel commands: train, train-cf, "
                            "eval, eval-topk\n", c->name, size);
        collm_dist_finalize();
        return 1;
    }
    int rc = c->run(argc - 1, argv + 1);
    if (rc != 0 && size > 1) {
        fflush(NULL);
        collm_dist_abort(rc);
    }
    collm_dist_finalize();
    return rc;
}

int main(int argc, char **argv) {
    reexec_with_library_settings(argv);
    if (argc >= 2 && (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0)) {
        printf("collm %s\n", collm_version());
        return 0;
    }
    if (argc >= 3 && strcmp(argv[1], "help") == 0) { // collm help CMD = collm CMD --help
        if (strcmp(argv[2], "templates") == 0) return cli_print_templates(argc >= 4 && strcmp(argv[3], "--json") == 0);
        const command *c = find_command(argv[2]);
        if (!c) {
            fprintf(stderr, "collm help: unknown command '%s' (see collm --help)\n", argv[2]);
            return 1;
        }
        char help[] = "--help", *args[] = {argv[2], help, NULL};
        return c->run(2, args);
    }
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        print_help();
        return argc < 2 ? 1 : 0;
    }
    const command *c = find_command(argv[1]);
    if (!c) {
        fprintf(stderr, "collm: unknown command '%s' (see collm --help)\n", argv[1]);
        return 1;
    }
    return run_command(c, argc, argv);
}

int cmd_version(int argc, char **argv) {
    cli_option opts[] = {
        {"--json", NULL,
         "print {\"version\": ..., \"version_number\": ..., \"mpi\": built with MPI, \"kernels\": the "
         "numeric kernels this run uses (x86-64-v4, x86-64-v3 or baseline; COLLM_ISA caps them), \"blas_core\": "
         "OpenBLAS's kernels (OPENBLAS_CORETYPE overrides them)}",
         NULL},
        CLI_COMMON_OPTIONS,
        {NULL, NULL, NULL, NULL},
    };
    int p = cli_parse(argc, argv, opts, "usage: collm version [--json]   (also: collm --version)");
    if (p) return p > 0 ? 0 : 1;
    if (cli_has(opts, "--json")) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "version", collm_version());
        cJSON_AddNumberToObject(j, "version_number", COLLM_VERSION_NUMBER);
        cJSON_AddBoolToObject(j, "mpi", collm_dist_compiled()); // built with MPI (mpirun -np N collm train ...)
        cJSON_AddStringToObject(j, "kernels", collm_kernel_isa());
        cJSON_AddStringToObject(j, "blas_core", collm_blas_corename());
        return cli_print_json(j);
    }
    printf("collm %s\n", collm_version());
    return 0;
}
