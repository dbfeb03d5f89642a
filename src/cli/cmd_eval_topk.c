// collm eval-topk: top-K ranking quality on a split.
//   collm eval-topk --ckpt C.gguf --index items.faiss --data DIR --split valid [--max-users N] [--json]
// Users: every user with >= 1 positive row in the split (the first
// --max-users by id). For each user:
//   history  = the stored history of the user's earliest row in the split
//              (every earlier positive), used for the prompt and the
//              cold-start query;
//   excluded = that history + every item of the user's train rows (never
//              recommended, never counted);
//   relevant = the user's positive items of the split, minus excluded.
// Rankings: (a) MF: the CF inner product over the whole catalogue; (b) Faiss
// top-N (N = 50/100/200) re-ranked by the LLM; (c) the exact top-N (from (a))
// re-ranked by the LLM. Recall@K = |top-K ∩ relevant| / |relevant|, NDCG@K
// with binary gains and the ideal DCG of min(K, |relevant|) hits; means over
// users. Plus the index's recall@N against the exact top-N.
// Cost: per user 2 × (50 + 100 + 200) = 700 candidate prompts through the LLM
// (shared prefix), plus one catalogue-sized dot product; use --max-users to
// bound it.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "collm/error.h"
#include "collm/recommend.h"
#include "commands.h"
#include "rec_setup.h"

#define TOPK_N_SIZES 3
static const int topk_sizes[TOPK_N_SIZES] = {50, 100, 200};
#define TOPK_N_METHODS (1 + 2 * TOPK_N_SIZES)

typedef struct {
    int32_t item;
    float score;
} topk_scored;

static int topk_cmp(const void *a, const void *b) {
    const topk_scored *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return (x->item > y->item) - (x->item < y->item);
}

// Adds recall@10/20 and NDCG@10/20 of ranked (n) against relevant (n_rel) to acc[4].
static void topk_accumulate(const topk_scored *ranked, int n, const int32_t *rel, int n_rel, double acc[4]) {
    const int ks[2] = {10, 20};
    for (int j = 0; j < 2; j++) {
        int hits = 0;
        double dcg = 0, idcg = 0;
        for (int i = 0; i < ks[j] && i < n; i++)
            for (int r = 0; r < n_rel; r++)
                if (rel[r] == ranked[i].item) {
                    hits++;
                    dcg += 1.0 / log2(i + 2.0);
                }
        for (int i = 0; i < ks[j] && i < n_rel; i++) idcg += 1.0 / log2(i + 2.0);
        acc[j] += (double)hits / n_rel;
        acc[2 + j] += dcg / idcg;
    }
}

