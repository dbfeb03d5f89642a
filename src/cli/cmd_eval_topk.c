// collm eval-topk: top-K ranking quality of a split, five orders side by side.
//   collm eval-topk --ckpt C.gguf --index items.faiss --data DIR [--split valid] [--candidates 100]
//                   [--max-users N] [--fusion-lambda L] [--fusion-popularity M] [--json] [--dump FILE]
// collm fit-fusion: the weights λ, μ of the fused order fitted on a split
// (valid_small) by grid search, written into the checkpoint (collm.rerank.*).
//   collm fit-fusion --ckpt C.gguf --index items.faiss --data DIR [--split valid_small] [--dry-run]
//
// Users, history, excluded and relevant items: collm_topk_truth_build
// (docs/data.md "Top-K evaluation"); every valid user unless --max-users.
// Per user, with the query vector of recommend (the CF user row, or the mean
// of the history's item vectors for a user the CF model does not know):
//   encoder_full  the CF inner product over the whole catalogue (minus excluded)
//   retrieval     the index's top-N (minus excluded) in inner-product order
//   rerank        those N by the LLM's "Yes" logit (ties: retrieval score)
//   fused         those N by z(llm) + λ z(retrieval) + μ z(log popularity),
//                 λ, μ = --fusion-lambda / --fusion-popularity or the
//                 checkpoint's (recommend.h)
//   default       `collm recommend`'s order without weight flags: fused with
//                 the checkpoint's λ, μ (λ = 1, μ = 0 if unfitted). Every row
//                 leaves out the excluded items (data.md: the history and the
//                 user's train rows); recommend leaves out rated items only
//                 with --exclude-rated (train and valid rows, recommend.h)
// and, in the table only, the ablation fused-no-llm: λ z(retrieval) +
// μ z(log popularity) with the fused row's weights, the LLM left out.
// Metrics: Recall@10/20, NDCG@10/20, HitRate@10, MRR (over the list: MRR@N for
// the top-N orders), means over users with 95 % bootstrap CIs over users
// (collm_bootstrap_ci, 1000 resamples, fixed seed: methods resampled in pairs).
// Cost per user: N candidate prompts through the LLM (shared prefix) and one
// catalogue-sized dot product.
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "collm/dist.h"
#include "collm/error.h"
#include "collm/fileio.h"
#include "collm/metrics.h"
#include "collm/recommend.h"
#include "commands.h"
#include "rec_setup.h"

#define TOPK_N_METRICS 6
static const char *const topk_metric_names[TOPK_N_METRICS] = {"recall@10", "recall@20", "ndcg@10",
                                                              "ndcg@20",   "hit@10",    "mrr"};
#define TOPK_NDCG10 2 // index of the metric fit-fusion maximises

enum { M_FULL, M_RETRIEVAL, M_RERANK, M_FUSED, M_DEFAULT, TOPK_N_METHODS, M_NO_LLM = TOPK_N_METHODS, TOPK_N_ROWS };
static const char *const topk_method_names[TOPK_N_ROWS] = {"encoder_full", "retrieval", "rerank", "fused", "default",
                                                           "fused-no-llm"};

#define TOPK_BOOTSTRAP 1000
#define TOPK_SEED 2023

// What one pass over the users gathers: the candidates and both scores of
// every user (the orders of retrieval / rerank / fused are computed from
// these for any λ), and the encoder_full metrics.
typedef struct {
    int64_t n_users;
    int n_cand;                    // N asked
    const collm_topk_user **user;  // (n_users)
    int *found;                    // (n_users) candidates returned (<= N)
    int32_t *cand;                 // (n_users, N)
    float *ret, *llm, *pop;        // (n_users, N) retrieval score, LLM logit, log popularity
    double *full;                  // (n_users, TOPK_N_METRICS) encoder_full
    double ann_recall;             // mean over users of |index top-N ∩ exact top-N| / N
    int64_t zero_query;            // users (of this rank) with neither a CF row nor a history
} topk_data;

static void topk_data_free(topk_data *t) {
    free(t->user);
    free(t->found);
    free(t->cand);
    free(t->ret);
    free(t->llm);
    free(t->pop);
    free(t->full);
    memset(t, 0, sizeof *t);
}

