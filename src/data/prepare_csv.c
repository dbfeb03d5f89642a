// `collm prepare --source csv`: a dataset folder from your own interactions
// and item titles in delimited text (docs/data.md "Own data"): column
// mapping, labels from a rating threshold or a 0/1 column, an optional
// k-core filter, one split rule, then the ML-1M layout (his, not_cold,
// valid_small) through collm_rec_write_ood_splits.
#include "collm/error.h"
#include "collm/fileio.h"
#include "collm/prepare.h"
#include "data/text.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

// ---------------------------------------------------------------- reader

// The records of one delimited file, parsed in place in a whole-file buffer.
// Fields may be quoted ("..."; "" is one quote; delimiters and line breaks
// inside are data). LF or CRLF; a UTF-8 BOM is skipped; blank lines and lines
// of only spaces are skipped (pandas skips blank ones); UTF-16 and files with
// NUL bytes are refused with a message that says so.
typedef struct {
    const char *path;
    char *data;
    size_t size, pos;
    int64_t line;     // line number (1-based) at pos
    int64_t rec_line; // line the last record started on
    char delim;
    int utf8;         // the whole file is valid UTF-8 (else it is read as Latin-1)
    char **field;     // the last record's fields (NUL-terminated, pointing into data)
    int n_field, cap_field;
} csv_reader;

static void csv_close(csv_reader *r) {
    free(r->data);
    free(r->field);
    memset(r, 0, sizeof *r);
}

// Opens path; delim 0 = detect from the first line: the most frequent of
// , tab ; | outside quotes (ties in that order).
static int csv_open(csv_reader *r, const char *path, char delim) {
    memset(r, 0, sizeof *r);
    r->path = path;
    r->line = 1;
    int rc = collm_read_file(path, &r->data, &r->size);
    if (rc) return rc;
    if (r->size >= 2 && (memcmp(r->data, "\xFF\xFE", 2) == 0 || memcmp(r->data, "\xFE\xFF", 2) == 0))
        return collm_error(COLLM_ERR_FORMAT,
                           "%s: the file is UTF-16 (it starts with a UTF-16 byte-order mark); convert it to UTF-8 "
                           "first, e.g. iconv -f UTF-16 -t UTF-8",
                           path);
    if (r->size >= 3 && memcmp(r->data, "\xEF\xBB\xBF", 3) == 0) r->pos = 3;
    // NUL bytes are no text of any 8-bit encoding: UTF-16 without a mark, or a binary file.
    const char *nul = memchr(r->data + r->pos, '\0', r->size - r->pos);
    if (nul) {
        int64_t line = 1;
        for (const char *c = r->data; c < nul; c++) line += *c == '\n';
        return collm_error(COLLM_ERR_FORMAT,
                           "%s:%lld: a NUL byte: this is not a text file in UTF-8 or Latin-1 (UTF-16 without a "
                           "byte-order mark? convert it with iconv -t UTF-8)",
                           path, (long long)line);
    }
    r->utf8 = collm_text_valid_utf8((const unsigned char *)r->data + r->pos, r->size - r->pos);
    if (delim) {
        r->delim = delim;
        return COLLM_OK;
    }
    static const char cand[4] = {',', '\t', ';', '|'};
    int count[4] = {0}, inq = 0;
    for (size_t i = r->pos; i < r->size && (inq || r->data[i] != '\n'); i++) {
        if (r->data[i] == '"') inq = !inq;
        for (int k = 0; k < 4 && !inq; k++) count[k] += r->data[i] == cand[k];
    }
    int best = 0;
    for (int k = 1; k < 4; k++)
        if (count[k] > count[best]) best = k;
    if (count[best] == 0)
        return collm_error(COLLM_ERR_FORMAT,
                           "%s:1: cannot tell the delimiter: the first line has no comma, tab, ';' or '|' "
                           "(give --delimiter)",
                           path);
    r->delim = cand[best];
    return COLLM_OK;
}

static int csv_push_field(csv_reader *r, char *f) {
    if (r->n_field == r->cap_field) {
        int cap = r->cap_field ? 2 * r->cap_field : 16;
        char **nf = realloc(r->field, (size_t)cap * sizeof *nf);
        if (!nf) return collm_error(COLLM_ERR_NOMEM, "out of memory");
        r->field = nf;
        r->cap_field = cap;
    }
    r->field[r->n_field++] = f;
    return COLLM_OK;
}

