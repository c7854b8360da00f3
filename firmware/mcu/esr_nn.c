/* Kernels for generated models (see esr_nn.h). */
#include "esr_nn.h"

#include <math.h>
#include <string.h>

#if defined(__ARM_FEATURE_SIMD32) && __ARM_FEATURE_SIMD32
#include <arm_acle.h>
#define ESR_SIMD 1
#endif

static int32_t clamp(int32_t v, int32_t lo, int32_t hi) { return v < lo ? lo : v > hi ? hi : v; }

/* nearbyintf (round half to even) of v / scale, clamped to +-2^22 first: adding and subtracting
 * 1.5 * 2^23 rounds in the FPU's default mode without a libm call (Cortex-M4 has no VRINT). */
static inline int32_t round_div(float v, float scale) {
    float q = v / scale; /* a division, as ONNX Runtime (not a multiplication by 1 / scale) */
    if (q > 4194304.0f) q = 4194304.0f;
    if (q < -4194304.0f) q = -4194304.0f;
    return (int32_t)((q + 12582912.0f) - 12582912.0f); /* IEEE semantics: the compiler may not fold this */
}

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
    for (i = 0; i < n; ++i) { /* |x / s| <= 255 by construction: no clamp needed before rounding */
        float q = x[i] / s;
        y[i] = (uint8_t)clamp((int32_t)((q + 12582912.0f) - 12582912.0f) + zp, 0, 255);
    }
    *scale = s;
    *zero_point = (uint8_t)zp;
}

void esr_quantize_u8(const float *x, int32_t n, float scale, int32_t zero_point, uint8_t *y) {
    int32_t i;
    for (i = 0; i < n; ++i) y[i] = (uint8_t)clamp(round_div(x[i], scale) + zero_point, 0, 255);
}

