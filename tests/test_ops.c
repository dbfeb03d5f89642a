// Numeric kernels: every forward against a naive double-precision reference
// written here independently; every backward against central finite
// differences of L = Σ r ⊙ y (r fixed random); attention thread-count
// determinism; Adam and BCE against hand-computed values.
#include "core/ops.h"
#include "core/rng.h"
#include "collm/threadpool.h"
#include "test.h"

#include <pthread.h>
#include <stdint.h>

static collm_rng rng;

static float *rand_vec(int64_t n, float scale) {
    float *x = malloc((size_t)n * sizeof *x);
    for (int64_t i = 0; i < n; i++) x[i] = (float)(collm_rng_normal(&rng) * scale);
    return x;
}

static float *zeros(int64_t n) { return calloc((size_t)n, sizeof(float)); }

// max |a - b| relative to max(|b|, 1e-3)... per element: |a-b| <= abs + rel·|b|
static int close_vec(const float *a, const double *b, int64_t n, double rel, double abs_tol, const char *what) {
    int ok = 1;
    for (int64_t i = 0; i < n; i++) {
        double err = fabs((double)a[i] - b[i]);
        if (!(err <= abs_tol + rel * fabs(b[i]))) {
            if (ok) fprintf(stderr, "  %s[%lld]: got %.8g want %.8g\n", what, (long long)i, a[i], b[i]);
            ok = 0;
        }
    }
    return ok;
}

// ---------------------------------------------------------------------------
// naive references in double

static void ref_matmul(double *y, const float *x, const float *w, const float *b, int T, int in, int out) {
    for (int t = 0; t < T; t++)
        for (int o = 0; o < out; o++) {
            double s = b ? b[o] : 0.0;
            for (int i = 0; i < in; i++) s += (double)x[t * in + i] * w[o * in + i];
            y[t * out + o] = s;
        }
}

static void ref_rmsnorm(double *y, const float *x, const float *w, int T, int C, double eps) {
    for (int t = 0; t < T; t++) {
        double ms = 0;
        for (int i = 0; i < C; i++) ms += (double)x[t * C + i] * x[t * C + i];
        ms /= C;
        for (int i = 0; i < C; i++) y[t * C + i] = x[t * C + i] / sqrt(ms + eps) * w[i];
    }
}

// Builds each head's rotated vector from the definition: complex pairs.
static void ref_rope(double *y, const float *x, const int32_t *pos, int T, int nh, int hd, int n_rot, double base,
                     int neox) {
    for (int t = 0; t < T; t++)
        for (int h = 0; h < nh; h++) {
            const float *xh = x + (t * nh + h) * hd;
            double *yh = y + (t * nh + h) * hd;
            for (int d = 0; d < hd; d++) yh[d] = xh[d]; // pass-through part
            for (int i = 0; i < n_rot / 2; i++) {
                double freq = 1.0 / pow(base, (double)(2 * i) / n_rot);
                double ang = pos[t] * freq;
                int a = neox ? i : 2 * i, b = neox ? i + n_rot / 2 : 2 * i + 1;
                // (xa + i xb) · e^{i ang}
                yh[a] = xh[a] * cos(ang) - xh[b] * sin(ang);
                yh[b] = xh[b] * cos(ang) + xh[a] * sin(ang);
            }
        }
}

static void ref_attention(double *out, const float *q, const float *k, const float *v, int T, int n_past, int nh,
                          int nkv, int hd) {
    int L = n_past + T;
    double *sc = malloc(sizeof(double) * L);
    for (int h = 0; h < nh; h++) {
        int kvh = h * nkv / nh;
        for (int t = 0; t < T; t++) {
            int last = n_past + t;
            double mx = -1e300, sum = 0;
            for (int j = 0; j <= last; j++) {
                double s = 0;
                for (int d = 0; d < hd; d++) s += (double)q[(t * nh + h) * hd + d] * k[(j * nkv + kvh) * hd + d];
                sc[j] = s / sqrt((double)hd);
                if (sc[j] > mx) mx = sc[j];
            }
            for (int j = 0; j <= last; j++) sum += (sc[j] = exp(sc[j] - mx));
            for (int d = 0; d < hd; d++) {
                double o = 0;
                for (int j = 0; j <= last; j++) o += sc[j] / sum * v[(j * nkv + kvh) * hd + d];
                out[(t * nh + h) * hd + d] = o;
            }
        }
    }
    free(sc);
}

// ---------------------------------------------------------------------------
// forward tests

static void test_matmul_forward(void) {
    int T = 5, in = 13, out = 7;
    float *x = rand_vec(T * in, 1), *w = rand_vec(out * in, 1), *b = rand_vec(out, 1);
    float *y = zeros(T * out);
    double *ref = malloc(sizeof(double) * T * out);
    collm_ops_matmul_forward(y, x, w, b, T, in, out, NULL);
    ref_matmul(ref, x, w, b, T, in, out);
    CHECK(close_vec(y, ref, T * out, 1e-5, 1e-5, "matmul+bias"));
    for (int i = 0; i < T * out; i++) y[i] = 123.0f; // must be overwritten, not accumulated
    collm_ops_matmul_forward(y, x, w, NULL, T, in, out, NULL);
    ref_matmul(ref, x, w, NULL, T, in, out);
    CHECK(close_vec(y, ref, T * out, 1e-5, 1e-5, "matmul"));
    free(x), free(w), free(b), free(y), free(ref);
}

