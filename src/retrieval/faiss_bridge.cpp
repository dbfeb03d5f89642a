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
#include <faiss/IndexPreTransform.h>
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
#include <sys/stat.h>

struct collm_faiss_index {
    faiss::Index *index; // owned; usually an IndexIDMap over the factory's index
};

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
    index->index->train((faiss::Index::idx_t)n, x);
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

extern "C" int collm_faiss_set_search_params(collm_faiss_index *index, int nprobe, int ef_search) {
    faiss::Index *inner = innermost(index->index);
    if (auto *ivf = dynamic_cast<faiss::IndexIVF *>(inner)) {
        if (nprobe > 0) ivf->nprobe = (size_t)nprobe < ivf->nlist ? (size_t)nprobe : ivf->nlist;
    } else if (auto *hnsw = dynamic_cast<faiss::IndexHNSW *>(inner)) {
        if (ef_search > 0) hnsw->hnsw.efSearch = ef_search;
    }
    return COLLM_OK;
}

extern "C" int collm_faiss_nprobe(const collm_faiss_index *index) {
    auto *ivf = dynamic_cast<faiss::IndexIVF *>(innermost(index->index));
    return ivf ? (int)ivf->nprobe : 0;
}

extern "C" int collm_faiss_ef_search(const collm_faiss_index *index) {
    auto *hnsw = dynamic_cast<faiss::IndexHNSW *>(innermost(index->index));
    return hnsw ? hnsw->hnsw.efSearch : 0;
}

// collm_write_atomic callback: exceptions must not cross its C frames.
static int write_index_to_file(FILE *f, void *ctx) {
    const faiss::Index *index = (const faiss::Index *)ctx;
    BRIDGE_TRY
    faiss::write_index(index, f);
    return COLLM_OK;
    BRIDGE_CATCH("write")
}

extern "C" int collm_faiss_write(const collm_faiss_index *index, const char *path) {
    int rc = collm_write_atomic(path, write_index_to_file, (void *)index->index);
    if (rc != COLLM_OK) return collm_error_prefix(rc, "%s", path);
    return COLLM_OK;
}

extern "C" int collm_faiss_read(const char *path, collm_faiss_index **out) {
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
    *out = new (std::nothrow) collm_faiss_index{index};
    if (!*out) {
        delete index;
        return collm_error(COLLM_ERR_NOMEM, "out of memory");
    }
    return COLLM_OK;
}

extern "C" void collm_faiss_set_threads(int n) { omp_set_num_threads(n < 1 ? 1 : n); }
