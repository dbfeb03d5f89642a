// `collm prepare`: dataset folders from the raw public sources (method.md
// §2.2-§2.4; the decisions the sources leave open are listed in docs/data.md).
#include "collm/error.h"
#include "collm/fileio.h"
#include "collm/prepare.h"
#include "core/rng.h"
#include "data/text.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

// ---------------------------------------------------------------- helpers

// Line cursor over a whole-file buffer; strips a trailing CR.
typedef struct {
    const char *path;
    char *data;
    size_t size, pos;
    int64_t line;
} line_reader;

static int lr_open(line_reader *r, const char *path) {
    memset(r, 0, sizeof *r);
    r->path = path;
    return collm_read_file(path, &r->data, &r->size);
}

// Next line as [*s, *s + *len) (NUL-terminated in place); 0 at end.
// Parses one JSON-lines record; anything but an object is an error naming file:line.
static int json_line(const char *s, size_t len, const char *path, long long line, cJSON **out) {
    *out = cJSON_ParseWithLength(s, len);
    if (cJSON_IsObject(*out)) return COLLM_OK;
    cJSON_Delete(*out);
    *out = NULL;
    return collm_error(COLLM_ERR_FORMAT, "%s:%lld: not a JSON object", path, line);
}

static int lr_next(line_reader *r, char **s, size_t *len) {
    if (r->pos >= r->size) return 0;
    char *b = r->data + r->pos;
    char *nl = memchr(b, '\n', r->size - r->pos);
    size_t n = nl ? (size_t)(nl - b) : r->size - r->pos;
    r->pos += n + (nl ? 1 : 0);
    if (n && b[n - 1] == '\r') n--;
    b[n] = '\0';
    r->line++;
    *s = b;
    *len = n;
    return 1;
}

