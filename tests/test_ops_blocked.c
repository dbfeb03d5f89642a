// The vectorised / blocked paths of ops.c at the shapes the model uses, which
// tests/test_ops.c (tiny shapes) does not reach: attention with several query
// blocks, head_dim with 16-, 8- and scalar-wide remainders, a long cached
// prefix (smaller blocks) and one beyond the scratch target (one query per
// block), forward and backward against a double-precision reference written
// here; thread-count determinism there; SwiGLU and RMSNorm with SIMD tails
// against double references; the RoPE table equal bit for bit to collm_ops_rope_forward.
#include "core/ops.h"
#include "core/rng.h"
#include "collm/threadpool.h"
#include "test.h"

#include <stdint.h>

static collm_rng rng;

static float *rand_vec(int64_t n, float scale) {
    float *x = malloc((size_t)n * sizeof *x);
    for (int64_t i = 0; i < n; i++) x[i] = (float)(collm_rng_normal(&rng) * scale);
    return x;
}

static float *zeros(int64_t n) { return calloc((size_t)n, sizeof(float)); }

// |a - b| <= abs_tol + rel·|b| everywhere; prints the first miss.
static int close_vec(const float *a, const double *b, int64_t n, double rel, double abs_tol, const char *what) {
    for (int64_t i = 0; i < n; i++) {
        double err = fabs((double)a[i] - b[i]);
        if (!(err <= abs_tol + rel * fabs(b[i]))) {
            fprintf(stderr, "  %s[%lld]: got %.8g want %.8g\n", what, (long long)i, a[i], b[i]);
            return 0;
        }
    }
    return 1;
}

// Causal GQA attention in double, forward and backward from the definitions:
// P = softmax(q·k^T/√hd) per (head, query), o = P·v; with D = dout·o,
// dS_j = P_j (dout·v_j - D)/√hd, dq = Σ dS_j k_j, dk_j += dS_j q, dv_j += P_j dout.
// out/dq (T, nh, hd); dk/dv (L, nkv, hd), all written (not accumulated).
static void ref_attention(double *out, double *dq, double *dk, double *dv, const float *dout, const float *q,
                          const float *k, const float *v, int T, int n_past, int nh, int nkv, int hd) {
    int L = n_past + T;
    double scale = 1.0 / sqrt((double)hd), *p = malloc(sizeof(double) * L);
    for (int64_t i = 0; i < (int64_t)L * nkv * hd; i++) dk[i] = dv[i] = 0;
    for (int h = 0; h < nh; h++) {
        int kvh = h / (nh / nkv);
        for (int t = 0; t < T; t++) {
            int n_keys = n_past + t + 1;
            const float *qt = q + ((int64_t)t * nh + h) * hd, *gt = dout + ((int64_t)t * nh + h) * hd;
            double mx = -1e300, sum = 0;
            for (int j = 0; j < n_keys; j++) {
                double s = 0;
                for (int d = 0; d < hd; d++) s += (double)qt[d] * k[((int64_t)j * nkv + kvh) * hd + d];
                p[j] = s * scale;
                if (p[j] > mx) mx = p[j];
            }
            for (int j = 0; j < n_keys; j++) sum += (p[j] = exp(p[j] - mx));
            for (int j = 0; j < n_keys; j++) p[j] /= sum;
            double *ot = out + ((int64_t)t * nh + h) * hd, *dqt = dq + ((int64_t)t * nh + h) * hd, D = 0;
            for (int d = 0; d < hd; d++) {
                double o = 0;
                for (int j = 0; j < n_keys; j++) o += p[j] * v[((int64_t)j * nkv + kvh) * hd + d];
                ot[d] = o;
                D += o * gt[d];
                dqt[d] = 0;
            }
            for (int j = 0; j < n_keys; j++) {
                const float *kj = k + ((int64_t)j * nkv + kvh) * hd, *vj = v + ((int64_t)j * nkv + kvh) * hd;
                double dp = 0;
                for (int d = 0; d < hd; d++) dp += (double)gt[d] * vj[d];
                double ds = p[j] * (dp - D) * scale;
                double *dkj = dk + ((int64_t)j * nkv + kvh) * hd, *dvj = dv + ((int64_t)j * nkv + kvh) * hd;
                for (int d = 0; d < hd; d++) {
                    dqt[d] += ds * kj[d];
                    dkj[d] += ds * qt[d];
                    dvj[d] += p[j] * gt[d];
                }
            }
        }
    }
    free(p);
}

