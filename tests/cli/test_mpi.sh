#!/usr/bin/env bash
# Data parallelism over MPI (docs/scaling.md): `mpirun -np 2 collm train`
# (and train-cf mf / mfbias / lightgcn) against one process with the same
# global batch.
#  * equivalence: the same loss curve (training log) and the same final
#    weights within float tolerance (the gradient sum of two ranks adds the
#    halves of the batch in another order than one process does);
#  * a kill -9 of one rank ends the job with an error naming the signal and
#    leaves a state that resumes, here with another number of ranks (1 and
#    2), to the same weights as an uninterrupted run;
#  * sharded evaluation: `mpirun -np 2 collm eval --json` (and eval-topk)
#    prints one JSON line with the keys and figures of one process.
# Skips (never fails) when collm was built without MPI or mpirun is absent.
. "$(dirname "$0")/lib.sh" mpi
GGUF_DIFF="/usr/bin/python3 $(dirname "$0")/gguf_diff.py"
if ! "$BIN" version --json | grep -q '"mpi":true'; then
  echo "skipped: collm built without MPI (install libopenmpi-dev: scripts/setup.sh)"; finish; exit $?
fi
if ! command -v mpirun >/dev/null 2>&1; then
  echo "skipped: no mpirun on PATH (install openmpi-bin: scripts/setup.sh)"; finish; exit $?
fi
# OpenMPI refuses root unless told; the tests run as whoever runs the suite
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# ranks waiting in a collective yield the core instead of polling it (the machine is shared)
export OMPI_MCA_mpi_yield_when_idle=1
# OpenMPI's own allocations live until exit: not collm's leaks (sanitize builds)
export LSAN_OPTIONS="suppressions=$(cd "$(dirname "$0")/.." && pwd)/mpi_lsan.supp:${LSAN_OPTIONS:-}"
MPIRUN=(mpirun -np 2 --oversubscribe --bind-to none)
rm -rf "$TMP" && mkdir -p "$TMP"

"$BIN" synth --users 40 --items 60 --seed 5 --out "$TMP/data" >/dev/null
check "synth" [ $? -eq 0 ]
"$BIN" init-model --arch llama --vocab-from "$SHARED/testvectors/tokenizer/ggml-vocab-llama-spm.gguf" --n-embd 32 \
  --n-layer 2 --n-head 2 --n-ff 64 --seed 3 --out "$TMP/base.gguf" >/dev/null
check "init-model" [ $? -eq 0 ]
"$BIN" train-cf --model mf --data "$TMP/data" --out "$TMP/mf.gguf" --dim 16 --max-epochs 20 >/dev/null 2>&1
check "train-cf" [ $? -eq 0 ]

# stage 2 with the LLM trained too: every kind of trainable tensor (FECE, all LLM weights)
args=(train --stage 2 --train-llm --base "$TMP/base.gguf" --cf "$TMP/mf.gguf" --data "$TMP/data" --batch 8
      --steps-per-epoch 6 --max-epochs 4 --patience 100 --eval-rows 48 --warmup-steps 5 --threads 1 --quiet)

