#!/usr/bin/env bash
# Guards a serving user needs (issue 14 item 4): a checkpoint (and a CF model)
# refuses a --data it was not trained on, a LoRA checkpoint moved away from
# its base says where it looked and that --base overrides, custom templates
# are checked, the answer token is configurable and stored, the built-in
# templates are listed, and prompts use the dataset's item noun.
# Prints "N passed, N failed".
set -u
. "$(dirname "$0")/lib.sh" guards
T=$TMP
rm -rf "$T" && mkdir -p "$T"
VOCAB="$SHARED/testvectors/tokenizer/ggml-vocab-llama-spm.gguf"

"$BIN" synth --users 40 --items 60 --seed 5 --out "$T/a" >/dev/null; check "synth a" [ $? -eq 0 ]
"$BIN" synth --users 20 --items 30 --seed 6 --out "$T/b" >/dev/null; check "synth b" [ $? -eq 0 ]
"$BIN" init-model --arch llama --vocab-from "$VOCAB" --n-embd 32 --n-layer 1 --n-head 2 --n-ff 64 --seed 3 \
  --out "$T/base.gguf" >/dev/null; check "init-model" [ $? -eq 0 ]
"$BIN" train-cf --model mf --data "$T/a" --out "$T/mf.gguf" --dim 8 --max-epochs 2 --threads 1 >/dev/null 2>&1
check "train-cf" [ $? -eq 0 ]
# meta FILE KEY: a metadata value of a GGUF as collm info prints it
meta() { "$BIN" info "$1" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["metadata"]['"\"$2\""']["value"])'; }
tr=(train --batch 4 --steps-per-epoch 1 --max-epochs 1 --eval-rows 40 --warmup-steps 0 --threads 2 --quiet)

# --- the answer token: " Yes" is one token of the Llama-2 vocabulary ("▁Yes"), stored in the checkpoint
"$BIN" "${tr[@]}" --stage 1 --lora-rank 2 --base "$T/base.gguf" --data "$T/a" --answer " Yes" --out "$T/s1.gguf" \
  >/dev/null 2>"$T/err"; check "stage 1 with --answer ' Yes' ($(head -c 200 "$T/err"))" [ $? -eq 0 ]
check "collm.answer stored" [ "$(meta "$T/s1.gguf" collm.answer)" = '" Yes"' ]
check "collm.answer_token is 3869 (▁Yes)" [ "$(meta "$T/s1.gguf" collm.answer_token)" = 3869 ]
"$BIN" "${tr[@]}" --stage 1 --lora-rank 2 --base "$T/base.gguf" --data "$T/a" --answer " No" --out "$T/s1no.gguf" \
  >/dev/null 2>&1; check "stage 1 with --answer ' No'" [ $? -eq 0 ]
check "collm.answer_token is 1939 (▁No)" [ "$(meta "$T/s1no.gguf" collm.answer_token)" = 1939 ]
"$BIN" "${tr[@]}" --stage 1 --lora-rank 2 --base "$T/base.gguf" --data "$T/a" --answer "No" --out "$T/s1no2.gguf" \
  >/dev/null 2>&1; check "stage 1 with --answer No" [ $? -eq 0 ]
check "--answer No is the token 'No' exactly (3782), not '▁No'" [ "$(meta "$T/s1no2.gguf" collm.answer_token)" = 3782 ]
expect_error "--answer of two tokens" "--answer 'Yes indeed' is [0-9]+ tokens .*one token" \
  "$BIN" "${tr[@]}" --stage 1 --base "$T/base.gguf" --data "$T/a" --answer "Yes indeed" --out "$T/never.gguf"
check "nothing written" [ ! -e "$T/never.gguf" ]

# --- custom templates
printf '#Question: liked <ItemTitleList>. Enjoy <TargetTitle>? \\n#Answer:\n' >"$T/typo.txt"
printf '#Question: liked <ItemTitleList>. Enjoy it? \\n#Answer:\n' >"$T/notarget.txt"
printf '#Question: liked <ItemTitleList>. Enjoy <TargetItemTitle>? \\n#Answer:\n' >"$T/good.txt"
expect_error "template with an unknown placeholder" "typo.txt: unknown placeholder <TargetTitle> \(known: " \
  "$BIN" "${tr[@]}" --stage 1 --base "$T/base.gguf" --data "$T/a" --template "$T/typo.txt" --out "$T/never.gguf"
expect_error "template without the target title" "notarget.txt: no <TargetItemTitle>" \
  "$BIN" "${tr[@]}" --stage 1 --base "$T/base.gguf" --data "$T/a" --template "$T/notarget.txt" --out "$T/never.gguf"
"$BIN" "${tr[@]}" --stage 1 --lora-rank 2 --base "$T/base.gguf" --data "$T/a" --template "$T/good.txt" \
  --out "$T/good.gguf" >/dev/null 2>&1; check "a valid custom template trains" [ $? -eq 0 ]
