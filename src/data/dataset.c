// TSV dataset loaders (see include/collm/dataset.h and docs/data.md).
//
// Format (shared/data/README.md): UTF-8, LF line ends, one header line naming
// the columns (found here by name, unknown columns are skipped), TAB-separated
// fields, every row has the header's field count. Integers are plain decimal
// ASCII (no sign, no spaces). A list field is comma-separated integers, empty
// field = empty list. Text fields unescape exactly \\ \t \n \r; any other
// backslash sequence, and a raw CR, is an error. A missing newline after the
// last row is accepted. Every error names file, line and column.
//
// Speed: the file is mmap'd once; rows are split with memchr and integers are
// parsed by hand. Arrays are sized from a first counting pass (newlines and
// commas bound the row and history counts), so there is no per-row realloc.
#include "collm/dataset.h"

#include "collm/error.h"
#include "collm/fileio.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define TSV_MAX_COLS 32
// Item ids must stay below rows x ITEMS_ID_SLACK + ITEMS_ID_BASE (see collm_rec_items_load).
#define ITEMS_ID_SLACK 64
#define ITEMS_ID_BASE 4096
// Users (and, without an item table, items) of one split file must stay below
// rows x ITEMS_ID_SLACK + SPLIT_ID_BASE: tables (metrics, CF models) are sized
// by the largest id. The base is generous (a small test split may hold raw ids
// of a big dataset, bookcrossing: 2427 rows, users up to 278849); the dataset
// then bounds its user table by all its rows (ITEMS_ID_BASE).
#define SPLIT_ID_BASE (1 << 20)

// One mapped TSV file with its parsed header.
typedef struct {
    const char *path;
    collm_mapped_file map;
    const char *p;   // cursor: start of the next row
    const char *end; // map.data + map.size
    int n_cols;
    char col_name[TSV_MAX_COLS][32];
    int64_t line; // line number of the row last returned (header = 1)
    // fields of the current row
    const char *field[TSV_MAX_COLS];
    size_t field_len[TSV_MAX_COLS];
} tsv_file;

static int tsv_open(tsv_file *t, const char *path) {
    memset(t, 0, sizeof *t);
    t->path = path;
    int rc = collm_map_file(path, &t->map);
    if (rc != COLLM_OK) return rc;
    // an empty file maps to NULL: no pointer arithmetic on it
    if (t->map.size == 0) return collm_error(COLLM_ERR_FORMAT, "%s: line 1: empty file (no header)", path);
    const char *data = (const char *)t->map.data;
    t->p = data;
    t->end = data + t->map.size;
    if (t->map.size >= 3 && (unsigned char)data[0] == 0xEF && (unsigned char)data[1] == 0xBB &&
        (unsigned char)data[2] == 0xBF)
        return collm_error(COLLM_ERR_FORMAT, "%s: line 1: UTF-8 byte-order mark not allowed", path);
    const char *nl = memchr(data, '\n', t->map.size);
    const char *hend = nl ? nl : t->end;
    const char *f = data;
    for (;;) {
        const char *tab = memchr(f, '\t', (size_t)(hend - f));
        const char *fe = tab ? tab : hend;
        if (t->n_cols == TSV_MAX_COLS)
            return collm_error(COLLM_ERR_FORMAT, "%s: line 1: more than %d columns", path, TSV_MAX_COLS);
        size_t len = (size_t)(fe - f);
        if (len == 0 || len >= sizeof t->col_name[0])
            return collm_error(COLLM_ERR_FORMAT, "%s: line 1: column %d: empty or too long column name", path,
                               t->n_cols + 1);
        for (size_t i = 0; i < len; i++)
            if (f[i] == '\r')
                return collm_error(COLLM_ERR_FORMAT, "%s: line 1: carriage return in header (CRLF file?)", path);
        memcpy(t->col_name[t->n_cols], f, len);
        t->col_name[t->n_cols][len] = '\0';
        for (int c = 0; c < t->n_cols; c++)
            if (strcmp(t->col_name[c], t->col_name[t->n_cols]) == 0)
                return collm_error(COLLM_ERR_FORMAT, "%s: line 1: duplicate column '%s'", path, t->col_name[c]);
        t->n_cols++;
        if (!tab) break;
        f = tab + 1;
    }
    t->p = nl ? nl + 1 : t->end;
    t->line = 1;
    return COLLM_OK;
}

static void tsv_close(tsv_file *t) { collm_unmap_file(&t->map); }

// Column index of `name`, or -1.
static int tsv_col(const tsv_file *t, const char *name) {
    for (int c = 0; c < t->n_cols; c++)
        if (strcmp(t->col_name[c], name) == 0) return c;
    return -1;
}

static int tsv_require_col(const tsv_file *t, const char *name, int *out) {
    *out = tsv_col(t, name);
    if (*out < 0) return collm_error(COLLM_ERR_FORMAT, "%s: line 1: missing column '%s'", t->path, name);
    return COLLM_OK;
}

// Splits the next row into fields. Returns 1 on a row, 0 at end of file, or a
// negative error code.
static int tsv_next(tsv_file *t) {
    if (t->p >= t->end) return 0;
    t->line++;
    const char *nl = memchr(t->p, '\n', (size_t)(t->end - t->p));
    const char *lend = nl ? nl : t->end;
    const char *f = t->p;
    int n = 0;
    for (;;) {
        const char *tab = memchr(f, '\t', (size_t)(lend - f));
        const char *fe = tab ? tab : lend;
        if (n < TSV_MAX_COLS) {
            t->field[n] = f;
            t->field_len[n] = (size_t)(fe - f);
        }
        n++;
        if (!tab) break;
        f = tab + 1;
    }
    if (n != t->n_cols)
        return collm_error(COLLM_ERR_FORMAT, "%s: line %lld: expected %d fields (header), found %d", t->path,
                           (long long)t->line, t->n_cols, n);
    t->p = nl ? nl + 1 : t->end;
    return 1;
}

static int tsv_field_error(const tsv_file *t, int col, const char *what) {
    return collm_error(COLLM_ERR_FORMAT, "%s: line %lld: column '%s': %s", t->path, (long long)t->line,
                       t->col_name[col], what);
}