// The six metrics of one ranked list for one user into v (TOPK_N_METRICS).
static int topk_user_metrics(const int32_t *ranked, int64_t n, const collm_topk_user *u, double *v) {
    const int64_t ks[3] = {10, 20, INT64_MAX};
    collm_topk_at at[3];
    int rc = collm_topk_metrics(ranked, n, u->relevant, u->n_relevant, u->excluded, u->n_excluded, ks, 3, at);
    if (rc) return rc;
    v[0] = at[0].recall;
    v[1] = at[1].recall;
    v[2] = at[0].ndcg;
    v[3] = at[1].ndcg;
    v[4] = at[0].hit;
    v[5] = at[2].rr;
    return COLLM_OK;
}

// mpirun: every rank's users' rows to every rank (rc: this rank's status; all
// fail if one did, since a rank that stopped would never reach the gathers).
static int topk_gather_ranks(topk_data *t, int64_t nu, int N, int rc, double *ann) {
    int bad = rc != COLLM_OK;
    if (collm_dist_allreduce_max_i32(&bad) || bad) return rc ? rc : collm_error(COLLM_ERR, "scoring failed on another rank");
    int size = collm_dist_size();
    int64_t *counts = malloc((size_t)size * sizeof *counts);
    if (!counts) return collm_error(COLLM_ERR_NOMEM, "out of memory");
    collm_dist_counts(nu, size, counts);
    // rows of N values: the counts in values, elements of N x their size
    rc = collm_dist_allgather(t->found, counts, sizeof(int));
    if (!rc) rc = collm_dist_allgather(t->cand, counts, (int64_t)N * sizeof(int32_t));
    if (!rc) rc = collm_dist_allgather(t->ret, counts, (int64_t)N * sizeof(float));
    if (!rc) rc = collm_dist_allgather(t->llm, counts, (int64_t)N * sizeof(float));
    if (!rc) rc = collm_dist_allgather(t->pop, counts, (int64_t)N * sizeof(float));
    if (!rc) rc = collm_dist_allgather(t->full, counts, TOPK_N_METRICS * sizeof(double));
    if (!rc) rc = collm_dist_allreduce_sum_f64(ann, 1);
    free(counts);
    return rc;
}

