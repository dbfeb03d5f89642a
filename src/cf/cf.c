// The collaborative-model handle: kind table, id checks, split scoring and
// evaluation, and the GGUF container shared by all kinds (see collm/cf.h).
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cf/cf_internal.h"
#include "cf/cf_nn.h"
#include "cf/encoders.h"
#include "collm/dist.h"
#include "collm/error.h"

// Every kind collm knows; a new one is one more line.
static const collm_cf_kind *const cf_kinds[] = {&collm_cf_kind_mf, &collm_cf_kind_lightgcn, &collm_cf_kind_mfbias,
                                                 &collm_cf_kind_sasrec, &collm_cf_kind_din, &collm_cf_kind_ctx};
enum { CF_N_KINDS = sizeof cf_kinds / sizeof cf_kinds[0] };

static const collm_cf_kind *cf_find_kind(const char *name, size_t len) {
    for (size_t k = 0; k < CF_N_KINDS; k++)
        if (strlen(cf_kinds[k]->name) == len && memcmp(cf_kinds[k]->name, name, len) == 0) return cf_kinds[k];
    return NULL;
}

// "mf, lightgcn, ..." for error messages (one buffer per thread: two threads
// may name an unknown kind at once).
static const char *cf_kind_list(void) {
    static _Thread_local char buf[128];
    size_t o = 0;
    buf[0] = 0;
    for (size_t k = 0; k < CF_N_KINDS && o < sizeof buf; k++)
        o += (size_t)snprintf(buf + o, sizeof buf - o, "%s%s", k ? ", " : "", cf_kinds[k]->name);
    return buf;
}

static const collm_cf_kind *cf_kind_or_error(const char *name) {
    const collm_cf_kind *kind = name ? cf_find_kind(name, strlen(name)) : NULL;
    if (!kind) collm_error(COLLM_ERR_ARG, "cf: unknown model kind '%s' (known: %s)", name ? name : "(null)", cf_kind_list());
    return kind;
}

void collm_cf_train_options_default(collm_cf_train_options *opt) {
    // ML-1M defaults, tuned on valid only (bench/mf.sh): lr 1e-2 (the authors'
    // 1e-3 needs ~465 epochs), weight decay 1e-4 as in the reference (5e-5 and
    // 2e-4 peaked lower: 0.664 / 0.671), patience 20 (the reference's 100 was
    // for lr 1e-3). Measured on 2 cores: early stop after 142 epochs in 9 s,
    // best epoch 122, valid AUC 0.6762, UAUC 0.6313 (reference: 0.6760 / 0.6192).
    memset(opt, 0, sizeof *opt);
    opt->lr = 1e-2;
    opt->weight_decay = 1e-4;
    opt->beta1 = 0.9;
    opt->beta2 = 0.999;
    opt->eps = 1e-8;
    opt->batch = 2048;
    opt->max_epochs = 300;
    opt->patience = 20;
    opt->stall_epochs = 500; // the reference's extra stop: epoch > 500 with best AUC < 0.52
    opt->stall_auc = 0.52;
    opt->seed = 2023;
    opt->eval_split = "valid";
    opt->dropout = 0.0;
}

int collm_cf_train_options_kind(const char *kind_name, collm_cf_train_options *opt) {
    collm_cf_train_options_default(opt);
    const collm_cf_kind *kind = cf_kind_or_error(kind_name);
    if (!kind) return COLLM_ERR_ARG;
    if (kind->train_defaults) kind->train_defaults(opt);
    return COLLM_OK;
}

int collm_cf_kind_uses_history(const char *kind_name) {
    const collm_cf_kind *kind = kind_name ? cf_find_kind(kind_name, strlen(kind_name)) : NULL;
    return kind ? kind->uses_history : -1;
}

int collm_cf_hparams_default(const char *kind_name, collm_cf_hparams *hp) {
    memset(hp, 0, sizeof *hp);
    hp->dim = 256;
    const collm_cf_kind *kind = cf_kind_or_error(kind_name);
    if (!kind) return COLLM_ERR_ARG;
    if (kind->hparams_default) kind->hparams_default(hp);
    return COLLM_OK;
}

static collm_cf_model *cf_model_alloc(const collm_cf_kind *kind, int32_t n_users, int32_t n_items,
                                      const collm_cf_hparams *hp) {
    if (n_users < 1 || n_items < 1 || hp->dim < 1 || hp->dim > 65536) {
        collm_error(COLLM_ERR_ARG, "cf: bad model size: %d users, %d items, dim %d", (int)n_users, (int)n_items,
                    hp->dim);
        return NULL;
    }
    if (hp->n_layers < 0 || hp->n_layers > 64 || hp->n_heads < 0 || hp->n_heads > 4096 || hp->max_len < 0 ||
        hp->max_len > 4096) {
        collm_error(COLLM_ERR_ARG, "cf: bad %s shape: %d layers, %d heads, history window %d", kind->name,
                    hp->n_layers, hp->n_heads, hp->max_len);
        return NULL;
    }
    collm_cf_model *m = collm_calloc(1, sizeof *m);
    if (!m) return NULL;
    m->kind = kind;
    m->hp = *hp;
    m->dim = hp->dim;
    m->n_users = n_users;
    m->n_items = n_items;
    return m;
}

