// Retrieval: the Faiss bridge and candidate generation, checked against a
// brute-force inner-product search written here (double accumulation).
#include "collm/error.h"
#include "retrieval/faiss_bridge.h"
#include "collm/retrieval.h"
#include "collm/fileio.h"
#include "test.h"

#include <omp.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

// Faiss 1.7.3's read_index leaks the partly read index when a damaged file
// makes it throw (raw pointers, no cleanup); the truncated-file check below
// triggers that on purpose. Tell LeakSanitizer (sanitize builds) it is known;
// every other leak is still reported.
__attribute__((used)) const char *__lsan_default_suppressions(void);
__attribute__((used)) const char *__lsan_default_suppressions(void) { return "leak:faiss::read_index\n"; }

// Small deterministic generator (splitmix64), so the test needs nothing else.
static uint64_t mix_state;
static uint64_t mix_next(void) {
    uint64_t z = (mix_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static float uniform_pm1(void) { return (float)((double)(mix_next() >> 11) / 9007199254740992.0 * 2.0 - 1.0); }
static float gaussian(void) {
    double u1 = ((double)(mix_next() >> 11) + 1.0) / 9007199254740993.0;
    double u2 = (double)(mix_next() >> 11) / 9007199254740992.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

static float *random_matrix(int64_t rows, int d, int use_gaussian) {
    float *m = malloc((size_t)rows * (size_t)d * sizeof(float));
    for (int64_t i = 0; i < rows * d; i++) m[i] = use_gaussian ? gaussian() : uniform_pm1();
    return m;
}

// Exact top-k of items 1..n_items-1 by inner product (double), skipping ids
// with skip[id] != 0 (skip may be NULL). ids (k), scores (k).
static void brute_force_topk(const float *items, int32_t n_items, int d, const float *q, int k, const char *skip,
                             int32_t *ids, double *scores) {
    int filled = 0;
    for (int32_t i = 1; i < n_items; i++) {
        if (skip && skip[i]) continue;
        double s = 0;
        for (int c = 0; c < d; c++) s += (double)items[(size_t)i * d + c] * q[c];
        if (filled == k && s <= scores[k - 1]) continue;
        int pos = filled < k ? filled++ : k - 1; // insertion into the sorted list
        while (pos > 0 && scores[pos - 1] < s) {
            scores[pos] = scores[pos - 1];
            ids[pos] = ids[pos - 1];
            pos--;
        }
        scores[pos] = s;
        ids[pos] = i;
    }
}

static double recall_at(const int32_t *found, int n_found, const int32_t *truth, int k) {
    int hits = 0;
    for (int a = 0; a < n_found; a++)
        for (int b = 0; b < k; b++)
            if (found[a] == truth[b]) hits++;
    return (double)hits / k;
}

static void test_flat_exact(void) {
    mix_state = 1;
    const int32_t n_items = 3001;
    const int d = 48, nq = 40, k = 10;
    float *items = random_matrix(n_items, d, 0);
    float *queries = random_matrix(nq, d, 0);
    // make padding row 0 the best match for everything: it must still never come back
    for (int c = 0; c < d; c++) items[c] = 0;
    collm_retrieval_build_options opt;
    collm_retrieval_build_options_default(&opt);
    collm_retrieval_index *index = collm_retrieval_index_build(items, n_items, d, &opt);
    CHECK_MSG(index != NULL, "%s", collm_last_error());
    if (!index) return;
    CHECK(collm_retrieval_index_size(index) == n_items - 1);
    CHECK(collm_retrieval_index_dim(index) == d);
    for (int c = 0; c < d; c++) items[c] = 100; // after the build: no effect on the index
    int exact_ids = 1, exact_scores = 1;
    for (int q = 0; q < nq; q++) {
        int32_t ids[10], ref_ids[10];
        float scores[10];
        double ref_scores[10];
        int n_found = -1;
        int rc = collm_retrieval_candidates(index, queries + (size_t)q * d, d, NULL, 0, k, ids, scores, &n_found);
        CHECK(rc == COLLM_OK && n_found == k);
        brute_force_topk(items, n_items, d, queries + (size_t)q * d, k, NULL, ref_ids, ref_scores);
        for (int j = 0; j < k; j++) {
            if (ids[j] != ref_ids[j]) exact_ids = 0;
            if (fabs(scores[j] - ref_scores[j]) > 1e-5) exact_scores = 0;
        }
    }
    CHECK_MSG(exact_ids, "Flat top-10 ids differ from brute force");
    CHECK_MSG(exact_scores, "Flat top-10 scores differ from brute force by more than 1e-5");

    // a batch through the bridge directly (nq >= 20 takes Faiss's BLAS path)
    collm_faiss_index *flat = NULL;
    CHECK(collm_faiss_create(d, "Flat", &flat) == COLLM_OK);
    int64_t *ids = malloc((size_t)(n_items - 1) * sizeof(int64_t));
    for (int32_t i = 0; i < n_items - 1; i++) ids[i] = i + 1;
    CHECK(collm_faiss_add(flat, n_items - 1, items + d, ids) == COLLM_OK);
    float batch_scores[40 * 10];
    int64_t batch_ids[40 * 10];
    CHECK(collm_faiss_search(flat, nq, queries, k, batch_scores, batch_ids) == COLLM_OK);
    int batch_ok = 1;
    for (int q = 0; q < nq; q++) {
        int32_t ref_ids[10];
        double ref_scores[10];
        brute_force_topk(items, n_items, d, queries + (size_t)q * d, k, NULL, ref_ids, ref_scores);
        for (int j = 0; j < k; j++)
            if (batch_ids[q * k + j] != ref_ids[j] || fabs(batch_scores[q * k + j] - ref_scores[j]) > 1e-5) batch_ok = 0;
    }
    CHECK_MSG(batch_ok, "batched Flat search differs from brute force");

    // k beyond ntotal: missing slots are id -1, score -inf
    collm_faiss_index *tiny = NULL;
    CHECK(collm_faiss_create(d, "Flat", &tiny) == COLLM_OK);
    CHECK(collm_faiss_add(tiny, 3, items + d, ids) == COLLM_OK);
    float tiny_scores[5];
    int64_t tiny_ids[5];
    CHECK(collm_faiss_search(tiny, 1, queries, 5, tiny_scores, tiny_ids) == COLLM_OK);
    CHECK(tiny_ids[2] >= 1 && tiny_ids[2] <= 3 && tiny_ids[3] == -1 && tiny_ids[4] == -1);
    CHECK(isinf(tiny_scores[3]) && tiny_scores[3] < 0);
    collm_faiss_free(tiny);
    // and through retrieval: 3 items, 5 asked
    collm_retrieval_index *small = collm_retrieval_index_build(items, 4, d, NULL);
    int32_t small_ids[5];
    int small_found = 0;
    CHECK(small && collm_retrieval_candidates(small, queries, d, NULL, 0, 5, small_ids, NULL, &small_found) == COLLM_OK);
    CHECK(small_found == 3);
    collm_retrieval_index_free(small);
    collm_faiss_free(flat);
    free(ids);
    collm_retrieval_index_free(index);
    free(items);
    free(queries);
}

static void test_exclusion(void) {
    mix_state = 2;
    const int32_t n_items = 2001;
    const int d = 16, n = 10;
    float *items = random_matrix(n_items, d, 1);
    float *query = random_matrix(1, d, 1);
    collm_retrieval_index *index = collm_retrieval_index_build(items, n_items, d, NULL);
    CHECK(index != NULL);
    if (!index) return;
    // history = the exact top 300 (so the first, 2n+16-wide search leaves
    // nothing and the search must widen), plus 0, duplicates and an id the
    // index does not hold
    int32_t top[300];
    double top_scores[300];
    brute_force_topk(items, n_items, d, query, 300, NULL, top, top_scores);
    int32_t history[306];
    history[0] = 0;
    for (int i = 0; i < 300; i++) history[1 + i] = top[299 - i];
    history[301] = top[0];
    history[302] = top[5];
    history[303] = 0;
    history[304] = 999999;
    history[305] = top[17];
    char *skip = calloc((size_t)n_items, 1);
    for (int i = 0; i < 300; i++) skip[top[i]] = 1;
    int32_t ref[10], got[10];
    double ref_scores[10];
    float got_scores[10];
    brute_force_topk(items, n_items, d, query, n, skip, ref, ref_scores);
    int n_found = 0;
    CHECK(collm_retrieval_candidates(index, query, d, history, 306, n, got, got_scores, &n_found) == COLLM_OK);
    CHECK(n_found == n);
    int same = n_found == n;
    for (int j = 0; j < n_found; j++) {
        if (got[j] != ref[j] || skip[got[j]] || fabs(got_scores[j] - ref_scores[j]) > 1e-5) same = 0;
    }
    CHECK_MSG(same, "top-10 after excluding the history differs from brute force");

    // a short history: the excluded items vanish, the order of the rest is kept
    int32_t plain[20];
    CHECK(collm_retrieval_candidates(index, query, d, NULL, 0, 20, plain, NULL, &n_found) == COLLM_OK && n_found == 20);
    int32_t short_history[3] = {plain[0], plain[3], plain[4]};
    int32_t filtered[17];
    CHECK(collm_retrieval_candidates(index, query, d, short_history, 3, 17, filtered, NULL, &n_found) == COLLM_OK);
    int expect_ok = n_found == 17;
    for (int j = 0, p = 0; j < 20 && expect_ok; j++) {
        if (j == 0 || j == 3 || j == 4) continue;
        if (filtered[p++] != plain[j]) expect_ok = 0;
    }
    CHECK_MSG(expect_ok, "short-history exclusion does not equal the plain list minus the history");

    // asking for more than remain: every eligible item, once
    int32_t *all = malloc(sizeof(int32_t) * 2100);
    CHECK(collm_retrieval_candidates(index, query, d, history, 306, 2100, all, NULL, &n_found) == COLLM_OK);
    CHECK(n_found == n_items - 1 - 300);
    free(all);

    // cold-start query: mean of the history rows, padding skipped
    int32_t h[4] = {0, 5, 9, 5};
    float mean[16];
    CHECK(collm_retrieval_mean_query(items, n_items, d, h, 4, mean) == COLLM_OK);
    int mean_ok = 1;
    for (int c = 0; c < d; c++) {
        double want = ((double)items[5 * d + c] * 2 + items[9 * d + c]) / 3.0;
        if (fabs(mean[c] - want) > 1e-6) mean_ok = 0;
    }
    CHECK(mean_ok);
    int32_t only_pad[2] = {0, 0};
    CHECK(collm_retrieval_mean_query(items, n_items, d, only_pad, 2, mean) == COLLM_ERR_ARG);
    CHECK(strstr(collm_last_error(), "empty history") != NULL);
    int32_t bad[2] = {3, n_items};
    CHECK(collm_retrieval_mean_query(items, n_items, d, bad, 2, mean) == COLLM_ERR_ARG);
    CHECK(strstr(collm_last_error(), "position 1") != NULL);

    free(skip);
    collm_retrieval_index_free(index);
    free(items);
    free(query);
}

// Recall@10 of an approximate index against exact search, 20k Gaussian items.
static double approximate_recall(const char *factory, int nprobe, int ef_search, const float *items, int32_t n_items,
                                 int d, const float *queries, int nq, int32_t *truth) {
    collm_retrieval_build_options opt;
    collm_retrieval_build_options_default(&opt);
    opt.factory = factory;
    opt.nprobe = nprobe;
    opt.ef_search = ef_search;
    collm_retrieval_index *index = collm_retrieval_index_build(items, n_items, d, &opt);
    CHECK_MSG(index != NULL, "%s: %s", factory, collm_last_error());
    if (!index) return 0;
    double recall = 0;
    for (int q = 0; q < nq; q++) {
        int32_t got[10];
        int n_found = 0;
        CHECK(collm_retrieval_candidates(index, queries + (size_t)q * d, d, NULL, 0, 10, got, NULL, &n_found) == COLLM_OK);
        recall += recall_at(got, n_found, truth + q * 10, 10);
    }
    collm_retrieval_index_free(index);
    return recall / nq;
}

static void test_approximate_recall(void) {
    mix_state = 3;
    const int32_t n_items = 20001;
    const int d = 32, nq = 100;
    float *items = random_matrix(n_items, d, 1);
    float *queries = random_matrix(nq, d, 1);
    int32_t *truth = malloc(sizeof(int32_t) * nq * 10);
    double scores[10];
    for (int q = 0; q < nq; q++) brute_force_topk(items, n_items, d, queries + (size_t)q * d, 10, NULL, truth + q * 10, scores);
    double hnsw = approximate_recall("HNSW16,Flat", 0, 128, items, n_items, d, queries, nq, truth);
    double ivf = approximate_recall("IVF64,Flat", 32, 0, items, n_items, d, queries, nq, truth);
    double ivf_one = approximate_recall("IVF64,Flat", 1, 0, items, n_items, d, queries, nq, truth);
    printf("recall@10 on 20k Gaussian items, d=32: HNSW16 ef=128 %.3f, IVF64 nprobe=32 %.3f, nprobe=1 %.3f\n", hnsw, ivf,
           ivf_one);
    CHECK_MSG(hnsw > 0.9, "HNSW recall@10 %.3f", hnsw);
    CHECK_MSG(ivf > 0.9, "IVF recall@10 %.3f", ivf);
    // the knob matters (so the check above is not vacuous)
    CHECK_MSG(ivf_one < ivf - 0.2, "IVF nprobe=1 recall %.3f vs nprobe=32 %.3f", ivf_one, ivf);
    free(truth);
    free(items);
    free(queries);
}

static void test_round_trip(void) {
    mix_state = 4;
    const int32_t n_items = 5001;
    const int d = 24, nq = 30, n = 20;
    float *items = random_matrix(n_items, d, 1);
    float *queries = random_matrix(nq, d, 1);
    const char *tmp = test_tmp_dir();
    CHECK(collm_mkdir_p(tmp) == COLLM_OK);
    const char *factories[3] = {"Flat", "HNSW16,Flat", "IVF32,Flat"};
    for (int f = 0; f < 3; f++) {
        collm_retrieval_build_options opt;
        collm_retrieval_build_options_default(&opt);
        opt.factory = factories[f];
        opt.nprobe = 5;
        opt.ef_search = 40;
        collm_retrieval_index *index = collm_retrieval_index_build(items, n_items, d, &opt);
        CHECK_MSG(index != NULL, "%s: %s", factories[f], collm_last_error());
        if (!index) continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/retrieval_%d.faiss", tmp, f);
        CHECK_MSG(collm_retrieval_index_save(index, path) == COLLM_OK, "%s", collm_last_error());
        collm_retrieval_index *loaded = collm_retrieval_index_load(path);
        CHECK_MSG(loaded != NULL, "%s", collm_last_error());
        if (!loaded) {
            collm_retrieval_index_free(index);
            continue;
        }
        CHECK(collm_retrieval_index_size(loaded) == n_items - 1 && collm_retrieval_index_dim(loaded) == d);
        int same = 1;
        for (int q = 0; q < nq; q++) {
            int32_t a[20], b[20];
            float sa[20], sb[20];
            int na = 0, nb = 0;
            int32_t history[2] = {0, (int32_t)(q * 7 + 1)};
            CHECK(collm_retrieval_candidates(index, queries + (size_t)q * d, d, history, 2, n, a, sa, &na) == COLLM_OK);
            CHECK(collm_retrieval_candidates(loaded, queries + (size_t)q * d, d, history, 2, n, b, sb, &nb) == COLLM_OK);
            if (na != n || nb != n || memcmp(a, b, sizeof a) != 0 || memcmp(sa, sb, sizeof sa) != 0) same = 0;
        }
        CHECK_MSG(same, "%s: results differ after write + read", factories[f]);
        // the search knobs travel with the file
        int nprobe = -1, ef_search = -1;
        collm_retrieval_index_search_params(loaded, &nprobe, &ef_search);
        CHECK(nprobe == (f == 2 ? 5 : 0) && ef_search == (f == 1 ? 40 : 0));

        if (f == 0) {
            // a truncated copy: clear error, no crash
            char *bytes = NULL;
            size_t size = 0;
            CHECK(collm_read_file(path, &bytes, &size) == COLLM_OK);
            char cut[1100];
            snprintf(cut, sizeof cut, "%s.cut", path);
            FILE *fp = fopen(cut, "wb");
            fwrite(bytes, 1, size / 2, fp);
            fclose(fp);
            collm_retrieval_index *bad = collm_retrieval_index_load(cut);
            CHECK(bad == NULL);
            CHECK_MSG(strstr(collm_last_error(), cut) != NULL, "message: %s", collm_last_error());
            collm_retrieval_index_free(bad);
            unlink(cut);
            free(bytes);
        }
        unlink(path);
        collm_retrieval_index_free(loaded);
        collm_retrieval_index_free(index);
    }
    free(items);
    free(queries);
}

// Damaged HNSW / IVF / IVF-PQ files: a single-byte flip of a small index (at
// 100 positions spread over the file, two values each) either fails to load
// with an error naming the file or loads an index whose searches return
// (item ids >= 0: a flipped id can still name an item the catalogue lacks,
// which recommend and eval-topk check). Before the structure check a flip in
// an HNSW neighbour list or an IVF id crashed the search (30 and 12 of 150).
static void test_damaged_files(void) {
    mix_state = 9;
    const int32_t n_items = 301;
    const int d = 8;
    float *items = random_matrix(n_items, d, 1);
    const char *tmp = test_tmp_dir();
    const char *factories[3] = {"HNSW8,Flat", "IVF4,Flat", "IVF4,PQ4x4"};
    for (int f = 0; f < 3; f++) {
        collm_retrieval_build_options opt;
        collm_retrieval_build_options_default(&opt);
        opt.factory = factories[f];
        collm_retrieval_index *index = collm_retrieval_index_build(items, n_items, d, &opt);
        CHECK_MSG(index != NULL, "%s: %s", factories[f], collm_last_error());
        char path[1024], bad_path[1100];
        snprintf(path, sizeof path, "%s/damaged_%d.faiss", tmp, f);
        snprintf(bad_path, sizeof bad_path, "%s.flip", path);
        if (!index || collm_retrieval_index_save(index, path) != COLLM_OK) {
            collm_retrieval_index_free(index);
            continue;
        }
        collm_retrieval_index_free(index);
        char *bytes = NULL;
        size_t size = 0;
        CHECK(collm_read_file(path, &bytes, &size) == COLLM_OK);
        int loaded = 0, refused = 0, outside = 0;
        for (int k = 0; bytes && k < 200; k++) {
            const size_t at = (size_t)(k / 2) * size / 100;
            const char keep = bytes[at];
            bytes[at] = (char)(k % 2 ? keep ^ 0x80 : keep ^ 0x01);
            FILE *fp = fopen(bad_path, "wb");
            fwrite(bytes, 1, size, fp);
            fclose(fp);
            bytes[at] = keep;
            collm_retrieval_index *bad = collm_retrieval_index_load(bad_path);
            if (!bad) {
                refused++;
                CHECK_MSG(strstr(collm_last_error(), bad_path) != NULL, "message: %s", collm_last_error());
                continue;
            }
            loaded++;
            int32_t found[20];
            float sc[20];
            int n_found = 0;
            for (int q = 0; q < 3; q++)
                if (collm_retrieval_candidates(bad, items + (size_t)(q + 1) * d, d, NULL, 0, 20, found, sc, &n_found) == COLLM_OK)
                    for (int j = 0; j < n_found; j++) outside += found[j] < 0;
            collm_retrieval_index_free(bad);
        }
        printf("%s: %d flips loaded, %d refused\n", factories[f], loaded, refused);
        CHECK_MSG(outside == 0, "%s: %d negative item ids", factories[f], outside);
        CHECK(refused > 0); // (the check runs: some flips break the structure)
        unlink(bad_path);
        unlink(path);
        free(bytes);
    }
    // a shard manifest naming one shard twice (its items would all come back twice)
    collm_retrieval_build_options opt;
    collm_retrieval_build_options_default(&opt);
    opt.shards = 2;
    collm_retrieval_index *sharded = collm_retrieval_index_build(items, n_items, d, &opt);
    char path[1024];
    snprintf(path, sizeof path, "%s/twice.faiss", tmp);
    CHECK(sharded && collm_retrieval_index_save(sharded, path) == COLLM_OK);
    collm_retrieval_index_free(sharded);
    FILE *fp = fopen(path, "wb");
    fprintf(fp, "collm-faiss-shards 1\n2\ntwice.faiss.shard0\ntwice.faiss.shard0\n");
    fclose(fp);
    collm_retrieval_index *twice = collm_retrieval_index_load(path);
    CHECK_MSG(twice == NULL && strstr(collm_last_error(), "names twice.faiss.shard0 twice"), "%s",
              twice ? "loaded" : collm_last_error());
    collm_retrieval_index_free(twice);
    for (int k = 0; k < 2; k++) {
        char one[1200];
        snprintf(one, sizeof one, "%s.shard%d", path, k);
        unlink(one);
    }
    unlink(path);
    free(items);
}

// The item table an index was built from travels with its file (one line
// after the Faiss bytes, after a manifest's names): the same vectors pass,
// another model's vectors of the same count and dimension are refused, as is
// another count or dimension; a file without the line (Faiss's own, or
// collm's before the record) passes; a damaged line is a load error.
static void test_item_record(void) {
    mix_state = 21;
    const int32_t n_items = 201;
    const int d = 8;
    float *items = random_matrix(n_items, d, 1);
    float *other = malloc(sizeof(float) * (size_t)n_items * d);
    memcpy(other, items, sizeof(float) * (size_t)n_items * d);
    other[(size_t)150 * d + 3] += 1e-3f; // one value of one item
    const char *tmp = test_tmp_dir();
    for (int shards = 1; shards <= 2; shards++) {
        collm_retrieval_build_options opt;
        collm_retrieval_build_options_default(&opt);
        opt.shards = shards;
        collm_retrieval_index *built = collm_retrieval_index_build(items, n_items, d, &opt);
        CHECK(built && collm_retrieval_index_has_items(built) == 1);
        CHECK(collm_retrieval_index_check_items(built, items, n_items, d) == COLLM_OK);
        char path[1024];
        snprintf(path, sizeof path, "%s/record_%d.faiss", tmp, shards);
        CHECK(built && collm_retrieval_index_save(built, path) == COLLM_OK);
        collm_retrieval_index_free(built);
        collm_retrieval_index *ix = collm_retrieval_index_load(path);
        CHECK_MSG(ix != NULL, "%s", collm_last_error());
        if (!ix) continue;
        CHECK(collm_retrieval_index_has_items(ix) == 1);
        CHECK_MSG(collm_retrieval_index_check_items(ix, items, n_items, d) == COLLM_OK, "%s", collm_last_error());
        CHECK(collm_retrieval_index_check_items(ix, other, n_items, d) == COLLM_ERR_ARG);
        CHECK_MSG(strstr(collm_last_error(), "other item vectors"), "%s", collm_last_error());
        // row 0 (padding) is not indexed: another row 0 is the same index
        float keep = other[(size_t)150 * d + 3];
        other[(size_t)150 * d + 3] = items[(size_t)150 * d + 3];
        other[0] = 5.0f;
        CHECK(collm_retrieval_index_check_items(ix, other, n_items, d) == COLLM_OK);
        other[(size_t)150 * d + 3] = keep;
        CHECK(collm_retrieval_index_check_items(ix, items, n_items - 1, d) == COLLM_ERR_ARG);
        CHECK_MSG(strstr(collm_last_error(), "built from 201 items of dimension 8, not 200 of 8"), "%s", collm_last_error());
        CHECK(collm_retrieval_index_check_items(ix, items, n_items, d - 1) == COLLM_ERR_ARG);
        collm_retrieval_index_free(ix);
        // without the record (the file's last 64 bytes cut off): loads, checks nothing
        char *bytes = NULL;
        size_t size = 0;
        CHECK(collm_read_file(path, &bytes, &size) == COLLM_OK && size > 64);
        CHECK(bytes && memcmp(bytes + size - 64, "collm-item-table 1 201 8 ", 25) == 0 && bytes[size - 1] == '\n');
        FILE *fp = fopen(path, "wb");
        fwrite(bytes, 1, size - 64, fp);
        fclose(fp);
        ix = collm_retrieval_index_load(path);
        CHECK_MSG(ix && collm_retrieval_index_has_items(ix) == 0, "%s", ix ? "has a record" : collm_last_error());
        CHECK(ix && collm_retrieval_index_check_items(ix, other, n_items, d) == COLLM_OK);
        collm_retrieval_index_free(ix);
        // a damaged record: a load error naming the file
        bytes[size - 30] = 'z';
        fp = fopen(path, "wb");
        fwrite(bytes, 1, size, fp);
        fclose(fp);
        ix = collm_retrieval_index_load(path);
        CHECK(ix == NULL);
        CHECK_MSG(strstr(collm_last_error(), "damaged item-table record") && strstr(collm_last_error(), path), "%s",
                  collm_last_error());
        collm_retrieval_index_free(ix);
        free(bytes);
        for (int k = 0; k < shards && shards > 1; k++) {
            char one[1200];
            snprintf(one, sizeof one, "%s.shard%d", path, k);
            unlink(one);
        }
        unlink(path);
    }
    CHECK(collm_retrieval_index_check_items(NULL, items, n_items, d) == COLLM_ERR_ARG);
    CHECK(collm_retrieval_index_has_items(NULL) == 0);
    free(items);
    free(other);
}

static void test_errors(void) {
    mix_state = 5;
    const int32_t n_items = 101;
    const int d = 8;
    float *items = random_matrix(n_items, d, 1);
    collm_retrieval_build_options opt;
    collm_retrieval_build_options_default(&opt);

    opt.factory = "NoSuchIndex,Flat";
    CHECK(collm_retrieval_index_build(items, n_items, d, &opt) == NULL);
    CHECK_MSG(strstr(collm_last_error(), "NoSuchIndex") != NULL, "message: %s", collm_last_error());
    collm_faiss_index *raw = (collm_faiss_index *)1;
    CHECK(collm_faiss_create(d, "HNSW32,Bogus", &raw) == COLLM_ERR_ARG && raw == NULL);
    CHECK(collm_faiss_create(0, "Flat", &raw) == COLLM_ERR_ARG);
    CHECK(collm_faiss_create(d, "", &raw) == COLLM_ERR_ARG);
    // PQ needs d divisible by the number of sub-quantizers: Faiss throws
    CHECK(collm_faiss_create(d, "PQ3", &raw) == COLLM_ERR_ARG);
    CHECK_MSG(strstr(collm_last_error(), "PQ3") != NULL, "message: %s", collm_last_error());

    // IVF with more lists than items: training fails cleanly
    opt.factory = "IVF256,Flat";
    CHECK(collm_retrieval_index_build(items, n_items, d, &opt) == NULL);
    CHECK_MSG(strstr(collm_last_error(), "training") != NULL, "message: %s", collm_last_error());
    // adding to an untrained IVF
    CHECK(collm_faiss_create(d, "IVF4,Flat", &raw) == COLLM_OK);
    int64_t ids[2] = {1, 2};
    CHECK(collm_faiss_add(raw, 2, items, ids) == COLLM_ERR_ARG);
    collm_faiss_free(raw);

    opt.factory = "Flat";
    CHECK(collm_retrieval_index_build(items, 1, d, &opt) == NULL);
    CHECK(collm_retrieval_index_build(items, n_items, 0, &opt) == NULL);
    collm_retrieval_index *index = collm_retrieval_index_build(items, n_items, d, &opt);
    CHECK(index != NULL);
    if (index) {
        float query[9] = {0};
        int32_t got[5];
        int n_found = 7;
        // wrong query dimension
        CHECK(collm_retrieval_candidates(index, query, d + 1, NULL, 0, 5, got, NULL, &n_found) == COLLM_ERR_ARG);
        CHECK(n_found == 0);
        CHECK_MSG(strstr(collm_last_error(), "dimension 9") != NULL, "message: %s", collm_last_error());
        CHECK(collm_retrieval_candidates(index, query, d, NULL, 0, 0, got, NULL, &n_found) == COLLM_ERR_ARG);
        // wrong dimension between a saved index and the caller's vectors
        char path[1024];
        snprintf(path, sizeof path, "%s/retrieval_dim.faiss", test_tmp_dir());
        CHECK(collm_retrieval_index_save(index, path) == COLLM_OK);
        collm_retrieval_index *loaded = collm_retrieval_index_load(path);
        CHECK(loaded && collm_retrieval_index_dim(loaded) == d);
        float wide[16] = {0};
        if (loaded) CHECK(collm_retrieval_candidates(loaded, wide, 16, NULL, 0, 5, got, NULL, &n_found) == COLLM_ERR_ARG);
        collm_retrieval_index_free(loaded);
        unlink(path);
        // saving into a folder that does not exist
        snprintf(path, sizeof path, "%s/no/such/dir/x.faiss", test_tmp_dir());
        CHECK(collm_retrieval_index_save(index, path) != COLLM_OK);
        CHECK_MSG(strstr(collm_last_error(), "no/such/dir") != NULL, "message: %s", collm_last_error());
        collm_retrieval_index_free(index);
    }

    // missing file, a folder, a file that is not a Faiss index
    char path[1024];
    snprintf(path, sizeof path, "%s/retrieval_missing.faiss", test_tmp_dir());
    unlink(path);
    CHECK(collm_retrieval_index_load(path) == NULL);
    CHECK_MSG(strstr(collm_last_error(), "retrieval_missing.faiss") != NULL &&
                  strstr(collm_last_error(), "No such file") != NULL,
              "message: %s", collm_last_error());
    CHECK(collm_retrieval_index_load(test_tmp_dir()) == NULL);
    snprintf(path, sizeof path, "%s/retrieval_garbage.faiss", test_tmp_dir());
    FILE *fp = fopen(path, "wb");
    fputs("GGUF this is not a faiss index at all, just some bytes", fp);
    fclose(fp);
    CHECK(collm_retrieval_index_load(path) == NULL);
    CHECK_MSG(strstr(collm_last_error(), "not a readable faiss index") != NULL, "message: %s", collm_last_error());
    unlink(path);
    free(items);
}

static void test_threads_agree(void) {
    mix_state = 6;
    const int32_t n_items = 4001;
    const int d = 32, nq = 25, k = 15;
    float *items = random_matrix(n_items, d, 1);
    float *queries = random_matrix(nq, d, 1);
    collm_faiss_index *index = NULL;
    CHECK(collm_faiss_create(d, "HNSW32,Flat", &index) == COLLM_OK);
    int64_t *ids = malloc(sizeof(int64_t) * (size_t)n_items);
    for (int32_t i = 0; i < n_items; i++) ids[i] = 1000 + i; // arbitrary ids come back as given
    CHECK(collm_faiss_add(index, n_items, items, ids) == COLLM_OK);
    collm_faiss_set_search_params(index, 0, 64);
    int64_t a[25 * 15], b[25 * 15];
    float sa[25 * 15], sb[25 * 15];
    collm_faiss_set_threads(1);
    CHECK(collm_faiss_search(index, nq, queries, k, sa, a) == COLLM_OK);
    collm_faiss_set_threads(2);
    CHECK(collm_faiss_search(index, nq, queries, k, sb, b) == COLLM_OK);
    CHECK(memcmp(a, b, sizeof a) == 0 && memcmp(sa, sb, sizeof sa) == 0);
    // a single query runs on one thread, and leaves the caller's setting as it was
    CHECK(collm_faiss_search(index, 1, queries, k, sb, b) == COLLM_OK);
    CHECK(memcmp(a, b, (size_t)k * sizeof(int64_t)) == 0);
    CHECK(omp_get_max_threads() == 2);
    collm_faiss_set_threads(1);
    int in_range = 1;
    for (int i = 0; i < nq * k; i++)
        if (a[i] < 1000 || a[i] >= 1000 + n_items) in_range = 0;
    CHECK(in_range);
    collm_faiss_free(index);
    free(ids);
    free(items);
    free(queries);
}

// Several threads searching one index at once get what one thread gets.
typedef struct {
    const collm_retrieval_index *index;
    const float *queries; // (nq, d)
    int nq, d, n;
    int32_t *items;       // (nq, n)
    int rc;
} search_job;

static void *search_worker(void *arg) {
    search_job *job = arg;
    job->rc = COLLM_OK;
    for (int q = 0; q < job->nq && job->rc == COLLM_OK; q++) {
        int n_found = 0;
        int32_t history[3] = {0, q + 1, 2 * q + 3};
        job->rc = collm_retrieval_candidates(job->index, job->queries + (size_t)q * job->d, job->d, history, 3, job->n,
                                       job->items + (size_t)q * job->n, NULL, &n_found);
        if (job->rc == COLLM_OK && n_found != job->n) job->rc = COLLM_ERR;
    }
    return NULL;
}

static void test_concurrent_searches(void) {
    mix_state = 7;
    const int32_t n_items = 3001;
    const int d = 16, nq = 60, n = 12;
    float *items = random_matrix(n_items, d, 1);
    float *queries = random_matrix(nq, d, 1);
    const char *factories[2] = {"Flat", "HNSW16,Flat"};
    for (int f = 0; f < 2; f++) {
        collm_retrieval_build_options opt;
        collm_retrieval_build_options_default(&opt);
        opt.factory = factories[f];
        collm_retrieval_index *index = collm_retrieval_index_build(items, n_items, d, &opt);
        CHECK(index != NULL);
        if (!index) continue;
        int32_t serial[60 * 12], parallel[4][60 * 12];
        search_job one = {index, queries, nq, d, n, serial, 0};
        search_worker(&one);
        CHECK(one.rc == COLLM_OK);
        pthread_t threads[4];
        search_job jobs[4];
        for (int t = 0; t < 4; t++) {
            jobs[t] = (search_job){index, queries, nq, d, n, parallel[t], 0};
            pthread_create(&threads[t], NULL, search_worker, &jobs[t]);
        }
        for (int t = 0; t < 4; t++) {
            pthread_join(threads[t], NULL);
            CHECK(jobs[t].rc == COLLM_OK);
            CHECK_MSG(memcmp(parallel[t], serial, sizeof serial) == 0, "%s: thread %d differs", factories[f], t);
        }
        collm_retrieval_index_free(index);
    }
    free(items);
    free(queries);
}

int main(void) {
    struct {
        const char *name;
        void (*run)(void);
    } tests[] = {{"flat_exact", test_flat_exact},     {"exclusion", test_exclusion},
                 {"approximate_recall", test_approximate_recall}, {"round_trip", test_round_trip},
                 {"errors", test_errors},              {"threads_agree", test_threads_agree},
                 {"concurrent_searches", test_concurrent_searches}, {"damaged_files", test_damaged_files},
                 {"item_record", test_item_record}};
    // one OpenMP thread except where a test sets more: on shared, busy cores
    // HNSW's parallel build stalls at its barriers (2.4 s vs 9 s observed)
    collm_faiss_set_threads(1);
    // (no clock here: unit tests never time themselves; bench/faiss.sh does)
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        printf("%s\n", tests[i].name);
        tests[i].run();
    }
    return test_report();
}
