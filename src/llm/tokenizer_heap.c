// The priority queue of merge candidates shared by the SentencePiece and
// byte-level BPE tokenizers (see tok_internal.h).
#include "collm/error.h"
#include "tok_internal.h"

#include <stdlib.h>

static int bigram_before(const collm_tok_bigram *a, const collm_tok_bigram *b) {
    return a->priority < b->priority || (a->priority == b->priority && a->left < b->left);
}

int collm_tok_heap_push(collm_tok_bigram_heap *h, collm_tok_bigram b) {
    if (h->n == h->cap) {
        size_t cap = h->cap ? 2 * h->cap : 64;
        collm_tok_bigram *p = realloc(h->items, cap * sizeof *p);
        if (!p) return collm_error(COLLM_ERR_NOMEM, "tokenizer: out of memory (merge queue)");
        h->items = p;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!bigram_before(&b, &h->items[parent])) break;
        h->items[i] = h->items[parent];
        i = parent;
    }
    h->items[i] = b;
    return COLLM_OK;
}

collm_tok_bigram collm_tok_heap_pop(collm_tok_bigram_heap *h) {
    collm_tok_bigram top = h->items[0];
    collm_tok_bigram last = h->items[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && bigram_before(&h->items[c + 1], &h->items[c])) c++;
        if (!bigram_before(&h->items[c], &last)) break;
        h->items[i] = h->items[c];
        i = c;
    }
    if (h->n) h->items[i] = last;
    return top;
}
