/* Front-ends of edge_ser.frontend in C99, in caller memory (see esr_frontend.h). */
#include "esr_frontend.h"

#include <float.h>
#include <math.h>
#include <string.h>

#include "kiss_fftr.h"
#include "rfft.h"

#ifdef ESR_FLOAT_ONLY
typedef float esr_acc;
#else
typedef double esr_acc;
#endif

/* kiss_fft_scalar is set by the build (-Dkiss_fft_scalar=double unless ESR_FLOAT_ONLY). */
typedef char esr_fft_scalar_matches_accumulator[(sizeof(kiss_fft_scalar) == sizeof(esr_acc)) ? 1 : -1];

#define ESR_MAGIC 0x45535246u
#define ESR_ALIGN 16u
#define ESR_MAX_NFFT 65536
#define ESR_MAX_MELS 256
#define ESR_PI 3.14159265358979323846

/* python_speech_features' floor for empty bands: float64 machine epsilon, stored in float32. */
static const float esr_log_floor = (float)DBL_EPSILON;

const char *esr_status_str(esr_status status) {
    switch (status) {
    case ESR_OK: return "ok";
    case ESR_ERR_NULL: return "a required pointer is NULL";
    case ESR_ERR_SIZE: return "buffer too small or length out of range";
    case ESR_ERR_CONFIG: return "unsupported configuration";
    case ESR_ERR_FORMAT: return "unreadable data format";
    case ESR_ERR_IO: return "file could not be read";
    case ESR_ERR_STATE: return "object not initialized";
    }
    return "unknown status";
}

void esr_fe_default_config(esr_fe_config *cfg) {
    if (!cfg) return;
    cfg->kind = ESR_FE_MFCC;
    cfg->sample_rate = 16000;
    cfg->win_length = 0.025;
    cfg->hop_length = 0.01;
    cfg->n_fft = 512;
    cfg->window = ESR_WIN_RECT;
    cfg->preemph = 0.97;
    cfg->n_mels = 26;
    cfg->low_freq = 0.0;
    cfg->high_freq = 0.0;
    cfg->n_mfcc = 13;
    cfg->lifter = 22.0;
    cfg->append_energy = 1;
}

static size_t round_half_up(double x) { return (size_t)floor(x + 0.5); }

static int fft_size_ok(int n) {
    if (n < 4 || n > ESR_MAX_NFFT || (n & 1)) return 0;
    n /= 2;
    while (n % 2 == 0) n /= 2;
    while (n % 3 == 0) n /= 3;
    while (n % 5 == 0) n /= 5;
    return n == 1; /* kissfft's generic radix would need a heap buffer */
}

static int uses_mel(esr_fe_kind kind) { return kind != ESR_FE_LOGSPEC; }
static int uses_cepstrum(esr_fe_kind kind) { return kind == ESR_FE_MFCC || kind == ESR_FE_FUNCTIONALS; }

static double high_freq(const esr_fe_config *cfg) {
    return cfg->high_freq > 0 ? cfg->high_freq : cfg->sample_rate / 2.0;
}

static size_t analysis_frames(size_t n, size_t length, size_t step) {
    if (n <= length) return 1;
    return 1 + (n - length + step - 1) / step;
}

static size_t align_up(size_t n) { return (n + ESR_ALIGN - 1) & ~(size_t)(ESR_ALIGN - 1); }

/* Byte offsets of every workspace region; the total is the workspace size. */
typedef struct {
    size_t fft, spectrum, frame, window, power, band_lo, band_len, band_weight, cepstrum, rows, column, total;
} layout;

