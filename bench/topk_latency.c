// Per-user latency of the product's top-K path (collm_recommend_for_user:
// retrieve N candidates + LLM re-rank with a shared prefix + fused order),
// p50 / p99 / mean wall time over users, for several N, and the mean CPU time
// of the calling thread (with THREADS = 1, the latency on an idle core).
//   topk_latency CKPT INDEX DATA_DIR [USERS=100] [THREADS=1] [N...=50 100 200]
// Users: the first USERS ids with a history in the dataset. One context,
// requests one after another; THREADS = BLAS threads and attention pool.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench_topk.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    if (isnan(x) || isnan(y)) return isnan(x) - isnan(y); // NaN last: a total order
    return (x > y) - (x < y);
}

// Nearest-rank percentile q (0..100) of sorted v (n >= 1).
static double percentile(const double *v, int n, double q) {
    int i = (int)(q / 100.0 * n + 0.999999) - 1;
    return v[i < 0 ? 0 : i >= n ? n - 1 : i];
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: topk_latency CKPT INDEX DATA_DIR [USERS=100] [THREADS=1] [N...=50 100 200]\n");
        return 1;
    }
    int n_users = argc > 4 ? atoi(argv[4]) : 100, threads = argc > 5 ? atoi(argv[5]) : 1;
    int sizes[16] = {50, 100, 200}, n_sizes = 3;
    if (argc > 6) {
        n_sizes = 0;
        for (int i = 6; i < argc && n_sizes < 16; i++) sizes[n_sizes++] = atoi(argv[i]);
    }
    if (n_users < 1 || threads < 1) {
        fprintf(stderr, "topk_latency: USERS and THREADS must be >= 1\n");
        return 1;
    }
    collm_blas_set_threads(threads);
    collm_retrieval_set_threads(threads);
    collm_pool *pool = threads > 1 ? collm_pool_create(threads) : NULL;
    bench_topk b;
    if (bench_topk_open(&b, "topk_latency", argv[1], argv[2], argv[3], pool)) return 1;
    collm_model *m = b.m;
    const collm_rec_dataset *ds = b.ds;
    double *lat = malloc((size_t)n_users * sizeof(double)), *ret = malloc((size_t)n_users * sizeof(double));
    double *cpu = malloc((size_t)n_users * sizeof(double));
    collm_recommend_item *out = malloc(10 * sizeof *out);
    if (!lat || !ret || !cpu || !out) {
        fprintf(stderr, "topk_latency: %s\n", collm_last_error());
        return 1;
    }
    float lambda, pop;
    collm_rerank_weights(m, &lambda, &pop, NULL);
    printf("%d threads; fused order lambda %g popularity %g; k = 10\n", threads, lambda, pop);
    printf("%6s %6s %10s %10s %10s %12s %12s\n", "N", "users", "p50 ms", "p99 ms", "mean ms", "retrieve ms", "cpu ms");
    for (int z = 0; z < n_sizes; z++) {
        int done = 0;
        for (int32_t u = 1; done < n_users && u < ds->n_users; u++) {
            const int32_t *his;
            int64_t n_his;
            if (collm_recommend_user_history(b.h, u, &his, &n_his) != COLLM_OK) continue;
            collm_recommend_request req = bench_topk_request(u, sizes[z]);
            collm_recommend_info info;
            double t0 = bench_now(), c0 = bench_cpu();
            if (collm_recommend_for_user(m, b.index, ds->items, b.h, &req, b.ctx, out, &info)) {
                fprintf(stderr, "topk_latency: user %d: %s\n", u, collm_last_error());
                return 1;
            }
            lat[done] = 1e3 * (bench_now() - t0);
            cpu[done] = 1e3 * (bench_cpu() - c0);
            ret[done++] = 1e3 * info.retrieve_s;
        }
        double mean = 0, mean_ret = 0, mean_cpu = 0;
        for (int i = 0; i < done; i++) {
            mean += lat[i] / done;
            mean_ret += ret[i] / done;
            mean_cpu += cpu[i] / done;
        }
        qsort(lat, (size_t)done, sizeof *lat, cmp_double);
        printf("%6d %6d %10.1f %10.1f %10.1f %12.3f %12.1f\n", sizes[z], done, percentile(lat, done, 50),
               percentile(lat, done, 99), mean, mean_ret, mean_cpu);
    }
    free(lat);
    free(ret);
    free(cpu);
    free(out);
    bench_topk_close(&b);
    collm_pool_free(pool);
    return 0;
}
