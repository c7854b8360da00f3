/* Model contract JSON -> esr_contract (cJSON). */
#include "esr_contract.h"

#include <math.h>
#include <string.h>

#include "cJSON.h"

static const cJSON *field(const cJSON *obj, const char *name) { return cJSON_GetObjectItemCaseSensitive(obj, name); }

static int copy_string(const cJSON *item, char *dst, size_t cap) {
    if (!cJSON_IsString(item) || !item->valuestring || strlen(item->valuestring) >= cap) return 0;
    strcpy(dst, item->valuestring);
    return 1;
}

static int number(const cJSON *obj, const char *name, double *out) {
    const cJSON *item = field(obj, name);
    if (!cJSON_IsNumber(item) || !isfinite(item->valuedouble)) return 0;
    *out = item->valuedouble;
    return 1;
}

static esr_status parse_frontend(const cJSON *fe, esr_contract *c) {
    const cJSON *kind = field(fe, "kind"), *window = field(fe, "window"), *high = field(fe, "high_freq");
    esr_fe_config *cfg = &c->fe;
    double v;
    esr_fe_default_config(cfg);
    if (!cJSON_IsString(kind)) return ESR_ERR_FORMAT;
    if (!number(fe, "sample_rate", &v)) return ESR_ERR_FORMAT;
    cfg->sample_rate = (int)v;
    if (strcmp(kind->valuestring, "waveform") == 0) {
        c->waveform_frontend = 1;
        return ESR_OK;
    }
    if (strcmp(kind->valuestring, "mfcc") == 0) cfg->kind = ESR_FE_MFCC;
    else if (strcmp(kind->valuestring, "logmel") == 0) cfg->kind = ESR_FE_LOGMEL;
    else if (strcmp(kind->valuestring, "logspec") == 0) cfg->kind = ESR_FE_LOGSPEC;
    else if (strcmp(kind->valuestring, "functionals") == 0) cfg->kind = ESR_FE_FUNCTIONALS;
    else return ESR_ERR_CONFIG;
    if (!number(fe, "win_length", &cfg->win_length) || !number(fe, "hop_length", &cfg->hop_length) ||
        !number(fe, "n_fft", &v) || !number(fe, "preemph", &cfg->preemph) || !cJSON_IsString(window))
        return ESR_ERR_FORMAT;
    cfg->n_fft = (int)v;
    if (strcmp(window->valuestring, "rect") == 0) cfg->window = ESR_WIN_RECT;
    else if (strcmp(window->valuestring, "hamming") == 0) cfg->window = ESR_WIN_HAMMING;
    else if (strcmp(window->valuestring, "hann") == 0) cfg->window = ESR_WIN_HANN;
    else return ESR_ERR_CONFIG;
    if (cfg->kind == ESR_FE_LOGSPEC) return ESR_OK;
    if (!number(fe, "n_mels", &v) || !number(fe, "low_freq", &cfg->low_freq)) return ESR_ERR_FORMAT;
    cfg->n_mels = (int)v;
    if (cJSON_IsNumber(high)) cfg->high_freq = high->valuedouble;
    else if (cJSON_IsNull(high) || !high) cfg->high_freq = 0.0;
    else return ESR_ERR_FORMAT;
    if (cfg->kind == ESR_FE_LOGMEL) return ESR_OK;
    if (!number(fe, "n_mfcc", &v) || !number(fe, "lifter", &cfg->lifter)) return ESR_ERR_FORMAT;
    cfg->n_mfcc = (int)v;
    cfg->append_energy = cJSON_IsTrue(field(fe, "append_energy"));
    return ESR_OK;
}