"$BIN" train --template list >"$T/out"; check "train --template list" [ $? -eq 0 ]
check "lists the six built-ins" [ "$(grep -cE '^(collm|tallrec)_(movie|book)(_ids)?  \(' "$T/out")" -eq 6 ]
"$BIN" help templates >"$T/out2"; check "collm help templates = --template list" cmp -s "$T/out" "$T/out2"
"$BIN" help templates --json | python3 -c 'import json,sys; t=json.load(sys.stdin)["templates"]; assert len(t)==6 and all("<TargetItemTitle>" in x["text"] for x in t)'
check "help templates --json" [ $? -eq 0 ]

# --- the checkpoint against --data
"$BIN" "${tr[@]}" --stage 2 --init-from "$T/s1.gguf" --cf "$T/mf.gguf" --data "$T/a" --out "$T/s2.gguf" >/dev/null 2>&1
check "stage 2" [ $? -eq 0 ]
"$BIN" eval --ckpt "$T/s2.gguf" --data "$T/a" --split valid --json >"$T/out" 2>"$T/err"
check "eval on its own data ($(head -c 200 "$T/err"))" [ $? -eq 0 ]
check "stage 2 inherits the answer" [ "$(meta "$T/s2.gguf" collm.answer_token)" = 3869 ]
expect_error "eval on another dataset" "s2.gguf was trained with 61 items and 41 users, but the dataset .*/b has 31 items and 21 users: not the dataset it was trained on" \
  "$BIN" eval --ckpt "$T/s2.gguf" --data "$T/b" --split valid
expect_error "eval-cf on another dataset" "mf.gguf was trained with 61 items and 41 users, but the dataset .*/b has 31 items and 21 users" \
  "$BIN" eval-cf --cf "$T/mf.gguf" --data "$T/b" --split valid
expect_error "stage 2 with a CF model of another dataset" "mf.gguf was trained with 61 items .*not the dataset" \
  "$BIN" "${tr[@]}" --stage 2 --init-from "$T/s1.gguf" --cf "$T/mf.gguf" --data "$T/b" --out "$T/never.gguf"
"$BIN" index --ckpt "$T/s2.gguf" --out "$T/items.faiss" >/dev/null 2>&1; check "index" [ $? -eq 0 ]
expect_error "recommend on another dataset" "not the dataset it was trained on" \
  "$BIN" recommend --ckpt "$T/s2.gguf" --index "$T/items.faiss" --data "$T/b" --user 1

# --- a LoRA checkpoint moved away from its base
mkdir -p "$T/moved" && cp "$T/s1.gguf" "$T/moved/"
expect_error "moved checkpoint" "its base model 'base.gguf' was found neither beside the checkpoint \(.*moved/base.gguf\) nor in the working directory; give --base" \
  "$BIN" eval --ckpt "$T/moved/s1.gguf" --data "$T/a" --split valid
"$BIN" eval --ckpt "$T/moved/s1.gguf" --base "$T/base.gguf" --data "$T/a" --split valid >/dev/null 2>&1
check "--base overrides" [ $? -eq 0 ]

# --- the item noun: prepare --item-noun, then the default templates use it
{ echo "user,song,liked,time,title"
  t=0; for u in 1 2 3 4; do for i in 1 2 3 4; do t=$((t + 1)); echo "u$u,s$i,$(( (u + i) % 2 )),$t,Song $i"; done; done
} >"$T/songs.csv"
"$BIN" prepare --source csv --interactions "$T/songs.csv" --items "$T/songs.csv" --item-col song \
  --items-id-col song --split loo --small-frac 1 --item-noun song --out "$T/songs" >/dev/null 2>"$T/err"
check "prepare --item-noun song ($(head -c 200 "$T/err"))" [ $? -eq 0 ]
check "item_noun.txt" [ "$(cat "$T/songs/item_noun.txt" 2>/dev/null | tr '\n' ' ')" = "song songs " ]
"$BIN" "${tr[@]}" --stage 1 --lora-rank 2 --base "$T/base.gguf" --data "$T/songs" --eval-split train \
  --out "$T/song.gguf" >/dev/null 2>"$T/err"; check "stage 1 on songs ($(head -c 200 "$T/err"))" [ $? -eq 0 ]
meta "$T/song.gguf" collm.template >"$T/tpl"
check "the prompt says songs" grep -q 'the following songs: <ItemTitleList>.*enjoy the song titled' "$T/tpl"
check "and not movies" bash -c "! grep -q 'movie' '$T/tpl'"
expect_error "bad --item-noun" "item noun 'a/b': give WORD or WORD,PLURAL" \
  "$BIN" prepare --source csv --interactions "$T/songs.csv" --items "$T/songs.csv" --item-noun a/b --out "$T/never"
check "nothing written on a bad noun" [ ! -e "$T/never" ]
printf 'a\tb\n' >"$T/a/item_noun.txt"
expect_error "a damaged item_noun.txt" "item_noun.txt: line 1: the item noun must be" \
  "$BIN" eval-cf --cf "$T/mf.gguf" --data "$T/a" --split valid
finish
