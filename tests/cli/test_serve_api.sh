#!/usr/bin/env bash
# The service as documented (issue 14 item 5): every response of a running
# `collm serve` is checked against docs/openapi.yaml (tests/cli/openapi_check.py,
# every documented path / method / status but 500 exercised); probability =
# sigmoid(llm_score); "exclude" and "exclude_rated" leave items out; a batch
# equals the single requests; GET /metrics counts what was sent (Prometheus
# text format); one access-log line per request; SIGHUP reloads checkpoint
# and index while requests are in flight, and every one of them succeeds (the
# old ones with the old checkpoint, later ones with the new); a failed
# reload keeps serving. "In flight" without timing: COLLM_SERVE_TEST_HOLD.
# Prints "N passed, N failed".
set -u
. "$(dirname "$0")/lib.sh" serve_api
T=$TMP
rm -rf "$T" && mkdir -p "$T"
PY=/usr/bin/python3
$PY -c 'import yaml' 2>/dev/null || { echo "FAIL: /usr/bin/python3 has no yaml module (apt-get install python3-yaml; scripts/setup.sh)" >&2; echo "0 passed, 1 failed"; exit 1; }
run "$BIN" synth --users 60 --items 120 --seed 1 --out "$T/data"
run "$BIN" train-cf --model mf --data "$T/data" --out "$T/mf.gguf" --dim 16 --max-epochs 5 --eval-split none --threads 2
run "$BIN" init-model --arch llama --vocab-from "$VOCAB" --n-embd 32 --n-layer 1 --n-head 2 --n-ff 48 --seed 1 --out "$T/base.gguf"
for s in 1 2; do
  run "$BIN" train --stage 2 --base "$T/base.gguf" --cf "$T/mf.gguf" --data "$T/data" --out "$T/ck$s.gguf" \
    --lr 1e-2 --batch 8 --steps-per-epoch 3 --max-epochs 1 --eval-rows 16 --seed $s --threads 2 --quiet
done
cp "$T/ck1.gguf" "$T/served.gguf"
run "$BIN" index --ckpt "$T/served.gguf" --out "$T/items.faiss"
HOLD="$T/hold"
COLLM_SERVE_TEST_HOLD="$HOLD" "$BIN" serve --ckpt "$T/served.gguf" --index "$T/items.faiss" --data "$T/data" --port 0 \
  --contexts 2 --context-wait 200 --max-body 4096 --max-batch 4 --threads 1 --access-log "$T/access.log" 2>"$T/serve.err" &
SPID=$!
served_port "$T/serve.err" 300
check "server started ($(head -c 200 "$T/serve.err"))" [ -n "$PORT" ]
[ -n "$PORT" ] || { kill $SPID 2>/dev/null; finish; exit 1; }
U="http://127.0.0.1:$PORT"
# rq NAME METHOD PATH [BODY]: response body in $T/NAME.body, status in $T/NAME.code; recorded for the OpenAPI check
rq() {
  local name=$1 method=$2 path=$3 body=${4:-}
  if [ "$method" = HEAD ]; then # (curl -I: the headers, no body to wait for)
    curl -s --max-time 60 -I -o /dev/null -w '%{http_code} %{content_type}' "$U$path" >"$T/$name.meta"
    : >"$T/$name.body"
  else
    curl -s --max-time 60 -o "$T/$name.body" -w '%{http_code} %{content_type}' -X "$method" \
      ${body:+-H 'Content-Type: application/json' --data-binary "$body"} "$U$path" >"$T/$name.meta"
  fi
  cut -d' ' -f1 "$T/$name.meta" >"$T/$name.code"
  $PY - "$T/$name" "$method" "$path" >>"$T/records.jsonl" <<'PYEOF'
import json, sys
base, method, path = sys.argv[1:4]
meta = open(base + ".meta").read().split(" ", 1)
print(json.dumps({"method": method, "path": path, "status": int(meta[0]),
                  "content_type": meta[1].strip() if len(meta) > 1 else "",
                  "body": open(base + ".body", encoding="utf-8", errors="replace").read()}))
PYEOF
}
code() { cat "$T/$1.code"; }
js() { $PY -c "import json,sys; r=json.load(open('$T/$1.body')); $2"; } # js NAME PYTHON (r = the body)
health() { echo >>"$T/polls"; curl -s --max-time 10 "$U/health" | $PY -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }

