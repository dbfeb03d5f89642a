// The CoLLM recommender end to end on small data: template files, prompt
// encoding with slots, scoring through the packed training path against the
// inference engine, two-stage training on a synthetic dataset, checkpoint
// round trips, a refused base mismatch, resume equivalence and the LoRA
// adapter export.
#include "collm/cf.h"
#include "collm/collm.h"
#include "collm/dataset.h"
#include "collm/error.h"
#include "collm/fileio.h"
#include "collm/gguf.h"
#include "collm/metrics.h"
#include "collm/model.h"
#include "collm/prepare.h"
#include "recommender/collm_internal.h"
#include "fixtures.h"
#include "test.h"

#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

static char dir[512], data_dir[600], base_path[600], other_base[600], mf_path[600];

static void test_builtin_templates(void) {
    const char *names[] = {"collm_movie", "tallrec_movie", "collm_book", "tallrec_book", "collm_movie_ids",
                           "collm_book_ids"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char path[256];
        snprintf(path, sizeof path, "prompts/%s.txt", names[i]);
        char *text;
        size_t n;
        CHECK(collm_read_file(path, &text, &n) == COLLM_OK);
        char *nl = strchr(text, '\n');
        if (nl) *nl = '\0';
        CHECK_STR(collm_prompt_builtin_line(names[i]), text);
        free(text);
    }
    CHECK(collm_prompt_builtin_line("nope") == NULL);
}

// A stage-2 model over ml-1m on the fixtures' base and MF (pool: NULL or the
// model's); NULL (checked) when it cannot be built.
static collm_model *build_ml1m_stage2(const collm_rec_dataset *ds, collm_pool *pool) {
    collm_build_options b;
    collm_build_options_default(&b);
    b.base_path = base_path;
    b.stage = 2;
    b.cf_path = mf_path;
    // the synthetic MF has fewer users/items than ml-1m: encoding does not need them
    collm_model *m = collm_model_build(&b, ds, pool);
    CHECK_MSG(m != NULL, "%s", collm_last_error());
    return m;
}

static void test_encode_ml1m(void) {
    collm_rec_dataset *ds = collm_rec_dataset_load(test_shared_path("data/ml-1m"));
    CHECK(ds != NULL);
    if (!ds) return;
    collm_model *m = build_ml1m_stage2(ds, NULL);
    if (!m) {
        collm_rec_dataset_free(ds);
        return;
    }
    CHECK(collm_yes_token(m) == 3869);
    const collm_rec_split *tr = ds->train;
    collm_encoded e;
    CHECK(collm_encode(m, ds->items, tr->user[0], tr->his + tr->his_offset[0], tr->his_offset[1] - tr->his_offset[0],
                       tr->item[0], &e) == COLLM_OK);
    CHECK(e.n_tokens > 50 && e.tokens[0] == 1); // "<s>" → BOS
    CHECK(e.n_slots == 2);
    CHECK(e.slot_item[0] == -1 && e.slot_item[1] == tr->item[0]);
    CHECK(e.tokens[e.slot_row[0]] == 0 && e.tokens[e.slot_row[1]] == 0);
    // "... the feature <unk>. Using ..." : the piece before <unk> ends in a space → standalone "▁" (29871)
    CHECK(e.tokens[e.slot_row[0] - 1] == 29871);
    // the prompt ends with "#Answer:" whose last token is ":" (29901)
    CHECK(e.tokens[e.n_tokens - 1] == 29901);
    collm_encoded e0 = e;
    // Issue 8: slot positions were found by searching the filled text for
    // "<unk>", so a title containing it took a slot (and the encoding failed
    // with "more slot markers than slots"). Positions now come from filling.
    char *saved = ds->items->title[tr->item[0]], evil[] = "Evil <unk> Twin (1999)";
    ds->items->title[tr->item[0]] = evil;
    collm_encoded e2;
    int rc = collm_encode(m, ds->items, tr->user[0], tr->his + tr->his_offset[0], tr->his_offset[1] - tr->his_offset[0],
                          tr->item[0], &e2);
    CHECK_MSG(rc == COLLM_OK, "%s", collm_last_error());
    if (rc == COLLM_OK) {
        CHECK(e2.n_slots == 2 && e2.slot_item[0] == -1 && e2.slot_item[1] == tr->item[0]);
        // the user slot is where it was (the title comes after it)
        CHECK(e2.slot_row[0] == e0.slot_row[0] && e2.slot_row[1] > e2.slot_row[0]);
        CHECK(e2.tokens[e2.slot_row[0]] == 0 && e2.tokens[e2.slot_row[1]] == 0);
        CHECK(e2.n_tokens - e2.slot_row[1] == e0.n_tokens - e0.slot_row[1]); // same text after the target slot
        collm_encoded_free(&e2);
    }
    ds->items->title[tr->item[0]] = saved;
    collm_encoded_free(&e);
    collm_model_free(m);
    collm_rec_dataset_free(ds);
}