// collm_ops_gemm, every transpose form, every kernel (row dots: x·W^T only), sizes that leave
// partial micro-tiles (and K past one 256-deep block), C = and C +=, against a
// double reference; with pools of 2 and 3 threads (BLAS single-threaded, as the
// pool path wants) collm's kernel and the row dots give the same bits as on the calling
// thread, and either kernel the same bits every time.
static void test_gemm(void) {
    static const int dims[][3] = {{1, 1, 1}, {7, 5, 3}, {13, 33, 17}, {37, 70, 300}, {130, 41, 513}, {300, 290, 64},
                                   {250, 200, 300}, {40, 600, 300}, {3, 700, 300}, {400, 1100, 40}}; // from {300, 290, 64}: several slabs;
                                   // on a pool with M >= 192, collm_ops_gemm's chunks against B packed once (N > 1024: two column blocks)
    collm_pool *p2 = collm_pool_create(2), *p3 = collm_pool_create(3);
    collm_blas_set_threads(1);
    for (size_t d = 0; d < sizeof dims / sizeof *dims; d++) {
        const int M = dims[d][0], N = dims[d][1], K = dims[d][2];
        float *A = rand_vec((int64_t)M * K, 1.0f), *B = rand_vec((int64_t)K * N, 1.0f), *C0 = rand_vec((int64_t)M * N, 1.0f);
        float *C = malloc((size_t)M * N * sizeof(float)), *Cp = malloc((size_t)M * N * sizeof(float));
        double *ref = malloc((size_t)M * N * sizeof(double));
        for (int form = 0; form < 4; form++) {
            const int ta = form & 1, tb = form >> 1, lda = ta ? M : K, ldb = tb ? K : N;
            for (int acc = 0; acc < 2; acc++) {
                for (int i = 0; i < M; i++)
                    for (int j = 0; j < N; j++) {
                        double sum = acc ? C0[i * N + j] : 0.0;
                        for (int k = 0; k < K; k++)
                            sum += (double)(ta ? A[k * M + i] : A[i * K + k]) * (tb ? B[j * K + k] : B[k * N + j]);
                        ref[i * N + j] = sum;
                    }
                for (int kernel = COLLM_GEMM_BLAS; kernel <= COLLM_GEMM_DOT; kernel++) {
                    memcpy(C, C0, (size_t)M * N * sizeof(float));
                    collm_ops_gemm(ta, tb, M, N, K, A, lda, B, ldb, acc, C, N, kernel, NULL);
                    char what[96];
                    snprintf(what, sizeof what, "gemm %dx%dx%d ta=%d tb=%d acc=%d kernel=%d", M, N, K, ta, tb, acc, kernel);
                    CHECK(close_vec(C, ref, (int64_t)M * N, 1e-5, 1e-5 * sqrt((double)K), what));
                    collm_pool *pools[2] = {p2, p3};
                    for (int p = 0; p < 2; p++) {
                        memcpy(Cp, C0, (size_t)M * N * sizeof(float));
                        collm_ops_gemm(ta, tb, M, N, K, A, lda, B, ldb, acc, Cp, N, kernel, pools[p]);
                        if (kernel == COLLM_GEMM_OWN || (kernel == COLLM_GEMM_DOT && !ta && tb)) // the same sums whatever the slabs
                            CHECK_MSG(memcmp(C, Cp, (size_t)M * N * sizeof(float)) == 0, "%s: pool of %d differs",
                                      what, collm_pool_size(pools[p]));
                        else // OpenBLAS's own order may depend on the slab: the reference, and repeatable
                            CHECK(close_vec(Cp, ref, (int64_t)M * N, 1e-5, 1e-5 * sqrt((double)K), what));
                        memcpy(C, C0, (size_t)M * N * sizeof(float));
                        collm_ops_gemm(ta, tb, M, N, K, A, lda, B, ldb, acc, C, N, kernel, pools[p]);
                        CHECK_MSG(memcmp(C, Cp, (size_t)M * N * sizeof(float)) == 0, "%s: pool of %d not repeatable",
                                  what, collm_pool_size(pools[p]));
                    }
                }
            }
        }
        free(A), free(B), free(C0), free(C), free(Cp), free(ref);
    }
    collm_blas_set_threads(2);
    collm_pool_free(p2), collm_pool_free(p3);
}

static void test_rmsnorm_forward(void) {
    int T = 4, C = 19;
    float *x = rand_vec(T * C, 2), *w = rand_vec(C, 1), *y = zeros(T * C), *rstd = zeros(T);
    double *ref = malloc(sizeof(double) * T * C);
    collm_ops_rmsnorm_forward(y, rstd, x, w, T, C, 1e-5f);
    ref_rmsnorm(ref, x, w, T, C, 1e-5);
    CHECK(close_vec(y, ref, T * C, 1e-5, 1e-6, "rmsnorm"));
    double ms = 0;
    for (int i = 0; i < C; i++) ms += (double)x[i] * x[i];
    CHECK_NEAR(rstd[0], 1.0 / sqrt(ms / C + 1e-5), 1e-5 / sqrt(ms / C));
    free(x), free(w), free(y), free(rstd), free(ref);
}

static void test_rope_forward(void) {
    int T = 5, nh = 3, hd = 12;
    int32_t pos[5] = {0, 1, 7, 100, 2047};
    int n_rots[2] = {hd, 8};
    for (int neox = 0; neox <= 1; neox++)
        for (int r = 0; r < 2; r++) {
            int n_rot = n_rots[r];
            float *x = rand_vec(T * nh * hd, 1), *y = malloc(sizeof(float) * T * nh * hd);
            double *ref = malloc(sizeof(double) * T * nh * hd);
            memcpy(y, x, sizeof(float) * T * nh * hd);
            collm_ops_rope_forward(y, pos, T, nh, hd, n_rot, 10000.0f, neox);
            ref_rope(ref, x, pos, T, nh, hd, n_rot, 10000.0, neox);
            CHECK_MSG(close_vec(y, ref, T * nh * hd, 1e-5, 1e-5, "rope"), "neox=%d n_rot=%d", neox, n_rot);
            // position 0 is the identity; dims >= n_rot pass through bit-exactly
            int ok = 1;
            for (int i = 0; i < nh * hd; i++) ok &= y[i] == x[i];
            for (int i = 0; i < T * nh; i++)
                for (int d = n_rot; d < hd; d++) ok &= y[i * hd + d] == x[i * hd + d];
            CHECK(ok);
            free(x), free(y), free(ref);
        }
    // modes really differ: NORM rotates (0,1) at pos 1, NEOX rotates (0, n_rot/2)
    float a[4] = {1, 0, 0, 0}, b[4] = {1, 0, 0, 0};
    int32_t p1 = 1;
    collm_ops_rope_forward(a, &p1, 1, 1, 4, 4, 10000.0f, 0);
    collm_ops_rope_forward(b, &p1, 1, 1, 4, 4, 10000.0f, 1);
    CHECK_NEAR(a[0], cos(1.0), 1e-6);
    CHECK_NEAR(a[1], sin(1.0), 1e-6);
    CHECK_NEAR(b[0], cos(1.0), 1e-6);
    CHECK_NEAR(b[2], sin(1.0), 1e-6);
    CHECK(b[1] == 0.0f && a[2] == 0.0f);
}

static void test_swiglu_relu_forward(void) {
    float g[6] = {-30, -2, -0.5f, 0, 1.5f, 30}, u[6] = {1, 2, -3, 4, 0.5f, -1}, h[6], y[6];
    collm_ops_swiglu_forward(h, g, u, 6);
    int ok = 1;
    for (int i = 0; i < 6; i++) {
        double want = g[i] / (1.0 + exp(-(double)g[i])) * u[i];
        ok &= fabs(h[i] - want) <= 1e-6 + 1e-6 * fabs(want);
    }
    CHECK(ok);
    collm_ops_relu_forward(y, g, 6);
    CHECK(y[0] == 0 && y[1] == 0 && y[2] == 0 && y[3] == 0 && y[4] == 1.5f && y[5] == 30);
}

