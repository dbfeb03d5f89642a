// Core utilities: RNG determinism and moments, the thread pool's coverage of
// a range, atomic file writes, error messages.
#include "collm/error.h"
#include "collm/fileio.h"
#include "core/rng.h"
#include "collm/threadpool.h"
#include "test.h"

#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

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
    int used[8]; // used[t] = 1 when thread t ran a part (each part writes only its own slot)
} pool_ctx;

static void mark(void *ctx_, int64_t begin, int64_t end, int thread_index) {
    pool_ctx *ctx = ctx_;
    for (int64_t i = begin; i < end; i++) ctx->hits[i]++;
    ctx->used[thread_index] = 1;
}

static int workers_used(const pool_ctx *ctx) {
    int n = 0;
    for (int t = 1; t < 8; t++) n += ctx->used[t];
    return n;
}

static void test_pool(void) {
    collm_pool *pool = collm_pool_create(3);
    CHECK(pool != NULL);
    CHECK(collm_pool_size(pool) == 3);
    int hits[1000];
    for (int round = 0; round < 50; round++) {
        memset(hits, 0, sizeof hits);
        pool_ctx ctx = {hits, {0}};
        int n = 1 + round * 19;
        collm_pool_for(pool, n, 1, mark, &ctx);
        int ok = 1;
        for (int i = 0; i < n; i++) ok &= hits[i] == 1;
        for (int i = n; i < 1000; i++) ok &= hits[i] == 0;
        CHECK(ok);
        if (n >= 3) CHECK(workers_used(&ctx) == 2);
    }
    collm_pool_free(pool);
    // NULL pool runs serially
    memset(hits, 0, sizeof hits);
    pool_ctx ctx = {hits, {0}};
    collm_pool_for(NULL, 10, 1, mark, &ctx);
    CHECK(hits[9] == 1 && ctx.used[0] == 1 && workers_used(&ctx) == 0);
}

// collm_pool_for_each: every item exactly once, one item per call, on
// threads of the pool; serial on the caller without a pool.
static void mark_one(void *ctx_, int64_t begin, int64_t end, int thread_index) {
    pool_ctx *ctx = ctx_;
    if (end != begin + 1) ctx->hits[999] = -1000; // one item per call: fails the check below
    mark(ctx_, begin, end, thread_index);
}

static void test_pool_for_each(void) {
    collm_pool *pool = collm_pool_create(3);
    int hits[1000];
    for (int round = 0; round < 40; round++) {
        memset(hits, 0, sizeof hits);
        pool_ctx ctx = {hits, {0}};
        int n = 1 + round * 23;
        collm_pool_for_each(pool, n, mark_one, &ctx);
        int ok = 1;
        for (int i = 0; i < 1000; i++) ok &= hits[i] == (i < n);
        CHECK_MSG(ok, "collm_pool_for_each over %d items", n);
    }
    // no pool: serial on the caller, the whole range in one call
    memset(hits, 0, sizeof hits);
    pool_ctx ctx = {hits, {0}};
    collm_pool_for_each(NULL, 10, mark, &ctx);
    CHECK(hits[9] == 1 && ctx.used[0] == 1 && workers_used(&ctx) == 0);
    collm_pool_free(pool);
}

// Several threads submit jobs to one pool at the same time: every job must
// cover exactly its own range with its own fn/ctx (tagged values), whatever
// the interleaving.
typedef struct {
    int32_t *out;
    int32_t tag;
} tag_job;

static void tag_task(void *ctx_, int64_t begin, int64_t end, int thread_index) {
    (void)thread_index;
    tag_job *j = ctx_;
    for (int64_t i = begin; i < end; i++) j->out[i] += j->tag; // += : a doubled range shows as 2*tag
}

enum { SUBMITTERS = 4, JOBS_PER_SUBMITTER = 200, JOB_MAX = 300 };

typedef struct {
    collm_pool *pool;
    int id;
    int bad_jobs; // jobs whose output was not exactly tag over [0, n) and 0 beyond
} submitter;

static void *submit_jobs(void *arg) {
    submitter *s = arg;
    int32_t out[JOB_MAX + 8];
    for (int j = 0; j < JOBS_PER_SUBMITTER; j++) {
        int n = 3 + (j * 37 + s->id * 11) % JOB_MAX;
        memset(out, 0, sizeof out);
        tag_job job = {out, s->id * 100000 + j + 1};
        collm_pool_for(s->pool, n, 1, tag_task, &job);
        int ok = 1;
        for (int i = 0; i < n; i++) ok &= out[i] == job.tag;
        for (int i = n; i < JOB_MAX + 8; i++) ok &= out[i] == 0;
        s->bad_jobs += !ok;
    }
    return NULL;
}

