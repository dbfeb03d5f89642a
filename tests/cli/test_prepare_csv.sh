#!/usr/bin/env bash
# collm prepare --source csv from the command line: column options, split
# options, the summary (text and --json), errors as one line, and the
# result loading into train-cf. The builder's outputs themselves are checked
# row by row in tests/test_prepare.c; here the CLI's mapping onto it.
set -u
. "$(dirname "$0")/lib.sh" prepare_csv
rm -rf "${TMP:?}"/*
# Hand-made data: 3 users x 4 items (item 99 is not in the items file).
cat >"$TMP/items.csv" <<'EOF'
movieId,title,genres
10,"Heat, The (1995)",Crime
20,Toy Story (1995),Animation
30,"Say ""Hi"" (2001)",Comedy
EOF
cat >"$TMP/ratings.csv" <<'EOF'
userId,movieId,rating,timestamp
alice,10,5,2001-01-01
bob,20,3,2001-01-02
alice,20,4,2001-01-03
carol,10,2,2001-01-04
alice,30,1,2001-01-05
bob,10,5,2001-01-06
carol,30,4.5,2001-01-07
bob,99,5,2001-01-08
alice,10,4,2001-01-09
bob,30,4,2001-01-10
carol,20,5,2001-01-11
EOF
P=("$BIN" prepare --source csv --interactions "$TMP/ratings.csv" --items "$TMP/items.csv")

# leave-one-out, JSON summary
"${P[@]}" --out "$TMP/loo" --split loo --json >"$TMP/out" 2>"$TMP/err"; rc=$?
check "loo exits 0 ($(head -c 200 "$TMP/err"))" [ "$rc" -eq 0 ]
check "loo --json summary" grep -qx '{"out":"[^"]*/loo","users":3,"items":3,"train":4,"valid":3,"test":3,"valid_small":2,"positives":7,"rows_read":11,"dropped_unknown_item":1,"dropped_kcore":0}' "$TMP/out"
check "loo valid rows: each user's second last" [ "$(cut -f1,2,4 "$TMP/loo/valid.tsv" | tail -n +2 | tr '\n' ' ')" = "1	3	978652800 2	1	978739200 3	3	978825600 " ]
check "items.tsv escapes nothing, keeps quotes" grep -qx $'3\tSay "Hi" (2001)' "$TMP/loo/items.tsv"

# time split at dates text summary
"${P[@]}" --out "$TMP/dates" --valid-from 2001-01-06 --test-from 2001-01-10 >"$TMP/out" 2>"$TMP/err"; rc=$?
check "dates exits 0 ($(head -c 200 "$TMP/err"))" [ "$rc" -eq 0 ]
check "dates summary" grep -q 'train 5, valid 3, test 2, valid_small 2 rows (70.0 % positive)' "$TMP/out"
check "dates summary names the dropped row" grep -q 'dropped 1 whose item is not in' "$TMP/out"

# per-user ratio with fractions; threshold 5: only the three 5s are positive
"${P[@]}" --out "$TMP/ratio" --split ratio --fractions 0.5,0.25,0.25 --small-frac 1 --threshold 5 --json >"$TMP/out" 2>"$TMP/err"
check "ratio + threshold 5" grep -q '"train":8,"valid":1,"test":1,"valid_small":1,"positives":3' "$TMP/out"

# TSV without header, columns by index, label column
printf '300\tx2\tu9\t0\n100\tx1\tu9\t1\n200\tx1\tu8\ttrue\n250\tx2\tu8\t1\n260\tx3\tu8\tFALSE\n150\tx3\tu9\t1\n' >"$TMP/inter.tsv"
printf 'x1\tOne\nx2\tTwo\nx3\tThree\n' >"$TMP/items.tsv"
"$BIN" prepare --source csv --interactions "$TMP/inter.tsv" --items "$TMP/items.tsv" --out "$TMP/nh" --no-header \
  --delimiter tab --user-col 3 --item-col 2 --label-col 4 --time-col 1 --items-id-col 1 --title-col 2 --split loo \
  >"$TMP/out" 2>"$TMP/err"; rc=$?
