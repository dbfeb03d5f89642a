// The row-batch training loop (cf/cf_rows.h).
#include "cf/cf_rows.h"

#include <stdlib.h>
#include <string.h>

#include "collm/dist.h"
#include "collm/error.h"
#include "core/rng.h"

typedef struct {
    collm_cf_model *m;
    cf_params *p;
    const collm_rec_split *train;
    const collm_cf_train_options *opt;
    collm_pool *pool;
    const cf_rows_kind *kind;
    int32_t *perm;                  // (N_train)
    int32_t *all_win;               // (N_train, window) every row's window, or NULL
    int32_t *users, *items;         // (batch)
    int32_t *win;                   // (batch, window) or NULL
    float *labels, *logit, *dlogit; // (batch)
    int64_t step;
} cf_rows_state;

static int cf_rows_epoch(void *state, collm_rng *rng, double *mean_loss) {
    cf_rows_state *s = state;
    const int64_t N = s->train->n, cap = s->opt->batch < N ? s->opt->batch : N, L = s->kind->window;
    collm_rng_shuffle_i32(rng, s->perm, N);
    double loss_sum = 0;
    unsigned fp = cf_fpmode_enter();
    for (int64_t off = 0; off < N; off += cap) {
        int64_t n = N - off < cap ? N - off : cap, lo, hi;
        cf_batch_rows(s->train, s->perm + off, n, s->users, s->items, s->labels, &lo, &hi);
        for (int64_t k = lo; L > 0 && k < hi; k++)
            memcpy(s->win + (k - lo) * L, s->all_win + (int64_t)s->perm[off + k] * L, (size_t)L * sizeof(int32_t));
        const cf_rows_batch b = {hi - lo, s->users, s->items, s->labels, s->win, s->logit, s->dlogit, s->opt->dropout, rng};
        double loss = s->kind->batch(s->m, s->kind->ctx, &b, s->pool);
        if (collm_dist_size() > 1) { // this rank's share of the batch mean, summed over the ranks
            int rc = cf_params_allreduce(s->p, &loss, (float)(hi - lo) / (float)n);
            if (rc) {
                cf_fpmode_leave(fp);
                return rc;
            }
        }
        loss_sum += loss * (double)n;
        cf_params_adam(s->p, s->opt, ++s->step, s->pool);
        if (s->kind->after_step) s->kind->after_step(s->m, s->pool);
    }
    cf_fpmode_leave(fp);
    *mean_loss = loss_sum / (double)N;
    return COLLM_OK;
}

static void cf_rows_refresh(void *state) {
    cf_rows_state *s = state;
    s->kind->refresh(s->m, s->pool);
}

int cf_train_rows(collm_cf_model *m, cf_params *p, const collm_rec_split *train, const collm_rec_split *eval,
                  const collm_cf_train_options *opt, collm_pool *pool, collm_cf_progress_fn progress, void *progress_ctx,
                  collm_cf_train_result *result, const cf_rows_kind *kind) {
    int rc = cf_train_begin(m, p, train);
    if (rc) return rc;
    const int64_t N = train->n, cap = opt->batch < N ? opt->batch : N, L = kind->window;
    cf_rows_state s = {m, p, train, opt, pool, kind, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0};
    s.perm = collm_malloc((size_t)N * sizeof *s.perm);
    s.users = collm_malloc((size_t)cap * sizeof *s.users);
    s.items = collm_malloc((size_t)cap * sizeof *s.items);
    s.labels = collm_malloc((size_t)cap * sizeof *s.labels);
    s.logit = collm_malloc((size_t)cap * sizeof *s.logit);
    s.dlogit = collm_malloc((size_t)cap * sizeof *s.dlogit);
    if (!s.perm || !s.users || !s.items || !s.labels || !s.logit || !s.dlogit) rc = COLLM_ERR_NOMEM;
    if (!rc && L > 0 && (!(s.all_win = cf_split_windows(train, (int)L)) ||
                         !(s.win = collm_malloc((size_t)(cap * L) * sizeof *s.win))))
        rc = COLLM_ERR_NOMEM;
    if (!rc) {
        for (int64_t r = 0; r < N; r++) s.perm[r] = (int32_t)r;
        rc = cf_train_loop(m, cf_params_weights(p), eval, opt, pool, progress, progress_ctx, result, cf_rows_epoch,
                           kind->refresh ? cf_rows_refresh : NULL, &s);
    }
    free(s.perm);
    free(s.all_win);
    free(s.users);
    free(s.items);
    free(s.win);
    free(s.labels);
    free(s.logit);
    free(s.dlogit);
    return rc;
}
