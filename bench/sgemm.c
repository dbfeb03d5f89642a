// The machine's sgemm rate through the BLAS collm links (the ceiling
// bench/train_speed.sh compares training against): cblas_sgemm N^3, one
// warm-up, then the best of --reps, on --threads BLAS threads. Prints one
// JSON line: {"sgemm_gflops": G, "n": N, "threads": T, "reps": R}.
//
//   build/bench/sgemm [--threads 2] [--n 2048] [--reps 5]
#include "collm/threadpool.h"

#include <cblas.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    int threads = 2, n = 2048, reps = 5;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--n") == 0 && i + 1 < argc) n = atoi(argv[++i]);
        else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) reps = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: sgemm [--threads N] [--n N] [--reps R]\n");
            return 1;
        }
    }
    if (threads < 1 || n < 1 || n > 16384 || reps < 1) {
        fprintf(stderr, "sgemm: --threads and --reps must be >= 1, --n in [1, 16384]\n");
        return 1;
    }
    collm_blas_set_threads(threads);
    size_t nn = (size_t)n * n;
    float *a = malloc(nn * sizeof(float)), *b = malloc(nn * sizeof(float)), *c = malloc(nn * sizeof(float));
    if (!a || !b || !c) {
        fprintf(stderr, "sgemm: out of memory for three %dx%d matrices\n", n, n);
        return 1;
    }
    for (size_t i = 0; i < nn; i++) {
        a[i] = (float)((i * 7) % 13) * 0.01f;
        b[i] = (float)((i * 11) % 17) * 0.01f;
    }
    double best = 1e30;
    for (int r = 0; r <= reps; r++) { // r = 0: warm-up
        double t0 = now_s();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        double t = now_s() - t0;
        if (r > 0 && t < best) best = t;
    }
    // one JSON object, written with cJSON (a zero time would print inf: null instead)
    double gflops = 2.0 * n * (double)nn / best / 1e9;
    cJSON *o = cJSON_CreateObject();
    if (isfinite(gflops)) cJSON_AddNumberToObject(o, "sgemm_gflops", round(gflops * 100) / 100);
    else cJSON_AddNullToObject(o, "sgemm_gflops");
    cJSON_AddNumberToObject(o, "n", n);
    cJSON_AddNumberToObject(o, "threads", threads);
    cJSON_AddNumberToObject(o, "reps", reps);
    char *text = cJSON_PrintUnformatted(o);
    if (text) printf("%s\n", text);
    cJSON_free(text);
    cJSON_Delete(o);
    free(a);
    free(b);
    free(c);
    return 0;
}