// collm_encode_split over a pool: every row's encoding is the serial one's,
// and a failing row is reported as a serial run reports it, the lowest first,
// whichever thread's range it falls in.
static void test_encode_split_pool(void) {
    collm_rec_dataset *ds = collm_rec_dataset_load(test_shared_path("data/ml-1m"));
    collm_pool *pool = collm_pool_create(2);
    CHECK(ds != NULL && pool != NULL);
    if (!ds || !pool) {
        collm_rec_dataset_free(ds);
        collm_pool_free(pool);
        return;
    }
    collm_model *m = build_ml1m_stage2(ds, pool);
    CHECK(!m || m->pool == pool);
    if (!m) {
        collm_rec_dataset_free(ds);
        collm_pool_free(pool);
        return;
    }
    collm_rec_split part = *ds->valid_small; // its first 600 rows: two ranges of 300 on the pool
    part.n = 600;
    collm_encoded *serial = NULL, *pooled = NULL;
    m->pool = NULL;
    CHECK(collm_encode_split(m, ds, &part, &serial) == COLLM_OK);
    m->pool = pool;
    CHECK(collm_encode_split(m, ds, &part, &pooled) == COLLM_OK);
    int same = serial && pooled;
    for (int64_t r = 0; same && r < part.n; r++) {
        same = serial[r].n_tokens == pooled[r].n_tokens && serial[r].n_slots == pooled[r].n_slots &&
               memcmp(serial[r].tokens, pooled[r].tokens, (size_t)serial[r].n_tokens * sizeof(int32_t)) == 0 &&
               memcmp(serial[r].slot_row, pooled[r].slot_row, sizeof serial[r].slot_row) == 0 &&
               memcmp(serial[r].slot_item, pooled[r].slot_item, sizeof serial[r].slot_item) == 0;
    }
    CHECK_MSG(same, "pooled encodings differ from the serial ones");
    collm_encoded_array_free(serial, part.n);
    collm_encoded_array_free(pooled, part.n);
    // rows 451 and 521 (the second thread's range) name items beyond the table;
    // then row 101 (the first's) too
    int32_t *items = malloc((size_t)part.n * sizeof *items);
    CHECK(items != NULL);
    if (items) {
        memcpy(items, part.item, (size_t)part.n * sizeof *items);
        part.item = items;
        items[450] = items[520] = ds->items->n + 5;
        collm_encoded *enc = NULL;
        CHECK(collm_encode_split(m, ds, &part, &enc) != COLLM_OK && enc == NULL);
        CHECK_MSG(strstr(collm_last_error(), ": row 451: prompt: target item") != NULL, "%s", collm_last_error());
        items[100] = -3;
        CHECK(collm_encode_split(m, ds, &part, &enc) != COLLM_OK && enc == NULL);
        CHECK_MSG(strstr(collm_last_error(), ": row 101: prompt: target item -3") != NULL, "%s", collm_last_error());
        m->pool = NULL; // the same message from a serial run
        CHECK(collm_encode_split(m, ds, &part, &enc) != COLLM_OK);
        CHECK_MSG(strstr(collm_last_error(), ": row 101: prompt: target item -3") != NULL, "%s", collm_last_error());
        m->pool = pool;
        free(items);
    }
    collm_model_free(m);
    collm_pool_free(pool);
    collm_rec_dataset_free(ds);
}

// Scores through the packed trainer equal the inference engine's "Yes"
// logits computed prompt by prompt with slot rows.
static void check_scores_match_engine(collm_model *m, const collm_rec_dataset *ds, const collm_rec_split *split, int n) {
    collm_encoded *enc;
    CHECK(collm_encode_split(m, ds, split, &enc) == COLLM_OK);
    float *scores = malloc(sizeof(float) * (size_t)split->n);
    CHECK(collm_score_encoded(m, enc, split->n, 7, scores) == COLLM_OK);
    collm_llm_context *ctx = collm_llm_context_create(m->llm, 512, 512, NULL);
    double worst = 0;
    for (int i = 0; i < n && i < split->n; i++) {
        float slots[COLLM_MAX_SLOTS * 64];
        CHECK(collm_slot_embeddings(m, &enc[i], slots) == COLLM_OK);
        collm_llm_slot_rows rows = {enc[i].n_slots, enc[i].slot_row, slots};
        int32_t last = enc[i].n_tokens - 1, yes = m->yes_id;
        float logit;
        collm_llm_kv_truncate(ctx, 0);
        CHECK(collm_llm_forward(ctx, enc[i].tokens, enc[i].n_tokens, &rows, &last, 1, &yes, 1, &logit) == COLLM_OK);
        worst = fmax(worst, fabs(logit - scores[i]));
    }
    CHECK_MSG(worst < 1e-4, "packed scoring vs engine: %g", worst);
    collm_llm_context_free(ctx);
    free(scores);
    collm_encoded_array_free(enc, split->n);
}

static double eval_auc(collm_model *m, const collm_rec_dataset *ds) {
    float *scores = malloc(sizeof(float) * (size_t)ds->valid->n);
    double auc = NAN;
    if (collm_score_split(m, ds, ds->valid, 16, scores, NULL) == COLLM_OK) auc = collm_metrics_auc(scores, ds->valid->label, ds->valid->n);
    free(scores);
    return auc;
}

static int files_equal(const char *a, const char *b) {
    char *x, *y;
    size_t nx, ny;
    if (collm_read_file(a, &x, &nx) || collm_read_file(b, &y, &ny)) return 0;
    int same = nx == ny && memcmp(x, y, nx) == 0;
    free(x);
    free(y);
    return same;
}