# --- equivalence: 1 process vs 2 ranks, global batch 8 -----------------------
"$BIN" "${args[@]}" --out "$TMP/one.gguf" >"$TMP/one.out" 2>&1
check "1 process trains" [ $? -eq 0 ]
"${MPIRUN[@]}" "$BIN" "${args[@]}" --json --out "$TMP/two.gguf" >"$TMP/two.out" 2>"$TMP/two.err"
check "2 ranks train ($(tail -c 300 "$TMP/two.err"))" [ $? -eq 0 ]
check "2 ranks: rank 0 alone prints one JSON line" [ "$(wc -l <"$TMP/two.out")" -eq 1 ]
check "2 ranks: the JSON names the checkpoint" grep -q '"checkpoint":' "$TMP/two.out"
# the loss of every epoch and the validation AUCs: 1e-5 relative (float sums in
# another order); the AUCs of 48 rows move only if a score crosses another
loss_close() {
  /usr/bin/python3 - "$1" "$2" <<'EOF'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
ok = len(a) == len(b) == 4
for x, y in zip(a, b):
    ok &= x["step"] == y["step"] and abs(x["loss"] - y["loss"]) <= 1e-5 * abs(y["loss"]) + 1e-6
    ok &= abs(x["valid_auc"] - y["valid_auc"]) <= 1e-3 and x["lr"] == y["lr"]
print("losses", [x["loss"] for x in a], [y["loss"] for y in b])
sys.exit(0 if ok else 1)
EOF
}
check "same loss curve (1e-5 relative)" loss_close "$TMP/one.gguf.log.jsonl" "$TMP/two.gguf.log.jsonl"
# weights after 24 AdamW steps: 1e-5 absolute + 1e-4 relative (measured: ~1e-7)
$GGUF_DIFF "$TMP/one.gguf" "$TMP/two.gguf" --atol 1e-5 --rtol 1e-4 >"$TMP/diff" 2>&1
check "same best checkpoint ($(cat "$TMP/diff"))" [ $? -eq 0 ]
$GGUF_DIFF "$TMP/one.gguf.resume" "$TMP/two.gguf.resume" --prefix optim. --atol 1e-5 --rtol 1e-4 >"$TMP/diff" 2>&1
check "same weights and Adam moments after the last step ($(cat "$TMP/diff"))" [ $? -eq 0 ]
# the diff tool can fail: two different runs (another seed) are far apart
"$BIN" "${args[@]}" --seed 7 --out "$TMP/other.gguf" >/dev/null 2>&1
! $GGUF_DIFF "$TMP/one.gguf" "$TMP/other.gguf" --atol 1e-5 --rtol 1e-4 >/dev/null 2>&1
check "gguf_diff tells another seed's weights apart" [ $? -eq 0 ]

# --- kill -9 of one rank, then resume with 1 rank -----------------------------
long=(train --stage 2 --train-llm --base "$TMP/base.gguf" --cf "$TMP/mf.gguf" --data "$TMP/data" --batch 8
      --steps-per-epoch 6 --max-epochs 12 --patience 100 --eval-rows 48 --warmup-steps 5 --threads 1 --quiet)
"$BIN" "${long[@]}" --out "$TMP/straight.gguf" >/dev/null 2>&1
check "uninterrupted 12-epoch run" [ $? -eq 0 ]
"${MPIRUN[@]}" "$BIN" "${long[@]}" --out "$TMP/killed.gguf" >"$TMP/killed.out" 2>"$TMP/killed.err" &
mpi_pid=$!
victim=
for _ in $(seq 1 600); do # until the first epoch's state is saved (30 s at most)
  if [ -s "$TMP/killed.gguf.resume" ]; then
    for p in $(pgrep -P "$mpi_pid"); do
      tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx 'OMPI_COMM_WORLD_RANK=1' && victim=$p
    done
    break
  fi
  sleep 0.05
done
[ -n "$victim" ] && kill -9 "$victim"
wait "$mpi_pid"; rc=$?
check "a rank was found and killed" [ -n "$victim" ]
check "the job fails when a rank is killed (exit $rc)" [ "$rc" -ne 0 ]
check "the launcher names the killed rank and the signal" grep -q "signal 9" "$TMP/killed.err"
epochs_done=$(wc -l <"$TMP/killed.gguf.log.jsonl")
check "the kill landed mid-run ($epochs_done of 12 epochs logged)" [ "$epochs_done" -ge 1 ] && [ "$epochs_done" -lt 12 ]
"$BIN" "${long[@]}" --out "$TMP/killed.gguf" --resume >/dev/null 2>"$TMP/resume.err"
check "resumed with 1 rank after the 2-rank run died ($(tail -c 200 "$TMP/resume.err"))" [ $? -eq 0 ]
check "the resumed run logged all 12 epochs" [ "$(wc -l <"$TMP/killed.gguf.log.jsonl")" -eq 12 ]
# the final state (weights and Adam moments after 72 steps), not only the best checkpoint (an early epoch)
$GGUF_DIFF "$TMP/straight.gguf.resume" "$TMP/killed.gguf.resume" --prefix optim. --atol 1e-5 --rtol 1e-4 >"$TMP/diff" 2>&1
check "2 ranks killed, resumed on 1: final state of the uninterrupted run ($(cat "$TMP/diff"))" [ $? -eq 0 ]

