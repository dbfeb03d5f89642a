#!/usr/bin/env bash
# Would the recipe's fusion gain from averaging several seeds of each encoder
# (issue 9)? Seed ensembles usually buy a little AUC for nothing but time.
# This script takes the parts bench/fusion_objective.sh scored on valid (its
# WORK/fusion-objective: the checkpoint's own encoder and each extra, as
# selected, before the refit), trains each part's kind again with every seed
# of SEEDS (`collm train-cf --model KIND --seed S` at the defaults, as
# bench/ml1m.sh trains them; ctx is fitted by Newton's method and has no
# seed, so it is left as it is), scores them on valid, and then, per kind and
# for all kinds at once, replaces the part by the mean of its seeds' scores
# (the recipe's model and the new ones), refits the fusion weights with
# fit-score's ascent on valid_small's AUC (bench/fusion_parts.py) and scores
# valid's rows outside valid_small, which no weight saw. The extra models and
# their scores stay in WORK/seed-ensemble (a kind and seed already there is
# not trained again). The test split is never read.
#   usage: WORK=build/ml1m-work bench/seed_ensemble.sh   (after bench/fusion_objective.sh)
#   env: SEEDS (default "2024 2025 2026 2027"; a seed equal to the recipe's
#        model's own is skipped), THREADS (default 2), DATA (default ../shared/data/ml-1m)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
bench_ml1m_paths
SEEDS=${SEEDS:-2024 2025 2026 2027}
P=$W/fusion-objective
[ -f "$P/fit.json" ] || { echo "seed_ensemble: no $P/fit.json (run WORK=$W bench/fusion_objective.sh first)" >&2; exit 1; }
for s in $SEEDS; do
  case $s in '' | *[!0-9]*) echo "seed_ensemble: SEEDS holds '$s', not a whole number" >&2; exit 1 ;; esac
done
bench_fusion_part_files "$P/fit.json"
make -s BUILD="$BUILD" "$BIN"
E=$W/seed-ensemble
mkdir -p "$E"
: >"$E/parts.tsv" # part, kind, score files of the other seeds
for k in "${!part_files[@]}"; do
  f=${part_files[$k]}
  info=$("$BIN" info "$f")
  kind=$(sed -n 's/^ *collm\.cf\.kind  *str  *"\(.*\)"$/\1/p' <<<"$info")
  own=$(sed -n 's/^ *collm\.cf\.train\.seed  *u64  *\([0-9]*\)$/\1/p' <<<"$info")
  [ -n "$kind" ] || { echo "seed_ensemble: $f records no collm.cf.kind" >&2; exit 1; }
  [ "$kind" = ctx ] && continue
  scores=()
  for s in $SEEDS; do
    [ "$s" = "$own" ] && continue
    m=$E/$kind-$s.gguf
    if [ ! -f "$E/$kind-$s.tsv" ]; then
      "$BIN" train-cf --model "$kind" --data "$DATA" --out "$m" --seed "$s" --threads "$THREADS" 2>&1 | tail -n 1 >&2
      "$BIN" eval-cf --cf "$m" --data "$DATA" --split valid --scores "$E/$kind-$s.tsv" --threads "$THREADS" >/dev/null
    fi
    scores+=("$E/$kind-$s.tsv")
  done
  printf '%s\t%s\t%s\n' "$k" "$kind" "${scores[*]}" >>"$E/parts.tsv"
done
BENCH_DIR=$PWD/bench "${PYTHON:-/usr/bin/python3}" - "$P" "$DATA" "$E/parts.tsv" <<'EOF'
import json, os, sys
import numpy as np
sys.path.insert(0, os.environ["BENCH_DIR"])
from auc import auc, uauc
from fusion_parts import Parts

P, data, listing = sys.argv[1:4]
F = Parts(P, data)
u, y, m = F.u, F.y, F.small
def held(s): return auc(y[~m], s[~m]), uauc(u[~m], y[~m], s[~m])
def line(name, s, w=None):
    a_s, u_s = auc(y[m], s[m]), uauc(u[m], y[m], s[m])
    a_r, u_r = held(s)
    print(f"{name:34s} {a_s:7.4f} {u_s:7.4f} {a_r:7.4f} {u_r:7.4f}" + (f"  weights {w}" if w else ""))
    return {"small_auc": a_s, "small_uauc": u_s, "rest_auc": a_r, "rest_uauc": u_r, "weights": w}
out = {}
print(f"{'fusion (weights by AUC on valid_small)':34s} {'valid_small':>15s} {'held out':>15s}")
out["recipe"] = line("the recipe's parts", F.fused, F.stored)
means = {}
for row in open(listing).read().splitlines():
    k, kind, files = row.split("\t")
    k = int(k)
    others = [F.read_part(f) for f in files.split()]
    if not others: continue
    means[k] = np.mean([F.parts[k]] + others, 0)
    alone = [held(s)[0] for s in [F.parts[k]] + others]
    a, uu = held(means[k])
    print(f"  {kind} alone, held-out AUC by seed {np.round(alone, 4).tolist()}; the mean of {len(alone)}: {a:.4f} / {uu:.4f}")
    parts = list(F.parts); parts[k] = means[k]
    w = F.ascend_auc(parts)
    out[kind] = line(f"{kind} as the mean of {len(alone)} seeds", F.score(w, parts), w)
    out[kind]["alone_rest_auc"] = alone
if len(means) > 1:
    parts = [means.get(k, p) for k, p in enumerate(F.parts)]
    w = F.ascend_auc(parts)
    out["all"] = line("every seeded kind averaged", F.score(w, parts), w)
print(json.dumps(out))
EOF
