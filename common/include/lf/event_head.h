/* event_head.h - an envelope's head (seq, type, lead_id, and a few more fields a
 * consumer names) read from its text without building the whole JSON tree.
 *
 * The consumers that act on an event's outbox row by its seq (LF_BATCH_SEQ_ONLY: the
 * router, analytics, the scheduler's effects) use three fields of an envelope, and
 * parsing the rest into a jansson tree and freeing it was half of their process's CPU
 * per event (docs/benchmarks.md). lf_event_head tokenizes the text with jsmn (no
 * allocation) and builds the same light envelope the sweep gives those consumers:
 * {"seq": N, "type": "...", "lead_id": "..."} (lead_id left out when it is not a
 * string). A consumer that reads a few more fields of its most common event (the
 * scheduler: an assignment's "at", grade and owner) names them in an lf_head_keep_t. */
#ifndef LF_EVENT_HEAD_H
#define LF_EVENT_HEAD_H

#include <jansson.h>
#include <stddef.h>

/* What lf_event_head made of a text. */
typedef enum {
    LF_HEAD_OK,        /* *out is the light envelope */
    LF_HEAD_MALFORMED, /* an object without a positive integer seq or a string type,
                        * or with a string it reads that is not UTF-8: jansson drops
                        * such a text too */
    LF_HEAD_WHOLE      /* parse it whole: the text is beyond this reader (escaped keys or
                        * values that matter, an odd seq, a kept field that is not a
                        * string, more tokens than it holds), or of a type read whole */
} lf_head_rc;

/* What a light envelope keeps beyond seq, type and lead_id. Kept fields must hold a
 * string or null (anything else: LF_HEAD_WHOLE); one that is absent stays absent. */
typedef struct {
    const char *type;           /* only events of this type are read light (NULL: all) */
    const char *const *top;     /* top-level keys, NULL-terminated, or NULL */
    const char *const *payload; /* keys of "payload", kept in a "payload" object */
} lf_head_keep_t;

/* Reads the head of the envelope text[0..len), keeping what keep names (NULL: seq, type
 * and lead_id only). On LF_HEAD_OK *out is a new light envelope (caller owns);
 * otherwise *out is NULL. */
lf_head_rc lf_event_head(const char *text, size_t len, const lf_head_keep_t *keep,
                         json_t **out);

#endif
