// CoLLM training (method.md §6): stage 1 trains the LLM (LoRA or all
// weights) on text-only prompts; stage 2 trains the FECE mapping on prompts
// with ID slots, everything else frozen unless train_llm asks for a joint
// stage. An "epoch" is steps_per_epoch optimizer steps drawn from an endless,
// reshuffled stream of the training rows (drop_last); after each epoch the
// model is evaluated on valid_small, the best checkpoint is kept, and
// training stops after `patience` epochs without a strictly better AUC.
// The whole training state is saved atomically after every epoch to
// <out>.resume, so a killed run continues exactly where the last epoch ended.
//
// Data parallel (mpirun -np N, collm/dist.h): every rank holds the whole
// model and draws the same global batch from the same shuffled order; rank r
// runs forward and backward on its share of that batch (balanced by tokens:
// balanced_share), with the loss gradient scaled by (share / batch) so that
// the sum over the ranks is the gradient of the global mean loss. One
// MPI_Allreduce over one flat buffer (every trainable gradient, only the
// token embedding's touched rows, then the loss) per step makes the sum; the
// optimizer step that follows is the same on every rank. Evaluation is
// sharded the same way and the scores gathered before the AUC. Rank 0 alone
// prints, logs and writes the checkpoint and the resume state (atomically);
// the resume state holds nothing that depends on N, so a run continues with
// any number of ranks.
#include "collm/collm.h"

#include "collm/dist.h"
#include "collm/error.h"
#include "collm/fileio.h"
#include "collm/metrics.h"
#include "core/ops.h"
#include "core/optim.h"
#include "recommender/collm_internal.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

void collm_train_options_default(collm_train_options *o) {
    memset(o, 0, sizeof *o);
    o->batch = 16;
    o->steps_per_epoch = 50;
    o->max_epochs = 200;
    o->patience = 20;
    o->lr = 1e-3;
    o->warmup_lr = 1e-5;
    o->min_lr = 8e-5;
    o->warmup_steps = 200;
    o->restart_warmup = 0; // fixed: warmup over the first warmup_steps global steps
    o->weight_decay = 1e-3;
    o->clip = 1.0;
    o->eval_split = "valid_small";
    o->eval_batch = 32;
    o->residual_folds = 5; // used only with residual_weight > 0
    o->seed = 42;
    o->group_batches = 0;
}

static double now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

// Everything that must survive a restart.
typedef struct {
    int32_t *order;     // (n_train) current permutation of the training rows
    int64_t cursor;     // next position in order
    collm_rng rng;      // shuffling
    collm_rng drop_rng; // LoRA dropout
    int64_t epoch;      // completed epochs
    int64_t global_step;
    double best_auc, best_uauc;
    int64_t best_epoch;
    int64_t bad_epochs;
} train_state;

// Registers every trainable tensor with the optimizer. Of an untied output
// head only the answer token's row: the score reads no other row, so the
// others get neither gradients, Adam moments nor weight decay (they stay as
// loaded). A tied head is the token embedding and trains whole.
static int register_params(collm_model *m, collm_llm_trainer *tr, int train_llm, int train_lora, int train_fece,
                           collm_optim_state *opt) {
    int rc;
    if (train_llm) {
        int n_desc = collm_llm_model_n_tensors(&m->llm->hp);
        collm_llm_tensor_desc *desc = collm_calloc((size_t)n_desc, sizeof *desc);
        if (!desc) return COLLM_ERR_NOMEM;
        int n = collm_llm_model_tensor_list(m->llm, desc);
        for (int i = 0; i < n; i++) {
            float *p = *desc[i].data;
            int dup = 0;
            for (int j = 0; j < i; j++) dup |= *desc[j].data == p;
            if (!p || dup) continue; // tied output shares token_embd
            int64_t count = desc[i].ne[0] * (desc[i].n_dims > 1 ? desc[i].ne[1] : 1);
            if (p == m->llm->output) { // untied (the tied one is token_embd, a duplicate above)
                p += (int64_t)m->yes_id * desc[i].ne[0];
                count = desc[i].ne[0];
            }
            // names live in desc (freed below): the optimizer keeps a static-lifetime label instead
            if ((rc = collm_optim_add(opt, "llm", p, collm_llm_trainer_grad_of(tr, p), count, desc[i].n_dims >= 2)) < 0) {
                free(desc);
                return rc;
            }
        }
        free(desc);
    }
    if (train_lora)
        for (int i = 0; i < m->lora.n_layer * COLLM_LORA_N_TARGETS; i++) {
            collm_lora_pair *p = &m->lora.pairs[i];
            if (!p->a) continue;
            if ((rc = collm_optim_add(opt, "lora.a", p->a, p->da, (int64_t)p->rank * p->in, 1)) < 0) return rc;
            if ((rc = collm_optim_add(opt, "lora.b", p->b, p->db, (int64_t)p->out * p->rank, 1)) < 0) return rc;
        }
    if (train_fece) {
        collm_fece_mlp *f = &m->fece;
        if ((rc = collm_optim_add(opt, "fece.w1", f->w1, f->dw1, (int64_t)f->d_hidden * f->d_in, 1)) < 0 ||
            (rc = collm_optim_add(opt, "fece.b1", f->b1, f->db1, f->d_hidden, 0)) < 0 ||
            (rc = collm_optim_add(opt, "fece.w2", f->w2, f->dw2, (int64_t)f->d_out * f->d_hidden, 1)) < 0 ||
            (rc = collm_optim_add(opt, "fece.b2", f->b2, f->db2, f->d_out, 0)) < 0)
            return rc;
    }
    return COLLM_OK;
}

// ---------------------------------------------------------------------------
// resume state: the checkpoint of the current weights plus optimizer and loader

static int put_f64(collm_gguf_writer *w, const char *key, double v) {
    return collm_gguf_writer_set_arr(w, key, COLLM_GGUF_TYPE_FLOAT64, &v, 1);
}

static int get_f64(const collm_gguf_file *f, const char *key, double *v) {
    int64_t i = collm_gguf_find_key(f, key);
    if (i < 0 || collm_gguf_kv_type(f, i) != COLLM_GGUF_TYPE_ARRAY || collm_gguf_arr_type(f, i) != COLLM_GGUF_TYPE_FLOAT64 ||
        collm_gguf_arr_n(f, i) != 1)
        return collm_error(COLLM_ERR_FORMAT, "missing or malformed key %s", key);
    memcpy(v, collm_gguf_arr_data(f, i), sizeof *v);
    return COLLM_OK;
}

static int get_rng(const collm_gguf_file *f, const char *key, collm_rng *rng) {
    int64_t i = collm_gguf_find_key(f, key);
    if (i < 0 || collm_gguf_kv_type(f, i) != COLLM_GGUF_TYPE_ARRAY || collm_gguf_arr_type(f, i) != COLLM_GGUF_TYPE_UINT64 ||
        collm_gguf_arr_n(f, i) != 4)
        return collm_error(COLLM_ERR_FORMAT, "missing or malformed key %s", key);
    memcpy(rng->s, collm_gguf_arr_data(f, i), sizeof rng->s);
    return COLLM_OK;
}

typedef struct {
    const collm_model *m;
    const collm_optim_state *opt;
    const train_state *st;
    int64_t n_train;
} resume_ctx;

#define STATE_HASH_KEY "train.state_xxh3"

// XXH3 of everything read_resume restores (the loader, the counters, every
// optimizer tensor's values and moments), chained piece by piece; 63 bits, as
// the key is read back with collm_gguf_get_i64. The range checks cannot see a
// changed value that is still plausible (a flipped bit in a weight or an Adam
// moment, an edited random generator state): the run continued from it
// silently, no longer the run it claims to continue.
static uint64_t state_hash(const train_state *st, const collm_optim_state *opt, int64_t n_train) {
    const int64_t counts[6] = {st->cursor, st->epoch, st->global_step, st->best_epoch, st->bad_epochs, opt->step};
    const double aucs[2] = {st->best_auc, st->best_uauc};
    uint64_t h = XXH3_64bits(st->order, (size_t)n_train * sizeof *st->order);
    h = XXH3_64bits_withSeed(counts, sizeof counts, h);
    h = XXH3_64bits_withSeed(aucs, sizeof aucs, h);
    h = XXH3_64bits_withSeed(st->rng.s, sizeof st->rng.s, h);
    h = XXH3_64bits_withSeed(st->drop_rng.s, sizeof st->drop_rng.s, h);
    for (int i = 0; i < opt->n_params; i++) {
        const collm_optim_param *p = &opt->params[i];
        const size_t bytes = (size_t)p->n * sizeof(float);
        h = XXH3_64bits_withSeed(p->param, bytes, h);
        h = XXH3_64bits_withSeed(p->m, bytes, h);
        h = XXH3_64bits_withSeed(p->v, bytes, h);
    }
    return h & 0x7fffffffffffffffULL;
}

