// Tokenizer: loading from GGUF metadata, token lookup, special-token
// splitting, the encode entry point and decoding (see collm/tokenizer.h).
#include "collm/tokenizer.h"

#include "collm/error.h"
#include "tok_internal.h"
#include "tok_unicode.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ---------------------------------------------------------------- hashing

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull; // FNV-1a
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 1099511628211ull;
    }
    return h ^ (h >> 29);
}

static int strings_equal(const collm_tok_strings *t, uint32_t i, const char *s, size_t n) {
    return t->len[i] == n && memcmp(t->blob + t->off[i], s, n) == 0;
}

static int32_t hash_find(const collm_tok_hash *h, const collm_tok_strings *t, const char *s, size_t n) {
    if (!h->slots) return -1;
    for (uint64_t p = hash_bytes(s, n) & h->mask;; p = (p + 1) & h->mask) {
        uint32_t e = h->slots[p];
        if (e == 0) return -1;
        if (strings_equal(t, e - 1, s, n)) return (int32_t)(e - 1);
    }
}

// keep_last: a duplicate string maps to its last index (else its first).
static int hash_build(collm_tok_hash *h, const collm_tok_strings *t, int keep_last) {
    uint64_t cap = 16;
    while (cap < 2 * (uint64_t)t->n) cap <<= 1;
    h->slots = collm_calloc(cap, sizeof *h->slots);
    if (!h->slots) return COLLM_ERR_NOMEM;
    h->mask = (uint32_t)(cap - 1);
    for (int i = 0; i < t->n; i++) {
        const char *s = t->blob + t->off[i];
        for (uint64_t p = hash_bytes(s, t->len[i]) & h->mask;; p = (p + 1) & h->mask) {
            uint32_t e = h->slots[p];
            if (e == 0) {
                h->slots[p] = (uint32_t)i + 1;
                break;
            }
            if (strings_equal(t, e - 1, s, t->len[i])) {
                if (keep_last) h->slots[p] = (uint32_t)i + 1;
                break;
            }
        }
    }
    return COLLM_OK;
}

int32_t collm_tok_lookup(const collm_tok_vocab *v, const char *s, size_t n) { return hash_find(&v->token_map, &v->tokens, s, n); }

int32_t collm_tok_merge_rank(const collm_tok_vocab *v, const char *a, size_t na, const char *b, size_t nb) {
    char stack_buf[256];
    size_t n = na + 1 + nb;
    char *key = n <= sizeof stack_buf ? stack_buf : malloc(n);
    if (!key) return -1;
    memcpy(key, a, na);
    key[na] = ' ';
    memcpy(key + na + 1, b, nb);
    int32_t r = hash_find(&v->merge_map, &v->merges, key, n);
    if (key != stack_buf) free(key);
    return r;
}

int collm_tok_ids_push(collm_tok_ids *a, int32_t id) {
    if (a->n == a->cap) {
        int cap = a->cap ? 2 * a->cap : 64;
        int32_t *p = realloc(a->ids, (size_t)cap * sizeof *p);
        if (!p) return collm_error(COLLM_ERR_NOMEM, "tokenizer: out of memory for %d ids", cap);
        a->ids = p;
        a->cap = cap;
    }
    a->ids[a->n++] = id;
    return COLLM_OK;
}

// ---------------------------------------------------------------- loading

static void strings_free(collm_tok_strings *t) {
    free(t->blob);
    free(t->off);
    free(t->len);
    memset(t, 0, sizeof *t);
}

