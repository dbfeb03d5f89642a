// Per-user latency of top-K recommendation: Faiss retrieve + LLM re-rank of
// N candidates with a shared prompt prefix, against (i) scoring every
// catalogue item with the LLM (shared prefix too) and (ii) re-ranking the
// same N without prefix sharing (every prompt on its own).
//   recommend_bench CKPT INDEX DATA_DIR [N=100] [USERS=10]
#include <stdio.h>
#include <stdlib.h>

#include "bench_topk.h"

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: recommend_bench CKPT INDEX DATA_DIR [N=100] [USERS=10]\n");
        return 1;
    }
    int N = argc > 4 ? atoi(argv[4]) : 100, n_users = argc > 5 ? atoi(argv[5]) : 10;
    collm_blas_set_threads(1);
    bench_topk b;
    if (bench_topk_open(&b, "recommend_bench", argv[1], argv[2], argv[3], NULL)) return 1;
    collm_model *m = b.m;
    const collm_rec_dataset *ds = b.ds;
    int32_t n_items;
    int d;
    collm_cf_items(m, &n_items, &d);
    int32_t *catalogue = malloc((size_t)n_items * sizeof(int32_t));
    float *scores = malloc((size_t)n_items * sizeof(float));
    collm_recommend_item *out = malloc((size_t)N * sizeof *out);
    double t_share = 0, t_noshare = 0, t_all = 0, t_retrieve = 0;
    int done = 0, prefix = 0;
    for (int32_t u = 1; done < n_users && u < ds->n_users; u++) {
        const int32_t *his;
        int64_t n_his;
        if (collm_recommend_user_history(b.h, u, &his, &n_his) != COLLM_OK) continue;
        collm_recommend_request req = bench_topk_request(u, N);
        collm_recommend_info info;
        double t0 = bench_now();
        if (collm_recommend_for_user(m, b.index, ds->items, b.h, &req, b.ctx, out, &info)) break;
        t_share += bench_now() - t0;
        t_retrieve += info.retrieve_s;
        prefix = info.prefix_tokens;
        req.share_prefix = 0;
        t0 = bench_now();
        if (collm_recommend_for_user(m, b.index, ds->items, b.h, &req, b.ctx, out, &info)) break;
        t_noshare += bench_now() - t0;
        // every catalogue item not in the history, scored with the shared prefix
        int n = 0;
        for (int32_t i = 1; i < n_items && i < ds->items->n; i++) {
            int in_his = 0;
            for (int64_t j = 0; j < n_his && !in_his; j++) in_his = his[j] == i;
            if (!in_his) catalogue[n++] = i;
        }
        t0 = bench_now();
        if (collm_recommend_score_items(m, ds->items, u, his, n_his, catalogue, n, 1, b.ctx, scores, NULL)) break;
        t_all += bench_now() - t0;
        done++;
    }
    if (done < n_users) {
        fprintf(stderr, "recommend_bench: %s\n", collm_last_error());
        return 1;
    }
    const collm_llm_hparams *hp = collm_llm_model_hparams(collm_llm(m));
    printf("model n_embd %d, %d layers; %d items; N = %d; %d users; shared prefix %d tokens; 1 BLAS thread\n",
           hp->n_embd, hp->n_layer, n_items - 1, N, done, prefix);
    printf("retrieve + re-rank (shared prefix)  %8.2f ms/user  (retrieve %.3f ms)\n", 1e3 * t_share / done,
           1e3 * t_retrieve / done);
    printf("retrieve + re-rank (no sharing)     %8.2f ms/user  ratio %.2fx\n", 1e3 * t_noshare / done,
           t_noshare / t_share);
    printf("LLM over the whole catalogue        %8.2f ms/user  ratio %.2fx\n", 1e3 * t_all / done, t_all / t_share);
    free(catalogue);
    free(scores);
    free(out);
    bench_topk_close(&b);
    return 0;
}
