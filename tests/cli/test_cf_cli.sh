#!/usr/bin/env bash
# CLI tests for `collm train-cf` and `collm eval-cf` on ml-1m: a short MF run
# (3 epochs), progress lines, the saved GGUF, eval-cf's table and JSON, and
# bad input (one error line, exit 1). Prints "N passed, N failed".
set -u
. "$(dirname "$0")/lib.sh" cf_cli

model="$TMP/mf.gguf"
rm -f "$model"
"$BIN" train-cf --model mf --data "$DATA" --out "$model" --max-epochs 3 --dim 32 --threads 2 \
  >"$TMP/train.out" 2>"$TMP/train.err"; rc=$?
check "train-cf exits 0 (got $rc): $(tail -n 1 "$TMP/train.err")" [ "$rc" -eq 0 ]
check "one progress line per epoch" [ "$(grep -Ec '^epoch +[0-9]+/[0-9]+ +loss [0-9.]+ +valid auc 0\.[0-9]+ uauc 0\.[0-9]+ +[0-9.]+s' "$TMP/train.err")" -eq 3 ]
check "summary line" grep -Eq '^train-cf: 3 epochs in .*best epoch [1-3]: valid auc' "$TMP/train.err"
check "model written" [ -s "$model" ]
check "model file is GGUF" [ "$(head -c 4 "$model")" = "GGUF" ]
# d=32: 839 + 3256 rows of 32 float32, plus a small header
size=$(stat -c %s "$model")
check "model size fits (839+3256)x32 f32 ($size bytes)" [ "$size" -ge $(( (839 + 3256) * 32 * 4 )) ] && [ "$size" -lt $(( (839 + 3256) * 32 * 4 + 8192 )) ]

out=$("$BIN" eval-cf --cf "$model" --data "$DATA" --split valid --json 2>"$TMP/eval.err"); rc=$?
check "eval-cf --json exits 0 ($(cat "$TMP/eval.err"))" [ "$rc" -eq 0 ]
check "eval-cf --json is one line" [ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ]
for key in auc uauc n n_users_uauc auc_warm auc_cold; do
  check "json has \"$key\"" grep -q "\"$key\":" <<<"$out"
done
check "json n = 10401" grep -q '"n":10401[,}]' <<<"$out"
check "json n_users_uauc = 282" grep -q '"n_users_uauc":282[,}]' <<<"$out"
if command -v python3 >/dev/null; then
  check "json parses; auc in (0,1)" python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert 0 < d["auc"] < 1 and 0 < d["auc_cold"] < 1' "$out"
fi

# --scores: one row per split row, in order; the AUC recomputed from the file
# (pairwise count, ties half) is the one eval-cf reports
out=$("$BIN" eval-cf --cf "$model" --data "$DATA" --split valid_small --json --scores "$TMP/scores.tsv" 2>&1); rc=$?
check "eval-cf --scores exits 0 ($out)" [ "$rc" -eq 0 ]
check "scores file: header + 5200 rows" [ "$(wc -l <"$TMP/scores.tsv")" -eq 5201 ]
check "scores file: rows in the split's order" cmp -s <(tail -n +2 "$TMP/scores.tsv" | cut -f1-3) <(tail -n +2 "$DATA/valid_small.tsv" | cut -f1-3)
if command -v python3 >/dev/null; then
  check "AUC recomputed from --scores equals eval-cf's" python3 -c '
import json, sys
rows = [l.split("\t") for l in open(sys.argv[2]).read().splitlines()[1:]]
pos = sorted(float(r[3]) for r in rows if r[2] == "1"); neg = sorted(float(r[3]) for r in rows if r[2] == "0")
import bisect
wins = sum(bisect.bisect_left(neg, s) + 0.5 * (bisect.bisect_right(neg, s) - bisect.bisect_left(neg, s)) for s in pos)
auc = wins / (len(pos) * len(neg))
assert abs(auc - json.loads(sys.argv[1])["auc"]) < 1e-6, (auc, sys.argv[1])' "$out" "$TMP/scores.tsv"
fi
expect_error "--scores into a missing folder" 'no/such/dir/s.tsv: the output folder .* does not exist' \
  "$BIN" eval-cf --cf "$model" --data "$DATA" --split valid_small --scores "$TMP/no/such/dir/s.tsv"

