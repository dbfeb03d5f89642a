// collm error reporting: functions return COLLM_OK (0) or a negative code, or
// NULL, and leave in per-thread storage (like errno) what happened:
//   collm_last_error_code()   the code (COLLM_ERR_NOT_FOUND, ...; COLLM_OK if none)
//   collm_last_error()        a one-line message, always valid UTF-8
//   collm_last_error_field()  the offending field, key or option ("user",
//                             "train.cursor", "--lr"), or NULL if none
// Callers branch on the code (an HTTP layer maps it to a status, a CLI to an
// exit status) and show the message; the library never exits.
#ifndef COLLM_ERROR_H
#define COLLM_ERROR_H

#include "collm/version.h"

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

// The values are stable (part of the ABI): new codes are appended.
enum {
    COLLM_OK = 0,
    COLLM_ERR = -1,             // generic failure (none of the below)
    COLLM_ERR_IO = -2,          // open/read/write/rename failed
    COLLM_ERR_FORMAT = -3,      // malformed contents (file, JSON body, ...)
    COLLM_ERR_ARG = -4,         // invalid argument (wrong type, dimension, combination)
    COLLM_ERR_NOMEM = -5,       // allocation failed
    COLLM_ERR_NOT_FOUND = -6,   // no such file, user, key or tensor
    COLLM_ERR_UNSUPPORTED = -7, // valid but not handled (architecture, tensor type, version)
    COLLM_ERR_BUSY = -8,        // a resource is in use; retry later
    COLLM_ERR_RANGE = -9,       // a value (id, size, count) outside its allowed range
    COLLM_ERR_TOO_LARGE = -10,  // an input exceeds a configured size limit
};

// Sets the code and message (printf-style), clears the field, and returns
// `code`, so callers can write
// `return collm_error(COLLM_ERR_FORMAT, "%s: line %d: ...", path, line);`
COLLM_API int collm_error(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
// Same, naming the offending field (copied; NULL = none):
// `return collm_error_field(COLLM_ERR_RANGE, "k", "k: %d exceeds %d", k, max);`
COLLM_API int collm_error_field(int code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
// Prefixes the current message with a context string ("ctx: old message"),
// sets the code to `code` and keeps the field.
COLLM_API int collm_error_prefix(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
// The calling thread's last message ("" if none). Bytes that are not valid
// UTF-8 (a Latin-1 path, a cut sequence) are replaced by U+FFFD, and a long
// message is cut at a character boundary.
COLLM_API const char *collm_last_error(void);
// The calling thread's last code (COLLM_OK after collm_clear_error).
COLLM_API int collm_last_error_code(void);
// The calling thread's last offending field, or NULL (valid UTF-8, like the message).
COLLM_API const char *collm_last_error_field(void);
// A short fixed description of a code ("not found", "invalid argument", ...);
// never NULL ("unknown error code" for values outside the enum).
COLLM_API const char *collm_strerror(int code);
COLLM_API void collm_clear_error(void);

// Copies `src` (n bytes) to `dst` (cap bytes, cap >= 1, NUL-terminated) as
// valid UTF-8: malformed, overlong, surrogate or truncated sequences become
// U+FFFD, and the copy stops before a character that would not fit. Returns
// the bytes written (without the NUL).
COLLM_API size_t collm_utf8_sanitize(char *dst, size_t cap, const char *src, size_t n);
// 1 if the n bytes at s are valid UTF-8 (no NUL needed), else 0.
COLLM_API int collm_utf8_valid(const char *s, size_t n);

// malloc/calloc that set a message on failure.
COLLM_API void *collm_malloc(size_t n);
COLLM_API void *collm_calloc(size_t count, size_t size);

#ifdef __cplusplus
}
#endif

#endif