void esr_quantize_s8(const float *x, int32_t n, float scale, int32_t zero_point, int8_t *y) {
    int32_t i;
    for (i = 0; i < n; ++i) y[i] = (int8_t)clamp(round_div(x[i], scale) + zero_point, -128, 127);
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

/* -- fused integer kernels -------------------------------------------------------------------- */

static inline float epilogue(int32_t acc, const float *scale, const float *bias, int32_t m, int32_t relu) {
    float v = (float)acc * *scale; /* as ONNX Runtime: Cast, then Mul, then Add (no fused multiply-add) */
    if (bias) v = v + bias[m];
    return relu && v < 0.0f ? 0.0f : v;
}

#ifdef ESR_SIMD
static inline uint32_t uxtb16_ror8(uint32_t v) { /* bytes 1 and 3 as two halfwords, in one instruction */
    uint32_t r;
    __asm("uxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
    return r;
}

static uint32_t load32(const void *p) {
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}
#endif

/* acc[2p + q] = sum_k x_p[k] * w_q[k] for two columns x_0, x_1 (int16) and two packed weight rows. */
static inline __attribute__((always_inline)) void dot2x2(const int16_t *x0, const int16_t *x1, const uint8_t *w0, const uint8_t *w1, int32_t kp,
                   int32_t acc[4]) {
    int32_t k;
#ifdef ESR_SIMD
    int32_t a00 = 0, a01 = 0, a10 = 0, a11 = 0;
    for (k = 0; k < kp; k += 4) {
        uint32_t xa = load32(x0 + k), xb = load32(x0 + k + 2), ya = load32(x1 + k), yb = load32(x1 + k + 2);
        uint32_t u = load32(w0 + k), v = load32(w1 + k);
        uint32_t u_lo = __uxtb16(u), u_hi = uxtb16_ror8(u), v_lo = __uxtb16(v), v_hi = uxtb16_ror8(v);
        a00 = __smlad(xa, u_lo, a00);
        a00 = __smlad(xb, u_hi, a00);
        a01 = __smlad(xa, v_lo, a01);
        a01 = __smlad(xb, v_hi, a01);
        a10 = __smlad(ya, u_lo, a10);
        a10 = __smlad(yb, u_hi, a10);
        a11 = __smlad(ya, v_lo, a11);
        a11 = __smlad(yb, v_hi, a11);
    }
    acc[0] = a00;
    acc[1] = a01;
    acc[2] = a10;
    acc[3] = a11;
#else
    static const int32_t order[4] = {0, 2, 1, 3}; /* packed position of weight k within its group of 4 */
    acc[0] = acc[1] = acc[2] = acc[3] = 0;
    for (k = 0; k < kp; ++k) {
        int32_t at = (k & ~3) + order[k & 3];
        acc[0] += x0[k] * (int32_t)w0[at];
        acc[1] += x0[k] * (int32_t)w1[at];
        acc[2] += x1[k] * (int32_t)w0[at];
        acc[3] += x1[k] * (int32_t)w1[at];
    }
#endif
}

/* Outputs of np (1 or 2) columns held in xb (np x kp int16, column sums xsum) for every row of w. */
static void gemm_columns(const int16_t *xb, int32_t np, int32_t kp, const int32_t *xsum, const uint8_t *w,
                         int32_t m, int32_t w_zp, const float *scale, const float *bias, int32_t relu, float *y,
                         int32_t m_stride, int32_t p_stride) {
    const float s = *scale;
    const int32_t c0 = w_zp * xsum[0], c1 = np > 1 ? w_zp * xsum[1] : 0;
    const int16_t *x1 = np > 1 ? xb + kp : xb;
    int32_t mm, acc[4];
    for (mm = 0; mm < m; mm += 2) {
        const uint8_t *w0 = w + mm * kp, *w1 = mm + 1 < m ? w0 + kp : w0;
        float *y0 = y + mm * m_stride, v0, v1, v2, v3;
        dot2x2(xb, x1, w0, w1, kp, acc);
        /* as ONNX Runtime: Cast, then Mul, then Add (no fused multiply-add; adding 0 without a bias is exact) */
        v0 = (float)(acc[0] - c0) * s;
        v1 = (float)(acc[1] - c0) * s;
        v2 = (float)(acc[2] - c1) * s;
        v3 = (float)(acc[3] - c1) * s;
        if (bias) {
            v0 = v0 + bias[mm];
            v2 = v2 + bias[mm];
            if (mm + 1 < m) {
                v1 = v1 + bias[mm + 1];
                v3 = v3 + bias[mm + 1];
            }
        }
        if (relu) {
            v0 = v0 < 0.0f ? 0.0f : v0;
            v1 = v1 < 0.0f ? 0.0f : v1;
            v2 = v2 < 0.0f ? 0.0f : v2;
            v3 = v3 < 0.0f ? 0.0f : v3;
        }
        y0[0] = v0;
        if (np > 1) y0[p_stride] = v2;
        if (mm + 1 < m) {
            y0[m_stride] = v1;
            if (np > 1) y0[m_stride + p_stride] = v3;
        }
    }
}

/* Column p of im2col: (x - x_zp) over (c, kh, kw) at output position (oy, ox), zeros in padding. */
static int32_t gather(const uint8_t *x, int32_t x_zp, int32_t c, int32_t h, int32_t w_in, int32_t kh, int32_t kw,
                      int32_t iy0, int32_t ix0, int32_t kp, int16_t *col) {
    int32_t ch, i, j, k = 0, sum = 0;
    for (ch = 0; ch < c; ++ch)
        for (i = 0; i < kh; ++i)
            for (j = 0; j < kw; ++j) {
                int32_t iy = iy0 + i, ix = ix0 + j, v = 0;
                if (iy >= 0 && iy < h && ix >= 0 && ix < w_in) v = (int32_t)x[(ch * h + iy) * w_in + ix] - x_zp;
                col[k++] = (int16_t)v;
                sum += v;
            }
    for (; k < kp; ++k) col[k] = 0;
    return sum;
}

void esr_conv_gemm_u8(const uint8_t *x, int32_t x_zp, const uint8_t *w, int32_t kp, int32_t w_zp, int32_t c,
                      int32_t h, int32_t w_in, int32_t m, int32_t kh, int32_t kw, int32_t stride_h, int32_t stride_w,
                      int32_t pad_h, int32_t pad_w, int32_t oh, int32_t ow, const float *scale, const float *bias,
                      int32_t relu, float *y, int16_t *work) {
    int32_t n = oh * ow, p, xsum[2];
    const int32_t pointwise = kh == 1 && kw == 1 && stride_h == 1 && stride_w == 1 && pad_h == 0 && pad_w == 0;
    for (p = 0; p < n; p += 2) {
        int32_t np = p + 1 < n ? 2 : 1, j;
        for (j = 0; j < np && pointwise; ++j) { /* 1x1: column j is channel-strided input */
            const uint8_t *xp = x + p + j;
            int16_t *col = work + j * kp;
            int32_t k, sum = 0;
            for (k = 0; k < c; ++k, xp += n) {
                int32_t v = (int32_t)*xp - x_zp;
                col[k] = (int16_t)v;
                sum += v;
            }
            for (; k < kp; ++k) col[k] = 0;
            xsum[j] = sum;
        }
        for (j = 0; j < np && !pointwise; ++j) {
            int32_t oy = (p + j) / ow, ox = (p + j) % ow;
            xsum[j] = gather(x, x_zp, c, h, w_in, kh, kw, oy * stride_h - pad_h, ox * stride_w - pad_w, kp,
                             work + j * kp);
        }
        gemm_columns(work, np, kp, xsum, w, m, w_zp, scale, bias, relu, y + p, n, 1);
    }
}

void esr_matmul_gemm_u8(const uint8_t *x, int32_t x_zp, int32_t rows, int32_t k, const uint8_t *w, int32_t kp,
                        int32_t w_zp, int32_t n, const float *scale, const float *bias, int32_t relu, float *y,
                        int16_t *work) {
    int32_t r, i, j, xsum[2];
    for (r = 0; r < rows; r += 2) {
        int32_t np = r + 1 < rows ? 2 : 1;
        for (j = 0; j < np; ++j) {
            int16_t *col = work + j * kp;
            xsum[j] = 0;
            for (i = 0; i < k; ++i) {
                col[i] = (int16_t)((int32_t)x[(r + j) * k + i] - x_zp);
                xsum[j] += col[i];
            }
            for (; i < kp; ++i) col[i] = 0;
        }
        gemm_columns(work, np, kp, xsum, w, n, w_zp, scale, bias, relu, y + r * n, 1, n);
    }
}

void esr_conv_depthwise_u8(const uint8_t *x, int32_t x_zp, const uint8_t *w, int32_t w_zp, int32_t c, int32_t h,
                           int32_t w_in, int32_t m, int32_t kh, int32_t kw, int32_t stride_h, int32_t stride_w,
                           int32_t pad_h, int32_t pad_w, int32_t oh, int32_t ow, const float *scale, const float *bias,
                           int32_t relu, float *y, uint8_t *plane) {
    /* Each channel is copied into `plane` framed by x_zp (so padding adds (x_zp - x_zp) * w = 0), then
     * sum (x - x_zp)(w - w_zp) = sum x * wt - x_zp * sum wt with wt = w - w_zp: no bounds checks. */
    int32_t ph = h + 2 * pad_h, pw = w_in + 2 * pad_w, ch, oy, ox, i, j, taps = kh * kw, multiplier = m / c;
    for (ch = 0; ch < m; ++ch) {
        const uint8_t *wc = w + ch * taps;
        float *yc = y + ch * oh * ow;
        int32_t wsum = 0, correction;
        if (ch % multiplier == 0) { /* a new input channel (each feeds `multiplier` outputs) */
            memset(plane, x_zp, (size_t)(ph * pw));
            for (i = 0; i < h; ++i)
                memcpy(plane + (i + pad_h) * pw + pad_w, x + ((ch / multiplier) * h + i) * w_in, (size_t)w_in);
        }
        for (i = 0; i < taps; ++i) wsum += (int32_t)wc[i] - w_zp;
        correction = x_zp * wsum;
        if (kh == 3 && kw == 3) {
            const int32_t w0 = wc[0] - w_zp, w1 = wc[1] - w_zp, w2 = wc[2] - w_zp, w3 = wc[3] - w_zp,
                          w4 = wc[4] - w_zp, w5 = wc[5] - w_zp, w6 = wc[6] - w_zp, w7 = wc[7] - w_zp,
                          w8 = wc[8] - w_zp;
            for (oy = 0; oy < oh; ++oy) {
                const uint8_t *r0 = plane + oy * stride_h * pw, *r1 = r0 + pw, *r2 = r1 + pw;
                for (ox = 0; ox < ow; ++ox, r0 += stride_w, r1 += stride_w, r2 += stride_w) {
                    int32_t acc = r0[0] * w0 + r0[1] * w1 + r0[2] * w2 + r1[0] * w3 + r1[1] * w4 + r1[2] * w5 +
                                  r2[0] * w6 + r2[1] * w7 + r2[2] * w8;
                    yc[oy * ow + ox] = epilogue(acc - correction, scale, bias, ch, relu);
                }
            }
            continue;
        }
        for (oy = 0; oy < oh; ++oy)
            for (ox = 0; ox < ow; ++ox) {
                const uint8_t *r = plane + oy * stride_h * pw + ox * stride_w;
                int32_t acc = 0;
                for (i = 0; i < kh; ++i, r += pw)
                    for (j = 0; j < kw; ++j) acc += r[j] * ((int32_t)wc[i * kw + j] - w_zp);
                yc[oy * ow + ox] = epilogue(acc - correction, scale, bias, ch, relu);
            }
    }
}

void esr_binary_flat(esr_binary_op op, const float *a, const float *b, int32_t b_step, float *y, int32_t n) {
    int32_t i;
    switch (op) {
    case ESR_MUL: for (i = 0; i < n; ++i) y[i] = a[i] * b[i * b_step]; break;
    case ESR_ADD: for (i = 0; i < n; ++i) y[i] = a[i] + b[i * b_step]; break;
    case ESR_SUB: for (i = 0; i < n; ++i) y[i] = a[i] - b[i * b_step]; break;
    default: for (i = 0; i < n; ++i) y[i] = a[i] / b[i * b_step]; break;
    }
}