// Copies the string array at key index ki into t.
static int strings_copy(collm_tok_strings *t, const collm_gguf_file *f, int64_t ki, const char *key) {
    if (collm_gguf_kv_type(f, ki) != COLLM_GGUF_TYPE_ARRAY || collm_gguf_arr_type(f, ki) != COLLM_GGUF_TYPE_STRING)
        return collm_error(COLLM_ERR_FORMAT, "tokenizer: key %s is not a string array", key);
    uint64_t n = collm_gguf_arr_n(f, ki);
    if (n > (uint64_t)INT32_MAX - 1) return collm_error(COLLM_ERR_FORMAT, "tokenizer: key %s has %llu entries (too many)", key, (unsigned long long)n);
    uint64_t total = 0;
    for (uint64_t j = 0; j < n; j++) {
        uint64_t len;
        if (!collm_gguf_arr_str(f, ki, j, &len)) return collm_error(COLLM_ERR_FORMAT, "tokenizer: key %s: entry %llu unreadable", key, (unsigned long long)j);
        total += len + 1;
    }
    if (total > UINT32_MAX) return collm_error(COLLM_ERR_FORMAT, "tokenizer: key %s: strings too large", key);
    t->n = (int)n;
    t->blob = collm_malloc((size_t)total);
    t->off = collm_malloc((size_t)n * sizeof *t->off);
    t->len = collm_malloc((size_t)n * sizeof *t->len);
    if (!t->blob || !t->off || !t->len) return COLLM_ERR_NOMEM;
    uint64_t p = 0;
    for (uint64_t j = 0; j < n; j++) {
        uint64_t len;
        const char *s = collm_gguf_arr_str(f, ki, j, &len);
        memcpy(t->blob + p, s, (size_t)len);
        t->blob[p + len] = '\0';
        t->off[j] = (uint32_t)p;
        t->len[j] = (uint32_t)len;
        p += len + 1;
    }
    return COLLM_OK;
}

// Optional token id key: absent or 0xFFFFFFFF / negative -> -1.
static int read_token_id(const collm_gguf_file *f, const char *key, int n_vocab, int32_t *out) {
    *out = -1;
    if (collm_gguf_find_key(f, key) < 0) return COLLM_OK;
    int64_t id;
    int rc = collm_gguf_get_i64(f, key, &id);
    if (rc) return collm_error_prefix(rc, "tokenizer");
    if (id == 0xFFFFFFFFll || id < 0) return COLLM_OK;
    if (id >= n_vocab)
        return collm_error(COLLM_ERR_FORMAT, "tokenizer: %s = %lld is out of range (n_vocab %d)", key, (long long)id, n_vocab);
    *out = (int32_t)id;
    return COLLM_OK;
}

static int read_bool(const collm_gguf_file *f, const char *key, int def, int *out) {
    *out = def;
    if (collm_gguf_find_key(f, key) < 0) return COLLM_OK;
    int rc = collm_gguf_get_bool(f, key, out);
    return rc ? collm_error_prefix(rc, "tokenizer") : COLLM_OK;
}

// GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves, the
// other 68 bytes to U+0100.. in byte order.
static void build_byte_unicode(collm_tok_vocab *v) {
    for (int i = 0; i < 512; i++) v->unicode_byte[i] = -1;
    int next = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        uint32_t cp = printable ? (uint32_t)b : (uint32_t)(256 + next++);
        size_t k = collm_tok_utf8_encode(cp, v->byte_unicode[b]);
        v->byte_unicode[b][k] = '\0';
        v->unicode_byte[cp] = (int16_t)b;
    }
}

static int cmp_special_len_desc(const void *a, const void *b, void *ctx) {
    const collm_tok_vocab *v = ctx;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    if (v->tokens.len[x] != v->tokens.len[y]) return v->tokens.len[x] > v->tokens.len[y] ? -1 : 1;
    return x < y ? -1 : x > y;
}

