#!/usr/bin/env bash
# Crash safety of `collm train`: a run killed with SIGKILL at random moments
# and restarted with --resume until it completes ends with the same
# checkpoint and training state, byte for byte, as an uninterrupted run.
set -u
BIN=${COLLM_BIN:-build/collm}
SHARED=${COLLM_SHARED:-../shared}
T=${COLLM_TEST_TMP:-build/test-tmp}/resume
rm -rf "$T" && mkdir -p "$T"
pass=0; fail=0
. "$(dirname "$0")/args.sh"
ok() { if [ "$1" -eq 0 ]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $2"; fi; }

$BIN synth --users 40 --items 60 --seed 5 --out "$T/data" >/dev/null; ok $? "synth"
$BIN init-model --arch llama --vocab-from "$SHARED/testvectors/tokenizer/ggml-vocab-llama-spm.gguf" --n-embd 32 \
  --n-layer 2 --n-head 2 --n-ff 64 --seed 3 --out "$T/base.gguf" >/dev/null; ok $? "init-model"
$BIN train-cf --model mf --data "$T/data" --out "$T/mf.gguf" --dim 16 --max-epochs 20 >/dev/null 2>&1; ok $? "train-cf"

args=(train --stage 2 --train-llm --base "$T/base.gguf" --cf "$T/mf.gguf" --data "$T/data" --batch 8
      --steps-per-epoch 6 --max-epochs 10 --patience 100 --eval-rows 48 --warmup-steps 5 --threads 2 --quiet)
t0=$(date +%s%N)
"$BIN" "${args[@]}" --out "$T/straight.gguf" >/dev/null 2>&1; ok $? "uninterrupted run"
# kill delays scale with this run's wall time (x4-5 under ASan): up to a third of it
max_ms=$(( ($(date +%s%N) - t0) / 3000000 )); [ "$max_ms" -lt 100 ] && max_ms=100

# interrupted: kill -9 after a random delay, then --resume, until a run ends by itself.
# The load on a shared machine changes between the timing above and the attempts, so
# the schedule does not depend on it: the first attempt is killed early (a kill always
# lands), and after 30 attempts the run is left to finish (it always completes).
kills=0; done_ok=1
for attempt in $(seq 1 31); do
  "$BIN" "${args[@]}" --out "$T/killed.gguf" --resume >/dev/null 2>&1 &
  pid=$!
  if [ "$attempt" -eq 31 ]; then wait "$pid"; done_ok=$?; break; fi
  if [ "$attempt" -eq 1 ]; then delay_ms=$(( 10 + RANDOM % 40 )); else delay_ms=$(( 10 + RANDOM % max_ms )); fi
  sleep "$(( delay_ms / 1000 )).$(printf '%03d' $(( delay_ms % 1000 )))"
  if kill -9 "$pid" 2>/dev/null; then
    wait "$pid" 2>/dev/null; kills=$((kills + 1))
  else
    wait "$pid"; done_ok=$?; break
  fi
done
echo "killed $kills times before the run completed"
ok $done_ok "interrupted run completed"
[ "$kills" -gt 0 ]; ok $? "at least one kill landed mid-run"
ls "$T"/killed.gguf.tmp.* >/dev/null 2>&1 && echo "(a torn temp file was left behind by a kill; the real files are untouched)"
cmp -s "$T/straight.gguf" "$T/killed.gguf"; ok $? "best checkpoint identical to the uninterrupted run"
cmp -s "$T/straight.gguf.resume" "$T/killed.gguf.resume"; ok $? "final training state identical"

# bad input: resuming with other settings is refused with a clear message
args_without --batch
out=$("$BIN" "${a[@]}" --out "$T/killed.gguf" --resume --batch 4 2>&1); rc=$?
[ $rc -ne 0 ] && echo "$out" | grep -q "other settings"; ok $? "resume with another batch size refused"
out=$("$BIN" "${args[@]}" --out "$T/killed.gguf" --resume --batch-order grouped 2>&1); rc=$?
[ $rc -ne 0 ] && echo "$out" | grep -q "shuffled batches; this run asks for grouped"; ok $? "resume with the other batch order refused"
# another run's state (the same --out, another base, learning rate, CF model or data) is not
# continued as if it were this run's (a finished one was taken for this run's result)
"$BIN" init-model --arch llama --vocab-from "$SHARED/testvectors/tokenizer/ggml-vocab-llama-spm.gguf" --n-embd 32 \
  --n-layer 2 --n-head 2 --n-ff 64 --seed 4 --out "$T/base4.gguf" >/dev/null; ok $? "init-model (another seed)"
args_without --base
out=$("$BIN" "${a[@]}" --out "$T/killed.gguf" --resume --base "$T/base4.gguf" 2>&1); rc=$?
[ $rc -ne 0 ] && [ "$(echo "$out" | wc -l)" -eq 1 ] && echo "$out" | grep -q "a run on another base model"
ok $? "resume with another base refused ($out)"
out=$("$BIN" "${args[@]}" --out "$T/killed.gguf" --resume --lr 5e-2 2>&1); rc=$?
[ $rc -ne 0 ] && echo "$out" | grep -q "another --lr (0.001; this run: 0.05)"; ok $? "resume with another --lr refused ($out)"
cp "$T/mf.gguf" "$T/mf-copy.gguf"
args_without --cf
out=$("$BIN" "${a[@]}" --out "$T/killed.gguf" --resume --cf "$T/mf-copy.gguf" 2>&1); rc=$?
[ $rc -ne 0 ] && echo "$out" | grep -q "another --cf"; ok $? "resume with another --cf refused ($out)"
out=$("$BIN" "${args[@]}" --out "$T/killed.gguf" --resume --eval-split valid 2>&1); rc=$?
[ $rc -ne 0 ] && echo "$out" | grep -q "another --eval-split ('valid_small'; this run: 'valid')"
ok $? "resume with another --eval-split refused ($out)"
# a plausible but changed value (a flipped bit in a weight or an Adam moment) passes every range
# check: the state's checksum refuses it (the run continued from it silently)
for poke in "optim.0.param 5 0.25" "optim.2.m 0 1e-3" "optim.2.v 3 0"; do
  cp "$T/killed.gguf.resume" "$T/poked.gguf.resume" && cp "$T/killed.gguf" "$T/poked.gguf"
  python3 "$(dirname "$0")/gguf_edit.py" "$T/killed.gguf.resume" "$T/poked.gguf.resume" --poke $poke; ok $? "gguf_edit --poke $poke"
  args_without --max-epochs
  out=$("$BIN" "${a[@]}" --max-epochs 11 --out "$T/poked.gguf" --resume 2>&1); rc=$?
  [ $rc -ne 0 ] && [ "$(echo "$out" | wc -l)" -eq 1 ] && echo "$out" | grep -q "poked.gguf.resume: the training state does not match its checksum"
  ok $? "resume from a state with $poke changed refused ($out)"
done
cp "$T/killed.gguf.resume" "$T/poked.gguf.resume" && cp "$T/killed.gguf" "$T/poked.gguf"
out=$("$BIN" "${a[@]}" --max-epochs 11 --out "$T/poked.gguf" --resume 2>&1); ok $? "the unchanged copy resumes ($out)"

# a fresh run on the same --out that dies in its first epoch leaves the last run's files as they
# were, its log too: a --resume of that state then logs epochs 1.. (the log was emptied at the
# start, and the resumed run's log began at epoch 11 after nothing)
args_without --max-epochs
"$BIN" "${a[@]}" --max-epochs 10 --out "$T/logged.gguf" >/dev/null 2>&1; ok $? "a run of 10 epochs"
args_without --lr
"$BIN" "${a[@]}" --out "$T/logged.gguf" --lr 1e30 --warmup-lr 1e30 >/dev/null 2>&1; [ $? -eq 1 ]; ok $? "a fresh run that diverges in its first epoch"
[ "$(wc -l <"$T/logged.gguf.log.jsonl")" -eq 10 ]; ok $? "the last run's log kept ($(wc -l <"$T/logged.gguf.log.jsonl") lines)"
args_without --max-epochs
"$BIN" "${a[@]}" --max-epochs 11 --out "$T/logged.gguf" --resume >/dev/null 2>&1; ok $? "its state resumed"
[ "$(grep -o '"epoch":[0-9]*' "$T/logged.gguf.log.jsonl" | cut -d: -f2 | tr '\n' ' ')" = "1 2 3 4 5 6 7 8 9 10 11 " ]
ok $? "the log holds epochs 1..11 ($(grep -o '"epoch":[0-9]*' "$T/logged.gguf.log.jsonl" | tr '\n' ' '))"
"$BIN" "${args[@]}" --out "$T/logged.gguf" >/dev/null 2>&1; ok $? "a fresh run over it"
[ "$(wc -l <"$T/logged.gguf.log.jsonl")" -eq 10 ]; ok $? "a fresh run's log starts anew"

# a state of another adapter layout, scale, template or answer token: the trainable tensors match by
# size alone, so a q,v adapter's state was continued by a k,o run (training the q weights as k's)
s1=(train --stage 1 --base "$T/base.gguf" --data "$T/data" --batch 8 --steps-per-epoch 2 --max-epochs 2 --eval-rows 16
    --warmup-steps 5 --threads 2 --quiet --out "$T/s1.gguf")
"$BIN" "${s1[@]}" --lora-targets q,v >/dev/null 2>&1; ok $? "stage 1 run (LoRA q,v)"
for case in "--lora-targets k,o|other --lora-targets (q,v; this run: k,o)" \
            "--lora-targets q,v --lora-alpha 32|another --lora-alpha or --lora-dropout (16, 0.05; this run: 32, 0.05)" \
            "--lora-targets q,v --lora-dropout 0.2|another --lora-alpha or --lora-dropout" \
            "--lora-targets q,v --template collm_movie|another prompt template" \
            "--lora-targets q,v --answer No|another answer token"; do
  opts=${case%%|*}; want=${case#*|}
  out=$("$BIN" "${s1[@]}" $opts --resume 2>&1); rc=$?
  [ $rc -ne 0 ] && [ "$(echo "$out" | wc -l)" -eq 1 ] && echo "$out" | grep -qF "s1.gguf.resume was written by a run with $want"
  ok $? "resume with $opts refused ($out)"
done
"$BIN" "${s1[@]}" --lora-targets q,v --resume >/dev/null 2>&1; ok $? "stage 1 state resumes with its own options"
out=$(cd "$T" && "$OLDPWD/$BIN" "${args[@]/#$T\//}" --out killed.gguf --resume 2>&1); rc=$?
ok $rc "the same run by relative paths from another folder resumes ($out)"
out=$("$BIN" "${args[@]}" --out "$T/x.gguf" --batch-order sorted 2>&1); rc=$?
[ $rc -ne 0 ] && [ "$(echo "$out" | wc -l)" -eq 1 ] && echo "$out" | grep -q "grouped or shuffled"; ok $? "bad --batch-order: one-line error"

# --batch-order grouped runs one user's common prompt once a batch, so the
# forward computes less per sample than with shuffled batches (the default)
"$BIN" "${args[@]}" --out "$T/grouped.gguf" --batch-order grouped >/dev/null 2>&1; ok $? "grouped run"
gflop() { head -1 "$1" | grep -o '"forward_gflop_per_sample":[0-9.e-]*' | cut -d: -f2; }
g=$(gflop "$T/grouped.gguf.log.jsonl"); s=$(gflop "$T/straight.gguf.log.jsonl")
awk -v g="$g" -v s="$s" 'BEGIN { exit !(g > 0 && s > 0 && g < 0.9 * s) }'; ok $? "grouped batches compute less a sample ($g against $s GFLOP)"
cmp -s "$T/straight.gguf" "$T/grouped.gguf"; [ $? -eq 1 ]; ok $? "grouped batches train another model"
out=$("$BIN" train --stage 1 --base "$T/nope.gguf" --data "$T/data" --out "$T/x.gguf" 2>&1); rc=$?
[ $rc -ne 0 ] && [ "$(echo "$out" | wc -l)" -eq 1 ] && echo "$out" | grep -q "nope.gguf"; ok $? "missing base: one-line error"
out=$("$BIN" train --stage 3 --data "$T/data" --out "$T/x.gguf" 2>&1); rc=$?
[ $rc -ne 0 ]; ok $? "bad stage rejected"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
