/* edge_ser_app MODEL.onnx FILE.wav [FILE.wav ...]
 *
 * The embedded-Linux path: a WAV file through the C front-end and an edge-ser ONNX model on the
 * ONNX Runtime C API, printing one JSON line per file as `edge-ser predict --json` does (label,
 * scores, start, end, heads, silent; or file, error, type). The model's contract (front-end,
 * normalization, analysis window, heads) comes from its metadata, as in the Python runtime:
 * audio is resampled to the model's rate, cut into windows (the last aligned to the end),
 * digital silence (peak below -80 dBFS) skipped, each voiced window scored by one model call and
 * the softmaxed scores averaged. Exit status: 0, or 1 when a file failed, 2 for a bad model.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "esr_contract.h"
#include "io.h"
#include "onnxruntime_c_api.h"

#define METADATA_KEY "edge_ser.contract"
#define SILENCE_PEAK 1e-4f
#define MAX_BATCH 1 /* windows per ONNX Runtime call: one, as the Python runtime scores them */

static const OrtApi *ort;

typedef struct {
    OrtEnv *env;
    OrtSession *session;
    OrtMemoryInfo *memory;
    esr_contract contract;
    esr_fe fe;
    esr_fe_sizes sizes;
    void *fe_work;
    size_t window, hop, min_samples;
} model;

/* Print and release an ORT status; returns 1 when it was an error. */
static int ort_failed(OrtStatus *status, const char *what) {
    if (!status) return 0;
    fprintf(stderr, "edge_ser_app: %s: %s\n", what, ort->GetErrorMessage(status));
    ort->ReleaseStatus(status);
    return 1;
}

static void json_string(const char *s) {
    putchar('"');
    for (; *s; ++s) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c < 0x20) printf("\\u%04x", c);
        else putchar(c);
    }
    putchar('"');
}

static void print_error(const char *file, const char *type, const char *message) {
    printf("{\"file\": ");
    json_string(file);
    printf(", \"error\": ");
    json_string(message);
    printf(", \"type\": \"%s\"}\n", type);
    fflush(stdout);
    fprintf(stderr, "edge_ser_app: error: %s: %s\n", file, message);
}

static size_t round_samples(double seconds, int rate) { return (size_t)llround(seconds * rate); }

static int open_model(model *m, const char *path) {
    OrtSessionOptions *options = NULL;
    OrtModelMetadata *meta = NULL;
    OrtAllocator *allocator = NULL;
    char *json = NULL;
    esr_status st;
    esr_contract *c = &m->contract;
    int failed;
    if (ort_failed(ort->CreateEnv(ORT_LOGGING_LEVEL_ERROR, "edge_ser_app", &m->env), "CreateEnv") ||
        ort_failed(ort->CreateSessionOptions(&options), "CreateSessionOptions"))
        return 0;
    failed = ort_failed(ort->SetIntraOpNumThreads(options, 1), "SetIntraOpNumThreads") ||
             ort_failed(ort->SetInterOpNumThreads(options, 1), "SetInterOpNumThreads") ||
             ort_failed(ort->SetSessionLogSeverityLevel(options, 3), "SetSessionLogSeverityLevel") ||
             ort_failed(ort->CreateSession(m->env, path, options, &m->session), path);
    ort->ReleaseSessionOptions(options);
    if (failed) return 0;
    if (ort_failed(ort->GetAllocatorWithDefaultOptions(&allocator), "allocator") ||
        ort_failed(ort->SessionGetModelMetadata(m->session, &meta), "metadata"))
        return 0;
    failed = ort_failed(ort->ModelMetadataLookupCustomMetadataMap(meta, allocator, METADATA_KEY, &json), "metadata");
    ort->ReleaseModelMetadata(meta);
    if (failed) return 0;
    if (!json) {
        fprintf(stderr, "edge_ser_app: %s: no '%s' metadata: not an edge-ser model\n", path, METADATA_KEY);
        return 0;
    }
    st = esr_contract_parse(json, c);
    failed = ort_failed(ort->AllocatorFree(allocator, json), "AllocatorFree");
    if (st != ESR_OK) {
        fprintf(stderr, "edge_ser_app: %s: contract: %s\n", path, esr_status_str(st));
        return 0;
    }
    if (failed) return 0;
    m->window = round_samples(c->window_seconds, c->sample_rate);
    m->hop = round_samples(c->hop_seconds, c->sample_rate);
    m->min_samples = round_samples(c->min_seconds, c->sample_rate);
    if (m->window < 1 || m->hop < 1) return 0;
    if (!c->frontend_in_graph && !c->waveform_frontend) {
        if ((st = esr_fe_get_sizes(&c->fe, m->window, &m->sizes)) != ESR_OK ||
            !(m->fe_work = malloc(m->sizes.workspace_bytes)) ||
            (st = esr_fe_init(&m->fe, &c->fe, m->window, m->fe_work, m->sizes.workspace_bytes)) != ESR_OK) {
            fprintf(stderr, "edge_ser_app: %s: front-end: %s\n", path, esr_status_str(st));
            return 0;
        }
        if (c->norm == ESR_NORM_GLOBAL && c->n_stats != m->sizes.n_features) {
            fprintf(stderr, "edge_ser_app: %s: normalization does not fit the front-end\n", path);
            return 0;
        }
    }
    return !ort_failed(ort->CreateCpuMemoryInfo(OrtArenaAllocator, OrtMemTypeDefault, &m->memory), "memory info");
}

