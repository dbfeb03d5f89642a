// Score fusion with further collaborative encoders (issue 9):
//   score = logit("Yes") + w · cf + Σ_k v_k · extra_k
// The extras are whole CF models (any kind) stored inside the checkpoint
// under the namespace "fuse.K." so that the checkpoint stays one file that
// eval, fit-score and serve read alone. Their weights, like w, are fitted by
// AUC on valid_small (collm fit-score --with), never on the test split.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collm/error.h"
#include "collm/metrics.h"
#include "recommender/collm_internal.h"

#define EXTRA_NS_FMT "fuse.%d."
#define EXTRA_WEIGHT_FMT "collm.score.extra.%d.weight"

// ---------------------------------------------------------------------------
// checkpoint keys

int collm_score_extras_read(collm_model *m, const collm_gguf_file *f, const char *ckpt_path) {
    if (collm_gguf_find_key(f, COLLM_SCORE_EXTRA_COUNT_KEY) < 0) return COLLM_OK;
    int64_t n;
    int rc = collm_gguf_get_i64(f, COLLM_SCORE_EXTRA_COUNT_KEY, &n);
    if (rc) return rc; // the reader's message names the file and the key
    if (n < 0 || n > COLLM_SCORE_EXTRA_MAX)
        return collm_error(COLLM_ERR_FORMAT, "%s: %s = %lld is outside [0, %d]", ckpt_path, COLLM_SCORE_EXTRA_COUNT_KEY,
                           (long long)n, COLLM_SCORE_EXTRA_MAX);
    for (int k = 0; k < (int)n; k++) {
        char ns[32], key[64], kind_key[64];
        snprintf(ns, sizeof ns, EXTRA_NS_FMT, k);
        snprintf(key, sizeof key, EXTRA_WEIGHT_FMT, k);
        snprintf(kind_key, sizeof kind_key, "%scollm.cf.kind", ns);
        // a count larger than what the file holds: say so, not just which key is missing
        if (collm_gguf_find_key(f, key) < 0 || collm_gguf_find_key(f, kind_key) < 0)
            return collm_error(COLLM_ERR_FORMAT, "%s: %s = %lld, but fused encoder %d is missing (no key %s)", ckpt_path,
                               COLLM_SCORE_EXTRA_COUNT_KEY, (long long)n, k,
                               collm_gguf_find_key(f, key) < 0 ? key : kind_key);
        float v;
        if ((rc = collm_gguf_get_f32(f, key, &v))) return rc;
        if (!(v >= 0 && v <= COLLM_SCORE_CF_WEIGHT_MAX)) // NaN fails both comparisons
            return collm_error(COLLM_ERR_FORMAT, "%s: %s = %g is outside [0, %g]", ckpt_path, key, v,
                               COLLM_SCORE_CF_WEIGHT_MAX);
        collm_gguf_file *view = collm_gguf_open_ns(ckpt_path, ns);
        collm_cf_model *cf = view ? collm_cf_model_read(view, ckpt_path) : NULL;
        collm_gguf_close(view);
        if (!cf) return collm_error_prefix(COLLM_ERR_FORMAT, "%s: fused encoder %d (namespace %s)", ckpt_path, k, ns);
        m->score_extra[k] = cf;
        m->score_extra_weight[k] = v;
        m->n_score_extra = k + 1;
    }
    return COLLM_OK;
}

int collm_score_extras_write(const collm_model *m, collm_gguf_writer *w) {
    if (m->n_score_extra == 0) return COLLM_OK;
    int rc = collm_gguf_writer_set_u32(w, COLLM_SCORE_EXTRA_COUNT_KEY, (uint32_t)m->n_score_extra);
    for (int k = 0; !rc && k < m->n_score_extra; k++) {
        char ns[32], key[64];
        snprintf(ns, sizeof ns, EXTRA_NS_FMT, k);
        snprintf(key, sizeof key, EXTRA_WEIGHT_FMT, k);
        if ((rc = collm_gguf_writer_set_f32(w, key, m->score_extra_weight[k]))) break;
        if ((rc = collm_gguf_writer_set_ns(w, ns))) break;
        rc = collm_cf_model_write(m->score_extra[k], w);
        int rc2 = collm_gguf_writer_set_ns(w, NULL);
        if (!rc) rc = rc2;
    }
    return rc;
}

void collm_score_extras_free(collm_model *m) {
    for (int k = 0; k < m->n_score_extra; k++) collm_cf_model_free(m->score_extra[k]);
    m->n_score_extra = 0;
}

