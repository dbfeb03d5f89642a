// The extern "C" layer over Faiss 1.7.3's C++ API (see
// include/collm/faiss_bridge.h). The only C++ file in collm: it stays small,
// owns one faiss::Index per handle, and turns every exception into an error
// code + message, since C frames above us cannot unwind.
#include "retrieval/faiss_bridge.h"

extern "C" {
#include "collm/error.h"
#include "collm/fileio.h"
}

#include <faiss/Index.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIDMap.h>
#include <faiss/IndexIVF.h>
#include <faiss/IndexIVFPQ.h>
#include <faiss/IndexPQ.h>
#include <faiss/IndexPreTransform.h>
#include <faiss/IndexShards.h>
#include <faiss/clone_index.h>
#include <faiss/index_factory.h>
#include <faiss/index_io.h>
#include <omp.h>

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <new>
#include <string>
#include <vector>
#include <sys/stat.h>

struct collm_faiss_index {
    faiss::Index *index; // owned; usually an IndexIDMap over the factory's index, or
                         // an IndexShards of such maps (collm_faiss_create_shards)
};

// The shards of a sharded index, NULL for one index.
static faiss::IndexShards *shards_of(faiss::Index *index) { return dynamic_cast<faiss::IndexShards *>(index); }

// Faiss messages look like "Error in <signature> at faiss/x.cpp:123: <text>"
// or "Error: 'cond' failed: <text>"; keep only <text>.
static const char *faiss_message_text(const char *what) {
    if (!what) return "unknown error";
    const char *text = what;
    const char *at = strstr(what, " at ");
    if (strncmp(what, "Error in ", 9) == 0 && at) {
        // skip "<file>:<line>: "
        const char *p = at + 4;
        while (*p) {
            if (*p == ':' && isdigit((unsigned char)p[1])) {
                const char *q = p + 1;
                while (isdigit((unsigned char)*q)) q++;
                if (q[0] == ':' && q[1] == ' ') {
                    text = q + 2;
                    break;
                }
            }
            p++;
        }
    }
    const char *failed = strstr(text, "' failed: ");
    if (strncmp(text, "Error: '", 8) == 0 && failed) text = failed + 10;
    return text;
}

// The C++ index doing the real work below the IDMap / pre-transform wrappers.
static faiss::Index *innermost(faiss::Index *index) {
    for (;;) {
        if (auto *idmap = dynamic_cast<faiss::IndexIDMap *>(index)) index = idmap->index;
        else if (auto *pre = dynamic_cast<faiss::IndexPreTransform *>(index)) index = pre->index;
        else return index;
    }
}

#define BRIDGE_TRY try {
#define BRIDGE_CATCH(op)                                                                    \
    }                                                                                         \
    catch (const std::bad_alloc &) {                                                          \
        return collm_error(COLLM_ERR_NOMEM, "faiss: %s: out of memory", op);                \
    }                                                                                         \
    catch (const std::exception &e) {                                                         \
        return collm_error(COLLM_ERR, "faiss: %s: %s", op, faiss_message_text(e.what()));   \
    }                                                                                         \
    catch (...) {                                                                             \
        return collm_error(COLLM_ERR, "faiss: %s: unknown C++ exception", op);              \
    }

extern "C" int collm_faiss_create(int d, const char *factory, collm_faiss_index **out) {
    *out = nullptr;
    if (d < 1) return collm_error(COLLM_ERR_ARG, "faiss: dimension must be >= 1, got %d", d);
    if (!factory || !*factory) return collm_error(COLLM_ERR_ARG, "faiss: empty index factory string");
    faiss::Index *index = nullptr;
    try {
        index = faiss::index_factory(d, factory, faiss::METRIC_INNER_PRODUCT);
        // PQ codes: no polysemous training. It reorders the 8-bit codes for
        // Hamming-distance filtering (polysemous_ht), which collm never turns
        // on, and it is the slow part of training (measured: IVF16,PQ4 on
        // 3,000 items, 20 s of CPU with it, well under 1 s without)
        if (auto *ivfpq = dynamic_cast<faiss::IndexIVFPQ *>(innermost(index))) ivfpq->do_polysemous_training = false;
        if (auto *pq = dynamic_cast<faiss::IndexPQ *>(innermost(index))) pq->do_polysemous_training = false;
        if (!dynamic_cast<faiss::IndexIDMap *>(index)) {
            auto *idmap = new faiss::IndexIDMap(index);
            idmap->own_fields = true; // deleting the map deletes the factory's index
            index = idmap;
        }
        *out = new collm_faiss_index{index};
        return COLLM_OK;
    } catch (const std::bad_alloc &) {
        delete index;
        return collm_error(COLLM_ERR_NOMEM, "faiss: index \"%s\" (d=%d): out of memory", factory, d);
    } catch (const std::exception &e) {
        delete index;
        return collm_error(COLLM_ERR_ARG, "faiss: bad index factory string \"%s\" (d=%d): %s", factory, d,
                           faiss_message_text(e.what()));
    } catch (...) {
        delete index;
        return collm_error(COLLM_ERR_ARG, "faiss: bad index factory string \"%s\": unknown C++ exception", factory);
    }
}