// Parses a non-negative decimal integer <= max from s[0..len). Returns
// COLLM_OK or an error naming file, line, column (and list element when
// elem >= 0).
static int parse_uint(const tsv_file *t, int col, int64_t elem, const char *s, size_t len, uint64_t max,
                      uint64_t *out) {
    const char *why = NULL;
    uint64_t v = 0;
    if (len == 0) why = "empty integer";
    else if (s[0] == '-') why = "negative value";
    else {
        for (size_t i = 0; i < len; i++) {
            unsigned d = (unsigned char)s[i] - '0';
            if (d > 9) {
                why = "not a decimal integer";
                break;
            }
            if (d > max || v > (max - d) / 10) { // d > max: max - d would wrap (a one-digit max)
                why = "value out of range";
                break;
            }
            v = v * 10 + d;
        }
    }
    if (why) {
        int shown = len > 40 ? 40 : (int)len;
        if (elem >= 0)
            return collm_error(COLLM_ERR_FORMAT, "%s: line %lld: column '%s': element %lld: %s ('%.*s', max %llu)",
                               t->path, (long long)t->line, t->col_name[col], (long long)elem + 1, why, shown, s,
                               (unsigned long long)max);
        return collm_error(COLLM_ERR_FORMAT, "%s: line %lld: column '%s': %s ('%.*s', max %llu)", t->path,
                           (long long)t->line, t->col_name[col], why, shown, s, (unsigned long long)max);
    }
    *out = v;
    return COLLM_OK;
}

// Unescapes field `col` of the current row into dst (room for its length +
// 1); returns the unescaped length or a negative error.
static int64_t unescape_field(const tsv_file *t, int col, char *dst) {
    const char *s = t->field[col];
    size_t len = t->field_len[col], o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '\r') return tsv_field_error(t, col, "raw carriage return (CRLF file?)");
        if (c == '\\') {
            if (i + 1 >= len) return tsv_field_error(t, col, "backslash at end of field (bad escape)");
            char e = s[++i];
            if (e == '\\') c = '\\';
            else if (e == 't') c = '\t';
            else if (e == 'n') c = '\n';
            else if (e == 'r') c = '\r';
            else {
                char msg[64];
                snprintf(msg, sizeof msg, "bad escape '\\%c' at byte %zu (only \\\\ \\t \\n \\r)", e, i);
                return tsv_field_error(t, col, msg);
            }
        }
        dst[o++] = c;
    }
    dst[o] = '\0';
    return (int64_t)o;
}

// ---------------------------------------------------------------- items

void collm_rec_items_free(collm_rec_items *items) {
    if (!items) return;
    free(items->title);
    free(items->author);
    free(items->storage);
    free(items);
}

collm_rec_items *collm_rec_items_load(const char *path) {
    tsv_file t;
    collm_rec_items *items = NULL;
    int32_t *row_id = NULL;
    int64_t *row_title = NULL, *row_author = NULL;
    int rc = tsv_open(&t, path);
    if (rc != COLLM_OK) goto fail;
    int c_iid, c_title;
    if ((rc = tsv_require_col(&t, "iid", &c_iid)) || (rc = tsv_require_col(&t, "title", &c_title))) goto fail;
    int c_author = tsv_col(&t, "author");

    int64_t max_rows = 1;
    for (const char *q = t.p; q < t.end; q++) max_rows += *q == '\n';
    items = collm_calloc(1, sizeof *items);
    row_id = collm_malloc((size_t)max_rows * sizeof *row_id);
    row_title = collm_malloc((size_t)max_rows * sizeof *row_title);
    row_author = collm_malloc((size_t)max_rows * sizeof *row_author);
    // storage[0] is the shared "" for ids without a row; unescaped text is
    // never longer than the raw file.
    if (items) items->storage = collm_malloc(t.map.size + 2);
    if (!items || !row_id || !row_title || !row_author || !items->storage) {
        rc = COLLM_ERR_NOMEM;
        goto fail;
    }
    items->storage[0] = '\0';
    int64_t used = 1, n_rows = 0;
    int32_t max_id = -1;
    for (;;) {
        int r = tsv_next(&t);
        if (r < 0) {
            rc = r;
            goto fail;
        }
        if (r == 0) break;
        uint64_t id;
        if ((rc = parse_uint(&t, c_iid, -1, t.field[c_iid], t.field_len[c_iid], INT32_MAX - 1, &id))) goto fail;
        // The table is indexed by id, so ids far beyond the row count would
        // size it by the largest id (a 30-byte file with id 2147483646 asked
        // for 16 GiB). Sparse ids are fine within ITEMS_ID_SLACK per row
        // (bookcrossing: 11150 rows, ids up to 271119).
        if (id >= (uint64_t)max_rows * ITEMS_ID_SLACK + ITEMS_ID_BASE) {
            char msg[160];
            snprintf(msg, sizeof msg, "item id %llu is far beyond the table's %lld rows (ids must stay below %lld: remap them)",
                     (unsigned long long)id, (long long)max_rows, (long long)max_rows * ITEMS_ID_SLACK + ITEMS_ID_BASE);
            rc = tsv_field_error(&t, c_iid, msg);
            goto fail;
        }
        row_id[n_rows] = (int32_t)id;
        if ((int32_t)id > max_id) max_id = (int32_t)id;
        int64_t len = unescape_field(&t, c_title, items->storage + used);
        if (len < 0) {
            rc = (int)len;
            goto fail;
        }
        row_title[n_rows] = used;
        used += len + 1;
        row_author[n_rows] = 0;
        if (c_author >= 0) {
            len = unescape_field(&t, c_author, items->storage + used);
            if (len < 0) {
                rc = (int)len;
                goto fail;
            }
            row_author[n_rows] = used;
            used += len + 1;
        }
        n_rows++;
    }
    items->n = max_id + 1;
    items->title = collm_malloc((size_t)(items->n ? items->n : 1) * sizeof(char *));
    if (c_author >= 0) items->author = collm_malloc((size_t)(items->n ? items->n : 1) * sizeof(char *));
    if (!items->title || (c_author >= 0 && !items->author)) {
        rc = COLLM_ERR_NOMEM;
        goto fail;
    }
    for (int32_t i = 0; i < items->n; i++) {
        items->title[i] = NULL; // marks "no row yet" for the duplicate check
        if (items->author) items->author[i] = items->storage;
    }
    for (int64_t r = 0; r < n_rows; r++) {
        int32_t id = row_id[r];
        if (items->title[id]) {
            rc = collm_error(COLLM_ERR_FORMAT, "%s: line %lld: column 'iid': duplicate item id %d", path,
                             (long long)r + 2, id);
            goto fail;
        }
        items->title[id] = items->storage + row_title[r];
        if (items->author) items->author[id] = items->storage + row_author[r];
    }
    for (int32_t i = 0; i < items->n; i++)
        if (!items->title[i]) items->title[i] = items->storage;
    free(row_id);
    free(row_title);
    free(row_author);
    tsv_close(&t);
    return items;
fail:
    (void)rc;
    free(row_id);
    free(row_title);
    free(row_author);
    collm_rec_items_free(items);
    tsv_close(&t);
    return NULL;
}

