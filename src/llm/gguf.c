// GGUF reader / writer (see include/collm/gguf.h).
//
// The reader maps the file and validates all of it in collm_gguf_open: every read
// goes through a cursor that checks the remaining bytes first, so later
// getters can trust what they find. Values stay in the mapping; only keys,
// tensor names and a per-string-array offset table are copied.
// Assumes a little-endian host (x86-64, aarch64), like the file format.
#include "collm/gguf.h"

#include "collm/error.h"
#include "collm/fileio.h"
#include "llm/quant.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GGUF_MAGIC "GGUF"
#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_NAME 64     // ggml's GGML_MAX_NAME: tensor names are < 64 bytes
#define GGUF_MAX_NESTING 8   // arrays of arrays: depth limit against stack blow-up

// ---------------------------------------------------------------------------
// Half precision

float collm_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    uint32_t bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (mant << 13); // inf / nan (payload kept)
    } else if (exp != 0) {
        bits = sign | ((exp + 112) << 23) | (mant << 13); // 127 - 15 = 112
    } else if (mant == 0) {
        bits = sign; // +-0
    } else {
        // subnormal: value = mant * 2^-24; normalise so the leading 1 is implicit
        int e = -1;
        do {
            mant <<= 1;
            e++;
        } while ((mant & 0x400) == 0);
        mant &= 0x3ff;
        bits = sign | ((uint32_t)(112 - e) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t collm_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t exp = (x >> 23) & 0xff;
    uint32_t mant = x & 0x7fffff;
    if (exp == 0xff) { // inf / nan: keep nan quiet and non-zero
        if (mant == 0) return sign | 0x7c00;
        return (uint16_t)(sign | 0x7e00 | (mant >> 13));
    }
    int32_t e = (int32_t)exp - 127 + 15; // rebiased exponent
    if (e >= 0x1f) return sign | 0x7c00; // overflow -> inf
    if (e <= 0) {
        // subnormal or zero in f16: shift the full significand (with implicit 1)
        if (e < -10) return sign; // below half the smallest subnormal -> 0
        uint32_t m = mant | 0x800000;
        uint32_t shift = (uint32_t)(14 - e); // 24-bit significand -> 10-bit field at 2^-24 units
        uint32_t half = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1);
        uint32_t mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) half++; // may carry into the smallest normal: correct
        return (uint16_t)(sign | half);
    }
    uint32_t half = ((uint32_t)e << 10) | (mant >> 13);
    uint32_t rem = mant & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (half & 1))) half++; // carry may round up to inf: correct
    return (uint16_t)(sign | half);
}

float collm_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t collm_f32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffff) > 0x7f800000) return (uint16_t)((x >> 16) | 0x40); // nan: force quiet
    x += 0x7fff + ((x >> 16) & 1); // round to nearest even
    return (uint16_t)(x >> 16);
}

// ---------------------------------------------------------------------------
// Type tables

static const size_t gguf_scalar_size[COLLM_GGUF_TYPE_COUNT] = {
    [COLLM_GGUF_TYPE_UINT8] = 1,  [COLLM_GGUF_TYPE_INT8] = 1,    [COLLM_GGUF_TYPE_UINT16] = 2, [COLLM_GGUF_TYPE_INT16] = 2,
    [COLLM_GGUF_TYPE_UINT32] = 4, [COLLM_GGUF_TYPE_INT32] = 4,   [COLLM_GGUF_TYPE_FLOAT32] = 4, [COLLM_GGUF_TYPE_BOOL] = 1,
    [COLLM_GGUF_TYPE_STRING] = 0, [COLLM_GGUF_TYPE_ARRAY] = 0,   [COLLM_GGUF_TYPE_UINT64] = 8, [COLLM_GGUF_TYPE_INT64] = 8,
    [COLLM_GGUF_TYPE_FLOAT64] = 8,
};

const char *collm_gguf_type_name(collm_gguf_type t) {
    static const char *names[COLLM_GGUF_TYPE_COUNT] = {
        "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "str", "arr", "u64", "i64", "f64",
    };
    return (unsigned)t < COLLM_GGUF_TYPE_COUNT ? names[t] : "?";
}

// Block geometry of a ggml type: elements per block and bytes per block.
static int ggml_block(collm_ggml_type t, int64_t *blck, size_t *bytes) { return collm_quant_block(t, blck, bytes); }

// Every ggml type's name (ggml numbering), those collm cannot read included,
// so an error can name what a file holds.
const char *collm_ggml_type_name(collm_ggml_type t) {
    static const char *names[] = {
        "F32",     "F16",    "Q4_0",    "Q4_1",   "Q4_2",    "Q4_3",   "Q5_0",    "Q5_1",    "Q8_0",    "Q8_1",
        "Q2_K",    "Q3_K",   "Q4_K",    "Q5_K",   "Q6_K",    "Q8_K",   "IQ2_XXS", "IQ2_XS",  "IQ3_XXS", "IQ1_S",
        "IQ4_NL",  "IQ3_S",  "IQ2_S",   "IQ4_XS", "I8",      "I16",    "I32",     "I64",     "F64",     "IQ1_M",
        "BF16",    "Q4_0_4_4", "Q4_0_4_8", "Q4_0_8_8", "TQ1_0", "TQ2_0", "IQ4_NL_4_4", "IQ4_NL_4_8", "IQ4_NL_8_8",
        "MXFP4",
    };
    return (unsigned)t < sizeof names / sizeof names[0] ? names[t] : "?";
}

int collm_gguf_tensor_type_supported(collm_ggml_type t) { return collm_quant_weight_type_ok(t); }

size_t collm_ggml_type_size_for(collm_ggml_type t, int64_t n) {
    int64_t blck;
    size_t bytes;
    if (n < 0 || !ggml_block(t, &blck, &bytes) || n % blck != 0) return 0;
    uint64_t blocks = (uint64_t)(n / blck);
    if (blocks > SIZE_MAX / bytes) return 0;
    return (size_t)blocks * bytes;
}

// ---------------------------------------------------------------------------
// Reader

typedef struct {
    char *key;                    // NUL-terminated copy
    collm_gguf_type type;
    size_t key_offset;            // file offset of the key (for messages)
    const unsigned char *value;   // value bytes in the mapping (after the u32 type)
    size_t value_len;             // for copy_kv: the raw span of the value
    collm_gguf_type arr_type;           // arrays only
    uint64_t arr_n;
    const unsigned char *arr_data; // first element
    uint64_t *str_offsets;        // string arrays: offset of each element's u64 length, from the file start
} gguf_kv;

struct collm_gguf_file {
    char *path;
    collm_mapped_file map;
    uint32_t version;
    size_t alignment;
    size_t data_offset; // start of the data section
    int64_t n_kv;
    gguf_kv *kvs;
    int64_t n_tensors;
    collm_gguf_tensor_info *tensors;
    // open-addressing hash tables of indices (-1 empty); capacity a power of two
    int64_t *kv_index;
    size_t kv_index_cap;
    int64_t *tensor_index;
    size_t tensor_index_cap;
    // collm_gguf_open_ns: find_key / find_tensor look up ns + name (NULL: as given)
    char *ns;
};

typedef struct {
    const unsigned char *base;
    size_t size;
    size_t pos;
    const char *path;
} gguf_cursor;

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull; // FNV-1a
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

static size_t index_capacity(int64_t n) {
    size_t cap = 16;
    while (cap < (size_t)n * 2) cap <<= 1;
    return cap;
}