// Next record into field[0..n_field). 1: a record, 0: end of file, < 0: error.
// Unquoting writes each field over its own bytes (it only shrinks), and the
// NUL goes where its terminator was (read first); the buffer's own trailing
// NUL ends the last field of a file without a final newline.
static int csv_next(csv_reader *r) {
    char *d = r->data;
    for (;;) { // blank lines, and lines of nothing but spaces (and tabs, unless tab is the delimiter)
        size_t e = r->pos;
        while (e < r->size && (d[e] == ' ' || (d[e] == '\t' && r->delim != '\t'))) e++;
        if (e >= r->size) {
            r->pos = r->size;
            return 0;
        }
        if (d[e] == '\n') r->pos = e + 1, r->line++;
        else if (d[e] == '\r' && e + 1 < r->size && d[e + 1] == '\n') r->pos = e + 2, r->line++;
        else break;
    }
    r->rec_line = r->line;
    r->n_field = 0;
    size_t i = r->pos;
    for (;;) {
        char *start = d + i, *out;
        int quoted = i < r->size && d[i] == '"';
        if (quoted) {
            out = start;
            i++;
            for (;;) {
                if (i >= r->size)
                    return collm_error(COLLM_ERR_FORMAT, "%s:%lld: field %d: a quote that is never closed", r->path,
                                       (long long)r->rec_line, r->n_field + 1);
                if (d[i] == '"') {
                    if (i + 1 < r->size && d[i + 1] == '"') {
                        *out++ = '"';
                        i += 2;
                        continue;
                    }
                    i++;
                    break;
                }
                if (d[i] == '\n') r->line++;
                *out++ = d[i++];
            }
        } else {
            while (i < r->size && d[i] != r->delim && d[i] != '\n') i++;
            out = d + i;
            if (out > start && out[-1] == '\r' && (i >= r->size || d[i] == '\n')) out--; // CR of a CRLF
        }
        // The terminator: delimiter, end of line (LF / CRLF) or end of file.
        int end_rec;
        size_t next;
        if (i >= r->size) end_rec = 1, next = i;
        else if (d[i] == r->delim) end_rec = 0, next = i + 1;
        else if (d[i] == '\n') end_rec = 1, next = i + 1;
        else if (d[i] == '\r' && (i + 1 >= r->size || d[i + 1] == '\n')) end_rec = 1, next = i + 2 > r->size ? r->size : i + 2;
        else
            return collm_error(COLLM_ERR_FORMAT, "%s:%lld: field %d: text after the closing quote", r->path,
                               (long long)r->rec_line, r->n_field + 1);
        int newline = end_rec && i < r->size; // LF or CRLF (not the end of the file)
        *out = '\0';
        int rc = csv_push_field(r, start);
        if (rc) return rc;
        i = next;
        if (end_rec) {
            r->line += newline;
            break;
        }
    }
    r->pos = i;
    return 1;
}

// ---------------------------------------------------------------- columns

static const char *const user_names[] = {"user_id", "userid", "user", "uid", "user-id", "reviewerid", "visitorid",
                                         "customer_id", NULL};
static const char *const item_names[] = {"item_id", "itemid", "item", "iid", "movie_id", "movieid", "book_id",
                                         "isbn", "asin", "product_id", NULL};
static const char *const rating_names[] = {"rating", "book-rating", "stars", "overall", "score", NULL};
static const char *const label_names[] = {"label", "liked", "like", "click", "clicked", NULL};
static const char *const time_names[] = {"timestamp", "time", "ts", "datetime", "date", "unixreviewtime", NULL};
static const char *const title_names[] = {"title", "book-title", "movie_title", "item_name", "name", NULL};

static int all_digits(const char *s) {
    if (!*s) return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9') return 0;
    return 1;
}

// "a, b, c" of the header (shortened), for error messages.
static void header_list(char **hdr, int n, char *buf, size_t cap) {
    size_t o = 0;
    buf[0] = '\0';
    for (int k = 0; k < n && o + 8 < cap; k++) {
        int w = snprintf(buf + o, cap - o, "%s%s", k ? ", " : "", hdr[k]);
        if (w < 0 || (size_t)w >= cap - o) {
            snprintf(buf + (cap > 4 ? cap - 4 : 0), 4, "...");
            return;
        }
        o += (size_t)w;
    }
}

// Column of spec (a header name, exact then case-insensitive, or a 1-based
// index) or, with spec NULL, of the first of names (case-insensitive) the
// header has; *out = -1 when spec is NULL and none matches. what/opt name
// the column and its option in errors.
static int find_col(const char *path, char **hdr, int n, int has_header, const char *spec, const char *const *names,
                    const char *opt, int *out) {
    *out = -1;
    if (spec) {
        if (all_digits(spec)) {
            long k = strlen(spec) > 6 ? 0 : atol(spec);
            if (k < 1 || k > n)
                return collm_error(COLLM_ERR_ARG, "%s: %s %s: the file has columns 1..%d", path, opt, spec, n);
            *out = (int)k - 1;
            return COLLM_OK;
        }
        if (!has_header)
            return collm_error(COLLM_ERR_ARG, "%s: %s '%s': without a header line columns are 1-based numbers", path,
                               opt, spec);
        for (int pass = 0; pass < 2 && *out < 0; pass++)
            for (int k = 0; k < n; k++)
                if (pass == 0 ? strcmp(hdr[k], spec) == 0 : strcasecmp(hdr[k], spec) == 0) {
                    if (*out >= 0)
                        return collm_error(COLLM_ERR_FORMAT, "%s: column '%s' appears twice in the header", path, spec);
                    *out = k;
                }
        if (*out < 0) {
            char list[256];
            header_list(hdr, n, list, sizeof list);
            return collm_error(COLLM_ERR_ARG, "%s: %s '%s': no such column (the header has: %s)", path, opt, spec,
                               list);
        }
        return COLLM_OK;
    }
    if (!has_header) return COLLM_OK;
    for (const char *const *nm = names; *nm && *out < 0; nm++)
        for (int k = 0; k < n; k++)
            if (strcasecmp(hdr[k], *nm) == 0) {
                *out = k;
                break;
            }
    return COLLM_OK;
}

static int missing_col(const char *path, char **hdr, int n, int has_header, const char *const *names, const char *what,
                       const char *opt) {
    if (!has_header)
        return collm_error(COLLM_ERR_ARG, "%s: no header line: give the %s column as %s N (1-based)", path, what, opt);
    char list[256], look[160];
    header_list(hdr, n, list, sizeof list);
    header_list((char **)names, 4, look, sizeof look);
    return collm_error(COLLM_ERR_ARG, "%s: no %s column (looked for %s, ...; the header has: %s); give %s NAME|N",
                       path, what, look, list, opt);
}

