// Dataset loader tests: real shared data (counts from shared/data/README.md),
// hand-written files with known contents, and damaged files that must fail
// with an error naming file, line and column.
#include "collm/dataset.h"
#include "collm/error.h"
#include "collm/fileio.h"
#include "test.h"

#include <stdint.h>

static const char *write_tmp(const char *name, const char *text) {
    static char path[8][512];
    static int next;
    char *p = path[next++ % 8];
    collm_mkdir_p(test_tmp_dir());
    snprintf(p, 512, "%s/ds_%s", test_tmp_dir(), name);
    FILE *f = fopen(p, "wb");
    fputs(text, f);
    fclose(f);
    return p;
}

static int contains(const char *hay, const char *needle) { return strstr(hay, needle) != NULL; }

// Loads a split that must fail; checks the message holds every needle.
static void expect_split_error(const char *name, const char *text, const collm_rec_items *items, const char *n1,
                               const char *n2) {
    const char *p = write_tmp(name, text);
    collm_rec_split *s = collm_rec_split_load(p, items);
    CHECK_MSG(s == NULL, "%s loaded but should fail", name);
    collm_rec_split_free(s);
    const char *e = collm_last_error();
    CHECK_MSG(contains(e, p) && contains(e, n1) && (!n2 || contains(e, n2)), "%s: message '%s'", name, e);
}

static void test_ml1m(void) {
    const char *dir = test_shared_path("data/ml-1m");
    // (the load time is measured by bench/unit_timings.c, not asserted here)
    collm_rec_dataset *ds = collm_rec_dataset_load(dir);
    CHECK_MSG(ds != NULL, "%s", collm_last_error());
    if (!ds) return;
    CHECK(!ds->is_book);
    CHECK(ds->items->n == 3256 && ds->n_items == 3256);
    CHECK(ds->items->author == NULL);
    CHECK_STR(ds->items->title[0], "");
    CHECK_STR(ds->items->title[1], "Shawshank Redemption, The (1994)");
    CHECK(ds->train && ds->train->n == 33891);
    CHECK(ds->valid && ds->valid->n == 10401);
    CHECK(ds->valid_small && ds->valid_small->n == 5200);
    CHECK(ds->n_users >= 740 && ds->n_users <= 839);
    // README: first rows "1 1 1 994556598 0 1" and "1 2 1 994556636 0,1 1".
    collm_rec_split *tr = ds->train;
    CHECK(tr->user[0] == 1 && tr->item[0] == 1 && tr->label[0] == 1 && tr->timestamp[0] == 994556598);
    CHECK(tr->his_offset[1] - tr->his_offset[0] == 1 && tr->his[tr->his_offset[0]] == 0);
    CHECK(tr->his_offset[2] - tr->his_offset[1] == 2 && tr->his[tr->his_offset[1] + 1] == 1);
    CHECK(tr->his_label == NULL);
    // README statistics: label mean 0.536750 (train), 0.528315 (valid); not_cold mean
    // 0.635420 (valid); mean history length excl. 0 = 37.68 (train).
    int64_t pos = 0, nc = 0;
    for (int64_t r = 0; r < tr->n; r++) pos += tr->label[r];
    CHECK_NEAR((double)pos / tr->n, 0.536750, 1e-6);
    for (int64_t r = 0; r < ds->valid->n; r++) nc += ds->valid->not_cold[r];
    CHECK_NEAR((double)nc / ds->valid->n, 0.635420, 1e-6);
    CHECK_NEAR((double)(tr->his_offset[tr->n] - tr->n) / tr->n, 37.68, 0.005);
    int sentinel_ok = 1;
    for (int64_t r = 0; r < tr->n; r++) sentinel_ok &= tr->his[tr->his_offset[r]] == 0;
    CHECK(sentinel_ok);
    // A split by name and by path.
    collm_rec_split *v = collm_rec_dataset_load_split(ds, "valid_small");
    CHECK(v && v->n == 5200);
    collm_rec_split_free(v);
    char p[1024];
    snprintf(p, sizeof p, "%s/valid.tsv", dir);
    v = collm_rec_dataset_load_split(ds, p);
    CHECK(v && v->n == 10401);
    collm_rec_split_free(v);
    v = collm_rec_dataset_load_split(ds, "test"); // held back: a clean error
    CHECK(v == NULL && contains(collm_last_error(), "test.tsv"));
    collm_rec_dataset_free(ds);
}

