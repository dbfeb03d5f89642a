// The CoLLM recommender: assembly, encoding, scoring, checkpoints
// (see include/collm/collm.h). Training lives in collm_train.c.
#include "collm/collm.h"

#include "collm/error.h"
#include "collm/fileio.h"
#include "collm/gguf.h"
#include "llm/llm_train.h"
#include "core/ops.h"
#include "recommender/collm_internal.h"

#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

void collm_build_options_default(collm_build_options *o) {
    memset(o, 0, sizeof *o);
    o->stage = 1;
    o->lora_rank = 8;
    o->lora_alpha = 16.0f;
    o->lora_dropout = 0.05f;
    o->lora_targets = (1u << COLLM_LORA_Q) | (1u << COLLM_LORA_V);
    o->fece_mid_times = 10;
    o->seed = 42;
}

const collm_llm_model *collm_llm(const collm_model *m) { return m->llm; }

collm_llm_context *collm_llm_context_with_lora(const collm_model *m, int n_ctx, int n_batch, collm_pool *pool) {
    collm_llm_context *ctx = collm_llm_context_create(m->llm, n_ctx, n_batch, pool);
    if (ctx && m->has_lora && !m->lora_merged && collm_llm_context_set_lora(ctx, &m->lora) != COLLM_OK) {
        collm_llm_context_free(ctx);
        return NULL;
    }
    return ctx;
}
const collm_tok_vocab *collm_vocab(const collm_model *m) { return m->vocab; }
const collm_prompt_template *collm_template(const collm_model *m) { return m->tpl; }
int collm_has_slots(const collm_model *m) { return m->has_fece; }
int collm_stage(const collm_model *m) { return m->stage; }
int32_t collm_yes_token(const collm_model *m) { return m->yes_id; }

const float *collm_cf_items(const collm_model *m, int32_t *n_items, int *dim) {
    if (n_items) *n_items = m->n_cf_items;
    if (dim) *dim = m->cf_dim;
    return m->cf_items;
}

const float *collm_cf_users(const collm_model *m, int32_t *n_users, int *dim) {
    if (n_users) *n_users = m->n_cf_users;
    if (dim) *dim = m->cf_dim;
    return m->cf_users;
}

const char *collm_cf_kind(const collm_model *m) { return m->cf_kind; }

int collm_cf_history_query(const collm_model *m, int32_t user, const int32_t *his, int64_t n_his, float *out) {
    if (!m || !m->cf_enc || !out) return 0;
    if (strcmp(m->cf_kind, "sasrec") != 0 && (user < 0 || user >= collm_cf_model_n_users(m->cf_enc))) return 0;
    return collm_cf_model_history_query(m->cf_enc, user, his, n_his, out) == COLLM_OK ? 1 : 0;
}

// Identifies the base model a checkpoint was trained on: XXH3-64 over the
// mmapped file (memory speed: a 2 GB model in well under a second), or, for
// checkpoints written before the kind key, FNV-1a byte by byte (seconds).
int collm_file_checksum(const char *path, int kind, uint64_t *out) {
    collm_mapped_file map;
    int rc = collm_map_file(path, &map);
    if (rc != COLLM_OK) return rc;
    uint64_t h;
    if (kind == COLLM_BASE_HASH_XXH3) {
        h = XXH3_64bits(map.data, map.size);
    } else {
        h = 1469598103934665603ULL;
        for (size_t i = 0; i < map.size; i++) h = (h ^ map.data[i]) * 1099511628211ULL;
    }
    collm_unmap_file(&map);
    *out = h & 0x7fffffffffffffffULL; // 63 bits: the checkpoint key is read back with collm_gguf_get_i64
    return COLLM_OK;
}

#define BASE_HASH_KIND_KEY "collm.base.checksum_kind"
static const char *const base_hash_names[] = {"fnv1a-64", "xxh3-64"};

// The checkpoint's base fingerprint: collm.base.checksum (an integer key,
// required) and its kind (absent: FNV-1a, the only kind before the key). A
// present but malformed key is an error, never a skipped check.
int collm_read_base_checksum(const collm_gguf_file *f, const char *path, int *kind, uint64_t *sum) {
    int64_t v;
    if (collm_gguf_find_key(f, "collm.base.checksum") < 0)
        return collm_error(COLLM_ERR_FORMAT, "%s: missing key collm.base.checksum (the base model's fingerprint)", path);
    if (collm_gguf_get_i64(f, "collm.base.checksum", &v) != COLLM_OK || v < 0)
        return collm_error(COLLM_ERR_FORMAT, "%s: malformed key collm.base.checksum (a %s, not a 63-bit integer)", path,
                           collm_gguf_type_name(collm_gguf_kv_type(f, collm_gguf_find_key(f, "collm.base.checksum"))));
    *sum = (uint64_t)v;
    *kind = COLLM_BASE_HASH_FNV1A;
    if (collm_gguf_find_key(f, BASE_HASH_KIND_KEY) < 0) return COLLM_OK;
    const char *name;
    uint64_t len;
    if (collm_gguf_get_str(f, BASE_HASH_KIND_KEY, &name, &len) != COLLM_OK)
        return collm_error(COLLM_ERR_FORMAT, "%s: malformed key %s (not a string)", path, BASE_HASH_KIND_KEY);
    for (int k = 0; k < 2; k++)
        if (strlen(base_hash_names[k]) == len && memcmp(name, base_hash_names[k], len) == 0) {
            *kind = k;
            return COLLM_OK;
        }
    return collm_error(COLLM_ERR_FORMAT, "%s: unknown %s '%.*s' (known: xxh3-64, fnv1a-64)", path, BASE_HASH_KIND_KEY,
                       (int)(len < 64 ? len : 64), name);
}

// The folder of a file path ("." for a bare name), malloc'd.
static char *folder_of(const char *path) {
    char *copy = strdup(path), *dir = copy ? strdup(dirname(copy)) : NULL;
    free(copy);
    return dir;
}

// The base model a checkpoint names: an absolute stored path as is; a
// relative one against the checkpoint's folder (how checkpoints store it),
// then, for checkpoints written before that rule, the working directory.
// Returns a malloc'd path that exists, or NULL with an error saying where it
// looked and that --base overrides.
static char *resolve_base(const char *ckpt_path, const char *stored) {
    if (!stored || !*stored) {
        collm_error(COLLM_ERR_ARG, "%s holds no base model path: give --base", ckpt_path);
        return NULL;
    }
    if (stored[0] == '/') {
        if (access(stored, F_OK) == 0) return strdup(stored);
        collm_error(COLLM_ERR_NOT_FOUND, "%s: its base model %s does not exist (give --base to say where it is)",
                    ckpt_path, stored);
        return NULL;
    }
    char *dir = folder_of(ckpt_path);
    size_t n = (dir ? strlen(dir) : 0) + strlen(stored) + 2;
    char *beside = dir ? malloc(n) : NULL;
    if (!beside) {
        free(dir);
        collm_error(COLLM_ERR_NOMEM, "out of memory");
        return NULL;
    }
    snprintf(beside, n, "%s/%s", dir, stored);
    free(dir);
    if (access(beside, F_OK) == 0) return beside;
    if (access(stored, F_OK) == 0) {
        free(beside);
        return strdup(stored);
    }
    collm_error(COLLM_ERR_NOT_FOUND,
                "%s: its base model '%s' was found neither beside the checkpoint (%s) nor in the working directory; "
                "give --base to say where it is",
                ckpt_path, stored, beside);
    free(beside);
    return NULL;
}

// `target` relative to the folder `from_dir` (both absolute, normalised), or
// NULL when either is not absolute. "a/b/c" from "a/x" is "../b/c".
static char *relative_to(const char *target, const char *from_dir) {
    if (target[0] != '/' || from_dir[0] != '/') return NULL;
    size_t common = 0, i = 0;
    // the longest common prefix ending at a '/' boundary
    for (;; i++) {
        char a = target[i], b = from_dir[i];
        if ((a == '/' || a == '\0') && (b == '/' || b == '\0')) common = i;
        if (a != b || a == '\0' || b == '\0') break;
    }
    int ups = 0;
    for (const char *p = from_dir + common; *p; p++)
        if (*p == '/' && p[1] && p[1] != '/') ups++;
    const char *rest = target + common;
    while (*rest == '/') rest++;
    char *out = malloc((size_t)ups * 3 + strlen(rest) + 2);
    if (!out) return NULL;
    char *o = out;
    for (int k = 0; k < ups; k++) memcpy(o, "../", 3), o += 3;
    strcpy(o, rest);
    return out;
}

// ---------------------------------------------------------------------------
// assembly

static int find_yes_token(collm_model *m) {
    if (m->answer[0]) {
        // a given answer text: the token that is exactly it (SPM spells a
        // leading space "▁"), else its encoding, which must be one token
        const char *a = m->answer;
        int32_t id = collm_tok_find(m->vocab, a);
        if (id < 0 && collm_tok_model_type(m->vocab) == COLLM_TOK_MODEL_SPM) {
            char spm[sizeof m->answer * 3];
            size_t o = 0;
            for (const char *p = a; *p && o + 4 < sizeof spm; p++)
                if (*p == ' ') memcpy(spm + o, "\xe2\x96\x81", 3), o += 3;
                else spm[o++] = *p;
            spm[o] = '\0';
            id = collm_tok_find(m->vocab, spm);
        }
        if (id < 0) {
            int32_t ids[16];
            int n = collm_tok_encode(m->vocab, a, strlen(a), 0, ids, 16);
            if (n == 1) id = ids[0];
            else if (n > 1) {
                char list[256] = "";
                for (int i = 0; i < n && i < 8; i++) {
                    const char *t = collm_tok_token_text(m->vocab, ids[i]);
                    size_t l = strlen(list);
                    snprintf(list + l, sizeof list - l, "%s'%s'", i ? " " : "", t ? t : "?");
                }
                return collm_error(COLLM_ERR_ARG,
                                   "--answer '%s' is %d tokens (%s): the score is one token's logit; give a text the "
                                   "vocabulary holds as one token (e.g. 'Yes')",
                                   a, n, list);
            }
        }
        if (id < 0) return collm_error(COLLM_ERR_ARG, "--answer '%s': the vocabulary has no token for it", a);
        m->yes_id = id;
        return COLLM_OK;
    }
    // SPM vocabs: "▁Yes" (3869 in Llama 2); BPE: the first token of "Yes" (method.md §9)
    int32_t id = collm_tok_find(m->vocab, "\xe2\x96\x81Yes");
    if (id < 0) {
        int32_t ids[8];
        int n = collm_tok_encode(m->vocab, "Yes", 3, 0, ids, 8);
        if (n >= 1) id = ids[0];
    }
    if (id < 0) return collm_error(COLLM_ERR_FORMAT, "the vocabulary has no token for \"Yes\"");
    m->yes_id = id;
    return COLLM_OK;
}

