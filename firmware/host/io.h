/* Whole-file reading for the host tools (malloc: host side only). */
#ifndef ESR_IO_H
#define ESR_IO_H

#include <stddef.h>
#include <stdint.h>

#include "esr_frontend.h"

/* Read a whole file (at most max_bytes) into a new buffer with a trailing NUL; free() it. */
esr_status esr_read_file(const char *path, size_t max_bytes, uint8_t **data, size_t *size);

/* A WAV file as mono float32 samples in a new buffer (free() it) and its rate. */
esr_status esr_load_wav(const char *path, float **samples, size_t *n, int *sample_rate);

#endif
