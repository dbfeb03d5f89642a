#!/usr/bin/env bash
# One grammar for every command: --name=value, the short forms -m -t -o -h,
# older spellings as aliases (--wd), one --seed default, --json wherever a
# command reports a result, collm --version / collm help CMD.
set -u
. "$(dirname "$0")/lib.sh" cli_grammar
rm -rf "${TMP:?}"/*
json_ok() { python3 -c "import json,sys; d=json.load(open('$1')); sys.exit(0 if $2 else 1)" 2>/dev/null; }

# --version, version, help
want=$(sed -n 's/^#define COLLM_VERSION_STRING "\(.*\)"/\1/p' include/collm/version.h)
check "collm --version prints the library version ($want)" [ "$("$BIN" --version)" = "collm $want" ]
check "collm version = collm --version" [ "$("$BIN" version)" = "$("$BIN" --version)" ]
"$BIN" version --json >"$TMP/v.json"
check "version --json" json_ok "$TMP/v.json" "d['version']=='$want' and d['version_number']>0"
# the kernels it reports against the CPU's flags (read here from /proc/cpuinfo, not as collm reads them)
flags=" $(grep -m1 '^flags' /proc/cpuinfo) "
has() { for f in "$@"; do case $flags in *" $f "*) ;; *) return 1 ;; esac; done; }
if has avx2 fma avx512f avx512bw avx512cd avx512dq avx512vl; then isa=x86-64-v4
elif has avx2 fma; then isa=x86-64-v3; else isa=baseline; fi
check "version --json: kernels $isa, as this CPU's flags say" json_ok "$TMP/v.json" "d['kernels']=='$isa' and d['blas_core']"
COLLM_ISA=baseline "$BIN" version --json >"$TMP/v0.json"
check "version --json: COLLM_ISA=baseline caps the kernels" json_ok "$TMP/v0.json" "d['kernels']=='baseline'"
if [ "$isa" != baseline ]; then
  COLLM_ISA=x86-64-v3 OPENBLAS_CORETYPE=Haswell "$BIN" version --json >"$TMP/v3.json"
  check "version --json: COLLM_ISA=x86-64-v3, OPENBLAS_CORETYPE=Haswell" json_ok "$TMP/v3.json" \
    "d['kernels']=='x86-64-v3' and d['blas_core']=='Haswell'"
fi
"$BIN" help eval >"$TMP/h1"; "$BIN" eval --help >"$TMP/h2"
check "collm help eval = collm eval --help" cmp -s "$TMP/h1" "$TMP/h2"
check "help text shows the short forms" grep -q -- '-m, --ckpt FILE' "$TMP/h1"
expect_error "help of an unknown command" "collm help: unknown command 'nosuch'" "$BIN" help nosuch
"$BIN" --help >"$TMP/top"
check "top-level help lists --version and help CMD" grep -q 'collm help <command>' "$TMP/top"

# a number with a leading space was read past it (strtoll / strtod skip spaces)
expect_error "an integer with a leading space" "option --users: ' 5' is not an integer" "$BIN" synth --out "$TMP/x" --users " 5"
expect_error "a number with a leading tab" "option --scale: '.0.1' is not a number" "$BIN" synth --out "$TMP/x" --scale "$(printf '\t0.1')"

# an option given twice is an error naming it (the last value used to win silently:
# fit-score --with a.gguf --with b.gguf fused b alone), a flag or an alias too
expect_error "an option given twice" "collm fit-score: option --with given twice" \
  "$BIN" fit-score --ckpt "$TMP/none.gguf" --data "$TMP" --with a.gguf --with b.gguf
expect_error "an option given twice, once as --name=value" "option --lr given twice" \
  "$BIN" train-cf --data "$TMP" --out "$TMP/x.gguf" --lr 1e-3 --lr=1e-2
expect_error "a flag given twice" "option --json given twice" "$BIN" version --json --json
expect_error "an option and its alias" "option --weight-decay given twice" \
  "$BIN" train-cf --data "$TMP" --out "$TMP/x.gguf" --weight-decay 1e-3 --wd 1e-2

# Every command: -t and -h listed, no --wd spelling left, every --seed defaults to 2023.
for cmd in $(awk '/^commands:/ {on = 1; next} on && !NF {exit} on {print $1}' "$TMP/top"); do
  "$BIN" "$cmd" --help >"$TMP/help_$cmd" 2>&1
  check "$cmd --help: -t, --threads and -h, --help" grep -q -- '-t, --threads N' "$TMP/help_$cmd"
  check "$cmd --help: -h, --help" grep -q -- '-h, --help' "$TMP/help_$cmd"
  check "$cmd --help: no --wd option of its own" test -z "$(grep -E '^  --wd ' "$TMP/help_$cmd")"
  if grep -q -- '--seed N' "$TMP/help_$cmd"; then
    check "$cmd --seed defaults to 2023" grep -Eq -- '--seed N .*\(default 2023\)' "$TMP/help_$cmd"
  fi
done

# --name=value equals --name value; -o is --out; the default seed is 2023
"$BIN" synth --users=20 --items=30 --seed=3 -o "$TMP/s1" >/dev/null
"$BIN" synth --users 20 --items 30 --seed 3 --out "$TMP/s2" >/dev/null
check "--name=value and -o give the same files" cmp -s "$TMP/s1/train.tsv" "$TMP/s2/train.tsv"
"$BIN" synth --users 20 --items 30 --out "$TMP/s3" >/dev/null
"$BIN" synth --users 20 --items 30 --seed 2023 --out "$TMP/s4" >/dev/null
check "synth: default seed = 2023" cmp -s "$TMP/s3/train.tsv" "$TMP/s4/train.tsv"
check "synth: seed 3 differs from 2023" test "$(cmp -s "$TMP/s1/train.tsv" "$TMP/s3/train.tsv"; echo $?)" = 1
"$BIN" synth --users 20 --items 30 --seed 3 --out "$TMP/s5" --json >"$TMP/synth.json"
check "synth --json" json_ok "$TMP/synth.json" "d['users']==20 and d['items']==30 and d['seed']==3"
expect_error "a flag given a value" "option --json takes no value \(got '--json=1'\)" "$BIN" synth --out "$TMP/x" --json=1
expect_error "an option without its value" 'option --users needs a value' "$BIN" synth --out "$TMP/x" --users
expect_error "an unknown short form" "unknown option '-x'" "$BIN" synth -x 1
expect_error "a stray argument" "unexpected argument 'extra'" "$BIN" synth --out "$TMP/x" extra
expect_error "-m where the command has neither --model nor --ckpt" "unknown option '-m'" "$BIN" synth -m x

# init-model: default seed 2023, --json
I=(init-model --arch llama --vocab-from "$VOCAB" --n-embd 16 --n-layer 1 --n-head 2 --n-ff 32)
"$BIN" "${I[@]}" -o "$TMP/m_default.gguf" >/dev/null
"$BIN" "${I[@]}" --seed 2023 --out "$TMP/m_2023.gguf" --json >"$TMP/init.json"
check "init-model: default seed = 2023" cmp -s "$TMP/m_default.gguf" "$TMP/m_2023.gguf"
check "init-model --json" json_ok "$TMP/init.json" "d['n_embd']==16 and d['n_layer']==1 and d['parameters']>0"

# -m is --model (tokenize, info) ...
"$BIN" tokenize -m "$VOCAB" --text="Hello world" >"$TMP/t1"
"$BIN" tokenize --model "$VOCAB" --text "Hello world" >"$TMP/t2"
check "tokenize -m and --text= equal the long forms" cmp -s "$TMP/t1" "$TMP/t2"
"$BIN" tokenize -m "$VOCAB" --text "Hello world" --json >"$TMP/t.json"
check "tokenize --json: ids equal the plain line" json_ok "$TMP/t.json" "' '.join(map(str,d['ids']))=='$(cat "$TMP/t1")' and len(d['pieces'])==len(d['ids'])"
"$BIN" info -m "$TMP/m_2023.gguf" --json >"$TMP/info.json"
check "info -m --json" json_ok "$TMP/info.json" "d['metadata']['general.architecture']['value']=='\"llama\"' and d['parameters']==$(python3 -c "import json; print(json.load(open('$TMP/init.json'))['parameters'])")"

# train-cf: --model mf kept, --wd kept as an alias of --weight-decay, --json
D="$TMP/s1"
"$BIN" train-cf --model mf --data "$D" --out "$TMP/mf_wd.gguf" --dim 4 --max-epochs 3 --wd 1e-3 -t 1 >/dev/null 2>&1
"$BIN" train-cf -m mf --data="$D" -o "$TMP/mf_weight_decay.gguf" --dim 4 --max-epochs 3 --weight-decay 1e-3 -t 1 --json \
  >"$TMP/cf.json" 2>/dev/null
check "train-cf --wd = --weight-decay" cmp -s "$TMP/mf_wd.gguf" "$TMP/mf_weight_decay.gguf"
check "train-cf --json" json_ok "$TMP/cf.json" "d['model']=='mf' and d['epochs']==3 and 0<=d['eval_auc']<=1"
"$BIN" train-cf --data "$D" --out "$TMP/mf_default.gguf" --dim 4 --max-epochs 3 --weight-decay 1e-3 --seed 2023 -t 1 >/dev/null 2>&1
check "train-cf: default seed = 2023" cmp -s "$TMP/mf_wd.gguf" "$TMP/mf_default.gguf"

# train / eval / index / recommend on a one-step checkpoint: -m is --ckpt, --json
"$BIN" train --stage 2 --base "$TMP/m_2023.gguf" --cf "$TMP/mf_wd.gguf" --data "$D" -o "$TMP/ck.gguf" --batch 4 \
  --steps-per-epoch 1 --max-epochs 1 --eval-rows 8 -t 1 --quiet --json >"$TMP/train.json" 2>"$TMP/err"
check "train --json ($(tail -1 "$TMP/err"))" json_ok "$TMP/train.json" "d['stage']==2 and d['epochs']==1 and d['checkpoint'].endswith('ck.gguf')"
"$BIN" train --stage 2 --base "$TMP/m_2023.gguf" --cf "$TMP/mf_wd.gguf" --data "$D" -o "$TMP/ck2.gguf" --batch 4 \
  --steps-per-epoch 1 --max-epochs 1 --eval-rows 8 -t 1 --quiet --seed 2023 >"$TMP/train.txt" 2>/dev/null
check "train text summary" grep -q '^train: stage 2, 1 epochs (best 1): valid_small auc' "$TMP/train.txt"
check "train: default seed = 2023" cmp -s "$TMP/ck.gguf" "$TMP/ck2.gguf"
"$BIN" eval -m "$TMP/ck.gguf" --data "$D" --split=valid --json -t 1 >"$TMP/e1.json"
"$BIN" eval --ckpt "$TMP/ck.gguf" --data "$D" --split valid --json --threads 1 >"$TMP/e2.json"
check "eval -m = eval --ckpt" json_ok "$TMP/e1.json" "d['auc']==json.load(open('$TMP/e2.json'))['auc'] and d['n']>0"
"$BIN" index -m "$TMP/ck.gguf" -o "$TMP/ix.faiss" --json -t 1 >"$TMP/ix.json" 2>/dev/null
check "index -m (--ckpt) --json" json_ok "$TMP/ix.json" "d['factory']=='Flat' and d['items']>0 and d['dim']==4"
"$BIN" recommend -m "$TMP/ck.gguf" --index="$TMP/ix.faiss" --data "$D" --user=1 --k=3 --candidates=5 --json -t 1 >"$TMP/r.json"
check "recommend with -m and --name=value" json_ok "$TMP/r.json" "len(d['items'])==3"
expect_error "-m names the file it could not open" 'nosuch.gguf' "$BIN" eval -m "$TMP/nosuch.gguf" --data "$D" --split valid
finish
