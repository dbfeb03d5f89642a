// Sleeping thread pool (see include/collm/threadpool.h).
#include "collm/threadpool.h"

#include "collm/error.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

struct collm_pool {
    int n_threads; // including the caller
    pthread_t *threads;
    // Held by a submitter for its whole job: jobs from several threads run one
    // after another (the job fields below describe a single job).
    pthread_mutex_t submit;
    pthread_mutex_t mutex;
    pthread_cond_t work_ready;
    pthread_cond_t work_done;
    // current job
    collm_task_fn fn;
    void *ctx;
    int64_t n;
    int n_parts;       // how many threads take part in this job
    int dynamic;       // 1: items claimed one at a time from next (collm_pool_for_each)
    atomic_llong next; // the next unclaimed item of a dynamic job
    uint64_t job_id;   // increments per job; workers wait for a new id
    int pending;       // workers still running the current job
    int shutting_down;
};

typedef struct {
    collm_pool *pool;
    int index;
} worker_arg;

// The pool whose job the current thread is running a part of (worker or
// submitter), so that a task calling collm_pool_for on that same pool runs
// serially instead of waiting forever for the submit lock it indirectly holds.
static _Thread_local const collm_pool *running_in;

static void range_of(int64_t n, int parts, int index, int64_t *begin, int64_t *end) {
    *begin = n * index / parts;
    *end = n * (index + 1) / parts;
}

static void *worker_main(void *arg_) {
    worker_arg *arg = arg_;
    collm_pool *pool = arg->pool;
    int index = arg->index;
    free(arg);
    uint64_t seen = 0;
    pthread_mutex_lock(&pool->mutex);
    for (;;) {
        while (!pool->shutting_down && pool->job_id == seen)
            pthread_cond_wait(&pool->work_ready, &pool->mutex);
        if (pool->shutting_down) break;
        seen = pool->job_id;
        if (index >= pool->n_parts) continue; // not part of this job
        collm_task_fn fn = pool->fn;
        void *ctx = pool->ctx;
        const int64_t n = pool->n;
        const int dynamic = pool->dynamic;
        int64_t begin, end;
        range_of(n, pool->n_parts, index, &begin, &end);
        pthread_mutex_unlock(&pool->mutex);
        running_in = pool;
        if (dynamic)
            for (int64_t i; (i = atomic_fetch_add(&pool->next, 1)) < n;) fn(ctx, i, i + 1, index);
        else if (end > begin)
            fn(ctx, begin, end, index);
        running_in = NULL;
        pthread_mutex_lock(&pool->mutex);
        if (--pool->pending == 0) pthread_cond_signal(&pool->work_done);
    }
    pthread_mutex_unlock(&pool->mutex);
    return NULL;
}

collm_pool *collm_pool_create(int n_threads) {
    if (n_threads < 1) n_threads = 1;
    collm_pool *pool = collm_calloc(1, sizeof *pool);
    if (!pool) return NULL;
    pool->n_threads = n_threads;
    pthread_mutex_init(&pool->submit, NULL);
    pthread_mutex_init(&pool->mutex, NULL);
    pthread_cond_init(&pool->work_ready, NULL);
    pthread_cond_init(&pool->work_done, NULL);
    pool->threads = collm_calloc((size_t)n_threads, sizeof *pool->threads);
    if (!pool->threads) {
        free(pool);
        return NULL;
    }
    for (int i = 1; i < n_threads; i++) {
        worker_arg *arg = collm_malloc(sizeof *arg);
        if (!arg) {
            pool->n_threads = i;
            collm_pool_free(pool);
            return NULL;
        }
        arg->pool = pool;
        arg->index = i;
        if (pthread_create(&pool->threads[i], NULL, worker_main, arg) != 0) {
            free(arg);
            pool->n_threads = i;
            collm_pool_free(pool);
            collm_error(COLLM_ERR, "cannot start worker thread %d", i);
            return NULL;
        }
    }
    return pool;
}

void collm_pool_free(collm_pool *pool) {
    if (!pool) return;
    pthread_mutex_lock(&pool->mutex);
    pool->shutting_down = 1;
    pthread_cond_broadcast(&pool->work_ready);
    pthread_mutex_unlock(&pool->mutex);
    for (int i = 1; i < pool->n_threads; i++) pthread_join(pool->threads[i], NULL);
    pthread_mutex_destroy(&pool->submit);
    pthread_mutex_destroy(&pool->mutex);
    pthread_cond_destroy(&pool->work_ready);
    pthread_cond_destroy(&pool->work_done);
    free(pool->threads);
    free(pool);
}

int collm_pool_size(const collm_pool *pool) { return pool ? pool->n_threads : 1; }

static void pool_run(collm_pool *pool, int64_t n, int64_t min_per_thread, collm_task_fn fn, void *ctx, int dynamic) {
    if (n <= 0) return;
    if (min_per_thread < 1) min_per_thread = 1;
    int parts = pool ? pool->n_threads : 1;
    if (n / min_per_thread < parts) parts = (int)(n / min_per_thread);
    if (parts <= 1 || running_in == pool) {
        fn(ctx, 0, n, 0);
        return;
    }
    pthread_mutex_lock(&pool->submit);
    pthread_mutex_lock(&pool->mutex);
    pool->fn = fn;
    pool->ctx = ctx;
    pool->n = n;
    pool->n_parts = parts;
    pool->dynamic = dynamic;
    atomic_store(&pool->next, 0);
    pool->pending = parts - 1;
    pool->job_id++;
    pthread_cond_broadcast(&pool->work_ready);
    pthread_mutex_unlock(&pool->mutex);

    int64_t begin, end;
    range_of(n, parts, 0, &begin, &end);
    const collm_pool *outer = running_in;
    running_in = pool;
    if (dynamic)
        for (int64_t i; (i = atomic_fetch_add(&pool->next, 1)) < n;) fn(ctx, i, i + 1, 0);
    else
        fn(ctx, begin, end, 0);
    running_in = outer;

    pthread_mutex_lock(&pool->mutex);
    while (pool->pending > 0) pthread_cond_wait(&pool->work_done, &pool->mutex);
    pthread_mutex_unlock(&pool->mutex);
    pthread_mutex_unlock(&pool->submit);
}

void collm_pool_for(collm_pool *pool, int64_t n, int64_t min_per_thread, collm_task_fn fn, void *ctx) {
    pool_run(pool, n, min_per_thread, fn, ctx, 0);
}

void collm_pool_for_each(collm_pool *pool, int64_t n, collm_task_fn fn, void *ctx) {
    pool_run(pool, n, 1, fn, ctx, 1);
}

void openblas_set_num_threads(int num_threads);
char *openblas_get_corename(void);
void collm_blas_set_threads(int n_threads) { openblas_set_num_threads(n_threads < 1 ? 1 : n_threads); }
const char *collm_blas_corename(void) {
    const char *core = openblas_get_corename();
    return core ? core : "unknown";
}