collm_cf_model *collm_cf_model_create_hp(const char *kind_name, int32_t n_users, int32_t n_items,
                                         const collm_cf_hparams *hp, uint64_t seed) {
    const collm_cf_kind *kind = cf_kind_or_error(kind_name);
    if (!kind || !hp) {
        if (kind) collm_error(COLLM_ERR_ARG, "collm_cf_model_create_hp: NULL hparams");
        return NULL;
    }
    collm_cf_model *m = cf_model_alloc(kind, n_users, n_items, hp);
    if (!m) return NULL;
    if (kind->init(m, seed, 1) != COLLM_OK) {
        collm_cf_model_free(m);
        return NULL;
    }
    return m;
}

collm_cf_model *collm_cf_model_create(const char *kind_name, int32_t n_users, int32_t n_items, int dim, uint64_t seed) {
    collm_cf_hparams hp;
    if (collm_cf_hparams_default(kind_name, &hp) != COLLM_OK) return NULL;
    hp.dim = dim;
    return collm_cf_model_create_hp(kind_name, n_users, n_items, &hp, seed);
}

void collm_cf_model_free(collm_cf_model *m) {
    if (!m) return;
    if (m->impl) m->kind->free_impl(m);
    free(m->eval_split);
    free(m->dataset_dir);
    free(m->train_split);
    free(m->fit_split);
    free(m);
}

const char *collm_cf_model_kind(const collm_cf_model *m) { return m->kind->name; }
int collm_cf_model_dim(const collm_cf_model *m) { return m->dim; }
int32_t collm_cf_model_n_users(const collm_cf_model *m) { return m->n_users; }
int32_t collm_cf_model_n_items(const collm_cf_model *m) { return m->n_items; }
void collm_cf_model_hparams(const collm_cf_model *m, collm_cf_hparams *out) { *out = m->hp; }
int collm_cf_model_uses_history(const collm_cf_model *m) { return m->kind->uses_history; }
int collm_cf_model_train_record(const collm_cf_model *m, collm_cf_train_options *opt, collm_cf_train_result *res) {
    if (!m || !m->has_train) return 0;
    if (opt) *opt = m->train_opt;
    if (res) *res = m->train_result;
    return 1;
}
const char *collm_cf_model_eval_split(const collm_cf_model *m) { return m && m->eval_split ? m->eval_split : ""; }
const char *collm_cf_model_train_split(const collm_cf_model *m) { return m && m->train_split ? m->train_split : ""; }
const char *collm_cf_model_fit_split(const collm_cf_model *m) { return m && m->fit_split ? m->fit_split : ""; }

int collm_cf_model_user_vector(const collm_cf_model *m, int32_t user, float *out) {
    if (user < 0 || user >= m->n_users)
        return collm_error(COLLM_ERR_ARG, "cf: user id %d outside the table (n_users %d)", (int)user, (int)m->n_users);
    if (!m->kind->user_vector)
        return collm_error(COLLM_ERR_ARG,
                           "cf: a %s model's user vector depends on the history; use collm_cf_model_sample_vectors",
                           m->kind->name);
    m->kind->user_vector(m, user, out);
    return COLLM_OK;
}

// ctx has no vectors: it scores rows for fusion only.
static int cf_no_vectors(const collm_cf_model *m) {
    return collm_error(COLLM_ERR_UNSUPPORTED,
                       "cf: a %s model has no user or item vectors (it only scores rows for fusion: fit-score --with); "
                       "CoLLM's slots, index and retrieval need an encoder (mf, mfbias, lightgcn, sasrec, din)",
                       m->kind->name);
}

int collm_cf_model_item_vector(const collm_cf_model *m, int32_t item, float *out) {
    if (item < 0 || item >= m->n_items)
        return collm_error(COLLM_ERR_ARG, "cf: item id %d outside the table (n_items %d)", (int)item, (int)m->n_items);
    if (!m->kind->item_vector) return cf_no_vectors(m);
    m->kind->item_vector(m, item, out);
    return COLLM_OK;
}

int collm_cf_model_score(const collm_cf_model *m, int32_t user, int32_t item, float *out) {
    if (user < 0 || user >= m->n_users)
        return collm_error(COLLM_ERR_ARG, "cf: user id %d outside the table (n_users %d)", (int)user, (int)m->n_users);
    if (item < 0 || item >= m->n_items)
        return collm_error(COLLM_ERR_ARG, "cf: item id %d outside the table (n_items %d)", (int)item, (int)m->n_items);
    if (!m->kind->score)
        return collm_error(COLLM_ERR_ARG, "cf: a %s model scores a sample with its history; use collm_cf_model_score_sample",
                           m->kind->name);
    *out = m->kind->score(m, user, item);
    return COLLM_OK;
}