static void test_attention_blocked(void) {
    collm_pool *pool = collm_pool_create(3);
    CHECK(pool != NULL);
    // (T, n_past, nh, nkv, hd): L = 337 -> seven 48-query blocks, hd = 72 (partial
    // micro-tiles of every kernel); L = 640 -> 24-query blocks, hd = 20; a
    // decode-like row; L > 16384 -> one query per block, hd = 8; hd = 3
    int cases[5][5] = {{300, 37, 4, 2, 72}, {40, 600, 2, 2, 20}, {1, 90, 4, 1, 64}, {2, 16390, 2, 1, 8},
                       {35, 3, 3, 3, 3}};
    for (int ci = 0; ci < 5; ci++) {
        int T = cases[ci][0], n_past = cases[ci][1], nh = cases[ci][2], nkv = cases[ci][3], hd = cases[ci][4];
        int L = n_past + T;
        int64_t nq = (int64_t)T * nh * hd, nk = (int64_t)L * nkv * hd, na = (int64_t)nh * T * L;
        float *q = rand_vec(nq, 1), *k = rand_vec(nk, 1), *v = rand_vec(nk, 1), *dout = rand_vec(nq, 1);
        double *r_out = malloc(sizeof(double) * nq), *r_dq = malloc(sizeof(double) * nq);
        double *r_dk = malloc(sizeof(double) * nk), *r_dv = malloc(sizeof(double) * nk);
        ref_attention(r_out, r_dq, r_dk, r_dv, dout, q, k, v, T, n_past, nh, nkv, hd);
        float *out = zeros(nq), *out2 = zeros(nq), *att = malloc(sizeof(float) * na);
        for (int64_t i = 0; i < na; i++) att[i] = 7.0f; // every entry must be written
        collm_ops_attention_forward(out, att, q, k, v, T, n_past, nh, nkv, hd, pool, NULL);
        collm_ops_attention_forward(out2, NULL, q, k, v, T, n_past, nh, nkv, hd, pool, NULL);
        CHECK_MSG(close_vec(out, r_out, nq, 1e-5, 1e-5, "out"), "case %d", ci);
        CHECK_MSG(close_vec(out2, r_out, nq, 1e-5, 1e-5, "out (no att)"), "case %d", ci);
        int rows_ok = 1;
        for (int h = 0; h < nh; h++)
            for (int t = 0; t < T; t++) {
                const float *row = att + ((int64_t)h * T + t) * L;
                double s = 0;
                for (int j = 0; j < L; j++) {
                    if (j > n_past + t) rows_ok &= row[j] == 0.0f;
                    s += row[j];
                }
                rows_ok &= fabs(s - 1.0) < 1e-5;
            }
        CHECK_MSG(rows_ok, "case %d: att rows sum to 1, zero beyond the causal limit", ci);
        // backward accumulates onto a non-zero start; threads must not change a bit
        float *g[2][3];
        for (int p = 0; p < 2; p++) {
            g[p][0] = zeros(nq), g[p][1] = zeros(nk), g[p][2] = zeros(nk);
            for (int64_t i = 0; i < nk; i++) g[p][1][i] = 0.5f, g[p][2][i] = -0.25f;
            collm_ops_attention_backward(g[p][0], g[p][1], g[p][2], dout, att, q, k, v, T, n_past, nh, nkv, hd,
                                   p ? pool : NULL, NULL);
        }
        for (int64_t i = 0; i < nk; i++) r_dk[i] += 0.5, r_dv[i] -= 0.25;
        CHECK_MSG(close_vec(g[0][0], r_dq, nq, 1e-4, 1e-5, "dq"), "case %d", ci);
        CHECK_MSG(close_vec(g[0][1], r_dk, nk, 1e-4, 1e-5, "dk"), "case %d", ci);
        CHECK_MSG(close_vec(g[0][2], r_dv, nk, 1e-4, 1e-5, "dv"), "case %d", ci);
        CHECK_MSG(memcmp(g[0][0], g[1][0], sizeof(float) * nq) == 0 &&
                      memcmp(g[0][1], g[1][1], sizeof(float) * nk) == 0 &&
                      memcmp(g[0][2], g[1][2], sizeof(float) * nk) == 0,
                  "case %d: backward on 1 vs 3 threads", ci);
        float *out3 = zeros(nq), *att3 = zeros(na);
        collm_ops_attention_forward(out3, att3, q, k, v, T, n_past, nh, nkv, hd, NULL, NULL);
        CHECK_MSG(memcmp(out, out3, sizeof(float) * nq) == 0 && memcmp(att, att3, sizeof(float) * na) == 0,
                  "case %d: forward on 1 vs 3 threads", ci);
        for (int p = 0; p < 2; p++) free(g[p][0]), free(g[p][1]), free(g[p][2]);
        free(q), free(k), free(v), free(dout), free(r_out), free(r_dq), free(r_dk), free(r_dv);
        free(out), free(out2), free(out3), free(att), free(att3);
    }
    collm_pool_free(pool);
}