// Inserts index i whose name is names(i); returns the existing index if the
// name is already present (duplicate), else -1.
static int64_t index_insert(int64_t *table, size_t cap, const char *name, int64_t i, const char *(*name_of)(const void *, int64_t),
                            const void *ctx) {
    size_t mask = cap - 1;
    size_t h = (size_t)hash_bytes(name, strlen(name)) & mask;
    while (table[h] >= 0) {
        if (strcmp(name_of(ctx, table[h]), name) == 0) return table[h];
        h = (h + 1) & mask;
    }
    table[h] = i;
    return -1;
}

static int64_t index_find(const int64_t *table, size_t cap, const char *name, const char *(*name_of)(const void *, int64_t),
                          const void *ctx) {
    if (!table) return -1;
    size_t mask = cap - 1;
    size_t h = (size_t)hash_bytes(name, strlen(name)) & mask;
    while (table[h] >= 0) {
        if (strcmp(name_of(ctx, table[h]), name) == 0) return table[h];
        h = (h + 1) & mask;
    }
    return -1;
}

static const char *kv_name_of(const void *ctx, int64_t i) { return ((const collm_gguf_file *)ctx)->kvs[i].key; }
static const char *tensor_name_of(const void *ctx, int64_t i) { return ((const collm_gguf_file *)ctx)->tensors[i].name; }

static size_t remaining(const gguf_cursor *c) { return c->size - c->pos; }

static int cur_need(gguf_cursor *c, size_t n, const char *what) {
    if (n > remaining(c))
        return collm_error(COLLM_ERR_FORMAT, "%s: offset %zu: %s (%zu bytes) runs past the end of the file (size %zu)", c->path,
                           c->pos, what, n, c->size);
    return COLLM_OK;
}

static int cur_u32(gguf_cursor *c, uint32_t *v, const char *what) {
    int rc = cur_need(c, 4, what);
    if (rc) return rc;
    memcpy(v, c->base + c->pos, 4);
    c->pos += 4;
    return COLLM_OK;
}

static int cur_u64(gguf_cursor *c, uint64_t *v, const char *what) {
    int rc = cur_need(c, 8, what);
    if (rc) return rc;
    memcpy(v, c->base + c->pos, 8);
    c->pos += 8;
    return COLLM_OK;
}

// A gguf string: u64 length, bytes. Returns the bytes in the mapping.
static int cur_str(gguf_cursor *c, const char **s, uint64_t *len, const char *what) {
    size_t at = c->pos;
    int rc = cur_u64(c, len, what);
    if (rc) return rc;
    if (*len > remaining(c)) {
        return collm_error(COLLM_ERR_FORMAT, "%s: offset %zu: %s length %" PRIu64 " runs past the end of the file (size %zu)",
                           c->path, at, what, *len, c->size);
    }
    *s = (const char *)c->base + c->pos;
    c->pos += (size_t)*len;
    return COLLM_OK;
}

// Skips (validating) one value of type `type` at the cursor; `depth` counts
// array nesting. `key` names the key for messages.
static int skip_value(gguf_cursor *c, collm_gguf_type type, int depth, const char *key);

static int skip_array(gguf_cursor *c, int depth, const char *key, collm_gguf_type *elem_type, uint64_t *n) {
    size_t at = c->pos;
    uint32_t t;
    int rc = cur_u32(c, &t, "array element type");
    if (!rc) rc = cur_u64(c, n, "array length");
    if (rc) return collm_error_prefix(rc, "key '%s'", key);
    if (t >= COLLM_GGUF_TYPE_COUNT)
        return collm_error(COLLM_ERR_FORMAT, "%s: key '%s' (offset %zu): unknown array element type %u", c->path, key, at, t);
    if (depth >= GGUF_MAX_NESTING)
        return collm_error(COLLM_ERR_FORMAT, "%s: key '%s' (offset %zu): arrays nested deeper than %d", c->path, key, at,
                           GGUF_MAX_NESTING);
    *elem_type = (collm_gguf_type)t;
    size_t es = gguf_scalar_size[t];
    // smallest possible encoding of one element bounds the count by the bytes left
    size_t min_elem = es ? es : (t == COLLM_GGUF_TYPE_STRING ? 8 : 12);
    if (*n > remaining(c) / min_elem)
        return collm_error(COLLM_ERR_FORMAT,
                           "%s: key '%s' (offset %zu): array of %" PRIu64 " x %s runs past the end of the file (%zu bytes left)",
                           c->path, key, at, *n, collm_gguf_type_name(*elem_type), remaining(c));
    if (es) {
        c->pos += (size_t)*n * es;
        return COLLM_OK;
    }
    for (uint64_t j = 0; j < *n; j++) {
        rc = skip_value(c, *elem_type, depth + 1, key);
        if (rc) return rc;
    }
    return COLLM_OK;
}

static int skip_value(gguf_cursor *c, collm_gguf_type type, int depth, const char *key) {
    size_t at = c->pos;
    if ((unsigned)type >= COLLM_GGUF_TYPE_COUNT)
        return collm_error(COLLM_ERR_FORMAT, "%s: key '%s' (offset %zu): unknown value type %u", c->path, key, at, (unsigned)type);
    if (type == COLLM_GGUF_TYPE_STRING) {
        const char *s;
        uint64_t len;
        int rc = cur_str(c, &s, &len, "string value");
        return rc ? collm_error_prefix(rc, "key '%s'", key) : COLLM_OK;
    }
    if (type == COLLM_GGUF_TYPE_ARRAY) {
        collm_gguf_type et;
        uint64_t n;
        return skip_array(c, depth, key, &et, &n);
    }
    int rc = cur_need(c, gguf_scalar_size[type], "value");
    if (rc) return collm_error_prefix(rc, "key '%s'", key);
    c->pos += gguf_scalar_size[type];
    return COLLM_OK;
}

void collm_gguf_close(collm_gguf_file *f) {
    if (!f) return;
    for (int64_t i = 0; i < f->n_kv; i++) {
        free(f->kvs[i].key);
        free(f->kvs[i].str_offsets);
    }
    for (int64_t i = 0; i < f->n_tensors; i++) free((char *)f->tensors[i].name);
    free(f->kvs);
    free(f->tensors);
    free(f->kv_index);
    free(f->tensor_index);
    collm_unmap_file(&f->map);
    free(f->ns);
    free(f->path);
    free(f);
}

