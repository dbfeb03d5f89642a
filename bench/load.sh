#!/usr/bin/env bash
# The service under load, on loopback only (127.0.0.1 / 127.0.0.2): a tiny
# CoLLM trained here in seconds (as tests/cli/test_serve.sh), then
#   1. wrk with 8, 64 and 256 connections against POST /recommend
#      (k=5 of 20 candidates, users cycled): requests/s, p50/p99 latency,
#      errors (503 busy, other non-2xx, socket errors);
#   2. 500 idle connections held open by python3 (from 127.0.0.2) while
#      /health must still answer (its p50/p99 over 50 calls) and wrk -c8
#      runs beside them;
#   3. the server's RSS and thread count before, during and after.
# Needs wrk (scripts/setup.sh --bench). About a minute; run it on an idle
# machine (check `uptime`): figures on a shared box are noisy.
#   bench/load.sh [SECONDS_PER_RUN]   (default 8)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
BIN=$BUILD/collm
SHARED=${COLLM_SHARED:-../shared}
OUT=$BUILD/bench-load
VOCAB=$SHARED/testvectors/tokenizer/ggml-vocab-llama-spm.gguf
SECS=${1:-8}
command -v wrk >/dev/null || { echo "load.sh: wrk not found (scripts/setup.sh --bench)" >&2; exit 1; }
make -s BUILD="$BUILD" "$BIN" >/dev/null
mkdir -p "$OUT"
echo "load: $(uptime)"
if [ ! -s "$OUT/ckpt.gguf" ] || [ ! -s "$OUT/items.faiss" ]; then
  $BIN synth --users 60 --items 120 --seed 1 --out "$OUT/data" >/dev/null 2>&1
  $BIN train-cf --model mf --data "$OUT/data" --out "$OUT/mf.gguf" --dim 16 --max-epochs 5 --eval-split none --threads 2 >/dev/null 2>&1
  $BIN init-model --arch llama --vocab-from "$VOCAB" --n-embd 32 --n-layer 1 --n-head 2 --n-head-kv 2 --n-ff 48 --seed 1 \
    --out "$OUT/base.gguf" >/dev/null 2>&1
  $BIN train --stage 2 --base "$OUT/base.gguf" --cf "$OUT/mf.gguf" --data "$OUT/data" --out "$OUT/ckpt.gguf" \
    --lr 1e-2 --batch 8 --steps-per-epoch 3 --max-epochs 1 --eval-rows 16 --threads 2 >/dev/null 2>&1
  $BIN index --ckpt "$OUT/ckpt.gguf" --out "$OUT/items.faiss" --threads 2 >/dev/null 2>&1
fi

# limits above the load so that what is measured is the service, not the refusals
$BIN serve --ckpt "$OUT/ckpt.gguf" --index "$OUT/items.faiss" --data "$OUT/data" --port 0 --contexts 2 --threads 1 \
  --max-connections 2048 --per-ip-limit 1024 --context-wait 2000 2>"$OUT/serve.err" &
SPID=$!
trap 'kill -TERM $SPID 2>/dev/null || true' EXIT
PORT=
for _ in $(seq 1 100); do
  PORT=$(sed -nE 's/^serving on http:\/\/127\.0\.0\.1:([0-9]+).*/\1/p' "$OUT/serve.err"); [ -n "$PORT" ] && break; sleep 0.1
done
[ -n "$PORT" ] || { echo "load.sh: server did not start: $(cat "$OUT/serve.err")" >&2; exit 1; }
U="http://127.0.0.1:$PORT"
mem() { awk '/^VmRSS|^VmHWM|^Threads/ {printf "%s %s %s  ", $1, $2, $3} END {print ""}' "/proc/$SPID/status"; }
echo "server: contexts 2, max-connections 2048, per-ip-limit 1024, context-wait 2000 ms"
echo "before:        $(mem)"

# per-thread counters gathered in done() (each wrk thread has its own Lua state)
cat >"$OUT/recommend.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) counter = 0; n503 = 0; nbad = 0 end
function request()
  counter = counter + 1
  return wrk.format(nil, "/recommend", nil, string.format('{"user":%d,"k":5,"candidates":20}', (counter % 50) + 1))
end
function response(status, headers, body)
  if status == 503 then n503 = n503 + 1 elseif status ~= 200 then nbad = nbad + 1 end
end
function done(summary, latency, requests)
  local b, o = 0, 0
  for _, t in ipairs(threads) do b = b + t:get("n503"); o = o + t:get("nbad") end
  local e = summary.errors
  io.write(string.format("requests %d  req/s %.1f  p50 %.2f ms  p99 %.2f ms  max %.1f ms  503 %d  other non-2xx %d  socket errors %d\n",
    summary.requests, summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1e3,
    latency:percentile(99) / 1e3, latency.max / 1e3, b, o, e.connect + e.read + e.write + e.timeout))
end
LUA

for c in 8 64 256; do
  t=$(( c < 2 ? c : 2 ))
  printf 'wrk -c%-4s %ss: ' "$c" "$SECS"
  wrk -t"$t" -c"$c" -d"${SECS}s" --timeout 10s -s "$OUT/recommend.lua" "$U" | tail -1
  echo "  after -c$c:  $(mem)"
done

echo "500 idle connections from 127.0.0.2, /health x50 and wrk -c8 beside them:"
python3 - "$PORT" "$((SECS + 2))" >"$OUT/idle.log" 2>&1 <<'PY' &
import http.client, json, socket, sys, time
port = int(sys.argv[1])
socks = []
for _ in range(500):
    s = socket.socket(); s.bind(("127.0.0.2", 0)); s.settimeout(5); s.connect(("127.0.0.1", port)); socks.append(s)
lat, codes, health = [], {}, {}
for _ in range(50):
    t0 = time.perf_counter()
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10); c.request("GET", "/health")
        r = c.getresponse(); body = r.read(); code = r.status; health = json.loads(body); c.close()
    except Exception as e:
        code = "error: %s" % e
    lat.append((time.perf_counter() - t0) * 1e3); codes[code] = codes.get(code, 0) + 1
    time.sleep(0.02)
lat.sort()
print("idle held %d  /health codes %s  p50 %.2f ms  p99 %.2f ms  connections seen by the server %s"
      % (len(socks), codes, lat[len(lat) // 2], lat[int(len(lat) * 0.99)], health.get("connections")))
sys.stdout.flush()
time.sleep(float(sys.argv[2]) if len(sys.argv) > 2 else 6)  # keep them open while wrk runs
PY
IPID=$!
sleep 2
printf 'wrk -c8    %ss with the idle connections open: ' "$SECS"
wrk -t2 -c8 -d"${SECS}s" --timeout 10s -s "$OUT/recommend.lua" "$U" | tail -1
echo "  during idle: $(mem)"
wait $IPID || true
cat "$OUT/idle.log"
sleep 1
echo "after:         $(mem)"
curl -s "$U/health"; echo
kill -TERM $SPID; wait $SPID; echo "server exit status $?"
trap - EXIT