static esr_status plan(const esr_fe_config *cfg, size_t max_samples, esr_fe_sizes *s, layout *l) {
    size_t bins, fft_bytes = 0, off = 0, width;
    switch (cfg->kind) {
    case ESR_FE_MFCC: case ESR_FE_LOGMEL: case ESR_FE_LOGSPEC: case ESR_FE_FUNCTIONALS: break;
    default: return ESR_ERR_CONFIG;
    }
    switch (cfg->window) {
    case ESR_WIN_RECT: case ESR_WIN_HAMMING: case ESR_WIN_HANN: break;
    default: return ESR_ERR_CONFIG;
    }
    if (cfg->sample_rate < 8000 || cfg->sample_rate > 96000) return ESR_ERR_CONFIG;
    if (!(cfg->win_length > 0 && cfg->win_length < 10.0) || !(cfg->hop_length > 0 && cfg->hop_length < 10.0))
        return ESR_ERR_CONFIG;
    if (!(cfg->preemph >= 0 && cfg->preemph < 1.0)) return ESR_ERR_CONFIG;
    s->frame_length = round_half_up(cfg->win_length * cfg->sample_rate);
    s->frame_step = round_half_up(cfg->hop_length * cfg->sample_rate);
    if (s->frame_length < 2 || s->frame_step < 1) return ESR_ERR_CONFIG;
    if (!fft_size_ok(cfg->n_fft) || s->frame_length > (size_t)cfg->n_fft) return ESR_ERR_CONFIG;
    if (uses_mel(cfg->kind)) {
        if (cfg->n_mels < 1 || cfg->n_mels > ESR_MAX_MELS) return ESR_ERR_CONFIG;
        if (!(cfg->low_freq >= 0 && cfg->low_freq < high_freq(cfg)) || high_freq(cfg) > cfg->sample_rate / 2.0)
            return ESR_ERR_CONFIG;
    }
    if (uses_cepstrum(cfg->kind)) {
        if (cfg->n_mfcc < 1 || cfg->n_mfcc > cfg->n_mels || !(cfg->lifter >= 0) || cfg->lifter > 1e6)
            return ESR_ERR_CONFIG;
    }
    if (max_samples < 1 || max_samples > ((size_t)1 << 30)) return ESR_ERR_SIZE;
    bins = (size_t)cfg->n_fft / 2 + 1;
    s->max_frames = analysis_frames(max_samples, s->frame_length, s->frame_step);
    switch (cfg->kind) {
    case ESR_FE_MFCC: s->n_features = (size_t)cfg->n_mfcc; break;
    case ESR_FE_LOGMEL: s->n_features = (size_t)cfg->n_mels; break;
    case ESR_FE_LOGSPEC: s->n_features = bins; break;
    default: s->n_features = ESR_N_FUNCTIONALS * (size_t)(cfg->n_mfcc + cfg->n_mels); break;
    }
    s->out_rows = cfg->kind == ESR_FE_FUNCTIONALS ? 1 : s->max_frames;
    s->out_floats = s->out_rows * s->n_features;

    if (esr_rfft_supports(cfg->n_fft)) /* power-of-two sizes: rfft.c (faster); the others: KissFFT */
        fft_bytes = align_up(sizeof(esr_rfft)) + esr_rfft_bytes(cfg->n_fft);
    else
        kiss_fftr_alloc(cfg->n_fft, 0, NULL, &fft_bytes);
    width = cfg->kind == ESR_FE_FUNCTIONALS ? (size_t)(cfg->n_mfcc + cfg->n_mels) : 0;
    l->fft = off; off = align_up(off + fft_bytes);
    l->spectrum = off; off = align_up(off + (esr_rfft_supports(cfg->n_fft) ? 0 : bins * sizeof(kiss_fft_cpx)));
    l->frame = off; off = align_up(off + (size_t)cfg->n_fft * sizeof(kiss_fft_scalar));
    l->window = off; off = align_up(off + (cfg->window == ESR_WIN_RECT ? 0 : s->frame_length * sizeof(kiss_fft_scalar)));
    l->power = off; off = align_up(off + bins * sizeof(float));
    l->band_lo = off; off = align_up(off + (uses_mel(cfg->kind) ? (size_t)cfg->n_mels * sizeof(int) : 0));
    l->band_len = off; off = align_up(off + (uses_mel(cfg->kind) ? (size_t)cfg->n_mels * sizeof(int) : 0));
    /* sum over bands of their bins <= 2 * bins (the bands' edges are non-decreasing) */
    l->band_weight = off; off = align_up(off + (uses_mel(cfg->kind) ? 2 * bins * sizeof(float) : 0));
    l->cepstrum = off;
    off = align_up(off + (uses_cepstrum(cfg->kind) ? (size_t)cfg->n_mels * (size_t)cfg->n_mfcc * sizeof(float) : 0));
    l->rows = off; off = align_up(off + s->max_frames * width * sizeof(float));
    l->column = off; off = align_up(off + (width ? s->max_frames * sizeof(float) : 0));
    l->total = off + ESR_ALIGN; /* room to align the caller's pointer */
    s->workspace_bytes = l->total;
    return ESR_OK;
}

