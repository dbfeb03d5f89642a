// SentencePiece-BPE encoding of one raw-text fragment, the algorithm of
// llama.cpp's llm_tokenizer_spm_session: characters are merged pairwise,
// always the adjacent pair whose concatenation is the vocab token with the
// highest score (ties: leftmost), until no adjacent pair forms a token.
#include "collm/error.h"
#include "tok_internal.h"
#include "tok_unicode.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    int prev, next; // linked list over symbols, -1 at the ends
    size_t off, n;  // bytes [off, off + n) of the escaped text; n = 0 once merged away
} spm_symbol;


// Queues (left, right) if their concatenation is a token.
static int try_add_bigram(const collm_tok_vocab *v, const char *text, const spm_symbol *sym, int left, int right, collm_tok_bigram_heap *h) {
    if (left < 0 || right < 0) return COLLM_OK;
    size_t n = sym[left].n + sym[right].n;
    int32_t id = collm_tok_lookup(v, text + sym[left].off, n);
    if (id < 0) return COLLM_OK;
    return collm_tok_heap_push(h, (collm_tok_bigram){left, right, -(double)v->scores[id], n});
}

int collm_tok_spm_encode(const collm_tok_vocab *v, const char *text, size_t len, int add_prefix, collm_tok_ids *out) {
    static const char space_mark[3] = {(char)0xE2, (char)0x96, (char)0x81}; // U+2581 "▁"
    if (len == 0) return COLLM_OK; // llama.cpp never tokenizes an empty fragment
    // escaped text: optional dummy prefix, then every ' ' replaced by "▁"
    size_t n_spaces = 0;
    for (size_t i = 0; i < len; i++) n_spaces += text[i] == ' ';
    size_t esc_len = len + 2 * n_spaces + (add_prefix ? 3 : 0);
    char *esc = collm_malloc(esc_len);
    spm_symbol *sym = collm_malloc(esc_len * sizeof *sym);
    collm_tok_bigram_heap heap = {0};
    int rc = COLLM_OK;
    if (!esc || !sym) {
        rc = COLLM_ERR_NOMEM;
        goto done;
    }
    size_t p = 0;
    if (add_prefix) memcpy(esc, space_mark, 3), p = 3;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') memcpy(esc + p, space_mark, 3), p += 3;
        else esc[p++] = text[i];
    }

    // one symbol per UTF-8 character (length from the lead byte, clipped at the end)
    int n_sym = 0;
    for (size_t off = 0; off < esc_len;) {
        size_t n = collm_tok_utf8_len((uint8_t)esc[off]);
        if (n > esc_len - off) n = esc_len - off;
        sym[n_sym] = (spm_symbol){n_sym - 1, -1, off, n};
        if (n_sym > 0) sym[n_sym - 1].next = n_sym;
        n_sym++;
        off += n;
    }
    for (int i = 1; i < n_sym && rc == COLLM_OK; i++) rc = try_add_bigram(v, esc, sym, i - 1, i, &heap);

    while (rc == COLLM_OK && heap.n > 0) {
        collm_tok_bigram b = collm_tok_heap_pop(&heap);
        spm_symbol *l = &sym[b.left], *r = &sym[b.right];
        // stale entry: one side was merged away or grew since it was queued
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size) continue;
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) sym[r->next].prev = b.left;
        rc = try_add_bigram(v, esc, sym, l->prev, b.left, &heap);
        if (rc == COLLM_OK) rc = try_add_bigram(v, esc, sym, b.left, l->next, &heap);
    }

    for (int i = 0; rc == COLLM_OK && i >= 0 && n_sym > 0; i = sym[i].next) {
        int32_t id = collm_tok_lookup(v, esc + sym[i].off, sym[i].n);
        if (id >= 0) {
            rc = collm_tok_ids_push(out, id);
            continue;
        }
        // not a token: byte fallback, one <0xXX> per byte
        for (size_t k = 0; k < sym[i].n && rc == COLLM_OK; k++) {
            int32_t bt = v->byte_token[(uint8_t)esc[sym[i].off + k]];
            if (bt < 0) bt = v->unk;
            if (bt < 0)
                rc = collm_error(COLLM_ERR_FORMAT, "tokenizer: byte 0x%02X has no <0x%02X> token and the vocab has no unknown token",
                                 (uint8_t)esc[sym[i].off + k], (uint8_t)esc[sym[i].off + k]);
            else rc = collm_tok_ids_push(out, bt);
        }
    }
done:
    free(esc);
    free(sym);
    free(heap.items);
    return rc;
}