static void test_two_stages(void) {
    collm_rec_dataset *ds = collm_rec_dataset_load(data_dir);
    CHECK(ds != NULL);
    if (!ds) return;
    char s1[700], s2[700], s2b[700], adapter[700];
    snprintf(s1, sizeof s1, "%s/stage1.gguf", dir);
    snprintf(s2, sizeof s2, "%s/stage2.gguf", dir);
    snprintf(s2b, sizeof s2b, "%s/stage2-resumed.gguf", dir);
    snprintf(adapter, sizeof adapter, "%s/adapter.gguf", dir);

    // stage 1: LoRA on the text-only prompt
    collm_build_options b;
    collm_build_options_default(&b);
    b.base_path = base_path;
    b.stage = 1;
    b.lora_rank = 4;
    collm_model *m = collm_model_build(&b, ds, NULL);
    CHECK(m != NULL && m->has_lora && !m->has_fece);
    if (!m) {
        collm_rec_dataset_free(ds);
        return;
    }
    collm_train_options t = fixture_train_options(3, 2, 40, s1);
    collm_train_result res;
    CHECK(collm_train(m, ds, &t, &res) == COLLM_OK);
    CHECK(res.epochs_run == 2 && res.best_epoch >= 1);
    CHECK(collm_export_lora(m, adapter) == COLLM_OK);
    collm_model_free(m);
    // loading merges the adapter into the weights: the engine then scores exactly like the trainer did
    m = collm_model_load(s1, NULL, NULL);
    CHECK(m != NULL && m->lora_merged);
    if (m) check_scores_match_engine(m, ds, ds->valid, 5);
    collm_model_free(m);

    // the adapter reads back with llama.cpp's keys and shapes
    collm_gguf_file *f = collm_gguf_open(adapter);
    CHECK(f != NULL);
    if (f) {
        const char *s;
        uint64_t len;
        CHECK(collm_gguf_get_str(f, "general.type", &s, &len) == COLLM_OK && len == 7 && !memcmp(s, "adapter", 7));
        CHECK(collm_gguf_get_str(f, "adapter.type", &s, &len) == COLLM_OK && len == 4 && !memcmp(s, "lora", 4));
        float alpha;
        CHECK(collm_gguf_get_f32(f, "adapter.lora.alpha", &alpha) == COLLM_OK && alpha == 16.0f);
        const collm_gguf_tensor_info *a = collm_gguf_find_tensor(f, "blk.0.attn_q.weight.lora_a");
        const collm_gguf_tensor_info *bt = collm_gguf_find_tensor(f, "blk.0.attn_v.weight.lora_b");
        CHECK(a && a->ne[0] == 32 && a->ne[1] == 4);  // {in, r}
        CHECK(bt && bt->ne[0] == 4 && bt->ne[1] == 32); // {r, out}
        CHECK(collm_gguf_find_tensor(f, "blk.0.attn_k.weight.lora_a") == NULL);
        collm_gguf_close(f);
    }

    // stage 2: the FECE mapping on the collm prompt, from the stage-1 LoRA
    b.stage = 2;
    b.init_from = s1;
    b.cf_path = mf_path;
    m = collm_model_build(&b, ds, NULL);
    CHECK(m != NULL && m->has_fece && m->lora_merged);
    if (!m) {
        fprintf(stderr, "%s\n", collm_last_error());
        collm_rec_dataset_free(ds);
        return;
    }
    t.out_path = s2;
    t.max_epochs = 4;
    t.lr = 1e-2;
    CHECK(collm_train(m, ds, &t, &res) == COLLM_OK);
    check_scores_match_engine(m, ds, ds->valid, 5);
    collm_model_free(m);

    // the checkpoint reloads to the same scores
    collm_model *a = collm_model_load(s2, NULL, NULL);
    CHECK(a != NULL);
    if (a) {
        double auc = eval_auc(a, ds);
        CHECK(!isnan(auc));
        collm_model_free(a);
    }
    // a different base model is refused, naming both files
    a = collm_model_load(s2, other_base, NULL);
    CHECK(a == NULL && strstr(collm_last_error(), "different base model") != NULL);

    // resume: 2 epochs, then 2 more from the .resume file = 4 straight
    m = collm_model_build(&b, ds, NULL);
    t.out_path = s2b;
    t.epoch_budget = 2;
    CHECK(collm_train(m, ds, &t, &res) == COLLM_OK);
    collm_model_free(m);
    m = collm_model_build(&b, ds, NULL);
    t.epoch_budget = 0;
    t.resume = 1;
    CHECK(collm_train(m, ds, &t, &res) == COLLM_OK && res.epochs_run == 4);
    collm_model_free(m);
    char r1[720], r2[720];
    snprintf(r1, sizeof r1, "%s.resume", s2);
    snprintf(r2, sizeof r2, "%s.resume", s2b);
    CHECK_MSG(files_equal(r1, r2), "resumed training state differs from the uninterrupted one");
    // a resume file from other settings is refused
    m = collm_model_build(&b, ds, NULL);
    t.batch = 4;
    CHECK(collm_train(m, ds, &t, &res) == COLLM_ERR_ARG);
    collm_model_free(m);
    collm_rec_dataset_free(ds);
}

// CoLLM over a history encoder (SASRec, DIN): the user slot takes the
// encoder's user-side vector of that very sample (SASRec: the history's
// last-position output; DIN: [target, pooled history, user]), the item slots
// its item vectors; the checkpoint embeds the encoder and records the kind,
// and reloads to the same scores; the CF part of the fused score is the
// encoder's own score.
static void test_history_encoder(const char *kind, int dim) {
    collm_rec_dataset *ds = collm_rec_dataset_load(data_dir);
    CHECK(ds != NULL);
    if (!ds) return;
    char cf_path[700], ckpt[700];
    snprintf(cf_path, sizeof cf_path, "%s/%s.gguf", dir, kind);
    snprintf(ckpt, sizeof ckpt, "%s/stage2-%s.gguf", dir, kind);
    collm_cf_hparams hp;
    collm_cf_hparams_default(kind, &hp);
    hp.dim = dim;
    hp.max_len = 6;
    collm_cf_model *cf = collm_cf_model_create_hp(kind, ds->n_users, ds->n_items, &hp, 5);
    CHECK(cf && collm_cf_model_save(cf, cf_path) == COLLM_OK);
    collm_build_options b;
    collm_build_options_default(&b);
    b.base_path = base_path;
    b.stage = 2;
    b.cf_path = cf_path;
    collm_model *m = collm_model_build(&b, ds, NULL);
    CHECK_MSG(m != NULL, "%s: %s", kind, collm_last_error());
    if (!m || !cf) {
        collm_cf_model_free(cf);
        collm_rec_dataset_free(ds);
        return;
    }
    int32_t nu = -1, ni = 0;
    int d = 0;
    CHECK_STR(collm_cf_kind(m), kind);
    CHECK(collm_cf_users(m, &nu, &d) == NULL && nu == 0 && d == dim);
    CHECK(collm_cf_items(m, &ni, &d) != NULL && ni == ds->n_items);

    // the slots of a valid row: the user slot is FECE(the encoder's user side of this sample)
    const collm_rec_split *v = ds->valid;
    int checked = 0, differs = 0;
    float prev_user_slot[64];
    const int C = m->llm->hp.n_embd;
    for (int64_t r = 0; r < v->n && checked < 6; r += 7) {
        const int32_t *his = v->his + v->his_offset[r];
        int64_t nh = v->his_offset[r + 1] - v->his_offset[r];
        collm_encoded e;
        CHECK(collm_encode(m, ds->items, v->user[r], his, nh, v->item[r], &e) == COLLM_OK);
        int us = -1;
        for (int k = 0; k < e.n_slots; k++)
            if (e.slot_item[k] < 0) us = k;
        CHECK(us >= 0 && e.user_vec != NULL);
        if (us < 0 || !e.user_vec) {
            collm_encoded_free(&e);
            break;
        }
        float uv[192], iv[192];
        CHECK(collm_cf_model_sample_vectors(cf, v->user[r], his, nh, v->item[r], uv, iv) == COLLM_OK);
        CHECK(memcmp(uv, e.user_vec, sizeof(float) * (size_t)dim) == 0);
        float *slots = malloc(sizeof(float) * (size_t)e.n_slots * C), h[2048], y[64];
        CHECK(collm_slot_embeddings(m, &e, slots) == COLLM_OK);
        collm_fece_forward(&m->fece, uv, 1, h, y);
        double worst = 0;
        for (int c = 0; c < C; c++) worst = fmax(worst, fabs(slots[us * C + c] - y[c]));
        CHECK_MSG(worst < 1e-5, "%s: user slot vs FECE(encoder user side): %g", kind, worst);
        if (checked && memcmp(prev_user_slot, slots + us * C, sizeof(float) * (size_t)C) != 0) differs = 1;
        memcpy(prev_user_slot, slots + us * C, sizeof(float) * (size_t)C);
        free(slots);
        collm_encoded_free(&e);
        checked++;
    }
    CHECK(checked == 6 && differs);
    // retrieval query: the encoder's user side of the history (DIN: with the padding item as target)
    {
        const int32_t *his = v->his + v->his_offset[3];
        int64_t nh = v->his_offset[4] - v->his_offset[3];
        float q[192], uv[192];
        CHECK(collm_cf_history_query(m, v->user[3], his, nh, q) == 1);
        CHECK(collm_cf_model_sample_vectors(cf, v->user[3], his, nh, strcmp(kind, "sasrec") == 0 ? v->item[3] : 0, uv,
                                            NULL) == COLLM_OK);
        CHECK(memcmp(q, uv, sizeof(float) * (size_t)dim) == 0);
        // DIN needs a known user; SASRec reads only the history
        CHECK(collm_cf_history_query(m, ds->n_users + 5, his, nh, q) == (strcmp(kind, "sasrec") == 0));
    }

    // training, scoring like the engine, the checkpoint round trip
    collm_train_options t = fixture_train_options(2, 1, 40, ckpt);
    collm_train_result res;
    CHECK_MSG(collm_train(m, ds, &t, &res) == COLLM_OK, "%s: %s", kind, collm_last_error());
    check_scores_match_engine(m, ds, ds->valid, 5);
    float *before = malloc(sizeof(float) * (size_t)v->n), *after = malloc(sizeof(float) * (size_t)v->n);
    float *cf_scores = malloc(sizeof(float) * (size_t)v->n), *want = malloc(sizeof(float) * (size_t)v->n);
    CHECK(collm_score_split_parts(m, ds, v, 16, before, cf_scores, NULL) == COLLM_OK);
    CHECK(collm_cf_model_score_split(cf, v, want, NULL) == COLLM_OK);
    CHECK(memcmp(cf_scores, want, sizeof(float) * (size_t)v->n) == 0); // the fused score's CF part
    collm_model_free(m);
    collm_gguf_file *f = collm_gguf_open(ckpt);
    CHECK(f != NULL);
    if (f) {
        char *k = collm_gguf_get_str_dup(f, "collm.cf.kind");
        CHECK_STR(k, kind);
        free(k);
        CHECK(collm_gguf_find_tensor(f, "cf.item_embd") != NULL && collm_gguf_find_tensor(f, "cf.user_embd") == NULL);
        collm_gguf_close(f);
    }
    m = collm_model_load(ckpt, NULL, NULL);
    CHECK_MSG(m != NULL, "%s: load: %s", kind, collm_last_error());
    if (m) {
        CHECK_STR(collm_cf_kind(m), kind);
        CHECK(collm_score_split_parts(m, ds, v, 16, after, cf_scores, NULL) == COLLM_OK);
        CHECK_MSG(memcmp(before, after, sizeof(float) * (size_t)v->n) == 0, "%s: scores after reload", kind);
        CHECK(memcmp(cf_scores, want, sizeof(float) * (size_t)v->n) == 0);
        collm_model_free(m);
    }
    free(before), free(after), free(cf_scores), free(want);
    collm_cf_model_free(cf);
    collm_rec_dataset_free(ds);
}

