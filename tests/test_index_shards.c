// Catalogues beyond one index (collm index --factory / --shards):
//  * a Flat index in K shards (Faiss IndexShards) returns exactly the items
//    and scores of one Flat index, checked against a brute-force top-n
//    computed here in double;
//  * compressed factory strings (IVF-PQ, OPQ + IVF-PQ), one index or sharded,
//    build, reach a recall@100 against the exact top-100 that random ids
//    could not (on clustered data), and survive save + load bit for bit
//    (shards as PATH.shard<i> plus a manifest);
//  * a damaged manifest or a missing shard file is a clear error.
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collm/error.h"
#include "collm/fileio.h"
#include "collm/retrieval.h"
#include "test.h"

enum { N_ITEMS = 4001, D = 16, N_QUERIES = 20, TOPN = 100 };

static uint64_t lcg_state = 12345;
static double unit(void) { // uniform in [0, 1)
    lcg_state = lcg_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(lcg_state >> 11) / 9007199254740992.0;
}
static double gauss(void) {
    double u = unit() + 1e-12, v = unit();
    return sqrt(-2 * log(u)) * cos(6.283185307179586 * v);
}

// Items around 40 cluster centres (row 0 padding, zeros); queries likewise.
static void make_data(float *items, float *queries) {
    float centres[40][D];
    for (int c = 0; c < 40; c++)
        for (int j = 0; j < D; j++) centres[c][j] = (float)gauss();
    memset(items, 0, D * sizeof(float));
    for (int i = 1; i < N_ITEMS; i++) {
        int c = (int)(unit() * 40);
        for (int j = 0; j < D; j++) items[i * D + j] = centres[c][j] + 0.3f * (float)gauss();
    }
    for (int q = 0; q < N_QUERIES; q++)
        for (int j = 0; j < D; j++) queries[q * D + j] = (float)gauss();
}

// The exact top-n ids of a query (inner product in double, ties by id).
static void exact_top(const float *items, const float *q, int n, int32_t *out) {
    static double s[N_ITEMS];
    static unsigned char taken[N_ITEMS];
    for (int i = 1; i < N_ITEMS; i++) {
        double dot = 0;
        for (int j = 0; j < D; j++) dot += (double)q[j] * items[i * D + j];
        s[i] = dot;
        taken[i] = 0;
    }
    for (int k = 0; k < n; k++) {
        int best = -1;
        for (int i = 1; i < N_ITEMS; i++)
            if (!taken[i] && (best < 0 || s[i] > s[best])) best = i;
        taken[best] = 1;
        out[k] = best;
    }
}

static collm_retrieval_index *build(const float *items, const char *factory, int shards) {
    collm_retrieval_build_options o;
    collm_retrieval_build_options_default(&o);
    o.factory = factory;
    o.shards = shards;
    o.nprobe = 8;
    collm_retrieval_index *ix = collm_retrieval_index_build(items, N_ITEMS, D, &o);
    CHECK_MSG(ix != NULL, "build %s x%d: %s", factory, shards, collm_last_error());
    return ix;
}

static void search_all(const collm_retrieval_index *ix, const float *queries, int32_t *ids, float *scores) {
    for (int q = 0; q < N_QUERIES; q++) {
        int found = 0;
        int rc = collm_retrieval_candidates(ix, queries + q * D, D, NULL, 0, TOPN, ids + q * TOPN, scores + q * TOPN, &found);
        CHECK_MSG(rc == COLLM_OK && found == TOPN, "search: rc %d found %d: %s", rc, found, collm_last_error());
    }
}

static double recall(const int32_t *ids, const int32_t *exact) {
    double r = 0;
    for (int q = 0; q < N_QUERIES; q++) {
        int common = 0;
        for (int a = 0; a < TOPN; a++)
            for (int b = 0; b < TOPN; b++) common += ids[q * TOPN + a] == exact[q * TOPN + b];
        r += (double)common / TOPN;
    }
    return r / N_QUERIES;
}

static float items[N_ITEMS * D], queries[N_QUERIES * D];
static int32_t exact[N_QUERIES * TOPN];

static void test_flat_shards_exact(void) {
    int32_t ids1[N_QUERIES * TOPN], ids3[N_QUERIES * TOPN];
    float s1[N_QUERIES * TOPN], s3[N_QUERIES * TOPN];
    collm_retrieval_index *one = build(items, "Flat", 1), *three = build(items, "Flat", 3);
    if (!one || !three) goto out;
    CHECK(collm_retrieval_index_shards(one) == 1 && collm_retrieval_index_shards(three) == 3);
    CHECK(collm_retrieval_index_size(three) == N_ITEMS - 1);
    search_all(one, queries, ids1, s1);
    search_all(three, queries, ids3, s3);
    CHECK_MSG(memcmp(ids1, ids3, sizeof ids1) == 0, "3 Flat shards return the ids of one Flat index");
    CHECK_MSG(memcmp(s1, s3, sizeof s1) == 0, "3 Flat shards return the scores of one Flat index");
    CHECK_MSG(recall(ids3, exact) == 1.0, "Flat shards: the exact top-%d (recall %.3f)", TOPN, recall(ids3, exact));
out:
    collm_retrieval_index_free(one);
    collm_retrieval_index_free(three);
}

