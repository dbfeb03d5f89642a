// File helpers: whole-file reads, read-only mmap, and atomic writes
// (temp file in the same folder, fsync, rename, fsync of the folder), so a
// crash leaves either the old file or the new one, never a torn one.
#ifndef COLLM_FILEIO_H
#define COLLM_FILEIO_H

#include "collm/version.h"

#include <stddef.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    const unsigned char *data; // NULL for an empty file
    size_t size;
} collm_mapped_file;

// Maps `path` read-only. Returns COLLM_OK or an error naming the path
// (COLLM_ERR_NOT_FOUND if it does not exist, else COLLM_ERR_IO).
COLLM_API int collm_map_file(const char *path, collm_mapped_file *out);
COLLM_API void collm_unmap_file(collm_mapped_file *map);

// Reads a whole file into a malloc'd, NUL-terminated buffer (*out, *size).
// Errors as collm_map_file.
COLLM_API int collm_read_file(const char *path, char **out, size_t *size);

// Calls write_fn(f, ctx) on a temp file next to `path` ("<path>.tmp.<pid>.
// XXXXXX", made by mkstemp: unpredictable, created exclusively, never an
// existing file or symlink), then fsyncs and renames it over `path`. write_fn
// returns COLLM_OK or an error code; a stream error (ferror) fails too. On any
// failure the temp file is removed and `path` is untouched.
typedef int (*collm_write_fn)(FILE *f, void *ctx);
COLLM_API int collm_write_atomic(const char *path, collm_write_fn write_fn, void *ctx);

// Removes the temp files of collm_write_atomic(path) that a killed process
// left behind ("<path>.tmp.<pid>[.XXXXXX]" whose pid no longer runs); those
// of live processes stay. *n_removed (may be NULL) counts them. A missing
// folder is not an error.
COLLM_API int collm_remove_stale_temps(const char *path, int *n_removed);

// Writes all `n` bytes or sets an error; returns COLLM_OK / COLLM_ERR_IO.
COLLM_API int collm_fwrite_all(FILE *f, const void *data, size_t n);

// Checks, before any long work, that `path` can be written: its folder exists
// and is writable and `path` is not a folder. COLLM_OK or an error naming both.
COLLM_API int collm_check_output_path(const char *path);

// Creates a directory (and parents); OK if it already exists.
COLLM_API int collm_mkdir_p(const char *path);

#ifdef __cplusplus
}
#endif

#endif
