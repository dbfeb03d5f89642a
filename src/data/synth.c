// Synthetic recommendation data with planted structure (docs/data.md).
//
// Each user u and item i gets a latent vector (dim, N(0,1) entries) and each
// item a logit offset b_i ~ N(0, item_bias_std^2) (how likeable it is); a
// sample's label is Bernoulli(sigmoid(scale * <u,i>/sqrt(dim) + bias + b_i)), so a
// collaborative model can recover the signal and the Bayes AUC is well above
// 0.5. Titles are built from words tied to the item's largest latent
// components ("The Dark Robot Chronicles (1987)"), so a language model can
// also pick up the structure from titles. Time: 20 "months" from 2001-06-01
// like ml-1m's ood2 window; train = first 12, valid = next 4, test = last 4.
// Each user is active over a random window, so some valid/test users and
// items are cold. Item choice follows a log-normal popularity. Everything is
// drawn from one collm_rng seeded with opt->seed, in a fixed order.
#include "collm/error.h"
#include "collm/fileio.h"
#include "collm/prepare.h"
#include "core/rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void collm_rec_synth_defaults(collm_rec_synth_options *opt) {
    memset(opt, 0, sizeof *opt);
    opt->n_users = 300;
    opt->n_items = 500;
    opt->seed = 1;
    opt->dim = 4;
    opt->item_bias_std = 1.0;
    opt->scale = 3.0;
    opt->bias = 0.3;
    opt->min_per_user = 30;
    opt->max_per_user = 100;
}

static const char *const ADJ[8] = {"Dark", "Golden", "Silent", "Wild", "Lost", "Electric", "Broken", "Midnight"};
// title_quality: the adjective by b_item octile, worst first.
static const char *const QUALITY[8] = {"Dreadful", "Dismal", "Clumsy", "Ordinary", "Pleasant", "Charming", "Superb",
                                       "Brilliant"};
static const char *const NOUN[8] = {"Robot", "Heart", "Empire", "River", "Ghost", "Dragon", "Detective", "Planet"};
static const char *const SUFFIX[8] = {"Chronicles", "Story", "Returns", "Legacy", "Affair", "Journey", "Code", "Night"};

static int cmp_event(const void *a, const void *b) {
    const collm_rec_event *x = a, *y = b;
    if (x->user != y->user) return x->user < y->user ? -1 : 1;
    if (x->timestamp != y->timestamp) return x->timestamp < y->timestamp ? -1 : 1;
    return (x->item > y->item) - (x->item < y->item);
}

// Indices of the three largest components of v (dim >= 3), largest first.
static void top3(const double *v, int dim, int out[3]) {
    for (int k = 0; k < 3; k++) {
        int best = -1;
        for (int j = 0; j < dim; j++) {
            if ((k > 0 && j == out[0]) || (k > 1 && j == out[1])) continue;
            if (best < 0 || v[j] > v[best]) best = j;
        }
        out[k] = best;
    }
}