extern "C" int collm_faiss_create_shards(int d, const char *factory, int n_shards, collm_faiss_index **out) {
    *out = nullptr;
    if (n_shards < 1 || n_shards > COLLM_FAISS_MAX_SHARDS)
        return collm_error(COLLM_ERR_ARG, "faiss: shards must be in 1..%d, got %d", COLLM_FAISS_MAX_SHARDS, n_shards);
    if (n_shards == 1) return collm_faiss_create(d, factory, out);
    std::vector<collm_faiss_index *> parts;
    int rc = COLLM_OK;
    for (int i = 0; i < n_shards && rc == COLLM_OK; i++) {
        collm_faiss_index *p = nullptr;
        rc = collm_faiss_create(d, factory, &p);
        if (rc == COLLM_OK) parts.push_back(p);
    }
    faiss::IndexShards *sh = nullptr;
    if (rc == COLLM_OK) {
        try {
            // not threaded: a query visits the shards in turn on the calling
            // thread (each shard's own Faiss search may use OpenMP); ids kept
            // as added (every shard is an IDMap)
            sh = new faiss::IndexShards(d, false, false);
            for (auto *p : parts) sh->add_shard(p->index);
            sh->own_fields = true;
        } catch (const std::exception &e) {
            rc = collm_error(COLLM_ERR, "faiss: %d shards of \"%s\": %s", n_shards, factory, faiss_message_text(e.what()));
        } catch (...) {
            rc = collm_error(COLLM_ERR, "faiss: %d shards of \"%s\": unknown C++ exception", n_shards, factory);
        }
    }
    if (rc != COLLM_OK) {
        if (sh) sh->own_fields = false;
        delete sh;
        for (auto *p : parts) collm_faiss_free(p);
        return rc;
    }
    for (auto *p : parts) delete p; // the handles only: the shards own the indexes now
    *out = new collm_faiss_index{sh};
    return COLLM_OK;
}

extern "C" int collm_faiss_n_shards(const collm_faiss_index *index) {
    const faiss::IndexShards *sh = shards_of(index->index);
    return sh ? sh->count() : 1;
}

extern "C" void collm_faiss_free(collm_faiss_index *index) {
    if (!index) return;
    delete index->index;
    delete index;
}

extern "C" int collm_faiss_dim(const collm_faiss_index *index) { return (int)index->index->d; }
extern "C" int64_t collm_faiss_ntotal(const collm_faiss_index *index) { return (int64_t)index->index->ntotal; }
extern "C" int collm_faiss_is_trained(const collm_faiss_index *index) { return index->index->is_trained ? 1 : 0; }