int collm_score_extra_count(const collm_model *m) { return m ? m->n_score_extra : 0; }
const char *collm_score_extra_kind(const collm_model *m, int k) {
    return m && k >= 0 && k < m->n_score_extra ? collm_cf_model_kind(m->score_extra[k]) : NULL;
}
const collm_cf_model *collm_score_extra_model(const collm_model *m, int k) {
    return m && k >= 0 && k < m->n_score_extra ? m->score_extra[k] : NULL;
}
float collm_score_extra_weight(const collm_model *m, int k) {
    return m && k >= 0 && k < m->n_score_extra ? m->score_extra_weight[k] : 0.0f;
}

static int score_extras_on(const collm_model *m, const collm_rec_split *split, float *extra, collm_pool *pool) {
    for (int k = 0; k < m->n_score_extra; k++) {
        int rc = collm_cf_model_score_split_known(m->score_extra[k], split, extra + (size_t)k * (size_t)split->n, pool);
        if (rc) return collm_error_prefix(rc, "fused encoder %d (%s)", k, collm_cf_model_kind(m->score_extra[k]));
    }
    return COLLM_OK;
}

int collm_score_split_extras(collm_model *m, const collm_rec_split *split, float *extra) {
    if (!m || !split || (!extra && m->n_score_extra > 0))
        return collm_error(COLLM_ERR_ARG, "collm_score_split_extras: NULL argument");
    return score_extras_on(m, split, extra, m->pool);
}

void collm_score_combine(const collm_model *m, int64_t n, const float *cf, const float *extra, float *scores) {
    const float w = collm_score_cf_weight(m, NULL);
    for (int64_t r = 0; cf && r < n; r++) scores[r] += w * cf[r];
    for (int k = 0; extra && k < m->n_score_extra; k++)
        for (int64_t r = 0; r < n; r++) scores[r] += m->score_extra_weight[k] * extra[(size_t)k * (size_t)n + (size_t)r];
}

int collm_score_has_fusion(const collm_model *m) {
    return m && (collm_score_cf_weight(m, NULL) > 0 || m->n_score_extra > 0);
}

int collm_score_fuse_items(const collm_model *m, int32_t user, const int32_t *his, int64_t n_his, const int32_t *items,
                           int n, const float *llm, float *out) {
    if (!m || !items || !llm || !out || n < 1 || n_his < 0 || (n_his > 0 && !his))
        return collm_error(COLLM_ERR_ARG, "collm_score_fuse_items: NULL argument or no items");
    if (out != llm) memcpy(out, llm, (size_t)n * sizeof *out);
    if (!collm_score_has_fusion(m)) return COLLM_OK;
    // the request as a split of n rows that share the user and the history,
    // scored by the code eval scores a split file with (rows whose ids a
    // model does not know get 0 from it, as there)
    const int w_on = collm_score_cf_weight(m, NULL) > 0;
    const size_t rows = (size_t)n, hl = (size_t)n_his;
    collm_rec_split view = {.path = "(request)", .n = n};
    view.user = collm_malloc(rows * sizeof *view.user);
    view.label = collm_calloc(rows, sizeof *view.label);
    view.timestamp = collm_calloc(rows, sizeof *view.timestamp);
    view.not_cold = collm_malloc(rows * sizeof *view.not_cold);
    view.his_offset = collm_malloc((rows + 1) * sizeof *view.his_offset);
    view.his = collm_malloc((rows * hl > 0 ? rows * hl : 1) * sizeof *view.his);
    float *cf = w_on ? collm_malloc(rows * sizeof *cf) : NULL;
    float *extra = m->n_score_extra > 0 ? collm_malloc((size_t)m->n_score_extra * rows * sizeof *extra) : NULL;
    int rc = view.user && view.label && view.timestamp && view.not_cold && view.his_offset && view.his &&
                     (!w_on || cf) && (m->n_score_extra == 0 || extra)
                 ? COLLM_OK
                 : COLLM_ERR_NOMEM;
    if (rc == COLLM_OK) {
        view.item = (int32_t *)items; // read only: the scorers take the split as const
        view.max_user = user;
        view.max_item = 0;
        for (size_t r = 0; r < rows; r++) {
            view.user[r] = user;
            view.not_cold[r] = 1;
            view.his_offset[r] = (int64_t)(r * hl);
            if (hl) memcpy(view.his + r * hl, his, hl * sizeof *his);
            if (items[r] > view.max_item) view.max_item = items[r];
        }
        view.his_offset[rows] = (int64_t)(rows * hl);
        for (size_t j = 0; j < hl; j++)
            if (his[j] > view.max_item) view.max_item = his[j];
        // no pool: the calling thread alone, so requests on one model can run side by side
        if (cf) rc = collm_cf_scores_on(m, &view, cf, NULL);
        if (rc == COLLM_OK && extra) rc = score_extras_on(m, &view, extra, NULL);
        if (rc == COLLM_OK) collm_score_combine(m, n, cf, extra, out);
    }
    free(view.user);
    free(view.label);
    free(view.timestamp);
    free(view.not_cold);
    free(view.his_offset);
    free(view.his);
    free(cf);
    free(extra);
    return rc;
}