esr_status esr_fe_get_sizes(const esr_fe_config *cfg, size_t max_samples, esr_fe_sizes *sizes) {
    layout l;
    esr_fe_sizes s;
    esr_status st;
    if (!cfg || !sizes) return ESR_ERR_NULL;
    st = plan(cfg, max_samples, &s, &l);
    if (st == ESR_OK) *sizes = s;
    return st;
}

size_t esr_fe_num_rows(const esr_fe_sizes *sizes, size_t n_samples) {
    if (!sizes || n_samples == 0) return 0;
    if (sizes->out_rows == 1 && sizes->max_frames > 1) return 1; /* functionals */
    return analysis_frames(n_samples, sizes->frame_length, sizes->frame_step);
}

/* -- tables ------------------------------------------------------------------------------------ */

static double hz_to_mel(double hz) { return 2595.0 * log10(1.0 + hz / 700.0); }
static double mel_to_hz(double mel) { return 700.0 * (pow(10.0, mel / 2595.0) - 1.0); }

/* Band edge i of n_mels + 2 (np.linspace over the mel range, then floor((n_fft+1) * hz / rate)). */
static double mel_edge(const esr_fe_config *cfg, int i) {
    double lo = hz_to_mel(cfg->low_freq), hi = hz_to_mel(high_freq(cfg));
    int div = cfg->n_mels + 1;
    double mel = (i == div) ? hi : lo + i * ((hi - lo) / div);
    return floor((cfg->n_fft + 1) * mel_to_hz(mel) / cfg->sample_rate);
}

static void build_mel(esr_fe *fe) {
    const esr_fe_config *cfg = &fe->cfg;
    int bins = cfg->n_fft / 2 + 1, m, b;
    size_t w = 0;
    for (m = 0; m < cfg->n_mels; ++m) {
        double lo = mel_edge(cfg, m), mid = mel_edge(cfg, m + 1), hi = mel_edge(cfg, m + 2);
        int first = -1, last = -1;
        for (b = 0; b < bins; ++b) {
            double v = 0.0;
            if (b >= lo && b < mid) v = (b - lo) / (mid - lo);
            else if (b >= mid && b < hi) v = (hi - b) / (hi - mid);
            if (v != 0.0) {
                if (first < 0) first = b;
                last = b;
            }
        }
        fe->band_lo[m] = first < 0 ? 0 : first;
        fe->band_len[m] = first < 0 ? 0 : last - first + 1;
        for (b = fe->band_lo[m]; b < fe->band_lo[m] + fe->band_len[m]; ++b) {
            double v = 0.0;
            if (b >= lo && b < mid) v = (b - lo) / (mid - lo);
            else if (b >= mid && b < hi) v = (hi - b) / (hi - mid);
            fe->band_weight[w++] = (float)(v / cfg->n_fft);
        }
    }
}

