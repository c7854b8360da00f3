/* RIFF/WAVE reading in C99 from memory: the formats soundfile reads for edge_ser.audio. */
#include <math.h>
#include <string.h>

#include "esr_frontend.h"

#define MAX_CHANNELS 64

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

esr_status esr_wav_parse(const uint8_t *data, size_t size, esr_wav_info *info) {
    size_t pos = 12;
    int have_fmt = 0;
    uint16_t format = 0, block_align = 0;
    if (!data || !info) return ESR_ERR_NULL;
    memset(info, 0, sizeof(*info));
    if (size < 12 || memcmp(data, "RIFF", 4) != 0 || memcmp(data + 8, "WAVE", 4) != 0) return ESR_ERR_FORMAT;
    while (pos + 8 <= size) {
        const uint8_t *chunk = data + pos;
        size_t len = le32(chunk + 4), body = pos + 8;
        if (memcmp(chunk, "fmt ", 4) == 0) {
            if (len < 16 || len > size - body) return ESR_ERR_FORMAT;
            format = le16(data + body);
            info->channels = le16(data + body + 2);
            info->sample_rate = (int)le32(data + body + 4);
            block_align = le16(data + body + 12);
            info->bits = le16(data + body + 14);
            if (format == 0xFFFE) {
                if (len < 40) return ESR_ERR_FORMAT;
                format = le16(data + body + 24); /* the sub-format GUID starts with the format tag */
            }
            have_fmt = 1;
        } else if (memcmp(chunk, "data", 4) == 0) {
            if (!have_fmt) return ESR_ERR_FORMAT;
            if (format == 1 && (info->bits == 16 || info->bits == 24 || info->bits == 32)) {
                info->is_float = 0;
            } else if (format == 3 && (info->bits == 32 || info->bits == 64)) {
                info->is_float = 1;
            } else {
                return ESR_ERR_FORMAT;
            }
            if (info->channels < 1 || info->channels > MAX_CHANNELS) return ESR_ERR_FORMAT;
            if (info->sample_rate < 8000 || info->sample_rate > 96000) return ESR_ERR_FORMAT;
            if (block_align != info->channels * (info->bits / 8)) return ESR_ERR_FORMAT;
            if (len > size - body) return ESR_ERR_FORMAT; /* truncated: ends before the declared audio */
            info->frames = len / block_align;
            info->data_offset = body;
            if (info->frames == 0) return ESR_ERR_FORMAT;
            return ESR_OK;
        }
        if (len > size - body) return ESR_ERR_FORMAT;
        pos = body + len + (len & 1);
    }
    return ESR_ERR_FORMAT;
}

static float sample(const uint8_t *p, const esr_wav_info *info) {
    if (info->is_float) {
        if (info->bits == 32) {
            uint32_t u = le32(p);
            float f;
            memcpy(&f, &u, sizeof f);
            return f;
        } else {
            uint64_t u = (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
            double d;
            memcpy(&d, &u, sizeof d);
            return (float)d;
        }
    }
    if (info->bits == 16) return (float)(int16_t)le16(p) * (1.0f / 32768.0f);
    if (info->bits == 24) {
        int32_t v = (int32_t)((uint32_t)p[0] << 8 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 24);
        return (float)v * (1.0f / 2147483648.0f);
    }
    return (float)(int32_t)le32(p) * (1.0f / 2147483648.0f);
}

esr_status esr_wav_decode(const uint8_t *data, size_t size, const esr_wav_info *info, float *out,
                          size_t out_capacity) {
    size_t i, bytes;
    int c;
    if (!data || !info || !out) return ESR_ERR_NULL;
    if (info->channels < 1 || info->channels > MAX_CHANNELS || (info->bits != 16 && info->bits != 24 &&
                                                                info->bits != 32 && info->bits != 64))
        return ESR_ERR_FORMAT;
    bytes = (size_t)(info->bits / 8) * (size_t)info->channels;
    if (info->data_offset > size || info->frames > (size - info->data_offset) / bytes) return ESR_ERR_FORMAT;
    if (out_capacity < info->frames) return ESR_ERR_SIZE;
    for (i = 0; i < info->frames; ++i) {
        const uint8_t *frame = data + info->data_offset + i * bytes;
        float sum = 0.0f;
        for (c = 0; c < info->channels; ++c) {
            float v = sample(frame + (size_t)c * (size_t)(info->bits / 8), info);
            if (!isfinite(v)) return ESR_ERR_FORMAT;
            sum += v;
        }
        out[i] = info->channels == 1 ? sum : sum / (float)info->channels;
    }
    return ESR_OK;
}
