#!/usr/bin/env bash
# The ML-1M recipe (bench/ml1m.sh) over several seeds, then mean ± sd of its
# figures (valid AUC / UAUC, warm / cold, each encoder alone, wall time).
# Each seed's JSON line is kept in $OUTDIR/seedN.json; a seed whose line is
# already there is not run again (delete the file to rerun it).
#   usage: SEEDS="0 1 2" OUTDIR=build/ml1m-seeds bench/ml1m_seeds.sh
set -euo pipefail
cd "$(dirname "$0")/.."
OUTDIR=${OUTDIR:-build/ml1m-seeds}
SEEDS=${SEEDS:-0 1 2}
mkdir -p "$OUTDIR"
for s in $SEEDS; do
  [ -s "$OUTDIR/seed$s.json" ] && continue
  SEED=$s OUT="$OUTDIR/seed$s.gguf" WORK="$OUTDIR/work$s" bench/ml1m.sh >"$OUTDIR/seed$s.json.tmp" 2>"$OUTDIR/seed$s.log"
  mv "$OUTDIR/seed$s.json.tmp" "$OUTDIR/seed$s.json"
done
"${PYTHON:-/usr/bin/python3}" - "$OUTDIR" $SEEDS <<'PY'
import json, statistics, sys
out, seeds = sys.argv[1], sys.argv[2:]
runs = [json.loads(open(f"{out}/seed{s}.json").read().strip().splitlines()[-1]) for s in seeds]
keys = ["valid_auc", "valid_uauc", "valid_auc_warm", "valid_auc_cold", "valid_rest_auc", "valid_rest_uauc", "valid_small_auc", "valid_small_uauc",
        "llm_valid_small_auc", "cf_valid_auc", "cf_valid_uauc", "fuse_valid_auc", "fuse_valid_uauc",
        "mf_valid_auc", "mf_valid_uauc", "seconds"]
summary = {"seeds": [r.get("seed") for r in runs]}
for k in keys:
    v = [float(r[k]) for r in runs if r.get(k) is not None]
    if not v: continue
    m = statistics.mean(v); sd = statistics.stdev(v) if len(v) > 1 else 0.0
    summary[k] = {"mean": round(m, 4 if k != "seconds" else 0), "sd": round(sd, 4 if k != "seconds" else 0)}
    print(f"{k:22s} {m:9.4f} ± {sd:.4f}   ({', '.join(f'{x:.4f}' for x in v)})")
print(json.dumps(summary))
PY