// A task that submits to the pool it runs on: runs serially, no deadlock.
typedef struct {
    collm_pool *pool;
    int hits[64];
} nested_ctx;

static void nested_inner(void *ctx_, int64_t begin, int64_t end, int thread_index) {
    (void)thread_index;
    int *hits = ctx_;
    for (int64_t i = begin; i < end; i++) hits[i]++;
}

static void nested_outer(void *ctx_, int64_t begin, int64_t end, int thread_index) {
    (void)thread_index;
    nested_ctx *c = ctx_;
    for (int64_t i = begin; i < end; i++) collm_pool_for(c->pool, 1, 1, nested_inner, &c->hits[i]);
    int local[16] = {0};
    collm_pool_for(c->pool, 16, 1, nested_inner, local); // big enough to split if it were not nested
    for (int i = 0; i < 16; i++)
        if (local[i] != 1) c->hits[begin] += 1000;
}

static void test_pool_concurrent(void) {
    collm_pool *pool = collm_pool_create(3);
    CHECK(pool != NULL);
    pthread_t th[SUBMITTERS];
    submitter sub[SUBMITTERS];
    for (int t = 0; t < SUBMITTERS; t++) {
        sub[t] = (submitter){pool, t, 0};
        CHECK(pthread_create(&th[t], NULL, submit_jobs, &sub[t]) == 0);
    }
    int bad = 0;
    for (int t = 0; t < SUBMITTERS; t++) {
        pthread_join(th[t], NULL);
        bad += sub[t].bad_jobs;
    }
    CHECK_MSG(bad == 0, "%d of %d jobs submitted concurrently got wrong output", bad, SUBMITTERS * JOBS_PER_SUBMITTER);

    nested_ctx nc;
    memset(&nc, 0, sizeof nc);
    nc.pool = pool;
    collm_pool_for(pool, 64, 1, nested_outer, &nc);
    int ok = 1;
    for (int i = 0; i < 64; i++) ok &= nc.hits[i] == 1;
    CHECK_MSG(ok, "nested collm_pool_for on the same pool");
    collm_pool_free(pool);
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
    CHECK(collm_read_file("/nonexistent/x", &buf, &n) == COLLM_ERR_NOT_FOUND);
    CHECK(strstr(collm_last_error(), "/nonexistent/x") != NULL);
    CHECK(collm_last_error_code() == COLLM_ERR_NOT_FOUND);
    CHECK(collm_map_file("/nonexistent/x", &(collm_mapped_file){0}) == COLLM_ERR_NOT_FOUND);
    CHECK(collm_read_file(dir, &buf, &n) == COLLM_ERR_IO); // a folder exists: not NOT_FOUND
    collm_mapped_file map;
    CHECK(collm_map_file(path, &map) == COLLM_OK && map.size == 5);
    collm_unmap_file(&map);
}

// Code, field and message travel together; prefixing keeps the field; a
// new error without a field clears it.
static void test_error_state(void) {
    collm_clear_error();
    CHECK(collm_last_error_code() == COLLM_OK && collm_last_error_field() == NULL);
    CHECK_STR(collm_last_error(), "");
    CHECK(collm_error_field(COLLM_ERR_RANGE, "k", "k: %d exceeds %d", 20, 10) == COLLM_ERR_RANGE);
    CHECK(collm_last_error_code() == COLLM_ERR_RANGE);
    CHECK_STR(collm_last_error_field(), "k");
    CHECK_STR(collm_last_error(), "k: 20 exceeds 10");
    CHECK(collm_error_prefix(COLLM_ERR_ARG, "request %d", 3) == COLLM_ERR_ARG);
    CHECK_STR(collm_last_error(), "request 3: k: 20 exceeds 10");
    CHECK_STR(collm_last_error_field(), "k");
    CHECK(collm_last_error_code() == COLLM_ERR_ARG);
    CHECK(collm_error(COLLM_ERR_IO, "disk") == COLLM_ERR_IO);
    CHECK(collm_last_error_field() == NULL && collm_last_error_code() == COLLM_ERR_IO);
    collm_clear_error();
    CHECK(collm_last_error_code() == COLLM_OK && collm_last_error()[0] == '\0');
    // every code has its own description; out-of-enum values too
    const int codes[] = {COLLM_OK, COLLM_ERR, COLLM_ERR_IO, COLLM_ERR_FORMAT, COLLM_ERR_ARG, COLLM_ERR_NOMEM,
                         COLLM_ERR_NOT_FOUND, COLLM_ERR_UNSUPPORTED, COLLM_ERR_BUSY, COLLM_ERR_RANGE,
                         COLLM_ERR_TOO_LARGE};
    int n_codes = (int)(sizeof codes / sizeof codes[0]), distinct = 1;
    for (int i = 0; i < n_codes; i++)
        for (int j = 0; j < i; j++) distinct &= strcmp(collm_strerror(codes[i]), collm_strerror(codes[j])) != 0;
    CHECK(distinct);
    CHECK_STR(collm_strerror(COLLM_ERR_NOT_FOUND), "not found");
    CHECK_STR(collm_strerror(-999), "unknown error code");
    // the values are ABI: they never move
    CHECK(COLLM_ERR_IO == -2 && COLLM_ERR_FORMAT == -3 && COLLM_ERR_ARG == -4 && COLLM_ERR_NOMEM == -5);
}