static int write_resume(const char *path, const collm_model *m, const collm_optim_state *opt, const train_state *st,
                        int64_t n_train, const collm_train_options *o) {
    collm_gguf_writer *w = collm_gguf_writer_create();
    if (!w) return COLLM_ERR_NOMEM;
    int rc = collm_checkpoint_fill(m, w, path);
    int64_t ne_order[1] = {n_train};
    if (!rc) rc = collm_gguf_writer_add_tensor(w, "train.order", COLLM_GGML_TYPE_I32, 1, ne_order, st->order);
    if (!rc) rc = collm_gguf_writer_set_u64(w, "train.cursor", (uint64_t)st->cursor);
    if (!rc) rc = collm_gguf_writer_set_u64(w, "train.epoch", (uint64_t)st->epoch);
    if (!rc) rc = collm_gguf_writer_set_u64(w, "train.global_step", (uint64_t)st->global_step);
    if (!rc) rc = collm_gguf_writer_set_u64(w, "train.best_epoch", (uint64_t)st->best_epoch);
    if (!rc) rc = collm_gguf_writer_set_u64(w, "train.bad_epochs", (uint64_t)st->bad_epochs);
    if (!rc) rc = collm_gguf_writer_set_u64(w, "train.collm_optim_step", (uint64_t)opt->step);
    if (!rc) rc = collm_gguf_writer_set_u32(w, "train.batch", (uint32_t)o->batch);
    if (!rc) rc = collm_gguf_writer_set_u32(w, "train.steps_per_epoch", (uint32_t)o->steps_per_epoch);
    if (!rc) rc = collm_gguf_writer_set_u32(w, "train.group_batches", (uint32_t)(o->group_batches != 0));
    if (!rc) rc = put_f64(w, "train.best_auc", st->best_auc);
    if (!rc) rc = put_f64(w, "train.best_uauc", st->best_uauc);
    if (!rc) rc = collm_gguf_writer_set_arr(w, "train.rng", COLLM_GGUF_TYPE_UINT64, st->rng.s, 4);
    if (!rc) rc = collm_gguf_writer_set_arr(w, "train.dropout_rng", COLLM_GGUF_TYPE_UINT64, st->drop_rng.s, 4);
    if (!rc) rc = collm_gguf_writer_set_u32(w, "train.n_params", (uint32_t)opt->n_params);
    if (!rc) rc = collm_gguf_writer_set_u64(w, STATE_HASH_KEY, state_hash(st, opt, n_train));
    char name[64];
    for (int i = 0; !rc && i < opt->n_params; i++) {
        const collm_optim_param *p = &opt->params[i];
        int64_t ne[1] = {p->n};
        snprintf(name, sizeof name, "optim.%d.param", i);
        // trainable values that the checkpoint fill does not hold (e.g. nothing) are written too, so
        // resuming never depends on which parts the fill chose to include
        if (!rc) rc = collm_gguf_writer_add_tensor_f32(w, name, COLLM_GGML_TYPE_F32, 1, ne, p->param);
        snprintf(name, sizeof name, "optim.%d.m", i);
        if (!rc) rc = collm_gguf_writer_add_tensor_f32(w, name, COLLM_GGML_TYPE_F32, 1, ne, p->m);
        snprintf(name, sizeof name, "optim.%d.v", i);
        if (!rc) rc = collm_gguf_writer_add_tensor_f32(w, name, COLLM_GGML_TYPE_F32, 1, ne, p->v);
    }
    if (!rc) rc = collm_gguf_writer_write(w, path);
    collm_gguf_writer_free(w);
    return rc;
}

// train.order must be a permutation of 0..n_train-1: its entries index the
// training rows.
static int check_permutation(const char *path, const int32_t *order, int64_t n_train) {
    unsigned char *seen = collm_calloc((size_t)n_train, 1);
    if (!seen) return COLLM_ERR_NOMEM;
    int rc = COLLM_OK;
    for (int64_t i = 0; i < n_train; i++) {
        int32_t r = order[i];
        if (r < 0 || r >= n_train || seen[r]) {
            rc = collm_error(COLLM_ERR_FORMAT, "%s: train.order[%lld] = %d is %s (a permutation of 0..%lld expected)",
                             path, (long long)i, r, r < 0 || r >= n_train ? "out of range" : "repeated",
                             (long long)n_train - 1);
            break;
        }
        seen[r] = 1;
    }
    free(seen);
    return rc;
}

// The loader and early-stopping counters must agree with each other: every
// saved epoch is complete (steps_per_epoch optimizer steps), each epoch either
// improved (best_epoch) or counted as bad since then.
static int check_state(const char *path, const train_state *st, int64_t optim_step, int64_t n_train,
                       const collm_train_options *o) {
    const char *bad = NULL;
    if (st->cursor < 0 || st->cursor > n_train) bad = "train.cursor is outside 0..the number of training rows";
    else if (st->epoch < 1 || st->epoch > INT32_MAX) bad = "train.epoch is not a completed epoch count";
    else if (st->global_step != st->epoch * o->steps_per_epoch)
        bad = "train.global_step is not train.epoch x train.steps_per_epoch";
    else if (optim_step != st->global_step) bad = "train.collm_optim_step differs from train.global_step";
    else if (st->best_epoch < 0 || st->best_epoch > st->epoch) bad = "train.best_epoch is outside 0..train.epoch";
    else if (st->bad_epochs < 0 || st->best_epoch + st->bad_epochs != st->epoch)
        bad = "train.bad_epochs is not train.epoch - train.best_epoch";
    else if (!(st->best_auc == -1 || (st->best_auc >= 0 && st->best_auc <= 1)))
        bad = "train.best_auc is not an AUC";
    else if (!(isnan(st->best_uauc) || (st->best_uauc >= 0 && st->best_uauc <= 1)))
        bad = "train.best_uauc is not an AUC";
    else if (!(st->rng.s[0] | st->rng.s[1] | st->rng.s[2] | st->rng.s[3]) ||
             !(st->drop_rng.s[0] | st->drop_rng.s[1] | st->drop_rng.s[2] | st->drop_rng.s[3]))
        bad = "a random generator state is all zeros";
    if (!bad) return COLLM_OK;
    return collm_error(COLLM_ERR_FORMAT,
                       "%s: damaged training state: %s (cursor %lld of %lld rows, epoch %lld, step %lld, optimizer "
                       "step %lld, best epoch %lld, bad epochs %lld)",
                       path, bad, (long long)st->cursor, (long long)n_train, (long long)st->epoch,
                       (long long)st->global_step, (long long)optim_step, (long long)st->best_epoch,
                       (long long)st->bad_epochs);
}

// 0 when two paths resolve to different files or folders; 1 when they name
// the same one, or when either does not resolve from here (a state written
// from another working folder stores its paths as given then: no verdict).
static int same_place(const char *a, const char *b) {
    char *ra = realpath(a, NULL), *rb = realpath(b, NULL);
    int same = !ra || !rb || strcmp(ra, rb) == 0;
    free(ra), free(rb);
    return same;
}

// "q,v" of a LoRA target mask (the names --lora-targets takes).
static void lora_target_list(uint32_t mask, char *out, size_t cap) {
    static const char *const names[COLLM_LORA_N_TARGETS] = {"q", "k", "v", "o", "gate", "up", "down"};
    size_t n = 0;
    out[0] = '\0';
    for (int t = 0; t < COLLM_LORA_N_TARGETS && n < cap; t++)
        if (mask >> t & 1) n += (size_t)snprintf(out + n, cap - n, "%s%s", n ? "," : "", names[t]);
    if (mask >> COLLM_LORA_N_TARGETS) snprintf(out, cap, "0x%x", mask);
}

// What the state's weights mean must be what this run's model makes of them.
// The trainable tensors are matched by count and size alone, so a state of
// another adapter layout of the same sizes (--lora-targets k,o after q,v: the
// q adapter then trained k), scale (--lora-alpha), dropout, prompt template
// or answer token was continued silently as if it were this run's. The state
// holds the checkpoint keys that say each; absent keys (a part this model
// lacks too) are not compared.
static int check_resume_model(const collm_gguf_file *f, const char *path, const collm_model *m) {
    int rc;
    const char *tail = "start without --resume, or give that run's options";
    if (m->has_lora && collm_gguf_find_key(f, "collm.lora.targets") >= 0) {
        uint32_t targets;
        float alpha = m->lora.alpha, dropout = m->lora.dropout;
        if ((rc = collm_gguf_get_u32(f, "collm.lora.targets", &targets)) ||
            (collm_gguf_find_key(f, "collm.lora.alpha") >= 0 && (rc = collm_gguf_get_f32(f, "collm.lora.alpha", &alpha))) ||
            (collm_gguf_find_key(f, "collm.lora.dropout") >= 0 &&
             (rc = collm_gguf_get_f32(f, "collm.lora.dropout", &dropout))))
            return rc;
        if (targets != m->lora.targets) {
            char was[64], now[64];
            lora_target_list(targets, was, sizeof was);
            lora_target_list(m->lora.targets, now, sizeof now);
            return collm_error(COLLM_ERR_ARG, "%s was written by a run with other --lora-targets (%s; this run: %s): %s",
                               path, was, now, tail);
        }
        // (as stored: both are the f32 the checkpoint writes)
        if (alpha != m->lora.alpha || dropout != m->lora.dropout)
            return collm_error(COLLM_ERR_ARG, "%s was written by a run with another --lora-alpha or --lora-dropout "
                                              "(%g, %g; this run: %g, %g): %s",
                               path, alpha, dropout, m->lora.alpha, m->lora.dropout, tail);
    }
    if (collm_gguf_find_key(f, "collm.template") >= 0) {
        const char *line;
        uint64_t len;
        if ((rc = collm_gguf_get_str(f, "collm.template", &line, &len))) return rc;
        if (len != strlen(m->tpl->line) || memcmp(line, m->tpl->line, (size_t)len) != 0)
            return collm_error(COLLM_ERR_ARG, "%s was written by a run with another prompt template (--template): %s",
                               path, tail);
    }
    if (collm_gguf_find_key(f, "collm.answer_token") >= 0) {
        uint32_t id;
        if ((rc = collm_gguf_get_u32(f, "collm.answer_token", &id))) return rc;
        if (id != (uint32_t)m->yes_id)
            return collm_error(COLLM_ERR_ARG, "%s was written by a run with another answer token (%u; this run: %d, "
                                              "--answer): %s",
                               path, id, m->yes_id, tail);
    }
    return COLLM_OK;
}