int collm_rec_items_grow(collm_rec_items *items, int32_t n) {
    if (!items) return collm_error(COLLM_ERR_ARG, "collm_rec_items_grow: no item table");
    if (n <= items->n) return COLLM_OK;
    char **title = realloc(items->title, (size_t)n * sizeof(char *));
    if (!title) return collm_error(COLLM_ERR_NOMEM, "out of memory growing the item table to %d", n);
    items->title = title;
    if (items->author) {
        char **author = realloc(items->author, (size_t)n * sizeof(char *));
        if (!author) return collm_error(COLLM_ERR_NOMEM, "out of memory growing the item table to %d", n);
        items->author = author;
    }
    for (int32_t i = items->n; i < n; i++) {
        items->title[i] = items->storage; // ""
        if (items->author) items->author[i] = items->storage;
    }
    items->n = n;
    return COLLM_OK;
}

// ---------------------------------------------------------------- splits

void collm_rec_split_free(collm_rec_split *s) {
    if (!s) return;
    free(s->path);
    free(s->user);
    free(s->item);
    free(s->label);
    free(s->timestamp);
    free(s->not_cold);
    free(s->his_offset);
    free(s->his);
    free(s->his_label);
    free(s);
}

collm_rec_split collm_rec_split_rows(const collm_rec_split *s, int64_t begin, int64_t end) {
    collm_rec_split v = *s;
    begin = begin < 0 ? 0 : begin > s->n ? s->n : begin;
    end = end < begin ? begin : end > s->n ? s->n : end;
    v.n = end - begin;
    // per-row arrays start at begin; the history stays whole (his_offset indexes it)
    v.user = s->user ? s->user + begin : NULL;
    v.item = s->item ? s->item + begin : NULL;
    v.label = s->label ? s->label + begin : NULL;
    v.timestamp = s->timestamp ? s->timestamp + begin : NULL;
    v.not_cold = s->not_cold ? s->not_cold + begin : NULL;
    v.his_offset = s->his_offset ? s->his_offset + begin : NULL;
    return v;
}

// Parses a comma-separated list of integers <= max into out[]; returns the
// count or a negative error.
static int64_t parse_list(const tsv_file *t, int col, uint64_t max, int32_t *out) {
    const char *s = t->field[col];
    size_t len = t->field_len[col];
    if (len == 0) return 0;
    int64_t n = 0;
    size_t a = 0;
    for (;;) {
        const char *comma = memchr(s + a, ',', len - a);
        size_t b = comma ? (size_t)(comma - s) : len;
        uint64_t v;
        int rc = parse_uint(t, col, n, s + a, b - a, max, &v);
        if (rc) return rc;
        out[n++] = (int32_t)v;
        if (!comma) break;
        a = b + 1;
    }
    return n;
}

static int check_01(const tsv_file *t, int col, uint64_t v) {
    if (v > 1) return tsv_field_error(t, col, "must be 0 or 1");
    return COLLM_OK;
}

static void item_range_error(const tsv_file *t, int col, int64_t elem, uint64_t v, const collm_rec_items *items) {
    char msg[160];
    if (!items) {
        if (elem >= 0)
            snprintf(msg, sizeof msg, "element %lld: item id %llu is far beyond the file's rows (remap the ids)",
                     (long long)elem + 1, (unsigned long long)v);
        else
            snprintf(msg, sizeof msg, "item id %llu is far beyond the file's rows (remap the ids)", (unsigned long long)v);
        tsv_field_error(t, col, msg);
        return;
    }
    if (elem >= 0)
        snprintf(msg, sizeof msg, "element %lld: item id %llu outside the item table (ids 0..%d)", (long long)elem + 1,
                 (unsigned long long)v, items->n - 1);
    else
        snprintf(msg, sizeof msg, "item id %llu outside the item table (ids 0..%d)", (unsigned long long)v,
                 items->n - 1);
    tsv_field_error(t, col, msg);
}

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = collm_malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

