// Split writer shared by `collm prepare` and `collm synth`: histories of
// earlier positives, not_cold and the valid_small sample (method.md §2.2).
#include "collm/error.h"
#include "collm/prepare.h"
#include "core/rng.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void free_split_arrays(collm_rec_split *s) {
    free(s->user);
    free(s->item);
    free(s->label);
    free(s->timestamp);
    free(s->not_cold);
    free(s->his_offset);
    free(s->his);
    memset(s, 0, sizeof *s);
}

const char *const *collm_rec_layout_files(void) {
    static const char *const layout[] = {"train.tsv",    "valid.tsv",    "test.tsv",      "valid_small.tsv",
                                         "items.tsv",    "item_map.tsv", "user_map.tsv", "item_noun.txt", NULL};
    return layout;
}

int collm_rec_remove_stale(const char *dir, const char *const *written) {
    if (!dir || !written) return collm_error(COLLM_ERR_ARG, "collm_rec_remove_stale: NULL argument");
    for (const char *const *f = collm_rec_layout_files(); *f; f++) {
        int kept = 0;
        for (const char *const *w = written; *w && !kept; w++) kept = strcmp(*w, *f) == 0;
        if (kept) continue;
        char path[4096];
        if (snprintf(path, sizeof path, "%s/%s", dir, *f) >= (int)sizeof path)
            return collm_error(COLLM_ERR_ARG, "%s: path too long", dir);
        if (unlink(path) != 0 && errno != ENOENT)
            return collm_error(COLLM_ERR_IO, "%s: cannot remove a file of an earlier dataset: %s", path, strerror(errno));
    }
    return COLLM_OK;
}