static int set_answer(collm_model *m, const char *answer) {
    if (!answer) return COLLM_OK;
    if (!answer[0] || strlen(answer) >= sizeof m->answer || strchr(answer, '\n'))
        return collm_error(COLLM_ERR_ARG, "--answer must be 1..%zu bytes on one line", sizeof m->answer - 1);
    snprintf(m->answer, sizeof m->answer, "%s", answer);
    return COLLM_OK;
}

// The template: a built-in by name, or a file (checked: known placeholders,
// <TargetItemTitle> present). Without one, the stage's built-in for the
// dataset's item noun (the movie template reworded for other nouns).
static int set_template(collm_model *m, const char *path, int stage, const collm_rec_dataset *ds) {
    int is_book = m->is_book;
    if (path) {
        const char *line = collm_prompt_builtin_line(path);
        if (line) {
            m->tpl = collm_prompt_template_from_string(line);
        } else {
            m->tpl = collm_prompt_template_load(path);
            if (m->tpl && collm_prompt_template_check(m->tpl->line, path) != COLLM_OK) {
                collm_prompt_template_free(m->tpl);
                m->tpl = NULL;
                if (strchr(path, '/') == NULL && strchr(path, '.') == NULL)
                    collm_error_prefix(COLLM_ERR_FORMAT, "(built-in templates: collm help templates)");
            }
        }
    } else {
        const char *noun = ds && ds->item_noun[0] ? ds->item_noun : is_book ? "book" : "movie";
        const char *nouns = ds && ds->item_nouns[0] ? ds->item_nouns : is_book ? "books" : "movies";
        int reword = strcmp(noun, "movie") != 0 && strcmp(noun, "book") != 0;
        char name[64];
        snprintf(name, sizeof name, "%s_%s", stage >= 2 ? "collm" : "tallrec",
                 strcmp(noun, "book") == 0 ? "book" : "movie");
        const char *line = collm_prompt_builtin_line(name);
        if (reword) {
            char *text = collm_prompt_with_noun(line, noun, nouns);
            m->tpl = text ? collm_prompt_template_from_string(text) : NULL;
            free(text);
        } else {
            m->tpl = collm_prompt_template_from_string(line);
        }
    }
    if (!m->tpl) return COLLM_ERR;
    if (is_book) m->tpl->his_has_sentinel = 0;
    return COLLM_OK;
}

int collm_model_check_dataset(const collm_model *m, const collm_rec_dataset *ds, const char *ckpt_path,
                              int32_t *extra_items, int32_t *extra_users) {
    if (extra_items) *extra_items = 0;
    if (extra_users) *extra_users = 0;
    if (!m->cf_items) return COLLM_OK;
    const char *what = ckpt_path ? ckpt_path : "the checkpoint";
    int users_known = m->n_cf_users > 0; // a history encoder has no user table
    if (ds->n_items < m->n_cf_items || (users_known && ds->n_users < m->n_cf_users))
        return collm_error(COLLM_ERR_ARG,
                           "%s was trained with %d items and %d users, but the dataset %s has %d items and %d users: "
                           "not the dataset it was trained on (give the --data it was trained with)",
                           what, m->n_cf_items, m->n_cf_users, ds->dir ? ds->dir : "", ds->n_items, ds->n_users);
    if (extra_items) *extra_items = ds->n_items - m->n_cf_items;
    if (extra_users && users_known) *extra_users = ds->n_users - m->n_cf_users;
    return COLLM_OK;
}

// Copies the CF tables out of a CF model (replacing any there were). A
// history encoder has no user table: m keeps the model itself (cf_enc takes
// ownership of cf, which the caller must then not free).
static int take_cf_tables(collm_model *m, collm_cf_model *cf) {
    free(m->cf_users);
    free(m->cf_items);
    collm_cf_model_free(m->cf_enc);
    m->cf_users = m->cf_items = NULL;
    m->cf_enc = NULL;
    snprintf(m->cf_kind, sizeof m->cf_kind, "%s", collm_cf_model_kind(cf));
    m->cf_dim = collm_cf_model_dim(cf);
    m->n_cf_users = collm_cf_model_uses_history(cf) ? 0 : collm_cf_model_n_users(cf);
    m->n_cf_items = collm_cf_model_n_items(cf);
    if (collm_cf_model_uses_history(cf)) m->cf_enc = cf;
    else m->cf_users = collm_malloc(((size_t)m->n_cf_users * m->cf_dim + 1) * sizeof(float));
    m->cf_items = collm_malloc((size_t)m->n_cf_items * m->cf_dim * sizeof(float));
    if ((!m->cf_enc && !m->cf_users) || !m->cf_items) return COLLM_ERR_NOMEM;
    for (int32_t u = 0; u < m->n_cf_users; u++)
        if (collm_cf_model_user_vector(cf, u, m->cf_users + (int64_t)u * m->cf_dim) != COLLM_OK) return COLLM_ERR;
    for (int32_t i = 0; i < m->n_cf_items; i++)
        if (collm_cf_model_item_vector(cf, i, m->cf_items + (int64_t)i * m->cf_dim) != COLLM_OK) return COLLM_ERR;
    return COLLM_OK;
}

static int lora_dims(const collm_llm_hparams *hp, int in[COLLM_LORA_N_TARGETS], int out[COLLM_LORA_N_TARGETS]) {
    int q = hp->n_head * hp->head_dim, kv = hp->n_head_kv * hp->head_dim;
    int ins[COLLM_LORA_N_TARGETS] = {hp->n_embd, hp->n_embd, hp->n_embd, q, hp->n_embd, hp->n_embd, hp->n_ff};
    int outs[COLLM_LORA_N_TARGETS] = {q, kv, kv, hp->n_embd, hp->n_ff, hp->n_ff, hp->n_embd};
    memcpy(in, ins, sizeof ins);
    memcpy(out, outs, sizeof outs);
    return COLLM_OK;
}

// Base weight matrix of a LoRA target.
float *collm_lora_base_weight(collm_llm_model *llm, int layer, collm_lora_target t) {
    collm_llm_layer_weights *w = &llm->layers[layer];
    float *mats[COLLM_LORA_N_TARGETS] = {w->wq, w->wk, w->wv, w->wo, w->w_gate, w->w_up, w->w_down};
    return mats[t];
}

// Reads a tensor of a checkpoint into dst (n floats), checking its size and
// that every value is finite: collm never writes a NaN or infinite weight (a
// diverged run stops before saving), so one is damage, and loaded it would
// turn every score it touches into NaN (eval printed AUC nan and exited 0).
int collm_read_tensor(const collm_gguf_file *f, const char *path, const char *name, float *dst, int64_t n) {
    const collm_gguf_tensor_info *t = collm_gguf_find_tensor(f, name);
    if (!t) return collm_error(COLLM_ERR_FORMAT, "%s: missing tensor '%s'", path, name);
    if (collm_gguf_tensor_n_elements(t) != n)
        return collm_error(COLLM_ERR_FORMAT, "%s: tensor '%s' has %lld elements, expected %lld", path, name,
                           (long long)collm_gguf_tensor_n_elements(t), (long long)n);
    int rc = collm_gguf_tensor_to_f32(t, dst);
    if (rc != COLLM_OK) return collm_error_prefix(rc, "%s: tensor '%s'", path, name);
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(dst[i]))
            return collm_error(COLLM_ERR_FORMAT, "%s: tensor '%s' element %lld is %g (weights must be finite)", path,
                               name, (long long)i, dst[i]);
    return COLLM_OK;
}

// Checks that a checkpoint tensor exists with n elements (n from the keys),
// before anything is allocated from those keys: a crafted key then cannot
// ask for more memory than the file's own tensors hold.
static int check_tensor_size(const collm_gguf_file *f, const char *path, const char *name, int64_t n) {
    const collm_gguf_tensor_info *t = collm_gguf_find_tensor(f, name);
    if (!t) return collm_error(COLLM_ERR_FORMAT, "%s: missing tensor '%s'", path, name);
    if (collm_gguf_tensor_n_elements(t) != n)
        return collm_error(COLLM_ERR_FORMAT, "%s: tensor '%s' has %lld elements, but the checkpoint's keys give %lld",
                           path, name, (long long)collm_gguf_tensor_n_elements(t), (long long)n);
    return COLLM_OK;
}

// A CF table: a 2-D tensor (dim, rows) with 1 <= dim <= 65536 and 1 <= rows <= INT32_MAX.
static int table_shape(const collm_gguf_file *f, const char *path, const char *name, int64_t ne[2]) {
    const collm_gguf_tensor_info *t = collm_gguf_find_tensor(f, name);
    if (!t) return collm_error(COLLM_ERR_FORMAT, "%s: missing tensor '%s'", path, name);
    if (t->n_dims != 2 || t->ne[0] < 1 || t->ne[0] > 65536 || t->ne[1] < 1 || t->ne[1] > INT32_MAX)
        return collm_error(COLLM_ERR_FORMAT, "%s: tensor '%s' must be (dim <= 65536, rows < 2^31), not %d-D %lld x %lld",
                           path, name, t->n_dims, (long long)t->ne[0], (long long)t->ne[1]);
    ne[0] = t->ne[0];
    ne[1] = t->ne[1];
    return COLLM_OK;
}

static int get_u32_or(const collm_gguf_file *f, const char *key, uint32_t def, uint32_t *out) {
    if (collm_gguf_find_key(f, key) < 0) {
        *out = def;
        return COLLM_OK;
    }
    return collm_gguf_get_u32(f, key, out);
}

static int get_f32_or(const collm_gguf_file *f, const char *key, float def, float *out) {
    if (collm_gguf_find_key(f, key) < 0) {
        *out = def;
        return COLLM_OK;
    }
    return collm_gguf_get_f32(f, key, out);
}

