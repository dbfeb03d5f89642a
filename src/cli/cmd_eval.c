// collm eval: AUC / UAUC / warm-cold AUC of a trained CoLLM checkpoint on a
// split (method.md §7), with the keys of eval-cf plus prompts/s.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "collm/collm.h"
#include "collm/dist.h"
#include "collm/error.h"
#include "collm/fileio.h"
#include "collm/metrics.h"
#include "commands.h"
#include "rec_setup.h"

// Scores every row of the split. Under mpirun each rank scores its
// contiguous share of the rows and the scores are gathered on every rank
// (prompts/s: the sum of the ranks' rates); one process scores them all.
static int score_sharded(collm_model *m, const collm_rec_dataset *ds, const collm_rec_split *split, int batch,
                         float *scores, double *pps) {
    int rank = collm_dist_rank(), size = collm_dist_size();
    if (size == 1) return collm_score_split(m, ds, split, batch, scores, pps);
    int64_t lo, hi;
    collm_dist_slice(split->n, rank, size, &lo, &hi);
    collm_rec_split mine = collm_rec_split_rows(split, lo, hi);
    int rc = mine.n > 0 ? collm_score_split(m, ds, &mine, batch, scores + lo, pps) : COLLM_OK;
    if (mine.n == 0) *pps = 0;
    int bad = rc != COLLM_OK; // every rank must reach the gather: agree on a failure first
    if (collm_dist_allreduce_max_i32(&bad) || bad) return rc ? rc : collm_error(COLLM_ERR, "scoring failed on another rank");
    int64_t *counts = malloc((size_t)size * sizeof *counts);
    if (!counts) return collm_error(COLLM_ERR_NOMEM, "out of memory");
    collm_dist_counts(split->n, size, counts);
    rc = collm_dist_allgather(scores, counts, sizeof(float));
    free(counts);
    if (!rc) rc = collm_dist_allreduce_sum_f64(pps, 1);
    return rc;
}

int cmd_eval(int argc, char **argv) {
    cli_option opts[] = {
        {"--ckpt", "FILE", "checkpoint from collm train", NULL},
        {"--base", "FILE", "base model (default: the path stored in the checkpoint)", NULL},
        {"--data", "DIR", "dataset directory", NULL},
        {"--split", "NAME|FILE", "train | valid | valid_small | test | a split file", NULL},
        {"--batch", "N", "prompts per batch (default 32)", NULL},
        {"--json", NULL, "print one JSON object instead of a table", NULL},
        {"--scores", "FILE", "also write every row's score as TSV (uid, iid, label, score)", NULL},
        CLI_COMMON_OPTIONS,
        {NULL, NULL, NULL, NULL},
    };
    int p = cli_parse(argc, argv, opts, "usage: collm eval --ckpt C.gguf --data DIR --split NAME|FILE [--json]");
    if (p) return p > 0 ? 0 : 1;
    const char *ckpt, *data, *split_name;
    int64_t batch;
    if (cli_require(opts, "--ckpt", &ckpt) || cli_require(opts, "--data", &data) ||
        cli_require(opts, "--split", &split_name) || cli_get_int_range(opts, "--batch", 32, 1, 1 << 16, &batch))
        return 1;
    if (batch < 1) {
        fprintf(stderr, "collm eval: --batch must be positive\n");
        return 1;
    }
    // --scores is written after the scoring: its folder is checked now
    const char *scores_path = cli_get(opts, "--scores");
    if (scores_path && collm_check_output_path(scores_path)) return cli_fail("eval");
    int threads = cli_threads(opts);
    // the pool runs the transformer's GEMMs, one slab of C per thread, each
    // through single-threaded BLAS (BLAS's own threads would spin between them)
    collm_blas_set_threads(1);
    cli_rec_setup s;
    if (cli_rec_setup_load_split(&s, "eval", ckpt, cli_get(opts, "--base"), data, split_name, threads)) return 1;
    collm_model *m = s.model;
    const collm_rec_split *split = s.split;
    // and it must not be a file this run reads (it replaced the checkpoint or the split it scored)
    const cli_input inputs[] = {{"--ckpt", ckpt}, {"--base", cli_get(opts, "--base")}, {"--split", split->path}};
    if (cli_check_not_input("--scores", scores_path, inputs, 3, data)) {
        cli_rec_setup_free(&s);
        return cli_fail("eval");
    }
    float *scores = malloc((size_t)(split->n ? split->n : 1) * sizeof(float));
    double pps = NAN;
    collm_metrics_report r;
    int rc = 1;
    if (scores && score_sharded(m, s.ds, split, (int)batch, scores, &pps) == COLLM_OK &&
        collm_metrics_evaluate(split, scores, &r) == COLLM_OK) {
        for (int k = 0; k < collm_score_extra_count(m); k++) {
            char what[96];
            snprintf(what, sizeof what, "the fused %s (extra %d)", collm_score_extra_kind(m, k), k + 1);
            const collm_cf_model *extra = collm_score_extra_model(m, k);
            if (collm_dist_rank() == 0 && split->path &&
                (cli_note_in_sample("eval", what, collm_cf_model_train_split(extra), split->path) ||
                 cli_note_fit_rows("eval", what, collm_cf_model_fit_split(extra), split->path)))
                break;
        }
        cli_report_info info = {ckpt, collm_has_slots(m) ? "collm" : "tallrec", split->path ? split->path : split_name, pps};
        rc = collm_dist_rank() == 0 ? cli_print_report(&r, &info, cli_has(opts, "--json")) : 0;
        if (!rc && collm_dist_rank() == 0 && scores_path) rc = cli_write_scores(scores_path, split, scores, "eval");
    } else {
        cli_fail("eval");
    }
    free(scores);
    cli_rec_setup_free(&s);
    return rc;
}
