// Parameter lists, AdamW and the learning-rate schedule (see optim.h).
#include "collm/optim.h"

#include "collm/error.h"
#include "collm/ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void optim_init(optim_state *opt, float beta1, float beta2, float eps, float weight_decay) {
    memset(opt, 0, sizeof *opt);
    opt->beta1 = beta1;
    opt->beta2 = beta2;
    opt->eps = eps;
    opt->weight_decay = weight_decay;
}

int optim_add(optim_state *opt, const char *name, float *param, float *grad, int64_t n, int decay) {
    if (opt->n_params == opt->cap_params) {
        int cap = opt->cap_params ? opt->cap_params * 2 : 16;
        optim_param *p = realloc(opt->params, (size_t)cap * sizeof *p);
        if (!p) return collm_error(COLLM_ERR_NOMEM, "out of memory (optimizer)");
        opt->params = p;
        opt->cap_params = cap;
    }
    optim_param *p = &opt->params[opt->n_params];
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

void optim_free(optim_state *opt) {
    for (int i = 0; i < opt->n_params; i++) {
        optim_param *p = &opt->params[i];
        if (p->owns_grad) free(p->grad);
        free(p->m);
        free(p->v);
    }
    free(opt->params);
    memset(opt, 0, sizeof *opt);
}

static int is_frozen(const optim_param *p) { return p->frozen; }

void optim_zero_grad(optim_state *opt) {
    for (int i = 0; i < opt->n_params; i++)
        if (opt->params[i].grad) memset(opt->params[i].grad, 0, (size_t)opt->params[i].n * sizeof(float));
}

double optim_grad_norm(const optim_state *opt) {
    double sum = 0;
    for (int i = 0; i < opt->n_params; i++) {
        const optim_param *p = &opt->params[i];
        if (is_frozen(p)) continue;
        for (int64_t j = 0; j < p->n; j++) sum += (double)p->grad[j] * p->grad[j];
    }
    return sqrt(sum);
}

double optim_clip(optim_state *opt, double max_norm) {
    double norm = optim_grad_norm(opt);
    if (max_norm > 0 && norm > max_norm) {
        float scale = (float)(max_norm / (norm + 1e-6));
        for (int i = 0; i < opt->n_params; i++) {
            optim_param *p = &opt->params[i];
            if (is_frozen(p)) continue;
            for (int64_t j = 0; j < p->n; j++) p->grad[j] *= scale;
        }
    }
    return norm;
}

void optim_step(optim_state *opt, float lr) {
    opt->step++;
    for (int i = 0; i < opt->n_params; i++) {
        optim_param *p = &opt->params[i];
        if (is_frozen(p)) continue;
        ops_adam_update(p->param, p->grad, p->m, p->v, p->n, lr, opt->beta1, opt->beta2, opt->eps,
                        p->decay ? opt->weight_decay : 0.0f, 0, opt->step);
    }
}

int64_t optim_n_trainable(const optim_state *opt) {
    int64_t n = 0;
    for (int i = 0; i < opt->n_params; i++)
        if (!is_frozen(&opt->params[i])) n += opt->params[i].n;
    return n;
}

double optim_schedule_lr(const optim_schedule *s, int64_t g) {
    if (g < s->warmup_steps) {
        int64_t w = g;
        if (s->restart_warmup && s->steps_per_epoch > 0) w = g % s->steps_per_epoch;
        double lr = s->warmup_lr + (s->init_lr - s->warmup_lr) * (double)w / (double)s->warmup_steps;
        return lr < s->init_lr ? lr : s->init_lr;
    }
    double total = s->total_steps > 0 ? (double)s->total_steps : 1.0;
    return s->min_lr + (s->init_lr - s->min_lr) * 0.5 * (1.0 + cos(M_PI * (double)g / total));
}
