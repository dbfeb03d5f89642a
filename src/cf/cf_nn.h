// Private to src/cf: what the neural encoders (LightGCN, SASRec, DIN) share.
//  * cf_params: every tensor of a model in one flat float buffer (trainable
//    tensors first, then buffers such as running statistics), with named
//    shapes for GGUF save/load, a dense gradient and Adam moments, one Adam
//    step over the whole trainable range (PyTorch Adam, coupled L2, as the
//    authors' scripts use), and whole-model snapshots for early stopping.
//  * layers written as forward/backward pairs: LayerNorm (PyTorch), batch
//    normalisation + Dice (DIN), with shapes in the comments.
//  * history windows: the last L liked items of a sample, left-padded with 0.
//  * the epoch loop with evaluation, patience and best-weights restore.
// Backward functions ACCUMULATE (+=) into gradient buffers, as core/ops.h.
#ifndef COLLM_CF_NN_H
#define COLLM_CF_NN_H

#include <stdint.h>

#include "cf/cf_internal.h"
#include "core/rng.h"

enum { CF_MAX_TENSORS = 112 }; // SASRec: 4 + 12 per block, up to 8 blocks

typedef struct {
    char name[48];    // GGUF tensor name ("sasrec.blk.0.attn_in.weight", ...)
    int64_t rows, cols; // (rows, cols) row-major; GGUF ne = {cols, rows}
    int64_t offset;   // into cf_params.w
    int trainable;    // 0: a buffer (saved, snapshotted, never stepped)
} cf_tensor;

typedef struct cf_params {
    cf_tensor t[CF_MAX_TENSORS];
    int n;
    int64_t n_train; // trainable values: w[0, n_train)
    int64_t n_total; // all values
    float *w;        // (n_total)
    float *g;        // (n_train) gradient, NULL until cf_params_alloc_train
    float *m, *v;    // (n_train) Adam moments
} cf_params;

// Declares a tensor (before cf_params_alloc); returns its index.
int cf_params_add(cf_params *p, const char *name, int64_t rows, int64_t cols, int trainable);
// Lays out trainable tensors first, then buffers; allocates w (zeros).
int cf_params_alloc(cf_params *p);
// Allocates g, m, v (zeros). Idempotent.
int cf_params_alloc_train(cf_params *p);
void cf_params_free(cf_params *p);
static inline float *cf_w(const cf_params *p, int i) { return p->w + p->t[i].offset; }
static inline float *cf_g(const cf_params *p, int i) { return p->g + p->t[i].offset; }
static inline int64_t cf_numel(const cf_params *p, int i) { return p->t[i].rows * p->t[i].cols; }

// Initialisers (rng order: tensor by tensor, row-major).
void cf_init_normal(float *w, int64_t n, double std, collm_rng *rng);
// xavier_normal_ of a (fan_out, fan_in) weight: std = sqrt(2 / (fan_in + fan_out)).
void cf_init_xavier_normal(float *w, int64_t fan_out, int64_t fan_in, collm_rng *rng);
void cf_init_uniform(float *w, int64_t n, double bound, collm_rng *rng);
void cf_fill(float *w, int64_t n, float v);

// GGUF: every tensor, F32, shape (rows, cols); load checks names and shapes
// and rejects non-finite values. A kind's init may leave p unallocated when
// it loads (initialise = 0): cf_params_load then allocates only after every
// shape matched, so lying size keys cannot ask for memory the file lacks.
int cf_params_save(const cf_params *p, collm_gguf_writer *w);
int cf_params_load(cf_params *p, const collm_gguf_file *f, const char *path);

// The vtable entries of a kind whose weights are all in one cf_params (the
// kind's params()): GGUF save and load, and free (cf_params_free, then the
// impl itself; a kind with more state frees that first, as LightGCN).
int cf_nn_save_tensors(const collm_cf_model *m, collm_gguf_writer *w);
int cf_nn_load_tensors(collm_cf_model *m, const collm_gguf_file *f, const char *path);
void cf_nn_free_impl(collm_cf_model *m);

// Zeroes the gradient; one Adam step (t = step, 1-based) with coupled L2
// over w[0, n_train) (split over the pool; the result does not depend on it).
void cf_params_zero_grad(cf_params *p);
void cf_params_adam(cf_params *p, const collm_cf_train_options *opt, int64_t step, collm_pool *pool);
// Data parallel (collm/dist.h): this rank's gradient and mean loss over its
// rows of a batch, scaled by share = its rows / the batch's rows (the
// gradient is linear in dlogit = (σ - y) / rows), summed over the ranks in
// one allreduce (the loss rides in g[n_train]): afterwards every rank holds
// the gradient and loss of the whole batch's mean. A collective.
int cf_params_allreduce(cf_params *p, double *loss, float share);
// The same for any gradient g (n_g values, then one free slot for the loss): MF's tables.
int cf_grad_allreduce(float *g, int64_t n_g, double *loss, float share);

// --- layers -----------------------------------------------------------------

// LayerNorm over C (PyTorch): y = (x - mean) · rstd ⊙ g + b, rstd = 1/sqrt(var + eps)
// with the biased variance. x, y (T, C); g, b (C); mean, rstd (T) saved for backward.
void cf_layernorm_forward(float *y, float *mean, float *rstd, const float *x, const float *g, const float *b, int64_t T,
                          int C, float eps);
