#!/usr/bin/env bash
# The library as others embed it: `make install PREFIX=...` lays out headers,
# both libraries and collm.pc; examples/score_prompt.c builds against that
# install through pkg-config alone (public headers, shared library) and its
# answer logit equals `collm logits` for the same tokens. Also: every exported
# symbol carries the collm_ prefix, the public headers compile as C++, and
# the layering check passes on the tree and fails on an upward include.
. "$(dirname "$0")/lib.sh" install
BUILD=${BUILD:-build}
PREFIX=$(cd "$TMP" && pwd)/prefix
rm -rf "$PREFIX"
MODEL="$SHARED/models/stories260K.gguf"

check "make install" make -s --no-print-directory BUILD="$BUILD" PREFIX="$PREFIX" install >"$TMP/install.log" 2>&1
for f in include/collm/collm.h include/collm/version.h lib/libcollm.a lib/libcollm.so lib/libcollm.so.0 lib/pkgconfig/collm.pc bin/collm; do
  check "installed $f" [ -e "$PREFIX/$f" ]
done
check "no private header installed" [ ! -e "$PREFIX/include/collm/ops.h" ]
export PKG_CONFIG_PATH="$PREFIX/lib/pkgconfig"
check "pkg-config knows collm" pkg-config --exists collm
check "pkg-config version matches the header" [ "$(pkg-config --modversion collm)" = "$(sed -n 's/^#define COLLM_VERSION_STRING "\(.*\)"/\1/p' include/collm/version.h)" ]
# shellcheck disable=SC2046
check "example builds from the install" cc -std=c11 -Wall -Wextra -Werror -o "$TMP/score_prompt" examples/score_prompt.c \
  $(pkg-config --cflags --libs collm) -lm -Wl,-rpath,"$PREFIX/lib" ${COLLM_EXAMPLE_LDFLAGS:-}
check "example links the installed shared library" sh -c "ldd '$TMP/score_prompt' | grep -q '$PREFIX/lib/libcollm.so.0'"
out=$("$TMP/score_prompt" "$MODEL" "Once upon a time" " there" 2>"$TMP/err"); rc=$?
check "example runs ($(head -c 200 "$TMP/err"))" [ "$rc" -eq 0 ]
logit=$(printf '%s\n' "$out" | sed -n 's/.*logit \([-0-9.]*\),.*/\1/p')
tok=$(printf '%s\n' "$out" | sed -n 's/.*answer token \([0-9]*\) .*/\1/p')
ids=$("$BIN" tokenize --model "$MODEL" --text "Once upon a time" --bos)
n=$(echo "$ids" | wc -w)
"$BIN" logits --model "$MODEL" --tokens "$ids" --out "$TMP/logits.bin" --threads 1 >/dev/null
V=$(( $(stat -c %s "$TMP/logits.bin") / 4 / n ))
ref=$(od -An -t f4 -j $(( ((n - 1) * V + tok) * 4 )) -N 4 "$TMP/logits.bin" | tr -d ' ')
check "example's logit ($logit) equals collm logits ($ref)" awk -v a="$logit" -v b="$ref" 'BEGIN { d = a - b; exit !(a != "" && d < 1e-3 && d > -1e-3) }'
"$TMP/score_prompt" /nonexistent.gguf x y >/dev/null 2>"$TMP/err"; rc=$?
check "example fails on a missing model (exit $rc)" [ "$rc" -eq 1 ]
check "example names the missing file ($(cat "$TMP/err"))" grep -q 'score_prompt: .*nonexistent' "$TMP/err"
# every dynamic export is collm_*
bad=$(nm -D --defined-only "$PREFIX/lib/libcollm.so" | awk '{print $3}' | grep -v '^collm_' | head -3)
check "only collm_ symbols exported (${bad:-none})" [ -z "$bad" ]
# the public headers compile as C++ (extern "C" guards) and on their own
printf '#include <collm/%s>\n' $(cd include/collm && ls *.h) > "$TMP/all.cpp"
check "public headers compile as C++" g++ -std=c++17 -Wall -Wextra -Werror -fsyntax-only -I"$PREFIX/include" "$TMP/all.cpp"
for h in include/collm/*.h; do
  check "$h compiles alone" sh -c "printf '#include <collm/%s>\n' $(basename "$h") | cc -std=c11 -Wall -Werror -fsyntax-only -I'$PREFIX/include' -x c -"
done
# layering: clean tree passes; an upward include fails
check "make deps passes" python3 scripts/check_deps.py . >/dev/null 2>&1
rm -rf "$TMP/tree"; mkdir -p "$TMP/tree"; cp -r src include "$TMP/tree/"
sed -i '1i #include "recommender/collm_internal.h"' "$TMP/tree/src/llm/gguf.c"
python3 scripts/check_deps.py "$TMP/tree" >/dev/null 2>"$TMP/err"; rc=$?
check "an upward include fails make deps (exit $rc)" [ "$rc" -eq 1 ]
check "and names it" grep -q "layer 'llm' may not depend on 'recommender'" "$TMP/err"
cp src/llm/gguf.c "$TMP/tree/src/llm/gguf.c"; sed -i '1i #include "core/ops.h"' "$TMP/tree/src/cli/main.c"
check "a private header in the CLI fails make deps" sh -c "python3 scripts/check_deps.py '$TMP/tree' 2>&1 | grep -q 'CLI may use public headers only'"
finish
