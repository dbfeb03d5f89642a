// Data parallelism over processes: the one door to MPI. Everything else in
// collm calls these functions and never includes mpi.h; src/core/dist.c is
// the only file that does.
//
// Built without MPI (the Makefile found no mpicc / ompi-c), or run without a
// launcher (no mpirun / srun environment), every function is the identity of
// a job of one process: rank 0 of 1, collectives return at once, the buffers
// unchanged. So a plain `collm ...` behaves exactly as a build without MPI.
//
// Under `mpirun -np N collm ...` (OpenMPI: OMPI_COMM_WORLD_SIZE in the
// environment; PMI/PMIx launchers likewise) collm_dist_init starts MPI and
// the collectives run over MPI_COMM_WORLD. Every collective must be called
// by every rank in the same order (MPI's rule). A failed peer (killed,
// crashed) ends the whole job: MPI's default error handler aborts it and the
// launcher reports which rank died.
#ifndef COLLM_DIST_H
#define COLLM_DIST_H

#include "collm/version.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// 1 when this library was built with MPI.
COLLM_API int collm_dist_compiled(void);
// Starts MPI when the process was started by an MPI launcher (idempotent);
// otherwise does nothing. Returns COLLM_OK or an error (MPI_Init failed).
COLLM_API int collm_dist_init(int *argc, char ***argv);
// Ends MPI if collm_dist_init started it (after a barrier: no rank leaves
// while another still communicates).
COLLM_API void collm_dist_finalize(void);
// This process's rank in [0, size) and the number of processes (0 and 1
// without MPI).
COLLM_API int collm_dist_rank(void);
COLLM_API int collm_dist_size(void);
// Ends every rank of the job with exit status `code` (MPI_Abort); without
// MPI, returns (the caller then fails as usual).
COLLM_API void collm_dist_abort(int code);

// Collectives on MPI_COMM_WORLD. All return COLLM_OK or a negative error.
COLLM_API int collm_dist_barrier(void);
// buf (n) <- its element-wise sum over the ranks, on every rank. The order
// of the additions is MPI's: results can differ from a serial sum in the
// last bits of float.
COLLM_API int collm_dist_allreduce_sum_f32(float *buf, int64_t n);
COLLM_API int collm_dist_allreduce_sum_f64(double *buf, int64_t n);
// Copies root's bytes (n) to every rank.
COLLM_API int collm_dist_bcast(void *buf, int64_t n_bytes, int root);
// buf (sum of counts elements of elem_size bytes): rank r's elements are at
// offset counts[0] + ... + counts[r-1] and of length counts[r]; afterwards
// every rank holds every rank's part (in place, MPI_Allgatherv; at most 2^31
// bytes in all).
COLLM_API int collm_dist_allgather(void *buf, const int64_t *counts, int64_t elem_size);
// An int on each rank -> their maximum on every rank (agreeing on an error:
// pass a negative code as its negation, or a flag).
COLLM_API int collm_dist_allreduce_max_i32(int *v);

// Rank r's share [*begin, *end) of n items split into size contiguous,
// near-equal parts (the first n % size parts one longer).
static inline void collm_dist_slice(int64_t n, int rank, int size, int64_t *begin, int64_t *end) {
    int64_t q = n / size, r = n % size;
    *begin = rank * q + (rank < r ? rank : r);
    *end = *begin + q + (rank < r ? 1 : 0);
}

// counts (size) of every rank's share of n items, as collm_dist_slice: the
// counts argument of collm_dist_allgather.
static inline void collm_dist_counts(int64_t n, int size, int64_t *counts) {
    for (int r = 0; r < size; r++) {
        int64_t b, e;
        collm_dist_slice(n, r, size, &b, &e);
        counts[r] = e - b;
    }
}

#ifdef __cplusplus
}
#endif

#endif