// n_read entries; f->n_kv counts those collm_gguf_close must free.
static int read_kvs(collm_gguf_file *f, gguf_cursor *c, int64_t n_read) {
    f->kvs = collm_calloc((size_t)n_read ? (size_t)n_read : 1, sizeof(gguf_kv));
    f->kv_index_cap = index_capacity(n_read);
    f->kv_index = collm_malloc(f->kv_index_cap * sizeof(int64_t));
    if (!f->kvs || !f->kv_index) return COLLM_ERR_NOMEM;
    memset(f->kv_index, 0xff, f->kv_index_cap * sizeof(int64_t));
    for (int64_t i = 0; i < n_read; i++) {
        gguf_kv *kv = &f->kvs[i];
        size_t at = c->pos;
        const char *key;
        uint64_t key_len;
        char what[64];
        snprintf(what, sizeof what, "key %" PRId64, i);
        int rc = cur_str(c, &key, &key_len, what);
        if (rc) return rc;
        if (key_len == 0 || memchr(key, '\0', (size_t)key_len))
            return collm_error(COLLM_ERR_FORMAT, "%s: offset %zu: key %" PRId64 " is empty or contains a NUL byte", c->path, at, i);
        kv->key = strndup(key, (size_t)key_len);
        if (!kv->key) return collm_error(COLLM_ERR_NOMEM, "out of memory");
        f->n_kv = i + 1;
        kv->key_offset = at;
        int64_t dup = index_insert(f->kv_index, f->kv_index_cap, kv->key, i, kv_name_of, f);
        if (dup >= 0)
            return collm_error(COLLM_ERR_FORMAT, "%s: key '%s' (offset %zu): duplicate key (first at offset %zu)", c->path, kv->key,
                               at, f->kvs[dup].key_offset);
        uint32_t type;
        rc = cur_u32(c, &type, "value type");
        if (rc) return collm_error_prefix(rc, "key '%s'", kv->key);
        if (type >= COLLM_GGUF_TYPE_COUNT)
            return collm_error(COLLM_ERR_FORMAT, "%s: key '%s' (offset %zu): unknown value type %u", c->path, kv->key, c->pos - 4,
                               type);
        kv->type = (collm_gguf_type)type;
        kv->value = c->base + c->pos;
        size_t value_start = c->pos;
        if (kv->type == COLLM_GGUF_TYPE_ARRAY) {
            rc = skip_array(c, 0, kv->key, &kv->arr_type, &kv->arr_n);
            if (rc) return rc;
            kv->arr_data = kv->value + 12;
            if (kv->arr_type == COLLM_GGUF_TYPE_STRING && kv->arr_n > 0) {
                // offsets of each string for O(1) collm_gguf_arr_str; the strings were validated above
                kv->str_offsets = collm_malloc((size_t)kv->arr_n * sizeof(uint64_t));
                if (!kv->str_offsets) return COLLM_ERR_NOMEM;
                size_t p = value_start + 12;
                for (uint64_t j = 0; j < kv->arr_n; j++) {
                    uint64_t len;
                    memcpy(&len, c->base + p, 8);
                    kv->str_offsets[j] = p;
                    p += 8 + (size_t)len;
                }
            }
        } else {
            rc = skip_value(c, kv->type, 0, kv->key);
            if (rc) return rc;
        }
        kv->value_len = c->pos - value_start;
    }
    return COLLM_OK;
}

static int read_tensor_infos(collm_gguf_file *f, gguf_cursor *c, int64_t n_read) {
    f->tensors = collm_calloc((size_t)n_read ? (size_t)n_read : 1, sizeof(collm_gguf_tensor_info));
    f->tensor_index_cap = index_capacity(n_read);
    f->tensor_index = collm_malloc(f->tensor_index_cap * sizeof(int64_t));
    if (!f->tensors || !f->tensor_index) return COLLM_ERR_NOMEM;
    memset(f->tensor_index, 0xff, f->tensor_index_cap * sizeof(int64_t));
    for (int64_t i = 0; i < n_read; i++) {
        collm_gguf_tensor_info *t = &f->tensors[i];
        size_t at = c->pos;
        const char *name;
        uint64_t name_len;
        char what[64];
        snprintf(what, sizeof what, "tensor %" PRId64 " name", i);
        int rc = cur_str(c, &name, &name_len, what);
        if (rc) return rc;
        if (name_len == 0 || name_len >= GGUF_MAX_NAME || memchr(name, '\0', (size_t)name_len))
            return collm_error(COLLM_ERR_FORMAT, "%s: offset %zu: tensor %" PRId64 " name is empty, has %" PRIu64
                                                 " >= %d bytes or contains a NUL byte",
                               c->path, at, i, name_len, GGUF_MAX_NAME);
        t->name = strndup(name, (size_t)name_len);
        if (!t->name) return collm_error(COLLM_ERR_NOMEM, "out of memory");
        f->n_tensors = i + 1;
        int64_t dup = index_insert(f->tensor_index, f->tensor_index_cap, t->name, i, tensor_name_of, f);
        if (dup >= 0)
            return collm_error(COLLM_ERR_FORMAT, "%s: tensor '%s' (offset %zu): duplicate tensor name", c->path, t->name, at);
        uint32_t n_dims;
        rc = cur_u32(c, &n_dims, "n_dims");
        if (rc) return collm_error_prefix(rc, "tensor '%s'", t->name);
        if (n_dims < 1 || n_dims > COLLM_GGUF_MAX_DIMS)
            return collm_error(COLLM_ERR_FORMAT, "%s: tensor '%s' (offset %zu): n_dims %u not in 1..%d", c->path, t->name,
                               c->pos - 4, n_dims, COLLM_GGUF_MAX_DIMS);
        t->n_dims = (int)n_dims;
        int64_t n_elem = 1;
        for (int d = 0; d < COLLM_GGUF_MAX_DIMS; d++) t->ne[d] = 1;
        for (uint32_t d = 0; d < n_dims; d++) {
            uint64_t ne;
            rc = cur_u64(c, &ne, "ne");
            if (rc) return collm_error_prefix(rc, "tensor '%s'", t->name);
            if (ne == 0 || ne > (uint64_t)INT64_MAX || (int64_t)ne > INT64_MAX / n_elem)
                return collm_error(COLLM_ERR_FORMAT, "%s: tensor '%s' (offset %zu): ne[%u] = %" PRIu64 " is zero or overflows",
                                   c->path, t->name, c->pos - 8, d, ne);
            t->ne[d] = (int64_t)ne;
            n_elem *= (int64_t)ne;
        }
        uint32_t type;
        rc = cur_u32(c, &type, "tensor type");
        if (rc) return collm_error_prefix(rc, "tensor '%s'", t->name);
        int64_t blck;
        size_t bbytes;
        if (!ggml_block((collm_ggml_type)type, &blck, &bbytes))
            return collm_error(COLLM_ERR_FORMAT, "%s: tensor '%s' (offset %zu): unsupported tensor type %s (ggml type %u)",
                               c->path, t->name, c->pos - 4, collm_ggml_type_name((collm_ggml_type)type), type);
        t->type = (collm_ggml_type)type;
        if (t->ne[0] % blck != 0)
            return collm_error(COLLM_ERR_FORMAT, "%s: tensor '%s' (offset %zu): ne[0] = %" PRId64 " is not a multiple of the %s block size %" PRId64,
                               c->path, t->name, at, t->ne[0], collm_ggml_type_name(t->type), blck);
        t->n_bytes = collm_ggml_type_size_for(t->type, n_elem);
        if (t->n_bytes == 0)
            return collm_error(COLLM_ERR_FORMAT, "%s: tensor '%s' (offset %zu): size overflows", c->path, t->name, at);
        rc = cur_u64(c, &t->offset, "tensor offset");
        if (rc) return collm_error_prefix(rc, "tensor '%s'", t->name);
    }
    return COLLM_OK;
}

