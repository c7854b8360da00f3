/* Bad input to the C API returns an error code (run under ASan + UBSan by `make check`). */
#include <stdio.h>
#include <string.h>

#include "esr_frontend.h"

static int failures = 0;
#define EXPECT(cond)                                                  \
    do {                                                              \
        if (!(cond)) {                                                \
            fprintf(stderr, "%s:%d: FAILED %s\n", __FILE__, __LINE__, #cond); \
            ++failures;                                               \
        }                                                             \
    } while (0)

static unsigned char work[1 << 20];
static float out[1 << 16];
static float samples[20000];

static void put32(unsigned char *p, unsigned v) {
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

/* A 16-bit mono WAV of n samples at rate; returns its size. */
static size_t make_wav(unsigned char *buf, unsigned rate, unsigned n, unsigned declared) {
    memcpy(buf, "RIFF", 4);
    put32(buf + 4, 36 + 2 * n);
    memcpy(buf + 8, "WAVEfmt ", 8);
    put32(buf + 16, 16);
    buf[20] = 1; buf[21] = 0; buf[22] = 1; buf[23] = 0;
    put32(buf + 24, rate);
    put32(buf + 28, rate * 2);
    buf[32] = 2; buf[33] = 0; buf[34] = 16; buf[35] = 0;
    memcpy(buf + 36, "data", 4);
    put32(buf + 40, declared);
    memset(buf + 44, 0, 2 * n);
    if (n > 0) { buf[44] = 0x00; buf[45] = 0x40; } /* first sample 0.5 */
    return 44 + 2 * (size_t)n;
}

static void test_frontend(void) {
    esr_fe_config cfg;
    esr_fe_sizes sizes;
    esr_fe fe;
    size_t rows, i;
    esr_fe_default_config(&cfg);
    EXPECT(esr_fe_get_sizes(NULL, 16000, &sizes) == ESR_ERR_NULL);
    EXPECT(esr_fe_get_sizes(&cfg, 16000, NULL) == ESR_ERR_NULL);
    EXPECT(esr_fe_get_sizes(&cfg, 0, &sizes) == ESR_ERR_SIZE);
    EXPECT(esr_fe_get_sizes(&cfg, 16000, &sizes) == ESR_OK);
    EXPECT(sizes.n_features == 13 && sizes.max_frames == 99 && sizes.out_floats == 99 * 13);
    EXPECT(sizes.workspace_bytes <= sizeof work);
    /* configurations the contract refuses */
    cfg.n_fft = 256; /* shorter than the 400-sample window */
    EXPECT(esr_fe_get_sizes(&cfg, 16000, &sizes) == ESR_ERR_CONFIG);
    cfg.n_fft = 514; /* 2 * 257: a prime factor kissfft would need the heap for */
    EXPECT(esr_fe_get_sizes(&cfg, 16000, &sizes) == ESR_ERR_CONFIG);
    esr_fe_default_config(&cfg);
    cfg.n_mfcc = 40; /* more than n_mels */
    EXPECT(esr_fe_get_sizes(&cfg, 16000, &sizes) == ESR_ERR_CONFIG);
    esr_fe_default_config(&cfg);
    cfg.sample_rate = 4000;
    EXPECT(esr_fe_get_sizes(&cfg, 16000, &sizes) == ESR_ERR_CONFIG);
    esr_fe_default_config(&cfg);
    cfg.kind = (esr_fe_kind)99;
    EXPECT(esr_fe_get_sizes(&cfg, 16000, &sizes) == ESR_ERR_CONFIG);
    esr_fe_default_config(&cfg);
    cfg.high_freq = 9000.0; /* above Nyquist */
    EXPECT(esr_fe_get_sizes(&cfg, 16000, &sizes) == ESR_ERR_CONFIG);

    esr_fe_default_config(&cfg);
    EXPECT(esr_fe_get_sizes(&cfg, 16000, &sizes) == ESR_OK);
    EXPECT(esr_fe_init(NULL, &cfg, 16000, work, sizeof work) == ESR_ERR_NULL);
    EXPECT(esr_fe_init(&fe, &cfg, 16000, NULL, sizeof work) == ESR_ERR_NULL);
    EXPECT(esr_fe_init(&fe, &cfg, 16000, work, sizes.workspace_bytes - 1) == ESR_ERR_SIZE);
    memset(&fe, 0, sizeof fe);
    EXPECT(esr_fe_compute(&fe, samples, 16000, out, sizeof out / sizeof *out, &rows) == ESR_ERR_STATE);
    /* an odd workspace address works: init aligns it */
    EXPECT(esr_fe_init(&fe, &cfg, 16000, work + 3, sizes.workspace_bytes) == ESR_OK);
    for (i = 0; i < 16000; ++i) samples[i] = (float)((i * 7919u) % 2000u) / 1000.0f - 1.0f;
    EXPECT(esr_fe_compute(&fe, NULL, 16000, out, sizes.out_floats, &rows) == ESR_ERR_NULL);
    EXPECT(esr_fe_compute(&fe, samples, 16000, NULL, sizes.out_floats, &rows) == ESR_ERR_NULL);
    EXPECT(esr_fe_compute(&fe, samples, 16000, out, sizes.out_floats, NULL) == ESR_ERR_NULL);
    EXPECT(esr_fe_compute(&fe, samples, 0, out, sizes.out_floats, &rows) == ESR_ERR_SIZE);
    EXPECT(esr_fe_compute(&fe, samples, 16081, out, sizeof out / sizeof *out, &rows) == ESR_ERR_SIZE); /* > 99 frames */
    EXPECT(esr_fe_compute(&fe, samples, 16000, out, sizes.out_floats - 1, &rows) == ESR_ERR_SIZE);
    EXPECT(esr_fe_compute(&fe, samples, 16000, out, sizes.out_floats, &rows) == ESR_OK && rows == 99);
    EXPECT(esr_fe_compute(&fe, samples, 1, out, sizes.out_floats, &rows) == ESR_OK && rows == 1);
    EXPECT(esr_fe_num_rows(&fe.sizes, 400) == 1 && esr_fe_num_rows(&fe.sizes, 401) == 2);
    { /* 16-bit samples: the same checks, and the same features as their float values (x / 32768) */
        static int16_t pcm[16000];
        static float out16[99 * 13];
        size_t rows16 = 0;
        for (i = 0; i < 16000; ++i) {
            pcm[i] = (int16_t)((int32_t)((i * 7919u) % 65536u) - 32768);
            samples[i] = (float)pcm[i] / 32768.0f;
        }
        EXPECT(esr_fe_compute_i16(NULL, pcm, 16000, out16, sizes.out_floats, &rows16) == ESR_ERR_NULL);
        EXPECT(esr_fe_compute_i16(&fe, NULL, 16000, out16, sizes.out_floats, &rows16) == ESR_ERR_NULL);
        EXPECT(esr_fe_compute_i16(&fe, pcm, 16000, NULL, sizes.out_floats, &rows16) == ESR_ERR_NULL);
        EXPECT(esr_fe_compute_i16(&fe, pcm, 0, out16, sizes.out_floats, &rows16) == ESR_ERR_SIZE);
        EXPECT(esr_fe_compute_i16(&fe, pcm, 16000, out16, sizes.out_floats - 1, &rows16) == ESR_ERR_SIZE);
        EXPECT(esr_fe_compute_i16(&fe, pcm, 16000, out16, sizes.out_floats, &rows16) == ESR_OK && rows16 == 99);
        EXPECT(esr_fe_compute(&fe, samples, 16000, out, sizes.out_floats, &rows) == ESR_OK && rows == 99);
        EXPECT(memcmp(out, out16, 99 * 13 * sizeof(float)) == 0);
    }
    {
        float mean[13] = {0}, std[13] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0};
        EXPECT(esr_fe_normalize(NULL, 1, 13, mean, std) == ESR_ERR_NULL);
        EXPECT(esr_fe_normalize(out, 1, 0, mean, std) == ESR_ERR_SIZE);
        EXPECT(esr_fe_normalize(out, 1, 13, mean, std) == ESR_ERR_CONFIG); /* std 0 */
    }
}

static void test_resample(void) {
    size_t n;
    EXPECT(esr_resample_length(100, 22050, 16000, NULL) == ESR_ERR_NULL);
    EXPECT(esr_resample_length(100, 4000, 16000, &n) == ESR_ERR_CONFIG);
    EXPECT(esr_resample_length(100, 22050, 200000, &n) == ESR_ERR_CONFIG);
    EXPECT(esr_resample_length(441, 22050, 16000, &n) == ESR_OK && n == 320);
    EXPECT(esr_resample(NULL, 441, 22050, out, 320, 16000) == ESR_ERR_NULL);
    EXPECT(esr_resample(samples, 441, 22050, out, 319, 16000) == ESR_ERR_SIZE);
    EXPECT(esr_resample(samples, 441, 22050, out, 320, 16000) == ESR_OK);
    EXPECT(esr_resample(samples, 100, 96000, out, 100, 8000) == ESR_OK);
}

static void test_wav(void) {
    static unsigned char buf[4096];
    esr_wav_info info;
    size_t size = make_wav(buf, 16000, 100, 200);
    EXPECT(esr_wav_parse(NULL, size, &info) == ESR_ERR_NULL);
    EXPECT(esr_wav_parse(buf, size, NULL) == ESR_ERR_NULL);
    EXPECT(esr_wav_parse(buf, size, &info) == ESR_OK && info.frames == 100 && info.sample_rate == 16000);
    EXPECT(esr_wav_decode(buf, size, &info, out, 99) == ESR_ERR_SIZE);
    EXPECT(esr_wav_decode(buf, size, &info, out, 100) == ESR_OK && out[0] == 0.5f);
    EXPECT(esr_wav_parse(buf, size - 1, &info) == ESR_ERR_FORMAT);       /* truncated data */
    EXPECT(esr_wav_parse(buf, 30, &info) == ESR_ERR_FORMAT);             /* truncated fmt */
    EXPECT(esr_wav_parse(buf, 4, &info) == ESR_ERR_FORMAT);              /* not RIFF */
    size = make_wav(buf, 16000, 100, 0xFFFFFFFFu);                       /* declares more than it holds */
    EXPECT(esr_wav_parse(buf, size, &info) == ESR_ERR_FORMAT);
    size = make_wav(buf, 4000, 100, 200);                                /* rate out of range */
    EXPECT(esr_wav_parse(buf, size, &info) == ESR_ERR_FORMAT);
    size = make_wav(buf, 16000, 100, 200);
    buf[34] = 8;                                                         /* 8-bit: not read */
    EXPECT(esr_wav_parse(buf, size, &info) == ESR_ERR_FORMAT);
    memcpy(buf, "RIFX", 4);
    EXPECT(esr_wav_parse(buf, size, &info) == ESR_ERR_FORMAT);
    size = make_wav(buf, 16000, 0, 0);                                   /* empty */
    EXPECT(esr_wav_parse(buf, size, &info) == ESR_ERR_FORMAT);
    memset(buf, 0xFF, sizeof buf);
    EXPECT(esr_wav_parse(buf, sizeof buf, &info) == ESR_ERR_FORMAT);
    EXPECT(esr_status_str(ESR_ERR_FORMAT) != NULL);
}

int main(void) {
    test_frontend();
    test_resample();
    test_wav();
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("test_errors: all checks passed\n");
    return 0;
}
