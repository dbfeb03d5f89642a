// Recommendation datasets in the TSV layout of ../shared/data (README there):
// an items table and split files of (user, item, label, timestamp, history,
// not_cold) rows. Arrays are plain and public (read them directly); the
// loaders validate strictly and report file:line:column on any defect.
//
// Threading: the loaders and writers keep no global state (any thread may
// load its own tables). A loaded table or dataset is plain memory: threads
// may read it at once; collm_rec_items_grow and the free functions need it
// to themselves.
#ifndef COLLM_DATASET_H
#define COLLM_DATASET_H

#include "collm/version.h"

#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

// The structs below are mirrored by the Python binding (python/collm/__init__.py): keep in step.

// Item table: ids 0..n-1 (0 is padding with an empty title on ml-1m).
typedef struct {
    int32_t n;       // number of rows = max id + 1
    char **title;    // (n) unescaped UTF-8, "" where absent
    char **author;   // (n) or NULL when the table has no author column
    char *storage;   // one allocation holding all strings
} collm_rec_items;

// One split file. Row r has history his[his_offset[r] .. his_offset[r+1]),
// exactly as stored (ml-1m: starts with the 0 sentinel, oldest first).
typedef struct {
    char *path;
    int64_t n;            // rows
    int32_t *user;        // (n)
    int32_t *item;        // (n)
    int8_t *label;        // (n) 0/1
    int64_t *timestamp;   // (n) 0 when the file has no timestamp column
    int8_t *not_cold;     // (n) 1 when the file has no not_cold column
    int64_t *his_offset;  // (n + 1)
    int32_t *his;         // (his_offset[n])
    int8_t *his_label;    // (his_offset[n]) or NULL (bookcrossing has his_label)
    int32_t max_user;     // largest user id in the file
    int32_t max_item;     // largest item id (targets and history)
} collm_rec_split;

// Loads DIR/items.tsv (columns iid, title[, author]).
COLLM_API collm_rec_items *collm_rec_items_load(const char *path);
COLLM_API void collm_rec_items_free(collm_rec_items *items);
// Grows the table to n rows (new ids get "" title / author); no-op if n <= items->n.
COLLM_API int collm_rec_items_grow(collm_rec_items *items, int32_t n);

// Item genres: the `genres` column of an item_map.tsv (columns iid, ...,
// genres: names separated by '|', ml-1m's from movies.dat). Item i has the
// genres genre[offset[i] .. offset[i+1]), indices into name, each at most
// once; an item the file does not list, or lists with an empty field, has none.
typedef struct {
    int32_t n_items;  // items 0 .. n_items-1
    int64_t *offset;  // (n_items + 1)
    int32_t *genre;   // (offset[n_items])
    int32_t n_names;
    char **name;      // (n_names) unescaped, in order of first appearance
} collm_rec_item_genres;

// Loads path for items 0..n_items-1. *out = NULL and COLLM_OK when there is
// no such file or it has no `genres` column (the dataset has no genres).
// Errors name the file, line and column: a malformed file (as for splits), an
// iid outside 0..n_items-1 or listed twice, an empty genre name.
COLLM_API int collm_rec_item_genres_load(const char *path, int32_t n_items, collm_rec_item_genres **out);
COLLM_API void collm_rec_item_genres_free(collm_rec_item_genres *g);

// Loads a split file; every item id (target and history) must be < items->n
// (items may be NULL to skip that check).
COLLM_API collm_rec_split *collm_rec_split_load(const char *path, const collm_rec_items *items);
COLLM_API void collm_rec_split_free(collm_rec_split *split);
// Rows [begin, end) of a split (clamped to [0, n]) as a view sharing its
// arrays: nothing is copied, it is valid while the split is, and it is never
// freed. What one rank scores of a split under mpirun.
COLLM_API collm_rec_split collm_rec_split_rows(const collm_rec_split *split, int64_t begin, int64_t end);
// A new split of the given rows of split (n row indices, each in [0, split->n),
// in that order; repeats allowed), every column and history copied; free it
// with collm_rec_split_free. What out-of-fold encoder scores train on
// (collm_cf_oof_scores). NULL + error on a bad index or out of memory.
COLLM_API collm_rec_split *collm_rec_split_select(const collm_rec_split *split, const int64_t *rows, int64_t n);
// A new split holding every row of parts[0], then of parts[1], ... (each in
// its order), every column and history copied; its path names the parts
// joined by " + ". What an encoder refit on train and valid trains on
// (collm train-cf --train-split train,valid). The parts must agree on
// his_label (all or none). NULL + error on bad arguments / out of memory.
COLLM_API collm_rec_split *collm_rec_split_concat(const collm_rec_split *const *parts, int n_parts);