static void close_model(model *m) {
    if (m->memory) ort->ReleaseMemoryInfo(m->memory);
    if (m->session) ort->ReleaseSession(m->session);
    if (m->env) ort->ReleaseEnv(m->env);
    free(m->fe_work);
}

/* Model input for one window: features (normalized) or samples; returns the floats written. */
static size_t window_input(model *m, const float *x, size_t n, float *out, size_t *rows) {
    esr_contract *c = &m->contract;
    size_t i, j, width;
    if (c->frontend_in_graph || c->waveform_frontend) {
        memcpy(out, x, n * sizeof(float));
        *rows = n;
        if (!c->frontend_in_graph && c->norm == ESR_NORM_GLOBAL)
            for (i = 0; i < n; ++i) out[i] = (out[i] - c->mean[0]) * (1.0f / c->std[0]);
        return n;
    }
    if (esr_fe_compute(&m->fe, x, n, out, m->sizes.out_floats, rows) != ESR_OK) return 0;
    width = m->sizes.n_features;
    if (c->norm == ESR_NORM_GLOBAL) {
        esr_fe_normalize(out, *rows, width, c->mean, c->std);
    } else if (c->norm == ESR_NORM_UTTERANCE) {
        for (j = 0; j < width; ++j) {
            double mean = 0, var = 0;
            float sd;
            for (i = 0; i < *rows; ++i) mean += out[i * width + j];
            mean /= (double)*rows;
            for (i = 0; i < *rows; ++i) var += (out[i * width + j] - mean) * (out[i * width + j] - mean);
            sd = (float)sqrt(var / (double)*rows);
            if (sd < 1e-5f) sd = 1e-5f;
            for (i = 0; i < *rows; ++i) out[i * width + j] = (out[i * width + j] - (float)mean) / sd;
        }
    }
    return *rows * width;
}

/* Run `count` inputs of `per` floats (rows x width each) and add their softmaxed scores to sums. */
static int run_batch(model *m, float *inputs, size_t count, size_t rows, size_t width, double *sums) {
    esr_contract *c = &m->contract;
    const char *in_names[1] = {c->input_name};
    const char *out_names[ESR_MAX_HEADS];
    OrtValue *input = NULL, *outputs[ESR_MAX_HEADS] = {0};
    int64_t shape[3] = {(int64_t)count, (int64_t)rows, (int64_t)width};
    size_t rank = (c->waveform_input) ? 2 : 3, per = rows * width, b;
    int h, k, ok = 1, n_out = 0;
    if (c->waveform_input) shape[1] = (int64_t)per;
    for (h = 0; h < c->n_heads; ++h)
        if (!c->heads[h].is_ctc) out_names[n_out++] = c->heads[h].output;
    if (ort_failed(ort->CreateTensorWithDataAsOrtValue(m->memory, inputs, count * per * sizeof(float), shape, rank,
                                                       ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, &input),
                   "input tensor"))
        return 0;
    if (ort_failed(ort->Run(m->session, NULL, in_names, (const OrtValue *const *)&input, 1, out_names, (size_t)n_out,
                            outputs),
                   "Run"))
        ok = 0;
    for (h = 0, k = 0; ok && h < c->n_heads; ++h) {
        const esr_head *head = &c->heads[h];
        OrtTensorTypeAndShapeInfo *info = NULL;
        int64_t dims[2] = {0, 0};
        size_t n_dims = 0;
        float *data = NULL;
        if (head->is_ctc) continue;
        if (ort_failed(ort->GetTensorTypeAndShape(outputs[k], &info), "output shape")) {
            ok = 0;
            break;
        }
        if (ort_failed(ort->GetDimensionsCount(info, &n_dims), "output rank") || n_dims != 2 ||
            ort_failed(ort->GetDimensions(info, dims, 2), "output dims") || dims[0] != (int64_t)count ||
            dims[1] != head->n_labels || ort_failed(ort->GetTensorMutableData(outputs[k], (void **)&data), "data")) {
            fprintf(stderr, "edge_ser_app: head %s: unexpected output\n", head->name);
            ok = 0;
        }
        ort->ReleaseTensorTypeAndShapeInfo(info);
        for (b = 0; ok && b < count; ++b) {
            const float *row = data + b * (size_t)head->n_labels;
            double top = row[0], total = 0, p[ESR_MAX_LABELS];
            int l;
            for (l = 1; l < head->n_labels; ++l)
                if (row[l] > top) top = row[l];
            for (l = 0; l < head->n_labels; ++l) {
                p[l] = head->is_logits ? exp((double)row[l] - top) : (double)row[l];
                total += p[l];
            }
            for (l = 0; l < head->n_labels; ++l) sums[h * ESR_MAX_LABELS + l] += head->is_logits ? p[l] / total : p[l];
        }
        ++k;
    }
    for (k = 0; k < n_out; ++k)
        if (outputs[k]) ort->ReleaseValue(outputs[k]);
    ort->ReleaseValue(input);
    return ok;
}

