#!/usr/bin/env bash
# Bad input to the commands, on a small synthetic dataset and a one-step
# checkpoint: output files (--scores, --dump) checked before the run, never
# over a file the run reads. Prints "N passed, N failed".
set -u
. "$(dirname "$0")/lib.sh" cli_inputs
T=$TMP
rm -rf "${T:?}"/*
D="$T/d"
run "$BIN" synth --users 40 --items 60 --seed 5 --out "$D"
run "$BIN" train-cf --data "$D" --out "$T/mf.gguf" --dim 4 --max-epochs 2 --threads 1 --quiet
run "$BIN" init-model --arch llama --vocab-from "$VOCAB" --n-embd 16 --n-layer 1 --n-head 2 --n-ff 32 --out "$T/base.gguf"
run "$BIN" train --stage 2 --base "$T/base.gguf" --cf "$T/mf.gguf" --data "$D" --out "$T/ck.gguf" --batch 4 \
  --steps-per-epoch 1 --max-epochs 1 --eval-rows 8 --threads 1 --quiet
run "$BIN" index --ckpt "$T/ck.gguf" --out "$T/ix.faiss" --threads 1
sums() { cat "$T/mf.gguf" "$T/ck.gguf" "$T/base.gguf" "$T/ix.faiss" "$D"/*.tsv | md5sum; }
sum0=$(sums)

# --scores / --dump: a missing folder fails before the run (it failed after
# it: eval's table printed, then the error); the run's own inputs are refused
# (they were overwritten: the split, the model, with exit 0)
E=(eval --ckpt "$T/ck.gguf" --data "$D" --split valid --threads 1)
ECF=(eval-cf --cf "$T/mf.gguf" --data "$D" --split valid --threads 1)
TK=(eval-topk --ckpt "$T/ck.gguf" --index "$T/ix.faiss" --data "$D" --candidates 5 --max-users 3 --threads 1)
expect_error "eval-cf --scores into a missing folder" 'no/dir/s.tsv: the output folder .* does not exist' \
  "$BIN" "${ECF[@]}" --scores "$T/no/dir/s.tsv"
check "  ... before the table" [ ! -s "$T/out" ]
expect_error "eval --scores into a missing folder" 'no/dir/s.tsv: the output folder .* does not exist' \
  "$BIN" "${E[@]}" --scores "$T/no/dir/s.tsv"
check "  ... before the table" [ ! -s "$T/out" ]
expect_error "eval-topk --dump into a missing folder" 'no/dir/d.tsv: the output folder .* does not exist' \
  "$BIN" "${TK[@]}" --dump "$T/no/dir/d.tsv"
expect_error "eval-cf --scores onto a folder" "$T: is a folder" "$BIN" "${ECF[@]}" --scores "$T"
expect_error "eval-cf --scores over the split" "--scores .*/valid.tsv is the --split file" \
  "$BIN" "${ECF[@]}" --scores "$D/valid.tsv"
expect_error "eval-cf --scores over a split given as a path" "--scores .*/test.tsv is the --split file" \
  "$BIN" eval-cf --cf "$T/mf.gguf" --data "$D" --split "$D/test.tsv" --threads 1 --scores "$D/./test.tsv"
expect_error "eval-cf --scores over the model" "--scores .*/mf.gguf is the --cf file" \
  "$BIN" "${ECF[@]}" --scores "$T/mf.gguf"
expect_error "eval-cf --scores over another dataset file" "--scores .*/items.tsv is the dataset's items.tsv" \
  "$BIN" "${ECF[@]}" --scores "$D/items.tsv"
expect_error "eval --scores over the checkpoint" "--scores .*/ck.gguf is the --ckpt file" \
  "$BIN" "${E[@]}" --scores "$T/ck.gguf"
expect_error "eval --scores over the base" "--scores .*/base.gguf is the --base file" \
  "$BIN" "${E[@]}" --base "$T/base.gguf" --scores "$T/base.gguf"
expect_error "eval-topk --dump over the index" "--dump .*/ix.faiss is the --index file" \
  "$BIN" "${TK[@]}" --dump "$T/ix.faiss"
expect_error "eval-topk --dump over the split" "--dump .*/valid.tsv is the --split file" \
  "$BIN" "${TK[@]}" --dump "$D/valid.tsv"
# --out over the file the command reads: refused (it was replaced, exit 0)
expect_error "index --out over the checkpoint" "--out .*/ck.gguf is the --ckpt file" \
  "$BIN" index --ckpt "$T/ck.gguf" --out "$T/ck.gguf" --threads 1
expect_error "index --out over the CF model" "--out .*/mf.gguf is the --cf file" \
  "$BIN" index --cf "$T/mf.gguf" --out "$T/mf.gguf" --threads 1
expect_error "logits --out over the model" "--out .*/base.gguf is the --model file" \
  "$BIN" logits --model "$T/base.gguf" --tokens "1 2" --out "$T/base.gguf" --threads 1
expect_error "logits --out into a missing folder" "no/dir/l.f32: the output folder .* does not exist" \
  "$BIN" logits --model "$T/base.gguf" --tokens "1 2" --out "$T/no/dir/l.f32" --threads 1