// Scores every user of t (the first max_users) as described at the top.
// Under mpirun (eval-topk) each rank scores its contiguous share of the users
// and every rank then holds everything (the per-user rows are gathered).
static int topk_gather(const cli_rec_setup *s, const collm_topk_truth *truth, int64_t max_users, int N, topk_data *out) {
    memset(out, 0, sizeof *out);
    int64_t nu = collm_topk_truth_n_users(truth);
    if (nu > max_users) nu = max_users;
    int32_t n_items, n_users_cf;
    int d, du;
    const float *iv = collm_cf_items(s->model, &n_items, &d);
    const float *uv = collm_cf_users(s->model, &n_users_cf, &du);
    out->n_users = nu;
    out->n_cand = N;
    out->user = malloc((size_t)(nu > 0 ? nu : 1) * sizeof *out->user);
    out->found = calloc((size_t)(nu > 0 ? nu : 1), sizeof(int));
    out->cand = malloc((size_t)(nu > 0 ? nu : 1) * N * sizeof(int32_t));
    out->ret = malloc((size_t)(nu > 0 ? nu : 1) * N * sizeof(float));
    out->llm = malloc((size_t)(nu > 0 ? nu : 1) * N * sizeof(float));
    out->pop = calloc((size_t)(nu > 0 ? nu : 1) * N, sizeof(float));
    int32_t n_pop;
    const float *log_pop = collm_recommend_log_popularity(s->hist, &n_pop);
    out->full = malloc((size_t)(nu > 0 ? nu : 1) * TOPK_N_METRICS * sizeof(double));
    int32_t *all_items = malloc((size_t)n_items * sizeof(int32_t)), *ranked = malloc((size_t)n_items * sizeof(int32_t));
    float *all_scores = malloc((size_t)n_items * sizeof(float)), *query = malloc((size_t)d * sizeof(float));
    uint8_t *mark = calloc((size_t)n_items, 1);
    collm_llm_context *ctx = collm_recommend_context_create(s->model, s->pool);
    int rc = out->user && out->found && out->cand && out->ret && out->llm && out->pop && out->full && all_items && ranked &&
                     all_scores && query && mark && ctx
                 ? COLLM_OK
                 : COLLM_ERR_NOMEM;
    double ann = 0;
    const int rank = collm_dist_rank(), size = collm_dist_size();
    int64_t lo, hi;
    collm_dist_slice(nu, rank, size, &lo, &hi);
    for (int64_t i = 0; rc == COLLM_OK && i < nu; i++) out->user[i] = collm_topk_truth_user(truth, i);
    for (int64_t i = lo; rc == COLLM_OK && i < hi; i++) {
        const collm_topk_user *u = out->user[i];
        int known_items = 0; // history items of the catalogue (the mean query's terms)
        for (int64_t j = 0; j < u->n_history; j++) known_items += u->history[j] > 0 && u->history[j] < n_items;
        if (u->user < n_users_cf) memcpy(query, uv + (int64_t)u->user * du, (size_t)d * sizeof(float));
        else if (collm_cf_history_query(s->model, u->user, u->history, u->n_history, query) == 1) {
            // a history encoder's user vector (SASRec, DIN)
        } else if (known_items == 0) {
            // a user the CF model does not know, with no history yet: no query
            // at all (recommend asks for a history); the zero query ties every
            // item, so retrieval gives the index's order and the LLM re-ranks
            // from the prompt alone, and the user still counts in every row
            memset(query, 0, (size_t)d * sizeof(float));
            out->zero_query++;
        } else if ((rc = collm_retrieval_mean_query(iv, n_items, d, u->history, (int)u->n_history, query)))
            collm_error_prefix(rc, "user %d", u->user);
        // encoder_full: every item but the excluded ones
        for (int j = 0; j < u->n_excluded; j++)
            if (u->excluded[j] < n_items) mark[u->excluded[j]] = 1;
        int n_all = 0;
        for (int32_t it = 1; rc == COLLM_OK && it < n_items; it++) {
            if (mark[it]) continue;
            double dot = 0; // as the index: float vectors, summed in double here
            for (int j = 0; j < d; j++) dot += (double)query[j] * iv[(int64_t)it * d + j];
            all_items[n_all] = it;
            all_scores[n_all++] = (float)dot;
        }
        for (int j = 0; j < u->n_excluded; j++)
            if (u->excluded[j] < n_items) mark[u->excluded[j]] = 0;
        if (rc == COLLM_OK) rc = collm_topk_rank(all_items, all_scores, NULL, n_all, ranked);
        if (rc == COLLM_OK) rc = topk_user_metrics(ranked, n_all, u, out->full + i * TOPK_N_METRICS);
        // retrieval top-N and the LLM's scores of those candidates
        int32_t *cand = out->cand + i * N;
        float *ret = out->ret + i * N, *llm = out->llm + i * N;
        int found = 0;
        if (rc == COLLM_OK)
            rc = collm_retrieval_candidates(s->index, query, d, u->excluded, u->n_excluded, N, cand, ret, &found);
        out->found[i] = found;
        for (int j = 0; rc == COLLM_OK && j < found; j++) // (marks below are indexed by item)
            if (cand[j] < 1 || cand[j] >= n_items)
                rc = collm_error(COLLM_ERR_FORMAT, "the index returned item %d, outside the checkpoint's item table "
                                                   "(1..%d): an index of another model?", cand[j], (int)n_items - 1);
        for (int j = 0; rc == COLLM_OK && log_pop && j < found; j++)
            out->pop[i * N + j] = cand[j] < n_pop ? log_pop[cand[j]] : 0;
        int exact_n = N < n_all ? N : n_all, common = 0;
        for (int j = 0; rc == COLLM_OK && j < exact_n; j++) mark[ranked[j]] = 1;
        for (int j = 0; rc == COLLM_OK && j < found; j++) common += mark[cand[j]];
        for (int j = 0; rc == COLLM_OK && j < exact_n; j++) mark[ranked[j]] = 0;
        ann += exact_n > 0 ? (double)common / exact_n : 1.0;
        if (rc == COLLM_OK && found > 0)
            rc = collm_recommend_score_items(s->model, s->ds->items, u->user, u->history, u->n_history, cand, found, 1, ctx,
                                             llm, NULL);
        if (rc) collm_error_prefix(rc, "user %d", u->user);
    }
    if (rc == COLLM_OK && out->zero_query > 0)
        fprintf(stderr, "note: %lld users with neither a CF row nor a history item were ranked from a zero query%s\n",
                (long long)out->zero_query, size > 1 ? " (this rank's)" : "");
    if (size > 1) rc = topk_gather_ranks(out, nu, N, rc, &ann);
    out->ann_recall = nu > 0 ? ann / (double)nu : NAN;
    collm_llm_context_free(ctx);
    free(all_items);
    free(ranked);
    free(all_scores);
    free(query);
    free(mark);
    if (rc) topk_data_free(out);
    return rc;
}

