// collm prepare on tiny raw files written here, whose correct output was
// worked out by hand from method.md §2.2-§2.4 and docs/data.md; plus damaged
// inputs that must fail naming file:line.
#include "collm/dataset.h"
#include "collm/error.h"
#include "collm/fileio.h"
#include "collm/prepare.h"
#include "test.h"

#include <sys/stat.h>
#include <unistd.h>

static char tmp[512];

static const char *tpath(const char *name) {
    static char bufs[8][700];
    static int next;
    char *b = bufs[next++ % 8];
    snprintf(b, 700, "%s/%s", tmp, name);
    return b;
}

static void put(const char *name, const char *text) {
    FILE *f = fopen(tpath(name), "wb");
    fputs(text, f);
    fclose(f);
}

static char *slurp(const char *dir, const char *name) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    char *s = NULL;
    size_t n;
    if (collm_read_file(p, &s, &n)) return NULL;
    return s;
}

static void check_file(const char *dir, const char *name, const char *expect) {
    char *s = slurp(dir, name);
    CHECK_MSG(s && strcmp(s, expect) == 0, "%s/%s:\n%s\n--- expected ---\n%s", dir, name, s ? s : "(missing)",
              expect);
    free(s);
}

// valid_small = exactly one row, and that row is one of `rows` (which one
// the seeded shuffle picks is not worked out by hand).
static void check_small_one_of(const char *dir, const char *header, const char *const *rows, int n) {
    char *s = slurp(dir, "valid_small.tsv");
    int ok = 0;
    char want[512];
    for (int k = 0; k < n && s; k++) {
        snprintf(want, sizeof want, "%s%s", header, rows[k]);
        ok |= strcmp(s, want) == 0;
    }
    CHECK_MSG(ok, "%s/valid_small.tsv:\n%s", dir, s ? s : "(missing)");
    free(s);
}

