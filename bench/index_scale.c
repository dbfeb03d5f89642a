// A catalogue beyond one exact index: builds a Faiss index from a factory
// string (optionally in K shards) over a synthetic catalogue of clustered
// item vectors and reports, as one JSON line:
//   build_seconds, index_bytes (the files written: what a server holds in
//   memory), rss_delta_bytes (resident memory the build added),
//   recall_at_100 against an exact Flat index on a sample of queries, and
//   the latency of one query (top 100, one thread): mean, p50, p99, and the
//   process's peak resident memory (the vectors + the index + Faiss's work).
// usage: index_scale N_ITEMS DIM FACTORY SHARDS NPROBE N_QUERIES OUT_PATH [TRAIN_MAX [BUILD_THREADS [REF_PATH]]]
// (bench/index_scale.sh runs it.) The exact reference is a Flat index built
// after the tested one is freed, so peak memory is the vectors + one index.
// REF_PATH caches it: the first run that finds no file there writes the exact
// top 100 of every query and the Flat figures, later runs (the same items and
// queries: the generator is seeded) read them instead of a second exact
// search, which takes minutes at 10 M items. The factory "Flat" in one shard
// is the reference itself. BUILD_THREADS (default 1): Faiss threads while
// building; queries always run on one.
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "collm/error.h"
#include "collm/retrieval.h"

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

// A "Key: N kB" line of /proc/self/status in bytes (VmRSS: resident now,
// VmHWM: the peak), 0 when absent.
static long status_bytes(const char *key) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = 0;
    size_t n = strlen(key);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, key, n) == 0 && line[n] == ':' && sscanf(line + n + 1, "%ld", &kb) == 1) break;
    if (f) fclose(f);
    return kb * 1024;
}

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static double unit(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17; // xorshift64
    return (double)(rng >> 11) / 9007199254740992.0;
}
static float gauss(void) {
    double u = unit() + 1e-12, v = unit();
    return (float)(sqrt(-2 * log(u)) * cos(6.283185307179586 * v));
}

static long file_bytes(const char *path, int shards) {
    struct stat st;
    long total = stat(path, &st) == 0 ? (long)st.st_size : 0;
    char p[1024];
    for (int i = 0; shards > 1 && i < shards; i++) {
        snprintf(p, sizeof p, "%s.shard%d", path, i);
        if (stat(p, &st) == 0) total += (long)st.st_size;
    }
    return total;
}

// The exact reference of a catalogue: the top K of each query and the Flat
// index's figures.
typedef struct {
    double build_s, latency_ms; // Flat build seconds, mean query latency
    long bytes;                 // Flat index file
} flat_ref;

static int ref_read(const char *path, int32_t *ref, int64_t n, flat_ref *fr) {
    FILE *f = path ? fopen(path, "rb") : NULL;
    if (!f) return 0;
    int ok = fread(fr, sizeof *fr, 1, f) == 1 && fread(ref, sizeof *ref, (size_t)n, f) == (size_t)n;
    fclose(f);
    return ok;
}