extern "C" int collm_faiss_train(collm_faiss_index *index, int64_t n, const float *x) {
    if (n < 0) return collm_error(COLLM_ERR_ARG, "faiss: train: negative count %lld", (long long)n);
    BRIDGE_TRY
    faiss::IndexShards *sh = shards_of(index->index);
    if (!sh) {
        index->index->train((faiss::Index::idx_t)n, x);
        return COLLM_OK;
    }
    // shards: train the first, then the others are copies of it (the same
    // coarse quantizer and codebooks, so their scores compare when merged;
    // IndexShards::train would train each one again from scratch)
    faiss::Index *first = sh->at(0);
    first->train((faiss::Index::idx_t)n, x);
    std::vector<faiss::Index *> copies;
    try {
        for (int i = 1; i < sh->count(); i++) copies.push_back(faiss::clone_index(first));
    } catch (...) {
        for (auto *c : copies) delete c;
        throw;
    }
    auto *fresh = new faiss::IndexShards((int)sh->d, false, false);
    fresh->add_shard(first);
    for (auto *c : copies) fresh->add_shard(c);
    fresh->own_fields = true;
    sh->own_fields = false; // first lives on in fresh; the untrained others go
    for (int i = 1; i < sh->count(); i++) delete sh->at(i);
    delete sh;
    index->index = fresh;
    return COLLM_OK;
    BRIDGE_CATCH("train")
}

extern "C" int collm_faiss_add(collm_faiss_index *index, int64_t n, const float *x, const int64_t *ids) {
    if (n < 0) return collm_error(COLLM_ERR_ARG, "faiss: add: negative count %lld", (long long)n);
    if (!index->index->is_trained)
        return collm_error(COLLM_ERR_ARG, "faiss: add: the index must be trained first (IVF needs train)");
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0) return collm_error(COLLM_ERR_ARG, "faiss: add: id %lld at row %lld is negative",
                                           (long long)ids[i], (long long)i);
    BRIDGE_TRY
    // faiss::Index::idx_t is int64_t in 1.7.3, so the ids pass through as is
    static_assert(sizeof(faiss::Index::idx_t) == sizeof(int64_t), "faiss idx_t is not 64-bit");
    index->index->add_with_ids((faiss::Index::idx_t)n, x, (const faiss::Index::idx_t *)ids);
    return COLLM_OK;
    BRIDGE_CATCH("add")
}

extern "C" int collm_faiss_search(const collm_faiss_index *index, int64_t nq, const float *queries, int64_t k,
                                  float *scores, int64_t *ids) {
    if (nq < 0 || k < 1)
        return collm_error(COLLM_ERR_ARG, "faiss: search: need nq >= 0 and k >= 1 (nq=%lld, k=%lld)", (long long)nq,
                           (long long)k);
    if (nq == 0) return COLLM_OK;
    // Flat, IVF and HNSW parallelise over queries, so one query gains nothing
    // from a team of threads, and on busy cores it loses: the caller waits at
    // the region's end for a worker that may be descheduled (measured: Flat on
    // 20k items, 0.57 ms with 1 thread, 5 ms with 2 on a loaded 2-core box).
    // The thread count is per calling thread, so this does not disturb others.
    int saved_threads = omp_get_max_threads();
    if (nq == 1 && saved_threads > 1) omp_set_num_threads(1);
    struct restore_threads {
        int n;
        bool active;
        ~restore_threads() {
            if (active) omp_set_num_threads(n);
        }
    } restore{saved_threads, nq == 1 && saved_threads > 1};
    BRIDGE_TRY
    index->index->search((faiss::Index::idx_t)nq, queries, (faiss::Index::idx_t)k, scores,
                         (faiss::Index::idx_t *)ids);
    // Faiss leaves -FLT_MAX (or +FLT_MAX from HNSW's negation) in empty slots
    for (int64_t i = 0; i < nq * k; i++)
        if (ids[i] < 0) scores[i] = -INFINITY;
    return COLLM_OK;
    BRIDGE_CATCH("search")
}

static void set_params_one(faiss::Index *index, int nprobe, int ef_search) {
    faiss::Index *inner = innermost(index);
    if (auto *ivf = dynamic_cast<faiss::IndexIVF *>(inner)) {
        if (nprobe > 0) ivf->nprobe = (size_t)nprobe < ivf->nlist ? (size_t)nprobe : ivf->nlist;
    } else if (auto *hnsw = dynamic_cast<faiss::IndexHNSW *>(inner)) {
        if (ef_search > 0) hnsw->hnsw.efSearch = ef_search;
    }
}

extern "C" int collm_faiss_set_search_params(collm_faiss_index *index, int nprobe, int ef_search) {
    if (faiss::IndexShards *sh = shards_of(index->index)) {
        for (int i = 0; i < sh->count(); i++) set_params_one(sh->at(i), nprobe, ef_search);
    } else {
        set_params_one(index->index, nprobe, ef_search);
    }
    return COLLM_OK;
}

