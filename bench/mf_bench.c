// MF and evaluator timings on a dataset (ml-1m by default), through the
// library calls `collm train-cf` / `eval-cf` use.
//
//   build/bench/mf_bench [--data DIR] [--epochs 10] [--threads 1,2] [--dim 256] [--repeat 50]
//
// Prints, per thread count: the mean wall time of one MF training epoch
// (batch 2048, dense coupled-L2 Adam over both tables, no evaluation), of
// scoring the valid split, and of the metrics (AUC + UAUC + warm/cold AUC).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "collm/cf.h"
#include "collm/dataset.h"
#include "collm/error.h"
#include "collm/metrics.h"
#include "collm/threadpool.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    const char *data = "../shared/data/ml-1m", *threads_arg = "1,2";
    int epochs = 10, dim = 256, repeat = 50;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--data")) data = argv[i + 1];
        else if (!strcmp(argv[i], "--epochs")) epochs = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads")) threads_arg = argv[i + 1];
        else if (!strcmp(argv[i], "--dim")) dim = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--repeat")) repeat = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "mf_bench: unknown option %s\n", argv[i]);
            return 1;
        }
    }
    if (epochs < 1 || dim < 1 || repeat < 1) {
        fprintf(stderr, "mf_bench: --epochs, --dim and --repeat must be >= 1\n");
        return 1;
    }
    collm_rec_dataset *ds = collm_rec_dataset_load(data);
    if (!ds || !ds->valid) {
        fprintf(stderr, "mf_bench: %s\n", ds ? "dataset has no valid split" : collm_last_error());
        return 1;
    }
    printf("mf_bench: %s: train %lld rows, valid %lld rows, %d users x %d items, d=%d\n", data,
           (long long)ds->train->n, (long long)ds->valid->n, (int)ds->n_users, (int)ds->n_items, dim);
    printf("%-8s %14s %14s %14s\n", "threads", "epoch_ms", "score_valid_ms", "metrics_ms");
    char list[64];
    snprintf(list, sizeof list, "%s", threads_arg);
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        int nt = atoi(tok);
        collm_pool *pool = collm_pool_create(nt);
        collm_cf_model *m = collm_cf_model_create("mf", ds->n_users, ds->n_items, dim, 2023);
        if (!pool || !m) {
            fprintf(stderr, "mf_bench: %s\n", collm_last_error());
            return 1;
        }
        collm_cf_train_options opt;
        collm_cf_train_options_default(&opt);
        opt.max_epochs = epochs;
        opt.eval_split = ""; // time the training step alone
        collm_cf_train_result res;
        if (collm_cf_model_train(m, ds, &opt, pool, NULL, NULL, &res) != COLLM_OK) {
            fprintf(stderr, "mf_bench: %s\n", collm_last_error());
            return 1;
        }
        double epoch_ms = 1e3 * res.seconds / res.epochs_run;

        float *scores = malloc((size_t)ds->valid->n * sizeof *scores);
        double t0 = now_s();
        for (int r = 0; r < repeat; r++) collm_cf_model_score_split(m, ds->valid, scores, pool);
        double score_ms = 1e3 * (now_s() - t0) / repeat;
        collm_metrics_report rep;
        t0 = now_s();
        for (int r = 0; r < repeat; r++) collm_metrics_evaluate(ds->valid, scores, &rep);
        double metrics_ms = 1e3 * (now_s() - t0) / repeat;
        printf("%-8d %14.2f %14.3f %14.3f\n", collm_pool_size(pool), epoch_ms, score_ms, metrics_ms);
        free(scores);
        collm_cf_model_free(m);
        collm_pool_free(pool);
    }
    collm_rec_dataset_free(ds);
    return 0;
}