// Copying a checkpoint with keys replaced: ckpt_copy_begin opens src (*f)
// and returns a writer holding every tensor and every key but those whose
// name starts with drop; the caller sets the replacements; ckpt_copy_end
// writes dst when rc is COLLM_OK and closes both.
static collm_gguf_writer *ckpt_copy_begin(const char *src, const char *drop, collm_gguf_file **f) {
    *f = collm_gguf_open(src);
    collm_gguf_writer *w = collm_gguf_writer_create();
    int rc = *f && w ? COLLM_OK : COLLM_ERR;
    for (int64_t i = 0; !rc && i < collm_gguf_n_kv(*f); i++)
        if (strncmp(collm_gguf_key(*f, i), drop, strlen(drop))) rc = collm_gguf_writer_copy_kv(w, *f, i);
    for (int64_t i = 0; !rc && i < collm_gguf_n_tensors(*f); i++) {
        const collm_gguf_tensor_info *t = collm_gguf_tensor(*f, i);
        rc = collm_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data);
    }
    if (!rc) return w;
    collm_gguf_writer_free(w);
    collm_gguf_close(*f);
    *f = NULL;
    return NULL;
}

static int ckpt_copy_end(collm_gguf_writer *w, collm_gguf_file *f, const char *dst, int rc) {
    if (!w) rc = COLLM_ERR;
    if (!rc) rc = collm_gguf_writer_write(w, dst);
    collm_gguf_writer_free(w);
    collm_gguf_close(f);
    return rc;
}

// A copy of checkpoint src in dst with key set to the u32 value.
static int copy_with_u32(const char *src, const char *dst, const char *key, uint32_t value) {
    collm_gguf_file *f;
    collm_gguf_writer *w = ckpt_copy_begin(src, key, &f);
    return ckpt_copy_end(w, f, dst, w ? collm_gguf_writer_set_u32(w, key, value) : COLLM_ERR);
}

// Sizes in a checkpoint's keys are checked against its tensors before any
// allocation (a fuzzed 6 KB checkpoint asked for 6 GB): the error names the
// tensor whose size disagrees with the keys.
static void test_lying_size_keys(const char *ckpt) {
    static const struct {
        const char *key;
        uint32_t value;
        const char *tensor;
    } cases[] = {
        {"collm.cf.n_users", 1u << 30, "cf.user_embd"},
        {"collm.cf.n_items", 4000000000u, "disagree"},
        {"collm.cf.dim", 1u << 28, "cf.user_embd"},
        {"collm.fece.d_hidden", 16u << 26, "fece.w1"},
        {"collm.lora.rank", 1u << 30, "lora"},
    };
    char bad[720];
    snprintf(bad, sizeof bad, "%s/lying.gguf", dir);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CHECK(copy_with_u32(ckpt, bad, cases[i].key, cases[i].value) == COLLM_OK);
        if (!strcmp(cases[i].key, "collm.lora.rank")) { // a LoRA checkpoint needs its targets too
            char bad2[740];
            snprintf(bad2, sizeof bad2, "%s.2", bad);
            CHECK(copy_with_u32(bad, bad2, "collm.lora.targets", 1) == COLLM_OK);
            rename(bad2, bad);
        }
        collm_model *m = collm_model_load(bad, NULL, NULL);
        const char *err = collm_last_error();
        CHECK_MSG(m == NULL && strstr(err, cases[i].tensor) && !strstr(err, "out of memory"),
                  "%s = %u: %s", cases[i].key, cases[i].value, err);
        collm_model_free(m);
    }
}

