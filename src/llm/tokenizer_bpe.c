// Byte-level BPE (GPT-2 style) encoding of one raw-text fragment: UTF-8 ->
// code points (malformed bytes -> U+FFFD), NFC for qwen2, pre-tokenizer
// regex (by hand), then each piece's bytes mapped through bytes_to_unicode
// and merged by rank (lowest rank first, ties leftmost), as llama.cpp's
// llm_tokenizer_bpe_session.
#include "collm/error.h"
#include "tok_internal.h"
#include "tok_unicode.h"

#include <stdlib.h>
#include <string.h>

// ---------------------------------------------------------------- pre-tokenizers

static int is_space(uint32_t c) { return collm_tok_unicode_is_whitespace(c); }
static int is_letter(uint32_t c) { return collm_tok_unicode_is_letter(c); }
static int is_number(uint32_t c) { return collm_tok_unicode_is_number(c); }
static int is_other(uint32_t c) { return !is_space(c) && !is_letter(c) && !is_number(c); } // [^\s\p{L}\p{N}]

static uint32_t lower_ascii(uint32_t c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

// 's 't 're 've 'm 'll 'd at cps[i]: match length or 0.
static size_t match_contraction(const uint32_t *cps, size_t n, size_t i, int ignore_case) {
    if (cps[i] != '\'' || i + 1 >= n) return 0;
    uint32_t a = cps[i + 1], b = i + 2 < n ? cps[i + 2] : 0;
    if (ignore_case) a = lower_ascii(a), b = lower_ascii(b);
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    return 0;
}

// \s+(?!\S) then \s+ at a whitespace cps[i]: the whitespace run, less its
// last character when a non-space follows and the run is longer than one.
static size_t match_space_run(const uint32_t *cps, size_t n, size_t i) {
    size_t e = i;
    while (e < n && is_space(cps[e])) e++;
    if (e < n && e - i >= 2) return e - 1 - i;
    return e - i;
}

// GPT-2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
size_t collm_tok_pretokenize_gpt2(const uint32_t *cps, size_t n, size_t *ends) {
    size_t n_pieces = 0, i = 0;
    while (i < n) {
        size_t m = match_contraction(cps, n, i, 0);
        if (!m) {
            size_t p = i + (cps[i] == ' ' && i + 1 < n);
            int (*cls)(uint32_t) = NULL;
            if (is_letter(cps[p])) cls = is_letter;
            else if (is_number(cps[p])) cls = is_number;
            else if (is_other(cps[p])) cls = is_other;
            if (cls) {
                size_t e = p;
                while (e < n && cls(cps[e])) e++;
                m = e - i;
            } else {
                m = match_space_run(cps, n, i);
            }
        }
        i += m;
        ends[n_pieces++] = i;
    }
    return n_pieces;
}

// Qwen2: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
size_t collm_tok_pretokenize_qwen2(const uint32_t *cps, size_t n, size_t *ends) {
    size_t n_pieces = 0, i = 0;
    while (i < n) {
        uint32_t c = cps[i];
        size_t m = match_contraction(cps, n, i, 1);
        if (!m) {
            if (is_letter(c) || (c != '\r' && c != '\n' && !is_number(c) && i + 1 < n && is_letter(cps[i + 1]))) {
                size_t e = i + 1;
                while (e < n && is_letter(cps[e])) e++;
                m = e - i; // [^\r\n\p{L}\p{N}]?\p{L}+
            } else if (is_number(c)) {
                m = 1; // \p{N}
            } else {
                size_t p = i + (c == ' ' && i + 1 < n && is_other(cps[i + 1]));
                if (is_other(cps[p])) { // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
                    size_t e = p;
                    while (e < n && is_other(cps[e])) e++;
                    while (e < n && (cps[e] == '\r' || cps[e] == '\n')) e++;
                    m = e - i;
                } else { // c is whitespace
                    size_t e = i, last_nl = n;
                    while (e < n && is_space(cps[e])) {
                        if (cps[e] == '\r' || cps[e] == '\n') last_nl = e;
                        e++;
                    }
                    if (last_nl < n) m = last_nl + 1 - i; // \s*[\r\n]+
                    else m = match_space_run(cps, n, i);  // \s+(?!\S)|\s+
                }
            }
        }
        i += m;
        ends[n_pieces++] = i;
    }
    return n_pieces;
}

// ---------------------------------------------------------------- BPE merging

typedef struct {
    int prev, next;
    size_t off, n; // bytes of the mapped word; n = 0 once merged away
} bpe_symbol;


static int try_add_bigram(const collm_tok_vocab *v, const char *w, const bpe_symbol *sym, int left, int right, collm_tok_bigram_heap *h) {
    if (left < 0 || right < 0) return COLLM_OK;
    int32_t rank = collm_tok_merge_rank(v, w + sym[left].off, sym[left].n, w + sym[right].off, sym[right].n);
    if (rank < 0) return COLLM_OK;
    return collm_tok_heap_push(h, (collm_tok_bigram){left, right, (double)rank, sym[left].n + sym[right].n});
}

// Merges one mapped word w[0..len) and appends its ids. sym: room for len symbols.
static int bpe_word(const collm_tok_vocab *v, const char *w, size_t len, bpe_symbol *sym, collm_tok_bigram_heap *heap, collm_tok_ids *out) {
    int n_sym = 0;
    for (size_t off = 0; off < len;) {
        size_t n = collm_tok_utf8_len((uint8_t)w[off]);
        if (n > len - off) n = len - off;
        sym[n_sym] = (bpe_symbol){n_sym - 1, -1, off, n};
        if (n_sym > 0) sym[n_sym - 1].next = n_sym;
        n_sym++;
        off += n;
    }
    heap->n = 0;
    int rc = COLLM_OK;
    for (int i = 1; i < n_sym && rc == COLLM_OK; i++) rc = try_add_bigram(v, w, sym, i - 1, i, heap);
    while (rc == COLLM_OK && heap->n > 0) {
        collm_tok_bigram b = collm_tok_heap_pop(heap);
        bpe_symbol *l = &sym[b.left], *r = &sym[b.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size) continue; // stale
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) sym[r->next].prev = b.left;
        rc = try_add_bigram(v, w, sym, l->prev, b.left, heap);
        if (rc == COLLM_OK) rc = try_add_bigram(v, w, sym, b.left, l->next, heap);
    }
    for (int i = 0; rc == COLLM_OK && n_sym > 0 && i >= 0; i = sym[i].next) {
        int32_t id = collm_tok_lookup(v, w + sym[i].off, sym[i].n);
        if (id >= 0) {
            rc = collm_tok_ids_push(out, id);
            continue;
        }
        // llama.cpp: a symbol that is no token is emitted byte by byte where a byte is a token
        for (size_t k = 0; k < sym[i].n && rc == COLLM_OK; k++) {
            int32_t bt = collm_tok_lookup(v, w + sym[i].off + k, 1);
            if (bt >= 0) rc = collm_tok_ids_push(out, bt);
        }
    }
    return rc;
}

