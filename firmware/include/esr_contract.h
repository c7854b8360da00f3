/* The model contract (docs/model-contract.md) as C data, parsed from its JSON with cJSON.
 * Host side only (the parser allocates while it runs); the front-end itself never does. */
#ifndef ESR_CONTRACT_H
#define ESR_CONTRACT_H

#include "esr_frontend.h"

#define ESR_MAX_HEADS 8
#define ESR_MAX_LABELS 64
#define ESR_MAX_NAME 128
#define ESR_MAX_STATS 4096

typedef enum { ESR_NORM_NONE = 0, ESR_NORM_GLOBAL = 1, ESR_NORM_UTTERANCE = 2 } esr_norm_mode;

typedef struct {
    char name[ESR_MAX_NAME];
    char output[ESR_MAX_NAME];
    int is_ctc;    /* transcript head: not decoded here */
    int is_logits; /* 1: softmax the output; 0: already probabilities */
    int n_labels;
    char labels[ESR_MAX_LABELS][ESR_MAX_NAME];
} esr_head;

typedef struct {
    char name[ESR_MAX_NAME];
    char input_name[ESR_MAX_NAME];
    int waveform_input;    /* input.kind == "waveform" */
    int frontend_in_graph; /* the graph computes the front-end: send samples */
    int waveform_frontend; /* frontend.kind == "waveform" */
    int sample_rate;
    esr_fe_config fe;
    esr_norm_mode norm;
    size_t n_stats;
    float mean[ESR_MAX_STATS];
    float std[ESR_MAX_STATS];
    double window_seconds, hop_seconds, min_seconds;
    int n_heads;
    esr_head heads[ESR_MAX_HEADS];
} esr_contract;

/* Parse the JSON stored under the model's `edge_ser.contract` metadata key. ESR_ERR_FORMAT for
 * malformed JSON or a missing field, ESR_ERR_CONFIG for values this code does not support. */
esr_status esr_contract_parse(const char *json, esr_contract *contract);

#endif
