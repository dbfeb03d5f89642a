// Fuzzes the TSV dataset readers (items tables and split files, both
// layouts). The first input byte picks what the rest is:
//   0  an items table            1  a split, no items table
//   2  a split checked against a fixed 50-row items table
//   3  an items table, a NUL byte, then a split checked against it
//   4  an item_map.tsv's genres for 50 items (first byte 4..7)
// Every table that loads is checked for consistency (ids in range, offsets
// monotone, labels 0/1), then written with the library's writers and read
// back: the round trip must give the same table.
#include "collm/dataset.h"
#include "collm/error.h"
#include "fuzz_common.h"

static fuzz_file items_file, split_file;
static collm_rec_items *fixed_items; // ids 0..49, all titled
static char rt_items[512], rt_split[512];

static void cleanup(void) {
    remove(rt_items);
    remove(rt_split);
    rmdir(fuzz_tmp_dir());
    collm_rec_items_free(fixed_items);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    fuzz_file_init(&items_file, "items.tsv");
    fuzz_file_init(&split_file, "split.tsv");
    snprintf(rt_items, sizeof rt_items, "%s/items.tsv", fuzz_tmp_dir());
    snprintf(rt_split, sizeof rt_split, "%s/split.tsv", fuzz_tmp_dir());
    char text[2048];
    int n = snprintf(text, sizeof text, "iid\ttitle\n");
    for (int i = 0; i < 50; i++) n += snprintf(text + n, sizeof text - (size_t)n, "%d\tItem %d\n", i, i);
    fuzz_file_set(&items_file, (const uint8_t *)text, (size_t)n);
    fixed_items = collm_rec_items_load(items_file.path);
    FUZZ_ASSERT(fixed_items && fixed_items->n == 50, "fixed items table: %s", collm_last_error());
    atexit(cleanup);
    return 0;
}

static void check_items(const collm_rec_items *it) {
    FUZZ_ASSERT(it->n >= 0, "n %d", it->n);
    unsigned sum = 0;
    for (int32_t i = 0; i < it->n; i++) {
        FUZZ_ASSERT(it->title[i] != NULL, "title %d", i);
        sum += (unsigned char)it->title[i][0];
        if (it->author) FUZZ_ASSERT(it->author[i] != NULL, "author %d", i);
    }
    (void)sum;
    if (it->n > 100000) return; // the writer emits a row per id: keep the round trip small
    if (collm_rec_items_write(rt_items, it) != COLLM_OK) return;
    collm_rec_items *back = collm_rec_items_load(rt_items);
    FUZZ_ASSERT(back != NULL, "written items read back: %s", collm_last_error());
    FUZZ_ASSERT(back->n == it->n && !back->author == !it->author, "round trip sizes %d/%d", back->n, it->n);
    for (int32_t i = 0; i < it->n; i++) {
        FUZZ_ASSERT(strcmp(back->title[i], it->title[i]) == 0, "title %d round trip", i);
        if (it->author) FUZZ_ASSERT(strcmp(back->author[i], it->author[i]) == 0, "author %d round trip", i);
    }
    collm_rec_items_free(back);
}

