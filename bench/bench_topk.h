// What the top-K bench programs (prefix, recommend_bench, topk_latency)
// share: their clocks and their setup, a checkpoint with its item index, the
// dataset, the users' histories and one scoring context, opened in that
// order and closed in reverse. Header only: each bench/*.c is one program.
#ifndef COLLM_BENCH_TOPK_H
#define COLLM_BENCH_TOPK_H

#include <stdio.h>
#include <time.h>

#include "collm/collm.h"
#include "collm/error.h"
#include "collm/recommend.h"
#include "collm/retrieval.h"
#include "collm/threadpool.h"

// Wall time (monotonic), seconds.
static inline double bench_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// CPU time of the calling thread, seconds: with one BLAS thread and no pool
// the whole request runs on it, so this is the latency an idle core would see.
static inline double bench_cpu(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct {
    collm_model *m;
    collm_retrieval_index *index;
    collm_rec_dataset *ds;
    collm_recommend_histories *h;
    collm_llm_context *ctx;
} bench_topk;

static inline void bench_topk_close(bench_topk *b) {
    collm_llm_context_free(b->ctx);
    collm_recommend_histories_free(b->h);
    collm_rec_dataset_free(b->ds);
    collm_retrieval_index_free(b->index);
    collm_model_free(b->m);
}

// Opens everything (pool may be NULL: one thread); on failure prints
// "NAME: error" and returns 1 with *b closed.
static inline int bench_topk_open(bench_topk *b, const char *name, const char *ckpt, const char *index_path,
                                  const char *data_dir, collm_pool *pool) {
    b->m = collm_model_load(ckpt, NULL, pool);
    b->index = b->m ? collm_retrieval_index_load(index_path) : NULL;
    b->ds = b->index ? collm_rec_dataset_load(data_dir) : NULL;
    b->h = b->ds ? collm_recommend_histories_build(b->ds) : NULL;
    b->ctx = b->h ? collm_recommend_context_create(b->m, pool) : NULL;
    if (b->ctx) return 0;
    fprintf(stderr, "%s: %s\n", name, collm_last_error());
    bench_topk_close(b);
    return 1;
}

// The product's request for user u: the top 10 of n retrieved candidates.
static inline collm_recommend_request bench_topk_request(int32_t u, int n) {
    collm_recommend_request req;
    collm_recommend_request_default(&req);
    req.user = u;
    req.k = 10;
    req.n_candidates = n;
    return req;
}

#endif