// Loads the parts a checkpoint holds into m (the LLM must already be there
// unless the checkpoint holds it). merge_lora: fold the adapter into the
// weights (it then stays in m->lora for saving, marked merged).
static int load_checkpoint_parts(collm_model *m, const collm_gguf_file *f, const char *path, int merge_lora) {
    uint32_t rank = 0, targets = 0, fece_in = 0, fece_hidden = 0, fece_out = 0, cf_dim = 0, n_users = 0, n_items = 0;
    float alpha = 16, dropout = 0;
    int rc;
    if ((rc = get_u32_or(f, "collm.lora.rank", 0, &rank)) || (rc = get_u32_or(f, "collm.lora.targets", 0, &targets)) ||
        (rc = get_f32_or(f, "collm.lora.alpha", 16, &alpha)) || (rc = get_f32_or(f, "collm.lora.dropout", 0, &dropout)) ||
        (rc = get_u32_or(f, "collm.fece.d_in", 0, &fece_in)) || (rc = get_u32_or(f, "collm.fece.d_hidden", 0, &fece_hidden)) ||
        (rc = get_u32_or(f, "collm.fece.d_out", 0, &fece_out)) || (rc = get_u32_or(f, "collm.cf.dim", 0, &cf_dim)) ||
        (rc = get_u32_or(f, "collm.cf.n_users", 0, &n_users)) || (rc = get_u32_or(f, "collm.cf.n_items", 0, &n_items)))
        return collm_error_prefix(rc, "%s", path);
    const collm_llm_hparams *hp = &m->llm->hp;
    if (rank > 0) {
        int in[COLLM_LORA_N_TARGETS], out[COLLM_LORA_N_TARGETS];
        lora_dims(hp, in, out);
        if (rank > INT32_MAX || (targets & ~((1u << COLLM_LORA_N_TARGETS) - 1)))
            return collm_error(COLLM_ERR_FORMAT, "%s: bad LoRA rank %u or targets 0x%x", path, rank, targets);
        char name[96];
        for (int l = 0; l < hp->n_layer; l++)
            for (int t = 0; t < COLLM_LORA_N_TARGETS; t++) {
                if (!(targets >> t & 1)) continue;
                snprintf(name, sizeof name, "blk.%d.%s.weight.lora_a", l, collm_lora_target_gguf_name((collm_lora_target)t));
                if ((rc = check_tensor_size(f, path, name, (int64_t)rank * in[t]))) return rc;
                snprintf(name, sizeof name, "blk.%d.%s.weight.lora_b", l, collm_lora_target_gguf_name((collm_lora_target)t));
                if ((rc = check_tensor_size(f, path, name, (int64_t)out[t] * rank))) return rc;
            }
        collm_rng rng;
        collm_rng_seed(&rng, 0);
        if ((rc = collm_lora_init(&m->lora, hp->n_layer, in, out, (int)rank, alpha, dropout, targets, &rng))) return rc;
        m->has_lora = 1;
        for (int l = 0; l < hp->n_layer; l++)
            for (int t = 0; t < COLLM_LORA_N_TARGETS; t++) {
                collm_lora_pair *p = collm_lora_get(&m->lora, l, (collm_lora_target)t);
                if (!p) continue;
                snprintf(name, sizeof name, "blk.%d.%s.weight.lora_a", l, collm_lora_target_gguf_name((collm_lora_target)t));
                if ((rc = collm_read_tensor(f, path, name, p->a, (int64_t)p->rank * p->in))) return rc;
                snprintf(name, sizeof name, "blk.%d.%s.weight.lora_b", l, collm_lora_target_gguf_name((collm_lora_target)t));
                if ((rc = collm_read_tensor(f, path, name, p->b, (int64_t)p->out * p->rank))) return rc;
            }
        if (merge_lora && collm_llm_model_is_quantised(m->llm)) {
            m->lora_frozen = 1; // a quantised base stays as mapped: the adapter runs beside it
        } else if (merge_lora) {
            for (int l = 0; l < hp->n_layer; l++)
                for (int t = 0; t < COLLM_LORA_N_TARGETS; t++) {
                    collm_lora_pair *p = collm_lora_get(&m->lora, l, (collm_lora_target)t);
                    if (p) collm_lora_merge(p, collm_lora_scale(&m->lora), collm_lora_base_weight(m->llm, l, (collm_lora_target)t));
                }
            m->lora_merged = 1;
        }
    }
    // The CF model's kind (recorded since the encoders beyond MF); a history
    // encoder (SASRec, DIN) is embedded whole, its item table beside it.
    const char *kind_name;
    uint64_t kind_len;
    if (collm_gguf_find_key(f, "collm.cf.kind") >= 0) {
        if ((rc = collm_gguf_get_str(f, "collm.cf.kind", &kind_name, &kind_len)) || kind_len >= sizeof m->cf_kind)
            return collm_error(COLLM_ERR_FORMAT, "%s: bad key collm.cf.kind", path);
        memcpy(m->cf_kind, kind_name, (size_t)kind_len);
        m->cf_kind[kind_len] = 0;
        if (collm_cf_kind_uses_history(m->cf_kind) == 1) {
            collm_cf_model *cf = collm_cf_model_read(f, path);
            if (!cf) return COLLM_ERR_FORMAT; // error set
            rc = take_cf_tables(m, cf);
            if (m->cf_enc != cf) collm_cf_model_free(cf);
            if (rc) return rc;
        }
    }
    if (!m->cf_enc && (cf_dim > 0 || collm_gguf_find_tensor(f, "cf.user_embd") || collm_gguf_find_tensor(f, "cf.item_embd"))) {
        // The tables' sizes come from the tensors' shapes (the data the file
        // really holds: in bounds and not overlapping), and the keys must agree.
        int64_t ne_u[2], ne_i[2];
        if ((rc = table_shape(f, path, "cf.user_embd", ne_u)) || (rc = table_shape(f, path, "cf.item_embd", ne_i)))
            return rc;
        if (ne_u[0] != ne_i[0] || ne_u[0] != (int64_t)cf_dim || ne_u[1] != (int64_t)n_users || ne_i[1] != (int64_t)n_items)
            return collm_error(COLLM_ERR_FORMAT,
                               "%s: the CF tables' shapes (cf.user_embd %lld x %lld, cf.item_embd %lld x %lld) disagree "
                               "with the keys (collm.cf.dim %u, n_users %u, n_items %u)",
                               path, (long long)ne_u[1], (long long)ne_u[0], (long long)ne_i[1], (long long)ne_i[0],
                               cf_dim, n_users, n_items);
        m->cf_dim = (int)ne_u[0];
        m->n_cf_users = (int32_t)ne_u[1];
        m->n_cf_items = (int32_t)ne_i[1];
        m->cf_users = collm_malloc((size_t)(ne_u[0] * ne_u[1]) * sizeof(float));
        m->cf_items = collm_malloc((size_t)(ne_i[0] * ne_i[1]) * sizeof(float));
        if (!m->cf_users || !m->cf_items) return COLLM_ERR_NOMEM;
        if ((rc = collm_read_tensor(f, path, "cf.user_embd", m->cf_users, ne_u[0] * ne_u[1])) ||
            (rc = collm_read_tensor(f, path, "cf.item_embd", m->cf_items, ne_i[0] * ne_i[1])))
            return rc;
    }
    if (fece_in > 0) {
        if ((int)fece_out != hp->n_embd)
            return collm_error(COLLM_ERR_FORMAT, "%s: FECE output %u does not match the model's n_embd %d", path,
                               fece_out, hp->n_embd);
        if (fece_hidden % fece_in != 0 || fece_in > INT32_MAX || fece_hidden > INT32_MAX)
            return collm_error(COLLM_ERR_FORMAT, "%s: FECE hidden size %u is not a multiple of %u", path, fece_hidden,
                               fece_in);
        if (m->cf_items && (int64_t)fece_in != m->cf_dim)
            return collm_error(COLLM_ERR_FORMAT, "%s: the FECE mapping takes %u-d vectors but the CF tables are %d-d",
                               path, fece_in, m->cf_dim);
        if ((rc = check_tensor_size(f, path, "fece.w1", (int64_t)fece_hidden * fece_in)) ||
            (rc = check_tensor_size(f, path, "fece.w2", (int64_t)fece_out * fece_hidden)))
            return rc;
        collm_rng rng;
        collm_rng_seed(&rng, 0);
        if ((rc = collm_fece_init(&m->fece, (int)fece_in, (int)(fece_hidden / fece_in), (int)fece_out, &rng))) return rc;
        m->has_fece = 1;
        if ((rc = collm_read_tensor(f, path, "fece.w1", m->fece.w1, (int64_t)fece_hidden * fece_in)) ||
            (rc = collm_read_tensor(f, path, "fece.b1", m->fece.b1, fece_hidden)) ||
            (rc = collm_read_tensor(f, path, "fece.w2", m->fece.w2, (int64_t)fece_out * fece_hidden)) ||
            (rc = collm_read_tensor(f, path, "fece.b2", m->fece.b2, fece_out)))
            return rc;
    }
    return COLLM_OK;
}

static collm_model *model_alloc(collm_pool *pool) {
    collm_model *m = collm_calloc(1, sizeof *m);
    if (m) m->pool = pool;
    return m;
}

// Opens the base model; with a checkpoint (ckpt_path), its fingerprint must
// match the checkpoint's (kind, expected). The model keeps the XXH3 one.
// The LLM and its tokenizer, both from path. Every id the tokenizer can
// produce (the answer token included) indexes token_embd and the logits, so
// a vocabulary larger than the model's rows (a tokenizer taken from another
// model, an edited vocab_size) is refused here, naming the file, rather than
// failing later in the trainer or the forward pass with no file named.
static int load_llm_and_vocab(collm_model *m, const char *path) {
    m->llm = collm_llm_model_load(path);
    if (!m->llm) return COLLM_ERR;
    m->vocab = collm_tok_load_path(path);
    if (!m->vocab) return COLLM_ERR;
    const int n_tok = collm_tok_n_vocab(m->vocab), n_rows = m->llm->hp.n_vocab;
    if (n_tok > n_rows)
        return collm_error(COLLM_ERR_FORMAT,
                           "%s: the tokenizer has %d tokens but the model only %d (token_embd.weight rows): ids %d.. "
                           "would have no embedding (a tokenizer from another model?)",
                           path, n_tok, n_rows, n_rows);
    return COLLM_OK;
}

