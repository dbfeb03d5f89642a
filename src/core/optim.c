// Parameter lists, AdamW and the learning-rate schedule (see optim.h).
#include "core/optim.h"

#include "collm/error.h"
#include "core/ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void collm_optim_init(collm_optim_state *opt, float beta1, float beta2, float eps, float weight_decay) {
    memset(opt, 0, sizeof *opt);
    opt->beta1 = beta1;
    opt->beta2 = beta2;
    opt->eps = eps;
    opt->weight_decay = weight_decay;
}

int collm_optim_add(collm_optim_state *opt, const char *name, float *param, float *grad, int64_t n, int decay) {
    if (opt->n_params == opt->cap_params) {
        int cap = opt->cap_params ? opt->cap_params * 2 : 16;
        collm_optim_param *p = realloc(opt->params, (size_t)cap * sizeof *p);
        if (!p) return collm_error(COLLM_ERR_NOMEM, "out of memory (optimizer)");
        opt->params = p;
        opt->cap_params = cap;
    }
    collm_optim_param *p = &opt->params[opt->n_params];
    memset(p, 0, sizeof *p);
    p->name = name;
    p->param = param;
    p->n = n;
    p->decay = decay;
    p->grad = grad;
    if (!grad) {
        p->grad = collm_calloc((size_t)n, sizeof(float));
        if (!p->grad) return COLLM_ERR_NOMEM;
    }
    p->m = collm_calloc((size_t)n, sizeof(float));
    p->v = collm_calloc((size_t)n, sizeof(float));
    if (!p->m || !p->v) {
        free(p->m);
        free(p->v);
        if (!grad) free(p->grad);
        return COLLM_ERR_NOMEM;
    }
    p->owns_grad = grad == NULL;
    return opt->n_params++;
}

void collm_optim_free(collm_optim_state *opt) {
    for (int i = 0; i < opt->n_params; i++) {
        collm_optim_param *p = &opt->params[i];
        if (p->owns_grad) free(p->grad);
        free(p->m);
        free(p->v);
    }
    free(opt->params);
    memset(opt, 0, sizeof *opt);
}

void collm_optim_zero_grad(collm_optim_state *opt) {
    for (int i = 0; i < opt->n_params; i++)
        if (opt->params[i].grad) memset(opt->params[i].grad, 0, (size_t)opt->params[i].n * sizeof(float));
}

// Work on one tensor is cut into fixed blocks of OPTIM_BLOCK elements,
// numbered across every trainable tensor in registration order (a frozen
// one holds none).
// One pool job covers all tensors, its threads taking ranges of blocks: a
// job per tensor woke the pool about 60 times a training step for tensors of
// a few blocks, each thread waiting 30 % of those jobs' wall time. Per-block
// partial sums are added in block order, so the norm does not depend on the
// thread count (nor on the jobs: the same sums in the same order).
#define OPTIM_BLOCK 16384

static int is_frozen(const collm_optim_param *p) { return p->frozen; }
static int64_t blocks_of(const collm_optim_param *p) { return is_frozen(p) ? 0 : (p->n + OPTIM_BLOCK - 1) / OPTIM_BLOCK; }
static int64_t total_blocks(const collm_optim_state *opt) {
    int64_t blocks = 0;
    for (int i = 0; i < opt->n_params; i++) blocks += blocks_of(&opt->params[i]);
    return blocks;
}

typedef struct {
    collm_optim_state *opt;
    double *block_sums; // grad norm: one partial sum per global block
    float scale;        // clip: factor
    float lr;           // step: learning rate
    int what;           // 0 norm, 1 scale, 2 adam, 3 scale (when scale != 1) + adam + zero
} optim_job;

