// Raw-text helpers shared by the dataset builders (prepare.c, prepare_csv.c):
// encoding checks, Latin-1 -> UTF-8, and a string -> int32 hash map.
#ifndef COLLM_DATA_TEXT_H
#define COLLM_DATA_TEXT_H

#include <stddef.h>
#include <stdint.h>

// 1 when s[0..n) is valid UTF-8 (no overlong 2-byte forms).
int collm_text_valid_utf8(const unsigned char *s, size_t n);
// Latin-1 -> UTF-8 unless is_utf8 (then a copy). malloc'd, NUL-terminated; NULL when out of memory.
char *collm_text_to_utf8(const char *s, size_t n, int is_utf8);

// Open-addressing map from byte strings (not copied: they must outlive the
// map) to int32.
typedef struct {
    const char **key;
    size_t *klen;
    int32_t *val;
    size_t cap, n;
} collm_strmap;

int collm_strmap_init(collm_strmap *m, size_t expect);
void collm_strmap_free(collm_strmap *m);
// The value of key, or -1.
int32_t collm_strmap_get(const collm_strmap *m, const char *k, size_t n);
// Sets key -> v (overwrites). Grows at half load.
int collm_strmap_put(collm_strmap *m, const char *k, size_t n, int32_t v);

#endif
