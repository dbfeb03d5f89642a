// A small pool of worker threads that sleep on a condition variable between
// jobs (the cores are shared: idle threads must not spin). One job at a time:
// collm_pool_for splits [0, n) into one contiguous range per thread (static
// partition, so results are deterministic for a given thread count), runs
// range 0 on the calling thread and waits for the rest; collm_pool_for_each
// hands the items out one at a time instead.
//
// GEMM goes through BLAS from the calling thread, never from inside a task.
//
// Threading: a pool may be shared by any number of threads. Jobs submitted
// from several threads at once run one after another (each collm_pool_for
// holds the pool for its whole job, so a second submitter waits; results are
// those of running the jobs alone). A task that calls collm_pool_for on the
// pool it is running on gets a serial run on its own thread (thread_index 0)
// instead of a deadlock. collm_pool_free must not race with collm_pool_for.
// For requests that must not wait for each other, give each its own pool or
// none (NULL: serial on the caller).
#ifndef COLLM_THREADPOOL_H
#define COLLM_THREADPOOL_H

#include "collm/version.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct collm_pool collm_pool;

// fn(ctx, begin, end, thread_index) processes items [begin, end).
typedef void (*collm_task_fn)(void *ctx, int64_t begin, int64_t end, int thread_index);

// n_threads <= 0 means 1. Returns NULL (and sets the error) on failure.
COLLM_API collm_pool *collm_pool_create(int n_threads);
COLLM_API void collm_pool_free(collm_pool *pool);
// Number of threads including the caller; 1 for a NULL pool.
COLLM_API int collm_pool_size(const collm_pool *pool);
// Runs fn over [0, n). A NULL pool, or n < 2*min_per_thread, runs serially on
// the caller (thread_index 0). min_per_thread avoids waking threads for tiny jobs.
COLLM_API void collm_pool_for(collm_pool *pool, int64_t n, int64_t min_per_thread, collm_task_fn fn, void *ctx);
// Runs fn over [0, n) one item per call (begin + 1 == end), each item taken
// by whichever thread is free: for items of uneven cost, or threads the
// machine slows unevenly, whose results do not depend on the thread that runs
// them (thread_index still names the thread: per-thread scratch). Serial on
// the caller as collm_pool_for (one call over the whole range).
COLLM_API void collm_pool_for_each(collm_pool *pool, int64_t n, collm_task_fn fn, void *ctx);

// Sets the thread count OpenBLAS uses for GEMM (process-wide: BLAS has one).
COLLM_API void collm_blas_set_threads(int n_threads);
// The core OpenBLAS runs its kernels for ("SkylakeX", "Haswell", "Zen", ...:
// its CPU detection, or OPENBLAS_CORETYPE where that is set); a static string.
COLLM_API const char *collm_blas_corename(void);

// The numeric kernels this process runs: "x86-64-v4" (AVX-512) or "x86-64-v3"
// (AVX2 + FMA) when the CPU has them, else "baseline" (SSE2); COLLM_ISA=baseline
// or x86-64-v3 in the environment caps them. Chosen once, before main.
COLLM_API const char *collm_kernel_isa(void);

// Checks the kernel-selection settings in the environment (COLLM_ISA=native|
// baseline|x86-64-v3|avx2, COLLM_GEMM=auto|blas|own, COLLM_QMM=auto|dot|rows|
// sgemm): COLLM_OK, or COLLM_ERR_ARG naming the setting whose value is none of
// these (the kernels would ignore it and run the default). The CLI calls it
// before every command; a program embedding collm may too. Thread-safe.
COLLM_API int collm_check_environment(void);

#ifdef __cplusplus
}
#endif

#endif