// Checks the ids of one sample and builds its history window (win: hp.max_len).
static int cf_sample_check(const collm_cf_model *m, int32_t user, const int32_t *his, int64_t n_his, int32_t item,
                           int32_t *win) {
    if (user < 0 || user >= m->n_users)
        return collm_error(COLLM_ERR_ARG, "cf: user id %d outside the table (n_users %d)", (int)user, (int)m->n_users);
    if (item < 0 || item >= m->n_items)
        return collm_error(COLLM_ERR_ARG, "cf: item id %d outside the table (n_items %d)", (int)item, (int)m->n_items);
    if (n_his < 0 || (n_his > 0 && !his)) return collm_error(COLLM_ERR_ARG, "cf: bad history (%lld ids)", (long long)n_his);
    if (!m->kind->uses_history) return COLLM_OK;
    for (int64_t k = 0; k < n_his; k++)
        if (his[k] < 0 || his[k] >= m->n_items)
            return collm_error(COLLM_ERR_ARG, "cf: history item %lld: id %d outside the table (n_items %d)", (long long)k,
                               (int)his[k], (int)m->n_items);
    cf_history_window(his, NULL, n_his, m->hp.max_len, win);
    return COLLM_OK;
}

int collm_cf_model_sample_vectors(const collm_cf_model *m, int32_t user, const int32_t *his, int64_t n_his, int32_t item,
                                  float *user_out, float *item_out) {
    if (!m) return collm_error(COLLM_ERR_ARG, "collm_cf_model_sample_vectors: NULL model");
    if (!m->kind->item_vector) return cf_no_vectors(m);
    int32_t *win = collm_malloc(((size_t)m->hp.max_len + 1) * sizeof *win);
    float *tmp = collm_malloc(2 * (size_t)m->dim * sizeof *tmp);
    int rc = win && tmp ? cf_sample_check(m, user, his, n_his, item, win) : COLLM_ERR_NOMEM;
    if (!rc && m->kind->uses_history) {
        rc = m->kind->sample_vectors(m, 1, &user, &item, win, tmp, tmp + m->dim, NULL);
        if (!rc && user_out) memcpy(user_out, tmp, (size_t)m->dim * sizeof *tmp);
        if (!rc && item_out) memcpy(item_out, tmp + m->dim, (size_t)m->dim * sizeof *tmp);
    } else if (!rc) {
        if (user_out) m->kind->user_vector(m, user, user_out);
        if (item_out) m->kind->item_vector(m, item, item_out);
    }
    free(win);
    free(tmp);
    return rc;
}

int collm_cf_model_history_query(const collm_cf_model *m, int32_t user, const int32_t *his, int64_t n_his,
                                 float *out) {
    if (!m || !out) return collm_error(COLLM_ERR_ARG, "collm_cf_model_history_query: NULL argument");
    if (!m->kind->uses_history)
        return collm_error(COLLM_ERR_UNSUPPORTED, "cf: a %s model's user vector comes from its table", m->kind->name);
    if (m->kind == &collm_cf_kind_sasrec) user = 0; // SASRec reads the history only
    return collm_cf_model_sample_vectors(m, user, his, n_his, 0, out, NULL);
}

int collm_cf_model_score_sample(const collm_cf_model *m, int32_t user, const int32_t *his, int64_t n_his, int32_t item,
                                float *out) {
    if (!m || !out) return collm_error(COLLM_ERR_ARG, "collm_cf_model_score_sample: NULL argument");
    int32_t *win = collm_malloc(((size_t)m->hp.max_len + 1) * sizeof *win);
    int rc = win ? cf_sample_check(m, user, his, n_his, item, win) : COLLM_ERR_NOMEM;
    if (!rc && m->kind->uses_history) rc = m->kind->score_samples(m, 1, &user, &item, win, out, NULL);
    else if (!rc) *out = m->kind->score(m, user, item);
    free(win);
    return rc;
}

int collm_cf_check_split_ids(const collm_cf_model *m, const collm_rec_split *split) {
    const char *path = split->path ? split->path : "(split)";
    for (int64_t r = 0; r < split->n; r++) {
        // line r + 2: the header is line 1
        if (split->user[r] < 0 || split->user[r] >= m->n_users)
            return collm_error(COLLM_ERR_ARG,
                               "%s: row %lld (line %lld): user id %d is beyond the CF model's user table "
                               "(ids 0..%d); was the model trained on this dataset?",
                               path, (long long)r, (long long)r + 2, (int)split->user[r], (int)m->n_users - 1);
        if (split->item[r] < 0 || split->item[r] >= m->n_items)
            return collm_error(COLLM_ERR_ARG,
                               "%s: row %lld (line %lld): item id %d is beyond the CF model's item table "
                               "(ids 0..%d); was the model trained on this dataset?",
                               path, (long long)r, (long long)r + 2, (int)split->item[r], (int)m->n_items - 1);
        if (!m->kind->uses_history || !split->his_offset) continue;
        for (int64_t k = split->his_offset[r]; k < split->his_offset[r + 1]; k++)
            if (split->his[k] < 0 || split->his[k] >= m->n_items)
                return collm_error(COLLM_ERR_ARG,
                                   "%s: row %lld (line %lld): history item id %d is beyond the CF model's item table "
                                   "(ids 0..%d); was the model trained on this dataset?",
                                   path, (long long)r, (long long)r + 2, (int)split->his[k], (int)m->n_items - 1);
    }
    return COLLM_OK;
}

typedef struct {
    const collm_cf_model *m;
    const collm_rec_split *split;
    float *scores;
} cf_score_task;