static int open_base(collm_model *m, const char *base_path, int kind, uint64_t expected, const char *ckpt_path) {
    uint64_t sum;
    int rc = collm_file_checksum(base_path, COLLM_BASE_HASH_XXH3, &sum);
    if (rc != COLLM_OK) return rc;
    if (ckpt_path) {
        uint64_t check = sum;
        if (kind != COLLM_BASE_HASH_XXH3 && (rc = collm_file_checksum(base_path, kind, &check))) return rc;
        if (check != expected)
            return collm_error(COLLM_ERR_ARG,
                               "%s was trained on a different base model: %s has %s checksum %016llx, the checkpoint "
                               "expects %016llx",
                               ckpt_path, base_path, base_hash_names[kind], (unsigned long long)check,
                               (unsigned long long)expected);
    }
    m->base_checksum = sum;
    m->base_hash_kind = COLLM_BASE_HASH_XXH3;
    char *abs = realpath(base_path, NULL);
    m->base_path = abs ? abs : strdup(base_path);
    m->vocab_path = strdup(m->base_path ? m->base_path : base_path);
    if (!m->base_path || !m->vocab_path) return collm_error(COLLM_ERR_NOMEM, "out of memory");
    return load_llm_and_vocab(m, base_path);
}

collm_model *collm_model_build(const collm_build_options *o, const collm_rec_dataset *ds, collm_pool *pool) {
    collm_model *m = model_alloc(pool);
    if (!m) return NULL;
    m->stage = o->stage;
    m->seed = o->seed;
    m->is_book = ds ? ds->is_book : 0;
    // recorded in the checkpoint (collm.train.cf / .init_from) when it is trained
    if ((o->cf_path && !(m->train_cf_path = strdup(o->cf_path))) ||
        (o->init_from && !(m->train_init_from = strdup(o->init_from)))) {
        collm_error(COLLM_ERR_NOMEM, "out of memory");
        collm_model_free(m);
        return NULL;
    }
    collm_gguf_file *init = NULL;
    int rc = COLLM_OK;
    collm_rng rng;
    collm_rng_seed(&rng, o->seed);
    if (o->init_from) {
        init = collm_gguf_open(o->init_from);
        if (!init) goto fail;
        uint32_t init_full = 0;
        if ((rc = get_u32_or(init, "collm.full_model", 0, &init_full))) goto fail;
        const char *stored_base = NULL;
        uint64_t len = 0;
        char *stored = NULL;
        if (collm_gguf_find_key(init, "collm.base.path") >= 0 && collm_gguf_get_str(init, "collm.base.path", &stored_base, &len) == COLLM_OK)
            stored = strndup(stored_base, len);
        int kind;
        uint64_t expected;
        if ((rc = collm_read_base_checksum(init, o->init_from, &kind, &expected))) {
            free(stored);
            goto fail;
        }
        if (init_full) {
            // the previous stage fine-tuned the LLM: the checkpoint is the model
            if (o->base_path) {
                free(stored);
                collm_error(COLLM_ERR_ARG, "%s holds the whole fine-tuned model: --base %s would not be used (drop it)",
                            o->init_from, o->base_path);
                goto fail;
            }
            if (load_llm_and_vocab(m, o->init_from)) {
                free(stored);
                goto fail;
            }
            m->base_path = stored ? stored : strdup("");
            m->vocab_path = strdup(o->init_from);
            m->base_checksum = expected;
            m->base_hash_kind = kind;
            if (!m->llm || !m->vocab || !m->base_path || !m->vocab_path) goto fail;
        } else {
            char *base = o->base_path ? strdup(o->base_path) : resolve_base(o->init_from, stored);
            free(stored);
            if (!base) goto fail;
            rc = open_base(m, base, kind, expected, o->init_from);
            free(base);
            if (rc) goto fail;
        }
        m->full_model_in_ckpt = (int)init_full;
        if ((rc = load_checkpoint_parts(m, init, o->init_from, 1))) goto fail;
    } else {
        if (!o->base_path) {
            collm_error(COLLM_ERR_ARG, "no base model: give --base M.gguf");
            goto fail;
        }
        if ((rc = open_base(m, o->base_path, COLLM_BASE_HASH_XXH3, 0, NULL))) goto fail;
    }
    const collm_llm_hparams *hp = &m->llm->hp;
    m->full_finetune = o->full_finetune;
    if (m->full_finetune) m->full_model_in_ckpt = 1;
    // a new LoRA only for a stage that trains one (stage 1 without full fine-tuning)
    if (!m->has_lora && o->stage == 1 && !o->full_finetune && o->lora_rank > 0) {
        int in[COLLM_LORA_N_TARGETS], out[COLLM_LORA_N_TARGETS];
        lora_dims(hp, in, out);
        if ((rc = collm_lora_init(&m->lora, hp->n_layer, in, out, o->lora_rank, o->lora_alpha, o->lora_dropout,
                            o->lora_targets, &rng)))
            goto fail;
        m->has_lora = 1;
    }
    if (o->cf_path) {
        collm_cf_model *cf = collm_cf_model_load(o->cf_path);
        if (!cf) goto fail;
        rc = take_cf_tables(m, cf);
        if (m->cf_enc != cf) collm_cf_model_free(cf);
        if (rc) goto fail;
    }
    if (ds && collm_model_check_dataset(m, ds, o->cf_path ? o->cf_path : o->init_from, NULL, NULL) != COLLM_OK)
        goto fail;
    if (o->stage >= 2 && !m->cf_items) {
        collm_error(COLLM_ERR_ARG, "stage 2 needs collaborative vectors: give --cf mf.gguf");
        goto fail;
    }
    if (o->stage >= 2 && !m->has_fece) {
        // PyTorch-default init from its own seed (method.md §5: seed 42)
        collm_rng fece_rng;
        collm_rng_seed(&fece_rng, o->seed + 1);
        if ((rc = collm_fece_init(&m->fece, m->cf_dim, o->fece_mid_times, hp->n_embd, &fece_rng))) goto fail;
        m->has_fece = 1;
    }
    if (m->has_fece && m->fece.d_in != m->cf_dim) {
        collm_error(COLLM_ERR_ARG, "the FECE mapping takes %d-d vectors but the CF model has %d", m->fece.d_in, m->cf_dim);
        goto fail;
    }
    if ((rc = set_template(m, o->template_path, o->stage, ds))) goto fail;
    if (o->answer) {
        if ((rc = set_answer(m, o->answer))) goto fail;
    } else if (init && collm_gguf_find_key(init, "collm.answer") >= 0) {
        char *a = collm_gguf_get_str_dup(init, "collm.answer"); // the previous stage's answer
        rc = a ? set_answer(m, a) : COLLM_ERR;
        free(a);
        if (rc) goto fail;
    }
    if ((rc = find_yes_token(m))) goto fail;
    collm_gguf_close(init);
    return m;
fail:
    collm_gguf_close(init);
    collm_model_free(m);
    return NULL;
}

collm_model *collm_model_load(const char *ckpt_path, const char *base_override, collm_pool *pool) {
    collm_gguf_file *f = collm_gguf_open(ckpt_path);
    if (!f) return NULL;
    collm_model *m = model_alloc(pool);
    if (!m) {
        collm_gguf_close(f);
        return NULL;
    }
    uint32_t stage = 0, full = 0, is_book = 0;
    uint64_t sum = 0;
    int kind = 0, rc;
    if ((rc = collm_gguf_get_u32(f, "collm.stage", &stage)) || (rc = get_u32_or(f, "collm.full_model", 0, &full)) ||
        (rc = get_u32_or(f, "collm.is_book", 0, &is_book))) {
        collm_error_prefix(rc, "%s: not a collm checkpoint", ckpt_path);
        goto fail;
    }
    if ((rc = collm_read_base_checksum(f, ckpt_path, &kind, &sum))) goto fail;
    m->stage = (int)stage;
    m->is_book = (int)is_book;
    char *stored_base = collm_gguf_get_str_dup(f, "collm.base.path");
    if (full) {
        // the checkpoint is the model: a --base would silently be ignored
        if (base_override) {
            free(stored_base);
            collm_error(COLLM_ERR_ARG, "%s holds the whole fine-tuned model: --base %s would not be used (drop it)",
                        ckpt_path, base_override);
            goto fail;
        }
        if (load_llm_and_vocab(m, ckpt_path)) {
            free(stored_base);
            goto fail;
        }
        m->base_path = stored_base ? stored_base : strdup("");
        m->vocab_path = strdup(ckpt_path);
        m->base_checksum = sum;
        m->base_hash_kind = kind;
        m->full_model_in_ckpt = 1;
        if (!m->llm || !m->vocab || !m->base_path || !m->vocab_path) goto fail;
    } else {
        char *base = base_override ? strdup(base_override) : resolve_base(ckpt_path, stored_base);
        free(stored_base);
        if (!base) goto fail;
        rc = open_base(m, base, kind, sum, ckpt_path);
        free(base);
        if (rc) goto fail;
    }
    if ((rc = load_checkpoint_parts(m, f, ckpt_path, 1))) goto fail;
    char *line = collm_gguf_get_str_dup(f, "collm.template");
    if (!line) {
        collm_error(COLLM_ERR_FORMAT, "%s: missing key collm.template", ckpt_path);
        goto fail;
    }
    m->tpl = collm_prompt_template_from_string(line);
    free(line);
    if (!m->tpl) goto fail;
    if (m->is_book) m->tpl->his_has_sentinel = 0;
    if (collm_gguf_find_key(f, "collm.answer") >= 0) {
        char *a = collm_gguf_get_str_dup(f, "collm.answer");
        rc = a ? set_answer(m, a) : COLLM_ERR;
        free(a);
        if (rc) goto fail;
    }
    if ((rc = find_yes_token(m))) goto fail;
    if (collm_gguf_find_key(f, "collm.answer_token") >= 0) {
        // the token the checkpoint was trained to answer with
        uint32_t id;
        if ((rc = collm_gguf_get_u32(f, "collm.answer_token", &id))) goto fail;
        if (id >= (uint32_t)collm_tok_n_vocab(m->vocab)) {
            collm_error(COLLM_ERR_FORMAT, "%s: collm.answer_token %u is outside the vocabulary (%d tokens)", ckpt_path,
                        id, collm_tok_n_vocab(m->vocab));
            goto fail;
        }
        m->yes_id = (int32_t)id;
    }
    m->rerank_lambda = COLLM_RERANK_LAMBDA_DEFAULT;
    m->rerank_pop = COLLM_RERANK_POPULARITY_DEFAULT;
    {
        const char *keys[2] = {COLLM_RERANK_LAMBDA_KEY, COLLM_RERANK_POPULARITY_KEY};
        float *dst[2] = {&m->rerank_lambda, &m->rerank_pop};
        for (int k = 0; k < 2; k++) {
            if (collm_gguf_find_key(f, keys[k]) < 0) continue;
            if ((rc = collm_gguf_get_f32(f, keys[k], dst[k]))) goto fail;
            if (!(*dst[k] >= 0 && *dst[k] <= COLLM_RERANK_WEIGHT_MAX)) {
                collm_error(COLLM_ERR_FORMAT, "%s: %s = %g is outside [0, %g]", ckpt_path, keys[k], *dst[k],
                            COLLM_RERANK_WEIGHT_MAX);
                goto fail;
            }
            m->has_rerank = 1;
        }
    }
    if (collm_gguf_find_key(f, COLLM_SCORE_CF_WEIGHT_KEY) >= 0) {
        float w;
        if ((rc = collm_gguf_get_f32(f, COLLM_SCORE_CF_WEIGHT_KEY, &w))) goto fail;
        if (!(w >= 0 && w <= COLLM_SCORE_CF_WEIGHT_MAX) || (w > 0 && !m->cf_items)) {
            collm_error(COLLM_ERR_FORMAT, "%s: %s = %g is outside [0, %g] or the checkpoint has no CF tables", ckpt_path,
                        COLLM_SCORE_CF_WEIGHT_KEY, w, COLLM_SCORE_CF_WEIGHT_MAX);
            goto fail;
        }
        m->score_cf_weight = w;
        m->has_score_cf_weight = 1;
    }
    if ((rc = collm_score_extras_read(m, f, ckpt_path))) goto fail;
    collm_gguf_close(f);
    return m;
fail:
    collm_gguf_close(f);
    collm_model_free(m);
    return NULL;
}

