#!/usr/bin/env bash
# CLI tests for index --ckpt, recommend and serve on a tiny CoLLM trained in
# seconds (synth data → MF → tiny Llama → stage 2). The service is tested over
# a real socket with curl: health, recommend, score, malformed JSON, wrong
# types, missing / unknown fields, too-large body, unknown user / path /
# method, parallel requests (all answers equal the serial one), SIGTERM → 0;
# then abuse: trailing text and duplicate keys (400), invalid UTF-8 never in a
# response (Latin-1 titles, raw bytes and long multi-byte field names), all
# contexts busy (503 + Retry-After), 1100 idle connections from one address
# while /health answers (per-IP limit, idle timeout), SIGTERM with a request in
# flight (refuses new clients, finishes it, a SIGHUP meanwhile ignored, exits
# 0), a NUL in a key and ambiguous framing (two Content-Length headers, or one
# beside Transfer-Encoding: 400, connection closed). "In flight" is made
# without timing by the COLLM_SERVE_TEST_HOLD hook (include/collm/serve.h).
# Prints "N passed, N failed".
set -u
. "$(dirname "$0")/lib.sh" serve_cli
rm -rf "${TMP:?}"/*
run "$BIN" synth --users 60 --items 120 --seed 1 --out "$TMP/data"
run "$BIN" train-cf --model mf --data "$TMP/data" --out "$TMP/mf.gguf" --dim 16 --max-epochs 5 --eval-split none --threads 2
run "$BIN" init-model --arch llama --vocab-from "$VOCAB" --n-embd 32 --n-layer 1 --n-head 2 --n-head-kv 2 --n-ff 48 --seed 1 --out "$TMP/base.gguf"
run "$BIN" train --stage 2 --base "$TMP/base.gguf" --cf "$TMP/mf.gguf" --data "$TMP/data" --out "$TMP/ckpt.gguf" \
  --lr 1e-2 --batch 8 --steps-per-epoch 3 --max-epochs 1 --eval-rows 16 --threads 2
CK="$TMP/ckpt.gguf"; IX="$TMP/items.faiss"; D="$TMP/data"
# the server's checkpoint fuses ctx into its score (fit-score, weights then set
# to nonzero values): /score's "score" runs the encoders on request threads
run "$BIN" train-cf --model ctx --data "$D" --out "$TMP/ctx.gguf" --threads 2
cp "$CK" "$TMP/fit.gguf"
run "$BIN" fit-score --ckpt "$TMP/fit.gguf" --data "$D" --with "$TMP/ctx.gguf" --threads 2
run /usr/bin/python3 "$(dirname "$0")/gguf_edit.py" "$TMP/fit.gguf" "$TMP/fused.gguf" \
  --set collm.score.cf_weight f32 0.5 --set collm.score.extra.0.weight f32 1
CKF="$TMP/fused.gguf"

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
# a trailing comma, a space or a sign before an id were read past (1,2, was the history 1,2)
expect_error "recommend history with a trailing comma" 'bad item id at "5,"' "$BIN" recommend --ckpt "$CK" --index "$IX" --data "$D" --history 3,5,
expect_error "recommend history with a space" 'bad item id at " 5"' "$BIN" recommend --ckpt "$CK" --index "$IX" --data "$D" --history "3, 5"
expect_error "recommend history with a sign" 'bad item id at "\+5"' "$BIN" recommend --ckpt "$CK" --index "$IX" --data "$D" --history 3,+5
expect_error "recommend k > candidates" 'out-of-range' "$BIN" recommend --ckpt "$CK" --index "$IX" --data "$D" --user 7 --k 50 --candidates 10
expect_error "recommend without user" '--user' "$BIN" recommend --ckpt "$CK" --index "$IX" --data "$D"

# --- serve
"$BIN" serve --ckpt "$CKF" --index "$IX" --data "$D" --port 0 --contexts 2 --threads 1 --max-body 4096 --context-wait 600000 2>"$TMP/serve.err" &
SPID=$!
served_port "$TMP/serve.err"
check "server started ($(head -c 200 "$TMP/serve.err"))" [ -n "$PORT" ]
U="http://127.0.0.1:$PORT"
# req METHOD PATH BODY → sets CODE and writes the body to $TMP/resp
req() { CODE=$(curl -s --max-time 30 -o "$TMP/resp" -w '%{http_code}' -X "$1" -H 'Content-Type: application/json' ${3:+--data-binary "$3"} "$U$2"); }
field_is() { python3 -c "import json,sys; r=json.load(open('$TMP/resp')); sys.exit(0 if r.get('field')==$1 and r.get('error') else 1)"; }
code_is() { python3 -c "import json,sys; r=json.load(open('$TMP/resp')); sys.exit(0 if r.get('code')=='$1' else 1)"; }
req GET /health
check "health 200" [ "$CODE" = 200 ]
check "health body" grep -q '"status":"ok","items":121' "$TMP/resp"
req POST /recommend '{"user":7,"k":5,"candidates":30}'
check "recommend 200" [ "$CODE" = 200 ]
check "recommend equals the CLI's items and scores" python3 -c "
import json,sys; a=json.load(open('$TMP/rec.json'))['items']; b=json.load(open('$TMP/resp'))['items']
sys.exit(0 if [x['item'] for x in a]==[x['item'] for x in b] and max(abs(x['llm_score']-y['llm_score']) for x,y in zip(a,b))<=1e-5 else 1)"
check "recommend: fused scores as the CLI's, in descending order" python3 -c "
import json,sys; a=json.load(open('$TMP/rec.json'))['items']; b=json.load(open('$TMP/resp'))['items']; s=[x['score'] for x in b]
sys.exit(0 if s==sorted(s,reverse=True) and max(abs(x['score']-y['score']) for x,y in zip(a,b))<=1e-4 else 1)"
cp "$TMP/resp" "$TMP/serial.json"
# the prefix cache: the first request of user 7 missed and was kept; the same request again reuses it,
# with the very same items and scores
cache_is() { python3 -c "
import json,sys; c=json.load(open('$TMP/resp'))['prefix_cache']
sys.exit(0 if (c['hits'],c['misses'],c['entries'])==($1,$2,$3) and 0<c['bytes']<=c['max_bytes']==64<<20 else 1)"; }
req GET /health
check "health: prefix cache after one request (0 hits, 1 miss, 1 entry) ($(head -c 400 "$TMP/resp"))" cache_is 0 1 1
req POST /recommend '{"user":7,"k":5,"candidates":30}'
check "second request of user 7: same items and scores, bit for bit" python3 -c "
import json,sys; a=json.load(open('$TMP/serial.json'))['items']; b=json.load(open('$TMP/resp'))['items']
sys.exit(0 if a==b else 1)"
req GET /health
check "health: the second request hit the prefix cache ($(head -c 400 "$TMP/resp"))" cache_is 1 1 1
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
check "malformed JSON: code format" code_is format
req POST /recommend '{"user":7} xyz'
check "trailing text after the JSON value 400 (got $CODE)" [ "$CODE" = 400 ]; check "trailing text: code format" code_is format
req POST /score '{"user":7,"items":[1]}{"user":8,"items":[2]}'
check "two JSON values 400 (got $CODE)" [ "$CODE" = 400 ]
req POST /recommend '{"user":7,"k":5,"candidates":30}
  '
check "trailing whitespace is fine (got $CODE)" [ "$CODE" = 200 ]
req POST /recommend '{"user":7,"user":8}'
check "duplicate key 400 (got $CODE)" [ "$CODE" = 400 ]; check "duplicate key names the field" field_is "'user'"
req POST /score '{"user":7,"items":[1],"items":[2]}'
check "duplicate items 400 (got $CODE)" [ "$CODE" = 400 ]; check "duplicate items names the field" field_is "'items'"
# a NUL would end the key's C string early ("user\u0000" read as "user")
req POST /recommend '{"user\u0000":7,"k":5,"candidates":30}'
check "a NUL in a key 400 (got $CODE)" [ "$CODE" = 400 ]; check "NUL: code format" code_is format
# ambiguous framing (two Content-Length headers; Content-Length beside
# Transfer-Encoding): one JSON 400, then the connection closes, so the bytes
# after the first body are never served as a request of their own (smuggling)
for framing in 'Content-Length: 0\r\nContent-Length: 41' 'Content-Length: 41\r\nTransfer-Encoding: chunked'; do
  check "ambiguous framing ($framing): one 400 JSON answer, nothing smuggled" python3 -c "
import json, socket, sys
s = socket.create_connection(('127.0.0.1', $PORT)); s.settimeout(10)
s.sendall(b'GET /health HTTP/1.1\r\nHost: x\r\n$framing\r\n\r\nGET /nope-smuggled HTTP/1.1\r\nHost: x\r\n\r\n')
data = b''
while True:
    try:
        c = s.recv(65536)
    except socket.timeout:
        sys.exit('no close')
    if not c: break
    data += c
head, _, body = data.partition(b'\r\n\r\n')
ok = head.startswith(b'HTTP/1.1 400') and data.count(b'HTTP/1.1 ') == 1 and b'smuggled' not in data
ok = ok and 'ambiguous request framing' in json.loads(body)['error']
sys.exit(0 if ok else data[:400])"
done
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
check "unknown user: code not_found" code_is not_found
req POST /recommend '{"user":7,"k":0}'
check "k 0: code out_of_range" code_is out_of_range
req POST /score '{"user":7}'
check "score without items 400" [ "$CODE" = 400 ]; check "field items" field_is "'items'"
req POST /score '{"user":7,"items":[1,0]}'
check "score item 0 → 400" [ "$CODE" = 400 ]; check "field items (id 0)" field_is "'items'"
req POST /score '{"user":7,"items":[1,-3]}'
check "score negative id 400" [ "$CODE" = 400 ]
python3 -c "print('{\"user\":7,\"history\":[' + ','.join(['1']*3000) + ']}')" >"$TMP/big.json"
CODE=$(curl -s -o "$TMP/resp" -w '%{http_code}' -X POST --data-binary @"$TMP/big.json" "$U/recommend")
check "body over --max-body → 413 (got $CODE)" [ "$CODE" = 413 ]; check "413: code too_large" code_is too_large
# announced too large: refused from the headers, the body never sent (curl waits for 100-continue)
UP=$(curl -s --max-time 30 -o "$TMP/resp" -w '%{http_code} %{size_upload}' -X POST -H 'Expect: 100-continue' --data-binary @"$TMP/big.json" "$U/recommend")
check "announced oversize body: 413 before any byte is uploaded (got $UP)" [ "$UP" = "413 0" ]
# invalid UTF-8 in, never out: raw bytes in a key; a long multi-byte key whose
# error text is cut (an odd byte budget lands mid-character when cut bytewise)
utf8_ok() { python3 -c "import sys; sys.stdin.buffer.read().decode('utf-8')" <"$TMP/resp"; }
printf '{"user":7,"\xff\xfeab":1}' >"$TMP/bad_utf8.json"
CODE=$(curl -s --max-time 30 -o "$TMP/resp" -w '%{http_code}' -XPOST --data-binary @"$TMP/bad_utf8.json" "$U/recommend")
check "raw invalid UTF-8 in the body → 400 (got $CODE)" [ "$CODE" = 400 ]; check "its response is valid UTF-8" utf8_ok
python3 -c "import json; print(json.dumps({'user':7,'x'+'\u00e9'*400:1}, ensure_ascii=False))" >"$TMP/long_key.json"
CODE=$(curl -s --max-time 30 -o "$TMP/resp" -w '%{http_code}' -XPOST --data-binary @"$TMP/long_key.json" "$U/recommend")
check "long multi-byte unknown field → 400 (got $CODE)" [ "$CODE" = 400 ]; check "cut error text is valid UTF-8" utf8_ok
check "echoed field starts with the key" python3 -c "
import json,sys; r=json.load(open('$TMP/resp',encoding='utf-8')); sys.exit(0 if r['field'].startswith('x\u00e9\u00e9') and len(r['error'].encode())<512 else 1)"
req GET /nope
check "unknown path 404" [ "$CODE" = 404 ]
req GET /recommend
check "GET /recommend 405" [ "$CODE" = 405 ]
req POST /health '{}'
check "POST /health 405" [ "$CODE" = 405 ]
check "HEAD /health: 200, GET's headers, no body" sh -c "curl -s -I --max-time 10 '$U/health' >'$TMP/head' &&
  grep -q '^HTTP/1.1 200' '$TMP/head' && grep -qi '^Content-Type: application/json' '$TMP/head'"
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
# parallel /score: the fused part (cf and ctx on the request threads) too
req POST /score '{"user":7,"items":[1,2,3,4,5]}'
cp "$TMP/resp" "$TMP/score_serial.json"
check "/score of the fused checkpoint: score differs from llm_score" python3 -c "
import json,sys; r=json.load(open('$TMP/score_serial.json'))['scores']
sys.exit(0 if len(r)==5 and all(abs(s['score']-s['llm_score'])>1e-6 for s in r) else 1)"
for i in 1 2 3 4 5 6 7 8; do
  curl -s -XPOST "$U/score" -d '{"user":7,"items":[1,2,3,4,5]}' -o "$TMP/spar$i.json" &
done
wait $(jobs -p | grep -v "^$SPID$") 2>/dev/null
ok=1
for i in 1 2 3 4 5 6 7 8; do cmp -s "$TMP/score_serial.json" "$TMP/spar$i.json" || ok=0; done
check "8 parallel /score requests all equal the serial answer" [ "$ok" -eq 1 ]
req GET /health
check "still healthy after the burst" [ "$CODE" = 200 ]
kill -TERM "$SPID"; wait "$SPID"; rc=$?
check "SIGTERM → exit 0 (got $rc)" [ "$rc" -eq 0 ]
check "stopping message" grep -q 'serve: stopping' "$TMP/serve.err"
expect_error "serve on a bad host" 'not an IPv4' "$BIN" serve --ckpt "$CK" --index "$IX" --data "$D" --host nohost --port 0
expect_error "serve --per-ip-limit over --max-connections" 'exceeds' "$BIN" serve --ckpt "$CK" --index "$IX" --data "$D" --per-ip-limit 9 --max-connections 8
expect_error "serve --timeout 0" 'timeout' "$BIN" serve --ckpt "$CK" --index "$IX" --data "$D" --timeout 0
expect_error "serve --prefix-cache-mb -1" "prefix-cache-mb -1 is out of range" "$BIN" serve --ckpt "$CK" --index "$IX" --data "$D" --prefix-cache-mb -1

# --- server B: one context, Latin-1 titles, a per-IP limit, short idle timeout, the hold hook
D2="$TMP/data_latin1"; rm -rf "$D2"; cp -r "$D" "$D2"
python3 -c "
import sys; p='$D2/items.tsv'; lines=open(p,'rb').read().split(b'\n')
out=[lines[0]]+[l+b' caf\xe9' if l and not l.startswith(b'0\t') else l for l in lines[1:]]
open(p,'wb').write(b'\n'.join(out))"
HOLD="$TMP/hold"; rm -f "$HOLD"
COLLM_SERVE_TEST_HOLD="$HOLD" "$BIN" serve --ckpt "$CK" --index "$IX" --data "$D2" --port 0 --contexts 1 --threads 1 \
  --context-wait 200 --per-ip-limit 16 --max-connections 64 --timeout 2 2>"$TMP/serveb.err" &
BPID=$!
served_port "$TMP/serveb.err"
check "server B started ($(head -c 200 "$TMP/serveb.err"))" [ -n "$PORT" ]
U="http://127.0.0.1:$PORT"
req POST /recommend '{"user":7,"k":5,"candidates":30}'
check "Latin-1 titles: 200 (got $CODE)" [ "$CODE" = 200 ]; check "Latin-1 titles: response is valid UTF-8" utf8_ok
check "Latin-1 titles: the bad byte became U+FFFD" python3 -c "
import json,sys; r=json.load(open('$TMP/resp',encoding='utf-8')); sys.exit(0 if all(i['title'].endswith(' caf\ufffd') for i in r['items']) else 1)"
"$BIN" recommend --ckpt "$CK" --index "$IX" --data "$D2" --user 7 --k 5 --candidates 30 --json --threads 1 >"$TMP/resp" 2>/dev/null
check "recommend --json with Latin-1 titles prints valid UTF-8" utf8_ok
# wait_busy N: until /health reports N contexts in use (the held request got its context)
wait_busy() {
  for _ in $(seq 1 200); do
    curl -s --max-time 5 "$U/health" | grep -q "\"busy\":$1" && return 0; sleep 0.05
  done; return 1
}
# all contexts busy → 503 + Retry-After, /health still answers, the held request completes
touch "$HOLD"
curl -s --max-time 60 -o "$TMP/held.json" -w '%{http_code}' -XPOST "$U/score" -d '{"user":7,"items":[1,2,3]}' >"$TMP/held.code" &
HELD=$!
check "a request holds the only context" wait_busy 1
CODE=$(curl -s --max-time 30 -D "$TMP/headers" -o "$TMP/resp" -w '%{http_code}' -XPOST "$U/score" -d '{"user":7,"items":[4]}')
check "all contexts busy → 503 (got $CODE)" [ "$CODE" = 503 ]
check "503 carries Retry-After" grep -qi '^Retry-After: [0-9]' "$TMP/headers"
check "503: code busy" code_is busy
req GET /health
check "health answers while contexts are busy" [ "$CODE" = 200 ]
rm -f "$HOLD"; wait "$HELD"
check "the held request then completes with 200 ($(cat "$TMP/held.code"))" [ "$(cat "$TMP/held.code")" = 200 ]
check "wait_busy 0 after release" wait_busy 0
# 1100 idle connections from 127.0.0.2 (over FD_SETSIZE): /health from 127.0.0.1 answers; at most
# --per-ip-limit of them stay open, and the idle timeout closes those
python3 - "$PORT" >"$TMP/idle.json" 2>"$TMP/idle.err" <<'PY'
import json, resource, select, socket, sys, time, http.client
port = int(sys.argv[1])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
want = 1100 + 64
if soft < want: resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard) if hard != resource.RLIM_INFINITY else want, hard))
socks, failed = [], 0
for _ in range(1100):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.2", 0)); s.settimeout(5); s.connect(("127.0.0.1", port)); socks.append(s)
    except OSError:
        failed += 1; s.close()
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
try:
    conn.request("GET", "/health"); r = conn.getresponse(); status, health = r.status, json.loads(r.read())
except Exception as e:
    status, health = 0, {"error": str(e)}
conn.close()
# every idle socket ends closed by the server: refused at accept (per-IP limit) or timed out
# (poll, not select: these descriptors are above FD_SETSIZE)
open_ = {s.fileno(): s for s in socks}; poller = select.poll(); deadline = time.time() + 60
for fd in open_: poller.register(fd, select.POLLIN)
while open_ and time.time() < deadline:
    for fd, _ in poller.poll(500):
        try: data = open_[fd].recv(1)
        except OSError: data = b""
        if not data: poller.unregister(fd); del open_[fd]
print(json.dumps({"opened": len(socks), "failed": failed, "status": status, "health": health, "left_open": len(open_)}))
PY
check "1100 idle connections opened ($(head -c 300 "$TMP/idle.json") $(tail -1 "$TMP/idle.err"))" python3 -c "
import json,sys; r=json.load(open('$TMP/idle.json')); sys.exit(0 if r['opened']+r['failed']==1100 and r['opened']>=1000 else 1)"
check "health answers with 1100 idle connections open" python3 -c "
import json,sys; r=json.load(open('$TMP/idle.json')); sys.exit(0 if r['status']==200 else 1)"
check "at most --per-ip-limit (16) + 1 connections held" python3 -c "
import json,sys; r=json.load(open('$TMP/idle.json')); sys.exit(0 if 1<=r['health'].get('connections',999)<=17 else 1)"
check "the server closed every idle connection" python3 -c "
import json,sys; r=json.load(open('$TMP/idle.json')); sys.exit(0 if r['left_open']==0 else 1)"
req GET /health
check "health still answers after the idle flood" [ "$CODE" = 200 ]
# SIGTERM with a request in flight: new clients refused, the request completes, exit 0
touch "$HOLD"
curl -s --max-time 60 -o "$TMP/held.json" -w '%{http_code}' -XPOST "$U/score" -d '{"user":7,"items":[1,2,3]}' >"$TMP/held.code" &
HELD=$!
check "drain: a request is in flight" wait_busy 1
kill -TERM "$BPID"
refused=0
for _ in $(seq 1 100); do
  [ "$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' "$U/health")" = 000 ] && { refused=1; break; }; sleep 0.05
done
check "drain: new connections are refused" [ "$refused" -eq 1 ]
check "drain: still running while the request is in flight" kill -0 "$BPID"
kill -HUP "$BPID"; sleep 0.5 # a reload asked for during the drain is ignored, not taken for a second stop
check "drain: a SIGHUP does not cut it short" kill -0 "$BPID"
rm -f "$HOLD"; wait "$HELD"
check "drain: the in-flight request completes with 200 ($(cat "$TMP/held.code"))" [ "$(cat "$TMP/held.code")" = 200 ]
check "drain: its answer is complete" python3 -c "
import json,sys; r=json.load(open('$TMP/held.json')); sys.exit(0 if [s['item'] for s in r['scores']]==[1,2,3] else 1)"
wait "$BPID"; rc=$?
check "drain: exit 0 (got $rc)" [ "$rc" -eq 0 ]
check "drain: stopping message" grep -q 'serve: stopping (draining' "$TMP/serveb.err"

# --- server C: requests waiting for the only context hold their bodies, not
# their parsed JSON (a tree is ~40 times its text): 40 waiting requests of
# 64 KB (32,700 ids each) grow the server by far less than 40 x 2.9 MB
rm -f "$HOLD"
COLLM_SERVE_TEST_HOLD="$HOLD" "$BIN" serve --ckpt "$CK" --index "$IX" --data "$D" --port 0 --contexts 1 --threads 1 \
  --context-wait 30000 --max-body 70000 2>"$TMP/servec.err" &
CPID=$!
served_port "$TMP/servec.err"
check "server C started ($(head -c 200 "$TMP/servec.err"))" [ -n "$PORT" ]
U="http://127.0.0.1:$PORT"
touch "$HOLD"
curl -s --max-time 60 -o /dev/null -XPOST "$U/score" -d '{"user":7,"items":[1]}' &
HELD=$!
check "server C: a request holds the only context" wait_busy 1
check "40 waiting 64 KB requests: the heap grows by < 40 MB, then all answer 200" python3 -c "
import http.client, json, os, sys, threading, time
def heap():  # MB in use (/metrics' collm_heap_bytes; RSS would count what glibc keeps after a free)
    c = http.client.HTTPConnection('127.0.0.1', $PORT, timeout=10); c.request('GET', '/metrics')
    return int([l for l in c.getresponse().read().decode().splitlines() if l.startswith('collm_heap_bytes ')][0].split()[1]) >> 20
body = json.dumps({'user': 7, 'k': 1, 'candidates': 1, 'exclude': [1] * 32700}, separators=(',', ':'))
codes = []
def ask():
    c = http.client.HTTPConnection('127.0.0.1', $PORT, timeout=60)
    c.request('POST', '/recommend', body)
    codes.append(c.getresponse().status)
before = heap()
ts = [threading.Thread(target=ask) for _ in range(40)]
for t in ts: t.start()
for _ in range(200):  # until all 40 wait (connections = 40 + the held one + this probe)
    c = http.client.HTTPConnection('127.0.0.1', $PORT, timeout=10); c.request('GET', '/health')
    if json.loads(c.getresponse().read())['connections'] >= 42: break
    time.sleep(0.05)
time.sleep(0.5)
grown = heap() - before
os.remove('$HOLD')
for t in ts: t.join()
print('grown', grown, 'MB; codes', sorted(set(codes)))
sys.exit(0 if grown < 40 and codes == [200] * 40 else 1)"
wait "$HELD"
kill -TERM "$CPID"; wait "$CPID"

finish
