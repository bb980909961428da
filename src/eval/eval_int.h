/* eval_int.h: what the files of eval/ share and nobody else uses: the data set's layout. */
#ifndef LOCO_EVAL_INT_H
#define LOCO_EVAL_INT_H

#include "eval/eval.h"

#define EVAL_MAX_PROBLEM_BYTES 2048 /* one problem message; longer ones are cut */

typedef struct {
    eval_sample s;
    char *source;      /* borrowed from the set's sources */
    size_t line;
    /* a backend's answer (eval_set_put_output / _failure) */
    bool has_output;
    char *output_json; /* malloc'd compact JSON */
    eval_turn output;
} eval_sample_entry;

typedef struct {
    eval_prediction p;
    char *source; /* borrowed */
    size_t line;
} eval_prediction_entry;

struct eval_set {
    eval_sample_entry *samples; /* valid samples, file order */
    size_t n_samples, cap_samples;
    eval_prediction_entry *preds; /* valid predictions, file order */
    size_t n_preds, cap_preds;
    char **sources;
    size_t n_sources;
    size_t sample_lines, samples_broken;
    size_t prediction_lines, predictions_broken, predictions_failed;
    eval_problem *problems;
    size_t n_problems, problems_total;
};

/* Records a problem (source and message copied); past EVAL_MAX_PROBLEMS only counted.
 * LOCO_ERR_NOMEM only. */
loco_status eval_problem_add(eval_problem **list, size_t *n, size_t *total, const char *source,
                             size_t line, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

#endif
