// Tokenizer tests against llama.cpp's own vectors (shared/testvectors/tokenizer),
// the recommender-style cases, the token ids of the logits vectors, a
// hand-checked CoLLM legacy case, NFC against python unicodedata, and bad input.
#include "collm/error.h"
#include "collm/gguf.h"
#include "collm/tokenizer.h"
#include "test.h"

#include "llm/tok_unicode.h" // internal: NFC and UTF-8 helpers

#include <cjson/cJSON.h>
#include <stdint.h>
#include <sys/stat.h>

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) buf[n] = '\0';
    if (len) *len = (size_t)n;
    return buf;
}

// Parses space-separated ids; returns the count.
static int parse_ids(const char *s, const char *end, int32_t *ids, int cap) {
    int n = 0;
    while (s < end) {
        while (s < end && (*s == ' ' || *s == '\t')) s++;
        if (s >= end || *s == '\n' || *s == '\r') break;
        char *e;
        long v = strtol(s, &e, 10);
        if (e == s) break;
        if (n < cap) ids[n] = (int32_t)v;
        n++;
        s = e;
    }
    return n;
}

// Encodes and compares; prints the first mismatch.
static int encode_matches(const collm_tok_vocab *v, const char *text, size_t len, int flags, const int32_t *want, int n_want,
                          const char *what) {
    int32_t got[4096];
    int n = collm_tok_encode(v, text, len, flags, got, 4096);
    int ok = n == n_want && (n == 0 || memcmp(got, want, (size_t)n * sizeof *got) == 0);
    if (!ok) {
        fprintf(stderr, "MISMATCH %s: text \"%.*s\" (flags %d)\n  want:", what, (int)len, text, flags);
        for (int i = 0; i < n_want; i++) fprintf(stderr, " %d", want[i]);
        fprintf(stderr, "\n  got: ");
        for (int i = 0; i < n && i < 4096; i++) fprintf(stderr, " %d", got[i]);
        fprintf(stderr, "%s\n", n < 0 ? collm_last_error() : "");
    }
    return ok;
}

// llama.cpp's .inp/.out pair: strings separated by "\n__ggml_vocab_test__\n", one id line each.
static void check_llama_cpp_vectors(const char *vocab_rel, const char *inp_rel, const char *out_rel) {
    collm_tok_vocab *v = collm_tok_load_path(test_shared_path(vocab_rel));
    CHECK_MSG(v != NULL, "%s", collm_last_error());
    size_t inp_len, out_len;
    char *inp = read_file(test_shared_path(inp_rel), &inp_len);
    char *out = read_file(test_shared_path(out_rel), &out_len);
    CHECK(inp && out);
    if (!v || !inp || !out) goto done;
    const char *sep = "\n__ggml_vocab_test__\n";
    size_t sep_len = strlen(sep);
    const char *s = inp, *line = out;
    int n_cases = 0, n_pass = 0;
    for (;;) {
        const char *e = strstr(s, sep);
        if (!e) break;
        const char *line_end = strchr(line, '\n');
        if (!line_end) line_end = out + out_len;
        int32_t want[4096];
        int n_want = parse_ids(line, line_end, want, 4096);
        n_cases++;
        n_pass += encode_matches(v, s, (size_t)(e - s), 0, want, n_want, inp_rel);
        s = e + sep_len;
        line = *line_end ? line_end + 1 : line_end;
    }
    CHECK_MSG(n_cases == 46, "%s: %d cases", inp_rel, n_cases);
    CHECK_MSG(n_pass == n_cases, "%s: %d of %d", inp_rel, n_pass, n_cases);
    printf("%-40s %d/%d cases match\n", inp_rel, n_pass, n_cases);
done:
    free(inp);
    free(out);
    collm_tok_free(v);
}