int collm_rec_write_ood_splits(const char *dir, const collm_rec_event *ev, int64_t n, double small_frac, uint64_t small_seed) {
    int rc = COLLM_OK;
    collm_rec_split sp[3];
    memset(sp, 0, sizeof sp);
    int32_t max_user = 0, max_item = 0;
    for (int64_t r = 0; r < n; r++) {
        if (ev[r].split < 0 || ev[r].split > 2 || ev[r].user < 0 || ev[r].item < 0)
            return collm_error(COLLM_ERR_ARG, "event %lld: bad split or id", (long long)r);
        if (ev[r].user > max_user) max_user = ev[r].user;
        if (ev[r].item > max_item) max_item = ev[r].item;
    }
    // Pass 1: rows per split and history entries per split. A row's history
    // length is 1 + positives of its user so far.
    int64_t rows[3] = {0}, hist[3] = {0};
    int64_t pos_so_far = 0;
    for (int64_t r = 0; r < n; r++) {
        if (r == 0 || ev[r].user != ev[r - 1].user) pos_so_far = 0;
        rows[ev[r].split]++;
        hist[ev[r].split] += 1 + pos_so_far;
        pos_so_far += ev[r].label != 0;
    }
    // Nothing is written when a split would be empty (a model trained or
    // selected on an empty split reports NaN, not an error).
    static const char *const names[3] = {"train", "valid", "test"};
    for (int k = 0; k < 3; k++)
        if (rows[k] == 0)
            return collm_error(COLLM_ERR_ARG, "the %s split would be empty (train/valid/test rows: %lld/%lld/%lld)",
                               names[k], (long long)rows[0], (long long)rows[1], (long long)rows[2]);
    if ((int64_t)nearbyint(small_frac * (double)rows[1]) < 1)
        return collm_error(COLLM_ERR_ARG, "valid_small would be empty: round(%g x %lld valid rows) = 0", small_frac,
                           (long long)rows[1]);
    uint8_t *user_in_train = collm_calloc((size_t)max_user + 1, 1);
    uint8_t *item_in_train = collm_calloc((size_t)max_item + 1, 1);
    int32_t *pos = collm_malloc((size_t)(n ? n : 1) * sizeof *pos); // the current user's positives
    if (!user_in_train || !item_in_train || !pos) {
        rc = COLLM_ERR_NOMEM;
        goto done;
    }
    for (int k = 0; k < 3; k++) {
        size_t nr = (size_t)rows[k] + 1;
        sp[k].user = collm_malloc(nr * sizeof *sp[k].user);
        sp[k].item = collm_malloc(nr * sizeof *sp[k].item);
        sp[k].label = collm_malloc(nr * sizeof *sp[k].label);
        sp[k].timestamp = collm_malloc(nr * sizeof *sp[k].timestamp);
        sp[k].not_cold = collm_malloc(nr * sizeof *sp[k].not_cold);
        sp[k].his_offset = collm_malloc((nr + 1) * sizeof *sp[k].his_offset);
        sp[k].his = collm_malloc((size_t)(hist[k] + 1) * sizeof *sp[k].his);
        if (!sp[k].user || !sp[k].item || !sp[k].label || !sp[k].timestamp || !sp[k].not_cold ||
            !sp[k].his_offset || !sp[k].his) {
            rc = COLLM_ERR_NOMEM;
            goto done;
        }
        sp[k].his_offset[0] = 0;
    }
    for (int64_t r = 0; r < n; r++)
        if (ev[r].split == 0) user_in_train[ev[r].user] = item_in_train[ev[r].item] = 1;
    // Pass 2: emit each row with a copy of the history, then append.
    int64_t n_pos = 0;
    for (int64_t r = 0; r < n; r++) {
        if (r == 0 || ev[r].user != ev[r - 1].user) n_pos = 0;
        collm_rec_split *s = &sp[ev[r].split];
        int64_t i = s->n++;
        s->user[i] = ev[r].user;
        s->item[i] = ev[r].item;
        s->label[i] = ev[r].label ? 1 : 0;
        s->timestamp[i] = ev[r].timestamp;
        s->not_cold[i] = (int8_t)(user_in_train[ev[r].user] && item_in_train[ev[r].item]);
        int64_t h = s->his_offset[i];
        s->his[h++] = 0;
        memcpy(s->his + h, pos, (size_t)n_pos * sizeof *pos);
        s->his_offset[i + 1] = h + n_pos;
        if (ev[r].label) pos[n_pos++] = ev[r].item;
    }
    char path[4096];
    for (int k = 0; k < 3 && rc == COLLM_OK; k++) {
        snprintf(path, sizeof path, "%s/%s.tsv", dir, names[k]);
        rc = collm_rec_split_write(path, &sp[k]);
    }
    if (rc == COLLM_OK) {
        // valid_small: a seeded sample of valid rows, in sample order.
        collm_rec_split *v = &sp[1];
        int64_t m = (int64_t)nearbyint(small_frac * (double)v->n); // round half to even, like Python round()
        int32_t *idx = collm_malloc((size_t)(v->n ? v->n : 1) * sizeof *idx);
        collm_rec_split vs = {0};
        vs.user = collm_malloc((size_t)(m + 1) * sizeof *vs.user);
        vs.item = collm_malloc((size_t)(m + 1) * sizeof *vs.item);
        vs.label = collm_malloc((size_t)(m + 1) * sizeof *vs.label);
        vs.timestamp = collm_malloc((size_t)(m + 1) * sizeof *vs.timestamp);
        vs.not_cold = collm_malloc((size_t)(m + 1) * sizeof *vs.not_cold);
        vs.his_offset = collm_malloc((size_t)(m + 2) * sizeof *vs.his_offset);
        vs.his = collm_malloc((size_t)(v->his_offset[v->n] + 1) * sizeof *vs.his);
        if (!idx || !vs.user || !vs.item || !vs.label || !vs.timestamp || !vs.not_cold || !vs.his_offset || !vs.his)
            rc = COLLM_ERR_NOMEM;
        else {
            for (int64_t i = 0; i < v->n; i++) idx[i] = (int32_t)i;
            collm_rng rng;
            collm_rng_seed(&rng, small_seed);
            collm_rng_shuffle_i32(&rng, idx, v->n);
            vs.his_offset[0] = 0;
            for (int64_t j = 0; j < m; j++) {
                int32_t r = idx[j];
                vs.user[j] = v->user[r];
                vs.item[j] = v->item[r];
                vs.label[j] = v->label[r];
                vs.timestamp[j] = v->timestamp[r];
                vs.not_cold[j] = v->not_cold[r];
                int64_t len = v->his_offset[r + 1] - v->his_offset[r];
                memcpy(vs.his + vs.his_offset[j], v->his + v->his_offset[r], (size_t)len * sizeof *vs.his);
                vs.his_offset[j + 1] = vs.his_offset[j] + len;
            }
            vs.n = m;
            snprintf(path, sizeof path, "%s/valid_small.tsv", dir);
            rc = collm_rec_split_write(path, &vs);
        }
        free(idx);
        free_split_arrays(&vs);
    }
done:
    for (int k = 0; k < 3; k++) free_split_arrays(&sp[k]);
    free(user_in_train);
    free(item_in_train);
    free(pos);
    return rc;
}