// Metrics (n_users, TOPK_N_METRICS) of one top-N method: M_RETRIEVAL,
// M_RERANK, a fused order with weights lambda, pop (M_FUSED / M_DEFAULT), or
// the same without the LLM (M_NO_LLM: its logits replaced by a constant).
static int topk_method_metrics(const topk_data *t, int method, float lambda, float pop, double *v) {
    int N = t->n_cand;
    int32_t *ranked = malloc((size_t)N * sizeof(int32_t));
    float *fused = malloc((size_t)N * sizeof(float)), *zero = calloc((size_t)N, sizeof(float));
    int rc = ranked && fused && zero ? COLLM_OK : COLLM_ERR_NOMEM;
    for (int64_t i = 0; rc == COLLM_OK && i < t->n_users; i++) {
        const int32_t *cand = t->cand + i * N;
        const float *ret = t->ret + i * N, *llm = method == M_NO_LLM ? zero : t->llm + i * N, *lp = t->pop + i * N;
        int n = t->found[i];
        if (method == M_RETRIEVAL) rc = collm_topk_rank(cand, ret, NULL, n, ranked);
        else if (method == M_RERANK) rc = collm_topk_rank(cand, llm, ret, n, ranked);
        else if ((rc = collm_recommend_fuse(llm, ret, lp, n, lambda, pop, fused)) == COLLM_OK)
            rc = collm_topk_rank(cand, fused, ret, n, ranked); // recommend.c's order
        if (rc == COLLM_OK) rc = topk_user_metrics(ranked, n, t->user[i], v + i * TOPK_N_METRICS);
    }
    free(ranked);
    free(fused);
    free(zero);
    return rc;
}

// --dump: one line per (user, candidate) with both scores and relevance.
static int topk_dump_fn(FILE *f, void *ctx) {
    const topk_data *t = ctx;
    fprintf(f, "uid\tiid\tretrieval\tllm\tlog_pop\trelevant\n");
    for (int64_t i = 0; i < t->n_users; i++) {
        const collm_topk_user *u = t->user[i];
        for (int j = 0; j < t->found[i]; j++) {
            int32_t it = t->cand[i * t->n_cand + j];
            int rel = 0;
            for (int r = 0; r < u->n_relevant && !rel; r++) rel = u->relevant[r] == it;
            fprintf(f, "%d\t%d\t%.6g\t%.6g\t%.6g\t%d\n", u->user, it, t->ret[i * t->n_cand + j], t->llm[i * t->n_cand + j],
                    t->pop[i * t->n_cand + j], rel);
        }
    }
    return COLLM_OK; // collm_write_atomic checks the stream
}

// Through a temp file: a failed write left a truncated dump in place of the old one.
static int topk_dump(const topk_data *t, const char *path) {
    return collm_write_atomic(path, topk_dump_fn, (void *)t);
}

// Paired differences: the default row minus these rows, per user, for these metrics.
static const int topk_delta_rows[3] = {M_FULL, M_RETRIEVAL, M_NO_LLM};
static const int topk_delta_metrics[2] = {2, 1}; // ndcg@10, recall@20

// Mean and 95 % CI over users of default minus row `other` on metric j: a
// paired bootstrap (the same resampled users on both sides).
static int topk_delta_ci(double *const *v, int64_t n_users, int other, int j, collm_ci *ci) {
    double *d = malloc((size_t)(n_users > 0 ? n_users : 1) * sizeof(double));
    if (!d) return COLLM_ERR_NOMEM;
    for (int64_t i = 0; i < n_users; i++)
        d[i] = v[M_DEFAULT][i * TOPK_N_METRICS + j] - v[other][i * TOPK_N_METRICS + j];
    int rc = collm_bootstrap_ci(d, n_users, TOPK_BOOTSTRAP, 0.95, TOPK_SEED, ci);
    free(d);
    return rc;
}

// Mean and 95 % CI of metric j over users of v (n_users, TOPK_N_METRICS).
static int topk_ci(const double *v, int64_t n_users, int j, collm_ci *ci) {
    double *col = malloc((size_t)(n_users > 0 ? n_users : 1) * sizeof(double));
    if (!col) return COLLM_ERR_NOMEM;
    for (int64_t i = 0; i < n_users; i++) col[i] = v[i * TOPK_N_METRICS + j];
    int rc = collm_bootstrap_ci(col, n_users, TOPK_BOOTSTRAP, 0.95, TOPK_SEED, ci);
    free(col);
    return rc;
}

