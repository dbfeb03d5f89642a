// Fuzzes both tokenizers on arbitrary bytes: SentencePiece with
// stories260K's vocab and byte-level BPE with qwen2-tiny-random's (from
// ../shared/models, or $COLLM_SHARED/models). Input: one flags byte, then
// the text.
//   bit 0     0: SPM, 1: BPE
//   bits 1-3  COLLM_TOK_ADD_BOS, COLLM_TOK_PARSE_SPECIAL, COLLM_TOK_LEGACY_SPECIAL_PIECES
//   bit 4     also decode the text's bytes read as int32 ids (out-of-range ids must fail cleanly)
// Invariants: encoding never fails on any bytes; a too-small buffer gets the
// full count and a prefix of the same ids; every id is in the vocab; and in
// raw mode (no flags) on text that is well-formed UTF-8, decoding gives the
// text back (BPE with the qwen2 pre-tokenizer: its NFC form; SPM: except
// text holding U+2581, which SPM stores as the space marker).
#include "collm/error.h"
#include "collm/tokenizer.h"
#include "fuzz_common.h"
#include "llm/tok_unicode.h"

static collm_tok_vocab *spm, *bpe;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    spm = collm_tok_load_path(fuzz_shared_path("models/stories260K.gguf"));
    bpe = collm_tok_load_path(fuzz_shared_path("models/qwen2-tiny-random.gguf"));
    if (!spm || !bpe) {
        fprintf(stderr, "fuzz_tokenizer: cannot load the vocabularies (set COLLM_SHARED): %s\n", collm_last_error());
        abort();
    }
    FUZZ_ASSERT(collm_tok_model_type(spm) == COLLM_TOK_MODEL_SPM && collm_tok_model_type(bpe) == COLLM_TOK_MODEL_BPE,
                "vocab kinds");
    return 0;
}

// The text as the library's UTF-8 decoder reads it, re-encoded (*out, malloc'd),
// optionally in NFC. Returns 1 when the text is well-formed (re-encoding the
// decoded code points gives the same bytes), 0 otherwise.
static int utf8_roundtrip(const char *text, size_t len, int nfc, char **out, size_t *out_len) {
    *out = NULL;
    uint32_t *cps = malloc((len + 1) * sizeof *cps), *norm = malloc((4 * len + 4) * sizeof *norm);
    char *buf = malloc(16 * len + 16);
    if (!cps || !norm || !buf) {
        free(cps), free(norm), free(buf);
        return 0;
    }
    size_t n = 0, pos = 0, w = 0;
    int ok = 1;
    while (pos < len) {
        size_t before = pos;
        uint32_t cp = collm_tok_utf8_decode((const uint8_t *)text, len, &pos);
        char enc[4];
        size_t el = collm_tok_utf8_encode(cp, enc);
        if (el != pos - before || memcmp(enc, text + before, el) != 0) ok = 0;
        cps[n++] = cp;
    }
    if (ok) {
        const uint32_t *src = cps;
        size_t m = n;
        if (nfc) {
            m = collm_tok_unicode_nfc(cps, n, norm);
            src = norm;
        }
        for (size_t i = 0; i < m; i++) w += collm_tok_utf8_encode(src[i], buf + w);
        *out = buf;
        *out_len = w;
    } else {
        free(buf);
    }
    free(cps);
    free(norm);
    return ok;
}

static void check_encode(const collm_tok_vocab *v, const char *text, size_t len, int flags) {
    int32_t small[8];
    int n = collm_tok_encode(v, text, len, flags, small, 8);
    FUZZ_ASSERT(n >= 0, "encode failed: %s", collm_last_error());
    int32_t *ids = malloc((size_t)(n ? n : 1) * sizeof *ids);
    FUZZ_ASSERT(ids != NULL, "out of memory");
    int again = collm_tok_encode(v, text, len, flags, ids, n);
    FUZZ_ASSERT(again == n, "second encode gives %d ids, first said %d", again, n);
    FUZZ_ASSERT(memcmp(ids, small, (size_t)(n < 8 ? n : 8) * sizeof *ids) == 0, "a truncated encode is a prefix");
    for (int i = 0; i < n; i++)
        FUZZ_ASSERT(ids[i] >= 0 && ids[i] < collm_tok_n_vocab(v), "id %d at %d out of range", ids[i], i);
    int need = collm_tok_decode(v, ids, n, NULL, 0);
    FUZZ_ASSERT(need >= 0, "decode of encoded ids failed: %s", collm_last_error());
    char *out = malloc((size_t)need + 1);
    FUZZ_ASSERT(out != NULL, "out of memory");
    FUZZ_ASSERT(collm_tok_decode(v, ids, n, out, (size_t)need + 1) == need, "decode length is stable");
    if (flags == 0) {
        int is_spm = collm_tok_model_type(v) == COLLM_TOK_MODEL_SPM;
        char *expect;
        size_t expect_len;
        int nfc = !is_spm && collm_tok_pre_type(v) == COLLM_TOK_PRE_QWEN2;
        if (utf8_roundtrip(text, len, nfc, &expect, &expect_len)) {
            int skip = is_spm && memmem(text, len, "\xe2\x96\x81", 3) != NULL;
            if (!skip)
                FUZZ_ASSERT((size_t)need == expect_len && memcmp(out, expect, expect_len) == 0,
                            "%s round trip: %zu bytes in, %d decoded", is_spm ? "SPM" : "BPE", expect_len, need);
            free(expect);
        }
    }
    free(out);
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int sel = data[0];
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    const collm_tok_vocab *v = sel & 1 ? bpe : spm;
    int flags = ((sel >> 1) & 1 ? COLLM_TOK_ADD_BOS : 0) | ((sel >> 2) & 1 ? COLLM_TOK_PARSE_SPECIAL : 0) |
                ((sel >> 3) & 1 ? COLLM_TOK_LEGACY_SPECIAL_PIECES : 0);
    check_encode(v, text, len, flags);
    if (sel & 16) {
        size_t n = len / 4;
        int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
        if (!ids) return 0;
        memcpy(ids, text, n * 4);
        int ok = 1;
        for (size_t i = 0; i < n; i++) ok &= ids[i] >= 0 && ids[i] < collm_tok_n_vocab(v);
        char out[256];
        int got = collm_tok_decode(v, ids, (int)n, out, sizeof out);
        FUZZ_ASSERT(ok ? got >= 0 : got < 0, "decode of %s ids returned %d", ok ? "valid" : "invalid", got);
        free(ids);
    }
    return 0;
}