static int load_into(collm_tok_vocab *v, const collm_gguf_file *f) {
    const char *model;
    uint64_t model_len;
    if (collm_gguf_find_key(f, "tokenizer.ggml.model") < 0)
        return collm_error(COLLM_ERR_FORMAT, "tokenizer: missing key tokenizer.ggml.model (no tokenizer in this GGUF)");
    int rc = collm_gguf_get_str(f, "tokenizer.ggml.model", &model, &model_len);
    if (rc) return collm_error_prefix(rc, "tokenizer");
    if (model_len == 5 && memcmp(model, "llama", 5) == 0) v->model = COLLM_TOK_MODEL_SPM;
    else if (model_len == 4 && memcmp(model, "gpt2", 4) == 0) v->model = COLLM_TOK_MODEL_BPE;
    else
        return collm_error(COLLM_ERR_FORMAT, "tokenizer: tokenizer.ggml.model = \"%.*s\" is not supported (only \"llama\", \"gpt2\")",
                           (int)(model_len > 64 ? 64 : model_len), model);

    int64_t ki = collm_gguf_find_key(f, "tokenizer.ggml.tokens");
    if (ki < 0) return collm_error(COLLM_ERR_FORMAT, "tokenizer: missing key tokenizer.ggml.tokens");
    if ((rc = strings_copy(&v->tokens, f, ki, "tokenizer.ggml.tokens"))) return rc;
    int n = v->tokens.n;
    if (n == 0) return collm_error(COLLM_ERR_FORMAT, "tokenizer: tokenizer.ggml.tokens is empty");

    v->scores = collm_calloc((size_t)n, sizeof *v->scores);
    v->types = collm_malloc((size_t)n);
    if (!v->scores || !v->types) return COLLM_ERR_NOMEM;
    memset(v->types, COLLM_TOK_TYPE_NORMAL, (size_t)n);

    ki = collm_gguf_find_key(f, "tokenizer.ggml.scores");
    if (ki >= 0) {
        if (collm_gguf_kv_type(f, ki) != COLLM_GGUF_TYPE_ARRAY || collm_gguf_arr_type(f, ki) != COLLM_GGUF_TYPE_FLOAT32 || collm_gguf_arr_n(f, ki) != (uint64_t)n)
            return collm_error(COLLM_ERR_FORMAT, "tokenizer: tokenizer.ggml.scores must be a float32 array of %d entries", n);
        memcpy(v->scores, collm_gguf_arr_data(f, ki), (size_t)n * sizeof(float)); // may be unaligned in the mapping
    }
    ki = collm_gguf_find_key(f, "tokenizer.ggml.token_type");
    if (ki >= 0) {
        collm_gguf_type t = collm_gguf_arr_type(f, ki);
        if (collm_gguf_kv_type(f, ki) != COLLM_GGUF_TYPE_ARRAY || (t != COLLM_GGUF_TYPE_INT32 && t != COLLM_GGUF_TYPE_UINT32) || collm_gguf_arr_n(f, ki) != (uint64_t)n)
            return collm_error(COLLM_ERR_FORMAT, "tokenizer: tokenizer.ggml.token_type must be an int32 array of %d entries", n);
        const unsigned char *p = collm_gguf_arr_data(f, ki);
        for (int i = 0; i < n; i++) {
            int32_t t32;
            memcpy(&t32, p + 4 * (size_t)i, 4);
            if (t32 < 0 || t32 > COLLM_TOK_TYPE_BYTE)
                return collm_error(COLLM_ERR_FORMAT, "tokenizer: tokenizer.ggml.token_type[%d] = %d is not a token type (0..6)", i, t32);
            v->types[i] = (uint8_t)t32;
        }
    }
    if ((rc = hash_build(&v->token_map, &v->tokens, 1))) return rc;

    if (v->model == COLLM_TOK_MODEL_BPE) {
        ki = collm_gguf_find_key(f, "tokenizer.ggml.merges");
        if (ki < 0) return collm_error(COLLM_ERR_FORMAT, "tokenizer: missing key tokenizer.ggml.merges (required for a gpt2 vocab)");
        if ((rc = strings_copy(&v->merges, f, ki, "tokenizer.ggml.merges"))) return rc;
        if ((rc = hash_build(&v->merge_map, &v->merges, 0))) return rc;
        v->pre = COLLM_TOK_PRE_GPT2;
        const char *pre;
        uint64_t pre_len;
        if (collm_gguf_find_key(f, "tokenizer.ggml.pre") >= 0) {
            if ((rc = collm_gguf_get_str(f, "tokenizer.ggml.pre", &pre, &pre_len))) return collm_error_prefix(rc, "tokenizer");
            if (pre_len == 5 && memcmp(pre, "qwen2", 5) == 0) v->pre = COLLM_TOK_PRE_QWEN2;
            else if ((pre_len == 5 && memcmp(pre, "gpt-2", 5) == 0) || (pre_len == 7 && memcmp(pre, "default", 7) == 0))
                v->pre = COLLM_TOK_PRE_GPT2;
            else
                return collm_error(COLLM_ERR_FORMAT, "tokenizer: tokenizer.ggml.pre = \"%.*s\" is not supported (only \"gpt-2\", \"qwen2\", \"default\")",
                                   (int)(pre_len > 64 ? 64 : pre_len), pre);
        }
        build_byte_unicode(v);
    } else {
        v->pre = COLLM_TOK_PRE_NONE;
    }

    if ((rc = read_token_id(f, "tokenizer.ggml.bos_token_id", n, &v->bos))) return rc;
    if ((rc = read_token_id(f, "tokenizer.ggml.eos_token_id", n, &v->eos))) return rc;
    if ((rc = read_token_id(f, "tokenizer.ggml.unknown_token_id", n, &v->unk))) return rc;
    if ((rc = read_token_id(f, "tokenizer.ggml.padding_token_id", n, &v->pad))) return rc;
    if ((rc = read_bool(f, "tokenizer.ggml.add_bos_token", v->model == COLLM_TOK_MODEL_SPM, &v->add_bos))) return rc;
    if ((rc = read_bool(f, "tokenizer.ggml.add_space_prefix", v->model == COLLM_TOK_MODEL_SPM, &v->add_space_prefix))) return rc;
    if (v->add_bos && v->bos < 0)
        return collm_error(COLLM_ERR_FORMAT, "tokenizer: the vocab asks for a BOS token but has no tokenizer.ggml.bos_token_id");

    // SPM byte fallback: <0xXX>, else the single-byte token (llama.cpp's byte_to_token)
    for (int b = 0; b < 256; b++) {
        char hex[8];
        snprintf(hex, sizeof hex, "<0x%02X>", b);
        v->byte_token[b] = collm_tok_lookup(v, hex, 6);
        if (v->byte_token[b] < 0) {
            char c = (char)b;
            v->byte_token[b] = collm_tok_lookup(v, &c, 1);
        }
    }

    // special tokens: matched as whole tokens in the text (llama.cpp's cache_special_tokens)
    v->special_ids = collm_malloc((size_t)n * sizeof *v->special_ids);
    if (!v->special_ids) return COLLM_ERR_NOMEM;
    for (int i = 0; i < n; i++) {
        uint8_t t = v->types[i];
        if ((t == COLLM_TOK_TYPE_CONTROL || t == COLLM_TOK_TYPE_USER_DEFINED || t == COLLM_TOK_TYPE_UNKNOWN) && v->tokens.len[i] > 0)
            v->special_ids[v->n_special++] = i;
    }
    qsort_r(v->special_ids, (size_t)v->n_special, sizeof *v->special_ids, cmp_special_len_desc, v);
    return COLLM_OK;
}

