#!/usr/bin/env bash
# CLI tests for index --ckpt, recommend and serve on a tiny CoLLM trained in
# seconds (synth data → MF → tiny Llama → stage 2). The service is tested over
# a real socket with curl: health, recommend, score, malformed JSON, wrong
# types, missing / unknown fields, too-large body, unknown user / path /
# method, parallel requests (all answers equal the serial one), SIGTERM → 0.
# Prints "N passed, N failed".
set -u
BIN=${COLLM_BIN:-build/collm}
SHARED=${COLLM_SHARED:-../shared}
TMP=${COLLM_TEST_TMP:-build/test-tmp}/serve_cli
VOCAB=$SHARED/testvectors/tokenizer/ggml-vocab-llama-spm.gguf
mkdir -p "$TMP"
pass=0; fail=0
check() { local what=$1; shift; if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $what" >&2; fi; }
expect_error() {
  local what=$1 pattern=$2; shift 2
  "$@" >"$TMP/out" 2>"$TMP/err"; local rc=$?
  check "$what: exit 1 (got $rc)" [ "$rc" -eq 1 ]
  check "$what: message matches '$pattern' ($(head -c 300 "$TMP/err"))" grep -Eq -e "$pattern" "$TMP/err"
}
rm -rf "$TMP"/*
run() { "$@" >"$TMP/log" 2>&1 || { echo "setup failed: $*" >&2; tail -3 "$TMP/log" >&2; echo "$pass passed, $((fail + 1)) failed"; exit 1; }; }
run "$BIN" synth --users 60 --items 120 --seed 1 --out "$TMP/data"
run "$BIN" train-cf --model mf --data "$TMP/data" --out "$TMP/mf.gguf" --dim 16 --max-epochs 5 --eval-split none --threads 2
run "$BIN" init-model --arch llama --vocab-from "$VOCAB" --n-embd 32 --n-layer 1 --n-head 2 --n-head-kv 2 --n-ff 48 --seed 1 --out "$TMP/base.gguf"
run "$BIN" train --stage 2 --base "$TMP/base.gguf" --cf "$TMP/mf.gguf" --data "$TMP/data" --out "$TMP/ckpt.gguf" \
  --lr 1e-2 --batch 8 --steps-per-epoch 3 --max-epochs 1 --eval-rows 16 --threads 2
CK="$TMP/ckpt.gguf"; IX="$TMP/items.faiss"; D="$TMP/data"

# --- index --ckpt
"$BIN" index --ckpt "$CK" --out "$IX" --threads 2 >"$TMP/out" 2>"$TMP/err"; rc=$?
check "index --ckpt exits 0 ($(tail -1 "$TMP/err"))" [ "$rc" -eq 0 ]
check "index --ckpt summary" grep -Eq '^index: Flat, 120 items of .*ckpt.gguf \(d=16\)' "$TMP/err"
expect_error "index with both --cf and --ckpt" 'exactly one of' "$BIN" index --cf "$TMP/mf.gguf" --ckpt "$CK" --out "$TMP/x.faiss"
expect_error "index --ckpt of a non-checkpoint" 'cf.item_embd' "$BIN" index --ckpt "$TMP/base.gguf" --out "$TMP/x.faiss"

# --- recommend
"$BIN" recommend --ckpt "$CK" --index "$IX" --data "$D" --user 7 --k 5 --candidates 30 --threads 1 >"$TMP/rec.txt" 2>"$TMP/err"; rc=$?
check "recommend exits 0 ($(tail -1 "$TMP/err"))" [ "$rc" -eq 0 ]
check "recommend table: header + 5 rows" [ "$(grep -cE '^ +[0-9]+ +[0-9]+ +-?[0-9.]+ +-?[0-9.]+ ' "$TMP/rec.txt")" -eq 5 ]
"$BIN" recommend --ckpt "$CK" --index "$IX" --data "$D" --user 7 --k 5 --candidates 30 --json --threads 1 >"$TMP/rec.json" 2>"$TMP/err"
check "recommend --json parses, 5 items sorted by score" python3 -c "
import json,sys; r=json.load(open('$TMP/rec.json')); s=[i['score'] for i in r['items']]
sys.exit(0 if len(s)==5 and s==sorted(s,reverse=True) and r['cold_start_query'] is False else 1)"
"$BIN" recommend --ckpt "$CK" --index "$IX" --data "$D" --user 7 --k 5 --candidates 30 --json --no-share --threads 1 >"$TMP/rec2.json" 2>/dev/null
check "recommend --no-share: same items, scores within 1e-4" python3 -c "
import json,sys; a=json.load(open('$TMP/rec.json'))['items']; b=json.load(open('$TMP/rec2.json'))['items']
sys.exit(0 if [x['item'] for x in a]==[x['item'] for x in b] and max(abs(x['llm_score']-y['llm_score']) for x,y in zip(a,b))<=1e-4 else 1)"
"$BIN" recommend --ckpt "$CK" --index "$IX" --data "$D" --history 3,5,9 --k 3 --candidates 20 --json --threads 1 >"$TMP/rec3.json" 2>/dev/null
check "recommend --history: cold-start query, history excluded" python3 -c "
import json,sys; r=json.load(open('$TMP/rec3.json')); ids=[i['item'] for i in r['items']]
sys.exit(0 if r['cold_start_query'] and len(ids)==3 and not set(ids)&{3,5,9} else 1)"
expect_error "recommend unknown user" 'user: 5000 is unknown' "$BIN" recommend --ckpt "$CK" --index "$IX" --data "$D" --user 5000
expect_error "recommend unknown history item" 'history: item 99999' "$BIN" recommend --ckpt "$CK" --index "$IX" --data "$D" --history 3,99999
expect_error "recommend bad history text" 'bad item id' "$BIN" recommend --ckpt "$CK" --index "$IX" --data "$D" --history 3,x
expect_error "recommend k > candidates" 'out-of-range' "$BIN" recommend --ckpt "$CK" --index "$IX" --data "$D" --user 7 --k 50 --candidates 10
expect_error "recommend without user" '--user' "$BIN" recommend --ckpt "$CK" --index "$IX" --data "$D"

# --- serve
"$BIN" serve --ckpt "$CK" --index "$IX" --data "$D" --port 0 --contexts 2 --threads 1 --max-body 4096 2>"$TMP/serve.err" &
SPID=$!
PORT=
for _ in $(seq 1 100); do
  PORT=$(sed -nE 's/^serving on http:\/\/127\.0\.0\.1:([0-9]+).*/\1/p' "$TMP/serve.err"); [ -n "$PORT" ] && break; sleep 0.1
done
check "server started ($(head -c 200 "$TMP/serve.err"))" [ -n "$PORT" ]
U="http://127.0.0.1:$PORT"
# req METHOD PATH BODY → sets CODE and writes the body to $TMP/resp
req() { CODE=$(curl -s -o "$TMP/resp" -w '%{http_code}' -X "$1" -H 'Content-Type: application/json' ${3:+--data-binary "$3"} "$U$2"); }
field_is() { python3 -c "import json,sys; r=json.load(open('$TMP/resp')); sys.exit(0 if r.get('field')==$1 and r.get('error') else 1)"; }
req GET /health
check "health 200" [ "$CODE" = 200 ]
check "health body" grep -q '"status":"ok","items":121' "$TMP/resp"
req POST /recommend '{"user":7,"k":5,"candidates":30}'
check "recommend 200" [ "$CODE" = 200 ]
check "recommend equals the CLI's items and scores" python3 -c "
import json,sys; a=json.load(open('$TMP/rec.json'))['items']; b=json.load(open('$TMP/resp'))['items']
sys.exit(0 if [x['item'] for x in a]==[x['item'] for x in b] and max(abs(x['llm_score']-y['llm_score']) for x,y in zip(a,b))<=1e-5 else 1)"
cp "$TMP/resp" "$TMP/serial.json"
req POST /recommend '{"history":[3,5,9],"k":3,"candidates":20}'
check "recommend by history 200, cold start" grep -q '"cold_start_query":true' "$TMP/resp"
req POST /score '{"user":7,"items":[1,2,3]}'
check "score 200 with 3 scores" python3 -c "import json,sys; r=json.load(open('$TMP/resp')); sys.exit(0 if [s['item'] for s in r['scores']]==[1,2,3] else 1)"
check "score agrees with recommend's llm_score" python3 -c "
import json,subprocess,sys
top=json.load(open('$TMP/serial.json'))['items'][0]
out=subprocess.run(['curl','-s','-XPOST','$U/score','-d',json.dumps({'user':7,'items':[top['item']]})],capture_output=True,text=True).stdout
sys.exit(0 if abs(json.loads(out)['scores'][0]['llm_score']-top['llm_score'])<=1e-4 else 1)"
req POST /recommend '{"user":7,'
check "malformed JSON 400" [ "$CODE" = 400 ]; check "malformed JSON error body" field_is None
req POST /recommend '[1,2]'
check "non-object 400" [ "$CODE" = 400 ]
req POST /recommend '{"user":"7"}'
check "user as string 400 naming user" [ "$CODE" = 400 ]; check "field user" field_is "'user'"
req POST /recommend '{"user":7,"k":2.5}'
check "fractional k 400" [ "$CODE" = 400 ]; check "field k" field_is "'k'"
req POST /recommend '{"user":7,"k":0}'
check "k 0 → 400" [ "$CODE" = 400 ]; check "field k (range)" field_is "'k'"
req POST /recommend '{"user":7,"k":20,"candidates":10}'
check "k > candidates 400" [ "$CODE" = 400 ]; check "field k (> candidates)" field_is "'k'"
req POST /recommend '{"k":5}'
check "missing user/history 400" [ "$CODE" = 400 ]; check "field user (missing)" field_is "'user'"
req POST /recommend '{"user":7,"color":"red"}'
check "unknown field 400" [ "$CODE" = 400 ]; check "field color" field_is "'color'"
req POST /recommend '{"history":"3,5"}'
check "history as string 400" [ "$CODE" = 400 ]; check "field history" field_is "'history'"
req POST /recommend '{"history":[3,99999]}'
check "unknown history item 400" [ "$CODE" = 400 ]; check "field history (unknown item)" field_is "'history'"
req POST /recommend '{"user":5000}'
check "unknown user 404" [ "$CODE" = 404 ]; check "field user (unknown)" field_is "'user'"
req POST /score '{"user":7}'
check "score without items 400" [ "$CODE" = 400 ]; check "field items" field_is "'items'"
req POST /score '{"user":7,"items":[1,0]}'
check "score item 0 → 400" [ "$CODE" = 400 ]; check "field items (id 0)" field_is "'items'"
req POST /score '{"user":7,"items":[1,-3]}'
check "score negative id 400" [ "$CODE" = 400 ]
python3 -c "print('{\"user\":7,\"history\":[' + ','.join(['1']*3000) + ']}')" >"$TMP/big.json"
CODE=$(curl -s -o "$TMP/resp" -w '%{http_code}' -X POST --data-binary @"$TMP/big.json" "$U/recommend")
check "body over --max-body → 413 (got $CODE)" [ "$CODE" = 413 ]
req GET /nope
check "unknown path 404" [ "$CODE" = 404 ]
req GET /recommend
check "GET /recommend 405" [ "$CODE" = 405 ]
req POST /health '{}'
check "POST /health 405" [ "$CODE" = 405 ]
# parallel requests: every answer equals the serial one
for i in 1 2 3 4 5 6 7 8; do
  curl -s -XPOST "$U/recommend" -d '{"user":7,"k":5,"candidates":30}' -o "$TMP/par$i.json" &
done
wait $(jobs -p | grep -v "^$SPID$") 2>/dev/null
ok=1
for i in 1 2 3 4 5 6 7 8; do
  python3 -c "
import json,sys; a=json.load(open('$TMP/serial.json'))['items']; b=json.load(open('$TMP/par$i.json'))['items']
sys.exit(0 if a==b else 1)" || ok=0
done
check "8 parallel requests all equal the serial answer" [ "$ok" -eq 1 ]
req GET /health
check "still healthy after the burst" [ "$CODE" = 200 ]
kill -TERM "$SPID"; wait "$SPID"; rc=$?
check "SIGTERM → exit 0 (got $rc)" [ "$rc" -eq 0 ]
check "stopping message" grep -q 'serve: stopping' "$TMP/serve.err"
expect_error "serve on a bad host" 'not an IPv4' "$BIN" serve --ckpt "$CK" --index "$IX" --data "$D" --host nohost --port 0

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
