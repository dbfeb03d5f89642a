#!/usr/bin/env bash
# Issue 9's "genre text" probe (docs/encoders.md, "The genre text in the
# prompt"): the ML-1M recipe, the same seed, on titles that carry their
# genres before the year ("Sting, The [Comedy, Crime] (1973)"; the year stays
# last, so ctx reads it as before). The dataset directory is a scratch copy
# outside the repository (the data's licence forbids copying it in): items.tsv
# rewritten from item_map.tsv's genres column, the splits linked in place.
# Then bench/ml1m.sh on it; its JSON line is this script's last line. About
# 35 minutes on 2 cores.
#   usage: bench/genre_titles.sh
#   env:   SCRATCH=/tmp/ml1m-genre (the rewritten dataset directory)
#          PREPARE_ONLY=1 writes the directory and stops (no recipe)
#          WORK=build/ml1m-work-genre OUT=build/ml1m-genre.gguf, and any of bench/ml1m.sh's
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${COLLM_SHARED:-$(cd .. && pwd)/shared}
SRC=$SHARED/data/ml-1m
SCRATCH=${SCRATCH:-/tmp/ml1m-genre}
for f in items.tsv item_map.tsv train.tsv valid.tsv valid_small.tsv; do
  [ -f "$SRC/$f" ] || { echo "genre_titles: $SRC/$f is missing" >&2; exit 1; }
done
[ "$(head -n 1 "$SRC/item_map.tsv" | cut -f 3)" = genres ] ||
  { echo "genre_titles: $SRC/item_map.tsv has no third column 'genres'" >&2; exit 1; }
mkdir -p "$SCRATCH"
for f in train.tsv valid.tsv valid_small.tsv item_map.tsv; do ln -sf "$SRC/$f" "$SCRATCH/$f"; done
# iid -> "G1, G2"; a title ending in "(YYYY)" gets " [G1, G2]" before the year, another at its end
awk -F'\t' -v OFS='\t' '
  NR == FNR { if (FNR > 1 && $3 != "") { g = $3; gsub(/\|/, ", ", g); genres[$1] = g }; next }
  FNR == 1 || $2 == "" || !($1 in genres) { print; next }
  match($2, / ?\([0-9][0-9][0-9][0-9]\)$/) {
    print $1, substr($2, 1, RSTART - 1) " [" genres[$1] "] " substr($2, RSTART + (substr($2, RSTART, 1) == " ")); next }
  { print $1, $2 " [" genres[$1] "]" }' "$SRC/item_map.tsv" "$SRC/items.tsv" >"$SCRATCH/items.tsv"
echo "genre_titles: $SCRATCH/items.tsv: $(grep -c '\[' "$SCRATCH/items.tsv") titles with genres" >&2
[ "${PREPARE_ONLY:-0}" = 1 ] && exit 0
DATA="$SCRATCH" WORK=${WORK:-build/ml1m-work-genre} OUT=${OUT:-build/ml1m-genre.gguf} bench/ml1m.sh