check "no-header exits 0 ($(head -c 200 "$TMP/err"))" [ "$rc" -eq 0 ]
check "no-header items" [ "$(tail -n +2 "$TMP/nh/items.tsv" | cut -f2 | tr '\n' ' ')" = " One Three Two " ]

# k-core
"${P[@]}" --out "$TMP/k" --split loo --kcore 4 >"$TMP/out" 2>"$TMP/err"; rc=$?
check "kcore 4 fails (every row removed)" [ "$rc" -eq 1 ]
check "kcore 4 message" grep -q 'kcore 4 removes every one of the 10 interactions' "$TMP/err"

# The result is a dataset the rest of collm reads.
"$BIN" train-cf --data "$TMP/loo" --out "$TMP/mf.gguf" --dim 4 --max-epochs 2 --threads 1 >"$TMP/out" 2>&1; rc=$?
check "train-cf reads the prepared folder ($(tail -1 "$TMP/out"))" [ "$rc" -eq 0 ]

# Errors: one line, exit 1, nothing written.
expect_error "default split of 10 rows: valid_small empty" 'valid_small would be empty: round\(0.5 x 1 valid rows\) = 0' \
  "${P[@]}" --out "$TMP/e1"
check "nothing written on error" [ ! -e "$TMP/e1/train.tsv" ]
expect_error "cut dates after the data" 'the test split would be empty: no interaction falls from the test cut 2002-01-01 on' \
  "${P[@]}" --out "$TMP/e2" --valid-from 2001-01-06 --test-from 2002-01-01
expect_error "bad date" "--valid-from: 'June' is not a time" "${P[@]}" --out "$TMP/e3" --valid-from June --test-from 2002-01-01
expect_error "valid-from alone" 'go together' "${P[@]}" --out "$TMP/e4" --valid-from 2001-01-06
expect_error "bad fractions" "--fractions '0.8,0.2': give three numbers" "${P[@]}" --out "$TMP/e5" --fractions 0.8,0.2
expect_error "fractions not summing to 1" 'must sum to 1' "${P[@]}" --out "$TMP/e6" --fractions 0.8,0.2,0.2
expect_error "fractions with loo" 'does not apply' "${P[@]}" --out "$TMP/e7" --split loo --fractions 0.8,0.1,0.1
expect_error "unknown split rule" "--split 'random': time, ratio or loo" "${P[@]}" --out "$TMP/e8" --split random
expect_error "unknown column" "--rating-col 'stars': no such column \(the header has: userId, movieId, rating, timestamp\)" \
  "${P[@]}" --out "$TMP/e9" --rating-col stars
expect_error "bad delimiter" "--delimiter '::'" "${P[@]}" --out "$TMP/e10" --delimiter '::'
expect_error "missing --items" 'missing required option --items' "$BIN" prepare --source csv --interactions "$TMP/ratings.csv" --out "$TMP/e11"
expect_error "missing file" 'nosuch.csv: cannot open' "$BIN" prepare --source csv --interactions "$TMP/nosuch.csv" --items "$TMP/items.csv" --out "$TMP/e12"
expect_error "unknown source" "unknown --source 'movielens' \(csv, ml-1m" "$BIN" prepare --source movielens --out "$TMP/e13"
# an items file with both an item_id and a movieId column is joined on the
# interactions' own item column (movieId), not on the first name collm knows
printf 'item_id,movieId,title\n1,10,Heat\n2,20,Toy Story\n10,1,WRONG-A\n20,2,WRONG-B\n' >"$TMP/both.csv"
"$BIN" prepare --source csv --interactions "$TMP/ratings.csv" --items "$TMP/both.csv" --out "$TMP/both" --split loo --small-frac 1 \
  >/dev/null 2>"$TMP/err"; rc=$?
check "items with item_id and movieId: exits 0 ($(head -c 200 "$TMP/err"))" [ "$rc" -eq 0 ]
check "items with item_id and movieId: joined on movieId (titles Heat, Toy Story)" \
  sh -c "cut -f2 '$TMP/both/items.tsv' | sort | tr '\n' ' ' | grep -qx ' Heat Toy Story title '"
