/* Kernels for generated models (see esr_nn.h). */
#include "esr_nn.h"

#include <math.h>

static int32_t clamp(int32_t v, int32_t lo, int32_t hi) { return v < lo ? lo : v > hi ? hi : v; }

void esr_dynamic_quantize(const float *x, int32_t n, uint8_t *y, float *scale, uint8_t *zero_point) {
    float lo = 0.0f, hi = 0.0f, s, z;
    int32_t i, zp;
    for (i = 0; i < n; ++i) {
        if (x[i] < lo) lo = x[i];
        if (x[i] > hi) hi = x[i];
    }
    s = hi == lo ? 1.0f : (hi - lo) / 255.0f;
    z = 0.0f - lo / s;
    zp = (int32_t)roundf(z < 0.0f ? 0.0f : z > 255.0f ? 255.0f : z);
    for (i = 0; i < n; ++i) y[i] = (uint8_t)clamp((int32_t)nearbyintf(x[i] / s) + zp, 0, 255);
    *scale = s;
    *zero_point = (uint8_t)zp;
}

void esr_quantize_u8(const float *x, int32_t n, float scale, int32_t zero_point, uint8_t *y) {
    int32_t i;
    for (i = 0; i < n; ++i) y[i] = (uint8_t)clamp((int32_t)nearbyintf(x[i] / scale) + zero_point, 0, 255);
}

void esr_quantize_s8(const float *x, int32_t n, float scale, int32_t zero_point, int8_t *y) {
    int32_t i;
    for (i = 0; i < n; ++i) y[i] = (int8_t)clamp((int32_t)nearbyintf(x[i] / scale) + zero_point, -128, 127);
}

void esr_dequantize_u8(const uint8_t *x, int32_t n, float scale, int32_t zero_point, float *y) {
    int32_t i;
    for (i = 0; i < n; ++i) y[i] = (float)((int32_t)x[i] - zero_point) * scale;
}

void esr_dequantize_s8(const int8_t *x, int32_t n, float scale, int32_t zero_point, float *y) {
    int32_t i;
    for (i = 0; i < n; ++i) y[i] = (float)((int32_t)x[i] - zero_point) * scale;
}

static int32_t weight(const uint8_t *w, int32_t i, int32_t w_signed) {
    return w_signed ? (int32_t)((const int8_t *)w)[i] : (int32_t)w[i];
}

void esr_conv_integer(const uint8_t *x, int32_t x_zp, int32_t c, int32_t h, int32_t w_in, const uint8_t *w,
                      int32_t w_signed, int32_t w_zp, int32_t m, int32_t kh, int32_t kw, int32_t group,
                      int32_t stride_h, int32_t stride_w, int32_t pad_h, int32_t pad_w, int32_t *y, int32_t oh,
                      int32_t ow) {
    int32_t cg = c / group, mg = m / group, oc, oy, ox, ic, i, j;
    for (oc = 0; oc < m; ++oc) {
        int32_t g = oc / mg;
        const int32_t wbase = oc * cg * kh * kw;
        for (oy = 0; oy < oh; ++oy) {
            for (ox = 0; ox < ow; ++ox) {
                int32_t acc = 0;
                for (ic = 0; ic < cg; ++ic) {
                    const uint8_t *xc = x + (g * cg + ic) * h * w_in;
                    const int32_t wc = wbase + ic * kh * kw;
                    for (i = 0; i < kh; ++i) {
                        int32_t iy = oy * stride_h - pad_h + i;
                        if (iy < 0 || iy >= h) continue; /* zero padding: (x - x_zp) is 0 there */
                        for (j = 0; j < kw; ++j) {
                            int32_t ix = ox * stride_w - pad_w + j;
                            if (ix < 0 || ix >= w_in) continue;
                            acc += ((int32_t)xc[iy * w_in + ix] - x_zp) * (weight(w, wc + i * kw + j, w_signed) - w_zp);
                        }
                    }
                }
                y[(oc * oh + oy) * ow + ox] = acc;
            }
        }
    }
}

void esr_matmul_integer(const uint8_t *x, int32_t x_zp, int32_t rows, int32_t k, const uint8_t *w, int32_t w_signed,
                        int32_t w_zp, int32_t n, int32_t *y) {
    int32_t r, i, j;
    for (r = 0; r < rows; ++r) {
        for (j = 0; j < n; ++j) y[r * n + j] = 0;
        for (i = 0; i < k; ++i) {
            int32_t a = (int32_t)x[r * k + i] - x_zp;
            if (a == 0) continue;
            for (j = 0; j < n; ++j) y[r * n + j] += a * (weight(w, i * n + j, w_signed) - w_zp);
        }
    }
}