// Packed suffixes over one cached prefix (collm_ops_attention_packed_forward):
// each sequence's rows against the double reference run on prefix + that
// sequence alone; 1 vs 3 threads bit for bit. head_dim 32 (one 4-vector
// pass), 72 (32 + 32 + one 8-wide), 20 (8 + 8 + 4 masked), 5 (masked only),
// 16; n_past 0, 1, 9 and 37 (key groups of 8 with a tail), 202; GQA.
static void test_attention_packed(void) {
    collm_pool *pool = collm_pool_create(3);
    CHECK(pool != NULL);
    const int32_t seq_len[6] = {13, 1, 3, 8, 17, 2}; // 44 rows: blocks of 32 cross sequences
    const int n_seq = 6, T = 44;
    int cases[5][4] = {{202, 4, 4, 32}, {9, 4, 2, 72}, {1, 2, 1, 20}, {0, 3, 3, 5}, {37, 2, 2, 16}}; // n_past, nh, nkv, hd
    for (int ci = 0; ci < 5; ci++) {
        int n_past = cases[ci][0], nh = cases[ci][1], nkv = cases[ci][2], hd = cases[ci][3];
        int64_t q_dim = (int64_t)nh * hd, kv_dim = (int64_t)nkv * hd;
        float *q = rand_vec(T * q_dim, 1), *kp = rand_vec((n_past + 1) * kv_dim, 1), *vp = rand_vec((n_past + 1) * kv_dim, 1);
        float *kn = rand_vec(T * kv_dim, 1), *vn = rand_vec(T * kv_dim, 1), *dout = rand_vec(T * q_dim, 1);
        float *out = zeros(T * q_dim), *out3 = zeros(T * q_dim);
        int32_t pos[44];
        for (int s = 0, r = 0; s < n_seq; s++)
            for (int i = 0; i < seq_len[s]; i++) pos[r++] = n_past + i;
        collm_ops_attention_packed_forward(out, q, NULL, T, kp, vp, n_past, kn, vn, pos, nh, nkv, hd, NULL, NULL, NULL);
        collm_ops_attention_packed_forward(out3, q, NULL, T, kp, vp, n_past, kn, vn, pos, nh, nkv, hd, pool, NULL, NULL);
        CHECK_MSG(memcmp(out, out3, sizeof(float) * T * q_dim) == 0, "packed case %d: 1 vs 3 threads", ci);
        int ok = 1;
        for (int s = 0, off = 0; s < n_seq; off += seq_len[s], s++) {
            int len = seq_len[s], L = n_past + len;
            float *k = malloc(sizeof(float) * L * kv_dim), *v = malloc(sizeof(float) * L * kv_dim);
            memcpy(k, kp, sizeof(float) * n_past * kv_dim);
            memcpy(v, vp, sizeof(float) * n_past * kv_dim);
            memcpy(k + n_past * kv_dim, kn + off * kv_dim, sizeof(float) * len * kv_dim);
            memcpy(v + n_past * kv_dim, vn + off * kv_dim, sizeof(float) * len * kv_dim);
            int64_t nq = len * q_dim;
            double *r_out = malloc(sizeof(double) * nq), *r_dq = malloc(sizeof(double) * nq);
            double *r_dk = malloc(sizeof(double) * L * kv_dim), *r_dv = malloc(sizeof(double) * L * kv_dim);
            ref_attention(r_out, r_dq, r_dk, r_dv, dout + off * q_dim, q + off * q_dim, k, v, len, n_past, nh, nkv, hd);
            ok &= close_vec(out + off * q_dim, r_out, nq, 1e-5, 1e-5, "packed out");
            free(k), free(v), free(r_out), free(r_dq), free(r_dk), free(r_dv);
        }
        CHECK_MSG(ok, "packed case %d (n_past %d, hd %d) vs reference per sequence", ci, n_past, hd);
        // a subset of the queries, out of order (the last rows of sequences 4, 0, 2): query and out row j are
        // packed row q_rows[j]
        const int32_t q_rows[3] = {41, 12, 16};
        float *sub = zeros(3 * q_dim), *q_sub = zeros(3 * q_dim);
        for (int j = 0; j < 3; j++) memcpy(q_sub + j * q_dim, q + q_rows[j] * q_dim, sizeof(float) * q_dim);
        collm_ops_attention_packed_forward(sub, q_sub, q_rows, 3, kp, vp, n_past, kn, vn, pos, nh, nkv, hd, pool, NULL, NULL);
        int same = 1;
        for (int j = 0; j < 3; j++) same &= memcmp(sub + j * q_dim, out + q_rows[j] * q_dim, sizeof(float) * q_dim) == 0;
        CHECK_MSG(same, "packed case %d: query subset equals those rows of the full call", ci);
        free(sub), free(q_sub);
        free(q), free(kp), free(vp), free(kn), free(vn), free(dout), free(out), free(out3);
    }
    collm_pool_free(pool);
}

