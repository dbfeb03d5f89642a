// A plain-C layer over Faiss's C++ API (Debian's libfaiss 1.7.3 ships no C
// API). src/retrieval/faiss_bridge.cpp is the only C++ file in collm; every
// C++ exception stops there and comes back as an error code with a message.
//
// Indexes always use inner product (METRIC_INNER_PRODUCT) and always carry
// explicit 64-bit ids: the factory's index is wrapped in an IndexIDMap, so
// Flat and HNSW (which cannot store ids themselves) work like IVF. Callers add
// vectors with their item ids (e.g. 1..n-1, leaving out padding id 0) and get
// those ids back from search.
//
// Threads: Faiss parallelises with OpenMP. collm_faiss_set_threads sets the
// OpenMP thread count *of the calling thread* (OpenMP keeps it per thread).
// libgomp reads OMP_WAIT_POLICY / GOMP_SPINCOUNT once, when the library is
// loaded, before main() runs, so setenv() in main is too late: set them in
// the environment of the process. The libgomp default (neither set) already
// lets idle workers sleep after a short spin (measured: a 2-thread process
// that runs one parallel region then 1 s of serial work uses 1.0 s of CPU;
// with GOMP_SPINCOUNT=infinite in the environment 2.0 s; the same set by
// setenv() in main: 1.0 s, i.e. ignored).
#ifndef COLLM_FAISS_BRIDGE_H
#define COLLM_FAISS_BRIDGE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct collm_faiss_index collm_faiss_index;

// Builds an empty index of dimension d from a Faiss factory string ("Flat",
// "HNSW32,Flat", "IVF1024,Flat", ...), metric inner product, wrapped in an
// IndexIDMap unless the string already starts with "IDMap". *out is NULL on
// failure (COLLM_ERR_ARG for a bad string or d < 1).
int collm_faiss_create(int d, const char *factory, collm_faiss_index **out);
void collm_faiss_free(collm_faiss_index *index);
// n_shards indexes of that factory string searched together (Faiss
// IndexShards, results merged by score): add spreads the vectors over them in
// contiguous blocks, train trains the first and copies it to the others (the
// same quantizers, so merged scores compare). n_shards 1 is collm_faiss_create.
// Written as one Faiss file per shard plus a manifest (collm_faiss_write).
enum { COLLM_FAISS_MAX_SHARDS = 1024 };
int collm_faiss_create_shards(int d, const char *factory, int n_shards, collm_faiss_index **out);
// 1 for an index that is not sharded.
int collm_faiss_n_shards(const collm_faiss_index *index);

int collm_faiss_dim(const collm_faiss_index *index);
int64_t collm_faiss_ntotal(const collm_faiss_index *index);
// 1 when add may be called (Flat, HNSW: always; IVF: after train).
int collm_faiss_is_trained(const collm_faiss_index *index);

// Trains on n vectors x (n, d), row-major. IVF needs n >= nlist (Faiss
// warns below 39 * nlist); a no-op for Flat and HNSW.
int collm_faiss_train(collm_faiss_index *index, int64_t n, const float *x);
// Adds n vectors x (n, d) with ids (n). Ids must be >= 0; Faiss does not
// check for duplicates.
int collm_faiss_add(collm_faiss_index *index, int64_t n, const float *x, const int64_t *ids);

// k nearest by inner product for nq queries (nq, d): scores (nq, k), best
// first, and ids (nq, k). Slots beyond the results found get id -1 and score
// -INFINITY (as Faiss does when fewer than k are reachable). Safe to call
// from several threads at once on the same index. A single query (nq == 1)
// runs on the calling thread alone: Faiss parallelises over queries, so
// extra OpenMP threads would only add a barrier.
int collm_faiss_search(const collm_faiss_index *index, int64_t nq, const float *queries, int64_t k,
                       float *scores, int64_t *ids);

// Search-time knobs: nprobe for IVF indexes, efSearch for HNSW; a value <= 0
// leaves that knob unchanged, and a knob that does not apply to the index is
// ignored. Modifies the index (Faiss 1.7.3 ignores efSearch passed per
// search through an IDMap), so do not call it while another thread searches.
// Both values are saved with the index.
int collm_faiss_set_search_params(collm_faiss_index *index, int nprobe, int ef_search);
// Current values, or 0 where the knob does not apply.
int collm_faiss_nprobe(const collm_faiss_index *index);
int collm_faiss_ef_search(const collm_faiss_index *index);

// Faiss's own file format, written atomically (temp file + rename); a
// sharded index as PATH.shard0 .. PATH.shard<K-1> (Faiss files) and a text
// manifest at PATH naming them, written last. trailer (NUL-terminated text, or
// NULL) is appended to the file at PATH inside the same atomic write: Faiss's
// reader and the manifest's stop before it (collm's item-table record,
// retrieval.c).
int collm_faiss_write(const collm_faiss_index *index, const char *path, const char *trailer);
// Reads an index written by collm_faiss_write (or any Faiss inner-product
// index with ids; a manifest brings its shards back as one IndexShards). A missing or damaged file, or a metric other than inner
// product, is an error naming the path.
int collm_faiss_read(const char *path, collm_faiss_index **out);

// OpenMP threads for the calling thread's later Faiss calls (n < 1 means 1).
void collm_faiss_set_threads(int n);

#ifdef __cplusplus
}
#endif

#endif
