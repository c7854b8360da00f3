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

/* DynamicQuantizeLinear's scale and zero point for a range (both ends already including 0). */
static void quant_params(float lo, float hi, float *scale, int32_t *zero_point) {
    float s = hi == lo ? 1.0f : (hi - lo) / 255.0f, z = 0.0f - lo / s;
    *scale = s;
    *zero_point = (int32_t)roundf(z < 0.0f ? 0.0f : z > 255.0f ? 255.0f : z);
}

/* round(v / s) + zp saturated to uint8; |v / s| <= 255 by construction: no clamp needed before rounding. */
static inline uint8_t quant_u8(float v, float s, int32_t zp) {
    float q = v / s;
#ifdef ESR_SIMD
    return (uint8_t)__usat((int32_t)((q + 12582912.0f) - 12582912.0f) + zp, 8);
#else
    return (uint8_t)clamp((int32_t)((q + 12582912.0f) - 12582912.0f) + zp, 0, 255);
#endif
}

void esr_dynamic_quantize_ranged(const float *x, int32_t n, const float *range, uint8_t *y, float *scale,
                                 uint8_t *zero_point) {
    float lo = range[0] < 0.0f ? range[0] : 0.0f, hi = range[1] > 0.0f ? range[1] : 0.0f, s;
    int32_t i, zp;
    quant_params(lo, hi, &s, &zp);
    for (i = 0; i < n; ++i) y[i] = quant_u8(x[i], s, zp);
    *scale = s;
    *zero_point = (uint8_t)zp;
}

void esr_dynamic_quantize_rows(const float *x, int32_t rows, int32_t cols, int32_t transposed, int32_t pad_l,
                               int32_t pad_r, const float *range, uint8_t *y, float *scale, uint8_t *zero_point) {
    float lo = 0.0f, hi = 0.0f, s;
    int32_t i, r, c, zp, width = pad_l + cols + pad_r;
    if (range) {
        lo = range[0] < 0.0f ? range[0] : 0.0f;
        hi = range[1] > 0.0f ? range[1] : 0.0f;
    } else {
        for (i = 0; i < rows * cols; ++i) {
            lo = x[i] < lo ? x[i] : lo;
            hi = x[i] > hi ? x[i] : hi;
        }
    }
    quant_params(lo, hi, &s, &zp);
    for (r = 0; r < rows; ++r) {
        uint8_t *yr = y + r * width;
        memset(yr, zp, (size_t)pad_l); /* a padded zero quantizes to the zero point */
        memset(yr + pad_l + cols, zp, (size_t)pad_r);
        yr += pad_l;
        if (transposed) {
            const float *xr = x + r;
            for (c = 0; c < cols; ++c, xr += rows) yr[c] = quant_u8(*xr, s, zp);
        } else {
            const float *xr = x + r * cols;
            for (c = 0; c < cols; ++c) yr[c] = quant_u8(xr[c], s, zp);
        }
    }
    *scale = s;
    *zero_point = (uint8_t)zp;
}

