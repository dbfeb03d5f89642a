#!/usr/bin/env bash
# What the LLM adds to the encoders (issue 9): the recipe's checkpoint beside
# the collaborative encoders it was trained and fused with, on ML-1M valid.
# Every model writes its score of every valid row (`collm eval --scores`,
# `collm eval-cf --scores`); then two stacks are fitted, each a logistic
# regression on the standardised scores (L2 1e-2, Newton's method), on
# valid_small's rows, and scored on the other rows of valid (which neither
# the stacks nor the checkpoint's own fusion weights ever saw):
#   encoders            the encoders' scores alone;
#   encoders + CoLLM    the same plus the checkpoint's score (LLM logit + its
#                       fitted fusion of the same encoders).
# Their difference is what the LLM brings over the best use of the encoders
# without it; a user-level bootstrap (1,000 resamples of the held-out rows'
# users) gives its 95 % interval. Prints a table and one JSON line.
# Metrics: bench/auc.py (collm's AUC and UAUC). The test split is never read.
#   usage: CKPT=build/ml1m.gguf WORK=build/ml1m-work bench/llm_value.sh
#   (after `OUT=build/ml1m.gguf bench/ml1m.sh`; ENCODERS: the encoder files,
#   default WORK's cf.gguf (mfbias), fuse.gguf (DIN), fuse-sasrec.gguf,
#   fuse-lightgcn.gguf, fuse-ctx.gguf, those present)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
bench_ml1m_paths
OUTDIR=${OUTDIR:-$BUILD/llm-value}
[ -f "$CKPT" ] || { echo "llm_value: no checkpoint $CKPT (run OUT=$CKPT bench/ml1m.sh first)" >&2; exit 1; }
if [ -z "${ENCODERS:-}" ]; then
  ENCODERS=
  for f in cf fuse fuse-sasrec fuse-lightgcn fuse-ctx; do
    [ -f "$W/$f.gguf" ] && ENCODERS+="${ENCODERS:+ }$W/$f.gguf"
  done
fi
[ -n "$ENCODERS" ] || { echo "llm_value: no encoders in $W" >&2; exit 1; }
make -s BUILD="$BUILD" "$BIN"
mkdir -p "$OUTDIR"
files=()
"$BIN" eval --ckpt "$CKPT" --data "$DATA" --split valid --scores "$OUTDIR/collm.tsv" --threads "$THREADS" >/dev/null
for e in $ENCODERS; do
  kind=$("$BIN" eval-cf --cf "$e" --data "$DATA" --split valid --json --scores "$OUTDIR/$(basename "$e" .gguf).tsv" \
    --threads "$THREADS" | grep -o '"kind":"[^"]*"' | cut -d'"' -f4)
  files+=("$kind=$OUTDIR/$(basename "$e" .gguf).tsv")
done
BENCH_DIR=$PWD/bench "${PYTHON:-/usr/bin/python3}" - "$DATA" "$OUTDIR/collm.tsv" "${files[@]}" <<'EOF'
import csv, json, os, sys
import numpy as np

sys.path.insert(0, os.environ["BENCH_DIR"])
from auc import auc, read_scores, uauc

data, collm_file, encoders = sys.argv[1], sys.argv[2], [a.split("=", 1) for a in sys.argv[3:]]

def keys(split):
    with open(f"{data}/{split}.tsv", newline="") as f:
        return [(r["uid"], r["iid"], r["timestamp"]) for r in csv.DictReader(f, delimiter="\t")]

valid = keys("valid")
small = set(keys("valid_small"))
fit_rows = np.array([k in small for k in valid])
u, i, y, s = read_scores(collm_file)
assert len(u) == len(valid) and all(int(a) == b for (a, _, _), b in zip(valid, u)), "score rows are not valid's"
scores = {}
for kind, path in encoders:
    u2, i2, y2, s2 = read_scores(path)
    assert (u2 == u).all() and (i2 == i).all() and (y2 == y).all(), f"{path}: not the rows of the checkpoint's file"
    scores[kind] = s2