collm_tok_vocab *collm_tok_load(const collm_gguf_file *f) {
    if (!f) {
        collm_error(COLLM_ERR_ARG, "tokenizer: collm_tok_load: no file");
        return NULL;
    }
    collm_tok_vocab *v = collm_calloc(1, sizeof *v);
    if (!v) return NULL;
    if (load_into(v, f)) {
        collm_tok_free(v);
        return NULL;
    }
    return v;
}

collm_tok_vocab *collm_tok_load_path(const char *path) {
    collm_gguf_file *f = collm_gguf_open(path);
    if (!f) return NULL;
    collm_tok_vocab *v = collm_tok_load(f);
    if (!v) collm_error_prefix(COLLM_ERR_FORMAT, "%s", path);
    collm_gguf_close(f);
    return v;
}

void collm_tok_free(collm_tok_vocab *v) {
    if (!v) return;
    strings_free(&v->tokens);
    strings_free(&v->merges);
    free(v->token_map.slots);
    free(v->merge_map.slots);
    free(v->scores);
    free(v->types);
    free(v->special_ids);
    free(v);
}

// ---------------------------------------------------------------- encoding

// A piece of the input: raw text [off, off + len) or a special token.
typedef struct {
    int32_t token; // -1 for raw text
    size_t off, len;
} fragment;

typedef struct {
    fragment *items;
    size_t n, cap;
} fragment_list;

static int fragments_push(fragment_list *l, int32_t token, size_t off, size_t len) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        fragment *p = realloc(l->items, cap * sizeof *p);
        if (!p) return collm_error(COLLM_ERR_NOMEM, "tokenizer: out of memory splitting special tokens");
        l->items = p;
        l->cap = cap;
    }
    l->items[l->n++] = (fragment){token, off, len};
    return COLLM_OK;
}