void esr_dynamic_quantize(const float *x, int32_t n, uint8_t *y, float *scale, uint8_t *zero_point) {
    float range[2] = {0.0f, 0.0f};
    int32_t i;
    for (i = 0; i < n; ++i) {
        if (x[i] < range[0]) range[0] = x[i];
        if (x[i] > range[1]) range[1] = x[i];
    }
    esr_dynamic_quantize_ranged(x, n, range, y, scale, zero_point);
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

void esr_sigmoid(const float *x, int32_t n, float *y) {
    int32_t i;
    for (i = 0; i < n; ++i) y[i] = 1.0f / (1.0f + expf(-x[i]));
}

void esr_pool2d(const float *x, int32_t c, int32_t h, int32_t w_in, int32_t kh, int32_t kw, int32_t stride_h,
                int32_t stride_w, int32_t pad_h, int32_t pad_w, int32_t oh, int32_t ow, int32_t is_max, int32_t count_pad,
                float *y) {
    int32_t ch, oy, ox, i, j;
    for (ch = 0; ch < c; ++ch) {
        const float *xc = x + ch * h * w_in;
        for (oy = 0; oy < oh; ++oy)
            for (ox = 0; ox < ow; ++ox) {
                float acc = 0.0f;
                int32_t count = 0, first = 1;
                for (i = 0; i < kh; ++i) {
                    int32_t iy = oy * stride_h - pad_h + i;
                    for (j = 0; j < kw; ++j) {
                        int32_t ix = ox * stride_w - pad_w + j;
                        if (iy < 0 || iy >= h || ix < 0 || ix >= w_in) {
                            /* padding (counted by an average with count_include_pad, within the padded input) */
                            if (count_pad && iy < h + pad_h && ix < w_in + pad_w) ++count;
                            continue;
                        }
                        if (is_max) {
                            if (first || xc[iy * w_in + ix] > acc) acc = xc[iy * w_in + ix];
                            first = 0;
                        } else {
                            acc += xc[iy * w_in + ix];
                            ++count;
                        }
                    }
                }
                y[(ch * oh + oy) * ow + ox] = is_max ? acc : acc / (float)(count ? count : 1);
            }
    }
}

void esr_sqrt(const float *x, int32_t n, float *y) {
    int32_t i;
    for (i = 0; i < n; ++i) y[i] = sqrtf(x[i]);
}

void esr_clip(const float *x, int32_t n, float lo, float hi, float *y) {
    int32_t i;
    for (i = 0; i < n; ++i) y[i] = x[i] < lo ? lo : x[i] > hi ? hi : x[i];
}

void esr_copy_rows(const float *x, int32_t rows, int32_t cols, int32_t x_stride, float *y, int32_t y_stride) {
    int32_t r;
    for (r = 0; r < rows; ++r) memmove(y + r * y_stride, x + r * x_stride, (size_t)cols * sizeof(float));
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

/* Column buffers hold two positions interleaved by pairs of k: (x0[k], x0[k+1], x1[k], x1[k+1], ...). */
static inline void put(int16_t *cols, int32_t j, int32_t k, int32_t v) {
    cols[((k >> 1) << 2) + (j << 1) + (k & 1)] = (int16_t)v;
}

/* acc[2p + q] = sum_k x_p[k] * w_q[k] for the two interleaved columns and a packed pair of weight rows. */
static __attribute__((noinline)) void dot2x2(const int16_t *cols, const uint8_t *pair, int32_t kp,
                                                         int32_t acc[4]) {
    int32_t k;
#ifdef ESR_SIMD
    /* 16 multiply-accumulates in 17 instructions: LDM of both columns' next 4 values, then for each
     * row its next 4 weights, UXTB16 to halfword pairs and four SMLAD. */
    const int16_t *xp = cols;
    const uint8_t *wp = pair;
    int32_t a00 = 0, a01 = 0, a10 = 0, a11 = 0, turns = kp >> 2;
    (void)k;
    __asm volatile(
        "1:\n"
        "ldmia %[x]!, {r0, r1, r2, r3}\n"
        "ldr r4, [%[w]], #4\n"
        "uxtb16 r5, r4\n"
        "uxtb16 r4, r4, ror #8\n"
        "smlad %[a00], r0, r5, %[a00]\n"
        "smlad %[a00], r2, r4, %[a00]\n"
        "smlad %[a10], r1, r5, %[a10]\n"
        "smlad %[a10], r3, r4, %[a10]\n"
        "ldr r4, [%[w]], #4\n"
        "uxtb16 r5, r4\n"
        "uxtb16 r4, r4, ror #8\n"
        "smlad %[a01], r0, r5, %[a01]\n"
        "smlad %[a01], r2, r4, %[a01]\n"
        "smlad %[a11], r1, r5, %[a11]\n"
        "smlad %[a11], r3, r4, %[a11]\n"
        "subs %[n], %[n], #1\n"
        "bne 1b\n"
        : [a00] "+r"(a00), [a01] "+r"(a01), [a10] "+r"(a10), [a11] "+r"(a11), [x] "+r"(xp), [w] "+r"(wp),
          [n] "+r"(turns)
        :
        : "r0", "r1", "r2", "r3", "r4", "r5", "cc", "memory");
    acc[0] = a00;
    acc[1] = a01;
    acc[2] = a10;
    acc[3] = a11;
#else
    static const int32_t order[4] = {0, 2, 1, 3}; /* packed position of weight k within its group of 4 */
    acc[0] = acc[1] = acc[2] = acc[3] = 0;
    for (k = 0; k < kp; ++k) {
        int32_t x0 = cols[((k >> 1) << 2) + (k & 1)], x1 = cols[((k >> 1) << 2) + 2 + (k & 1)];
        int32_t at = (k >> 2) * 8 + order[k & 3];
        acc[0] += x0 * (int32_t)pair[at];
        acc[1] += x0 * (int32_t)pair[at + 4];
        acc[2] += x1 * (int32_t)pair[at];
        acc[3] += x1 * (int32_t)pair[at + 4];
    }
#endif
}

/* Outputs of np (1 or 2) columns held in cols (column sums xsum) for every row of the packed w. */
static void gemm_columns(const int16_t *cols, int32_t np, int32_t kp, const int32_t *xsum, const uint8_t *w,
                         int32_t m, int32_t w_zp, const float *scale, const float *bias, int32_t relu, float *range,
                         const float *res, float *y, int32_t m_stride, int32_t p_stride) {
    const float s = *scale;
    const int32_t c0 = w_zp * xsum[0], c1 = np > 1 ? w_zp * xsum[1] : 0;
    int32_t mm, acc[4];
    for (mm = 0; mm < m; mm += 2) {
        float *y0 = y + mm * m_stride, v0, v1, v2, v3;
        dot2x2(cols, w + mm * kp, kp, acc);
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
        if (res) { /* as ONNX Runtime: the residual Add after the bias Add */
            const float *r0 = res + mm * m_stride;
            v0 = r0[0] + v0;
            if (np > 1) v2 = r0[p_stride] + v2;
            if (mm + 1 < m) {
                v1 = r0[m_stride] + v1;
                if (np > 1) v3 = r0[m_stride + p_stride] + v3;
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
        if (range) {
            float lo = v0, hi = v0;
            if (np > 1) {
                lo = v2 < lo ? v2 : lo;
                hi = v2 > hi ? v2 : hi;
            }
            if (mm + 1 < m) {
                lo = v1 < lo ? v1 : lo;
                hi = v1 > hi ? v1 : hi;
                if (np > 1) {
                    lo = v3 < lo ? v3 : lo;
                    hi = v3 > hi ? v3 : hi;
                }
            }
            if (lo < range[0]) range[0] = lo;
            if (hi > range[1]) range[1] = hi;
        }
    }
}

/* Column j of im2col: (x - x_zp) over (c, kh, kw) at output position (oy, ox), zeros in padding. */
static int32_t gather(const uint8_t *x, int32_t x_zp, int32_t c, int32_t h, int32_t w_in, int32_t kh, int32_t kw,
                      int32_t iy0, int32_t ix0, int32_t kp, int16_t *cols, int32_t j) {
    int32_t ch, i, jj, k = 0, sum = 0;
    for (ch = 0; ch < c; ++ch)
        for (i = 0; i < kh; ++i)
            for (jj = 0; jj < kw; ++jj) {
                int32_t iy = iy0 + i, ix = ix0 + jj, v = 0;
                if (iy >= 0 && iy < h && ix >= 0 && ix < w_in) v = (int32_t)x[(ch * h + iy) * w_in + ix] - x_zp;
                put(cols, j, k++, v);
                sum += v;
            }
    for (; k < kp; ++k) put(cols, j, k, 0);
    return sum;
}

static void zero_column(int16_t *cols, int32_t j, int32_t kp) {
    int32_t k;
    for (k = 0; k < kp; ++k) put(cols, j, k, 0);
}

void esr_conv_gemm_res_u8(const uint8_t *x, int32_t x_zp, const uint8_t *w, int32_t kp, int32_t w_zp, int32_t c,
                          int32_t h, int32_t w_in, int32_t m, int32_t kh, int32_t kw, int32_t stride_h,
                          int32_t stride_w, int32_t pad_h, int32_t pad_w, int32_t oh, int32_t ow, const float *scale,
                          const float *bias, int32_t relu, float *range, const float *residual, float *y,
                          int16_t *work) {
    int32_t n = oh * ow, p, xsum[2] = {0, 0};
    if (range) range[0] = range[1] = 0.0f;
    const int32_t pointwise =
        kh == 1 && kw == 1 && stride_h == 1 && stride_w == 1 && pad_h == 0 && pad_w == 0 && oh == h && ow == w_in;
    for (p = 0; p < n; p += 2) {
        int32_t np = p + 1 < n ? 2 : 1, j;
        for (j = 0; j < np; ++j) {
            if (pointwise) { /* 1x1: column j is the channel-strided input at position p + j */
                const uint8_t *xp = x + p + j;
                int32_t k, sum = 0;
                for (k = 0; k < c; ++k, xp += n) {
                    int32_t v = (int32_t)*xp - x_zp;
                    put(work, j, k, v);
                    sum += v;
                }
                for (; k < kp; ++k) put(work, j, k, 0);
                xsum[j] = sum;
            } else {
                int32_t oy = (p + j) / ow, ox = (p + j) % ow;
                xsum[j] = gather(x, x_zp, c, h, w_in, kh, kw, oy * stride_h - pad_h, ox * stride_w - pad_w, kp, work, j);
            }
        }
        if (np == 1) zero_column(work, 1, kp);
        gemm_columns(work, np, kp, xsum, w, m, w_zp, scale, bias, relu, range, residual ? residual + p : 0, y + p, n, 1);
    }
}

void esr_conv_gemm_u8(const uint8_t *x, int32_t x_zp, const uint8_t *w, int32_t kp, int32_t w_zp, int32_t c,
                      int32_t h, int32_t w_in, int32_t m, int32_t kh, int32_t kw, int32_t stride_h, int32_t stride_w,
                      int32_t pad_h, int32_t pad_w, int32_t oh, int32_t ow, const float *scale, const float *bias,
                      int32_t relu, float *range, float *y, int16_t *work) {
    esr_conv_gemm_res_u8(x, x_zp, w, kp, w_zp, c, h, w_in, m, kh, kw, stride_h, stride_w, pad_h, pad_w, oh, ow, scale,
                         bias, relu, range, 0, y, work);
}

void esr_matmul_gemm_u8(const uint8_t *x, int32_t x_zp, int32_t rows, int32_t k, const uint8_t *w, int32_t kp,
                        int32_t w_zp, int32_t n, const float *scale, const float *bias, int32_t relu, float *range,
                        float *y, int16_t *work) {
    int32_t r, i, j, xsum[2] = {0, 0};
    if (range) range[0] = range[1] = 0.0f;
    for (r = 0; r < rows; r += 2) {
        int32_t np = r + 1 < rows ? 2 : 1;
        for (j = 0; j < np; ++j) {
            xsum[j] = 0;
            for (i = 0; i < k; ++i) {
                int32_t v = (int32_t)x[(r + j) * k + i] - x_zp;
                put(work, j, i, v);
                xsum[j] += v;
            }
            for (; i < kp; ++i) put(work, j, i, 0);
        }
        if (np == 1) zero_column(work, 1, kp);
        gemm_columns(work, np, kp, xsum, w, n, w_zp, scale, bias, relu, range, 0, y + r * n, 1, n);
    }
}

void esr_conv_depthwise_u8(const uint8_t *x, int32_t x_zp, const uint8_t *w, int32_t w_zp, int32_t c, int32_t h,
                           int32_t w_in, int32_t m, int32_t kh, int32_t kw, int32_t stride_h, int32_t stride_w,
                           int32_t pad_h, int32_t pad_w, int32_t oh, int32_t ow, const float *scale, const float *bias,
                           int32_t relu, float *range, float *y, uint8_t *plane) {
    /* Each channel is copied into `plane` framed by x_zp (so padding adds (x_zp - x_zp) * w = 0), then
     * sum (x - x_zp)(w - w_zp) = sum x * wt - x_zp * sum wt with wt = w - w_zp: no bounds checks. */
    int32_t ph = h + 2 * pad_h, pw = w_in + 2 * pad_w, ch, oy, ox, i, j, taps = kh * kw, multiplier = m / c;
    float lo = 0.0f, hi = 0.0f;
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
            const float sc = *scale, b = bias ? bias[ch] : 0.0f; /* + 0 without a bias is exact */
            float *yo = yc;
            for (oy = 0; oy < oh; ++oy) {
                const uint8_t *r0 = plane + oy * stride_h * pw, *r1 = r0 + pw, *r2 = r1 + pw;
                for (ox = 0; ox < ow; ++ox, r0 += stride_w, r1 += stride_w, r2 += stride_w) {
                    int32_t acc = r0[0] * w0 + r0[1] * w1 + r0[2] * w2 + r1[0] * w3 + r1[1] * w4 + r1[2] * w5 +
                                  r2[0] * w6 + r2[1] * w7 + r2[2] * w8;
                    float v = (float)(acc - correction) * sc + b;
                    if (relu) {
                        v = v < 0.0f ? 0.0f : v;
                    } else if (v < lo) {
                        lo = v;
                    }
                    hi = v > hi ? v : hi;
                    *yo++ = v;
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
                float v = epilogue(acc - correction, scale, bias, ch, relu);
                yc[oy * ow + ox] = v;
                lo = v < lo ? v : lo;
                hi = v > hi ? v : hi;
            }
    }
    if (range) {
        range[0] = lo;
        range[1] = hi;
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

/* Integer sum of one output of a 1-D depthwise channel: x[i * dilation] * wt[i] over k taps (k = 5 unrolled). */
static inline int32_t dw1d_acc(const uint8_t *xs, const int32_t *wt, int32_t k, int32_t dilation) {
    int32_t i, acc;
    if (k == 5)
        return xs[0] * wt[0] + xs[dilation] * wt[1] + xs[2 * dilation] * wt[2] + xs[3 * dilation] * wt[3] +
               xs[4 * dilation] * wt[4];
    for (i = 0, acc = 0; i < k; ++i) acc += (int32_t)xs[i * dilation] * wt[i];
    return acc;
}

static inline float dw1d_epilogue(int32_t acc, float sc, float b, int32_t relu) {
    float v = (float)acc * sc + b; /* Cast, Mul, then Add, as ONNX Runtime */
    return relu && v < 0.0f ? 0.0f : v;
}

/* Input row of channel ch: x itself, or (padding) a copy framed by the zero point in `row`. */
static const uint8_t *dw1d_row(const uint8_t *x, int32_t x_zp, int32_t t, int32_t ch, int32_t pad_l, int32_t pad_r,
                               uint8_t *row) {
    if (!row) return x + ch * t;
    memset(row, x_zp, (size_t)pad_l);
    memcpy(row + pad_l, x + ch * t, (size_t)t);
    memset(row + pad_l + t, x_zp, (size_t)pad_r);
    return row;
}

void esr_conv1d_depthwise_u8(const uint8_t *x, int32_t x_zp, const uint8_t *w, int32_t w_zp, int32_t c, int32_t t,
                             int32_t pad_l, int32_t pad_r, uint8_t *row, int32_t m, int32_t k, int32_t dilation,
                             int32_t stride, int32_t ot, const float *scale, const float *bias, int32_t relu,
                             float *range, float *y, uint8_t *yq, float *yq_scale, uint8_t *yq_zp) {
    int32_t wt[16], ch, o, i, multiplier = m / c, zp = 0;
    float lo = 0.0f, hi = 0.0f, s = 1.0f;
    const float sc = *scale;
    if (k > 16 || ((pad_l || pad_r) && !row)) return; /* the exporter refuses these */
    if (!(pad_l || pad_r)) row = 0;
    if (yq) {
        /* First pass in integers: the epilogue is non-decreasing in the sum (scale > 0, float rounding is
         * monotone), so each channel's extreme outputs come from its extreme sums: the range is exact. */
        for (ch = 0; ch < m; ++ch) {
            const uint8_t *xc = dw1d_row(x, x_zp, t, ch / multiplier, pad_l, pad_r, row);
            int32_t wsum = 0, amin, amax;
            const float b = bias ? bias[ch] : 0.0f;
            float vlo, vhi;
            for (i = 0; i < k; ++i) {
                wt[i] = (int32_t)w[ch * k + i] - w_zp;
                wsum += wt[i];
            }
            amin = amax = dw1d_acc(xc, wt, k, dilation);
            if (k == 5) { /* the common case, weights in registers */
                const int32_t w0 = wt[0], w1 = wt[1], w2 = wt[2], w3 = wt[3], w4 = wt[4], d = dilation;
                const uint8_t *xs = xc + stride;
                for (o = 1; o < ot; ++o, xs += stride) {
                    int32_t acc = xs[0] * w0 + xs[d] * w1 + xs[2 * d] * w2 + xs[3 * d] * w3 + xs[4 * d] * w4;
                    amin = acc < amin ? acc : amin;
                    amax = acc > amax ? acc : amax;
                }
            } else {
                for (o = 1; o < ot; ++o) {
                    int32_t acc = dw1d_acc(xc + o * stride, wt, k, dilation);
                    amin = acc < amin ? acc : amin;
                    amax = acc > amax ? acc : amax;
                }
            }
            vlo = dw1d_epilogue(amin - x_zp * wsum, sc, b, relu);
            vhi = dw1d_epilogue(amax - x_zp * wsum, sc, b, relu);
            lo = vlo < lo ? vlo : lo;
            hi = vhi > hi ? vhi : hi;
        }
        quant_params(lo, hi, &s, &zp);
    }
    for (ch = 0; ch < m; ++ch) {
        const uint8_t *xc = dw1d_row(x, x_zp, t, ch / multiplier, pad_l, pad_r, row);
        int32_t wsum = 0, correction;
        const float b = bias ? bias[ch] : 0.0f; /* + 0 without a bias is exact */
        for (i = 0; i < k; ++i) {
            wt[i] = (int32_t)w[ch * k + i] - w_zp;
            wsum += wt[i];
        }
        correction = x_zp * wsum;
        if (yq) {
            uint8_t *yc = yq + ch * ot; /* may be x itself when ot <= t: see esr_nn.h */
            if (k == 5) {
                const int32_t w0 = wt[0], w1 = wt[1], w2 = wt[2], w3 = wt[3], w4 = wt[4], d = dilation;
                const uint8_t *xs = xc;
                for (o = 0; o < ot; ++o, xs += stride) {
                    int32_t acc = xs[0] * w0 + xs[d] * w1 + xs[2 * d] * w2 + xs[3 * d] * w3 + xs[4 * d] * w4;
                    yc[o] = quant_u8(dw1d_epilogue(acc - correction, sc, b, relu), s, zp);
                }
            } else {
                for (o = 0; o < ot; ++o)
                    yc[o] = quant_u8(
                        dw1d_epilogue(dw1d_acc(xc + o * stride, wt, k, dilation) - correction, sc, b, relu), s, zp);
            }
        } else {
            float *yc = y + ch * ot;
            for (o = 0; o < ot; ++o) {
                float v = dw1d_epilogue(dw1d_acc(xc + o * stride, wt, k, dilation) - correction, sc, b, relu);
                lo = v < lo ? v : lo;
                hi = v > hi ? v : hi;
                yc[o] = v;
            }
        }
    }
    if (range) {
        range[0] = lo;
        range[1] = hi;
    }
    if (yq) {
        *yq_scale = s;
        *yq_zp = (uint8_t)zp;
    }
}

void esr_binary_rows(esr_binary_op op, const float *a, const float *b, int32_t rows, int32_t n, float *y) {
    int32_t r, i;
    for (r = 0; r < rows; ++r) {
        const float *ar = a + r * n, v = b[r];
        float *yr = y + r * n;
        switch (op) {
        case ESR_MUL: for (i = 0; i < n; ++i) yr[i] = ar[i] * v; break;
        case ESR_ADD: for (i = 0; i < n; ++i) yr[i] = ar[i] + v; break;
        case ESR_SUB: for (i = 0; i < n; ++i) yr[i] = ar[i] - v; break;
        default: for (i = 0; i < n; ++i) yr[i] = ar[i] / v; break;
        }
    }
}
