#!/usr/bin/env bash
# Top-K speed on a checkpoint of the ML-1M recipe's shape (issue 10):
#   prefix   shared-prefix re-ranking of N = 100 retrieved candidates against
#            every prompt scored on its own, 1 BLAS thread (bench/prefix.c):
#            time per user each way, the speed-up and the largest score
#            difference (exactness)
#   latency  per-user latency of the product's path (retrieve + re-rank with
#            the shared prefix + fused order, k = 10), p50 / p99 over USERS
#            users for N = 50, 100, 200, 1 thread (bench/topk_latency.c)
#   serve    collm serve (2 contexts = 2 requests scored at once, 1 BLAS
#            thread each; a request waits up to 30 s for a context instead of
#            the default 1 s, so the 8 connections queue rather than get 503)
#            under wrk -t2 -c8 -d10s, POST /recommend N=100 k=10:
#            once over 500 users (each request a new prefix: the prefix cache
#            misses) and once over 8 users (the cache hits)
# The checkpoint: CKPT=FILE (e.g. the recipe's own, OUT=build/ml1m.gguf
# bench/ml1m.sh), else one of the same shape (Llama-2 SPM vocabulary, d=256,
# 4 layers, 4 heads, n_ff 688, mfbias slots, template collm_movie_ids with
# history-item slots) made by bench/ml1m.sh itself with a tiny training
# budget (STEPS=2, one epoch per stage, TRAIN_ONLY=1; about a minute, once,
# kept in $OUT): speed depends on the shape, not on the training.
# Each part runs well under 60 s on a 2-core machine; the load average is
# printed beside the figures (the machine may be shared).
#   usage: bench/topk.sh [prefix] [latency] [serve]     (default: all three)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
BIN=$BUILD/collm
SHARED=${COLLM_SHARED:-$(cd .. && pwd)/shared}
DATA=${DATA:-$SHARED/data/ml-1m}
OUT=${OUT:-$BUILD/bench-topk}
USERS=${USERS:-5}          # users of the prefix comparison
LAT_USERS=${LAT_USERS:-25} # users of the latency percentiles
parts=${*:-prefix latency serve}
make -s BUILD="$BUILD" "$BIN" "$BUILD/bench/prefix" "$BUILD/bench/topk_latency" >/dev/null
mkdir -p "$OUT"
CKPT=${CKPT:-$OUT/ckpt.gguf}
if [ ! -s "$CKPT" ]; then
  echo "== checkpoint of the recipe's shape (tiny training budget): $CKPT"
  work=$OUT/work
  STEPS=2 S1_EPOCHS=1 S2_EPOCHS=1 S3_EPOCHS=1 EVAL_ROWS=64 TRAIN_ONLY=1 WORK="$work" OUT="$CKPT" \
    BUILD="$BUILD" COLLM_SHARED="$SHARED" DATA="$DATA" bench/ml1m.sh 2>"$OUT/ml1m.log" ||
    { tail -5 "$OUT/ml1m.log" >&2; exit 1; }
fi
INDEX=$OUT/$(basename "$CKPT" .gguf).faiss
[ -s "$INDEX" ] && [ "$INDEX" -nt "$CKPT" ] || "$BIN" index --ckpt "$CKPT" --out "$INDEX" 2>/dev/null
load() { echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores)"; }

for part in $parts; do
  case $part in
  prefix)
    echo "== shared prefix vs independent prompts, N = 100, $USERS users"; load
    "$BUILD/bench/prefix" "$CKPT" "$INDEX" "$DATA" 100 "$USERS"
    load ;;
  latency)
    echo "== latency of retrieve + re-rank, $LAT_USERS users, 1 thread"; load
    "$BUILD/bench/topk_latency" "$CKPT" "$INDEX" "$DATA" "$LAT_USERS" 1 50 100 200
    load ;;
  serve)
    command -v wrk >/dev/null || { echo "wrk not found: scripts/setup.sh --bench" >&2; exit 1; }
    "$BIN" serve --ckpt "$CKPT" --index "$INDEX" --data "$DATA" --port 0 --contexts 2 --threads 2 --context-wait 30000 2>"$OUT/serve.err" &
    SPID=$!
    trap 'kill -TERM $SPID 2>/dev/null || true' EXIT
    PORT=
    for _ in $(seq 1 300); do
      PORT=$(sed -nE 's/^serving on http:\/\/127\.0\.0\.1:([0-9]+).*/\1/p' "$OUT/serve.err"); [ -n "$PORT" ] && break; sleep 0.1
    done
    [ -n "$PORT" ] || { cat "$OUT/serve.err" >&2; exit 1; }
    for n_users in 500 8; do
      # the first n_users user ids of the train split (ids have gaps: an unknown one would be a 404)
      users=$(awk -F'\t' 'NR > 1 && !seen[$1]++ {print $1}' "$DATA/train.tsv" | head -n "$n_users" | paste -sd, -)
      cat >"$OUT/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
users = {$users}
made = 0
setup = function(thread) -- wrk threads start at different users
  made = made + 1
  thread:set("offset", made * 211)
end
counter = 0
request = function()
  counter = counter + 1
  return wrk.format(nil, "/recommend", nil, string.format('{"user":%d,"k":10,"candidates":100}', users[(counter + offset) % #users + 1]))
end
done = function(summary, latency, requests)
  io.write(string.format("requests %d  requests/s %.1f  p50 %.1f ms  p99 %.1f ms  max %.1f ms  errors: non-2xx %d, socket %d\n",
    summary.requests, summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1e3,
    latency:percentile(99) / 1e3, latency.max / 1e3, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
LUA
      echo "== collm serve, 2 contexts, wrk -t2 -c8 -d10s, POST /recommend N=100 k=10 over $n_users users"; load
      wrk -t2 -c8 -d10s --timeout 10s -s "$OUT/post.lua" "http://127.0.0.1:$PORT" | tail -n 1
      curl -s "http://127.0.0.1:$PORT/health" | python3 -c "import json,sys; print('prefix cache:', json.load(sys.stdin)['prefix_cache'])"
      load
    done
    kill -TERM $SPID; wait $SPID || true
    trap - EXIT ;;
  *) echo "bench/topk.sh: unknown part $part (prefix, latency, serve)" >&2; exit 1 ;;
  esac
done