collm_rec_split *collm_rec_split_load(const char *path, const collm_rec_items *items) {
    if (!path) {
        collm_error(COLLM_ERR_ARG, "collm_rec_split_load: no path");
        return NULL;
    }
    tsv_file t;
    collm_rec_split *s = NULL;
    int32_t *tmp_label = NULL;
    int rc = tsv_open(&t, path);
    if (rc != COLLM_OK) goto fail;
    int c_uid, c_iid, c_label, c_his;
    if ((rc = tsv_require_col(&t, "uid", &c_uid)) || (rc = tsv_require_col(&t, "iid", &c_iid)) ||
        (rc = tsv_require_col(&t, "label", &c_label)) || (rc = tsv_require_col(&t, "his", &c_his)))
        goto fail;
    int c_ts = tsv_col(&t, "timestamp"), c_nc = tsv_col(&t, "not_cold"), c_hl = tsv_col(&t, "his_label");

    // Counting pass: rows <= newlines + 1; history entries <= commas + rows.
    int64_t max_rows = 1, commas = 0;
    for (const char *q = t.p; q < t.end; q++) {
        max_rows += *q == '\n';
        commas += *q == ',';
    }
    int64_t his_cap = commas + max_rows;
    size_t nr = (size_t)max_rows;
    s = collm_calloc(1, sizeof *s);
    if (!s) goto fail;
    s->path = dup_str(path);
    s->user = collm_malloc(nr * sizeof *s->user);
    s->item = collm_malloc(nr * sizeof *s->item);
    s->label = collm_malloc(nr * sizeof *s->label);
    s->timestamp = collm_calloc(nr, sizeof *s->timestamp);
    s->not_cold = collm_malloc(nr * sizeof *s->not_cold);
    s->his_offset = collm_malloc((nr + 1) * sizeof *s->his_offset);
    s->his = collm_malloc((size_t)his_cap * sizeof *s->his);
    if (c_hl >= 0) {
        s->his_label = collm_malloc((size_t)his_cap * sizeof *s->his_label);
        tmp_label = collm_malloc((size_t)his_cap * sizeof *tmp_label);
    }
    if (!s->path || !s->user || !s->item || !s->label || !s->timestamp || !s->not_cold || !s->his_offset ||
        !s->his || (c_hl >= 0 && (!s->his_label || !tmp_label)))
        goto fail;

    // An item id must index the item table; without a table, the bound on ids
    // (history entries count as rows: each may name a new item).
    uint64_t max_item = items ? (uint64_t)items->n - 1
                              : (uint64_t)(max_rows + his_cap) * ITEMS_ID_SLACK + SPLIT_ID_BASE - 1;
    uint64_t max_uid = (uint64_t)max_rows * ITEMS_ID_SLACK + SPLIT_ID_BASE - 1;
    int no_items = items && items->n == 0;
    int64_t n = 0, nh = 0;
    int32_t max_u = -1, max_i = -1;
    s->his_offset[0] = 0;
    for (;;) {
        int r = tsv_next(&t);
        if (r < 0) goto fail;
        if (r == 0) break;
        uint64_t v;
        if (parse_uint(&t, c_uid, -1, t.field[c_uid], t.field_len[c_uid], INT32_MAX - 1, &v)) goto fail;
        if (v > max_uid) {
            char msg[160];
            snprintf(msg, sizeof msg, "user id %llu is far beyond the file's %lld rows (ids must stay below %llu: remap them)",
                     (unsigned long long)v, (long long)max_rows, (unsigned long long)max_uid + 1);
            tsv_field_error(&t, c_uid, msg);
            goto fail;
        }
        s->user[n] = (int32_t)v;
        if ((int32_t)v > max_u) max_u = (int32_t)v;
        if (no_items) {
            tsv_field_error(&t, c_iid, "item table is empty");
            goto fail;
        }
        if (parse_uint(&t, c_iid, -1, t.field[c_iid], t.field_len[c_iid], INT32_MAX - 1, &v)) goto fail;
        if (v > max_item) {
            item_range_error(&t, c_iid, -1, v, items);
            goto fail;
        }
        s->item[n] = (int32_t)v;
        if ((int32_t)v > max_i) max_i = (int32_t)v;
        if (parse_uint(&t, c_label, -1, t.field[c_label], t.field_len[c_label], 9, &v) || check_01(&t, c_label, v))
            goto fail;
        s->label[n] = (int8_t)v;
        if (c_ts >= 0) {
            if (parse_uint(&t, c_ts, -1, t.field[c_ts], t.field_len[c_ts], INT64_MAX, &v)) goto fail;
            s->timestamp[n] = (int64_t)v;
        }
        s->not_cold[n] = 1;
        if (c_nc >= 0) {
            if (parse_uint(&t, c_nc, -1, t.field[c_nc], t.field_len[c_nc], 9, &v) || check_01(&t, c_nc, v))
                goto fail;
            s->not_cold[n] = (int8_t)v;
        }
        int64_t k = parse_list(&t, c_his, INT32_MAX - 1, s->his + nh);
        if (k < 0) goto fail;
        for (int64_t j = 0; j < k; j++) {
            if ((uint64_t)s->his[nh + j] > max_item) {
                item_range_error(&t, c_his, j, (uint64_t)s->his[nh + j], items);
                goto fail;
            }
            if (s->his[nh + j] > max_i) max_i = s->his[nh + j];
        }
        if (c_hl >= 0) {
            int64_t kl = parse_list(&t, c_hl, 9, tmp_label);
            if (kl < 0) goto fail;
            if (kl != k) {
                char msg[96];
                snprintf(msg, sizeof msg, "%lld labels for %lld history items", (long long)kl, (long long)k);
                tsv_field_error(&t, c_hl, msg);
                goto fail;
            }
            for (int64_t j = 0; j < k; j++) {
                if (tmp_label[j] > 1) {
                    tsv_field_error(&t, c_hl, "labels must be 0 or 1");
                    goto fail;
                }
                s->his_label[nh + j] = (int8_t)tmp_label[j];
            }
        }
        nh += k;
        n++;
        s->his_offset[n] = nh;
    }
    s->n = n;
    s->max_user = max_u;
    s->max_item = max_i;
    free(tmp_label);
    tsv_close(&t);
    return s;
fail:
    free(tmp_label);
    collm_rec_split_free(s);
    tsv_close(&t);
    return NULL;
}

// ---------------------------------------------------------------- dataset

void collm_rec_dataset_free(collm_rec_dataset *ds) {
    if (!ds) return;
    free(ds->dir);
    collm_rec_items_free(ds->items);
    collm_rec_split_free(ds->train);
    collm_rec_split_free(ds->valid);
    collm_rec_split_free(ds->valid_small);
    free(ds);
}

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

// ---------------------------------------------------------------------------
// item genres (item_map.tsv)

void collm_rec_item_genres_free(collm_rec_item_genres *g) {
    if (!g) return;
    for (int32_t k = 0; g->name && k < g->n_names; k++) free(g->name[k]);
    free(g->name);
    free(g->offset);
    free(g->genre);
    free(g);
}

// Index of name[0..len) in g's names, added when new; -1 on out of memory.
static int32_t genre_index(collm_rec_item_genres *g, int32_t *cap, const char *name, size_t len) {
    for (int32_t k = 0; k < g->n_names; k++)
        if (strlen(g->name[k]) == len && memcmp(g->name[k], name, len) == 0) return k;
    if (g->n_names == *cap) {
        int32_t nc = *cap ? 2 * *cap : 16;
        char **grown = realloc(g->name, (size_t)nc * sizeof *grown);
        if (!grown) return -1;
        g->name = grown;
        *cap = nc;
    }
    char *copy = collm_malloc(len + 1);
    if (!copy) return -1;
    memcpy(copy, name, len);
    copy[len] = '\0';
    g->name[g->n_names] = copy;
    return g->n_names++;
}