static void cf_score_rows(void *ctx, int64_t begin, int64_t end, int thread_index) {
    (void)thread_index;
    cf_score_task *t = ctx;
    for (int64_t r = begin; r < end; r++) t->scores[r] = t->m->kind->score(t->m, t->split->user[r], t->split->item[r]);
}

// History kinds: windows of CF_SCORE_CHUNK rows at a time.
enum { CF_SCORE_CHUNK = 4096 };

static int cf_score_split_history(const collm_cf_model *m, const collm_rec_split *split, float *scores, collm_pool *pool) {
    const int L = m->hp.max_len;
    int64_t cap = split->n < CF_SCORE_CHUNK ? split->n : CF_SCORE_CHUNK;
    int32_t *win = collm_malloc((size_t)(cap > 0 ? cap : 1) * ((size_t)L + 1) * sizeof *win);
    if (!win) return COLLM_ERR_NOMEM;
    int rc = COLLM_OK;
    for (int64_t off = 0; off < split->n && !rc; off += cap) {
        int64_t n = split->n - off < cap ? split->n - off : cap;
        for (int64_t r = 0; r < n; r++) cf_split_window(split, off + r, L, win + r * L);
        rc = m->kind->score_samples(m, n, split->user + off, split->item + off, win, scores + off, pool);
    }
    free(win);
    return rc;
}

int collm_cf_model_score_split(const collm_cf_model *m, const collm_rec_split *split, float *scores, collm_pool *pool) {
    if (!m || !split || !scores) return collm_error(COLLM_ERR_ARG, "collm_cf_model_score_split: NULL argument");
    int rc = collm_cf_check_split_ids(m, split);
    if (rc) return rc;
    if (m->kind->uses_history) return cf_score_split_history(m, split, scores, pool);
    cf_score_task t = {m, split, scores};
    collm_pool_for(pool, split->n, 256, cf_score_rows, &t);
    return COLLM_OK;
}

int collm_cf_model_score_split_known(const collm_cf_model *cf, const collm_rec_split *split, float *out, collm_pool *pool) {
    if (!cf || !split || !out) return collm_error(COLLM_ERR_ARG, "collm_cf_model_score_split_known: NULL argument");
    // rows whose user, item or history ids it does not know are scored as
    // (user 0, item 0, no history) and then zeroed: a copy of the split's
    // ids and packed histories with those rows emptied
    const int64_t n = split->n;
    const int32_t nu = collm_cf_model_n_users(cf), ni = collm_cf_model_n_items(cf);
    const int64_t n_his = split->his_offset ? split->his_offset[n] : 0;
    int32_t *u = collm_malloc((size_t)(n > 0 ? n : 1) * sizeof *u), *it = collm_malloc((size_t)(n > 0 ? n : 1) * sizeof *it);
    int64_t *off = collm_malloc(((size_t)n + 1) * sizeof *off);
    int32_t *his = collm_malloc((size_t)(n_his > 0 ? n_his : 1) * sizeof *his);
    int8_t *hl = split->his_label ? collm_malloc((size_t)(n_his > 0 ? n_his : 1)) : NULL;
    int8_t *known = collm_malloc((size_t)(n > 0 ? n : 1));
    int rc = u && it && off && his && known && (!split->his_label || hl) ? COLLM_OK : COLLM_ERR_NOMEM;
    int64_t o = 0;
    for (int64_t r = 0; !rc && r < n; r++) {
        const int64_t h0 = split->his_offset ? split->his_offset[r] : 0, h1 = split->his_offset ? split->his_offset[r + 1] : 0;
        int ok = split->user[r] >= 0 && split->user[r] < nu && split->item[r] >= 0 && split->item[r] < ni;
        for (int64_t k = h0; ok && k < h1; k++) ok = split->his[k] >= 0 && split->his[k] < ni;
        known[r] = (int8_t)ok;
        u[r] = ok ? split->user[r] : 0;
        it[r] = ok ? split->item[r] : 0;
        off[r] = o;
        if (!ok) continue;
        memcpy(his + o, split->his + h0, (size_t)(h1 - h0) * sizeof *his);
        if (hl) memcpy(hl + o, split->his_label + h0, (size_t)(h1 - h0));
        o += h1 - h0;
    }
    if (!rc) {
        off[n] = o;
        collm_rec_split view = *split;
        view.user = u, view.item = it, view.his_offset = off, view.his = his, view.his_label = hl;
        rc = collm_cf_model_score_split(cf, &view, out, pool);
    }
    for (int64_t r = 0; !rc && r < n; r++)
        if (!known[r]) out[r] = 0.0f;
    free(u), free(it), free(off), free(his), free(hl), free(known);
    return rc;
}

int cf_score_split_dist(const collm_cf_model *m, const collm_rec_split *split, float *scores, collm_pool *pool) {
    const int rank = collm_dist_rank(), size = collm_dist_size();
    if (size == 1) return collm_cf_model_score_split(m, split, scores, pool);
    int64_t lo, hi;
    collm_dist_slice(split->n, rank, size, &lo, &hi);
    collm_rec_split mine = collm_rec_split_rows(split, lo, hi);
    int rc = mine.n > 0 ? collm_cf_model_score_split(m, &mine, scores + lo, pool) : COLLM_OK;
    int bad = rc != COLLM_OK; // every rank must reach the gather: agree on a failure first
    if (collm_dist_allreduce_max_i32(&bad) || bad) return rc ? rc : collm_error(COLLM_ERR, "scoring failed on another rank");
    int64_t *counts = collm_malloc((size_t)size * sizeof *counts);
    if (!counts) return COLLM_ERR_NOMEM;
    collm_dist_counts(split->n, size, counts);
    rc = collm_dist_allgather(scores, counts, sizeof(float));
    free(counts);
    return rc;
}