// The index whose knobs are reported: the first shard of a sharded index
// (they all get the same values).
static faiss::Index *knob_index(const collm_faiss_index *index) {
    faiss::IndexShards *sh = shards_of(index->index);
    return innermost(sh ? sh->at(0) : index->index);
}

extern "C" int collm_faiss_nprobe(const collm_faiss_index *index) {
    auto *ivf = dynamic_cast<faiss::IndexIVF *>(knob_index(index));
    return ivf ? (int)ivf->nprobe : 0;
}

extern "C" int collm_faiss_ef_search(const collm_faiss_index *index) {
    auto *hnsw = dynamic_cast<faiss::IndexHNSW *>(knob_index(index));
    return hnsw ? hnsw->hnsw.efSearch : 0;
}

// What one file of collm_faiss_write holds: an index, then the caller's trailer.
typedef struct {
    const faiss::Index *index;
    const char *trailer; // or NULL
} index_file;

static int write_trailer(FILE *f, const char *trailer) {
    if (trailer && fputs(trailer, f) < 0) return collm_error(COLLM_ERR_IO, "write failed");
    return COLLM_OK;
}

// collm_write_atomic callback: exceptions must not cross its C frames.
static int write_index_to_file(FILE *f, void *ctx) {
    const index_file *file = (const index_file *)ctx;
    BRIDGE_TRY
    faiss::write_index(file->index, f);
    return write_trailer(f, file->trailer);
    BRIDGE_CATCH("write")
}

// A sharded index on disk: one Faiss file per shard, PATH.shard0 ...
// PATH.shard<K-1>, and at PATH a text manifest naming them (Faiss 1.7.3
// cannot serialise IndexShards). The manifest is written last, so a
// manifest implies complete shards; a shard may be served from elsewhere.
static const char SHARDS_MAGIC[] = "collm-faiss-shards 1\n";

typedef struct {
    std::vector<std::string> names;
    const char *trailer; // or NULL
} manifest_file;

static int write_manifest(FILE *f, void *ctx) {
    const manifest_file *m = (const manifest_file *)ctx;
    if (fputs(SHARDS_MAGIC, f) < 0 || fprintf(f, "%zu\n", m->names.size()) < 0)
        return collm_error(COLLM_ERR_IO, "write failed");
    for (const auto &n : m->names)
        if (fprintf(f, "%s\n", n.c_str()) < 0) return collm_error(COLLM_ERR_IO, "write failed");
    return write_trailer(f, m->trailer);
}

