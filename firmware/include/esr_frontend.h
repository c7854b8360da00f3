/* edge-ser front-ends in C99: MFCC, log-mel, log-spectrogram and utterance functionals.
 *
 * The same features as edge_ser.frontend (the contract's `frontend` object), computed
 * without malloc: esr_fe_get_sizes() says how many bytes of workspace and how many output
 * floats a configuration needs for a given number of samples, the caller provides both, and
 * esr_fe_init() / esr_fe_compute() only use that memory. Every function checks its
 * arguments and returns an esr_status; none aborts or allocates.
 *
 * Precision: float32 state. By default the FFT and every sum (mel bands, DCT, energy,
 * statistics) run in double, which keeps the features within 1e-4 of numpy after
 * normalization; built with -DESR_FLOAT_ONLY everything runs in float (microcontrollers
 * with a single-precision FPU). docs/firmware.md gives the measured error of both.
 */
#ifndef ESR_FRONTEND_H
#define ESR_FRONTEND_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    ESR_OK = 0,
    ESR_ERR_NULL = -1,   /* a required pointer is NULL */
    ESR_ERR_SIZE = -2,   /* a buffer is too small, or a length is out of range */
    ESR_ERR_CONFIG = -3, /* parameters the contract does not allow (or this build does not support) */
    ESR_ERR_FORMAT = -4, /* data that is not in a format this code reads (WAV header, JSON, ...) */
    ESR_ERR_IO = -5,     /* a file could not be opened or read */
    ESR_ERR_STATE = -6   /* an object used before a successful init */
} esr_status;

/* A short English description of a status ("buffer too small", ...). */
const char *esr_status_str(esr_status status);

typedef enum { ESR_FE_MFCC = 1, ESR_FE_LOGMEL = 2, ESR_FE_LOGSPEC = 3, ESR_FE_FUNCTIONALS = 4 } esr_fe_kind;
typedef enum { ESR_WIN_RECT = 0, ESR_WIN_HAMMING = 1, ESR_WIN_HANN = 2 } esr_window;

/* Statistics per frame feature in the functionals front-end (edge_ser.frontend.N_FUNCTIONALS). */
#define ESR_N_FUNCTIONALS 9

/* The contract's `frontend` object; times in seconds, as in the contract. */
typedef struct {
    esr_fe_kind kind;
    int sample_rate;
    double win_length;
    double hop_length;
    int n_fft;
    esr_window window;
    double preemph;
    int n_mels;
    double low_freq;
    double high_freq; /* <= 0: the Nyquist frequency (the contract's null) */
    int n_mfcc;
    double lifter;
    int append_energy;
} esr_fe_config;

/* The contract's defaults (edge_ser.frontend.FrontEnd()). */
void esr_fe_default_config(esr_fe_config *cfg);

typedef struct {
    size_t workspace_bytes; /* memory esr_fe_init needs (any alignment; it aligns itself) */
    size_t frame_length;    /* samples per analysis frame */
    size_t frame_step;      /* samples between frames */
    size_t max_frames;      /* analysis frames for max_samples samples */
    size_t n_features;      /* floats per output row */
    size_t out_rows;        /* output rows for max_samples samples (1 for functionals) */
    size_t out_floats;      /* out_rows * n_features: the output buffer esr_fe_compute needs */
} esr_fe_sizes;

/* Sizes for inputs of up to max_samples samples; ESR_ERR_CONFIG for a configuration the
 * contract refuses or the FFT cannot do (n_fft must be even, with prime factors 2, 3, 5). */
esr_status esr_fe_get_sizes(const esr_fe_config *cfg, size_t max_samples, esr_fe_sizes *sizes);

/* Output rows (frames, or 1 for functionals) for n_samples samples (n_samples >= 1). */
size_t esr_fe_num_rows(const esr_fe_sizes *sizes, size_t n_samples);

