// Per-thread error state (see include/collm/error.h): code, message, field.
#include "collm/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ERROR_CAP 1024
#define FIELD_CAP 128
static _Thread_local char error_message[ERROR_CAP];
static _Thread_local char error_field[FIELD_CAP];
static _Thread_local int error_code, error_has_field;

// Length of the valid UTF-8 sequence at s (n bytes available), 0 if the bytes
// there are not one (stray continuation, overlong form, surrogate, > U+10FFFF,
// truncated). Ranges from the Unicode standard, table 3-7.
static size_t utf8_seq(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t len;
    unsigned lo = 0x80, hi = 0xBF; // allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0) lo = 0xA0;      // overlong
        else if (c == 0xED) hi = 0x9F; // surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0) lo = 0x90;      // overlong
        else if (c == 0xF4) hi = 0x8F; // > U+10FFFF
    } else return 0;
    if (n < len || s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < len; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    return len;
}

int collm_utf8_valid(const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t len = utf8_seq(p + i, n - i);
        if (!len) return 0;
        i += len;
    }
    return 1;
}

size_t collm_utf8_sanitize(char *dst, size_t cap, const char *src, size_t n) {
    static const char repl[] = "\xEF\xBF\xBD"; // U+FFFD
    const unsigned char *p = (const unsigned char *)src;
    size_t o = 0;
    if (cap == 0) return 0;
    for (size_t i = 0; i < n;) {
        size_t len = utf8_seq(p + i, n - i);
        const char *from = len ? src + i : repl;
        size_t m = len ? len : 3;
        if (o + m >= cap) break; // keep whole characters and room for the NUL
        memcpy(dst + o, from, m);
        o += m;
        i += len ? len : 1; // one U+FFFD per bad byte
    }
    dst[o] = '\0';
    return o;
}

// Formats into the message buffer as valid UTF-8; when the text is longer
// than the buffer, a sequence cut by the truncation is dropped, not replaced.
static void set_message(const char *fmt, va_list ap) {
    char raw[ERROR_CAP];
    int n = vsnprintf(raw, ERROR_CAP, fmt, ap);
    size_t len = n < 0 ? 0 : (size_t)n < ERROR_CAP ? (size_t)n : ERROR_CAP - 1;
    if (n >= ERROR_CAP) { // back up over a trailing partial sequence
        size_t k = len, back = 0;
        while (k > 0 && back < 3 && ((unsigned char)raw[k - 1] & 0xC0) == 0x80) k--, back++;
        if (k > 0 && (unsigned char)raw[k - 1] >= 0xC0 && !utf8_seq((unsigned char *)raw + k - 1, len - k + 1))
            len = k - 1;
    }
    collm_utf8_sanitize(error_message, ERROR_CAP, raw, len);
}

int collm_error(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    set_message(fmt, ap);
    va_end(ap);
    error_code = code;
    error_has_field = 0;
    return code;
}

int collm_error_field(int code, const char *field, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    set_message(fmt, ap);
    va_end(ap);
    error_code = code;
    error_has_field = field != NULL;
    if (field) collm_utf8_sanitize(error_field, FIELD_CAP, field, strlen(field));
    return code;
}

int collm_error_prefix(int code, const char *fmt, ...) {
    char prefix[ERROR_CAP], old[ERROR_CAP];
    memcpy(old, error_message, ERROR_CAP);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, ERROR_CAP, fmt, ap);
    va_end(ap);
    int saved_field = error_has_field;
    collm_error(code, "%s: %s", prefix, old);
    error_has_field = saved_field;
    return code;
}

const char *collm_last_error(void) { return error_message; }
int collm_last_error_code(void) { return error_code; }
const char *collm_last_error_field(void) { return error_has_field ? error_field : NULL; }

void collm_clear_error(void) {
    error_message[0] = '\0';
    error_code = COLLM_OK;
    error_has_field = 0;
}

const char *collm_strerror(int code) {
    switch (code) {
    case COLLM_OK: return "success";
    case COLLM_ERR: return "error";
    case COLLM_ERR_IO: return "input/output error";
    case COLLM_ERR_FORMAT: return "malformed data";
    case COLLM_ERR_ARG: return "invalid argument";
    case COLLM_ERR_NOMEM: return "out of memory";
    case COLLM_ERR_NOT_FOUND: return "not found";
    case COLLM_ERR_UNSUPPORTED: return "unsupported";
    case COLLM_ERR_BUSY: return "busy";
    case COLLM_ERR_RANGE: return "out of range";
    case COLLM_ERR_TOO_LARGE: return "too large";
    default: return "unknown error code";
    }
}

void *collm_malloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) collm_error(COLLM_ERR_NOMEM, "out of memory allocating %zu bytes", n);
    return p;
}

void *collm_calloc(size_t count, size_t size) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) collm_error(COLLM_ERR_NOMEM, "out of memory allocating %zu x %zu bytes", count, size);
    return p;
}
