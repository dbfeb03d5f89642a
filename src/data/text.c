// Raw-text helpers of the dataset builders (see text.h).
#include "data/text.h"

#include "collm/error.h"

#include <stdlib.h>
#include <string.h>

int collm_text_valid_utf8(const unsigned char *s, size_t n) {
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
char *collm_text_to_utf8(const char *s, size_t n, int is_utf8) {
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

static uint64_t str_hash(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

int collm_strmap_init(collm_strmap *m, size_t expect) {
    memset(m, 0, sizeof *m);
    m->cap = 16;
    while (m->cap < 2 * expect + 16) m->cap *= 2;
    m->key = collm_calloc(m->cap, sizeof *m->key);
    m->klen = collm_calloc(m->cap, sizeof *m->klen);
    m->val = collm_calloc(m->cap, sizeof *m->val);
    return m->key && m->klen && m->val ? COLLM_OK : COLLM_ERR_NOMEM;
}

void collm_strmap_free(collm_strmap *m) {
    free(m->key);
    free(m->klen);
    free(m->val);
}

// Returns the slot of key (existing or empty).
static size_t strmap_slot(const collm_strmap *m, const char *k, size_t n) {
    size_t i = str_hash(k, n) & (m->cap - 1);
    while (m->key[i] && !(m->klen[i] == n && memcmp(m->key[i], k, n) == 0)) i = (i + 1) & (m->cap - 1);
    return i;
}

int32_t collm_strmap_get(const collm_strmap *m, const char *k, size_t n) {
    size_t i = strmap_slot(m, k, n);
    return m->key[i] ? m->val[i] : -1;
}

// Sets key -> v (overwrites). Grows at half load.
int collm_strmap_put(collm_strmap *m, const char *k, size_t n, int32_t v) {
    if (2 * (m->n + 1) > m->cap) {
        collm_strmap big;
        if (collm_strmap_init(&big, m->cap) != COLLM_OK) return COLLM_ERR_NOMEM;
        for (size_t i = 0; i < m->cap; i++)
            if (m->key[i]) {
                size_t j = strmap_slot(&big, m->key[i], m->klen[i]);
                big.key[j] = m->key[i], big.klen[j] = m->klen[i], big.val[j] = m->val[i];
            }
        big.n = m->n;
        collm_strmap_free(m);
        *m = big;
    }
    size_t i = strmap_slot(m, k, n);
    if (!m->key[i]) m->n++;
    m->key[i] = k, m->klen[i] = n, m->val[i] = v;
    return COLLM_OK;
}
