// Retrieval benchmark: Flat vs HNSW vs IVF on a synthetic clustered item
// catalogue, through collm's retrieval layer (collm_retrieval_index_build /
// collm_retrieval_candidates, i.e. what `recommend` will call).
//
//   build/bench/faiss_bench [--items 1000000] [--dim 64] [--queries 1000] [--k 100]
//                           [--clusters 1000] [--nlist 4096] [--threads 1,2] [--seed 1]
//
// Data: --clusters centres c ~ N(0, I/d); item = s * (c + 0.5 * N(0, I/d)) with
// s ~ lognormal(0, 0.25) (item norms vary, as in a trained MF table: inner
// product is not cosine). Queries are drawn the same way from random centres
// (fresh noise), like user vectors living in the item space.
//
// For each index: build time (train + add, with the largest thread count),
// then --queries single-query searches (top --k, nothing excluded) per thread
// count: mean / p50 / p99 latency, and recall@k against an exact top-k that
// this program computes itself with cblas_sgemm (independent of Faiss).
#include "collm/error.h"
#include "retrieval/faiss_bridge.h"
#include "collm/retrieval.h"
#include "core/rng.h"
#include "collm/threadpool.h"

#include <cblas.h>
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

static int compare_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    if (isnan(x) || isnan(y)) return isnan(x) - isnan(y); // NaN last: a total order
    return (x > y) - (x < y);
}

// Exact top-k item ids (1..n_items-1) per query: sgemm in blocks of queries,
// then an insertion-sorted top-k per row. truth (nq, k).
static int exact_topk(const float *items, int32_t n_items, int d, const float *queries, int nq, int k,
                      int32_t *truth) {
    const int block = 32;
    int64_t n = n_items - 1;
    float *scores = malloc((size_t)block * (size_t)n * sizeof(float)); // (block, n)
    float *best = malloc((size_t)k * sizeof(float));
    if (!scores || !best) {
        free(scores);
        free(best);
        return collm_error(COLLM_ERR_NOMEM, "out of memory for the exact top-k");
    }
    for (int q0 = 0; q0 < nq; q0 += block) {
        int nb = nq - q0 < block ? nq - q0 : block;
        // scores (nb, n) = queries (nb, d) x items[1:] (n, d)^T
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nb, (int)n, d, 1.0f, queries + (size_t)q0 * d, d,
                    items + d, d, 0.0f, scores, (int)n);
        for (int b = 0; b < nb; b++) {
            const float *row = scores + (size_t)b * n;
            int32_t *ids = truth + (size_t)(q0 + b) * k;
            int filled = 0;
            for (int64_t i = 0; i < n; i++) {
                float s = row[i];
                if (filled == k && s <= best[k - 1]) continue;
                int pos = filled < k ? filled++ : k - 1;
                while (pos > 0 && best[pos - 1] < s) {
                    best[pos] = best[pos - 1];
                    ids[pos] = ids[pos - 1];
                    pos--;
                }
                best[pos] = s;
                ids[pos] = (int32_t)(i + 1);
            }
        }
    }
    free(scores);
    free(best);
    return COLLM_OK;
}

typedef struct {
    const char *label;
    const char *factory;
    int nprobe, ef_search;
} bench_config;

