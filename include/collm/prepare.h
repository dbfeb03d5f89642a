// Building dataset folders in the layout of shared/data (docs/data.md):
// items.tsv, train.tsv, valid.tsv, test.tsv, valid_small.tsv (+ item_map.tsv),
// from raw public sources (method.md §2.2-§2.4) or from a synthetic model.
#ifndef COLLM_PREPARE_H
#define COLLM_PREPARE_H

#include "collm/version.h"

#include "collm/dataset.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// One interaction with final (remapped) ids. split: 0 train, 1 valid, 2 test.
typedef struct {
    int32_t user, item;
    int64_t timestamp;
    int8_t label;
    int8_t split;
} collm_rec_event;

// Writes DIR/{train,valid,test,valid_small}.tsv from events that are already
// in final order: grouped by user, oldest first (the caller's sort and tie
// rule). Each row's his = [0] + every earlier positive item of the user,
// across all splits (§2.2 step 5); not_cold = user and item both occur in
// train; valid_small = the first round(small_frac * n_valid) (half to even) valid rows of a
// seeded shuffle, in that shuffled order (as pandas' sample does, but pandas'
// own random stream is not reproduced). A split (train, valid, test or
// valid_small) that would be empty is an error naming it; nothing is written.
COLLM_API int collm_rec_write_ood_splits(const char *dir, const collm_rec_event *events, int64_t n, double small_frac,
                         uint64_t small_seed);

// Removes from dir the files of collm's dataset layout (train, valid, test,
// valid_small .tsv, items.tsv, item_map.tsv, user_map.tsv, item_noun.txt)
// that are not among `written` (names, NULL-terminated): what an earlier
// dataset left in the folder must not be read as part of the new one. Every
// builder below calls it once its own files are written; a file that is not
// there is fine, one that cannot be removed an error.
COLLM_API int collm_rec_remove_stale(const char *dir, const char *const *written);

// The file names of collm's dataset layout, the list collm_rec_remove_stale
// walks (NULL-terminated, static: never freed). A command that writes a file
// checks it against these so it never overwrites the data it reads.
COLLM_API const char *const *collm_rec_layout_files(void);

// ML-1M "ood2" (§2.2) from GroupLens ratings.dat + movies.dat (Latin-1 or
// UTF-8). Writes items.tsv, item_map.tsv and the splits.
COLLM_API int collm_rec_prepare_ml1m(const char *ratings_path, const char *movies_path, const char *out_dir, uint64_t seed);

// Amazon-Book (§2.3) from Books_5.json (reviews, JSON lines) and
// meta_Books.json (JSON lines with asin and title). Keeps users and items
// with more than min_count 2017 ratings (the paper: 20).
COLLM_API int collm_rec_prepare_amazon(const char *reviews_path, const char *meta_path, const char *out_dir, uint64_t seed,
                       int min_count);

// BookCrossing (§2.4) from BX-Book-Ratings.csv and BX-Books.csv (";"-separated,
// quoted, Latin-1). Seeded; several samples per user (docs/data.md).
typedef struct {
    int max_targets_per_user; // K (default 5)
    int max_history;          // default 10
} collm_rec_bookcrossing_options;
COLLM_API int collm_rec_prepare_bookcrossing(const char *ratings_path, const char *books_path, const char *out_dir, uint64_t seed,
                             const collm_rec_bookcrossing_options *opt);

// Your own interactions from delimited text (CSV / TSV / ...; docs/data.md
// "Own data"). Columns are named by header (exact, then case-insensitive) or
// by 1-based index ("3"); NULL picks the first header among the usual names
// (user_id, userId, user, ...). label = rating >= threshold, or a 0/1 label
// column. Optional k-core, then one split rule; his, not_cold and
// valid_small as ML-1M (collm_rec_write_ood_splits).
typedef enum {
    COLLM_SPLIT_TIME = 0,  // global timeline: fractions of rows, or cut dates
    COLLM_SPLIT_RATIO = 1, // per user, oldest first: fractions of the user's rows
    COLLM_SPLIT_LOO = 2,   // per user: last row test, second last valid (users with >= 3 rows)
} collm_rec_split_rule;

typedef struct {
    // Interactions file columns; NULL = detect from the header.
    const char *user_col, *item_col, *rating_col, *label_col, *time_col;
    // Items file columns; NULL = the interactions' item column name (item_col, or the one
    // detected) if the items header has it, else detect.
    const char *items_id_col, *title_col;
    char delimiter;           // 0: detect per file from its first line (, tab ; |)
    int no_header;            // files have no header line (columns by index only)
    double threshold;         // label = rating >= threshold (default 4)
    int kcore;                // keep only users and items with >= kcore rows, repeatedly (0 = off)
    collm_rec_split_rule split;
    double frac[3];           // train, valid, test fractions (0.8, 0.1, 0.1); sum 1
    int use_dates;            // COLLM_SPLIT_TIME: cut at valid_from / test_from instead of fractions
    int64_t valid_from, test_from; // unix seconds: train < valid_from <= valid < test_from <= test
    double small_frac;        // valid_small = round(small_frac * n_valid) rows (default 0.5)
    uint64_t seed;            // valid_small sample (default 2023)
} collm_rec_csv_options;

// What a CSV build read, dropped and wrote.
typedef struct {
    int64_t n_read;          // data rows in the interactions file
    int64_t n_unknown_item;  // rows whose item has no row in the items file (dropped)
    int64_t n_kcore_dropped; // rows removed by the k-core filter
    int32_t n_users, n_items;// users and items kept (ids 1..n)
    int64_t n_rows[4];       // train, valid, test, valid_small
    int64_t n_pos;           // positive rows over train + valid + test
    char delimiter[2];       // the delimiter used for interactions / items
} collm_rec_csv_stats;

COLLM_API void collm_rec_csv_options_default(collm_rec_csv_options *o);
// Writes DIR/items.tsv, item_map.tsv (iid, raw item id), user_map.tsv (uid,
// raw user id) and the splits. items_path may equal interactions_path (a
// title column in the interactions). stats may be NULL. Any split that would
// be empty is an error that says why; nothing is written then.
COLLM_API int collm_rec_prepare_csv(const char *interactions_path, const char *items_path, const char *out_dir,
                                    const collm_rec_csv_options *o, collm_rec_csv_stats *stats);
// Parses a time: unix seconds (a fraction is dropped), or a UTC date
// YYYY-MM-DD, optionally followed by [T or space]HH:MM[:SS][Z]. COLLM_OK or
// COLLM_ERR_FORMAT.
COLLM_API int collm_rec_parse_time(const char *s, int64_t *out);

// Synthetic dataset with planted latent factors (ml-1m layout, docs/data.md).
typedef struct {
    int32_t n_users, n_items;
    uint64_t seed;
    int dim;              // latent dimension (default 4)
    double scale, bias;   // label ~ Bernoulli(sigmoid(scale * <u,v>/sqrt(dim) + bias + b_item))
    double item_bias_std; // b_item ~ N(0, item_bias_std^2) (default 1)
    int min_per_user, max_per_user; // interactions per user (uniform, default 30..100)
    double new_item_frac; // share of items released when valid starts: no train rows, cold in
                          // valid/test (default 0)
    int title_quality;    // 1: a title's adjective names the item's likeability (b_item octile,
                          // "Dreadful" .. "Brilliant") instead of a latent component (default 0)
} collm_rec_synth_options;
COLLM_API void collm_rec_synth_defaults(collm_rec_synth_options *opt);
COLLM_API int collm_rec_synth(const collm_rec_synth_options *opt, const char *out_dir);

#ifdef __cplusplus
}
#endif

#endif