static void test_ml1m(void) {
    // Movie 2's title in Latin-1 (0xE9 = e-acute); movie 9 is not in movies.dat.
    put("movies_latin1.dat", "1::Toy Story (1995)::Animation|Comedy\n2::Mis\xE9rables, Les (1995)::Drama\n"
                             "3::U2: Rattle and Hum (1988)::Documentary\n");
    put("movies_utf8.dat", "1::Toy Story (1995)::Animation|Comedy\n2::Mis\xC3\xA9rables, Les (1995)::Drama\n"
                           "3::U2: Rattle and Hum (1988)::Documentary\n");
    // 991353600 = 2001-06-01 (t=14), 1017619200 = 2002-04-01 (t=24),
    // 1030838400 = 2002-09-01 (t=29), 1044057600 = 2003-02-01 (t=34, dropped).
    // 1017619300 = 2002-04-01 00:01:40 (t=24, valid).
    put("ratings.dat", "20::3::5::991353600\n20::1::2::991353700\n20::2::4::1017619200\n20::9::5::991353650\n"
                       "10::2::4::991353599\n10::3::1::1030838400\n10::1::4::1030838400\n10::2::5::1044057600\n"
                       "20::1::5::1017619300\n");
    const char *out = tpath("ml1m_out");
    int rc = collm_rec_prepare_ml1m(tpath("ratings.dat"), tpath("movies_latin1.dat"), out, 2023);
    CHECK_MSG(rc == COLLM_OK, "%s", collm_last_error());
    // Sorted: user 10 -> 1 (movie 1 before 3 at the tied timestamp), user 20 -> 2.
    // Items by first appearance: movie 1 -> 1, 3 -> 2, 2 -> 3.
    check_file(out, "items.tsv", "iid\ttitle\n0\t\n1\tToy Story (1995)\n2\tU2: Rattle and Hum (1988)\n"
                                 "3\tMis\xC3\xA9rables, Les (1995)\n");
    check_file(out, "item_map.tsv", "iid\tmovie_id\tgenres\n1\t1\tAnimation|Comedy\n2\t3\tDocumentary\n3\t2\tDrama\n");
    const char *H = "uid\tiid\tlabel\ttimestamp\this\tnot_cold\n";
    char e[512];
    snprintf(e, sizeof e, "%s2\t2\t1\t991353600\t0\t1\n2\t1\t0\t991353700\t0,2\t1\n", H);
    check_file(out, "train.tsv", e);
    // User 2's second valid row: movie 1 (item 1, in train) after the
    // positives movie 3 (item 2) and movie 2 (item 3).
    const char *valid_rows[2] = {"2\t3\t1\t1017619200\t0,2\t0\n", "2\t1\t1\t1017619300\t0,2,3\t1\n"};
    snprintf(e, sizeof e, "%s%s%s", H, valid_rows[0], valid_rows[1]);
    check_file(out, "valid.tsv", e);
    snprintf(e, sizeof e, "%s1\t1\t1\t1030838400\t0\t0\n1\t2\t0\t1030838400\t0,1\t0\n", H);
    check_file(out, "test.tsv", e);
    check_small_one_of(out, H, valid_rows, 2); // round(0.5 * 2) = 1
    // The loader accepts the result.
    collm_rec_dataset *ds = collm_rec_dataset_load(out);
    CHECK_MSG(ds && ds->n_items == 4 && ds->n_users == 3, "%s", collm_last_error());
    collm_rec_dataset_free(ds);
    // Already-UTF-8 movies.dat gives the same items.
    const char *out2 = tpath("ml1m_out_utf8");
    CHECK(collm_rec_prepare_ml1m(tpath("ratings.dat"), tpath("movies_utf8.dat"), out2, 2023) == COLLM_OK);
    char *a = slurp(out, "items.tsv"), *b = slurp(out2, "items.tsv");
    CHECK(a && b && strcmp(a, b) == 0);
    free(a), free(b);
    // Empty splits are errors that say why, and nothing is written. One
    // valid row: valid_small = round(0.5 * 1) = 0 (half to even).
    put("ratings_1valid.dat", "20::3::5::991353600\n20::2::4::1017619200\n10::3::1::1030838400\n");
    unlink(tpath("ml1m_e1/items.tsv")), unlink(tpath("ml1m_e1/item_map.tsv")); // (a rerun's leftovers)
    CHECK(collm_rec_prepare_ml1m(tpath("ratings_1valid.dat"), tpath("movies_utf8.dat"), tpath("ml1m_e1"), 1) != COLLM_OK);
    CHECK_MSG(strstr(collm_last_error(), "valid_small would be empty"), "%s", collm_last_error());
    char *none = slurp(tpath("ml1m_e1"), "train.tsv"), *no_items = slurp(tpath("ml1m_e1"), "items.tsv");
    CHECK(none == NULL && no_items == NULL); // (items.tsv too: the splits are written first)
    free(none), free(no_items);
    // A folder holding an earlier dataset: a refused build leaves it as it
    // was, a finished one takes away the files of the layout it does not
    // write (a CSV build's user_map.tsv and item_noun.txt would still name
    // the items "songs").
    char dir[700]; // (tpath's buffers rotate: out's may be overwritten by now)
    snprintf(dir, sizeof dir, "%s", tpath("ml1m_out"));
    char *before = slurp(dir, "items.tsv");
    CHECK(collm_rec_prepare_ml1m(tpath("ratings_1valid.dat"), tpath("movies_utf8.dat"), dir, 1) != COLLM_OK);
    char *after = slurp(dir, "items.tsv");
    CHECK(before && after && strcmp(before, after) == 0);
    free(before), free(after);
    put("ml1m_out/user_map.tsv", "uid\tuser\n0\tx\n");
    put("ml1m_out/item_noun.txt", "song\nsongs\n");
    CHECK_MSG(collm_rec_prepare_ml1m(tpath("ratings.dat"), tpath("movies_latin1.dat"), dir, 2023) == COLLM_OK, "%s",
              collm_last_error());
    char *stale1 = slurp(dir, "user_map.tsv"), *stale2 = slurp(dir, "item_noun.txt"), *map = slurp(dir, "item_map.tsv");
    CHECK(stale1 == NULL && stale2 == NULL && map != NULL);
    free(stale1), free(stale2), free(map);
    // Dates outside the month windows (all in 1999): the train window is named.
    put("ratings_1999.dat", "20::3::5::920000000\n10::1::4::930000000\n");
    CHECK(collm_rec_prepare_ml1m(tpath("ratings_1999.dat"), tpath("movies_utf8.dat"), tpath("ml1m_e2"), 1) != COLLM_OK);
    CHECK_MSG(strstr(collm_last_error(), "no rating falls in the train months 2001-06..2002-03") &&
                  strstr(collm_last_error(), "span 1999-02..1999-06") && strstr(collm_last_error(), "ratings_1999.dat"),
              "%s", collm_last_error());
    none = slurp(tpath("ml1m_e2"), "items.tsv");
    CHECK(none == NULL);
    free(none);
    // Train and valid present, no test month.
    put("ratings_notest.dat", "20::3::5::991353600\n20::2::4::1017619200\n20::1::4::1017619300\n");
    CHECK(collm_rec_prepare_ml1m(tpath("ratings_notest.dat"), tpath("movies_utf8.dat"), tpath("ml1m_e3"), 1) != COLLM_OK);
    CHECK_MSG(strstr(collm_last_error(), "test months 2002-09..2003-01"), "%s", collm_last_error());
    // Damaged inputs.
    put("ratings_bad.dat", "20::3::5::991353600\n20::1::x::991353700\n");
    CHECK(collm_rec_prepare_ml1m(tpath("ratings_bad.dat"), tpath("movies_utf8.dat"), out2, 1) != COLLM_OK);
    CHECK_MSG(strstr(collm_last_error(), "ratings_bad.dat:2:"), "%s", collm_last_error());
    put("ratings_bad2.dat", "20::3::5::991353600::7\n");
    CHECK(collm_rec_prepare_ml1m(tpath("ratings_bad2.dat"), tpath("movies_utf8.dat"), out2, 1) != COLLM_OK);
    CHECK_MSG(strstr(collm_last_error(), "ratings_bad2.dat:1:"), "%s", collm_last_error());
    put("ratings_bad3.dat", "20::3::6::991353600\n");
    CHECK(collm_rec_prepare_ml1m(tpath("ratings_bad3.dat"), tpath("movies_utf8.dat"), out2, 1) != COLLM_OK);
    put("movies_bad.dat", "1::Toy Story (1995)::Animation\nxx::Bad::Drama\n");
    CHECK(collm_rec_prepare_ml1m(tpath("ratings.dat"), tpath("movies_bad.dat"), out2, 1) != COLLM_OK);
    CHECK_MSG(strstr(collm_last_error(), "movies_bad.dat:2:"), "%s", collm_last_error());
    put("movies_dup.dat", "1::A (1995)::Drama\n1::B (1995)::Drama\n");
    CHECK(collm_rec_prepare_ml1m(tpath("ratings.dat"), tpath("movies_dup.dat"), out2, 1) != COLLM_OK);
    CHECK_MSG(strstr(collm_last_error(), "movies_dup.dat:2:") && strstr(collm_last_error(), "duplicate"), "%s",
              collm_last_error());
    CHECK(collm_rec_prepare_ml1m(tpath("nonexistent.dat"), tpath("movies_utf8.dat"), out2, 1) != COLLM_OK);
    CHECK(strstr(collm_last_error(), "nonexistent.dat") != NULL);

    // Issue 8: a 19-digit id overflowed the integer parser (UB; UBSan aborts
    // here without the fix): an error naming the line instead.
    put("ratings_19.dat", "20::3::5::991353600\n9999999999999999999::1::4::991353700\n");
    CHECK(collm_rec_prepare_ml1m(tpath("ratings_19.dat"), tpath("movies_utf8.dat"), out2, 1) != COLLM_OK);
    CHECK_MSG(strstr(collm_last_error(), "ratings_19.dat:2:"), "%s", collm_last_error());
    put("ratings_19b.dat", "20::3::5::9223372036854775808\n"); // INT64_MAX + 1
    CHECK(collm_rec_prepare_ml1m(tpath("ratings_19b.dat"), tpath("movies_utf8.dat"), out2, 1) != COLLM_OK);
    CHECK_MSG(strstr(collm_last_error(), "ratings_19b.dat:1:"), "%s", collm_last_error());
    // Issue 8: the user table was indexed by the raw UserID (2000000000: an
    // 8 GB table walked end to end); users are numbered from the sorted rows.
    put("ratings_bigu.dat", "2000000000::3::5::991353600\n2000000000::1::2::991353700\n2000000000::2::4::1017619200\n"
                            "7::2::4::991353599\n7::3::1::1030838400\n7::1::4::1030838400\n"
                            "2000000000::1::5::1017619300\n");
    const char *out3 = tpath("ml1m_bigu");
    CHECK_MSG(collm_rec_prepare_ml1m(tpath("ratings_bigu.dat"), tpath("movies_utf8.dat"), out3, 2023) == COLLM_OK, "%s",
              collm_last_error());
    snprintf(e, sizeof e, "%s2\t2\t1\t991353600\t0\t1\n2\t1\t0\t991353700\t0,2\t1\n", H);
    check_file(out3, "train.tsv", e);
    // Issue 8: item_map.tsv was written in place with fopen (a symlink there
    // was followed, a failed write left a torn file): now atomic like the rest.
    char victim[600], link_path[600];
    snprintf(victim, sizeof victim, "%s/victim.txt", tmp);
    snprintf(link_path, sizeof link_path, "%s/item_map.tsv", out3);
    put("victim.txt", "keep me\n");
    unlink(link_path);
    CHECK(symlink(victim, link_path) == 0);
    CHECK(collm_rec_prepare_ml1m(tpath("ratings_bigu.dat"), tpath("movies_utf8.dat"), out3, 2023) == COLLM_OK);
    char *kept = slurp(tmp, "victim.txt");
    CHECK_MSG(kept && strcmp(kept, "keep me\n") == 0, "item_map.tsv was written through a symlink: %s", kept);
    free(kept);
    check_file(out3, "item_map.tsv", "iid\tmovie_id\tgenres\n1\t1\tAnimation|Comedy\n2\t3\tDocumentary\n3\t2\tDrama\n");
}

