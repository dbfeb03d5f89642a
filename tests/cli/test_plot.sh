#!/usr/bin/env bash
# Pictures and records (issue 14 item 6): train-cf --log / --quiet / --json;
# every checkpoint records the hyper-parameters it was trained with and
# `collm info` prints them; progress shows the run's ETA and the evaluation's
# progress; `collm plot` turns training logs, sweeps and eval-topk results into
# PNGs (skipped with a message when gnuplot is absent: apt-get install gnuplot-nox).
# Prints "N passed, N failed".
set -u
. "$(dirname "$0")/lib.sh" plot
T=$TMP
rm -rf "$T" && mkdir -p "$T"
"$BIN" synth --users 40 --items 60 --seed 5 --out "$T/d" >/dev/null; check "synth" [ $? -eq 0 ]

# --- train-cf: --log, --quiet, --json; the CF model's hyper-parameters
"$BIN" train-cf --data "$T/d" --out "$T/mf.gguf" --dim 8 --max-epochs 4 --patience 0 --lr 0.02 --threads 1 --quiet --json \
  >"$T/cf.json" 2>"$T/cf.err"; check "train-cf --quiet --json exits 0" [ $? -eq 0 ]
check "--quiet: nothing on stderr ($(head -c 100 "$T/cf.err"))" [ ! -s "$T/cf.err" ]
check "--json: one object" /usr/bin/python3 -c "import json; r=json.load(open('$T/cf.json')); assert r['epochs']==4"
check "default log beside --out: 4 lines with the train log's keys" /usr/bin/python3 -c "
import json; L=[json.loads(l) for l in open('$T/mf.gguf.log.jsonl')]
assert [x['epoch'] for x in L]==[1,2,3,4] and all({'loss','valid_auc','valid_uauc','best','seconds'}<=set(x) for x in L)"
"$BIN" train-cf --data "$T/d" --out "$T/mf2.gguf" --dim 8 --max-epochs 3 --threads 1 --log "$T/cf.log" >/dev/null 2>"$T/cf2.err"
check "--log FILE" [ "$(wc -l <"$T/cf.log")" -eq 3 ]
check "progress: epoch N/M with the run's ETA" grep -qE '^epoch +1/3 .*ETA <= [0-9]+s' "$T/cf2.err"
expect_error "--log into a missing folder" "missing" "$BIN" train-cf --data "$T/d" --out "$T/x.gguf" --log "$T/missing/x.log"
"$BIN" info "$T/mf.gguf" >"$T/info.txt"
check "info: the CF model was trained with lr 0.02, 4 epochs, patience 0" \
  grep -qE '^  lr=0.0199999996 .*max_epochs=4 patience=0 seed=2023' "$T/info.txt"
"$BIN" info "$T/mf.gguf" --json >"$T/info.json"
check "info --json: hyperparameters" /usr/bin/python3 -c "
import json; h=json.load(open('$T/info.json'))['hyperparameters']; assert h['batch']=='2048' and h['epochs']=='4' and 'beta2' in h"

# --- collm train: the checkpoint's collm.train.* and the progress
"$BIN" init-model --arch llama --vocab-from "$VOCAB" --n-embd 32 --n-layer 1 --n-head 2 --n-ff 64 --seed 3 \
  --out "$T/base.gguf" >/dev/null; check "init-model" [ $? -eq 0 ]
"$BIN" train --stage 2 --base "$T/base.gguf" --cf "$T/mf.gguf" --data "$T/d" --out "$T/s2.gguf" --batch 4 \
  --steps-per-epoch 2 --max-epochs 2 --eval-rows 40 --warmup-steps 3 --lr 2e-3 --clip 0.5 --threads 2 >/dev/null 2>"$T/s2.err"
check "train stage 2" [ $? -eq 0 ]
check "progress: epoch 1/2 with the run's ETA" grep -qE '^epoch 1/2 .*run ETA <= [0-9]+s' "$T/s2.err"
"$BIN" info "$T/s2.gguf" --json >"$T/info2.json"
check "the checkpoint records its training settings" /usr/bin/python3 -c "
import json; h=json.load(open('$T/info2.json'))['hyperparameters']
want={'batch':'4','steps_per_epoch':'2','max_epochs':'2','warmup_steps':'3','clip':'0.5','eval_rows':'40','seed':'2023','fece_mid':'10'}
bad={k:(h.get(k),v) for k,v in want.items() if h.get(k)!=v}
assert not bad and h['lr'].startswith('0.002') and h['cf'].strip(chr(34)).endswith('mf.gguf') and h['data'].strip(chr(34)).endswith('/d'), (bad, h)"
"$BIN" info "$T/s2.gguf" >"$T/info2.txt"
check "info prints them under 'trained with'" grep -qE '^  batch=4 steps_per_epoch=2 max_epochs=2 ' "$T/info2.txt"
if command -v script >/dev/null 2>&1; then # a terminal: step and evaluation progress lines
  script -qc "$BIN train --stage 2 --base $T/base.gguf --cf $T/mf.gguf --data $T/d --out $T/s3.gguf --batch 4 --steps-per-epoch 2 --max-epochs 2 --eval-batch 4 --threads 2" \
    /dev/null </dev/null | tr '\r' '\n' >"$T/tty.txt"
  check "a terminal shows the evaluation's progress" grep -qE '^  evaluating [0-9]+/[0-9]+ prompts .*ETA [0-9]+s' "$T/tty.txt"
  check "and the run's ETA during the second epoch" grep -qE '^epoch 2 step 2/2 .*run ETA <= [0-9]+s' "$T/tty.txt"