// Full fine-tuning: the checkpoint holds the whole model (plus CF tables and
// the mapping) and reloads without the base; a joint stage trains both.
static void test_full_finetune(void) {
    collm_rec_dataset *ds = collm_rec_dataset_load(data_dir);
    if (!ds) return;
    char s1[700], s2[700];
    snprintf(s1, sizeof s1, "%s/full1.gguf", dir);
    snprintf(s2, sizeof s2, "%s/full2.gguf", dir);
    collm_build_options b;
    collm_build_options_default(&b);
    b.base_path = base_path;
    b.full_finetune = 1;
    collm_model *m = collm_model_build(&b, ds, NULL);
    CHECK(m != NULL && !m->has_lora);
    collm_train_options t = fixture_train_options(3, 2, 40, s1);
    collm_train_result res;
    CHECK(m && collm_train(m, ds, &t, &res) == COLLM_OK);
    // of the untied head only the answer row trained: every other row is the base's, bit for bit
    collm_llm_model *base = collm_llm_model_load(base_path);
    CHECK(base != NULL && m != NULL);
    if (base && m) {
        const int64_t C = base->hp.n_embd, V = base->hp.n_vocab, yes = m->yes_id;
        const float *a = base->output, *o = m->llm->output;
        CHECK(o != m->llm->token_embd && memcmp(a, o, (size_t)(yes * C) * sizeof(float)) == 0 &&
              memcmp(a + (yes + 1) * C, o + (yes + 1) * C, (size_t)((V - yes - 1) * C) * sizeof(float)) == 0);
        CHECK(memcmp(a + yes * C, o + yes * C, (size_t)C * sizeof(float)) != 0);
        CHECK(memcmp(base->token_embd, m->llm->token_embd, (size_t)(V * C) * sizeof(float)) != 0);
    }
    collm_llm_model_free(base);
    collm_model_free(m);
    b.full_finetune = 0;
    b.stage = 2;
    b.init_from = s1;
    b.cf_path = mf_path;
    // issue 8: a --base beside a full-model checkpoint was silently ignored
    m = collm_model_build(&b, ds, NULL);
    CHECK_MSG(m == NULL && strstr(collm_last_error(), "whole fine-tuned model") && strstr(collm_last_error(), base_path),
              "%s", collm_last_error());
    collm_model_free(m);
    m = collm_model_load(s1, base_path, NULL);
    CHECK_MSG(m == NULL && strstr(collm_last_error(), "would not be used"), "%s", collm_last_error());
    collm_model_free(m);
    b.base_path = NULL;
    m = collm_model_build(&b, ds, NULL);
    CHECK_MSG(m != NULL && m->full_model_in_ckpt, "%s", collm_last_error());
    t.out_path = s2;
    t.train_llm = 1;
    CHECK(m && collm_train(m, ds, &t, &res) == COLLM_OK);
    collm_model_free(m);
    m = collm_model_load(s2, NULL, NULL);
    CHECK_MSG(m != NULL, "%s", collm_last_error());
    if (m) {
        CHECK(m->has_fece && m->cf_items != NULL);
        check_scores_match_engine(m, ds, ds->valid, 4);
        collm_model_free(m);
    }
    test_lying_size_keys(s2);
    collm_rec_dataset_free(ds);
}

// Copies a .resume file with one change: key `key` set to the u64 `value`
// (key NULL: none), and train.order entry `order_i` set to `order_v`
// (order_i < 0: none). Everything else byte-identical.
static int rewrite_resume(const char *src, const char *dst, const char *key, uint64_t value, int64_t order_i,
                          int32_t order_v) {
    collm_gguf_file *f = collm_gguf_open(src);
    if (!f) return COLLM_ERR;
    collm_gguf_writer *w = collm_gguf_writer_create();
    int rc = w ? COLLM_OK : COLLM_ERR;
    for (int64_t i = 0; !rc && i < collm_gguf_n_kv(f); i++)
        rc = key && strcmp(collm_gguf_key(f, i), key) == 0 ? collm_gguf_writer_set_u64(w, key, value)
                                                           : collm_gguf_writer_copy_kv(w, f, i);
    int32_t *order = NULL;
    for (int64_t i = 0; !rc && i < collm_gguf_n_tensors(f); i++) {
        const collm_gguf_tensor_info *t = collm_gguf_tensor(f, i);
        const void *data = t->data;
        if (order_i >= 0 && strcmp(t->name, "train.order") == 0) {
            order = malloc(t->n_bytes);
            memcpy(order, t->data, t->n_bytes);
            order[order_i] = order_v;
            data = order;
        }
        rc = collm_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, data);
    }
    if (!rc) rc = collm_gguf_writer_write(w, dst);
    collm_gguf_writer_free(w);
    free(order);
    collm_gguf_close(f);
    return rc;
}

