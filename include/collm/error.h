// collm error reporting: functions return COLLM_OK (0) or a negative code, or
// NULL, and leave a one-line message in a per-thread buffer (like errno, but
// with text). The CLI prints collm_last_error(); the library never exits.
#ifndef COLLM_ERROR_H
#define COLLM_ERROR_H

#include "collm/version.h"

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
    COLLM_OK = 0,
    COLLM_ERR = -1,        // generic failure; see collm_last_error()
    COLLM_ERR_IO = -2,     // open/read/write/rename failed
    COLLM_ERR_FORMAT = -3, // malformed file contents
    COLLM_ERR_ARG = -4,    // bad argument (unknown id, wrong dimension, ...)
    COLLM_ERR_NOMEM = -5,  // allocation failed
};

// Sets the message (printf-style) and returns `code`, so callers can write
// `return collm_error(COLLM_ERR_FORMAT, "%s: line %d: ...", path, line);`
COLLM_API int collm_error(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
// The calling thread's last message ("" if none).
COLLM_API const char *collm_last_error(void);
// Prefixes the current message with a context string: "ctx: old message".
COLLM_API int collm_error_prefix(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
COLLM_API void collm_clear_error(void);

// malloc/calloc that set a message on failure.
COLLM_API void *collm_malloc(size_t n);
COLLM_API void *collm_calloc(size_t count, size_t size);

#ifdef __cplusplus
}
#endif

#endif