// Loads the setup and the ground truth, checks the shared options.
// The truth points into the split's histories: the split lives as long.
static int topk_setup(const char *command, cli_option *opts, const char *default_split, cli_rec_setup *s,
                      collm_rec_split **split, collm_topk_truth **truth, int64_t *max_users, int *n_cand) {
    const char *ckpt, *index_path, *data, *split_name = cli_get(opts, "--split") ? cli_get(opts, "--split") : default_split;
    if (cli_require(opts, "--ckpt", &ckpt) || cli_require(opts, "--index", &index_path) ||
        cli_require(opts, "--data", &data))
        return 1;
    int64_t cand;
    if (cli_get_int(opts, "--max-users", INT64_MAX, max_users) || cli_get_int(opts, "--candidates", 100, &cand)) return 1;
    if (*max_users < 1) {
        fprintf(stderr, "collm %s: --max-users must be >= 1\n", command);
        return 1;
    }
    if (cand < 1 || cand > 10000) {
        fprintf(stderr, "collm %s: --candidates must be 1..10000\n", command);
        return 1;
    }
    *n_cand = (int)cand;
    if (cli_rec_setup_load(s, command, ckpt, cli_get(opts, "--base"), index_path, data, cli_threads(opts))) return 1;
    collm_rec_split *sp = collm_rec_dataset_load_split(s->ds, split_name);
    int32_t n_items;
    int d;
    collm_cf_items(s->model, &n_items, &d);
    *truth = sp ? collm_topk_truth_build(sp, s->ds->train, n_items < s->ds->items->n ? n_items : s->ds->items->n) : NULL;
    if (!*truth) {
        collm_rec_split_free(sp);
        cli_rec_setup_free(s);
        return cli_fail(command);
    }
    if (collm_topk_truth_n_users(*truth) == 0) {
        fprintf(stderr, "collm %s: no user of %s has a relevant item to find\n", command, split_name);
        collm_topk_truth_free(*truth);
        collm_rec_split_free(sp);
        cli_rec_setup_free(s);
        return 1;
    }
    *split = sp;
    return 0;
}

static void topk_teardown(cli_rec_setup *s, collm_rec_split *split, collm_topk_truth *truth) {
    collm_topk_truth_free(truth);
    collm_rec_split_free(split);
    cli_rec_setup_free(s);
}