static void test_swiglu_tails(void) {
    // n = 37: four 8-lane chunks and a 5-lane tail; |g| up to ~100 (σ saturates)
    const int n = 37;
    float *g = rand_vec(n, 4), *u = rand_vec(n, 1), *dh = rand_vec(n, 1), *h = zeros(n);
    g[0] = -100.0f, g[1] = 100.0f, g[36] = -30.0f, g[35] = 0.0f;
    double want[37], want_dg[37], want_du[37];
    for (int i = 0; i < n; i++) {
        double s = 1.0 / (1.0 + exp(-(double)g[i]));
        want[i] = g[i] * s * u[i];
        want_dg[i] = 1.0 + dh[i] * u[i] * (s + g[i] * s * (1.0 - s)); // onto dg = 1
        want_du[i] = -1.0 + dh[i] * g[i] * s;                        // onto du = -1
    }
    collm_ops_swiglu_forward(h, g, u, n);
    CHECK(close_vec(h, want, n, 1e-6, 1e-30, "swiglu"));
    float *hg = malloc(sizeof(float) * n);
    memcpy(hg, g, sizeof(float) * n);
    collm_ops_swiglu_forward(hg, hg, u, n); // in place over g, as model.c does
    CHECK(memcmp(hg, h, sizeof(float) * n) == 0);
    float *dg = malloc(sizeof(float) * n), *du = malloc(sizeof(float) * n);
    for (int i = 0; i < n; i++) dg[i] = 1.0f, du[i] = -1.0f;
    collm_ops_swiglu_backward(dg, du, dh, g, u, n);
    CHECK(close_vec(dg, want_dg, n, 1e-6, 1e-6, "swiglu dg"));
    CHECK(close_vec(du, want_du, n, 1e-6, 1e-6, "swiglu du"));
    collm_ops_swiglu_backward(NULL, du, dh, g, u, n); // a NULL gradient is skipped
    for (int i = 0; i < n; i++) want_du[i] += dh[i] * g[i] / (1.0 + exp(-(double)g[i]));
    CHECK(close_vec(du, want_du, n, 1e-6, 1e-6, "swiglu du twice"));
    // the set form: the reference's values onto nothing (NaN before: never read), and the
    // bits of the adding form onto zeros
    float *sg = malloc(sizeof(float) * n), *su = malloc(sizeof(float) * n);
    float *zg = calloc((size_t)n, sizeof(float)), *zu = calloc((size_t)n, sizeof(float));
    double set_dg[37], set_du[37];
    for (int i = 0; i < n; i++) {
        double s = 1.0 / (1.0 + exp(-(double)g[i]));
        set_dg[i] = dh[i] * u[i] * (s + g[i] * s * (1.0 - s));
        set_du[i] = dh[i] * g[i] * s;
        sg[i] = su[i] = NAN;
    }
    collm_ops_swiglu_backward_set(sg, su, dh, g, u, n);
    CHECK(close_vec(sg, set_dg, n, 1e-6, 1e-6, "swiglu set dg"));
    CHECK(close_vec(su, set_du, n, 1e-6, 1e-6, "swiglu set du"));
    collm_ops_swiglu_backward(zg, zu, dh, g, u, n);
    CHECK(memcmp(sg, zg, sizeof(float) * n) == 0 && memcmp(su, zu, sizeof(float) * n) == 0);
    free(sg), free(su), free(zg), free(zu);
    free(g), free(u), free(dh), free(h), free(hg), free(dg), free(du);
}

