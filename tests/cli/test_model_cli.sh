#!/usr/bin/env bash
# CLI tests for `collm init-model` and `collm logits`: round trips through
# GGUF (init-model -> info / logits), llama.cpp reference logits, and bad
# input (one error line, exit 1). Prints "N passed, N failed".
set -u
BIN=${COLLM_BIN:-build/collm}
SHARED=${COLLM_SHARED:-../shared}
TMP=${COLLM_TEST_TMP:-build/test-tmp}/model_cli
mkdir -p "$TMP"
pass=0; fail=0
ok()   { pass=$((pass + 1)); }
bad()  { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
check() { local what=$1; shift; if "$@"; then ok; else bad "$what"; fi; }
# expect_error WHAT CMD...: exit status 1 and exactly one line on stderr
expect_error() {
  local what=$1; shift
  "$@" >"$TMP/out" 2>"$TMP/err"; local rc=$?
  local lines; lines=$(wc -l <"$TMP/err")
  if [ "$rc" -eq 1 ] && [ "$lines" -eq 1 ] && ! grep -q 'given twice' "$TMP/err"; then ok
  else bad "$what (exit $rc, $lines stderr lines: $(head -c 300 "$TMP/err"))"; fi
}
# max |a - b| of two float32 files, printed
maxdiff() {
  paste <(od -An -v -f -w4 "$1") <(od -An -v -f -w4 "$2") |
    awk 'BEGIN{m=0} {d=$1-$2; if(d<0)d=-d; if(d>m)m=d} END{printf "%.3g\n", m}'
}
VOCAB=$SHARED/models/stories260K.gguf   # 512 tokens
M=$TMP/m.gguf

# init-model: llama, deterministic per seed
check "init-model llama" "$BIN" init-model --arch llama --vocab-from "$VOCAB" --n-embd 64 --n-layer 2 --n-head 4 \
  --n-head-kv 2 --n-ff 96 --seed 3 --out "$M" --threads 1
check "init-model same seed" "$BIN" init-model --arch llama --vocab-from "$VOCAB" --n-embd 64 --n-layer 2 --n-head 4 \
  --n-head-kv 2 --n-ff 96 --seed 3 --out "$TMP/m_same.gguf"
check "init-model other seed" "$BIN" init-model --arch llama --vocab-from "$VOCAB" --n-embd 64 --n-layer 2 --n-head 4 \
  --n-head-kv 2 --n-ff 96 --seed 4 --out "$TMP/m_other.gguf"
check "same seed -> same file" cmp -s "$M" "$TMP/m_same.gguf"
check "other seed -> other file" test "$(cmp -s "$M" "$TMP/m_other.gguf"; echo $?)" = 1

# info round trip (when the info command is built in)
if "$BIN" info --help >/dev/null 2>&1; then
  "$BIN" info "$M" >"$TMP/info.txt" 2>&1
  check "info: architecture" grep -q 'general.architecture.*llama' "$TMP/info.txt"
  check "info: head_count_kv" grep -q 'llama.attention.head_count_kv.* 2' "$TMP/info.txt"
  check "info: tokenizer copied" grep -q 'tokenizer.ggml.tokens' "$TMP/info.txt"
  check "info: output.weight" grep -q '^ *output\.weight ' "$TMP/info.txt"
  check "info: ffn_down" grep -q 'blk.1.ffn_down.weight' "$TMP/info.txt"
fi

# logits of the new model: T x n_vocab float32
check "logits" "$BIN" logits --model "$M" --tokens "1 2 3" --out "$TMP/l.f32" --threads 2
check "logits size" test "$(stat -c %s "$TMP/l.f32")" = $((3 * 512 * 4))
"$BIN" logits --model "$M" --tokens "1 2 3" --out "$TMP/l2.f32" --threads 2 --json >"$TMP/l.json"
check "logits --json" python3 -c "import json; r=json.load(open('$TMP/l.json')); assert r=={'out':'$TMP/l2.f32','tokens':3,'n_vocab':512}"
check "logits --json: the same file" cmp -s "$TMP/l.f32" "$TMP/l2.f32"
check "logits comma list" "$BIN" logits --model "$M" --tokens "1,2,3" --out "$TMP/l2.f32" --threads 1
check "logits threads-independent" test "$(maxdiff "$TMP/l.f32" "$TMP/l2.f32")" = 0

# logits vs llama.cpp for stories260K p0 ("Once upon a time", BOS first)
check "logits stories260K" "$BIN" logits --model "$SHARED/models/stories260K.gguf" --tokens "1 403 407 261 378" \
  --out "$TMP/s.f32"
d=$(maxdiff "$TMP/s.f32" "$SHARED/testvectors/logits/stories260K/p0.logits.f32")
check "stories260K p0 within 1e-4 of llama.cpp (got $d)" awk -v d="$d" 'BEGIN{exit !(d <= 1e-4)}'

# qwen2, tied output, F16 matrices
Q=$TMP/q.gguf
check "init-model qwen2 f16 tied" "$BIN" init-model --arch qwen2 --vocab-from "$VOCAB" --n-embd 32 --n-layer 1 --n-head 4 \
  --n-head-kv 2 --n-ff 48 --tie-output --type f16 --out "$Q"
check "logits qwen2" "$BIN" logits --model "$Q" --tokens "5 6" --out "$TMP/q.f32"
check "logits qwen2 size" test "$(stat -c %s "$TMP/q.f32")" = $((2 * 512 * 4))
if "$BIN" info --help >/dev/null 2>&1; then
  "$BIN" info "$Q" >"$TMP/qinfo.txt" 2>&1
  check "info: qwen2 bias" grep -q 'blk.0.attn_q.bias' "$TMP/qinfo.txt"
  check "info: tied (no output.weight)" test "$(grep -c '^ *output\.weight ' "$TMP/qinfo.txt")" = 0
fi

# help
check "logits --help" "$BIN" logits --help
check "init-model --help" "$BIN" init-model --help

# bad input: one line, exit 1
expect_error "logits: no --model" "$BIN" logits --tokens "1 2" --out "$TMP/x.f32"
expect_error "logits: missing model file" "$BIN" logits --model "$TMP/none.gguf" --tokens "1 2" --out "$TMP/x.f32"
expect_error "logits: bad token text" "$BIN" logits --model "$M" --tokens "1 x 2" --out "$TMP/x.f32"
expect_error "logits: empty tokens" "$BIN" logits --model "$M" --tokens " " --out "$TMP/x.f32"
expect_error "logits: token out of range" "$BIN" logits --model "$M" --tokens "1 512" --out "$TMP/x.f32"
expect_error "logits: not a model" "$BIN" logits --model "$SHARED/testvectors/tokenizer/ggml-vocab-llama-spm.gguf" \
  --tokens "1" --out "$TMP/x.f32"
expect_error "logits: unknown option" "$BIN" logits --model "$M" --tokens "1" --out "$TMP/x.f32" --bogus
expect_error "logits: unwritable out" "$BIN" logits --model "$M" --tokens "1" --out "/nonexistent/dir/x.f32"
expect_error "init-model: bad arch" "$BIN" init-model --arch gpt2 --vocab-from "$VOCAB" --n-embd 64 --n-layer 1 \
  --n-head 4 --n-ff 96 --out "$TMP/x.gguf"
expect_error "init-model: n-embd 0" "$BIN" init-model --arch llama --vocab-from "$VOCAB" --n-embd 0 --n-layer 1 \
  --n-head 4 --n-ff 96 --out "$TMP/x.gguf"
expect_error "init-model: heads do not divide" "$BIN" init-model --arch llama --vocab-from "$VOCAB" --n-embd 64 \
  --n-layer 1 --n-head 5 --n-ff 96 --out "$TMP/x.gguf"
expect_error "init-model: missing n-ff" "$BIN" init-model --arch llama --vocab-from "$VOCAB" --n-embd 64 --n-layer 1 \
  --n-head 4 --out "$TMP/x.gguf"
expect_error "init-model: bad type" "$BIN" init-model --arch llama --vocab-from "$VOCAB" --n-embd 64 --n-layer 1 \
  --n-head 4 --n-ff 96 --type q4 --out "$TMP/x.gguf"
expect_error "init-model: vocab file missing" "$BIN" init-model --arch llama --vocab-from "$TMP/none.gguf" --n-embd 64 \
  --n-layer 1 --n-head 4 --n-ff 96 --out "$TMP/x.gguf"
check "init-model: failed runs wrote nothing" test ! -e "$TMP/x.gguf"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
