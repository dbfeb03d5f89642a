// Scoring speed of a checkpoint, steady state: the split scored PASSES times
// in one process (collm_score_split, the pool of THREADS threads, one BLAS
// thread, as `collm eval` runs), prompts/s of each pass printed. The first
// pass also creates the scorer (its buffers, page faults); the later ones are
// what a training run's per-epoch evaluation costs (bench/train_speed.sh's
// scoring figure). Also printed: the process's CPU seconds of each pass (all
// threads; idle pool threads sleep), steadier than wall time on a shared
// machine, blind to threads waiting for each other. Public API only, so the same source builds against any
// libcollm for a build-against-build comparison. SCORES: each row's score
// (%.9g, one a line, the last pass) for a bit-for-bit check between builds.
//   score_speed CKPT DATA_DIR SPLIT [THREADS=2] [PASSES=3] [BATCH=32] [SCORES]
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "collm/collm.h"
#include "collm/dataset.h"
#include "collm/error.h"
#include "collm/threadpool.h"

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: score_speed CKPT DATA_DIR SPLIT [THREADS=2] [PASSES=3] [BATCH=32] [SCORES]\n");
        return 1;
    }
    const int threads = argc > 4 ? atoi(argv[4]) : 2, passes = argc > 5 ? atoi(argv[5]) : 3,
              batch = argc > 6 ? atoi(argv[6]) : 32;
    if (threads < 1 || passes < 1 || batch < 1) {
        fprintf(stderr, "score_speed: THREADS, PASSES and BATCH must be >= 1\n");
        return 1;
    }
    collm_blas_set_threads(1);
    collm_pool *pool = collm_pool_create(threads);
    collm_rec_dataset *ds = pool ? collm_rec_dataset_load(argv[2]) : NULL;
    collm_rec_split *split = ds ? collm_rec_dataset_load_split(ds, argv[3]) : NULL;
    collm_model *m = split ? collm_model_load(argv[1], NULL, pool) : NULL;
    float *scores = m ? malloc((size_t)(split->n > 0 ? split->n : 1) * sizeof(float)) : NULL;
    int rc = scores ? COLLM_OK : COLLM_ERR;
    for (int p = 0; p < passes && rc == COLLM_OK; p++) {
        double pps = 0;
        struct timespec c0, c1;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
        rc = collm_score_split(m, ds, split, batch, scores, &pps);
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
        double cpu = (double)(c1.tv_sec - c0.tv_sec) + 1e-9 * (double)(c1.tv_nsec - c0.tv_nsec);
        if (rc == COLLM_OK)
            printf("pass %d: %lld prompts, %.1f prompts/s, %.3f CPU s\n", p + 1, (long long)split->n, pps, cpu);
    }
    if (rc == COLLM_OK && argc > 7) {
        FILE *f = fopen(argv[7], "w");
        for (int64_t r = 0; f && r < split->n; r++) fprintf(f, "%.9g\n", scores[r]);
        if (!f || fclose(f) != 0) rc = collm_error(COLLM_ERR_IO, "score_speed: cannot write %s", argv[7]);
    }
    if (rc != COLLM_OK) fprintf(stderr, "score_speed: %s\n", collm_last_error());
    free(scores);
    collm_model_free(m);
    collm_rec_split_free(split);
    collm_rec_dataset_free(ds);
    collm_pool_free(pool);
    return rc == COLLM_OK ? 0 : 1;
}