static void test_attention_forward(void) {
    int nh = 4, nkv = 2, hd = 8;
    int cases[3][2] = {{5, 0}, {4, 3}, {1, 6}}; // (T, n_past)
    for (int c = 0; c < 3; c++) {
        int T = cases[c][0], n_past = cases[c][1], L = T + n_past;
        float *q = rand_vec(T * nh * hd, 1), *k = rand_vec(L * nkv * hd, 1), *v = rand_vec(L * nkv * hd, 1);
        float *out = zeros(T * nh * hd), *out2 = zeros(T * nh * hd), *att = zeros(nh * T * L);
        double *ref = malloc(sizeof(double) * T * nh * hd);
        ref_attention(ref, q, k, v, T, n_past, nh, nkv, hd);
        for (int i = 0; i < nh * T * L; i++) att[i] = 7.0f; // every entry must be written
        collm_ops_attention_forward(out, att, q, k, v, T, n_past, nh, nkv, hd, NULL, NULL);
        CHECK_MSG(close_vec(out, ref, T * nh * hd, 1e-5, 1e-5, "attention"), "T=%d n_past=%d", T, n_past);
        collm_ops_attention_forward(out2, NULL, q, k, v, T, n_past, nh, nkv, hd, NULL, NULL); // online-softmax path
        CHECK_MSG(close_vec(out2, ref, T * nh * hd, 1e-5, 1e-5, "attention (no att)"), "T=%d n_past=%d", T,
                  n_past);
        // att rows sum to 1, zero beyond the causal limit
        int ok = 1;
        for (int h = 0; h < nh; h++)
            for (int t = 0; t < T; t++) {
                double s = 0;
                for (int j = 0; j < L; j++) {
                    float p = att[(h * T + t) * L + j];
                    if (j > n_past + t) ok &= p == 0.0f;
                    s += p;
                }
                ok &= fabs(s - 1.0) < 1e-5;
            }
        CHECK(ok);
        free(q), free(k), free(v), free(out), free(out2), free(att), free(ref);
    }
    // huge scores: the stable softmax must not overflow to NaN/inf
    float q[4] = {100, 100, 100, 100}, k[8] = {100, 100, 100, 100, -100, -100, -100, -100};
    float v[8] = {1, 2, 3, 4, 5, 6, 7, 8}, out[4], out2[4], att[2];
    collm_ops_attention_forward(out, att, q, k, v, 1, 1, 1, 1, 4, NULL, NULL);
    collm_ops_attention_forward(out2, NULL, q, k, v, 1, 1, 1, 1, 4, NULL, NULL);
    CHECK(out[0] == 1 && out[3] == 4 && att[0] == 1 && att[1] == 0);
    CHECK(out2[0] == 1 && out2[3] == 4);
}

// Keys and values in two parts (the shared rows, then a prompt's own;
// collm_ops_attention_forward_split): against the double reference, and bit
// for bit the output of collm_ops_attention_forward over the same keys
// together with att, whether the split's probabilities go to att or stay in
// the scratch; splits inside a 32-key panel of the packed kernel, at its
// edges, at 0 and past the end; long enough for several query blocks and
// panels; GQA; one thread and a pool of 3.
static void test_attention_forward_split(void) {
    const int nh = 4, nkv = 2, hd = 16, T = 150, n_past = 37, L = T + n_past;
    float *q = rand_vec(T * nh * hd, 1), *k = rand_vec(L * nkv * hd, 1), *v = rand_vec(L * nkv * hd, 1);
    float *out = zeros(T * nh * hd), *out2 = zeros(T * nh * hd), *att = zeros(nh * T * L), *att2 = zeros(nh * T * L);
    float *k1 = zeros(L * nkv * hd), *v1 = zeros(L * nkv * hd), *k2 = zeros(L * nkv * hd), *v2 = zeros(L * nkv * hd);
    double *ref = malloc(sizeof(double) * T * nh * hd);
    ref_attention(ref, q, k, v, T, n_past, nh, nkv, hd);
    collm_ops_attention_forward(out, att, q, k, v, T, n_past, nh, nkv, hd, NULL, NULL);
    CHECK(close_vec(out, ref, T * nh * hd, 1e-5, 1e-5, "attention (split reference)"));
    collm_pool *pool = collm_pool_create(3);
    const int splits[] = {0, 1, 16, 31, 32, 33, 37, 100, L - 1, L};
    for (size_t c = 0; c < sizeof splits / sizeof *splits; c++)
        for (int with_att = 0; with_att < 2; with_att++)
            for (int pooled = 0; pooled < 2; pooled++) {
                const int f = splits[c];
                // the two parts in separate buffers, each padded with garbage that must not be read
                for (int i = 0; i < L * nkv * hd; i++) k1[i] = v1[i] = k2[i] = v2[i] = NAN;
                memcpy(k1, k, sizeof(float) * f * nkv * hd);
                memcpy(v1, v, sizeof(float) * f * nkv * hd);
                memcpy(k2, k + f * nkv * hd, sizeof(float) * (L - f) * nkv * hd);
                memcpy(v2, v + f * nkv * hd, sizeof(float) * (L - f) * nkv * hd);
                memset(out2, 0, sizeof(float) * T * nh * hd);
                CHECK(collm_ops_attention_forward_split(out2, with_att ? att2 : NULL, q, k1, v1, f, k2, v2, T, n_past,
                                                        nh, nkv, hd, pooled ? pool : NULL, NULL) == 0);
                CHECK_MSG(memcmp(out, out2, sizeof(float) * T * nh * hd) == 0,
                          "split at %d (att %d, pool %d): not the bits of the unsplit attention", f, with_att, pooled);
                if (with_att)
                    CHECK_MSG(memcmp(att, att2, sizeof(float) * nh * T * L) == 0, "split at %d: probabilities differ",
                              f);
            }
    collm_pool_free(pool);
    free(q), free(k), free(v), free(out), free(out2), free(att), free(att2), free(k1), free(v1), free(k2), free(v2);
    free(ref);
}

