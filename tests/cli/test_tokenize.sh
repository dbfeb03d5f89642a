#!/usr/bin/env bash
# `collm tokenize`: ids against llama.cpp's vectors (raw, --bos, --special,
# --legacy) and one-line failures (exit 1) on a missing file, a file
# without a tokenizer and missing options.
set -u
BIN=${COLLM_BIN:-build/collm}
SHARED=${COLLM_SHARED:-../shared}
TMP=${COLLM_TEST_TMP:-build/test-tmp}
mkdir -p "$TMP"
passed=0; failed=0
check() { # check "description" command...
  local what=$1; shift
  if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL: $what"; fi
}
V="$SHARED/testvectors/tokenizer"
spm="$V/ggml-vocab-llama-spm.gguf"

# recsys-llama-spm.raw.tsv / .special.tsv: " No" -> 29871 1939, with BOS 1 29871 1939
out=$("$BIN" tokenize --model "$spm" --text " No" 2>&1); rc=$?
check "raw exit 0" [ "$rc" -eq 0 ]
check "raw ids" [ "$out" = "29871 1939" ]
out=$("$BIN" tokenize --model "$spm" --bos --text " No" 2>&1)
check "--bos ids" [ "$out" = "1 29871 1939" ]
out=$("$BIN" tokenize --model "$spm" --bos --text "" 2>&1)
check "--bos on empty text" [ "$out" = "1" ]
# raw: "<s>" is text; --special: the BOS token; --legacy: same ids for SPM
out=$("$BIN" tokenize --model "$spm" --text "<s> </s> <unk>" 2>&1)
check "raw special text" [ "$out" = "529 29879 29958 1533 29879 29958 529 2960 29958" ]
# ▁the ▁feature ▁ <unk> ▁. ▁Using (ids checked by text in tests/test_tokenizer.c)
out=$("$BIN" tokenize --model "$spm" --special --text "<s>the feature <unk>. Using" 2>&1)
check "--special" [ "$out" = "1 278 4682 29871 0 869 5293" ]
out=$("$BIN" tokenize --model "$spm" --legacy --text "<s>the feature <unk>. Using" 2>&1)
check "--legacy" [ "$out" = "1 278 4682 29871 0 869 5293" ]
out=$("$BIN" tokenize --model "$spm" --pieces --text "Yes" 2>&1)
check "--pieces" [ "$out" = "3869:▁Yes" ]
# BPE vocabs (recsys-gpt-2.raw.tsv / recsys-qwen2.raw.tsv "#Answer: Yes"); --bos adds nothing
out=$("$BIN" tokenize --model "$V/ggml-vocab-gpt-2.gguf" --bos --text "#Answer: Yes" 2>&1)
check "gpt-2 ids" [ "$out" = "2 33706 25 3363" ]
out=$("$BIN" tokenize --model "$V/ggml-vocab-qwen2-rebuilt.gguf" --text "#Answer: Yes" 2>&1)
check "qwen2 ids" [ "$out" = "2 16141 25 7414" ]

# invalid UTF-8, more ids than the first buffer: 300 x 0xFF -> ▁ + 300 x <0xFF> (258)
bad=$(printf '\xff%.0s' $(seq 300))
out=$("$BIN" tokenize --model "$spm" --text "$bad" 2>&1); rc=$?
check "invalid UTF-8: exit 0" [ "$rc" -eq 0 ]
check "invalid UTF-8: byte fallback ids" [ "$(wc -w <<<"$out")" -eq 301 ] && [ "$(tr ' ' '\n' <<<"$out" | sort -u | tr '\n' ' ')" = "258 29871 " ]

out=$("$BIN" tokenize --help 2>&1); rc=$?
check "--help exits 0" [ "$rc" -eq 0 ] && grep -q 'usage: collm tokenize' <<<"$out"

out=$("$BIN" tokenize --model "$TMP/no-such-vocab.gguf" --text "a" 2>&1); rc=$?
check "missing file: exit 1, one line" [ "$rc" -eq 1 ] && [ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ]
check "missing file: names it" grep -q "no-such-vocab.gguf" <<<"$out"
# not a GGUF at all (missing tokenizer keys are covered by tests/test_tokenizer.c)
out=$("$BIN" tokenize --model "$SHARED/testvectors/tokenizer/ggml-vocab-llama-spm.gguf.inp" --text "a" 2>&1); rc=$?
check "not a GGUF: exit 1, one line" [ "$rc" -eq 1 ] && [ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ]
out=$("$BIN" tokenize --model "$spm" 2>&1); rc=$?
check "no --text: exit 1" [ "$rc" -eq 1 ]
out=$("$BIN" tokenize --text "a" 2>&1); rc=$?
check "no --model: exit 1" [ "$rc" -eq 1 ]

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