// Issue 8: a .resume file was trusted; a negative train.cursor or an
// out-of-range train.order entry (one flipped bit) crashed `train --resume`.
// Every damaged copy is refused with a message naming the file and the field;
// the undamaged copy resumes.
static void test_damaged_resume(void) {
    collm_rec_dataset *ds = collm_rec_dataset_load(data_dir);
    if (!ds) return;
    char s1[700], src[720];
    snprintf(s1, sizeof s1, "%s/stage1.gguf", dir);
    snprintf(src, sizeof src, "%s/stage2-resumed.gguf.resume", dir); // 4 epochs of test_two_stages
    collm_build_options b;
    collm_build_options_default(&b);
    b.base_path = base_path;
    b.stage = 2;
    b.lora_rank = 4;
    b.init_from = s1;
    b.cf_path = mf_path;
    // one more epoch than the run it resumes: batches are drawn from the damaged state
    collm_train_options t = fixture_train_options(3, 5, 40, NULL);
    t.lr = 1e-2;
    t.resume = 1;
    t.progress = 0;
    const struct {
        const char *name, *key;
        uint64_t value;
        int64_t order_i;
        int32_t order_v;
        const char *needle;
    } cases[] = {
        {"ok", NULL, 0, -1, 0, NULL},
        {"cursor-negative", "train.cursor", (uint64_t)-8, -1, 0, "train.cursor"},
        {"cursor-flipped", "train.cursor", (uint64_t)1 << 62, -1, 0, "train.cursor"},
        {"cursor-past", "train.cursor", 100000, -1, 0, "train.cursor"},
        {"order-range", NULL, 0, 3, 1 << 20, "train.order[3]"},
        {"order-negative", NULL, 0, 0, -5, "train.order[0]"},
        {"order-repeat", NULL, 0, 5, -1, "repeated"}, // -1: filled in below with entry 4's value
        {"epoch-zero", "train.epoch", 0, -1, 0, "train.epoch"},
        {"step", "train.global_step", 7, -1, 0, "train.global_step"},
        {"optim-step", "train.collm_optim_step", 13, -1, 0, "collm_optim_step"},
        {"best-epoch", "train.best_epoch", 9, -1, 0, "train.best_epoch"},
        {"bad-epochs", "train.bad_epochs", (uint64_t)1 << 40, -1, 0, "train.bad_epochs"},
    };
    collm_gguf_file *f = collm_gguf_open(src);
    CHECK_MSG(f != NULL, "%s", collm_last_error());
    if (!f) {
        collm_rec_dataset_free(ds);
        return;
    }
    const int32_t *order = collm_gguf_find_tensor(f, "train.order")->data;
    int32_t repeat = order[4];
    collm_gguf_close(f);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char out[720], res_path[740];
        snprintf(out, sizeof out, "%s/damaged-%s.gguf", dir, cases[c].name);
        snprintf(res_path, sizeof res_path, "%s.resume", out);
        int32_t v = cases[c].order_v == -1 ? repeat : cases[c].order_v;
        CHECK_MSG(rewrite_resume(src, res_path, cases[c].key, cases[c].value, cases[c].order_i, v) == COLLM_OK, "%s",
                  collm_last_error());
        if (!cases[c].needle) { // the best checkpoint travels with its state
            char ckpt[720], *bytes;
            size_t n;
            snprintf(ckpt, sizeof ckpt, "%s/stage2-resumed.gguf", dir);
            CHECK(collm_read_file(ckpt, &bytes, &n) == COLLM_OK);
            FILE *fp = fopen(out, "wb");
            CHECK(fp && fwrite(bytes, 1, n, fp) == n);
            if (fp) fclose(fp);
            free(bytes);
        }
        collm_model *m = collm_model_build(&b, ds, NULL);
        CHECK(m != NULL);
        if (!m) continue;
        t.out_path = out;
        collm_train_result res;
        int rc = collm_train(m, ds, &t, &res);
        if (!cases[c].needle) {
            CHECK_MSG(rc == COLLM_OK && res.epochs_run == 5, "%s: %s", cases[c].name, collm_last_error());
        } else {
            const char *msg = collm_last_error();
            CHECK_MSG(rc != COLLM_OK && strstr(msg, res_path) && strstr(msg, cases[c].needle), "%s: rc %d: %s",
                      cases[c].name, rc, msg);
        }
        collm_model_free(m);
    }
    collm_rec_dataset_free(ds);
}

// Copies a checkpoint with some u32 keys replaced (copy_with_u32, chained).
static int rewrite_u32_keys(const char *src, const char *dst, const char *const *keys, const uint32_t *vals, int n) {
    char tmp[2][740];
    snprintf(tmp[0], sizeof tmp[0], "%s.a", dst);
    snprintf(tmp[1], sizeof tmp[1], "%s.b", dst);
    const char *from = src;
    int rc = COLLM_OK;
    for (int k = 0; !rc && k < n; k++) {
        rc = copy_with_u32(from, tmp[k % 2], keys[k], vals[k]);
        from = tmp[k % 2];
    }
    if (!rc) rc = rename(from, dst) == 0 ? COLLM_OK : COLLM_ERR_IO;
    return rc;
}

// Issue 8: the checkpoint's CF table sizes came from its u32 keys (checked
// only by element count): keys that reshape the same number of floats (dim
// halved, rows doubled) loaded the tables wrongly. Sizes now come from the
// tensors' shapes and the keys must agree; FECE sizes cannot overflow.
static void test_crafted_checkpoint_sizes(void) {
    char src[700], dst[700];
    snprintf(src, sizeof src, "%s/stage2.gguf", dir);
    snprintf(dst, sizeof dst, "%s/crafted-cf.gguf", dir);
    collm_gguf_file *f = collm_gguf_open(src);
    CHECK_MSG(f != NULL, "%s", collm_last_error());
    if (!f) return;
    uint32_t dim = 0, nu = 0, ni = 0;
    CHECK(collm_gguf_get_u32(f, "collm.cf.dim", &dim) == COLLM_OK && collm_gguf_get_u32(f, "collm.cf.n_users", &nu) == COLLM_OK &&
          collm_gguf_get_u32(f, "collm.cf.n_items", &ni) == COLLM_OK);
    collm_gguf_close(f);
    CHECK(dim % 2 == 0);
    const char *keys[3] = {"collm.cf.dim", "collm.cf.n_users", "collm.cf.n_items"};
    uint32_t reshaped[3] = {dim / 2, nu * 2, ni * 2};
    CHECK(rewrite_u32_keys(src, dst, keys, reshaped, 3) == COLLM_OK);
    collm_model *m = collm_model_load(dst, NULL, NULL);
    CHECK_MSG(m == NULL && strstr(collm_last_error(), "disagree"), "reshaped CF keys: %s", collm_last_error());
    collm_model_free(m);
    uint32_t huge[3] = {dim, 0x7fffffffu, ni};
    CHECK(rewrite_u32_keys(src, dst, keys, huge, 3) == COLLM_OK);
    m = collm_model_load(dst, NULL, NULL);
    CHECK_MSG(m == NULL && strstr(collm_last_error(), "disagree"), "huge n_users key: %s", collm_last_error());
    collm_model_free(m);
    // unchanged keys: loads
    CHECK(rewrite_u32_keys(src, dst, keys, (uint32_t[3]){dim, nu, ni}, 3) == COLLM_OK);
    m = collm_model_load(dst, NULL, NULL);
    CHECK_MSG(m != NULL, "%s", collm_last_error());
    collm_model_free(m);
    // FECE: d_in x mid_times overflowed int (65536 x 65536 wrapped to 0)
    collm_fece_mlp mlp;
    collm_rng rng;
    collm_rng_seed(&rng, 1);
    CHECK(collm_fece_init(&mlp, 65536, 65536, 8, &rng) == COLLM_ERR_ARG && strstr(collm_last_error(), "2^31"));
    CHECK(collm_fece_init(&mlp, 65536, 32767, 65536, &rng) == COLLM_ERR_ARG);
    CHECK(collm_fece_init(&mlp, 4, 3, 8, &rng) == COLLM_OK && mlp.d_hidden == 12);
    collm_fece_free(&mlp);
}