static void build_cepstrum(esr_fe *fe) {
    const esr_fe_config *cfg = &fe->cfg;
    int n, k, n_in = cfg->n_mels;
    for (n = 0; n < n_in; ++n) {
        for (k = 0; k < cfg->n_mfcc; ++k) {
            double d = cos(ESR_PI * k * (2 * n + 1) / (2.0 * n_in)) * sqrt(2.0 / n_in);
            if (k == 0) d /= sqrt(2.0);
            if (cfg->lifter > 0) d *= 1.0 + (cfg->lifter / 2.0) * sin(ESR_PI * k / cfg->lifter);
            fe->cepstrum[n * cfg->n_mfcc + k] = (float)d;
        }
    }
}

static void build_window(esr_fe *fe) {
    size_t i, n = fe->sizes.frame_length;
    kiss_fft_scalar *w = (kiss_fft_scalar *)fe->window;
    for (i = 0; i < n; ++i) {
        /* numpy: hamming 0.54 - 0.46 cos(2 pi i / (n-1)), hanning 0.5 - 0.5 cos(...) */
        double c = cos(2.0 * ESR_PI * (double)i / (double)(n - 1));
        w[i] = (kiss_fft_scalar)(fe->cfg.window == ESR_WIN_HAMMING ? 0.54 - 0.46 * c : 0.5 - 0.5 * c);
    }
}

esr_status esr_fe_init(esr_fe *fe, const esr_fe_config *cfg, size_t max_samples, void *workspace,
                       size_t workspace_bytes) {
    layout l;
    esr_fe_sizes s;
    esr_status st;
    char *base;
    size_t fft_bytes;
    if (!fe || !cfg || !workspace) return ESR_ERR_NULL;
    memset(fe, 0, sizeof(*fe));
    st = plan(cfg, max_samples, &s, &l);
    if (st != ESR_OK) return st;
    if (workspace_bytes < s.workspace_bytes) return ESR_ERR_SIZE;
    base = (char *)workspace + ((ESR_ALIGN - ((uintptr_t)workspace % ESR_ALIGN)) % ESR_ALIGN);
    fe->cfg = *cfg;
    fe->sizes = s;
    fft_bytes = l.spectrum - l.fft;
    if (esr_rfft_supports(cfg->n_fft)) {
        esr_rfft *f = (esr_rfft *)(void *)(base + l.fft);
        size_t head = align_up(sizeof(esr_rfft));
        if (!esr_rfft_init(f, cfg->n_fft, base + l.fft + head, fft_bytes - head)) return ESR_ERR_CONFIG;
        fe->fft = f;
    } else {
        fe->fft = kiss_fftr_alloc(cfg->n_fft, 0, base + l.fft, &fft_bytes);
    }
    if (!fe->fft) return ESR_ERR_CONFIG;
    fe->spectrum = base + l.spectrum;
    fe->frame = base + l.frame;
    fe->window = cfg->window == ESR_WIN_RECT ? NULL : (float *)(void *)(base + l.window);
    fe->power = (float *)(void *)(base + l.power);
    if (uses_mel(cfg->kind)) {
        fe->band_lo = (int *)(void *)(base + l.band_lo);
        fe->band_len = (int *)(void *)(base + l.band_len);
        fe->band_weight = (float *)(void *)(base + l.band_weight);
        build_mel(fe);
    }
    if (uses_cepstrum(cfg->kind)) {
        fe->cepstrum = (float *)(void *)(base + l.cepstrum);
        build_cepstrum(fe);
    }
    if (cfg->kind == ESR_FE_FUNCTIONALS) {
        fe->rows = (float *)(void *)(base + l.rows);
        fe->column = (float *)(void *)(base + l.column);
    }
    if (fe->window) build_window(fe);
    fe->magic = ESR_MAGIC;
    return ESR_OK;
}

/* -- computation ------------------------------------------------------------------------------- */

/* The samples: float, or int16 read as x / 32768 (what edge_ser.audio gives for 16-bit PCM), so that a
 * microcontroller needs no float copy of its audio. Exactly one of f and i is set. */