void collm_model_free(collm_model *m) {
    if (!m) return;
    collm_llm_trainer_free(m->scorer);
    collm_llm_model_free(m->llm);
    collm_tok_free(m->vocab);
    collm_prompt_template_free(m->tpl);
    if (m->has_lora) collm_lora_free(&m->lora);
    if (m->has_fece) collm_fece_free(&m->fece);
    collm_score_extras_free(m);
    free(m->cf_users);
    free(m->cf_items);
    collm_cf_model_free(m->cf_enc);
    free(m->base_path);
    free(m->vocab_path);
    free(m->train_eval_split);
    free(m->train_data);
    free(m->train_cf_path);
    free(m->train_init_from);
    free(m);
}

// ---------------------------------------------------------------------------
// encoding: text pieces between slot markers are tokenized separately, as
// transformers' slow LlamaTokenizer does around "<unk>" (method.md §3.2)

int collm_encode(const collm_model *m, const collm_rec_items *items, int32_t user, const int32_t *his, int64_t n_his,
                 int32_t target, collm_encoded *e) {
    memset(e, 0, sizeof *e);
    e->user = user;
    e->item = target;
    // the slot markers' places come from filling the template, never from
    // searching the text for "<unk>" (a title may contain it)
    collm_prompt_slot slots[COLLM_MAX_SLOTS];
    int n_marks = 0;
    char *text = collm_prompt_fill_slots(m->tpl, items, his, n_his, target, slots, COLLM_MAX_SLOTS, &n_marks);
    if (!text) return COLLM_ERR;
    size_t len = strlen(text);
    int cap = (int)len + 16;
    e->tokens = collm_malloc((size_t)cap * sizeof(int32_t));
    if (!e->tokens) {
        free(text);
        return COLLM_ERR_NOMEM;
    }
    int32_t unk = collm_tok_unk(m->vocab) >= 0 ? collm_tok_unk(m->vocab) : 0;
    const size_t marker_len = 5; // "<unk>"
    size_t at = 0;
    int n = 0;
    for (int slot = 0; slot <= n_marks; slot++) {
        // the text piece before this marker (after the last one: the tail)
        size_t end = slot < n_marks ? slots[slot].offset : len;
        if (end > at) {
            int got = collm_tok_encode(m->vocab, text + at, end - at, COLLM_TOK_LEGACY_SPECIAL_PIECES, e->tokens + n,
                                       cap - n);
            if (got < 0 || got > cap - n) {
                free(text);
                collm_encoded_free(e);
                return got < 0 ? got : collm_error(COLLM_ERR, "prompt tokenization overflow");
            }
            n += got;
        }
        if (slot == n_marks) break;
        if (n >= cap) {
            free(text);
            collm_encoded_free(e);
            return collm_error(COLLM_ERR, "prompt tokenization overflow");
        }
        e->slot_row[slot] = n;
        e->slot_item[slot] = slots[slot].item;
        e->tokens[n++] = unk;
        at = slots[slot].offset + marker_len;
    }
    free(text);
    e->n_tokens = n;
    e->n_slots = m->has_fece ? n_marks : 0; // without a mapping the markers stay <unk> tokens
    // a history encoder's user slot: its user-side vector of this very sample
    // (SASRec: the history's last-position output; DIN: [target, pooled, user]).
    // A user beyond its table is left without one (the slot lookup names it).
    int has_user_slot = 0;
    for (int s = 0; s < e->n_slots; s++) has_user_slot |= e->slot_item[s] < 0;
    if (m->cf_enc && has_user_slot && user >= 0 && user < collm_cf_model_n_users(m->cf_enc)) {
        e->user_vec = collm_malloc((size_t)m->cf_dim * sizeof(float));
        int rc = e->user_vec ? collm_cf_model_sample_vectors(m->cf_enc, user, his, n_his, target, e->user_vec, NULL)
                             : COLLM_ERR_NOMEM;
        if (rc) {
            collm_encoded_free(e);
            return rc;
        }
    }
    return COLLM_OK;
}

void collm_encoded_free(collm_encoded *e) {
    free(e->tokens);
    free(e->user_vec);
    e->tokens = NULL;
    e->user_vec = NULL;
}

// The CF vector of a slot: user slot → user table, item slots → item table.
const float *collm_slot_cf_vector(const collm_model *m, const collm_encoded *e, int slot) {
    int32_t item = e->slot_item[slot];
    if (item < 0) {
        if (e->user_vec) return e->user_vec; // a history encoder's, per sample
        if (!m->cf_users || e->user < 0 || e->user >= m->n_cf_users) return NULL;
        return m->cf_users + (int64_t)e->user * m->cf_dim;
    }
    if (item >= m->n_cf_items) return NULL;
    return m->cf_items + (int64_t)item * m->cf_dim;
}

int collm_slot_embeddings(const collm_model *m, const collm_encoded *e, float *out) {
    if (!e->n_slots) return COLLM_OK;
    float *x = collm_malloc((size_t)e->n_slots * m->cf_dim * sizeof(float));
    float *h = collm_malloc((size_t)e->n_slots * m->fece.d_hidden * sizeof(float));
    if (!x || !h) {
        free(x);
        free(h);
        return COLLM_ERR_NOMEM;
    }
    for (int s = 0; s < e->n_slots; s++) {
        const float *v = collm_slot_cf_vector(m, e, s);
        if (!v) {
            free(x);
            free(h);
            return collm_error(COLLM_ERR_ARG, "%s %d is outside the CF tables (%d users, %d items)",
                               e->slot_item[s] < 0 ? "user" : "item", e->slot_item[s] < 0 ? e->user : e->slot_item[s],
                               m->n_cf_users, m->n_cf_items);
        }
        memcpy(x + (int64_t)s * m->cf_dim, v, (size_t)m->cf_dim * sizeof(float));
    }
    collm_fece_forward(&m->fece, x, e->n_slots, h, out);
    free(x);
    free(h);
    return COLLM_OK;
}

// ---------------------------------------------------------------------------
// batched scoring through the packed training forward

// collm_encode_split's rows over the model's pool (collm_encode only reads
// the model): one contiguous range a thread, each stopping at its first
// failing row. The lowest failing row's error is the call's, as a serial run
// would report it; every row's encoding is the same whatever the thread.
typedef struct {
    int64_t row; // the range's first failing row, -1: none
    int rc;
    char message[1024]; // its error and field (error messages are per thread)
    char field[128];
    int has_field;
} encode_failure;

typedef struct {
    const collm_model *m;
    const collm_rec_dataset *ds;
    const collm_rec_split *split;
    collm_encoded *enc;    // (split->n), zeroed
    encode_failure *fails; // one a thread
} encode_split_job;

static void encode_split_task(void *ctx, int64_t begin, int64_t end, int thread_index) {
    const encode_split_job *j = ctx;
    const collm_rec_split *split = j->split;
    encode_failure *f = &j->fails[thread_index];
    for (int64_t r = begin; r < end && f->row < 0; r++) {
        int64_t h0 = split->his_offset[r], h1 = split->his_offset[r + 1];
        int rc = collm_encode(j->m, j->ds->items, split->user[r], split->his + h0, h1 - h0, split->item[r], &j->enc[r]);
        if (rc != COLLM_OK) {
            f->row = r;
            f->rc = rc;
            snprintf(f->message, sizeof f->message, "%s", collm_last_error());
            const char *field = collm_last_error_field();
            f->has_field = field != NULL;
            snprintf(f->field, sizeof f->field, "%s", field ? field : "");
        }
    }
}