// Decodes a JSON string literal starting at s (the opening quote) into out;
// returns the byte length, or -1. Handles \" \\ \/ \b \f \n \r \t \uXXXX (with surrogate pairs).
static int json_string(const char *s, char *out, const char **end) {
    if (*s != '"') return -1;
    s++;
    int n = 0;
    while (*s && *s != '"') {
        if (*s != '\\') {
            out[n++] = *s++;
            continue;
        }
        s++;
        char c = *s++;
        switch (c) {
        case 'n': out[n++] = '\n'; break;
        case 't': out[n++] = '\t'; break;
        case 'r': out[n++] = '\r'; break;
        case 'b': out[n++] = '\b'; break;
        case 'f': out[n++] = '\f'; break;
        case 'u': {
            unsigned cp;
            if (sscanf(s, "%4x", &cp) != 1) return -1;
            s += 4;
            if (cp >= 0xD800 && cp < 0xDC00 && s[0] == '\\' && s[1] == 'u') {
                unsigned lo;
                if (sscanf(s + 2, "%4x", &lo) != 1) return -1;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                s += 6;
            }
            n += (int)collm_tok_utf8_encode(cp, out + n);
            break;
        }
        default: out[n++] = c;
        }
    }
    if (*s != '"') return -1;
    out[n] = '\0';
    *end = s + 1;
    return n;
}

// recsys TSV: <json string> TAB <ids>. Also checks decode(ids) == text.
static void check_recsys(const char *vocab_rel, const char *tsv_rel, int flags, int also_bos_flag_same) {
    collm_tok_vocab *v = collm_tok_load_path(test_shared_path(vocab_rel));
    CHECK_MSG(v != NULL, "%s", collm_last_error());
    char *tsv = read_file(test_shared_path(tsv_rel), NULL);
    CHECK(tsv != NULL);
    if (!v || !tsv) goto done;
    int n_cases = 0, n_pass = 0, n_round = 0;
    for (const char *line = tsv; *line;) {
        const char *line_end = strchr(line, '\n');
        if (!line_end) line_end = line + strlen(line);
        char text[4096];
        const char *after;
        int len = json_string(line, text, &after);
        CHECK_MSG(len >= 0 && *after == '\t', "%s: bad line %d", tsv_rel, n_cases + 1);
        if (len < 0) break;
        int32_t want[4096];
        int n_want = parse_ids(after + 1, line_end, want, 4096);
        n_cases++;
        int ok = encode_matches(v, text, (size_t)len, flags, want, n_want, tsv_rel);
        if (also_bos_flag_same) ok &= encode_matches(v, text, (size_t)len, flags | COLLM_TOK_ADD_BOS, want, n_want, tsv_rel);
        n_pass += ok;
        // round trip: decoding the ids (BOS skipped) gives the text back
        char dec[8192];
        int skip = (flags & COLLM_TOK_ADD_BOS) && n_want > 0 ? 1 : 0;
        int dl = collm_tok_decode(v, want + skip, n_want - skip, dec, sizeof dec);
        int round = dl == len && memcmp(dec, text, (size_t)len) == 0;
        if (!round) fprintf(stderr, "DECODE %s: \"%s\" -> \"%s\"\n", tsv_rel, text, dl >= 0 ? dec : collm_last_error());
        n_round += round;
        line = *line_end ? line_end + 1 : line_end;
    }
    CHECK_MSG(n_cases >= 22, "%s: %d cases", tsv_rel, n_cases);
    CHECK_MSG(n_pass == n_cases, "%s: %d of %d", tsv_rel, n_pass, n_cases);
    CHECK_MSG(n_round == n_cases, "%s: decode round trip %d of %d", tsv_rel, n_round, n_cases);
    printf("%-40s %d/%d cases match, %d/%d decode back\n", tsv_rel, n_pass, n_cases, n_round, n_cases);
done:
    free(tsv);
    collm_tok_free(v);
}