// Splits the text at occurrences of special-token texts, as llama.cpp's
// tokenizer_st_partition: each special token in turn (longest text first)
// splits every remaining raw fragment at each of its occurrences, left to
// right. parse_special = 0 only splits at USER_DEFINED tokens.
static int split_special(const collm_tok_vocab *v, const char *text, size_t len, int parse_special, fragment_list *out) {
    fragment_list cur = {0}, next = {0};
    int rc = COLLM_OK;
    if (len > 0 && (rc = fragments_push(&cur, -1, 0, len))) goto done;
    for (int s = 0; s < v->n_special; s++) {
        int32_t id = v->special_ids[s];
        if (!parse_special && v->types[id] != COLLM_TOK_TYPE_USER_DEFINED) continue;
        const char *st = v->tokens.blob + v->tokens.off[id];
        size_t sl = v->tokens.len[id];
        next.n = 0;
        for (size_t i = 0; i < cur.n; i++) {
            fragment fr = cur.items[i];
            if (fr.token >= 0 || fr.len < sl) {
                if ((rc = fragments_push(&next, fr.token, fr.off, fr.len))) goto done;
                continue;
            }
            size_t start = fr.off, end = fr.off + fr.len;
            while (start < end) {
                const char *hit = end - start >= sl ? memmem(text + start, end - start, st, sl) : NULL;
                if (!hit) {
                    if ((rc = fragments_push(&next, -1, start, end - start))) goto done;
                    break;
                }
                size_t at = (size_t)(hit - text);
                if (at > start && (rc = fragments_push(&next, -1, start, at - start))) goto done;
                if ((rc = fragments_push(&next, id, at, sl))) goto done;
                start = at + sl;
            }
        }
        fragment_list t = cur;
        cur = next;
        next = t;
    }
done:
    free(next.items);
    if (rc) {
        free(cur.items);
        return rc;
    }
    *out = cur;
    return COLLM_OK;
}

int collm_tok_encode(const collm_tok_vocab *v, const char *text, size_t len, int flags, int32_t *out, int cap) {
    if (!v || (!text && len) || cap < 0 || (!out && cap > 0))
        return collm_error(COLLM_ERR_ARG, "collm_tok_encode: bad arguments");
    if (len > (size_t)INT32_MAX / 2) return collm_error(COLLM_ERR_ARG, "collm_tok_encode: text of %zu bytes is too long", len);
    int parse_special = (flags & (COLLM_TOK_PARSE_SPECIAL | COLLM_TOK_LEGACY_SPECIAL_PIECES)) != 0;
    collm_tok_ids ids = {0};
    fragment_list frags = {0};
    int rc = split_special(v, text, len, parse_special, &frags);
    if (rc) return rc;
    if ((flags & COLLM_TOK_ADD_BOS) && v->add_bos) rc = collm_tok_ids_push(&ids, v->bos);
    int prev_special = 1; // the dummy prefix goes on the first fragment and on each after a special token
    for (size_t i = 0; i < frags.n && rc == COLLM_OK; i++) {
        const fragment *fr = &frags.items[i];
        if (fr->token >= 0) {
            rc = collm_tok_ids_push(&ids, fr->token);
            prev_special = 1;
            continue;
        }
        if (v->model == COLLM_TOK_MODEL_SPM) {
            // llama.cpp: prefix if previous is special; legacy transformers: every piece
            int prefix = v->add_space_prefix && (prev_special || (flags & COLLM_TOK_LEGACY_SPECIAL_PIECES));
            rc = collm_tok_spm_encode(v, text + fr->off, fr->len, prefix, &ids);
        } else {
            rc = collm_tok_bpe_encode(v, text + fr->off, fr->len, &ids);
        }
        prev_special = 0;
    }
    free(frags.items);
    if (rc) {
        free(ids.ids);
        return rc;
    }
    int n = ids.n;
    if (n > 0) memcpy(out, ids.ids, (size_t)(n < cap ? n : cap) * sizeof *out);
    free(ids.ids);
    return n;
}

// ---------------------------------------------------------------- decoding

typedef struct {
    char *out;
    size_t cap, n;
} text_sink;