# a time before 1970 is refused with its line (the split files hold unsigned seconds)
printf 'userId,movieId,rating,timestamp\na,10,5,1970-01-02\na,20,4,1969-12-30\n' >"$TMP/old.csv"
expect_error "a time before 1970" "old.csv:3: column 'timestamp': '1969-12-30' is before 1970-01-01" \
  "$BIN" prepare --source csv --interactions "$TMP/old.csv" --items "$TMP/items.csv" --out "$TMP/old"
expect_error "a negative unix time" "old.csv:3: column 'timestamp': '-5' is before 1970-01-01" sh -c \
  "printf 'userId,movieId,rating,timestamp\na,10,5,7\na,20,4,-5\n' >'$TMP/old.csv' && \
   '$BIN' prepare --source csv --interactions '$TMP/old.csv' --items '$TMP/items.csv' --out '$TMP/old'"

# a source's own options given to another source were ignored without a word
expect_error "--threshold with ml-1m" "--threshold applies to --source csv, not ml-1m" \
  "$BIN" prepare --source ml-1m --ratings x --movies y --out "$TMP/src1" --threshold 3
expect_error "--split with bookcrossing" "--split applies to --source csv, not bookcrossing" \
  "$BIN" prepare --source bookcrossing --ratings x --books y --out "$TMP/src2" --split loo
expect_error "--movies with csv" "--movies applies to --source ml-1m, not csv" "${P[@]}" --out "$TMP/src3" --movies y
expect_error "--min-count with ml-1m" "--min-count applies to --source amazon-book, not ml-1m" \
  "$BIN" prepare --source ml-1m --ratings x --movies y --out "$TMP/src4" --min-count 5
expect_error "--item-noun with ml-1m" "--item-noun applies to --source csv, not ml-1m \(ml-1m is movies" \
  "$BIN" prepare --source ml-1m --ratings x --movies y --out "$TMP/src5" --item-noun song
check "  ... no folder written" sh -c "! ls -d '$TMP'/src? 2>/dev/null"

# a threshold above every rating: a dataset of negatives only (it was written, 0.0 % positive)
expect_error "--threshold above every rating" "no positive row: no rating reaches the threshold 1e\+308" \
  "${P[@]}" --out "$TMP/allneg" --split loo --threshold 1e308
check "  ... nothing written" [ ! -e "$TMP/allneg" ]

# UTF-16 (with or without its byte-order mark) is refused in so many words
# (it read as one garbled column: "no item id column"); lines of only spaces
# are skipped like blank ones (they were records of one field: an error)
iconv -f UTF-8 -t UTF-16 "$TMP/ratings.csv" >"$TMP/u16.csv"
expect_error "UTF-16 with its mark" 'u16.csv: the file is UTF-16' \
  "$BIN" prepare --source csv --interactions "$TMP/u16.csv" --items "$TMP/items.csv" --out "$TMP/u16"
iconv -f UTF-8 -t UTF-16LE "$TMP/ratings.csv" >"$TMP/u16le.csv"
expect_error "UTF-16 without a mark" 'u16le.csv:1: a NUL byte' \
  "$BIN" prepare --source csv --interactions "$TMP/u16le.csv" --items "$TMP/items.csv" --out "$TMP/u16le"
{ head -3 "$TMP/ratings.csv"; printf '   \n \t \r\n'; tail -n +4 "$TMP/ratings.csv"; printf '  '; } >"$TMP/spaces.csv"
"$BIN" prepare --source csv --interactions "$TMP/spaces.csv" --items "$TMP/items.csv" --out "$TMP/spaces" --split loo --json \
  >"$TMP/out" 2>"$TMP/err"; rc=$?
check "lines of spaces skipped: exits 0 ($(head -c 200 "$TMP/err"))" [ "$rc" -eq 0 ]
check "lines of spaces skipped: the same 11 rows read" grep -q '"rows_read":11,' "$TMP/out"

finish