static int open_validate(collm_gguf_file *f) {
    gguf_cursor cur = {f->map.data, f->map.size, 0, f->path};
    gguf_cursor *c = &cur;
    int rc = cur_need(c, 4, "magic");
    if (rc) return rc;
    if (memcmp(c->base, GGUF_MAGIC, 4) != 0)
        return collm_error(COLLM_ERR_FORMAT, "%s: offset 0: bad magic (not a GGUF file)", f->path);
    c->pos = 4;
    rc = cur_u32(c, &f->version, "version");
    if (rc) return rc;
    if (f->version != 2 && f->version != 3)
        return collm_error(COLLM_ERR_FORMAT, "%s: offset 4: unsupported GGUF version %u (need 2 or 3)", f->path, f->version);
    uint64_t n_tensors, n_kv;
    rc = cur_u64(c, &n_tensors, "n_tensors");
    if (!rc) rc = cur_u64(c, &n_kv, "n_kv");
    if (rc) return rc;
    // smallest kv: u64 key length + 1 key byte + u32 type + 1 value byte;
    // smallest tensor info: u64 name length + 1 + u32 n_dims + u64 ne + u32 type + u64 offset
    if (n_kv > remaining(c) / 14)
        return collm_error(COLLM_ERR_FORMAT, "%s: offset 16: n_kv = %" PRIu64 " is more than the %zu bytes left can hold", f->path,
                           n_kv, remaining(c));
    if (n_tensors > remaining(c) / 33)
        return collm_error(COLLM_ERR_FORMAT, "%s: offset 8: n_tensors = %" PRIu64 " is more than the %zu bytes left can hold",
                           f->path, n_tensors, remaining(c));
    rc = read_kvs(f, c, (int64_t)n_kv);
    if (rc) return rc;

    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    int64_t ai = collm_gguf_find_key(f, "general.alignment");
    if (ai >= 0) {
        const gguf_kv *kv = &f->kvs[ai];
        uint32_t a = 0;
        if (kv->type == COLLM_GGUF_TYPE_UINT32) memcpy(&a, kv->value, 4);
        if (kv->type != COLLM_GGUF_TYPE_UINT32 || a == 0 || (a & (a - 1)) != 0)
            return collm_error(COLLM_ERR_FORMAT, "%s: key 'general.alignment' (offset %zu): must be a u32 power of two (got %s %u)",
                               f->path, kv->key_offset, collm_gguf_type_name(kv->type), a);
        f->alignment = a;
    }

    if (n_tensors > remaining(c) / 33) // recheck now that the keys are consumed: bounds the allocation below
        return collm_error(COLLM_ERR_FORMAT, "%s: offset %zu: n_tensors = %" PRIu64 " is more than the %zu bytes left can hold",
                           f->path, c->pos, n_tensors, remaining(c));
    rc = read_tensor_infos(f, c, (int64_t)n_tensors);
    if (rc) return rc;

    size_t data = c->pos + (f->alignment - c->pos % f->alignment) % f->alignment;
    f->data_offset = data;
    if (f->n_tensors == 0) return COLLM_OK; // vocab-only files may end without padding
    if (data > f->map.size)
        return collm_error(COLLM_ERR_FORMAT, "%s: offset %zu: data section starts past the end of the file (size %zu)", f->path,
                           data, f->map.size);
    size_t data_size = f->map.size - data;
    // As ggml: tensor data in the order of the infos, none overlapping (gaps
    // allowed), so the file holds every byte it claims; overlapping tensors
    // would let a small file describe a huge model.
    uint64_t prev_end = 0;
    for (int64_t i = 0; i < f->n_tensors; i++) {
        collm_gguf_tensor_info *t = &f->tensors[i];
        if (i > 0 && t->offset < prev_end)
            return collm_error(COLLM_ERR_FORMAT,
                               "%s: tensor '%s': data at offset %" PRIu64 " overlaps or precedes tensor '%s' (ends at offset %" PRIu64
                               "): tensor data must be in order and must not overlap",
                               f->path, t->name, t->offset, f->tensors[i - 1].name, prev_end);
        if (t->offset % f->alignment != 0)
            return collm_error(COLLM_ERR_FORMAT, "%s: tensor '%s': data offset %" PRIu64 " is not a multiple of the alignment %zu",
                               f->path, t->name, t->offset, f->alignment);
        if (t->offset > data_size || t->n_bytes > data_size - t->offset)
            return collm_error(COLLM_ERR_FORMAT,
                               "%s: tensor '%s': data at offset %" PRIu64 " + %zu bytes runs past the end of the data section (%zu bytes at file offset %zu)",
                               f->path, t->name, t->offset, t->n_bytes, data_size, data);
        t->data = f->map.data + data + t->offset;
        prev_end = t->offset + t->n_bytes;
    }
    return COLLM_OK;
}

collm_gguf_file *collm_gguf_open(const char *path) {
    if (!path) { // (and so every loader that opens a GGUF: model, LLM, tokenizer, CF model)
        collm_error(COLLM_ERR_ARG, "collm_gguf_open: no path");
        return NULL;
    }
    collm_gguf_file *f = collm_calloc(1, sizeof *f);
    if (!f) return NULL;
    f->path = strdup(path);
    if (!f->path) {
        free(f);
        collm_error(COLLM_ERR_NOMEM, "out of memory");
        return NULL;
    }
    if (collm_map_file(path, &f->map) != COLLM_OK || open_validate(f) != COLLM_OK) {
        collm_gguf_close(f);
        return NULL;
    }
    return f;
}

collm_gguf_file *collm_gguf_open_ns(const char *path, const char *ns) {
    if (!ns || !*ns) {
        collm_error(COLLM_ERR_ARG, "collm_gguf_open_ns: empty namespace");
        return NULL;
    }
    collm_gguf_file *f = collm_gguf_open(path);
    if (f && !(f->ns = strdup(ns))) {
        collm_gguf_close(f);
        collm_error(COLLM_ERR_NOMEM, "out of memory");
        return NULL;
    }
    return f;
}

// name, or ns + name in a namespaced view: buf when it fits, else malloc'd
// (*heap set; the caller frees it).
static const char *ns_name(const collm_gguf_file *f, const char *name, char *buf, size_t cap, char **heap) {
    *heap = NULL;
    if (!f->ns) return name;
    size_t a = strlen(f->ns), b = strlen(name);
    char *d = a + b + 1 <= cap ? buf : (*heap = malloc(a + b + 1));
    if (!d) return NULL;
    memcpy(d, f->ns, a);
    memcpy(d + a, name, b + 1);
    return d;
}

uint32_t collm_gguf_version(const collm_gguf_file *f) { return f->version; }
size_t collm_gguf_alignment(const collm_gguf_file *f) { return f->alignment; }
size_t collm_gguf_data_offset(const collm_gguf_file *f) { return f->data_offset; }
size_t collm_gguf_file_size(const collm_gguf_file *f) { return f->map.size; }

int64_t collm_gguf_n_kv(const collm_gguf_file *f) { return f->n_kv; }
const char *collm_gguf_key(const collm_gguf_file *f, int64_t i) { return i >= 0 && i < f->n_kv ? f->kvs[i].key : NULL; }
int64_t collm_gguf_find_key(const collm_gguf_file *f, const char *key) {
    char buf[256], *heap;
    const char *name = ns_name(f, key, buf, sizeof buf, &heap);
    int64_t i = name ? index_find(f->kv_index, f->kv_index_cap, name, kv_name_of, f) : -1;
    free(heap);
    return i;
}
collm_gguf_type collm_gguf_kv_type(const collm_gguf_file *f, int64_t i) { return i >= 0 && i < f->n_kv ? f->kvs[i].type : COLLM_GGUF_TYPE_COUNT; }
collm_gguf_type collm_gguf_arr_type(const collm_gguf_file *f, int64_t i) {
    return i >= 0 && i < f->n_kv && f->kvs[i].type == COLLM_GGUF_TYPE_ARRAY ? f->kvs[i].arr_type : COLLM_GGUF_TYPE_COUNT;
}
uint64_t collm_gguf_arr_n(const collm_gguf_file *f, int64_t i) {
    return i >= 0 && i < f->n_kv && f->kvs[i].type == COLLM_GGUF_TYPE_ARRAY ? f->kvs[i].arr_n : 0;
}
const void *collm_gguf_arr_data(const collm_gguf_file *f, int64_t i) {
    if (i < 0 || i >= f->n_kv || f->kvs[i].type != COLLM_GGUF_TYPE_ARRAY) return NULL;
    collm_gguf_type t = f->kvs[i].arr_type;
    return t == COLLM_GGUF_TYPE_STRING || t == COLLM_GGUF_TYPE_ARRAY ? NULL : f->kvs[i].arr_data;
}
const char *collm_gguf_arr_str(const collm_gguf_file *f, int64_t i, uint64_t j, uint64_t *len) {
    if (i < 0 || i >= f->n_kv || f->kvs[i].type != COLLM_GGUF_TYPE_ARRAY || f->kvs[i].arr_type != COLLM_GGUF_TYPE_STRING ||
        j >= f->kvs[i].arr_n)
        return NULL;
    const unsigned char *p = f->map.data + f->kvs[i].str_offsets[j];
    memcpy(len, p, 8);
    return (const char *)p + 8;
}

