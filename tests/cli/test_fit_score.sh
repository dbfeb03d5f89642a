#!/usr/bin/env bash
# collm fit-score: the weight w of score = llm + w * cf fitted by AUC on a split
# and stored in the checkpoint, which eval then uses: eval's AUC on that split
# equals the grid's best; refits of the fused encoders stored with the kept
# weights (--keep-weights); --dry-run leaves the file byte-identical; a stage-1
# checkpoint (no CF tables) and bad arguments are clear errors.
. "$(dirname "$0")/lib.sh" fit_score
rm -rf "${TMP:?}"/*
run "$BIN" synth --users 60 --items 120 --seed 1 --out "$TMP/data"
run "$BIN" train-cf --model mfbias --data "$TMP/data" --out "$TMP/cf.gguf" --dim 10 --max-epochs 8 --threads 2
run "$BIN" init-model --arch llama --vocab-from "$VOCAB" --n-embd 32 --n-layer 1 --n-head 2 --n-head-kv 2 --n-ff 48 --seed 1 --out "$TMP/base.gguf"
run "$BIN" train --stage 2 --base "$TMP/base.gguf" --cf "$TMP/cf.gguf" --data "$TMP/data" --out "$TMP/ckpt.gguf" \
  --lr 1e-2 --batch 8 --steps-per-epoch 3 --max-epochs 1 --eval-rows 16 --threads 2
run "$BIN" train --stage 1 --full --base "$TMP/base.gguf" --data "$TMP/data" --out "$TMP/s1.gguf" \
  --lr 1e-2 --batch 8 --steps-per-epoch 2 --max-epochs 1 --eval-rows 16 --threads 2
CK="$TMP/ckpt.gguf"; D="$TMP/data"
get() { python3 -c "import json,sys; print(json.load(open('$1'))$2)"; }

before=$("$BIN" eval --ckpt "$CK" --data "$D" --split valid_small --json --threads 1)
cp "$CK" "$TMP/copy.gguf"
"$BIN" fit-score --ckpt "$CK" --data "$D" --dry-run --json --threads 1 >"$TMP/dry.json" 2>"$TMP/err"; rc=$?
check "fit-score --dry-run exits 0 ($(head -c 200 "$TMP/err"))" [ "$rc" -eq 0 ]
check "--dry-run leaves the checkpoint byte-identical" cmp -s "$CK" "$TMP/copy.gguf"
check "--dry-run: grid starts at w=0 with the LLM's own AUC" python3 -c "
import json,sys; r=json.load(open('$TMP/dry.json')); e=json.loads('''$before''')
sys.exit(0 if r['grid'][0]['w']==0 and abs(r['grid'][0]['auc']-e['auc'])<1e-6 and r['stored'] is False else 1)"
check "the chosen w has the grid's best AUC" python3 -c "
import json,sys; r=json.load(open('$TMP/dry.json')); best=max(g['auc'] for g in r['grid'])
sys.exit(0 if abs(r['auc']-best)<1e-12 and [g for g in r['grid'] if g['w']==r['cf_weight']][0]['auc']==best else 1)"

"$BIN" fit-score --ckpt "$CK" --data "$D" --json --threads 1 >"$TMP/fit.json" 2>"$TMP/err"; rc=$?
check "fit-score exits 0 ($(head -c 200 "$TMP/err"))" [ "$rc" -eq 0 ]
w=$(get "$TMP/fit.json" "['cf_weight']")
after=$("$BIN" eval --ckpt "$CK" --data "$D" --split valid_small --json --threads 1)
check "eval now scores llm + w*cf (w=$w): its AUC is the fitted one" python3 -c "
import json,sys; r=json.load(open('$TMP/fit.json')); e=json.loads('''$after''')
sys.exit(0 if abs(e['auc']-r['auc'])<1e-6 else 1)"
check "the fitted checkpoint differs from the original only by the key" sh -c "! cmp -s '$CK' '$TMP/copy.gguf'"
"$BIN" info "$CK" >"$TMP/info" 2>&1
check "collm info shows collm.score.cf_weight" grep -q "collm.score.cf_weight" "$TMP/info"
# refitting is idempotent: the same w
"$BIN" fit-score --ckpt "$CK" --data "$D" --json --threads 1 >"$TMP/fit2.json" 2>/dev/null
check "refit gives the same w" [ "$(get "$TMP/fit2.json" "['cf_weight']")" = "$w" ]

# --with: a second encoder (DIN, reading the history) fused and stored whole in
# the checkpoint; every row's eval score is then llm + w*cf + v*din, with each
# part computed independently (the original file, the two encoder files)
run "$BIN" train-cf --model din --data "$D" --out "$TMP/din.gguf" --dim 12 --max-epochs 2 --threads 2
"$BIN" eval --ckpt "$TMP/copy.gguf" --data "$D" --split valid_small --threads 1 --scores "$TMP/llm.tsv" >/dev/null 2>&1
"$BIN" eval-cf --cf "$TMP/cf.gguf" --data "$D" --split valid_small --threads 1 --scores "$TMP/cf.tsv" >/dev/null 2>&1
"$BIN" eval-cf --cf "$TMP/din.gguf" --data "$D" --split valid_small --threads 1 --scores "$TMP/din.tsv" >/dev/null 2>&1
"$BIN" fit-score --ckpt "$CK" --data "$D" --with "$TMP/din.gguf" --json --threads 1 >"$TMP/fit3.json" 2>"$TMP/err"; rc=$?
check "fit-score --with exits 0 ($(head -c 200 "$TMP/err"))" [ "$rc" -eq 0 ]
check "--with: JSON names the fused encoder" python3 -c "
import json,sys; r=json.load(open('$TMP/fit3.json')); e=r['extras']
sys.exit(0 if len(e)==1 and e[0]['kind']=='din' and e[0]['weight']>=0 and r['stored'] else 1)"
check "--with: the fit is at least as good as without" python3 -c "
import json,sys; a=json.load(open('$TMP/fit3.json'))['auc']; b=json.load(open('$TMP/fit.json'))['auc']; sys.exit(0 if a>=b-1e-12 else 1)"
"$BIN" eval --ckpt "$CK" --data "$D" --split valid_small --json --threads 1 --scores "$TMP/fused.tsv" >"$TMP/fused.json"
check "eval's AUC is the fitted one" python3 -c "
import json,sys; r=json.load(open('$TMP/fit3.json')); e=json.load(open('$TMP/fused.json'))
sys.exit(0 if abs(e['auc']-r['auc'])<1e-6 else 1)"
check "every row: eval score = llm + w*cf + v*din (parts scored from the original files)" python3 -c "
import json,sys
r=json.load(open('$TMP/fit3.json')); w=r['cf_weight']; v=r['extras'][0]['weight']
col=lambda f:[float(l.split('\t')[3]) for l in open(f).read().splitlines()[1:]]
L,C,X,F=col('$TMP/llm.tsv'),col('$TMP/cf.tsv'),col('$TMP/din.tsv'),col('$TMP/fused.tsv')
worst=max(abs(f-(l+w*c+v*x)) for l,c,x,f in zip(L,C,X,F))
sys.exit(0 if len(F)==len(L)>0 and worst<1e-4*(1+w+v) else 1)"
"$BIN" info "$CK" >"$TMP/info" 2>&1
check "collm info shows the fused encoder's keys" grep -q "fuse.0.collm.cf.kind" "$TMP/info"
"$BIN" fit-score --ckpt "$CK" --data "$D" --json --threads 1 >"$TMP/fit4.json" 2>/dev/null
check "refit without --with keeps the stored encoder and its weights" python3 -c "
import json,sys; a=json.load(open('$TMP/fit3.json')); b=json.load(open('$TMP/fit4.json'))
sys.exit(0 if b['extras']==a['extras'] and b['cf_weight']==a['cf_weight'] else 1)"
# a checkpoint that holds the whole fine-tuned LLM (stage 1 --full, then stage
# 2) loads with a fused encoder beside the LLM's tensors
run "$BIN" train --stage 2 --init-from "$TMP/s1.gguf" --cf "$TMP/cf.gguf" --data "$D" --out "$TMP/full2.gguf" \
  --lr 1e-2 --batch 8 --steps-per-epoch 2 --max-epochs 1 --eval-rows 16 --threads 2
"$BIN" fit-score --ckpt "$TMP/full2.gguf" --data "$D" --with "$TMP/din.gguf" --json --threads 1 >"$TMP/fit5.json" 2>"$TMP/err"; rc=$?
check "fit-score --with on a full-model checkpoint exits 0 ($(head -c 200 "$TMP/err"))" [ "$rc" -eq 0 ]
"$BIN" eval --ckpt "$TMP/full2.gguf" --data "$D" --split valid_small --json --threads 1 >"$TMP/full2.json" 2>"$TMP/err"; rc=$?
check "eval of that checkpoint exits 0 ($(head -c 200 "$TMP/err"))" [ "$rc" -eq 0 ]
check "its AUC is the fitted one" python3 -c "
import json,sys; r=json.load(open('$TMP/fit5.json')); e=json.load(open('$TMP/full2.json'))
sys.exit(0 if abs(e['auc']-r['auc'])<1e-6 else 1)"

# ctx (context features, fitted on valid_small) fused beside DIN: every row's
# eval score is llm + w*cf + v1*din + v2*ctx; recommend scores with it too.
# ctx has no vectors: as the CF model of stage 2 or of an index it is a
# one-line error
run "$BIN" train-cf --model ctx --data "$D" --out "$TMP/ctx.gguf" --threads 2
"$BIN" eval-cf --cf "$TMP/ctx.gguf" --data "$D" --split valid_small --threads 1 --scores "$TMP/ctx.tsv" >/dev/null 2>&1
cp "$TMP/copy.gguf" "$TMP/ctxck.gguf"
"$BIN" fit-score --ckpt "$TMP/ctxck.gguf" --data "$D" --with "$TMP/din.gguf,$TMP/ctx.gguf" --json --threads 1 >"$TMP/fit6.json" 2>"$TMP/err"; rc=$?
check "fit-score --with din,ctx exits 0 ($(head -c 200 "$TMP/err"))" [ "$rc" -eq 0 ]
"$BIN" eval --ckpt "$TMP/ctxck.gguf" --data "$D" --split valid_small --json --threads 1 --scores "$TMP/fused6.tsv" >/dev/null
check "every row: eval score = llm + w*cf + v1*din + v2*ctx" python3 -c "
import json,sys
r=json.load(open('$TMP/fit6.json')); w=r['cf_weight']; v1,v2=[e['weight'] for e in r['extras']]
col=lambda f:[float(l.split('\t')[3]) for l in open(f).read().splitlines()[1:]]
L,C,X,Z,F=col('$TMP/llm.tsv'),col('$TMP/cf.tsv'),col('$TMP/din.tsv'),col('$TMP/ctx.tsv'),col('$TMP/fused6.tsv')
worst=max(abs(f-(l+w*c+v1*x+v2*z)) for l,c,x,z,f in zip(L,C,X,Z,F))
sys.exit(0 if [e['kind'] for e in r['extras']]==['din','ctx'] and len(F)==len(L)>0 and worst<1e-4*(1+w+v1+v2) else 1)"
run "$BIN" index --ckpt "$TMP/ctxck.gguf" --out "$TMP/ix6.faiss"
run "$BIN" recommend --ckpt "$TMP/ctxck.gguf" --index "$TMP/ix6.faiss" --data "$D" --user 1 --threads 1
# serve's /score gives "score", the pointwise score eval ranks by: for the
# user, history and item of a valid_small row it is that row's eval score
# (fused6.tsv), its llm_score the row's logit without the fusion (llm.tsv);
# an anonymous history (cold for every encoder: they give 0) scores the logit
"$BIN" serve --ckpt "$TMP/ctxck.gguf" --index "$TMP/ix6.faiss" --data "$D" --port 0 --contexts 1 --threads 1 \
  2>"$TMP/serve6.err" &
SPID=$!
served_port "$TMP/serve6.err"
check "serve started on the fused checkpoint ($(head -c 200 "$TMP/serve6.err"))" [ -n "$PORT" ]
check "/score: score = eval's fused row score, llm_score = the row's logit, on 12 rows" python3 -c "
import json,subprocess,sys
rows=[l.split('\t') for l in open('$D/valid_small.tsv').read().splitlines()[1:]][:12]
col=lambda f:[float(l.split('\t')[3]) for l in open(f).read().splitlines()[1:]]
L,F=col('$TMP/llm.tsv'),col('$TMP/fused6.tsv')
worst_f=worst_l=0; fused_differs=0
for k,r in enumerate(rows):
    his=[int(x) for x in r[4].split(',') if x!='']
    req={'user':int(r[0]),'history':his,'items':[int(r[1])]}
    out=json.loads(subprocess.run(['curl','-s','-XPOST','http://127.0.0.1:$PORT/score','-d',json.dumps(req)],
                                  capture_output=True,text=True).stdout)['scores'][0]
    worst_f=max(worst_f,abs(out['score']-F[k])); worst_l=max(worst_l,abs(out['llm_score']-L[k]))
    fused_differs+=abs(out['score']-out['llm_score'])>1e-3
print('worst fused',worst_f,'worst llm',worst_l,'rows where the fusion moved the score',fused_differs)
sys.exit(0 if worst_f<1e-3 and worst_l<1e-3 and fused_differs==len(rows) else 1)"
check "/score: an anonymous history's score is its logit (no encoder knows user -1)" python3 -c "
import json,subprocess,sys
out=json.loads(subprocess.run(['curl','-s','-XPOST','http://127.0.0.1:$PORT/score','-d','{\"history\":[3,5],\"items\":[7,9]}'],
                              capture_output=True,text=True).stdout)['scores']
sys.exit(0 if len(out)==2 and all(abs(o['score']-o['llm_score'])<1e-6 for o in out) else 1)"
kill "$SPID" 2>/dev/null; wait "$SPID" 2>/dev/null
# a refit (train-cf --refit-from --train-split train,valid: each encoder's
# options, seed and best epoch count, no evaluation) stored with the weights
# fitted for the originals (fit-score --keep-weights): every row's eval score
# is llm + w*cf + v1*din' + v2*ctx' with the refits' own scores; eval notes
# that the refits saw valid_small's rows. On train alone a refit is the
# original, score for score.
for k in din ctx; do
  "$BIN" train-cf --refit-from "$TMP/$k.gguf" --data "$D" --train-split train,valid --out "$TMP/r$k.gguf" --quiet --json \
    >"$TMP/r$k.json" 2>"$TMP/err"; rc=$?
  check "train-cf --refit-from $k exits 0 ($(head -c 200 "$TMP/err"))" [ "$rc" -eq 0 ]
  check "the $k refit records train + valid" grep -q '"train_split":"[^"]*train.tsv + [^"]*valid.tsv"' "$TMP/r$k.json"
  "$BIN" eval-cf --cf "$TMP/r$k.gguf" --data "$D" --split valid_small --threads 1 --scores "$TMP/r$k.tsv" >/dev/null 2>"$TMP/err"
  check "eval-cf of the $k refit on valid_small notes it is in-sample" grep -q "in-sample" "$TMP/err"
  "$BIN" eval-cf --cf "$TMP/$k.gguf" --data "$D" --split valid_small --threads 1 >/dev/null 2>"$TMP/err"
  if [ "$k" = ctx ]; then # its weights were fitted on valid_small: in-sample there, partly on valid
    check "eval-cf of the original ctx on valid_small notes its fit rows ($(head -c 200 "$TMP/err"))" \
      grep -q "fitted its weights on .*valid_small.tsv's rows: its figures there are in-sample" "$TMP/err"
    "$BIN" eval-cf --cf "$TMP/$k.gguf" --data "$D" --split valid --threads 1 >/dev/null 2>"$TMP/err"
    check "eval-cf of the original ctx on valid: partly in-sample ($(head -c 200 "$TMP/err"))" \
      grep -q "fitted its weights on .*valid_small.tsv, part of .*valid.tsv's rows: its figures there are partly in-sample" "$TMP/err"
    "$BIN" eval-cf --cf "$TMP/$k.gguf" --data "$D" --split test --threads 1 >/dev/null 2>"$TMP/err"
    check "eval-cf of the original ctx on another split notes nothing" sh -c "! grep -q in-sample '$TMP/err'"
  else
    check "eval-cf of the original $k notes nothing" sh -c "! grep -q in-sample '$TMP/err'"
  fi
  "$BIN" eval-cf --cf "$TMP/r$k.gguf" --data "$PWD/$D/../data" --split valid --threads 1 >/dev/null 2>"$TMP/err"
  check "the $k refit's note: the same rows by another path" grep -q "in-sample" "$TMP/err"
  run "$BIN" train-cf --refit-from "$TMP/$k.gguf" --data "$D" --out "$TMP/s$k.gguf" --quiet
  "$BIN" eval-cf --cf "$TMP/s$k.gguf" --data "$D" --split valid_small --threads 1 --scores "$TMP/s$k.tsv" >/dev/null 2>&1
  check "a $k refit on train alone scores as the original" cmp -s "$TMP/s$k.tsv" "$TMP/$k.tsv"
done
cp "$TMP/ctxck.gguf" "$TMP/refit.gguf"
"$BIN" fit-score --ckpt "$TMP/refit.gguf" --data "$D" --with "$TMP/rdin.gguf,$TMP/rctx.gguf" --keep-weights --json \
  --threads 1 >"$TMP/fit7.json" 2>"$TMP/err"; rc=$?
check "fit-score --keep-weights exits 0 ($(head -c 200 "$TMP/err"))" [ "$rc" -eq 0 ]
"$BIN" eval --ckpt "$TMP/refit.gguf" --data "$D" --split valid_small --json --threads 1 --scores "$TMP/fused7.tsv" \
  >/dev/null 2>"$TMP/err"
check "eval of the refit checkpoint on valid_small notes it is in-sample" grep -q "fused din (extra 1).*in-sample" "$TMP/err"
check "--keep-weights: fit6's weights; every row = llm + w*cf + v1*din' + v2*ctx'" python3 -c "
import json,sys
a=json.load(open('$TMP/fit6.json')); r=json.load(open('$TMP/fit7.json'))
w=a['cf_weight']; v1,v2=[e['weight'] for e in a['extras']]
col=lambda f:[float(l.split('\t')[3]) for l in open(f).read().splitlines()[1:]]
L,C,X,Z,F=col('$TMP/llm.tsv'),col('$TMP/cf.tsv'),col('$TMP/rdin.tsv'),col('$TMP/rctx.tsv'),col('$TMP/fused7.tsv')
worst=max(abs(f-(l+w*c+v1*x+v2*z)) for l,c,x,z,f in zip(L,C,X,Z,F))
same=r['cf_weight']==w and [e['weight'] for e in r['extras']]==[v1,v2] and r['kept_weights'] is True
sys.exit(0 if same and len(F)==len(L)>0 and worst<1e-4*(1+w+v1+v2) and col('$TMP/rdin.tsv')!=col('$TMP/din.tsv') else 1)"
cp "$TMP/refit.gguf" "$TMP/refit_copy.gguf"
expect_error "--keep-weights with the kinds in another order" "is ctx, the checkpoint's extra 1 is din" "$BIN" fit-score \
  --ckpt "$TMP/refit.gguf" --data "$D" --with "$TMP/rctx.gguf,$TMP/rdin.gguf" --keep-weights
expect_error "--keep-weights with one encoder for two" "holds 2 extra encoders, --with gives 1" "$BIN" fit-score \
  --ckpt "$TMP/refit.gguf" --data "$D" --with "$TMP/rdin.gguf" --keep-weights
expect_error "--keep-weights without --with" "give --with" "$BIN" fit-score --ckpt "$TMP/refit.gguf" --data "$D" --keep-weights
check "the refused --keep-weights runs leave the checkpoint byte-identical" cmp -s "$TMP/refit.gguf" "$TMP/refit_copy.gguf"
expect_error "--refit-from with a model option" "takes --lr from the model" "$BIN" train-cf --refit-from "$TMP/din.gguf" \
  --data "$D" --out "$TMP/x.gguf" --lr 1
expect_error "--train-split valid with valid_small" "valid_small is part of valid" "$BIN" train-cf --model mfbias --data "$D" \
  --out "$TMP/x.gguf" --train-split train,valid,valid_small
run "$BIN" train-cf --model din --data "$D" --out "$TMP/din7.gguf" --dim 12 --max-epochs 2 --threads 2 --seed 7
expect_error "--keep-weights with a DIN that is not a refit of the stored one" "is not a refit of the checkpoint's extra 1" \
  "$BIN" fit-score --ckpt "$TMP/refit.gguf" --data "$D" --with "$TMP/din7.gguf,$TMP/rctx.gguf" --keep-weights
check "that refusal too leaves the checkpoint byte-identical" cmp -s "$TMP/refit.gguf" "$TMP/refit_copy.gguf"
expect_error "--train-split train,valid early-stopped on valid" "evaluation split valid is part of the training rows" \
  "$BIN" train-cf --model mfbias --data "$D" --out "$TMP/x.gguf" --train-split train,valid
expect_error "ctx fitted on valid_small inside train,valid" "evaluation split valid_small is part of the training rows" \
  "$BIN" train-cf --model ctx --data "$D" --out "$TMP/x.gguf" --train-split train,valid
run "$BIN" train-cf --model mfbias --data "$D" --out "$TMP/tv.gguf" --train-split train,valid --eval-split none --max-epochs 2 --quiet
expect_error "a refit of a refit (no best epoch)" "no best epoch" "$BIN" train-cf --refit-from "$TMP/rdin.gguf" --data "$D" \
  --out "$TMP/x.gguf" --quiet
expect_error "ctx as stage 2's CF model" 'no user or item vectors' "$BIN" train --stage 2 --base "$TMP/base.gguf" \
  --cf "$TMP/ctx.gguf" --data "$D" --out "$TMP/ctx2.gguf" --batch 8 --steps-per-epoch 1 --max-epochs 1 --threads 1
expect_error "ctx as an index's CF model" 'no user or item vectors' "$BIN" index --cf "$TMP/ctx.gguf" --out "$TMP/ix7.faiss"
expect_error "ctx with nothing to fit on" 'nothing to fit on' "$BIN" train-cf --model ctx --data "$D" --out "$TMP/c.gguf" --quiet \
  --eval-split none
expect_error "ctx fitted on train" 'teaches nothing' "$BIN" train-cf --model ctx --data "$D" --out "$TMP/c.gguf" --quiet \
  --eval-split train
# (synth's rows leave a ctx feature constant over valid: without L2 the Newton system is singular)
expect_error "ctx without weight decay" 'not positive definite .*use a positive --weight-decay' "$BIN" train-cf \
  --model ctx --data "$D" --out "$TMP/c.gguf" --quiet --eval-split valid --weight-decay 0
cp "$CK" "$TMP/fused_copy.gguf"
expect_error "--with a file that is not a CF model" 'base.gguf' "$BIN" fit-score --ckpt "$CK" --data "$D" --with "$TMP/base.gguf"
check "a failed --with leaves the checkpoint byte-identical" cmp -s "$CK" "$TMP/fused_copy.gguf"
expect_error "--with five encoders" 'at most 4' "$BIN" fit-score --ckpt "$CK" --data "$D" \
  --with "$TMP/din.gguf,$TMP/din.gguf,$TMP/din.gguf,$TMP/din.gguf,$TMP/din.gguf"
expect_error "--with an empty list" 'at least one' "$BIN" fit-score --ckpt "$CK" --data "$D" --with ","

# a checkpoint whose fusion keys or fused encoders are malformed (edited with an
# independent GGUF writer) is a one-line error at load, in eval and recommend,
# never a crash or a silently dropped encoder
EDIT="/usr/bin/python3 $(dirname "$0")/gguf_edit.py"
run "$BIN" index --ckpt "$CK" --out "$TMP/ix.faiss"
"$BIN" eval --ckpt "$CK" --data "$D" --split valid_small --threads 1 >/dev/null 2>"$TMP/err"; rc=$?
check "the fused checkpoint itself loads ($(head -c 200 "$TMP/err"))" [ "$rc" -eq 0 ]
bad_fusion() { # NAME PATTERN EDIT...: eval and recommend refuse the edited checkpoint
  local name=$1 pattern=$2; shift 2
  $EDIT "$CK" "$TMP/$name.gguf" "$@" || { check "gguf_edit $name" false; return; }
  expect_error "eval, $name" "$pattern" "$BIN" eval --ckpt "$TMP/$name.gguf" --data "$D" --split valid_small --threads 1
  expect_error "recommend, $name" "$pattern" "$BIN" recommend --ckpt "$TMP/$name.gguf" --index "$TMP/ix.faiss" \
    --data "$D" --user 1 --threads 1
}
bad_fusion count_negative 'collm.score.extra.count = -1 is outside \[0, 4\]' --set collm.score.extra.count i32 -1
bad_fusion count_five 'collm.score.extra.count = 5 is outside \[0, 4\]' --set collm.score.extra.count u32 5
bad_fusion count_string "key 'collm.score.extra.count' has type str" --set collm.score.extra.count str 1
bad_fusion count_two 'count = 2, but fused encoder 1 is missing \(no key collm.score.extra.1.weight\)' \
  --set collm.score.extra.count u32 2
bad_fusion count_two_weighted 'count = 2, but fused encoder 1 is missing \(no key fuse.1.collm.cf.kind\)' \
  --set collm.score.extra.count u32 2 --set collm.score.extra.1.weight f32 1
bad_fusion weight_nan 'collm.score.extra.0.weight = nan is outside' --set collm.score.extra.0.weight f32 nan
bad_fusion weight_inf 'collm.score.extra.0.weight = inf is outside' --set collm.score.extra.0.weight f32 inf
bad_fusion weight_negative 'collm.score.extra.0.weight = -1 is outside' --set collm.score.extra.0.weight f32 -1
bad_fusion weight_string "key 'collm.score.extra.0.weight' has type str" --set collm.score.extra.0.weight str 1
bad_fusion weight_missing 'fused encoder 0 is missing \(no key collm.score.extra.0.weight\)' --del collm.score.extra.0.weight
bad_fusion encoder_missing 'fused encoder 0 is missing \(no key fuse.0.collm.cf.kind\)' --del fuse.0. --drop-tensors fuse.0.
bad_fusion encoder_no_tensors 'fused encoder 0 \(namespace fuse.0.\).*no tensor din.user_embd' --drop-tensors fuse.0.
bad_fusion encoder_one_tensor 'fused encoder 0 \(namespace fuse.0.\).*no tensor din.att1.weight' \
  --drop-tensors fuse.0.din.att1.weight
bad_fusion encoder_kind 'fused encoder 0 .*unknown collm.cf.kind .nope.' --set fuse.0.collm.cf.kind str nope
bad_fusion encoder_shape 'fused encoder 0 .*collm.cf.n_items = 4000000000 out of range' \
  --set fuse.0.collm.cf.n_items u32 4000000000
# a NaN or infinite weight in the checkpoint's own tensors (FECE, CF tables) or
# a fused encoder's is refused naming the file and tensor (eval printed AUC nan, exit 0)
bad_fusion fece_nan "fece_nan.gguf: tensor 'fece.b2' element 3 is nan" --poke fece.b2 3 nan
bad_fusion fece_inf "tensor 'fece.w1' element 0 is inf" --poke fece.w1 0 inf
bad_fusion table_nan "tensor 'cf.item_embd' element 7 is nan" --poke cf.item_embd 7 nan
bad_fusion encoder_nan 'fused encoder 0 .*din.user_embd: non-finite value' --poke fuse.0.din.user_embd 1 nan

expect_error "stage-1 checkpoint has no CF tables" 'no collaborative tables' "$BIN" fit-score --ckpt "$TMP/s1.gguf" --data "$D" --threads 1
expect_error "missing --data" 'data' "$BIN" fit-score --ckpt "$CK"
expect_error "bad --batch" 'batch' "$BIN" fit-score --ckpt "$CK" --data "$D" --batch 0
expect_error "not a checkpoint" 'base.gguf' "$BIN" fit-score --ckpt "$TMP/base.gguf" --data "$D"
finish
