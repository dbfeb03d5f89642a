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
    int rc = rec_prepare_ml1m(tpath("ratings.dat"), tpath("movies_latin1.dat"), out, 2023);
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
    rec_dataset *ds = rec_dataset_load(out);
    CHECK_MSG(ds && ds->n_items == 4 && ds->n_users == 3, "%s", collm_last_error());
    rec_dataset_free(ds);
    // Already-UTF-8 movies.dat gives the same items.
    const char *out2 = tpath("ml1m_out_utf8");
    CHECK(rec_prepare_ml1m(tpath("ratings.dat"), tpath("movies_utf8.dat"), out2, 2023) == COLLM_OK);
    char *a = slurp(out, "items.tsv"), *b = slurp(out2, "items.tsv");
    CHECK(a && b && strcmp(a, b) == 0);
    free(a), free(b);
    // Damaged inputs.
    put("ratings_bad.dat", "20::3::5::991353600\n20::1::x::991353700\n");
    CHECK(rec_prepare_ml1m(tpath("ratings_bad.dat"), tpath("movies_utf8.dat"), out2, 1) != COLLM_OK);
    CHECK_MSG(strstr(collm_last_error(), "ratings_bad.dat:2:"), "%s", collm_last_error());
    put("ratings_bad2.dat", "20::3::5::991353600::7\n");
    CHECK(rec_prepare_ml1m(tpath("ratings_bad2.dat"), tpath("movies_utf8.dat"), out2, 1) != COLLM_OK);
    CHECK_MSG(strstr(collm_last_error(), "ratings_bad2.dat:1:"), "%s", collm_last_error());
    put("ratings_bad3.dat", "20::3::6::991353600\n");
    CHECK(rec_prepare_ml1m(tpath("ratings_bad3.dat"), tpath("movies_utf8.dat"), out2, 1) != COLLM_OK);
    put("movies_bad.dat", "1::Toy Story (1995)::Animation\nxx::Bad::Drama\n");
    CHECK(rec_prepare_ml1m(tpath("ratings.dat"), tpath("movies_bad.dat"), out2, 1) != COLLM_OK);
    CHECK_MSG(strstr(collm_last_error(), "movies_bad.dat:2:"), "%s", collm_last_error());
    put("movies_dup.dat", "1::A (1995)::Drama\n1::B (1995)::Drama\n");
    CHECK(rec_prepare_ml1m(tpath("ratings.dat"), tpath("movies_dup.dat"), out2, 1) != COLLM_OK);
    CHECK_MSG(strstr(collm_last_error(), "movies_dup.dat:2:") && strstr(collm_last_error(), "duplicate"), "%s",
              collm_last_error());
    CHECK(rec_prepare_ml1m(tpath("nonexistent.dat"), tpath("movies_utf8.dat"), out2, 1) != COLLM_OK);
    CHECK(strstr(collm_last_error(), "nonexistent.dat") != NULL);
}

int main(void) {
    snprintf(tmp, sizeof tmp, "%s/prepare", test_tmp_dir());
    collm_mkdir_p(tmp);
    test_ml1m();
    return test_report();
}