// Reads an integer-typed value as int64 (u64 values above INT64_MAX fail).
static int kv_int(const gguf_kv *kv, int64_t *out, int *ok) {
    *ok = 1;
    const unsigned char *p = kv->value;
    switch (kv->type) {
    case COLLM_GGUF_TYPE_UINT8: *out = *(const uint8_t *)p; return 1;
    case COLLM_GGUF_TYPE_INT8: *out = *(const int8_t *)p; return 1;
    case COLLM_GGUF_TYPE_UINT16: { uint16_t v; memcpy(&v, p, 2); *out = v; return 1; }
    case COLLM_GGUF_TYPE_INT16: { int16_t v; memcpy(&v, p, 2); *out = v; return 1; }
    case COLLM_GGUF_TYPE_UINT32: { uint32_t v; memcpy(&v, p, 4); *out = v; return 1; }
    case COLLM_GGUF_TYPE_INT32: { int32_t v; memcpy(&v, p, 4); *out = v; return 1; }
    case COLLM_GGUF_TYPE_INT64: { int64_t v; memcpy(&v, p, 8); *out = v; return 1; }
    case COLLM_GGUF_TYPE_UINT64: {
        uint64_t v;
        memcpy(&v, p, 8);
        if (v > (uint64_t)INT64_MAX) *ok = 0;
        *out = (int64_t)v;
        return 1;
    }
    default: return 0;
    }
}

static const gguf_kv *get_kv(const collm_gguf_file *f, const char *key, int *rc) {
    int64_t i = collm_gguf_find_key(f, key);
    if (i < 0) {
        *rc = collm_error(COLLM_ERR_FORMAT, "%s: key '%s' not found", f->path, key);
        return NULL;
    }
    *rc = COLLM_OK;
    return &f->kvs[i];
}

int collm_gguf_get_u32(const collm_gguf_file *f, const char *key, uint32_t *out) {
    int rc;
    const gguf_kv *kv = get_kv(f, key, &rc);
    if (!kv) return rc;
    int64_t v;
    int ok;
    if (!kv_int(kv, &v, &ok))
        return collm_error(COLLM_ERR_FORMAT, "%s: key '%s' has type %s, expected an integer", f->path, key, collm_gguf_type_name(kv->type));
    if (!ok || v < 0 || v > (int64_t)UINT32_MAX)
        return collm_error(COLLM_ERR_FORMAT, "%s: key '%s': value does not fit in u32", f->path, key);
    *out = (uint32_t)v;
    return COLLM_OK;
}

int collm_gguf_get_i64(const collm_gguf_file *f, const char *key, int64_t *out) {
    int rc;
    const gguf_kv *kv = get_kv(f, key, &rc);
    if (!kv) return rc;
    int64_t v;
    int ok;
    if (!kv_int(kv, &v, &ok))
        return collm_error(COLLM_ERR_FORMAT, "%s: key '%s' has type %s, expected an integer", f->path, key, collm_gguf_type_name(kv->type));
    if (!ok) return collm_error(COLLM_ERR_FORMAT, "%s: key '%s': value does not fit in i64", f->path, key);
    *out = v;
    return COLLM_OK;
}

int collm_gguf_get_f32(const collm_gguf_file *f, const char *key, float *out) {
    int rc;
    const gguf_kv *kv = get_kv(f, key, &rc);
    if (!kv) return rc;
    if (kv->type == COLLM_GGUF_TYPE_FLOAT32) {
        memcpy(out, kv->value, 4);
    } else if (kv->type == COLLM_GGUF_TYPE_FLOAT64) {
        double d;
        memcpy(&d, kv->value, 8);
        *out = (float)d;
    } else {
        return collm_error(COLLM_ERR_FORMAT, "%s: key '%s' has type %s, expected f32", f->path, key, collm_gguf_type_name(kv->type));
    }
    return COLLM_OK;
}

int collm_gguf_get_bool(const collm_gguf_file *f, const char *key, int *out) {
    int rc;
    const gguf_kv *kv = get_kv(f, key, &rc);
    if (!kv) return rc;
    if (kv->type != COLLM_GGUF_TYPE_BOOL)
        return collm_error(COLLM_ERR_FORMAT, "%s: key '%s' has type %s, expected bool", f->path, key, collm_gguf_type_name(kv->type));
    *out = kv->value[0] != 0;
    return COLLM_OK;
}

int collm_gguf_get_str(const collm_gguf_file *f, const char *key, const char **out, uint64_t *len) {
    int rc;
    const gguf_kv *kv = get_kv(f, key, &rc);
    if (!kv) return rc;
    if (kv->type != COLLM_GGUF_TYPE_STRING)
        return collm_error(COLLM_ERR_FORMAT, "%s: key '%s' has type %s, expected str", f->path, key, collm_gguf_type_name(kv->type));
    memcpy(len, kv->value, 8);
    *out = (const char *)kv->value + 8;
    return COLLM_OK;
}

char *collm_gguf_get_str_dup(const collm_gguf_file *f, const char *key) {
    const char *s;
    uint64_t len;
    if (collm_gguf_get_str(f, key, &s, &len) != COLLM_OK) return NULL;
    char *d = collm_malloc((size_t)len + 1);
    if (!d) return NULL;
    memcpy(d, s, (size_t)len);
    d[len] = '\0';
    return d;
}

// Formats one scalar of type t at p. Strings: quoted, escaped, cut at ~cap.
static void format_scalar(collm_gguf_type t, const unsigned char *p, char *buf, size_t cap) {
    if (cap == 0) return;
    switch (t) {
    case COLLM_GGUF_TYPE_UINT8: snprintf(buf, cap, "%u", (unsigned)p[0]); return;
    case COLLM_GGUF_TYPE_INT8: snprintf(buf, cap, "%d", (int)(int8_t)p[0]); return;
    case COLLM_GGUF_TYPE_BOOL: snprintf(buf, cap, "%s", p[0] ? "true" : "false"); return;
    case COLLM_GGUF_TYPE_UINT16: { uint16_t v; memcpy(&v, p, 2); snprintf(buf, cap, "%u", (unsigned)v); return; }
    case COLLM_GGUF_TYPE_INT16: { int16_t v; memcpy(&v, p, 2); snprintf(buf, cap, "%d", (int)v); return; }
    case COLLM_GGUF_TYPE_UINT32: { uint32_t v; memcpy(&v, p, 4); snprintf(buf, cap, "%" PRIu32, v); return; }
    case COLLM_GGUF_TYPE_INT32: { int32_t v; memcpy(&v, p, 4); snprintf(buf, cap, "%" PRId32, v); return; }
    case COLLM_GGUF_TYPE_UINT64: { uint64_t v; memcpy(&v, p, 8); snprintf(buf, cap, "%" PRIu64, v); return; }
    case COLLM_GGUF_TYPE_INT64: { int64_t v; memcpy(&v, p, 8); snprintf(buf, cap, "%" PRId64, v); return; }
    case COLLM_GGUF_TYPE_FLOAT32: { float v; memcpy(&v, p, 4); snprintf(buf, cap, "%.9g", (double)v); return; }
    case COLLM_GGUF_TYPE_FLOAT64: { double v; memcpy(&v, p, 8); snprintf(buf, cap, "%.17g", v); return; }
    case COLLM_GGUF_TYPE_STRING: {
        uint64_t len;
        memcpy(&len, p, 8);
        const unsigned char *s = p + 8;
        size_t o = 0;
        buf[o++] = '"';
        for (uint64_t k = 0; k < len; k++) {
            if (o + 8 >= cap) { // room for an escape, the closing quote and "..."
                if (o + 4 < cap) { memcpy(buf + o, "...", 3); o += 3; }
                break;
            }
            unsigned char ch = s[k];
            if (ch == '"' || ch == '\\') { buf[o++] = '\\'; buf[o++] = (char)ch; }
            else if (ch == '\n') { buf[o++] = '\\'; buf[o++] = 'n'; }
            else if (ch < 0x20 || ch == 0x7f) o += (size_t)snprintf(buf + o, cap - o, "\\x%02x", ch);
            else buf[o++] = (char)ch;
        }
        if (o + 1 < cap) buf[o++] = '"';
        buf[o < cap ? o : cap - 1] = '\0';
        return;
    }
    default: snprintf(buf, cap, "?"); return;
    }
}

