// Shared-prefix re-ranking against independent prompts (issue 10 item 3):
// for the first USERS users with a history, retrieve N candidates from the
// index and score them with collm_recommend_score_items twice, once with the
// shared prefix (share_prefix = 1) and once every prompt on its own, and
// report the time of each (wall and CPU of the calling thread; 1 BLAS
// thread, no pool), the ratio, and the largest |difference| between the two
// scores (exactness: they must agree up to float summation order).
//   prefix CKPT INDEX DATA_DIR [N=100] [USERS=5] [MODE=both|shared]
// MODE shared skips the independent prompts (for profiling the shared path).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_topk.h"

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: prefix CKPT INDEX DATA_DIR [N=100] [USERS=5] [MODE=both|shared]\n");
        return 1;
    }
    int N = argc > 4 ? atoi(argv[4]) : 100, n_users = argc > 5 ? atoi(argv[5]) : 5;
    int both = !(argc > 6 && strcmp(argv[6], "shared") == 0);
    if (N < 1 || n_users < 1) {
        fprintf(stderr, "prefix: N and USERS must be >= 1\n");
        return 1;
    }
    collm_blas_set_threads(1);
    collm_retrieval_set_threads(1);
    bench_topk b;
    if (bench_topk_open(&b, "prefix", argv[1], argv[2], argv[3], NULL)) return 1;
    collm_model *m = b.m;
    const collm_rec_dataset *ds = b.ds;
    int32_t n_cf_users = 0, n_items = 0;
    int du = 0, d = 0;
    const float *users = collm_cf_users(m, &n_cf_users, &du);
    collm_cf_items(m, &n_items, &d);
    int32_t *cand = malloc((size_t)N * sizeof(int32_t));
    float *cs = malloc((size_t)N * sizeof(float)), *s1 = malloc((size_t)N * sizeof(float)),
          *s0 = malloc((size_t)N * sizeof(float)), *q = malloc((size_t)(d > 0 ? d : 1) * sizeof(float));
    if (!users || !cand || !cs || !s1 || !s0 || !q) {
        fprintf(stderr, "prefix: %s\n", collm_last_error());
        return 1;
    }
    double w_sh = 0, w_in = 0, c_sh = 0, c_in = 0, max_diff = 0, max_abs = 0, rows_in = 0, rows_sh = 0, n_suffix = 0;
    int done = 0, prefix = 0, found = 0;
    int64_t prefix_sum = 0;
    for (int32_t u = 1; done < n_users && u < ds->n_users && u < n_cf_users; u++) {
        const int32_t *his;
        int64_t n_his;
        if (collm_recommend_user_history(b.h, u, &his, &n_his) != COLLM_OK) continue;
        memcpy(q, users + (int64_t)u * du, (size_t)d * sizeof(float));
        if (collm_retrieval_candidates(b.index, q, d, his, (int)n_his, N, cand, cs, &found) || found < 1) break;
        double t0 = bench_now(), c0 = bench_cpu();
        if (collm_recommend_score_items(m, ds->items, u, his, n_his, cand, found, 1, b.ctx, s1, &prefix)) break;
        w_sh += bench_now() - t0;
        c_sh += bench_cpu() - c0;
        for (int i = 0; i < found; i++) { // rows each way: every prompt vs the prefix once + every suffix
            collm_encoded e;
            if (collm_encode(m, ds->items, u, his, n_his, cand[i], &e)) break;
            rows_in += e.n_tokens;
            rows_sh += e.n_tokens - prefix;
            n_suffix++;
            collm_encoded_free(&e);
        }
        rows_sh += prefix;
        prefix_sum += prefix;
        if (both) {
            t0 = bench_now();
            c0 = bench_cpu();
            if (collm_recommend_score_items(m, ds->items, u, his, n_his, cand, found, 0, b.ctx, s0, NULL)) break;
            w_in += bench_now() - t0;
            c_in += bench_cpu() - c0;
            for (int i = 0; i < found; i++) {
                double diff = fabs((double)s1[i] - s0[i]);
                if (diff > max_diff) max_diff = diff;
                if (fabs(s0[i]) > max_abs) max_abs = fabs(s0[i]);
            }
        }
        done++;
    }
    if (done < n_users) {
        fprintf(stderr, "prefix: after %d users: %s\n", done, collm_last_error());
        return 1;
    }
    const collm_llm_hparams *hp = collm_llm_model_hparams(collm_llm(m));
    printf("model n_embd %d, %d layers, %d heads, n_ff %d; N = %d candidates; %d users; last shared prefix %d tokens; "
           "1 BLAS thread\n", hp->n_embd, hp->n_layer, hp->n_head, hp->n_ff, found, done, prefix);
    printf("token rows per user: %.0f independent, %.0f shared (mean suffix %.1f tokens): a %.2fx bound on the speed-up\n",
           rows_in / done, rows_sh / done, (rows_sh - (double)prefix_sum) / n_suffix, rows_in / rows_sh);
    printf("shared prefix        %9.1f ms/user wall  %9.1f ms/user CPU\n", 1e3 * w_sh / done, 1e3 * c_sh / done);
    if (both) {
        printf("independent prompts  %9.1f ms/user wall  %9.1f ms/user CPU\n", 1e3 * w_in / done, 1e3 * c_in / done);
        printf("speed-up             %9.2fx wall        %9.2fx CPU\n", w_in / w_sh, c_in / c_sh);
        printf("max |shared - independent| score %.3g (largest |score| %.3g)\n", max_diff, max_abs);
    }
    free(cand);
    free(cs);
    free(s1);
    free(s0);
    free(q);
    bench_topk_close(&b);
    return 0;
}