static void print_head(const esr_head *head, const double *scores, int voiced) {
    int l, top = 0;
    for (l = 1; l < head->n_labels; ++l)
        if (scores[l] > scores[top]) top = l;
    printf("\"label\": ");
    if (voiced) json_string(head->labels[top]);
    else printf("null");
    printf(", \"scores\": {");
    for (l = 0; l < head->n_labels; ++l) {
        printf("%s", l ? ", " : "");
        json_string(head->labels[l]);
        printf(": %.17g", voiced ? scores[l] : 1.0 / head->n_labels);
    }
    printf("}");
}

static int predict_file(model *m, const char *path) {
    esr_contract *c = &m->contract;
    float *raw = NULL, *x = NULL, *batch = NULL;
    size_t n_raw, n, start, n_windows, w, voiced = 0, pending = 0, rows = 0, width, per;
    double sums[ESR_MAX_HEADS * ESR_MAX_LABELS] = {0};
    int rate, h, ok = 0;
    esr_status st = esr_load_wav(path, &raw, &n_raw, &rate);
    if (st != ESR_OK) {
        char msg[256];
        snprintf(msg, sizeof msg, "not a readable WAV file (%s)", esr_status_str(st));
        print_error(path, "AudioError", msg);
        return 0;
    }
    if ((st = esr_resample_length(n_raw, rate, c->sample_rate, &n)) != ESR_OK || !(x = malloc(n * sizeof(float))) ||
        (st = esr_resample(raw, n_raw, rate, x, n, c->sample_rate)) != ESR_OK) {
        print_error(path, "AudioError", "cannot resample this audio");
        goto done;
    }
    if (n < m->min_samples) {
        print_error(path, "AudioError", "audio is too short for this model");
        goto done;
    }
    n_windows = n <= m->window ? 1 : (n - m->window) / m->hop + 1 + ((n - m->window) % m->hop != 0);
    width = (c->frontend_in_graph || c->waveform_frontend) ? 1 : m->sizes.n_features;
    per = (c->frontend_in_graph || c->waveform_frontend) ? (n < m->window ? n : m->window) : m->sizes.out_floats;
    if (!(batch = malloc(MAX_BATCH * per * sizeof(float)))) goto done;
    for (w = 0; w < n_windows; ++w) {
        size_t len = n < m->window ? n : m->window;
        start = w * m->hop;
        if (start + len > n || (w == n_windows - 1 && n > m->window)) start = n - len;
        if (esr_peak(x + start, len) < SILENCE_PEAK) continue;
        if (!window_input(m, x + start, len, batch + pending * (per), &rows)) {
            print_error(path, "AudioError", "front-end failed");
            goto done;
        }
        ++pending;
        ++voiced;
        if (pending == MAX_BATCH || w == n_windows - 1) {
            if (!run_batch(m, batch, pending, rows, width == 1 ? 1 : width, sums)) {
                print_error(path, "ModelError", "inference failed");
                goto done;
            }
            pending = 0;
        }
    }
    if (pending && !run_batch(m, batch, pending, rows, width, sums)) {
        print_error(path, "ModelError", "inference failed");
        goto done;
    }
    for (h = 0; h < c->n_heads; ++h) {
        int l;
        for (l = 0; voiced && l < c->heads[h].n_labels; ++l) sums[h * ESR_MAX_LABELS + l] /= (double)voiced;
    }
    printf("{\"file\": ");
    json_string(path);
    printf(", ");
    print_head(&c->heads[0], sums, voiced > 0);
    printf(", \"start\": 0.0, \"end\": %.4f, \"heads\": {", (double)n / c->sample_rate);
    for (h = 1; h < c->n_heads && voiced; ++h) {
        if (c->heads[h].is_ctc) continue;
        printf("%s", h > 1 ? ", " : "");
        json_string(c->heads[h].name);
        printf(": {");
        print_head(&c->heads[h], sums + h * ESR_MAX_LABELS, 1);
        printf("}");
    }
    printf("}, \"silent\": %s}\n", voiced ? "false" : "true");
    fflush(stdout);
    ok = 1;
done:
    free(raw);
    free(x);
    free(batch);
    return ok;
}

int main(int argc, char **argv) {
    static model m;
    int i, failed = 0;
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL.onnx FILE.wav [FILE.wav ...]\n", argv[0]);
        return 2;
    }
    ort = OrtGetApiBase()->GetApi(ORT_API_VERSION);
    if (!ort) {
        fprintf(stderr, "edge_ser_app: ONNX Runtime %s does not offer C API version %d\n",
                OrtGetApiBase()->GetVersionString(), ORT_API_VERSION);
        return 2;
    }
    if (!open_model(&m, argv[1])) {
        close_model(&m);
        return 2;
    }
    for (i = 2; i < argc; ++i) failed += !predict_file(&m, argv[i]);
    close_model(&m);
    return failed ? 1 : 0;
}
