/* edge_ser.resample in C99: Kaiser-windowed sinc, the kernel of each output computed in place. */
#include <math.h>

#include "esr_frontend.h"

#define ZEROS_PER_SIDE 16
#define KAISER_BETA 8.6
#define ROLLOFF 0.92
#define MAX_HALF 192 /* ceil(16 * 96000 / 8000) */
#define PI 3.14159265358979323846

static long gcd(long a, long b) {
    while (b) {
        long t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* Modified Bessel function of the first kind, order 0 (power series; x <= 9 here). */
static double bessel_i0(double x) {
    double sum = 1.0, term = 1.0, q = x * x / 4.0;
    int k;
    for (k = 1; k < 200; ++k) {
        term *= q / ((double)k * (double)k);
        sum += term;
        if (term < sum * 1e-17) break;
    }
    return sum;
}

static double sinc(double x) {
    double y = PI * (x == 0.0 ? 1.0e-20 : x); /* as numpy.sinc */
    return sin(y) / y;
}

static int rate_ok(int rate) { return rate >= 8000 && rate <= 96000; }

esr_status esr_resample_length(size_t n_in, int rate_in, int rate_out, size_t *n_out) {
    long g, up, down;
    if (!n_out) return ESR_ERR_NULL;
    if (!rate_ok(rate_in) || !rate_ok(rate_out)) return ESR_ERR_CONFIG;
    if (n_in > ((size_t)1 << 31)) return ESR_ERR_SIZE;
    g = gcd(rate_in, rate_out);
    up = rate_out / g;
    down = rate_in / g;
    *n_out = (size_t)(((unsigned long long)n_in * (unsigned long long)up + (unsigned long long)down - 1) /
                      (unsigned long long)down);
    return ESR_OK;
}

esr_status esr_resample(const float *in, size_t n_in, int rate_in, float *out, size_t out_capacity, int rate_out) {
    double kernel[2 * MAX_HALF];
    long g, up, down, half, p, j;
    size_t n_out, n;
    double cutoff, norm_i0;
    esr_status st;
    if (!in || !out) return ESR_ERR_NULL;
    st = esr_resample_length(n_in, rate_in, rate_out, &n_out);
    if (st != ESR_OK) return st;
    if (out_capacity < n_out) return ESR_ERR_SIZE;
    if (rate_in == rate_out) {
        for (n = 0; n < n_in; ++n) out[n] = in[n];
        return ESR_OK;
    }
    g = gcd(rate_in, rate_out);
    up = rate_out / g;
    down = rate_in / g;
    half = (long)ceil(ZEROS_PER_SIDE * (down > up ? (double)down / (double)up : 1.0));
    cutoff = ROLLOFF * (up < down ? (double)up / (double)down : 1.0);
    norm_i0 = bessel_i0(KAISER_BETA);
    /* outputs n and n + up share a kernel: phase by phase, as edge_ser.resample tabulates them */
    for (p = 0; p < up && (size_t)p < n_out; ++p) {
        double sum = 0.0, phase = (double)(((unsigned long long)p * (unsigned long long)down) % (unsigned long long)up);
        for (j = 0; j < 2 * half; ++j) {
            double off = phase / (double)up - (double)(j - half + 1);
            double x = off / (double)(half + 1), r = 1.0 - x * x;
            kernel[j] = cutoff * sinc(cutoff * off) * bessel_i0(KAISER_BETA * sqrt(r > 0 ? r : 0.0)) / norm_i0;
            sum += kernel[j];
        }
        for (j = 0; j < 2 * half; ++j) kernel[j] /= sum;
        for (n = (size_t)p; n < n_out; n += (size_t)up) {
            long long start = (long long)((unsigned long long)n * (unsigned long long)down / (unsigned long long)up) -
                              half + 1;
            double acc = 0.0;
            for (j = 0; j < 2 * half; ++j) {
                long long i = start + j;
                if (i >= 0 && (size_t)i < n_in) acc += (double)in[i] * kernel[j];
            }
            out[n] = (float)acc;
        }
    }
    return ESR_OK;
}