void esr_gemm_s8(const int8_t *x, int32_t x_zp, int32_t rows, int32_t k, const int8_t *w, int32_t w_zp, int32_t n,
                 const float *scale, const float *bias, float *y) {
    int32_t r, i, j;
    for (r = 0; r < rows; ++r) {
        for (j = 0; j < n; ++j) {
            int32_t acc = 0;
            for (i = 0; i < k; ++i) acc += ((int32_t)x[r * k + i] - x_zp) * ((int32_t)w[i * n + j] - w_zp);
            y[r * n + j] = (float)acc * scale[j] + bias[j];
        }
    }
}

void esr_cast_i32_f32(const int32_t *x, int32_t n, float *y) {
    int32_t i;
    for (i = 0; i < n; ++i) y[i] = (float)x[i]; /* in place: same size, read before write */
}

void esr_relu(const float *x, int32_t n, float *y) {
    int32_t i;
    for (i = 0; i < n; ++i) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void esr_tanh(const float *x, int32_t n, float *y) {
    int32_t i;
    for (i = 0; i < n; ++i) y[i] = tanhf(x[i]);
}

void esr_softmax(const float *x, int32_t rows, int32_t n, float *y) {
    int32_t r, i;
    for (r = 0; r < rows; ++r) {
        const float *xr = x + r * n;
        float *yr = y + r * n, top = xr[0], sum = 0.0f;
        for (i = 1; i < n; ++i)
            if (xr[i] > top) top = xr[i];
        for (i = 0; i < n; ++i) {
            yr[i] = expf(xr[i] - top);
            sum += yr[i];
        }
        for (i = 0; i < n; ++i) yr[i] /= sum;
    }
}

void esr_channel_affine(const float *x, int32_t batch, int32_t channels, int32_t inner, const float *k, const float *b,
                        float *y) {
    int32_t n, c, i;
    for (n = 0; n < batch; ++n)
        for (c = 0; c < channels; ++c)
            for (i = 0; i < inner; ++i) {
                int32_t at = (n * channels + c) * inner + i;
                y[at] = x[at] * k[c] + b[c];
            }
}

void esr_reduce(const float *x, int32_t outer, int32_t r, int32_t inner, int32_t mean, float *y) {
    int32_t o, j, i;
    for (o = 0; o < outer; ++o)
        for (i = 0; i < inner; ++i) {
            float sum = 0.0f;
            for (j = 0; j < r; ++j) sum += x[(o * r + j) * inner + i];
            y[o * inner + i] = mean ? sum / (float)r : sum;
        }
}

void esr_binary(esr_binary_op op, const float *a, const int32_t *sa, const float *b, const int32_t *sb, float *y,
                const int32_t *shape, int32_t ndim) {
    int32_t idx[6] = {0, 0, 0, 0, 0, 0}, total = 1, n, d, ia = 0, ib = 0;
    for (d = 0; d < ndim; ++d) total *= shape[d];
    for (n = 0; n < total; ++n) {
        float u = a[ia], v = b[ib];
        y[n] = op == ESR_MUL ? u * v : op == ESR_ADD ? u + v : op == ESR_SUB ? u - v : u / v;
        for (d = ndim - 1; d >= 0; --d) { /* next index, odometer style */
            ++idx[d];
            ia += sa[d];
            ib += sb[d];
            if (idx[d] < shape[d]) break;
            ia -= sa[d] * shape[d];
            ib -= sb[d] * shape[d];
            idx[d] = 0;
        }
    }
}

void esr_transpose(const float *x, const int32_t *st, float *y, const int32_t *shape, int32_t ndim) {
    int32_t idx[6] = {0, 0, 0, 0, 0, 0}, total = 1, n, d, ix = 0;
    for (d = 0; d < ndim; ++d) total *= shape[d];
    for (n = 0; n < total; ++n) {
        y[n] = x[ix];
        for (d = ndim - 1; d >= 0; --d) {
            ++idx[d];
            ix += st[d];
            if (idx[d] < shape[d]) break;
            ix -= st[d] * shape[d];
            idx[d] = 0;
        }
    }
}