static void test_rmsnorm_tails(void) {
    int Cs[2] = {37, 512};
    for (int ci = 0; ci < 2; ci++) {
        int T = 3, C = Cs[ci];
        float *x = rand_vec((int64_t)T * C, 3), *w = rand_vec(C, 1), *y = zeros((int64_t)T * C), rstd[3];
        double *want = malloc(sizeof(double) * T * C), want_r[3];
        for (int t = 0; t < T; t++) {
            double ms = 0;
            for (int i = 0; i < C; i++) ms += (double)x[t * C + i] * x[t * C + i];
            want_r[t] = 1.0 / sqrt(ms / C + 1e-5);
            for (int i = 0; i < C; i++) want[t * C + i] = x[t * C + i] * want_r[t] * w[i];
        }
        collm_ops_rmsnorm_forward(y, rstd, x, w, T, C, 1e-5f);
        CHECK_MSG(close_vec(y, want, (int64_t)T * C, 1e-6, 1e-6, "rmsnorm"), "C=%d", C);
        CHECK_MSG(close_vec(rstd, want_r, T, 1e-6, 0, "rstd"), "C=%d", C);
        free(x), free(w), free(y), free(want);
    }
}

// collm_ops_rope_rows with a table of positions 0..5000 indexed by each row's
// position equals collm_ops_rope_forward / _backward bit for bit; with a
// per-row table (rows NULL) too; the table holds cos/sin of the angles.
static void test_rope_table(void) {
    int T = 9, nh = 3, hd = 16, n_pos = 5001;
    int32_t pos[9] = {0, 1, 2, 7, 100, 511, 2047, 3000, 5};
    int32_t *all = malloc(sizeof(int32_t) * n_pos);
    for (int i = 0; i < n_pos; i++) all[i] = i;
    int rots[2] = {16, 10};
    for (int neox = 0; neox < 2; neox++)
        for (int ri = 0; ri < 2; ri++)
            for (int backward = 0; backward < 2; backward++) {
                int n_rot = rots[ri];
                int64_t n = (int64_t)T * nh * hd;
                float *a = rand_vec(n, 1), *b = malloc(sizeof(float) * n), *c = malloc(sizeof(float) * n);
                float *cs = malloc(sizeof(float) * T * n_rot), *table = malloc(sizeof(float) * n_pos * n_rot);
                memcpy(b, a, sizeof(float) * n);
                memcpy(c, a, sizeof(float) * n);
                if (backward) collm_ops_rope_backward(a, pos, T, nh, hd, n_rot, 10000.0f, neox);
                else collm_ops_rope_forward(a, pos, T, nh, hd, n_rot, 10000.0f, neox);
                collm_ops_rope_table(cs, pos, T, n_rot, 10000.0f);
                collm_ops_rope_rows(b, cs, NULL, T, nh, hd, n_rot, neox, backward);
                collm_ops_rope_table(table, all, n_pos, n_rot, 10000.0f);
                collm_ops_rope_rows(c, table, pos, T, nh, hd, n_rot, neox, backward);
                CHECK_MSG(memcmp(a, b, sizeof(float) * n) == 0 && memcmp(a, c, sizeof(float) * n) == 0,
                          "rope table neox=%d n_rot=%d backward=%d", neox, n_rot, backward);
                CHECK_NEAR(cs[(3 * (n_rot / 2) + 1) * 2], cos(7.0 * pow(10000.0, -2.0 / n_rot)), 1e-7);
                CHECK_NEAR(cs[(3 * (n_rot / 2) + 1) * 2 + 1], sin(7.0 * pow(10000.0, -2.0 / n_rot)), 1e-7);
                free(a), free(b), free(c), free(cs), free(table);
            }
    free(all);
}

int main(void) {
    collm_rng_seed(&rng, 4321);
    test_attention_blocked();
    test_attention_packed();
    test_swiglu_tails();
    test_rmsnorm_tails();
    test_rope_table();
    return test_report();
}