// Copies a checkpoint with its base fingerprint keys replaced: the checksum
// as a u64 (or, malformed, a string), and the kind (NULL: no kind key, as
// checkpoints written before it).
static int rewrite_base_keys(const char *src, const char *dst, int as_string, uint64_t value, const char *kind) {
    collm_gguf_file *f;
    collm_gguf_writer *w = ckpt_copy_begin(src, "collm.base.checksum", &f); // and collm.base.checksum_kind
    int rc = !w                 ? COLLM_ERR
             : as_string        ? collm_gguf_writer_set_str(w, "collm.base.checksum", "0123456789abcdef")
                                : collm_gguf_writer_set_u64(w, "collm.base.checksum", value);
    if (!rc && kind) rc = collm_gguf_writer_set_str(w, "collm.base.checksum_kind", kind);
    return ckpt_copy_end(w, f, dst, rc);
}

// Issue 8: the base checksum hashed byte by byte (seconds for 2 GB) and a
// malformed checksum key silently skipped the check. Now XXH3-64 with its
// kind stored; checkpoints without the kind key (FNV-1a) still load; a
// malformed or unknown key is an error.
static void test_base_checksum(void) {
    char s1[700], dst[700];
    snprintf(s1, sizeof s1, "%s/stage1.gguf", dir);
    snprintf(dst, sizeof dst, "%s/checksum.gguf", dir);
    collm_gguf_file *f = collm_gguf_open(s1);
    CHECK_MSG(f != NULL, "%s", collm_last_error());
    if (!f) return;
    // the stored value: XXH3-64 of the base file, 63 bits, kind "xxh3-64"
    char *bytes;
    size_t n;
    CHECK(collm_read_file(base_path, &bytes, &n) == COLLM_OK);
    uint64_t xxh = XXH3_64bits(bytes, n) & 0x7fffffffffffffffULL, fnv = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) fnv = (fnv ^ (unsigned char)bytes[i]) * 1099511628211ULL;
    fnv &= 0x7fffffffffffffffULL;
    free(bytes);
    int64_t stored = 0;
    const char *kind = NULL;
    uint64_t len = 0;
    CHECK(collm_gguf_get_i64(f, "collm.base.checksum", &stored) == COLLM_OK && (uint64_t)stored == xxh);
    CHECK(collm_gguf_get_str(f, "collm.base.checksum_kind", &kind, &len) == COLLM_OK && len == 7 &&
          memcmp(kind, "xxh3-64", 7) == 0);
    collm_gguf_close(f);
    // a checkpoint from before the kind key: FNV-1a, still loadable; a wrong value refused
    CHECK(rewrite_base_keys(s1, dst, 0, fnv, NULL) == COLLM_OK);
    collm_model *m = collm_model_load(dst, NULL, NULL);
    CHECK_MSG(m != NULL, "legacy FNV checkpoint: %s", collm_last_error());
    collm_model_free(m);
    CHECK(rewrite_base_keys(s1, dst, 0, fnv ^ 1, NULL) == COLLM_OK);
    m = collm_model_load(dst, NULL, NULL);
    CHECK_MSG(m == NULL && strstr(collm_last_error(), "different base model") && strstr(collm_last_error(), "fnv1a-64"), "%s",
              collm_last_error());
    collm_model_free(m);
    // malformed / unknown keys are errors, not a skipped check (the other base must not be accepted)
    collm_build_options b;
    collm_build_options_default(&b);
    b.stage = 1;
    b.base_path = other_base;
    b.init_from = dst;
    collm_rec_dataset *ds = collm_rec_dataset_load(data_dir);
    CHECK(rewrite_base_keys(s1, dst, 1, 0, "xxh3-64") == COLLM_OK);
    m = collm_model_build(&b, ds, NULL);
    CHECK_MSG(m == NULL && strstr(collm_last_error(), "malformed key collm.base.checksum"), "%s", collm_last_error());
    collm_model_free(m);
    m = collm_model_load(dst, NULL, NULL);
    CHECK(m == NULL && strstr(collm_last_error(), "malformed key collm.base.checksum"));
    collm_model_free(m);
    CHECK(rewrite_base_keys(s1, dst, 0, xxh, "md5") == COLLM_OK);
    m = collm_model_build(&b, ds, NULL);
    CHECK_MSG(m == NULL && strstr(collm_last_error(), "unknown collm.base.checksum_kind 'md5'"), "%s", collm_last_error());
    collm_model_free(m);
    collm_rec_dataset_free(ds);
}

// Issue 8: a LoRA checkpoint stored its base path as given (relative to the
// working directory), so it failed from another folder. Now stored relative
// to the checkpoint's folder; a missing base names where it looked and
// --base overrides.
static void test_base_path_relative(void) {
    char s1[700], sub[700], moved[760], abs_s1[PATH_MAX], cwd[PATH_MAX];
    snprintf(s1, sizeof s1, "%s/stage1.gguf", dir);
    collm_gguf_file *f = collm_gguf_open(s1);
    CHECK(f != NULL);
    char *stored = f ? collm_gguf_get_str_dup(f, "collm.base.path") : NULL;
    CHECK_MSG(stored && strcmp(stored, "base.gguf") == 0, "stored base path '%s'", stored ? stored : "(none)");
    free(stored);
    collm_gguf_close(f);
    // from another working directory, by absolute path
    CHECK(realpath(s1, abs_s1) != NULL && getcwd(cwd, sizeof cwd) != NULL);
    CHECK(chdir("/") == 0);
    collm_model *m = collm_model_load(abs_s1, NULL, NULL);
    CHECK_MSG(m != NULL, "loading %s from /: %s", abs_s1, collm_last_error());
    collm_model_free(m);
    CHECK(chdir(cwd) == 0);
    // moved away from its base: the error says where it looked and that --base helps
    snprintf(sub, sizeof sub, "%s/moved", dir);
    collm_mkdir_p(sub);
    snprintf(moved, sizeof moved, "%s/stage1.gguf", sub);
    char *bytes;
    size_t n;
    CHECK(collm_read_file(s1, &bytes, &n) == COLLM_OK);
    FILE *fp = fopen(moved, "wb");
    CHECK(fp && fwrite(bytes, 1, n, fp) == n);
    if (fp) fclose(fp);
    free(bytes);
    m = collm_model_load(moved, NULL, NULL);
    const char *e = collm_last_error();
    CHECK_MSG(m == NULL && strstr(e, "'base.gguf'") && strstr(e, "moved/base.gguf") && strstr(e, "working directory") &&
                  strstr(e, "--base"),
              "%s", e);
    collm_model_free(m);
    m = collm_model_load(moved, base_path, NULL);
    CHECK_MSG(m != NULL, "--base overrides: %s", collm_last_error());
    collm_model_free(m);
}