int cmd_eval_topk(int argc, char **argv) {
    cli_option opts[] = {
        {"--ckpt", "FILE", "CoLLM checkpoint (stage 2, with CF vectors)", NULL},
        {"--base", "FILE", "base model (default: the path stored in the checkpoint)", NULL},
        {"--index", "FILE", "Faiss index over the checkpoint's item vectors", NULL},
        {"--data", "DIR", "dataset folder", NULL},
        {"--split", "NAME", "split to evaluate: valid | valid_small | test | a path (default valid)", NULL},
        {"--candidates", "N", "retrieved candidates re-ranked by the LLM (default 100)", NULL},
        {"--max-users", "N", "evaluate the first N valid users only, for trials (default all)", NULL},
        {"--fusion-lambda", "L", "lambda of the 'fused' row (default: the checkpoint's, as 'default')", NULL},
        {"--fusion-popularity", "M", "popularity weight of the 'fused' row (default: the checkpoint's)", NULL},
        {"--json", NULL, "print one JSON object {method: {metric: value}} instead of a table", NULL},
        {"--dump", "FILE", "also write every (user, candidate) with both scores and relevance as TSV", NULL},
        CLI_COMMON_OPTIONS,
        {NULL, NULL, NULL, NULL},
    };
    int p = cli_parse(argc, argv, opts,
                      "usage: collm eval-topk --ckpt FILE --index FILE --data DIR [--split valid] [--candidates 100] "
                      "[--max-users N] [--fusion-lambda L] [--fusion-popularity M] [--json] [--dump FILE]");
    if (p) return p > 0 ? 0 : 1;
    double lambda_opt, pop_opt;
    if (cli_get_float(opts, "--fusion-lambda", NAN, &lambda_opt) || cli_get_float(opts, "--fusion-popularity", NAN, &pop_opt))
        return 1;
    if ((cli_has(opts, "--fusion-lambda") && !(lambda_opt >= 0 && lambda_opt <= COLLM_RERANK_WEIGHT_MAX)) ||
        (cli_has(opts, "--fusion-popularity") && !(pop_opt >= 0 && pop_opt <= COLLM_RERANK_WEIGHT_MAX))) {
        fprintf(stderr, "collm eval-topk: --fusion-lambda and --fusion-popularity must be in [0, %g]\n", COLLM_RERANK_WEIGHT_MAX);
        return 1;
    }
    // --dump is written after every user is scored: its folder is checked now
    const char *dump_path = cli_get(opts, "--dump");
    if (dump_path && collm_check_output_path(dump_path)) return cli_fail("eval-topk");
    cli_rec_setup s;
    collm_rec_split *split;
    collm_topk_truth *truth;
    int64_t max_users;
    int N;
    if (topk_setup("eval-topk", opts, "valid", &s, &split, &truth, &max_users, &N)) return 1;
    const char *split_name = cli_get(opts, "--split") ? cli_get(opts, "--split") : "valid";
    // and it must not be a file this run reads (it replaced the checkpoint, the index or the split)
    const cli_input inputs[] = {{"--ckpt", cli_get(opts, "--ckpt")}, {"--base", cli_get(opts, "--base")},
                                {"--index", cli_get(opts, "--index")}, {"--split", split->path}};
    if (cli_check_not_input("--dump", dump_path, inputs, 4, cli_get(opts, "--data"))) {
        topk_teardown(&s, split, truth);
        return cli_fail("eval-topk");
    }
    int fitted = 0;
    float lambda_default, pop_default;
    collm_rerank_weights(s.model, &lambda_default, &pop_default, &fitted);
    float lambda_fused = isnan(lambda_opt) ? lambda_default : (float)lambda_opt;
    float pop_fused = isnan(pop_opt) ? pop_default : (float)pop_opt;
    topk_data t;
    int rc = topk_gather(&s, truth, max_users, N, &t);
    double *v[TOPK_N_ROWS] = {0};
    collm_ci ci[TOPK_N_ROWS][TOPK_N_METRICS];
    if (rc == COLLM_OK) {
        v[M_FULL] = t.full;
        for (int m = 1; m < TOPK_N_ROWS && rc == COLLM_OK; m++) {
            v[m] = malloc((size_t)t.n_users * TOPK_N_METRICS * sizeof(double));
            int own = m == M_FUSED || m == M_NO_LLM;
            if (!v[m]) rc = COLLM_ERR_NOMEM;
            else rc = topk_method_metrics(&t, m, own ? lambda_fused : lambda_default, own ? pop_fused : pop_default, v[m]);
        }
    }
    for (int m = 0; m < TOPK_N_ROWS && rc == COLLM_OK; m++)
        for (int j = 0; j < TOPK_N_METRICS && rc == COLLM_OK; j++) rc = topk_ci(v[m], t.n_users, j, &ci[m][j]);
    collm_ci delta[3][2];
    for (int a = 0; a < 3 && rc == COLLM_OK; a++)
        for (int b = 0; b < 2 && rc == COLLM_OK; b++)
            rc = topk_delta_ci(v, t.n_users, topk_delta_rows[a], topk_delta_metrics[b], &delta[a][b]);
    const int lead = collm_dist_rank() == 0; // under mpirun every rank holds the figures; rank 0 reports
    if (rc == COLLM_OK && lead && dump_path) rc = topk_dump(&t, dump_path);
    int status = 0;
    if (rc != COLLM_OK) {
        status = cli_fail("eval-topk");
    } else if (!lead) {
    } else if (cli_has(opts, "--json")) {
        // top-level keys: the methods only
        cJSON *o = cJSON_CreateObject();
        for (int m = 0; m < TOPK_N_METHODS; m++) {
            cJSON *x = cJSON_AddObjectToObject(o, topk_method_names[m]);
            for (int j = 0; j < TOPK_N_METRICS; j++) cJSON_AddNumberToObject(x, topk_metric_names[j], ci[m][j].mean);
            cJSON *c = cJSON_AddObjectToObject(x, "ci95");
            for (int j = 0; j < TOPK_N_METRICS; j++) {
                double lohi[2] = {ci[m][j].lo, ci[m][j].hi};
                cJSON_AddItemToObject(c, topk_metric_names[j], cJSON_CreateDoubleArray(lohi, 2));
            }
            cJSON_AddNumberToObject(x, "users", (double)t.n_users);
            if (m != M_FULL) cJSON_AddNumberToObject(x, "candidates", N);
            if (m == M_FUSED || m == M_DEFAULT) {
                cJSON_AddNumberToObject(x, "lambda", m == M_FUSED ? lambda_fused : lambda_default);
                cJSON_AddNumberToObject(x, "popularity", m == M_FUSED ? pop_fused : pop_default);
            }
            if (m == M_DEFAULT) { // paired differences: {row: {metric: [mean, lo, hi]}}
                cJSON *dv = cJSON_AddObjectToObject(x, "minus");
                for (int a = 0; a < 3; a++) {
                    cJSON *r = cJSON_AddObjectToObject(dv, topk_method_names[topk_delta_rows[a]]);
                    for (int b = 0; b < 2; b++) {
                        double mlh[3] = {delta[a][b].mean, delta[a][b].lo, delta[a][b].hi};
                        cJSON_AddItemToObject(r, topk_metric_names[topk_delta_metrics[b]], cJSON_CreateDoubleArray(mlh, 3));
                    }
                }
            }
        }
        char *text = cJSON_PrintUnformatted(o);
        if (text) printf("%s\n", text);
        else status = 1;
        cJSON_free(text);
        cJSON_Delete(o);
    } else {
        printf("eval-topk %s: %lld users, %d candidates (index recall@%d vs exact %.4f); fused lambda %g popularity %g, "
               "default lambda %g popularity %g (%s)\n",
               split_name, (long long)t.n_users, N, N, t.ann_recall, lambda_fused, pop_fused, lambda_default, pop_default,
               fitted ? "fitted, in the checkpoint" : "built-in: the checkpoint has none; see collm fit-fusion");
        printf("mean [95%% bootstrap CI over users]\n%-13s", "method");
        for (int j = 0; j < TOPK_N_METRICS; j++) printf(" %-24s", topk_metric_names[j]);
        printf("\n");
        for (int m = 0; m < TOPK_N_ROWS; m++) {
            if (m == M_NO_LLM) printf("ablation (not in --json): the fused row's weights without the LLM\n");
            printf("%-13s", topk_method_names[m]);
            for (int j = 0; j < TOPK_N_METRICS; j++) {
                char cell[64];
                snprintf(cell, sizeof cell, "%.4f [%.4f,%.4f]", ci[m][j].mean, ci[m][j].lo, ci[m][j].hi);
                printf(" %-24s", cell);
            }
            printf("\n");
        }
        printf("paired differences over users, default minus [95%% CI]:\n");
        for (int a = 0; a < 3; a++) {
            printf("  %-13s", topk_method_names[topk_delta_rows[a]]);
            for (int b = 0; b < 2; b++)
                printf("  %s %+.4f [%+.4f,%+.4f]", topk_metric_names[topk_delta_metrics[b]], delta[a][b].mean, delta[a][b].lo,
                       delta[a][b].hi);
            printf("\n");
        }
    }
    for (int m = 1; m < TOPK_N_ROWS; m++) free(v[m]);
    topk_data_free(&t);
    topk_teardown(&s, split, truth);
    return status;
}

