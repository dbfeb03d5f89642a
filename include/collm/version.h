// Version, export and C++ linkage macros shared by every public header.
//
// COLLM_API marks the functions libcollm exports: the library is built with
// -fvisibility=hidden, so anything not marked stays internal to it (and its
// names cannot collide with another library's, e.g. llama.cpp's ggml_* and
// gguf_*, in one program).
#ifndef COLLM_VERSION_H
#define COLLM_VERSION_H

#define COLLM_VERSION_MAJOR 0
#define COLLM_VERSION_MINOR 2
#define COLLM_VERSION_PATCH 0
#define COLLM_VERSION_STRING "0.2.0"
// One integer that grows with each release: 10000*major + 100*minor + patch.
#define COLLM_VERSION_NUMBER (COLLM_VERSION_MAJOR * 10000 + COLLM_VERSION_MINOR * 100 + COLLM_VERSION_PATCH)

#if defined(__GNUC__) || defined(__clang__)
#define COLLM_API __attribute__((visibility("default")))
#else
#define COLLM_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

// The library's version string at run time (may differ from the header's
// COLLM_VERSION_STRING when a program runs against a newer shared library).
COLLM_API const char *collm_version(void);

#ifdef __cplusplus
}
#endif

#endif