// Builds, checks recall, saves, loads, checks the same results.
static void check_factory(const char *factory, int shards, double min_recall) {
    static int32_t ids[N_QUERIES * TOPN], ids2[N_QUERIES * TOPN];
    static float s[N_QUERIES * TOPN], s2[N_QUERIES * TOPN];
    collm_retrieval_index *ix = build(items, factory, shards), *back = NULL;
    if (!ix) return;
    search_all(ix, queries, ids, s);
    double r = recall(ids, exact);
    CHECK_MSG(r >= min_recall, "%s x%d: recall@%d %.3f >= %.2f", factory, shards, TOPN, r, min_recall);
    printf("%s x%d: recall@%d %.3f\n", factory, shards, TOPN, r);
    char path[512];
    snprintf(path, sizeof path, "%s/index_shards_%d.faiss", test_tmp_dir(), shards);
    CHECK(collm_retrieval_index_save(ix, path) == COLLM_OK);
    back = collm_retrieval_index_load(path);
    CHECK_MSG(back != NULL, "load %s: %s", path, collm_last_error());
    if (back) {
        CHECK(collm_retrieval_index_shards(back) == shards);
        int nprobe = 0, ef = 0;
        collm_retrieval_index_search_params(back, &nprobe, &ef);
        CHECK_MSG(nprobe == 8, "%s x%d: nprobe saved with every shard (%d)", factory, shards, nprobe);
        search_all(back, queries, ids2, s2);
        CHECK_MSG(memcmp(ids, ids2, sizeof ids) == 0 && memcmp(s, s2, sizeof s) == 0,
                  "%s x%d: the loaded index answers as the built one", factory, shards);
    }
    collm_retrieval_index_free(back);
    collm_retrieval_index_free(ix);
}

static void test_compressed(void) {
    // random ids would give recall ~ 100/4000 = 0.025; nprobe 8 of 32 lists
    // on 40 clusters keeps most of the true neighbours (PQ8x4 on 16 dims: 2 dims
    // a 4-bit code (16 centroids: no Faiss warning on 4,000 training items),
    // so scores are coarse and some top-100 items swap)
    check_factory("IVF32,PQ8x4", 1, 0.5);
    check_factory("IVF32,PQ8x4", 2, 0.5);
    check_factory("OPQ8,IVF32,PQ8x4", 2, 0.5);
    check_factory("IVF32,Flat", 3, 0.6);
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void test_bad_manifests(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/index_shards_bad.faiss", test_tmp_dir());
    write_text(path, "collm-faiss-shards 1\n2\nindex_shards_bad.faiss.nope0\nindex_shards_bad.faiss.nope1\n");
    collm_retrieval_index *ix = collm_retrieval_index_load(path);
    CHECK_MSG(!ix && strstr(collm_last_error(), "nope0"), "missing shard named: %s", collm_last_error());
    collm_retrieval_index_free(ix);
    write_text(path, "collm-faiss-shards 1\n1\n../escape.faiss\n");
    ix = collm_retrieval_index_load(path);
    CHECK_MSG(!ix && strstr(collm_last_error(), "not a file name"), "a path in the manifest refused: %s",
              collm_last_error());
    collm_retrieval_index_free(ix);
    write_text(path, "collm-faiss-shards 1\n0\n");
    ix = collm_retrieval_index_load(path);
    CHECK_MSG(!ix && strstr(collm_last_error(), "shard count"), "0 shards refused: %s", collm_last_error());
    collm_retrieval_index_free(ix);
    collm_retrieval_build_options o;
    collm_retrieval_build_options_default(&o);
    o.shards = 100000;
    ix = collm_retrieval_index_build(items, N_ITEMS, D, &o);
    CHECK_MSG(!ix && strstr(collm_last_error(), "shards"), "too many shards refused: %s", collm_last_error());
    collm_retrieval_index_free(ix);
}

int main(void) {
    collm_retrieval_set_threads(1);
    CHECK(collm_mkdir_p(test_tmp_dir()) == COLLM_OK);
    make_data(items, queries);
    for (int q = 0; q < N_QUERIES; q++) exact_top(items, queries + q * D, TOPN, exact + q * TOPN);
    test_flat_shards_exact();
    test_compressed();
    test_bad_manifests();
    return test_report();
}