// The backward with the keys in two parts (collm_ops_attention_backward_split,
// the trainer's shared rows then a prompt's own): bit for bit the one-part
// backward over the same keys, dq, dk, dv accumulated onto the same nonzero
// starting values; the key, value and gradient buffers padded with canaries
// that must be neither read (NaN keys) nor written; the same splits as the
// forward's, several query blocks, GQA, one thread and a pool of 3.
static void test_attention_backward_split(void) {
    const int nh = 4, nkv = 2, hd = 16, T = 150, n_past = 37, L = T + n_past, nq = T * nh * hd, nk = L * nkv * hd;
    float *q = rand_vec(nq, 1), *k = rand_vec(nk, 1), *v = rand_vec(nk, 1), *dout = rand_vec(nq, 1);
    float *out = zeros(nq), *att = zeros(nh * T * L), *base = rand_vec(nk, 1), *dq0 = rand_vec(nq, 1);
    float *dq = zeros(nq), *dk = zeros(nk), *dv = zeros(nk), *dq2 = zeros(nq);
    float *k1 = zeros(nk), *v1 = zeros(nk), *k2 = zeros(nk), *v2 = zeros(nk);
    float *dk1 = zeros(nk + 1), *dv1 = zeros(nk + 1), *dk2 = zeros(nk + 1), *dv2 = zeros(nk + 1);
    collm_ops_attention_forward(out, att, q, k, v, T, n_past, nh, nkv, hd, NULL, NULL);
    memcpy(dq, dq0, sizeof(float) * nq);
    memcpy(dk, base, sizeof(float) * nk);
    memcpy(dv, base, sizeof(float) * nk);
    CHECK(collm_ops_attention_backward(dq, dk, dv, dout, att, q, k, v, T, n_past, nh, nkv, hd, NULL, NULL) == 0);
    collm_pool *pool = collm_pool_create(3);
    const int splits[] = {0, 1, 16, 31, 32, 33, 37, 100, L - 1, L};
    for (size_t c = 0; c < sizeof splits / sizeof *splits; c++)
        for (int pooled = 0; pooled < 2; pooled++) {
            const int f = splits[c], n1 = f * nkv * hd, n2 = (L - f) * nkv * hd;
            for (int i = 0; i < nk; i++) k1[i] = v1[i] = k2[i] = v2[i] = NAN;
            for (int i = 0; i <= nk; i++) dk1[i] = dv1[i] = dk2[i] = dv2[i] = 12345.0f;
            memcpy(k1, k, sizeof(float) * n1), memcpy(v1, v, sizeof(float) * n1);
            memcpy(k2, k + n1, sizeof(float) * n2), memcpy(v2, v + n1, sizeof(float) * n2);
            memcpy(dk1, base, sizeof(float) * n1), memcpy(dv1, base, sizeof(float) * n1);
            memcpy(dk2, base + n1, sizeof(float) * n2), memcpy(dv2, base + n1, sizeof(float) * n2);
            memcpy(dq2, dq0, sizeof(float) * nq);
            CHECK(collm_ops_attention_backward_split(dq2, dk1, dv1, dk2, dv2, dout, att, q, k1, v1, f, k2, v2, T, n_past,
                                                     nh, nkv, hd, pooled ? pool : NULL, NULL) == 0);
            CHECK_MSG(memcmp(dq, dq2, sizeof(float) * nq) == 0, "backward split at %d (pool %d): dq differs", f, pooled);
            CHECK_MSG(memcmp(dk, dk1, sizeof(float) * n1) == 0 && memcmp(dk + n1, dk2, sizeof(float) * n2) == 0,
                      "backward split at %d (pool %d): dk differs", f, pooled);
            CHECK_MSG(memcmp(dv, dv1, sizeof(float) * n1) == 0 && memcmp(dv + n1, dv2, sizeof(float) * n2) == 0,
                      "backward split at %d (pool %d): dv differs", f, pooled);
            CHECK_MSG(dk1[n1] == 12345.0f && dv1[n1] == 12345.0f && dk2[n2] == 12345.0f && dv2[n2] == 12345.0f,
                      "backward split at %d: wrote past a part", f);
        }
    collm_pool_free(pool);
    free(q), free(k), free(v), free(dout), free(out), free(att), free(base), free(dq0), free(dq), free(dk), free(dv);
    free(dq2), free(k1), free(v1), free(k2), free(v2), free(dk1), free(dv1), free(dk2), free(dv2);
}

// Attention over a context longer than any stack allows (issue 8: the score
// rows were stack arrays of n_past + T floats; n_ctx up to 2^24 is accepted).
// Runs on a thread with a 256 KiB stack and a large guard, so a score row on
// the stack (800 KB here) lands in the guard and crashes instead of passing.
#define LONG_L 200000
static void *attention_long_context_body(void *arg) {
    (void)arg;
    const int L = LONG_L, n_past = L - 1, hd = 4;
    float *q = rand_vec(hd, 1), *k = rand_vec((int64_t)L * hd, 1), *v = rand_vec((int64_t)L * hd, 1);
    float *out = zeros(hd), *out2 = zeros(hd), *att = zeros(L), *dout = rand_vec(hd, 1);
    float *dq = zeros(hd), *dk = zeros((int64_t)L * hd), *dv = zeros((int64_t)L * hd);
    double ref[4];
    ref_attention(ref, q, k, v, 1, n_past, 1, 1, hd);
    CHECK(collm_ops_attention_forward(out, NULL, q, k, v, 1, n_past, 1, 1, hd, NULL, NULL) == 0); // scratch path
    CHECK(close_vec(out, ref, hd, 1e-5, 1e-5, "long attention"));
    // packed: one row at position L - 1 after an (L - 1)-key prefix
    int32_t pos = L - 1;
    CHECK(collm_ops_attention_packed_forward(out2, q, NULL, 1, k, v, n_past, k + (int64_t)n_past * hd,
                                             v + (int64_t)n_past * hd, &pos, 1, 1, hd, NULL, NULL, NULL) == 0);
    CHECK(close_vec(out2, ref, hd, 1e-5, 1e-5, "long packed attention"));
    // backward with one query: dv_j = P_j · dout, dq = scale Σ_j P_j (dout·v_j - dout·o) k_j
    CHECK(collm_ops_attention_forward(out, att, q, k, v, 1, n_past, 1, 1, hd, NULL, NULL) == 0);
    CHECK(collm_ops_attention_backward(dq, dk, dv, dout, att, q, k, v, 1, n_past, 1, 1, hd, NULL, NULL) == 0);
    double dq_ref[4] = {0}, d_o = 0, dv_err = 0;
    for (int d = 0; d < hd; d++) d_o += (double)dout[d] * out[d];
    for (int j = 0; j < L; j++) {
        double dp = 0;
        for (int d = 0; d < hd; d++) {
            dp += (double)dout[d] * v[(int64_t)j * hd + d];
            double e = fabs(dv[(int64_t)j * hd + d] - (double)att[j] * dout[d]);
            dv_err = e > dv_err ? e : dv_err;
        }
        for (int d = 0; d < hd; d++) dq_ref[d] += att[j] * (dp - d_o) * k[(int64_t)j * hd + d] / sqrt((double)hd);
    }
    CHECK(dv_err < 1e-6);
    CHECK(close_vec(dq, dq_ref, hd, 1e-4, 1e-4, "long attention dq"));
    free(q), free(k), free(v), free(out), free(out2), free(att), free(dout), free(dq), free(dk), free(dv);
    return NULL;
}

static void test_attention_long_context(void) {
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 << 10);
    pthread_attr_setguardsize(&attr, 8 << 20);
    pthread_t th;
    int rc = pthread_create(&th, &attr, attention_long_context_body, NULL);
    if (rc == 0) pthread_join(th, NULL);
    CHECK(rc == 0); // after the join: the thread's CHECKs write the same counters
    pthread_attr_destroy(&attr);
}

// ---------------------------------------------------------------------------
// gradient checks. Each op is wrapped as a scalar loss L = Σ r ⊙ y (r fixed,
// L summed in double); the analytic gradient comes from backward with dy = r
// into buffers pre-filled with a random "already accumulated" value, which is
// subtracted again (so an overwrite instead of += fails too).

typedef double (*loss_fn)(void *ctx);

static double weighted_sum(const float *y, const float *r, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)y[i] * r[i];
    return s;
}