static void test_amazon(void) {
    put("meta.json", "{\"asin\":\"A1\",\"title\":\"Book One\"}\n{\"asin\":\"A2\",\"title\":\"Old Two\"}\n"
                     "{\"asin\":\"A2\",\"title\":\"Book Two\"}\n{\"asin\":\"A3\"}\n");
    // 1484006400 = 2017-01-10, 1512086400 = 2017-12-01, 1512172800 = 2017-12-02, 1451606400 = 2016-01-01.
    put("reviews.json",
        "{\"reviewerID\":\"U1\",\"asin\":\"A1\",\"overall\":5.0,\"unixReviewTime\":1484006400}\n"
        "{\"reviewerID\":\"U1\",\"asin\":\"A2\",\"overall\":4.0,\"unixReviewTime\":1512172800}\n"
        "{\"reviewerID\":\"U2\",\"asin\":\"A2\",\"overall\":5.0,\"unixReviewTime\":1512086400}\n"
        "{\"reviewerID\":\"U2\",\"asin\":\"A1\",\"overall\":3.0,\"unixReviewTime\":1484006400}\n"
        "{\"reviewerID\":\"U2\",\"asin\":\"A3\",\"overall\":5.0,\"unixReviewTime\":1484006400}\n"
        "{\"reviewerID\":\"U1\",\"asin\":\"A1\",\"overall\":5.0,\"unixReviewTime\":1451606400}\n"
        "{\"reviewerID\":\"U3\",\"asin\":\"A1\",\"overall\":5.0,\"unixReviewTime\":1484006400}\n"
        "{\"reviewerID\":\"U2\",\"overall\":5.0,\"unixReviewTime\":1484006400}\n"
        // December 3..6: 1512259200, 1512345600, 1512432000, 1512518400
        "{\"reviewerID\":\"U1\",\"asin\":\"A1\",\"overall\":5.0,\"unixReviewTime\":1512259200}\n"
        "{\"reviewerID\":\"U2\",\"asin\":\"A1\",\"overall\":2.0,\"unixReviewTime\":1512345600}\n"
        "{\"reviewerID\":\"U1\",\"asin\":\"A2\",\"overall\":5.0,\"unixReviewTime\":1512432000}\n"
        "{\"reviewerID\":\"U2\",\"asin\":\"A2\",\"overall\":5.0,\"unixReviewTime\":1512518400}\n");
    const char *out = tpath("amazon_out");
    // min_count 1: keep users/items with more than one 2017 rating (U3 has one).
    int rc = collm_rec_prepare_amazon(tpath("reviews.json"), tpath("meta.json"), out, 2023, 1);
    CHECK_MSG(rc == COLLM_OK, "%s", collm_last_error());
    check_file(out, "items.tsv", "iid\ttitle\n0\t\n1\tBook One\n2\tBook Two\n");
    check_file(out, "item_map.tsv", "iid\tasin\n1\tA1\n2\tA2\n");
    const char *H = "uid\tiid\tlabel\ttimestamp\this\tnot_cold\n";
    char e[512];
    snprintf(e, sizeof e, "%s1\t1\t1\t1484006400\t0\t1\n2\t1\t0\t1484006400\t0\t1\n", H);
    check_file(out, "train.tsv", e);
    // December, by time: Dec 1 (U2 A2), 2 (U1 A2), 3 (U1 A1) are the first
    // half -> valid; Dec 4, 5, 6 -> test. Histories hold earlier positives
    // across splits (U1's Dec 3 A1 precedes Dec 5); not_cold = item 1.
    const char *valid_rows[3] = {"1\t2\t0\t1512172800\t0,1\t0\n", "1\t1\t1\t1512259200\t0,1\t1\n",
                                 "2\t2\t1\t1512086400\t0\t0\n"};
    snprintf(e, sizeof e, "%s%s%s%s", H, valid_rows[0], valid_rows[1], valid_rows[2]);
    check_file(out, "valid.tsv", e);
    snprintf(e, sizeof e, "%s1\t2\t1\t1512432000\t0,1,1\t0\n2\t1\t0\t1512345600\t0,2\t1\n"
                          "2\t2\t1\t1512518400\t0,2\t0\n", H);
    check_file(out, "test.tsv", e);
    check_small_one_of(out, H, valid_rows, 3); // round(0.25 * 3) = 1
    put("reviews_bad.json", "{\"reviewerID\":\"U1\",\"asin\":\"A1\",\"overall\":5.0,\"unixReviewTime\":1484006400}\n"
                            "{\"reviewerID\":\"U1\",\n");
    CHECK(collm_rec_prepare_amazon(tpath("reviews_bad.json"), tpath("meta.json"), out, 1, 1) != COLLM_OK);
    CHECK_MSG(strstr(collm_last_error(), "reviews_bad.json:2:"), "%s", collm_last_error());
    put("reviews_bad2.json", "{\"reviewerID\":\"U1\",\"asin\":\"A1\",\"overall\":\"5\",\"unixReviewTime\":1}\n");
    CHECK(collm_rec_prepare_amazon(tpath("reviews_bad2.json"), tpath("meta.json"), out, 1, 1) != COLLM_OK);
    CHECK_MSG(strstr(collm_last_error(), "reviews_bad2.json:1:"), "%s", collm_last_error());
}

