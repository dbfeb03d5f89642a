#!/usr/bin/env bash
# `collm info`: output on a real model, --help, and one-line failures (exit 1)
# on a truncated file, a missing file and a missing argument.
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

model="$SHARED/models/stories260K.gguf"
out=$("$BIN" info "$model" 2>&1); rc=$?
check "info exits 0" [ "$rc" -eq 0 ]
check "version line" grep -q '^gguf version: 3$' <<<"$out"
check "alignment line" grep -q '^alignment: 32$' <<<"$out"
check "19 keys" grep -q '^metadata: 19 keys$' <<<"$out"
check "u32 key with value" grep -Eq '^ +llama\.embedding_length +u32 +64$' <<<"$out"
check "f32 key" grep -Eq '^ +llama\.attention\.layer_norm_rms_epsilon +f32 +9\.99999975e-06$' <<<"$out"
check "array summary" grep -Eq '^ +tokenizer\.ggml\.tokens +arr +\[str x 512\] "<unk>", "<s>", "</s>", .*\.\.\.$' <<<"$out"
check "48 tensors" grep -q '^tensors: 48$' <<<"$out"
check "tensor row" grep -Eq '^ +output\.weight +F32 +\[64, 512\] +131072 +131328$' <<<"$out"
check "totals" grep -q '^total: 292800 parameters (0.293 M), 1171200 bytes' <<<"$out"

out=$("$BIN" info --threads 1 --model "$SHARED/models/llama-2-tiny-random.gguf" 2>&1); rc=$?
check "--model/--threads accepted" [ "$rc" -eq 0 ]
check "F16 tensor row" grep -Eq '^ +token_embd\.weight +F16 +\[8, 32000\] +512000 +0$' <<<"$out"

# a K-quant mix (llama.cpp's Q4_K_M): every tensor's type, the resident size, usable as a base
q4km="$SHARED/testvectors/quant/models/llama-256-Q4_K_M.gguf"
out=$("$BIN" info "$q4km" 2>&1); rc=$?
check "Q4_K_M: exit 0" [ "$rc" -eq 0 ]
check "Q4_K_M: Q4_K row" grep -Eq '^ +blk\.0\.attn_q\.weight +Q4_K +\[256, 256\] +36864 ' <<<"$out"
check "Q4_K_M: Q6_K row" grep -Eq '^ +output\.weight +Q6_K +\[256, 512\] +107520 ' <<<"$out"
check "Q4_K_M: type counts" grep -q '^tensor types: Q6_K x 3 F32 x 5 Q4_K x 13$' <<<"$out"
check "Q4_K_M: resident size" grep -q '^resident size: 1.08 MiB of weights, each tensor in its file type, + 2.00 MiB of K/V cache per 1024 positions$' <<<"$out"
check "Q4_K_M: usable base" grep -q '^base model: yes: llama, 2 layers, n_embd 256, vocabulary 512 tokens, answer token 410' <<<"$out"
out=$("$BIN" info --json "$q4km" 2>&1)
check "Q4_K_M: json base" grep -q '"usable":.*true' <<<"$out"
# an unsupported type is named with its tensor (IQ2_XXS = ggml type 16, patched into a copy)
cp "$q4km" "$TMP/info-iq2.gguf"
/usr/bin/python3 - "$TMP/info-iq2.gguf" <<'PY'
import struct, sys
p = sys.argv[1]; b = bytearray(open(p, 'rb').read())
i = b.find(b'output.weight')  # name, u32 n_dims, u64 ne x n_dims, u32 type
j = i + len('output.weight'); nd = struct.unpack_from('<I', b, j)[0]; t = j + 4 + 8 * nd
struct.pack_into('<I', b, t, 16); open(p, 'wb').write(b)
PY
out=$("$BIN" info "$TMP/info-iq2.gguf" 2>&1); rc=$?
check "IQ2_XXS: exit 1" [ "$rc" -eq 1 ]
check "IQ2_XXS: names tensor and type" grep -q "tensor 'output.weight'.*unsupported tensor type IQ2_XXS (ggml type 16)" <<<"$out"

out=$("$BIN" info --help 2>&1); rc=$?
check "--help exits 0" [ "$rc" -eq 0 ]
check "--help shows usage" grep -q 'usage: collm info' <<<"$out"

head -c 5000 "$model" > "$TMP/info-trunc.gguf"
out=$("$BIN" info "$TMP/info-trunc.gguf" 2>&1); rc=$?
check "truncated: exit 1" [ "$rc" -eq 1 ]
check "truncated: one line" [ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ]
check "truncated: names file and offset" grep -q "info-trunc.gguf.*offset" <<<"$out"

out=$("$BIN" info "$TMP/does-not-exist.gguf" 2>&1); rc=$?
check "missing file: exit 1, one line" [ "$rc" -eq 1 ] && [ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ]
out=$("$BIN" info 2>&1); rc=$?
check "no file: exit 1, one line" [ "$rc" -eq 1 ] && [ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ]
out=$("$BIN" info "$model" --bogus 2>&1); rc=$?
check "unknown option: exit 1" [ "$rc" -eq 1 ]

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