static void test_bookcrossing(void) {
    collm_rec_dataset *ds = collm_rec_dataset_load(test_shared_path("data/bookcrossing"));
    CHECK_MSG(ds != NULL, "%s", collm_last_error());
    if (!ds) return;
    CHECK(ds->is_book && ds->items->author != NULL);
    CHECK(ds->train && ds->train->n == 19414);
    CHECK(ds->valid && ds->valid->n == 2427);
    CHECK(ds->valid_small == NULL);
    CHECK_STR(ds->items->title[26], "Wild Animus");
    CHECK_STR(ds->items->title[5], "The Kitchen God's Wife");
    CHECK_STR(ds->items->author[5], "Amy Tan");
    CHECK_STR(ds->items->title[0], ""); // no title known for id 0 (a real book)
    CHECK(ds->n_items == ds->items->n);
    CHECK(ds->n_items > ds->train->max_item && ds->n_items >= 271120);
    CHECK(ds->train->his_label != NULL);
    // README: train label mean 0.4214, his_label mean 0.4087, mean history 7.27.
    collm_rec_split *tr = ds->train;
    int64_t pos = 0, hpos = 0, nh = tr->his_offset[tr->n];
    for (int64_t r = 0; r < tr->n; r++) pos += tr->label[r];
    for (int64_t j = 0; j < nh; j++) hpos += tr->his_label[j];
    CHECK_NEAR((double)pos / tr->n, 0.4214, 5e-5);
    CHECK_NEAR((double)hpos / nh, 0.4087, 5e-5);
    CHECK_NEAR((double)nh / tr->n, 7.27, 0.005);
    CHECK(tr->timestamp[0] == 0 && tr->not_cold[0] == 1);
    // The test split exists for bookcrossing; its ids fit the grown table.
    collm_rec_split *te = collm_rec_dataset_load_split(ds, "test");
    CHECK_MSG(te && te->n == 2427, "%s", collm_last_error());
    collm_rec_split_free(te);
    // Backslash escapes: some title holds a literal backslash.
    int backslash = 0;
    for (int32_t i = 0; i < ds->items->n; i++) backslash += strchr(ds->items->title[i], '\\') != NULL;
    CHECK(backslash > 0);
    collm_rec_dataset_free(ds);
}

