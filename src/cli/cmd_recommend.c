// collm recommend: top-K items for one user: Faiss candidates over the
// checkpoint's CF item vectors, re-ranked by the CoLLM "Yes" logit (shared
// prompt prefix) fused with the retrieval score and the item's popularity
// (include/collm/recommend.h).
//   collm recommend --ckpt C.gguf --index items.faiss --data DIR --user 7 --k 10 [--candidates 100]
//                   [--history "12,7,33"] [--fusion-lambda L] [--fusion-popularity M] [--json] [--no-share]
#include <ctype.h>
#include <errno.h>
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

// "12,7,33" → ids (malloc'd). Returns the count, or -1 after printing an error.
static int parse_history(const char *s, int32_t **out) {
    int cap = 16, n = 0;
    int32_t *ids = malloc((size_t)cap * sizeof(int32_t));
    const char *p = s;
    while (ids && *p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        // digits only (strtol would skip spaces and take a sign), and no empty id after a last comma
        if (!isdigit((unsigned char)*p) || end == p || errno || v > INT32_MAX || (*end && *end != ',') ||
            (*end == ',' && !end[1])) {
            fprintf(stderr, "collm recommend: --history: bad item id at \"%.20s\" (want e.g. \"12,7,33\")\n", p);
            free(ids);
            return -1;
        }
        if (n == cap) {
            int32_t *grown = realloc(ids, (size_t)(cap *= 2) * sizeof(int32_t));
            if (!grown) { // (it went on with the ids read so far)
                fprintf(stderr, "collm recommend: --history: out of memory\n");
                free(ids);
                return -1;
            }
            ids = grown;
        }
        ids[n++] = (int32_t)v;
        p = *end ? end + 1 : end;
    }
    if (!ids) return -1;
    if (n == 0) {
        fprintf(stderr, "collm recommend: --history: no item ids\n");
        free(ids);
        return -1;
    }
    *out = ids;
    return n;
}