typedef struct {
    const float *f;
    const int16_t *i;
} esr_samples;

static inline float sample_at(esr_samples x, size_t i) {
    return x.f ? x.f[i] : (float)x.i[i] * (1.0f / 32768.0f);
}

/* Pre-emphasized sample i of the zero-padded signal (python_speech_features' framing), in float32 as
 * edge_ser.frontend computes it: the previous sample times the coefficient, rounded, then subtracted. */
static float emphasized(esr_samples x, size_t n, size_t i, float preemph) {
    float lag;
    if (i >= n) return 0;
    if (i == 0 || preemph == 0) return sample_at(x, i);
    lag = sample_at(x, i - 1) * preemph;
    return sample_at(x, i) - lag;
}

/* |FFT|^2 of frame t into fe->power (float32, as numpy stores it). The frame is pre-emphasized and windowed
 * in float32 (each product rounded, as numpy's float32 passes round it), then transformed in esr_acc. */
static void frame_power(esr_fe *fe, esr_samples x, size_t n, size_t t) {
    size_t i, len = fe->sizes.frame_length, start = t * fe->sizes.frame_step, bins = (size_t)fe->cfg.n_fft / 2 + 1;
    kiss_fft_scalar *frame = (kiss_fft_scalar *)fe->frame;
    kiss_fft_cpx *spec = (kiss_fft_cpx *)fe->spectrum;
    const kiss_fft_scalar *w = (const kiss_fft_scalar *)(const void *)fe->window;
    float preemph = (float)fe->cfg.preemph;
    if (start > 0 && start + len <= n && preemph != 0 && x.f) { /* the common case: no edge of the signal */
        const float *xs = x.f + start, *prev = x.f + start - 1;
        if (w) {
            for (i = 0; i < len; ++i) {
                float lag = prev[i] * preemph, v = xs[i] - lag;
                frame[i] = (kiss_fft_scalar)(v * (float)w[i]);
            }
        } else {
            for (i = 0; i < len; ++i) {
                float lag = prev[i] * preemph;
                frame[i] = (kiss_fft_scalar)(xs[i] - lag);
            }
        }
    } else if (start > 0 && start + len <= n && preemph != 0) { /* the same from int16 samples */
        const int16_t *xs = x.i + start;
        float before = (float)xs[-1] * (1.0f / 32768.0f);
        for (i = 0; i < len; ++i) {
            float now = (float)xs[i] * (1.0f / 32768.0f), lag = before * preemph, v = now - lag;
            frame[i] = (kiss_fft_scalar)(w ? v * (float)w[i] : v);
            before = now;
        }
    } else {
        for (i = 0; i < len; ++i) {
            float v = emphasized(x, n, start + i, preemph);
            frame[i] = (kiss_fft_scalar)(w ? v * (float)w[i] : v);
        }
    }
    for (; i < (size_t)fe->cfg.n_fft; ++i) frame[i] = 0;
    if (esr_rfft_supports(fe->cfg.n_fft)) {
        esr_rfft_power((const esr_rfft *)fe->fft, frame, fe->power);
        return;
    }
    kiss_fftr((kiss_fftr_cfg)fe->fft, frame, spec);
    for (i = 0; i < bins; ++i) fe->power[i] = (float)(spec[i].r * spec[i].r + spec[i].i * spec[i].i);
}

static float floored_log(esr_acc v) {
    float f = (float)v;
    return logf(f == 0.0f ? esr_log_floor : f);
}