static void test_small_files(void) {
    const char *ip = write_tmp("items.tsv", "iid\ttitle\n0\t\n2\tA\\\\B\\tC\n1\tPlain \"q\" 'x'\n");
    collm_rec_items *it = collm_rec_items_load(ip);
    CHECK_MSG(it != NULL, "%s", collm_last_error());
    if (!it) return;
    CHECK(it->n == 3);
    CHECK_STR(it->title[2], "A\\B\tC");
    CHECK_STR(it->title[1], "Plain \"q\" 'x'");
    // Columns in any order, extra column ignored, no trailing newline.
    const char *sp = write_tmp("ok.tsv", "his\tiid\tuid\textra\tlabel\n0,2,1\t2\t7\tzz\t1\n\t1\t3\t\t0");
    collm_rec_split *s = collm_rec_split_load(sp, it);
    CHECK_MSG(s != NULL, "%s", collm_last_error());
    if (s) {
        CHECK(s->n == 2);
        CHECK(s->user[0] == 7 && s->item[0] == 2 && s->label[0] == 1 && s->not_cold[0] == 1);
        CHECK(s->his_offset[1] == 3 && s->his[0] == 0 && s->his[1] == 2 && s->his[2] == 1);
        CHECK(s->his_offset[2] == 3 && s->user[1] == 3 && s->label[1] == 0);
        CHECK(s->max_user == 7 && s->max_item == 2);
    }
    collm_rec_split_free(s);
    // Items: ids far beyond the row count (the table is sized by the largest
    // id: 2147483646 asked for 16 GiB, 100000000 for 800 MB) fail naming the
    // line and the bound; sparse ids within the slack load.
    collm_rec_items *bad = collm_rec_items_load(write_tmp("bigid.tsv", "iid\ttitle\n2\ta\n100000000\tb\n"));
    CHECK_MSG(bad == NULL && contains(collm_last_error(), "line 3") && contains(collm_last_error(), "far beyond"),
              "%s", collm_last_error());
    collm_rec_items_free(bad);
    bad = collm_rec_items_load(write_tmp("bigid2.tsv", "iid\ttitle\n2147483646\tx\n"));
    CHECK(bad == NULL && contains(collm_last_error(), "far beyond"));
    bad = collm_rec_items_load(write_tmp("sparse.tsv", "iid\ttitle\n1\ta\n4000\tb\n"));
    CHECK_MSG(bad != NULL && bad->n == 4001 && !strcmp(bad->title[4000], "b"), "%s", collm_last_error());
    collm_rec_items_free(bad);
    // Items: duplicates, bad escape, missing column.
    bad = collm_rec_items_load(write_tmp("dup.tsv", "iid\ttitle\n1\ta\n1\tb\n"));
    CHECK(bad == NULL && contains(collm_last_error(), "line 3") && contains(collm_last_error(), "duplicate"));
    bad = collm_rec_items_load(write_tmp("esc.tsv", "iid\ttitle\n1\ta\\xb\n"));
    CHECK(bad == NULL && contains(collm_last_error(), "line 2") && contains(collm_last_error(), "'title'") &&
          contains(collm_last_error(), "bad escape"));
    bad = collm_rec_items_load(write_tmp("nocol.tsv", "iid\tname\n1\ta\n"));
    CHECK(bad == NULL && contains(collm_last_error(), "missing column 'title'"));
    bad = collm_rec_items_load(write_tmp("cr.tsv", "iid\ttitle\n1\tab\r\n"));
    CHECK(bad == NULL && contains(collm_last_error(), "carriage return"));

    const char *H = "uid\tiid\tlabel\ttimestamp\this\tnot_cold\n";
    char buf[512];
#define ROW(r) (snprintf(buf, sizeof buf, "%s1\t1\t1\t5\t0\t1\n%s", H, r), buf)
    expect_split_error("fields.tsv", ROW("1\t1\t1\t5\t0\n"), it, "line 3", "expected 6 fields");
    expect_split_error("nonint.tsv", ROW("1\t1x\t1\t5\t0\t1\n"), it, "line 3", "column 'iid'");
    expect_split_error("neg.tsv", ROW("-1\t1\t1\t5\t0\t1\n"), it, "column 'uid'", "negative");
    expect_split_error("range.tsv", ROW("1\t3\t1\t5\t0\t1\n"), it, "column 'iid'", "outside the item table");
    expect_split_error("hisrange.tsv", ROW("1\t1\t1\t5\t0,9\t1\n"), it, "column 'his'", "element 2");
    expect_split_error("hisempty.tsv", ROW("1\t1\t1\t5\t0,,1\t1\n"), it, "column 'his'", "empty integer");
    expect_split_error("label.tsv", ROW("1\t1\t2\t5\t0\t1\n"), it, "column 'label'", "0 or 1");
    expect_split_error("nc.tsv", ROW("1\t1\t1\t5\t0\t7\n"), it, "column 'not_cold'", "0 or 1");
    expect_split_error("big.tsv", ROW("99999999999\t1\t1\t5\t0\t1\n"), it, "column 'uid'", "out of range");
    expect_split_error("blank.tsv", ROW("\n"), it, "line 3", "found 1");
    expect_split_error("crlf.tsv", ROW("1\t1\t1\t5\t0\t1\r\n"), it, "column 'not_cold'", "line 3");
    expect_split_error("nouid.tsv", "iid\tlabel\this\n1\t1\t0\n", it, "missing column 'uid'", "line 1");
    expect_split_error("hl.tsv", "uid\tiid\tlabel\this\this_label\n1\t1\t1\t0,1\t1\n", NULL, "column 'his_label'",
                       "1 labels for 2");
    expect_split_error("hl2.tsv", "uid\tiid\tlabel\this\this_label\n1\t1\t1\t0,1\t1,3\n", NULL, "his_label",
                       "0 or 1");
    expect_split_error("dupcol.tsv", "uid\tuid\n", NULL, "duplicate column", "line 1");
    // Users (and items without a table): tables are sized by the largest id,
    // so an id far beyond the file's rows is an error (issue 8: a tiny split
    // with user 2147483000 asked metrics and the CF model for gigabytes).
    expect_split_error("biguser.tsv", ROW("2147483000\t1\t1\t5\t0\t1\n"), it, "column 'uid'", "far beyond");
    expect_split_error("bigitem.tsv", "uid\tiid\tlabel\this\n1\t2147483000\t1\t\n", NULL, "column 'iid'", "far beyond");
    expect_split_error("bighis.tsv", "uid\tiid\tlabel\this\n1\t1\t1\t3,2147483000\n", NULL, "element 2", "far beyond");
    // Issue 8: an empty file maps to NULL; the loaders did pointer arithmetic
    // on it (UB, UBSan aborts): now an error naming line 1.
    expect_split_error("empty0.tsv", "", it, "line 1", "empty file");
    collm_rec_items *none_items = collm_rec_items_load(write_tmp("empty_items.tsv", ""));
    CHECK_MSG(none_items == NULL && contains(collm_last_error(), "empty file"), "%s", collm_last_error());
    collm_rec_split *none = collm_rec_split_load("/nonexistent/x.tsv", NULL);
    CHECK(none == NULL && contains(collm_last_error(), "/nonexistent/x.tsv"));
    // Header only: zero rows is valid.
    s = collm_rec_split_load(write_tmp("empty.tsv", H), it);
    CHECK(s && s->n == 0 && s->his_offset[0] == 0);
    collm_rec_split_free(s);
    collm_rec_items_free(it);
}