# --- 1 process for 5 epochs, then 2 ranks resume ------------------------------
"$BIN" "${long[@]}" --out "$TMP/grow.gguf" --epochs-this-run 5 >/dev/null 2>&1
check "1 process: first 5 epochs" [ $? -eq 0 ]
"${MPIRUN[@]}" "$BIN" "${long[@]}" --out "$TMP/grow.gguf" --resume >/dev/null 2>"$TMP/grow.err"
check "2 ranks resume a 1-process state ($(tail -c 200 "$TMP/grow.err"))" [ $? -eq 0 ]
$GGUF_DIFF "$TMP/straight.gguf.resume" "$TMP/grow.gguf.resume" --prefix optim. --atol 1e-5 --rtol 1e-4 >"$TMP/diff" 2>&1
check "1 then 2 ranks: final state of the uninterrupted run ($(cat "$TMP/diff"))" [ $? -eq 0 ]
check "1 then 2 ranks: 12 epochs logged" [ "$(wc -l <"$TMP/grow.gguf.log.jsonl")" -eq 12 ]

# --- train-cf: mf, mfbias, lightgcn and sasrec (no dropout: the same draws) on 2 ranks = 1 process; din refused
for kind in mf mfbias lightgcn sasrec; do
  cf=(train-cf --model $kind --data "$TMP/data" --dim 16 --max-epochs 5 --batch 64 --patience 0 --threads 1)
  [ $kind = sasrec ] && cf+=(--dropout 0)
  "$BIN" "${cf[@]}" --out "$TMP/cf1_$kind.gguf" >/dev/null 2>"$TMP/cf1.err"
  check "train-cf $kind, 1 process" [ $? -eq 0 ]
  "${MPIRUN[@]}" "$BIN" "${cf[@]}" --json --out "$TMP/cf2_$kind.gguf" >"$TMP/cf2.json" 2>"$TMP/cf2.err"
  check "train-cf $kind, 2 ranks ($(tail -c 200 "$TMP/cf2.err"))" [ $? -eq 0 ]
  check "train-cf $kind, 2 ranks: one JSON line" [ "$(wc -l <"$TMP/cf2.json")" -eq 1 ]
  if [ $kind != sasrec ]; then
    check "train-cf $kind: the same per-epoch loss and AUC lines" \
      cmp -s <(grep '^epoch' "$TMP/cf1.err" | sed -E 's/  [0-9.]+s.*//') <(grep '^epoch' "$TMP/cf2.err" | sed -E 's/  [0-9.]+s.*//')
  else # its windows are split, not rows: the printed digits may move by one
    check "train-cf sasrec: per-epoch loss within 1e-4, AUCs within 2e-3" /usr/bin/python3 - "$TMP/cf1.err" "$TMP/cf2.err" <<'EOF'
import re, sys
def rows(p):
    return [[float(x) for x in re.findall(r"(?:loss|auc|uauc) ([0-9.]+)", l)] for l in open(p) if l.startswith("epoch")]