int collm_rec_synth(const collm_rec_synth_options *opt, const char *out_dir) {
    const int32_t U = opt->n_users, I = opt->n_items;
    const int d = opt->dim;
    if (U < 1 || I < 2 || d < 3 || opt->min_per_user < 1 || opt->max_per_user < opt->min_per_user)
        return collm_error(COLLM_ERR_ARG, "synth: need users >= 1, items >= 2, dim >= 3, 1 <= min <= max per user");
    int rc = collm_mkdir_p(out_dir);
    if (rc) return rc;
    collm_rng rng;
    collm_rng_seed(&rng, opt->seed);
    double *uf = collm_malloc((size_t)(U + 1) * (size_t)d * sizeof *uf); // (U+1, d), row 0 unused
    double *vf = collm_malloc((size_t)(I + 1) * (size_t)d * sizeof *vf); // (I+1, d), row 0 = padding
    double *cum = collm_malloc((size_t)(I + 1) * sizeof *cum);            // popularity CDF over items 1..I
    double *ibias = collm_malloc((size_t)(I + 1) * sizeof *ibias);        // (I+1) item logit offsets
    uint8_t *taken = collm_calloc((size_t)I + 1, 1);
    int32_t *chosen = collm_malloc((size_t)I * sizeof *chosen);
    collm_rec_items items = {0};
    char *storage = collm_malloc((size_t)(I + 1) * 96);
    char **title = collm_malloc((size_t)(I + 1) * sizeof *title);
    int32_t *combo_count = collm_calloc(512, sizeof *combo_count);
    uint8_t *is_new = collm_calloc((size_t)I + 1, 1); // released when valid starts (new_item_frac)
    int32_t *octile = collm_calloc((size_t)I + 1, sizeof *octile); // b_item octile (title_quality)
    int64_t cap = (int64_t)U * (opt->max_per_user < I ? opt->max_per_user : I);
    collm_rec_event *ev = collm_malloc((size_t)(cap ? cap : 1) * sizeof *ev);
    if (!uf || !vf || !cum || !ibias || !taken || !chosen || !storage || !title || !combo_count || !ev || !is_new ||
        !octile) {
        rc = COLLM_ERR_NOMEM;
        goto done;
    }
    for (int64_t k = 0; k < (int64_t)(U + 1) * d; k++) uf[k] = collm_rng_normal(&rng);
    for (int64_t k = 0; k < (int64_t)(I + 1) * d; k++) vf[k] = collm_rng_normal(&rng);
    for (int32_t i = 0; i <= I; i++) ibias[i] = opt->item_bias_std * collm_rng_normal(&rng);
    double total = 0;
    cum[0] = 0;
    for (int32_t i = 1; i <= I; i++) {
        total += exp(0.8 * collm_rng_normal(&rng));
        cum[i] = total;
    }
    // The two text-signal options draw from their own stream, so without them
    // the files are the same as before they existed.
    if (opt->new_item_frac > 0) {
        collm_rng side;
        collm_rng_seed(&side, opt->seed ^ 0x4e3e17e3ULL);
        for (int32_t i = 1; i <= I; i++) is_new[i] = collm_rng_uniform(&side) < opt->new_item_frac;
    }
    if (opt->title_quality) // octile of b_i among items 1..I: rank * 8 / I
        for (int32_t i = 1; i <= I; i++) {
            int32_t below = 0;
            for (int32_t j = 1; j <= I; j++) below += ibias[j] < ibias[i] || (ibias[j] == ibias[i] && j < i);
            octile[i] = (int32_t)((int64_t)below * 8 / I);
        }
    // Titles: words from the item's three largest latent components (the
    // adjective from b_i instead with title_quality).
    storage[0] = '\0';
    title[0] = storage;
    char *p = storage + 1;
    for (int32_t i = 1; i <= I; i++) {
        int t[3];
        top3(vf + (size_t)i * d, d, t);
        int a = opt->title_quality ? octile[i] : t[0] % 8, b = t[1] % 8, c = t[2] % 8;
        int year = 1930 + (int)collm_rng_below(&rng, 71);
        int copy = ++combo_count[(a * 8 + b) * 8 + c];
        char num[16] = "";
        if (copy > 1) snprintf(num, sizeof num, " %d", copy);
        title[i] = p;
        p += snprintf(p, 96, "The %s %s %s%s (%d)", opt->title_quality ? QUALITY[a] : ADJ[a], NOUN[b],
                      SUFFIX[c], num, year) + 1;
    }
    items.n = I + 1;
    items.title = title;
    items.storage = storage;

    // Interactions. Time unit: 20 months of 30.44 days from 2001-06-01 UTC.
    const double T0 = 991353600.0, span = 20 * 30.44 * 86400.0;
    int64_t n = 0;
    const double inv_sqrt_d = 1.0 / sqrt((double)d);
    for (int32_t u = 1; u <= U; u++) {
        double start = 0.7 * collm_rng_uniform(&rng);
        double end = start + 0.15 + 0.45 * collm_rng_uniform(&rng);
        if (end > 1) end = 1;
        int k = opt->min_per_user + (int)collm_rng_below(&rng, (uint64_t)(opt->max_per_user - opt->min_per_user + 1));
        if (k > I / 2) k = I / 2 > 0 ? I / 2 : 1;
        int got = 0;
        for (int tries = 0; got < k && tries < 50 * k; tries++) {
            double x = collm_rng_uniform(&rng) * total;
            int32_t lo = 1, hi = I; // first i with cum[i] > x
            while (lo < hi) {
                int32_t mid = lo + (hi - lo) / 2;
                if (cum[mid] > x) hi = mid;
                else lo = mid + 1;
            }
            if (taken[lo] || (is_new[lo] && end < 0.6)) continue; // a new item needs the user active after 0.6
            taken[lo] = 1;
            chosen[got++] = lo;
        }
        for (int j = 0; j < got; j++) {
            int32_t i = chosen[j];
            taken[i] = 0;
            double dot = 0;
            for (int c = 0; c < d; c++) dot += uf[(size_t)u * d + c] * vf[(size_t)i * d + c];
            double prob = 1.0 / (1.0 + exp(-(opt->scale * dot * inv_sqrt_d + opt->bias + ibias[i])));
            double from = is_new[i] && start < 0.6 ? 0.6 : start;
            double tfrac = from + (end - from) * collm_rng_uniform(&rng);
            collm_rec_event e;
            e.user = u;
            e.item = i;
            e.timestamp = (int64_t)(T0 + span * tfrac);
            e.label = (int8_t)(collm_rng_uniform(&rng) < prob);
            e.split = (int8_t)(tfrac < 0.6 ? 0 : tfrac < 0.8 ? 1 : 2);
            ev[n++] = e;
        }
    }
    // Order: by user, then timestamp, then item id (the documented tie rule).
    qsort(ev, (size_t)n, sizeof *ev, cmp_event);
    // the splits first: their writer refuses an empty split before it writes
    // anything, so a refused run leaves a folder's earlier dataset whole (an
    // items.tsv written first would replace the item table under its splits)
    rc = collm_rec_write_ood_splits(out_dir, ev, n, 0.5, opt->seed ^ 0x5eed5a11ULL);
    char path[4096];
    snprintf(path, sizeof path, "%s/items.tsv", out_dir);
    if (rc == COLLM_OK) rc = collm_rec_items_write(path, &items);
    static const char *const written[] = {"items.tsv", "train.tsv", "valid.tsv", "test.tsv", "valid_small.tsv", NULL};
    if (rc == COLLM_OK) rc = collm_rec_remove_stale(out_dir, written);
done:
    free(uf);
    free(vf);
    free(cum);
    free(ibias);
    free(taken);
    free(chosen);
    free(storage);
    free(title);
    free(combo_count);
    free(ev);
    free(is_new);
    free(octile);
    return rc;
}