int collm_rec_item_genres_load(const char *path, int32_t n_items, collm_rec_item_genres **out) {
    if (!path || !out || n_items < 1) return collm_error(COLLM_ERR_ARG, "collm_rec_item_genres_load: bad arguments");
    *out = NULL;
    if (!file_exists(path)) return COLLM_OK;
    tsv_file t;
    int rc = tsv_open(&t, path);
    if (rc != COLLM_OK) return rc;
    int c_iid, c_genres = tsv_col(&t, "genres");
    if ((rc = tsv_require_col(&t, "iid", &c_iid)) || c_genres < 0) {
        tsv_close(&t);
        return rc;
    }
    // pairs (item, genre) bounded by the file's '|' and rows; then one CSR
    int64_t cap = 1;
    for (const char *q = t.p; q < t.end; q++) cap += *q == '|' || *q == '\n';
    collm_rec_item_genres *g = collm_calloc(1, sizeof *g);
    int32_t *pair_item = collm_malloc((size_t)cap * sizeof *pair_item), *pair_genre = collm_malloc((size_t)cap * sizeof *pair_genre);
    int8_t *listed = collm_calloc((size_t)n_items, 1);
    char *buf = collm_malloc((size_t)(t.end - t.p) + 1); // one unescaped field
    int32_t name_cap = 0;
    int64_t n_pairs = 0;
    rc = g && pair_item && pair_genre && listed && buf ? COLLM_OK : COLLM_ERR_NOMEM;
    if (g) g->n_items = n_items;
    while (rc == COLLM_OK) {
        int r = tsv_next(&t);
        if (r <= 0) {
            rc = r < 0 ? r : COLLM_OK;
            break;
        }
        uint64_t item;
        if ((rc = parse_uint(&t, c_iid, -1, t.field[c_iid], t.field_len[c_iid], (uint64_t)n_items - 1, &item))) break;
        if (listed[item]) {
            rc = tsv_field_error(&t, c_iid, "item listed twice");
            break;
        }
        listed[item] = 1;
        int64_t len = unescape_field(&t, c_genres, buf);
        if (len < 0) {
            rc = (int)len;
            break;
        }
        if (len == 0) continue; // no genres
        const int64_t first = n_pairs;
        for (const char *name = buf;;) {
            const char *bar = strchr(name, '|');
            size_t n = bar ? (size_t)(bar - name) : strlen(name);
            if (n == 0) {
                rc = tsv_field_error(&t, c_genres, "empty genre name (two '|' in a row, or one at an end)");
                break;
            }
            int32_t k = genre_index(g, &name_cap, name, n);
            if (k < 0) {
                rc = collm_error(COLLM_ERR_NOMEM, "%s: out of memory at line %lld", path, (long long)t.line);
                break;
            }
            int seen = 0;
            for (int64_t j = first; j < n_pairs && !seen; j++) seen = pair_genre[j] == k;
            if (!seen) {
                pair_item[n_pairs] = (int32_t)item;
                pair_genre[n_pairs++] = k;
            }
            if (!bar) break;
            name = bar + 1;
        }
    }
    if (rc == COLLM_OK) {
        g->offset = collm_calloc((size_t)n_items + 1, sizeof *g->offset);
        g->genre = collm_malloc((size_t)(n_pairs > 0 ? n_pairs : 1) * sizeof *g->genre);
        if (!g->offset || !g->genre) rc = COLLM_ERR_NOMEM;
    }
    if (rc == COLLM_OK) { // counting sort by item, each item's genres in file order
        for (int64_t j = 0; j < n_pairs; j++) g->offset[pair_item[j] + 1]++;
        for (int32_t i = 0; i < n_items; i++) g->offset[i + 1] += g->offset[i];
        int64_t *fill = collm_malloc((size_t)n_items * sizeof *fill);
        if (!fill) rc = COLLM_ERR_NOMEM;
        for (int32_t i = 0; fill && i < n_items; i++) fill[i] = g->offset[i];
        for (int64_t j = 0; fill && j < n_pairs; j++) g->genre[fill[pair_item[j]]++] = pair_genre[j];
        free(fill);
    }
    tsv_close(&t);
    free(pair_item);
    free(pair_genre);
    free(listed);
    free(buf);
    if (rc != COLLM_OK) {
        collm_rec_item_genres_free(g);
        return rc;
    }
    *out = g;
    return COLLM_OK;
}

static const char *const split_names[] = {"train", "valid", "valid_small", "test"};

#define NOUN_CAP 32 // sizeof collm_rec_dataset.item_noun

// 1..NOUN_CAP-1 bytes of letters, digits, spaces, '-' or non-ASCII (UTF-8) bytes.
static int noun_ok(const char *p, size_t n) {
    int ok = n >= 1 && n < NOUN_CAP;
    for (size_t i = 0; ok && i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == ' ' || c == '-' ||
             c >= 0x80;
    }
    return ok;
}

static int write_noun_fn(FILE *f, void *ctx) {
    const char *const *nouns = ctx;
    fprintf(f, "%s\n%s\n", nouns[0], nouns[1]);
    return COLLM_OK;
}

int collm_rec_write_item_noun(const char *dir, const char *spec) {
    char nouns[2][NOUN_CAP] = {"", ""};
    const char *comma = strchr(spec, ',');
    size_t n0 = comma ? (size_t)(comma - spec) : strlen(spec), n1 = comma ? strlen(comma + 1) : n0 + 1;
    if (!noun_ok(spec, n0) || (comma && !noun_ok(comma + 1, n1)) || (!comma && n1 >= NOUN_CAP))
        return collm_error(COLLM_ERR_ARG,
                           "item noun '%s': give WORD or WORD,PLURAL, each 1..%d letters, digits, spaces or '-' "
                           "(e.g. song or person,people)",
                           spec, NOUN_CAP - 1);
    memcpy(nouns[0], spec, n0);
    if (comma) memcpy(nouns[1], comma + 1, n1);
    else snprintf(nouns[1], sizeof nouns[1], "%.30ss", nouns[0]);
    if (!dir) return COLLM_OK;
    const char *ctx[2] = {nouns[0], nouns[1]};
    char path[4096];
    snprintf(path, sizeof path, "%s/item_noun.txt", dir);
    int rc = collm_write_atomic(path, write_noun_fn, (void *)ctx);
    return rc ? collm_error_prefix(rc, "%s", path) : COLLM_OK;
}