static void test_bookcrossing(void) {
    put("BX-Books.csv",
        "\"ISBN\";\"Book-Title\";\"Book-Author\";\"Year-Of-Publication\";\"Publisher\";\"Image-URL-S\";\"Image-URL-M\";"
        "\"Image-URL-L\"\n"
        "\"0001\";\"Alpha\";\"Ann\";\"2000\";\"P\";\"s\";\"m\";\"l\"\n"
        "\"0002\";\"Bad line\";\"x\"\n"
        "\"0003\";\"B\xE9ta \"\"Quoted\"\"\";\"Bob\";\"2001\";\"P\";\"s\";\"m\";\"l\"\n"
        "\"0004\";\"Gamma\";\"Cy\";\"2002\";\"P\";\"s\";\"m\";\"l\"\n"
        "\"0005\";\"Delta\";\"Di\";\"2003\";\"P\";\"s\";\"m\";\"l\"\n"
        "\"0006\";\"Eps\";\"Ed\";\"2003\";\"P\";\"s\";\"m\";\"l\"\n");
    // User 7: 0001 liked, 0003 (0 = implicit) not, 0004 liked (6 > 5), 0005 not (5).
    // User 9: 3 known ratings (0002 is on a skipped line) -> dropped. User 8: one rating.
    // Users 100..109: 4 ratings each, all liked.
    char r[4096] = "\"User-ID\";\"ISBN\";\"Book-Rating\"\n\"7\";\"0001\";\"8\"\n\"7\";\"0003\";\"0\"\n"
                   "\"7\";\"0004\";\"6\"\n\"7\";\"0005\";\"5\"\n\"9\";\"0001\";\"9\"\n\"9\";\"0003\";\"9\"\n"
                   "\"9\";\"0002\";\"9\"\n\"9\";\"0004\";\"1\"\n\"8\";\"0006\";\"10\"\n";
    for (int u = 100; u < 110; u++) {
        const char *isbn[4] = {"0001", "0004", "0005", "0006"};
        for (int k = 0; k < 4; k++)
            snprintf(r + strlen(r), sizeof r - strlen(r), "\"%d\";\"%s\";\"%d\"\n", u, isbn[k], 7 + k);
    }
    put("BX-Book-Ratings.csv", r);
    const char *out = tpath("bx_out");
    // an earlier ML-1M-style dataset in the folder: its valid_small and item_map must not survive
    mkdir(out, 0755);
    put("bx_out/valid_small.tsv", "uid\tiid\tlabel\ttimestamp\this\tnot_cold\n1\t1\t1\t1\t0\t1\n");
    put("bx_out/item_map.tsv", "iid\tmovie_id\tgenres\n1\t1\tDrama\n");
    int rc = collm_rec_prepare_bookcrossing(tpath("BX-Book-Ratings.csv"), tpath("BX-Books.csv"), out, 42, NULL);
    CHECK_MSG(rc == COLLM_OK, "%s", collm_last_error());
    char *old_small = slurp(out, "valid_small.tsv"), *old_map = slurp(out, "item_map.tsv");
    CHECK(old_small == NULL && old_map == NULL);
    free(old_small), free(old_map);
    // Ids: data rows kept in order, the bad line skipped: 0001->0, 0003->1, 0004->2, 0005->3, 0006->4.
    check_file(out, "items.tsv", "iid\ttitle\tauthor\n0\tAlpha\tAnn\n1\tB\xC3\xA9ta \"Quoted\"\tBob\n2\tGamma\tCy\n"
                                 "3\tDelta\tDi\n4\tEps\tEd\n");
    collm_rec_dataset *ds = collm_rec_dataset_load(out);
    CHECK_MSG(ds != NULL, "%s", collm_last_error());
    if (!ds) return;
    collm_rec_split *te = collm_rec_dataset_load_split(ds, "test");
    CHECK(te != NULL && ds->valid != NULL);
    if (!te || !ds->valid) return;
    // 11 users: 8 train, 1 valid, 2 test; K = 5 >= 4 ratings -> 4 rows per user.
    CHECK(ds->train->n == 32 && ds->valid->n == 4 && te->n == 8);
    const collm_rec_split *sp[3] = {ds->train, ds->valid, te};
    int seen7 = 0, ok = 1, users_ok = 1;
    for (int k = 0; k < 3; k++) {
        const collm_rec_split *s = sp[k];
        for (int64_t q = 0; q < s->n; q++) {
            int32_t u = s->user[q];
            users_ok &= u == 7 || (u >= 100 && u < 110);
            int64_t h0 = s->his_offset[q], nh = s->his_offset[q + 1] - h0;
            ok &= nh == 3;
            // History = the user's other three books, each with its label.
            for (int64_t j = 0; j < nh; j++) {
                int32_t b = s->his[h0 + j];
                ok &= b != s->item[q];
                if (u == 7) ok &= (b == 0 || b == 1 || b == 2 || b == 3) && s->his_label[h0 + j] == (b == 0 || b == 2);
                else ok &= (b == 0 || b == 2 || b == 3 || b == 4) && s->his_label[h0 + j] == 1;
            }
            if (u == 7) {
                seen7 |= 1 << s->item[q];
                ok &= s->label[q] == (s->item[q] == 0 || s->item[q] == 2);
            }
        }
    }
    CHECK(ok);
    CHECK(users_ok);
    CHECK(seen7 == 0xF); // every one of user 7's books is a target once
    collm_rec_split_free(te);
    collm_rec_dataset_free(ds);
    // K = 1: TALLRec's one sample per user.
    collm_rec_bookcrossing_options o = {1, 10};
    CHECK(collm_rec_prepare_bookcrossing(tpath("BX-Book-Ratings.csv"), tpath("BX-Books.csv"), out, 42, &o) == COLLM_OK);
    ds = collm_rec_dataset_load(out);
    CHECK(ds && ds->train->n == 8 && ds->valid->n == 1);
    collm_rec_dataset_free(ds);
    // Too few users for three splits: 8 users -> 6/0/2, the valid split would be empty.
    {
        char few[2048] = "\"User-ID\";\"ISBN\";\"Book-Rating\"\n";
        for (int u = 100; u < 108; u++)
            for (int k = 0; k < 4; k++)
                snprintf(few + strlen(few), sizeof few - strlen(few), "\"%d\";\"000%d\";\"7\"\n", u, k == 1 ? 4 : k + 1);
        put("BX-few.csv", few);
        CHECK(collm_rec_prepare_bookcrossing(tpath("BX-few.csv"), tpath("BX-Books.csv"), tpath("bx_few"), 1, NULL) != COLLM_OK);
        CHECK_MSG(strstr(collm_last_error(), "valid split would be empty") && strstr(collm_last_error(), "6/0/2"), "%s",
                  collm_last_error());
    }
    put("BX-bad.csv", "\"User-ID\";\"ISBN\";\"Book-Rating\"\n\"7\";\"0001\";\"8\"\n\"7\";\"0003\"\n");
    CHECK(collm_rec_prepare_bookcrossing(tpath("BX-bad.csv"), tpath("BX-Books.csv"), out, 1, NULL) != COLLM_OK);
    CHECK_MSG(strstr(collm_last_error(), "BX-bad.csv:3:"), "%s", collm_last_error());
    put("BX-bad2.csv", "\"User-ID\";\"ISBN\";\"Book-Rating\"\n\"7\";\"0001\";\"11\"\n");
    CHECK(collm_rec_prepare_bookcrossing(tpath("BX-bad2.csv"), tpath("BX-Books.csv"), out, 1, NULL) != COLLM_OK);
    CHECK_MSG(strstr(collm_last_error(), "BX-bad2.csv:2:"), "%s", collm_last_error());
}