a, b = rows(sys.argv[1]), rows(sys.argv[2])
ok = len(a) == len(b) == 5 and all(len(x) == len(y) == 3 for x, y in zip(a, b))
ok = ok and all(abs(x[0] - y[0]) <= 1e-4 * y[0] and abs(x[1] - y[1]) <= 2e-3 and abs(x[2] - y[2]) <= 2e-3 for x, y in zip(a, b))
sys.exit(0 if ok else 1)
EOF
  fi
  # SASRec's key bias (attn_in.bias, middle third) has a zero true gradient (softmax ignores a
  # shift shared by all keys): Adam turns its rounding noise, which the summation order changes,
  # into steps of ~lr, so it is left out
  ign=(); [ $kind = sasrec ] && ign=(--ignore sasrec.blk.0.attn_in.bias --ignore sasrec.blk.1.attn_in.bias)
  $GGUF_DIFF "$TMP/cf1_$kind.gguf" "$TMP/cf2_$kind.gguf" --atol 1e-5 --rtol 1e-4 "${ign[@]}" >"$TMP/diff" 2>&1
  check "train-cf $kind: same weights ($(cat "$TMP/diff"))" [ $? -eq 0 ]
done
# with dropout each rank draws its own masks: a valid run, not one process's draws
"${MPIRUN[@]}" "$BIN" train-cf --model sasrec --data "$TMP/data" --out "$TMP/sasd.gguf" --max-epochs 2 --batch 64 \
  --threads 1 --dropout 0.5 >/dev/null 2>"$TMP/sasd.err"
check "train-cf sasrec with dropout, 2 ranks ($(tail -c 200 "$TMP/sasd.err"))" [ $? -eq 0 ] && [ -s "$TMP/sasd.gguf" ]
"${MPIRUN[@]}" "$BIN" train-cf --model din --data "$TMP/data" --out "$TMP/din.gguf" --max-epochs 1 --threads 1 \
  >/dev/null 2>"$TMP/din.err"
check "train-cf din under mpirun: refused" [ $? -ne 0 ]
check "train-cf din under mpirun: says why" grep -q "does not train data parallel" "$TMP/din.err"

# --- sharded evaluation: eval and eval-topk on 2 ranks = 1 process ------------
"$BIN" eval --ckpt "$TMP/one.gguf" --data "$TMP/data" --split valid --threads 1 --json >"$TMP/eval1.json" 2>/dev/null
check "eval, 1 process" [ $? -eq 0 ]
"${MPIRUN[@]}" "$BIN" eval --ckpt "$TMP/one.gguf" --data "$TMP/data" --split valid --threads 1 --json \
  >"$TMP/eval2.json" 2>"$TMP/eval2.err"
check "eval, 2 ranks ($(tail -c 200 "$TMP/eval2.err"))" [ $? -eq 0 ]
check "eval, 2 ranks: one JSON line" [ "$(wc -l <"$TMP/eval2.json")" -eq 1 ]
same_json() { # same keys; same values (1e-6 relative) except the keys in $3
  /usr/bin/python3 - "$1" "$2" "$3" <<'EOF'
import json, sys
a, b = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
skip = set(sys.argv[3].split(","))
def close(x, y, path):
    if isinstance(x, dict):
        return x.keys() == y.keys() and all(close(x[k], y[k], path + "." + k) for k in x if k not in skip)
    if isinstance(x, list):
        return len(x) == len(y) and all(close(u, v, path) for u, v in zip(x, y))
    if isinstance(x, float) or isinstance(y, float):
        ok = abs(x - y) <= 1e-6 * max(abs(x), abs(y), 1e-12)
        if not ok: print("differs:", path, x, y)
        return ok
    return x == y
sys.exit(0 if close(a, b, "") else 1)
EOF
}
check "eval: 2 ranks give the keys and figures of 1 process" same_json "$TMP/eval1.json" "$TMP/eval2.json" prompts_per_second
check "eval: the figures are real (n = 411 rows)" grep -q '"n":411' "$TMP/eval2.json"
"$BIN" index --ckpt "$TMP/one.gguf" --out "$TMP/items.faiss" --threads 1 >/dev/null 2>&1
check "index" [ $? -eq 0 ]
topk=(eval-topk --ckpt "$TMP/one.gguf" --index "$TMP/items.faiss" --data "$TMP/data" --candidates 20 --threads 1 --json)
"$BIN" "${topk[@]}" >"$TMP/topk1.json" 2>/dev/null
check "eval-topk, 1 process" [ $? -eq 0 ]
"${MPIRUN[@]}" "$BIN" "${topk[@]}" >"$TMP/topk2.json" 2>"$TMP/topk2.err"
check "eval-topk, 2 ranks ($(tail -c 200 "$TMP/topk2.err"))" [ $? -eq 0 ]
check "eval-topk, 2 ranks: one JSON line" [ "$(wc -l <"$TMP/topk2.json")" -eq 1 ]
check "eval-topk: 2 ranks give the figures of 1 process (CIs included)" same_json "$TMP/topk1.json" "$TMP/topk2.json" none
"${MPIRUN[@]}" "$BIN" "${topk[@]}" --max-users 7 >"$TMP/topk3.json" 2>/dev/null
! same_json "$TMP/topk1.json" "$TMP/topk3.json" none >/dev/null
check "the comparison can fail: 7 users differ from all" [ $? -eq 0 ]