// ---------------------------------------------------------------------------
// rewriting a checkpoint's fusion

static int starts_with(const char *s, const char *prefix) { return strncmp(s, prefix, strlen(prefix)) == 0; }

int collm_checkpoint_set_score_fusion(const char *ckpt_path, float w, int n_extra, const char *const *extra_paths,
                                      const float *v) {
    if (!ckpt_path || n_extra < 0 || n_extra > COLLM_SCORE_EXTRA_MAX || (n_extra > 0 && !v))
        return collm_error(COLLM_ERR_ARG, "collm_checkpoint_set_score_fusion: bad arguments (at most %d extras)",
                           COLLM_SCORE_EXTRA_MAX);
    if (!(w >= 0 && w <= COLLM_SCORE_CF_WEIGHT_MAX))
        return collm_error(COLLM_ERR_ARG, "score weight %g is outside [0, %g]", w, COLLM_SCORE_CF_WEIGHT_MAX);
    for (int k = 0; k < n_extra; k++)
        if (!(v[k] >= 0 && v[k] <= COLLM_SCORE_CF_WEIGHT_MAX))
            return collm_error(COLLM_ERR_ARG, "fused encoder %d: weight %g is outside [0, %g]", k, v[k], COLLM_SCORE_CF_WEIGHT_MAX);
    collm_gguf_file *f = collm_gguf_open(ckpt_path);
    if (!f) return COLLM_ERR;
    collm_gguf_file *src[COLLM_SCORE_EXTRA_MAX] = {0};
    collm_gguf_writer *out = NULL;
    int rc = COLLM_OK;
    if (collm_gguf_find_key(f, "collm.stage") < 0) {
        rc = collm_error(COLLM_ERR_FORMAT, "%s: not a collm checkpoint", ckpt_path);
        goto done;
    }
    if (w > 0 && !collm_gguf_find_tensor(f, "cf.item_embd")) {
        rc = collm_error(COLLM_ERR_ARG, "%s: no collaborative tables to fuse with", ckpt_path);
        goto done;
    }
    int64_t have = 0;
    if (collm_gguf_find_key(f, COLLM_SCORE_EXTRA_COUNT_KEY) >= 0 &&
        (rc = collm_gguf_get_i64(f, COLLM_SCORE_EXTRA_COUNT_KEY, &have)))
        goto done;
    if (!extra_paths && have != n_extra) {
        rc = collm_error(COLLM_ERR_ARG, "%s holds %lld fused encoders, %d weights given", ckpt_path, (long long)have, n_extra);
        goto done;
    }
    // new extras: each must read as a CF model before anything is written
    for (int k = 0; extra_paths && k < n_extra; k++) {
        collm_cf_model *probe = NULL;
        if (!(src[k] = collm_gguf_open(extra_paths[k])) || !(probe = collm_cf_model_read(src[k], extra_paths[k]))) {
            rc = collm_error_prefix(COLLM_ERR_FORMAT, "fused encoder %s", extra_paths[k]);
            goto done;
        }
        collm_cf_model_free(probe);
    }
    if (!(out = collm_gguf_writer_create())) {
        rc = COLLM_ERR_NOMEM;
        goto done;
    }
    // everything but the fusion keys (and, when replacing, the old extras)
    for (int64_t i = 0; !rc && i < collm_gguf_n_kv(f); i++) {
        const char *key = collm_gguf_key(f, i);
        if (strcmp(key, COLLM_SCORE_CF_WEIGHT_KEY) == 0 || starts_with(key, "collm.score.extra.") ||
            (extra_paths && starts_with(key, "fuse.")))
            continue;
        rc = collm_gguf_writer_copy_kv(out, f, i);
    }
    for (int64_t i = 0; !rc && i < collm_gguf_n_tensors(f); i++) {
        const collm_gguf_tensor_info *t = collm_gguf_tensor(f, i);
        if (extra_paths && starts_with(t->name, "fuse.")) continue;
        rc = collm_gguf_writer_add_tensor(out, t->name, t->type, t->n_dims, t->ne, t->data);
    }
    if (!rc) rc = collm_gguf_writer_set_f32(out, COLLM_SCORE_CF_WEIGHT_KEY, w);
    if (!rc && n_extra > 0) rc = collm_gguf_writer_set_u32(out, COLLM_SCORE_EXTRA_COUNT_KEY, (uint32_t)n_extra);
    for (int k = 0; !rc && k < n_extra; k++) {
        char ns[32], key[64];
        snprintf(ns, sizeof ns, EXTRA_NS_FMT, k);
        snprintf(key, sizeof key, EXTRA_WEIGHT_FMT, k);
        rc = collm_gguf_writer_set_f32(out, key, v[k]);
        if (rc || !extra_paths) continue;
        // the model file copied whole (bytes unchanged) into its namespace
        if ((rc = collm_gguf_writer_set_ns(out, ns))) break;
        for (int64_t i = 0; !rc && i < collm_gguf_n_kv(src[k]); i++)
            if (!starts_with(collm_gguf_key(src[k], i), "general.")) rc = collm_gguf_writer_copy_kv(out, src[k], i);
        for (int64_t i = 0; !rc && i < collm_gguf_n_tensors(src[k]); i++) {
            const collm_gguf_tensor_info *t = collm_gguf_tensor(src[k], i);
            rc = collm_gguf_writer_add_tensor(out, t->name, t->type, t->n_dims, t->ne, t->data);
        }
        int rc2 = collm_gguf_writer_set_ns(out, NULL);
        if (!rc) rc = rc2;
    }
    if (!rc) rc = collm_gguf_writer_write(out, ckpt_path);
done:
    collm_gguf_writer_free(out);
    for (int k = 0; k < COLLM_SCORE_EXTRA_MAX; k++) collm_gguf_close(src[k]);
    collm_gguf_close(f);
    return rc;
}