int collm_cf_model_evaluate(const collm_cf_model *m, const collm_rec_split *split, collm_metrics_report *out, collm_pool *pool) {
    if (!m || !split || !out) return collm_error(COLLM_ERR_ARG, "collm_cf_model_evaluate: NULL argument");
    float *scores = collm_malloc((size_t)(split->n > 0 ? split->n : 1) * sizeof *scores);
    if (!scores) return COLLM_ERR_NOMEM;
    int rc = collm_cf_model_score_split(m, split, scores, pool);
    if (!rc) rc = collm_metrics_evaluate(split, scores, out);
    free(scores);
    return rc;
}

static char *cf_strdup(const char *s) {
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    char *d = collm_malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

// The training rows' path for the record: each " + "-joined part resolved
// (realpath; as given when it does not resolve), so that a later run from
// another folder can tell which files they were. NULL when out of memory.
static char *cf_resolved_parts(const char *paths) {
    size_t cap = 1, len = 0;
    char *out = NULL;
    for (const char *p = paths;;) {
        const char *end = strstr(p, " + ");
        const size_t n = end ? (size_t)(end - p) : strlen(p);
        char given[PATH_MAX], abs[PATH_MAX];
        snprintf(given, sizeof given, "%.*s", (int)n, p);
        const char *part = realpath(given, abs) ? abs : given;
        cap += strlen(part) + 3;
        char *grown = realloc(out, cap);
        if (!grown) {
            free(out);
            return NULL;
        }
        out = grown;
        len += (size_t)sprintf(out + len, "%s%s", len ? " + " : "", part);
        if (!end) return out;
        p = end + 3;
    }
}

// keeps the training record for collm_cf_model_save: the options and result,
// the evaluation split, the dataset folder and the training rows
static void cf_keep_record(collm_cf_model *m, const collm_cf_train_options *opt, const collm_cf_train_result *res,
                           const collm_rec_dataset *ds) {
    free(m->eval_split);
    free(m->dataset_dir);
    free(m->train_split);
    m->eval_split = cf_strdup(opt->eval_split ? opt->eval_split : "");
    m->dataset_dir = cf_strdup(ds->dir ? ds->dir : "");
    m->train_split = cf_resolved_parts(ds->train->path ? ds->train->path : "");
    m->train_opt = *opt;
    m->train_opt.eval_split = m->eval_split;
    m->train_result = *res;
    m->has_train = 1;
}

int collm_cf_model_train(collm_cf_model *m, const collm_rec_dataset *ds, const collm_cf_train_options *opt_in, collm_pool *pool,
                   collm_cf_progress_fn progress, void *progress_ctx, collm_cf_train_result *result) {
    if (!m || !ds || !ds->train) return collm_error(COLLM_ERR_ARG, "collm_cf_model_train: no model or no train split");
    collm_cf_train_options opt;
    if (opt_in) opt = *opt_in;
    else collm_cf_train_options_default(&opt);
    if (!(opt.lr > 0) || !(opt.weight_decay >= 0) || opt.batch < 1 || opt.max_epochs < 0 || opt.patience < 0 ||
        !(opt.beta1 >= 0 && opt.beta1 < 1) || !(opt.beta2 >= 0 && opt.beta2 < 1) || !(opt.eps > 0) ||
        !(opt.dropout >= 0 && opt.dropout < 1))
        return collm_error(COLLM_ERR_ARG,
                           "collm_cf_model_train: bad options (lr %g, wd %g, batch %d, max_epochs %d, patience %d, "
                           "dropout %g)",
                           opt.lr, opt.weight_decay, opt.batch, opt.max_epochs, opt.patience, opt.dropout);
    int rc = collm_cf_check_split_ids(m, ds->train);
    if (rc) return rc;
    // data parallel (mpirun): every batch is split over the ranks (rows;
    // SASRec: whole windows), except DIN's, whose batch normalisation takes
    // its statistics over the whole batch (a slice would change them)
    if (collm_dist_size() > 1 && strcmp(m->kind->name, "din") == 0)
        return collm_error(COLLM_ERR_UNSUPPORTED,
                           "din does not train data parallel (its batch normalisation statistics span the whole "
                           "batch); run it as one process (mf, mfbias, lightgcn and sasrec run under mpirun)");
    if (collm_dist_size() > opt.batch)
        return collm_error(COLLM_ERR_ARG, "batch %d is smaller than the %d ranks (each rank takes a slice of every batch)",
                           opt.batch, collm_dist_size());

    // The evaluation split: a split the dataset already holds, else a file.
    const collm_rec_split *eval = NULL;
    collm_rec_split *eval_owned = NULL;
    if (opt.eval_split && *opt.eval_split) {
        if (strcmp(opt.eval_split, "valid") == 0 && ds->valid) eval = ds->valid;
        else if (strcmp(opt.eval_split, "valid_small") == 0 && ds->valid_small) eval = ds->valid_small;
        else if (strcmp(opt.eval_split, "train") == 0) eval = ds->train;
        else {
            eval = eval_owned = collm_rec_dataset_load_split(ds, opt.eval_split);
            if (!eval) return collm_error_prefix(COLLM_ERR_ARG, "collm_cf_model_train: eval split '%s'", opt.eval_split);
        }
        if ((rc = collm_cf_check_split_ids(m, eval))) {
            collm_rec_split_free(eval_owned);
            return rc;
        }
    }

    collm_cf_train_result res = {0};
    if (m->kind->side_info && (rc = m->kind->side_info(m, ds))) {
        collm_rec_split_free(eval_owned);
        return rc;
    }
    rc = m->kind->train(m, ds->train, eval, &opt, pool, progress, progress_ctx, &res);
    // (a kind that fits its weights on the evaluation rows: their file, resolved)
    char *fit_split = !rc && m->kind->fits_on_eval && eval && eval->path ? cf_resolved_parts(eval->path) : NULL;
    collm_rec_split_free(eval_owned);
    if (rc) return rc;

    cf_keep_record(m, &opt, &res, ds);
    free(m->fit_split);
    m->fit_split = fit_split;
    if (result) *result = res;
    return COLLM_OK;
}

collm_cf_model *collm_cf_model_refit(const collm_cf_model *from, const collm_rec_dataset *ds, collm_pool *pool,
                                     collm_cf_progress_fn progress, void *progress_ctx, collm_cf_train_result *result) {
    if (!from || !ds || !ds->train) {
        collm_error(COLLM_ERR_ARG, "collm_cf_model_refit: no model or no train split");
        return NULL;
    }
    const char *kind = from->kind->name;
    if (!from->has_train) {
        collm_error(COLLM_ERR_ARG, "the %s model has no training record (collm.cf.train.*): a refit repeats the options "
                                   "and epochs it was trained with", kind);
        return NULL;
    }
    collm_cf_train_options opt = from->train_opt;
    opt.eval_split = ""; // the selection was from's; the refit may train on its evaluation rows
    opt.patience = 0;
    if (!from->kind->refit) {
        if (from->train_result.best_epoch < 1) {
            collm_error(COLLM_ERR_ARG, "the %s model records no best epoch (it was trained without an evaluation split): "
                                       "a refit needs the epoch count early stopping chose", kind);
            return NULL;
        }
        opt.max_epochs = from->train_result.best_epoch;
    }
    collm_cf_model *m = collm_cf_model_create_hp(kind, from->n_users, from->n_items, &from->hp, opt.seed);
    if (!m) return NULL;
    int rc;
    if (from->kind->refit) {
        collm_cf_train_result res = {0};
        res.best_eval_auc = res.best_eval_uauc = NAN;
        const double t0 = cf_now();
        // the side information (ctx: genres, years) is from's, as its weights are
        if (!(rc = collm_cf_check_split_ids(m, ds->train)) && !(rc = m->kind->refit(m, from, ds->train))) {
            res.seconds = cf_now() - t0;
            cf_keep_record(m, &opt, &res, ds);
            free(m->fit_split); // the weights are from's, fitted where from's were
            m->fit_split = from->fit_split ? cf_strdup(from->fit_split) : NULL;
            if (result) *result = res;
        }
    } else {
        rc = collm_cf_model_train(m, ds, &opt, pool, progress, progress_ctx, result);
    }
    if (rc) {
        collm_cf_model_free(m);
        return NULL;
    }
    return m;
}

// ---------------------------------------------------------------------------
// GGUF container

typedef struct {
    int rc;
    collm_gguf_writer *w;
} cf_kv_sink;

static void put_u32(cf_kv_sink *s, const char *k, uint32_t v) {
    if (!s->rc) s->rc = collm_gguf_writer_set_u32(s->w, k, v);
}
static void put_u64(cf_kv_sink *s, const char *k, uint64_t v) {
    if (!s->rc) s->rc = collm_gguf_writer_set_u64(s->w, k, v);
}
static void put_f32(cf_kv_sink *s, const char *k, double v) {
    if (!s->rc) s->rc = collm_gguf_writer_set_f32(s->w, k, (float)v);
}
static void put_str(cf_kv_sink *s, const char *k, const char *v) {
    if (!s->rc) s->rc = collm_gguf_writer_set_str(s->w, k, v ? v : "");
}

int collm_cf_model_write(const collm_cf_model *m, collm_gguf_writer *w) {
    if (!m || !w) return collm_error(COLLM_ERR_ARG, "collm_cf_model_write: NULL argument");
    cf_kv_sink s = {0, w};
    put_str(&s, "collm.cf.kind", m->kind->name);
    put_u32(&s, "collm.cf.dim", (uint32_t)m->dim);
    put_u32(&s, "collm.cf.n_users", (uint32_t)m->n_users);
    put_u32(&s, "collm.cf.n_items", (uint32_t)m->n_items);
    put_u32(&s, "collm.cf.n_layers", (uint32_t)m->hp.n_layers);
    put_u32(&s, "collm.cf.n_heads", (uint32_t)m->hp.n_heads);
    put_u32(&s, "collm.cf.max_len", (uint32_t)m->hp.max_len);
    if (m->has_train) {
        const collm_cf_train_options *o = &m->train_opt;
        const collm_cf_train_result *r = &m->train_result;
        put_f32(&s, "collm.cf.train.lr", o->lr);
        put_f32(&s, "collm.cf.train.weight_decay", o->weight_decay);
        put_u32(&s, "collm.cf.train.batch", (uint32_t)o->batch);
        put_u32(&s, "collm.cf.train.max_epochs", (uint32_t)o->max_epochs);
        put_u32(&s, "collm.cf.train.patience", (uint32_t)o->patience);
        put_u64(&s, "collm.cf.train.seed", o->seed);
        put_f32(&s, "collm.cf.train.dropout", o->dropout);
        put_f32(&s, "collm.cf.train.beta1", o->beta1);
        put_f32(&s, "collm.cf.train.beta2", o->beta2);
        put_f32(&s, "collm.cf.train.eps", o->eps);
        put_u32(&s, "collm.cf.train.stall_epochs", (uint32_t)o->stall_epochs);
        put_f32(&s, "collm.cf.train.stall_auc", o->stall_auc);
        put_u32(&s, "collm.cf.train.early_stopped", (uint32_t)r->early_stopped);
        put_u32(&s, "collm.cf.train.epochs", (uint32_t)r->epochs_run);
        put_u32(&s, "collm.cf.train.best_epoch", (uint32_t)r->best_epoch);
        put_f32(&s, "collm.cf.train.best_eval_auc", r->best_eval_auc);
        put_f32(&s, "collm.cf.train.best_eval_uauc", r->best_eval_uauc);
        put_str(&s, "collm.cf.train.eval_split", m->eval_split);
        put_str(&s, "collm.cf.train.dataset", m->dataset_dir);
        if (m->train_split) put_str(&s, "collm.cf.train.train_split", m->train_split);
        if (m->fit_split) put_str(&s, "collm.cf.train.fit_split", m->fit_split);
    }
    int rc = s.rc;
    if (!rc) rc = m->kind->save_tensors(m, w);
    return rc;
}

int collm_cf_model_save(const collm_cf_model *m, const char *path) {
    if (!m || !path) return collm_error(COLLM_ERR_ARG, "collm_cf_model_save: NULL argument");
    collm_gguf_writer *w = collm_gguf_writer_create();
    if (!w) return COLLM_ERR_NOMEM;
    int rc = collm_gguf_writer_set_str(w, "general.architecture", "collm-cf");
    if (!rc) rc = collm_cf_model_write(m, w);
    if (!rc) rc = collm_gguf_writer_write(w, path);
    collm_gguf_writer_free(w);
    if (rc) return collm_error_prefix(rc, "saving CF model to %s", path);
    return COLLM_OK;
}

static int cf_get_dim(const collm_gguf_file *f, const char *path, const char *key, int64_t lo, int64_t hi, int64_t *out) {
    int rc = collm_gguf_get_i64(f, key, out);
    if (rc) return collm_error_prefix(rc, "%s", path);
    if (*out < lo || *out > hi)
        return collm_error(COLLM_ERR_FORMAT, "%s: key %s = %lld out of range [%lld, %lld]", path, key,
                           (long long)*out, (long long)lo, (long long)hi);
    return COLLM_OK;
}

collm_cf_model *collm_cf_model_load(const char *path) {
    collm_gguf_file *f = collm_gguf_open(path);
    if (!f) return NULL;
    collm_cf_model *m = collm_cf_model_read(f, path);
    collm_gguf_close(f);
    return m;
}

collm_cf_model *collm_cf_model_read(const collm_gguf_file *f, const char *path) {
    if (!f) {
        collm_error(COLLM_ERR_ARG, "collm_cf_model_read: NULL file");
        return NULL;
    }
    if (!path) path = "(gguf)";
    collm_cf_model *m = NULL;
    const char *kind_name;
    uint64_t kind_len;
    int64_t dim, n_users, n_items;
    if (collm_gguf_get_str(f, "collm.cf.kind", &kind_name, &kind_len) != COLLM_OK) {
        collm_error(COLLM_ERR_FORMAT, "%s: not a collm CF model (no string key collm.cf.kind)", path);
        goto done;
    }
    const collm_cf_kind *kind = cf_find_kind(kind_name, (size_t)kind_len);
    if (!kind) {
        collm_error(COLLM_ERR_FORMAT, "%s: unknown collm.cf.kind '%.*s' (known: %s)", path, (int)kind_len, kind_name,
                    cf_kind_list());
        goto done;
    }
    if (cf_get_dim(f, path, "collm.cf.dim", 1, 65536, &dim) || cf_get_dim(f, path, "collm.cf.n_users", 1, INT32_MAX, &n_users) ||
        cf_get_dim(f, path, "collm.cf.n_items", 1, INT32_MAX, &n_items))
        goto done;
    collm_cf_hparams hp;
    collm_cf_hparams_default(kind->name, &hp);
    hp.dim = (int)dim;
    // shape keys (absent from MF files written before the other kinds existed)
    int64_t hv;
    const char *hkeys[3] = {"collm.cf.n_layers", "collm.cf.n_heads", "collm.cf.max_len"};
    int *hdst[3] = {&hp.n_layers, &hp.n_heads, &hp.max_len};
    for (int k = 0; k < 3; k++) {
        if (collm_gguf_find_key(f, hkeys[k]) < 0) continue;
        if (cf_get_dim(f, path, hkeys[k], 0, 4096, &hv)) goto done;
        *hdst[k] = (int)hv;
    }
    m = cf_model_alloc(kind, (int32_t)n_users, (int32_t)n_items, &hp);
    if (!m) goto done;
    if (kind->init(m, 0, 0) != COLLM_OK || kind->load_tensors(m, f, path) != COLLM_OK) {
        collm_cf_model_free(m);
        m = NULL;
        goto done;
    }
    // optional training record
    float fv;
    int64_t iv;
    if (collm_gguf_find_key(f, "collm.cf.train.lr") >= 0) {
        collm_cf_train_options_default(&m->train_opt);
        collm_cf_train_result *r = &m->train_result;
        if (collm_gguf_get_f32(f, "collm.cf.train.lr", &fv) == COLLM_OK) m->train_opt.lr = fv;
        if (collm_gguf_get_f32(f, "collm.cf.train.weight_decay", &fv) == COLLM_OK) m->train_opt.weight_decay = fv;
        if (collm_gguf_get_i64(f, "collm.cf.train.batch", &iv) == COLLM_OK) m->train_opt.batch = (int)iv;
        if (collm_gguf_get_i64(f, "collm.cf.train.max_epochs", &iv) == COLLM_OK) m->train_opt.max_epochs = (int)iv;
        if (collm_gguf_get_i64(f, "collm.cf.train.patience", &iv) == COLLM_OK) m->train_opt.patience = (int)iv;
        if (collm_gguf_get_i64(f, "collm.cf.train.seed", &iv) == COLLM_OK) m->train_opt.seed = (uint64_t)iv;
        // the file keeps dropout as f32; training drew its masks from the
        // double given (0.7, not 0.699999988), so the shortest decimal that
        // rounds to the stored float is taken back: a refit draws the same masks
        if (collm_gguf_get_f32(f, "collm.cf.train.dropout", &fv) == COLLM_OK) {
            char text[32];
            for (int digits = 1; digits <= 9; digits++) { // 9 digits always round-trip a float
                snprintf(text, sizeof text, "%.*g", digits, fv);
                if ((float)strtod(text, NULL) == fv) break;
            }
            m->train_opt.dropout = strtod(text, NULL);
        }
        if (collm_gguf_get_i64(f, "collm.cf.train.epochs", &iv) == COLLM_OK) r->epochs_run = (int)iv;
        if (collm_gguf_get_i64(f, "collm.cf.train.best_epoch", &iv) == COLLM_OK) r->best_epoch = (int)iv;
        r->best_eval_auc = r->best_eval_uauc = NAN;
        if (collm_gguf_get_f32(f, "collm.cf.train.best_eval_auc", &fv) == COLLM_OK) r->best_eval_auc = fv;
        if (collm_gguf_get_f32(f, "collm.cf.train.best_eval_uauc", &fv) == COLLM_OK) r->best_eval_uauc = fv;
        m->eval_split = collm_gguf_get_str_dup(f, "collm.cf.train.eval_split");
        m->dataset_dir = collm_gguf_get_str_dup(f, "collm.cf.train.dataset");
        if (collm_gguf_find_key(f, "collm.cf.train.train_split") >= 0)
            m->train_split = collm_gguf_get_str_dup(f, "collm.cf.train.train_split");
        if (collm_gguf_find_key(f, "collm.cf.train.fit_split") >= 0)
            m->fit_split = collm_gguf_get_str_dup(f, "collm.cf.train.fit_split");
        else if (m->kind->fits_on_eval && m->eval_split && m->dataset_dir && *m->dataset_dir &&
                 (strcmp(m->eval_split, "valid") == 0 || strcmp(m->eval_split, "valid_small") == 0)) {
            // a file from before the key: the split the name stood for in its dataset folder
            char path[PATH_MAX];
            if (snprintf(path, sizeof path, "%s/%s.tsv", m->dataset_dir, m->eval_split) < (int)sizeof path)
                m->fit_split = cf_resolved_parts(path);
        }
        m->train_opt.eval_split = m->eval_split;
        m->has_train = 1;
    }
    collm_clear_error();
done:
    return m;
}

// ---------------------------------------------------------------------------
// private hooks for tests (cf/encoders.h)

cf_params *collm_cf_encoder_params(collm_cf_model *m) { return m && m->kind->params ? m->kind->params(m) : NULL; }

double collm_cf_encoder_loss_grad(collm_cf_model *m, int64_t n, const int32_t *users, const int32_t *items,
                                  const int32_t *win, const float *labels, double dropout, uint64_t seed,
                                  collm_pool *pool) {
    if (!m || !m->kind->loss_grad) {
        collm_error(COLLM_ERR_ARG, "collm_cf_encoder_loss_grad: not a neural encoder");
        return NAN;
    }
    return m->kind->loss_grad(m, n, users, items, win, labels, dropout, seed, pool);
}