// ---------------------------------------------------------------- values

int collm_rec_parse_time(const char *s, int64_t *out) {
    const char *p = s;
    // Unix seconds, optionally with a fraction (dropped toward -inf).
    int neg = *p == '-';
    p += neg;
    if (*p >= '0' && *p <= '9') {
        const char *q = p;
        int64_t v = 0;
        while (*q >= '0' && *q <= '9' && q - p < 18) v = v * 10 + (*q++ - '0');
        int frac = 0;
        if (*q == '.') {
            q++;
            if (!(*q >= '0' && *q <= '9')) goto date;
            while (*q >= '0' && *q <= '9') frac |= *q++ != '0';
        }
        if (*q == '\0') {
            *out = neg ? -v - (frac ? 1 : 0) : v;
            return COLLM_OK;
        }
    }
date:
    if (neg) goto bad;
    // YYYY-MM-DD[(T| )HH:MM[:SS]][Z]
    int f[6] = {0, 0, 0, 0, 0, 0};
    static const int width[6] = {4, 2, 2, 2, 2, 2};
    static const char sep[6] = {'-', '-', 0, ':', ':', 0};
    p = s;
    int k = 0;
    for (; k < 6; k++) {
        for (int j = 0; j < width[k]; j++, p++) {
            if (*p < '0' || *p > '9') goto bad;
            f[k] = f[k] * 10 + (*p - '0');
        }
        if (k == 2) {
            if (*p == '\0') break;
            if (*p != 'T' && *p != ' ') goto bad;
            p++;
        } else if (k == 4) {
            if (*p == '\0' || *p == 'Z') break;
            if (*p++ != ':') goto bad;
        } else if (sep[k] && *p++ != sep[k]) {
            goto bad;
        }
    }
    if (*p == 'Z') p++;
    if (*p != '\0') goto bad;
    if (f[1] < 1 || f[1] > 12 || f[2] < 1 || f[2] > 31 || f[3] > 23 || f[4] > 59 || f[5] > 60) goto bad;
    struct tm tm = {0};
    tm.tm_year = f[0] - 1900;
    tm.tm_mon = f[1] - 1;
    tm.tm_mday = f[2];
    tm.tm_hour = f[3];
    tm.tm_min = f[4];
    tm.tm_sec = f[5];
    time_t t = timegm(&tm);
    if (tm.tm_mday != f[2]) goto bad; // e.g. 2001-02-30 normalised into March
    *out = (int64_t)t;
    return COLLM_OK;
bad:
    return collm_error(COLLM_ERR_FORMAT, "'%s' is not a time (unix seconds, or YYYY-MM-DD[ HH:MM[:SS]] UTC)", s);
}

