#!/usr/bin/env bash
# Why the recipe fuses two encoders: each collaborative encoder alone, and
# pairs of them summed after standardising their scores (mean 0, sd 1 over
# the split), scored by AUC / UAUC on ML-1M valid (the test split is never
# read). Every encoder is trained with `collm train-cf` (early-stopped on
# valid AUC, seed 2023) and scored with `collm eval-cf --scores`; the sums and
# their metrics are computed here from those files (ties count one half; the
# UAUC the unweighted mean over users with both labels, as collm computes it).
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
"${PYTHON:-/usr/bin/python3}" - "$W" $KINDS <<'EOF'
import itertools, sys
import numpy as np

work, kinds = sys.argv[1], sys.argv[2:]

def read(k):
    rows = [l.split("\t") for l in open(f"{work}/{k}.valid.tsv").read().splitlines()[1:]]
    return (np.array([int(r[0]) for r in rows]), np.array([int(r[2]) for r in rows]),
            np.array([float(r[3]) for r in rows]))

def auc(y, s):
    # rank-sum with average ranks for ties
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    ss = s[order]
    i = 0
    while i < len(ss):
        j = i
        while j + 1 < len(ss) and ss[j + 1] == ss[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j + 2) / 2
        i = j + 1
    n1 = y.sum(); n0 = len(y) - n1
    return (ranks[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0)

def uauc(u, y, s):
    per_user = [auc(y[u == user], s[u == user]) for user in np.unique(u) if 0 < y[u == user].sum() < (u == user).sum()]
    return float(np.mean(per_user))

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
