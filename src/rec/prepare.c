// `collm prepare`: dataset folders from the raw public sources (method.md
// §2.2-§2.4; the decisions the sources leave open are listed in docs/data.md).
#include "collm/error.h"
#include "collm/fileio.h"
#include "collm/prepare.h"
#include "collm/rng.h"

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

static int valid_utf8(const unsigned char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        size_t k = c < 0x80 ? 0 : (c >> 5) == 6 ? 1 : (c >> 4) == 14 ? 2 : (c >> 3) == 30 ? 3 : 9;
        if (k == 9 || (k == 1 && c < 0xC2) || i + k >= n + (k ? 0 : 1)) return 0;
        for (size_t j = 1; j <= k; j++)
            if ((s[i + j] & 0xC0) != 0x80) return 0;
        i += k + 1;
    }
    return 1;
}

// Latin-1 -> UTF-8 unless the text already is valid UTF-8 (then copied).
static char *to_utf8(const char *s, size_t n, int is_utf8) {
    char *out = collm_malloc(2 * n + 1);
    if (!out) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80 || is_utf8) out[o++] = (char)c;
        else {
            out[o++] = (char)(0xC0 | (c >> 6));
            out[o++] = (char)(0x80 | (c & 0x3F));
        }
    }
    out[o] = '\0';
    return out;
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
        v = v * 10 + (s[i] - '0');
    }
    if (neg) v = -v;
    if (v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

// Open-addressing map from byte strings (not copied) to int32.
typedef struct {
    const char **key;
    size_t *klen;
    int32_t *val;
    size_t cap, n;
} strmap;

static uint64_t str_hash(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

static int strmap_init(strmap *m, size_t expect) {
    memset(m, 0, sizeof *m);
    m->cap = 16;
    while (m->cap < 2 * expect + 16) m->cap *= 2;
    m->key = collm_calloc(m->cap, sizeof *m->key);
    m->klen = collm_calloc(m->cap, sizeof *m->klen);
    m->val = collm_calloc(m->cap, sizeof *m->val);
    return m->key && m->klen && m->val ? COLLM_OK : COLLM_ERR_NOMEM;
}

static void strmap_free(strmap *m) {
    free(m->key);
    free(m->klen);
    free(m->val);
}

// Returns the slot of key (existing or empty).
static size_t strmap_slot(const strmap *m, const char *k, size_t n) {
    size_t i = str_hash(k, n) & (m->cap - 1);
    while (m->key[i] && !(m->klen[i] == n && memcmp(m->key[i], k, n) == 0)) i = (i + 1) & (m->cap - 1);
    return i;
}

__attribute__((unused)) static int32_t strmap_get(const strmap *m, const char *k, size_t n) {
    size_t i = strmap_slot(m, k, n);
    return m->key[i] ? m->val[i] : -1;
}

// Sets key -> v (overwrites). Grows at half load.
__attribute__((unused)) static int strmap_put(strmap *m, const char *k, size_t n, int32_t v) {
    if (2 * (m->n + 1) > m->cap) {
        strmap big;
        if (strmap_init(&big, m->cap) != COLLM_OK) return COLLM_ERR_NOMEM;
        for (size_t i = 0; i < m->cap; i++)
            if (m->key[i]) {
                size_t j = strmap_slot(&big, m->key[i], m->klen[i]);
                big.key[j] = m->key[i], big.klen[j] = m->klen[i], big.val[j] = m->val[i];
            }
        big.n = m->n;
        strmap_free(m);
        *m = big;
    }
    size_t i = strmap_slot(m, k, n);
    if (!m->key[i]) m->n++;
    m->key[i] = k, m->klen[i] = n, m->val[i] = v;
    return COLLM_OK;
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
    rec_items it = {0};
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
    return rec_items_write(path, &it);
}

// ---------------------------------------------------------------- ML-1M

int rec_prepare_ml1m(const char *ratings_path, const char *movies_path, const char *out_dir, uint64_t seed) {
    int rc;
    line_reader mr = {0}, rr = {0};
    char **movie_title = NULL, **movie_genres = NULL, **title = NULL;
    raw_event *ev = NULL;
    rec_event *out = NULL;
    int32_t *item_of_movie = NULL, *movie_of_item = NULL, *user_map = NULL;
    size_t n_ev = 0, cap_ev = 0;
    enum { MAX_MOVIE = 1 << 20 };
    if ((rc = lr_open(&mr, movies_path)) || (rc = lr_open(&rr, ratings_path))) goto fail;
    if ((rc = collm_mkdir_p(out_dir))) goto fail;
    int utf8 = valid_utf8((const unsigned char *)mr.data, mr.size);
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
        movie_title[id] = to_utf8(a + 2, (size_t)(b - a - 2), utf8);
        movie_genres[id] = to_utf8(b + 2, strlen(b + 2), utf8);
        if (!movie_title[id] || !movie_genres[id]) {
            rc = COLLM_ERR_NOMEM;
            goto fail;
        }
    }
    // ratings.dat: UserID::MovieID::Rating::Timestamp. Inner join with movies;
    // month window t = (year-2000)*12 + month - 4: train 14..23, valid
    // 24..28, test 29..33, everything else dropped.
    int64_t max_user = 0;
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
        int64_t t = utc_month(ts, NULL) - (2000 * 12 + 3);
        int8_t split = t >= 14 && t <= 23 ? 0 : t >= 24 && t <= 28 ? 1 : t >= 29 && t <= 33 ? 2 : -1;
        if (split < 0) continue;
        raw_event e = {u, m, ts, (int64_t)n_ev, (int32_t)r, split};
        VEC_PUSH(ev, n_ev, cap_ev, e, fail);
        if (u > max_user) max_user = u;
    }
    // Sort by (user, timestamp); ties by raw MovieID (the documented rule).
    qsort(ev, n_ev, sizeof *ev, cmp_raw);
    // Users: 1..N in ascending raw id. Items: 1..M by first appearance.
    user_map = collm_calloc((size_t)max_user + 1, sizeof *user_map);
    item_of_movie = collm_calloc(MAX_MOVIE, sizeof *item_of_movie);
    movie_of_item = collm_calloc(n_ev + 1, sizeof *movie_of_item);
    out = collm_malloc((n_ev + 1) * sizeof *out);
    if (!user_map || !item_of_movie || !movie_of_item || !out) {
        rc = COLLM_ERR_NOMEM;
        goto fail;
    }
    for (size_t k = 0; k < n_ev; k++) user_map[ev[k].user_key] = 1;
    int32_t nu = 0, ni = 0;
    for (int64_t u = 1; u <= max_user; u++)
        if (user_map[u]) user_map[u] = ++nu;
    for (size_t k = 0; k < n_ev; k++) {
        int64_t m = ev[k].item_key;
        if (!item_of_movie[m]) {
            item_of_movie[m] = ++ni;
            movie_of_item[ni] = (int32_t)m;
        }
        out[k].user = user_map[ev[k].user_key];
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
    if ((rc = write_items(out_dir, title, NULL, ni + 1))) goto fail;
    char path[4096];
    snprintf(path, sizeof path, "%s/item_map.tsv", out_dir);
    FILE *f = fopen(path, "wb");
    if (!f) {
        rc = collm_error(COLLM_ERR_IO, "%s: cannot create", path);
        goto fail;
    }
    fputs("iid\tmovie_id\tgenres\n", f);
    for (int32_t i = 1; i <= ni; i++) {
        fprintf(f, "%d\t%d\t", i, movie_of_item[i]);
        rec_write_escaped(f, movie_genres[movie_of_item[i]]);
        fputc('\n', f);
    }
    if (fclose(f) != 0) {
        rc = collm_error(COLLM_ERR_IO, "%s: write failed", path);
        goto fail;
    }
    rc = rec_write_ood_splits(out_dir, out, (int64_t)n_ev, 0.5, seed);
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
    free(user_map);
    free(mr.data);
    free(rr.data);
    return rc;
}