// Central differences on every element of `param`, compared to `analytic`.
static int gradcheck(loss_fn f, void *ctx, float *param, const float *analytic, int64_t n, const char *what) {
    const float h = 1e-3f;
    int ok = 1;
    double max_err = 0;
    for (int64_t i = 0; i < n; i++) {
        float save = param[i];
        param[i] = save + h;
        double lp = f(ctx);
        param[i] = save - h;
        double lm = f(ctx);
        param[i] = save;
        double num = (lp - lm) / (2.0 * (double)h);
        double err = fabs(num - analytic[i]);
        if (err > max_err) max_err = err;
        if (!(err <= 1e-3 + 1e-2 * fabs(num))) {
            if (ok) fprintf(stderr, "  %s[%lld]: analytic %.7g numeric %.7g\n", what, (long long)i, analytic[i], num);
            ok = 0;
        }
    }
    if (!ok) fprintf(stderr, "  %s: max abs error %.3g\n", what, max_err);
    return ok;
}

// grad buffer pre-filled with noise; returns it and keeps a copy of the noise
typedef struct {
    float *g, *init;
    int64_t n;
} acc_buf;

static acc_buf acc_new(int64_t n) {
    acc_buf a = {rand_vec(n, 1), malloc((size_t)n * sizeof(float)), n};
    memcpy(a.init, a.g, (size_t)n * sizeof(float));
    return a;
}
// g - init in place: the part backward added
static float *acc_delta(acc_buf *a) {
    for (int64_t i = 0; i < a->n; i++) a->g[i] -= a->init[i];
    return a->g;
}
static void acc_free(acc_buf *a) { free(a->g), free(a->init); }

// --- matmul
typedef struct {
    float *x, *w, *b, *y, *r;
    int T, in, out;
} mm_ctx;

static double mm_loss(void *c_) {
    mm_ctx *c = c_;
    collm_ops_matmul_forward(c->y, c->x, c->w, c->b, c->T, c->in, c->out, NULL);
    return weighted_sum(c->y, c->r, (int64_t)c->T * c->out);
}

static void test_matmul_backward(void) {
    mm_ctx c = {.T = 4, .in = 9, .out = 6};
    c.x = rand_vec(c.T * c.in, 1), c.w = rand_vec(c.out * c.in, 1), c.b = rand_vec(c.out, 1);
    c.y = zeros(c.T * c.out), c.r = rand_vec(c.T * c.out, 1);
    acc_buf dx = acc_new(c.T * c.in), dw = acc_new(c.out * c.in), db = acc_new(c.out);
    collm_ops_matmul_backward(dx.g, dw.g, db.g, c.r, c.x, c.w, c.T, c.in, c.out, NULL);
    CHECK(gradcheck(mm_loss, &c, c.x, acc_delta(&dx), dx.n, "matmul dx"));
    CHECK(gradcheck(mm_loss, &c, c.w, acc_delta(&dw), dw.n, "matmul dw"));
    CHECK(gradcheck(mm_loss, &c, c.b, acc_delta(&db), db.n, "matmul dbias"));
    // NULL gradients are skipped; a lone dx gives the same values
    float *dx2 = zeros(dx.n);
    collm_ops_matmul_backward(dx2, NULL, NULL, c.r, c.x, c.w, c.T, c.in, c.out, NULL);
    int ok = 1;
    for (int64_t i = 0; i < dx.n; i++) ok &= fabsf(dx2[i] - dx.g[i]) <= 1e-5f;
    CHECK(ok);
    free(dx2);
    acc_free(&dx), acc_free(&dw), acc_free(&db);
    free(c.x), free(c.w), free(c.b), free(c.y), free(c.r);
}

// The set form against zeroing dx, then the accumulating form: the same bits
// (an exact zero may differ in sign only), dx's old contents (NaN) never
// read; dw and dbias still add. A shape for the pool's threads and collm's
// kernel, one for BLAS, and out = 0 (dx zeroed).
static void test_matmul_backward_set(void) {
    collm_pool *pool = collm_pool_create(2);
    const int shapes[3][3] = {{300, 128, 256}, {5, 33, 7}, {3, 8, 0}}; // T, in, out
    for (int k = 0; k < 3; k++) {
        const int T = shapes[k][0], in = shapes[k][1], out = shapes[k][2];
        float *dy = rand_vec((int64_t)T * out + 1, 1), *x = rand_vec((int64_t)T * in, 1);
        float *w = rand_vec((int64_t)out * in + 1, 1);
        float *dx_ref = zeros((int64_t)T * in), *dx = zeros((int64_t)T * in);
        float *dw_ref = rand_vec((int64_t)out * in + 1, 1), *dw = malloc(((size_t)out * in + 1) * sizeof(float));
        float *db_ref = rand_vec(out + 1, 1), *db = malloc((size_t)(out + 1) * sizeof(float));
        memcpy(dw, dw_ref, ((size_t)out * in + 1) * sizeof(float));
        memcpy(db, db_ref, (size_t)(out + 1) * sizeof(float));
        for (int64_t i = 0; i < (int64_t)T * in; i++) dx[i] = NAN;
        collm_ops_matmul_backward(dx_ref, dw_ref, db_ref, dy, x, w, T, in, out, pool);
        collm_ops_matmul_backward_set(dx, dw, db, dy, x, w, T, in, out, pool);
        int same = 1;
        for (int64_t i = 0; i < (int64_t)T * in; i++) same &= dx[i] == dx_ref[i] && !isnan(dx[i]);
        same &= memcmp(dw, dw_ref, (size_t)out * in * sizeof(float)) == 0;
        same &= memcmp(db, db_ref, (size_t)out * sizeof(float)) == 0;
        CHECK(same);
        free(dy), free(x), free(w), free(dx_ref), free(dx), free(dw_ref), free(dw), free(db_ref), free(db);
    }
    collm_pool_free(pool);
}