fi

# --- collm plot
if ! command -v gnuplot >/dev/null 2>&1; then
  echo "SKIP: collm plot: gnuplot not found (apt-get install gnuplot-nox)" >&2
  expect_error "plot without gnuplot" "gnuplot not found" "$BIN" plot "$T/mf.gguf.log.jsonl" --out "$T/x.png"
  finish; exit
fi
# png FILE W H: a PNG of that size
png() { /usr/bin/python3 -c "
import struct,sys; b=open('$1','rb').read(24)
sys.exit(0 if b[:8]==b'\x89PNG\r\n\x1a\n' and struct.unpack('>II', b[16:24])==($2,$3) else 1)"; }
"$BIN" plot "$T/mf.gguf.log.jsonl" "$T/s2.gguf.log.jsonl" --out "$T/train.png" 2>"$T/err"
check "plot two training logs ($(cat "$T/err"))" png "$T/train.png" 900 700
check "it says what it drew" grep -q "plot: wrote $T/train.png (train, 2 files)" "$T/err"
cat >"$T/sweep.jsonl" <<'JL'
{"command":"train-cf","param":"--weight-decay","value":"0","split":"valid_small","auc":0.71,"uauc":0.66,"train_seconds":0.2}
{"command":"train-cf","param":"--weight-decay","value":"1e-5","split":"valid_small","auc":0.713,"uauc":0.68,"train_seconds":0.2}
{"command":"train-cf","param":"--weight-decay","value":"1e-3","split":"valid_small","auc":0.706,"uauc":0.687,"train_seconds":0.2}
JL
"$BIN" plot "$T/sweep.jsonl" -o "$T/sweep.png" --json >"$T/sweep.json" 2>"$T/err"
check "plot a sweep ($(cat "$T/err"))" png "$T/sweep.png" 800 500
check "plot --json" /usr/bin/python3 -c "import json; r=json.load(open('$T/sweep.json')); assert r['kind']=='sweep' and r['files']==1 and r['bytes']>1000"
cat >"$T/topk.json" <<'JS'
{"retrieval":{"recall@10":0.05,"ndcg@10":0.04,"users":9,"ci95":{"recall@10":[0.03,0.07],"ndcg@10":[0.02,0.06]}},
 "fused":{"recall@10":0.065,"ndcg@10":0.059,"users":9,"ci95":{"recall@10":[0.04,0.09],"ndcg@10":[0.046,0.072]}}}
JS
"$BIN" plot "$T/topk.json" --out "$T/topk.png" --metrics ndcg@10 --title "it's a test" 2>"$T/err"
check "plot eval-topk JSON (a quote in the title) ($(cat "$T/err"))" png "$T/topk.png" 900 500
expect_error "plot: a metric the file lacks" "--metrics: mrr is not a metric" "$BIN" plot "$T/topk.json" --out "$T/t2.png" --metrics mrr
check "nothing written" [ ! -e "$T/t2.png" ]
echo '{"hello":1}' >"$T/other.json"
expect_error "plot: a file of no known kind" "not a training log .*give --kind" "$BIN" plot "$T/other.json" --out "$T/t3.png"
expect_error "plot: a missing file" "nosuch.jsonl" "$BIN" plot "$T/nosuch.jsonl" --out "$T/t4.png"
expect_error "plot: no --out" "missing required option --out" "$BIN" plot "$T/sweep.jsonl"
expect_error "plot: bad --kind" "--kind 'bars': train, sweep or topk" "$BIN" plot "$T/sweep.jsonl" --out "$T/t5.png" --kind bars
printf '{"epoch":1,"loss":0.7}\nnot json\n' >"$T/bad.jsonl"
expect_error "plot: a damaged log" "bad.jsonl: line 2: not a JSON object" "$BIN" plot "$T/bad.jsonl" --out "$T/t6.png"
# --out over an input: refused (the image is removed before gnuplot runs: the log was deleted unread)
cp "$T/mf.gguf.log.jsonl" "$T/same.jsonl"
expect_error "plot: --out is an input file" "--out .*same.jsonl is the input file" \
  "$BIN" plot "$T/mf.gguf.log.jsonl" "$T/same.jsonl" --out "$T/same.jsonl"
check "  ... which is still there" cmp -s "$T/mf.gguf.log.jsonl" "$T/same.jsonl"
finish