static void check_split(const collm_rec_split *s, const collm_rec_items *items) {
    FUZZ_ASSERT(s->n >= 0 && s->his_offset[0] == 0, "n %lld", (long long)s->n);
    for (int64_t r = 0; r < s->n; r++) {
        FUZZ_ASSERT(s->user[r] >= 0 && s->user[r] <= s->max_user, "row %lld user", (long long)r);
        FUZZ_ASSERT(s->item[r] >= 0 && s->item[r] <= s->max_item, "row %lld item", (long long)r);
        if (items) FUZZ_ASSERT(s->item[r] < items->n, "row %lld item %d beyond the table", (long long)r, s->item[r]);
        FUZZ_ASSERT(s->label[r] == 0 || s->label[r] == 1, "row %lld label", (long long)r);
        FUZZ_ASSERT(s->not_cold[r] == 0 || s->not_cold[r] == 1, "row %lld not_cold", (long long)r);
        FUZZ_ASSERT(s->his_offset[r + 1] >= s->his_offset[r], "row %lld offsets", (long long)r);
        for (int64_t j = s->his_offset[r]; j < s->his_offset[r + 1]; j++) {
            FUZZ_ASSERT(s->his[j] >= 0 && s->his[j] <= s->max_item, "row %lld history", (long long)r);
            if (items) FUZZ_ASSERT(s->his[j] < items->n, "history id beyond the table");
            if (s->his_label) FUZZ_ASSERT(s->his_label[j] == 0 || s->his_label[j] == 1, "his_label");
        }
    }
    if (collm_rec_split_write(rt_split, s) != COLLM_OK) return;
    collm_rec_split *back = collm_rec_split_load(rt_split, items);
    FUZZ_ASSERT(back != NULL, "written split read back: %s", collm_last_error());
    FUZZ_ASSERT(back->n == s->n && !back->his_label == !s->his_label, "round trip rows");
    int book = s->his_label != NULL; // the book layout has no timestamp / not_cold columns
    for (int64_t r = 0; r < s->n; r++) {
        FUZZ_ASSERT(back->user[r] == s->user[r] && back->item[r] == s->item[r] && back->label[r] == s->label[r],
                    "row %lld round trip", (long long)r);
        if (!book)
            FUZZ_ASSERT(back->timestamp[r] == s->timestamp[r] && back->not_cold[r] == s->not_cold[r],
                        "row %lld timestamp / not_cold round trip", (long long)r);
        FUZZ_ASSERT(back->his_offset[r + 1] == s->his_offset[r + 1], "row %lld history length", (long long)r);
    }
    int64_t nh = s->his_offset[s->n];
    FUZZ_ASSERT(nh == 0 || memcmp(back->his, s->his, (size_t)nh * sizeof *s->his) == 0, "history round trip");
    if (book) FUZZ_ASSERT(nh == 0 || memcmp(back->his_label, s->his_label, (size_t)nh) == 0, "his_label round trip");
    collm_rec_split_free(back);
}

// A genres table that loads: CSR offsets monotone, each item's genres
// distinct ids of non-empty names without '|'.
static void check_genres(const collm_rec_item_genres *g) {
    FUZZ_ASSERT(g->n_items == 50 && g->offset[0] == 0, "n_items %d", g->n_items);
    for (int32_t k = 0; k < g->n_names; k++)
        FUZZ_ASSERT(g->name[k][0] && !strchr(g->name[k], '|'), "name %d", k);
    for (int32_t i = 0; i < g->n_items; i++) {
        FUZZ_ASSERT(g->offset[i + 1] >= g->offset[i], "item %d offsets", i);
        for (int64_t j = g->offset[i]; j < g->offset[i + 1]; j++) {
            FUZZ_ASSERT(g->genre[j] >= 0 && g->genre[j] < g->n_names, "item %d genre id", i);
            for (int64_t l = g->offset[i]; l < j; l++) FUZZ_ASSERT(g->genre[l] != g->genre[j], "item %d repeats a genre", i);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int mode = data[0] & 7;
    data++;
    size--;
    if (mode >= 4) {
        fuzz_file_set(&split_file, data, size);
        collm_clear_error();
        collm_rec_item_genres *g = NULL;
        int rc = collm_rec_item_genres_load(split_file.path, 50, &g);
        if (rc == COLLM_OK && g) check_genres(g);
        else if (rc != COLLM_OK) FUZZ_ASSERT(collm_last_error()[0] && !g, "a failed load leaves a message, no table");
        collm_rec_item_genres_free(g);
        return 0;
    }
    collm_rec_items *items = NULL;
    const uint8_t *split_data = data;
    size_t split_size = size;
    if (mode == 0 || mode == 3) {
        size_t items_size = size;
        if (mode == 3) {
            const uint8_t *nul = memchr(data, 0, size);
            if (!nul) return 0;
            items_size = (size_t)(nul - data);
            split_data = nul + 1;
            split_size = size - items_size - 1;
        }
        fuzz_file_set(&items_file, data, items_size);
        collm_clear_error();
        items = collm_rec_items_load(items_file.path);
        if (!items) {
            FUZZ_ASSERT(collm_last_error()[0], "a failed load leaves a message");
            return 0;
        }
        check_items(items);
        if (mode == 0) {
            collm_rec_items_free(items);
            return 0;
        }
    }
    const collm_rec_items *against = mode == 2 ? fixed_items : items;
    fuzz_file_set(&split_file, split_data, split_size);
    collm_clear_error();
    collm_rec_split *s = collm_rec_split_load(split_file.path, against);
    if (s) check_split(s, against);
    else FUZZ_ASSERT(collm_last_error()[0], "a failed load leaves a message");
    collm_rec_split_free(s);
    collm_rec_items_free(items);
    return 0;
}