// valid_small = m distinct rows, each one of `rows`.
static void check_small_rows(const char *dir, const char *header, const char *const *rows, int n, int m) {
    char *s = slurp(dir, "valid_small.tsv");
    int ok = s && strncmp(s, header, strlen(header)) == 0, got = 0, used = 0;
    for (const char *p = s ? s + strlen(header) : ""; ok && *p; got++) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) + 1 : strlen(p);
        int hit = -1;
        for (int k = 0; k < n; k++)
            if (strlen(rows[k]) == len && strncmp(rows[k], p, len) == 0) hit = k;
        ok = hit >= 0 && !(used & (1 << hit));
        if (hit >= 0) used |= 1 << hit;
        p += len;
    }
    CHECK_MSG(ok && got == m, "%s/valid_small.tsv (want %d rows):\n%s", dir, m, s ? s : "(missing)");
    free(s);
}

// The four split files of dir against hand-worked contents (valid_small: m of the valid rows).
static void check_splits(const char *dir, const char *train, const char *const *valid, int n_valid, const char *test,
                         int m) {
    const char *H = "uid\tiid\tlabel\ttimestamp\this\tnot_cold\n";
    char e[2048];
    snprintf(e, sizeof e, "%s%s", H, train);
    check_file(dir, "train.tsv", e);
    snprintf(e, sizeof e, "%s", H);
    for (int k = 0; k < n_valid; k++) snprintf(e + strlen(e), sizeof e - strlen(e), "%s", valid[k]);
    check_file(dir, "valid.tsv", e);
    snprintf(e, sizeof e, "%s%s", H, test);
    check_file(dir, "test.tsv", e);
    check_small_rows(dir, H, valid, n_valid, m);
}

static int prep(const char *inter, const char *items, const char *out, const collm_rec_csv_options *o,
                collm_rec_csv_stats *st) {
    int rc = collm_rec_prepare_csv(tpath(inter), tpath(items), tpath(out), o, st);
    CHECK_MSG(rc == COLLM_OK, "%s -> %s: %s", inter, out, collm_last_error());
    return rc;
}

// Must fail with a message holding `want`, and leave no split file behind.
static void prep_fails(const char *inter, const char *items, const collm_rec_csv_options *o, const char *want) {
    static int k;
    char out[64];
    snprintf(out, sizeof out, "csv_fail%d", k++);
    int rc = collm_rec_prepare_csv(tpath(inter), tpath(items), tpath(out), o, NULL);
    CHECK_MSG(rc != COLLM_OK && strstr(collm_last_error(), want), "%s: want an error with \"%s\", got %d: %s", inter,
              want, rc, collm_last_error());
    char *t = slurp(tpath(out), "train.tsv");
    CHECK_MSG(t == NULL, "%s: train.tsv written despite the error", out);
    free(t);
}