void collm_gguf_format_value(const collm_gguf_file *f, int64_t i, char *buf, size_t cap) {
    if (cap == 0) return;
    if (i < 0 || i >= f->n_kv) {
        snprintf(buf, cap, "?");
        return;
    }
    const gguf_kv *kv = &f->kvs[i];
    if (kv->type == COLLM_GGUF_TYPE_ARRAY) snprintf(buf, cap, "[%s x %" PRIu64 "]", collm_gguf_type_name(kv->arr_type), kv->arr_n);
    else format_scalar(kv->type, kv->value, buf, cap);
}

void collm_gguf_format_array_preview(const collm_gguf_file *f, int64_t i, uint64_t max_elems, char *buf, size_t cap) {
    if (cap == 0) return;
    buf[0] = '\0';
    if (i < 0 || i >= f->n_kv || f->kvs[i].type != COLLM_GGUF_TYPE_ARRAY) {
        collm_gguf_format_value(f, i, buf, cap);
        return;
    }
    const gguf_kv *kv = &f->kvs[i];
    size_t o = (size_t)snprintf(buf, cap, "[%s x %" PRIu64 "]", collm_gguf_type_name(kv->arr_type), kv->arr_n);
    if (kv->arr_type == COLLM_GGUF_TYPE_ARRAY || o >= cap) return;
    uint64_t n = kv->arr_n < max_elems ? kv->arr_n : max_elems;
    size_t es = gguf_scalar_size[kv->arr_type];
    for (uint64_t j = 0; j < n && o + 2 < cap; j++) {
        char elem[96];
        const unsigned char *p = kv->arr_type == COLLM_GGUF_TYPE_STRING ? f->map.data + kv->str_offsets[j] : kv->arr_data + j * es;
        format_scalar(kv->arr_type, p, elem, sizeof elem);
        int w = snprintf(buf + o, cap - o, "%s%s", j ? ", " : " ", elem);
        if (w < 0 || (size_t)w >= cap - o) {
            buf[o] = '\0';
            return;
        }
        o += (size_t)w;
    }
    if (n < kv->arr_n && o + 5 < cap) snprintf(buf + o, cap - o, ", ...");
}

int64_t collm_gguf_n_tensors(const collm_gguf_file *f) { return f->n_tensors; }
const collm_gguf_tensor_info *collm_gguf_tensor(const collm_gguf_file *f, int64_t i) {
    return i >= 0 && i < f->n_tensors ? &f->tensors[i] : NULL;
}
const collm_gguf_tensor_info *collm_gguf_find_tensor(const collm_gguf_file *f, const char *name) {
    char buf[256], *heap;
    const char *full = ns_name(f, name, buf, sizeof buf, &heap);
    int64_t i = full ? index_find(f->tensor_index, f->tensor_index_cap, full, tensor_name_of, f) : -1;
    free(heap);
    return i >= 0 ? &f->tensors[i] : NULL;
}
int64_t collm_gguf_tensor_n_elements(const collm_gguf_tensor_info *t) {
    int64_t n = 1;
    for (int d = 0; d < t->n_dims; d++) n *= t->ne[d];
    return n;
}

// ---------------------------------------------------------------------------
// Decoding

int collm_gguf_tensor_to_f32(const collm_gguf_tensor_info *t, float *out) {
    if (!collm_quant_weight_type_ok(t->type))
        return collm_error(COLLM_ERR_ARG, "tensor '%s': cannot decode type %s to F32", t->name, collm_ggml_type_name(t->type));
    collm_quant_dequant_row(t->type, t->data, out, collm_gguf_tensor_n_elements(t));
    return COLLM_OK;
}

// ---------------------------------------------------------------------------
// Writer: values are kept already encoded (the bytes after the u32 type), so
// copy_kv is a byte copy of the source span and writing is a concatenation.

typedef struct {
    char *key;
    collm_gguf_type type;
    unsigned char *value;
    size_t value_len;
} writer_kv;

typedef struct {
    char *name;
    collm_ggml_type type;
    int n_dims;
    int64_t ne[COLLM_GGUF_MAX_DIMS];
    unsigned char *data;
    size_t n_bytes;
    uint64_t offset; // set by collm_gguf_writer_write
} writer_tensor;

struct collm_gguf_writer {
    writer_kv *kvs;
    int64_t n_kv, cap_kv;
    writer_tensor *tensors;
    int64_t n_tensors, cap_tensors;
    char *ns; // collm_gguf_writer_set_ns: prefix of every key and tensor name added
};

int collm_gguf_writer_set_ns(collm_gguf_writer *w, const char *ns) {
    if (!w) return collm_error(COLLM_ERR_ARG, "gguf writer: NULL writer");
    char *copy = ns && *ns ? strdup(ns) : NULL;
    if (ns && *ns && !copy) return collm_error(COLLM_ERR_NOMEM, "gguf writer: out of memory");
    free(w->ns);
    w->ns = copy;
    return COLLM_OK;
}

// ns + name (malloc'd; the caller frees it), or NULL when out of memory.
static char *writer_full_name(const collm_gguf_writer *w, const char *name) {
    size_t a = w->ns ? strlen(w->ns) : 0, b = strlen(name);
    char *d = malloc(a + b + 1);
    if (d) {
        if (a) memcpy(d, w->ns, a);
        memcpy(d + a, name, b + 1);
    }
    return d;
}

collm_gguf_writer *collm_gguf_writer_create(void) { return collm_calloc(1, sizeof(collm_gguf_writer)); }

void collm_gguf_writer_free(collm_gguf_writer *w) {
    if (!w) return;
    for (int64_t i = 0; i < w->n_kv; i++) {
        free(w->kvs[i].key);
        free(w->kvs[i].value);
    }
    for (int64_t i = 0; i < w->n_tensors; i++) {
        free(w->tensors[i].name);
        free(w->tensors[i].data);
    }
    free(w->kvs);
    free(w->tensors);
    free(w->ns);
    free(w);
}

// Takes ownership of `value` (malloc'd, value_len bytes) in all cases.
static int writer_set_full(collm_gguf_writer *w, const char *key, collm_gguf_type type, unsigned char *value, size_t value_len);
static int writer_set(collm_gguf_writer *w, const char *key, collm_gguf_type type, unsigned char *value, size_t value_len) {
    if (!key || !*key) {
        free(value);
        return collm_error(COLLM_ERR_ARG, "gguf writer: empty key");
    }
    if (!w->ns) return writer_set_full(w, key, type, value, value_len);
    char *full = writer_full_name(w, key);
    if (!full) {
        free(value);
        return collm_error(COLLM_ERR_NOMEM, "gguf writer: out of memory");
    }
    int rc = writer_set_full(w, full, type, value, value_len);
    free(full);
    return rc;
}