static std::string base_name(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

extern "C" int collm_faiss_write(const collm_faiss_index *index, const char *path, const char *trailer) {
    faiss::IndexShards *sh = shards_of(index->index);
    if (!sh) {
        index_file file = {index->index, trailer};
        int rc = collm_write_atomic(path, write_index_to_file, &file);
        if (rc != COLLM_OK) return collm_error_prefix(rc, "%s", path);
        return COLLM_OK;
    }
    manifest_file manifest;
    manifest.trailer = trailer;
    for (int i = 0; i < sh->count(); i++) {
        std::string shard_path = std::string(path) + ".shard" + std::to_string(i);
        index_file file = {sh->at(i), NULL};
        int rc = collm_write_atomic(shard_path.c_str(), write_index_to_file, &file);
        if (rc != COLLM_OK) return collm_error_prefix(rc, "%s", shard_path.c_str());
        manifest.names.push_back(base_name(shard_path.c_str()));
    }
    int rc = collm_write_atomic(path, write_manifest, &manifest);
    if (rc != COLLM_OK) return collm_error_prefix(rc, "%s", path);
    return COLLM_OK;
}

// What a search walks, checked against itself after a read: Faiss reads a
// damaged HNSW graph or IVF list (one flipped byte) without complaint, and
// the search then follows a neighbour or list id past its arrays. NULL when
// the structure holds; else what is wrong.
static const char *structure_problem(const faiss::Index *index) {
    for (;;) {
        if (auto *idmap = dynamic_cast<const faiss::IndexIDMap *>(index)) {
            if (!idmap->index || (faiss::Index::idx_t)idmap->id_map.size() != idmap->ntotal || idmap->index->ntotal != idmap->ntotal)
                return "its id map and its vectors differ in number";
            for (faiss::Index::idx_t id : idmap->id_map)
                if (id < 0 || id > INT32_MAX) return "an item id outside 0..2^31-1";
            index = idmap->index;
        } else if (auto *pre = dynamic_cast<const faiss::IndexPreTransform *>(index)) {
            if (!pre->index || pre->index->ntotal != pre->ntotal) return "its transform and its index differ in size";
            index = pre->index;
        } else {
            break;
        }
    }
    if (auto *h = dynamic_cast<const faiss::IndexHNSW *>(index)) {
        const faiss::HNSW &g = h->hnsw;
        const size_t n = (size_t)h->ntotal;
        const size_t n_cum = g.cum_nneighbor_per_level.size();
        if (!h->storage || h->storage->ntotal != h->ntotal) return "its HNSW graph and its stored vectors differ in number";
        if (g.levels.size() != n || g.offsets.size() != n + 1 || g.offsets[0] != 0 || g.offsets[n] != g.neighbors.size())
            return "its HNSW tables (levels, offsets, neighbours) do not fit together";
        if (n_cum < 2 || g.cum_nneighbor_per_level[0] != 0 || g.max_level < 0 || (size_t)g.max_level + 1 >= n_cum)
            return "its HNSW levels are out of range";
        for (size_t l = 1; l < n_cum; l++)
            if (g.cum_nneighbor_per_level[l] < g.cum_nneighbor_per_level[l - 1]) return "its HNSW levels are out of range";
        if (n > 0 && (g.entry_point < 0 || (size_t)g.entry_point >= n)) return "its HNSW entry point is outside the graph";
        for (size_t i = 0; i < n; i++) {
            const int l = g.levels[i];
            if (l < 1 || l > g.max_level + 1 || g.offsets[i + 1] < g.offsets[i] ||
                g.offsets[i + 1] - g.offsets[i] != (size_t)g.cum_nneighbor_per_level[l])
                return "an HNSW node's level or neighbour slots are out of range";
        }
        for (faiss::HNSW::storage_idx_t v : g.neighbors)
            if (v < -1 || (v >= 0 && (size_t)v >= n)) return "an HNSW neighbour is outside the graph";
    }
    if (auto *ivf = dynamic_cast<const faiss::IndexIVF *>(index)) {
        if (!ivf->quantizer || (size_t)ivf->quantizer->ntotal != ivf->nlist || !ivf->invlists ||
            ivf->invlists->nlist != ivf->nlist)
            return "its IVF lists and its coarse quantizer differ";
        size_t total = 0;
        for (size_t l = 0; l < ivf->nlist; l++) {
            const size_t size = ivf->invlists->list_size(l);
            total += size;
            if (total > (size_t)ivf->ntotal) return "its IVF lists hold more vectors than the index";
            const faiss::Index::idx_t *ids = ivf->invlists->get_ids(l);
            bool bad = false;
            for (size_t k = 0; k < size && !bad; k++) bad = ids[k] < 0 || ids[k] >= ivf->ntotal;
            ivf->invlists->release_ids(l, ids);
            if (bad) return "an IVF list holds an id outside the index";
        }
        if (total != (size_t)ivf->ntotal) return "its IVF lists and the index differ in number";
    }
    return nullptr;
}

// One Faiss file, checked for the inner-product metric and a whole structure.
static int read_one(const char *path, faiss::Index **out) {
    *out = nullptr;
    struct stat st;
    if (stat(path, &st) != 0) return collm_error(COLLM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return collm_error(COLLM_ERR_IO, "%s: not a regular file", path);
    faiss::Index *index = nullptr;
    try {
        index = faiss::read_index(path);
    } catch (const std::bad_alloc &) {
        return collm_error(COLLM_ERR_NOMEM, "%s: faiss index: out of memory (damaged file?)", path);
    } catch (const std::exception &e) {
        return collm_error(COLLM_ERR_FORMAT, "%s: not a readable faiss index: %s", path, faiss_message_text(e.what()));
    } catch (...) {
        return collm_error(COLLM_ERR_FORMAT, "%s: not a readable faiss index", path);
    }
    if (index->metric_type != faiss::METRIC_INNER_PRODUCT) {
        int metric = (int)index->metric_type;
        delete index;
        return collm_error(COLLM_ERR_FORMAT, "%s: faiss index uses metric %d, expected inner product (%d)", path,
                           metric, (int)faiss::METRIC_INNER_PRODUCT);
    }
    const char *bad = nullptr;
    try {
        bad = structure_problem(index);
    } catch (...) { // (an on-disk inverted list may throw)
        bad = "its inverted lists cannot be read";
    }
    if (bad) {
        delete index;
        return collm_error(COLLM_ERR_FORMAT, "%s: damaged faiss index: %s", path, bad);
    }
    *out = index;
    return COLLM_OK;
}

// The shards a manifest names, resolved beside it, into one IndexShards.
static int read_shards(const char *path, FILE *f, faiss::Index **out) {
    *out = nullptr;
    int n = 0;
    if (fscanf(f, "%d", &n) != 1 || n < 1 || n > COLLM_FAISS_MAX_SHARDS)
        return collm_error(COLLM_ERR_FORMAT, "%s: shard manifest: bad shard count", path);
    std::string dir(path);
    size_t slash = dir.rfind('/');
    dir = slash == std::string::npos ? std::string() : dir.substr(0, slash + 1);
    std::vector<faiss::Index *> parts;
    std::vector<std::string> seen;
    int rc = COLLM_OK;
    char name[512];
    for (int i = 0; i < n && rc == COLLM_OK; i++) {
        if (fscanf(f, "%511s", name) != 1 || strchr(name, '/')) {
            rc = collm_error(COLLM_ERR_FORMAT, "%s: shard manifest: entry %d is missing or not a file name", path, i);
            break;
        }
        // (a shard named twice would return each of its items twice)
        for (const std::string &s : seen)
            if (s == name) rc = collm_error(COLLM_ERR_FORMAT, "%s: shard manifest names %s twice", path, name);
        if (rc != COLLM_OK) break;
        seen.push_back(name);
        faiss::Index *p = nullptr;
        rc = read_one((dir + name).c_str(), &p);
        if (rc == COLLM_OK && !parts.empty() && p->d != parts[0]->d) {
            rc = collm_error(COLLM_ERR_FORMAT, "%s: shard %s has dimension %d, shard 0 %d", path, name, (int)p->d,
                             (int)parts[0]->d);
            delete p;
        } else if (rc == COLLM_OK) {
            parts.push_back(p);
        }
    }
    faiss::IndexShards *sh = nullptr;
    if (rc == COLLM_OK) {
        try {
            sh = new faiss::IndexShards((int)parts[0]->d, false, false);
            for (auto *p : parts) sh->add_shard(p);
            sh->own_fields = true;
        } catch (const std::exception &e) {
            rc = collm_error(COLLM_ERR_FORMAT, "%s: shards: %s", path, faiss_message_text(e.what()));
        }
    }
    if (rc != COLLM_OK) {
        if (sh) sh->own_fields = false;
        delete sh;
        for (auto *p : parts) delete p;
        return rc;
    }
    *out = sh;
    return COLLM_OK;
}

extern "C" int collm_faiss_read(const char *path, collm_faiss_index **out) {
    *out = nullptr;
    faiss::Index *index = nullptr;
    int rc;
    // a shard manifest (text) or one Faiss file
    char head[sizeof SHARDS_MAGIC] = {0};
    FILE *f = fopen(path, "rb");
    size_t got = f ? fread(head, 1, sizeof SHARDS_MAGIC - 1, f) : 0;
    if (f && got == sizeof SHARDS_MAGIC - 1 && memcmp(head, SHARDS_MAGIC, got) == 0) {
        rc = read_shards(path, f, &index);
        fclose(f);
    } else {
        if (f) fclose(f);
        rc = read_one(path, &index);
    }
    if (rc != COLLM_OK) return rc;
    *out = new (std::nothrow) collm_faiss_index{index};
    if (!*out) {
        delete index;
        return collm_error(COLLM_ERR_NOMEM, "out of memory");
    }
    return COLLM_OK;
}

extern "C" void collm_faiss_set_threads(int n) { omp_set_num_threads(n < 1 ? 1 : n); }