int collm_encode_split(const collm_model *m, const collm_rec_dataset *ds, const collm_rec_split *split, collm_encoded **out) {
    const int threads = collm_pool_size(m->pool);
    collm_encoded *enc = collm_calloc((size_t)(split->n ? split->n : 1), sizeof *enc);
    encode_failure *fails = collm_malloc((size_t)threads * sizeof *fails);
    if (!enc || !fails) {
        free(enc);
        free(fails);
        return COLLM_ERR_NOMEM;
    }
    for (int t = 0; t < threads; t++) fails[t].row = -1;
    encode_split_job job = {.m = m, .ds = ds, .split = split, .enc = enc, .fails = fails};
    collm_pool_for(m->pool, split->n, 256, encode_split_task, &job); // ~0.1 ms a row: 256 rows are worth a thread
    const encode_failure *first = NULL;
    for (int t = 0; t < threads; t++)
        if (fails[t].row >= 0 && (!first || fails[t].row < first->row)) first = &fails[t];
    if (first) {
        int rc = first->has_field ? collm_error_field(first->rc, first->field, "%s", first->message)
                                  : collm_error(first->rc, "%s", first->message);
        collm_error_prefix(rc, "%s: row %lld", split->path, (long long)first->row + 1);
        collm_encoded_array_free(enc, split->n);
        free(fails);
        return rc;
    }
    free(fails);
    *out = enc;
    return COLLM_OK;
}

void collm_encoded_array_free(collm_encoded *enc, int64_t n) {
    for (int64_t i = 0; enc && i < n; i++) collm_encoded_free(&enc[i]);
    free(enc);
}

int collm_batch_init(collm_batch *b, const collm_model *m, int max_prompts, int max_rows) {
    memset(b, 0, sizeof *b);
    int C = m->llm->hp.n_embd, d = m->has_fece ? m->cf_dim : 1, hidden = m->has_fece ? m->fece.d_hidden : 1;
    int max_slots = max_prompts * COLLM_MAX_SLOTS;
    b->tokens = collm_malloc((size_t)max_rows * sizeof(int32_t));
    b->seq_len = collm_malloc((size_t)max_prompts * sizeof(int32_t));
    b->slot_rows = collm_malloc((size_t)max_slots * sizeof(int32_t));
    b->slot_x = collm_malloc((size_t)max_slots * d * sizeof(float));
    b->slot_h = collm_malloc((size_t)max_slots * hidden * sizeof(float));
    b->slot_y = collm_malloc((size_t)max_slots * C * sizeof(float));
    b->slot_dy = collm_malloc((size_t)max_slots * C * sizeof(float));
    b->scratch = collm_malloc((size_t)max_slots * hidden * sizeof(float));
    b->labels = collm_malloc((size_t)max_prompts * sizeof(float));
    b->scores = collm_malloc((size_t)max_prompts * sizeof(float));
    b->dscores = collm_malloc((size_t)max_prompts * sizeof(float));
    b->max_prompts = max_prompts;
    b->max_rows = max_rows;
    if (!b->tokens || !b->seq_len || !b->slot_rows || !b->slot_x || !b->slot_h || !b->slot_y || !b->slot_dy ||
        !b->scratch || !b->labels || !b->scores || !b->dscores) {
        collm_batch_free(b);
        return COLLM_ERR_NOMEM;
    }
    return COLLM_OK;
}

void collm_batch_free(collm_batch *b) {
    free(b->tokens);
    free(b->seq_len);
    free(b->slot_rows);
    free(b->slot_x);
    free(b->slot_h);
    free(b->slot_y);
    free(b->slot_dy);
    free(b->scratch);
    free(b->labels);
    free(b->scores);
    free(b->dscores);
    memset(b, 0, sizeof *b);
}

// Packs prompts `which` (n) of enc into b and maps the slot vectors.
int collm_batch_pack(collm_batch *b, const collm_model *m, const collm_encoded *enc, const int64_t *which, int n) {
    int rows = 0, slots = 0;
    for (int i = 0; i < n; i++) {
        const collm_encoded *e = &enc[which[i]];
        if (rows + e->n_tokens > b->max_rows || i >= b->max_prompts)
            return collm_error(COLLM_ERR_ARG, "batch of %d prompts does not fit %d rows", n, b->max_rows);
        memcpy(b->tokens + rows, e->tokens, (size_t)e->n_tokens * sizeof(int32_t));
        b->seq_len[i] = e->n_tokens;
        for (int s = 0; s < e->n_slots; s++) {
            const float *v = collm_slot_cf_vector(m, e, s);
            if (!v)
                return collm_error(COLLM_ERR_ARG, "user %d / item %d is outside the CF tables (%d users, %d items)",
                                   e->user, e->slot_item[s], m->n_cf_users, m->n_cf_items);
            memcpy(b->slot_x + (int64_t)slots * m->cf_dim, v, (size_t)m->cf_dim * sizeof(float));
            b->slot_rows[slots++] = rows + e->slot_row[s];
        }
        rows += e->n_tokens;
    }
    b->n_prompts = n;
    b->n_rows = rows;
    b->n_slots = slots;
    if (slots) collm_fece_forward(&m->fece, b->slot_x, slots, b->slot_h, b->slot_y);
    return COLLM_OK;
}

// The trainer used for scoring (created on first use, sized for the longest prompt).
static collm_llm_trainer *scorer_for(collm_model *m, int max_rows, int max_len) {
    if (m->scorer && m->scorer_rows >= max_rows && m->scorer_len >= max_len) return m->scorer;
    collm_llm_trainer_free(m->scorer);
    m->scorer = collm_llm_trainer_create(m->llm, m->lora_merged ? NULL : (m->has_lora ? &m->lora : NULL), 0, max_rows,
                                   max_len, m->pool);
    m->scorer_rows = max_rows;
    m->scorer_len = max_len;
    return m->scorer;
}

// Scoring order: prompts sorted by their tokens (then user, then place), so
// that a batch holds prompts that share long leading runs (one user's
// history before several targets), which the scoring forward computes once
// (llm/train.c, find_shared_runs). A prompt's score does not depend on the
// prompts batched with it.
typedef struct {
    const collm_encoded *e;
    int64_t index;
} score_order;

static int by_tokens(const void *a_, const void *b_) {
    const score_order *a = a_, *b = b_;
    const int n = a->e->n_tokens < b->e->n_tokens ? a->e->n_tokens : b->e->n_tokens;
    for (int t = 0; t < n; t++)
        if (a->e->tokens[t] != b->e->tokens[t]) return a->e->tokens[t] < b->e->tokens[t] ? -1 : 1;
    if (a->e->n_tokens != b->e->n_tokens) return a->e->n_tokens < b->e->n_tokens ? -1 : 1;
    if (a->e->user != b->e->user) return a->e->user < b->e->user ? -1 : 1;
    return (a->index > b->index) - (a->index < b->index);
}

int collm_score_encoded(collm_model *m, const collm_encoded *enc, int64_t n, int batch, float *scores) {
    int max_len = 1;
    for (int64_t i = 0; i < n; i++)
        if (enc[i].n_tokens > max_len) max_len = enc[i].n_tokens;
    if (batch < 1) batch = 1;
    if ((int64_t)batch * max_len > INT_MAX / 2)
        return collm_error(COLLM_ERR_ARG, "collm_score_encoded: batch %d x %d tokens is too many rows for one batch", batch,
                           max_len);
    collm_llm_trainer *tr = scorer_for(m, batch * max_len, max_len);
    if (!tr) return COLLM_ERR;
    collm_batch b;
    int rc = collm_batch_init(&b, m, batch, batch * max_len);
    if (rc) return rc;
    int64_t *which = collm_malloc((size_t)batch * sizeof(int64_t));
    score_order *order = collm_malloc((size_t)(n > 0 ? n : 1) * sizeof *order);
    if (!which || !order) {
        free(which);
        free(order);
        collm_batch_free(&b);
        return COLLM_ERR_NOMEM;
    }
    for (int64_t i = 0; i < n; i++) order[i] = (score_order){&enc[i], i};
    qsort(order, (size_t)n, sizeof *order, by_tokens);
    for (int64_t start = 0; start < n && rc == COLLM_OK; start += batch) {
        int cnt = (int)(n - start < batch ? n - start : batch);
        for (int i = 0; i < cnt; i++) which[i] = order[start + i].index;
        rc = collm_batch_pack(&b, m, enc, which, cnt);
        if (rc) break;
        collm_llm_slot_rows slots = {b.n_slots, b.slot_rows, b.slot_y};
        // the weights stay the same batch after batch: packed once, on the first
        rc = collm_llm_trainer_score(tr, b.tokens, b.seq_len, cnt, b.n_slots ? &slots : NULL, m->yes_id, b.scores,
                                     start > 0);
        for (int i = 0; rc == COLLM_OK && i < cnt; i++) scores[which[i]] = b.scores[i];
    }
    free(which);
    free(order);
    collm_batch_free(&b);
    return rc;
}

// The CF model's score of every row (split->n); ids beyond its tables give 0.
// Tables: <cf_user[u], cf_item[i]>; a history encoder scores the rows itself.
int collm_cf_scores(const collm_model *m, const collm_rec_split *split, float *cf) {
    return collm_cf_scores_on(m, split, cf, m->pool);
}

int collm_cf_scores_on(const collm_model *m, const collm_rec_split *split, float *cf, collm_pool *pool) {
    if (m->cf_enc) return collm_cf_model_score_split_known(m->cf_enc, split, cf, pool);
    if (!m->cf_users) return collm_error(COLLM_ERR_ARG, "the checkpoint holds no collaborative tables to score with");
    const int d = m->cf_dim;
    for (int64_t r = 0; r < split->n; r++) {
        const int32_t u = split->user[r], i = split->item[r];
        cf[r] = u >= 0 && u < m->n_cf_users && i >= 0 && i < m->n_cf_items
                    ? collm_ops_dot(m->cf_users + (int64_t)u * d, m->cf_items + (int64_t)i * d, d)
                    : 0.0f;
    }
    return COLLM_OK;
}

int collm_score_split_parts(collm_model *m, const collm_rec_dataset *ds, const collm_rec_split *split, int batch, float *llm,
                            float *cf, double *prompts_per_second) {
    if (!m || !ds || !split || !llm) return collm_error(COLLM_ERR_ARG, "collm_score_split_parts: NULL argument");
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    collm_encoded *enc;
    int rc = cf ? collm_cf_scores(m, split, cf) : COLLM_OK;
    if (rc || (rc = collm_encode_split(m, ds, split, &enc))) return rc;
    rc = collm_score_encoded(m, enc, split->n, batch, llm);
    collm_encoded_array_free(enc, split->n);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    if (prompts_per_second) *prompts_per_second = secs > 0 ? (double)split->n / secs : 0;
    return rc;
}