/* A front-end living in caller memory. Fields are private. */
typedef struct {
    esr_fe_config cfg;
    esr_fe_sizes sizes;
    uint32_t magic;
    void *fft;           /* kiss_fftr state */
    void *spectrum;      /* n_fft/2+1 complex */
    void *frame;         /* n_fft scalars (FFT input) */
    float *window;       /* frame_length, or NULL for rect */
    float *power;        /* n_fft/2+1 */
    int *band_lo;        /* first FFT bin of each mel band */
    int *band_len;       /* bins in each mel band */
    float *band_weight;  /* weights, band after band */
    float *cepstrum;     /* n_mels x n_mfcc, DCT-II with the lifter folded in */
    float *rows;         /* functionals: every frame's MFCC and log-mel (max_frames x (n_mfcc+n_mels)) */
    float *column;       /* functionals: one feature over time, sorted */
} esr_fe;

/* Lay out the front-end in `workspace` (workspace_bytes from esr_fe_get_sizes with the same
 * cfg and max_samples) and precompute its tables. */
esr_status esr_fe_init(esr_fe *fe, const esr_fe_config *cfg, size_t max_samples, void *workspace,
                       size_t workspace_bytes);

/* Features of n_samples mono samples (1 <= n_samples <= max_samples) at cfg.sample_rate, into
 * `out` (row-major rows x n_features); *rows receives the number of rows written. */
esr_status esr_fe_compute(esr_fe *fe, const float *samples, size_t n_samples, float *out, size_t out_capacity,
                          size_t *rows);

/* The same from 16-bit PCM samples, read as sample / 32768 (edge_ser.audio's scaling): no float copy of
 * the audio is needed (a microcontroller can read them where they are, e.g. flash or a DMA buffer). */
esr_status esr_fe_compute_i16(esr_fe *fe, const int16_t *samples, size_t n_samples, float *out, size_t out_capacity,
                              size_t *rows);

/* In place: x = (x - mean) * (1 / std) per feature, as edge_ser.frontend.Normalization
 * ("global") does in float32; `dim` statistics for rows x dim features (dim == 1 for waveforms
 * applies one pair to every value). */
esr_status esr_fe_normalize(float *x, size_t rows, size_t dim, const float *mean, const float *std);

/* The largest absolute sample value (for the runtime's -80 dBFS digital-silence rule). */
float esr_peak(const float *x, size_t n);

/* -- resampling (edge_ser.resample: Kaiser-windowed sinc, the same kernels) ------------------ */

/* Output samples for n_in samples from rate_in to rate_out Hz (both 8000..96000). */
esr_status esr_resample_length(size_t n_in, int rate_in, int rate_out, size_t *n_out);

/* Resample n_in samples into `out` (capacity out_capacity >= esr_resample_length's count). Uses
 * only a small stack buffer (at most 2 * 192 taps); kernels are computed per output sample. */
esr_status esr_resample(const float *in, size_t n_in, int rate_in, float *out, size_t out_capacity, int rate_out);

/* -- WAV ------------------------------------------------------------------------------------- */

typedef struct {
    int sample_rate;
    int channels;
    int bits;          /* 16, 24 or 32 (PCM) or 32 / 64 (IEEE float) */
    int is_float;
    size_t frames;     /* samples per channel */
    size_t data_offset;
} esr_wav_info;

/* Parse a RIFF/WAVE header held in memory (PCM 16/24/32-bit, IEEE float 32/64-bit, plain or
 * WAVE_FORMAT_EXTENSIBLE). ESR_ERR_FORMAT for anything else or a truncated file. */
esr_status esr_wav_parse(const uint8_t *data, size_t size, esr_wav_info *info);

/* Decode to mono float32 in [-1, 1] (channels averaged), as soundfile + edge_ser.audio do:
 * out_capacity >= info->frames. ESR_ERR_FORMAT for NaN or infinite float samples. */
esr_status esr_wav_decode(const uint8_t *data, size_t size, const esr_wav_info *info, float *out,
                          size_t out_capacity);

#ifdef __cplusplus
}
#endif
#endif
