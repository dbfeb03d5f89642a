#!/usr/bin/env bash
# Does refitting the fused encoders on train + valid help the period after
# valid (issue 9)? The test split comes months after valid; an encoder that
# trained on train alone has not seen the period just before it. This script
# asks the question one period earlier, on valid alone, so the test split is
# never read: valid is cut by time into an early and a late half (rows
# ordered by timestamp, then file order), and per seed
#   selected  each fused encoder kind of the recipe (default din, sasrec,
#             lightgcn, ctx) trained on train, early-stopped (ctx: fitted) on
#             the early half; the recipe's checkpoint fused with them by
#             fit-score on the early half (every weight refitted);
#   refit     each of those refit on train + the early half (`collm train-cf
#             --refit-from M --train-split train,EARLY`: M's options, seed
#             and best epoch count, no evaluation; ctx keeps its weights) and
#             stored in a copy of that checkpoint with the same weights
#             (`collm fit-score --keep-weights`);
# and both checkpoints, and every encoder alone, are scored on the late half,
# which no weight or encoder of either arm saw. The recipe's own LLM and
# mfbias slots are the same in both arms (the LLM was early-stopped on
# valid_small's first rows, some of them late rows: that touches both arms
# alike, not their difference). Prints a table and one JSON line (means over
# seeds and each seed).
#   usage: CKPT=build/ml1m.gguf bench/refit.sh     (after `OUT=build/ml1m.gguf bench/ml1m.sh`)
#   env: SEEDS (default "0 1 2": encoder seeds 2023+SEED, as bench/ml1m.sh),
#        KINDS (default din,sasrec,lightgcn,ctx), THREADS (2), OUTDIR (build/refit)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
bench_ml1m_paths
OUTDIR=${OUTDIR:-$BUILD/refit}
SEEDS=${SEEDS:-0 1 2}
KINDS=${KINDS:-din,sasrec,lightgcn,ctx}
[ -f "$CKPT" ] || { echo "refit: no checkpoint $CKPT (run OUT=$CKPT bench/ml1m.sh first)" >&2; exit 1; }
make -s BUILD="$BUILD" "$BIN"
mkdir -p "$OUTDIR"
t0=$(date +%s)
log() { echo "[$(( $(date +%s) - t0 ))s] $*" >&2; }

# valid cut by time (written under build/, never into the repository)
EARLY=$OUTDIR/valid_early.tsv LATE=$OUTDIR/valid_late.tsv
"${PYTHON:-/usr/bin/python3}" - "$DATA/valid.tsv" "$EARLY" "$LATE" <<'EOF'
import sys
lines = open(sys.argv[1]).read().splitlines()
head, rows = lines[0], lines[1:]
ts = head.split("\t").index("timestamp")
order = sorted(range(len(rows)), key=lambda k: (int(rows[k].split("\t")[ts]), k))
half = len(rows) // 2
for path, part in ((sys.argv[2], order[:half]), (sys.argv[3], order[half:])):
    with open(path, "w") as f:
        f.write("\n".join([head] + [rows[k] for k in sorted(part)]) + "\n")