/* One frame's features into `row` (MFCC or log-mel or log-spectrum; functionals: MFCC then log-mel). */
static void frame_features(esr_fe *fe, float *row) {
    const esr_fe_config *cfg = &fe->cfg;
    int bins = cfg->n_fft / 2 + 1, m, k, b;
    float *logbands, bands_local[ESR_MAX_MELS];
    const float *w = fe->band_weight;
    if (cfg->kind == ESR_FE_LOGSPEC) {
        for (b = 0; b < bins; ++b) {
            float v = fe->power[b] * (1.0f / (float)cfg->n_fft);
            row[b] = logf(v == 0.0f ? esr_log_floor : v);
        }
        return;
    }
    logbands = cfg->kind == ESR_FE_LOGMEL ? row : cfg->kind == ESR_FE_FUNCTIONALS ? row + cfg->n_mfcc : bands_local;
    for (m = 0; m < cfg->n_mels; ++m) {
        esr_acc sum = 0;
        for (b = 0; b < fe->band_len[m]; ++b) sum += (esr_acc)fe->power[fe->band_lo[m] + b] * (esr_acc)w[b];
        w += fe->band_len[m];
        logbands[m] = floored_log(sum);
    }
    if (cfg->kind == ESR_FE_LOGMEL) return;
    for (k = 0; k < cfg->n_mfcc; ++k) {
        esr_acc sum = 0;
        for (m = 0; m < cfg->n_mels; ++m) sum += (esr_acc)logbands[m] * (esr_acc)fe->cepstrum[m * cfg->n_mfcc + k];
        row[k] = (float)sum;
    }
    if (cfg->append_energy) {
        esr_acc energy = 0;
        for (b = 0; b < bins; ++b) energy += (esr_acc)fe->power[b];
        row[0] = floored_log((esr_acc)(float)energy / (esr_acc)cfg->n_fft);
    }
}

static void heap_sort(float *a, size_t n) {
    size_t start, end, root, child;
    float t;
    if (n < 2) return;
    for (start = n / 2; start-- > 0;) {
        for (root = start; (child = 2 * root + 1) < n; root = child) {
            if (child + 1 < n && a[child] < a[child + 1]) ++child;
            if (!(a[root] < a[child])) break;
            t = a[root]; a[root] = a[child]; a[child] = t;
        }
    }
    for (end = n - 1; end > 0; --end) {
        t = a[0]; a[0] = a[end]; a[end] = t;
        for (root = 0; (child = 2 * root + 1) < end; root = child) {
            if (child + 1 < end && a[child] < a[child + 1]) ++child;
            if (!(a[root] < a[child])) break;
            t = a[root]; a[root] = a[child]; a[child] = t;
        }
    }
}

/* edge_ser.frontend.functionals over `frames` rows of `width` features into out[9 * width]. */
static void functionals(esr_fe *fe, size_t frames, size_t width, float *out) {
    static const double pct[3] = {0.1, 0.5, 0.9};
    size_t j, t, p;
    for (j = 0; j < width; ++j) {
        const float *x = fe->rows + j;
        esr_acc sum = 0, mean, var = 0, dsum = 0, dabs = 0, dmean, dvar = 0;
        size_t nd = frames > 1 ? frames - 1 : 1;
        for (t = 0; t < frames; ++t) sum += (esr_acc)x[t * width];
        mean = sum / (esr_acc)frames;
        for (t = 0; t < frames; ++t) {
            esr_acc d = (esr_acc)x[t * width] - mean;
            var += d * d;
        }
        for (t = 1; t < frames; ++t) {
            esr_acc d = (esr_acc)x[t * width] - (esr_acc)x[(t - 1) * width];
            dsum += d;
            dabs += d < 0 ? -d : d;
        }
        dmean = dsum / (esr_acc)nd;
        for (t = 1; t < frames; ++t) {
            esr_acc d = (esr_acc)x[t * width] - (esr_acc)x[(t - 1) * width] - dmean;
            dvar += d * d;
        }
        for (t = 0; t < frames; ++t) fe->column[t] = x[t * width];
        heap_sort(fe->column, frames);
        out[0 * width + j] = (float)mean;
        out[1 * width + j] = (float)sqrt(var / (esr_acc)frames);
        out[2 * width + j] = fe->column[0];
        out[3 * width + j] = fe->column[frames - 1];
        for (p = 0; p < 3; ++p) {
            double pos = pct[p] * (double)(frames - 1);
            size_t lo = (size_t)floor(pos), hi = lo + 1 < frames ? lo + 1 : frames - 1;
            esr_acc frac = (esr_acc)(pos - (double)lo);
            esr_acc a = (esr_acc)fe->column[lo], b = (esr_acc)fe->column[hi];
            out[(4 + p) * width + j] = (float)(a + frac * (b - a));
        }
        out[7 * width + j] = (float)(dabs / (esr_acc)nd);
        out[8 * width + j] = (float)sqrt(dvar / (esr_acc)nd);
    }
}

