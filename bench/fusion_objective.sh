#!/usr/bin/env bash
# Would the recipe's score fusion do better fitted another way (issue 9)?
# fit-score fits the weights of score = LLM + w·mfbias + Σ v_k·extra_k by
# coordinate ascent on valid_small's AUC. This script takes a recipe run's
# checkpoint as selected (its work directory's selected.gguf, before the
# refit), scores every part on valid (`collm eval --scores` for the fused
# score, `collm eval-cf --scores` for mfbias and each extra; the LLM's score
# is the fused one less the weighted parts) and refits the weights on
# valid_small by
#   auc         the same ascent as fit-score (the script stops if it does not
#               give fit-score's weights: the two must agree),
#   uauc        the same ascent on the per-user AUC,
#   mean        the same ascent on (AUC + UAUC) / 2,
#   logreg      logistic regression on the standardised parts (Newton, L2 1e-3),
#   seg-logreg  one logistic regression for cold rows, one for warm ones
#               (the split's not_cold column),
#   pairwise    logistic regression on the within-user pairs (each liked row
#               of a user against each of their not-liked rows, the parts'
#               differences; each user's pairs weigh as much as another's, as
#               in UAUC; L2 1e-2): a smooth stand-in for UAUC,
# then scores each on valid's rows outside valid_small, which no weight saw
# (bench/auc.py). The test split is never read. The parts' files stay in
# WORK/fusion-objective for bench/seed_ensemble.sh (bench/fusion_parts.py reads them).
#   usage: WORK=build/ml1m-work bench/fusion_objective.sh   (after bench/ml1m.sh)
#   env: THREADS (default 2), DATA (default ../shared/data/ml-1m)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
bench_ml1m_paths
CKPT=$W/selected.gguf
[ -f "$CKPT" ] || { echo "fusion_objective: no checkpoint $CKPT (run bench/ml1m.sh with WORK=$W first)" >&2; exit 1; }
make -s BUILD="$BUILD" "$BIN"
P=$W/fusion-objective
mkdir -p "$P"
"$BIN" fit-score --ckpt "$CKPT" --data "$DATA" --split valid_small --dry-run --json --threads "$THREADS" >"$P/fit.json"
"$BIN" eval --ckpt "$CKPT" --data "$DATA" --split valid --scores "$P/fused.tsv" --threads "$THREADS" >/dev/null
bench_fusion_part_files "$P/fit.json"
for k in "${!part_files[@]}"; do
  "$BIN" eval-cf --cf "${part_files[$k]}" --data "$DATA" --split valid --scores "$P/part$k.tsv" --threads "$THREADS" >/dev/null
done
BENCH_DIR=$PWD/bench "${PYTHON:-/usr/bin/python3}" - "$P" "$DATA" <<'EOF'
import json, os, sys
import numpy as np
sys.path.insert(0, os.environ["BENCH_DIR"])
from auc import auc, uauc
from fusion_parts import Parts, newton

P, data = sys.argv[1], sys.argv[2]
F = Parts(P, data)
u, y, m, cold, llm, parts = F.u, F.y, F.small, F.cold, F.llm, F.parts

def objective(kind):
    if kind == "uauc": return lambda s: uauc(u[m], y[m], s[m])
    return lambda s: 0.5 * (auc(y[m], s[m]) + uauc(u[m], y[m], s[m]))

X = np.stack([llm] + parts, 1)
Z = np.concatenate([(X - X[m].mean(0)) / X[m].std(0), np.ones((len(y), 1))], 1)
def logreg(rows_fit, l2=1e-3):
    return newton(Z[rows_fit], y[rows_fit], np.full(rows_fit.sum(), 1.0 / rows_fit.sum()), l2)
# within-user pairs of valid_small: every (liked, not liked) pair of one user,
# each user's pairs weighing 1 / (their count), as each user weighs the same in UAUC
pos_neg = []
for user in np.unique(u[m]):
    r = np.where(m & (u == user))[0]
    pos, neg = r[y[r] == 1], r[y[r] == 0]
    pos_neg += [(a, b, len(pos) * len(neg)) for a in pos for b in neg]
pos_neg = np.array(pos_neg)
D = Z[pos_neg[:, 0], :-1] - Z[pos_neg[:, 1], :-1]
pair_w = 1.0 / pos_neg[:, 2]
b_pair = newton(D, np.ones(len(D)), pair_w / pair_w.sum(), 1e-2)

scores = {"fit-score (stored)": F.fused}
w_auc = F.ascend_auc()
assert all(abs(a - b) < 1e-6 for a, b in zip(w_auc, F.stored)), f"the ascent gives {w_auc}, fit-score {F.stored}"
for kind in ("uauc", "mean"):
    w = F.ascend(objective(kind))
    scores[f"{kind} {w}"] = F.score(w)
scores["logreg"] = Z @ logreg(m)
seg = np.zeros(len(y))
for c in (False, True):
    seg[cold == c] = Z[cold == c] @ logreg(m & (cold == c))
scores["seg-logreg"] = seg
scores[f"pairwise ({len(D)} pairs)"] = Z[:, :-1] @ b_pair
out = {"weights_auc": w_auc}
print(f"{'fit':44s} {'valid_small':>15s} {'held out':>15s}")
for name, s in scores.items():
    a_s, u_s, a_r, u_r = auc(y[m], s[m]), uauc(u[m], y[m], s[m]), auc(y[~m], s[~m]), uauc(u[~m], y[~m], s[~m])
    print(f"{name:44s} {a_s:7.4f} {u_s:7.4f} {a_r:7.4f} {u_r:7.4f}")
    out[name.split(" ")[0]] = {"small_auc": a_s, "small_uauc": u_s, "rest_auc": a_r, "rest_uauc": u_r}
print(json.dumps(out))
EOF