// The exact ids llama.cpp fed to the models for the logits vectors (BOS per vocab).
static void check_logits_prompts(const char *model, const char *gguf_rel) {
    char rel[256];
    snprintf(rel, sizeof rel, "testvectors/logits/%s/logits.json", model);
    char *json = read_file(test_shared_path(rel), NULL);
    collm_tok_vocab *v = collm_tok_load_path(test_shared_path(gguf_rel));
    CHECK_MSG(json && v, "%s / %s: %s", rel, gguf_rel, collm_last_error());
    cJSON *root = json ? cJSON_Parse(json) : NULL;
    const cJSON *prompts = cJSON_GetObjectItemCaseSensitive(root, "prompts");
    int n_cases = 0, n_pass = 0;
    const cJSON *p;
    cJSON_ArrayForEach(p, prompts) {
        const char *text = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p, "text"));
        const cJSON *toks = cJSON_GetObjectItemCaseSensitive(p, "tokens");
        int32_t want[1024];
        int n_want = 0;
        const cJSON *t;
        cJSON_ArrayForEach(t, toks) if (n_want < 1024) want[n_want++] = (int32_t)t->valuedouble;
        n_cases++;
        if (v && text) n_pass += encode_matches(v, text, strlen(text), COLLM_TOK_ADD_BOS, want, n_want, rel);
    }
    CHECK_MSG(n_cases == 4 && n_pass == 4, "%s: %d of %d", rel, n_pass, n_cases);
    printf("%-40s %d/%d prompts match\n", rel, n_pass, n_cases);
    cJSON_Delete(root);
    free(json);
    collm_tok_free(v);
}

static int ids_of_texts(const collm_tok_vocab *v, const char *const *texts, int n, int32_t *ids) {
    for (int i = 0; i < n; i++) {
        ids[i] = collm_tok_find(v, texts[i]);
        if (ids[i] < 0) return 0;
    }
    return 1;
}