// dx (T, C), dg (C), db (C) += (NULL skips).
void cf_layernorm_backward(float *dx, float *dg, float *db, const float *dy, const float *x, const float *mean,
                           const float *rstd, const float *g, int64_t T, int C);

// Dice (DIN): p = σ(BN(x)), y = x · (α + (1 - α) p) = α(1-p)x + p x, per channel c.
// BN (BatchNorm1d, affine, eps) normalises channel c over the T rows: in
// training with the batch mean and biased variance (and moves the running
// statistics by `momentum` with the unbiased variance, as PyTorch), in
// evaluation with the running statistics.
// x, y (T, C); alpha, gamma, beta, run_mean, run_var (C).
// Training saves xhat (T, C), rstd (C) and the gate p (T, C) for backward
// (any may be NULL in evaluation).
// C <= CF_DICE_MAX_C. Channels are split over the pool (results do not depend on it).
enum { CF_DICE_MAX_C = 256 };
typedef struct {
    const float *alpha, *gamma, *beta;
    float *run_mean, *run_var; // updated in training when update_running
    float eps, momentum;
} cf_dice;
void cf_dice_forward(const cf_dice *d, float *y, float *xhat, float *rstd, float *p, const float *x, int64_t T, int C,
                     int training, int update_running, collm_pool *pool);
// Training-mode backward (through the batch statistics).
// dx (T, C), dalpha, dgamma, dbeta (C) +=.
void cf_dice_backward(const cf_dice *d, float *dx, float *dalpha, float *dgamma, float *dbeta, const float *dy,
                      const float *x, const float *xhat, const float *rstd, const float *p, int64_t T, int C,
                      collm_pool *pool);

// Mean BCE with logits in double; dlogit[i] = (σ(s_i) - y_i) / n (may be NULL).
double cf_bce(float *dlogit, const float *logit, const float *label, int64_t n);

// --- histories ----------------------------------------------------------------

// The last L items of a history (oldest first) that count as liked, left-padded
// with 0: out (L). With his_label (bookcrossing), only positives count; id 0
// (padding, the ml-1m sentinel) is kept as 0 wherever it falls.
void cf_history_window(const int32_t *his, const int8_t *his_label, int64_t n, int L, int32_t *out);
// The window of row r of a split.
void cf_split_window(const collm_rec_split *s, int64_t r, int L, int32_t *out);
// The windows of every row of a split: (n, L), malloc'd (NULL: out of memory).
int32_t *cf_split_windows(const collm_rec_split *s, int L);

// --- training loop ------------------------------------------------------------

// What every kind checks before its loop: the train split has rows, and no
// more than int32 row indices reach; then p's gradient and Adam moments
// (p may be NULL: MF keeps its own).
int cf_train_begin(const collm_cf_model *m, cf_params *p, const collm_rec_split *train);

// A batch of n rows, data parallel under mpirun (all of it in one process):
// this rank's rows [lo, hi) of it (perm: the epoch's row order from the
// batch's first row) gathered into users, items and 0/1 labels (hi - lo).
void cf_batch_rows(const collm_rec_split *train, const int32_t *perm, int64_t n, int32_t *users, int32_t *items,
                   float *labels, int64_t *lo, int64_t *hi);

// The weights the loop copies at the best epoch and restores at the end
// (buffers included): a cf_params' values (cf_params_weights), or MF's two tables.
enum { CF_MAX_REGIONS = 2 };
typedef struct {
    int n;
    float *w[CF_MAX_REGIONS];
    int64_t len[CF_MAX_REGIONS];
} cf_weights;
static inline cf_weights cf_params_weights(const cf_params *p) {
    cf_weights r = {1, {p->w, NULL}, {p->n_total, 0}};
    return r;
}

// One epoch: epoch_fn trains over the train split (shuffling with rng) and
// writes the mean training loss. refresh (may be NULL) recomputes what is
// derived from the weights (LightGCN's propagated tables) after each epoch
// and after the best weights are restored. The loop evaluates with
// cf_score_split_dist, keeps the best-AUC copy of the weights, stops a
// diverged run (non-finite loss) and applies opt->patience / stall rules.
typedef int (*cf_epoch_fn)(void *state, collm_rng *rng, double *loss);
typedef void (*cf_refresh_fn)(void *state);
int cf_train_loop(collm_cf_model *m, cf_weights weights, const collm_rec_split *eval, const collm_cf_train_options *opt,
                  collm_pool *pool, collm_cf_progress_fn progress, void *progress_ctx, collm_cf_train_result *result,
                  cf_epoch_fn epoch_fn, cf_refresh_fn refresh, void *state);

double cf_now(void);

// Flush-to-zero + denormals-are-zero for the calling thread. Rows that never
// appear in a batch decay towards 0 under the coupled L2 term, and their Adam
// moments then sink into subnormal floats, which slowed MF's epochs 5x (0.06 s
// -> 0.34 s on ml-1m after ~90 epochs). Values below 1e-38 carry no
// information here. The mode is per thread: every pool task sets and restores it.
unsigned cf_fpmode_enter(void);
void cf_fpmode_leave(unsigned saved);

#endif