// DIR/item_noun.txt: line 1 the singular, optional line 2 the plural (each
// as noun_ok says).
static int load_item_noun(collm_rec_dataset *ds, const char *path) {
    char *text;
    size_t size;
    if (collm_read_file(path, &text, &size) != COLLM_OK) return COLLM_ERR_IO;
    char *dst[2] = {ds->item_noun, ds->item_nouns};
    const char *p = text, *end = text + size;
    int rc = COLLM_OK;
    for (int line = 0; line < 2 && rc == COLLM_OK; line++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl ? nl : end;
        size_t n = (size_t)(e - p);
        if (n && p[n - 1] == '\r') n--;
        if (line == 1 && n == 0) break; // no plural given
        if (!noun_ok(p, n)) {
            rc = collm_error(COLLM_ERR_FORMAT,
                             "%s: line %d: the item noun must be 1..%zu letters, digits, spaces or '-' (e.g. \"song\")",
                             path, line + 1, sizeof ds->item_noun - 1);
            break;
        }
        memcpy(dst[line], p, n);
        dst[line][n] = '\0';
        if (!nl) break;
        p = nl + 1;
    }
    free(text);
    if (rc == COLLM_OK && !ds->item_nouns[0]) {
        if (strlen(ds->item_noun) + 2 > sizeof ds->item_nouns)
            return collm_error(COLLM_ERR_FORMAT, "%s: the item noun is too long to add an 's'; give the plural on line 2",
                               path);
        snprintf(ds->item_nouns, sizeof ds->item_nouns, "%.30ss", ds->item_noun); // length checked above
    }
    return rc;
}

collm_rec_dataset *collm_rec_dataset_load(const char *dir) {
    if (!dir) {
        collm_error(COLLM_ERR_ARG, "collm_rec_dataset_load: no folder");
        return NULL;
    }
    char path[4096];
    collm_rec_dataset *ds = collm_calloc(1, sizeof *ds);
    if (!ds) return NULL;
    ds->dir = dup_str(dir);
    if (!ds->dir) goto fail;
    snprintf(path, sizeof path, "%s/items.tsv", dir);
    ds->items = collm_rec_items_load(path);
    if (!ds->items) goto fail;
    ds->is_book = ds->items->author != NULL;
    snprintf(path, sizeof path, "%s/item_noun.txt", dir);
    if (file_exists(path)) {
        if (load_item_noun(ds, path) != COLLM_OK) goto fail;
    } else {
        snprintf(ds->item_noun, sizeof ds->item_noun, "%s", ds->is_book ? "book" : "movie");
        snprintf(ds->item_nouns, sizeof ds->item_nouns, "%s", ds->is_book ? "books" : "movies");
    }

    // Books (bookcrossing): items.tsv lists only the ids with a known title,
    // so splits are read without the table check and the table then grows to
    // max id seen + 1 with "" titles. Movies: items.tsv is complete and an id
    // outside it is an error.
    const collm_rec_items *check = ds->is_book ? NULL : ds->items;
    collm_rec_split **slot[4] = {&ds->train, &ds->valid, &ds->valid_small, NULL};
    int32_t max_user = -1, max_item = ds->items->n - 1;
    int64_t total_rows = 0;
    char user_file[4096] = "", item_file[4096] = "";
    for (int k = 0; k < 4; k++) {
        snprintf(path, sizeof path, "%s/%s.tsv", dir, split_names[k]);
        if (!file_exists(path)) {
            if (k == 0) {
                collm_error(COLLM_ERR_IO, "%s: missing (a dataset needs items.tsv and train.tsv)", path);
                goto fail;
            }
            continue;
        }
        // test.tsv is read only to size the user and item tables (CoLLM
        // sizes them as max id over all splits + 1); it is not kept.
        collm_rec_split *s = collm_rec_split_load(path, check);
        if (!s) goto fail;
        if (s->max_user > max_user) max_user = s->max_user, snprintf(user_file, sizeof user_file, "%s", path);
        if (s->max_item > max_item) max_item = s->max_item, snprintf(item_file, sizeof item_file, "%s", path);
        total_rows += s->n + (s->his_offset ? s->his_offset[s->n] : 0);
        if (slot[k]) *slot[k] = s;
        else collm_rec_split_free(s);
    }
    // The user table (and a book table grown from the splits) is sized by the
    // largest id: it must stay within ITEMS_ID_SLACK ids per row of the whole
    // dataset (history entries included), or a tiny file asks for gigabytes.
    int64_t id_cap = (total_rows + ds->items->n) * ITEMS_ID_SLACK + ITEMS_ID_BASE;
    if (max_user >= id_cap) {
        collm_error(COLLM_ERR_FORMAT,
                    "%s: user id %d is far beyond the dataset's %lld rows (user ids must stay below %lld: remap them)",
                    user_file, max_user, (long long)total_rows, (long long)id_cap);
        goto fail;
    }
    if (ds->is_book && max_item >= id_cap) {
        collm_error(COLLM_ERR_FORMAT,
                    "%s: item id %d is far beyond the dataset's %lld rows (item ids must stay below %lld: remap them)",
                    item_file, max_item, (long long)total_rows, (long long)id_cap);
        goto fail;
    }
    if (ds->is_book && collm_rec_items_grow(ds->items, max_item + 1) != COLLM_OK) goto fail;
    ds->n_users = max_user + 1;
    ds->n_items = ds->items->n;
    return ds;
fail:
    collm_rec_dataset_free(ds);
    return NULL;
}

collm_rec_split *collm_rec_dataset_load_split(const collm_rec_dataset *ds, const char *name_or_path) {
    char path[4096];
    const char *p = name_or_path;
    for (int k = 0; k < 4; k++)
        if (strcmp(name_or_path, split_names[k]) == 0) {
            snprintf(path, sizeof path, "%s/%s.tsv", ds->dir, name_or_path);
            p = path;
        }
    return collm_rec_split_load(p, ds->items);
}