static void test_parse_time(void) {
    int64_t t = 0;
    CHECK(collm_rec_parse_time("991353600", &t) == COLLM_OK && t == 991353600);
    CHECK(collm_rec_parse_time("991353600.7", &t) == COLLM_OK && t == 991353600);
    CHECK(collm_rec_parse_time("-1.5", &t) == COLLM_OK && t == -2);
    CHECK(collm_rec_parse_time("2001-06-01", &t) == COLLM_OK && t == 991353600);
    CHECK(collm_rec_parse_time("2001-06-01T00:00:01Z", &t) == COLLM_OK && t == 991353601);
    CHECK(collm_rec_parse_time("2001-06-01 12:30", &t) == COLLM_OK && t == 991353600 + 12 * 3600 + 30 * 60);
    CHECK(collm_rec_parse_time("2000-02-29 23:59:59", &t) == COLLM_OK && t == 951868799);
    CHECK(collm_rec_parse_time("2001-02-29", &t) != COLLM_OK);
    CHECK(collm_rec_parse_time("2001-13-01", &t) != COLLM_OK);
    CHECK(collm_rec_parse_time("2001-06-01 25:00", &t) != COLLM_OK);
    CHECK(collm_rec_parse_time("yesterday", &t) != COLLM_OK);
    CHECK(collm_rec_parse_time("", &t) != COLLM_OK);
    CHECK(collm_rec_parse_time("12ab", &t) != COLLM_OK);
}