// CoLLM legacy special pieces (method.md 3.2). Expected ids reasoned from
// the vocab: "<s>" and "<unk>" are split out (ids 1 and 0); each piece in
// between is SentencePiece-encoded with its own dummy prefix, so
// "the feature " -> "▁the▁feature▁" -> ▁the ▁feature ▁ (no vocab piece
// ends in ▁ after a word, so the last ▁ stands alone: 29871), and
// ". Using" -> "▁.▁Using" -> ▁. ▁Using (the "." after <unk> gets a ▁ too).
static void check_collm_legacy(void) {
    collm_tok_vocab *v = collm_tok_load_path(test_shared_path("testvectors/tokenizer/ggml-vocab-llama-spm.gguf"));
    CHECK(v != NULL);
    if (!v) return;
    const char *text = "<s>the feature <unk>. Using";
    const char *texts[] = {"<s>", "\xe2\x96\x81the", "\xe2\x96\x81" "feature", "\xe2\x96\x81", "<unk>",
                           "\xe2\x96\x81.", "\xe2\x96\x81Using"};
    int32_t want[7];
    CHECK(ids_of_texts(v, texts, 7, want));
    CHECK(want[0] == 1 && want[3] == 29871 && want[4] == 0); // the ids method.md names
    CHECK(encode_matches(v, text, strlen(text), COLLM_TOK_LEGACY_SPECIAL_PIECES, want, 7, "collm legacy"));
    // llama.cpp parse_special gives the same for SPM (dummy prefix after each special token)
    CHECK(encode_matches(v, text, strlen(text), COLLM_TOK_PARSE_SPECIAL, want, 7, "parse special"));
    // the same pieces encoded one by one in raw mode
    int32_t a[64], b[64];
    int na = collm_tok_encode(v, "the feature ", 12, 0, a, 64);
    int nb = collm_tok_encode(v, ". Using", 7, 0, b, 64);
    CHECK(na == 3 && nb == 2 && memcmp(a, want + 1, 3 * sizeof *a) == 0 && memcmp(b, want + 5, 2 * sizeof *b) == 0);
    // raw mode: "<s>" is text ("▁<" "s" ">"), as in recsys-llama-spm.raw.tsv
    int32_t raw[64];
    int nr = collm_tok_encode(v, "<s>", 3, 0, raw, 64);
    CHECK(nr == 3 && raw[0] == 529 && raw[1] == 29879 && raw[2] == 29958);

    // the full filled CoLLM prompt: 1 first, 0 at both slots, 29871 before the first <unk>
    const char *prompt = "<s>#Question: A user has given high ratings to the following movies: \"Heat (1995)\". "
                         "Additionally, we have information about the user's preferences encoded in the feature <unk>. "
                         "Using all available information, make a prediction about whether the user would enjoy the movie "
                         "titled \"Casino (1995)\" with the feature <unk>? Answer with \"Yes\" or \"No\". \\n#Answer:";
    int32_t ids[512];
    int n = collm_tok_encode(v, prompt, strlen(prompt), COLLM_TOK_LEGACY_SPECIAL_PIECES, ids, 512);
    int n_unk = 0, first_unk = -1;
    for (int i = 0; i < n; i++)
        if (ids[i] == 0) {
            if (first_unk < 0) first_unk = i;
            n_unk++;
        }
    CHECK(n > 50 && ids[0] == 1 && n_unk == 2 && first_unk >= 2 && ids[first_unk - 1] == 29871);
    // after "<unk>? Answer": "?" gets the dummy prefix: "▁?"
    int32_t q = collm_tok_find(v, "\xe2\x96\x81?");
    int second_unk = -1;
    for (int i = first_unk + 1; i < n; i++)
        if (ids[i] == 0) second_unk = i;
    CHECK(q >= 0 && second_unk > 0 && second_unk + 1 < n && ids[second_unk + 1] == q);
    // the piece "with the feature " ends in a standalone ▁ as well
    CHECK(ids[second_unk - 1] == 29871);
    // the prompt ends with the same ids as raw "\\n#Answer:" in the TALLRec case: ▁\ n # Answer :
    CHECK(ids[n - 4] == 29876 && ids[n - 3] == 29937 && ids[n - 2] == 22550 && ids[n - 1] == 29901);

    // (its speed is measured by bench/unit_timings.c, not asserted here)
    collm_tok_free(v);
}

