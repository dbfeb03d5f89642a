// Internals shared by tokenizer.c, tokenizer_spm.c and tokenizer_bpe.c.
#ifndef COLLM_TOK_INTERNAL_H
#define COLLM_TOK_INTERNAL_H

#include "collm/tokenizer.h"

#include <stddef.h>
#include <stdint.h>

// Open-addressing hash from a string to its index in a string table
// (blob + off[i], length len[i]). slots hold index + 1; 0 = empty.
typedef struct {
    uint32_t *slots;
    uint32_t mask; // capacity - 1, capacity a power of two >= 2 * n
} collm_tok_hash;

// A string table: n strings stored NUL-terminated in one blob.
typedef struct {
    int n;
    char *blob;
    uint32_t *off;
    uint32_t *len;
} collm_tok_strings;

struct collm_tok_vocab {
    collm_tok_model model;
    collm_tok_pre pre;
    collm_tok_strings tokens; // (n_vocab) token texts
    float *scores;      // (n_vocab)
    uint8_t *types;     // (n_vocab) collm_tok_token_type
    collm_tok_hash token_map; // text -> id; a duplicate text maps to its last id (llama.cpp)
    collm_tok_strings merges; // (n_merges) "left right", index = rank
    collm_tok_hash merge_map; // "left right" -> rank; a duplicate keeps its first rank
    int32_t bos, eos, unk, pad;
    int add_bos, add_space_prefix;
    int32_t byte_token[256];      // SPM byte fallback: <0xXX> token (else the 1-char token), -1 if none
    char byte_unicode[256][4];    // BPE: GPT-2 bytes_to_unicode(b) as UTF-8, NUL-terminated
    int16_t unicode_byte[512];    // inverse of bytes_to_unicode for code points < 512, -1 if none
    int32_t *special_ids;         // CONTROL / USER_DEFINED / UNKNOWN ids, longest text first
    int n_special;
};

// Growable id list used while encoding.
typedef struct {
    int32_t *ids;
    int n, cap;
} collm_tok_ids;

int collm_tok_ids_push(collm_tok_ids *a, int32_t id);

// Lookup of s[0..n) in the token map: id or -1.
int32_t collm_tok_lookup(const collm_tok_vocab *v, const char *s, size_t n);
// Merge rank of the pair (a, b) (BPE), or -1.
int32_t collm_tok_merge_rank(const collm_tok_vocab *v, const char *a, size_t na, const char *b, size_t nb);

// SPM-encodes one raw-text fragment (already without special tokens),
// with the dummy "▁" prefix if add_prefix. Appends to out.
int collm_tok_spm_encode(const collm_tok_vocab *v, const char *text, size_t len, int add_prefix, collm_tok_ids *out);
// Byte-level-BPE-encodes one raw-text fragment. Appends to out.
int collm_tok_bpe_encode(const collm_tok_vocab *v, const char *text, size_t len, collm_tok_ids *out);

// Pre-tokenizers over code points: writes the end offset of each piece to
// ends (capacity n) and returns the number of pieces (pieces are contiguous).
size_t collm_tok_pretokenize_gpt2(const uint32_t *cps, size_t n, size_t *ends);
size_t collm_tok_pretokenize_qwen2(const uint32_t *cps, size_t n, size_t *ends);


// A queued merge of two adjacent symbols, for both merging algorithms.
// Lower priority pops first, ties go to the leftmost pair (SPM queues
// -score: the best-scoring merge first; BPE queues the merge rank). size is
// the merged byte length when queued: a popped entry whose symbols changed
// since is stale and skipped.
typedef struct {
    int left, right;
    double priority;
    size_t size;
} collm_tok_bigram;

typedef struct {
    collm_tok_bigram *items;
    size_t n, cap;
} collm_tok_bigram_heap;

int collm_tok_heap_push(collm_tok_bigram_heap *h, collm_tok_bigram b);
collm_tok_bigram collm_tok_heap_pop(collm_tok_bigram_heap *h); // h->n > 0

#endif