held = ~fit_rows

def z(x):  # standardised on the fit rows
    return (x - x[fit_rows].mean()) / x[fit_rows].std()

def stack(columns):
    """Logistic regression (intercept, L2 1e-2) fitted on the fit rows; its logit on every row."""
    X = np.column_stack([np.ones(len(y))] + [z(c) for c in columns])
    Xf, yf = X[fit_rows], y[fit_rows]
    w = np.zeros(X.shape[1])
    for _ in range(50):
        p = 1 / (1 + np.exp(-Xf @ w))
        g = Xf.T @ (p - yf) / len(yf) + 1e-2 * w
        H = (Xf.T * (p * (1 - p))) @ Xf / len(yf) + 1e-2 * np.eye(len(w))
        w -= np.linalg.solve(H, g)
    return X @ w, w

enc, w_enc = stack(list(scores.values()))
both, w_both = stack(list(scores.values()) + [s])
rows = [(k, v) for k, v in scores.items()] + [("CoLLM checkpoint", s), ("stack: encoders", enc),
                                              ("stack: encoders + CoLLM", both)]
uh, yh = u[held], y[held]
print(f"{'held-out valid rows (' + str(held.sum()) + '), scores':40s} {'AUC':>7s} {'UAUC':>7s}")
for name, v in rows:
    print(f"{name:40s} {auc(yh, v[held]):7.4f} {uauc(uh, yh, v[held]):7.4f}")
# user-level bootstrap of the difference the checkpoint makes to the stack
# (a user drawn twice counts twice, in the AUC and in the UAUC's mean)
rng = np.random.default_rng(0)
users = np.unique(uh)
by_user = [np.flatnonzero(uh == x) for x in users]
both_labels = np.array([0 < yh[r].sum() < len(r) for r in by_user])
per_user = np.array([auc(yh[r], both[held][r]) - auc(yh[r], enc[held][r]) if ok else 0.0
                     for r, ok in zip(by_user, both_labels)])
d_auc, d_uauc = [], []
for _ in range(1000):
    pick = rng.integers(0, len(users), len(users))
    idx = np.concatenate([by_user[j] for j in pick])
    d_auc.append(auc(yh[idx], both[held][idx]) - auc(yh[idx], enc[held][idx]))
    d_uauc.append(per_user[pick][both_labels[pick]].mean())
ci = lambda d: [round(float(np.percentile(d, 2.5)), 4), round(float(np.percentile(d, 97.5)), 4)]
res = {"held_rows": int(held.sum()), "encoders": [k for k, _ in encoders],
       "encoders_auc": auc(yh, enc[held]), "encoders_uauc": uauc(uh, yh, enc[held]),
       "with_collm_auc": auc(yh, both[held]), "with_collm_uauc": uauc(uh, yh, both[held]),
       "collm_auc": auc(yh, s[held]), "collm_uauc": uauc(uh, yh, s[held]),
       "best_encoder_auc": max(auc(yh, v[held]) for v in scores.values())}
res["collm_adds_auc"] = res["with_collm_auc"] - res["encoders_auc"]
res["collm_adds_uauc"] = res["with_collm_uauc"] - res["encoders_uauc"]
res["collm_adds_auc_ci95"], res["collm_adds_uauc_ci95"] = ci(d_auc), ci(d_uauc)
res["stack_weights_with_collm"] = [round(float(x), 4) for x in w_both[1:]]
print(f"the checkpoint adds to the encoders' stack: AUC {res['collm_adds_auc']:+.4f} {res['collm_adds_auc_ci95']}, "
      f"UAUC {res['collm_adds_uauc']:+.4f} {res['collm_adds_uauc_ci95']} (95 % bootstrap over users)")
print(json.dumps(res))
EOF