static void sink_put(text_sink *s, const char *p, size_t n) {
    for (size_t i = 0; i < n; i++, s->n++)
        if (s->n + 1 < s->cap) s->out[s->n] = p[i];
}

int collm_tok_decode(const collm_tok_vocab *v, const int32_t *ids, int n, char *out, size_t cap) {
    if (!v || n < 0 || (!ids && n) || (!out && cap)) return collm_error(COLLM_ERR_ARG, "collm_tok_decode: bad arguments");
    text_sink s = {out, cap, 0};
    int at_start = 1; // no text token written yet: its dummy-prefix space is dropped
    for (int k = 0; k < n; k++) {
        int32_t id = ids[k];
        if (id < 0 || id >= v->tokens.n) return collm_error(COLLM_ERR_ARG, "collm_tok_decode: id %d at position %d is out of range (n_vocab %d)", id, k, v->tokens.n);
        const char *t = v->tokens.blob + v->tokens.off[id];
        size_t tl = v->tokens.len[id];
        uint8_t type = v->types[id];
        if (type == COLLM_TOK_TYPE_CONTROL || type == COLLM_TOK_TYPE_UNKNOWN || type == COLLM_TOK_TYPE_USER_DEFINED) {
            sink_put(&s, t, tl);
        } else if (v->model == COLLM_TOK_MODEL_SPM) {
            unsigned hx;
            if (type == COLLM_TOK_TYPE_BYTE && tl == 6 && sscanf(t, "<0x%02X>", &hx) == 1) {
                char c = (char)hx;
                sink_put(&s, &c, 1);
                at_start = 0;
                continue;
            }
            size_t i = 0;
            if (at_start && v->add_space_prefix && tl >= 3 && memcmp(t, "\xE2\x96\x81", 3) == 0) i = 3;
            for (; i < tl;) {
                if (i + 3 <= tl && memcmp(t + i, "\xE2\x96\x81", 3) == 0) {
                    sink_put(&s, " ", 1);
                    i += 3;
                } else sink_put(&s, t + i++, 1);
            }
            at_start = 0;
        } else {
            for (size_t i = 0; i < tl;) {
                size_t before = i;
                uint32_t cp = collm_tok_utf8_decode((const uint8_t *)t, tl, &i);
                if (cp < 512 && v->unicode_byte[cp] >= 0) {
                    char c = (char)v->unicode_byte[cp];
                    sink_put(&s, &c, 1);
                } else sink_put(&s, t + before, i - before);
            }
        }
    }
    if (cap) out[s.n < cap ? s.n : cap - 1] = '\0';
    return s.n > (size_t)INT32_MAX ? COLLM_ERR : (int)s.n;
}

// ---------------------------------------------------------------- accessors

int collm_tok_n_vocab(const collm_tok_vocab *v) { return v->tokens.n; }
collm_tok_model collm_tok_model_type(const collm_tok_vocab *v) { return v->model; }
collm_tok_pre collm_tok_pre_type(const collm_tok_vocab *v) { return v->pre; }
int collm_tok_add_bos(const collm_tok_vocab *v) { return v->add_bos; }
int32_t collm_tok_bos(const collm_tok_vocab *v) { return v->bos; }
int32_t collm_tok_eos(const collm_tok_vocab *v) { return v->eos; }
int32_t collm_tok_unk(const collm_tok_vocab *v) { return v->unk; }
int32_t collm_tok_pad(const collm_tok_vocab *v) { return v->pad; }

const char *collm_tok_token_text(const collm_tok_vocab *v, int32_t id) {
    return id >= 0 && id < v->tokens.n ? v->tokens.blob + v->tokens.off[id] : NULL;
}

collm_tok_token_type collm_tok_token_type_of(const collm_tok_vocab *v, int32_t id) {
    return id >= 0 && id < v->tokens.n ? (collm_tok_token_type)v->types[id] : COLLM_TOK_TYPE_UNDEFINED;
}

float collm_tok_token_score(const collm_tok_vocab *v, int32_t id) { return id >= 0 && id < v->tokens.n ? v->scores[id] : 0.0f; }

int32_t collm_tok_find(const collm_tok_vocab *v, const char *text) { return text ? collm_tok_lookup(v, text, strlen(text)) : -1; }