// The state must be this run's: the same base model (by checksum), the same
// collaborative model and data folder (resolved paths), learning rate and
// evaluation split. Another run's state (the same --out, other options)
// would otherwise be continued as if it were this one, and a finished one
// taken for this run's result.
static int check_resume_run(const collm_gguf_file *f, const char *path, const collm_model *m,
                            const collm_train_options *o) {
    int kind;
    uint64_t sum;
    int rc = collm_read_base_checksum(f, path, &kind, &sum);
    if (rc) return rc;
    if (kind == m->base_hash_kind && sum != m->base_checksum)
        return collm_error(COLLM_ERR_ARG, "%s was written by a run on another base model (checksum %016llx; this run's: "
                                          "%016llx): start without --resume, or give that run's --base",
                           path, (unsigned long long)sum, (unsigned long long)m->base_checksum);
    const char *s;
    uint64_t len;
    char was[4096];
    static const struct {
        const char *key, *what;
        int is_path;
    } keys[] = {{"collm.train.cf", "--cf", 1}, {"collm.train.data", "--data", 1}, {"collm.train.eval_split", "--eval-split", 0}};
    const char *now[3] = {m->train_cf_path ? m->train_cf_path : "", m->train_data ? m->train_data : "",
                          o->eval_split ? o->eval_split : ""};
    for (int k = 0; k < 3; k++) {
        if (collm_gguf_find_key(f, keys[k].key) < 0) continue; // (a state from before the key)
        if ((rc = collm_gguf_get_str(f, keys[k].key, &s, &len))) return rc;
        snprintf(was, sizeof was, "%.*s", (int)(len < sizeof was - 1 ? len : sizeof was - 1), s);
        const int same = keys[k].is_path && *was && *now[k] ? same_place(was, now[k]) : strcmp(was, now[k]) == 0;
        if (!same)
            return collm_error(COLLM_ERR_ARG, "%s was written by a run with another %s ('%s'; this run: '%s'): start "
                                              "without --resume, or give that run's options",
                               path, keys[k].what, was, now[k]);
    }
    float lr;
    if (collm_gguf_find_key(f, "collm.train.lr") >= 0) {
        if ((rc = collm_gguf_get_f32(f, "collm.train.lr", &lr))) return rc;
        if (lr != (float)o->lr)
            return collm_error(COLLM_ERR_ARG, "%s was written by a run with another --lr (%g; this run: %g): start "
                                              "without --resume, or give that run's options",
                               path, lr, o->lr);
    }
    return check_resume_model(f, path, m);
}

static int read_resume(const char *path, collm_optim_state *opt, train_state *st, int64_t n_train,
                       const collm_model *m, const collm_train_options *o) {
    collm_gguf_file *f = collm_gguf_open(path);
    if (!f) return COLLM_ERR_IO;
    int rc = check_resume_run(f, path, m, o);
    if (rc) goto done;
    int64_t v;
    uint32_t n_params = 0, batch = 0, steps = 0;
    const collm_gguf_tensor_info *order = collm_gguf_find_tensor(f, "train.order");
    if (!order || order->type != COLLM_GGML_TYPE_I32 || collm_gguf_tensor_n_elements(order) != n_train) {
        rc = collm_error(COLLM_ERR_FORMAT, "%s: train.order missing or not for this training split (%lld rows)", path,
                         (long long)n_train);
        goto done;
    }
    memcpy(st->order, order->data, (size_t)n_train * sizeof(int32_t));
    if ((rc = check_permutation(path, st->order, n_train))) goto done;
    if ((rc = collm_gguf_get_u32(f, "train.n_params", &n_params)) || (rc = collm_gguf_get_u32(f, "train.batch", &batch)) ||
        (rc = collm_gguf_get_u32(f, "train.steps_per_epoch", &steps)))
        goto done;
    // (a state from before batch grouping: shuffled batches)
    uint32_t grouped = 0;
    if (collm_gguf_find_key(f, "train.group_batches") >= 0 &&
        (rc = collm_gguf_get_u32(f, "train.group_batches", &grouped)))
        goto done;
    if ((grouped != 0) != (o->group_batches != 0)) {
        rc = collm_error(COLLM_ERR_ARG, "%s was written by a run with %s batches; this run asks for %s ones", path,
                         grouped ? "grouped" : "shuffled", o->group_batches ? "grouped" : "shuffled");
        goto done;
    }
    if ((int)n_params != opt->n_params || (int)batch != o->batch || (int)steps != o->steps_per_epoch) {
        rc = collm_error(COLLM_ERR_ARG,
                         "%s was written by a run with other settings (%u trainable tensors, batch %u, %u steps per "
                         "epoch; this run: %d, %d, %d)",
                         path, n_params, batch, steps, opt->n_params, o->batch, o->steps_per_epoch);
        goto done;
    }
#define GET_I64(key, dst)                                                                                             \
    if ((rc = collm_gguf_get_i64(f, key, &v))) goto done;                                                                   \
    dst = v;
    GET_I64("train.cursor", st->cursor);
    GET_I64("train.epoch", st->epoch);
    GET_I64("train.global_step", st->global_step);
    GET_I64("train.best_epoch", st->best_epoch);
    GET_I64("train.bad_epochs", st->bad_epochs);
    GET_I64("train.collm_optim_step", opt->step);
#undef GET_I64
    if ((rc = get_f64(f, "train.best_auc", &st->best_auc)) || (rc = get_f64(f, "train.best_uauc", &st->best_uauc)) ||
        (rc = get_rng(f, "train.rng", &st->rng)) || (rc = get_rng(f, "train.dropout_rng", &st->drop_rng)))
        goto done;
    if ((rc = check_state(path, st, opt->step, n_train, o))) goto done;
    char name[64];
    for (int i = 0; i < opt->n_params; i++) {
        collm_optim_param *p = &opt->params[i];
        snprintf(name, sizeof name, "optim.%d.param", i);
        if ((rc = collm_read_tensor(f, path, name, p->param, p->n))) goto done;
        snprintf(name, sizeof name, "optim.%d.m", i);
        if ((rc = collm_read_tensor(f, path, name, p->m, p->n))) goto done;
        snprintf(name, sizeof name, "optim.%d.v", i);
        if ((rc = collm_read_tensor(f, path, name, p->v, p->n))) goto done;
        // Adam's second moment is a running mean of squares: never negative
        for (int64_t j = 0; j < p->n; j++)
            if (!isfinite(p->param[j]) || !isfinite(p->m[j]) || !isfinite(p->v[j]) || p->v[j] < 0) {
                rc = collm_error(COLLM_ERR_FORMAT,
                                 "%s: optimizer tensor %d (%s) element %lld is not finite or has a negative second "
                                 "moment (%g, %g, %g)",
                                 path, i, p->name, (long long)j, p->param[j], p->m[j], p->v[j]);
                goto done;
            }
    }
    // last: the checks above name the field of a plausible-looking edit; this
    // catches what they cannot (a state from before the key is not checked)
    if (collm_gguf_find_key(f, STATE_HASH_KEY) >= 0) {
        int64_t want;
        if ((rc = collm_gguf_get_i64(f, STATE_HASH_KEY, &want))) goto done;
        const uint64_t got = state_hash(st, opt, n_train);
        if ((uint64_t)want != got) {
            rc = collm_error(COLLM_ERR_FORMAT,
                             "%s: the training state does not match its checksum (%s %016llx, computed %016llx): the "
                             "file was changed or damaged after it was written; start without --resume",
                             path, STATE_HASH_KEY, (unsigned long long)want, (unsigned long long)got);
            goto done;
        }
    }
done:
    if (rc && !strstr(collm_last_error(), path)) collm_error_prefix(rc, "%s", path);
    collm_gguf_close(f);
    return rc;
}

// ---------------------------------------------------------------------------

// The training rows' groups (collm_train_options.group_batches): rows with
// the same user and the same history, whose prompts agree up to the target.
// Group g holds rows member[start[g] .. start[g + 1]) in row order; row r is
// in group group_of[r].
typedef struct {
    int64_t n_groups;
    int32_t *group_of; // (n_train)
    int64_t *start;    // (n_groups + 1)
    int32_t *member;   // (n_train)
    int32_t *scratch;  // (n_train) the regrouped order
} row_groups;

static void row_groups_free(row_groups *g) {
    free(g->group_of);
    free(g->start);
    free(g->member);
    free(g->scratch);
    memset(g, 0, sizeof *g);
}

// Rows a and b by (user, history length, history items): 0 for one group.
static int user_history_cmp(const collm_rec_split *sp, int32_t a, int32_t b) {
    if (sp->user[a] != sp->user[b]) return sp->user[a] < sp->user[b] ? -1 : 1;
    const int64_t na = sp->his_offset[a + 1] - sp->his_offset[a], nb = sp->his_offset[b + 1] - sp->his_offset[b];
    if (na != nb) return na < nb ? -1 : 1;
    for (int64_t i = 0; i < na; i++) {
        const int32_t x = sp->his[sp->his_offset[a] + i], y = sp->his[sp->his_offset[b] + i];
        if (x != y) return x < y ? -1 : 1;
    }
    return 0;
}

// A row and its split: qsort passes no context, and a global one would make
// two trainings in two threads race.
typedef struct {
    const collm_rec_split *split;
    int32_t row;
} split_row;

// The groups side by side, each in row order.
static int by_user_history(const void *pa, const void *pb) {
    const split_row *a = pa, *b = pb;
    const int c = user_history_cmp(a->split, a->row, b->row);
    return c ? c : (a->row > b->row) - (a->row < b->row);
}

