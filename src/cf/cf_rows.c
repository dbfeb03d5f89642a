// The row-batch training loop shared by the id-only encoders (cf/cf_rows.h).
#include "cf/cf_rows.h"

#include <stdlib.h>

#include "collm/dist.h"
#include "collm/error.h"
#include "core/rng.h"

typedef struct {
    collm_cf_model *m;
    cf_params *p;
    const collm_rec_split *train;
    const collm_cf_train_options *opt;
    collm_pool *pool;
    cf_rows_batch_fn batch_fn;
    cf_rows_model_fn after_step, refresh;
    int32_t *perm;                  // (N_train)
    int32_t *users, *items;         // (batch)
    float *labels, *logit, *dlogit; // (batch)
    int64_t step;
} cf_rows_state;

static int cf_rows_epoch(void *state, collm_rng *rng, double *mean_loss) {
    cf_rows_state *s = state;
    const int64_t N = s->train->n, cap = s->opt->batch < N ? s->opt->batch : N;
    collm_rng_shuffle_i32(rng, s->perm, N);
    double loss_sum = 0;
    const int rank = collm_dist_rank(), size = collm_dist_size();
    unsigned fp = cf_fpmode_enter();
    for (int64_t off = 0; off < N; off += cap) {
        int64_t n = N - off < cap ? N - off : cap;
        // data parallel: this rank's rows [lo, hi) of the batch (all of it in one process)
        int64_t lo, hi;
        collm_dist_slice(n, rank, size, &lo, &hi);
        for (int64_t k = lo; k < hi; k++) {
            int32_t r = s->perm[off + k];
            s->users[k - lo] = s->train->user[r];
            s->items[k - lo] = s->train->item[r];
            s->labels[k - lo] = s->train->label[r] ? 1.0f : 0.0f;
        }
        double loss = s->batch_fn(s->m, hi - lo, s->users, s->items, s->labels, s->logit, s->dlogit, s->pool);
        if (size > 1) {
            // the gradient is linear in dlogit = (σ - y) / rows: scaled by rows / n it is this rank's
            // share of the batch mean; one allreduce sums the shares and the losses (g[n_train])
            const float share = (float)(hi - lo) / (float)n;
            float *g = s->p->g;
            for (int64_t j = 0; j < s->p->n_train; j++) g[j] *= share;
            g[s->p->n_train] = (float)(loss * share);
            int rc = collm_dist_allreduce_sum_f32(g, s->p->n_train + 1);
            if (rc) {
                cf_fpmode_leave(fp);
                return rc;
            }
            loss = g[s->p->n_train];
        }
        loss_sum += loss * (double)n;
        cf_params_adam(s->p, s->opt, ++s->step, s->pool);
        if (s->after_step) s->after_step(s->m, s->pool);
    }
    cf_fpmode_leave(fp);
    *mean_loss = loss_sum / (double)N;
    return COLLM_OK;
}

static void cf_rows_refresh(void *state) {
    cf_rows_state *s = state;
    s->refresh(s->m, s->pool);
}

int cf_train_rows(collm_cf_model *m, cf_params *p, const collm_rec_split *train, const collm_rec_split *eval,
                  const collm_cf_train_options *opt, collm_pool *pool, collm_cf_progress_fn progress, void *progress_ctx,
                  collm_cf_train_result *result, cf_rows_batch_fn batch_fn, cf_rows_model_fn after_step,
                  cf_rows_model_fn refresh) {
    const int64_t N = train->n;
    if (N < 1) return collm_error(COLLM_ERR_ARG, "%s: the train split %s has no rows", m->kind->name, train->path ? train->path : "");
    if (N > INT32_MAX) return collm_error(COLLM_ERR_ARG, "%s: the train split has too many rows", m->kind->name);
    int rc = cf_params_alloc_train(p);
    if (rc) return rc;
    const int64_t cap = opt->batch < N ? opt->batch : N;
    cf_rows_state s = {m, p, train, opt, pool, batch_fn, after_step, refresh, NULL, NULL, NULL, NULL, NULL, NULL, 0};
    s.perm = collm_malloc((size_t)N * sizeof *s.perm);
    s.users = collm_malloc((size_t)cap * sizeof *s.users);
    s.items = collm_malloc((size_t)cap * sizeof *s.items);
    s.labels = collm_malloc((size_t)cap * sizeof *s.labels);
    s.logit = collm_malloc((size_t)cap * sizeof *s.logit);
    s.dlogit = collm_malloc((size_t)cap * sizeof *s.dlogit);
    if (!s.perm || !s.users || !s.items || !s.labels || !s.logit || !s.dlogit) rc = COLLM_ERR_NOMEM;
    if (!rc) {
        for (int64_t r = 0; r < N; r++) s.perm[r] = (int32_t)r;
        rc = cf_train_loop(m, p, eval, opt, pool, progress, progress_ctx, result, cf_rows_epoch,
                           refresh ? cf_rows_refresh : NULL, &s);
    }
    free(s.perm);
    free(s.users);
    free(s.items);
    free(s.labels);
    free(s.logit);
    free(s.dlogit);
    return rc;
}
