/* Power spectrum of a real frame for power-of-two FFT sizes (the front-end's hot loop): a complex FFT
 * of half the size, radix 4 (one radix-2 stage when needed), decimation in frequency in place, with
 * every table built at init in caller memory. Other sizes use KissFFT (frontend.c). Private to the
 * front-end. */
#ifndef ESR_RFFT_H
#define ESR_RFFT_H

#include <stddef.h>
#include <stdint.h>

#include "kiss_fft.h" /* kiss_fft_scalar, kiss_fft_cpx: float or double, as the build sets */

typedef struct {
    int n;              /* real FFT size */
    kiss_fft_cpx *tw;   /* n/2 twiddles of the complex FFT: exp(-2 pi i t / (n/2)) */
    kiss_fft_cpx *post; /* n/2 twiddles of the real split: exp(-2 pi i k / n) */
    uint16_t *pos;      /* position of frequency k in the complex FFT's output (digit-reversed order) */
} esr_rfft;

/* Whether n is a size this code takes (a power of two, 8 <= n <= 65536). */
int esr_rfft_supports(int n);
/* Bytes of tables for size n (any alignment; init aligns). */
size_t esr_rfft_bytes(int n);
/* Lay out and fill the tables in mem (esr_rfft_bytes(n) bytes); 0 when n is not supported. */
int esr_rfft_init(esr_rfft *f, int n, void *mem, size_t bytes);
/* power[k] = |X[k]|^2 for k = 0..n/2 of the n real samples in frame (overwritten: the FFT runs in it). */
void esr_rfft_power(const esr_rfft *f, kiss_fft_scalar *frame, float *power);

#endif
