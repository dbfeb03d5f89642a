// Core utilities: RNG determinism and moments, the thread pool's coverage of
// a range, atomic file writes, error messages.
#include "collm/error.h"
#include "collm/fileio.h"
#include "core/rng.h"
#include "collm/threadpool.h"
#include "test.h"

#include <stdint.h>
#include <sys/stat.h>

static void test_rng(void) {
    collm_rng a, b;
    collm_rng_seed(&a, 42);
    collm_rng_seed(&b, 42);
    int same = 1;
    for (int i = 0; i < 100; i++) same &= collm_rng_next(&a) == collm_rng_next(&b);
    CHECK(same);
    collm_rng_seed(&b, 43);
    CHECK(collm_rng_next(&a) != collm_rng_next(&b));
    double sum = 0, sum2 = 0;
    int n = 200000;
    for (int i = 0; i < n; i++) {
        double x = collm_rng_normal(&a);
        sum += x;
        sum2 += x * x;
    }
    CHECK_NEAR(sum / n, 0.0, 0.01);
    CHECK_NEAR(sum2 / n, 1.0, 0.02);
    int counts[7] = {0};
    for (int i = 0; i < 70000; i++) counts[collm_rng_below(&a, 7)]++;
    int ok = 1;
    for (int i = 0; i < 7; i++) ok &= counts[i] > 9500 && counts[i] < 10500;
    CHECK(ok);
    int32_t perm[100];
    for (int i = 0; i < 100; i++) perm[i] = i;
    collm_rng_shuffle_i32(&a, perm, 100);
    int seen[100] = {0}, moved = 0;
    for (int i = 0; i < 100; i++) {
        seen[perm[i]]++;
        moved += perm[i] != i;
    }
    ok = 1;
    for (int i = 0; i < 100; i++) ok &= seen[i] == 1;
    CHECK(ok);
    CHECK(moved > 50);
}

typedef struct {
    int *hits;
    int max_thread;
} pool_ctx;

static void mark(void *ctx_, int64_t begin, int64_t end, int thread_index) {
    pool_ctx *ctx = ctx_;
    for (int64_t i = begin; i < end; i++) ctx->hits[i]++;
    if (thread_index > ctx->max_thread) ctx->max_thread = thread_index; // racy max is fine for a >0 check
}

static void test_pool(void) {
    collm_pool *pool = collm_pool_create(3);
    CHECK(pool != NULL);
    CHECK(collm_pool_size(pool) == 3);
    int hits[1000];
    for (int round = 0; round < 50; round++) {
        memset(hits, 0, sizeof hits);
        pool_ctx ctx = {hits, 0};
        int n = 1 + round * 19;
        collm_pool_for(pool, n, 1, mark, &ctx);
        int ok = 1;
        for (int i = 0; i < n; i++) ok &= hits[i] == 1;
        for (int i = n; i < 1000; i++) ok &= hits[i] == 0;
        CHECK(ok);
        if (n >= 3) CHECK(ctx.max_thread > 0);
    }
    collm_pool_free(pool);
    // NULL pool runs serially
    memset(hits, 0, sizeof hits);
    pool_ctx ctx = {hits, 0};
    collm_pool_for(NULL, 10, 1, mark, &ctx);
    CHECK(hits[9] == 1 && ctx.max_thread == 0);
}

static int write_hello(FILE *f, void *ctx) {
    (void)ctx;
    return collm_fwrite_all(f, "hello", 5);
}

static int write_fail(FILE *f, void *ctx) {
    (void)ctx;
    collm_fwrite_all(f, "partial", 7);
    return collm_error(COLLM_ERR_IO, "simulated failure");
}

static void test_atomic_write(void) {
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/core", test_tmp_dir());
    CHECK(collm_mkdir_p(dir) == COLLM_OK);
    snprintf(path, sizeof path, "%s/atomic.txt", dir);
    CHECK(collm_write_atomic(path, write_hello, NULL) == COLLM_OK);
    char *buf;
    size_t n;
    CHECK(collm_read_file(path, &buf, &n) == COLLM_OK);
    CHECK(n == 5 && memcmp(buf, "hello", 5) == 0);
    free(buf);
    // a failing writer leaves the old file untouched
    CHECK(collm_write_atomic(path, write_fail, NULL) == COLLM_ERR_IO);
    CHECK(collm_read_file(path, &buf, &n) == COLLM_OK);
    CHECK(n == 5 && memcmp(buf, "hello", 5) == 0);
    free(buf);
    // errors name the file
    CHECK(collm_read_file("/nonexistent/x", &buf, &n) == COLLM_ERR_IO);
    CHECK(strstr(collm_last_error(), "/nonexistent/x") != NULL);
    collm_mapped_file map;
    CHECK(collm_map_file(path, &map) == COLLM_OK && map.size == 5);
    collm_unmap_file(&map);
}

int main(void) {
    test_rng();
    test_pool();
    test_atomic_write();
    return test_report();
}