static void ref_write(const char *path, const int32_t *ref, int64_t n, const flat_ref *fr) {
    FILE *f = path ? fopen(path, "wb") : NULL;
    if (!f) return;
    int ok = fwrite(fr, sizeof *fr, 1, f) == 1 && fwrite(ref, sizeof *ref, (size_t)n, f) == (size_t)n;
    if (fclose(f) != 0 || !ok) remove(path);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc < 8) {
        fprintf(stderr, "usage: index_scale N_ITEMS DIM FACTORY SHARDS NPROBE N_QUERIES OUT_PATH [TRAIN_MAX [BUILD_THREADS "
                        "[REF_PATH]]]\n");
        return 2;
    }
    int32_t n_items = (int32_t)atol(argv[1]);
    int d = atoi(argv[2]), shards = atoi(argv[4]), nprobe = atoi(argv[5]), nq = atoi(argv[6]);
    const char *factory = argv[3], *out = argv[7];
    int64_t train_max = argc > 8 ? atoll(argv[8]) : 0;
    int build_threads = argc > 9 ? atoi(argv[9]) : 1;
    const char *ref_path = argc > 10 ? argv[10] : NULL;
    const int is_flat = strcmp(factory, "Flat") == 0 && shards <= 1;
    enum { K = 100, CENTRES = 1000 };
    // items around CENTRES cluster centres (a CF table is far from uniform); row 0 padding
    float *items = malloc((size_t)n_items * d * sizeof(float)), *centres = malloc((size_t)CENTRES * d * sizeof(float));
    float *queries = malloc((size_t)nq * d * sizeof(float));
    int32_t *got = malloc((size_t)nq * K * sizeof(int32_t)), *ref = malloc((size_t)nq * K * sizeof(int32_t));
    double *lat = malloc((size_t)nq * sizeof(double));
    if (!items || !centres || !queries || !got || !ref || !lat) return 1;
    for (int64_t i = 0; i < (int64_t)CENTRES * d; i++) centres[i] = gauss();
    memset(items, 0, (size_t)d * sizeof(float));
    for (int64_t i = 1; i < n_items; i++) {
        const float *c = centres + (int64_t)(unit() * CENTRES) * d;
        for (int j = 0; j < d; j++) items[i * d + j] = c[j] + 0.5f * gauss();
    }
    for (int64_t i = 0; i < (int64_t)nq * d; i++) queries[i] = gauss();

    collm_retrieval_build_options o;
    collm_retrieval_build_options_default(&o);
    o.factory = factory;
    o.shards = shards;
    o.nprobe = nprobe;
    o.train_max = train_max;
    flat_ref fr = {0};
    int have_ref = ref_read(ref_path, ref, (int64_t)nq * K, &fr);
    long rss0 = status_bytes("VmRSS");
    collm_retrieval_set_threads(build_threads);
    double t0 = now_s();
    collm_retrieval_index *ix = collm_retrieval_index_build(items, n_items, d, &o);
    double build_s = now_s() - t0;
    collm_retrieval_set_threads(1);
    if (!ix) {
        fprintf(stderr, "index_scale: %s\n", collm_last_error());
        return 1;
    }
    long rss_delta = status_bytes("VmRSS") - rss0;
    if (collm_retrieval_index_save(ix, out)) {
        fprintf(stderr, "index_scale: %s\n", collm_last_error());
        return 1;
    }
    long bytes = file_bytes(out, shards);
    int found;
    for (int q = 0; q < nq; q++) {
        double t = now_s();
        if (collm_retrieval_candidates(ix, queries + (int64_t)q * d, d, NULL, 0, K, got + (int64_t)q * K, NULL, &found))
            return 1;
        lat[q] = now_s() - t;
    }
    collm_retrieval_index_free(ix);
    double mean = 0;
    for (int q = 0; q < nq; q++) mean += lat[q];
    mean /= nq;
    if (is_flat && !have_ref) { // this index is the reference
        memcpy(ref, got, (size_t)nq * K * sizeof *ref);
        fr = (flat_ref){.build_s = build_s, .latency_ms = 1e3 * mean, .bytes = bytes};
        ref_write(ref_path, ref, (int64_t)nq * K, &fr);
    } else if (!have_ref) { // the exact reference, built after the tested index is freed
        collm_retrieval_build_options_default(&o);
        t0 = now_s();
        collm_retrieval_index *flat = collm_retrieval_index_build(items, n_items, d, &o);
        if (!flat) return 1;
        fr.build_s = now_s() - t0;
        double flat_lat = 0;
        for (int q = 0; q < nq; q++) {
            double t = now_s();
            if (collm_retrieval_candidates(flat, queries + (int64_t)q * d, d, NULL, 0, K, ref + (int64_t)q * K, NULL,
                                           &found))
                return 1;
            flat_lat += now_s() - t;
        }
        collm_retrieval_index_free(flat);
        fr.latency_ms = 1e3 * flat_lat / nq;
        fr.bytes = (long)(n_items - 1) * d * 4; // its vectors (not saved here)
        ref_write(ref_path, ref, (int64_t)nq * K, &fr);
    }
    double recall = 0;
    for (int q = 0; q < nq; q++) {
        int common = 0;
        for (int a = 0; a < K; a++)
            for (int b = 0; b < K; b++) common += got[q * K + a] == ref[q * K + b];
        recall += (double)common / K;
    }
    recall /= nq;
    qsort(lat, (size_t)nq, sizeof *lat, cmp_double);
    printf("{\"items\":%d,\"dim\":%d,\"factory\":\"%s\",\"shards\":%d,\"nprobe\":%d,\"queries\":%d,\"build_seconds\":%.2f,"
           "\"index_bytes\":%ld,\"rss_delta_bytes\":%ld,\"vectors_bytes\":%ld,\"recall_at_100\":%.4f,\"latency_ms_mean\":%.3f,"
           "\"latency_ms_p50\":%.3f,\"latency_ms_p99\":%.3f,\"peak_rss_bytes\":%ld,\"build_threads\":%d,"
           "\"flat_build_seconds\":%.2f,\"flat_bytes\":%ld,\"flat_latency_ms_mean\":%.3f}\n",
           n_items - 1, d, factory, shards, nprobe, nq, build_s, bytes, rss_delta, (long)(n_items - 1) * d * 4, recall,
           1e3 * mean, 1e3 * lat[nq / 2], 1e3 * lat[(int)(nq * 0.99)], status_bytes("VmHWM"), build_threads, fr.build_s, fr.bytes,
           fr.latency_ms);
    free(items);
    free(centres);
    free(queries);
    free(got);
    free(ref);
    free(lat);
    return 0;
}