out=$("$BIN" eval-cf --cf "$model" --data "$DATA" --split "$DATA/valid_small.tsv" 2>&1); rc=$?
check "eval-cf table exits 0" [ "$rc" -eq 0 ]
check "table: all row with 239 of 331 users" grep -Eq '^all +5200 +0\.[0-9]{4} +0\.[0-9]{4} +\(239 of 331 users counted\)' <<<"$out"
check "table: warm and cold rows" grep -Eq '^warm +[0-9]+ ' <<<"$out"

# a split with a user id beyond the model's table (the loader cannot know it)
{ head -n 3 "$DATA/valid.tsv"; printf '900\t5\t1\t1020000000\t0\t0\n'; } >"$TMP/unknown_user.tsv"
expect_error "unknown user in split" 'unknown_user\.tsv: row 2 \(line 4\): user id 900 is beyond' \
  "$BIN" eval-cf --cf "$model" --data "$DATA" --split "$TMP/unknown_user.tsv"
# an item id beyond the items table (caught while loading, also naming the line)
{ head -n 3 "$DATA/valid.tsv"; printf '5\t4000\t1\t1020000000\t0\t0\n'; } >"$TMP/unknown_item.tsv"
expect_error "unknown item in split" 'unknown_item\.tsv.*line 4.*4000' \
  "$BIN" eval-cf --cf "$model" --data "$DATA" --split "$TMP/unknown_item.tsv"

# the other kinds: a short run each, the same eval-cf JSON keys, the kind in the file
for kind in lightgcn sasrec din; do
  km="$TMP/$kind.gguf"
  rm -f "$km"
  "$BIN" train-cf --model "$kind" --data "$DATA" --out "$km" --max-epochs 2 --dim 12 --max-len 4 --threads 2 \
    >"$TMP/$kind.out" 2>"$TMP/$kind.err"; rc=$?
  check "train-cf --model $kind exits 0 (got $rc): $(tail -n 1 "$TMP/$kind.err")" [ "$rc" -eq 0 ]
  check "$kind: two progress lines" [ "$(grep -Ec '^epoch +[0-9]+/[0-9]+ +loss [0-9.]+ +valid auc 0\.[0-9]+' "$TMP/$kind.err")" -eq 2 ]
  check "$kind: model file records its kind" grep -aq "$kind" "$km"
  out=$("$BIN" eval-cf --cf "$km" --data "$DATA" --split valid --json 2>"$TMP/$kind.eval.err"); rc=$?
  check "eval-cf --json on $kind exits 0 ($(cat "$TMP/$kind.eval.err"))" [ "$rc" -eq 0 ]
  for key in auc uauc n n_users_uauc auc_warm auc_cold; do
    check "$kind json has \"$key\"" grep -q "\"$key\":" <<<"$out"
  done
  check "$kind json n = 10401" grep -q '"n":10401[,}]' <<<"$out"
done

# bad arguments
expect_error "train-cf without --out" 'missing required option --out' "$BIN" train-cf --data "$DATA"
expect_error "train-cf unknown model" "unknown model kind 'nope'" \
  "$BIN" train-cf --model nope --data "$DATA" --out "$TMP/x.gguf" --max-epochs 1
expect_error "train-cf bad lr" "--lr: 'abc' is not a number" \
  "$BIN" train-cf --data "$DATA" --out "$TMP/x.gguf" --lr abc
expect_error "train-cf negative batch" 'out-of-range' "$BIN" train-cf --data "$DATA" --out "$TMP/x.gguf" --batch 0
expect_error "train-cf unknown option" "unknown option '--bogus'" "$BIN" train-cf --data "$DATA" --out "$TMP/x.gguf" --bogus
expect_error "train-cf missing data dir" 'no-such-dir' "$BIN" train-cf --data "$TMP/no-such-dir" --out "$TMP/x.gguf"
check "failed train-cf wrote nothing" [ ! -e "$TMP/x.gguf" ]
expect_error "eval-cf missing model" 'nope\.gguf' "$BIN" eval-cf --cf "$TMP/nope.gguf" --data "$DATA" --split valid
printf 'not a gguf file at all, just text\n' >"$TMP/text.gguf"
expect_error "eval-cf on a non-GGUF file" 'text\.gguf' "$BIN" eval-cf --cf "$TMP/text.gguf" --data "$DATA" --split valid
expect_error "eval-cf unknown split" 'nosplit' "$BIN" eval-cf --cf "$model" --data "$DATA" --split nosplit

finish