static int writer_set_full(collm_gguf_writer *w, const char *key, collm_gguf_type type, unsigned char *value, size_t value_len) {
    for (int64_t i = 0; i < w->n_kv; i++) {
        if (strcmp(w->kvs[i].key, key) == 0) { // replace
            free(w->kvs[i].value);
            w->kvs[i].type = type;
            w->kvs[i].value = value;
            w->kvs[i].value_len = value_len;
            return COLLM_OK;
        }
    }
    if (w->n_kv == w->cap_kv) {
        int64_t cap = w->cap_kv ? 2 * w->cap_kv : 16;
        writer_kv *nk = realloc(w->kvs, (size_t)cap * sizeof *nk);
        if (!nk) {
            free(value);
            return collm_error(COLLM_ERR_NOMEM, "gguf writer: out of memory");
        }
        w->kvs = nk;
        w->cap_kv = cap;
    }
    char *k = strdup(key);
    if (!k) {
        free(value);
        return collm_error(COLLM_ERR_NOMEM, "gguf writer: out of memory");
    }
    w->kvs[w->n_kv++] = (writer_kv){k, type, value, value_len};
    return COLLM_OK;
}

static int writer_set_scalar(collm_gguf_writer *w, const char *key, collm_gguf_type type, const void *v) {
    size_t n = gguf_scalar_size[type];
    unsigned char *b = collm_malloc(n);
    if (!b) return COLLM_ERR_NOMEM;
    memcpy(b, v, n);
    return writer_set(w, key, type, b, n);
}

int collm_gguf_writer_set_scalar(collm_gguf_writer *w, const char *key, collm_gguf_type type, const void *v) {
    if ((unsigned)type >= COLLM_GGUF_TYPE_COUNT || gguf_scalar_size[type] == 0)
        return collm_error(COLLM_ERR_ARG, "gguf writer: key '%s': type %s is not a scalar", key ? key : "", collm_gguf_type_name(type));
    return writer_set_scalar(w, key, type, v);
}

int collm_gguf_writer_set_u32(collm_gguf_writer *w, const char *key, uint32_t v) { return writer_set_scalar(w, key, COLLM_GGUF_TYPE_UINT32, &v); }
int collm_gguf_writer_set_i32(collm_gguf_writer *w, const char *key, int32_t v) { return writer_set_scalar(w, key, COLLM_GGUF_TYPE_INT32, &v); }
int collm_gguf_writer_set_u64(collm_gguf_writer *w, const char *key, uint64_t v) { return writer_set_scalar(w, key, COLLM_GGUF_TYPE_UINT64, &v); }
int collm_gguf_writer_set_f32(collm_gguf_writer *w, const char *key, float v) { return writer_set_scalar(w, key, COLLM_GGUF_TYPE_FLOAT32, &v); }
int collm_gguf_writer_set_bool(collm_gguf_writer *w, const char *key, int v) {
    uint8_t b = v ? 1 : 0;
    return writer_set_scalar(w, key, COLLM_GGUF_TYPE_BOOL, &b);
}

int collm_gguf_writer_set_str(collm_gguf_writer *w, const char *key, const char *v) {
    uint64_t len = strlen(v);
    unsigned char *b = collm_malloc(8 + (size_t)len);
    if (!b) return COLLM_ERR_NOMEM;
    memcpy(b, &len, 8);
    memcpy(b + 8, v, (size_t)len);
    return writer_set(w, key, COLLM_GGUF_TYPE_STRING, b, 8 + (size_t)len);
}

int collm_gguf_writer_set_arr_str(collm_gguf_writer *w, const char *key, const char *const *v, uint64_t n) {
    size_t total = 12;
    for (uint64_t j = 0; j < n; j++) total += 8 + strlen(v[j]);
    unsigned char *b = collm_malloc(total);
    if (!b) return COLLM_ERR_NOMEM;
    uint32_t et = COLLM_GGUF_TYPE_STRING;
    memcpy(b, &et, 4);
    memcpy(b + 4, &n, 8);
    size_t o = 12;
    for (uint64_t j = 0; j < n; j++) {
        uint64_t len = strlen(v[j]);
        memcpy(b + o, &len, 8);
        memcpy(b + o + 8, v[j], (size_t)len);
        o += 8 + (size_t)len;
    }
    return writer_set(w, key, COLLM_GGUF_TYPE_ARRAY, b, total);
}

int collm_gguf_writer_set_arr(collm_gguf_writer *w, const char *key, collm_gguf_type type, const void *data, uint64_t n) {
    if ((unsigned)type >= COLLM_GGUF_TYPE_COUNT || gguf_scalar_size[type] == 0)
        return collm_error(COLLM_ERR_ARG, "gguf writer: key '%s': array element type %s is not numeric", key ? key : "",
                           collm_gguf_type_name(type));
    size_t es = gguf_scalar_size[type];
    if (n > (SIZE_MAX - 12) / es) return collm_error(COLLM_ERR_ARG, "gguf writer: key '%s': array too large", key ? key : "");
    unsigned char *b = collm_malloc(12 + (size_t)n * es);
    if (!b) return COLLM_ERR_NOMEM;
    uint32_t et = (uint32_t)type;
    memcpy(b, &et, 4);
    memcpy(b + 4, &n, 8);
    if (n) memcpy(b + 12, data, (size_t)n * es);
    return writer_set(w, key, COLLM_GGUF_TYPE_ARRAY, b, 12 + (size_t)n * es);
}

int collm_gguf_writer_copy_kv(collm_gguf_writer *w, const collm_gguf_file *src, int64_t i) {
    if (i < 0 || i >= src->n_kv) return collm_error(COLLM_ERR_ARG, "gguf writer: copy_kv: no key %" PRId64 " in %s", i, src->path);
    const gguf_kv *kv = &src->kvs[i];
    unsigned char *b = collm_malloc(kv->value_len);
    if (!b) return COLLM_ERR_NOMEM;
    memcpy(b, kv->value, kv->value_len);
    return writer_set(w, kv->key, kv->type, b, kv->value_len);
}

static int writer_add_tensor_full(collm_gguf_writer *w, const char *name, collm_ggml_type type, int n_dims, const int64_t *ne,
                                  const void *data);
int collm_gguf_writer_add_tensor(collm_gguf_writer *w, const char *name, collm_ggml_type type, int n_dims, const int64_t *ne, const void *data) {
    if (!w->ns || !name) return writer_add_tensor_full(w, name, type, n_dims, ne, data);
    char *full = writer_full_name(w, name);
    if (!full) return collm_error(COLLM_ERR_NOMEM, "gguf writer: out of memory");
    int rc = writer_add_tensor_full(w, full, type, n_dims, ne, data);
    free(full);
    return rc;
}

