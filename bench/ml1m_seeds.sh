#!/usr/bin/env bash
# The ML-1M recipe (bench/ml1m.sh) over several seeds, then mean ± sd of its
# figures (valid AUC / UAUC, warm / cold, each encoder alone, wall time).
# Each seed's JSON line is kept in $OUTDIR/seedN.json; a seed whose line is
# already there is not run again (delete the file to rerun it).
# Then a table of every model the recipe trains, each alone on valid (its
# $OUTDIR/workN/*.gguf scored by `collm eval-cf`; training time: the sum of
# its log's epoch seconds, evaluation included), beside the recipe's
# checkpoint and the paper's rows (test split, as published).
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
# each model alone on valid: one JSON line per (seed, file)
BIN=${BUILD:-build}/collm
DATA=${DATA:-$(cd .. && pwd)/shared/data/ml-1m}
: >"$OUTDIR/models.jsonl"
for s in $SEEDS; do
  for f in mf cf fuse fuse-sasrec fuse-lightgcn fuse-ctx; do
    g=$OUTDIR/work$s/$f.gguf
    [ -f "$g" ] || continue
    [ -f "$g.log.jsonl" ] || { echo "ml1m_seeds: $g has no training log $g.log.jsonl" >&2; exit 1; }
    secs=$("${PYTHON:-/usr/bin/python3}" -c 'import json,sys; print(sum(json.loads(l).get("seconds") or 0 for l in open(sys.argv[1])))' "$g.log.jsonl" 2>/dev/null) ||
      { echo "ml1m_seeds: $g.log.jsonl is not a training log (one JSON object a line)" >&2; exit 1; }
    "$BIN" eval-cf --cf "$g" --data "$DATA" --split valid --json --threads "${THREADS:-2}" |
      sed "s/^{/{\"seed\":$s,\"file\":\"$f\",\"train_seconds\":$secs,/" >>"$OUTDIR/models.jsonl"
  done
done
"${PYTHON:-/usr/bin/python3}" - "$OUTDIR" $SEEDS <<'PY'
import json, statistics, sys
out, seeds = sys.argv[1], sys.argv[2:]

def last_line(path):
    try:
        run = json.loads(open(path).read().strip().splitlines()[-1])
        if isinstance(run, dict): return run
    except (OSError, ValueError, IndexError):
        pass
    sys.exit(f"ml1m_seeds: {path} does not end with bench/ml1m.sh's JSON line (delete it to run the seed again)")

def mean_sd(v):
    return statistics.mean(v), statistics.stdev(v) if len(v) > 1 else 0.0

def ms(v, d=4): # "mean ± sd" of v, "-" when empty
    if not v: return "-"
    m, sd = mean_sd(v)
    return f"{m:.{d}f} ± {sd:.{d}f}"

runs = [last_line(f"{out}/seed{s}.json") for s in seeds]
keys = ["valid_auc", "valid_uauc", "valid_auc_warm", "valid_auc_cold", "valid_rest_auc", "valid_rest_uauc", "valid_small_auc", "valid_small_uauc",
        "llm_valid_small_auc", "cf_valid_auc", "cf_valid_uauc", "fuse_valid_auc", "fuse_valid_uauc",
        "mf_valid_auc", "mf_valid_uauc", "seconds"]
values = {k: [float(r[k]) for r in runs if r.get(k) is not None] for k in keys}
summary = {"seeds": [r.get("seed") for r in runs]}
for k in keys:
    v = values[k]
    if not v: continue
    m, sd = mean_sd(v)
    summary[k] = {"mean": round(m, 4 if k != "seconds" else 0), "sd": round(sd, 4 if k != "seconds" else 0)}
    print(f"{k:22s} {m:9.4f} ± {sd:.4f}   ({', '.join(f'{x:.4f}' for x in v)})")

# every model alone beside the recipe: mean ± sd over the seeds
rows = [json.loads(l) for l in open(f"{out}/models.jsonl")]
names = {"mf": "MF", "cf": None, "fuse": "DIN", "fuse-sasrec": "SASRec", "fuse-lightgcn": "LightGCN", "fuse-ctx": "ctx"}
print(f"\n| model (valid, {len(runs)} seeds) | AUC | UAUC | warm AUC | cold AUC | training s |")
print("|---|---|---|---|---|---|")
models = {}
for f, name in names.items():
    r = [x for x in rows if x["file"] == f]
    if not r: continue
    kind = r[0]["kind"]
    label = name or f"{kind} (the slots' encoder)" # cf.gguf: the recipe's CF_KIND
    cols = [ms([x[k] for x in r]) for k in ("auc", "uauc", "auc_warm", "auc_cold")] + [ms([x["train_seconds"] for x in r], 1)]
    models[f] = {"kind": kind, **{k: statistics.mean(x[k] for x in r) for k in ("auc", "uauc", "auc_warm", "auc_cold", "train_seconds")}}
    print(f"| {label} | " + " | ".join(cols) + " |")
cols = [ms(values[k]) for k in ("valid_auc", "valid_uauc", "valid_auc_warm", "valid_auc_cold")] + \
       [ms(values["seconds"], 0) + " (all stages)"]
print("| CoLLM, the recipe (bench/ml1m.sh) | " + " | ".join(cols) + " |")
print("| paper, CoLLM-FaissRet (test split, GPUs) | 0.7295 | 0.6875 | - | - | - |")
print("| paper, best CoLLM (Vicuna-7B; test split, GPUs) | 0.7479 | 0.6999 | - | - | - |")
summary["models"] = models
print(json.dumps(summary))
PY
