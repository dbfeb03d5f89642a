// Timings that used to be assertions inside the unit tests (issue 8: a unit
// test that asserts on elapsed time fails under sanitizers and on busy
// machines; timing belongs here). Prints, never fails on speed:
//
//   build/bench/unit_timings [SHARED_DIR=../shared]
//
//   1. loading ML-1M (items + train + valid + valid_small); the old test
//      required < 1 s
//   2. encoding the filled CoLLM prompt with the Llama SPM vocabulary in
//      legacy special-piece mode; the old test required < 2 ms per prompt
//   3. attention forward/backward at the tiny model's size (T 160, 4 heads
//      of 64), 1 and 2 threads
#include "collm/dataset.h"
#include "collm/error.h"
#include "collm/threadpool.h"
#include "collm/tokenizer.h"
#include "core/ops.h"
#include "core/rng.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void time_dataset(const char *shared) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/data/ml-1m", shared);
    double best = 1e30;
    for (int r = 0; r < 3; r++) {
        double t0 = now_s();
        collm_rec_dataset *ds = collm_rec_dataset_load(dir);
        double dt = now_s() - t0;
        if (!ds) {
            printf("dataset: %s\n", collm_last_error());
            return;
        }
        collm_rec_dataset_free(ds);
        if (dt < best) best = dt;
    }
    printf("ml-1m items+train+valid+valid_small load: best of 3 %.3f s (the old unit test wanted < 1 s)\n", best);
}

static void time_prompt_encode(const char *shared) {
    char path[1024];
    snprintf(path, sizeof path, "%s/testvectors/tokenizer/ggml-vocab-llama-spm.gguf", shared);
    collm_tok_vocab *v = collm_tok_load_path(path);
    if (!v) {
        printf("tokenizer: %s\n", collm_last_error());
        return;
    }
    const char *prompt = "<s>#Question: A user has given high ratings to the following movies: \"Heat (1995)\". "
                         "Additionally, we have information about the user's preferences encoded in the feature <unk>. "
                         "Using all available information, make a prediction about whether the user would enjoy the movie "
                         "titled \"Casino (1995)\" with the feature <unk>? Answer with \"Yes\" or \"No\". \\n#Answer:";
    int32_t ids[512];
    int reps = 2000;
    long total = 0;
    double t0 = now_s();
    for (int r = 0; r < reps; r++) total += collm_tok_encode(v, prompt, strlen(prompt), COLLM_TOK_LEGACY_SPECIAL_PIECES, ids, 512);
    double secs = now_s() - t0;
    printf("legacy prompt encode: %ld tokens, %.1f us/prompt (%.0f tokens/s; the old unit test wanted < 2000 us)\n",
           total / reps, 1e6 * secs / reps, total / (secs > 0 ? secs : 1e-9));
    collm_tok_free(v);
}

static float *rand_vec(collm_rng *rng, int64_t n) {
    float *v = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; v && i < n; i++) v[i] = (float)collm_rng_normal(rng);
    return v;
}

static void time_attention(void) {
    int T = 160, nh = 4, nkv = 4, hd = 64;
    int64_t nq = (int64_t)T * nh * hd, na = (int64_t)nh * T * T;
    collm_rng rng;
    collm_rng_seed(&rng, 1);
    float *q = rand_vec(&rng, nq), *k = rand_vec(&rng, nq), *v = rand_vec(&rng, nq), *dout = rand_vec(&rng, nq);
    float *out = calloc((size_t)nq, sizeof(float)), *att = calloc((size_t)na, sizeof(float));
    float *dq = calloc((size_t)nq, sizeof(float)), *dk = calloc((size_t)nq, sizeof(float)), *dv = calloc((size_t)nq, sizeof(float));
    collm_pool *pool = collm_pool_create(2);
    for (int p = 0; p < 2; p++) {
        collm_pool *use = p ? pool : NULL;
        int reps = 20;
        double t0 = now_s();
        for (int i = 0; i < reps; i++) collm_ops_attention_forward(out, att, q, k, v, T, 0, nh, nkv, hd, use, NULL);
        double t1 = now_s();
        for (int i = 0; i < reps; i++) collm_ops_attention_backward(dq, dk, dv, dout, att, q, k, v, T, 0, nh, nkv, hd, use, NULL);
        double t2 = now_s();
        printf("attention T=%d n_head=%d hd=%d, %d thread(s): forward %.3f ms, backward %.3f ms\n", T, nh, hd, p ? 2 : 1,
               (t1 - t0) / reps * 1e3, (t2 - t1) / reps * 1e3);
    }
    collm_pool_free(pool);
    free(q), free(k), free(v), free(dout), free(out), free(att), free(dq), free(dk), free(dv);
}

int main(int argc, char **argv) {
    const char *shared = argc > 1 ? argv[1] : "../shared";
    time_dataset(shared);
    time_prompt_encode(shared);
    time_attention();
    return 0;
}