// collm_ops_matmul_backward_set_with: dx chunks, the product's own weight
// gradient and two more (collm_ops_dw) in one pool job give the bits of
// running them one after another (collm_ops_matmul_backward_set, then
// collm_ops_gemm for each extra dW), on pools of 2 and 3 with BLAS on one
// thread (as the CLI runs): shapes where dx goes to collm's kernel in chunks
// and every dW is cut into one part per thread; and the sequential fallback
// (no pool).
static void test_matmul_backward_with(void) {
    collm_blas_set_threads(1);
    collm_pool *p2 = collm_pool_create(2), *p3 = collm_pool_create(3);
    collm_pool *pools[3] = {p2, p3, NULL};
    const int T = 480, in = 256, out = 256, in2 = 256, out2 = 300, in3 = 100, out3 = 64;
    float *dy = rand_vec((int64_t)T * out, 1), *x = rand_vec((int64_t)T * in, 1), *w = rand_vec((int64_t)out * in, 1);
    float *dy2 = rand_vec((int64_t)T * out2, 1), *x2 = rand_vec((int64_t)T * in2, 1);
    float *dy3 = rand_vec((int64_t)T * out3, 1), *x3 = rand_vec((int64_t)T * in3, 1);
    float *init = rand_vec((int64_t)out2 * in2, 1); // the gradients' earlier contents (they add)
    for (int k = 0; k < 3; k++) {
        collm_pool *pool = pools[k];
        float *dx_ref = zeros((int64_t)T * in), *dx = zeros((int64_t)T * in);
        float *dw_ref = zeros((int64_t)out * in), *dw = zeros((int64_t)out * in);
        float *db_ref = zeros(out), *db = zeros(out);
        float *dw2_ref = zeros((int64_t)out2 * in2), *dw2 = zeros((int64_t)out2 * in2);
        float *dw3_ref = zeros((int64_t)out3 * in3), *dw3 = zeros((int64_t)out3 * in3);
        memcpy(dw, init, (size_t)out * in * sizeof(float)), memcpy(dw_ref, init, (size_t)out * in * sizeof(float));
        memcpy(dw2, init, (size_t)out2 * in2 * sizeof(float)), memcpy(dw2_ref, init, (size_t)out2 * in2 * sizeof(float));
        collm_ops_matmul_backward_set(dx_ref, dw_ref, db_ref, dy, x, w, T, in, out, pool);
        collm_ops_gemm(1, 0, out2, in2, T, dy2, out2, x2, in2, 1, dw2_ref, in2, COLLM_GEMM_AUTO, pool);
        collm_ops_gemm(1, 0, out3, in3, T, dy3, out3, x3, in3, 1, dw3_ref, in3, COLLM_GEMM_AUTO, pool);
        collm_ops_dw extra[2];
        const int parts2 = collm_ops_dw_plan(&extra[0], dw2, dy2, x2, T, in2, out2, pool);
        collm_ops_dw_plan(&extra[1], dw3, dy3, x3, T, in3, out3, pool);
        CHECK_MSG(parts2 == (pool ? collm_pool_size(pool) : 1), "pool %d: dW in %d parts", k, parts2);
        for (int64_t i = 0; i < (int64_t)T * in; i++) dx[i] = NAN; // set, never read
        collm_ops_matmul_backward_set_with(dx, dw, db, dy, x, w, T, in, out, extra, 2, pool);
        CHECK_MSG(memcmp(dx, dx_ref, (size_t)T * in * sizeof(float)) == 0, "pool %d: dx", k);
        CHECK_MSG(memcmp(dw, dw_ref, (size_t)out * in * sizeof(float)) == 0, "pool %d: dW", k);
        CHECK_MSG(memcmp(db, db_ref, (size_t)out * sizeof(float)) == 0, "pool %d: dbias", k);
        CHECK_MSG(memcmp(dw2, dw2_ref, (size_t)out2 * in2 * sizeof(float)) == 0, "pool %d: extra dW 1", k);
        CHECK_MSG(memcmp(dw3, dw3_ref, (size_t)out3 * in3 * sizeof(float)) == 0, "pool %d: extra dW 2", k);
        free(dx_ref), free(dx), free(dw_ref), free(dw), free(db_ref), free(db);
        free(dw2_ref), free(dw2), free(dw3_ref), free(dw3);
    }
    free(dy), free(x), free(w), free(dy2), free(x2), free(dy3), free(x3), free(init);
    collm_pool_free(p2);
    collm_pool_free(p3);
    collm_blas_set_threads(2);
}

// --- rmsnorm
typedef struct {
    float *x, *w, *y, *rstd, *r;
    int T, C;
} rms_ctx;

static double rms_loss(void *c_) {
    rms_ctx *c = c_;
    collm_ops_rmsnorm_forward(c->y, c->rstd, c->x, c->w, c->T, c->C, 1e-5f);
    return weighted_sum(c->y, c->r, (int64_t)c->T * c->C);
}

static void test_rmsnorm_backward_at(int C) {
    rms_ctx c = {.T = 3, .C = C};
    c.x = rand_vec(c.T * c.C, 1), c.w = rand_vec(c.C, 1), c.y = zeros(c.T * c.C), c.rstd = zeros(c.T);
    c.r = rand_vec(c.T * c.C, 1);
    acc_buf dx = acc_new(c.T * c.C), dw = acc_new(c.C);
    rms_loss(&c); // rstd for backward
    collm_ops_rmsnorm_backward(dx.g, dw.g, c.r, c.x, c.w, c.rstd, c.T, c.C);
    CHECK(gradcheck(rms_loss, &c, c.x, acc_delta(&dx), dx.n, "rmsnorm dx"));
    CHECK(gradcheck(rms_loss, &c, c.w, acc_delta(&dw), dw.n, "rmsnorm dw"));
    acc_free(&dx), acc_free(&dw);
    free(c.x), free(c.w), free(c.y), free(c.rstd), free(c.r);
}

static void test_rmsnorm_backward(void) {
    // C = 11: the row sums' tail alone; 37: two 16-lane blocks and a tail
    for (int C = 11; C <= 37; C += 26) test_rmsnorm_backward_at(C);
}

// --- rope (in place: the loss copies x first)
typedef struct {
    float *x, *y, *r;
    const int32_t *pos;
    int T, nh, hd, n_rot, neox;
} rope_ctx;

static double rope_loss(void *c_) {
    rope_ctx *c = c_;
    int64_t n = (int64_t)c->T * c->nh * c->hd;
    memcpy(c->y, c->x, (size_t)n * sizeof(float));
    collm_ops_rope_forward(c->y, c->pos, c->T, c->nh, c->hd, c->n_rot, 10000.0f, c->neox);
    return weighted_sum(c->y, c->r, n);
}

static void test_rope_backward(void) {
    int32_t pos[3] = {3, 17, 250};
    for (int neox = 0; neox <= 1; neox++)
        for (int n_rot = 4; n_rot <= 8; n_rot += 4) {
            rope_ctx c = {.pos = pos, .T = 3, .nh = 2, .hd = 8, .n_rot = n_rot, .neox = neox};
            int64_t n = c.T * c.nh * c.hd;
            c.x = rand_vec(n, 1), c.y = zeros(n), c.r = rand_vec(n, 1);
            float *dx = malloc(n * sizeof(float));
            memcpy(dx, c.r, n * sizeof(float)); // backward is in place on the gradient
            collm_ops_rope_backward(dx, pos, c.T, c.nh, c.hd, n_rot, 10000.0f, neox);
            CHECK_MSG(gradcheck(rope_loss, &c, c.x, dx, n, "rope dx"), "neox=%d n_rot=%d", neox, n_rot);
            free(dx), free(c.x), free(c.y), free(c.r);
        }
}

// --- swiglu, relu
typedef struct {
    float *g, *u, *h, *r;
    int64_t n;
} glu_ctx;

static double swiglu_loss(void *c_) {
    glu_ctx *c = c_;
    collm_ops_swiglu_forward(c->h, c->g, c->u, c->n);
    return weighted_sum(c->h, c->r, c->n);
}

static double relu_loss(void *c_) {
    glu_ctx *c = c_;
    collm_ops_relu_forward(c->h, c->g, c->n);
    return weighted_sum(c->h, c->r, c->n);
}