static int same_file(const char *a, const char *b) {
    char *x, *y;
    size_t nx, ny;
    if (collm_read_file(a, &x, &nx) || collm_read_file(b, &y, &ny)) return 0;
    int same = nx == ny && memcmp(x, y, nx) == 0;
    free(x);
    free(y);
    return same;
}

// Writers: ml-1m items/train written back are byte-identical; a book-layout
// split and an escaped title round-trip.
static void test_write_roundtrip(void) {
    char out[512];
    collm_rec_items *it = collm_rec_items_load(test_shared_path("data/ml-1m/items.tsv"));
    collm_rec_split *tr = collm_rec_split_load(test_shared_path("data/ml-1m/train.tsv"), it);
    CHECK(it && tr);
    if (!it || !tr) return;
    snprintf(out, sizeof out, "%s/ds_rt_items.tsv", test_tmp_dir());
    CHECK(collm_rec_items_write(out, it) == COLLM_OK);
    CHECK(same_file(out, test_shared_path("data/ml-1m/items.tsv")));
    snprintf(out, sizeof out, "%s/ds_rt_train.tsv", test_tmp_dir());
    CHECK(collm_rec_split_write(out, tr) == COLLM_OK);
    CHECK(same_file(out, test_shared_path("data/ml-1m/train.tsv")));
    collm_rec_split_free(tr);
    collm_rec_items_free(it);
    const char *bt = "uid\tiid\tlabel\this\this_label\n5\t0\t1\t3,0\t0,1\n6\t2\t0\t\t\n";
    const char *bp = write_tmp("book.tsv", bt);
    collm_rec_split *b = collm_rec_split_load(bp, NULL);
    CHECK(b && b->n == 2 && b->his_label && b->his_label[1] == 1 && b->item[0] == 0);
    if (b) {
        snprintf(out, sizeof out, "%s/ds_rt_book.tsv", test_tmp_dir());
        CHECK(collm_rec_split_write(out, b) == COLLM_OK && same_file(out, bp));
    }
    collm_rec_split_free(b);
    const char *ip = write_tmp("items_a.tsv", "iid\ttitle\tauthor\n0\tA\\\\B\\tC\\nD\\rE\tX\n1\t\t\n");
    collm_rec_items *ia = collm_rec_items_load(ip);
    CHECK(ia && strcmp(ia->title[0], "A\\B\tC\nD\rE") == 0);
    if (ia) {
        snprintf(out, sizeof out, "%s/ds_rt_items_a.tsv", test_tmp_dir());
        CHECK(collm_rec_items_write(out, ia) == COLLM_OK && same_file(out, ip));
    }
    collm_rec_items_free(ia);
}

