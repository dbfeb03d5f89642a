#!/usr/bin/env bash
# Why the recipe fuses two encoders: each collaborative encoder alone, and
# pairs of them summed after standardising their scores (mean 0, sd 1 over
# the split), scored by AUC / UAUC on ML-1M valid (the test split is never
# read). Every encoder is trained with `collm train-cf` (early-stopped on
# valid AUC, seed 2023) and scored with `collm eval-cf --scores`; the sums and
# their metrics are computed here from those files (bench/auc.py: ties count
# one half; the UAUC the unweighted mean over users with both labels, as collm
# computes it).
#   usage: bench/encoder_fusion.sh            (KINDS="mfbias din sasrec" by default)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
SHARED=${COLLM_SHARED:-$(cd .. && pwd)/shared}
DATA=${DATA:-$SHARED/data/ml-1m}
W=${WORK:-$BUILD/encoder-fusion}
KINDS=${KINDS:-mfbias din sasrec}
THREADS=${THREADS:-2}
BIN=$BUILD/collm
make -s BUILD="$BUILD" "$BIN"
mkdir -p "$W"
rm -f "$W/times"
for k in $KINDS; do
  t0=$(date +%s.%N)
  "$BIN" train-cf --model "$k" --data "$DATA" --out "$W/$k.gguf" --threads "$THREADS" --seed 2023 2>&1 | tail -n 1 >&2
  t1=$(date +%s.%N)
  "$BIN" eval-cf --cf "$W/$k.gguf" --data "$DATA" --split valid --scores "$W/$k.valid.tsv" --threads "$THREADS" >/dev/null
  echo "$k $(echo "$t1 - $t0" | bc)" >>"$W/times"
done
BENCH_DIR=$PWD/bench "${PYTHON:-/usr/bin/python3}" - "$W" $KINDS <<'EOF'
import itertools, os, sys
import numpy as np

sys.path.insert(0, os.environ["BENCH_DIR"])
from auc import auc, read_scores, uauc

work, kinds = sys.argv[1], sys.argv[2:]

def read(k):
    u, _, y, s = read_scores(f"{work}/{k}.valid.tsv")
    return u, y, s

users, labels, scores = None, None, {}
for k in kinds:
    u, y, s = read(k)
    if users is None: users, labels = u, y
    assert (u == users).all() and (y == labels).all(), "score files disagree on the rows"
    scores[k] = (s - s.mean()) / s.std()
print(f"{'encoders (valid, standardised sum)':40s} {'AUC':>7s} {'UAUC':>7s}")
for n in range(1, len(kinds) + 1):
    for combo in itertools.combinations(kinds, n):
        s = sum(scores[k] for k in combo)
        print(f"{' + '.join(combo):40s} {auc(labels, s):7.4f} {uauc(users, labels, s):7.4f}")
EOF
cat "$W/times" | awk '{printf "train-cf %s: %.1f s\n", $1, $2}'
rm -f "$W/times"
