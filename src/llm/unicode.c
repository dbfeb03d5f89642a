// UTF-8, character classes and NFC for the tokenizers (see tok_unicode.h).
#include "tok_unicode.h"

#include <string.h>

size_t collm_tok_utf8_len(uint8_t first) {
    static const uint8_t len_by_high_nibble[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return len_by_high_nibble[first >> 4];
}

uint32_t collm_tok_utf8_decode(const uint8_t *s, size_t n, size_t *pos) {
    size_t i = *pos;
    uint8_t b0 = s[i];
    // Like llama.cpp's unicode_cpt_from_utf8: checks lead and continuation
    // bits and truncation, not overlong forms or surrogates.
    if (!(b0 & 0x80)) {
        *pos = i + 1;
        return b0;
    }
    size_t len;
    uint32_t cp;
    if ((b0 & 0xE0) == 0xC0) len = 2, cp = b0 & 0x1F;
    else if ((b0 & 0xF0) == 0xE0) len = 3, cp = b0 & 0x0F;
    else if ((b0 & 0xF8) == 0xF0) len = 4, cp = b0 & 0x07;
    else {
        *pos = i + 1; // stray continuation byte or 0xF8..0xFF
        return COLLM_TOK_REPLACEMENT_CHAR;
    }
    if (i + len > n) {
        *pos = i + 1;
        return COLLM_TOK_REPLACEMENT_CHAR;
    }
    for (size_t k = 1; k < len; k++) {
        if ((s[i + k] & 0xC0) != 0x80) {
            *pos = i + 1;
            return COLLM_TOK_REPLACEMENT_CHAR;
        }
        cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    *pos = i + len;
    return cp;
}

size_t collm_tok_utf8_encode(uint32_t cp, char *out) {
    uint8_t *o = (uint8_t *)out;
    if (cp < 0x80) {
        o[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (uint8_t)(0xC0 | (cp >> 6));
        o[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (uint8_t)(0xE0 | (cp >> 12));
        o[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (uint8_t)(0xF0 | ((cp >> 18) & 0x07));
    o[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

// Binary search in sorted, disjoint {first, last} ranges.
static int in_ranges(const uint32_t (*ranges)[2], int n, uint32_t cp) {
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (cp < ranges[mid][0]) hi = mid - 1;
        else if (cp > ranges[mid][1]) lo = mid + 1;
        else return 1;
    }
    return 0;
}

int collm_tok_unicode_is_letter(uint32_t cp) {
    if (cp < 0x80) return (cp | 0x20) >= 'a' && (cp | 0x20) <= 'z';
    return in_ranges(collm_tok_unicode_letter_ranges, collm_tok_unicode_n_letter_ranges, cp);
}

int collm_tok_unicode_is_number(uint32_t cp) {
    if (cp < 0x80) return cp >= '0' && cp <= '9';
    return in_ranges(collm_tok_unicode_number_ranges, collm_tok_unicode_n_number_ranges, cp);
}

int collm_tok_unicode_is_whitespace(uint32_t cp) {
    // The White_Space property (PropList.txt), what \s means in the Unicode
    // regex engines used by Hugging Face tokenizers and llama.cpp.
    if (cp <= 0x20) return cp == 0x20 || (cp >= 0x09 && cp <= 0x0D);
    return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
           cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

int collm_tok_unicode_ccc(uint32_t cp) {
    if (cp < 0x300) return 0;
    int lo = 0, hi = collm_tok_unicode_n_ccc_ranges - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (cp < collm_tok_unicode_ccc_ranges[mid][0]) hi = mid - 1;
        else if (cp > collm_tok_unicode_ccc_ranges[mid][1]) lo = mid + 1;
        else return (int)collm_tok_unicode_ccc_ranges[mid][2];
    }
    return 0;
}

// Hangul syllable arithmetic (Unicode ch. 3.12).
enum { HANGUL_S = 0xAC00, HANGUL_L = 0x1100, HANGUL_V = 0x1161, HANGUL_T = 0x11A7,
       HANGUL_L_N = 19, HANGUL_V_N = 21, HANGUL_T_N = 28, HANGUL_N = HANGUL_V_N * HANGUL_T_N,
       HANGUL_S_N = HANGUL_L_N * HANGUL_N };

static size_t decompose_into(uint32_t cp, uint32_t *out) {
    if (cp >= HANGUL_S && cp < HANGUL_S + HANGUL_S_N) {
        uint32_t s = cp - HANGUL_S;
        out[0] = HANGUL_L + s / HANGUL_N;
        out[1] = HANGUL_V + (s % HANGUL_N) / HANGUL_T_N;
        if (s % HANGUL_T_N == 0) return 2;
        out[2] = HANGUL_T + s % HANGUL_T_N;
        return 3;
    }
    if (cp >= 0xC0) {
        int lo = 0, hi = collm_tok_unicode_n_decomp - 1;
        while (lo <= hi) {
            int mid = (lo + hi) / 2;
            if (cp < collm_tok_unicode_decomp[mid][0]) hi = mid - 1;
            else if (cp > collm_tok_unicode_decomp[mid][0]) lo = mid + 1;
            else {
                size_t k = decompose_into(collm_tok_unicode_decomp[mid][1], out);
                if (collm_tok_unicode_decomp[mid][2]) k += decompose_into(collm_tok_unicode_decomp[mid][2], out + k);
                return k;
            }
        }
    }
    out[0] = cp;
    return 1;
}

// Primary composite of (a, b), or 0.
static uint32_t compose_pair(uint32_t a, uint32_t b) {
    if (a >= HANGUL_L && a < HANGUL_L + HANGUL_L_N && b >= HANGUL_V && b < HANGUL_V + HANGUL_V_N)
        return HANGUL_S + ((a - HANGUL_L) * HANGUL_V_N + (b - HANGUL_V)) * HANGUL_T_N;
    if (a >= HANGUL_S && a < HANGUL_S + HANGUL_S_N && (a - HANGUL_S) % HANGUL_T_N == 0 && b > HANGUL_T &&
        b < HANGUL_T + HANGUL_T_N)
        return a + (b - HANGUL_T);
    int lo = 0, hi = collm_tok_unicode_n_comp - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        const uint32_t *e = collm_tok_unicode_comp[mid];
        if (a < e[0] || (a == e[0] && b < e[1])) hi = mid - 1;
        else if (a > e[0] || (a == e[0] && b > e[1])) lo = mid + 1;
        else return e[2];
    }
    return 0;
}

size_t collm_tok_unicode_nfc(const uint32_t *cps, size_t n, uint32_t *out) {
    // Fast path: below U+0300 there is nothing to decompose or compose with.
    size_t i = 0;
    while (i < n && cps[i] < 0x300) i++;
    if (i == n) {
        memcpy(out, cps, n * sizeof *cps);
        return n;
    }
    // 1. canonical decomposition (at most 4 code points per input one)
    size_t m = 0;
    for (i = 0; i < n; i++) m += decompose_into(cps[i], out + m);
    // 2. canonical ordering: stable insertion sort of each run of non-starters by ccc
    for (i = 1; i < m; i++) {
        int c = collm_tok_unicode_ccc(out[i]);
        if (c == 0) continue;
        size_t j = i;
        uint32_t cp = out[i];
        while (j > 0 && collm_tok_unicode_ccc(out[j - 1]) > c) {
            out[j] = out[j - 1];
            j--;
        }
        out[j] = cp;
    }
    // 3. canonical composition, in place (the write index never passes the read index)
    if (m == 0) return 0;
    size_t starter = 0, len = 1;
    int last_class = collm_tok_unicode_ccc(out[0]);
    if (last_class != 0) last_class = 256; // no starter yet: block composition
    for (i = 1; i < m; i++) {
        uint32_t cp = out[i];
        int c = collm_tok_unicode_ccc(cp);
        uint32_t composite = compose_pair(out[starter], cp);
        if (composite && (last_class < c || last_class == 0)) {
            out[starter] = composite;
            continue;
        }
        if (c == 0) starter = len;
        last_class = c;
        out[len++] = cp;
    }
    return len;
}