static void optim_task(void *ctx, int64_t begin, int64_t end, int thread_index) {
    (void)thread_index;
    optim_job *j = ctx;
    int i = 0;
    int64_t first = 0; // tensor i's first global block
    for (int64_t g = begin; g < end; g++) {
        while (first + blocks_of(&j->opt->params[i]) <= g) first += blocks_of(&j->opt->params[i++]);
        collm_optim_param *p = &j->opt->params[i];
        int64_t lo = (g - first) * OPTIM_BLOCK, hi = lo + OPTIM_BLOCK < p->n ? lo + OPTIM_BLOCK : p->n;
        if (j->what == 0) {
            j->block_sums[g] = collm_ops_sumsq(p->grad + lo, hi - lo);
        } else if (j->what == 1) {
            for (int64_t k = lo; k < hi; k++) p->grad[k] *= j->scale;
        } else {
            // one block (64 KiB of each array) stays in cache through the three sub-passes of what == 3
            if (j->what == 3 && j->scale != 1.0f)
                for (int64_t k = lo; k < hi; k++) p->grad[k] *= j->scale;
            const collm_optim_state *o = j->opt;
            collm_ops_adam_update(p->param + lo, p->grad + lo, p->m + lo, p->v + lo, hi - lo, j->lr, o->beta1, o->beta2,
                            o->eps, p->decay ? o->weight_decay : 0.0f, 0, o->step);
            if (j->what == 3) memset(p->grad + lo, 0, (size_t)(hi - lo) * sizeof(float));
        }
    }
}

// One pass (what) over every trainable tensor's blocks, one pool job.
// block_sums (what 0): one slot per block of the whole, or NULL for none.
static void optim_run_all(collm_optim_state *opt, int what, double *block_sums, float scale, float lr) {
    optim_job j = {opt, block_sums, scale, lr, what};
    collm_pool_for(opt->pool, total_blocks(opt), 2, optim_task, &j);
}

double collm_optim_grad_norm(const collm_optim_state *opt) {
    collm_optim_state *o = (collm_optim_state *)opt; // the job struct is shared with the mutating passes
    const int64_t blocks = total_blocks(opt);
    double stack_sums[64], *sums = blocks <= 64 ? stack_sums : malloc((size_t)blocks * sizeof(double));
    double sum = 0;
    if (!sums) { // out of memory: the serial loop needs none
        for (int i = 0; i < opt->n_params; i++)
            if (!is_frozen(&opt->params[i])) sum += collm_ops_sumsq(opt->params[i].grad, opt->params[i].n);
        return sqrt(sum);
    }
    optim_run_all(o, 0, sums, 0, 0);
    for (int64_t b = 0; b < blocks; b++) sum += sums[b];
    if (sums != stack_sums) free(sums);
    return sqrt(sum);
}

double collm_optim_clip(collm_optim_state *opt, double max_norm) {
    double norm = collm_optim_grad_norm(opt);
    if (max_norm > 0 && norm > max_norm) optim_run_all(opt, 1, NULL, (float)(max_norm / (norm + 1e-6)), 0);
    return norm;
}

void collm_optim_step(collm_optim_state *opt, float lr) {
    opt->step++;
    optim_run_all(opt, 2, NULL, 0, lr);
}

double collm_optim_step_fused(collm_optim_state *opt, float lr, double max_norm) {
    double norm = collm_optim_grad_norm(opt);
    float scale = max_norm > 0 && norm > max_norm ? (float)(max_norm / (norm + 1e-6)) : 1.0f;
    opt->step++;
    for (int i = 0; i < opt->n_params; i++) {
        collm_optim_param *p = &opt->params[i];
        if (is_frozen(p) && p->grad) memset(p->grad, 0, (size_t)p->n * sizeof(float));
    }
    optim_run_all(opt, 3, NULL, scale, lr);
    return norm;
}

int64_t collm_optim_n_trainable(const collm_optim_state *opt) {
    int64_t n = 0;
    for (int i = 0; i < opt->n_params; i++)
        if (!is_frozen(&opt->params[i])) n += opt->params[i].n;
    return n;
}

double collm_optim_schedule_lr(const collm_optim_schedule *s, int64_t g) {
    if (g < s->warmup_steps) {
        int64_t w = g;
        if (s->restart_warmup && s->steps_per_epoch > 0) w = g % s->steps_per_epoch;
        double lr = s->warmup_lr + (s->init_lr - s->warmup_lr) * (double)w / (double)s->warmup_steps;
        return lr < s->init_lr ? lr : s->init_lr;
    }
    double total = s->total_steps > 0 ? (double)s->total_steps : 1.0;
    return s->min_lr + (s->init_lr - s->min_lr) * 0.5 * (1.0 + cos(M_PI * (double)g / total));
}