int cmd_eval_topk(int argc, char **argv) {
    cli_option opts[] = {
        {"--ckpt", "FILE", "CoLLM checkpoint (stage 2, with CF vectors)", NULL},
        {"--base", "FILE", "base model (default: the path stored in the checkpoint)", NULL},
        {"--index", "FILE", "Faiss index over the checkpoint's item vectors", NULL},
        {"--data", "DIR", "dataset folder", NULL},
        {"--split", "NAME", "split to evaluate: valid | valid_small | test | a path (default valid)", NULL},
        {"--max-users", "N", "evaluate at most N users (default all)", NULL},
        {"--json", NULL, "print one JSON object instead of a table", NULL},
        CLI_COMMON_OPTIONS,
        {NULL, NULL, NULL, NULL},
    };
    int p = cli_parse(argc, argv, opts,
                      "usage: collm eval-topk --ckpt FILE --index FILE --data DIR [--split valid] [--max-users N] [--json]");
    if (p) return p > 0 ? 0 : 1;
    const char *ckpt, *index_path, *data, *split_name = cli_get(opts, "--split") ? cli_get(opts, "--split") : "valid";
    if (cli_require(opts, "--ckpt", &ckpt) || cli_require(opts, "--index", &index_path) ||
        cli_require(opts, "--data", &data))
        return 1;
    int64_t max_users;
    if (cli_get_int(opts, "--max-users", INT32_MAX, &max_users)) return 1;
    if (max_users < 1) {
        fprintf(stderr, "collm eval-topk: --max-users must be >= 1\n");
        return 1;
    }
    cli_rec_setup s;
    if (cli_rec_setup_load(&s, "eval-topk", ckpt, cli_get(opts, "--base"), index_path, data, cli_threads(opts))) return 1;
    collm_rec_split *sp = collm_rec_dataset_load_split(s.ds, split_name);
    if (!sp) {
        cli_rec_setup_free(&s);
        return cli_fail("eval-topk");
    }
    int32_t n_items, n_users_cf;
    int d, du;
    const float *iv = collm_cf_items(s.model, &n_items, &d);
    const float *uv = collm_cf_users(s.model, &n_users_cf, &du);
    int32_t max_user = sp->max_user;
    const collm_rec_split *train = s.ds->train;
    for (int64_t r = 0; r < train->n; r++) max_user = train->user[r] > max_user ? train->user[r] : max_user;
    // per user: earliest split row, and a mark array for exclusion
    int64_t *first_row = malloc((size_t)(max_user + 1) * sizeof(int64_t));
    int *n_pos = calloc((size_t)max_user + 1, sizeof(int));
    uint8_t *excluded = calloc((size_t)n_items, 1);
    topk_scored *all = malloc((size_t)n_items * sizeof *all);
    int32_t *rel = malloc((size_t)(sp->n + 1) * sizeof(int32_t));
    int32_t *excl = malloc((size_t)(n_items + 1) * sizeof(int32_t));
    int32_t *cand = malloc(200 * sizeof(int32_t)), *exact = malloc(200 * sizeof(int32_t));
    float *cand_s = malloc(200 * sizeof(float)), *llm = malloc(200 * sizeof(float)), *query = malloc((size_t)d * sizeof(float));
    topk_scored *reranked = malloc(200 * sizeof *reranked);
    collm_llm_context *ctx = collm_recommend_context_create(s.model, s.pool);
    int rc = first_row && n_pos && excluded && all && rel && excl && cand && exact && cand_s && llm && query && reranked && ctx
                 ? COLLM_OK : COLLM_ERR_NOMEM;
    for (int32_t u = 0; rc == COLLM_OK && u <= max_user; u++) first_row[u] = -1;
    for (int64_t r = 0; rc == COLLM_OK && r < sp->n; r++) {
        int32_t u = sp->user[r];
        if (first_row[u] < 0 || sp->timestamp[r] < sp->timestamp[first_row[u]]) first_row[u] = r;
        if (sp->label[r]) n_pos[u]++;
    }
    double acc[TOPK_N_METHODS][4], ann_recall[TOPK_N_SIZES];
    memset(acc, 0, sizeof acc);
    memset(ann_recall, 0, sizeof ann_recall);
    int64_t users = 0;
    for (int32_t u = 0; rc == COLLM_OK && u <= max_user && users < max_users; u++) {
        if (n_pos[u] == 0) continue;
        int64_t r0 = first_row[u];
        const int32_t *his = sp->his + sp->his_offset[r0];
        int64_t n_his = sp->his_offset[r0 + 1] - sp->his_offset[r0];
        int n_excl = 0;
        for (int64_t j = 0; j < n_his; j++)
            if (his[j] > 0 && his[j] < n_items && !excluded[his[j]]) excluded[excl[n_excl++] = his[j]] = 1;
        for (int64_t r = 0; r < train->n; r++)
            if (train->user[r] == u && train->item[r] < n_items && !excluded[train->item[r]])
                excluded[excl[n_excl++] = train->item[r]] = 1;
        int n_rel = 0;
        for (int64_t r = 0; r < sp->n; r++)
            if (sp->user[r] == u && sp->label[r] && sp->item[r] < n_items && !excluded[sp->item[r]]) {
                int dup = 0;
                for (int i = 0; i < n_rel; i++) dup |= rel[i] == sp->item[r];
                if (!dup) rel[n_rel++] = sp->item[r];
            }
        if (n_rel > 0) {
            if (u < n_users_cf) memcpy(query, uv + (int64_t)u * du, (size_t)d * sizeof(float));
            else rc = collm_retrieval_mean_query(iv, n_items, d, his, (int)n_his, query);
            // (a) MF over the whole catalogue
            int n_all = 0;
            for (int32_t i = 1; rc == COLLM_OK && i < n_items; i++) {
                if (excluded[i]) continue;
                double dot = 0;
                for (int j = 0; j < d; j++) dot += (double)query[j] * iv[(int64_t)i * d + j];
                all[n_all++] = (topk_scored){i, (float)dot};
            }
            if (rc == COLLM_OK) {
                qsort(all, (size_t)n_all, sizeof *all, topk_cmp);
                topk_accumulate(all, n_all, rel, n_rel, acc[0]);
            }
            for (int z = 0; rc == COLLM_OK && z < TOPK_N_SIZES; z++) {
                int N = topk_sizes[z] < n_all ? topk_sizes[z] : n_all, found = 0;
                rc = collm_retrieval_candidates(s.index, query, d, excl, n_excl, N, cand, cand_s, &found);
                int common = 0;
                for (int i = 0; rc == COLLM_OK && i < found; i++)
                    for (int j = 0; j < N; j++) common += cand[i] == all[j].item;
                if (N > 0) ann_recall[z] += (double)common / N;
                for (int pass = 0; rc == COLLM_OK && pass < 2 && found > 0; pass++) {
                    int n = pass == 0 ? found : N;
                    int32_t *ids = pass == 0 ? cand : exact;
                    if (pass == 1)
                        for (int j = 0; j < N; j++) exact[j] = all[j].item;
                    rc = collm_recommend_score_items(s.model, s.ds->items, u, his, n_his, ids, n, 1, ctx, llm, NULL);
                    for (int j = 0; rc == COLLM_OK && j < n; j++) reranked[j] = (topk_scored){ids[j], llm[j]};
                    if (rc == COLLM_OK) {
                        qsort(reranked, (size_t)n, sizeof *reranked, topk_cmp);
                        topk_accumulate(reranked, n, rel, n_rel, acc[1 + 2 * z + pass]);
                    }
                }
            }
            users++;
        }
        for (int i = 0; i < n_excl; i++) excluded[excl[i]] = 0;
    }
    int status = 0;
    if (rc != COLLM_OK) {
        status = cli_fail("eval-topk");
    } else if (users == 0) {
        fprintf(stderr, "collm eval-topk: no user of %s has a positive item to find\n", split_name);
        status = 1;
    } else {
        const char *names[TOPK_N_METHODS] = {"mf", "faiss50+llm", "exact50+llm", "faiss100+llm", "exact100+llm",
                                             "faiss200+llm", "exact200+llm"};
        if (cli_has(opts, "--json")) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "split", split_name);
            cJSON_AddNumberToObject(o, "users", (double)users);
            cJSON *m = cJSON_AddObjectToObject(o, "methods");
            for (int i = 0; i < TOPK_N_METHODS; i++) {
                cJSON *x = cJSON_AddObjectToObject(m, names[i]);
                cJSON_AddNumberToObject(x, "recall@10", acc[i][0] / users);
                cJSON_AddNumberToObject(x, "recall@20", acc[i][1] / users);
                cJSON_AddNumberToObject(x, "ndcg@10", acc[i][2] / users);
                cJSON_AddNumberToObject(x, "ndcg@20", acc[i][3] / users);
            }
            cJSON *a = cJSON_AddObjectToObject(o, "ann_recall");
            for (int z = 0; z < TOPK_N_SIZES; z++) {
                char key[16];
                snprintf(key, sizeof key, "@%d", topk_sizes[z]);
                cJSON_AddNumberToObject(a, key, ann_recall[z] / users);
            }
            char *text = cJSON_PrintUnformatted(o);
            printf("%s\n", text ? text : "null");
            cJSON_free(text);
            cJSON_Delete(o);
        } else {
            printf("eval-topk %s: %lld users\n%-14s %9s %9s %9s %9s\n", split_name, (long long)users, "method",
                   "recall@10", "recall@20", "ndcg@10", "ndcg@20");
            for (int i = 0; i < TOPK_N_METHODS; i++)
                printf("%-14s %9.4f %9.4f %9.4f %9.4f\n", names[i], acc[i][0] / users, acc[i][1] / users,
                       acc[i][2] / users, acc[i][3] / users);
            printf("index recall vs exact:");
            for (int z = 0; z < TOPK_N_SIZES; z++) printf(" @%d %.4f", topk_sizes[z], ann_recall[z] / users);
            printf("\n");
        }
    }
    collm_llm_context_free(ctx);
    free(first_row);
    free(n_pos);
    free(excluded);
    free(all);
    free(rel);
    free(excl);
    free(cand);
    free(exact);
    free(cand_s);
    free(llm);
    free(query);
    free(reranked);
    collm_rec_split_free(sp);
    cli_rec_setup_free(&s);
    return status;
}