static void test_swiglu_relu_backward(void) {
    glu_ctx c = {.n = 40};
    c.g = rand_vec(c.n, 2), c.u = rand_vec(c.n, 1), c.h = zeros(c.n), c.r = rand_vec(c.n, 1);
    acc_buf dg = acc_new(c.n), du = acc_new(c.n);
    collm_ops_swiglu_backward(dg.g, du.g, c.r, c.g, c.u, c.n);
    CHECK(gradcheck(swiglu_loss, &c, c.g, acc_delta(&dg), c.n, "swiglu dg"));
    CHECK(gradcheck(swiglu_loss, &c, c.u, acc_delta(&du), c.n, "swiglu du"));
    acc_free(&dg), acc_free(&du);
    // relu: keep inputs away from the kink at 0 (finite differences straddle it)
    for (int64_t i = 0; i < c.n; i++)
        if (fabsf(c.g[i]) < 0.05f) c.g[i] = c.g[i] < 0 ? -0.1f : 0.1f;
    acc_buf dx = acc_new(c.n);
    collm_ops_relu_backward(dx.g, c.r, c.g, c.n);
    CHECK(gradcheck(relu_loss, &c, c.g, acc_delta(&dx), c.n, "relu dx"));
    acc_free(&dx);
    free(c.g), free(c.u), free(c.h), free(c.r);
}

// --- attention
typedef struct {
    float *q, *k, *v, *out, *att, *r;
    int T, n_past, nh, nkv, hd;
} att_ctx;

static double att_loss(void *c_) {
    att_ctx *c = c_;
    collm_ops_attention_forward(c->out, c->att, c->q, c->k, c->v, c->T, c->n_past, c->nh, c->nkv, c->hd, NULL, NULL);
    return weighted_sum(c->out, c->r, (int64_t)c->T * c->nh * c->hd);
}

static void test_attention_backward(void) {
    int cases[2][2] = {{3, 2}, {4, 0}}; // (T, n_past): with and without a cached prefix
    for (int ci = 0; ci < 2; ci++) {
        att_ctx c = {.T = cases[ci][0], .n_past = cases[ci][1], .nh = 4, .nkv = 2, .hd = 8};
        int L = c.T + c.n_past;
        int64_t nq = c.T * c.nh * c.hd, nk = (int64_t)L * c.nkv * c.hd;
        c.q = rand_vec(nq, 1), c.k = rand_vec(nk, 1), c.v = rand_vec(nk, 1);
        c.out = zeros(nq), c.att = zeros(c.nh * c.T * L), c.r = rand_vec(nq, 1);
        att_loss(&c);
        acc_buf dq = acc_new(nq), dk = acc_new(nk), dv = acc_new(nk);
        collm_ops_attention_backward(dq.g, dk.g, dv.g, c.r, c.att, c.q, c.k, c.v, c.T, c.n_past, c.nh, c.nkv, c.hd, NULL, NULL);
        CHECK_MSG(gradcheck(att_loss, &c, c.q, acc_delta(&dq), nq, "attention dq"), "n_past=%d", c.n_past);
        CHECK_MSG(gradcheck(att_loss, &c, c.k, acc_delta(&dk), nk, "attention dk"), "n_past=%d", c.n_past);
        CHECK_MSG(gradcheck(att_loss, &c, c.v, acc_delta(&dv), nk, "attention dv"), "n_past=%d", c.n_past);
        // the cached prefix really gets gradient (not trivially zero)
        if (c.n_past > 0) {
            double s = 0;
            for (int64_t i = 0; i < (int64_t)c.n_past * c.nkv * c.hd; i++) s += fabs(dk.g[i]) + fabs(dv.g[i]);
            CHECK(s > 1e-2);
        }
        acc_free(&dq), acc_free(&dk), acc_free(&dv);
        free(c.q), free(c.k), free(c.v), free(c.out), free(c.att), free(c.r);
    }
}

// Forward and backward with a pool of 1 and of 3 threads (and no pool) must
// agree bit for bit.
static void test_attention_threads(void) {
    collm_pool *p1 = collm_pool_create(1), *p3 = collm_pool_create(3);
    CHECK(p1 && p3);
    int shapes[2][2] = {{4, 2}, {6, 3}}; // (n_head, n_head_kv)
    for (int si = 0; si < 2; si++) {
        int T = 21, n_past = 5, nh = shapes[si][0], nkv = shapes[si][1], hd = 16, L = T + n_past;
        int64_t nq = (int64_t)T * nh * hd, nk = (int64_t)L * nkv * hd, na = (int64_t)nh * T * L;
        float *q = rand_vec(nq, 1), *k = rand_vec(nk, 1), *v = rand_vec(nk, 1), *dout = rand_vec(nq, 1);
        collm_pool *pools[3] = {NULL, p1, p3};
        float *res[3][5]; // out, att, dq, dk, dv
        for (int p = 0; p < 3; p++) {
            float *out = zeros(nq), *att = zeros(na), *dq = zeros(nq), *dk = zeros(nk), *dv = zeros(nk);
            collm_ops_attention_forward(out, att, q, k, v, T, n_past, nh, nkv, hd, pools[p], NULL);
            collm_ops_attention_backward(dq, dk, dv, dout, att, q, k, v, T, n_past, nh, nkv, hd, pools[p], NULL);
            res[p][0] = out, res[p][1] = att, res[p][2] = dq, res[p][3] = dk, res[p][4] = dv;
        }
        int64_t sizes[5] = {nq, na, nq, nk, nk};
        for (int p = 1; p < 3; p++)
            for (int b = 0; b < 5; b++)
                CHECK_MSG(memcmp(res[0][b], res[p][b], (size_t)sizes[b] * sizeof(float)) == 0,
                          "pool %d buffer %d nh=%d", p, b, nh);
        for (int p = 0; p < 3; p++)
            for (int b = 0; b < 5; b++) free(res[p][b]);
        free(q), free(k), free(v), free(dout);
    }
    collm_pool_free(p1), collm_pool_free(p3);
}

// --- BCE
typedef struct {
    float *s, *y;
    int n;
} bce_ctx;

static double bce_loss(void *c_) {
    bce_ctx *c = c_;
    return collm_ops_bce_with_logits(NULL, c->s, c->y, c->n);
}

