// The MPI module (collm/dist.h): the only file that includes mpi.h. Built
// with -DCOLLM_HAVE_MPI when the Makefile finds OpenMPI; otherwise every
// function is that of a job of one process.
#include "collm/dist.h"

#include "collm/error.h"

#include <stdint.h>
#include <stdlib.h>

#ifdef COLLM_HAVE_MPI
#include <mpi.h>

static int g_started; // MPI_Init called by collm_dist_init
static int g_rank, g_size = 1;

// MPI counts are int: larger buffers go in chunks of 2^30 elements.
enum { DIST_CHUNK = 1 << 30 };

// Set by mpirun (OpenMPI), srun and Hydra (PMI) or any PMIx launcher: a
// process started without one never calls MPI_Init (a singleton MPI_Init
// would spawn helper daemons and change nothing else).
static int launched_by_mpi(void) {
    static const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "PMI_RANK"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i])) return 1;
    return 0;
}

int collm_dist_compiled(void) { return 1; }

int collm_dist_init(int *argc, char ***argv) {
    if (g_started || !launched_by_mpi()) return COLLM_OK;
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited && MPI_Init(argc, argv) != MPI_SUCCESS) return collm_error(COLLM_ERR, "MPI_Init failed");
    g_started = !inited;
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    return COLLM_OK;
}

void collm_dist_finalize(void) {
    if (!g_started) return;
    MPI_Barrier(MPI_COMM_WORLD);
    MPI_Finalize();
    g_started = 0;
    g_rank = 0;
    g_size = 1;
}

int collm_dist_rank(void) { return g_rank; }
int collm_dist_size(void) { return g_size; }

void collm_dist_abort(int code) {
    if (g_size > 1) MPI_Abort(MPI_COMM_WORLD, code);
}

static int mpi_fail(int err, const char *what) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(err, msg, &len) != MPI_SUCCESS) len = 0;
    msg[len] = 0;
    return collm_error(COLLM_ERR_IO, "%s failed on rank %d of %d: %s", what, g_rank, g_size, len ? msg : "MPI error");
}

int collm_dist_barrier(void) {
    if (g_size <= 1) return COLLM_OK;
    int e = MPI_Barrier(MPI_COMM_WORLD);
    return e == MPI_SUCCESS ? COLLM_OK : mpi_fail(e, "MPI_Barrier");
}

static int allreduce(void *buf, int64_t n, MPI_Datatype type, size_t size, MPI_Op op, const char *what) {
    if (g_size <= 1) return COLLM_OK;
    for (int64_t off = 0; off < n; off += DIST_CHUNK) {
        int count = (int)(n - off < DIST_CHUNK ? n - off : DIST_CHUNK);
        int e = MPI_Allreduce(MPI_IN_PLACE, (char *)buf + (size_t)off * size, count, type, op, MPI_COMM_WORLD);
        if (e != MPI_SUCCESS) return mpi_fail(e, what);
    }
    return COLLM_OK;
}

int collm_dist_allreduce_sum_f32(float *buf, int64_t n) {
    return allreduce(buf, n, MPI_FLOAT, sizeof(float), MPI_SUM, "MPI_Allreduce");
}

int collm_dist_allreduce_sum_f64(double *buf, int64_t n) {
    return allreduce(buf, n, MPI_DOUBLE, sizeof(double), MPI_SUM, "MPI_Allreduce");
}

int collm_dist_allreduce_max_i32(int *v) { return allreduce(v, 1, MPI_INT, sizeof(int), MPI_MAX, "MPI_Allreduce"); }

int collm_dist_bcast(void *buf, int64_t n_bytes, int root) {
    if (g_size <= 1) return COLLM_OK;
    for (int64_t off = 0; off < n_bytes; off += DIST_CHUNK) {
        int count = (int)(n_bytes - off < DIST_CHUNK ? n_bytes - off : DIST_CHUNK);
        int e = MPI_Bcast((char *)buf + off, count, MPI_BYTE, root, MPI_COMM_WORLD);
        if (e != MPI_SUCCESS) return mpi_fail(e, "MPI_Bcast");
    }
    return COLLM_OK;
}

int collm_dist_allgather(void *buf, const int64_t *counts, int64_t elem_size) {
    if (g_size <= 1) return COLLM_OK;
    int *cnt = malloc((size_t)g_size * sizeof(int)), *disp = malloc((size_t)g_size * sizeof(int));
    if (!cnt || !disp) {
        free(cnt);
        free(disp);
        return collm_error(COLLM_ERR_NOMEM, "out of memory");
    }
    int64_t off = 0;
    int rc = COLLM_OK;
    for (int r = 0; r < g_size; r++) {
        int64_t bytes = counts[r] * elem_size;
        if (counts[r] < 0 || elem_size < 1 || off + bytes > INT32_MAX) {
            rc = collm_error(COLLM_ERR_RANGE, "allgather: %lld bytes exceed MPI's int counts", (long long)(off + bytes));
            break;
        }
        cnt[r] = (int)bytes;
        disp[r] = (int)off;
        off += bytes;
    }
    if (!rc) {
        int e = MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, cnt, disp, MPI_BYTE, MPI_COMM_WORLD);
        if (e != MPI_SUCCESS) rc = mpi_fail(e, "MPI_Allgatherv");
    }
    free(cnt);
    free(disp);
    return rc;
}

#else // no MPI: a job of one process

int collm_dist_compiled(void) { return 0; }
int collm_dist_init(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    return COLLM_OK;
}
void collm_dist_finalize(void) {}
int collm_dist_rank(void) { return 0; }
int collm_dist_size(void) { return 1; }
void collm_dist_abort(int code) { (void)code; }
int collm_dist_barrier(void) { return COLLM_OK; }
int collm_dist_allreduce_sum_f32(float *buf, int64_t n) {
    (void)buf;
    (void)n;
    return COLLM_OK;
}
int collm_dist_allreduce_sum_f64(double *buf, int64_t n) {
    (void)buf;
    (void)n;
    return COLLM_OK;
}
int collm_dist_allreduce_max_i32(int *v) {
    (void)v;
    return COLLM_OK;
}
int collm_dist_bcast(void *buf, int64_t n_bytes, int root) {
    (void)buf;
    (void)n_bytes;
    (void)root;
    return COLLM_OK;
}
int collm_dist_allgather(void *buf, const int64_t *counts, int64_t elem_size) {
    (void)buf;
    (void)counts;
    (void)elem_size;
    return COLLM_OK;
}

#endif