// ---------------------------------------------------------------------------
// fitting the weights

int collm_fit_score_weights(const float *llm, const float *const *parts, int n_parts, const collm_rec_split *split,
                            const float *grid, int n_grid, float *w_out, double *auc_out) {
    if (!llm || !parts || n_parts < 1 || !split || !grid || n_grid < 1 || !w_out)
        return collm_error(COLLM_ERR_ARG, "collm_fit_score_weights: NULL argument or empty grid");
    for (int p = 0; p < n_parts; p++)
        if (!parts[p]) return collm_error(COLLM_ERR_ARG, "collm_fit_score_weights: part %d is NULL", p);
    for (int g = 0; g < n_grid; g++)
        if (!(grid[g] >= 0 && grid[g] <= COLLM_SCORE_CF_WEIGHT_MAX))
            return collm_error(COLLM_ERR_ARG, "score weight grid value %g is outside [0, %g]", grid[g], COLLM_SCORE_CF_WEIGHT_MAX);
    const int64_t n = split->n;
    float *base = collm_malloc((size_t)(n > 0 ? n : 1) * sizeof *base), *s = collm_malloc((size_t)(n > 0 ? n : 1) * sizeof *s);
    if (!base || !s) {
        free(base), free(s);
        return COLLM_ERR_NOMEM;
    }
    for (int p = 0; p < n_parts; p++) w_out[p] = 0;
    double best = -1;
    // coordinate ascent: each weight in turn over the grid, the others held;
    // it stops when a whole sweep changes nothing (AUC never decreases)
    for (int sweep = 0, changed = 1; changed && sweep < 8; sweep++) {
        changed = 0;
        for (int p = 0; p < n_parts; p++) {
            for (int64_t r = 0; r < n; r++) {
                float b = llm[r];
                for (int q = 0; q < n_parts; q++)
                    if (q != p) b += w_out[q] * parts[q][r];
                base[r] = b;
            }
            float best_w = w_out[p];
            double best_p = -1;
            for (int g = 0; g < n_grid; g++) {
                for (int64_t r = 0; r < n; r++) s[r] = base[r] + grid[g] * parts[p][r];
                double auc = collm_metrics_auc(s, split->label, n);
                if (auc > best_p || (auc == best_p && grid[g] < best_w)) {
                    best_p = auc;
                    best_w = grid[g];
                }
            }
            if (best_w != w_out[p] && best_p > best) changed = 1;
            if (best_p >= best) {
                w_out[p] = best_w;
                best = best_p;
            }
        }
    }
    free(base), free(s);
    if (!(best >= 0)) return collm_error(COLLM_ERR_ARG, "the split's AUC is undefined (one class only?)");
    if (auc_out) *auc_out = best;
    return COLLM_OK;
}
