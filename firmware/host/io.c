#include "io.h"

#include <stdio.h>
#include <stdlib.h>

esr_status esr_read_file(const char *path, size_t max_bytes, uint8_t **data, size_t *size) {
    FILE *f;
    long len;
    uint8_t *buf;
    if (!path || !data || !size) return ESR_ERR_NULL;
    *data = NULL;
    *size = 0;
    f = fopen(path, "rb");
    if (!f) return ESR_ERR_IO;
    if (fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return ESR_ERR_IO;
    }
    if ((size_t)len > max_bytes) {
        fclose(f);
        return ESR_ERR_SIZE;
    }
    buf = (uint8_t *)malloc((size_t)len + 1);
    if (!buf) {
        fclose(f);
        return ESR_ERR_SIZE;
    }
    if (fread(buf, 1, (size_t)len, f) != (size_t)len) {
        free(buf);
        fclose(f);
        return ESR_ERR_IO;
    }
    fclose(f);
    buf[len] = 0;
    *data = buf;
    *size = (size_t)len;
    return ESR_OK;
}

esr_status esr_load_wav(const char *path, float **samples, size_t *n, int *sample_rate) {
    uint8_t *data;
    size_t size;
    esr_wav_info info;
    esr_status st;
    if (!samples || !n || !sample_rate) return ESR_ERR_NULL;
    *samples = NULL;
    st = esr_read_file(path, (size_t)1 << 31, &data, &size);
    if (st != ESR_OK) return st;
    st = esr_wav_parse(data, size, &info);
    if (st == ESR_OK) {
        *samples = (float *)malloc(info.frames * sizeof(float));
        st = *samples ? esr_wav_decode(data, size, &info, *samples, info.frames) : ESR_ERR_SIZE;
    }
    free(data);
    if (st != ESR_OK) {
        free(*samples);
        *samples = NULL;
        return st;
    }
    *n = info.frames;
    *sample_rate = info.sample_rate;
    return ESR_OK;
}