static void test_bad_input(void) {
    collm_rec_dataset *ds = collm_rec_dataset_load(data_dir);
    collm_build_options b;
    collm_build_options_default(&b);
    b.stage = 2;
    b.base_path = base_path;
    CHECK(collm_model_build(&b, ds, NULL) == NULL); // stage 2 without CF vectors
    CHECK(strstr(collm_last_error(), "--cf") != NULL);
    b.base_path = "/nonexistent.gguf";
    CHECK(collm_model_build(&b, ds, NULL) == NULL);
    CHECK(strstr(collm_last_error(), "/nonexistent.gguf") != NULL);
    CHECK(collm_model_load(mf_path, NULL, NULL) == NULL); // not a collm checkpoint
    CHECK(strstr(collm_last_error(), "not a collm checkpoint") != NULL);
    collm_rec_dataset_free(ds);
}

// collm_fit_score_weight on hand-made scores: AUCs worked out by hand.
static void test_fit_score_weight(void) {
    int32_t user[6] = {1, 1, 1, 2, 2, 2};
    int8_t label[6] = {1, 0, 1, 0, 1, 0};
    collm_rec_split split = {0};
    split.n = 6;
    split.user = user;
    split.label = label;
    // the LLM orders every pair wrongly, the CF rightly: a large w wins
    float llm[6] = {0, 1, 0, 1, 0, 1}, cf[6] = {1, 0, 1, 0, 1, 0};
    const float grid[] = {0, 0.5f, 2, 8};
    float w = -1;
    double auc = -1;
    CHECK(collm_fit_score_weight(llm, cf, &split, grid, 4, &w, &auc) == COLLM_OK);
    CHECK(w == 2 && auc == 1.0); // positives score w, negatives 1: w = 0.5 gives AUC 0, w = 2 and 8 give 1
    // the LLM is right and the CF is noise: w = 0 (ties keep the smaller w)
    float llm2[6] = {3, 0, 3, 0, 3, 0}, cf2[6] = {0, 1, 0, 1, 0, 1};
    CHECK(collm_fit_score_weight(llm2, cf2, &split, grid, 4, &w, &auc) == COLLM_OK);
    CHECK(w == 0 && auc == 1.0);
    // equal AUC everywhere (cf constant): the smallest w
    float cf3[6] = {1, 1, 1, 1, 1, 1};
    CHECK(collm_fit_score_weight(llm2, cf3, &split, grid, 4, &w, &auc) == COLLM_OK && w == 0);
    const float bad[] = {-1};
    CHECK(collm_fit_score_weight(llm, cf, &split, bad, 1, &w, &auc) == COLLM_ERR_ARG);
    CHECK(collm_fit_score_weight(llm, cf, &split, grid, 0, &w, &auc) == COLLM_ERR_ARG);
}

// collm_fit_score_weights: two parts that only together order every pair
// (worked out by hand): A alone 0.625, A + B 1.0; coordinate ascent finds (1, 1).
static void test_fit_score_weights(void) {
    int32_t user[4] = {1, 1, 2, 2};
    int8_t label[4] = {1, 0, 1, 0};
    collm_rec_split split = {0};
    split.n = 4;
    split.user = user;
    split.label = label;
    float llm[4] = {0, 0, 0, 0}, a[4] = {2, 1, 0, 0}, b[4] = {0, 0, 2, 1};
    const float *parts[2] = {a, b};
    const float grid[] = {0, 1};
    float w[2] = {-1, -1};
    double auc = -1;
    CHECK(collm_fit_score_weights(llm, parts, 1, &split, grid, 2, w, &auc) == COLLM_OK);
    CHECK(w[0] == 1 && auc == 0.625);
    CHECK(collm_fit_score_weights(llm, parts, 2, &split, grid, 2, w, &auc) == COLLM_OK);
    CHECK(w[0] == 1 && w[1] == 1 && auc == 1.0);
    const float *bad_parts[2] = {a, NULL};
    CHECK(collm_fit_score_weights(llm, bad_parts, 2, &split, grid, 2, w, &auc) == COLLM_ERR_ARG);
    CHECK(collm_fit_score_weights(llm, parts, 0, &split, grid, 2, w, &auc) == COLLM_ERR_ARG);
}

// collm_score_fuse_items refuses what it cannot score, naming itself
static void test_fuse_items_args(void) {
    const int32_t items[2] = {1, 2}, his[2] = {0, 1};
    const float llm[2] = {0.5f, -1.0f};
    float out[2];
    CHECK(collm_score_fuse_items(NULL, 0, his, 2, items, 2, llm, out) == COLLM_ERR_ARG);
    CHECK(strstr(collm_last_error(), "collm_score_fuse_items") != NULL);
    CHECK(collm_score_has_fusion(NULL) == 0);
}

int main(void) {
    test_fuse_items_args();
    test_fit_score_weight();
    test_fit_score_weights();
    snprintf(dir, sizeof dir, "%s/collm", test_tmp_dir());
    snprintf(data_dir, sizeof data_dir, "%s/data", dir);
    snprintf(base_path, sizeof base_path, "%s/base.gguf", dir);
    snprintf(other_base, sizeof other_base, "%s/other.gguf", dir);
    snprintf(mf_path, sizeof mf_path, "%s/mf.gguf", dir);
    collm_mkdir_p(dir);
    test_builtin_templates();
    int fixtures_ok = fixture_tiny_llama(base_path, 1, 2, 1) == COLLM_OK;
    CHECK_MSG(fixtures_ok, "%s", collm_last_error());
    if (!fixtures_ok) return test_report(); // nothing below can run without the base model
    CHECK(fixture_tiny_llama(other_base, 1, 2, 2) == COLLM_OK);
    CHECK_MSG(fixture_synth_and_mf(data_dir, mf_path, 60, 80, 3) == COLLM_OK, "%s", collm_last_error());
    test_encode_ml1m();
    test_encode_split_pool();
    test_two_stages();
    test_history_encoder("sasrec", 16);
    test_history_encoder("din", 12);
    test_damaged_resume();
    test_crafted_checkpoint_sizes();
    test_base_checksum();
    test_base_path_relative();
    test_full_finetune();
    test_bad_input();
    return test_report();
}