int collm_tok_bpe_encode(const collm_tok_vocab *v, const char *text, size_t len, collm_tok_ids *out) {
    if (len == 0) return COLLM_OK;
    // (len) code points at most; NFC may expand up to 4x (+4)
    uint32_t *raw = collm_malloc(len * sizeof *raw);
    uint32_t *cps = v->pre == COLLM_TOK_PRE_QWEN2 ? collm_malloc((4 * len + 4) * sizeof *cps) : raw;
    size_t *ends = NULL;
    char *word = NULL;
    bpe_symbol *sym = NULL;
    collm_tok_bigram_heap heap = {0};
    int rc = COLLM_OK;
    if (!raw || !cps) {
        rc = COLLM_ERR_NOMEM;
        goto done;
    }
    size_t n = 0;
    for (size_t pos = 0; pos < len;) raw[n++] = collm_tok_utf8_decode((const uint8_t *)text, len, &pos);
    if (v->pre == COLLM_TOK_PRE_QWEN2) n = collm_tok_unicode_nfc(raw, n, cps);
    ends = collm_malloc(n * sizeof *ends);
    word = collm_malloc(n * 8);             // a code point: <= 4 UTF-8 bytes, each mapped to <= 2 bytes
    sym = collm_malloc(n * 8 * sizeof *sym); // at most one symbol per byte of a mapped piece
    if (!ends || !word || !sym) {
        rc = COLLM_ERR_NOMEM;
        goto done;
    }
    size_t n_pieces = v->pre == COLLM_TOK_PRE_QWEN2 ? collm_tok_pretokenize_qwen2(cps, n, ends) : collm_tok_pretokenize_gpt2(cps, n, ends);
    size_t start = 0;
    for (size_t k = 0; k < n_pieces && rc == COLLM_OK; k++) {
        size_t wl = 0;
        for (size_t i = start; i < ends[k]; i++) {
            char u8[4];
            size_t ul = collm_tok_utf8_encode(cps[i], u8);
            for (size_t b = 0; b < ul; b++) {
                const char *m = v->byte_unicode[(uint8_t)u8[b]];
                size_t ml = strlen(m);
                memcpy(word + wl, m, ml);
                wl += ml;
            }
        }
        rc = bpe_word(v, word, wl, sym, &heap, out);
        start = ends[k];
    }
done:
    free(raw);
    if (cps != raw) free(cps);
    free(ends);
    free(word);
    free(sym);
    free(heap.items);
    return rc;
}