int cmd_fit_fusion(int argc, char **argv) {
    cli_option opts[] = {
        {"--ckpt", "FILE", "CoLLM checkpoint (stage 2, with CF vectors); receives collm.rerank.lambda / .popularity", NULL},
        {"--base", "FILE", "base model (default: the path stored in the checkpoint)", NULL},
        {"--index", "FILE", "Faiss index over the checkpoint's item vectors", NULL},
        {"--data", "DIR", "dataset folder", NULL},
        {"--split", "NAME", "split to fit on (default valid_small)", NULL},
        {"--candidates", "N", "retrieved candidates re-ranked by the LLM (default 100)", NULL},
        {"--max-users", "N", "fit on the first N valid users only, for trials (default all)", NULL},
        {"--no-popularity", NULL, "fit lambda only (popularity weight 0)", NULL},
        {"--dry-run", NULL, "print the grid and the chosen weights, leave the checkpoint as it is", NULL},
        {"--json", NULL, "print one JSON object instead of a table", NULL},
        CLI_COMMON_OPTIONS,
        {NULL, NULL, NULL, NULL},
    };
    int p = cli_parse(argc, argv, opts,
                      "usage: collm fit-fusion --ckpt FILE --index FILE --data DIR [--split valid_small] [--candidates 100] "
                      "[--max-users N] [--no-popularity] [--dry-run] [--json]");
    if (p) return p > 0 ? 0 : 1;
    // λ = μ = 0 is the LLM's order, a huge λ the retrieval order (ties by LLM)
    static const float lambdas[] = {0, 0.125f, 0.25f, 0.5f, 0.75f, 1, 1.5f, 2, 3, 4, 6, 8, 16, 32, COLLM_RERANK_WEIGHT_MAX};
    static const float pops[] = {0, 0.25f, 0.5f, 1, 2, 4, 8};
    enum { N_LAMBDA = sizeof lambdas / sizeof lambdas[0], N_POP = sizeof pops / sizeof pops[0], N_GRID = N_LAMBDA * N_POP };
    int n_pop = cli_has(opts, "--no-popularity") ? 1 : N_POP, n_grid = N_LAMBDA * n_pop;
    cli_rec_setup s;
    collm_rec_split *split;
    collm_topk_truth *truth;
    int64_t max_users;
    int N;
    if (topk_setup("fit-fusion", opts, "valid_small", &s, &split, &truth, &max_users, &N)) return 1;
    const char *split_name = cli_get(opts, "--split") ? cli_get(opts, "--split") : "valid_small";
    topk_data t;
    int rc = topk_gather(&s, truth, max_users, N, &t);
    double mean[N_GRID][TOPK_N_METRICS];
    float grid_l[N_GRID], grid_p[N_GRID];
    double *v = rc == COLLM_OK ? malloc((size_t)t.n_users * TOPK_N_METRICS * sizeof(double)) : NULL;
    if (rc == COLLM_OK && !v) rc = COLLM_ERR_NOMEM;
    int best = 0;
    // μ-major, λ-minor, both ascending; ties keep the earlier point (the smaller weights)
    for (int g = 0; g < n_grid && rc == COLLM_OK; g++) {
        grid_p[g] = pops[g / N_LAMBDA];
        grid_l[g] = lambdas[g % N_LAMBDA];
        rc = topk_method_metrics(&t, M_FUSED, grid_l[g], grid_p[g], v);
        for (int j = 0; j < TOPK_N_METRICS && rc == COLLM_OK; j++) {
            double sum = 0;
            for (int64_t i = 0; i < t.n_users; i++) sum += v[i * TOPK_N_METRICS + j];
            mean[g][j] = sum / (double)t.n_users;
        }
        if (rc == COLLM_OK && mean[g][TOPK_NDCG10] > mean[best][TOPK_NDCG10]) best = g; // ties: the smaller λ
    }
    int status = 0;
    if (rc == COLLM_OK && !cli_has(opts, "--dry-run")) {
        const char *ckpt = cli_get(opts, "--ckpt");
        collm_model_free(s.model); // done with it; the file is rewritten below
        s.model = NULL;
        rc = collm_checkpoint_set_rerank(ckpt, grid_l[best], grid_p[best]);
    }
    if (rc != COLLM_OK) {
        status = cli_fail("fit-fusion");
    } else if (cli_has(opts, "--json")) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "lambda", grid_l[best]);
        cJSON_AddNumberToObject(o, "popularity", grid_p[best]);
        cJSON_AddStringToObject(o, "split", split_name);
        cJSON_AddNumberToObject(o, "users", (double)t.n_users);
        cJSON_AddNumberToObject(o, "candidates", N);
        cJSON_AddBoolToObject(o, "written", !cli_has(opts, "--dry-run"));
        cJSON *a = cJSON_AddArrayToObject(o, "grid");
        for (int g = 0; g < n_grid; g++) {
            cJSON *x = cJSON_CreateObject();
            cJSON_AddNumberToObject(x, "lambda", grid_l[g]);
            cJSON_AddNumberToObject(x, "popularity", grid_p[g]);
            for (int j = 0; j < TOPK_N_METRICS; j++) cJSON_AddNumberToObject(x, topk_metric_names[j], mean[g][j]);
            cJSON_AddItemToArray(a, x);
        }
        char *text = cJSON_PrintUnformatted(o);
        if (text) printf("%s\n", text);
        else status = 1;
        cJSON_free(text);
        cJSON_Delete(o);
    } else {
        printf("fit-fusion %s: %lld users, %d candidates; order z(llm) + lambda*z(retrieval) + popularity*z(log popularity), "
               "maximising ndcg@10\n",
               split_name, (long long)t.n_users, N);
        printf("%8s %10s", "lambda", "popularity");
        for (int j = 0; j < TOPK_N_METRICS; j++) printf(" %9s", topk_metric_names[j]);
        printf("\n");
        for (int g = 0; g < n_grid; g++) {
            printf("%8g %10g", grid_l[g], grid_p[g]);
            for (int j = 0; j < TOPK_N_METRICS; j++) printf(" %9.4f", mean[g][j]);
            printf("%s\n", g == best ? "  <- best" : "");
        }
        if (cli_has(opts, "--dry-run"))
            printf("lambda %g popularity %g (dry run: the checkpoint is unchanged)\n", grid_l[best], grid_p[best]);
        else
            printf("lambda %g popularity %g written to %s (%s, %s)\n", grid_l[best], grid_p[best], cli_get(opts, "--ckpt"),
                   COLLM_RERANK_LAMBDA_KEY, COLLM_RERANK_POPULARITY_KEY);
    }
    free(v);
    topk_data_free(&t);
    topk_teardown(&s, split, truth);
    return status;
}