// UTF-8: hand-made valid and invalid sequences (table 3-7 of the Unicode standard).
static void test_utf8(void) {
    CHECK(collm_utf8_valid("abc", 3));
    CHECK(collm_utf8_valid("caf\xC3\xA9", 5));                 // é
    CHECK(collm_utf8_valid("\xE2\x82\xAC", 3));                // €
    CHECK(collm_utf8_valid("\xF0\x9F\x98\x80", 4));            // U+1F600
    CHECK(!collm_utf8_valid("caf\xE9", 4));                     // Latin-1 é
    CHECK(!collm_utf8_valid("\x80", 1));                        // stray continuation
    CHECK(!collm_utf8_valid("\xC0\xAF", 2));                    // overlong '/'
    CHECK(!collm_utf8_valid("\xE0\x80\xAF", 3));                // overlong
    CHECK(!collm_utf8_valid("\xED\xA0\x80", 3));                // surrogate U+D800
    CHECK(!collm_utf8_valid("\xF4\x90\x80\x80", 4));            // U+110000
    CHECK(!collm_utf8_valid("\xE2\x82", 2));                    // truncated
    char out[32];
    CHECK(collm_utf8_sanitize(out, sizeof out, "caf\xE9!", 5) == 7);
    CHECK_STR(out, "caf\xEF\xBF\xBD!");
    // a character that does not fit is left out whole (cap 5: "ab" + 3-byte € needs 6 with the NUL)
    CHECK(collm_utf8_sanitize(out, 5, "ab\xE2\x82\xAC", 5) == 2);
    CHECK_STR(out, "ab");
    // messages: invalid bytes replaced; a message longer than the buffer is cut between characters
    collm_error(COLLM_ERR_ARG, "unknown field \"%s\"", "\xFF\xFEx");
    CHECK(collm_utf8_valid(collm_last_error(), strlen(collm_last_error())));
    CHECK(strstr(collm_last_error(), "\xEF\xBF\xBD\xEF\xBF\xBDx") != NULL);
    for (int shift = 0; shift < 3; shift++) {
        char big[1100];
        size_t k = 0;
        for (int i = 0; i < shift; i++) big[k++] = 'a';
        while (k + 3 < sizeof big) big[k++] = '\xE2', big[k++] = '\x82', big[k++] = '\xAC';
        big[k] = '\0';
        collm_error(COLLM_ERR_ARG, "%s", big);
        size_t len = strlen(collm_last_error());
        CHECK(len > 1000 && collm_utf8_valid(collm_last_error(), len));
        CHECK(strstr(collm_last_error(), "\xEF\xBF\xBD") == NULL); // cut, not replaced
    }
    collm_error_field(COLLM_ERR_ARG, "\xE9t\xE9", "x");
    CHECK_STR(collm_last_error_field(), "\xEF\xBF\xBDt\xEF\xBF\xBD");
    collm_clear_error();
}

// The temp file of an atomic write: the write_fn sees its own stream's name.
static char seen_tmp[2][1024];
static int write_note_name(FILE *f, void *ctx) {
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fileno(f));
    ssize_t n = readlink(link, seen_tmp[*(int *)ctx], sizeof seen_tmp[0] - 1);
    seen_tmp[*(int *)ctx][n > 0 ? n : 0] = '\0';
    return collm_fwrite_all(f, "new", 3);
}