int cmd_recommend(int argc, char **argv) {
    cli_option opts[] = {
        {"--ckpt", "FILE", "CoLLM checkpoint (stage 2, with CF vectors)", NULL},
        {"--base", "FILE", "base model (default: the path stored in the checkpoint)", NULL},
        {"--index", "FILE", "Faiss index over the checkpoint's item vectors (from collm index --ckpt)", NULL},
        {"--data", "DIR", "dataset folder (items and the users' histories)", NULL},
        {"--user", "ID", "user id (history = the user's most recent row in train/valid)", NULL},
        {"--history", "IDS", "comma-separated item ids, oldest first (replaces the user's history)", NULL},
        {"--k", "N", "items to return (default 10)", NULL},
        {"--candidates", "N", "Faiss candidates re-ranked by the LLM (default 100)", NULL},
        {"--fusion-lambda", "L", "weight L of the retrieval score in the order z(llm) + L*z(retrieval) + M*z(log popularity) "
                                 "(default: the checkpoint's, from collm fit-fusion)", NULL},
        {"--fusion-popularity", "M", "weight M of the item's log popularity in that order (default: the checkpoint's)", NULL},
        {"--exclude-rated", NULL, "leave out every item the user has a row of in the dataset's train and valid "
                                  "splits (as /recommend's exclude_rated)", NULL},
        {"--no-share", NULL, "score every prompt on its own (no shared prefix; for comparison)", NULL},
        {"--json", NULL, "print one JSON object instead of a table", NULL},
        CLI_COMMON_OPTIONS,
        {NULL, NULL, NULL, NULL},
    };
    int p = cli_parse(argc, argv, opts,
                      "usage: collm recommend --ckpt FILE --index FILE --data DIR (--user ID | --history IDS) [--k 10] "
                      "[--candidates 100] [--json]");
    if (p) return p > 0 ? 0 : 1;
    const char *ckpt, *index_path, *data;
    if (cli_require(opts, "--ckpt", &ckpt) || cli_require(opts, "--index", &index_path) ||
        cli_require(opts, "--data", &data))
        return 1;
    int64_t user, k, n_cand;
    if (cli_get_int(opts, "--user", -1, &user) || cli_get_int(opts, "--k", 10, &k) ||
        cli_get_int(opts, "--candidates", 100, &n_cand))
        return 1;
    if (!cli_has(opts, "--user") && !cli_has(opts, "--history")) {
        fprintf(stderr, "collm recommend: give --user ID or --history IDS\n");
        return 1;
    }
    if (user < -1 || user > INT32_MAX || k < 1 || k > 100000 || n_cand < 1 || n_cand > 100000 || k > n_cand) {
        fprintf(stderr, "collm recommend: out-of-range option (need user >= 0, 1 <= k <= candidates <= 100000)\n");
        return 1;
    }
    double lambda = NAN, pop = NAN;
    if (cli_get_float(opts, "--fusion-lambda", NAN, &lambda) || cli_get_float(opts, "--fusion-popularity", NAN, &pop)) return 1;
    if ((cli_has(opts, "--fusion-lambda") && !(lambda >= 0 && lambda <= COLLM_RERANK_WEIGHT_MAX)) ||
        (cli_has(opts, "--fusion-popularity") && !(pop >= 0 && pop <= COLLM_RERANK_WEIGHT_MAX))) {
        fprintf(stderr, "collm recommend: --fusion-lambda and --fusion-popularity must be in [0, %g]\n", COLLM_RERANK_WEIGHT_MAX);
        return 1;
    }
    int32_t *history = NULL;
    int n_history = 0;
    if (cli_has(opts, "--history") && (n_history = parse_history(cli_get(opts, "--history"), &history)) < 0) return 1;
    cli_rec_setup s;
    if (cli_rec_setup_load(&s, "recommend", ckpt, cli_get(opts, "--base"), index_path, data, cli_threads(opts))) {
        free(history);
        return 1;
    }
    collm_recommend_request req;
    collm_recommend_request_default(&req);
    req.user = (int32_t)user;
    req.history = history;
    req.n_history = n_history;
    req.k = (int)k;
    req.n_candidates = (int)n_cand;
    req.share_prefix = !cli_has(opts, "--no-share");
    req.exclude_rated = cli_has(opts, "--exclude-rated");
    req.fusion_lambda = (float)lambda;
    req.fusion_popularity = (float)pop;
    collm_recommend_item *out = malloc((size_t)k * sizeof *out);
    collm_recommend_info info;
    collm_llm_context *ctx = collm_recommend_context_create(s.model, s.pool);
    int rc = out && ctx ? collm_recommend_for_user(s.model, s.index, s.ds->items, s.hist, &req, ctx, out, &info) : COLLM_ERR;
    int status = 0;
    if (rc != COLLM_OK) {
        status = cli_fail("recommend");
    } else if (cli_has(opts, "--json")) {
        cJSON *root = cJSON_CreateObject();
        if (user >= 0) cJSON_AddNumberToObject(root, "user", (double)user);
        else cJSON_AddNullToObject(root, "user");
        cJSON_AddNumberToObject(root, "k", (double)k);
        cJSON_AddNumberToObject(root, "candidates", info.n_candidates);
        cJSON_AddBoolToObject(root, "cold_start_query", info.used_mean_query);
        cJSON_AddNumberToObject(root, "history_length", info.n_history);
        cJSON_AddNumberToObject(root, "prefix_tokens", info.prefix_tokens);
        cJSON_AddNumberToObject(root, "fusion_lambda", info.fusion_lambda);
        cJSON_AddNumberToObject(root, "fusion_popularity", info.fusion_popularity);
        cJSON_AddNumberToObject(root, "retrieve_ms", info.retrieve_s * 1e3);
        cJSON_AddNumberToObject(root, "rerank_ms", info.rerank_s * 1e3);
        cJSON *items = cJSON_AddArrayToObject(root, "items");
        for (int i = 0; i < info.n_results; i++) {
            cJSON *it = cJSON_CreateObject();
            cJSON_AddNumberToObject(it, "rank", i + 1);
            cJSON_AddNumberToObject(it, "item", out[i].item);
            // JSON must be UTF-8: bytes of a Latin-1 items file become U+FFFD
            const char *title = s.ds->items->title[out[i].item];
            size_t n = strlen(title);
            char *clean = malloc(3 * n + 1);
            if (clean) collm_utf8_sanitize(clean, 3 * n + 1, title, n);
            cJSON_AddStringToObject(it, "title", clean ? clean : "");
            free(clean);
            cJSON_AddNumberToObject(it, "llm_score", out[i].llm_score);
            cJSON_AddNumberToObject(it, "retrieval_score", out[i].retrieval_score);
            cJSON_AddNumberToObject(it, "score", out[i].score);
            cJSON_AddItemToArray(items, it);
        }
        char *text = cJSON_PrintUnformatted(root);
        if (text) printf("%s\n", text);
        else status = 1;
        cJSON_free(text);
        cJSON_Delete(root);
    } else {
        // "user 7" or "a history of 3 items" (the count ran into the words: "a history3")
        printf("top %d for %s%lld%s (%d candidates, %s query, shared prefix %d tokens, fusion lambda %g popularity %g; "
               "retrieve %.1f ms, re-rank %.1f ms)\n",
               info.n_results, user >= 0 ? "user " : "a history of ", user >= 0 ? (long long)user : (long long)n_history,
               user >= 0 ? "" : n_history == 1 ? " item" : " items",
               info.n_candidates, info.used_mean_query ? "history-mean" : "user-vector", info.prefix_tokens,
               info.fusion_lambda, info.fusion_popularity, info.retrieve_s * 1e3, info.rerank_s * 1e3);
        printf("%4s  %7s  %9s  %9s  %9s  %s\n", "rank", "item", "score", "llm", "retrieval", "title");
        for (int i = 0; i < info.n_results; i++)
            printf("%4d  %7d  %9.4f  %9.4f  %9.4f  %s\n", i + 1, out[i].item, out[i].score, out[i].llm_score,
                   out[i].retrieval_score, s.ds->items->title[out[i].item]);
    }
    collm_llm_context_free(ctx);
    free(out);
    free(history);
    cli_rec_setup_free(&s);
    return status;
}