int collm_rec_dataset_set_train(collm_rec_dataset *ds, const char *list) {
    if (!ds || !list) return collm_error(COLLM_ERR_ARG, "collm_rec_dataset_set_train: NULL argument");
    enum { MAX_PARTS = 16 };
    char buf[4096];
    if (strlen(list) >= sizeof buf) return collm_error(COLLM_ERR_ARG, "the list of training splits is too long");
    strcpy(buf, list);
    const char *name[MAX_PARTS];
    int n = 0;
    for (char *tok = buf, *next; tok; tok = next) {
        next = strchr(tok, ',');
        if (next) *next++ = 0;
        if (!*tok) return collm_error(COLLM_ERR_ARG, "training splits '%s': an empty name", list);
        if (n == MAX_PARTS) return collm_error(COLLM_ERR_ARG, "training splits '%s': at most %d", list, MAX_PARTS);
        for (int k = 0; k < n; k++)
            if (strcmp(name[k], tok) == 0) return collm_error(COLLM_ERR_ARG, "training splits '%s': %s twice", list, tok);
        name[n++] = tok;
    }
    for (int a = 0; a < n; a++)
        for (int b = 0; b < n; b++)
            if (strcmp(name[a], "valid") == 0 && strcmp(name[b], "valid_small") == 0)
                return collm_error(COLLM_ERR_ARG, "training splits '%s': valid_small is part of valid (its rows would count twice)",
                                   list);
    // the dataset's own splits are used as loaded; other names are read
    const collm_rec_split *part[MAX_PARTS] = {0};
    collm_rec_split *owned[MAX_PARTS] = {0};
    int rc = COLLM_OK;
    for (int k = 0; k < n && !rc; k++) {
        if (strcmp(name[k], "train") == 0) part[k] = ds->train;
        else if (strcmp(name[k], "valid") == 0 && ds->valid) part[k] = ds->valid;
        else if (strcmp(name[k], "valid_small") == 0 && ds->valid_small) part[k] = ds->valid_small;
        else if (!(part[k] = owned[k] = collm_rec_dataset_load_split(ds, name[k])))
            rc = collm_error_prefix(COLLM_ERR_ARG, "training split '%s'", name[k]);
    }
    collm_rec_split *joined = NULL;
    if (!rc && n == 1 && part[0] == ds->train) {
        // train alone: nothing changes
    } else if (!rc && !(joined = collm_rec_split_concat(part, n))) {
        rc = COLLM_ERR_NOMEM == collm_last_error_code() ? COLLM_ERR_NOMEM : COLLM_ERR_ARG;
    }
    for (int k = 0; k < n; k++) collm_rec_split_free(owned[k]);
    if (joined) {
        collm_rec_split_free(ds->train);
        ds->train = joined;
    }
    return rc;
}

// ---------------------------------------------------------------- writers

// Appends the decimal form of v to p; returns the new end.
static char *put_u64(char *p, uint64_t v) {
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n) *p++ = tmp[--n];
    return p;
}

int collm_rec_write_escaped(FILE *f, const char *s) {
    for (const char *p = s; *p; p++) {
        const char *esc = NULL;
        if (*p == '\\') esc = "\\\\";
        else if (*p == '\t') esc = "\\t";
        else if (*p == '\n') esc = "\\n";
        else if (*p == '\r') esc = "\\r";
        if (esc) {
            if (fputs(esc, f) == EOF) return collm_error(COLLM_ERR_IO, "write failed");
        } else if (fputc(*p, f) == EOF)
            return collm_error(COLLM_ERR_IO, "write failed");
    }
    return COLLM_OK;
}

static int write_items_fn(FILE *f, void *ctx) {
    const collm_rec_items *items = ctx;
    fputs(items->author ? "iid\ttitle\tauthor\n" : "iid\ttitle\n", f);
    for (int32_t i = 0; i < items->n; i++) {
        fprintf(f, "%d\t", i);
        if (collm_rec_write_escaped(f, items->title[i])) return COLLM_ERR_IO;
        if (items->author) {
            fputc('\t', f);
            if (collm_rec_write_escaped(f, items->author[i])) return COLLM_ERR_IO;
        }
        fputc('\n', f);
    }
    return ferror(f) ? collm_error(COLLM_ERR_IO, "write failed") : COLLM_OK;
}

int collm_rec_items_write(const char *path, const collm_rec_items *items) {
    if (!path || !items) return collm_error(COLLM_ERR_ARG, "collm_rec_items_write: NULL argument");
    int rc = collm_write_atomic(path, write_items_fn, (void *)items);
    return rc ? collm_error_prefix(rc, "%s", path) : COLLM_OK;
}

static int write_split_fn(FILE *f, void *ctx) {
    const collm_rec_split *s = ctx;
    int book = s->his_label != NULL;
    fputs(book ? "uid\tiid\tlabel\this\this_label\n" : "uid\tiid\tlabel\ttimestamp\this\tnot_cold\n", f);
    size_t cap = 1 << 16;
    char *buf = collm_malloc(cap);
    if (!buf) return COLLM_ERR_NOMEM;
    for (int64_t r = 0; r < s->n; r++) {
        int64_t h0 = s->his_offset[r], h1 = s->his_offset[r + 1];
        size_t need = 128 + (size_t)(h1 - h0) * 14;
        if (need > cap) {
            free(buf);
            cap = need;
            buf = collm_malloc(cap);
            if (!buf) return COLLM_ERR_NOMEM;
        }
        char *p = buf;
        p = put_u64(p, (uint64_t)s->user[r]);
        *p++ = '\t';
        p = put_u64(p, (uint64_t)s->item[r]);
        *p++ = '\t';
        *p++ = (char)('0' + s->label[r]);
        *p++ = '\t';
        if (!book) {
            p = put_u64(p, (uint64_t)s->timestamp[r]);
            *p++ = '\t';
        }
        for (int64_t j = h0; j < h1; j++) {
            if (j > h0) *p++ = ',';
            p = put_u64(p, (uint64_t)s->his[j]);
        }
        *p++ = '\t';
        if (book) {
            for (int64_t j = h0; j < h1; j++) {
                if (j > h0) *p++ = ',';
                *p++ = (char)('0' + s->his_label[j]);
            }
        } else
            *p++ = (char)('0' + s->not_cold[r]);
        *p++ = '\n';
        if (fwrite(buf, 1, (size_t)(p - buf), f) != (size_t)(p - buf)) {
            free(buf);
            return collm_error(COLLM_ERR_IO, "write failed");
        }
    }
    free(buf);
    return COLLM_OK;
}