static int row_groups_init(row_groups *g, const collm_rec_split *train) {
    const int64_t n = train->n;
    memset(g, 0, sizeof *g);
    g->group_of = collm_malloc((size_t)n * sizeof(int32_t));
    g->start = collm_malloc((size_t)(n + 1) * sizeof(int64_t));
    g->member = collm_malloc((size_t)n * sizeof(int32_t));
    g->scratch = collm_malloc((size_t)n * sizeof(int32_t));
    if (!g->group_of || !g->start || !g->member || !g->scratch) {
        row_groups_free(g);
        return COLLM_ERR_NOMEM;
    }
    split_row *sorted = collm_malloc((size_t)n * sizeof *sorted);
    if (!sorted) {
        row_groups_free(g);
        return COLLM_ERR_NOMEM;
    }
    for (int64_t r = 0; r < n; r++) sorted[r] = (split_row){train, (int32_t)r};
    qsort(sorted, (size_t)n, sizeof *sorted, by_user_history);
    for (int64_t r = 0; r < n; r++) g->member[r] = sorted[r].row;
    free(sorted);
    for (int64_t i = 0; i < n; i++) {
        if (i == 0 || user_history_cmp(train, g->member[i - 1], g->member[i]) != 0) g->start[g->n_groups++] = i;
        g->group_of[g->member[i]] = (int32_t)(g->n_groups - 1);
    }
    g->start[g->n_groups] = n;
    return COLLM_OK;
}

// order (n rows, shuffled) -> each group's rows together, in row order,
// where the group's first row in row order fell. That row's place is uniform
// whatever the group's size, so the groups come in a uniformly random order
// (placing a group where any of its rows fell first would bring the large
// groups to the front of every pass). Deterministic: a function of the order
// alone.
static void regroup(row_groups *g, int32_t *order, int64_t n) {
    if (!g->group_of) return; // plain shuffle
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++) {
        const int32_t grp = g->group_of[order[i]];
        if (order[i] != g->member[g->start[grp]]) continue; // not the group's first row
        for (int64_t j = g->start[grp]; j < g->start[grp + 1]; j++) g->scratch[k++] = g->member[j];
    }
    memcpy(order, g->scratch, (size_t)n * sizeof(int32_t));
}

static void next_batch(train_state *st, row_groups *groups, int64_t n_train, int batch, int64_t *which) {
    if (st->cursor + batch > n_train) { // drop_last, then a fresh shuffle
        collm_rng_shuffle_i32(&st->rng, st->order, n_train);
        regroup(groups, st->order, n_train);
        st->cursor = 0;
    }
    for (int i = 0; i < batch; i++) which[i] = st->order[st->cursor + i];
    st->cursor += batch;
}

// Scores every row of the split and its metrics. Under MPI each rank scores
// its contiguous share of the rows and the scores are gathered, so every rank
// computes the same report (and takes the same early-stopping decision).
// show: a progress line on stderr (a terminal) while the rows are scored.
// offset (split->n, may be NULL): added to every row's score (residual training).
static int evaluate(collm_model *m, const collm_encoded *enc, const collm_rec_split *split, int batch, float *scores,
                    const float *offset, collm_metrics_report *rep, int show) {
    int rank = collm_dist_rank(), size = collm_dist_size();
    int64_t lo, hi;
    collm_dist_slice(split->n, rank, size, &lo, &hi);
    int rc = COLLM_OK;
    // in chunks of 16 batches when showing progress (the same scores: rows are independent)
    const int64_t chunk = show ? (int64_t)batch * 16 : hi - lo;
    double t0 = now_seconds();
    for (int64_t a = lo; rc == COLLM_OK && a < hi; a += chunk) {
        int64_t n = hi - a < chunk ? hi - a : chunk;
        rc = collm_score_encoded(m, enc + a, n, batch, scores + a);
        if (show && rc == COLLM_OK) {
            double el = now_seconds() - t0, done = (double)(a + n - lo);
            fprintf(stderr, "\r  evaluating %lld/%lld prompts  %.0f prompts/s  ETA %.0fs   ", (long long)(a + n - lo),
                    (long long)(hi - lo), done / (el > 0 ? el : 1e-9), el / done * (double)(hi - a - n));
        }
    }
    if (size > 1) {
        // every rank must reach the gather: agree on failure first
        int bad = rc != COLLM_OK;
        int rc2 = collm_dist_allreduce_max_i32(&bad);
        if (rc2) return rc2;
        if (bad) return rc ? rc : collm_error(COLLM_ERR, "evaluation failed on another rank");
        int64_t counts[1024], *cnt = size <= 1024 ? counts : collm_malloc((size_t)size * sizeof(int64_t));
        if (!cnt) return COLLM_ERR_NOMEM;
        for (int r = 0; r < size; r++) {
            int64_t a, b;
            collm_dist_slice(split->n, r, size, &a, &b);
            cnt[r] = b - a;
        }
        rc = collm_dist_allgather(scores, cnt, sizeof(float));
        if (cnt != counts) free(cnt);
    }
    if (rc) return rc;
    for (int64_t r = 0; offset && r < split->n; r++) scores[r] += offset[r];
    return collm_metrics_evaluate(split, scores, rep);
}

// Rank 0's status of a step only it ran (a file write) -> every rank: the
// others fail too, with a message that says where.
static int agree_on_lead(int rc, const char *what) {
    if (collm_dist_size() <= 1) return rc;
    int v = rc;
    int e = collm_dist_bcast(&v, sizeof v, 0);
    if (e) return e;
    if (collm_dist_rank() != 0 && v) return collm_error(v, "rank 0 failed to %s", what);
    return v;
}

// Data parallel: rank 0's copy of every trainable tensor (weights, and with
// moments the Adam state) to every rank. Run at the start, so that a resumed
// state read by rank 0 alone reaches all, and after each epoch, so that the
// ranks cannot drift apart by rounding (MPI does not promise the same bits of
// an allreduce on every rank).
static int sync_params(const collm_optim_state *opt, int moments) {
    if (collm_dist_size() <= 1) return COLLM_OK;
    int rc = COLLM_OK;
    for (int i = 0; !rc && i < opt->n_params; i++) {
        const collm_optim_param *p = &opt->params[i];
        rc = collm_dist_bcast(p->param, p->n * (int64_t)sizeof(float), 0);
        if (!rc && moments) rc = collm_dist_bcast(p->m, p->n * (int64_t)sizeof(float), 0);
        if (!rc && moments) rc = collm_dist_bcast(p->v, p->n * (int64_t)sizeof(float), 0);
    }
    return rc;
}

// Data parallel: every rank must train on the same rows, prompts, model
// shapes and options, or its slice of each batch means another thing (and a
// train split of another length makes rank 0's shuffled order, broadcast to
// all, index past the others' rows). A 64-bit fingerprint of what this rank
// will train is compared with rank 0's before any state is exchanged; a rank
// that differs fails naming itself, the others say that one did. Threads and
// paths may differ (each node has its own copy of the data).
static uint64_t train_fingerprint(const collm_train_options *o, const collm_rec_split *train,
                                  const collm_encoded *train_enc, const collm_rec_split *eval,
                                  const collm_encoded *eval_enc, const collm_optim_state *opt) {
    XXH3_state_t *h = XXH3_createState();
    if (!h) return 0;
    XXH3_64bits_reset(h);
#define FP(x) XXH3_64bits_update(h, &(x), sizeof(x))
    const int64_t sizes[2] = {train->n, eval ? eval->n : 0};
    FP(sizes);
    const collm_rec_split *splits[2] = {train, eval};
    const collm_encoded *encs[2] = {train_enc, eval_enc};
    for (int s = 0; s < 2; s++)
        for (int64_t i = 0; encs[s] && i < sizes[s]; i++) {
            const collm_encoded *e = &encs[s][i];
            XXH3_64bits_update(h, e->tokens, (size_t)e->n_tokens * sizeof(int32_t));
            FP(e->n_tokens);
            FP(e->n_slots);
            FP(e->slot_row);
            FP(e->slot_item);
            FP(e->user);
            FP(e->item);
            FP(splits[s]->label[i]);
        }
    FP(opt->n_params);
    for (int i = 0; i < opt->n_params; i++) FP(opt->params[i].n);
    FP(o->batch);
    FP(o->steps_per_epoch);
    FP(o->max_epochs);
    FP(o->patience);
    FP(o->lr);
    FP(o->warmup_lr);
    FP(o->min_lr);
    FP(o->warmup_steps);
    FP(o->restart_warmup);
    FP(o->weight_decay);
    FP(o->clip);
    FP(o->train_llm);
    FP(o->seed);
    FP(o->group_batches);
    FP(o->catalogue_negatives);
    FP(o->negative_alpha);
    FP(o->residual_weight);
    FP(o->residual_folds);
#undef FP
    uint64_t v = XXH3_64bits_digest(h);
    XXH3_freeState(h);
    return v;
}

static int ranks_agree(uint64_t mine) {
    if (collm_dist_size() <= 1) return COLLM_OK;
    uint64_t lead = mine;
    int rc = collm_dist_bcast(&lead, sizeof lead, 0);
    int differs = lead != mine, any = differs;
    if (!rc) rc = collm_dist_allreduce_max_i32(&any);
    if (rc) return rc;
    if (differs)
        return collm_error(COLLM_ERR_ARG, "rank %d: its training rows, prompts, model shapes or options differ from rank "
                                          "0's (give every rank the same data, base model, template and options)",
                           collm_dist_rank());
    if (any)
        return collm_error(COLLM_ERR_ARG, "rank %d: another rank's training rows, prompts, model shapes or options "
                                          "differ from rank 0's", collm_dist_rank());
    return COLLM_OK;
}

