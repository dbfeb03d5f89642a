// GEMM kernels on the exact shapes of a training step (what
// collm_ops_gemm's per-shape choice rests on): OpenBLAS, BLIS (Debian's
// libblis4, loaded with dlopen when installed: `scripts/setup.sh --bench`)
// and collm's packed kernel (COLLM_GEMM_OWN), one thread each, timed in
// thread CPU time (best of --reps) so that other processes on a shared
// machine change the figures little. Shapes: M = --rows (the packed rows of
// a batch), K and N from the model (--embd, --ff): the forward's
// x·W^T (NT), the backward's dy·W (NN) and dy^T·x (TN) for q|k|v, Wo,
// gate|up and W_down, and the last layer's few query rows (--last).
// Prints one JSON line per shape: {"shape", "form", "m", "n", "k",
// "openblas", "blis", "own", "own_chunks"} in GFLOP/s (blis null when absent;
// own_chunks: collm's kernel on B packed once, over chunks of 96 rows, as a
// fused block and collm_ops_gemm on a pool run it; null for TN and where
// collm would not use its kernel), then one with the CPU kinds:
// {"kernels": ISA, "blis_arch": ...}. BLIS picks its kernels from the CPU id
// (BLIS_ARCH_TYPE=skx|zen3|haswell overrides it where the id is unknown).
//
//   build/bench/gemm_shapes [--rows 1728] [--last 32] [--embd 256] [--ff 688] [--reps 5]
#include "collm/threadpool.h"
#include "core/ops.h"

#include <cblas.h>
#include <cjson/cJSON.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef void (*sgemm_fn)(int, int, int, int, int, int, float, const float *, int, const float *, int, float, float *,
                         int);

static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct {
    const char *name;
    int ta, tb, m, n, k, acc;
} shape;

#define CHUNK_ROWS 96 // the fused block's row chunk (llm/block.c FUSED_CHUNK)

// which: 0 OpenBLAS, 1 BLIS, 2 collm's kernel, 3 collm's kernel on B packed
// once (collm_ops_wpack, packed on `pool`, not timed) over chunks of
// CHUNK_ROWS rows, as a fused block runs it (A not transposed only).
// Returns GFLOP/s of the best rep (0: not this form).
static double time_one(int which, sgemm_fn blis, const shape *s, const float *A, const float *B, float *C, int reps,
                       collm_pool *pool) {
    int lda = s->ta ? s->m : s->k, ldb = s->tb ? s->k : s->n;
    double best = 1e30;
    collm_ops_wpack wp = {0};
    if (which == 3) {
        int rc = s->ta ? 0
                 : s->tb      ? collm_ops_wpack_init(&wp, B, s->n, s->k, s->m, pool)
                              : collm_ops_wpack_init_as_is(&wp, B, s->k, s->n, s->m, pool);
        if (rc != 1) return 0.0;
    }
    for (int r = 0; r <= reps; r++) { // r = 0: warm-up
        double t0 = cpu_s();
        if (which == 3)
            for (int r0 = 0; r0 < s->m; r0 += CHUNK_ROWS)
                collm_ops_wpack_forward(&wp, C + (int64_t)r0 * s->n, A + (int64_t)r0 * lda,
                                        s->m - r0 < CHUNK_ROWS ? s->m - r0 : CHUNK_ROWS);
        else if (which == 2)
            collm_ops_gemm(s->ta, s->tb, s->m, s->n, s->k, A, lda, B, ldb, s->acc, C, s->n, COLLM_GEMM_OWN, NULL);
        else
            (which == 0 ? (sgemm_fn)cblas_sgemm : blis)(CblasRowMajor, s->ta ? CblasTrans : CblasNoTrans,
                                                         s->tb ? CblasTrans : CblasNoTrans, s->m, s->n, s->k, 1.0f, A,
                                                         lda, B, ldb, s->acc ? 1.0f : 0.0f, C, s->n);
        double t = cpu_s() - t0;
        if (r > 0 && t < best) best = t;
    }
    collm_ops_wpack_free(&wp);
    return 2.0 * s->m * s->n * (double)s->k / best / 1e9;
}