# --- bad input under mpirun: one clear error, the job fails -----------------
one_rank_batch=(train --stage 2 --base "$TMP/base.gguf" --cf "$TMP/mf.gguf" --data "$TMP/data" --batch 1
                --steps-per-epoch 2 --max-epochs 1 --eval-rows 16 --threads 1 --quiet)
"${MPIRUN[@]}" "$BIN" "${one_rank_batch[@]}" --out "$TMP/bad.gguf" >/dev/null 2>"$TMP/bad.err"
check "batch smaller than the ranks: refused" [ $? -ne 0 ]
check "batch smaller than the ranks: says why" grep -q "smaller than the 2 ranks" "$TMP/bad.err"
# ranks given other data or options: rank 0's shuffled order (of its own train
# length) indexed past another rank's rows, and slices of one batch meant
# different things; now every rank compares a fingerprint of what it trains
"$BIN" synth --users 40 --items 60 --seed 6 --out "$TMP/data6" >/dev/null
printf '#!/bin/sh\n# rank 1 gets its own --data and extra options ($RANK1)\nif [ "${OMPI_COMM_WORLD_RANK:-0}" = 1 ]; then exec "$@" $RANK1; else exec "$@" --data %s; fi\n' \
  "$TMP/data" >"$TMP/per_rank.sh"
chmod +x "$TMP/per_rank.sh"
mm=(train --stage 2 --base "$TMP/base.gguf" --cf "$TMP/mf.gguf" --batch 8 --steps-per-epoch 2 --max-epochs 1
    --eval-rows 16 --threads 1 --quiet)
RANK1="--data $TMP/data6" "${MPIRUN[@]}" "$TMP/per_rank.sh" "$BIN" "${mm[@]}" --out "$TMP/mm.gguf" >/dev/null 2>"$TMP/bad.err"
check "ranks with other data: refused" [ $? -ne 0 ]
check "ranks with other data: rank 1 says so ($(head -c 300 "$TMP/bad.err"))" \
  grep -q "rank 1: its training rows, prompts, model shapes or options differ from rank 0's" "$TMP/bad.err"
check "ranks with other data: no checkpoint" [ ! -e "$TMP/mm.gguf" ]
RANK1="--data $TMP/data --lr 3e-3" "${MPIRUN[@]}" "$TMP/per_rank.sh" "$BIN" "${mm[@]}" --out "$TMP/mm.gguf" >/dev/null 2>"$TMP/bad.err"
check "ranks with another --lr: refused, rank 1 named" grep -q "rank 1: its training rows" "$TMP/bad.err"
RANK1="--data $TMP/data" "${MPIRUN[@]}" "$TMP/per_rank.sh" "$BIN" "${mm[@]}" --out "$TMP/mm.gguf" >/dev/null 2>"$TMP/bad.err"
check "the same data and options through the wrapper train ($(head -c 300 "$TMP/bad.err"))" [ -s "$TMP/mm.gguf" ]
"${MPIRUN[@]}" "$BIN" synth --out "$TMP/nope" >/dev/null 2>"$TMP/bad.err"
check "a command that is not data parallel is refused" grep -q "does not run under mpirun" "$TMP/bad.err"
finish
