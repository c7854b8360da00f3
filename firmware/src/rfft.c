/* Power spectrum of real frames, power-of-two sizes (see rfft.h). */
#include "rfft.h"

#include <math.h>

#define ESR_PI 3.14159265358979323846

int esr_rfft_supports(int n) { return n >= 8 && n <= 65536 && (n & (n - 1)) == 0; }

static size_t align8(size_t v) { return (v + 7u) & ~(size_t)7u; }

size_t esr_rfft_bytes(int n) {
    size_t m = (size_t)n / 2;
    return 8 + 2 * align8(m * sizeof(kiss_fft_cpx)) + align8(m * sizeof(uint16_t));
}

/* The output position of every frequency: stage by stage, sub-transform r of a span goes to block r
 * and holds the frequencies k0 + r * stride (+ multiples of stride * radix). */
static void positions(uint16_t *pos, int at, int span, int k0, int stride) {
    int radix, q, r;
    if (span == 1) {
        pos[k0] = (uint16_t)at;
        return;
    }
    radix = span % 4 == 0 ? 4 : 2;
    q = span / radix;
    for (r = 0; r < radix; ++r) positions(pos, at + r * q, q, k0 + r * stride, stride * radix);
}

int esr_rfft_init(esr_rfft *f, int n, void *mem, size_t bytes) {
    int m = n / 2, t;
    char *base;
    if (!f || !mem || !esr_rfft_supports(n) || bytes < esr_rfft_bytes(n)) return 0;
    base = (char *)mem + ((8 - ((uintptr_t)mem % 8)) % 8);
    f->n = n;
    f->tw = (kiss_fft_cpx *)(void *)base;
    f->post = (kiss_fft_cpx *)(void *)(base + align8((size_t)m * sizeof(kiss_fft_cpx)));
    f->pos = (uint16_t *)(void *)(base + 2 * align8((size_t)m * sizeof(kiss_fft_cpx)));
    for (t = 0; t < m; ++t) {
        double a = -2.0 * ESR_PI * t / m, b = -2.0 * ESR_PI * t / n;
        f->tw[t].r = (kiss_fft_scalar)cos(a);
        f->tw[t].i = (kiss_fft_scalar)sin(a);
        f->post[t].r = (kiss_fft_scalar)cos(b);
        f->post[t].i = (kiss_fft_scalar)sin(b);
    }
    positions(f->pos, 0, m, 0, 1);
    return 1;
}

/* y = a * w (complex) */
#define CMUL(y, a, w)                                \
    do {                                             \
        kiss_fft_scalar ar_ = (a).r, ai_ = (a).i;    \
        (y).r = ar_ * (w).r - ai_ * (w).i;           \
        (y).i = ar_ * (w).i + ai_ * (w).r;           \
    } while (0)

/* In-place complex DFT of m points (decimation in frequency; output in the order of f->pos). */
static void cfft(kiss_fft_cpx *x, int m, const kiss_fft_cpx *tw) {
    int span, g, j;
    for (span = m; span > 1;) {
        const int step = m / span;
        if (span % 4 == 0) {
            const int q = span / 4;
            for (g = 0; g < m; g += span) {
                kiss_fft_cpx *p0 = x + g, *p1 = p0 + q, *p2 = p1 + q, *p3 = p2 + q;
                const kiss_fft_cpx *w1 = tw, *w2 = tw, *w3 = tw; /* tw[j * step], tw[2 j step], tw[3 j step] */
                for (j = 0; j < q; ++j, w1 += step, w2 += 2 * step, w3 += 3 * step) {
                    kiss_fft_scalar t0r = p0[j].r + p2[j].r, t0i = p0[j].i + p2[j].i;
                    kiss_fft_scalar t1r = p0[j].r - p2[j].r, t1i = p0[j].i - p2[j].i;
                    kiss_fft_scalar t2r = p1[j].r + p3[j].r, t2i = p1[j].i + p3[j].i;
                    kiss_fft_scalar t3r = p1[j].r - p3[j].r, t3i = p1[j].i - p3[j].i;
                    kiss_fft_cpx y1, y2, y3;
                    p0[j].r = t0r + t2r;
                    p0[j].i = t0i + t2i;
                    y1.r = t1r + t3i; /* t1 - i t3 */
                    y1.i = t1i - t3r;
                    y2.r = t0r - t2r;
                    y2.i = t0i - t2i;
                    y3.r = t1r - t3i; /* t1 + i t3 */
                    y3.i = t1i + t3r;
                    if (j == 0) {
                        p1[0] = y1;
                        p2[0] = y2;
                        p3[0] = y3;
                    } else {
                        CMUL(p1[j], y1, *w1);
                        CMUL(p2[j], y2, *w2);
                        CMUL(p3[j], y3, *w3);
                    }
                }
            }
            span = q;
        } else { /* span 2: the last stage of a size that is not a power of 4 */
            for (g = 0; g < m; g += 2) {
                kiss_fft_scalar ar = x[g].r, ai = x[g].i;
                x[g].r = ar + x[g + 1].r;
                x[g].i = ai + x[g + 1].i;
                x[g + 1].r = ar - x[g + 1].r;
                x[g + 1].i = ai - x[g + 1].i;
            }
            span = 1;
        }
    }
}

void esr_rfft_power(const esr_rfft *f, kiss_fft_scalar *frame, float *power) {
    /* The n real samples as n/2 complex ones z[t] = x[2t] + i x[2t+1]; Z = DFT(z); then
     * X[k] = (Z[k] + conj Z[m-k]) / 2 - i exp(-2 pi i k / n) (Z[k] - conj Z[m-k]) / 2. */
    const int m = f->n / 2;
    kiss_fft_cpx *z = (kiss_fft_cpx *)(void *)frame;
    int k;
    cfft(z, m, f->tw);
    {
        const kiss_fft_cpx z0 = z[f->pos[0]];
        const kiss_fft_scalar dc = z0.r + z0.i, nyquist = z0.r - z0.i;
        power[0] = (float)(dc * dc);
        power[m] = (float)(nyquist * nyquist);
    }
    for (k = 1; k <= m / 2; ++k) { /* X[k] and X[m - k] share their terms (exp(-2 pi i (m - k) / n) = -conj w) */
        const kiss_fft_cpx a = z[f->pos[k]], b = z[f->pos[m - k]], w = f->post[k];
        kiss_fft_scalar er = (kiss_fft_scalar)0.5 * (a.r + b.r), ei = (kiss_fft_scalar)0.5 * (a.i - b.i);
        kiss_fft_scalar dr = (kiss_fft_scalar)0.5 * (a.r - b.r), di = (kiss_fft_scalar)0.5 * (a.i + b.i);
        /* odd part: -i * (dr + i di) = di - i dr, times w */
        kiss_fft_scalar orr = di * w.r + dr * w.i, oi = di * w.i - dr * w.r;
        kiss_fft_scalar xr = er + orr, xi = ei + oi, yr = er - orr, yi = ei - oi;
        power[k] = (float)(xr * xr + xi * xi);
        power[m - k] = (float)(yr * yr + yi * yi);
    }
}