int main(int argc, char **argv) {
    int rows = 1728, last = 32, C = 256, F = 688, reps = 5;
    for (int i = 1; i < argc; i++) {
        int *dst = strcmp(argv[i], "--rows") == 0   ? &rows
                   : strcmp(argv[i], "--last") == 0 ? &last
                   : strcmp(argv[i], "--embd") == 0 ? &C
                   : strcmp(argv[i], "--ff") == 0   ? &F
                   : strcmp(argv[i], "--reps") == 0 ? &reps
                                                    : NULL;
        if (!dst || i + 1 >= argc) {
            fprintf(stderr, "usage: gemm_shapes [--rows M] [--last M] [--embd C] [--ff F] [--reps R]\n");
            return 1;
        }
        *dst = atoi(argv[++i]);
    }
    if (rows < 1 || last < 1 || C < 1 || F < 1 || reps < 1 || rows > 65536 || C > 8192 || F > 32768) {
        fprintf(stderr, "gemm_shapes: --rows 1..65536, --embd 1..8192, --ff 1..32768, --last and --reps >= 1\n");
        return 1;
    }
    collm_blas_set_threads(1);
    void *lib = dlopen("libblis.so.4", RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
    sgemm_fn blis = lib ? (sgemm_fn)dlsym(lib, "cblas_sgemm") : NULL;
    void (*blis_threads)(long) = lib ? (void (*)(long))dlsym(lib, "bli_thread_set_num_threads") : NULL;
    int (*blis_arch)(void) = lib ? (int (*)(void))dlsym(lib, "bli_arch_query_id") : NULL;
    const char *(*blis_arch_name)(int) = lib ? (const char *(*)(int))dlsym(lib, "bli_arch_string") : NULL;
    if (blis_threads) blis_threads(1);
    collm_pool *pool = collm_pool_create(2); // packs own_chunks' B (untimed); NULL: that column is null
    const shape shapes[] = {
        {"qkv", 0, 1, rows, 3 * C, C, 0},      {"wo", 0, 1, rows, C, C, 0},
        {"gate_up", 0, 1, rows, 2 * F, C, 0},  {"down", 0, 1, rows, C, F, 0},
        {"qkv", 0, 0, rows, C, 3 * C, 1},      {"wo", 0, 0, rows, C, C, 1},
        {"gate_up", 0, 0, rows, C, 2 * F, 1},  {"down", 0, 0, rows, F, C, 1},
        {"qkv", 1, 0, 3 * C, C, rows, 1},      {"wo", 1, 0, C, C, rows, 1},
        {"gate_up", 1, 0, 2 * F, C, rows, 1},  {"down", 1, 0, C, F, rows, 1},
        {"last_q", 0, 1, last, C, C, 0},       {"last_gate_up", 0, 1, last, 2 * F, C, 0},
        {"last_down", 0, 1, last, C, F, 0},
    };
    int64_t most = 0;
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
        int64_t a = (int64_t)shapes[i].m * shapes[i].k, b = (int64_t)shapes[i].k * shapes[i].n,
                c = (int64_t)shapes[i].m * shapes[i].n;
        most = a > most ? a : most, most = b > most ? b : most, most = c > most ? c : most;
    }
    float *A = malloc((size_t)most * sizeof(float)), *B = malloc((size_t)most * sizeof(float)),
          *Cm = malloc((size_t)most * sizeof(float));
    if (!A || !B || !Cm) {
        fprintf(stderr, "gemm_shapes: out of memory\n");
        return 1;
    }
    for (int64_t i = 0; i < most; i++) {
        A[i] = (float)((i * 7) % 13) * 0.01f - 0.06f;
        B[i] = (float)((i * 11) % 17) * 0.01f - 0.08f;
        Cm[i] = 0.0f;
    }
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
        const shape *s = &shapes[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "shape", s->name);
        cJSON_AddStringToObject(o, "form", s->ta ? "TN" : s->tb ? "NT" : "NN");
        cJSON_AddNumberToObject(o, "m", s->m);
        cJSON_AddNumberToObject(o, "n", s->n);
        cJSON_AddNumberToObject(o, "k", s->k);
        for (int w = 0; w < 4; w++) {
            const char *key = w == 0 ? "openblas" : w == 1 ? "blis" : w == 2 ? "own" : "own_chunks";
            if (w == 1 && !blis) {
                cJSON_AddNullToObject(o, key);
                continue;
            }
            double g = time_one(w, blis, s, A, B, Cm, reps, pool);
            if (w == 3 && g == 0.0) {
                cJSON_AddNullToObject(o, key);
                continue;
            }
            cJSON_AddNumberToObject(o, key, (double)(int64_t)(g * 10 + 0.5) / 10);
        }
        char *text = cJSON_PrintUnformatted(o);
        if (text) printf("%s\n", text);
        fflush(stdout);
        cJSON_free(text);
        cJSON_Delete(o);
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "kernels", collm_kernel_isa());
    if (blis_arch && blis_arch_name) cJSON_AddStringToObject(o, "blis_arch", blis_arch_name(blis_arch()));
    else cJSON_AddNullToObject(o, "blis_arch");
    char *text = cJSON_PrintUnformatted(o);
    if (text) printf("%s\n", text);
    cJSON_free(text);
    cJSON_Delete(o);
    free(A);
    free(B);
    free(Cm);
    collm_pool_free(pool);
    return 0;
}
