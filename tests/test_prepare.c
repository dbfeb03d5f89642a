// collm prepare on tiny raw files written here, whose correct output was
// worked out by hand from method.md §2.2-§2.4 and docs/data.md; plus damaged
// inputs that must fail naming file:line.
#include "collm/dataset.h"
#include "collm/error.h"
#include "collm/fileio.h"
#include "collm/prepare.h"
#include "test.h"

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

static void test_ml1m(void) {
    // Movie 2's title in Latin-1 (0xE9 = e-acute); movie 9 is not in movies.dat.
    put("movies_latin1.dat", "1::Toy Story (1995)::Animation|Comedy\n2::Mis\xE9rables, Les (1995)::Drama\n"
                             "3::U2: Rattle and Hum (1988)::Documentary\n");
    put("movies_utf8.dat", "1::Toy Story (1995)::Animation|Comedy\n2::Mis\xC3\xA9rables, Les (1995)::Drama\n"
                           "3::U2: Rattle and Hum (1988)::Documentary\n");
    // 991353600 = 2001-06-01 (t=14), 1017619200 = 2002-04-01 (t=24),
    // 1030838400 = 2002-09-01 (t=29), 1044057600 = 2003-02-01 (t=34, dropped).
    put("ratings.dat", "20::3::5::991353600\n20::1::2::991353700\n20::2::4::1017619200\n20::9::5::991353650\n"
                       "10::2::4::991353599\n10::3::1::1030838400\n10::1::4::1030838400\n10::2::5::1044057600\n");
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
    snprintf(e, sizeof e, "%s2\t3\t1\t1017619200\t0,2\t0\n", H);
    check_file(out, "valid.tsv", e);
    snprintf(e, sizeof e, "%s1\t1\t1\t1030838400\t0\t0\n1\t2\t0\t1030838400\t0,1\t0\n", H);
    check_file(out, "test.tsv", e);
    check_file(out, "valid_small.tsv", H); // round(0.5 * 1) = 0 (half to even)
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
        "{\"reviewerID\":\"U2\",\"overall\":5.0,\"unixReviewTime\":1484006400}\n");
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
    // December: U2's review (Dec 1) is the first half -> valid, U1's (Dec 2) -> test.
    snprintf(e, sizeof e, "%s2\t2\t1\t1512086400\t0\t0\n", H);
    check_file(out, "valid.tsv", e);
    snprintf(e, sizeof e, "%s1\t2\t0\t1512172800\t0,1\t0\n", H);
    check_file(out, "test.tsv", e);
    check_file(out, "valid_small.tsv", H);
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
    int rc = collm_rec_prepare_bookcrossing(tpath("BX-Book-Ratings.csv"), tpath("BX-Books.csv"), out, 42, NULL);
    CHECK_MSG(rc == COLLM_OK, "%s", collm_last_error());
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
    put("BX-bad.csv", "\"User-ID\";\"ISBN\";\"Book-Rating\"\n\"7\";\"0001\";\"8\"\n\"7\";\"0003\"\n");
    CHECK(collm_rec_prepare_bookcrossing(tpath("BX-bad.csv"), tpath("BX-Books.csv"), out, 1, NULL) != COLLM_OK);
    CHECK_MSG(strstr(collm_last_error(), "BX-bad.csv:3:"), "%s", collm_last_error());
    put("BX-bad2.csv", "\"User-ID\";\"ISBN\";\"Book-Rating\"\n\"7\";\"0001\";\"11\"\n");
    CHECK(collm_rec_prepare_bookcrossing(tpath("BX-bad2.csv"), tpath("BX-Books.csv"), out, 1, NULL) != COLLM_OK);
    CHECK_MSG(strstr(collm_last_error(), "BX-bad2.csv:2:"), "%s", collm_last_error());
}

int main(void) {
    snprintf(tmp, sizeof tmp, "%s/prepare", test_tmp_dir());
    collm_mkdir_p(tmp);
    test_ml1m();
    test_amazon();
    test_bookcrossing();
    return test_report();
}