int collm_score_split(collm_model *m, const collm_rec_dataset *ds, const collm_rec_split *split, int batch, float *scores,
                      double *prompts_per_second) {
    const float w = collm_score_cf_weight(m, NULL); // 0 when none is stored
    const int n_extra = m ? m->n_score_extra : 0;
    const size_t n = split && split->n > 0 ? (size_t)split->n : 1;
    float *cf = w > 0 && split ? collm_malloc(n * sizeof *cf) : NULL;
    float *extra = n_extra > 0 && split ? collm_malloc((size_t)n_extra * n * sizeof *extra) : NULL;
    int rc = (w > 0 && !cf) || (n_extra > 0 && split && !extra) ? COLLM_ERR_NOMEM : COLLM_OK;
    if (!rc) rc = collm_score_split_parts(m, ds, split, batch, scores, cf, prompts_per_second);
    if (!rc && extra) rc = collm_score_split_extras(m, split, extra);
    if (!rc) collm_score_combine(m, split->n, cf, extra, scores);
    free(cf);
    free(extra);
    return rc;
}

int collm_fit_score_weight(const float *llm, const float *cf, const collm_rec_split *split, const float *grid, int n_grid,
                           float *w_out, double *auc_out) {
    if (!cf || !w_out) return collm_error(COLLM_ERR_ARG, "collm_fit_score_weight: NULL argument");
    return collm_fit_score_weights(llm, &cf, 1, split, grid, n_grid, w_out, auc_out);
}

// ---------------------------------------------------------------------------
// checkpoints

// Every setting of the training run that wrote the checkpoint (collm info
// prints them): the collm_train_options, what was trained, and on what.
static int write_train_keys(const collm_model *m, collm_gguf_writer *w) {
    const collm_train_options *o = &m->train_opt;
    int rc;
    if ((rc = collm_gguf_writer_set_u32(w, "collm.train.batch", (uint32_t)o->batch)) ||
        (rc = collm_gguf_writer_set_u32(w, "collm.train.steps_per_epoch", (uint32_t)o->steps_per_epoch)) ||
        (rc = collm_gguf_writer_set_u32(w, "collm.train.max_epochs", (uint32_t)o->max_epochs)) ||
        (rc = collm_gguf_writer_set_u32(w, "collm.train.patience", (uint32_t)o->patience)) ||
        (rc = collm_gguf_writer_set_f32(w, "collm.train.lr", (float)o->lr)) ||
        (rc = collm_gguf_writer_set_f32(w, "collm.train.warmup_lr", (float)o->warmup_lr)) ||
        (rc = collm_gguf_writer_set_f32(w, "collm.train.min_lr", (float)o->min_lr)) ||
        (rc = collm_gguf_writer_set_u32(w, "collm.train.warmup_steps", (uint32_t)o->warmup_steps)) ||
        (rc = collm_gguf_writer_set_u32(w, "collm.train.restart_warmup", (uint32_t)o->restart_warmup)) ||
        (rc = collm_gguf_writer_set_f32(w, "collm.train.weight_decay", (float)o->weight_decay)) ||
        (rc = collm_gguf_writer_set_f32(w, "collm.train.clip", (float)o->clip)) ||
        (rc = collm_gguf_writer_set_u32(w, "collm.train.full_finetune", (uint32_t)m->full_finetune)) ||
        (rc = collm_gguf_writer_set_u32(w, "collm.train.train_llm", (uint32_t)o->train_llm)) ||
        (rc = collm_gguf_writer_set_str(w, "collm.train.eval_split", m->train_eval_split ? m->train_eval_split : "")) ||
        (rc = collm_gguf_writer_set_u32(w, "collm.train.eval_batch", (uint32_t)o->eval_batch)) ||
        (rc = collm_gguf_writer_set_u32(w, "collm.train.eval_rows", (uint32_t)o->max_eval_rows)) ||
        (rc = collm_gguf_writer_set_u32(w, "collm.train.catalogue_negatives", (uint32_t)o->catalogue_negatives)) ||
        (rc = collm_gguf_writer_set_f32(w, "collm.train.negative_alpha", (float)o->negative_alpha)) ||
        (rc = collm_gguf_writer_set_f32(w, "collm.train.residual_weight", (float)o->residual_weight)) ||
        (rc = collm_gguf_writer_set_u32(w, "collm.train.residual_folds", (uint32_t)o->residual_folds)) ||
        (rc = collm_gguf_writer_set_u64(w, "collm.train.seed", o->seed)) ||
        (rc = collm_gguf_writer_set_u32(w, "collm.train.ranks", (uint32_t)m->train_ranks)) ||
        (rc = collm_gguf_writer_set_str(w, "collm.train.data", m->train_data ? m->train_data : "")) ||
        (rc = collm_gguf_writer_set_str(w, "collm.train.cf", m->train_cf_path ? m->train_cf_path : "")) ||
        (rc = collm_gguf_writer_set_str(w, "collm.train.init_from", m->train_init_from ? m->train_init_from : "")))
        return rc;
    if (m->has_fece && (rc = collm_gguf_writer_set_u32(w, "collm.train.fece_mid", (uint32_t)(m->fece.d_hidden / (m->fece.d_in > 0 ? m->fece.d_in : 1)))))
        return rc;
    return COLLM_OK;
}

int collm_checkpoint_fill(const collm_model *m, collm_gguf_writer *w, const char *ckpt_path) {
    int rc;
    // the base path relative to the checkpoint's folder, so the pair can move
    // together (an absolute path where that cannot be worked out)
    char *stored = NULL;
    if (m->base_path && m->base_path[0] == '/' && ckpt_path) {
        char *dir = folder_of(ckpt_path), *abs_dir = dir ? realpath(dir, NULL) : NULL;
        if (abs_dir) stored = relative_to(m->base_path, abs_dir);
        free(dir);
        free(abs_dir);
    }
    rc = collm_gguf_writer_set_str(w, "collm.base.path", stored ? stored : m->base_path ? m->base_path : "");
    free(stored);
    if (rc) return rc;
    if ((rc = collm_gguf_writer_set_u32(w, "collm.stage", (uint32_t)m->stage)) ||
        (rc = collm_gguf_writer_set_u32(w, "collm.is_book", (uint32_t)m->is_book)) ||
        (rc = collm_gguf_writer_set_str(w, "collm.template", m->tpl->line)) ||
        (rc = collm_gguf_writer_set_u32(w, "collm.answer_token", (uint32_t)m->yes_id)) ||
        (m->answer[0] && (rc = collm_gguf_writer_set_str(w, "collm.answer", m->answer))) ||
        (rc = collm_gguf_writer_set_u64(w, "collm.base.checksum", m->base_checksum)) ||
        (rc = collm_gguf_writer_set_str(w, BASE_HASH_KIND_KEY, base_hash_names[m->base_hash_kind])) ||
        (rc = collm_gguf_writer_set_u32(w, "collm.full_model", (uint32_t)m->full_model_in_ckpt)) ||
        (rc = collm_gguf_writer_set_u64(w, "collm.seed", m->seed)) ||
        (m->has_rerank && ((rc = collm_gguf_writer_set_f32(w, COLLM_RERANK_LAMBDA_KEY, m->rerank_lambda)) ||
                           (rc = collm_gguf_writer_set_f32(w, COLLM_RERANK_POPULARITY_KEY, m->rerank_pop)))) ||
        (m->has_score_cf_weight && (rc = collm_gguf_writer_set_f32(w, COLLM_SCORE_CF_WEIGHT_KEY, m->score_cf_weight))) ||
        (rc = collm_score_extras_write(m, w)))
        return rc;
    if (m->has_train && (rc = write_train_keys(m, w))) return rc;
    if (m->full_model_in_ckpt) {
        // the LLM itself was fine-tuned: store it whole (llama.cpp layout)
        collm_gguf_file *vocab_src = m->vocab_path && *m->vocab_path ? collm_gguf_open(m->vocab_path) : NULL;
        if (!vocab_src) return collm_error_prefix(COLLM_ERR_IO, "cannot read the tokenizer of the base model");
        rc = collm_llm_model_write(m->llm, w, vocab_src, "collm", COLLM_GGML_TYPE_F32);
        collm_gguf_close(vocab_src);
        if (rc) return rc;
    }
    if (m->has_lora) {
        if ((rc = collm_gguf_writer_set_u32(w, "collm.lora.rank", (uint32_t)m->lora.rank)) ||
            (rc = collm_gguf_writer_set_u32(w, "collm.lora.targets", m->lora.targets)) ||
            (rc = collm_gguf_writer_set_f32(w, "collm.lora.alpha", m->lora.alpha)) ||
            (rc = collm_gguf_writer_set_f32(w, "collm.lora.dropout", m->lora.dropout)))
            return rc;
        if ((rc = collm_write_lora_tensors(m, w))) return rc;
    }
    if (m->cf_enc) { // the encoder itself (its keys include collm.cf.kind), and its item table for index
        int64_t ne_i[2] = {m->cf_dim, m->n_cf_items};
        if ((rc = collm_cf_model_write(m->cf_enc, w)) ||
            (rc = collm_gguf_writer_add_tensor_f32(w, "cf.item_embd", COLLM_GGML_TYPE_F32, 2, ne_i, m->cf_items)))
            return rc;
    } else if (m->cf_users) {
        int64_t ne_u[2] = {m->cf_dim, m->n_cf_users}, ne_i[2] = {m->cf_dim, m->n_cf_items};
        if (m->cf_kind[0] && (rc = collm_gguf_writer_set_str(w, "collm.cf.kind", m->cf_kind))) return rc;
        if ((rc = collm_gguf_writer_set_u32(w, "collm.cf.dim", (uint32_t)m->cf_dim)) ||
            (rc = collm_gguf_writer_set_u32(w, "collm.cf.n_users", (uint32_t)m->n_cf_users)) ||
            (rc = collm_gguf_writer_set_u32(w, "collm.cf.n_items", (uint32_t)m->n_cf_items)) ||
            (rc = collm_gguf_writer_add_tensor_f32(w, "cf.user_embd", COLLM_GGML_TYPE_F32, 2, ne_u, m->cf_users)) ||
            (rc = collm_gguf_writer_add_tensor_f32(w, "cf.item_embd", COLLM_GGML_TYPE_F32, 2, ne_i, m->cf_items)))
            return rc;
    }
    if (m->has_fece) {
        const collm_fece_mlp *f = &m->fece;
        int64_t ne_w1[2] = {f->d_in, f->d_hidden}, ne_b1[1] = {f->d_hidden}, ne_w2[2] = {f->d_hidden, f->d_out},
                ne_b2[1] = {f->d_out};
        if ((rc = collm_gguf_writer_set_u32(w, "collm.fece.d_in", (uint32_t)f->d_in)) ||
            (rc = collm_gguf_writer_set_u32(w, "collm.fece.d_hidden", (uint32_t)f->d_hidden)) ||
            (rc = collm_gguf_writer_set_u32(w, "collm.fece.d_out", (uint32_t)f->d_out)) ||
            (rc = collm_gguf_writer_add_tensor_f32(w, "fece.w1", COLLM_GGML_TYPE_F32, 2, ne_w1, f->w1)) ||
            (rc = collm_gguf_writer_add_tensor_f32(w, "fece.b1", COLLM_GGML_TYPE_F32, 1, ne_b1, f->b1)) ||
            (rc = collm_gguf_writer_add_tensor_f32(w, "fece.w2", COLLM_GGML_TYPE_F32, 2, ne_w2, f->w2)) ||
            (rc = collm_gguf_writer_add_tensor_f32(w, "fece.b2", COLLM_GGML_TYPE_F32, 1, ne_b2, f->b2)))
            return rc;
    }
    return COLLM_OK;
}

