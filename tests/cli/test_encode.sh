#!/usr/bin/env bash
# `collm encode`: the three prompt files for another implementation
# (bench/train_speed.sh's PyTorch peer): one line per prompt
# `label n_tokens slot_rows | ids`, the counts asked for, n_tokens equal to
# the ids on the line, stage-2 slot rows holding the unk token, the shared
# template start tokenized as `collm tokenize` does; one-line errors.
set -u
. "$(dirname "$0")/lib.sh" encode
"$BIN" synth --users 40 --items 60 --seed 5 --out "$TMP/data" >/dev/null
"$BIN" init-model --arch llama --vocab-from "$SHARED/testvectors/tokenizer/ggml-vocab-llama-spm.gguf" --n-embd 32 \
  --n-layer 1 --n-head 2 --n-ff 48 --seed 3 --out "$TMP/base.gguf" >/dev/null
"$BIN" train-cf --model mf --data "$TMP/data" --out "$TMP/mf.gguf" --dim 16 --max-epochs 1 >/dev/null 2>&1
rm -rf "$TMP/peer"
out=$("$BIN" encode --base "$TMP/base.gguf" --data "$TMP/data" --cf "$TMP/mf.gguf" --out "$TMP/peer" --rows 50 \
  --eval-rows 30 --json 2>&1); rc=$?
check "encode exit 0 ($out)" [ "$rc" -eq 0 ]
check "json summary" python3 -c "import json,sys; d=json.loads(sys.argv[1]); assert d['s1_train.txt']['prompts'] == 50 and d['s2_train.txt']['prompts'] == 50 and d['s1_vs.txt']['prompts'] == 30" "$out"
for f in s1_train s2_train s1_vs; do
  check "$f.txt exists" [ -s "$TMP/peer/$f.txt" ]
  # every line: label in {0,1}, n_tokens = the number of ids, slot rows inside the prompt
  bad=$(awk -F'|' '{ split($1, h, " "); n = split($2, ids, " ");
                     if ((h[1] != 0 && h[1] != 1) || h[2] != n || ids[1] != 1) { bad++; next }
                     if (h[3] != "") { k = split(h[3], s, ","); for (i = 1; i <= k; i++) if (s[i] < 0 || s[i] >= n || ids[s[i] + 1] != 0) bad++ } }
                   END { print bad + 0 }' "$TMP/peer/$f.txt")
  check "$f.txt: well-formed lines ($bad bad)" [ "$bad" -eq 0 ]
done
check "50 training prompts" [ "$(wc -l <"$TMP/peer/s1_train.txt")" -eq 50 ]
check "30 evaluation prompts" [ "$(wc -l <"$TMP/peer/s1_vs.txt")" -eq 30 ]
check "stage 1: no slot rows" [ "$(awk -F'|' '{ split($1, h, " "); if (h[3] != "") n++ } END { print n + 0 }' "$TMP/peer/s1_train.txt")" -eq 0 ]
# collm_movie: a user slot and a target-item slot in every prompt
check "stage 2: two slot rows each" [ "$(awk -F'|' '{ split($1, h, " "); if (split(h[3], s, ",") != 2) n++ } END { print n + 0 }' "$TMP/peer/s2_train.txt")" -eq 0 ]
# both templates start with this sentence: the same ids as the tokenizer gives it
start=$("$BIN" tokenize --model "$TMP/base.gguf" --bos --text "#Question: A user has given high ratings to the following movies:")
k=$(echo "$start" | wc -w)
for f in s1_train s2_train s1_vs; do
  first=$(head -1 "$TMP/peer/$f.txt" | cut -d'|' -f2 | cut -d' ' -f2-$((k + 1)))
  check "$f.txt starts with the template's tokens" [ "$first" = "$start" ]
done
# without --cf: no stage-2 file; all rows by default
rm -rf "$TMP/peer1"
"$BIN" encode --base "$TMP/base.gguf" --data "$TMP/data" --out "$TMP/peer1" >/dev/null 2>&1
check "no --cf: no s2_train.txt" [ ! -e "$TMP/peer1/s2_train.txt" ]
check "all training rows" [ "$(wc -l <"$TMP/peer1/s1_train.txt")" -eq "$(($(wc -l <"$TMP/data/train.tsv") - 1))" ]

expect_error "missing base" "nope.gguf" "$BIN" encode --base "$TMP/nope.gguf" --data "$TMP/data" --out "$TMP/x"
expect_error "negative rows" "--rows" "$BIN" encode --base "$TMP/base.gguf" --data "$TMP/data" --out "$TMP/x" --rows -1
expect_error "unknown split" "nope" "$BIN" encode --base "$TMP/base.gguf" --data "$TMP/data" --out "$TMP/x" --eval-split nope
expect_error "no --out" "--out" "$BIN" encode --base "$TMP/base.gguf" --data "$TMP/data"
finish
