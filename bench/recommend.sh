#!/usr/bin/env bash
# Recommendation latency and service throughput on a demo-sized model
# (synthetic 300 users x 400 items, Llama n_embd 128 x 2 layers, stage 2
# trained for a few steps: timing, not quality). Run once, briefly, on an
# idle machine (check `uptime`).
#  1. recommend_bench: per-user retrieve + re-rank (N=100, shared prefix) vs
#     re-ranking without prefix sharing and vs the LLM over every item.
#  2. collm serve under wrk (-t2 -c8 -d10s, POST /recommend): requests/s,
#     latency percentiles, errors (non-2xx).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
BIN=$BUILD/collm
SHARED=${COLLM_SHARED:-../shared}
OUT=$BUILD/bench-recommend
VOCAB=$SHARED/testvectors/tokenizer/ggml-vocab-llama-spm.gguf
make -s BUILD="$BUILD" "$BIN" "$BUILD/bench/recommend_bench" >/dev/null
mkdir -p "$OUT"
echo "load: $(uptime)"
if [ ! -s "$OUT/ckpt.gguf" ]; then
  $BIN synth --users 300 --items 400 --seed 1 --out "$OUT/data" >/dev/null 2>&1
  $BIN train-cf --model mf --data "$OUT/data" --out "$OUT/mf.gguf" --dim 64 --max-epochs 20 --eval-split none >/dev/null 2>&1
  $BIN init-model --arch llama --vocab-from "$VOCAB" --n-embd 128 --n-layer 2 --n-head 4 --n-head-kv 4 --n-ff 344 --seed 1 --out "$OUT/base.gguf" >/dev/null 2>&1
  $BIN train --stage 2 --base "$OUT/base.gguf" --cf "$OUT/mf.gguf" --data "$OUT/data" --out "$OUT/ckpt.gguf" \
    --batch 8 --steps-per-epoch 5 --max-epochs 1 --eval-rows 16 >/dev/null 2>&1
  $BIN index --ckpt "$OUT/ckpt.gguf" --out "$OUT/items.faiss" 2>/dev/null
fi
echo "== 1. per-user latency"
"$BUILD/bench/recommend_bench" "$OUT/ckpt.gguf" "$OUT/items.faiss" "$OUT/data" 100 10

echo "== 2. service under load (wrk -t2 -c8 -d10s, POST /recommend N=100 k=10)"
$BIN serve --ckpt "$OUT/ckpt.gguf" --index "$OUT/items.faiss" --data "$OUT/data" --port 0 --contexts 2 --threads 2 2>"$OUT/serve.err" &
SPID=$!
trap 'kill -TERM $SPID 2>/dev/null || true' EXIT
PORT=
for _ in $(seq 1 100); do
  PORT=$(sed -nE 's/^serving on http:\/\/127\.0\.0\.1:([0-9]+).*/\1/p' "$OUT/serve.err"); [ -n "$PORT" ] && break; sleep 0.1
done
cat >"$OUT/post.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
counter = 0
request = function()
  counter = counter + 1
  return wrk.format(nil, "/recommend", nil, string.format('{"user":%d,"k":10,"candidates":100}', (counter % 250) + 1))
end
done = function(summary, latency, requests)
  io.write(string.format("requests/s %.1f  p50 %.1f ms  p99 %.1f ms  errors: non-2xx %d, socket %d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1e3, latency:percentile(99) / 1e3,
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
LUA
wrk -t2 -c8 -d10s -s "$OUT/post.lua" "http://127.0.0.1:$PORT"
kill -TERM $SPID; wait $SPID; echo "server exit status $?"
trap - EXIT