// The loader, early-stopping and random-generator state from rank 0.
static int sync_state(train_state *st, collm_optim_state *opt, int64_t n_train) {
    if (collm_dist_size() <= 1) return COLLM_OK;
    int32_t *order = st->order;
    int rc = collm_dist_bcast(st, sizeof *st, 0);
    st->order = order;
    if (!rc) rc = collm_dist_bcast(st->order, n_train * (int64_t)sizeof(int32_t), 0);
    if (!rc) rc = collm_dist_bcast(&opt->step, sizeof opt->step, 0);
    return rc;
}

// The gradient exchange of a data-parallel step. The token embedding's
// gradient (n_vocab, C) is row-sparse: a batch touches only its tokens' rows
// (~1-2 k of 32,000: 8.2 M of the recipe model's 11.4 M trainable values), so
// only the rows nonzero on some rank travel. A row that is zero on every rank
// sums to zero: skipping it changes no bit.
typedef struct {
    float *flat;     // (n_flat) every gradient (the embedding's sent rows only), then the loss
    int64_t n_flat;  // its capacity: every trainable value + 1
    int embd;        // index of the token embedding in opt->params, or -1
    int64_t n_rows;  // its rows (n_vocab) and row width C
    int64_t width;
    float *rows;     // (n_rows) 1 where the row is nonzero on this rank; after the sum, on any rank
    int64_t sent;    // floats summed since the last epoch_comm (the flat buffers: the volume per step)
} grad_exchange;

// 1 when row r (width) has a nonzero value.
static int row_nonzero(const float *row, int64_t width) {
    for (int64_t c = 0; c < width; c++)
        if (row[c] != 0.0f) return 1;
    return 0;
}

// Copies the gradients into x->flat (to = 1) or back (to = 0); the
// embedding's rows where x->rows > 0 only. Returns the floats used.
static int64_t pack_grads(const collm_optim_state *opt, grad_exchange *x, int to) {
    int64_t off = 0;
    for (int i = 0; i < opt->n_params; i++) {
        const collm_optim_param *p = &opt->params[i];
        if (i == x->embd) {
            for (int64_t r = 0; r < x->n_rows; r++) {
                if (x->rows[r] == 0.0f) continue;
                float *g = p->grad + r * x->width;
                memcpy(to ? x->flat + off : g, to ? g : x->flat + off, (size_t)x->width * sizeof(float));
                off += x->width;
            }
            continue;
        }
        memcpy(to ? x->flat + off : p->grad, to ? p->grad : x->flat + off, (size_t)p->n * sizeof(float));
        off += p->n;
    }
    return off;
}

// Sums every trainable gradient and the loss over the ranks: one
// MPI_Allreduce of the embedding's row mask (n_vocab floats), then one over
// the flat buffer [grad of params 0, 1, ..., loss].
static int allreduce_grads(const collm_optim_state *opt, grad_exchange *x, double *loss) {
    int rc;
    if (x->embd >= 0) {
        const float *g = opt->params[x->embd].grad;
        for (int64_t r = 0; r < x->n_rows; r++) x->rows[r] = (float)row_nonzero(g + r * x->width, x->width);
        if ((rc = collm_dist_allreduce_sum_f32(x->rows, x->n_rows))) return rc;
    }
    int64_t n = pack_grads(opt, x, 1);
    x->flat[n] = (float)*loss;
    if ((rc = collm_dist_allreduce_sum_f32(x->flat, n + 1))) return rc;
    x->sent += n + 1;
    pack_grads(opt, x, 0);
    *loss = x->flat[n];
    return COLLM_OK;
}

// Data parallel: how an epoch's time in the gradient allreduce splits, from
// every rank's own total t (seconds inside allreduce_grads): the rank that
// reached it last in a step waited only for the transfer, the others also for
// it. out[0] = min over ranks (the transfer and copies), out[1] = max - min
// (waiting for a slower rank: load imbalance). A collective: every rank calls.
static int epoch_comm(double t, double out[2]) {
    int size = collm_dist_size();
    double local[256], *all = size <= 256 ? local : collm_malloc((size_t)size * sizeof(double));
    int64_t counts[256], *cnt = size <= 256 ? counts : collm_malloc((size_t)size * sizeof(int64_t));
    int rc = all && cnt ? COLLM_OK : COLLM_ERR_NOMEM;
    if (!rc) {
        for (int r = 0; r < size; r++) cnt[r] = 1;
        all[collm_dist_rank()] = t;
        rc = collm_dist_allgather(all, cnt, sizeof(double));
    }
    if (!rc) {
        double lo = all[0], hi = all[0];
        for (int r = 1; r < size; r++) {
            lo = all[r] < lo ? all[r] : lo;
            hi = all[r] > hi ? all[r] : hi;
        }
        out[0] = lo;
        out[1] = hi - lo;
    }
    if (all != local) free(all);
    if (cnt != counts) free(cnt);
    return rc;
}

// Data parallel: this rank's prompts of a global batch, balanced by tokens.
// Prompts differ in length (ML-1M: ~2x between the shortest and longest of a
// batch), so contiguous slices of equal counts leave one rank waiting in the
// allreduce for the other. Longest first, each prompt goes to the rank with
// the fewest tokens so far (lowest rank on ties): every rank computes the
// same assignment from the same batch. mine (batch) gets this rank's rows in
// batch order; returns their count. order (batch) and load (size): scratch.
static int balanced_share(const collm_encoded *enc, const int64_t *which, int batch, int rank, int size, int64_t *mine,
                          int *order, int64_t *load) {
    // insertion sort by length, longest first; ties keep batch order (batches are small)
    for (int i = 0; i < batch; i++) {
        int j = i;
        while (j > 0 && enc[which[order[j - 1]]].n_tokens < enc[which[i]].n_tokens) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = i;
    }
    for (int r = 0; r < size; r++) load[r] = 0;
    // owner of each position, reusing order's slots: owner[pos] after the loop
    int *owner = order + batch; // (batch) the second half of the scratch
    for (int i = 0; i < batch; i++) {
        int best = 0;
        for (int r = 1; r < size; r++)
            if (load[r] < load[best]) best = r;
        load[best] += enc[which[order[i]]].n_tokens;
        owner[order[i]] = best;
    }
    int n = 0;
    for (int i = 0; i < batch; i++)
        if (owner[i] == rank) mine[n++] = which[i];
    return n;
}

// A sub-split view of the first n rows (arrays shared, not copied).
static collm_rec_split head_of(const collm_rec_split *s, int64_t n) {
    collm_rec_split h = *s;
    if (n > 0 && n < s->n) h.n = n;
    return h;
}

// One JSON number rounded to `digits` decimals (NaN and infinities become
// null: JSON has no such numbers).
static void json_num(cJSON *obj, const char *key, double v, int digits) {
    if (!isfinite(v)) {
        cJSON_AddNullToObject(obj, key);
        return;
    }
    double scale = pow(10.0, digits);
    double r = round(v * scale) / scale;
    cJSON_AddNumberToObject(obj, key, fabs(r) > 0 || v == 0 ? r : v); // keep tiny values (lr) exact
}

// One line of the training log: {"epoch":..,"loss":..,...}\n.
static int write_log_line(FILE *log, const char *path, int64_t epoch, int64_t step, double loss, double lr,
                          const collm_metrics_report *rep, double best_auc, double sps, double train_s, double eval_s,
                          double fwd_gflop, const double *comm) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return collm_error(COLLM_ERR_NOMEM, "out of memory");
    cJSON_AddNumberToObject(o, "epoch", (double)epoch);
    cJSON_AddNumberToObject(o, "step", (double)step);
    json_num(o, "loss", loss, 6);
    cJSON_AddNumberToObject(o, "lr", lr);
    json_num(o, "valid_auc", rep->auc, 6);
    json_num(o, "valid_uauc", rep->uauc, 6);
    json_num(o, "best_auc", best_auc, 6);
    json_num(o, "samples_per_second", sps, 2);
    json_num(o, "train_seconds", train_s, 2);
    json_num(o, "eval_seconds", eval_s, 2);
    json_num(o, "forward_gflop_per_sample", fwd_gflop, 6);
    if (comm) { // data parallel: see epoch_comm
        json_num(o, "allreduce_seconds", comm[0], 3);
        json_num(o, "allreduce_wait_seconds", comm[1], 3);
        json_num(o, "allreduce_mb_per_step", comm[2], 2);
    }
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!text) return collm_error(COLLM_ERR_NOMEM, "out of memory");
    int ok = fputs(text, log) >= 0 && fputc('\n', log) != EOF && fflush(log) == 0;
    cJSON_free(text);
    return ok ? COLLM_OK : collm_error(COLLM_ERR_IO, "%s: cannot write the training log", path);
}

