// GGUF v3: reader (mmap, every read bounds-checked) and writer (atomic).
//
// File layout (little-endian): magic "GGUF", u32 version (3), u64 n_tensors,
// u64 n_kv; n_kv key/value pairs (gguf string key, u32 type, value); n_tensors
// tensor infos (name, u32 n_dims, u64 ne[n_dims] innermost first, u32 ggml
// type, u64 offset relative to the data section); padding to
// `general.alignment` (default 32); the data section.
//
// Threading: an open collm_gguf_file is read-only: threads may read it at
// once. A collm_gguf_writer belongs to one thread at a time.
#ifndef COLLM_GGUF_H
#define COLLM_GGUF_H

#include "collm/version.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Value types of metadata.
typedef enum {
    COLLM_GGUF_TYPE_UINT8 = 0,
    COLLM_GGUF_TYPE_INT8 = 1,
    COLLM_GGUF_TYPE_UINT16 = 2,
    COLLM_GGUF_TYPE_INT16 = 3,
    COLLM_GGUF_TYPE_UINT32 = 4,
    COLLM_GGUF_TYPE_INT32 = 5,
    COLLM_GGUF_TYPE_FLOAT32 = 6,
    COLLM_GGUF_TYPE_BOOL = 7,
    COLLM_GGUF_TYPE_STRING = 8,
    COLLM_GGUF_TYPE_ARRAY = 9,
    COLLM_GGUF_TYPE_UINT64 = 10,
    COLLM_GGUF_TYPE_INT64 = 11,
    COLLM_GGUF_TYPE_FLOAT64 = 12,
    COLLM_GGUF_TYPE_COUNT
} collm_gguf_type;

// Tensor element types (ggml numbering). Those collm can decode are listed
// in collm_gguf_tensor_type_supported().
typedef enum {
    COLLM_GGML_TYPE_F32 = 0,
    COLLM_GGML_TYPE_F16 = 1,
    COLLM_GGML_TYPE_Q4_0 = 2,
    COLLM_GGML_TYPE_Q4_1 = 3,
    COLLM_GGML_TYPE_Q5_0 = 6,
    COLLM_GGML_TYPE_Q5_1 = 7,
    COLLM_GGML_TYPE_Q8_0 = 8,
    COLLM_GGML_TYPE_Q2_K = 10,
    COLLM_GGML_TYPE_Q3_K = 11,
    COLLM_GGML_TYPE_Q4_K = 12,
    COLLM_GGML_TYPE_Q5_K = 13,
    COLLM_GGML_TYPE_Q6_K = 14,
    COLLM_GGML_TYPE_I32 = 26,
    COLLM_GGML_TYPE_BF16 = 30,
} collm_ggml_type;

#define COLLM_GGUF_MAX_DIMS 4

typedef struct collm_gguf_file collm_gguf_file; // opaque: an open, validated, mmapped file

typedef struct {
    const char *name;          // NUL-terminated copy
    int n_dims;
    int64_t ne[COLLM_GGUF_MAX_DIMS]; // innermost first; unused dims are 1
    collm_ggml_type type;
    uint64_t offset;           // relative to the data section
    size_t n_bytes;
    const void *data;          // points into the mapping
} collm_gguf_tensor_info;

// Opens and validates a file: every count, length, type, offset and size is
// checked against the file size; duplicate keys or tensor names are errors.
// Returns NULL and sets an error naming the path and the byte offset or key.
COLLM_API collm_gguf_file *collm_gguf_open(const char *path);
// The same file seen through a namespace: collm_gguf_find_key and
// collm_gguf_find_tensor (and every getter by key) look up ns + name, so a
// model stored in a checkpoint under "fuse.0." reads as if it stood alone.
// Iteration by index still sees every key and tensor. Close it as usual.
COLLM_API collm_gguf_file *collm_gguf_open_ns(const char *path, const char *ns);
COLLM_API void collm_gguf_close(collm_gguf_file *f);

COLLM_API uint32_t collm_gguf_version(const collm_gguf_file *f);
COLLM_API size_t collm_gguf_alignment(const collm_gguf_file *f);
COLLM_API size_t collm_gguf_data_offset(const collm_gguf_file *f); // file offset of the data section
COLLM_API size_t collm_gguf_file_size(const collm_gguf_file *f);

// --- metadata ---
COLLM_API int64_t collm_gguf_n_kv(const collm_gguf_file *f);
COLLM_API const char *collm_gguf_key(const collm_gguf_file *f, int64_t i);
COLLM_API int64_t collm_gguf_find_key(const collm_gguf_file *f, const char *key); // -1 if absent
COLLM_API collm_gguf_type collm_gguf_kv_type(const collm_gguf_file *f, int64_t i);
// For arrays: element type and count.
COLLM_API collm_gguf_type collm_gguf_arr_type(const collm_gguf_file *f, int64_t i);
COLLM_API uint64_t collm_gguf_arr_n(const collm_gguf_file *f, int64_t i);
// Pointer to the raw little-endian elements of a numeric array (NULL for strings).
COLLM_API const void *collm_gguf_arr_data(const collm_gguf_file *f, int64_t i);
// The j-th string of a string array (length in *len; not NUL-terminated).
COLLM_API const char *collm_gguf_arr_str(const collm_gguf_file *f, int64_t i, uint64_t j, uint64_t *len);

