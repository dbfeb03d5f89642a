// Tokenizers read from GGUF metadata: SentencePiece-BPE ("llama" vocabs,
// as llama.cpp's llm_tokenizer_spm) and byte-level BPE ("gpt2" vocabs with
// the "gpt-2" or "qwen2" pre-tokenizer, as llama.cpp's llm_tokenizer_bpe).
//
// Keys read (tokenizer.ggml.*):
//   model             "llama" -> SPM, "gpt2" -> byte-level BPE (required)
//   tokens            string array (required); ids are array indices
//   scores            f32 array (SPM: merge priority; optional, default 0)
//   token_type        i32 array (optional, default NORMAL): collm_tok_token_type
//   merges            string array "left right" in rank order (BPE: required)
//   pre               BPE pre-tokenizer: "gpt-2", "qwen2"; absent or
//                     "default" -> the GPT-2 regex; anything else -> error
//   bos_token_id, eos_token_id, unknown_token_id, padding_token_id
//                     (absent or 0xFFFFFFFF -> -1)
//   add_bos_token     default: true for SPM, false for BPE (llama.cpp)
//   add_space_prefix  SPM dummy prefix, default true
//
// Encoding modes (flags of collm_tok_encode):
//   0 (raw)                   llama.cpp llama_tokenize(add_special=false,
//                             parse_special=false): text such as "<s>" is
//                             ordinary text. (USER_DEFINED tokens are still
//                             matched as whole tokens, as llama.cpp does.)
//                             SPM: spaces become U+2581 "▁" and one "▁" is
//                             prepended to a non-empty text (dummy prefix).
//   COLLM_TOK_ADD_BOS               prepend BOS if the vocab asks for it
//                             (add_bos_token), = llama.cpp add_special=true
//                             (also for empty text: "" -> [BOS]).
//   COLLM_TOK_PARSE_SPECIAL         llama.cpp parse_special=true: the text of
//                             CONTROL, USER_DEFINED and UNKNOWN tokens ("<s>",
//                             "</s>", "<unk>", "<|im_start|>") becomes that
//                             token; matched longest text first over the whole
//                             text. SPM: every text fragment that starts the
//                             text or follows a special token gets the dummy
//                             prefix (llama.cpp b4747 sets is_prev_special
//                             after each special token), so "a <unk>. b" gives
//                             "▁a" "▁" <unk> "▁." "▁b".
//   COLLM_TOK_LEGACY_SPECIAL_PIECES transformers 4.28 slow LlamaTokenizer with
//                             add_special_tokens=False, as CoLLM uses it
//                             (method.md 3.2): split at the same special texts,
//                             emit their ids, and SentencePiece-encode every
//                             piece in between separately WITH the dummy
//                             prefix (no whitespace stripping around the
//                             special tokens: they are AddedToken(lstrip=False,
//                             rstrip=False)). A piece ending in a space thus
//                             ends in a standalone "▁" (29871 in Llama 2).
//                             For SPM vocabs this gives the same ids as
//                             COLLM_TOK_PARSE_SPECIAL; for BPE vocabs (no prefix)
//                             too. Kept as its own flag so CoLLM code states
//                             which semantics it relies on.
//
// Byte-level BPE details: the text is decoded as UTF-8 (malformed bytes
// become U+FFFD, as llama.cpp), split by the pre-tokenizer regex
// (implemented by hand over Unicode classes from python3 unicodedata):
//   gpt-2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//   qwen2: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}
//          | ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
// qwen2 first applies NFC (as the Hugging Face tokenizer does; llama.cpp
// b4747 does not, so the two differ only on non-NFC input). Each piece's
// UTF-8 bytes are mapped through GPT-2's bytes_to_unicode and merged by rank.
//
// SPM details: the text is split into UTF-8 characters by lead byte (a
// malformed byte is its own character), adjacent pairs are merged while
// the merged text is a vocab token, highest score first (ties: leftmost);
// a final symbol that is not a token is emitted as its bytes' <0xXX> tokens.
//
//
// Threading: a collm_tok_vocab is immutable after collm_tok_load: any number
// of threads may encode and decode with one vocab at once (each call uses
// only its own buffers).
#ifndef COLLM_TOKENIZER_H
#define COLLM_TOKENIZER_H

#include "collm/version.h"

#include <stddef.h>
#include <stdint.h>