// A dataset sizes its user table by the largest user id over all splits: an
// id far beyond all its rows is refused, naming the file; bookcrossing's raw
// sparse ids (tested in test_bookcrossing) still load.
static void test_dataset_id_bounds(void) {
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/ds_bigusers", test_tmp_dir());
    CHECK(collm_mkdir_p(dir) == COLLM_OK);
    const char *files[][2] = {{"items.tsv", "iid\ttitle\n0\ta\n1\tb\n"},
                              {"train.tsv", "uid\tiid\tlabel\this\n1\t1\t1\t0\n500000\t0\t0\t1\n"}};
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i][0]);
        FILE *f = fopen(path, "wb");
        fputs(files[i][1], f);
        fclose(f);
    }
    collm_rec_dataset *ds = collm_rec_dataset_load(dir);
    CHECK_MSG(ds == NULL && contains(collm_last_error(), "train.tsv") && contains(collm_last_error(), "user id 500000") &&
                  contains(collm_last_error(), "far beyond"),
              "n_users %d: %s", ds ? ds->n_users : -1, collm_last_error());
    collm_rec_dataset_free(ds);
    // the same ids dense: fine
    snprintf(path, sizeof path, "%s/train.tsv", dir);
    FILE *f = fopen(path, "wb");
    fputs("uid\tiid\tlabel\this\n1\t1\t1\t0\n2\t0\t0\t1\n", f);
    fclose(f);
    ds = collm_rec_dataset_load(dir);
    CHECK_MSG(ds != NULL && ds->n_users == 3, "%s", collm_last_error());
    collm_rec_dataset_free(ds);
}

// collm_rec_split_select: the chosen rows, in order, each with its own
// history (compared with the source row by row), repeats allowed; a bad
// index is an error.
static void test_split_select(void) {
    collm_rec_dataset *ds = collm_rec_dataset_load(test_shared_path("data/ml-1m"));
    CHECK_MSG(ds != NULL, "%s", collm_last_error());
    if (!ds) return;
    const collm_rec_split *s = ds->train;
    const int64_t rows[] = {5, 0, 33890, 5, 1234};
    const int64_t n = (int64_t)(sizeof rows / sizeof rows[0]);
    collm_rec_split *t = collm_rec_split_select(s, rows, n);
    CHECK_MSG(t != NULL, "%s", collm_last_error());
    if (t) {
        CHECK(t->n == n && t->his_offset[0] == 0);
        int same = 1;
        int32_t max_user = 0;
        for (int64_t k = 0; k < n; k++) {
            const int64_t r = rows[k], nh = s->his_offset[r + 1] - s->his_offset[r];
            same &= t->user[k] == s->user[r] && t->item[k] == s->item[r] && t->label[k] == s->label[r] &&
                    t->timestamp[k] == s->timestamp[r] && t->not_cold[k] == s->not_cold[r] &&
                    t->his_offset[k + 1] - t->his_offset[k] == nh &&
                    memcmp(t->his + t->his_offset[k], s->his + s->his_offset[r], (size_t)nh * sizeof(int32_t)) == 0;
            if (s->user[r] > max_user) max_user = s->user[r];
        }
        CHECK(same);
        CHECK(t->max_user == max_user && t->max_item <= s->max_item);
    }
    collm_rec_split_free(t);
    const int64_t bad[] = {0, 33891};
    CHECK(collm_rec_split_select(s, bad, 2) == NULL && contains(collm_last_error(), "33891"));
    collm_rec_dataset_free(ds);
}

