#!/usr/bin/env bash
# Sensitivity sweep (issue 9): trains one model per value of one option of
# `collm train` or `collm train-cf`, evaluates each on a split, writes one JSON
# line per run and a PNG of AUC / UAUC against the swept value (gnuplot), like
# the paper's sensitivity figures.
#
#   bench/sweep.sh --out DIR --param --lr --values "1e-3 3e-3 1e-2" [--split valid_small] \
#       [--eval-data DIR] -- train-cf --model mf --data ../shared/data/ml-1m --threads 2
#
# Everything after `--` is the collm command line without --out (the sweep adds
# the swept option and --out DIR/run-VALUE.gguf). Evaluation: `collm eval-cf`
# for train-cf, `collm eval` otherwise, on --split (default valid_small) of the
# command's --data (or --eval-data). Results: DIR/sweep.jsonl, DIR/sweep.png.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
BIN=${COLLM_BIN:-$BUILD/collm}
out="" param="" values="" split=valid_small eval_data=""
usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 1; }
while [ $# -gt 0 ]; do
  case $1 in
    --out) out=$2; shift 2;;
    --param) param=$2; shift 2;;
    --values) values=$2; shift 2;;
    --split) split=$2; shift 2;;
    --eval-data) eval_data=$2; shift 2;;
    --) shift; break;;
    -h|--help) usage;;
    *) echo "sweep: unknown option '$1' (the collm command goes after --)" >&2; exit 1;;
  esac
done
[ -n "$out" ] && [ -n "$param" ] && [ -n "$values" ] && [ $# -gt 0 ] || usage
case $param in --*) ;; *) echo "sweep: --param must be a collm option such as --lr (got '$param')" >&2; exit 1;; esac
for a in "$@"; do # (collm refuses an option given twice; say which one here)
  case $a in "$param" | "$param="*) echo "sweep: the command after -- already gives $param: the sweep sets it" >&2; exit 1;; esac
done
sub=$1; shift
case $sub in train|train-cf) ;; *) echo "sweep: the command must be train or train-cf (got '$sub')" >&2; exit 1;; esac
cmd=("$@")
if [ -z "$eval_data" ]; then
  for ((i = 0; i < ${#cmd[@]}; i++)); do [ "${cmd[$i]}" = --data ] && eval_data=${cmd[$((i + 1))]:-}; done
fi
[ -n "$eval_data" ] || { echo "sweep: no --data in the command and no --eval-data" >&2; exit 1; }
[ -x "$BIN" ] || make -s BUILD="$BUILD" "$BIN"
mkdir -p "$out"
: > "$out/sweep.jsonl"
get() { printf '%s\n' "$1" | grep -o "\"$2\":[^,}]*" | head -n 1 | cut -d: -f2; }
for v in $values; do
  ckpt="$out/run-${v//\//_}.gguf"
  t0=$(date +%s.%N)
  if ! "$BIN" "$sub" "${cmd[@]}" "$param" "$v" --out "$ckpt" >"$out/run-${v//\//_}.log" 2>&1; then
    echo "sweep: $sub $param $v failed: $(tail -n 1 "$out/run-${v//\//_}.log")" >&2; exit 1
  fi
  secs=$(echo "$(date +%s.%N) - $t0" | bc)
  if [ "$sub" = train-cf ]; then
    res=$("$BIN" eval-cf --cf "$ckpt" --data "$eval_data" --split "$split" --json)
  else
    res=$("$BIN" eval --ckpt "$ckpt" --data "$eval_data" --split "$split" --json)
  fi
  line="{\"command\":\"$sub\",\"param\":\"$param\",\"value\":\"$v\",\"split\":\"$split\",\"auc\":$(get "$res" auc),\"uauc\":$(get "$res" uauc),\"train_seconds\":$(printf '%.1f' "$secs"),\"checkpoint\":\"$ckpt\"}"
  echo "$line" | tee -a "$out/sweep.jsonl"
done
# The plot: numeric values on x (log scale when all > 0 and spanning >= 10x),
# else one category per run (also when a 0 sits beside values spanning >= 10x).
if command -v gnuplot >/dev/null 2>&1; then
  awk -F'"' '{ for (i = 1; i < NF; i++) { if ($i == "value") v = $(i + 2) }
               match($0, /"auc":[^,}]*/); a = substr($0, RSTART + 6, RLENGTH - 6)
               match($0, /"uauc":[^,}]*/); u = substr($0, RSTART + 7, RLENGTH - 7)
               print NR - 1, v, a, u }' "$out/sweep.jsonl" > "$out/sweep.dat"
  # spanning >= 10x with a 0 among them (e.g. weight decay 0, 1e-5 ... 1e-3): one category per run
  numeric=$(awk '{ if ($2 !~ /^[-+0-9.eE]+$/) bad = 1; if ($2 <= 0) nonpos = 1; else if (!pos++ || $2 < lo) lo = $2
                   if (NR == 1 || $2 > hi) hi = $2 }
                 END { if (bad || (nonpos && pos > 1 && hi >= 10 * lo)) print "no"; else if (!nonpos && hi >= 10 * lo) print "log"; else print "lin" }' "$out/sweep.dat")
  # columns of sweep.dat: run index, value, AUC, UAUC
  if [ "$numeric" = no ]; then auc_cols='1:3:xtic(2)'; uauc_cols='1:4'; logx="set xrange [-0.5:*]"
  else auc_cols='2:3'; uauc_cols='2:4'; logx=$([ "$numeric" = log ] && echo "set logscale x" || true); fi
  gnuplot <<GP
set terminal pngcairo size 800,500 noenhanced
set output "$out/sweep.png"
set title "collm $sub: valid AUC / UAUC against $param ($split)"
set xlabel "$param"
set ylabel "AUC"
set grid
set key bottom right
$logx
plot "$out/sweep.dat" using $auc_cols with linespoints lw 2 pt 7 title "AUC", \
     "" using $uauc_cols with linespoints lw 2 pt 5 title "UAUC"
GP
  echo "sweep: wrote $out/sweep.jsonl and $out/sweep.png" >&2
else
  echo "sweep: gnuplot not found (scripts/setup.sh --bench installs it); wrote $out/sweep.jsonl" >&2
fi