static void test_bce(void) {
    // hand-computed: ℓ(0,1) = log 2; ℓ(2,0.3) = 2 - 0.6 + log1p(e^-2); ℓ(±100) and ℓ(±3e38) finite
    float s[8] = {0, 2, 100, 100, -100, -100, 3e38f, -3e38f};
    float y[8] = {1, 0.3f, 1, 0, 1, 0, 1, 1};
    double want[8] = {log(2.0), 1.5269280110429724, 3.720075976020836e-44, 100, 100, 3.720075976020836e-44, 0,
                      3e38};
    for (int i = 0; i < 8; i++) {
        float d;
        double l = collm_ops_bce_with_logits(&d, &s[i], &y[i], 1);
        CHECK_MSG(isfinite(l) && fabs(l - want[i]) <= 1e-6 * fabs(want[i]) + 1e-12, "i=%d loss %.9g want %.9g", i,
                  l, want[i]);
        double sig = 1.0 / (1.0 + exp(-(double)s[i]));
        CHECK_MSG(isfinite(d) && fabs(d - (sig - y[i])) <= 1e-6, "i=%d dlogit %.9g", i, d);
    }
    // mean over n, dlogit scaled by 1/n
    float d2[2];
    double l2 = collm_ops_bce_with_logits(d2, s, y, 2);
    CHECK_NEAR(l2, (log(2.0) + 1.5269280110429724) / 2, 1e-6);
    CHECK_NEAR(d2[0], (0.5 - 1.0) / 2, 1e-7);
    // dlogit against finite differences of the mean loss
    bce_ctx c = {.n = 10};
    c.s = rand_vec(c.n, 3), c.y = malloc(c.n * sizeof(float));
    for (int i = 0; i < c.n; i++) c.y[i] = (float)(i % 3) / 2.0f; // 0, 0.5, 1
    float *d = zeros(c.n);
    collm_ops_bce_with_logits(d, c.s, c.y, c.n);
    CHECK(gradcheck(bce_loss, &c, c.s, d, c.n, "bce dlogit"));
    free(c.s), free(c.y), free(d);
}

// --- Adam: three steps on two parameters against values computed by hand
// (python, PyTorch's formulas) for Adam, AdamW (wd 0.1) and Adam+L2 (wd 0.1).
static void test_adam(void) {
    const float grads[3][2] = {{0.5f, 0.3f}, {-0.25f, 0.3f}, {1.0f, -0.7f}};
    const double want[3][3][2] = {
        {{0.900000002, -2.099999996666667}, {0.8733662987078463, -2.199999993333333},
         {0.8075551396770898, -2.1854029181597285}},
        {{0.890000002, -2.079999996666667}, {0.8544662986878463, -2.1591999933666663},
         {0.7801104766702113, -2.1230109182593955}},
        {{0.9000000016666666, -2.099999990000001}, {0.8544413674617625, -2.1995877519178495},
         {0.7815043998631658, -2.1475086674491277}},
    };
    const float wds[3] = {0, 0.1f, 0.1f};
    const int coupled[3] = {0, 0, 1};
    for (int mode = 0; mode < 3; mode++) {
        float p[2] = {1.0f, -2.0f}, m[2] = {0, 0}, v[2] = {0, 0};
        for (int t = 1; t <= 3; t++) {
            collm_ops_adam_update(p, grads[t - 1], m, v, 2, 0.1f, 0.9f, 0.999f, 1e-8f, wds[mode], coupled[mode], t);
            CHECK_MSG(fabs(p[0] - want[mode][t - 1][0]) < 2e-6 && fabs(p[1] - want[mode][t - 1][1]) < 2e-6,
                      "mode %d step %d: %.9g %.9g", mode, t, p[0], p[1]);
        }
    }
}

// The vector loop (VL = 8 or 16 lanes at a time) against the same update one
// element at a time (n = 1: the scalar loop alone), bit for bit, and against
// the formulas in double. n = 37: whole vectors and a tail at either width.
static void test_adam_vector(void) {
    enum { n = 37 };
    float *p = rand_vec(n, 1), *g = rand_vec(n, 1), *m = rand_vec(n, 0.1f), *v = zeros(n);
    for (int i = 0; i < n; i++) v[i] = 0.01f * (float)(i + 1);
    float p1[n], m1[n], v1[n];
    double want[n];
    const float lr = 0.01f, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f, wd = 0.1f;
    const int t = 3;
    for (int i = 0; i < n; i++) {
        p1[i] = p[i], m1[i] = m[i], v1[i] = v[i];
        double mi = b1 * (double)m[i] + (1.0 - b1) * g[i], vi = b2 * (double)v[i] + (1.0 - b2) * g[i] * (double)g[i];
        double mh = mi / (1.0 - pow(b1, t)), vh = vi / (1.0 - pow(b2, t));
        want[i] = p[i] * (1.0 - (double)lr * wd) - lr * mh / (sqrt(vh) + eps);
    }
    collm_ops_adam_update(p, g, m, v, n, lr, b1, b2, eps, wd, 0, t);
    int same = 1;
    for (int i = 0; i < n; i++) {
        collm_ops_adam_update(p1 + i, g + i, m1 + i, v1 + i, 1, lr, b1, b2, eps, wd, 0, t);
        same &= p1[i] == p[i] && m1[i] == m[i] && v1[i] == v[i];
    }
    CHECK_MSG(same, "adam: the vector loop differs from the scalar one");
    CHECK(close_vec(p, want, n, 1e-6, 1e-6, "adam vector"));
    free(p), free(g), free(m), free(v);
}

static void test_dot_axpy(void) {
    int n = 37; // not a multiple of 8: exercises the tail
    float *a = rand_vec(n, 1), *b = rand_vec(n, 1), *y = rand_vec(n, 1);
    double ref = 0;
    for (int i = 0; i < n; i++) ref += (double)a[i] * b[i];
    CHECK_NEAR(collm_ops_dot(a, b, n), ref, 1e-5);
    double *yref = malloc(n * sizeof(double));
    for (int i = 0; i < n; i++) yref[i] = y[i] + 0.5 * a[i];
    collm_ops_axpy(y, 0.5f, a, n);
    CHECK(close_vec(y, yref, n, 1e-6, 1e-6, "axpy"));
    free(a), free(b), free(y), free(yref);
}

// The dispatcher picked the kernels the environment and CPU call for.
static void test_kernel_isa(void) {
    const char *isa = collm_kernel_isa(), *force = getenv("COLLM_ISA");
    __builtin_cpu_init();
    int v3 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    int v4 = v3 && __builtin_cpu_supports("x86-64-v4");
    if (force && strcmp(force, "baseline") == 0) CHECK_STR(isa, "baseline");
    else if (force && (strcmp(force, "x86-64-v3") == 0 || strcmp(force, "avx2") == 0))
        CHECK_STR(isa, v3 ? "x86-64-v3" : "baseline");
    else CHECK_STR(isa, v4 ? "x86-64-v4" : v3 ? "x86-64-v3" : "baseline");
    printf("kernels: %s\n", isa);
}

int main(void) {
    collm_rng_seed(&rng, 1234);
    test_kernel_isa();
    test_matmul_forward();
    test_gemm();
    test_rmsnorm_forward();
    test_rope_forward();
    test_swiglu_relu_forward();
    test_attention_forward();
    test_attention_forward_split();
    test_attention_backward_split();
    test_attention_long_context();
    test_matmul_backward();
    test_matmul_backward_set();
    test_matmul_backward_with();
    test_rmsnorm_backward();
    test_rope_backward();
    test_swiglu_relu_backward();
    test_attention_backward();
    test_attention_threads();
    test_bce();
    test_adam();
    test_adam_vector();
    test_dot_axpy();
    return test_report();
}