// Typed getters by key. They return COLLM_OK, or an error if the key is
// missing or has another type (the message names the key). Integer getters
// accept any integer type whose value fits.
COLLM_API int collm_gguf_get_u32(const collm_gguf_file *f, const char *key, uint32_t *out);
COLLM_API int collm_gguf_get_i64(const collm_gguf_file *f, const char *key, int64_t *out);
COLLM_API int collm_gguf_get_f32(const collm_gguf_file *f, const char *key, float *out);
COLLM_API int collm_gguf_get_bool(const collm_gguf_file *f, const char *key, int *out);
// Returns a pointer into the mapping (length in *len, not NUL-terminated).
COLLM_API int collm_gguf_get_str(const collm_gguf_file *f, const char *key, const char **out, uint64_t *len);
// Convenience: malloc'd NUL-terminated copy of a string value, or NULL.
COLLM_API char *collm_gguf_get_str_dup(const collm_gguf_file *f, const char *key);
// Human-readable value (scalars; arrays as "[type x n]"), into buf.
COLLM_API void collm_gguf_format_value(const collm_gguf_file *f, int64_t i, char *buf, size_t cap);
// Like collm_gguf_format_value, but arrays also list their first max_elems elements:
// "[u32 x 3] 1, 2, 3" / "[str x 512] "<unk>", "<s>", ...".
COLLM_API void collm_gguf_format_array_preview(const collm_gguf_file *f, int64_t i, uint64_t max_elems, char *buf, size_t cap);

// --- tensors ---
COLLM_API int64_t collm_gguf_n_tensors(const collm_gguf_file *f);
COLLM_API const collm_gguf_tensor_info *collm_gguf_tensor(const collm_gguf_file *f, int64_t i);
COLLM_API const collm_gguf_tensor_info *collm_gguf_find_tensor(const collm_gguf_file *f, const char *name); // NULL if absent
COLLM_API int64_t collm_gguf_tensor_n_elements(const collm_gguf_tensor_info *t);

COLLM_API const char *collm_gguf_type_name(collm_gguf_type t);
COLLM_API const char *collm_ggml_type_name(collm_ggml_type t);
// 1 for the types collm decodes: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K ... Q6_K.
COLLM_API int collm_gguf_tensor_type_supported(collm_ggml_type t);
// Bytes for n elements of type t (n must be a multiple of the block size); 0 if unknown.
COLLM_API size_t collm_ggml_type_size_for(collm_ggml_type t, int64_t n);

// Decodes a tensor to F32 into out (n_elements floats). COLLM_OK or error.
COLLM_API int collm_gguf_tensor_to_f32(const collm_gguf_tensor_info *t, float *out);

// Half-precision helpers (IEEE binary16, bfloat16).
COLLM_API float collm_f16_to_f32(uint16_t h);
COLLM_API uint16_t collm_f32_to_f16(float f);
COLLM_API float collm_bf16_to_f32(uint16_t h);
COLLM_API uint16_t collm_f32_to_bf16(float f);

// --- writer ---
// Collects metadata and tensors, then writes the file atomically
// (collm_write_atomic). Tensor data is copied at add time, so callers may
// free their buffers. Keys and tensors keep insertion order.
typedef struct collm_gguf_writer collm_gguf_writer;

COLLM_API collm_gguf_writer *collm_gguf_writer_create(void);
COLLM_API void collm_gguf_writer_free(collm_gguf_writer *w);
// Every key and tensor name added from now on gets ns in front ("fuse.0."):
// how one model file is stored inside another (read back with
// collm_gguf_open_ns). NULL or "" ends the namespace.
COLLM_API int collm_gguf_writer_set_ns(collm_gguf_writer *w, const char *ns);
// Setting a key that already exists replaces its value.
COLLM_API int collm_gguf_writer_set_u32(collm_gguf_writer *w, const char *key, uint32_t v);
COLLM_API int collm_gguf_writer_set_i32(collm_gguf_writer *w, const char *key, int32_t v);
COLLM_API int collm_gguf_writer_set_u64(collm_gguf_writer *w, const char *key, uint64_t v);
COLLM_API int collm_gguf_writer_set_f32(collm_gguf_writer *w, const char *key, float v);
COLLM_API int collm_gguf_writer_set_bool(collm_gguf_writer *w, const char *key, int v);
COLLM_API int collm_gguf_writer_set_str(collm_gguf_writer *w, const char *key, const char *v);
// Any scalar numeric/bool type (u8 ... f64): v points to one value of that type.
COLLM_API int collm_gguf_writer_set_scalar(collm_gguf_writer *w, const char *key, collm_gguf_type type, const void *v);
COLLM_API int collm_gguf_writer_set_arr_str(collm_gguf_writer *w, const char *key, const char *const *v, uint64_t n);
// Numeric array of element type `type` (elements copied from data).
COLLM_API int collm_gguf_writer_set_arr(collm_gguf_writer *w, const char *key, collm_gguf_type type, const void *data, uint64_t n);
// Copies key i of another file (any type, arrays included) under the same name.
COLLM_API int collm_gguf_writer_copy_kv(collm_gguf_writer *w, const collm_gguf_file *src, int64_t i);
// Adds a tensor: ne innermost first (a (rows, cols) row-major matrix has
// ne = {cols, rows}); data holds the encoded bytes of `type`.
COLLM_API int collm_gguf_writer_add_tensor(collm_gguf_writer *w, const char *name, collm_ggml_type type, int n_dims, const int64_t *ne,
                           const void *data);
// Convenience: F32 source data stored as `type` (F32, F16 or BF16).
COLLM_API int collm_gguf_writer_add_tensor_f32(collm_gguf_writer *w, const char *name, collm_ggml_type type, int n_dims, const int64_t *ne,
                               const float *data);
COLLM_API int collm_gguf_writer_write(collm_gguf_writer *w, const char *path);

#ifdef __cplusplus
}
#endif

#endif