#include "collm/gguf.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct collm_tok_vocab collm_tok_vocab;

typedef enum {
    COLLM_TOK_MODEL_SPM = 1, // "llama"
    COLLM_TOK_MODEL_BPE = 2, // "gpt2"
} collm_tok_model;

typedef enum {
    COLLM_TOK_PRE_NONE = 0,  // SPM: no pre-tokenizer
    COLLM_TOK_PRE_GPT2 = 1,  // "gpt-2" (also absent / "default" for BPE)
    COLLM_TOK_PRE_QWEN2 = 2, // "qwen2"
} collm_tok_pre;

// tokenizer.ggml.token_type values (llama.cpp's llama_token_type).
typedef enum {
    COLLM_TOK_TYPE_UNDEFINED = 0,
    COLLM_TOK_TYPE_NORMAL = 1,
    COLLM_TOK_TYPE_UNKNOWN = 2,
    COLLM_TOK_TYPE_CONTROL = 3,
    COLLM_TOK_TYPE_USER_DEFINED = 4,
    COLLM_TOK_TYPE_UNUSED = 5,
    COLLM_TOK_TYPE_BYTE = 6,
} collm_tok_token_type;

enum {
    COLLM_TOK_ADD_BOS = 1 << 0,
    COLLM_TOK_PARSE_SPECIAL = 1 << 1,
    COLLM_TOK_LEGACY_SPECIAL_PIECES = 1 << 2,
};

// Reads the tokenizer from an open GGUF (the vocab keeps its own copies; f
// may be closed afterwards). NULL + error naming the key on missing or
// malformed keys.
COLLM_API collm_tok_vocab *collm_tok_load(const collm_gguf_file *f);
// Opens path, loads, closes. Errors are prefixed with the path.
COLLM_API collm_tok_vocab *collm_tok_load_path(const char *path);
COLLM_API void collm_tok_free(collm_tok_vocab *v);

// Encodes text[0..len) (UTF-8; malformed bytes never crash, see above).
// Writes at most cap ids to out and returns the total number of ids the
// text needs (so a return value > cap means out was truncated: call again
// with a larger buffer), or a negative error code.
COLLM_API int collm_tok_encode(const collm_tok_vocab *v, const char *text, size_t len, int flags, int32_t *out, int cap);

// Decodes ids into text for display: SPM "▁" -> " " (the dummy-prefix space
// is dropped from the first text token; control tokens before it do not
// count, so [BOS, "▁Hello"] -> "<s>Hello"), <0xXX> -> that byte;
// BPE pieces mapped back through bytes_to_unicode. Control and unknown
// tokens are written as their text ("<s>"). Writes at most cap-1 bytes plus
// NUL; returns the full length needed (excluding NUL), negative on error
// (an id out of range).
COLLM_API int collm_tok_decode(const collm_tok_vocab *v, const int32_t *ids, int n, char *out, size_t cap);

COLLM_API int collm_tok_n_vocab(const collm_tok_vocab *v);
COLLM_API collm_tok_model collm_tok_model_type(const collm_tok_vocab *v);
COLLM_API collm_tok_pre collm_tok_pre_type(const collm_tok_vocab *v);
COLLM_API int collm_tok_add_bos(const collm_tok_vocab *v); // whether COLLM_TOK_ADD_BOS adds a BOS
COLLM_API int32_t collm_tok_bos(const collm_tok_vocab *v);  // -1 if none
COLLM_API int32_t collm_tok_eos(const collm_tok_vocab *v);
COLLM_API int32_t collm_tok_unk(const collm_tok_vocab *v);
COLLM_API int32_t collm_tok_pad(const collm_tok_vocab *v);
// Token text as stored in the vocab (SPM "▁Yes", BPE "ĠYes"), NUL-terminated;
// NULL if id is out of range.
COLLM_API const char *collm_tok_token_text(const collm_tok_vocab *v, int32_t id);
COLLM_API collm_tok_token_type collm_tok_token_type_of(const collm_tok_vocab *v, int32_t id);
COLLM_API float collm_tok_token_score(const collm_tok_vocab *v, int32_t id);
// Id of the token whose stored text is exactly `text`, or -1 (hash lookup).
COLLM_API int32_t collm_tok_find(const collm_tok_vocab *v, const char *text);

#ifdef __cplusplus
}
#endif

#endif