int main(int argc, char **argv) {
    int64_t n_items_arg = 1000000;
    int d = 64, nq = 1000, k = 100, n_clusters = 1000, nlist = 4096;
    uint64_t seed = 1;
    const char *threads_text = "1,2";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--items") == 0 && i + 1 < argc) n_items_arg = atoll(argv[++i]);
        else if (strcmp(argv[i], "--dim") == 0 && i + 1 < argc) d = atoi(argv[++i]);
        else if (strcmp(argv[i], "--queries") == 0 && i + 1 < argc) nq = atoi(argv[++i]);
        else if (strcmp(argv[i], "--k") == 0 && i + 1 < argc) k = atoi(argv[++i]);
        else if (strcmp(argv[i], "--clusters") == 0 && i + 1 < argc) n_clusters = atoi(argv[++i]);
        else if (strcmp(argv[i], "--nlist") == 0 && i + 1 < argc) nlist = atoi(argv[++i]);
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) threads_text = argv[++i];
        else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) seed = (uint64_t)atoll(argv[++i]);
        else {
            fprintf(stderr, "usage: faiss_bench [--items N] [--dim D] [--queries Q] [--k K] [--clusters C] "
                            "[--nlist L] [--threads 1,2] [--seed S]\n");
            return 1;
        }
    }
    if (n_items_arg < 2 || n_items_arg > INT32_MAX || d < 1 || nq < 1 || k < 1 || n_clusters < 1 || nlist < 1) {
        fprintf(stderr, "faiss_bench: bad sizes\n");
        return 1;
    }
    int32_t n_items = (int32_t)n_items_arg; // ids 0..n_items-1; 0 is padding
    int thread_counts[8], n_thread_counts = 0, max_threads = 1;
    for (const char *p = threads_text; *p && n_thread_counts < 8;) {
        int t = atoi(p);
        thread_counts[n_thread_counts++] = t < 1 ? 1 : t;
        if (t > max_threads) max_threads = t;
        p = strchr(p, ',');
        if (!p) break;
        p++;
    }

    // data: (n_items, d) items, (nq, d) queries
    double t0 = now_s();
    collm_rng rng;
    collm_rng_seed(&rng, seed);
    float sigma = 1.0f / sqrtf((float)d);
    float *centres = malloc((size_t)n_clusters * d * sizeof(float));
    float *items = malloc((size_t)n_items * d * sizeof(float));
    float *queries = malloc((size_t)nq * d * sizeof(float));
    int32_t *truth = malloc((size_t)nq * k * sizeof(int32_t));
    int32_t *found = malloc((size_t)nq * k * sizeof(int32_t));
    double *latency = malloc((size_t)nq * sizeof(double));
    if (!centres || !items || !queries || !truth || !found || !latency) {
        fprintf(stderr, "faiss_bench: out of memory\n");
        return 1;
    }
    for (int64_t i = 0; i < (int64_t)n_clusters * d; i++) centres[i] = sigma * (float)collm_rng_normal(&rng);
    memset(items, 0, (size_t)d * sizeof(float)); // padding row
    for (int32_t i = 1; i < n_items; i++) {
        const float *c = centres + (size_t)collm_rng_below(&rng, (uint64_t)n_clusters) * d;
        float s = expf(0.25f * (float)collm_rng_normal(&rng));
        for (int j = 0; j < d; j++) items[(size_t)i * d + j] = s * (c[j] + 0.5f * sigma * (float)collm_rng_normal(&rng));
    }
    for (int q = 0; q < nq; q++) {
        const float *c = centres + (size_t)collm_rng_below(&rng, (uint64_t)n_clusters) * d;
        for (int j = 0; j < d; j++) queries[(size_t)q * d + j] = c[j] + 0.5f * sigma * (float)collm_rng_normal(&rng);
    }
    collm_blas_set_threads(max_threads);
    if (exact_topk(items, n_items, d, queries, nq, k, truth) != COLLM_OK) {
        fprintf(stderr, "faiss_bench: %s\n", collm_last_error());
        return 1;
    }
    printf("catalogue: %d items (+ padding id 0), d=%d, %d clusters; %d queries, top-%d; data + exact top-k (sgemm) %.1f s\n",
           n_items - 1, d, n_clusters, nq, k, now_s() - t0);
    printf("%-24s %9s %7s %10s %10s %10s %10s\n", "index", "build_s", "threads", "mean_ms", "p50_ms", "p99_ms",
           "recall@k");

    char ivf_factory[64];
    snprintf(ivf_factory, sizeof ivf_factory, "IVF%d,Flat", nlist);
    char ivf16[64], ivf64[64];
    snprintf(ivf16, sizeof ivf16, "IVF%d nprobe=16", nlist);
    snprintf(ivf64, sizeof ivf64, "IVF%d nprobe=64", nlist);
    // consecutive configs with the same factory share one build
    bench_config configs[] = {
        {"Flat", "Flat", 0, 0},
        {"HNSW32 efSearch=128", "HNSW32,Flat", 0, 128},
        {"HNSW32 efSearch=256", "HNSW32,Flat", 0, 256},
        {ivf16, ivf_factory, 16, 0},
        {ivf64, ivf_factory, 64, 0},
    };
    int n_configs = (int)(sizeof configs / sizeof configs[0]);
    collm_retrieval_index *index = NULL;
    double build_s = 0;
    for (int c = 0; c < n_configs; c++) {
        if (c == 0 || strcmp(configs[c].factory, configs[c - 1].factory) != 0) {
            collm_retrieval_index_free(index);
            collm_retrieval_build_options opt;
            collm_retrieval_build_options_default(&opt);
            opt.factory = configs[c].factory;
            opt.train_max = (int64_t)nlist * 64; // Faiss's k-means samples 256 per list anyway
            collm_faiss_set_threads(max_threads);
            collm_blas_set_threads(max_threads);
            double b0 = now_s();
            index = collm_retrieval_index_build(items, n_items, d, &opt);
            build_s = now_s() - b0;
            if (!index) {
                fprintf(stderr, "faiss_bench: %s: %s\n", configs[c].factory, collm_last_error());
                return 1;
            }
        }
        collm_retrieval_index_set_search_params(index, configs[c].nprobe, configs[c].ef_search);
        for (int t = 0; t < n_thread_counts; t++) {
            collm_faiss_set_threads(thread_counts[t]);
            collm_blas_set_threads(thread_counts[t]);
            int n_found = 0;
            // one warm-up query
            collm_retrieval_candidates(index, queries, d, NULL, 0, k, found, NULL, &n_found);
            for (int q = 0; q < nq; q++) {
                double q0 = now_s();
                int rc = collm_retrieval_candidates(index, queries + (size_t)q * d, d, NULL, 0, k, found + (size_t)q * k,
                                              NULL, &n_found);
                latency[q] = (now_s() - q0) * 1e3;
                if (rc != COLLM_OK) {
                    fprintf(stderr, "faiss_bench: %s\n", collm_last_error());
                    return 1;
                }
                for (int j = n_found; j < k; j++) found[(size_t)q * k + j] = -1;
            }
            double hits = 0, mean = 0;
            for (int q = 0; q < nq; q++) {
                mean += latency[q];
                // ids in each list are distinct: count the found ids present in the truth
                for (int a = 0; a < k; a++)
                    for (int b = 0; b < k; b++)
                        if (found[(size_t)q * k + a] == truth[(size_t)q * k + b]) {
                            hits++;
                            break;
                        }
            }
            qsort(latency, (size_t)nq, sizeof(double), compare_double);
            printf("%-24s %9.2f %7d %10.3f %10.3f %10.3f %10.4f\n", configs[c].label, build_s, thread_counts[t],
                   mean / nq, latency[nq / 2], latency[(int)((nq - 1) * 0.99)], hits / ((double)nq * k));
            fflush(stdout);
        }
    }
    collm_retrieval_index_free(index);
    free(centres);
    free(items);
    free(queries);
    free(truth);
    free(found);
    free(latency);
    return 0;
}