# --- the endpoints, good and bad
rq h GET /health
rq hh HEAD /health
check "HEAD /health: 200" [ "$(cat "$T/hh.code")" = 200 ]
check "health 200, generation 1" js h "sys.exit(0 if r['generation']==1 and r['reloads']==0 else 1)"
rq r1 POST /recommend '{"user":7,"k":5,"candidates":30}'
check "recommend 200" [ "$(code r1)" = 200 ]
check "probability = sigmoid(llm_score)" js r1 "
import math; sys.exit(0 if all(abs(i['probability']-1/(1+math.exp(-i['llm_score'])))<1e-6 for i in r['items']) else 1)"
first2=$(js r1 "print(','.join(str(i['item']) for i in r['items'][:2]))")
rq r2 POST /recommend "{\"user\":7,\"k\":5,\"candidates\":30,\"exclude\":[$first2]}"
check "exclude: 200, those items gone, 5 others" js r2 "
ids=[i['item'] for i in r['items']]; sys.exit(0 if len(ids)==5 and not set(ids)&{$first2} else 1)"
# the items user 7 rated (any label) in train and valid
rated=$($PY -c "
import sys
s=set()
for f in ('train','valid'):
    for line in list(open('$T/data/'+f+'.tsv'))[1:]:
        c=line.split('\t')
        if c[0]=='7': s.add(int(c[1]))
print(','.join(map(str,sorted(s))))")
rq r3 POST /recommend '{"user":7,"k":10,"candidates":30,"exclude_rated":true}'
check "exclude_rated: 200, none of user 7's ${#rated} rated items" js r3 "
ids=[i['item'] for i in r['items']]; sys.exit(0 if len(ids)==10 and not set(ids)&{$rated} else 1)"
rq r4 POST /recommend '{"user":7,"k":10,"candidates":30}'
check "without exclude_rated some rated items come back (the option does something)" js r4 "
ids=[i['item'] for i in r['items']]; sys.exit(0 if set(ids)&{$rated} else 1)"
rq b1 POST /recommend '{"users":[7,9,5000],"k":5,"candidates":30}'
rq r9 POST /recommend '{"user":9,"k":5,"candidates":30}'
check "batch: 3 results, the first two equal the single requests, 5000 is a not_found entry" $PY -c "
import json,sys
b=json.load(open('$T/b1.body'))['results']; a=json.load(open('$T/r1.body')); c=json.load(open('$T/r9.body'))
same=lambda x,y: [i['item'] for i in x['items']]==[i['item'] for i in y['items']] and max(abs(i['llm_score']-j['llm_score']) for i,j in zip(x['items'],y['items']))<1e-4
sys.exit(0 if len(b)==3 and same(b[0],a) and same(b[1],c) and b[2]['code']=='not_found' and b[2]['status']==404 and b[2]['user']==5000 else 1)"
rq b2 POST /recommend '{"users":[1,2,3,4,5],"k":5}'
check "batch over --max-batch 4: 400 field users" js b2 "sys.exit(0 if r['field']=='users' and r['code']=='out_of_range' else 1)"
rq b3 POST /recommend '{"users":[7],"user":7}'
check "batch with user: 400" [ "$(code b3)" = 400 ]
rq s1 POST /score '{"user":7,"items":[3,5,8]}'
check "score 200, probability = sigmoid" js s1 "
import math; sys.exit(0 if [x['item'] for x in r['scores']]==[3,5,8] and all(abs(x['probability']-1/(1+math.exp(-x['llm_score'])))<1e-6 for x in r['scores']) else 1)"
rq e1 POST /recommend '{"user":7,"exclude_rated":1}'
check "exclude_rated not a boolean: 400" js e1 "sys.exit(0 if r['field']=='exclude_rated' else 1)"
rq e2 POST /score '{"user":5000,"items":[3]}'
check "unknown user: 404" [ "$(code e2)" = 404 ]
rq e3 POST /recommend '{"user":5000}'
rq e4 GET /recommend
rq e5 GET /score
rq e6 POST /health '{}'
rq e7 POST /metrics '{}'
check "405s" [ "$(code e4)$(code e5)$(code e6)$(code e7)" = 405405405405 ]
big=$($PY -c "print('{\"user\":7,\"items\":[' + ','.join(['1']*3000) + ']}')")
rq e8 POST /score "$big"
rq e9 POST /recommend "$big"
check "413s" [ "$(code e8)$(code e9)" = 413413 ]
rq e10 POST /score '{"user":7,"items":[3],"x":1}'
check "unknown field: 400" [ "$(code e10)" = 400 ]

# --- metrics count what was sent so far (the /metrics request itself is counted after it answers)
rq m1 GET /metrics
check "metrics 200 text/plain" grep -q '^200 text/plain; version=0.0.4' "$T/m1.meta"
check "metrics: Prometheus text format, counts as sent" $PY - "$T/m1.body" <<'PYEOF'
import re, sys
text = open(sys.argv[1]).read()
vals, types = {}, {}
for line in text.splitlines():
    if line.startswith("# TYPE"):
        _, _, name, kind = line.split(); types[name] = kind; continue
    if line.startswith("#") or not line: continue
    m = re.fullmatch(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)', line)
    if not m: sys.exit("bad line: " + line)
    vals[m.group(1) + (m.group(2) or "")] = float(m.group(3))
def v(k): return vals.get(k, 0)
ok = (v('collm_requests_total{path="/recommend",status="200"}') == 6 and
      v('collm_requests_total{path="/recommend",status="400"}') == 3 and
      v('collm_requests_total{path="/recommend",status="404"}') == 1 and
      v('collm_requests_total{path="/score",status="413"}') == 1 and
      v('collm_requests_total{path="/health",status="200"}') == 2 and  # (GET and HEAD)
      v('collm_errors_total{path="/recommend"}') == 6 and
      v('collm_errors_total{path="/score"}') == 4 and
      v('collm_request_duration_seconds_count{path="/recommend"}') == 12 and
      v('collm_request_duration_seconds_bucket{path="/recommend",le="+Inf"}') == 12 and
      v('collm_contexts_busy') == 0 and v('collm_contexts') == 2 and v('collm_generation') == 1 and
      types.get("collm_request_duration_seconds") == "histogram" and types.get("collm_requests_total") == "counter" and
      types.get("collm_contexts_busy") == "gauge")
# histogram buckets never decrease
for path in ("/recommend", "/score"):
    b = [v for k, v in vals.items() if k.startswith('collm_request_duration_seconds_bucket{path="%s"' % path)]
    ok = ok and b == sorted(b)
sys.exit(0 if ok else "counts differ: " + str({k: x for k, x in vals.items() if "requests_total" in k or "errors" in k}))
PYEOF

# --- requests in flight across a reload: all succeed
body='{"user":7,"items":[3,5,8,13,21]}'
rq base1 POST /score "$body"
touch "$HOLD"
wait_busy() { # wait_busy N: until /health says N contexts are busy (no timing assertion: up to 60 s)
  for _ in $(seq 1 600); do [ "$(health busy)" = "$1" ] && return 0; sleep 0.1; done; return 1
}
rq fa POST /score "$body" & PA=$!
rq fb POST /recommend '{"user":9,"k":5,"candidates":30}' & PB=$!
check "two requests in flight hold both contexts" wait_busy 2
rq busy POST /recommend '{"user":7,"k":5}'
check "a third: 503 busy" js busy "sys.exit(0 if r['code']=='busy' else 1)"
rq busy2 POST /score "$body"
check "on /score too" [ "$(code busy2)" = 503 ]
cp "$T/ck2.gguf" "$T/served.tmp" && mv "$T/served.tmp" "$T/served.gguf"
kill -HUP $SPID
for _ in $(seq 1 600); do grep -q 'serve: reloaded' "$T/serve.err" && break; sleep 0.1; done
check "SIGHUP: reloaded ($(tail -1 "$T/serve.err"))" grep -q "serve: reloaded .*served.gguf and .*items.faiss (generation 2)" "$T/serve.err"
check "health says generation 2 while the old requests are still in flight" [ "$(health generation)" = 2 ]
rq fd POST /score "$body" & PD=$!
check "a request after the reload gets a context of the new generation" wait_busy 3
rm -f "$HOLD"
wait $PA $PB $PD
check "in flight across the reload: all 200 ($(code fa) $(code fb) $(code fd))" [ "$(code fa)$(code fb)$(code fd)" = 200200200 ]
check "the ones that started before the reload used the old checkpoint" cmp -s "$T/fa.body" "$T/base1.body"
check "the one after it used the new checkpoint (other scores)" bash -c "! cmp -s '$T/fd.body' '$T/base1.body'"
rq after POST /score "$body"
check "later requests: the new checkpoint's scores" cmp -s "$T/after.body" "$T/fd.body"
# a failed reload keeps the running generation
printf 'not a gguf' >"$T/served.gguf"
kill -HUP $SPID
for _ in $(seq 1 600); do grep -q 'serve: reload failed' "$T/serve.err" && break; sleep 0.1; done
check "a damaged checkpoint: reload failed, still generation 2" grep -q "serve: reload failed; still serving generation 2" "$T/serve.err"
check "the error names the file" grep -q "collm serve (reload): .*served.gguf" "$T/serve.err"
rq after2 POST /score "$body"
check "still serving the second checkpoint" cmp -s "$T/after2.body" "$T/fd.body"
rq h2 GET /health
check "health: generation 2, 1 reload" js h2 "sys.exit(0 if r['generation']==2 and r['reloads']==1 else 1)"

# --- the responses against the OpenAPI file
$PY "$(dirname "$0")/openapi_check.py" docs/openapi.yaml "$T/records.jsonl" >"$T/openapi.out"
check "every response matches docs/openapi.yaml ($(tail -1 "$T/openapi.out"))" [ $? -eq 0 ]
grep FAIL "$T/openapi.out" >&2

# a second server on the same port: one error line, exit 1 (the parts it loaded freed once)
cp "$T/ck2.gguf" "$T/served.gguf"
expect_error "a port in use" "cannot listen on 127.0.0.1:$PORT" \
  "$BIN" serve --ckpt "$T/served.gguf" --index "$T/items.faiss" --data "$T/data" --port "$PORT" --threads 1

# --- stop; then one access-log line per request
kill -TERM $SPID; wait $SPID; rc=$?
check "SIGTERM: exit 0" [ "$rc" -eq 0 ]
lines=$(wc -l <"$T/access.log"); polls=$(wc -l <"$T/polls"); sent=$(wc -l <"$T/records.jsonl")
check "access log: one line per request ($lines lines = $sent recorded + $polls health polls)" [ "$lines" -eq $((sent + polls)) ]
check "access log: the format" bash -c "! grep -vE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z 127\.0\.0\.1 \"(GET|POST|HEAD) /[a-z]+\" [0-9]{3} [0-9]+ [0-9]+\.[0-9]ms$' '$T/access.log'"
check "access log: the 503s and the 413s are there" [ "$(grep -c '" 503 ' "$T/access.log") $(grep -c '" 413 ' "$T/access.log")" = "2 2" ]
finish