int collm_rec_split_write(const char *path, const collm_rec_split *split) {
    if (!path || !split) return collm_error(COLLM_ERR_ARG, "collm_rec_split_write: NULL argument");
    int rc = collm_write_atomic(path, write_split_fn, (void *)split);
    return rc ? collm_error_prefix(rc, "%s", path) : COLLM_OK;
}

// The rows of parts[0..n_parts) into a new split, every column and history
// copied: rows NULL takes every row of every part in order; else n_parts is
// 1 and rows (n) index parts[0]. Arguments are checked by the callers.
static collm_rec_split *split_gather(const collm_rec_split *const *parts, int n_parts, const int64_t *rows, int64_t n,
                                     const char *path) {
    int64_t n_his = 0;
    const int has_his_label = parts[0]->his_label != NULL;
    for (int p = 0; p < n_parts; p++) {
        const collm_rec_split *s = parts[p];
        if (rows) {
            for (int64_t k = 0; k < n; k++) n_his += s->his_offset[rows[k] + 1] - s->his_offset[rows[k]];
        } else {
            n_his += s->his_offset[s->n] - s->his_offset[0]; // a row view's offsets need not start at 0
        }
    }
    collm_rec_split *out = collm_calloc(1, sizeof *out);
    if (!out) return NULL;
    const size_t rn = (size_t)(n > 0 ? n : 1), hn = (size_t)(n_his > 0 ? n_his : 1);
    out->n = n;
    out->path = collm_malloc(strlen(path) + 1);
    out->user = collm_malloc(rn * sizeof(int32_t));
    out->item = collm_malloc(rn * sizeof(int32_t));
    out->label = collm_malloc(rn);
    out->timestamp = collm_malloc(rn * sizeof(int64_t));
    out->not_cold = collm_malloc(rn);
    out->his_offset = collm_malloc((size_t)(n + 1) * sizeof(int64_t));
    out->his = collm_malloc(hn * sizeof(int32_t));
    if (has_his_label) out->his_label = collm_malloc(hn);
    if (!out->path || !out->user || !out->item || !out->label || !out->timestamp || !out->not_cold || !out->his_offset ||
        !out->his || (has_his_label && !out->his_label)) {
        collm_rec_split_free(out);
        return NULL; // collm_malloc set the error
    }
    strcpy(out->path, path);
    out->his_offset[0] = 0;
    int64_t k = 0;
    for (int p = 0; p < n_parts; p++) {
        const collm_rec_split *s = parts[p];
        for (int64_t j = 0; j < (rows ? n : s->n); j++, k++) {
            const int64_t r = rows ? rows[j] : j, h0 = s->his_offset[r], nh = s->his_offset[r + 1] - h0;
            out->user[k] = s->user[r];
            out->item[k] = s->item[r];
            out->label[k] = s->label[r];
            out->timestamp[k] = s->timestamp[r];
            out->not_cold[k] = s->not_cold[r];
            out->his_offset[k + 1] = out->his_offset[k] + nh;
            memcpy(out->his + out->his_offset[k], s->his + h0, (size_t)nh * sizeof(int32_t));
            if (has_his_label) memcpy(out->his_label + out->his_offset[k], s->his_label + h0, (size_t)nh);
            if (out->user[k] > out->max_user) out->max_user = out->user[k];
            if (out->item[k] > out->max_item) out->max_item = out->item[k];
            for (int64_t h = 0; h < nh; h++)
                if (s->his[h0 + h] > out->max_item) out->max_item = s->his[h0 + h];
        }
    }
    return out;
}

collm_rec_split *collm_rec_split_select(const collm_rec_split *s, const int64_t *rows, int64_t n) {
    if (!s || (n > 0 && !rows) || n < 0) {
        collm_error(COLLM_ERR_ARG, "collm_rec_split_select: bad arguments");
        return NULL;
    }
    for (int64_t k = 0; k < n; k++)
        if (rows[k] < 0 || rows[k] >= s->n) {
            collm_error(COLLM_ERR_ARG, "collm_rec_split_select: row %lld outside [0, %lld)", (long long)rows[k],
                        (long long)s->n);
            return NULL;
        }
    char path[4096];
    snprintf(path, sizeof path, "%s (%lld rows)", s->path ? s->path : "split", (long long)n);
    static const int64_t none = 0;
    return split_gather(&s, 1, n > 0 ? rows : &none, n, path);
}

collm_rec_split *collm_rec_split_concat(const collm_rec_split *const *parts, int n_parts) {
    if (!parts || n_parts < 1) {
        collm_error(COLLM_ERR_ARG, "collm_rec_split_concat: no splits");
        return NULL;
    }
    int64_t n = 0;
    char path[4096] = "";
    for (int p = 0; p < n_parts; p++) {
        if (!parts[p]) {
            collm_error(COLLM_ERR_ARG, "collm_rec_split_concat: split %d is NULL", p);
            return NULL;
        }
        if ((parts[p]->his_label != NULL) != (parts[0]->his_label != NULL)) {
            collm_error(COLLM_ERR_ARG, "cannot join %s and %s: one has history labels (his_label), the other not",
                        parts[0]->path ? parts[0]->path : "split 0", parts[p]->path ? parts[p]->path : "a split");
            return NULL;
        }
        if (parts[p]->n > INT64_MAX / 2 - n) {
            collm_error(COLLM_ERR_ARG, "collm_rec_split_concat: too many rows");
            return NULL;
        }
        n += parts[p]->n;
        size_t len = strlen(path);
        snprintf(path + len, sizeof path - len, "%s%s", p ? " + " : "", parts[p]->path ? parts[p]->path : "split");
    }
    return split_gather(parts, n_parts, NULL, n, path);
}