EOF
IFS=, read -r -a kinds <<<"$KINDS"
get() { echo "$1" | grep -o "\"$2\":[^,}]*" | head -n 1 | cut -d: -f2; }
results=()
for seed in $SEEDS; do
  S=$OUTDIR/seed$seed
  mkdir -p "$S"
  sel=() ref=()
  for k in "${kinds[@]}"; do
    log "seed $seed: $k on train, selected on the early half; its refit on train + early"
    "$BIN" train-cf --model "$k" --data "$DATA" --out "$S/$k.gguf" --eval-split "$EARLY" --threads "$THREADS" \
      --seed $((2023 + seed)) --quiet
    "$BIN" train-cf --refit-from "$S/$k.gguf" --data "$DATA" --train-split "train,$EARLY" --out "$S/$k-refit.gguf" \
      --threads "$THREADS" --quiet
    sel+=("$S/$k.gguf") ref+=("$S/$k-refit.gguf")
  done
  cp "$CKPT" "$S/selected.gguf"
  log "seed $seed: fit-score on the early half"
  "$BIN" fit-score --ckpt "$S/selected.gguf" --data "$DATA" --split "$EARLY" --with "$(IFS=,; echo "${sel[*]}")" \
    --json --threads "$THREADS" >"$S/fit.json"
  cp "$S/selected.gguf" "$S/refit.gguf"
  "$BIN" fit-score --ckpt "$S/refit.gguf" --data "$DATA" --split "$EARLY" --with "$(IFS=,; echo "${ref[*]}")" \
    --keep-weights --json --threads "$THREADS" >/dev/null
  log "seed $seed: both checkpoints and every encoder on the late half"
  a=$("$BIN" eval --ckpt "$S/selected.gguf" --data "$DATA" --split "$LATE" --json --threads "$THREADS")
  b=$("$BIN" eval --ckpt "$S/refit.gguf" --data "$DATA" --split "$LATE" --json --threads "$THREADS")
  each=
  for k in "${kinds[@]}"; do
    x=$("$BIN" eval-cf --cf "$S/$k.gguf" --data "$DATA" --split "$LATE" --json --threads "$THREADS")
    y=$("$BIN" eval-cf --cf "$S/$k-refit.gguf" --data "$DATA" --split "$LATE" --json --threads "$THREADS")
    each+="${each:+,}\"$k\":[$(get "$x" auc),$(get "$x" uauc),$(get "$y" auc),$(get "$y" uauc)]"
  done
  results+=("{\"seed\":$seed,\"selected\":[$(get "$a" auc),$(get "$a" uauc)],\"refit\":[$(get "$b" auc),$(get "$b" uauc)],\"each\":{$each}}")
done
log "done"
"${PYTHON:-/usr/bin/python3}" - "${results[@]}" <<'EOF'
import json, statistics, sys
runs = [json.loads(a) for a in sys.argv[1:]]
print(f"{'late half of valid':32s} {'AUC':>7s} {'UAUC':>7s}   (selected -> refit on train + early half)")
for r in runs:
    s, f = r["selected"], r["refit"]
    print(f"seed {r['seed']}: fused checkpoint       {s[0]:.4f} {s[1]:.4f} -> {f[0]:.4f} {f[1]:.4f}"
          f"   ({f[0] - s[0]:+.4f}, {f[1] - s[1]:+.4f})")
    for k, v in r["each"].items():
        print(f"        {k:22s} {v[0]:.4f} {v[1]:.4f} -> {v[2]:.4f} {v[3]:.4f}")
mean = lambda xs: statistics.mean(xs)
sd = lambda xs: statistics.stdev(xs) if len(xs) > 1 else 0.0
d_auc = [r["refit"][0] - r["selected"][0] for r in runs]
d_uauc = [r["refit"][1] - r["selected"][1] for r in runs]
out = {"seeds": [r["seed"] for r in runs],
       "selected_auc": mean([r["selected"][0] for r in runs]), "selected_uauc": mean([r["selected"][1] for r in runs]),
       "refit_auc": mean([r["refit"][0] for r in runs]), "refit_uauc": mean([r["refit"][1] for r in runs]),
       "refit_gain_auc": mean(d_auc), "refit_gain_auc_sd": sd(d_auc),
       "refit_gain_uauc": mean(d_uauc), "refit_gain_uauc_sd": sd(d_uauc), "runs": runs}
print(f"refit gain over {len(runs)} seeds: AUC {out['refit_gain_auc']:+.4f} ± {out['refit_gain_auc_sd']:.4f}, "
      f"UAUC {out['refit_gain_uauc']:+.4f} ± {out['refit_gain_uauc_sd']:.4f}")
print(json.dumps(out))
EOF
