/* sampler.h: picks the next token from a logits vector (engine layer): repetition, frequency
 * and presence penalties over a recent-token window, top-k, top-p, min-p, temperature and a
 * seeded draw, in llama.cpp's default chain order. One sampler per sequence; no global state. */
#ifndef LOCO_ENGINE_SAMPLER_H
#define LOCO_ENGINE_SAMPLER_H

#include <stdint.h>

#include "base/status.h"

typedef struct constrain constrain; /* engine/constrain.h */

/* Largest penalty window accepted (tokens). */
#define SAMPLER_MAX_WINDOW 65536

typedef struct {
    float temperature;       /* <= 0: greedy (argmax after penalties; ties: lowest id) */
    int32_t top_k;           /* keep the k most likely; <= 0: off */
    float top_p;             /* keep the smallest prefix with probability >= p; >= 1: off */
    float min_p;             /* keep p_i >= min_p * p_max; <= 0: off */
    float repeat_penalty;    /* logit / r when > 0, logit * r when <= 0, for window tokens; 1: off */
    float frequency_penalty; /* subtracted count times from window tokens; 0: off */
    float presence_penalty;  /* subtracted once from window tokens; 0: off */
    int32_t penalty_last_n;  /* window: the last n accepted tokens; 0: penalties off */
    uint64_t seed;           /* same seed, same logits, same accepts -> same tokens */
} sampler_params;

typedef struct sampler sampler;

/* llama.cpp's common defaults: temperature 0.8, top_k 40, top_p 0.95, min_p 0.05, penalties
 * off (repeat 1, frequency 0, presence 0) over a 64-token window, seed 0. */
void sampler_params_default(sampler_params *p);

/* New sampler for a vocabulary of n_vocab tokens; every buffer a step needs is allocated here
 * (about 12 bytes per vocabulary entry). params is copied. NULL with err set on a bad
 * parameter (n_vocab < 1, NaN values, window outside [0, SAMPLER_MAX_WINDOW]) or no memory. */
sampler *sampler_new(int32_t n_vocab, const sampler_params *params, loco_err *err);
/* sampler_free(NULL) does nothing. */
void sampler_free(sampler *s);

/* Picks a token from logits[0..n_vocab) (borrowed, not modified) into *out_token. Does not
 * record it: call sampler_accept with the token actually used. Allocates nothing.
 * LOCO_ERR_INVALID when a logit is NaN or every logit is -inf after the filters. */
loco_status sampler_sample(sampler *s, const float *logits, int32_t *out_token, loco_err *err);

/* Records a token (generated, or from the prompt) in the penalty window, dropping the oldest
 * when the window is full. LOCO_ERR_INVALID (and nothing recorded) for an id outside the
 * vocabulary. */
loco_status sampler_accept(sampler *s, int32_t token);

/* Applies the penalties of the current window to logits[0..n_vocab) in place, exactly as
 * sampler_sample does to its own copy (exported for tests and for callers that show
 * adjusted logits). */
void sampler_penalize(sampler *s, float *logits);

/* Empties the penalty window and restarts the random sequence from `seed`. */
void sampler_reset(sampler *s, uint64_t seed);

/* Restricts sampling to the tokens c allows (engine/constrain.h); c is borrowed and must outlive
 * its use, NULL turns the restriction off. While set, sampler_sample returns only allowed tokens,
 * drawn from the distribution the chain gives restricted to them and renormalised (greedy: the
 * best allowed token); when no token the chain keeps is allowed, the chain runs again over the
 * allowed tokens alone. sampler_accept then advances c too and refuses (LOCO_ERR_INVALID,
 * nothing recorded) a token c does not allow, so set c after any prompt tokens are accepted.
 * c's vocabulary must be the sampler's (constrain_n_vocab). */
void sampler_set_constraint(sampler *s, constrain *c);

#endif
