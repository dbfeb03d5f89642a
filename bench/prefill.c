// Prefill throughput of the forward pass, beside the machine's sgemm peak.
//
//   build/bench/prefill --model M.gguf [--threads 2] [--reps 5] [--lengths 64,128,256]
//
// For each prompt length T: one warm-up, then the best of --reps runs of a
// full forward over T random tokens from an empty cache, logits for the last
// row only (what a prompt-processing benchmark such as llama-bench pp does).
// Then cblas_sgemm 2048^3 (one warm-up, best of 5) in the same process with the
// same thread count, so the "fraction of sgemm" compares like with like.
// Prints tokens/s, achieved GFLOP/s and the ratio to llama.cpp's anchor
// (shared/testvectors/README.md §3.3: ~2,600 tok/s F32 pp on 2 threads).
#include "collm/error.h"
#include "collm/model.h"
#include "core/rng.h"
#include "llm/quant.h"
#include "collm/threadpool.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LLAMA_CPP_PP_TOKS 2600.0 // F32 pp64/128/256 on 2 threads, README §3.3

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

// FLOPs of a T-token prefill from an empty cache: 2 per multiply-add of the
// layer matrices for every token, causal attention (QK^T and PV: 2 x 2 x hd per
// query-key pair, T(T+1)/2 pairs per head), and one head row.
static double prefill_flops(const collm_llm_hparams *hp, int T) {
    double C = hp->n_embd, q_dim = (double)hp->n_head * hp->head_dim, kv_dim = (double)hp->n_head_kv * hp->head_dim;
    double layer_params = C * q_dim * 2 + C * kv_dim * 2 + 3.0 * C * hp->n_ff;
    double mat = 2.0 * layer_params * hp->n_layer * T;
    double att = 4.0 * hp->head_dim * hp->n_head * hp->n_layer * (double)T * (T + 1) / 2.0;
    double head = 2.0 * C * hp->n_vocab;
    return mat + att + head;
}

// The README's convention for llama.cpp's figure (§3.3: "~85 MFLOP per token"):
// 2 x every matrix parameter but token_embd, the LM head included, for every
// token, plus attention. Work llama.cpp skips too (the head for T-1 rows) is
// counted, so use it only to compare with the README's GFLOP/s numbers.
static double readme_flops(const collm_llm_hparams *hp, int T) {
    return prefill_flops(hp, T) + 2.0 * hp->n_embd * hp->n_vocab * (T - 1);
}