// collm_rec_split_concat: train then valid, row by row as loaded (every
// column and history), the path naming both; an empty list and a part with
// his_label beside one without are errors.
static void test_split_concat(void) {
    collm_rec_dataset *ds = collm_rec_dataset_load(test_shared_path("data/ml-1m"));
    CHECK_MSG(ds != NULL && ds->valid, "%s", collm_last_error());
    if (!ds || !ds->valid) {
        collm_rec_dataset_free(ds);
        return;
    }
    const collm_rec_split *parts[] = {ds->train, ds->valid};
    collm_rec_split *t = collm_rec_split_concat(parts, 2);
    CHECK_MSG(t != NULL, "%s", collm_last_error());
    if (t) {
        CHECK(t->n == ds->train->n + ds->valid->n && t->n == 33891 + 10401 && t->his_label == NULL);
        int same = 1;
        for (int64_t k = 0; k < t->n; k++) {
            const collm_rec_split *s = k < ds->train->n ? ds->train : ds->valid;
            const int64_t r = k < ds->train->n ? k : k - ds->train->n, nh = s->his_offset[r + 1] - s->his_offset[r];
            same &= t->user[k] == s->user[r] && t->item[k] == s->item[r] && t->label[k] == s->label[r] &&
                    t->timestamp[k] == s->timestamp[r] && t->not_cold[k] == s->not_cold[r] &&
                    t->his_offset[k + 1] - t->his_offset[k] == nh &&
                    memcmp(t->his + t->his_offset[k], s->his + s->his_offset[r], (size_t)nh * sizeof(int32_t)) == 0;
        }
        CHECK(same);
        CHECK(t->max_user == (ds->train->max_user > ds->valid->max_user ? ds->train->max_user : ds->valid->max_user));
        CHECK(t->max_item == (ds->train->max_item > ds->valid->max_item ? ds->train->max_item : ds->valid->max_item));
        CHECK(contains(t->path, "train.tsv + ") && contains(t->path, "valid.tsv"));
    }
    collm_rec_split_free(t);
    CHECK(collm_rec_split_concat(parts, 0) == NULL && contains(collm_last_error(), "no splits"));
    // a bookcrossing-style part (his_label) beside ml-1m's: refused
    const char *p = write_tmp("hl.tsv", "uid\tiid\tlabel\this\this_label\n1\t2\t1\t3\t1\n");
    collm_rec_split *hl = collm_rec_split_load(p, NULL);
    CHECK_MSG(hl != NULL && hl->his_label != NULL, "%s", collm_last_error());
    if (hl) {
        const collm_rec_split *mixed[] = {ds->train, hl};
        CHECK(collm_rec_split_concat(mixed, 2) == NULL && contains(collm_last_error(), "his_label"));
        const collm_rec_split *twice[] = {hl, hl};
        collm_rec_split *h2 = collm_rec_split_concat(twice, 2);
        CHECK_MSG(h2 && h2->n == 2 && h2->his_label && h2->his_label[1] == 1 && h2->his[1] == 3, "%s", collm_last_error());
        collm_rec_split_free(h2);
    }
    collm_rec_split_free(hl);
    // collm_rec_dataset_set_train: bad lists leave train as it was; "train,valid" joins them
    collm_rec_split *train = ds->train;
    CHECK(collm_rec_dataset_set_train(ds, "train,train") != COLLM_OK && contains(collm_last_error(), "train twice"));
    CHECK(collm_rec_dataset_set_train(ds, "train,valid,valid_small") != COLLM_OK &&
          contains(collm_last_error(), "valid_small is part of valid"));
    CHECK(collm_rec_dataset_set_train(ds, "train,,valid") != COLLM_OK && contains(collm_last_error(), "empty name"));
    CHECK(collm_rec_dataset_set_train(ds, "train,nope.tsv") != COLLM_OK && contains(collm_last_error(), "nope.tsv"));
    CHECK(ds->train == train && ds->train->n == 33891);
    CHECK(collm_rec_dataset_set_train(ds, "train") == COLLM_OK && ds->train == train);
    CHECK_MSG(collm_rec_dataset_set_train(ds, "train,valid") == COLLM_OK && ds->train->n == 33891 + 10401 &&
                  ds->train->item[33891] == ds->valid->item[0],
              "%s", collm_last_error());
    collm_rec_dataset_free(ds);
}

// item_map.tsv's genres: a hand-made file read back item by item, the real
// ML-1M file's counts, and damaged files that fail naming file, line, column.
static void expect_genres_error(const char *name, const char *text, const char *n1, const char *n2) {
    const char *p = write_tmp(name, text);
    collm_rec_item_genres *g = (collm_rec_item_genres *)1;
    int rc = collm_rec_item_genres_load(p, 6, &g);
    CHECK_MSG(rc != COLLM_OK && g == NULL, "%s loaded but should fail", name);
    const char *e = collm_last_error();
    CHECK_MSG(contains(e, p) && contains(e, n1) && (!n2 || contains(e, n2)), "%s: message '%s'", name, e);
}