static void check_api(void) {
    collm_tok_vocab *v = collm_tok_load_path(test_shared_path("testvectors/tokenizer/ggml-vocab-llama-spm.gguf"));
    CHECK(v != NULL);
    if (!v) return;
    CHECK(collm_tok_n_vocab(v) == 32000 && collm_tok_model_type(v) == COLLM_TOK_MODEL_SPM && collm_tok_add_bos(v));
    CHECK(collm_tok_bos(v) == 1 && collm_tok_eos(v) == 2 && collm_tok_unk(v) == 0 && collm_tok_pad(v) == -1);
    CHECK(collm_tok_find(v, "\xe2\x96\x81Yes") == 3869 && collm_tok_find(v, "\xe2\x96\x81No") == 1939);
    CHECK(collm_tok_find(v, "no-such-token") == -1);
    CHECK_STR(collm_tok_token_text(v, 3869), "\xe2\x96\x81Yes");
    CHECK(collm_tok_token_text(v, 32000) == NULL && collm_tok_token_text(v, -1) == NULL);
    CHECK(collm_tok_token_type_of(v, 1) == COLLM_TOK_TYPE_CONTROL && collm_tok_token_type_of(v, 0) == COLLM_TOK_TYPE_UNKNOWN &&
          collm_tok_token_type_of(v, 3) == COLLM_TOK_TYPE_BYTE && collm_tok_token_type_of(v, 3869) == COLLM_TOK_TYPE_NORMAL);
    // empty text: nothing, or just BOS
    int32_t ids[16];
    CHECK(collm_tok_encode(v, "", 0, 0, ids, 16) == 0);
    CHECK(collm_tok_encode(v, "", 0, COLLM_TOK_ADD_BOS, ids, 16) == 1 && ids[0] == 1);
    // truncation: returns the needed count, writes at most cap
    ids[1] = -7;
    CHECK(collm_tok_encode(v, " Yes No", 7, 0, ids, 1) == 3 && ids[1] == -7);
    // invalid UTF-8: byte fallback, no crash. "\xff" -> ▁ <0xFF>
    int n = collm_tok_encode(v, "\xff", 1, 0, ids, 16);
    CHECK(n == 2 && ids[0] == 29871 && ids[1] == collm_tok_find(v, "<0xFF>") && ids[1] == 258);
    n = collm_tok_encode(v, "a\xc3", 2, 0, ids, 16); // truncated 2-byte sequence
    CHECK(n == 2 && ids[0] == collm_tok_find(v, "\xe2\x96\x81" "a") && ids[1] == collm_tok_find(v, "<0xC3>"));
    n = collm_tok_encode(v, "\xe2\x82", 2, 0, ids, 16);
    CHECK(n == 3 && ids[1] == collm_tok_find(v, "<0xE2>") && ids[2] == collm_tok_find(v, "<0x82>"));
    // decode: bytes come back, the dummy prefix is dropped
    int32_t hello[] = {1, 15043, 3186, 29871, 258};
    char buf[64];
    int dl = collm_tok_decode(v, hello, 5, buf, sizeof buf);
    CHECK(dl == 16 && memcmp(buf, "<s>Hello world \xff", 17) == 0);
    CHECK(collm_tok_decode(v, hello, 5, buf, 4) == 16 && strcmp(buf, "<s>") == 0); // truncated, NUL-terminated
    int32_t bad = 40000;
    CHECK(collm_tok_decode(v, &bad, 1, buf, sizeof buf) < 0);
    CHECK(collm_tok_encode(v, NULL, 3, 0, ids, 16) < 0);
    collm_tok_free(v);

    v = collm_tok_load_path(test_shared_path("testvectors/tokenizer/ggml-vocab-gpt-2.gguf"));
    CHECK(v != NULL);
    if (!v) return;
    CHECK(collm_tok_model_type(v) == COLLM_TOK_MODEL_BPE && collm_tok_pre_type(v) == COLLM_TOK_PRE_GPT2 && !collm_tok_add_bos(v) && collm_tok_bos(v) == 50256);
    // invalid UTF-8 becomes U+FFFD (as llama.cpp), which decodes back as EF BF BD
    n = collm_tok_encode(v, "a\xff" "b", 3, 0, ids, 16);
    CHECK(n >= 3);
    dl = collm_tok_decode(v, ids, n, buf, sizeof buf);
    CHECK(dl == 5 && memcmp(buf, "a\xef\xbf\xbd" "b", 5) == 0);
    // parse_special: "<|endoftext|>" is one token only when asked
    const char *eot = "a<|endoftext|>b";
    n = collm_tok_encode(v, eot, strlen(eot), COLLM_TOK_PARSE_SPECIAL, ids, 16);
    CHECK(n == 3 && ids[1] == 50256);
    n = collm_tok_encode(v, eot, strlen(eot), 0, ids, 16);
    CHECK(n > 3);
    collm_tok_free(v);

    v = collm_tok_load_path(test_shared_path("testvectors/tokenizer/ggml-vocab-qwen2-rebuilt.gguf"));
    CHECK(v != NULL);
    if (!v) return;
    CHECK(collm_tok_pre_type(v) == COLLM_TOK_PRE_QWEN2 && !collm_tok_add_bos(v) && collm_tok_eos(v) == 151645 && collm_tok_pad(v) == 151643);
    // NFC before BPE: a decomposed "é" encodes like the precomposed one
    int32_t a[16], b[16];
    int na = collm_tok_encode(v, "caf\xc3\xa9", 5, 0, a, 16);
    int nb = collm_tok_encode(v, "cafe\xcc\x81", 6, 0, b, 16);
    CHECK(na > 0 && na == nb && memcmp(a, b, (size_t)na * sizeof *a) == 0);
    const char *chat = "<|im_start|>user\nhi<|im_end|>";
    n = collm_tok_encode(v, chat, strlen(chat), COLLM_TOK_PARSE_SPECIAL, ids, 16);
    CHECK(n >= 4 && ids[0] == 151644 && ids[n - 1] == 151645);
    collm_tok_free(v);
}