// Rejects options no run can use, before any work.
static int check_options(const collm_train_options *o) {
    if (o->batch < 1 || o->steps_per_epoch < 1 || o->max_epochs < 1)
        return collm_error(COLLM_ERR_ARG, "batch, steps per epoch and epochs must be positive");
    if (o->patience < 0 || o->warmup_steps < 0 || o->eval_batch < 0 || o->max_eval_rows < 0 || o->epoch_budget < 0)
        return collm_error(COLLM_ERR_ARG, "patience, warmup steps, eval batch, eval rows and epoch budget must be >= 0");
    const struct {
        const char *name;
        double v;
        int positive;
    } rates[] = {{"learning rate", o->lr, 1},   {"warmup learning rate", o->warmup_lr, 0},
                 {"minimum learning rate", o->min_lr, 0}, {"weight decay", o->weight_decay, 0},
                 {"gradient clip", o->clip, 0}};
    for (size_t i = 0; i < sizeof rates / sizeof rates[0]; i++)
        if (!isfinite(rates[i].v) || rates[i].v < 0 || (rates[i].positive && rates[i].v == 0))
            return collm_error(COLLM_ERR_ARG, "the %s must be a finite number %s (got %g)", rates[i].name,
                               rates[i].positive ? "> 0" : ">= 0", rates[i].v);
    // the cosine runs from the learning rate down to the floor: a floor above
    // it (a --lr lowered below the default floor 8e-5) made the rate rise
    if (o->min_lr > o->lr)
        return collm_error(COLLM_ERR_ARG, "the minimum learning rate %g exceeds the learning rate %g (the cosine schedule "
                                          "would rise to it): lower the minimum (--min-lr)", o->min_lr, o->lr);
    if (!isfinite(o->residual_weight) || o->residual_weight < 0 || o->residual_weight > COLLM_SCORE_CF_WEIGHT_MAX)
        return collm_error(COLLM_ERR_ARG, "the residual weight must lie in [0, %g] (got %g)", COLLM_SCORE_CF_WEIGHT_MAX,
                           o->residual_weight);
    if (o->residual_folds < 0 || o->residual_folds > 100)
        return collm_error(COLLM_ERR_ARG, "residual folds: %d (0 or 1: in-sample scores; 2-100: out of fold)",
                           o->residual_folds);
    if (!o->out_path) return collm_error(COLLM_ERR_ARG, "no output path");
    return COLLM_OK;
}

// Residual training's offsets (collm_train_options.residual_weight):
// train_off (train->n) = w · cf of the training rows, out of fold for the
// first ds->train->n rows when folds >= 2 (the rest, catalogue negatives the
// encoder never trained on, take the checkpoint's own scores); eval_off
// (eval->n, eval may be NULL) = w · the checkpoint's own cf.
static int residual_offsets(const collm_model *m, const collm_rec_dataset *ds, const collm_rec_split *train,
                            const collm_rec_split *eval, const collm_train_options *o, float *train_off, float *eval_off) {
    const float w = (float)o->residual_weight;
    int rc = collm_cf_scores(m, train, train_off);
    if (!rc && eval) rc = collm_cf_scores(m, eval, eval_off);
    if (!rc && o->residual_folds >= 2) {
        collm_cf_hparams hp;
        int32_t n_users = m->n_cf_users, n_items = m->n_cf_items;
        if (m->cf_enc) {
            collm_cf_model_hparams(m->cf_enc, &hp);
            n_users = collm_cf_model_n_users(m->cf_enc);
            n_items = collm_cf_model_n_items(m->cf_enc);
        } else if (!m->cf_kind[0]) {
            return collm_error(COLLM_ERR_ARG, "out-of-fold residual scores need the encoder's kind, which this "
                                              "checkpoint does not record; give --cf again or use in-sample scores");
        } else if (!(rc = collm_cf_hparams_default(m->cf_kind, &hp))) {
            hp.dim = m->cf_dim;
        }
        if (!rc)
            rc = collm_cf_oof_scores(m->cf_kind, &hp, n_users, n_items, ds, o->residual_folds, NULL,
                                     o->seed ^ 0x7265736964756c00ULL, m->pool, train_off);
    }
    for (int64_t r = 0; !rc && r < train->n; r++) train_off[r] *= w;
    for (int64_t r = 0; !rc && eval && r < eval->n; r++) eval_off[r] *= w;
    return rc;
}

// Positives among the rows: an evaluation split needs both labels, or its
// AUC is undefined and no epoch could ever be chosen as the best.
static int check_eval_labels(const collm_rec_split *eval, const char *name) {
    int64_t pos = 0;
    for (int64_t i = 0; i < eval->n; i++) pos += eval->label[i] != 0;
    if (eval->n > 0 && pos > 0 && pos < eval->n) return COLLM_OK;
    return collm_error(COLLM_ERR_ARG,
                       "evaluation split %s: its %lld rows used %s, so the validation AUC is undefined; use a "
                       "split (--eval-split) or more rows (--eval-rows) with both labels",
                       name, (long long)eval->n, eval->n == 0 ? "are none" : pos ? "are all positive" : "are all negative");
}

