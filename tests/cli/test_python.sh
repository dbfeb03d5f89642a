#!/usr/bin/env bash
# The Python binding (python/collm, ctypes over libcollm.so) with Debian's
# python3 + numpy: a tiny checkpoint is trained here (synth -> MF -> tiny
# Llama -> stage 2, seconds), the collm command's eval / recommend outputs are
# written, and tests/python/test_binding.py checks that the binding gives the
# same numbers (and that its metrics equal independent numpy references).
set -u
. "$(dirname "$0")/lib.sh" python
rm -rf "${TMP:?}"/*
LIB=${COLLM_LIB:-$(dirname "$BIN")/libcollm.so}
# Debian's interpreter (python3-numpy), unless COLLM_PYTHON names another
PY=${COLLM_PYTHON:-/usr/bin/python3}
[ -x "$PY" ] || PY=python3
if ! "$PY" -c 'import numpy' 2>/dev/null; then
  echo "test_python: $PY cannot import numpy (scripts/setup.sh installs python3-numpy)" >&2
  echo "0 passed, 1 failed"; exit 1
fi
run "$BIN" synth --users 60 --items 120 --seed 1 --out "$TMP/data"
run "$BIN" synth --users 20 --items 30 --seed 2 --out "$TMP/small"  # another dataset
run "$BIN" train-cf --data "$TMP/data" --out "$TMP/mf.gguf" --dim 16 --max-epochs 5 --eval-split none -t 2
run "$BIN" init-model --arch llama --vocab-from "$VOCAB" --n-embd 32 --n-layer 1 --n-head 2 --n-ff 48 --out "$TMP/base.gguf"
run "$BIN" train --stage 2 --base "$TMP/base.gguf" --cf "$TMP/mf.gguf" --data "$TMP/data" --out "$TMP/ckpt.gguf" \
  --lr 1e-2 --batch 8 --steps-per-epoch 3 --max-epochs 1 --eval-rows 16 -t 2
run "$BIN" index --ckpt "$TMP/ckpt.gguf" --out "$TMP/items.faiss" -t 1
# an index of another model of the same items (another seed), and of another item count
run "$BIN" train-cf --data "$TMP/data" --out "$TMP/mf_seed9.gguf" --dim 16 --max-epochs 5 --eval-split none -t 2 --seed 9
run "$BIN" index --cf "$TMP/mf_seed9.gguf" --out "$TMP/seed9.faiss" -t 1
run "$BIN" train-cf --data "$TMP/small" --out "$TMP/mf_small.gguf" --dim 16 --max-epochs 2 --eval-split none -t 1
run "$BIN" index --cf "$TMP/mf_small.gguf" --out "$TMP/small.faiss" -t 1
# the same checkpoint with a fitted-fusion weight set: its score adds 0.5 x the MF score
run /usr/bin/python3 "$(dirname "$0")/gguf_edit.py" "$TMP/ckpt.gguf" "$TMP/fused.gguf" --set collm.score.cf_weight f32 0.5
"$BIN" eval --ckpt "$TMP/ckpt.gguf" --data "$TMP/data" --split valid --json -t 1 >"$TMP/eval.json"
"$BIN" recommend --ckpt "$TMP/ckpt.gguf" --index "$TMP/items.faiss" --data "$TMP/data" --user 7 --k 5 --candidates 30 \
  --json -t 1 >"$TMP/rec.json"
"$BIN" --version >"$TMP/version.txt"
# A sanitizer build of the library needs its runtime loaded first into python.
if ldd "$LIB" 2>/dev/null | grep -q libasan; then
  export LD_PRELOAD="$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so)"
  export ASAN_OPTIONS="detect_leaks=0:${ASAN_OPTIONS:-}"
fi
PYTHONDONTWRITEBYTECODE=1 COLLM_LIB=$LIB "$PY" tests/python/test_binding.py "$TMP"
