// Prompt template filling (see include/collm/prompt.h, method.md §2.5, §3.2).
#include "collm/prompt.h"

#include "collm/error.h"
#include "collm/fileio.h"

#include <stdlib.h>
#include <string.h>

// Growable byte buffer.
typedef struct {
    char *data;
    size_t len, cap;
    int failed;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->failed) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (b->len + n + 1 > cap) cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d) {
            b->failed = 1;
            return;
        }
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void sb_puts(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static collm_prompt_template *template_new(const char *line, size_t len) {
    collm_prompt_template *t = collm_calloc(1, sizeof *t);
    if (!t) return NULL;
    t->line = collm_malloc(len + 1);
    if (!t->line) {
        free(t);
        return NULL;
    }
    memcpy(t->line, line, len);
    t->line[len] = '\0';
    t->proj_token_num = 1;
    t->his_has_sentinel = 1;
    return t;
}

collm_prompt_template *collm_prompt_template_from_string(const char *line) {
    if (!line) {
        collm_error(COLLM_ERR_ARG, "collm_prompt_template_from_string: no text");
        return NULL;
    }
    const char *nl = strchr(line, '\n');
    return template_new(line, nl ? (size_t)(nl - line) : strlen(line));
}

collm_prompt_template *collm_prompt_template_load(const char *path) {
    char *text;
    size_t size;
    if (collm_read_file(path, &text, &size) != COLLM_OK) return NULL;
    const char *nl = memchr(text, '\n', size);
    size_t len = nl ? (size_t)(nl - text) : size;
    if (len > 0 && text[len - 1] == '\r') len--; // tolerate a CRLF template file
    if (len == 0 || memchr(text, '\0', len)) {
        free(text);
        collm_error(COLLM_ERR_FORMAT, "%s: line 1: empty or binary template line", path);
        return NULL;
    }
    collm_prompt_template *t = template_new(text, len);
    free(text);
    return t;
}

void collm_prompt_template_free(collm_prompt_template *tpl) {
    if (!tpl) return;
    free(tpl->line);
    free(tpl);
}

void collm_prompt_history_window(const collm_prompt_template *tpl, int64_t n_his, int64_t *first, int64_t *n) {
    if (!tpl->his_has_sentinel) {
        // As if a 0 sentinel were prepended: the last min(len, L) real ids.
        *n = n_his < COLLM_PROMPT_MAX_HISTORY ? n_his : COLLM_PROMPT_MAX_HISTORY;
        *first = n_his - *n;
        return;
    }
    if (n_his > COLLM_PROMPT_MAX_HISTORY) { // keep the last L ids, n = L
        *first = n_his - COLLM_PROMPT_MAX_HISTORY;
        *n = COLLM_PROMPT_MAX_HISTORY;
    } else if (n_his >= 2) { // n = len - 1 (len == L gives L - 1): all but the sentinel
        *first = 1;
        *n = n_his - 1;
    } else { // n == 0: "all of them", i.e. his[0..len) (at most the sentinel)
        *first = 0;
        *n = n_his;
    }
}

// n of §2.5 (the number of <unk> in <ItemIDList>).
static int64_t history_count(const collm_prompt_template *tpl, int64_t n_his) {
    if (!tpl->his_has_sentinel) return n_his < COLLM_PROMPT_MAX_HISTORY ? n_his : COLLM_PROMPT_MAX_HISTORY;
    if (n_his > COLLM_PROMPT_MAX_HISTORY) return COLLM_PROMPT_MAX_HISTORY;
    return n_his >= 1 ? n_his - 1 : 0;
}

// Where the slot markers went, recorded as they are written (never found
// again by searching the text: a title may contain "<unk>" itself).
typedef struct {
    collm_prompt_slot *slots; // NULL: not recorded
    int cap, n;               // n counts every marker, also past cap
} slot_log;

static void put_marker(sbuf *b, slot_log *log, int32_t item) {
    if (log && log->slots && log->n < log->cap) log->slots[log->n] = (collm_prompt_slot){b->len, item};
    if (log) log->n++;
    sb_put(b, "<unk>", 5);
}

static void put_slot(sbuf *b, int k, slot_log *log, int32_t item) {
    for (int j = 0; j < k; j++) {
        if (j) sb_put(b, ".", 1);
        put_marker(b, log, item);
    }
}

static int starts_with(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

// Builds the filled text into b; *split_at receives the byte offset of the
// first target-dependent placeholder's output (or the full length).
static int fill(const collm_prompt_template *tpl, const collm_rec_items *items, const int32_t *his, int64_t n_his,
                int32_t target, sbuf *b, size_t *split_at, slot_log *log) {
    if (!tpl || !items || (n_his > 0 && !his)) return collm_error(COLLM_ERR_ARG, "prompt: NULL template, items or history");
    if (target < 0 || target >= items->n)
        return collm_error(COLLM_ERR_ARG, "prompt: target item %d outside the item table (ids 0..%d)", target,
                           items->n - 1);
    for (int64_t j = 0; j < n_his; j++)
        if (his[j] < 0 || his[j] >= items->n)
            return collm_error(COLLM_ERR_ARG, "prompt: history entry %lld: item %d outside the item table (ids 0..%d)",
                               (long long)j, his[j], items->n - 1);
    int k = tpl->proj_token_num > 0 ? tpl->proj_token_num : 1;
    *split_at = (size_t)-1;
    sb_put(b, "<s>", 3);
    const char *p = tpl->line;
    while (*p) {
        const char *lt = strchr(p, '<');
        if (!lt) {
            sb_puts(b, p);
            break;
        }
        sb_put(b, p, (size_t)(lt - p));
        p = lt;
        if (starts_with(p, "<ItemTitleList>")) {
            int64_t first, n;
            collm_prompt_history_window(tpl, n_his, &first, &n);
            int wrote = 0;
            for (int64_t j = first; j < first + n; j++) {
                const char *title = items->title[his[j]];
                if (!title[0]) continue; // dropped: sentinel / untitled
                if (wrote++) sb_put(b, ", ", 2);
                sb_put(b, "\"", 1);
                sb_puts(b, title);
                sb_put(b, "\"", 1);
            }
            if (!wrote) sb_put(b, "unkow", 5);
            p += strlen("<ItemTitleList>");
        } else if (starts_with(p, "<TargetItemTitle>")) {
            if (*split_at == (size_t)-1) *split_at = b->len;
            const char *t = items->title[target];
            size_t len = strlen(t);
            while (len && *t == ' ') t++, len--;
            while (len && t[len - 1] == ' ') len--;
            sb_put(b, "\"", 1);
            sb_put(b, t, len);
            sb_put(b, "\"", 1);
            p += strlen("<TargetItemTitle>");
        } else if (starts_with(p, "<TargetItemID>")) {
            if (*split_at == (size_t)-1) *split_at = b->len;
            put_slot(b, k, log, target);
            p += strlen("<TargetItemID>");
        } else if (starts_with(p, "<UserID>")) {
            put_slot(b, k, log, -1);
            p += strlen("<UserID>");
        } else if (starts_with(p, "<ItemIDList>")) {
            // marker j stands for the j-th id of the §2.5 window
            int64_t n = history_count(tpl, n_his), first, n_window;
            collm_prompt_history_window(tpl, n_his, &first, &n_window);
            for (int64_t j = 0; j < n; j++) {
                if (j) sb_put(b, ", ", 2);
                put_marker(b, log, his[first + j]);
            }
            p += strlen("<ItemIDList>");
        } else {
            sb_put(b, "<", 1); // not a placeholder: literal text
            p++;
        }
    }
    if (b->failed) return collm_error(COLLM_ERR_NOMEM, "prompt: out of memory");
    if (*split_at == (size_t)-1) *split_at = b->len;
    return COLLM_OK;
}

int64_t collm_prompt_fill(const collm_prompt_template *tpl, const collm_rec_items *items, const int32_t *his, int64_t n_his,
                    int32_t target, char *out, size_t cap) {
    sbuf b = {0};
    size_t split;
    int rc = fill(tpl, items, his, n_his, target, &b, &split, NULL);
    if (rc != COLLM_OK) {
        free(b.data);
        return rc;
    }
    if (out && cap) {
        size_t n = b.len < cap - 1 ? b.len : cap - 1;
        memcpy(out, b.data, n);
        out[n] = '\0';
    }
    int64_t len = (int64_t)b.len;
    free(b.data);
    return len;
}

char *collm_prompt_fill_alloc(const collm_prompt_template *tpl, const collm_rec_items *items, const int32_t *his, int64_t n_his,
                        int32_t target) {
    sbuf b = {0};
    size_t split;
    if (fill(tpl, items, his, n_his, target, &b, &split, NULL) != COLLM_OK) {
        free(b.data);
        return NULL;
    }
    return b.data;
}

int collm_prompt_fill_parts(const collm_prompt_template *tpl, const collm_rec_items *items, const int32_t *his, int64_t n_his,
                      int32_t target, char **prefix, char **rest) {
    *prefix = *rest = NULL;
    sbuf b = {0};
    size_t split;
    int rc = fill(tpl, items, his, n_his, target, &b, &split, NULL);
    if (rc != COLLM_OK) {
        free(b.data);
        return rc;
    }
    *rest = collm_malloc(b.len - split + 1);
    if (!*rest) {
        free(b.data);
        return COLLM_ERR_NOMEM;
    }
    memcpy(*rest, b.data + split, b.len - split + 1);
    b.data[split] = '\0';
    *prefix = b.data;
    return COLLM_OK;
}

char *collm_prompt_fill_slots(const collm_prompt_template *tpl, const collm_rec_items *items, const int32_t *his,
                              int64_t n_his, int32_t target, collm_prompt_slot *slots, int max_slots, int *n_slots) {
    sbuf b = {0};
    size_t split;
    slot_log log = {slots, max_slots, 0};
    *n_slots = 0;
    if (fill(tpl, items, his, n_his, target, &b, &split, &log) != COLLM_OK) {
        free(b.data);
        return NULL;
    }
    if (log.n > max_slots) {
        free(b.data);
        collm_error(COLLM_ERR_RANGE, "prompt: the template gives %d slot markers, more than %d", log.n, max_slots);
        return NULL;
    }
    *n_slots = log.n;
    return b.data;
}

static const char *const known_placeholders[] = {"<ItemTitleList>", "<TargetItemTitle>", "<UserID>", "<TargetItemID>",
                                                 "<ItemIDList>"};

int collm_prompt_template_check(const char *line, const char *source) {
    if (!line) return collm_error(COLLM_ERR_ARG, "collm_prompt_template_check: no text");
    const char *src = source ? source : "template";
    int has_target_title = 0;
    for (const char *p = strchr(line, '<'); p; p = strchr(p + 1, '<')) {
        // a placeholder-looking word: '<', letters/digits/_, '>'
        size_t n = 1;
        while ((p[n] >= 'A' && p[n] <= 'Z') || (p[n] >= 'a' && p[n] <= 'z') || (p[n] >= '0' && p[n] <= '9') ||
               p[n] == '_')
            n++;
        if (n == 1 || p[n] != '>') continue; // a "<" in text
        n++;
        int known = 0;
        for (size_t k = 0; k < sizeof known_placeholders / sizeof known_placeholders[0]; k++)
            if (strlen(known_placeholders[k]) == n && strncmp(p, known_placeholders[k], n) == 0) known = 1;
        if (!known)
            return collm_error(COLLM_ERR_FORMAT,
                               "%s: unknown placeholder %.*s (known: <ItemTitleList> <TargetItemTitle> <UserID> "
                               "<TargetItemID> <ItemIDList>; a literal <unk> would read as a slot)",
                               src, (int)(n > 64 ? 64 : n), p);
        if (strncmp(p, "<TargetItemTitle>", n) == 0) has_target_title = 1;
    }
    if (!has_target_title)
        return collm_error(COLLM_ERR_FORMAT,
                           "%s: no <TargetItemTitle>: every item of a user would get the same prompt (the template "
                           "must name the item it asks about)",
                           src);
    return COLLM_OK;
}

static int is_word_char(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || (c & 0x80);
}

char *collm_prompt_with_noun(const char *line, const char *singular, const char *plural) {
    sbuf b = {0};
    const char *p = line;
    while (*p) {
        int at_start = p == line || !is_word_char(p[-1]);
        if (at_start && strncmp(p, "movies", 6) == 0 && !is_word_char(p[6])) {
            sb_puts(&b, plural);
            p += 6;
        } else if (at_start && strncmp(p, "movie", 5) == 0 && !is_word_char(p[5])) {
            sb_puts(&b, singular);
            p += 5;
        } else {
            sb_put(&b, p, 1);
            p++;
        }
    }
    if (!b.data && !b.failed) sb_put(&b, "", 0);
    if (b.failed) {
        free(b.data);
        collm_error(COLLM_ERR_NOMEM, "prompt: out of memory");
        return NULL;
    }
    return b.data;
}