static void fmt_time(int64_t ts, char *buf, size_t cap) {
    time_t t = (time_t)ts;
    struct tm tm;
    if (!gmtime_r(&t, &tm)) {
        snprintf(buf, cap, "%lld", (long long)ts);
        return;
    }
    if (tm.tm_hour || tm.tm_min || tm.tm_sec)
        snprintf(buf, cap, "%04d-%02d-%02d %02d:%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                 tm.tm_min, tm.tm_sec);
    else
        snprintf(buf, cap, "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
}

// ---------------------------------------------------------------- build

typedef struct {
    int32_t user;    // user index (first appearance in the file), later the final id
    int32_t item;    // row of the items file, later the final id
    int64_t ts;      // seconds, or the row's index in the file without a time column
    int64_t order;   // row index in the file (last tie-break)
    int8_t label;
    int8_t split;
} csv_event;

static int cmp_user_time(const void *a, const void *b) {
    const csv_event *x = a, *y = b;
    if (x->user != y->user) return x->user < y->user ? -1 : 1;
    if (x->ts != y->ts) return x->ts < y->ts ? -1 : 1;
    return (x->order > y->order) - (x->order < y->order);
}

static int cmp_time(const void *a, const void *b) {
    const csv_event *x = *(const csv_event *const *)a, *y = *(const csv_event *const *)b;
    if (x->ts != y->ts) return x->ts < y->ts ? -1 : 1;
    return (x->order > y->order) - (x->order < y->order);
}

// floor(n * f) with a little slack so 0.29 * 100 counts as 29.
static int64_t frac_rows(int64_t n, double f) { return (int64_t)floor((double)n * f + 1e-9); }

void collm_rec_csv_options_default(collm_rec_csv_options *o) {
    memset(o, 0, sizeof *o);
    o->threshold = 4;
    o->split = COLLM_SPLIT_TIME;
    o->frac[0] = 0.8, o->frac[1] = 0.1, o->frac[2] = 0.1;
    o->small_frac = 0.5;
    o->seed = 2023;
}

static int check_options(const collm_rec_csv_options *o) {
    if (o->split != COLLM_SPLIT_TIME && o->split != COLLM_SPLIT_RATIO && o->split != COLLM_SPLIT_LOO)
        return collm_error(COLLM_ERR_ARG, "unknown split rule %d", (int)o->split);
    if (o->use_dates) {
        if (o->split != COLLM_SPLIT_TIME) return collm_error(COLLM_ERR_ARG, "cut dates apply to the time split only");
        if (o->valid_from > o->test_from)
            return collm_error(COLLM_ERR_ARG, "the valid cut date is after the test cut date");
    } else if (o->split != COLLM_SPLIT_LOO) {
        double sum = o->frac[0] + o->frac[1] + o->frac[2];
        if (!(o->frac[0] > 0 && o->frac[1] > 0 && o->frac[2] > 0) || fabs(sum - 1) > 1e-6)
            return collm_error(COLLM_ERR_ARG, "split fractions %g,%g,%g: each must be > 0 and they must sum to 1",
                               o->frac[0], o->frac[1], o->frac[2]);
    }
    if (!isfinite(o->threshold)) return collm_error(COLLM_ERR_ARG, "the rating threshold must be a finite number");
    if (o->kcore < 0) return collm_error(COLLM_ERR_ARG, "k-core must be >= 0");
    if (!(o->small_frac > 0 && o->small_frac <= 1))
        return collm_error(COLLM_ERR_ARG, "the valid_small fraction must be in (0, 1]");
    return COLLM_OK;
}

// Items file: raw id -> row, with each row's title. A repeated id must carry
// the same title (it may, when the items are the interactions file itself).
typedef struct {
    csv_reader r;
    collm_strmap map;
    char **key, **title;
    int64_t *line;
    size_t n, cap;
} item_table;

static void item_table_free(item_table *t) {
    csv_close(&t->r);
    collm_strmap_free(&t->map);
    free(t->key), free(t->title), free(t->line);
}

// The interactions' item column name as its header has it (the explicit
// --item-col or the first known name found), into *name (malloc'd; NULL
// when the file has no header or none is found: the caller's errors say so).
static int inter_item_name(const char *path, const collm_rec_csv_options *o, char **name) {
    *name = NULL;
    if (o->no_header || (o->item_col && all_digits(o->item_col))) return COLLM_OK;
    csv_reader r;
    memset(&r, 0, sizeof r);
    int rc = csv_open(&r, path, o->delimiter), col = -1;
    if (!rc && (rc = csv_next(&r)) > 0) {
        rc = find_col(path, r.field, r.n_field, 1, o->item_col, item_names, "--item-col", &col);
        if (!rc && col >= 0 && !(*name = strdup(r.field[col]))) rc = collm_error(COLLM_ERR_NOMEM, "out of memory");
    }
    csv_close(&r);
    return rc < 0 ? rc : COLLM_OK;
}

// inter_item: the interactions' item column name (inter_item_name): the
// items file's id column when its header has a column of that name, as
// docs/data.md says (a MovieLens items file holds both item_id and movieId).
static int load_items(item_table *t, const char *path, const collm_rec_csv_options *o, const char *inter_item) {
    int rc = csv_open(&t->r, path, o->delimiter);
    if (rc || (rc = collm_strmap_init(&t->map, 1024))) return rc;
    rc = csv_next(&t->r);
    if (rc < 0) return rc;
    if (rc == 0) return collm_error(COLLM_ERR_FORMAT, "%s: empty file", path);
    int n_col = t->r.n_field, has_header = !o->no_header;
    char **hdr = collm_malloc((size_t)n_col * sizeof *hdr);
    if (!hdr) return COLLM_ERR_NOMEM;
    memcpy(hdr, t->r.field, (size_t)n_col * sizeof *hdr);
    int id_col = -1, title_col = -1;
    if (!o->items_id_col && inter_item && has_header)
        for (int k = 0; k < n_col && id_col < 0; k++)
            if (strcasecmp(hdr[k], inter_item) == 0) id_col = k;
    if ((id_col < 0 &&
         (rc = find_col(path, hdr, n_col, has_header, o->items_id_col, item_names, "--items-id-col", &id_col))) ||
        (rc = find_col(path, hdr, n_col, has_header, o->title_col, title_names, "--title-col", &title_col)))
        goto done;
    if (id_col < 0) {
        rc = missing_col(path, hdr, n_col, has_header, item_names, "item id", "--items-id-col");
        goto done;
    }
    if (title_col < 0) {
        rc = missing_col(path, hdr, n_col, has_header, title_names, "title", "--title-col");
        goto done;
    }
    for (int first = !has_header;; first = 0) {
        if (!first && (rc = csv_next(&t->r)) <= 0) break;
        if (t->r.n_field != n_col) {
            rc = collm_error(COLLM_ERR_FORMAT, "%s:%lld: %d fields, expected %d (as the first line)", path,
                             (long long)t->r.rec_line, t->r.n_field, n_col);
            goto done;
        }
        char *key = t->r.field[id_col], *title = t->r.field[title_col];
        if (!*key) {
            rc = collm_error(COLLM_ERR_FORMAT, "%s:%lld: empty item id", path, (long long)t->r.rec_line);
            goto done;
        }
        int32_t prev = collm_strmap_get(&t->map, key, strlen(key));
        if (prev >= 0) {
            if (strcmp(t->title[prev], title) != 0) {
                rc = collm_error(COLLM_ERR_FORMAT, "%s:%lld: item '%s' again, with another title than on line %lld",
                                 path, (long long)t->r.rec_line, key, (long long)t->line[prev]);
                goto done;
            }
            continue;
        }
        if (t->n == t->cap) {
            size_t cap = t->cap ? 2 * t->cap : 1024;
            char **nk = realloc(t->key, cap * sizeof *nk);
            if (nk) t->key = nk;
            char **nt = realloc(t->title, cap * sizeof *nt);
            if (nt) t->title = nt;
            int64_t *nl = realloc(t->line, cap * sizeof *nl);
            if (nl) t->line = nl;
            if (!nk || !nt || !nl) {
                rc = collm_error(COLLM_ERR_NOMEM, "out of memory");
                goto done;
            }
            t->cap = cap;
        }
        t->key[t->n] = key, t->title[t->n] = title, t->line[t->n] = t->r.rec_line;
        if ((rc = collm_strmap_put(&t->map, key, strlen(key), (int32_t)t->n))) goto done;
        t->n++;
    }
    if (rc == 0 && t->n == 0) rc = collm_error(COLLM_ERR_FORMAT, "%s: no item rows", path);
done:
    free(hdr);
    return rc < 0 ? rc : COLLM_OK;
}

typedef struct {
    int user, item, rating, label, time, n_col;
} inter_cols;

static int inter_columns(csv_reader *r, char **hdr, int n_col, const collm_rec_csv_options *o, inter_cols *c) {
    const char *path = r->path;
    int has_header = !o->no_header, rc;
    c->n_col = n_col;
    if ((rc = find_col(path, hdr, n_col, has_header, o->user_col, user_names, "--user-col", &c->user)) ||
        (rc = find_col(path, hdr, n_col, has_header, o->item_col, item_names, "--item-col", &c->item)) ||
        (rc = find_col(path, hdr, n_col, has_header, o->time_col, time_names, "--time-col", &c->time)))
        return rc;
    if (c->user < 0) return missing_col(path, hdr, n_col, has_header, user_names, "user", "--user-col");
    if (c->item < 0) return missing_col(path, hdr, n_col, has_header, item_names, "item", "--item-col");
    if (o->rating_col && o->label_col) return collm_error(COLLM_ERR_ARG, "give --rating-col or --label-col, not both");
    c->rating = c->label = -1;
    if (o->rating_col) rc = find_col(path, hdr, n_col, has_header, o->rating_col, NULL, "--rating-col", &c->rating);
    else if (o->label_col) rc = find_col(path, hdr, n_col, has_header, o->label_col, NULL, "--label-col", &c->label);
    else if (!(rc = find_col(path, hdr, n_col, has_header, NULL, rating_names, "--rating-col", &c->rating)))
        rc = find_col(path, hdr, n_col, has_header, NULL, label_names, "--label-col", &c->label);
    if (rc) return rc;
    if (c->rating >= 0 && c->label >= 0)
        return collm_error(COLLM_ERR_ARG, "%s: both a rating column ('%s') and a label column ('%s'): choose one with "
                                          "--rating-col or --label-col",
                           path, hdr[c->rating], hdr[c->label]);
    if (c->rating < 0 && c->label < 0) {
        if (!has_header)
            return collm_error(COLLM_ERR_ARG, "%s: no header line: give --rating-col N or --label-col N (1-based)", path);
        char list[256];
        header_list(hdr, n_col, list, sizeof list);
        return collm_error(COLLM_ERR_ARG,
                           "%s: no rating or label column (looked for rating, stars, overall, score, label, liked, "
                           "click; the header has: %s); give --rating-col NAME|N or --label-col NAME|N",
                           path, list);
    }
    if (o->use_dates && c->time < 0)
        return collm_error(COLLM_ERR_ARG, "%s: cut dates need a time column (none found; give --time-col)", path);
    int cols[4] = {c->user, c->item, c->rating >= 0 ? c->rating : c->label, c->time};
    for (int a = 0; a < 4; a++)
        for (int b = a + 1; b < 4; b++)
            if (cols[a] >= 0 && cols[a] == cols[b])
                return collm_error(COLLM_ERR_ARG, "%s: one column (%d) is mapped to two roles", path, cols[a] + 1);
    return COLLM_OK;
}

// "column 'rating'" or "column 3" for errors.
static const char *col_name(char **hdr, int has_header, int k, char *buf, size_t cap) {
    if (has_header) snprintf(buf, cap, "column '%s'", hdr[k]);
    else snprintf(buf, cap, "column %d", k + 1);
    return buf;
}

static int parse_row(csv_reader *r, char **hdr, int has_header, const inter_cols *c, const collm_rec_csv_options *o,
                     int64_t row, csv_event *e) {
    char nb[160];
    char **f = r->field;
    if (c->rating >= 0) {
        char *end;
        double v = strtod(f[c->rating], &end);
        if (end == f[c->rating] || *end || !isfinite(v))
            return collm_error(COLLM_ERR_FORMAT, "%s:%lld: %s: '%s' is not a number", r->path, (long long)r->rec_line,
                               col_name(hdr, has_header, c->rating, nb, sizeof nb), f[c->rating]);
        e->label = (int8_t)(v >= o->threshold);
    } else {
        const char *v = f[c->label];
        if (strcmp(v, "1") == 0 || strcasecmp(v, "true") == 0) e->label = 1;
        else if (strcmp(v, "0") == 0 || strcasecmp(v, "false") == 0) e->label = 0;
        else
            return collm_error(COLLM_ERR_FORMAT, "%s:%lld: %s: '%s' is not a label (0, 1, true or false)", r->path,
                               (long long)r->rec_line, col_name(hdr, has_header, c->label, nb, sizeof nb), v);
    }
    if (c->time >= 0) {
        if (collm_rec_parse_time(f[c->time], &e->ts))
            return collm_error_prefix(COLLM_ERR_FORMAT, "%s:%lld: %s", r->path, (long long)r->rec_line,
                                      col_name(hdr, has_header, c->time, nb, sizeof nb));
        // the split files hold unsigned seconds: a folder with an earlier
        // time would be written and then refused by every command reading it
        if (e->ts < 0)
            return collm_error(COLLM_ERR_FORMAT, "%s:%lld: %s: '%s' is before 1970-01-01 (times must be unix seconds >= 0)",
                               r->path, (long long)r->rec_line, col_name(hdr, has_header, c->time, nb, sizeof nb),
                               f[c->time]);
    } else {
        e->ts = row; // the file order is the time
    }
    e->order = row;
    return COLLM_OK;
}

// Removes, until none is left, every row of a user or item with fewer than k
// rows. Returns the rows kept (compacted in place, order unchanged).
static int64_t kcore(csv_event *ev, int64_t n, int k, int32_t n_users, int32_t n_items, int *err) {
    int64_t *uc = collm_calloc((size_t)n_users + 1, sizeof *uc), *ic = collm_calloc((size_t)n_items + 1, sizeof *ic);
    if (!uc || !ic) {
        free(uc), free(ic);
        *err = COLLM_ERR_NOMEM;
        return n;
    }
    for (int changed = 1; changed;) {
        memset(uc, 0, ((size_t)n_users + 1) * sizeof *uc);
        memset(ic, 0, ((size_t)n_items + 1) * sizeof *ic);
        for (int64_t r = 0; r < n; r++) uc[ev[r].user]++, ic[ev[r].item]++;
        int64_t w = 0;
        for (int64_t r = 0; r < n; r++)
            if (uc[ev[r].user] >= k && ic[ev[r].item] >= k) ev[w++] = ev[r];
        changed = w != n;
        n = w;
    }
    free(uc), free(ic);
    return n;
}

static const char *const split_name[3] = {"train", "valid", "test"};

// Assigns ev[].split (ev sorted by user, time). Fails, saying why, when a
// split would be empty.
static int assign_splits(csv_event *ev, int64_t n, const collm_rec_csv_options *o, int64_t rows[3]) {
    rows[0] = rows[1] = rows[2] = 0;
    int64_t largest = 0;
    if (o->split == COLLM_SPLIT_TIME && !o->use_dates) {
        csv_event **by_time = collm_malloc((size_t)n * sizeof *by_time);
        if (!by_time) return COLLM_ERR_NOMEM;
        for (int64_t r = 0; r < n; r++) by_time[r] = &ev[r];
        qsort(by_time, (size_t)n, sizeof *by_time, cmp_time);
        int64_t n_test = frac_rows(n, o->frac[2]), n_valid = frac_rows(n, o->frac[1]);
        for (int64_t r = 0; r < n; r++) by_time[r]->split = r < n - n_valid - n_test ? 0 : r < n - n_test ? 1 : 2;
        free(by_time);
    } else if (o->split == COLLM_SPLIT_TIME) {
        for (int64_t r = 0; r < n; r++) ev[r].split = ev[r].ts < o->valid_from ? 0 : ev[r].ts < o->test_from ? 1 : 2;
    } else {
        for (int64_t a = 0; a < n;) {
            int64_t e = a;
            while (e < n && ev[e].user == ev[a].user) e++;
            int64_t m = e - a, n_test, n_valid;
            if (m > largest) largest = m;
            if (o->split == COLLM_SPLIT_LOO) n_test = n_valid = m >= 3 ? 1 : 0;
            else n_test = frac_rows(m, o->frac[2]), n_valid = frac_rows(m, o->frac[1]);
            for (int64_t r = a; r < e; r++) ev[r].split = r < e - n_valid - n_test ? 0 : r < e - n_test ? 1 : 2;
            a = e;
        }
    }
    for (int64_t r = 0; r < n; r++) rows[ev[r].split]++;
    for (int k = 0; k < 3; k++) {
        if (rows[k]) continue;
        if (o->split == COLLM_SPLIT_LOO)
            return collm_error(COLLM_ERR_ARG,
                               "the %s split would be empty: leave-one-out takes valid and test rows from users with "
                               "at least 3 interactions, and the largest user has %lld",
                               split_name[k], (long long)largest);
        if (o->split == COLLM_SPLIT_RATIO)
            return collm_error(COLLM_ERR_ARG,
                               "the %s split would be empty: per-user fraction %g of at most %lld interactions "
                               "rounds down to 0 for every user (a %s row needs a user with %lld)",
                               split_name[k], o->frac[k], (long long)largest, split_name[k],
                               (long long)ceil(1 / o->frac[k] - 1e-9));
        if (!o->use_dates)
            return collm_error(COLLM_ERR_ARG, "the %s split would be empty: %lld interactions x fraction %g < 1",
                               split_name[k], (long long)n, o->frac[k]);
        int64_t lo = INT64_MAX, hi = INT64_MIN;
        for (int64_t r = 0; r < n; r++) lo = ev[r].ts < lo ? ev[r].ts : lo, hi = ev[r].ts > hi ? ev[r].ts : hi;
        char a[64], b[64], v[64], t[64];
        fmt_time(lo, a, sizeof a), fmt_time(hi, b, sizeof b);
        fmt_time(o->valid_from, v, sizeof v), fmt_time(o->test_from, t, sizeof t);
        char w[192];
        if (k == 0) snprintf(w, sizeof w, "before the valid cut %s", v);
        else if (k == 1) snprintf(w, sizeof w, "from the valid cut %s to the test cut %s", v, t);
        else snprintf(w, sizeof w, "from the test cut %s on", t);
        return collm_error(COLLM_ERR_ARG, "the %s split would be empty: no interaction falls %s (UTC; they span %s .. %s)",
                           split_name[k], w, a, b);
    }
    return COLLM_OK;
}

typedef struct {
    const char *header;
    char **key;
    const int32_t *raw_of;
    int32_t n;
    int utf8;
} map_file;

static int write_map_fn(FILE *f, void *ctx) {
    const map_file *m = ctx;
    int rc = fputs(m->header, f) < 0 ? collm_error(COLLM_ERR_IO, "write failed") : COLLM_OK;
    for (int32_t i = 1; i <= m->n && rc == COLLM_OK; i++) {
        const char *k = m->key[m->raw_of[i]];
        char *u = collm_text_to_utf8(k, strlen(k), m->utf8);
        if (!u) rc = collm_error(COLLM_ERR_NOMEM, "out of memory");
        else if (fprintf(f, "%d\t", i) < 0) rc = collm_error(COLLM_ERR_IO, "write failed");
        else if (!(rc = collm_rec_write_escaped(f, u)) && fputc('\n', f) == EOF) rc = collm_error(COLLM_ERR_IO, "write failed");
        free(u);
    }
    return rc;
}

// item_map.tsv / user_map.tsv: atomic like every other output (temp file,
// fsync, rename), every write checked.
static int write_map(const char *dir, const char *name, const char *header, char **key, const int32_t *raw_of,
                     int32_t n, int utf8) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    map_file m = {header, key, raw_of, n, utf8};
    int rc = collm_write_atomic(path, write_map_fn, &m);
    return rc == COLLM_OK || strstr(collm_last_error(), path) ? rc : collm_error_prefix(rc, "%s", path);
}

int collm_rec_prepare_csv(const char *inter_path, const char *items_path, const char *out_dir,
                          const collm_rec_csv_options *opt, collm_rec_csv_stats *stats) {
    collm_rec_csv_options o;
    if (opt) o = *opt;
    else collm_rec_csv_options_default(&o);
    collm_rec_csv_stats st;
    memset(&st, 0, sizeof st);
    int rc = check_options(&o);
    if (rc) return rc;
    item_table it;
    memset(&it, 0, sizeof it);
    csv_reader r;
    memset(&r, 0, sizeof r);
    collm_strmap users;
    memset(&users, 0, sizeof users);
    char **ukey = NULL, **hdr = NULL, **title = NULL;
    size_t n_ukey = 0, cap_ukey = 0, n_ev = 0, cap_ev = 0;
    csv_event *ev = NULL;
    int32_t *new_user = NULL, *new_item = NULL, *raw_user = NULL, *raw_item = NULL;
    collm_rec_event *out = NULL;
    int32_t nu = 0, ni = 0;

    char *inter_item = NULL;
    if (!(rc = inter_item_name(inter_path, &o, &inter_item))) rc = load_items(&it, items_path, &o, inter_item);
    free(inter_item);
    if (rc) goto done;
    st.delimiter[1] = it.r.delim;
    if ((rc = csv_open(&r, inter_path, o.delimiter)) || (rc = collm_strmap_init(&users, 1024))) goto done;
    st.delimiter[0] = r.delim;
    rc = csv_next(&r);
    if (rc < 0) goto done;
    if (rc == 0) {
        rc = collm_error(COLLM_ERR_FORMAT, "%s: empty file", inter_path);
        goto done;
    }
    int n_col = r.n_field, has_header = !o.no_header;
    hdr = collm_malloc((size_t)n_col * sizeof *hdr);
    if (!hdr) {
        rc = COLLM_ERR_NOMEM;
        goto done;
    }
    memcpy(hdr, r.field, (size_t)n_col * sizeof *hdr);
    inter_cols c;
    if ((rc = inter_columns(&r, hdr, n_col, &o, &c))) goto done;
    for (int first = !has_header;; first = 0) {
        if (!first && (rc = csv_next(&r)) <= 0) break;
        if (r.n_field != n_col) {
            rc = collm_error(COLLM_ERR_FORMAT, "%s:%lld: %d fields, expected %d (as the first line)", inter_path,
                             (long long)r.rec_line, r.n_field, n_col);
            goto done;
        }
        int64_t row = st.n_read++;
        char *uk = r.field[c.user], *ik = r.field[c.item];
        if (!*uk || !*ik) {
            rc = collm_error(COLLM_ERR_FORMAT, "%s:%lld: empty %s id", inter_path, (long long)r.rec_line,
                             !*uk ? "user" : "item");
            goto done;
        }
        csv_event e = {0};
        if ((rc = parse_row(&r, hdr, has_header, &c, &o, row, &e))) goto done;
        int32_t item = collm_strmap_get(&it.map, ik, strlen(ik));
        if (item < 0) {
            st.n_unknown_item++;
            continue;
        }
        int32_t u = collm_strmap_get(&users, uk, strlen(uk));
        if (u < 0) {
            if (n_ukey == cap_ukey) {
                size_t cap = cap_ukey ? 2 * cap_ukey : 1024;
                char **nk = realloc(ukey, cap * sizeof *nk);
                if (!nk) {
                    rc = collm_error(COLLM_ERR_NOMEM, "out of memory");
                    goto done;
                }
                ukey = nk, cap_ukey = cap;
            }
            u = (int32_t)n_ukey;
            ukey[n_ukey++] = uk;
            if ((rc = collm_strmap_put(&users, uk, strlen(uk), u))) goto done;
        }
        e.user = u, e.item = item;
        if (n_ev == cap_ev) {
            size_t cap = cap_ev ? 2 * cap_ev : 4096;
            csv_event *ne = realloc(ev, cap * sizeof *ne);
            if (!ne) {
                rc = collm_error(COLLM_ERR_NOMEM, "out of memory");
                goto done;
            }
            ev = ne, cap_ev = cap;
        }
        ev[n_ev++] = e;
    }
    if (rc < 0) goto done;
    rc = COLLM_OK;
    if (n_ev == 0) {
        if (st.n_read)
            rc = collm_error(COLLM_ERR_ARG,
                             "%s: none of its %lld rows names an item of %s (check --item-col / --items-id-col)",
                             inter_path, (long long)st.n_read, items_path);
        else
            rc = collm_error(COLLM_ERR_ARG, "%s: no data rows", inter_path);
        goto done;
    }
    int64_t n = (int64_t)n_ev;
    if (o.kcore > 0) {
        int err = COLLM_OK;
        int64_t kept = kcore(ev, n, o.kcore, (int32_t)n_ukey, (int32_t)it.n, &err);
        if ((rc = err)) goto done;
        st.n_kcore_dropped = n - kept;
        if (kept == 0) {
            rc = collm_error(COLLM_ERR_ARG, "--kcore %d removes every one of the %lld interactions", o.kcore,
                             (long long)n);
            goto done;
        }
        n = kept;
    }
    // Users 1..N by first appearance among the kept rows (still in file
    // order); then sort by (user, time, file order); items 1..M by first
    // appearance in that order.
    new_user = collm_calloc(n_ukey + 1, sizeof *new_user);
    new_item = collm_calloc(it.n + 1, sizeof *new_item);
    raw_user = collm_malloc((n_ukey + 2) * sizeof *raw_user);
    raw_item = collm_malloc((it.n + 2) * sizeof *raw_item);
    out = collm_malloc((size_t)n * sizeof *out);
    if (!new_user || !new_item || !raw_user || !raw_item || !out) {
        rc = COLLM_ERR_NOMEM;
        goto done;
    }
    for (int64_t k = 0; k < n; k++) {
        if (!new_user[ev[k].user]) {
            new_user[ev[k].user] = ++nu;
            raw_user[nu] = ev[k].user;
        }
        ev[k].user = new_user[ev[k].user];
    }
    qsort(ev, (size_t)n, sizeof *ev, cmp_user_time);
    for (int64_t k = 0; k < n; k++) {
        if (!new_item[ev[k].item]) {
            new_item[ev[k].item] = ++ni;
            raw_item[ni] = ev[k].item;
        }
        ev[k].item = new_item[ev[k].item];
    }
    int64_t rows[3];
    if ((rc = assign_splits(ev, n, &o, rows))) goto done;
    int64_t n_small = (int64_t)nearbyint(o.small_frac * (double)rows[1]);
    if (n_small < 1) {
        rc = collm_error(COLLM_ERR_ARG, "valid_small would be empty: round(%g x %lld valid rows) = 0", o.small_frac,
                         (long long)rows[1]);
        goto done;
    }
    for (int64_t k = 0; k < n; k++) {
        out[k].user = ev[k].user, out[k].item = ev[k].item, out[k].timestamp = ev[k].ts;
        out[k].label = ev[k].label, out[k].split = ev[k].split;
        st.n_pos += ev[k].label;
    }
    // no row liked: nothing to train or rank (a --threshold above every
    // rating, or a label column of zeros); nothing is written
    if (st.n_pos == 0) {
        rc = c.rating < 0 ? collm_error(COLLM_ERR_ARG, "no positive row: every label is 0")
                             : collm_error(COLLM_ERR_ARG, "no positive row: no rating reaches the threshold %g", o.threshold);
        goto done;
    }
    // Write: items (0 = padding, empty title), the id maps, the splits.
    if ((rc = collm_mkdir_p(out_dir))) goto done;
    title = collm_calloc((size_t)ni + 1, sizeof *title);
    if (!title) {
        rc = COLLM_ERR_NOMEM;
        goto done;
    }
    title[0] = collm_text_to_utf8("", 0, 1);
    for (int32_t i = 1; i <= ni && title[i - 1]; i++) {
        const char *t = it.title[raw_item[i]];
        title[i] = collm_text_to_utf8(t, strlen(t), it.r.utf8);
    }
    if (!title[ni]) {
        rc = collm_error(COLLM_ERR_NOMEM, "out of memory");
        goto done;
    }
    char empty[1] = "", path[4096];
    collm_rec_items items = {ni + 1, title, NULL, empty};
    snprintf(path, sizeof path, "%s/items.tsv", out_dir);
    if ((rc = collm_rec_items_write(path, &items)) ||
        (rc = write_map(out_dir, "item_map.tsv", "iid\titem\n", it.key, raw_item, ni, it.r.utf8)) ||
        (rc = write_map(out_dir, "user_map.tsv", "uid\tuser\n", ukey, raw_user, nu, r.utf8)) ||
        (rc = collm_rec_write_ood_splits(out_dir, out, n, o.small_frac, o.seed)))
        goto done;
    // (item_noun.txt too: the command writes its own after this; a library
    // caller without one gets the default noun, not an earlier dataset's)
    static const char *const written[] = {"items.tsv", "item_map.tsv", "user_map.tsv", "train.tsv", "valid.tsv",
                                          "test.tsv", "valid_small.tsv", NULL};
    if ((rc = collm_rec_remove_stale(out_dir, written))) goto done;
    st.n_users = nu, st.n_items = ni;
    for (int k = 0; k < 3; k++) st.n_rows[k] = rows[k];
    st.n_rows[3] = n_small;
    if (stats) *stats = st;
done:
    if (title)
        for (int32_t i = 0; i <= ni; i++) free(title[i]);
    free(title);
    free(out), free(new_user), free(new_item), free(raw_user), free(raw_item);
    free(ev), free(ukey), free(hdr);
    collm_strmap_free(&users);
    csv_close(&r);
    item_table_free(&it);
    return rc;
}