static int writer_add_tensor_full(collm_gguf_writer *w, const char *name, collm_ggml_type type, int n_dims, const int64_t *ne,
                                  const void *data) {
    if (!name || !*name || strlen(name) >= GGUF_MAX_NAME)
        return collm_error(COLLM_ERR_ARG, "gguf writer: tensor name '%s' is empty or has >= %d bytes", name ? name : "",
                           GGUF_MAX_NAME);
    for (int64_t i = 0; i < w->n_tensors; i++)
        if (strcmp(w->tensors[i].name, name) == 0)
            return collm_error(COLLM_ERR_ARG, "gguf writer: tensor '%s' added twice", name);
    if (n_dims < 1 || n_dims > COLLM_GGUF_MAX_DIMS)
        return collm_error(COLLM_ERR_ARG, "gguf writer: tensor '%s': n_dims %d not in 1..%d", name, n_dims, COLLM_GGUF_MAX_DIMS);
    int64_t blck;
    size_t bbytes;
    if (!ggml_block(type, &blck, &bbytes))
        return collm_error(COLLM_ERR_ARG, "gguf writer: tensor '%s': unknown type %d", name, (int)type);
    int64_t n = 1;
    for (int d = 0; d < n_dims; d++) {
        if (ne[d] <= 0 || ne[d] > INT64_MAX / n)
            return collm_error(COLLM_ERR_ARG, "gguf writer: tensor '%s': ne[%d] = %" PRId64 " is not positive or overflows", name,
                               d, ne[d]);
        n *= ne[d];
    }
    if (ne[0] % blck != 0)
        return collm_error(COLLM_ERR_ARG, "gguf writer: tensor '%s': ne[0] = %" PRId64 " is not a multiple of the %s block size",
                           name, ne[0], collm_ggml_type_name(type));
    size_t n_bytes = collm_ggml_type_size_for(type, n);
    if (n_bytes == 0) return collm_error(COLLM_ERR_ARG, "gguf writer: tensor '%s': size overflows", name);
    if (w->n_tensors == w->cap_tensors) {
        int64_t cap = w->cap_tensors ? 2 * w->cap_tensors : 16;
        writer_tensor *nt = realloc(w->tensors, (size_t)cap * sizeof *nt);
        if (!nt) return collm_error(COLLM_ERR_NOMEM, "gguf writer: out of memory");
        w->tensors = nt;
        w->cap_tensors = cap;
    }
    writer_tensor t = {0};
    t.name = strdup(name);
    t.data = collm_malloc(n_bytes);
    if (!t.name || !t.data) {
        free(t.name);
        free(t.data);
        return collm_error(COLLM_ERR_NOMEM, "gguf writer: out of memory for tensor '%s'", name);
    }
    memcpy(t.data, data, n_bytes);
    t.type = type;
    t.n_dims = n_dims;
    for (int d = 0; d < COLLM_GGUF_MAX_DIMS; d++) t.ne[d] = d < n_dims ? ne[d] : 1;
    t.n_bytes = n_bytes;
    w->tensors[w->n_tensors++] = t;
    return COLLM_OK;
}

int collm_gguf_writer_add_tensor_f32(collm_gguf_writer *w, const char *name, collm_ggml_type type, int n_dims, const int64_t *ne,
                               const float *data) {
    if (type == COLLM_GGML_TYPE_F32) return collm_gguf_writer_add_tensor(w, name, type, n_dims, ne, data);
    if (type != COLLM_GGML_TYPE_F16 && type != COLLM_GGML_TYPE_BF16)
        return collm_error(COLLM_ERR_ARG, "gguf writer: tensor '%s': cannot encode F32 as %s", name ? name : "",
                           collm_ggml_type_name(type));
    int64_t n = 1;
    for (int d = 0; d < n_dims && d < COLLM_GGUF_MAX_DIMS; d++) {
        if (ne[d] <= 0 || ne[d] > INT64_MAX / n)
            return collm_error(COLLM_ERR_ARG, "gguf writer: tensor '%s': bad ne[%d]", name ? name : "", d);
        n *= ne[d];
    }
    if (n_dims < 1 || n_dims > COLLM_GGUF_MAX_DIMS || (uint64_t)n > SIZE_MAX / 2)
        return collm_error(COLLM_ERR_ARG, "gguf writer: tensor '%s': bad shape", name ? name : "");
    uint16_t *h = collm_malloc((size_t)n * 2);
    if (!h) return COLLM_ERR_NOMEM;
    for (int64_t i = 0; i < n; i++) h[i] = type == COLLM_GGML_TYPE_F16 ? collm_f32_to_f16(data[i]) : collm_f32_to_bf16(data[i]);
    int rc = collm_gguf_writer_add_tensor(w, name, type, n_dims, ne, h);
    free(h);
    return rc;
}

static size_t pad_to(size_t x, size_t a) { return (a - x % a) % a; }

typedef struct {
    collm_gguf_writer *w;
    size_t alignment;
} write_ctx;

static int put_u32(FILE *f, uint32_t v) { return collm_fwrite_all(f, &v, 4); }
static int put_u64(FILE *f, uint64_t v) { return collm_fwrite_all(f, &v, 8); }
static int put_zeros(FILE *f, size_t n) {
    static const unsigned char zeros[256];
    while (n > 0) {
        size_t k = n < sizeof zeros ? n : sizeof zeros;
        int rc = collm_fwrite_all(f, zeros, k);
        if (rc) return rc;
        n -= k;
    }
    return COLLM_OK;
}

static int writer_emit(FILE *f, void *vctx) {
    write_ctx *ctx = vctx;
    collm_gguf_writer *w = ctx->w;
    size_t pos = 0;
    int rc = collm_fwrite_all(f, GGUF_MAGIC, 4);
    if (!rc) rc = put_u32(f, 3);
    if (!rc) rc = put_u64(f, (uint64_t)w->n_tensors);
    if (!rc) rc = put_u64(f, (uint64_t)w->n_kv);
    pos = 24;
    for (int64_t i = 0; i < w->n_kv && !rc; i++) {
        const writer_kv *kv = &w->kvs[i];
        size_t kl = strlen(kv->key);
        rc = put_u64(f, kl);
        if (!rc) rc = collm_fwrite_all(f, kv->key, kl);
        if (!rc) rc = put_u32(f, (uint32_t)kv->type);
        if (!rc) rc = collm_fwrite_all(f, kv->value, kv->value_len);
        pos += 8 + kl + 4 + kv->value_len;
    }
    for (int64_t i = 0; i < w->n_tensors && !rc; i++) {
        const writer_tensor *t = &w->tensors[i];
        size_t nl = strlen(t->name);
        rc = put_u64(f, nl);
        if (!rc) rc = collm_fwrite_all(f, t->name, nl);
        if (!rc) rc = put_u32(f, (uint32_t)t->n_dims);
        for (int d = 0; d < t->n_dims && !rc; d++) rc = put_u64(f, (uint64_t)t->ne[d]);
        if (!rc) rc = put_u32(f, (uint32_t)t->type);
        if (!rc) rc = put_u64(f, t->offset);
        pos += 8 + nl + 4 + 8 * (size_t)t->n_dims + 4 + 8;
    }
    if (!rc) rc = put_zeros(f, pad_to(pos, ctx->alignment));
    // data: each tensor followed by padding to the alignment (as ggml does)
    for (int64_t i = 0; i < w->n_tensors && !rc; i++) {
        const writer_tensor *t = &w->tensors[i];
        rc = collm_fwrite_all(f, t->data, t->n_bytes);
        if (!rc) rc = put_zeros(f, pad_to(t->n_bytes, ctx->alignment));
    }
    return rc;
}

int collm_gguf_writer_write(collm_gguf_writer *w, const char *path) {
    write_ctx ctx = {w, GGUF_DEFAULT_ALIGNMENT};
    for (int64_t i = 0; i < w->n_kv; i++) {
        if (strcmp(w->kvs[i].key, "general.alignment") != 0) continue;
        uint32_t a = 0;
        if (w->kvs[i].type == COLLM_GGUF_TYPE_UINT32) memcpy(&a, w->kvs[i].value, 4);
        if (w->kvs[i].type != COLLM_GGUF_TYPE_UINT32 || a == 0 || (a & (a - 1)) != 0)
            return collm_error(COLLM_ERR_ARG, "%s: key 'general.alignment' must be a u32 power of two", path);
        ctx.alignment = a;
    }
    uint64_t off = 0;
    for (int64_t i = 0; i < w->n_tensors; i++) {
        w->tensors[i].offset = off;
        off += w->tensors[i].n_bytes + pad_to(w->tensors[i].n_bytes, ctx.alignment);
    }
    int rc = collm_write_atomic(path, writer_emit, &ctx);
    return rc ? collm_error_prefix(rc, "%s: writing GGUF", path) : COLLM_OK;
}