int collm_train(collm_model *m, const collm_rec_dataset *ds, const collm_train_options *o, collm_train_result *res) {
    memset(res, 0, sizeof *res);
    if (!ds->train) return collm_error(COLLM_ERR_ARG, "the dataset has no train split");
    if (o->catalogue_negatives < 0) return collm_error(COLLM_ERR_ARG, "catalogue negatives: %d per positive", o->catalogue_negatives);
    int rc = check_options(o);
    if (rc) return rc;
    if (o->residual_weight > 0 && !m->has_fece)
        return collm_error(COLLM_ERR_ARG, "residual training adds the collaborative score to the LLM's: it needs "
                                          "stage 2 with a collaborative model (--cf)");
    if (o->residual_weight > 0 && m->n_score_extra > 0)
        return collm_error(COLLM_ERR_ARG, "the checkpoint already fuses %d further encoder(s) into its score; residual "
                                          "training adds only its own collaborative score: start from a checkpoint "
                                          "without them (before fit-score --with)", m->n_score_extra);
    // the output folder (and the log's) before hours of encoding and training
    if ((rc = collm_check_output_path(o->out_path)) || (o->log_path && (rc = collm_check_output_path(o->log_path))))
        return rc;
    int train_llm = m->full_finetune || (m->stage >= 2 && o->train_llm);
    int train_lora = m->has_lora && !m->lora_merged && !m->lora_frozen && !train_llm;
    int train_fece = m->has_fece;
    if (!train_llm && !train_lora && !train_fece)
        return collm_error(COLLM_ERR_ARG, "nothing to train: stage 1 needs LoRA (--lora-rank) or --full");
    if (train_llm) m->full_model_in_ckpt = 1;
    // the settings go into every checkpoint this run writes (collm.train.*)
    free(m->train_eval_split);
    free(m->train_data);
    m->train_opt = *o;
    m->train_eval_split = strdup(o->eval_split ? o->eval_split : "");
    m->train_data = strdup(ds->dir ? ds->dir : "");
    m->train_ranks = collm_dist_size();
    m->has_train = m->train_eval_split && m->train_data;
    if (!m->has_train) return collm_error(COLLM_ERR_NOMEM, "out of memory");
    if (o->batch > ds->train->n) return collm_error(COLLM_ERR_ARG, "batch %d exceeds the %lld training rows", o->batch, (long long)ds->train->n);
    // data parallel: rank 0 alone prints, logs and writes files
    const int rank = collm_dist_rank(), n_ranks = collm_dist_size(), lead = rank == 0;
    const int progress = o->progress && lead;
    if (o->batch < n_ranks)
        return collm_error(COLLM_ERR_ARG, "batch %d is smaller than the %d ranks (each rank takes a slice of every batch)",
                           o->batch, n_ranks);

    // the rows trained on: train, plus catalogue negatives when asked (an
    // item must have a CF row to fill its slot)
    const collm_rec_split *train = ds->train;
    collm_rec_split *with_neg = NULL;
    if (o->catalogue_negatives > 0) {
        int32_t n_items = m->has_fece && m->n_cf_items < ds->n_items ? m->n_cf_items : ds->n_items;
        with_neg = collm_rec_split_with_negatives(ds->train, ds->items, n_items, o->catalogue_negatives, o->negative_alpha,
                                                  o->seed ^ 0x6e65676174697665ULL);
        if (!with_neg) return COLLM_ERR;
        train = with_neg;
    }
    collm_rec_split *eval_full = NULL;
    collm_encoded *train_enc = NULL, *eval_enc = NULL;
    collm_llm_trainer *tr = NULL;
    collm_batch b;
    memset(&b, 0, sizeof b);
    collm_optim_state opt;
    collm_optim_init(&opt, 0.9f, 0.999f, 1e-8f, (float)o->weight_decay);
    opt.pool = m->pool;
    train_state st;
    memset(&st, 0, sizeof st);
    row_groups groups;
    memset(&groups, 0, sizeof groups);
    float *eval_scores = NULL, *train_off = NULL, *eval_off = NULL; // residual offsets (train->n), (eval.n)
    int64_t *which = NULL, *mine_buf = NULL, *load = NULL; // the batch; this rank's share of it (balanced_share)
    int *order = NULL;
    grad_exchange xg = {.embd = -1};
    FILE *log = NULL;
    char *resume_path = NULL, *log_path = NULL;
    double t_start = now_seconds();

    // the evaluation rows first (cheap to check), then the data, encoded once
    if (o->eval_split && *o->eval_split) {
        eval_full = collm_rec_dataset_load_split(ds, o->eval_split);
        if (!eval_full) {
            rc = COLLM_ERR;
            goto done;
        }
    }
    collm_rec_split eval = eval_full ? head_of(eval_full, o->max_eval_rows) : (collm_rec_split){0};
    if (eval_full && (rc = check_eval_labels(&eval, o->eval_split))) goto done;
    if ((rc = collm_encode_split(m, ds, train, &train_enc))) goto done;
    if (eval_full && (rc = collm_encode_split(m, ds, &eval, &eval_enc))) goto done;
    int64_t n_train = train->n;
    int max_len = 1;
    for (int64_t i = 0; i < n_train; i++)
        if (train_enc[i].n_tokens > max_len) max_len = train_enc[i].n_tokens;
    for (int64_t i = 0; eval_enc && i < eval.n; i++)
        if (eval_enc[i].n_tokens > max_len) max_len = eval_enc[i].n_tokens;
    if (progress) {
        int64_t total = 0;
        for (int64_t i = 0; i < n_train; i++) total += train_enc[i].n_tokens;
        fprintf(stderr, "train: %lld prompts (%lld catalogue negatives), %.1f tokens on average, longest %d; %lld evaluation prompts\n",
                (long long)n_train, (long long)(n_train - ds->train->n), (double)total / (double)n_train, max_len,
                (long long)eval.n);
    }
    if (o->residual_weight > 0) {
        train_off = collm_malloc((size_t)n_train * sizeof(float));
        eval_off = collm_malloc((size_t)(eval.n > 0 ? eval.n : 1) * sizeof(float));
        if (!train_off || !eval_off) {
            rc = COLLM_ERR_NOMEM;
            goto done;
        }
        if ((rc = residual_offsets(m, ds, train, eval_enc ? &eval : NULL, o, train_off, eval_off))) goto done;
        // every checkpoint of the run scores llm + w · cf, as trained
        m->score_cf_weight = (float)o->residual_weight;
        m->has_score_cf_weight = 1;
        if (progress) {
            collm_metrics_report tr_rep, ev_rep;
            memset(&ev_rep, 0, sizeof ev_rep);
            ev_rep.auc = NAN;
            rc = collm_metrics_evaluate(train, train_off, &tr_rep);
            if (!rc && eval_enc) rc = collm_metrics_evaluate(&eval, eval_off, &ev_rep);
            if (rc) goto done;
            fprintf(stderr, "train: residual over %g x the %s score (%s): its AUC on train %.4f, on the evaluation rows %.4f\n",
                    o->residual_weight, m->cf_kind[0] ? m->cf_kind : "collaborative",
                    o->residual_folds >= 2 ? "out of fold on train" : "in sample", tr_rep.auc, ev_rep.auc);
        }
    }
    int eval_batch = o->eval_batch > 0 ? o->eval_batch : o->batch;
    int rows_cap = (o->batch > eval_batch ? o->batch : eval_batch) * max_len;

    // a frozen adapter (quantised base) still runs in the forward; its gradients go unused
    tr = collm_llm_trainer_create(m->llm, train_lora || m->lora_frozen ? &m->lora : NULL, train_llm, rows_cap, max_len,
                                  m->pool);
    if (!tr) {
        rc = COLLM_ERR;
        goto done;
    }
    // the LLM frozen (stage 2): its weights packed once for the whole run
    if (!train_llm && !train_lora && !m->lora_frozen && (rc = collm_llm_trainer_set_weights_fixed(tr))) goto done;
    // evaluation borrows this trainer (forward only, no dropout) rather than
    // allocating a second set of activations
    collm_llm_trainer_free(m->scorer);
    m->scorer = tr;
    m->scorer_rows = rows_cap;
    m->scorer_len = max_len;
    if ((rc = collm_batch_init(&b, m, o->batch, o->batch * max_len))) goto done;
    if ((rc = register_params(m, tr, train_llm, train_lora, train_fece, &opt))) goto done;
    collm_optim_zero_grad(&opt);
    if (n_ranks > 1) { // the allreduce buffer: every trainable gradient, then the loss
        for (int i = 0; i < opt.n_params; i++) {
            xg.n_flat += opt.params[i].n;
            if (opt.params[i].param == m->llm->token_embd) xg.embd = i;
        }
        xg.n_flat += 1;
        if (xg.embd >= 0) {
            xg.width = m->llm->hp.n_embd;
            xg.n_rows = opt.params[xg.embd].n / xg.width;
            xg.rows = collm_malloc((size_t)xg.n_rows * sizeof(float));
        }
        if (!(xg.flat = collm_malloc((size_t)xg.n_flat * sizeof(float))) || (xg.embd >= 0 && !xg.rows)) {
            rc = COLLM_ERR_NOMEM;
            goto done;
        }
    }
    st.order = collm_malloc((size_t)n_train * sizeof(int32_t));
    which = collm_malloc((size_t)o->batch * sizeof(int64_t));
    if (n_ranks > 1) {
        mine_buf = collm_malloc((size_t)o->batch * sizeof(int64_t));
        order = collm_malloc((size_t)o->batch * 2 * sizeof(int));
        load = collm_malloc((size_t)n_ranks * sizeof(int64_t));
        if (!mine_buf || !order || !load) {
            rc = COLLM_ERR_NOMEM;
            goto done;
        }
    }
    eval_scores = collm_malloc((size_t)(eval.n ? eval.n : 1) * sizeof(float));
    if (!st.order || !which || !eval_scores) {
        rc = COLLM_ERR_NOMEM;
        goto done;
    }
    if (o->group_batches && (rc = row_groups_init(&groups, train))) goto done;
    for (int64_t i = 0; i < n_train; i++) st.order[i] = (int32_t)i;
    collm_rng_seed(&st.rng, o->seed);
    collm_rng_seed(&st.drop_rng, o->seed ^ 0x5deece66dULL);
    collm_rng_shuffle_i32(&st.rng, st.order, n_train);
    regroup(&groups, st.order, n_train);
    st.best_auc = -1;
    st.best_uauc = NAN;

    size_t plen = strlen(o->out_path) + 16;
    resume_path = collm_malloc(plen);
    log_path = collm_malloc(plen);
    if (!resume_path || !log_path) {
        rc = COLLM_ERR_NOMEM;
        goto done;
    }
    snprintf(resume_path, plen, "%s.resume", o->out_path);
    snprintf(log_path, plen, "%s.log.jsonl", o->out_path);
    // temp files of saves a killed run left behind (tens of MB each)
    int n_stale[2] = {0, 0};
    if (lead && ((rc = collm_remove_stale_temps(o->out_path, &n_stale[0])) ||
                 (rc = collm_remove_stale_temps(resume_path, &n_stale[1]))))
        goto done;
    if (progress && n_stale[0] + n_stale[1] > 0)
        fprintf(stderr, "removed %d temporary file(s) left by an interrupted save of %s\n", n_stale[0] + n_stale[1],
                o->out_path);
    int resuming = 0;
    if (o->resume && lead) { // rank 0 reads the state; sync_* below hands it to the others
        // a run killed before its first epoch ended left no state: start afresh
        if (access(resume_path, R_OK) == 0) {
            rc = read_resume(resume_path, &opt, &st, n_train, m, o);
            resuming = 1;
            if (!rc && progress)
                fprintf(stderr, "resuming after epoch %lld (best valid AUC %.4f at epoch %lld)%s\n", (long long)st.epoch,
                        st.best_auc, (long long)st.best_epoch, n_ranks > 1 ? " on all ranks" : "");
        } else if (progress) {
            fprintf(stderr, "no saved state at %s: starting from scratch\n", resume_path);
        }
    }
    // (every rank, before any state is exchanged: the order below has n_train entries)
    int agree = ranks_agree(train_fingerprint(o, train, train_enc, eval_full ? &eval : NULL, eval_enc, &opt));
    if (agree) {
        rc = agree;
        goto done;
    }
    if ((rc = agree_on_lead(rc, "read the training state")) || (rc = sync_params(&opt, 1)) ||
        (rc = sync_state(&st, &opt, n_train)))
        goto done;
    // A fresh run empties the log only when its first epoch is saved (below),
    // with the checkpoint and the state: until then the files there are the
    // last run's, and a --resume continues that state. Opened "w" here, a
    // fresh run that died in its first epoch left the last run's state with
    // an empty log, and a resume then logged its epochs after nothing.
    int log_fresh = !resuming;
    if (lead) {
        log = fopen(o->log_path ? o->log_path : log_path, "a");
        if (!log) rc = collm_error(COLLM_ERR_IO, "%s: cannot open the training log", o->log_path ? o->log_path : log_path);
    }
    if ((rc = agree_on_lead(rc, "open the training log"))) goto done;
    if (progress && n_ranks > 1)
        fprintf(stderr, "train: data parallel over %d ranks: each takes ~%lld prompts of every batch of %d (shares "
                        "balanced by tokens)\n", n_ranks, (long long)(o->batch / n_ranks), o->batch);

    collm_optim_schedule sched = {.init_lr = o->lr, .warmup_lr = o->warmup_lr, .min_lr = o->min_lr,
                            .warmup_steps = o->warmup_steps, .total_steps = (int64_t)o->max_epochs * o->steps_per_epoch,
                            .steps_per_epoch = o->steps_per_epoch, .restart_warmup = o->restart_warmup};
    int tty = isatty(fileno(stderr)) && progress;
    collm_rng *dropout = train_lora && m->lora.dropout > 0 ? &st.drop_rng : NULL;
    // data parallel with LoRA dropout: each rank draws its masks from its own
    // stream, seeded per step from the shared one (which every rank advances
    // alike, so the saved state does not depend on N)
    collm_rng local_drop;
    double train_seconds = 0, run_seconds = 0; // this invocation's epochs: training / training + evaluation
    int64_t samples_done = 0, epochs_this_run = 0;
    // epochs this invocation may still run after the current one: the run's ETA (early stopping may end it sooner)
    const int64_t run_epochs_max = o->epoch_budget > 0 && st.epoch + o->epoch_budget < o->max_epochs
                                       ? st.epoch + o->epoch_budget : o->max_epochs;
    // (a resumed run that had already stopped early stops again at once)
    while (st.epoch < o->max_epochs && (o->epoch_budget <= 0 || epochs_this_run < o->epoch_budget) &&
           !(eval_enc && st.bad_epochs > o->patience)) {
        epochs_this_run++;
        double t_epoch = now_seconds(), loss_sum = 0, t_comm = 0;
        double fwd_flops = 0; // this rank's forward FLOPs as computed (collm_llm_trainer_forward_flops)
        int64_t fwd_samples = 0;
        double lr = 0;
        for (int step = 0; step < o->steps_per_epoch; step++) {
            lr = collm_optim_schedule_lr(&sched, st.global_step);
            next_batch(&st, &groups, n_train, o->batch, which);
            // (n_local) this rank's rows: the whole batch, or its balanced share (balanced_share)
            const int64_t *mine = which;
            int n_local = o->batch;
            if (n_ranks > 1) n_local = balanced_share(train_enc, which, o->batch, rank, n_ranks, mine_buf, order, load);
            if (n_ranks > 1) mine = mine_buf;
            const float share = (float)n_local / (float)o->batch;
            if ((rc = collm_batch_pack(&b, m, train_enc, mine, n_local))) goto done;
            for (int i = 0; i < n_local; i++) b.labels[i] = (float)train->label[mine[i]];
            collm_llm_slot_rows slots = {b.n_slots, b.slot_rows, b.slot_y};
            collm_rng *drop = dropout;
            if (dropout && n_ranks > 1) {
                collm_rng_seed(&local_drop, collm_rng_next(dropout) ^ (0x9e3779b97f4a7c15ULL * (uint64_t)(rank + 1)));
                drop = &local_drop;
            }
            if ((rc = collm_llm_trainer_forward(tr, b.tokens, b.seq_len, n_local, b.n_slots ? &slots : NULL, m->yes_id,
                                          b.scores, drop)))
                goto done;
            fwd_flops += collm_llm_trainer_forward_flops(tr);
            fwd_samples += n_local;
            // residual training: the loss sees llm + offset; its gradient w.r.t. the LLM's logit is the same
            for (int i = 0; train_off && i < n_local; i++) b.scores[i] += train_off[mine[i]];
            double loss = collm_ops_bce_with_logits(b.dscores, b.scores, b.labels, n_local);
            if (n_ranks > 1) { // this rank's share of the global mean (and of its gradient)
                loss *= share;
                for (int i = 0; i < n_local; i++) b.dscores[i] *= share;
            }
            if (n_ranks == 1 && !isfinite(loss)) {
                // a diverged run only gets worse: stop before the step spreads NaN into the weights
                rc = collm_error(COLLM_ERR, "epoch %lld step %d: the training loss is %s (diverged); stopping. Lower "
                                            "--lr or --clip; %s",
                                 (long long)st.epoch + 1, step + 1, isnan(loss) ? "NaN" : "infinite",
                                 st.best_epoch > 0 ? "the best checkpoint so far is kept" : "no checkpoint was written");
                goto done;
            }
            // (the gradients are zero here: zeroed before the first step, then by each fused step)
            if (b.n_slots) memset(b.slot_dy, 0, (size_t)b.n_slots * m->llm->hp.n_embd * sizeof(float));
            if ((rc = collm_llm_trainer_backward(tr, b.dscores, b.n_slots && train_fece ? b.slot_dy : NULL))) goto done;
            if (b.n_slots && train_fece) collm_fece_backward(&m->fece, b.slot_x, b.n_slots, b.slot_h, b.slot_dy, NULL, b.scratch);
            if (n_ranks > 1) {
                double t0 = now_seconds();
                if ((rc = allreduce_grads(&opt, &xg, &loss))) goto done;
                t_comm += now_seconds() - t0;
                if (!isfinite(loss)) { // every rank sees the same sum and stops alike
                    rc = collm_error(COLLM_ERR, "epoch %lld step %d: the training loss is %s (diverged); stopping. Lower "
                                                "--lr or --clip; %s",
                                     (long long)st.epoch + 1, step + 1, isnan(loss) ? "NaN" : "infinite",
                                     st.best_epoch > 0 ? "the best checkpoint so far is kept" : "no checkpoint was written");
                    goto done;
                }
            }
            collm_optim_step_fused(&opt, (float)lr, o->clip); // clip, AdamW and zeroing in one pass
            st.global_step++;
            loss_sum += loss;
            samples_done += o->batch;
            if (tty) {
                double el = now_seconds() - t_epoch;
                double sps = (step + 1) * o->batch / (el > 0 ? el : 1e-9);
                double eta = (o->steps_per_epoch - step - 1) * o->batch / (sps > 0 ? sps : 1);
                // the run: this epoch's rest, then the mean epoch (with its evaluation) so far per epoch left
                int64_t after = run_epochs_max - st.epoch - 1;
                double run_eta = epochs_this_run > 1 ? eta + run_seconds / (double)(epochs_this_run - 1) * (double)after : NAN;
                fprintf(stderr, "\repoch %lld step %d/%d  loss %.4f  lr %.2e  %.1f samples/s  epoch ETA %.0fs",
                        (long long)st.epoch + 1, step + 1, o->steps_per_epoch, loss_sum / (step + 1), lr, sps, eta);
                if (!isnan(run_eta)) fprintf(stderr, "  run ETA <= %.0fs", run_eta);
                fprintf(stderr, "   ");
            }
        }
        double t_trained = now_seconds();
        train_seconds += t_trained - t_epoch;
        st.epoch++;
        collm_metrics_report rep;
        memset(&rep, 0, sizeof rep);
        rep.auc = rep.uauc = NAN;
        int improved = 0;
        if (eval_enc) {
            if ((rc = evaluate(m, eval_enc, &eval, eval_batch, eval_scores, eval_off, &rep, tty))) goto done;
            if (!isfinite(rep.auc)) {
                // both labels are present (checked above): NaN scores, a diverged model
                rc = collm_error(COLLM_ERR, "epoch %lld: the validation AUC is NaN (the model's scores are not "
                                            "finite); stopping. Lower --lr; %s",
                                 (long long)st.epoch, st.best_epoch > 0 ? "the best checkpoint so far is kept"
                                                                        : "no checkpoint was written");
                goto done;
            }
            if (rep.auc > st.best_auc) {
                improved = 1;
                st.best_auc = rep.auc;
                st.best_uauc = rep.uauc;
                st.best_epoch = st.epoch;
                st.bad_epochs = 0;
            } else {
                st.bad_epochs++;
            }
        } else {
            improved = 1;
            st.best_epoch = st.epoch;
        }
        double eval_seconds = now_seconds() - t_trained;
        double sps = o->steps_per_epoch * o->batch / (t_trained - t_epoch);
        double comm[3] = {0, 0, 4e-6 * (double)xg.sent / o->steps_per_epoch}; // MB of floats per step
        xg.sent = 0;
        if (n_ranks > 1 && (rc = epoch_comm(t_comm, comm))) goto done;
        if ((rc = sync_params(&opt, 0))) goto done; // rank 0's weights everywhere (see sync_params)
        if (lead) {
            if (improved) rc = collm_model_save(m, o->out_path);
            if (!rc) rc = write_resume(resume_path, m, &opt, &st, n_train, o);
            if (!rc && log_fresh) {
                if (fflush(log) != 0 || ftruncate(fileno(log), 0) != 0)
                    rc = collm_error(COLLM_ERR_IO, "%s: cannot empty the training log",
                                     o->log_path ? o->log_path : log_path);
                log_fresh = 0;
            }
            if (!rc)
                rc = write_log_line(log, o->log_path ? o->log_path : log_path, st.epoch, st.global_step,
                                    loss_sum / o->steps_per_epoch, lr, &rep, eval_enc ? st.best_auc : NAN, sps,
                                    t_trained - t_epoch, eval_seconds,
                                    fwd_samples ? fwd_flops / (double)fwd_samples / 1e9 : NAN,
                                    n_ranks > 1 ? comm : NULL);
        }
        if ((rc = agree_on_lead(rc, "write the checkpoint, training state or log"))) goto done;
        run_seconds += now_seconds() - t_epoch;
        if (progress) {
            int64_t left = run_epochs_max - st.epoch;
            fprintf(stderr, "%sepoch %lld/%lld  loss %.4f  valid AUC %.4f UAUC %.4f%s  %.1f samples/s  (train %.1fs, eval %.1fs)",
                    tty ? "\r" : "", (long long)st.epoch, (long long)run_epochs_max, loss_sum / o->steps_per_epoch,
                    rep.auc, rep.uauc, improved ? " *" : "", sps, t_trained - t_epoch, eval_seconds);
            if (left > 0) fprintf(stderr, "  run ETA <= %.0fs", run_seconds / (double)epochs_this_run * (double)left);
            fprintf(stderr, "%s\n", tty ? "          " : "");
        }
    }
    // every path above writes the checkpoint at its first epoch; a resumed run
    // that had nothing left to do relies on the earlier run's
    if (st.best_epoch < 1 || (lead && access(o->out_path, F_OK) != 0)) {
        rc = collm_error(COLLM_ERR, "%s: no checkpoint was written (%lld epochs, none chosen as the best)", o->out_path,
                         (long long)st.epoch);
        goto done;
    }
    res->epochs_run = (int)st.epoch;
    res->best_epoch = (int)st.best_epoch;
    res->best_auc = st.best_auc >= 0 ? st.best_auc : NAN; // no evaluation split: undefined
    res->best_uauc = st.best_uauc;
    res->seconds = now_seconds() - t_start;
    res->samples_per_second = train_seconds > 0 ? samples_done / train_seconds : 0;
done:
    if (log) fclose(log);
    free(resume_path);
    free(log_path);
    free(st.order);
    row_groups_free(&groups);
    free(which);
    free(mine_buf);
    free(order);
    free(load);
    free(eval_scores);
    free(train_off);
    free(eval_off);
    free(xg.flat);
    free(xg.rows);
    collm_optim_free(&opt);
    collm_batch_free(&b);
    if (m->scorer == tr) m->scorer = NULL;
    collm_llm_trainer_free(tr);
    collm_encoded_array_free(train_enc, train->n);
    collm_rec_split_free(with_neg);
    if (eval_full) collm_encoded_array_free(eval_enc, head_of(eval_full, o->max_eval_rows).n);
    collm_rec_split_free(eval_full);
    return rc;
}
