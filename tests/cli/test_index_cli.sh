#!/usr/bin/env bash
# CLI tests for `collm index`: a 1-epoch MF on ml-1m, then Flat and HNSW
# indexes over its item vectors (file written, summary line), and bad input
# (one error line, exit 1). Prints "N passed, N failed".
set -u
. "$(dirname "$0")/lib.sh" index_cli

model="$TMP/mf.gguf"
rm -f "$model" "$TMP"/*.faiss
"$BIN" train-cf --model mf --data "$DATA" --out "$model" --max-epochs 1 --dim 16 --eval-split none --threads 2 \
  >/dev/null 2>"$TMP/train.err"; rc=$?
check "train-cf exits 0 (got $rc): $(tail -n 1 "$TMP/train.err")" [ "$rc" -eq 0 ]

for factory in Flat HNSW32,Flat; do
  out="$TMP/items-${factory%%,*}.faiss"
  "$BIN" index --cf "$model" --factory "$factory" --out "$out" --threads 2 >"$TMP/out" 2>"$TMP/err"; rc=$?
  check "index $factory exits 0 (got $rc): $(tail -n 1 "$TMP/err")" [ "$rc" -eq 0 ]
  check "index $factory summary line" grep -Eq "^index: $factory, [0-9]+ items of .*mf.gguf \(d=16\), built in .*; wrote " "$TMP/err"
  check "index $factory file written" [ -s "$out" ]
  # an IndexIDMap over the factory's index: Faiss fourcc "IxMp"
  check "index $factory file is a Faiss ID map" [ "$(head -c 4 "$out")" = "IxMp" ]
done
n_items=$(sed -nE 's/^index: Flat, ([0-9]+) items.*/\1/p' "$TMP/err" 2>/dev/null)

expect_error "bad factory" 'bad index factory string "Nope,Flat"' \
  "$BIN" index --cf "$model" --factory Nope,Flat --out "$TMP/x.faiss"
expect_error "IVF with more lists than items" 'training "IVF65536,Flat"' \
  "$BIN" index --cf "$model" --factory IVF65536,Flat --out "$TMP/x.faiss"
expect_error "missing model" 'no-such\.gguf' \
  "$BIN" index --cf "$TMP/no-such.gguf" --out "$TMP/x.faiss"
expect_error "missing --out" '--out' "$BIN" index --cf "$model"
expect_error "bad nprobe" 'out-of-range' "$BIN" index --cf "$model" --out "$TMP/x.faiss" --nprobe 0
check "no index left behind by failures" [ ! -e "$TMP/x.faiss" ]

# --shards K: K Faiss files and a manifest naming them; a compressed factory string
"$BIN" index --cf "$model" --factory IVF16,PQ4x4 --shards 2 --out "$TMP/sh.faiss" --json --threads 2 >"$TMP/out" 2>"$TMP/err"
check "index --shards 2 IVF16,PQ4x4 exits 0 ($(tail -n 1 "$TMP/err"))" [ $? -eq 0 ]
check "index --shards 2: JSON says 2 shards" grep -q '"shards":2' "$TMP/out"
check "index --shards 2: a manifest and 2 shard files" \
  [ "$(head -n 2 "$TMP/sh.faiss" | tr '\n' ' ')" = "collm-faiss-shards 1 2 " ] && [ -s "$TMP/sh.faiss.shard0" ] && [ -s "$TMP/sh.faiss.shard1" ]
expect_error "bad --shards" 'shards' "$BIN" index --cf "$model" --out "$TMP/x.faiss" --shards 0

finish
