#!/usr/bin/env bash
# `collm train` and friends on bad input and bad runs (issue 8): every invalid
# option fails before any work, the output folder is checked up front, a run
# whose validation AUC is undefined or whose loss diverges fails instead of
# "succeeding" without a checkpoint, the summary and the log are strict JSON
# (NaN as null, paths escaped), stale temp files of killed saves go, and no
# --out or --log may name one of the run's inputs.
# Prints "N passed, N failed".
set -u
. "$(dirname "$0")/lib.sh" train_checks
T=$TMP
rm -rf "$T" && mkdir -p "$T"

"$BIN" synth --users 40 --items 60 --seed 5 --out "$T/data" >/dev/null; check "synth" [ $? -eq 0 ]
"$BIN" init-model --arch llama --vocab-from "$SHARED/testvectors/tokenizer/ggml-vocab-llama-spm.gguf" --n-embd 32 \
  --n-layer 1 --n-head 2 --n-ff 64 --seed 3 --out "$T/base.gguf" >/dev/null; check "init-model" [ $? -eq 0 ]
args=(train --stage 1 --lora-rank 4 --base "$T/base.gguf" --data "$T/data" --batch 8 --steps-per-epoch 2
      --max-epochs 2 --eval-rows 40 --warmup-steps 0 --threads 2)