// collm_rec_prepare_csv on hand-made files. Base data (threshold 4):
//   row user  item rating ts   label     row user  item rating ts   label
//   0   alice 10   5      100  1         6   carol 30   4.5    130  1
//   1   bob   20   3      105  0         7   bob   99   5      135  (item 99 unknown: dropped)
//   2   alice 20   4      110  1         8   alice 10   4      140  1
//   3   carol 10   2      115  0         9   bob   30   4      150  1
//   4   alice 30   1      120  0         10  carol 20   5      160  1
//   5   bob   10   5      125  1
// Users by first appearance: alice 1, bob 2, carol 3. Sorted by (user,
// time), items by first appearance: 10 -> 1, 20 -> 2, 30 -> 3 (40 unused).
// his = [0] + the user's earlier positives: alice 100:[0] 110:[0,1]
// 120:[0,1,2] 140:[0,1,2]; bob 105:[0] 125:[0] 150:[0,1]; carol 115:[0]
// 130:[0] 160:[0,3].
static void test_csv(void) {
    put("movies.csv", "\xEF\xBB\xBFmovieId,title,genres\n10,\"Heat, The (1995)\",Crime\n20,Toy Story (1995),Animation\n"
                      "30,\"Say \"\"Hi\"\" (2001)\",Comedy\n40,Unused (1990),Drama\n");
    const char *base = "userId,movieId,rating,timestamp\nalice,10,5,100\nbob,20,3,105\nalice,20,4,110\ncarol,10,2,115\n"
                       "alice,30,1,120\nbob,10,5,125\ncarol,30,4.5,130\nbob,99,5,135\nalice,10,4,140\nbob,30,4,150\n"
                       "carol,20,5,160\n";
    put("ratings.csv", base);
    collm_rec_csv_options o;
    collm_rec_csv_stats st;

    // A. Global time, fractions 0.6/0.2/0.2 of 10 rows: 6 / 2 / 2 by (time, file order).
    collm_rec_csv_options_default(&o);
    o.frac[0] = 0.6, o.frac[1] = 0.2, o.frac[2] = 0.2;
    if (prep("ratings.csv", "movies.csv", "csv_a", &o, &st) == COLLM_OK) {
        const char *dir = tpath("csv_a");
        check_file(dir, "items.tsv", "iid\ttitle\n0\t\n1\tHeat, The (1995)\n2\tToy Story (1995)\n3\tSay \"Hi\" (2001)\n");
        check_file(dir, "item_map.tsv", "iid\titem\n1\t10\n2\t20\n3\t30\n");
        check_file(dir, "user_map.tsv", "uid\tuser\n1\talice\n2\tbob\n3\tcarol\n");
        const char *valid[2] = {"1\t1\t1\t140\t0,1,2\t1\n", "3\t3\t1\t130\t0\t1\n"};
        check_splits(dir,
                     "1\t1\t1\t100\t0\t1\n1\t2\t1\t110\t0,1\t1\n1\t3\t0\t120\t0,1,2\t1\n2\t2\t0\t105\t0\t1\n"
                     "2\t1\t1\t125\t0\t1\n3\t1\t0\t115\t0\t1\n",
                     valid, 2, "2\t3\t1\t150\t0,1\t1\n3\t2\t1\t160\t0,3\t1\n", 1);
        CHECK(st.n_read == 11 && st.n_unknown_item == 1 && st.n_kcore_dropped == 0 && st.n_users == 3 &&
              st.n_items == 3 && st.n_rows[0] == 6 && st.n_rows[1] == 2 && st.n_rows[2] == 2 && st.n_rows[3] == 1 &&
              st.n_pos == 7 && st.delimiter[0] == ',' && st.delimiter[1] == ',');
        collm_rec_dataset *ds = collm_rec_dataset_load(dir);
        CHECK_MSG(ds && ds->n_users == 4 && ds->n_items == 4, "%s", collm_last_error());
        collm_rec_dataset_free(ds);
    }
    // The defaults (0.8/0.1/0.1) give one valid row: valid_small = round(0.5) = 0.
    collm_rec_csv_options_default(&o);
    prep_fails("ratings.csv", "movies.csv", &o, "valid_small would be empty: round(0.5 x 1 valid rows) = 0");
    o.frac[0] = 0.98, o.frac[1] = 0.01, o.frac[2] = 0.01;
    prep_fails("ratings.csv", "movies.csv", &o, "the valid split would be empty: 10 interactions x fraction 0.01 < 1");

    // B. Leave-one-out: per user, last row test, second last valid.
    collm_rec_csv_options_default(&o);
    o.split = COLLM_SPLIT_LOO;
    if (prep("ratings.csv", "movies.csv", "csv_b", &o, &st) == COLLM_OK) {
        const char *valid[3] = {"1\t3\t0\t120\t0,1,2\t0\n", "2\t1\t1\t125\t0\t1\n", "3\t3\t1\t130\t0\t0\n"};
        check_splits(tpath("csv_b"), "1\t1\t1\t100\t0\t1\n1\t2\t1\t110\t0,1\t1\n2\t2\t0\t105\t0\t1\n3\t1\t0\t115\t0\t1\n",
                     valid, 3, "1\t1\t1\t140\t0,1,2\t1\n2\t3\t1\t150\t0,1\t0\n3\t2\t1\t160\t0,3\t1\n",
                     2); // round(1.5) = 2
    }
    // k-core 2 drops dave's single row, and then the result is B's.
    char dave[1024];
    snprintf(dave, sizeof dave, "%sdave,10,5,170\n", base);
    put("ratings_dave.csv", dave);
    o.kcore = 2;
    if (prep("ratings_dave.csv", "movies.csv", "csv_k", &o, &st) == COLLM_OK) {
        CHECK(st.n_kcore_dropped == 1 && st.n_users == 3 && st.n_rows[0] == 4);
        char *a = slurp(tpath("csv_b"), "train.tsv"), *b = slurp(tpath("csv_k"), "train.tsv");
        CHECK(a && b && strcmp(a, b) == 0);
        free(a), free(b);
        check_file(tpath("csv_k"), "user_map.tsv", "uid\tuser\n1\talice\n2\tbob\n3\tcarol\n");
    }
    o.kcore = 4; // alice x item 10 survive round 1 (2 rows), then alice has 2 < 4
    prep_fails("ratings_dave.csv", "movies.csv", &o, "--kcore 4 removes every one of the 11 interactions");
    o.kcore = 0;
    put("ratings_short.csv", "user,item,rating\nu,10,5\nu,20,4\nv,10,3\n");
    prep_fails("ratings_short.csv", "movies.csv", &o, "leave-one-out takes valid and test rows from users with at least 3");

    // C. Per-user ratio 0.5/0.25/0.25: alice (4 rows) 2/1/1; bob and carol
    // (3 rows: floor(0.75) = 0) train only. small_frac 1: valid_small = valid.
    collm_rec_csv_options_default(&o);
    o.split = COLLM_SPLIT_RATIO;
    o.frac[0] = 0.5, o.frac[1] = 0.25, o.frac[2] = 0.25;
    o.small_frac = 1;
    if (prep("ratings.csv", "movies.csv", "csv_c", &o, &st) == COLLM_OK) {
        const char *valid[1] = {"1\t3\t0\t120\t0,1,2\t1\n"};
        check_splits(tpath("csv_c"),
                     "1\t1\t1\t100\t0\t1\n1\t2\t1\t110\t0,1\t1\n2\t2\t0\t105\t0\t1\n2\t1\t1\t125\t0\t1\n"
                     "2\t3\t1\t150\t0,1\t1\n3\t1\t0\t115\t0\t1\n3\t3\t1\t130\t0\t1\n3\t2\t1\t160\t0,3\t1\n",
                     valid, 1, "1\t1\t1\t140\t0,1,2\t1\n", 1);
    }
    o.frac[0] = 0.8, o.frac[1] = 0.1, o.frac[2] = 0.1;
    prep_fails("ratings.csv", "movies.csv", &o, "a valid row needs a user with 10");

    // D. Cut dates: train < 125 <= valid < 150 <= test.
    collm_rec_csv_options_default(&o);
    o.use_dates = 1, o.valid_from = 125, o.test_from = 150;
    if (prep("ratings.csv", "movies.csv", "csv_d", &o, &st) == COLLM_OK) {
        const char *valid[3] = {"1\t1\t1\t140\t0,1,2\t1\n", "2\t1\t1\t125\t0\t1\n", "3\t3\t1\t130\t0\t1\n"};
        check_splits(tpath("csv_d"), "1\t1\t1\t100\t0\t1\n1\t2\t1\t110\t0,1\t1\n1\t3\t0\t120\t0,1,2\t1\n"
                                     "2\t2\t0\t105\t0\t1\n3\t1\t0\t115\t0\t1\n",
                     valid, 3, "2\t3\t1\t150\t0,1\t1\n3\t2\t1\t160\t0,3\t1\n", 2);
    }
    o.valid_from = 200, o.test_from = 300;
    prep_fails("ratings.csv", "movies.csv", &o,
               "the valid split would be empty: no interaction falls from the valid cut 1970-01-01 00:03:20 to the test "
               "cut 1970-01-01 00:05:00 (UTC; they span 1970-01-01 00:01:40 .. 1970-01-01 00:02:40)");

    // E. TSV without header: columns by index, a 0/1/true/false label column;
    // items by first appearance x1 -> 1, x3 -> 2, x2 -> 3; users u9 1, u8 2.
    put("inter.tsv", "300\tx2\tu9\t0\n100\tx1\tu9\t1\n200\tx1\tu8\ttrue\n250\tx2\tu8\t1\n260\tx3\tu8\tFALSE\n"
                     "150\tx3\tu9\t1\n");
    put("items_nh.tsv", "x1\tOne\nx2\tTwo\nx3\tThree\n");
    collm_rec_csv_options_default(&o);
    o.no_header = 1, o.split = COLLM_SPLIT_LOO;
    o.user_col = "3", o.item_col = "2", o.label_col = "4", o.time_col = "1", o.items_id_col = "1", o.title_col = "2";
    if (prep("inter.tsv", "items_nh.tsv", "csv_e", &o, &st) == COLLM_OK) {
        const char *dir = tpath("csv_e");
        check_file(dir, "items.tsv", "iid\ttitle\n0\t\n1\tOne\n2\tThree\n3\tTwo\n");
        check_file(dir, "user_map.tsv", "uid\tuser\n1\tu9\n2\tu8\n");
        const char *valid[2] = {"1\t2\t1\t150\t0,1\t0\n", "2\t3\t1\t250\t0,1\t0\n"};
        check_splits(dir, "1\t1\t1\t100\t0\t1\n2\t1\t1\t200\t0\t1\n", valid, 2,
                     "1\t3\t0\t300\t0,1,2\t0\n2\t2\t0\t260\t0,1,3\t0\n", 1);
        CHECK(st.delimiter[0] == '\t' && st.delimiter[1] == '\t' && st.n_pos == 4);
    }
    o.user_col = "user";
    prep_fails("inter.tsv", "items_nh.tsv", &o, "without a header line columns are 1-based numbers");
    o.user_col = "5";
    prep_fails("inter.tsv", "items_nh.tsv", &o, "--user-col 5: the file has columns 1..4");

    // F. ';', CRLF, Latin-1, a quoted title over two lines, no time column
    // (file order is the time), items = the interactions file itself.
    put("all.csv", "user;item;rating;title\r\n7;b;5;\"Caf\xE9\r\nNoir\"\r\n7;a;1;Plain\r\n8;b;4;\"Caf\xE9\r\nNoir\"\r\n"
                   "8;a;5;Plain\r\n");
    collm_rec_csv_options_default(&o);
    o.frac[0] = 0.5, o.frac[1] = 0.25, o.frac[2] = 0.25, o.small_frac = 1;
    if (prep("all.csv", "all.csv", "csv_f", &o, &st) == COLLM_OK) {
        const char *dir = tpath("csv_f");
        check_file(dir, "items.tsv", "iid\ttitle\n0\t\n1\tCaf\xC3\xA9\\r\\nNoir\n2\tPlain\n");
        const char *valid[1] = {"2\t1\t1\t2\t0\t0\n"};
        check_splits(dir, "1\t1\t1\t0\t0\t1\n1\t2\t0\t1\t0,1\t1\n", valid, 1, "2\t2\t1\t3\t0,1\t0\n", 1);
        CHECK(st.delimiter[0] == ';');
    }

    // Damaged or unusable input: one line naming file:line (and column).
    collm_rec_csv_options_default(&o);
    o.split = COLLM_SPLIT_LOO;
    put("bad_num.csv", "user;item;rating;title\n7;b;5;\"x\ny\"\n7;a;zz;Plain\n");
    prep_fails("bad_num.csv", "bad_num.csv", &o, "bad_num.csv:4: column 'rating': 'zz' is not a number");
    put("bad_time.csv", "user,item,rating,date\nu,10,5,2001-06-01\nu,20,5,yesterday\n");
    prep_fails("bad_time.csv", "movies.csv", &o, "bad_time.csv:3: column 'date': 'yesterday' is not a time");
    put("bad_fields.csv", "user,item,rating\nu,10,5\nu,20\n");
    prep_fails("bad_fields.csv", "movies.csv", &o, "bad_fields.csv:3: 2 fields, expected 3");
    put("bad_quote.csv", "user,item,rating\nu,10,5\nu,\"20,5\n");
    prep_fails("bad_quote.csv", "movies.csv", &o, "bad_quote.csv:3: field 2: a quote that is never closed");
    put("bad_after.csv", "user,item,rating\nu,\"10\"x,5\n");
    prep_fails("bad_after.csv", "movies.csv", &o, "bad_after.csv:2: field 2: text after the closing quote");
    put("bad_label.csv", "user,item,label\nu,10,yes\n");
    prep_fails("bad_label.csv", "movies.csv", &o, "bad_label.csv:2: column 'label': 'yes' is not a label");
    put("no_user.csv", "who,item,rating\nu,10,5\n");
    prep_fails("no_user.csv", "movies.csv", &o, "no_user.csv: no user column (looked for user_id, userid, user, uid, ...");
    put("both.csv", "user,item,rating,label\nu,10,5,1\n");
    prep_fails("both.csv", "movies.csv", &o, "both a rating column ('rating') and a label column ('label')");
    put("neither.csv", "user,item,when\nu,10,5\n");
    prep_fails("neither.csv", "movies.csv", &o, "no rating or label column");
    put("onecol.csv", "user\nu\n");
    prep_fails("onecol.csv", "movies.csv", &o, "onecol.csv:1: cannot tell the delimiter");
    put("unknown_items.csv", "user,item,rating\nu,1,5\nu,2,5\n");
    prep_fails("unknown_items.csv", "movies.csv", &o, "none of its 2 rows names an item of");
    put("dup_items.csv", "item,title\n1,A\n2,B\n1,C\n");
    prep_fails("ratings.csv", "dup_items.csv", &o, "dup_items.csv:4: item '1' again, with another title than on line 2");
    o.user_col = "nosuch";
    prep_fails("ratings.csv", "movies.csv", &o, "--user-col 'nosuch': no such column (the header has: userId, movieId, rating, timestamp)");
    collm_rec_csv_options_default(&o);
    o.frac[2] = 0.2;
    prep_fails("ratings.csv", "movies.csv", &o, "must sum to 1");
    o.frac[2] = 0.1, o.use_dates = 1, o.valid_from = 5, o.test_from = 4;
    prep_fails("ratings.csv", "movies.csv", &o, "valid cut date is after the test cut date");
    put("notime.csv", "user,item,rating\nu,10,5\n");
    o.test_from = 6;
    prep_fails("notime.csv", "movies.csv", &o, "cut dates need a time column");
}

int main(void) {
    snprintf(tmp, sizeof tmp, "%s/prepare", test_tmp_dir());
    collm_mkdir_p(tmp);
    test_ml1m();
    test_amazon();
    test_bookcrossing();
    test_parse_time();
    test_csv();
    return test_report();
}
