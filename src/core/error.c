// Per-thread error message buffer (see include/collm/error.h).
#include "collm/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ERROR_CAP 1024
static _Thread_local char error_message[ERROR_CAP];

int collm_error(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(error_message, ERROR_CAP, fmt, ap);
    va_end(ap);
    return code;
}

int collm_error_prefix(int code, const char *fmt, ...) {
    char old[ERROR_CAP];
    memcpy(old, error_message, ERROR_CAP);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(error_message, ERROR_CAP, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    if (n < ERROR_CAP - 3) {
        memcpy(error_message + n, ": ", 2);
        size_t room = (size_t)(ERROR_CAP - n - 2);
        size_t len = strnlen(old, room - 1);
        memcpy(error_message + n + 2, old, len);
        error_message[n + 2 + len] = '\0';
    }
    return code;
}

const char *collm_last_error(void) { return error_message; }
void collm_clear_error(void) { error_message[0] = '\0'; }

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
