#!/usr/bin/env bash
# CoLLM over the history encoders from the command line: on synthetic data,
# train-cf --model sasrec / din (tiny), then train --stage 2 --cf with each;
# the checkpoint records the kind; eval, index, recommend and eval-topk run
# on it. Prints "N passed, N failed".
set -u
. "$(dirname "$0")/lib.sh" encoders_collm
rm -rf "$TMP"/*
run "$BIN" synth --users 60 --items 120 --seed 1 --out "$TMP/data"
run "$BIN" init-model --arch llama --vocab-from "$VOCAB" --n-embd 32 --n-layer 1 --n-head 2 --n-head-kv 2 --n-ff 48 --seed 1 --out "$TMP/base.gguf"
D="$TMP/data"
for kind in sasrec din; do
  run "$BIN" train-cf --model "$kind" --data "$D" --out "$TMP/$kind.gguf" --dim 12 --max-len 5 --max-epochs 2 --eval-split none --threads 2
  CK="$TMP/ck-$kind.gguf"
  "$BIN" train --stage 2 --base "$TMP/base.gguf" --cf "$TMP/$kind.gguf" --data "$D" --out "$CK" \
    --lr 1e-2 --batch 8 --steps-per-epoch 3 --max-epochs 1 --eval-rows 16 --threads 2 >"$TMP/train.out" 2>"$TMP/train.err"; rc=$?
  check "train --stage 2 --cf $kind exits 0 ($(tail -1 "$TMP/train.err"))" [ "$rc" -eq 0 ]
  check "$kind checkpoint records collm.cf.kind" python3 -c "
import sys
b=open('$CK','rb').read(); sys.exit(0 if b'collm.cf.kind' in b and b'$kind' in b else 1)"
  out=$("$BIN" eval --ckpt "$CK" --data "$D" --split valid --json --threads 1 2>"$TMP/err"); rc=$?
  check "eval on the $kind checkpoint exits 0 ($(tail -1 "$TMP/err"))" [ "$rc" -eq 0 ]
  check "$kind eval JSON has an AUC in (0, 1)" python3 -c "import json,sys; d=json.loads(sys.argv[1]); sys.exit(0 if 0 < d['auc'] < 1 else 1)" "$out"
  "$BIN" index --ckpt "$CK" --out "$TMP/$kind.faiss" --threads 1 >/dev/null 2>"$TMP/err"; rc=$?
  check "index --ckpt on the $kind checkpoint exits 0 ($(tail -1 "$TMP/err"))" [ "$rc" -eq 0 ]
  # the encoder file the checkpoint was trained over indexes the same item table (the index records it)
  "$BIN" index --cf "$TMP/$kind.gguf" --out "$TMP/$kind-cf.faiss" --threads 1 >/dev/null 2>&1
  "$BIN" recommend --ckpt "$CK" --index "$TMP/$kind-cf.faiss" --data "$D" --user 3 --k 3 --candidates 10 --threads 1 \
    >/dev/null 2>"$TMP/err"; rc=$?
  check "recommend with an index of the $kind file itself ($(tail -1 "$TMP/err"))" [ "$rc" -eq 0 ]
  out=$("$BIN" recommend --ckpt "$CK" --index "$TMP/$kind.faiss" --data "$D" --user 3 --k 3 --candidates 10 --json --threads 1 2>"$TMP/err"); rc=$?
  check "recommend with the $kind checkpoint exits 0 ($(tail -1 "$TMP/err"))" [ "$rc" -eq 0 ]
  check "$kind recommend returns 3 items" python3 -c "
import json,sys; d=json.loads(sys.argv[1]); items=d['items'] if isinstance(d,dict) and 'items' in d else d
sys.exit(0 if len(items)==3 else 1)" "$out"
  "$BIN" eval-topk --ckpt "$CK" --index "$TMP/$kind.faiss" --data "$D" --candidates 20 --max-users 4 --json --threads 1 >"$TMP/topk.json" 2>"$TMP/err"; rc=$?
  check "eval-topk on the $kind checkpoint exits 0 ($(tail -1 "$TMP/err"))" [ "$rc" -eq 0 ]
done
finish