int main(int argc, char **argv) {
    const char *model_path = NULL, *lengths_text = "64,128,256";
    int n_threads = 2, reps = 5;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--model") == 0 && i + 1 < argc) model_path = argv[++i];
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) n_threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--lengths") == 0 && i + 1 < argc) lengths_text = argv[++i];
        else {
            fprintf(stderr, "usage: prefill --model M.gguf [--threads N] [--reps R] [--lengths 64,128,256]\n");
            return 1;
        }
    }
    if (!model_path || n_threads < 1 || reps < 1) {
        fprintf(stderr, "prefill: --model is required; --threads and --reps must be >= 1\n");
        return 1;
    }
    int lengths[16], n_lengths = 0, max_T = 0;
    for (const char *p = lengths_text; *p && n_lengths < 16;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > 65536) {
            fprintf(stderr, "prefill: bad --lengths '%s'\n", lengths_text);
            return 1;
        }
        lengths[n_lengths++] = (int)v;
        if (v > max_T) max_T = (int)v;
        p = *end == ',' ? end + 1 : end;
    }

    double t0 = now_s();
    collm_llm_model *model = collm_llm_model_load(model_path);
    if (!model) {
        fprintf(stderr, "prefill: %s\n", collm_last_error());
        return 1;
    }
    const collm_llm_hparams *hp = collm_llm_model_hparams(model);
    printf("model %s: %s, n_embd %d, n_layer %d, n_head %d/%d, n_ff %d, n_vocab %d, %lld params (loaded in %.2f s)\n",
           model_path, collm_llm_arch_name(hp->arch), hp->n_embd, hp->n_layer, hp->n_head, hp->n_head_kv, hp->n_ff,
           hp->n_vocab, (long long)collm_llm_model_n_params(model), now_s() - t0);
    // COLLM_ISA caps both (x86-64-v3: the AVX2 kernels, what an AVX2-only CPU runs)
    printf("kernels: %s, quantised %s\n", collm_kernel_isa(), collm_quant_isa());
    collm_blas_set_threads(n_threads);
    collm_pool *pool = collm_pool_create(n_threads);
    collm_llm_context *ctx = collm_llm_context_create(model, max_T, max_T, pool);
    int32_t *tokens = malloc(sizeof(int32_t) * max_T);
    float *logits = malloc(sizeof(float) * hp->n_vocab);
    if (!pool || !ctx || !tokens || !logits) {
        fprintf(stderr, "prefill: %s\n", collm_last_error());
        return 1;
    }
    collm_rng rng;
    collm_rng_seed(&rng, 1234);
    for (int i = 0; i < max_T; i++) tokens[i] = (int32_t)collm_rng_below(&rng, (uint64_t)hp->n_vocab);

    double best_tps[16];
    printf("\nprefill, %d threads, best of %d (after one warm-up):\n", n_threads, reps);
    printf("  %6s %10s %10s %12s %10s\n", "T", "ms", "tok/s", "GFLOP/s", "MFLOP/tok");
    for (int li = 0; li < n_lengths; li++) {
        int T = lengths[li];
        int32_t last = T - 1;
        double best = 1e30;
        for (int r = 0; r <= reps; r++) {
            collm_llm_kv_truncate(ctx, 0);
            double s = now_s();
            if (collm_llm_forward(ctx, tokens, T, NULL, &last, 1, NULL, 0, logits) != COLLM_OK) {
                fprintf(stderr, "prefill: %s\n", collm_last_error());
                return 1;
            }
            double e = now_s() - s;
            if (r > 0 && e < best) best = e; // r == 0 is the warm-up
        }
        double flops = prefill_flops(hp, T);
        best_tps[li] = T / best;
        printf("  %6d %10.2f %10.0f %12.1f %10.1f\n", T, best * 1e3, best_tps[li], flops / best * 1e-9,
               flops / T * 1e-6);
    }

    // sgemm 2048^3, same threads
    const int N = 2048;
    float *A = malloc(sizeof(float) * N * N), *B = malloc(sizeof(float) * N * N), *Cm = malloc(sizeof(float) * N * N);
    if (!A || !B || !Cm) {
        fprintf(stderr, "prefill: out of memory for sgemm\n");
        return 1;
    }
    for (int64_t i = 0; i < (int64_t)N * N; i++) {
        A[i] = (float)(collm_rng_uniform(&rng) - 0.5);
        B[i] = (float)(collm_rng_uniform(&rng) - 0.5);
        Cm[i] = 0.0f;
    }
    double best_gemm = 1e30;
    for (int r = 0; r <= 5; r++) {
        double s = now_s();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, N, N, 1.0f, A, N, B, N, 0.0f, Cm, N);
        double e = now_s() - s;
        if (r > 0 && e < best_gemm) best_gemm = e;
    }
    double gemm_gflops = 2.0 * N * N * (double)N / best_gemm * 1e-9;
    const char *core = getenv("OPENBLAS_CORETYPE");
    printf("\ncblas_sgemm %d^3, %d threads, best of 5: %.1f GFLOP/s (OPENBLAS_CORETYPE=%s)\n", N, n_threads,
           gemm_gflops, core ? core : "unset");

    printf("\nsummary (%d threads):\n", n_threads);
    for (int li = 0; li < n_lengths; li++) {
        double gf = prefill_flops(hp, lengths[li]) / (lengths[li] / best_tps[li]) * 1e-9;
        double gf_readme = readme_flops(hp, lengths[li]) / (lengths[li] / best_tps[li]) * 1e-9;
        printf("  pp%-4d %8.0f tok/s  %6.1f GFLOP/s done = %4.0f%% of sgemm (README convention %.1f MFLOP/tok: "
               "%6.1f GFLOP/s)  ratio vs llama.cpp %.0f tok/s: %.2f\n",
               lengths[li], best_tps[li], gf, 100.0 * gf / gemm_gflops, readme_flops(hp, lengths[li]) / lengths[li] * 1e-6,
               gf_readme, LLAMA_CPP_PP_TOKS, best_tps[li] / LLAMA_CPP_PP_TOKS);
    }
    free(A);
    free(B);
    free(Cm);
    free(tokens);
    free(logits);
    collm_llm_context_free(ctx);
    collm_pool_free(pool);
    collm_llm_model_free(model);
    return 0;
}