static esr_status compute(esr_fe *fe, esr_samples samples, size_t n_samples, float *out, size_t out_capacity,
                          size_t *rows) {
    size_t frames, t, need, width;
    if (!fe || (!samples.f && !samples.i) || !out || !rows) return ESR_ERR_NULL;
    if (fe->magic != ESR_MAGIC) return ESR_ERR_STATE;
    *rows = 0;
    if (n_samples < 1 || n_samples > (fe->sizes.max_frames - 1) * fe->sizes.frame_step + fe->sizes.frame_length)
        return ESR_ERR_SIZE;
    frames = analysis_frames(n_samples, fe->sizes.frame_length, fe->sizes.frame_step);
    if (frames > fe->sizes.max_frames) return ESR_ERR_SIZE;
    need = (fe->cfg.kind == ESR_FE_FUNCTIONALS ? 1 : frames) * fe->sizes.n_features;
    if (out_capacity < need) return ESR_ERR_SIZE;
    width = fe->cfg.kind == ESR_FE_FUNCTIONALS ? (size_t)(fe->cfg.n_mfcc + fe->cfg.n_mels) : fe->sizes.n_features;
    for (t = 0; t < frames; ++t) {
        frame_power(fe, samples, n_samples, t);
        frame_features(fe, fe->cfg.kind == ESR_FE_FUNCTIONALS ? fe->rows + t * width : out + t * width);
    }
    if (fe->cfg.kind == ESR_FE_FUNCTIONALS) {
        functionals(fe, frames, width, out);
        *rows = 1;
    } else {
        *rows = frames;
    }
    return ESR_OK;
}

esr_status esr_fe_compute(esr_fe *fe, const float *samples, size_t n_samples, float *out, size_t out_capacity,
                          size_t *rows) {
    esr_samples x = {samples, NULL};
    return compute(fe, x, n_samples, out, out_capacity, rows);
}

esr_status esr_fe_compute_i16(esr_fe *fe, const int16_t *samples, size_t n_samples, float *out, size_t out_capacity,
                              size_t *rows) {
    esr_samples x = {NULL, samples};
    return compute(fe, x, n_samples, out, out_capacity, rows);
}

esr_status esr_fe_normalize(float *x, size_t rows, size_t dim, const float *mean, const float *std) {
    size_t r, j;
    if (!x || !mean || !std) return ESR_ERR_NULL;
    if (dim == 0) return ESR_ERR_SIZE;
    for (j = 0; j < dim; ++j)
        if (!(std[j] > 0) || !isfinite(mean[j]) || !isfinite(std[j])) return ESR_ERR_CONFIG;
    for (r = 0; r < rows; ++r) {
        for (j = 0; j < dim; ++j) {
            float inv = 1.0f / std[j];
            x[r * dim + j] = (x[r * dim + j] - mean[j]) * inv;
        }
    }
    return ESR_OK;
}

float esr_peak(const float *x, size_t n) {
    float peak = 0.0f;
    size_t i;
    if (!x) return 0.0f;
    for (i = 0; i < n; ++i) {
        float a = fabsf(x[i]);
        if (a > peak) peak = a;
    }
    return peak;
}