# strict JSON: python's json accepts NaN/Infinity unless told otherwise
strict_json() { python3 -c '
import json, sys
def bad(c): raise ValueError("non-JSON constant " + c)
for line in sys.stdin:
    if line.strip(): json.loads(line, parse_constant=bad)
'; }

# --- invalid options: exit 1, one line naming the option, nothing written
bad_opt() { # WHAT PATTERN ARGS...: the run must not create $T/never.gguf
  local what=$1 pattern=$2; shift 2
  expect_error "$what" "$pattern" "$@"
  check "$what: nothing written" [ ! -e "$T/never.gguf" ]
}
bad_opt "train --lr inf" "--lr.*finite" "$BIN" "${args[@]}" --out "$T/never.gguf" --lr inf
bad_opt "train --lr nan" "--lr.*finite" "$BIN" "${args[@]}" --out "$T/never.gguf" --lr nan
bad_opt "train --lr -1" "--lr.*> 0" "$BIN" "${args[@]}" --out "$T/never.gguf" --lr -1
bad_opt "train --clip nan" "--clip.*finite" "$BIN" "${args[@]}" --out "$T/never.gguf" --clip nan
bad_opt "train --clip -1" "--clip" "$BIN" "${args[@]}" --out "$T/never.gguf" --clip -1
bad_opt "train --min-lr -1e-3" "--min-lr" "$BIN" "${args[@]}" --out "$T/never.gguf" --min-lr -1e-3
bad_opt "train --weight-decay inf" "--weight-decay" "$BIN" "${args[@]}" --out "$T/never.gguf" --weight-decay inf
bad_opt "train --lora-dropout 1" "--lora-dropout" "$BIN" "${args[@]}" --out "$T/never.gguf" --lora-dropout 1
args_without --eval-rows
bad_opt "train --eval-rows -1" "--eval-rows" "$BIN" "${a[@]}" --out "$T/never.gguf" --eval-rows -1
args_without --batch
bad_opt "train --batch 99999999999" "--batch" "$BIN" "${a[@]}" --out "$T/never.gguf" --batch 99999999999
args_without --stage
bad_opt "train --stage 3" "--stage" "$BIN" "${a[@]}" --out "$T/never.gguf" --stage 3
args_without --threads
for v in 0 -1 abc 2000; do
  bad_opt "train --threads $v" "--threads" "$BIN" "${a[@]}" --out "$T/never.gguf" --threads "$v"
done
bad_opt "train-cf --lr inf" "--lr" "$BIN" train-cf --data "$T/data" --out "$T/never.gguf" --lr inf
bad_opt "train-cf --threads 0" "--threads" "$BIN" train-cf --data "$T/data" --out "$T/never.gguf" --threads 0
bad_opt "synth --scale nan" "--scale" "$BIN" synth --out "$T/never.gguf" --scale nan
bad_opt "prepare --seed -1" "--seed" "$BIN" prepare --source ml-1m --ratings x --movies y --out "$T/never.gguf" --seed -1
bad_opt "eval --batch 0" "--batch" "$BIN" eval --ckpt "$T/none.gguf" --data "$T/data" --split valid --batch 0
expect_error "info --threads abc" "--threads" "$BIN" info "$T/base.gguf" --threads abc
expect_error "tokenize --threads -1" "--threads" "$BIN" tokenize --model "$T/base.gguf" --text hi --threads -1
expect_error "eval-cf --threads 0" "--threads" "$BIN" eval-cf --cf "$T/none.gguf" --data "$T/data" --threads 0

bad_opt "train-cf --max-epochs 0 (an untrained model)" "max-epochs >= 1" "$BIN" train-cf --data "$T/data" \
  --out "$T/never.gguf" --max-epochs 0

# --- an output that is one of the run's inputs: refused before anything is opened for writing
# (--out over --base replaced the base; a --log over the CF model or a split truncated it)
"$BIN" train-cf --model mf --data "$T/data" --out "$T/mf.gguf" --dim 8 --max-epochs 2 >/dev/null 2>&1
check "train-cf for the input checks" [ -s "$T/mf.gguf" ]
sums() { md5sum "$T/base.gguf" "$T/mf.gguf" "$T/data/train.tsv" | cut -d' ' -f1 | tr '\n' ' '; }
before=$(sums)
s2=(train --stage 2 --base "$T/base.gguf" --cf "$T/mf.gguf" --data "$T/data" --batch 8 --steps-per-epoch 2 --max-epochs 1
    --eval-rows 16 --threads 1 --quiet)
expect_error "train --out = --base" "--out .*base.gguf is the --base file" "$BIN" "${s2[@]}" --out "$T/base.gguf"
expect_error "train --out = --cf (by another path)" "--out .*mf.gguf is the --cf file" "$BIN" "${s2[@]}" \
  --out "$T/../$(basename "$T")/mf.gguf"
expect_error "train --log = --cf" "--log .*mf.gguf is the --cf file" "$BIN" "${s2[@]}" --out "$T/o.gguf" --log "$T/mf.gguf"
expect_error "train --log = a split" "--log .*train.tsv is the dataset's train.tsv" "$BIN" "${s2[@]}" --out "$T/o.gguf" \
  --log "$T/data/train.tsv"
expect_error "train --log = --out" "--log .*o.gguf is also the --out file" "$BIN" "${s2[@]}" --out "$T/o.gguf" --log "$T/o.gguf"
expect_error "train-cf --log = --refit-from" "--log .*mf.gguf is the --refit-from file" "$BIN" train-cf \
  --refit-from "$T/mf.gguf" --data "$T/data" --out "$T/r.gguf" --log "$T/mf.gguf"
expect_error "train-cf --out = a split" "--out .*valid.tsv is the dataset's valid.tsv" "$BIN" train-cf --model mf \
  --data "$T/data" --out "$T/data/valid.tsv"
check "every input is as it was" [ "$(sums)" = "$before" ]

# --- --out into a missing folder: one line, before the data is encoded (no progress lines)
expect_error "train --out missing/dir" "output folder .*missing.* does not exist" \
  "$BIN" "${args[@]}" --out "$T/missing/dir/c.gguf"

expect_error "train-cf --out missing/dir" "output folder .*missing.* does not exist" \
  "$BIN" train-cf --data "$T/data" --out "$T/missing/dir/mf.gguf" --max-epochs 1

# --- an evaluation split with one label: the AUC is undefined, no checkpoint could be chosen
awk -F'\t' 'NR == 1 || $3 == 1' "$T/data/valid_small.tsv" >"$T/all_pos.tsv"
"$BIN" "${args[@]}" --quiet --eval-split "$T/all_pos.tsv" --out "$T/onelabel.gguf" >"$T/out" 2>"$T/err"; rc=$?
check "one-label eval split: exit 1 (got $rc)" [ "$rc" -eq 1 ]
check "one-label eval split: says why ($(cat "$T/err"))" grep -q "all positive" "$T/err"
check "one-label eval split: no checkpoint claimed on stdout" [ ! -s "$T/out" ]

# --- a diverging run stops on the first non-finite loss
args_without --max-epochs
"$BIN" "${a[@]}" --quiet --lr 1e30 --clip 0 --max-epochs 5 --out "$T/diverge.gguf" >"$T/out" 2>"$T/err"; rc=$?
check "diverging run: exit 1 (got $rc)" [ "$rc" -eq 1 ]
check "diverging run: names the loss ($(cat "$T/err"))" grep -Eq "loss is (NaN|infinite)" "$T/err"
check "diverging run: no checkpoint claimed" [ ! -s "$T/out" ]

# --- strict JSON: a path with a quote and a backslash, no evaluation (UAUC undefined: null)
mkdir -p "$T/we\"ird\\dir"
out_path="$T/we\"ird\\dir/c.gguf"
# stale temp files of killed saves of this output: removed at start (dead pid), a live writer's kept
sleep 0 & dead=$!; wait $dead
printf 'x' >"$out_path.resume.tmp.$dead"
printf 'x' >"$out_path.tmp.$dead.AbC123"
printf 'x' >"$out_path.resume.tmp.1.XyZ789"
"$BIN" "${args[@]}" --json --eval-split "" --out "$out_path" >"$T/out" 2>"$T/err"; rc=$?
check "no-eval run: exit 0 (got $rc: $(tail -n 1 "$T/err"))" [ "$rc" -eq 0 ]
check "summary is strict JSON ($(cat "$T/out"))" strict_json <"$T/out"
check "summary names the checkpoint path exactly" python3 -c '
import json, sys
d = json.loads(open(sys.argv[1]).read())
assert d["checkpoint"] == sys.argv[2] and d["valid_auc"] is None and d["valid_uauc"] is None, d' "$T/out" "$out_path"
check "checkpoint written" [ -s "$out_path" ]
check "log is strict JSON lines" strict_json <"$out_path.log.jsonl"
check "log has 2 lines" [ "$(wc -l <"$out_path.log.jsonl")" -eq 2 ]
check "stale temps of a dead pid removed" [ ! -e "$out_path.resume.tmp.$dead" ] && [ ! -e "$out_path.tmp.$dead.AbC123" ]
check "a live writer's temp kept" [ -e "$out_path.resume.tmp.1.XyZ789" ]
check "removal reported" grep -q "removed 2 temporary file" "$T/err"

finish
