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
# then scores each on valid's rows outside valid_small, which no weight saw
# (bench/auc.py). The test split is never read.
#   usage: WORK=build/ml1m-work bench/fusion_objective.sh   (after bench/ml1m.sh)
#   env: THREADS (default 2), DATA (default ../shared/data/ml-1m)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
bench_ml1m_paths
W=${WORK:-$BUILD/ml1m-work}
THREADS=${THREADS:-2}
BIN=$BUILD/collm
CKPT=$W/selected.gguf
[ -f "$CKPT" ] || { echo "fusion_objective: no checkpoint $CKPT (run bench/ml1m.sh with WORK=$W first)" >&2; exit 1; }
make -s BUILD="$BUILD" "$BIN"
P=$W/fusion-objective
mkdir -p "$P"
"$BIN" fit-score --ckpt "$CKPT" --data "$DATA" --split valid_small --dry-run --json --threads "$THREADS" >"$P/fit.json"
"$BIN" eval --ckpt "$CKPT" --data "$DATA" --split valid --scores "$P/fused.tsv" --threads "$THREADS" >/dev/null
"$BIN" eval-cf --cf "$W/cf.gguf" --data "$DATA" --split valid --scores "$P/part0.tsv" --threads "$THREADS" >/dev/null
# the extras in the checkpoint's order: bench/ml1m.sh's fuse.gguf, then fuse-KIND.gguf in FUSE_KIND's order
mapfile -t kinds < <("${PYTHON:-/usr/bin/python3}" -c 'import json,sys; [print(e["kind"]) for e in json.load(open(sys.argv[1]))["extras"]]' "$P/fit.json")
n_extra=${#kinds[@]}
for ((k = 0; k < n_extra; k++)); do
  f=$W/fuse.gguf
  [ "$k" = 0 ] || f=$W/fuse-${kinds[$k]}.gguf
  [ -f "$f" ] || { echo "fusion_objective: extra $k (${kinds[$k]}) expected in $f, not found" >&2; exit 1; }
  "$BIN" eval-cf --cf "$f" --data "$DATA" --split valid --scores "$P/part$((k + 1)).tsv" --threads "$THREADS" >/dev/null
done
BENCH_DIR=$PWD/bench "${PYTHON:-/usr/bin/python3}" - "$P" "$DATA" "$((n_extra + 1))" <<'EOF'
import json, os, sys
import numpy as np
sys.path.insert(0, os.environ["BENCH_DIR"])
from auc import auc, read_scores, uauc

P, data, n_parts = sys.argv[1], sys.argv[2], int(sys.argv[3])
fit = json.load(open(f"{P}/fit.json"))
u, it, y, fused = read_scores(f"{P}/fused.tsv")
parts = []
for p in range(n_parts):
    pu, pi, _, ps = read_scores(f"{P}/part{p}.tsv")
    assert (pu == u).all() and (pi == it).all(), f"part {p}'s rows differ from the checkpoint's"
    parts.append(ps)
stored = [fit["cf_weight"]] + [e["weight"] for e in fit["extras"]]
llm = fused - sum(w * p for w, p in zip(stored, parts))
# valid_small's rows inside valid, by (uid, iid, timestamp)
key = lambda f: (f[0], f[1], f[3])
small = {key(l.split("\t")) for l in open(f"{data}/valid_small.tsv").read().splitlines()[1:]}
rows = [l.split("\t") for l in open(f"{data}/valid.tsv").read().splitlines()[1:]]
m = np.array([key(f) in small for f in rows])
cold = np.array([f[5] == "0" for f in rows])
assert len(rows) == len(y) and m.any() and (~m).any()
grid = [0, .05, .1, .2, .3, .5, .7, 1, 1.5, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64, 100]  # fit-score's grid

def objective(kind, s):
    if kind == "auc": return auc(y[m], s[m])
    uu = uauc(u[m], y[m], s[m])
    return uu if kind == "uauc" else 0.5 * (auc(y[m], s[m]) + uu)

def ascend(kind):  # collm_fit_score_weights, with the objective as a parameter
    w, best = [0.0] * n_parts, -1.0
    for _ in range(8):
        changed = False
        for p in range(n_parts):
            base = llm + sum(w[q] * parts[q] for q in range(n_parts) if q != p)
            bw, bv = w[p], -1.0
            for g in grid:
                v = objective(kind, base + g * parts[p])
                if v > bv or (v == bv and g < bw): bv, bw = v, g
            if bw != w[p] and bv > best: changed = True
            if bv >= best: w[p], best = bw, bv
        if not changed: break
    return w

X = np.stack([llm] + parts, 1)
Z = np.concatenate([(X - X[m].mean(0)) / X[m].std(0), np.ones((len(y), 1))], 1)
def logreg(rows_fit, l2=1e-3):
    b = np.zeros(Z.shape[1])
    for _ in range(30):
        pr = 1 / (1 + np.exp(-Z[rows_fit] @ b))
        g = Z[rows_fit].T @ (pr - y[rows_fit]) / rows_fit.sum() + l2 * b
        H = (Z[rows_fit] * (pr * (1 - pr))[:, None]).T @ Z[rows_fit] / rows_fit.sum() + l2 * np.eye(len(b))
        b -= np.linalg.solve(H, g)
    return b

scores = {"fit-score (stored)": fused}
w_auc = ascend("auc")
assert all(abs(a - b) < 1e-6 for a, b in zip(w_auc, stored)), f"the ascent gives {w_auc}, fit-score {stored}"
for kind in ("uauc", "mean"):
    w = ascend(kind)
    scores[f"{kind} {w}"] = llm + sum(a * b for a, b in zip(w, parts))
scores["logreg"] = Z @ logreg(m)
seg = np.zeros(len(y))
for c in (False, True):
    seg[cold == c] = Z[cold == c] @ logreg(m & (cold == c))
scores["seg-logreg"] = seg
out = {"weights_auc": w_auc}
print(f"{'fit':44s} {'valid_small':>15s} {'held out':>15s}")
for name, s in scores.items():
    a_s, u_s, a_r, u_r = auc(y[m], s[m]), uauc(u[m], y[m], s[m]), auc(y[~m], s[~m]), uauc(u[~m], y[~m], s[~m])
    print(f"{name:44s} {a_s:7.4f} {u_s:7.4f} {a_r:7.4f} {u_r:7.4f}")
    out[name.split(" ")[0]] = {"small_auc": a_s, "small_uauc": u_s, "rest_auc": a_r, "rest_uauc": u_r}
print(json.dumps(out))
EOF