int collm_write_lora_tensors(const collm_model *m, collm_gguf_writer *w) {
    char name[96];
    for (int l = 0; l < m->lora.n_layer; l++)
        for (int t = 0; t < COLLM_LORA_N_TARGETS; t++) {
            collm_lora_pair *p = collm_lora_get(&m->lora, l, (collm_lora_target)t);
            if (!p) continue;
            // llama.cpp adapter shapes: lora_a ne = {in, r}, lora_b ne = {r, out}
            int64_t ne_a[2] = {p->in, p->rank}, ne_b[2] = {p->rank, p->out};
            int rc;
            snprintf(name, sizeof name, "blk.%d.%s.weight.lora_a", l, collm_lora_target_gguf_name((collm_lora_target)t));
            if ((rc = collm_gguf_writer_add_tensor_f32(w, name, COLLM_GGML_TYPE_F32, 2, ne_a, p->a))) return rc;
            snprintf(name, sizeof name, "blk.%d.%s.weight.lora_b", l, collm_lora_target_gguf_name((collm_lora_target)t));
            if ((rc = collm_gguf_writer_add_tensor_f32(w, name, COLLM_GGML_TYPE_F32, 2, ne_b, p->b))) return rc;
        }
    return COLLM_OK;
}

int collm_model_save(const collm_model *m, const char *path) {
    collm_gguf_writer *w = collm_gguf_writer_create();
    if (!w) return COLLM_ERR_NOMEM;
    int rc = collm_checkpoint_fill(m, w, path);
    if (rc == COLLM_OK) rc = collm_gguf_writer_write(w, path);
    collm_gguf_writer_free(w);
    return rc;
}

int collm_export_lora(const collm_model *m, const char *path) {
    if (!m->has_lora) return collm_error(COLLM_ERR_ARG, "this checkpoint has no LoRA adapter (it was fully fine-tuned or has none)");
    // the base the checkpoint found by its stored path is an input too: the
    // adapter written over it would leave every checkpoint of it without one
    struct stat out_st, base_st;
    if (m->base_path && stat(path, &out_st) == 0 && stat(m->base_path, &base_st) == 0 && out_st.st_dev == base_st.st_dev &&
        out_st.st_ino == base_st.st_ino)
        return collm_error(COLLM_ERR_ARG, "%s is the checkpoint's base model (%s): writing the adapter there would destroy "
                                          "it (give another path)", path, m->base_path);
    collm_gguf_writer *w = collm_gguf_writer_create();
    if (!w) return COLLM_ERR_NOMEM;
    int rc;
    if ((rc = collm_gguf_writer_set_str(w, "general.architecture", collm_llm_arch_name(m->llm->hp.arch))) ||
        (rc = collm_gguf_writer_set_str(w, "general.type", "adapter")) ||
        (rc = collm_gguf_writer_set_str(w, "general.name", "collm-lora")) ||
        (rc = collm_gguf_writer_set_str(w, "adapter.type", "lora")) ||
        (rc = collm_gguf_writer_set_f32(w, "adapter.lora.alpha", m->lora.alpha)) || (rc = collm_write_lora_tensors(m, w)) ||
        (rc = collm_gguf_writer_write(w, path))) {
    }
    collm_gguf_writer_free(w);
    return rc;
}

// The CF item table of a CoLLM checkpoint (tensor cf.item_embd, F32, {d, n_items}).
int collm_checkpoint_item_vectors(const char *path, float **items, int32_t *n_items, int *d) {
    if (!items || !n_items || !d) return collm_error(COLLM_ERR_ARG, "collm_checkpoint_item_vectors: NULL argument");
    *items = NULL; // (and NULL again on any error: the caller frees only what a success returns)
    collm_gguf_file *f = collm_gguf_open(path);
    if (!f) return COLLM_ERR;
    const collm_gguf_tensor_info *t = collm_gguf_find_tensor(f, "cf.item_embd");
    int rc = COLLM_OK;
    if (!t) rc = collm_error(COLLM_ERR_FORMAT, "%s: no tensor cf.item_embd (a checkpoint without CF vectors?)", path);
    else if (t->n_dims != 2 || t->ne[0] < 1 || t->ne[1] < 2 || t->ne[1] > INT32_MAX)
        rc = collm_error(COLLM_ERR_FORMAT, "%s: cf.item_embd is not a (d, n_items) matrix", path);
    if (rc == COLLM_OK) {
        *d = (int)t->ne[0];
        *n_items = (int32_t)t->ne[1];
        *items = collm_malloc((size_t)*n_items * (size_t)*d * sizeof(float));
        if (!*items) rc = COLLM_ERR_NOMEM;
        else if ((rc = collm_gguf_tensor_to_f32(t, *items))) collm_error_prefix(rc, "%s: cf.item_embd", path);
    }
    if (rc != COLLM_OK) {
        free(*items);
        *items = NULL;
    }
    collm_gguf_close(f);
    return rc;
}


void collm_rerank_weights(const collm_model *m, float *lambda, float *popularity, int *stored) {
    int have = m && m->has_rerank;
    if (stored) *stored = have;
    if (lambda) *lambda = have ? m->rerank_lambda : COLLM_RERANK_LAMBDA_DEFAULT;
    if (popularity) *popularity = have ? m->rerank_pop : COLLM_RERANK_POPULARITY_DEFAULT;
}

// Rewrites the checkpoint with every key and tensor as they are, plus the n
// f32 keys (replaced when present); the tensors' bytes are copied unchanged.
static int checkpoint_set_f32(const char *ckpt_path, const char *const *keys, const float *values, int n) {
    collm_gguf_file *f = collm_gguf_open(ckpt_path);
    if (!f) return COLLM_ERR;
    int rc = COLLM_OK;
    if (collm_gguf_find_key(f, "collm.stage") < 0) rc = collm_error(COLLM_ERR_FORMAT, "%s: not a collm checkpoint", ckpt_path);
    collm_gguf_writer *w = rc == COLLM_OK ? collm_gguf_writer_create() : NULL;
    if (rc == COLLM_OK && !w) rc = COLLM_ERR_NOMEM;
    for (int64_t i = 0; rc == COLLM_OK && i < collm_gguf_n_kv(f); i++) {
        int replaced = 0;
        for (int k = 0; k < n; k++) replaced |= strcmp(collm_gguf_key(f, i), keys[k]) == 0;
        if (!replaced) rc = collm_gguf_writer_copy_kv(w, f, i);
    }
    for (int k = 0; k < n && rc == COLLM_OK; k++) rc = collm_gguf_writer_set_f32(w, keys[k], values[k]);
    for (int64_t i = 0; rc == COLLM_OK && i < collm_gguf_n_tensors(f); i++) {
        const collm_gguf_tensor_info *t = collm_gguf_tensor(f, i);
        rc = collm_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data);
    }
    if (rc == COLLM_OK) rc = collm_gguf_writer_write(w, ckpt_path);
    collm_gguf_writer_free(w);
    collm_gguf_close(f);
    return rc;
}

int collm_checkpoint_set_rerank(const char *ckpt_path, float lambda, float popularity) {
    if (!ckpt_path) return collm_error(COLLM_ERR_ARG, "collm_checkpoint_set_rerank: no path");
    if (!(lambda >= 0 && lambda <= COLLM_RERANK_WEIGHT_MAX) || !(popularity >= 0 && popularity <= COLLM_RERANK_WEIGHT_MAX))
        return collm_error(COLLM_ERR_ARG, "rerank weights %g, %g: each must be in [0, %g]", lambda, popularity,
                           COLLM_RERANK_WEIGHT_MAX);
    const char *keys[2] = {COLLM_RERANK_LAMBDA_KEY, COLLM_RERANK_POPULARITY_KEY};
    const float values[2] = {lambda, popularity};
    return checkpoint_set_f32(ckpt_path, keys, values, 2);
}

float collm_score_cf_weight(const collm_model *m, int *stored) {
    if (stored) *stored = m && m->has_score_cf_weight;
    return m && m->has_score_cf_weight ? m->score_cf_weight : 0.0f;
}

int collm_checkpoint_set_score_cf_weight(const char *ckpt_path, float w) {
    if (!(w >= 0 && w <= COLLM_SCORE_CF_WEIGHT_MAX))
        return collm_error(COLLM_ERR_ARG, "score weight %g is outside [0, %g]", w, COLLM_SCORE_CF_WEIGHT_MAX);
    collm_gguf_file *f = collm_gguf_open(ckpt_path);
    if (!f) return COLLM_ERR;
    int has_cf = collm_gguf_find_tensor(f, "cf.user_embd") != NULL;
    collm_gguf_close(f);
    if (w > 0 && !has_cf) return collm_error(COLLM_ERR_ARG, "%s: no collaborative tables to fuse with", ckpt_path);
    const char *key = COLLM_SCORE_CF_WEIGHT_KEY;
    return checkpoint_set_f32(ckpt_path, &key, &w, 1);
}