static void test_item_genres(void) {
    // rows in any order, an empty field, a repeated genre, an escaped name, an unlisted item (2)
    const char *p = write_tmp("map.tsv", "movie_id\tgenres\tiid\n"
                                         "10\tDrama|Comedy\t3\n11\t\t1\n12\tComedy|War|Comedy\t5\n"
                                         "13\tSci\\tFi\t4\n14\tDrama\t0\n");
    collm_rec_item_genres *g = NULL;
    CHECK_MSG(collm_rec_item_genres_load(p, 6, &g) == COLLM_OK && g, "%s", collm_last_error());
    if (g) {
        CHECK(g->n_items == 6 && g->n_names == 4);
        CHECK_STR(g->name[0], "Drama");
        CHECK_STR(g->name[1], "Comedy");
        CHECK_STR(g->name[2], "War");
        CHECK_STR(g->name[3], "Sci\tFi");
        const int64_t want_off[] = {0, 1, 1, 1, 3, 4, 6};
        for (int i = 0; i <= 6; i++) CHECK_MSG(g->offset[i] == want_off[i], "offset[%d] = %lld", i, (long long)g->offset[i]);
        const int32_t want[] = {0, 0, 1, 3, 1, 2}; // items 0; 3: Drama, Comedy; 4; 5: Comedy, War (once)
        for (int j = 0; j < 6; j++) CHECK_MSG(g->genre[j] == want[j], "genre[%d] = %d", j, g->genre[j]);
    }
    collm_rec_item_genres_free(g);
    // no file, no genres column: no genres, not an error
    g = (collm_rec_item_genres *)1;
    CHECK(collm_rec_item_genres_load("/nonexistent/item_map.tsv", 6, &g) == COLLM_OK && g == NULL);
    g = (collm_rec_item_genres *)1;
    CHECK(collm_rec_item_genres_load(write_tmp("nog.tsv", "iid\tmovie_id\n1\t11\n"), 6, &g) == COLLM_OK && g == NULL);
    expect_genres_error("g_noiid.tsv", "id\tgenres\n1\tDrama\n", "line 1", "missing column 'iid'");
    expect_genres_error("g_badid.tsv", "iid\tgenres\n1\tDrama\nx\tDrama\n", "line 3", "column 'iid'");
    expect_genres_error("g_range.tsv", "iid\tgenres\n6\tDrama\n", "line 2", "max 5");
    expect_genres_error("g_twice.tsv", "iid\tgenres\n1\tDrama\n1\tWar\n", "line 3", "listed twice");
    expect_genres_error("g_empty.tsv", "iid\tgenres\n1\tDrama||War\n", "line 2", "empty genre name");
    expect_genres_error("g_end.tsv", "iid\tgenres\n1\tDrama|\n", "line 2", "empty genre name");
    expect_genres_error("g_fields.tsv", "iid\tmovie_id\tgenres\n1\tDrama\n", "line 2", "expected 3 fields");
    expect_genres_error("g_escape.tsv", "iid\tgenres\n1\tDra\\ma\n", "line 2", "bad escape");
    // the real file: 3,255 listed items (1..3255), 18 genres, every item at least one
    char path[1024];
    snprintf(path, sizeof path, "%s/data/ml-1m/item_map.tsv", test_shared_dir());
    g = NULL;
    CHECK_MSG(collm_rec_item_genres_load(path, 3256, &g) == COLLM_OK && g, "%s", collm_last_error());
    if (g) {
        CHECK_MSG(g->n_names == 18, "%d genres", (int)g->n_names);
        int none = 0;
        for (int32_t i = 1; i < 3256; i++) none += g->offset[i + 1] == g->offset[i];
        CHECK_MSG(none == 0 && g->offset[1] == 0, "%d listed items without genres", none);
    }
    collm_rec_item_genres_free(g);
}

int main(void) {
    collm_mkdir_p(test_tmp_dir());
    test_item_genres();
    test_write_roundtrip();
    test_small_files();
    test_dataset_id_bounds();
    test_ml1m();
    test_split_select();
    test_split_concat();
    test_bookcrossing();
    return test_report();
}