expect_error "export-lora --out over the checkpoint" "--out .*/ck.gguf is the --ckpt file" \
  "$BIN" export-lora --ckpt "$T/ck.gguf" --out "$T/ck.gguf"
expect_error "init-model --out over the vocabulary" "--out .*/base.gguf is the --vocab-from file" \
  "$BIN" init-model --arch llama --vocab-from "$T/base.gguf" --n-embd 8 --n-layer 1 --n-head 2 --n-ff 16 --out "$T/base.gguf"
check "no input was changed" [ "$(sums)" = "$sum0" ]
"$BIN" "${ECF[@]}" --scores "$T/s.tsv" >/dev/null 2>&1
check "eval-cf --scores still writes ($(wc -l <"$T/s.tsv" 2>&1) lines)" [ "$(wc -l <"$T/s.tsv")" -eq "$(wc -l <"$D/valid.tsv")" ]
"$BIN" "${TK[@]}" --dump "$T/dump.tsv" >/dev/null 2>&1
check "eval-topk --dump still writes" grep -q '^uid	iid	retrieval	llm	log_pop	relevant$' "$T/dump.tsv"

# train: a learning rate below the cosine floor (the default --min-lr 8e-5)
# made the schedule rise from --lr to the floor; refused before any work
TR=(train --stage 1 --base "$T/base.gguf" --data "$D" --batch 4 --steps-per-epoch 1 --max-epochs 1 --eval-rows 8 --threads 1 --quiet)
expect_error "train --min-lr above --lr, both given" "minimum learning rate 8e-05 exceeds the learning rate 5e-05" \
  "$BIN" "${TR[@]}" --lr 5e-5 --min-lr 8e-5 --out "$T/lr.gguf"
expect_error "train --min-lr above --lr" "minimum learning rate 0.01 exceeds the learning rate 0.001" \
  "$BIN" "${TR[@]}" --min-lr 1e-2 --out "$T/lr.gguf"
check "  ... nothing written" [ ! -e "$T/lr.gguf" ]
"$BIN" "${TR[@]}" --lr 5e-5 --out "$T/lr.gguf" >/dev/null 2>&1
check "train --lr 5e-5 alone: the default floor follows it down (a flat schedule) and trains" [ -s "$T/lr.gguf" ]

# recommend's heading for a history (it read "top 3 for a history2")
"$BIN" recommend --ckpt "$T/ck.gguf" --index "$T/ix.faiss" --data "$D" --history 1,2 --k 3 --candidates 5 --threads 1 \
  >"$T/rec.txt" 2>&1
check "recommend --history: heading ($(head -1 "$T/rec.txt"))" grep -q '^top 3 for a history of 2 items (' "$T/rec.txt"

# train: options a stage-1 run took and ignored (a --cf it never read, a joint
# stage it never ran), and LoRA options beside --full, are refused up front
expect_error "train --stage 1 --cf" "--cf applies to --stage 2 only" "$BIN" "${TR[@]}" --cf "$T/mf.gguf" --out "$T/st.gguf"
expect_error "train --stage 1 --train-llm" "--train-llm applies to --stage 2 only" "$BIN" "${TR[@]}" --train-llm --out "$T/st.gguf"
expect_error "train --stage 1 --fece-mid" "--fece-mid applies to --stage 2 only" "$BIN" "${TR[@]}" --fece-mid 4 --out "$T/st.gguf"
expect_error "train --stage 1 --residual-folds" "--residual-folds applies to --stage 2 only" \
  "$BIN" "${TR[@]}" --residual-folds 3 --out "$T/st.gguf"
expect_error "train --full --lora-rank" "--lora-rank with --full" "$BIN" "${TR[@]}" --full --lora-rank 4 --out "$T/st.gguf"
expect_error "train --full --lora-targets" "--lora-targets with --full" "$BIN" "${TR[@]}" --full --lora-targets q,v --out "$T/st.gguf"
check "  ... nothing written" [ ! -e "$T/st.gguf" ]

# a failed write (here: a 1 KiB file-size limit) leaves the file it would
# replace as it was and no partial file (it was truncated to the limit)
small() { bash -c 'trap "" XFSZ; ulimit -f 1; exec "$@"' small "$@"; }
echo old >"$T/keep.tsv"
expect_error "eval-cf --scores, a failed write" "cannot write --scores: .*keep.tsv.tmp.* File too large" \
  small "$BIN" eval-cf --cf "$T/mf.gguf" --data "$D" --split test --threads 1 --scores "$T/keep.tsv"
check "  ... the old file is whole" [ "$(cat "$T/keep.tsv")" = old ]
check "  ... and no temp file is left" [ -z "$(ls "$T" | grep '\.tmp\.')" ]
expect_error "eval-topk --dump, a failed write" "keep.tsv.tmp.* File too large" \
  small "$BIN" eval-topk --ckpt "$T/ck.gguf" --index "$T/ix.faiss" --data "$D" --candidates 20 --threads 1 --dump "$T/keep.tsv"
check "  ... the old file is whole" [ "$(cat "$T/keep.tsv")" = old ]
finish