static esr_status parse_stats(const cJSON *norm, esr_contract *c) {
    const cJSON *mode = field(norm, "mode"), *mean = field(norm, "mean"), *std = field(norm, "std"), *item;
    size_t i = 0;
    if (!cJSON_IsString(mode)) return ESR_ERR_FORMAT;
    if (strcmp(mode->valuestring, "none") == 0) return ESR_OK;
    if (strcmp(mode->valuestring, "utterance") == 0) {
        c->norm = ESR_NORM_UTTERANCE;
        return ESR_OK;
    }
    if (strcmp(mode->valuestring, "global") != 0) return ESR_ERR_CONFIG;
    c->norm = ESR_NORM_GLOBAL;
    if (!cJSON_IsArray(mean) || !cJSON_IsArray(std) || cJSON_GetArraySize(mean) != cJSON_GetArraySize(std))
        return ESR_ERR_FORMAT;
    if (cJSON_GetArraySize(mean) < 1 || cJSON_GetArraySize(mean) > ESR_MAX_STATS) return ESR_ERR_CONFIG;
    cJSON_ArrayForEach(item, mean) {
        if (!cJSON_IsNumber(item)) return ESR_ERR_FORMAT;
        c->mean[i++] = (float)item->valuedouble;
    }
    c->n_stats = i;
    i = 0;
    cJSON_ArrayForEach(item, std) {
        if (!cJSON_IsNumber(item) || !(item->valuedouble > 0)) return ESR_ERR_FORMAT;
        c->std[i++] = (float)item->valuedouble;
    }
    return ESR_OK;
}

static esr_status parse_heads(const cJSON *heads, esr_contract *c) {
    const cJSON *h, *label;
    if (!cJSON_IsArray(heads) || cJSON_GetArraySize(heads) < 1) return ESR_ERR_FORMAT;
    if (cJSON_GetArraySize(heads) > ESR_MAX_HEADS) return ESR_ERR_CONFIG;
    cJSON_ArrayForEach(h, heads) {
        esr_head *head = &c->heads[c->n_heads++];
        const cJSON *kind = field(h, "kind"), *act = field(h, "activation"), *labels = field(h, "labels");
        if (!copy_string(field(h, "name"), head->name, sizeof head->name) ||
            !copy_string(field(h, "output"), head->output, sizeof head->output) || !cJSON_IsArray(labels))
            return ESR_ERR_FORMAT;
        head->is_ctc = cJSON_IsString(kind) && strcmp(kind->valuestring, "ctc") == 0;
        head->is_logits = !(cJSON_IsString(act) && strcmp(act->valuestring, "probabilities") == 0);
        if (cJSON_GetArraySize(labels) < 2 || cJSON_GetArraySize(labels) > ESR_MAX_LABELS) return ESR_ERR_CONFIG;
        cJSON_ArrayForEach(label, labels) {
            if (!copy_string(label, head->labels[head->n_labels++], ESR_MAX_NAME)) return ESR_ERR_FORMAT;
        }
    }
    return c->heads[0].is_ctc ? ESR_ERR_FORMAT : ESR_OK;
}

esr_status esr_contract_parse(const char *json, esr_contract *c) {
    cJSON *root;
    const cJSON *input, *window, *kind;
    esr_status st = ESR_ERR_FORMAT;
    double v;
    if (!json || !c) return ESR_ERR_NULL;
    memset(c, 0, sizeof(*c));
    root = cJSON_Parse(json);
    if (!root) return ESR_ERR_FORMAT;
    input = field(root, "input");
    window = field(root, "window");
    kind = field(input, "kind");
    if (!number(root, "schema_version", &v) || v != 1) {
        st = ESR_ERR_CONFIG;
        goto done;
    }
    if (!copy_string(field(root, "name"), c->name, sizeof c->name) ||
        !copy_string(field(input, "name"), c->input_name, sizeof c->input_name) || !cJSON_IsString(kind) ||
        !number(root, "sample_rate", &v))
        goto done;
    c->sample_rate = (int)v;
    c->waveform_input = strcmp(kind->valuestring, "waveform") == 0;
    c->frontend_in_graph = cJSON_IsTrue(field(input, "frontend_in_graph"));
    if (!number(window, "seconds", &c->window_seconds) || !number(window, "hop_seconds", &c->hop_seconds) ||
        !number(window, "min_seconds", &c->min_seconds))
        goto done;
    if ((st = parse_frontend(field(root, "frontend"), c)) != ESR_OK) goto done;
    if ((st = parse_stats(field(root, "normalization"), c)) != ESR_OK) goto done;
    st = parse_heads(field(root, "heads"), c);
    if (st == ESR_OK && c->fe.sample_rate != c->sample_rate) st = ESR_ERR_CONFIG;
    if (st == ESR_OK && !(c->window_seconds > 0 && c->hop_seconds > 0 && c->min_seconds > 0 &&
                          c->window_seconds < 3600 && c->min_seconds <= c->window_seconds))
        st = ESR_ERR_CONFIG;
done:
    cJSON_Delete(root);
    return st;
}