// A dataset directory: items plus the train / valid / valid_small splits
// that exist (NULL when a file is absent; train is required).
typedef struct {
    char *dir;
    collm_rec_items *items;
    collm_rec_split *train;
    collm_rec_split *valid;
    collm_rec_split *valid_small;
    int32_t n_users; // max user id over the split files in dir (train, valid,
                     // valid_small and test.tsv if present) + 1; a split loaded
                     // later may hold larger (unknown, cold) user ids
    int32_t n_items; // items->n (bookcrossing: max id over items and those splits + 1)
    int is_book;     // 1 when the items table has authors / the domain is books
    // What an item is, for the prompts' wording ("movie" / "movies"): from
    // DIR/item_noun.txt (line 1 the singular, optional line 2 the plural,
    // default singular + "s"; written by `collm prepare --item-noun`), else
    // "book" for book folders and "movie" otherwise.
    char item_noun[32], item_nouns[32];
} collm_rec_dataset;

COLLM_API collm_rec_dataset *collm_rec_dataset_load(const char *dir);
COLLM_API void collm_rec_dataset_free(collm_rec_dataset *ds);
// Resolves a split name ("train", "valid", "valid_small", "test") or a path.
// Names are looked up in ds->dir; the returned split is owned by the caller.
COLLM_API collm_rec_split *collm_rec_dataset_load_split(const collm_rec_dataset *ds, const char *name_or_path);

// Replaces ds->train by the rows of the splits a comma-separated list names
// (each a name or a file, as collm_rec_dataset_load_split takes it; the
// dataset's loaded train / valid / valid_small are used as they are), joined
// in order (collm_rec_split_concat): "train,valid" trains on both. A name
// given twice, valid beside valid_small (a subset of it), or a file that does
// not load is an error, and ds is left as it was. n_users / n_items stay:
// a split file from elsewhere with larger ids is caught by the consumer's
// id checks.
COLLM_API int collm_rec_dataset_set_train(collm_rec_dataset *ds, const char *list);

// Training rows plus catalogue negatives (docs/topk.md): a pointwise model
// trained only on rated rows learns "liked vs disliked among watched items",
// not which catalogue items a user picks. For every positive row of train,
// per_positive items the user has no train row of (and that are not in the
// row's history) are drawn from items 1..n_items-1 with non-empty titles
// (items may be NULL: every id) with probability proportional to
// (train rows of the item + 1)^alpha (alpha 0: uniform; 1: popularity), and
// added as label-0 rows with that row's user, history, his_label, timestamp
// and not_cold. The result holds the original rows first, then the new ones
// (a draw that keeps hitting seen items is given up after 100 tries).
// Deterministic for a seed. NULL + error on bad arguments / out of memory.
COLLM_API collm_rec_split *collm_rec_split_with_negatives(const collm_rec_split *train, const collm_rec_items *items,
                                                          int32_t n_items, int per_positive, double alpha, uint64_t seed);

// Writers (atomic). Items: "iid\ttitle[\tauthor]" with one row per id 0..n-1.
// Splits: the ml-1m layout (uid iid label timestamp his not_cold), or the
// bookcrossing layout (uid iid label his his_label) when split->his_label
// is non-NULL. Text is escaped (\\ \t \n \r) so the loaders read it back.
COLLM_API int collm_rec_items_write(const char *path, const collm_rec_items *items);
// Writes DIR/item_noun.txt (see collm_rec_dataset.item_noun) from "song" or
// "song,songs" (singular[,plural]); a noun the loader would refuse is an
// error before anything is written. dir NULL: only check spec.
COLLM_API int collm_rec_write_item_noun(const char *dir, const char *spec);
COLLM_API int collm_rec_split_write(const char *path, const collm_rec_split *split);
// Writes s with the four TSV escapes applied.
COLLM_API int collm_rec_write_escaped(FILE *f, const char *s);

#ifdef __cplusplus
}
#endif

#endif
