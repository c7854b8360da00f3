/* esr_features CONTRACT.json SAMPLES.f32 OUT.f32 [--normalize] [--rate=HZ]
 *
 * The contract's front-end over raw float32 samples at the contract's rate (or at HZ, then
 * resampled to it first), optionally normalized with its global statistics; writes float32
 * rows and prints "rows features". The tests compare it with edge_ser.frontend. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "esr_contract.h"
#include "io.h"

int main(int argc, char **argv) {
    static esr_contract c;
    uint8_t *json = NULL, *raw = NULL;
    size_t json_size, raw_size, rows = 0;
    esr_fe_sizes sizes;
    esr_fe fe;
    void *work = NULL;
    float *out = NULL, *resampled = NULL;
    const float *samples;
    size_t n;
    FILE *f;
    esr_status st;
    int normalize = 0, rate = 0, rc = 1, i;
    if (argc < 4) {
        fprintf(stderr, "usage: %s CONTRACT.json SAMPLES.f32 OUT.f32 [--normalize] [--rate=HZ]\n", argv[0]);
        return 2;
    }
    for (i = 4; i < argc; ++i) {
        if (strcmp(argv[i], "--normalize") == 0) normalize = 1;
        else if (strncmp(argv[i], "--rate=", 7) == 0) rate = atoi(argv[i] + 7);
        else return 2;
    }
    if ((st = esr_read_file(argv[1], 1 << 24, &json, &json_size)) != ESR_OK ||
        (st = esr_contract_parse((const char *)json, &c)) != ESR_OK ||
        (st = esr_read_file(argv[2], (size_t)1 << 31, &raw, &raw_size)) != ESR_OK)
        goto fail;
    if (c.waveform_frontend || raw_size < sizeof(float) || raw_size % sizeof(float)) {
        st = ESR_ERR_CONFIG;
        goto fail;
    }
    samples = (const float *)(void *)raw;
    n = raw_size / sizeof(float);
    if (rate && rate != c.sample_rate) {
        size_t m;
        if ((st = esr_resample_length(n, rate, c.sample_rate, &m)) != ESR_OK) goto fail;
        resampled = (float *)malloc(m * sizeof(float));
        if (!resampled) {
            st = ESR_ERR_SIZE;
            goto fail;
        }
        if ((st = esr_resample(samples, n, rate, resampled, m, c.sample_rate)) != ESR_OK) goto fail;
        samples = resampled;
        n = m;
    }
    if ((st = esr_fe_get_sizes(&c.fe, n, &sizes)) != ESR_OK) goto fail;
    work = malloc(sizes.workspace_bytes);
    out = (float *)malloc(sizes.out_floats * sizeof(float));
    if (!work || !out) {
        st = ESR_ERR_SIZE;
        goto fail;
    }
    if ((st = esr_fe_init(&fe, &c.fe, n, work, sizes.workspace_bytes)) != ESR_OK ||
        (st = esr_fe_compute(&fe, samples, n, out, sizes.out_floats, &rows)) != ESR_OK)
        goto fail;
    if (normalize && c.norm == ESR_NORM_GLOBAL &&
        (st = esr_fe_normalize(out, rows, sizes.n_features, c.mean, c.std)) != ESR_OK)
        goto fail;
    f = fopen(argv[3], "wb");
    if (!f || fwrite(out, sizeof(float), rows * sizes.n_features, f) != rows * sizes.n_features) {
        if (f) fclose(f);
        st = ESR_ERR_IO;
        goto fail;
    }
    fclose(f);
    printf("%zu %zu\n", rows, sizes.n_features);
    rc = 0;
fail:
    if (rc) fprintf(stderr, "esr_features: %s\n", esr_status_str(st));
    free(json);
    free(raw);
    free(resampled);
    free(work);
    free(out);
    return rc;
}