// Issue 8: the temp file was "<path>.tmp.<pid>" opened with fopen("wb"): a
// symlink planted at that predictable name was followed and its target
// overwritten. Now mkstemp in the target folder.
static void test_atomic_write_temp_names(void) {
    char dir[512], path[600], victim[600], planted[700];
    snprintf(dir, sizeof dir, "%s/core-tmp", test_tmp_dir());
    CHECK(collm_mkdir_p(dir) == COLLM_OK);
    snprintf(path, sizeof path, "%s/out.bin", dir);
    snprintf(victim, sizeof victim, "%s/victim.txt", dir);
    snprintf(planted, sizeof planted, "%s.tmp.%ld", path, (long)getpid());
    CHECK(collm_write_atomic(victim, write_hello, NULL) == COLLM_OK);
    unlink(planted);
    CHECK(symlink(victim, planted) == 0);
    int which = 0;
    CHECK(collm_write_atomic(path, write_note_name, &which) == COLLM_OK);
    char *buf;
    size_t n;
    CHECK(collm_read_file(victim, &buf, &n) == COLLM_OK);
    CHECK_MSG(n == 5 && memcmp(buf, "hello", 5) == 0, "the symlink at the old temp name was followed");
    free(buf);
    CHECK(collm_read_file(path, &buf, &n) == COLLM_OK);
    CHECK(n == 3 && memcmp(buf, "new", 3) == 0);
    free(buf);
    unlink(planted);
    // the temp file lives in the target folder and its name is not predictable
    which = 1;
    CHECK(collm_write_atomic(path, write_note_name, &which) == COLLM_OK);
    char real_dir[PATH_MAX], want[PATH_MAX + 32];
    CHECK(realpath(dir, real_dir) != NULL);
    snprintf(want, sizeof want, "%s/out.bin.tmp.%ld.", real_dir, (long)getpid());
    CHECK_MSG(strncmp(seen_tmp[0], want, strlen(want)) == 0 && strlen(seen_tmp[0]) == strlen(want) + 6, "%s", seen_tmp[0]);
    CHECK(strncmp(seen_tmp[1], want, strlen(want)) == 0);
    CHECK_MSG(strcmp(seen_tmp[0], seen_tmp[1]) != 0 && strcmp(seen_tmp[0], planted) != 0, "%s / %s", seen_tmp[0],
              seen_tmp[1]);
    // no temp file stays behind
    CHECK(access(seen_tmp[0], F_OK) != 0 && access(seen_tmp[1], F_OK) != 0);
}

// Issue 8: interrupted saves left "<out>.tmp.<pid>" files forever; a later run
// removes those of dead processes (old and new names) and keeps live ones.
static void test_remove_stale_temps(void) {
    char dir[512], path[600], dead_old[700], dead_new[700], live[700], other[700], mine[700];
    snprintf(dir, sizeof dir, "%s/core-stale", test_tmp_dir());
    CHECK(collm_mkdir_p(dir) == COLLM_OK);
    snprintf(path, sizeof path, "%s/c.gguf.resume", dir);
    pid_t child = fork();
    if (child == 0) _exit(0);
    waitpid(child, NULL, 0); // a pid that no longer runs
    snprintf(dead_old, sizeof dead_old, "%s.tmp.%ld", path, (long)child);
    snprintf(dead_new, sizeof dead_new, "%s.tmp.%ld.a1B2c3", path, (long)child);
    snprintf(live, sizeof live, "%s.tmp.1.Zz9Yy8", path);                    // pid 1 runs
    snprintf(mine, sizeof mine, "%s.tmp.%ld.qwerty", path, (long)getpid()); // this process: maybe mid-write
    snprintf(other, sizeof other, "%s/c.gguf.tmp.%ld", dir, (long)child);    // another target's temp
    const char *all[] = {dead_old, dead_new, live, mine, other};
    for (int i = 0; i < 5; i++) CHECK(collm_write_atomic(all[i], write_hello, NULL) == COLLM_OK);
    int removed = -1;
    CHECK(collm_remove_stale_temps(path, &removed) == COLLM_OK);
    CHECK(removed == 2);
    CHECK(access(dead_old, F_OK) != 0 && access(dead_new, F_OK) != 0);
    CHECK(access(live, F_OK) == 0 && access(mine, F_OK) == 0 && access(other, F_OK) == 0);
    char missing[700];
    snprintf(missing, sizeof missing, "%s/no-such-dir/x", dir);
    CHECK(collm_remove_stale_temps(missing, &removed) == COLLM_OK && removed == 0);
    for (int i = 0; i < 5; i++) unlink(all[i]);
}

int main(void) {
    test_error_state();
    test_utf8();
    test_rng();
    test_pool();
    test_pool_for_each();
    test_pool_concurrent();
    test_atomic_write();
    test_atomic_write_temp_names();
    test_remove_stale_temps();
    return test_report();
}