// Parses a decimal integer in [lo, hi] from the whole of s[0..n).
static int parse_int(const char *s, size_t n, int64_t lo, int64_t hi, int64_t *out) {
    if (n == 0 || n > 19) return -1;
    int neg = s[0] == '-';
    size_t i = neg;
    if (i == n) return -1;
    int64_t v = 0;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        int d = s[i] - '0';
        if (v > (INT64_MAX - d) / 10) return -1; // 19 digits can exceed int64: no overflow
        v = v * 10 + d;
    }
    if (neg) v = -v;
    if (v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

// UTC calendar month of a unix time: year*12 + month-1.
static int64_t utc_month(int64_t ts, int *year) {
    time_t t = (time_t)ts;
    struct tm tm;
    gmtime_r(&t, &tm);
    if (year) *year = tm.tm_year + 1900;
    return (int64_t)(tm.tm_year + 1900) * 12 + tm.tm_mon;
}

// Growable arrays of records.
#define VEC_PUSH(arr, n, cap, val, fail_label)                                                 \
    do {                                                                                       \
        if ((n) == (cap)) {                                                                    \
            size_t nc_ = (cap) ? 2 * (cap) : 1024;                                             \
            void *np_ = realloc((arr), nc_ * sizeof *(arr));                                   \
            if (!np_) {                                                                        \
                rc = collm_error(COLLM_ERR_NOMEM, "out of memory");                           \
                goto fail_label;                                                               \
            }                                                                                  \
            (arr) = np_;                                                                       \
            (cap) = nc_;                                                                       \
        }                                                                                      \
        (arr)[(n)++] = (val);                                                                  \
    } while (0)

// Raw interaction before remapping.
typedef struct {
    int64_t user_key; // raw user id (ml-1m, bookcrossing) or user index (amazon)
    int64_t item_key; // raw movie id / item index
    int64_t timestamp;
    int64_t order; // input order (last tie-break)
    int32_t rating;
    int8_t split;
} raw_event;

static int cmp_raw(const void *a, const void *b) {
    const raw_event *x = a, *y = b;
    if (x->user_key != y->user_key) return x->user_key < y->user_key ? -1 : 1;
    if (x->timestamp != y->timestamp) return x->timestamp < y->timestamp ? -1 : 1;
    if (x->item_key != y->item_key) return x->item_key < y->item_key ? -1 : 1;
    return (x->order > y->order) - (x->order < y->order);
}

// Items table from titles indexed by final id (0 = padding, "").
static int write_items(const char *dir, char **title, char **author, int32_t n) {
    char empty[1] = "";
    collm_rec_items it = {0};
    it.n = n;
    it.title = title;
    it.author = author;
    it.storage = empty;
    for (int32_t i = 0; i < n; i++) {
        if (!title[i]) title[i] = empty;
        if (author && !author[i]) author[i] = empty;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/items.tsv", dir);
    return collm_rec_items_write(path, &it);
}

// item_map.tsv (final id -> raw id): written atomically like every other
// file (temp file, fsync, rename), every write checked.
static int write_item_map(const char *dir, collm_write_fn fn, void *ctx) {
    char path[4096];
    snprintf(path, sizeof path, "%s/item_map.tsv", dir);
    int rc = collm_write_atomic(path, fn, ctx);
    return rc == COLLM_OK || strstr(collm_last_error(), path) ? rc : collm_error_prefix(rc, "%s", path);
}

static int put_ok(int ok) { return ok ? COLLM_OK : collm_error(COLLM_ERR_IO, "write failed"); }

typedef struct {
    int32_t n;
    const int32_t *movie_of_item;
    char *const *genres; // by movie id
} item_map_ml1m;

static int write_item_map_ml1m(FILE *f, void *ctx) {
    const item_map_ml1m *m = ctx;
    int rc = put_ok(fputs("iid\tmovie_id\tgenres\n", f) >= 0);
    for (int32_t i = 1; !rc && i <= m->n; i++)
        if (!(rc = put_ok(fprintf(f, "%d\t%d\t", i, m->movie_of_item[i]) > 0)) &&
            !(rc = collm_rec_write_escaped(f, m->genres[m->movie_of_item[i]])))
            rc = put_ok(fputc('\n', f) != EOF);
    return rc;
}

typedef struct {
    int32_t n;
    const int32_t *meta_of_item;
    char *const *asin; // by meta row
} item_map_amazon;

static int write_item_map_amazon(FILE *f, void *ctx) {
    const item_map_amazon *m = ctx;
    int rc = put_ok(fputs("iid\tasin\n", f) >= 0);
    for (int32_t i = 1; !rc && i <= m->n; i++)
        if (!(rc = put_ok(fprintf(f, "%d\t", i) > 0)) && !(rc = collm_rec_write_escaped(f, m->asin[m->meta_of_item[i]])))
            rc = put_ok(fputc('\n', f) != EOF);
    return rc;
}

// ---------------------------------------------------------------- ML-1M

// The files of an ML-1M or Amazon build (collm_rec_remove_stale takes the others away).
static const char *const ood_files[] = {"items.tsv", "item_map.tsv", "train.tsv", "valid.tsv", "test.tsv",
                                        "valid_small.tsv", NULL};

int collm_rec_prepare_ml1m(const char *ratings_path, const char *movies_path, const char *out_dir, uint64_t seed) {
    int rc;
    line_reader mr = {0}, rr = {0};
    char **movie_title = NULL, **movie_genres = NULL, **title = NULL;
    raw_event *ev = NULL;
    collm_rec_event *out = NULL;
    int32_t *item_of_movie = NULL, *movie_of_item = NULL;
    size_t n_ev = 0, cap_ev = 0;
    enum { MAX_MOVIE = 1 << 20 };
    if ((rc = lr_open(&mr, movies_path)) || (rc = lr_open(&rr, ratings_path))) goto fail;
    if ((rc = collm_mkdir_p(out_dir))) goto fail;
    int utf8 = collm_text_valid_utf8((const unsigned char *)mr.data, mr.size);
    movie_title = collm_calloc(MAX_MOVIE, sizeof *movie_title);
    movie_genres = collm_calloc(MAX_MOVIE, sizeof *movie_genres);
    if (!movie_title || !movie_genres) {
        rc = COLLM_ERR_NOMEM;
        goto fail;
    }
    char *s;
    size_t len;
    // movies.dat: MovieID::Title::Genres (a title may hold ':' but not "::").
    while (lr_next(&mr, &s, &len)) {
        char *a = strstr(s, "::"), *b = NULL;
        for (char *q = a ? strstr(a + 2, "::") : NULL; q; q = strstr(q + 2, "::")) b = q;
        int64_t id;
        if (!a || !b || parse_int(s, (size_t)(a - s), 1, MAX_MOVIE - 1, &id)) {
            rc = collm_error(COLLM_ERR_FORMAT, "%s:%lld: expected MovieID::Title::Genres", movies_path,
                             (long long)mr.line);
            goto fail;
        }
        if (movie_title[id]) {
            rc = collm_error(COLLM_ERR_FORMAT, "%s:%lld: duplicate MovieID %lld", movies_path, (long long)mr.line,
                             (long long)id);
            goto fail;
        }
        movie_title[id] = collm_text_to_utf8(a + 2, (size_t)(b - a - 2), utf8);
        movie_genres[id] = collm_text_to_utf8(b + 2, strlen(b + 2), utf8);
        if (!movie_title[id] || !movie_genres[id]) {
            rc = COLLM_ERR_NOMEM;
            goto fail;
        }
    }
    // ratings.dat: UserID::MovieID::Rating::Timestamp. Inner join with movies;
    // month window t = (year-2000)*12 + month - 4: train 14..23, valid
    // 24..28, test 29..33, everything else dropped.
    int64_t n_split[3] = {0}, ts_min = INT64_MAX, ts_max = INT64_MIN;
    while (lr_next(&rr, &s, &len)) {
        char *f[4];
        size_t fl[4];
        int nf = 0;
        char *p = s;
        for (;;) {
            char *q = strstr(p, "::");
            if (nf < 4) f[nf] = p, fl[nf] = q ? (size_t)(q - p) : strlen(p);
            nf++;
            if (!q) break;
            p = q + 2;
        }
        int64_t u, m, r, ts;
        if (nf != 4 || parse_int(f[0], fl[0], 1, INT32_MAX - 1, &u) ||
            parse_int(f[1], fl[1], 1, MAX_MOVIE - 1, &m) || parse_int(f[2], fl[2], 1, 5, &r) ||
            parse_int(f[3], fl[3], 0, INT64_MAX / 2, &ts)) {
            rc = collm_error(COLLM_ERR_FORMAT,
                             "%s:%lld: expected UserID::MovieID::Rating(1-5)::Timestamp with integer fields",
                             ratings_path, (long long)rr.line);
            goto fail;
        }
        if (!movie_title[m]) continue; // inner join
        if (ts < ts_min) ts_min = ts;
        if (ts > ts_max) ts_max = ts;
        int64_t t = utc_month(ts, NULL) - (2000 * 12 + 3);
        int8_t split = t >= 14 && t <= 23 ? 0 : t >= 24 && t <= 28 ? 1 : t >= 29 && t <= 33 ? 2 : -1;
        if (split < 0) continue;
        n_split[split]++;
        raw_event e = {u, m, ts, (int64_t)n_ev, (int32_t)r, split};
        VEC_PUSH(ev, n_ev, cap_ev, e, fail);
    }
    // A window without ratings would give an empty split: say which and why.
    for (int k = 0; k < 3; k++)
        if (n_split[k] == 0) {
            static const char *const name[3] = {"train", "valid", "test"};
            static const char *const months[3] = {"2001-06..2002-03", "2002-04..2002-08", "2002-09..2003-01"};
            char span[96] = "no rating of a listed movie";
            if (ts_min <= ts_max) {
                time_t a = (time_t)ts_min, b = (time_t)ts_max;
                struct tm ta, tb;
                gmtime_r(&a, &ta);
                gmtime_r(&b, &tb);
                snprintf(span, sizeof span, "the ratings span %04d-%02d..%04d-%02d", ta.tm_year + 1900, ta.tm_mon + 1,
                         tb.tm_year + 1900, tb.tm_mon + 1);
            }
            rc = collm_error(COLLM_ERR_ARG,
                             "%s: no rating falls in the %s months %s (UTC) of the ML-1M ood2 split (%s), so the %s "
                             "split would be empty; for other dates use --source csv with --split",
                             ratings_path, name[k], months[k], span, name[k]);
            goto fail;
        }
    // Sort by (user, timestamp); ties by raw MovieID (the documented rule).
    qsort(ev, n_ev, sizeof *ev, cmp_raw);
    // Users: 1..N in ascending raw id (the events are sorted by it, so no
    // table indexed by raw id: those go up to 2^31). Items: 1..M by first appearance.
    item_of_movie = collm_calloc(MAX_MOVIE, sizeof *item_of_movie);
    movie_of_item = collm_calloc(n_ev + 1, sizeof *movie_of_item);
    out = collm_malloc((n_ev + 1) * sizeof *out);
    if (!item_of_movie || !movie_of_item || !out) {
        rc = COLLM_ERR_NOMEM;
        goto fail;
    }
    int32_t nu = 0, ni = 0;
    for (size_t k = 0; k < n_ev; k++) {
        if (k == 0 || ev[k].user_key != ev[k - 1].user_key) nu++;
        int64_t m = ev[k].item_key;
        if (!item_of_movie[m]) {
            item_of_movie[m] = ++ni;
            movie_of_item[ni] = (int32_t)m;
        }
        out[k].user = nu;
        out[k].item = item_of_movie[m];
        out[k].timestamp = ev[k].timestamp;
        out[k].label = (int8_t)(ev[k].rating >= 4);
        out[k].split = ev[k].split;
    }
    title = collm_calloc((size_t)ni + 1, sizeof *title);
    if (!title) {
        rc = COLLM_ERR_NOMEM;
        goto fail;
    }
    for (int32_t i = 1; i <= ni; i++) title[i] = movie_title[movie_of_item[i]];
    // the splits first: their writer refuses an empty split before it writes
    // anything, so a refused build leaves the folder as it was
    item_map_ml1m im = {ni, movie_of_item, movie_genres};
    if ((rc = collm_rec_write_ood_splits(out_dir, out, (int64_t)n_ev, 0.5, seed)) ||
        (rc = write_items(out_dir, title, NULL, ni + 1)) || (rc = write_item_map(out_dir, write_item_map_ml1m, &im)))
        goto fail;
    rc = collm_rec_remove_stale(out_dir, ood_files);
fail:
    if (movie_title)
        for (int i = 0; i < MAX_MOVIE; i++) free(movie_title[i]);
    if (movie_genres)
        for (int i = 0; i < MAX_MOVIE; i++) free(movie_genres[i]);
    free(movie_title);
    free(movie_genres);
    free(title);
    free(ev);
    free(out);
    free(item_of_movie);
    free(movie_of_item);
    free(mr.data);
    free(rr.data);
    return rc;
}

// ---------------------------------------------------------------- Amazon-Book

// A string member of a JSON object, or NULL.
static const char *json_str(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

typedef struct {
    char *reviewer;
    int32_t item; // index into the meta table
    int64_t ts;
    int32_t rating;
    int64_t order;
} amazon_review;

int collm_rec_prepare_amazon(const char *reviews_path, const char *meta_path, const char *out_dir, uint64_t seed,
                       int min_count) {
    int rc = COLLM_OK;
    line_reader mr = {0}, rr = {0};
    collm_strmap asin_map = {0}, user_map = {0};
    char **meta_title = NULL, **meta_asin = NULL;
    size_t n_meta = 0, cap_meta = 0, cap_asin = 0, n_rev = 0, cap_rev = 0;
    amazon_review *rev = NULL;
    int32_t *item_count = NULL, *user_of = NULL, *user_count = NULL, *item_id = NULL, *meta_of_item = NULL;
    int32_t *user_id = NULL;
    raw_event *ev = NULL;
    collm_rec_event *out = NULL;
    char **title = NULL;
    size_t n_users_raw = 0;
    if ((rc = lr_open(&mr, meta_path)) || (rc = lr_open(&rr, reviews_path))) goto fail;
    if ((rc = collm_mkdir_p(out_dir)) || (rc = collm_strmap_init(&asin_map, 1024)) || (rc = collm_strmap_init(&user_map, 1024)))
        goto fail;
    char *s;
    size_t len;
    // meta: {"asin": ..., "title": ...} per line; a duplicate asin keeps the
    // last row (pandas drop_duplicates keep='last'); rows without a string
    // asin or title are dropped (NaN).
    while (lr_next(&mr, &s, &len)) {
        if (len == 0) continue;
        cJSON *o;
        if ((rc = json_line(s, len, meta_path, mr.line, &o))) goto fail;
        const char *asin = json_str(o, "asin"), *t = json_str(o, "title");
        if (asin && t) {
            char *a = strdup(asin), *tt = strdup(t);
            if (!a || !tt) {
                free(a), free(tt), cJSON_Delete(o);
                rc = collm_error(COLLM_ERR_NOMEM, "out of memory");
                goto fail;
            }
            int32_t prev = collm_strmap_get(&asin_map, a, strlen(a));
            if (prev >= 0) { // keep the last row's title
                free(meta_title[prev]);
                meta_title[prev] = tt;
                free(a);
            } else {
                VEC_PUSH(meta_title, n_meta, cap_meta, tt, fail_json);
                size_t na = n_meta - 1;
                VEC_PUSH(meta_asin, na, cap_asin, a, fail_json);
                if ((rc = collm_strmap_put(&asin_map, a, strlen(a), (int32_t)(n_meta - 1)))) goto fail_json;
            }
        }
        cJSON_Delete(o);
        continue;
    fail_json:
        cJSON_Delete(o);
        goto fail;
    }
    // reviews: reviewerID, asin, overall, unixReviewTime. Rows missing a
    // field or without meta are dropped; only calendar 2017 (UTC) is kept.
    while (lr_next(&rr, &s, &len)) {
        if (len == 0) continue;
        cJSON *o;
        if ((rc = json_line(s, len, reviews_path, rr.line, &o))) goto fail;
        const char *user = json_str(o, "reviewerID"), *asin = json_str(o, "asin");
        const cJSON *ov = cJSON_GetObjectItemCaseSensitive(o, "overall");
        const cJSON *tv = cJSON_GetObjectItemCaseSensitive(o, "unixReviewTime");
        if ((ov && !cJSON_IsNumber(ov)) || (tv && !cJSON_IsNumber(tv))) {
            cJSON_Delete(o);
            rc = collm_error(COLLM_ERR_FORMAT, "%s:%lld: 'overall' and 'unixReviewTime' must be numbers",
                             reviews_path, (long long)rr.line);
            goto fail;
        }
        int32_t item = asin ? collm_strmap_get(&asin_map, asin, strlen(asin)) : -1;
        int year = 0;
        if (user && item >= 0 && ov && tv) utc_month((int64_t)tv->valuedouble, &year);
        if (year == 2017) {
            amazon_review r = {strdup(user), item, (int64_t)tv->valuedouble, (int32_t)ov->valuedouble, (int64_t)n_rev};
            if (!r.reviewer) {
                cJSON_Delete(o);
                rc = collm_error(COLLM_ERR_NOMEM, "out of memory");
                goto fail;
            }
            VEC_PUSH(rev, n_rev, cap_rev, r, fail_rev);
        }
        cJSON_Delete(o);
        continue;
    fail_rev:
        cJSON_Delete(o);
        goto fail;
    }
    // Counts on the 2017 data, both taken before filtering.
    item_count = collm_calloc(n_meta + 1, sizeof *item_count);
    user_of = collm_malloc((n_rev + 1) * sizeof *user_of);
    user_count = collm_calloc(n_rev + 1, sizeof *user_count);
    if (!item_count || !user_of || !user_count) {
        rc = COLLM_ERR_NOMEM;
        goto fail;
    }
    for (size_t k = 0; k < n_rev; k++) {
        int32_t u = collm_strmap_get(&user_map, rev[k].reviewer, strlen(rev[k].reviewer));
        if (u < 0) {
            u = (int32_t)n_users_raw++;
            if ((rc = collm_strmap_put(&user_map, rev[k].reviewer, strlen(rev[k].reviewer), u))) goto fail;
        }
        user_of[k] = u;
        user_count[u]++;
        item_count[rev[k].item]++;
    }
    // Remap (1-based, order of first appearance in the review file) before
    // building histories.
    item_id = collm_calloc(n_meta + 1, sizeof *item_id);
    meta_of_item = collm_calloc(n_meta + 1, sizeof *meta_of_item);
    user_id = collm_calloc(n_users_raw + 1, sizeof *user_id);
    ev = collm_malloc((n_rev + 1) * sizeof *ev);
    if (!item_id || !meta_of_item || !user_id || !ev) {
        rc = COLLM_ERR_NOMEM;
        goto fail;
    }
    int32_t nu = 0, ni = 0;
    size_t n_ev = 0, n_dec = 0;
    for (size_t k = 0; k < n_rev; k++) {
        int32_t u = user_of[k], m = rev[k].item;
        if (user_count[u] <= min_count || item_count[m] <= min_count) continue;
        if (!user_id[u]) user_id[u] = ++nu;
        if (!item_id[m]) {
            item_id[m] = ++ni;
            meta_of_item[ni] = m;
        }
        int month = (int)(utc_month(rev[k].ts, NULL) % 12); // 0 = January
        raw_event e = {user_id[u], item_id[m], rev[k].ts, (int64_t)k, rev[k].rating, (int8_t)(month == 11 ? 1 : 0)};
        n_dec += month == 11;
        ev[n_ev++] = e;
    }
    // December: by timestamp (ties in file order), first half valid, rest test.
    {
        raw_event *dec = collm_malloc((n_dec + 1) * sizeof *dec);
        if (!dec) {
            rc = COLLM_ERR_NOMEM;
            goto fail;
        }
        size_t nd = 0;
        for (size_t k = 0; k < n_ev; k++)
            if (ev[k].split == 1) {
                dec[nd] = ev[k];
                dec[nd].user_key = 0; // sort by (timestamp, item, order) only
                dec[nd].item_key = ev[k].order;
                nd++;
            }
        qsort(dec, nd, sizeof *dec, cmp_raw);
        // dec[j].item_key holds the review's order: mark the second half.
        int8_t *is_test = collm_calloc(n_rev + 1, 1);
        if (!is_test) {
            free(dec);
            rc = COLLM_ERR_NOMEM;
            goto fail;
        }
        for (size_t j = nd / 2; j < nd; j++) is_test[dec[j].item_key] = 1;
        for (size_t k = 0; k < n_ev; k++)
            if (ev[k].split == 1 && is_test[ev[k].order]) ev[k].split = 2;
        free(dec);
        free(is_test);
    }
    qsort(ev, n_ev, sizeof *ev, cmp_raw); // (user, timestamp, item, file order)
    out = collm_malloc((n_ev + 1) * sizeof *out);
    title = collm_calloc((size_t)ni + 1, sizeof *title);
    if (!out || !title) {
        rc = COLLM_ERR_NOMEM;
        goto fail;
    }
    for (size_t k = 0; k < n_ev; k++) {
        out[k].user = (int32_t)ev[k].user_key;
        out[k].item = (int32_t)ev[k].item_key;
        out[k].timestamp = ev[k].timestamp;
        out[k].label = (int8_t)(ev[k].rating >= 5);
        out[k].split = ev[k].split;
    }
    for (int32_t i = 1; i <= ni; i++) title[i] = meta_title[meta_of_item[i]];
    item_map_amazon im = {ni, meta_of_item, meta_asin}; // (the splits first, as ML-1M)
    if ((rc = collm_rec_write_ood_splits(out_dir, out, (int64_t)n_ev, 0.25, seed)) ||
        (rc = write_items(out_dir, title, NULL, ni + 1)) || (rc = write_item_map(out_dir, write_item_map_amazon, &im)))
        goto fail;
    rc = collm_rec_remove_stale(out_dir, ood_files);
fail:
    for (size_t k = 0; k < n_meta; k++) free(meta_title[k]), free(meta_asin[k]);
    for (size_t k = 0; k < n_rev; k++) free(rev[k].reviewer);
    free(meta_title), free(meta_asin), free(rev), free(item_count), free(user_of), free(user_count);
    free(item_id), free(meta_of_item), free(user_id), free(ev), free(out), free(title);
    collm_strmap_free(&asin_map);
    collm_strmap_free(&user_map);
    free(mr.data);
    free(rr.data);
    return rc;
}

// ---------------------------------------------------------------- BookCrossing

// Splits a ";"-separated line with optional "..." quoting ("" inside quotes is
// one quote) into fields written NUL-terminated into buf (room: line length
// + max_fields). Returns the field count, or -1 on an unterminated quote.
static int csv_split(const char *s, size_t n, char *buf, char **field, int max_fields) {
    int nf = 0;
    size_t i = 0;
    char *o = buf;
    for (;;) {
        if (nf < max_fields) field[nf] = o;
        nf++;
        if (i < n && s[i] == '"') {
            i++;
            for (;;) {
                if (i >= n) return -1;
                if (s[i] == '"') {
                    if (i + 1 < n && s[i + 1] == '"') {
                        if (nf <= max_fields) *o++ = '"';
                        i += 2;
                        continue;
                    }
                    i++;
                    break;
                }
                if (nf <= max_fields) *o++ = s[i];
                i++;
            }
            if (i < n && s[i] != ';') return -1; // text after the closing quote
        } else {
            while (i < n && s[i] != ';') {
                if (nf <= max_fields) *o++ = s[i];
                i++;
            }
        }
        if (nf <= max_fields) *o++ = '\0';
        if (i >= n) break;
        i++; // the ';'
    }
    return nf;
}

typedef struct {
    int64_t user;
    int32_t book;
    int8_t label;
    int64_t order;
} bx_rating;

static int cmp_bx(const void *a, const void *b) {
    const bx_rating *x = a, *y = b;
    if (x->user != y->user) return x->user < y->user ? -1 : 1;
    return (x->order > y->order) - (x->order < y->order);
}

int collm_rec_prepare_bookcrossing(const char *ratings_path, const char *books_path, const char *out_dir, uint64_t seed,
                             const collm_rec_bookcrossing_options *opt) {
    int K = opt && opt->max_targets_per_user > 0 ? opt->max_targets_per_user : 5;
    int H = opt && opt->max_history > 0 ? opt->max_history : 10;
    int rc = COLLM_OK;
    line_reader br = {0}, rr = {0};
    collm_strmap isbn = {0};
    char *buf = NULL, **title = NULL, **author = NULL, **isbn_str = NULL;
    size_t n_books = 0, cap_t = 0, cap_a = 0, cap_i = 0, n_r = 0, cap_r = 0;
    bx_rating *rat = NULL;
    int64_t *user_start = NULL;
    int32_t *uorder = NULL, *perm = NULL;
    collm_rec_split sp[3];
    memset(sp, 0, sizeof sp);
    if ((rc = lr_open(&br, books_path)) || (rc = lr_open(&rr, ratings_path))) goto fail;
    if ((rc = collm_mkdir_p(out_dir)) || (rc = collm_strmap_init(&isbn, 1024))) goto fail;
    buf = collm_malloc((br.size > rr.size ? br.size : rr.size) + 64);
    if (!buf) {
        rc = COLLM_ERR_NOMEM;
        goto fail;
    }
    int utf8 = collm_text_valid_utf8((const unsigned char *)br.data, br.size);
    char *s, *f[9];
    size_t len;
    // BX-Books.csv: header, then ISBN;Title;Author;Year;Publisher;3 URLs.
    // A line that does not split into 8 fields is skipped, as pandas'
    // error_bad_lines=False does; the item id is the index among kept rows.
    lr_next(&br, &s, &len);
    while (lr_next(&br, &s, &len)) {
        if (csv_split(s, len, buf, f, 9) != 8) continue;
        char *t = collm_text_to_utf8(f[1], strlen(f[1]), utf8), *a = collm_text_to_utf8(f[2], strlen(f[2]), utf8), *i = strdup(f[0]);
        if (!t || !a || !i) {
            free(t), free(a), free(i);
            rc = collm_error(COLLM_ERR_NOMEM, "out of memory");
            goto fail;
        }
        size_t nb = n_books, nb2 = n_books;
        VEC_PUSH(author, nb, cap_a, a, fail);
        VEC_PUSH(isbn_str, nb2, cap_i, i, fail);
        VEC_PUSH(title, n_books, cap_t, t, fail);
        if (collm_strmap_get(&isbn, i, strlen(i)) < 0 && (rc = collm_strmap_put(&isbn, i, strlen(i), (int32_t)(n_books - 1))))
            goto fail; // a repeated ISBN maps to its first row
    }
    // BX-Book-Ratings.csv: header, then User-ID;ISBN;Rating(0-10). Ratings of
    // ISBNs not in BX-Books are dropped. label = rating > 5.
    lr_next(&rr, &s, &len);
    while (lr_next(&rr, &s, &len)) {
        int64_t u, r;
        if (csv_split(s, len, buf, f, 4) != 3 || parse_int(f[0], strlen(f[0]), 0, INT32_MAX - 1, &u) ||
            parse_int(f[2], strlen(f[2]), 0, 10, &r)) {
            rc = collm_error(COLLM_ERR_FORMAT, "%s:%lld: expected \"User-ID\";\"ISBN\";\"Rating 0-10\"", ratings_path,
                             (long long)rr.line);
            goto fail;
        }
        int32_t b = collm_strmap_get(&isbn, f[1], strlen(f[1]));
        if (b < 0) continue;
        bx_rating x = {u, b, (int8_t)(r > 5), (int64_t)n_r};
        VEC_PUSH(rat, n_r, cap_r, x, fail);
    }
    qsort(rat, n_r, sizeof *rat, cmp_bx); // by user, then file order
    // Users with more than 3 ratings, ascending id, then a seeded shuffle cut 80/10/10.
    user_start = collm_malloc((n_r + 1) * sizeof *user_start);
    uorder = collm_malloc((n_r + 1) * sizeof *uorder);
    perm = collm_malloc((n_r + 1) * sizeof *perm);
    if (!user_start || !uorder || !perm) {
        rc = COLLM_ERR_NOMEM;
        goto fail;
    }
    int32_t n_users = 0;
    for (size_t k = 0; k < n_r;) {
        size_t e = k;
        while (e < n_r && rat[e].user == rat[k].user) e++;
        if (e - k > 3) {
            user_start[n_users] = (int64_t)k;
            uorder[n_users] = n_users;
            n_users++;
        }
        k = e;
    }
    collm_rng rng;
    collm_rng_seed(&rng, seed);
    collm_rng_shuffle_i32(&rng, uorder, n_users);
    int32_t n_train = (int32_t)((int64_t)n_users * 8 / 10), n_valid = n_users / 10;
    // Rows per split: at most K per user; history at most H.
    int64_t rows[3] = {0}, hist[3] = {0};
    for (int32_t j = 0; j < n_users; j++) {
        int k = j < n_train ? 0 : j < n_train + n_valid ? 1 : 2;
        int64_t a = user_start[uorder[j]], e = a;
        while (e < (int64_t)n_r && rat[e].user == rat[a].user) e++;
        int64_t n = e - a, t = n < K ? n : K, h = n - 1 < H ? n - 1 : H;
        rows[k] += t;
        hist[k] += t * h;
    }
    for (int k = 0; k < 3; k++)
        if (rows[k] == 0) {
            static const char *const name[3] = {"train", "valid", "test"};
            rc = collm_error(COLLM_ERR_ARG,
                             "%s: the %s split would be empty: %d users with more than 3 known ratings, cut 80/10/10, "
                             "give %d/%d/%d train/valid/test users",
                             ratings_path, name[k], n_users, n_train, n_valid, n_users - n_train - n_valid);
            goto fail;
        }
    for (int k = 0; k < 3; k++) {
        size_t nr = (size_t)rows[k] + 1, nh = (size_t)hist[k] + 1;
        sp[k].user = collm_malloc(nr * sizeof *sp[k].user);
        sp[k].item = collm_malloc(nr * sizeof *sp[k].item);
        sp[k].label = collm_malloc(nr * sizeof *sp[k].label);
        sp[k].timestamp = collm_calloc(nr, sizeof *sp[k].timestamp);
        sp[k].not_cold = collm_malloc(nr * sizeof *sp[k].not_cold);
        sp[k].his_offset = collm_malloc((nr + 1) * sizeof *sp[k].his_offset);
        sp[k].his = collm_malloc(nh * sizeof *sp[k].his);
        sp[k].his_label = collm_malloc(nh * sizeof *sp[k].his_label);
        if (!sp[k].user || !sp[k].item || !sp[k].label || !sp[k].timestamp || !sp[k].not_cold || !sp[k].his_offset ||
            !sp[k].his || !sp[k].his_label) {
            rc = COLLM_ERR_NOMEM;
            goto fail;
        }
        sp[k].his_offset[0] = 0;
    }
    // Per user (in split order): shuffle the user's ratings L[0..N) with the
    // same rng; targets are L[N-1], L[N-2], ... (up to K); each target's
    // history is the first min(N-1, H) entries of L without the target. With
    // K = 1 this is TALLRec's construction (target = last, history = the rest).
    for (int32_t j = 0; j < n_users; j++) {
        int k = j < n_train ? 0 : j < n_train + n_valid ? 1 : 2;
        collm_rec_split *o = &sp[k];
        int64_t a = user_start[uorder[j]], e = a;
        while (e < (int64_t)n_r && rat[e].user == rat[a].user) e++;
        int32_t n = (int32_t)(e - a);
        for (int32_t q = 0; q < n; q++) perm[q] = (int32_t)(a + q);
        collm_rng_shuffle_i32(&rng, perm, n);
        int32_t t_count = n < K ? n : K, h = n - 1 < H ? n - 1 : H;
        for (int32_t t = 0; t < t_count; t++) {
            int32_t tpos = n - 1 - t;
            int64_t r = o->n++;
            o->user[r] = (int32_t)rat[perm[tpos]].user;
            o->item[r] = rat[perm[tpos]].book;
            o->label[r] = rat[perm[tpos]].label;
            o->not_cold[r] = 1;
            int64_t w = o->his_offset[r];
            for (int32_t q = 0, got = 0; q < n && got < h; q++) {
                if (q == tpos) continue;
                o->his[w] = rat[perm[q]].book;
                o->his_label[w] = rat[perm[q]].label;
                w++, got++;
            }
            o->his_offset[r + 1] = w;
        }
    }
    if ((rc = write_items(out_dir, title, author, (int32_t)n_books))) goto fail;
    static const char *const names[3] = {"train", "valid", "test"};
    char path[4096];
    for (int k = 0; k < 3 && rc == COLLM_OK; k++) {
        snprintf(path, sizeof path, "%s/%s.tsv", out_dir, names[k]);
        rc = collm_rec_split_write(path, &sp[k]);
    }
    static const char *const written[] = {"items.tsv", "train.tsv", "valid.tsv", "test.tsv", NULL};
    if (rc == COLLM_OK) rc = collm_rec_remove_stale(out_dir, written);
fail:
    for (size_t k = 0; k < n_books; k++) free(title[k]), free(author[k]), free(isbn_str[k]);
    free(title), free(author), free(isbn_str), free(buf), free(rat), free(user_start), free(uorder), free(perm);
    for (int k = 0; k < 3; k++) {
        free(sp[k].user), free(sp[k].item), free(sp[k].label), free(sp[k].timestamp), free(sp[k].not_cold);
        free(sp[k].his_offset), free(sp[k].his), free(sp[k].his_label);
    }
    collm_strmap_free(&isbn);
    free(br.data);
    free(rr.data);
    return rc;
}