// NFC against python3 unicodedata (Unicode 14) results.
static void check_nfc(void) {
    static const struct {
        uint32_t in[10];
        int n_in;
        uint32_t want[10];
        int n_want;
    } cases[] = {
        {{0x65, 0x301}, 2, {0xE9}, 1},
        {{0x41, 0x30A}, 2, {0xC5}, 1},
        {{0x212B}, 1, {0xC5}, 1},
        {{0x1100, 0x1161, 0x11A8}, 3, {0xAC01}, 1},
        {{0x61, 0x323, 0x302}, 3, {0x1EAD}, 1},
        {{0x61, 0x302, 0x323}, 3, {0x1EAD}, 1},
        {{0x1E0B, 0x323}, 2, {0x1E0D, 0x307}, 2},
        {{0x71, 0x307, 0x323}, 3, {0x71, 0x323, 0x307}, 3},
        {{0x344}, 1, {0x308, 0x301}, 2},
        {{0x301, 0x61}, 2, {0x301, 0x61}, 2},
        {{0xAC00, 0x11A8}, 2, {0xAC01}, 1},
        {{0x4B, 0x61, 0x308, 0x66, 0x65, 0x72, 0x20, 0xE9, 0x301}, 9, {0x4B, 0xE4, 0x66, 0x65, 0x72, 0x20, 0xE9, 0x301}, 8},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        uint32_t out[64];
        size_t n = collm_tok_unicode_nfc(cases[c].in, (size_t)cases[c].n_in, out);
        CHECK_MSG(n == (size_t)cases[c].n_want && memcmp(out, cases[c].want, n * sizeof *out) == 0, "NFC case %zu", c);
    }
    CHECK(collm_tok_unicode_is_letter(0x00E9) && collm_tok_unicode_is_letter(0x4E2D) && !collm_tok_unicode_is_letter(0x0301));
    CHECK(collm_tok_unicode_is_number(0x0663) && collm_tok_unicode_is_number(0x00B3) && !collm_tok_unicode_is_number('a'));
    CHECK(collm_tok_unicode_is_whitespace(0x3000) && !collm_tok_unicode_is_whitespace(0x200B));
}

// Writes a small vocab GGUF; which parts are present is controlled by the flags.
static const char *write_vocab(const char *name, const char *model, int with_tokens, int bad_type, int with_merges) {
    static char path[512];
    mkdir(test_tmp_dir(), 0777);
    snprintf(path, sizeof path, "%s/%s", test_tmp_dir(), name);
    collm_gguf_writer *w = collm_gguf_writer_create();
    if (model) collm_gguf_writer_set_str(w, "tokenizer.ggml.model", model);
    const char *toks[] = {"a", "b", "ab"};
    if (with_tokens) collm_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, 3);
    int32_t types[3] = {1, 1, bad_type ? 9 : 1};
    collm_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", COLLM_GGUF_TYPE_INT32, types, 3);
    const char *merges[] = {"a b"};
    if (with_merges) collm_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", merges, 1);
    collm_gguf_writer_set_str(w, "general.architecture", "llama");
    int rc = collm_gguf_writer_write(w, path);
    collm_gguf_writer_free(w);
    return rc == COLLM_OK ? path : NULL;
}

