/* pending.h: TEMPORARY stand-ins for two APIs other helpers are adding, declared exactly as
 * COORD.md's contracts name them so the gateway builds and runs before they land:
 *   - "Engine serving API" (core): LOCO_ERR_BUSY, backend_call.cache_key, the new
 *     backend_engine_opts fields, backend_engine_stats/_tokenize/_detokenize/_complete_text;
 *   - "Model store" (pull): models_default_dir, models_resolve, models_find_default.
 * Delete this file, pending.c and every `#include "backend/pending.h"` once both are on main,
 * turn PENDING_SET_CACHE_KEY / PENDING_ENGINE_OPTS into plain assignments and include
 * "base/models.h" instead. Nothing else may be added here. */
#ifndef LOCO_BACKEND_PENDING_H
#define LOCO_BACKEND_PENDING_H

#include <stdbool.h>
#include <stdint.h>

#include "backend/backend.h"

/* ---- core: engine serving API ---- */

#define LOCO_ERR_BUSY ((loco_status)64) /* status.h: "busy": the engine's queue is full */

/* backend_call.cache_key = key (a sticky-slot hint); a no-op until the field exists. */
#define PENDING_SET_CACHE_KEY(call, key) ((void)(call), (void)(key))
/* Sets backend_engine_opts .parallel, .queue_max, .cache_mb, .constrain, .kv_type from the
 * gateway's engine settings; a no-op until the fields exist. */
#define PENDING_ENGINE_OPTS(eo, ecfg) ((void)(eo), (void)(ecfg))

typedef struct {
    long queue_len, active;
    uint64_t prompt_tokens, gen_tokens, cache_hit_tokens;
    double prompt_seconds, gen_seconds;
} backend_engine_stats;

/* Stand-in: all zero (the serial engine keeps no counters). */
loco_status backend_engine_stats_get(backend *b, backend_engine_stats *out);
#define backend_engine_stats(b, out) backend_engine_stats_get((b), (out))
/* Stand-in: the model file's tokenizer, loaded once. */
loco_status backend_engine_tokenize(backend *b, const char *text, size_t n, bool special,
                                    int32_t **out_ids, size_t *out_n, loco_err *err);
loco_status backend_engine_detokenize(backend *b, const int32_t *ids, size_t n, char **out,
                                      loco_err *err);
/* Stand-in: LOCO_ERR_UNSUPPORTED. */
loco_status backend_engine_complete_text(backend *b, const char *prompt,
                                         const chat_request *params, const backend_call *call,
                                         chat_event_fn cb, void *ctx, backend_result *out,
                                         loco_err *err);

/* ---- pull: model store ---- */

loco_status models_default_dir(char **out, loco_err *err);
loco_status models_resolve(const char *name_or_path, char **out_path, loco_err *err);
loco_status models_find_default(char **out_path, loco_err *err);

#endif