static void expect_load_error(const char *path, const char *needle) {
    CHECK(path != NULL);
    if (!path) return;
    collm_tok_vocab *v = collm_tok_load_path(path);
    CHECK_MSG(v == NULL && strstr(collm_last_error(), needle) != NULL, "want error with \"%s\", got \"%s\"", needle,
              collm_last_error());
    collm_tok_free(v);
}

static void check_bad_input(void) {
    expect_load_error(write_vocab("tok_nomodel.gguf", NULL, 1, 0, 0), "tokenizer.ggml.model");
    expect_load_error(write_vocab("tok_bert.gguf", "bert", 1, 0, 0), "\"bert\" is not supported");
    expect_load_error(write_vocab("tok_notokens.gguf", "llama", 0, 0, 0), "tokenizer.ggml.tokens");
    expect_load_error(write_vocab("tok_badtype.gguf", "llama", 1, 1, 0), "token_type[2] = 9");
    expect_load_error(write_vocab("tok_nomerges.gguf", "gpt2", 1, 0, 0), "tokenizer.ggml.merges");
    expect_load_error(test_shared_path("testvectors/tokenizer/no-such-file.gguf"), "no-such-file.gguf");
    CHECK(collm_tok_load(NULL) == NULL);
    // a minimal BPE vocab works: "ab" merges, the rest by bytes
    const char *p = write_vocab("tok_mini.gguf", "gpt2", 1, 0, 1);
    collm_tok_vocab *v = p ? collm_tok_load_path(p) : NULL;
    CHECK_MSG(v != NULL, "%s", collm_last_error());
    if (v) {
        int32_t ids[8];
        int n = collm_tok_encode(v, "abba", 4, 0, ids, 8);
        CHECK(n == 3 && ids[0] == 2 && ids[1] == 1 && ids[2] == 0);
        collm_tok_free(v);
    }
}

int main(void) {
    check_llama_cpp_vectors("testvectors/tokenizer/ggml-vocab-llama-spm.gguf", "testvectors/tokenizer/ggml-vocab-llama-spm.gguf.inp",
                            "testvectors/tokenizer/ggml-vocab-llama-spm.gguf.out");
    check_llama_cpp_vectors("testvectors/tokenizer/ggml-vocab-gpt-2.gguf", "testvectors/tokenizer/ggml-vocab-gpt-2.gguf.inp",
                            "testvectors/tokenizer/ggml-vocab-gpt-2.gguf.out");
    check_llama_cpp_vectors("testvectors/tokenizer/ggml-vocab-qwen2-rebuilt.gguf", "testvectors/tokenizer/ggml-vocab-qwen2.gguf.inp",
                            "testvectors/tokenizer/ggml-vocab-qwen2.gguf.out");
    check_recsys("testvectors/tokenizer/ggml-vocab-llama-spm.gguf", "testvectors/tokenizer/recsys-llama-spm.raw.tsv", 0, 0);
    check_recsys("testvectors/tokenizer/ggml-vocab-llama-spm.gguf", "testvectors/tokenizer/recsys-llama-spm.special.tsv", COLLM_TOK_ADD_BOS, 0);
    check_recsys("testvectors/tokenizer/ggml-vocab-gpt-2.gguf", "testvectors/tokenizer/recsys-gpt-2.raw.tsv", 0, 1);
    check_recsys("testvectors/tokenizer/ggml-vocab-qwen2-rebuilt.gguf", "testvectors/tokenizer/recsys-qwen2.raw.tsv", 0, 1);
    check_logits_prompts("stories260K", "models/stories260K.gguf");
    check_logits_prompts("llama-2-tiny-random", "models/llama-2-tiny-random.gguf");
    check_logits_prompts("qwen2-tiny-random", "models/qwen2-tiny-random.gguf");
    check_collm_legacy();
    check_api();
    check_nfc();
    check_bad_input();
    return test_report();
}
